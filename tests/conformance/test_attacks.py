"""What a hostile peer may try against the engine: each case failed on the engine before the handshake table."""
from link import Clock, Link, Recorder

import sp_common as sp
from sp_common import Engine, pure_json
from sp_common.auth import hmac_sha256_hex
from sp_common.codec import _with_crc

SEED = 'a' * 64


def engine(is_client, secret='secret', **options):
    """An engine on the original wire, connected, its outbox emptied."""
    eng = Engine(is_client, secret=secret, session_v2=False, max_frame=8192, **options)
    eng.connection_made()
    eng.data_to_send()
    return eng


def wire(sid, did, data, status=0):
    return sp.frame(pure_json.encode(sid, did, status, data))


def sent(eng):
    """The messages eng queued, decoded."""
    out = []
    for body in sp.Deframer(8192).feed(eng.data_to_send()):
        out.append(pure_json.decode(body)[:4])
    return out


def test_server_never_takes_a_key_result():
    server = engine(False)
    server.feed(wire(sp.SID_AUTH_RESPONSE, sp.DID_AUTH_KEY, True))
    assert not server.is_trusted()
    assert sent(server) == [] and server.counters['out_of_turn'] == 1


def test_server_does_not_sign_a_reflected_seed():
    server = engine(False)
    server.feed(wire(sp.SID_AUTH_REQUEST, sp.DID_AUTH_SEED, None))
    seed = sent(server)[0][3]
    server.feed(wire(sp.SID_AUTH_RESPONSE, sp.DID_AUTH_SEED, seed))   # its own seed sent back as a seed
    assert sent(server) == []
    server.feed(wire(sp.SID_AUTH_REQUEST, sp.DID_AUTH_KEY, 'f' * 64))
    assert sent(server) == [(1, 1, 0, False)] and not server.is_trusted()


def test_client_does_not_sign_a_seed_it_did_not_ask_for():
    client = engine(True)
    client.feed(wire(sp.SID_AUTH_RESPONSE, sp.DID_AUTH_SEED, SEED))
    assert sent(client) == [] and client.counters['out_of_turn'] == 1
    client.feed(wire(sp.SID_AUTH_RESPONSE, sp.DID_AUTH_KEY, True))
    assert not client.is_trusted()


def test_client_signs_only_the_seed_it_asked_for_once():
    client = engine(True)
    client.start_auth()
    client.data_to_send()
    client.feed(wire(sp.SID_AUTH_RESPONSE, sp.DID_AUTH_SEED, SEED) * 2)
    assert sent(client) == [(0, 1, 0, hmac_sha256_hex('secret', SEED))]
    assert client.counters['out_of_turn'] == 1


def test_seed_requests_and_keys_to_a_client_are_dropped():
    client = engine(True)
    client.feed(wire(sp.SID_AUTH_REQUEST, sp.DID_AUTH_SEED, None) + wire(sp.SID_AUTH_REQUEST, sp.DID_AUTH_KEY, 'k'))
    assert sent(client) == [] and client.counters['out_of_turn'] == 2


def test_repeated_wrong_keys_hold_seeds_back():
    link = Link(client={'secret': 'wrong'}, server={'secret': 'secret'})
    link.connect()
    for _ in range(3):
        link.client.start_auth()
        link.pump()
        assert link.client.auth_state == sp.AUTH_STATE_UNTRUSTED_CONNECTION
    assert link.server.counters['wrong_keys'] == 3
    assert link.server_log.text().count('repeated wrong keys') == 1   # said as the hold starts
    link.server.feed(wire(sp.SID_AUTH_REQUEST, sp.DID_AUTH_SEED, None))
    assert sent(link.server) == [(1, 0, sp.STATUS_OPERATION_NOT_PERMITTED, None)]
    link.clock.now += 1001
    link.client.start_auth()
    link.pump()
    assert link.server.counters['wrong_keys'] == 4
    link.clock.now += 1500   # the hold doubles: 2 s now
    link.server.feed(wire(sp.SID_AUTH_REQUEST, sp.DID_AUTH_SEED, None))
    assert sent(link.server)[0][2] == sp.STATUS_OPERATION_NOT_PERMITTED
    assert link.server_log.text().count('repeated wrong keys') == 1
    link.connect()   # a new connection starts over
    link.server.feed(wire(sp.SID_AUTH_REQUEST, sp.DID_AUTH_SEED, None))
    assert sent(link.server)[0][2] == sp.STATUS_OKAY


