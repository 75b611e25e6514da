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


def test_it_tells_whether_it_is_in_the_middle_of_a_frame():
    # what a console looks at to give up a frame its host left unfinished (sp_micropython.stdio)
    d = Deframer(64)
    assert not (d.in_frame or d.broken)
    d.feed(b':<ab')
    assert d.in_frame and not d.broken
    d.feed(b':xc')   # a bad escape: the rest of its frame passes as data, up to its ':>'
    assert d.broken and not d.in_frame
    d.feed(b':>')
    assert not (d.in_frame or d.broken)
    d.feed(b':<a')
    d.reset()
    assert not (d.in_frame or d.broken) and d.feed(frame(b'g')) == [b'g']


def _watched(*chunks):
    d = Deframer(64)
    d.watch = b'\x03'
    bodies = []
    for chunk in chunks:
        bodies += d.feed(chunk)
    return d.watched, bodies


def test_a_watched_byte_counts_only_between_frames():
    """A console's Ctrl-C: between frames it is seen; inside a frame, however cut, it is data."""
    assert _watched(b'\r\x03') == (True, [])
    assert _watched(b':<a\x03b:>')[0] is False
    assert _watched(b':<a\x03', b'b:>', b'\r\n')[0] is False
    assert _watched(b':<a:>:\x03') == (True, [b'a'])            # a ':' between frames, then Ctrl-C
    assert _watched(b':<a:>', b'\x03')[0] is True
    d = Deframer(64)
    d.feed(b'x\x03y')
    assert d.watched is False                                     # nobody watches: nothing seen


def test_the_rest_of_a_broken_frame_is_no_place_for_a_watched_byte():
    """After a bad escape the frame's rest (its CRC may hold 0x03) is not 'between frames', up to its ':>'."""
    assert _watched(b':<a:xb\x03c:>')[0] is False
    assert _watched(b':<a:xb', b'\x03c:>')[0] is False
    assert _watched(b':<a:xb\x03c:>\x03')[0] is True
    assert _watched(b':<a:xb\x03', b':<ok:>', b'\x03') == (True, [b'ok'])
