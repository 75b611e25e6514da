"""Session v2 (docs/session-v2.md): negotiation, seq/re, MACs and what a man in the middle can no longer do."""
from link import Link

import sp_common as sp
from sp_common import Engine, pure_json, struct_json
from sp_common.auth import hmac_sha256_hex

SECRET = 'a1b2c3'


def counting(n):
    """random_bytes giving n, n+1, ... in every byte: fixed nonces and seeds for exact frames."""
    state = [n]

    def random_bytes(size):
        state[0] += 1
        return bytes([state[0] & 0xFF]) * size
    return random_bytes


def pair(codec=pure_json, client_v2=True, server_v2=True, secret=None, server_secret=None, auto=False):
    link = Link(codec, client={'session_v2': client_v2, 'secret': secret, 'auto_auth': auto, 'random_bytes': counting(0)},
                server={'session_v2': server_v2, 'secret': server_secret if server_secret is not None else secret,
                        'random_bytes': counting(100)})
    link.connect()
    link.server.register_callback(None, None, lambda msg: (0, msg.get_data()))
    return link


def call(link, did, data):
    """A request() call through the engines: its token, then its answer once the link is pumped."""
    token = link.client.send_msg(sp.SID_EXECUTE_REQUEST, did, data, call=True)
    link.pump()
    return link.client.take_reply(token)


def test_v2_between_two_sides_of_this_project():
    for codec in (pure_json, struct_json):
        for secret in (None, SECRET):
            link = pair(codec, secret=secret, auto=True)
            assert (link.client.session, link.server.session) == (2, 2)
            assert (link.client.rx_mac is not None) == (secret is not None)
            assert link.client.is_trusted() == link.server.is_trusted() == (secret is not None)
            assert call(link, 0, 'hello').get_data() == 'hello'
            assert link.server.counters['mac_errors'] == link.client.counters['mac_errors'] == 0


def test_original_wire_with_an_original_peer_either_way():
    for codec in (pure_json, struct_json):
        for secret in (None, SECRET):
            for client_v2, server_v2 in ((True, False), (False, True), (False, False)):
                link = pair(codec, client_v2, server_v2, secret, auto=True)
                assert link.client.session == 1 and link.client.is_trusted() == (secret is not None)
                link.client.send_msg(sp.SID_READ_REQUEST, 0, None)
                # the golden frame of docs/protocol.md, byte for byte, once the wire is the original one
                if codec is pure_json:
                    assert link.client.data_to_send() == sp.frame(
                        b'{"data_id": 0, "service_id": 10, "status": 0, "data": null}\x45\x05\x7b\xb4')
                else:
                    link.client.data_to_send()
                assert call(link, 1, [1, 'x']).get_data() == [1, 'x']
                assert link.server.session == 1


def test_an_original_client_sends_exactly_the_original_bytes():
    eng = Engine(True, channel_name='example_client', session_v2=False, max_frame=8192)
    eng.connection_made()
    assert eng.data_to_send() == sp.frame(
        b'{"data_id": 0, "service_id": 8, "status": 0, "data": "example_client"}\xf5\xcd\xdd\xe7')


def test_required_refuses_the_original_wire():
    for client_v2, server_v2 in (('required', False), (False, 'required')):
        link = pair(client_v2=client_v2, server_v2=server_v2)
        refusing = link.client if client_v2 == 'required' else link.server
        link.client.send_msg(sp.SID_EXECUTE_REQUEST, 0, 'x')
        link.pump()
        assert refusing.wire == 'refused' and not refusing.ready()
        assert link.client.pop_received(31, 0) is None


def test_a_refusal_on_a_line_without_connects_lasts_until_the_next_programs_name():
    """A serial line is never reconnected: one stray original frame, or an offer lost to noise, must not
    refuse every later client for good."""
    for stray in ('original frame', 'lost offer'):
        link = Link(session_v2='required')
        link.server.register_callback(None, None, lambda msg: (0, msg.get_data()))
        link.server.connection_made()
        if stray == 'original frame':
            link.server.feed(sp.frame(pure_json.encode(sp.SID_EXECUTE_REQUEST, 0, 0, 'stray')))
        else:
            link.client.connection_made()
            name = sp.Deframer(8192).feed(link.client.data_to_send())[0]    # its offer is lost
            link.server.feed(sp.frame(name))
            link.clock.now += 3000
            link.server.tick()
        link.server.data_to_send()
        assert link.server.wire == 'refused', stray
        link.server.feed(sp.frame(pure_json.encode(sp.SID_EXECUTE_REQUEST, 0, 0, 'refused')))
        assert link.server.data_to_send() == b'', stray    # no answer, no callback while refused
        assert link.server.counters['refused_frames'] == 1, stray   # but counted
        link.client.connection_made()      # the next program: its name starts over
        link.pump()
        assert link.server.wire != 'refused' and link.server.session == 2, stray
        assert call(link, 0, 'served').get_data() == 'served', stray


