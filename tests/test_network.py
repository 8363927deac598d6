"""The SimPy cloud queue and the topology (gateway reception: test_reception.py)."""

import numpy as np
import pytest

from iotsim.network.cloud import simulate_cloud, simulate_cloud_with_resource


@pytest.mark.parametrize("servers", [1, 2, 4, 70])
@pytest.mark.parametrize("load", [0.3, 0.95, 1.5])
def test_fast_cloud_queue_equals_simpy_resource(servers, load):
    rng = np.random.default_rng(servers * 10 + int(load * 10))
    service = 0.01
    n = 3000
    rate = load * servers / service
    arrivals = np.cumsum(rng.exponential(1 / rate, n))
    arrivals[100:110] = arrivals[100]  # simultaneous arrivals
    rng.shuffle(arrivals)  # order of the input must not matter
    fast = simulate_cloud(arrivals, service, servers, engine="simpy")
    ref = simulate_cloud_with_resource(arrivals, service, servers)
    np.testing.assert_allclose(fast.start_s, ref.start_s, rtol=0, atol=1e-9)
    np.testing.assert_allclose(fast.done_s, ref.done_s, rtol=0, atol=1e-9)
    assert fast.events == n
    assert (fast.start_s >= arrivals - 1e-12).all()
    # the recurrence runs use (C up to 64 servers, Python above) gives the SimPy processes' bytes
    rec = simulate_cloud(arrivals, service, servers)
    np.testing.assert_array_equal(rec.start_s, fast.start_s)
    np.testing.assert_array_equal(rec.done_s, fast.done_s)
    assert rec.events == n


def test_cloud_engines_are_named():
    with pytest.raises(ValueError, match="engine"):
        simulate_cloud(np.zeros(3), 0.01, 1, engine="fast")
    assert simulate_cloud(np.zeros(0), 0.01, 2).start_s.shape == (0,)


def test_single_server_queue_is_lindley_recursion():
    arrivals = np.array([0.0, 0.001, 0.002, 0.5, 0.505])
    run = simulate_cloud(arrivals, 0.01, 1)
    np.testing.assert_allclose(run.start_s, [0.0, 0.01, 0.02, 0.5, 0.51])
    np.testing.assert_allclose(run.done_s, [0.01, 0.02, 0.03, 0.51, 0.52])


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
