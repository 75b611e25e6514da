"""Who reads a connection: its I/O thread, or a caller that waits for an answer on it and reads it itself.

A round trip whose answer the I/O thread reads and hands to the waiting
caller costs two thread wake-ups more than one the caller reads itself:
between two processes on loopback, up to a quarter of a plain round trip's
rate (benchmarks.bench_host, its "handed over" row). One reader
at a time holds the turn (a lock), and a frame's bytes are fed to the
engine before the turn is given up, so the bytes keep their order. The I/O
thread waits in an epoll on the connection, armed one-shot: while a caller
holds the turn the connection is disarmed, so that its answer wakes no
other thread; when the caller gives the turn back it is armed again, and
bytes that came meanwhile wake the I/O thread at once. Only where
select.epoll exists (Linux); elsewhere the I/O thread reads alone.
"""
from __future__ import annotations

import select
import socket
import threading
from typing import Optional, Tuple

AVAILABLE = hasattr(select, 'epoll')
_CHUNK = 65536
_LONGEST_MS = 2 ** 31 - 1   # what poll() takes


class ReadTurns:
    """The turns on one connection (a socket); closed with it."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.lock = threading.Lock()    # held by the reader whose turn it is
        self.closed = False             # set by the I/O thread, holding the turn, once the connection is lost
        self._fd = conn.fileno()
        self._wake_r, self._wake_w = socket.socketpair()
        try:
            self._wake_r.setblocking(False)
            self._wake_w.setblocking(False)
            self._epoll = select.epoll()
        except OSError:
            self._wake_r.close()
            self._wake_w.close()
            raise
        self._epoll.register(self._fd, select.EPOLLIN | select.EPOLLONESHOT)
        self._epoll.register(self._wake_r.fileno(), select.EPOLLIN)
        self._mine = select.poll()      # a caller's wait, which leaves the I/O thread's epoll alone
        self._mine.register(self._fd, select.POLLIN)

    # the I/O thread --------------------------------------------------------------
    def wait(self) -> Tuple[bool, bool]:
        """Blocks until the connection is readable or a caller woke the I/O thread: (readable, woken)."""
        readable = woken = False
        for fd, _ in self._epoll.poll():
            if fd == self._fd:
                readable = True
            else:
                woken = True
                try:
                    self._wake_r.recv(64)
                except BlockingIOError:
                    pass
        return readable, woken

    def read_now(self) -> bytes:
        """What the connection has (b'' once lost); BlockingIOError when a caller read what woke the thread."""
        return self.conn.recv(_CHUNK, socket.MSG_DONTWAIT)

    def arm(self) -> None:
        """The I/O thread wakes when bytes come (holding the turn)."""
        self._epoll.modify(self._fd, select.EPOLLIN | select.EPOLLONESHOT)

    # a caller -----------------------------------------------------------------------
    def take(self) -> bool:
        """Takes the turn from the I/O thread if no one else reads; False when the I/O thread or another caller
        holds it, or the connection is lost."""
        if not self.lock.acquire(False):
            return False
        if self.closed:
            self.lock.release()
            return False
        # disarmed, and one-shot still: a hang-up, which epoll reports whatever the mask, wakes the I/O thread once,
        # not over and over while the caller holds the turn
        self._epoll.modify(self._fd, select.EPOLLONESHOT)
        return True

    def read(self, timeout: float) -> Optional[bytes]:
        """The connection's next bytes within timeout seconds; None if none came, b'' once it is lost (its
        loss is the I/O thread's to find and tell: it reads the end again when its turn comes)."""
        if not self._mine.poll(min(max(0, int(timeout * 1000) + 1), _LONGEST_MS)):   # (a longer wait reads again)
            return None
        try:
            return self.conn.recv(_CHUNK, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return None
        except (OSError, ValueError):
            try:   # (a reset is read once: the I/O thread must find the end too)
                self.conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return b''

    def wake(self) -> None:
        """Wakes the I/O thread for the work the caller's bytes left (their callbacks, the engine's own replies),
        which it does while the caller reads on."""
        try:
            self._wake_w.send(b'w')
        except BlockingIOError:   # (a wake already waits)
            pass
        except (OSError, ValueError):   # closed meanwhile: the I/O thread found the loss, and did what was left
            pass

    def give_back(self) -> None:
        """Gives the turn back to the I/O thread. Armed after the turn is free: the I/O thread, which never waits
        for a turn, may wake for bytes only once it can take it (a turn another caller took meanwhile is armed
        again by that caller)."""
        self.lock.release()
        try:
            self.arm()
        except (OSError, ValueError):   # closed meanwhile: the I/O thread found the loss
            pass

    def close(self) -> None:
        """After the I/O thread found the loss: no caller takes a turn on a closed one."""
        with self.lock:
            self.closed = True
        self._epoll.close()
        self._wake_r.close()
        self._wake_w.close()
