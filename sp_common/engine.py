"""The protocol engine, sans-IO: bytes in through feed(), bytes out through data_to_send().

Every decision both sides must agree on is made here: dispatch, callback
priority, the error replies, the channel-name exchange, the wire's state and
who may say what, when (the tables below); the steps they pick are carried
out by the parts docs/design.md names (sp_common.handshake, session, stray,
calls). It never writes, sleeps or reads a clock of its own; the runtimes feed it the bytes they read,
drain its outbox and may lend it a clock (milliseconds that only grow).
"""
from . import const, load
from .codec import ChecksumError, FormatError, MacError, is_short_ascii, pure_json
from .dispatch import call
from .entropy import random_bytes
from .stp import Deframer, frame


class data_storage(dict):
    """A received message, as the original API hands it to callbacks and receive()."""

    KEY_STATUS = 'status'
    KEY_SERVICE_ID = 'service_id'
    KEY_DATA_ID = 'data_id'
    KEY_DATA = 'data'

    def get_status(self, default=None):
        return self.get(self.KEY_STATUS, default)

    def get_service_id(self, default=None):
        return self.get(self.KEY_SERVICE_ID, default)

    def get_data_id(self, default=None):
        return self.get(self.KEY_DATA_ID, default)

    def get_data(self, default=None):
        return self.get(self.KEY_DATA, default)


def make_message(service_id, data_id, status, data):
    return data_storage(service_id=service_id, data_id=data_id, status=status, data=data)


def new_counters():
    """Every counter at zero. A literal, so that a board holds the names once, as names, not as strings."""
    return {'rx_messages': 0, 'tx_messages': 0, 'crc_errors': 0, 'format_errors': 0, 'framing_errors': 0,
            'oversized': 0, 'unknown': 0, 'auth_rejected': 0, 'callback_errors': 0, 'buffer_dropped': 0,
            'out_of_turn': 0, 'unsolicited': 0, 'stale': 0, 'wrong_keys': 0, 'bad_names': 0,
            'replayed': 0, 'mac_errors': 0, 'downgrade': 0, 'refused_frames': 0}


_NAME_REQUEST = (const.SID_CHANNEL_NAME_REQUEST, const.DID_CHANNEL_NAME)
_NAME = (const.SID_CHANNEL_NAME_RESPONSE, const.DID_CHANNEL_NAME)
# Session v2's negotiation (docs/session-v2.md), like the handshake: message -> (acted on by a
# client?, the step in sp_common.session); only while the wire is not settled.
_SESSION = {(const.SID_SESSION_REQUEST, const.DID_SESSION): (False, 'on_offer'),
            (const.SID_SESSION_RESPONSE, const.DID_SESSION): (True, 'on_answer')}

# The handshake as a table (docs/security.md): message -> (acted on by a client?, the
# states it is acted on in or None for any, the step in sp_common.handshake).
# Anything else is out of turn: dropped and counted, never answered, never signed.
_HANDSHAKE = {
    (const.SID_AUTH_REQUEST, const.DID_AUTH_SEED): (False, None, 'seed_request'),
    (const.SID_AUTH_RESPONSE, const.DID_AUTH_SEED): (True, (const.AUTH_STATE_SEED_REQUESTED,), 'seed'),
    (const.SID_AUTH_REQUEST, const.DID_AUTH_KEY): (False, (const.AUTH_STATE_SEED_TRANSFERRED,), 'key'),
    (const.SID_AUTH_RESPONSE, const.DID_AUTH_KEY): (True, (const.AUTH_STATE_KEY_TRANSFERRED,), 'key_result'),
}
# The built-in data: names for the logs; these pass before authentification.
BUILTIN_DATA = {key: 'key' if key[1] == const.DID_AUTH_KEY else 'seed' for key in _HANDSHAKE}
BUILTIN_DATA[_NAME_REQUEST] = BUILTIN_DATA[_NAME] = 'name'

# The connection's wire is one state (docs/design.md, the wire's state), named as the log names it. A session starts it
# 'negotiating' ('original' with session_v2=False); from there it moves only as this table says.
# 'refused': session_v2='required' met a peer without v2, or an original frame came into a session with MACs on a
# link with connects: nothing passes but, on a line without connects, the next program's name (sp_common.stray).
_WIRE_MOVES = {
    'negotiating': ('original', 'v2', 'v2_macs', 'refused'),
    'v2': ('original', 'refused'),   # a server whose client never heard the session answer (sp_common.stray.original)
    'v2_macs': ('original', 'refused'),
}

