"""The device loop sleeps until bytes arrive: counted in loop rounds on the real MicroPython unix port, not timed.

The device is a script on the board's two streams (stdio on a raw pty and a
TCP server on loopback) with the demo services and one more: execute 30/9
answers the count of loop rounds so far (and of an asyncio ticker's ticks), so
the host reads how often the loop went round while it sent requests or waited.
A loop that slept 2 ms between polls went round about 500 times a second idle.
"""
import os
import socket
import subprocess
import time
import tty

import pytest

import sp_common as sp
from sp_common import frame, pure_json
from conftest import ROOT
from test_device_runtime import TIMEOUT, Host, PtyLink, SockLink, free_port

COUNTED = 'sp.SID_EXECUTE_REQUEST, 9, lambda msg: (sp.STATUS_OKAY, [rounds[0], ticks[0]])'

SERVE = '''
import sys
import sp_micropython as sp
from sp_micropython.demo import add_demo_services

rounds = [0]
ticks = [0]
prots = [sp.pure_json_protocol(sp.StdioStream(), max_frame=1024),
         sp.pure_json_protocol(sp.TcpServerStream(int(sys.argv[1]), '127.0.0.1'), max_frame=1024)]
for prot in prots:
    add_demo_services(prot)
    prot.register_callback(%s)

def until():
    rounds[0] += 1
    return not prots[0].is_connected()

tcp_poll = prots[1].poll

def tcp_counted():   # the TCP link's steps, in ticks
    ticks[0] += 1
    return tcp_poll()

prots[1].poll = tcp_counted
sp.serve(*prots, until=until)
''' % COUNTED

# The protocol task beside a ticker task that wants to run every 10 ms; rounds counts the task's polls.
TASKS = '''
import asyncio
import sys
import sp_micropython as sp
from sp_micropython.demo import add_demo_services

rounds = [0]
ticks = [0]
prot = sp.pure_json_protocol(sp.StdioStream(), max_frame=1024)
add_demo_services(prot)
prot.register_callback(%s)
poll = prot.poll

def counted():
    rounds[0] += 1
    return poll()

prot.poll = counted

async def ticker():
    while True:
        ticks[0] += 1
        await asyncio.sleep_ms(10)

async def main():
    asyncio.create_task(ticker())
    await prot.run()

asyncio.run(main())
''' % COUNTED


class Script:
    """A MicroPython script on a raw pty (its stdin/stdout) and a free TCP port (its argv[1])."""

    def __init__(self, mpy_dir, tmp_path, code):
        path = tmp_path / 'device.py'
        path.write_text(code)
        self.port = free_port()
        master, slave = os.openpty()
        tty.setraw(slave)
        self.proc = subprocess.Popen(['micropython', '-X', 'heapsize=144k', str(path), str(self.port)], stdin=slave,
                                     stdout=slave, stderr=subprocess.PIPE, cwd=ROOT,
                                     env=dict(os.environ, MICROPYPATH=mpy_dir + ':.frozen'))   # .frozen: asyncio
        os.close(slave)
        self.master = master
        self.pty = Host(PtyLink(master))
        self.pty.connect()

    def counts(self, host=None):
        """(loop rounds, ticks) so far; asking costs a round or two itself."""
        return (host or self.pty).request(sp.SID_EXECUTE_REQUEST, 9).get_data()

    def stop(self):
        self.proc.kill()
        err = self.proc.communicate(timeout=TIMEOUT)[1].decode(errors='replace')
        os.close(self.master)
        return err


@pytest.fixture
def script(mpy_dir, tmp_path):
    started = []

    def start(code):
        started.append(Script(mpy_dir, tmp_path, code))
        return started[-1]
    yield start
    for s in started:
        err = s.stop()
        assert 'Traceback' not in err, err


