"""Session v2 on a faulty link (docs/session-v2.md, Broken frames), in-process through two engines and over real TCP through a
proxy: no answer reaches the wrong request, every loss is a None, and the receiving side's counters
account for every frame that did not reach dispatch."""
import random

import pytest

import sp_common as sp
import sp_cpython
from conformance.link import Link
from proxy import DOWN, UP, Proxy
from sp_common import Deframer, frame, pure_json, struct_json
from conftest import wait_until
from test_host import serve_demo

SECRET = 'b7f1c0de9a'
BYTE_FAULTS = ('flip', 'drop', 'insert', 'repeat')
UNHEEDED = ('stale', 'unsolicited', 'out_of_turn', 'unknown', 'auth_rejected')
ERRORS = ('crc_errors', 'format_errors', 'mac_errors', 'framing_errors', 'oversized', 'downgrade')


class Direction:
    """One direction of the faulty link and its books: what it delivered intact, late or damaged.

    seq: the sender numbers its v2 frames 1, 2, 3, ... in the order they leave it,
    so the link knows each frame's seq without decoding it; fresh is what the
    receiver must accept (a seq above every seq it accepted before).
    """

    def __init__(self, rng, rate, seq):
        self.rng = rng
        self.rate = rate
        self.seq = seq          # of the last frame taken from the sender
        self.top = seq          # the highest seq delivered intact
        self.held = []          # (seq, frame) kept back for a later round
        self.books = dict(fresh=0, old=0, damaged=0, lost=0, held=0, damaged_seqs=set())

    def carry(self, data, hold=False):
        """The faulty version of data (a sender's outbox), as a list of (seq or None if damaged, bytes)."""
        out = []
        late = self.held
        self.held = []
        for body in Deframer(1 << 16).feed(data):
            self.seq += 1
            whole = frame(body)
            fault = self.rng.random() < self.rate and self.rng.choice(
                BYTE_FAULTS + ('lose', 'twice') + (('hold',) * 2 if hold else ()))
            if fault in BYTE_FAULTS:
                out.append((None, self.damage(whole, fault)))
                self.books['damaged_seqs'].add(self.seq)
            elif fault == 'lose':
                self.books['lost'] += 1
            elif fault == 'hold':
                self.held.append((self.seq, whole))
                self.books['held'] += 1
            else:
                out += [(self.seq, whole)] * (2 if fault == 'twice' else 1)
        # what was held back comes now: before the newer frames (stale) or after them (replayed)
        return late + out if self.rng.random() < 0.5 else out + late

    def damage(self, whole, fault):
        """One byte changed inside the frame, never in its opening ':<': the receiver sees that a frame
        began and was broken (a byte inserted after the closing ':>' would leave the frame intact)."""
        at = self.rng.randrange(2, len(whole) - (fault == 'insert'))
        byte = self.rng.choice(b':<>=') if self.rng.random() < 0.3 else self.rng.randrange(256)
        if fault == 'flip':
            return whole[:at] + bytes([byte if byte != whole[at] else byte ^ 0xFF]) + whole[at + 1:]
        if fault == 'drop':
            return whole[:at] + whole[at + 1:]
        if fault == 'insert':
            return whole[:at] + bytes([byte]) + whole[at:]
        return whole[:at] + whole[at - 1:]   # repeat: one byte twice

    def deliver(self, pieces, engine):
        """Feeds the pieces to engine in random chunks, and books each frame as fresh, old or damaged."""
        for seq, data in pieces:
            if seq is None:
                self.books['damaged'] += 1
            elif seq > self.top:
                self.top = seq
                self.books['fresh'] += 1
            else:
                self.books['old'] += 1
        stream = b''.join(data for _, data in pieces)
        at = 0
        while at < len(stream):
            step = self.rng.randint(1, 200)
            engine.feed(stream[at:at + step])
            at += step


def settled_pair(codec, secret):
    """Client and server in session v2, trusted with a secret: the faults start once the handshake is over."""
    link = Link(codec, session_v2=True, client={'secret': secret, 'auto_auth': True}, server={'secret': secret})
    link.connect()
    assert link.client.session == link.server.session == 2
    assert link.client.is_trusted() == link.server.is_trusted() == (secret is not None)
    return link


