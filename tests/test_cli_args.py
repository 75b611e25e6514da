"""What the sp command refuses before it starts anything: numbers out of range, DATA_JSON no board takes, a host
name no resolver takes. Each is one line naming it and its exit code (with --json one object), never a traceback,
a hang or an error of something else later."""
import json
import subprocess
import sys

import pytest

from conftest import ROOT, free_port
from sp_tool import errors
from test_cli import fails, sp

NOWHERE = 'tcp://127.0.0.1:9'   # refuses at once: a number that got through would be an exit 4, not 2


def nested(levels):
    return '[' * levels + ']' * levels


def usage_error(result, *words):
    """exit 2, the words on stderr, and with --json on the command line one object saying the same on stdout."""
    fails(result, errors.EXIT_USAGE, *words)
    if '--json' in result.args:
        answer = json.loads(result.stdout)
        assert answer['exit'] == errors.EXIT_USAGE and all(word in answer['error'] for word in words), answer


@pytest.mark.parametrize('value', ['nan', 'inf', '-1', '0', '1e10', '86401', 'x'])
def test_a_timeout_that_is_no_time_is_a_wrong_command_line(value):
    """nan waited for good on a silent port, inf and 1e10 overflowed the socket's timeout, 0 said 'Operation now in
    progress', each a traceback or the wrong exit code."""
    usage_error(sp('call', NOWHERE, 'read', 'asc_time', '--timeout', value, '--json', timeout=10),
                "argument --timeout: seconds above 0, at most 86400, not '%s'" % value)


@pytest.mark.parametrize('words', [
    ['deploy', 'unix', '--port', '/dev/null', '--timeout', 'nan'],
    ['gateway', '--broker', 'mqtt://127.0.0.1:1', '--timeout', 'inf', 'k=%s' % NOWHERE],
], ids=['deploy', 'gateway'])
def test_every_timeout_is_checked(words):
    usage_error(sp(*words, timeout=10), 'argument --timeout: seconds above 0')


@pytest.mark.parametrize('words, option, value, allowed', [
    (['call', '/dev/null', 'read', '0'], '--baud', '99999999999', 'from 1 to 2147483647'),
    (['monitor', '/dev/null'], '--baud', '0', 'from 1 to 2147483647'),
    (['board'], '--tcp-port', '70000', 'from 0 to 65535'),
    (['gateway', '--broker', 'mqtt://127.0.0.1:1', 'k=%s' % NOWHERE], '--workers', '0', 'from 1 to 1024'),
    (['gateway', '--broker', 'mqtt://127.0.0.1:1', 'k=%s' % NOWHERE], '--workers', '-1', 'from 1 to 1024'),
    (['gateway', '--broker', 'mqtt://127.0.0.1:1', 'k=%s' % NOWHERE], '--max-payload', '0', 'from 1 to 268435455'),
], ids=['call-baud', 'monitor-baud', 'board-tcp-port', 'workers-0', 'workers-negative', 'max-payload'])
def test_a_number_out_of_range_is_a_wrong_command_line(words, option, value, allowed):
    """Each went on to a traceback (pyserial's or bind's OverflowError) or to a gateway whose every call failed."""
    usage_error(sp(*words + [option, value], timeout=10),
                'argument %s: a whole number %s, not %r' % (option, allowed, value))


@pytest.mark.parametrize('data, why', [('NaN', 'NaN is not JSON'), ('[1, -Infinity]', '-Infinity is not JSON'),
                                       ('1e999', '1e999 is out of range')])
def test_data_no_codec_sends_is_a_wrong_command_line(data, why):
    usage_error(sp('call', NOWHERE, 'execute', 'echo', data, '--json'), 'DATA_JSON is not JSON (%s)' % why)


def test_data_nested_past_python_s_recursion_limit_is_a_wrong_command_line():
    usage_error(sp('call', NOWHERE, 'execute', 'echo', nested(50000), '--json'),
                'DATA_JSON nests deeper than a board takes (31 levels)')


@pytest.mark.parametrize('codec', ['pure_json', 'struct_json'])
def test_data_as_deep_as_a_board_takes_is_echoed_one_level_more_refused(codec, deepest=31):
    """A level more, and the server dropped the request unanswered: the call timed out."""
    server = subprocess.Popen([sys.executable, '-m', 'sp_tool', 'serve', '--tcp', '127.0.0.1:0', '--codec', codec],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        where = server.stdout.readline().split()[-1]
        r = sp('call', where, 'execute', 'echo', nested(deepest), '--codec', codec, '--timeout', '3')
        assert (r.returncode, r.stdout) == (0, 'okay: %s\n' % json.dumps(json.loads(nested(deepest)))), r.stderr
        fails(sp('call', where, 'execute', 'echo', nested(deepest + 1), '--codec', codec, '--timeout', '3'),
              errors.EXIT_USAGE, 'DATA_JSON nests deeper than a board takes')
    finally:
        server.terminate()
        server.communicate(timeout=10)


def test_a_data_id_int_cannot_read_is_a_wrong_command_line():
    usage_error(sp('call', NOWHERE, 'read', '9' * 5000, '--json'),
                'the data id %s... is not a number a message carries' % ('9' * 40))


@pytest.mark.parametrize('words', [('read', 'mything'), ('read', '-1'), ('70000', '0')])
def test_ids_the_codec_cannot_carry_are_a_wrong_command_line(words):
    """struct_json carries ids of 16 bits: a name or a number beyond is named before any link is opened (it was a
    traceback once the virtual board served)."""
    usage_error(sp('call', '--codec', 'struct_json', *words), 'struct_json cannot carry service')


def test_a_host_to_listen_on_that_is_no_text_is_named():
    """A host that is not UTF-8 (a byte from the shell): bind()'s TypeError was a traceback."""
    fails(sp('serve', '--tcp', b'\xff'.decode(errors='surrogateescape') + ':%d' % free_port()), errors.EXIT_PORT,
          'invalid host name')


@pytest.mark.parametrize('host', ['board..local', 'a' * 64 + '.local'])
def test_a_host_name_no_resolver_takes_cannot_be_connected_to(host):
    """An empty or over-long label: the IDNA codec's UnicodeError was a traceback."""
    where = '%s:%d' % (host, free_port())
    r = sp('call', 'tcp://' + where, 'read', 'asc_time', '--json')
    fails(r, errors.EXIT_PORT, 'cannot connect to %s: invalid host name' % where)
    assert json.loads(r.stdout)['exit'] == errors.EXIT_PORT
    fails(sp('monitor', 'tcp://' + where), errors.EXIT_PORT, 'cannot connect to %s: invalid host name' % where)


def test_a_gateway_for_two_boards_of_one_name_is_a_wrong_command_line():
    fails(sp('gateway', '--broker', 'mqtt://127.0.0.1:1', 'k=%s' % NOWHERE, 'k=tcp://127.0.0.1:10', timeout=10),
          errors.EXIT_USAGE, 'two boards with the same name')
