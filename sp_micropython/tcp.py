"""TCP streams on socket + select.poll (Wi-Fi boards and the unix port): what server and client share.

The server stream lives in tcp_server, the client in tcp_client: a board
loads only the one it uses.
"""
import errno
import select
import time

from .protocol import Stream

_EAGAIN = errno.EAGAIN
WRITE_TIMEOUT_MS = 2000    # a link that takes no byte for this long is dropped
MAX_PENDING = 16384        # and so is one that falls this far behind


class _SocketStream(Stream):
    CONNECTS = True
    _listener = ()   # a server's (listening socket, POLLIN) pair

    def __init__(self):
        Stream.__init__(self)
        self._sock = None
        self._pending = None     # what the socket has not taken yet (a memoryview)
        self._stuck_since = 0
        self._last_rx = 0

    def _repoll(self):
        """pollables: the listener if any, the connection, and its writability while output is pending."""
        sock = self._sock
        if sock is None:
            self.pollables = self._listener
        else:
            self.pollables = self._listener + (
                (sock, select.POLLIN | (select.POLLOUT if self._pending is not None else 0)),)

    def wait_ms(self):
        """While output is pending: until the link counts as stuck."""
        if self._pending is None:
            return -1
        return max(0, WRITE_TIMEOUT_MS + 1 - time.ticks_diff(time.ticks_ms(), self._stuck_since))

    def _attach(self, sock):
        sock.setblocking(False)
        self._sock = sock
        self._pending = None
        self._last_rx = time.ticks_ms()
        self._repoll()
        self._set(True)

    def _drop(self):
        sock = self._sock
        self._pending = None
        if sock is not None:
            self._sock = None
            sock.close()
        self._repoll()
        self._set(False)

    def _read(self, buf):
        """Takes what the socket holds, without waiting."""
        self._push()
        sock = self._sock
        if sock is None:
            return 0
        try:
            n = sock.readinto(buf)
        except OSError as err:
            n = None if err.errno == _EAGAIN else 0
        if n is None:
            return 0
        if n == 0:   # end of stream or error: the peer is gone
            self._drop()
        else:
            self._last_rx = time.ticks_ms()
        return n

    def _push(self):
        """Writes what the socket takes now; drops a link that takes nothing for WRITE_TIMEOUT_MS."""
        pending = self._pending
        if pending is None:
            return
        try:
            k = self._sock.write(pending) or 0
        except OSError as err:
            if err.errno != _EAGAIN:
                self._drop()
                return
            k = 0
        now = time.ticks_ms()
        if k:
            self._stuck_since = now
            if k < len(pending):
                self._pending = pending[k:]
            else:
                self._pending = None
                self._repoll()
        elif time.ticks_diff(now, self._stuck_since) > WRITE_TIMEOUT_MS:
            self._drop()

    def write(self, data):
        """Never blocks: what the socket cannot take now goes out on later polls."""
        if self._sock is None:
            return
        pending = self._pending
        if pending is None:
            self._pending = memoryview(data)
            self._stuck_since = time.ticks_ms()
            self._repoll()
        elif len(pending) + len(data) > MAX_PENDING:
            self._drop()
            return
        else:
            self._pending = memoryview(bytes(pending) + data)
        self._push()

    reconnect = close = _drop


def from_config(config, client):
    """A client of TCP_HOST:TCP_PORT, or a server listening there (TCP_HOST defaults to all interfaces)."""
    host = getattr(config, 'TCP_HOST', '0.0.0.0')
    if client:
        from .tcp_client import TcpClientStream
        return TcpClientStream(host, config.TCP_PORT, retry_ms=200)
    from .tcp_server import TcpServerStream
    return TcpServerStream(config.TCP_PORT, host)
