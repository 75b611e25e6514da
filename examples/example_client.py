"""The original documentation's client, ported by changing its imports: asks the server once for asc_time."""
import argparse
import logging

import sp_cpython as socket_protocol

DID_ASC_TIME = 0

if __name__ == '__main__':
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s %(levelname)s %(message)s')
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('port', type=int, nargs='?', default=17017, help='TCP port (default 17017)')
    port = parser.parse_args().port
    comm = socket_protocol.tcp_client_stp('127.0.0.1', port)
    prot = socket_protocol.pure_json_protocol(comm, secret='apple', auto_auth=True, channel_name='example_client')
    prot.add_data((socket_protocol.SID_READ_REQUEST, socket_protocol.SID_READ_RESPONSE), DID_ASC_TIME, 'asc_time')
    prot.send(socket_protocol.SID_READ_REQUEST, DID_ASC_TIME, None)
    print(prot.receive(socket_protocol.SID_READ_RESPONSE, DID_ASC_TIME))
    prot.close()
