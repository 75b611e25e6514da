"""sp gateway with a real mosquitto and real virtual boards: calls from many clients, boards and the broker going away
and coming back, bad input, the MQTT 3.1.1 envelope, and the sp commands through a broker.

Every wait is on a message or a state with a generous timeout; nothing sleeps to make a point.
"""
import asyncio
import functools
import gc
import getpass
import json
import logging
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
import weakref

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import sp_cpython as sp
from conftest import ROOT, free_port, interrupt, skip_or_fail, wait_until
from sp_tool import errors
from sp_tool import mqtt_wire as wire
from sp_tool.demo import add_demo_services
from sp_tool.call_memory import MAX_REPEATS, CallMemory
from sp_tool.claims import CLAIM_PROPERTY, GIVE_WAY, MAX_GATEWAYS, MAX_ID, OWNER_PROPERTY, RESTATE, Claims
from sp_tool import gateway as gateway_module
from sp_tool.gateway import UNSENT_BYTES, Gateway, Reply, parse_board
from sp_tool import mqtt_aio
from sp_tool.mqtt_aio import Message, publish_properties
from sp_tool.mqtt_client import BoardClient
from sp_tool.target import board_env
from sp_tool.virtual_board import VirtualBoard
from tools.mosquitto import Mosquitto
from tools.unix_board import UnixBoard

SECRET = 'apple'
GATEWAY_TIMEOUT = 2.0
WAIT = 20.0


class Inbox:
    """A paho client (MQTT 5 unless told) that keeps what arrives on its subscriptions, by topic, and lets a test wait."""

    def __init__(self, broker, *topics, protocol=mqtt.MQTTv5):
        self.messages = []
        self.cond = threading.Condition()
        self.topics = topics
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id='test-' + uuid.uuid4().hex[:8],
                                  protocol=protocol)
        self.client.on_connect = lambda client, *_: client.subscribe([(t, 1) for t in topics])
        self.client.on_subscribe = lambda *_: self._note('$subscribed', None)
        self.client.on_message = lambda client, userdata, msg: self._note(msg.topic, msg)
        self.client.reconnect_delay_set(1, 1)
        self.client.connect('127.0.0.1', broker.port)
        self.client.loop_start()
        self.wait_for(lambda: any(t == '$subscribed' for t, _ in self.messages))

    def _note(self, topic, msg):
        with self.cond:
            self.messages.append((topic, msg))
            self.cond.notify_all()

    def last(self, topic, default=None):
        found = [msg for t, msg in self.messages if t == topic]
        return found[-1] if found else default

    def wait_for(self, predicate, timeout=WAIT):
        with self.cond:
            assert self.cond.wait_for(predicate, timeout), [(t, getattr(m, 'payload', None)) for t, m in self.messages]

    def wait_payload(self, topic, payload):
        self.wait_for(lambda: getattr(self.last(topic), 'payload', None) == payload.encode())

    def answers(self):
        return {msg.properties.CorrelationData: json.loads(msg.payload) for t, msg in self.messages
                if msg is not None and getattr(msg.properties, 'CorrelationData', None) is not None}

    def ask(self, topic, payload, correlation, reply_to, qos=0):
        properties = Properties(PacketTypes.PUBLISH)
        properties.ResponseTopic = reply_to
        properties.CorrelationData = correlation
        self.client.publish(topic, payload, qos, properties=properties)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


class Fleet:
    """mosquitto, board a (serial pty, secret, pure_json), board b (TCP, struct_json) and one gateway in between."""

    def __init__(self, folder):
        self.broker = Mosquitto(str(folder))
        self.a = VirtualBoard(boot=True, env=board_env(SECRET, 'pure_json', 0))
        self.b_port = free_port()
        self.b = self.plug_b()
        broker, _ = wire.parse_broker(self.broker.url)
        self.gateway = Gateway(broker, [parse_board('a=%s?secret=%s' % (self.a.port, SECRET)),
                                        parse_board('b=tcp://127.0.0.1:%d?codec=struct_json' % self.b_port)],
                               timeout=GATEWAY_TIMEOUT)
        self.gateway.start()
        self.status = Inbox(self.broker, 'sp/+/status', 'sp/gateway/+/status')

    def plug_b(self):
        return VirtualBoard(boot=True, env=board_env(None, 'struct_json', self.b_port))

    def wait_online(self):
        for topic in ('sp/a/status', 'sp/b/status', self.gateway.gateway_topic):
            self.status.wait_payload(topic, 'online')

    def close(self):
        self.status.close()
        self.gateway.stop()
        self.b.stop()
        self.a.stop()
        self.broker.stop()


def side_gateway(fleet, boards, prefix, *online, **options):
    """A second gateway on the fleet's broker (boards: one NAME=TARGET or a list), returned once it listens for calls:
    its own status says online only after it has subscribed (and after the boards named in online are up), so no
    test call is published into nothing."""
    boards = [boards] if isinstance(boards, str) else boards
    gateway = Gateway(wire.parse_broker(fleet.broker.url)[0], [parse_board(b) for b in boards], prefix=prefix, **options)
    gateway.start()
    status = Inbox(fleet.broker, prefix + '/+/status', gateway.gateway_topic)
    try:
        for topic in (gateway.gateway_topic,) + tuple('%s/%s/status' % (prefix, name) for name in online):
            status.wait_payload(topic, 'online')
    except BaseException:
        gateway.stop()
        raise
    finally:
        status.close()
    return gateway


@pytest.fixture(scope='module')
def fleet(tmp_path_factory):
    f = Fleet(tmp_path_factory.mktemp('broker'))
    try:   # (a fleet that never came online is stopped too: its gateway would dial on into later tests' ports)
        f.wait_online()
        yield f
    finally:
        f.close()


def test_four_clients_calling_both_boards_at_once_each_get_their_own_answers(fleet):
    per_board = fleet.gateway.links['a'].max_waiting // 4     # all of it admitted: what is over is the next test's
    callers = [Inbox(fleet.broker, 'test/reply/%d' % i) for i in range(4)]
    try:
        for i, caller in enumerate(callers):        # everything in flight before the first answer is read
            for j in range(per_board):
                for board in ('a', 'b'):
                    caller.ask('sp/%s/execute/0/req' % board, json.dumps({'caller': i, 'n': j, 'board': board}),
                               ('%d/%d/%s' % (i, j, board)).encode(), 'test/reply/%d' % i)
        for i, caller in enumerate(callers):
            caller.wait_for(lambda: len(caller.answers()) == 2 * per_board)
            for correlation, answer in caller.answers().items():
                caller_no, n, board = correlation.decode().split('/')
                assert answer == {'status': 0, 'status_name': 'okay', 'board': board, 'service_id': 31, 'data_id': 0,
                                  'data': {'caller': int(caller_no), 'n': int(n), 'board': board}}
                assert int(caller_no) == i
        assert fleet.gateway.counters['timeouts'] == 0
    finally:
        for caller in callers:
            caller.close()


