"""The seed/key handshake's steps, loaded on the first handshake message (a board without a secret never needs them).

The engine's table (engine._HANDSHAKE) decides who may send what, when;
these only carry a step out.
"""
from . import const as c
from .auth import equal, hmac_sha256_hex, new_seed

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


def seed_request(engine, status, data):
    if engine.secret is None or hold_ms(engine):
        engine.note(c.WARNING, 'seed refused: no secret here' if engine.secret is None else 'seed refused: too many wrong keys')
        engine.send_msg(c.SID_AUTH_RESPONSE, c.DID_AUTH_SEED, None, c.STATUS_OPERATION_NOT_PERMITTED)
        return
    engine.seed = new_seed(engine.random_bytes)
    engine.auth_state = c.AUTH_STATE_SEED_TRANSFERRED
    engine.send_msg(c.SID_AUTH_RESPONSE, c.DID_AUTH_SEED, engine.seed)


def seed(engine, status, seed):
    if engine.secret is None or status != c.STATUS_OKAY or not isinstance(seed, str) or len(seed) != 64:
        engine.auth_state = c.AUTH_STATE_UNTRUSTED_CONNECTION
        engine.note(c.WARNING, 'authentification failed: no seed')
        return
    engine.send_msg(c.SID_AUTH_REQUEST, c.DID_AUTH_KEY, hmac_sha256_hex(engine.secret, engine.challenge(seed)))
    engine.auth_state = c.AUTH_STATE_KEY_TRANSFERRED


def key(engine, status, key):
    seed = engine.seed
    engine.seed = None
    ok = seed is not None and isinstance(key, str) and not engine.mac_required() and \
        equal(key, hmac_sha256_hex(engine.secret, engine.challenge(seed)))
    engine.auth_state = c.AUTH_STATE_TRUSTED_CONNECTION if ok else c.AUTH_STATE_UNTRUSTED_CONNECTION
    if not ok:
        engine.wrong_keys += 1
        engine.last_wrong_key = engine.clock() if engine.clock is not None else 0
        engine.counters['wrong_keys'] += 1
        if engine.wrong_keys <= FREE_WRONG_KEYS:
            engine.note(c.WARNING, 'authentification failed: wrong key')
        elif engine.wrong_keys == FREE_WRONG_KEYS + 1:
            engine.note(c.WARNING, 'authentification failed: repeated wrong keys, seeds held back from now on')
    engine.send_msg(c.SID_AUTH_RESPONSE, c.DID_AUTH_KEY, ok)


def key_result(engine, status, result):
    ok = result is True and status == c.STATUS_OKAY and not engine.mac_required()
    engine.auth_state = c.AUTH_STATE_TRUSTED_CONNECTION if ok else c.AUTH_STATE_UNTRUSTED_CONNECTION
    if not ok:
        engine.note(c.WARNING, 'authentification failed: key rejected')
