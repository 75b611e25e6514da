"""The seed/key handshake's steps, loaded on the first handshake message (a board without a secret never needs them).

The engine's table (engine._HANDSHAKE) decides who may send what, when;
these only carry a step out.
"""
from .auth import equal, hmac_sha256_hex, new_seed
from .codec import is_short_ascii
from .const import (
    AUTH_STATE_KEY_TRANSFERRED, AUTH_STATE_SEED_TRANSFERRED, AUTH_STATE_TRUSTED_CONNECTION,
    AUTH_STATE_UNTRUSTED_CONNECTION, DID_AUTH_KEY, DID_AUTH_SEED, SID_AUTH_REQUEST, SID_AUTH_RESPONSE, STATUS_OKAY,
    STATUS_OPERATION_NOT_PERMITTED)

# A server that speaks session v2 begins its seeds on the original wire so: a client that speaks v2 and finds the
# mark knows that both sides were moved onto the original wire on the way (its offer or the answer taken away, or
# lost), where no frame is authenticated, and signs nothing. The mark is signed with the seed: no one on the way
# can take it off. An original client signs any seed; an original server's begins so once in 2**64.
V2_SEED_MARK = '73702d6475616c32'   # 'sp-dual2' in hex
FREE_WRONG_KEYS = 3       # wrong keys per connection before seeds are held back
MAX_KEY_HOLD_MS = 60000


def hold_ms(engine):
    """How long seeds are still held back after repeated wrong keys (0: not at all; no clock: for good)."""
    extra = engine.wrong_keys - FREE_WRONG_KEYS
    if extra < 0:
        return 0
    if engine.clock is None:
        return 1
    hold = min(1000 << min(extra, 6), MAX_KEY_HOLD_MS) - (engine.clock() - engine.last_wrong_key)
    return hold if hold > 0 else 0


def _signed(engine, seed):
    """The key for seed: it signs the seed, and in v2 both nonces too, so that no peer picks all of it."""
    return hmac_sha256_hex(engine.secret, seed if engine.session != 2 else seed + engine.nonces)


def _macs_missing(engine):
    """In v2, trust needs MACs: a negotiation stripped of them trusts no one."""
    return engine.session == 2 and engine.rx_mac is None


def seed_request(engine, status, data):
    if engine.secret is None or hold_ms(engine):
        engine.note('no_secret' if engine.secret is None else 'held')
        engine.send_msg(SID_AUTH_RESPONSE, DID_AUTH_SEED, None, STATUS_OPERATION_NOT_PERMITTED)
        return
    engine.seed = new_seed(engine.random_bytes)
    if engine.wire == 'original' and engine.session_v2:
        engine.seed = V2_SEED_MARK + engine.seed[len(V2_SEED_MARK):]
    engine.auth_state = AUTH_STATE_SEED_TRANSFERRED
    engine.send_msg(SID_AUTH_RESPONSE, DID_AUTH_SEED, engine.seed)


def seed(engine, status, seed):
    if engine.secret is None or status != STATUS_OKAY or not is_short_ascii(seed, 64) or len(seed) != 64:
        engine.auth_state = AUTH_STATE_UNTRUSTED_CONNECTION
        engine.note('no_seed')
        return
    if engine.wire == 'original' and engine.session_v2 and seed.startswith(V2_SEED_MARK):
        engine.auth_state = AUTH_STATE_UNTRUSTED_CONNECTION
        engine.counters['downgrade'] += 1
        engine.note('forced_original')
        if not engine.connects:   # a serial line starts over (a lost answer); a link with connects stays untrusted
            engine.connection_made()
        return
    engine.send_msg(SID_AUTH_REQUEST, DID_AUTH_KEY, _signed(engine, seed))
    engine.auth_state = AUTH_STATE_KEY_TRANSFERRED


def _settle(engine, ok):
    """The handshake's outcome. A connection once trusted stays proven (sp_common.admission) while it
    authenticates again: the seed request takes its trust until the new key is judged."""
    engine.auth_state = AUTH_STATE_TRUSTED_CONNECTION if ok else AUTH_STATE_UNTRUSTED_CONNECTION
    if ok:
        engine.was_trusted = True


def key(engine, status, key):
    seed = engine.seed
    engine.seed = None
    ok = seed is not None and is_short_ascii(key, 64) and not _macs_missing(engine) and \
        equal(key, _signed(engine, seed))
    _settle(engine, ok)
    if ok:   # the secret proven: the count starts over (a serial line's connection is the board's uptime)
        engine.wrong_keys = 0
    else:
        engine.wrong_keys += 1
        engine.last_wrong_key = engine.clock() if engine.clock is not None else 0
        if engine.wrong_keys <= FREE_WRONG_KEYS:
            engine.drop('wrong_keys')
        else:
            engine.counters['wrong_keys'] += 1
        if engine.wrong_keys == FREE_WRONG_KEYS:   # the hold starts with this one (hold_ms)
            engine.note('held_from_now')
    engine.send_msg(SID_AUTH_RESPONSE, DID_AUTH_KEY, ok)


def trust_lost(engine):
    """An answer of the peer's said authentification is required: if this side counted itself trusted, the peer
    has forgotten it (a board that reset behind an open port). The state says so, and with auto_auth the
    handshake runs again."""
    if engine.is_trusted():
        engine.auth_state = AUTH_STATE_UNTRUSTED_CONNECTION
        if engine.auto_auth and engine.secret is not None:
            engine.start_auth()


def key_result(engine, status, result):
    ok = result is True and status == STATUS_OKAY and not _macs_missing(engine)
    _settle(engine, ok)
    if not ok:
        engine.note('rejected')
