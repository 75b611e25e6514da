"""The sp command: a table of subcommands, each a do_<name> handler with its argparse_<name> options.

Quiet by default: results on stdout, one line per error on stderr, and an
exit code per cause (sp_tool.errors). -v shows the protocol's messages, -vv
their bytes too.
"""
from __future__ import annotations

import argparse
import codecs
import json
import logging
import os
import signal
import sys
import threading
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Callable, Iterator, List, Optional

from .errors import EXIT_BOARD, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, CommandError
from .target import PROTOCOLS, board_env, check_tcp_port_free, format_host_port, read_secret_file, \
    virtual_board_tcp_port

CODECS = tuple(PROTOCOLS)
MAX_SECONDS = 86400   # a day: longer than any answer takes, and within what every wait of the OS and asyncio takes
MAX_PACKET = 268435455   # MQTT's largest packet (its length field's limit)
MAX_BAUD = 2 ** 31 - 1   # what a serial driver takes (a C int)
MAX_WORKERS = 1024   # far more calls in flight than a board answers at once


def _number(kind: Callable[[str], float], text: str, fits: Callable[[float], bool], what: str) -> float:
    try:
        value = kind(text)
    except ValueError:   # (an int of over 4300 digits too)
        value = None
    if value is None or not fits(value):   # nan fits no range
        raise argparse.ArgumentTypeError('%s, not %r' % (what, text))
    return value


def _seconds(text: str) -> float:
    """An argparse type for a timeout: nan would never end a wait, 0 or less ends it before anything is sent, inf
    and 1e10 overflow the OS's waits."""
    return _number(float, text, lambda value: 0 < value <= MAX_SECONDS,
                   'seconds above 0, at most %d' % MAX_SECONDS)


def _integer(low: int, high: int) -> Callable[[str], int]:
    """An argparse type for a whole number from low to high: out of range it would fail later, with a traceback."""
    return lambda text: _number(int, text, lambda value: low <= value <= high,
                                'a whole number from %d to %d' % (low, high))


def _version() -> str:
    try:
        return version('sp-dual')
    except PackageNotFoundError:
        return 'unknown'


class Stop(threading.Event):
    """Set by Ctrl-C, SIGTERM or SIGHUP: how the long-running commands end cleanly. code is the exit status the
    shell gives a command a signal ended, 128 + the signal's number (Ctrl-C: 130), so a script can tell a stop
    from a success."""

    def __init__(self) -> None:
        super().__init__()
        self.code = EXIT_OK
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, _frame) -> None:
        self.code = 128 + signum
        self.set()


@contextmanager
def _board_port(args, secret: Optional[str]) -> Iterator[str]:
    """args.target, or the port of a virtual board started for this command when there is none."""
    if args.target is not None:
        yield args.target
        return
    from .virtual_board import VirtualBoard
    with VirtualBoard(boot=True, env=board_env(secret, args.codec, 0)) as board:
        logging.getLogger('sp').info('virtual board (MicroPython unix port) on %s', board.port)
        yield board.port


# ports ---------------------------------------------------------------------------------------
def argparse_ports(p: argparse.ArgumentParser) -> None:
    p.description = 'List the serial ports and what they are (pyserial list_ports).'
    p.epilog = 'example: sp ports'


def do_ports(args) -> int:
    """The device's own USB strings are in the description and hwid: escaped, they cannot drive the terminal."""
    from serial.tools import list_ports
    from sp_common.logtext import printable
    try:
        ports = sorted(list_ports.comports(), key=lambda port: port.device)
    except UnicodeDecodeError as err:   # a device's own USB strings, in text this locale's encoding cannot read
        raise CommandError('cannot list the serial ports: a device names itself in text this locale cannot read '
                           '(%s); run with LC_ALL=C.UTF-8' % err.reason) from None
    for port in ports:
        print(printable('%-16s %s [%s]' % (port.device, port.description, port.hwid)))
    if not ports:
        print('no serial ports found', file=sys.stderr)
    return EXIT_OK


