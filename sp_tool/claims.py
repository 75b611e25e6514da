"""Who owns which board name on a broker that several gateways share.

A board's retained status names its owner (MQTT 5 user property `gateway`)
and the owner's claim (user property `claim`: a token new with each claim,
the same on every status of that claim); every gateway says whether it is
alive on <prefix>/gateway/<id>/status (retained, `offline` as its last
will). A gateway takes a name only when no other live gateway holds it. Two
that take one at the same moment both see both claims in the broker's
order, and the later claim wins: a claimant gives way to a claim it first
hears after its own came back, and ignores the statuses of the claims it
heard before (their gateways give way to it). Since the broker orders the
claims, exactly one claimant is left: the last. A status that a gateway
published before it read the later claim (late) may reach the broker after
it: the owner says its own status again whenever it ignores another
gateway's, so the retained status names the owner; and a gateway takes no
late status of its own for a claim it holds no more.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Dict, Optional, Set, Tuple

from . import mqtt_wire as wire

log = logging.getLogger('sp.gateway')
OWNER_PROPERTY = 'gateway'
CLAIM_PROPERTY = 'claim'
MAX_GATEWAYS = 1024   # live gateway ids kept, and other claims heard while one's own is on its way: ids and claims
MAX_ID = 256          # published by anyone on the broker cost no memory beyond those, of ids and claims this long
REASON_PROPERTY = 'reason'
GIVE_WAY = 'give way'   # a later claim took the board
RESTATE = 'restate'     # a status of an earlier claim came last: the owner's own status must be the retained one


def short_enough(text: str) -> bool:
    """Whether a gateway's id or claim is short enough to keep (MAX_ID): a longer one from the broker is no
    gateway's, as Gateway takes no such id of its own."""
    return len(text) <= MAX_ID


@dataclass
class _Claim:
    token: str
    echoed: bool = False    # it came back from the broker
    earlier: Set[Tuple[str, Optional[str]]] = field(default_factory=set)   # (gateway, claim) heard before that


class Claims:
    """What the broker says of board owners and live gateways, and what follows for this gateway's boards."""

    def __init__(self, own_id: str) -> None:
        self.own_id = own_id
        self.owners: Dict[str, str] = {}     # board -> the gateway its retained status names
        self.alive: Set[str] = set()         # the ids of the gateways whose status says online
        self._full = False
        self._claims: Dict[str, _Claim] = {}     # the boards this gateway claimed

    def claimed(self, board: str) -> None:
        self._claims[board] = _Claim(os.urandom(4).hex())

    def released(self, board: str) -> None:
        self._claims.pop(board, None)

    def token(self, board: str) -> str:
        """The token of this gateway's claim of board, which each of its statuses carries."""
        return self._claims[board].token

    def heard_status(self, board: str, user_properties: Dict[str, str]) -> Optional[str]:
        """Notes a board's status; for a board this gateway claimed, GIVE_WAY (to owners[board]), RESTATE or None."""
        owner = user_properties.get(OWNER_PROPERTY)
        token = user_properties.get(CLAIM_PROPERTY)
        if owner is None or not (short_enough(owner) and short_enough(token or '')):
            return None   # (an id or claim longer than any gateway's is no gateway's: it names no owner)
        claim = self._claims.get(board)
        if owner == self.own_id:
            if claim is not None and token == claim.token:
                claim.echoed = True
                self.owners[board] = owner
            return None     # late, of a claim this gateway gave up: it names no owner
        self.owners[board] = owner
        if claim is None:
            return None
        if not claim.echoed:
            if len(claim.earlier) < MAX_GATEWAYS:
                claim.earlier.add((owner, token))   # (beyond: a flood, whose late statuses are given way to)
            return None
        return RESTATE if (owner, token) in claim.earlier else GIVE_WAY

    def heard_gateway(self, gateway_id: str, payload: bytes) -> None:
        """Notes a gateway's liveness: only live ones are kept, at most MAX_GATEWAYS of them."""
        if payload != wire.ONLINE.encode() or not short_enough(gateway_id):
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
