"""The engine's calls part: the answers to this end's own requests (by token) and the receive buffer.

Made on first use by Engine.calls(), anew for every session: a board that
only serves and never buffers holds neither this code nor its state.
"""
import sys

from . import load
from .const import STATUS_AUTH_REQUIRED
from .engine import make_message

FOR_RECEIVE = 0   # _claim(): the answer is for receive() (a request() call's token is positive)

# a list or dict in the heap, the object and its table, empty or small: 8 words (32 B on a 32-bit board); a
# string, its object and the block its text takes, about as much
CONTAINER_BYTES = 64 if getattr(sys, 'maxsize', 0) > 0xFFFFFFFF else 32
_WORD = CONTAINER_BYTES // 8
# the integers held without an object of their own: a board's in a word (30 bits); CPython's those it keeps cached
_SMALL_INTS = (-0x3FFFFFFF, 0x3FFFFFFF) if sys.implementation.name == 'micropython' else (-5, 256)


def heap_cost(data):
    """The heap a message's data takes beyond its text, which a little text can make many times over: each
    list and dict (its object, and a slot per item), each string (its object and block) and each number a board
    keeps as an object (a float, a big integer). Nesting is bounded by the codec."""
    if isinstance(data, str):
        return CONTAINER_BYTES
    if isinstance(data, float) or isinstance(data, int) and not _SMALL_INTS[0] <= data <= _SMALL_INTS[1]:
        return CONTAINER_BYTES // 2
    if isinstance(data, dict):
        cost = CONTAINER_BYTES
        for key in data:
            cost += 3 * _WORD + heap_cost(key) + heap_cost(data[key])
        return cost
    if isinstance(data, list):
        cost = CONTAINER_BYTES
        for item in data:
            cost += _WORD + heap_cost(item)
        return cost
    return 0


class Calls:
    """Which request waits for which answer, the answers taken for them, and the messages kept for receive()."""

    def __init__(self, engine):
        self.engine = engine
        self.asked = {}      # (response sid, did) -> token of the newest send() that waits on them
        self.waiting = {}    # token -> (response sid, did) of request() calls still waiting
        self.replies = {}    # token -> their answers
        self.buffer = []     # [message, size in bytes], oldest first
        self.buffered_bytes = 0
        self.asked_at = None   # when the first request since the peer last spoke went out, for Engine.forgotten()
        self.gave_up_at = None   # when a request() call last gave up waiting, for Engine.forgotten()

    # requests going out ---------------------------------------------------------
    def sent(self, token, key, call):
        """A request went out on key (its response sid and did): a call() waits by token, a send() on the ids.

        A send() makes answers to earlier ones on its ids stale.
        """
        engine = self.engine
        if engine.clock is not None and (self.asked_at is None or engine.heard_at is not None and
                                         engine.heard_at >= self.asked_at):
            self.asked_at = engine.clock()
        if call:
            self.waiting[token] = key
        else:
            self.drop_buffered(key)
            self.asked[key] = token

    def take_reply(self, token):
        """The answer to the request() call of token, once it is there."""
        return self.replies.pop(token, None)

    def forget(self, token):
        """A request() call gave up: an answer that comes later is stale."""
        if self.waiting.pop(token, None) is not None and self.engine.clock is not None:
            self.gave_up_at = self.engine.clock()
        self.replies.pop(token, None)

    # messages coming in ---------------------------------------------------------
    def on_response(self, sid, did, status, data, length, re):
        """A response or any other message that asks for nothing back: the answer of a request() call, one
        receive() waits for, one a callback takes, one add_data declared (kept), or one dropped."""
        engine = self.engine
        key = (sid, did)
        gated = engine._gated(key)
        # all an untrusted peer may answer: that a request of this side needs authentification
        answers = not gated or (status == STATUS_AUTH_REQUIRED and data is None)
        token = self._claim(key, re) if answers else None
        if gated and token is None:
            engine.drop('auth_rejected', sid, did)
            return
        if token is not None and status == STATUS_AUTH_REQUIRED:
            load('sp_common.handshake').trust_lost(engine)
        msg = make_message(sid, did, status, data)
        if token is not None and token != FOR_RECEIVE:   # a request() call's answer
            self.replies[token] = msg
            return
        entry = None if gated else engine._find_callback(sid, did)   # no callback runs for an untrusted peer
        if token is None and (re or (entry is None and key not in engine._did_names)):
            # the answer to a request nobody waits for any more, or a message nobody takes
            if sid not in engine._requests.values():
                engine.drop('unknown', sid, did)
            else:
                engine.drop('stale' if re else 'unsolicited', sid, did)
        elif entry is not None:
            engine.callback(entry, msg)
        else:
            self.store(msg, length)   # for receive(), or on ids add_data declared

    def _claim(self, key, re):
        """Who waits for this answer: a request() call's token, FOR_RECEIVE, or None for no one.

        In v2 re names the request. The original wire cannot tell: a peer answers
        in order, so the older of the oldest call and the newest send() on the
        ids gets it.
        """
        waiting = self.waiting
        asked = self.asked.get(key)
        if self.engine.session == 2:
            if not re:
                return None
            token = self.engine.token_base + re
            if waiting.get(token) == key:
                del waiting[token]
                return token
            if asked == token:
                del self.asked[key]
                return FOR_RECEIVE
            return None
        token = None
        for t in waiting:
            if waiting[t] == key and (token is None or t < token):
                token = t
        if asked is not None and (token is None or asked < token):
            del self.asked[key]
            return FOR_RECEIVE
        if token is not None:
            del waiting[token]
        return token

    # the receive buffer ---------------------------------------------------------
    def store(self, msg, length):
        """Keeps msg for receive(); the oldest go when the buffer is over its count or its bytes.

        Its bytes are the frame's length plus what its objects cost in heap
        (heap_cost): a kilobyte of [[],[],...] or ["a","b",...] takes some 10 KiB
        on a 32-bit board, more than the frame's bytes would say.
        """
        length += heap_cost(msg['data'])
        engine = self.engine
        if length > engine.max_buffered_bytes:
            engine.drop('buffer_dropped')
            return
        buffer = self.buffer
        while buffer and (len(buffer) >= engine.max_buffered or
                          self.buffered_bytes + length > engine.max_buffered_bytes):
            self.buffered_bytes -= buffer.pop(0)[1]
            engine.drop('buffer_dropped')
        buffer.append([msg, length])
        self.buffered_bytes += length

    def pop_received(self, service_id, data_id):
        """The oldest buffered message matching the ids (None matches any), or None."""
        for i, entry in enumerate(self.buffer):
            msg = entry[0]
            if (service_id is None or msg['service_id'] == service_id) and \
                    (data_id is None or msg['data_id'] == data_id):
                self.buffered_bytes -= entry[1]
                return self.buffer.pop(i)[0]
        return None

    def drop_buffered(self, key):
        """Answers still buffered on key (response sid, did) are stale once a new request asks on it."""
        buffer = self.buffer
        i = 0
        while i < len(buffer):
            msg = buffer[i][0]
            if (msg['service_id'], msg['data_id']) == key:
                self.buffered_bytes -= buffer.pop(i)[1]
                self.engine.counters['stale'] += 1
            else:
                i += 1
