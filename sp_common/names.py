"""Names of services, statuses and auth states, the log level of each status and the table of services: for logs
and the host API.

Kept apart from const so that a board that does not log never loads them.
"""
from .const import *  # noqa: F401,F403
from .engine import new_counters
from .errors import RequestSidExistsError, ResponseSidExistsError  # noqa: F401  (socket_protocol has them here)

# socket_protocol's table of its services (the engine starts from the same, sp_common.engine)
SID_RESPONSE_DICT = {
    SID_AUTH_REQUEST: SID_AUTH_RESPONSE,
    SID_CHANNEL_NAME_REQUEST: SID_CHANNEL_NAME_RESPONSE,
    SID_READ_REQUEST: SID_READ_RESPONSE,
    SID_WRITE_REQUEST: SID_WRITE_RESPONSE,
    SID_EXECUTE_REQUEST: SID_EXECUTE_RESPONSE,
}


def response_sid(sid):
    """Where the answer to a request on sid comes when no table of the caller says: socket_protocol's services
    answer on theirs, any other sid on the next. For an even sid that is what the engine waits on; an odd one it
    takes for a response (sp_common.engine), so its callers (sp_tool) give even request sids only."""
    return SID_RESPONSE_DICT.get(sid, sid + 1)

SID__NAMES = {
    SID_AUTH_REQUEST: 'authentification request',
    SID_AUTH_RESPONSE: 'authentification response',
    SID_SESSION_REQUEST: 'session request',
    SID_SESSION_RESPONSE: 'session response',
    SID_CHANNEL_NAME_REQUEST: 'channel name request',
    SID_CHANNEL_NAME_RESPONSE: 'channel name response',
    SID_READ_REQUEST: 'read data request',
    SID_READ_RESPONSE: 'read data response',
    SID_WRITE_REQUEST: 'write data request',
    SID_WRITE_RESPONSE: 'write data response',
    SID_EXECUTE_REQUEST: 'execute request',
    SID_EXECUTE_RESPONSE: 'execute response',
}

STATUS__NAMES = {
    STATUS_OKAY: 'okay',
    STATUS_BUFFERING_UNHANDLED_REQUEST: 'no callback for service, data buffered',
    STATUS_CALLBACK_ERROR: 'callback error',
    STATUS_AUTH_REQUIRED: 'authentification required',
    STATUS_SERVICE_OR_DATA_UNKNOWN: 'service or data unknown',
    STATUS_CHECKSUM_ERROR: 'checksum error',
    STATUS_OPERATION_NOT_PERMITTED: 'operation not permitted',
}


# logging levels (const's numbers: no logging module on MicroPython)
STATUS_LOG_LVL = {
    STATUS_OKAY: INFO,
    STATUS_BUFFERING_UNHANDLED_REQUEST: WARNING,
    STATUS_CALLBACK_ERROR: ERROR,
    STATUS_AUTH_REQUIRED: WARNING,
    STATUS_SERVICE_OR_DATA_UNKNOWN: ERROR,
    STATUS_CHECKSUM_ERROR: ERROR,
    STATUS_OPERATION_NOT_PERMITTED: WARNING,
}


AUTH_STATE__NAMES = {
    AUTH_STATE_UNTRUSTED_CONNECTION: 'Untrusted Connection',
    AUTH_STATE_SEED_REQUESTED: 'Seed was requested',
    AUTH_STATE_SEED_TRANSFERRED: 'Seed has been sent',
    AUTH_STATE_KEY_TRANSFERRED: 'Key has been sent',
    AUTH_STATE_TRUSTED_CONNECTION: 'Trusted Connection',
}

COUNTERS = tuple(new_counters())   # the names of an engine's counters, in the order of Engine.counters
