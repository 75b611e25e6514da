"""The original documentation's server, ported by changing its imports: answers asc_time reads."""
import logging
import sys
import time

import sp_cpython as socket_protocol

DID_ASC_TIME = 0


def resp_asctime(msg):
    return socket_protocol.STATUS_OKAY, time.asctime()


if __name__ == '__main__':
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s %(levelname)s %(message)s')
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 17017
    comm = socket_protocol.tcp_server_stp('127.0.0.1', port)
    prot = socket_protocol.pure_json_protocol(comm, secret='apple', channel_name='example_server')
    prot.add_data((socket_protocol.SID_READ_REQUEST, socket_protocol.SID_READ_RESPONSE), DID_ASC_TIME, 'asc_time')
    prot.register_callback(socket_protocol.SID_READ_REQUEST, DID_ASC_TIME, resp_asctime)
    print('serving on port %d' % comm.port, flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        prot.close()
