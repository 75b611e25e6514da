"""The USB serial console (sys.stdin / sys.stdout) as a device stream."""
import select
import sys

from .protocol import Stream


class StdioStream(Stream):
    """The USB serial console: sys.stdin.buffer / sys.stdout.buffer.

    Ctrl-C is switched off (micropython.kbd_intr(-1)) while it owns stdin,
    because frames contain 0x03 bytes; close() switches it back on. stdin is
    read byte by byte while select.poll says a byte is ready (a bigger
    readinto would block until the buffer is full). End of input (unix port:
    the pty or pipe closed) reports DISCONNECTED.
    """

    def __init__(self, is_client=False):
        import micropython
        Stream.__init__(self)
        self.IS_CLIENT = is_client
        self._in = sys.stdin.buffer
        self._out = sys.stdout.buffer
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)
        self._one = bytearray(1)
        self._kbd_intr = micropython.kbd_intr
        self._kbd_intr(-1)
        self._set(True)

    def readinto(self, buf):
        if not self._up:
            return 0
        one = self._one
        read = self._in.readinto
        n = 0
        size = len(buf)
        while n < size:
            event = 0
            for entry in self._poll.ipoll(0):
                event = entry[1]
            if not event:
                break
            try:
                got = read(one) if event & select.POLLIN else 0
            except OSError:
                got = 0
            if not got:
                self._lost()
                break
            buf[n] = one[0]
            n += 1
        return n

    def _lost(self):
        self._poll.unregister(sys.stdin)
        self._set(False)

    def write(self, data):
        if self._up:
            self._out.write(data)

    def close(self):
        if self._up:
            self._lost()
        self._kbd_intr(3)


def from_config(config, client):
    return StdioStream(is_client=client)
