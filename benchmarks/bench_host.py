"""Round trips per second, host <-> host on loopback TCP, next to a baseline measured in the same run.

The baseline is the least a JSON request/response link can do: a plain socket
ping-pong that sends the JSON text plus CRC-32 with a length prefix and parses
the reply, without framing, dispatch, callbacks or threads handing over.
Ratios travel between machines; absolute rates do not.
"""
import argparse
import json
import socket
import struct
import threading
import time
import zlib

import sp_cpython as sp


def _recv_exact(conn, n):
    buf = b''
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise ConnectionError('closed')
        buf += chunk
    return buf


def _recv_msg(conn):
    body = _recv_exact(conn, struct.unpack('>I', _recv_exact(conn, 4))[0])
    if zlib.crc32(body[:-4]) != int.from_bytes(body[-4:], 'big'):
        raise ValueError('crc')
    return json.loads(body[:-4])


def _send_msg(conn, obj):
    text = json.dumps(obj).encode()
    body = text + zlib.crc32(text).to_bytes(4, 'big')
    conn.sendall(struct.pack('>I', len(body)) + body)


def baseline(n):
    listener = socket.create_server(('127.0.0.1', 0))

    def serve():
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            for _ in range(n):
                msg = _recv_msg(conn)
                _send_msg(conn, {'data_id': msg['data_id'], 'service_id': 31, 'status': 0, 'data': msg['data']})
    thread = threading.Thread(target=serve)
    thread.start()
    conn = socket.create_connection(listener.getsockname())
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    start = time.perf_counter()
    for i in range(n):
        _send_msg(conn, {'data_id': 0, 'service_id': 30, 'status': 0, 'data': i})
        assert _recv_msg(conn)['data'] == i
    elapsed = time.perf_counter() - start
    conn.close()
    thread.join()
    listener.close()
    return n / elapsed


def protocol(n, cls=sp.pure_json_protocol, secret=None):
    server = cls(sp.tcp_server_stp('127.0.0.1', 0), secret=secret)
    server.register_callback(sp.SID_EXECUTE_REQUEST, 0, lambda msg: (sp.STATUS_OKAY, msg.get_data()))
    client = cls(sp.tcp_client_stp('127.0.0.1', server.__comm_inst__.port), secret=secret, auto_auth=bool(secret))
    try:
        client.send(sp.SID_EXECUTE_REQUEST, 0, -1, timeout=5)
        assert client.receive(sp.SID_EXECUTE_RESPONSE, 0, timeout=5).get_data() == -1
        start = time.perf_counter()
        for i in range(n):
            client.send(sp.SID_EXECUTE_REQUEST, 0, i)
            assert client.receive(sp.SID_EXECUTE_RESPONSE, 0).get_data() == i
        return n / (time.perf_counter() - start)
    finally:
        client.close()
        server.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-n', type=int, default=3000, help='round trips per measurement')
    args = parser.parse_args()
    base = baseline(args.n)
    rows = [('plain socket JSON+CRC ping-pong (baseline)', base)]
    rows.append(('pure_json_protocol over tcp', protocol(args.n)))
    rows.append(('struct_json_protocol over tcp', protocol(args.n, sp.struct_json_protocol)))
    rows.append(('pure_json_protocol over tcp, with secret', protocol(args.n, secret='s')))
    print('| link | round trips/s | vs baseline |')
    print('|---|---:|---:|')
    for name, rate in rows:
        print('| %s | %.0f | %.2f |' % (name, rate, rate / base))


if __name__ == '__main__':
    main()
