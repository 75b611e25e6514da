"""The sp command against a hostile peer and a prying user of the same machine: what a peer sends reaches the
terminal only escaped, and a secret need not be on a command line, where ps shows it to everyone."""
import os
import secrets
import signal
import subprocess
import sys

import pytest

from conftest import ROOT, free_port, interrupt, skip_or_fail
from sp_common import frame, pure_json
from sp_tool import errors
from sp_tool.virtual_board import install_files
from test_cli import Board, fails, sp
from tools.mosquitto import Mosquitto

SECRET = secrets.token_hex(12)     # not the other tests' secret: ps must show this one nowhere
ESCAPES = '\x1b[2J\x1b]0;owned\x07\r'


def test_monitor_prints_a_peers_data_id_escaped(tmp_path):
    """A pure_json data id may be a string: ESC, BEL and CR from the peer must not reach the terminal."""
    capture = tmp_path / 'hostile.bin'
    capture.write_bytes(frame(pure_json.encode(11, ESCAPES, 0, ESCAPES)))
    r = sp('monitor', str(capture))
    assert r.returncode == 0, r.stderr
    assert not any(c in r.stdout for c in '\x1b\x07\r'), r.stdout
    assert r.stdout.endswith(' read data response, data_id: "\\x1b[2J\\x1b]0;owned\\x07\\x0d", status: okay, '
                             'data: "\\u001b[2J\\u001b]0;owned\\u0007\\r", crc: ok\n'), r.stdout


def test_monitor_shows_a_lone_surrogate_escaped_and_goes_on(tmp_path):
    """A data id of "\\ud800" decodes to a str no UTF-8 terminal takes: printed as is, it ended the monitor."""
    capture = tmp_path / 'surrogate.bin'
    capture.write_bytes(frame(pure_json.encode(31, '\ud800', 0, 'evil')) + frame(pure_json.encode(31, 0, 0, 'after')))
    r = sp('monitor', str(capture))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].endswith(' execute response, data_id: "\\ud800", status: okay, data: "evil", crc: ok'), r.stdout
    assert lines[1].endswith(' execute response, data_id: echo, status: okay, data: "after", crc: ok'), r.stdout


def test_monitor_on_a_terminal_that_cannot_show_a_peers_text_escapes_it_and_goes_on(tmp_path):
    """A data id of "\u4e2d" on a Latin-1 terminal: print() raised UnicodeEncodeError, which ended the monitor."""
    capture = tmp_path / 'beyond_latin1.bin'
    capture.write_bytes(frame(pure_json.encode(11, '\u4e2d', 0, 'first')) + frame(pure_json.encode(11, 0, 0, 'second')))
    r = subprocess.run([sys.executable, '-m', 'sp_tool', 'monitor', str(capture)], capture_output=True, cwd=ROOT,
                       timeout=60, env=dict(os.environ, PYTHONIOENCODING='latin-1'))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode('latin-1').splitlines()
    assert lines[0].endswith(' read data response, data_id: "\\u4e2d", status: okay, data: "first", crc: ok'), lines
    assert lines[1].endswith(' read data response, data_id: asc_time, status: okay, data: "second", crc: ok'), lines


def test_monitor_on_a_legacy_8bit_terminal_writes_nothing_a_terminal_takes_for_a_c1_control(tmp_path):
    """KOI8-R writes the printable '\u00b2', '\u00b0' and '\u2321' as bytes 0x9d, 0x9c and 0x9b: OSC, ST and CSI
    to a terminal that is not in UTF-8. A peer's data id of them set the clipboard (OSC 52) and cleared the screen."""
    capture = tmp_path / 'koi8.bin'
    hostile = '\u00b252;c;cm0gLXJmIH4K\u00b0\u23212J'
    capture.write_bytes(frame(pure_json.encode(11, hostile, 0, hostile)))
    r = subprocess.run([sys.executable, '-m', 'sp_tool', 'monitor', str(capture)], capture_output=True, cwd=ROOT,
                       timeout=60, env=dict(os.environ, PYTHONIOENCODING='koi8-r'))
    assert r.returncode == 0, r.stderr
    assert max(r.stdout) < 0x80, r.stdout
    assert r.stdout.decode().endswith(' read data response, data_id: "\\xb252;c;cm0gLXJmIH4K\\xb0\\u23212J", '
                                      'status: okay, data: "\\u00b252;c;cm0gLXJmIH4K\\u00b0\\u23212J", crc: ok\n')


