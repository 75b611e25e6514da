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


def readme_blocks(first_line):
    """The README's Python code blocks whose first line is first_line, as written."""
    with open(os.path.join(ROOT, 'README.md')) as f:
        blocks = f.read().split('```python\n')[1:]
    return [block.split('```')[0] for block in blocks if block.startswith(first_line + '\n')]


def test_the_readme_host_quick_start_runs_as_written(tmp_path):
    """server.py and client.py as the README gives them: the client prints the answer; with no server it says
    so and fails."""
    [server_py], [client_py] = readme_blocks('# server.py'), readme_blocks('# client.py, in a second terminal while '
                                                                         'server.py runs')
    (tmp_path / 'server.py').write_text(server_py)
    (tmp_path / 'client.py').write_text(client_py)
    env = dict(os.environ, PYTHONPATH=ROOT)
    alone = subprocess.run([sys.executable, 'client.py'], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=30)
    assert alone.returncode == 1 and 'no connection: is server.py running?' in alone.stderr
    server = subprocess.Popen([sys.executable, 'server.py'], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        client = subprocess.run([sys.executable, 'client.py'], cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=30)
    finally:
        server.kill()
        server.communicate(timeout=10)
    answer = ast.literal_eval(client.stdout.strip().splitlines()[-1])
    assert (answer['service_id'], answer['data_id'], answer['status']) == (11, 0, 0)
    assert time.strptime(answer['data'])
