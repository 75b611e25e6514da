"""benchmarks.bench_device runs end to end and reports figures that fit the heap it was given."""
import re
import subprocess
import sys

from conftest import ROOT


def test_bench_device_reports_start_and_per_request_heap():
    out = subprocess.run([sys.executable, '-m', 'benchmarks.bench_device', '--heapsize', '76k'], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    base = int(re.search(r'baseline\) \| (\d+) B', out.stdout).group(1))
    start = int(re.search(r'after start: .*?\| (\d+) B', out.stdout).group(1))
    assert 0 < base < start < 72 * 1024
    served = [int(n) for n in re.findall(r'allocated serving (?:read|write|echo 16).*?\| (\d+) B', out.stdout)]
    assert len(served) == 3 and all(0 < n < 8192 for n in served), out.stdout
    assert 'echo 4 KiB | over the frame cap' in out.stdout   # 1 KiB frames by default


def test_bench_device_with_a_secret_reports_what_the_macs_keep_in_use():
    def figures(*args):
        out = subprocess.run([sys.executable, '-m', 'benchmarks.bench_device', *args], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return (int(re.search(r'in use while serving.*?\| (\d+) B', out.stdout).group(1)),
                int(re.search(r'serving read asc_time \| (\d+) B', out.stdout).group(1)))
    plain, secret = figures(), figures('--secret', 's3cret')
    assert plain[0] < secret[0] < 72 * 1024 and plain[1] < secret[1]   # keys and HMAC code; a MAC per frame
