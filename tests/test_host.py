"""Host runtime over real sockets and real pseudo-terminals."""
import logging
import os
import socket
import threading
import time
import tty

import pytest

from conftest import wait_until
import sp_cpython as sp
from ptys import PtyCable
from sp_common import Deframer, frame, pure_json

SECRET = 'top secret'


class Endpoints:
    """A server protocol and a client protocol over one transport kind."""

    def __init__(self, tmp_path, kind):
        self.kind = kind
        self.tmp_path = tmp_path
        self.closers = []
        self.cable = None
        self.port = None

    def comms(self):
        if self.kind == 'tcp':
            server = sp.tcp_server_stp('127.0.0.1', self.port or 0)
            self.port = server.port
            return server, sp.tcp_client_stp('127.0.0.1', self.port)
        if self.cable is None:
            self.cable = PtyCable(str(self.tmp_path))
        return sp.serial_stp(self.cable.path_a, is_client=False), sp.serial_stp(self.cable.path_b)

    def make(self, cls=sp.pure_json_protocol, server_secret=None, client_secret=None, auto_auth=False, session_v2=True):
        server_comm, client_comm = self.comms()
        server = cls(server_comm, secret=server_secret, channel_name='example_server', session_v2=session_v2)
        # a serial line has no connection: what the client writes before the server's port is open is lost
        assert self.kind == 'tcp' or wait_until(server.is_connected)
        client = cls(client_comm, secret=client_secret, auto_auth=auto_auth, channel_name='example_client',
                     session_v2=session_v2)
        self.closers += [client.close, server.close]
        self.calls = serve_demo(server)
        return server, client

    def close(self):
        for close in self.closers:
            close()
        if self.cable is not None:
            self.cable.close()


def serve_demo(prot):
    calls = []

    def asc_time(msg):
        calls.append(msg.get_data())
        return sp.STATUS_OKAY, time.asctime()

    def echo(msg):
        calls.append(msg.get_data())
        return sp.STATUS_OKAY, msg.get_data()
    prot.add_data((sp.SID_READ_REQUEST, sp.SID_READ_RESPONSE), 0, 'asc_time')
    prot.register_callback(sp.SID_READ_REQUEST, 0, asc_time)
    prot.register_callback(sp.SID_EXECUTE_REQUEST, None, echo)
    return calls


@pytest.fixture(params=['tcp', 'pty'])
def link(request, tmp_path):
    endpoints = Endpoints(tmp_path, request.param)
    yield endpoints
    endpoints.close()


def ask(client, sid, did, data=None, timeout=3):
    assert client.send(sid, did, data, timeout=timeout)
    return client.receive(sid + 1, did, timeout=timeout)


@pytest.mark.parametrize('cls', [sp.pure_json_protocol, sp.struct_json_protocol])
@pytest.mark.parametrize('auth', ['none', 'auto', 'manual'])
def test_requests(link, cls, auth):
    secret = None if auth == 'none' else SECRET
    server, client = link.make(cls, secret, secret, auto_auth=auth == 'auto')
    if auth == 'manual':
        assert client.authentificate(timeout=3)
    if auth == 'auto':
        assert wait_until(client.connection_established)
    msg = ask(client, sp.SID_READ_REQUEST, 0)
    assert msg.get_status() == sp.STATUS_OKAY
    assert time.strptime(msg.get_data())
    payload = {'list': [1, 2.5, None], 'text': 'a:b:>:<\u00fc'}
    assert ask(client, sp.SID_EXECUTE_REQUEST, 7, payload).get_data() == payload
    assert ask(client, sp.SID_WRITE_REQUEST, 1).get_status() == sp.STATUS_SERVICE_OR_DATA_UNKNOWN
    assert server.check_authentification_state() == (secret is not None)
    assert server.channel_name == 'example_client'