def test_board_client_reads_writes_and_names_error_statuses(fleet):
    with BoardClient(fleet.broker.url + '/a') as client:
        assert client.request('write', 1, {'n': [1, 2.5]}) == wire.answer(sp.STATUS_OKAY)
        assert client.request('read', 1) == wire.answer(sp.STATUS_OKAY, {'n': [1, 2.5]})
        assert time.strptime(client.request(10, 0)['data'])
        assert client.request('execute', 1) == wire.answer(sp.STATUS_CALLBACK_ERROR)
        assert client.request('execute', 7)['status'] == sp.STATUS_SERVICE_OR_DATA_UNKNOWN


def test_an_unplugged_board_goes_offline_gets_error_answers_and_comes_back(fleet):
    with BoardClient(fleet.broker.url, 'b') as client:
        fleet.b.stop()
        fleet.status.wait_payload('sp/b/status', 'offline')
        start = time.monotonic()
        answer = client.request('read', 0, timeout=WAIT)
        assert answer['status'] == wire.STATUS_BOARD_OFFLINE, answer
        assert answer['status_name'] == 'board offline'
        assert time.monotonic() - start < GATEWAY_TIMEOUT + 1
        assert client.request('read', 0, timeout=WAIT)['status'] == wire.STATUS_BOARD_OFFLINE
        fleet.b = fleet.plug_b()
        fleet.status.wait_payload('sp/b/status', 'online')
        assert client.request('execute', 0, 'back', timeout=WAIT) == wire.answer(sp.STATUS_OKAY, 'back')


def test_a_board_that_dials_in_is_online_while_connected_and_answers_requests(fleet):
    """listen://: the board is the TCP client (as on Wi-Fi); the gateway is the server it connects to."""
    port = free_port()
    gateway = side_gateway(fleet, 'c=listen://127.0.0.1:%d?secret=%s' % (port, SECRET), 'dial', timeout=GATEWAY_TIMEOUT)
    status = Inbox(fleet.broker, 'dial/c/status')
    board = None
    try:
        status.wait_payload('dial/c/status', 'offline')
        with BoardClient(fleet.broker.url, 'c', prefix='dial') as client:
            for round_ in ('first', 'again'):
                board = UnixBoard('256k', role='client', tcp_host='127.0.0.1', tcp_port=port, stdio=0, secret=SECRET)
                status.wait_payload('dial/c/status', 'online')
                assert client.request('execute', 0, round_, timeout=WAIT) == wire.answer(sp.STATUS_OKAY, round_), \
                    board.stderr()
                board.stop()
                board = None
                status.wait_payload('dial/c/status', 'offline')
                answer = client.request('read', 0, timeout=WAIT)
                assert answer['status_name'] == 'board offline', answer
    finally:
        if board is not None:
            board.stop()
        status.close()
        gateway.stop()


def test_a_board_that_does_not_answer_gets_timeout_answers(fleet):
    silent = socket.create_server(('127.0.0.1', 0))   # accepts, never answers
    gateway = side_gateway(fleet, 'mute=tcp://127.0.0.1:%d' % silent.getsockname()[1], 'silent', 'mute', timeout=0.5)
    try:
        with BoardClient(fleet.broker.url, 'mute', prefix='silent') as client:
            start = time.monotonic()
            answer = client.request('read', 0, timeout=WAIT)
            assert answer == wire.answer(wire.STATUS_TIMEOUT, 'no answer from mute within 0.5 s'), answer
            assert time.monotonic() - start < 0.5 + 2
            # a board that never answers stays on the original wire, whose link drops after a timeout and comes back
            assert wait_until(gateway.links['mute'].online)
            with pytest.raises(TimeoutError):
                client.request('read', 0, timeout=0.1)     # the caller's own timeout ends its wait first
    finally:
        gateway.stop()
        silent.close()


def test_calls_over_what_a_board_may_have_waiting_get_a_timeout_answer_at_once(fleet):
    """A flood queues nowhere without end: past 8 calls per worker, the next ones are answered at once."""
    silent = socket.create_server(('127.0.0.1', 0))   # accepts, never answers: the admitted calls stay waiting
    gateway = side_gateway(fleet, 'mute=tcp://127.0.0.1:%d' % silent.getsockname()[1], 'flood', 'mute',
                           timeout=WAIT, workers=1)
    caller = Inbox(fleet.broker, 'test/flood')
    try:
        admitted = gateway.links['mute'].max_waiting
        for n in range(admitted + 3):
            caller.ask('flood/mute/read/0/req', '', b'%d' % n, 'test/flood')
        caller.wait_for(lambda: len(caller.answers()) == 3)
        turned_away = wire.addressed(wire.answer(wire.STATUS_TIMEOUT, '%d calls already wait for mute' % admitted),
                                     'mute', 11, 0)
        assert caller.answers() == {b'%d' % n: turned_away for n in range(admitted, admitted + 3)}
        assert gateway.counters['timeouts'] == 3
    finally:
        caller.close()
        gateway.stop()
        silent.close()


def test_bad_input_gets_error_answers_and_the_gateway_keeps_running(fleet):
    before = fleet.gateway.counters['bad_input']
    caller = Inbox(fleet.broker, 'test/bad')
    try:
        cases = {b'not json': ('sp/a/read/0/req', b'{oops'),
                 b'unknown service': ('sp/a/fly/0/req', b'null'),
                 b'odd service': ('sp/a/11/0/req', b'null'),
                 b'data id': ('sp/a/read/zero/req', b'null'),
                 b'oversized': ('sp/a/execute/0/req', json.dumps('x' * 70000).encode()),
                 b'data id over 16 bits': ('sp/b/read/70000/req', b'null')}
        for correlation, (topic, payload) in cases.items():
            caller.ask(topic, payload, correlation, 'test/bad')
        caller.client.publish('sp/a/read/0/req', b'{"no": "reply_to"}')      # nowhere to answer: dropped, counted
        caller.wait_for(lambda: len(caller.answers()) == len(cases))
        for correlation, answer in caller.answers().items():
            assert answer['status'] == wire.STATUS_BAD_REQUEST, (correlation, answer)
            assert answer['status_name'] == 'bad request'
        assert 'not JSON' in caller.answers()[b'not json']['data']
        assert 'over the limit' in caller.answers()[b'oversized']['data']
        deadline = time.monotonic() + WAIT
        while fleet.gateway.counters['bad_input'] < before + len(cases) + 1:
            assert time.monotonic() < deadline, fleet.gateway.counters
            time.sleep(0.05)
    finally:
        caller.close()
    with BoardClient(fleet.broker.url, 'a') as client:
        assert client.request('execute', 0, 'still here')['data'] == 'still here'


