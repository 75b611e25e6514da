"""One board of the gateway on its asyncio loop: the link (kept up, with backoff), its state and why, its calls.

A board the gateway dials (tcp://, a serial device) is connected again after
every loss; one that fails again and again waits longer each time (up to
BACKOFF_S[1]), on its own task, so it holds up no other board. A board that
dials in (listen://) is served by sp_cpython.aio's server, one board at a
time. `why` says what keeps a board offline, for its status topic; each
change of a board's state is logged, at WARNING when it went offline or came
back, so that it is said without -v.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Optional

import sp_cpython as sp
from sp_cpython import aio
from sp_cpython.protocol import CODECS

from .log_budget import log_within
from .target import PROTOCOLS, parse_host_port

log = logging.getLogger('sp.gateway')
CHANNEL_NAME = 'sp-gateway'
LISTEN_SCHEME = 'listen://'     # the board is the TCP client: the gateway is the server it dials
BACKOFF_S = (0.2, 5.0)          # first and longest wait before the next attempt on a board that failed
STEADY_S = 10.0                 # a link up this long was no failure: the next loss starts the backoff over
AUTH_S = 5.0                    # what a board gets to authenticate before the attempt counts as failed
WAITING_PER_WORKER = 8          # calls a board takes per call in flight before it answers the rest at once
OWN_PER_S = 500                 # messages a board may send on its own each second; the gateway drops the rest
MAX_FRAME = 65536               # the longest frame body on the gateway's links (the board's own limit may be lower)
FRAME_HEADROOM = 128            # a session v2 frame's seq, re and MAC, beyond the body the codec writes without them
GROWTH = 6                      # the most a payload's bytes grow in the codec's JSON (e.g. a character as \uXXXX)
NOT_CONNECTED = 'not connected yet'


@dataclass
class BoardSpec:
    """NAME=TARGET[?secret=S|secret_file=PATH][&codec=C][&baud=N].

    TARGET is tcp://HOST:PORT, a serial device, or listen://HOST:PORT for a board that connects to the gateway.
    """

    name: str
    target: str
    secret: Optional[str] = None
    codec: str = 'pure_json'
    baud: int = 115200


class BoardLink:
    """A board's link and the calls on it: at most `workers` in flight, at most max_waiting taken at all."""

    def __init__(self, spec: BoardSpec, workers: int, on_message: Callable[[str, sp.data_storage], None],
                 on_state: Callable[[], None]) -> None:
        self.spec = spec
        self.name = spec.name
        self.listen = parse_host_port(spec.target[len(LISTEN_SCHEME):], 'listen on HOST:PORT') \
            if spec.target.startswith(LISTEN_SCHEME) else None
        if spec.codec not in PROTOCOLS:
            raise ValueError('board %s: codec is one of %s' % (spec.name, ', '.join(PROTOCOLS)))
        self.max_waiting = WAITING_PER_WORKER * workers
        self.why = NOT_CONNECTED
        self._said = self.why       # the state last logged: True (online) or why the board was offline
        self._state_lines = [0, 0, 0]   # (log_budget): a board that dials in and hangs up in a loop fills no log
        self._warned = False        # an offline state was logged at WARNING since the board was last online
        self._workers = workers
        self._slots: Optional[asyncio.Semaphore] = None
        self._waiting = 0
        self._prot: Optional[aio.AsyncProtocol] = None
        self._on_message = on_message
        self._on_state = on_state
        self._task: Optional[asyncio.Task] = None
        self._server: Optional[asyncio.AbstractServer] = None
        self._second_ends = 0.0     # of the second whose own messages _own counts
        self._own = 0
        self._flooded = False       # the second before went over OWN_PER_S too
        self.flood_began = False    # the message over_budget() refused is the first of a flood

    # state --------------------------------------------------------------------------------
    def online(self) -> bool:
        prot = self._prot
        return prot is not None and prot.connection_established()

    def _offline(self, why: str, level: int = logging.WARNING) -> None:
        self.why = why
        self._changed(level)

    def _changed(self, level: int = logging.WARNING) -> None:
        """Logs a change of state (going offline at level, coming back online at WARNING when going offline was),
        then tells the gateway."""
        state = True if self.online() else self.why
        if state != self._said:
            what = 'board %s\'s state' % self.name
            if state is True:
                log_within(self._state_lines, logging.WARNING if self._warned else logging.INFO, what,
                           'board %s is %s', self.name, 'back online' if self._warned else 'online')
                self._warned = False
            else:
                log_within(self._state_lines, level, what, 'board %s is offline: %s', self.name, self.why)
                self._warned = self._warned or level >= logging.WARNING
            self._said = state
        self._on_state()

    def _options(self) -> dict:
        return dict(codec=self.spec.codec, secret=self.spec.secret, channel_name=CHANNEL_NAME, max_frame=MAX_FRAME)

    def _take(self, prot: aio.AsyncProtocol) -> None:
        prot.register_callback(None, None, self._from_board)
        self._prot = prot

    def _from_board(self, msg: sp.data_storage):
        """Whatever the board sends that no call waits for: a request of its own, or an answer nobody asked for."""
        self._on_message(self.name, msg)
        return sp.STATUS_OKAY, None     # a board's request is acknowledged once published

    def over_budget(self) -> bool:
        """Counts a message the board sent on its own: True past OWN_PER_S within a second, so that one board's flood
        costs the gateway's loop and the broker no more than that."""
        now = time.monotonic()
        if now >= self._second_ends:
            self._flooded = self._own > OWN_PER_S and now < self._second_ends + 1.0
            self._second_ends, self._own = now + 1.0, 0
        self._own += 1
        self.flood_began = self._own == OWN_PER_S + 1 and not self._flooded
        return self._own > OWN_PER_S

    # the link -------------------------------------------------------------------------------
    def start(self) -> None:
        """Takes the board up; a link already started is left as it is (a second dial task would fight it for the
        board's one connection, and close() would end only one of them)."""
        if self._task is not None:
            return
        self._slots = asyncio.Semaphore(self._workers)
        self._task = asyncio.ensure_future(self._serve() if self.listen else self._dial())

    async def _dial(self) -> None:
        """Connects, authenticates, waits for the loss; again and again, backing off while it keeps failing."""
        wait = BACKOFF_S[0]
        target = self.spec.target
        while True:
            loop = asyncio.get_running_loop()
            began = loop.time()
            try:
                prot = await aio.connect(target, self.spec.baud, auto_auth=self.spec.secret is not None,
                                         **self._options())
            except Exception as err:    # OSError, or what a device that is no serial port raises (termios.error)
                self._offline('cannot connect to %s: %s' % (target, getattr(err, 'strerror', None) or err))
            else:
                self._take(prot)
                self._changed()
                why = await self._hold(prot)
                self._prot = None
                await prot.close()
                self._offline(why)
                if loop.time() - began > STEADY_S:
                    wait = BACKOFF_S[0]
            await asyncio.sleep(wait)
            wait = min(wait * 2, BACKOFF_S[1])

    async def _hold(self, prot: aio.AsyncProtocol) -> str:
        """Why the link ended: it was lost, or the board did not authenticate."""
        if self.spec.secret is not None and not await prot.authentificate(AUTH_S):
            if prot.is_connected():
                return 'did not authenticate within %g s (the wrong secret?)' % AUTH_S
            return 'connection lost while authenticating'
        self._changed()
        await prot.wait_closed()
        return 'connection lost'

    async def _serve(self) -> None:
        """Listens for the board (one at a time: a newcomer that proves itself replaces the last one)."""
        host, port = self.listen
        wait = BACKOFF_S[0]
        while self._server is None:
            try:
                self._server = await aio.serve(host, port, self._accepted, max_clients=1, **self._options())
            except OSError as err:
                self._offline('cannot listen on %s:%d: %s' % (host, port, err.strerror or err))
                await asyncio.sleep(wait)
                wait = min(wait * 2, BACKOFF_S[1])
        # what a listening board is until it dials in: no news without -v
        self._offline('waiting for the board to connect to %s:%d' % (host, port), logging.INFO)

    def _accepted(self, prot: aio.AsyncProtocol) -> None:
        """A connection to the listening gateway: the board once it proves itself (authenticates, with a secret)."""
        def proven() -> bool:
            self._take(prot)
            self._changed()
            return True

        def lost(_: aio.AsyncProtocol) -> None:
            if self._prot is prot and not prot.is_connected():
                self._prot = None
                self._offline('the board\'s connection ended: waiting for it to connect again')
            self._changed()
        prot.on_proven = lambda p, make_room=prot.on_proven: make_room(p) and proven()   # (not if it goes)
        prot.on_lost = lost

    def close(self) -> Awaitable[None]:
        """Lets go of the board at once, not when awaited: the gateway may give a board up and start() it again in one
        loop step, and a dial task left running would keep the board. Awaiting the result closes the connection."""
        task, server, prot = self._task, self._server, self._prot
        self._task = self._server = self._prot = None
        self.why = self._said = NOT_CONNECTED     # a board claimed back starts over
        self._warned = False
        if task is not None:
            task.cancel()
        if server is not None:
            server.close()
        return prot.close() if prot is not None else asyncio.sleep(0)

    # calls ----------------------------------------------------------------------------------
    def frame_fault(self, sid: int, did: int, data: Any, payload_bytes: int) -> Optional[str]:
        """Why the frame of a request is longer than the link takes (the board drops such a frame unread: its call
        would only time out) or the codec refuses it, or None. The request is encoded for it only when its payload
        could make such a frame."""
        if payload_bytes * GROWTH + FRAME_HEADROOM <= MAX_FRAME:
            return None
        try:
            size = len(CODECS[self.spec.codec].encode(sid, did, sp.STATUS_OKAY, data))
        except (TypeError, ValueError, RecursionError) as err:   # e.g. nested deeper than a board takes
            return str(err)
        if size + FRAME_HEADROOM <= MAX_FRAME:
            return None
        return 'the request is too long for the board\'s frames: %d bytes encoded, %d at most' % (
            size, MAX_FRAME - FRAME_HEADROOM)

    def take_call(self) -> bool:
        """Counts a call in, unless max_waiting are there already: a flood waits in no queue without end."""
        if self._waiting >= self.max_waiting:
            return False
        self._waiting += 1
        return True

    async def request(self, sid: int, did: int, data: Any, timeout: float) -> Optional[sp.data_storage]:
        """The board's answer, or None when none came within timeout (or the board went away)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        try:
            async with self._slots:
                prot = self._prot
                if prot is None or loop.time() >= end:
                    return None
                answer = await prot.request(sid, did, data, end - loop.time())
                if answer is None and prot.session != 2 and prot is self._prot:
                    # the original wire matches an answer by its ids alone: this call's late answer would go to the
                    # next caller on these ids, so the connection goes, and the answers on their way with it (once
                    # this call is told its timeout)
                    loop.call_soon(asyncio.ensure_future, prot.close())
                return answer
        finally:
            self._waiting -= 1
