"""Calls the gateway has taken lately, by the request's topic and its reply address: a repeat is not called again.

MQTT QoS 1 delivers at least once: after a reconnect of the gateway or the
broker, a request may arrive a second time. A write or an execute has
effects, so the repeat waits for the first call's answer (still in flight)
or gets it again (already answered), for WINDOW_S after the first arrived;
at most MAX_WAITING repeats wait for one call, the rest are dropped (a
caller that sends one request again and again gets no more answers than
that). What is remembered is bounded by count and by its bytes (each call's
topics and Correlation Data, its waiting repeats, and its answer with its
properties), so a flood of distinct calls costs the window, not memory
without end.
"""
from __future__ import annotations

import collections
import time
from typing import Callable, Hashable, List, Optional, Tuple

WINDOW_S = 60.0
MAX_CALLS = 65536
MAX_BYTES = 16 << 20
MAX_WAITING = 8     # repeats of one call waiting for its answer

Answer = Tuple[bytes, object]     # the published payload and its MQTT properties


def _size(parts) -> int:
    """The bytes of a key's or an answer's parts (str, bytes or None): what keeping them costs, near enough."""
    return sum(len(part.encode()) if isinstance(part, str) else len(part) for part in parts if part is not None)


class _Entry:
    __slots__ = ('since', 'size', 'answer', 'waiting')

    def __init__(self, since: float, size: int) -> None:
        self.since = since
        self.size = size
        self.answer: Optional[Answer] = None
        self.waiting: List[Callable[[Answer], None]] = []


class CallMemory:
    """repeat() answers a call taken before; begin() and answered() remember a new one and its answer."""

    def __init__(self, window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic,
                 max_bytes: int = MAX_BYTES) -> None:
        self.window_s = window_s
        self.max_bytes = max_bytes
        self._clock = clock
        self._calls: 'collections.OrderedDict[Hashable, _Entry]' = collections.OrderedDict()
        self._bytes = 0
        self.dropped = 0    # repeats dropped: MAX_WAITING waited already

    def repeat(self, key: Hashable, send: Callable[[Answer], None]) -> bool:
        """True when key was taken within the window: send(answer) gets the first call's answer, now or once it
        is there (unless MAX_WAITING repeats wait already: then it is dropped, counted in dropped)."""
        self._forget_old()
        entry = self._calls.get(key)
        if entry is None:
            return False
        if entry.answer is not None:
            send(entry.answer)
        elif len(entry.waiting) < MAX_WAITING:
            entry.waiting.append(send)
            size = _size(key)     # what the repeat's reply holds: the same topics and Correlation Data again
            entry.size += size
            self._bytes += size
        else:
            self.dropped += 1
        return True

    def begin(self, key: Hashable) -> None:
        """key: a tuple of str and bytes (Reply.key)."""
        entry = self._calls[key] = _Entry(self._clock(), _size(key))
        self._bytes += entry.size

    def answered(self, key: Hashable, answer: Answer) -> None:
        entry = self._calls.get(key)
        if entry is None:
            return
        entry.answer = answer
        size = _size(answer)
        entry.size += size
        self._bytes += size
        waiting, entry.waiting = entry.waiting, []
        for send in waiting:
            send(answer)
        self._forget_old()

    def _forget_old(self) -> None:
        oldest = self._clock() - self.window_s
        calls = self._calls
        while calls:
            key, entry = next(iter(calls.items()))
            if entry.since > oldest and len(calls) <= MAX_CALLS and self._bytes <= self.max_bytes:
                return
            if entry.answer is None and entry.since > oldest:
                return      # in flight: its answer will come within the gateway's timeout
            del calls[key]
            self._bytes -= entry.size