def test_a_secret_read_from_a_file_with_its_newline_is_the_boards_secret(link):
    """sp secret > secret.txt ends in a newline; a board and sp strip it, and so does the library: a host that
    passed open('secret.txt').read() was refused by a board with the same file, with no word of the secret."""
    server, client = link.make(server_secret=SECRET, client_secret=' %s\r\n' % SECRET, auto_auth=True)
    assert wait_until(client.connection_established)
    assert ask(client, sp.SID_EXECUTE_REQUEST, 0, 'in').get_data() == 'in'


def test_a_port_that_answers_with_a_repl_is_named_for_what_it_is(tmp_path, caplog):
    """A board at its REPL (main.py not running) echoes and prints prompts: a program saw checksum errors and no
    connection, and not why. The serial transport says so once per open."""
    caplog.set_level(logging.WARNING)
    master, slave = os.openpty()
    tty.setraw(slave)
    prot = sp.pure_json_protocol(sp.serial_stp(os.ttyname(slave)))
    try:
        assert wait_until(prot.is_connected)   # (pyserial flushes what came before it opened the port)
        os.write(master, b'MicroPython v1.24.1 on 2024-11-29; Raspberry Pi Pico with RP2040\r\nType "help(')
        os.write(master, b')" for more information.\r\n>')
        os.write(master, b'>> ')
        assert wait_until(lambda: any('answers with a MicroPython REPL' in r.getMessage() for r in caplog.records))
        os.write(master, b'\r\n>>> ')
        time.sleep(0.3)
        assert len([r for r in caplog.records if 'answers with a MicroPython REPL' in r.getMessage()]) == 1
    finally:
        prot.close()
        os.close(master)
        os.close(slave)


def test_a_serving_boards_answers_that_read_like_a_repl_are_no_repl():
    """The sniffer looked at every byte: an answer whose data held '>>> ' or a traceback's first line, which a
    peer or a user chooses, made the transport say that the board's main.py was not running."""
    from sp_cpython.serial_port import ReplSniffer
    answer = frame(pure_json.encode(sp.SID_EXECUTE_RESPONSE, 0, 0, 'Traceback (most recent call last) >>> '))
    sniffer = ReplSniffer()
    for cut in range(len(answer) + 1):   # however the reads cut it
        sniffer(answer[:cut])
        sniffer(answer[cut:])
    assert sniffer.seen_at is None
    sniffer(b'\r\n>>> ')   # between frames: a REPL's prompt
    assert sniffer.seen_at is not None


def test_wrong_secret_is_refused_on_the_original_wire(link):
    server, client = link.make(server_secret=SECRET, client_secret='guess', session_v2=False)
    assert client.authentificate(timeout=3) is False
    assert not client.check_authentification_state() and not server.check_authentification_state()
    for sid in (sp.SID_READ_REQUEST, sp.SID_WRITE_REQUEST, sp.SID_EXECUTE_REQUEST):
        assert ask(client, sid, 0).get_status() == sp.STATUS_AUTH_REQUIRED
    assert link.calls == []
    assert server.counters['auth_rejected'] == 3


def test_wrong_secret_in_session_v2_is_not_heard_at_all(link):
    """Under MAC keys the sides do not share, every frame of the one is dropped by the other."""
    server, client = link.make(server_secret=SECRET, client_secret='guess')
    assert client.authentificate(timeout=1) is False
    assert client.session == 2 and not server.check_authentification_state()
    assert client.request(sp.SID_READ_REQUEST, 0, timeout=0.5) is None
    assert link.calls == [] and server.counters['mac_errors'] >= 2


