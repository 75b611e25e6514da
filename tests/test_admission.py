"""Who the TCP servers admit (sp_common.admission), attacked: the host's threaded and asyncio servers and the
board's. Squatters take a server's place and never prove themselves; a genuine client must still be served."""
import asyncio
import gc
import logging
import select
import socket
import threading
import time
import tracemalloc

import pytest

import sp_cpython as sp
from sp_common import Engine, admission, frame, pure_json
from sp_cpython import aio
from tools.unix_board import UnixBoard

SECRET = 'admission secret'
NAME = frame(pure_json.encode(sp.SID_CHANNEL_NAME_REQUEST, 0, 0, 'squatter'))
SEED = frame(pure_json.encode(sp.SID_AUTH_REQUEST, sp.DID_AUTH_SEED, 0, None))
GATED = frame(pure_json.encode(sp.SID_EXECUTE_REQUEST, 0, 0, 'let me in'))
WRONG_KEY = frame(pure_json.encode(sp.SID_AUTH_REQUEST, sp.DID_AUTH_KEY, 0, '0' * 64))


class Squatters:
    """count connections to port that each give a channel name (whitelisted) and then, by mode: say nothing
    (silent); ask for a seed and send gated requests every 0.15 s without ever sending a key (chatty); or, from
    the server's first answer on, send a seed request and a wrong key by turns every 0.2 s (wrong_keys: each
    turns the handshake's state, back and forth). Each one the server drops is opened again at once."""

    def __init__(self, port, count=10, mode='silent'):
        self.port = port
        self.mode = mode
        self.opened = 0
        self._stop = threading.Event()
        self._turns = {}   # wrong_keys: a socket the server answered -> its next turn's time and number
        self._socks = [self._open() for _ in range(count)]
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _open(self):
        sock = socket.create_connection(('127.0.0.1', self.port), timeout=5)
        sock.sendall(NAME)
        self.opened += 1
        return sock

    def _run(self):
        said = time.monotonic()
        while not self._stop.is_set():
            for sock in select.select(self._socks, (), (), 0.02)[0]:
                try:
                    gone = not sock.recv(4096)
                except OSError:
                    gone = True
                if gone:
                    sock.close()
                    self._turns.pop(sock, None)
                    self._socks[self._socks.index(sock)] = self._open()
                elif self.mode == 'wrong_keys' and sock not in self._turns:
                    self._turns[sock] = (time.monotonic() + 0.2, 0)
            now = time.monotonic()
            if self.mode == 'chatty' and now - said > 0.15:
                said = now
                for sock in self._socks:
                    self._send(sock, SEED + GATED)
            for sock, (due, turn) in list(self._turns.items()):
                if now >= due:
                    self._send(sock, WRONG_KEY if turn % 2 else SEED)
                    self._turns[sock] = (now + 0.2, turn + 1)

    @staticmethod
    def _send(sock, data):
        try:
            sock.sendall(data)
        except OSError:
            pass   # dropped: opened again once its end is read

    def close(self):
        self._stop.set()
        self._thread.join(5)
        for sock in self._socks:
            sock.close()


# seconds a genuine client may wait behind ten squatters: 250 ms each for a silent or chatty one; one that asks for
# a seed once served takes a step, as a genuine client would, and holds the server up to twice as long
WAIT_BEHIND = {'silent': 4, 'chatty': 4, 'wrong_keys': 7}


def served_in(port, secret=SECRET, timeout=10):
    """Seconds a genuine client with the secret takes from its connect to its first answer."""
    start = time.monotonic()
    client = sp.pure_json_protocol(sp.tcp_client_stp('127.0.0.1', port), secret=secret, auto_auth=True)
    try:
        answer = client.request(sp.SID_EXECUTE_REQUEST, 0, 'genuine', timeout=timeout)
        assert answer is not None and answer.get_data() == 'genuine'
        return time.monotonic() - start
    finally:
        client.close()


