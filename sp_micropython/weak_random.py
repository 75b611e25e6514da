"""The stand-in random source for a port without a hardware RNG: weak, and it says so once.

Each call hashes the previous state with the microsecond and CPU tick
counters and the heap's state at that moment: the timing of the peer's
messages is what varies. Someone who can watch or replay that timing, or
reset the board, can guess the output; a board with any real noise source
should give its config an ENTROPY function instead.
"""
import gc
import hashlib
import time

from sp_common.entropy import set_source

_state = [b'sp weak random', None]   # the hash chain; the log level of the warning not yet printed


def install(level=30):
    """Makes this the source of sp_common.entropy; its first use prints a warning on a PrintLog at level.

    The PrintLog loads only then; level None: no warning.
    """
    _state[1] = level
    set_source(random_bytes)


def random_bytes(n):
    if _state[1] is not None and _state[1] <= 30:   # a warning, at the log level given
        from .printlog import PrintLog
        PrintLog(_state[1]).log(30, 'no hardware random source on this port: seeds and nonces come from a '
                                    'timing-based stand-in, so the handshake is weaker here (give the board '
                                    'config an ENTROPY function)')
    _state[1] = None
    h = hashlib.sha256(_state[0])
    h.update(b'%d %d %d' % (time.ticks_us(), time.ticks_cpu(), gc.mem_free()))
    state = h.digest()
    _state[0] = state
    out = b''
    while len(out) < n:
        out += hashlib.sha256(state + bytes((len(out) & 255,))).digest()
    return out[:n]
