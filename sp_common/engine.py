"""The protocol engine, sans-IO: bytes in, bytes out through write(), callbacks run.

Everything both sides must agree on lives here: dispatch, callback priority,
the error replies, the channel-name exchange and the seed/key state machine.
It never sleeps, reads a clock or touches a socket; the runtimes feed it the
bytes they read and give it a write() for the bytes it produces.
"""
from binascii import hexlify

from . import const as c
from .auth import equal, hmac_sha256_hex, new_seed
from .codec import ChecksumError, FormatError, pure_json
from .entropy import random_bytes as _random_bytes
from .message import make_message
from .stp import Deframer, frame

COUNTERS = ('rx_messages', 'tx_messages', 'crc_errors', 'format_errors', 'framing_errors',
            'oversized', 'unknown', 'auth_rejected', 'callback_errors', 'buffer_dropped')

# The built-in data of the auth and channel-name services: their names, and the
# messages that pass before authentification (the whitelist every engine starts with).
_BUILTIN_DATA = {
    (c.SID_AUTH_REQUEST, c.DID_AUTH_SEED): 'seed', (c.SID_AUTH_RESPONSE, c.DID_AUTH_SEED): 'seed',
    (c.SID_AUTH_REQUEST, c.DID_AUTH_KEY): 'key', (c.SID_AUTH_RESPONSE, c.DID_AUTH_KEY): 'key',
    (c.SID_CHANNEL_NAME_REQUEST, c.DID_CHANNEL_NAME): 'name', (c.SID_CHANNEL_NAME_RESPONSE, c.DID_CHANNEL_NAME): 'name',
}
_HANDLERS = {   # the engine's methods that serve them
    (c.SID_AUTH_REQUEST, c.DID_AUTH_SEED): '_on_seed_request', (c.SID_AUTH_RESPONSE, c.DID_AUTH_SEED): '_on_seed',
    (c.SID_AUTH_REQUEST, c.DID_AUTH_KEY): '_on_key', (c.SID_AUTH_RESPONSE, c.DID_AUTH_KEY): '_on_key_result',
    (c.SID_CHANNEL_NAME_REQUEST, c.DID_CHANNEL_NAME): '_on_name_request',
    (c.SID_CHANNEL_NAME_RESPONSE, c.DID_CHANNEL_NAME): '_on_name_response',
}
_NO_KWARGS = {}


