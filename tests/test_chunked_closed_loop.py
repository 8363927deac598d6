"""The LoRaWAN closed loop in time chunks (iotsim.link.lorawan_loop.LoopChunks on the compiled loop): the nodes'
MAC and ADR state, the network server's and the gateways' carried from chunk to chunk give the whole run's tables,
and the chunk length changes no output byte."""

import filecmp

import numpy as np
import pytest

from iotsim.engine import run_scenario
from iotsim.errors import InputError
from iotsim.link.lorawan_loop import LoopChunks
from iotsim.results import write_results
from iotsim.scenario import load_scenario_text
from test_chunked import STRESS, assert_same_tables, small_cells, tables

CHUNK_S = 7200.0

# feedback on the congested stress fleet: ACKs and retransmissions (their timeouts and channels drawn in event
# order); ADR commands, the devices' ADR backoff and
# application downlinks; NbTrans repetitions with frames dropped by the duty cycle
VARIANTS = {
    "confirmed": ("wait", "confirmed: true, nb_trans: 4"),
    "adr": ("wait", "adr: true, confirmed: true, downlinks_per_day: 2"),
    "nb_trans": ("drop", "nb_trans: 3"),
}


def scenario(variant: str, chunk: str | None = None):
    mode, extra = VARIANTS[variant]
    text = STRESS.replace("duty_cycle_mode: {mode}}}", "duty_cycle_mode: {mode}, " + extra + "}}")
    assert text != STRESS
    return load_scenario_text(text.format(mode=mode, chunk="" if chunk is None else f", chunk: {chunk}"))


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def runs(request):
    variant = request.param
    held = {}  # per loop (policy and run): after each chunk, rows the compiled loop holds and rows it handed back
    feed = LoopChunks.feed

    def watched(self, messages, t_end_s):
        out = feed(self, messages, t_end_s)
        held.setdefault(self, []).append((int(self.session.out.rows.n), sum(len(tx) for tx in out)))
        return out

    whole = run_scenario(scenario(variant))
    mp = pytest.MonkeyPatch()
    mp.setattr(LoopChunks, "feed", watched)
    try:
        chunked = {c: run_scenario(scenario(variant, c)) for c in ("2h", "26003s", "1d")}
    finally:
        mp.undo()
    return variant, whole, chunked, held


def test_the_feedback_is_exercised_across_chunk_boundaries(runs):
    variant, whole, _, _ = runs
    packets = tables(whole)["packets"]
    stats = whole.outcomes[0].tally.node_stats
    if variant == "confirmed":
        assert stats["acks_received"].sum() > 1000 and (packets.attempts > 1).sum() > 1000
    elif variant == "adr":
        assert stats["adr_commands"].sum() > 10 and stats["app_downlinks_received"].sum() > 10
        assert whole.outcomes[0].tally.final_tx_power_dbm.min() < whole.outcomes[0].tally.final_tx_power_dbm.max()
    else:
        assert (packets.loss_reason == "duty_cycle").sum() > 100 and (packets.attempts == 3).sum() > 1000
    # frames sent in a later 2 h chunk than the one their message was due in (the loop carries them over)
    sent = packets[packets.start_s.notna()]
    crossing = (np.floor(sent.start_s / CHUNK_S) > np.floor(sent.ready_s / CHUNK_S)).sum()
    assert crossing >= (1 if variant == "adr" else 100)  # (ADR's faster data rates leave little backlog)


def test_chunked_closed_loop_tables_equal_the_whole_run(runs):
    _, whole, chunked, _ = runs
    a = tables(whole)
    for c, result in chunked.items():
        b = tables(result)
        assert_same_tables(a, b, f"({c})")


def test_chunk_length_changes_no_output_byte(runs, tmp_path):
    _, _, chunked, _ = runs
    folders = [write_results(result, tmp_path / c) for c, result in chunked.items()]
    names = sorted(p.name for p in folders[0].iterdir())
    for other in folders[1:]:
        assert sorted(p.name for p in other.iterdir()) == names
        for name in names:
            if name != "manifest.json":  # it records the chunk length
                assert filecmp.cmp(folders[0] / name, other / name, shallow=False), name


def test_the_loop_hands_frames_back_chunk_by_chunk(runs):
    """Memory: after each chunk the compiled loop holds only the frames of the chunks not complete yet (those a
    backlog or a retransmission carries into the next), a few chunks' worth, not the run's; none at the end."""
    _, _, _, held = runs
    assert len(held) == 9  # three policies, three chunk lengths
    for trace in held.values():
        rows, handed = np.array(trace).T
        assert rows[-1] == 0 and handed.sum() > 1000
        if len(trace) == 12:  # 2 h chunks
            assert rows.max() <= 2 * handed.max() and rows.max() < handed.sum() / 4


def test_the_closed_loop_needs_the_compiled_engine_in_chunks(monkeypatch):
    monkeypatch.setenv("IOTSIM_CLOSED_LOOP", "simpy")
    with pytest.raises(InputError) as err:
        run_scenario(scenario("confirmed", "2h"))
    assert "simulation.chunk" in str(err.value) and "compiled" in str(err.value)


@pytest.mark.parametrize("capacity_mah", [0.05, 0.4])
def test_batteries_that_empty_die_as_in_the_whole_run(tmp_path, monkeypatch, capacity_mah):
    """Small cells: nodes die within the day, each death changing the others' traffic; the chunks go through the
    whole run's passes (deaths found, traffic run again with them, until they settle) and give its tables."""
    small_cells(tmp_path, monkeypatch, "2xaa", capacity_mah)
    whole = tables(run_scenario(scenario("confirmed")))
    died = whole["nodes"].died_at_s.notna()
    assert died.any() and (capacity_mah < 0.1 or not died.all())  # the larger cells: some nodes last the day
    for chunk in ("2h", "26003s"):
        got = tables(run_scenario(scenario("confirmed", chunk)))
        assert_same_tables(whole, got, f"({chunk})")
