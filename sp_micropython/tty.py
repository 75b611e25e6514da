"""Terminal timing of stdin on a port with termios (the unix port): what sp_micropython.stdio needs there."""
import termios


def timing(values):
    """Sets stdin's terminal timing, VMIN and VTIME, to values; returns the old ones, or None.

    With both 0 one read() returns what is there without waiting: so the unix
    port reads stdin on a terminal (the virtual board's pty). termios gives
    these two control characters as ints, the others as bytes. None where
    stdin is no terminal (a pipe).
    """
    try:
        attrs = termios.tcgetattr(0)
    except OSError:
        return None
    cc = attrs[6]
    old = []
    for i in range(len(cc)):
        if isinstance(cc[i], int):
            old.append(cc[i])
            cc[i] = values[len(old) - 1]
    termios.tcsetattr(0, termios.TCSANOW, attrs)
    return old