_NO_KWARGS = {}


class Engine:
    """One end of a connection.

    log, hexlog: objects with isEnabledFor(level) and log(level, text) (a
    logging.Logger fits), or None. clock: callable giving milliseconds that
    only grow; without one, a connection that sent too many wrong keys gets
    no more seeds until it ends, and a session request waits for its answer.
    session_v2: True (negotiate v2, else the original wire), False (the
    original wire, byte for byte) or 'required' (no v2, no connection).
    """

    jobs = None    # a runtime that runs user callbacks outside its lock sets a list here (sp_common.dispatch)
    connects = False   # set by a runtime whose link has connects of its own (TCP): see _on_name_request
    log_budget = None   # sp_common.logtext's once it logs: events', messages' [second's start, lines, left out]

    def __init__(self, is_client, codec=pure_json, secret=None, auto_auth=False,
                 channel_name=None, max_frame=65536, max_buffered=64, log=None, hexlog=None,
                 random_bytes=random_bytes, max_buffered_bytes=None, clock=None, session_v2=True):
        self.is_client = is_client
        self.session_v2 = session_v2
        self.codec = codec
        # ASCII white space around a secret is no part of it, as on every side (a secret file's newline)
        self.secret = secret if secret is None else secret.strip(' \t\n\r\x0b\x0c')
        self.auto_auth = auto_auth
        self.own_name = self.channel_name = channel_name   # the name given here, which each session starts with
        self.log = log
        self.hexlog = hexlog
        self.clock = clock
        self.random_bytes = random_bytes
        self.deframer = Deframer(max_frame)
        self.max_buffered = max_buffered
        self.max_buffered_bytes = 2 * max_frame if max_buffered_bytes is None else max_buffered_bytes
        self._requests = {}       # request sid -> response sid (its values: the response sids): the built-in services,
                                  # then add_service()
        for req in (const.SID_AUTH_REQUEST, const.SID_CHANNEL_NAME_REQUEST, const.SID_READ_REQUEST,
                    const.SID_WRITE_REQUEST, const.SID_EXECUTE_REQUEST):
            self._requests[req] = req + 1
        self._sid_names = {}      # names beyond the built-in ones of const, here and below
        self._did_names = {}      # (sid, did) -> name
        self._status_names = {}
        self._whitelist = set()
        self._callbacks = {}      # (sid or None, did or None) -> (callback, args, kwargs)
        self.last_wrong_key = 0
        self.counters = new_counters()
        self.token_base = self.tx_seq = self.epoch = 0
        self.connection_lost()

    # registries ------------------------------------------------------------
    def add_service(self, req_sid, resp_sid, req_name=None, resp_name=None):
        responses = self._requests.values()
        taken = req_sid in self._requests or req_sid in responses
        if taken or resp_sid in self._requests or resp_sid in responses or resp_sid == req_sid:
            from . import errors
            raise (errors.RequestSidExistsError if taken else errors.ResponseSidExistsError)(
                'service id %r is already in use' % (req_sid if taken else resp_sid,))
        self._requests[req_sid] = resp_sid
        if req_name is not None:
            self._sid_names[req_sid] = req_name
        if resp_name is not None:
            self._sid_names[resp_sid] = resp_name

    def add_status(self, status, name):
        self._status_names[status] = name

    def add_msg_to_auth_whitelist_(self, service_id, data_id):
        self._whitelist.add((service_id, data_id))

    def add_data(self, service_id, data_id, name):
        for sid in service_id if isinstance(service_id, (list, tuple)) else (service_id,):
            self._did_names[(sid, data_id)] = name

    def register_callback(self, service_id, data_id, callback, *args, **kwargs):
        """Any message but those the engine serves itself (serves_itself), which no callback takes."""
        key = (service_id, data_id)
        if self.serves_itself(key):
            raise ValueError('%r/%r is served by the engine itself' % key)
        if key in self._callbacks:
            self.note('overwrite', service_id, data_id)
        self._callbacks[key] = (callback, args or (), kwargs or _NO_KWARGS)

    def serves_itself(self, key):
        """Whether (sid, did) is the engine's own: the handshake's and the channel name's, and the session's where
        the engine negotiates v2 (the original wire has no such messages)."""
        return key in BUILTIN_DATA or self.session_v2 and key in _SESSION

    # connection ------------------------------------------------------------
    def _new_session(self):
        """Trust, seed, buffer, outbox, wire and name start over: nothing passes from one peer to the next, not
        even the answers still queued for the last one, or the name it gave."""
        self.channel_name = self.own_name
        self._out = []
        self.queued = None
        self.epoch += 1           # callbacks still running answer only within the session they were called in
        self.auth_state = const.AUTH_STATE_UNTRUSTED_CONNECTION
        self.seed = None
        self._calls = None        # the calls part (answers to this end's requests, the receive buffer): calls()
        self.wire = 'negotiating' if self.session_v2 else 'original'   # see _WIRE_MOVES
        self.nonces = self.tx_mac = self.rx_mac = None   # session v2's (sp_common.session)
        self.negotiating_since = None   # when the wire started to settle (the client's offer, or its name)
        self.restart_seq()

    def calls(self):
        """This session's calls part (sp_common.calls), made on first use: a board that only serves holds none.

        sp_common.load() imports it after a collection, as the session and handshake steps below: code that
        loads while a board serves fills the heap's low holes instead of landing among the garbage.
        """
        if self._calls is None:
            self._calls = load('sp_common.calls').Calls(self)
        return self._calls

    def take_reply(self, token):
        """The answer to the request() call of token, once it is there."""
        return self.calls().take_reply(token)

    def forget(self, token):
        """A request() call gave up: an answer that comes later is stale."""
        self.calls().forget(token)

    def pop_received(self, service_id, data_id):
        """The oldest buffered message matching the ids (None matches any), or None."""
        return self.calls().pop_received(service_id, data_id)

    def restart_seq(self):
        """Frame counters start over; tokens go on from where they were (token = token_base + seq): a call
        still waiting from an earlier session never meets an answer of this one."""
        self.token_base += self.tx_seq
        self.tx_seq = self.rx_seq = 0

    def connection_made(self):
        """A new link: forget its predecessor's state; a client introduces itself."""
        self.connection_lost()
        self.linked = True
        if self.is_client:
            self.send_msg(const.SID_CHANNEL_NAME_REQUEST, const.DID_CHANNEL_NAME, self.channel_name)
            if self.session_v2:
                load('sp_common.session').offer(self)
            else:
                self.on_settled()

    def on_settled(self):
        """Client: the wire is settled; with auto_auth the handshake starts now."""
        if self.auto_auth and self.secret is not None:
            self.start_auth()

    @property
    def session(self):
        """The wire as the host API tells it: 2 (session v2), 1 (the original), None (not settled, or refused)."""
        wire = self.wire
        return 2 if wire == 'v2' or wire == 'v2_macs' else 1 if wire == 'original' else None

    def move(self, wire):
        """The wire's next state, as _WIRE_MOVES allows (any other move is the engine's bug), logged by its name."""
        if wire not in _WIRE_MOVES.get(self.wire, ()):
            raise ValueError('the wire cannot go from %s to %s' % (self.wire, wire))
        self.wire = wire
        self.note(wire)

    def ready(self):
        """Messages may go out: a link is up and its wire settled (a server's, once its client has offered v2
        or not)."""
        wire = self.wire
        return self.linked and wire != 'negotiating' and wire != 'refused'

    def may_send(self):
        """What send() and request() wait for: the wire settled, and with auto_auth a trusted peer."""
        return self.ready() and (not self.auto_auth or self.secret is None or self.is_trusted())

    def settle_original(self):
        """The original wire, or, with session_v2='required', no connection at all: nothing is taken or
        sent until the runtime reconnects, or, on a line without connects, until the next program's name."""
        if self.session_v2 == 'required':
            self.move('refused')
            return
        self.tx_mac = self.rx_mac = None
        self.move('original')
        if self.is_client:
            self.on_settled()

    def tick(self):
        """Runs the timers (the runtimes call it when deadline_ms() has passed, or often)."""
        if self.wire == 'negotiating' and self.deadline_ms() == 0:   # (the one timer: a call only while it may run)
            self.settle_original()   # the wire did not settle in time: a client's offer went unanswered, or a
                                     # server's client gave its name and no offer

    def deadline_ms(self):
        """Milliseconds until tick() has work, or None when no timer runs. A client on a link with connects that
        has heard nothing yet runs none: its server has not read the offer (it waits in a listen backlog), and
        every server answers it, an original one too; settled on the original wire by then, the client would
        meet a server of this project that follows it there and a seed it must not sign (sp_common.handshake)."""
        if self.wire != 'negotiating' or self.negotiating_since is None or self.clock is None or \
                self.is_client and self.connects and self.heard_at is None:
            return None
        left = const.NEGOTIATE_MS - (self.clock() - self.negotiating_since)
        return left if left > 0 else 0

    def connection_lost(self):
        """Nothing of a link outlives it: its partial frame, trust, buffer, outbox, wire and wrong keys."""
        self.deframer.reset()
        self.linked = False   # until connection_made()
        self._new_session()
        self.wrong_keys = 0   # on this connection (see sp_common.handshake)
        # when the connection began, its peer last sent a valid frame and last moved it on (None: never), for
        # sp_common.admission
        self.since = self.clock() if self.clock is not None else 0
        self.heard_at = self.moved_at = None
        self.was_trusted = False   # trusted once on this connection (sp_common.handshake)

    def forgotten(self):
        """Client on a line without connects: whether its peer seems to have forgotten the session, as a board
        that reset behind a port that stays open (a USB-UART adapter keeps it) has: it drops every frame of a
        session it never had. Told by not a word from the peer for NEGOTIATE_MS since a request went out, and
        while request() calls wait for their answers, by one of them having given up since (a peer whose callback
        takes its time is slow, not reset). What cures it is what starts a serial line's session over: this side's
        channel name (connection_made(); sp_common.ops.send)."""
        calls = self._calls
        if not self.is_client or self.connects or not self.linked or calls is None or calls.asked_at is None or \
                calls.waiting and (calls.gave_up_at is None or calls.gave_up_at < calls.asked_at):
            return False
        heard = self.heard_at
        return (heard is None or heard < calls.asked_at) and self.clock() - calls.asked_at >= const.NEGOTIATE_MS

    def start_auth(self):
        """Client side: asks for a seed, unless a handshake runs already: the server keeps only its newest
        seed, so a second one would make both fail; the running one settles every caller."""
        if self.auth_settled():
            self.auth_state = const.AUTH_STATE_SEED_REQUESTED
            self.send_msg(const.SID_AUTH_REQUEST, const.DID_AUTH_SEED, None)

    def give_up_auth(self):
        """A handshake that went unanswered in time ends, so that the next authentificate() starts afresh
        (a late answer is then out of turn)."""
        if not self.auth_settled():
            self.auth_state = const.AUTH_STATE_UNTRUSTED_CONNECTION

    def is_trusted(self):
        return self.auth_state == const.AUTH_STATE_TRUSTED_CONNECTION

    def connection_established(self):
        """A link is up and, with a secret, trusted."""
        return self.linked and (self.secret is None or self.is_trusted())

    def proven(self):
        """The peer has shown it belongs here on this connection: trusted (with a secret), if only before an
        authentication it runs again, or sent a valid message (without)."""
        return self.was_trusted if self.secret is not None else self.heard_at is not None

    def auth_settled(self):
        """The handshake has ended, either way: what authentificate() waits for."""
        state = self.auth_state
        return state == const.AUTH_STATE_TRUSTED_CONNECTION or state == const.AUTH_STATE_UNTRUSTED_CONNECTION

    # bytes in / out ----------------------------------------------------------
    def send_msg(self, service_id, data_id, data, status=const.STATUS_OKAY, re=0, call=False):
        """Queues one message; returns its token (see restart_seq). re: the seq of the request it answers.

        A request sent by a request() call (call=True) waits for its own answer
        (take_reply(token)); any other request makes answers to earlier ones on
        its ids stale and waits for receive().
        """
        self.tx_seq += 1
        token = self.token_base + self.tx_seq
        wire = self.wire
        if wire == 'v2' or wire == 'v2_macs':
            pieces = self.codec.pieces(service_id, data_id, status, data, self.tx_seq, re, self.tx_mac)
        else:
            pieces = self.codec.pieces(service_id, data_id, status, data)
        resp = self._response_sid(service_id)
        # the engine takes the answers to its own requests (seed, key, name, and the session offer where it
        # negotiates v2) itself: no one waits for them
        if resp is not None and service_id != const.SID_AUTH_REQUEST and service_id != const.SID_CHANNEL_NAME_REQUEST \
                and (service_id != const.SID_SESSION_REQUEST or not self.session_v2):
            self.calls().sent(token, (resp, data_id), call)
        if self.log is not None or self.hexlog is not None:   # (no call where nothing logs: a board pays one in heap)
            self._trace(True, service_id, data_id, status, data, pieces)
        self.counters['tx_messages'] += 1
        self.queued = frame(*pieces)   # the last frame queued, for withdraw(); None once taken
        self._out.append(self.queued)
        return token

    def _response_sid(self, sid):
        """Where the answer to a request on sid comes: its service's response sid, or for an unknown even
        sid the conventional sid + 1, on which a peer that knows no such service says so; None for a
        response."""
        resp = self._requests.get(sid)
        if resp is None and isinstance(sid, int) and sid % 2 == 0 and sid not in self._requests.values() and \
                (sid + 1) not in self._requests:
            resp = sid + 1
        return resp

    def withdraw(self, sent):
        """Takes back sent (a frame send_msg queued) if no writer has taken it yet: a call that gave up
        must not go out later, or its caller's retry would run twice."""
        out = self._out
        for i in range(len(out)):
            if out[i] is sent:
                del out[i]
                self.queued = out[-1] if out else None
                return

    def data_to_send(self):
        """The frames queued since the last call, as one bytes object (b'' if none)."""
        out = self.frames_to_send()
        return out[0] if len(out) == 1 else b''.join(out)

    def frames_to_send(self):
        """The frames queued since the last call, as a list: a writer that writes them one by one need not join them."""
        out = self._out
        if out:
            self._out = []
            self.queued = None   # taken: there is nothing left to withdraw
        return out

    def feed(self, data, n=None):
        """Processes data[:n]: replies are queued, callbacks run (queued in jobs where a runtime set that list).
        Never raises, whatever the bytes."""
        deframer = self.deframer
        for body in deframer.feed(data, n):
            try:
                self._receive(body)
            except Exception as err:   # MemoryError, RecursionError, ...: one dropped frame
                self.counters['format_errors'] += 1
                try:
                    self.note('failed', detail=type(err).__name__)
                except MemoryError:
                    pass
        self.counters['framing_errors'] = deframer.framing_errors
        self.counters['oversized'] = deframer.oversized

    def _receive(self, body):
        wire = self.wire
        if wire == 'refused':
            load('sp_common.stray').while_refused(self, body)
            return
        v2 = wire == 'v2' or wire == 'v2_macs'
        try:
            msg = self.codec.decode(body, v2, self.rx_mac)
        except ChecksumError as err:
            load('sp_common.stray').bad_checksum(self, err)
            return
        except (MacError, FormatError) as err:
            msg = load('sp_common.stray').as_original(self, body) if v2 else None   # an original frame in v2? below
            if msg is None:
                self.drop('mac_errors' if isinstance(err, MacError) else 'format_errors', detail=err.args[0])
                return
        seq = msg[4]
        if v2:
            if seq is not None and seq != 1 and not self.rx_seq:
                # a session's first frame has seq 1; another may be an original frame read with a v2 header
                # (struct_json's seq and re sit where an original frame's data begins)
                msg = load('sp_common.stray').as_original(self, body) or msg
                seq = msg[4]
            if seq is None:
                load('sp_common.stray').original(self, msg, len(body))
                return
            if seq <= self.rx_seq:
                self.drop('replayed')
                return
            self.rx_seq = seq
        elif seq is not None:
            self.drop('format_errors', detail='a session v2 frame outside a v2 session')
            return
        if self.log is not None or self.hexlog is not None:
            self._trace(False, msg[0], msg[1], msg[2], msg[3], (body,))
        self._dispatch(msg[0], msg[1], msg[2], msg[3], len(body), seq, msg[5])

    def _step(self, module, step, *args):
        """Runs the step a table (_SESSION, _HANDSHAKE) names, in its part, loaded on first use (sp_common.session,
        sp_common.handshake): the one call by name, as the tables hold names, not functions a board would load."""
        getattr(load(module), step)(self, *args)

    # dispatch --------------------------------------------------------------
    def _gated(self, key):
        return self.secret is not None and self.auth_state != const.AUTH_STATE_TRUSTED_CONNECTION \
            and key not in BUILTIN_DATA and key not in self._whitelist

    def _dispatch(self, sid, did, status, data, length, seq, re):
        """A valid message, routed: the protocol's own (_own) or a user's, a response or a request."""
        self.counters['rx_messages'] += 1
        heard = self.heard_at is not None
        self.heard_at = self.clock() if self.clock is not None else 0
        if not heard and self.connects and self.is_client and self.wire == 'negotiating':
            self.negotiating_since = self.heard_at   # its server has read the offer only now (deadline_ms)
        key = (sid, did)
        if self.wire == 'negotiating' or self.serves_itself(key):
            if self._own(key, status, data, heard):
                return
        resp = self._response_sid(sid)
        if resp is None:
            self.calls().on_response(sid, did, status, data, length, re)
        else:
            self._on_request(sid, did, resp, status, data, length, seq or 0)

    def _own(self, key, status, data, heard):
        """A message of the session, the handshake or the channel name, or any message while the wire is not
        settled; False if it is a user's message all the same, for _dispatch to route on (it settled the wire).

        One that moved the connection on (its wire settled, or its handshake
        went a step forward) sets moved_at: for a peer on probation only such
        steps count (sp_common.admission). A wrong key moves the handshake
        back, and after one no step of it counts: a peer that sends seed
        requests and wrong keys by turns gets nowhere.
        """
        wire, auth = self.wire, self.auth_state
        taken = self._route(key, status, data, heard)
        if self.wire != wire or (self.auth_state != auth and not self.wrong_keys
                                 and self.auth_state != const.AUTH_STATE_UNTRUSTED_CONNECTION):
            self.moved_at = self.heard_at
        return taken

    def _route(self, key, status, data, heard):
        """_own's step: True if it took the message (or dropped it)."""
        sid, did = key
        if self.session_v2:
            turn = _SESSION.get(key)
            if turn is not None:
                if turn[0] != self.is_client or self.wire != 'negotiating':
                    self.drop('out_of_turn', sid, did)
                else:
                    self._step('sp_common.session', turn[1], status, data)
                return True
            if self.wire == 'negotiating':
                if not self.is_client and key != _NAME_REQUEST:
                    self.settle_original()   # an original client: it spoke before offering v2
                    if self.wire == 'refused':
                        return True
                elif self.is_client and key != _NAME:
                    # a client takes nothing else until its wire settles: its answer would go out on the original
                    # wire, and its server, which has taken nothing yet, would follow it there (or refuse it)
                    self.drop('out_of_turn', sid, did)
                    return True
        turn = _HANDSHAKE.get(key)
        if turn is not None:
            if turn[0] != self.is_client or (turn[1] is not None and self.auth_state not in turn[1]):
                self.drop('out_of_turn', sid, did)
            else:
                self._step('sp_common.handshake', turn[2], status, data)
            return True
        if key == _NAME_REQUEST:
            self._on_name_request(data, heard)
            return True
        if key == _NAME:
            self._on_name_response(data)
            return True
        return False

    def _on_request(self, sid, did, resp, status, data, length, seq):
        if self._gated((sid, did)):
            self.drop('auth_rejected', sid, did)
            self.send_msg(resp, did, None, const.STATUS_AUTH_REQUIRED, seq)
            return
        entry = self._find_callback(sid, did)
        msg = make_message(sid, did, status, data)
        if entry is None:
            if sid in self._requests and (sid, did) in self._did_names:
                self.calls().store(msg, length)
            else:
                self.drop('unknown', sid, did)
                self.send_msg(resp, did, None, const.STATUS_SERVICE_OR_DATA_UNKNOWN, seq)
            return
        self.callback(entry, msg, resp, seq)

    def callback(self, entry, msg, resp=None, seq=0):
        """A user callback for msg (a request's when resp is its response sid): a job for the runtime's
        dispatcher, run outside its lock (sp_common.dispatch), or run at once where no runtime queues them."""
        job = (entry, msg, resp, seq, self.epoch)
        if self.jobs is not None:
            self.jobs.append(job)
        else:
            result, error = call(job)
            self.finish(job, result, error)

    def finish(self, job, result, error=None):
        """A callback's job is done: a request's answer goes out, const.STATUS_CALLBACK_ERROR for what the
        callback raised or a result that is no (status, data). An answer whose session has ended since is
        dropped: it would answer a request of another peer."""
        entry, msg, resp, seq, epoch = job
        if error is None and resp is not None and epoch == self.epoch:
            try:
                status, data = result
                self.send_msg(resp, msg['data_id'], data, status, seq)
                return
            except Exception as err:
                error = err
        if error is None:
            return
        self.drop('callback_errors', msg['service_id'], msg['data_id'], error)
        if resp is not None and epoch == self.epoch:   # the requester told
            self.send_msg(resp, msg['data_id'], None, const.STATUS_CALLBACK_ERROR, seq)

    def _find_callback(self, sid, did):
        """The callback of (sid, did), else of (sid, any), of (any, did), of any message; or None."""
        callbacks = self._callbacks
        return callbacks.get((sid, did)) or callbacks.get((sid, None)) or callbacks.get((None, did)) or \
            callbacks.get((None, None))

    def drop(self, name, sid=None, did=None, detail=None):
        """Counts a dropped message (or event) on the counter of that name and logs it (sp_common.logtext's line)."""
        self.counters[name] += 1
        self.note(name, sid, did, detail)

    # the channel name ---------------------------------------------------------
    def _on_name_request(self, name, heard):
        """A client's introduction starts a new session: on a serial line (no connects) the next program's;
        on a link with connects only as the connection's first frame (nothing heard before), so a frame
        slipped into the stream cannot end its session."""
        if self.is_client or (self.connects and heard):
            self.drop('out_of_turn', const.SID_CHANNEL_NAME_REQUEST, const.DID_CHANNEL_NAME)
            return
        self._new_session()
        if self.session_v2:   # a v2 client offers v2 right after its name; other clients say something else
            self.negotiating_since = self.clock() if self.clock is not None else 0
        if name is None:
            self.send_msg(const.SID_CHANNEL_NAME_RESPONSE, const.DID_CHANNEL_NAME, self.channel_name)
            return
        if not is_short_ascii(name, const.MAX_CHANNEL_NAME):
            self.drop('bad_names')
            self.send_msg(const.SID_CHANNEL_NAME_RESPONSE, const.DID_CHANNEL_NAME, None,
                          const.STATUS_OPERATION_NOT_PERMITTED)
            return
        if self.channel_name is not None and self.channel_name != name:
            self.note('renamed', detail=name)
        self.channel_name = name
        self.send_msg(const.SID_CHANNEL_NAME_RESPONSE, const.DID_CHANNEL_NAME, None)

    def _on_name_response(self, name):
        if not self.is_client:
            self.drop('out_of_turn', const.SID_CHANNEL_NAME_RESPONSE, const.DID_CHANNEL_NAME)
        elif name is not None and self.channel_name is None:
            if is_short_ascii(name, const.MAX_CHANNEL_NAME):
                self.channel_name = name
            else:
                self.drop('bad_names')

    # logging: the text is built by sp_common.logtext, loaded when a log wants it
    def _trace(self, sent, sid, did, status, data, pieces):
        """A message's log lines, built only if a log may take them: the hex line is at DEBUG, the message line
        at INFO for an okay status and WARNING or above for any other (sp_common.names.STATUS_LOG_LVL)."""
        log = self.log
        hexlog = self.hexlog
        if log is not None and log.isEnabledFor(const.INFO if status == const.STATUS_OKAY else const.WARNING) or \
                hexlog is not None and hexlog.isEnabledFor(const.DEBUG):
            load('sp_common.logtext').trace(self, sent, sid, did, status, data, pieces)

    def note(self, event, sid=None, did=None, detail=None):
        """A log line: sp_common.logtext's text and level for event, naming sid/did, ending in detail."""
        if self.log is not None:
            load('sp_common.logtext').note(self, event, sid, did, detail)