@pytest.mark.parametrize('mode', ['silent', 'chatty', 'wrong_keys'])
def test_squatters_cannot_lock_out_the_threaded_server(mode):
    """Chatty squatters send valid frames that move nothing on (seed requests, gated requests): on probation
    they count for as little as silence. A wrong key moves the handshake back, not on: from then on no seed
    request counts either (each squatter held the server about 1.4 s, not 0.45 s)."""
    server = sp.pure_json_protocol(sp.tcp_server_stp('127.0.0.1', 0), secret=SECRET)
    server.register_callback(sp.SID_EXECUTE_REQUEST, 0, lambda msg: (sp.STATUS_OKAY, msg.get_data()))
    squatters = Squatters(server.__comm_inst__.port, mode=mode)
    try:
        time.sleep(0.5)
        assert served_in(server.__comm_inst__.port) < WAIT_BEHIND[mode]
        assert squatters.opened > 10   # they were dropped, and came back
    finally:
        squatters.close()
        server.close()


def test_a_squatter_that_reads_nothing_holds_the_threaded_server_no_longer_than_a_stall():
    """A peer on probation floods gated requests, each answered with its 60 kB data id echoed, and reads nothing:
    once the server's socket is full its I/O thread waits in a write, judging no one. That wait ends after
    PATIENCE_MS for a peer on probation (it was the 2 s of a proven one), and the newcomer is served."""
    server = sp.pure_json_protocol(sp.tcp_server_stp('127.0.0.1', 0), secret=SECRET)
    server.register_callback(sp.SID_EXECUTE_REQUEST, 0, lambda msg: (sp.STATUS_OKAY, msg.get_data()))
    port = server.__comm_inst__.port
    gated = frame(pure_json.encode(sp.SID_EXECUTE_REQUEST, 'x' * 60000, 0, None))
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    try:
        squatter.connect(('127.0.0.1', port))
        squatter.sendall(frame(pure_json.encode(sp.SID_CHANNEL_NAME_REQUEST, 0, 0, 'squatter')))
        squatter.setblocking(False)
        stalled_since = time.monotonic()
        while time.monotonic() - stalled_since < 0.2:   # until the server stops reading: it waits in a write
            try:
                if squatter.send(gated):
                    stalled_since = time.monotonic()
            except BlockingIOError:
                time.sleep(0.005)
            except OSError:
                break   # already dropped
        assert served_in(port) < 1.2
    finally:
        squatter.close()
        server.close()


