"""The device runtime: one engine per stream, a non-blocking poll() step and the loops around it.

No protocol decisions here; the engine in sp_common makes them. This layer
moves bytes between a stream and the engine and waits.
"""
import select
import time

from sp_common import load
from sp_common.api import Api
from sp_common.codec import pure_json
from sp_common.engine import Engine


# What every device stream offers:
# - IS_CLIENT; CONNECTS, whether the link has connects of its own (TCP has, a serial line has not);
# - readinto(buf) -> int: non-blocking, 0 when nothing is there;
# - write(data): never blocks for long (a board's console or UART waits for its driver's room) nor raises (but
#   MemoryError, in a heap that is full: poll() counts it); what the link cannot take is kept for later, a dead
#   or stuck link is dropped;
# - events, the list of its connection changes not yet taken, oldest first: True (connected), False (disconnected);
# - is_connected(), reconnect(), close();
# - for the loops that wait on it: pollables, the (object, select event mask) pairs whose readiness means
#   poll() has work (a new tuple whenever they change); wait_ms(), how long poll() may wait without any of
#   them waking it; ended, true once the stream is gone for good (stdin closed);
# - rx_size, the receive buffer it wants (protocol(rx_size=...) overrides it);
# - watch, a byte that means something between frames (the console's Ctrl-C) or None, and interrupted(),
#   which the protocol calls when that byte came between frames.
# The protocol sets the stream's engine attribute to itself.
# Each kind lives in its own module (uart, stdio, tcp) so that a board loads only the ones it uses.


class Stream:
    IS_CLIENT = False
    CONNECTS = False   # TCP has; a serial line has not
    pollables = ()
    ended = False
    rx_size = 512   # the most one readinto() of poll() takes
    watch = None

    def __init__(self):
        self.events = []
        self._up = False

    def wait_ms(self):
        """Milliseconds until poll() is due even if nothing polled wakes it; -1: only when something does."""
        return -1

    def _set(self, on):
        if on != self._up:
            self._up = on
            self.events.append(on)

    def is_connected(self):
        return self._up

    def reconnect(self):
        pass

    def close(self):
        self._set(False)


def _ms(clock=[time.ticks_ms(), 0]):
    """Milliseconds since start that only grow, for the engine (ticks_ms wraps).

    clock, the last ticks_ms() read and the milliseconds since start, is the
    function's own state (a default, made once).
    """
    now = time.ticks_ms()
    clock[1] += time.ticks_diff(now, clock[0])
    clock[0] = now
    return clock[1]


class Waiter:
    """One select.poll over the streams of some protocols: sleeps until one is ready or a deadline is due."""

    def __init__(self, prots):
        self._prots = prots
        self._seen = [None] * len(prots)   # the streams' pollables as registered
        self._poll = None
        self.due = []   # the protocols the last wait() woke for: a stream of theirs is ready, or they have a deadline

    def wait(self, timeout=-1):
        """Returns when a stream is ready, a protocol's wait_ms() has passed or timeout ms (-1: none) have.

        The streams' pollables are registered anew when one of them changed
        (a connect, a drop, output pending). due then holds the protocols
        whose step has something to do, or none after a wait that could not
        tell (a step of all).
        """
        prots = self._prots
        seen = self._seen
        due = self.due
        while due:   # (not clear(): that reallocates the list)
            due.pop()
        try:
            for i in range(len(prots)):
                if prots[i].__comm_inst__.pollables is not seen[i]:
                    self._poll = select.poll()
                    for j in range(len(prots)):
                        seen[j] = prots[j].__comm_inst__.pollables
                        for entry in seen[j]:
                            self._poll.register(entry[0], entry[1])
                    break
        except MemoryError:   # no room for the poll of the streams as they are now: a nap, and the loop goes on
            for j in range(len(seen)):
                seen[j] = None   # (registered anew next time)
            time.sleep_ms(10)
            return
        for prot in prots:
            ms = prot.wait_ms()
            if ms >= 0:
                due.append(prot)   # its step looks whether the deadline has come
                if timeout < 0 or ms < timeout:
                    timeout = ms
        for ready in self._poll.ipoll(timeout):
            for i in range(len(prots)):
                if prots[i] not in due:
                    for entry in seen[i]:
                        if entry[0] is ready[0]:
                            due.append(prots[i])
                            break


