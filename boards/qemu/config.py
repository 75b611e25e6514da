"""The qemu board: MicroPython's qemu port (Arm MPS2-AN385, Cortex-M3) with its console UART on a pty.

The launcher (python3 -m tools.qemu_board) may set any of these before it
starts main.py; there is no filesystem to keep them in.
"""
CHANNEL_NAME = 'qemu'
CODEC = 'pure_json'          # or 'struct_json'
ROLE = 'server'              # or 'client'
STREAMS = ('stdio',)         # the console UART is the board's only stream
SECRET = None
SECRET_FILE = 'secret.txt'   # read when SECRET is None; this board has no writable filesystem
MAX_FRAME = 1024
LOG_LEVEL = None             # engine log on the console, between frames: 10 debug .. 40 error
STARTUP_DELAY_MS = 0
ENTROPY = None               # no hardware RNG here: the weak stand-in is used, with a warning