@pytest.mark.parametrize('session_v2', [True, False])
def test_authentificate_calls_that_overlap_share_one_handshake(link, session_v2):
    """auto_auth's handshake, then the usual authentificate() and a second thread's: the server keeps only
    its newest seed, so each call starting its own handshake made them all fail."""
    server, client = link.make(server_secret=SECRET, client_secret=SECRET, auto_auth=True, session_v2=session_v2)
    results = []
    threads = [threading.Thread(target=lambda: results.append(client.authentificate(timeout=3))) for _ in range(2)]
    for thread in threads:
        thread.start()
    results.append(client.authentificate(timeout=3))
    for thread in threads:
        thread.join(5)
    assert results == [True, True, True]
    assert server.check_authentification_state() and server.counters['wrong_keys'] == 0


def test_an_unanswered_handshake_is_given_up_so_the_next_call_starts_afresh():
    silent = socket.create_server(('127.0.0.1', 0))     # takes the connection, answers nothing
    client = sp.pure_json_protocol(sp.tcp_client_stp('127.0.0.1', silent.getsockname()[1]), secret=SECRET,
                                   session_v2=False)
    conn, _ = silent.accept()
    try:
        assert client.authentificate(timeout=0.3) is False
        assert client.authentificate(timeout=0.3) is False
        deframer, heard = Deframer(4096), []
        conn.settimeout(2)
        while len(heard) < 3:
            heard += [pure_json.decode(body)[:2] for body in deframer.feed(conn.recv(4096))]
        assert heard == [(sp.SID_CHANNEL_NAME_REQUEST, 0), (sp.SID_AUTH_REQUEST, sp.DID_AUTH_SEED), (sp.SID_AUTH_REQUEST, sp.DID_AUTH_SEED)]
    finally:
        client.close()
        conn.close()
        silent.close()


def test_eight_threads_share_one_connection(link):
    server, client = link.make()
    results = {}

    def worker(n):
        results[n] = [ask(client, sp.SID_EXECUTE_REQUEST, n, [n, i]).get_data() for i in range(25)]
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == {n: [[n, i] for i in range(25)] for n in range(8)}


def test_log_lines_of_one_request(tmp_path, caplog):
    endpoints = Endpoints(tmp_path, 'tcp')
    try:
        server, client = endpoints.make(session_v2=False)   # the original's log lines, byte for byte
        client.add_data((sp.SID_READ_REQUEST, sp.SID_READ_RESPONSE), 0, 'asc_time')
        assert wait_until(client.is_connected)
        with caplog.at_level(logging.DEBUG):
            ask(client, sp.SID_READ_REQUEST, 0)
    finally:
        endpoints.close()
    records = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert ('socket_protocol.example_client', logging.INFO, 'prot-client: TX -> service: read data request, '
            'data_id: asc_time, status: okay, data: "None"') in records
    assert ('tcp_socket.example_client', logging.DEBUG, 'comm-client: TX -> "(63): 7b 22 64 61 74 61 5f 69 64 22 3a '
            '20 30 2c 20 22 73 65 72 76 69 63 65 5f 69 64 22 3a 20 31 30 2c 20 22 73 74 61 74 75 73 22 3a 20 30 2c 20 '
            '22 64 61 74 61 22 3a 20 6e 75 6c 6c 7d 45 05 7b b4"') in records


def test_server_restart_client_reconnects(tmp_path):
    endpoints = Endpoints(tmp_path, 'tcp')
    try:
        server, client = endpoints.make()
        assert ask(client, sp.SID_EXECUTE_REQUEST, 1, 'first').get_data() == 'first'
        server.close()
        assert wait_until(lambda: not client.is_connected())
        server = sp.pure_json_protocol(sp.tcp_server_stp('127.0.0.1', endpoints.port))  # the port is free at once
        endpoints.closers.append(server.close)
        serve_demo(server)
        assert ask(client, sp.SID_EXECUTE_REQUEST, 1, 'second', timeout=5).get_data() == 'second'
    finally:
        endpoints.close()


