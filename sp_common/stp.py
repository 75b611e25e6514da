"""STP framing: b':<' + body (':' escaped as ':=') + b':>', with an incremental deframer."""
from .codec import const


def frame(body, *more):
    """The frame of body, or of the body made of body and more joined (each piece escaped on its own)."""
    out = [b':<', body.replace(b':', b':=')]
    for piece in more:
        out.append(piece.replace(b':', b':='))
    out.append(b':>')
    return b''.join(out)


_WHOLE = const(512)   # frames up to this size are cut out of a chunk that holds all of them in one step


class Deframer:
    """Cuts bodies out of a byte stream fed in chunks of any size.

    Frame content goes into one preallocated buffer of max_size bytes; longer
    frames are dropped whole. framing_errors counts partial frames dropped by a
    bad escape or a new ':<'; oversized counts frames over max_size.

    watch: a byte (e.g. b'\x03', Ctrl-C) to look out for between frames, where
    a console's REPL tools send it; watched turns true when it comes there.
    Inside a frame the same byte is data, and so it is in the rest of a frame
    broken by a bad escape, up to that frame's ':>' or the next ':<'.

    in_frame and broken say which of the two it is in the middle of (neither:
    between frames).
    """

    def __init__(self, max_size):
        self._buf = bytearray(max_size)
        self._mv = memoryview(self._buf)
        self.max_size = max_size
        self._len = 0
        self.in_frame = False   # a frame began and has not ended
        self._sync = False     # last byte was ':'
        self._over = False     # current frame exceeded max_size
        self.broken = False     # the rest of a frame broken by a bad escape is passing: not between frames
        self._bodies = []      # what feed() returns, reused
        self.framing_errors = 0
        self.oversized = 0
        self.watch = None
        self.watched = False

    def reset(self):
        """Forget a partial frame, e.g. after the connection was lost."""
        self.in_frame = self._sync = self._over = self.broken = False
        self._len = 0

    def _room(self, n):
        """Whether n more bytes fit; if not, the frame is over the size."""
        if self._over or self._len + n > self.max_size:
            self._over = True
        return not self._over

    def _put(self, b):
        if self._room(1):
            self._buf[self._len] = b
            self._len += 1

    def _whole(self, data, view, i, end, out):
        """A small frame whose end is in data (view: a memoryview of it): its body cut out in one step; where it
        ended, or 0.

        The body is copied twice (the cut and the unescaping), so frames longer
        than _WHOLE go byte runs by byte runs through the buffer instead.
        """
        e = data.find(b':>', i, min(end, i + _WHOLE + 1))
        if e < 0:
            return 0
        colons = data.count(b':', i, e)
        if colons != data.count(b':=', i, e):   # a ':' that starts or breaks a frame
            return 0
        try:
            body = bytes(view[i:e])   # (of a bytearray, a slice would be one more copy: a bytearray)
            if colons:
                body = body.replace(b':=', b':')
            if len(body) > self.max_size:
                self.oversized += 1
            else:
                out.append(body)
        except MemoryError:   # no room in the heap for the cut: dropped, counted as oversized
            self.oversized += 1
        self.in_frame = False
        return e + 2

    def feed(self, data, n=None):
        """Takes data[:n] (bytes or bytearray); returns the bodies completed by it.

        The list returned is the deframer's own and is emptied by the next
        call: until a frame completes, feeding allocates nothing (a byte at a
        time as the slowest UART hands them over) or one view (a longer chunk).
        """
        out = self._bodies
        while out:   # not clear(): that reallocates the list even when it is small
            out.pop()
        view = None
        i = 0
        end = len(data) if n is None else n
        while i < end:
            if self._sync:
                self._sync = False
                c = data[i]
                i += 1
                if c == 0x3C:     # ':<' starts a frame
                    if self.in_frame:
                        self.framing_errors += 1
                    self.in_frame = True
                    self.broken = False
                    self._over = False
                    self._len = 0
                elif not self.in_frame:
                    if c == 0x3A:
                        i -= 1   # a ':' again: the pair it may begin is looked for with the rest, below
                    elif c == 0x3E:
                        self.broken = False   # the broken frame's end
                    elif self.watch is not None and c == self.watch[0] and not self.broken:
                        self.watched = True
                elif c == 0x3D:   # ':=' is an escaped ':'
                    self._put(0x3A)
                elif c == 0x3E:   # ':>' ends it
                    self.in_frame = False
                    if self._over:
                        self.oversized += 1
                    else:
                        try:   # the body copied out; one the heap has no room for is dropped, counted as oversized
                            out.append(bytes(self._mv[:self._len]))
                        except MemoryError:
                            self.oversized += 1
                else:
                    self.framing_errors += 1
                    self.in_frame = False
                    self.broken = True
                    self._sync = c == 0x3A
                continue
            if not self.in_frame:
                # between frames only a ':<' counts, and in the rest of a frame broken by a bad escape its ':>' too:
                # what comes before them (junk, stray pairs, a console's text) is passed over in one step
                j = data.find(b':<', i, end)
                stop = end if j < 0 else j
                if self.broken:
                    e = data.find(b':>', i, stop)
                    if e >= 0:
                        self.broken = False   # the broken frame's end
                        i = e + 2
                        continue
                elif self.watch is not None and data.find(self.watch, i, stop) >= 0:
                    self.watched = True
                if j < 0:
                    self._sync = data[end - 1] == 0x3A   # (a ':' last: its pair's byte comes with the next chunk)
                    break
                self.in_frame = True
                self.broken = False
                self._over = False
                self._len = 0
                i = j + 2
                continue
            if not self._len and not self._over and end - i > 1:   # (a byte is no whole frame)
                if view is None:
                    view = memoryview(data)
                j = self._whole(data, view, i, end, out)
                if j:
                    i = j
                    continue
            j = data.find(b':', i, end)   # the frame's bytes up to its next ':'
            stop = end if j < 0 else j
            if stop == i + 1:
                self._put(data[i])
            elif stop > i and self._room(stop - i):
                if view is None:
                    view = memoryview(data)
                self._mv[self._len:self._len + stop - i] = view[i:stop]
                self._len += stop - i
            if j < 0:
                break
            self._sync = True
            i = j + 1
        return out
