"""Exit codes of the sp command, one per cause, and the error that carries one to the command line."""

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


class CommandError(Exception):
    """Ends a command: message for stderr, code for the exit status."""

    code = EXIT_USAGE

    def __init__(self, message: str, code: int = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
