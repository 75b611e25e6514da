"""The USB serial console (sys.stdin / sys.stdout) as a device stream."""
import select
import sys

import micropython
from micropython import const
from sp_common import load

from .protocol import Stream

try:
    import termios   # the unix port: its stdin may be a terminal, whose timing sp_micropython.tty sets
except ImportError:   # a board's console
    termios = None

_READY = const(0x19)   # select.POLLIN | POLLERR | POLLHUP
_STALLED_MS = const(500)   # silence after which a frame left unfinished is given up (with repl=True)


class StdioStream(Stream):
    """The USB serial console: sys.stdin.buffer / sys.stdout.buffer.

    Ctrl-C is switched off (micropython.kbd_intr(-1)) while it owns stdin,
    because frames contain 0x03 bytes; close() switches it back on. With
    repl=True a Ctrl-C between frames (as mpremote, Thonny and Belay send
    it) closes the stream: the board's loop ends and the console is the
    REPL's again. A frame left unfinished (its host died in the middle of a
    write, or sent ':<' alone) is given up once no byte has come for 500 ms
    and none is there when the loop looks (time the board spent in a
    callback does not count as the host's silence), so that a Ctrl-C then
    still hands the console back.

    A read takes what has arrived in one call where the port allows it (the
    unix port on a terminal, without repl); a board's console reads block
    until the buffer is full, so there stdin is read byte by byte while
    select.poll says a byte is ready, stopping after a Ctrl-C byte so that
    what follows it stays for the REPL (mpremote sends its Ctrl-A right
    behind), and so is a terminal's with repl=True. End of input (unix port:
    the pty or pipe closed) reports a disconnect and sets ended.

    Writes to a terminal (the unix port) never block: what the peer has not
    read waits and goes out as the terminal takes it, and a peer that reads
    nothing for 2 s, or falls 16 KiB behind, loses what waited
    (sp_micropython.pending). A board's console writes through its port,
    whose USB driver gives up on a host that reads nothing after its own
    timeout (500 ms).
    """

    def __init__(self, is_client=False, repl=False):
        Stream.__init__(self)
        self.IS_CLIENT = is_client
        self.watch = b'\x03' if repl else None   # Ctrl-C
        self.handed_back = False
        self._heard = 0   # when bytes last came, on the engine's clock (repl=True: see readinto)
        self._in = sys.stdin.buffer
        self._out = sys.stdout.buffer
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)
        self.pollables = ((sys.stdin, select.POLLIN),)
        self._one = bytearray(1)
        self._read = self._in.readinto   # the per-byte calls, bound once: a bound method made per call allocates
        self._ipoll = self._poll.ipoll
        self._tty = termios and load('sp_micropython.tty').timing((0, 0))
        self._pending = None
        if self._tty:
            self._pending = load('sp_micropython.pending').Pending()
            self._writable = select.poll()
            self._writable.register(sys.stdout, select.POLLOUT)
            self._reading = self.pollables   # (a terminal's, with the writing below: a board's console has neither)
            self._writing = self._reading + ((sys.stdout, select.POLLOUT),)   # serve() wakes when it has room
        if not self._tty or self.watch is not None:
            self.rx_size = 128   # read byte by byte: a bigger buffer would only hold heap
        micropython.kbd_intr(-1)
        self._set(True)

    def _ready(self):
        for entry in self._poll.ipoll(0):
            return entry[1] & _READY
        return 0

    def readinto(self, buf):
        """What has arrived: in one read on a terminal, else byte by byte while one is ready.

        Byte by byte, a read stops after a Ctrl-C byte when watch is set, so that what follows it stays
        for the REPL.
        """
        if not self._up:
            return 0
        if not self._ready():   # (output waiting is pushed only then: bytes that come may start a new session,
            if self._pending is not None:   # and what waits for the last one is not to go to the next)
                self._push()
            if self.watch is not None and self.engine.clock() - self._heard >= _STALLED_MS:
                deframer = self.engine.deframer   # a frame left unfinished, if any, is given up
                if deframer.in_frame:
                    deframer.framing_errors += 1
                deframer.reset()
            return 0
        n = 0
        try:
            if self._tty and self.watch is None:
                n = self._in.readinto(buf)
            else:
                one = self._one
                read = self._read
                ready = self._ipoll
                stop = 0x03 if self.watch else -1
                while n < len(buf) and read(one):
                    buf[n] = one[0]
                    n += 1
                    if one[0] == stop:
                        break
                    for _ in ready(0):   # another byte waits
                        break
                    else:
                        break
        except OSError:
            pass
        if not n:   # ready, yet nothing to read: the end of input
            self._lost()
        elif self.watch is not None:
            self._heard = self.engine.clock()
        return n

    def interrupted(self):
        """A Ctrl-C came between frames: the stream ends and the console goes back to the REPL.

        Ctrl-C stays off until the REPL takes over and sets it as it needs: a
        second Ctrl-C that arrives meanwhile (tools send two) is then a key for
        the REPL, not a KeyboardInterrupt waiting for the next code it runs.
        """
        if self._up:
            self._lost()
            self.handed_back = True

    def _lost(self):
        if self._tty:
            load('sp_micropython.tty').timing(self._tty)
            self._tty = None
        self._poll.unregister(sys.stdin)
        self.pollables = ()
        self.ended = True
        self._set(False)

    def write(self, data):
        if not self._up:
            return
        pending = self._pending
        if pending is None:
            self._out.write(data)
            return
        if pending.view is None:   # nothing waits: what the terminal takes now goes at once, the rest waits
            data = memoryview(data)
            n = self._take(data)
            if n == len(data):
                return
            data = data[n:]
        if pending.add(data, self.engine.epoch):
            self._push()

    def wait_ms(self):
        """Until what waits to be written is due, or (repl=True) a frame left unfinished is."""
        ms = -1 if self._pending is None else self._pending.wait_ms()
        if self.watch is not None and (self.engine.deframer.in_frame or self.engine.deframer.broken):
            stalled = max(0, _STALLED_MS - (self.engine.clock() - self._heard))   # the loop looks then
            if ms < 0 or stalled < ms:
                ms = stalled
        return ms

    def _take(self, view):
        """What the terminal takes of view now: 256 bytes at a time while poll says it has room. A Linux pty
        that has room has it for 256 bytes (it counts its buffers in units of 256), so such a write never
        blocks, and a frame of that size goes in one call (inline: one more method grows the class's table,
        which a board builds in its heap even from frozen code)."""
        n = 0
        while n < len(view):
            for _ in self._writable.ipoll(0):
                break
            else:
                break
            try:
                n += self._out.write(view[n:n + 256]) or 0
            except OSError:   # the peer hung up: the read that follows finds the end of input
                break
        return n

    def _push(self):
        self._pending.push(self._take)
        self.pollables = self._reading if self._pending.view is None else self._writing

    def close(self):
        if self._up:
            self._lost()
        if not self.handed_back:   # else the REPL sets Ctrl-C as it needs (see interrupted())
            micropython.kbd_intr(3)


def from_config(config, client):
    """REPL (default False): a Ctrl-C between frames hands the console back to the REPL (see StdioStream)."""
    return StdioStream(is_client=client, repl=getattr(config, 'REPL', False))
