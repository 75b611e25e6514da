"""JSON on CPython, as a board writes and refuses it (sp_common.codec on MicroPython loads none of this).

json.dumps and json.loads set up an encoder, a decoder or a scanner on every
call, which costs more than a small message's text: only the encoder's table of containers is new per call.
"""
import json
from json import encoder

_encoder = json.JSONEncoder(allow_nan=False)   # json.dumps's text; inf and nan refused


def _not_serializable(value):
    return _encoder.default(value)   # (raises TypeError, as json.dumps does)


if encoder.c_make_encoder is None:   # pragma: no cover - a Python built without the _json accelerator
    dumps = _encoder.encode
else:
    def dumps(value):
        # a fresh table of the containers being written, as json.dumps keeps: a cycle is its ValueError, never a
        # recursion as deep as the limit allows (which a raised limit turns into a crash)
        return ''.join(encoder.c_make_encoder({}, _not_serializable, encoder.encode_basestring_ascii, None, ': ',
                                              ', ', False, False, False)(value, 0))


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
