"""The asyncio API against peers that hang up, half-close or stop reading, callbacks that end oddly, and ports
that fail to open: nothing a connection held outlives it."""
import asyncio
import logging
import os
import socket
import sys
import time
import tty

import pytest

import sp_cpython as sp
from conftest import port_that_never_accepts
from ptys import PtyCable
from sp_common import frame, pure_json
from sp_cpython import aio


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 60))


async def until(condition, seconds=5):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, 'not within %s s' % seconds
        await asyncio.sleep(0.01)


def test_the_callbacks_of_a_connection_its_peer_closed_end_with_it():
    """A peer that starts slow coroutine callbacks and hangs up, again and again, leaves no task behind."""
    started, cancelled = [], []

    async def slow(msg):
        started.append(msg)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(msg)
            raise
        return sp.STATUS_OKAY, None

    async def main():
        server = await aio.serve('127.0.0.1', 0, lambda prot: prot.register_callback(sp.SID_EXECUTE_REQUEST, 0, slow))
        port = server.sockets[0].getsockname()[1]
        burst = frame(pure_json.encode(sp.SID_EXECUTE_REQUEST, 0, 0, None)) * 10
        for n in range(5):
            reader, writer = await asyncio.open_connection('127.0.0.1', port)
            writer.write(burst)
            await until(lambda: len(started) == 10 * (n + 1))
            writer.close()
        await until(lambda: len(cancelled) == 50)
        server.close()
    run(main())


def test_a_peer_that_half_closes_has_its_socket_closed():
    held = []

    async def main():
        server = await aio.serve('127.0.0.1', 0, held.append)
        sock = socket.create_connection(server.sockets[0].getsockname())
        sock.sendall(frame(pure_json.encode(sp.SID_CHANNEL_NAME_REQUEST, 0, 0, 'half')))
        sock.shutdown(socket.SHUT_WR)   # stays connected, never reads
        await until(lambda: held)
        await until(lambda: held[0]._writer.transport.get_extra_info('socket').fileno() == -1, 3)
        assert not held[0].is_connected()
        sock.close()
        server.close()
    run(main())


async def _stuck_link():
    """A client whose peer accepts and never reads."""
    listener = socket.create_server(('127.0.0.1', 0))
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    prot = await aio.connect('tcp://127.0.0.1:%d' % listener.getsockname()[1], session_v2=False)
    peer, _ = listener.accept()
    listener.close()
    return prot, peer


def test_close_wakes_a_send_stuck_on_a_peer_that_reads_nothing_and_it_returns_false():
    async def main():
        prot, peer = await _stuck_link()
        send = asyncio.ensure_future(prot.send(sp.SID_EXECUTE_REQUEST, 0, 'x' * 4000000, timeout=10))
        await asyncio.sleep(0.3)
        assert not send.done()
        start = time.monotonic()
        await prot.close()
        assert await asyncio.wait_for(send, 1) is False
        assert time.monotonic() - start < 0.5
        peer.close()
    run(main())


def test_a_send_whose_bytes_went_with_a_link_another_call_gave_up_on_returns_false():
    async def main():
        prot, peer = await _stuck_link()
        long = asyncio.ensure_future(prot.send(sp.SID_EXECUTE_REQUEST, 1, 'y' * 4000000, timeout=10))
        await asyncio.sleep(0.1)
        assert await prot.send(sp.SID_EXECUTE_REQUEST, 2, 'z', timeout=0.3) is False   # drops the link
        assert await asyncio.wait_for(long, 1) is False
        assert not prot.is_connected()
        await prot.close()
        peer.close()
    run(main())


def test_a_coroutine_callback_cancelled_by_what_it_awaited_is_answered_with_a_callback_error():
    async def cancelled(msg):
        future = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.05, future.cancel)
        await future

    async def main():
        held = []

        def setup(prot):
            held.append(prot)
            prot.register_callback(sp.SID_EXECUTE_REQUEST, 0, cancelled)
        server = await aio.serve('127.0.0.1', 0, setup)
        async with await aio.connect('tcp://127.0.0.1:%d' % server.sockets[0].getsockname()[1]) as prot:
            answer = await prot.request(sp.SID_EXECUTE_REQUEST, 0, None, timeout=2)
        assert answer is not None and answer.get_status() == sp.STATUS_CALLBACK_ERROR
        assert held[0].counters['callback_errors'] == 1
        server.close()
    run(main())


