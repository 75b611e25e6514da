"""What a user installs: the wheel, run from a fresh virtual environment outside the checkout; the library with
pyserial alone; the sdist; the mip package.json."""
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tarfile
import time

import serial

import pytest

from conftest import ROOT
from sp_common import frame
from sp_tool.errors import EXIT_DEPLOY
from sp_tool.files import board_names, package_json
from sp_tool.virtual_board import VirtualBoard

SOURCES = shutil.ignore_patterns('.*', '__pycache__', '*.egg-info', 'build', 'dist', '*.pyc', '*.mpy')
GOLDEN_READ = '{"data_id": 0, "service_id": 10, "status": 0, "data": null}'


@pytest.fixture(scope='module')
def venv(tmp_path_factory):
    """A venv holding only the built wheel; the dependencies come from this interpreter's site-packages.

    Those are put on its path by a .pth file rather than --system-site-packages, which from inside a virtual
    environment would give the base interpreter's packages instead of this one's.
    """
    tmp = tmp_path_factory.mktemp('wheel')
    shutil.copytree(ROOT, tmp / 'src', ignore=SOURCES)
    built = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-v', '-w',
                            str(tmp / 'dist'), str(tmp / 'src')], check=True, capture_output=True, text=True)
    warnings = [line for line in (built.stdout + built.stderr).splitlines() if 'warn' in line.lower()]
    assert not [line for line in warnings if 'licen' in line.lower() or 'deprecat' in line.lower()], warnings
    wheel, = (tmp / 'dist').iterdir()
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(tmp / 'venv')], check=True)
    python = str(tmp / 'venv' / 'bin' / 'python')
    inner = subprocess.run([python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                           check=True, capture_output=True, text=True).stdout.strip()
    outer = sorted({sysconfig.get_paths()['purelib'], sysconfig.get_paths()['platlib']})
    with open(os.path.join(inner, 'dependencies.pth'), 'w') as f:
        f.write('\n'.join(outer) + '\n')
    subprocess.run([python, '-m', 'pip', 'install', '--no-deps', '-q', str(wheel)], check=True, capture_output=True)
    work = tmp / 'elsewhere'   # not the checkout: nothing to find there
    work.mkdir()
    return tmp / 'venv' / 'bin', work


def run(venv, *args, timeout=60):
    bin_dir, work = venv
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    return subprocess.run([str(bin_dir / args[0])] + list(args[1:]), capture_output=True, text=True, timeout=timeout,
                          cwd=work, env=env, stdin=subprocess.DEVNULL)


def test_the_installed_wheel_is_what_runs(venv):
    r = run(venv, 'python', '-c', 'import sp_tool.files as f; print(f.__file__); print(f.boards_dir())')
    assert r.returncode == 0, r.stderr
    module, boards = r.stdout.split()
    assert module.startswith(str(venv[0].parent)) and boards == os.path.join(os.path.dirname(module), 'boards')
    assert sorted(os.listdir(boards)) == board_names()
    for package in ('sp_cpython', 'sp_tool'):   # type hints for the users' checkers
        assert os.path.isfile(os.path.join(os.path.dirname(os.path.dirname(module)), package, 'py.typed'))
    r = run(venv, 'sp', '--help')
    assert r.returncode == 0 and r.stdout.startswith('usage: sp '), r.stderr
    assert 'deploy' in r.stdout and 'monitor' in r.stdout


def test_board_deploy_reset_call_from_the_wheel(venv):
    bin_dir, work = venv
    board = subprocess.Popen([str(bin_dir / 'sp'), 'board', '--empty', '--tcp-port', '0'], cwd=work,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = board.stdout.readline().strip()
        assert port.startswith('/dev/pts/'), board.stderr.read()
        r = run(venv, 'sp', 'deploy', 'unix', '--port', port)
        assert r.returncode == 0, r.stderr
        assert '] main.py (' in r.stdout and '] sp_common/engine.py (' in r.stdout
        assert r.stdout.rstrip().splitlines()[-1].startswith('deployed ')
        assert 'Enter or kill -USR1' in board.stderr.readline()
        board.stdin.write('\n')   # the reset button: main.py starts
        board.stdin.flush()
        assert board.stderr.readline() == 'reset\n'
        r = run(venv, 'sp', 'call', port, 'read', 'asc_time')
        assert r.returncode == 0, r.stderr
        assert time.strptime(r.stdout.strip()[len('okay: "'):-1])
    finally:
        board.send_signal(signal.SIGINT)
        assert board.wait(10) == 130
        for f in (board.stdin, board.stdout, board.stderr):
            f.close()


def test_monitor_from_the_wheel(venv):
    capture = venv[1] / 'capture.bin'
    capture.write_bytes(frame(GOLDEN_READ.encode() + bytes.fromhex('45057bb4')))
    r = run(venv, 'sp', 'monitor', str(capture))
    assert r.returncode == 0, r.stderr
    assert r.stdout == '@71 read data request, data_id: asc_time, status: okay, data: null, crc: ok\n'


@pytest.fixture(scope='module')
def bare_venv(tmp_path_factory):
    """A venv where only this checkout and pyserial can be imported: the library as it installs where pyserial
    does, without the deploy, board or gateway extras."""
    tmp = tmp_path_factory.mktemp('bare')
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(tmp / 'venv')], check=True)
    python = str(tmp / 'venv' / 'bin' / 'python')
    inner = subprocess.run([python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                           check=True, capture_output=True, text=True).stdout.strip()
    os.symlink(os.path.dirname(serial.__file__), os.path.join(inner, 'serial'))
    with open(os.path.join(inner, 'checkout.pth'), 'w') as f:
        f.write(ROOT + '\n')
    return python


def bare(python, *args, timeout=60):
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    return subprocess.run([python, '-m', 'sp_tool'] + list(args), capture_output=True, text=True, timeout=timeout,
                          env=env, stdin=subprocess.DEVNULL)


def test_the_library_alone_serves_and_calls(bare_venv):
    r = subprocess.run([bare_venv, '-c', 'import mpremote'], capture_output=True)
    assert r.returncode != 0   # truly bare
    serve = subprocess.Popen([bare_venv, '-m', 'sp_tool', 'serve', '--tcp', '127.0.0.1:0'], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        line = serve.stdout.readline()
        assert line.startswith('serving the demo services on tcp://'), serve.stderr.read()
        r = bare(bare_venv, 'call', line.split()[-1], 'execute', 'echo', '"bare"')
        assert (r.returncode, r.stdout) == (0, 'okay: "bare"\n'), r.stderr
    finally:
        serve.send_signal(signal.SIGINT)
        serve.wait(10)
        serve.stdout.close()
        serve.stderr.close()


def test_a_call_through_a_broker_needs_no_extra(bare_venv):
    """The gateway and BoardClient speak MQTT themselves: without any extra a broker that is not there is named."""
    r = bare(bare_venv, 'call', 'mqtt://127.0.0.1:1/kitchen', 'read', '0')
    assert r.returncode == 4 and 'Traceback' not in r.stderr, r.stderr
    assert 'cannot reach the broker at mqtt://127.0.0.1:1' in r.stderr


@pytest.mark.parametrize('how', [[], ['--mpy'], ['--romfs']])
def test_deploy_without_mpremote_names_the_extra(bare_venv, how):
    r = bare(bare_venv, 'deploy', 'unix', '--port', '/dev/null', *how)
    assert r.returncode == EXIT_DEPLOY, r.stderr
    assert "pip install 'sp-dual[deploy]'" in r.stderr and 'Traceback' not in r.stderr


def test_sdist_carries_the_mip_package_list(tmp_path):
    shutil.copytree(ROOT, tmp_path / 'src', ignore=SOURCES)
    r = subprocess.run([sys.executable, '-c', 'from setuptools import build_meta; '
                                              'print(build_meta.build_sdist(%r))' % str(tmp_path / 'dist')],
                       cwd=str(tmp_path / 'src'), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    with tarfile.open(str(tmp_path / 'dist' / r.stdout.split()[-1])) as sdist:
        names = {name.split('/', 1)[1] for name in sdist.getnames() if '/' in name}
    assert {'package.json', 'manifest.py', 'LICENSE', 'boards/unix/main.py'} <= names


def test_package_json_is_generated_from_the_device_files():
    with open(os.path.join(ROOT, 'package.json')) as f:
        assert f.read() == package_json(), 'package.json is stale: python -m sp_tool.files --package-json > package.json'


def test_mip_install_from_the_local_package_json():
    with VirtualBoard(env={'SP_TCP_PORT': 'off'}) as board:
        mpremote = [sys.executable, '-m', 'mpremote', 'connect', board.port, 'resume']
        r = subprocess.run(mpremote + ['mip', 'install', '--target', 'lib', os.path.join(ROOT, 'package.json')],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr
        assert r.stdout.count('Installing: lib/') == len(json.load(open(os.path.join(ROOT, 'package.json')))['urls'])
        r = subprocess.run(mpremote + ['exec', 'import sp_common; print(sp_common.__file__); '
                                               'print(sp_common.pure_json.encode(10, 0, 0, None)[:-4].decode())'],
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        assert r.stdout.split()[:1] == ['lib/sp_common/__init__.py'] and GOLDEN_READ in r.stdout, r.stderr
