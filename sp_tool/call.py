"""One request from the command line: send it, wait for its answer, and name what went wrong if none came."""
from __future__ import annotations

import difflib
import time
from typing import Optional, Tuple, Union

import sp_cpython as sp
from sp_common.logtext import ID_CHARS, cut
from sp_cpython import serial_port
from .demo import DATA as DEMO_DATA

from .errors import EXIT_AUTH, EXIT_CRC, EXIT_REPL, EXIT_STATUS, EXIT_TIMEOUT, CommandError
from .target import PROTOCOLS, TCP_SCHEME

CHANNEL_NAME = 'sp-host'
VIRTUAL_BOARD = 'the virtual board'   # what messages call the board sp call starts itself (its pty is no news)
SERVICES = {'read': sp.SID_READ_REQUEST, 'write': sp.SID_WRITE_REQUEST, 'execute': sp.SID_EXECUTE_REQUEST}
# a board's error statuses that have exit codes of their own (any other: EXIT_STATUS), on a link and through a broker
STATUS_EXITS = {sp.STATUS_AUTH_REQUIRED: EXIT_AUTH, sp.STATUS_CHECKSUM_ERROR: EXIT_CRC}
ECHOES = (('"%s"' % CHANNEL_NAME).encode(),)   # its own channel name echoed back, as a REPL echoes what it is sent
_POLL_S = 0.05
REPL_GRACE_S = 0.5
REPL_ADVICE = ('the board on %(port)s answers with a MicroPython REPL, not the protocol. A board serves the '
               'streams its config.py names in STREAMS: boards/rp2040 its USB console, boards/esp32 UART1 '
               '(GPIO17/16), boards/qemu its console. Its main.py is not running here: reset it '
               '(mpremote connect %(port)s reset; the virtual board: Enter where sp board runs), or deploy first '
               '(sp deploy BOARD --port %(port)s). If it serves another stream, call that port instead (a USB-UART adapter on the pins above)')

DataId = Union[int, str]


class ReplSniffer(serial_port.ReplSniffer):
    """The transport's REPL marks and ours, and how long to be sure."""

    def __init__(self) -> None:
        super().__init__(serial_port.REPL_MARKS, ECHOES)

    def sure(self) -> bool:
        """A mark seen, and no protocol answer for REPL_GRACE_S since: a board just starting its
        main.py may still echo what came in before the protocol took its console."""
        return self.seen_at is not None and time.monotonic() - self.seen_at >= REPL_GRACE_S


def is_service(text: str) -> bool:
    return text in SERVICES or text.lstrip('-').isdigit()


def service_id(text: str) -> int:
    """read / write / execute, or a request Service-ID as a number."""
    if text in SERVICES:
        return SERVICES[text]
    try:
        return int(text)
    except ValueError:
        close = difflib.get_close_matches(text, SERVICES, 1)
        raise CommandError('unknown service %r%s: read, write, execute or a number'
                           % (text, ' (did you mean %s?)' % close[0] if close else '')) from None


def data_id(service: int, text: str) -> Tuple[DataId, str]:
    """(Data-ID, name): a number, a demo name (asc_time, value, echo, fail) or a string Data-ID. A name close to a
    demo name of the service is a typo of it, named here: sent, it would only come back as unknown."""
    if text.lstrip('-').isdigit():
        try:
            return int(text), text
        except ValueError:   # over 4300 digits, or digits int() does not read (²)
            raise CommandError('the data id %s%s is not a number a message carries'
                               % (text[:40], '...' if len(text) > 40 else '')) from None
    names = {name: did for services, did, name in DEMO_DATA if service in services}
    if text in names:
        return names[text], text
    close = difflib.get_close_matches(text, names, 1)
    if close:
        raise CommandError('unknown data id %r (did you mean %s?): a number or a demo name (%s)'
                           % (text, close[0], ', '.join(names)))
    return text, text


def _wait(predicate, deadline: float, sniffer: ReplSniffer, where: str) -> bool:
    """Polls predicate until deadline; a REPL seen on the way ends the command at once."""
    while True:
        if predicate():
            return True
        if sniffer.sure():
            raise CommandError(REPL_ADVICE % {'port': where}, EXIT_REPL)
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_S)