def test_an_unanswered_offer_settles_on_the_original_wire_after_a_while():
    link = Link(session_v2=True)
    link.client.connection_made()
    link.server.connection_made()
    link.server.register_callback(None, None, lambda msg: (0, msg.get_data()))
    link.server.feed(link.client.data_to_send())
    late = link.server.data_to_send()    # a slow board's answer, still on its way
    assert link.client.session is None and not link.client.ready() and link.client.deadline_ms() == 3000
    link.clock.now += 2999
    link.client.tick()
    assert link.client.session is None
    link.clock.now += 1
    link.client.tick()
    assert link.client.session == 1 and link.client.ready()
    link.client.feed(late)      # too late: the client has settled, and its next frame tells the server
    assert link.client.session == 1 and link.client.counters['out_of_turn'] == 1
    assert call(link, 0, 'x').get_data() == 'x'
    assert link.server.session == 1


def session_answer_lost(codec=pure_json, server_v2=True):
    """A link whose client offered v2 and never heard the answer: it has settled on the original wire."""
    link = Link(codec, session_v2=True, server={'session_v2': server_v2})
    link.client.connection_made()
    link.server.connection_made()
    link.server.register_callback(None, None, lambda msg: (0, msg.get_data()))
    link.server.feed(link.client.data_to_send())
    link.server.data_to_send()             # the answer, lost on a noisy line
    link.clock.now += 3000
    link.client.tick()
    return link


def test_a_lost_session_answer_leaves_both_sides_on_the_original_wire():
    for server_v2 in (True, 'required'):
        link = session_answer_lost(server_v2=server_v2)
        answer = call(link, 0, 'after the loss')
        if server_v2 == 'required':    # no original wire with a side that requires v2: the connection is refused
            assert answer is None and link.server.counters['downgrade'] == 1
            assert link.server.wire == 'refused' and not link.server.ready()
        else:
            assert answer.get_data() == 'after the loss' and link.server.session == 1


def test_a_server_follows_an_original_frame_whose_data_would_read_as_a_v2_header():
    """struct_json keeps a v2 frame's seq and re where an original frame's data begins: after a lost session
    answer, the client's original frame of a long number reads as a v2 frame too (its first digits as seq and
    re); a session's first frame has seq 1, so the server takes it for the original frame it is."""
    for codec in (pure_json, struct_json):
        link = session_answer_lost(codec)
        assert call(link, 0, 12345678901).get_data() == 12345678901
        assert link.server.session == 1


def test_golden_v2_frames():
    link = pair(secret=SECRET)
    assert link.client.nonces == '01' * 32 + '65' * 32
    link.client.send_msg(sp.SID_READ_REQUEST, 0, None)
    assert link.client.data_to_send() == GOLDEN_V2_PURE
    link = pair(struct_json, secret=SECRET)
    link.client.send_msg(sp.SID_READ_REQUEST, 0, None)
    assert link.client.data_to_send() == GOLDEN_V2_STRUCT


def test_a_response_names_its_request_and_each_call_gets_its_own():
    link = pair(secret=SECRET, auto=True)
    tokens = [link.client.send_msg(sp.SID_EXECUTE_REQUEST, 0, n, call=True) for n in range(5)]
    link.server.feed(link.client.data_to_send())
    answers = sp.Deframer(8192).feed(link.server.data_to_send())
    del answers[1]    # lost on the way: that call alone goes without
    for body in answers:
        link.client.feed(sp.frame(body))
    assert [getattr(link.client.take_reply(t), 'get_data', lambda: None)() for t in tokens] == [0, None, 2, 3, 4]


def test_receive_gets_only_the_answer_to_the_newest_request():
    link = pair()
    link.client.send_msg(sp.SID_EXECUTE_REQUEST, 0, 'old')
    old = link.client.data_to_send()
    link.client.send_msg(sp.SID_EXECUTE_REQUEST, 0, 'new')
    new = link.client.data_to_send()
    link.server.feed(old + new)
    link.client.feed(link.server.data_to_send())
    assert link.client.pop_received(31, 0).get_data() == 'new'
    assert link.client.pop_received(31, 0) is None and link.client.counters['stale'] == 1


