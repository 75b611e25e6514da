"""sp gateway: boards on serial ports or TCP behind an MQTT broker, so any program on the network can call any board.

One BoardLink per board: its host protocol (whose transport reconnects by
itself, or, for a board that dials in, takes its next connection), a small
pool of workers that each wait in request(), so many calls are in flight at
once and each gets its own answer. One paho client for the
broker, whose loop reconnects by itself; every (re)connect subscribes again
and publishes the retained statuses again (a restarted broker may have lost
them). A caller never waits forever: a board that is offline or does not
answer in time gets an error answer with a status that says which.
"""
from __future__ import annotations

import collections
import json
import logging
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional
from urllib.parse import parse_qsl, urlencode

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import sp_cpython as sp

from . import mqtt_wire as wire
from .target import PROTOCOLS, listen_transport, read_secret_file, transport

log = logging.getLogger('sp.gateway')
CHANNEL_NAME = 'sp-gateway'
WATCH_S = 0.1          # how often a board's link state is looked at
WAITING_PER_WORKER = 8  # calls a board's link takes per worker before it answers the rest at once (status 101)
UNSENT_PER_BOARD = 256  # a board's messages the broker has not taken yet; past that the next ones are dropped
COUNTERS = ('requests', 'answered', 'timeouts', 'offline', 'bad_input', 'board_messages', 'board_dropped')
BOARD_OPTIONS = ('secret', 'secret_file', 'codec', 'baud')
LISTEN_SCHEME = 'listen://'     # the board is the TCP client: the gateway is the server it dials


@dataclass
class BoardSpec:
    """NAME=TARGET[?secret=S|secret_file=PATH][&codec=C][&baud=N]; other query keys stay in a pyserial URL.

    TARGET is as for sp call, or listen://HOST:PORT for a board that connects to the gateway.
    """

    name: str
    target: str
    secret: Optional[str] = None
    codec: str = 'pure_json'
    baud: int = 115200


def parse_board(text: str) -> BoardSpec:
    name, sep, rest = text.partition('=')
    if not sep or not rest:
        raise ValueError('a board is NAME=TARGET, not %r' % text)
    why = wire.check_name(name)
    if why:
        raise ValueError('%s: %r' % (why, name))
    target, _, query = rest.partition('?')
    options = dict(parse_qsl(query, keep_blank_values=True))
    ours = {key: options.pop(key) for key in BOARD_OPTIONS if key in options}
    if options:
        target += '?' + urlencode(options)
    spec = BoardSpec(name, target, ours.get('secret'), ours.get('codec', 'pure_json'))
    if spec.codec not in PROTOCOLS:
        raise ValueError('board %s: codec is one of %s' % (name, ', '.join(PROTOCOLS)))
    if 'secret_file' in ours:
        spec.secret = read_secret_file(ours['secret_file'])
    if 'baud' in ours:
        if not ours['baud'].isdigit():
            raise ValueError('board %s: baud is a number' % name)
        spec.baud = int(ours['baud'])
    return spec


class BoardLink:
    """One board: its protocol (with a secret, trusted on every connect) and the workers that call it.

    A listen:// board is the TCP client and authenticates itself; the gateway,
    the server of that link, still calls it with request() like any other.
    """

    def __init__(self, spec: BoardSpec, workers: int, on_message: Callable[[str, sp.data_storage], None]) -> None:
        self.name = spec.name
        if spec.target.startswith(LISTEN_SCHEME):
            comm = listen_transport(spec.target[len(LISTEN_SCHEME):])
        else:
            comm = transport(spec.target, spec.baud)
        self.prot = PROTOCOLS[spec.codec](comm, secret=spec.secret,
                                          auto_auth=spec.secret is not None, channel_name=CHANNEL_NAME)
        self._services = set(wire.SERVICES.values())
        self._on_message = on_message
        self.prot.register_callback(None, None, self._from_board)
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix='gateway-' + spec.name)
        self.max_waiting = WAITING_PER_WORKER * workers   # calls in the workers' hands and queued for them
        self._waiting = 0
        self._lock = threading.Lock()

    def take_call(self) -> bool:
        """Counts a call in, unless max_waiting are there already: a flood waits in no queue without end."""
        with self._lock:
            if self._waiting >= self.max_waiting:
                return False
            self._waiting += 1
            return True

    def call_done(self) -> None:
        with self._lock:
            self._waiting -= 1

    def online(self) -> bool:
        return self.prot.connection_established()

    def request(self, sid: int, did: int, data: Any, timeout: float) -> Optional[sp.data_storage]:
        if sid not in self._services:
            try:
                self.prot.add_service(sid, sid + 1)
            except (sp.RequestSidExistsError, sp.ResponseSidExistsError):
                pass
            self._services.add(sid)
        return self.prot.request(sid, did, data, timeout)

    def _from_board(self, msg: sp.data_storage):
        """Whatever the board sends that no call waits for: a request of its own, or an answer nobody asked for."""
        self._on_message(self.name, msg)
        return sp.STATUS_OKAY, None     # a board's request is acknowledged once published

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.prot.close()


