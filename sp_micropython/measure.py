"""serve() for a board's MEM setting (SP_MEM=1 on the unix board): the heap figures of each step on stderr.

The board's main.py writes the start figure before this module loads.
"""
import gc
import sys

from .protocol import poll_all, serve


def _measured(prots):
    gc.collect()
    before = gc.mem_alloc()
    busy = poll_all(prots)
    if busy:
        sys.stderr.write('mem: step +%d alloc=%d\n' % (gc.mem_alloc() - before, gc.mem_alloc()))
    return busy


def serve_measured(*prots, until):
    serve(*prots, until=until, step=_measured)