def run_script(script, mpy_dir, tmp_path, *options, argv=()):
    """script run on the MicroPython unix port (the device code as .mpy), options before it, argv after; its
    output, once it exited 0."""
    path = tmp_path / 'script.py'
    path.write_text(script)
    proc = subprocess.run(['micropython', *options, str(path), *argv], cwd=ROOT,
                          env=dict(os.environ, MICROPYPATH=mpy_dir), capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout

def test_idle_loop_sleeps_and_requests_wake_it(script):
    dev = script(SERVE)
    sock = socket.create_connection(('127.0.0.1', dev.port), timeout=TIMEOUT)
    try:
        tcp = Host(SockLink(sock))
        tcp.connect()
        before = dev.counts()[0]
        time.sleep(1)
        assert dev.counts()[0] - before <= 4   # a second idle: no rounds but those of the asking

        before = dev.counts()[0]
        for i in range(20):
            assert dev.pty.request(sp.SID_EXECUTE_REQUEST, 0, i).get_data() == i
            assert tcp.request(sp.SID_EXECUTE_REQUEST, 0, -i).get_data() == -i
        # each answer came from the round its request woke, and no round after it looked for more in vain
        assert dev.counts()[0] - before <= 40 + 6
    finally:
        sock.close()


# The console's writes counted: the stream writes through _out, wrapped here.
WRITES = '''
import sp_micropython as sp
from sp_micropython.demo import add_demo_services

class Counted:
    def __init__(self, out):
        self.out = out
        self.writes = 0

    def write(self, data):
        self.writes += 1
        return self.out.write(data)

stream = sp.StdioStream()
stream._out = Counted(stream._out)
prot = sp.pure_json_protocol(stream, max_frame=1024)
add_demo_services(prot)
prot.register_callback(sp.SID_EXECUTE_REQUEST, 9, lambda msg: (sp.STATUS_OKAY, [stream._out.writes, 0]))
sp.serve(prot)
'''


def test_an_answer_of_up_to_256_bytes_leaves_the_console_in_one_write(script):
    """A pty that has room has it for 256 bytes: an answer that size goes in one write, not in pieces."""
    dev = script(WRITES)
    data = 'x' * 150   # answer frames of about 230 bytes
    before = dev.counts()[0]
    for i in range(10):
        assert dev.pty.request(sp.SID_EXECUTE_REQUEST, 0, data).get_data() == data
    assert dev.counts()[0] - before == 10 + 1   # (the count's own answer, too)


def test_a_request_on_one_link_steps_no_other(script):
    """The loop steps the links its wake was for: requests over the pty leave the idle TCP server unstepped (it was
    stepped each time, a look for a newcomer and a read of nothing)."""
    dev = script(SERVE)
    before = dev.counts()[1]
    for i in range(10):
        assert dev.pty.request(sp.SID_EXECUTE_REQUEST, 0, i).get_data() == i
    assert dev.counts()[1] == before
    sock = socket.create_connection(('127.0.0.1', dev.port), timeout=TIMEOUT)
    try:   # and the TCP link, woken, serves
        tcp = Host(SockLink(sock))
        tcp.connect()
        assert tcp.request(sp.SID_EXECUTE_REQUEST, 0, 'tcp').get_data() == 'tcp'
        assert dev.counts()[1] > before
    finally:
        sock.close()


def test_asyncio_task_idles_without_taking_the_other_tasks_time(script):
    dev = script(TASKS)
    rounds, ticks = dev.counts()
    start = time.monotonic()
    time.sleep(1)
    rounds2, ticks2 = dev.counts()
    assert rounds2 - rounds <= 6                            # the protocol task slept
    assert ticks2 - ticks >= 0.5 * (time.monotonic() - start) * 100   # the ticker kept (most of) its 10 ms schedule

    start = time.monotonic()
    n = 0
    while time.monotonic() - start < 1:
        assert dev.pty.request(sp.SID_EXECUTE_REQUEST, 0, n).get_data() == n
        n += 1
    rounds3, ticks3 = dev.counts()
    assert n > 50
    assert ticks3 - ticks2 >= 0.5 * (time.monotonic() - start) * 100  # and kept it while the protocol served


FEED = '''
import micropython
from sp_common import Engine, frame, pure_json

engine = Engine(False, max_frame=1024)
wire = frame(pure_json.encode(30, 0, 0, 'a:b' * 20))   # escapes and all
engine.feed(wire)   # one whole frame first: what the engine sets up once
one = bytearray(1)
micropython.heap_lock()
for i in range(len(wire) - 1):
    one[0] = wire[i]
    engine.feed(one)
micropython.heap_unlock()
print(engine.counters['rx_messages'], engine.deframer._len)
'''


def test_feeding_a_partial_frame_byte_by_byte_allocates_nothing(mpy_dir, tmp_path):
    """As the qemu board's UART hands bytes over: under heap_lock any allocation would raise MemoryError."""
    out = run_script(FEED, mpy_dir, tmp_path)
    assert out.split() == ['1', str(len(pure_json.encode(30, 0, 0, 'a:b' * 20)))]   # all of the body, waiting for ':>'


SURROGATES = '''
import gc
from binascii import crc32
from sp_common import Engine
from sp_micropython.demo import add_demo_services

engine = Engine(False, max_frame=8192, max_buffered=16, session_v2=False)   # as a board serves
add_demo_services(engine)
engine.connection_made()
pair = '\\\\ud83d\\\\ude00'   # one emoji as CPython's json.dumps writes it: an escaped surrogate pair
text = ('{"data_id": 0, "service_id": 30, "status": 0, "data": "' + pair * 500 + '"}').encode()
gc.collect()
engine._receive(text + crc32(text).to_bytes(4, 'big'))   # execute 0: the echo
print(engine.counters['rx_messages'], engine.counters['format_errors'], len(engine.data_to_send()))
'''


def test_text_beyond_the_bmp_is_parsed_in_a_heap_that_holds_its_frame(mpy_dir, tmp_path):
    """A 6 KB frame of emoji in a 256 KiB heap: joining its 500 surrogate pairs took a list of pieces scattered
    over the heap and one more block of the whole size, and the frame was dropped with MemoryError."""
    out = run_script(SURROGATES, mpy_dir, tmp_path, '-X', 'heapsize=256k')
    assert out.split() == ['1', '0', str(len(frame(pure_json.encode(31, 0, 0, chr(0x1F600) * 500))))]


WAIT_WITHOUT_HEAP = '''
import select, sys
import micropython
from sp_micropython.protocol import Stream, Waiter, pure_json_protocol


class Quiet(Stream):
    def readinto(self, buf):
        return 0


stream = Quiet()
waiter = Waiter((pure_json_protocol(stream),))
waiter.wait(0)
stream.pollables = ((sys.stdin, select.POLLIN),)   # changed (a connect, say): the next wait registers anew
micropython.heap_lock()   # no byte of heap for it
try:
    waiter.wait(0)
finally:
    micropython.heap_unlock()
waiter.wait(0)
print('serving')
'''


def test_a_loop_whose_heap_has_no_room_to_watch_its_streams_anew_serves_on(mpy_dir, tmp_path):
    """serve()'s wait registers the streams anew when they change: a MemoryError there ended the board's loop."""
    assert run_script(WAIT_WITHOUT_HEAP, mpy_dir, tmp_path) == 'serving\n'


STEP_WITHOUT_HEAP = '''
import time
from sp_common import frame, pure_json
from sp_micropython.demo import add_demo_services
from sp_micropython.protocol import Stream, pure_json_protocol, serve


class Once(Stream):
    \'\'\'Hands over one request; nothing wakes the loop but its wait_ms(), a second.\'\'\'
    request = frame(pure_json.encode(30, 0, 0, 'hello'))
    written = b''

    def __init__(self):
        Stream.__init__(self)
        self._set(True)

    def readinto(self, buf):
        n = len(self.request)
        buf[:n] = self.request
        self.request = b''
        return n

    def write(self, data):
        self.written += data

    def wait_ms(self):
        return 1000


stream = Once()
prot = pure_json_protocol(stream, session_v2=False)
add_demo_services(prot)
ticks = [0]
tick = prot.tick


def short_of_heap():   # in the request's step: its answer is queued, and the heap has no room
    ticks[0] += 1
    if ticks[0] == 1:
        raise MemoryError
    tick()


prot.tick = short_of_heap
start = time.ticks_ms()
serve(prot, until=lambda: b'hello' in stream.written or time.ticks_diff(time.ticks_ms(), start) > 3000)
print(b'hello' in stream.written, time.ticks_diff(time.ticks_ms(), start))
'''


def test_a_step_short_of_heap_leaves_its_answer_for_the_next_step_at_once(mpy_dir, tmp_path):
    """The loop slept right after the step (nothing left to wake it but the stream's next second, or a host's
    next request): the answer that step had queued waited with it."""
    out = run_script(STEP_WITHOUT_HEAP, mpy_dir, tmp_path)
    answered, ms = out.split()
    assert answered == 'True' and int(ms) < 500, out


# Two requests in one read; the stream takes the first answer and then has no heap left (as a socket stream that
# queued it and then could not poll for room): that answer went, and goes once; the second goes at the next step.
WRITE_WITHOUT_HEAP = STEP_WITHOUT_HEAP.split('ticks = [0]')[0] + '''
stream.request = frame(pure_json.encode(30, 0, 0, 'hello')) + frame(pure_json.encode(30, 0, 0, 'world'))
short = [True]


def write_short_of_heap(data):
    stream.written += data
    if short[0]:
        short[0] = False
        raise MemoryError


stream.write = write_short_of_heap
start = time.ticks_ms()
serve(prot, until=lambda: b'world' in stream.written or time.ticks_diff(time.ticks_ms(), start) > 3000)
print(stream.written.count(b'hello'), b'world' in stream.written, time.ticks_diff(time.ticks_ms(), start))
'''


def test_a_write_short_of_heap_sends_no_frame_twice_and_none_behind_it_waits(mpy_dir, tmp_path):
    out = run_script(WRITE_WITHOUT_HEAP, mpy_dir, tmp_path)
    hellos, world, ms = out.split()
    assert (hellos, world) == ('1', 'True') and int(ms) < 500, out


# A TCP server board driven poll by poll, and clients of it on real sockets: sys.argv[1] is the port,
# SERVER_OPTIONS the protocol's keyword arguments.
TCP_SERVER = '''
import errno, socket, sys, time
from sp_common import Deframer, frame, pure_json
from sp_micropython.protocol import pure_json_protocol
from sp_micropython.tcp_server import TcpServerStream

port = int(sys.argv[1])
prot = pure_json_protocol(TcpServerStream(port, '127.0.0.1'), **SERVER_OPTIONS)
addr = socket.getaddrinfo('127.0.0.1', port)[0][-1]


def polls():
    for _ in range(5):
        prot.poll()


def client():
    sock = socket.socket()
    sock.connect(addr)
    return sock


def heard(sock, fields):
    """(the messages sock has been sent, their first fields; whether the board closed it)"""
    time.sleep_ms(50)
    sock.setblocking(False)
    try:
        data = sock.read(4096)
    except OSError as err:   # closed with bytes of ours unread: reset
        data = b'' if err.errno == errno.ECONNRESET else None
    sock.setblocking(True)
    return [pure_json.decode(body)[:fields] for body in Deframer(1024).feed(data or b'')], data == b''
'''


def run_tcp_server(script, options, mpy_dir, tmp_path):
    """script after TCP_SERVER on the MicroPython unix port; its output lines."""
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    return run_script('SERVER_OPTIONS = %s\n%s\n%s' % (options, TCP_SERVER, script), mpy_dir, tmp_path,
                      argv=(str(port),)).splitlines()


SWAP = '''
hostile = client()
polls()
hostile.write(frame(pure_json.encode(2, 0, 0, 'not an offer')) + frame(pure_json.encode(10, 0, 0, None)))
newcomer = client()
time.sleep_ms(300)
polls()   # the newcomer replaces their unproven sender, stalled past its patience: no hostile byte is answered
print(heard(hostile, 3)[1], heard(newcomer, 3)[0])
newcomer.write(frame(pure_json.encode(8, 0, 0, 'genuine')))
polls()
print(heard(newcomer, 3)[0])
'''


def test_answers_to_a_replaced_client_never_reach_the_newcomer(mpy_dir, tmp_path):
    """A peer that only connects must not speak into the next client's connection (the engine's outbox)."""
    out = run_tcp_server(SWAP, "{'secret': 's3cret'}", mpy_dir, tmp_path)
    assert out == ['True []', '[(9, 0, 0)]'], out   # the hostile one closed; nothing old


LEFT = '''
prot.register_callback(30, 0, lambda msg: (0, msg.get_data()))
first = client()
first.write(frame(pure_json.encode(30, 0, 0, 'first')))
polls()
print(heard(first, 4)[0])   # served: it has proven itself
wire = frame(pure_json.encode(30, 0, 0, 'half written'))
first.write(wire[:len(wire) // 2])
first.close()   # its last bytes and its end arrive together with the next client
second = client()
time.sleep_ms(50)
polls()
second.write(frame(pure_json.encode(30, 0, 0, 'second')))
polls()
print(heard(second, 4)[0])
'''


def test_a_client_whose_last_bytes_come_with_its_end_makes_room_for_the_next(mpy_dir, tmp_path):
    """Read in one poll with a newcomer's connect, a proven client's last bytes must not hide that it has gone."""
    out = run_tcp_server(LEFT, "{'session_v2': False}", mpy_dir, tmp_path)
    assert out == ["[(31, 0, 0, 'first')]", "[(31, 0, 0, 'second')]"], out


OUT_OF_HEAP = '''
import micropython
prot.register_callback(30, 0, lambda msg: (0, msg.get_data()))
sock = client()
sock.write(frame(pure_json.encode(30, 0, 0, 'first')))
polls()
print(heard(sock, 4)[0])
sock.write(frame(pure_json.encode(30, 0, 0, 'lost')))
time.sleep_ms(50)
micropython.heap_lock()   # every allocation raises MemoryError, as in a full heap
try:
    busy = prot.poll()
finally:
    micropython.heap_unlock()
print(busy, prot.counters['oversized'] + prot.counters['format_errors'])
sock.write(frame(pure_json.encode(30, 0, 0, 'after')))
polls()
print(heard(sock, 4)[0])
'''


def test_a_step_the_heap_has_no_room_for_is_dropped_and_the_board_serves_on(mpy_dir, tmp_path):
    """With the heap full, a frame is dropped and counted, not a MemoryError out of poll() that ends the loop."""
    out = run_tcp_server(OUT_OF_HEAP, "{'session_v2': False}", mpy_dir, tmp_path)
    assert out == ["[(31, 0, 0, 'first')]", 'True 1', "[(31, 0, 0, 'after')]"], out
