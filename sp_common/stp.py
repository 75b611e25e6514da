"""STP framing: b':<' + body (':' escaped as ':=') + b':>', with an incremental deframer."""

def frame(body, *more):
    """The frame of body, or of the body made of body and more joined (each piece escaped on its own)."""
    out = [b':<', body.replace(b':', b':=')]
    for piece in more:
        out.append(piece.replace(b':', b':='))
    out.append(b':>')
    return b''.join(out)


class Deframer:
    """Cuts bodies out of a byte stream fed in chunks of any size.

    Frame content goes into one preallocated buffer of max_size bytes; longer
    frames are dropped whole. framing_errors counts partial frames dropped by a
    bad escape or a new ':<'; oversized counts frames over max_size.
    """

    def __init__(self, max_size):
        self._buf = bytearray(max_size)
        self._mv = memoryview(self._buf)
        self.max_size = max_size
        self._len = 0
        self._in_frame = False
        self._sync = False     # last byte was ':'
        self._over = False     # current frame exceeded max_size
        self.framing_errors = 0
        self.oversized = 0

    def reset(self):
        """Forget a partial frame, e.g. after the connection was lost."""
        self._in_frame = self._sync = self._over = False
        self._len = 0

    def _append(self, chunk):
        n = self._len
        k = len(chunk)
        if self._over or n + k > self.max_size:
            self._over = True
            return
        self._mv[n:n + k] = chunk
        self._len = n + k

    def feed(self, data, n=None):
        """Takes data[:n] (bytes or bytearray); returns the bodies completed by it."""
        out = []
        view = memoryview(data)
        i = 0
        end = len(data) if n is None else n
        while i < end:
            if self._sync:
                self._sync = False
                c = data[i]
                i += 1
                if c == 0x3C:     # ':<' starts a frame
                    if self._in_frame:
                        self.framing_errors += 1
                    self._in_frame = True
                    self._over = False
                    self._len = 0
                elif not self._in_frame:
                    self._sync = c == 0x3A
                elif c == 0x3D:   # ':=' is an escaped ':'
                    self._append(b':')
                elif c == 0x3E:   # ':>' ends it
                    self._in_frame = False
                    if self._over:
                        self.oversized += 1
                    else:
                        out.append(bytes(self._mv[:self._len]))
                else:
                    self.framing_errors += 1
                    self._in_frame = False
                    self._sync = c == 0x3A
                continue
            j = data.find(b':', i, end)
            stop = end if j < 0 else j
            if self._in_frame and stop > i:
                self._append(view[i:stop])
            if j < 0:
                break
            self._sync = True
            i = j + 1
        return out
