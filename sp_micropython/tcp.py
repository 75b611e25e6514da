"""TCP server and client streams on socket + select.poll (Wi-Fi boards and the unix port)."""
import errno
import select
import socket
import time

from .protocol import Stream

_READ_EVENTS = select.POLLIN | select.POLLHUP | select.POLLERR
_EAGAIN = errno.EAGAIN
_WRITE_TIMEOUT_MS = 2000


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


class _SocketStream(Stream):
    def __init__(self):
        Stream.__init__(self)
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


def from_config(config, client):
    """A client of TCP_HOST:TCP_PORT, or a server listening there (TCP_HOST defaults to all interfaces)."""
    host = getattr(config, 'TCP_HOST', '0.0.0.0')
    if client:
        return TcpClientStream(host, config.TCP_PORT, retry_ms=200)
    return TcpServerStream(config.TCP_PORT, host)
