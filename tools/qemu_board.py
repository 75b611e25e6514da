"""The qemu board: MicroPython's qemu port (Arm MPS2-AN385, Cortex-M3, bare metal) under qemu-system-arm.

    python3 -m tools.qemu_board [--heap 32k|140k] [--codec struct_json] [--secret S] [--role client]

Builds a ROMFS image from the current sources (sp_common, sp_micropython and
boards/qemu, compiled to .mpy and packed by `mpremote romfs build`), boots the firmware
with the image at /rom, starts boards/qemu/main.py over the raw REPL and
prints the board's port (a /dev/pts/N path): `python3 -m tools.talk --port
PORT` talks to it like to any board. Runs until Ctrl-C.

The firmware comes from $SP_QEMU_FIRMWARE_DIR, else ../shared/qemu-board
beside the repository (see firmware()). Everything the board prints, before
and after the host opens its port, is kept in a log (QemuBoard.output()).
"""
import argparse
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import serial

from sp_tool.deploy import build_romfs
from sp_tool.errors import CommandError
from sp_tool.files import device_files
from tools import needs
from tools.needs import shared_dir

FIRMWARE = {'32k': 'micropython-mps2-an385-heap32k.elf', '140k': 'micropython-mps2-an385-heap140k.elf'}
ROMFS_ADDR = 0x21000000
RAW_REPL = b'raw REPL; CTRL-B to exit\r\n>'


class QemuBoardError(RuntimeError):
    pass


def firmware_dir():
    return shared_dir('SP_QEMU_FIRMWARE_DIR', 'qemu-board')


def missing():
    """Why the qemu board cannot run here and how to fix it, or None when it can."""
    return needs.missing('qemu board firmware (MicroPython qemu-port builds for MPS2-AN385, 32 KiB and 140 KiB '
                         'heaps)', 'SP_QEMU_FIRMWARE_DIR', 'qemu-board', FIRMWARE.values(), ('qemu-system-arm',),
                         'qemu-system-arm')


def firmware(heap):
    reason = missing()
    if reason:
        raise QemuBoardError(reason)
    return os.path.join(firmware_dir(), FIRMWARE[heap])


def _die_with_parent():
    """In the child before exec: SIGTERM when the process that started the board dies (Linux), so none is left."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG


class QemuBoard:
    """One boot of the firmware with a ROMFS image (or code frozen in); self.port is its console UART, a pty.

    The board sits at its REPL; start() sets config values and imports main.
    """

    def __init__(self, image, heap='32k', boot_timeout=20, elf=None):
        """image: a ROMFS image put at /rom, or None; elf: a firmware of its own (tools.frozen_firmware's)."""
        self._dir = tempfile.mkdtemp(prefix='qemu-board-')
        self._log = os.path.join(self._dir, 'console.log')
        cmd = ['qemu-system-arm', '-machine', 'mps2-an385', '-nographic', '-monitor', 'null', '-semihosting',
               '-chardev', 'pty,id=con,logfile=%s' % self._log, '-serial', 'chardev:con',
               '-kernel', elf or firmware(heap)]
        if image:
            cmd += ['-device', 'loader,file=%s,addr=0x%x,force-raw=on' % (os.path.abspath(image), ROMFS_ADDR)]
        with open(os.path.join(self._dir, 'qemu.out'), 'wb') as out:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         preexec_fn=_die_with_parent)
        self.port = None
        try:
            self.port = self._find_port(boot_timeout)
            if not self.wait_output(b'>>> ', boot_timeout):
                raise QemuBoardError('the qemu board did not reach its REPL: %r' % self.output()[-300:])
        except BaseException:
            self.stop()
            raise

    def _find_port(self, timeout):
        """The pty from qemu's 'char device redirected to /dev/pts/N (label con)'."""
        deadline = time.monotonic() + timeout
        while True:
            with open(os.path.join(self._dir, 'qemu.out')) as f:
                text = f.read()
            if 'redirected to /dev/' in text:
                return text.split('redirected to ', 1)[1].split()[0]
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise QemuBoardError('qemu-system-arm did not start: %r' % text[-500:])
            time.sleep(0.02)

    def output(self):
        """Everything the board printed since boot (the console log), host connected or not."""
        try:
            with open(self._log, 'rb') as f:
                return f.read()
        except OSError:
            return b''

    def wait_output(self, pattern, timeout=10.0, after=0):
        deadline = time.monotonic() + timeout
        while self.output().find(pattern, after) < 0:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                return False
            time.sleep(0.02)
        return True

    def exec(self, code, timeout=10.0):
        """Runs code at the raw REPL without reading the port, so a host may hold it open meanwhile.

        Returns once the board has taken the code (its 'OK' in the log).
        """
        mark = len(self.output())
        with serial.Serial(self.port, 115200) as port:
            port.write(b'\r\x03\x03\x01')
            if not self.wait_output(RAW_REPL, timeout, mark):
                raise QemuBoardError('no raw REPL on the qemu board: %r' % self.output()[mark:][-300:])
            port.write(code.encode() + b'\x04')
            port.flush()
        if not self.wait_output(RAW_REPL + b'OK', timeout, mark):
            raise QemuBoardError('the qemu board did not take the code: %r' % self.output()[mark:][-300:])

    def start(self, main='import main', **settings):
        """Starts main.py with config values set first (start(codec='struct_json', secret='x')).

        main: the code that starts the board once config is set (benchmarks.bench_device's measuring start).
        """
        lines = ['import micropython', 'micropython.kbd_intr(-1)', 'import config']
        lines += ['config.%s = %r' % (name.upper(), value) for name, value in sorted(settings.items())]
        self.exec('\n'.join(lines + [main, '']))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def main(argv=None):
    ap = argparse.ArgumentParser(prog='python3 -m tools.qemu_board', description=__doc__.split('\n\n')[0])
    ap.add_argument('--heap', choices=sorted(FIRMWARE), default='32k', help='firmware heap size (default 32k)')
    ap.add_argument('--codec', choices=('pure_json', 'struct_json'))
    ap.add_argument('--role', choices=('server', 'client'))
    ap.add_argument('--secret')
    ap.add_argument('--max-frame', type=int)
    ap.add_argument('--log-level', type=int, help='engine log on the console: 10 debug .. 40 error')
    args = ap.parse_args(argv)
    settings = {name: value for name, value in vars(args).items() if name != 'heap' and value is not None}
    stop = needs.stop_on_signals()
    with tempfile.TemporaryDirectory(prefix='qemu-romfs-') as folder:
        try:
            image = build_romfs(device_files('qemu'), os.path.join(folder, 'sp.romfs'))
            board = QemuBoard(image, args.heap)
        except (QemuBoardError, CommandError) as e:
            print('qemu board: %s' % e, file=sys.stderr)
            return 1
        try:
            board.start(**settings)
            print(board.port, flush=True)
            print('qemu board (%s heap, code in ROMFS) on %s; Ctrl-C to stop' % (args.heap, board.port),
                  file=sys.stderr, flush=True)
            return needs.run_until(stop, board.proc, 'qemu board', board.output)
        except QemuBoardError as e:
            print('qemu board: %s' % e, file=sys.stderr)
            return 1
        finally:
            board.stop()


if __name__ == '__main__':
    sys.exit(main())
