"""The virtual board: the device runtime on the MicroPython unix port.

    micropython -X heapsize=64k boards/unix/main.py [--key=value ...]

Serves the demo services (sp_micropython.demo) on stdin/stdout (put them on a
pty in raw mode: that is the board's USB serial console) and on a loopback
TCP port, at once. The knobs, from the command line (--tcp-port=57322) or the
environment (SP_TCP_PORT=57322), command line first, then config.py:

    SP_CODEC      pure_json (default) or struct_json
    SP_SECRET     the auth secret (default: none, or the content of SP_SECRET_FILE)
    SP_SECRET_FILE  file holding the secret (default secret.txt, if it exists)
    SP_ROLE       server (default): listen on SP_TCP_HOST:SP_TCP_PORT;
                  client: connect to a host's TCP server there (reconnecting),
                  and be the client (auto_auth) on stdin/stdout too
    SP_TCP_HOST   default 127.0.0.1
    SP_TCP_PORT   default 57321; 0 or off: no TCP
    SP_STDIO      1 (default) or 0: serve on stdin/stdout
    SP_MAX_FRAME  biggest frame body accepted, default 8192
    SP_NAME       channel name, default unix
    SP_LOG        engine log level on stderr (10 debug .. 40 error), default off
    SP_MEM        1: print heap figures to stderr: after start, and the bytes
                  allocated by every poll step that did work

The board exits when its stdin is closed (end of input on the pty or pipe).
"""
import sys

_parts = sys.argv[0].split('/')
sys.path.append('/'.join(_parts[:-3]) or '.')   # the repository root (last: MICROPYPATH, e.g. .mpy builds, wins)

import gc  # noqa: E402
import os  # noqa: E402

import config  # noqa: E402
import sp_micropython as sp  # noqa: E402
from sp_micropython.demo import add_demo_services  # noqa: E402


def knob(name, default):
    flag = '--' + name.lower().replace('_', '-') + '='
    for arg in sys.argv[1:]:
        if arg.startswith(flag):
            return arg[len(flag):]
    value = os.getenv('SP_' + name)
    return default if value is None else value


def read_secret(path):
    try:
        with open(path) as f:
            return f.read().strip() or None
    except OSError:
        return None


def main():
    codec = knob('CODEC', config.CODEC)
    protocol = {'pure_json': sp.pure_json_protocol, 'struct_json': sp.struct_json_protocol}[codec]
    secret = knob('SECRET', config.SECRET)
    if secret is None:
        secret = read_secret(knob('SECRET_FILE', config.SECRET_FILE))
    port = knob('TCP_PORT', config.TCP_PORT)
    port = 0 if port in ('', 'off') else int(port)
    host = knob('TCP_HOST', config.TCP_HOST)
    role = knob('ROLE', config.ROLE)
    use_stdio = str(knob('STDIO', config.STDIO)) not in ('0', 'False', 'off')
    log_level = knob('LOG', None)
    log = None if log_level is None else sp.PrintLog(int(log_level), name=role)
    mem = knob('MEM', '0') == '1'
    options = {'secret': secret, 'channel_name': knob('NAME', config.CHANNEL_NAME),
               'max_frame': int(knob('MAX_FRAME', config.MAX_FRAME)), 'log': log}

    prots = []
    stdio = None
    if use_stdio:
        stdio = sp.StdioStream(is_client=role == 'client')
        prots.append(protocol(stdio, auto_auth=role == 'client', **options))
    if port:
        if role == 'client':
            stream = sp.TcpClientStream(host, port, retry_ms=200)
        else:
            stream = sp.TcpServerStream(port, host)
        prots.append(protocol(stream, auto_auth=True, **options))
    for prot in prots:
        add_demo_services(prot)
    until = None if stdio is None else (lambda: not stdio.is_connected())
    try:
        if mem:
            serve_measured(prots, until)
        else:
            sp.serve(*prots, until=until)
    finally:
        for prot in prots:
            prot.close()


def serve_measured(prots, until):
    gc.collect()
    sys.stderr.write('mem: start alloc=%d free=%d\n' % (gc.mem_alloc(), gc.mem_free()))
    while until is None or not until():
        gc.collect()
        before = gc.mem_alloc()
        busy = False
        for prot in prots:
            if prot.poll():
                busy = True
        if busy:
            sys.stderr.write('mem: step +%d alloc=%d\n' % (gc.mem_alloc() - before, gc.mem_alloc()))
        else:
            sp.protocol._sleep_ms(2)


main()
