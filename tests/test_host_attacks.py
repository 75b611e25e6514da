"""The host runtime against peers that misbehave: real loopback TCP and real pseudo-terminals."""
import contextlib
import enum
import logging
import os
import resource
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

import sp_cpython as sp
from sp_common import Engine, admission, frame, pure_json, struct_json
from sp_common.codec import _with_crc
from conftest import junk_flood_lasts, port_that_never_accepts, read_to_end, wait_until
from test_host import SECRET, Endpoints, ask, serve_demo


def wire(sid, did, data, status=0):
    return frame(pure_json.encode(sid, did, status, data))


@pytest.fixture
def tcp(tmp_path):
    endpoints = Endpoints(tmp_path, 'tcp')
    yield endpoints
    endpoints.close()


@pytest.fixture
def listener():
    """A raw TCP server socket that accepts and then does whatever the test makes it do."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)   # inherited by the accepted socket
        sock.bind(('127.0.0.1', 0))
        sock.listen(1)
        sock.settimeout(5)
        yield sock


def queued(sock):
    """How many bytes wait unread in sock (up to 64 KiB)."""
    try:
        return len(sock.recv(1 << 16, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except BlockingIOError:
        return 0


def returns_at_once(call):
    """Runs call() and asserts it did not wait on anything (generous: a lock held across a write takes seconds)."""
    start = time.monotonic()
    value = call()
    assert time.monotonic() - start < 0.5
    return value


@pytest.fixture
def unread(listener):
    """An original-wire client (a v2 one would wait for the session answer first) and the raw peer it is
    connected to, which reads nothing until the test makes it."""
    client = sp.pure_json_protocol(sp.tcp_client_stp('127.0.0.1', listener.getsockname()[1]), session_v2=False)
    try:
        peer, _ = listener.accept()
        assert wait_until(client.is_connected)
        yield client, peer
        peer.close()
    finally:
        client.close()


def timed_send(client, *args, **kwargs):
    """client.send(*args, **kwargs) on a thread of its own; the dict gets 'sent' and 'took' (seconds)."""
    result = {}

    def send():
        start = time.monotonic()
        result['sent'] = client.send(*args, **kwargs)
        result['took'] = time.monotonic() - start
    thread = threading.Thread(target=send)
    thread.start()
    return thread, result


def hold_the_link(client, peer):
    """A 4 MiB write that has begun and holds the link until the peer reads again."""
    thread = threading.Thread(target=client.send, args=(sp.SID_WRITE_REQUEST, 0, 'x' * (4 << 20)),
                              kwargs={'timeout': 10})
    thread.start()
    assert wait_until(lambda: queued(peer) > 1000)   # the channel name is 80 bytes
    return thread


def test_send_to_a_peer_that_stopped_reading_returns_within_its_timeout(unread):
    """A blocking write must not hold the protocol: receive() and counters answer meanwhile, send() gives up."""
    client, peer = unread
    thread, result = timed_send(client, sp.SID_EXECUTE_REQUEST, 0, 'x' * (16 << 20), timeout=2)
    assert wait_until(lambda: queued(peer) > 1000)   # the big write has begun (the channel name is 80 bytes)
    checks = 0
    while thread.is_alive():
        returns_at_once(lambda: client.counters)
        assert returns_at_once(lambda: client.receive(sp.SID_EXECUTE_RESPONSE, 0, timeout=0)) is None
        checks += 1
        time.sleep(0.05)
    thread.join()
    assert checks > 3
    assert result['sent'] is False and result['took'] < 4


def test_a_send_that_gives_up_while_another_write_holds_the_link_never_goes_out(unread):
    """False means not sent: a frame still queued when its send() gives up is taken back, or the caller's
    retry would run it twice."""
    client, peer = unread
    big = hold_the_link(client, peer)
    assert client.send(sp.SID_EXECUTE_REQUEST, 7, 'launch', timeout=0.3) is False
    heard = []      # the peer reads again, to the end: the big write ends, the next send goes out
    threading.Thread(target=lambda: heard.extend(iter(lambda: peer.recv(1 << 16), b'')), daemon=True).start()
    big.join(10)
    assert client.send(sp.SID_EXECUTE_REQUEST, 7, 'after', timeout=2)
    assert wait_until(lambda: b'"after"' in b''.join(heard))
    assert b'launch' not in b''.join(heard)


def test_the_wait_for_another_write_and_the_own_write_share_one_timeout(unread):
    client, peer = unread
    peer.settimeout(5)
    other = hold_the_link(client, peer)
    own, result = timed_send(client, sp.SID_EXECUTE_REQUEST, 0, 'y' * (8 << 20), timeout=1)
    time.sleep(0.7)
    while other.is_alive():     # the peer takes the other write, just before the caller's timeout, then stops
        peer.recv(1 << 16)
    own.join(5)
    assert result['sent'] is False and result['took'] < 1.5    # not 0.7 s of waiting plus a whole second


def test_a_send_with_timeout_zero_goes_out_on_a_link_that_takes_it(tcp):
    server, client = tcp.make()
    assert ask(client, sp.SID_EXECUTE_REQUEST, 0, 'settles the wire').get_data() == 'settles the wire'
    assert client.send(sp.SID_EXECUTE_REQUEST, 0, 'now', timeout=0)
    assert client.receive(sp.SID_EXECUTE_RESPONSE, 0, timeout=3).get_data() == 'now'
    assert client.is_connected()


def test_close_wakes_every_waiter(tcp):
    """receive() waiting on a connection and send() waiting for one both return when the protocol closes."""
    _, client = tcp.make()
    unconnected = sp.pure_json_protocol(sp.tcp_client_stp('127.0.0.1', 9))
    results = {}
    waiters = [
        threading.Thread(target=lambda: results.update(received=client.receive(sp.SID_READ_RESPONSE, 0, timeout=30))),
        threading.Thread(target=lambda: results.update(sent=unconnected.send(sp.SID_READ_REQUEST, 0, None, timeout=30))),
    ]
    for thread in waiters:
        thread.start()
    for thread in waiters:
        thread.join(0.3)
        assert thread.is_alive()   # really waiting
    start = time.monotonic()
    client.close()
    unconnected.close()
    for thread in waiters:
        thread.join(5)
        assert not thread.is_alive()
    assert time.monotonic() - start < 5
    assert results == {'received': None, 'sent': False}


def test_receive_with_a_timeout_inside_a_callback_raises_at_once(tcp):
    """Waiting on the I/O thread would stall the very link it waits for: it fails fast and says why."""
    server, client = tcp.make()
    seen = []

    def waits(msg):
        for call in (lambda: server.receive(sp.SID_READ_RESPONSE, 0, timeout=5),
                     lambda: server.request(sp.SID_READ_REQUEST, 0, timeout=5)):
            start = time.monotonic()
            try:
                call()
            except RuntimeError as err:
                seen.append((str(err), time.monotonic() - start))
        assert server.receive(sp.SID_READ_RESPONSE, 0, timeout=0) is None   # not waiting is fine
        return sp.STATUS_OKAY, 'answered'
    server.register_callback(sp.SID_EXECUTE_REQUEST, 5, waits)
    assert ask(client, sp.SID_EXECUTE_REQUEST, 5).get_data() == 'answered'
    assert len(seen) == 2
    for text, took in seen:   # the message names the call that raised it, and the way out
        assert 'request()' in text and 'receive() with a timeout' in text and 'receive(timeout=0)' in text
        assert 'inside a callback' in text and took < 1
    assert ask(client, sp.SID_EXECUTE_REQUEST, 1, 'still working').get_data() == 'still working'


@pytest.mark.parametrize('secret', [None, SECRET])
def test_an_idle_connection_does_not_lock_the_server(tcp, secret, monkeypatch):
    """Without a secret a silent peer, with one a peer that never authenticates, is dropped after PROBATION."""
    monkeypatch.setattr(admission, 'PROBATION_MS', 500)
    comm = sp.tcp_server_stp('127.0.0.1', 0)
    server = sp.pure_json_protocol(comm, secret=secret)
    tcp.closers.append(server.close)
    serve_demo(server)
    idle = socket.create_connection(('127.0.0.1', comm.port), timeout=5)
    tcp.closers.append(idle.close)
    if secret is not None:
        idle.sendall(wire(sp.SID_CHANNEL_NAME_REQUEST, 0, 'idler'))   # speaks, but never proves itself
    client = sp.pure_json_protocol(sp.tcp_client_stp('127.0.0.1', comm.port), secret=secret, auto_auth=True)
    tcp.closers.append(client.close)
    assert ask(client, sp.SID_EXECUTE_REQUEST, 0, 'served', timeout=5).get_data() == 'served'
    received = b''
    while True:
        data = idle.recv(4096)
        if not data:
            break
        received += data
    assert received == (wire(sp.SID_CHANNEL_NAME_RESPONSE, 0, None) if secret else b'')   # then dropped


def test_silent_connections_queued_ahead_hold_the_server_for_little(tcp, monkeypatch):
    """A peer that sends no valid frame within SILENCE is dropped long before its PROBATION ends."""
    monkeypatch.setattr(admission, 'SILENCE_MS', 300)
    comm = sp.tcp_server_stp('127.0.0.1', 0)
    server = sp.pure_json_protocol(comm, secret=SECRET)
    tcp.closers.append(server.close)
    serve_demo(server)
    for _ in range(4):
        tcp.closers.append(socket.create_connection(('127.0.0.1', comm.port), timeout=5).close)
    client = sp.pure_json_protocol(sp.tcp_client_stp('127.0.0.1', comm.port), secret=SECRET, auto_auth=True)
    tcp.closers.append(client.close)
    assert ask(client, sp.SID_EXECUTE_REQUEST, 0, 'served', timeout=4).get_data() == 'served'


def test_a_peer_on_probation_that_floods_junk_is_dropped_after_the_read(tcp):
    """A name, then ':<:>' (four bytes, a frame that is no message) without end: the threaded server fed it for the
    peer's whole probation (5 s at full CPU, slowing every server in the process); it goes after one read now,
    while a client that proved itself keeps its link through junk (bad input loses nothing)."""
    comm = sp.tcp_server_stp('127.0.0.1', 0)
    server = sp.pure_json_protocol(comm, secret=SECRET)
    tcp.closers.append(server.close)
    serve_demo(server)
    for _ in range(2):   # (the count starts over with each connection)
        with socket.create_connection(('127.0.0.1', comm.port), timeout=5) as flood:
            # dropped: its sends fail long before its probation ends
            assert junk_flood_lasts(flood, wire(sp.SID_CHANNEL_NAME_REQUEST, 0, 'flood')) < 3
    client = sp.pure_json_protocol(sp.tcp_client_stp('127.0.0.1', comm.port), secret=SECRET, auto_auth=True)
    tcp.closers.append(client.close)
    assert ask(client, sp.SID_EXECUTE_REQUEST, 0, 'served', timeout=4).get_data() == 'served'
    assert client.send(sp.SID_EXECUTE_REQUEST, 0, 'x')
    junk = b':<:>' * (admission.NOISE + 1)
    client._engine.frames_to_send = lambda send=client._engine.frames_to_send: [junk] + send()
    assert ask(client, sp.SID_EXECUTE_REQUEST, 0, 'still', timeout=4).get_data() == 'still'


def test_trust_on_a_serial_line_ends_with_the_program_that_earned_it(tmp_path):
    """A serial line has no connects: the next program's channel-name request starts it untrusted."""
    link = Endpoints(tmp_path, 'pty')
    try:
        server, program_a = link.make(server_secret=SECRET, client_secret=SECRET, auto_auth=True)
        assert ask(program_a, sp.SID_EXECUTE_REQUEST, 0, 'a').get_data() == 'a'
        assert server.check_authentification_state()
        program_a.close()
        program_b = sp.pure_json_protocol(sp.serial_stp(link.cable.path_b), channel_name='program_b')
        link.closers.append(program_b.close)
        for sid in (sp.SID_READ_REQUEST, sp.SID_EXECUTE_REQUEST):
            msg = ask(program_b, sid, 0, 'b')
            assert (msg.get_status(), msg.get_data()) == (sp.STATUS_AUTH_REQUIRED, None)
        assert not server.check_authentification_state() and server.channel_name == 'program_b'
        assert link.calls == ['a']
    finally:
        link.close()


