"""Device heap figures on the MicroPython unix port or the qemu board, next to a baseline measured in the same run.

Builds sp_common and sp_micropython to .mpy (as sp deploy --mpy does),
starts boards/unix/main.py with SP_MEM=1 and its console on a pty, sends
requests from the host and reads the heap the device reports: in use after
start, and allocated while serving each request (garbage included; the
collector takes it back). The baseline is the bare interpreter's heap in use.
With --qemu the board is the 32 KiB qemu board (Cortex-M3, 32-bit), the code
in a ROMFS image (tools.qemu_board), or with --frozen frozen into the firmware
(tools.frozen_firmware), started as its main.py starts it (QEMU_START).

    python3 -m benchmarks.bench_device [--heapsize 76k] [--max-frame 1024]
    python3 -m benchmarks.bench_device --qemu [--frozen] [--max-frame 1024]
    ... [--wire original] [--secret S]
    python3 -m benchmarks.bench_device --ways
    python3 -m benchmarks.bench_device --names

--ways compares the three ways code gets onto a board on the qemu board: the
heap taken by importing the packages and building the board's protocols,
with the code in ROMFS (run in place, as frozen code is) and as .mpy or .py
files served by `mpremote mount` (loaded into the heap, as from a board's
filesystem).

--names counts the names (qstrs) the qemu board's heap holds after start and
once the session and handshake code has loaded: past 300 a fifth qstr pool
takes 2.3 KB.
"""
import argparse
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time

from sp_common import Engine, pure_json
from sp_common.const import SID_EXECUTE_REQUEST, SID_READ_REQUEST, SID_WRITE_REQUEST
from sp_tool.deploy import build_romfs, compile_mpy
from sp_tool.files import device_files
from sp_tool.virtual_board import micropython_command
from tools.frozen_firmware import frozen_firmware
from tools.qemu_board import QemuBoard
from tools.unix_board import UnixBoard

REQUESTS = (
    ('read asc_time', SID_READ_REQUEST, 0, None),
    ('write value', SID_WRITE_REQUEST, 1, {'n': 42, 'list': [1, 2.5, 'x']}),
    ('echo 16 B', SID_EXECUTE_REQUEST, 0, 'sixteen bytes :)'),
    ('echo 4 KiB', SID_EXECUTE_REQUEST, 0, ''.join(chr(32 + i % 90) for i in range(4096))),
)


def build(out_dir):
    built = compile_mpy(device_files('unix'), out_dir, where=out_dir + '/')
    return sum(os.path.getsize(local) for local, remote in built if remote.endswith('.mpy'))


def baseline(heapsize):
    code = 'import gc; gc.collect(); print(gc.mem_alloc())'
    out = subprocess.run([micropython_command(), '-X', 'heapsize=' + heapsize, '-c', code], capture_output=True, text=True,
                         check=True)
    return int(out.stdout)


class Measured:
    """The host side of a board that reports its heap figures: a bare engine on the board's console, self.master.

    The board prints its heap figures where stderr() reads them.
    """

    def pump(self, done, timeout=10):
        deadline = time.monotonic() + timeout
        while not done():
            os.write(self.master, self.engine.data_to_send())   # with a secret the handshake answers
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError('the board did not answer:\n' + self.stderr())
            if select.select([self.master], [], [], 0.05)[0]:
                self.engine.feed(os.read(self.master, 65536))
        return True

    def steps(self):
        return [int(n) for n in re.findall(r'mem: step \+(\d+)', self.stderr())]

    def request(self, sid, did, data):
        """Bytes the device allocated while serving it, after the previous request's steps are in."""
        time.sleep(0.1)
        seen = len(self.steps())
        self.engine.send_msg(sid, did, data)
        self.pump(lambda: self.engine.pop_received(sid + 1, did) is not None)
        time.sleep(0.1)
        return sum(self.steps()[seen:])


class Board(Measured, UnixBoard):
    """The unix board with SP_MEM=1; the host side is the pty's master end."""

    def __init__(self, mpy_dir, heapsize, max_frame, secret):
        UnixBoard.__init__(self, heapsize, mpy_dir, mem=1, tcp_port=0, max_frame=max_frame,
                           **({'secret': secret} if secret else {}))
        self.engine = Engine(True, codec=pure_json, channel_name='bench', secret=secret, auto_auth=True)


# The qemu board's main.py, in three pastes: its start, the start figure, then its loop with the figures
# of every step (sp_micropython.measure). A paste is compiled before it runs, so the measuring code's
# names reach the heap only after the start figure.
QEMU_START = """import sp_micropython.board
from sp_micropython.protocol import serve_until_end
prots = sp_micropython.board.start(config)
"""
QEMU_FIGURE = """gc.collect()
print('mem: start alloc=%d free=%d' % (gc.mem_alloc(), gc.mem_free()))
"""
QEMU_LOOP = """from sp_micropython.measure import serve_measured
serve_until_end(prots, serve_measured)
"""


