"""An answer that is an error reaches its caller at once: sp call on a service the board does not know."""
import subprocess
import sys
import time

from conftest import ROOT


def test_sp_call_on_an_unknown_service_gets_the_boards_answer_not_a_timeout():
    start = time.monotonic()
    done = subprocess.run([sys.executable, '-m', 'sp_tool', 'call', '98', '0', '--timeout', '20'], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert 'service or data unknown' in done.stderr
    assert time.monotonic() - start < 15   # the virtual board's start and one round trip, not the timeout
