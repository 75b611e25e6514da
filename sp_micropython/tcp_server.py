"""The TCP server stream: a board that listens for its host (ROLE='server' on Wi-Fi, the unix port)."""
import select
import socket

from sp_common.admission import BACKLOG, counts, due_ms, must_go

from .tcp import _SocketStream


class TcpServerStream(_SocketStream):
    """Listens on host:port and serves one client at a time, admitted by sp_common.admission.

    A client whose probation is over, or that is noisy, is dropped; a newcomer waits in the
    listen backlog until the client served makes room (it stalled before
    proving itself, or fell silent after), so connections that never prove
    themselves cannot hold a genuine client off, nor cut one off while it
    authenticates. A client that goes away reports a disconnect; the listener
    keeps going.
    """

    def __init__(self, port, host='0.0.0.0'):
        _SocketStream.__init__(self)
        addr = socket.getaddrinfo(host, port)[0][-1]
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(addr)
        srv.listen(BACKLOG)
        srv.setblocking(False)
        self._srv = srv
        self._srv_poll = select.poll()
        self._srv_poll.register(srv, select.POLLIN)
        self._polled = ((srv, select.POLLIN),)
        self._since = (0, 0)   # admission.counts() as the client came
        self._wait(False)

    def _newcomer(self):
        for _ in self._srv_poll.ipoll(0):
            return True
        return False

    def _wait(self, waiting):
        """While a newcomer waits, the listener is not polled (it would wake the loop at once): wait_ms()
        wakes it when the client served may have to make room."""
        self._waiting = waiting
        self._listener = () if waiting else self._polled
        self._repoll()

    def wait_ms(self):
        ms = _SocketStream.wait_ms(self)
        if self._sock is not None:
            due = due_ms(self.engine, self._waiting)
            if due is not None and (ms < 0 or due < ms):
                ms = due
        return ms

    def _drop(self):
        """The client goes, however it went (its end, a refusal, a stuck write): the listener is polled again, so
        a newcomer waiting in the backlog wakes the next poll instead of a board that sleeps on nothing."""
        _SocketStream._drop(self)
        self._wait(False)

    reconnect = _drop

    def readinto(self, buf):
        """The client's bytes. The client is judged first, on what the engine has been fed, on every call, so
        that one that keeps its socket full cannot hold newcomers off (its bytes read here are fed before the
        caller sees it replaced)."""
        engine = self.engine
        if self._sock is not None:
            if not self._waiting and self._newcomer():
                self._wait(True)
            if must_go(engine, self._waiting, self._since):   # (a flood of junk would take every link's time)
                self._drop()
        # an end that came with the last bytes shows at the next step, which it wakes: the answers to those bytes
        # go out first, to a peer that shut only its side
        n = self._read(buf)
        if self._sock is None and self._newcomer():
            try:
                self._attach(self._srv.accept()[0])   # the caller sees the connect before the first byte
                self._since = counts(self.engine)
            except OSError:
                pass
            self._wait(self._sock is not None and self._newcomer())   # no client (accept failed): listen on
        return n

    def close(self):
        self._polled = self._listener = ()
        self._drop()
        self._srv.close()
