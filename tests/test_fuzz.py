"""Property tests: chunking never changes what is decoded; hostile bytes never crash or deliver garbage."""
import json
import os
import subprocess
import sys

from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import ROOT
from sp_common import ChecksumError, Deframer, Engine, FormatError, frame, pure_json, struct_json
from sp_common.codec import _with_crc

CONFORMANCE = os.path.join(ROOT, 'tests', 'conformance')
sys.path.insert(0, CONFORMANCE)
from fuzz_replay import survive  # noqa: E402

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**31, 2**31 - 1) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
messages = st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 0xFF), json_values)
codecs = st.sampled_from([pure_json, struct_json])


def decode_all(codec, chunks, max_size=1 << 16):
    deframer = Deframer(max_size)
    out = []
    for chunk in chunks:
        for body in deframer.feed(chunk):
            try:
                out.append(codec.decode(body)[:4])
            except (ChecksumError, FormatError):
                pass
    return out


def split(data, cuts):
    points = sorted(set(c % (len(data) + 1) for c in cuts))
    bounds = [0] + points + [len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


@settings(max_examples=200, deadline=None)
@given(codecs, st.lists(messages, min_size=1, max_size=6), st.lists(st.integers(0, 10**6), max_size=40))
def test_any_chunking_yields_the_same_messages(codec, msgs, cuts):
    stream = b''.join(frame(codec.encode(*m)) for m in msgs)
    assert decode_all(codec, split(stream, cuts)) == [tuple(m) for m in msgs]


@settings(max_examples=300, deadline=None)
@given(codecs, st.binary(max_size=600), st.lists(st.integers(0, 10**6), max_size=10))
def test_random_bytes_never_raise(codec, data, cuts):
    decode_all(codec, split(data, cuts), max_size=256)


class ByteDeframer:
    """The STP deframer's rules, a byte at a time, as docs/protocol.md gives them: what Deframer, which cuts what
    it can out in runs and whole frames, must do alike."""

    def __init__(self, max_size, watch=None):
        self.max_size, self.watch = max_size, watch
        self.in_frame = self.sync = self.over = self.broken = self.watched = False
        self.body = bytearray()
        self.bodies = []
        self.framing_errors = self.oversized = 0

    def put(self, byte):
        self.over = self.over or len(self.body) >= self.max_size
        if not self.over:
            self.body.append(byte)

    def feed(self, data):
        for c in data:
            if not self.sync:
                if c == 0x3A:
                    self.sync = True
                elif self.in_frame:
                    self.put(c)
                elif c == self.watch and not self.broken:
                    self.watched = True
                continue
            self.sync = False
            if c == 0x3C:   # ':<'
                self.framing_errors += self.in_frame
                self.in_frame, self.broken, self.over, self.body = True, False, False, bytearray()
            elif not self.in_frame:
                self.sync = c == 0x3A
                if c == 0x3E:
                    self.broken = False
                elif c == self.watch and not self.broken:
                    self.watched = True
            elif c == 0x3D:   # ':='
                self.put(0x3A)
            elif c == 0x3E:   # ':>'
                self.in_frame = False
                if self.over:
                    self.oversized += 1
                else:
                    self.bodies.append(bytes(self.body))
            else:
                self.framing_errors += 1
                self.in_frame, self.broken, self.sync = False, True, c == 0x3A


STP_TOKENS = [b':', b'<', b'>', b'=', b'a', b'\x03', b':<', b':>', b':=', b':a', b':\x03', b'::', b'abc', b'a' * 600]


def stp_streams(tokens):
    """Streams of STP's own bytes, frame starts and ends, escapes and broken pairs among a little data, Ctrl-C
    and a run longer than a frame cut out whole."""
    return st.lists(st.sampled_from(STP_TOKENS), max_size=tokens).map(b''.join)


@settings(max_examples=2000, deadline=None)
@given(stp_streams(80), st.lists(st.integers(0, 10**6), max_size=8), st.sampled_from([None, b'\x03']),
       st.integers(1, 12))
def test_the_deframer_cuts_what_the_byte_by_byte_rules_cut(data, cuts, watch, max_size):
    ours, rules = Deframer(max_size), ByteDeframer(max_size, watch and watch[0])
    ours.watch = watch
    bodies = []
    for chunk in split(data, cuts):
        bodies += ours.feed(chunk)
        rules.feed(chunk)
    assert bodies == rules.bodies
    assert (ours.framing_errors, ours.oversized, ours.watched, ours.in_frame, ours.broken) == \
        (rules.framing_errors, rules.oversized, rules.watched, rules.in_frame, rules.broken)


mutation = st.tuples(st.sampled_from(['flip', 'drop', 'dup', 'insert']), st.integers(0, 10**6), st.integers(0, 255))


def mutate(data, ops):
    data = bytearray(data)
    for kind, where, value in ops:
        if not data:
            break
        i = where % len(data)
        if kind == 'flip':
            data[i] ^= 1 << (value % 8)
        elif kind == 'drop':
            data[i:i + 1] = b''
        elif kind == 'dup':
            data[i:i] = data[i:i + 1]
        else:
            data[i:i] = bytes([value])
    return bytes(data)


@settings(max_examples=300, deadline=None)
@given(codecs, st.lists(messages, min_size=1, max_size=5), st.lists(mutation, min_size=1, max_size=4),
       st.lists(st.integers(0, 10**6), max_size=20))
def test_mutated_streams_deliver_only_exact_messages(codec, msgs, ops, cuts):
    sent = [tuple(m) for m in msgs]
    stream = mutate(b''.join(frame(codec.encode(*m)) for m in msgs), ops)
    for got in decode_all(codec, split(stream, cuts)):
        assert got in sent


@settings(max_examples=200, deadline=None)
@given(st.lists(messages, max_size=4), st.binary(max_size=300), st.lists(mutation, max_size=4))
def test_engine_survives_hostile_input(msgs, noise, ops):
    """Whatever arrives, the engine answers only with well-formed frames and keeps working."""
    engine = Engine(False, secret=None)
    engine.register_callback(None, None, lambda msg: (0, msg.get_data()))
    stream = mutate(noise + b''.join(frame(pure_json.encode(*m)) for m in msgs), ops)
    engine.feed(stream)
    engine.feed(b':>')   # ends a frame left open (a broken end mark): its reply is one of those checked here
    for reply in decode_all(pure_json, [engine.data_to_send()]):
        assert reply[2] in (0, 2, 4, 5, 6)
    engine.feed(frame(pure_json.encode(10, 0, 0, 'after')))
    assert decode_all(pure_json, [engine.data_to_send()]) == [(11, 0, 0, 'after')]


def _number(digits):
    return '-' * (digits % 2) + '9' * digits


def _nest(text, depth, opener):
    return opener * depth + text + (']' if opener == '[' else '}') * depth


def mostly(valid, anything):
    """valid three times in four: enough frames reach dispatch, the rest test the codec."""
    return st.integers(0, 3).flatmap(lambda n: valid if n else anything)


# JSON text, not values: nesting far beyond the codec's limit, numbers no float holds, strings of kilobytes
json_scalars = (st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(st.characters(), max_size=20))
                .map(json.dumps)
                | st.integers(1, 3000).map(_number)
                | st.integers(0, 4096).map(lambda n: '"%s"' % ('x' * n)))
