"""The emulated Raspberry Pi Pico: MicroPython's RP2040 port (RPI_PICO firmware) under the rp2040js emulator.

    python3 -m tools.pico_board [--fs-image FILE]

Starts the board, prints its USB console and UART0 (pseudo-terminals, as a
real Pico's /dev/ttyACM0 and a USB-UART adapter on GP0/GP1) and runs until
Ctrl-C. The board starts with an empty flash unless --fs-image names an image
kept from an earlier run; `sp deploy rp2040 --port USB` puts the project on it.

The launcher and firmware come from $SP_RP2040_BOARD_DIR, else
../shared/rp2040-board beside the repository. That folder is read-only: it is
copied once into a cache folder ($XDG_CACHE_HOME/sp-dual, else ~/.cache/sp-dual)
where `npm ci` installs the emulator. Needs node (18+), npm and socat.
"""
import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import serial

from tools import needs
from tools.needs import shared_dir

FILES = ('run-pico.mjs', 'firmware.uf2', 'bootrom-b1.bin', 'package.json', 'package-lock.json')
RAW_REPL = b'raw REPL; CTRL-B to exit\r\n>'


class PicoBoardError(RuntimeError):
    pass


def source_dir():
    return shared_dir('SP_RP2040_BOARD_DIR', 'rp2040-board')


def missing():
    """Why the emulated Pico cannot run here and how to fix it, or None when it can."""
    return needs.missing('emulated Pico (the rp2040js launcher and the RPI_PICO firmware)', 'SP_RP2040_BOARD_DIR',
                         'rp2040-board', FILES, ('node', 'npm', 'socat'), 'nodejs npm socat')


def launcher_dir():
    """A writable copy of the launcher folder with its node_modules, made once per version of its files."""
    reason = missing()
    if reason:
        raise PicoBoardError(reason)
    src = source_dir()
    digest = hashlib.sha256()
    for name in FILES:
        with open(os.path.join(src, name), 'rb') as f:
            digest.update(f.read())
    cache = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    folder = os.path.join(cache, 'sp-dual', 'rp2040-board-' + digest.hexdigest()[:12])
    if not os.path.isdir(os.path.join(folder, 'node_modules', 'rp2040js')):
        work = tempfile.mkdtemp(prefix='rp2040-board-', dir=os.path.dirname(folder) if os.path.isdir(
            os.path.dirname(folder)) else None)
        for name in FILES:
            shutil.copy(os.path.join(src, name), work)
        done = subprocess.run(['npm', 'ci', '--no-audit', '--no-fund'], cwd=work, capture_output=True, text=True)
        if done.returncode:
            shutil.rmtree(work, ignore_errors=True)
            raise PicoBoardError('npm ci for the rp2040js emulator failed: %s' % done.stderr[-500:])
        os.makedirs(os.path.dirname(folder), exist_ok=True)
        try:
            os.rename(work, folder)
        except OSError:   # another run made it meanwhile
            shutil.rmtree(work, ignore_errors=True)
    return folder


class PicoBoard:
    """One emulated Pico: self.usb is its USB console (the REPL), self.uart0 its UART0 on GP0/GP1.

    The flash lives in self.fs_image, kept across resets and across power
    cycles (power_cycle() restarts the emulator on the same image).
    """

    def __init__(self, fs_image=None, boot_timeout=20):
        self._dir = tempfile.mkdtemp(prefix='pico-board-')
        self.usb = os.path.join(self._dir, 'ttyACM0')
        self.uart0 = os.path.join(self._dir, 'ttyUART0')
        self.fs_image = fs_image or os.path.join(self._dir, 'flash.img')
        self._launcher = launcher_dir()
        self.proc = None
        self._lines = []
        self._changed = threading.Condition()
        try:
            self.power_on(boot_timeout)
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise

    def power_on(self, timeout=20):
        cmd = ['node', 'run-pico.mjs', '--usb-pty', self.usb, '--uart0-pty', self.uart0,
               '--fs-image', self.fs_image]
        self._lines = []
        self.proc = subprocess.Popen(cmd, cwd=self._launcher, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        threading.Thread(target=self._read_status, args=(self.proc,), daemon=True).start()
        if not self.wait_line('USB-CONNECTED', timeout):
            log = self.log()
            self.power_off()
            raise PicoBoardError('the emulated Pico did not come up: %s' % log[-500:])

    def _read_status(self, proc):
        """The launcher's status lines, until it exits (its pipe is closed then, each power cycle's own)."""
        with proc.stdout:
            for line in proc.stdout:
                with self._changed:
                    self._lines.append(line.decode(errors='replace').rstrip())
                    self._changed.notify_all()

    def log(self):
        return '\n'.join(self._lines)

    def wait_line(self, text, timeout=20.0, after=0):
        """Waits for a launcher status line (USB-CONNECTED, RESET) past the first `after` lines."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not any(line.startswith(text) for line in self._lines[after:]):
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    return False
                self._changed.wait(min(left, 0.2))
        return True

    def lines(self):
        return len(self._lines)

    def exec(self, code, timeout=10.0):
        """Runs code at the raw REPL and leaves it running, so a host may open the console afterwards."""
        with serial.Serial(self.usb, 115200, timeout=timeout, exclusive=True) as port:
            port.write(b'\r\x03')   # one Ctrl-C, as mpremote sends it
            time.sleep(0.1)
            port.reset_input_buffer()
            port.write(b'\r\x01')
            got = port.read_until(RAW_REPL)
            if not got.endswith(RAW_REPL):
                raise PicoBoardError('no raw REPL on the emulated Pico: %r' % got[-300:])
            port.write(code.encode() + b'\x04')
            got = port.read(2)
            if got != b'OK':
                raise PicoBoardError('the emulated Pico did not take the code: %r' % got)

    def start(self, **settings):
        """Starts the deployed main.py with config values set first (start(streams=('stdio',), secret='x'))."""
        lines = ['import micropython', 'micropython.kbd_intr(-1)',   # bytes sent before it serves are not Ctrl-C
                 'import config', 'config.STARTUP_DELAY_MS = 0']
        lines += ['config.%s = %r' % (name.upper(), value) for name, value in sorted(settings.items())]
        self.exec('\n'.join(lines + ['import main', '']))

    def power_off(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)   # the launcher saves the flash image and exits
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def power_cycle(self, timeout=20):
        self.power_off()
        self.power_on(timeout)

    def stop(self):
        self.power_off()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def main(argv=None):
    ap = argparse.ArgumentParser(prog='python3 -m tools.pico_board', description=__doc__.split('\n\n')[0])
    ap.add_argument('--fs-image', help='the flash image to boot from and keep (default: a new empty one)')
    args = ap.parse_args(argv)
    stop = needs.stop_on_signals()
    try:
        board = PicoBoard(args.fs_image and os.path.abspath(args.fs_image))
    except PicoBoardError as e:
        print('emulated Pico: %s' % e, file=sys.stderr)
        return 1
    try:
        print('usb %s\nuart0 %s' % (board.usb, board.uart0), flush=True)
        print('emulated Pico: USB console %s, UART0 %s; Ctrl-C to stop' % (board.usb, board.uart0),
              file=sys.stderr, flush=True)
        return needs.run_until(stop, board.proc, 'emulated Pico', board.log)
    finally:
        board.stop()


if __name__ == '__main__':
    sys.exit(main())
