"""JSON on CPython, as a board writes and refuses it (sp_common.codec on MicroPython loads none of this)."""
import json

dumps = json.JSONEncoder(allow_nan=False).encode   # json.dumps's bytes; inf and nan refused


def _not_json(word):
    raise ValueError(word + ' is not JSON')   # MicroPython's json refuses NaN and Infinity too


def _finite(text):
    value = float(text)
    if value - value != 0:   # 1e999 is inf, which no JSON carries back (a board's codec refuses to send it)
        raise ValueError(text + ' is out of range')
    return value


# one decoder: json.loads with options builds one per call
loads = json.JSONDecoder(parse_constant=_not_json, parse_float=_finite).decode
