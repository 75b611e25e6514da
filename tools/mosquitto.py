"""A real mosquitto broker for the gateway's tests and benchmark: a free loopback port, a temporary config, no persistence."""
import os
import shutil
import socket
import subprocess
import time


def find_mosquitto():
    """Debian puts it in /usr/sbin, which a user's PATH may lack."""
    return shutil.which('mosquitto') or shutil.which('mosquitto', path='/usr/sbin')


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Mosquitto:
    """mosquitto on 127.0.0.1:port; stop() and start() again on the same port, as a broker restart."""

    def __init__(self, folder):
        self.command = find_mosquitto()
        if self.command is None:
            raise RuntimeError('mosquitto is not installed (Debian: apt-get install mosquitto; .ci/run installs it)')
        self.port = free_port()
        self.url = 'mqtt://127.0.0.1:%d' % self.port
        self.config = os.path.join(folder, 'mosquitto.conf')
        with open(self.config, 'w') as f:
            f.write('listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n' % self.port)
        self.proc = None
        self.start()

    def start(self, timeout=10.0):
        self.proc = subprocess.Popen([self.command, '-c', self.config], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(('127.0.0.1', self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError('mosquitto did not start: %s' % self.proc.stderr.read().decode())
                time.sleep(0.02)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.proc.stderr.close()
