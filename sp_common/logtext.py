"""The text of the engine's log lines, loaded only when a log wants them (a board without logging never does).

The engine names an event (a counter, or one of the notes below); this
module holds its level and words, so that no English costs a board heap.
"""
from binascii import hexlify

from . import load, names as c
from .engine import BUILTIN_DATA

_W = c.WARNING
_E = c.ERROR

# event -> (level, text); the first %s names the message's service and data
# id, and a detail, if any, ends the line after ': '.
TEXTS = {
    # counters of dropped messages
    'crc_errors': (_E, 'dropped a message with a wrong checksum'),
    'format_errors': (_W, 'dropped a message'),
    'mac_errors': (_W, 'dropped a message'),
    'unknown': (_W, 'no service or data for %s'),
    'auth_rejected': (_W, 'dropped %s from an untrusted peer'),
    'callback_errors': (_E, 'callback for %s failed'),
    'buffer_dropped': (_W, 'dropped a message: the receive buffer is full, or the message larger than it'),
    'out_of_turn': (_W, 'dropped an out-of-turn %s'),
    'unsolicited': (_W, 'dropped %s nobody is waiting for'),
    'stale': (_W, 'dropped %s that answers no waiting request'),
    'bad_names': (_W, 'refused a channel name that is not short printable text'),
    'replayed': (_W, 'dropped a replayed or reordered frame'),
    'downgrade': (_W, 'dropped an original frame in a session v2'),
    'refused_frames': (_W, 'dropped a message: the connection is refused'),
    'wrong_keys': (_W, 'authentification failed: wrong key'),
    # other events
    'failed': (_E, 'dropped a message'),
    'overwrite': (_W, 'overwriting callback for %s'),
    'renamed': (_W, 'channel name replaced by the client\'s'),
    'original': (c.INFO, 'original wire'),
    'forced_original': (_E, 'not signing the seed: the server speaks session v2, yet the wire is the original (moved '
                            'there on the way, or the session\'s answer was lost), where no frame is authenticated'),
    'refused': (_E, 'connection refused: the peer does not speak session v2 (session_v2=\'required\'), or spoke '
                    'the original wire into a session with MACs'),
    'v2': (c.INFO, 'session v2'),
    'v2_macs': (c.INFO, 'session v2 with MACs'),
    'follow': (_W, 'the client did not hear the session answer: original wire'),
    'no_secret': (_W, 'seed refused: no secret here'),
    'held': (_W, 'seed refused: too many wrong keys'),
    'held_from_now': (_W, 'authentification failed: repeated wrong keys, seeds held back from now on'),
    'no_seed': (_W, 'authentification failed: no seed'),
    'rejected': (_W, 'authentification failed: key rejected'),
    'cannot_send': (_W, 'cannot send: no connection, the wire not settled or (with auto_auth) no trust yet'),
    'silent_peer': (_W, 'dropping a peer that did not speak (with a secret: authenticate) in time'),
    'made_room': (_W, 'dropping a peer on probation, or silent, to make room: a newcomer waits'),
    'no_room': (_W, 'dropping this newcomer: every peer it could take the place of is busy'),
    'noisy_peer': (_W, 'dropping a peer that sent frames that are no message before proving itself'),
    'stopped_reading': (_W, 'dropping a peer that stopped reading: what it did not take is lost'),
    'link_failed': (c.INFO, 'the link failed'),
}


def _unprintable(code):
    """A control character, a lone surrogate (which a strict UTF-8 terminal cannot even take), or a character
    that shows nothing or changes how the text around it shows, so that two ids differing by one would look
    alike: every format character (the soft hyphen, zero-width and direction marks, bidirectional embeddings,
    overrides and isolates, the BOM, interlinear annotations, tags), the line and paragraph separators,
    variation selectors, the combining grapheme joiner and the Hangul fillers. (Comparisons, not a table: they
    cost a board no heap.)"""
    if code < 0xad:
        return code < 0x20 or 0x7f <= code <= 0x9f
    return code == 0xad or code == 0x34f or 0x600 <= code <= 0x605 or code == 0x61c or code == 0x6dd or \
        code == 0x70f or 0x890 <= code <= 0x891 or code == 0x8e2 or 0x115f <= code <= 0x1160 or code == 0x180e or \
        0x200b <= code <= 0x200f or 0x2028 <= code <= 0x202e or 0x2060 <= code <= 0x206f or code == 0x3164 or \
        0xd800 <= code <= 0xdfff or 0xfe00 <= code <= 0xfe0f or code == 0xfeff or code == 0xffa0 or \
        0xfff9 <= code <= 0xfffb or code == 0x110bd or code == 0x110cd or 0x13430 <= code <= 0x1343f or \
        0x1bca0 <= code <= 0x1bca3 or 0x1d173 <= code <= 0x1d17a or 0xe0000 <= code <= 0xe0fff


def printable(text):
    """text with control characters and lone surrogates escaped (\\xNN, \\uNNNN; on a board, bytes that are no
    UTF-8 too), so peer data can neither forge log lines nor stop the program that prints them. Read as UTF-8
    bytes, never by its characters: see sp_common.nonascii.utf8_at."""
    data = text.encode('utf-8', 'surrogatepass')
    if len(data) == len(text):   # ASCII
        for byte in data:
            if byte < 0x20 or byte == 0x7f:
                break
        else:
            return text
    utf8_at = load('sp_common.nonascii').utf8_at
    out = []
    i = shown = 0   # data[shown:i]: characters that show as they are, written out in one piece
    while i < len(data):
        byte = data[i]
        if 0x20 <= byte < 0x7f:
            i += 1
            continue
        try:
            code, size = utf8_at(data, i)
        except ValueError:
            code, size = None, 1
        if code is not None and not _unprintable(code):
            i += size
            continue
        out.append(data[shown:i].decode())
        out.append('\\x%02x' % data[i] if code is None else ('\\x%02x' if code < 0x100 else '\\u%04x') % code)
        i = shown = i + size
    out.append(data[shown:].decode())
    return ''.join(out)