@pytest.mark.parametrize('secret', [None, SECRET])
def test_an_answer_planted_on_one_connection_never_reaches_the_next(tcp, secret):
    """A peer that has not authenticated answers before anyone asked: the genuine caller gets the genuine answer.

    Without a secret the answer is kept (the ids are declared with add_data)
    but forgotten with the connection it came on; with one it is dropped at once.
    """
    comm = sp.tcp_server_stp('127.0.0.1', 0)
    caller = sp.pure_json_protocol(comm, secret=secret)
    tcp.closers.append(caller.close)
    caller.add_data((sp.SID_READ_REQUEST, sp.SID_READ_RESPONSE), 0, 'asc_time')
    rogue = socket.create_connection(('127.0.0.1', comm.port), timeout=5)
    rogue.sendall(wire(sp.SID_READ_RESPONSE, 0, 'planted'))
    assert wait_until(lambda: caller.counters['rx_messages'] == 1)
    assert caller.counters['auth_rejected'] == (secret is not None)
    rogue.close()
    assert wait_until(lambda: not caller.is_connected())
    assert caller.receive(sp.SID_READ_RESPONSE, 0, timeout=0) is None
    genuine = sp.pure_json_protocol(sp.tcp_client_stp('127.0.0.1', comm.port), secret=secret, auto_auth=True)
    tcp.closers.append(genuine.close)
    genuine.register_callback(sp.SID_READ_REQUEST, 0, lambda msg: (sp.STATUS_OKAY, 'genuine'))
    assert wait_until(genuine.connection_established)
    assert ask(caller, sp.SID_READ_REQUEST, 0).get_data() == 'genuine'
    assert caller.receive(sp.SID_READ_RESPONSE, 0, timeout=0) is None


