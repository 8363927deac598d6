"""smart_city.traffic: Greenshields' speed-flow relation, the daily demand shape, the workload contract
(determinism, a background that does not depend on the event mask), the incident's signature where a queue
forms and its absence where demand stays below the bottleneck, and the smart-city scenario end to end."""

import numpy as np
import pytest

from iotsim.signals import get_workload
from iotsim.signals.traffic import daily_demand_share, greenshields_speed_kmh


def test_greenshields_speed_flow_relation():
    """v = v_f (1 + sqrt(1 - q / q_c)) / 2 is the uncongested branch of v = v_f (1 - k / k_j), q = k v, with
    q_c = v_f k_j / 4: free-flow speed at no flow, half of it at capacity, and density and flow consistent."""
    v_f, q_c = 50.0, 1800.0
    assert greenshields_speed_kmh(0.0, v_f, q_c) == pytest.approx(v_f)
    assert greenshields_speed_kmh(q_c, v_f, q_c) == pytest.approx(v_f / 2)
    k_j = 4 * q_c / v_f
    q = np.linspace(1.0, q_c, 50)
    v = greenshields_speed_kmh(q, v_f, q_c)
    k = q / v
    np.testing.assert_allclose(v, v_f * (1 - k / k_j), rtol=1e-12)
    assert np.all(np.diff(v) < 0)


def test_daily_demand_has_two_peaks_and_a_night_trough():
    h = np.linspace(0, 24, 24 * 60, endpoint=False)
    d = daily_demand_share(h)
    assert d.max() <= 1.0 and d[(h >= 2) & (h <= 4)].max() < 0.1
    assert 7.5 <= h[np.argmax(np.where(h < 12, d, 0))] <= 8.5
    assert 17.0 <= h[np.argmax(np.where(h > 12, d, 0))] <= 18.0


def test_windows_are_deterministic_and_the_background_ignores_the_mask():
    wl = get_workload("smart_city.traffic")
    n = 500
    none = np.zeros((n, 30), bool)
    late = none.copy()
    late[:, 20:] = True
    a = wl.generate(np.random.default_rng(3), none)
    b = wl.generate(np.random.default_rng(3), late)
    assert np.array_equal(a, wl.generate(np.random.default_rng(3), none))
    np.testing.assert_array_equal(a[:, :20], b[:, :20])  # before the incident nothing differs
    assert a.shape == (n, 30, 2) and a.dtype == np.float32
    assert np.all(a[..., 0] >= 0) and np.all((a[..., 1] == 0) == (a[..., 0] == 0))  # no vehicle, no speed


def test_an_incident_shows_where_a_queue_forms_and_hides_where_it_does_not():
    wl = get_workload("smart_city.traffic")
    n = 4000
    full = np.ones((n, 30), bool)
    # busy hours, nothing left of the road: every incident window queues
    busy = get_workload("smart_city.traffic", incident_capacity_share=(0.0, 0.0), queue_arrival_min=(1, 1))
    x = busy.generate(np.random.default_rng(5), full)
    calm = wl.generate(np.random.default_rng(5), np.zeros((n, 30), bool))
    # the blocked road passes nothing once the queue is there (it arrives after the first minute)
    assert x[..., 0][:, 1:].max() == 0 and calm[..., 0].mean() > 3
    # a minor blockage never queues when demand stays below what is left of the road
    minor = get_workload("smart_city.traffic", incident_capacity_share=(1.0, 1.0), rubbernecking_speed_share=(1.0, 1.0))
    y = minor.generate(np.random.default_rng(5), full)
    np.testing.assert_allclose(y[..., 0].mean(), calm[..., 0].mean(), rtol=0.02)
    np.testing.assert_allclose(y[..., 1].mean(), calm[..., 1].mean(), rtol=0.02)


def test_the_smart_city_scenario_runs_on_the_mesh(tmp_path):
    from iotsim.engine import run_scenario
    from iotsim.results import summary_table, write_results
    from iotsim.scenario import load_scenario

    scenario = load_scenario("scenarios/smart_city.yaml")
    scenario = scenario.model_copy(update={"duration": 6 * 3600.0})
    result = run_scenario(scenario)
    summary = summary_table(result).set_index("policy")
    assert list(summary.index) == ["cloud_offload", "on_device", "cascade"]
    assert (summary.packets_offered == summary.packets_delivered + summary.packets_lost).all()
    # the raw half hours go up as two fragments each; the model sends far fewer bytes
    assert summary.loc["on_device", "bytes_uplinked_per_node_day"] < 0.5 * summary.loc["cloud_offload",
                                                                                         "bytes_uplinked_per_node_day"]
    assert summary.frames_forwarded.min() > 0 and summary.relays.min() > 0
    out = write_results(result, tmp_path / "city", plots=False, report=False, packets=False)
    assert (out / "mesh.csv").is_file()
