"""Attacks on sp gateway and BoardClient through a real mosquitto, each as a hostile caller (or board) would make it.

One message must not stop the gateway or get it thrown off the broker, and no caller may get its words taken
for the answer to another caller's call.
"""
import getpass
import json
import logging
import socket
import subprocess
import sys
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import sp_cpython as sp
from conftest import ROOT, free_port, wait_until
from sp_tool import mqtt_wire as wire
from sp_tool.demo import add_demo_services
from sp_tool.errors import EXIT_STATUS, EXIT_TIMEOUT
from sp_tool.board_link import OWN_PER_S
from sp_tool.gateway import STATE_GAP_S, Gateway, parse_board
from sp_tool.mqtt_client import BoardClient
from test_gateway import SECRET, WAIT, Inbox, fleet, side_gateway  # noqa: F401 (fleet is a fixture)
from tools.mosquitto import Mosquitto


def wait_counter(gateway, name, value):
    deadline = time.monotonic() + WAIT
    while gateway.counters[name] < value:
        assert time.monotonic() < deadline, gateway.counters
        time.sleep(0.05)


def still_answers(fleet, board='a'):
    with BoardClient(fleet.broker.url, board) as client:
        assert client.request('execute', 0, 'still here', timeout=WAIT)['data'] == 'still here'


def test_a_deeply_nested_envelope_id_does_not_stop_the_gateway(fleet, caplog):
    """Ids nested around the depth where parsing still works and echoing them back no longer does, on a call the
    gateway answers from its network thread (an unknown service) and on one its workers answer: each one is
    refused (counted, and logged within the gateway's lines a second) and the gateway keeps answering."""
    caplog.set_level(logging.WARNING, 'sp.gateway')
    before = fleet.gateway.counters['bad_input']
    topics = ('sp/a/fly/0/req', 'sp/a/read/0/req')
    depths = range(850, 1001)
    caller = Inbox(fleet.broker, 'test/nested', protocol=mqtt.MQTTv311)
    try:
        for depth in depths:
            envelope = '{"reply_to": "test/nested", "id": %s1%s, "data": null}' % ('[' * depth, ']' * depth)
            for topic in topics:
                caller.client.publish(topic, envelope)
        sent = len(depths) * len(topics)
        wait_counter(fleet.gateway, 'bad_input', before + sent)
        still_answers(fleet)
        assert fleet.gateway.counters['bad_input'] == before + sent
        assert [t for t, _ in caller.messages if t == 'test/nested'] == []
        assert fleet.status.last(fleet.gateway.gateway_topic).payload == b'online'
        refusals = [r for r in caplog.records if r.name == 'sp.gateway' and any(t in r.getMessage() for t in topics)]
        assert 0 < len(refusals) <= sent
    finally:
        caller.close()


@pytest.mark.parametrize('id_', [[1], {'a': 1}, 'x' * 1000, 10 ** 200], ids=['list', 'object', 'long', 'big'])
def test_envelope_ids_are_scalars_or_short_strings(fleet, id_):
    before = fleet.gateway.counters['bad_input']
    caller = Inbox(fleet.broker, 'test/ids', protocol=mqtt.MQTTv311)
    try:
        caller.client.publish('sp/b/execute/0/req', json.dumps({'reply_to': 'test/ids', 'id': id_, 'data': 'x'}))
        caller.client.publish('sp/b/execute/0/req', json.dumps({'reply_to': 'test/ids', 'id': 'ok', 'data': 'y'}))
        caller.wait_for(lambda: caller.last('test/ids') is not None)
        assert json.loads(caller.last('test/ids').payload)['id'] == 'ok'
        assert fleet.gateway.counters['bad_input'] == before + 1
    finally:
        caller.close()


HOSTILE_TOPICS = ['test/\x01', 'test/\x1b[2J', 'test/\x7f', 'test/\x9b', 'test/\uffff', 'test/\ufdd0',
                  'test/\U0010fffe', 'test/\ud800', 'test/+', 'test/#', '', 'test' + '/x' * 201]


def test_reply_topics_the_broker_rejects_do_not_get_the_gateway_thrown_off(fleet):
    """An envelope's reply_to is anything JSON holds: a topic mosquitto takes for malformed would cost the
    gateway its connection (and every call in flight). Each is refused and counted; the gateway stays online."""
    before = fleet.gateway.counters['bad_input']
    caller = Inbox(fleet.broker, 'test/#', protocol=mqtt.MQTTv311)
    try:
        for topic in HOSTILE_TOPICS:
            caller.client.publish('sp/b/read/0/req', json.dumps({'reply_to': topic, 'id': 1, 'data': None}))
        wait_counter(fleet.gateway, 'bad_input', before + len(HOSTILE_TOPICS))
        still_answers(fleet, 'b')
        assert fleet.gateway.client.is_connected()
        assert [msg.payload for t, msg in fleet.status.messages if t == fleet.gateway.gateway_topic][-1:] == [b'online']
        assert b'offline' not in [msg.payload for t, msg in fleet.status.messages if t == fleet.gateway.gateway_topic]
        assert [t for t, _ in caller.messages if t.startswith('test/')] == []
    finally:
        caller.close()


@pytest.mark.parametrize('topic', HOSTILE_TOPICS + ['t/' + 'x' * 65535, 't/' + '\xe9' * 33000],
                         ids=lambda topic: ascii(topic)[:24])
def test_reply_topics_brokers_reject_are_refused_as_mqtt_5_response_topics_too(topic):
    """mosquitto checks a Response Topic itself and drops its sender, but not every broker does."""
    with pytest.raises(ValueError):
        wire.reply_topic(topic, 'sp')


@pytest.mark.parametrize('char', ['\x01', '\x1b', '\x7f', '\x85', '\ud800', '\ufdd0', '\uffff', '\U0010fffe'],
                         ids=ascii)
def test_a_board_name_or_prefix_the_broker_refuses_in_a_topic_is_refused_before_anything_starts(char):
    """mosquitto drops a client that subscribes to such a topic, again on every reconnect: one such board name or
    prefix would keep every board of the gateway off the broker, and a caller's every call would time out."""
    with pytest.raises(ValueError, match='refuses with the character U'):
        parse_board('ki%st=tcp://127.0.0.1:1' % char)
    with pytest.raises(ValueError, match='refuses with the character U'):
        Gateway(wire.Broker('127.0.0.1', 1), [], prefix='s%sp' % char)
    for board, prefix in (('ki%st' % char, 'sp'), ('kit', 's%sp' % char)):
        with pytest.raises(ValueError, match='refuses with the character U'):
            BoardClient('mqtt://127.0.0.1:1', board, prefix=prefix, connect_timeout=1)


