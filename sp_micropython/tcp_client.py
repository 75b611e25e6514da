"""The TCP client stream: a board that connects to its host (ROLE='client' on Wi-Fi, the unix port)."""
import errno
import select
import socket
import time

from micropython import const

from .tcp import _SocketStream

_FAILED = const(0x18)   # select.POLLERR | POLLHUP


class TcpClientStream(_SocketStream):
    """Connects to host:port and reconnects every retry_ms after a failure or a drop.

    A connect never holds up the board's other streams: it starts without
    waiting and is looked at on each poll, done once the socket turns
    writable, given up after connect_timeout seconds (a host that is off, or
    drops the connect without a word). Only the name lookup waits: give the
    host as an address where that matters.
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
        self._dialing = None   # the socket whose connect is under way
        self._dial_poll = select.poll()

    def _dial(self):
        """Starts a connect, if one is due."""
        now = time.ticks_ms()
        if self._closed or (self._last is not None and time.ticks_diff(now, self._last) < self.retry_ms):
            return
        self._last = now
        sock = socket.socket()
        try:
            sock.setblocking(False)
            sock.connect(socket.getaddrinfo(self.host, self.port)[0][-1])
        except OSError as err:
            if err.errno != errno.EINPROGRESS:
                sock.close()
                return
        self._dialing = sock
        self._dial_poll.register(sock, select.POLLOUT)
        self.pollables = ((sock, select.POLLOUT),)

    def _dialed(self):
        """The connect under way, looked at without waiting: the link is up once it is done, and the socket
        closed once it failed or took connect_timeout."""
        for entry in self._dial_poll.ipoll(0):
            failed = entry[1] & _FAILED
            break
        else:
            if self._dial_ms() > 0:
                return
            failed = True
        sock = self._dialing
        self._hang_up()
        if failed:
            sock.close()
        else:
            self._attach(sock)

    def _dial_ms(self):
        """Milliseconds the connect under way has left."""
        return int(self.connect_timeout * 1000) - time.ticks_diff(time.ticks_ms(), self._last)   # (poll takes ints)

    def _hang_up(self):
        """Stops looking at the connect under way (the caller closes or keeps its socket)."""
        self._dial_poll.unregister(self._dialing)
        self._dialing = None
        self._repoll()

    def wait_ms(self):
        """Without a connection: until the connect under way gives up, or the next one is due."""
        if self._sock is not None or self._closed:
            return _SocketStream.wait_ms(self)
        if self._dialing is not None:
            return max(0, self._dial_ms())
        if self._last is None:
            return 0
        return max(0, self.retry_ms - time.ticks_diff(time.ticks_ms(), self._last))

    def readinto(self, buf):
        if self._sock is not None:
            return self._read(buf)
        if self._dialing is None:
            self._dial()
        else:
            self._dialed()
        return 0

    def _drop(self):
        if self._dialing is not None:
            sock = self._dialing
            self._hang_up()
            sock.close()
        _SocketStream._drop(self)

    def reconnect(self):
        """Drops the link; the next connect comes no sooner than retry_ms after the last one began (a host that
        refuses the board's wire, SESSION_V2='required', is not dialed again and again at once)."""
        self._drop()

    def close(self):
        self._closed = True
        self._drop()