def test_monitor_tells_a_run_of_framing_errors_in_two_lines(tmp_path):
    """':<' over and over is a framing error every two bytes: a line each made 22 bytes of output from every two
    of a peer's junk. The run's first has its line, the rest one line as the run ends."""
    capture = tmp_path / 'junk.bin'
    answer = frame(pure_json.encode(11, 0, 0, 'after'))
    capture.write_bytes(b':<' * 1000 + answer + b':<:<:<')
    r = sp('monitor', str(capture))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ['@4 framing error: partial frame dropped',
                                     '@2002 999 more framing errors: partial frames dropped',
                                     '@%d read data response, data_id: asc_time, status: okay, data: "after", crc: ok'
                                     % (2000 + len(answer)),
                                     '@%d framing error: partial frame dropped' % (2004 + len(answer)),
                                     '@%d 1 more framing errors: partial frames dropped' % (2006 + len(answer))]
    assert r.stderr == '1 messages, 0 CRC errors, 0 format errors, 1002 framing errors\n'


def test_monitor_cuts_a_peers_seq_and_re(tmp_path):
    """A v2 frame's seq and re are the peer's numbers, 4,300 digits each at most: printed whole, a line of 8,600."""
    capture = tmp_path / 'long-seq.bin'
    capture.write_bytes(frame(*pure_json.pieces(11, 0, 0, None, 10 ** 4299, 10 ** 4299)))
    r = sp('monitor', str(capture))
    assert r.returncode == 0, r.stderr
    long = '1' + '0' * 39 + '... (4300 characters)'
    assert r.stdout.endswith(' status: okay, data: null, seq: %s, re: %s, crc: ok\n' % (long, long)), r.stdout


def test_ports_says_what_to_do_when_a_device_names_itself_in_text_the_locale_cannot_read():
    """pyserial reads a device's USB strings in the locale's encoding: an emoji in a product name under an EUC-JP
    or ASCII locale raised UnicodeDecodeError out of sp ports, a traceback."""
    listing = ('import sys\n'
               'from serial.tools import list_ports\n'
               'from sp_tool import cli\n'
               'def comports(*args, **kwargs):\n'
               '    raise UnicodeDecodeError("ascii", b"Pico \\xf0", 5, 6, "ordinal not in range(128)")\n'
               'list_ports.comports = comports\n'
               'sys.exit(cli.main(["ports"]))\n')
    r = subprocess.run([sys.executable, '-c', listing], cwd=ROOT, capture_output=True, text=True, timeout=30)
    fails(r, errors.EXIT_USAGE, 'a device names itself in text this locale cannot read', 'LC_ALL=C.UTF-8')


def test_ports_prints_a_devices_own_usb_strings_escaped():
    """A device names itself: pyserial reports its USB product and serial strings, which may hold ESC, BEL and CR.
    (Run with those strings handed to pyserial as it reads them from sysfs, which takes root to fake.)"""
    listing = ('import sys\n'
               'from serial.tools import list_ports, list_ports_common\n'
               'from sp_tool import cli\n'
               'port = list_ports_common.ListPortInfo("/dev/ttyACM0", skip_link_detection=True)\n'
               'port.vid, port.pid, port.serial_number, port.product = 0x2E8A, 5, sys.argv[1], sys.argv[1]\n'
               'port.apply_usb_info()\n'
               'list_ports.comports = lambda *args, **kwargs: [port]\n'
               'sys.exit(cli.main(["ports"]))\n')
    r = subprocess.run([sys.executable, '-c', listing, ESCAPES], cwd=ROOT, capture_output=True, text=True, timeout=30)
    escaped = '\\x1b[2J\\x1b]0;owned\\x07\\x0d'
    assert (r.returncode, r.stderr) == (0, '')
    assert r.stdout == '/dev/ttyACM0     %s [USB VID:PID=2E8A:0005 SER=%s]\n' % (escaped, escaped), r.stdout


