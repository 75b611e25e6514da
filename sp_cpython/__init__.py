"""Host runtime: the socket_protocol API (import sp_cpython as socket_protocol)."""
import logging as _logging

from sp_common.names import *  # noqa: F401,F403  (the constants of sp_common.const and their names)
from sp_common.engine import data_storage  # noqa: F401
from sp_common.errors import AuthRequired, ErrorAnswer, NoAnswer, NotConnected, ProtocolError  # noqa: F401

from .protocol import pure_json_protocol, struct_json_protocol  # noqa: F401
from .serial_port import serial_stp  # noqa: F401
from .tcp import tcp_client_stp, tcp_server_stp  # noqa: F401

# A library stays quiet until the application configures logging. socket_protocol and tcp_socket are the
# original module's names, kept for compatibility; the loggers it did not have live under this package.
for _name in ('socket_protocol', 'tcp_socket', 'sp_cpython'):
    _logging.getLogger(_name).addHandler(_logging.NullHandler())
