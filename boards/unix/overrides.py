"""The virtual board's settings from the command line and the environment: needed only to start (main.py drops it)."""
import os
import sys

import config


def knob(name):
    """--name=value from the command line, else the environment's SP_NAME, else None."""
    flag = '--' + name.lower().replace('_', '-') + '='
    for arg in sys.argv[1:]:
        if arg.startswith(flag):
            return arg[len(flag):]
    return os.getenv('SP_' + name)


def apply():
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
