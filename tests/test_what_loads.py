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
print(len(server.data_to_send()) > 0, 'sp_common.replies' in sys.modules)
client = Engine(True, secret='s', auto_auth=True, session_v2=False)
client.connection_made()   # its channel name and a seed request: the engine takes their answers itself
print(len(client.data_to_send()) > 0, 'sp_common.replies' in sys.modules)
server.send_msg(10, 0, None)   # a request of its own: now something waits for an answer
print('sp_common.replies' in sys.modules)
"""


@pytest.mark.parametrize('interpreter', [sys.executable, 'micropython'])
def test_the_requester_side_loads_with_the_first_request(interpreter):
    out = subprocess.run([interpreter, '-c', SERVE_THEN_ASK], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, MICROPYPATH=ROOT, PYTHONPATH=ROOT))
    assert out.stdout.split() == ['True', 'False', 'True', 'False', 'True'], out.stderr
