"""A board's protocol object keeps room in its attribute table (docs/benchmarks.md, "Instructions, not time").

MicroPython looks up a method in the object's own attribute table before its
class's, and a lookup that misses probes up to the table's first empty slot:
in a full table, every slot, on every method call. The table grows only when
it is full, to the next of these sizes (py/map.c), so an object whose count of
attributes is one of them has no empty slot.
"""
import os
import subprocess

from conftest import ROOT

FULL = (2, 4, 6, 8, 10, 12, 17, 23, 29, 37, 47, 59, 73, 97, 127)

COUNTS = """
from sp_micropython.protocol import Stream, pure_json_protocol
from sp_micropython.demo import add_demo_services

class Console(Stream):   # a serial line (the USB console, a UART)
    def readinto(self, buf):
        return 0

    def write(self, data):
        pass

class Tcp(Console):   # a link with connects of its own
    CONNECTS = True

for stream in (Console(), Tcp()):
    prot = pure_json_protocol(stream, channel_name='board')
    add_demo_services(prot)
    prot.connection_made()
    prot.poll()
    print(len(prot.__dict__))
"""


def test_a_board_protocols_attribute_table_is_never_full():
    out = subprocess.run(['micropython', '-c', COUNTS], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, MICROPYPATH=ROOT))
    counts = [int(n) for n in out.stdout.split()]
    assert len(counts) == 2, out.stderr
    assert not set(counts) & set(FULL), counts