def test_a_request_whose_frame_the_link_cannot_take_is_a_bad_request_at_once(fleet):
    """A payload within --max-payload may still make a frame over the link's 64 KiB (the codec writes each
    non-ASCII character as \\uXXXX): the board would drop it unread and its caller wait the whole timeout. It is
    answered bad request before anything is sent; a long request that fits goes through."""
    board = host_board('long', slow_s=0)
    gateway = side_gateway(fleet, 'l=' + board.target, 'long', 'l', timeout=WAIT)
    caller = Inbox(fleet.broker, 'test/long')
    try:
        cases = {b'fits': json.dumps('x' * 60000), b'ascii': json.dumps('x' * 65528),
                 b'accents': json.dumps('\u00e9' * 12000, ensure_ascii=False),
                 b'deep': json.dumps(functools.reduce(lambda inner, _: [inner], range(40), 'x' * 12000))}
        start = time.monotonic()
        for correlation, payload in cases.items():
            assert len(payload.encode()) <= gateway.max_payload
            caller.ask('long/l/execute/9/req', payload.encode(), correlation, 'test/long')
        caller.wait_for(lambda: len(caller.answers()) == len(cases))
        assert time.monotonic() - start < WAIT / 2
        answers = caller.answers()
        assert answers[b'fits'] == wire.addressed(wire.answer(sp.STATUS_OKAY, 'long'), 'l', 31, 9)
        for correlation in (b'ascii', b'accents'):
            assert answers[correlation]['status'] == wire.STATUS_BAD_REQUEST, answers[correlation]
            assert "too long for the board's frames" in answers[correlation]['data']
        assert answers[b'deep']['status'] == wire.STATUS_BAD_REQUEST and 'nested deeper' in answers[b'deep']['data']
        assert len(board.runs) == 1 and gateway.counters['bad_input'] == 3
    finally:
        caller.close()
        gateway.stop()
        board.close()


def test_hostile_requests_leave_the_gateway_running_and_speak_for_no_board(fleet):
    """JSON nested past the parser's depth gets a bad-request answer; response topics with wildcards or on
    the gateway's own board topics get none (each dropped and counted); the gateway keeps answering."""
    before = fleet.gateway.counters['bad_input']
    caller = Inbox(fleet.broker, 'test/hostile')
    watch = Inbox(fleet.broker, 'sp/a/#')
    try:
        caller.ask('sp/a/read/0/req', b'[' * 60000, b'deep', 'test/hostile')
        caller.ask('sp/a/read/0/req', b'null', b'wildcard', 'sp/#')
        caller.ask('sp/a/read/0/req', b'null', b'status', 'sp/a/status')
        caller.client.publish('sp/a/read/0/req', json.dumps({'reply_to': 'sp/+/status', 'id': 1, 'data': None}))
        caller.wait_for(lambda: b'deep' in caller.answers())
        assert caller.answers()[b'deep']['status'] == wire.STATUS_BAD_REQUEST
        deadline = time.monotonic() + WAIT
        while fleet.gateway.counters['bad_input'] < before + 4:
            assert time.monotonic() < deadline, fleet.gateway.counters
            time.sleep(0.05)
        with BoardClient(fleet.broker.url, 'a') as client:
            assert client.request('execute', 0, 'still here')['data'] == 'still here'
        assert [t for t, msg in watch.messages if t.startswith('sp/') and t != 'sp/a/status' and not t.endswith('/req')] == []
        assert all(msg.payload == b'online' for t, msg in watch.messages if t == 'sp/a/status')
    finally:
        caller.close()
        watch.close()


def test_mqtt_311_clients_use_the_envelope(fleet):
    caller = Inbox(fleet.broker, 'test/v3', protocol=mqtt.MQTTv311)
    try:
        caller.client.publish('sp/b/execute/0/req', json.dumps({'reply_to': 'test/v3', 'id': 7, 'data': 'hi'}))
        caller.wait_for(lambda: caller.last('test/v3') is not None)
        assert json.loads(caller.last('test/v3').payload) == {'status': 0, 'status_name': 'okay', 'data': 'hi', 'id': 7,
                                                              'board': 'b', 'service_id': 31, 'data_id': 0}
    finally:
        caller.close()


def test_a_restarted_broker_gets_the_statuses_again(fleet):
    fleet.broker.stop()
    fleet.broker.start()
    fresh = Inbox(fleet.broker, 'sp/+/status', 'sp/gateway/+/status')   # a broker without persistence forgot them
    try:
        for topic in ('sp/a/status', 'sp/b/status', fleet.gateway.gateway_topic):
            fresh.wait_payload(topic, 'online')
    finally:
        fresh.close()
    with BoardClient(fleet.broker.url, 'a') as client:
        assert client.request('execute', 0, 'after restart', timeout=WAIT)['data'] == 'after restart'


def user_properties(props):
    """The MQTT 5 user properties of a message paho received, as a dict (a status names its owner and reason)."""
    return dict(getattr(props, 'UserProperty', None) or ())


def host_board(name, slow_s=0.0):
    """A host serving the demo that stands for a board; execute 9 answers its name (after slow_s) and counts."""
    comm = sp.tcp_server_stp('127.0.0.1', 0)
    board = sp.pure_json_protocol(comm, channel_name=name)
    add_demo_services(board)
    board.runs = []

    def who(msg):
        board.runs.append(msg.get_data())
        time.sleep(slow_s)
        return sp.STATUS_OKAY, name
    board.register_callback(sp.SID_EXECUTE_REQUEST, 9, who)
    board.target = 'tcp://127.0.0.1:%d' % comm.port
    return board


