"""sp monitor: what a link carries, one line per message, from a live target or a file of captured bytes.

Live, a line starts with the time and '<-' (the bytes come from the target);
from a file, with the byte offset where the frame ends (no time, no direction
is known). Each line names the service, data and status, shows the data and
the CRC verdict; framing errors and oversized frames get lines of their own.

A serial port is opened exclusively, so watching it takes it from the host
program. --tap shares it instead: the monitor holds the port and offers a
new pseudo-terminal for the host program, forwards every byte both ways and
decodes both directions ('->' what the host program sent, '<-' the board).
"""
from __future__ import annotations

import json
import os
import select
import socket
import sys
import termios
import threading
import time
import tty
from contextlib import nullcontext
from typing import BinaryIO, Callable, ContextManager, List, Optional, Tuple

import serial

from sp_common import ChecksumError, Deframer, FormatError
from sp_cpython.protocol import CODECS
from sp_common.logtext import ID_CHARS, cut, peer_id, printable
from sp_common.engine import BUILTIN_DATA
from sp_common.names import SID__NAMES, STATUS__NAMES
from .demo import DATA as DEMO_DATA

from .errors import EXIT_CRC, EXIT_OK, CommandError
from .target import open_serial, open_socket, parse_tcp

MAX_FRAME = 1 << 16
_CHUNK = 4096


def data_names() -> dict:
    """(service id, data id) -> name: the protocol's own data (seed, key, name) and the demo services'."""
    names = dict(BUILTIN_DATA)
    for services, did, name in DEMO_DATA:
        for sid in services:
            names[(sid, did)] = name
    return names


class _Unchecked:
    """A session's MAC key where the monitor has none: a struct_json body's 8 bytes of MAC are passed over."""

    @staticmethod
    def check(*_) -> bool:
        return True


_STRUCT_LAYOUTS = ((False, None), (True, None), (True, _Unchecked))   # original, session v2, v2 with MACs


class Monitor:
    """Feeds bytes to a deframer and writes one line per frame or framing error to out."""

    def __init__(self, codec, out: Callable[[str], None]) -> None:
        self.codec = codec
        self.out = out
        self.deframer = Deframer(MAX_FRAME)
        self.names = data_names()
        self.offset = 0
        self.messages = 0
        self.crc_errors = 0
        self.format_errors = 0
        self._run: Optional[list] = None   # framing errors in a row: [how many after the first, where the last was]

    def feed(self, data: bytes, stamp: Optional[str] = None) -> None:
        """stamp: the time of a live chunk; None: a file, lines show byte offsets."""
        deframer = self.deframer
        for i in range(len(data)):   # byte by byte: every line knows where its frame ended
            before = (deframer.framing_errors, deframer.oversized)
            bodies = deframer.feed(data[i:i + 1])
            self.offset += 1
            where = stamp if stamp is not None else '@%d' % self.offset
            if deframer.framing_errors > before[0]:
                self._framing_error(where)
            if deframer.oversized > before[1]:
                self._line('%s oversized frame dropped (over %d bytes)' % (where, MAX_FRAME))
            for body in bodies:     # a string data id is the peer's text: escaped for the terminal
                self._line('%s %s' % (where, printable(self.describe(body))))

    def _framing_error(self, where: str) -> None:
        """The first of a run of framing errors has a line; the rest of the run are told in one line as it ends
        (end_run): junk makes one every two bytes (':<:<...'), and a line each would flood the terminal."""
        if self._run is None:
            self.out('%s framing error: partial frame dropped' % where)
            self._run = [0, where]
        else:
            self._run[0] += 1
            self._run[1] = where

    def _line(self, line: str) -> None:
        self.end_run()
        self.out(line)

    def end_run(self) -> None:
        """Tells how many framing errors came after a run's first, at the next line or the monitor's end."""
        run, self._run = self._run, None
        if run is not None and run[0]:
            self.out('%s %d more framing errors: partial frames dropped' % (run[1], run[0]))

    def describe(self, body: bytes) -> str:
        try:
            (sid, did, status, data, seq, re), mac = self._decode(body)
        except ChecksumError as err:
            self.crc_errors += 1
            seems = '' if err.sid is None else ' (seems %s, data_id: %s)' % (self._service(err.sid),
                                                                             self._data(err.sid, err.did))
            return 'CRC ERROR, %d bytes%s' % (len(body), seems)
        except FormatError as err:
            self.format_errors += 1
            return 'format error (%s), %d bytes' % (err, len(body))
        self.messages += 1
        v2 = '' if seq is None else ', seq: %s, re: %s%s' % (cut(seq, ID_CHARS), cut(re, ID_CHARS), ', mac' if mac else '')
        status = cut(STATUS__NAMES.get(status, status), ID_CHARS)
        return '%s, data_id: %s, status: %s, data: %s%s, crc: ok' % (self._service(sid), self._data(sid, did), status,
                                                                     json.dumps(data), v2)

    def _decode(self, body: bytes) -> Tuple[tuple, bool]:
        """(message, whether it carries a MAC), the MAC not checked: the monitor has no key. A pure_json body's keys
        say whether it is session v2 and has a MAC; a struct_json body does not, so its layouts are tried in turn,
        the original first (a v2 header read as data is no JSON) and the MAC last (JSON cut short may be JSON)."""
        if self.codec is CODECS['pure_json']:
            msg = self.codec.decode(body)
            return msg, msg[4] is not None and 'mac' in json.loads(body[:-4])
        first = None
        for v2, mac in _STRUCT_LAYOUTS:
            try:
                return self.codec.decode(body, v2, mac), mac is not None
            except FormatError as err:
                first = first or err
        raise first

    @staticmethod
    def _service(sid: int) -> str:
        return SID__NAMES.get(sid, 'service %s' % cut(sid, ID_CHARS))

    def _data(self, sid: int, did) -> str:
        name = self.names.get((sid, did))
        return peer_id(did) if name is None else name

    def summary(self) -> str:
        return '%d messages, %d CRC errors, %d format errors, %d framing errors' % (
            self.messages, self.crc_errors, self.format_errors, self.deframer.framing_errors)


