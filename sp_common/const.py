"""Public constants of the protocol, shared by host and device: each value is written here and only here.

Values and names follow the original socket_protocol module so that code
written against it keeps working after changing its imports. Their names
for logs are in sp_common.names. The modules of both sides import the values
they use from here; on MicroPython const() makes them plain numbers in
this module's code.
"""
from .codec import const

SID_AUTH_REQUEST = const(0)
SID_AUTH_RESPONSE = const(1)
DID_AUTH_SEED = const(0)
DID_AUTH_KEY = const(1)
SID_SESSION_REQUEST = const(2)      # session v2 negotiation (not a service of the original wire)
SID_SESSION_RESPONSE = const(3)
DID_SESSION = const(0)
SID_CHANNEL_NAME_REQUEST = const(8)
SID_CHANNEL_NAME_RESPONSE = const(9)
DID_CHANNEL_NAME = const(0)
SID_READ_REQUEST = const(10)
SID_READ_RESPONSE = const(11)
SID_WRITE_REQUEST = const(20)
SID_WRITE_RESPONSE = const(21)
SID_EXECUTE_REQUEST = const(30)
SID_EXECUTE_RESPONSE = const(31)


STATUS_OKAY = const(0)
STATUS_BUFFERING_UNHANDLED_REQUEST = const(1)
STATUS_CALLBACK_ERROR = const(2)
STATUS_AUTH_REQUIRED = const(3)
STATUS_SERVICE_OR_DATA_UNKNOWN = const(4)
STATUS_CHECKSUM_ERROR = const(5)
STATUS_OPERATION_NOT_PERMITTED = const(6)


AUTH_STATE_UNTRUSTED_CONNECTION = const(0)
AUTH_STATE_SEED_REQUESTED = const(1)
AUTH_STATE_SEED_TRANSFERRED = const(2)
AUTH_STATE_KEY_TRANSFERRED = const(3)
AUTH_STATE_TRUSTED_CONNECTION = const(4)


MAX_CHANNEL_NAME = const(32)   # characters, printable ASCII
NEGOTIATE_MS = const(3000)     # a wire not settled this long (a client's offer unanswered, a server's client
                               # silent after its name) settles on the original wire, for this session


DEBUG = const(10)
INFO = const(20)
WARNING = const(30)
ERROR = const(40)

del const   # not a constant of the protocol: `from sp_common.const import *` leaves it out
