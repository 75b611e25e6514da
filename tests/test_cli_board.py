"""sp board where its stdin is no terminal it may read: a background job of a terminal (sp board &) and a closed
stdin. It serves, and kill -USR1 resets it; only a folder that is none keeps it from starting."""
import os
import re
import select
import signal
import subprocess
import sys

import pytest

from conftest import ROOT, free_port
from sp_tool import errors
from test_cli import fails, sp

# A session whose terminal is a pty, with this launcher its foreground process group and the command it starts
# a background job: what `sp board &` is in an interactive shell.
BACKGROUND = '''import fcntl, os, subprocess, sys, termios
fcntl.ioctl(0, termios.TIOCSCTTY, 0)
sys.exit(subprocess.call(sys.argv[1:], preexec_fn=os.setpgrp))
'''


def line_within(stream, seconds):
    """A line of stream, or '' when none came within seconds (a process stopped by SIGTTIN writes nothing)."""
    ready, _, _ = select.select([stream], [], [], seconds)
    return stream.readline() if ready else ''


def board_command():
    return [sys.executable, '-m', 'sp_tool', 'board', '--tcp-port', str(free_port())]


def serves_and_resets(proc):
    """The board proc runs (itself, or as its only child) answers a call and kill -USR1 resets it, and it says that
    Enter does not; then Ctrl-C stops it."""
    try:
        port = line_within(proc.stdout, 20).strip()
        assert port.startswith('/dev/pts/'), port
        said = line_within(proc.stderr, 5)
        pid = re.search(r': kill -USR1 (\d+) resets it', said)
        assert pid and 'Enter' not in said, said
        r = sp('call', port, 'execute', 'echo', '"alive"', timeout=20)
        assert (r.returncode, r.stdout) == (0, 'okay: "alive"\n'), r.stderr
        os.kill(int(pid.group(1)), signal.SIGUSR1)
        assert line_within(proc.stderr, 5) == 'reset\n'
        os.kill(int(pid.group(1)), signal.SIGINT)
        assert proc.wait(10) == errors.EXIT_INTERRUPTED
        assert 'Traceback' not in proc.stderr.read()
    finally:
        if proc.poll() is None:   # (a board stopped in the background gets SIGHUP once its launcher is gone)
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_a_board_run_as_a_background_job_serves_and_resets_on_usr1():
    """It read the terminal to reset on Enter, and a background job that reads its terminal is stopped (SIGTTIN):
    sp board & stopped before it printed its port."""
    master, terminal = os.openpty()
    try:
        serves_and_resets(subprocess.Popen([sys.executable, '-c', BACKGROUND] + board_command(), cwd=ROOT,
                                           stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                           start_new_session=True))
    finally:
        os.close(terminal)
        os.close(master)


def test_a_board_with_its_stdin_closed_serves_and_resets_on_usr1():
    """sp board <&-: the thread that waited for Enter died with a TypeError's traceback."""
    serves_and_resets(subprocess.Popen(['sh', '-c', 'exec "$@" <&-', 'sh'] + board_command(), cwd=ROOT,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))


@pytest.mark.parametrize('folder', ['missing', 'file'])
def test_a_board_folder_that_is_none_is_named(folder, tmp_path):
    path = tmp_path / folder
    if folder == 'file':
        path.write_text('')
    fails(sp('board', '--fs', str(path), '--tcp-port', '0'), errors.EXIT_BOARD,
          'cannot start the virtual board in %s: no such folder' % path)
