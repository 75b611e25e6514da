"""What travels over the broker between the gateway and its callers: topics, answers, statuses, the broker URL.

Written once for both ends (sp_tool.gateway and sp_tool.mqtt_client), so the
two can only disagree by a version change of this module.

    <prefix>/<board>/<service>/<data_id>/req   a request; payload: the JSON data
    <prefix>/<board>/<service>/<data_id>       what a board sent on its own
    <prefix>/<board>/status                    retained: online / offline (user properties: gateway, reason)
    <prefix>/gateway/<id>/status               retained: online / offline (the last will)
    <prefix>/reply/<client id>                 where BoardClient asks for its answers
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple, Union
from urllib.parse import unquote, urlsplit

import sp_cpython as sp

from .call import SERVICES
from .call import status_name as board_status_name

SCHEMES = {'mqtt': (1883, False), 'mqtts': (8883, True)}
DEFAULT_PREFIX = 'sp'
RESERVED_NAMES = ('gateway', 'reply')
ONLINE, OFFLINE = 'online', 'offline'
# BoardClient's calls at QoS 0 unless told: an acknowledged publish waits for the broker's acknowledgement
# (which a broker without set_tcp_nodelay may hold back), and a lost one is what the caller's timeout is for.
# The gateway takes requests at QoS 1 and answers at theirs. Statuses at QoS 1.
QOS_CALL = 0
QOS_STATUS = 1
NO_RETAINED = 0x20   # a subscription option (Retain Handling 2): no retained message comes when it is made

# The gateway's own statuses, beside the protocol's (0..6). A board may use any number for its own (add_status):
# one of these it sends is relayed as STATUS_BOARD_RESERVED (relayed()), so that no board speaks for the gateway.
STATUS_BOARD_OFFLINE = 100
STATUS_TIMEOUT = 101
STATUS_BAD_REQUEST = 102
STATUS_BOARD_RESERVED = 103
GATEWAY_STATUS_NAMES = {STATUS_BOARD_OFFLINE: 'board offline', STATUS_TIMEOUT: 'timeout',
                        STATUS_BAD_REQUEST: 'bad request', STATUS_BOARD_RESERVED: 'board status reserved'}
FIRST_APPLICATION_SID = sp.SID_READ_REQUEST
MAX_ID_TEXT = 128       # an envelope's id as JSON: a scalar or a short string
MAX_TOPIC_BYTES = 65535
MAX_TOPIC_LEVELS = 200  # mosquitto drops a client that publishes to a topic of more levels
# What MQTT's UTF-8 rules forbid in a topic and mosquitto enforces by dropping the sender: U+0000, control
# characters, surrogates and non-characters (U+FDD0..U+FDEF and the last two code points of every plane).
_UNFIT = re.compile('[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef%s]' % ''.join(
    chr(plane | 0xfffe) + chr(plane | 0xffff) for plane in range(0, 0x110000, 0x10000)))


def status_name(status: int) -> str:
    return GATEWAY_STATUS_NAMES.get(status) or board_status_name(status)


def answer(status: int, data: Any = None) -> Dict[str, Any]:
    """The payload of a response: {"status", "status_name", "data"}."""
    return {'status': status, 'status_name': status_name(status), 'data': data}


def relayed(status: int, data: Any) -> Dict[str, Any]:
    """The answer that relays what a board sent: its status and data, but a status of the gateway's own comes as
    STATUS_BOARD_RESERVED, data {"status": the board's, "data": its data}."""
    if status in GATEWAY_STATUS_NAMES:
        return answer(STATUS_BOARD_RESERVED, {'status': status, 'data': data})
    return answer(status, data)


def addressed(body: Dict[str, Any], board: str, service_id: Optional[int], data_id: Optional[int]) -> Dict[str, Any]:
    """body naming what it answers (the response's Service-ID): a caller drops an answer to another call."""
    return dict(body, board=board, service_id=service_id, data_id=data_id)


def request_topic(prefix: str, board: str, service: str, data_id: int) -> str:
    return '%s/%s/%s/%d/req' % (prefix, board, service, data_id)


def status_topic(prefix: str, board: str) -> str:
    return '%s/%s/status' % (prefix, board)


def check_name(name: str) -> Optional[str]:
    """Why name cannot be a board's name on the broker (one topic level it takes, not reserved), or None: the broker
    drops a client that subscribes to a topic it refuses, on every reconnect."""
    if not name or any(c in name for c in '/+#') or name.startswith('$'):
        return 'a board name is one MQTT topic level: no /, +, # or leading $'
    fault = topic_fault(name)
    if fault:
        return 'a board name is part of MQTT topics, which the broker refuses with %s' % fault
    if name in RESERVED_NAMES:
        return '%r is reserved for the gateway\'s own topics' % name
    return None


def check_prefix(prefix: str) -> Optional[str]:
    """Why prefix cannot begin the topics of the gateway and its callers (levels the broker takes), or None."""
    fault = 'a leading $' if prefix.startswith('$') else topic_fault(prefix)
    if fault:
        return 'the prefix begins MQTT topics, which the broker refuses with %s' % fault
    return None


_NAMES = {sid: name for name, sid in SERVICES.items()}
# a number's one spelling in a topic: ASCII digits, no leading 0, no + and no -0 (a broker's ACL that denies a topic
# then denies the call: another spelling of the same call would pass it)
_INTEGER = re.compile(r'(0|-?[1-9][0-9]*)\Z')


def parse_service(text: str) -> int:
    """read / write / execute, or an even request Service-ID from 10 on that has no name, in its one spelling;
    ValueError otherwise."""
    if text in SERVICES:
        return SERVICES[text]
    if not _INTEGER.match(text) or int(text) % 2 or not FIRST_APPLICATION_SID <= int(text) < 65536:
        raise ValueError('unknown service %.40r: read, write, execute or an even number from %d'
                         % (text, FIRST_APPLICATION_SID))
    if int(text) in _NAMES:
        raise ValueError('service %s is spelled %s in a topic' % (text, _NAMES[int(text)]))
    return int(text)


def service_level(sid: int) -> str:
    """A request Service-ID as its topic level: its name, where it has one."""
    return _NAMES.get(sid, str(sid))


def caller_service(service: Union[str, int]) -> int:
    """A caller's service as the gateway takes it: a name, or a number (int or text), a named one's too."""
    if isinstance(service, str) and _INTEGER.match(service):
        service = int(service)
    return parse_service(service_level(service) if isinstance(service, int) else service)


def parse_data_id(text: str) -> int:
    if not _INTEGER.match(text):
        raise ValueError('the data id %.40r is not an integer in its one spelling (ASCII digits, no leading 0)' % text)
    return int(text)


def parse_envelope(payload: Any) -> Tuple[str, Any, Any]:
    """(reply_to, id, data) of an MQTT 3.1.1 request: {"reply_to": TOPIC, "id": ID, "data": ANY}."""
    if not isinstance(payload, dict) or not isinstance(payload.get('reply_to'), str) or not payload['reply_to']:
        raise ValueError('no response topic: MQTT 3.1.1 requests are {"reply_to": TOPIC, "id": ..., "data": ...}')
    return payload['reply_to'], envelope_id(payload.get('id')), payload.get('data')


def envelope_id(value: Any) -> Any:
    """An envelope's id, which its answer echoes: a scalar or a short string. Echoing a nested one could cost
    more stack than parsing it did."""
    if value is None or isinstance(value, (bool, int, float, str)):
        try:
            if len(json.dumps(value, allow_nan=False)) <= MAX_ID_TEXT:
                return value
        except ValueError:
            pass
    raise ValueError('an envelope\'s id is null, true, false, a number or a string, at most %d characters as JSON'
                     % MAX_ID_TEXT)


def topic_fault(topic: str) -> Optional[str]:
    """Why a broker would refuse topic in a publish (mosquitto drops the client that sends it), or None."""
    if not topic:
        return 'an empty topic'
    unfit = _UNFIT.search(topic)
    if unfit:
        return 'the character U+%04X' % ord(unfit.group())
    if '+' in topic or '#' in topic:
        return 'a wildcard'
    if len(topic.encode()) > MAX_TOPIC_BYTES:
        return 'over %d bytes' % MAX_TOPIC_BYTES
    if topic.count('/') >= MAX_TOPIC_LEVELS:
        return 'over %d levels' % MAX_TOPIC_LEVELS
    return None


def reply_topic(topic: str, prefix: str) -> str:
    """A caller's response topic, if the gateway may answer there: one the broker takes (a topic it refuses
    would cost the gateway its connection), and under the gateway's prefix only its reply/ branch, so that no
    caller makes it speak for a board or publish its status."""
    fault = topic_fault(topic)
    if fault is None and topic.startswith(prefix + '/') and not topic.startswith(prefix + '/reply/'):
        fault = 'the gateway\'s own topics'
    if fault:
        raise ValueError('the gateway does not answer on the topic %.200r (%s)' % (topic, fault))
    return topic


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(',', ':')).encode()