# call ----------------------------------------------------------------------------------------
def argparse_call(p: argparse.ArgumentParser) -> None:
    p.description = ('Send one request and print its answer and status. TARGET is a serial port '
                     '(/dev/ttyACM0, COM3), any pyserial URL (socket://, rfc2217://, loop://), '
                     'tcp://HOST:PORT, mqtt://HOST:PORT/BOARD (a board behind sp gateway), '
                     'or left out for a virtual board started for this call.')
    p.usage = 'sp call [options] [TARGET] SERVICE DATA_ID [DATA_JSON]'
    p.epilog = 'example: sp call /dev/ttyACM0 write value 42'
    p.add_argument('words', nargs='*', metavar='[TARGET] SERVICE DATA_ID [DATA_JSON]',
                   help='TARGET: optional, see above; SERVICE: read, write, execute or a number; DATA_ID: a '
                        'number or a name (asc_time, value, echo, fail); DATA_JSON: optional, the data, default null')
    _add_link_options(p)
    p.add_argument('--timeout', type=_seconds, default=10.0, help='seconds to wait for the answer (default 10)')
    p.add_argument('--json', action='store_true', help='print the answer as one JSON object; on failure too, '
                                                       'with error and exit added')
    p.add_argument('--require-v2', action='store_true',
                   help='refuse a board that speaks only the original wire (with a secret: the original protocol '
                        'trusts any server, a fake one too; session v2 makes the board prove the secret)')


def _add_link_options(p: argparse.ArgumentParser, secret_help: str = 'shared secret: authenticate first',
                      baud: bool = True) -> None:
    secret = p.add_mutually_exclusive_group()
    secret.add_argument('--secret', help=secret_help + ' (any user sees it in ps: better --secret-file or '
                                                       '$SP_SECRET)')
    secret.add_argument('--secret-file', metavar='PATH', help='read the secret from this file (chmod 600 it)')
    _add_wire_options(p, baud)


def _secret(args) -> Optional[str]:
    """--secret, the content of --secret-file, or $SP_SECRET: the last two keep it out of ps."""
    if args.secret is not None:
        return args.secret
    if args.secret_file is not None:
        return read_secret_file(args.secret_file)
    return os.environ.get('SP_SECRET') or None


def _add_wire_options(p: argparse.ArgumentParser, baud: bool = True) -> None:
    p.add_argument('--codec', choices=CODECS, default='pure_json', help='message codec (default pure_json)')
    if baud:
        p.add_argument('--baud', type=_integer(1, MAX_BAUD), default=115200, help='serial baud rate (default 115200)')


def _split_call_words(words: List[str]):
    """[TARGET] SERVICE DATA_ID [DATA_JSON] -> (target or None, service, data id, DATA_JSON's text or None)."""
    target = None
    if _has_target(words):
        target, words = words[0], words[1:]
    return target, words[0], words[1], words[2] if len(words) == 3 else None


def _data(text: Optional[str], codec: str):
    """DATA_JSON as a board takes it: JSON with no NaN, Infinity or 1e999 (no codec sends them), nested no deeper
    than the codec parses (a board drops a deeper message unanswered: the call would only time out)."""
    from sp_common.host_json import MAX_DATA_DEPTH, loads
    from sp_cpython.protocol import CODECS as codecs
    if text is None:
        return None
    too_deep = CommandError('DATA_JSON nests deeper than a board takes (%d levels)' % MAX_DATA_DEPTH)
    try:
        data = loads(text)
    except RecursionError:
        raise too_deep from None
    except ValueError as err:
        raise CommandError('DATA_JSON is not JSON (%s): %r' % (err, text)) from None
    try:
        codecs[codec].encode(0, 0, 0, data)   # refused there: what every peer's decode() drops
    except TypeError:
        raise too_deep from None
    return data


