"""Runs in time chunks (iotsim.engine.chunked): the chunk length changes no output byte, and the tables equal
the whole-run engine's; the carried pieces (cloud queue, window draws, heartbeats, percentiles) equal their
whole-run counterparts."""

import filecmp
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from iotsim.engine import run_scenario
from iotsim.engine.chunked import WindowCursor
from iotsim.engine.fleet import plan_group
from iotsim.engine.run import load_group_resources
from iotsim.engine.tally import WaitSpill
from iotsim.errors import InputError
from iotsim.link import make_link
from iotsim.network.cloud import CloudQueue, simulate_cloud
from iotsim.results import write_results
from iotsim.results.tables import events_table, gateways_table, nodes_table, packets_table, summary_table
from iotsim.scenario import load_scenario_text

REPO = Path(__file__).resolve().parents[1]

# A congested fleet: SF12 frames of two fragments every 4 minutes against a 1 % duty cycle (backlogs that
# wait across chunk boundaries), one demodulator path per gateway (paths held across boundaries), a cloud of
# two servers at 20 s per inference (a queue that carries over), heartbeats and events, two groups.
STRESS = """\
name: stress
seed: 7
duration: 1d
fleet:
  - group: soil
    count: 60
    device: nrf52840_sx1262_2xaa
    placement: {{kind: uniform, area_m: [3000, 2000]}}
    workload: {{signal: farm.soil_climate, sample_period: 20s, window: 12, events_per_day: 3}}
    model: farm_soil_int8
    heartbeat: 1h
  - group: edge
    count: 20
    device: nrf52840_sx1262_2xaa
    placement: {{kind: uniform, area_m: [3000, 2000]}}
    workload: {{signal: farm.soil_climate, sample_period: 5min, window: 12}}
    model: farm_soil_int8
    heartbeat: 3h
network:
  technology: lorawan
  region: EU868
  lorawan: {{sf: 12, duty_cycle_mode: {mode}}}
  propagation: {{pl_d0_db: 98.91, d0_m: 1000, exponent: 3.522, shadowing_sigma_db: 8.0}}
  reception: {{demodulator_paths: 1}}
  gateways:
    - {{id: gw1, position_m: [1000, 1000]}}
    - {{id: gw2, position_m: [2000, 1000]}}
  cloud: {{inference_time: 20s, servers: 2}}
policies: [cloud_offload, on_device, {{cascade: {{confidence_below: 0.8}}}}]
simulation: {{background_pool: 500{chunk}}}
outputs: {{plots: false, report: none}}
"""


TABLES = ("summary", "nodes", "events", "gateways")


def sorted_packets(frame: pd.DataFrame) -> pd.DataFrame:
    """The packets table by (policy, node, ready time, fragment): a chunked run lists them by ready time."""
    key = ["policy", "node_id", "ready_s", "fragment"]
    return frame.drop(columns="message").sort_values(key).reset_index(drop=True)


def assert_same_tables(a: dict, b: dict, what: str = "", names: tuple = TABLES, packets: bool = True) -> None:
    """Two runs' tables (`tables`) are identical, and their packets tables hold the same rows."""
    for name in names:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True, obj=f"{name} {what}")
    if packets:
        pd.testing.assert_frame_equal(sorted_packets(a["packets"]), sorted_packets(b["packets"]), check_exact=True,
                                      obj=f"packets {what}")


def small_cells(tmp_path: Path, monkeypatch, battery: str, capacity_mah: float) -> None:
    """The run's devices with battery profile `battery` holding only `capacity_mah` (IOTSIM_DEVICES)."""
    devices = tmp_path / "devices"
    shutil.copytree(REPO / "devices", devices)
    path = devices / "battery" / f"{battery}.yaml"
    data = yaml.safe_load(path.read_text())
    data["capacity_mah"]["value"] = capacity_mah
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("IOTSIM_DEVICES", str(devices))


def stress(mode: str = "wait", chunk: str | None = None):
    return load_scenario_text(STRESS.format(mode=mode, chunk="" if chunk is None else f", chunk: {chunk}"))


