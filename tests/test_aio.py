"""The asyncio API over real loopback TCP, real ptys and the virtual board."""
import asyncio
import socket
import time

import pytest

from conftest import free_port, read_to_end

import sp_cpython as sp
from ptys import PtyCable
from sp_common import Deframer, Engine, admission, frame, pure_json
from sp_cpython import aio
from tools.unix_board import UnixBoard

SECRET = 'asyncio secret'


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 60))


def echo_server(secret=None):
    """A threaded host server with an echo service and a slow one (1 s)."""
    server = sp.pure_json_protocol(sp.tcp_server_stp('127.0.0.1', 0), secret=secret)
    server.register_callback(sp.SID_EXECUTE_REQUEST, 0, lambda msg: (sp.STATUS_OKAY, msg.get_data()))
    server.register_callback(sp.SID_EXECUTE_REQUEST, 9, lambda msg: time.sleep(1) or (sp.STATUS_OKAY, 'slow'))
    return server


def against_echo_server(main, secret=None):
    """Runs main(url) against a fresh echo_server(secret), which is closed afterwards; returns the server."""
    server = echo_server(secret)
    try:
        run(main('tcp://127.0.0.1:%d' % server.__comm_inst__.port))
    finally:
        server.close()
    return server


def test_concurrent_requests_each_get_their_own_answer():
    async def main(url):
        async with await aio.connect(url, secret=SECRET, auto_auth=True) as prot:
            answers = await asyncio.gather(*(prot.request(sp.SID_EXECUTE_REQUEST, 0, n) for n in range(40)))
            assert [a.get_data() for a in answers] == list(range(40))
            assert prot.session == 2 and prot.macs and prot.check_authentification_state()
    against_echo_server(main, SECRET)


def test_authentificate_calls_that_overlap_share_one_handshake():
    async def main(url):
        async with await aio.connect(url, secret=SECRET, auto_auth=True) as prot:
            assert await asyncio.gather(*(prot.authentificate(3) for _ in range(3))) == [True, True, True]
    assert against_echo_server(main, SECRET).counters['wrong_keys'] == 0


def test_timeout_zero_looks_once_and_does_not_wait():
    async def main(url):
        async with await aio.connect(url) as prot:
            assert await prot.send(sp.SID_EXECUTE_REQUEST, 0, 'settles the wire', timeout=3)
            assert await prot.send(sp.SID_EXECUTE_REQUEST, 0, 'now', timeout=0)
            for _ in range(200):
                msg = await prot.receive(sp.SID_EXECUTE_RESPONSE, 0, timeout=0)
                if msg is not None:
                    break
                await asyncio.sleep(0.01)
            assert msg.get_data() == 'now'
    against_echo_server(main)


def test_a_cancelled_call_leaves_the_connection_usable():
    async def main(url):
        prot = await aio.connect(url)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(prot.request(sp.SID_EXECUTE_REQUEST, 9), 0.3)   # cancelled while waiting
        assert (await prot.request(sp.SID_EXECUTE_REQUEST, 0, 'next', timeout=3)).get_data() == 'next'
        assert prot.counters['stale'] == 1   # the slow answer came late and went to no one
        await prot.close()
    against_echo_server(main)


def test_over_a_pty_with_a_threaded_server(tmp_path):
    cable = PtyCable(str(tmp_path))
    server = sp.pure_json_protocol(sp.serial_stp(cable.path_a, is_client=False))
    server.register_callback(sp.SID_EXECUTE_REQUEST, 0, lambda msg: (sp.STATUS_OKAY, msg.get_data()))

    async def main():
        # a serial line has no connection: what the client says before the server's port is open is lost
        while not server.is_connected():
            await asyncio.sleep(0.01)
        async with await aio.connect(cable.path_b) as prot:
            answer = await prot.request(sp.SID_EXECUTE_REQUEST, 0, {'over': 'a pty:<:>'}, timeout=5)
            assert answer.get_data() == {'over': 'a pty:<:>'} and prot.session == 2
    try:
        run(main())
    finally:
        server.close()
        cable.close()


def test_a_serial_port_another_program_holds_is_refused_at_once(tmp_path):
    cable = PtyCable(str(tmp_path))
    holder = sp.pure_json_protocol(sp.serial_stp(cable.path_b))   # the threaded transport opens it exclusively
    try:
        deadline = time.monotonic() + 5
        while not holder.is_connected() and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(ConnectionError, match='in use'):
            run(aio.connect(cable.path_b))
    finally:
        holder.close()
        cable.close()


