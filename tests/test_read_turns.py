"""A caller that waits on a TCP client link reads it itself (sp_cpython.turns): its answer comes without a hand-over
between threads, while callbacks still run on the I/O thread and losses still reach it."""
import os
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from conftest import ROOT, wait_until
import sp_cpython as sp
from sp_cpython import turns


@pytest.fixture
def pair():
    server = sp.pure_json_protocol(sp.tcp_server_stp('127.0.0.1', 0), channel_name='server')
    server.register_callback(sp.SID_EXECUTE_REQUEST, 0, lambda msg: (sp.STATUS_OKAY, msg.get_data()))
    client = sp.pure_json_protocol(sp.tcp_client_stp('127.0.0.1', server.__comm_inst__.port), channel_name='client')
    yield server, client
    client.close()
    server.close()


def feeding_threads(prot):
    """The names of the threads that feed prot's engine, in order (a spy around Engine.feed)."""
    names = []
    feed = prot._engine.feed

    def spy(data):
        names.append(threading.current_thread().name)
        return feed(data)
    prot._engine.feed = spy
    return names


def test_a_waiting_caller_reads_its_own_answer(pair):
    """Most answers: one that comes before its caller has taken the turn (a caller is taken off its core right
    after its write) is read by the I/O thread, as before; the I/O thread alone read every one."""
    server, client = pair
    assert turns.AVAILABLE   # (Linux: the platform the suite runs on)
    assert client.request(sp.SID_EXECUTE_REQUEST, 0, 'first', timeout=5).get_data() == 'first'
    fed = feeding_threads(client)
    for i in range(40):
        assert client.request(sp.SID_EXECUTE_REQUEST, 0, i, timeout=5).get_data() == i
    assert len(fed) >= 40 and fed.count(threading.current_thread().name) >= 20, fed


def test_a_callback_for_bytes_a_caller_read_runs_on_the_io_thread_at_once(pair):
    server, client = pair
    ran_on = []

    def answer(msg):
        ran_on.append(threading.current_thread().name)
        return sp.STATUS_OKAY, msg.get_data()
    client.register_callback(sp.SID_EXECUTE_REQUEST, 1, answer)
    assert client.request(sp.SID_EXECUTE_REQUEST, 0, 'up', timeout=5).get_data() == 'up'
    fed = feeding_threads(client)
    assert wait_until(lambda: not client.__comm_inst__._turns.lock.locked(), 2)   # the I/O thread has read 'up'
    waiting = threading.Thread(target=client.receive, args=(sp.SID_READ_RESPONSE, 9, 4), name='waiter')
    waiting.start()
    assert wait_until(lambda: client.__comm_inst__._turns.lock.locked(), 2)   # the waiter holds the turn
    start = time.monotonic()
    assert server.send(sp.SID_EXECUTE_REQUEST, 1, 'from the server', timeout=2)
    answer_msg = server.receive(sp.SID_EXECUTE_RESPONSE, 1, timeout=3)
    took = time.monotonic() - start
    assert waiting.is_alive()   # still waiting for its own message: the answer did not wait for it
    assert answer_msg is not None and answer_msg.get_data() == 'from the server'
    assert took < 2, took
    assert fed[0] == 'waiter', fed       # the waiter read the request ...
    assert ran_on == ['tcp_client_stp']  # ... and the I/O thread ran its callback
    client.close()   # (wakes the waiter)
    waiting.join(5)