def _side(engine):
    return '-client' if engine.is_client else '-server'


LINES_A_SECOND = 20   # event lines one engine logs in a second of its clock; the rest are counted, not logged
DATA_CHARS = 200      # of a message's data in its line: a peer's 8 KiB frames make no 8 KiB lines
ID_CHARS = 40         # of an id in a line: a peer's string data id, or a number written out
HEX_BYTES = 1024      # of a frame in its hex line (DEBUG): a peer's 64 KiB frames make no 192 KB lines


def cut(value, chars):
    """str(value), cut to chars characters and its length said."""
    text = str(value)
    return text if len(text) <= chars else '%s... (%d characters)' % (text[:chars], len(text))


def peer_id(value):
    """A data id as a peer sent it: a number as it is, a string in quotes with its own quotes escaped, so that it
    cannot read as the line's next fields (data_id: "x\\", status: okay"), cut to ID_CHARS."""
    if not isinstance(value, str):
        return cut(value, ID_CHARS)
    text = value[:ID_CHARS].replace('\\', '\\\\').replace('"', '\\"')
    return '"%s"' % text if len(value) <= ID_CHARS else '"%s..." (%d characters)' % (text, len(value))


def describe(engine, sid, did):
    key = (sid, did)
    name = engine._did_names.get(key, BUILTIN_DATA.get(key))
    return 'service: %s, data_id: %s' % (cut(engine._sid_names.get(sid, c.SID__NAMES.get(sid, sid)), ID_CHARS),
                                         peer_id(did) if name is None else cut(name, ID_CHARS))


def admit(budget, now_ms):
    """One more line in budget, [this second's start in ms, its lines, those left out]: -1 when it is left out, past
    LINES_A_SECOND lines this second; else how many the second before left out, for the caller to say first.
    The engine's event lines and the gateway's lines on callers' bad input keep such a budget."""
    said = 0
    if now_ms - budget[0] >= 1000:
        said = budget[2]
        budget[0], budget[1], budget[2] = now_ms, 0, 0
    budget[1] += 1
    if budget[1] <= LINES_A_SECOND:
        return said
    budget[2] += 1
    return -1


def _left_out(engine, kind=0):
    """True past LINES_A_SECOND lines of kind (0: event lines, 1: message lines, see trace) in this second: four
    bytes of junk (':<:>') make a line of a hundred, and a peer would fill the log. Each kind keeps its own
    budget, so that a peer's messages cannot crowd out the events they cause. The first line of a later second
    says how many were left out."""
    if engine.clock is None:
        return False
    now = engine.clock()
    budgets = engine.log_budget
    if budgets is None:
        budgets = engine.log_budget = ([now, 0, 0], [now, 0, 0])
    said = admit(budgets[kind], now)
    if said > 0:
        what = ('event', 'message')[kind]
        log = engine.hexlog if engine.log is None else engine.log   # (a hex log alone keeps a budget too)
        log.log(_W, 'prot%s: %d more %s lines left out (the counters count every message and every drop)' % (
            _side(engine), said, what))
    return said < 0


def note(engine, what, sid, did, detail):
    """Logs event what on engine.log, at its level."""
    level, text = TEXTS[what]
    log = engine.log
    if not log.isEnabledFor(level) or _left_out(engine):
        return
    if sid is not None:
        head, _, tail = text.partition('%s')
        text = head + describe(engine, sid, did) + tail
    if isinstance(detail, BaseException):
        detail = '%s: %s' % (type(detail).__name__, detail)
    if detail is not None:   # (cut: a callback's error may quote the peer's data)
        text = '%s: %s' % (text, cut(detail, DATA_CHARS))
    log.log(level, printable('prot%s: %s' % (_side(engine), text)))


def trace(engine, sent, sid, did, status, data, pieces):
    """The message line (at its status's level) and the hex line (DEBUG) of one message, sent or received.

    A line at WARNING or above (a status other than okay, which any peer can send or make this end answer)
    counts in the message lines' budget, and so does every line while a secret gates the connection and the
    peer has not proven it (any peer can send requests to be refused); other INFO lines, every message's, are
    what a log at INFO asks for.
    """
    direction = 'TX ->' if sent else 'RX <-'
    log = engine.log
    level = c.STATUS_LOG_LVL.get(status, c.WARNING)
    trusted = engine.secret is None or engine.is_trusted()
    if log is not None and log.isEnabledFor(level) and (level < c.WARNING and trusted or not _left_out(engine, 1)):
        text = cut(data, DATA_CHARS)
        log.log(level, printable('prot%s: %s %s, status: %s, data: "%s"' % (
            _side(engine), direction, describe(engine, sid, did),
            cut(engine._status_names.get(status, c.STATUS__NAMES.get(status, status)), ID_CHARS), text)))
    log = engine.hexlog
    if log is not None and log.isEnabledFor(c.DEBUG) and (trusted or not _left_out(engine, 1)):
        body = b''.join(pieces)
        more = '...' if len(body) > HEX_BYTES else ''
        log.log(c.DEBUG, 'comm%s: %s "(%d): %s%s"' % (_side(engine), direction, len(body),
                                                      hexlify(body[:HEX_BYTES], ' ').decode(), more))