def test_two_gateways_on_one_broker_each_answer_for_their_own_boards_and_a_name_is_claimed_once(fleet):
    """The second gateway to name board x refuses it (the retained status names the owner), serves its other board,
    and takes x over once the owner stops."""
    x1, x2, y = host_board('x1'), host_board('x2'), host_board('y')
    first = side_gateway(fleet, 'x=' + x1.target, 'two', 'x')
    second = side_gateway(fleet, ['x=' + x2.target, 'y=' + y.target], 'two', 'y')
    status = Inbox(fleet.broker, 'two/+/status')
    try:
        status.wait_payload('two/x/status', 'online')
        status.wait_payload('two/y/status', 'online')
        assert user_properties(status.last('two/x/status').properties) == {'gateway': first.id,
                                                                            'claim': first.claims.token('x')}
        assert user_properties(status.last('two/y/status').properties) == {'gateway': second.id,
                                                                            'claim': second.claims.token('y')}
        assert second.counters['refused'] == 1 and second.owned == {'y'}
        with BoardClient(fleet.broker.url, 'x', prefix='two') as x, BoardClient(fleet.broker.url, 'y', prefix='two') as y_:
            assert [x.request('execute', 9)['data'] for _ in range(20)] == ['x1'] * 20
            assert y_.request('execute', 9)['data'] == 'y'
            assert x.counters['dropped'] == 0 and x2.runs == []     # answered once, by the owner only
            first.stop()
            status.wait_for(lambda: user_properties(getattr(status.last('two/x/status'), 'properties', None))
                            .get('gateway') == second.id and status.last('two/x/status').payload == b'online')
            assert x.request('execute', 9, timeout=WAIT)['data'] == 'x2'
    finally:
        status.close()
        second.stop()
        for board in (x1, x2, y):
            board.close()


def test_a_name_refused_is_counted_and_logged_once_however_often_the_broker_connection_comes_back(fleet, caplog):
    """Nothing changed when the link to the broker comes back: the refusal of a name another gateway holds is
    counted and logged when the holder changes, not on every reconnect."""
    caplog.set_level(logging.ERROR, 'sp.gateway')
    held, refused = host_board('held'), host_board('refused')
    owner = side_gateway(fleet, 'r=' + held.target, 'refusal', 'r')
    other = side_gateway(fleet, 'r=' + refused.target, 'refusal')
    syncs = Inbox(fleet.broker, other._sync_topic)
    try:
        assert wait_until(lambda: other.counters['refused'] == 1, WAIT)
        for blip in range(2):
            lost = other.client._transport
            other._loop.call_soon_threadsafe(lost.abort)
            syncs.wait_for(lambda: [t for t, _ in syncs.messages].count(other._sync_topic) == blip + 1)
            assert wait_until(lambda: other._sync_timer is None, WAIT)     # settled again
        assert other.counters['refused'] == 1 and other.owned == set() and owner.owned == {'r'}
        assert caplog.text.count('board r is claimed by gateway %r already' % owner.id) == 1
    finally:
        syncs.close()
        for gateway in (other, owner):
            gateway.stop()
        held.close()
        refused.close()


def test_a_request_delivered_again_after_a_broker_restart_runs_once(fleet, caplog):
    """QoS 1 delivers at least once: the broker restarts while the board works on a call, and the caller sends the
    request again (as a client does with a QoS 1 publish the broker never acknowledged). The board runs it once;
    the repeat gets the first call's answer. The gateway's log says the broker closed the connection."""
    board = host_board('slow', slow_s=1.5)
    gateway = side_gateway(fleet, 's=' + board.target, 'once', 's', timeout=10)
    caller = Inbox(fleet.broker, 'test/once')
    try:
        caller.ask('once/s/execute/9/req', b'"go"', b'call-1', 'test/once', qos=1)
        deadline = time.monotonic() + WAIT
        while not board.runs:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        fleet.broker.stop()
        assert wait_until(lambda: 'the broker at %s closed the connection' % fleet.broker.url in caplog.text)
        fleet.broker.start()
        back = Inbox(fleet.broker, gateway.gateway_topic)
        back.wait_payload(gateway.gateway_topic, 'online')     # subscribed again
        back.close()
        caller.wait_for(lambda: [t for t, _ in caller.messages].count('$subscribed') == 2)
        caller.ask('once/s/execute/9/req', b'"go"', b'call-1', 'test/once', qos=1)
        caller.wait_for(lambda: b'call-1' in caller.answers())
        assert caller.answers()[b'call-1'] == wire.addressed(wire.answer(sp.STATUS_OKAY, 'slow'), 's', 31, 9)
        assert board.runs == ['go']
        assert gateway.counters['repeats'] == 1
        caller.ask('once/s/execute/9/req', b'"go"', b'call-2', 'test/once', qos=1)    # a new call runs
        caller.wait_for(lambda: b'call-2' in caller.answers())
        assert board.runs == ['go', 'go']
    finally:
        caller.close()
        gateway.stop()
        board.close()
    fleet.wait_online()


def test_a_request_the_broker_retained_never_runs(fleet):
    """Anyone may publish a request with the retain flag: the broker keeps it and would deliver it on every
    subscribe, each reconnect of the gateway running the call again long after its caller left. The gateway's
    subscriptions take no retained message, and a retained request that came anyway is dropped and counted."""
    board = host_board('kept')
    planter = Inbox(fleet.broker, 'test/kept')
    properties = Properties(PacketTypes.PUBLISH)
    properties.ResponseTopic = 'test/kept'
    properties.CorrelationData = b'planted'
    planter.client.publish('kept/k/execute/9/req', b'"planted"', 1, retain=True, properties=properties).wait_for_publish()
    gateway = side_gateway(fleet, 'k=' + board.target, 'kept', 'k')
    try:
        with BoardClient(fleet.broker.url, 'k', prefix='kept') as client:
            assert client.request('execute', 9, 'live')['data'] == 'kept'
        lost = gateway.client._transport
        gateway._loop.call_soon_threadsafe(lost.abort)     # a broker hiccup: subscribed again
        assert wait_until(lambda: gateway.client._transport not in (None, lost) and gateway.client.is_connected(),
                          WAIT)
        with BoardClient(fleet.broker.url, 'k', prefix='kept') as client:
            assert client.request('execute', 9, 'again', timeout=WAIT)['data'] == 'kept'
        assert board.runs == ['live', 'again'] and b'planted' not in planter.answers()
        gateway._on_message(Message('kept/k/execute/9/req', b'"x"', 1, retain=True))   # a broker that ignores the option
        assert gateway.counters['bad_input'] == 1 and board.runs == ['live', 'again']
    finally:
        planter.client.publish('kept/k/execute/9/req', b'', 1, retain=True).wait_for_publish()
        planter.close()
        gateway.stop()
        board.close()