def test_a_board_that_sends_a_data_id_no_topic_can_hold_does_not_get_the_gateway_thrown_off(fleet, caplog):
    """Nor does it fill the log: each such message was a warning, 500 a second within the board's own budget."""
    from sp_common.logtext import LINES_A_SECOND
    caplog.set_level(logging.WARNING, 'sp.gateway')
    comm = sp.tcp_server_stp('127.0.0.1', 0)
    board = sp.pure_json_protocol(comm, channel_name='hostile-board')
    add_demo_services(board)
    gateway = side_gateway(fleet, 'h=tcp://127.0.0.1:%d' % comm.port, 'hb', 'h')
    watch = Inbox(fleet.broker, 'hb/#')     # its own status included: hb/gateway/<id>/status
    try:
        for did in ('\x01', '\x1b[2J', '\ufffe', 'a/b', '+') + ('x/y',) * 95:
            assert board.send(sp.SID_READ_RESPONSE, did, 'junk', timeout=WAIT)
        wait_counter(gateway, 'bad_input', 100)
        assert len([r for r in caplog.records if 'no topic level' in r.getMessage()]) <= 2 * LINES_A_SECOND
        assert board.send(sp.SID_READ_RESPONSE, 'fine', 'after', timeout=WAIT)
        watch.wait_for(lambda: watch.last('hb/h/11/fine') is not None)
        assert gateway.client.is_connected()
        assert b'offline' not in [msg.payload for t, msg in watch.messages if t == gateway.gateway_topic]
    finally:
        watch.close()
        gateway.stop()
        board.close()


def test_a_board_that_dials_in_and_hangs_up_in_a_loop_fills_neither_the_log_nor_the_broker(fleet, caplog):
    """Each cycle was two warnings and two retained statuses: 2,000 cycles in 5 s. A board's state lines keep the
    line budget, and its status is published STATE_GAP_S apart at most, the latest state."""
    import asyncio
    from sp_common.logtext import LINES_A_SECOND
    from sp_cpython import aio
    caplog.set_level(logging.INFO, 'sp.gateway')
    port = free_port()
    gateway = side_gateway(fleet, 'f=listen://127.0.0.1:%d?secret=%s' % (port, SECRET), 'flap')
    status = Inbox(fleet.broker, 'flap/f/status')
    try:
        async def flap(seconds):
            cycles, end = 0, time.monotonic() + seconds
            while time.monotonic() < end:
                prot = await aio.connect('tcp://127.0.0.1:%d' % port, secret=SECRET, auto_auth=True)
                cycles += await prot.authentificate(2)
                await prot.close()
            return cycles
        start = time.monotonic()
        cycles = asyncio.run(flap(2))
        time.sleep(1)
        seconds = time.monotonic() - start
        statuses = [msg.payload for topic, msg in status.messages if topic == 'flap/f/status']
        assert cycles >= 20 and statuses[-1] == b'offline'
        assert len(statuses) <= seconds / STATE_GAP_S + 2, (cycles, len(statuses))
        lines = [r for r in caplog.records if r.getMessage().startswith('board f is')]
        assert len(lines) <= (seconds + 1) * LINES_A_SECOND, (cycles, len(lines))
    finally:
        status.close()
        gateway.stop()