def _check_ids(codec: str, sid: int, did) -> None:
    """The ids as the codec carries them: struct_json's are integers of 16 bits, where a request would fail only
    after the link is up."""
    from sp_cpython.protocol import CODECS as codecs
    try:
        codecs[codec].encode(sid, did, 0, None)
    except (TypeError, ValueError) as err:
        raise CommandError('%s cannot carry service %r, data id %r: %s' % (codec, sid, did, err)) from None


def _has_target(words: List[str]) -> bool:
    """Two words are SERVICE DATA_ID, four start with TARGET; of three, the first is a TARGET when it is no service
    and the second is one, or when it looks like a port or URL. So a mistyped service (sp call reed asc_time) is
    named as one, not opened as a port."""
    from .call import is_service
    if len(words) != 3:
        return len(words) == 4
    if is_service(words[0]):
        return False
    return is_service(words[1]) or any(mark in words[0] for mark in ('/', ':', '\\')) \
        or words[0].upper().startswith('COM')


def do_call(args) -> int:
    from .call import data_id, service_id
    from .mqtt_wire import is_broker_url
    if not 2 <= len(args.words) <= 4:
        args.parser.error('give SERVICE and DATA_ID (TARGET and DATA_JSON are optional)')
    args.target, service, did_text, data_text = _split_call_words(args.words)
    data = _data(data_text, args.codec)
    sid = service_id(service)
    did, name = data_id(sid, did_text)
    _check_ids(args.codec, sid, did)
    try:
        if args.target is not None and is_broker_url(args.target):
            answer, error = _call_through_broker(args, service, did_text, data)
        else:
            answer, error = _call(args, sid, did, name, data)
    except CommandError as err:
        if err.code != EXIT_USAGE:   # the request went out: --json shows the keys of an answer
            err.answer = _no_answer(sid, did)
        raise
    return _finish(args, answer, error)


def _call(args, sid: int, did, name: str, data):
    """(answer as a dict, the error it stands for or None)."""
    from .call import VIRTUAL_BOARD, call, status_name, verdict
    from .target import open_transport
    secret = _secret(args)
    with _board_port(args, secret) as port:
        where = VIRTUAL_BOARD if args.target is None else port
        comm = open_transport(port, args.baud, args.timeout)
        answer, counters = call(comm, where, sid, did, name, data, args.codec, secret, args.timeout,
                                args.require_v2)
    status = answer.get_status()
    return ({'service_id': answer.get_service_id(), 'data_id': answer.get_data_id(), 'status': status,
             'status_name': status_name(status), 'data': answer.get_data()}, verdict(answer, counters, where))


def _no_answer(sid: int, did) -> dict:
    """What --json shows of a call that got no answer: the same keys and types as an answer, status null."""
    import sp_cpython as sp
    return {'service_id': sp.response_sid(sid), 'data_id': did, 'status': None,
            'status_name': None, 'data': None}


def _finish(args, answer: dict, error: Optional[CommandError]) -> int:
    """Prints the answer; with --json an error goes into the same object (main prints it)."""
    if error is None:
        _print_answer(args, answer)
        return EXIT_OK
    if not args.json:
        _print_answer(args, answer)
    error.answer = answer
    raise error


def _call_through_broker(args, service: str, did_text: str, data):
    """mqtt://HOST:PORT/BOARD: the gateway holds the link, its secret and codec. Returns (answer, error or None)."""
    from .mqtt_call import call_through_broker, verdict
    if args.secret is not None or args.secret_file is not None or args.codec != 'pure_json' or args.require_v2:
        raise CommandError('through a broker the gateway holds the board\'s link, its secret and codec: '
                           'leave out --secret, --secret-file, --codec and --require-v2')
    answer = call_through_broker(args.target, service, did_text, data, args.timeout)
    return answer, verdict(answer, args.target) if answer['status'] != 0 else None


