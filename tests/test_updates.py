"""Model updates in a run (scenario `updates:`): the session is the planner's, nodes switch models when
they decode, listening is charged to the ledger exactly, chained deltas need their base, bad input is
refused, and runs stay byte-identical."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tflite

from iotsim.engine import run_scenario
from iotsim.errors import InputError
from iotsim.ota import delta, fuota
from iotsim.policies import MessageKind
from iotsim.radio.lorawan import EU868
from iotsim.results import nodes_table, summary_table
from iotsim.results.tables import updates_table
from iotsim.scenario import load_scenario_text

ZOO = Path(__file__).resolve().parents[1] / "iotsim" / "zoo"

SCENARIO = """\
name: updates
seed: 1
duration: 2d
fleet:
  - group: soil
    count: 60
    device: nrf52840_sx1262_2xaa
    placement: {{kind: uniform, area_m: [1200, 1200]}}
    workload: {{signal: farm.soil_climate, events_per_day: 1}}
    model: farm_soil_int8
network:
  propagation: {{pl_d0_db: 100, d0_m: 40, exponent: 2.08, shadowing_sigma_db: 0}}
  gateways:
    - {{id: gw1, position_m: [600, 600]}}
policies: [cloud_offload, on_device]
updates:
{updates}
outputs: {{plots: false, report: none}}
"""


def always_positive_model(folder: Path, name: str = "farm_always") -> Path:
    """The farm model with its last layer's weights zeroed and its biases set so that it always says
    'leak': a new model version whose effect on the verdicts is known."""
    data = bytearray((ZOO / "farm_soil_int8.tflite").read_bytes())
    model = tflite.Model.GetRootAsModel(bytes(data), 0)
    graph = model.Subgraphs(0)
    last = graph.Operators(graph.OperatorsLength() - 2)  # the final FULLY_CONNECTED (before softmax)
    weights, bias = graph.Tensors(last.Inputs(1)).Buffer(), graph.Tensors(last.Inputs(2)).Buffer()

    def span(buffer):
        b = model.Buffers(buffer)
        o = b._tab.Offset(4)
        return b._tab.Vector(o), b._tab.VectorLen(o)

    s, n = span(weights)
    data[s:s + n] = bytes(n)
    s, n = span(bias)
    data[s:s + n] = np.array([-100_000, 100_000], dtype=np.int32).tobytes()
    path = folder / f"{name}.tflite"
    path.write_bytes(bytes(data))
    card = json.loads((ZOO / "farm_soil_int8.json").read_text())
    card["name"] = name
    (folder / f"{name}.json").write_text(json.dumps(card))
    return path


def _run(updates: str):
    return run_scenario(load_scenario_text(SCENARIO.format(updates=updates)))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    new = always_positive_model(folder)
    without = run_scenario(load_scenario_text(SCENARIO.replace("updates:\n{updates}\n", "").format()))
    with_update = _run(f"  - {{at: 1d, model: {new}, redundancy: 0.3}}")
    return without, with_update, new


def test_the_run_sends_the_planned_session_with_the_real_delta(runs):
    _, result, new = runs
    (u,) = result.updates
    old = (ZOO / "farm_soil_int8.tflite").read_bytes()
    assert u.payload.payload_bytes == len(delta.create_delta(old, new.read_bytes()))
    assert u.session == fuota.plan_session(EU868, u.payload.payload_bytes, redundancy=0.3)
    table = updates_table(result).iloc[0]
    assert table.fragments_total == u.session.fragments.total and table.nodes == 60
    assert table.nodes_updated == int(u.rollout.decoded.sum()) > 30  # most of an open field hears SF12
    # a node runs the new model once it has received and applied it (flash, integrity check: the same MCU here)
    apply = (u.flash_s + u.cpu_s)[u.rollout.decoded]
    assert apply[0] > 0 and np.all(apply == apply[0])
    assert table.time_to_50pct_s == pytest.approx(u.rollout.time_to_share_s(0.5) + apply[0])


def test_nodes_switch_to_the_new_model_when_they_decode_it(runs):
    without, result, _ = runs
    (u,) = result.updates
    act = np.full(60, np.nan)
    act[u.nodes] = u.activated_s
    plan = result.plans[0]
    window_node = np.repeat(np.arange(plan.n_nodes), plan.n_windows)
    window_end = plan.window_end_s(np.arange(int(plan.window_offset[-1])))
    after = window_end >= act[window_node]
    assert after.any() and (~after).any()
    # the new model says 'leak' for every window after activation; before, the old model's verdicts stand
    assert plan.verdicts.device_positive[after].all()
    old = without.plans[0].verdicts
    np.testing.assert_array_equal(plan.verdicts.device_positive[~after], old.device_positive[~after])
    np.testing.assert_array_equal(plan.verdicts.cloud_positive, old.cloud_positive)
    # on_device sends an event for every window after activation
    out = next(o for o in result.outcomes if o.policy.name == "on_device")
    m = out.messages
    events = (m.kind == MessageKind.EVENT) & (m.window >= 0)
    assert set(np.flatnonzero(after).tolist()) <= set(m.window[events].tolist())


def test_listening_and_applying_are_charged_exactly(runs):
    """cloud_offload's uplinks do not change with the update (raw windows, the cloud's model): the only
    differences in the ledger are each updated node's receive time, its listening, and its time applying
    the update (flash erase and program, the integrity check on the CPU)."""
    without, result, _ = runs
    (u,) = result.updates
    a = next(o for o in without.outcomes if o.policy.name == "cloud_offload")
    b = next(o for o in result.outcomes if o.policy.name == "cloud_offload")
    np.testing.assert_array_equal(a.tx.start_s, b.tx.start_s)
    from iotsim.energy.ledger import SLOT_INDEX

    rx = SLOT_INDEX[("radio", "rx")]
    extra = b.ledger.time_s[:, rx] - a.ledger.time_s[:, rx]
    expected = np.zeros(60)
    expected[u.nodes] = u.rollout.rx_s
    np.testing.assert_allclose(extra, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(b.ledger.time_s.sum(axis=1) >= 0, True)
    flash, active = SLOT_INDEX[("mcu", "flash")], SLOT_INDEX[("mcu", "active")]
    expected_flash = np.zeros(60)
    expected_flash[u.nodes] = u.flash_s
    np.testing.assert_allclose(b.ledger.time_s[:, flash] - a.ledger.time_s[:, flash], expected_flash, rtol=0,
                               atol=1e-9)
    expected_cpu = np.zeros(60)
    expected_cpu[u.nodes] = u.cpu_s
    np.testing.assert_allclose(b.ledger.time_s[:, active] - a.ledger.time_s[:, active], expected_cpu, rtol=0,
                               atol=1e-9)
    assert (u.flash_s[u.rollout.decoded] > 0).all() and (u.flash_s[~u.rollout.decoded] == 0).all()
    # energy: the difference per node is its listening and applying energy, battery side
    ea, eb = a.energy_slots_j.sum(axis=1), b.energy_slots_j.sum(axis=1)
    np.testing.assert_allclose((eb - ea)[u.nodes], u.listen_energy_j + u.apply_energy_j, rtol=1e-9, atol=1e-9)
    assert u.listen_energy_j.max() > 0 and u.apply_energy_j.max() > 0


def test_updates_runs_are_byte_identical(runs, tmp_path):
    _, result, new = runs
    again = _run(f"  - {{at: 1d, model: {new}, redundancy: 0.3}}")
    for a, b in ((summary_table(result), summary_table(again)), (nodes_table(result), nodes_table(again)),
                 (updates_table(result), updates_table(again))):
        pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_a_chained_delta_needs_its_base_and_a_full_image_does_not(tmp_path):
    first = always_positive_model(tmp_path, "farm_v2")
    second = tmp_path / "farm_v3.tflite"
    second.write_bytes(first.read_bytes())
    (tmp_path / "farm_v3.json").write_text((tmp_path / "farm_v2.json").read_text().replace("farm_v2", "farm_v3"))
    # the first update at DR0 with no redundancy and 30 % fragment loss: many nodes miss it
    chained = _run(f"  - {{at: 12h, model: {first}, redundancy: 0, fragment_loss: 0.3}}\n"
                   f"  - {{at: 1d, model: {second}, mode: {{mode}}}}".replace("{mode}", "delta"))
    u1, u2 = chained.updates
    missed = 60 - int(u1.rollout.decoded.sum())
    assert missed > 0 and u2.skipped == missed and u2.nodes.size == 60 - missed
    assert u2.payload.payload_bytes <= 0.02 * second.stat().st_size  # v3 is v2 byte for byte: a near-empty delta
    full = _run(f"  - {{at: 12h, model: {first}, redundancy: 0, fragment_loss: 0.3}}\n"
                f"  - {{at: 1d, model: {second}, mode: full}}")
    assert full.updates[1].skipped == 0 and full.updates[1].payload.payload_bytes == second.stat().st_size


def test_a_new_model_brings_its_own_inference_cost_from_its_activation(runs, monkeypatch):
    """A node's windows after it activates a new model take that model's inference time on its MCU: on_device's
    events are ready that much later, and the MCU's active time grows by it for every window after activation
    (the same model with a cost ten times the old here). The retrained always-leak model has the farm model's
    graph, so without the patch it costs the same, measured (graph_signature)."""
    import iotsim.engine.fleet as fleet
    from iotsim.energy.ledger import SLOT_INDEX

    _, result, new = runs
    (u,) = result.updates
    plan = result.plans[0]
    same, source = fleet.inference_cost(u.model, plan.board.mcu, plan.model)
    assert same == plan.inference_time_s and "the same graph" in source
    assert fleet.graph_signature(u.model) == fleet.graph_signature(plan.model)
    keep = fleet.inference_cost
    slow = 10 * plan.inference_time_s
    monkeypatch.setattr(fleet, "inference_cost", lambda m, mcu, same_graph_as=None: (
        (slow, "patched") if m.name == u.model.name else keep(m, mcu, same_graph_as)))
    costly = _run(f"  - {{at: 1d, model: {new}, redundancy: 0.3}}")
    act = np.full(60, np.nan)
    act[u.nodes] = u.activated_s
    window_node = np.repeat(np.arange(plan.n_nodes), plan.n_windows)
    after = plan.window_end_s(np.arange(int(plan.window_offset[-1]))) >= act[window_node]
    n_after = np.bincount(window_node[after], minlength=60)
    assert n_after.sum() > 1000 and (n_after == 0).any()
    a, b = (next(o for o in r.outcomes if o.policy.name == "on_device") for r in (result, costly))
    col = SLOT_INDEX[("mcu", "active")]
    np.testing.assert_allclose(b.ledger.time_s[:, col] - a.ledger.time_s[:, col],
                               n_after * (slow - plan.inference_time_s), rtol=1e-9, atol=1e-9)
    # every window message is ready at its window's end plus the inference of the model its node ran then
    events = b.messages.window >= 0
    w = b.messages.window[events]
    expected = plan.window_end_s(w) + np.where(after[w], slow, plan.inference_time_s)
    np.testing.assert_allclose(b.messages.ready_s[events], expected, rtol=0, atol=1e-9)
    # cloud_offload runs no inference on the node: its MCU is unchanged
    c = [next(o for o in r.outcomes if o.policy.name == "cloud_offload") for r in (result, costly)]
    np.testing.assert_array_equal(c[0].ledger.time_s[:, col], c[1].ledger.time_s[:, col])


def test_the_summary_reads_the_updates_from_the_metric_registry(runs):
    """Runs with model updates get three summary metrics per policy and group (so sweeps and the report have them):
    nodes on the latest update's model, its time to 95 % of the group, and the updates' energy per node. They
    agree with the updates table and the update's own arrays; runs without updates leave the columns out."""
    from iotsim.results.tables import summary_table

    without, result, _ = runs
    (u,) = result.updates
    summary = summary_table(result).set_index("policy")
    table = updates_table(result).set_index("policy")
    for policy in ("cloud_offload", "on_device"):
        row = summary.loc[policy]
        assert row.update_nodes_on_latest_model == table.loc[policy, "nodes_updated"] == u.updated.sum()
        # one group, every node in the update: the group's 95 % is the update's
        assert row.update_s_to_95pct == pytest.approx(table.loc[policy, "time_to_95pct_s"], nan_ok=True)
        energy = np.zeros(60)
        energy[u.nodes] = u.listen_energy_j + u.apply_energy_j
        assert row.update_energy_j_per_node == pytest.approx(energy.mean()) and energy.mean() > 0
    assert not any(c.startswith("update_") for c in summary_table(without).columns)


