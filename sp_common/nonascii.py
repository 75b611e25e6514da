"""MicroPython's json made to match CPython's for text beyond ASCII.

Loaded only when a frame holds such text: an ASCII-only board never pays for it.
"""


def escape(text):
    """text with every non-ASCII character escaped as CPython's json.dumps writes it.

    ValueError for text that is not UTF-8 as CPython writes it: a board's
    json takes a peer's bytes as they come, and reads an overlong form as the
    character it spells (c0 a2 as a '"', which json.dumps left bare) or a
    number past U+10FFFF as a character. Such text would go out as JSON the
    peer wrote; it does not go out at all.
    """
    out = bytearray()
    size = 0   # the bytes the characters take in UTF-8
    for ch in text:
        o = ord(ch)
        if o < 0x80:
            out.append(o)
            size += 1
        elif o < 0x10000:
            out.extend(b'\\u%04x' % o)
            size += 2 if o < 0x800 else 3
        elif o < 0x110000:
            o -= 0x10000
            out.extend(b'\\u%04x\\u%04x' % (0xD800 | (o >> 10), 0xDC00 | (o & 0x3FF)))
            size += 4
        else:
            size = -1
            break
    if size != len(memoryview(text)):
        raise ValueError('text that is not UTF-8')
    return out.decode()


def _hex4(text, at):
    try:
        return int(text[at:at + 4], 16)
    except ValueError:
        return 0


def join_surrogates(body, start, end):
    """The JSON text of body[start:end] with each escaped surrogate pair written as its character (MicroPython's
    json.loads would leave two lone surrogates), as a view of UTF-8 for json.loads.

    It is written in place into one buffer the size of the text (a pair's escape takes 12 bytes, its character 4):
    pieces gathered in a list and joined were scattered over the heap, then wanted one more block of the whole
    size. It works on the bytes: on MicroPython a str is sliced by walking it from its start, time squared.
    """
    out = memoryview(bytearray(end - start))
    view = memoryview(body)
    n = 0
    i = start
    while True:
        j = body.find(b'\\u', i, end)
        if j < 0:
            break
        k = j
        while k > start and body[k - 1] == 0x5C:   # the backslashes before it: an odd run escapes the escape
            k -= 1
        code = _pair(body, j, end) if (j - k) % 2 == 0 else None
        stop = j if code else j + 2
        out[n:n + stop - i] = view[i:stop]
        n += stop - i
        i = stop
        if code:
            out[n:n + 4] = chr(code).encode()
            n += 4
            i += 12
    out[n:n + end - i] = view[i:end]
    return out[:n + end - i]


def _pair(body, j, end):
    """The character that the escaped surrogate pair at body[j:] stands for, or None if none is there."""
    if j + 12 <= end and body[j + 6:j + 8] == b'\\u':
        hi = _hex4(body, j + 2)
        lo = _hex4(body, j + 8)
        if 0xD800 <= hi < 0xDC00 and 0xDC00 <= lo < 0xE000:
            return 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
    return None
