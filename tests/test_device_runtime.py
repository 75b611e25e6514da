"""The device runtime on the real MicroPython unix port: the virtual board (boards/unix/main.py).

The board runs as a subprocess with its stdin/stdout on a pty (raw mode, as a
board's USB serial console) and a TCP server on a free loopback port. The
host side is sp_common.Engine in this process. sp_common and sp_micropython
are compiled with mpy-cross first and put on MICROPYPATH, as they are
deployed on a board, so that the board fits a small heap (HEAPSIZE, override
with SP_TEST_HEAPSIZE).
"""
import contextlib
import os
import re
import select
import socket
import subprocess
import threading
import time

import pytest

from conftest import free_port, junk_flood_lasts, wait_until

import sp_common as sp
from sp_common import Engine, pure_json, struct_json
from sp_common.codec import _with_crc
from tools.unix_board import UnixBoard

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAPSIZE = os.environ.get('SP_TEST_HEAPSIZE', '128k')   # two protocols with 6 KiB frames, 4 KiB payloads
MAX_FRAME = 6144   # the device's frame cap in these tests: a 4 KiB payload fits, 8 KiB does not
TIMEOUT = 5


class PtyLink:
    def __init__(self, fd):
        self.fd = fd

    def write(self, data):
        view = memoryview(data)
        while view:
            select.select([], [self.fd], [], TIMEOUT)
            view = view[os.write(self.fd, view):]

    def read(self, timeout):
        if not select.select([self.fd], [], [], max(timeout, 0))[0]:
            return b''
        try:
            return os.read(self.fd, 65536)
        except OSError:   # EIO: the device closed its end
            return b''


class SockLink:
    def __init__(self, sock):
        self.sock = sock

    def write(self, data):
        self.sock.sendall(data)

    def read(self, timeout):
        if not select.select([self.sock], [], [], max(timeout, 0))[0]:
            return b''
        try:
            return self.sock.recv(65536)
        except OSError:
            return b''

    def close(self):
        self.sock.close()