def _reader(source: str, baud: int):
    """A read(n) function for a live target, and what closes it."""
    tcp = parse_tcp(source)
    if tcp is not None:
        conn = open_socket(*tcp, timeout=5.0)
        conn.settimeout(0.2)

        def read_socket(n: int) -> bytes:
            try:
                data = conn.recv(n)
            except socket.timeout:   # (TimeoutError from Python 3.10 on; a class of its own on 3.9)
                return b''
            except OSError:   # reset by the peer: the link's end, as a close is
                raise EOFError from None
            if not data:
                raise EOFError
            return data
        return read_socket, conn.close
    port = open_serial(source, baud, timeout=0.2)
    return _serial_reader(port), port.close


def _serial_reader(port):
    """port's read(n): what has come, b'' after the port's timeout, EOFError once the port is gone (a board
    unplugged, the other end of a pty closed)."""
    def read(n: int) -> bytes:
        try:
            return port.read(port.in_waiting or 1)
        except (serial.SerialException, OSError):
            raise EOFError from None
    return read


def _stamp(arrow: str) -> str:
    return time.strftime('%H:%M:%S') + '.%03d %s' % (time.time() % 1 * 1000, arrow)


def _printer() -> Callable[[str], None]:
    """Prints whole lines, one thread at a time (a tap decodes two directions at once)."""
    lock = threading.Lock()

    def out(line: str) -> None:
        with lock:
            print(line, flush=True)
    return out


def monitor(source: str, codec: str, baud: int, save: Optional[str], make_stop, tap: bool = False) -> int:
    """Prints the messages of a file or a live target (until Ctrl-C or its end). The exit status: the stop's
    (130 for Ctrl-C), else EXIT_CRC if any CRC was wrong."""
    if tap:
        return _tap(source, codec, baud, save, make_stop)
    mon = Monitor(CODECS[codec], _printer())
    stop = None
    if os.path.isfile(source):
        with open(source, 'rb') as f:
            mon.feed(f.read())
    else:
        read, close = _reader(source, baud)
        try:
            with _capture(save) as capture:
                stop = make_stop()
                # said at once: an idle link prints nothing more, and must not look like a command that hangs
                print('watching %s (Ctrl-C stops)' % printable(source), file=sys.stderr, flush=True)
                ended = _watch(read, mon, '<-', stop, capture)
        finally:
            close()
        if ended:   # (a TCP server drops a client that sends no valid frame within 1 s: sp_common.admission)
            _say_closed(source)
    mon.end_run()
    print(mon.summary(), file=sys.stderr)
    return _verdict(stop, mon)


def _capture(save: Optional[str]) -> ContextManager[Optional[BinaryIO]]:
    """The file --save writes, opened before anything is read: a path that cannot be written is named at once."""
    if save is None:
        return nullcontext()
    try:
        return open(save, 'wb')
    except OSError as err:
        raise CommandError('cannot write %s: %s' % (save, err.strerror or err)) from None


def _say_closed(source: str) -> None:
    print('%s closed the link' % printable(source), file=sys.stderr, flush=True)


