"""sp gateway: boards on serial ports or TCP behind an MQTT broker, so any program on the network can call any board.

Everything runs on one asyncio loop in one thread: the broker's client
(sp_tool.mqtt_aio), every board's link (sp_cpython.aio, sp_tool.board_link)
and every call, so a call costs no handoff between threads and the gateway
serves more calls as it gets more boards. Several gateways may share a
broker, each owning its boards (sp_tool.claims). A request delivered twice
(MQTT QoS 1, after a reconnect) is called once (sp_tool.call_memory). A
caller never waits forever: a board that is offline or does not answer in
time gets an error answer with a status that says which.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import socket
import threading
import uuid
from typing import Any, Dict, List, Optional
from urllib.parse import parse_qsl, urlencode

import sp_cpython as sp

from . import mqtt_wire as wire
from .board_link import OWN_PER_S, BoardLink, BoardSpec
from .call_memory import CallMemory
from .claims import (CLAIM_PROPERTY, GIVE_WAY, MAX_ID, OWNER_PROPERTY, REASON_PROPERTY, RESTATE, Claims,
                     short_enough)
from .log_budget import log_within
from .mqtt_aio import Client, Message, publish_properties
from .target import PROTOCOLS, read_secret_file

log = logging.getLogger('sp.gateway')
UNSENT_BYTES = 1 << 20  # what the broker has not taken yet; past that answers and the boards' messages are dropped
SYNC_S = 2.0            # how long the broker's retained claims may take before this gateway decides without them
STOP_S = 2.0            # what stop() gives the broker to take the last statuses
STATE_GAP_S = 0.5       # between two statuses of one board: one that flaps has two a second published at most
PACKET_HEADROOM = 1 << 17   # a request's packet beyond its payload: topic, response topic, properties
COUNTERS = ('requests', 'answered', 'timeouts', 'offline', 'bad_input', 'board_messages', 'board_dropped',
            'repeats', 'refused', 'answers_dropped')
BOARD_OPTIONS = ('secret', 'secret_file', 'codec', 'baud')


def parse_board(text: str) -> BoardSpec:
    """NAME=TARGET[?secret=S|secret_file=PATH][&codec=C][&baud=N]; other query keys stay in the target."""
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


class Reply:
    """Where an answer goes (an MQTT 5 response topic and correlation data, or a 3.1.1 envelope's reply_to and
    id) and what it names: the board, and the response's Service-ID and Data-ID once they are known."""

    __slots__ = ('topic', 'board', 'correlation', 'envelope_id', 'envelope', 'service_id', 'data_id', 'qos')

    def __init__(self, topic: str, board: str, correlation: Optional[bytes] = None, envelope_id: Any = None,
                 envelope: bool = False, qos: int = 0) -> None:
        self.topic, self.board, self.correlation = topic, board, correlation
        self.envelope_id, self.envelope, self.qos = envelope_id, envelope, qos
        self.service_id: Optional[int] = None
        self.data_id: Optional[int] = None

    def name(self, sid: Optional[int], did: Optional[int]) -> None:
        """Names the call's ids (a request's Service-ID: the answer names the response's), None when not valid."""
        self.service_id = None if sid is None else sp.response_sid(sid)
        self.data_id = did

    def key(self, request_topic: str, payload: bytes) -> Optional[bytes]:
        """What tells a repeat of this call from another call (sp_tool.call_memory): a digest of the request's topic,
        its reply address and its payload, so that only the same bytes again are a repeat (a request sent first
        under another caller's address is a call of its own); None when the caller gave no id to tell by."""
        if self.envelope:
            if self.envelope_id is None:
                return None
            ident = json.dumps(self.envelope_id).encode()
        elif self.correlation is None:
            return None
        else:
            ident = self.correlation
        digest = hashlib.blake2b(digest_size=16)
        digest.update(b'E' if self.envelope else b'C')   # an envelope's id and correlation data are no one address
        for part in (request_topic.encode(), self.topic.encode(), ident, payload):
            digest.update(len(part).to_bytes(4, 'big'))
            digest.update(part)
        return digest.digest()


