"""serve() for SP_MEM=1: heap figures on stderr, after start and for every poll step that did work."""
import gc
import sys
import time


def serve_measured(*prots, until):
    gc.collect()
    sys.stderr.write('mem: start alloc=%d free=%d\n' % (gc.mem_alloc(), gc.mem_free()))
    while not until():
        gc.collect()
        before = gc.mem_alloc()
        busy = False
        for prot in prots:
            if prot.poll():
                busy = True
        if busy:
            sys.stderr.write('mem: step +%d alloc=%d\n' % (gc.mem_alloc() - before, gc.mem_alloc()))
        else:
            time.sleep_ms(2)
