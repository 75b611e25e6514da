"""What call() raises where request() returns None or an error answer, and what add_service() raises.

The same causes as the sp command's exit codes: the request could not go out
(no connection, the wire not settled, with auto_auth no trust) in time; it went
out and no answer came in time; the peer answered with an error status. On
CPython NotConnected is also a ConnectionError and NoAnswer a TimeoutError;
MicroPython has neither (nor a class with two exception bases).
"""
import sys

from .const import STATUS_AUTH_REQUIRED, STATUS_OKAY



class ProtocolError(Exception):
    """Base of the errors call() raises."""


if sys.implementation.name == 'micropython':
    _Connection = _Timeout = ProtocolError
else:
    class _Connection(ProtocolError, ConnectionError):
        pass

    class _Timeout(ProtocolError, TimeoutError):
        pass


class NotConnected(_Connection):
    """The request could not go out within the timeout: no connection, or none ready (settled, trusted)."""


class NoAnswer(_Timeout):
    """The request went out; no answer came within the timeout."""


class ErrorAnswer(ProtocolError):
    """The peer answered with a status other than okay; answer is its message (a data_storage)."""

    def __init__(self, answer):
        status = repr(answer.get_status())   # a peer's number may run to thousands of digits: a line's worth is said
        super().__init__('the peer answered with status %s' % (
            status if len(status) <= 40 else '%s... (%d characters)' % (status[:40], len(status))))
        self.answer = answer
        self.status = answer.get_status()


class AuthRequired(ErrorAnswer):
    """The peer requires authentification first (STATUS_AUTH_REQUIRED)."""


def answer_data(sent, answer):
    """The data of an okay answer; else the error that says why there is none."""
    if not sent:
        raise NotConnected('the request could not go out in time')
    if answer is None:
        raise NoAnswer('no answer in time')
    status = answer.get_status()
    if status == STATUS_OKAY:
        return answer.get_data()
    raise (AuthRequired if status == STATUS_AUTH_REQUIRED else ErrorAnswer)(answer)


class RequestSidExistsError(Exception):
    """add_service(): the request sid is taken (socket_protocol's name)."""


class ResponseSidExistsError(Exception):
    """add_service(): the response sid is taken (socket_protocol's name)."""