def tables(result) -> dict[str, pd.DataFrame]:
    nodes = nodes_table(result)
    packets = pd.read_parquet(result.packets_path) if result.packets_path is not None else packets_table(result)
    return {"summary": summary_table(result, nodes), "nodes": nodes, "events": events_table(result),
            "gateways": gateways_table(result), "packets": packets}


@pytest.fixture(scope="module", params=["wait", "drop"])
def runs(request):
    mode = request.param
    whole = run_scenario(stress(mode))
    chunked = {c: run_scenario(stress(mode, c)) for c in ("2h", "26003s", "1d")}
    return mode, whole, chunked


def test_the_stress_fleet_exercises_what_chunks_carry(runs):
    mode, whole, _ = runs
    fates = packets_table(whole).loss_reason.value_counts()
    assert fates.get("demodulators_busy", 0) > 1000 and fates.get("collision", 0) > 100
    if mode == "wait":
        assert fates.get("pending_at_end", 0) > 0  # backlogs the duty cycle holds across boundaries
    else:
        assert fates.get("duty_cycle", 0) > 100
    wait = whole.outcomes[0].tally.cloud_waits[0]
    assert np.percentile(wait, 95) > 1.0  # the cloud queues


def test_chunk_length_changes_no_output_byte(runs, tmp_path):
    _, _, chunked = runs
    folders = []
    for c, result in chunked.items():
        folders.append(write_results(result, tmp_path / c.replace(" ", "")))
    names = sorted(p.name for p in folders[0].iterdir())
    assert {"summary.csv", "nodes.parquet", "events.parquet", "packets.parquet", "gateways.csv",
            "findings.md", "findings.json"} <= set(names)
    for other in folders[1:]:
        assert sorted(p.name for p in other.iterdir()) == names
        for name in names:
            if name == "manifest.json":  # it records the scenario (its chunk length) and the command
                continue
            assert filecmp.cmp(folders[0] / name, other / name, shallow=False), name


def test_chunked_tables_equal_the_whole_run_engine(runs):
    _, whole, chunked = runs
    a, b = tables(whole), tables(chunked["2h"])
    # the packets table lists the same frames, by when each message was ready rather than by node
    assert_same_tables(a, b)
    due = b["packets"].groupby("policy", sort=False).message.apply(lambda m: bool((np.diff(m) >= 0).all()))
    assert due.all()  # message numbers run in table order within each policy


@pytest.mark.parametrize("native", [True, False])
def test_the_cloud_queue_fed_in_pieces_equals_simpy(monkeypatch, native):
    if not native:  # the Python loop
        monkeypatch.setattr(CloudQueue, "NATIVE_MAX_SERVERS", 0)
    rng = np.random.default_rng(1)
    arrival = np.sort(rng.exponential(0.4, 5000).cumsum())
    arrival[100:110] = arrival[100]  # simultaneous arrivals
    whole = simulate_cloud(arrival, 1.3, 3, engine="simpy")
    q = CloudQueue(1.3, 3)
    cuts = np.sort(rng.integers(0, arrival.size, 20))
    start, done = [], []
    for part in np.split(arrival, cuts):
        s, d = q.serve(part)
        start.append(s)
        done.append(d)
    np.testing.assert_array_equal(np.concatenate(start), whole.start_s)
    np.testing.assert_array_equal(np.concatenate(done), whole.done_s)


@pytest.mark.parametrize("q", [0, 10, 50, 95, 99.9, 100])
def test_spilled_percentiles_equal_numpy(monkeypatch, q):
    monkeypatch.setattr(WaitSpill, "BLOCK", 64)  # force the passes through the file
    rng = np.random.default_rng(2)
    values = np.concatenate([np.zeros(700), rng.exponential(3.0, 900), np.full(50, 2.5), [np.nan, np.inf]])
    rng.shuffle(values)
    spill = WaitSpill()
    for part in np.array_split(values, 7):
        spill.append(part)
    finite = values[np.isfinite(values)]
    assert spill.n == finite.size
    assert spill.percentile(q) == float(np.percentile(finite, q))
    spill.close()


