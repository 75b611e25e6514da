"""Code a board may never run stays out of its heap: what loads when, on both interpreters.

Each case runs in a fresh interpreter (sys.modules starts empty), from the sources.
"""
import os
import subprocess
import sys

import pytest

from conftest import ROOT

SERVE_THEN_ASK = """
import sys
from sp_common import Engine, pure_json
from sp_common.stp import frame
server = Engine(False, session_v2=False)
server.register_callback(30, 0, lambda msg: (0, msg.get_data()))
server.feed(frame(*pure_json.pieces(30, 0, 0, 'x')))
print(len(server.data_to_send()) > 0, 'sp_common.calls' in sys.modules)
client = Engine(True, secret='s', auto_auth=True)
client.connection_made()   # its channel name and its offer of v2: the engine takes their answers itself
print(len(client.data_to_send()) > 0, 'sp_common.calls' in sys.modules)
server.send_msg(10, 0, None)   # a request of its own: now something waits for an answer
print('sp_common.calls' in sys.modules)
server.add_service(40, 41)
print(server._requests[40])
"""


@pytest.mark.parametrize('interpreter', [sys.executable, 'micropython'])
def test_the_calls_part_loads_on_first_use(interpreter):
    out = subprocess.run([interpreter, '-c', SERVE_THEN_ASK], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, MICROPYPATH=ROOT, PYTHONPATH=ROOT))
    assert out.stdout.split() == ['True', 'False', 'True', 'False', 'True', '41'], out.stderr


SERVE_THEN_SEND = """
import sys
from sp_micropython.protocol import Stream, pure_json_protocol
from sp_common import pure_json
from sp_common.stp import frame

class Pipe(Stream):
    def __init__(self, data):
        Stream.__init__(self)
        self.data = data
        self.out = []
        self._set(True)
    def readinto(self, buf):
        n = min(len(buf), len(self.data))
        buf[:n] = self.data[:n]
        self.data = self.data[n:]
        return n
    def write(self, data):
        self.out.append(data)

pipe = Pipe(frame(*pure_json.pieces(30, 0, 0, 'x')))
prot = pure_json_protocol(pipe, session_v2=False)
prot.register_callback(30, 0, lambda msg: (0, msg.get_data()))
while prot.poll():
    pass
print(len(pipe.out), 'sp_common.calls' in sys.modules)
print(prot.send(30, 0, 'y'), 'sp_common.calls' in sys.modules, len(pipe.out))
"""


def test_a_device_that_only_serves_never_loads_the_calls_part():
    out = subprocess.run(['micropython', '-c', SERVE_THEN_SEND], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, env=dict(os.environ, MICROPYPATH=ROOT))
    assert out.stdout.split() == ['1', 'False', 'True', 'True', '2'], out.stderr


CONNECT_TWICE = """
import sys
from sp_common import Engine

def pump(a, b):
    for _ in range(20):
        x = a.data_to_send()
        y = b.data_to_send()
        if not x and not y:
            return
        if x:
            b.feed(x)
        if y:
            a.feed(y)

server = Engine(False, secret='s', clock=lambda: 0)
client = Engine(True, secret='s', auto_auth=True, clock=lambda: 0)
for connection in range(2):
    server.connection_made()
    client.connection_made()
    pump(client, server)
    print(client.is_trusted(), server.is_trusted(), client.session, server.session, client.rx_mac is not None,
          'sp_common.session' in sys.modules, 'sp_common.handshake' in sys.modules)
"""


@pytest.mark.parametrize('interpreter', [sys.executable, 'micropython'])
def test_session_and_handshake_code_load_with_the_first_connection_and_stay(interpreter):
    """Loaded by a visible import in the step that needs them; nothing is unloaded in the middle of feed()
    (the heap of the smallest boards is the build's matter: frozen, the code costs none)."""
    out = subprocess.run([interpreter, '-c', CONNECT_TWICE], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, MICROPYPATH=ROOT, PYTHONPATH=ROOT))
    assert out.stdout.split() == ['True', 'True', '2', '2', 'True', 'True', 'True'] * 2, out.stderr


OFFER_UNANSWERED = """
import sys
from sp_common import Engine
now = [0]
client = Engine(True, clock=lambda: now[0])
client.connection_made()   # its name and its offer of v2, which nobody answers
print(client.session, 'sp_common.session' in sys.modules)
now[0] = client.deadline_ms()
client.tick()
print(client.session, 'sp_common.session' in sys.modules)
"""


@pytest.mark.parametrize('interpreter', [sys.executable, 'micropython'])
def test_an_unanswered_offer_settles_on_the_original_wire(interpreter):
    out = subprocess.run([interpreter, '-c', OFFER_UNANSWERED], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, MICROPYPATH=ROOT, PYTHONPATH=ROOT))
    assert out.stdout.split() == ['None', 'True', '1', 'True'], out.stderr


def test_a_module_another_thread_is_loading_is_handed_out_whole(tmp_path, monkeypatch):
    """Host threads (a gateway's boards, a server's connections) load the session code at once on their
    first connections: the second one waits for the first one's import instead of getting half a module."""
    import threading
    import time

    import sp_common
    (tmp_path / 'slow_to_load.py').write_text('import time\ntime.sleep(0.3)\ndone = True\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    seen = []
    first = threading.Thread(target=lambda: seen.append(sp_common.load('slow_to_load').done))
    first.start()
    time.sleep(0.1)   # the first thread is inside the module's import now
    seen.append(sp_common.load('slow_to_load').done)
    first.join()
    assert seen == [True, True]