def test_a_server_written_with_it_answers_the_host_and_the_device():
    """Coroutine callbacks answer a threaded host client; the virtual board connects as a client and is asked."""
    async def slow_echo(msg):
        await asyncio.sleep(0.05)
        return sp.STATUS_OKAY, ['async', msg.get_data()]

    async def main():
        clients = []

        def setup(prot):
            prot.register_callback(sp.SID_EXECUTE_REQUEST, 0, slow_echo)
            clients.append(prot)
        port = free_port()
        server = await aio.serve('127.0.0.1', port, setup, secret=SECRET)
        host = sp.pure_json_protocol(sp.tcp_client_stp('127.0.0.1', port), secret=SECRET, auto_auth=True)
        try:
            answer = await asyncio.get_running_loop().run_in_executor(
                None, lambda: host.request(sp.SID_EXECUTE_REQUEST, 0, 'host', timeout=5))
            assert answer.get_data() == ['async', 'host']
        finally:
            host.close()
        board = UnixBoard('256k', role='client', tcp_host='127.0.0.1', tcp_port=port, stdio=0, secret=SECRET)
        try:
            for _ in range(200):
                device = [c for c in clients[1:] if c.check_authentification_state()]
                if device:
                    break
                await asyncio.sleep(0.05)
            assert device, board.stderr()
            echo = await device[0].request(sp.SID_EXECUTE_REQUEST, 0, 'to the board', timeout=5)
            assert echo.get_data() == 'to the board' and device[0].session == 2
        finally:
            board.stop()
            server.close()
    run(main())


def test_a_flood_of_requests_to_a_slow_coroutine_callback_is_bounded():
    """Past MAX_ANSWERING answers in progress, more requests get STATUS_CALLBACK_ERROR instead of a task each."""
    release = None

    async def held(msg):
        await release.wait()
        return sp.STATUS_OKAY, msg.get_data()

    async def main():
        nonlocal release
        release = asyncio.Event()
        port = free_port()
        server = await aio.serve('127.0.0.1', port, lambda prot: prot.register_callback(sp.SID_EXECUTE_REQUEST, 0, held))
        async with await aio.connect('tcp://127.0.0.1:%d' % port) as prot:
            calls = [asyncio.ensure_future(prot.request(sp.SID_EXECUTE_REQUEST, 0, n, timeout=10))
                     for n in range(aio.MAX_ANSWERING + 6)]
            while sum(call.done() for call in calls) < 6:
                await asyncio.sleep(0.01)
            release.set()
            statuses = [answer.get_status() for answer in await asyncio.gather(*calls)]
        server.close()
        assert statuses.count(sp.STATUS_OKAY) == aio.MAX_ANSWERING
        assert statuses.count(sp.STATUS_CALLBACK_ERROR) == 6
    run(main())


def test_a_coroutine_callback_on_a_response_runs_too():
    """Not only a request's: a coroutine callback on a message that wants no answer is awaited, not dropped."""
    async def main():
        heard = asyncio.Event()

        async def note(msg):
            await asyncio.sleep(0)
            heard.set()
        port = free_port()
        server = await aio.serve('127.0.0.1', port, lambda prot: None)
        async with await aio.connect('tcp://127.0.0.1:%d' % port) as prot:
            prot.register_callback(sp.SID_READ_RESPONSE, 'asc_time', note)
            assert await prot.send(sp.SID_READ_REQUEST, 'asc_time', None)
            await asyncio.wait_for(heard.wait(), 5)
        server.close()
    run(main())


def test_a_silent_peer_is_dropped_after_probation(monkeypatch):
    """As with the threaded server: a connection that never speaks is closed, one that does stays."""
    monkeypatch.setattr(admission, 'SILENCE_MS', 300)   # PROBATION stays 5 s: silence alone ends it

    async def main():
        port = free_port()
        server = await aio.serve('127.0.0.1', port, lambda prot: None)
        silent_reader, silent_writer = await asyncio.open_connection('127.0.0.1', port)
        async with await aio.connect('tcp://127.0.0.1:%d' % port) as prot:
            assert await asyncio.wait_for(silent_reader.read(), 5) == b''   # closed by the server
            assert prot.is_connected()
            answer = await prot.request(sp.SID_READ_REQUEST, 99, timeout=5)   # still served past probation
            assert answer.get_status() == sp.STATUS_SERVICE_OR_DATA_UNKNOWN
        silent_writer.close()
        server.close()
    run(main())


