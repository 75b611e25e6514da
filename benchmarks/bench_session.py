"""The cost of session v2 beside the original wire, measured in one run: host round trips and bytes per message.

    python3 -m benchmarks.bench_session [--requests 2000]

Two host protocols on loopback TCP; each row times request() round trips
(median, p99) for one wire, and counts the bytes of one read request on it.
"""
import argparse
import sys
import time

import sp_cpython as sp
from benchmarks.stats import median_p99
from sp_common import Engine

WIRES = (('original wire', False, None), ('session v2', True, None), ('session v2 with MACs', True, 'b3nch'))


def wait_for(predicate, timeout=10.0):
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise RuntimeError('the link did not come up')
        time.sleep(0.01)


def round_trips(session_v2, secret, requests):
    """Round-trip times in ms of request() over loopback TCP."""
    server = sp.pure_json_protocol(sp.tcp_server_stp('127.0.0.1', 0), secret=secret, session_v2=session_v2)
    server.register_callback(sp.SID_EXECUTE_REQUEST, 0, lambda msg: (sp.STATUS_OKAY, msg.get_data()))
    client = sp.pure_json_protocol(sp.tcp_client_stp('127.0.0.1', server.__comm_inst__.port), secret=secret,
                                   auto_auth=secret is not None, session_v2=session_v2)
    try:
        wait_for(lambda: client.connection_established() and client.session is not None)
        times = []
        for n in range(requests):
            start = time.perf_counter()
            if client.request(sp.SID_EXECUTE_REQUEST, 0, n, timeout=5) is None:
                raise RuntimeError('request %d went unanswered' % n)
            times.append((time.perf_counter() - start) * 1000)
        return times
    finally:
        client.close()
        server.close()


def wire_bytes(session_v2, secret):
    """The bytes of the first read request once the wire is settled (the engines back to back)."""
    client, server = Engine(True, secret=secret, session_v2=session_v2), Engine(False, secret=secret,
                                                                               session_v2=session_v2)
    client.connection_made()
    server.connection_made()
    server.feed(client.data_to_send())
    client.feed(server.data_to_send())
    client.send_msg(sp.SID_READ_REQUEST, 0, None)
    return len(client.data_to_send())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--requests', type=int, default=2000, help='round trips per wire (default 2000)')
    args = ap.parse_args(argv)
    print('| wire | round trip median / p99 | vs original | bytes per read request |')
    print('|---|---:|---:|---:|')
    base = None
    for name, session_v2, secret in WIRES:
        median, p99 = median_p99(round_trips(session_v2, secret, args.requests))
        base = base or median
        print('| %s | %.3f / %.3f ms | %.2f | %d B |' % (name, median, p99, median / base,
                                                         wire_bytes(session_v2, secret)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
