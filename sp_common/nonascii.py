"""MicroPython's json made to match CPython's for text beyond ASCII.

Loaded only when a frame holds such text: an ASCII-only board never pays for it.
"""


_SHORTEST = (0, 0, 0x80, 0x800, 0x10000)   # the least code point a sequence of 2, 3 and 4 bytes may carry


def utf8_at(data, i):
    """(code point, its size in bytes) of the UTF-8 character at data[i] (bytes or a view of them). ValueError
    where none is, as for an overlong form or a number past U+10FFFF, which a board's json takes from a peer.

    A board reads a peer's text through this, never by a str's characters: MicroPython interns every character
    beyond ASCII that a loop over a str, an index or chr() makes, for good, and a peer's distinct characters
    would fill the heap that way (18 bytes each)."""
    lead = data[i]
    if lead < 0x80:
        return lead, 1
    size = 2 if 0xC0 <= lead < 0xE0 else 3 if 0xE0 <= lead < 0xF0 else 4 if 0xF0 <= lead < 0xF8 else 0
    if not size or i + size > len(data):
        raise ValueError('text that is not UTF-8')
    code = lead & (0x3F >> (size - 1))
    for k in range(i + 1, i + size):
        byte = data[k]
        if byte & 0xC0 != 0x80:
            raise ValueError('text that is not UTF-8')
        code = code << 6 | byte & 0x3F
    if code < _SHORTEST[size] or code > 0x10FFFF:
        raise ValueError('text that is not UTF-8')
    return code, size


def escape(text):
    """text with every non-ASCII character escaped as CPython's json.dumps writes it.

    ValueError for text that is not UTF-8 as CPython writes it: a board's
    json takes a peer's bytes as they come, and reads an overlong form as the
    character it spells (c0 a2 as a '"', which json.dumps left bare) or a
    number past U+10FFFF as a character. Such text would go out as JSON the
    peer wrote; it does not go out at all.
    """
    data = memoryview(text)   # (on a board: the str's own UTF-8 bytes)
    out = bytearray()
    i = 0
    while i < len(data):
        code, size = utf8_at(data, i)
        i += size
        if code < 0x80:
            out.append(code)
        elif code < 0x10000:
            out.extend(b'\\u%04x' % code)
        else:
            code -= 0x10000
            out.extend(b'\\u%04x\\u%04x' % (0xD800 | (code >> 10), 0xDC00 | (code & 0x3FF)))
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
        if code:   # (its UTF-8 written out: chr() would intern it, see utf8_at)
            out[n] = 0xF0 | code >> 18
            out[n + 1] = 0x80 | code >> 12 & 0x3F
            out[n + 2] = 0x80 | code >> 6 & 0x3F
            out[n + 3] = 0x80 | code & 0x3F
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
