"""What the emulated boards need from outside the repository (a folder beside it, ../shared, and commands), and
how their launchers run in the foreground until Ctrl-C.

Each launcher names its folder, the files it reads there and the commands it
runs; missing() says in one sentence what is absent and how to get it, or
None when all is there, so that a test can skip (or fail under CI) with it.
"""
import os
import shutil
import signal
import sys
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shared_dir(env, name):
    """$env, else ../shared/name beside the repository."""
    return os.environ.get(env) or os.path.join(os.path.dirname(ROOT), 'shared', name)


def missing(what, env, name, files, commands, debian):
    """Why `what` cannot run here (files absent from its folder, commands not installed), or None."""
    folder = shared_dir(env, name)
    absent = [file for file in files if not os.path.isfile(os.path.join(folder, file))]
    if absent:
        return ('no %s: %s not found in %s. Put them in ../shared/%s beside the repository or point %s at '
                'their folder (see docs/testing.md)' % (what, ', '.join(absent), folder, name, env))
    tools = [command for command in commands if shutil.which(command) is None]
    if tools:
        return '%s not installed (Debian: apt-get install %s)' % (', '.join(tools), debian)
    return None


def stop_on_signals():
    """An event that Ctrl-C, SIGTERM and SIGHUP set: how a launcher in the foreground ends cleanly."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *a: stop.set())
    return stop


def run_until(stop, proc, what, log):
    """Waits for stop (0) or for the emulator proc to exit (1, with the end of log() on stderr)."""
    while not stop.wait(0.5):
        if proc.poll() is not None:
            print('%s: the emulator exited: %r' % (what, log()[-300:]), file=sys.stderr)
            return 1
    return 0
