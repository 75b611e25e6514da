"""TCP comm instances: tcp_client_stp reconnects, tcp_server_stp serves one client at a time."""
from __future__ import annotations

import errno
import os
import select
import socket
import time
from typing import Optional

from sp_common import admission

from .transport import StreamTransport

_CHUNK = 65536
CONNECT_S = 2.0      # a client's connect attempt, before it tries again
CLOSE_LOOK_S = 0.05  # how often a connect in progress looks whether close() came
_CONNECTING = (errno.EINPROGRESS, errno.EWOULDBLOCK, getattr(errno, 'WSAEWOULDBLOCK', errno.EWOULDBLOCK))   # Windows'
_POLL = getattr(select, 'poll', None)   # select.select takes no descriptor over 1023: a busy process has them


class _Watch:
    """Sockets watched to read from (or write to), each registered once: a server looks at its client and its
    listener before every read."""

    def __init__(self, conns: tuple, write: bool = False) -> None:
        self._write = write
        self._by_fd: dict = {}
        self._poll = None if _POLL is None else _POLL()   # (Windows: select, whose descriptors have no limit)
        for conn in conns:
            fd = conn.fileno()   # (one look at its descriptor: another thread may close it meanwhile)
            self._by_fd[fd] = conn
            if self._poll is not None:
                self._poll.register(fd, select.POLLOUT if write else select.POLLIN)

    def drop(self, conn) -> None:
        for fd, watched in list(self._by_fd.items()):
            if watched is conn:
                del self._by_fd[fd]
                if self._poll is not None:
                    self._poll.unregister(fd)

    def ready(self, timeout: Optional[float]) -> set:
        """Those of the sockets that are ready within timeout seconds (None: no limit)."""
        if self._poll is None:
            conns = tuple(self._by_fd.values())
            ready = select.select(() if self._write else conns, conns if self._write else (), (), timeout)
            return set(ready[0] + ready[1])
        return {self._by_fd[fd] for fd, _ in self._poll.poll(None if timeout is None else max(0, timeout * 1000))}


class _TcpTransport(StreamTransport):
    LOGGER_PREFIX = 'tcp_socket'
    CONNECTS = True

    def _read(self, conn: socket.socket) -> bytes:
        return conn.recv(_CHUNK)

    def _write(self, conn: socket.socket, data: bytes, deadline: Optional[float]) -> None:
        view = memoryview(data)
        while view:
            try:    # what the socket takes at once goes, however little time is left
                view = view[conn.send(view, 0 if deadline is None else socket.MSG_DONTWAIT):]
                continue
            except BlockingIOError:
                pass
            wait = deadline - time.monotonic()
            if wait <= 0 or not _Watch((conn,), write=True).ready(wait):
                raise socket.timeout('the peer stopped reading (%d bytes not taken)' % len(view))

    def _shut(self, conn: socket.socket) -> None:
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _release(self, conn: socket.socket) -> None:
        conn.close()


class tcp_client_stp(_TcpTransport):
    """Connects to host:port and keeps reconnecting (0.1 s, doubling to 1 s) while open.

    rx_tx_log_lvl (both classes): taken for socket_protocol's signature and unused; the frames' hex lines go to
    the comm logger at DEBUG.
    """

    IS_CLIENT = True
    CALLERS_READ = True

    def __init__(self, host: str, port: int, rx_tx_log_lvl=None) -> None:
        self.host = host
        self.port = port
        self._delay = 0.1
        super().__init__()

    def _open(self) -> Optional[socket.socket]:
        try:
            conn = self._connect()
        except OSError:
            self._wait_retry(self._delay)
            self._delay = min(self._delay * 2, 1.0)
            return None
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._delay = 0.1
        return conn

    def _connect(self) -> socket.socket:
        """socket.create_connection() within CONNECT_S, which a close() gives up at once: a peer that never
        answers a connect would hold close() that long."""
        end = time.monotonic() + CONNECT_S
        failed: OSError = OSError('no address for %s' % self.host)
        for family, kind, proto, _, address in socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM):
            conn = socket.socket(family, kind, proto)
            try:
                conn.setblocking(False)
                code = conn.connect_ex(address)
                watch = _Watch((conn,), write=True)
                while code in _CONNECTING and not self._closed.is_set():
                    wait = end - time.monotonic()
                    if wait <= 0:
                        code = errno.ETIMEDOUT
                    elif watch.ready(min(wait, CLOSE_LOOK_S)):
                        code = conn.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    raise OSError(code, os.strerror(code))
                conn.setblocking(True)
                return conn
            except OSError as err:
                conn.close()
                failed = err
        raise failed


class tcp_server_stp(_TcpTransport):
    """Listens on host:port (port 0 picks a free one, see .port); serves one client at a time.

    Who is served follows sp_common.admission: a client whose probation is
    over is dropped, and while one is served a newcomer waits in the listen
    backlog until that client makes room (it stalled unproven, or a proven
    one fell silent), so that connections which never prove themselves
    cannot hold a genuine client off.
    """

    IS_CLIENT = False

    def __init__(self, host: str, port: int, rx_tx_log_lvl=None) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, port))
        self._listener.listen(admission.BACKLOG)
        self.host = host
        self.port = self._listener.getsockname()[1]
        self._since = (0, 0)   # admission.counts() as the connection began
        self._watch = _Watch(())   # the client's socket and the listener
        self._waiting = False
        self._gone = False   # admission's verdict came between the client's callbacks: its next read ends it
        super().__init__()

    def _read(self, conn: socket.socket) -> bytes:
        """The client's bytes, or b'' (lost) once admission says it goes: its probation is over, or a
        newcomer waits and it makes room, or it is noisy."""
        while True:
            engine = self.engine
            if engine is None:
                return conn.recv(_CHUNK)
            if self._gone:
                return b''
            due = admission.due_ms(engine, self._waiting)
            ready = self._looked(None if due is None else due / 1000)
            if self._gone:   # (first: one that keeps its socket full too)
                return b''
            if conn in ready:
                return conn.recv(_CHUNK)

    def keeps_place(self) -> bool:
        """Asked between the callbacks a read queued (a read may queue hundreds): whether the client keeps its
        place, as _read asks, a newcomer looked for at once. A proven client that sends is never idle: no look."""
        if not self._gone and self.engine is not None and not self.engine.proven():
            self._looked(0)
        return not self._gone

    def _looked(self, timeout: Optional[float]) -> set:
        """What of the client and the listener is ready within timeout; then admission's verdict (_gone)."""
        ready = self._watch.ready(timeout)
        if self._listener in ready:   # (from now on only the client is watched)
            self._waiting = True
            self._watch.drop(self._listener)
        if admission.must_go(self.engine, self._waiting, self._since):
            self._gone = True
        return ready

    def _open(self) -> Optional[socket.socket]:
        try:
            conn, _ = self._listener.accept()
        except OSError:
            self._wait_retry(0.1)
            return None
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            watch = _Watch((conn, self._listener))
        except (OSError, ValueError):   # the peer gone already, or close() closed the listener meanwhile
            conn.close()
            return None
        if self.engine is not None:
            self._since = admission.counts(self.engine)
        self._watch = watch
        self._waiting = False   # a newcomer waits in the listener's backlog
        self._gone = False
        return conn

    def _stop_opening(self) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