def test_a_late_answer_is_never_taken_for_a_newer_one():
    link = pair()
    slow = link.client.send_msg(sp.SID_EXECUTE_REQUEST, 0, 'slow', call=True)
    link.server.feed(link.client.data_to_send())
    late = link.server.data_to_send()
    link.client.forget(slow)      # the caller timed out
    token = link.client.send_msg(sp.SID_EXECUTE_REQUEST, 0, 'next', call=True)
    link.server.feed(link.client.data_to_send())
    link.client.feed(late + link.server.data_to_send())
    assert link.client.take_reply(token).get_data() == 'next'
    assert link.client.counters['stale'] == 1


def test_a_call_that_outlives_its_connection_never_gets_an_answer_of_the_next():
    for v2 in (False, True):
        link = pair(client_v2=v2, server_v2=v2)
        first = link.client.send_msg(sp.SID_EXECUTE_REQUEST, 0, 'first', call=True)
        link.client.data_to_send()   # the link breaks before the answer
        link.client.connection_lost()
        link.server.connection_lost()
        link.connect()
        second = link.client.send_msg(sp.SID_EXECUTE_REQUEST, 0, 'second', call=True)
        link.pump()
        assert second != first and link.client.take_reply(first) is None
        assert link.client.take_reply(second).get_data() == 'second'


def injected(link, to_client, frame_bytes):
    (link.client if to_client else link.server).feed(frame_bytes)


def test_a_man_in_the_middle_without_the_secret():
    link = pair(secret=SECRET, auto=True)
    client, server = link.client, link.server
    token = client.send_msg(sp.SID_EXECUTE_REQUEST, 0, 'genuine', call=True)
    request = client.data_to_send()
    server.feed(request)
    answer = server.data_to_send()
    client.feed(answer)
    assert client.take_reply(token).get_data() == 'genuine'
    server.feed(request)                     # replayed
    client.feed(answer)
    assert server.counters['replayed'] == 1 and client.counters['replayed'] == 1
    client.feed(request)                     # reflected back to its sender
    assert client.counters['mac_errors'] == 1
    forged = pure_json.encode(31, 0, 0, 'forged', 99, token, None)   # no MAC
    client.feed(sp.frame(forged))
    modified = bytearray(sp.Deframer(8192).feed(answer)[0])
    modified[modified.index(b'genuine')] = ord('G')
    client.feed(sp.frame(bytes(modified[:-4]), sp.codec._with_crc((bytes(modified[:-4]),))[1]))
    assert client.counters['mac_errors'] == 3
    client.feed(sp.frame(pure_json.encode(31, 0, 0, 'original frame')))   # a downgrade attempt
    server.feed(sp.frame(pure_json.encode(30, 0, 0, 'original frame')))
    assert client.counters['downgrade'] == 1 and server.counters['downgrade'] == 1
    assert server.data_to_send() == b'' and client.take_reply(token) is None


def test_a_fake_server_is_not_trusted():
    link = pair(secret=SECRET, server_secret='another secret', auto=True)
    assert link.server.counters['mac_errors'] > 0   # the client's frames bear MACs it cannot make
    assert not link.client.is_trusted()
    assert not link.server.is_trusted()


def stripped(frames):
    """A man in the middle's relay: the session offer and answer lose their mac flags, a failed key
    result becomes a success."""
    out = []
    for body in sp.Deframer(8192).feed(frames):
        msg = pure_json.decode(body)
        if msg[0] in (sp.SID_SESSION_REQUEST, sp.SID_SESSION_RESPONSE) and isinstance(msg[3], dict):
            msg[3]['mac'] = False
            body = pure_json.encode(msg[0], msg[1], msg[2], msg[3])
        elif msg[:2] == (sp.SID_AUTH_RESPONSE, sp.DID_AUTH_KEY):
            body = pure_json.encode(msg[0], msg[1], sp.STATUS_OKAY, True, msg[4], msg[5], None)
        out.append(sp.frame(body))
    return b''.join(out)


def test_a_session_stripped_of_its_macs_trusts_no_one():
    """Both sides know the secret, but the man in the middle took the MACs off their session: were either
    side to trust, he could write into a trusted connection."""
    link = Link(client={'session_v2': True, 'secret': SECRET, 'auto_auth': True},
                server={'session_v2': True, 'secret': SECRET})
    link.server.connection_made()
    link.client.connection_made()
    for _ in range(10):
        link.server.feed(stripped(link.client.data_to_send()))
        link.client.feed(stripped(link.server.data_to_send()))
    assert (link.client.session, link.server.session) == (2, 2)
    assert link.client.rx_mac is None and link.server.rx_mac is None   # the MACs are off
    assert link.server.counters['wrong_keys'] == 1   # the right key, refused
    assert not link.client.is_trusted()              # a forged key result, not believed
    assert not link.server.is_trusted()