@dataclass
class Broker:
    """Where the broker is and how to log in: from mqtt[s]://[USER[:PASSWORD]@]HOST[:PORT][/PATH]."""

    host: str
    port: int
    tls: bool = False
    username: Optional[str] = None
    password: Optional[str] = None
    cafile: Optional[str] = None
    certfile: Optional[str] = None
    keyfile: Optional[str] = None

    @property
    def url(self) -> str:
        return '%s://%s:%d' % ('mqtts' if self.tls else 'mqtt', self.host, self.port)


def shown(url: str) -> str:
    """url as a message shows it: without USER:PASSWORD@. All up to the URL's last @ goes, so that a password
    with a / left unquoted, which ends the URL's host part, is not shown either."""
    scheme, sep, rest = url.partition('://')
    return scheme + sep + rest.rpartition('@')[2]


def parse_broker(url: str) -> Tuple[Broker, str]:
    """(Broker, path without its leading /); ValueError for anything that is not an mqtt[s] URL (which it quotes
    without its credentials)."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise ValueError('a broker is mqtt://HOST[:PORT] or mqtts://HOST[:PORT], not %r' % shown(url))
    default_port, tls = SCHEMES[parts.scheme]
    try:
        port = parts.port or default_port
    except ValueError:
        raise ValueError('bad port in %r' % shown(url)) from None
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return Broker(parts.hostname, port, tls, user, password), parts.path.lstrip('/')


def is_broker_url(target: str) -> bool:
    return target.split('://', 1)[0] in SCHEMES and '://' in target
