"""Log lines that peers make (callers, boards, a broker), kept to sp_common.logtext's budget of lines a second."""
import logging
import time

from sp_common.logtext import admit

log = logging.getLogger('sp.gateway')


def log_within(budget: list, level: int, what: str, text: str, *args) -> None:
    """Logs a line unless budget (a list of three, [0, 0, 0] at first: logtext.admit) has had its lines this second:
    a peer could make one a message. The first line of a later second says how many lines on what were left out."""
    said = admit(budget, time.monotonic() * 1000)
    if said > 0:
        log.warning('%d more lines on %s left out (the counters have every one)', said, what)
    if said >= 0:
        log.log(level, text, *args)