def test_the_key_signs_both_nonces_in_v2():
    link = pair(secret=SECRET)
    link.client.start_auth()
    link.server.feed(link.client.data_to_send())
    seed = link.server.seed
    link.client.feed(link.server.data_to_send())
    key = sp.Deframer(8192).feed(link.client.data_to_send())[0]
    assert hmac_sha256_hex(SECRET, seed + link.client.nonces).encode() in key
    assert hmac_sha256_hex(SECRET, seed).encode() not in key


def test_a_new_program_on_a_serial_line_starts_over():
    link = pair(secret=SECRET, auto=True)
    assert link.server.is_trusted() and link.server.session == 2
    link.server.feed(sp.frame(pure_json.encode(8, 0, 0, 'next program')))   # original frame: allowed
    assert not link.server.is_trusted() and link.server.session is None


def test_on_a_link_with_connects_a_slipped_in_channel_name_ends_nothing():
    link = pair(secret=SECRET, auto=True)
    link.server.connects = True   # TCP: each connection starts with its own channel name, once
    link.server.feed(sp.frame(pure_json.encode(8, 0, 0, 'intruder')))
    assert link.server.is_trusted() and link.server.session == 2 and link.server.channel_name is None
    assert link.server.counters['out_of_turn'] == 1 and link.server.data_to_send() == b''
    assert call(link, 0, 'still here').get_data() == 'still here'
    link.server.connection_lost()   # the next connection's name starts it over
    link.client.connection_lost()
    link.connect()
    assert link.server.session == 2 and link.server.is_trusted()
    old = Link(server={'secret': SECRET}, client={'secret': SECRET})   # a client that never gives its name
    old.server.connects = True
    old.server.connection_made()
    old.client.start_auth()
    old.pump()
    old.server.feed(sp.frame(pure_json.encode(8, 0, 0, 'intruder')))   # not the connection's first frame
    assert old.server.is_trusted() and old.server.counters['out_of_turn'] == 1


# Computed with CPython's hmac module, apart from this project's code: secret 'a1b2c3',
# client nonce '01' * 32, server nonce '65' * 32, the client's first frame (read 0).
GOLDEN_V2_PURE = (b':<{"data_id":= 0, "service_id":= 10, "status":= 0, "data":= null, "seq":= 1, "re":= 0, '
                  b'"mac":= "febc2912ac24c96d"}\x16_\xb9\x90:>')
GOLDEN_V2_STRUCT = b':<\x00\n\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00null\xc9\\B\x99\xb6\x1bw\x13\x89u u:>'


def broken(codec, sid, seq, mac):
    """A v2 frame of sid/0 naming seq, with a wrong CRC."""
    body = bytearray(codec.encode(sid, 0, 0, None, seq, 0, mac))
    body[-1] ^= 0xFF
    return sp.frame(bytes(body))


def test_a_request_that_arrives_broken_is_answered_with_its_seq_without_macs():
    for codec in (pure_json, struct_json):
        link = pair(codec, auto=True)
        token = link.client.send_msg(sp.SID_WRITE_REQUEST, 1, 12345, call=True)
        wire = bytearray(link.client.data_to_send())
        wire[-4] ^= 0xFF   # inside the CRC
        link.server.feed(wire)
        link.client.feed(link.server.data_to_send())
        assert link.client.take_reply(token).get_status() == sp.STATUS_CHECKSUM_ERROR


def test_a_forged_broken_frame_cannot_make_a_request_that_runs_fail_without_macs():
    """Without MACs anyone who can write into the stream can send a frame with a bad CRC naming the next seq:
    the caller is told "checksum error", and the server, having spent that seq, never runs the genuine request."""
    for codec in (pure_json, struct_json):
        link = pair(codec, auto=True)
        calls = []
        link.server.register_callback(sp.SID_WRITE_REQUEST, 0, lambda msg: (calls.append(msg), (0, 'written'))[1])
        token = link.client.send_msg(sp.SID_WRITE_REQUEST, 0, 'x', call=True)
        genuine = link.client.data_to_send()
        seq = link.client.tx_seq
        for forged_seq in (seq + 1, seq):   # a seq further on is not answered; the next one is, and spent
            link.server.feed(broken(codec, sp.SID_WRITE_REQUEST, forged_seq, None))
        link.server.feed(genuine)
        link.client.feed(link.server.data_to_send())
        assert link.client.take_reply(token).get_status() == sp.STATUS_CHECKSUM_ERROR
        assert calls == [] and link.server.counters['replayed'] == 1 and link.server.counters['crc_errors'] == 2
        assert link.client.counters['stale'] == 0
        assert call(link, 1, 'next').get_data() == 'next'   # the session goes on


