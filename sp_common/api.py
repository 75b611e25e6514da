"""The socket_protocol calls that wait, written once for both runtimes.

A runtime mixes Api into its protocol class and supplies what differs: _engine
(the Engine; on a device the protocol is its own engine), _lock (a context
manager guarding the engine), _wait(predicate, timeout) (waits for the
predicate or the protocol's close; returns its last value), _flush(timeout)
(writes the engine's outbox; False if the link did not take it), _may_block()
(raises where waiting would stall the link) and is_connected().
"""
from .engine import const

_STATUS_OKAY = const(0)   # sp_common.const.STATUS_OKAY


def deadline(engine, timeout):
    """The engine's clock (ms) when timeout (s) runs out: one timeout bounds every step of a call."""
    return engine.clock() + timeout * 1000


def left(engine, end):
    """Seconds left until end, a time from deadline()."""
    ms = end - engine.clock()
    return ms / 1000 if ms > 0 else 0


class Api:
    def _settled(self):
        """Connected, and the wire (original or session v2) settled."""
        return self.is_connected() and self._engine.ready()

    def _ready(self):
        return self.is_connected() and self._engine.may_send()

    def _send(self, service_id, data_id, data, status, end, call):
        """The token of the message sent, or None if it could not go out before end (see deadline())."""
        engine = self._engine
        token = None
        if self._wait(self._ready, left(engine, end)):
            with self._lock:   # asked again under the lock: a reconnect in between starts the wire over
                if engine.may_send():
                    token = engine.send_msg(service_id, data_id, data, status, 0, call)
                    sent = engine._out[-1]
        if token is None:
            engine.note('cannot_send')
            return None
        if self._flush(left(engine, end)):
            return token
        with self._lock:
            engine.withdraw(sent)
            if call:
                engine.forget(token)
        return None

    def send(self, service_id, data_id, data, status=_STATUS_OKAY, timeout=2):
        """Sends once a connection is there (and trusted, with auto_auth); False after timeout."""
        return self._send(service_id, data_id, data, status, deadline(self._engine, timeout), False) is not None

    def request(self, service_id, data_id, data=None, timeout=2):
        """Sends a request and returns its own response (a data_storage), or None after timeout.

        Any number of callers may ask on the same ids at once. In session v2 the
        answer is matched by its request's seq; the original wire cannot tell,
        so there each call takes the oldest answer still due on its ids.
        """
        return self._ask(service_id, data_id, data, timeout)[1]

    def call(self, service_id, data_id, data=None, timeout=2):
        """request() with typed errors: the answer's data, or NotConnected, NoAnswer, ErrorAnswer (AuthRequired).

        (sp_common.errors; request() keeps socket_protocol's None.)
        """
        from . import errors
        return errors.answer_data(*self._ask(service_id, data_id, data, timeout))

    def _ask(self, service_id, data_id, data, timeout):
        """(sent, answer): whether the request went out in time, and its own answer or None."""
        engine = self._engine
        self._may_block()
        end = deadline(engine, timeout)
        token = self._send(service_id, data_id, data, _STATUS_OKAY, end, True)
        if token is None:
            return False, None
        msg = self._wait(lambda: engine.take_reply(token), left(engine, end))
        if msg is None:
            with self._lock:
                engine.forget(token)
        return True, msg

    def receive(self, service_id, data_id, timeout=1):
        """The next buffered message for these ids, waiting up to timeout; None if none came."""
        engine = self._engine
        if timeout:
            self._may_block()
        with self._lock:
            msg = engine.pop_received(service_id, data_id)
        if msg is not None or not timeout:
            return msg
        return self._wait(lambda: engine.pop_received(service_id, data_id), timeout)

    def authentificate(self, timeout=2):
        """Runs the seed/key handshake; True once the peer accepted the key."""
        engine = self._engine
        self._may_block()
        end = deadline(engine, timeout)
        if engine.secret is None or not self._wait(self._settled, timeout):
            return False
        with self._lock:
            engine.start_auth()
        self._flush(left(engine, end))
        if not self._wait(engine.auth_settled, left(engine, end)):
            with self._lock:
                engine.give_up_auth()
        return engine.is_trusted()

    def check_authentification_state(self):
        return self._engine.is_trusted()

    def connection_established(self):
        return self.is_connected() and (self._engine.secret is None or self._engine.is_trusted())
