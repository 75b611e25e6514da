import sys

from binascii import crc32, unhexlify

from sp_common import ChecksumError, FormatError, frame, pure_json, struct_json

GOLDEN = (
    (b'{"data_id": 0, "service_id": 8, "status": 0, "data": "example_client"}', 'f5cddde7', (8, 0, 0, 'example_client')),
    (b'{"data_id": 0, "service_id": 10, "status": 0, "data": null}', '45057bb4', (10, 0, 0, None)),
    (b'{"data_id": 0, "service_id": 9, "status": 0, "data": null}', '3059be2f', (9, 0, 0, None)),
    (b'{"data_id": 0, "service_id": 11, "status": 0, "data": "Sun Feb  2 00:00:44 2025"}', 'd78a24af',
     (11, 0, 0, 'Sun Feb  2 00:00:44 2025')),
)


def raises(kind, fn, *args):
    try:
        fn(*args)
    except kind as err:
        return err
    raise AssertionError('%s not raised' % kind.__name__)


def test_golden_vectors_encode_exactly():
    for text, crc, msg in GOLDEN:
        body = pure_json.encode(*msg)
        assert body == text + unhexlify(crc), body


def test_golden_vectors_decode():
    for text, crc, msg in GOLDEN:
        assert pure_json.decode(text + unhexlify(crc)) == msg + (None, None)


def test_golden_lengths_and_frame():
    assert [len(pure_json.encode(*g[2])) for g in GOLDEN] == [74, 63, 62, 85]
    wire = frame(pure_json.encode(*GOLDEN[0][2]))
    assert len(wire) == 82
    assert wire.startswith(b':<{"data_id":= 0, "service_id":= 8, "status":= 0, "data":= "example_client"}')
    assert wire.endswith(b':>')


def test_non_ascii_is_escaped_like_cpython():
    body = pure_json.encode(10, 1, 0, {'t': '\u00fc\u20ac\U0001f600'})
    assert b'"\\u00fc\\u20ac\\ud83d\\ude00"' in body
    assert pure_json.decode(body)[3] == {'t': '\u00fc\u20ac\U0001f600'}


def test_nested_data_round_trips():
    data = {'a': [1, 2.5, None, True, 'x:y:>'], 'b': {'c': ''}}
    assert pure_json.decode(pure_json.encode(20, "name", 0, data)) == (20, "name", 0, data, None, None)


def test_wrong_crc_names_the_service():
    body = bytearray(pure_json.encode(10, 3, 0, None))
    body[-1] ^= 1
    err = raises(ChecksumError, pure_json.decode, bytes(body))
    assert (err.sid, err.did) == (10, 3)


def test_a_wrong_crc_names_only_ids_within_their_length():
    # the ids of a broken body are looked for in the bytes an id can take: a run of digits with no end in sight
    # names nothing (converting it whole costs a board time squared in its length)
    err = raises(ChecksumError, pure_json.decode, b'{"data_id": ' + b'9' * 200 + b'1234')
    assert (err.sid, err.did) == (None, None)


def test_malformed_json_with_good_crc():
    from sp_common.codec import _with_crc
    for bad in (b'{"data_id": 0, "serv', b'[1, 2]', b'{"data_id": 0}', b'\xff\xfe',
                b'{"data_id": 0, "service_id": "x", "status": 0, "data": null}',
                b'{"data_id": [], "service_id": 1, "status": 0, "data": null}'):
        raises(FormatError, pure_json.decode, b"".join(_with_crc((bad,))))


def test_short_bodies_are_checksum_errors():
    for codec in (pure_json, struct_json):
        for body in (b'', b'\x00', b'abcd', b'\x00\x0a\x00\x00\x00'):
            raises(ChecksumError, codec.decode, body)


def test_struct_json_layout():
    body = struct_json.encode(10, 513, 2, [1, 'a'])
    assert body[:5] == b'\x00\x0a\x02\x01\x02'
    assert body[5:-4] == b'[1, "a"]'
    assert struct_json.decode(body) == (10, 513, 2, [1, "a"], None, None)
    assert int.from_bytes(body[-4:], 'big') == crc32(body[:-4]) & 0xFFFFFFFF


