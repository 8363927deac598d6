"""The compiled closed loop (iotsim/link/_lorawan_loop.c) gives the SimPy engine's bytes.

The SimPy engine of iotsim.link.lorawan_loop is the reference; the compiled loop is its fast path. Both
run the same scenarios here, covering each mechanism (confirmed uplinks, NbTrans, ADR and its backoff,
application downlinks, duty-cycle waits and drops, both regions, every reception model, downlink
interference on and off), and every table must be equal to the last bit."""

import numpy as np
import pandas as pd
import pytest

from iotsim.engine import run_scenario
from iotsim.errors import InputError
from iotsim.link import loop_native
from iotsim.network import native
from iotsim.network.fate import Fate
from iotsim.results import nodes_table, summary_table
from iotsim.results.tables import gateways_table
from iotsim.scenario import load_scenario_text
from test_closed_loop import _tables as closed_loop_tables
from test_closed_loop import tiny_batteries

pytestmark = pytest.mark.skipif(loop_native.lib() is None, reason=f"no compiled loop: {loop_native.load_error}")

SCENARIO = """\
name: both_engines
seed: {seed}
duration: 6h
fleet:
  - group: g
    count: {count}
    device: nrf52840_sx1262_2xaa
    placement: {{kind: uniform, area_m: [3000, 3000]}}
    workload: {{signal: farm.soil_climate, sample_period: 5s, window: 12, events_per_day: 4}}
    model: farm_soil_int8
    heartbeat: 20min
network:
  region: {region}
  lorawan: {{sf: auto, uplink_channels: {channels}, {lorawan}}}
  reception: {reception}
  backhaul: {backhaul}
  gateways:
    - {{id: gw1, position_m: [800, 1500]}}
    - {{id: gw2, position_m: [2200, 1500]{gw2}}}
    - {{id: gw3, position_m: [1500, 2900]}}
policies: [cloud_offload, on_device]
simulation: {{background_pool: 500}}
outputs: {{plots: false, report: none}}
{updates}"""

CASES = {
    "confirmed, ADR, 8 transmissions": dict(lorawan="confirmed: true, nb_trans: 8, adr: true"),
    "confirmed, app downlinks, duty-cycle drops": dict(
        lorawan="confirmed: true, nb_trans: 4, adr: true, downlinks_per_day: 12, duty_cycle_mode: drop"),
    "unconfirmed, NbTrans 3": dict(lorawan="nb_trans: 3"),
    "closed loop, nothing fed back": dict(lorawan="engine: closed_loop"),
    "orthogonal SFs, 2 paths": dict(lorawan="confirmed: true, nb_trans: 4, adr: true",
                                   reception="{inter_sf: orthogonal, demodulator_paths: 2}"),
    "capture 0 dB": dict(lorawan="confirmed: true, nb_trans: 4", reception="{capture_threshold_db: 0}"),
    "no capture, unlimited paths, no downlink interference": dict(
        lorawan="confirmed: true, nb_trans: 2, adr: true", reception="{capture_threshold_db: .inf, demodulator_paths: null, "
                                                        "downlink_interference: false}"),
    "US915, ADR": dict(region="US915", channels=8, lorawan="confirmed: true, nb_trans: 3, adr: true"),
    "slow backhaul: answers in RX2": dict(
        backhaul="{latency: 450ms}", lorawan="confirmed: true, nb_trans: 4, adr: true, downlinks_per_day: 12"),
    "backhaul slower than RX2: no answers": dict(backhaul="{latency: 1s}", lorawan="confirmed: true, nb_trans: 3, adr: true"),
    "a model update's multicast session during confirmed traffic": dict(
        lorawan="confirmed: true, nb_trans: 4, adr: true", channels=3,
        updates="updates:\n  - {at: 1h, model: farm_soil_int8, mode: full, data_rate: 3, redundancy: 0.5}\n"),
    "class A unicast of a model update: polls among confirmed traffic, fragments on each gateway": dict(
        lorawan="confirmed: true, nb_trans: 4, adr: true", channels=3,
        updates="updates:\n  - {at: 1h, model: farm_soil_int8, mode: full, data_rate: 3, unicast: only, "
                "poll_period: 2min}\n"),
    "one gateway's copies outside the deduplication window": dict(
        backhaul="{latency: 10ms}", gw2=", backhaul: {latency: 300ms}",
        lorawan="confirmed: true, nb_trans: 4, adr: true, downlinks_per_day: 12, deduplication_delay: 150ms"),
}


