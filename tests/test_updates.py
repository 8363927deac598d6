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
    assert table.time_to_50pct_s == pytest.approx(u.rollout.time_to_share_s(0.5))


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


def test_listening_is_charged_to_the_radio_exactly(runs):
    """cloud_offload's uplinks do not change with the update (raw windows, the cloud's model): the only
    difference in the ledger is each updated node's receive time, its listening."""
    without, result, _ = runs
    (u,) = result.updates
    a = next(o for o in without.outcomes if o.policy.name == "cloud_offload")
    b = next(o for o in result.outcomes if o.policy.name == "cloud_offload")
    np.testing.assert_array_equal(a.tx.start_s, b.tx.start_s)
    from iotsim.energy.ledger import SLOT_INDEX

    rx = SLOT_INDEX[("radio", "rx")]
    extra = b.ledger.time_s[:, rx] - a.ledger.time_s[:, rx]
    expected = np.zeros(60)
    expected[u.nodes] = u.rollout.listen_s
    np.testing.assert_allclose(extra, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(b.ledger.time_s.sum(axis=1) >= 0, True)
    # energy: the difference per node is its listening energy, battery side
    ea, eb = a.energy_slots_j.sum(axis=1), b.energy_slots_j.sum(axis=1)
    np.testing.assert_allclose((eb - ea)[u.nodes], u.listen_energy_j, rtol=1e-9, atol=1e-9)
    assert u.listen_energy_j.max() > 0


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


@pytest.mark.parametrize("updates,message", [
    ("  - {at: 3d, model: farm_soil_int8}", "starts after the run ends"),
    ("  - {at: 1d, model: farm_soil_int8, groups: [leaves]}", "unknown groups"),
    ("  - {at: 1d, model: factory_bearing_int8}", "window"),
    ("  - {at: 1d, model: farm_soil_int8, redundancy: -1}", "redundancy"),
    ("  - {at: 1d, model: farm_soil_int8, data_rate: 7}", "not a LoRa data rate"),
])
def test_bad_updates_are_refused_naming_the_field(updates, message):
    with pytest.raises(InputError, match=message):
        _run(updates)


def test_updates_are_refused_outside_lorawan():
    text = SCENARIO.format(updates="  - {at: 1d, model: farm_soil_int8}").replace(
        "network:\n", "network:\n  technology: ble\n").replace("nrf52840_sx1262_2xaa", "nrf52840_ble_cr2032")
    with pytest.raises(InputError, match="LoRaWAN only"):
        load_scenario_text(text)


def test_a_gateway_sending_a_session_does_not_hear_uplinks_meanwhile(tmp_path):
    """One gateway sends a full image (290 fragments, 2.2 h); cloud_offload's uplinks are the same with and
    without it. Every frame delivered without the session that overlaps one of its fragments is lost as
    gateway_transmitting with it; a frame changes fate only if it overlaps a fragment (or, freed of a
    demodulator path, gains one)."""
    from iotsim.network.fate import Fate
    from iotsim.results.tables import gateways_table

    new = always_positive_model(tmp_path)
    base = run_scenario(load_scenario_text(SCENARIO.replace("updates:\n{updates}\n", "").format()))
    with_session = _run(f"  - {{at: 1d, model: {new}, mode: full, redundancy: 0.3}}")
    a = next(o for o in base.outcomes if o.policy.name == "cloud_offload").tx
    b = next(o for o in with_session.outcomes if o.policy.name == "cloud_offload").tx
    np.testing.assert_array_equal(a.start_s, b.start_s)
    sched = with_session.updates[0]
    s = sched.session
    frag_start = sched.start_s + np.arange(s.fragments.total) * s.fragment_interval_s
    frag_end = frag_start + s.fragment_airtime_s
    i = np.searchsorted(frag_start, b.start_s + b.airtime_s) - 1  # last fragment starting before the frame ends
    overlap = (i >= 0) & (frag_end[np.maximum(i, 0)] > b.start_s)
    hit = overlap & (a.fate == Fate.DELIVERED)
    assert hit.sum() >= 5
    assert (b.fate[hit] == Fate.GATEWAY_TRANSMITTING).all()
    changed = a.fate != b.fate
    assert (overlap[changed] | (a.fate[changed] == Fate.DEMODULATORS_BUSY)).all()
    gw = gateways_table(with_session).set_index("policy")
    assert gw.tx_airtime_s["cloud_offload"] == pytest.approx(s.downlink_airtime_s)


def test_class_a_answers_keep_out_of_a_session(monkeypatch, tmp_path):
    """Confirmed traffic during a session: no answer overlaps a fragment (one transmitter) and none goes out
    on the session's sub-band (869.4-869.65 MHz, its 10 % spent) while it lasts; answers still go in RX1.
    At SF12 an answer in RX1 closes its 1 % sub-band for about 99 s, so outside the session RX2 takes some."""
    from iotsim.link.lorawan_loop import ClosedLoop

    monkeypatch.setenv("IOTSIM_CLOSED_LOOP", "simpy")
    loops = []
    run = ClosedLoop.run_simpy
    monkeypatch.setattr(ClosedLoop, "run_simpy", lambda self: (loops.append(self), run(self))[1])
    new = always_positive_model(tmp_path)
    text = SCENARIO.format(updates=f"  - {{at: 1d, model: {new}, mode: full, redundancy: 0.3}}").replace(
        "network:\n", "network:\n  lorawan: {sf: 12, confirmed: true, nb_trans: 3}\n").replace(
        "policies: [cloud_offload, on_device]", "policies: [cloud_offload]")
    result = run_scenario(load_scenario_text(text))
    (u,) = result.updates
    s = u.session
    frag_start = u.start_s + np.arange(s.fragments.total) * s.fragment_interval_s
    lo, hi = frag_start[0], frag_start[-1] + s.fragment_interval_s
    loop = loops[-1]
    answers = [d for d in loop.a_dl if d is not None]
    during = [d for d in answers if lo <= d[5] < hi]
    assert len(during) > 20 and all(d[0] == 1 for d in during)  # RX1 only
    assert any(d[0] == 2 for d in answers if not lo <= d[5] < hi)  # RX2 is used outside the session
    for d in answers:
        t0, air = d[5], d[3]
        j = np.searchsorted(frag_start, t0 + air) - 1
        assert j < 0 or frag_start[j] + s.fragment_airtime_s <= t0