def test_frames_a_write_took_for_one_connection_never_go_to_the_next(tcp):
    """A write took two frames for its client; between them that client left and the next one came: the second
    frame went to the newcomer, as the transport wrote to whichever connection was current."""
    comm = sp.tcp_server_stp('127.0.0.1', 0)
    server = sp.pure_json_protocol(comm, session_v2=False)
    tcp.closers.append(server.close)
    first = socket.create_connection(('127.0.0.1', comm.port), timeout=5)
    first.sendall(wire(sp.SID_CHANNEL_NAME_REQUEST, 0, 'first'))
    assert wait_until(lambda: server.counters['rx_messages'] == 1)
    write, held, go, was = comm._write, threading.Event(), threading.Event(), comm._conn

    def held_write(conn, data, deadline):
        write(conn, data, deadline)
        if b'taken for the first' in data:   # the first frame is out: the link changes hands
            held.set()
            go.wait(5)
    comm._write = held_write
    with server._lock:
        server._engine.send_msg(sp.SID_EXECUTE_REQUEST, 0, 'taken for the first')
    sender = threading.Thread(target=server.send, args=(sp.SID_EXECUTE_REQUEST, 0, 'also taken for the first'))
    sender.start()
    assert held.wait(5)
    first.close()
    newcomer = socket.create_connection(('127.0.0.1', comm.port), timeout=5)
    assert wait_until(lambda: comm._conn not in (None, was))
    go.set()
    sender.join(5)
    newcomer.sendall(wire(sp.SID_CHANNEL_NAME_REQUEST, 0, 'newcomer'))
    assert wait_until(lambda: server.counters['rx_messages'] == 2)
    newcomer.settimeout(0.5)
    got = b''
    with contextlib.suppress(socket.timeout):
        while True:
            got += newcomer.recv(4096) or b''
    newcomer.close()
    assert b'"service_id":= 9' in got and b'taken for the first' not in got, got   # its name's answer only


def test_a_late_answer_is_never_handed_to_a_later_request(tcp):
    """A callback slower than the caller's timeout: its answer arrives after the caller gave up.

    On the original wire an answer carries only its ids, so a late answer that
    arrives while a newer request on the same ids is in flight cannot be told
    from the newer one's (session v2 correlates them). This test lets the late
    answer land first; from then on the next request makes it stale and every
    caller gets its own answer.
    """
    server, client = tcp.make()

    def slow_echo(msg):
        if msg.get_data() == 'slow':
            time.sleep(0.6)
        return sp.STATUS_OKAY, msg.get_data()
    server.register_callback(sp.SID_EXECUTE_REQUEST, 9, slow_echo)
    assert ask(client, sp.SID_EXECUTE_REQUEST, 9, 'first').get_data() == 'first'
    received = client.counters['rx_messages']
    assert client.send(sp.SID_EXECUTE_REQUEST, 9, 'slow')
    assert client.receive(sp.SID_EXECUTE_RESPONSE, 9, timeout=0.3) is None   # the caller gave up
    assert wait_until(lambda: client.counters['rx_messages'] > received)   # the late answer is here
    for n in range(5):
        assert ask(client, sp.SID_EXECUTE_REQUEST, 9, n).get_data() == n
    assert client.counters['stale'] == 1
    assert client.receive(sp.SID_EXECUTE_RESPONSE, 9, timeout=0) is None


