"""A machine.UART as a device stream."""
import select

from .protocol import Stream

POLL_MS = 2   # how often a UART that select.poll cannot watch is read


class UartStream(Stream):
    """A machine.UART (built by the caller, e.g. with timeout=0). A UART is always 'connected'.

    Where the port lets select.poll watch the UART, the loops sleep until bytes
    arrive; elsewhere they read it every POLL_MS.
    """

    def __init__(self, uart, is_client=False):
        Stream.__init__(self)
        self.IS_CLIENT = is_client
        self.uart = uart
        try:
            select.poll().register(uart, select.POLLIN)
            self.pollables = ((uart, select.POLLIN),)
        except (OSError, TypeError):
            pass
        self._set(True)

    def wait_ms(self):
        return -1 if self.pollables else POLL_MS

    def readinto(self, buf):
        n = self.uart.any()
        if not n:
            return 0
        return self.uart.readinto(buf, min(n, len(buf))) or 0

    def write(self, data):
        self.uart.write(data)


def from_config(config, client):
    """The board's UART from config: UART_ID, UART_BAUD, UART_TX and UART_RX (pin numbers)."""
    from machine import UART, Pin
    uart = UART(config.UART_ID, baudrate=config.UART_BAUD, tx=Pin(config.UART_TX), rx=Pin(config.UART_RX), timeout=0)
    return UartStream(uart, is_client=client)