def test_call_memory_keeps_a_few_repeats_of_a_call_in_flight_and_drops_the_rest():
    """A caller that sends one request again and again while the board works on it gets at most MAX_REPEATS
    answers, not one per repeat (each held its own reply topic and Correlation Data until the answer came)."""
    memory = CallMemory(window_s=60, clock=lambda: 0.0)
    key = b'k' * 16
    memory.begin(key)
    sent = []
    assert all(memory.repeat(key, sent.append) for _ in range(200))
    assert memory.dropped == 200 - MAX_REPEATS
    memory.answered(key, b'answer')
    assert sent == [b'answer'] * MAX_REPEATS


def test_call_memory_holds_one_reply_address_for_the_repeats_that_wait():
    """Each repeat waiting for its call's answer held its own copy of the reply address (up to 128 KiB): 63 calls
    left unanswered, 8 repeats each, held some 70 MiB for as long as the board took."""
    memory = CallMemory(window_s=60, clock=lambda: 0.0)
    key = b'k' * 16
    memory.begin(key)
    sent = []

    class Send:   # a repeat's send(), which holds its reply
        def __call__(self, answer):
            sent.append((self, answer))
    sends = [Send() for _ in range(MAX_REPEATS)]
    held = [weakref.ref(send) for send in sends]
    for send in sends:
        assert memory.repeat(key, send)
    first = sends[0]
    del sends, send
    gc.collect()
    assert [ref() for ref in held[1:]] == [None] * (MAX_REPEATS - 1)
    memory.answered(key, b'answer')
    assert sent == [(first, b'answer')] * MAX_REPEATS


def test_a_stuck_broker_flooded_with_requests_keeps_the_gateway_on_it(monkeypatch):
    """Answers whose callers chose 120 KiB reply addresses, more of them than the broker takes: past UNSENT_BYTES
    they are dropped and counted, so the client's own bound (MAX_UNSENT, a broker that reads nothing) is never
    reached; before, it took the gateway off the broker, every board's calls with it."""
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)   # (the kernel holds little of what is not read)
    stuck.bind(('127.0.0.1', 0))
    stuck.listen(1)
    accepted = []
    calls = 100
    publish = mqtt_aio._packet(0x30, mqtt_aio._string('sp/b/10/0/req') + publish_properties(
        b'c' * 60000, response_topic='r/' + 'x' * 59998) + b'not json')   # QoS 0, 120 KB of reply address

    def broker():
        conn, _ = stuck.accept()
        accepted.append(conn)
        conn.recv(4096)                                     # CONNECT
        conn.sendall(bytes([0x20, 0x03, 0x00, 0x00, 0x00]))   # CONNACK
        owned.wait(WAIT)
        conn.sendall(publish * calls)                         # and never a read
    owned = threading.Event()
    monkeypatch.setattr(gateway_module, 'SYNC_S', 0.2)   # (this broker sends no retained claims, nor the marker)
    threading.Thread(target=broker, daemon=True).start()
    gateway = Gateway(wire.Broker('127.0.0.1', stuck.getsockname()[1]), [parse_board('b=tcp://127.0.0.1:1')])
    gateway.start()
    try:
        assert wait_until(lambda: 'b' in gateway.owned, WAIT)
        # (the kernel holds little of what the broker does not read, however large a machine lets buffers grow)
        gateway.client._transport.get_extra_info('socket').setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        owned.set()
        assert wait_until(lambda: gateway.counters['bad_input'] == calls, WAIT), gateway.counters
        assert gateway.client.is_connected()
        assert UNSENT_BYTES <= gateway.client.write_buffer_size() < UNSENT_BYTES + 130000
        assert gateway.counters['answers_dropped'] > 0
    finally:
        gateway.stop()
        for conn in accepted:
            conn.close()
        stuck.close()


def test_call_memory_answers_a_few_repeats_of_an_answered_call_and_drops_the_rest():
    """Repeats of a call already answered count too: each got the stored answer again, so one request of 430 bytes
    sent 5,000 times made 26 MB of answers, onto a reply topic that may be another caller's."""
    memory = CallMemory(window_s=60, clock=lambda: 0.0)
    key = b'k' * 16
    memory.begin(key)
    memory.answered(key, b'answer')
    sent = []
    assert all(memory.repeat(key, sent.append) for _ in range(200))
    assert sent == [b'answer'] * MAX_REPEATS and memory.dropped == 200 - MAX_REPEATS


def test_gateway_ids_heard_from_the_broker_cost_memory_only_while_online_and_up_to_a_bound(caplog):
    claims = Claims('g0')
    for i in range(3000):
        claims.heard_gateway('g%d' % i, b'offline')
    assert claims.alive == set()
    for i in range(MAX_GATEWAYS + 100):
        claims.heard_gateway('g%d' % i, b'online')
    assert len(claims.alive) == MAX_GATEWAYS and caplog.text.count('gateways say they are online') == 1
    claims.heard_gateway('g1', b'')
    assert 'g1' not in claims.alive


def test_claims_heard_while_a_claim_is_on_its_way_cost_memory_up_to_a_bound():
    """A broker that never sends a gateway's claim back, but statuses naming ever new owners, kept every one of them
    (4,000 statuses with 16 KB ids: 64 MB): now at most MAX_GATEWAYS, of ids and claims up to MAX_ID long."""
    claims = Claims('g0')
    claims.claimed('kit')
    for i in range(MAX_GATEWAYS + 500):
        claims.heard_status('kit', {OWNER_PROPERTY: 'g%d' % i, CLAIM_PROPERTY: '%08x' % i})
    claims.heard_status('kit', {OWNER_PROPERTY: 'x' * (MAX_ID + 1), CLAIM_PROPERTY: 'c'})
    claims.heard_status('kit', {OWNER_PROPERTY: 'long claim', CLAIM_PROPERTY: 'c' * (MAX_ID + 1)})
    earlier = claims._claims['kit'].earlier
    assert len(earlier) == MAX_GATEWAYS and all(len(owner) <= MAX_ID for owner, _ in earlier)
    claims.heard_status('kit', {OWNER_PROPERTY: 'g0', CLAIM_PROPERTY: claims.token('kit')})   # its own came back
    assert claims.heard_status('kit', {OWNER_PROPERTY: 'g1', CLAIM_PROPERTY: '00000001'}) == RESTATE
    assert claims.heard_status('kit', {OWNER_PROPERTY: 'g99999', CLAIM_PROPERTY: 'later'}) == GIVE_WAY