def _verdict(stop, *monitors: Monitor) -> int:
    """The status of the signal that stopped the monitor, if one did; else (the link ended by itself, which sets a
    tap's stop too) EXIT_CRC if any CRC was wrong."""
    if stop is not None and stop.code != EXIT_OK:
        return stop.code
    return EXIT_CRC if any(mon.crc_errors for mon in monitors) else EXIT_OK


def _watch(read, mon: Monitor, arrow: str, stop, capture: Optional[BinaryIO] = None,
           forward: Optional[Callable[[bytes], None]] = None) -> bool:
    """Decodes what read returns until stop or its end (then True); forward passes the bytes on (a tap), capture
    keeps them.

    A tap decodes before it forwards: the line of a request is out before the board can answer it."""
    while not stop.is_set():
        try:
            data = read(_CHUNK)
            if data:
                if capture:
                    capture.write(data)
                mon.feed(data, _stamp(arrow))
                if forward:
                    forward(data)
        except EOFError:   # either end gone (forward raises it for the other)
            return True
    return False


def _tap(source: str, codec: str, baud: int, save: Optional[str], make_stop) -> int:
    """Holds the port and offers the host program a new pty: every byte passes both ways, decoded on its way."""
    if parse_tcp(source) is not None:
        raise CommandError('--tap shares a serial port; on TCP run the monitor on a capture or between two peers')
    port = open_serial(source, baud, timeout=0.2)
    port.write_timeout = 0.2   # a board that stops reading must not hold the tap, and its Ctrl-C, for good
    master, slave = os.openpty()
    tty.setraw(slave)   # raw before the host program comes: no echo, no line editing of the frames
    os.set_blocking(master, False)   # a host program that does not read must not stall the tap
    out = _printer()
    board, host = Monitor(CODECS[codec], out), Monitor(CODECS[codec], out)
    try:
        with _capture(save) as capture:
            stop = make_stop()
            print(os.ttyname(slave), flush=True)
            print('tap on %s: point the host program at %s (Ctrl-C stops)' % (source, os.ttyname(slave)),
                  file=sys.stderr, flush=True)
            failures: List[BaseException] = []
            watchers = [
                threading.Thread(target=_watch_until_stop, args=(source, failures, _serial_reader(port), board, '<-',
                                                                 stop, capture, lambda data: _to_host(master, slave,
                                                                                                      data)),
                                 daemon=True),
                threading.Thread(target=_watch_until_stop, args=(source, failures, lambda n: _read_pty(master, n),
                                                                 host, '->', stop, None,
                                                                 lambda data: _to_board(port, data)),
                                 daemon=True)]
            for watcher in watchers:
                watcher.start()
            stop.wait()
            for watcher in watchers:   # no step blocks for more than 0.2 s: the port and pty close after the last one
                watcher.join()
            if failures:   # (what reads the lines went away, sp monitor --tap | head: the command ends as it does
                raise failures[0]   # without --tap)
    finally:
        port.close()
        os.close(master)
        os.close(slave)
    board.end_run()
    host.end_run()
    print('from the board: %s; from the host: %s' % (board.summary(), host.summary()), file=sys.stderr)
    return _verdict(stop, board, host)


def _read_pty(fd: int, n: int) -> bytes:
    """What the host program wrote, or b'' after 0.2 s (the tap keeps the pty's other end open: no EOF)."""
    ready, _, _ = select.select([fd], [], [], 0.2)
    return os.read(fd, n) if ready else b''


def _watch_until_stop(source: str, failures: List[BaseException], *args) -> None:
    """_watch, and the tap ends when either direction does (the port unplugged): none forwards alone. A line that
    cannot be printed (its reader gone) ends it too, and goes to failures for the main thread to raise."""
    try:
        if _watch(*args):
            _say_closed(source)
    except BrokenPipeError as err:
        failures.append(err)
    finally:
        args[3].set()


def _to_board(port, data: bytes) -> None:
    """Hands data to the board; what it does not take within the port's write timeout is dropped, and said."""
    try:
        port.write(data)
    except serial.SerialTimeoutException:
        print('tap: the board takes nothing: bytes from the host program dropped', file=sys.stderr, flush=True)
    except (serial.SerialException, OSError):   # the port is gone
        raise EOFError from None


def _to_host(master: int, slave: int, data: bytes) -> None:
    """Hands data to the host program. While none reads, what the pty holds is stale and is dropped (the next
    program would take it for fresh), and so is data the pty cannot take."""
    try:
        while data:
            data = data[os.write(master, data):]
    except BlockingIOError:
        termios.tcflush(slave, termios.TCIFLUSH)
