"""Round trips per second, host <-> host on loopback TCP, next to a baseline measured in the same run.

The two ends run as two programs, as two hosts do: this process is the
client, a child process of this same module the server (--far-end), for the
baseline and the protocol alike. (In one process both ends' threads would
take turns at one interpreter lock, a cost no deployment pays.)
The rows take turns, in five rounds: each rate is the median of its rounds, each
ratio the median of its rounds' ratios to the baseline's. The baseline is the
least a JSON request/response link can do: a plain socket
ping-pong that sends the JSON text plus CRC-32 with a length prefix and parses
the reply, without framing, dispatch, callbacks or threads handing over.
Between the two, the engines alone on a bare socket each (a blocking
recv(), feed(), sendall(): no threads, no waits, no admission) show what
the engine costs and what the threaded runtime around it adds; the two rows
that pair a bare engine with the threaded runtime's client or server tell
each side's share.
A second table splits the protocol's round trip: two engines back to back in
one thread (no I/O, no threads), then the same through the threaded API's
send() and receive() on an in-process link, beside the baseline's own JSON
and CRC work.
Ratios travel between machines; absolute rates do not.
"""
import argparse
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import zlib

import sp_cpython as sp
from sp_common import Engine
from sp_common.dispatch import run
from sp_cpython.protocol import host_engine, monotonic_ms

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # where -m benchmarks.bench_host starts a far end
ROUNDS = 5   # each row's round trips are split into rounds, the rows taking turns


def _recv_exact(conn, n):
    buf = b''
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise ConnectionError('closed')
        buf += chunk
    return buf


def _recv_msg(conn):
    return _parse(_recv_exact(conn, struct.unpack('>I', _recv_exact(conn, 4))[0]))


def _send_msg(conn, obj):
    body = _body(obj)
    conn.sendall(struct.pack('>I', len(body)) + body)


def _handed_over(conn, n):
    """A reader thread that takes n messages from conn and hands each to the caller through a condition, as a
    threaded client's I/O thread does; returns the caller's receive()."""
    cond = threading.Condition()
    inbox = []

    def read():
        for _ in range(n):
            msg = _recv_msg(conn)
            with cond:
                inbox.append(msg)
                cond.notify()
    threading.Thread(target=read, daemon=True).start()

    def receive():
        with cond:
            cond.wait_for(lambda: inbox)
            return inbox.pop()
    return receive


def serve_baseline():
    """The baseline's server end (--far-end baseline): echoes one client's messages until it leaves, then prints
    the CPU seconds it spent from the first timed message (data 0) on."""
    listener = socket.create_server(('127.0.0.1', 0))
    print(listener.getsockname()[1], flush=True)
    conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    start = None
    with conn:
        try:
            while True:
                msg = _recv_msg(conn)
                if msg['data'] == 0:
                    start = time.process_time()
                _send_msg(conn, {'data_id': msg['data_id'], 'service_id': 31, 'status': 0, 'data': msg['data']})
        except ConnectionError:
            pass
    print(time.process_time() - start)


def serve_protocol(codec, secret):
    """The protocol's server end (--far-end): execute echo until stdin closes, then the CPU seconds it spent
    from the first timed request (data 0) on."""
    start = []

    def echo(msg):
        if msg.get_data() == 0:
            start.append(time.process_time())
        return sp.STATUS_OKAY, msg.get_data()
    cls = sp.struct_json_protocol if codec == 'struct_json' else sp.pure_json_protocol
    server = cls(sp.tcp_server_stp('127.0.0.1', 0), secret=secret)
    server.register_callback(sp.SID_EXECUTE_REQUEST, 0, echo)
    print(server.__comm_inst__.port, flush=True)
    sys.stdin.read()
    server.close()
    print(time.process_time() - start[0])


def _bare_engine(is_client):
    """An engine as the threaded protocol configures it (its loggers too), for a bare socket."""
    return host_engine(is_client, sp.pure_json_protocol.CODEC, None, False, None, 65536, True, True, 'tcp_socket')


