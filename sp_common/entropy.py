"""Random bytes for seeds and nonces: os.urandom where the port has it, else a source the board supplies.

On a port with neither, sp_micropython.board installs a weak stand-in that
warns on first use (sp_micropython.weak_random); sp_common reads no clock.
"""
try:
    from os import urandom as _source
except ImportError:  # ports without a hardware RNG (e.g. the qemu Cortex-M3 board)
    _source = None


def available():
    """True once there is a source: os.urandom or one given to set_source()."""
    return _source is not None


def set_source(source):
    """Installs source(n) -> n random bytes (a board's own RNG) in place of os.urandom."""
    global _source
    _source = source


def random_bytes(n):
    if _source is None:
        raise OSError('no random source: set one with sp_common.entropy.set_source()')
    return _source(n)