def _print_answer(args, answer: dict) -> None:
    """The answer as JSON, or its status name (which a gateway or broker relays: escaped) and data."""
    from sp_common.logtext import printable
    if args.json:
        print(json.dumps(answer))
    else:
        print(printable('%s: %s' % (answer['status_name'], json.dumps(answer['data']))))


# serve ---------------------------------------------------------------------------------------
def argparse_serve(p: argparse.ArgumentParser) -> None:
    p.description = ('Serve the demo services (read asc_time and value, write value, execute echo '
                     'and fail) from this host, on TCP or on a serial port, until Ctrl-C.')
    p.epilog = 'example: sp serve --tcp 127.0.0.1:17017'
    where = p.add_mutually_exclusive_group()
    where.add_argument('--tcp', metavar='HOST:PORT', default='127.0.0.1:17017',
                       help='listen on this address (default 127.0.0.1:17017; port 0: any free one)')
    where.add_argument('--port', metavar='PORT', help='serve on this serial port or pyserial URL instead')
    _add_link_options(p)


def do_serve(args) -> int:
    from .demo import add_demo_services
    from .target import listen_transport, open_transport
    secret = _secret(args)
    if args.port:
        comm = open_transport(args.port, args.baud, 2.0, is_client=False)
        where = args.port
    else:
        comm = listen_transport(args.tcp)
        where = 'tcp://%s' % format_host_port(comm.host, comm.port)
    stop = Stop()
    prot = PROTOCOLS[args.codec](comm, secret=secret, channel_name='sp-serve')
    try:
        add_demo_services(prot)
        print('serving the demo services on %s' % where, flush=True)
        stop.wait()
    finally:
        prot.close()
    return stop.code


# monitor -------------------------------------------------------------------------------------
def argparse_monitor(p: argparse.ArgumentParser) -> None:
    p.description = ('Decode what a link carries into one line per message: time (or byte offset in '
                     'a file), direction where known, service, data_id, status, data and CRC verdict, '
                     'and framing errors. TARGET|FILE is a target as for call or a file of captured bytes '
                     '(what the board sends is shown, until Ctrl-C).')
    p.epilog = ('example: sp monitor /dev/ttyACM0 --save capture.bin; sp monitor --tap /dev/ttyACM0 (then point '
                'the host program at the pty it prints)')
    p.add_argument('source', metavar='TARGET|FILE')
    _add_wire_options(p)
    p.add_argument('--save', metavar='FILE', help='also write the raw bytes of a live link (what the board sent) '
                                                  'to FILE')
    p.add_argument('--tap', action='store_true',
                   help='share a serial port instead of taking it: print a new pty for the host program, forward '
                        'both ways and decode both directions (-> host, <- board)')


def do_monitor(args) -> int:
    from .monitor import monitor
    return monitor(args.source, args.codec, args.baud, args.save, Stop, args.tap)


# board ---------------------------------------------------------------------------------------
def argparse_board(p: argparse.ArgumentParser) -> None:
    p.description = ('Run the virtual board: the MicroPython unix port behind a pseudo-terminal, '
                     'with the protocol installed and started. Prints its port (use it like '
                     '/dev/ttyACM0). Enter (or kill -USR1 PID) resets it, which starts main.py '
                     'like a board\'s reset button; Ctrl-C stops it.')
    p.epilog = 'example: sp board --empty (a board with nothing on it, at its REPL: deploy to it)'
    files = p.add_mutually_exclusive_group()
    files.add_argument('--fs', metavar='DIR', help='the board\'s filesystem folder (default: a new temporary one)')
    files.add_argument('--empty', action='store_true', help='start with nothing installed (the board waits at its REPL)')
    p.add_argument('--tcp-port', type=_integer(0, 65535), default=None,
                   help='TCP port the board serves on 127.0.0.1 (default: boards/unix/config.py\'s; 0: none)')
    _add_link_options(p, secret_help='the board\'s shared secret', baud=False)
    p.add_argument('--heapsize', help='MicroPython heap, e.g. 192k (the least it starts in from sources)')


