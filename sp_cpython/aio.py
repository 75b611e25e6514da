"""The protocol on asyncio: the same engine as the threaded API, fed by asyncio streams; every wait is awaited.

    prot = await aio.connect('tcp://127.0.0.1:57321', secret=..., auto_auth=True)
    answer = await prot.request(sp.SID_READ_REQUEST, 0)

Callbacks run on the event loop; a request callback may be a coroutine
function: its answer goes out when it returns. A call that is cancelled (or
times out) forgets its request, and the connection stays usable.
"""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import termios
import tty
from typing import Any, Awaitable, Callable, Optional, Tuple, Union

from sp_common import Deframer, admission
from sp_common import ops
from sp_common.ops import deadline, left
from sp_common.dispatch import ERRORS, run
from sp_common.const import STATUS_OKAY
from sp_common.engine import data_storage
from sp_common.errors import answer_data

from . import tcp
from .protocol import CODECS, WRITE_TIMEOUT, EngineState, host_engine

MAX_ANSWERING = 64   # coroutine callbacks at work at once per connection
MAX_UNPROVEN = 16    # a server's connections on probation in each pool (sp_common.admission.pool)
MAX_CLIENTS = 64     # and its proven clients
PROBATION_FRAME = 1024   # the longest frame a peer on probation may send: the handshake takes a few hundred bytes
READ_LIMIT = 16384       # a server's connection stops reading at twice this many bytes not yet taken
READ_CHUNK = 4096        # the most one step takes of a peer's bytes before the loop's other tasks get a turn
RECV_SIZE = 16384        # the most one read of the socket or tty takes (see small_reads)

_ONE_TASK = contextlib.nullcontext()   # the engine's lock on one event loop: none is needed
_TIMED_OUT = object()   # what a waiting call's future holds when its timeout ran out