def test_client_leaving_mid_frame_does_not_disturb_the_next(tmp_path):
    endpoints = Endpoints(tmp_path, 'tcp')
    try:
        server, client = endpoints.make()
        client.close()
        assert wait_until(lambda: not server.is_connected())
        rogue = socket.create_connection(('127.0.0.1', endpoints.port))
        rogue.sendall(frame(pure_json.encode(30, 0, 0, 'half'))[:30])
        rogue.close()
        assert wait_until(lambda: not server.is_connected())
        client = sp.pure_json_protocol(sp.tcp_client_stp('127.0.0.1', endpoints.port))
        endpoints.closers.append(client.close)
        assert ask(client, sp.SID_EXECUTE_REQUEST, 0, 'whole').get_data() == 'whole'
        assert endpoints.calls == ['whole']
    finally:
        endpoints.close()


def test_serial_port_reopens_after_unplug(tmp_path):
    endpoints = Endpoints(tmp_path, 'pty')
    try:
        server, client = endpoints.make()
        assert ask(client, sp.SID_EXECUTE_REQUEST, 0, 'before').get_data() == 'before'
        endpoints.cable.unplug()
        assert wait_until(lambda: not client.is_connected() and not server.is_connected())
        endpoints.cable.plug()
        # a serial line has no connection: bytes written before the other end opens are lost
        assert wait_until(lambda: client.is_connected() and server.is_connected())
        assert ask(client, sp.SID_EXECUTE_REQUEST, 0, 'after', timeout=5).get_data() == 'after'
    finally:
        endpoints.close()


def test_serial_url_socket(tmp_path):
    """A socket:// port's in_waiting says only whether a byte is there: it was read a byte at a time, each byte
    through the whole I/O path (20 us of CPU a byte: a 60 kB answer took most of request()'s 2 s). What came is
    read at once."""
    server = sp.pure_json_protocol(sp.tcp_server_stp('127.0.0.1', 0))
    comm = sp.serial_stp('socket://127.0.0.1:%d' % server.__comm_inst__.port)
    reads = []
    comm.register_callback(reads.append)
    client = sp.pure_json_protocol(comm)
    try:
        serve_demo(server)
        assert ask(client, sp.SID_EXECUTE_REQUEST, 3, [3]).get_data() == [3]
        reads.clear()
        assert ask(client, sp.SID_EXECUTE_REQUEST, 0, 'x' * 60000, timeout=5).get_data() == 'x' * 60000
        assert sum(map(len, reads)) > 60000 and len(reads) < 100, len(reads)
    finally:
        client.close()
        server.close()


def test_send_without_connection_times_out():
    client = sp.pure_json_protocol(sp.tcp_client_stp('127.0.0.1', 9))
    try:
        start = time.monotonic()
        assert client.send(sp.SID_READ_REQUEST, 0, None, timeout=0.3) is False
        assert 0.25 < time.monotonic() - start < 2
        assert client.receive(sp.SID_READ_RESPONSE, 0, timeout=0.1) is None
    finally:
        client.close()


def test_a_timer_asked_for_while_the_last_one_ends_fires_too():
    """A new connection's negotiation may ask for its timer just as the last timer ends, its tick having armed
    none: it must still get one, or its wire never settles."""
    client = sp.pure_json_protocol(sp.tcp_client_stp('127.0.0.1', 9))   # no connection: no timer of its own
    ending, go_on, ticks = threading.Event(), threading.Event(), []
    act_on = client._act_on

    def after_tick(*after):   # the first timer, its tick done and the lock given up
        if threading.current_thread() is ticks[0] and not ending.is_set():
            ending.set()
            go_on.wait(5)
        act_on(*after)
    client._engine.tick = lambda: ticks.append(threading.current_thread())
    client._act_on = after_tick
    try:
        client._tick_later(1)
        assert ending.wait(5)
        client._tick_later(1)
        go_on.set()
        assert wait_until(lambda: len(ticks) == 2, timeout=3), ticks
        assert ticks[0] is not ticks[1]
    finally:
        go_on.set()
        client.close()


