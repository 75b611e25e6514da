"""The device on a Raspberry Pi Pico: MicroPython's RP2040 port under the rp2040js emulator (tools.pico_board).

What a Pico user does, on the real firmware: `sp deploy rp2040` with
mpremote over the USB console, a reset, `sp call` over the same cable, and
mpremote taking the board back while it serves; the interop cases over USB and
over UART0; the conformance suite and hostile frames on the board.

The launcher and firmware come from ../shared/rp2040-board (or
$SP_RP2040_BOARD_DIR); when they, node, npm or socat are missing these tests
skip and say why, except under CI (CI set to anything but empty, 0 or false),
where that is a failure.
"""
import os
import re
import subprocess
import sys
import tempfile
import time

import pytest
import serial

import sp_cpython as sp
from sp_common import frame, pure_json
from conftest import ROOT, early_result, skip_or_fail
from test_conformance_micropython import _cpython_cases
from test_interop import SECRET, ask, exchange, refuses_a_wrong_secret
from test_qemu_board import send_hostile
from tools.pico_board import PicoBoard, missing

CONFORMANCE = os.path.join(ROOT, 'tests', 'conformance')


def sp_cmd(*args, timeout=60):
    return subprocess.run([sys.executable, '-m', 'sp_tool', *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def mpremote(port, *args, timeout=60):
    return subprocess.run([sys.executable, '-m', 'mpremote', 'connect', port, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def deploy(board):
    """The project deployed as .mpy by `sp deploy rp2040 --mpy` over the board's USB console."""
    done = sp_cmd('deploy', 'rp2040', '--port', board.usb, '--mpy', timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope='module')
def pico():
    """One emulated Pico, deployed, for the tests of this module."""
    skip_or_fail(missing())
    board = PicoBoard()
    try:
        deploy(board)
        yield board
    finally:
        board.stop()


def call_usb(board, *args, timeout=20):
    """`sp call USB ...`, retried while the board is still starting main.py (it answers REPL, exit 7, or nothing)."""
    deadline = time.monotonic() + timeout
    while True:
        done = sp_cmd('call', board.usb, *args, '--timeout', '3')
        if done.returncode not in (5, 7) or time.monotonic() > deadline:
            return done
        time.sleep(0.5)


def assert_taken_back(board):
    """mpremote takes the serving board back, as from any MicroPython program."""
    done = mpremote(board.usb, 'exec', 'print("at the REPL", 6 * 7)')
    assert done.returncode == 0 and 'at the REPL 42' in done.stdout, done.stdout + done.stderr


def test_deploy_reset_and_call_over_the_usb_cable(pico):
    """The newcomer's path: deployed, reset, and the USB cable answers; then mpremote has the board again."""
    lines = pico.lines()
    assert mpremote(pico.usb, 'reset').returncode == 0
    assert pico.wait_line('USB-CONNECTED', 20, lines)
    done = call_usb(pico, 'read', 'asc_time')
    assert done.returncode == 0 and done.stdout.startswith('okay: "'), done.stdout + done.stderr
    assert_taken_back(pico)
    done = sp_cmd('call', pico.usb, 'read', 'asc_time', '--timeout', '3')
    assert done.returncode == 7 and 'REPL' in done.stderr, done.stderr


def power_cycle(pico):
    """Power off and on, then wait until main.py serves (a Ctrl-C while it imports would stop it)."""
    pico.power_cycle()
    done = call_usb(pico, 'execute', 'echo', '"after power"')
    assert done.returncode == 0 and done.stdout.strip() == 'okay: "after power"', done.stdout + done.stderr


def test_the_board_serves_again_after_a_power_cycle(pico):
    power_cycle(pico)
    assert_taken_back(pico)


def echo_frame_holding_ctrl_c():
    """A whole echo request whose CRC bytes hold 0x03: a host's frame, which must not stop main.py as Ctrl-C."""
    for n in range(1000):
        framed = frame(*pure_json.pieces(sp.SID_EXECUTE_REQUEST, 0, sp.STATUS_OKAY, 'boot %d' % n))
        if b'\x03' in framed:
            return framed
    raise AssertionError('no CRC with a 0x03 byte in 1000 tries')


def test_frames_while_the_board_boots_do_not_stop_main_py(pico):
    """A host that calls while main.py still imports (sp call retries so): the 0x03 bytes of its frames are data."""
    pico.power_cycle()
    framed = echo_frame_holding_ctrl_c()
    with serial.Serial(pico.usb, 115200, exclusive=True) as port:
        for _ in range(8):   # through the imports (about a second on the emulated M0+), as sp call's tries do
            port.write(framed)
            time.sleep(0.2)
    done = call_usb(pico, 'execute', 'echo', '"after boot"')
    assert done.returncode == 0 and done.stdout.strip() == 'okay: "after boot"', done.stdout + done.stderr


def test_a_startup_delay_gives_a_board_with_repl_off_a_window_for_ctrl_c(pico, tmp_path):
    """REPL = False: Ctrl-C between frames is data, so a reset and a Ctrl-C within STARTUP_DELAY_MS take it back."""
    deployed = os.path.join(ROOT, 'boards', 'rp2040', 'config.py')
    with open(deployed) as f:
        original = f.read()
    changed = tmp_path / 'config.py'
    text = original.replace('REPL = True', 'REPL = False').replace('DELAY_MS = 0', 'DELAY_MS = 3000')
    assert text.count('REPL = False') == 1 and text.count('DELAY_MS = 3000') == 1, 'boards/rp2040/config.py changed'
    changed.write_text(text)
    assert mpremote(pico.usb, 'cp', str(changed), ':config.py').returncode == 0
    try:
        pico.power_cycle()
        with serial.Serial(pico.usb, 115200, timeout=0.5, exclusive=True) as port:
            got = b''
            for _ in range(4):
                port.write(b'\x03')
                got += port.read(200)
        assert b'KeyboardInterrupt' in got and b'>>> ' in got, got
    finally:   # the board stays at its REPL, where the next tests start it
        assert mpremote(pico.usb, 'cp', deployed, ':config.py').returncode == 0


def host_on(port, codec, secret):
    cls = sp.pure_json_protocol if codec == 'pure_json' else sp.struct_json_protocol
    return cls(sp.serial_stp(port), secret=secret, auto_auth=bool(secret), channel_name='host')


@pytest.mark.parametrize('session_v2', ['on', 'off'])
@pytest.mark.parametrize('secret', [None, SECRET])
@pytest.mark.parametrize('codec', ['pure_json', 'struct_json'])
def test_interop_over_usb_and_uart0(pico, codec, secret, session_v2):
    pico.start(streams=('stdio', 'uart'), codec=codec, secret=secret, session_v2=session_v2,
               channel_name='device')
    for port in (pico.usb, pico.uart0):
        host = host_on(port, codec, secret)
        try:
            exchange(host, 'server')
            assert host.session == (2 if session_v2 == 'on' else 1)
            assert host.macs == (session_v2 == 'on' and secret is not None)
        finally:
            host.close()
    assert_taken_back(pico)


def test_wrong_secret_is_refused_over_usb(pico):
    pico.start(secret=SECRET)
    refuses_a_wrong_secret(pico.usb)
    assert_taken_back(pico)


@pytest.mark.parametrize('where', ['uart0', 'usb'])
def test_hostile_frames_leave_the_pico_answering(pico, where):
    """Garbage (Ctrl-C bytes included: with REPL off they are data), deep nesting, huge numbers and strings."""
    pico.start(streams=('stdio', 'uart'), max_frame=1024, repl=False, session_v2='off')
    port = getattr(pico, where)
    send_hostile(port, 1024, 60)
    host = sp.pure_json_protocol(sp.serial_stp(port), channel_name='host')
    try:
        assert ask(host, sp.SID_EXECUTE_REQUEST, 0, 'still here').get_data() == 'still here'
        assert ask(host, sp.SID_READ_REQUEST, 0).get_status() == sp.STATUS_OKAY
    finally:
        host.close()
    power_cycle(pico)   # with REPL off only a reset takes the console back


def test_ctrl_c_inside_a_frame_is_data_and_between_frames_gives_the_repl_back(pico):
    pico.start()
    host = sp.pure_json_protocol(sp.serial_stp(pico.usb), channel_name='host')
    try:
        data = '\x03' * 8 + ':>:<'   # JSON escapes it, but 0x03 bytes come in CRCs and seqs: 40 frames hold some
        for n in range(40):
            assert host.request(sp.SID_EXECUTE_REQUEST, 0, [n, data], timeout=10).get_data() == [n, data]
    finally:
        host.close()
    with serial.Serial(pico.usb, 115200, timeout=5) as port:
        port.write(b'\r\x03')   # as mpremote sends it, then Ctrl-A for the raw REPL
        time.sleep(0.3)
        port.write(b'\r\x01')
        got = port.read_until(b'raw REPL; CTRL-B to exit\r\n>')
    assert got.endswith(b'raw REPL; CTRL-B to exit\r\n>'), got


RUN_CONFORMANCE = """from sp_common import stp
_deframer = stp.Deframer.__init__
def _board_sized(self, max_size):
    _deframer(self, min(max_size, 8192))
stp.Deframer.__init__ = _board_sized
import sys
sys.argv[:] = ['run_micropython.py', '/']
import run_micropython
"""


MAX_TOO_BIG = 1   # conformance cases too big for the Pico's heap: 1 in the runs measured


def conformance_on_a_pico_of_its_own(stack):
    """mpremote's run of the conformance suite on a board of its own: two minutes of an emulator's core, spent
    beside the other tests from the start of the session (conftest.Early)."""
    board = PicoBoard()
    stack.callback(board.stop)
    deploy(board)
    suite = sorted(name for name in os.listdir(CONFORMANCE) if name.endswith('.py'))
    done = mpremote(board.usb, 'mkdir', ':tests', '+', 'mkdir', ':tests/conformance', '+', 'cp',
                    *[os.path.join(CONFORMANCE, name) for name in suite], ':tests/conformance/')
    assert done.returncode == 0, done.stderr
    with tempfile.NamedTemporaryFile('w', suffix='.py', delete=False) as runner:
        runner.write(RUN_CONFORMANCE.replace('import run_micropython',
                                             "sys.path.insert(0, '/tests/conformance')\nimport run_micropython"))
    stack.callback(os.remove, runner.name)
    return mpremote(board.usb, 'run', runner.name, timeout=600)


@pytest.mark.starts_early.with_args(conformance_on_a_pico_of_its_own)
def test_conformance_suite_on_the_pico(request):
    skip_or_fail(missing())
    done = early_result(request)
    out = done.stdout
    match = re.search(r'conformance on micropython: (\d+) passed, (\d+) failed', out)
    assert match, out[-3000:] + done.stderr
    passed, failed = int(match.group(1)), int(match.group(2))
    # A failure is acceptable only as a test too big for this heap (a host-sized 70 kB frame); anything else
    # is a difference of the port.
    reports = out.split('FAIL ')[1:]
    errors = [r.split('\n')[0] for r in reports if 'MemoryError: ' not in r]
    assert not errors and failed <= MAX_TOO_BIG, out[-4000:]
    assert len(reports) == failed and passed + failed == _cpython_cases()
    line = 'conformance on micropython, emulated Pico (RP2040 port): %d passed, %d failed' % (passed, failed) + (
        ' (MemoryError: too big for the heap)' if failed else '')
    request.config.sp_conformance_lines = getattr(request.config, 'sp_conformance_lines', []) + [line]


def test_deploy_as_py_then_reset_serves(pico):
    done = sp_cmd('deploy', 'rp2040', '--port', pico.usb, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    listing = mpremote(pico.usb, 'ls', ':sp_common').stdout
    assert 'engine.py' in listing and '.mpy' not in listing, listing
    lines = pico.lines()
    assert mpremote(pico.usb, 'reset').returncode == 0
    assert pico.wait_line('USB-CONNECTED', 20, lines)
    done = call_usb(pico, 'write', 'value', '{"n": 1}')
    assert done.returncode == 0, done.stdout + done.stderr
    assert_taken_back(pico)


def readme_pico_lines():
    """The commands of the README's Pico quick start, each with what its comment says it gives."""
    with open(os.path.join(ROOT, 'README.md')) as f:
        text = f.read()
    block = text.split('## Quick start: a Raspberry Pi Pico', 1)[1].split('```sh\n', 1)[1].split('```', 1)[0]
    lines = []
    for line in block.strip().split('\n'):
        command, _, comment = line.partition('   #')
        comment = comment.strip()
        code = int(comment.split()[1].rstrip(':')) if comment.startswith('exit ') else 0
        lines.append((command.strip(), code, comment[len('okay: '):] if comment.startswith('okay: ') else None))
    return lines


def test_the_readme_pico_quick_start_runs_as_written(pico, tmp_path):
    lines = readme_pico_lines()
    assert len(lines) >= 8 and lines[0][0].startswith('sp deploy rp2040')
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH'])
    try:
        previous = ''
        for command, code, okay in lines:
            command = command.replace('/dev/ttyACM0', pico.usb)
            if previous.endswith('reset'):   # after a reset the board needs a moment to serve
                time.sleep(1.5)
            previous = command
            done = subprocess.run(['bash', '-c', command], cwd=str(tmp_path), env=env, capture_output=True,
                                  text=True, timeout=300)
            assert done.returncode == code, (command, done.stdout, done.stderr)
            if okay and not okay.startswith('"Fri'):   # the board's clock is its own
                assert done.stdout.strip() == 'okay: ' + okay, (command, done.stdout)
            elif okay:
                assert done.stdout.startswith('okay: "'), (command, done.stdout)
        assert 'back at the REPL' in done.stdout
    finally:
        mpremote(pico.usb, 'rm', ':secret.txt')
