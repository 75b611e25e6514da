"""The protocol as an asyncio task: asleep until its stream is ready or a deadline is due.

Loaded only by a board that serves from asyncio. It waits the way asyncio's
own streams do (aiorepl's StreamReader over sys.stdin, say): in asyncio's
I/O queue, so other tasks keep their schedule while the protocol idles.
"""
import asyncio
import select
from asyncio import core


async def serve_task(prot):
    """Polls prot while it has work (yielding between chunks), else waits for its stream's objects or wait_ms();
    returns when the stream has ended (stdin closed, the console handed back to the REPL)."""
    wake = asyncio.Event()
    stream = prot.__comm_inst__
    seen = None
    watchers = []
    try:
        while not stream.ended:
            wake.clear()
            if prot.poll():
                await asyncio.sleep_ms(0)
                continue
            if stream.pollables is not seen:
                seen = stream.pollables
                _cancel(watchers)
                watchers = _watch(seen, wake)
            ms = prot.wait_ms()
            if ms < 0:
                await wake.wait()
            else:
                try:
                    await asyncio.wait_for_ms(wake.wait(), ms)
                except asyncio.TimeoutError:
                    pass
    finally:
        _cancel(watchers)


async def _ready(obj, write, wake):
    """Sets wake each time obj is readable (or writable)."""
    queue = core._io_queue.queue_write if write else core._io_queue.queue_read
    while True:
        yield queue(obj)
        wake.set()


def _watch(pollables, wake):
    """One task per object and direction of the pollables."""
    tasks = []
    for entry in pollables:
        tasks.append(asyncio.create_task(_ready(entry[0], False, wake)))
        if entry[1] & select.POLLOUT:
            tasks.append(asyncio.create_task(_ready(entry[0], True, wake)))
    return tasks


def _cancel(tasks):
    for task in tasks:
        task.cancel()
