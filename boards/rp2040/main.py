"""Runs on reset: the device runtime with the demo services on the streams named in config.py.

Deploy sp_common/, sp_micropython/, this main.py and config.py to the board's
root (and secret.txt for a secret): `sp deploy rp2040`. The board serves its
USB console; mpremote, Thonny and Belay take it back with Ctrl-C as from any
program (config.REPL).
"""
import micropython

micropython.kbd_intr(-1)   # a host's frames (0x03 bytes) may come from the first line on: they are not Ctrl-C
import config  # noqa: E402

if 'stdio' not in config.STREAMS:   # the USB console stays the REPL's
    micropython.kbd_intr(3)

from sp_micropython.board import run  # noqa: E402

run(config)