def test_a_gateway_stopped_while_a_peer_is_on_probation_at_a_listening_board_ends_quietly(fleet):
    """The tasks of a connection still on probation outlived the gateway's loop: a traceback each on stderr."""
    import signal
    port = free_port()
    status = Inbox(fleet.broker, 'quiet/p/status')
    proc = subprocess.Popen([sys.executable, '-m', 'sp_tool', 'gateway', '--broker', fleet.broker.url, '--prefix',
                             'quiet', 'p=listen://127.0.0.1:%d?secret=%s' % (port, SECRET)], cwd=ROOT, text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        status.wait_payload('quiet/p/status', 'offline')   # the gateway owns the board (and listens for it soon)
        deadline = time.monotonic() + WAIT
        while True:
            try:
                peer = socket.create_connection(('127.0.0.1', port))
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline
                time.sleep(0.02)
        with peer:
            peer.sendall(b':<:>')   # no valid frame: on probation for a second
            time.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        assert proc.returncode == 128 + signal.SIGTERM and 'Traceback' not in err and 'destroyed' not in err, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        status.close()


def test_a_board_that_floods_the_gateway_with_its_own_messages_gets_its_budget_a_second_published(fleet, caplog):
    """A board's own messages past OWN_PER_S a second are dropped and counted, the flood logged once: they cost the
    gateway's loop and the broker no more than that, whatever the board sends."""
    caplog.set_level(logging.WARNING, 'sp.gateway')
    comm = sp.tcp_server_stp('127.0.0.1', 0)
    board = sp.pure_json_protocol(comm, channel_name='noisy-board')
    gateway = side_gateway(fleet, 'n=tcp://127.0.0.1:%d' % comm.port, 'noisy', 'n')
    watch = Inbox(fleet.broker, 'noisy/n/11/+')
    try:
        flood = 4 * OWN_PER_S
        start = time.monotonic()
        for n in range(flood):
            assert board.send(sp.SID_READ_RESPONSE, 0, n, timeout=WAIT)
        seconds = time.monotonic() - start
        wait_counter(gateway, 'board_messages', flood)
        published = flood - gateway.counters['board_dropped']
        assert OWN_PER_S <= published <= OWN_PER_S * (int(seconds) + 2) < flood, (published, seconds)
        watch.wait_for(lambda: len(watch.messages) == 1 + published)
        assert caplog.text.count('messages of its own a second') == 1
    finally:
        watch.close()
        gateway.stop()
        board.close()


class Forger:
    """A second caller on the same broker: it sees requests (read access on the request topics) and publishes
    answers of its own, directly to another caller's reply topic or through the gateway."""

    def __init__(self, fleet, watched):
        self.inbox = Inbox(fleet.broker, watched)

    def seen(self):
        return [msg for t, msg in self.inbox.messages if msg is not None and t.endswith('/req')]

    def answer_directly(self, topic, correlation, body):
        properties = Properties(PacketTypes.PUBLISH)
        properties.CorrelationData = correlation
        self.inbox.client.publish(topic, json.dumps(body), properties=properties)


@pytest.fixture
def mute(fleet):
    """A gateway (prefix forge) for a board that never answers: a victim's call stays in flight for 2 s."""
    silent = socket.create_server(('127.0.0.1', 0))
    gateway = side_gateway(fleet, 'mute=tcp://127.0.0.1:%d' % silent.getsockname()[1], 'forge', 'mute', timeout=2.0)
    yield gateway
    gateway.stop()
    silent.close()


def call_in_flight(victim, forger):
    """The victim's read on the mute board, started; returns once the forger has seen its request."""
    result = []
    call = threading.Thread(target=lambda: result.append(victim.request('read', 0, timeout=WAIT)))
    call.start()
    forger.inbox.wait_for(lambda: forger.seen())
    return call, result


def test_guessed_correlations_forge_no_answer_into_another_callers_call(fleet, mute):
    """The victim's call waits on a board that does not answer; the forger publishes answers with the correlation
    data a counter would have (1..50) and with everything else right. The victim gets the gateway's answer."""
    forger = Forger(fleet, 'forge/+/+/+/req')
    try:
        with BoardClient(fleet.broker.url, 'mute', prefix='forge') as victim:
            call, result = call_in_flight(victim, forger)
            forged = dict(wire.answer(sp.STATUS_OKAY, 'forged'), board='mute', service_id=11, data_id=0)
            for n in range(1, 51):
                forger.answer_directly(victim.reply_topic, b'%d' % n, forged)
            call.join(WAIT)
            assert result == [wire.answer(wire.STATUS_TIMEOUT, 'no answer from mute within 2 s')]
            assert victim.counters['dropped'] == 50
            assert len(forger.seen()[0].properties.CorrelationData) == 16
    finally:
        forger.inbox.close()


def test_forged_megabytes_on_a_reply_topic_never_reach_the_caller(fleet, mute):
    """Anyone who may publish on a caller's reply topic can send it packets as big as the broker takes: the
    caller says it takes 1 MiB at most, so the broker drops a 2 MiB forgery; only the small one after it
    reaches the caller, which drops it (no call waits on its Correlation Data) without parsing it."""
    forger = Forger(fleet, 'forge/+/+/+/req')
    try:
        with BoardClient(fleet.broker.url, 'mute', prefix='forge') as victim:
            call, result = call_in_flight(victim, forger)
            forger.answer_directly(victim.reply_topic, b'forged', ['ab'] * 400000)
            forger.answer_directly(victim.reply_topic, b'forged', ['ab'])
            call.join(WAIT)
            assert result == [wire.answer(wire.STATUS_TIMEOUT, 'no answer from mute within 2 s')]
            assert victim.counters['dropped'] == 1
    finally:
        forger.inbox.close()


def test_an_answer_from_another_board_is_not_taken_for_the_call_even_with_its_correlation(fleet, mute):
    """Past the broker's ACL: the forger, who may call board b, saw the victim's request to the silent board and
    asks board b with the victim's reply topic and correlation data. The gateway answers there, but the answer
    names board b, so the victim drops it and keeps waiting for its own."""
    forger = Forger(fleet, 'forge/mute/+/+/req')
    try:
        with BoardClient(fleet.broker.url, 'mute', prefix='forge') as victim:
            call, result = call_in_flight(victim, forger)
            request = forger.seen()[0]
            forger.inbox.ask('sp/b/read/0/req', b'null', request.properties.CorrelationData,
                             request.properties.ResponseTopic)
            forger.inbox.ask('sp/b/execute/0/req', b'"forged"', request.properties.CorrelationData,
                             request.properties.ResponseTopic)
            call.join(WAIT)
            assert result == [wire.answer(wire.STATUS_TIMEOUT, 'no answer from mute within 2 s')]
            assert victim.counters['dropped'] == 2
    finally:
        forger.inbox.close()


def test_an_answer_that_is_no_strict_json_is_dropped_and_one_that_is_says_no_more_than_an_answer(fleet, mute):
    """Someone who saw the victim's request answers it first: NaN and Infinity (which Python's json takes, and
    `sp call --json` would print as no JSON) make no answer; a well-formed one reaches the caller with its status,
    status name and data only, not the keys the forger added."""
    forger = Forger(fleet, 'forge/+/+/+/req')
    try:
        with BoardClient(fleet.broker.url, 'mute', prefix='forge') as victim:
            call, result = call_in_flight(victim, forger)
            correlation = forger.seen()[0].properties.CorrelationData
            forged = dict(wire.answer(sp.STATUS_OKAY, 'forged'), board='mute', service_id=11, data_id=0)
            forger.answer_directly(victim.reply_topic, correlation, dict(forged, data=[float('nan'), float('inf')]))
            forger.answer_directly(victim.reply_topic, correlation, dict(forged, exit=0, error='none'))
            call.join(WAIT)
            assert result == [wire.answer(sp.STATUS_OKAY, 'forged')] and victim.counters['dropped'] == 1
    finally:
        forger.inbox.close()


def test_answers_name_their_board_service_and_data_id(fleet):
    caller = Inbox(fleet.broker, 'test/named')
    try:
        caller.ask('sp/b/execute/0/req', b'"hi"', b'c1', 'test/named')
        caller.ask('sp/a/fly/0/req', b'null', b'c2', 'test/named')
        caller.ask('sp/a/read/x1/req', b'null', b'c3', 'test/named')
        caller.wait_for(lambda: len(caller.answers()) == 3)
        bad = caller.answers()[b'c3']   # a data id that is no number: the service is still named
        assert (bad['status'], bad['service_id'], bad['data_id']) == (wire.STATUS_BAD_REQUEST, 11, None)
        assert caller.answers()[b'c1'] == {'status': 0, 'status_name': 'okay', 'data': 'hi', 'board': 'b',
                                           'service_id': 31, 'data_id': 0}
        bad = caller.answers()[b'c2']
        assert (bad['status'], bad['board'], bad['service_id'], bad['data_id']) == (wire.STATUS_BAD_REQUEST, 'a',
                                                                                   None, None)
    finally:
        caller.close()


def test_a_request_refused_for_its_payload_gets_an_answer_that_names_its_ids(fleet):
    # (an answer with null ids is dropped by BoardClient: sp call waited out its timeout and blamed the gateway)
    with BoardClient(fleet.broker.url, 'b') as client:
        answer = client.request('execute', 0, 'd' * (fleet.gateway.max_payload + 1), timeout=WAIT)
        assert answer['status'] == wire.STATUS_BAD_REQUEST and 'over the limit' in answer['data']
        assert client.counters['dropped'] == 0


class RogueGateway:
    """Answers every request on PREFIX/BOARD with the right correlation and ids and a status name and data of
    terminal escapes: what a broker relays reaches the terminal of whoever runs sp call."""

    def __init__(self, fleet, prefix, board, status, status_name, data):
        self.body = {'status': status, 'status_name': status_name, 'data': data, 'board': board}
        self.inbox = Inbox(fleet.broker, '%s/%s/+/+/req' % (prefix, board))
        self.inbox.client.on_message = self._answer

    def _answer(self, client, userdata, msg):
        service, did = msg.topic.split('/')[2:4]
        properties = Properties(PacketTypes.PUBLISH)
        properties.CorrelationData = msg.properties.CorrelationData
        body = dict(self.body, service_id=wire.parse_service(service) + 1, data_id=int(did))
        client.publish(msg.properties.ResponseTopic, json.dumps(body), properties=properties)


ESCAPES = '\x1b[2J\x1b]0;owned\x07\r'


@pytest.mark.parametrize('status', [0, 1, wire.STATUS_BAD_REQUEST])
def test_sp_call_through_a_broker_prints_what_comes_back_escaped(fleet, status):
    rogue = RogueGateway(fleet, 'rogue', 'x', status, 'okay' + ESCAPES, ESCAPES)
    try:
        for extra in ([], ['--json']):
            r = subprocess.run([sys.executable, '-m', 'sp_tool', 'call', fleet.broker.url + '/rogue/x', 'read', '0',
                                '--timeout', '5'] + extra, capture_output=True, timeout=60, cwd=ROOT,
                               stdin=subprocess.DEVNULL)
            assert r.stdout.strip(), r.stderr
            assert r.returncode == {0: 0, 1: 1, wire.STATUS_BAD_REQUEST: 1}[status], r.stderr
            for out in (r.stdout, r.stderr):
                assert not any(c in out for c in b'\x1b\x07\r'), out
            assert b'\\x1b[2J' in r.stdout + r.stderr or b'\\u001b[2J' in r.stdout
    finally:
        rogue.inbox.close()



def test_a_status_name_that_contradicts_its_status_is_not_taken(fleet):
    """The caller names the status itself: a relayed 'okay' on a callback error printed 'okay' with exit 1."""
    rogue = RogueGateway(fleet, 'rogue', 'z', sp.STATUS_CALLBACK_ERROR, 'okay', 42)
    try:
        with BoardClient(fleet.broker.url, 'z', prefix='rogue') as caller:
            assert caller.request('read', 0, timeout=WAIT) == wire.answer(sp.STATUS_CALLBACK_ERROR, 42)
    finally:
        rogue.inbox.close()


@pytest.mark.parametrize('status', [wire.STATUS_BOARD_OFFLINE, wire.STATUS_TIMEOUT, wire.STATUS_BOARD_RESERVED])
def test_a_board_that_answers_with_a_status_of_the_gateways_own_cannot_speak_for_the_gateway(fleet, status):
    """A board's own status (add_status) may be any number: one of the gateway's comes wrapped, so that no board
    can say it is offline or timed out (sp call exited 4 and 5 for such an answer)."""
    board = sp.pure_json_protocol(sp.tcp_server_stp('127.0.0.1', 0))
    board.add_status(status, 'mine')
    board.register_callback(sp.SID_READ_REQUEST, 0, lambda msg: (status, 'forged'))
    gateway = side_gateway(fleet, 'h=tcp://127.0.0.1:%d' % board.__comm_inst__.port, 'forge', 'h')
    try:
        with BoardClient(fleet.broker.url, 'h', prefix='forge') as client:
            assert client.request('read', 0, timeout=WAIT) == wire.answer(wire.STATUS_BOARD_RESERVED,
                                                                           {'status': status, 'data': 'forged'})
        if status == wire.STATUS_BOARD_OFFLINE:
            r = subprocess.run([sys.executable, '-m', 'sp_tool', 'call', fleet.broker.url + '/forge/h', 'read', '0',
                                '--timeout', '5'], capture_output=True, text=True, timeout=60, cwd=ROOT,
                               stdin=subprocess.DEVNULL)
            assert r.returncode == EXIT_STATUS, r.stderr
            assert r.stdout == 'board status reserved: {"status": 100, "data": "forged"}\n'
            assert r.stderr.endswith('answered: board status reserved\n'), r.stderr
    finally:
        gateway.stop()
        board.close()


@pytest.mark.parametrize('status', [0, wire.STATUS_BOARD_OFFLINE])
def test_an_answer_without_data_answers_no_call(fleet, status):
    """An answer names its status and carries data: one without data is dropped and counted like any stray
    message on the reply topic, not handed to the caller (sp call printed a traceback)."""
    rogue = RogueGateway(fleet, 'rogue', 'y', status, 'okay', None)
    del rogue.body['data']
    try:
        r = subprocess.run([sys.executable, '-m', 'sp_tool', 'call', fleet.broker.url + '/rogue/y', 'read', '0',
                            '--timeout', '2'], capture_output=True, timeout=60, cwd=ROOT, stdin=subprocess.DEVNULL)
        assert r.returncode == EXIT_TIMEOUT and b'Traceback' not in r.stderr, r.stderr
        with BoardClient(fleet.broker.url, 'y', prefix='rogue') as caller:
            with pytest.raises(TimeoutError):
                caller.request('read', 0, timeout=2)
            assert caller.counters['dropped'] == 1
    finally:
        rogue.inbox.close()

ACL = '''user gateway
topic read sp/+/+/+/req
topic write sp/#

user dashboard
topic write sp/kitchen/+/+/req
topic write sp/garage/read/+/req
topic read sp/+/status

user porch-camera
topic write sp/porch/+/+/req
topic read sp/porch/status

pattern read sp/reply/%c
'''


@pytest.fixture(scope='module')
def locked_broker(tmp_path_factory):
    """mosquitto with logins and the ACL of docs/fleets.md, two host boards (kitchen, porch) and a gateway."""
    folder = tmp_path_factory.mktemp('acl')
    broker = Mosquitto(str(folder))
    broker.stop()
    passwd, acl = folder / 'passwd', folder / 'acl'
    for user in ('gateway', 'dashboard', 'porch-camera'):
        subprocess.run(['mosquitto_passwd', '-b'] + (['-c'] if user == 'gateway' else []) + [str(passwd), user,
                       user + '-pw'], check=True, capture_output=True)
    acl.write_text(ACL)
    with open(broker.config, 'w') as f:
        f.write('listener %d 127.0.0.1\nallow_anonymous false\npersistence false\npassword_file %s\nacl_file %s\n'
                'user %s\n' % (broker.port, passwd, acl, getpass.getuser()))   # root's mosquitto reads as that user
    broker.start()
    boards = {name: sp.pure_json_protocol(sp.tcp_server_stp('127.0.0.1', 0), channel_name=name)
              for name in ('kitchen', 'porch')}
    for board in boards.values():
        add_demo_services(board)
    gateway = Gateway(wire.Broker('127.0.0.1', broker.port, username='gateway', password='gateway-pw'),
                      [parse_board('%s=tcp://127.0.0.1:%d' % (name, board.__comm_inst__.port))
                       for name, board in boards.items()], timeout=2.0)
    gateway.start()
    try:
        yield broker
    finally:
        gateway.stop()
        for board in boards.values():
            board.close()
        broker.stop()


def logged_in(broker, user, board):
    client = BoardClient('mqtt://%s:%s-pw@127.0.0.1:%d' % (user, user, broker.port), board)
    deadline = time.monotonic() + WAIT
    while True:     # the gateway subscribes on its own time: the first calls may go into nothing
        try:
            client.request('read', 0, timeout=0.5)
            return client
        except TimeoutError:
            if time.monotonic() > deadline:
                client.close()
                raise


def test_the_documented_acl_confines_callers_to_their_boards_and_reply_topics(locked_broker):
    """The ACL of docs/fleets.md: porch-camera calls the porch and not the kitchen, and cannot publish on the
    dashboard's reply topic. What it can do is make the gateway answer there: that answer is dropped."""
    dashboard = logged_in(locked_broker, 'dashboard', 'kitchen')
    camera = logged_in(locked_broker, 'porch-camera', 'porch')
    try:
        assert camera.request('execute', 0, 'porch') == wire.answer(sp.STATUS_OKAY, 'porch')
        kitchen = BoardClient('mqtt://porch-camera:porch-camera-pw@127.0.0.1:%d' % locked_broker.port, 'kitchen')
        with kitchen, pytest.raises(TimeoutError):
            kitchen.request('execute', 0, 'not mine', timeout=3)
        raw = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id='camera-raw', protocol=mqtt.MQTTv5)
        raw.username_pw_set('porch-camera', 'porch-camera-pw')      # the camera's login, publishing by hand
        raw.connect('127.0.0.1', locked_broker.port)
        raw.loop_start()
        properties = Properties(PacketTypes.PUBLISH)
        properties.CorrelationData = b'1'
        forged = dict(wire.answer(sp.STATUS_OKAY, 'forged'), board='kitchen', service_id=11, data_id=0)
        raw.publish(dashboard.reply_topic, json.dumps(forged), properties=properties)   # denied
        properties.ResponseTopic = dashboard.reply_topic
        raw.publish('sp/porch/read/0/req', b'null', properties=properties)   # relayed by the gateway
        deadline = time.monotonic() + WAIT
        while dashboard.counters['dropped'] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert dashboard.request('execute', 0, 'mine') == wire.answer(sp.STATUS_OKAY, 'mine')
        assert dashboard.counters['dropped'] == 1
        raw.disconnect()
        raw.loop_stop()
    finally:
        dashboard.close()
        camera.close()


