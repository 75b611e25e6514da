"""Property tests: chunking never changes what is decoded; hostile bytes never crash or deliver garbage."""
from hypothesis import given, settings, strategies as st

from sp_common import ChecksumError, Deframer, Engine, FormatError, frame, pure_json, struct_json

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
                out.append(codec.decode(body))
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
    for reply in decode_all(pure_json, [engine.data_to_send()]):
        assert reply[2] in (0, 2, 4, 5, 6)
    engine.feed(b':>' + frame(pure_json.encode(10, 0, 0, 'after')))
    assert decode_all(pure_json, [engine.data_to_send()]) == [(11, 0, 0, 'after')]
