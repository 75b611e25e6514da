"""TCP streams on socket + select.poll (Wi-Fi boards and the unix port): what server and client share.

The server stream lives in tcp_server, the client in tcp_client: a board
loads only the one it uses.
"""
import errno
import select

from .pending import Pending
from .protocol import Stream

_EAGAIN = errno.EAGAIN


class _SocketStream(Stream):
    CONNECTS = True
    _listener = ()   # a server's (listening socket, POLLIN) pair

    def __init__(self):
        Stream.__init__(self)
        self._sock = None
        self._out = Pending()    # what the socket has not taken yet

    def _repoll(self):
        """pollables: the listener if any, the connection, and its writability while output is pending."""
        sock = self._sock
        if sock is None:
            self.pollables = self._listener
        else:
            self.pollables = self._listener + (
                (sock, select.POLLIN | (select.POLLOUT if self._out.view is not None else 0)),)

    def wait_ms(self):
        """While output is pending: until the link counts as stuck."""
        return self._out.wait_ms()

    def _attach(self, sock):
        sock.setblocking(False)
        self._sock = sock
        self._out = Pending()
        self._repoll()
        self._set(True)

    def _drop(self):
        sock = self._sock
        self._out.view = None
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
        return n

    def _send(self, view):
        """What the socket takes of view now."""
        try:
            return self._sock.write(view) or 0
        except OSError as err:
            if err.errno != _EAGAIN:
                raise
            return 0

    def _push(self):
        """Writes what the socket takes now; drops a link that fails or takes nothing for WRITE_TIMEOUT_MS."""
        if self._out.view is None:
            return
        try:
            alive = self._out.push(self._send)
        except OSError:
            alive = False
        if not alive:
            self._drop()
        elif self._out.view is None:
            self._repoll()

    def write(self, data):
        """Never blocks: what the socket cannot take now goes out on later polls."""
        if self._sock is None:
            return
        waiting = self._out.view is not None
        if not self._out.add(data):
            self._drop()
            return
        if not waiting:
            self._repoll()
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
