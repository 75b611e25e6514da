"""The original documentation's server, ported by changing its imports: answers asc_time reads."""
import argparse
import logging
import time

import sp_cpython as socket_protocol

DID_ASC_TIME = 0


def resp_asctime(msg):
    return socket_protocol.STATUS_OKAY, time.asctime()


if __name__ == '__main__':
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s %(levelname)s %(message)s')
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('port', type=int, nargs='?', default=17017, help='TCP port (default 17017)')
    port = parser.parse_args().port
    comm = socket_protocol.tcp_server_stp('127.0.0.1', port)
    # no channel name of its own: a server takes its client's (one of its own it would replace, with a warning)
    prot = socket_protocol.pure_json_protocol(comm, secret='apple')
    prot.add_data((socket_protocol.SID_READ_REQUEST, socket_protocol.SID_READ_RESPONSE), DID_ASC_TIME, 'asc_time')
    prot.register_callback(socket_protocol.SID_READ_REQUEST, DID_ASC_TIME, resp_asctime)
    print('serving on port %d' % comm.port, flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        prot.close()
