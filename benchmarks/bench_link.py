"""One table: the link's figures, each beside a baseline measured in the same run.

- round trips host <-> virtual board (boards/unix/main.py on a raw pty and on
  loopback TCP), median and p99, beside the same request frame echoed raw by
  the same interpreter on the same kind of link (benchmarks/echo_board.py: the
  floor), a request and an echo in turns; the host end is the sans-IO engine,
  so the figures are the device's and the link's; one more row: the sp_cpython
  client over TCP, as a user has it;
- bulk: a 4 KiB payload echoed, payload bytes per second, beside the raw echo
  of the same frame bytes;
- codec messages per second on CPython and on MicroPython (benchmarks/codec_speed.py)
  beside a naive json + crc32 + length-prefix codec;
- idle board CPU (utime + stime from /proc) beside the bare interpreter's;
- host <-> host round trips over TCP beside a plain-socket ping-pong (bench_host);
- bytes on the wire per message, the original wire and session v2.

    python3 -m benchmarks.bench_link [--quick]

--quick runs every row with few samples and a 1 s idle (for the test that keeps it working).
"""
import argparse
import os
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tty

import sp_cpython as sp
from benchmarks import bench_host
from benchmarks.stats import cpu_seconds, median_p99
from sp_common import Engine, frame, pure_json, struct_json
from sp_tool.deploy import compile_mpy
from sp_tool.files import device_files
from sp_tool.virtual_board import micropython_command
from tools.mosquitto import free_port
from tools.unix_board import ROOT, UnixBoard

HEAP = '144k'
MAX_FRAME = 6144
BULK = ''.join(chr(32 + i % 90) for i in range(4096))
REQUEST = frame(pure_json.encode(sp.SID_EXECUTE_REQUEST, 0, 0, 'x'))   # the request the raw echo echoes


class Fd:
    """A pty master or a socket as one read/write pair that waits on data."""

    def __init__(self, fd=None, sock=None):
        self.fd = fd
        self.sock = sock

    def write(self, data):
        if self.sock is not None:
            self.sock.sendall(data)
            return
        view = memoryview(data)
        while view:
            select.select([], [self.fd], [], 5)
            view = view[os.write(self.fd, view):]

    def read(self):
        if not select.select([self.sock or self.fd], [], [], 5)[0]:
            raise RuntimeError('no answer within 5 s')
        return self.sock.recv(65536) if self.sock is not None else os.read(self.fd, 65536)


def connect(port):
    deadline = time.monotonic() + 5
    while True:
        try:
            sock = socket.create_connection(('127.0.0.1', port), timeout=5)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def raw_echo(link, wire):
    """A function that times one echo of wire on link, in seconds."""
    def once():
        start = time.perf_counter()
        link.write(wire)
        got = 0
        while got < len(wire):
            got += len(link.read())
        return time.perf_counter() - start
    return once


def protocol_echo(link, data):
    """A function that times one execute echo request of data answered, from a host engine on link (its session
    set up here first)."""
    engine = Engine(True, channel_name='bench')
    engine.connection_made()
    link.write(engine.data_to_send())
    while not (engine.counters['rx_messages'] and engine.ready()):   # the channel name and the session answered
        engine.feed(link.read())

    def once():
        start = time.perf_counter()
        engine.send_msg(sp.SID_EXECUTE_REQUEST, 0, data)
        link.write(engine.data_to_send())
        while engine.pop_received(sp.SID_EXECUTE_RESPONSE, 0) is None:
            engine.feed(link.read())
        return time.perf_counter() - start
    return once


def user_echo(prot):
    """The same through sp_cpython's TCP client: send() then receive(), as a user calls them."""
    prot.add_data((sp.SID_EXECUTE_REQUEST, sp.SID_EXECUTE_RESPONSE), 0, 'echo')
    prot.send(sp.SID_EXECUTE_REQUEST, 0, 'x', timeout=5)
    assert prot.receive(sp.SID_EXECUTE_RESPONSE, 0, timeout=5) is not None

    def once():
        start = time.perf_counter()
        prot.send(sp.SID_EXECUTE_REQUEST, 0, 'x')
        assert prot.receive(sp.SID_EXECUTE_RESPONSE, 0, timeout=5) is not None
        return time.perf_counter() - start
    return once


def paired(ours, floor, n):
    """(ours' seconds, floor's seconds), n of each, taken in turns: the machine's speed drifts during a run, and
    turns give both the same share of the drift."""
    times = ([], [])
    for _ in range(n):
        times[0].append(ours())
        times[1].append(floor())
    return times


def start_echo(prefix=()):
    """benchmarks/echo_board.py on a raw pty (under prefix, a command such as valgrind): (process, master, TCP port)."""
    port = free_port()
    master, slave = os.openpty()
    tty.setraw(slave)
    proc = subprocess.Popen([*prefix, micropython_command(), '-X', 'heapsize=' + HEAP, 'benchmarks/echo_board.py',
                             str(port)],
                            stdin=slave, stdout=slave, cwd=ROOT)
    os.close(slave)
    return proc, master, port


def idle_cpu(pids, seconds):
    """Percent of one core each process used over the same seconds."""
    before = [cpu_seconds(pid) for pid in pids]
    time.sleep(seconds)
    return [100 * (cpu_seconds(pid) - b) / seconds for pid, b in zip(pids, before)]


