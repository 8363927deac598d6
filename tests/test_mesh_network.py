"""The multi-hop 802.15.4 mesh (iotsim.mesh.network): one hop worked by hand with always-on radios and with
ContikiMAC, idle listening in closed form, conservation of frames and of radio time per role, hidden
terminals, queues, orphans, the relays' burden and determinism."""

import numpy as np
import pytest

from iotsim.mesh import network as mn
from iotsim.mesh import phy, routing
from iotsim.mesh.csma import MacSettings

US = 1e-6
ROOT, ORPHAN = routing.ROOT, routing.ORPHAN
AIR60 = float(phy.frame_airtime_s(60))
ACK_AIR = float(phy.frame_airtime_s(phy.ACK_PSDU_OCTETS))
ALWAYS_ON = mn.MeshSettings(rdc=None, fading=False)  # static links: outcomes worked by hand


def line(n_relays: int, spacing_dbm: float = -60.0, far_dbm: float = -110.0) -> tuple[np.ndarray, np.ndarray]:
    """Nodes 0..n on a line, each hearing only its neighbours; the last is the border router."""
    m = n_relays + 2
    power = np.full((m, m), far_dbm)
    for i in range(m - 1):
        power[i, i + 1] = power[i + 1, i] = spacing_dbm
    np.fill_diagonal(power, 0.0)
    parent = np.append(np.arange(1, m), ROOT)
    return power, parent


def test_one_hop_always_on_worked_by_hand():
    """As iotsim.mesh.csma by hand: k backoffs of 320 us, CCA 128 us, turnaround 192 us, the frame, turnaround,
    the 11-octet acknowledgement: the border router has it when its acknowledgement ends."""
    power, parent = line(0)
    seed = 5
    k = int(np.random.default_rng(seed).random() * 8)  # the backoff's draw: 0..2^macMinBE - 1 periods
    r = mn.simulate_mesh(power, parent, [0], [0.25], 60, 1.0, np.random.default_rng(seed), ALWAYS_ON)
    assert r.fate.tolist() == [mn.Hop.DELIVERED]
    expected = 0.25 + k * 320 * US + 128 * US + 192 * US + AIR60 + 192 * US + 352 * US
    assert r.delivered_s[0] == pytest.approx(expected, abs=1e-12)
    assert r.hop_end_s.tolist() == [pytest.approx(expected, abs=1e-12)] and r.hop_copies.tolist() == [1]
    assert r.tx_s[0, 0] == pytest.approx(AIR60) and r.tx_s[1, 1] == pytest.approx(ACK_AIR)
    # always-on radios listen whenever they do not transmit
    np.testing.assert_allclose(r.radio_s(), [1.0, 1.0])


@pytest.mark.parametrize("psdu, ifs_us", [(15, 192), (60, 640)])
def test_always_on_back_to_back_frames_keep_the_interframe_spacing(psdu, ifs_us):
    """Two frames of one node ready together: the second's CSMA/CA starts the interframe spacing (SIFS up to
    18 octets, LIFS above: IEEE 802.15.4-2006 7.5.1.3) after the first's acknowledgement, so with the same
    draws it is delivered exactly that much later than with the spacing switched off."""
    from iotsim.mesh.csma import MacSettings

    power, parent = line(0)
    runs = [mn.simulate_mesh(power, parent, [0, 0], [0.25, 0.25], psdu, 1.0, np.random.default_rng(9),
                             mn.MeshSettings(rdc=None, fading=False, mac=MacSettings(ifs=ifs)))
            for ifs in (True, False)]
    on, off = runs
    assert on.fate.tolist() == off.fate.tolist() == [mn.Hop.DELIVERED] * 2
    assert on.delivered_s[0] == off.delivered_s[0]
    assert on.delivered_s[1] - off.delivered_s[1] == pytest.approx(ifs_us * US, abs=1e-12)
    assert any("interframe spacing (SIFS 12 / LIFS 40" in n for n in on.notes)
    assert any("no interframe spacing" in n for n in off.notes)