def test_window_cursor_hands_out_the_whole_run_plans_windows():
    scenario = load_scenario_text(STRESS.format(mode="wait", chunk=""))
    link = make_link(scenario.network)
    gw = np.array([g.position_m for g in scenario.network.gateways], dtype=np.float64)
    resources = load_group_resources(scenario, 0, {})
    whole = plan_group(scenario, 0, 0, gw, resources, link)
    lazy = plan_group(scenario, 0, 0, gw, resources, link, lazy_windows=True)
    np.testing.assert_array_equal(lazy.n_windows, whole.n_windows)
    np.testing.assert_array_equal(lazy.heartbeat_phase_s, whole.heartbeat_phase_s)  # drawn after the pool draws
    cursor = WindowCursor(lazy)
    parts, flats, hb = [], [], []
    for t1 in (3000.0, 3001.0, 20000.0, 20000.0, 55555.5, np.inf):
        view, flat = cursor.take(t1)
        parts.append(view)
        flats.append(flat)
        node, t = view.heartbeats()
        hb.append(np.column_stack([node, t]))
        local = np.arange(flat.size)
        np.testing.assert_array_equal(view.window_end_s(local), whole.window_end_s(flat))
        if flat.size:
            assert (view.window_end_s(local) < t1).all()
    flat = np.concatenate(flats)
    order = np.argsort(flat, kind="stable")
    np.testing.assert_array_equal(flat[order], np.arange(whole.window_offset[-1]))
    for name in ("device_positive", "device_confidence", "cloud_positive"):
        got = np.concatenate([getattr(p.verdicts, name) for p in parts])[order]
        np.testing.assert_array_equal(got, getattr(whole.verdicts, name))
    np.testing.assert_array_equal(np.concatenate([p.event_id for p in parts])[order], whole.event_id)
    hb = np.concatenate(hb)
    node, t = whole.heartbeats()
    got = hb[np.lexsort((hb[:, 1], hb[:, 0]))]
    np.testing.assert_array_equal(got[:, 0], node)
    np.testing.assert_array_equal(got[:, 1], t)


@pytest.mark.parametrize("old, new, words", [
    ("network:\n", "federated: {{start: 6h, every: 6h, rounds: 2}}\nnetwork:\n", "federated rounds (federated:)"),
])
def test_what_chunks_do_not_model_is_refused_clearly(old, new, words):
    assert old in STRESS
    text = STRESS.replace(old, new).format(mode="wait", chunk=", chunk: 1d")
    with pytest.raises(InputError) as err:
        run_scenario(load_scenario_text(text))
    assert "simulation.chunk" in str(err.value) and words in str(err.value)


@pytest.mark.parametrize("name, words", [("farm_solar", "solar harvesting (fleet group soil: solar)"),
                                         ("smart_city", "network.technology 'ieee802154'")])
def test_shipped_scenarios_chunks_cannot_run_are_refused_clearly(name, words):
    doc = yaml.safe_load((REPO / "scenarios" / f"{name}.yaml").read_text())
    doc["simulation"] = dict(doc.get("simulation") or {}, chunk="1d")
    with pytest.raises(InputError) as err:
        run_scenario(load_scenario_text(yaml.safe_dump(doc)))
    assert "simulation.chunk" in str(err.value) and words in str(err.value)


def test_batteries_that_empty_die_as_in_the_whole_run(tmp_path, monkeypatch):
    """Cells of 0.05 mAh: every node dies within hours, a pass finds when (the same schedules), and the chunks
    run again with those deaths: the tables equal the whole-run engine's, whatever the chunk length."""
    small_cells(tmp_path, monkeypatch, "2xaa", 0.05)
    whole = tables(run_scenario(stress()))
    assert whole["nodes"].died_at_s.notna().all()
    assert (whole["packets"].loss_reason == "").any()
    for chunk in ("2h", "26003s"):
        got = tables(run_scenario(stress(chunk=chunk)))
        assert_same_tables(whole, got, f"({chunk})")


