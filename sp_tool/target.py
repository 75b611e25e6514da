"""Targets of the sp command: a serial port, any pyserial URL, tcp://host:port, or the virtual board.

A target is opened once before the transport takes it over, so a port that
cannot be opened, is in use, or an address that refuses is reported at once
with the OS's reason, not after a timeout spent retrying quietly. Serial
ports are opened exclusively: two programs reading one port would each get
part of what the board sends.
"""
from __future__ import annotations

import errno
import os
import runpy
import socket
import sys
import time
from typing import Dict, Optional, Tuple
from urllib.parse import urlsplit

import serial

import sp_cpython as sp

from .errors import EXIT_BOARD, EXIT_PORT, EXIT_REFUSED, EXIT_TIMEOUT, CommandError
from .files import boards_dir

TCP_SCHEME = 'tcp://'
PROTOCOLS = {'pure_json': sp.pure_json_protocol, 'struct_json': sp.struct_json_protocol}
# what a board's str.strip() strips (MicroPython's): a host that stripped more would read another secret from a file
ASCII_WHITESPACE = ' \t\r\n\x0b\x0c'
DEVICE_RETURNS_S = 3.0   # how long a serial device path that is not there is waited for (see await_device)


def parse_tcp(target: str) -> Optional[Tuple[str, int]]:
    """(host, port) of a tcp://host:port target (an IPv6 host in brackets: tcp://[::1]:PORT); None for anything
    else."""
    if not target.startswith(TCP_SCHEME):
        return None
    return parse_host_port(target[len(TCP_SCHEME):], 'a TCP target is tcp://HOST:PORT')


def parse_host_port(text: str, what: str = 'an address is HOST:PORT') -> Tuple[str, int]:
    """(host, port) of HOST:PORT or [IPv6]:PORT, the port 0 to 65535; host defaults to 127.0.0.1."""
    try:
        parts = urlsplit('//' + text)
        port = parts.port
    except ValueError:
        port = None
    if port is None or parts.path or parts.query or parts.fragment or parts.username is not None:
        raise CommandError('%s (port 0 to 65535), not %r' % (what, text))
    return parts.hostname or '127.0.0.1', port


def format_host_port(host: str, port: int) -> str:
    return '[%s]:%d' % (host, port) if ':' in host else '%s:%d' % (host, port)


def _refused(target: str) -> CommandError:
    return CommandError('connection refused by %s: nothing listens there' % target, EXIT_REFUSED)


def open_socket(host: str, port: int, timeout: float) -> socket.socket:
    target = format_host_port(host, port)
    try:
        return socket.create_connection((host, port), timeout=timeout)
    except ConnectionRefusedError:
        raise _refused(target) from None
    except socket.timeout:
        raise CommandError('no answer from %s within %g s' % (target, timeout), EXIT_TIMEOUT) from None
    except OSError as err:
        raise CommandError('cannot connect to %s: %s' % (target, err.strerror or err), EXIT_PORT) from None
    except UnicodeError:   # a name no IDNA encodes (an empty label: board..local)
        raise CommandError('cannot connect to %s: invalid host name' % target, EXIT_PORT) from None


def open_serial(url: str, baud: int, timeout: Optional[float] = None) -> serial.SerialBase:
    """The port, opened exclusively (a lock other programs that lock it see: mpremote, sp, pyserial's
    exclusive=True)."""
    try:
        return serial.serial_for_url(url, baudrate=baud, timeout=timeout, exclusive=True)
    except (serial.SerialException, OSError, ValueError, OverflowError) as err:   # (a baud rate a driver refuses)
        if 'Connection refused' in str(err):
            raise _refused(url) from None
        if getattr(err, 'errno', None) in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EBUSY):
            raise CommandError('cannot open %s: in use by another program (sp monitor, mpremote, a terminal?): '
                               'close it, or let sp monitor --tap %s share the port' % (url, url), EXIT_PORT) from None
        reason = os.strerror(err.errno) if getattr(err, 'errno', None) else str(err)
        raise CommandError('cannot open %s: %s' % (url, reason), EXIT_PORT) from None


def transport(target: str, baud: int, is_client: bool = True):
    """The comm instance for target; it opens the link, and reopens it when lost, by itself."""
    tcp = parse_tcp(target)
    if tcp is not None:
        return sp.tcp_client_stp(*tcp)
    return sp.serial_stp(target, baud, is_client=is_client)


def open_transport(target: str, baud: int, timeout: float, is_client: bool = True):
    """The comm instance for target, after one trial open that reports why it fails."""
    tcp = parse_tcp(target)
    if tcp is not None:
        open_socket(*tcp, timeout=timeout).close()
    else:
        await_device(target, min(timeout, DEVICE_RETURNS_S))
        open_serial(target, baud).close()
    return transport(target, baud, is_client)


def await_device(path: str, seconds: float) -> None:
    """Waits up to seconds for a device path that is not there yet: a board's USB port leaves the bus while the
    board resets and comes back about a second later, so a call right after `mpremote reset` would find none.
    Names that are no paths (COM3, URLs) are not waited for."""
    end = time.monotonic() + seconds
    while path.startswith('/') and not os.path.exists(path) and time.monotonic() < end:
        time.sleep(0.1)


def listen_transport(address: str):
    """A tcp_server_stp on HOST:PORT, or an error naming why it cannot listen."""
    host, port = parse_host_port(address, 'listen on HOST:PORT')
    try:
        return sp.tcp_server_stp(host, port)
    except OSError as err:
        raise CommandError('cannot listen on %s: %s' % (address, err.strerror or err), EXIT_PORT) from None
    except (TypeError, UnicodeError):   # (a host name that is not text a resolver takes)
        raise CommandError('cannot listen on %s: invalid host name' % address, EXIT_PORT) from None


def virtual_board_tcp_port() -> int:
    """The TCP port the virtual board serves when nothing overrides it (boards/unix/config.py)."""
    return runpy.run_path(os.path.join(boards_dir(), 'unix', 'config.py'))['TCP_PORT']


def check_tcp_port_free(port: int) -> None:
    with socket.socket() as probe:
        try:
            probe.bind(('127.0.0.1', port))
        except OSError as err:
            if err.errno != errno.EADDRINUSE:
                raise
            raise CommandError('TCP port %d is taken (another virtual board?): choose another with '
                               '--tcp-port N, or --tcp-port 0 for none' % port, EXIT_BOARD) from None


def read_secret_file(path: str) -> str:
    """The secret in a file, ASCII whitespace around it stripped, as a board strips it; a warning on stderr when the
    file is open to its group or others, who could read the secret there."""
    try:
        with open(path, encoding='utf-8') as f:
            mode = os.fstat(f.fileno()).st_mode
            secret = f.read().strip(ASCII_WHITESPACE)
    except OSError as err:
        raise CommandError('cannot read the secret file %s: %s' % (path, err.strerror or err)) from None
    except UnicodeDecodeError:
        raise CommandError('the secret file %s is not UTF-8 text' % path) from None
    if not secret:
        raise CommandError('the secret file %s is empty' % path)
    if mode & 0o077:
        print('sp: warning: the secret file %s is open to its group or others (mode %03o): chmod 600 it'
              % (path, mode & 0o777), file=sys.stderr)
    return secret


def board_env(secret: Optional[str], codec: str, tcp_port: int) -> Dict[str, str]:
    """The virtual board's settings (SP_* variables of boards/unix/main.py)."""
    env = {'SP_CODEC': codec, 'SP_TCP_PORT': str(tcp_port)}
    if secret is not None:
        env['SP_SECRET'] = secret
    return env