def test_a_gateway_id_too_long_to_keep_is_taken_for_offline_and_refused_as_ones_own():
    claims = Claims('g0')
    claims.heard_gateway('x' * (MAX_ID + 1), b'online')
    assert claims.alive == set()
    with pytest.raises(ValueError, match='more than %d characters' % MAX_ID):
        Gateway(wire.Broker('127.0.0.1', 1), [], gateway_id='x' * (MAX_ID + 1))


def test_call_memory_answers_repeats_within_its_window_and_forgets_after():
    now = [0.0]
    memory = CallMemory(window_s=60, clock=lambda: now[0])
    sent = []
    assert not memory.repeat(b'k', sent.append)
    memory.begin(b'k')
    assert memory.repeat(b'k', sent.append) and sent == []     # in flight: answered with the first call
    memory.answered(b'k', b'answer')
    assert sent == [b'answer']
    assert memory.repeat(b'k', sent.append) and len(sent) == 2
    now[0] = 61.0
    assert not memory.repeat(b'k', sent.append)


def test_a_call_is_known_by_its_bytes_and_address_whatever_their_size():
    """The key is a digest of the request topic, the reply address and the payload: the same request again is a
    repeat; another payload under the same address is a call of its own (sent first by someone who guessed the
    address, it would have taken the real call's place), and 64 KiB reply topics and Correlation Data make a
    key no longer than any other."""
    topic, payload = 'sp/b/write/1/req', b'"mine"'
    reply = Reply('r/' + 'x' * 65000, 'b', b'c' * 65000)
    key = reply.key(topic, payload)
    assert key == Reply('r/' + 'x' * 65000, 'b', b'c' * 65000).key(topic, payload) and len(key) == 16
    assert key not in {reply.key(topic, b'"theirs"'), reply.key('sp/b/write/2/req', payload),
                       Reply('r/y', 'b', b'c' * 65000).key(topic, payload), Reply(reply.topic, 'b', b'd').key(topic, payload)}
    assert Reply('r', 'b').key(topic, payload) is None
    assert Reply('r', 'b', envelope_id=7, envelope=True).key(topic, payload) != \
        Reply('r', 'b', envelope_id=8, envelope=True).key(topic, payload)
    # an MQTT 5 call whose Correlation Data is an envelope's id written as JSON is another call: the same key made
    # one the other's repeat, so that the one who sent first had the other's write left unrun
    assert Reply('r', 'b', b'"abc"').key(topic, payload) != Reply('r', 'b', envelope_id='abc', envelope=True).key(
        topic, payload)


def test_call_memory_is_bounded_by_the_answers_it_keeps_and_a_call_in_flight_holds_none_back():
    """Over its bytes the oldest answered calls go, also past a call still in flight (which an old call that
    waits long on a slow board held back, the memory growing without its bound meanwhile); the call in flight
    is still known when its answer comes."""
    memory = CallMemory(window_s=60, clock=lambda: 0.0, max_bytes=100_000)
    memory.begin(b'slow')
    keys = [b'%016d' % i for i in range(10)]
    for key in keys:
        memory.begin(key)
        memory.answered(key, b'a' * 30_000)
    assert memory._bytes <= 100_000
    assert not memory.repeat(keys[0], lambda answer: None) and memory.repeat(keys[-1], lambda answer: None)
    sent = []
    assert memory.repeat(b'slow', sent.append)
    memory.answered(b'slow', b'late')
    assert sent == [b'late']


def test_a_board_given_up_and_claimed_back_in_one_step_is_let_go_of_for_good_when_a_rival_takes_it():
    """A rival's claim and its last will come in one read: the gateway gives the board up and claims it back in one
    loop step. When another rival takes the board later, no task of the gateway dials it any more (it would hold a
    one-client board or a locked serial port from its owner)."""
    board = host_board('x')
    gateway = Gateway(wire.Broker('127.0.0.1', free_port()), [parse_board('x=' + board.target)])   # no broker needed
    link, loop = gateway.links['x'], gateway._loop

    def status(owner):
        msg = Message('sp/x/status', b'online', wire.QOS_STATUS, retain=True)
        msg.user_properties = {'gateway': owner, 'claim': gateway.claims.token('x') if owner == gateway.id else 'c'}
        return msg

    async def until(predicate):
        """True once predicate() is, False after WAIT seconds."""
        end = loop.time() + WAIT
        while not predicate() and loop.time() < end:
            await asyncio.sleep(0.01)
        return predicate()

    def others():
        return asyncio.all_tasks() - {asyncio.current_task()}

    async def rivals():
        try:
            gateway._settle_claims()     # no other gateway known: x is ours
            assert await until(link.online)
            for msg in (status(gateway.id), status('rival'), Message('sp/gateway/rival/status', b'offline', 1, True)):
                gateway._on_message(msg)     # one read: x given way to 'rival', then free again as its will arrives
            assert gateway.owned == {'x'} and await until(link.online)
            gateway._on_message(status(gateway.id))
            gateway._on_message(status('rival2'))
            assert gateway.owned == set()
            assert await until(lambda: not others()), others()
            assert not link.online()
        finally:    # what a failed run left
            for task in others():
                task.cancel()
            await asyncio.gather(*others(), return_exceptions=True)
    try:
        loop.run_until_complete(rivals())
    finally:
        loop.close()
        board.close()


def test_a_stopped_gateway_leaves_no_session_on_the_broker(fleet):
    """The broker keeps the gateway's session while it reconnects; once it stopped, a session kept would queue
    every QoS 1 request for a client that never comes back."""
    board = host_board('ended')
    gateway = side_gateway(fleet, 'e=' + board.target, 'ended', 'e')
    gateway.stop()
    board.close()
    caller = Inbox(fleet.broker, 'test/ended')
    properties = Properties(PacketTypes.PUBLISH)
    properties.ResponseTopic = 'test/ended'
    caller.client.publish('ended/e/execute/9/req', b'"late"', 1, properties=properties).wait_for_publish(WAIT)
    caller.close()
    present = []
    ghost = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=gateway.client.client_id, protocol=mqtt.MQTTv5)
    ghost.on_connect = lambda client, userdata, flags, *_: present.append(flags.session_present)
    ghost.connect('127.0.0.1', fleet.broker.port, clean_start=False)
    ghost.loop_start()
    try:
        assert wait_until(lambda: present, WAIT) and present == [False]
    finally:
        ghost.disconnect()
        ghost.loop_stop()


