"""Output a link has not taken yet, for streams whose writes must never block: TCP, the unix port's console."""
import time

WRITE_TIMEOUT_MS = 2000    # a link that takes no byte for this long is given up
MAX_PENDING = 16384        # and so is one that falls this far behind


class Pending:
    """What waits to go out (a memoryview, or None), and since when the link took nothing."""

    def __init__(self):
        self.view = None
        self._stuck_since = 0
        self._session = None

    def wait_ms(self):
        """While output waits: until the link counts as stuck; else -1."""
        if self.view is None:
            return -1
        return max(0, WRITE_TIMEOUT_MS + 1 - time.ticks_diff(time.ticks_ms(), self._stuck_since))

    def add(self, data, session=None):
        """Queues data; False (and nothing queued) when the link is this far behind: give it up. session: the
        engine's epoch data belongs to, on a link without connects (a console), where what still waits from an
        earlier session is dropped: the next program on the line hears nothing meant for the last."""
        if session != self._session:
            self._session = session
            self.view = None
        view = self.view
        if view is None:
            self.view = memoryview(data)
            self._stuck_since = time.ticks_ms()
        elif len(view) + len(data) > MAX_PENDING:
            self.view = None
            return False
        else:
            self.view = memoryview(bytes(view) + data)
        return True

    def push(self, write):
        """Hands what waits to write(view), which returns how much it took now (0: nothing); False once the
        link has taken nothing for WRITE_TIMEOUT_MS (what waited is dropped): give it up."""
        view = self.view
        if view is None:
            return True
        k = write(view)
        now = time.ticks_ms()
        if k:
            self._stuck_since = now
            self.view = view[k:] if k < len(view) else None
        elif time.ticks_diff(now, self._stuck_since) > WRITE_TIMEOUT_MS:
            self.view = None
            return False
        return True
