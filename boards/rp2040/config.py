"""RP2040 (Raspberry Pi Pico / Pico W) board settings. Copy to the board as /config.py."""
CHANNEL_NAME = 'rp2040'
CODEC = 'pure_json'           # or 'struct_json'
STREAMS = ('stdio',)          # the USB cable; add 'uart' (UART0 on GP0/GP1) and, on a Pico W, 'wifi'
REPL = True                   # Ctrl-C between frames (mpremote, Thonny) hands the USB console back to the REPL
UART_ID = 0
UART_TX = 0                   # GP0
UART_RX = 1                   # GP1
UART_BAUD = 115200
WIFI_SSID = None              # Pico W only
WIFI_PASSWORD = None
TCP_PORT = 57321
SECRET_FILE = 'secret.txt'
MAX_FRAME = 8192
STARTUP_DELAY_MS = 0          # serves at once (REPL: Ctrl-C between frames takes the REPL back); > 0: a window after
                              # reset in which Ctrl-C keeps the REPL, and a host's 0x03 bytes would stop main.py
