"""Shared test set-up: the repository root, the .mpy build and the conformance summary line."""
import glob
import os
import signal
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='session')
def mpy_dir(tmp_path_factory):
    """sp_common and sp_micropython compiled by mpy-cross: put it in MICROPYPATH for a small heap."""
    out = tmp_path_factory.mktemp('mpy')
    for package in ('sp_common', 'sp_micropython'):
        os.makedirs(out / package)
        for source in sorted(glob.glob(os.path.join(ROOT, package, '*.py'))):
            target = out / package / (os.path.basename(source)[:-3] + '.mpy')
            subprocess.run(['mpy-cross', '-o', str(target), os.path.relpath(source, ROOT)], cwd=ROOT, check=True)
    return str(out)


def interrupt(proc):
    """Ctrl-C to a long-running sp command: it ends with status 0 and no traceback."""
    proc.send_signal(signal.SIGINT)
    assert proc.wait(10) == 0
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
