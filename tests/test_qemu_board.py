"""The device on a real 32-bit MicroPython: the qemu board (Cortex-M3, bare metal).

The unix port is a 64-bit program with double floats; this board has 31-bit
small ints, single-precision floats, a fixed 32 KiB (or 140 KiB) heap, no
os.urandom and no clock. Each case boots its own board (0.2 s). On the 32 KiB
board the code is frozen into a firmware built from the current sources
(tools.frozen_firmware), as the smallest boards take it; two cases and the
140 KiB board run it from a ROMFS image instead.

The firmware comes from ../shared/qemu-board (or $SP_QEMU_FIRMWARE_DIR), the
source to freeze into from ../shared/micropython-src; when they, qemu-system-arm
or the ARM toolchain are missing these tests skip and say why, except under
CI (CI set to anything but empty, 0 or false, as CI services do), where that
is a failure.
"""
import os
import re
import subprocess
import sys
import time
from binascii import crc32

import pytest
import serial

import sp_cpython as sp
from conftest import ROOT, skip_or_fail
from sp_common.stp import frame
from sp_tool.deploy import build_romfs
from sp_tool.files import device_files
from test_conformance_micropython import _cpython_cases
from test_interop import SECRET, ask, exchange, refuses_a_wrong_secret
from tools.frozen_firmware import frozen_firmware
from tools.frozen_firmware import missing as firmware_missing
from tools.qemu_board import QemuBoard, missing

CONFORMANCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'conformance')
HEADER = b'{"data_id": 0, "service_id": 30, "status": 0, "data": '


@pytest.fixture(scope='module')
def image(tmp_path_factory):
    skip_or_fail(missing())
    return build_romfs(device_files('qemu'), str(tmp_path_factory.mktemp('romfs') / 'sp.romfs'))


@pytest.fixture(scope='module')
def frozen(image):
    """The 32 KiB firmware with the device code frozen in (tools.frozen_firmware), built once per version."""
    skip_or_fail(firmware_missing())
    return frozen_firmware('32k')


@pytest.fixture
def board(image, frozen):
    """boot(heap, romfs=False) -> a QemuBoard at its REPL, the code frozen in (32 KiB) or in ROMFS.

    Afterwards its console must show no Python error.
    """
    booted = []

    def boot(heap='32k', romfs=False):
        booted.append(QemuBoard(image, heap) if romfs or heap != '32k' else QemuBoard(None, heap, elf=frozen))
        return booted[-1]
    yield boot
    for dev in booted:
        out = dev.output().decode(errors='replace')
        dev.stop()
        print('board console:', out[-2000:])   # shown when the test fails
        assert 'Traceback' not in out and 'MemoryError' not in out, out[-2000:]


def host_for(dev, role, codec, secret, host_v2=True, **settings):
    """A host protocol on the board's port and the board started in role; the listening side goes first."""
    cls = sp.pure_json_protocol if codec == 'pure_json' else sp.struct_json_protocol
    settings.update(codec=codec, role=role, secret=secret, channel_name='device')
    if role == 'server':
        dev.start(**settings)
    host = cls(sp.serial_stp(dev.port, is_client=role == 'server'), secret=secret, session_v2=host_v2,
               auto_auth=bool(secret) and role == 'server', channel_name='host' if role == 'server' else None)
    if role == 'client':
        dev.start(**settings)
    return host


@pytest.mark.parametrize('secret', [None, SECRET])
@pytest.mark.parametrize('codec', ['pure_json', 'struct_json'])
@pytest.mark.parametrize('role', ['server', 'client'])
def test_interop_on_the_32k_board(board, role, codec, secret):
    """Session v2 on the 32 KiB heap, code frozen in, with MACs when both sides have the secret."""
    host = host_for(board(), role, codec, secret)
    try:
        exchange(host, role)
        assert host.session == 2 and host.macs == (secret is not None)
    finally:
        host.close()


@pytest.mark.parametrize('secret', [None, SECRET])
def test_interop_on_the_32k_board_from_romfs(board, secret):
    """The code in ROMFS, run in place: the way onto a board that needs no firmware of its own."""
    host = host_for(board(romfs=True), 'server', 'pure_json', secret)
    try:
        exchange(host, 'server')
        assert host.session == 2 and host.macs == (secret is not None)
        if secret is None:   # what the heap leaves beside the code in ROMFS holds no echo of 800 B, and the board serves on
            answer = host.request(sp.SID_EXECUTE_REQUEST, 0, 'x' * 800, timeout=3)   # (dropped, it is never answered)
            assert answer is None or answer.get_status() == sp.STATUS_CALLBACK_ERROR
            assert host.request(sp.SID_EXECUTE_REQUEST, 0, 'x' * 300, timeout=10).get_data() == 'x' * 300
    finally:
        host.close()


def test_wrong_secret_is_refused_by_the_32k_board(board):
    dev = board()
    dev.start(secret=SECRET)
    refuses_a_wrong_secret(dev.port)
    # the seed came from the stand-in random source, which said so once on the console
    assert dev.output().count(b'no hardware random source on this port') == 1


def crc_frame(body):
    return frame(body + crc32(body).to_bytes(4, 'big'))


def hostile_frames(max_frame):
    """Garbage, then CRC-valid frames that stay within max_frame: deep nesting, huge numbers and strings."""
    depth = (max_frame - len(HEADER) - 16) // 2
    deep = '[' * depth + '0' + ']' * depth
    objects = '{"a": ' * 120 + '1' + '}' * 120
    bodies = [HEADER + text.encode() + b'}' for text in (
        deep, objects, '9' * 900, '-' + '9' * 600 + '.5e999999', '1e-99999', '"' + '\\u00fc' * 150 + '"',
        '"' + '\\ud800' * 150 + '"', '[' + '1.5e38, ' * 100 + '0]')]
    garbage = bytes((i * 37 + 11) % 256 for i in range(3000)) + b':<:=:>:<' + b'\x03' * 50
    return [garbage] + [crc_frame(body) for body in bodies]


