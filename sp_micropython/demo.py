"""The demo service set every board serves.

Data ids: read 'asc_time' (0), write/read 'value' (1), execute 'echo' (0),
and execute 'fail' (1), which always raises to show the error reply.
asc_time is the board's clock (time.localtime); a port without one answers
the time since start, dated 2000-01-01 like a board whose clock was never set.
"""
import time

from sp_common.const import (
    SID_EXECUTE_REQUEST, SID_EXECUTE_RESPONSE, SID_READ_REQUEST, SID_READ_RESPONSE, SID_WRITE_REQUEST,
    SID_WRITE_RESPONSE, STATUS_OKAY)

_NAMES = 'MonTueWedThuFriSatSunJanFebMarAprMayJunJulAugSepOctNovDec'   # the days, then the months

# shared by every protocol the board serves, so a value written over TCP reads back over UART; kept as its JSON
# text, at most about three times the heap its frame took (docs/security.md): parsed, a kilobyte of [[],[],...]
# held about 16 KiB for good
values = {1: 'null'}
_START = time.ticks_ms()


def asctime(t=None):
    """time.asctime() style, e.g. 'Sun Feb  2 00:00:44 2025', from a time.localtime() tuple.

    Without one, time.localtime(); a port without a clock counts from start, from 2000-01-01 (a Saturday),
    in ticks, so it starts over after the tick period (12 days on a 32-bit port).
    """
    if t is None and hasattr(time, 'localtime'):
        t = time.localtime()
    elif t is None:
        s = (time.ticks_ms() - _START) % (time.ticks_add(0, -1) + 1) // 1000
        days = s // 86400
        t = 2000, 1, 1 + days, s // 3600 % 24, s // 60 % 60, s % 60, (5 + days) % 7
    day = t[6] * 3
    month = 18 + t[1] * 3
    return '%s %s %2d %02d:%02d:%02d %d' % (_NAMES[day:day + 3], _NAMES[month:month + 3], t[2], t[3], t[4], t[5], t[0])


def _value(msg):
    """Writes or reads the value (one callback for both: each function a board holds takes its heap; json is
    imported here, where it is used, for the same reason). Written through the codec, which refuses what is
    not JSON (1e999 parses to inf on a board): such a write is a callback error and the value stays."""
    import json
    from sp_common.codec import dumps
    if msg.get_service_id() == SID_WRITE_REQUEST:
        values[1] = dumps(msg.get_data())
        return STATUS_OKAY, None
    return STATUS_OKAY, json.loads(values[1])


def _fail(msg):
    raise ValueError('this service always fails')


def add_demo_services(protocol):
    protocol.add_data((SID_READ_REQUEST, SID_READ_RESPONSE), 0, 'asc_time')
    protocol.add_data((SID_READ_REQUEST, SID_READ_RESPONSE, SID_WRITE_REQUEST, SID_WRITE_RESPONSE), 1, 'value')
    protocol.add_data((SID_EXECUTE_REQUEST, SID_EXECUTE_RESPONSE), 0, 'echo')
    protocol.add_data((SID_EXECUTE_REQUEST, SID_EXECUTE_RESPONSE), 1, 'fail')
    protocol.register_callback(SID_READ_REQUEST, 0, lambda msg: (STATUS_OKAY, asctime()))
    protocol.register_callback(SID_READ_REQUEST, 1, _value)
    protocol.register_callback(SID_WRITE_REQUEST, 1, _value)
    protocol.register_callback(SID_EXECUTE_REQUEST, 0, lambda msg: (STATUS_OKAY, msg.get_data()))
    protocol.register_callback(SID_EXECUTE_REQUEST, 1, _fail)
