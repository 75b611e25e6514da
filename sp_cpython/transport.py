"""The I/O thread shared by every host transport: open, read until lost, tell the protocol, reopen."""
from __future__ import annotations

import functools
import logging
import threading
import time
from typing import Callable, List, Optional

from . import turns as read_turns


def logger(prefix: str, channel_name: Optional[str]) -> logging.Logger:
    """'<prefix>.<name>' for a name given in this program; peer text never names a logger."""
    return logging.getLogger(prefix if channel_name is None else '%s.%s' % (prefix, channel_name))


class StreamTransport:
    """Base of the comm instances: moves bytes, never interprets them.

    Subclasses give _open() (blocks until a connection exists, returns it or
    None to retry), _read(conn) (bytes, b'' when lost), _write(conn, data) and
    _shut(conn) (wakes a blocked _read). The thread waits for the connect
    callback before it opens anything, so no byte arrives before the protocol
    is ready for it. With CALLERS_READ (a socket's link, tcp_client_stp) the
    connection is read through sp_cpython.turns instead of _read().
    """

    IS_CLIENT = True
    LOGGER_PREFIX = 'sp_cpython.comm'
    CONNECTS = False   # whether the link has connects of its own (TCP), unlike a serial line
    CALLERS_READ = False   # whether a caller waiting on the link may read it itself (sp_cpython.turns)
    engine = None      # the protocol's engine, set by the protocol: a server admits clients by it
    on_wake: Optional[Callable[[], None]] = None   # set by the protocol: runs what a read in a turn left undone

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._write_lock = threading.Lock()
        self._ready = threading.Event()
        self._closed = threading.Event()
        self._opening = False   # the I/O thread is in _open()
        self._conn = None
        self._turns: Optional[read_turns.ReadTurns] = None
        self._channel_name: Optional[str] = None
        self._data_callbacks: List[Callable[[bytes], None]] = []
        self._connect_callbacks: List[Callable[[], None]] = []
        self._disconnect_callbacks: List[Callable[[], None]] = []
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
        self._thread.start()

    # the comm instance interface ---------------------------------------------
    @property
    def logger(self) -> logging.Logger:
        return logger(self.LOGGER_PREFIX, self._channel_name)

    def init_channel_name(self, channel_name: Optional[str] = None) -> None:
        self._channel_name = channel_name

    def register_callback(self, callback: Callable[[bytes], None]) -> None:
        self._data_callbacks.append(callback)

    def register_disconnect_callback(self, callback: Callable[[], None]) -> None:
        self._disconnect_callbacks.append(callback)

    def register_connect_callback(self, callback: Callable[[], None]) -> None:
        """Also calls it at once if a connection is already up, so no connect is missed."""
        with self._lock:
            self._connect_callbacks.append(callback)
            if self._conn is not None:
                callback()
        self._ready.set()

    def is_connected(self) -> bool:
        return self._conn is not None

    def connection(self):
        """The current connection, None while there is none: for send_on()."""
        return self._conn

    def send(self, data: bytes, timeout: Optional[float] = None) -> bool:
        return self.send_on(self._conn, data, timeout)

    def reads_in_turns(self) -> bool:
        """Whether the current connection is read in turns (sp_cpython.turns): then what a read leaves to do (its
        callbacks, the engine's own replies) is on_wake's, run by the I/O thread once the turn is free."""
        return self._turns is not None

    def take_turn(self) -> Optional[read_turns.ReadTurns]:
        """The current connection's turns, the turn to read it taken for the calling thread; None when the I/O
        thread or another caller reads it (or callers never do on this link)."""
        turns = self._turns
        return turns if turns is not None and turns.take() else None

    def send_on(self, conn, data: bytes, timeout: Optional[float] = None) -> bool:
        """Writes data to conn (one connection() gave) within timeout seconds (None: no limit); a write that fails or
        times out loses that connection. Frames taken for one connection go to it or nowhere, never to the next
        one, though it may come while they are written."""
        if conn is None:
            return False
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._write_lock.acquire(timeout=-1 if timeout is None else timeout):
            return False
        try:
            if conn is not self._conn:   # gone: nothing to write to, nothing to say
                return False
            self._write(conn, data, deadline)
            return True
        except (OSError, ValueError) as err:
            self.logger.log(self._level(err), '%s: send failed, dropping the connection: %s', self._prefix(), err)
            self._shut(conn)
            return False
        finally:
            self._write_lock.release()

    def reconnect(self) -> None:
        """Drops the current connection; the I/O thread opens the next one."""
        conn = self._conn
        if conn is not None:
            self._shut(conn)

    def __enter__(self) -> 'StreamTransport':
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._closed.set()
        self._ready.set()
        self._stop_opening()
        self.reconnect()   # (a connection the I/O thread takes meanwhile, it shuts itself: _run)
        if self._thread is not threading.current_thread() and not (self._opening and self._open_holds_nothing()):
            self._thread.join(5)

    def _open_holds_nothing(self) -> bool:
        """Whether close() may return while the I/O thread still opens a connection: one that no other opener
        waits for (a socket, not a device path opened exclusively), and that the thread shuts as it comes."""
        return False

    # the I/O thread ------------------------------------------------------------
    def _level(self, err: Exception) -> int:
        """A failed read or write is a warning, but for a peer that left (a reset is any peer's way to leave, and a
        peer could reset in a loop) and for the transport's own close: those are INFO."""
        if self._closed.is_set() or isinstance(err, (ConnectionResetError, BrokenPipeError)):
            return logging.INFO
        return logging.WARNING

    def _prefix(self) -> str:
        return 'comm-client' if self.IS_CLIENT else 'comm-server'

    def _run(self) -> None:
        self._ready.wait()
        pause = 0.0
        while not self._closed.is_set():
            self._opening = True
            try:
                conn = self._open()
            finally:
                self._opening = False
            if conn is None:
                continue
            turns = self._turns_for(conn)
            with self._lock:
                # taken, then _closed looked at, where close() sets _closed, then looks for a connection to shut:
                # either close() finds this one, or this thread finds close() has begun, or both
                self._conn = conn
                if self._closed.is_set():
                    if turns is not None:
                        turns.close()
                    self._shut(conn)
                    self._conn = None
                    self._release(conn)
                    break
                self.logger.info('%s: connection established', self._prefix())
                if not self._told(self._connect_callbacks, 'connect'):
                    self._shut(conn)   # (read as lost at once, and opened again)
            opened = time.monotonic()
            if turns is None:
                self._pump(conn)
            else:
                self._turns = turns
                try:
                    self._pump_turns(turns)
                finally:
                    self._turns = None
                    turns.close()
            with self._lock:   # the protocol forgets the connection before it reads as gone
                self.logger.info('%s: connection lost', self._prefix())
                self._told(self._disconnect_callbacks, 'disconnect')
                self._conn = None
                self._release(conn)
            # A link lost at once (a peer that accepts and hangs up, a write that fails) must not spin; a TCP
            # server waits for its next client in accept() (a pause would hold off the one that waits).
            spins = self.IS_CLIENT or not self.CONNECTS
            pause = min(max(pause * 2, 0.05), 1.0) if spins and time.monotonic() - opened < 1.0 else 0.0
            self._wait_retry(pause)
        self._stop_opening()

    def _told(self, callbacks, what: str, *args) -> bool:
        """Calls each with args; False if one raised (logged): a broken handler, or one that found no descriptor
        to load a module with, ends neither the connection nor the I/O thread."""
        told = True
        for callback in callbacks:
            try:
                callback(*args)
            except Exception:
                self.logger.exception('%s: %s handler failed', self._prefix(), what)
                told = False
        return told

    def _pump(self, conn) -> None:
        read = functools.partial(self._read, conn)
        while self._pumped(read):
            pass

    def _turns_for(self, conn) -> Optional[read_turns.ReadTurns]:
        """Turns for a new connection where callers may read it; None where they may not, or where the
        descriptors they need are not to be had (the I/O thread then reads alone)."""
        if not (self.CALLERS_READ and read_turns.AVAILABLE):
            return None
        try:
            return read_turns.ReadTurns(conn)
        except OSError as err:
            self.logger.warning('%s: callers will not read this connection themselves: %s', self._prefix(), err)
            return None

    def _pump_turns(self, turns: read_turns.ReadTurns) -> None:
        """_pump() taking turns with callers: a read in the I/O thread's turn, whenever the connection is
        readable and no caller reads it, and what it left to do once the turn is given back (a callback that
        takes its time holds up no caller's read of its answer); and, when a caller woke it, what that caller's
        read left to do. It never waits for a caller's turn to end: that caller may wait for what the wake has
        it do."""
        while True:
            readable, woken = turns.wait()
            if woken:
                self._woken()
            if not readable or not turns.lock.acquire(False):
                continue   # (a caller reads: it reads what came, and arms the connection again when it is done)
            try:
                if not self._pumped(turns.read_now):
                    turns.closed = True
                    break
                turns.arm()
            finally:
                turns.lock.release()
            self._woken()
        self._woken()   # (what the last read, or a caller's wake that came with the end, left: not lost)

    def _woken(self) -> None:
        if self.on_wake is not None:
            self._told((self.on_wake,), 'wake')

    def _pumped(self, read: Callable[[], bytes]) -> bool:
        """One read handed to the protocol; False once the connection is lost."""
        try:
            data = read()
        except BlockingIOError:   # (a caller read what woke this thread)
            return True
        except (OSError, ValueError) as err:
            self.logger.log(self._level(err), '%s: read failed: %s', self._prefix(), err)
            return False
        if not data:
            return False
        self._told(self._data_callbacks, 'receive', data)
        return True

    # for subclasses ---------------------------------------------------------------
    def _open(self):
        raise NotImplementedError

    def _read(self, conn) -> bytes:
        raise NotImplementedError

    def _write(self, conn, data: bytes, deadline: Optional[float]) -> None:
        """Writes all of data by time.monotonic() deadline (None: no limit), else raises OSError."""
        raise NotImplementedError

    def _shut(self, conn) -> None:
        raise NotImplementedError

    def _release(self, conn) -> None:
        """Frees a connection after its reader has stopped."""

    def _stop_opening(self) -> None:
        """Wakes a blocked _open() when the transport closes."""

    def _wait_retry(self, seconds: float) -> None:
        self._closed.wait(seconds)