class Host:
    """The host end: an Engine on a link, with blocking helpers that wait on data, never on the clock."""

    def __init__(self, link, is_client=True, codec=pure_json, secret=None, name='pytest', session_v2=True):
        self.link = link
        self.engine = Engine(is_client, codec=codec, secret=secret, channel_name=name, session_v2=session_v2)

    def flush(self):
        self.link.write(self.engine.data_to_send())

    def send(self, sid, did, data):
        self.engine.send_msg(sid, did, data)
        self.flush()

    def pump(self, until, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        self.flush()
        while not until():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            data = self.link.read(min(left, 0.2))
            if data:
                self.engine.feed(data)
                self.flush()
        return True

    def connect(self):
        """connection_made() sends the channel name (and the session offer); the answers prove the device serves."""
        self.engine.connection_made()
        assert self.pump(lambda: self.engine.counters['rx_messages'] >= 1 and self.engine.ready()), \
            'no channel name or session answer'

    def request(self, sid, did, data=None, timeout=TIMEOUT):
        self.send(sid, did, data)
        got = []

        def answered():
            msg = self.engine.pop_received(sid + 1, did)
            if msg is not None:
                got.append(msg)
            return bool(got)
        assert self.pump(answered, timeout), 'no answer to %d/%d' % (sid, did)
        return got[0]

    def authenticate(self):
        self.engine.start_auth()
        return self.pump(self.engine.auth_settled)


class Device(UnixBoard):
    """boards/unix/main.py under micropython: stdin/stdout on a pty, TCP on a free loopback port."""

    def __init__(self, mpy_dir, heapsize=HEAPSIZE, use_mpy=True, **knobs):
        self.port = knobs.setdefault('tcp_port', free_port())
        knobs.setdefault('max_frame', MAX_FRAME)
        UnixBoard.__init__(self, heapsize, mpy_dir if use_mpy else None, **knobs)
        self.pty = PtyLink(self.master)
        self.socks = []

    def host(self, **options):
        """A host client on the pty, connected."""
        host = Host(self.pty, **options)
        host.connect()
        return host

    def connect(self):
        """A socket connected to the device's TCP server (retried until the device listens)."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                sock = socket.create_connection(('127.0.0.1', self.port), timeout=TIMEOUT)
                break
            except OSError:
                assert time.monotonic() < deadline, 'the device does not listen:\n' + self.stderr()
                time.sleep(0.02)
        self.socks.append(sock)
        return sock

    def tcp(self, connect=True, **options):
        """A host client on the device's TCP server."""
        host = Host(SockLink(self.connect()), **options)
        if connect:
            host.connect()
        return host

    def stop(self):
        for sock in self.socks:
            sock.close()
        UnixBoard.stop(self, TIMEOUT)


@pytest.fixture
def device(mpy_dir):
    started = []

    def start(**knobs):
        dev = Device(mpy_dir, **knobs)
        started.append(dev)
        return dev
    yield start
    for dev in started:
        text = dev.stderr()
        dev.stop()
        assert 'Traceback' not in text and 'MemoryError' not in text, text


def check_demo(host):
    """asc_time, write + read back, echo and unknown service / data on one host link."""
    msg = host.request(sp.SID_READ_REQUEST, 0)
    assert msg.get_status() == sp.STATUS_OKAY
    assert re.match(r'^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} [ 123]\d \d\d:\d\d:\d\d \d{4}$', msg.get_data()), \
        msg.get_data()
    value = {'n': 42, 'list': [1, 2.5, 'x:y'], 'none': None}
    assert host.request(sp.SID_WRITE_REQUEST, 1, value).get_status() == sp.STATUS_OKAY
    assert host.request(sp.SID_READ_REQUEST, 1).get_data() == value
    msg = host.request(sp.SID_EXECUTE_REQUEST, 0, ['echo', 1])
    assert (msg.get_service_id(), msg.get_status(), msg.get_data()) == (31, sp.STATUS_OKAY, ['echo', 1])
    host.engine.add_service(40, 41)
    assert host.request(40, 0, 'x').get_status() == sp.STATUS_SERVICE_OR_DATA_UNKNOWN
    assert host.request(sp.SID_READ_REQUEST, 99).get_status() == sp.STATUS_SERVICE_OR_DATA_UNKNOWN


def test_demo_services_over_the_pty(device):
    host = device().host()
    check_demo(host)
    assert host.engine.counters['crc_errors'] == 0


def wire(sid, did, data, status=0):
    return sp.frame(pure_json.encode(sid, did, status, data))


def ctrl_c_payload():
    """A payload with 0x03 characters whose request and response frames both carry raw 0x03 bytes.

    JSON escapes the characters themselves (\\u0003); the raw bytes are in the CRC."""
    for i in range(1000000):
        payload = '\x03 ctrl-c %d \x03' % i
        if all(b'\x03' in sp.frame(pure_json.encode(sid, 0, 0, payload)) for sid in (30, 31)):
            return payload
    raise AssertionError('no such payload')


def test_ctrl_c_bytes_round_trip_on_stdio(device):
    host = device().host()
    payload = ctrl_c_payload()
    for _ in range(3):
        assert host.request(sp.SID_EXECUTE_REQUEST, 0, payload).get_data() == payload
    payload = '\x03' * 200 + ':'
    assert host.request(sp.SID_EXECUTE_REQUEST, 0, payload).get_data() == payload
    assert host.request(sp.SID_READ_REQUEST, 0).get_status() == sp.STATUS_OKAY


def test_demo_services_over_tcp_share_the_value_with_stdio(device):
    dev = device()
    tcp = dev.tcp()
    check_demo(tcp)
    assert tcp.request(sp.SID_WRITE_REQUEST, 1, 'from tcp').get_status() == sp.STATUS_OKAY
    assert dev.host().request(sp.SID_READ_REQUEST, 1).get_data() == 'from tcp'


@pytest.mark.parametrize('transport', ['pty', 'tcp'])
def test_secret(device, transport):
    dev = device(secret='s3cret')
    connect = dev.host if transport == 'pty' else dev.tcp
    host = connect(secret='s3cret')
    assert host.request(sp.SID_READ_REQUEST, 0).get_status() == sp.STATUS_AUTH_REQUIRED
    assert host.authenticate() and host.engine.is_trusted()
    assert host.request(sp.SID_EXECUTE_REQUEST, 0, 'trusted').get_data() == 'trusted'

    if transport == 'tcp':
        host.link.close()   # the trusted client leaves; a newcomer is let in
    intruder = connect(secret='wrong')   # a new connection (pty: a new program) starts untrusted on the device
    assert intruder.engine.session == 2
    intruder.engine.start_auth()
    assert not intruder.pump(intruder.engine.auth_settled, 0.5)
    assert not intruder.engine.is_trusted()   # session v2: under the wrong keys nothing of it is taken

    if transport == 'tcp':
        intruder.link.close()
    old = connect(secret='wrong', session_v2=False)   # an intruder on the original wire is told why
    assert old.authenticate() and not old.engine.is_trusted()
    for sid in (sp.SID_READ_REQUEST, sp.SID_WRITE_REQUEST, sp.SID_EXECUTE_REQUEST):
        msg = old.request(sid, 0, 'x')
        assert (msg.get_status(), msg.get_data()) == (sp.STATUS_AUTH_REQUIRED, None)


@pytest.mark.parametrize('transport', ['pty', 'tcp'])
def test_a_slipped_in_channel_name_starts_over_only_on_a_serial_line(device, transport):
    """A channel-name request is how the next program on a serial line begins; inside a TCP connection it is
    out of turn, so a frame slipped into the stream cannot end a trusted session."""
    dev = device(secret='s3cret')
    host = (dev.host if transport == 'pty' else dev.tcp)(secret='s3cret')
    assert host.authenticate() and host.engine.session == 2
    host.link.write(wire(sp.SID_CHANNEL_NAME_REQUEST, 0, 'next'))   # an original frame, as a new program sends it
    if transport == 'pty':   # answered on the original wire: the device started over (the host drops that)
        assert host.pump(lambda: host.engine.counters['downgrade'] == 1)
    else:
        assert host.request(sp.SID_EXECUTE_REQUEST, 0, 'still trusted').get_data() == 'still trusted'
        assert host.engine.counters['downgrade'] == 0


def test_the_next_program_on_a_serial_line_gets_none_of_the_answers_still_waiting_for_the_last(device):
    """A trusted program asks for a secret value 56 times and stops reading; the next program, with no secret,
    sends its name while the line is full. It gets what the terminal held already (the line's own buffer), but
    not what the board still kept for the last program: all 56 came, the board having sent what it kept before
    it read the name, and added the name's answer behind it."""
    dev = device(secret='s3cret')
    trusted = Host(dev.pty, secret='s3cret', session_v2=False)
    trusted.connect()
    assert trusted.authenticate()
    assert trusted.request(sp.SID_WRITE_REQUEST, 1, 'SECRET-' + 'k' * 300).get_status() == sp.STATUS_OKAY
    for _ in range(56):
        trusted.engine.send_msg(sp.SID_READ_REQUEST, 1, None)
    trusted.flush()
    time.sleep(0.5)   # the terminal holds what it takes (some 16 KB), the board keeps the rest (5 KB)
    untrusted = Host(dev.pty, name='next', session_v2=False)
    untrusted.engine.connection_made()
    untrusted.flush()
    got = b''
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        got += dev.pty.read(0.2)
    untrusted.engine.feed(got)
    assert untrusted.engine.counters['rx_messages'] >= 1   # the name's answer
    assert got.count(b'SECRET-') <= 48, got.count(b'SECRET-')   # (42 here: what the terminal held)
    assert untrusted.request(sp.SID_READ_REQUEST, 1).get_status() == sp.STATUS_AUTH_REQUIRED


def test_secret_file_is_read(device, tmp_path):
    path = tmp_path / 'secret.txt'
    path.write_text('from-file\n')
    host = device(secret_file=str(path)).host(secret='from-file')
    assert host.authenticate() and host.engine.is_trusted()
    assert host.request(sp.SID_READ_REQUEST, 1).get_status() == sp.STATUS_OKAY


def test_struct_json(device):
    dev = device(codec='struct_json')
    for host in (dev.host(codec=struct_json), dev.tcp(codec=struct_json)):
        check_demo(host)
        # the header of 30/3 and its answer 31/3 holds a raw 0x03 byte
        assert b'\x03' in struct_json.encode(30, 3, 0, None)[:5]
        assert host.request(sp.SID_EXECUTE_REQUEST, 3).get_status() == sp.STATUS_SERVICE_OR_DATA_UNKNOWN
    # a pure_json peer on a struct_json board gets nothing it could mistake for an answer
    assert dev.tcp(connect=False, codec=pure_json).pump(lambda: False, 0.3) is False


@pytest.mark.parametrize('transport', ['pty', 'tcp'])
def test_4k_payload_echo(device, transport):
    dev = device()
    host = dev.host() if transport == 'pty' else dev.tcp()
    payload = ''.join(chr(32 + i % 90) for i in range(4096))   # contains ':' (escaped on the wire)
    assert host.request(sp.SID_EXECUTE_REQUEST, 0, payload).get_data() == payload
    assert host.request(sp.SID_EXECUTE_REQUEST, 0, payload[::-1]).get_data() == payload[::-1]


@pytest.mark.parametrize('transport', ['pty', 'tcp'])
def test_oversized_frame_is_dropped_and_the_device_keeps_answering(device, transport):
    dev = device()
    host = dev.host() if transport == 'pty' else dev.tcp()
    huge = 'h' * (MAX_FRAME + 1000)
    host.send(sp.SID_EXECUTE_REQUEST, 0, huge)
    msg = host.request(sp.SID_EXECUTE_REQUEST, 0, 'after')   # answers come in order: 'after' is the first
    assert msg.get_data() == 'after'
    assert host.engine.pop_received(None, None) is None
    assert host.request(sp.SID_READ_REQUEST, 0).get_status() == sp.STATUS_OKAY


def crc_valid(text):
    """A frame whose body is text with a correct CRC, whatever the text says."""
    return sp.frame(*_with_crc((text.encode(),)))


def raw_reply(link, data):
    """Writes data and returns the first message that comes back, read past the host's engine."""
    link.write(data)
    deframer = sp.Deframer(MAX_FRAME)
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        for body in deframer.feed(link.read(0.2)):
            return pure_json.decode(body)
    raise AssertionError('no reply')


@pytest.mark.parametrize('secret', [None, 's3cret'])
@pytest.mark.parametrize('transport', ['pty', 'tcp'])
def test_hostile_frames_at_the_heap_cap(device, transport, secret):
    """What once stopped a board or fooled it; afterwards it answers normally and has not signed anything.

    On the original wire, where the board parses every frame (in session v2 it drops what has no seq first).
    """
    dev = device(secret=secret) if secret else device()
    host = (dev.host if transport == 'pty' else dev.tcp)(secret=secret, session_v2=False)
    seed = raw_reply(host.link, wire(sp.SID_AUTH_REQUEST, sp.DID_AUTH_SEED, None))[3] or 'a' * 64
    envelope = '{"data_id": 7, "service_id": 30, "status": 0, "data": %s}'
    depth = (MAX_FRAME - len(envelope) - 8) // 2   # as deep as the frame cap lets it be
    hostile = [
        crc_valid(envelope % ('[' * depth + ']' * depth)),
        crc_valid(envelope % ('7' * 3000)),
        wire(sp.SID_READ_REQUEST, 'd' * 4096, None),
        wire(sp.SID_EXECUTE_RESPONSE, 0, 'r' * 4096) * 4,   # unsolicited: nobody may keep them
        wire(sp.SID_AUTH_RESPONSE, sp.DID_AUTH_KEY, True),   # out of turn: no trust from it
        wire(sp.SID_AUTH_RESPONSE, sp.DID_AUTH_SEED, seed),  # its own seed reflected: never signed
    ]
    for data in hostile:
        host.link.write(data)
    if secret:
        assert host.request(sp.SID_EXECUTE_REQUEST, 0, 'x').get_status() == sp.STATUS_AUTH_REQUIRED
        assert host.authenticate() and host.engine.is_trusted()
    assert host.request(sp.SID_EXECUTE_REQUEST, 0, 'after').get_data() == 'after'
    assert host.request(sp.SID_READ_REQUEST, 0).get_status() == sp.STATUS_OKAY
    assert host.engine.counters['out_of_turn'] == 0   # the device sent no key and no verdict of its own
    assert dev.proc.poll() is None


def test_a_value_written_out_of_range_is_refused_and_the_value_kept(device):
    """A board's json takes 1e999 as inf, which no JSON carries back: the demo's write refuses it with a callback
    error, and every host still reads the value written before (stored as inf, it broke each later read)."""
    host = device().host(session_v2=False)
    assert host.request(sp.SID_WRITE_REQUEST, 1, [1.5]).get_status() == sp.STATUS_OKAY
    out_of_range = '{"data_id": 1, "service_id": 20, "status": 0, "data": [1e999]}'
    assert raw_reply(host.link, crc_valid(out_of_range))[2] == sp.STATUS_CALLBACK_ERROR
    assert host.request(sp.SID_READ_REQUEST, 1).get_data() == [1.5]


def test_tcp_client_that_drops_mid_frame_then_next_client_is_served(device):
    dev = device()
    first = dev.tcp()
    assert first.request(sp.SID_EXECUTE_REQUEST, 0, 'first').get_data() == 'first'
    wire = sp.frame(pure_json.encode(sp.SID_WRITE_REQUEST, 1, 0, 'half written'))
    first.link.write(wire[:len(wire) // 2])
    first.link.close()
    second = dev.tcp()
    msg = second.request(sp.SID_READ_REQUEST, 1)
    assert (msg.get_status(), msg.get_data()) == (sp.STATUS_OKAY, None)   # the half frame wrote nothing
    second.link.close()
    # a client that vanishes without a word, then one more
    dev.tcp(connect=False).link.close()
    assert dev.tcp().request(sp.SID_EXECUTE_REQUEST, 0, 'third').get_data() == 'third'
    assert dev.proc.poll() is None
    assert dev.host().request(sp.SID_EXECUTE_REQUEST, 0, 'pty still up').get_data() == 'pty still up'


@pytest.mark.parametrize('session_v2', [False, True])
def test_a_client_that_half_closes_after_its_request_gets_its_answer(device, session_v2):
    """A scripted client (nc -N) sends its request and shuts its side: the board read the end with the request and
    dropped the answer with the connection (on the original wire every time)."""
    dev = device()
    host = dev.tcp(session_v2=session_v2)
    host.engine.send_msg(sp.SID_EXECUTE_REQUEST, 0, 'half closed')
    host.link.write(host.engine.data_to_send())
    host.link.sock.shutdown(socket.SHUT_WR)
    got = b''
    while True:
        chunk = host.link.read(TIMEOUT)
        if not chunk:
            break
        got += chunk
    host.engine.feed(got)
    msg = host.engine.pop_received(sp.SID_EXECUTE_RESPONSE, 0)
    assert msg is not None and msg.get_data() == 'half closed'
    assert dev.tcp().request(sp.SID_EXECUTE_REQUEST, 0, 'next').get_data() == 'next'


def test_a_console_left_cooked_holds_up_no_other_link(device):
    """Started from a shell, the board's terminal stays cooked (canonical), where a read waits for a whole line
    whatever VMIN and VTIME say: the console is read only once a poll says a byte waits, and TCP is served."""
    dev = device(raw=False)
    assert dev.tcp().request(sp.SID_EXECUTE_REQUEST, 0, 'cooked').get_data() == 'cooked'


def test_a_client_that_keeps_the_socket_full_does_not_hold_newcomers_off(device):
    """Junk without a frame in it, faster than the board reads: it proves nothing, and the next client is served."""
    dev = device(secret='s3cret')
    flooder = dev.tcp(connect=False).link.sock
    flooding = threading.Event()

    def flood():
        try:
            while not flooding.is_set():
                flooder.sendall(b'x' * 65536)
        except OSError:   # the board dropped it
            pass
    thread = threading.Thread(target=flood, daemon=True)
    thread.start()
    time.sleep(0.5)   # the board's socket is full by now
    try:
        host = dev.tcp(secret='s3cret')
        assert host.authenticate() and host.engine.is_trusted()
    finally:
        flooding.set()
    thread.join(TIMEOUT)
    assert not thread.is_alive()


def test_a_flood_of_silent_connections_does_not_cut_off_a_client_while_it_authenticates(device):
    dev = device(secret='s3cret')
    stop = threading.Event()

    def churn():   # a new silent connection every 20 ms
        socks = []
        while not stop.is_set():
            try:
                socks.append(socket.create_connection(('127.0.0.1', dev.port), timeout=1))
            except OSError:
                pass
            if len(socks) > 20:
                socks.pop(0).close()
            time.sleep(0.02)
        for sock in socks:
            sock.close()
    thread = threading.Thread(target=churn, daemon=True)
    thread.start()
    try:
        time.sleep(0.2)
        host = dev.tcp(connect=False, secret='s3cret')
        write = host.link.write
        writes = []

        def slow_write(data):   # a slow link: every step after the first takes 50 ms
            if writes:
                time.sleep(0.05)
            writes.append(len(data))
            write(data)
        host.link.write = slow_write
        host.connect()
        assert host.authenticate() and host.engine.is_trusted()
        assert host.request(sp.SID_EXECUTE_REQUEST, 0, 'in').get_data() == 'in'
    finally:
        stop.set()
        thread.join(TIMEOUT)


def test_a_newcomer_replaces_a_client_that_never_spoke(device):
    dev = device()
    old = dev.tcp(connect=False)
    new = dev.tcp()
    assert new.request(sp.SID_EXECUTE_REQUEST, 0, 'new').get_data() == 'new'
    assert old.link.read(TIMEOUT) == b''   # the device closed the old connection


def test_a_client_refused_while_a_newcomer_waits_leaves_the_board_listening(device):
    """With SESSION_V2='required' the engine's timer refuses a client that gave its name and fell silent, and the
    board drops it outside its read while a newcomer waits in the backlog: the newcomer is served next (the
    listener had been left out of the poll, and the board slept on nothing for good)."""
    dev = device(session_v2='required', stdio=False)
    silent = dev.tcp(connect=False, session_v2=False)
    silent.engine.connection_made()
    silent.link.write(silent.engine.data_to_send())   # its name, no offer of v2; then nothing
    time.sleep(0.3)
    newcomer = dev.tcp(connect=False)
    silent.link.sock.settimeout(TIMEOUT)
    while silent.link.sock.recv(4096):                # answered, then refused and dropped at NEGOTIATE_MS
        pass
    newcomer.connect()
    assert newcomer.request(sp.SID_EXECUTE_REQUEST, 0, 'served').get_data() == 'served'


def test_a_newcomer_does_not_throw_out_a_trusted_client(device):
    dev = device(secret='s3cret')
    trusted = dev.tcp(secret='s3cret')
    assert trusted.authenticate() and trusted.engine.is_trusted()
    newcomer = dev.tcp(connect=False)
    assert newcomer.link.read(TIMEOUT) == b''   # turned away
    assert trusted.request(sp.SID_EXECUTE_REQUEST, 0, 'still here').get_data() == 'still here'


def test_device_as_tcp_client_with_auto_auth(device):
    with socket.socket() as server:
        server.bind(('127.0.0.1', 0))
        server.listen(1)
        server.settimeout(TIMEOUT)
        dev = device(role='client', tcp_port=server.getsockname()[1], secret='k', channel_name='board')
        sock, _ = server.accept()
        dev.socks.append(sock)
    host = Host(SockLink(sock), is_client=False, secret='k', name=None)
    host.engine.connection_made()
    assert host.pump(lambda: host.engine.is_trusted()), dev.stderr()   # the device authenticated itself
    assert host.engine.channel_name == 'board'
    assert host.request(sp.SID_EXECUTE_REQUEST, 0, 'to the board').get_data() == 'to the board'


@contextlib.contextmanager
def _unanswered(server):
    """server (listening with a queue of 0) drops the connects that come while this holds its queue full: as a
    host that is off does, they get no answer."""
    queued = [socket.socket() for _ in range(3)]
    for sock in queued:
        sock.setblocking(False)
        sock.connect_ex(server.getsockname())
    try:
        yield
    finally:
        for sock in queued:
            sock.close()


def test_a_connect_nobody_answers_holds_up_no_other_stream(device):
    """A board in the client role whose host drops its connects without a word (a listener whose queue is
    full, as a host that is off): each try gives up after 2 s, and the console answers at once meanwhile.
    A connect that waited held the whole board for those 2 s, try after try."""
    with socket.socket() as server:
        server.bind(('127.0.0.1', 0))
        server.listen(0)
        with _unanswered(server):
            dev = device(role='client', tcp_port=server.getsockname()[1])
            host = dev.host(is_client=False)
            for i in range(5):
                start = time.monotonic()
                assert host.request(sp.SID_EXECUTE_REQUEST, 0, i, timeout=TIMEOUT).get_data() == i
                assert time.monotonic() - start < 0.5, 'request %d waited for a connect' % i
                time.sleep(0.3)
        server.settimeout(TIMEOUT)
        while True:   # the queue emptied, a later try gets through: the board introduces itself
            sock = server.accept()[0]
            dev.socks.append(sock)
            sock.settimeout(TIMEOUT)
            if sock.recv(2) == b':<':
                break


def test_a_board_whose_host_refuses_its_wire_dials_again_no_sooner_than_its_retry(device):
    """SESSION_V2='required' against a host of the original wire: each connection is refused, and the board
    dialed again at once, thousands of times a second, where it waits retry_ms (200 ms) between tries."""
    connects = []
    with socket.socket() as server:
        server.bind(('127.0.0.1', 0))
        server.listen(8)

        def original_host():   # answers the board's name and offer as a host without session v2 does
            while True:
                try:
                    conn = server.accept()[0]
                except OSError:
                    return
                connects.append(time.monotonic())
                engine = Engine(False, session_v2=False)
                engine.connection_made()
                conn.settimeout(1)
                try:
                    while True:
                        data = conn.recv(4096)
                        if not data:
                            break
                        engine.feed(data)
                        conn.sendall(engine.data_to_send())
                except OSError:
                    pass
                conn.close()
        threading.Thread(target=original_host, daemon=True).start()
        device(role='client', tcp_port=server.getsockname()[1], session_v2='required')
        assert wait_until(lambda: len(connects) >= 2, TIMEOUT)
        time.sleep(1.5)
        server.shutdown(socket.SHUT_RDWR)
    assert len(connects) <= 2 + 1.5 / 0.2 + 2, len(connects)


def test_a_connect_timeout_in_parts_of_a_second_is_waited_for_in_whole_milliseconds(tmp_path):
    """TcpClientStream(connect_timeout=0.5): while its connect is under way the loop's wait is a whole number of
    milliseconds (select.poll takes no float: a float ended the board's loop with a TypeError)."""
    script = tmp_path / 'dial.py'
    with socket.socket() as server:
        server.bind(('127.0.0.1', 0))
        server.listen(0)
        script.write_text(
            'from sp_micropython.tcp_client import TcpClientStream\n'
            'stream = TcpClientStream("127.0.0.1", %d, connect_timeout=0.5)\n'
            'stream.readinto(bytearray(8))\n'   # the connect starts
            'import select\n'
            'select.poll().ipoll(stream.wait_ms())\n'
            'print(type(stream.wait_ms()).__name__, 0 <= stream.wait_ms() <= 500)\n' % server.getsockname()[1])
        with _unanswered(server):
            r = subprocess.run(['micropython', str(script)], capture_output=True, text=True, timeout=30,
                               env=dict(os.environ, MICROPYPATH=ROOT))
    assert r.stdout == 'int True\n', r.stdout + r.stderr


def test_board_runs_from_source_and_exits_when_stdin_closes(device):
    dev = device(use_mpy=False, heapsize='256k')
    check_demo(dev.host())
    os.close(dev.master)   # end of input on the device's stdin
    dev.master = os.open(os.devnull, os.O_RDONLY)   # for stop()
    assert dev.proc.wait(TIMEOUT) == 0


def test_mem_knob_reports_heap_figures(device):
    dev = device(mem=1)
    dev.host().request(sp.SID_EXECUTE_REQUEST, 0, 'measure')
    deadline = time.monotonic() + TIMEOUT
    while 'mem: step' not in dev.stderr() and time.monotonic() < deadline:
        time.sleep(0.02)
    text = dev.stderr()
    start = re.search(r'mem: start alloc=(\d+) free=(\d+)', text)
    assert start and int(start.group(1)) > 0 and int(start.group(2)) > 0, text
    assert re.search(r'mem: step \+\d+ alloc=\d+', text), text


UART_SCRIPT = '''
import gc, sys
import sp_micropython as sp
from sp_micropython.demo import add_demo_services

class FakeUart:
    """machine.UART stand-in: rx holds what the host sent, tx what the device wrote."""
    def __init__(self, rx):
        self.rx = rx
        self.tx = bytearray()
    def any(self):
        return len(self.rx)
    def readinto(self, buf, n):
        buf[:n] = self.rx[:n]
        self.rx = self.rx[n:]
        return n
    def write(self, data):
        self.tx.extend(data)

with open(sys.argv[1], 'rb') as f:
    uart = FakeUart(f.read())
prot = sp.pure_json_protocol(sp.UartStream(uart), max_frame=1024, rx_size=64)
add_demo_services(prot)
while prot.poll():
    pass
gc.collect()
gc.disable()
before = gc.mem_alloc()
i = 0
while i < 200:
    i += 1
    prot.poll()
print(gc.mem_alloc() - before)
print(bytes(uart.tx).hex())
'''


def test_uart_stream_and_idle_polls_allocate_nothing(mpy_dir, tmp_path):
    """UartStream on a fake machine.UART, in 64-byte reads; 200 idle polls allocate no heap."""
    host = Host(PtyLink(None), session_v2=False)   # one scripted burst: no negotiation
    host.engine.connection_made()
    host.engine.send_msg(sp.SID_EXECUTE_REQUEST, 0, 'over the uart: ' + 'u' * 150)
    host.engine.send_msg(sp.SID_WRITE_REQUEST, 1, 7)
    host.engine.send_msg(sp.SID_READ_REQUEST, 1, None)
    script = tmp_path / 'uart_check.py'
    script.write_text(UART_SCRIPT)
    rx = tmp_path / 'rx.bin'   # not in argv: this micropython build dies on long arguments
    rx.write_bytes(host.engine.data_to_send())
    proc = subprocess.run(['micropython', '-X', 'heapsize=' + HEAPSIZE, str(script), str(rx)],
                          cwd=ROOT, env=dict(os.environ, MICROPYPATH=mpy_dir), capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    allocated, wire = proc.stdout.split()
    assert int(allocated) < 64   # no allocation per idle poll (a few bytes of interpreter noise at most)
    host.engine.feed(bytes.fromhex(wire))
    assert host.engine.pop_received(31, 0).get_data() == 'over the uart: ' + 'u' * 150
    assert host.engine.pop_received(21, 1).get_status() == sp.STATUS_OKAY
    assert host.engine.pop_received(11, 1).get_data() == 7


def flood_unread(dev, count):
    """Sends count 1 KB echo requests on the pty as fast as it takes them, reading no answer: the bytes sent."""
    mute = Host(dev.pty, session_v2=False)
    for _ in range(count):
        mute.engine.send_msg(sp.SID_EXECUTE_REQUEST, 0, 'y' * 1000)
    data = mute.engine.data_to_send()
    os.set_blocking(dev.master, False)
    sent = 0
    try:
        while sent < len(data) and select.select([], [dev.master], [], 0.5)[1]:
            sent += os.write(dev.master, data[sent:sent + 4096])
    except BlockingIOError:
        pass
    finally:
        os.set_blocking(dev.master, True)
    return sent


def test_a_console_peer_that_reads_nothing_stalls_no_other_stream(device):
    """The pty peer sends 120 KB worth of echo requests and reads none of the answers: the board's console
    writes wait and are given up, the TCP client is served meanwhile, and the console serves again once read."""
    dev = device()
    tcp = dev.tcp()
    assert tcp.request(sp.SID_EXECUTE_REQUEST, 0, 'before').get_data() == 'before'
    assert flood_unread(dev, 120) > 64 * 1024   # far more answers than the pty holds
    time.sleep(0.5)
    assert tcp.request(sp.SID_EXECUTE_REQUEST, 0, 'still served', timeout=5).get_data() == 'still served'
    while dev.pty.read(0.3):   # the console peer reads at last
        pass
    time.sleep(2.5)            # the board gave up what waited for it (2 s)
    while dev.pty.read(0.3):
        pass
    assert dev.host(session_v2=False).request(sp.SID_EXECUTE_REQUEST, 0, 'again').get_data() == 'again'


def test_a_console_peer_that_hangs_up_with_answers_unread_ends_the_board_cleanly(device):
    """The pty peer floods echo requests, reads none of the answers and hangs up: the board's pending console
    write failed with an I/O error that ended its loop (exit status 1) before it saw the end of its input."""
    dev = device()
    assert flood_unread(dev, 200) > 64 * 1024   # far more answers than the pty holds: some wait in the board
    time.sleep(0.5)
    os.close(dev.master)
    dev.master = os.open(os.devnull, os.O_RDWR)   # for stop() to close
    assert dev.proc.wait(TIMEOUT) == 0, dev.stderr()


def test_a_tcp_peer_on_probation_that_floods_junk_is_dropped_within_its_reads(device):
    """A name, then ':<:>' (four bytes, a frame that is no message) without end: the board fed it for the peer's
    whole probation, its one loop busy with it while the console waited. It goes once it is noisy, and a
    client with the secret is served after it."""
    dev = device(secret='s3cret')
    for _ in range(2):   # (the count starts over with each connection)
        flood = dev.connect()
        # dropped: its sends fail long before its probation ends
        assert junk_flood_lasts(flood, wire(sp.SID_CHANNEL_NAME_REQUEST, 0, 'flood'), 256) < 3
    host = dev.tcp(secret='s3cret')
    assert host.authenticate() and host.engine.is_trusted()
    assert host.request(sp.SID_EXECUTE_REQUEST, 0, 'served').get_data() == 'served'


def test_a_written_value_holds_no_more_heap_than_its_frame(device):
    """The demo value written as 384 empty lists (1.5 KiB of JSON) held its parsed form, about 24 KiB of this
    64-bit board's heap, until someone wrote over it: no 2 KiB echo was answered meanwhile. It is kept as its
    text (read back, such a value is parsed for the answer: a board without the room answers a callback error).
    The writing board holds the parsed form while it writes the text: 512 lists left too few bytes to spare,
    and whether the write fit hung on the length of the paths the board was started with."""
    dev = device()
    tcp = dev.tcp()
    value = [[] for _ in range(384)]
    assert tcp.request(sp.SID_WRITE_REQUEST, 1, value).get_status() == sp.STATUS_OKAY
    pty = dev.host()
    for link in (tcp, pty, tcp, pty):
        assert link.request(sp.SID_EXECUTE_REQUEST, 0, 'e' * 2048).get_data() == 'e' * 2048
    small = {'n': [[1], [2, [3]]]}
    assert pty.request(sp.SID_WRITE_REQUEST, 1, small).get_status() == sp.STATUS_OKAY
    assert tcp.request(sp.SID_READ_REQUEST, 1).get_data() == small