def send_hostile(port, max_frame, timeout):
    """The hostile frames, then a last request; returns when the board has answered them all."""
    with serial.Serial(port, 115200, timeout=0.2) as link:
        for chunk in hostile_frames(max_frame) + [crc_frame(HEADER + b'"last"}')]:
            link.write(chunk)
        replies = b''
        deadline = time.monotonic() + timeout
        while b'"last"}' not in replies and time.monotonic() < deadline:   # the replies to all of them
            replies += link.read(4096)
    assert b'"last"}' in replies, replies[-500:]


def test_hostile_frames_leave_the_32k_board_answering(board):
    dev = board()
    dev.start()
    assert all(len(f) <= 1024 + 64 for f in hostile_frames(1024)[1:])
    send_hostile(dev.port, 1024, 20)
    host = sp.pure_json_protocol(sp.serial_stp(dev.port), channel_name='host')
    try:
        assert ask(host, sp.SID_EXECUTE_REQUEST, 0, 'still here').get_data() == 'still here'
        assert ask(host, sp.SID_READ_REQUEST, 0).get_status() == sp.STATUS_OKAY
    finally:
        host.close()


def conformance_files():
    """The suite and its runner at the image's root (/rom is on sys.path), with the device packages."""
    suite = [(os.path.join(CONFORMANCE, name), name) for name in sorted(os.listdir(CONFORMANCE))
             if name.endswith('.py')]
    return [f for f in device_files('qemu') if '/' in f[1]] + suite


# The suite's engines take the host's 64 KiB frame default; a board's engine has 8 KiB (sp_micropython),
# and this port has no os.urandom: the runner gets both as a board has them.
RUN_CONFORMANCE = """from sp_micropython.weak_random import install
install(None)
from sp_common import stp
_deframer = stp.Deframer.__init__
def _board_sized(self, max_size):
    _deframer(self, min(max_size, 8192))
stp.Deframer.__init__ = _board_sized
import sys
sys.argv[:] = ['run_micropython.py', '/rom']
import run_micropython
"""


MAX_TOO_BIG = 8   # cases too big for the 140 KiB heap (8 KiB deframers in a fragmented heap): 4 to 6 in the runs
#                   measured, a count that moves with any small change of what the heap holds


def test_conformance_suite_on_the_140k_board(image, tmp_path, request):
    with QemuBoard(build_romfs(conformance_files(), str(tmp_path / 'conformance.romfs')), '140k') as dev:
        dev.exec(RUN_CONFORMANCE)
        assert dev.wait_output(b'conformance on micropython: ', 120), dev.output()[-2000:]
        time.sleep(0.2)
        out = dev.output().decode(errors='replace')
    match = re.search(r'conformance on micropython: (\d+) passed, (\d+) failed', out)
    assert match, out[-2000:]
    passed, failed = int(match.group(1)), int(match.group(2))
    # A failure is acceptable only as a test too big for this heap; anything else is a 32-bit difference.
    reports = out.split('FAIL ')[1:]
    errors = [r.split('\n')[0] for r in reports if 'MemoryError: ' not in r]
    assert not errors, out[-4000:]
    assert failed <= MAX_TOO_BIG, out[-4000:]
    assert len(reports) == failed and passed + failed == _cpython_cases()
    line = 'conformance on micropython, qemu Cortex-M3 board (140 KiB heap): %d passed, %d failed' % (
        passed, failed) + (' (MemoryError: too big for the heap)' if failed else '')
    request.config.sp_conformance_lines = getattr(request.config, 'sp_conformance_lines', []) + [line]


def bench_device(*args):
    out = subprocess.run([sys.executable, '-m', 'benchmarks.bench_device', *args], cwd=ROOT,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    base = int(re.search(r'baseline\) \| (\d+) B', out.stdout).group(1))
    start = int(re.search(r'after start: .*?\| (\d+) B', out.stdout).group(1))
    served = [int(n) for n in re.findall(r'allocated serving (?:read|write|echo 16).*?\| (\d+) B', out.stdout)]
    assert len(served) == 3 and all(0 < n < 16384 for n in served), out.stdout
    return base, start, out.stdout


def test_bench_device_reports_the_32k_board(frozen):
    base, start, out = bench_device('--qemu', '--frozen')
    assert 0 < base < start <= 12 * 1024, out   # code frozen in: the board's target, 12 KiB after start
    base, start, out = bench_device('--qemu')
    assert 0 < base < start < 24 * 1024, out   # code in ROMFS: reported, and room left to serve


def test_bench_device_counts_the_names_and_maps_the_heap_of_the_32k_board(image):
    out = subprocess.run([sys.executable, '-m', 'benchmarks.bench_device', '--names'], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    bare, start, loaded = [int(n) for n in re.findall(r'^\| [^|]+ \| (\d+) \|$', out.stdout, re.M)]
    # a bare interpreter holds no names of its own; the session and handshake code bring theirs
    assert 0 <= bare < start < loaded, out.stdout
    kinds = dict((kind, int(size)) for kind, size in re.findall(r'^\| ([^|]+) \| \d+ \| (\d+) B \|$', out.stdout, re.M))
    assert kinds['function objects'] > 0 and kinds['str and bytes'] > 0, out.stdout
    # the started board's heap: its 1 KiB frame buffer and more, within the heap
    assert 1024 < sum(kinds.values()) < 32 * 1024, out.stdout