def test_callbacks_that_exit_are_callback_errors_and_the_server_goes_on():
    """sys.exit() in a callback, plain or coroutine, is its error: it would end the event loop."""
    async def exits_later(msg):
        sys.exit(2)

    async def main():
        def setup(prot):
            prot.register_callback(sp.SID_EXECUTE_REQUEST, 0, lambda msg: sys.exit(2))
            prot.register_callback(sp.SID_EXECUTE_REQUEST, 1, exits_later)
            prot.register_callback(sp.SID_EXECUTE_REQUEST, 2, lambda msg: (sp.STATUS_OKAY, msg.get_data()))
        server = await aio.serve('127.0.0.1', 0, setup)
        async with await aio.connect('tcp://127.0.0.1:%d' % server.sockets[0].getsockname()[1]) as prot:
            for did in (0, 1):
                answer = await prot.request(sp.SID_EXECUTE_REQUEST, did, None, timeout=2)
                assert answer is not None and answer.get_status() == sp.STATUS_CALLBACK_ERROR
            assert (await prot.request(sp.SID_EXECUTE_REQUEST, 2, 'on', timeout=2)).get_data() == 'on'
        server.close()
    run(main())


def _open_fds(path):
    """How many of this process's descriptors are open on path."""
    real = os.path.realpath(path)
    count = 0
    for fd in os.listdir('/proc/self/fd'):
        try:
            count += os.path.realpath(os.readlink('/proc/self/fd/' + fd)) == real
        except OSError:
            pass
    return count


def test_a_serial_port_closed_or_failed_to_open_is_free_for_the_next_connect(tmp_path):
    cable = PtyCable(str(tmp_path))

    async def main():
        cables_own = _open_fds(cable.path_b)
        with pytest.raises(ValueError, match='baud rate'):
            await aio.connect(cable.path_b, baudrate=250001)
        with pytest.raises(KeyError) as refused:   # an option AsyncProtocol refuses, once the port is open
            await aio.connect(cable.path_b, codec='no such codec')
        await asyncio.sleep(0.05)
        assert _open_fds(cable.path_b) == cables_own   # while its traceback, kept, still holds the port's objects
        del refused
        prot = await aio.connect(cable.path_b)
        assert _open_fds(cable.path_b) > cables_own
        await prot.close()
        await asyncio.sleep(0.05)
        assert _open_fds(cable.path_b) == cables_own
        prot = await aio.connect(cable.path_b)   # no ConnectionError: the port is not held by the one closed
        await prot.close()
    try:
        run(main())
    finally:
        cable.close()


def test_a_tcp_client_whose_options_are_refused_hangs_up():
    listener = socket.create_server(('127.0.0.1', 0))

    async def main():
        with pytest.raises(KeyError) as refused:
            await aio.connect('tcp://127.0.0.1:%d' % listener.getsockname()[1], codec='no such codec')
        await asyncio.sleep(0.05)
        peer, _ = listener.accept()
        peer.settimeout(5)
        assert peer.recv(100) == b''   # closed, though its traceback, kept, holds the socket's objects
        peer.close()
        del refused
    try:
        run(main())
    finally:
        listener.close()