def test_one_hop_through_a_duty_cycled_relay_worked_by_hand():
    """Node 0 strobes its frame to the sleeping relay 1 (ContikiMAC, phase unknown): copies of 2.112 ms,
    0.4 ms apart, until a channel check of the relay overlaps one; the relay listens, takes the next whole copy
    and acknowledges it; then it sends the frame to the always-on border router, which takes the first copy."""
    power, parent = line(1, spacing_dbm=-50.0)
    rdc = mn.ContikiMac(phase_lock=False)
    settings = mn.MeshSettings(rdc=rdc, fading=False)
    seed, ready = 3, 0.010
    phases = np.array([0.0, 0.050, 0.0])
    draws = np.random.default_rng(seed)
    k = int(draws.random() * 8)  # node 0's backoff: 0..2^macMinBE - 1 periods
    draws.random()  # the relay's reception of the copy
    k2 = int(draws.random() * 8)  # the relay's backoff: it has the frame as its acknowledgement ends, before node 0
    #                               has heard that acknowledgement (the next draw)
    r = mn.simulate_mesh(power, parent, [0], [ready], 60, 1.0, np.random.default_rng(seed), settings, phases)

    s0 = ready + k * 320 * US + 128 * US + 192 * US  # first copy
    starts = s0 + np.arange(60) * (AIR60 + rdc.inter_packet_s)
    detect = None
    for w in 0.050 + np.arange(8) * rdc.cycle_s:  # the relay's channel checks
        for u in (w, w + rdc.cca_check_s + rdc.cca_sleep_s):
            if np.any((starts < u + rdc.cca_check_s) & (starts + AIR60 > u)):
                detect = u + rdc.cca_check_s
                break
        if detect is not None:
            break
    received = int(np.flatnonzero(starts >= detect)[0])
    e = starts[received] + AIR60
    hop1_end = e + 192 * US + 352 * US
    assert r.hop_copies.tolist() == [received + 1, 1]
    assert r.hop_end_s[0] == pytest.approx(hop1_end, abs=1e-12)
    delivered = hop1_end + k2 * 320 * US + 128 * US + 192 * US + AIR60 + 192 * US + 352 * US
    assert r.fate.tolist() == [mn.Hop.DELIVERED] and r.delivered_s[0] == pytest.approx(delivered, abs=1e-12)
    assert r.hops.tolist() == [2] and r.forwarded.tolist() == [0, 1, 0]

    idle = rdc.idle_check_s(1.0)
    # node 0: its copies; CCA, turnaround, the gaps between copies and the wait for the acknowledgement
    assert r.tx_s[0].tolist() == pytest.approx([(received + 1) * AIR60, 0, 0])
    assert r.rx_s[0].tolist() == pytest.approx([(128 + 192 + 544) * US + received * rdc.inter_packet_s, 0, idle])
    # the relay: listening from its wake-up to its acknowledgement, then forwarding (CCA, turnaround, the wait)
    assert r.tx_s[1].tolist() == pytest.approx([0, AIR60 + ACK_AIR, 0])
    assert r.rx_s[1].tolist() == pytest.approx([0, (e + 192 * US - detect) + (128 + 192 + 544) * US, idle])


def test_idle_listening_is_the_channel_checks_in_closed_form():
    power, parent = line(3)
    rdc = mn.ContikiMac()
    r = mn.simulate_mesh(power, parent, np.zeros(0, int), np.zeros(0), 60, 3600.0, np.random.default_rng(1),
                         mn.MeshSettings(rdc=rdc))
    # 8 checks a second, 2 CCAs of 1/8192 s each: 1.953 ms of listening a second
    assert rdc.idle_check_s(3600.0) == pytest.approx(3600 * 8 * 2 / 8192)
    np.testing.assert_allclose(r.rx_s[:4], [[0, 0, rdc.idle_check_s(3600.0)]] * 4)
    assert not r.tx_s.any() and r.rx_s[4, 2] == 3600.0 and r.always_on.tolist() == [False] * 4 + [True]


def grid_mesh(rows=3, cols=4, spacing_m=12.0):
    """A grid of nodes with the border router at one corner, log-distance path loss."""
    xy = np.array([(c * spacing_m, r_ * spacing_m) for r_ in range(rows) for c in range(cols)], dtype=float)
    xy = np.vstack([xy, [-spacing_m, 0.0]])
    d = np.linalg.norm(xy[:, None] - xy[None], axis=2)
    np.fill_diagonal(d, 1.0)
    power = 0.0 - (40.0 + 30.0 * np.log10(d))
    np.fill_diagonal(power, 0.0)
    m = xy.shape[0]
    always_on = np.arange(m) == m - 1
    etx = routing.link_etx(power, 60, fading=True)
    etx[~mn.wakes_receiver(power, mn.MeshSettings(), always_on)] = np.inf
    tree = routing.dodag(routing.link_graph(etx), [m - 1])
    return power, tree