def _tables(result):
    return (*closed_loop_tables(result), gateways_table(result))


def _run(monkeypatch, engine, **case):
    params = dict(seed=3, count=120, region="EU868", channels=2, lorawan="", reception="{}", backhaul="{}", gw2="",
                  updates="") | case
    monkeypatch.setenv(loop_native.ENGINE_ENV, engine)
    return run_scenario(load_scenario_text(SCENARIO.format(**params)))


@pytest.mark.parametrize("case", list(CASES))
def test_the_compiled_loop_gives_the_simpy_engines_bytes(monkeypatch, case):
    # class A unicast: three passes (each the same in both engines; this busy closed loop settles only after many)
    monkeypatch.setattr("iotsim.engine.updates.MAX_POLL_PASSES", 3)
    simpy_run = _run(monkeypatch, "simpy", **CASES[case])
    compiled = _run(monkeypatch, "compiled", **CASES[case])
    for a, b in zip(_tables(simpy_run), _tables(compiled)):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    s = summary_table(simpy_run)
    assert s.packets_delivered.sum() > 0 and s.packets_lost.sum() > 0  # not vacuous: frames were lost and kept
    answers = "no answers" not in case
    if "confirmed" in CASES[case]["lorawan"]:
        assert s.retransmissions.sum() > 0 and (s.acks_received.sum() > 0) == answers
    if "adr: true" in CASES[case]["lorawan"]:
        assert (s.adr_commands.sum() > 0) == answers


def test_both_engines_agree_when_nodes_die(tmp_path, monkeypatch):
    """Confirmed traffic with ADR on cells too small for the run: nodes die mid-run (the engine re-runs
    the link with their death times), and both engines still give the same tables."""
    tiny_batteries(tmp_path, monkeypatch)
    case = dict(count=60, lorawan="confirmed: true, nb_trans: 4, adr: true")
    simpy_run = _run(monkeypatch, "simpy", **case)
    compiled = _run(monkeypatch, "compiled", **case)
    assert nodes_table(simpy_run).died_at_s.notna().sum() > 10
    for a, b in zip(_tables(simpy_run), _tables(compiled)):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    # whether or not the death times settled, every frame counted delivered went through a gateway (none
    # that the link planned after the death time it ran with)
    for out in compiled.outcomes:
        assert (out.tx.gateway[out.tx.fate == Fate.DELIVERED] >= 0).all()


def test_the_c_generator_is_numpys_pcg64():
    rng = np.random.default_rng(12345)
    rng.random(7)  # anywhere in the stream
    got = loop_native.pcg64_doubles(rng, 10_000)
    assert np.array_equal(got, rng.random(10_000))


def test_an_unknown_engine_is_refused(monkeypatch):
    monkeypatch.setenv(loop_native.ENGINE_ENV, "fast")
    with pytest.raises(InputError, match="IOTSIM_CLOSED_LOOP must be one of auto, simpy, compiled"):
        loop_native.engine_choice()


def test_asking_for_the_compiled_loop_without_it_says_why(monkeypatch):
    monkeypatch.setattr(loop_native, "_tried", True)
    monkeypatch.setattr(loop_native, "_lib", None)
    monkeypatch.setattr(loop_native, "load_error", "RuntimeError: no host C compiler (cc or gcc) found")
    with pytest.raises(InputError, match="cannot run: it could not be built .*no host C compiler"):
        _run(monkeypatch, "compiled", count=5, lorawan="confirmed: true")
    # auto falls back to the SimPy engine
    s = summary_table(_run(monkeypatch, "auto", count=5, lorawan="confirmed: true"))
    assert s.packets_delivered.sum() > 0


def test_native_builds_share_one_builder():
    assert native.build(loop_native.SOURCE, "lorawan_loop").name.startswith("liblorawan_loop-")
