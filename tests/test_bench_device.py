"""benchmarks.bench_device runs end to end and reports figures that fit the heap it was given."""
import re
import subprocess
import sys

from conftest import ROOT


def test_bench_device_reports_start_and_per_request_heap():
    out = subprocess.run([sys.executable, '-m', 'benchmarks.bench_device', '--heapsize', '72k'], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    base = int(re.search(r'baseline\) \| (\d+) B', out.stdout).group(1))
    start = int(re.search(r'after start: .*?\| (\d+) B', out.stdout).group(1))
    assert 0 < base < start < 72 * 1024
    served = [int(n) for n in re.findall(r'allocated serving (?:read|write|echo 16).*?\| (\d+) B', out.stdout)]
    assert len(served) == 3 and all(0 < n < 8192 for n in served), out.stdout
    assert 'echo 4 KiB | over the frame cap' in out.stdout   # 1 KiB frames by default
