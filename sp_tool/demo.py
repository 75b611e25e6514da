"""The demo service set on the host, as every board serves it (sp_micropython/demo.py): for sp serve, and
the data names sp call and sp monitor understand.

The device module runs on MicroPython only (its clock is ticks); this is the
same set written against the host API. tests/test_cli.py checks both declare
the same data.
"""
import time

import sp_cpython as sp

# (services, data id, name)
DATA = (
    ((sp.SID_READ_REQUEST, sp.SID_READ_RESPONSE), 0, 'asc_time'),
    ((sp.SID_READ_REQUEST, sp.SID_READ_RESPONSE, sp.SID_WRITE_REQUEST, sp.SID_WRITE_RESPONSE), 1, 'value'),
    ((sp.SID_EXECUTE_REQUEST, sp.SID_EXECUTE_RESPONSE), 0, 'echo'),
    ((sp.SID_EXECUTE_REQUEST, sp.SID_EXECUTE_RESPONSE), 1, 'fail'),
)


def add_demo_services(prot) -> None:
    """Declares DATA on prot and answers it: asc_time, a value to write and read back, echo, and fail."""
    values = {1: None}

    def write_value(msg):
        values[1] = msg.get_data()
        return sp.STATUS_OKAY, None

    def fail(msg):
        raise ValueError('this service always fails')

    for services, data_id, name in DATA:
        prot.add_data(services, data_id, name)
    prot.register_callback(sp.SID_READ_REQUEST, 0, lambda msg: (sp.STATUS_OKAY, time.asctime()))
    prot.register_callback(sp.SID_READ_REQUEST, 1, lambda msg: (sp.STATUS_OKAY, values[1]))
    prot.register_callback(sp.SID_WRITE_REQUEST, 1, write_value)
    prot.register_callback(sp.SID_EXECUTE_REQUEST, 0, lambda msg: (sp.STATUS_OKAY, msg.get_data()))
    prot.register_callback(sp.SID_EXECUTE_REQUEST, 1, fail)
