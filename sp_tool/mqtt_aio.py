"""A lean MQTT 5 client on asyncio: what the gateway needs of the protocol, without a thread or a general codec.

The profile of the gateway on paho showed half its time in paho (its
Properties object alone, built for every message, cost more than the call's
JSON) and a quarter in handing messages between threads. This client runs
on the gateway's loop and reads and writes only what the gateway uses:
PUBLISH at QoS 0 and 1 (Response Topic, Correlation Data, User Property),
SUBSCRIBE, UNSUBSCRIBE, the keepalive, a last will, login and TLS. It
reconnects by itself, every 1 to 2 s, asking the broker to keep its session
(and the QoS 1 requests that come meanwhile) for session_s, and ends the
session when it stops. BoardClient
uses it too, on a loop thread that its process shares.
"""
from __future__ import annotations

import asyncio
import logging
import ssl
import struct
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from sp_cpython.aio import small_reads

from . import mqtt_wire as wire
from .log_budget import log_within

log = logging.getLogger('sp.gateway')
RECONNECT_S = (1.0, 2.0)    # first and longest wait between two connection attempts
SESSION_S = 300             # how long the broker keeps the session of a client that went away
CONNECT_S = 10.0            # what the broker gets to answer a CONNECT

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK, UNSUBSCRIBE = 0x10, 0x20, 0x30, 0x40, 0x82, 0x90, 0xA2
PINGREQ = b'\xc0\x00'
SESSION_EXPIRY, RESPONSE_TOPIC, CORRELATION_DATA, USER_PROPERTY, MAXIMUM_PACKET_SIZE = 17, 8, 9, 38, 39
# a normal disconnection that ends the session (Session Expiry Interval 0): the broker keeps no subscription, and no
# QoS 1 request queued, for a client that stopped
DISCONNECT = b'\xe0\x07\x00\x05' + bytes((SESSION_EXPIRY,)) + b'\x00\x00\x00\x00'
SERVER_KEEP_ALIVE, RECEIVE_MAXIMUM = 19, 33
NO_QUOTA = 65535            # QoS 1 messages in flight a broker takes that names no Receive Maximum
NO_SIZE_LIMIT = 1 << 28     # beyond MQTT's largest packet: what a broker takes that names no Maximum Packet Size
# property id -> how its value is laid out, for the properties a broker may send on a PUBLISH, CONNACK or SUBACK
_LAYOUT = {1: 'byte', 2: 'u32', 3: 'str', 8: 'str', 9: 'bin', 11: 'var', 17: 'u32', 18: 'str', 19: 'u16',
           21: 'str', 22: 'bin', 26: 'str', 28: 'str', 31: 'str', 33: 'u16', 34: 'u16', 35: 'u16', 36: 'byte',
           37: 'byte', 38: 'pair', 39: 'u32', 40: 'byte', 41: 'byte', 42: 'byte'}


