"""Gateway reception (collisions, capture, sensitivity), the SimPy cloud queue and the topology."""

import numpy as np
import pytest

from iotsim.network.cloud import simulate_cloud, simulate_cloud_with_resource
from iotsim.network.reception import DELIVERED, LOST_BELOW_SENSITIVITY, LOST_COLLISION, resolve_receptions


@pytest.mark.parametrize("servers", [1, 2, 4])
@pytest.mark.parametrize("load", [0.3, 0.95, 1.5])
def test_fast_cloud_queue_equals_simpy_resource(servers, load):
    rng = np.random.default_rng(servers * 10 + int(load * 10))
    service = 0.01
    n = 3000
    rate = load * servers / service
    arrivals = np.cumsum(rng.exponential(1 / rate, n))
    arrivals[100:110] = arrivals[100]  # simultaneous arrivals
    rng.shuffle(arrivals)  # order of the input must not matter
    fast = simulate_cloud(arrivals, service, servers)
    ref = simulate_cloud_with_resource(arrivals, service, servers)
    np.testing.assert_allclose(fast.start_s, ref.start_s, rtol=0, atol=1e-9)
    np.testing.assert_allclose(fast.done_s, ref.done_s, rtol=0, atol=1e-9)
    assert fast.events == n
    assert (fast.start_s >= arrivals - 1e-12).all()


def test_single_server_queue_is_lindley_recursion():
    arrivals = np.array([0.0, 0.001, 0.002, 0.5, 0.505])
    run = simulate_cloud(arrivals, 0.01, 1)
    np.testing.assert_allclose(run.start_s, [0.0, 0.01, 0.02, 0.5, 0.51])
    np.testing.assert_allclose(run.done_s, [0.01, 0.02, 0.03, 0.51, 0.52])


def _resolve(start, air, ch, sf, power, sens=-120.0, capture=6.0):
    power = np.asarray(power, dtype=float)
    if power.ndim == 1:
        power = power[:, None]
    n = len(start)
    return resolve_receptions(np.asarray(start, float), np.asarray(air, float), np.asarray(ch), np.asarray(sf),
                              np.arange(n), power, np.full(n, sens), capture)


def test_overlapping_frames_of_equal_power_collide():
    r = _resolve([0.0, 0.05], [0.1, 0.1], [0, 0], [7, 7], [-100, -101])
    assert list(r.status) == [LOST_COLLISION, LOST_COLLISION]


def test_capture_effect_saves_the_stronger_frame():
    r = _resolve([0.0, 0.05], [0.1, 0.1], [0, 0], [7, 7], [-90, -100])
    assert list(r.status) == [DELIVERED, LOST_COLLISION]
    # exactly at the threshold the stronger one survives; just below it does not
    assert _resolve([0, 0.05], [0.1, 0.1], [0, 0], [7, 7], [-94, -100]).status[0] == DELIVERED
    assert _resolve([0, 0.05], [0.1, 0.1], [0, 0], [7, 7], [-94.01, -100]).status[0] == LOST_COLLISION


def test_orthogonal_sf_other_channel_and_disjoint_times_do_not_collide():
    assert list(_resolve([0, 0.05], [0.1, 0.1], [0, 0], [7, 8], [-100, -100]).status) == [0, 0]
    assert list(_resolve([0, 0.05], [0.1, 0.1], [0, 1], [7, 7], [-100, -100]).status) == [0, 0]
    # back to back: the second starts exactly when the first ends
    assert list(_resolve([0, 0.1], [0.1, 0.1], [0, 0], [7, 7], [-100, -100]).status) == [0, 0]


def test_long_frame_collides_with_a_later_short_one_beyond_its_neighbour():
    # frame 0 is long; frame 1 (no overlap with 2) and frame 2 both overlap frame 0
    r = _resolve([0.0, 0.1, 0.5], [1.0, 0.1, 0.1], [0, 0, 0], [7, 7, 7], [-100, -80, -100])
    assert list(r.status) == [LOST_COLLISION, DELIVERED, LOST_COLLISION]


