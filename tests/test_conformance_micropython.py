"""The conformance suite, run on the real MicroPython interpreter."""
import os
import re
import subprocess
import sys

from conftest import ROOT

CONFORMANCE = os.path.join(ROOT, 'tests', 'conformance')


MODULES = ('test_attacks', 'test_codec', 'test_crc', 'test_engine', 'test_errors', 'test_session', 'test_stp')


def _cpython_cases():
    sys.path.insert(0, CONFORMANCE)
    count = 0
    for name in MODULES:
        module = __import__(name)
        count += sum(1 for attr in dir(module) if attr.startswith('test_'))
    listed = sorted(f[:-3] for f in os.listdir(CONFORMANCE) if f.startswith('test_') and f.endswith('.py'))
    assert listed == list(MODULES), 'run_micropython.py must list every module'
    return count


def _run(*flags):
    return subprocess.run(['micropython', *flags, os.path.join(CONFORMANCE, 'run_micropython.py'), ROOT],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_conformance_suite_passes_on_micropython(request):
    result = _run()
    print(result.stdout, result.stderr)
    match = re.search(r'conformance on micropython: (\d+) passed, (\d+) failed', result.stdout)
    assert match, result.stdout + result.stderr
    request.config.sp_conformance_lines = [match.group(0)]
    assert result.returncode == 0, result.stdout
    assert int(match.group(2)) == 0
    assert int(match.group(1)) == _cpython_cases()


def test_crc_fallback_is_used_when_binascii_lacks_crc32():
    """A port built without binascii.crc32 gets the table, with the same frames."""
    code = (
        "import sys\n"
        "sys.path.insert(0, %r)\n"
        "import binascii\n"
        "class Stub:\n"
        "    hexlify = binascii.hexlify\n"
        "    unhexlify = binascii.unhexlify\n"
        "sys.modules['binascii'] = Stub\n"
        "import sp_common.codec as c, sp_common.crc32 as t\n"
        "print(c.crc32 is t.crc32, hex(c.crc32(b'123456789')))\n"
        "from sp_common import pure_json\n"
        "print(pure_json.encode(10, 0, 0, None)[-4:])\n") % ROOT
    result = subprocess.run(['micropython', '-c', code], capture_output=True, text=True, timeout=60)
    assert result.stdout.split('\n')[:2] == ['True 0xcbf43926', "b'E\\x05{\\xb4'"], result.stdout + result.stderr