def test_without_a_clock_wrong_keys_end_seeds_for_the_connection():
    server = engine(False)
    for _ in range(3):
        server.feed(wire(0, 0, None))
        server.feed(wire(0, 1, 'f' * 64))
    server.data_to_send()
    server.feed(wire(0, 0, None))
    assert sent(server)[0][2] == sp.STATUS_OPERATION_NOT_PERMITTED


def test_the_right_key_starts_the_count_of_wrong_keys_over():
    """A serial line's connection is the board's uptime: its wrong keys added up over days, so that a few typos
    held seeds back from the next one on, for a minute each (for good without a clock)."""
    server = engine(False)

    def handshake(key):
        server.feed(wire(sp.SID_AUTH_REQUEST, sp.DID_AUTH_SEED, None))
        answer = sent(server)[0]
        assert answer[2] == sp.STATUS_OKAY, answer
        server.feed(wire(sp.SID_AUTH_REQUEST, sp.DID_AUTH_KEY, key or hmac_sha256_hex('secret', answer[3])))
        return sent(server)[0][3]
    assert [handshake('f' * 64), handshake('f' * 64), handshake(None)] == [False, False, True]
    assert [handshake('f' * 64), handshake('f' * 64), handshake(None)] == [False, False, True]
    assert server.counters['wrong_keys'] == 4


def test_a_planted_answer_is_never_handed_out():
    link = Link()
    link.connect()
    link.server.register_callback(10, 0, lambda msg: (0, 'genuine'))
    link.client.feed(wire(11, 0, 'planted'))   # nobody asked: dropped
    assert link.client.counters['unsolicited'] == 1
    assert link.request(10, 0).get_data() == 'genuine'
    link.client.send_msg(10, 0, None)
    link.client.feed(wire(11, 0, 'planted before the genuine one'))
    link.client.connection_lost()   # what one connection was told never reaches the next
    link.connect()
    assert link.client.pop_received(11, 0) is None


def test_an_untrusted_peer_cannot_answer_or_trigger_callbacks():
    client = engine(True)
    calls = []
    client.register_callback(21, 0, lambda msg: calls.append(msg))
    client.send_msg(10, 0, None)
    client.data_to_send()
    client.feed(wire(11, 0, 'forged') + wire(21, 0, 'forged'))
    assert client.pop_received(11, 0) is None and calls == []
    assert client.counters['auth_rejected'] == 2
    client.feed(wire(11, 0, None, sp.STATUS_AUTH_REQUIRED))   # the requester still learns why
    assert client.pop_received(11, 0).get_status() == sp.STATUS_AUTH_REQUIRED
    client.register_callback(None, None, lambda msg: calls.append(msg))
    client.feed(wire(21, 0, None, sp.STATUS_AUTH_REQUIRED) + wire(99, 7, None, sp.STATUS_AUTH_REQUIRED))
    assert calls == [] and client.counters['auth_rejected'] == 4   # no request of this side waited for those


def test_the_answer_that_authentification_is_required_runs_no_callback():
    """It goes to receive() like any answer to a send(); a response callback never runs for an untrusted peer."""
    server = engine(False)
    calls = []
    server.register_callback(21, 0, lambda msg: calls.append(msg))
    server.send_msg(20, 0, 'asked of the client')
    server.data_to_send()
    server.feed(wire(21, 0, None, sp.STATUS_AUTH_REQUIRED))
    assert calls == [] and server.pop_received(21, 0).get_status() == sp.STATUS_AUTH_REQUIRED


def test_answers_queued_for_one_connection_never_reach_the_next():
    hostile = wire(sp.SID_SESSION_REQUEST, 0, 'not an offer') + wire(10, 0, None)
    twin = engine(False)
    twin.feed(hostile)
    assert len(sent(twin)) == 2   # both answered
    server = engine(False)
    server.feed(hostile)   # answered, but the runtime has not sent the answers yet when the link changes
    server.connection_lost()
    server.connection_made()
    assert server.data_to_send() == b''
    client = engine(True)
    client.send_msg(10, 0, None)
    client.connection_lost()
    client.connection_made()   # a client's new connection opens with its own name, nothing older
    assert [m[:2] for m in sent(client)] == [(sp.SID_CHANNEL_NAME_REQUEST, 0)]


