"""The virtual board (MicroPython unix port). Every value can be overridden, see overrides.py."""
CHANNEL_NAME = 'unix'
CODEC = 'pure_json'          # or 'struct_json'
ROLE = 'server'              # 'client': connect to a host's TCP server, and be the client on stdio too
TCP_HOST = '127.0.0.1'       # listen address (server) or the host to connect to (client)
TCP_PORT = 57321             # 0 or 'off': no TCP
STDIO = True                 # serve on stdin/stdout (put them on a pty)
REPL = False                 # True: a Ctrl-C between frames hands the console back to the REPL (`sp board`, as a Pico)
SECRET = None
SECRET_FILE = 'secret.txt'   # read when SECRET is None and the file exists
MAX_FRAME = 8192
SESSION_V2 = 'on'            # session v2 with hosts that offer it; 'off': the original wire only; 'required'
LOG_LEVEL = None             # engine log, on the console between frames (else stderr): 10 debug .. 40 error