def test_an_answer_larger_than_the_broker_takes_is_said_in_a_short_one_and_logged_within_the_budget(tmp_path, caplog):
    """A caller's long reply topic (or a broker's small Maximum Packet Size) makes an answer the broker would drop
    the gateway for: the caller is told so in one that fits, and the lines on it keep the budget (one a call)."""
    from sp_common.logtext import LINES_A_SECOND
    caplog.set_level(logging.WARNING, 'sp')
    broker = Mosquitto(str(tmp_path))
    broker.stop()
    with open(broker.config, 'a') as f:
        f.write('max_packet_size 20000\n')
    broker.start()
    board = sp.pure_json_protocol(sp.tcp_server_stp('127.0.0.1', 0))
    add_demo_services(board)
    gateway = Gateway(wire.Broker('127.0.0.1', broker.port), [parse_board('h=tcp://127.0.0.1:%d'
                                                                         % board.__comm_inst__.port)], timeout=2.0)
    gateway.start()
    caller = Inbox(broker, 'x/reply/#')
    status = Inbox(broker, 'sp/h/status')
    try:
        status.wait_payload('sp/h/status', 'online')
        with BoardClient(broker.url, 'h') as client:
            assert client.request('execute', 0, 'up', timeout=WAIT)['data'] == 'up'
        reply = 'x/reply/' + 'r' * 15000
        for i in range(60):
            # 2,000 bytes of UTF-8 in the request, 6,000 of \\u00e9 in its answer
            caller.ask('sp/h/execute/0/req', json.dumps('\u00e9' * 1000, ensure_ascii=False), b'%d' % i, reply)
        caller.wait_for(lambda: len(caller.answers()) == 60)
        assert {answer['status'] for answer in caller.answers().values()} == {wire.STATUS_BAD_REQUEST}
        assert 'larger than the broker takes' in caller.answers()[b'0']['data']
        assert gateway.client.too_big == 60
        lines = [r for r in caplog.records if 'not sent' in r.getMessage()]
        assert 1 <= len(lines) <= LINES_A_SECOND * 2, len(lines)
    finally:
        status.close()
        caller.close()
        gateway.stop()
        board.close()
        broker.stop()