def do_board(args) -> int:
    from .virtual_board import VirtualBoard
    tcp_port = virtual_board_tcp_port() if args.tcp_port is None else args.tcp_port
    if tcp_port > 0:
        check_tcp_port_free(tcp_port)
    stop = Stop()
    # REPL: a Ctrl-C between frames hands the console back, as on a Pico, so mpremote and sp deploy take it
    board = VirtualBoard(fs_dir=args.fs, heapsize=args.heapsize, boot=True, install=not (args.empty or args.fs),
                         env=dict(board_env(_secret(args), args.codec, tcp_port), SP_REPL='1'))
    try:
        signal.signal(signal.SIGUSR1, lambda *_: _reset(board))
        enter = _reads_enter()
        if enter:
            threading.Thread(target=_reset_on_enter, args=(board,), daemon=True).start()
        print(board.port, flush=True)
        print('virtual board on %s%s, folder %s: %skill -USR1 %d resets it, Ctrl-C stops it'
              % (board.port, ', tcp://127.0.0.1:%d' % tcp_port if tcp_port > 0 else '', board.fs_dir,
                 'Enter or ' if enter else '', os.getpid()), file=sys.stderr, flush=True)
        while not stop.wait(0.2):
            if board.failed:
                raise CommandError('virtual board: ' + board.failed, EXIT_BOARD)
    finally:
        board.stop()
    return stop.code


def _reset(board) -> None:
    print('reset', file=sys.stderr, flush=True)
    board.reset(boot=True)


def _reads_enter() -> bool:
    """Whether Enter may reset the board: stdin is open (not <&-), and not a terminal of which this process is a
    background job (sp board &), which a read stops (SIGTTIN). A pipe is a program's Enter."""
    if sys.stdin is None:
        return False
    if not sys.stdin.isatty():
        return True
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except OSError:   # a terminal that is not this process's own
        return False


def _reset_on_enter(board) -> None:
    for _line in sys.stdin:
        _reset(board)


# gateway -------------------------------------------------------------------------------------
def argparse_gateway(p: argparse.ArgumentParser) -> None:
    p.description = ('Put boards behind an MQTT broker: requests published to PREFIX/BOARD/SERVICE/DATA_ID/req '
                     '(MQTT 5 response topic and correlation data, or a 3.1.1 envelope {"reply_to", "id", '
                     '"data"}) are called on the board and answered; what a board sends by itself goes to '
                     'PREFIX/BOARD/SERVICE_ID/DATA_ID; PREFIX/BOARD/status says online or offline (retained). '
                     'A board that is a TCP client (e.g. on Wi-Fi) connects to the gateway: TARGET '
                     'listen://HOST:PORT. Reconnects to the broker and to each board by itself; runs until Ctrl-C.')
    p.usage = 'sp gateway --broker mqtt://HOST:PORT [options] NAME=TARGET [NAME=TARGET ...]'
    p.epilog = 'example: sp gateway --broker mqtt://127.0.0.1:1883 kitchen=/dev/ttyACM0?secret_file=kitchen.key'
    p.add_argument('boards', nargs='+', metavar='NAME=TARGET',
                   help='TARGET as for call, or listen://HOST:PORT for a board that connects to the gateway; '
                        'optionally followed by ?secret=S or ?secret_file=PATH, &codec=struct_json, &baud=N')
    p.add_argument('--broker', required=True, help='mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (TLS)')
    p.add_argument('--prefix', default='sp', help='first topic level (default sp)')
    p.add_argument('--username', help='broker login')
    p.add_argument('--password', help='broker password (default: $SP_MQTT_PASSWORD)')
    p.add_argument('--cafile', help='CA certificates for TLS (default: the system\'s)')
    p.add_argument('--certfile', help='client certificate for TLS')
    p.add_argument('--keyfile', help='client certificate key for TLS')
    p.add_argument('--timeout', type=_seconds, default=5.0, help='seconds a board has to answer (default 5)')
    p.add_argument('--workers', type=_integer(1, MAX_WORKERS), default=8, help='calls in flight per board (default 8)')
    p.add_argument('--max-payload', type=_integer(1, MAX_PACKET), default=65536,
                   help='largest request payload in bytes (default 65536)')


