"""A board serving its console gives it back on a Ctrl-C between frames, whichever loop serves it.

The device is the MicroPython unix port on a raw pty, as the virtual board is; what is tested there
is the loop's side (serve_forever() and the asyncio task return once the console is handed back); the
console's byte-by-byte reads are tested on the emulated Pico (tests/test_pico.py).
"""
import contextlib
import os
import select
import subprocess
import time
import tty

import pytest

from conftest import ROOT
from sp_common import frame, pure_json

BOARD = '''
import sys
import sp_micropython as sp
from sp_micropython.demo import add_demo_services
prot = sp.pure_json_protocol(sp.StdioStream(repl=True), session_v2=False)
add_demo_services(prot)
import time
prot.register_callback(30, 7, lambda msg: (time.sleep_ms(700), (0, msg.get_data()))[1])   # a slow service
if sys.argv[1] == 'asyncio':
    import asyncio
    asyncio.run(prot.run())
else:
    prot.serve_forever()
sys.stderr.write('back at the REPL\\n')
'''


def read_until(fd, mark, timeout=10):
    got = b''
    deadline = time.monotonic() + timeout
    while mark not in got and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            got += os.read(fd, 4096)
    return got


@contextlib.contextmanager
def _board(loop='serve_forever', code=BOARD):
    """(the pty's master end, the process) of code run on a raw pty, killed at the end if it still runs."""
    master, slave = os.openpty()
    tty.setraw(slave)
    proc = subprocess.Popen(['micropython', '-c', code, loop], stdin=slave, stdout=slave, stderr=subprocess.PIPE,
                            cwd=ROOT, env=dict(os.environ, MICROPYPATH=ROOT + ':.frozen'))   # asyncio is frozen in
    os.close(slave)
    try:
        yield master, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)


def _handed_back(master, proc):
    os.write(master, b'\r\x03')
    assert proc.wait(10) == 0
    assert 'back at the REPL' in proc.stderr.read().decode()


@pytest.mark.parametrize('loop', ['serve_forever', 'asyncio'])
def test_a_ctrl_c_between_frames_ends_the_loop(loop, tmp_path):
    with _board(loop) as (master, proc):
        os.write(master, frame(*pure_json.pieces(30, 0, 0, '\x03 inside')))   # a 0x03 in a frame is data
        assert b'"data":= "\\u0003 inside"' in read_until(master, b'inside"}')   # as framed: ':' escaped
        assert proc.poll() is None
        _handed_back(master, proc)


@pytest.mark.parametrize('unfinished', [b':<{"data_id":= 0, "serv', b':<abc:xdef'], ids=['cut', 'bad escape'])
def test_a_frame_left_unfinished_holds_the_console_no_longer_than_a_pause(unfinished):
    """A host that died in the middle of a frame (or a bad escape, whose frame's rest passes up to its ':>'): a
    Ctrl-C that comes after a pause of 500 ms is between frames again, where it was frame data until a ':>' came,
    and mpremote could never take the REPL back. Within the frame's own bytes it stays data."""
    with _board() as (master, proc):
        os.write(master, frame(*pure_json.pieces(30, 0, 0, 'served')))
        assert b'served' in read_until(master, b'served"')
        os.write(master, unfinished + b'\x03')
        time.sleep(0.7)
        assert proc.poll() is None
        _handed_back(master, proc)


def test_a_board_busy_in_a_callback_gives_up_no_frame_of_a_host_that_kept_sending():
    """Two requests in one write, the first to a service that takes 700 ms: the board reads the second's first
    bytes with the first, works, then reads the rest. Its time in the callback is not the host's silence: both
    are answered (a silence counted from the board's last read gave the second up)."""
    with _board() as (master, proc):
        os.write(master, frame(*pure_json.pieces(30, 7, 0, 'slow')) + frame(*pure_json.pieces(30, 0, 0, 'after')))
        got = read_until(master, b'"after"')
        assert b'"slow"' in got and b'"after"' in got, got


def test_the_readme_board_code_serves_and_gives_the_console_back():
    """Its code, copied onto a Pico as main.py: served without repl=True, the console could never be taken back
    (mpremote could not enter the raw REPL) short of erasing the board's flash."""
    with open(os.path.join(ROOT, 'README.md')) as f:
        readme = f.read()
    code = readme.split('## Quick start: board code', 1)[1].split('```python\n', 1)[1].split('```', 1)[0]
    with _board(code=code + "import sys; sys.stderr.write('back at the REPL\\n')\n") as (master, proc):
        os.write(master, frame(*pure_json.pieces(30, 0, 0, 'from the readme')))
        assert b'from the readme' in read_until(master, b'from the readme"')
        _handed_back(master, proc)
