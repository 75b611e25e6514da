"""Serial comm instance over pyserial: any device path or URL, reopened after the device comes back."""
from __future__ import annotations

import errno
import os
import select
import threading
import time
from typing import Optional

import serial
from serial.urlhandler import protocol_socket

from .transport import StreamTransport

_POSIX_PORT = getattr(serial, 'serialposix', None) and serial.serialposix.Serial   # a device path's port on POSIX
# a socket:// port: its in_waiting says only whether a byte is there, so it is read without a timeout of its own,
# after a wait of READ_S for bytes to come, all that came in one read (else a byte a read: 20 us of CPU a byte)
_SOCKET_PORT = protocol_socket.Serial
_CHUNK = 65536
READ_S = 0.2   # a read waits this long for bytes, then looks whether the port is being dropped
WAKE_S = 0.1   # a write waiting for a port to take its bytes looks this often whether the port closed


# what a MicroPython REPL sends and a board serving the protocol does not
REPL_MARKS = (b'>>> ', b'raw REPL', b'Type "help()"', b'Traceback (most recent call last)')


class ReplSniffer:
    """Watches the raw bytes from a board for signs of a REPL instead of the protocol (seen_at: when first seen).
    The marks count between frames only: a serving board's answer may hold '>>> ' or a traceback's text as data.
    echoes: marks that count anywhere, the host's own words echoed back (a REPL echoes frames whole)."""

    def __init__(self, marks: tuple = REPL_MARKS, echoes: tuple = ()) -> None:
        self.marks = marks
        self.echoes = echoes
        self.seen_at: Optional[float] = None
        self._tail = self._raw_tail = b''   # the last bytes between frames, and of all: a mark cut in two by reads
        self._inside = False   # in a frame (its ':>' not yet read)
        self._colon = b''      # a ':' that ended the last read: the start of a frame's ':<' or end's ':>'

    def __call__(self, data: bytes) -> None:
        chunk = self._tail + self._between(self._colon + data)
        raw = self._raw_tail + data
        if self.seen_at is None and (any(mark in chunk for mark in self.marks) or
                                     any(mark in raw for mark in self.echoes)):
            self.seen_at = time.monotonic()
        self._tail, self._raw_tail = chunk[-40:], raw[-40:]

    def _between(self, data: bytes) -> bytes:
        """The bytes of data outside frames (inside one, a ':' is always escaped as ':=', never followed by '>')."""
        self._colon = b':' if data.endswith(b':') else b''
        if self._colon:
            data = data[:-1]
        out, i = [], 0
        while i < len(data):
            if self._inside:
                end = data.find(b':>', i)
                if end < 0:
                    break
                i, self._inside = end + 2, False
            else:
                start = data.find(b':<', i)
                out.append(data[i:] if start < 0 else data[i:start])
                if start < 0:
                    break
                i, self._inside = start + 2, True
        return b''.join(out)


