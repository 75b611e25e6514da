"""The device runtime: one engine per stream, a non-blocking poll() step and the loops around it.

No protocol decisions here; the engine in sp_common makes them. This layer
moves bytes between a stream and the engine and waits.
"""
import sys
import time

from sp_common import Engine, pure_json, struct_json
from sp_common.const import STATUS_OKAY


# What every device stream offers: IS_CLIENT, readinto(buf) -> int (non-blocking,
# 0 when nothing is there), write(data) (never raises: a write to a dead link is
# dropped), poll_event() -> CONNECTED, DISCONNECTED or None (each change is
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


class pure_json_protocol(Engine):
    """The protocol on one stream: the engine itself, plus the loop that feeds it from the stream.

    Client or server comes from stream.IS_CLIENT.
    """

    CODEC = pure_json

    def __init__(self, stream, secret=None, auto_auth=False, channel_name=None, max_frame=8192,
                 max_buffered=16, log=None, hexlog=None, rx_size=512):
        Engine.__init__(self, stream.write, stream.IS_CLIENT, self.CODEC, secret, auto_auth, channel_name,
                        max_frame, max_buffered, log, hexlog)
        self.__comm_inst__ = stream
        self._rx = bytearray(rx_size)

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
            self.feed(self._rx, n)
        return self._events() or busy or n > 0

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

    def _wait(self, done, timeout):
        start = time.ticks_ms()
        limit = int(timeout * 1000)
        while not done():
            if time.ticks_diff(time.ticks_ms(), start) >= limit:
                return False
            if not self.poll():
                time.sleep_ms(1)
        return True

    # the host's API ----------------------------------------------------------
    def send(self, service_id, data_id, data, status=STATUS_OKAY, timeout=2):
        """Sends one message; False if the stream is not connected. (Writes are synchronous.)"""
        if not self.__comm_inst__.is_connected():
            return False
        Engine.send(self, service_id, data_id, data, status)
        return True

    def receive(self, service_id, data_id, timeout=1):
        """The next buffered message for (service_id, data_id), polling up to timeout s; or None."""
        found = []

        def done():
            msg = self.pop_received(service_id, data_id)
            if msg is not None:
                found.append(msg)
            return bool(found)
        self._wait(done, timeout)
        return found[0] if found else None

    def authentificate(self, timeout=2):
        """Runs the seed/key handshake; True if the connection is trusted afterwards."""
        if self.secret is None or not self.is_connected():
            return False
        self.start_auth()
        self._wait(self.auth_settled, timeout)
        return self.is_trusted()

    def check_authentification_state(self):
        return self.is_trusted()

    def is_connected(self):
        return self.__comm_inst__.is_connected()

    def connection_established(self):
        return self.is_connected() and (self.secret is None or self.is_trusted())

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