def serve_bare():
    """The bare engine's server end (--far-end bare): a blocking recv(), feed(), the callback, sendall(), and
    nothing else (no threads, no locks held by others, no admission), until the client leaves; then the CPU
    seconds it spent from the first timed request (data 0) on."""
    listener = socket.create_server(('127.0.0.1', 0))
    print(listener.getsockname()[1], flush=True)
    conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    start = []

    def echo(msg):
        if msg.get_data() == 0:
            start.append(time.process_time())
        return sp.STATUS_OKAY, msg.get_data()
    engine, lock = _bare_engine(False), threading.RLock()
    engine.register_callback(sp.SID_EXECUTE_REQUEST, 0, echo)
    engine.connection_made()
    with conn:
        while True:
            data = conn.recv(65536)
            if not data:
                break
            engine.feed(data)
            run(engine, lock)
            conn.sendall(engine.data_to_send())
    print(time.process_time() - start[0])


def bare(n, far='bare', cpu=None):
    """Round trips/s of an engine on a bare socket as the client, against the far end of that kind (bare:
    serve_bare; pure_json: the threaded protocol's server); cpu: see _cpu_us."""
    child, port = far_end(far)
    conn = socket.create_connection(('127.0.0.1', port))
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    engine = _bare_engine(True)
    engine.connection_made()
    while engine.wire != 'v2':   # the session settles
        conn.sendall(engine.data_to_send())
        engine.feed(conn.recv(65536))
    start, used = time.perf_counter(), time.process_time()
    for i in range(n):
        engine.send_msg(sp.SID_EXECUTE_REQUEST, 0, i)
        conn.sendall(engine.data_to_send())
        msg = engine.pop_received(sp.SID_EXECUTE_RESPONSE, 0)
        while msg is None:
            engine.feed(conn.recv(65536))
            msg = engine.pop_received(sp.SID_EXECUTE_RESPONSE, 0)
        assert msg.get_data() == i
    elapsed, used = time.perf_counter() - start, time.process_time() - used
    conn.close()
    _cpu_us(cpu, child, used, n)
    return n / elapsed


