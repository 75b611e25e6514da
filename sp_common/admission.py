"""Who a TCP server admits: one rule for the host's threaded and asyncio servers and the board's.

A connection is on probation until its peer proves itself (engine.proven():
authenticated when there is a secret, any valid frame when not). On
probation it must go when it has sent no valid frame within SILENCE_MS or is
not proven within PROBATION_MS, and it makes room for a newcomer once it has
stalled: no step forward for PATIENCE_MS (a client on its way through the
handshake takes a step each round trip: its wire settles, it asks for a seed,
its key is taken; a peer that only gave its name, or keeps asking for seeds
and sending what its trust does not allow, does not). A proven client makes
room only after IDLE_MS of silence. Quiet time counts from the last step (on
probation) or valid frame (proven), or from the connect; all from the
engine's clock (milliseconds).
"""

SILENCE_MS = 1000
PROBATION_MS = 5000
PATIENCE_MS = 250
IDLE_MS = 30000
BACKLOG = 16   # newcomers that wait their turn at a server serving one client at a time; more are refused
NOISE = 16     # frames that are no message a peer on probation may send, and as many more for each message


def _last(engine):
    """When the peer last moved its connection on (on probation) or sent a valid frame (proven), or connected."""
    last = engine.heard_at if engine.proven() else engine.moved_at
    return engine.since if last is None else last


def expired(engine):
    """Whether its probation is over: the connection goes, newcomer or not."""
    if engine.proven():
        return False
    age = engine.clock() - engine.since
    return age >= PROBATION_MS or age >= SILENCE_MS and engine.heard_at is None


def counts(engine):
    """(frames that are no message: junk, wrong CRCs, too long, wrong MACs, replayed, original frames in a
    session v2; messages) the engine has counted. As a connection begins, noisy()'s since."""
    counters = engine.counters
    return (counters['crc_errors'] + counters['format_errors'] + counters['framing_errors'] +
            counters['oversized'] + counters['mac_errors'] + counters['replayed'] + counters['downgrade'],
            counters['rx_messages'])


def noisy(engine, since=(0, 0)):
    """Whether a peer on probation has sent more than NOISE frames that are no message, and NOISE more for each
    message it sent (a few broken frames injected between a genuine client's cut off nothing), counted from
    since (a server of one client at a time has one engine for all). Four bytes make such a frame and a flood of
    them costs the process its time, needing no secret: the server drops the peer (the host's asyncio one after
    the frame, the others after the read), logged here (noisy_peer)."""
    if engine.proven():
        return False
    noise, messages = counts(engine)
    if noise - since[0] > NOISE * (1 + messages - since[1]):
        engine.note('noisy_peer')
        return True
    return False


def gives_way(engine):
    """Whether the connection makes room for a newcomer who waits."""
    return engine.clock() - _last(engine) >= (IDLE_MS if engine.proven() else PATIENCE_MS)


def must_go(engine, waiting, since=(0, 0)):
    """Whether the connection must go now: its probation is over, it is noisy (counted from since), or it makes
    room for a newcomer who waits (waiting); the reason is logged (silent_peer, noisy_peer, made_room). Each
    server then drops it."""
    if expired(engine):
        engine.note('silent_peer')
        return True
    if noisy(engine, since):
        return True
    if waiting and gives_way(engine):
        engine.note('made_room')
        return True
    return False


def due_ms(engine, waiting):
    """Milliseconds until expired(), or gives_way() when a newcomer waits, may turn true (unless a frame
    comes first); None: not without one."""
    now = engine.clock()
    proven = engine.proven()
    due = None
    if not proven:
        due = engine.since + (PROBATION_MS if engine.heard_at is not None else SILENCE_MS) - now
    if waiting:
        way = (IDLE_MS if proven else PATIENCE_MS) - (now - _last(engine))
        if due is None or way < due:
            due = way
    return None if due is None else max(0, due)


def write_ms(engine, limit_ms):
    """How long a server that blocks on its writes (the host's threaded one) may wait for this peer to take its
    answers: one on probation that reads nothing holds the server, and a newcomer who waits, no longer than a
    stall would (PATIENCE_MS)."""
    return limit_ms if engine.proven() else min(limit_ms, PATIENCE_MS)


def pool(engine):
    """Which of a server's pools a connection counts in, for a server that holds several (the host's asyncio
    one): 'proven'; 'fresh', on probation, within PATIENCE_MS of its connect and no step yet; 'probation', the
    rest. Fresh connections make room only for each other: peers that step through the handshake over and over
    cannot push out a newcomer before its first bytes come, and connects that say nothing push out only
    their own kind."""
    if engine.proven():
        return 'proven'
    if engine.moved_at is None and engine.clock() - engine.since < PATIENCE_MS:
        return 'fresh'
    return 'probation'


def _rank(engine):
    """(on its way, last heard of): a peer on probation that took a step within PATIENCE_MS is on its way."""
    on_its_way = not engine.proven() and engine.moved_at is not None and not gives_way(engine)
    return (on_its_way, _last(engine))


def stalest(engines):
    """Of engines, the first to make room: the one quiet the longest, but a peer on its way through the
    handshake goes after every one that is not (a flood of fresh connections that say nothing must not push
    out a client a round trip from proving itself)."""
    found = None
    for engine in engines:
        if found is None or _rank(engine) < _rank(found):
            found = engine
    return found


def to_drop(engines, limit, newcomer=None):
    """Of a pool of a server's connections (all proven or all on probation, see pool()), the one that goes so that at most
    limit remain, logged (made_room; no_room when the newcomer goes); None while they fit. The stalest goes; but
    a newcomer that just proved itself without a secret (any valid frame does) takes a proven client's place
    only once that one is idle, and while none is, the newcomer goes instead. With a secret an authenticated
    newcomer is trusted as much as those it finds (a board that rebooted and dials in again, its dead
    connection still counted)."""
    if len(engines) <= limit:
        return None
    found = stalest(engines)
    if newcomer is not None and newcomer.secret is None and not gives_way(found):
        newcomer.note('no_room')
        return newcomer
    found.note('made_room')
    return found
