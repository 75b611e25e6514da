"""The socket_protocol calls that wait, written once for both runtimes.

A runtime mixes Api into its protocol class and supplies what differs: _engine
(the Engine; on a device the protocol is its own engine), _lock (a context
manager guarding the engine), _wait(predicate, timeout) (waits for the
predicate or the protocol's close; returns its last value), _flush(timeout)
(writes the engine's outbox; False if the link did not take it), _may_block()
(raises where waiting would stall the link) and is_connected().
"""
from .const import STATUS_OKAY, WARNING


class Api:
    def send(self, service_id, data_id, data, status=STATUS_OKAY, timeout=2):
        """Sends once a connection is there (and trusted, with auto_auth); False after timeout."""
        engine = self._engine
        ready = self.connection_established if engine.auto_auth else self.is_connected
        if not self._wait(ready, timeout):
            engine.note(WARNING, 'cannot send, no %sconnection' % ('trusted ' if engine.auto_auth else ''))
            return False
        with self._lock:
            engine.send_msg(service_id, data_id, data, status)
        return self._flush(timeout)

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
        if engine.secret is None or not self._wait(self.is_connected, timeout):
            return False
        with self._lock:
            engine.start_auth()
        self._flush(timeout)
        self._wait(engine.auth_settled, timeout)
        return engine.is_trusted()

    def check_authentification_state(self):
        return self._engine.is_trusted()

    def connection_established(self):
        return self.is_connected() and (self._engine.secret is None or self._engine.is_trusted())
