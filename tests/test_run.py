"""End to end: conservation, closed-form battery life, node death, determinism, atomic output."""

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from iotsim.engine import run_scenario
from iotsim.hardware import load_board
from iotsim.radio import lora
from iotsim.results import nodes_table, packets_table, summary_table, write_results
from iotsim.results.tables import PACKETS_ROW_GROUP_ROWS, packets_row_groups
from iotsim.scenario import load_scenario_text

REPO = Path(__file__).resolve().parents[1]
MODEL = "farm_soil_int8"

SMALL = f"""\
name: small
seed: 3
duration: 2d
fleet:
  - group: soil
    count: 40
    device: nrf52840_sx1262_2xaa
    placement: {{kind: uniform, area_m: [3000, 1500]}}
    workload: {{signal: farm.soil_climate, sample_period: 5min, window: 12, events_per_day: 1}}
    model: {MODEL}
    heartbeat: 6h
network:
  lorawan: {{sf: auto, tx_power_dbm: 14}}
  gateways:
    - {{id: gw1, position_m: [500, 700]}}
    - {{id: gw2, position_m: [2500, 700]}}
policies: [cloud_offload, on_device, {{cascade: {{confidence_below: 0.9}}}}]
outputs: {{plots: false, report: none}}
"""


@pytest.fixture(scope="module")
def small_result():
    return run_scenario(load_scenario_text(SMALL))


def test_energy_columns_add_up_per_node(small_result):
    nodes = nodes_table(small_result)
    parts = nodes.filter(regex=r"^energy_.+_j$").sum(axis=1)
    np.testing.assert_allclose(parts, nodes.energy_j, rtol=1e-12)
    assert (nodes.filter(regex=r"^energy_(mcu|sensor|radio)_j$") > 0).all().all()
    assert (nodes.energy_regulator_j == 0).all()  # the farm board has no regulator
    # ledger time is conserved per component
    from iotsim.energy.ledger import COMPONENTS, SLOT_INDEX

    for out in small_result.outcomes:
        t = out.ledger.time_s
        for component in COMPONENTS:
            slots = [i for (c, _), i in SLOT_INDEX.items() if c == component]
            np.testing.assert_allclose(t[:, slots].sum(1), out.ledger.lifetime_s, err_msg=component)


def test_packets_offered_equal_delivered_plus_lost_with_reasons(small_result):
    summary = summary_table(small_result)
    assert (summary.packets_offered == summary.packets_delivered + summary.packets_lost).all()
    reasons = summary.filter(regex=r"^packets_lost_").sum(axis=1)
    assert (summary.packets_lost == reasons).all()
    # every loss reason of a LoRaWAN frame has its column
    assert {f"packets_lost_{r}" for r in ("below_sensitivity", "collision", "demodulators_busy",
                                          "gateway_transmitting", "duty_cycle")} <= set(summary.columns)
    assert (summary.packets_on_air == summary.packets_offered - summary.packets_lost_duty_cycle).all()
    packets = packets_table(small_result)
    sent = packets[packets.loss_reason != "pending_at_end"]
    assert (sent.delivered == (sent.loss_reason == "")).all()
    by_policy = sent.groupby("policy").size()
    for row in summary.itertuples():
        assert by_policy[row.policy] == row.packets_offered
        lost = sent[(sent.policy == row.policy) & ~sent.delivered].loss_reason.value_counts()
        for reason, count in lost.items():
            assert getattr(row, f"packets_lost_{reason}") == count
    # something was actually lost and something delivered, so the identity is not vacuous
    assert summary.packets_lost.sum() > 0 and summary.packets_delivered.sum() > 0
    np.testing.assert_allclose(summary.packet_delivery_ratio, summary.packets_delivered / summary.packets_offered)
    np.testing.assert_allclose(summary.message_delivery_ratio, summary.messages_delivered / summary.messages_offered)
    assert (summary.message_delivery_ratio < 1).any() and (summary.message_delivery_ratio > 0).all()


