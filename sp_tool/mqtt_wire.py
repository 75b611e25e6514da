"""What travels over the broker between the gateway and its callers: topics, answers, statuses, the broker URL.

Written once for both ends (sp_tool.gateway and sp_tool.mqtt_client), so the
two can only disagree by a version change of this module.

    <prefix>/<board>/<service>/<data_id>/req   a request; payload: the JSON data
    <prefix>/<board>/<service>/<data_id>       what a board sent on its own
    <prefix>/<board>/status                    retained: online / offline
    <prefix>/gateway/status                    retained: online / offline (the last will)
    <prefix>/reply/<client id>                 where BoardClient asks for its answers
"""
from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple
from urllib.parse import unquote, urlsplit

import sp_cpython as sp

from .call import SERVICES

SCHEMES = {'mqtt': (1883, False), 'mqtts': (8883, True)}
DEFAULT_PREFIX = 'sp'
RESERVED_NAMES = ('gateway', 'reply')
ONLINE, OFFLINE = 'online', 'offline'
# Calls and answers at QoS 0: an acknowledged publish waits for the broker's acknowledgement (which a
# broker without set_tcp_nodelay may hold back), and a lost one is what the caller's timeout is for.
# Statuses at QoS 1.
QOS_CALL = 0
QOS_STATUS = 1

# The gateway's own statuses, beside the protocol's (0..6): a board never sends these.
STATUS_BOARD_OFFLINE = 100
STATUS_TIMEOUT = 101
STATUS_BAD_REQUEST = 102
GATEWAY_STATUS_NAMES = {STATUS_BOARD_OFFLINE: 'board offline', STATUS_TIMEOUT: 'timeout',
                        STATUS_BAD_REQUEST: 'bad request'}
FIRST_APPLICATION_SID = sp.SID_READ_REQUEST


def status_name(status: int) -> str:
    return GATEWAY_STATUS_NAMES.get(status) or sp.STATUS__NAMES.get(status, str(status))


def answer(status: int, data: Any = None) -> Dict[str, Any]:
    """The payload of a response: {"status", "status_name", "data"}."""
    return {'status': status, 'status_name': status_name(status), 'data': data}


def request_topic(prefix: str, board: str, service: str, data_id: int) -> str:
    return '%s/%s/%s/%d/req' % (prefix, board, service, data_id)


def status_topic(prefix: str, board: str) -> str:
    return '%s/%s/status' % (prefix, board)


def check_name(name: str) -> Optional[str]:
    """Why name cannot be a board's name on the broker (one topic level, not reserved), or None."""
    if not name or any(c in name for c in '/+#\0') or name.startswith('$'):
        return 'a board name is one MQTT topic level: no /, +, # or leading $'
    if name in RESERVED_NAMES:
        return '%r is reserved for the gateway\'s own topics' % name
    return None


def parse_service(text: str) -> int:
    """read / write / execute, or an even request Service-ID from 10 on; ValueError otherwise."""
    if text in SERVICES:
        return SERVICES[text]
    if not text.isdigit() or int(text) % 2 or not FIRST_APPLICATION_SID <= int(text) < 65536:
        raise ValueError('unknown service %r: read, write, execute or an even number from %d'
                         % (text, FIRST_APPLICATION_SID))
    return int(text)


def parse_data_id(text: str) -> int:
    if not text.lstrip('-').isdigit():
        raise ValueError('the data id %r is not an integer' % text)
    return int(text)


def parse_envelope(payload: Any) -> Tuple[str, Any, Any]:
    """(reply_to, id, data) of an MQTT 3.1.1 request: {"reply_to": TOPIC, "id": ANY, "data": ANY}."""
    if not isinstance(payload, dict) or not isinstance(payload.get('reply_to'), str) or not payload['reply_to']:
        raise ValueError('no response topic: MQTT 3.1.1 requests are {"reply_to": TOPIC, "id": ..., "data": ...}')
    return payload['reply_to'], payload.get('id'), payload.get('data')


def reply_topic(topic: str, prefix: str) -> str:
    """A caller's response topic, if the gateway may answer there: no wildcard, and under the gateway's
    prefix only its reply/ branch, so that no caller makes it speak for a board or publish its status."""
    mine = topic.startswith(prefix + '/') and not topic.startswith(prefix + '/reply/')
    if not topic or mine or '+' in topic or '#' in topic or '\0' in topic:
        raise ValueError('the gateway does not answer on the topic %r' % (topic,))
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

    def apply(self, client) -> None:
        """Sets login and TLS on a paho client before it connects."""
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        if self.tls or self.cafile:
            client.tls_set(ca_certs=self.cafile, certfile=self.certfile, keyfile=self.keyfile,
                           cert_reqs=ssl.CERT_REQUIRED)


def parse_broker(url: str) -> Tuple[Broker, str]:
    """(Broker, path without its leading /); ValueError for anything that is not an mqtt[s] URL."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise ValueError('a broker is mqtt://HOST[:PORT] or mqtts://HOST[:PORT], not %r' % url)
    default_port, tls = SCHEMES[parts.scheme]
    try:
        port = parts.port or default_port
    except ValueError:
        raise ValueError('bad port in %r' % url) from None
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return Broker(parts.hostname, port, tls, user, password), parts.path.lstrip('/')


def is_broker_url(target: str) -> bool:
    return target.split('://', 1)[0] in SCHEMES and '://' in target
