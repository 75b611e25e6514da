"""The TCP client stream: a board that connects to its host (ROLE='client' on Wi-Fi, the unix port)."""
import socket
import time

from .tcp import _SocketStream


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

    def wait_ms(self):
        """Without a connection: until the next attempt is due."""
        if self._sock is not None or self._closed:
            return _SocketStream.wait_ms(self)
        if self._last is None:
            return 0
        return max(0, self.retry_ms - time.ticks_diff(time.ticks_ms(), self._last))

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
