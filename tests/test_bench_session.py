"""benchmarks.bench_session runs end to end: one row per wire, each with figures."""
import re
import subprocess
import sys

from conftest import ROOT


def test_bench_session_prints_every_wire():
    out = subprocess.run([sys.executable, '-m', 'benchmarks.bench_session', '--requests', '50'], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = re.findall(r'\| (original wire|session v2|session v2 with MACs) \| [\d.]+ / [\d.]+ ms \| [\d.]+ \| (\d+) B \|',
                      out.stdout)
    assert [name for name, _ in rows] == ['original wire', 'session v2', 'session v2 with MACs'], out.stdout
    sizes = [int(size) for _, size in rows]
    assert sizes[0] == 71 and sizes[0] < sizes[1] < sizes[2]   # 71: the read request of docs/protocol.md, 63 B body, framed
