"""The socket_protocol calls that wait, each written once as a sans-IO operation.

An operation is a generator over an engine: it takes its engine steps itself
and yields what it needs from its runtime, one of

    predicate, end   wait until predicate() is true or end has passed (a driver
                     may stop sooner: the threaded one when the protocol is
                     closed, asyncio's when its connection is lost); send
                     back predicate()'s last value
    None, end        write the engine's outbox; send back True if the link took it

(end: a time of the engine's clock, from deadline()), and returns the call's
result. Three small drivers run them: threads (sp_cpython.protocol), the
device loop (sp_common.api.Api) and asyncio (sp_cpython.aio). A driver that stops an
operation early (a cancelled task) closes it, and the operation tidies up.
"""
from .const import STATUS_OKAY


def deadline(engine, timeout):
    """The engine's clock (ms) when timeout (s) runs out: one timeout bounds every step of a call."""
    return engine.clock() + timeout * 1000


def left(engine, end):
    """Seconds left until end, a time from deadline()."""
    ms = end - engine.clock()
    return ms / 1000 if ms > 0 else 0


def send(engine, service_id, data_id, data, status, end, call=False):
    """The token of the message sent, or None if it could not go out before end.

    A message the link did not take is taken back: a call that gave up must
    not go out later, or its caller's retry would run twice. A peer that
    forgot the session (Engine.forgotten) is told this side's name first, and
    a wire left unsettled past its time, with no runtime's timer to end it
    (after such a restart), settles here.
    """
    if engine.forgotten():
        engine.connection_made()
        yield None, end
    engine.tick()
    if not (yield engine.may_send, end) or not engine.may_send():   # asked again: a reconnect may come between
        engine.note('cannot_send')
        return None
    token = engine.send_msg(service_id, data_id, data, status, 0, call)
    sent = engine.queued
    try:
        went = yield None, end
    except GeneratorExit:   # a driver that stopped early (a cancelled task): its answer, if any, is stale
        if call:
            engine.forget(token)
        raise
    if went:
        return token
    engine.withdraw(sent)
    if call:
        engine.forget(token)
    return None


def ask(engine, service_id, data_id, data, end):
    """(sent, answer): whether the request went out in time, and its own answer or None."""
    token = yield from send(engine, service_id, data_id, data, STATUS_OKAY, end, True)
    if token is None:
        return False, None
    answer = None
    try:
        answer = yield (lambda: engine.take_reply(token)), end
    finally:   # no answer, or a driver that stopped early: an answer that comes later is stale
        if answer is None:
            engine.forget(token)
    return True, answer


def receive(engine, service_id, data_id, end):
    """The next buffered message for these ids, or None if none came before end."""
    return (yield (lambda: engine.pop_received(service_id, data_id)), end)


def authentificate(engine, end):
    """The seed/key handshake; True once the peer accepted the key. Run once more when a new session began
    meanwhile (a client that found its v2 server on the original wire starts the line over: sp_common.handshake)."""
    if engine.secret is None:
        return False
    for _ in range(2):
        if not (yield engine.ready, end):
            return False
        epoch = engine.epoch
        engine.start_auth()
        yield None, end
        if not (yield engine.auth_settled, end):
            engine.give_up_auth()
        if engine.is_trusted() or engine.epoch == epoch:
            break
    return engine.is_trusted()