@pytest.mark.parametrize("name, duration, chunks", [
    ("wearable", "3h", ("1h", "2501s")),  # BLE: connection events, ECG streams, keep-alive
    ("smart_home", "40min", ("10min", "1333s")),  # Wi-Fi: DTIM listening, 32 kB raw windows in datagrams
])
def test_ble_and_wifi_fleets_run_in_chunks_as_whole(name, duration, chunks):
    doc = yaml.safe_load((REPO / "scenarios" / f"{name}.yaml").read_text())
    doc["duration"] = duration
    doc["outputs"] = {"plots": False, "report": "none", "packets_table": True}

    def run(chunk):
        d = dict(doc, simulation=dict(doc.get("simulation", {})))
        if chunk:
            d["simulation"]["chunk"] = chunk
        return tables(run_scenario(load_scenario_text(yaml.safe_dump(d))))

    whole = run(None)
    assert len(whole["packets"]) > 1000
    first = run(chunks[0])
    assert_same_tables(whole, first, names=("summary", "nodes", "events"))
    other = run(chunks[1])
    for name_ in first:
        pd.testing.assert_frame_equal(first[name_], other[name_], check_exact=True, obj=name_)


def test_a_message_ready_across_a_boundary_keeps_the_whole_runs_order(monkeypatch):
    """A window's message is ready one inference time after the window ends; a heartbeat of the same node can be
    ready in between, and a chunk boundary can fall between the window's end and the heartbeat. The whole run
    sends the heartbeat first (messages by ready time); so must the chunks, or the node's schedule changes."""
    from iotsim.engine.fleet import GroupPlan

    window = {"k": 0}  # every node's heartbeat comes half an inference after the end of its window k
    plan0 = {}

    def heartbeats(self):
        lo, hi = (0.0, self.duration_s) if self.heartbeat_span_s is None else self.heartbeat_span_s
        t = self.phase_s + window["k"] * self.window_period_s + self.window_span_s + self.inference_time_s / 2
        node = np.flatnonzero((t >= lo) & (t < hi) & (t < self.duration_s))
        if self.index == 0:
            plan0.update(phase=self.phase_s[0], period=self.window_period_s, span=self.window_span_s,
                         inference=self.inference_time_s)
        return node, t[node]

    monkeypatch.setattr(GroupPlan, "heartbeats", heartbeats)
    first = tables(run_scenario(stress()))["packets"]
    # a window of group soil's node 0 whose raw data the cascade sends (it was unsure on the node)
    raw = first.query("policy == 'cascade' and node_id == 0 and group == 'soil' and kind == 'raw'").ready_s
    end0 = float(raw[raw > 4 * 3600].iloc[0]) - plan0["inference"]
    window["k"] = int(round((end0 - plan0["phase"] - plan0["span"]) / plan0["period"]))
    whole = run_scenario(stress())
    a = tables(whole)
    cascade = a["packets"].query("policy == 'cascade' and node_id == 0 and group == 'soil'")
    hb = float(cascade[cascade.kind == "heartbeat"].ready_s.iloc[0])
    assert hb < float(raw[raw > 4 * 3600].iloc[0]) and hb > end0  # ready between the window's end and its message
    # a boundary between node 0's window end and its heartbeat (a quarter of an inference after the end)
    chunk = f"{float(end0 + plan0['inference'] / 4)!r}s"
    b = tables(run_scenario(load_scenario_text(STRESS.format(mode="wait", chunk=f", chunk: {chunk}"))))
    assert_same_tables(a, b)


def _nbiot_doc() -> dict:
    """The NB-IoT smart city for 6 h, heartbeats every 5 min and the cell releasing a node 150 s after its last
    data (some reports find their node still connected)."""
    doc = yaml.safe_load((REPO / "scenarios" / "smart_city_nbiot.yaml").read_text())
    doc["outputs"] = {"plots": False, "report": "none", "packets_table": True}
    doc["duration"] = "6h"
    doc["network"]["nbiot"]["inactivity_timer"] = "150s"
    doc["fleet"][0]["heartbeat"] = "5min"
    return doc