def test_policies_are_paired_and_ordered_as_expected(small_result):
    from iotsim.results import events_table

    ev = events_table(small_result)
    onsets = [g.sort_values(["node_id", "onset_s"]).onset_s.to_numpy() for _, g in ev.groupby("policy")]
    assert len(onsets) == 3 and all(np.array_equal(onsets[0], o) for o in onsets[1:])
    s = summary_table(small_result).set_index("policy")
    assert s.loc["on_device", "bytes_uplinked_per_node_day"] < s.loc["cloud_offload", "bytes_uplinked_per_node_day"]
    assert s.loc["on_device", "energy_j_per_node_day"] < s.loc["cloud_offload", "energy_j_per_node_day"]
    assert s.loc["on_device", "cloud_inferences"] == 0
    assert 0 < s.loc["cascade", "cloud_inferences"] < s.loc["cloud_offload", "cloud_inferences"]


CONSTANT = f"""\
name: constant
seed: 5
duration: 1d
fleet:
  - group: one
    count: 3
    device: nrf52840_sx1262_2xaa
    placement: {{kind: points, points_m: [[10, 0], [0, 10], [7, 7]]}}
    workload: {{signal: farm.soil_climate, sample_period: 5min, window: 12, events_per_day: 0}}
    model: {MODEL}
network:
  lorawan: {{sf: 7, tx_power_dbm: 14}}
  gateways: [{{id: gw, position_m: [0, 0]}}]
policies: [cloud_offload]
outputs: {{plots: false, report: none}}
"""


def _energy_life_s(board, load_w, peak_a):
    """Energy-limited life by hand from the battery YAML: the pack dies where its terminal voltage under the
    peak current, 2 (OCV(soc) - R I), meets the death voltage max(brown-out, cut-off); OCV is linear between
    the curve's points and R constant (the 2xaa profile), so soc solves a linear equation on one segment."""
    bat = board.battery
    death_v = max(board.power_tree[0].min_supply_v, bat.cutoff_voltage_v)
    r = bat.cell_resistance_ohm[0]
    assert set(bat.cell_resistance_ohm) == {r}
    target = death_v / bat.cells_in_series + r * peak_a  # the cell OCV where the node dies
    s, v = np.array(bat.ocv_soc), np.array(bat.cell_ocv_v)
    j = int(np.flatnonzero(v <= target)[-1])
    soc = s[j] + (s[j + 1] - s[j]) * (target - v[j]) / (v[j + 1] - v[j])
    usable_j = bat.capacity_c * (1 - soc) * bat.nominal_voltage_v
    self_w = bat.capacity_c * bat.self_discharge_per_year / (365.25 * 86400) * bat.nominal_voltage_v
    return usable_j / (load_w + self_w)


def test_battery_life_matches_closed_form_for_constant_duty_cycle(tmp_path, monkeypatch):
    """One raw uplink per hour at SF7, 12 samples per window: energy and projected life by hand."""
    result = run_scenario(load_scenario_text(CONSTANT))
    nodes = nodes_table(result)
    b = load_board("nrf52840_sx1262_2xaa")
    T = 86400.0
    windows = 23  # windows of 1 h from a phase in (0, 1 h) that end within 24 h
    sp = 300.0
    # and the sample periods of the 24th window completed before the run ends: one every 5 min from phase + 23 h
    samples = windows * 12 + np.floor((T - result.plans[0].phase_s - windows * 3600.0) / sp)
    assert np.all((samples >= windows * 12) & (samples < windows * 12 + 12))
    mcu_t = samples * min(b.mcu.wake_time_s, sp)
    sens_t = samples * min(max(s.sample_time_s for s in b.sensors), sp)
    raw_bytes = 12 * 3 * 2
    toa = lora.time_on_air_s(raw_bytes + 13, 7)
    rx = 8 * (lora.symbol_time_s(7) + lora.symbol_time_s(12))
    startup = b.radio.startup_time_s
    radio_busy = windows * (toa + rx + startup)
    sensor_active_a = sum(s.active_current_a for s in b.sensors)
    sensor_sleep_a = sum(s.sleep_current_a for s in b.sensors)
    energy = b.supply_voltage_v * (
        b.mcu.active_current_a * mcu_t + b.mcu.sleep_current_a * (T - mcu_t)
        + sensor_active_a * sens_t + sensor_sleep_a * (T - sens_t)
        + windows * (toa * b.radio.tx_current_a(14) + rx * b.radio.rx_current_a
                     + startup * b.radio.standby_current_a)
        + b.radio.sleep_current_a * (T - radio_busy)
    )
    np.testing.assert_allclose(nodes.energy_j, energy, rtol=1e-9)
    # the farm board feeds every part straight from the 2 x AA pack: no regulator losses
    np.testing.assert_allclose(nodes.energy_regulator_j, 0.0, atol=0)
    life_s = _energy_life_s(b, energy / T, peak_a=b.radio.tx_current_a(14) + b.mcu.sleep_current_a + sensor_sleep_a)
    # the energy would outlast the cells' rated shelf life (15 years): the calendar limit binds
    assert (life_s > b.battery.shelf_life_s).all()
    np.testing.assert_allclose(nodes.battery_life_days, b.battery.shelf_life_s / 86400, rtol=1e-12)
    assert (nodes.battery_life_limit == "calendar").all()
    summary = summary_table(result, nodes)
    assert (summary.packets_offered == 3 * windows).all() and (summary.packets_on_air == 3 * windows).all()
    assert (summary.battery_limit_calendar == 3).all() and (summary.battery_limit_energy == 0).all()
    # with a shelf life that does not bind, the projection is the energy life by hand
    devices = tmp_path / "devices"
    shutil.copytree(REPO / "devices", devices)
    battery = devices / "battery" / "2xaa.yaml"
    data = yaml.safe_load(battery.read_text())
    data["shelf_life_years"]["value"] = 1000
    battery.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("IOTSIM_DEVICES", str(devices))
    nodes = nodes_table(run_scenario(load_scenario_text(CONSTANT)))
    np.testing.assert_allclose(nodes.battery_life_days, life_s / 86400, rtol=1e-9)
    # the soil probe's 2.0 V brown-out is above the cells' 1.8 V cut-off: it binds
    assert (nodes.battery_life_limit == "brown-out").all()


