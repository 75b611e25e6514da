"""What the engine does with a frame that does not fit its wire: a broken CRC, an original frame in a v2
session, anything while the wire is refused.

Loaded on the first such frame: a link that carries only sound frames never holds it.
"""
from . import const
from .engine import _NAME_REQUEST


def bad_checksum(engine, error):
    """A broken request is answered, so that its requester fails fast. Nothing in it is vouched for, so:

    - while the wire settles it is not answered: the answer would be taken for the peer's first words;
    - with MACs it is not answered and changes nothing, not even a seq: else a blind injector could spend the
      genuine peer's seqs;
    - in v2 without MACs only the next seq is answered, and that seq is spent: a forged broken frame cannot
      make a caller give up a request that then runs.
    """
    engine.drop('crc_errors')
    if engine.rx_mac is not None or engine.wire == 'negotiating':
        return
    sid = error.sid
    if not (isinstance(sid, int) and sid in engine._requests and isinstance(error.did, (int, str))):
        return
    seq = error.seq or 0
    if engine.wire == 'v2':
        if seq != engine.rx_seq + 1:
            return
        engine.rx_seq = seq
    engine.send_msg(engine._requests[sid], error.did, None, const.STATUS_CHECKSUM_ERROR, seq)


def while_refused(engine, body):
    """Nothing is taken on a refused wire (each frame counted): a link with connects is dropped by its runtime; on
    a line without them a board's server takes the next program's name, and only that, to start over (a host
    reopens its port, or an asyncio one closes it)."""
    if not (engine.connects or engine.is_client):
        try:
            msg = engine.codec.decode(body)
        except Exception:
            msg = None
        if msg is not None and (msg[0], msg[1]) == _NAME_REQUEST and msg[4] is None:
            engine._dispatch(msg[0], msg[1], msg[2], msg[3], len(body), None, None)
            return
    engine.drop('refused_frames')


def as_original(engine, body):
    """body read as an original frame, or None if it is none: a positional codec (struct_json) reads an original
    frame's first data bytes as a v2 header's seq and re, and the rest may still parse."""
    try:
        msg = engine.codec.decode(body)
    except Exception:
        return None
    return msg if msg[4] is None else None


def _answer_gone(engine):
    """Whether a writer has taken the server's session answer. Every frame queued since the session began counts
    in tx_seq, so more frames waiting than that means that one from before, the answer among them, waits still.
    A frame withdrawn since can hide one that waits (its count stays): the answer is then taken as gone, and
    the connection is refused, never followed: the client connects again."""
    return len(engine._out) <= engine.tx_seq


def original(engine, msg, length):
    """In v2 an original frame is dropped, but for a client's channel name (a new program on a serial
    line) and a server's first frame from a client that never heard its session answer: the server follows
    it to the original wire, or with session_v2='required' refuses the connection rather than drop that client's
    every frame: a TCP server's runtime drops it, and the client reconnects and offers v2 again; a serial line
    stays refused until the next program's name.

    With MACs, on a link with connects, such a frame is refused once the answer has gone out (_answer_gone): it
    needs no secret, and following it would leave a genuine client that heard the answer in v2, its every frame
    dropped. Its runtime drops the connection, and the client connects again (one that did lose the answer
    offers v2 anew). Before the answer has gone, the client sent the frame without it (a server slow to take
    the connection reads the offer and what the client said after giving up on the answer at once), and is
    followed. On a serial line a blind writer's channel name starts the session over anyway."""
    name = (msg[0], msg[1]) == _NAME_REQUEST
    if not (engine.is_client or name or engine.rx_seq):
        if engine.rx_mac is not None and engine.connects and _answer_gone(engine):
            engine.move('refused')
        else:
            if engine.session_v2 != 'required':
                engine.note('follow')   # the client never heard the session answer and settled on the original wire
            engine.settle_original()
    if not engine.is_client and (name or engine.wire == 'original'):
        engine._dispatch(msg[0], msg[1], msg[2], msg[3], length, None, None)
    else:
        engine.drop('downgrade')
