"""socket_protocol for MicroPython boards: the engine of sp_common on UART, USB-stdio and TCP streams.

The stream classes load on first use (sp.UartStream, sp.StdioStream,
sp.TcpServerStream, sp.TcpClientStream), so that a board spends heap only on
the ones it has; wifi and demo are imported by name: sp_micropython.wifi.
"""
from sp_common.const import *  # noqa: F401,F403
from sp_common.message import data_storage  # noqa: F401

from .protocol import PrintLog, pure_json_protocol, serve, struct_json_protocol  # noqa: F401
from .stream import CONNECTED, DISCONNECTED  # noqa: F401

_STREAMS = {'UartStream': 'uart', 'StdioStream': 'stdio', 'TcpServerStream': 'tcp', 'TcpClientStream': 'tcp'}


def __getattr__(name):
    module = _STREAMS.get(name)
    if module is None:
        raise AttributeError(name)
    return getattr(__import__('sp_micropython.' + module, None, None, (name,)), name)