def test_a_reconnect_between_the_wait_and_the_send_sends_nothing(tcp):
    """The link comes back just after send() saw it ready: the request must not go out before the new
    connection's wire is settled (it would put the server on the original wire while the client goes v2)."""
    server, client = tcp.make()
    assert wait_until(lambda: client.session == 2)
    engine = client._engine
    may_send = engine.may_send

    def ready_then_reconnect():   # the first look finds the link ready, and then it is back
        ready = may_send()
        engine.may_send = may_send
        engine.connection_made()   # what the I/O thread does when the link is back at that moment
        return ready
    engine.may_send = ready_then_reconnect
    sent = client._engine.counters['tx_messages']
    assert client.send(sp.SID_EXECUTE_REQUEST, 0, 'x') is False
    assert client._engine.counters['tx_messages'] == sent + 2   # the new connection's name and offer, nothing else


def test_one_timeout_bounds_the_whole_request(listener):
    """A board that settles the wire just before the timeout and then reads nothing: request() still returns
    at its timeout, not after a second one for the answer (nor a third for the write)."""
    client = sp.pure_json_protocol(sp.tcp_client_stp('127.0.0.1', listener.getsockname()[1]))
    try:
        peer, _ = listener.accept()
        board = Engine(False)
        board.connection_made()
        start = time.monotonic()
        result = {}
        caller = threading.Thread(target=lambda: result.update(
            answer=client.request(sp.SID_EXECUTE_REQUEST, 0, 'x' * 60000, timeout=1)))
        caller.start()
        time.sleep(0.2)
        board.feed(peer.recv(1 << 16))   # the name and the session offer
        time.sleep(0.6)
        peer.sendall(board.data_to_send())   # answered late, and never another byte read
        caller.join(5)
        assert result == {'answer': None} and client.session == 2
        assert time.monotonic() - start < 1.5
        peer.close()
    finally:
        client.close()


@pytest.mark.parametrize('session_v2', [True, False])
def test_a_callback_answering_with_a_status_that_is_no_integer_is_a_callback_error(tcp, session_v2):
    """A status of None, True or a name would make a frame the peer drops: the requester would wait its whole
    timeout. It is the callback's error instead, answered and counted; send() refuses such ids at once."""
    server, client = tcp.make(session_v2=session_v2)
    for did, status in enumerate((None, True, 'okay')):
        server.register_callback(sp.SID_EXECUTE_REQUEST, 40 + did, lambda msg, status=status: (status, 'x'))
    for did in range(3):
        answer = returns_at_once(lambda: client.request(sp.SID_EXECUTE_REQUEST, 40 + did, None, timeout=3))
        assert answer is not None and answer.get_status() == sp.STATUS_CALLBACK_ERROR
    assert server.counters['callback_errors'] == 3 and client.counters['format_errors'] == 0
    for ids in ((sp.SID_EXECUTE_REQUEST, 0, 'okay'), (sp.SID_EXECUTE_REQUEST, None, 0), ('30', 0, 0)):
        with pytest.raises(TypeError, match='integers'):
            client.send(ids[0], ids[1], 'data', status=ids[2])
    assert client.request(sp.SID_EXECUTE_REQUEST, 0, 'still usable', timeout=3).get_data() == 'still usable'


def test_a_callback_that_exits_is_a_callback_error_and_the_io_thread_goes_on(tcp):
    """sys.exit() in a callback (argparse's, on arguments from the peer it cannot parse) would end the I/O
    thread without a word, and the link with it."""
    server, client = tcp.make()

    def exits(msg):
        sys.exit(2)
    server.register_callback(sp.SID_EXECUTE_REQUEST, 40, exits)
    for _ in range(2):
        answer = returns_at_once(lambda: client.request(sp.SID_EXECUTE_REQUEST, 40, None, timeout=3))
        assert answer is not None and answer.get_status() == sp.STATUS_CALLBACK_ERROR
    assert server.counters['callback_errors'] == 2
    assert client.request(sp.SID_EXECUTE_REQUEST, 0, 'still served', timeout=3).get_data() == 'still served'


def test_ids_of_int_and_str_subclasses_go_out_as_their_values():
    """An IntEnum of services or data ids is what users of such a library write; it is a number on the wire."""
    class Sid(enum.IntEnum):
        EXECUTE = sp.SID_EXECUTE_REQUEST

    class Name(str):
        def __str__(self):
            return 'not the value'

    class Colour(str, enum.Enum):
        RED = 'red'

    for codec in (pure_json, struct_json):
        assert codec.encode(Sid.EXECUTE, Sid.EXECUTE, Sid.EXECUTE, 'x') == codec.encode(30, 30, 30, 'x')
    assert pure_json.encode(30, Name('name'), 0, 1, seq=3) == pure_json.encode(30, 'name', 0, 1, seq=3)
    assert pure_json.encode(30, Colour.RED, 0, 1) == pure_json.encode(30, 'red', 0, 1)
    assert pure_json.decode(pure_json.encode(Sid.EXECUTE, 7, 0, None))[:3] == (30, 7, 0)


def test_data_that_contains_itself_is_refused_even_under_a_raised_recursion_limit():
    """A cycle in a caller's data is json.dumps's ValueError, not a recursion as deep as the limit (a crash)."""
    script = ('import sys; sys.setrecursionlimit(10 ** 6)\n'
              'from sp_common.host_json import dumps\n'
              'loop = []; loop.append({"a": loop})\n'
              'try:\n    dumps(loop)\nexcept ValueError as error:\n    print(error)\n')
    done = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, 'Circular reference detected')


