"""The stand-in random source for a port without a hardware RNG: weak, and said so (see sp_common.entropy).

Each call hashes the previous state with the microsecond and CPU tick
counters and the heap's state at that moment: the timing of the peer's
messages is what varies. Someone who can watch or replay that timing, or
reset the board, can guess the output; a board with any real noise source
should give the config an ENTROPY function instead.
"""
import gc
import hashlib
import time

_state = [b'sp weak random']


def random_bytes(n):
    h = hashlib.sha256(_state[0])
    h.update(b'%d %d %d' % (time.ticks_us(), time.ticks_cpu(), gc.mem_free()))
    state = h.digest()
    _state[0] = state
    out = b''
    while len(out) < n:
        out += hashlib.sha256(state + bytes((len(out) & 255,))).digest()
    return out[:n]
