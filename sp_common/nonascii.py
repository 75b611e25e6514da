"""MicroPython's json made to match CPython's for text beyond ASCII.

Loaded only when a frame holds such text: an ASCII-only board never pays for it.
"""


def escape(text):
    """text with every non-ASCII character escaped as CPython's json.dumps writes it."""
    out = bytearray()
    for ch in text:
        o = ord(ch)
        if o < 0x80:
            out.append(o)
        elif o < 0x10000:
            out.extend(b'\\u%04x' % o)
        else:
            o -= 0x10000
            out.extend(b'\\u%04x\\u%04x' % (0xD800 | (o >> 10), 0xDC00 | (o & 0x3FF)))
    return out.decode()


def _hex4(text, at):
    try:
        return int(text[at:at + 4], 16)
    except ValueError:
        return 0


def join_surrogates(raw):
    """The JSON text of raw (bytes) with each escaped surrogate pair written as its character (MicroPython's
    json.loads would leave two lone surrogates). It works on the bytes and decodes once at the end: on
    MicroPython a str is found and sliced by walking it from its start, so text would cost time squared."""
    out = []
    i = 0
    while True:
        j = raw.find(b'\\u', i)
        if j < 0:
            break
        k = j
        while k > 0 and raw[k - 1] == 0x5C:   # the backslashes before it: an odd run escapes the escape
            k -= 1
        hi = _hex4(raw, j + 2)
        if (j - k) % 2 == 0 and 0xD800 <= hi < 0xDC00 and raw[j + 6:j + 8] == b'\\u':
            lo = _hex4(raw, j + 8)
            if 0xDC00 <= lo < 0xE000:
                out.append(raw[i:j])
                out.append(chr(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)).encode())
                i = j + 12
                continue
        out.append(raw[i:j + 2])
        i = j + 2
    out.append(raw[i:])
    return b''.join(out).decode()
