"""Codec messages per second on the interpreter that runs it (CPython or MicroPython), beside a naive codec.

A message is encoded into the bytes that go on the stream and decoded back:
pure_json with its STP frame (sp_common), and the naive codec: json.dumps of
a dict, CRC-32, a 4-byte length prefix. Prints: ours naive (messages/s).

    python3 benchmarks/codec_speed.py [N]
    micropython benchmarks/codec_speed.py [N]
"""
import json
import struct
import sys
import time

try:
    from binascii import crc32
except ImportError:   # pragma: no cover - a port without it
    from sp_common.crc32 import crc32
from sp_common import Deframer, frame, pure_json

MESSAGE = (31, 1, 0, {'n': 42, 'list': [1, 2.5, 'x'], 'text': 'hello'})


def _clock():
    ticks_us = getattr(time, 'ticks_us', None)
    if ticks_us is None:
        return lambda: time.perf_counter()
    return lambda: ticks_us() / 1e6


def ours(n):
    sid, did, status, data = MESSAGE
    deframer = Deframer(1024)
    pieces = pure_json.pieces
    decode = pure_json.decode
    for _ in range(n):
        for body in deframer.feed(frame(*pieces(sid, did, status, data))):
            decode(body)


def naive(n):
    sid, did, status, data = MESSAGE
    for _ in range(n):
        text = json.dumps({'data_id': did, 'service_id': sid, 'status': status, 'data': data}).encode()
        body = text + struct.pack('>I', crc32(text) & 0xFFFFFFFF)
        wire = struct.pack('>I', len(body)) + body
        size = struct.unpack('>I', wire[:4])[0]
        body = wire[4:4 + size]
        if crc32(body[:-4]) & 0xFFFFFFFF != struct.unpack('>I', body[-4:])[0]:
            raise ValueError('crc')
        json.loads(body[:-4])


def rate(fn, n):
    clock = _clock()
    best = 0
    for _ in range(3):
        start = clock()
        fn(n)
        best = max(best, n / (clock() - start))
    return best


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    print('%d %d' % (rate(ours, n), rate(naive, n)))


main()
