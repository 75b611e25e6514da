"""What every device stream offers, and the connection events it reports.

A stream has IS_CLIENT, readinto(buf) -> int (non-blocking, 0 when nothing
is there), write(data) (never raises: a write to a dead link is dropped),
poll_event() -> CONNECTED, DISCONNECTED or None (each change is reported
once, in order), is_connected(), reconnect() and close(). Each kind lives in
its own module (uart, stdio, tcp) so that a board loads only the ones it uses.
"""
CONNECTED = 'connected'
DISCONNECTED = 'disconnected'


class Stream:
    IS_CLIENT = False

    def __init__(self):
        self._events = []
        self._up = False

    def _set(self, up):
        if up != self._up:
            self._up = up
            self._events.append(CONNECTED if up else DISCONNECTED)

    def poll_event(self):
        return self._events.pop(0) if self._events else None

    def is_connected(self):
        return self._up

    def reconnect(self):
        pass

    def close(self):
        self._set(False)
