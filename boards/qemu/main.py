"""The qemu board's start: the demo services on the console UART, from config.py and what the launcher set.

The qemu port runs no main.py by itself; the launcher types `import main` at
the raw REPL after setting config values.
"""
import config
from sp_micropython.board import run

if config.MEM:
    from sp_micropython.measure import serve_measured
    run(config, serve_measured)
else:
    run(config)