def test_an_image_that_fails_its_checks_rolls_back_to_the_old_model(runs, tmp_path):
    """check_failure: the nodes drawn keep their old slot (A/B rollback): they paid for receiving and applying
    the update (flash, patch, hash, signature) but their windows keep the old model's verdicts, and a later delta
    based on the new model leaves them out. check_failure 1 (a bad signature): nobody switches, and on_device
    sends exactly what it sends without the update."""
    without, result, new = runs
    (u,) = result.updates
    bad = _run(f"  - {{at: 1d, model: {new}, redundancy: 0.3, check_failure: 1}}")
    (b,) = bad.updates
    np.testing.assert_array_equal(b.rollout.decoded, u.rollout.decoded)  # the same session and receptions
    assert (b.rolled_back == b.rollout.decoded).all() and np.isnan(b.activated_s).all()
    np.testing.assert_array_equal(b.apply_energy_j, u.apply_energy_j)  # the work was done all the same
    np.testing.assert_array_equal(bad.plans[0].verdicts.device_positive, without.plans[0].verdicts.device_positive)
    on = [next(o for o in r.outcomes if o.policy.name == "on_device") for r in (without, bad)]
    np.testing.assert_array_equal(on[0].messages.window, on[1].messages.window)
    row = updates_table(bad).iloc[0]
    assert row.nodes_updated == 0 and row.nodes_rolled_back == u.rollout.decoded.sum() and row.updated_share == 0
    assert np.isnan(row.time_to_50pct_s)
    assert any("rolled back" in n for n in bad.notes)
    # a share of the nodes, drawn per node: the rest switch at the same moments as without failures
    second = tmp_path / "farm_v3.tflite"
    second.write_bytes(new.read_bytes())
    (tmp_path / "farm_v3.json").write_text(new.with_suffix(".json").read_text().replace("farm_always", "farm_v3"))
    some = _run(f"  - {{at: 1d, model: {new}, redundancy: 0.3, check_failure: 0.3}}\n"
                f"  - {{at: 36h, model: {second}}}")
    s1, s2 = some.updates
    rolled = s1.rolled_back
    assert 0.1 < rolled.sum() / s1.rollout.decoded.sum() < 0.5 and not (rolled & ~s1.rollout.decoded).any()
    ok = s1.rollout.decoded & ~rolled
    np.testing.assert_array_equal(s1.activated_s[ok], u.activated_s[ok])
    assert np.isnan(s1.activated_s[rolled]).all()
    assert s2.skipped >= rolled.sum() and not np.isin(s1.nodes[rolled], s2.nodes).any()  # not on the delta's base
    assert updates_table(some).iloc[0].nodes_rolled_back == rolled.sum()


