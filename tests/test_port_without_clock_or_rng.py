"""The device packages on a port without os.urandom, time.time or time.localtime (the unix port with them hidden)."""
import subprocess

from conftest import ROOT

# Hides what a bare-metal port lacks, then starts the board code the way a board's main.py does.
PRELUDE = """
import sys
sys.path.insert(0, %r)
import os, time
class Os:
    pass
class Time:
    pass
for name in dir(os):
    if name != 'urandom':
        setattr(Os, name, getattr(os, name))
for name in dir(time):
    if name not in ('time', 'localtime', 'gmtime', 'mktime'):
        setattr(Time, name, getattr(time, name))
sys.modules['os'] = Os
sys.modules['time'] = Time
""" % ROOT


def run(code):
    result = subprocess.run(['micropython', '-c', PRELUDE + code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout, result.stderr


def test_weak_stand_in_is_used_with_one_warning():
    out, err = run("""
from sp_common import entropy
from sp_micropython.board import make_protocols
assert not entropy.available()
class Config:
    STREAMS = ()
    CODEC = 'pure_json'
    SECRET = 's'
make_protocols(Config)
seeds = set(entropy.random_bytes(32) for i in range(20))
print(len(seeds), len(entropy.random_bytes(40)))
""")
    assert out.split() == ['20', '40']
    assert err.count('no hardware random source on this port') == 1, err
    assert 'handshake is weaker' in err


def test_a_board_entropy_function_wins_and_warns_nothing():
    out, err = run("""
from sp_common import entropy
from sp_micropython.board import make_protocols
class Config:
    STREAMS = ()
    CODEC = 'pure_json'
    SECRET = 's'
    ENTROPY = lambda n: bytes(range(n))
make_protocols(Config)
print(entropy.random_bytes(4))
""")
    assert out.strip() == "b'\\x00\\x01\\x02\\x03'"
    assert err == ''


def test_no_source_at_all_is_a_clear_error():
    out, err = run("""
from sp_common import entropy
try:
    entropy.random_bytes(4)
except OSError as e:
    print(e)
""")
    assert 'no random source' in out


def test_asc_time_counts_from_start_without_a_clock():
    out, err = run("""
from sp_common.engine import Engine
from sp_micropython.demo import add_demo_services, asctime
engine = Engine(False)
add_demo_services(engine)
print(asctime())
print(engine._callbacks[(10, 0)][0](None)[1])
""")
    lines = out.splitlines()
    assert lines[0] == lines[1]
    assert lines[0].startswith('Sat Jan  1 00:00:0') and lines[0].endswith(' 2000'), lines