def test_routes_avoid_links_too_weak_to_wake_a_sleeping_receiver():
    """-80 dBm is decodable (sensitivity -85 dBm) but below the -75 dBm CCA threshold: a duty-cycled node never
    wakes for it, so routing may not use it into such a node; into an always-on border router it may."""
    power = np.array([[0.0, -80.0, -80.0], [-80.0, 0.0, -60.0], [-80.0, -60.0, 0.0]])
    ok = mn.wakes_receiver(power, mn.MeshSettings(), np.array([False, False, True]))
    assert not ok[0, 1] and ok[0, 2] and ok[2, 1] and ok[1, 2]
    assert mn.wakes_receiver(power, mn.MeshSettings(rdc=None), [False] * 3).all()


@pytest.mark.parametrize("rdc", [None, mn.ContikiMac(), mn.ContikiMac(phase_lock=False)])
def test_frames_and_radio_time_are_conserved(rdc):
    power, tree = grid_mesh()
    m = power.shape[0]
    rng = np.random.default_rng(7)
    n = 300
    node = rng.integers(0, m - 1, n)
    ready = np.sort(rng.uniform(0, 250, n))
    r = mn.simulate_mesh(power, tree.parent, node, ready, 60, 300.0, np.random.default_rng(8), mn.MeshSettings(rdc=rdc))
    counts = np.bincount(r.fate, minlength=len(mn.Hop))
    # strobes without phase lock hold the channel for up to a cycle: some channel access failures
    assert counts.sum() == n and counts[mn.Hop.DELIVERED] > 0.8 * n
    delivered = r.fate == mn.Hop.DELIVERED
    # every hop follows the tree; a delivered frame took its origin's path, hop by hop
    assert np.all(r.hop_receiver == tree.parent[r.hop_sender])
    np.testing.assert_array_equal(np.bincount(r.hop_frame, minlength=n), r.hops)
    np.testing.assert_array_equal(r.hops[delivered], tree.hops[node[delivered]])
    # a frame's next hop begins after the last one reached its sender, at the node that received it
    order = np.lexsort((r.hop_end_s, r.hop_frame))
    same = r.hop_frame[order][1:] == r.hop_frame[order][:-1]
    assert np.all(r.hop_start_s[order][1:][same] >= r.hop_end_s[order][:-1][same])
    assert np.all(r.hop_sender[order][1:][same] == r.hop_receiver[order][:-1][same])
    assert np.all(r.hop_end_s > r.hop_start_s)
    # losses carry their node; delivered frames none
    assert np.all(r.lost_at[delivered] == -1) and np.all(r.lost_at[~delivered & (r.fate != mn.Hop.PENDING)] >= 0)
    # each forwarded frame counted once, at the relay that passed it on
    relay_hops = node[r.hop_frame] != r.hop_sender
    np.testing.assert_array_equal(np.bincount(r.hop_sender[relay_hops], minlength=m), r.forwarded)
    # radio time: every transmission charged once, to the node and role that made it
    np.testing.assert_allclose(r.tx_s[:, 0], r.transmissions[:, 0] * AIR60)
    np.testing.assert_allclose(r.tx_s[:, 1], r.transmissions[:, 1] * AIR60 + r.acks * ACK_AIR)
    assert r.acks.sum() >= len(r.hop_frame) and not r.tx_s[:, 2].any()
    # the per-frame share of the origins' radio time adds up to their role "own"
    assert r.own_tx_s.sum() == pytest.approx(r.tx_s[:, 0].sum())
    assert r.own_rx_s.sum() == pytest.approx(r.rx_s[:, 0].sum())
    assert np.all(r.own_tx_s[delivered] >= AIR60 - 1e-12)
    assert np.all(r.radio_s() <= 300.0 + 1e-9)


def test_hidden_terminals_collide_more():
    """Two senders to one border router: hearing each other, CSMA/CA keeps them apart; hidden from each other,
    their frames overlap at the router."""
    def run(between_dbm):
        power = np.array([[0.0, between_dbm, -60.0], [between_dbm, 0.0, -60.0], [-60.0, -60.0, 0.0]])
        rng = np.random.default_rng(4)
        ready = np.sort(rng.uniform(0, 60, 3000))
        node = rng.integers(0, 2, 3000)
        return mn.simulate_mesh(power, [2, 2, ROOT], node, ready, 100, 70.0, np.random.default_rng(5), ALWAYS_ON)

    seen, hidden = run(-60.0), run(-120.0)
    assert hidden.collisions.sum() > 3 * max(seen.collisions.sum(), 1)
    assert hidden.cca_busy.sum() < seen.cca_busy.sum()