def call(comm, where: str, service: int, did: DataId, name: str, data, codec: str = 'pure_json',
         secret: Optional[str] = None, timeout: float = 10.0, require_v2: bool = False) -> Tuple[sp.data_storage, dict]:
    """Sends one request on comm (a transport not yet used) and returns (answer, counters). where: the target as
    messages name it (VIRTUAL_BOARD for the one sp call started). require_v2: session_v2='required'."""
    sniffer = ReplSniffer()
    comm.register_callback(sniffer)     # before the protocol: it sees the bytes first
    prot = PROTOCOLS[codec](comm, secret=secret, channel_name=CHANNEL_NAME,
                            session_v2='required' if require_v2 else True)
    deadline = time.monotonic() + timeout
    try:
        response = sp.response_sid(service)
        prot.add_data((service, response), did, name)

        def heard() -> int:
            """Messages the board sent; what a REPL echoes of ours (a request to this client) does not count."""
            counters = prot.counters
            return counters['rx_messages'] - counters['out_of_turn']
        if not _wait(lambda: heard() > 0, deadline, sniffer, where):
            raise _silence(prot, where, timeout)
        if secret is not None:
            before = heard()
            if not prot.authentificate(max(min(deadline - time.monotonic(), 3.0), 0.1)):
                if require_v2 and prot.session is None:
                    raise _without_v2(where)
                # in session v2 with MACs a board with another secret drops every frame: silence says it too
                if heard() > before or prot.macs:
                    raise CommandError('authentication refused by %s: wrong --secret, the board has none, or it '
                                       'holds seeds back after repeated wrong keys (for up to a minute: try again '
                                       'then)' % _the_board(where), EXIT_AUTH)
                raise _silence(prot, where, timeout)
        answer = prot.request(service, did, data, max(deadline - time.monotonic(), 0.1))
        if answer is None:
            raise _without_v2(where) if require_v2 and prot.session is None else _silence(prot, where, timeout)
        return answer, prot.counters
    finally:
        prot.close()


def _the_board(where: str) -> str:
    """How messages name the board on where: 'the board on /dev/ttyACM0', or the virtual board."""
    return where if where == VIRTUAL_BOARD else 'the board on %s' % where


def _without_v2(where: str) -> CommandError:
    """A board that answered, yet settled on no wire: with --require-v2, one that speaks only the original wire (a
    board that speaks v2 answers the offer at once)."""
    return CommandError('%s speaks only the original wire, which --require-v2 refuses (a board of this project '
                        'runs session v2 unless its SESSION_V2 is off; one that says otherwise may be a fake)'
                        % _the_board(where), EXIT_AUTH)


def _silence(prot, where: str, timeout: float) -> CommandError:
    crc = prot.counters.get('crc_errors', 0)
    if crc:
        return CommandError('no answer from %s: %d frame(s) with a wrong CRC came instead (noisy line, '
                            'or another codec: --codec)' % (where, crc), EXIT_CRC)
    busy = ' a board serves one TCP host at a time: is another connected to it?' if where.startswith(TCP_SCHEME) \
        else ' is another program reading the port? a board left at the raw REPL by an interrupted mpremote or sp ' \
             'deploy says nothing: reset it' if where != VIRTUAL_BOARD else ''
    return CommandError('no answer from %s within %g s (is the protocol running there? is --codec right?%s)'
                        % (where, timeout, busy), EXIT_TIMEOUT)


def status_name(status: int) -> str:
    """A status's name, or its number, cut short: a peer's status may have thousands of digits."""
    return cut(sp.STATUS__NAMES.get(status, str(status)), ID_CHARS)


def verdict(answer: sp.data_storage, counters: dict, where: str) -> Optional[CommandError]:
    """The error an answer stands for, if any: its status, or CRC errors seen on the way."""
    status = answer.get_status()
    if status != sp.STATUS_OKAY:
        board = _the_board(where)
        said = ('%s requires authentication: give --secret-file FILE or set SP_SECRET' % board
                if status == sp.STATUS_AUTH_REQUIRED else
                '%s received the request with a wrong CRC' % board if status == sp.STATUS_CHECKSUM_ERROR else
                '%s answered: %s' % (board, status_name(status)))
        return CommandError(said, STATUS_EXITS.get(status, EXIT_STATUS))
    if counters.get('crc_errors', 0):
        return CommandError('%d frame(s) with a wrong CRC seen on %s' % (counters['crc_errors'], where), EXIT_CRC)
    return None
