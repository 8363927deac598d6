"""Model updates in a run in time chunks (iotsim.engine.chunked): the nodes switch models at the whole run's
windows, the gateways' multicast and unicast fragments block uplinks in chunked reception, the class A unicast
polls go out with the chunk they are due in, listening and applying are charged; every table equals the whole
run's, and the chunk length changes no output byte (open loop, closed loop, BLE and Wi-Fi)."""

import filecmp
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iotsim.engine import run_scenario
from iotsim.engine.chunked import WindowCursor, model_switches
from iotsim.engine.fleet import plan_group
from iotsim.engine.run import load_group_resources
from iotsim.link import make_link
from iotsim.results import write_results
from iotsim.results.tables import updates_table
from iotsim.scenario import load_scenario_text

sys.path.insert(0, str(Path(__file__).parent))
from test_chunked import assert_same_tables, small_cells, tables  # noqa: E402
from test_updates import SCENARIO, _star_run, always_positive_model  # noqa: E402

CHUNKS = ("2h", "26003s", "1d")
CHUNK_S = {"2h": 7200.0, "26003s": 26003.0, "1d": 86400.0}
# the nodes switch to a model that always says 'leak' (a delta, at 9 h), then back to the zoo's (a full image
# at 1 d, 30 % of the fragments lost: the nodes that could not decode it poll for more over class A)
UPDATES = ("  - {{at: 9h, model: {always}, redundancy: 0.3}}\n"
           "  - {{at: 1d, model: farm_soil_int8, mode: full, fragment_loss: 0.3, unicast: repair, poll_period: 5min}}")


def scenario(always: Path, chunk: str | None = None, lorawan: str | None = None, updates: bool = True):
    text = SCENARIO.format(updates=UPDATES.format(always=always)) if updates else \
        SCENARIO.replace("updates:\n{updates}\n", "").format()
    if lorawan is not None:
        text = text.replace("network:\n", f"network:\n  lorawan: {lorawan}\n")
    if chunk is not None:
        text = text.replace("outputs:", f"simulation: {{chunk: {chunk}}}\noutputs:")
    return load_scenario_text(text)


def assert_same_files(results: dict, tmp_path: Path) -> None:
    folders = [write_results(result, tmp_path / c) for c, result in results.items()]
    names = sorted(p.name for p in folders[0].iterdir())
    assert "updates.csv" in names and "packets.parquet" in names
    for other in folders[1:]:
        assert sorted(p.name for p in other.iterdir()) == names
        for name in names:
            if name != "manifest.json":  # it records the chunk length
                assert filecmp.cmp(folders[0] / name, other / name, shallow=False), name