def test_a_caller_that_takes_the_gateways_published_id_as_its_client_id_takes_nothing_over(fleet):
    """The boards' statuses name the gateway: a client id made from that id let any caller take the gateway's
    connection over, and its last will said it was offline."""
    before = len([m for t, m in fleet.status.messages if t == fleet.gateway.gateway_topic])
    impostor = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id='sp-gateway-' + fleet.gateway.id,
                           protocol=mqtt.MQTTv5)
    impostor.connect('127.0.0.1', fleet.broker.port)
    impostor.loop_start()
    try:
        time.sleep(0.5)
        still_answers(fleet)
    finally:
        impostor.disconnect()
        impostor.loop_stop()
    assert [m.payload for t, m in fleet.status.messages if t == fleet.gateway.gateway_topic][before:] == []


def test_a_broker_that_announces_a_huge_packet_loses_the_link_not_the_memory():
    """The MQTT client reads a packet whole before it parses it: one over MAX_PACKET ends the link at once."""
    from sp_tool.mqtt_aio import MAX_PACKET, _bounds
    huge = bytearray(b'\x30\xff\xff\xff\x7f')   # PUBLISH, 268 MB announced, nothing of it sent yet
    with pytest.raises(ValueError, match='over the limit'):
        _bounds(huge, 0)
    small = bytearray(b'\x30\x05ab')   # 5 bytes announced, 2 here: wait for the rest
    assert _bounds(small, 0) is None and MAX_PACKET >= 65536 * 2


def test_a_request_over_the_packet_limit_is_dropped_by_the_broker_and_keeps_no_gateway_off(fleet, caplog):
    """The gateway's CONNECT names its largest packet, so the broker drops a longer request itself: taken and
    refused by the gateway it would end the link, and a QoS 1 request comes again on every reconnect."""
    caplog.set_level(logging.INFO, 'sp.gateway')
    raw = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id='huge-raw', protocol=mqtt.MQTTv5)
    raw.connect('127.0.0.1', fleet.broker.port)
    raw.loop_start()
    try:
        requests = fleet.gateway.counters['requests']
        raw.publish('sp/a/read/0/req', b'x' * (17 << 20), qos=1).wait_for_publish(10)
        still_answers(fleet)
        time.sleep(1.0)
        assert fleet.gateway.client.is_connected() and fleet.gateway.counters['requests'] == requests + 1
        assert not [r for r in caplog.records if 'bad packet' in r.getMessage() or 'connected to' in r.getMessage()]
    finally:
        raw.disconnect()
        raw.loop_stop()