@pytest.mark.parametrize('mode', ['silent', 'chatty', 'wrong_keys'])
def test_squatters_cannot_lock_out_the_board(mode):
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    board = UnixBoard('256k', role='server', tcp_host='127.0.0.1', tcp_port=port, stdio=0, secret=SECRET)
    squatters = None
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(('127.0.0.1', port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, board.stderr()
                time.sleep(0.1)
        squatters = Squatters(port, mode=mode)
        time.sleep(0.5)
        assert served_in(port) < WAIT_BEHIND[mode], board.stderr()[-3000:]
        assert squatters.opened > 10
    finally:
        if squatters is not None:
            squatters.close()
        board.stop()


def echo(prot):
    prot.register_callback(sp.SID_EXECUTE_REQUEST, 0, lambda msg: (sp.STATUS_OKAY, msg.get_data()))


def test_squatters_cannot_lock_out_the_asyncio_server():
    async def main():
        server = await aio.serve('127.0.0.1', 0, echo, secret=SECRET)
        port = server.sockets[0].getsockname()[1]
        squatters = await asyncio.get_running_loop().run_in_executor(None, Squatters, port)
        try:
            await asyncio.sleep(0.5)
            took = await asyncio.get_running_loop().run_in_executor(None, served_in, port)
            assert took < 2
        finally:
            squatters.close()
            server.close()
    asyncio.run(asyncio.wait_for(main(), 60))


def connect_nowait(port):
    """A socket connecting to port, not waited for (it sends nothing)."""
    sock = socket.socket()
    sock.setblocking(False)
    try:
        sock.connect(('127.0.0.1', port))
    except BlockingIOError:
        pass
    return sock


def silent_connects(port, until, keep=300, pause=0.0005):
    """Connects to port that say nothing, one every pause seconds until until() is true, the last keep of them
    held open."""
    socks = []
    while not until():
        socks.append(connect_nowait(port))
        if len(socks) > keep:
            socks.pop(0).close()
        time.sleep(pause)
    for sock in socks:
        sock.close()


def slow_client_served(port, round_trip):
    """A genuine client with the secret a round trip away (each flight after its first held back that long): True
    once trusted and answered."""
    sock = socket.create_connection(('127.0.0.1', port), timeout=5)
    engine = Engine(True, secret=SECRET)
    engine.connection_made()
    sock.sendall(engine.data_to_send())   # its name and session offer go out as it connects
    deadline = time.monotonic() + 5

    def pump(until):
        while not until():
            out = engine.data_to_send()
            if out:
                time.sleep(round_trip)
                sock.sendall(out)
            if time.monotonic() > deadline:
                return False
            if not select.select([sock], (), (), 0.2)[0]:
                continue
            data = sock.recv(65536)
            if not data:
                return False   # the server closed it
            engine.feed(data)
        return True
    try:
        if not pump(engine.ready):
            return False
        engine.start_auth()
        if not (pump(engine.auth_settled) and engine.is_trusted()):
            return False
        engine.send_msg(sp.SID_EXECUTE_REQUEST, 0, 'genuine')
        return pump(lambda: engine.pop_received(sp.SID_EXECUTE_RESPONSE, 0) is not None)
    except OSError:
        return False
    finally:
        sock.close()


def served_during(flood, warm_up, round_trip):
    """Of five genuine clients a round trip away (slow_client_served), one after the other, which an asyncio server
    with a secret served while flood(port, stop) ran in a thread of its own."""
    async def main():
        server = await aio.serve('127.0.0.1', 0, echo, secret=SECRET)
        port = server.sockets[0].getsockname()[1]
        stop = threading.Event()
        flooder = threading.Thread(target=flood, args=(port, stop))
        flooder.start()
        loop = asyncio.get_running_loop()
        try:
            await asyncio.sleep(warm_up)
            return [await loop.run_in_executor(None, slow_client_served, port, round_trip) for _ in range(5)]
        finally:
            stop.set()
            await loop.run_in_executor(None, flooder.join)
            server.close()
    return asyncio.run(asyncio.wait_for(main(), 60))


def test_a_flood_of_silent_connects_does_not_push_out_a_client_on_its_way_through_the_handshake():
    """Each newcomer made room by closing the connection on probation quiet the longest: under a flood of
    connects that say nothing, that was always the client waiting a round trip between its handshake steps
    (0 of 5 served at 40 ms). A peer that took a step within PATIENCE_MS goes last."""
    assert served_during(lambda port, stop: silent_connects(port, stop.is_set), 0.3, 0.04) == [True] * 5


def stepping_squatter(port, stop):
    """A connection that takes the steps a genuine client takes without the secret (its wire settles, it asks for
    a seed) and stays 2 s: on its way through the handshake all that time (admission.PATIENCE_MS)."""
    engine = Engine(True)
    engine.connection_made()
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=2) as sock:
            sock.sendall(engine.data_to_send())
            time.sleep(0.24)
            sock.sendall(frame(pure_json.encode(sp.SID_AUTH_REQUEST, sp.DID_AUTH_SEED, 0, None, 1, 0)))
            stop.wait(2)
    except OSError:
        pass


def test_peers_that_step_through_the_handshake_over_and_over_cannot_push_out_a_newcomer_before_its_first_bytes():
    """A newcomer was judged at its connect, before its first bytes: with every connection on probation on its
    way (new ones a hundred a second), the newcomer went at once (1 of 10 served). Fresh connections now make
    room only for each other."""
    def flood(port, stop):
        while not stop.is_set():
            threading.Thread(target=stepping_squatter, args=(port, stop), daemon=True).start()
            time.sleep(0.01)
    assert served_during(flood, 1, 0) == [True] * 5


def flooded_until_closed(first, junk):
    """A peer of an asyncio server with a secret that sends first, then junk ten times over, until the server
    closes it: (seconds until then, the server's engine for it)."""
    engines = []

    async def main():
        server = await aio.serve('127.0.0.1', 0, lambda prot: engines.append(prot._engine) or echo(prot),
                                 secret=SECRET)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection('127.0.0.1', port)
        start = time.monotonic()
        try:
            writer.write(first)
            for _ in range(10):
                writer.write(junk)
                await writer.drain()
                await asyncio.sleep(0.01)
        except ConnectionError:
            pass
        try:
            assert await asyncio.wait_for(reader.read(), 5) == b''   # closed by the server
        except ConnectionError:   # (or reset: what it sent after was not read)
            pass
        took = time.monotonic() - start
        writer.close()
        server.close()
        return took
    return asyncio.run(asyncio.wait_for(main(), 60)), engines[0]


def test_a_peer_on_probation_that_sends_frames_that_are_no_message_goes_after_a_few():
    """Four bytes (':<:>') make a frame the engine must look at: a peer on probation that sent them without end
    took 4.5 ms of the one loop per 4 KiB it sent, from every other peer of the asyncio server (and every board
    of a gateway listening for boards), for a second, and came back. It goes after admission.NOISE of them."""
    took, engine = flooded_until_closed(b'', b':<:>' * 1024)
    assert took < 1, took
    assert engine.counters["crc_errors"] == admission.NOISE + 1, engine.counters


def test_a_peer_on_probation_whose_junk_never_ends_a_frame_goes_as_soon():
    """':<' over and over starts frame after frame and ends none: the asyncio server looked for noise only after a
    frame's end, so a peer that gave its name and then sent only those held the one loop for its whole probation
    (5 s), and came back. Its broken frames are noise the moment they are fed."""
    took, engine = flooded_until_closed(NAME, b':<' * 2048)
    assert took < 1, took   # (its probation would have lasted 5 s)
    assert engine.counters['framing_errors'] > admission.NOISE, engine.counters


@pytest.mark.parametrize('mac', [False, True])
def test_a_peer_on_probation_that_replays_or_forges_session_frames_goes_after_a_few(mac):
    """A v2 frame sent again (its seq seen), or one whose MAC is wrong, is no message either: the engine dropped
    them under counters of their own that admission did not count, so such a peer fed for its whole probation
    (5 s, each forged frame taking a MAC check and a second parse) and came back."""
    server = sp.pure_json_protocol(sp.tcp_server_stp('127.0.0.1', 0), secret=SECRET)
    peer = Engine(True, channel_name='replayer', secret='not ' + SECRET if mac else None)
    sock = socket.create_connection(('127.0.0.1', server.__comm_inst__.port))
    try:
        peer.connection_made()
        while peer.wire not in ('v2', 'v2_macs'):
            sock.sendall(peer.data_to_send())
            peer.feed(sock.recv(65536))
        assert peer.wire == ('v2_macs' if mac else 'v2')
        peer.send_msg(sp.SID_EXECUTE_REQUEST, 0, 'again')
        again = peer.data_to_send()
        start = time.monotonic()
        try:
            for _ in range(100):
                sock.sendall(again * 20)
            while sock.recv(65536):
                pass
        except OSError:   # (reset: what it sent after was not read)
            pass
        took = time.monotonic() - start
    finally:
        sock.close()
        server.close()
    assert took < 2, took   # (its probation would have lasted 5 s)
    counters = server.counters
    assert counters['mac_errors' if mac else 'replayed'] > admission.NOISE, counters


def test_frames_on_probation_that_take_no_step_cost_no_look_at_the_pools(monkeypatch):
    """The pools were judged after every frame on probation: ':>' over and over, two bytes a frame, made a look
    at every connection held per two bytes, and 110 KB/s held up the server's loop."""
    looks = []
    pool = admission.pool
    monkeypatch.setattr(admission, 'pool', lambda engine: looks.append(1) or pool(engine))

    async def main():
        server = await aio.serve('127.0.0.1', 0, echo, secret=SECRET)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection('127.0.0.1', port)
        writer.write(NAME + b':>' * 20000)
        await writer.drain()
        await asyncio.sleep(0.3)
        writer.close()
        server.close()
    asyncio.run(asyncio.wait_for(main(), 60))
    assert len(looks) < 50, len(looks)


def test_connections_that_leave_the_fresh_pool_without_a_step_still_count_against_the_cap():
    """40 connections 20 ms apart, each giving only its name: no 16 come within one PATIENCE_MS, so the fresh
    pool never overflows, and those past it are held to max_unproven by the next connect."""
    async def main():
        server = await aio.serve('127.0.0.1', 0, echo, secret=SECRET)
        port = server.sockets[0].getsockname()[1]
        socks = []
        for _ in range(40):
            socks.append(socket.create_connection(('127.0.0.1', port)))
            socks[-1].sendall(NAME)
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.05)
        try:
            assert open_sockets(socks) <= 2 * 16   # aio.MAX_UNPROVEN in each pool
        finally:
            for sock in socks:
                sock.close()
            server.close()
    asyncio.run(asyncio.wait_for(main(), 60))