def _time_out(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(_TIMED_OUT)


def small_reads(transport: asyncio.BaseTransport) -> None:
    """Has transport read RECV_SIZE bytes at most at a time: asyncio reads up to 256 KiB into a new buffer, which
    for an answer of a hundred bytes maps fresh memory and gives it back (three system calls and a page fault)
    on every read, the largest cost of a gateway's call."""
    if hasattr(transport, 'max_size'):   # (the selector and pipe transports; another loop's reads as it does)
        transport.max_size = RECV_SIZE


def _close(writer: asyncio.StreamWriter) -> None:
    """Closes once the peer has taken what is written, or after WRITE_TIMEOUT: a closing transport whose peer
    reads nothing would keep its socket and buffer for good."""
    writer.close()
    if writer.transport.get_write_buffer_size():
        asyncio.get_running_loop().call_later(WRITE_TIMEOUT, _abort_if_stuck, writer.transport)


def _abort_if_stuck(transport: asyncio.WriteTransport) -> None:
    if transport.get_write_buffer_size():   # (an aborted transport holds nothing)
        transport.abort()


class AsyncProtocol(EngineState):
    """One connection's engine on an asyncio loop (made by connect() or serve()).

    One AsyncProtocol is one connection: after it is lost, connect() again.
    """

    _lock = _ONE_TASK

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, is_client: bool,
                 codec: str = 'pure_json', secret: Optional[str] = None, auto_auth: bool = False,
                 channel_name: Optional[str] = None, session_v2: Union[bool, str] = True,
                 max_frame: int = 65536, probation_frame: Optional[int] = None) -> None:
        """probation_frame: the longest frame taken before the peer has proven itself (a server's
        connections); max_frame from then on."""
        # (connects: this object is one connection, whatever the stream)
        self._engine = engine = host_engine(is_client, CODECS[codec], secret, auto_auth, channel_name, max_frame,
                                            session_v2, True, 'sp_cpython.comm', first_frames=probation_frame)
        self._max_frame = max_frame
        self._on_probation = probation_frame is not None   # until the peer proves itself
        # serve()'s admission, after a frame that proved the peer (on_proven) or took it a step on while on
        # probation (on_step, sp_common.admission): False when it closes this connection, for which there is no room
        self.on_proven: Optional[Callable[['AsyncProtocol'], bool]] = None
        self.on_step: Optional[Callable[['AsyncProtocol'], bool]] = None
        self.on_lost: Optional[Callable[['AsyncProtocol'], None]] = None     # once the link is lost or closed
        self._reader = reader
        self._writer = writer
        self._waiters: list = []   # [predicate, future] of the calls waiting (_wait)
        self._connected = True
        self._tasks: set = set()
        self._answering = 0        # coroutine callbacks still working on an answer
        self._timer: Optional[asyncio.TimerHandle] = None
        engine.connection_made()
        self._flush_soon()
        self._pump = asyncio.ensure_future(self._read_loop())

    async def __aenter__(self) -> 'AsyncProtocol':
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # the loop ---------------------------------------------------------------------------
    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self._reader.read(READ_CHUNK)
                full = len(data) == READ_CHUNK   # more may wait (a peer that floods): the other links' turn first
                if not data:
                    break
                if self._on_probation:
                    data = self._feed_on_probation(data)
                    if data is None:
                        break   # turned away: nothing more of it runs
                self._engine.feed(data)
                run(self._engine, _ONE_TASK, self._finish)   # the user callbacks it queued
                await self._settle()
                if full:
                    await asyncio.sleep(0)
        except (OSError, asyncio.IncompleteReadError) as err:
            self._engine.note('link_failed', detail=err)
        finally:
            self._lost()

    def _lost(self) -> None:
        """The link is gone (or closed): the socket is closed, however the peer left it (a half-closed one
        stays open otherwise), the callbacks still at work end, as nothing they answer could go out, and the
        waiting calls wake."""
        if not self._connected:
            return
        self._connected = False
        _close(self._writer)
        for task in list(self._tasks):
            task.cancel()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._engine.connection_lost()
        self._notify()
        if self.on_lost is not None:
            self.on_lost(self)
            self.on_lost = None

    def _feed_on_probation(self, data: bytes) -> Optional[bytes]:
        """Feeds data frame end by frame end while the peer is on probation; once a frame proves it, the peer may
        send frames up to max_frame, and what follows that frame (returned, else b'') is for the wide deframer:
        a long frame that came in the same read as the proof is taken whole. None: the server has no room for
        the peer (on_proven or on_step said so), or it is noisy (sp_common.admission), and the link ends."""
        engine = self._engine
        start = 0
        while start < len(data):
            if start == 0 and data[:1] == b'>':
                end = 1   # it may end a frame whose ':' was the last byte of the read before
            else:
                # a frame ends only after it began: outside a frame, the next ':>' after the next ':<' (or a '<'
                # first, after a ':' that ended the read before); the stray ones before it are fed with the rest
                begin = start if engine.deframer.in_frame or start == 0 and data[:1] == b'<' else \
                    data.find(b':<', start)
                end = data.find(b':>', begin) + 2 if begin >= 0 else 0
                if end < 2:
                    end = len(data)   # no frame ends in the rest
            moved = engine.moved_at
            engine.feed(data[start:end])
            start = end
            if not engine.proven():
                if admission.noisy(engine):   # (after every feed: junk that never ends a frame is noise too)
                    return None
                if engine.moved_at != moved and self.on_step is not None and not self.on_step(self):
                    return None
                continue
            self._on_probation = False
            if self.on_proven is not None and not self.on_proven(self):
                return None
            narrow = engine.deframer
            if narrow.max_size < self._max_frame:
                wide = engine.deframer = Deframer(self._max_frame)
                wide.framing_errors, wide.oversized = narrow.framing_errors, narrow.oversized
            return data[start:]
        return b''

    async def _settle(self) -> None:
        """After an engine step: write what it queued, wake the waiters, arm its timer, drop a refused link."""
        await self._flush()
        self._notify()
        wait = self._engine.deadline_ms()
        if wait is not None and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(wait / 1000 + 0.01, self._tick)
        if self._engine.wire == 'refused':
            _close(self._writer)

    def _tick(self) -> None:
        self._timer = None
        self._engine.tick()
        self._spawn(self._settle())

    def _notify(self) -> None:
        """After an engine step: each waiting call whose predicate now holds (or whose link is gone) wakes."""
        for waiter in self._waiters:
            future = waiter[1]
            if not future.done():
                value = waiter[0]()
                if value or not self._connected:
                    future.set_result(value)

    async def _flush(self, timeout: float = WRITE_TIMEOUT) -> bool:
        """Writes what the engine queued; False, and the link dropped, if the peer took it not within timeout
        (a frame given up on must not go out later: its caller's retry would run twice)."""
        data = self._engine.data_to_send()
        if not data or not self._connected:
            return self._connected
        self._writer.write(data)
        transport = self._writer.transport
        if not transport.is_closing() and transport.get_write_buffer_size() <= transport.get_write_buffer_limits()[1]:
            return True   # the stream took it: drain() would not wait (a task and a timer per message saved)
        try:
            await asyncio.wait_for(self._writer.drain(), timeout)
        except (OSError, asyncio.TimeoutError) as err:
            if isinstance(err, asyncio.TimeoutError):   # (first: on Python 3.11 on, a TimeoutError is an OSError)
                self._engine.note('stopped_reading')
            else:
                self._engine.note('link_failed', detail=err)
            if not transport.is_closing():   # (one closing already is aborted by _close's timer if still stuck)
                transport.abort()   # a peer that stopped reading: the link is lost, and what it did not take with it
            self._lost()   # (its read side too: a tty's is a transport of its own)
            return False
        return self._connected and not transport.is_closing()   # (a link aborted meanwhile ends drain() as if written)

    def _flush_soon(self) -> None:
        self._spawn(self._settle())

    def _spawn(self, coroutine: Awaitable) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _finish(self, job: tuple, result: Any, error: Optional[BaseException]) -> None:
        """A callback's outcome (sp_common.dispatch): a coroutine is awaited in a task of its own, at most
        MAX_ANSWERING at once (a peer that floods a slow one gets errors, not tasks), then answered."""
        if error is not None or not asyncio.iscoroutine(result):
            self._engine.finish(job, result, error)
        elif self._answering >= MAX_ANSWERING:
            result.close()
            self._engine.finish(job, None, RuntimeError('%d answers already in progress' % MAX_ANSWERING))
        else:
            self._answering += 1
            self._spawn(self._answer(job, result))

    async def _answer(self, job: tuple, coroutine: Awaitable) -> None:
        try:
            result, error = await coroutine, None
        except ERRORS as err:   # as sp_common.dispatch.call's: the requester gets STATUS_CALLBACK_ERROR
            result, error = None, err
        except asyncio.CancelledError:
            if not self._connected:
                raise   # the link went or close() ran: this task is what was cancelled
            result, error = None, RuntimeError('the callback was cancelled')   # by something it awaited
        finally:
            self._answering -= 1
        self._engine.finish(job, result, error)
        await self._settle()

    async def _wait(self, predicate: Callable[[], Any], timeout: Optional[float]) -> Any:
        """The predicate's value once true, or its last value after timeout or when the link is gone."""
        value = predicate()
        if value or not self._connected or (timeout is not None and timeout <= 0):
            return value
        loop = asyncio.get_running_loop()
        waiter = [predicate, loop.create_future()]
        self._waiters.append(waiter)
        timer = None if timeout is None else loop.call_later(timeout, _time_out, waiter[1])
        try:
            value = await waiter[1]
            return predicate() if value is _TIMED_OUT else value
        finally:
            self._waiters.remove(waiter)
            if timer is not None:
                timer.cancel()

    # the API: sp_common.ops' operations, driven on the event loop --------------------------
    async def _drive(self, op) -> Any:
        """Runs op (sp_common.ops) to its result; a call that is cancelled closes it, and op tidies up."""
        value = None
        try:
            while True:
                predicate, end = op.send(value)
                if predicate is None:
                    value = await self._flush(left(self._engine, end))
                else:
                    value = await self._wait(predicate, left(self._engine, end))
        except StopIteration as done:
            return done.value
        finally:
            op.close()

    def _end(self, timeout: float) -> float:
        return deadline(self._engine, timeout)

    async def send(self, service_id: int, data_id, data, status: int = STATUS_OKAY, timeout: float = 2) -> bool:
        return await self._drive(ops.send(self._engine, service_id, data_id, data, status,
                                          self._end(timeout))) is not None

    async def request(self, service_id: int, data_id, data=None, timeout: float = 2) -> Optional[data_storage]:
        """This call's own answer, or None after timeout (one for the whole call); cancelling it forgets the request."""
        return (await self._ask(service_id, data_id, data, timeout))[1]

    async def call(self, service_id: int, data_id, data=None, timeout: float = 2):
        """request() with typed errors: the answer's data, or NotConnected, NoAnswer, ErrorAnswer (sp_common.errors)."""
        return answer_data(*await self._ask(service_id, data_id, data, timeout))

    async def _ask(self, service_id: int, data_id, data, timeout: float) -> Tuple[bool, Optional[data_storage]]:
        return await self._drive(ops.ask(self._engine, service_id, data_id, data, self._end(timeout)))

    async def receive(self, service_id: int, data_id, timeout: float = 1) -> Optional[data_storage]:
        return await self._drive(ops.receive(self._engine, service_id, data_id, self._end(timeout)))

    async def authentificate(self, timeout: float = 2) -> bool:
        return await self._drive(ops.authentificate(self._engine, self._end(timeout)))

    def is_connected(self) -> bool:
        return self._connected

    async def wait_closed(self) -> None:
        """Returns once the link is lost or closed; a cancelled caller leaves the link alone."""
        await asyncio.wait((self._pump,))

    async def close(self) -> None:
        """Closes the link; every call waiting on this connection returns at once, a write stuck on a peer that
        reads nothing included (what it had not taken is dropped)."""
        transport = self._writer.transport
        if transport.get_write_buffer_size():
            transport.abort()
        self._pump.cancel()
        self._lost()


