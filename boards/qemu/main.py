"""The qemu board's start: the demo services on the console UART, from config.py and what the launcher set.

The qemu port runs no main.py by itself; the launcher types `import main` at
the raw REPL after setting config values.
"""
import gc
import sys

import config
import sp_micropython.board
from sp_micropython.protocol import serve, serve_until_end

prots = sp_micropython.board.start(config)   # board.start's module leaves the heap
if config.MEM:   # heap figures on the console: the board as started, before the measuring code loads, then per step
    gc.collect()
    sys.stderr.write('mem: start alloc=%d free=%d\n' % (gc.mem_alloc(), gc.mem_free()))
    from sp_micropython.measure import serve_measured as serve
serve_until_end(prots, serve)
