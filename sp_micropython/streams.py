"""Byte streams for the device runtime: UART, the USB serial console (stdio), TCP server and client.

Every stream offers IS_CLIENT, readinto(buf) -> int (non-blocking, 0 when
nothing is there), write(data) (never raises: a write to a dead link is
dropped), poll_event() -> CONNECTED, DISCONNECTED or None (each change is
reported once, in order), is_connected(), reconnect() and close().
"""
import errno
import select
import sys
import time

try:
    import socket
except ImportError:  # a board without network
    socket = None

CONNECTED = 'connected'
DISCONNECTED = 'disconnected'

_READ_EVENTS = select.POLLIN | select.POLLHUP | select.POLLERR
_EAGAIN = errno.EAGAIN
_WRITE_TIMEOUT_MS = 2000


class _Stream:
    IS_CLIENT = False

    def __init__(self):
        self._events = []
        self._up = False

    def _set(self, up):
        if up != self._up:
            self._up = up
            self._events.append(CONNECTED if up else DISCONNECTED)

    def poll_event(self):
        return self._events.pop(0) if self._events else None

    def is_connected(self):
        return self._up

    def reconnect(self):
        pass

    def close(self):
        self._set(False)


class UartStream(_Stream):
    """A machine.UART (built by the caller, e.g. with timeout=0). A UART is always 'connected'."""

    def __init__(self, uart, is_client=False):
        _Stream.__init__(self)
        self.IS_CLIENT = is_client
        self.uart = uart
        self._set(True)

    def readinto(self, buf):
        n = self.uart.any()
        if not n:
            return 0
        return self.uart.readinto(buf, min(n, len(buf))) or 0

    def write(self, data):
        self.uart.write(data)


class StdioStream(_Stream):
    """The USB serial console: sys.stdin.buffer / sys.stdout.buffer.

    Ctrl-C is switched off (micropython.kbd_intr(-1)) while it owns stdin,
    because frames contain 0x03 bytes; close() switches it back on. stdin is
    read byte by byte while select.poll says a byte is ready (a bigger
    readinto would block until the buffer is full). End of input (unix port:
    the pty or pipe closed) reports DISCONNECTED.
    """

    def __init__(self, is_client=False):
        import micropython
        _Stream.__init__(self)
        self.IS_CLIENT = is_client
        self._in = sys.stdin.buffer
        self._out = sys.stdout.buffer
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)
        self._one = bytearray(1)
        self._kbd_intr = micropython.kbd_intr
        self._kbd_intr(-1)
        self._set(True)

    def readinto(self, buf):
        if not self._up:
            return 0
        one = self._one
        read = self._in.readinto
        n = 0
        size = len(buf)
        while n < size:
            event = 0
            for entry in self._poll.ipoll(0):
                event = entry[1]
            if not event:
                break
            try:
                got = read(one) if event & select.POLLIN else 0
            except OSError:
                got = 0
            if not got:
                self._lost()
                break
            buf[n] = one[0]
            n += 1
        return n

    def _lost(self):
        self._poll.unregister(sys.stdin)
        self._set(False)

    def write(self, data):
        if self._up:
            self._out.write(data)

    def close(self):
        if self._up:
            self._lost()
        self._kbd_intr(3)


def _write_all(sock, data):
    """Writes all of data to a non-blocking socket; False if the link is dead or stuck."""
    view = memoryview(data)
    off = 0
    start = time.ticks_ms()
    while off < len(data):
        try:
            k = sock.write(view[off:])
        except OSError as err:
            if err.errno != _EAGAIN:
                return False
            k = 0
        if k:
            off += k
        elif time.ticks_diff(time.ticks_ms(), start) > _WRITE_TIMEOUT_MS:
            return False
        else:
            time.sleep_ms(1)
    return True


class _SocketStream(_Stream):
    def __init__(self):
        _Stream.__init__(self)
        self._sock = None
        self._poll = select.poll()

    def _attach(self, sock):
        sock.setblocking(False)
        self._sock = sock
        self._poll.register(sock, select.POLLIN)
        self._set(True)

    def _drop(self):
        sock = self._sock
        if sock is not None:
            self._sock = None
            try:
                self._poll.unregister(sock)
            except (OSError, KeyError):
                pass
            sock.close()
        self._set(False)

    def _read(self, buf):
        event = 0
        sock = self._sock
        for entry in self._poll.ipoll(0):
            if entry[0] is sock:
                event = entry[1]
        if not event & _READ_EVENTS:
            return 0
        try:
            n = sock.readinto(buf)
        except OSError as err:
            n = None if err.errno == _EAGAIN else 0
        if n is None:
            return 0
        if n == 0:   # end of stream or error: the peer is gone
            self._drop()
        return n

    def write(self, data):
        if self._sock is not None and not _write_all(self._sock, data):
            self._drop()

    def reconnect(self):
        self._drop()

    def close(self):
        self._drop()


class TcpServerStream(_SocketStream):
    """Listens on host:port and serves one client at a time.

    A new client replaces the current one (a host that reconnects is done
    with its old, maybe half-open, connection): DISCONNECTED then CONNECTED.
    A client that goes away reports DISCONNECTED; the listener keeps going.
    """

    def __init__(self, port, host='0.0.0.0'):
        _SocketStream.__init__(self)
        addr = socket.getaddrinfo(host, port)[0][-1]
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(addr)
        srv.listen(1)
        srv.setblocking(False)
        self._srv = srv
        self._srv_poll = select.poll()
        self._srv_poll.register(srv, select.POLLIN)

    def readinto(self, buf):
        pending = False
        for entry in self._srv_poll.ipoll(0):
            pending = True
        if pending:
            try:
                sock = self._srv.accept()[0]
            except OSError:
                sock = None
            if sock is not None:
                self._drop()
                self._attach(sock)
                return 0   # let the caller see CONNECTED before the first byte
        if self._sock is None:
            return 0
        return self._read(buf)

    def close(self):
        self._drop()
        self._srv.close()


class TcpClientStream(_SocketStream):
    """Connects to host:port and reconnects every retry_ms after a failure or a drop.

    The connect itself blocks for up to connect_timeout seconds.
    """

    IS_CLIENT = True

    def __init__(self, host, port, retry_ms=1000, connect_timeout=2):
        _SocketStream.__init__(self)
        self.host = host
        self.port = port
        self.retry_ms = retry_ms
        self.connect_timeout = connect_timeout
        self._last = None
        self._closed = False

    def _connect(self):
        now = time.ticks_ms()
        if self._closed or (self._last is not None and time.ticks_diff(now, self._last) < self.retry_ms):
            return
        self._last = now
        sock = socket.socket()
        try:
            sock.settimeout(self.connect_timeout)
            sock.connect(socket.getaddrinfo(self.host, self.port)[0][-1])
        except OSError:
            sock.close()
            return
        self._attach(sock)

    def readinto(self, buf):
        if self._sock is None:
            self._connect()
            return 0
        return self._read(buf)

    def reconnect(self):
        self._drop()
        self._last = None

    def close(self):
        self._closed = True
        self._drop()