class Gateway:
    """Bridges requests on the broker to the boards and publishes what the boards say and whether they are there."""

    def __init__(self, broker: wire.Broker, boards: List[BoardSpec], prefix: str = wire.DEFAULT_PREFIX,
                 timeout: float = 5.0, workers: int = 8, max_payload: int = 65536,
                 gateway_id: Optional[str] = None) -> None:
        why = wire.check_prefix(prefix)
        if why:
            raise ValueError('%s: %r' % (why, prefix))
        names = [spec.name for spec in boards]
        if len(set(names)) != len(names):
            raise ValueError('two boards with the same name')
        self.prefix = prefix
        self.timeout = timeout
        self.max_payload = max_payload
        self.id = gateway_id or '%s-%s' % (socket.gethostname(), uuid.uuid4().hex[:8])
        if not short_enough(self.id):
            raise ValueError('a gateway id of more than %d characters' % MAX_ID)
        self.counters = dict.fromkeys(COUNTERS, 0)
        self._said_bad = [0.0, 0, 0]   # lines on callers' bad input: since when (ms), how many, how many left out
        self._said_claims = [0.0, 0, 0]   # lines on who owns a board, which statuses forged on the broker would make
        self.links = {spec.name: BoardLink(spec, workers, self._publish_from_board, self._publish_states)
                      for spec in boards}
        self.owned: set = set()                 # the boards this gateway answers for
        self.claims = Claims(self.id)
        self.memory = CallMemory()
        self._published: Dict[str, Any] = dict.fromkeys(names)   # an owned board's state as last published
        self._published_at: Dict[str, float] = {}                 # and when (the loop's clock)
        self._publish_later: Dict[str, asyncio.TimerHandle] = {}  # a board's state waiting for STATE_GAP_S to pass
        self._refused: Dict[str, str] = {}      # a board refused -> the gateway that held it: counted and logged once
        self._calls: set = set()
        self.gateway_topic = '%s/gateway/%s/status' % (prefix, self.id)
        self._sync_topic = '%s/gateway/%s/sync' % (prefix, self.id)
        self._sync_mid: Optional[int] = None
        self._sync_timer: Optional[asyncio.TimerHandle] = None
        # a client id of its own, not to be guessed: the gateway's id is published (statuses name it), and whoever
        # connects with a client's id takes its connection over
        self.client = Client(broker, 'sp-gateway-' + uuid.uuid4().hex[:12],
                             will=(self.gateway_topic, wire.OFFLINE.encode(), wire.QOS_STATUS, True),
                             max_packet=2 * max_payload + PACKET_HEADROOM)
        self.client.on_connect = self._on_connect
        self.client.on_suback = self._on_suback
        self.client.on_message = self._on_message
        self.broker = broker
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name='gateway', daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._loop.call_soon_threadsafe(self.client.start)

    def stop(self) -> None:
        """Says offline for every board it owns and for itself, then lets go of the broker and the boards."""
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    async def _stop(self) -> None:
        for later in self._publish_later.values():
            later.cancel()
        for name in self.owned:
            self._publish_status(name, False, 'the gateway stopped')
        self.client.publish(self.gateway_topic, b'', wire.QOS_STATUS, retain=True)    # gone: its retained status too
        await self.client.stop(STOP_S)
        for task in list(self._calls):
            task.cancel()
        await asyncio.gather(*(link.close() for link in self.links.values()), return_exceptions=True)
        # what is left ends before the loop does, as asyncio.run() ends it: a peer still on probation at a board's
        # listening port, its connection's tasks (else a traceback each as the loop closes)
        rest = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)
        await asyncio.sleep(0)   # (and the callbacks closing their transports)

    def count(self, name: str) -> None:
        self.counters[name] += 1

    def _bad_input(self, level: int, text: str, *args: Any) -> None:
        """Counts a caller's or a board's bad input and logs it, LINES_A_SECOND lines a second at most, as an engine
        logs a peer's: a caller that may publish requests, or a board that sends its own messages, would fill the
        log. The first line of a later second says how many were left out."""
        self.count('bad_input')
        log_within(self._said_bad, level, 'bad input', text, *args)

    # broker side ----------------------------------------------------------------------------
    def _on_connect(self) -> None:
        """Subscribes again (a restarted broker forgot everything), then learns who owns what before it claims."""
        log.info('connected to %s as gateway %s', self.broker.url, self.id)
        for name in self._published:
            self._published[name] = None    # a restarted broker forgot the statuses: publish again
        client = self.client
        control = [(wire.status_topic(self.prefix, name), wire.QOS_STATUS) for name in self.links]
        control += [('%s/gateway/+/status' % self.prefix, wire.QOS_STATUS), (self._sync_topic, wire.QOS_STATUS)]
        control += [(self._request_topics(name), wire.QOS_STATUS | wire.NO_RETAINED) for name in self.owned]
        self._sync_mid = client.subscribe(control)
        client.publish(self.gateway_topic, wire.ONLINE.encode(), wire.QOS_STATUS, retain=True)
        for name in self.owned:   # claimed anew: one that another gateway made while this one was away (its will
            self.claims.claimed(name)   # said offline) is put in the broker's order with it, as any two claims are
        self._publish_states()
        if self._sync_timer is not None:
            self._sync_timer.cancel()
        self._sync_timer = self._loop.call_later(SYNC_S, self._settle_claims)

    def _request_topics(self, name: str) -> str:
        return '%s/%s/+/+/req' % (self.prefix, name)

    def _on_suback(self, packet_id: int) -> None:
        if packet_id == self._sync_mid:     # the retained statuses come before anything published after the SUBACK
            self.client.publish(self._sync_topic, b'', wire.QOS_STATUS)

    def _settle_claims(self) -> None:
        """Claims each board no other live gateway holds; refuses (once, logged) the rest."""
        if self._sync_timer is not None:
            self._sync_timer.cancel()
            self._sync_timer = None
        for name, link in self.links.items():
            if name in self.owned:
                continue
            holder = self.claims.holder(name)
            if holder is not None:
                if self._refused.get(name) != holder:
                    self._refused[name] = holder
                    self.count('refused')
                    log_within(self._said_claims, logging.ERROR, 'claims',
                               'board %s is claimed by gateway %r already: not answered here', name, holder)
                continue
            log_within(self._said_claims, logging.INFO, 'claims', 'board %s is ours', name)
            self._refused.pop(name, None)
            self.owned.add(name)
            self.claims.claimed(name)
            self._published[name] = None
            self.client.subscribe([(self._request_topics(name), wire.QOS_STATUS | wire.NO_RETAINED)])
            link.start()
        self._publish_states()

    def _give_up(self, name: str, owner: str) -> None:
        """Another gateway claimed a board of this one at the same time, and later: the board is its."""
        log_within(self._said_claims, logging.ERROR, 'claims',
                   'board %s was claimed by gateway %r too: it is theirs, not answered here', name, owner)
        self.count('refused')
        self.owned.discard(name)
        self.claims.released(name)
        self._refused[name] = owner
        self.client.unsubscribe([self._request_topics(name)])
        self._spawn(self.links[name].close())     # lets go at once: this same read may claim the board back

    def _on_message(self, msg: Message) -> None:
        """Whatever a message holds, it ends here: no message can stop the gateway's loop."""
        if not msg.topic.endswith('/req'):
            try:
                self._on_control(msg)
            except Exception as err:
                self._bad_input(logging.ERROR, 'message on %.200r dropped: %s', msg.topic, type(err).__name__)
            return
        self.count('requests')
        try:
            self._take(msg)
        except Exception as err:    # a flaw a message found: that message is lost, the gateway runs on
            self._bad_input(logging.ERROR, 'request on %.200r dropped: %s', msg.topic, type(err).__name__)

    def _on_control(self, msg: Message) -> None:
        """A board's status, a gateway's liveness, or this gateway's own sync marker."""
        if msg.topic == self._sync_topic:
            self._settle_claims()
            return
        parts = msg.topic[len(self.prefix) + 1:].split('/')
        if parts[0] == 'gateway' and len(parts) == 3:
            self.claims.heard_gateway(parts[1], msg.payload)
            if self._sync_timer is None:
                self._settle_claims()     # a gateway that went away may leave a board free
        elif len(parts) == 2 and parts[0] in self.links:
            name = parts[0]
            verdict = self.claims.heard_status(name, msg.user_properties)
            if verdict == GIVE_WAY:
                self._give_up(name, self.claims.owners[name])
            elif verdict == RESTATE:    # a late status of a gateway that gives way: the retained one must be ours
                link = self.links[name]
                self._publish_status(name, link.online(), link.why)

    def _take(self, msg: Message) -> None:
        """Checks the request and starts its call; never blocks."""
        board, service, did_text = msg.topic[len(self.prefix) + 1:].split('/')[:3]   # as subscribed: .../req
        if board not in self.owned:
            return      # sent before this gateway gave the board up: its owner answers
        if msg.retain:  # a request kept by the broker would run again on every subscribe (its subscription asks for
            # none; this is for a broker that ignores that)
            self._bad_input(logging.WARNING, 'retained request on %.200r dropped: a request runs once, when it is '
                            'sent', msg.topic)
            return
        reply = sid = did = ids_fault = None
        try:
            try:   # the ids first: the answer to a request refused for its payload names them too
                sid = wire.parse_service(service)
                did = wire.parse_data_id(did_text)
            except ValueError as err:
                ids_fault = err
            if msg.response_topic:
                reply = Reply(wire.reply_topic(msg.response_topic, self.prefix), board, msg.correlation, qos=msg.qos)
                reply.name(sid, did)
            if len(msg.payload) > self.max_payload:
                raise ValueError('a payload of %d bytes is over the limit of %d' % (len(msg.payload), self.max_payload))
            try:
                data = json.loads(msg.payload) if msg.payload else None
            except (ValueError, RecursionError) as err:
                raise ValueError('the payload is not JSON (%s)' % type(err).__name__) from None
            if reply is None:
                topic, envelope_id, data = wire.parse_envelope(data)
                reply = Reply(wire.reply_topic(topic, self.prefix), board, None, envelope_id, True, msg.qos)
                reply.name(sid, did)
            if ids_fault is not None:
                raise ids_fault
            link = self.links[board]
            too_long = link.frame_fault(sid, did, data, len(msg.payload))
            if too_long:
                raise ValueError(too_long)
        except ValueError as err:
            self._bad_input(logging.WARNING, 'bad request on %.200r: %s%s', msg.topic, err,
                            '' if reply else ' (nowhere to answer: dropped)')
            if reply is not None:
                self._respond(reply, wire.answer(wire.STATUS_BAD_REQUEST, str(err)))
            return
        key = reply.key(msg.topic, msg.payload)
        if key is not None and self.memory.repeat(key, lambda answer: self._send(reply, answer)):
            self.count('repeats')
            return
        if not link.online():
            self.count('offline')
            self._respond(reply, wire.answer(wire.STATUS_BOARD_OFFLINE, '%s is offline: %s' % (board, link.why)))
            return
        if not link.take_call():
            self.count('timeouts')
            self._respond(reply, wire.answer(wire.STATUS_TIMEOUT, '%d calls already wait for %s'
                                             % (link.max_waiting, board)))
            return
        if key is not None:
            self.memory.begin(key)
        self._spawn(self._call(link, sid, did, data, reply, key))

    def _spawn(self, coroutine) -> None:
        task = self._loop.create_task(coroutine)
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)

    async def _call(self, link: BoardLink, sid: int, did: int, data: Any, reply: Reply, key: Optional[bytes]):
        """One call to the board, one answer to the caller (and to any repeat of the call), whatever happens."""
        try:
            msg = await link.request(sid, did, data, self.timeout)
        except Exception as err:    # the codec refused what JSON allowed (e.g. a data id over 16 bits)
            self._bad_input(logging.WARNING, 'board %s cannot take service %d, data id %d: %.200s', link.name, sid, did,
                            err)
            body = wire.answer(wire.STATUS_BAD_REQUEST, str(err))
        else:
            if msg is not None:
                self.count('answered')
                body = wire.relayed(msg.get_status(), msg.get_data())
            elif not link.online():
                self.count('offline')
                body = wire.answer(wire.STATUS_BOARD_OFFLINE, '%s went offline' % link.name)
            else:
                self.count('timeouts')
                body = wire.answer(wire.STATUS_TIMEOUT, 'no answer from %s within %g s' % (link.name, self.timeout))
        answer = self._respond(reply, body)
        if key is not None:
            self.memory.answered(key, answer)

    def _respond(self, reply: Reply, body: Dict[str, Any]) -> bytes:
        """Publishes body, naming what it answers, where the caller asked (a topic checked on arrival); the payload."""
        body = wire.addressed(body, reply.board, reply.service_id, reply.data_id)
        if reply.envelope:
            body['id'] = reply.envelope_id
        answer = wire.dumps(body)
        too_big = self.client.too_big
        self._send(reply, answer)
        if self.client.too_big > too_big and body['status'] != wire.STATUS_BAD_REQUEST:   # (logged by the client)
            return self._respond(reply, wire.answer(wire.STATUS_BAD_REQUEST, 'the answer, %d bytes, is larger than '
                                                    'the broker takes' % len(answer)))
        return answer

    def _send(self, reply: Reply, answer: bytes) -> None:
        """An answer goes while the broker keeps up. Callers choose its size (a reply topic and correlation data of
        64 KiB each) and how many go at once (calls that end together, each with its repeats): past UNSENT_BYTES
        it is dropped, its caller's timeout tells, and they cannot fill the client's MAX_UNSENT, which takes the
        gateway off the broker, every board's calls with it."""
        if self.client.write_buffer_size() < UNSENT_BYTES:
            self.client.publish(reply.topic, answer, reply.qos, properties=publish_properties(reply.correlation))
            return
        self.count('answers_dropped')
        if self.counters['answers_dropped'] % 1000 == 1:     # a flood is logged, not each answer of it
            log.warning('the broker has not taken %d bytes: answers dropped (%d so far)', UNSENT_BYTES,
                        self.counters['answers_dropped'])

    # board side ------------------------------------------------------------------------------
    def _publish_from_board(self, board: str, msg: sp.data_storage) -> None:
        self.count('board_messages')
        link = self.links[board]
        if link.over_budget():     # a flood of one board's own messages holds up no other board's calls
            self.count('board_dropped')
            if link.flood_began:
                log.warning('board %s sends more than %d messages of its own a second: the rest dropped (%d so far)',
                            board, OWN_PER_S, self.counters['board_dropped'])
            return
        sid, did = msg.get_service_id(), msg.get_data_id()
        topic = '%s/%s/%d/%s' % (self.prefix, board, sid, did)
        fault = 'a topic level of its own' if isinstance(did, str) and '/' in did else wire.topic_fault(topic)
        if fault:   # a topic the broker refuses would cost the gateway its connection
            self._bad_input(logging.WARNING, 'board %s sent data id %.200r, which is no topic level (%s): dropped',
                            board, did, fault)
            return
        if self.client.write_buffer_size() < UNSENT_BYTES:     # a board that outruns the broker fills no queue
            self.client.publish(topic, wire.dumps(wire.addressed(wire.relayed(msg.get_status(), msg.get_data()),
                                                                 board, sid, did)), wire.QOS_CALL)
            return
        self.count('board_dropped')
        if self.counters['board_dropped'] % 1000 == 1:     # a flood is logged, not each message of it
            log.warning('board %s: %d bytes wait for the broker already: its message dropped (%d so far)', board,
                        UNSENT_BYTES, self.counters['board_dropped'])

    def _publish_states(self) -> None:
        """Publishes (retained) each owned board whose state is not the one last published, STATE_GAP_S after the
        last at the soonest: a board that dials in and hangs up in a loop has its latest state published, not
        each. The first status of a claim (none published since) goes at once: other gateways go by it."""
        if not self.client.is_connected():
            return
        now = self._loop.time()
        for name in self.owned:
            link = self.links[name]
            online = link.online()
            state = (online, None if online else link.why)
            if state == self._published[name]:
                continue
            wait = self._published_at.get(name, -STATE_GAP_S) + STATE_GAP_S - now
            if wait > 0 and self._published[name] is not None:   # (a claim's first status goes at once)
                if name not in self._publish_later:
                    self._publish_later[name] = self._loop.call_later(wait, self._publish_late, name)
                continue
            self._published[name] = state
            self._published_at[name] = now
            self._publish_status(name, online, link.why)

    def _publish_late(self, name: str) -> None:
        del self._publish_later[name]
        self._publish_states()

    def _publish_status(self, name: str, online: bool, why: str) -> None:
        properties = publish_properties(user_properties=[(OWNER_PROPERTY, self.id),
                                                         (CLAIM_PROPERTY, self.claims.token(name))]
                                        + ([] if online else [(REASON_PROPERTY, why)]))
        self.client.publish(wire.status_topic(self.prefix, name), (wire.ONLINE if online else wire.OFFLINE).encode(),
                            wire.QOS_STATUS, retain=True, properties=properties)
