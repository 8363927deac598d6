"""The fleet's random draws are keyed so that what one part of a scenario draws never moves another's:
the network (how many gateways) does not change a node's signals and events, and the run's length does
not change its links. Comparisons of networks (the smart city on its mesh and on NB-IoT) and of run
lengths are then paired: the same nodes see the same events."""

import numpy as np
import pytest

from iotsim.engine.fleet import plan_group
from iotsim.engine.run import load_group_resources
from iotsim.link import make_link
from iotsim.scenario import load_scenario_text

SCENARIO = """\
name: draws
seed: 11
duration: {duration}
fleet:
  - group: soil
    count: 40
    device: nrf52840_sx1262_2xaa
    placement: {{kind: uniform, area_m: [3000, 2000]}}
    workload: {{signal: farm.soil_climate, sample_period: 5min, window: 12, events_per_day: 4}}
    model: farm_soil_int8
    heartbeat: 2h
network:
  technology: lorawan
  region: EU868
  lorawan: {{sf: auto}}
  propagation: {{pl_d0_db: 98.91, d0_m: 1000, exponent: 3.522, shadowing_sigma_db: 8.0}}
  gateways: [{gateways}]
policies: [on_device]
simulation: {{background_pool: 200}}
outputs: {{plots: false, report: none}}
"""
GATEWAYS = ["{id: gw0, position_m: [1500, 1000]}", "{id: gw1, position_m: [500, 500]}",
            "{id: gw2, position_m: [2500, 1500]}", "{id: gw3, position_m: [500, 1500]}"]


def plan(n_gateways: int, duration: str = "1d"):
    scenario = load_scenario_text(SCENARIO.format(duration=duration, gateways=", ".join(GATEWAYS[:n_gateways])))
    link = make_link(scenario.network)
    gw = np.array([g.position_m for g in scenario.network.gateways], dtype=np.float64)
    return plan_group(scenario, 0, 0, gw, load_group_resources(scenario, 0, {}), link)


@pytest.mark.parametrize("n_gateways", [2, 4])
def test_the_network_does_not_move_the_nodes_signals_or_events(n_gateways):
    one, more = plan(1), plan(n_gateways)
    for name in ("positions_m", "phase_s", "heartbeat_phase_s", "n_windows", "event_node", "event_onset_s",
                 "event_id"):
        np.testing.assert_array_equal(getattr(more, name), getattr(one, name), err_msg=name)
    for name in ("device_positive", "device_confidence", "cloud_positive"):
        np.testing.assert_array_equal(getattr(more.verdicts, name), getattr(one.verdicts, name), err_msg=name)
    assert one.event_onset_s.size > 20  # the comparison has events to compare
    # the first gateway's shadowing is the same draw whatever follows it; the others' differ from it
    np.testing.assert_array_equal(more.rx_power_dbm[:, 0], one.rx_power_dbm[:, 0])
    assert more.rx_power_dbm.shape == (40, n_gateways)


def test_the_runs_length_does_not_move_the_links():
    day, week = plan(3, "1d"), plan(3, "7d")
    np.testing.assert_array_equal(week.positions_m, day.positions_m)
    np.testing.assert_array_equal(week.rx_power_dbm, day.rx_power_dbm)
    np.testing.assert_array_equal(week.sf, day.sf)
    # shadowing is drawn: a node's budget to a gateway is not the path loss alone
    spread = day.rx_power_dbm - day.rx_power_dbm.mean(axis=0)
    assert spread.std() > 3.0