def test_data_nested_past_the_recursion_limit_is_the_same_type_error_as_any_too_deep():
    """json's encoder recurses: data 100,000 levels deep was its RecursionError, not the TypeError of data deeper
    than a peer takes."""
    data = 0
    for _ in range(100000):
        data = [data]
    with pytest.raises(TypeError, match='nested deeper than a peer takes'):
        pure_json.encode(30, 0, 0, data)


def test_a_frame_of_the_densest_json_is_received_whole():
    """'"",' is three bytes of text for a string and a slot, 24 times that in a 64-bit host's heap: the host's
    receive buffer holds one whole frame of it (one of 4 KiB was dropped)."""
    listener = socket.create_server(('127.0.0.1', 0))
    client = sp.pure_json_protocol(sp.tcp_client_stp('127.0.0.1', listener.getsockname()[1]), max_frame=4096,
                                   session_v2=False)
    try:
        peer, _ = listener.accept()
        client.add_data((sp.SID_READ_REQUEST, sp.SID_READ_RESPONSE), 0, 'declared')
        body = b'{"data_id": 0, "service_id": %d, "status": 0, "data": [' % sp.SID_READ_RESPONSE + b'"",' * 1300 + b'""]}'
        peer.sendall(frame(body, _with_crc((body,))[-1]))
        msg = client.receive(sp.SID_READ_RESPONSE, 0, timeout=5)
        assert msg is not None and msg.get_data() == [''] * 1301
        assert client.counters['buffer_dropped'] == 0
        peer.close()
    finally:
        client.close()
        listener.close()


def test_a_send_whose_frame_went_with_another_callers_failed_write_returns_false():
    """A caller's write takes every frame queued, another caller's too; when the peer stops reading and that
    write fails, the other caller's send() says False (it said True for a frame that never went out)."""
    listener = socket.create_server(('127.0.0.1', 0))
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client = sp.pure_json_protocol(sp.tcp_client_stp('127.0.0.1', listener.getsockname()[1]), session_v2=False)
    try:
        peer, _ = listener.accept()   # reads nothing
        assert wait_until(client.is_connected)
        results = {}
        big = threading.Thread(target=lambda: results.update(
            big=client.send(sp.SID_EXECUTE_REQUEST, 1, 'x' * (8 << 20), timeout=1)))
        big.start()
        time.sleep(0.2)   # its write holds the link
        results['small'] = client.send(sp.SID_EXECUTE_REQUEST, 2, 'small frame', timeout=5)
        big.join(10)
        got = read_to_end(peer, 1)
        peer.close()
        listener.settimeout(1)
        try:   # the client's next link, where a frame still queued may go
            peer = listener.accept()[0]
            got += read_to_end(peer, 1)
            peer.close()
        except OSError:
            pass
        assert results['big'] is False
        assert results['small'] is (b'small frame' in got)
    finally:
        client.close()
        listener.close()


def _a_send_inside_a_callback(before=lambda server: None):
    """A callback that sends with auto_auth and no trust yet (after before(server)): its send() returns False at
    once, the request is answered, and nothing waits out the send's timeout."""
    server = sp.pure_json_protocol(sp.tcp_server_stp('127.0.0.1', 0), secret=SECRET, auto_auth=True)
    sent = []

    def notify(msg):
        before(server)
        sent.append(server.send(sp.SID_READ_REQUEST, 0, 'news', timeout=3))
        return sp.STATUS_OKAY, 'done'
    server.add_msg_to_auth_whitelist_(sp.SID_EXECUTE_REQUEST, 0)
    server.register_callback(sp.SID_EXECUTE_REQUEST, 0, notify)
    client = sp.pure_json_protocol(sp.tcp_client_stp('127.0.0.1', server.__comm_inst__.port))
    try:
        start = time.monotonic()
        answer = client.request(sp.SID_EXECUTE_REQUEST, 0, None, timeout=5)
        assert answer is not None and answer.get_data() == 'done' and sent == [False]
        assert time.monotonic() - start < 1.5
    finally:
        client.close()
        server.close()


def test_a_send_inside_a_callback_that_cannot_go_yet_holds_up_no_link():
    """A callback runs on the I/O thread: a send() there that would wait (no trust yet, with auto_auth) returns
    False at once, where it stalled the link it waited for until its timeout."""
    _a_send_inside_a_callback()


def test_a_step_on_the_timer_thread_leaves_a_callback_on_the_io_thread_a_callback():
    """The timer thread runs engine steps too (sp_common.dispatch). One that ends while a callback runs on the I/O
    thread left that callback's send() taken for an outside caller's: it waited for trust until its timeout,
    the link it waited for stalled meanwhile."""
    def timer_step(server):   # begun and ended while the callback runs
        timer = threading.Thread(target=server._run_engine, args=(server._engine.tick,))
        timer.start()
        timer.join()
    _a_send_inside_a_callback(timer_step)


def test_a_step_on_the_timer_thread_runs_no_callback_of_the_io_threads_step():
    """Two requests in one read make two callbacks, run in order on the I/O thread. A timer step that came while
    the first ran took the second and ran it at once, on the timer thread: out of order, and on the original
    wire, where answers go by order, the answers swapped."""
    comm = sp.tcp_server_stp('127.0.0.1', 0)
    server = sp.pure_json_protocol(comm, session_v2=False)
    ran = []
    first_runs, timer_done = threading.Event(), threading.Event()

    def callback(msg):
        ran.append((msg.get_data(), threading.current_thread().name))
        if msg.get_data() == 'first':
            first_runs.set()
            timer_done.wait(5)
        return sp.STATUS_OKAY, msg.get_data()
    server.register_callback(sp.SID_EXECUTE_REQUEST, 0, callback)
    try:
        with socket.create_connection(('127.0.0.1', comm.port), timeout=5) as peer:
            peer.sendall(wire(sp.SID_CHANNEL_NAME_REQUEST, 0, None) + wire(sp.SID_EXECUTE_REQUEST, 0, 'first')
                         + wire(sp.SID_EXECUTE_REQUEST, 0, 'second'))
            assert first_runs.wait(5)
            timer = threading.Thread(target=server._run_engine, args=(server._engine.tick,), name='timer')
            timer.start()
            timer.join(5)
            timer_done.set()
            assert wait_until(lambda: len(ran) == 2)
        io_thread = comm._thread.name
        assert ran == [('first', io_thread), ('second', io_thread)]
    finally:
        server.close()