def test_nbiot_runs_in_chunks_as_whole():
    """NB-IoT: a node's next report finds it still connected (no new random access) or not, and the tail after each
    report (connected, released, idle) lasts until the next: the chunks carry the node's last report and settle its
    tail when the next one is known, so the tables (connections, connected time, the cell's NPUSCH time) equal the
    whole run's, whatever the chunk length."""
    # heartbeats every 5 min, the cell releasing a node 150 s after its last data: some reports find their node
    # still connected, across chunk boundaries too (the tail of a chunk's last report is settled by the next chunk's;
    # settling it as a last report instead fails this test)
    doc = _nbiot_doc()

    def run(chunk):
        d = dict(doc, simulation=dict(doc.get("simulation", {})))
        if chunk:
            d["simulation"]["chunk"] = chunk
        return run_scenario(load_scenario_text(yaml.safe_dump(d)))

    whole = run(None)
    stats = whole.outcomes[0].tally.node_stats
    assert 0 < stats["connections"].sum() < len(tables(whole)["packets"].query("policy == 'cloud_offload'"))
    a = tables(whole)
    for chunk in ("1h", "2501s", "6h"):
        b = tables(run(chunk))
        assert_same_tables(a, b, f"({chunk})")


def test_nbiot_batteries_that_empty_die_as_in_the_whole_run(tmp_path, monkeypatch):
    """Small cells on NB-IoT: the pass that finds who dies when feeds each chunk's reports once their tails are
    settled (the tail's energy is part of the report's), in order; the tables equal the whole run's."""
    small_cells(tmp_path, monkeypatch, "18650", 8)
    doc = _nbiot_doc()

    def run(chunk):
        d = dict(doc, simulation={"chunk": chunk} if chunk else {})
        return tables(run_scenario(load_scenario_text(yaml.safe_dump(d))))

    whole = run(None)
    died = whole["nodes"].died_at_s.notna()
    assert died.any() and not died.all()
    for chunk in ("1h", "2501s"):
        got = run(chunk)
        assert_same_tables(whole, got, f"({chunk})", packets=False)


@pytest.mark.parametrize("capacity_mah", [None, 10.0])
def test_event_driven_nodes_run_in_chunks_as_whole(capacity_mah, tmp_path, monkeypatch):
    """workload.wake: each chunk's windows wake their node on their own samples (the pool's and event windows'
    extremes of the watched channel), only those are handled, and the ledger and battery count the windows that
    woke each node over the whole run (with small cells: who dies when, from that mean window work); the tables
    equal the whole run's, whatever the chunk length."""
    import test_wake

    if capacity_mah is not None:
        small_cells(tmp_path, monkeypatch, "18650", capacity_mah)

    def run(chunk):
        text = test_wake.RUN % test_wake.WAKE
        if chunk:
            text = text.replace("outputs:", f"simulation: {{chunk: {chunk}}}\noutputs:")
        return run_scenario(load_scenario_text(text.replace("report: none}", "report: none, packets_table: true}")))

    whole = run(None)
    assert 0 < whole.plans[0].triggered.mean() < 0.6
    a = tables(whole)
    if capacity_mah is not None:
        died = a["nodes"].died_at_s.notna()
        assert died.any() and not died.all()
    for chunk in ("6h", "26003s", "2d"):
        b = tables(run(chunk))
        assert_same_tables(a, b, f"({chunk})")


def test_poisson_heartbeats_run_in_chunks_as_whole():
    """heartbeat_arrivals: poisson draws each node's arrivals by block of time from keyed hashes, so each chunk
    draws its own from its blocks: the tables equal the whole run's, whatever the chunk length."""
    text = STRESS.replace("heartbeat: 3h", "heartbeat: 3h\n    heartbeat_arrivals: poisson")
    assert text != STRESS
    whole = run_scenario(load_scenario_text(text.format(mode="wait", chunk="")))
    node, t = whole.plans[1].heartbeats()
    gaps = np.diff(t)[np.diff(node) == 0]
    assert node.size > 100 and 0.8 < np.std(gaps) / np.mean(gaps) < 1.2  # exponential gaps: CV 1
    a = tables(whole)
    for chunk in ("2h", "26003s"):
        b = tables(run_scenario(load_scenario_text(text.format(mode="wait", chunk=f", chunk: {chunk}"))))
        assert_same_tables(a, b, f"({chunk})")
