"""The TCP server stream: a board that listens for its host (ROLE='server' on Wi-Fi, the unix port)."""
import select
import socket
import time

from .tcp import _SocketStream

IDLE_MS = 30000   # a trusted client silent this long may be replaced by a newcomer


class TcpServerStream(_SocketStream):
    """Listens on host:port and serves one client at a time.

    A newcomer replaces the current client (DISCONNECTED then CONNECTED)
    unless that client has proven itself (authenticated, or spoke when there
    is no secret) and was heard within IDLE_MS: then the newcomer is turned
    away. A client that goes away reports DISCONNECTED; the listener keeps going.
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
        self._repoll()

    def readinto(self, buf):
        n = self._read(buf)   # first, so that a client that left is seen gone before a newcomer is judged
        if n:
            return n
        for entry in self._srv_poll.ipoll(0):
            try:
                sock = self._srv.accept()[0]
            except OSError:
                return 0
            if self._sock is not None and self.proven() and \
                    time.ticks_diff(time.ticks_ms(), self._last_rx) < IDLE_MS:   # the current client stays
                sock.close()
            else:
                self._drop()
                self._attach(sock)   # the caller sees CONNECTED before the first byte
            return 0
        return 0

    def close(self):
        self._listener = ()
        self._drop()
        self._srv.close()
