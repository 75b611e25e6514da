"""boards/unix/main.py as a subprocess, its console on a raw pty: the board that tests and benchmarks drive.

Settings go in as SP_<NAME> environment variables (see boards/unix/config.py);
the host side reads and writes the pty's master end, self.master.
"""
import os
import subprocess
import tempfile
import tty

from sp_tool.virtual_board import micropython_command

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class UnixBoard:
    def __init__(self, heapsize, mpy_dir=None, prefix=(), raw=True, **settings):
        """prefix: a command the interpreter runs under (valgrind, for one); raw: the pty in raw mode, as a host
        program wants it (else cooked, as a shell leaves a terminal)."""
        env = dict(os.environ)
        env.pop('MICROPYPATH', None)
        if mpy_dir:
            env['MICROPYPATH'] = mpy_dir
        for key, value in settings.items():
            env['SP_' + key.upper()] = str(value)
        master, slave = os.openpty()
        if raw:
            tty.setraw(slave)
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([*prefix, micropython_command(), '-X', 'heapsize=' + heapsize,
                                      'boards/unix/main.py'], stdin=slave, stdout=slave, stderr=self.err, cwd=ROOT,
                                     env=env)
        os.close(slave)
        self.master = master

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode(errors='replace')

    def stop(self, timeout=5):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout)
        os.close(self.master)
        self.err.close()