def test_a_board_that_keeps_failing_backs_off_its_status_says_why_and_holds_up_no_other(fleet):
    gone = free_port()     # nothing listens there
    good = host_board('good')
    gateway = side_gateway(fleet, ['gone=tcp://127.0.0.1:%d' % gone, 'good=' + good.target], 'flaky', 'good')
    status = Inbox(fleet.broker, 'flaky/+/status')
    try:
        status.wait_payload('flaky/gone/status', 'offline')
        why = user_properties(status.last('flaky/gone/status').properties)['reason']
        assert why.startswith('cannot connect to tcp://127.0.0.1:%d' % gone), why
        with BoardClient(fleet.broker.url, 'good', prefix='flaky') as client:
            start = time.monotonic()
            for _ in range(50):
                assert client.request('execute', 9)['data'] == 'good'
            assert time.monotonic() - start < 5
            assert client.request('read', 0) is not None
        with BoardClient(fleet.broker.url, 'gone', prefix='flaky') as client:
            assert client.request('read', 0)['status'] == wire.STATUS_BOARD_OFFLINE
    finally:
        status.close()
        gateway.stop()
        good.close()


def test_gateway_and_board_client_over_tls_check_the_brokers_certificate(tmp_path):
    """mqtts://: both ends verify the broker against the CA they are given; without it the client refuses."""
    if shutil.which('openssl') is None:
        skip_or_fail('openssl is not installed (Debian: apt-get install openssl)')
    for args in (['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2',
                  '-subj', '/CN=test-ca'],
                 ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj',
                  '/CN=127.0.0.1'],
                 ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out',
                  'server.crt', '-days', '2', '-extfile', 'ext']):
        (tmp_path / 'ext').write_text('subjectAltName=IP:127.0.0.1\n')
        subprocess.run(['openssl'] + args, cwd=tmp_path, check=True, capture_output=True)
    broker = Mosquitto(str(tmp_path))
    broker.stop()
    with open(broker.config, 'w') as f:
        f.write('listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nuser %s\ncafile %s\ncertfile %s\n'
                'keyfile %s\n' % (broker.port, getpass.getuser(), tmp_path / 'ca.crt', tmp_path / 'server.crt',
                                  tmp_path / 'server.key'))
    broker.start()
    board = host_board('tls')
    tls = wire.Broker('127.0.0.1', broker.port, tls=True, cafile=str(tmp_path / 'ca.crt'))
    gateway = Gateway(tls, [parse_board('k=' + board.target)])
    gateway.start()
    url = 'mqtts://127.0.0.1:%d/k' % broker.port
    try:
        with BoardClient(url, broker=tls) as client:
            deadline = time.monotonic() + WAIT
            while True:     # until the gateway has subscribed and the board is up
                try:
                    if client.request('execute', 9, timeout=0.5)['data'] == 'tls':
                        break
                except TimeoutError:
                    pass
                assert time.monotonic() < deadline
        with pytest.raises(ConnectionError, match='CERTIFICATE_VERIFY_FAILED'):
            BoardClient(url, connect_timeout=WAIT)      # the system's CAs do not know this broker
    finally:
        gateway.stop()
        board.close()
        broker.stop()


def sp_command(*args):
    return subprocess.run([sys.executable, '-m', 'sp_tool'] + list(args), capture_output=True, text=True,
                          timeout=60, cwd=ROOT, stdin=subprocess.DEVNULL)