class _Transport:
    """What a Client writes, kept."""

    def __init__(self):
        self.written = []

    def is_closing(self):
        return False

    def get_write_buffer_size(self):
        return 0

    def write(self, data):
        self.written.append(data)


def test_a_message_with_more_properties_than_a_request_needs_is_dropped_unread():
    """A PUBLISH of 5,000 empty user properties (each one read in Python: a flood of them stalled every board of
    the gateway) is acknowledged and dropped, counted; one of MAX_PROPERTIES is taken, and only
    MAX_USER_PROPERTIES of them are kept."""
    from sp_tool import mqtt_aio
    client = mqtt_aio.Client(wire.Broker('127.0.0.1', 1883), 'props')
    client._transport = transport = _Transport()
    got = []
    client.on_message = got.append
    for count in (mqtt_aio.MAX_PROPERTIES, 5000):
        properties = mqtt_aio.publish_properties(user_properties=[('k%d' % i, '') for i in range(count)])
        client._handle(mqtt_aio.PUBLISH | 0x02, b'\x00\x01t\x00\x07' + properties + b'payload')
    assert len(got) == 1 and got[0].payload == b'payload' and got[0].user_properties['k0'] == ''
    assert len(got[0].user_properties) == mqtt_aio.MAX_USER_PROPERTIES
    assert client.dropped == 1 and transport.written == [bytes((mqtt_aio.PUBACK, 2, 0, 7))] * 2


def test_a_broker_that_reads_nothing_loses_the_link_not_the_memory(monkeypatch):
    """Answers and acknowledgements for a broker that stopped reading queue up to MAX_UNSENT, then the link goes
    (the gateway reconnects, and its session brings what the broker still holds)."""
    import asyncio
    from sp_tool import mqtt_aio
    monkeypatch.setattr(mqtt_aio, 'MAX_UNSENT', 1 << 16)

    async def main():
        async def broker(reader, writer):
            await reader.read(1024)                   # the CONNECT
            writer.write(b'\x20\x03\x00\x00\x00')     # CONNACK, accepted; from here on nothing is read
        server = await asyncio.start_server(broker, '127.0.0.1', 0)
        server.sockets[0].setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client = mqtt_aio.Client(wire.Broker('127.0.0.1', server.sockets[0].getsockname()[1]), 'stuck')
        connected = asyncio.Event()
        client.on_connect = connected.set
        client.start()
        await asyncio.wait_for(connected.wait(), 5)
        client._transport.get_extra_info('socket').setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        published = 0
        while client.publish('t', b'x' * 4096):
            published += 1
            assert published < 1000 and client.write_buffer_size() <= mqtt_aio.MAX_UNSENT + 8192
            await asyncio.sleep(0)
        await asyncio.sleep(0.05)
        assert not client.is_connected() and client.write_buffer_size() == 0
        await client.stop(0.1)
        server.close()
    asyncio.run(asyncio.wait_for(main(), 30))


def test_qos_1_messages_in_flight_keep_to_the_brokers_receive_maximum():
    """A broker that enforces its Receive Maximum drops a client that has more QoS 1 messages unacknowledged: past
    it, a message goes at QoS 0, and an acknowledgement makes room again."""
    import asyncio
    from sp_tool import mqtt_aio

    async def main():
        got = []

        async def broker(reader, writer):
            await reader.read(1024)                                       # the CONNECT
            writer.write(b'\x20\x06\x00\x00\x03\x21\x00\x02')                # CONNACK: Receive Maximum 2
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                got.append(data)
        server = await asyncio.start_server(broker, '127.0.0.1', 0)
        client = mqtt_aio.Client(wire.Broker('127.0.0.1', server.sockets[0].getsockname()[1]), 'quota')
        connected = asyncio.Event()
        client.on_connect = connected.set
        client.start()
        await asyncio.wait_for(connected.wait(), 5)

        def qos_sent(count):
            """The QoS of the last count PUBLISHes the broker got (each its own read: they go a loop step apart)."""
            return [packet[0] >> 1 & 3 for packet in got[-count:]]
        for _ in range(4):
            assert client.publish('t', b'x', 1)
            await asyncio.sleep(0.05)
        assert qos_sent(4) == [1, 1, 0, 0]
        first_id = got[-4][5:7]   # (after the fixed header and the topic, 2 + 3 bytes)
        client._handle(mqtt_aio.PUBACK, first_id + b'\x00')    # the broker acknowledges the first
        assert client.publish('t', b'x', 1)
        await asyncio.sleep(0.05)
        assert qos_sent(1) == [1]
        await client.stop(0.1)
        server.close()
    asyncio.run(asyncio.wait_for(main(), 30))


def test_a_gateway_id_from_the_broker_reaches_the_log_escaped(caplog):
    """A hostile (or non-checking) broker names a board's owner with terminal escapes: the gateway's log line about
    it must not carry them to its operator's terminal (mosquitto refuses them; another broker may not)."""
    from sp_tool.mqtt_aio import _string, _varint, publish_properties
    evil = '\x1b]0;owned\x07\x1b[2J'

    def packet(first, body):
        return bytes((first,)) + _varint(len(body)) + body

    def publish(topic, payload, properties=publish_properties()):
        return packet(0x30, _string(topic) + properties + payload)
    listener = socket.create_server(('127.0.0.1', 0))

    def broker():
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)                                   # the CONNECT
            conn.sendall(packet(0x20, b'\x00\x00\x00'))       # CONNACK, accepted
            conn.sendall(publish('sp/gateway/%s/status' % evil, b'online'))
            conn.sendall(publish('sp/kitchen/status', b'online', publish_properties(user_properties=[('gateway', evil)])))
            while conn.recv(4096):
                pass
    threading.Thread(target=broker, daemon=True).start()
    gateway = Gateway(wire.Broker('127.0.0.1', listener.getsockname()[1]), [parse_board('kitchen=tcp://127.0.0.1:9')])
    gateway.start()
    try:
        deadline = time.monotonic() + 10
        while not [r for r in caplog.records if 'claimed by gateway' in r.getMessage()]:
            assert time.monotonic() < deadline, caplog.text
            time.sleep(0.05)
    finally:
        gateway.stop()
        listener.close()
    line = [r for r in caplog.records if 'claimed by gateway' in r.getMessage()][0].getMessage()
    assert '\x1b' not in line and '\x07' not in line and '\\x1b]0;owned\\x07' in line, line


