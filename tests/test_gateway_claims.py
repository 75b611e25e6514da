"""Who owns a board name when several gateways share a broker: the claim rule on any order the broker may give the
claims and statuses, and two real gateways on a real mosquitto racing for one name."""
import random
import threading

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import sp_cpython as sp
from conftest import wait_until
from sp_tool import mqtt_wire as wire
from sp_tool.claims import GIVE_WAY, RESTATE, Claims
from sp_tool.gateway import Gateway, parse_board
from sp_tool.mqtt_client import BoardClient
from test_gateway import WAIT, Inbox, host_board, user_properties
from tools.mosquitto import Mosquitto


@pytest.fixture
def broker(tmp_path):
    b = Mosquitto(str(tmp_path))
    yield b
    b.stop()


def status(claims, board='x'):
    """The user properties of a status that claims' gateway publishes for board."""
    return {'gateway': claims.own_id, 'claim': claims.token(board)}


def test_a_late_status_of_the_claimant_that_gave_way_makes_the_owner_say_its_own_again():
    """g1 claims, then g2; g1 publishes once more (its board's link dropped) before it reads g2's claim. g1 gives way
    and takes its own late status for no claim of its own (nor for a free name), g2 says its status again so the
    retained one names it, and a newcomer reading the retained status finds g2."""
    first, later = Claims('g1'), Claims('g2')
    for claims in (first, later):
        claims.heard_gateway('g1', b'online')
        claims.heard_gateway('g2', b'online')
        claims.claimed('x')
    late = dict(status(first), reason='connection lost')
    broker_order = [status(first), status(later), late]
    assert [first.heard_status('x', props) for props in broker_order] == [None, GIVE_WAY, None]
    first.released('x')
    assert [later.heard_status('x', props) for props in broker_order] == [None, None, RESTATE]
    assert first.heard_status('x', status(later)) is None and later.heard_status('x', status(later)) is None
    assert first.holder('x') == 'g2' and first.owners['x'] == 'g2'
    newcomer = Claims('g3')
    newcomer.heard_gateway('g2', b'online')
    newcomer.heard_status('x', status(later))
    assert newcomer.holder('x') == 'g2'
    newcomer.heard_gateway('g2', b'')     # the owner stopped: the name is free
    assert newcomer.holder('x') is None


def test_a_status_naming_an_owner_id_longer_than_any_names_no_owner():
    """A status that names a 60,000-character owner made the gateway give its board up (a 60 KB line at ERROR,
    and the board's link closed), then claim it back, as often as such statuses came: ids that long are taken
    for offline gateways, and such a status names no owner at all."""
    claims = Claims('g1')
    claims.heard_gateway('g1', b'online')
    claims.claimed('x')
    assert claims.heard_status('x', status(claims)) is None   # its own status echoed: the claim stands
    for forged in ({'gateway': 'X' * 60000, 'claim': '00000000'}, {'gateway': 'g2', 'claim': '0' * 60000}):
        assert claims.heard_status('x', forged) is None
    assert claims.owners['x'] == 'g1'


def test_gateways_racing_for_a_name_leave_exactly_one_owner_whatever_the_broker_order():
    """Gateways claim a name while they know of no live owner, publish more statuses while they hold it (board
    links come and go), and read the broker's one sequence of statuses each at its own pace. Whatever the
    interleaving, once all have read everything exactly one holds the name, the last status names it, and no
    other would claim it again."""
    for seed in range(300):
        rnd = random.Random(seed)
        gateways = [Claims('g%d' % i) for i in range(rnd.randint(2, 4))]
        for claims in gateways:
            for other in gateways:
                claims.heard_gateway(other.own_id, b'online')
        log, read, holds, updates = [], [0] * len(gateways), [False] * len(gateways), [3] * len(gateways)
        while True:
            moves = [('read', i) for i in range(len(gateways)) if read[i] < len(log)]
            moves += [('claim', i) for i, claims in enumerate(gateways)
                      if not holds[i] and claims.holder('x') is None]
            moves += [('update', i) for i in range(len(gateways)) if holds[i] and updates[i]]
            if not moves:
                break
            move, i = rnd.choice(moves)
            claims = gateways[i]
            if move == 'claim':
                claims.claimed('x')
                holds[i] = True
                log.append(status(claims))
            elif move == 'update':
                updates[i] -= 1
                log.append(status(claims))
            else:
                read[i] += 1
                verdict = claims.heard_status('x', log[read[i] - 1])
                if verdict == GIVE_WAY:
                    claims.released('x')
                    holds[i] = False
                elif verdict == RESTATE:
                    log.append(status(claims))
        assert holds.count(True) == 1, (seed, log)
        owner = gateways[holds.index(True)].own_id
        assert log[-1]['gateway'] == owner, (seed, log)
        assert all(claims.holder('x') == owner for claims in gateways if claims.own_id != owner), seed