@pytest.mark.parametrize('codec', [pure_json, struct_json])
@pytest.mark.parametrize('secret', [None, SECRET])
def test_twenty_thousand_requests_on_a_faulty_link(codec, secret, requests=5000, rate=0.04):
    link = settled_pair(codec, secret)
    client, server = link.client, link.server
    echoed = []
    server.register_callback(sp.SID_EXECUTE_REQUEST, 0, lambda msg: echoed.append(1) or (sp.STATUS_OKAY, msg.get_data()))
    rng = random.Random('%s %s' % (codec.name, secret))
    up = Direction(rng, rate, client.tx_seq)
    down = Direction(rng, rate, server.tx_seq)
    before = {'client': dict(client.counters), 'server': dict(server.counters)}
    answered = lost = refused = 0
    given_up = []
    sent = 0
    while sent < requests:
        calls = {}
        for _ in range(min(rng.randint(1, 4), requests - sent)):
            sent += 1
            payload = 'req:%d:%s' % (sent, 'x' * rng.randrange(40))   # unique, and its ':' are escaped on the wire
            calls[client.send_msg(sp.SID_EXECUTE_REQUEST, 0, payload, call=True)] = payload
        if sent == requests:   # a clean last round: it brings what was held back and leaves no frame half-read
            up.rate = down.rate = 0
        up.deliver(up.carry(client.data_to_send()), server)
        down.deliver(down.carry(server.data_to_send(), hold=True), client)
        link.clock.now += 2000   # the callers' timeout passes: what has not come is lost
        for token, payload in calls.items():
            reply = client.take_reply(token)
            if reply is None:
                lost += 1
                given_up.append(token)
                client.forget(token)
            elif reply.get_status() == sp.STATUS_CHECKSUM_ERROR:
                refused += 1   # the server got this very request broken (asserted below)
                assert token - client.token_base in up.books['damaged_seqs']
            else:
                assert (reply.get_status(), reply.get_data()) == (sp.STATUS_OKAY, payload)
                answered += 1
    assert all(client.take_reply(token) is None for token in given_up)
    assert answered + refused + lost == requests and answered > 0.8 * requests
    assert (up.seq, down.seq) == (client.tx_seq, server.tx_seq)   # the link saw every frame sent

    delta = {side: {name: engine.counters[name] - before[side][name] for name in sp.COUNTERS}
             for side, engine in (('client', client), ('server', server))}
    for side, books in (('server', up.books), ('client', down.books)):
        counted = delta[side]
        # a frame delivered intact is dispatched if its seq is new, else dropped as replayed: exactly
        assert counted['rx_messages'] == books['fresh']
        assert counted['replayed'] == books['old']
        # one changed byte, never in ':<': the frame is cut out and fails its CRC (or MAC), or its
        # framing breaks; at most twice, when that byte starts a frame of its own (':<' inside, or
        # the end ':>' turned into ':<' which the next frame's ':<' then breaks again)
        errors = sum(counted[name] for name in ERRORS)
        assert books['damaged'] <= errors <= 2 * books['damaged']
    # every frame dispatched served its purpose (a request ran the echo, a response went to its
    # caller) or was dropped and counted: an answer to a caller that gave up (stale), a checksum
    # error reply to a request whose seq (unsolicited) or service (out_of_turn) did not survive
    for side, served in (('server', len(echoed)), ('client', answered + refused)):
        assert served + sum(delta[side][name] for name in UNHEEDED) == delta[side]['rx_messages']


def test_a_faulty_proxy_between_two_host_sides():
    """The same faults at a lower rate on a real TCP path, with real timeouts: the link keeps working."""
    server = sp_cpython.pure_json_protocol(sp_cpython.tcp_server_stp('127.0.0.1', 0), secret=SECRET)
    calls = serve_demo(server)
    proxy = Proxy(server.__comm_inst__.port)
    client = sp_cpython.pure_json_protocol(sp_cpython.tcp_client_stp('127.0.0.1', proxy.port), secret=SECRET,
                                           auto_auth=True)
    try:
        assert wait_until(client.connection_established) and client.session == 2 and client.macs
        for direction, seed in ((UP, 1), (DOWN, 2)):
            faults = Direction(random.Random(seed), 0.02, 0)
            proxy.hooks[direction] = lambda body, faults=faults, hold=direction == DOWN: b''.join(
                data for _, data in faults.carry(frame(body), hold))
        answered = 0
        for n in range(300):
            reply = client.request(sp.SID_EXECUTE_REQUEST, 0, 'req:%d' % n, timeout=0.25)
            if reply is not None and reply.get_status() != sp.STATUS_CHECKSUM_ERROR:
                assert (reply.get_status(), reply.get_data()) == (sp.STATUS_OKAY, 'req:%d' % n)
                answered += 1
        assert answered > 250
        assert set(calls) <= {'req:%d' % n for n in range(300)}
        assert client.is_connected() and proxy.connections == 1
        dropped = sum(client.counters[name] + server.counters[name] for name in ERRORS + ('replayed', 'stale'))
        assert dropped > 0   # the faults did reach the engines
    finally:
        client.close()
        server.close()
        proxy.close()
