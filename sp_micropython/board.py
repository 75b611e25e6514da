"""Starts a board from its config module: the streams it names, the demo services, then serve().

Settings (see boards/*/config.py): STREAMS, any of 'uart', 'stdio', 'wifi'
(join Wi-Fi, then TCP) and 'tcp' (TCP on a network that is already up);
ROLE 'server' (default) or 'client'; CODEC, CHANNEL_NAME, MAX_FRAME, SESSION_V2,
SECRET or SECRET_FILE, LOG_LEVEL, STARTUP_DELAY_MS, UART_*, WIFI_*, TCP_*, and
ENTROPY: a function n -> n random bytes, for a port without os.urandom.
Needed only to start: start() drops this module once the protocols are built.
"""
import sys
import time

from micropython import const
from sp_common.entropy import available, set_source

from .demo import add_demo_services
from .protocol import pure_json_protocol, serve, serve_until_end

_WARNING = const(30)   # sp_common.const.WARNING


def read_secret(path):
    """The first line of path, or None if there is no such file (or it is empty)."""
    try:
        with open(path) as f:
            return f.read().strip() or None
    except OSError:
        return None


_SESSION_V2 = {'off': False, 'required': 'required'}   # config.SESSION_V2 'on' (default), 'off' or 'required'


def make_stream(config, name, client):
    """The stream for one STREAMS entry (the module of that name builds it), or None if unusable."""
    if name not in ('uart', 'stdio', 'tcp', 'wifi'):
        raise ValueError('unknown stream %r in config.STREAMS' % (name,))
    return __import__('sp_micropython.' + name, None, None, ('from_config',)).from_config(config, client)


def use_entropy(config, level):
    """config.ENTROPY if given; else os.urandom; else the weak stand-in, with a warning on its first use."""
    source = getattr(config, 'ENTROPY', None)
    if source is not None:
        set_source(source)
    elif not available():
        from .weak_random import install
        install(_WARNING if level is None else level)


def make_protocols(config):
    """One protocol with the demo services per usable stream; a client authenticates by itself."""
    protocol = pure_json_protocol
    if config.CODEC == 'struct_json':
        from .struct_protocol import struct_json_protocol as protocol
    level = getattr(config, 'LOG_LEVEL', None)
    if level is not None:
        from .printlog import PrintLog
    use_entropy(config, level)
    client = getattr(config, 'ROLE', 'server') == 'client'
    secret = getattr(config, 'SECRET', None) or read_secret(config.SECRET_FILE)
    session_v2 = _SESSION_V2.get(getattr(config, 'SESSION_V2', 'on'), True)
    prots = []
    for name in config.STREAMS:
        stream = make_stream(config, name, client)
        if stream is not None:
            prot = protocol(stream, secret=secret, auto_auth=True, channel_name=config.CHANNEL_NAME,
                            max_frame=config.MAX_FRAME, log=None if level is None else PrintLog(level),
                            session_v2=session_v2)
            add_demo_services(prot)
            prots.append(prot)
    return prots


def start(config):
    """make_protocols(config) after STARTUP_DELAY_MS (Ctrl-C works meanwhile); then drops this module.

    Dropped from sys.modules and its package, the module's code leaves the
    heap once its caller keeps nothing of it: main.py calls
    sp_micropython.board.start(config), then serve_until_end().
    """
    time.sleep_ms(getattr(config, 'STARTUP_DELAY_MS', 0))
    prots = make_protocols(config)
    del sys.modules[__name__]
    delattr(sys.modules['sp_micropython'], 'board')
    return prots


def run(config, loop=serve):
    """start(config), then loop(*protocols, until=...) serves until a stream ends (serve_until_end)."""
    serve_until_end(start(config), loop)