def test_a_tcp_server_in_a_process_holding_over_1023_descriptors_serves_its_client():
    """select.select refuses descriptors over 1023; a busy application holds more than that."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(2048, hard), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        server = sp.pure_json_protocol(sp.tcp_server_stp('127.0.0.1', 0))
        server.register_callback(sp.SID_EXECUTE_REQUEST, 0, lambda msg: (sp.STATUS_OKAY, msg.get_data()))
        client = sp.pure_json_protocol(sp.tcp_client_stp('127.0.0.1', server.__comm_inst__.port))
        try:
            answer = client.request(sp.SID_EXECUTE_REQUEST, 0, 'hello', timeout=5)
            assert answer is not None and answer.get_data() == 'hello'
        finally:
            client.close()
            server.close()
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@contextlib.contextmanager
def a_peer_reading_until(*marks):
    """(client, what its peer got): a client on a link whose peer reads until every mark has come, then nothing."""
    listener = socket.create_server(('127.0.0.1', 0))
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client = sp.pure_json_protocol(sp.tcp_client_stp('127.0.0.1', listener.getsockname()[1]), session_v2=False)
    try:
        peer, _ = listener.accept()
        assert wait_until(client.is_connected)
        got = []

        def read():
            while not all(mark in b''.join(got) for mark in marks):
                got.append(peer.recv(4096))
        reader = threading.Thread(target=read)
        reader.start()
        yield client, got
        reader.join(5)
    finally:
        client.close()
        listener.close()


def test_a_send_whose_frame_went_first_in_a_write_that_failed_behind_it_returns_true():
    """Another thread's frame queued behind the caller's in the same write, and the peer stopped reading after
    the caller's frame: the caller's send() says True (its request arrived; a retry would run it twice)."""
    with a_peer_reading_until(b'small frame') as (client, got):
        engine = client._engine
        take = engine.frames_to_send

        def another_thread_queues_first():   # (the race of a second caller, made certain)
            engine.frames_to_send = take
            engine.send_msg(sp.SID_EXECUTE_REQUEST, 9, 'x' * (8 << 20))
            return take()
        engine.frames_to_send = another_thread_queues_first
        assert client.send(sp.SID_EXECUTE_REQUEST, 2, 'small frame', timeout=1) is True
    assert b'small frame' in b''.join(got)


def test_a_send_whose_frame_went_in_another_callers_write_returns_true_though_a_frame_behind_failed():
    """C queues its frame and is held before it writes; A's write takes C's frame and its own, and B's frame (queued
    behind A's) fails, the peer reading nothing more: C's send() says True (its request arrived: a retry would run
    it twice), A's True, B's False."""
    with a_peer_reading_until(b'"C"', b'"A"') as (client, got):
        flush = client._flush
        queued = {name: threading.Event() for name in 'CAB'}
        a_wrote = threading.Event()

        def held(timeout, own=None):   # (the order of the three threads, made certain)
            me = threading.current_thread().name
            if me not in queued:   # (the I/O thread's, once the link is back)
                return flush(timeout, own)
            queued[me].set()
            if me == 'C' or me == 'B':
                a_wrote.wait(5)
            else:
                queued['B'].wait(5)
            try:
                return flush(timeout, own)
            finally:
                if me == 'A':
                    a_wrote.set()
        client._flush = held
        results = {}
        threads = []
        for name, data in (('C', 'C'), ('A', 'A'), ('B', 'x' * (8 << 20))):
            threads.append(threading.Thread(target=lambda n=name, d=data: results.update(
                {n: client.send(sp.SID_EXECUTE_REQUEST, 0, d, timeout=1)}), name=name))
            threads[-1].start()
            assert queued[name].wait(5)
        for thread in threads:
            thread.join(10)
    assert results == {'C': True, 'A': True, 'B': False}

def test_a_send_whose_frame_another_write_has_taken_says_how_that_write_went():
    """C's wait for the link runs out while W's write, which took C's frame along with its own, is still writing:
    C's send() says True once W's write has written it (it said False, and the frame went out after it: a
    retry would have run it twice)."""
    with a_peer_reading_until(b'"C"', b'"W"') as (client, got):
        lock, send = client._write_lock, client._send
        c_queued, c_returned = threading.Event(), threading.Event()

        class Ordered:   # (the order of the two threads, made certain): W holds the link, then C queues and waits
            def acquire(self, timeout=-1):
                if threading.current_thread().name == 'C':
                    c_queued.set()
                    return lock.acquire(timeout=timeout)
                taken = lock.acquire(timeout=timeout)
                if threading.current_thread().name == 'W':
                    c_queued.wait(5)   # W takes the frames once C's is queued too
                return taken

            def release(self):
                lock.release()

        def slow_send(data, end, link):   # W's own frame takes longer to write than C waits for the link
            if b'"W"' in data:
                c_returned.wait(2)
            return send(data, end, link)
        client._write_lock, client._send = Ordered(), slow_send
        results = {}

        def sends(name, timeout):
            results[name] = client.send(sp.SID_EXECUTE_REQUEST, 0, name, timeout=timeout)
            if name == 'C':
                c_returned.set()
        w = threading.Thread(target=sends, args=('W', 10), name='W')
        w.start()
        time.sleep(0.2)   # W holds the link and waits for C's frame
        c = threading.Thread(target=sends, args=('C', 0.5), name='C')
        c.start()
        c.join(10)
        w.join(10)
    assert results == {'W': True, 'C': True}
    assert b'"C"' in b''.join(got)


def test_peers_that_reset_their_connections_write_no_warnings(tcp, caplog):
    """A reset is a peer's way to leave, and any peer can do it in a loop: the server logs it at INFO, whether
    its read or its write of an answer meets it."""
    comm = sp.tcp_server_stp('127.0.0.1', 0)
    server = sp.pure_json_protocol(comm, session_v2=False)
    server.register_callback(sp.SID_READ_REQUEST, 0, lambda msg: (time.sleep(0.2), (sp.STATUS_OKAY, 'late'))[1])
    tcp.closers.append(server.close)
    caplog.set_level(logging.INFO)
    warnings = []
    for sent in [b'x'] * 3 + [wire(sp.SID_CHANNEL_NAME_REQUEST, 0, None) + wire(sp.SID_READ_REQUEST, 0, None)] * 3:
        with socket.create_connection(('127.0.0.1', comm.port), timeout=5) as peer:
            peer.sendall(sent)
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))   # close sends RST
        assert wait_until(lambda: 'connection lost' in caplog.text)
        warnings += [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        caplog.clear()
    assert warnings == []


def test_log_text_escapes_every_character_that_shows_nothing():
    """Every format character, and the others that show nothing, is escaped: two ids differing by one looked
    alike (a variation selector, the combining grapheme joiner and the Hangul fillers passed before)."""
    import unicodedata
    from sp_common.logtext import printable
    hidden = [chr(code) for code in range(0x110000) if unicodedata.category(chr(code)) in ('Cf', 'Zl', 'Zp')]
    hidden += ['\ufe0f', '\U000e0100', '\u034f', '\u115f', '\u1160', '\u3164', '\uffa0']
    assert [ch for ch in hidden if printable('kitchen' + ch) == 'kitchen' + ch] == []
    assert printable('kitchen \u00e9\u4e2d\U0001f600') == 'kitchen \u00e9\u4e2d\U0001f600'   # what shows, shows


def test_close_returns_at_once_while_a_burst_of_callbacks_waits():
    """A server sends a burst of requests for a callback that takes 25 ms: the I/O thread ran every one of them
    before it looked at anything else, so close() waited out its 5 s and callbacks ran on a closed protocol."""
    listener = socket.create_server(('127.0.0.1', 0))
    ran = []

    def hostile():
        conn, _ = listener.accept()
        conn.recv(65536)   # the client's name
        peer = Engine(True, session_v2=False)
        for n in range(200):
            peer.send_msg(sp.SID_EXECUTE_REQUEST, 1, n)
        conn.sendall(peer.data_to_send())
        time.sleep(10)
        conn.close()
    threading.Thread(target=hostile, daemon=True).start()
    client = sp.pure_json_protocol(sp.tcp_client_stp('127.0.0.1', listener.getsockname()[1]), session_v2=False)
    client.register_callback(sp.SID_EXECUTE_REQUEST, 1, lambda msg: (time.sleep(0.025), ran.append(1)) and None)
    try:
        assert wait_until(lambda: ran, 5)
        start = time.monotonic()
        client.close()
        assert time.monotonic() - start < 1
        closed = len(ran)
        time.sleep(0.3)
        assert len(ran) <= closed + 1 < 200   # (the callback running as close() came may end)
    finally:
        client.close()
        listener.close()


def test_a_burst_of_whitelisted_requests_on_probation_holds_a_newcomer_no_longer_than_a_stall():
    """A peer that never proves itself sends a burst of requests for a whitelisted callback that takes 10 ms: the
    server ran all of them before admission looked again, holding a genuine newcomer off for seconds."""
    server = sp.pure_json_protocol(sp.tcp_server_stp('127.0.0.1', 0), secret=SECRET)
    server.add_msg_to_auth_whitelist_(sp.SID_READ_REQUEST, 'version')
    server.register_callback(sp.SID_READ_REQUEST, 'version', lambda msg: time.sleep(0.01) or (sp.STATUS_OKAY, '1'))
    server.register_callback(sp.SID_READ_REQUEST, 0, lambda msg: (sp.STATUS_OKAY, 'time'))
    peer = Engine(True, session_v2=False)
    for _ in range(600):
        peer.send_msg(sp.SID_READ_REQUEST, 'version', None)
    squatter = socket.create_connection(('127.0.0.1', server.__comm_inst__.port))
    client = None
    try:
        squatter.sendall(peer.data_to_send())
        time.sleep(0.1)
        start = time.monotonic()
        client = sp.pure_json_protocol(sp.tcp_client_stp('127.0.0.1', server.__comm_inst__.port), secret=SECRET,
                                       auto_auth=True)
        assert wait_until(lambda: client.request(sp.SID_READ_REQUEST, 0, timeout=0.5) is not None, 10)
        assert time.monotonic() - start < 2.5   # (600 callbacks: 6 s)
    finally:
        squatter.close()
        if client is not None:
            client.close()
        server.close()


def test_close_frees_a_client_at_once_while_it_connects_to_a_peer_that_never_accepts():
    """A server whose listen backlog is full takes no connect: the client's connect ran out its 2 s, and close()
    waited for it."""
    with port_that_never_accepts() as port:
        comm = sp.tcp_client_stp('127.0.0.1', port)
        prot = sp.pure_json_protocol(comm)
        time.sleep(0.3)   # its I/O thread is connecting
        start = time.monotonic()
        prot.close()
        assert time.monotonic() - start < 0.5 and not comm._thread.is_alive()


def test_a_call_that_waited_takes_no_frame_another_caller_queued_meanwhile_for_its_own(tcp):
    """The driver took what the engine queued since an operation's step began for the operation's own frame; a
    wait leaves the lock, and a frame another caller queued meanwhile was taken (an authentificate() queues none
    while a handshake runs): that write's outcome went to the wrong caller, and the one whose frame it was said
    False for a frame that went out, so that its retry ran twice."""
    server, client = tcp.make()
    assert client.request(sp.SID_EXECUTE_REQUEST, 0, 'up', timeout=5) is not None
    release, done = threading.Event(), []

    def operation():   # waits, then asks for a write of what it queued itself: nothing
        end = client._engine.clock() + 5000
        yield release.is_set, end
        yield None, end
        return 'done'
    waiter = threading.Thread(target=lambda: done.append(client._drive(operation())))
    waiter.start()
    assert wait_until(lambda: client.__comm_inst__._turns.lock.locked())   # it waits, reading the link
    comm = client.__comm_inst__
    wake, comm.on_wake = comm.on_wake, None   # (the I/O thread must not write theirs before the waiter looks)
    with client._lock:   # another caller's send(), as far as its frame is queued and noted
        client._engine.send_msg(sp.SID_EXECUTE_REQUEST, 0, 'theirs')
        theirs = client._engine.queued
        client._went[id(theirs)] = None
    release.set()
    assert server.send(sp.SID_EXECUTE_RESPONSE, 5, None, timeout=2)   # (bytes that end the waiter's read)
    waiter.join(5)
    comm.on_wake = wake
    assert done == ['done']
    assert client._went.get(id(theirs)) is True   # its caller is told its frame went


def test_a_peer_that_floods_requests_nobody_serves_meets_back_pressure_not_an_outbox_that_grows(listener):
    """Each request on ids without a callback gets the engine's own answer (unknown): a caller that waits reads
    on while the I/O thread writes those answers a frame at a time, and the outbox grew by 10 MB a second for as
    long as the peer sent and read (143 MB after 24 s)."""
    client = sp.pure_json_protocol(sp.tcp_client_stp('127.0.0.1', listener.getsockname()[1]), session_v2=False)
    stop = threading.Event()
    try:
        peer, _ = listener.accept()
        peer.settimeout(None)
        assert wait_until(client.is_connected)
        flood = wire(sp.SID_EXECUTE_REQUEST, 99, None) * 1000

        def send():
            with contextlib.suppress(OSError):   # (until the test ends and closes it)
                while not stop.is_set():
                    peer.sendall(flood)

        def read():
            with contextlib.suppress(OSError):
                while peer.recv(1 << 16):
                    pass
        for job in (send, read):
            threading.Thread(target=job, daemon=True).start()
        waiting = threading.Thread(target=client.request, args=(sp.SID_READ_REQUEST, 0, None, 4))
        waiting.start()
        longest = 0
        end = time.monotonic() + 3
        while time.monotonic() < end:
            longest = max(longest, len(client._engine._out))
            time.sleep(0.01)
        assert client.counters['unknown'] > 10000   # the flood was served ...
        assert longest < 5000, longest              # ... and what waits to go out stays within a read or two
        waiting.join(5)
    finally:
        stop.set()
        client.close()
        peer.close()


def test_close_ends_the_negotiations_timer_with_the_protocol(listener):
    """A client whose server answers its name, not its session offer, waits NEGOTIATE_MS on a timer; close() left
    that timer's thread alive for up to 3 s, to tick a closed protocol."""
    client = sp.pure_json_protocol(sp.tcp_client_stp('127.0.0.1', listener.getsockname()[1]))
    peer, _ = listener.accept()
    try:
        peer.sendall(wire(sp.SID_CHANNEL_NAME_RESPONSE, sp.DID_CHANNEL_NAME, None))
        assert wait_until(lambda: client._timer is not None)
        timer = client._timer
        client.close()
        timer.join(1)
        assert not timer.is_alive()
    finally:
        peer.close()