def test_a_full_queue_drops_with_its_reason():
    power, parent = line(0)
    r = mn.simulate_mesh(power, parent, np.zeros(20, int), np.zeros(20), 60, 10.0, np.random.default_rng(1), ALWAYS_ON)
    assert (r.fate == mn.Hop.QUEUE_FULL).sum() == 20 - mn.QUEUE_FRAMES
    assert (r.fate == mn.Hop.DELIVERED).sum() == mn.QUEUE_FRAMES and set(r.lost_at[r.fate == mn.Hop.QUEUE_FULL]) == {0}


def test_an_orphan_loses_its_frames_for_want_of_a_route():
    power, parent = line(1)
    parent[0] = ORPHAN
    r = mn.simulate_mesh(power, parent, [0, 0, 1], [1.0, 2.0, 3.0], 60, 10.0, np.random.default_rng(1), ALWAYS_ON)
    assert r.fate.tolist() == [mn.Hop.NO_ROUTE, mn.Hop.NO_ROUTE, mn.Hop.DELIVERED]
    assert r.lost_at.tolist() == [0, 0, -1] and mn.Hop.NO_ROUTE.reason == "no_route"


def test_relays_near_the_border_router_carry_everyone():
    power, parent = line(2)
    rng = np.random.default_rng(2)
    node = rng.integers(0, 3, 300)
    ready = np.sort(rng.uniform(0, 500, 300))
    r = mn.simulate_mesh(power, parent, node, ready, 100, 600.0, np.random.default_rng(3), mn.MeshSettings())
    ok = r.fate == mn.Hop.DELIVERED
    assert ok.mean() > 0.98  # a few channel access failures where a strobe to a node holds its own CCA busy
    assert set(r.fate[~ok]) <= {mn.Hop.CHANNEL_ACCESS, mn.Hop.NO_ACK}
    # node 1 passes on node 0's frames that got past it, node 2 those of nodes 0 and 1
    assert r.forwarded.tolist() == [0, ((node == 0) & (r.hops >= 2)).sum(),
                                    ((node == 0) & (r.hops >= 3)).sum() + ((node == 1) & (r.hops >= 2)).sum(), 0]
    # the leaf sends no acknowledgements and forwards nothing; the relays pay for the others' frames
    assert r.tx_s[0, 1] == 0 < r.tx_s[1, 1] and r.tx_s[2, 1] > 0
    assert min(r.radio_s()[1], r.radio_s()[2]) > r.radio_s()[0]
    # into the always-on border router the first copy gets through; a duty-cycled relay is strobed until it wakes
    to_root = r.hop_receiver == 3
    assert np.mean(r.hop_copies[to_root]) < 1.1 < 2 < np.mean(r.hop_copies[~to_root])


def test_duty_cycling_trades_latency_for_listening():
    power, parent = line(2)
    rng = np.random.default_rng(6)
    node = rng.integers(0, 3, 200)
    ready = np.sort(rng.uniform(0, 500, 200))
    on = mn.simulate_mesh(power, parent, node, ready, 60, 600.0, np.random.default_rng(1), ALWAYS_ON)
    dc = mn.simulate_mesh(power, parent, node, ready, 60, 600.0, np.random.default_rng(1), mn.MeshSettings())
    assert (on.fate == 0).mean() > 0.97 and (dc.fate == 0).mean() > 0.97  # links fade: a few frames are lost
    assert dc.radio_s()[:3].sum() < 0.02 * on.radio_s()[:3].sum()
    assert np.nanmean(dc.delivered_s - ready) > 5 * np.nanmean(on.delivered_s - ready)
    # phase lock shortens the strobes
    nolock = mn.simulate_mesh(power, parent, node, ready, 60, 600.0, np.random.default_rng(1),
                              mn.MeshSettings(rdc=mn.ContikiMac(phase_lock=False)))
    assert dc.transmissions.sum() < 0.7 * nolock.transmissions.sum()


