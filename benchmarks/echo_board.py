"""The floor for bench_link: the MicroPython unix port echoing raw bytes, no protocol.

    micropython benchmarks/echo_board.py PORT

Echoes what arrives on stdin (a raw pty) to stdout and what a TCP client on
127.0.0.1:PORT sends back to it, waiting in one select.poll and reading what
is there in one call, as the device loop does.
"""
import select
import socket
import sys
import termios

attrs = termios.tcgetattr(0)
for i in range(len(attrs[6])):
    if isinstance(attrs[6][i], int):   # VMIN, VTIME = 0: a read takes what is there
        attrs[6][i] = 0
termios.tcsetattr(0, termios.TCSANOW, attrs)
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(socket.getaddrinfo('127.0.0.1', int(sys.argv[1]))[0][-1])
srv.listen(1)
poll = select.poll()
poll.register(sys.stdin, select.POLLIN)
poll.register(srv, select.POLLIN)
buf = bytearray(8192)
view = memoryview(buf)
client = None
while True:
    for obj, event in poll.ipoll(-1):
        if obj is srv:
            client = srv.accept()[0]
            client.setblocking(False)   # a read takes what is there
            poll.register(client, select.POLLIN)
        elif obj is client:
            n = client.readinto(buf)
            if not n:
                poll.unregister(client)
                client.close()
                client = None
                continue
            client.write(view[:n])
        else:
            n = sys.stdin.buffer.readinto(buf)
            if not n:
                sys.exit(0)
            sys.stdout.buffer.write(view[:n])
