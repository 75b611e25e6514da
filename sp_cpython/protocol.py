"""pure_json_protocol / struct_json_protocol for the host: the shared engine plus threads, waits and logging.

The engine runs under one lock; nothing holds it while bytes are written:
writes take the engine's outbox under a separate write lock, in order, with
a timeout.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict, Optional

from sp_common import Engine, admission, pure_json, struct_json
from sp_common.api import Api
from sp_common.dispatch import run
from sp_common.ops import left

from .transport import StreamTransport, logger

WRITE_TIMEOUT = 2.0   # seconds a reply may take to leave before the link counts as lost
# The receive buffer's bound in heap (sp_common.calls.heap_cost), in frames: the densest frame, '"",' or '[],'
# over and over (three bytes of text for an object and a slot), costs 24 times its text on a 64-bit host, and the
# bound holds it whole; a board's engine keeps its own default, twice max_frame.
BUFFERED_FRAMES = 32
# callbacks (or the engine's own replies) a link's reads may leave queued for its I/O thread: beyond, callers read it
# no more until the I/O thread has run (or written) them, so that a peer that floods meets TCP's back pressure, not a
# queue that grows
MAX_QUEUED_CALLBACKS = 64
MAX_BUFFERED = 256   # messages the receive buffer holds (answers and add_data's ids), threaded and asyncio alike
_WRITING = 'writing'   # in _went: a frame a write has taken and not yet written
CODECS = {codec.name: codec for codec in (pure_json, struct_json)}   # the codecs by the names users give


def monotonic_ms() -> int:
    """The engine's clock on the host (threaded and asyncio protocols alike)."""
    return int(time.monotonic() * 1000)


def host_engine(is_client: bool, codec, secret: Optional[str], auto_auth: bool, channel_name: Optional[str],
                max_frame: int, session_v2, connects: bool, hexlog_prefix: str, max_buffered: int = MAX_BUFFERED,
                first_frames: Optional[int] = None) -> Engine:
    """An engine as every host protocol runs it (threaded and asyncio): the host's clock, loggers and receive
    buffer, and its user callbacks queued as jobs for the runtime's dispatcher (sp_common.dispatch).
    first_frames: the longest frame taken until the runtime widens the deframer to max_frame."""
    engine = Engine(is_client, codec=codec, secret=secret, auto_auth=auto_auth, channel_name=channel_name,
                    max_frame=min(first_frames or max_frame, max_frame), max_buffered=max_buffered,
                    max_buffered_bytes=BUFFERED_FRAMES * max_frame, log=logger('socket_protocol', channel_name),
                    hexlog=logger(hexlog_prefix, channel_name), clock=monotonic_ms, session_v2=session_v2)
    engine.connects = connects
    engine.jobs = []
    return engine


class EngineState:
    """What a host protocol (threaded or asyncio) tells of its engine's connection and registers in it, under
    its _lock; none of it waits."""

    _engine: Engine
    _lock: Any

    @property
    def session(self) -> Optional[int]:
        """The wire this connection settled on: 2 (session v2), 1 (the original), None while it settles or refused."""
        return self._engine.session

    @property
    def macs(self) -> bool:
        """Whether this connection's frames carry MACs (session v2, a secret on both sides)."""
        return self._engine.rx_mac is not None

    @property
    def channel_name(self) -> Optional[str]:
        return self._engine.channel_name

    @property
    def counters(self) -> Dict[str, int]:
        """What was received, sent, dropped and rejected, by name (see sp_common.COUNTERS)."""
        return dict(self._engine.counters)

    def check_authentification_state(self) -> bool:
        return self._engine.is_trusted()

    def connection_established(self) -> bool:
        return self.is_connected() and self._engine.connection_established()

    # registries -------------------------------------------------------------------
    def add_data(self, service_id, data_id, name: str) -> None:
        with self._lock:
            self._engine.add_data(service_id, data_id, name)

    def add_msg_to_auth_whitelist_(self, service_id: int, data_id) -> None:
        with self._lock:
            self._engine.add_msg_to_auth_whitelist_(service_id, data_id)

    def add_service(self, req_sid: int, resp_sid: int, req_name: Optional[str] = None,
                    resp_name: Optional[str] = None) -> None:
        with self._lock:
            self._engine.add_service(req_sid, resp_sid, req_name, resp_name)

    def add_status(self, status: int, name: str) -> None:
        with self._lock:
            self._engine.add_status(status, name)

    def register_callback(self, service_id, data_id, callback, *args, **kwargs) -> None:
        with self._lock:
            self._engine.register_callback(service_id, data_id, callback, *args, **kwargs)