def test_same_seed_same_result():
    power, tree = grid_mesh()
    rng = np.random.default_rng(1)
    node, ready = rng.integers(0, 12, 200), np.sort(rng.uniform(0, 100, 200))
    a, b = (mn.simulate_mesh(power, tree.parent, node, ready, 80, 120.0, np.random.default_rng(9)) for _ in range(2))
    for field in ("fate", "delivered_s", "hop_end_s", "tx_s", "rx_s", "transmissions"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_bad_inputs_are_refused():
    power, parent = line(0)
    with pytest.raises(ValueError, match="square"):
        mn.simulate_mesh(power[:, :1], parent, [0], [0.0], 60, 1.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="parent"):
        mn.simulate_mesh(power, [5, ROOT], [0], [0.0], 60, 1.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="frame_node"):
        mn.simulate_mesh(power, parent, [2], [0.0], 60, 1.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="frame_ready_s"):
        mn.simulate_mesh(power, parent, [0], [np.nan], 60, 1.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="one time per node"):
        mn.simulate_mesh(power, parent, [0], [0.0], 60, 1.0, np.random.default_rng(0), death_s=[np.inf])
    with pytest.raises(ValueError, match="reroute"):
        mn.simulate_mesh(power, parent, [0], [0.0], 60, 1.0, np.random.default_rng(0), death_s=[np.inf, 0.5],
                         reroute=lambda alive: [7, ROOT])
    with pytest.raises(ValueError, match="PSDU"):
        mn.simulate_mesh(power, parent, [0], [0.0], 128, 1.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="turnaround"):
        mn.ContikiMac(inter_packet_s=100e-6)
    with pytest.raises(ValueError):
        mn.MeshSettings(mac=MacSettings(max_be=9))


def diamond():
    """Leaf 0 reaches the border router 3 through relay 1 (strong links) or relay 2 (weaker ones)."""
    power = np.full((4, 4), -120.0)
    for a, b, dbm in ((0, 1, -55.0), (1, 3, -55.0), (0, 2, -72.0), (2, 3, -72.0), (1, 2, -60.0)):
        power[a, b] = power[b, a] = dbm
    np.fill_diagonal(power, 0.0)
    always_on = np.array([False, False, False, True])
    etx = routing.link_etx(power, 60, fading=True)
    etx[~mn.wakes_receiver(power, mn.MeshSettings(), always_on)] = np.inf
    return power, routing.link_graph(etx)


def test_a_dead_relays_children_reattach_to_their_next_best_parent():
    power, graph = diamond()
    tree = routing.dodag(graph, [3])
    assert tree.parent.tolist() == [1, 3, 3, ROOT]
    ready = np.arange(1.0, 200.0, 2.0)
    node = np.zeros(ready.size, dtype=int)
    death = np.array([np.inf, 100.0, np.inf, np.inf])

    def reroute(alive):
        return routing.dodag(graph, [3], alive).parent

    r = mn.simulate_mesh(power, tree.parent, node, ready, 60, 220.0, np.random.default_rng(3), mn.MeshSettings(),
                         death_s=death, reroute=reroute)
    first_hop = {int(f): int(rcv) for f, s_, rcv in zip(r.hop_frame, r.hop_sender, r.hop_receiver) if s_ == 0}
    before, after = ready < 100.0, ready > 100.5
    assert all(first_hop[f] == 1 for f in np.flatnonzero(before & (r.fate == 0)))
    assert all(first_hop[f] == 2 for f in np.flatnonzero(after) if f in first_hop)
    assert (r.fate[after] == mn.Hop.DELIVERED).mean() > 0.95
    # what the relay held when it died is lost with it; it spent no radio time after
    assert set(r.fate[~after & (r.fate != 0)]) <= {mn.Hop.NODE_DEAD, mn.Hop.NO_ACK, mn.Hop.CHANNEL_ACCESS}
    assert r.rx_s[1, 2] == pytest.approx(mn.ContikiMac().idle_check_s(100.0))

    # without rerouting the leaf keeps strobing its dead parent
    stuck = mn.simulate_mesh(power, tree.parent, node, ready, 60, 220.0, np.random.default_rng(3), mn.MeshSettings(),
                             death_s=death)
    assert (stuck.fate[after] == mn.Hop.NO_ACK).all() and set(stuck.lost_at[after]) == {0}


def test_an_orphaned_subtree_loses_its_frames_until_the_end():
    power, parent = line(1)  # 0 -> 1 -> border router 2

    def reroute(alive):
        graph = routing.link_graph(routing.link_etx(power, 60))
        return routing.dodag(graph, [2], alive).parent

    ready = np.arange(1.0, 50.0, 1.0)
    r = mn.simulate_mesh(power, parent, np.zeros(ready.size, int), ready, 60, 60.0, np.random.default_rng(1),
                         ALWAYS_ON, death_s=[np.inf, 20.0, np.inf], reroute=reroute)
    assert (r.fate[ready > 20.5] == mn.Hop.NO_ROUTE).all() and set(r.lost_at[ready > 20.5]) == {0}
    assert (r.fate[ready < 19.9] == mn.Hop.DELIVERED).all()
