"""socket_protocol for MicroPython boards: the engine of sp_common on UART, USB-stdio and TCP streams.

wifi (network.WLAN) and demo are imported on demand: sp_micropython.wifi.connect(...).
"""
from sp_common.const import *  # noqa: F401,F403
from sp_common import data_storage  # noqa: F401

from .protocol import PrintLog, pure_json_protocol, serve, struct_json_protocol  # noqa: F401
from .streams import (CONNECTED, DISCONNECTED, StdioStream, TcpClientStream, TcpServerStream,  # noqa: F401
                      UartStream)
