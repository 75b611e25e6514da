"""JSON on CPython, as a board writes and refuses it (sp_common.codec on MicroPython loads none of this).

json.dumps and json.loads set up an encoder, a decoder or a scanner on every
call, which costs more than a small message's text: only the encoder's table of containers is new per call.
"""
import json
from json import encoder

_encoder = json.JSONEncoder(allow_nan=False)   # json.dumps's text; inf and nan refused
MAX_DATA_DEPTH = 31   # the nesting of arrays and objects a peer's decode takes in data: 32 with pure_json's envelope
_NOT_STRUCTURE = bytes(set(range(256)) - set(b'[]{}"\\'))   # deleted before the walk


def deeper_than(text, levels):
    """Whether the JSON text (bytes) nests more than levels arrays and objects; brackets in its strings are text.
    All but brackets, quotes and backslashes is cut out first (in C): only those are walked."""
    depth = 0
    in_string = escaped = False
    for byte in text.translate(None, _NOT_STRUCTURE):
        if escaped:
            escaped = False
        elif byte == 0x5C:   # (only inside a string, in JSON)
            escaped = True
        elif byte == 0x22:
            in_string = not in_string
        elif in_string:
            pass
        elif byte == 0x5B or byte == 0x7B:
            depth += 1
            if depth > levels:
                return True
        else:
            depth -= 1
    return False


def _not_serializable(value):
    return _encoder.default(value)   # (raises TypeError, as json.dumps does)


if encoder.c_make_encoder is None:   # pragma: no cover - a Python built without the _json accelerator
    _encode = _encoder.encode
else:
    def _encode(value):
        # a fresh table of the containers being written, as json.dumps keeps: a cycle is its ValueError, never a
        # recursion as deep as the limit allows (which a raised limit turns into a crash)
        return ''.join(encoder.c_make_encoder({}, _not_serializable, encoder.encode_basestring_ascii, None, ': ',
                                              ', ', False, False, False)(value, 0))


def dumps(value):
    """json.dumps(value); TypeError for data nested deeper than a peer takes (every peer would drop its frame)."""
    try:
        text = _encode(value)
    except RecursionError:
        text = None
    if text is None or text.count('[') + text.count('{') > MAX_DATA_DEPTH and \
            deeper_than(text.encode(), MAX_DATA_DEPTH):
        raise TypeError('data nested deeper than a peer takes (%d levels)' % MAX_DATA_DEPTH)
    return text


def _not_json(word):
    raise ValueError(word + ' is not JSON')   # MicroPython's json refuses NaN and Infinity too


def _finite(text):
    value = float(text)
    if value - value != 0:   # 1e999 is inf, which no JSON carries back (a board's codec refuses to send it)
        raise ValueError(text + ' is out of range')
    return value


_decoder = json.JSONDecoder(parse_constant=_not_json, parse_float=_finite)
_scan = _decoder.scan_once


def loads(text):
    """json.loads(text); text that is one value from its first character to its last is scanned directly."""
    try:
        value, end = _scan(text, 0)
        if end == len(text):
            return value
    except StopIteration:   # (it starts with white space, or with no value at all)
        pass
    return _decoder.decode(text)
