"""IEEE 802.15.4 mesh: the PHY against the standard and ns-3's published values; the routing tree against an
independent shortest-path computation, worked small cases, and repair when a relay dies."""

import math

import numpy as np
import pytest

from iotsim.mesh import phy
from iotsim.mesh.routing import MAX_LINK_ETX, ORPHAN, ROOT, dodag, link_etx, link_graph, repair


@pytest.mark.parametrize("snr_db, ber, tol", [
    (5, 7.38e-14, 0.01e-14), (2, 5.13e-7, 0.01e-7), (-1, 0.00114, 0.00001), (-4, 0.0391, 0.0001),
    (-7, 0.175, 0.001),
])
def test_bit_error_rate_equals_ns3_lr_wpan_values(snr_db, ber, tol):
    """ns-3 lr-wpan-error-model-test.cc: the IEEE 802.15.4-2006 E.4.1.7 expression at five SNRs."""
    assert abs(float(phy.bit_error_rate(10 ** (snr_db / 10))) - ber) <= tol


def test_frame_timing_worked_by_hand():
    """32 us an octet; 6 octets of synchronisation and PHY header: a full 127-octet frame 4.256 ms, an ACK
    (5 octets) 352 us; macAckWaitDuration 54 symbols = 864 us."""
    assert phy.frame_airtime_s(127) == pytest.approx(133 * 32e-6, rel=1e-12)
    assert phy.frame_airtime_s(phy.ACK_PSDU_OCTETS) == pytest.approx(352e-6, rel=1e-12)
    assert phy.ACK_WAIT_S == pytest.approx(864e-6, rel=1e-12)
    assert phy.UNIT_BACKOFF_S == pytest.approx(320e-6) and phy.TURNAROUND_S == pytest.approx(192e-6)
    with pytest.raises(ValueError, match="127"):
        phy.frame_airtime_s(128)


def test_sensitivity_is_the_one_percent_error_point():
    """At the stated sensitivity a 20-octet PSDU fails 1 % of the time (the standard's definition); 3 dB
    better it almost never fails, 3 dB worse mostly; a longer frame fails more at the same power."""
    for s in (-85.0, -100.0):
        assert float(phy.link_success(s, 20, s)) == pytest.approx(0.99, abs=1e-9)
        assert float(phy.link_success(s + 3, 20, s)) > 0.9999
        assert float(phy.link_success(s - 3, 20, s)) < 0.5
    assert float(phy.link_success(-85.0, 127, -85.0)) < float(phy.link_success(-85.0, 20, -85.0))


def _bellman_ford(etx: np.ndarray, roots: list[int]) -> np.ndarray:
    """Least path ETX to any root, by plain relaxation (independent of networkx)."""
    n = etx.shape[0]
    w = np.where(etx <= MAX_LINK_ETX, etx, np.inf)
    d = np.full(n, np.inf)
    d[roots] = 0.0
    for _ in range(n):
        d = np.minimum(d, (w + d[None, :]).min(axis=1))
    return d


def _grid(side: int, spacing_m: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    xy = np.array([(i * spacing_m, j * spacing_m) for i in range(side) for j in range(side)], dtype=float)
    d = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    loss = 40.0 + 30.0 * np.log10(np.maximum(d, 1.0)) + rng.normal(0, 3, d.shape)  # illustrative path loss
    return 0.0 - loss  # 0 dBm TX power


def test_the_tree_is_the_etx_shortest_path_tree():
    power = _grid(6, 25.0)
    etx = link_etx(power, 60)
    roots = [0, 35]
    tree = dodag(link_graph(etx), roots)
    best = _bellman_ford(etx, roots)
    np.testing.assert_allclose(tree.cost, best, rtol=1e-12)
    for i in range(36):
        if i in roots:
            assert tree.parent[i] == ROOT and tree.cost[i] == 0
        elif np.isfinite(best[i]):
            p = tree.parent[i]
            assert tree.cost[i] == pytest.approx(tree.cost[p] + etx[i, p], rel=1e-12)  # cost through its parent
            assert etx[i, p] <= MAX_LINK_ETX and tree.hops[i] == tree.hops[p] + 1 and tree.root[i] == tree.root[p]
    assert (tree.hops.max() >= 3) and tree.orphans.size == 0


def test_a_line_worked_by_hand_prefers_two_good_hops_to_one_poor_one():
    """a - b - root with perfect links (ETX 1 each) and a direct a - root link that delivers 40 % of data
    frames (ETX 2.5 with perfect ACKs): a goes through b (cost 2 < 2.5); below 50 % delivery of b's links
    (ETX above 2 each) it goes direct."""
    a, b, root = 0, 1, 2
    etx = np.full((3, 3), np.inf)
    etx[a, b] = etx[b, a] = etx[b, root] = etx[root, b] = 1.0
    etx[a, root] = etx[root, a] = 2.5
    tree = dodag(link_graph(etx), [root])
    assert tree.parent.tolist() == [b, root, ROOT] and tree.cost[a] == 2.0 and tree.hops[a] == 2
    etx[a, b] = etx[b, root] = 1.3
    tree = dodag(link_graph(etx), [root])
    assert tree.parent[a] == root and tree.cost[a] == 2.5
    assert tree.descendants().tolist() == [0, 0, 2]


def test_links_beyond_the_mrhof_limit_are_not_used():
    etx = np.full((2, 2), np.inf)
    etx[0, 1] = etx[1, 0] = MAX_LINK_ETX * 1.01
    assert dodag(link_graph(etx), [1]).parent[0] == ORPHAN


def test_a_dead_relay_moves_its_subtree_or_orphans_it():
    """root - r - {a, b}, and b also hears c - root: when r dies, b reattaches through c, a is orphaned."""
    root, r, a, b, c = range(5)
    etx = np.full((5, 5), np.inf)
    for x, y, e in ((root, r, 1.0), (r, a, 1.0), (r, b, 1.0), (b, c, 1.5), (c, root, 1.5)):
        etx[x, y] = etx[y, x] = e
    g = link_graph(etx)
    tree = dodag(g, [root])
    assert tree.parent[a] == r and tree.parent[b] == r and tree.descendants()[r] == 2
    after = repair(g, [root], [r])
    assert after.parent[b] == c and after.cost[b] == pytest.approx(3.0)
    assert after.orphans.tolist() == sorted([a, r]) and after.path(a) == [] and after.path(b) == [b, c, root]


def test_etx_combines_both_directions():
    """ETX = 1 / (P(data arrives) P(ack returns)): an asymmetric link costs what its weaker direction costs."""
    s = -85.0
    p = np.array([[0.0, s + 1.0], [s - 0.5, 0.0]])  # node 1 hears node 0 better than 0 hears 1
    etx = link_etx(p, 20, s)
    data01 = float(phy.link_success(s + 1.0, 20, s))
    ack10 = float(phy.link_success(s - 0.5, phy.ACK_PSDU_OCTETS, s))
    assert etx[0, 1] == pytest.approx(1.0 / (data01 * ack10), rel=1e-12)
    assert math.isinf(etx[0, 0])