def test_a_callback_that_takes_its_time_holds_up_no_callers_read_of_its_answer(pair):
    """The I/O thread gives its turn back before it runs the callbacks its read queued: while one of them waits,
    another thread's request() reads its own answer."""
    server, client = pair
    started, release = threading.Event(), threading.Event()

    def slow(msg):
        started.set()
        release.wait(10)
        return sp.STATUS_OKAY, 'done'
    client.register_callback(sp.SID_EXECUTE_REQUEST, 1, slow)
    try:
        assert client.request(sp.SID_EXECUTE_REQUEST, 0, 'up', timeout=5).get_data() == 'up'
        assert server.send(sp.SID_EXECUTE_REQUEST, 1, 'take your time', timeout=2)
        assert started.wait(5)   # the I/O thread read the request, and its callback waits
        answer = client.request(sp.SID_EXECUTE_REQUEST, 0, 'meanwhile', timeout=2)
        assert answer is not None and answer.get_data() == 'meanwhile'
        assert not release.is_set() and client.counters['stale'] == 0
    finally:
        release.set()
    done = server.receive(sp.SID_EXECUTE_RESPONSE, 1, timeout=5)
    assert done is not None and done.get_data() == 'done'   # the callback's answer went once it returned


def test_a_caller_already_waiting_reads_its_answer_while_a_callback_takes_its_time(pair):
    """The request for a slow callback comes while a caller waits for its own answer, which comes right behind:
    whichever thread read the request, the caller went on waiting until the callback returned (its answer then
    stale), as callers read no more while work a read left was undone, and none was told the turn came free."""
    server, client = pair
    release = threading.Event()
    client.register_callback(sp.SID_EXECUTE_REQUEST, 1, lambda msg: release.wait(10) and (sp.STATUS_OKAY, 'done'))

    def ask_then_answer(msg):   # the server asks the client's slow callback first, then answers
        threading.Thread(target=server.send, args=(sp.SID_EXECUTE_REQUEST, 1, 'take your time')).start()
        time.sleep(0.1)
        return sp.STATUS_OKAY, msg.get_data()
    server.register_callback(sp.SID_EXECUTE_REQUEST, 3, ask_then_answer)
    try:
        assert client.request(sp.SID_EXECUTE_REQUEST, 0, 'up', timeout=5).get_data() == 'up'
        for n in range(3):
            answer = client.request(sp.SID_EXECUTE_REQUEST, 3, n, timeout=2)
            assert answer is not None and answer.get_data() == n, n
        assert not release.is_set() and client.counters['stale'] == 0
    finally:
        release.set()


def test_callers_read_no_more_while_the_callbacks_queued_are_many(pair):
    """A peer floods messages whose callback waits, while a thread polls with request(): callers went on reading
    while the I/O thread was inside that callback, and the callbacks queued for it grew without bound (48,000 in
    12 s from a hostile server). Now a caller reads no more while MAX_QUEUED_CALLBACKS wait: the link is left
    unread, and the peer meets TCP's back pressure."""
    server, client = pair
    release, stop = threading.Event(), threading.Event()
    client.register_callback(sp.SID_READ_RESPONSE, 'event', lambda msg: release.wait(10) and None)
    assert client.request(sp.SID_EXECUTE_REQUEST, 0, 'up', timeout=5).get_data() == 'up'

    def flood():
        while not stop.is_set() and server.send(sp.SID_READ_RESPONSE, 'event', 'x' * 20, timeout=0.5):
            pass

    def poll():
        while not stop.is_set():
            client.request(sp.SID_EXECUTE_REQUEST, 0, 'poll', timeout=0.1)
    threads = [threading.Thread(target=flood), threading.Thread(target=poll)]
    for thread in threads:
        thread.start()
    most = 0
    try:
        for _ in range(60):
            time.sleep(0.05)
            most = max(most, len(client._engine.jobs))
    finally:
        stop.set()
        release.set()
        for thread in threads:
            thread.join(10)
    assert 0 < most < 3000, most   # (a read takes 64 KiB at most: some 700 of these frames)


def test_a_caller_that_reads_the_end_leaves_the_loss_to_the_io_thread(pair):
    server, client = pair
    lost, made = [], []
    client.__comm_inst__.register_disconnect_callback(lambda: lost.append(threading.current_thread().name))
    assert client.request(sp.SID_EXECUTE_REQUEST, 0, 'up', timeout=5).get_data() == 'up'
    client.__comm_inst__.register_connect_callback(lambda: made.append(1))
    made.clear()
    server.register_callback(sp.SID_EXECUTE_REQUEST, 2, lambda msg: server.reconnect())   # drops the client
    start = time.monotonic()
    assert client.request(sp.SID_EXECUTE_REQUEST, 2, 'go away', timeout=2) is None
    assert time.monotonic() - start < 3
    assert lost == ['tcp_client_stp']
    assert wait_until(lambda: made, 5)   # the I/O thread connected again
    assert client.request(sp.SID_EXECUTE_REQUEST, 0, 'again', timeout=5).get_data() == 'again'