@pytest.mark.parametrize('max_frame', [65536, 1024])   # (frames no longer than a probation's: the same rule)
def test_a_busy_proven_client_is_not_pushed_out_by_newcomers(monkeypatch, max_frame):
    """Beyond max_clients a newcomer that proves itself (without a secret any valid frame does) takes the place
    of a client only once that one is idle; while none is, the newcomer goes."""
    from sp_common import admission
    held = []

    def setup(prot):
        prot.register_callback(sp.SID_EXECUTE_REQUEST, 0, lambda msg: (sp.STATUS_OKAY, msg.get_data()))
        held.append(prot)

    async def main():
        server = await aio.serve('127.0.0.1', 0, setup, max_clients=1, max_frame=max_frame)
        url = 'tcp://127.0.0.1:%d' % server.sockets[0].getsockname()[1]
        busy = await aio.connect(url)
        assert (await busy.request(sp.SID_EXECUTE_REQUEST, 0, 'a', timeout=3)).get_data() == 'a'
        for n in range(3):
            newcomer = await aio.connect(url)
            await newcomer.request(sp.SID_EXECUTE_REQUEST, 0, n, timeout=1)
            await until(lambda: not held[-1].is_connected())
            await newcomer.close()
            assert (await busy.request(sp.SID_EXECUTE_REQUEST, 0, 'b', timeout=3)).get_data() == 'b'
        monkeypatch.setattr(admission, 'IDLE_MS', 200)
        await asyncio.sleep(0.3)   # the client falls idle: the next newcomer takes its place
        late = await aio.connect(url)
        assert (await late.request(sp.SID_EXECUTE_REQUEST, 0, 'c', timeout=3)).get_data() == 'c'
        await until(lambda: not held[0].is_connected())
        await late.close()
        await busy.close()
        server.close()
    run(main())


def test_a_newcomer_turned_away_has_nothing_run_of_what_came_with_its_proof(caplog):
    """No room for a newcomer that proves itself (a busy client holds max_clients): the request it sent in the same
    write as its proof (a valid frame, no secret) runs no callback, its link ends at once, and the log says it
    was the newcomer that went."""
    caplog.set_level(logging.WARNING)
    ran = []

    def setup(prot):
        prot.register_callback(sp.SID_EXECUTE_REQUEST, 0, lambda msg: (ran.append(msg.get_data()), (0, 'ran'))[1])

    async def main():
        server = await aio.serve('127.0.0.1', 0, setup, max_clients=1)
        port = server.sockets[0].getsockname()[1]
        busy = await aio.connect('tcp://127.0.0.1:%d' % port)
        assert (await busy.request(sp.SID_EXECUTE_REQUEST, 0, 'busy', timeout=3)).get_data() == 'ran'
        reader, writer = await asyncio.open_connection('127.0.0.1', port)
        writer.write(frame(pure_json.encode(sp.SID_CHANNEL_NAME_REQUEST, 0, 0, 'newcomer'))
                     + frame(pure_json.encode(sp.SID_EXECUTE_REQUEST, 0, 0, 'x' * 20000)))
        try:
            got = await asyncio.wait_for(reader.read(), 5)   # to its end: the server closed it
        except ConnectionResetError:   # (closed with the rest of the request unread)
            got = b''
        assert b'ran' not in got and ran == ['busy']
        assert 'dropping this newcomer' in caplog.text and 'a newcomer waits' not in caplog.text
        writer.close()
        await busy.close()
        server.close()
    run(main())


def test_with_a_secret_a_newcomer_that_authenticates_takes_the_place_at_once():
    """A board that rebooted dials in again while its dead connection still counts: authenticated, it is
    trusted as much as that one and takes its place (the gateway's listen:// boards)."""
    async def main():
        server = await aio.serve('127.0.0.1', 0, lambda prot: prot.register_callback(
            sp.SID_EXECUTE_REQUEST, 0, lambda msg: (sp.STATUS_OKAY, msg.get_data())), max_clients=1, secret='s')
        url = 'tcp://127.0.0.1:%d' % server.sockets[0].getsockname()[1]
        first = await aio.connect(url, secret='s', auto_auth=True)
        assert (await first.request(sp.SID_EXECUTE_REQUEST, 0, 'a', timeout=3)).get_data() == 'a'
        second = await aio.connect(url, secret='s', auto_auth=True)
        assert (await second.request(sp.SID_EXECUTE_REQUEST, 0, 'b', timeout=3)).get_data() == 'b'
        await until(lambda: not first.is_connected())
        await second.close()
        await first.close()
        server.close()
    run(main())