def state(engine):
    calls = engine.calls()
    return (engine.rx_seq, engine.tx_seq, engine.token_base, engine.session, engine.auth_state, engine.seed,
            engine.wrong_keys, engine.channel_name, engine.heard_at is not None, dict(calls.waiting), dict(calls.asked),
            len(calls.buffer), engine.counters['rx_messages'], engine.counters['tx_messages'])


INJECTED_SEQS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 31, 59)   # a handful past the seqs in use, the next ones, and beyond


def test_broken_frames_change_nothing_in_a_session_with_macs():
    """A blind injector sends frames with wrong CRCs naming seqs behind, next and far ahead: with MACs none
    is answered or spends a seq, and the genuine frames that follow are taken, both ways."""
    for codec in (pure_json, struct_json):
        link = pair(codec, secret=SECRET, auto=True)
        server, client = link.server, link.client
        assert call(link, 0, 'first').get_data() == 'first'
        token = client.send_msg(sp.SID_EXECUTE_REQUEST, 0, 'genuine', call=True)
        genuine = client.data_to_send()
        before = state(server), state(client)
        for seq in INJECTED_SEQS:
            for sid in (sp.SID_EXECUTE_REQUEST, sp.SID_AUTH_REQUEST, sp.SID_CHANNEL_NAME_REQUEST):
                server.feed(broken(codec, sid, seq, client.tx_mac))
                client.feed(broken(codec, sid, seq, server.tx_mac))
            client.feed(broken(codec, sp.SID_EXECUTE_RESPONSE, seq, server.tx_mac))
        assert (state(server), state(client)) == before
        assert server.data_to_send() == b'' and client.data_to_send() == b''
        n = len(INJECTED_SEQS)
        assert server.counters['crc_errors'] == client.counters['crc_errors'] - n == 3 * n
        server.feed(genuine)
        client.feed(server.data_to_send())
        assert client.take_reply(token).get_data() == 'genuine'
        assert call(link, 1, 'next').get_data() == 'next' and server.is_trusted() and client.is_trusted()
        assert server.counters['replayed'] == client.counters['replayed'] == 0


def test_a_broken_frame_gets_no_answer_while_the_wire_settles():
    """Answered, it would be the client's first words before its offer, or a frame it sends before the
    wire is settled: either side would take the answer for the other's choice of the original wire."""
    for codec in (pure_json, struct_json):
        link = Link(codec, session_v2=True, client={'secret': SECRET, 'auto_auth': True}, server={'secret': SECRET})
        link.server.connection_made()
        link.client.connection_made()
        offer = link.client.data_to_send()
        for engine in (link.server, link.client):
            body = bytearray(codec.encode(sp.SID_EXECUTE_REQUEST, 0, 0, 'injected'))
            body[-1] ^= 0xFF
            engine.feed(sp.frame(bytes(body)))
            assert engine.data_to_send() == b'' and engine.counters['crc_errors'] == 1
        link.server.feed(offer)
        link.pump()
        assert (link.client.session, link.server.session) == (2, 2) and link.server.is_trusted()


def test_an_original_frame_in_v2_is_a_downgrade_however_short():
    """The shortest original frame (a seed request) is too short for a v2 header with a MAC: still no checksum error."""
    for codec in (pure_json, struct_json):
        link = pair(codec, secret=SECRET, auto=True)
        link.server.feed(sp.frame(codec.encode(sp.SID_AUTH_REQUEST, 0, 0, None)))
        assert (link.server.counters['downgrade'], link.server.counters['crc_errors']) == (1, 0)



def test_a_client_takes_no_message_but_its_names_and_the_session_answer_while_its_wire_settles():
    """A frame slipped into a client before its session answer: the client ran its callback and answered on the
    original wire, and its v2 server, which had taken nothing yet, followed it there while the client went on to
    v2 (a dead connection), or with session_v2='required' refused it. It is dropped, out of turn."""
    for secret, server_v2 in ((None, True), (SECRET, True), (SECRET, 'required')):
        link = Link(pure_json, client={'session_v2': True, 'secret': secret, 'random_bytes': counting(0)},
                    server={'session_v2': server_v2, 'secret': secret, 'random_bytes': counting(100)})
        ran = []
        link.client.register_callback(sp.SID_EXECUTE_REQUEST, 1, lambda msg: ran.append(msg) or (0, 'answered'))
        link.client.connection_made()
        link.server.connection_made()
        link.server.feed(link.client.data_to_send())   # the client's name and offer
        link.client.feed(sp.frame(pure_json.encode(sp.SID_EXECUTE_REQUEST, 1, 0, 'slipped in')))
        assert link.client.wire == 'negotiating' and link.client.data_to_send() == b''
        assert ran == [] and link.client.counters['out_of_turn'] == 1
        link.pump()
        assert (link.client.wire, link.server.wire) == (('v2_macs', 'v2_macs') if secret else ('v2', 'v2'))