class _TtyWriter(asyncio.StreamWriter):
    """A tty's writer: closing it closes the read side too, whose descriptor holds the port's lock."""

    def __init__(self, transport, protocol, loop, read_side: asyncio.BaseTransport) -> None:
        super().__init__(transport, protocol, None, loop)
        self._read_side = read_side

    def close(self) -> None:
        self._read_side.close()
        super().close()


async def _open_tty(path: str, baudrate: int):
    """A serial device or pty in raw mode as an asyncio reader and writer (Linux: a tty is a pipe to asyncio).

    Opened exclusively, as the threaded serial_stp and pyserial's exclusive=True do: a port another program
    holds is a ConnectionError at once, not a link that loses half its bytes to the other reader. One that
    fails to open leaves the port free.
    """
    speed = getattr(termios, 'B%d' % baudrate, None)
    if not isinstance(baudrate, int) or speed is None:
        raise ValueError('%r is not a baud rate this system knows' % (baudrate,))
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    pipes = []
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConnectionError('%s is in use by another program' % path) from None
        tty.setraw(fd)
        attrs = termios.tcgetattr(fd)
        attrs[4] = attrs[5] = speed
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        pipes.append(os.fdopen(fd, 'rb', 0))
        pipes.append(os.fdopen(os.dup(fd), 'wb', 0))
        read_side, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipes[0])
        small_reads(read_side)
        try:
            transport, protocol = await loop.connect_write_pipe(
                lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()), pipes[1])
        except BaseException:
            read_side.close()
            raise
    except BaseException:
        for pipe in pipes:
            pipe.close()
        if not pipes:
            os.close(fd)
        raise
    return reader, _TtyWriter(transport, protocol, loop, read_side)


