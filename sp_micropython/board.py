"""Starts a board from its config module: the streams it names, the demo services, then serve().

Settings (see boards/*/config.py): STREAMS, any of 'uart', 'stdio', 'wifi'
(join Wi-Fi, then TCP) and 'tcp' (TCP on a network that is already up);
ROLE 'server' (default) or 'client'; CODEC, CHANNEL_NAME, MAX_FRAME, SESSION_V2,
SECRET or SECRET_FILE, LOG_LEVEL, STARTUP_DELAY_MS, UART_*, WIFI_*, TCP_*, and
ENTROPY: a function n -> n random bytes, for a port without os.urandom.
"""
import time

from sp_common import entropy
from sp_common.const import WARNING

from .demo import add_demo_services
from .protocol import PrintLog, pure_json_protocol, serve, struct_json_protocol


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
        entropy.set_source(source)
    elif not entropy.available():
        from .weak_random import install
        log = PrintLog(WARNING if level is None else level)
        install(lambda text: log.isEnabledFor(WARNING) and log.log(WARNING, text))


def make_protocols(config):
    """One protocol with the demo services per usable stream; a client authenticates by itself."""
    protocol = struct_json_protocol if config.CODEC == 'struct_json' else pure_json_protocol
    level = getattr(config, 'LOG_LEVEL', None)
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


def run(config, loop=serve):
    """Ctrl-C works during STARTUP_DELAY_MS, then loop(*protocols, until=...) serves.

    It returns when a stdio stream reaches the end of its input (the unix
    port's stdin closed); a real board serves until reset.
    """
    time.sleep_ms(getattr(config, 'STARTUP_DELAY_MS', 0))
    prots = make_protocols(config)
    stdio = []
    if 'stdio' in config.STREAMS:
        from .stdio import StdioStream
        stdio = [prot for prot in prots if isinstance(prot.__comm_inst__, StdioStream)]

    def until():
        for prot in stdio:
            if not prot.is_connected():
                return True
        return False
    try:
        loop(*prots, until=until)
    finally:
        for prot in prots:
            prot.close()