def test_events_are_logged_as_by_the_threaded_protocol(caplog):
    """A peer with another secret: the asyncio client's refused handshake and its call that cannot go out
    are logged on the socket_protocol loggers, like the threaded protocol's."""
    async def main(url):
        async with await aio.connect(url, secret='another secret',
                                     auto_auth=True, channel_name='aio-client') as prot:
            assert await prot.request(sp.SID_EXECUTE_REQUEST, 0, 'x', timeout=0.5) is None
    caplog.set_level('INFO', logger='socket_protocol')
    against_echo_server(main, SECRET)
    mine = [r for r in caplog.records if r.name == 'socket_protocol.aio-client']
    assert any('cannot send' in r.getMessage() and r.levelname == 'WARNING' for r in mine), caplog.text
    assert any('session v2' in r.getMessage() for r in mine), caplog.text


def test_a_second_channel_name_on_a_connection_is_out_of_turn():
    """Each asyncio connection is one of TCP's: only its first channel-name request names it and starts it."""
    def wire(sid, did, data):
        return frame(pure_json.encode(sid, did, 0, data))

    async def main():
        port = free_port()
        served = []
        server = await aio.serve('127.0.0.1', port, served.append)
        reader, writer = await asyncio.open_connection('127.0.0.1', port)   # an original client, raw
        writer.write(wire(8, 0, 'first') + wire(10, 99, None) + wire(8, 0, 'second') + wire(10, 99, None))
        received = b''
        while received.count(b':>') < 3:
            received += await asyncio.wait_for(reader.read(4096), 5)
        await asyncio.sleep(0.2)   # time for a fourth frame, which must not come
        writer.close()
        server.close()
        answers = [pure_json.decode(body)[:3] for body in Deframer(4096).feed(received)]
        unknown = (11, 99, sp.STATUS_SERVICE_OR_DATA_UNKNOWN)
        assert answers == [(9, 0, 0), unknown, unknown]
        assert served[0].channel_name == 'first' and served[0].counters['out_of_turn'] == 1
    run(main())


def test_one_timeout_bounds_the_whole_request():
    """As with the threaded protocol: a wire settled just before the timeout leaves the answer only what is left."""
    async def main():
        board = Engine(False)
        board.connection_made()

        async def late_board(reader, writer):
            board.feed(await reader.read(4096))   # the name and the session offer
            await asyncio.sleep(0.8)
            writer.write(board.data_to_send())    # answered late; what comes next is never answered
            await asyncio.sleep(3)
        server = await asyncio.start_server(late_board, '127.0.0.1', 0)
        port = server.sockets[0].getsockname()[1]
        start = time.monotonic()
        async with await aio.connect('tcp://127.0.0.1:%d' % port) as prot:
            assert await prot.request(sp.SID_EXECUTE_REQUEST, 0, 'x', timeout=1) is None
            assert prot.session == 2 and time.monotonic() - start < 1.5
        server.close()
    run(main())


def test_call_raises_what_request_returns_as_none():
    async def main(url):
        async with await aio.connect(url) as prot:
            assert await prot.call(sp.SID_EXECUTE_REQUEST, 0, 'x', timeout=5) == 'x'
            with pytest.raises(sp.ErrorAnswer) as err:
                await prot.call(98, 0, timeout=5)
            assert err.value.status == sp.STATUS_SERVICE_OR_DATA_UNKNOWN
            with pytest.raises(sp.NoAnswer):
                await prot.call(sp.SID_EXECUTE_REQUEST, 9, timeout=0.3)   # the slow service
    against_echo_server(main)


def _stop_reading(sock):
    """Small kernel buffers, so that a peer which reads nothing fills them with a few kilobytes."""
    import socket
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)


def test_a_send_to_a_peer_that_stopped_reading_gives_up_in_its_timeout_and_never_goes_out():
    """As the threaded API: the call's own timeout bounds the write, and a frame reported unsent is dropped with
    the link (the peer never gets it), not left queued to go out once the peer reads again."""
    import socket

    async def main():
        listener = socket.create_server(('127.0.0.1', 0))
        _stop_reading(listener)
        prot = await aio.connect('tcp://127.0.0.1:%d' % listener.getsockname()[1], session_v2=False)
        peer, _ = listener.accept()
        lost = []
        prot.on_lost = lost.append
        prot._writer.transport.get_extra_info('socket').setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        start = time.monotonic()
        assert await prot.send(sp.SID_EXECUTE_REQUEST, 0, 'x' * (1 << 20), timeout=0.3) is False
        assert time.monotonic() - start < 1.5
        assert await prot.send(sp.SID_EXECUTE_REQUEST, 7, 'launch', timeout=0.3) is False
        await asyncio.wait_for(prot.wait_closed(), 1)
        assert not prot.is_connected() and lost == [prot]
        got = read_to_end(peer)
        assert b'launch' not in got and len(got) < (1 << 20)
        peer.close()
        listener.close()
    run(main())