def test_a_flood_of_connects_to_the_asyncio_server_logs_within_one_budget(caplog):
    """Each connection had a budget of event lines of its own: a flood of connects that say nothing, each
    dropped with a line, wrote 800 warnings a second."""
    from sp_common.logtext import LINES_A_SECOND
    caplog.set_level(logging.WARNING)

    async def main():
        server = await aio.serve('127.0.0.1', 0, echo, secret=SECRET)
        port = server.sockets[0].getsockname()[1]

        end = time.monotonic() + 1
        try:
            await asyncio.get_running_loop().run_in_executor(None, silent_connects, port,
                                                             lambda: time.monotonic() > end, 200, 0.001)
            await asyncio.sleep(0.2)
        finally:
            server.close()
    asyncio.run(asyncio.wait_for(main(), 60))
    dropped = [r for r in caplog.records if 'dropping a peer' in r.getMessage()]
    assert 1 <= len(dropped) <= 3 * LINES_A_SECOND, len(dropped)


def open_sockets(socks):
    """How many of socks the server has not closed (what it answered before it closed one is read first)."""
    count = 0
    for sock in socks:
        try:
            while sock.recv(65536, socket.MSG_DONTWAIT):
                pass
        except BlockingIOError:
            count += 1
        except OSError:
            pass
    return count