class pure_json_protocol(Engine, Api):
    """The protocol on one stream: the engine itself, plus the loop that feeds it from the stream.

    Client or server comes from stream.IS_CLIENT. send(), request(), call(),
    receive() and authentificate() are sp_common.ops' operations, driven by
    sp_common.api; this class gives them the loop that waits.
    """

    CODEC = pure_json
    _waiter = None   # made by the first call that waits (receive(), request(), ...)

    def __init__(self, stream, secret=None, auto_auth=False, channel_name=None, max_frame=8192,
                 max_buffered=16, log=None, hexlog=None, rx_size=None, session_v2=True):
        Engine.__init__(self, stream.IS_CLIENT, self.CODEC, secret, auto_auth, channel_name,
                        max_frame, max_buffered, log, hexlog, clock=_ms, session_v2=session_v2)
        self.__comm_inst__ = stream
        if stream.CONNECTS:
            self.connects = True
        self._feeding = False
        self._rx = bytearray(rx_size or stream.rx_size)
        self.deframer.watch = stream.watch
        stream.engine = self   # a server stream asks it whether its client has proven itself

    # the loop ----------------------------------------------------------------
    def _events(self):
        """Acts on the stream's connection changes, oldest first; True if there were any."""
        events = self.__comm_inst__.events
        busy = bool(events)
        while events:
            if events.pop(0):
                self.connection_made()
            else:
                self.connection_lost()
        return busy

    def poll(self):
        """One non-blocking step; True if anything happened (a connection event or bytes).

        A step the heap has no room for (the last bytes of a nearly full heap)
        is dropped and counted, as a frame is: the board serves on, and what
        the step left queued goes out with the next one, at once.
        """
        try:
            return self._poll_once()
        except MemoryError:
            self.counters['format_errors'] += 1
            return True

    def _poll_once(self):
        stream = self.__comm_inst__
        events = stream.events   # (looked at here, so that a step without a change makes no call for it)
        busy = bool(events) and self._events()
        n = stream.readinto(self._rx)
        if n:
            self._feeding = True
            try:
                self.feed(self._rx, n)   # one thread, no lock to leave: the engine runs callbacks as they come
            finally:
                self._feeding = False
            if self.deframer.watched:
                self.deframer.watched = False
                stream.interrupted()
        busy = bool(events) and self._events() or busy or n > 0
        self.tick()   # the engine's timers: it knows whether one runs
        if self._out:
            self._flush(0)
        if self.wire == 'refused':
            stream.reconnect()
        return bool(events) and self._events() or busy   # (a link the flush or the refusal dropped: nothing is left)

    def serve_forever(self):
        serve(self)

    def run(self):
        """An asyncio task that serves this protocol (sp_micropython.aio): await prot.run()."""
        return load('sp_micropython.aio').serve_task(self)

    def wait_ms(self):
        """Milliseconds poll() may wait for its stream to wake it (-1: as long as it takes); the engine's timers count,
        and frames still queued (a step the heap had no room for left them) want the next step at once."""
        if self._out:
            return 0
        ms = self.__comm_inst__.wait_ms()
        due = self.deadline_ms()
        if due is not None and (ms < 0 or due < ms):
            ms = due
        return ms

    # what the shared Api needs -------------------------------------------------
    @property
    def _engine(self):
        return self   # the protocol is its own engine

    def _wait(self, done, timeout):
        start = time.ticks_ms()
        limit = int(timeout * 1000)
        while True:
            value = done()
            left = limit - time.ticks_diff(time.ticks_ms(), start)
            if value or left <= 0:
                return value
            if not self.poll():
                if self._waiter is None:
                    self._waiter = Waiter((self,))
                self._waiter.wait(left)

    def _flush(self, timeout):
        """Hands the outbox to the stream, which never blocks (a stuck link is dropped), a frame at a time. A frame
        leaves the outbox as its write begins: a write the heap cuts short (it may have queued the frame already)
        loses that frame, never sends it twice, and the frames behind it wait for the next step."""
        stream = self.__comm_inst__
        out = self._out
        while out:
            stream.write(out.pop(0))
        self.queued = None   # (the engine's: nothing left to withdraw)
        return stream.is_connected()

    def _may_block(self):
        if self._feeding:
            raise RuntimeError('cannot wait inside a callback: it would stall the link')

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def is_connected(self):
        return self.__comm_inst__.is_connected()

    check_authentification_state = Engine.is_trusted   # socket_protocol's name

    def reconnect(self):
        self.__comm_inst__.reconnect()

    def close(self):
        self.__comm_inst__.close()
        self._events()


def poll_all(prots):
    """One poll() of each protocol; True if any had work."""
    busy = False
    for prot in prots:
        if prot.poll():
            busy = True
    return busy


def ended(protocols):
    """Every stream has ended for good (stdin closed, the console handed back to the REPL): nothing to serve."""
    for prot in protocols:
        if not prot.__comm_inst__.ended:
            return False
    return True


def serve(*protocols, until=None, step=poll_all):
    """Serves the protocols until until() is true or all their streams have ended: a step of work, then asleep
    in one select.poll over their streams until one is ready or a deadline is due, and again.

    step(protocols) is one round of work (poll_all), of the protocols the wake was for. A step leaves nothing for
    the next one but what wakes the poll (bytes waiting, a deadline): stepping again at once, to find it idle,
    would cost a round per request, and so would a step of a link the wake was not for.
    """
    waiter = Waiter(protocols)
    step(protocols)
    while (until is None or not until()) and not ended(protocols):
        waiter.wait()
        step(waiter.due or protocols)


def serve_until_end(prots, loop=serve):
    """A board's main loop: loop(*prots, until=...) until a stream has ended, then closes the protocols.

    It returns when a stdio stream reaches the end of its input (the unix
    port's stdin closed) or hands the console back to the REPL (a Ctrl-C
    between frames, with REPL set); a board serves until then or a reset.
    """
    def until():
        for prot in prots:
            if prot.__comm_inst__.ended:
                return True
        return False
    try:
        loop(*prots, until=until)
    finally:
        for prot in prots:
            prot.close()
