"""Message bodies: pure_json (the default) here, struct_json (compact, deprecated) in struct_codec.

A codec turns (service_id, data_id, status, data) into a body that ends in a
big-endian CRC-32, and back. pieces() gives the body as a few byte strings,
the CRC last, so that the framer escapes them without first joining them.
decode() raises ChecksumError or FormatError; the engine counts them and
decides what to answer. A board loads only its own codec (heap).
"""
import json
import sys

from binascii import hexlify

from . import load

try:
    from binascii import crc32
except ImportError:  # pragma: no cover - a port built without it loads the table (heap only there)
    from .crc32 import crc32

try:
    from micropython import const   # the compiler inlines _NAME = const(n): no name, no global on a board
except ImportError:   # CPython
    const = int


class FormatError(ValueError):
    """The body passed its CRC but is not a message."""


class MacError(ValueError):
    """A session v2 frame whose MAC is missing or wrong."""


class ChecksumError(ValueError):
    """The CRC does not match; sid/did/seq are what the body seems to name, or None."""

    def __init__(self, sid=None, did=None, seq=None):
        super().__init__('checksum error')
        self.sid = sid
        self.did = did
        self.seq = seq


_MICROPYTHON = sys.implementation.name == 'micropython'
_SCALARS = (bool, int, float, str)   # and the types of JSON's keys, with None
_SEQUENCES = (list, tuple)
_MAX_DIGITS = const(4300)   # CPython's limit on an integer's text (sys.int_info): no host parses a longer one
_SHORT = const(0x3FFFFFFF)  # integers within it have few digits: only those beyond are written out to count them
_MAX_DEPTH = const(32)   # nesting of JSON arrays and objects, the envelope included
# On a board: the most digits in a number it parses. MicroPython turns an integer into text (logs, answers) in time
# squared in its digits, and a peer's long numbers would hold a slow board; 160 take a 512-bit number.
_BOARD_DIGITS = const(160)


def _check(value):
    """Raises for what MicroPython's json.dumps would write wrongly ('<object>' for what it cannot encode, inf and
    nan as bare words: CPython raises) and for arrays and objects nested deeper than a peer takes. It goes depth
    first, not by recursion (a board's stack holds some 30 calls), with the containers around the value and the
    place reached in each: no more than one of each per level."""
    around = []   # the arrays around value (an object's values are taken as one)
    places = []   # the index of value in each
    while True:
        if type(value) is int:
            if (value > _SHORT or value < -_SHORT) and len(str(value)) - (value < 0) > _MAX_DIGITS:
                raise ValueError('Exceeds the limit (%d digits) for integer string conversion' % _MAX_DIGITS)
        elif type(value) is float:
            if value - value != 0:   # inf - inf and nan - nan are nan
                raise ValueError('Out of range float values are not JSON compliant')
        elif not (value is None or isinstance(value, _SCALARS)):
            if isinstance(value, dict):
                for key in value:
                    if not (key is None or isinstance(key, _SCALARS)):
                        raise TypeError('keys must be str, int, float, bool or None, not %s' % type(key).__name__)
                    if type(key) is float:
                        _check(key)
                value = list(value.values())
            elif not isinstance(value, _SEQUENCES):
                raise TypeError('Object of type %s is not JSON serializable' % type(value).__name__)
            if len(around) == _MAX_DEPTH - 1:
                raise TypeError('data nested deeper than a peer takes (%d levels)' % (_MAX_DEPTH - 1))
            around.append(value)
            places.append(-1)
        while around:   # the next value: the next item of the innermost container that has one
            places[-1] += 1
            if places[-1] < len(around[-1]):
                value = around[-1][places[-1]]
                break
            around.pop()
            places.pop()
        else:
            return


if _MICROPYTHON:
    def dumps(value):
        """json.dumps as CPython writes it (ASCII only, TypeError for what JSON cannot hold or nested deeper than a
        peer takes: every peer would drop its frame)."""
        if not (type(value) is str or value is None):   # (a str or None is written right: no walk)
            _check(value)
        text = json.dumps(value)
        if len(memoryview(text)) == len(text):
            return text
        return load('sp_common.nonascii').escape(text)
else:
    from .host_json import deeper_than, dumps, loads


