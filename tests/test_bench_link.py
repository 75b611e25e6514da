"""benchmarks.bench_link --quick prints every row of its table (the figures themselves are not checked)."""
import subprocess
import sys

from conftest import ROOT

ROWS = ('round trips over the pty', 'round trips over TCP', 'sp_cpython client', '4 KiB payload echoed over the pty',
        '4 KiB payload echoed over the TCP', 'idle board CPU', 'codec messages/s on CPython',
        'codec messages/s on MicroPython', 'host <-> host round trips', 'bytes on the wire per message, pure_json',
        'bytes on the wire per message, struct_json')


def test_bench_link_quick_prints_every_row():
    out = subprocess.run([sys.executable, '-m', 'benchmarks.bench_link', '--quick'], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == '| figure | sp-dual | baseline | ratio |'
    for row in ROWS:
        assert sum(1 for line in lines if row in line) >= 1, (row, out.stdout)
    assert len(lines) == 2 + len(ROWS)
