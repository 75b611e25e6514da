"""PrintLog: a module of its own, loaded only by a board with a log (or a warning) to print."""
import sys


class PrintLog:
    """A logger stand-in for the engine's log/hexlog: prints lines at or above level.

    stream: the device stream that carries frames on the console, where a board's stderr goes too: lines go
    out through it, between whole frames, and never hold the board up on a host that reads nothing. Without
    one, lines go to sys.stderr. No line holds ':<', which starts a frame: a peer's text in a log line
    cannot pass for a frame the board sent.
    """

    def __init__(self, level=30, stream=None, name='sp'):
        self.level = level
        self.stream = stream
        self.name = name

    def isEnabledFor(self, level):
        return level >= self.level

    def log(self, level, text):
        line = ('%s %d %s\n' % (self.name, level, text)).replace(':<', ':\\x3c')
        if self.stream is None:
            sys.stderr.write(line)
        else:
            self.stream.write(line.encode())