def test_close_wakes_a_caller_that_reads_however_long_its_timeout(pair):
    server, client = pair
    assert client.request(sp.SID_EXECUTE_REQUEST, 0, 'up', timeout=5).get_data() == 'up'
    outcome = []

    def wait():
        try:
            outcome.append(client.receive(sp.SID_READ_RESPONSE, 9, timeout=3e6))   # (more than poll() takes)
        except Exception as err:
            outcome.append(err)
    assert wait_until(lambda: not client.__comm_inst__._turns.lock.locked(), 2)   # the I/O thread has read 'up'
    waiting = threading.Thread(target=wait)
    waiting.start()
    assert wait_until(lambda: client.__comm_inst__._turns.lock.locked(), 2)
    start = time.monotonic()
    client.close()
    waiting.join(5)
    assert not waiting.is_alive() and time.monotonic() - start < 1.5
    assert outcome == [None]


def test_a_caller_that_reads_is_not_held_past_its_timeout_by_the_engines_own_writes():
    """The engine's own answers to what a caller read (here: unknown service, to a flood of requests) are the
    I/O thread's to write: toward a peer that reads nothing, a write may take its whole 2 s."""
    release = threading.Event()
    server = sp.pure_json_protocol(sp.tcp_server_stp('127.0.0.1', 0), channel_name='server')
    server.register_callback(sp.SID_EXECUTE_REQUEST, 0, lambda msg: (sp.STATUS_OKAY, msg.get_data()))
    server.register_callback(sp.SID_EXECUTE_REQUEST, 7, lambda msg: release.wait(10) and (sp.STATUS_OKAY, 'late'))
    client = sp.pure_json_protocol(sp.tcp_client_stp('127.0.0.1', server.__comm_inst__.port), channel_name='client')
    flooding = threading.Thread(target=lambda: [server.send(sp.SID_EXECUTE_REQUEST, 3, 'x' * 200, timeout=2)
                                                for _ in range(3000)], daemon=True)
    try:
        assert client.request(sp.SID_EXECUTE_REQUEST, 0, 'up', timeout=5).get_data() == 'up'
        server.__comm_inst__._conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.__comm_inst__._conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        client.send(sp.SID_EXECUTE_REQUEST, 7, None)   # the server's I/O thread now waits in its callback
        time.sleep(0.3)
        flooding.start()
        took = []
        for _ in range(8):
            start = time.monotonic()
            client.receive(sp.SID_READ_RESPONSE, 9, timeout=0.3)
            took.append(time.monotonic() - start)
        assert max(took) < 0.8, took
        assert client.counters['unknown'] > 0   # the flood came, and was answered by the engine
    finally:
        release.set()
        client.close()
        server.close()


NO_DESCRIPTORS = r'''
import logging, os, resource
import sp_cpython as sp
import sp_common.session   # (loaded by a connect: here before the descriptors run out)
from conftest import wait_until
logging.basicConfig(level=logging.WARNING)
server = sp.pure_json_protocol(sp.tcp_server_stp('127.0.0.1', 0))
server.register_callback(sp.SID_EXECUTE_REQUEST, 0, lambda msg: (sp.STATUS_OKAY, msg.get_data()))
resource.setrlimit(resource.RLIMIT_NOFILE, (128, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
hog = []
try:
    while True:
        hog.append(os.open(os.devnull, os.O_RDONLY))
except OSError:
    pass
for _ in range(2):   # room for the client's socket and the server's end of it, none for the turns
    os.close(hog.pop())
client = sp.pure_json_protocol(sp.tcp_client_stp('127.0.0.1', server.__comm_inst__.port))
assert wait_until(client.is_connected)
for fd in hog:
    os.close(fd)
answer = client.request(sp.SID_EXECUTE_REQUEST, 0, 'still served', timeout=5)
print(answer.get_data(), client.__comm_inst__._thread.is_alive())
'''


