"""Random bytes for seeds and nonces: os.urandom where the port has it, else a source the board supplies."""
try:
    from os import urandom as _source
except ImportError:  # ports without a hardware RNG (e.g. the qemu Cortex-M3 board)
    _source = None


def set_source(source):
    """Installs source(n) -> n random bytes (a board's own RNG) in place of os.urandom."""
    global _source
    _source = source


def random_bytes(n):
    if _source is None:
        raise OSError('no random source: set one with sp_common.entropy.set_source()')
    return _source(n)
