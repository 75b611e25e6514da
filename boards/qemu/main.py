"""The qemu board's start: the demo services on the console UART, from config.py and what the launcher set.

The qemu port runs no main.py by itself; the launcher types `import main` at
the raw REPL after setting config values.
"""
import config
import sp_micropython.board
from sp_micropython.protocol import serve, serve_until_end

serve_until_end(sp_micropython.board.start(config), serve)   # board.start's module leaves the heap