def test_an_offer_whose_nonce_is_not_64_hex_digits_gets_the_original_wire():
    """A nonce is 32 bytes in hex, nothing else: no '0x', sign, space, '_' or digits of other scripts, which a
    parse as a number would take."""
    good = '0123456789abcdefABCDEF' * 2 + '01234567890123456789'
    for nonce, v2 in ((good, True), ('0x' + good[2:], False), ('+' + good[1:], False), (' ' + good[1:], False),
                      (good[:31] + '_' + good[32:], False), ('\u0660' * 64, False), (good[:63] + 'g', False)):
        server = Engine(False, channel_name='server')
        server.connection_made()
        server.feed(sp.frame(*pure_json.pieces(sp.SID_SESSION_REQUEST, sp.DID_SESSION, 0,
                                               {'v': 2, 'nonce': nonce, 'mac': False})))
        assert server.session == (2 if v2 else 1), nonce
        assert (b'"nonce"' in server.data_to_send()) == v2   # its own nonce answers, or a refusal


def _answered_with_macs(connects):
    """Two sides with secrets whose session answer the client has heard; no v2 frame has gone yet."""
    link = Link(pure_json, session_v2=True, client={'secret': SECRET, 'random_bytes': counting(0)},
                server={'secret': SECRET, 'random_bytes': counting(100)})
    link.server.connects = connects
    link.client.connection_made()
    link.server.connection_made()
    link.server.feed(link.client.data_to_send())
    link.client.feed(link.server.data_to_send())
    assert link.client.wire == link.server.wire == 'v2_macs'
    return link


def test_an_original_frame_anyone_can_write_does_not_strand_a_session_with_macs():
    """Between the session answer and the client's first v2 frame, one original frame, which needs no secret,
    moved a server with MACs to the original wire: its genuine client, in v2, was dropped frame after frame. On
    a link with connects the server now refuses the connection instead (the client connects again, and one that
    did lose the answer offers v2 anew); on a serial line it follows, as a channel name there starts over anyway
    (docs/security.md)."""
    for connects in (True, False):
        link = _answered_with_macs(connects)
        link.server.feed(sp.frame(*pure_json.pieces(sp.SID_READ_REQUEST, 0, 0, None)))   # blind, unsigned
        assert link.server.wire == ('refused' if connects else 'original'), connects
        assert (link.server.data_to_send() == b'') == connects   # refused: not answered


def test_a_push_the_server_queues_after_its_answer_does_not_make_the_answer_seem_still_to_go():
    """The server told whether its answer had gone by whether its outbox was empty: a push it queued after the
    answer, still waiting or taken back by a send() that gave up, made one forged original frame look like a
    client that never heard the answer, and the server followed it."""
    for withdrawn in (False, True):
        link = _answered_with_macs(True)
        link.server.send_msg(sp.SID_EXECUTE_RESPONSE, 0, 'pushed')
        if withdrawn:
            link.server.withdraw(link.server.queued)
            assert link.server.queued is None and link.server.data_to_send() == b''
        link.server.feed(sp.frame(*pure_json.pieces(sp.SID_READ_REQUEST, 0, 0, None)))   # blind, unsigned
        assert link.server.wire == 'refused', withdrawn


def test_a_client_that_gave_up_on_the_answer_before_it_went_is_followed_with_macs_too():
    """A server slow to take a connection reads the client's offer and what the client said once it gave up
    waiting for the answer, at once: the answer had not gone, so that client cannot be in v2."""
    link = Link(pure_json, session_v2=True, client={'secret': SECRET, 'random_bytes': counting(0)},
                server={'secret': SECRET, 'random_bytes': counting(100)})
    link.server.connects = True
    link.client.connection_made()
    offer = link.client.data_to_send()
    link.clock.now += 3000
    link.client.tick()   # no answer in time: the original wire
    assert link.client.wire == 'original'
    link.server.connection_made()
    link.server.feed(offer + sp.frame(*pure_json.pieces(sp.SID_READ_REQUEST, 0, 0, None)))
    assert link.server.wire == 'original' and link.server.counters['refused_frames'] == 0


