"""Runs on reset: the device runtime with the demo services on the streams named in config.py.

Deploy sp_common/, sp_micropython/, this main.py and config.py to the board's
root (and secret.txt for a secret). Press Ctrl-C within STARTUP_DELAY_MS of a
reset to keep the REPL (needed when config.STREAMS holds 'stdio').
"""
import config
from sp_micropython.board import run

run(config)
