"""The README's main-job command, against the virtual board."""
import subprocess
import sys
import time

from conftest import ROOT


def test_talk_reads_asc_time_from_the_virtual_board():
    result = subprocess.run([sys.executable, '-m', 'tools.talk'], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'virtual board (MicroPython unix port) on /dev/pts/' in result.stdout
    answer = result.stdout.strip().splitlines()[-1]
    assert answer.startswith('board time: ') and answer.endswith(' (status okay)'), answer
    assert time.strptime(answer[len('board time: '):-len(' (status okay)')])
    assert 'prot-client: RX <- service: read data response, data_id: asc_time, status: okay' in result.stderr
