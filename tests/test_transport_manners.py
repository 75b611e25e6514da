"""Host transports as users of pyserial expect: context managers, and no tight loop when a link keeps dropping."""
import os
import socket
import threading
import time
import tty

import sp_cpython as sp
from conftest import wait_until


def test_a_peer_that_hangs_up_at_once_is_not_redialled_in_a_tight_loop():
    accepted = []
    listener = socket.create_server(('127.0.0.1', 0))

    def hang_up():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(time.monotonic())
            conn.close()

    threading.Thread(target=hang_up, daemon=True).start()
    with sp.tcp_client_stp('127.0.0.1', listener.getsockname()[1]) as comm:
        comm.register_connect_callback(lambda: None)
        time.sleep(2.0)
    listener.close()
    assert 3 <= len(accepted) <= 12, len(accepted)   # 0.05 s doubling to 1 s; thousands without the pause


def test_transports_are_context_managers():
    with sp.tcp_server_stp('127.0.0.1', 0) as server:
        server.register_connect_callback(lambda: None)
        port = server.port
        socket.create_connection(('127.0.0.1', port), timeout=2).close()
    try:
        socket.create_connection(('127.0.0.1', port), timeout=2).close()
        refused = False
    except ConnectionRefusedError:
        refused = True
    assert refused   # the with block closed the listener


def test_a_serial_write_cut_short_by_close_is_not_sent(tmp_path):
    """close() while a frame is stuck half written to a peer that reads nothing: send() says False (its caller
    may retry: the peer has only part of a frame, which it drops), close() returns at once, and the rest of the
    frame goes nowhere, not to a file that took the port's descriptor number."""
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    comm = sp.serial_stp(os.ttyname(slave))
    comm.register_connect_callback(lambda: None)
    try:
        assert wait_until(comm.is_connected)
        number = comm._conn.fd
        outcome = []
        writer = threading.Thread(target=lambda: outcome.append(comm.send(b'x' * 60000, timeout=20)))
        writer.start()
        time.sleep(0.5)   # the pty's buffer full, the rest of the frame waiting
        start = time.monotonic()
        comm.close()
        assert time.monotonic() - start < 1
        other = os.open(str(tmp_path / 'other'), os.O_WRONLY | os.O_CREAT)
        if other != number:   # a file takes the number the port gave up
            os.dup2(other, number)
            os.close(other)
        writer.join(5)
        os.close(number)
        assert outcome == [False]
        assert os.path.getsize(tmp_path / 'other') == 0
    finally:
        os.close(master)
        os.close(slave)

