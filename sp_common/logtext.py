"""The text of the engine's log lines, loaded only when a log wants them (a board without logging never does)."""
from binascii import hexlify

from . import names as c
from .engine import BUILTIN_DATA


def printable(text):
    """text with control characters escaped (\\xNN), so peer data cannot forge log lines."""
    for ch in text:
        if ch < ' ' or '\x7f' <= ch <= '\x9f':
            break
    else:
        return text
    out = []
    for ch in text:
        out.append('\\x%02x' % ord(ch) if ch < ' ' or '\x7f' <= ch <= '\x9f' else ch)
    return ''.join(out)


def describe(engine, sid, did):
    key = (sid, did)
    return 'service: %s, data_id: %s' % (engine._sid_names.get(sid, c.SID__NAMES.get(sid, sid)),
                                         engine._did_names.get(key, BUILTIN_DATA.get(key, did)))


def note(engine, text, sid, did):
    if sid is not None:   # the first %s names sid/did; the rest of text is taken as it is
        head, _, tail = text.partition('%s')
        text = head + describe(engine, sid, did) + tail
    return printable('prot%s: %s' % (engine.side, text))


def trace(engine, direction, sid, did, status, data, pieces):
    """The message line (at its status's level) and the hex line (DEBUG) of one message."""
    log = engine.log
    level = c.STATUS_LOG_LVL.get(status, c.WARNING)
    if log is not None and log.isEnabledFor(level):
        log.log(level, printable('prot%s: %s %s, status: %s, data: "%s"' % (
            engine.side, direction, describe(engine, sid, did),
            engine._status_names.get(status, c.STATUS__NAMES.get(status, status)), data)))
    log = engine.hexlog
    if log is not None and log.isEnabledFor(c.DEBUG):
        body = b''.join(pieces)
        log.log(c.DEBUG, 'comm%s: %s "(%d): %s"' % (engine.side, direction, len(body), hexlify(body, ' ').decode()))