class Engine:
    """One end of a connection.

    write: callable taking one frame (bytes). log, hexlog: objects with
    isEnabledFor(level) and log(level, text) (a logging.Logger fits), or None.
    """

    def __init__(self, write, is_client, codec=pure_json, secret=None, auto_auth=False,
                 channel_name=None, max_frame=65536, max_buffered=64, log=None, hexlog=None,
                 random_bytes=_random_bytes):
        self.write = write
        self.is_client = is_client
        self.codec = codec
        self.secret = secret
        self.auto_auth = auto_auth
        self.channel_name = channel_name
        self.log = log
        self.hexlog = hexlog
        self._random_bytes = random_bytes
        self.deframer = Deframer(max_frame)
        self.max_buffered = max_buffered
        self.auth_state = c.AUTH_STATE_UNTRUSTED_CONNECTION
        self._seed = None
        self._side = '-client' if is_client else '-server'
        self._requests = dict(c.SID_RESPONSE_DICT)   # request sid -> response sid
        self._responses = {}                         # response sid -> request sid
        for req, resp in c.SID_RESPONSE_DICT.items():
            self._responses[resp] = req
        self._sid_names = {}      # names beyond the built-in ones of const, here and below
        self._did_names = {}      # (sid, did) -> name
        self._status_names = {}
        self._whitelist = set()
        self._callbacks = {}      # (sid or None, did or None) -> (callback, args, kwargs)
        self._buffer = []
        self.counters = {}
        for name in COUNTERS:
            self.counters[name] = 0

    # registries ------------------------------------------------------------
    def add_service(self, req_sid, resp_sid, req_name=None, resp_name=None):
        if req_sid in self._requests or req_sid in self._responses:
            raise c.RequestSidExistsError('service id %r is already in use' % (req_sid,))
        if resp_sid in self._requests or resp_sid in self._responses or resp_sid == req_sid:
            raise c.ResponseSidExistsError('service id %r is already in use' % (resp_sid,))
        self._requests[req_sid] = resp_sid
        self._responses[resp_sid] = req_sid
        if req_name is not None:
            self._sid_names[req_sid] = req_name
        if resp_name is not None:
            self._sid_names[resp_sid] = resp_name

    def add_data(self, service_id, data_id, name):
        for sid in service_id if isinstance(service_id, (list, tuple)) else (service_id,):
            self._did_names[(sid, data_id)] = name

    def add_status(self, status, name):
        self._status_names[status] = name

    def add_msg_to_auth_whitelist_(self, service_id, data_id):
        self._whitelist.add((service_id, data_id))

    def register_callback(self, service_id, data_id, callback, *args, **kwargs):
        """A callback for (sid, did) replaces a built-in service's own handler."""
        key = (service_id, data_id)
        if key in self._callbacks or key in _BUILTIN_DATA:
            self._note(c.WARNING, 'overwriting callback for %s' % self._describe(service_id, data_id))
        self._callbacks[key] = (callback, args or (), kwargs or _NO_KWARGS)

    # connection ------------------------------------------------------------
    def connection_made(self):
        """A new link: forget its predecessor's state; a client introduces itself."""
        self.deframer.reset()
        self.auth_state = c.AUTH_STATE_UNTRUSTED_CONNECTION
        self._seed = None
        if self.is_client:
            self.send(c.SID_CHANNEL_NAME_REQUEST, c.DID_CHANNEL_NAME, self.channel_name)
            if self.auto_auth and self.secret is not None:
                self.start_auth()

    def connection_lost(self):
        self.deframer.reset()
        self.auth_state = c.AUTH_STATE_UNTRUSTED_CONNECTION
        self._seed = None

    def start_auth(self):
        """Client side: asks for a seed; the answer drives the rest of the handshake."""
        self.auth_state = c.AUTH_STATE_SEED_REQUESTED
        self.send(c.SID_AUTH_REQUEST, c.DID_AUTH_SEED, None)

    def is_trusted(self):
        return self.auth_state == c.AUTH_STATE_TRUSTED_CONNECTION

    def auth_settled(self):
        """The handshake has ended, either way: what authentificate() waits for."""
        return self.auth_state in (c.AUTH_STATE_TRUSTED_CONNECTION, c.AUTH_STATE_UNTRUSTED_CONNECTION)

    # bytes in / out ----------------------------------------------------------
    def send(self, service_id, data_id, data, status=c.STATUS_OKAY):
        pieces = self.codec.pieces(service_id, data_id, status, data)
        self._log_message('TX ->', service_id, data_id, status, data)
        self._log_bytes('TX ->', pieces)
        self.counters['tx_messages'] += 1
        self.write(frame(*pieces))

    def feed(self, data, n=None):
        """Processes data[:n]; callbacks run and replies are written before it returns."""
        deframer = self.deframer
        for body in deframer.feed(data, n):
            self._log_bytes('RX <-', (body,))
            try:
                msg = self.codec.decode(body)
            except ChecksumError as err:
                self._on_bad_checksum(err)
                continue
            except FormatError as err:
                self.counters['format_errors'] += 1
                self._note(c.WARNING, 'dropped a message: %s' % err)
                continue
            self._dispatch(msg[0], msg[1], msg[2], msg[3])
        self.counters['framing_errors'] = deframer.framing_errors
        self.counters['oversized'] = deframer.oversized

    def pop_received(self, service_id, data_id):
        """The oldest buffered message matching the ids (None matches any), or None."""
        for i, msg in enumerate(self._buffer):
            if (service_id is None or msg['service_id'] == service_id) and \
                    (data_id is None or msg['data_id'] == data_id):
                return self._buffer.pop(i)
        return None

    # dispatch --------------------------------------------------------------
    def _on_bad_checksum(self, err):
        self.counters['crc_errors'] += 1
        self._note(c.ERROR, 'dropped a message with a wrong checksum')
        if isinstance(err.sid, int) and err.sid in self._requests and isinstance(err.did, (int, str)):
            self.send(self._requests[err.sid], err.did, None, c.STATUS_CHECKSUM_ERROR)

    def _gated(self, sid, did):
        return self.secret is not None and self.auth_state != c.AUTH_STATE_TRUSTED_CONNECTION \
            and sid not in self._responses and (sid, did) not in _BUILTIN_DATA and (sid, did) not in self._whitelist

    def _dispatch(self, sid, did, status, data):
        self.counters['rx_messages'] += 1
        self._log_message('RX <-', sid, did, status, data)
        resp = self._requests.get(sid)
        if resp is None and sid not in self._responses and sid % 2 == 0 and (sid + 1) not in self._requests:
            resp = sid + 1   # unknown request: answer on the conventional response sid
        if self._gated(sid, did):
            self.counters['auth_rejected'] += 1
            self._note(c.WARNING, 'authentification required for %s' % self._describe(sid, did))
            if resp is not None:
                self.send(resp, did, None, c.STATUS_AUTH_REQUIRED)
            return
        entry = self._find_callback(sid, did)
        msg = make_message(sid, did, status, data)
        if resp is None:
            if entry is not None:
                self._call(entry, msg)
            elif sid in self._responses:
                self._store(msg)
            else:
                self.counters['unknown'] += 1
                self._note(c.WARNING, 'dropped a message of unknown %s' % self._describe(sid, did))
            return
        if entry is None:
            if sid in self._requests and ((sid, did) in self._did_names or (sid, did) in _BUILTIN_DATA):
                self._store(msg)
            else:
                self.counters['unknown'] += 1
                self._note(c.ERROR, 'no service or data for %s' % self._describe(sid, did))
                self.send(resp, did, None, c.STATUS_SERVICE_OR_DATA_UNKNOWN)
            return
        try:
            status, data = self._run(entry, msg)
            self.send(resp, did, data, status)
        except Exception as err:
            self._callback_failed(msg, err)
            self.send(resp, did, None, c.STATUS_CALLBACK_ERROR)

    def _find_callback(self, sid, did):
        callbacks = self._callbacks
        entry = callbacks.get((sid, did))
        if entry is not None:
            return entry
        handler = _HANDLERS.get((sid, did))
        if handler is not None:
            return (getattr(self, handler), (), _NO_KWARGS)
        for key in ((sid, None), (None, did), (None, None)):
            entry = callbacks.get(key)
            if entry is not None:
                return entry
        return None

    def _run(self, entry, msg):
        return entry[0](msg, *entry[1], **entry[2])

    def _call(self, entry, msg):
        """Runs a callback whose result is not sent anywhere."""
        try:
            self._run(entry, msg)
        except Exception as err:
            self._callback_failed(msg, err)

    def _callback_failed(self, msg, err):
        self.counters['callback_errors'] += 1
        self._note(c.ERROR, 'callback for %s failed: %s: %s' % (
            self._describe(msg['service_id'], msg['data_id']), type(err).__name__, err))

    def _store(self, msg):
        if len(self._buffer) >= self.max_buffered:
            self._buffer.pop(0)
            self.counters['buffer_dropped'] += 1
            self._note(c.WARNING, 'receive buffer full, dropped the oldest message')
        self._buffer.append(msg)

    # internal services -------------------------------------------------------
    def _on_seed_request(self, msg):
        if self.secret is None:
            return c.STATUS_OPERATION_NOT_PERMITTED, None
        self._seed = new_seed(self._random_bytes)
        self.auth_state = c.AUTH_STATE_SEED_TRANSFERRED
        return c.STATUS_OKAY, self._seed

    def _on_seed(self, msg):
        seed = msg['data']
        if self.secret is None or msg['status'] != c.STATUS_OKAY or not isinstance(seed, str):
            self.auth_state = c.AUTH_STATE_UNTRUSTED_CONNECTION
            return
        self.auth_state = c.AUTH_STATE_SEED_TRANSFERRED
        self.send(c.SID_AUTH_REQUEST, c.DID_AUTH_KEY, hmac_sha256_hex(self.secret, seed))
        self.auth_state = c.AUTH_STATE_KEY_TRANSFERRED

    def _on_key(self, msg):
        seed = self._seed
        self._seed = None
        key = msg['data']
        ok = self.secret is not None and seed is not None and isinstance(key, str) \
            and equal(key, hmac_sha256_hex(self.secret, seed))
        self.auth_state = c.AUTH_STATE_TRUSTED_CONNECTION if ok else c.AUTH_STATE_UNTRUSTED_CONNECTION
        if not ok:
            self._note(c.WARNING, 'authentification failed: wrong key')
        return c.STATUS_OKAY, ok

    def _on_key_result(self, msg):
        ok = msg['data'] is True and msg['status'] == c.STATUS_OKAY
        self.auth_state = c.AUTH_STATE_TRUSTED_CONNECTION if ok else c.AUTH_STATE_UNTRUSTED_CONNECTION
        if not ok:
            self._note(c.WARNING, 'authentification failed: key rejected')

    def _on_name_request(self, msg):
        name = msg['data']
        if name is None:
            return c.STATUS_OKAY, self.channel_name
        if self.channel_name is not None and self.channel_name != name:
            self._note(c.WARNING, 'channel name %r replaced by the client\'s %r' % (self.channel_name, name))
        self.channel_name = name
        return c.STATUS_OKAY, None

    def _on_name_response(self, msg):
        if msg['data'] is not None and self.channel_name is None:
            self.channel_name = msg['data']

    # logging -----------------------------------------------------------------
    def _describe(self, sid, did):
        key = (sid, did)
        return 'service: %s, data_id: %s' % (self._sid_names.get(sid, c.SID__NAMES.get(sid, sid)),
                                             self._did_names.get(key, _BUILTIN_DATA.get(key, did)))

    def _log_message(self, direction, sid, did, status, data):
        log = self.log
        level = c.STATUS_LOG_LVL.get(status, c.WARNING)
        if log is not None and log.isEnabledFor(level):
            log.log(level, 'prot%s: %s %s, status: %s, data: "%s"' % (
                self._side, direction, self._describe(sid, did), self._status_names.get(status, c.STATUS__NAMES.get(status, status)), data))

    def _log_bytes(self, direction, pieces):
        log = self.hexlog
        if log is not None and log.isEnabledFor(c.DEBUG):
            body = b''.join(pieces)
            log.log(c.DEBUG, 'comm%s: %s "(%d): %s"' % (
                self._side, direction, len(body), hexlify(body, ' ').decode()))

    def _note(self, level, text):
        log = self.log
        if log is not None and log.isEnabledFor(level):
            log.log(level, 'prot%s: %s' % (self._side, text))