def codec_rates(mpy_dir, n):
    """(ours, naive) messages/s on CPython and on MicroPython."""
    script = os.path.join(ROOT, 'benchmarks', 'codec_speed.py')
    rates = {}
    for name, cmd, env in (('CPython', [sys.executable, script, str(n)], dict(os.environ, PYTHONPATH=ROOT)),
                           ('MicroPython', [micropython_command(), '-X', 'heapsize=' + HEAP, script, str(n // 4)],
                            dict(os.environ, MICROPYPATH=mpy_dir))):
        out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
        rates[name] = (int(out[0]), int(out[1]))
    return rates


def wire_sizes():
    """Bytes on the wire per message, the mean of a read asc_time request and its answer, per codec."""
    msgs = ((sp.SID_READ_REQUEST, 0, 0, None), (sp.SID_READ_RESPONSE, 0, 0, 'Sun Feb  2 00:00:44 2025'))
    rows = []
    for codec in (pure_json, struct_json):
        original = sum(len(frame(codec.encode(*m))) for m in msgs) / 2
        v2 = sum(len(frame(codec.encode(*m, 7, 0 if m[0] % 2 == 0 else 7))) for m in msgs) / 2
        rows.append(('bytes on the wire per message, %s: session v2 (no MAC) / original' % codec.name,
                     '%.1f B' % v2, '%.1f B' % original, '%.2f' % (v2 / original)))
    return rows


def rt_rows(name, ours, floor):
    (om, op), (fm, fp) = (median_p99([t * 1000 for t in times]) for times in (ours, floor))
    return ('round trips %s, median / p99' % name, '%.3f / %.3f ms' % (om, op), '%.3f / %.3f ms' % (fm, fp),
            '%.2f' % (fm / om))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--quick', action='store_true', help='few samples, 1 s idle: checks that every row works')
    args = ap.parse_args(argv)
    n, bulk_n, idle_s, codec_n = (50, 5, 1, 400) if args.quick else (2000, 100, 10, 20000)
    bulk = frame(pure_json.encode(sp.SID_EXECUTE_REQUEST, 0, 0, BULK))
    rows = []
    with tempfile.TemporaryDirectory() as mpy_dir:
        compile_mpy(device_files('unix'), mpy_dir, where=mpy_dir + '/')
        echo, echo_pty, echo_port = start_echo()
        port = free_port()
        board = UnixBoard(HEAP, mpy_dir, tcp_port=port, max_frame=MAX_FRAME)
        bare = subprocess.Popen([micropython_command(), '-c', 'import select, sys\np = select.poll()\n'
                                 'p.register(sys.stdin, select.POLLIN)\np.poll(-1)'], stdin=subprocess.PIPE)
        try:
            pty, raw_pty = Fd(board.master), Fd(echo_pty)
            tcp, raw_tcp = Fd(sock=connect(port)), Fd(sock=connect(echo_port))
            rows.append(rt_rows('over the pty', *paired(protocol_echo(pty, 'x'), raw_echo(raw_pty, REQUEST), n)))
            rows.append(rt_rows('over TCP', *paired(protocol_echo(tcp, 'x'), raw_echo(raw_tcp, REQUEST), n)))
            tcp.sock.close()
            prot = sp.pure_json_protocol(sp.tcp_client_stp('127.0.0.1', port))
            try:
                rows.append(rt_rows('over TCP, sp_cpython client', *paired(user_echo(prot), raw_echo(raw_tcp, REQUEST),
                                                                           n)))
            finally:
                prot.close()
            for name, link, raw in (('pty', Fd(board.master), raw_pty), ('TCP', Fd(sock=connect(port)), raw_tcp)):
                ours, floor = (len(BULK) / statistics.median(times)
                               for times in paired(protocol_echo(link, BULK), raw_echo(raw, bulk), bulk_n))
                rows.append(('4 KiB payload echoed over the %s, payload bytes/s' % name, '%.0f' % ours, '%.0f' % floor,
                             '%.2f' % (ours / floor)))
            time.sleep(0.2)
            board_cpu, bare_cpu = idle_cpu((board.proc.pid, bare.pid), idle_s)
            rows.append(('idle board CPU over %d s, %% of a core' % idle_s, '%.2f %%' % board_cpu, '%.2f %%' % bare_cpu,
                         '%+.2f points' % (board_cpu - bare_cpu)))
        finally:
            bare.kill()
            bare.wait()
            echo.kill()
            echo.wait()
            os.close(echo_pty)
            board.stop()
        for name, (ours, naive) in codec_rates(mpy_dir, codec_n).items():
            rows.append(('codec messages/s on %s (pure_json + STP vs naive)' % name, '%d' % ours, '%d' % naive,
                         '%.2f' % (ours / naive)))
    rates = bench_host.in_rounds([('base', bench_host.baseline), ('host', bench_host.protocol)], n)
    rows.append(('host <-> host round trips/s over TCP (vs plain-socket ping-pong)',
                 '%.0f' % statistics.median(rates['host']), '%.0f' % statistics.median(rates['base']),
                 '%.2f' % bench_host.ratio(rates['host'], rates['base'])))
    rows += wire_sizes()
    print('| figure | sp-dual | baseline | ratio |')
    print('|---|---:|---:|---:|')
    for row in rows:
        print('| %s | %s | %s | %s |' % row)
    return 0


if __name__ == '__main__':
    sys.exit(main())