async def connect(target: str, baudrate: int = 115200, **options) -> AsyncProtocol:
    """A client on tcp://host:port or a serial device path; options as for AsyncProtocol."""
    if target.startswith('tcp://'):
        host, _, port = target[6:].rpartition(':')
        # (within the threaded client's time for a connect, not the system's minutes of retries; the built-in
        # TimeoutError, which asyncio's is only from Python 3.11 on)
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), tcp.CONNECT_S)
        except asyncio.TimeoutError:
            raise TimeoutError('no connection to %s within %g s' % (target, tcp.CONNECT_S)) from None
        small_reads(writer.transport)
    else:
        reader, writer = await _open_tty(target, baudrate)
    try:
        return AsyncProtocol(reader, writer, True, **options)
    except BaseException:   # options it refuses: the port or socket is free again
        writer.close()
        raise


async def _probation(prot: AsyncProtocol) -> None:
    """Closes a connection whose probation is over (sp_common.admission), as the threaded server does."""
    engine = prot._engine
    while True:
        due = admission.due_ms(engine, False)
        if due is None:
            return
        await asyncio.sleep(due / 1000)
        if admission.must_go(engine, False):
            await prot.close()
            return


def _make_room(prots: list, pool: str, limit: int, newcomer: Optional[AsyncProtocol] = None) -> None:
    """Closes the connections of a pool (admission.pool) that sp_common.admission drops, until no more than limit
    remain; newcomer: the connection that just proved itself."""
    while True:
        gone = admission.to_drop([prot._engine for prot in prots if admission.pool(prot._engine) == pool], limit,
                                 newcomer._engine if newcomer is not None else None)
        if gone is None:
            return
        for prot in prots:
            if prot._engine is gone:
                prots.remove(prot)
                asyncio.ensure_future(prot.close())
                break