@pytest.mark.parametrize("updates,message", [
    ("  - {at: 3d, model: farm_soil_int8}", "starts after the run ends"),
    ("  - {at: 1d, model: farm_soil_int8, groups: [leaves]}", "unknown groups"),
    ("  - {at: 1d, model: factory_bearing_int8}", "window"),
    ("  - {at: 1d, model: farm_soil_int8, redundancy: -1}", "redundancy"),
    ("  - {at: 1d, model: farm_soil_int8, check_failure: 1.5}", "check_failure"),
    ("  - {at: 1d, model: farm_soil_int8, data_rate: 7}", "not a LoRa data rate"),
])
def test_bad_updates_are_refused_naming_the_field(updates, message):
    with pytest.raises(InputError, match=message):
        _run(updates)




def _star_run(technology: str, updates: str, extra: str = ""):
    device = {"ble": "nrf52840_ble_cr2032", "wifi": "esp32_wifi_18650"}[technology]
    settings = {"ble": "ble: {phy: 1M, connection_interval: 50ms, packets_per_event: 4, tx_power_dbm: 0}",
                "wifi": "wifi: {power_save: connected}"}[technology]
    workload, model = {"ble": ("{signal: farm.soil_climate, events_per_day: 1}", "farm_soil_int8"),
                       "wifi": ("{signal: factory.vibration, events_per_day: 1}", "factory_bearing_int8")}[technology]
    text = f"""\
name: star_update
seed: 2
duration: 6h
fleet:
  - group: soil
    count: 6
    device: {device}
    placement: {{kind: uniform, area_m: [4, 4]}}
    workload: {workload}
    model: {model}
network:
  technology: {technology}
  {settings}
  propagation: {{pl_d0_db: 40, d0_m: 1, exponent: 2.0, shadowing_sigma_db: 0}}
  gateways:
    - {{id: hub, position_m: [2, 2]}}
policies: [on_device]
updates:
{updates}
outputs: {{plots: false, report: none}}
{extra}"""
    return run_scenario(load_scenario_text(text))


