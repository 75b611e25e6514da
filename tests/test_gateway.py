"""sp gateway with a real mosquitto and real virtual boards: calls from many clients, boards and the broker going away
and coming back, bad input, the MQTT 3.1.1 envelope, and the sp commands through a broker.

Every wait is on a message or a state with a generous timeout; nothing sleeps to make a point.
"""
import json
import socket
import subprocess
import sys
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import sp_cpython as sp
from conftest import ROOT, interrupt
from sp_tool import errors
from sp_tool import mqtt_wire as wire
from sp_tool.demo import add_demo_services
from sp_tool.gateway import UNSENT_PER_BOARD, Gateway, parse_board
from sp_tool.mqtt_client import BoardClient
from sp_tool.target import board_env
from sp_tool.virtual_board import VirtualBoard
from tools.mosquitto import Mosquitto, free_port
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

    def ask(self, topic, payload, correlation, reply_to):
        properties = Properties(PacketTypes.PUBLISH)
        properties.ResponseTopic = reply_to
        properties.CorrelationData = correlation
        self.client.publish(topic, payload, properties=properties)

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
        self.status = Inbox(self.broker, 'sp/+/status')

    def plug_b(self):
        return VirtualBoard(boot=True, env=board_env(None, 'struct_json', self.b_port))

    def wait_online(self):
        for name in ('a', 'b', 'gateway'):
            self.status.wait_payload('sp/%s/status' % name, 'online')

    def close(self):
        self.status.close()
        self.gateway.stop()
        self.b.stop()
        self.a.stop()
        self.broker.stop()


def side_gateway(fleet, board, prefix, *online, **options):
    """A second gateway on the fleet's broker, returned once it listens for calls: its own status says online only
    after it has subscribed (and after the boards named in online are up), so no test call is published into nothing."""
    gateway = Gateway(wire.parse_broker(fleet.broker.url)[0], [parse_board(board)], prefix=prefix, **options)
    gateway.start()
    status = Inbox(fleet.broker, prefix + '/+/status')
    try:
        for name in ('gateway',) + online:
            status.wait_payload('%s/%s/status' % (prefix, name), 'online')
    except BaseException:
        gateway.stop()
        raise
    finally:
        status.close()
    return gateway


@pytest.fixture(scope='module')
def fleet(tmp_path_factory):
    f = Fleet(tmp_path_factory.mktemp('broker'))
    f.wait_online()
    yield f
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
    fresh = Inbox(fleet.broker, 'sp/+/status')     # a broker without persistence forgot every retained message
    try:
        for name in ('a', 'b', 'gateway'):
            fresh.wait_payload('sp/%s/status' % name, 'online')
    finally:
        fresh.close()
    with BoardClient(fleet.broker.url, 'a') as client:
        assert client.request('execute', 0, 'after restart', timeout=WAIT)['data'] == 'after restart'


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
        for name in ('gateway', 'h'):      # the gateway says it is online only once it has subscribed
            watcher.wait_payload('cli/%s/status' % name, 'online')
        url = fleet.broker.url + '/cli/h'
        r = sp_command('call', url, 'write', 'value', '{"n": 1}')
        assert (r.returncode, r.stdout) == (0, 'okay: null\n'), r.stderr
        r = sp_command('call', url, 'read', 'value', '--json')
        assert json.loads(r.stdout) == {'service_id': 11, 'data_id': 1, 'status': 0, 'status_name': 'okay',
                                        'data': {'n': 1}}, r.stderr
        r = sp_command('call', url, 'execute', 'fail')
        assert (r.returncode, r.stdout) == (errors.EXIT_STATUS, 'callback error: null\n'), r.stderr
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


def test_a_board_that_outruns_a_stuck_broker_fills_no_queue_without_end():
    """The broker takes the connection, then reads nothing: a board's messages past UNSENT_PER_BOARD are dropped
    and counted, not queued in the gateway's memory."""
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
        assert len(gateway._unsent['b']) == UNSENT_PER_BOARD
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
