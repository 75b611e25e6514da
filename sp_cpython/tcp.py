"""TCP comm instances: tcp_client_stp reconnects, tcp_server_stp serves one client after another."""
from __future__ import annotations

import select
import socket
import time
from typing import Callable, List, Optional, Tuple

from .transport import StreamTransport

_CHUNK = 65536


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
            if wait <= 0 or not select.select((), (conn,), (), wait)[1]:
                raise socket.timeout('the peer stopped reading (%d bytes not taken)' % len(view))

    def _shut(self, conn: socket.socket) -> None:
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _release(self, conn: socket.socket) -> None:
        conn.close()


class tcp_client_stp(_TcpTransport):
    """Connects to host:port and keeps reconnecting (0.1 s, doubling to 1 s) while open."""

    IS_CLIENT = True

    def __init__(self, host: str, port: int, rx_tx_log_lvl=None) -> None:
        self.host = host
        self.port = port
        self._delay = 0.1
        super().__init__()

    def _open(self) -> Optional[socket.socket]:
        try:
            conn = socket.create_connection((self.host, self.port), timeout=2)
        except OSError:
            self._wait_retry(self._delay)
            self._delay = min(self._delay * 2, 1.0)
            return None
        conn.settimeout(None)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._delay = 0.1
        return conn


class tcp_server_stp(_TcpTransport):
    """Listens on host:port (port 0 picks a free one, see .port); one client at a time.

    A client that has sent no valid frame within SILENCE seconds, or has not
    authenticated (with a secret) within PROBATION seconds, is dropped, so
    that idle connections cannot lock the others out for long.
    """

    IS_CLIENT = False
    SILENCE = 1.0
    PROBATION = 5.0

    def probation(self, engine) -> List[Tuple[float, Callable[[], bool]]]:
        """(seconds after a connect, the test of engine its peer must pass by then), in time order."""
        return sorted(((self.SILENCE, engine.heard), (self.PROBATION, engine.proven)), key=lambda step: step[0])

    def __init__(self, host: str, port: int, rx_tx_log_lvl=None) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, port))
        self._listener.listen(8)
        self.host = host
        self.port = self._listener.getsockname()[1]
        super().__init__()

    def _open(self) -> Optional[socket.socket]:
        try:
            conn, _ = self._listener.accept()
        except OSError:
            self._wait_retry(0.1)
            return None
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def _stop_opening(self) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
