"""The main job: the host reads asc_time from a board over serial and prints the exchange.

    python -m tools.talk                  # no board: starts the virtual board
    python -m tools.talk --port /dev/ttyACM0 [--baud 115200] [--secret S]

With a port, the board must run boards/<board>/main.py (see tools.deploy).
"""
import argparse
import logging
import sys

import sp_cpython as sp

DID_ASC_TIME = 0


def talk(port, baud=115200, secret=None, timeout=10):
    """Asks the board once for asc_time; returns the response (a data_storage) or None."""
    prot = sp.pure_json_protocol(sp.serial_stp(port, baud), secret=secret, auto_auth=secret is not None,
                                 channel_name='host')
    try:
        prot.add_data((sp.SID_READ_REQUEST, sp.SID_READ_RESPONSE), DID_ASC_TIME, 'asc_time')
        if not prot.send(sp.SID_READ_REQUEST, DID_ASC_TIME, None, timeout=timeout):
            return None
        return prot.receive(sp.SID_READ_RESPONSE, DID_ASC_TIME, timeout=timeout)
    finally:
        prot.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--port', help='serial device or pyserial URL of a board; none: the virtual board')
    parser.add_argument('--baud', type=int, default=115200)
    parser.add_argument('--secret', help='shared secret, if the board was given one')
    parser.add_argument('-q', '--quiet', action='store_true', help='print only the answer')
    parser.add_argument('-v', '--verbose', action='store_true', help='also print the bytes of each message')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO,
                        format='%(name)-28s %(levelname)-7s %(message)s')
    board = None
    port = args.port
    if port is None:
        from tools.virtual_board import VirtualBoard
        env = {'SP_TCP_PORT': '0'} if args.secret is None else {'SP_TCP_PORT': '0', 'SP_SECRET': args.secret}
        board = VirtualBoard(boot=True, env=env)
        port = board.port
        print('virtual board (MicroPython unix port) on %s' % port)
    try:
        answer = talk(port, args.baud, args.secret)
    finally:
        if board is not None:
            board.stop()
    if answer is None:
        print('no answer from the board on %s' % port)
        return 1
    print('board time: %s (status %s)' % (answer.get_data(), sp.STATUS__NAMES.get(answer.get_status())))
    return 0 if answer.get_status() == sp.STATUS_OKAY else 1


if __name__ == '__main__':
    sys.exit(main())
