"""Seed/key primitives: HMAC-SHA256 built on hashlib (MicroPython has no hmac module)."""
import hashlib
from binascii import hexlify

def hmac_sha256_hex(secret, message):
    """Lowercase hex HMAC-SHA256; secret and message are str, taken as UTF-8."""
    key = secret.encode()
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key + bytes(64 - len(key))   # padded to SHA-256's block size
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    inner.update(message.encode())
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    return hexlify(outer.digest()).decode()


def equal(a, b):
    """Compares two str in time independent of where they differ."""
    a = a.encode()
    b = b.encode()
    diff = len(a) ^ len(b)
    for x, y in zip(a, b if len(a) == len(b) else a):
        diff |= x ^ y
    return diff == 0


def new_seed(random_bytes):
    return hexlify(random_bytes(32)).decode()