def test_two_gateways_racing_for_a_name_on_a_broker_end_with_one_answering(broker):
    """B subscribes, then reads nothing for a while (a slow link); meanwhile A claims the name. B then claims it
    too, and A gives way. A status of A's claim comes once more (late, as when A's board link dropped before A read
    B's claim): B says its own again, and when another gateway comes online A does not claim the name back. A call
    runs on B's board alone."""
    board_a, board_b = host_board('a'), host_board('b')
    where = wire.parse_broker(broker.url)[0]
    a = Gateway(where, [parse_board('kit=' + board_a.target)], gateway_id='A')
    b = Gateway(where, [parse_board('kit=' + board_b.target)], gateway_id='B')
    watch = Inbox(broker, 'sp/kit/status')
    held, go = threading.Event(), threading.Event()
    subscribed = b.client.on_suback

    def slow(packet_id):    # B's sync marker is on its way: B reads it only after A's claim
        subscribed(packet_id)
        held.set()
        go.wait(WAIT)
    b.client.on_suback = slow

    def owners():
        return [user_properties(msg.properties).get('gateway') for t, msg in watch.messages if t == 'sp/kit/status']
    try:
        b.start()
        assert held.wait(WAIT)
        a.start()
        assert wait_until(lambda: a.links['kit'].online(), WAIT)
        watch.wait_payload('sp/kit/status', 'online')
        go.set()
        assert wait_until(lambda: a.owned == set() and b.owned == {'kit'}, WAIT), (a.owned, b.owned)
        last_of_a = [msg for t, msg in watch.messages if t == 'sp/kit/status'
                     and user_properties(msg.properties).get('gateway') == 'A'][-1]
        properties = Properties(PacketTypes.PUBLISH)
        properties.UserProperty = list(user_properties(last_of_a.properties).items())
        seen = len(owners())
        watch.client.publish('sp/kit/status', last_of_a.payload, 1, retain=True, properties=properties)
        watch.wait_for(lambda: owners()[seen + 1:] == ['B'])
        watch.client.publish('sp/gateway/C/status', b'online', 1)
        assert wait_until(lambda: 'C' in a.claims.alive, WAIT)
        assert a.owned == set() and b.owned == {'kit'}
        with BoardClient(broker.url, 'kit') as client:
            assert client.request('execute', 9, 'one call', timeout=WAIT) == wire.answer(sp.STATUS_OKAY, 'b')
        assert board_a.runs == [] and board_b.runs == ['one call']
    finally:
        go.set()
        watch.close()
        for gateway in (a, b):
            gateway.stop()
        for board in (board_a, board_b):
            board.close()


def test_an_owner_back_from_a_broker_blink_and_the_gateway_that_claimed_meanwhile_leave_one_answering(broker):
    """A owns kit; its broker link is cut (its will says it is offline) and B claims kit; A connects again and says
    its status again. The broker orders A's claim, made anew, after B's: B gives way, and A answers. With its old
    claim both gave way, and nobody answered for kit."""
    board_a, board_b = host_board('a'), host_board('b')
    where = wire.parse_broker(broker.url)[0]
    a = Gateway(where, [parse_board('kit=' + board_a.target)], gateway_id='A')
    b = Gateway(where, [parse_board('kit=' + board_b.target)], gateway_id='B')
    try:
        a.start()
        assert wait_until(lambda: a.owned == {'kit'} and a.links['kit'].online(), WAIT)
        b.start()
        assert wait_until(lambda: b.counters['refused'] == 1, WAIT)
        a._loop.call_soon_threadsafe(lambda: a.client._transport.abort())   # no DISCONNECT: the broker sends A's will
        assert wait_until(lambda: b.owned == {'kit'}, WAIT)
        assert wait_until(lambda: a.owned == {'kit'} and b.owned == set(), WAIT), (a.owned, b.owned)
        with BoardClient(broker.url, 'kit') as client:
            assert client.request('execute', 9, 'one call', timeout=WAIT) == wire.answer(sp.STATUS_OKAY, 'a')
        assert board_b.runs == []
    finally:
        for gateway in (a, b):
            gateway.stop()
        for board in (board_a, board_b):
            board.close()
