"""The socket_protocol calls that wait, for the runtimes that block: threads and the device loop.

Each call is an operation of sp_common.ops, run by _drive(op): here the
device loop's driver; the threaded host gives its own (sp_cpython.protocol,
which holds its lock around each step). A runtime mixes Api into its protocol
class and supplies what differs: _engine (the Engine; on a device the
protocol is its own engine), _wait(predicate, timeout) (waits for the
predicate; returns its last value), _flush(timeout) (writes the engine's
outbox; False if the link did not take it) and _may_block() (raises where
waiting would stall the link).
"""
from . import load
from .const import STATUS_OKAY


def _ops():
    """sp_common.ops, loaded by the first call that waits: a board that only serves never holds it."""
    return load('sp_common.ops')


class Api:
    def _drive(self, op):
        """Runs op (sp_common.ops) to its result: its engine steps, its waits and its writes."""
        engine = self._engine
        left = _ops().left
        value = None
        try:
            while True:
                predicate, end = op.send(value)
                if predicate is None:
                    value = self._flush(left(engine, end))
                else:
                    value = self._wait(predicate, left(engine, end))
        except StopIteration as done:
            return done.value
        finally:
            op.close()

    def send(self, service_id, data_id, data, status=STATUS_OKAY, timeout=2):
        """Sends once a connection is there (and trusted, with auto_auth); False after timeout."""
        ops = _ops()
        return self._drive(ops.send(self._engine, service_id, data_id, data, status,
                                    ops.deadline(self._engine, timeout))) is not None

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
        self._may_block()
        ops = _ops()
        return self._drive(ops.ask(self._engine, service_id, data_id, data, ops.deadline(self._engine, timeout)))

    def receive(self, service_id, data_id, timeout=1):
        """The next buffered message for these ids, waiting up to timeout; None if none came."""
        if timeout:
            self._may_block()
        ops = _ops()
        return self._drive(ops.receive(self._engine, service_id, data_id, ops.deadline(self._engine, timeout)))

    def authentificate(self, timeout=2):
        """Runs the seed/key handshake; True once the peer accepted the key."""
        self._may_block()
        ops = _ops()
        return self._drive(ops.authentificate(self._engine, ops.deadline(self._engine, timeout)))