def test_a_new_program_on_a_serial_line_gets_no_answer_meant_for_the_last():
    server = engine(False, secret=None)
    server.feed(wire(10, 0, None) + wire(sp.SID_CHANNEL_NAME_REQUEST, 0, 'next program'))
    assert [m[:2] for m in sent(server)] == [(sp.SID_CHANNEL_NAME_RESPONSE, 0)]


def test_a_new_request_makes_earlier_answers_stale():
    link = Link()
    link.connect()
    link.client.send_msg(10, 0, None)
    link.client.data_to_send()                   # the first request, answered late
    link.client.feed(wire(11, 0, 'first'))       # buffered, never taken
    link.client.send_msg(10, 0, None)            # the second request: 'first' is stale now
    link.client.data_to_send()
    assert link.client.pop_received(11, 0) is None
    link.client.feed(wire(11, 0, 'second') + wire(11, 0, 'duplicate'))
    assert link.client.pop_received(11, 0).get_data() == 'second'
    assert link.client.pop_received(11, 0) is None
    assert (link.client.counters['stale'], link.client.counters['unsolicited']) == (1, 1)


def test_a_send_and_a_request_on_the_same_ids_each_get_their_own_answer():
    link = Link()
    link.connect()
    link.server.register_callback(10, 0, lambda msg: (0, 'answer to ' + msg.get_data()))
    link.client.send_msg(10, 0, 'send')
    token = link.client.send_msg(10, 0, 'request', call=True)
    link.pump()
    assert link.client.take_reply(token).get_data() == 'answer to request'
    assert link.client.pop_received(11, 0).get_data() == 'answer to send'
    token = link.client.send_msg(10, 0, 'request', call=True)   # and the other way round
    link.client.send_msg(10, 0, 'send')
    link.pump()
    assert link.client.take_reply(token).get_data() == 'answer to request'
    assert link.client.pop_received(11, 0).get_data() == 'answer to send'


def test_a_late_answer_shifts_at_most_one_answer():
    link = Link()
    link.connect()
    for n in range(3):
        link.client.send_msg(10, 0, None)
        link.client.data_to_send()
    link.client.feed(wire(11, 0, 0) + wire(11, 0, 1) + wire(11, 0, 2))   # the answers to all three, late
    assert link.client.pop_received(11, 0).get_data() == 0
    assert link.client.pop_received(11, 0) is None
    link.client.send_msg(10, 0, None)
    link.client.data_to_send()
    link.client.feed(wire(11, 0, 3))
    assert link.client.pop_received(11, 0).get_data() == 3


def test_a_channel_name_request_starts_a_new_session():
    link = Link(client={'secret': 'secret'}, server={'secret': 'secret'})
    link.connect()
    link.client.start_auth()
    link.pump()
    assert link.server.is_trusted()
    link.server.add_data(11, 5, 'declared')
    link.server.feed(wire(11, 5, 'kept?'))
    link.server.feed(wire(sp.SID_CHANNEL_NAME_REQUEST, 0, 'next program'))
    assert not link.server.is_trusted()
    assert link.server.pop_received(11, 5) is None
    assert link.server.channel_name == 'next program'


def test_a_peers_name_lasts_its_session():
    # a name taken from one peer (a client's, or a server's answer) is not what this side calls itself to the next
    link = Link(server={'channel_name': 'kitchen', 'secret': 'secret'})
    link.connect()
    link.server.feed(wire(sp.SID_CHANNEL_NAME_REQUEST, 0, 'mallory'))   # no secret needed to name oneself
    assert link.server.channel_name == 'mallory'
    link.connect()   # the next connection: its client asks the server's name
    link.server.data_to_send()
    link.server.feed(wire(sp.SID_CHANNEL_NAME_REQUEST, 0, None))
    assert sent(link.server) == [(9, 0, 0, 'kitchen')]
    link.client.feed(wire(sp.SID_CHANNEL_NAME_RESPONSE, 0, 'kitchen'))   # a nameless client takes the server's
    assert link.client.channel_name == 'kitchen'
    link.client.connection_made()
    assert link.client.channel_name is None and sent(link.client)[0][:4] == (8, 0, 0, None)


