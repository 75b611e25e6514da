"""Instructions per round trip, counted by valgrind's callgrind: figures that do not move with the machine's load.

    python3 -m benchmarks.bench_instructions [-n 1000]

- the virtual board (boards/unix/main.py, from .mpy, as bench_link starts it)
  answering execute echo requests over its pty, beside benchmarks/echo_board.py echoing the same
  request frame raw: the unix port's instructions per request; then the same
  board with a heap four times as large (BIG_HEAP), which shows what
  MicroPython's allocator costs (docs/benchmarks.md); and where the
  board's instructions go, by the interpreter's mechanism (MECHANISMS: its
  C functions, as callgrind_annotate names them);
- host <-> host: benchmarks.bench_host's protocol() beside its plain-socket
  baseline, every thread of both processes (the client and its far end),
  and its bare(): the engines alone on a bare socket each, without the
  threaded runtime; then each of the three split by process.

Each figure is the count with SETUP + n round trips less the count with SETUP,
over n: start-up and set-up fall out. The counts are of user space only (no
system calls, no waits), so they say what the code costs, not how long a
round trip takes. Needs valgrind (Debian's valgrind package); about 4
minutes.
"""
import argparse
import os
import subprocess
import sys
import tempfile

from benchmarks import bench_link
from sp_tool.deploy import compile_mpy
from sp_tool.files import device_files
from tools.mosquitto import free_port
from tools.unix_board import ROOT, UnixBoard

SETUP = 200   # round trips in the run whose count is taken away
BIG_HEAP = '576k'   # four times bench_link's


# The unix port's C functions (callgrind_annotate's "file:function"), grouped by what they do for a request;
# the first group whose pattern is in the name takes a function, the rest is "everything else".
MECHANISMS = (
    ('allocating and freeing memory', ('gc.c:gc_alloc', 'gc.c:gc_free', 'gc.c:gc_realloc', 'malloc.c:m_')),
    ('collecting garbage', ('gc.c:',)),
    ('looking up names, attributes and dict keys', ('map.c:', 'objtype.c:mp_obj_class_lookup', 'objtype.c:mp_obj_instance_attr',
                                                    'runtime.c:mp_load_')),
    ('interning strings (every new str is looked up first)', ('qstr.c:',)),
    ('running bytecode', ('vm.c:',)),
    ('setting up calls', ('objfun.c:', 'bc.c:', 'runtime.c:mp_call', 'argcheck.c:', 'nlr')),
    ('scanning and copying bytes', ('memcmp', 'memmove', 'memcpy', 'memset', 'objstr.c:find_subbytes', 'objstr.c:str_count',
                                    'objstr.c:str_replace')),
    ('CRC-32 and JSON', ('crc32', 'modjson.c:', 'objstringio.c:')),
    ('thread state and locks (the unix port has threads)', ('pthread', 'mpthreadport.c:')),
)


def callgrind(out):
    """The command that runs a program under callgrind, its count into the file out."""
    return ['valgrind', '-q', '--tool=callgrind', '--callgrind-out-file=' + out]


def total(out):
    """The instructions callgrind counted into the file out."""
    with open(out) as f:
        for line in f:
            if line.startswith('totals:') or line.startswith('summary:'):
                return int(line.split()[1])
    raise RuntimeError('no count in ' + out)


def mechanisms(out):
    """{mechanism: instructions} of the run callgrind counted into the file out, and its total."""
    text = subprocess.run(['callgrind_annotate', '--inclusive=no', '--threshold=100', out], check=True,
                          capture_output=True, text=True).stdout
    costs = {'total': total(out)}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3 or not parts[0].replace(',', '').isdigit() or 'PROGRAM' in line:
            continue
        name = next((group for group, patterns in MECHANISMS if any(p in line for p in patterns)), 'everything else')
        costs[name] = costs.get(name, 0) + int(parts[0].replace(',', ''))
    costs['everything else'] = costs['total'] - sum(v for k, v in costs.items() if k not in ('total', 'everything else'))
    return costs


def is_far_end(out):
    """Whether the file out counts a far end (bench_host --far-end), not the client that started it."""
    with open(out) as f:
        for line in f:
            if line.startswith('cmd:'):
                return '--far-end' in line
    raise RuntimeError('no command in ' + out)