def do_gateway(args) -> int:
    from . import mqtt_wire as wire
    from .gateway import Gateway, parse_board
    try:
        broker, _ = wire.parse_broker(args.broker)
        boards = [parse_board(text) for text in args.boards]
        broker.username = args.username or broker.username
        broker.password = args.password or os.environ.get('SP_MQTT_PASSWORD') or broker.password
        broker.cafile, broker.certfile, broker.keyfile = args.cafile, args.certfile, args.keyfile
        gateway = Gateway(broker, boards, args.prefix, args.timeout, args.workers, args.max_payload)
    except (ValueError, OSError) as err:   # (two boards of one name too)
        raise CommandError(str(err)) from None
    stop = Stop()
    try:
        gateway.start()
        print('gateway for %s on %s, prefix %s' % (', '.join(b.name for b in boards), broker.url, args.prefix),
              flush=True)
        stop.wait()
    finally:
        gateway.stop()
    return stop.code


# deploy --------------------------------------------------------------------------------------
def argparse_deploy(p: argparse.ArgumentParser) -> None:
    from .deploy import __doc__ as doc
    p.description = doc.split('\n\n', 1)[1]
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = 'example: sp deploy rp2040 --port /dev/ttyACM0 --mpy'
    p.add_argument('board', help='a board of boards/ (esp32, rp2040, unix, ...) or the path of a folder of your '
                                 'own holding its main.py (./myboard)')
    p.add_argument('--port', '-p', default='auto', help='serial port: device path, mpremote shortcut or auto (default)')
    how = p.add_mutually_exclusive_group()
    how.add_argument('--mpy', action='store_true', help='precompile the packages to .mpy with mpy-cross')
    how.add_argument('--romfs', action='store_true',
                     help="write everything as a ROMFS image to the board's ROMFS partition, plus a main.py "
                          'that starts it (MicroPython 1.25+)')
    p.add_argument('--march', help='mpy-cross -march (default: what the board reports)')
    p.add_argument('--timeout', type=_seconds, default=20.0,
                   help='seconds to wait for the board to answer (default 20)')


def do_deploy(args) -> int:
    from .deploy import deploy, deploy_romfs

    def out(text: str) -> None:
        print(text, flush=True)

    if args.romfs:
        deploy_romfs(args.board, args.port, timeout=args.timeout, out=out)
    else:
        deploy(args.board, args.port, mpy=args.mpy, march=args.march, timeout=args.timeout, out=out)
    return EXIT_OK


# secret --------------------------------------------------------------------------------------
def argparse_secret(p: argparse.ArgumentParser) -> None:
    p.description = ('Print a new random secret (24 random bytes, hex): anyone who records an exchange can try '
                     'guesses of a weak secret offline, so a secret must be random.')
    p.epilog = 'example: (umask 077; sp secret > secret.txt)'


def do_secret(args) -> int:
    import binascii
    import os
    print(binascii.hexlify(os.urandom(24)).decode())
    return EXIT_OK


COMMANDS = {
    'ports': (do_ports, argparse_ports, 'list the serial ports'),
    'call': (do_call, argparse_call, 'send one request and print the answer'),
    'serve': (do_serve, argparse_serve, 'serve the demo services from this host'),
    'gateway': (do_gateway, argparse_gateway, 'put boards behind an MQTT broker'),
    'monitor': (do_monitor, argparse_monitor, 'decode a live link or a captured byte file'),
    'board': (do_board, argparse_board, 'run the virtual board (MicroPython unix port on a pty)'),
    'deploy': (do_deploy, argparse_deploy, 'copy the device code to a board with mpremote'),
    'secret': (do_secret, argparse_secret, 'print a new random secret'),
}