def test_channel_names_are_short_printable_text():
    for name in ('x' * 33, 'line\nforged', '', 7, ['a']):
        link = Link(server={'channel_name': 'board'})
        link.connect()
        link.server.feed(wire(sp.SID_CHANNEL_NAME_REQUEST, 0, name))
        assert sent(link.server) == [(9, 0, sp.STATUS_OPERATION_NOT_PERMITTED, None)]
        assert link.server.channel_name == 'board' and link.server.counters['bad_names'] == 1
    client = engine(True, secret=None)
    client.feed(wire(sp.SID_CHANNEL_NAME_RESPONSE, 0, '\x1b[2J'))
    assert client.channel_name is None



def text_wire(sid, did, json_text):
    """A frame whose data is json_text as written (a lone surrogate escape, which an encoder never writes)."""
    body = b'{"data_id": %d, "service_id": %d, "status": 0, "data": %s}' % (did, sid, json_text)
    return sp.frame(*_with_crc((body,)))


def test_a_lone_surrogate_is_no_name_seed_or_key():
    """JSON may escape a lone surrogate, which has no UTF-8: a name, seed or key holding one is a bad one,
    counted as such and answered, not a frame that fails while it is taken (or a key check that never ends)."""
    lone = b'"ab\\ud800"'
    server = engine(False)
    server.feed(text_wire(sp.SID_CHANNEL_NAME_REQUEST, 0, lone))
    assert sent(server) == [(9, 0, sp.STATUS_OPERATION_NOT_PERMITTED, None)] and server.counters['bad_names'] == 1
    server.feed(wire(sp.SID_AUTH_REQUEST, sp.DID_AUTH_SEED, None))
    sent(server)
    server.feed(text_wire(sp.SID_AUTH_REQUEST, sp.DID_AUTH_KEY, b'"' + b'f' * 63 + b'\\ud800"'))
    assert sent(server) == [(1, 1, 0, False)] and server.counters['wrong_keys'] == 1
    client = engine(True)
    client.start_auth()
    client.data_to_send()
    client.feed(text_wire(sp.SID_AUTH_RESPONSE, sp.DID_AUTH_SEED, b'"' + b'a' * 63 + b'\\ud800"'))
    assert sent(client) == [] and client.auth_state == sp.AUTH_STATE_UNTRUSTED_CONNECTION
    assert client.counters['format_errors'] == 0

def test_log_lines_escape_control_characters():
    link = Link()
    link.connect()
    link.server.register_callback(10, 0, lambda msg: (0, None))
    link.request(10, 0, 'one\nprot-server: FORGED\x1b[0m')
    text = link.server_log.text()
    assert 'one\\x0aprot-server: FORGED\\x1b[0m' in text
    assert '\nprot-server: FORGED' not in text



def test_log_lines_escape_invisible_characters_and_cut_a_frames_hex():
    from sp_common.logtext import HEX_BYTES, printable
    # a soft hyphen, an interlinear annotation and a tag character show nothing: two ids would look alike
    assert printable('a\u00adb\ufff9c\U000e0041') == 'a\\xadb\\ufff9c\\ue0041'
    server = engine(False)
    server.hexlog = Recorder()
    server.feed(wire(sp.SID_READ_REQUEST, 0, 'x' * (HEX_BYTES + 100)))
    lines = [line[1] for line in server.hexlog.lines]
    assert len(lines) == 2 and all(len(line) < 3 * HEX_BYTES + 60 for line in lines), [len(line) for line in lines]
    assert '): 7b 22 64 61 74 61 5f 69 64' in lines[0] and lines[0].endswith(' 78 78..."')   # '{"data_id', ... 'xx'


