import sys

from link import Link

import sp_common as sp
from sp_common import Engine, pure_json, struct_json
from sp_common.auth import equal, hmac_sha256_hex


def serving(link, sid=sp.SID_READ_REQUEST, did=0, value='value'):
    calls = []

    def callback(msg, *args, **kwargs):
        calls.append((msg.get_service_id(), msg.get_data_id(), msg.get_data(), args, kwargs))
        return sp.STATUS_OKAY, value
    link.server.register_callback(sid, did, callback)
    return calls


def test_read_write_execute():
    for codec in (pure_json, struct_json):
        link = Link(codec)
        link.connect()
        calls = serving(link, sp.SID_READ_REQUEST, 1, 'read')
        serving(link, sp.SID_WRITE_REQUEST, 2, True)
        serving(link, sp.SID_EXECUTE_REQUEST, 3, [1, 2])
        msg = link.request(sp.SID_READ_REQUEST, 1)
        assert (msg.get_service_id(), msg.get_data_id(), msg.get_status(), msg.get_data()) == (11, 1, 0, 'read')
        assert calls == [(10, 1, None, (), {})]
        assert link.request(sp.SID_WRITE_REQUEST, 2, {'v': 5}).get_data() is True
        assert link.request(sp.SID_EXECUTE_REQUEST, 3, 'go').get_data() == [1, 2]
        assert link.client.counters['rx_messages'] == 4  # channel name response + 3


def test_callback_arguments_are_passed():
    link = Link()
    link.connect()
    seen = []
    link.server.register_callback(20, 4, lambda msg, a, b=None: seen.append((msg.get_data(), a, b)) or (0, a), 'A', b='B')
    assert link.request(20, 4, 'x').get_data() == 'A'
    assert seen == [('x', 'A', 'B')]


def test_callback_priority_most_specific_first():
    link = Link()
    link.connect()
    for key in ((10, 1), (10, None), (None, 1), (None, None)):
        link.server.register_callback(key[0], key[1], lambda msg, tag: (0, tag), str(key))
    assert link.request(10, 1).get_data() == '(10, 1)'
    assert link.request(10, 2).get_data() == '(10, None)'
    assert link.request(20, 1).get_data() == '(None, 1)'
    assert link.request(30, 2).get_data() == '(None, None)'


def test_callback_error_is_answered_and_connection_kept():
    link = Link()
    link.connect()

    def broken(msg):
        raise RuntimeError('boom')
    link.server.register_callback(10, 1, broken)
    link.server.register_callback(10, 2, lambda msg: 'not a tuple')
    link.server.register_callback(10, 3, lambda msg: (0, object()))

    for did in (1, 2, 3):
        msg = link.request(10, did)
        assert (msg.get_status(), msg.get_data()) == (sp.STATUS_CALLBACK_ERROR, None)
    assert link.server.counters['callback_errors'] == 3
    assert 'boom' in link.server_log.text()
    serving(link, 10, 4)
    assert link.request(10, 4).get_status() == sp.STATUS_OKAY


def test_a_callback_that_exits_is_an_error_on_the_host_and_ends_the_program_on_a_board():
    """argparse raises SystemExit on arguments it cannot parse: on the host it must end no I/O thread or event
    loop. On a board sys.exit() and machine.soft_reset() raise it to end the program, and must."""
    link = Link()
    link.connect()

    def exits(msg):
        raise SystemExit(2)
    link.server.register_callback(10, 1, exits)
    try:
        msg = link.request(10, 1)
    except SystemExit:
        assert sys.implementation.name == 'micropython'
        return
    assert sys.implementation.name != 'micropython'
    assert (msg.get_status(), msg.get_data()) == (sp.STATUS_CALLBACK_ERROR, None)
    assert link.server.counters['callback_errors'] == 1 and 'SystemExit: 2' in link.server_log.text()
    serving(link, 10, 2)
    assert link.request(10, 2).get_status() == sp.STATUS_OKAY


def test_unknown_service_or_data():
    link = Link()
    link.connect()
    link.client.add_service(40, 41)
    msg = link.request(40, 0, 'x')
    assert msg.get_status() == sp.STATUS_SERVICE_OR_DATA_UNKNOWN
    assert link.request(10, 99).get_status() == sp.STATUS_SERVICE_OR_DATA_UNKNOWN
    assert link.server.counters['unknown'] == 2
    link.client.send_msg(43, 0, None)  # an unknown odd id is no request: dropped, counted
    link.pump()
    assert link.server.counters['unknown'] == 3


def test_the_answer_to_a_service_this_side_never_declared_reaches_its_caller():
    """A request on an even sid this side knows nothing of waits on sid + 1, where a peer that knows no such
    service says so: the caller gets that answer at once, on both wires, not a timeout."""
    for session_v2 in (False, True):
        link = Link(session_v2=session_v2)
        link.connect()
        token = link.client.send_msg(98, 0, 'x', call=True)
        link.pump()
        msg = link.client.take_reply(token)
        assert msg is not None and msg.get_status() == sp.STATUS_SERVICE_OR_DATA_UNKNOWN, session_v2
        assert (msg.get_service_id(), msg.get_data_id()) == (99, 0)
        link.client.send_msg(96, 1, None)   # send() + receive() alike
        link.pump()
        assert link.client.pop_received(97, 1).get_status() == sp.STATUS_SERVICE_OR_DATA_UNKNOWN
        assert link.client.counters['unsolicited'] == link.client.counters['unknown'] == 0


