"""The protocol engine, sans-IO: bytes in through feed(), bytes out through data_to_send().

Everything both sides must agree on lives here: dispatch, callback priority,
the error replies, the channel-name exchange, what is buffered and the
seed/key state machine (a table: who may say what, when). It never writes,
sleeps or reads a clock of its own; the runtimes feed it the bytes they read,
drain its outbox and may lend it a clock (milliseconds that only grow).
"""
from . import const as c
from .codec import ChecksumError, FormatError, pure_json
from .entropy import random_bytes as _random_bytes
from .message import make_message
from .stp import Deframer, frame

COUNTERS = ('rx_messages', 'tx_messages', 'crc_errors', 'format_errors', 'framing_errors',
            'oversized', 'unknown', 'auth_rejected', 'callback_errors', 'buffer_dropped',
            'out_of_turn', 'unsolicited', 'stale', 'wrong_keys', 'bad_names')

_UNTRUSTED = c.AUTH_STATE_UNTRUSTED_CONNECTION
_SEED_REQUESTED = c.AUTH_STATE_SEED_REQUESTED
_SEED_TRANSFERRED = c.AUTH_STATE_SEED_TRANSFERRED
_KEY_TRANSFERRED = c.AUTH_STATE_KEY_TRANSFERRED
_TRUSTED = c.AUTH_STATE_TRUSTED_CONNECTION

_SEED_REQUEST = (c.SID_AUTH_REQUEST, c.DID_AUTH_SEED)
_SEED = (c.SID_AUTH_RESPONSE, c.DID_AUTH_SEED)
_KEY = (c.SID_AUTH_REQUEST, c.DID_AUTH_KEY)
_KEY_RESULT = (c.SID_AUTH_RESPONSE, c.DID_AUTH_KEY)
_NAME_REQUEST = (c.SID_CHANNEL_NAME_REQUEST, c.DID_CHANNEL_NAME)
_NAME = (c.SID_CHANNEL_NAME_RESPONSE, c.DID_CHANNEL_NAME)

# The handshake as a table (DESIGN 5b): message -> (acted on by a client?, the
# states it is acted on in or None for any, the step in sp_common.handshake).
# Anything else is out of turn: dropped and counted, never answered, never signed.
_HANDSHAKE = {
    _SEED_REQUEST: (False, None, 'seed_request'),
    _SEED: (True, (_SEED_REQUESTED,), 'seed'),
    _KEY: (False, (_SEED_TRANSFERRED,), 'key'),
    _KEY_RESULT: (True, (_KEY_TRANSFERRED,), 'key_result'),
}
# The built-in data: names for the logs; these pass before authentification.
BUILTIN_DATA = {_SEED_REQUEST: 'seed', _SEED: 'seed', _KEY: 'key', _KEY_RESULT: 'key',
                 _NAME_REQUEST: 'name', _NAME: 'name'}
_NO_KWARGS = {}

MAX_NAME = 32


def valid_name(name):
    """A channel name is a short printable ASCII string (it ends up in log lines)."""
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
        return False
    for ch in name:
        if not ' ' <= ch <= '~':
            return False
    return True


