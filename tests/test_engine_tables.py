"""Tables the engine relies on: the constants of sp_common.const, written once, and its log texts."""
import glob
import logging
import os
import re

import pytest

from conftest import ROOT

from sp_common import const, engine, frame, names, pure_json


def test_the_constants_of_const_are_written_nowhere_else():
    """Every module of both sides takes the values of sp_common.const from it; none declares one of its own."""
    public = {name for name in vars(const) if name.isupper()}
    copies = []
    for path in glob.glob(os.path.join(ROOT, 'sp_*', '*.py')) + glob.glob(os.path.join(ROOT, 'boards', '*', '*.py')):
        if path.endswith(os.path.join('sp_common', 'const.py')):
            continue
        with open(path) as f:
            for name in re.findall(r'^_?([A-Z][A-Z_]+) = (?:const\()?\d', f.read(), re.M):
                if name in public:
                    copies.append((os.path.relpath(path, ROOT), name))
    assert len(public) > 30 and not copies


def test_the_engine_starts_with_the_services_of_const():
    eng = engine.Engine(is_client=False)
    assert eng._requests == names.SID_RESPONSE_DICT


def test_every_event_named_in_the_code_has_a_log_text():
    """Events are names in .note(...) and .drop(...) calls; logtext holds their words."""
    from sp_common import logtext
    named = set()
    for path in glob.glob(os.path.join(ROOT, 'sp_*', '*.py')):
        for line in open(path):
            if '.note(' in line or '.drop(' in line:
                call = line.split('.note(' if '.note(' in line else '.drop(')[1]
                named.update(re.findall(r"'([a-z0-9_]+)'", re.sub(r"\['\w+'\]", '', call)))   # not msg['data_id']
    assert {'crc_errors', 'cannot_send', 'stale', 'unsolicited'} <= named
    assert named <= set(logtext.TEXTS)
    moves = {wire for ends in engine._WIRE_MOVES.values() for wire in ends}   # Engine.move() notes them
    assert moves == {'original', 'v2', 'v2_macs', 'refused'} and moves <= set(logtext.TEXTS)
    assert set(names.COUNTERS) - {'rx_messages', 'tx_messages', 'framing_errors', 'oversized'} <= set(logtext.TEXTS)


def test_the_wire_moves_only_as_its_table_says():
    """One state, moved by Engine.move(): a refused wire runs no timer, and no move leaves a settled wire for v2."""
    client = engine.Engine(is_client=True, session_v2='required', clock=lambda: 0)
    client.connection_made()
    assert client.wire == 'negotiating' and client.session is None and client.deadline_ms() == const.NEGOTIATE_MS
    client.settle_original()
    assert client.wire == 'refused' and client.session is None and not client.ready()
    assert client.deadline_ms() is None
    for wire in (client, engine.Engine(is_client=False, session_v2=False)):
        with pytest.raises(ValueError):
            wire.move('v2')


def test_the_trace_guard_matches_the_status_levels():
    """Engine._trace skips a message line below INFO for an okay status and below WARNING for any other:
    the levels of names.STATUS_LOG_LVL must stay at or above those bounds."""
    assert names.STATUS_LOG_LVL[const.STATUS_OKAY] >= const.INFO
    assert all(level >= const.WARNING for status, level in names.STATUS_LOG_LVL.items() if status != const.STATUS_OKAY)


@pytest.mark.parametrize('level, status, logged', [
    (logging.INFO, const.STATUS_OKAY, True),
    (logging.WARNING, const.STATUS_OKAY, False),
    (logging.WARNING, const.STATUS_SERVICE_OR_DATA_UNKNOWN, True),
    (logging.ERROR, const.STATUS_AUTH_REQUIRED, False),
])
def test_a_message_line_is_logged_exactly_when_its_status_level_is_enabled(caplog, level, status, logged):
    """The engine skips building a message's log lines only where no log would take them."""
    log = logging.getLogger('socket_protocol.level-test')
    sender = engine.Engine(is_client=True, session_v2=False, log=log, clock=lambda: 0)
    caplog.set_level(level, logger=log.name)
    sender.send_msg(const.SID_EXECUTE_REQUEST, 0, 'x', status)
    lines = [r for r in caplog.records if 'TX ->' in r.getMessage()]
    assert bool(lines) == logged, caplog.text


def test_peer_text_can_neither_break_a_log_line_nor_turn_it_around(caplog):
    """Control characters, and the Unicode separators, direction marks and overrides a log viewer honours,
    reach the log escaped."""
    log = logging.getLogger('socket_protocol.forgery-test')
    receiver = engine.Engine(is_client=False, session_v2=False, log=log, clock=lambda: 0)
    receiver.connection_made()
    caplog.set_level(logging.INFO, logger=log.name)
    forged = 'a\nb\u2028CRITICAL granted\u2029\u202egnp.exe\u2066\u200f\ufeff\x1b'
    receiver.feed(frame(pure_json.encode(const.SID_EXECUTE_REQUEST, 0, 0, forged)))
    lines = [r.getMessage() for r in caplog.records if 'RX <-' in r.getMessage()]
    assert lines and all(not any(ch in line for ch in forged if ch not in 'abCRITICAL grantedgnp.exe')
                         for line in lines), lines
    assert '\\u2028CRITICAL granted\\u2029\\u202egnp.exe\\u2066\\u200f\\ufeff\\x1b' in lines[0]