def test_a_flood_of_junk_is_counted_whole_and_logged_twenty_lines_a_second():
    """':<:>' is four bytes and a log line of a hundred: a peer sending it without end would fill the log."""
    link = Link()
    link.connect()
    link.server.feed(b':<:>' * 500)
    crc_lines = [line for line in link.server_log.lines if 'wrong checksum' in line[1]]
    assert link.server.counters['crc_errors'] == 500 and len(crc_lines) == 20
    link.clock.now += 1000
    link.server.feed(b':<:>')
    assert link.server_log.lines[-2][1] == \
        'prot-server: 480 more event lines left out (the counters count every message and every drop)'
    assert 'wrong checksum' in link.server_log.lines[-1][1] and link.server.counters['crc_errors'] == 501

def test_messages_with_a_status_other_than_okay_count_in_the_log_budget_and_their_data_is_cut():
    # any peer can send them (or make this end answer them, as every refusal is): logged at WARNING, each line
    # with the peer's data, they would fill a board's console as junk would
    link = Link()
    link.connect()
    link.server.register_callback(sp.SID_EXECUTE_REQUEST, 0, lambda msg: (sp.STATUS_OKAY, None))
    for _ in range(30):   # (a board's heap holds every line the recorder keeps)
        link.client.send_msg(sp.SID_EXECUTE_REQUEST, 0, 'x' * 250, status=1)
        link.pump()
    lines = [line[1] for line in link.server_log.lines if line[0] >= sp.WARNING and 'RX <-' in line[1]]
    assert len(lines) == 20 and link.server.counters['rx_messages'] >= 30
    assert lines[0].endswith('x' * 200 + '... (250 characters)"')
    assert len([line for line in link.server_log.lines if 'TX ->' in line[1]]) >= 30   # INFO: every message


def test_an_unproven_peers_messages_count_in_the_log_budget_where_a_secret_gates():
    # refused requests with status okay were an INFO line each, outside the budget: 14,000 lines a second
    # from one peer that never authenticates. Their lines keep a budget of their own: the events stay in the log
    link = Link(client={'secret': 'wrong'}, server={'secret': 'secret'})
    link.connect()
    for _ in range(12):   # a request, its answer: four lines each with their hex lines (DEBUG)
        link.request(sp.SID_EXECUTE_REQUEST, 0, 'x')
    lines = [line[1] for line in link.server_log.lines]
    assert link.server.counters['auth_rejected'] == 12 and len([line for line in lines if '<-' in line]) >= 10
    assert len([line for line in lines if '<-' in line or '->' in line]) == 20
    assert len([line for line in lines if 'from an untrusted peer' in line]) == 12
    link = Link(client={'secret': 'secret'}, server={'secret': 'secret'})
    link.connect()
    link.server.register_callback(sp.SID_EXECUTE_REQUEST, 0, lambda msg: (sp.STATUS_OKAY, None))
    link.client.start_auth()
    link.pump()
    assert link.server.is_trusted()
    for _ in range(12):
        link.request(sp.SID_EXECUTE_REQUEST, 0, 'x')
    assert len([line for line in link.server_log.lines if '<-' in line[1] or '->' in line[1]]) > 48   # all


def test_an_engine_with_a_hex_log_alone_says_what_its_budget_left_out_there():
    # a board takes its two logs apart: with the hex log alone, the line saying what was left out went to no log
    # and raised, and the frame that came with it was lost
    clock = Clock()
    server = engine(False, clock=clock.ms)
    server.hexlog = Recorder()
    for _ in range(25):
        server.feed(wire(sp.SID_EXECUTE_REQUEST, 0, 'x'))
    clock.now += 1000
    server.feed(wire(sp.SID_EXECUTE_REQUEST, 0, 'x'))
    assert server.counters['rx_messages'] == 26 and server.counters['format_errors'] == 0
    assert any('more message lines left out' in line[1] for line in server.hexlog.lines)


def test_a_peers_long_ids_are_cut_in_log_lines():
    # a string data id or a status is the peer's to make as long as a frame: a refusal's line shows 40 characters
    server = engine(False)
    server.log = Recorder()
    server.feed(wire(sp.SID_READ_REQUEST, 'd' * 500, None) + wire(sp.SID_EXECUTE_REQUEST, 0, None, status=7 ** 60))
    lines = [line[1] for line in server.log.lines]
    assert len(lines) >= 2 and max(len(line) for line in lines) < 300
    assert any('data_id: "' + 'd' * 40 + '..." (500 characters)' in line for line in lines)
    assert any('... (51 characters)' in line for line in lines)   # the status, 7 ** 60 written out