def board_count(mpy_dir, out, n, heap=bench_link.HEAP):
    """Instructions of the virtual board over n echo requests on its pty (and its start)."""
    board = UnixBoard(heap, mpy_dir, prefix=callgrind(out), tcp_port=free_port(),
                      max_frame=bench_link.MAX_FRAME)   # (as bench_link's: its TCP server idle beside the console)
    once = bench_link.protocol_echo(bench_link.Fd(board.master), 'x')
    for _ in range(n):
        once()
    os.close(board.master)   # the end of its input: the board exits, and callgrind writes its count
    board.proc.wait(120)
    return mechanisms(out)


def echo_count(out, n):
    """Instructions of the raw echo over n echoes of the request frame."""
    proc, master, _ = bench_link.start_echo(callgrind(out))
    once = bench_link.raw_echo(bench_link.Fd(master), bench_link.REQUEST)
    for _ in range(n):
        once()
    os.close(master)
    proc.wait(120)
    return total(out)


def host_count(function, n):
    """Instructions of benchmarks.bench_host's function(n): (its process, the far end it starts)."""
    code = 'from benchmarks.bench_host import %s; %s(%d)' % (function, function, n)
    with tempfile.TemporaryDirectory() as outs:
        subprocess.run(callgrind(os.path.join(outs, 'callgrind.%p')) + ['--trace-children=yes', sys.executable,
                                                                         '-c', code],
                       cwd=ROOT, check=True, capture_output=True,
                       env=dict(os.environ, PYTHONPATH=ROOT))   # (PYTHONHASHSEED set by main: the same start-up)
        counts = [0, 0]
        for name in os.listdir(outs):
            counts[is_far_end(os.path.join(outs, name))] += total(os.path.join(outs, name))
        return tuple(counts)


def per_round_trip(count, n):
    """(count(SETUP + n) - count(SETUP)) / n; of each of its figures where count gives a tuple."""
    more, less = count(SETUP + n), count(SETUP)
    if isinstance(more, dict):
        return {key: (more[key] - less.get(key, 0)) / n for key in more}
    if isinstance(more, tuple):
        return tuple((m - l) / n for m, l in zip(more, less))
    return (more - less) / n


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-n', type=int, default=1000, help='round trips counted')
    args = parser.parse_args()
    os.environ['PYTHONHASHSEED'] = '0'   # the same start-up in every run (the micropython command starts in CPython)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, 'callgrind.out')
        mpy_dir = os.path.join(tmp, 'mpy')
        compile_mpy(device_files('unix'), mpy_dir, where=mpy_dir + '/')
        costs = per_round_trip(lambda n: board_count(mpy_dir, out, n), args.n)
        big = per_round_trip(lambda n: board_count(mpy_dir, out, n, BIG_HEAP), args.n)['total']
        echo = per_round_trip(lambda n: echo_count(out, n), args.n)
        host = per_round_trip(lambda n: host_count('protocol', n), args.n)
        bare = per_round_trip(lambda n: host_count('bare', n), args.n)
        base = per_round_trip(lambda n: host_count('baseline', n), args.n)
    print('| instructions per round trip | sp-dual | baseline | ratio |')
    print('|---|---:|---:|---:|')
    board = costs.pop('total')
    print('| the virtual board, a request over the pty (vs raw echo) | %.0f | %.0f | %.2f |' % (board, echo, echo / board))
    print('| the same, with a %s heap instead of %s | %.0f | %.0f | %.2f |' % (BIG_HEAP, bench_link.HEAP, big, echo,
                                                                             echo / big))
    for name, ends in (('host <-> host over TCP, both ends', host),
                       ('host <-> host, the engines alone on a bare socket each, both ends', bare)):
        print('| %s (vs plain-socket ping-pong) | %.0f | %.0f | %.2f |' % (name, sum(ends), sum(base),
                                                                          sum(base) / sum(ends)))
    print()
    print('| instructions per round trip, by process | client | server |')
    print('|---|---:|---:|')
    for name, ends in (('pure_json_protocol over TCP', host), ('the engines alone, on a bare socket each', bare),
                       ('plain socket JSON+CRC ping-pong (baseline)', base)):
        print('| %s | %.0f | %.0f |' % (name, ends[0], ends[1]))
    print()
    print('| where a request on the virtual board goes | instructions | share |')
    print('|---|---:|---:|')
    for name, count in sorted(costs.items(), key=lambda item: -item[1]):
        print('| %s | %.0f | %.0f %% |' % (name, count, 100 * count / board))
    return 0


if __name__ == '__main__':
    sys.exit(main())
