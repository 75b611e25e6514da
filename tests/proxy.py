"""A TCP proxy that sits between a client and a server frame by frame, as a man in the middle would."""
import socket
import threading

from sp_common import Deframer, frame

UP, DOWN = 'up', 'down'   # client to server, server to client


def through(body):
    return frame(body)


class Proxy:
    """Listens on 127.0.0.1 (see .port) and joins each client it accepts to the server at port.

    Each frame passes through hooks[direction](body), which returns the bytes
    that go on instead (default: the frame unchanged); seen[direction] keeps
    every body that came by; inject() writes any bytes in between. A client
    that leaves and comes back gets a new way through (connections counts them).
    """

    def __init__(self, port):
        self.port_to = port
        self.hooks = {UP: through, DOWN: through}
        self.seen = {UP: [], DOWN: []}
        self.connections = 0
        self._socks = {}            # direction -> the socket its bytes go out on
        self._locks = {UP: threading.Lock(), DOWN: threading.Lock()}
        self._listener = socket.create_server(('127.0.0.1', 0))
        self.port = self._listener.getsockname()[1]
        self._open = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self._listener.accept()
                server = socket.create_connection(('127.0.0.1', self.port_to))
            except OSError:
                return
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._open += [client, server]
            with self._locks[UP], self._locks[DOWN]:
                self._socks = {UP: server, DOWN: client}
                self.connections += 1
            for direction, source, sink in ((UP, client, server), (DOWN, server, client)):
                threading.Thread(target=self._pump, args=(direction, source, sink), daemon=True).start()

    def _pump(self, direction, source, sink):
        deframer = Deframer(1 << 16)
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b''
            if not data:   # one side left: so does the other, as on a real path
                for sock in (source, sink):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return
            for body in deframer.feed(data):
                body = bytes(body)
                self.seen[direction].append(body)
                self.inject(direction, self.hooks[direction](body))

    def inject(self, direction, data):
        """Writes data toward the server (UP) or the client (DOWN) on the current connection."""
        with self._locks[direction]:
            try:
                self._socks[direction].sendall(data)
            except (OSError, KeyError):
                pass

    def close(self):
        try:
            self._listener.shutdown(socket.SHUT_RDWR)   # wakes the accept()
        except OSError:
            pass
        self._listener.close()
        for sock in self._open:
            sock.close()
