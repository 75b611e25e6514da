"""Runs on reset: the device runtime with the demo services on the streams named in config.py.

Deploy sp_common/, sp_micropython/, this main.py and config.py to the board's
root (and secret.txt for a secret): `sp deploy rp2040`. The board serves its
USB console; mpremote, Thonny and Belay take it back with Ctrl-C as from any
program (config.REPL).
"""
import micropython

micropython.kbd_intr(-1)   # a host's frames (0x03 bytes) may come from the first line on: they are not Ctrl-C
import config  # noqa: E402

# Ctrl-C back on: the USB console is the REPL's, or STARTUP_DELAY_MS asks for a window in which Ctrl-C keeps the
# REPL (a board with REPL = False); serving the console switches it off again (sp_micropython.stdio)
if 'stdio' not in config.STREAMS or getattr(config, 'STARTUP_DELAY_MS', 0):
    micropython.kbd_intr(3)

from sp_micropython.board import run  # noqa: E402

run(config)
