"""Host transports as users of pyserial expect: context managers, and no tight loop when a link keeps dropping."""
import os
import socket
import threading
import time
import tty

import sp_cpython as sp
from conftest import port_that_never_accepts, wait_until
from sp_common import frame, pure_json


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


def test_close_cuts_short_the_io_threads_own_write_to_a_board_that_reads_nothing():
    """A board sends requests and reads nothing: the I/O thread's write of their answers waits, and close() waited
    with it until the write's own timeout (2 s), where it promises 0.1 s."""
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    os.set_blocking(master, False)
    asks = memoryview(frame(pure_json.encode(40, 'i' * 2000, 0, None)) * 30)   # each answered, its data id echoed
    done = threading.Event()

    def ask():   # (in turns with the reads the stuck write holds up)
        view = asks
        while view and not done.is_set():
            try:
                view = view[os.write(master, view):]
            except BlockingIOError:
                time.sleep(0.01)
    asking = threading.Thread(target=ask)
    prot = sp.pure_json_protocol(sp.serial_stp(os.ttyname(slave)), session_v2=False)
    try:
        assert wait_until(prot.__comm_inst__.is_connected)
        asking.start()
        assert wait_until(lambda: prot.counters['unknown'] > 0)
        time.sleep(0.5)   # the pty's buffer toward the board full: the I/O thread's write waits
        start = time.monotonic()
        prot.close()
        assert time.monotonic() - start < 0.5
    finally:
        done.set()
        if asking.is_alive():
            asking.join(5)
        os.close(master)
        os.close(slave)


def test_a_close_as_the_io_thread_takes_a_new_connection_shuts_it_and_ends_the_thread():
    """close() came between the I/O thread's connect and its taking the connection: it found none to shut,
    waited out its 5 s join, and the thread served the connection on, for good."""
    listener = socket.create_server(('127.0.0.1', 0))
    closed = []

    class ClosedMeanwhile(sp.tcp_client_stp):
        def _turns_for(self, conn):   # (the I/O thread, the connection open and not yet taken)
            closer = threading.Thread(target=lambda: closed.append(self.close() or time.monotonic()))
            closer.start()
            assert wait_until(self._closed.is_set)
            time.sleep(0.2)   # close() has looked for a connection to shut, and waits for the thread
            return super()._turns_for(conn)
    comm = ClosedMeanwhile('127.0.0.1', listener.getsockname()[1])
    start = time.monotonic()
    comm.register_connect_callback(lambda: None)
    peer, _ = listener.accept()
    try:
        assert wait_until(lambda: closed, timeout=3) and closed[0] - start < 2
        assert not comm._thread.is_alive() and comm.connection() is None
        peer.settimeout(2)
        assert peer.recv(100) == b''   # shut: the closed client says nothing more
    finally:
        peer.close()
        listener.close()


class _ClosedAsItAccepts:
    """A server's listener that close() closes just as it accepts a client."""

    def __init__(self, listener):
        self._listener = listener

    def accept(self):
        accepted = self._listener.accept()
        self._listener.close()
        return accepted

    def __getattr__(self, name):
        return getattr(self._listener, name)


def test_a_client_accepted_as_the_server_closes_is_let_go_and_the_io_thread_goes_on():
    """Its listener closed meanwhile, the server's I/O thread died on watching it, a traceback printed and the
    accepted client's socket left open."""
    comm = sp.tcp_server_stp('127.0.0.1', 0)
    comm._listener = _ClosedAsItAccepts(comm._listener)
    client = socket.create_connection(('127.0.0.1', comm.port))
    try:
        comm.register_connect_callback(lambda: None)
        client.settimeout(2)
        assert client.recv(100) == b''   # let go
        assert comm._thread.is_alive()
        start = time.monotonic()
        comm.close()
        assert not comm._thread.is_alive() and time.monotonic() - start < 1
    finally:
        client.close()


def test_close_does_not_wait_for_a_socket_url_that_pyserial_is_still_connecting():
    """pyserial connects a socket:// port for up to 5 s, which close() waited out."""
    with port_that_never_accepts() as port:
        comm = sp.serial_stp('socket://127.0.0.1:%d' % port)
        comm.register_connect_callback(lambda: None)
        time.sleep(0.3)   # (pyserial connecting)
        start = time.monotonic()
        comm.close()
        assert time.monotonic() - start < 0.5 and comm.connection() is None
    assert wait_until(lambda: not comm._thread.is_alive(), timeout=3)   # its connect refused: the thread ends


def test_close_cuts_short_a_write_stuck_in_the_connect_callback():
    """A client says its name and offers v2 as it connects, under the transport's lock: on a port that takes
    nothing, close() waited for that lock, and so for the write's own timeout (2 s)."""
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    os.set_blocking(slave, False)
    try:
        fails = 0
        while fails < 20:   # the pty's buffer toward the board full (it moves bytes on in its own time)
            try:
                os.write(slave, b'x')
                fails = 0
            except BlockingIOError:
                fails += 1
                time.sleep(0.01)
        prot = sp.pure_json_protocol(sp.serial_stp(os.ttyname(slave)))
        assert wait_until(prot.__comm_inst__.is_connected)
        time.sleep(0.3)   # (the connect callback's write waits)
        start = time.monotonic()
        prot.close()
        assert time.monotonic() - start < 0.5
    finally:
        os.close(master)
        os.close(slave)


def test_a_baud_rate_the_driver_cannot_take_fails_the_open_and_ends_no_thread():
    master, slave = os.openpty()
    try:
        comm = sp.serial_stp(os.ttyname(slave), baudrate=2 ** 40)   # (pyserial: OverflowError)
        prot = sp.pure_json_protocol(comm)
        assert prot.send(sp.SID_EXECUTE_REQUEST, 0, 'x', timeout=0.5) is False
        assert comm._thread.is_alive()   # retrying, as after any failed open
        prot.close()
        assert not comm._thread.is_alive()
    finally:
        os.close(master)
        os.close(slave)
