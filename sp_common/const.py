"""Public constants of the protocol, shared by host and device.

Values and names follow the original socket_protocol module so that code
written against it keeps working after changing its imports.
"""

SID_AUTH_REQUEST = 0
SID_AUTH_RESPONSE = 1
DID_AUTH_SEED = 0
DID_AUTH_KEY = 1
SID_CHANNEL_NAME_REQUEST = 8
SID_CHANNEL_NAME_RESPONSE = 9
DID_CHANNEL_NAME = 0
SID_READ_REQUEST = 10
SID_READ_RESPONSE = 11
SID_WRITE_REQUEST = 20
SID_WRITE_RESPONSE = 21
SID_EXECUTE_REQUEST = 30
SID_EXECUTE_RESPONSE = 31

SID_RESPONSE_DICT = {
    SID_AUTH_REQUEST: SID_AUTH_RESPONSE,
    SID_CHANNEL_NAME_REQUEST: SID_CHANNEL_NAME_RESPONSE,
    SID_READ_REQUEST: SID_READ_RESPONSE,
    SID_WRITE_REQUEST: SID_WRITE_RESPONSE,
    SID_EXECUTE_REQUEST: SID_EXECUTE_RESPONSE,
}

SID__NAMES = {
    SID_AUTH_REQUEST: 'authentification request',
    SID_AUTH_RESPONSE: 'authentification response',
    SID_CHANNEL_NAME_REQUEST: 'channel name request',
    SID_CHANNEL_NAME_RESPONSE: 'channel name response',
    SID_READ_REQUEST: 'read data request',
    SID_READ_RESPONSE: 'read data response',
    SID_WRITE_REQUEST: 'write data request',
    SID_WRITE_RESPONSE: 'write data response',
    SID_EXECUTE_REQUEST: 'execute request',
    SID_EXECUTE_RESPONSE: 'execute response',
}

STATUS_OKAY = 0
STATUS_BUFFERING_UNHANDLED_REQUEST = 1
STATUS_CALLBACK_ERROR = 2
STATUS_AUTH_REQUIRED = 3
STATUS_SERVICE_OR_DATA_UNKNOWN = 4
STATUS_CHECKSUM_ERROR = 5
STATUS_OPERATION_NOT_PERMITTED = 6

STATUS__NAMES = {
    STATUS_OKAY: 'okay',
    STATUS_BUFFERING_UNHANDLED_REQUEST: 'no callback for service, data buffered',
    STATUS_CALLBACK_ERROR: 'callback error',
    STATUS_AUTH_REQUIRED: 'authentification required',
    STATUS_SERVICE_OR_DATA_UNKNOWN: 'service or data unknown',
    STATUS_CHECKSUM_ERROR: 'checksum error',
    STATUS_OPERATION_NOT_PERMITTED: 'operation not permitted',
}

# logging levels as numbers: logging.INFO, WARNING, ERROR (no logging module on MicroPython)
STATUS_LOG_LVL = {
    STATUS_OKAY: 20,
    STATUS_BUFFERING_UNHANDLED_REQUEST: 30,
    STATUS_CALLBACK_ERROR: 40,
    STATUS_AUTH_REQUIRED: 30,
    STATUS_SERVICE_OR_DATA_UNKNOWN: 40,
    STATUS_CHECKSUM_ERROR: 40,
    STATUS_OPERATION_NOT_PERMITTED: 30,
}

AUTH_STATE_UNTRUSTED_CONNECTION = 0
AUTH_STATE_SEED_REQUESTED = 1
AUTH_STATE_SEED_TRANSFERRED = 2
AUTH_STATE_KEY_TRANSFERRED = 3
AUTH_STATE_TRUSTED_CONNECTION = 4

AUTH_STATE__NAMES = {
    AUTH_STATE_UNTRUSTED_CONNECTION: 'Untrusted Connection',
    AUTH_STATE_SEED_REQUESTED: 'Seed was requested',
    AUTH_STATE_SEED_TRANSFERRED: 'Seed has been sent',
    AUTH_STATE_KEY_TRANSFERRED: 'Key has been sent',
    AUTH_STATE_TRUSTED_CONNECTION: 'Trusted Connection',
}

DEBUG = 10
INFO = 20
WARNING = 30
ERROR = 40


class RequestSidExistsError(Exception):
    pass


class ResponseSidExistsError(Exception):
    pass