def test_sp_gateway_and_sp_call_through_the_broker(fleet):
    """A host serving the demo stands for a board: sp call reaches it by name, its own messages are published."""
    comm = sp.tcp_server_stp('127.0.0.1', 0)
    server = sp.pure_json_protocol(comm, channel_name='host-board')
    add_demo_services(server)
    watcher = Inbox(fleet.broker, 'cli/#')
    proc = subprocess.Popen([sys.executable, '-m', 'sp_tool', 'gateway', '--broker', fleet.broker.url,
                             '--prefix', 'cli', '--timeout', '2', 'h=tcp://127.0.0.1:%d' % comm.port],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith('gateway for h on mqtt://127.0.0.1:'), proc.stderr.read()
        watcher.wait_payload('cli/h/status', 'online')     # said only once the gateway has subscribed
        url = fleet.broker.url + '/cli/h'
        r = sp_command('call', url, 'write', 'value', '{"n": 1}')
        assert (r.returncode, r.stdout) == (0, 'okay: null\n'), r.stderr
        r = sp_command('call', url, 'read', 'value', '--json')
        assert json.loads(r.stdout) == {'service_id': 11, 'data_id': 1, 'status': 0, 'status_name': 'okay',
                                        'data': {'n': 1}}, r.stderr
        r = sp_command('call', url, 'execute', 'fail')
        assert (r.returncode, r.stdout) == (errors.EXIT_STATUS, 'callback error: null\n'), r.stderr
        for did, (status, code) in enumerate(((sp.STATUS_AUTH_REQUIRED, errors.EXIT_AUTH),
                                              (sp.STATUS_CHECKSUM_ERROR, errors.EXIT_CRC)), 70):
            server.register_callback(sp.SID_READ_REQUEST, did, lambda msg, status=status: (status, None))
            r = sp_command('call', url, 'read', str(did))
            assert r.returncode == code, r.stderr   # as on a link
        for service in ('13', '8', '70000'):   # odd, the engine's own, not 16 bits: refused before it is sent
            r = sp_command('call', url, service, '0')
            assert r.returncode == errors.EXIT_USAGE and 'unknown service %r' % service in r.stderr, r.stderr
        r = sp_command('call', fleet.broker.url + '/cli/nobody', 'read', '0', '--timeout', '1')
        assert r.returncode == errors.EXIT_TIMEOUT and 'no answer from board nobody' in r.stderr, r.stderr
        assert server.send(sp.SID_READ_RESPONSE, 5, {'pushed': 1})      # a board's own message
        watcher.wait_for(lambda: watcher.last('cli/h/11/5') is not None)
        pushed = wire.addressed(wire.answer(sp.STATUS_OKAY, {'pushed': 1}), 'h', 11, 5)
        assert json.loads(watcher.last('cli/h/11/5').payload) == pushed
    finally:
        interrupt(proc)
        watcher.wait_payload('cli/h/status', 'offline')
        watcher.close()
        server.close()


def test_sp_call_to_a_broker_that_is_not_there_says_so_once_in_its_own_words():
    """The client's log line came before sp call's error line, with asyncio's 'Connect call failed (...)'."""
    url = 'mqtt://127.0.0.1:%d' % free_port()
    r = sp_command('call', url + '/kitchen', 'read', 'asc_time')
    assert r.returncode == errors.EXIT_REFUSED
    assert r.stderr == ('sp call: error: cannot reach the broker at %s: connection refused (nothing listens there)\n'
                        % url)


def test_sp_gateway_says_without_v_when_a_board_is_offline_and_why_and_when_it_is_back(fleet):
    """Without -v the gateway said nothing of a board it could not reach, and its offline answer said not why."""
    port = free_port()     # nothing listens there, until the board below does
    watcher = Inbox(fleet.broker, 'states/+/status')
    proc = subprocess.Popen([sys.executable, '-m', 'sp_tool', 'gateway', '--broker', fleet.broker.url, '--prefix',
                             'states', 'gone=/dev/does-not-exist', 'late=tcp://127.0.0.1:%d' % port],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    board = None
    try:
        watcher.wait_payload('states/late/status', 'offline')
        r = sp_command('call', fleet.broker.url + '/states/gone', 'read', 'asc_time')
        assert r.returncode == errors.EXIT_REFUSED, r.stderr
        assert r.stderr == ('sp call: error: %s/states/gone answered: board offline (gone is offline: cannot connect '
                            'to /dev/does-not-exist: No such file or directory)\n' % fleet.broker.url)
        board = sp.pure_json_protocol(sp.tcp_server_stp('127.0.0.1', port))
        watcher.wait_payload('states/late/status', 'online')
    finally:
        proc.send_signal(signal.SIGINT)
        code, said = proc.wait(10), proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
        watcher.close()
        if board is not None:
            board.close()
    assert code == 130
    lines = said.splitlines()
    assert lines.count('board gone is offline: cannot connect to /dev/does-not-exist: No such file or directory') == 1
    late = [line for line in lines if line.startswith('board late is')]
    assert len(late) == 2 and late[1] == 'board late is back online', said
    assert late[0].startswith('board late is offline: cannot connect to tcp://127.0.0.1:%d: ' % port), said


def test_a_board_that_outruns_a_stuck_broker_fills_no_queue_without_end():
    """The broker takes the connection, then reads nothing: a board's messages past UNSENT_BYTES waiting for it are
    dropped and counted, not queued in the gateway's memory."""
    stuck = socket.create_server(('127.0.0.1', 0))
    accepted = []

    def broker():
        conn, _ = stuck.accept()
        accepted.append(conn)
        conn.recv(4096)                                     # CONNECT
        conn.sendall(bytes([0x20, 0x03, 0x00, 0x00, 0x00]))   # CONNACK (MQTT 5, success), then never a read
    threading.Thread(target=broker, daemon=True).start()
    board = sp.pure_json_protocol(sp.tcp_server_stp('127.0.0.1', 0))
    gateway = Gateway(wire.Broker('127.0.0.1', stuck.getsockname()[1]),
                      [parse_board('b=tcp://127.0.0.1:%d' % board.__comm_inst__.port)])
    gateway.start()
    try:
        flood = 600
        for n in range(flood):
            assert board.send(sp.SID_READ_RESPONSE, n, 'z' * 20000, timeout=WAIT)    # nobody asked for these
        deadline = time.monotonic() + WAIT
        while gateway.counters['board_messages'] < flood and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gateway.counters['board_messages'] == flood
        assert gateway.counters['board_dropped'] > 0
        assert UNSENT_BYTES <= gateway.client.write_buffer_size() < UNSENT_BYTES + 21000
    finally:
        gateway.stop()
        board.close()
        for conn in accepted:
            conn.close()
        stuck.close()


def test_gateway_help_and_bad_command_lines():
    r = sp_command('gateway', '--help')
    assert r.returncode == 0 and r.stdout.startswith('usage: sp gateway') and 'example: sp gateway' in r.stdout
    for board in ('noequals', 'a/b=tcp://127.0.0.1:1', 'gateway=tcp://127.0.0.1:1', 'x=/dev/null?codec=zip',
                  'x=listen://nowhere'):
        r = sp_command('gateway', '--broker', 'mqtt://127.0.0.1:1', board)
        assert r.returncode == errors.EXIT_USAGE and 'Traceback' not in r.stderr, r.stderr
    r = sp_command('gateway', '--broker', 'http://127.0.0.1', 'x=/dev/null')
    assert r.returncode == errors.EXIT_USAGE and 'mqtt://HOST' in r.stderr, r.stderr
    for args in (['ki\x01t=/dev/null'], ['--prefix', 's\x85p', 'x=/dev/null']):    # the broker refuses such topics
        r = sp_command('gateway', '--broker', 'mqtt://127.0.0.1:1', *args)
        assert r.returncode == errors.EXIT_USAGE and 'refuses with the character U+' in r.stderr, r.stderr


def test_a_second_peer_on_a_listening_link_without_a_secret_leaves_the_board_online():
    """listen:// without a secret: any valid frame proves a peer, and one more that dials in is closed (the board
    is at work), not taken for the board while the board's own connection is left unused."""
    from sp_cpython import aio
    from sp_tool.board_link import BoardLink, BoardSpec
    port = free_port()

    async def dial():
        for _ in range(100):
            try:
                return await aio.connect('tcp://127.0.0.1:%d' % port)
            except OSError:
                await asyncio.sleep(0.05)
        raise AssertionError('the link does not listen')

    async def main():
        link = BoardLink(BoardSpec('b', 'listen://127.0.0.1:%d' % port), 2, lambda name, msg: None, lambda: None)
        link.start()
        board = await dial()
        for _ in range(100):
            if link.online():
                break
            await asyncio.sleep(0.02)
        first = link._prot
        other = await dial()
        for _ in range(100):
            if not other.is_connected():
                break
            await asyncio.sleep(0.02)
        assert not other.is_connected() and link.online() and link._prot is first and board.is_connected()
        await link.close()
        await board.close()
        await other.close()
    asyncio.run(main())