def test_a_connection_without_descriptors_for_the_turns_is_read_by_the_io_thread_alone():
    out = subprocess.run([sys.executable, '-c', NO_DESCRIPTORS], capture_output=True, text=True, timeout=60,
                         cwd=os.path.dirname(__file__), env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.stdout.split() == ['still', 'served', 'True'], out.stdout + out.stderr
    assert 'callers will not read this connection themselves' in out.stderr


def test_a_connect_handler_that_raises_ends_neither_the_io_thread_nor_the_link():
    """As when no descriptor is left to load a module with: the connection is dropped and opened again."""
    server = sp.pure_json_protocol(sp.tcp_server_stp('127.0.0.1', 0))
    server.register_callback(sp.SID_EXECUTE_REQUEST, 0, lambda msg: (sp.STATUS_OKAY, msg.get_data()))
    comm = sp.tcp_client_stp('127.0.0.1', server.__comm_inst__.port)
    failures = [OSError(24, 'Too many open files')]

    def connected():
        if failures:
            raise failures.pop()
    comm.register_connect_callback(connected)
    client = sp.pure_json_protocol(comm)
    try:
        def served():   # (a call that went out on the dropped connection is lost, as any such call is)
            answer = client.request(sp.SID_EXECUTE_REQUEST, 0, 'served', timeout=2)
            return answer is not None and answer.get_data() == 'served'
        assert wait_until(served, 15)
        assert not failures and comm._thread.is_alive()
    finally:
        client.close()
        server.close()


def test_a_handshake_a_caller_read_on_goes_on_while_other_callers_hold_the_turn():
    """Three overlapping authentificate() calls, 100 times: the seed a caller reads leaves the key to the I/O thread
    to write, while the next caller holds the turn waiting for the answer to that key. The I/O thread used to
    wait for that turn before it wrote, and all three calls failed (about 1 round in 20)."""
    for _ in range(100):
        server = sp.pure_json_protocol(sp.tcp_server_stp('127.0.0.1', 0), secret='s', session_v2=False)
        client = sp.pure_json_protocol(sp.tcp_client_stp('127.0.0.1', server.__comm_inst__.port), secret='s',
                                       auto_auth=True, session_v2=False)
        try:
            results = []
            threads = [threading.Thread(target=lambda: results.append(client.authentificate(timeout=3)))
                       for _ in range(2)]
            for thread in threads:
                thread.start()
            results.append(client.authentificate(timeout=3))
            for thread in threads:
                thread.join(5)
            assert results == [True] * 3
        finally:
            client.close()
            server.close()


def test_a_peer_that_resets_while_a_caller_holds_the_turn_wakes_the_io_thread_once():
    """epoll reports a hang-up whatever the mask: with the connection disarmed as no events at all, a reset woke
    the I/O thread over and over, as fast as it could, for as long as the caller held the turn."""
    with socket.create_server(('127.0.0.1', 0)) as listener:
        client = sp.pure_json_protocol(sp.tcp_client_stp('127.0.0.1', listener.getsockname()[1]), session_v2=False)
        peer, _ = listener.accept()
        try:
            assert wait_until(lambda: client.__comm_inst__._turns is not None)
            turns_now = client.__comm_inst__.take_turn()
            assert turns_now is not None
            wakes = []
            wait = turns_now.wait
            turns_now.wait = lambda: wakes.append(1) or wait()   # (the I/O thread's next waits, counted)
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
            peer.close()   # a reset
            time.sleep(0.3)
            assert len(wakes) <= 3, len(wakes)
            turns_now.give_back()
            assert wait_until(lambda: turns_now.closed)   # the I/O thread finds the loss once the turn is back
        finally:
            peer.close()
            client.close()