def test_a_ble_update_goes_node_after_node_at_the_link_rate_worked_by_hand():
    """10,672 B full image over BLE LE 1M, 251-byte LL payloads (244 B of it after L2CAP + ATT headers):
    ceil(10672 / 244) = 44 packets; 4 per 50 ms connection event, so 11 events = 0.55 s per node at a
    strong link (every attempt through); the hub serves the six nodes one after another."""
    from iotsim.radio import ble

    result = _star_run("ble", "  - {at: 1h, model: farm_soil_int8, mode: full}")
    (u,) = result.updates
    r = u.rollout
    assert (u.session.packets, u.session.packet_payload_bytes) == (44, 244)
    assert (r.received == 44).all() and r.decoded.all()
    per_node = 11 * 0.050
    np.testing.assert_allclose(np.sort(r.done_s), per_node * np.arange(1, 7), rtol=1e-12)
    enc = result.scenario.network.ble.encrypted
    np.testing.assert_allclose(r.rx_s, 44 * float(ble.packet_time_s(251, "1M", enc)), rtol=1e-12)
    np.testing.assert_allclose(r.tx_s, 44 * ble.empty_packet_time_s("1M"), rtol=1e-12)
    table = updates_table(result).iloc[0]
    assert table.packets == 44 and np.isnan(table.fragments_total)
    apply = float((u.flash_s + u.cpu_s).max())  # one board: every node applies it in the same time
    assert table.time_to_50pct_s == pytest.approx(3 * per_node + apply)