def _driven(link, op):
    """Runs an operation of sp_common.ops over the link, as a runtime's driver does (its waits: the link pumped)."""
    value = None
    try:
        while True:
            predicate, end = op.send(value)
            link.pump()
            value = True if predicate is None else predicate()
    except StopIteration as done:
        return done.value


def test_a_board_that_forgot_the_session_is_told_the_clients_name_again():
    """A board that resets behind a serial port that stays open (a USB-UART adapter keeps it) knows no session
    and drops every v2 frame: the host's calls went unanswered for good. Once not a word has come for
    NEGOTIATE_MS since a request, the client's next send introduces it again, which starts the line over."""
    from sp_common import ops
    link = Link(pure_json, session_v2=True)
    link.server.register_callback(sp.SID_EXECUTE_REQUEST, 0, lambda msg: (0, msg.get_data()))
    link.connect()
    assert link.request(sp.SID_EXECUTE_REQUEST, 0, 'before').get_data() == 'before'
    link.server.connection_made()   # the board resets
    link.clock.now += 100
    assert link.request(sp.SID_EXECUTE_REQUEST, 0, 'lost') is None and link.server.counters['format_errors'] == 1
    link.clock.now += sp.NEGOTIATE_MS - 1
    assert not link.client.forgotten()   # (not yet)
    link.clock.now += 1
    assert link.client.forgotten()
    assert _driven(link, ops.send(link.client, sp.SID_EXECUTE_REQUEST, 0, 'after', 0, link.clock.now + 2000))
    assert link.client.session == link.server.session == 2
    assert link.client.pop_received(sp.SID_EXECUTE_RESPONSE, 0).get_data() == 'after'


def test_a_peer_that_answers_is_not_taken_for_one_that_forgot():
    for connects in (False, True):
        link = Link(pure_json, session_v2=True)
        link.server.register_callback(sp.SID_EXECUTE_REQUEST, 0, lambda msg: (0, msg.get_data()))
        link.client.connects = connects
        link.connect()
        link.client.send_msg(sp.SID_EXECUTE_REQUEST, 9, None)   # unknown: answered with an error
        link.pump()
        link.clock.now += sp.NEGOTIATE_MS * 2
        assert not link.client.forgotten()
        link.client.send_msg(sp.SID_EXECUTE_REQUEST, 0, None)
        link.client.data_to_send()   # lost on the way
        link.clock.now += sp.NEGOTIATE_MS
        assert link.client.forgotten() is not connects   # (a link with connects reconnects instead)


def test_a_peer_slow_to_answer_a_call_that_still_waits_is_not_taken_for_one_that_forgot():
    """A board whose callback took over NEGOTIATE_MS while a request() call waited for its answer: another
    caller's send started the session over, the answer was lost, and with the offer unanswered (the board still
    busy) the wire settled on the original, without MACs, until the next reconnect."""
    link = Link(pure_json, session_v2=True)
    link.connect()
    link.clock.now += 100
    token = link.client.send_msg(sp.SID_EXECUTE_REQUEST, 0, 'slow', call=True)
    link.client.data_to_send()   # taken by a board that takes its time
    link.clock.now += sp.NEGOTIATE_MS * 2
    assert not link.client.forgotten()   # the call still waits
    link.client.send_msg(sp.SID_EXECUTE_REQUEST, 0, 'next', call=True)   # and a second one with it
    link.client.data_to_send()
    link.client.forget(token)   # the first gave up in silence: a board that reset, though calls overlap (a gateway's)
    assert link.client.forgotten()


def test_an_answer_that_asks_for_authentification_ends_the_trust_the_client_counted_on():
    """A board that reset behind an open port on the original wire answered every call 'authentification
    required', while the host still said it was trusted and never authenticated again."""
    link = Link(pure_json, session_v2=False, client={'secret': SECRET, 'auto_auth': True}, server={'secret': SECRET})
    link.server.register_callback(sp.SID_EXECUTE_REQUEST, 0, lambda msg: (0, msg.get_data()))
    link.connect()
    assert link.client.is_trusted()
    link.server.connection_made()   # the board resets: no trust
    assert link.request(sp.SID_EXECUTE_REQUEST, 0, 'x').get_status() == sp.STATUS_AUTH_REQUIRED
    assert link.client.is_trusted() and link.server.is_trusted()   # (the handshake has run again)
    assert link.request(sp.SID_EXECUTE_REQUEST, 0, 'y').get_data() == 'y'