class serial_stp(StreamTransport):
    """Opens url (a path, loop://, socket://, rfc2217://, spy://...) and reopens it after a failure.

    The host is the client by default: it introduces itself and authenticates,
    like a TCP client.
    """

    LOGGER_PREFIX = 'sp_cpython.serial'

    def __init__(self, url: str, baudrate: int = 115200, is_client: bool = True, retry: float = 0.25) -> None:
        self.url = url
        self.baudrate = baudrate
        self.IS_CLIENT = is_client
        self._retry = retry
        self._drop = threading.Event()
        self._in_use_said = False
        self._repl = ReplSniffer()   # on this open of the port
        super().__init__()

    def _open(self) -> Optional[serial.SerialBase]:
        """Exclusively: a second program on the port would take part of what the board sends (pyserial locks with
        flock on POSIX, which mpremote and other exclusive openers honour; Windows never shares a port)."""
        try:
            conn = serial.serial_for_url(self.url, baudrate=self.baudrate, timeout=READ_S, exclusive=True)
            if type(conn) is _SOCKET_PORT:
                conn.timeout = 0
        # (OverflowError: a baud rate too big for the driver)
        except (serial.SerialException, OSError, ValueError, OverflowError) as err:
            self._say_in_use(err)
            self._wait_retry(self._retry)
            return None
        self._in_use_said = False
        self._repl = ReplSniffer()
        return conn

    def _open_holds_nothing(self) -> bool:
        """A socket:// port: pyserial connects for up to 5 s, which close() cannot cut short."""
        return self.url.startswith('socket://')

    def _say_in_use(self, err: Exception) -> None:
        """Once per streak: the retries go on quietly until the other program lets go."""
        if getattr(err, 'errno', None) in (errno.EAGAIN, errno.EWOULDBLOCK) and not self._in_use_said:
            self._in_use_said = True
            self.logger.warning('%s: %s is in use by another program; retrying', self._prefix(), self.url)

    def _read(self, conn: serial.SerialBase) -> bytes:
        while not self._drop.is_set():
            try:
                if type(conn) is _SOCKET_PORT:
                    data = conn.read(_CHUNK) if select.select((conn,), (), (), READ_S)[0] else b''
                else:
                    data = conn.read(conn.in_waiting or 1)
            except (serial.SerialException, OSError, TypeError, AttributeError, ValueError) as err:
                raise OSError('serial port lost: %s' % err) from err
            if data:
                if self._repl.seen_at is None:
                    self._look_for_repl(data)
                return data
        return b''

    def _look_for_repl(self, data: bytes) -> None:
        """Says once per open when the port answers with a MicroPython REPL, where a board's main.py would serve the
        protocol: a program would see checksum errors and no connection, and not why."""
        self._repl(data)
        if self._repl.seen_at is not None:
            self.logger.warning('%s: %s answers with a MicroPython REPL, not the protocol: the board\'s main.py is '
                                'not running (reset the board; sp call says more)', self._prefix(), self.url)

    def _write(self, conn: serial.SerialBase, data: bytes, deadline: Optional[float]) -> None:
        if _POSIX_PORT is not None and type(conn) is _POSIX_PORT:
            self._write_fd(conn, data, deadline)
            return
        timeout = None if deadline is None else max(deadline - time.monotonic(), 0.001)
        try:   # (a URL's port: pyserial's own write and timeout)
            if conn.write_timeout != timeout:
                conn.write_timeout = timeout
            conn.write(data)
        except serial.SerialTimeoutException as err:
            raise OSError('the peer stopped reading: %s' % err) from err
        except (serial.SerialException, TypeError, AttributeError) as err:
            raise OSError('serial port lost: %s' % err) from err

    def _write_fd(self, conn: serial.SerialBase, data: bytes, deadline: Optional[float]) -> None:
        """Writes data to a device path's port as it takes it, until deadline; raises OSError if not all of it went,
        or the port is no longer the transport's (closed, or reopened) when the write looks again, every WAKE_S
        at most. It writes through a descriptor of its own, so a number the port gave up, which a new file may
        have taken, is never written. (pyserial's write_timeout cannot tell: it raised after the last byte went
        too, and a port closed mid-write returned as if all had gone.) A port being dropped (close(), reconnect())
        stops the write too: the I/O thread's own write would hold up close() until its deadline."""
        try:
            fd = os.dup(conn.fd)
        except TypeError:   # (fd None: closed since send() took the connection)
            raise OSError('serial port closed') from None
        try:
            view = memoryview(data)
            while view:
                if conn is not self._conn or self._drop.is_set():   # (closed, reopened, or being dropped)
                    raise OSError('serial port closed with %d bytes not written' % len(view))
                try:   # what the port takes at once goes, however little time is left
                    view = view[os.write(fd, view):]
                    continue
                except BlockingIOError:
                    pass
                wait = WAKE_S if deadline is None else min(deadline - time.monotonic(), WAKE_S)
                if wait <= 0:
                    raise OSError('the peer stopped reading (%d bytes not taken)' % len(view))
                select.select((), (fd,), (), wait)   # (select, as pyserial's reads: macOS's poll watches no tty)
        finally:
            os.close(fd)

    def _shut(self, conn: serial.SerialBase) -> None:
        if conn is not self._conn:
            return   # a connection already gone (a late write failing on it): the current one stays
        self._drop.set()
        cancel = getattr(conn, 'cancel_read', None)
        if cancel is not None:
            try:
                cancel()
            except (OSError, serial.SerialException):
                pass

    def _release(self, conn: serial.SerialBase) -> None:
        try:
            conn.close()
        finally:
            self._drop.clear()
