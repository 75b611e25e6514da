"""Starts a board from its config module: the streams it names, the demo services, then serve().

Settings (see boards/*/config.py): STREAMS, any of 'uart', 'stdio', 'wifi'
(join Wi-Fi, then TCP) and 'tcp' (TCP on a network that is already up);
ROLE 'server' (default) or 'client'; CODEC, CHANNEL_NAME, MAX_FRAME, SESSION_V2,
SECRET or SECRET_FILE, LOG_LEVEL, STARTUP_DELAY_MS, REPL (stdio: Ctrl-C gives the REPL back),
UART_*, WIFI_*, TCP_*, and
ENTROPY: a function n -> n random bytes, for a port without os.urandom.
Needed only to start: start() drops this module once the protocols are built.
"""
import sys
import time

from sp_common.const import WARNING
from sp_common.entropy import available, set_source

from .demo import add_demo_services
from .protocol import pure_json_protocol, serve_until_end



def make_protocols(config):
    """One protocol with the demo services per usable stream of config.STREAMS; a client authenticates by itself.

    Names stay interned for good on MicroPython, this module's too: it is one
    function rather than several small ones.
    """
    protocol = pure_json_protocol
    if config.CODEC == 'struct_json':
        from .struct_protocol import struct_json_protocol as protocol
    level = getattr(config, 'LOG_LEVEL', None)
    if level is not None:
        from .printlog import PrintLog
    source = getattr(config, 'ENTROPY', None)   # else os.urandom; else the weak stand-in, which warns once
    if source is not None:
        set_source(source)
    elif not available():
        from .weak_random import install
        install(WARNING if level is None else level)
    client = getattr(config, 'ROLE', 'server') == 'client'
    secret = getattr(config, 'SECRET', None)
    if secret is None:   # else the first line of SECRET_FILE, if there is one
        try:
            with open(config.SECRET_FILE) as f:
                secret = f.read().strip() or None
        except OSError:
            pass
    session_v2 = getattr(config, 'SESSION_V2', 'on')   # 'on' (default), 'off' or 'required'
    session_v2 = session_v2 if session_v2 == 'required' else session_v2 != 'off'
    streams = []
    for name in config.STREAMS:
        if name not in ('uart', 'stdio', 'tcp', 'wifi'):
            raise ValueError('unknown stream %r in config.STREAMS' % (name,))
        # each kind of stream lives in the module of its name; None if unusable
        stream = __import__('sp_micropython.' + name, None, None, ('from_config',)).from_config(config, client)
        if stream is not None:
            streams.append((name, stream))
    log = None
    if level is not None:   # one log for all, through the console when it carries frames (see PrintLog)
        console = [stream for name, stream in streams if name == 'stdio']
        log = PrintLog(level, console[0] if console else None)
    prots = []
    for name, stream in streams:
        prot = protocol(stream, secret=secret, auto_auth=True, channel_name=config.CHANNEL_NAME,
                        max_frame=config.MAX_FRAME, log=log, session_v2=session_v2)
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


def run(config):
    """start(config), then serves until a stream ends (serve_until_end)."""
    serve_until_end(start(config))