def _offer_taken_away(connects, auto_auth=True):
    """Two sides with a secret and a man in the middle who takes the client's offer away and answers it as an
    original peer does (the service unknown): each side takes the other for an original one."""
    link = Link(pure_json, session_v2=True, client={'secret': SECRET, 'auto_auth': auto_auth},
                server={'secret': SECRET})
    link.client.connects = link.server.connects = connects
    link.server.connection_made()
    link.client.connection_made()
    name, offer = list(sp.Deframer(8192).feed(link.client.data_to_send()))
    link.server.feed(sp.frame(name))   # the offer goes no further
    link.client.feed(link.server.data_to_send() + sp.frame(*pure_json.pieces(
        sp.SID_SESSION_RESPONSE, sp.DID_SESSION, sp.STATUS_SERVICE_OR_DATA_UNKNOWN, None)))
    link.pump()
    return link


def test_two_sides_moved_onto_the_original_wire_on_the_way_trust_nothing_there():
    """Both speak v2 and have the secret; moved onto the original wire, they authenticated there, and the man in
    the middle had the server run what he wrote as the trusted client's, and the client take his answers. The
    server's seed says it speaks v2, signed with it: the client signs nothing."""
    link = _offer_taken_away(connects=True)
    assert link.client.session == link.server.session == 1
    assert not link.client.is_trusted() and not link.server.is_trusted()
    assert link.client.counters['downgrade'] == 1
    assert 'not signing the seed: the server speaks session v2' in link.client_log.text()
    link.server.register_callback(sp.SID_WRITE_REQUEST, 0, lambda msg: (0, 'done'))
    link.server.feed(sp.frame(*pure_json.pieces(sp.SID_WRITE_REQUEST, 0, 0, 'written by the man in the middle')))
    assert pure_json.decode(sp.Deframer(8192).feed(link.server.data_to_send())[0])[2] == sp.STATUS_AUTH_REQUIRED


def test_a_client_on_a_serial_line_that_finds_its_v2_server_on_the_original_wire_starts_over():
    """There a lost session answer moves both sides onto the original wire too: the client starts the line over
    (its name and offer again) and the session is v2 with MACs."""
    link = _offer_taken_away(connects=False)
    assert link.client.counters['downgrade'] == 1
    assert link.client.wire == link.server.wire == 'v2_macs'
    assert link.client.is_trusted() and link.server.is_trusted()


def test_an_authentificate_call_that_finds_the_line_started_over_runs_the_handshake_again():
    """Without auto_auth the caller's handshake ended with the restart (untrusted counts as settled): it said
    False, and sp call named a wrong secret, for a line that settled on v2 with MACs right after."""
    from sp_common import ops
    link = _offer_taken_away(connects=False, auto_auth=False)
    assert _driven(link, ops.authentificate(link.client, link.clock.now + 2000)) is True
    assert link.client.counters['downgrade'] == 1 and link.client.wire == 'v2_macs' and link.server.is_trusted()


def test_an_original_client_signs_the_marked_seed_of_a_server_that_speaks_v2():
    link = Link(pure_json, client={'secret': SECRET, 'auto_auth': True},
                server={'secret': SECRET, 'session_v2': True})
    link.connect()
    assert link.server.session == 1 and link.client.is_trusted() and link.server.is_trusted()


def test_a_client_with_connects_that_has_heard_nothing_waits_for_its_server_to_read_the_offer():
    """A server slow to take a connection (its listen backlog full of squatters) reads the offer late: the client
    had settled on the original wire after NEGOTIATE_MS, the server followed it there, and its marked seed was one
    the client must not sign, so a genuine client was never served. Heard from, and not answered, it settles."""
    link = Link(pure_json, session_v2=True, client={'secret': SECRET, 'auto_auth': True}, server={'secret': SECRET})
    link.client.connects = link.server.connects = True
    link.client.connection_made()
    offer = link.client.data_to_send()   # in the server's backlog
    link.clock.now += sp.NEGOTIATE_MS * 2
    assert link.client.deadline_ms() is None
    link.client.tick()
    assert link.client.wire == 'negotiating' and link.client.data_to_send() == b''
    link.server.connection_made()
    link.server.feed(offer)
    link.pump()
    assert link.client.wire == link.server.wire == 'v2_macs' and link.client.is_trusted()
    link.client.connection_made()
    link.client.data_to_send()
    link.clock.now += sp.NEGOTIATE_MS * 2   # read late, the offer a frame behind the name
    link.client.feed(sp.frame(*pure_json.pieces(sp.SID_CHANNEL_NAME_RESPONSE, sp.DID_CHANNEL_NAME, 0, None)))
    assert link.client.deadline_ms() == sp.NEGOTIATE_MS   # counted from the first word heard
    link.clock.now += sp.NEGOTIATE_MS
    link.client.tick()
    assert link.client.wire == 'original'