@pytest.fixture(scope="module")
def always(tmp_path_factory):
    return always_positive_model(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def runs(always):
    whole = run_scenario(scenario(always))
    chunked = {c: run_scenario(scenario(always, c)) for c in CHUNKS}
    return whole, chunked


def test_the_updates_are_exercised_across_chunk_boundaries(runs, always):
    whole, chunked = runs
    first, second = whole.updates
    assert first.model.name == "farm_always" and second.unicast is not None
    # the nodes activate each new model in chunks after the first; the repaired ones over many chunks
    acts = [u.activated_s[np.isfinite(u.activated_s)] for u in (first, second)]
    assert min(a.size for a in acts) > 20
    for chunk_s in CHUNK_S.values():
        assert (acts[0] >= chunk_s).any() or chunk_s > first.start_s
        assert (acts[1] >= chunk_s).all()
    assert np.unique(np.floor(second.activated_s[np.isfinite(second.activated_s)] / CHUNK_S["2h"])).size > 5
    # the always-positive model shows in the detections: on_device says 'leak' far more often than without it
    without = run_scenario(scenario(always, updates=False))
    on_device = [o.tally.positive_decisions.sum() for r in (without, whole) for o in r.outcomes
                 if o.policy.name == "on_device"]
    assert on_device[1] > on_device[0] + 1000
    # the repair's polls are uplinks of every policy, due over several chunks (on the second day: one 1 d chunk)
    packets = tables(whole)["packets"]
    polls = packets[packets.kind == "poll"]
    assert len(polls) == 2 * second.unicast.polls > 1000
    assert np.unique(np.floor(polls.ready_s / CHUNK_S["2h"])).size > 5
    assert np.unique(np.floor(polls.ready_s / CHUNK_S["26003s"])).size >= 2
    # the gateways' fragments cut uplinks (half duplex), and their airtime is in the gateways table
    assert (packets.loss_reason == "gateway_transmitting").sum() > 0
    assert tables(whole)["gateways"].filter(like="tx_airtime").to_numpy().sum() > 0
    # the chunked runs planned the same rollouts
    for result in chunked.values():
        for a, b in zip(whole.updates, result.updates):
            np.testing.assert_array_equal(a.activated_s, b.activated_s)


def test_the_window_cursor_switches_models_as_the_whole_run(runs):
    """Chunk by chunk, each window's on-device verdict is the one the whole run's plan holds after the updates
    (`effective_verdicts`): the old model's before its node activated a new one, the latest new model's after."""
    whole, _ = runs
    scen = whole.scenario
    link = make_link(scen.network)
    gateways_xy = np.array([g.position_m for g in scen.network.gateways], dtype=np.float64)
    lazy = plan_group(scen, 0, 0, gateways_xy, load_group_resources(scen, 0, {}), link, lazy_windows=True)
    (switches,) = model_switches([lazy], whole.updates)
    assert len(switches) == 2
    cursor = WindowCursor(lazy, switches)
    parts, flats = [], []
    for t1 in (3000.0, 40000.0, 40000.0, 100000.0, 150001.5, np.inf):
        view, flat = cursor.take(t1)
        parts.append(view.verdicts)
        flats.append(flat)
    order = np.argsort(np.concatenate(flats), kind="stable")
    expected = whole.plans[0].verdicts
    for name in ("device_positive", "device_confidence", "cloud_positive"):
        got = np.concatenate([getattr(v, name) for v in parts])[order]
        np.testing.assert_array_equal(got, getattr(expected, name))
    assert expected.device_positive.mean() > 0.2  # the always-positive model's windows are among them


def test_chunked_tables_with_updates_equal_the_whole_run(runs):
    whole, chunked = runs
    a = tables(whole)
    for c, result in chunked.items():
        assert_same_tables(a, tables(result), f"({c})")
        pd.testing.assert_frame_equal(updates_table(whole), updates_table(result), check_exact=True)
        assert result.notes[:-1] == whole.notes  # the updates' and polls' notes too (the last: the chunks')


def test_chunk_length_changes_no_output_byte_with_updates(runs, tmp_path):
    _, chunked = runs
    assert_same_files(chunked, tmp_path)


def test_the_closed_loop_carries_updates_in_chunks(always, tmp_path, monkeypatch):
    """Confirmed uplinks: the polls are acknowledged too, the fragments hold the gateways' radios and their
    RX2 sub-band for the ACKs in the compiled loop, whatever the chunks. (Three unicast passes: each pass is
    the same whole or in chunks, and a closed loop this busy settles only after many.)"""
    monkeypatch.setattr("iotsim.engine.updates.MAX_POLL_PASSES", 3)
    lorawan = "{confirmed: true, nb_trans: 2}"
    whole = run_scenario(scenario(always, lorawan=lorawan))
    assert whole.outcomes[0].tally.node_stats["acks_received"].sum() > 1000
    a = tables(whole)
    chunked = {c: run_scenario(scenario(always, c, lorawan=lorawan)) for c in ("2h", "26003s")}
    for c, result in chunked.items():
        assert_same_tables(a, tables(result), f"({c})")
    assert_same_files(chunked, tmp_path)


@pytest.mark.parametrize("technology, updates", [
    ("ble", "  - {{at: 1h, model: {always}, mode: full}}\n  - {{at: 3h, model: farm_soil_int8, mode: full}}"),
    ("wifi", "  - {{at: 1h, model: factory_bearing_int8, mode: full}}"),
])
def test_ble_and_wifi_updates_run_in_chunks_as_whole(always, technology, updates, tmp_path):
    text = updates.format(always=always)
    whole = _star_run(technology, text, "simulation: {background_pool: 200}")
    assert whole.updates[0].rollout.decoded.all()
    a = tables(whole)
    chunked = {c: _star_run(technology, text, f"simulation: {{background_pool: 200, chunk: {c}}}")
               for c in ("1h", "2501s")}
    for c, result in chunked.items():
        assert_same_tables(a, tables(result), f"({c})")
    assert_same_files(chunked, tmp_path)
    if technology == "ble":  # the new model says 'leak' on every window between the updates
        events = a["packets"].query("kind == 'event'").ready_s
        activated = float(np.nanmax(whole.updates[0].activated_s))
        assert ((events > activated) & (events < 3 * 3600)).sum() > 10 * max(int((events < 3600).sum()), 1)


def test_a_new_models_inference_cost_is_the_same_in_chunks(always, monkeypatch):
    """A new model costing ten times the old per inference: its windows' messages are ready later and the MCU
    works longer from each node's activation, in chunks as in the whole run."""
    import iotsim.engine.fleet as fleet

    keep = fleet.inference_cost
    monkeypatch.setattr(fleet, "inference_cost", lambda m, mcu, same_graph_as=None: (
        (0.5, "patched") if m.name == "farm_always" else keep(m, mcu, same_graph_as)))
    text = "  - {{at: 1h, model: {always}, mode: full}}\n  - {{at: 3h, model: farm_soil_int8, mode: full}}".format(
        always=always)
    whole = _star_run("ble", text, "simulation: {background_pool: 200}")
    plan = whole.plans[0]
    assert plan.model_steps[0][1] == 0.5 and plan.model_steps[1][1] == plan.inference_time_s < 0.05
    assert (plan.node_inference_s > plan.inference_time_s).all()
    a = tables(whole)
    for c in ("1h", "2501s"):
        assert_same_tables(a, tables(_star_run("ble", text, f"simulation: {{background_pool: 200, chunk: {c}}}")),
                           f"({c})")


def test_listening_counts_toward_batteries_that_empty_as_in_the_whole_run(always, tmp_path, monkeypatch):
    """Cells so small that the nodes die while they listen to the second update's session: their listening
    bursts (a minute of receiver each) go in among the frames' when the chunks find who dies when (the same
    budget, the same order), as in the whole run."""
    small_cells(tmp_path, monkeypatch, "2xaa", 2.0)
    whole = run_scenario(scenario(always))
    second = whole.updates[1]
    for out in whole.outcomes:
        died = out.died_at_s
        assert np.isfinite(died).all() and (died > second.start_s).all()
        # most die at the end of a minute of listening: a listening burst empties them
        r = np.mod(died[second.nodes] - second.start_s - second.rollout.radio_from_s, 60.0)
        assert (np.minimum(r, 60.0 - r) < 1e-6).sum() > 30
    a = tables(whole)
    for c in ("2h", "26003s"):
        assert_same_tables(a, tables(run_scenario(scenario(always, c))), f"({c})")


def test_closed_loop_deaths_count_listening_as_in_the_whole_run(always, tmp_path, monkeypatch):
    """The closed loop with cells that empty while listening: the chunks go through the whole run's death passes
    (closed_loop_deaths) with the listening in each pass's budget and among its bursts."""
    small_cells(tmp_path, monkeypatch, "2xaa", 2.0)
    monkeypatch.setattr("iotsim.engine.updates.MAX_POLL_PASSES", 3)  # (as the test above)
    lorawan = "{confirmed: true, nb_trans: 2}"
    whole = run_scenario(scenario(always, lorawan=lorawan))
    second = whole.updates[1]
    for out in whole.outcomes:  # they die once the second session has started
        assert np.isfinite(out.died_at_s).all() and (out.died_at_s > second.start_s).all()
    a = tables(whole)
    for c in ("2h", "26003s"):
        assert_same_tables(a, tables(run_scenario(scenario(always, c, lorawan=lorawan))), f"({c})")