def test_struct_json_crc_and_ranges():
    body = bytearray(struct_json.encode(30, 7, 0, 'x'))
    body[6] ^= 0x40
    err = raises(ChecksumError, struct_json.decode, bytes(body))
    assert (err.sid, err.did) == (30, 7)
    for bad in ((70000, 0, 0), (1, -1, 0), (1, 1, 256), (1, 'x', 0), (True, 0, 0)):
        raises(ValueError, struct_json.encode, bad[0], bad[1], bad[2], None)


def test_escaped_backslash_before_u_stays_text():
    body = pure_json.encode(10, 0, 0, '\\ud83d\\ude00')
    assert pure_json.decode(body)[3] == '\\ud83d\\ude00'


def test_nan_and_infinity_are_not_json_on_either_side():
    """CPython's json.loads takes them, MicroPython's does not: the one would hand nan to a callback."""
    from sp_common.codec import _with_crc
    for word in (b'NaN', b'Infinity', b'-Infinity', b'[1, NaN]'):
        bad = b'{"data_id": 0, "service_id": 30, "status": 0, "data": ' + word + b'}'
        raises(FormatError, pure_json.decode, b"".join(_with_crc((bad,))))


def test_integers_longer_than_any_host_parses_are_refused():
    # CPython parses integers of at most 4300 digits: a board that wrote a longer one (a value a peer wrote, an
    # echo) would send frames no host takes, and its callers would wait out their timeouts
    longest = 10 ** 4300 - 1
    for data in (longest + 1, [-longest - 1], {'k': longest * 10}):
        raises(ValueError, pure_json.encode, 10, 0, 0, data)
    if sys.implementation.name != 'micropython':
        assert pure_json.decode(pure_json.encode(10, 0, 0, [-longest]))[3] == [-longest]
        return
    # a board parses numbers of at most 160 digits: it turns an integer into text in time squared in its digits,
    # and one of 4,300 held a Pico for seconds; digits in a string are text
    raises(FormatError, pure_json.decode, pure_json.encode(10, 0, 0, [-longest]))
    board = 10 ** 160 - 1
    assert pure_json.decode(pure_json.encode(10, 0, 0, [-board, '7' * 500]))[3] == [-board, '7' * 500]
    raises(FormatError, pure_json.decode, pure_json.encode(10, 0, 0, {'k': board + 1}))


def test_unencodable_data_raises_type_error():
    for data in (object(), b'bytes', [1, {'k': set()}], {(1, 2): 3}):
        raises(TypeError, pure_json.encode, 10, 0, 0, data)


def nested(levels):
    data = 0
    for _ in range(levels):
        data = [data]
    return data


def test_data_nested_deeper_than_a_peer_takes_is_refused_when_sent():
    """A peer's decode() takes 32 levels of JSON, pure_json's envelope among them: deeper data raises where it is
    sent (31 levels of data, whichever the codec), rather than leave its requester waiting for an answer to a
    frame every peer drops."""
    for codec in (pure_json, struct_json):
        assert codec.decode(codec.encode(30, 0, 0, nested(31)))[3] == nested(31)
        assert codec.decode(codec.encode(30, 0, 0, [{'a': '[[[[' * 20}] * 40))[3] == [{'a': '[[[[' * 20}] * 40
        for levels in (32, 40):
            raises(TypeError, codec.encode, 30, 0, 0, nested(levels))
            raises(TypeError, codec.encode, 30, 0, 0, nested(levels), 1)    # (session v2)


def test_non_finite_floats_are_refused():
    """MicroPython's json would write inf and nan as bare words, which no JSON parser takes."""
    for data in (float('inf'), -float('inf'), float('nan'), [1, float('nan')], {'x': float('inf')}):
        raises(ValueError, pure_json.encode, 30, 0, 0, data)
        raises(ValueError, struct_json.encode, 30, 0, 0, data)
