"""call()'s typed errors, decided once in sp_common.errors for every runtime."""
import sp_common.const as sp
from sp_common.engine import make_message
from sp_common.errors import AuthRequired, ErrorAnswer, NoAnswer, NotConnected, ProtocolError, answer_data


def raised(sent, answer):
    try:
        answer_data(sent, answer)
    except ProtocolError as err:
        return err
    return None


def test_an_okay_answer_gives_its_data():
    assert answer_data(True, make_message(11, 0, sp.STATUS_OKAY, [1, 'x'])) == [1, 'x']


def test_each_cause_has_its_error():
    assert isinstance(raised(False, None), NotConnected)
    assert isinstance(raised(True, None), NoAnswer)
    unknown = make_message(99, 0, sp.STATUS_SERVICE_OR_DATA_UNKNOWN, None)
    err = raised(True, unknown)
    assert type(err) is ErrorAnswer and err.status == sp.STATUS_SERVICE_OR_DATA_UNKNOWN and err.answer is unknown
    err = raised(True, make_message(11, 0, sp.STATUS_AUTH_REQUIRED, None))
    assert isinstance(err, AuthRequired) and isinstance(err, ErrorAnswer)


def test_an_error_answers_message_says_a_line_of_a_peers_long_number():
    """The status is the peer's number, of up to 4,300 digits: a program that logs the error logged them all."""
    status = 10 ** 4299
    err = raised(True, make_message(11, 0, status, None))
    assert err.status == status
    assert str(err) == 'the peer answered with status 1' + '0' * 39 + '... (4300 characters)'
    assert str(raised(True, make_message(11, 0, 7, None))) == 'the peer answered with status 7'
