"""Session v2 between two host sides over real links (docs/session-v2.md): concurrent callers, a man in the
middle who does not know the secret, and every pairing of v2, original and 'required' peers."""
import binascii
import threading

import pytest

import sp_cpython as sp
from proxy import DOWN, UP, Proxy, through
from sp_common import frame, pure_json
from conftest import wait_until
from test_host import SECRET, link, serve_demo  # noqa: F401 (link: the fixture)

CODECS = [sp.pure_json_protocol, sp.struct_json_protocol]


def data_of(msg):
    return None if msg is None else msg.get_data()


@pytest.mark.parametrize('session_v2', [True, False])
def test_eight_threads_request_on_the_same_ids(link, session_v2):  # noqa: F811
    """Every caller gets its own answer: by seq in v2; on the original wire, where a peer answers in
    order, by taking the oldest answer due on the ids."""
    server, client = link.make(session_v2=session_v2)
    results = {}
    start = threading.Barrier(8)

    def caller(n):
        start.wait()
        results[n] = [data_of(client.request(sp.SID_EXECUTE_REQUEST, 0, [n, i], timeout=10)) for i in range(25)]
    threads = [threading.Thread(target=caller, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == {n: [[n, i] for i in range(25)] for n in range(8)}
    assert client.session == server.session == (2 if session_v2 else 1)


class Middle:
    """A server and a client with the same secret (authenticating at once) talking through a proxy."""

    def __init__(self, cls=sp.pure_json_protocol, secret=SECRET, client_v2=True, server_v2=True):
        self.server = cls(sp.tcp_server_stp('127.0.0.1', 0), secret=secret, session_v2=server_v2)
        self.calls = serve_demo(self.server)
        self.proxy = Proxy(self.server.__comm_inst__.port)
        self.client = cls(sp.tcp_client_stp('127.0.0.1', self.proxy.port), secret=secret,
                          auto_auth=secret is not None, session_v2=client_v2)

    def close(self):
        self.client.close()
        self.server.close()
        self.proxy.close()


@pytest.fixture
def middle():
    middle = Middle()
    yield middle
    middle.close()


def with_crc(text):
    return text + binascii.crc32(text).to_bytes(4, 'big')


def test_a_man_in_the_middle_without_the_secret(middle):
    """Replayed, reflected, modified and injected frames are all dropped and counted; no caller gets a forged answer."""
    server, client, proxy = middle.server, middle.client, middle.proxy
    assert wait_until(client.connection_established) and client.macs and server.macs
    assert data_of(client.request(sp.SID_EXECUTE_REQUEST, 0, 'genuine')) == 'genuine'
    request, answer = proxy.seen[UP][-1], proxy.seen[DOWN][-1]

    proxy.inject(UP, frame(request))          # replayed
    proxy.inject(DOWN, frame(answer))
    assert wait_until(lambda: server.counters['replayed'] == client.counters['replayed'] == 1)
    proxy.inject(DOWN, frame(request))        # reflected to their senders
    proxy.inject(UP, frame(answer))
    assert wait_until(lambda: server.counters['mac_errors'] == client.counters['mac_errors'] == 1)

    proxy.hooks[DOWN] = lambda body: frame(with_crc(body[:-4].replace(b'second', b'SECOND')))   # modified
    assert client.request(sp.SID_EXECUTE_REQUEST, 0, 'second', timeout=0.5) is None
    assert wait_until(lambda: client.counters['mac_errors'] == 2)

    proxy.hooks[DOWN] = lambda body: b''      # the genuine answer withheld, forged ones instead
    result = {}
    caller = threading.Thread(target=lambda: result.update(
        third=client.request(sp.SID_EXECUTE_REQUEST, 0, 'third', timeout=1)))
    caller.start()
    assert wait_until(lambda: middle.calls[-1:] == ['third'])
    seq = pure_json.decode(proxy.seen[UP][-1])[4]
    v2 = pure_json.encode(31, 0, 0, 'forged', 10 ** 6, seq)[:-4]
    for text in (v2, v2[:-1] + b', "mac": "0123456789abcdef"}', pure_json.encode(31, 0, 0, 'forged')[:-4]):
        proxy.inject(DOWN, frame(with_crc(text)))    # no MAC, a made-up MAC, an original frame
    caller.join(5)
    assert result == {'third': None}
    assert wait_until(lambda: client.counters['mac_errors'] == 4 and client.counters['downgrade'] == 1)

    proxy.inject(UP, frame(pure_json.encode(30, 0, 0, 'injected', 10 ** 6, 0)))   # requests nobody sent
    proxy.inject(UP, frame(pure_json.encode(30, 0, 0, 'injected')))
    assert wait_until(lambda: server.counters['mac_errors'] == 2 and server.counters['downgrade'] == 1)
    proxy.inject(UP, frame(pure_json.encode(8, 0, 0, 'intruder')))   # a channel name: TCP has connects of its own
    assert wait_until(lambda: server.counters['out_of_turn'] == 1)
    assert server.session == 2 and server.check_authentification_state()
    proxy.hooks[DOWN] = through
    assert data_of(client.request(sp.SID_EXECUTE_REQUEST, 0, 'after')) == 'after'   # the link still works
    assert middle.calls == ['genuine', 'second', 'third', 'after']
    assert server.counters['replayed'] == client.counters['replayed'] == 1
    assert proxy.connections == 1


def broken_frames_around(codec, body):
    """A blind injector's traffic around one genuine frame: frames with wrong CRCs naming the seqs that
    frame and the next few may have (its own seq, read off the wire, is no secret), then the frame."""
    try:
        seq = codec.decode(body)[4] or 0
    except ValueError:   # a v2 frame with a MAC: its seq as an original decoder would read it, or a guess
        seq = 0
    out = []
    for n in range(seq, seq + 8):
        for sid in (sp.SID_EXECUTE_REQUEST, sp.SID_EXECUTE_RESPONSE):
            broken = bytearray(codec.encode(sid, 0, 0, 'injected', max(n, 1), max(n - 1, 0)))
            broken[-1] ^= 0xFF
            out.append(frame(bytes(broken)))
    return b''.join(out) + frame(body)


@pytest.mark.parametrize('cls', CODECS)
def test_broken_frames_injected_between_genuine_ones_cut_off_nothing(cls):
    """Hundreds of frames with wrong CRCs and plausible seqs, both ways, between the frames of a session with
    MACs: none is answered or spends a seq, and every genuine request is answered."""
    server = cls(sp.tcp_server_stp('127.0.0.1', 0), secret=SECRET)
    calls = serve_demo(server)
    proxy = Proxy(server.__comm_inst__.port)
    proxy.hooks = {direction: lambda body: broken_frames_around(cls.CODEC, body) for direction in (UP, DOWN)}
    client = cls(sp.tcp_client_stp('127.0.0.1', proxy.port), secret=SECRET, auto_auth=True)
    try:
        answers = [data_of(client.request(sp.SID_EXECUTE_REQUEST, 0, n, timeout=5)) for n in range(30)]
        assert answers == list(range(30)) and calls == answers
        assert client.macs and server.macs and server.check_authentification_state()
        injected = server.counters['crc_errors'] + client.counters['crc_errors']
        assert injected >= 2 * 34 * 16
        assert server.counters['replayed'] == client.counters['replayed'] == 0
        assert proxy.connections == 1
    finally:
        client.close()
        server.close()
        proxy.close()


def session_refused(codec):
    """A proxy hook that turns the server's session answer into the answer of a side that knows no v2."""
    def hook(body):
        try:
            msg = codec.decode(body)
        except ValueError:   # a v2 frame
            return frame(body)
        if (msg[0], msg[1]) != (sp.SID_SESSION_RESPONSE, 0):
            return frame(body)
        return frame(codec.encode(sp.SID_SESSION_RESPONSE, 0, sp.STATUS_SERVICE_OR_DATA_UNKNOWN, None))
    return hook


@pytest.mark.parametrize('cls', CODECS)
@pytest.mark.parametrize('client_v2, secret', [(True, None), (True, SECRET), ('required', SECRET)])
def test_a_stripped_session_answer_means_the_original_wire_only_without_macs(cls, client_v2, secret):
    """A default client falls back to the original wire. Without secrets the server, hearing an original frame
    before any v2 one, follows it: what a man in the middle gains by stripping the answer is the original wire,
    which is why 'required' exists. With a secret on both sides the server had agreed on MACs, and a frame
    without them moves no such session (sp_common.stray.original): the connection is refused, and again after
    each reconnect, as with 'required'."""
    middle = Middle(cls, secret, client_v2=client_v2)
    middle.proxy.hooks[DOWN] = session_refused(cls.CODEC)
    server, client = middle.server, middle.client
    try:
        if secret is not None:
            assert wait_until(lambda: middle.proxy.connections >= 2)   # dropped, and dropped again
            assert client.request(sp.SID_EXECUTE_REQUEST, 0, 'x', timeout=0.5) is None
            assert middle.calls == []
        else:
            assert data_of(client.request(sp.SID_EXECUTE_REQUEST, 0, 'x', timeout=5)) == 'x'
            assert client.session == 1 and server.session == 1 and not client.macs and not server.macs
    finally:
        middle.close()


PAIRINGS = [(True, True, 2), (True, False, 1), (False, True, 1), ('required', False, None), (False, 'required', None)]


@pytest.mark.parametrize('cls', CODECS)
@pytest.mark.parametrize('secret', [None, SECRET])
@pytest.mark.parametrize('client_v2, server_v2, wire', PAIRINGS)
def test_every_pairing_of_v2_and_original_sides(cls, secret, client_v2, server_v2, wire):
    """v2 where both sides speak it, the original wire where one does not, no connection for 'required'."""
    middle = Middle(cls, secret, client_v2, server_v2)
    server, client = middle.server, middle.client
    try:
        if wire is None:
            assert client.request(sp.SID_EXECUTE_REQUEST, 0, 'refused', timeout=0.5) is None
            assert wait_until(lambda: middle.proxy.connections >= 2)   # the 'required' side hung up
            assert (client if client_v2 == 'required' else server).session is None
            assert middle.calls == []
            return
        assert data_of(client.request(sp.SID_EXECUTE_REQUEST, 0, 'hello', timeout=5)) == 'hello'
        assert client.session == server.session == wire
        assert client.macs == server.macs == (wire == 2 and secret is not None)
        assert client.check_authentification_state() == server.check_authentification_state() == (secret is not None)
        assert middle.proxy.connections == 1
    finally:
        middle.close()
