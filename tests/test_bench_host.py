"""benchmarks.bench_host with few round trips prints every row of its tables (the figures themselves are not
checked)."""
import re
import subprocess
import sys

from conftest import ROOT

ROWS = ('plain socket JSON+CRC ping-pong (baseline)', 'the same, replies handed over from a reader thread',
        'the engines alone, on a bare socket each (pure_json, session v2)',
        'the threaded client, against a bare engine as the server',
        'a bare engine as the client, against the threaded server',
        'pure_json_protocol over tcp', 'struct_json_protocol over tcp', 'pure_json_protocol over tcp, with secret',
        "the baseline's JSON + CRC alone", 'two engines back to back (pure_json, session v2, dispatcher)',
        'the same through the threaded API, on an in-process link')


def test_bench_host_prints_every_row():
    out = subprocess.run([sys.executable, '-m', 'benchmarks.bench_host', '-n', '200'], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    names = [match.group(1) for match in re.finditer(r'^\| (.+) \| \d+ \| \d+\.\d\d \|$', out.stdout, re.M)]
    assert names == list(ROWS), out.stdout
    assert re.search(r"The threaded API's own CPU per round trip .*: -?\d+\.\d us", out.stdout), out.stdout
    cpu = re.findall(r'^\| (.+) \| (\d+\.\d) \| (\d+\.\d) \|$', out.stdout, re.M)
    assert [name for name, _, _ in cpu] == list(ROWS[:8]), out.stdout
    assert all(float(client) > 0 and float(server) > 0 for _, client, server in cpu), out.stdout