def test_server_connections_whose_peers_read_nothing_are_closed_for_good(monkeypatch, caplog):
    """Clients that prove themselves, send requests and never read the answers: each connection is dropped
    after the write timeout, and says why in the log (the caps evict connections; a closing transport must not
    keep its socket)."""
    import socket
    monkeypatch.setattr(aio, 'WRITE_TIMEOUT', 0.5)
    prots = []

    def setup(prot):
        prot.register_callback(sp.SID_EXECUTE_REQUEST, 0, lambda msg: (sp.STATUS_OKAY, msg.get_data()))
        prot._writer.transport.get_extra_info('socket').setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        prots.append(prot)

    async def main():
        server = await aio.serve('127.0.0.1', 0, setup, max_clients=2)
        port = server.sockets[0].getsockname()[1]
        request = frame(pure_json.encode(sp.SID_EXECUTE_REQUEST, 0, 0, 'y' * 20000))
        clients = []
        for i in range(6):
            sock = socket.socket()
            _stop_reading(sock)
            sock.connect(('127.0.0.1', port))
            sock.setblocking(False)
            sock.send(frame(pure_json.encode(sp.SID_CHANNEL_NAME_REQUEST, 0, 0, 'c%d' % i)))
            clients.append(sock)
            await asyncio.sleep(0.05)
            for _ in range(25):
                try:
                    sock.send(request)
                except OSError:   # full, or closed already: beyond max_clients a newcomer goes while none is idle
                    break
                await asyncio.sleep(0)
        await asyncio.sleep(3)
        assert len(prots) == 6
        assert [p for p in prots if p._writer.transport.get_extra_info('socket').fileno() != -1] == []
        assert not any(p.is_connected() for p in prots)
        await asyncio.wait_for(asyncio.gather(*(p.wait_closed() for p in prots)), 1)
        for sock in clients:
            sock.close()
        server.close()
    run(main())
    assert 'dropping a peer that stopped reading' in caplog.text


@pytest.mark.parametrize('split', [False, True])
def test_a_long_request_in_the_same_read_as_the_frame_that_proves_the_client_is_answered(split):
    """The probation's small frames end with the frame that proves the client, not with the read it came in;
    split: the proof's ':' ends one read and its '>' starts the next, with the long request behind it."""
    def setup(prot):
        prot.register_callback(sp.SID_EXECUTE_REQUEST, 0, lambda msg: (sp.STATUS_OKAY, len(msg.get_data())))

    async def main():
        server = await aio.serve('127.0.0.1', 0, setup)
        reader, writer = await asyncio.open_connection('127.0.0.1', server.sockets[0].getsockname()[1])
        stream = frame(pure_json.encode(sp.SID_CHANNEL_NAME_REQUEST, 0, 0, 'honest')) \
            + frame(pure_json.encode(sp.SID_EXECUTE_REQUEST, 0, 0, 'z' * (aio.PROBATION_FRAME * 2)))
        if split:
            cut = stream.index(b':>') + 1
            writer.write(stream[:cut])
            await writer.drain()
            await asyncio.sleep(0.2)
            stream = stream[cut:]
        writer.write(stream)
        deframer, answers = Deframer(4096), []
        while not answers:
            bodies = deframer.feed(await asyncio.wait_for(reader.read(4096), 5))
            answers = [a for a in map(pure_json.decode, bodies) if a[0] == sp.SID_EXECUTE_RESPONSE]
        assert answers[0][3] == aio.PROBATION_FRAME * 2
        writer.close()
        server.close()
    run(main())


def test_its_receive_buffer_holds_as_many_messages_as_the_threaded_one():
    """100 messages on an id declared with add_data, none received yet: the asyncio API keeps all of them, as the
    threaded API does (max_buffered 256 on the host), and drops none."""
    async def main():
        got = []

        def setup(prot):
            prot.add_data(sp.SID_WRITE_REQUEST, 5, 'reading')
            got.append(prot)
        server = await aio.serve('127.0.0.1', 0, setup)
        client = await aio.connect('tcp://127.0.0.1:%d' % server.sockets[0].getsockname()[1])
        for n in range(100):
            assert await client.send(sp.SID_WRITE_REQUEST, 5, n)
        await asyncio.sleep(0.2)
        assert [(await got[0].receive(sp.SID_WRITE_REQUEST, 5, 3)).get_data() for _ in range(100)] == list(range(100))
        assert got[0].counters['buffer_dropped'] == 0
        await client.close()
        server.close()
    run(main())


