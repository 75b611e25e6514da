"""PrintLog: a module of its own, loaded only by a board with a log (or a warning) to print."""
import sys


class PrintLog:
    """A logger stand-in for the engine's log/hexlog: prints lines at or above level to a text stream."""

    def __init__(self, level=30, out=None, name='sp'):
        self.level = level
        self.out = out
        self.name = name

    def isEnabledFor(self, level):
        return level >= self.level

    def log(self, level, text):
        out = self.out or sys.stderr
        out.write('%s %d %s\n' % (self.name, level, text))

    def warning(self, text):
        if self.isEnabledFor(30):
            self.log(30, text)
