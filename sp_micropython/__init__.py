"""socket_protocol for MicroPython boards: the engine of sp_common on UART, USB-stdio and TCP streams.

Names that a board may not need load on first use: the stream classes
(sp.UartStream, sp.StdioStream, sp.TcpServerStream, sp.TcpClientStream),
struct_json_protocol, PrintLog, data_storage and the constants
(sp.SID_READ_REQUEST, ...), so that a board spends heap only on what it uses.
wifi and demo are imported by name: sp_micropython.wifi.
"""
from .protocol import CONNECTED, DISCONNECTED, pure_json_protocol, serve  # noqa: F401

_HOMES = {'UartStream': 'uart', 'StdioStream': 'stdio', 'TcpServerStream': 'tcp_server', 'TcpClientStream': 'tcp_client',
          'struct_json_protocol': 'struct_protocol', 'PrintLog': 'printlog'}


def __getattr__(name):
    home = _HOMES.get(name)
    if home is not None:
        return getattr(__import__('sp_micropython.' + home, None, None, (name,)), name)
    from sp_common import const
    if hasattr(const, name):
        return getattr(const, name)
    try:
        return __import__('sp_micropython.' + name, None, None, ('',))   # a module of the package
    except ImportError:
        import sp_common
        return getattr(sp_common, name)   # data_storage, names for logs
