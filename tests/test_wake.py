"""Event-driven sensing (workload.wake): a window wakes the node when its watched channel crosses the threshold,
judged on the generated samples themselves; only those windows are sampled, inferred and sent; the watching
draws its current all the time; the ledger charges exactly the windows that woke the node."""

import numpy as np
import pytest

from iotsim.energy.ledger import SLOT_INDEX
from iotsim.engine import run_scenario
from iotsim.errors import InputError
from iotsim.results import summary_table
from iotsim.scenario import load_scenario_text

RUN = """\
name: wake_small
seed: 4
duration: 2d
fleet:
  - group: lights
    count: 10
    device: nrf52840_bg96_traffic_18650
    placement: {kind: uniform, area_m: [200, 200]}
    workload: {signal: smart_city.traffic, events_per_day: 2%s}
    model: smart_city_traffic_int8
    heartbeat: 1h
network:
  technology: nbiot
  propagation: {pl_d0_db: 119.8, d0_m: 1000, exponent: 3.76, shadowing_sigma_db: 0}
  gateways:
    - {id: enb, position_m: [1000, 1000]}
policies: [cloud_offload, on_device]
outputs: {plots: false, report: none}
"""
WAKE = ", wake: {channel: speed, below: 15, monitor_current_ua: 5}"


def a_run(extra: str):
    return run_scenario(load_scenario_text(RUN % extra))


@pytest.fixture(scope="module")
def runs():
    return a_run(""), a_run(WAKE)


def test_windows_wake_the_node_on_their_own_samples(runs):
    _, woken = runs
    plan = woken.plans[0]
    trig = plan.triggered
    assert trig is not None and 0 < trig.mean() < 0.6
    # judged on the generated windows themselves: regenerate some and apply the threshold by hand
    # (event-free windows: the event windows' masks are kept only where an update needs them)
    rng = np.random.default_rng(0)
    some = np.setdiff1d(rng.choice(trig.size, 300, replace=False), plan.windows.fresh_flat)
    speed = plan.windows.samples(some)[:, :, plan.workload.channels.index("speed")]
    np.testing.assert_array_equal(trig[some], speed.min(axis=1) < 15)


def test_only_woken_windows_are_handled(runs):
    plain, woken = runs
    plan = woken.plans[0]
    for out in woken.outcomes:
        m = out.messages
        windows = m.window[m.window >= 0]
        assert windows.size and plan.triggered[windows].all()
    # cloud offload sends every woken window raw, and only those
    raw = woken.outcomes[0].messages.window
    assert raw.size == int(plan.triggered.sum()) - 0  # all windows end within the run here
    assert len(plain.outcomes[0].messages) > raw.size


def test_the_ledger_charges_the_woken_windows_and_the_watching(runs):
    plain, woken = runs
    plan = woken.plans[0]
    out = woken.outcomes[0]
    per_node = np.add.reduceat(plan.triggered.astype(int), plan.window_offset[:-1])
    sp = plan.sample_period_s
    mcu_per_window = plan.window_samples * min(plan.board.mcu.wake_time_s, sp)
    np.testing.assert_allclose(out.ledger.time_s[:, SLOT_INDEX[("mcu", "active")]], per_node * mcu_per_window,
                               rtol=1e-9)
    # the sensor's sleep slot draws its sleep current plus the 5 uA of watching, on its 3.0 V rail
    sleep_slot = SLOT_INDEX[("sensor", "sleep")]
    watts = lambda r: r.outcomes[0].energy_slots_j[:, sleep_slot] / r.outcomes[0].ledger.time_s[:, sleep_slot]  # noqa
    np.testing.assert_allclose(watts(woken) - watts(plain), 5e-6 * 3.0, rtol=1e-6)
    plain_sensor = plain.outcomes[0].energy_slots_j[:, SLOT_INDEX[("sensor", "active")]].sum()
    assert out.energy_slots_j[:, SLOT_INDEX[("sensor", "active")]].sum() < plain_sensor


def test_events_are_still_seen_where_a_window_wakes(runs):
    _, woken = runs
    s = summary_table(woken).set_index("policy")
    assert s.loc["cloud_offload", "recall"] > 0.5  # incidents slow the traffic: their windows wake the node


def test_bad_wake_settings_are_refused():
    with pytest.raises(InputError, match="threshold"):
        load_scenario_text(RUN % ", wake: {channel: speed, monitor_current_ua: 5}")
    with pytest.raises(InputError, match="not a channel"):
        a_run(", wake: {channel: sped, below: 15, monitor_current_ua: 5}")
