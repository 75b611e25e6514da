"""The TCP server stream: a board that listens for its host (ROLE='server' on Wi-Fi, the unix port)."""
import select
import socket
import time

from .tcp import _SocketStream

IDLE_MS = 30000   # a trusted client silent this long may be replaced by a newcomer
GRACE_MS = 1000   # a new client that speaks has this long to prove itself before a newcomer may replace it


class TcpServerStream(_SocketStream):
    """Listens on host:port and serves one client at a time.

    A newcomer replaces the current client (a disconnect, then a connect)
    unless that client has proven itself (authenticated, or spoke when there
    is no secret) and was heard within IDLE_MS, or came less than GRACE_MS ago
    and has spoken (it is on its way through the handshake): then the
    newcomer is turned away. So a flood of silent connections cannot cut off
    a client while it authenticates. A client that goes away reports a
    disconnect; the listener keeps going.
    """

    def __init__(self, port, host='0.0.0.0'):
        _SocketStream.__init__(self)
        addr = socket.getaddrinfo(host, port)[0][-1]
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(addr)
        srv.listen(2)
        srv.setblocking(False)
        self._srv = srv
        self._srv_poll = select.poll()
        self._srv_poll.register(srv, select.POLLIN)
        self._listener = ((srv, select.POLLIN),)
        self._joined = 0
        self._repoll()

    def readinto(self, buf):
        """The client's bytes; a newcomer is judged on every call, so that a client that keeps its socket
        full cannot hold the others off (its bytes read here are fed before the caller sees it replaced)."""
        n = self._read(buf)   # first, so that a client that left is seen gone before a newcomer is judged
        for entry in self._srv_poll.ipoll(0):
            if 0 < n < len(buf):   # its socket is drained: its end, if it came with its last bytes, shows now
                n += self._read(memoryview(buf)[n:])
            try:
                sock = self._srv.accept()[0]
            except OSError:
                break
            if self._stays():
                sock.close()
            else:
                self._drop()
                self._attach(sock)   # the caller sees the connect before the first byte
                self._joined = self._last_rx   # now
            break
        return n

    def _stays(self):
        """Whether the current client keeps its place against a newcomer."""
        if self._sock is None:
            return False
        engine = self.engine
        now = time.ticks_ms()
        if engine.proven():
            return time.ticks_diff(now, self._last_rx) < IDLE_MS
        return engine.heard() and time.ticks_diff(now, self._joined) < GRACE_MS

    def close(self):
        self._listener = ()
        self._drop()
        self._srv.close()