def test_known_request_without_callback_is_buffered():
    link = Link()
    link.connect()
    link.server.add_data(sp.SID_READ_REQUEST, 5, 'five')
    assert link.request(10, 5, 'q') is None
    msg = link.server.pop_received(10, 5)
    assert msg.get_data() == 'q'
    assert link.server.pop_received(10, 5) is None


def test_receive_buffer_is_bounded_in_messages_and_bytes():
    link = Link(server={'max_buffered': 2})
    link.connect()
    for i in range(3):
        link.server.add_data(sp.SID_READ_RESPONSE, i, 'declared')
        link.client.send_msg(sp.SID_READ_RESPONSE, i, i)
    link.pump()
    assert link.server.counters['buffer_dropped'] == 1
    assert link.server.pop_received(11, 0) is None
    assert link.server.pop_received(11, None).get_data() == 1
    link = Link(server={'max_buffered_bytes': 400})
    link.connect()
    for i in range(4):
        link.server.add_data(sp.SID_READ_RESPONSE, i, 'declared')
        link.client.send_msg(sp.SID_READ_RESPONSE, i, 'x' * 60)
    link.pump()
    assert link.server.counters['buffer_dropped'] == 2
    assert [link.server.pop_received(11, i) is not None for i in range(4)] == [False, False, True, True]


def test_receive_buffer_counts_the_heap_of_lists_and_dicts():
    """A kilobyte of [[],[],...] would take many kilobytes of a board's heap: the buffer counts them so."""
    link = Link(server={'max_buffered_bytes': 4096})
    link.connect()
    link.server.add_data(sp.SID_READ_RESPONSE, 0, 'declared')
    link.client.send_msg(sp.SID_READ_RESPONSE, 0, [[] for _ in range(300)])   # about 1 KiB of text
    link.client.send_msg(sp.SID_READ_RESPONSE, 0, ['x' * 100, {'n': [1, 2]}])
    link.pump()
    assert link.server.counters['buffer_dropped'] == 1
    assert link.server.pop_received(11, 0).get_data() == ['x' * 100, {'n': [1, 2]}]
    assert link.server.pop_received(11, 0) is None


def test_channel_names():
    cases = (('c', None, 'c', 'c', False), (None, 's', 's', 's', False),
             ('c', 'c', 'c', 'c', False), ('c', 's', 'c', 'c', True), (None, None, None, None, False))
    for client, server, want_client, want_server, warned in cases:
        link = Link(client={'channel_name': client}, server={'channel_name': server})
        link.connect()
        assert (link.client.channel_name, link.server.channel_name) == (want_client, want_server)
        assert ('replaced by the client' in link.server_log.text()) == warned


def test_log_lines():
    link = Link(client={'channel_name': 'example_client'})
    link.client.add_data((10, 11), 0, 'asc_time')
    link.connect()
    link.client.send_msg(10, 0, None)
    text = link.client_log.text()
    assert 'prot-client: TX -> service: read data request, data_id: asc_time, status: okay, data: "None"' in text
    assert 'comm-client: TX -> "(63): 7b 22 64 61' in text
    assert (20, 'prot-client: TX -> service: channel name request, data_id: name, status: okay, data: "example_client"') \
        in link.client_log.lines


def test_hmac_known_answer_and_compare():
    assert hmac_sha256_hex('Jefe', 'what do ya want for nothing?') == \
        '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843'
    assert len(hmac_sha256_hex('k' * 100, 'm')) == 64
    assert equal('abc', 'abc') and not equal('abc', 'abd') and not equal('abc', 'ab')


def secured(client_secret, server_secret='secret', auto=False):
    link = Link(client={'secret': client_secret, 'auto_auth': auto}, server={'secret': server_secret})
    link.connect()
    return link


def test_auth_success():
    link = secured('secret')
    calls = serving(link)
    assert link.request(10, 0).get_status() == sp.STATUS_AUTH_REQUIRED
    assert calls == []
    link.client.start_auth()
    link.pump()
    assert link.client.is_trusted() and link.server.is_trusted()
    assert link.request(10, 0).get_data() == 'value'


def test_auth_walks_the_states():
    link = secured('secret')
    client, server = link.client, link.server
    client.start_auth()
    states = [client.auth_state]
    server.feed(client.data_to_send())
    states.append(server.auth_state)
    client.feed(server.data_to_send())
    states.append(client.auth_state)
    server.feed(client.data_to_send())
    states.append(server.auth_state)
    client.feed(server.data_to_send())
    states.append(client.auth_state)
    assert states == [sp.AUTH_STATE_SEED_REQUESTED, sp.AUTH_STATE_SEED_TRANSFERRED, sp.AUTH_STATE_KEY_TRANSFERRED,
                      sp.AUTH_STATE_TRUSTED_CONNECTION, sp.AUTH_STATE_TRUSTED_CONNECTION]


