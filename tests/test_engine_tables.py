"""Tables the engine relies on: the constants it inlines (a board then never loads sp_common.const) and its log texts."""
import glob
import os
import re

import pytest

from conftest import ROOT

from sp_common import api, calls, const, engine, handshake, names, session


@pytest.mark.parametrize('module', [api, calls, engine, handshake, session])
def test_inlined_constants_are_those_of_const(module):
    inlined = {name[1:]: getattr(module, name) for name in dir(module)
               if name.startswith('_') and name[1:] in vars(const)}
    assert inlined   # each module inlines some
    assert inlined == {name: getattr(const, name) for name in inlined}


def test_the_engine_starts_with_the_services_of_const():
    eng = engine.Engine(is_client=False)
    assert eng._requests == const.SID_RESPONSE_DICT
    assert eng._responses == {resp: req for req, resp in const.SID_RESPONSE_DICT.items()}


def test_every_event_named_in_the_code_has_a_log_text():
    """Events are names in .note(...) and .drop(...) calls; logtext holds their words."""
    from sp_common import logtext
    named = set()
    for path in glob.glob(os.path.join(ROOT, 'sp_*', '*.py')):
        for line in open(path):
            if '.note(' in line or '.drop(' in line:
                call = line.split('.note(' if '.note(' in line else '.drop(')[1]
                named.update(re.findall(r"'([a-z0-9_]+)'", re.sub(r"\['\w+'\]", '', call)))   # not msg['data_id']
    assert {'crc_errors', 'original', 'cannot_send', 'stale', 'unsolicited'} <= named
    assert named <= set(logtext.TEXTS)
    assert set(names.COUNTERS) - {'rx_messages', 'tx_messages', 'framing_errors', 'oversized'} <= set(logtext.TEXTS)