def secret_file(tmp_path, mode=0o600, text=SECRET + '\n'):
    path = tmp_path / ('secret-%o' % mode)
    path.write_text(text)
    os.chmod(path, mode)
    return str(path)


def env_with(secret=None):
    env = {key: value for key, value in os.environ.items() if key != 'SP_SECRET'}
    if secret is not None:
        env['SP_SECRET'] = secret
    return env


def command_lines():
    """Every process's command line, as ps shows them."""
    lines = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                lines.append(f.read().replace(b'\0', b' ').decode(errors='replace'))
        except OSError:
            pass
    return lines


@pytest.fixture(scope='module')
def board(tmp_path_factory):
    """sp board with its secret from a file: it shows in no process's command line."""
    b = Board('--secret-file', secret_file(tmp_path_factory.mktemp('secret')), env=env_with())
    yield b
    assert b.stop() == errors.EXIT_INTERRUPTED


def test_a_board_started_with_a_secret_file_shows_its_secret_in_no_command_line(board):
    assert [line for line in command_lines() if SECRET in line] == []
    fails(sp('call', board.tcp, 'read', 'asc_time', env=env_with()), errors.EXIT_AUTH, 'give --secret-file')


def test_call_takes_the_secret_from_a_file(board, tmp_path):
    r = sp('call', board.tcp, 'execute', 'echo', '"file"', '--secret-file', secret_file(tmp_path), env=env_with())
    assert (r.returncode, r.stdout, r.stderr) == (0, 'okay: "file"\n', '')


def test_call_takes_the_secret_from_the_environment(board):
    r = sp('call', board.port, 'execute', 'echo', '"env"', env=env_with(SECRET))
    assert (r.returncode, r.stdout) == (0, 'okay: "env"\n'), r.stderr
    fails(sp('call', board.port, 'execute', 'echo', '"env"', env=env_with('pear')), errors.EXIT_AUTH, 'refused')


def test_a_secret_file_others_may_read_is_warned_about(board, tmp_path):
    path = secret_file(tmp_path, 0o644)
    r = sp('call', board.tcp, 'execute', 'echo', '"open"', '--secret-file', path, env=env_with())
    assert (r.returncode, r.stdout) == (0, 'okay: "open"\n'), r.stderr
    assert r.stderr == ('sp: warning: the secret file %s is open to its group or others (mode 644): chmod 600 it\n'
                        % path)


def test_bad_secret_options_are_named(tmp_path):
    fails(sp('call', 'read', '0', '--secret', 'x', '--secret-file', 'y'), errors.EXIT_USAGE, 'not allowed with')
    fails(sp('call', 'read', '0', '--secret-file', str(tmp_path / 'none')), errors.EXIT_USAGE,
          'cannot read the secret file', 'No such file')
    fails(sp('call', 'read', '0', '--secret-file', secret_file(tmp_path, text=' \n')), errors.EXIT_USAGE, 'is empty')
    fails(sp('call', 'mqtt://127.0.0.1:1/kitchen', 'read', '0', '--secret-file', secret_file(tmp_path)),
          errors.EXIT_USAGE, 'the gateway holds')
    # the environment's secret is for links: through a broker it is left alone, not an error
    fails(sp('call', 'mqtt://127.0.0.1:1/kitchen', 'read', '0', env=env_with(SECRET)), errors.EXIT_REFUSED,
          'cannot reach the broker')


