"""The virtual board: the device runtime on the MicroPython unix port.

    micropython -X heapsize=128k boards/unix/main.py [--key=value ...]

Serves the demo services (sp_micropython.demo) on stdin/stdout (put them on a
pty in raw mode: that is the board's USB serial console) and on a loopback
TCP port, at once. Every setting of config.py can be overridden from the
command line (--tcp-port=57322) or the environment (SP_TCP_PORT=57322),
command line first; see config.py for what they mean. One more, SP_MEM=1,
prints heap figures to stderr: after start, and the bytes allocated by every
poll step that did work.

The board exits when its stdin is closed (end of input on the pty or pipe).
"""
import sys

_parts = sys.argv[0].split('/')
sys.path.append('/'.join(_parts[:-3]) or '.')   # the repository root (last: MICROPYPATH, e.g. .mpy builds, wins)

import config  # noqa: E402
import sp_micropython.board  # noqa: E402
from sp_micropython.protocol import serve, serve_until_end  # noqa: E402

import overrides  # noqa: E402

overrides.apply()
mem = overrides.knob('MEM') == '1'
del overrides, sys.modules['overrides']   # start-up code leaves the heap: this module, and board.start's
prots = sp_micropython.board.start(config)   # board.start's module leaves the heap
if mem:   # heap figures on stderr: the board as started, before the measuring code loads, then per step
    import gc
    gc.collect()
    sys.stderr.write('mem: start alloc=%d free=%d\n' % (gc.mem_alloc(), gc.mem_free()))
    from sp_micropython.measure import serve_measured as serve   # noqa: F811
serve_until_end(prots, serve)