def far_end(*args):
    """A server end in a child process of this module: (the process, its port)."""
    child = subprocess.Popen([sys.executable, '-m', 'benchmarks.bench_host', '--far-end', *args], cwd=ROOT,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return child, int(child.stdout.readline())


def _cpu_us(cpu, child, client_s, n):
    """Appends to cpu (a list, or None) the CPU us per round trip of this process and of its far end, once the
    far end has ended."""
    far_s = float(child.communicate()[0])
    if cpu is not None:
        cpu.append((client_s / n * 1e6, far_s / n * 1e6))


def baseline(n, hand_over=False, cpu=None):
    """The ping-pong's round trips/s; hand_over: the client's replies come through a reader thread. cpu: see
    _cpu_us."""
    child, port = far_end('baseline')
    conn = socket.create_connection(('127.0.0.1', port))
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    receive = _handed_over(conn, n) if hand_over else (lambda: _recv_msg(conn))
    start, used = time.perf_counter(), time.process_time()
    for i in range(n):
        _send_msg(conn, {'data_id': 0, 'service_id': 30, 'status': 0, 'data': i})
        assert receive()['data'] == i
    elapsed, used = time.perf_counter() - start, time.process_time() - used
    conn.close()
    _cpu_us(cpu, child, used, n)
    return n / elapsed


def _body(obj):
    text = json.dumps(obj).encode()
    return text + zlib.crc32(text).to_bytes(4, 'big')


def _parse(body):
    if zlib.crc32(body[:-4]) != int.from_bytes(body[-4:], 'big'):
        raise ValueError('crc')
    return json.loads(body[:-4])


def baseline_cpu(n):
    """The baseline's JSON and CRC work of n round trips, without its sockets."""
    start = time.perf_counter()
    for i in range(n):
        msg = _parse(_body({'data_id': 0, 'service_id': 30, 'status': 0, 'data': i}))
        assert _parse(_body({'data_id': msg['data_id'], 'service_id': 31, 'status': 0, 'data': msg['data']}))['data'] == i
    return n / (time.perf_counter() - start)


def engines(n):
    """Round trips between a client and a server engine fed each other's bytes in one thread (session v2)."""
    client, server = Engine(True, clock=monotonic_ms), Engine(False, clock=monotonic_ms)
    server.jobs = []   # callbacks queued and run by the dispatcher, as the threaded protocol runs them
    server.register_callback(sp.SID_EXECUTE_REQUEST, 0, lambda msg: (sp.STATUS_OKAY, msg.get_data()))
    lock = threading.RLock()
    client.connection_made()
    server.connection_made()
    while client.wire != 'v2':
        server.feed(client.data_to_send())
        client.feed(server.data_to_send())
    start = time.perf_counter()
    for i in range(n):
        client.send_msg(sp.SID_EXECUTE_REQUEST, 0, i)
        server.feed(client.data_to_send())
        run(server, lock)
        client.feed(server.data_to_send())
        assert client.pop_received(sp.SID_EXECUTE_RESPONSE, 0).get_data() == i
    return n / (time.perf_counter() - start)


class _InProcessLink:
    """A comm instance whose peer is a server engine in the same thread: send() feeds it and hands its answer
    straight back, so the threaded API runs with no socket and no thread between (its own CPU work alone)."""

    IS_CLIENT = True

    def __init__(self):
        self._peer = Engine(False, clock=monotonic_ms)
        self._peer.jobs = []
        self._peer.register_callback(sp.SID_EXECUTE_REQUEST, 0, lambda msg: (sp.STATUS_OKAY, msg.get_data()))
        self._peer.connection_made()
        self._lock = threading.RLock()
        self._on_data = self._on_connect = None

    def init_channel_name(self, name):
        pass

    def register_callback(self, callback):
        self._on_data = callback

    def register_connect_callback(self, callback):
        self._on_connect = callback

    def register_disconnect_callback(self, callback):
        pass

    def is_connected(self):
        return True

    def send(self, data):
        self._peer.feed(data)
        run(self._peer, self._lock)
        answer = self._peer.data_to_send()
        if answer:
            self._on_data(answer)
        return True


def round_trips(client, n, cpu=None):
    """Round trips/s of a client's send() and receive() of execute echo, after one untimed that waits for the
    link; cpu: a list to which the CPU seconds of this process over them is appended."""
    assert client.send(sp.SID_EXECUTE_REQUEST, 0, -1, timeout=5)
    assert client.receive(sp.SID_EXECUTE_RESPONSE, 0, timeout=5).get_data() == -1
    start, used = time.perf_counter(), time.process_time()
    for i in range(n):
        client.send(sp.SID_EXECUTE_REQUEST, 0, i)
        assert client.receive(sp.SID_EXECUTE_RESPONSE, 0).get_data() == i
    elapsed = time.perf_counter() - start
    if cpu is not None:
        cpu.append(time.process_time() - used)
    return n / elapsed


def in_process(n):
    """Round trips of pure_json_protocol's send() and receive() over _InProcessLink (session v2)."""
    link = _InProcessLink()
    client = sp.pure_json_protocol(link)
    link._on_connect()
    return round_trips(client, n)


def protocol(n, codec='pure_json', secret=None, cpu=None, far=None):
    """pure_json_protocol's (or struct_json's) round trips/s over TCP, against its own server or the far end of
    kind far (bare: serve_bare); cpu: see _cpu_us."""
    child, port = far_end(far or codec, *([secret] if secret else []))
    cls = sp.struct_json_protocol if codec == 'struct_json' else sp.pure_json_protocol
    client = cls(sp.tcp_client_stp('127.0.0.1', port), secret=secret, auto_auth=bool(secret))
    used = []
    try:
        return round_trips(client, n, used)
    finally:
        client.close()
        _cpu_us(cpu, child, used[0] if used else 0.0, n)


def in_rounds(runs, n, rounds=ROUNDS):
    """{name: its rate in each round} of runs ((name, function of a number of round trips)), each run in turn with
    n // rounds round trips, rounds times: the machine's speed drifts during a run, and turns give every row the
    same share of the drift."""
    rates = {name: [] for name, _ in runs}
    for _ in range(rounds):
        for name, run in runs:
            rates[name].append(run(max(1, n // rounds)))
    return rates


def ratio(rates, base):
    """The median of the rounds' ratios of rates to base (lists from in_rounds)."""
    return statistics.median(rate / b for rate, b in zip(rates, base))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-n', type=int, default=15000, help='round trips per row, over %d rounds' % ROUNDS)
    parser.add_argument('--far-end', nargs='+', metavar=('KIND', 'SECRET'),
                        help='serve as the server end of a row: baseline, bare, pure_json or struct_json [secret]')
    args = parser.parse_args()
    if args.far_end:
        if args.far_end[0] == 'baseline':
            serve_baseline()
        elif args.far_end[0] == 'bare':
            serve_bare()
        else:
            serve_protocol(args.far_end[0], (args.far_end[1:] or [None])[0])
        return
    names = ('plain socket JSON+CRC ping-pong (baseline)', 'the same, replies handed over from a reader thread',
             'the engines alone, on a bare socket each (pure_json, session v2)',
             'the threaded client, against a bare engine as the server',
             'a bare engine as the client, against the threaded server',
             'pure_json_protocol over tcp', 'struct_json_protocol over tcp', 'pure_json_protocol over tcp, with secret')
    used = {name: [] for name in names}
    runs = [(names[0], lambda n: baseline(n, cpu=used[names[0]])),
            (names[1], lambda n: baseline(n, hand_over=True, cpu=used[names[1]])),
            (names[2], lambda n: bare(n, cpu=used[names[2]])),
            (names[3], lambda n: protocol(n, cpu=used[names[3]], far='bare')),
            (names[4], lambda n: bare(n, 'pure_json', cpu=used[names[4]])),
            (names[5], lambda n: protocol(n, cpu=used[names[5]])),
            (names[6], lambda n: protocol(n, 'struct_json', cpu=used[names[6]])),
            (names[7], lambda n: protocol(n, secret='s', cpu=used[names[7]]))]
    rates = in_rounds(runs, args.n)
    base = rates[names[0]]
    print('| link | round trips/s | vs baseline |')
    print('|---|---:|---:|')
    for name in names:
        print('| %s | %.0f | %.2f |' % (name, statistics.median(rates[name]), ratio(rates[name], base)))
    print()
    print('| CPU per round trip (median of the rounds) | client process, us | server process, us |')
    print('|---|---:|---:|')
    for name in names:
        print('| %s | %.1f | %.1f |' % (name, statistics.median(c for c, _ in used[name]),
                                       statistics.median(f for _, f in used[name])))
    cpu = baseline_cpu(args.n)
    print()
    print('| work of a round trip, no I/O | round trips/s | vs baseline |')
    print('|---|---:|---:|')
    print('| the baseline\'s JSON + CRC alone | %.0f | 1.00 |' % cpu)
    rate = engines(args.n)
    print('| two engines back to back (pure_json, session v2, dispatcher) | %.0f | %.2f |' % (rate, rate / cpu))
    api = in_process(args.n)
    print('| the same through the threaded API, on an in-process link | %.0f | %.2f |' % (api, api / cpu))
    print()
    print('The threaded API\'s own CPU per round trip (send() and receive() around the engines): %.1f us'
          % (1e6 / api - 1e6 / rate))


if __name__ == '__main__':
    main()
