"""Exit codes of the sp command, one per cause, and the error that carries one to the command line."""
import importlib.util

EXIT_OK = 0
EXIT_STATUS = 1        # the board answered, with a status other than okay
EXIT_USAGE = 2         # a wrong command line (argparse's own code)
EXIT_PORT = 3          # the port cannot be opened
EXIT_REFUSED = 4       # nothing accepts connections at the TCP address
EXIT_TIMEOUT = 5       # no answer in time
EXIT_AUTH = 6          # authentication refused, or the board wants a secret
EXIT_REPL = 7          # a MicroPython REPL answered instead of the protocol
EXIT_CRC = 8           # frames with a wrong CRC-32 were seen
EXIT_BOARD = 9         # the virtual board cannot start
EXIT_DEPLOY = 10       # copying to the board failed
EXIT_INTERRUPTED = 130  # Ctrl-C


def require(module: str, package: str, extra: str, code: int = EXIT_USAGE) -> None:
    """A package of an extra that is not installed: name the extra that brings it, not an ImportError's traceback.
    The extras keep the library installable wherever pyserial is."""
    if importlib.util.find_spec(module) is None:
        raise CommandError("%s is not installed: pip install 'sp-dual[%s]'" % (package, extra), code)


class CommandError(Exception):
    """Ends a command: message for stderr, code for the exit status."""

    code = EXIT_USAGE
    answer = None   # the board's answer, when the error is what it says: --json prints both in one object

    def __init__(self, message: str, code: int = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
