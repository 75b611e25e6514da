"""socket_protocol for MicroPython boards: the engine of sp_common on UART, USB-stdio and TCP streams.

The constants (sp.SID_READ_REQUEST, ...) come from sp_common.const and the
stream classes load on first use (sp.UartStream, sp.StdioStream,
sp.TcpServerStream, sp.TcpClientStream): looked up on demand rather than
copied here, so that a board spends heap only on what it uses. wifi and demo
are imported by name: sp_micropython.wifi.
"""
from sp_common import const
from sp_common.message import data_storage  # noqa: F401

from .protocol import CONNECTED, DISCONNECTED, PrintLog, pure_json_protocol, serve, struct_json_protocol  # noqa: F401

_STREAMS = {'UartStream': 'uart', 'StdioStream': 'stdio', 'TcpServerStream': 'tcp', 'TcpClientStream': 'tcp'}


def __getattr__(name):
    module = _STREAMS.get(name)
    if module is not None:
        return getattr(__import__('sp_micropython.' + module, None, None, (name,)), name)
    if hasattr(const, name):
        return getattr(const, name)
    try:
        return __import__('sp_micropython.' + name, None, None, ('',))   # a module of the package
    except ImportError:
        return getattr(__import__('sp_common.names', None, None, (name,)), name)   # names for logs