def test_an_ldo_board_draws_load_plus_quiescent_current_through_the_engine(tmp_path, monkeypatch):
    """The farm board behind a 1.8 V LDO: the battery gives V_b x (the loads' charge + I_q x T), the loads are
    charged at 1.8 V, and the regulator row holds the difference."""
    devices = tmp_path / "devices"
    shutil.copytree(REPO / "devices", devices)
    path = devices / "board" / "nrf52840_sx1262_2xaa.yaml"
    data = yaml.safe_load(path.read_text())
    iq_ua = 2.0
    data["power_tree"] = [{
        "name": "1v8", "loads": ["mcu", "sensor", "radio"],
        "regulator": {"kind": "ldo", "part": "test LDO",
                      "output_v": {"value": 1.8, "source": "test: a 1.8 V LDO"},
                      "quiescent_current_ua": {"value": iq_ua, "source": "test: 2 uA quiescent"},
                      "dropout_v": {"value": 0.1, "source": "test: 0.1 V dropout"}},
        "min_supply_v": {"value": 1.8, "source": "test: SX1262 1.8 V minimum"}}]
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("IOTSIM_DEVICES", str(devices))
    with_ldo = nodes_table(run_scenario(load_scenario_text(CONSTANT)))
    monkeypatch.delenv("IOTSIM_DEVICES")
    direct = nodes_table(run_scenario(load_scenario_text(CONSTANT)))  # the same loads at the pack's 3.0 V
    vb = 3.0
    charge_c = direct.energy_j / vb  # every part draws the same currents for the same times
    T = 86400.0
    np.testing.assert_allclose(with_ldo.energy_j, vb * (charge_c + iq_ua * 1e-6 * T), rtol=1e-12)
    loads = with_ldo[["energy_mcu_j", "energy_sensor_j", "energy_radio_j"]].sum(axis=1)
    np.testing.assert_allclose(loads, 1.8 * charge_c, rtol=1e-12)
    np.testing.assert_allclose(with_ldo.energy_regulator_j, with_ldo.energy_j - loads, rtol=1e-12)
    # the regulator needs 1.9 V, below the cells' cut-off: the cut-off under the TX pulse still ends the life
    assert (with_ldo.battery_life_limit == "calendar").all()


