"""Starts a real board from its config module: the streams it names, the demo services, serve()."""
import time

from .demo import add_demo_services
from .protocol import pure_json_protocol, serve, struct_json_protocol


def read_secret(path):
    """The first line of path, or None if there is no such file (or it is empty)."""
    try:
        with open(path) as f:
            return f.read().strip() or None
    except OSError:
        return None


def make_protocols(config):
    protocol = struct_json_protocol if config.CODEC == 'struct_json' else pure_json_protocol
    options = {'secret': read_secret(config.SECRET_FILE), 'channel_name': config.CHANNEL_NAME,
               'max_frame': config.MAX_FRAME}
    prots = []
    for name in config.STREAMS:
        if name == 'uart':
            from machine import UART, Pin
            from .streams import UartStream
            uart = UART(config.UART_ID, baudrate=config.UART_BAUD, tx=Pin(config.UART_TX), rx=Pin(config.UART_RX),
                        timeout=0)
            prots.append(protocol(UartStream(uart), **options))
        elif name == 'tcp':
            if not config.WIFI_SSID:
                print('no WIFI_SSID in config.py: TCP skipped')
                continue
            from .streams import TcpServerStream
            from .wifi import connect
            print('wifi: %s, port %d' % (connect(config.WIFI_SSID, config.WIFI_PASSWORD), config.TCP_PORT))
            prots.append(protocol(TcpServerStream(config.TCP_PORT), **options))
        elif name == 'stdio':
            from .streams import StdioStream
            prots.append(protocol(StdioStream(), **options))
        else:
            raise ValueError('unknown stream %r in config.STREAMS' % (name,))
    return prots


def run(config):
    """Ctrl-C works during config.STARTUP_DELAY_MS, then the protocols serve until reset."""
    time.sleep_ms(config.STARTUP_DELAY_MS)
    prots = make_protocols(config)
    for prot in prots:
        add_demo_services(prot)
    try:
        serve(*prots)
    finally:
        for prot in prots:
            prot.close()
