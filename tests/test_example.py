"""The host example from the original documentation runs unchanged but for its imports."""
import ast
import os
import subprocess
import sys
import time

from conftest import ROOT, free_port


def test_example_client_reads_asc_time_from_example_server():
    port = str(free_port())
    server = subprocess.Popen([sys.executable, os.path.join(ROOT, 'examples', 'example_server.py'), port],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == 'serving on port ' + port
        client = subprocess.run([sys.executable, os.path.join(ROOT, 'examples', 'example_client.py'), port],
                                cwd=ROOT, capture_output=True, text=True, timeout=30)
    finally:
        server.terminate()
        server_log = server.communicate(timeout=10)[1]
    answer = ast.literal_eval(client.stdout.strip().splitlines()[-1])
    assert (answer['service_id'], answer['data_id'], answer['status']) == (11, 0, 0)
    assert time.strptime(answer['data'])
    assert 'prot-client: RX <- service: read data response, data_id: asc_time, status: okay' in client.stderr
    assert 'authentification response, data_id: key, status: okay, data: "True"' in server_log
    assert 'WARNING' not in server_log + client.stderr    # a normal run: the server took the client's channel name
