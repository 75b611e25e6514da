"""Hostile frames against an engine of every kind, on CPython (tests/test_fuzz.py) and MicroPython.

Run as a script it replays a corpus file (records of a 4-byte big-endian
length and one frame): MICROPYPATH=<repository root> micropython fuzz_replay.py <corpus>.
"""
import sys

from link import Recorder
from sp_common import Deframer, Engine, const, frame, pure_json

# (is_client, secret, settled): a client settled on the original wire (an original server answered its offer), or
# one whose offer waits for its answer, which takes nothing but that answer and the names, and answers nothing
KINDS = ((False, None, True), (False, 'secret', True), (True, None, True), (True, 'secret', True),
         (True, None, False), (True, 'secret', False))
_NO_SESSION = frame(pure_json.encode(const.SID_SESSION_RESPONSE, const.DID_SESSION,
                                     const.STATUS_SERVICE_OR_DATA_UNKNOWN, None))
_LIMITS = ('MemoryError', 'RecursionError')   # what the per-frame catch-all is for; any other exception is a bug


class _Lines(Recorder):
    """Keeps only the lines of the engine's catch-all that name an exception only a bug raises."""

    def log(self, level, text):
        name = text.split('dropped a message: ')[-1]
        if name != text and level >= 40 and name not in _LIMITS:   # the catch-all's line (ERROR), not a format error's
            self.lines.append(text)


class Engines:
    """An engine of every kind, fed the same frames."""

    def __init__(self):
        self.kinds = []
        for is_client, secret, settled in KINDS:
            log = _Lines()
            eng = Engine(is_client, secret=secret, log=log, hexlog=log)
            eng.register_callback(30, None, lambda msg: (0, msg.get_data()))
            eng.add_data(11, 0, 'declared')
            eng.connection_made()
            if is_client and settled:
                eng.feed(_NO_SESSION)
            eng.send_msg(10, 1, None)   # an answer on 11/1 is asked for
            eng.data_to_send()
            self.kinds.append((eng, log, secret, settled))

    def feed(self, data):
        for eng, _, _, _ in self.kinds:
            eng.feed(data)
            eng.data_to_send()

    def check(self):
        """A normal request to each engine.

        Returns (whether every one whose wire settled answered it, the
        exceptions the catch-all swallowed that only a bug raises).
        """
        answered = True
        problems = []
        for eng, log, secret, settled in self.kinds:
            eng.feed(frame(pure_json.encode(30, 0, 0, 'after')))
            got = [pure_json.decode(body)[:4] for body in Deframer(1024).feed(eng.data_to_send())]
            if settled and got != ([(31, 0, 0, 'after')] if secret is None else [(31, 0, 3, None)]):
                answered = False
                problems.append('client=%s secret=%s answered %r' % (eng.is_client, secret, got))
            problems.extend(log.lines)
            log.lines = []
        return answered, problems


def survive(frames):
    engines = Engines()
    for data in frames:
        engines.feed(data)
    return engines.check()


def frames_in(path):
    """The frames of a corpus file, one at a time."""
    with open(path, 'rb') as f:
        while True:
            head = f.read(4)
            if not head:
                return
            yield f.read(int.from_bytes(head, 'big'))


def _report(result):
    for line in result[1]:
        print('PROBLEM', line)
    return result[0]


if __name__ == '__main__':
    fed = 0
    answered = True
    all_of_them = Engines()
    for data in frames_in(sys.argv[1]):
        fed += 1
        answered = _report(survive([data])) and answered
        all_of_them.feed(data)
    answered = _report(all_of_them.check()) and answered
    print('fed %d frames' % fed)
    print('a normal request answered after each frame and after all: %s' % answered)
