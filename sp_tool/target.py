"""Targets of the sp command: a serial port, any pyserial URL, tcp://host:port, or the virtual board.

A target is opened once before the transport takes it over, so a port that
cannot be opened or an address that refuses is reported at once with the
OS's reason, not after a timeout spent retrying quietly.
"""
from __future__ import annotations

import errno
import os
import runpy
import socket
import sys
from typing import Dict, Optional, Tuple

import serial

import sp_cpython as sp

from .errors import EXIT_BOARD, EXIT_PORT, EXIT_REFUSED, EXIT_TIMEOUT, CommandError
from .files import boards_dir

TCP_SCHEME = 'tcp://'
PROTOCOLS = {'pure_json': sp.pure_json_protocol, 'struct_json': sp.struct_json_protocol}


def parse_tcp(target: str) -> Optional[Tuple[str, int]]:
    """(host, port) of a tcp://host:port target; None for anything else."""
    if not target.startswith(TCP_SCHEME):
        return None
    host, sep, port = target[len(TCP_SCHEME):].rpartition(':')
    if not sep or not port.isdigit():
        raise CommandError('a TCP target is tcp://HOST:PORT, not %r' % target)
    return host or '127.0.0.1', int(port)


def _refused(target: str) -> CommandError:
    return CommandError('connection refused by %s: nothing listens there' % target, EXIT_REFUSED)


def open_socket(host: str, port: int, timeout: float) -> socket.socket:
    target = '%s:%d' % (host, port)
    try:
        return socket.create_connection((host, port), timeout=timeout)
    except ConnectionRefusedError:
        raise _refused(target) from None
    except socket.timeout:
        raise CommandError('no answer from %s within %g s' % (target, timeout), EXIT_TIMEOUT) from None
    except OSError as err:
        raise CommandError('cannot connect to %s: %s' % (target, err.strerror or err), EXIT_PORT) from None


def open_serial(url: str, baud: int, timeout: Optional[float] = None) -> serial.SerialBase:
    try:
        return serial.serial_for_url(url, baudrate=baud, timeout=timeout)
    except (serial.SerialException, OSError, ValueError) as err:
        if 'Connection refused' in str(err):
            raise _refused(url) from None
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
        open_serial(target, baud).close()
    return transport(target, baud, is_client)


def listen_transport(address: str):
    """A tcp_server_stp on HOST:PORT, or an error naming why it cannot listen."""
    host, sep, port = address.rpartition(':')
    if not sep or not port.isdigit():
        raise CommandError('listen on HOST:PORT, not %r' % address)
    try:
        return sp.tcp_server_stp(host or '127.0.0.1', int(port))
    except OSError as err:
        raise CommandError('cannot listen on %s: %s' % (address, err.strerror or err), EXIT_PORT) from None


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
    """The secret in a file, whitespace around it stripped; a warning on stderr when the file is open to its
    group or others, who could read the secret there."""
    try:
        with open(path, encoding='utf-8') as f:
            mode = os.fstat(f.fileno()).st_mode
            secret = f.read().strip()
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
