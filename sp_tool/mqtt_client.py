"""BoardClient: a board behind `sp gateway`, called from any program that reaches the broker (MQTT 5).

Each request goes out with its own Correlation Data and this client's
response topic, so any number of threads may call at once and each gets its
own answer. Whoever may call some board can make the gateway answer on any
topic, this client's too: an answer counts only with the call's Correlation
Data (16 random bytes, not to be guessed) and naming the call's board,
service and data id; anything else on the response topic is dropped and
counted. The broker's connection is sp_tool.mqtt_aio's client on a loop
thread that all BoardClients of a process share (one thread per client
would have each call's answer wait for the GIL among twice as many
threads): a caller's thread hands it the request and waits for the answer.
"""
from __future__ import annotations

import asyncio
import logging
import os
import threading
import uuid
from typing import Any, Dict, Optional, Union

from sp_common.host_json import loads
from sp_common.names import response_sid

from . import mqtt_wire as wire
from .mqtt_aio import Client, Message, publish_properties

log = logging.getLogger('sp.mqtt_client')
CORRELATION_BYTES = 16
# The largest packet taken, said in the CONNECT so that the broker drops bigger ones: an answer carries at most
# a board frame's data (64 KiB on the gateway's links), a forged packet of megabytes costs nothing.
MAX_ANSWER_PACKET = 1 << 20


_shared: Optional[asyncio.AbstractEventLoop] = None
_shared_lock = threading.Lock()


def shared_loop() -> asyncio.AbstractEventLoop:
    """The process's loop for BoardClients, started on first use, on a daemon thread."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = asyncio.new_event_loop()
            threading.Thread(target=_shared.run_forever, name='sp-mqtt-clients', daemon=True).start()
        return _shared


class _Call:
    """A request waiting for its answer, and what that answer must name. done is a lock held until the answer
    is there: releasing it costs the loop's thread less than setting an Event."""

    def __init__(self, expected: Dict[str, Any]) -> None:
        self.expected = expected
        self.done = threading.Lock()
        self.done.acquire()
        self.answer: Optional[Dict[str, Any]] = None

    def matches(self, answer: Any) -> bool:
        return (isinstance(answer, dict) and type(answer.get('status')) is int
                and isinstance(answer.get('status_name'), str) and 'data' in answer
                and all(answer.get(key) == value for key, value in self.expected.items()))


class BoardClient:
    """BoardClient('mqtt://HOST:PORT', 'kitchen').request('read', 0) -> {"status", "status_name", "data"}.

    The board may also be named in the URL's path: mqtt://HOST:PORT/[PREFIX/]BOARD.
    Raises ConnectionError when the broker cannot be reached within
    connect_timeout, TimeoutError when no answer came within a request's timeout.
    counters['dropped'] counts what came on the response topic and answers no waiting call.
    qos 1: the broker keeps a request for a gateway that is reconnecting (which calls a repeat only once).
    """

    def __init__(self, broker_url: str, board: Optional[str] = None, prefix: str = wire.DEFAULT_PREFIX,
                 connect_timeout: float = 10.0, broker: Optional[wire.Broker] = None, qos: int = wire.QOS_CALL,
                 max_packet: int = MAX_ANSWER_PACKET) -> None:
        parsed, path = wire.parse_broker(broker_url)
        self.broker = broker or parsed
        if board is None:
            prefix, _, board = path.rpartition('/')
            prefix = prefix or wire.DEFAULT_PREFIX
        why = wire.check_prefix(prefix) or wire.check_name(board)
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
        self._loop = shared_loop()
        self.client = Client(self.broker, client_id, session_s=0, max_packet=max_packet)
        self.client.on_connect = lambda: self.client.subscribe([(self.reply_topic, qos)])
        self.client.on_suback = lambda packet_id: self._subscribed.set()
        self.client.on_error = self._on_error
        self.client.on_message = self._on_message
        self._closed = False
        self._loop.call_soon_threadsafe(self.client.start)
        if not self._subscribed.wait(connect_timeout) or self._refused:
            self.close()
            raise ConnectionError(self._refused or 'the broker at %s did not answer in time' % self.broker.url)

    def __enter__(self) -> 'BoardClient':
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _on_error(self, why: str) -> bool:
        """Before the first subscription: the constructor's error, which it raises (so the client logs it for -v
        only); after it, the client reconnects by itself and logs why."""
        if self._subscribed.is_set():
            return False
        self._refused = why
        self._subscribed.set()
        return True

    def _on_message(self, msg: Message) -> None:
        """Hands an answer to its call: the first that has the call's Correlation Data and names what it asked.
        Only a message with a waiting call's Correlation Data is parsed: anyone who may publish on the reply
        topic could make each of its messages cost a parse on the thread every call shares."""
        answer = None
        if msg.correlation in self._pending:
            try:   # strict: NaN, Infinity and 1e999 are no JSON, and `sp call --json` prints what this gives
                answer = loads(msg.payload.decode())
            except (ValueError, RecursionError):
                pass
        with self._lock:
            call = self._pending.get(msg.correlation)
            if call is not None and call.matches(answer):
                del self._pending[msg.correlation]
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
        # what the answer says, nothing a forger added, and its status named here: a name relayed could contradict it
        call.answer = {'status': answer['status'], 'status_name': wire.status_name(answer['status']),
                       'data': answer['data']}
        call.done.release()

    def request(self, service: Union[str, int], data_id: int, data: Any = None, timeout: float = 10.0) -> Dict[str, Any]:
        """One call to the board: service is read, write, execute or a request Service-ID (ValueError otherwise)."""
        sid = wire.caller_service(service)
        call = _Call({'board': self.board, 'service_id': response_sid(sid), 'data_id': data_id})
        correlation = os.urandom(CORRELATION_BYTES)
        with self._lock:
            self._pending[correlation] = call
        try:
            properties = publish_properties(correlation, response_topic=self.reply_topic)
            self._loop.call_soon_threadsafe(self.client.publish, wire.request_topic(self.prefix, self.board,
                                                                                    wire.service_level(sid), data_id),
                                            wire.dumps(data), self.qos, False, properties)
            if not call.done.acquire(timeout=max(timeout, 0)):
                raise TimeoutError('no answer from board %s through %s within %g s'
                                   % (self.board, self.broker.url, timeout))
            return call.answer
        finally:
            with self._lock:
                self._pending.pop(correlation, None)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            asyncio.run_coroutine_threadsafe(self.client.stop(1.0), self._loop).result()