@dataclass
class Reply:
    """Where an answer goes (an MQTT 5 response topic and correlation data, or a 3.1.1 envelope's reply_to and
    id) and what it names: the board, and the response's Service-ID and Data-ID once they are known."""

    topic: str
    board: str
    correlation: Optional[bytes] = None
    envelope_id: Any = None
    envelope: bool = False
    service_id: Optional[int] = None
    data_id: Optional[int] = None


class Gateway:
    """Bridges requests on the broker to the boards and publishes what the boards say and whether they are there."""

    def __init__(self, broker: wire.Broker, boards: List[BoardSpec], prefix: str = wire.DEFAULT_PREFIX,
                 timeout: float = 5.0, workers: int = 8, max_payload: int = 65536) -> None:
        names = [spec.name for spec in boards]
        if len(set(names)) != len(names):
            raise ValueError('two boards with the same name')
        self.prefix = prefix
        self.timeout = timeout
        self.max_payload = max_payload
        self.counters = dict.fromkeys(COUNTERS, 0)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._published: Dict[str, Optional[bool]] = dict.fromkeys(names)
        self._unsent = {name: collections.deque() for name in names}   # MQTTMessageInfo of each board's messages
        self.links = {spec.name: BoardLink(spec, workers, self._publish_from_board) for spec in boards}
        self.gateway_topic = wire.status_topic(prefix, 'gateway')
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id='sp-gateway-' + uuid.uuid4().hex[:12],
                                  protocol=mqtt.MQTTv5)
        broker.apply(self.client)
        self.client.will_set(self.gateway_topic, wire.OFFLINE, wire.QOS_STATUS, retain=True)
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.broker = broker
        self._watcher = threading.Thread(target=self._watch, name='gateway-watch', daemon=True)

    def start(self) -> None:
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=30)
        self.client.loop_start()
        self._watcher.start()

    def stop(self) -> None:
        """Says offline for every board and for itself, then lets go of the broker and the boards."""
        self._stop.set()
        if self._watcher.is_alive():
            self._watcher.join()
        infos = [self.client.publish(wire.status_topic(self.prefix, name), wire.OFFLINE, wire.QOS_STATUS, retain=True)
                 for name in self.links]
        infos.append(self.client.publish(self.gateway_topic, wire.OFFLINE, wire.QOS_STATUS, retain=True))
        end = time.monotonic() + 2.0
        for info in infos:
            if self.client.is_connected():
                info.wait_for_publish(max(0.0, end - time.monotonic()))
        self.client.disconnect()
        sock = self.client.socket()
        if sock is not None and not all(info.is_published() for info in infos):
            try:    # a broker that takes nothing: paho's loop would wait for it until the keepalive ran out
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.client.loop_stop()
        for link in self.links.values():
            link.close()

    def count(self, name: str) -> None:
        with self._lock:
            self.counters[name] += 1

    # broker side ----------------------------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning('broker %s refused the connection: %s', self.broker.url, reason_code)
            return
        log.info('connected to %s', self.broker.url)
        client.subscribe([('%s/%s/+/+/req' % (self.prefix, name), wire.QOS_CALL) for name in self.links])
        client.publish(self.gateway_topic, wire.ONLINE, wire.QOS_STATUS, retain=True)
        with self._lock:
            for name in self.links:
                self._published[name] = None    # a restarted broker forgot them: publish again
                self._unsent[name].clear()      # what the last connection never sent is gone with it
        self._publish_states()

    def _on_message(self, client, userdata, msg) -> None:
        """On paho's thread, which ends with any exception a callback raises: whatever a message holds, it ends
        here, so no message can stop the gateway's network loop."""
        self.count('requests')
        try:
            self._take(msg)
        except Exception as err:    # a flaw a message found: that message is lost, the gateway runs on
            self.count('bad_input')
            log.error('request on %r dropped: %s', msg.topic, type(err).__name__)

    def _take(self, msg) -> None:
        """Checks the request and hands it to the board's workers; never blocks."""
        board, service, did_text = msg.topic[len(self.prefix) + 1:].split('/')[:3]   # as subscribed: .../req
        props = msg.properties
        reply = None
        try:
            if getattr(props, 'ResponseTopic', None):
                reply = Reply(wire.reply_topic(props.ResponseTopic, self.prefix), board,
                              getattr(props, 'CorrelationData', None))
            if len(msg.payload) > self.max_payload:
                raise ValueError('a payload of %d bytes is over the limit of %d' % (len(msg.payload), self.max_payload))
            try:
                data = json.loads(msg.payload) if msg.payload else None
            except (ValueError, RecursionError) as err:
                raise ValueError('the payload is not JSON (%s)' % type(err).__name__) from None
            if reply is None:
                topic, envelope_id, data = wire.parse_envelope(data)
                reply = Reply(wire.reply_topic(topic, self.prefix), board, None, envelope_id, True)
            sid = wire.parse_service(service)
            reply.service_id = sid + 1
            did = reply.data_id = wire.parse_data_id(did_text)
        except ValueError as err:
            self.count('bad_input')
            log.warning('bad request on %r: %s%s', msg.topic, err, '' if reply else ' (nowhere to answer: dropped)')
            if reply is not None:
                self._respond(reply, wire.answer(wire.STATUS_BAD_REQUEST, str(err)))
            return
        link = self.links[board]
        if not link.online():
            self.count('offline')
            self._respond(reply, wire.answer(wire.STATUS_BOARD_OFFLINE, '%s is offline' % board))
            return
        if not link.take_call():
            self.count('timeouts')
            self._respond(reply, wire.answer(wire.STATUS_TIMEOUT, '%d calls already wait for %s'
                                             % (link.max_waiting, board)))
            return
        link.pool.submit(self._serve, link, sid, did, data, reply, time.monotonic() + self.timeout)

    def _serve(self, link: BoardLink, sid: int, did: int, data: Any, reply: Reply, deadline: float) -> None:
        """On a worker: one call to the board, one answer to the caller, whatever happens."""
        try:
            self._call(link, sid, did, data, reply, deadline)
        finally:
            link.call_done()

    def _call(self, link: BoardLink, sid: int, did: int, data: Any, reply: Reply, deadline: float) -> None:
        try:
            msg = link.request(sid, did, data, deadline - time.monotonic()) if time.monotonic() < deadline else None
        except Exception as err:    # the codec refused what JSON allowed (e.g. a data id over 16 bits)
            self.count('bad_input')
            log.warning('board %s cannot take service %d, data id %d: %s', link.name, sid, did, err)
            self._respond(reply, wire.answer(wire.STATUS_BAD_REQUEST, str(err)))
            return
        if msg is not None:
            self.count('answered')
            self._respond(reply, wire.answer(msg.get_status(), msg.get_data()))
        elif not link.online():
            self.count('offline')
            self._respond(reply, wire.answer(wire.STATUS_BOARD_OFFLINE, '%s went offline' % link.name))
        else:
            self.count('timeouts')
            self._respond(reply, wire.answer(wire.STATUS_TIMEOUT, 'no answer from %s within %g s'
                                             % (link.name, self.timeout)))

    def _respond(self, reply: Reply, body: Dict[str, Any]) -> None:
        """Publishes body, naming what it answers, where the caller asked (a topic checked on arrival)."""
        body = wire.addressed(body, reply.board, reply.service_id, reply.data_id)
        properties = None
        if reply.envelope:
            body['id'] = reply.envelope_id
        elif reply.correlation is not None:
            properties = Properties(PacketTypes.PUBLISH)
            properties.CorrelationData = reply.correlation
        self.client.publish(reply.topic, wire.dumps(body), wire.QOS_CALL, properties=properties)

    # board side ------------------------------------------------------------------------------
    def _publish_from_board(self, board: str, msg: sp.data_storage) -> None:
        self.count('board_messages')
        sid, did = msg.get_service_id(), msg.get_data_id()
        topic = '%s/%s/%d/%s' % (self.prefix, board, sid, did)
        fault = 'a topic level of its own' if isinstance(did, str) and '/' in did else wire.topic_fault(topic)
        if fault:   # a topic the broker refuses would cost the gateway its connection
            self.count('bad_input')
            log.warning('board %s sent data id %.200r, which is no topic level (%s): dropped', board, did, fault)
            return
        payload = wire.dumps(wire.addressed(wire.answer(msg.get_status(), msg.get_data()), board, sid, did))
        with self._lock:    # a board that outruns the broker fills no queue without end
            unsent = self._unsent[board]
            while unsent and unsent[0].is_published():
                unsent.popleft()
            if len(unsent) < UNSENT_PER_BOARD:
                unsent.append(self.client.publish(topic, payload, wire.QOS_CALL))
                return
            self.counters['board_dropped'] += 1
            dropped = self.counters['board_dropped']
        if dropped % 1000 == 1:     # a flood is logged, not each message of it
            log.warning('board %s: %d of its messages wait for the broker already: dropped (%d so far)', board,
                        UNSENT_PER_BOARD, dropped)

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_S):
            self._publish_states()

    def _publish_states(self) -> None:
        """Publishes (retained) each board whose state is not the one last published."""
        with self._lock:
            for name, link in self.links.items():
                online = link.online()
                if online is self._published[name] or not self.client.is_connected():
                    continue
                self._published[name] = online
                log.info('board %s is %s', name, wire.ONLINE if online else wire.OFFLINE)
                self.client.publish(wire.status_topic(self.prefix, name), wire.ONLINE if online else wire.OFFLINE,
                                    wire.QOS_STATUS, retain=True)
