"""BoardClient: a board behind `sp gateway`, called from any program that reaches the broker (MQTT 5).

Each request goes out with its own Correlation Data and this client's
response topic, so any number of threads may call at once and each gets its
own answer.
"""
from __future__ import annotations

import itertools
import json
import threading
import uuid
from typing import Any, Dict, Optional, Union

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from . import mqtt_wire as wire


class BoardClient:
    """BoardClient('mqtt://HOST:PORT', 'kitchen').request('read', 0) -> {"status", "status_name", "data"}.

    The board may also be named in the URL's path: mqtt://HOST:PORT/[PREFIX/]BOARD.
    Raises ConnectionError when the broker cannot be reached within
    connect_timeout, TimeoutError when no answer came within a request's timeout.
    """

    def __init__(self, broker_url: str, board: Optional[str] = None, prefix: str = wire.DEFAULT_PREFIX,
                 connect_timeout: float = 10.0, broker: Optional[wire.Broker] = None) -> None:
        parsed, path = wire.parse_broker(broker_url)
        self.broker = broker or parsed
        if board is None:
            prefix, _, board = path.rpartition('/')
            prefix = prefix or wire.DEFAULT_PREFIX
        why = wire.check_name(board)
        if why:
            raise ValueError(why)
        self.board, self.prefix = board, prefix
        client_id = 'sp-client-' + uuid.uuid4().hex[:12]
        self.reply_topic = '%s/reply/%s' % (prefix, client_id)
        self._lock = threading.Lock()
        self._pending: Dict[bytes, list] = {}
        self._ids = itertools.count(1)
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
        client.subscribe(self.reply_topic, wire.QOS_CALL)

    def _on_message(self, client, userdata, msg) -> None:
        correlation = getattr(msg.properties, 'CorrelationData', None)
        with self._lock:
            slot = self._pending.get(correlation)
        if slot is None:
            return      # an answer to a call that gave up
        try:
            answer = json.loads(msg.payload)
        except (ValueError, RecursionError):
            answer = None
        if not (isinstance(answer, dict) and isinstance(answer.get('status'), int) and 'status_name' in answer):
            answer = wire.answer(wire.STATUS_BAD_REQUEST, 'the gateway answered something that is not an answer')
        slot.append(answer)
        slot[0].set()

    def request(self, service: Union[str, int], data_id: int, data: Any = None, timeout: float = 10.0) -> Dict[str, Any]:
        """One call to the board: service is read, write, execute or a request Service-ID."""
        correlation = b'%d' % next(self._ids)
        slot = [threading.Event()]
        with self._lock:
            self._pending[correlation] = slot
        try:
            properties = Properties(PacketTypes.PUBLISH)
            properties.ResponseTopic = self.reply_topic
            properties.CorrelationData = correlation
            self.client.publish(wire.request_topic(self.prefix, self.board, str(service), data_id),
                                wire.dumps(data), wire.QOS_CALL, properties=properties)
            if not slot[0].wait(timeout):
                raise TimeoutError('no answer from board %s through %s within %g s'
                                   % (self.board, self.broker.url, timeout))
            return slot[1]
        finally:
            with self._lock:
                del self._pending[correlation]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