def test_closing_a_server_closes_the_connections_it_serves():
    """asyncio's own server leaves them open, and from Python 3.12 on its wait_closed() waits for their peers."""
    async def main():
        server = await aio.serve('127.0.0.1', 0, lambda prot: prot.register_callback(
            sp.SID_EXECUTE_REQUEST, 0, lambda msg: (sp.STATUS_OKAY, msg.get_data())))
        port = server.sockets[0].getsockname()[1]
        proven = await aio.connect('tcp://127.0.0.1:%d' % port)
        assert (await proven.request(sp.SID_EXECUTE_REQUEST, 0, 'x', timeout=2)).get_data() == 'x'
        reader, writer = await asyncio.open_connection('127.0.0.1', port)   # on probation, silent
        async with server:
            pass
        await asyncio.wait_for(proven.wait_closed(), 1)
        assert await asyncio.wait_for(reader.read(), 1) == b''
        assert not server.is_serving()
        writer.close()
    run(main())


def test_a_cancelled_serve_forever_closes_the_connections_too():
    """asyncio's serve_forever(), cancelled (Ctrl-C in asyncio.run), closed only its listener, and from Python
    3.12 on waited for the peers of the connections it left open."""
    async def main():
        server = await aio.serve('127.0.0.1', 0, lambda prot: None)
        client = await aio.connect('tcp://127.0.0.1:%d' % server.sockets[0].getsockname()[1])
        forever = asyncio.ensure_future(server.serve_forever())
        await asyncio.sleep(0.1)
        forever.cancel()
        await asyncio.wait([forever], timeout=2)
        assert forever.cancelled() and not server.is_serving()
        await asyncio.wait_for(client.wait_closed(), 1)
    run(main())


def test_a_client_accepted_as_the_server_closes_is_not_served():
    """asyncio accepts a connection a loop turn or more before its handler runs: one that came as the server
    closed was served on, for good, after close() and wait_closed() had returned."""
    async def attempt(turns):
        served = []
        server = await aio.serve('127.0.0.1', 0, served.append)
        peer = socket.create_connection(('127.0.0.1', server.sockets[0].getsockname()[1]))
        try:
            for _ in range(turns):   # (the loop accepts it, then runs its handler, turns later)
                await asyncio.sleep(0)
            server.close()
            await server.wait_closed()
            await asyncio.sleep(0.1)
            return [prot.is_connected() for prot in served]
        finally:
            peer.close()

    async def main():
        return [await attempt(turns) for turns in range(8)]
    served = run(main())
    assert not any(any(connected) for connected in served), served
    assert [] in served and [False] in served   # came too late for a handler, and closed by close()


def test_a_connection_whose_setup_raised_is_closed_and_not_held():
    """setup() raised: the connection stayed in the server's list, without a probation to end it, for good."""
    async def main():
        def setup(prot):
            raise RuntimeError('a broken setup')
        port = free_port()
        server = await aio.serve('127.0.0.1', port, setup)
        reader, writer = await asyncio.open_connection('127.0.0.1', port)
        assert await asyncio.wait_for(reader.read(), 5) == b''   # closed at once, not after probation
        assert server._held == []
        writer.close()
        server.close()
        await server.wait_closed()
    run(main())


def test_a_request_cancelled_while_its_write_waits_forgets_its_token():
    """wait_for() ran out while the request's 8 MB waited in drain(): the call was gone, its token not, and its
    answer was kept for good; the answer is stale now."""
    async def main():
        port = free_port()
        server = await aio.serve('127.0.0.1', port, lambda prot: prot.register_callback(
            sp.SID_EXECUTE_REQUEST, 0, lambda msg: (sp.STATUS_OKAY, len(msg.get_data()))), max_frame=1 << 24)
        async with await aio.connect('tcp://127.0.0.1:%d' % port, max_frame=1 << 24) as prot:
            assert (await prot.request(sp.SID_EXECUTE_REQUEST, 0, 'x', timeout=5)).get_data() == 1
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(prot.request(sp.SID_EXECUTE_REQUEST, 0, 'y' * (8 << 20), timeout=10), 0.002)
            assert (await prot.request(sp.SID_EXECUTE_REQUEST, 0, 'z', timeout=10)).get_data() == 1
            calls = prot._engine.calls()
            assert calls.waiting == {} and calls.replies == {}
            assert prot.counters['stale'] == 1
        server.close()
        await server.wait_closed()
    run(main())