def test_a_peers_string_data_id_is_quoted_in_log_lines():
    # unquoted, an id could write the line's next fields itself: 'data_id: z, status: okay, ...'
    server = engine(False)
    server.log = Recorder()
    server.feed(wire(sp.SID_READ_REQUEST, 'z", status: okay, data: "42\\', None))
    lines = [line[1] for line in server.log.lines if 'data_id' in line[1]]
    assert len(lines) >= 2 and all('data_id: "z\\", status: okay, data: \\"42\\\\"' in line for line in lines), lines


def test_deep_nesting_is_one_dropped_frame():
    link = Link()
    link.connect()
    link.server.register_callback(None, None, lambda msg: (0, msg.get_data()))
    deep = b'{"data_id": 0, "service_id": 30, "status": 0, "data": ' + b'[' * 3000 + b']' * 3000 + b'}'
    link.server.feed(sp.frame(*_with_crc((deep,))))
    assert link.server.counters['format_errors'] == 1 and link.server.data_to_send() == b''
    nested = [[[[['ok']]]]]
    assert link.request(30, 0, nested).get_data() == nested
    text = '[' * 64   # twice the nesting limit (32), inside a string: text, not nesting
    assert link.request(30, 0, text).get_data() == text
    # a \u escape takes four characters, a '"' among them on MicroPython, where the string then goes on: the
    # nesting after it is nesting
    tricked = b'{"data_id": 0, "service_id": 30, "status": 0, "data": ["\\u"123", ' + b'[' * 40 + b']' * 40 + b']}'
    link.server.feed(sp.frame(*_with_crc((tricked,))))
    assert link.server.counters['format_errors'] == 2 and link.server.data_to_send() == b''


def test_an_answer_nested_deeper_than_a_peer_takes_is_a_callback_error():
    """No peer's decode() takes it: the requester hears at once what went wrong, not silence until its timeout."""
    link = Link()
    link.connect()
    deep = 0
    for _ in range(40):
        deep = [deep]
    link.server.register_callback(30, 0, lambda msg: (0, deep))
    answer = link.request(30, 0, None)
    assert answer.get_status() == sp.STATUS_CALLBACK_ERROR and link.server.counters['callback_errors'] == 1
    assert link.client.counters['format_errors'] == 0


def test_any_exception_while_decoding_is_one_dropped_frame():
    class Exploding:
        name = 'exploding'

        @staticmethod
        def decode(body):
            raise MemoryError('heap exhausted')

        pieces = staticmethod(pure_json.pieces)

    eng = Engine(False, codec=Exploding, max_frame=8192)
    eng.feed(wire(10, 0, None) + wire(10, 0, None))
    assert eng.counters['format_errors'] == 2


def test_builtin_services_cannot_be_replaced():
    eng = Engine(False, max_frame=8192)
    for sid, did in ((0, 0), (0, 1), (1, 0), (1, 1), (8, 0), (9, 0), (sp.SID_SESSION_REQUEST, sp.DID_SESSION),
                     (sp.SID_SESSION_RESPONSE, sp.DID_SESSION)):
        try:
            eng.register_callback(sid, did, lambda msg: (0, True))
        except ValueError:
            continue
        raise AssertionError('callback on %d/%d accepted' % (sid, did))
    # on the original wire alone (session_v2=False) the session's ids are no message of the engine: a user's
    link = Link()
    link.connect()
    link.server.register_callback(sp.SID_SESSION_REQUEST, sp.DID_SESSION, lambda msg: (0, 'mine'))
    assert link.request(sp.SID_SESSION_REQUEST, sp.DID_SESSION).get_data() == 'mine'


def test_the_engine_only_queues():
    eng = Engine(True, channel_name='c', session_v2=False, max_frame=8192)
    eng.connection_made()
    eng.send_msg(10, 0, None)
    out = eng.data_to_send()
    assert out == wire(8, 0, 'c') + wire(10, 0, None)
    assert eng.data_to_send() == b''