def test_serve_takes_the_secret_from_the_environment(tmp_path):
    proc = subprocess.Popen([sys.executable, '-m', 'sp_tool', 'serve', '--tcp', '127.0.0.1:0'], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_with(SECRET))
    try:
        where = proc.stdout.readline().split()[-1]
        assert where.startswith('tcp://'), proc.stderr.read()
        assert [line for line in command_lines() if SECRET in line] == []
        r = sp('call', where, 'execute', 'echo', '"served"', '--secret-file', secret_file(tmp_path), env=env_with())
        assert (r.returncode, r.stdout) == (0, 'okay: "served"\n'), r.stderr
        fails(sp('call', where, 'execute', 'echo', '"x"', env=env_with()), errors.EXIT_AUTH, 'give --secret-file')
    finally:
        interrupt(proc)


def test_gateway_warns_about_a_board_secret_file_others_may_read(tmp_path):
    path = secret_file(tmp_path, 0o640)
    proc = subprocess.Popen([sys.executable, '-m', 'sp_tool', 'gateway', '--broker', 'mqtt://127.0.0.1:1',
                             'k=tcp://127.0.0.1:1?secret_file=' + path], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith('gateway for k on mqtt://127.0.0.1:1')
    proc.send_signal(signal.SIGINT)
    assert proc.wait(10) == errors.EXIT_INTERRUPTED
    err = proc.stderr.read()   # (then that the broker cannot be reached: there is none)
    assert err.startswith('sp: warning: the secret file %s is open to its group or others (mode 640): '
                          'chmod 600 it\n' % path), err
    proc.stdout.close()
    proc.stderr.close()


def test_a_secret_file_is_read_as_a_board_reads_it(tmp_path):
    """The board strips ASCII white space around its secret.txt (MicroPython's str.strip()); the host stripped a
    no-break space too, so one file gave two secrets and every call was refused."""
    folder = tmp_path / 'board'
    install_files(str(folder))
    path = folder / 'secret.txt'
    path.write_text(SECRET + '\u00a0\n', encoding='utf-8')
    os.chmod(path, 0o600)
    board = Board('--fs', str(folder), env=env_with())
    try:
        r = sp('call', board.tcp, 'execute', 'echo', '"nbsp"', '--secret-file', str(path), env=env_with())
        assert (r.returncode, r.stdout) == (0, 'okay: "nbsp"\n'), r.stderr
    finally:
        assert board.stop() == errors.EXIT_INTERRUPTED


def test_a_broker_password_shows_in_no_message(tmp_path):
    """mqtt://USER:PASSWORD@HOST is how sp call logs in to a broker: its messages quoted the whole URL, password and
    all, on stderr and in the --json object."""
    try:
        broker = Mosquitto(str(tmp_path))
    except RuntimeError as err:
        skip_or_fail(str(err))
    gateway = subprocess.Popen([sys.executable, '-m', 'sp_tool', 'gateway', '--broker', broker.url,
                                'k=tcp://127.0.0.1:%d' % free_port()], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        login = 'mqtt://alice:%s@' % SECRET
        where = '127.0.0.1:%d/k' % broker.port
        for _ in range(10):   # until the gateway, which has just started, answers for k: it is offline
            r = sp('call', login + where, 'read', '0', '--timeout', '1', '--json')
            if r.returncode != errors.EXIT_TIMEOUT:
                break
        fails(r, errors.EXIT_REFUSED, 'mqtt://%s answered: board offline' % where)
        assert SECRET not in r.stdout + r.stderr
        for url in (login + '127.0.0.1:99999/k', 'mqtt://alice:%s/1@127.0.0.1:1/k' % SECRET):   # (a / ends the host)
            r = sp('call', url, 'read', '0', '--json')
            fails(r, errors.EXIT_USAGE, 'bad port in')
            assert SECRET not in r.stdout + r.stderr
        r = sp('gateway', '--broker', login + '127.0.0.1:99999', 'k=tcp://127.0.0.1:1')   # the gateway's own login
        assert r.returncode == errors.EXIT_USAGE and 'bad port in' in r.stderr and SECRET not in r.stdout + r.stderr
    finally:
        interrupt(gateway)
        broker.stop()