def test_a_wifi_update_worked_by_hand_and_charged_to_the_ledger():
    """The factory model (35,792 B) over Wi-Fi: every MSDU carries up to MTU - IP overhead bytes; per packet
    DIFS + CWmin/2 slots + PPDU + SIFS + ACK when the first attempt gets through; the node receives the
    whole time but for its ACKs."""
    from iotsim.energy.ledger import SLOT_INDEX
    from iotsim.radio import wifi

    base = _star_run("wifi", "  - {at: 1h, model: factory_bearing_int8, mode: full}")
    (u,) = base.updates
    w = base.scenario.network.wifi
    per = w.mtu_bytes - w.ip_overhead_bytes
    packets = -(-(ZOO / "factory_bearing_int8.tflite").stat().st_size // per)
    assert u.session.packets == packets and u.rollout.decoded.all()
    sizes = [per] * packets  # the transfer times every MSDU at full size
    ppdu = float(wifi.data_ppdu_time_s(sizes[0] + w.ip_overhead_bytes + wifi.MAC_OVERHEAD_BYTES, w.standard, w.mcs))
    one = wifi.DIFS_S + wifi.CW_MIN / 2 * wifi.SLOT_S + ppdu + wifi.SIFS_S + wifi.ack_time_s()
    np.testing.assert_allclose(np.sort(u.rollout.done_s), packets * one * np.arange(1, 7), rtol=1e-12)
    np.testing.assert_allclose(u.rollout.tx_s, packets * wifi.ack_time_s(), rtol=1e-12)
    # the ledger holds the transfer's radio time on top of the run without it
    text_without = base.scenario.model_copy(update={"updates": []})
    without = run_scenario(text_without)
    a, b = without.outcomes[0], base.outcomes[0]
    for state, expected in (("rx", u.rollout.rx_s), ("tx", u.rollout.tx_s)):
        col = SLOT_INDEX[("radio", state)]
        np.testing.assert_allclose(b.ledger.time_s[u.nodes, col] - a.ledger.time_s[u.nodes, col], expected,
                                   rtol=0, atol=1e-9)


def test_lora_session_settings_are_refused_over_ble():
    with pytest.raises(InputError, match="redundancy set a LoRaWAN FUOTA session"):
        _star_run("ble", "  - {at: 1h, model: farm_soil_int8, redundancy: 0.5}")


def test_iotsim_run_prints_each_update_and_writes_updates_csv(tmp_path):
    import subprocess
    import sys

    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO.format(updates="  - {at: 1d, model: farm_soil_int8, mode: full, data_rate: 5}"))
    proc = subprocess.run([sys.executable, "-m", "iotsim.cli", "run", str(scenario), "--out", str(tmp_path / "out"),
                           "--no-plots"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert ("update 0 (farm_soil_int8, full, 10,672 B of a 10,672 B model): 59 fragments of 219 B (49 uncoded) "
            "multicast at DR5 (SF7)") in proc.stdout
    table = pd.read_csv(tmp_path / "out" / "updates.csv")
    assert list(table.columns)[:4] == ["policy", "update", "model", "groups"] and table.fragments_total[0] == 49 + 10
    assert table.policy.tolist() == ["cloud_offload", "on_device"]  # a multicast session: the same for both
    pd.testing.assert_frame_equal(table.iloc[[0]].drop(columns="policy").reset_index(drop=True),
                                  table.iloc[[1]].drop(columns="policy").reset_index(drop=True))


def test_updates_that_overlap_are_refused():
    """Over BLE six nodes take 3.3 s one after another: a second update 1 s after the first is refused."""
    with pytest.raises(InputError, match="still being sent"):
        _star_run("ble", "  - {at: 1h, model: farm_soil_int8, mode: full}\n"
                         "  - {at: 3601s, model: farm_soil_int8, mode: full}")
    ok = _star_run("ble", "  - {at: 1h, model: farm_soil_int8, mode: full}\n"
                          "  - {at: 3610s, model: farm_soil_int8, mode: full}")
    assert len(ok.updates) == 2
