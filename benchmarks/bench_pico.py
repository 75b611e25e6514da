"""The emulated Pico (MicroPython's RP2040 port under rp2040js): the protocol beside the raw floor of the same board.

    python3 -m benchmarks.bench_pico [--rounds N]

One table, every figure beside a baseline measured in the same run on the
same emulated board (the emulator runs at about half a real RP2040's speed,
so the ratios travel, the absolute figures do not):

- protocol echo round trips (execute/echo, session v2, the host's
  sp_cpython client) over the USB console and over UART0, beside a raw echo
  of the same number of bytes by a few lines of MicroPython on the same
  stream: on USB once reading the frame in one call (a read blocks until its
  buffer is full: the floor for a reader that knows the length), once byte by
  byte while select.poll says a byte is ready (what a reader that must not
  block can do); on UART0 what any() says has come, echoed at once;
- the codec on the board: encode + frame and deframe + decode of that
  message, beside a naive json.dumps + crc32 + json.loads of the same dict;
- the heap after start, beside the bare interpreter's.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import serial

import sp_cpython as sp
from sp_common import frame, pure_json
from tools.pico_board import PicoBoard, missing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = 'x' * 20
# the size of the protocol's request frame in session v2 (its answer has the same size): the raw echoes move it
SIZE = len(frame(*pure_json.pieces(30, 0, 0, DATA, 100, 0)))

RAW_USB_WHOLE = """import sys
buf = bytearray(%d)
while True:
    sys.stdin.buffer.readinto(buf)
    sys.stdout.buffer.write(buf)
""" % SIZE
RAW_USB_BYTEWISE = """import sys, select
poll = select.poll()
poll.register(sys.stdin, select.POLLIN)
buf = bytearray(%d)
one = bytearray(1)
while True:
    n = 0
    while n < len(buf):
        for _ in poll.ipoll(-1):
            sys.stdin.buffer.readinto(one)
            buf[n] = one[0]
            n += 1
    sys.stdout.buffer.write(buf)
""" % SIZE
RAW_UART = """import select, config
from machine import UART, Pin
uart = UART(config.UART_ID, baudrate=config.UART_BAUD, tx=Pin(config.UART_TX), rx=Pin(config.UART_RX), timeout=0)
poll = select.poll()
poll.register(uart, select.POLLIN)
buf = bytearray(%d)
view = memoryview(buf)
while True:
    poll.ipoll(-1)
    n = uart.readinto(buf, min(uart.any(), len(buf))) or 0
    uart.write(view[:n])
""" % SIZE
CODEC = """import json, time
from binascii import crc32
from sp_common.codec import pure_json
from sp_common.stp import Deframer, frame
data = %r
deframer = Deframer(8192)
def ours():
    pure_json.decode(deframer.feed(frame(*pure_json.pieces(30, 0, 0, data, 100, 0)))[0], True)
def naive():
    body = json.dumps({'data_id': 0, 'service_id': 30, 'status': 0, 'data': data, 'seq': 100, 're': 0}).encode()
    crc32(body)
    json.loads(body)
wire = frame(*pure_json.pieces(30, 0, 0, data, 100, 0))
body = deframer.feed(wire)[0]

from sp_micropython.demo import add_demo_services
from sp_micropython.protocol import Stream, pure_json_protocol

class Fed(Stream):
    # a stream that hands poll() one request frame and keeps what is written
    def __init__(self):
        Stream.__init__(self)
        self.frame = None
        self._set(True)
    def readinto(self, buf):
        n = len(self.frame or b'')
        buf[:n] = self.frame or b''
        self.frame = None
        return n
    def write(self, data):
        pass

stream = Fed()
server = pure_json_protocol(stream, session_v2=False)
add_demo_services(server)
server.poll()
request = frame(*pure_json.pieces(30, 0, 0, data))
def serve_one():
    stream.frame = request
    server.poll()
for name, f in (('ours', ours), ('naive', naive), ('encode+frame', lambda: frame(*pure_json.pieces(30, 0, 0, data, 100, 0))),
                ('deframe', lambda: deframer.feed(wire)), ('decode', lambda: pure_json.decode(body, True)),
                ('poll()', serve_one)):
    f()
    start = time.ticks_us()
    for _ in range(100):
        f()
    print('codec', name, time.ticks_diff(time.ticks_us(), start) / 100)
""" % DATA


HEAP = """import gc
gc.collect()
print('heap bare', gc.mem_alloc())
import config
config.STREAMS = ('stdio',)
import sp_micropython.board
prots = sp_micropython.board.start(config)
gc.collect()
print('heap start', gc.mem_alloc(), gc.mem_free())
for prot in prots:
    prot.close()