class pure_json_protocol(EngineState, Api):
    """The socket_protocol API on one comm instance; callbacks run on the comm's I/O thread."""

    CODEC = pure_json

    def __init__(self, comm_instance, secret: Optional[str] = None, auto_auth: bool = False,
                 channel_name: Optional[str] = None, max_frame: int = 65536, max_buffered: int = MAX_BUFFERED,
                 session_v2=True) -> None:
        self.__comm_inst__ = comm_instance
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._write_lock = threading.Lock()
        # frame's id -> whether a write took it (None: still queued; _WRITING: a write has taken it), for the frames
        # callers wait on: a writer takes along every frame queued, a frame of another caller's too, and says here
        # how it went
        self._went: Dict[int, Optional[bool]] = {}
        self._closed = False
        self._timer: Optional[threading.Timer] = None
        self._feeding: set = set()   # the threads running an engine step and its callbacks (I/O, timer)
        self._replies_left = 0   # the engine's own replies callers' reads queued, not yet taken by a write (_backlog)
        self._timed_writes = isinstance(comm_instance, StreamTransport)
        self._admits = not comm_instance.IS_CLIENT and getattr(comm_instance, 'CONNECTS', False)   # a TCP server
        # (user callbacks run outside the lock: _run_engine)
        self._engine = host_engine(comm_instance.IS_CLIENT, self.CODEC, secret, auto_auth, channel_name, max_frame,
                                   session_v2, getattr(comm_instance, 'CONNECTS', False),
                                   getattr(comm_instance, 'LOGGER_PREFIX', 'sp_cpython.comm'), max_buffered)
        if self._timed_writes:
            comm_instance.engine = self._engine
            comm_instance.on_wake = self._on_wake
        comm_instance.init_channel_name(channel_name)
        comm_instance.register_callback(self._on_data)
        comm_instance.register_disconnect_callback(self._on_disconnect)
        comm_instance.register_connect_callback(self._on_connect)

    def __enter__(self) -> 'pure_json_protocol':
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # comm callbacks (I/O thread) -------------------------------------------------
    def _run_engine(self, step: Callable[..., Any], *args: Any, here: bool = True) -> bool:
        """An engine step, then the user callbacks it queued, run outside the lock (sp_common.dispatch): a slow
        callback holds up no other thread's send(), request() or receive(). When the step queued no callback,
        what is to do after it is read in the same hold of the lock, so that a caller the step wakes does not
        find the lock taken again. Not here (a read in a turn, sp_cpython.turns: a caller's, or the I/O thread's
        own): the callbacks and what else the step left to do (the engine's own replies to write, a reconnect, a
        timer) are the I/O thread's, run once the turn is free (on_wake), and a caller must wake it: True if it
        must. A caller's wait is never held up by a write it did not ask for, nor its read by a callback."""
        me = threading.get_ident()
        self._feeding.add(me)
        try:
            with self._lock:
                before, out = len(self._engine.jobs), len(self._engine._out)
                try:
                    step(*args)
                finally:
                    self._cond.notify_all()
                if not here:   # (the engine's own replies to a caller's read, for _backlog)
                    self._replies_left += max(0, len(self._engine._out) - out)
                # the callbacks this step queued, if any: this thread runs them; those another thread's step queued
                # are that thread's to run, in order
                jobs = len(self._engine.jobs) > before
                if not (jobs and here):
                    after = self._after_step()
            if not here:
                return jobs or after[0] or after[1] is not None or after[2]
            if jobs:
                after = self._run_jobs()
        finally:
            self._feeding.discard(me)
        self._act_on(*after)
        return False

    def _on_wake(self) -> None:
        """The I/O thread does what a read in a turn left (_run_engine, not here). The turn is free: callers that
        wait are told first, so that one reads its answer while a callback here takes its time; and again once
        the callbacks have run, for those that waited for the queue to shrink (_wait)."""
        with self._cond:
            self._cond.notify_all()
        me = threading.get_ident()
        self._feeding.add(me)
        try:
            try:
                after = self._run_jobs()
            finally:
                self._feeding.discard(me)
            self._act_on(*after)
        finally:
            with self._cond:
                self._cond.notify_all()

    def _run_jobs(self) -> tuple:
        """The callbacks queued, each outside the lock, while the protocol is open and (a TCP server) its client
        keeps its place (sp_common.admission, asked between them); then _after_step()."""
        run(self._engine, self._lock, go_on=self._may_run)
        with self._lock:
            return self._after_step()

    def _may_run(self) -> bool:
        return not self._closed and (not self._admits or self.__comm_inst__.keeps_place())

    def _act_on(self, refused: bool, wait: Optional[int], queued: bool, write_s: float) -> None:
        """What a step left to do, outside the lock (_after_step's findings)."""
        if queued:   # (a writer with nothing to write would hold the write lock from a caller's send)
            self._flush(write_s)
        if refused:
            self.__comm_inst__.reconnect()
        elif wait is not None:
            self._tick_later(wait)

    def _after_step(self) -> tuple:
        """Under the lock: (wire refused, ms until the engine's timer, something queued, seconds a write may take)."""
        engine = self._engine
        write_s = admission.write_ms(engine, WRITE_TIMEOUT * 1000) / 1000 if self._admits else WRITE_TIMEOUT
        return engine.wire == 'refused', engine.deadline_ms(), engine.queued is not None, write_s

    def _tick_later(self, wait_ms: int) -> None:
        """The engine's timers (the wire left unsettled) wait on one timer at a time. A timer still to fire is
        enough (a deadline asked for later is never sooner, and its tick arms the next); one that has fired
        is no longer counted on, however long its tick takes."""
        with self._lock:
            if self._timer is not None or self._closed:
                return
            self._timer = threading.Timer(wait_ms / 1000 + 0.01, self._on_timer)
            self._timer.daemon = True
            self._timer.start()

    def _on_timer(self) -> None:
        with self._lock:
            self._timer = None
        self._run_engine(self._engine.tick)

    def _on_data(self, data: bytes) -> None:
        """Bytes the I/O thread read; in its turn (a link callers read), what they leave to do waits for on_wake."""
        in_turn = self._timed_writes and self.__comm_inst__.reads_in_turns()
        self._run_engine(self._engine.feed, data, here=not in_turn)

    def _on_connect(self) -> None:
        self._run_engine(self._engine.connection_made)

    def _on_disconnect(self) -> None:
        self._run_engine(self._engine.connection_lost)

    # the threaded driver of sp_common.ops, and what the shared Api needs -----------
    def _drive(self, op) -> Any:
        """Runs op (sp_common.ops) to its result on the calling thread. Its steps and what they wait for run under
        one hold of the lock, left only by a wait that blocks and by a write: nothing comes between a look at
        the engine and the step taken on it."""
        engine, lock = self._engine, self._lock
        value = None
        try:
            while True:
                with lock:
                    before = engine.queued
                    predicate, end = op.send(value)
                    while predicate is not None:
                        value = predicate()
                        if not value and not self._closed:
                            value = self._wait(predicate, left(engine, end))
                            before = engine.queued   # (frames others queued while the wait left the lock)
                        predicate, end = op.send(value)
                    own = engine.queued if engine.queued is not before else None   # the frame the op queued
                    if own is not None:
                        self._went[id(own)] = None
                value = self._flush(left(engine, end), own)
        except StopIteration as done:
            return done.value
        except BaseException:   # (a finished op needs no closing)
            with lock:
                op.close()
            raise

    def _wait(self, predicate: Callable[[], Any], timeout: float) -> Any:
        """With the lock held (once) and the predicate just found false: waits for it, the protocol's close or
        timeout; the predicate's last value. Where the link lets callers read (sp_cpython.turns) and no other
        thread reads it, the caller reads it itself. Inside a callback it looks once: the I/O thread waiting
        would stall the very link it waits for."""
        if threading.get_ident() in self._feeding:
            return predicate()
        end = time.monotonic() + timeout
        while True:   # (after each wake the turn may be free: the reader before has given it back)
            turns = self.__comm_inst__.take_turn() if self._timed_writes and not self._backlog() else None
            value = None if turns is None else self._read_for(turns, predicate, end)
            if value or self._closed:
                return value
            wait = end - time.monotonic()
            if wait <= 0:
                return value
            self._cond.wait(wait)
            value = predicate()
            if value:
                return value

    def _read_for(self, turns, predicate: Callable[[], Any], end: float) -> Any:
        """_wait's turn at reading the link: reads and feeds until the predicate holds, the time is up, the link
        is lost, or the callbacks its reads queued reach MAX_QUEUED_CALLBACKS. What a read leaves to do the I/O
        thread is woken for at once, and does while the caller reads on. The lock is left while reading and
        while the bytes are fed, as the I/O thread leaves it."""
        value = None
        try:
            while not self._closed:
                wait = end - time.monotonic()
                if wait <= 0:
                    break
                self._lock.release()
                try:
                    data = turns.read(wait)
                    if data and self._run_engine(self._engine.feed, data, here=False):
                        turns.wake()
                finally:
                    self._lock.acquire()
                value = predicate()
                if value or data == b'' or self._backlog():
                    break
        finally:
            turns.give_back()
        return value

    def _backlog(self) -> bool:
        """Whether what callers' reads left for the I/O thread (callbacks, the engine's own replies not yet
        written) is so much that callers read no more: the I/O thread, which writes, reads on, and a peer that
        floods meets TCP's back pressure. (What a callback sends waits for its return, and holds up no read.)"""
        return len(self._engine.jobs) >= MAX_QUEUED_CALLBACKS or self._replies_left >= MAX_QUEUED_CALLBACKS

    def _flush(self, timeout: float, own: Optional[bytes] = None) -> bool:
        """Writes what the engine queued, oldest first, a frame at a time; inside a callback it is left for the I/O
        thread. own: the frame the caller queued, if any: True only if it went, whether this write took it or
        another caller's did (_went), never when a session that ended since dropped it with its outbox. A frame
        is written on its own so that a write failing behind it is not its failure (its caller's retry would
        run it twice)."""
        try:
            if threading.get_ident() in self._feeding:
                return True
            end = time.monotonic() + timeout     # the wait for the link and the write share the timeout
            if not self._write_lock.acquire(timeout=timeout):   # (another write holds the link: it may take own)
                return own is not None and self._outcome(own)
            try:
                with self._lock:   # the frames and the connection they are for, as the engine knows it
                    frames = self._engine.frames_to_send()
                    self._replies_left = 0
                    link = self.__comm_inst__.connection() if self._timed_writes else None
                    for frame in frames:
                        if id(frame) in self._went:
                            self._went[id(frame)] = _WRITING
                went = True
                try:
                    for frame in frames:
                        went = went and self._send(frame, end, link)   # (after a failure: the rest too)
                        self._went_as(frame, went, own)
                except BaseException:   # (frames taken and not written never go: their callers are told)
                    for frame in frames:
                        if self._went.get(id(frame)) is _WRITING:
                            self._went_as(frame, False, own)
                    raise
            finally:
                self._write_lock.release()
            return went if own is None else self._went.get(id(own)) is True
        finally:
            if own is not None:
                self._went.pop(id(own), None)

    def _went_as(self, frame: bytes, went: bool, own: Optional[bytes]) -> None:
        """Notes how a frame a caller waits on went, and wakes that caller if it waits for another's write (the
        writer's own frame has its caller right here)."""
        if id(frame) not in self._went:
            return
        if frame is own:
            self._went[id(frame)] = went
            return
        with self._cond:
            self._went[id(frame)] = went
            self._cond.notify_all()

    def _outcome(self, own: bytes) -> bool:
        """Whether own went, for a caller whose wait for the link ran out. A frame still queued is taken back
        there and then (writers take frames only under the lock held here). A frame that another write is
        writing is that write's to tell: the caller waits for it, bounded by that write's own timeout. A frame
        that goes out must never be said not to, or a retry would run it twice."""
        with self._cond:
            if self._went.get(id(own)) is None:
                self._engine.withdraw(own)
                return False
            self._cond.wait_for(lambda: self._went.get(id(own)) is not _WRITING)
            return self._went.get(id(own)) is True

    def _send(self, data: bytes, end: float, link: Any) -> bool:
        if self._timed_writes:
            return self.__comm_inst__.send_on(link, data, timeout=max(0.0, end - time.monotonic()))
        return self.__comm_inst__.send(data) is not False

    def _may_block(self) -> None:
        if threading.get_ident() in self._feeding:
            raise RuntimeError('request(), call(), authentificate() and receive() with a timeout cannot wait inside '
                               'a callback (on the I/O thread): it would stall the link; receive(timeout=0) looks '
                               'without waiting, or wait in another thread')

    # state --------------------------------------------------------------------------
    def is_connected(self) -> bool:
        return not self._closed and self.__comm_inst__.is_connected()

    def reconnect(self) -> None:
        self.__comm_inst__.reconnect()

    def close(self) -> None:
        """Closes the link; every call waiting on this protocol returns at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            if self._timer is not None:   # (its thread would live on, up to NEGOTIATE_MS, for a closed protocol)
                self._timer.cancel()
                self._timer = None
        self.__comm_inst__.close()


class struct_json_protocol(pure_json_protocol):
    """Same API, compact struct_json codec (deprecated; both ends must use it)."""

    CODEC = struct_json