def test_a_serial_peer_that_stops_reading_loses_the_link_whole():
    """A board that reads nothing until a send times out: over a tty, as over TCP, the link is lost, its read
    side too. Only the write side went: the link stayed 'connected', its port locked, wait_closed() never
    returned, and the next send raised AttributeError from asyncio."""
    async def main():
        board, port = os.openpty()
        tty.setraw(port)
        prot = await aio.connect(os.ttyname(port), session_v2=False)
        try:
            sent = True
            for _ in range(64):   # the pty's buffer fills: a send times out
                sent = await prot.send(sp.SID_EXECUTE_REQUEST, 0, 'x' * 4000, timeout=0.5)
                if not sent:
                    break
            assert sent is False and not prot.is_connected()
            await asyncio.wait_for(prot.wait_closed(), 5)
            assert await prot.send(sp.SID_EXECUTE_REQUEST, 0, 'after', timeout=1) is False
        finally:
            await prot.close()
            os.close(board)
            os.close(port)
    run(main())


@pytest.mark.parametrize('on_probation', [False, True])
def test_a_peer_that_floods_gives_the_loop_back_between_chunks(on_probation):
    """Its bytes are taken a chunk at a time, the loop's other tasks (every other link of a gateway) run between:
    read whole, a buffer of flood held the loop for every frame in it. A peer on probation too (a server's
    newcomer, whose frames are fed one by one)."""
    flood = frame(pure_json.encode(sp.SID_EXECUTE_RESPONSE, 0, 0, 'x' * 40)) * 600   # unsolicited: dropped, counted

    async def main():
        near, far = socket.socketpair()
        far.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        far.sendall(flood)
        reader, writer = await asyncio.open_connection(sock=near)
        await until(lambda: len(reader._buffer) == len(flood))   # all of it there before the first read
        prot = aio.AsyncProtocol(reader, writer, False, session_v2=False,
                                 probation_frame=aio.PROBATION_FRAME if on_probation else None)
        seen = []

        async def other_task():
            seen.append(prot._engine.counters['unsolicited'])
        await asyncio.gather(other_task(), until(lambda: prot._engine.counters['unsolicited'] == 600))
        await prot.close()
        far.close()
        return seen[0]
    assert run(main()) <= 600 // 10   # it ran after the first chunk, not after the whole flood


def test_links_read_their_peers_in_small_chunks():
    """asyncio reads up to 256 KiB into a fresh buffer on every read: for each answer of a hundred bytes, memory
    mapped and given back (three system calls), the largest single cost of a gateway's call."""
    async def main():
        accepted = []
        server = await aio.serve('127.0.0.1', 0, accepted.append)
        client = await aio.connect('tcp://127.0.0.1:%d' % server.sockets[0].getsockname()[1])
        try:
            await until(lambda: accepted)
            assert client._writer.transport.max_size == accepted[0]._writer.transport.max_size == aio.RECV_SIZE
        finally:
            await client.close()
            server.close()
    run(main())


def test_a_program_that_ends_with_clients_connected_logs_no_error(caplog):
    """The loop's end cancels each connection's task: asyncio logged that as an error with a traceback, one per
    client still connected."""
    caplog.set_level(logging.ERROR, 'asyncio')

    async def main():
        server = await aio.serve('127.0.0.1', 0, lambda prot: None)
        port = server.sockets[0].getsockname()[1]
        clients = [await aio.connect('tcp://127.0.0.1:%d' % port) for _ in range(3)]
        assert all(client.is_connected() for client in clients)
        server.close()
        await server.wait_closed()
    asyncio.run(main())
    assert [r.getMessage() for r in caplog.records if r.name == 'asyncio'] == []


def test_a_connect_to_a_peer_that_never_accepts_times_out_as_the_threaded_clients_does(monkeypatch):
    """asyncio's own connect waits for the system's retries, minutes; the threaded client gives up after
    tcp.CONNECT_S and tries again."""
    monkeypatch.setattr(sp.tcp, 'CONNECT_S', 0.3)
    with port_that_never_accepts() as port:
        start = time.monotonic()
        with pytest.raises(TimeoutError, match='no connection to tcp://'):   # (the built-in: on 3.9 and 3.10 too)
            run(aio.connect('tcp://127.0.0.1:%d' % port))
        assert time.monotonic() - start < 2
