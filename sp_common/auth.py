"""HMAC-SHA256 built on hashlib (MicroPython has no hmac module), for the seed/key handshake and session v2."""
import hashlib
from binascii import hexlify


class Hmac:
    """HMAC-SHA256 under one key; the padded keys are made once, for a MAC on every frame."""

    def __init__(self, key):
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        key = key + bytes(64 - len(key))   # padded to SHA-256's block size
        self._inner = bytes(b ^ 0x36 for b in key)
        self._outer = bytes(b ^ 0x5C for b in key)

    def digest(self, *pieces):
        """The HMAC of the pieces (bytes or memoryviews) joined."""
        inner = hashlib.sha256(self._inner)
        for piece in pieces:
            inner.update(piece)
        outer = hashlib.sha256(self._outer)
        outer.update(inner.digest())
        return outer.digest()

    def check(self, tag, *pieces):
        """Whether tag (the first 8 bytes of the HMAC, raw or as 16 hex digits) is the pieces', in constant time."""
        mine = self.digest(*pieces)[:8]
        return equal(hexlify(mine) if len(tag) == 16 else mine, tag)


def hmac_sha256_hex(secret, message):
    """Lowercase hex HMAC-SHA256; secret and message are str, taken as UTF-8."""
    return hexlify(Hmac(secret.encode()).digest(message.encode())).decode()


def equal(a, b):
    """Compares two str or bytes in time independent of where they differ (two bytes: allocating nothing)."""
    if isinstance(a, str):
        a = a.encode()
    if isinstance(b, str):
        b = b.encode()
    diff = len(a) ^ len(b)
    if diff:
        b = a
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0


def new_seed(random_bytes):
    return hexlify(random_bytes(32)).decode()