class Message:
    """A PUBLISH the broker delivered: its topic, payload, QoS and the properties the gateway reads."""

    __slots__ = ('topic', 'payload', 'qos', 'retain', 'response_topic', 'correlation', 'user_properties')

    def __init__(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> None:
        self.topic, self.payload, self.qos, self.retain = topic, payload, qos, retain
        self.response_topic: Optional[str] = None
        self.correlation: Optional[bytes] = None
        self.user_properties: Dict[str, str] = {}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack('!H', len(raw)) + raw


def _binary(raw: bytes) -> bytes:
    return struct.pack('!H', len(raw)) + raw


def _packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + _varint(len(body)) + body


def _read_varint(data: bytes, pos: int) -> Tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 21:
            raise ValueError('a variable byte integer over 4 bytes')


MAX_PACKET = 16 << 20   # the largest packet a client takes (it says so in its CONNECT); a broker that sends more
                        # is broken: the link goes before the buffer grows
MAX_UNSENT = 4 << 20    # bytes a broker has not taken; past them it reads nothing, and the link goes
MAX_USER_PROPERTIES = 16    # kept of a PUBLISH (the rest skipped): a flood of tiny ones makes no dict of millions
# read of a packet's properties: a PUBLISH with more (50,000 empty user properties in 250 KB, each read in Python)
# is dropped unread, so that it costs its sender, not every board of the gateway
MAX_PROPERTIES = 64


class TooManyProperties(ValueError):
    pass


def _bounds(buffer: bytearray, pos: int, limit: int = MAX_PACKET) -> Optional[Tuple[int, int]]:
    """(start, end) of the body of the packet at pos, or None while it has not arrived whole."""
    length = shift = 0
    i = pos + 1
    while True:
        if i >= len(buffer):
            return None
        byte = buffer[i]
        i += 1
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
        if shift > 21:
            raise ValueError('a packet length over 4 bytes')
    if length > limit:
        raise ValueError('a packet of %d bytes, over the limit of %d' % (length, limit))
    return (i, i + length) if len(buffer) >= i + length else None


def _read_properties(data: bytes, pos: int, into: Optional[Message] = None,
                     numbers: Optional[Dict[int, int]] = None) -> int:
    """Skips the properties at pos, keeping in `into` those the gateway reads of a message, and in `numbers`
    (property id -> value) the integers of a CONNACK; the position after them."""
    length, pos = _read_varint(data, pos)
    end = pos + length
    count = 0
    while pos < end:
        count += 1
        if count > MAX_PROPERTIES:
            raise TooManyProperties('more than %d properties' % MAX_PROPERTIES)
        ident, pos = _read_varint(data, pos)
        layout = _LAYOUT.get(ident)
        if layout is None:
            raise ValueError('unknown property %d' % ident)
        if layout in ('str', 'bin'):
            size = struct.unpack_from('!H', data, pos)[0]
            value = data[pos + 2:pos + 2 + size]
            pos += 2 + size
            if into is not None and ident == RESPONSE_TOPIC:
                into.response_topic = value.decode()
            elif into is not None and ident == CORRELATION_DATA:
                into.correlation = bytes(value)
        elif layout == 'pair':
            key_size = struct.unpack_from('!H', data, pos)[0]
            key = data[pos + 2:pos + 2 + key_size]
            pos += 2 + key_size
            size = struct.unpack_from('!H', data, pos)[0]
            if into is not None and len(into.user_properties) < MAX_USER_PROPERTIES:
                into.user_properties[key.decode()] = data[pos + 2:pos + 2 + size].decode()
            pos += 2 + size
        elif layout == 'var':
            _, pos = _read_varint(data, pos)
        else:
            size = {'byte': 1, 'u16': 2, 'u32': 4}[layout]
            if numbers is not None:
                numbers[ident] = int.from_bytes(data[pos:pos + size], 'big')
            pos += size
    if pos != end:
        raise ValueError('properties overrun their length')
    return end


def publish_properties(correlation: Optional[bytes] = None, user_properties: Sequence[Tuple[str, str]] = (),
                       response_topic: Optional[str] = None) -> bytes:
    """The properties of a PUBLISH, encoded once (an answer's are sent again to a repeat of its call)."""
    body = b'' if response_topic is None else bytes((RESPONSE_TOPIC,)) + _string(response_topic)
    if correlation is not None:
        body += bytes((CORRELATION_DATA,)) + _binary(correlation)
    for key, value in user_properties:
        body += bytes((USER_PROPERTY,)) + _string(key) + _string(value)
    return _varint(len(body)) + body


NO_PROPERTIES = publish_properties()


class Client(asyncio.Protocol):
    """MQTT 5 to one broker, on the running loop. on_connect() after every CONNACK that accepts, on_message(msg)
    for every PUBLISH, on_suback(packet_id) for a subscription granted (on_error(why) for one refused); publish()
    drops what comes while the broker is away. A broker that breaks MQTT (a packet it may not send now) loses
    the link, as a client of a broker that breaks it should."""

    def __init__(self, broker: wire.Broker, client_id: str, keepalive: int = 30,
                 will: Optional[Tuple[str, bytes, int, bool]] = None, session_s: int = SESSION_S,
                 max_packet: int = MAX_PACKET) -> None:
        """max_packet: the largest packet taken. The CONNECT says it (Maximum Packet Size), so the broker drops a
        longer message itself: one it delivered again on every reconnect would keep the client off for good."""
        self.broker = broker
        self.max_packet = max_packet
        self.client_id = client_id
        self.keepalive = keepalive   # asked for; the broker's CONNACK may set another (_keepalive)
        self._keepalive = keepalive
        self._largest_out = NO_SIZE_LIMIT   # the largest packet the broker takes (its CONNACK may say less)
        self.will = will
        self.session_s = session_s
        self._context = self._ssl()     # a TLS file that is missing or bad is a configuration error, raised here
        self._failing: Optional[str] = None     # why the last attempt to connect failed, until one succeeds
        self.on_connect: Callable[[], None] = lambda: None
        # the broker cannot be reached or refused; True: the error is the caller's to say (it raises it), and the
        # client logs it for -v only
        self.on_error: Callable[[str], Optional[bool]] = lambda why: None
        self.on_message: Callable[[Message], None] = lambda msg: None
        self.on_suback: Callable[[int], None] = lambda packet_id: None
        self._transport: Optional[asyncio.Transport] = None
        self._connected = False
        self._buffer = bytearray()
        self._packet_id = 0
        self._subscribing: Set[int] = set()   # the SUBSCRIBEs of this connection that await their SUBACK
        # the QoS 1 PUBLISHes of this connection that await their PUBACK, at most the broker's Receive Maximum: a
        # broker that enforces it drops a client that sends more
        self._in_flight: Set[bytes] = set()
        self._quota = NO_QUOTA
        self._heard = 0.0   # when the last whole packet came, once connected: a trickle of bytes is silence
        self._lost: Optional[asyncio.Event] = None
        self._task: Optional[asyncio.Task] = None
        self._stopping = False
        self._first = True
        self.dropped = 0    # messages dropped unread (more than MAX_PROPERTIES properties)
        self.too_big = 0    # packets not sent: larger than the broker takes (a caller's long reply topic, say)
        self._said_big = [0, 0, 0]   # (logtext.admit)

    # the connection --------------------------------------------------------------------------
    def start(self) -> None:
        self._lost = asyncio.Event()
        self._task = asyncio.ensure_future(self._run())

    def is_connected(self) -> bool:
        return self._connected

    def write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() if self._transport is not None else 0

    def _ssl(self) -> Optional[ssl.SSLContext]:
        """The TLS context (None without TLS); ValueError for a file it cannot take, which no reconnect mends."""
        broker = self.broker
        if not (broker.tls or broker.cafile):
            return None
        what = 'TLS to the broker at %s: the CA file %r' % (broker.url, broker.cafile)
        try:
            context = ssl.create_default_context(cafile=broker.cafile)
            if broker.certfile:
                what = 'TLS to the broker at %s: the client certificate %r%s' % (
                    broker.url, broker.certfile, ' with the key %r' % broker.keyfile if broker.keyfile else '')
                context.load_cert_chain(broker.certfile, broker.keyfile)
        except OSError as err:     # ssl.SSLError too
            raise ValueError('%s: %s' % (what, err.strerror or err)) from None
        return context

    async def _run(self) -> None:
        """Connects, keeps the connection alive, and connects again once it is lost."""
        loop = asyncio.get_running_loop()
        wait = RECONNECT_S[0]
        while not self._stopping:
            self._lost.clear()
            try:
                await asyncio.wait_for(loop.create_connection(lambda: self, self.broker.host, self.broker.port,
                                                              ssl=self._context), CONNECT_S)
                wait = RECONNECT_S[0]
                await self._keep_alive(loop)
            except (OSError, asyncio.TimeoutError) as err:
                reason = 'connection refused (nothing listens there)' if isinstance(err, ConnectionRefusedError) \
                    else getattr(err, 'strerror', None) or err or 'no answer'
                why = 'cannot reach the broker at %s: %s' % (self.broker.url, reason)
                # said without -v once, and whenever the reason changes; its repeats every 1 to 2 s -v shows
                self._failed(why, logging.INFO if why == self._failing else logging.WARNING)
                self._failing = why
            if self._transport is not None:
                self._connected = False   # dropped by this side: connection_lost() does not blame the broker
                self._transport.abort()
            if not self._stopping:
                await asyncio.sleep(wait)
                wait = min(wait * 2, RECONNECT_S[1])

    async def _keep_alive(self, loop: asyncio.AbstractEventLoop) -> None:
        """Pings when quiet; a broker silent for 1.5 keepalives (or no CONNACK within CONNECT_S) is gone."""
        self._heard = loop.time()
        while not self._lost.is_set():
            try:
                # (each second until the CONNACK, which may set a keepalive shorter than the one asked for)
                await asyncio.wait_for(self._lost.wait(), self._keepalive / 2 if self._connected else 1.0)
            except asyncio.TimeoutError:
                silent = loop.time() - self._heard
                if silent > (1.5 * self._keepalive if self._connected else CONNECT_S):
                    log.warning('the broker at %s went silent', self.broker.url)
                    return
                if self._connected:
                    self._write(PINGREQ)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        small_reads(transport)
        self._transport = transport
        self._buffer.clear()
        self._subscribing.clear()
        self._in_flight.clear()
        self._keepalive, self._largest_out = self.keepalive, NO_SIZE_LIMIT   # until the CONNACK says otherwise
        flags = 0x02 if self._first else 0     # clean start once; then the broker keeps the session across reconnects
        body = _string('MQTT') + bytes((5,))
        payload = _string(self.client_id)
        if self.will is not None:
            topic, message, qos, retain = self.will
            flags |= 0x04 | qos << 3 | (0x20 if retain else 0)
            payload += NO_PROPERTIES + _string(topic) + _binary(message)
        if self.broker.username is not None:
            flags |= 0x80
            payload += _string(self.broker.username)
            if self.broker.password is not None:
                flags |= 0x40
                payload += _binary(self.broker.password.encode())
        properties = (bytes((SESSION_EXPIRY,)) + struct.pack('!I', self.session_s)
                      + bytes((MAXIMUM_PACKET_SIZE,)) + struct.pack('!I', self.max_packet))
        body += bytes((flags,)) + struct.pack('!H', self.keepalive) + _varint(len(properties)) + properties
        transport.write(_packet(CONNECT, body + payload))

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if self._connected and not self._stopping:   # a broker that drops a client says why only in its own log
            log.warning('the broker at %s closed the connection%s', self.broker.url, ': %s' % exc if exc else '')
        self._connected = False
        self._transport = None
        self._lost.set()

    def data_received(self, data: bytes) -> None:
        if self._stopping:
            return      # what comes while the broker closes the connection is for nobody
        buffer = self._buffer
        buffer += data
        pos = 0
        try:
            while True:
                bounds = _bounds(buffer, pos, self.max_packet)
                if bounds is None:
                    break
                start, end = bounds
                self._handle(buffer[pos], bytes(buffer[start:end]))
                pos = end
                if self._transport is None or self._transport.is_closing():
                    return   # (a refusing CONNACK: what came after it is not taken)
                if self._connected:
                    self._heard = asyncio.get_running_loop().time()
        except (ValueError, IndexError, UnicodeDecodeError, struct.error) as err:   # a broker that breaks MQTT
            log.warning('bad packet from the broker at %s: %s', self.broker.url, err)
            self._transport.abort()
            return
        del buffer[:pos]

    def _handle(self, first: int, body: bytes) -> None:
        kind = first & 0xF0
        if kind == PUBLISH:
            qos = (first >> 1) & 3
            if qos > 1:
                raise ValueError('a PUBLISH at QoS %d: none is subscribed above 1' % qos)
            size = struct.unpack_from('!H', body)[0]
            topic = body[2:2 + size].decode()
            pos = 2 + size
            if qos:
                packet_id = body[pos:pos + 2]
                pos += 2
            msg = Message(topic, b'', qos, bool(first & 1))
            try:
                msg.payload = body[_read_properties(body, pos, msg):]
            except TooManyProperties:
                msg = None
            if qos:
                self._write(_packet(PUBACK, packet_id))
            if msg is not None:
                self.on_message(msg)
                return
            self.dropped += 1
            if self.dropped % 1000 == 1:     # a flood is logged, not each message of it
                log.warning('dropped a message on %.200r with more than %d properties (%d so far)', topic,
                            MAX_PROPERTIES, self.dropped)
        elif kind == CONNACK:
            if self._connected:
                raise ValueError('a second CONNACK')
            if body[1] >= 0x80:
                self._failed('the broker at %s refused the connection: reason code %d' % (self.broker.url, body[1]),
                             logging.WARNING)
                self._transport.close()
                return
            told: Dict[int, int] = {}
            _read_properties(body, 2, numbers=told)
            self._keepalive = told.get(SERVER_KEEP_ALIVE) or self.keepalive   # a broker's own keepalive is the one
            self._largest_out = told.get(MAXIMUM_PACKET_SIZE, NO_SIZE_LIMIT)
            self._quota = told.get(RECEIVE_MAXIMUM, NO_QUOTA)
            self._connected = True
            self._first = False
            self._failing = None
            self.on_connect()
        elif kind == PUBACK:
            self._in_flight.discard(bytes(body[:2]))
        elif kind == SUBACK:
            packet_id = struct.unpack_from('!H', body)[0]
            if packet_id not in self._subscribing:
                raise ValueError('a SUBACK for packet %d, which subscribed nothing' % packet_id)
            self._subscribing.discard(packet_id)
            refused = [code for code in body[_read_properties(body, 2):] if code >= 0x80]
            if refused:
                self._failed('the broker at %s refused a subscription: reason code %d' % (self.broker.url, refused[0]),
                             logging.ERROR)
            else:
                self.on_suback(packet_id)

    def _failed(self, why: str, level: int) -> None:
        """Hands why to on_error, and logs it at level, or for -v only when on_error takes it (it is said once)."""
        log.log(logging.INFO if self.on_error(why) else level, '%s', why)

    # what goes out ------------------------------------------------------------------------------
    def _write(self, data: bytes) -> bool:
        transport = self._transport
        if transport is None or transport.is_closing():
            return False
        if len(data) > self._largest_out:   # the broker would drop the link for it
            self.too_big += 1
            log_within(self._said_big, logging.WARNING, 'packets too large', 'a packet of %d bytes not sent: the '
                       'broker at %s takes %d at most', len(data), self.broker.url, self._largest_out)
            return False
        if transport.get_write_buffer_size() > MAX_UNSENT:
            log.warning('the broker at %s has not taken %d bytes: dropping the link', self.broker.url, MAX_UNSENT)
            self._connected = False
            transport.abort()
            return False
        transport.write(data)
        return True

    def _next_id(self) -> bytes:
        self._packet_id = self._packet_id % 65535 + 1
        return struct.pack('!H', self._packet_id)

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False,
                properties: bytes = NO_PROPERTIES) -> bool:
        """Sends (no resend: what the broker does not take is for the caller's timeout); False when not connected.
        At QoS 1 while the broker's Receive Maximum of them await their acknowledgement, it goes at QoS 0."""
        if not self._connected:
            return False
        if qos and len(self._in_flight) >= self._quota:
            qos = 0
        packet_id = self._next_id() if qos else b''
        sent = self._write(_packet(PUBLISH | qos << 1 | (1 if retain else 0),
                                   _string(topic) + packet_id + properties + payload))
        if sent and qos:
            self._in_flight.add(packet_id)
        return sent

    def subscribe(self, filters: Iterable[Tuple[str, int]]) -> int:
        """The SUBSCRIBE's packet id, which on_suback() gets once the broker has taken it. filters: (topic
        filter, its options: the QoS, or'ed with mqtt_wire.NO_RETAINED for one that takes no retained message)."""
        packet_id = self._next_id()
        number = struct.unpack('!H', packet_id)[0]
        if self._write(_packet(SUBSCRIBE, packet_id + b'\x00' + b''.join(_string(f) + bytes((qos,))
                                                                         for f, qos in filters))):
            self._subscribing.add(number)
        return number

    def unsubscribe(self, filters: List[str]) -> None:
        self._write(_packet(UNSUBSCRIBE, self._next_id() + b'\x00' + b''.join(_string(f) for f in filters)))

    async def stop(self, flush_s: float) -> None:
        """Disconnects, ending the session, once what is queued has gone out, or after flush_s (a broker that reads
        nothing)."""
        self._stopping = True
        transport = self._transport
        if transport is not None:
            if self._write(DISCONNECT) and transport.can_write_eof():
                transport.write_eof()
            # the broker closes the connection once it has read the DISCONNECT; closed first, the link would send
            # a reset for what the broker sent meanwhile (acknowledgements), and the broker could lose the DISCONNECT
            try:
                await asyncio.wait_for(self._lost.wait(), flush_s)
            except asyncio.TimeoutError:
                pass
            transport.abort()
        self._task.cancel()     # it may wait for a broker that does not answer, or before the next attempt
        await asyncio.gather(self._task, return_exceptions=True)
