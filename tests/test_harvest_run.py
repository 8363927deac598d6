"""Solar-harvesting groups in whole runs (iotsim.engine.harvest): every node's store conserves energy per day, the
node is off exactly when its store is empty, frames it would have sent then are lost with the reason no_energy
and not charged, the ledger agrees with what the store gave, and a larger panel never means more downtime."""

import numpy as np
import pytest

from iotsim.energy.ledger import SLOT_INDEX
from iotsim.engine import run_scenario
from iotsim.errors import InputError
from iotsim.network.fate import Fate
from iotsim.results import nodes_table, packets_table, summary_table
from iotsim.results.tables import solar_daily_table
from iotsim.scenario import load_scenario_text

RUN = """\
name: solar_small
seed: 2
duration: 30d
fleet:
  - group: field
    count: 12
    device: nrf52840_sx1262_2xaa
    placement: {kind: uniform, area_m: [600, 600]}
    workload: {signal: farm.soil_climate, events_per_day: 0.5}
    model: farm_soil_int8
    heartbeat: 6h
    solar:
      site: sand_point_ak
      start_day: 300
      panel: {area_cm2: %s, efficiency: 0.18, tilt_deg: 45, charger_efficiency: 0.8}
      storage: {kind: supercap, capacitance_f: 5, max_voltage_v: 3.6, min_voltage_v: 2.0, leakage_ua: 5,
                charge_efficiency: 0.98, initial_fraction: 0.5, restart_fraction: 0.2}
network:
  technology: lorawan
  gateways:
    - {id: gw, position_m: [300, 300]}
policies: [cloud_offload, on_device]
outputs: {plots: false, report: none}
"""


@pytest.fixture(scope="module")
def small_panel():
    return run_scenario(load_scenario_text(RUN % "2"))


def test_every_store_conserves_energy_per_node_and_day(small_panel):
    for out in small_panel.outcomes:
        _, r = out.harvest.results[0]
        assert np.abs(r.balance_j).max() < 1e-9
        daily = solar_daily_table(small_panel)
        d = daily[daily.policy == out.policy.name]
        np.testing.assert_allclose(d.harvested_j, d.consumed_j + d.stored_change_j + d.charge_loss_j + d.leaked_j
                                   + d.clipped_j, atol=1e-9)
        cap = 0.5 * 5 * (3.6 ** 2 - 2.0 ** 2)
        assert np.all(r.energy_j >= -1e-12) and np.all(r.energy_j <= cap + 1e-9)