def test_a_node_whose_battery_empties_dies_and_stops_sending(tmp_path, monkeypatch):
    devices = tmp_path / "devices"
    shutil.copytree(REPO / "devices", devices)
    battery = devices / "battery" / "2xaa.yaml"
    text = battery.read_text()

    data = yaml.safe_load(text)
    data["capacity_mah"]["value"] = 0.05  # 0.05 mAh: this node draws ~1.8 J/day, so it dies within hours
    battery.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("IOTSIM_DEVICES", str(devices))
    result = run_scenario(load_scenario_text(CONSTANT))
    nodes = nodes_table(result)
    assert nodes.died_at_s.notna().all()
    died = nodes.died_at_s.to_numpy()
    assert (died < 86400).all()
    b = load_board("nrf52840_sx1262_2xaa")
    peak = b.radio.tx_current_a(14) + b.mcu.sleep_current_a + sum(s.sleep_current_a for s in b.sensors)
    life_1j = _energy_life_s(b, 1.0, peak)  # at 1 W, ignoring self-discharge (0.7 %/year is nothing here)
    usable = life_1j * 0.05 / b.battery.capacity_mah  # the usable energy of the 0.05 mAh pack
    # the energy drawn until death is the usable energy, to within one window's energy (death is resolved
    # to the window: sampling work is spread as mean power, radio bursts are exact)
    monkeypatch.delenv("IOTSIM_DEVICES")
    per_window = nodes_table(run_scenario(load_scenario_text(CONSTANT))).energy_j.max() / 23
    assert (np.abs(nodes.energy_j - usable) <= per_window).all()
    assert (died > 3600).all()
    np.testing.assert_allclose(nodes.battery_life_days, died / 86400)
    packets = packets_table(result)
    for node_id, t_death in zip(nodes.node_id, died):
        starts = packets[packets.node_id == node_id].start_s
        assert (starts < t_death).all()


