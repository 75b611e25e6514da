"""Random bytes for seeds and nonces: os.urandom, or a source the board supplies, or a weak stand-in with a warning.

sp_common reads no clock, so the stand-in comes from the device runtime
(set_fallback); it is used only while no real source exists, and its first
use calls warn(WEAK_WARNING) once.
"""
try:
    from os import urandom as _source
except ImportError:  # ports without a hardware RNG (e.g. the qemu Cortex-M3 board)
    _source = None
_fallback = None
_warn = None

WEAK_WARNING = ('no hardware random source on this port: seeds and nonces come from a timing-based stand-in, '
                'so the handshake is weaker here (give the board config an ENTROPY function)')


def available():
    """True when a real source is in place (os.urandom or one given to set_source)."""
    return _source is not None


def set_source(source):
    """Installs source(n) -> n random bytes (a board's own RNG) in place of os.urandom."""
    global _source
    _source = source


def set_fallback(source, warn):
    """The stand-in source(n) for a port without a real one; warn(text) is called on its first use."""
    global _fallback, _warn
    _fallback = source
    _warn = warn


def random_bytes(n):
    global _warn
    if _source is not None:
        return _source(n)
    if _fallback is None:
        raise OSError('no random source: set one with sp_common.entropy.set_source()')
    if _warn is not None:
        warn, _warn = _warn, None
        warn(WEAK_WARNING)
    return _fallback(n)