def test_frames_are_lost_exactly_while_the_node_is_off(small_panel):
    cloud = small_panel.outcomes[0]
    tx = cloud.tx
    _, r = cloud.harvest.results[0]
    lost = tx.fate == Fate.NO_ENERGY
    assert lost.sum() > 0  # a 2 cm^2 panel in an Alaskan November does not carry cloud offload
    hour = (tx.start_s // 3600).astype(int)
    offset = tx.start_s - hour * 3600
    up = r.up_share[tx.node, hour]
    np.testing.assert_array_equal(lost, ~np.isin(tx.fate, [Fate.NODE_DEAD, Fate.PENDING]) & (offset >= up * 3600))
    # the ledger charges no radio time for them: TX time is that of the frames that went on air
    on = ~np.isin(tx.fate, [Fate.NO_ENERGY, Fate.NODE_DEAD, Fate.PENDING, Fate.DUTY_CYCLE])
    own = np.bincount(tx.node[on], weights=tx.tx_s[on], minlength=small_panel.n_nodes)
    np.testing.assert_allclose(cloud.ledger.time_s[:, SLOT_INDEX[("radio", "tx")]], own, rtol=1e-9)
    # they count as not offered: no packets_lost reason for them, and they show in the packets table
    packets = packets_table(small_panel)
    assert (packets[packets.policy == "cloud_offload"].loss_reason == "no_energy").sum() == lost.sum()


def test_the_ledger_agrees_with_what_the_store_gave(small_panel):
    nodes = nodes_table(small_panel)
    for out in small_panel.outcomes:
        _, r = out.harvest.results[0]
        ledger = nodes[nodes.policy == out.policy.name].energy_j.to_numpy()
        # the store sees each hour's mean demand; the ledger counts windows and frames: within half a percent
        np.testing.assert_allclose(ledger, r.consumed_j.sum(axis=1), rtol=5e-3)
        np.testing.assert_allclose(out.ledger.lifetime_s, out.harvest.up_s)


def test_summary_reports_downtime_instead_of_battery_life(small_panel):
    s = summary_table(small_panel).set_index("policy")
    assert s.loc["cloud_offload", "downtime_h_per_node_day"] > s.loc["on_device", "downtime_h_per_node_day"]
    assert s.loc["cloud_offload", "nodes_with_downtime"] > 0
    assert (s.battery_limit_harvesting == 12).all() and s.battery_life_days.isna().all()
    assert s.loc["cloud_offload", "harvested_j_per_node_day"] == pytest.approx(
        s.loc["on_device", "harvested_j_per_node_day"])  # the same panel, sun and store size
    # a run without harvesting has none of these columns
    plain = run_scenario(load_scenario_text(RUN.split("    solar:")[0] + RUN.split("charge_efficiency: 0.98, "
                                            "initial_fraction: 0.5, restart_fraction: 0.2}\n")[1]))
    assert "downtime_h_per_node_day" not in summary_table(plain).columns


def test_a_larger_panel_never_means_more_downtime(small_panel):
    downs = []
    for area in (0.5, 2, 8):
        result = small_panel if area == 2 else run_scenario(load_scenario_text(RUN % area))
        downs.append([out.harvest.downtime_s().sum() for out in result.outcomes])
    downs = np.array(downs)
    assert np.all(np.diff(downs, axis=0) <= 0) and downs[0].sum() > downs[-1].sum()


def test_same_seed_same_bytes(small_panel):
    again = run_scenario(load_scenario_text(RUN % "2"))
    assert solar_daily_table(again).equals(solar_daily_table(small_panel))
    assert summary_table(again).equals(summary_table(small_panel))


def test_bad_solar_settings_are_refused():
    with pytest.raises(InputError, match="capacitance_f"):
        load_scenario_text(RUN.replace("capacitance_f: 5, ", "") % "2")
    with pytest.raises(InputError, match="min_voltage_v"):
        load_scenario_text(RUN.replace("min_voltage_v: 2.0", "min_voltage_v: 4.0") % "2")
    with pytest.raises(InputError, match="site"):
        load_scenario_text(RUN.replace("sand_point_ak", "atlantis") % "2")


def test_an_energy_aware_policy_follows_its_rule_at_every_threshold():
    """Cloud offload while the store is charged, on-device inference from an hour that starts below 40 % until one
    starts above 60 %: the modes follow that rule against the reported store, every raw window goes up in a
    normal hour and every event and heartbeat in a low one, and the store still balances."""
    text = RUN.replace("policies: [cloud_offload, on_device]", "policies: [cloud_offload, {energy_aware: {normal: "
                       "cloud_offload, low: on_device, below: 0.4, above: 0.6}}]") % "2"
    result = run_scenario(load_scenario_text(text))
    out = result.outcomes[1]
    assert out.policy.name == "energy_aware" and out.modes_settled
    _, r = out.harvest.results[0]
    cap = 0.5 * 5 * (3.6 ** 2 - 2.0 ** 2)
    e = r.energy_j[:, :-1]
    prev = np.zeros_like(r.low)
    prev[:, 1:] = r.low[:, :-1]
    np.testing.assert_array_equal(r.low, np.where(prev, e < 0.6 * cap, e < 0.4 * cap))
    np.testing.assert_array_equal(out.low_hours, r.low)
    assert 0 < r.low.mean() < 1  # both modes ran
    m = out.messages
    hour = np.minimum((m.ready_s // 3600).astype(int), r.low.shape[1] - 1)
    in_low = r.low[m.node, hour]
    from iotsim.policies import MessageKind

    assert not in_low[m.kind == MessageKind.RAW].any()
    assert in_low[np.isin(m.kind, [MessageKind.EVENT, MessageKind.HEARTBEAT])].all()
    # the heartbeats sent are exactly the on-device schedule's (every 6 h from each node's phase) in low hours
    hb = m.kind == MessageKind.HEARTBEAT
    plan_node, plan_ready = result.plans[0].heartbeats()
    plan_hour = np.minimum((plan_ready // 3600).astype(int), r.low.shape[1] - 1)
    expect = plan_ready[r.low[plan_node, plan_hour]]
    assert hb.any()
    np.testing.assert_array_equal(np.sort(m.ready_s[hb]), np.sort(expect))
    assert np.abs(r.balance_j).max() < 1e-9
    # adapting keeps the nodes up where plain cloud offload browns out
    assert out.harvest.downtime_s().sum() < result.outcomes[0].harvest.downtime_s().sum()
    with pytest.raises(InputError, match="every fleet group needs solar"):
        load_scenario_text(text.split("    solar:")[0] + text.split("restart_fraction: 0.2}\n")[1])


def test_a_run_mixes_harvesting_and_battery_groups():
    """A second group on its AA cells next to the solar one: only the solar group harvests and reports downtime;
    the battery group keeps its projected battery life."""
    text = (RUN % "2").replace("network:", """  - group: cells
    count: 4
    device: nrf52840_sx1262_2xaa
    placement: {kind: uniform, area_m: [600, 600]}
    workload: {signal: farm.soil_climate, events_per_day: 0.5}
    model: farm_soil_int8
    heartbeat: 6h
network:""")
    result = run_scenario(load_scenario_text(text))
    s = summary_table(result).set_index(["policy", "group"])
    for policy in ("cloud_offload", "on_device"):
        assert np.isnan(s.loc[(policy, "field"), "battery_life_days"])
        assert s.loc[(policy, "cells"), "battery_life_days"] > 100
        assert s.loc[(policy, "cells"), "downtime_h_per_node_day"] == 0
        assert s.loc[(policy, "cells"), "harvested_j_per_node_day"] == 0
    daily = solar_daily_table(result)
    assert set(daily.group) == {"field"}
    nodes = nodes_table(result)
    assert (nodes[nodes.group == "cells"].battery_life_limit != "harvesting").all()
    assert (nodes[nodes.group == "field"].battery_life_limit == "harvesting").all()


def test_a_battery_profile_as_the_store():
    """`storage: {kind: battery, battery: 18650}`: the Li-ion profile's charge x nominal voltage between full and
    the state of charge where its open-circuit voltage meets the board's brown-out, its own self-discharge; a
    primary cell is refused."""
    from iotsim.energy.battery import BatteryModel
    from iotsim.energy.power_tree import board_brownout_v
    from iotsim.hardware import load_board
    from iotsim.hardware.profiles import load_profile

    text = (RUN % "2").replace("storage: {kind: supercap, capacitance_f: 5, max_voltage_v: 3.6, min_voltage_v: 2.0, "
                               "leakage_ua: 5,", "storage: {kind: battery, battery: \"18650\",")
    result = run_scenario(load_scenario_text(text))
    model = BatteryModel(load_profile("battery", "18650"))
    brown = board_brownout_v(load_board("nrf52840_sx1262_2xaa"))
    empty = float(model.min_soc(0.0, max(brown, model.profile.cutoff_voltage_v)))
    _, r = result.outcomes[0].harvest.results[0]
    assert r.capacity_j == pytest.approx(model.profile.capacity_c * model.nominal_voltage_v * (1 - empty))
    assert r.energy_j[:, 0] == pytest.approx(0.5 * r.capacity_j)
    assert np.abs(r.balance_j).max() < 1e-9
    with pytest.raises(InputError, match="primary cell"):
        run_scenario(load_scenario_text(text.replace('battery: "18650"', "battery: 2xaa")))