def test_text_that_is_not_utf8_never_goes_out_as_the_json_it_would_forge():
    """An overlong '"' (c0 a2) is no UTF-8: CPython's parser drops the frame; a board's json takes it as a '"' and
    its answer must not write that '"' bare, which would close the string and write keys the peer chose."""
    q = b'\xc0\xa2'
    forged = b'ok' + q + b', ' + q + b'status' + q + b': 6, ' + q + b'data' + q + b': ' + q + b'FORGED'
    for text in (forged, b'a\xf4\x90\x80\x80b'):   # the second: a code point past U+10FFFF
        server = engine(False, secret=None)
        server.register_callback(sp.SID_EXECUTE_REQUEST, 0, lambda msg: (0, msg.get_data()))
        server.feed(sp.frame(*_with_crc((b'{"data_id": 0, "service_id": 30, "status": 0, "data": "' + text + b'"}',))))
        answers = sent(server)
        assert answers in ([], [(sp.SID_EXECUTE_RESPONSE, 0, sp.STATUS_CALLBACK_ERROR, None)]), answers
        assert server.counters['format_errors'] + server.counters['callback_errors'] == 1


def _utf8(first, n):
    """n characters from code point first on, made from their UTF-8 bytes (chr() would intern them on a board)."""
    out = bytearray()
    for code in range(first, first + n):
        if code < 0x10000:
            out += bytes((0xE0 | code >> 12, 0x80 | code >> 6 & 0x3F, 0x80 | code & 0x3F))
        else:
            out += bytes((0xF0 | code >> 18, 0x80 | code >> 12 & 0x3F, 0x80 | code >> 6 & 0x3F, 0x80 | code & 0x3F))
    return out.decode()


def _heap():
    """The heap in use after a collection, on a board; None on CPython, which interns no peer text."""
    import gc
    if not hasattr(gc, 'mem_alloc'):
        return None
    gc.collect()
    return gc.mem_alloc()


def test_a_peers_text_beyond_ascii_leaves_nothing_in_the_heap():
    """MicroPython interns, for good, each character beyond ASCII that a loop over a str, an index or chr() makes:
    a board that read a peer's text that way (to escape an answer, join an escaped surrogate pair, check a channel
    name, write a log line) kept about 18 bytes for every distinct character a peer sent it, until it had no heap
    left."""
    class Discards(Recorder):   # (its lines made, and let go)
        def log(self, level, text):
            pass
    server = engine(False, secret=None, log=Discards(), clock=Clock().ms)
    server.register_callback(sp.SID_EXECUTE_REQUEST, 0, lambda msg: (0, msg.get_data()))

    def attack(first):
        text, astral = _utf8(first, 100), _utf8(0x20000 + first, 100)
        answers = []
        for frame in (wire(sp.SID_EXECUTE_REQUEST, 0, text + astral), wire(sp.SID_EXECUTE_REQUEST, text, None),
                      wire(sp.SID_CHANNEL_NAME_REQUEST, sp.DID_CHANNEL_NAME, text[:20])):
            server.feed(frame)
            answers += sent(server)
        assert [answer[1:] for answer in answers] == [(0, 0, text + astral),
                                                      (text, sp.STATUS_SERVICE_OR_DATA_UNKNOWN, None),
                                                      (sp.DID_CHANNEL_NAME, sp.STATUS_OPERATION_NOT_PERMITTED, None)]
    attack(0x4E00)   # (what the attack needs loads)
    before = _heap()
    attack(0x5E00)
    after = _heap()
    assert before is None or after - before < 1024, after - before


def test_a_callbacks_error_that_quotes_the_peers_data_makes_no_long_line():
    log = Recorder()
    server = engine(False, secret=None, log=log, clock=Clock().ms)
    server.register_callback(sp.SID_EXECUTE_REQUEST, 0, lambda msg: {}[msg.get_data()])   # KeyError: the data
    server.feed(wire(sp.SID_EXECUTE_REQUEST, 0, 'x' * 5000))
    assert server.counters['callback_errors'] == 1
    assert log.lines and max(len(line[1]) for line in log.lines) < 1000