def _verbosity(parser: argparse.ArgumentParser, dest: str) -> None:
    parser.add_argument('-v', '--verbose', action='count', default=0, dest=dest,
                        help='-v: log each message, -vv: and its bytes')


class _Parser(argparse.ArgumentParser):
    """argparse's parser whose errors, with --json on the command line, are one JSON object on stdout too, as
    every other failure of a command with --json is."""

    json_errors = False

    def error(self, message: str):
        if self.json_errors:
            self.print_usage(sys.stderr)
            print('%s: error: %s' % (self.prog, message), file=sys.stderr)
            print(json.dumps({'error': message, 'exit': EXIT_USAGE}), flush=True)
            sys.exit(EXIT_USAGE)
        super().error(message)


def _parser(json_errors: bool = False) -> argparse.ArgumentParser:
    """-v counts before the command and after it (sp -v gateway ..., sp gateway -v ...), each on its own."""
    _Parser.json_errors = json_errors
    parser = _Parser(prog='sp', description='socket_protocol for a host and its boards: talk to a '
                                                           'board, serve, watch a link, run the virtual board, deploy.')
    _verbosity(parser, 'verbose')
    parser.add_argument('--version', action='version', version='%(prog)s ' + _version())
    sub = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    for name, (handler, add_arguments, summary) in COMMANDS.items():
        p = sub.add_parser(name, help=summary)
        _verbosity(p, 'verbose_after')
        add_arguments(p)
        p.set_defaults(handler=handler, parser=p)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    for stream in (sys.stdout, sys.stderr):   # what a terminal's encoding cannot show (a peer's text) is escaped
        reconfigure = getattr(stream, 'reconfigure', None)
        if reconfigure is not None:
            # and all beyond ASCII where the encoding is not UTF: a legacy one (KOI8-R, CP866, CP437) writes
            # printable characters as bytes 0x80-0x9f, which a terminal takes for C1 controls (0x9b: CSI)
            utf = codecs.lookup(stream.encoding or 'ascii').name.startswith('utf')
            reconfigure(errors='backslashreplace', **({} if utf else {'encoding': 'ascii'}))
    words = sys.argv[1:] if argv is None else argv
    try:   # all of it: a failure's --json object, argparse's too, is output as much as an answer is
        args = _parser(any(len(word) > 2 and '--json'.startswith(word) for word in words)).parse_args(argv)  # --js too
        verbose = args.verbose + args.verbose_after
        if verbose:
            logging.basicConfig(level=logging.DEBUG if verbose > 1 else logging.INFO, stream=sys.stderr,
                                format='%(asctime)s.%(msecs)03d %(name)-28s %(levelname)-7s %(message)s',
                                datefmt='%H:%M:%S')
        try:
            return args.handler(args)
        except CommandError as err:
            return _failed(args, str(err), err.code, err.answer)
        except KeyboardInterrupt:
            return _failed(args, 'interrupted', EXIT_INTERRUPTED)
    except BrokenPipeError:   # what reads stdout went away (sp monitor FILE | head): nothing left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # else the exit's flush fails again
        return 128 + signal.SIGPIPE   # as a shell reports a command SIGPIPE ended


def _failed(args, message: str, code: int, answer: Optional[dict] = None) -> int:
    """One line on stderr; with --json also one object on stdout, the answer's keys (if any) plus error and exit."""
    from sp_common.logtext import printable     # an error may quote what a peer sent
    print(printable('sp %s: %s%s' % (args.command, '' if code == EXIT_INTERRUPTED else 'error: ', message)),
          file=sys.stderr)
    if getattr(args, 'json', False):
        print(json.dumps(dict(answer or {}, error=message, exit=code)), flush=True)
    return code


if __name__ == '__main__':
    sys.exit(main())