def _mqtt_packet(first, body):
    from sp_tool.mqtt_aio import _varint
    return bytes((first,)) + _varint(len(body)) + body


CONNACK_OK = b'\x20\x03\x00\x00\x00'


def _against(broker_writes, seconds, monkeypatch):
    """What mqtt_aio.Client made of a fake broker that answers each CONNECT with broker_writes (bytes, or a list
    written 1 s apart): its connection attempts, connects, messages, SUBACKs and errors within seconds."""
    import asyncio
    from sp_tool import mqtt_aio
    monkeypatch.setattr(mqtt_aio, 'CONNECT_S', 1.0)
    monkeypatch.setattr(mqtt_aio, 'RECONNECT_S', (0.2, 0.2))
    got = {'attempts': 0, 'connects': 0, 'messages': [], 'subacks': [], 'errors': []}

    async def main():
        async def broker(reader, writer):
            got['attempts'] += 1
            await reader.read(1024)   # the CONNECT
            for piece in broker_writes if isinstance(broker_writes, list) else [broker_writes]:
                writer.write(piece)
                await asyncio.sleep(1)
            await asyncio.sleep(seconds)
        server = await asyncio.start_server(broker, '127.0.0.1', 0)
        client = mqtt_aio.Client(wire.Broker('127.0.0.1', server.sockets[0].getsockname()[1]), 'probed')
        client.on_connect = lambda: (got.__setitem__('connects', got['connects'] + 1),
                                     client.subscribe([('a/#', 1)]))
        client.on_message = lambda msg: got['messages'].append(msg.payload)
        client.on_suback = got['subacks'].append
        client.on_error = got['errors'].append
        client.start()
        await asyncio.sleep(seconds)
        await client.stop(0.1)
        server.close()
    asyncio.run(main())
    return got


def test_a_broker_that_cannot_be_reached_is_said_without_v_and_its_repeats_only_with_it(monkeypatch, caplog):
    """`sp gateway` without -v shows warnings only: the first failure to reach the broker is one, and so is the
    first after the broker was reached again; the attempts that fail the same way every 1 to 2 s meanwhile are
    info (-v)."""
    import asyncio
    from sp_tool import mqtt_aio
    monkeypatch.setattr(mqtt_aio, 'RECONNECT_S', (0.05, 0.05))
    caplog.set_level(logging.INFO, 'sp.gateway')
    port = free_port()

    def levels():
        return [r.levelname for r in caplog.records if 'cannot reach the broker' in r.getMessage()]

    async def main():
        client = mqtt_aio.Client(wire.Broker('127.0.0.1', port), 'unreached')
        connected = []
        client.on_connect = lambda: connected.append(True)
        client.start()

        async def until(predicate):
            for _ in range(500):
                if predicate():
                    return
                await asyncio.sleep(0.01)
            raise AssertionError(caplog.text)

        async def broker(reader, writer):   # takes the client once, then goes
            await reader.read(1024)
            writer.write(CONNACK_OK)
            await writer.drain()
            writer.close()
        await until(lambda: len(levels()) >= 3)
        server = await asyncio.start_server(broker, '127.0.0.1', port)
        await until(lambda: connected)
        server.close()
        await server.wait_closed()
        before = len(levels())
        await until(lambda: len(levels()) >= before + 3)
        await client.stop(0.1)
        return before
    before = asyncio.run(main())
    assert levels()[:before] == ['WARNING'] + ['INFO'] * (before - 1)
    assert levels()[before:before + 3] == ['WARNING', 'INFO', 'INFO']


