"""serve() for a board's MEM setting (SP_MEM=1 on the unix board): heap figures on stderr, start and per step."""
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
    gc.collect()
    sys.stderr.write('mem: start alloc=%d free=%d\n' % (gc.mem_alloc(), gc.mem_free()))
    serve(*prots, until=until, step=_measured)
