"""socket_protocol for MicroPython boards: the engine of sp_common on UART, USB-stdio and TCP streams.

Every name of the package loads on first use (sp.pure_json_protocol,
sp.UartStream, sp.SID_READ_REQUEST, sp_micropython.wifi, ...; see exports):
a board that starts from its modules (sp_micropython.board) holds neither
the table of names nor the modules it does not use.
"""


def __getattr__(name):
    from .exports import find
    return find(name)
