"""Traffic and links a plan draws: heartbeat phases, Poisson heartbeats, the free-space floor of path loss."""

import numpy as np
import pytest

from iotsim.engine import run_scenario
from iotsim.engine.messages import policy_messages
from iotsim.policies import MessageKind, make_policy
from iotsim.radio import lora, propagation
from iotsim.results import nodes_table, packets_table, summary_table
from iotsim.scenario import load_scenario_text
from iotsim.validation.checks import ALOHA_SCENARIO

FARM = """\
name: hb
seed: 11
duration: 3d
fleet:
  - group: soil
    count: 400
    device: nrf52840_sx1262_2xaa
    placement: {{kind: uniform, area_m: [2000, 1000]}}
    workload: {{signal: farm.soil_climate, sample_period: 5min, window: 12, events_per_day: 0}}
    model: farm_soil_int8
    heartbeat: 6h
    heartbeat_arrivals: {arrivals}
network:
  lorawan: {{sf: auto}}
  propagation: {{pl_d0_db: 98.91, d0_m: 1000, exponent: 3.522, shadowing_sigma_db: 8.0}}
  gateways:
    - {{id: gw1, position_m: [400, 500]}}
    - {{id: gw2, position_m: [1600, 500]}}
policies: [on_device]
simulation: {{background_pool: 500}}
outputs: {{plots: false, report: none}}
"""


@pytest.fixture(scope="module")
def periodic():
    return run_scenario(load_scenario_text(FARM.format(arrivals="periodic")))


def test_heartbeat_phase_is_independent_of_the_window_phase(periodic):
    """Heartbeats spread over the whole heartbeat period, not only its first window period.

    With the heartbeat phase taken from the window phase (the old behaviour), every heartbeat fell
    in the first hour (one window) of each 6 h period; drawn independently, 1/6 of them do.
    """
    plan = periodic.plans[0]
    node, t = plan.heartbeats()
    assert node.size > 4000
    share_first_hour = np.mean((t % (6 * 3600)) < 3600)
    assert share_first_hour == pytest.approx(1 / 6, abs=0.03)
    # and per node: the offset of heartbeats from the node's windows is spread, not fixed
    offset = (t - plan.phase_s[node]) % 3600
    assert np.std(offset / 3600) == pytest.approx(np.sqrt(1 / 12), abs=0.03)
    # every node keeps one heartbeat every 6 h from its phase within the run
    assert (t < periodic.scenario.duration).all() and (t >= 0).all()
    counts = np.bincount(node, minlength=plan.n_nodes)
    assert set(counts.tolist()) <= {12, 13}


def test_poisson_heartbeats():
    result = run_scenario(load_scenario_text(FARM.format(arrivals="poisson")))
    node, t = result.plans[0].heartbeats()
    duration = result.scenario.duration
    expected = 400 * duration / (6 * 3600)
    assert node.size == pytest.approx(expected, rel=4 / np.sqrt(expected))
    gaps = np.diff(t)[np.diff(node) == 0]
    assert np.std(gaps) / np.mean(gaps) == pytest.approx(1.0, abs=0.05)  # exponential: CV 1
    msgs = policy_messages(result.plans, make_policy("on_device"))
    hb = msgs.kind == MessageKind.HEARTBEAT
    np.testing.assert_array_equal(np.sort(msgs.ready_s[hb]), np.sort(t))


def test_path_loss_never_below_free_space(periodic):
    """The farm's Hata fit undershoots free-space loss near a gateway; the plan clamps to free space."""
    plan = periodic.plans[0]
    gw = np.array([[400, 500], [1600, 500]], float)
    d = np.maximum(np.hypot(*(plan.positions_m[:, None, :] - gw[None]).transpose(2, 0, 1)), 1.0)
    hata = propagation.path_loss_db(d, pl_d0_db=98.91, d0_m=1000, exponent=3.522)
    fspl = propagation.free_space_path_loss_db(d, 868.1e6)
    assert (hata < fspl).mean() > 0.05  # the defect is real for this model
    # rx power = tx - max(model, free space) + shadowing, and never above tx - free space + shadowing
    rng_free = 14.0 - np.maximum(hata, fspl)
    shadow = plan.rx_power_dbm - rng_free
    np.testing.assert_allclose(plan.rx_power_dbm, 14.0 - np.maximum(hata, fspl) + shadow)
    assert (plan.rx_power_dbm - shadow <= 14.0 - fspl + 1e-9).all()
    # free-space loss at 1 km, 868.1 MHz: 20 log10(4 pi 1000 f / c) = 91.21 dB (Friis)
    assert propagation.free_space_path_loss_db(1000.0, 868.1e6) == pytest.approx(91.21, abs=0.01)


def test_offered_on_air_and_dropped_before_air_are_counted_apart():
    text = FARM.format(arrivals="periodic").replace(
        "lorawan: {sf: auto}", "lorawan: {sf: 12, duty_cycle_mode: drop}").replace(
        "policies: [on_device]", "policies: [cloud_offload]").replace("sample_period: 5min", "sample_period: 5s")
    result = run_scenario(load_scenario_text(text))
    s = summary_table(result).iloc[0]
    assert s.packets_lost_duty_cycle > 0
    assert s.packets_on_air == s.packets_offered - s.packets_lost_duty_cycle
    packets = packets_table(result)
    on_air = packets[~packets.loss_reason.isin(["duty_cycle", "pending_at_end"])]
    assert len(on_air) == s.packets_on_air
    assert (packets[packets.loss_reason == "duty_cycle"].airtime_s == 0).all()
    nodes = nodes_table(result)
    assert nodes.airtime_s.sum() == pytest.approx(on_air.airtime_s.sum(), rel=1e-12)




@pytest.mark.parametrize("target_g", [0.05, 0.1, 0.25, 0.5, 0.75, 1.0])
def test_pure_aloha_delivery_from_a_scenario(target_g):
    """Poisson heartbeats on one channel and SF, unlimited demodulator paths, no capture: the share of
    frames delivered is e^(-2G), G = offered airtime per second (pure ALOHA, Abramson 1970)."""
    airtime = lora.time_on_air_s(4 + 13, 7)
    count = int(round(target_g / airtime * 900))  # each node: one heartbeat per 15 min on average
    result = run_scenario(load_scenario_text(ALOHA_SCENARIO.format(count=count)))
    s = summary_table(result).iloc[0]
    packets = packets_table(result)
    on_air = packets[packets.loss_reason != "pending_at_end"]
    g = on_air.airtime_s.sum() / result.scenario.duration
    assert g == pytest.approx(target_g, rel=0.1)
    assert s.packets_lost_below_sensitivity == 0 and s.packets_lost_demodulators_busy == 0
    assert s.packet_delivery_ratio == pytest.approx(np.exp(-2 * g), abs=0.02)
