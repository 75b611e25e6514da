"""Session v2 (docs/session-v2.md): the offer and answer that settle a connection's wire, and the keys of its MACs.

Loaded when a connection negotiates; a side with session_v2=False never
loads it and keeps the original wire byte for byte.
"""
from binascii import hexlify, unhexlify

from . import load
from .const import DID_SESSION, SID_SESSION_REQUEST, SID_SESSION_RESPONSE, STATUS_OKAY, STATUS_OPERATION_NOT_PERMITTED

_LABEL = b'sp-dual v2'


def _nonce(engine):
    return hexlify(engine.random_bytes(32)).decode()


def _terms(data):
    """(nonce, mac) of a valid offer or answer, else None."""
    if not isinstance(data, dict) or data.get('v') != 2:
        return None
    nonce = data.get('nonce')
    mac = data.get('mac')
    if not (isinstance(nonce, str) and len(nonce) == 64 and (mac is True or mac is False)):
        return None
    try:
        unhexlify(nonce)   # hex digits only: a parse as a number would also take '0x', signs, spaces, '_'
    except ValueError:
        return None
    return nonce, mac


def _terms_of(engine, nonce):
    return {'v': 2, 'nonce': nonce, 'mac': engine.secret is not None}


def offer(engine):
    """Client: the session request, right after the channel name; the client says nothing else until it settles."""
    engine.nonces = _nonce(engine)   # the nonces known so far: the client's own, until the answer brings the server's
    engine.negotiating_since = engine.clock() if engine.clock is not None else 0
    engine.send_msg(SID_SESSION_REQUEST, DID_SESSION, _terms_of(engine, engine.nonces))


def on_offer(engine, status, data):
    """Server: answers a valid offer with its own nonce (on the original wire) and speaks v2 from then on."""
    terms = _terms(data)
    if terms is None:
        engine.send_msg(SID_SESSION_RESPONSE, DID_SESSION, None, STATUS_OPERATION_NOT_PERMITTED)
        engine.settle_original()
        return
    nonce = _nonce(engine)
    engine.send_msg(SID_SESSION_RESPONSE, DID_SESSION, _terms_of(engine, nonce))
    _start(engine, terms[0], nonce, terms[1])


def on_answer(engine, status, data):
    """Client: a valid answer starts v2; any other answer leaves the connection on the original wire.

    An answer after the wait ran out comes too late: the client has settled on
    the original wire, and its next frame tells the server so (sp_common.stray.original).
    """
    if engine.nonces is None:
        engine.drop('out_of_turn', SID_SESSION_RESPONSE, DID_SESSION)
        return
    terms = _terms(data) if status == STATUS_OKAY else None
    if terms is None:
        engine.settle_original()
        return
    _start(engine, engine.nonces, terms[0], terms[1])
    engine.on_settled()


def _start(engine, client_nonce, server_nonce, peer_mac):
    """v2 from the next frame on: counters from 1, and MACs when both sides have a secret."""
    engine.restart_seq()
    engine.nonces = client_nonce + server_nonce
    engine.tx_mac = engine.rx_mac = None
    if engine.secret is not None and peer_mac:
        Hmac = load('sp_common.auth').Hmac   # only with MACs: a board without a secret never loads it
        k = Hmac(Hmac(engine.secret.encode()).digest(_LABEL, engine.nonces.encode()))
        c2s = Hmac(k.digest(b'c2s'))
        s2c = Hmac(k.digest(b's2c'))
        engine.tx_mac, engine.rx_mac = (c2s, s2c) if engine.is_client else (s2c, c2s)
    engine.move('v2' if engine.rx_mac is None else 'v2_macs')
