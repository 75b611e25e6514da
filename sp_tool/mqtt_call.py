"""sp call mqtt://HOST:PORT/BOARD ...: one request through a broker and `sp gateway`, its failures named as for a link."""
from __future__ import annotations

from typing import Any, Dict

from sp_common.names import response_sid

from . import mqtt_wire as wire
from .call import STATUS_EXITS, data_id
from .errors import EXIT_REFUSED, EXIT_STATUS, EXIT_TIMEOUT, CommandError

# a board's statuses as on a link (sp_tool.call), and the gateway's own verdicts
EXIT_CODES = dict(STATUS_EXITS)
EXIT_CODES.update({wire.STATUS_BOARD_OFFLINE: EXIT_REFUSED, wire.STATUS_TIMEOUT: EXIT_TIMEOUT})


def call_through_broker(url: str, service: str, did_text: str, data: Any, timeout: float) -> Dict[str, Any]:
    """{"service_id", "data_id", "status", "status_name", "data"} of the board's answer."""
    from .mqtt_client import BoardClient
    try:
        sid = wire.caller_service(service)   # the gateway's own rule: refused here, before anything is sent
    except ValueError as err:
        raise CommandError(str(err)) from None
    did, _ = data_id(sid, did_text)
    if not isinstance(did, int):
        raise CommandError('through a broker the data id is a number or a demo name, not %r' % did_text)
    try:
        with BoardClient(url, connect_timeout=min(timeout, 10.0)) as client:
            answer = client.request(sid, did, data, timeout)
    except ValueError as err:   # (a bad URL, quoted)
        raise CommandError('%s (mqtt://HOST:PORT/BOARD)' % err) from None
    except ConnectionError as err:
        raise CommandError(str(err), EXIT_REFUSED) from None
    except TimeoutError as err:
        raise CommandError('%s (is sp gateway running for it?)' % err, EXIT_TIMEOUT) from None
    return dict({'service_id': response_sid(sid), 'data_id': did}, **answer)


def verdict(answer: Dict[str, Any], url: str) -> CommandError:
    """The error an answer with a status other than okay stands for."""
    status = answer['status']
    said = ''   # the gateway's words on its own verdicts; what a board sent is the answer's data, printed apart
    if status in wire.GATEWAY_STATUS_NAMES and status != wire.STATUS_BOARD_RESERVED:
        said = ' (%s)' % answer['data']
    return CommandError('%s answered: %s%s' % (wire.shown(url), answer['status_name'], said),
                        EXIT_CODES.get(status, EXIT_STATUS))