json_texts = st.recursive(
    json_scalars,
    lambda inner: mostly(
        st.lists(inner, max_size=4).map(lambda items: '[%s]' % ', '.join(items))
        | st.dictionaries(st.text(max_size=8).map(json.dumps), inner, max_size=4).map(
            lambda pairs: '{%s}' % ', '.join('%s: %s' % pair for pair in pairs.items())),
        st.tuples(inner, st.integers(0, 3000), st.sampled_from(['[', '{"k": '])).map(lambda t: _nest(*t))),
    max_leaves=8)


fields = st.fixed_dictionaries({
    'service_id': mostly(st.sampled_from(['0', '1', '8', '9', '10', '11', '30', '31', '41']), json_texts),
    'data_id': mostly(st.sampled_from(['0', '1', '"name"']), json_texts),
    'status': mostly(st.sampled_from(['0', '3']), json_texts),
    'data': json_texts,
})
bodies = mostly(
    st.tuples(fields, st.permutations(range(4)), mostly(st.none(), st.integers(0, 3))).map(
        lambda t: '{%s}' % ', '.join('"%s": %s' % pair for i, pair in enumerate(
            [list(t[0].items())[j] for j in t[1]]) if i != t[2])),   # keys in any order, at times one missing
    json_texts)


def crc_valid_frame(text):
    return frame(*_with_crc((text.encode(),)))


def test_generated_json_never_breaks_the_engine_on_either_interpreter(tmp_path):
    """CRC-valid frames with generated JSON in every key: on CPython and, the same corpus, on MicroPython."""
    corpus = []

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(bodies.map(crc_valid_frame), min_size=1, max_size=3))
    def feed(frames):
        corpus.extend(frames)
        assert survive(frames) == (True, [])
    feed()
    path = tmp_path / 'corpus.bin'
    path.write_bytes(b''.join(len(data).to_bytes(4, 'big') + data for data in corpus))
    result = subprocess.run(['micropython', os.path.join(CONFORMANCE, 'fuzz_replay.py'), str(path)],
                            env=dict(os.environ, MICROPYPATH=ROOT), capture_output=True, text=True, timeout=120)
    assert result.stdout.splitlines()[-2:] == ['fed %d frames' % len(corpus),
                                               'a normal request answered after each frame and after all: True'], \
        result.stdout + result.stderr
    assert 'PROBLEM' not in result.stdout, result.stdout
