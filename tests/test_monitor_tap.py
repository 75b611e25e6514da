"""sp monitor --tap keeps decoding what the board sends while no host program reads the tap's pty."""
import os
import select
import signal
import subprocess
import sys
import time
import tty

import pytest

from conftest import ROOT
from sp_common import frame, pure_json
from sp_tool import errors


def test_a_tap_nobody_reads_keeps_decoding_and_stops_at_once():
    board_end, port = os.openpty()   # the "board" writes into board_end; the tap holds the port (a pty)
    tty.setraw(port)
    tap = subprocess.Popen([sys.executable, '-m', 'sp_tool', 'monitor', '--tap', os.ttyname(port)], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert tap.stdout.readline().startswith('/dev/')   # the tap's own pty, which nobody opens here
        wire = b''.join(frame(*pure_json.pieces(31, 0, 0, 'x' * 40 + str(n))) for n in range(400))
        for i in range(0, len(wire), 4096):   # far more than a pty holds (about 4 KiB)
            os.write(board_end, wire[i:i + 4096])
            time.sleep(0.01)
        time.sleep(1)
        start = time.monotonic()
        tap.send_signal(signal.SIGINT)
        out, err = tap.communicate(timeout=10)
        assert time.monotonic() - start < 3, err   # no watcher blocked in a write
        assert tap.returncode == 130, err
        assert out.count('<- execute response') == 400, err
        assert 'Traceback' not in err
    finally:
        if tap.poll() is None:
            tap.kill()
        os.close(board_end)
        os.close(port)


def test_a_tap_whose_board_reads_nothing_drops_the_host_bytes_and_stops_at_once():
    """A board that stops reading: what the host program writes is dropped (and said), and Ctrl-C still ends
    the tap at once, instead of a write to the board blocking it for good."""
    board_end, port = os.openpty()   # the "board" never reads board_end
    tty.setraw(port)
    tap = subprocess.Popen([sys.executable, '-m', 'sp_tool', 'monitor', '--tap', os.ttyname(port)], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    host = None
    try:
        host = os.open(tap.stdout.readline().strip(), os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(host)
        wire = frame(*pure_json.pieces(30, 0, 0, 'y' * 4000))
        written, end = 0, time.monotonic() + 3
        while written < 64 * len(wire) and time.monotonic() < end:   # far more than the board's pty holds
            try:
                written += os.write(host, wire)
            except BlockingIOError:
                time.sleep(0.01)
        assert written > 16 * len(wire)
        time.sleep(0.5)
        start = time.monotonic()
        tap.send_signal(signal.SIGINT)
        out, err = tap.communicate(timeout=10)
        assert time.monotonic() - start < 3, err
        assert tap.returncode == 130 and 'bytes from the host program dropped' in err, err
        assert '-> execute request' in out and 'Traceback' not in err
    finally:
        if tap.poll() is None:
            tap.kill()
        if host is not None:
            os.close(host)
        os.close(board_end)
        os.close(port)


def watch_a_board_that_hangs_up(tap, wire):
    """sp monitor (or its tap) on a pty whose board end writes wire, then closes (a USB board unplugged): the
    monitor's (exit status, stdout, stderr) and the port's path."""
    board_end, port = os.openpty()
    tty.setraw(port)
    path = os.ttyname(port)
    mon = subprocess.Popen([sys.executable, '-m', 'sp_tool', 'monitor'] + (['--tap'] if tap else []) + [path],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if tap:
            assert mon.stdout.readline().startswith('/dev/')
        else:
            assert mon.stderr.readline() == 'watching %s (Ctrl-C stops)\n' % path   # it has the port open
        os.write(board_end, wire)
        time.sleep(0.5)
        os.close(port)
        os.close(board_end)
        out, err = mon.communicate(timeout=10)
        return mon.returncode, out, err, path
    finally:
        if mon.poll() is None:
            mon.kill()


def test_a_live_monitor_says_at_once_what_it_watches():
    """On an idle link it printed nothing until Ctrl-C, like a command that hangs."""
    board_end, port = os.openpty()
    path = os.ttyname(port)
    mon = subprocess.Popen([sys.executable, '-m', 'sp_tool', 'monitor', path], cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        assert select.select([mon.stderr], [], [], 10)[0], 'nothing said'
        assert mon.stderr.readline() == 'watching %s (Ctrl-C stops)\n' % path
        mon.send_signal(signal.SIGINT)
        assert mon.communicate(timeout=10) == ('', '0 messages, 0 CRC errors, 0 format errors, 0 framing errors\n')
        assert mon.returncode == errors.EXIT_INTERRUPTED
    finally:
        if mon.poll() is None:
            mon.kill()
        os.close(board_end)
        os.close(port)


ONE_OF_EACH = ['monitor', 'tap']


@pytest.mark.parametrize('tap', [False, True], ids=ONE_OF_EACH)
def test_a_board_that_hangs_up_ends_the_monitor_with_a_line_not_a_traceback(tap):
    """The monitor and the tap say so and end, where pyserial's error ended them with a traceback (the tap's in a
    thread, then exit 0 as if nothing happened)."""
    code, out, err, path = watch_a_board_that_hangs_up(tap, frame(*pure_json.pieces(31, 0, 0, 'last words')))
    assert 'data: "last words"' in out and '%s closed the link' % path in err, err
    assert 'Traceback' not in err and 'Exception' not in err and code == 0, err


@pytest.mark.parametrize('tap', [False, True], ids=ONE_OF_EACH)
def test_a_board_that_sent_a_wrong_crc_and_hung_up_ends_the_monitor_with_exit_8(tap):
    """A tap that ends by itself gives the monitor's verdict: it gave 0 whatever it had seen."""
    bad = bytearray(frame(*pure_json.pieces(11, 0, 0, 'Fri')))
    bad[-8] ^= 0x01   # a CRC byte
    code, out, err, path = watch_a_board_that_hangs_up(tap, frame(*pure_json.pieces(11, 0, 0, 'Thu')) + bytes(bad))
    assert 'data: "Thu"' in out and 'CRC ERROR' in out and '%s closed the link' % path in err, err
    assert code == errors.EXIT_CRC and 'Traceback' not in err, err


@pytest.mark.parametrize('tap', [False, True], ids=ONE_OF_EACH)
def test_a_save_file_that_cannot_be_written_is_named_before_the_monitor_starts(tap, tmp_path):
    """The tap printed its pty, then a thread's traceback, and exited 0; the monitor ended with a traceback."""
    board_end, port = os.openpty()
    save = str(tmp_path / 'missing' / 'capture.bin')
    try:
        r = subprocess.run([sys.executable, '-m', 'sp_tool', 'monitor'] + (['--tap'] if tap else []) +
                           [os.ttyname(port), '--save', save], cwd=ROOT, capture_output=True, text=True, timeout=20)
    finally:
        os.close(board_end)
        os.close(port)
    assert (r.returncode, r.stdout, r.stderr) == (
        errors.EXIT_USAGE, '', 'sp monitor: error: cannot write %s: No such file or directory\n' % save)


def test_a_tap_read_by_a_program_that_stops_reading_ends_quietly():
    """sp monitor --tap PORT | head: the line the watcher could not print ended its thread with a traceback, and
    the tap with exit 0."""
    board_end, port = os.openpty()
    tty.setraw(port)
    head, out = os.pipe()
    tap = subprocess.Popen([sys.executable, '-m', 'sp_tool', 'monitor', '--tap', os.ttyname(port)], cwd=ROOT,
                           stdout=out, stderr=subprocess.PIPE, text=True)
    os.close(out)
    try:
        assert os.read(head, 80).startswith(b'/dev/')   # the tap's own pty
        os.close(head)
        wire = b''.join(frame(*pure_json.pieces(31, 0, 0, 'line %d' % n)) for n in range(50))
        os.write(board_end, wire)
        assert tap.wait(10) == 128 + signal.SIGPIPE
        assert 'Traceback' not in tap.stderr.read()
    finally:
        if tap.poll() is None:
            tap.kill()
        tap.stderr.close()
        os.close(board_end)
        os.close(port)
