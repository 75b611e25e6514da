"""The virtual board: the device runtime on the MicroPython unix port.

    micropython -X heapsize=64k boards/unix/main.py [--key=value ...]

Serves the demo services (sp_micropython.demo) on stdin/stdout (put them on a
pty in raw mode: that is the board's USB serial console) and on a loopback
TCP port, at once. Every setting of config.py can be overridden from the
command line (--tcp-port=57322) or the environment (SP_TCP_PORT=57322),
command line first; see config.py for what they mean. One more, SP_MEM=1,
prints heap figures to stderr: after start, and the bytes allocated by every
poll step that did work.

The board exits when its stdin is closed (end of input on the pty or pipe).
"""
import sys

_parts = sys.argv[0].split('/')
sys.path.append('/'.join(_parts[:-3]) or '.')   # the repository root (last: MICROPYPATH, e.g. .mpy builds, wins)

import os  # noqa: E402

import config  # noqa: E402
import sp_micropython.board  # noqa: E402
from sp_micropython.protocol import serve, serve_until_end  # noqa: E402


def knob(name):
    flag = '--' + name.lower().replace('_', '-') + '='
    for arg in sys.argv[1:]:
        if arg.startswith(flag):
            return arg[len(flag):]
    return os.getenv('SP_' + name)


def apply_overrides():
    """Overrides config.py's values, each typed like the value it replaces; then names the streams."""
    for name in dir(config):
        value = knob(name)
        if value is None or name.startswith('_'):
            continue
        default = getattr(config, name)
        if isinstance(default, bool):
            value = value not in ('0', 'False', 'off', '')
        elif isinstance(default, int) or name == 'LOG_LEVEL':
            value = 0 if value in ('', 'off') else int(value)
        setattr(config, name, value)
    config.STREAMS = ('stdio',) * config.STDIO + ('tcp',) * (config.TCP_PORT > 0)


apply_overrides()
if knob('MEM') == '1':
    from sp_micropython.measure import serve_measured as serve   # noqa: F811
del knob, apply_overrides   # what only the start needs leaves the heap: these, and board.start's module
serve_until_end(sp_micropython.board.start(config), serve)