class QemuMemBoard(Measured, QemuBoard):
    """The 32 KiB qemu board started for its heap figures (QEMU_START).

    The host side is its port; the figures come from its console log.
    """

    def __init__(self, image, max_frame, secret, elf=None):
        QemuBoard.__init__(self, image, '32k', elf=elf)
        self.master = None
        try:
            self.exec('import gc\ngc.collect()\nprint("bare alloc=%d" % gc.mem_alloc())\n')
            self.start(QEMU_START, max_frame=max_frame, secret=secret)
            self.exec(QEMU_FIGURE)
            self.exec(QEMU_LOOP)
            self.master = os.open(self.port, os.O_RDWR | os.O_NOCTTY)
            self.engine = Engine(True, codec=pure_json, channel_name='bench', secret=secret, auto_auth=True)
        except BaseException:
            self.stop()
            raise

    def stderr(self):
        return self.output().decode(errors='replace')

    def baseline(self):
        return int(re.search(r'bare alloc=(\d+)', self.stderr()).group(1))

    def stop(self):
        if self.master is not None:
            os.close(self.master)
            self.master = None
        QemuBoard.stop(self)



# Runs on the board: what importing the packages and building the protocols costs.
CODE_AND_START = """import gc
gc.collect()
b = gc.mem_alloc()
import config
from sp_micropython.board import make_protocols
prots = make_protocols(config)
gc.collect()
print('code+start %d' % (gc.mem_alloc() - b))
prots[0].close()
"""


def stage(files, folder):
    for local, remote in files:
        target = os.path.join(folder, remote)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(local, target)
    return folder


def code_and_start(image, heap, mount=None):
    """The figure from one boot; with mount, the code comes from that host folder instead of the image."""
    with QemuBoard(image, heap) as board:
        if mount is None:
            board.exec(CODE_AND_START)
            board.wait_output(b'code+start ', 30)
            time.sleep(0.3)
            out = board.output().decode(errors='replace')
        else:
            out = subprocess.run([sys.executable, '-m', 'mpremote', 'connect', board.port, 'mount', '-l', mount,
                                  'exec', 'import sys\nsys.path.insert(0, "/remote")\n' + CODE_AND_START],
                                 capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'code\+start (\d+)', out)
    return '%d B' % int(found.group(1)) if found else 'does not fit (MemoryError)' if 'MemoryError' in out else '?'


# Run on the board around QEMU_START: the names (qstrs) its heap holds, bare, after start, and once a
# connection has loaded the session and handshake code (names stay interned for good).
NAMES_BARE = """import gc
import micropython
micropython.qstr_info()
"""
NAMES_STARTED = """micropython.qstr_info()
gc.collect()
micropython.mem_info(1)
"""
NAMES_SESSION = """from sp_common import auth, handshake, session
micropython.qstr_info()
print('names done')
"""


def names(tmp):
    image = build_romfs(device_files('qemu'), os.path.join(tmp, 'sp.romfs'))
    with QemuBoard(image, '32k') as board:
        board.exec(NAMES_BARE)
        board.start(QEMU_START)
        board.exec(NAMES_STARTED)
        board.exec(NAMES_SESSION)
        board.wait_output(b'names done', 30)
        out = board.output().decode(errors='replace')
    counts = re.findall(r'n_qstr=(\d+)', out)
    print('names (qstrs) in the heap of the qemu board, code in ROMFS; a fifth pool of 320 takes 2.3 KB past 300')
    print('| when | names |')
    print('|---|---:|')
    for when, count in zip(('bare interpreter at its REPL (baseline)', 'board after start',
                            'with the session and handshake code loaded'), counts):
        print('| %s | %s |' % (when, count))
    print('heap of the started board by kind of block (micropython.mem_info(1): 16-byte blocks)')
    print('| kind | allocations | bytes |')
    print('|---|---:|---:|')
    for kind, (n, size) in heap_map(out).items():
        print('| %s | %d | %d B |' % (KINDS.get(kind, kind), n, size))


KINDS = {'h': 'other (qstr pools, buffers, dict tables, code tables)', 'B': 'function objects',
         'S': 'str and bytes', 'T': 'tuples', 'D': 'dicts', 'L': 'lists', 'M': 'modules', 'A': 'bytearrays'}


def heap_map(out):
    """{kind letter: (allocations, bytes)} from mem_info(1)'s block map: a letter heads an allocation, '=' goes on."""
    cells = ''.join(line[10:] for line in out.splitlines() if re.match(r'[0-9a-f]{8}: ', line))
    found = {}
    for run in re.finditer(r'([^.=])(=*)', cells):
        n, size = found.get(run.group(1), (0, 0))
        found[run.group(1)] = (n + 1, size + 16 * (1 + len(run.group(2))))
    return dict(sorted(found.items(), key=lambda item: -item[1][1]))