@pytest.mark.parametrize('secret', [None, SECRET])
def test_many_connections_to_the_asyncio_server_are_capped_in_number_and_memory(secret):
    """200 connections, each sending most of a 64 KiB frame: the server keeps MAX_UNPROVEN of them (without a
    secret, the one frame that proves a peer never comes), each taking no more than PROBATION_FRAME of it, and
    a genuine client is served."""
    async def main():
        tracemalloc.start()
        try:
            server = await aio.serve('127.0.0.1', 0, echo, secret=secret)
            port = server.sockets[0].getsockname()[1]
            loop = asyncio.get_running_loop()
            base = tracemalloc.get_traced_memory()[0]
            socks = []
            for _ in range(200):
                socks.append(connect_nowait(port))
            await asyncio.sleep(0.2)
            for sock in socks:
                try:
                    sock.send(b':<' + b'x' * 60000)   # a frame that never ends
                except OSError:
                    pass
            await asyncio.sleep(1)
            gc.collect()
            used = tracemalloc.get_traced_memory()[0] - base
            held = open_sockets(socks)
            assert held <= 16   # aio.MAX_UNPROVEN
            assert used < 2 * 1024 * 1024, used   # 200 x 64 KiB deframers took 13 MB
            took = await loop.run_in_executor(None, served_in, port, secret)
            assert took < 2
            for sock in socks:
                sock.close()
            server.close()
        finally:
            tracemalloc.stop()
    asyncio.run(asyncio.wait_for(main(), 60))