class Server:
    """What serve() returns: asyncio's server, whose close() also closes the connections it serves (asyncio's
    own leaves them open, and from Python 3.12 on its wait_closed() waits until their peers leave). The rest
    (sockets, serve_forever(), ...) is asyncio's."""

    def __init__(self, server: asyncio.AbstractServer, held: list) -> None:
        self._server, self._held = server, held
        self._closing: list = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)

    def close(self) -> None:
        """Stops listening and closes every connection."""
        self._server.close()
        self._closing += [asyncio.ensure_future(prot.close()) for prot in self._held]

    async def wait_closed(self) -> None:
        if self._closing:
            await asyncio.wait(self._closing)
        await self._server.wait_closed()

    async def serve_forever(self) -> None:
        """Serves until cancelled (Ctrl-C in asyncio.run), then closes, its connections too (asyncio's own would
        close only its listener, and from Python 3.12 on wait for the connections' peers)."""
        try:
            await asyncio.get_running_loop().create_future()
        finally:
            self.close()
            await self.wait_closed()

    async def __aenter__(self) -> 'Server':
        return self

    async def __aexit__(self, *exc) -> None:
        self.close()
        await self.wait_closed()


async def serve(host: str, port: int, setup: Callable[[AsyncProtocol], None], max_unproven: int = MAX_UNPROVEN,
                max_clients: int = MAX_CLIENTS, **options) -> Server:
    """A TCP server: each client gets its own AsyncProtocol, handed to setup() to register its callbacks.

    Clients are served at once, side by side, admitted by sp_common.admission:
    beyond max_unproven connections on probation a newcomer takes the place
    of the one quiet the longest, in each of two pools (admission.pool): the
    fresh ones, and those that have taken a step or had the time to; beyond
    max_clients proven ones a
    newcomer that proves itself takes the place of the proven client silent
    the longest (without a secret only once that one is idle,
    admission.IDLE_MS; else the newcomer goes). A peer on probation may send
    frames up to PROBATION_FRAME.
    """
    held: list = []
    server: Optional[Server] = None   # (a client accepted as the server closes is not served)
    # one budget of log lines (sp_common.logtext's, of events and of messages) for all its connections, as a
    # server of one client at a time has: a flood of connects, each dropped with a line, would fill the log with
    # a budget each
    budget = ([0, 0, 0], [0, 0, 0])

    def proven(prot: AsyncProtocol) -> bool:
        _make_room(held, 'proven', max_clients, prot)
        return prot in held

    def on_step(prot: AsyncProtocol) -> bool:
        """Whether prot stays, after a step on probation: a fresh connection moves on to the other pool."""
        _make_room(held, admission.pool(prot._engine), max_unproven)
        return prot in held

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if server is not None and not server.is_serving():   # accepted as the server closed: not served
            writer.transport.abort()
            return
        small_reads(writer.transport)
        prot = AsyncProtocol(reader, writer, False, probation_frame=PROBATION_FRAME, **options)
        prot.on_proven, prot.on_step = proven, on_step
        prot._engine.log_budget = budget
        held.append(prot)
        for pool in ('fresh', 'probation'):   # (the second: those that left the fresh pool without a step since)
            _make_room(held, pool, max_unproven)
        try:
            setup(prot)
        except BaseException:   # a connection set up by halves serves nothing: it goes (asyncio logs the error)
            if prot in held:
                held.remove(prot)
            await prot.close()
            raise
        probation = asyncio.ensure_future(_probation(prot))
        try:
            await prot.wait_closed()
        except asyncio.CancelledError:   # the loop ends with the link open: it goes too, quietly (asyncio's streams
            await prot.close()           # log a handler that ends cancelled as an error, with a traceback)
        finally:
            probation.cancel()
            if prot in held:
                held.remove(prot)
    server = Server(await asyncio.start_server(accepted, host, port, limit=READ_LIMIT), held)
    return server