def ways(tmp):
    files = device_files('qemu')
    image = build_romfs(files, os.path.join(tmp, 'sp.romfs'))
    bare = build_romfs([(files[-1][0], 'unused.py')], os.path.join(tmp, 'bare.romfs'))
    mpy = stage(compile_mpy(files, os.path.join(tmp, 'mpy')), os.path.join(tmp, 'mpy-stage'))
    py = stage(files, os.path.join(tmp, 'py'))
    print('heap taken by the code and the started board (demo services, 1 KiB frames), qemu board (Cortex-M3)')
    print('| code | 140 KiB heap | 32 KiB heap |')
    print('|---|---:|---:|')
    for name, image_, mount in (('ROMFS image (run in place)', image, None), ('.mpy files', bare, mpy),
                                ('.py files', bare, py)):
        print('| %s | %s | %s |' % (name, code_and_start(image_, '140k', mount), code_and_start(image_, '32k', mount)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--heapsize', default='76k', help='micropython -X heapsize (default 76k)')
    ap.add_argument('--max-frame', type=int, default=1024, help='the board\'s frame cap (default 1024; 6144 for '
                    'the 4 KiB echo)')
    ap.add_argument('--qemu', action='store_true', help='the 32 KiB qemu board, code in ROMFS (needs its firmware)')
    ap.add_argument('--frozen', action='store_true', help='with --qemu: the code frozen into the firmware '
                    '(tools.frozen_firmware builds it) instead of ROMFS')
    ap.add_argument('--ways', action='store_true', help='qemu board: heap of the code as ROMFS, .mpy and .py files')
    ap.add_argument('--names', action='store_true', help='qemu board: the names (qstrs) its heap holds')
    ap.add_argument('--wire', choices=('v2', 'original'), default='v2',
                    help='the host offers session v2 (default) or speaks the original wire')
    ap.add_argument('--secret', help='a secret on both sides: the handshake, and in v2 a MAC on every frame')
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as mpy_dir:
        if args.ways:
            ways(mpy_dir)
            return 0
        if args.names:
            names(mpy_dir)
            return 0
        if args.qemu and args.frozen:
            size = None
            board = QemuMemBoard(None, args.max_frame, args.secret, elf=frozen_firmware('32k'))
            base = board.baseline()
        elif args.qemu:
            image = build_romfs(device_files('qemu'), os.path.join(mpy_dir, 'sp.romfs'))
            size = os.path.getsize(image)
            board = QemuMemBoard(image, args.max_frame, args.secret)
            base = board.baseline()
        else:
            size = build(mpy_dir)
            base = baseline(args.heapsize)
            board = Board(mpy_dir, args.heapsize, args.max_frame, args.secret)
        try:
            board.engine.session_v2 = args.wire == 'v2'
            board.engine.connection_made()
            board.pump(lambda: board.engine.counters['rx_messages'] >= 1 and board.engine.may_send())
            start = int(re.search(r'mem: start alloc=(\d+)', board.stderr()).group(1))
            rows = []
            for name, sid, did, data in REQUESTS:
                if data is not None and len(pure_json.encode(sid, did, 0, data)) > args.max_frame:
                    rows.append((name, 'over the frame cap'))
                    continue
                rows.append((name, '%d B' % board.request(sid, did, data)))
            step, alloc = re.findall(r'mem: step \+(\d+) alloc=(\d+)', board.stderr())[-1]
            serving = int(alloc) - int(step)   # what the last step left in use: no garbage
        finally:
            board.stop()
    where = 'MicroPython unix port, -X heapsize=%s' % args.heapsize
    if args.qemu:
        where = 'qemu board (Cortex-M3), 32 KiB heap, code %s' % ('frozen' if args.frozen else 'in ROMFS')
    print('device heap, %s, frames up to %d B, %s wire%s' % (where, args.max_frame, args.wire,
                                                              ', a secret' if args.secret else ''))
    print('| figure | bytes |')
    print('|---|---:|')
    print('| bare interpreter after start (baseline) | %d B |' % base)
    print('| board after start: stdio protocol, demo services | %d B (+%d) |' % (start, start - base))
    if args.qemu and size is not None:
        print('| ROMFS image: sp_common + sp_micropython + boards/qemu as .mpy | %d B |' % size)
    elif not args.qemu:
        print('| .mpy files, sp_common + sp_micropython | %d B |' % size)
    print('| in use while serving, after the last request | %d B |' % serving)
    for name, value in rows:
        print('| allocated serving %s | %s |' % (name, value))
    return 0


if __name__ == '__main__':
    sys.exit(main())
