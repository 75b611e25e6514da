"""The device runtime: one engine per stream, a non-blocking poll() step and the loops around it.

No protocol decisions here; the engine in sp_common makes them. This layer
moves bytes between a stream and the engine and waits.
"""
import sys
import time

from sp_common import Engine, pure_json, struct_json
from sp_common.api import Api


# What every device stream offers: IS_CLIENT, readinto(buf) -> int (non-blocking,
# 0 when nothing is there), write(data) (never blocks or raises: what a link
# cannot take is kept for later, a dead or stuck link is dropped), poll_event() -> CONNECTED, DISCONNECTED or None (each change is
# reported once, in order), is_connected(), reconnect() and close(). Each kind
# lives in its own module (uart, stdio, tcp) so that a board loads only the
# ones it uses.
CONNECTED = 'connected'
DISCONNECTED = 'disconnected'


class Stream:
    IS_CLIENT = False

    def __init__(self):
        self._events = []
        self._up = False

    def proven(self):
        """Replaced by the protocol's: whether the peer has shown it belongs here."""
        return False

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


class PrintLog:
    """A logger stand-in for the engine's log/hexlog: prints lines at or above level to a text stream."""

    def __init__(self, level=30, out=None, name='sp'):
        self.level = level
        self.out = out
        self.name = name

    def isEnabledFor(self, level):
        return level >= self.level

    def log(self, level, text):
        out = self.out or sys.stderr
        out.write('%s %d %s\n' % (self.name, level, text))


class Clock:
    """Milliseconds since start that only grow, for the engine (ticks_ms wraps)."""

    def __init__(self):
        self._last = time.ticks_ms()
        self._ms = 0

    def ms(self):
        now = time.ticks_ms()
        self._ms += time.ticks_diff(now, self._last)
        self._last = now
        return self._ms


_clock = Clock()


class _NoLock:
    """The device has one thread: the engine needs no lock."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_NO_LOCK = _NoLock()


class pure_json_protocol(Api, Engine):
    """The protocol on one stream: the engine itself, plus the loop that feeds it from the stream.

    Client or server comes from stream.IS_CLIENT.
    """

    CODEC = pure_json

    def __init__(self, stream, secret=None, auto_auth=False, channel_name=None, max_frame=8192,
                 max_buffered=16, log=None, hexlog=None, rx_size=512):
        Engine.__init__(self, stream.IS_CLIENT, self.CODEC, secret, auto_auth, channel_name,
                        max_frame, max_buffered, log, hexlog, clock=_clock.ms)
        self.__comm_inst__ = stream
        self._engine = self
        self._lock = _NO_LOCK
        self._feeding = False
        self._rx = bytearray(rx_size)
        stream.proven = self.proven

    # the loop ----------------------------------------------------------------
    def _events(self):
        stream = self.__comm_inst__
        event = stream.poll_event()
        busy = event is not None
        while event is not None:
            if event == CONNECTED:
                self.connection_made()
            elif event == DISCONNECTED:
                self.connection_lost()
            event = stream.poll_event()
        return busy

    def poll(self):
        """One non-blocking step; True if anything happened (a connection event or bytes)."""
        busy = self._events()
        n = self.__comm_inst__.readinto(self._rx)
        if n:
            self._feeding = True
            try:
                self.feed(self._rx, n)
            finally:
                self._feeding = False
        busy = self._events() or busy or n > 0
        self._flush(0)
        return busy

    def serve_forever(self, idle_ms=2):
        serve(self, idle_ms=idle_ms)

    async def run(self, idle_ms=2):
        """An asyncio task that serves this protocol."""
        import asyncio
        sleep_ms = getattr(asyncio, 'sleep_ms', None)
        while True:
            wait = 0 if self.poll() else idle_ms
            if sleep_ms is not None:
                await sleep_ms(wait)
            else:
                await asyncio.sleep(wait / 1000)

    # what the shared Api needs -------------------------------------------------
    def _wait(self, done, timeout):
        start = time.ticks_ms()
        limit = int(timeout * 1000)
        while True:
            value = done()
            if value or time.ticks_diff(time.ticks_ms(), start) >= limit:
                return value
            if not self.poll():
                time.sleep_ms(1)

    def _flush(self, timeout):
        """Hands the outbox to the stream, which never blocks (a stuck link is dropped)."""
        data = self.data_to_send()
        if data:
            self.__comm_inst__.write(data)
        return self.__comm_inst__.is_connected()

    def _may_block(self):
        if self._feeding:
            raise RuntimeError('cannot wait inside a callback: it would stall the link')

    def is_connected(self):
        return self.__comm_inst__.is_connected()

    def reconnect(self):
        self.__comm_inst__.reconnect()

    def close(self):
        self.__comm_inst__.close()
        self._events()


class struct_json_protocol(pure_json_protocol):
    """Same, with the compact (deprecated) struct_json codec."""

    CODEC = struct_json


def serve(*protocols, idle_ms=2, until=None):
    """Polls every protocol in turn, sleeping idle_ms when none had work; returns when until() is true."""
    while until is None or not until():
        busy = False
        for prot in protocols:
            if prot.poll():
                busy = True
        if not busy:
            time.sleep_ms(idle_ms)