def test_call_raises_what_request_returns_as_none():
    """call() tells the causes apart that request() answers with None or an error status."""
    server = sp.pure_json_protocol(sp.tcp_server_stp('127.0.0.1', 0), channel_name='server')
    port = server.__comm_inst__.port
    server.register_callback(sp.SID_EXECUTE_REQUEST, 0, lambda msg: (sp.STATUS_OKAY, msg.get_data()))
    client = sp.pure_json_protocol(sp.tcp_client_stp('127.0.0.1', port), channel_name='client')
    try:
        assert client.call(sp.SID_EXECUTE_REQUEST, 0, 'x', timeout=5) == 'x'
        with pytest.raises(sp.ErrorAnswer) as err:
            client.call(98, 0, timeout=5)
        assert err.value.status == sp.STATUS_SERVICE_OR_DATA_UNKNOWN
        server.add_data((sp.SID_READ_REQUEST, sp.SID_READ_RESPONSE), 5, 'later')   # buffered there, not answered
        with pytest.raises(sp.NoAnswer) as late:
            client.call(sp.SID_READ_REQUEST, 5, timeout=0.5)
        assert isinstance(late.value, TimeoutError)
    finally:
        client.close()
        server.close()
    silent = sp.pure_json_protocol(sp.tcp_client_stp('127.0.0.1', port), channel_name='nobody')
    try:
        with pytest.raises(sp.NotConnected) as refused:   # the server is gone: nothing to connect to
            silent.call(sp.SID_EXECUTE_REQUEST, 0, 'x', timeout=0.5)
        assert isinstance(refused.value, ConnectionError)
    finally:
        silent.close()


def test_a_callback_that_waits_holds_up_no_other_threads_call():
    """Callbacks run outside the protocol's lock (sp_common.dispatch): while one waits, other threads of the
    same protocol still send and look into the receive buffer."""
    started, release = threading.Event(), threading.Event()

    def slow(msg):
        started.set()
        release.wait(10)
        return sp.STATUS_OKAY, 'done'
    server = sp.pure_json_protocol(sp.tcp_server_stp('127.0.0.1', 0), channel_name='server')
    server.register_callback(sp.SID_EXECUTE_REQUEST, 0, slow)
    client = sp.pure_json_protocol(sp.tcp_client_stp('127.0.0.1', server.__comm_inst__.port), channel_name='client')
    try:
        asking = threading.Thread(target=lambda: client.request(sp.SID_EXECUTE_REQUEST, 0, timeout=10))
        asking.start()
        assert started.wait(10)
        other = threading.Thread(target=lambda: (server.receive(sp.SID_READ_REQUEST, 0, timeout=0),
                                                 server.send(sp.SID_READ_RESPONSE, 7, 'meanwhile', timeout=1)))
        other.start()
        other.join(5)
        assert not other.is_alive()   # it did not wait for the callback
        release.set()
        asking.join(10)
        assert client.receive(sp.SID_READ_RESPONSE, 7, timeout=0) is None   # sent, but nobody asked for it
    finally:
        release.set()
        client.close()
        server.close()


def test_a_number_out_of_range_is_malformed_json_on_the_host():
    """1e999 parses to inf, which no JSON carries back: the host drops such a frame as a format error, so no
    callback, receive() or `sp call --json` sees an inf (a board's json takes it; its codec refuses to send it)."""
    from sp_common import FormatError
    from sp_common.codec import _with_crc
    for data in (b'1e999', b'[1, -1e999]', b'{"x": 2E+400}'):
        body = b'{"data_id": 0, "service_id": 31, "status": 0, "data": ' + data + b'}'
        with pytest.raises(FormatError):
            pure_json.decode(b''.join(_with_crc((body,))))
    largest = b'{"data_id": 0, "service_id": 31, "status": 0, "data": 1e308}'
    assert pure_json.decode(b''.join(_with_crc((largest,))))[3] == 1e308