def test_below_sensitivity_and_gateway_diversity():
    r = _resolve([0.0], [0.1], [0], [7], [-130.0])
    assert r.status[0] == LOST_BELOW_SENSITIVITY and r.gateway[0] == -1
    # collision at gateway 0, but gateway 1 hears frame 0 much stronger: delivered via gateway 1
    power = np.array([[-100.0, -90.0], [-100.0, -110.0]])
    r = _resolve([0.0, 0.05], [0.1, 0.1], [0, 0], [7, 7], power)
    assert list(r.status) == [DELIVERED, LOST_COLLISION]
    assert r.gateway[0] == 1 and r.gateways_decoding[0] == 1


def test_reception_is_vectorized_consistently_with_pairwise_rule():
    rng = np.random.default_rng(3)
    n = 400
    start = np.sort(rng.random(n) * 20)
    air = rng.uniform(0.05, 0.4, n)
    ch = rng.integers(0, 3, n)
    sf = rng.integers(7, 9, n)
    power = rng.uniform(-120, -90, (n, 2))
    r = _resolve(start, air, ch, sf, power, sens=-118.0)
    # brute force
    for i in range(n):
        ok_any = False
        for g in range(2):
            if power[i, g] < -118.0:
                continue
            ok = True
            for j in range(n):
                if j != i and ch[j] == ch[i] and sf[j] == sf[i] and start[j] < start[i] + air[i] \
                        and start[i] < start[j] + air[j] and power[i, g] - power[j, g] < 6.0:
                    ok = False
                    break
            ok_any |= ok
        assert (r.status[i] == DELIVERED) == ok_any, i


@pytest.mark.parametrize("block_elements", [1, 7, 1 << 22])
def test_reception_in_blocks_of_frames_matches_the_pairwise_rule(monkeypatch, block_elements):
    # nodes send several frames each; powers come from the node table; blocks as small as one frame
    from iotsim.network import reception

    monkeypatch.setattr(reception, "BLOCK_ELEMENTS", block_elements)
    rng = np.random.default_rng(5)
    n, n_nodes, n_gw, sens, capture = 300, 40, 3, -118.0, 6.0
    node = rng.integers(0, n_nodes, n)
    node_power = rng.uniform(-125, -95, (n_nodes, n_gw))
    start = rng.random(n) * 10
    air = rng.uniform(0.05, 0.4, n)
    ch = rng.integers(0, 2, n).astype(np.int8)
    sf = rng.integers(7, 9, n)
    r = resolve_receptions(start, air, ch, sf, node, node_power, np.full(n, sens), capture)
    power = node_power[node]
    for i in range(n):
        overlaps = [j for j in range(n) if j != i and ch[j] == ch[i] and sf[j] == sf[i]
                    and start[j] < start[i] + air[i] and start[i] < start[j] + air[j]]
        decoded = [g for g in range(n_gw) if power[i, g] >= sens
                   and all(power[i, g] - power[j, g] >= capture for j in overlaps)]
        if decoded:
            assert r.status[i] == DELIVERED, i
            assert r.gateway[i] == max(decoded, key=lambda g: power[i, g]), i
        else:
            expected = LOST_COLLISION if (power[i] >= sens).any() else LOST_BELOW_SENSITIVITY
            assert r.status[i] == expected and r.gateway[i] == -1, i
        assert r.gateways_decoding[i] == len(decoded), i


def test_topology_path_delay():
    from iotsim.network.topology import build_topology, path_to_cloud
    from iotsim.scenario.model import Network

    net = Network.model_validate({
        "gateways": [{"id": "a", "position_m": [0, 0]},
                     {"id": "b", "position_m": [1, 0], "backhaul": {"latency": "100ms", "bandwidth_bps": 1e6}}],
        "backhaul": {"latency": "40ms", "bandwidth_bps": 8e6},
    })
    g = build_topology(net)
    assert set(g.nodes) == {"a", "b", "network_server", "cloud"}
    pa, pb = path_to_cloud(g, "a"), path_to_cloud(g, "b")
    assert pa.delay_s(1000) == pytest.approx(0.04 + 8000 / 8e6)
    assert pb.delay_s(100) == pytest.approx(0.1 + 800 / 1e6)
