"""ESP32 board settings. Copy to the board as /config.py (tools or: mpremote cp boards/esp32/config.py :config.py)."""
CHANNEL_NAME = 'esp32'
CODEC = 'pure_json'           # or 'struct_json'
STREAMS = ('uart', 'wifi')    # any of 'uart', 'wifi' (join it, then TCP), 'stdio' (the USB console)
REPL = True                   # with 'stdio': Ctrl-C between frames (mpremote, Thonny) hands the console back to the REPL
UART_ID = 1
UART_TX = 17
UART_RX = 16
UART_BAUD = 115200
WIFI_SSID = None              # 'my-network'; None: no Wi-Fi, no TCP
WIFI_PASSWORD = None
TCP_PORT = 57321
SECRET_FILE = 'secret.txt'    # the auth secret, one line; no file: no secret
MAX_FRAME = 8192
STARTUP_DELAY_MS = 2000       # Ctrl-C in this window after reset keeps the REPL