"""


def rate(ask, rounds):
    for _ in range(3):
        ask()
    start = time.perf_counter()
    for _ in range(rounds):
        ask()
    return rounds / (time.perf_counter() - start)


def raw_echo(board, code, port, rounds):
    """Round trips/s of SIZE bytes through a raw echo loop running on the board."""
    board.exec('import micropython\nmicropython.kbd_intr(-1)\n' + code)
    msg = bytes(48 + i % 64 for i in range(SIZE))
    with serial.Serial(port, 115200, timeout=10) as link:
        def ask():
            link.write(msg)
            if link.read(SIZE) != msg:
                raise RuntimeError('the raw echo lost bytes')
        result = rate(ask, rounds)
    board.power_cycle()   # the raw loops never give the console back
    return result


def protocol_echo(board, port, rounds):
    host = sp.pure_json_protocol(sp.serial_stp(port), channel_name='host')
    try:
        def ask():
            answer = host.request(sp.SID_EXECUTE_REQUEST, 0, DATA, timeout=10)
            if answer is None or answer.get_data() != DATA:
                raise RuntimeError('no echo: %r' % (answer,))
        result = rate(ask, rounds)
        assert host.session == 2
        return result
    finally:
        host.close()


def run_on_board(board, code, mark):
    """The figures a script run with mpremote (after a soft reset) prints on lines starting with mark."""
    with tempfile.NamedTemporaryFile('w', suffix='.py', delete=False) as f:
        f.write(code)
    try:
        out = subprocess.run([sys.executable, '-m', 'mpremote', 'connect', board.usb, 'run', f.name],
                             capture_output=True, text=True, timeout=120).stdout
    finally:
        os.unlink(f.name)
    return dict((line.split()[1], [float(n) for n in line.split()[2:]]) for line in out.splitlines()
                if line.startswith(mark))


def codec_on_board(board):
    """{stage: emulated microseconds}: the codec both ways, naive json + crc32, each stage, and one request
    through a served protocol's poll() (original wire, no I/O)."""
    return dict((name, value[0]) for name, value in run_on_board(board, CODEC, 'codec').items())


def main(argv=None):
    ap = argparse.ArgumentParser(prog='python3 -m benchmarks.bench_pico', description=__doc__.split('\n\n')[0])
    ap.add_argument('--rounds', type=int, default=100, help='round trips per figure (default 100)')
    args = ap.parse_args(argv)
    reason = missing()
    if reason:
        print('bench_pico: %s' % reason, file=sys.stderr)
        return 1
    with PicoBoard() as board:
        deployed = subprocess.run([sys.executable, '-m', 'sp_tool', 'deploy', 'rp2040', '--port', board.usb, '--mpy'],
                                  cwd=ROOT, capture_output=True, text=True)
        if deployed.returncode:
            print('bench_pico: deploy failed: %s' % deployed.stderr, file=sys.stderr)
            return 1
        codec = codec_on_board(board)
        ours, naive = codec['ours'], codec['naive']
        heap = run_on_board(board, HEAP, 'heap')
        whole = raw_echo(board, RAW_USB_WHOLE, board.usb, args.rounds)
        bytewise = raw_echo(board, RAW_USB_BYTEWISE, board.usb, args.rounds)
        uart = raw_echo(board, RAW_UART, board.uart0, args.rounds)
        board.start(streams=('stdio', 'uart'))
        usb_protocol = protocol_echo(board, board.usb, args.rounds)
        uart_protocol = protocol_echo(board, board.uart0, args.rounds)
    print('emulated Pico (RP2040 port, rp2040js), %d round trips of %d-byte frames each' % (args.rounds, SIZE))
    print()
    print('| figure | protocol | baseline (same run, same board) | ratio |')
    print('|---|---:|---:|---:|')
    print('| USB echo, round trips/s vs raw echo reading the frame in one call | %.0f | %.0f | %.2f |'
          % (usb_protocol, whole, usb_protocol / whole))
    print('| USB echo, round trips/s vs raw echo byte by byte while poll says ready | %.0f | %.0f | %.2f |'
          % (usb_protocol, bytewise, usb_protocol / bytewise))
    print('| UART0 echo, round trips/s vs raw echo of what any() says has come | %.0f | %.0f | %.2f |'
          % (uart_protocol, uart, uart_protocol / uart))
    print('| codec on the board, encode + frame + deframe + decode of one message, us (emulated) vs naive json + '
          'crc32 | %.0f | %.0f '
          '| %.2f |' % (ours, naive, naive / ours))
    print()
    print('where a request goes on the board (emulated us): encode + frame %.0f, deframe %.0f, decode %.0f; one '
          'request through poll() %.0f' % (codec['encode+frame'], codec['deframe'], codec['decode'], codec['poll()']))
    print()
    print('heap after start (code as .mpy, USB console served, demo services): %d B allocated (bare interpreter: '
          '%d B), %d B free' % (heap['start'][0], heap['bare'][0], heap['start'][1]))
    return 0


if __name__ == '__main__':
    sys.exit(main())