class Engine:
    """One end of a connection.

    log, hexlog: objects with isEnabledFor(level) and log(level, text) (a
    logging.Logger fits), or None. clock: callable giving milliseconds that
    only grow; without one, a connection that sent too many wrong keys gets
    no more seeds until it ends.
    """

    def __init__(self, is_client, codec=pure_json, secret=None, auto_auth=False,
                 channel_name=None, max_frame=65536, max_buffered=64, log=None, hexlog=None,
                 random_bytes=_random_bytes, max_buffered_bytes=None, clock=None):
        self.is_client = is_client
        self.codec = codec
        self.secret = secret
        self.auto_auth = auto_auth
        self.channel_name = channel_name
        self.log = log
        self.hexlog = hexlog
        self.clock = clock
        self.random_bytes = random_bytes
        self.deframer = Deframer(max_frame)
        self.max_buffered = max_buffered
        self.max_buffered_bytes = 2 * max_frame if max_buffered_bytes is None else max_buffered_bytes
        self._out = []
        self.side = '-client' if is_client else '-server'
        self._requests = dict(c.SID_RESPONSE_DICT)   # request sid -> response sid
        self._responses = {}                         # response sid -> request sid
        for req, resp in c.SID_RESPONSE_DICT.items():
            self._responses[resp] = req
        self._sid_names = {}      # names beyond the built-in ones of const, here and below
        self._did_names = {}      # (sid, did) -> name
        self._status_names = {}
        self._whitelist = set()
        self._callbacks = {}      # (sid or None, did or None) -> (callback, args, kwargs)
        self._buffer = []         # [message, size in bytes]
        self._buffered_bytes = 0
        self._asked = set()       # (response sid, did) of requests still unanswered
        self.wrong_keys = 0        # on this connection (see sp_common.handshake)
        self.last_wrong_key = 0
        self._heard = False
        self.counters = {}
        for name in COUNTERS:
            self.counters[name] = 0
        self._new_session()

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
        """The handshake and channel-name messages stay the engine's own."""
        key = (service_id, data_id)
        if key in BUILTIN_DATA:
            raise ValueError('%r/%r is served by the engine itself' % key)
        if key in self._callbacks:
            self.note(c.WARNING, 'overwriting callback for %s', service_id, data_id)
        self._callbacks[key] = (callback, args or (), kwargs or _NO_KWARGS)

    # connection ------------------------------------------------------------
    def _new_session(self):
        """Trust, seed and buffer start over: nothing passes from one peer to the next."""
        self.auth_state = _UNTRUSTED
        self.seed = None
        self._buffer = []
        self._buffered_bytes = 0
        self._asked = set()

    def connection_made(self):
        """A new link: forget its predecessor's state; a client introduces itself."""
        self.deframer.reset()
        self._new_session()
        self.wrong_keys = 0
        self._heard = False
        if self.is_client:
            self.send_msg(c.SID_CHANNEL_NAME_REQUEST, c.DID_CHANNEL_NAME, self.channel_name)
            if self.auto_auth and self.secret is not None:
                self.start_auth()

    def connection_lost(self):
        self.deframer.reset()
        self._new_session()
        self.wrong_keys = 0

    def start_auth(self):
        """Client side: asks for a seed; the answer drives the rest of the handshake."""
        self.auth_state = _SEED_REQUESTED
        self.send_msg(c.SID_AUTH_REQUEST, c.DID_AUTH_SEED, None)

    def is_trusted(self):
        return self.auth_state == _TRUSTED

    def proven(self):
        """The peer has shown it belongs here: trusted (with a secret) or sent a valid message (without)."""
        return self.is_trusted() if self.secret is not None else self._heard

    def auth_settled(self):
        """The handshake has ended, either way: what authentificate() waits for."""
        return self.auth_state == _TRUSTED or self.auth_state == _UNTRUSTED

    # bytes in / out ----------------------------------------------------------
    def send_msg(self, service_id, data_id, data, status=c.STATUS_OKAY):
        """Queues one message; a request makes answers to earlier ones on its ids stale."""
        pieces = self.codec.pieces(service_id, data_id, status, data)
        resp = self._requests.get(service_id)
        if resp is not None:
            self._drop_buffered(resp, data_id)
            self._asked.add((resp, data_id))
        if self.log is not None or self.hexlog is not None:
            self._trace('TX ->', service_id, data_id, status, data, pieces)
        self.counters['tx_messages'] += 1
        self._out.append(frame(*pieces))

    def data_to_send(self):
        """The frames queued since the last call, as one bytes object (b'' if none)."""
        out = self._out
        if not out:
            return b''
        self._out = []
        return out[0] if len(out) == 1 else b''.join(out)

    def feed(self, data, n=None):
        """Processes data[:n]: callbacks run, replies are queued. Never raises, whatever the bytes."""
        deframer = self.deframer
        for body in deframer.feed(data, n):
            try:
                self._receive(body)
            except Exception as err:   # MemoryError, RecursionError, ...: one dropped frame
                self.counters['format_errors'] += 1
                self.note(c.ERROR, 'dropped a message: ' + type(err).__name__)
        self.counters['framing_errors'] = deframer.framing_errors
        self.counters['oversized'] = deframer.oversized

    def _receive(self, body):
        try:
            msg = self.codec.decode(body)
        except ChecksumError as err:
            self._on_bad_checksum(err)
            return
        except FormatError as err:
            self._drop('format_errors', c.WARNING, 'dropped a message: ' + err.args[0])
            return
        if self.log is not None or self.hexlog is not None:
            self._trace('RX <-', msg[0], msg[1], msg[2], msg[3], (body,))
        self._dispatch(msg[0], msg[1], msg[2], msg[3], len(body))

    def pop_received(self, service_id, data_id):
        """The oldest buffered message matching the ids (None matches any), or None."""
        for i, entry in enumerate(self._buffer):
            msg = entry[0]
            if (service_id is None or msg['service_id'] == service_id) and \
                    (data_id is None or msg['data_id'] == data_id):
                self._buffered_bytes -= entry[1]
                return self._buffer.pop(i)[0]
        return None

    # dispatch --------------------------------------------------------------
    def _on_bad_checksum(self, err):
        self.counters['crc_errors'] += 1
        self.note(c.ERROR, 'dropped a message with a wrong checksum')
        if isinstance(err.sid, int) and err.sid in self._requests and isinstance(err.did, (int, str)):
            self.send_msg(self._requests[err.sid], err.did, None, c.STATUS_CHECKSUM_ERROR)

    def _gated(self, key):
        return self.secret is not None and self.auth_state != _TRUSTED \
            and key not in BUILTIN_DATA and key not in self._whitelist

    def _dispatch(self, sid, did, status, data, size):
        self.counters['rx_messages'] += 1
        self._heard = True
        key = (sid, did)
        turn = _HANDSHAKE.get(key)
        if turn is not None:
            if turn[0] != self.is_client or (turn[1] is not None and self.auth_state not in turn[1]):
                self._drop('out_of_turn', c.WARNING, 'dropped an out-of-turn %s', sid, did)
            else:
                from . import handshake
                getattr(handshake, turn[2])(self, status, data)
            return
        if key == _NAME_REQUEST:
            self._on_name_request(data)
            return
        if key == _NAME:
            self._on_name_response(data)
            return
        resp = self._requests.get(sid)
        if resp is None and sid not in self._responses and sid % 2 == 0 and (sid + 1) not in self._requests:
            resp = sid + 1   # unknown request: answer on the conventional response sid
        if resp is None:
            self._on_response(sid, did, status, data, size)
        else:
            self._on_request(sid, did, resp, status, data, size)

    def _on_request(self, sid, did, resp, status, data, size):
        if self._gated((sid, did)):
            self._drop('auth_rejected', c.WARNING, 'authentification required for %s', sid, did)
            self.send_msg(resp, did, None, c.STATUS_AUTH_REQUIRED)
            return
        entry = self._find_callback(sid, did)
        msg = make_message(sid, did, status, data)
        if entry is None:
            if sid in self._requests and (sid, did) in self._did_names:
                self._store(msg, size)
            else:
                self._drop('unknown', c.ERROR, 'no service or data for %s', sid, did)
                self.send_msg(resp, did, None, c.STATUS_SERVICE_OR_DATA_UNKNOWN)
            return
        try:
            status, data = self._run(entry, msg)
            self.send_msg(resp, did, data, status)
        except Exception as err:
            self._callback_failed(msg, err)
            self.send_msg(resp, did, None, c.STATUS_CALLBACK_ERROR)

    def _on_response(self, sid, did, status, data, size):
        """A response or any other message that asks for nothing back."""
        key = (sid, did)
        asked = key in self._asked
        if self._gated(key) and not (asked and status == c.STATUS_AUTH_REQUIRED and data is None):
            self._drop('auth_rejected', c.WARNING, 'dropped %s from an untrusted peer', sid, did)
            return
        entry = self._find_callback(sid, did)
        msg = make_message(sid, did, status, data)
        if entry is not None:
            self._asked.discard(key)
            try:
                self._run(entry, msg)
            except Exception as err:
                self._callback_failed(msg, err)
        elif asked or key in self._did_names:
            self._asked.discard(key)
            self._store(msg, size)
        elif sid in self._responses:
            self._drop('unsolicited', c.WARNING, 'dropped %s nobody is waiting for', sid, did)
        else:
            self._drop('unknown', c.WARNING, 'dropped a message of unknown %s', sid, did)

    def _find_callback(self, sid, did):
        callbacks = self._callbacks
        for key in ((sid, did), (sid, None), (None, did), (None, None)):
            entry = callbacks.get(key)
            if entry is not None:
                return entry
        return None

    def _run(self, entry, msg):
        return entry[0](msg, *entry[1], **entry[2])

    def _callback_failed(self, msg, err):
        self.counters['callback_errors'] += 1
        self.note(c.ERROR, 'callback for %%s failed: %s: %s' % (type(err).__name__, err),
                  msg['service_id'], msg['data_id'])

    def _store(self, msg, size):
        buffer = self._buffer
        while buffer and (len(buffer) >= self.max_buffered or self._buffered_bytes + size > self.max_buffered_bytes):
            self._buffered_bytes -= buffer.pop(0)[1]
            self._drop('buffer_dropped', c.WARNING, 'receive buffer full, dropped the oldest message')
        if size > self.max_buffered_bytes:
            self._drop('buffer_dropped', c.WARNING, 'a message larger than the receive buffer was dropped')
            return
        buffer.append([msg, size])
        self._buffered_bytes += size

    def _drop_buffered(self, sid, did):
        buffer = self._buffer
        i = 0
        while i < len(buffer):
            msg = buffer[i][0]
            if msg['service_id'] == sid and msg['data_id'] == did:
                self._buffered_bytes -= buffer.pop(i)[1]
                self.counters['stale'] += 1
            else:
                i += 1

    def _drop(self, counter, level, text, sid=None, did=None):
        self.counters[counter] += 1
        self.note(level, text, sid, did)

    # the channel name ---------------------------------------------------------
    def _on_name_request(self, name):
        """A client's introduction starts a new session (a serial line has no connects)."""
        if self.is_client:
            self._drop('out_of_turn', c.WARNING, 'dropped a channel name request sent to a client')
            return
        self._new_session()
        if name is None:
            self.send_msg(c.SID_CHANNEL_NAME_RESPONSE, c.DID_CHANNEL_NAME, self.channel_name)
            return
        if not valid_name(name):
            self._drop('bad_names', c.WARNING, 'refused a channel name that is not short printable text')
            self.send_msg(c.SID_CHANNEL_NAME_RESPONSE, c.DID_CHANNEL_NAME, None, c.STATUS_OPERATION_NOT_PERMITTED)
            return
        if self.channel_name is not None and self.channel_name != name:
            self.note(c.WARNING, 'channel name %r replaced by the client\'s %r' % (self.channel_name, name))
        self.channel_name = name
        self.send_msg(c.SID_CHANNEL_NAME_RESPONSE, c.DID_CHANNEL_NAME, None)

    def _on_name_response(self, name):
        if not self.is_client:
            self._drop('out_of_turn', c.WARNING, 'dropped a channel name response sent to a server')
        elif name is not None and self.channel_name is None:
            if valid_name(name):
                self.channel_name = name
            else:
                self._drop('bad_names', c.WARNING, 'ignored a channel name that is not short printable text')

    # logging: the text is built by sp_common.logtext, loaded when a log wants it
    def _trace(self, direction, sid, did, status, data, pieces):
        from . import logtext
        logtext.trace(self, direction, sid, did, status, data, pieces)

    def note(self, level, text, sid=None, did=None):
        """A log line; text may hold one %s for the names of sid/did."""
        log = self.log
        if log is not None and log.isEnabledFor(level):
            from . import logtext
            log.log(level, logtext.note(self, text, sid, did))
