"""Who owns which board name on a broker that several gateways share.

A board's retained status names its owner (MQTT 5 user property `gateway`),
and every gateway says whether it is alive on <prefix>/gateway/<id>/status
(retained, `offline` as its last will). A gateway takes a name only when no
other live gateway holds it; two that take one at the same moment both see
both claims in the broker's order, and the one whose claim came first gives
way to the later one, which the broker keeps as the retained status. (Once
a gateway has seen its own claim come back, it ignores the gateways whose
claims came before it: they give way.)
"""
from __future__ import annotations

import logging
from typing import Dict, Optional, Set

from . import mqtt_wire as wire

log = logging.getLogger('sp.gateway')
OWNER_PROPERTY = 'gateway'
MAX_GATEWAYS = 1024   # live gateway ids kept: ids published by anyone on the broker cost no memory beyond
REASON_PROPERTY = 'reason'


class Claims:
    """What the broker says of board owners and live gateways, and what follows for this gateway's boards."""

    def __init__(self, own_id: str) -> None:
        self.own_id = own_id
        self.owners: Dict[str, str] = {}     # board -> the gateway its retained status names
        self.alive: Set[str] = set()         # the ids of the gateways whose status says online
        self._full = False
        self._echoed: Dict[str, bool] = {}   # a board this gateway claimed -> its own claim came back
        self._earlier: Dict[str, Set[str]] = {}  # and the gateways whose claims came before that

    def claimed(self, board: str) -> None:
        self._echoed[board] = False
        self._earlier[board] = set()

    def released(self, board: str) -> None:
        self._echoed.pop(board, None)
        self._earlier.pop(board, None)

    def heard_status(self, board: str, user_properties: Dict[str, str]) -> Optional[str]:
        """Notes a board's status; for a board this gateway claimed, the gateway it must give way to, if any."""
        owner = user_properties.get(OWNER_PROPERTY)
        if owner is None:
            return None
        self.owners[board] = owner
        if board not in self._echoed:
            return None
        if owner == self.own_id:
            self._echoed[board] = True
        elif not self._echoed[board]:
            self._earlier[board].add(owner)
        elif owner not in self._earlier[board]:
            return owner
        return None

    def heard_gateway(self, gateway_id: str, payload: bytes) -> None:
        """Notes a gateway's liveness: only live ones are kept, at most MAX_GATEWAYS of them."""
        if payload != wire.ONLINE.encode():
            self.alive.discard(gateway_id)
        elif len(self.alive) < MAX_GATEWAYS:
            self.alive.add(gateway_id)
        elif gateway_id not in self.alive and not self._full:
            self._full = True     # (logged once: a flood of ids is not a flood of lines)
            log.warning('more than %d gateways say they are online: the ones beyond are taken for offline',
                        MAX_GATEWAYS)

    def holder(self, board: str) -> Optional[str]:
        """The other live gateway that holds board, or None: the name is free for this one."""
        owner = self.owners.get(board)
        if owner is None or owner == self.own_id or owner not in self.alive:
            return None
        return owner
