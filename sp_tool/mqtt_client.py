"""BoardClient: a board behind `sp gateway`, called from any program that reaches the broker (MQTT 5).

Each request goes out with its own Correlation Data and this client's
response topic, so any number of threads may call at once and each gets its
own answer. Whoever may call some board can make the gateway answer on any
topic, this client's too: an answer counts only with the call's Correlation
Data (16 random bytes, not to be guessed) and naming the call's board,
service and data id; anything else on the response topic is dropped and
counted.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from typing import Any, Dict, Optional, Union

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from . import mqtt_wire as wire

log = logging.getLogger('sp.mqtt_client')
CORRELATION_BYTES = 16


class _Call:
    """A request waiting for its answer, and what that answer must name."""

    def __init__(self, expected: Dict[str, Any]) -> None:
        self.expected = expected
        self.done = threading.Event()
        self.answer: Optional[Dict[str, Any]] = None

    def matches(self, answer: Any) -> bool:
        return (isinstance(answer, dict) and type(answer.get('status')) is int
                and isinstance(answer.get('status_name'), str)
                and all(answer.get(key) == value for key, value in self.expected.items()))


class BoardClient:
    """BoardClient('mqtt://HOST:PORT', 'kitchen').request('read', 0) -> {"status", "status_name", "data"}.

    The board may also be named in the URL's path: mqtt://HOST:PORT/[PREFIX/]BOARD.
    Raises ConnectionError when the broker cannot be reached within
    connect_timeout, TimeoutError when no answer came within a request's timeout.
    counters['dropped'] counts what came on the response topic and answers no waiting call.
    qos 1: a request the broker has not acknowledged is sent again after a reconnect (the gateway calls it once).
    """

    def __init__(self, broker_url: str, board: Optional[str] = None, prefix: str = wire.DEFAULT_PREFIX,
                 connect_timeout: float = 10.0, broker: Optional[wire.Broker] = None, qos: int = wire.QOS_CALL) -> None:
        parsed, path = wire.parse_broker(broker_url)
        self.broker = broker or parsed
        if board is None:
            prefix, _, board = path.rpartition('/')
            prefix = prefix or wire.DEFAULT_PREFIX
        why = wire.check_name(board)
        if why:
            raise ValueError(why)
        self.board, self.prefix, self.qos = board, prefix, qos
        client_id = 'sp-client-' + uuid.uuid4().hex[:12]
        self.reply_topic = '%s/reply/%s' % (prefix, client_id)
        self._lock = threading.Lock()
        self._pending: Dict[bytes, _Call] = {}
        self.counters = {'answers': 0, 'dropped': 0}
        self._subscribed = threading.Event()
        self._refused: Optional[str] = None
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.broker.apply(self.client)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        try:
            self.client.connect(self.broker.host, self.broker.port, keepalive=30)
        except OSError as err:
            raise ConnectionError('cannot reach the broker at %s: %s' % (self.broker.url, err.strerror or err)) from None
        self.client.loop_start()
        if not self._subscribed.wait(connect_timeout):
            self.close()
            raise ConnectionError('the broker at %s %s' % (self.broker.url, self._refused or 'did not answer in time'))

    def __enter__(self) -> 'BoardClient':
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._refused = 'refused the connection: %s' % reason_code
            return
        client.subscribe(self.reply_topic, self.qos)

    def _on_message(self, client, userdata, msg) -> None:
        """Hands an answer to its call: the first that has the call's Correlation Data and names what it asked."""
        correlation = getattr(msg.properties, 'CorrelationData', None)
        try:
            answer = json.loads(msg.payload)
        except (ValueError, RecursionError):
            answer = None
        with self._lock:
            call = self._pending.get(correlation)
            if call is not None and call.matches(answer):
                del self._pending[correlation]
                self.counters['answers'] += 1
            else:
                call = None
                self.counters['dropped'] += 1
                dropped = self.counters['dropped']
        if call is None:
            if dropped % 1000 == 1:     # a flood is logged, not each message of it
                log.warning('dropped a message on %s that answers no call of this client (%d so far)',
                            self.reply_topic, dropped)
            return
        call.answer = {key: value for key, value in answer.items() if key not in wire.ANSWER_IDS}
        call.done.set()

    def request(self, service: Union[str, int], data_id: int, data: Any = None, timeout: float = 10.0) -> Dict[str, Any]:
        """One call to the board: service is read, write, execute or a request Service-ID (ValueError otherwise)."""
        sid = wire.parse_service(str(service))
        call = _Call({'board': self.board, 'service_id': sid + 1, 'data_id': data_id})
        correlation = os.urandom(CORRELATION_BYTES)
        with self._lock:
            self._pending[correlation] = call
        try:
            properties = Properties(PacketTypes.PUBLISH)
            properties.ResponseTopic = self.reply_topic
            properties.CorrelationData = correlation
            self.client.publish(wire.request_topic(self.prefix, self.board, str(service), data_id),
                                wire.dumps(data), self.qos, properties=properties)
            if not call.done.wait(timeout):
                raise TimeoutError('no answer from board %s through %s within %g s'
                                   % (self.board, self.broker.url, timeout))
            return call.answer
        finally:
            with self._lock:
                self._pending.pop(correlation, None)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