def test_auto_auth_and_reconnect_resets():
    link = secured('secret', auto=True)
    assert link.client.is_trusted() and link.server.is_trusted()
    link.connect()  # a new connection starts untrusted, auto_auth trusts it again
    assert link.client.is_trusted()
    link.server.connection_lost()
    assert not link.server.is_trusted()


def test_a_trusted_peer_that_authenticates_again_stays_admitted():
    # the seed request takes its trust until the new key is judged; its connection's probation is long over, and
    # a TCP server must not drop it as a peer that never proved itself
    from sp_common import admission
    link = secured('secret')
    link.client.start_auth()
    link.pump()
    link.clock.now += admission.PROBATION_MS + 1000
    link.client.start_auth()
    link.server.feed(link.client.data_to_send())
    assert link.server.auth_state == sp.AUTH_STATE_SEED_TRANSFERRED
    assert link.server.proven() and not admission.expired(link.server)
    link.pump()
    assert link.server.is_trusted()
    link.server.connection_lost()
    assert not link.server.proven()   # the next peer proves itself anew


def test_auth_with_wrong_key():
    link = secured('wrong')
    calls = serving(link)
    link.client.start_auth()
    link.pump()
    assert not link.client.is_trusted() and not link.server.is_trusted()
    assert link.client.auth_state == sp.AUTH_STATE_UNTRUSTED_CONNECTION
    for sid in (10, 20, 30):
        assert link.request(sid, 0).get_status() == sp.STATUS_AUTH_REQUIRED
    assert calls == []
    assert link.server.counters['auth_rejected'] == 3


def test_seed_is_single_use():
    link = secured('secret')
    link.client.start_auth()
    link.pump()
    key = hmac_sha256_hex('secret', 'f' * 64)
    link.client.send_msg(sp.SID_AUTH_REQUEST, sp.DID_AUTH_KEY, key)  # a key with no seed issued for it
    link.server.feed(link.client.data_to_send())
    assert link.server.data_to_send() == b''   # not answered
    assert link.server.counters['out_of_turn'] == 1


def test_auth_against_a_side_without_secret():
    link = secured('secret', server_secret=None)
    link.client.start_auth()
    link.pump()
    assert not link.client.is_trusted()


def test_whitelist():
    link = secured(None)
    serving(link, 10, 7)
    link.server.add_msg_to_auth_whitelist_(10, 7)
    assert link.request(10, 7).get_data() == 'value'


def test_wrong_crc_is_answered_and_counted():
    link = Link()
    link.connect()
    link.client.send_msg(10, 2, None)
    wire = bytearray(link.client.data_to_send())
    wire[-4] ^= 0xFF
    link.server.feed(wire)
    link.pump()
    msg = link.client.pop_received(11, 2)
    assert msg.get_status() == sp.STATUS_CHECKSUM_ERROR
    assert link.server.counters['crc_errors'] == 1


def test_malformed_and_framing_errors_are_counted():
    link = Link()
    link.connect()
    from sp_common.codec import _with_crc
    link.server.feed(sp.frame(*_with_crc((b'{"data_id": 0,',))) + b':<abc:?' + b':<' + b'x' * 70000 + b':>')
    link.pump()
    counters = link.server.counters
    assert (counters['format_errors'], counters['framing_errors'], counters['oversized']) == (1, 1, 1)
    assert link.server.data_to_send() == b''
    serving(link)
    assert link.request(10, 0).get_data() == 'value'


def test_duplicate_services_raise():
    engine = Engine(True)
    for req, resp, error in ((10, 50, sp.RequestSidExistsError), (11, 50, sp.RequestSidExistsError),
                             (50, 31, sp.ResponseSidExistsError), (50, 10, sp.ResponseSidExistsError)):
        try:
            engine.add_service(req, resp)
        except error:
            continue
        raise AssertionError('%r accepted' % ((req, resp),))
    engine.add_service(50, 51)


def test_receive_buffer_counts_the_heap_of_strings():
    """Short strings take many times their text in objects: a peer cannot pin a board's heap with a few frames
    of ["ab", "ab", ...] while the buffer's bound counts their text."""
    link = Link(server={'max_buffered_bytes': 4096})
    link.connect()
    link.server.add_data(sp.SID_READ_RESPONSE, 0, 'declared')
    link.client.send_msg(sp.SID_READ_RESPONSE, 0, ['ab'] * 200)   # 1.2 KiB of text
    link.client.send_msg(sp.SID_READ_RESPONSE, 0, {'n': 1.5, 'text': 'x' * 500})
    link.pump()
    assert link.server.counters['buffer_dropped'] == 1
    assert link.server.pop_received(11, 0).get_data() == {'n': 1.5, 'text': 'x' * 500}