def test_same_seed_gives_byte_identical_results(tmp_path):
    scenario = load_scenario_text(SMALL)
    a = write_results(run_scenario(scenario), tmp_path / "a", command="test")
    b = write_results(run_scenario(scenario), tmp_path / "b", command="test")
    for name in ("summary.csv", "nodes.parquet", "events.parquet", "packets.parquet", "manifest.json",
                 "findings.md", "findings.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    other = write_results(run_scenario(scenario.model_copy(update={"seed": 4})), tmp_path / "c", command="test")
    assert (other / "summary.csv").read_bytes() != (a / "summary.csv").read_bytes()


@pytest.mark.parametrize("rows_per_group", [500, 1237, PACKETS_ROW_GROUP_ROWS])
def test_packets_row_groups_rebuild_the_packets_table(small_result, rows_per_group):
    table = packets_table(small_result)
    groups = list(packets_row_groups(small_result, rows_per_group))
    assert [len(g) for g in groups[:-1]] == [rows_per_group] * (len(groups) - 1)
    assert 0 < len(groups[-1]) <= rows_per_group
    pd.testing.assert_frame_equal(pd.concat(groups, ignore_index=True), table)
    if rows_per_group < len(table):
        assert any(g.policy.nunique() > 1 for g in groups)  # some row group spans two policies


@pytest.mark.parametrize("rows_per_group", [500, PACKETS_ROW_GROUP_ROWS])
def test_packets_file_written_by_row_groups_equals_the_in_memory_tables_file(tmp_path, small_result,
                                                                               rows_per_group):
    from iotsim.results.writer import _write_packets

    table = packets_table(small_result)
    table.to_parquet(tmp_path / "whole.parquet", index=False, compression="zstd", row_group_size=rows_per_group)
    _write_packets(small_result, tmp_path / "chunked.parquet", rows_per_group)
    assert (tmp_path / "chunked.parquet").read_bytes() == (tmp_path / "whole.parquet").read_bytes()
    assert pq.ParquetFile(tmp_path / "chunked.parquet").metadata.num_row_groups == -(-len(table) // rows_per_group)
    # and write_results writes that file
    out = write_results(small_result, tmp_path / "out", command="test")
    table.to_parquet(tmp_path / "default.parquet", index=False, compression="zstd")
    assert (out / "packets.parquet").read_bytes() == (tmp_path / "default.parquet").read_bytes()


def test_a_policy_without_packets_keeps_the_packets_column_types(tmp_path, small_result):
    from iotsim.network.fate import Fate
    from iotsim.results.writer import _write_packets

    silent = small_result.outcomes[1]
    silent = dataclasses.replace(silent, tx=dataclasses.replace(silent.tx, fate=np.full_like(silent.tx.fate, Fate.NODE_DEAD)))
    result = dataclasses.replace(small_result, outcomes=[small_result.outcomes[0], silent, small_result.outcomes[2]])
    table = packets_table(result)
    assert silent.policy.name not in set(table.policy)
    full = packets_table(small_result)
    assert table.dtypes.to_dict() == full.dtypes.to_dict()
    _write_packets(result, tmp_path / "chunked.parquet", 500)
    table.to_parquet(tmp_path / "whole.parquet", index=False, compression="zstd", row_group_size=500)
    assert (tmp_path / "chunked.parquet").read_bytes() == (tmp_path / "whole.parquet").read_bytes()
    written = pq.read_schema(tmp_path / "chunked.parquet")
    assert written.field("group").type == pa.Table.from_pandas(full).schema.field("group").type


def test_write_results_reports_each_step(tmp_path, small_result):
    calls = []
    write_results(small_result, tmp_path / "out", command="test", plots=True, report=True,
                  progress=lambda step, done, total: calls.append((step, done, total)))
    steps = ["tables", "findings", "packets", "plots", "report"]
    assert calls == [c for step in steps for c in ((step, 0, 1), (step, 1, 1))]


def test_failed_write_leaves_no_half_written_folder(tmp_path, monkeypatch, small_result):
    import iotsim.results.writer as writer

    out = tmp_path / "out"
    write_results(small_result, out, command="test")
    before = sorted(p.name for p in out.iterdir())

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(writer, "_write_parquet", boom)
    with pytest.raises(RuntimeError):
        write_results(small_result, out, command="test")
    with pytest.raises(RuntimeError):
        write_results(small_result, tmp_path / "fresh", command="test")
    assert not (tmp_path / "fresh").exists()
    assert sorted(p.name for p in out.iterdir()) == before  # the previous results are intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folders left


def test_cli_runs_the_farm_scenario_end_to_end(tmp_path):
    out = tmp_path / "farm"
    proc = subprocess.run([sys.executable, "-m", "iotsim.cli", "run", str(REPO / "scenarios" / "farm.yaml"),
                           "--out", str(out), "--quiet"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for name in ("summary.csv", "nodes.parquet", "events.parquet", "packets.parquet", "manifest.json",
                 "report.html", "energy_breakdown.png", "battery_life.png", "latency_cdf.png", "bytes_on_air.png"):
        assert (out / name).stat().st_size > 0, name
    summary = pd.read_csv(out / "summary.csv")
    required = ["policy", "group", "nodes", "energy_j_per_node_day", "battery_life_days",
                "bytes_uplinked_per_node_day", "packets_offered", "packets_on_air", "packets_delivered", "packets_lost",
                "latency_p50_s", "latency_p95_s", "precision", "recall", "cloud_inferences"]
    assert list(summary.columns[: 2]) == ["policy", "group"] and set(required) <= set(summary.columns)
    assert set(summary.policy) == {"cloud_offload", "on_device", "cascade"}
    assert "cloud_offload" in proc.stdout and "on_device" in proc.stdout
    nodes = pd.read_parquet(out / "nodes.parquet")
    assert len(nodes) == 3 * 300
    assert {"node_id", "policy", "group", "energy_j", "energy_mcu_j", "energy_radio_j", "energy_sensor_j"} <= set(nodes)


def test_sampling_unlike_the_models_training_is_flagged(small_result):
    assert small_result.warnings == []
    text = SMALL.replace("sample_period: 5min", "sample_period: 5s").replace("duration: 2d", "duration: 2h")
    result = run_scenario(load_scenario_text(text))
    assert len(result.warnings) == 1 and "300 s apart" in result.warnings[0] and "5 s" in result.warnings[0]
    assert any(n.startswith("Warning:") for n in result.notes)
    # the generator runs at the scenario's timing: a 12-sample window spans a minute
    assert result.plans[0].window_span_s == 60.0


def test_cli_run_set_overrides_a_field_and_refuses_a_bad_one(tmp_path):
    base = [sys.executable, "-m", "iotsim.cli", "run", str(REPO / "scenarios" / "city_meters.yaml"), "--quiet",
            "--no-plots", "--set", "fleet.meters.count=40", "--set", "policies=[on_device]"]
    out = tmp_path / "ok"
    proc = subprocess.run([*base, "--set", "network.lorawan.confirmed=true", "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    summary = pd.read_csv(out / "summary.csv")
    assert summary.nodes.tolist() == [40] and summary.acks_received.iloc[0] > 0
    bad = tmp_path / "bad"
    proc = subprocess.run([*base, "--set", "network.lorawan.nb_trans=99", "--out", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "network.lorawan.nb_trans" in proc.stderr and not bad.exists()
