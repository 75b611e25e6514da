"""serve() for a board's MEM setting (SP_MEM=1 on the unix board): heap figures on stderr, start and per step."""
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
