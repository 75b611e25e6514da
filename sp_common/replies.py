"""The answers to this end's own requests: request() and receive() get theirs here (Engine methods).

Loaded on first use (see Engine.__getattr__): a board that only serves
never sends a request and never holds this code.
"""
from .engine import const, make_message

_STATUS_AUTH_REQUIRED = const(3)   # sp_common.const.STATUS_AUTH_REQUIRED, as in sp_common.engine


def take_reply(self, token):
    """The answer to the request() call of token, once it is there."""
    return self._replies.pop(token, None)


def forget(self, token):
    """A request() call gave up: an answer that comes later is stale."""
    self._calls.pop(token, None)
    self._replies.pop(token, None)


def pop_received(self, service_id, data_id):
    """The oldest buffered message matching the ids (None matches any), or None."""
    for i, entry in enumerate(self._buffer):
        msg = entry[0]
        if (service_id is None or msg['service_id'] == service_id) and \
                (data_id is None or msg['data_id'] == data_id):
            self._buffered_bytes -= entry[1]
            return self._buffer.pop(i)[0]
    return None


def _on_response(self, sid, did, status, data, length, re):
    """A response or any other message that asks for nothing back."""
    key = (sid, did)
    gated = self._gated(key)
    # an untrusted peer may only tell a request of this side that it needs authentification
    token = None if gated and not (status == _STATUS_AUTH_REQUIRED and data is None) else self._claim(key, re)
    if gated and token is None:
        self.drop('auth_rejected', sid, did)
        return
    msg = make_message(sid, did, status, data)
    if token:
        self._replies[token] = msg
        return
    entry = None if gated else self._find_callback(sid, did)   # no callback runs for an untrusted peer
    if token is None and (re or (entry is None and key not in self._did_names)):
        self.drop('unknown' if sid not in self._responses else 'stale' if re else 'unsolicited', sid, did)
    elif entry is not None:
        try:
            entry[0](msg, *entry[1], **entry[2])
        except Exception as err:
            self.drop('callback_errors', msg['service_id'], msg['data_id'], err)
    else:
        self._store(msg, length)


def _claim(self, key, re):
    """Who waits for this answer: a request() call's token, 0 for receive(), None for no one.

    In v2 re names the request. The original wire cannot tell: a peer answers
    in order, so the older of the oldest call and the newest send() on the
    ids gets it.
    """
    calls = self._calls
    asked = self._asked.get(key)
    if self.session == 2:
        if not re:
            return None
        token = self.token_base + re
        if calls.get(token) == key:
            del calls[token]
            return token
        if asked == token:
            del self._asked[key]
            return 0
        return None
    token = None
    for t in calls:
        if calls[t] == key and (token is None or t < token):
            token = t
    if asked is not None and (token is None or asked < token):
        del self._asked[key]
        return 0
    if token is not None:
        del calls[token]
    return token


def _store(self, msg, length):
    if length > self.max_buffered_bytes:
        self.drop('buffer_dropped')
        return
    buffer = self._buffer
    while buffer and (len(buffer) >= self.max_buffered or self._buffered_bytes + length > self.max_buffered_bytes):
        self._buffered_bytes -= buffer.pop(0)[1]
        self.drop('buffer_dropped')
    buffer.append([msg, length])
    self._buffered_bytes += length


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