def test_a_tls_file_the_gateway_cannot_take_is_an_error_at_once_not_a_broker_out_of_reach(tmp_path):
    """No reconnect mends a missing CA file: it is refused when the client is made, and `sp gateway` exits 2
    saying which file, not that the broker cannot be reached."""
    from sp_tool.mqtt_aio import Client
    missing = str(tmp_path / 'missing.pem')
    with pytest.raises(ValueError, match='the CA file .*missing.pem'):
        Client(wire.Broker('127.0.0.1', 1, tls=True, cafile=missing), 'x')
    with pytest.raises(ValueError, match='the client certificate .*missing.pem'):
        Client(wire.Broker('127.0.0.1', 1, tls=True, certfile=missing), 'x')
    r = subprocess.run([sys.executable, '-m', 'sp_tool', 'gateway', '--broker', 'mqtt://127.0.0.1:1', '--cafile',
                        missing, 'x=tcp://127.0.0.1:9'], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 2 and 'the CA file' in r.stderr and 'cannot reach' not in r.stderr, r.stderr


def test_a_broker_that_never_finishes_its_connack_is_given_up_and_tried_again(monkeypatch):
    """A byte now and then is no answer: the CONNACK must come whole within CONNECT_S (it kept the gateway
    offline for good, trying nothing else)."""
    got = _against([b'\x20\x7f'] + [b'\x00'] * 10, 3.5, monkeypatch)
    assert got['attempts'] >= 2 and got['connects'] == 0


def test_what_a_refusing_connack_comes_with_is_not_taken(monkeypatch):
    refused = _mqtt_packet(0x20, b'\x00\x87\x00')
    got = _against(refused + _mqtt_packet(0x30, b'\x00\x03a/b\x00hello') + CONNACK_OK, 1.0, monkeypatch)
    assert got['connects'] == 0 and got['messages'] == [] and len(got['errors']) >= 1


@pytest.mark.parametrize('after_connack', [
    _mqtt_packet(0x34, b'\x00\x03a/b\x12\x34\x00at QoS 2'),   # never subscribed above QoS 1
    CONNACK_OK * 100,                                         # a connection is accepted once
    _mqtt_packet(0x90, b'\xbe\xef\x00\x00'),                  # a SUBACK for a SUBSCRIBE never sent
], ids=['qos2', 'connacks', 'suback'])
def test_a_packet_the_broker_may_not_send_now_ends_the_link(monkeypatch, after_connack):
    got = _against(CONNACK_OK + after_connack, 1.0, monkeypatch)
    # each link dropped at once and made again (the last one, as the client stops, perhaps not yet connected)
    assert got['attempts'] >= 2 and got['attempts'] - 1 <= got['connects'] <= got['attempts']
    assert got['messages'] == [] and got['subacks'] == []


def test_a_refused_subscription_is_an_error_not_a_subscription(monkeypatch):
    """A broker's ACL may refuse a topic in the SUBACK (reason 0x87): BoardClient says so at once, where it
    took any SUBACK for its reply topic and let every call time out."""
    import asyncio
    from sp_tool import mqtt_client

    async def broker(reader, writer):
        await reader.read(1024)
        writer.write(CONNACK_OK)
        subscribe = await reader.read(1024)
        writer.write(_mqtt_packet(0x90, subscribe[2:4] + b'\x00\x87'))
        await asyncio.sleep(5)

    def serve(started):
        async def main():
            server = await asyncio.start_server(broker, '127.0.0.1', 0)
            started.append(server.sockets[0].getsockname()[1])
            await asyncio.sleep(5)
            server.close()
        asyncio.run(main())
    started = []
    threading.Thread(target=serve, args=(started,), daemon=True).start()
    assert wait_until(lambda: started)
    with pytest.raises(ConnectionError, match='refused a subscription'):
        mqtt_client.BoardClient('mqtt://127.0.0.1:%d' % started[0], 'x', connect_timeout=3)


def test_the_keepalive_and_packet_size_a_broker_sets_in_its_connack_are_kept():
    """MQTT 5: a broker's Server Keep Alive replaces the client's (it drops a client that pings later), and no
    packet goes over the broker's Maximum Packet Size (it drops the link for one)."""
    import asyncio
    from sp_tool import mqtt_aio
    seen = []

    async def main():
        async def broker(reader, writer):
            await reader.read(1024)
            properties = b'\x13\x00\x01' + b'\x27\x00\x00\x00\x64'   # keep alive 1 s, packets of 100 bytes at most
            writer.write(_mqtt_packet(0x20, b'\x00\x00' + bytes((len(properties),)) + properties))
            while True:
                data = await reader.read(1024)
                if not data:
                    break
                seen.append(data)
                writer.write(b'\xd0\x00' * data.count(mqtt_aio.PINGREQ))   # PINGRESP
        server = await asyncio.start_server(broker, '127.0.0.1', 0)
        client = mqtt_aio.Client(wire.Broker('127.0.0.1', server.sockets[0].getsockname()[1]), 'kept', keepalive=30)
        connected = asyncio.Event()
        client.on_connect = connected.set
        client.start()
        await asyncio.wait_for(connected.wait(), 5)
        assert client.publish('t', b'x' * 200) is False and client.publish('t', b'small') is True
        await asyncio.sleep(2.5)
        await client.stop(0.1)
        server.close()
    asyncio.run(main())
    sent = b''.join(seen)
    assert b'x' * 200 not in sent and b'small' in sent
    assert sent.count(mqtt_aio.PINGREQ) >= 2   # every half second, not every 15


def test_a_late_answer_on_the_original_wire_goes_to_no_later_caller(fleet):
    """A board that speaks only the original wire (an upstream socket_protocol peer) matches answers by their ids:
    the late answer to A's timed-out call went to B, the next caller on those ids. The link now drops after such a
    timeout, and the answers on their way with it."""
    slow = threading.Event()

    def echo(msg):
        if not slow.is_set():
            slow.set()
            time.sleep(1.5)   # longer than the gateway waits
        return sp.STATUS_OKAY, msg.get_data()
    port = free_port()
    board = sp.pure_json_protocol(sp.tcp_server_stp('127.0.0.1', port), channel_name='old', session_v2=False)
    board.register_callback(sp.SID_EXECUTE_REQUEST, 0, echo)
    gateway = side_gateway(fleet, 'old=tcp://127.0.0.1:%d' % port, 'legacy', 'old', timeout=1.0)
    try:
        results = {}

        def call(name, data, delay):
            time.sleep(delay)
            with BoardClient(fleet.broker.url, 'old', prefix='legacy') as client:
                results[name] = client.request('execute', 0, data, timeout=8)
        callers = [threading.Thread(target=call, args=('A', 'A-private', 0)),
                   threading.Thread(target=call, args=('B', 'B', 1.2))]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(20)
        assert results['A']['status'] != sp.STATUS_OKAY
        assert results['B']['data'] != 'A-private', results
    finally:
        gateway.stop()
        board.close()


def test_a_call_has_one_topic_so_an_acl_that_denies_it_denies_every_spelling(fleet):
    """A broker's ACL denies by topic: sp/a/write/# denied, the same write on sp/a/20/1/req or with fullwidth digits
    passed it. A number of a named service, a leading 0, -0 and digits beyond ASCII are bad requests now."""
    caller = Inbox(fleet.broker, 'test/spelling')
    try:
        cases = {b'number of write': 'sp/a/20/1/req', b'leading zero': 'sp/a/write/01/req',
                 b'minus zero': 'sp/a/write/-0/req', b'fullwidth': 'sp/a/\uff12\uff10/1/req',
                 b'arabic-indic': 'sp/a/write/\u0661/req'}
        for correlation, topic in cases.items():
            caller.ask(topic, b'"aliased"', correlation, 'test/spelling')
        caller.wait_for(lambda: len(caller.answers()) == len(cases))
        for correlation, answer in caller.answers().items():
            assert answer['status'] == wire.STATUS_BAD_REQUEST, (correlation, answer)
        assert 'spelled write' in caller.answers()[b'number of write']['data']
    finally:
        caller.close()
    with BoardClient(fleet.broker.url, 'a') as client:   # a caller's own number of a named service is its name
        assert client.request(20, 1, 'by number')['status'] == sp.STATUS_OKAY
        assert client.request('read', 1)['data'] == 'by number'


def test_a_caller_cannot_fill_the_log_with_bad_requests(fleet, caplog):
    """200 bad requests on 60,000-character topics made 200 lines of 120,000 characters: lines now hold 200 of a
    topic, and past LINES_A_SECOND a second they are counted, not logged."""
    from sp_common.logtext import LINES_A_SECOND
    caplog.set_level(logging.WARNING, logger='sp.gateway')
    before = fleet.gateway.counters['bad_input']
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    publisher.connect('127.0.0.1', fleet.broker.port)
    publisher.loop_start()
    try:
        for i in range(200):
            publisher.publish('sp/a/%s/%d/req' % ('x' * 60000, i), b'null', qos=1).wait_for_publish(WAIT)
        wait_counter(fleet.gateway, 'bad_input', before + 200)
        time.sleep(1.1)   # a bad request of the next second says how many lines were left out
        publisher.publish('sp/a/fly/0/req', b'null', qos=1).wait_for_publish(WAIT)
        wait_counter(fleet.gateway, 'bad_input', before + 201)
    finally:
        publisher.loop_stop()
        publisher.disconnect()
    lines = [r.getMessage() for r in caplog.records if r.name == 'sp.gateway']
    assert lines and max(len(line) for line in lines) < 1000
    said = [line for line in lines if line.startswith('bad request on')]
    assert len(said) <= 4 * LINES_A_SECOND and len(said) < 200, len(said)   # (the 200 came within a few seconds)
    still_answers(fleet)
    assert any('more lines on bad input left out' in line for line in lines)
