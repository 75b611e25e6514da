from sp_common import Deframer, frame

BODY = b'{"data_id": 0, "service_id": 8, "status": 0, "data": "a:b"}\x3a\x00\x3a\x3e'


def test_escaping():
    assert frame(b'a:b') == b':<a:=b:>'
    assert frame(b':>') == b':<:=>:>'


def test_one_byte_at_a_time():
    d = Deframer(256)
    wire = frame(BODY) * 2
    got = []
    for i in range(len(wire)):
        got += d.feed(wire[i:i + 1])
    assert got == [BODY, BODY]
    assert d.framing_errors == 0


def test_feed_takes_a_length():
    d = Deframer(64)
    buf = bytearray(32)
    wire = frame(b'xy:z')
    buf[:len(wire)] = wire
    assert d.feed(buf, len(wire)) == [b'xy:z']


def test_noise_between_frames_is_ignored():
    d = Deframer(64)
    assert d.feed(b'junk:x:' + frame(b'one') + b'::>' + frame(b'two')) == [b'one', b'two']
    assert d.framing_errors == 0


def test_new_start_drops_partial_frame():
    d = Deframer(64)
    assert d.feed(b':<partial' + frame(b'whole')) == [b'whole']
    assert d.framing_errors == 1


def test_bad_escape_drops_frame_and_resyncs():
    d = Deframer(64)
    assert d.feed(b':<ab:xcd:>' + frame(b'next')) == [b'next']
    assert d.framing_errors == 1
    assert d.feed(b':<ab::<ok:>') == [b'ok']
    assert d.framing_errors == 2


def test_oversized_frame_is_dropped_whole():
    d = Deframer(8)
    assert d.feed(frame(b'123456789') + frame(b'12345678')) == [b'12345678']
    assert d.oversized == 1
    d.feed(b':<' + b'x' * 100)
    assert d.feed(b'x' * 100 + b':>' + frame(b'ok')) == [b'ok']
    assert d.oversized == 2


def test_reset_forgets_partial():
    d = Deframer(64)
    d.feed(b':<abc')
    d.reset()
    assert d.feed(b'def:>') == []
    assert d.feed(frame(b'g')) == [b'g']
