"""A caller that waits on a TCP client link reads it itself (sp_cpython.turns): its answer comes without a hand-over
between threads, while callbacks still run on the I/O thread and losses still reach it."""
import threading
import time

import pytest

from conftest import wait_until
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
    server, client = pair
    assert turns.AVAILABLE   # (Linux: the platform the suite runs on)
    assert client.request(sp.SID_EXECUTE_REQUEST, 0, 'first', timeout=5).get_data() == 'first'
    fed = feeding_threads(client)
    for i in range(20):
        assert client.request(sp.SID_EXECUTE_REQUEST, 0, i, timeout=5).get_data() == i
    assert fed and set(fed) == {threading.current_thread().name}, fed


def test_a_callback_for_bytes_a_caller_read_runs_on_the_io_thread_at_once(pair):
    server, client = pair
    ran_on = []

    def answer(msg):
        ran_on.append(threading.current_thread().name)
        return sp.STATUS_OKAY, msg.get_data()
    client.register_callback(sp.SID_EXECUTE_REQUEST, 1, answer)
    assert client.request(sp.SID_EXECUTE_REQUEST, 0, 'up', timeout=5).get_data() == 'up'
    fed = feeding_threads(client)
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
    waiting.join(6)


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


def test_close_wakes_a_caller_that_reads(pair):
    server, client = pair
    assert client.request(sp.SID_EXECUTE_REQUEST, 0, 'up', timeout=5).get_data() == 'up'
    waiting = threading.Thread(target=client.receive, args=(sp.SID_READ_RESPONSE, 9, 10))
    waiting.start()
    assert wait_until(lambda: client.__comm_inst__._turns.lock.locked(), 2)
    start = time.monotonic()
    client.close()
    waiting.join(5)
    assert not waiting.is_alive() and time.monotonic() - start < 1.5
