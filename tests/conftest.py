"""Shared test set-up: the repository root and the conformance summary line."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