def test_a_callback_that_sent_much_and_takes_its_time_holds_up_no_callers_read(listener):
    """What a callback sends waits in the outbox until it returns; counted with the engine's own replies to the
    reads of callers, 64 of them made every caller stop reading until the callback returned."""
    client = sp.pure_json_protocol(sp.tcp_client_stp('127.0.0.1', listener.getsockname()[1]), session_v2=False)
    release = threading.Event()

    def slow(msg):   # sends 100 notices (they go once it returns), then works on
        for i in range(100):
            client.send(sp.SID_WRITE_REQUEST, 0, i)
        release.wait(10)
        return sp.STATUS_OKAY, None
    client.register_callback(sp.SID_EXECUTE_REQUEST, 1, slow)
    try:
        peer, _ = listener.accept()
        assert wait_until(client.is_connected)

        def board():
            peer.recv(1 << 16)                                          # the request
            peer.sendall(wire(sp.SID_EXECUTE_REQUEST, 1, None))         # starts the slow callback
            time.sleep(0.3)
            peer.sendall(wire(sp.SID_WRITE_RESPONSE, 5, 'telemetry'))   # something else the board says
            time.sleep(0.2)
            peer.sendall(wire(sp.SID_READ_RESPONSE, 0, 'answer'))       # the answer
        threading.Thread(target=board, daemon=True).start()
        answer = client.request(sp.SID_READ_REQUEST, 0, None, timeout=3)
        assert answer is not None and answer.get_data() == 'answer'
        assert not release.is_set()   # (read while the callback still worked)
    finally:
        release.set()
        client.close()