def _with_crc(pieces):
    crc = 0
    for piece in pieces:
        crc = crc32(piece, crc)
    return pieces + ((crc & 0xFFFFFFFF).to_bytes(4, 'big'),)


def _crc_ok(body):
    n = len(body) - 4
    return n > 0 and (crc32(memoryview(body)[:n]) & 0xFFFFFFFF) == int.from_bytes(body[n:], 'big')


def _unfit(body, start, end, deep):
    """Why the JSON in body[start:end] is refused before it is parsed, or None: nesting deeper than _MAX_DEPTH
    (deep: its brackets are more than that), and on a board a number of more than _BOARD_DIGITS digits. It goes
    byte by byte only where counts of brackets and digits cannot rule either out."""
    digits = 0
    if _MICROPYTHON and end - start > _BOARD_DIGITS:
        digit = bytearray(1)   # (one allocation for the ten counts)
        for code in range(0x30, 0x3A):
            digit[0] = code
            digits += body.count(digit, start, end)
    if not deep and digits <= _BOARD_DIGITS:
        return None
    if not _MICROPYTHON:
        return 'JSON nested deeper than %d' % _MAX_DEPTH if deeper_than(body[start:end], _MAX_DEPTH) else None
    depth = skip = run = 0
    in_str = escaped = False
    for i in range(start, end):
        b = body[i]
        if skip:   # the hex digits of a \u escape, which MicroPython's json takes whatever they are, a '"' too
            skip -= 1
        elif in_str:
            if escaped:
                escaped = False
                if b == 0x75:
                    skip = 4
            elif b == 0x5C:
                escaped = True
            elif b == 0x22:
                in_str = False
        elif 0x30 <= b <= 0x39:
            run += 1
            if run > _BOARD_DIGITS:
                return 'a number of more than %d digits' % _BOARD_DIGITS
            continue
        elif b == 0x22:
            in_str = True
        elif b == 0x5B or b == 0x7B:
            depth += 1
            if depth > _MAX_DEPTH:
                return 'JSON nested deeper than %d' % _MAX_DEPTH
        elif b == 0x5D or b == 0x7D:
            depth -= 1
        run = 0
    return None


def _loads(body, start, end):
    """The JSON in body[start:end]; on MicroPython parsed in place unless it holds an escaped surrogate."""
    deep = body.count(b'[', start, end) + body.count(b'{', start, end) > _MAX_DEPTH
    if deep or _MICROPYTHON and end - start > _BOARD_DIGITS:   # (else nothing to look for: no call, which a board
        unfit = _unfit(body, start, end, deep)                 # pays with a frame in its heap)
        if unfit is not None:
            raise FormatError(unfit)
    try:
        if not _MICROPYTHON:
            return loads(body[start:end].decode())
        if body.find(b'\\u', start, end) < 0 or body.find(b'\\ud', start, end) < 0 and \
                body.find(b'\\uD', start, end) < 0:
            return json.loads(memoryview(body)[start:end])
        return json.loads(load('sp_common.nonascii').join_surrogates(body, start, end))
    except (ValueError, UnicodeError):
        raise FormatError('malformed JSON')


def _head_int(body, key, start):
    """The integer after key at body[start:], and where it ends; (None, start) if it is not there."""
    if body[start:start + len(key)] != key:
        return None, start
    at = start + len(key)
    end = body.find(b',', at, at + 12)
    if end < 0:   # (-1 would take the rest of the body: a long run of digits costs time squared to convert)
        return None, start
    try:
        return int(body[at:end]), end + 1
    except ValueError:
        return None, start


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def is_short_ascii(text, longest):
    """A str of 1 to longest printable ASCII characters: a channel name, a seed, a key. Looked at in UTF-8 bytes,
    not by its characters (see sp_common.nonascii.utf8_at); a lone surrogate, which CPython cannot encode, is
    no ASCII."""
    if not isinstance(text, str) or not 0 < len(text) <= longest:
        return False
    data = text.encode('utf-8', 'surrogatepass')
    if len(data) != len(text):
        return False
    for byte in data:
        if not 0x20 <= byte <= 0x7E:
            return False
    return True


