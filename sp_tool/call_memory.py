"""Calls the gateway has taken lately, by a digest of the request and its reply address: a repeat is not called again.

MQTT QoS 1 delivers at least once: after a reconnect of the gateway or the
broker, a request may arrive a second time. A write or an execute has
effects, so the repeat waits for the first call's answer (still in flight)
or gets it again (already answered), for WINDOW_S after the first arrived;
at most MAX_REPEATS repeats of one call are answered, waiting or after, the
rest are dropped (a caller that sends one request again and again gets no
more answers than that). A call is known by a digest of its request topic, reply address and
payload (Reply.key): a repeat is the same bytes, and another request under
the same reply address is another call. What is remembered of answered
calls is bounded by count and by bytes (each call's digest and answer), the
oldest answered going first, so a flood of distinct calls costs the window,
not memory without end. Calls still in flight are kept apart, whatever
their age: the gateway's own bound on calls waiting for each board bounds
them, and an answer never comes for a call that was forgotten while it
waited.
"""
from __future__ import annotations

import collections
import time
from typing import Callable, Dict, Optional

WINDOW_S = 60.0
MAX_CALLS = 65536
MAX_BYTES = 16 << 20
MAX_REPEATS = 8     # repeats of one call answered, those that wait for its answer and those after it


class _Entry:
    __slots__ = ('since', 'answer', 'send', 'waiting', 'repeats')

    def __init__(self, since: float) -> None:
        self.since = since
        self.answer: Optional[bytes] = None
        # the repeats that wait for the answer are the same bytes to the same address: one send() for them all,
        # and how many they are (a send() each would hold each repeat's copy of a reply address of up to 128 KiB)
        self.send: Optional[Callable[[bytes], None]] = None
        self.waiting = 0
        self.repeats = 0


class CallMemory:
    """repeat() answers a call taken before; begin() and answered() remember a new one and its answer (the payload
    published; each reply gets its own properties)."""

    def __init__(self, window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic,
                 max_bytes: int = MAX_BYTES) -> None:
        self.window_s = window_s
        self.max_bytes = max_bytes
        self._clock = clock
        self._in_flight: Dict[bytes, _Entry] = {}
        self._answered: 'collections.OrderedDict[bytes, _Entry]' = collections.OrderedDict()   # oldest answer first
        self._bytes = 0     # of the answered calls' digests and answers
        self.dropped = 0    # repeats dropped: MAX_REPEATS came already

    def repeat(self, key: bytes, send: Callable[[bytes], None]) -> bool:
        """True when key was taken within the window: send(answer) gets the first call's answer, now or once it
        is there (unless MAX_REPEATS repeats came already: then it is dropped, counted in dropped)."""
        self._forget_old()
        entry = self._in_flight.get(key) or self._answered.get(key)
        if entry is None:
            return False
        entry.repeats += 1
        if entry.repeats > MAX_REPEATS:
            self.dropped += 1
        elif entry.answer is not None:
            send(entry.answer)
        else:
            entry.send = entry.send or send
            entry.waiting += 1
        return True

    def begin(self, key: bytes) -> None:
        """key: Reply.key's digest."""
        self._in_flight[key] = _Entry(self._clock())

    def answered(self, key: bytes, answer: bytes) -> None:
        entry = self._in_flight.pop(key, None)
        if entry is None:
            return
        entry.answer = answer
        self._answered[key] = entry
        self._bytes += len(key) + len(answer)
        waiting, send = entry.waiting, entry.send
        entry.waiting, entry.send = 0, None
        for _ in range(waiting):
            send(answer)
        self._forget_old()

    def _forget_old(self) -> None:
        """Answered calls go, oldest answer first, once out of the window or beyond the bounds."""
        oldest = self._clock() - self.window_s
        calls = self._answered
        while calls:
            key, entry = next(iter(calls.items()))
            if entry.since > oldest and len(calls) <= MAX_CALLS and self._bytes <= self.max_bytes:
                return
            del calls[key]
            self._bytes -= len(key) + len(entry.answer)