def _encode(codec, service_id, data_id, status, data, seq=None, re=0, mac=None):
    """Both codecs' encode(): the body as one byte string."""
    return b''.join(codec.pieces(service_id, data_id, status, data, seq, re, mac))


_IDS = 'service_id and status must be integers, data_id an integer or a string'
# On a board a body is formatted into bytes at once (a new str is first looked up among the interned ones, then
# copied); CPython formats a str, as its bytes formatting takes no str arguments.
_BODY = b'{"data_id": %s, "service_id": %s, "status": %s, "data": %s}'
_BODY_V2 = b'{"data_id": %s, "service_id": %s, "status": %s, "data": %s, "seq": %d, "re": %d}'
if not _MICROPYTHON:
    _BODY, _BODY_V2 = _BODY.decode(), _BODY_V2.decode()
_MAC_KEY = b', "mac": "'
_MAC_TAIL = const(28)   # len(', "mac": "' + 16 hex digits + '"}')


class pure_json:
    """Body = JSON object with keys in fixed order, then CRC-32 of the JSON bytes."""

    name = 'pure_json'

    @staticmethod
    def pieces(service_id, data_id, status, data, seq=None, re=0, mac=None):
        """The body and its CRC; with a seq, the session v2 body (seq, re and, with a mac key, the MAC last).

        One format makes the whole JSON text: on a board each call costs more than the bytes it copies.
        """
        if not (type(data_id) is int and type(service_id) is int and type(status) is int):
            # a bool or None would make a frame the peer's decode() drops; an IntEnum is written as its number
            if not (_is_int(service_id) and _is_int(status) and (_is_int(data_id) or isinstance(data_id, str))):
                raise TypeError(_IDS)
            service_id, status = int(service_id), int(status)
            data_id = int(data_id) if _is_int(data_id) else dumps(data_id)   # (a str Enum: its value, as json's)
        if seq is None:
            body = _BODY % (data_id, service_id, status, dumps(data))
        else:
            body = _BODY_V2 % (data_id, service_id, status, dumps(data), seq, re)
        if not _MICROPYTHON:
            body = body.encode()
        if seq is not None and mac is not None:   # the MAC is over the body without it (its 8 bytes in hex)
            body = body[:-1] + _MAC_KEY + hexlify(mac.digest(body)[:8]) + b'"}'
        return _with_crc((body,))

    encode = classmethod(_encode)

    @staticmethod
    def decode(body, v2=False, mac=None):
        """(service_id, data_id, status, data, seq, re); seq and re are None in an original frame.

        With a mac key the MAC is checked before any JSON is parsed.
        """
        if not _crc_ok(body):
            # the ids as the original peers write them, for a fast checksum-error reply; no JSON parse
            did, at = _head_int(body, b'{"data_id": ', 0)
            sid = _head_int(body, b' "service_id": ', at)[0]
            at = body.rfind(b', "seq": ')
            raise ChecksumError(sid, did, _head_int(body, b', "seq": ', at)[0] if v2 and at > 0 else None)
        n = len(body) - 4
        if mac is not None:   # (the tests of its place allocate nothing)
            t = n - _MAC_TAIL
            if t <= 0 or not body.startswith(_MAC_KEY, t) or body[n - 2] != 0x22 or body[n - 1] != 0x7D or \
                    not mac.check(body[n - 18:n - 2], memoryview(body)[:t], b'}'):
                raise MacError('wrong MAC')
        obj = _loads(body, 0, n)
        if not isinstance(obj, dict):
            raise FormatError('not a JSON object')
        try:
            msg = (obj['service_id'], obj['data_id'], obj['status'], obj['data'], obj.get('seq'), obj.get('re'))
        except KeyError:
            raise FormatError('missing key')
        # parsed JSON: an int is an int (no bool, no subclass)
        if not (type(msg[0]) is int and type(msg[2]) is int and (type(msg[1]) is int or type(msg[1]) is str)):
            raise FormatError(_IDS)
        if msg[4] is not None and not (type(msg[4]) is int and (msg[5] is None or type(msg[5]) is int)):
            raise FormatError('seq and re must be integers')
        return msg


def __getattr__(name):
    """struct_json lives in its own module: a pure_json board never loads it."""
    if name == 'struct_json':
        return load('sp_common.struct_codec').struct_json
    raise AttributeError(name)
