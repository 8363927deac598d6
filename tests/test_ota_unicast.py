"""LoRaWAN class A unicast of an update (iotsim.ota.unicast): the baseline to a multicast session and the
repair after one, checked by hand, against closed forms, and in whole runs."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotsim.engine import run_scenario
from iotsim.errors import InputError
from iotsim.ota import fec
from iotsim.network.fate import Fate
from iotsim.ota.unicast import UnicastNodes, simulate_unicast
from iotsim.results.tables import summary_table, updates_table
from iotsim.scenario import load_scenario_text

sys.path.insert(0, str(Path(__file__).parent))
from test_updates import SCENARIO, _star_run, always_positive_model  # noqa: E402

AIR, LEAD_DELAY, RX1, RX2, STARTUP, D = 0.0412, 2.0, 0.0123, 0.2621, 0.003, 2.793


def nodes(n, period, gateway=None, p_poll=1.0, p_frag=1.0):
    return UnicastNodes(np.zeros(n, np.int64) if gateway is None else np.asarray(gateway), np.full(n, AIR),
                        np.full(n, float(period)), np.full(n, p_poll), np.full(n, p_frag), np.full(n, RX1),
                        np.full(n, STARTUP))


def run(ns, m, *, duty_cycle=0.1, start=0.0, horizon=1e9, seed=0, decoders=None, first_index=1):
    decoders = decoders if decoders is not None else [fec.Decoder(m) for _ in range(ns.gateway.shape[0])]
    return simulate_unicast(ns, decoders, first_index=first_index, fragment_airtime_s=D, rx2_delay_s=LEAD_DELAY,
                            rx2_window_s=RX2, duty_cycle=duty_cycle, start_s=start, horizon_s=horizon,
                            rng=np.random.default_rng(seed))


def test_one_node_on_clean_links_is_sent_a_fragment_per_poll_worked_by_hand():
    """Polls every 40 s (longer than the gateway's 27.93 s gap at 10 %): m = 5 uncoded fragments, one per
    poll, decoded after the fifth. The polls are frames of the run (charged there); the rollout keeps each
    received fragment's time on air beyond the RX2 window."""
    period, m, start = 40.0, 5, 100.0
    rollout, counts = run(nodes(1, period), m, start=start, seed=3)
    first = start + np.random.default_rng(3).random(1)[0] * period  # the first poll's phase, the same stream
    done = first + (m - 1) * period + AIR + LEAD_DELAY + D
    assert rollout.done_s[0] == pytest.approx(done, abs=1e-9)
    assert rollout.decoded_at[0] == m and rollout.received[0] == m
    assert (counts["fragments_sent"], counts["polls"]) == (m, m) and counts["polls_per_node"].tolist() == [m]
    assert counts["gateway_airtime_s"] == pytest.approx(m * D) and counts["busy_until_s"] == pytest.approx(done)
    assert counts["first_poll_s"][0] == first and counts["poll_period_s"][0] == period
    assert rollout.tx_s[0] == 0 and rollout.standby_s[0] == 0
    assert rollout.rx_s[0] == pytest.approx(m * (D - RX2))
    assert rollout.radio_from_s[0] == pytest.approx(first) and rollout.radio_until_s[0] == pytest.approx(done)


def test_the_gateways_duty_cycle_paces_a_busy_gateway():
    """Twenty nodes polling every 5 s share one gateway whose RX2 sub-band allows a fragment every
    D / 0.1 = 27.93 s: consecutive fragments are that far apart or more (at most one poll period more), so
    the last node has its 20 x 3 fragments after (60 - 1) gaps, and nodes polled all along."""
    m, n, period = 3, 20, 5.0
    rollout, counts = run(nodes(n, period), m)
    gap = D / 0.1
    assert counts["fragments_sent"] == n * m and rollout.decoded.all()
    last = np.nanmax(rollout.done_s)
    assert (n * m - 1) * gap + D <= last + 1e-9
    assert last <= (n * m - 1) * (gap + period) + period + AIR + LEAD_DELAY + D
    # every node polled from its first poll until it decoded, every period
    polls = np.floor((rollout.done_s - D - AIR - LEAD_DELAY - rollout.radio_from_s) / period + 1e-9) + 1
    np.testing.assert_array_equal(counts["polls_per_node"], polls)
    assert counts["polls"] == polls.sum() > 10 * n * m  # most polls find the sub-band spent


def test_two_gateways_serve_their_own_nodes_at_once():
    m, period = 4, 5.0
    one, _ = run(nodes(10, period), m)
    two, counts = run(nodes(20, period, gateway=np.repeat([0, 1], 10)), m)
    assert counts["fragments_sent"] == 20 * m
    # each gateway takes as long for its ten as one gateway for ten
    assert np.nanmax(two.done_s) == pytest.approx(np.nanmax(one.done_s), rel=0.1)


def test_lost_polls_follow_the_negative_binomial_mean():
    """Each poll reaches the gateway with p = 0.4 and nothing else is lost: a node needs m polls that get
    through, so it makes m / p polls on average (each node alone on its gateway: no waiting)."""
    m, n, p = 6, 3000, 0.4
    rollout, counts = run(nodes(n, 40.0, gateway=np.arange(n), p_poll=p), m)
    assert rollout.decoded.all() and (rollout.received == m).all()
    assert counts["polls"] / n == pytest.approx(m / p, rel=0.03)
    assert counts["fragments_sent"] == n * m


def test_lost_fragments_are_made_up_by_coded_ones():
    """Fragments lost on the way (p = 0.7 each) are not resent: the server goes on with coded fragments and
    a node stops once what it holds spans the block (fec.Decoder). It holds at least m then, and since it
    stops on what it received, Wald's identity gives fragments received = p x fragments sent on average."""
    m, n, p = 8, 2000, 0.7
    rollout, counts = run(nodes(n, 40.0, gateway=np.arange(n), p_frag=p), m)
    assert rollout.decoded.all() and (rollout.received >= m).all()
    assert (rollout.decoded_at > m).mean() > 0.5  # most needed a coded fragment
    assert rollout.received.sum() == pytest.approx(p * counts["fragments_sent"], rel=0.02)
    assert m < rollout.received.mean() < m + 3  # TS004's parity rows: a few extra at most


def test_a_repair_continues_with_the_coded_fragments_the_session_did_not_send():
    m, total = 5, 7
    dec = fec.Decoder(m)
    for index in (1, 2, 6):  # three of seven: not enough
        dec.add(index)
    rollout, counts = run(nodes(1, 40.0), m, decoders=[dec], first_index=total + 1)
    assert rollout.decoded[0] and rollout.decoded_at[0] > total
    assert counts["fragments_sent"] == rollout.received[0] >= 2


def test_the_polls_a_run_heard_are_answered_at_their_heard_frame_worked_by_hand():
    """A run's verdicts replace the fading draws: poll 0 unheard, poll 1 heard with its frame 3 s late (the duty
    cycle held it), poll 2 heard on time. m = 2: the first fragment goes RECEIVE_DELAY2 after the late frame's
    end, the second after poll 2's; the node decodes then and made three polls."""
    # (PollVerdicts hold when the heard transmission ended)
    from iotsim.ota.unicast import PollVerdicts

    period, m = 40.0, 2
    first = np.random.default_rng(5).random(1)[0] * period
    heard = PollVerdicts(np.zeros(3, np.int64), np.arange(3), np.array([False, True, True]),
                         np.array([np.nan, first + period + 3.0 + AIR, first + 2 * period + AIR]))
    ns = nodes(1, period, p_poll=0.0)  # without a verdict no poll would be heard: every one answered has one
    rollout, counts = simulate_unicast(ns, [fec.Decoder(m)], first_index=1, fragment_airtime_s=D,
                                       rx2_delay_s=LEAD_DELAY, rx2_window_s=RX2, duty_cycle=0.1, start_s=0.0,
                                       horizon_s=1e9, rng=np.random.default_rng(5), verdicts=heard)
    lead = AIR + LEAD_DELAY
    np.testing.assert_allclose(counts["send_s"], [first + period + 3.0 + lead, first + 2 * period + lead], rtol=0,
                               atol=1e-9)
    assert rollout.decoded_at[0] == m and counts["polls_per_node"].tolist() == [3]
    assert rollout.done_s[0] == pytest.approx(first + 2 * period + lead + D, abs=1e-9)
    # past the polls a run gave verdicts for, fading decides again: here nothing is heard, so no decoding
    short = PollVerdicts(np.zeros(2, np.int64), np.arange(2), np.array([False, True]),
                         np.array([np.nan, first + period + AIR]))
    rollout, counts = simulate_unicast(ns, [fec.Decoder(m)], first_index=1, fragment_airtime_s=D,
                                       rx2_delay_s=LEAD_DELAY, rx2_window_s=RX2, duty_cycle=0.1, start_s=0.0,
                                       horizon_s=1000.0, rng=np.random.default_rng(5), verdicts=short)
    assert counts["fragments_sent"] == 1 and not rollout.decoded[0]


def test_a_node_that_runs_out_of_time_stays_without_the_update():
    rollout, counts = run(nodes(1, 40.0), 5, horizon=130.0)
    assert not rollout.decoded[0] and np.isnan(rollout.done_s[0])
    assert 1 <= counts["fragments_sent"] <= 3
    # it polled until the run ended, every poll charged
    assert rollout.radio_until_s[0] <= 130.0 and counts["polls_per_node"][0] == counts["polls"] >= 2


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return always_positive_model(tmp_path_factory.mktemp("models"))


def _run(update: str):
    return run_scenario(load_scenario_text(SCENARIO.format(updates=f"  - {{{update}}}")))


def test_repair_updates_the_nodes_the_session_left_and_leaves_the_others_alone(model):
    plain = _run(f"at: 1d, model: {model}, fragment_loss: 0.3")
    repaired = _run(f"at: 1d, model: {model}, fragment_loss: 0.3, unicast: repair")
    pa = next(o for o in plain.outcomes if o.policy.name == "cloud_offload")
    pb = next(o for o in repaired.outcomes if o.policy.name == "cloud_offload")
    (a,), (b,) = plain.updates_of(pa), repaired.updates_of(pb)
    left = ~a.rollout.decoded
    assert left.sum() > 10 and b.rollout.decoded.all()
    # the session's draws are the same: nodes that decoded it did so at the same moment
    np.testing.assert_array_equal(a.rollout.done_s[~left], b.rollout.done_s[~left])
    np.testing.assert_array_equal(a.rollout.rx_s[~left], b.rollout.rx_s[~left])
    # the repaired ones decoded on coded fragments the session did not send, after it, and polled for them
    total = a.session.fragments.total
    assert (b.rollout.decoded_at[left] > total).all()
    assert (b.rollout.done_s[left] > a.session.session_s).all()
    assert (b.unicast.polls_per_node > 0).all() and b.unicast.node_pos.tolist() == np.flatnonzero(left).tolist()
    assert (b.rollout.rx_s[left] > a.rollout.rx_s[left]).all()  # the fragments received beyond RX2's window
    row = updates_table(repaired).set_index("policy").loc["cloud_offload"]
    assert row.unicast_nodes == left.sum() and row.unicast_fragments_sent >= left.sum()
    assert row.nodes_updated == 60 and updates_table(plain).iloc[0].nodes_updated == 60 - left.sum()
    assert any("class A unicast" in note for note in repaired.notes)
    # the polls are frames of every policy's run: the ledger's extra radio time is theirs, plus the fragments
    # received beyond the RX2 window (outside frames)
    from iotsim.energy.ledger import SLOT_INDEX
    from iotsim.policies import MessageKind

    poll = pb.messages.kind[pb.tx.message] == MessageKind.POLL
    assert poll.sum() == b.unicast.polls_per_node.sum() == b.unicast.polls
    outside = np.zeros(60)
    outside[b.nodes] = b.rollout.rx_s - a.rollout.rx_s
    for state, attr, extra_outside in (("rx", "rx_s", outside), ("tx", "tx_s", 0.0), ("standby", "standby_s", 0.0)):
        col = SLOT_INDEX[("radio", state)]
        frames = np.bincount(pb.tx.node[poll], weights=getattr(pb.tx, attr)[poll], minlength=60)
        np.testing.assert_allclose(pb.ledger.time_s[:, col] - pa.ledger.time_s[:, col], frames + extra_outside,
                                   rtol=0, atol=1e-6)


def test_polls_are_uplinks_that_load_the_network(model):
    """Every poll the unicast schedule made is a message of kind poll at its time (first poll + j periods),
    put on air with the other uplinks: they take their share of the channel and some regular uplinks are
    lost to them; the application's message counts leave them out."""
    from iotsim.policies import MessageKind

    multicast = _run(f"at: 1d, model: {model}")
    only = _run(f"at: 1d, model: {model}, unicast: only")
    o = next(x for x in only.outcomes if x.policy.name == "cloud_offload")
    (u,) = only.updates_of(o)
    pos, t = u.unicast.polls_of()
    polls = o.messages.kind == MessageKind.POLL
    got = np.lexsort((o.messages.ready_s[polls], o.messages.node[polls]))
    want = np.lexsort((u.start_s + t, u.nodes[pos]))
    np.testing.assert_array_equal(o.messages.node[polls][got], u.nodes[pos][want])
    np.testing.assert_allclose(o.messages.ready_s[polls][got], (u.start_s + t)[want], rtol=0, atol=1e-9)
    assert (o.messages.app_bytes[polls] == 0).all()
    a = summary_table(multicast).set_index("policy").loc["cloud_offload"]
    b = summary_table(only).set_index("policy").loc["cloud_offload"]
    assert a.messages_offered == b.messages_offered  # the application's messages, polls left out
    assert b.messages_delivered < a.messages_delivered and b.packets_lost_collision > a.packets_lost_collision
    assert b.packets_on_air == a.packets_on_air + polls.sum()
    note = next(n for n in only.notes if n.startswith("Unicast polls, policy cloud_offload"))
    assert f"{int(polls.sum()):,} on air" in note
    row = updates_table(only).iloc[0]
    assert row.unicast_poll_energy_j_per_node > 0


def test_unicast_only_is_the_slow_baseline(model):
    multicast = _run(f"at: 1d, model: {model}")
    only = _run(f"at: 1d, model: {model}, unicast: only")
    m, u = updates_table(multicast).iloc[0], updates_table(only).iloc[0]
    assert u.nodes_updated == 60 and u.unicast_nodes == 60
    # one gateway sends every node its fragments one after another through a 10 % sub-band
    assert u.unicast_fragments_sent >= 60 * u.fragments_uncoded
    assert u.time_to_95pct_s > 20 * m.time_to_95pct_s
    # its radio energy: the polls (frames of the run) and the fragments, against the session's listening
    assert u.listen_energy_j_per_node + u.unicast_poll_energy_j_per_node > m.listen_energy_j_per_node
    again = _run(f"at: 1d, model: {model}, unicast: only")
    pd.testing.assert_frame_equal(updates_table(only), updates_table(again), check_exact=True)
    pd.testing.assert_frame_equal(summary_table(only), summary_table(again), check_exact=True)


def test_a_poll_period_slows_the_polls_and_bad_values_are_refused(model):
    fast = _run(f"at: 1d, model: {model}, unicast: only")
    slow = _run(f"at: 1d, model: {model}, unicast: only, poll_period: 10min")
    assert updates_table(slow).iloc[0].unicast_polls_per_node < updates_table(fast).iloc[0].unicast_polls_per_node / 10
    with pytest.raises(InputError, match="poll_period"):
        _run(f"at: 1d, model: {model}, unicast: only, poll_period: 0s")
    with pytest.raises(InputError, match="unicast"):
        _run(f"at: 1d, model: {model}, unicast: sometimes")
    with pytest.raises(InputError, match="unicast set a LoRaWAN FUOTA session"):
        _star_run("ble", "  - {at: 1h, model: farm_soil_int8, unicast: repair}")


def test_more_polls_than_a_run_holds_are_refused(model, monkeypatch):
    import iotsim.engine.updates as updates

    monkeypatch.setattr(updates, "MAX_ITEMS_PER_GROUP", 1000)
    with pytest.raises(InputError, match="set poll_period") as e:
        _run(f"at: 1d, model: {model}, unicast: only")
    assert e.value.field == "updates.0.poll_period"
    _run(f"at: 1d, model: {model}, unicast: only, poll_period: 1h")  # 60 nodes x at most 24 polls: fine


def test_unicast_fragments_keep_their_own_gateway_from_receiving(model):
    """Each unicast fragment is in the schedule of the gateway that sent it (half duplex: it receives nothing
    meanwhile), not the other's: each gateway's airtime is its own fragments, and uplinks (polls and the
    rest) are lost to a transmitting gateway."""
    from iotsim.engine.updates import gateway_schedule
    from iotsim.results.tables import gateways_table

    two = SCENARIO.format(updates=f"  - {{at: 1d, model: {model}, unicast: only}}").replace(
        "    - {id: gw1, position_m: [600, 600]}",
        "    - {id: gw1, position_m: [300, 600]}\n    - {id: gw2, position_m: [900, 600]}")
    result = run_scenario(load_scenario_text(two))
    (u,) = result.updates_of(next(o for o in result.outcomes if o.policy.name == "on_device"))
    sent = np.bincount(u.unicast.send_gw, minlength=2)
    assert (sent > 0).all()
    gw = gateways_table(result)
    air = gw[gw.policy == "on_device"].tx_airtime_s.to_numpy()
    np.testing.assert_allclose(air, sent * u.unicast.fragment_airtime_s, rtol=1e-9)  # on_device sends no answers
    assert summary_table(result).packets_lost_gateway_transmitting.min() > 100
    sched = gateway_schedule([u])
    assert (np.diff(sched.start_s) >= 0).all()
    for g in (0, 1):
        mine = sched.of_gateway(g)
        assert mine.sum() == sent[g] and (sched.start_s[mine][1:] >= sched.end_s[mine][:-1]).all()  # disjoint


def test_a_gateways_unicast_fragments_hold_its_rx2_sub_band_for_class_a_answers(monkeypatch):
    """Each unicast fragment spends its gateway's RX2 sub-band for its off-time (airtime / 10 %): the network
    server answers no confirmed uplink in RX2 through that gateway meanwhile (it answers in RX1, or through
    another gateway), and the holds are per gateway: the others answer in RX2 during them."""
    from test_lorawan_loop_native import CASES
    from test_lorawan_loop_native import SCENARIO as BOTH

    from iotsim.link import loop_native, lorawan_loop

    case = CASES["class A unicast of a model update: polls among confirmed traffic, fragments on each gateway"]
    params = dict(seed=3, count=120, region="EU868", channels=2, lorawan="", reception="{}", backhaul="{}", gw2="",
                  updates="") | case
    scenario = load_scenario_text(BOTH.format(**params))
    scenario = scenario.model_copy(update={"policies": scenario.policies[:1]})
    monkeypatch.setenv(loop_native.ENGINE_ENV, "simpy")
    monkeypatch.setattr("iotsim.engine.updates.MAX_POLL_PASSES", 1)  # the holds do not depend on the passes
    loops, refused = [], []
    keep = lorawan_loop.ClosedLoop._transmissions
    held = lorawan_loop.ClosedLoop._band_held

    def spy(self):
        loops.append(self)
        return keep(self)

    def spy_held(self, g, band, t0, t1):
        got = held(self, g, band, t0, t1)
        if got:
            refused.append(g)
        return got

    monkeypatch.setattr(lorawan_loop.ClosedLoop, "_transmissions", spy)
    monkeypatch.setattr(lorawan_loop.ClosedLoop, "_band_held", spy_held)
    run_scenario(scenario)
    loop = loops[-1]
    rx2 = float(loop.region.rx2_frequency_hz)
    band = int(loop.region.sub_band_index(rx2))
    assert loop.gw_holds and not loop.holds  # unicast only: every hold is one gateway's
    in_hold = {g: 0 for g in range(loop.n_gw)}
    for t0, (t1, freq, _sf, g) in zip(loop.dl_starts, loop.dl_rows):
        if freq != rx2:
            continue
        los, his = loop.gw_holds.get((g, band), ([], []))
        i = np.searchsorted(los, t1) - 1
        assert not (i >= 0 and his[i] > t0), f"gateway {g} answered in RX2 at {t0} during its own fragment's hold"
        for h in range(loop.n_gw):  # another gateway's hold covers it: holds are per gateway
            lo, hi = loop.gw_holds.get((h, band), ([], []))
            j = np.searchsorted(lo, t1) - 1
            in_hold[h] += h != g and j >= 0 and hi[j] > t0
    assert refused and sum(in_hold.values()) > 0


def test_holds_split_into_every_gateways_and_each_gateways_own_merged():
    from iotsim.link.lorawan_loop import split_holds
    from iotsim.radio.lorawan import get_region

    region = get_region("EU868")
    f = float(region.rx2_frequency_hz)
    b = int(region.sub_band_index(f))
    shared, own = split_holds([(f, 0.0, 10.0, -1), (f, 5.0, 8.0, 1), (f, 7.0, 9.0, 1), (f, 20.0, 21.0, 1),
                               (f, 3.0, 4.0, 0), (f, 1.0, 2.0)], region)
    assert shared == [(b, 0.0, 10.0), (b, 1.0, 2.0)]  # -1 and 3-tuples: every gateway
    assert own == {(1, b): ([5.0, 20.0], [9.0, 21.0]), (0, b): ([3.0], [4.0])}  # overlapping windows merged


def _answers_follow_the_run(result, outcome):
    """Check the network's answers against what `outcome`'s run made of the polls: every fragment answers a
    poll the run heard (RECEIVE_DELAY2 after that frame's end, on the node's strongest gateway, at most once
    per poll), and each gateway answered every heard poll of a node still without the update whose RX2 opened
    while its sub-band had duty cycle left. Returns the number of heard polls."""
    from iotsim.policies import MessageKind

    (u,) = result.updates_of(outcome)
    uc = u.unicast
    m, tx = outcome.messages, outcome.tx
    # the polls' frames the network heard (one attempt each in this open-loop run): their ends
    polls = (m.kind[tx.message] == MessageKind.POLL) & (tx.fate == Fate.DELIVERED)
    assert tx.attempts is None or (tx.attempts[polls] == 1).all()
    node = tx.node[polls]
    opens = tx.start_s[polls] + tx.airtime_s[polls] + 2.0 - u.start_s  # EU868 RECEIVE_DELAY2: 2 s
    rx = np.concatenate([p.rx_power_dbm for p in result.plans])
    gw = rx.argmax(axis=1)[node]
    done = np.full(rx.shape[0], np.inf)
    done[u.nodes] = np.where(np.isnan(u.rollout.done_s), np.inf, u.rollout.done_s)
    gap = uc.fragment_airtime_s / uc.duty_cycle
    for g in np.unique(uc.send_gw):
        sends = np.sort(uc.send_s[uc.send_gw == g])
        cand = gw == g
        o = np.sort(opens[cand])
        i = np.searchsorted(o, sends - 1e-6)
        assert (i < o.size).all() and np.allclose(o[np.minimum(i, o.size - 1)], sends, rtol=0, atol=1e-6)
        # no heard poll of a node still polling was passed over while the sub-band was free
        free = np.r_[-np.inf, sends[:-1] + gap]
        t = opens[cand & (opens <= done[node] - uc.fragment_airtime_s + 1e-6)]  # nodes still polling
        k = np.searchsorted(sends, t - 1e-6)  # the next fragment from the poll's RX2 on
        kk = np.minimum(k, sends.size - 1)
        passed = (k < sends.size) & (t >= free[kk] - 1e-6) & (t < sends[kk] - 1e-6)
        assert not passed.any(), f"gateway {g} passed over {int(passed.sum())} heard polls"
    return int(node.size)


def test_the_network_answers_exactly_the_polls_each_policys_run_heard(model):
    """The closed loop of class A unicast: the fragments answer the polls the run heard (not a fading draw),
    each policy its own (cloud_offload's traffic costs it polls on_device keeps), settled in passes."""
    only = _run(f"at: 1d, model: {model}, unicast: only")
    heard = {}
    for o in only.outcomes:
        passes, missing, differ, until = o.poll_passes
        assert passes >= 2 and missing == differ == 0 and until == np.inf
        heard[o.policy.name] = _answers_follow_the_run(only, o)
    a, b = (only.updates_of(o)[0] for o in only.outcomes)
    assert not np.array_equal(a.unicast.send_s, b.unicast.send_s)  # each policy's own rollout
    table = updates_table(only)
    assert table.policy.tolist() == ["cloud_offload", "on_device"]
    # the summary's update metrics read each policy's own rollout
    summary = summary_table(only).set_index("policy")
    for o, (_, row) in zip(only.outcomes, table.iterrows()):
        assert summary.loc[o.policy.name, "update_nodes_on_latest_model"] == row.nodes_updated
        assert summary.loc[o.policy.name, "update_s_to_95pct"] == pytest.approx(row.time_to_95pct_s, nan_ok=True)
    assert any(f"settled after {o.poll_passes[0]} passes" in n for o in only.outcomes for n in only.notes)


def test_a_poll_heard_on_a_retransmission_is_answered_after_that_transmission():
    """poll_fates: the network hears a poll when its frame is delivered, and the node's RX2 follows the
    transmission that got through: a delivered frame's busy time runs from its first attempt to that one (the
    closed loop stops there). Polls never delivered (lost, pending) are not heard; other kinds are not polls."""
    from iotsim.engine.updates import poll_fates
    from iotsim.link.base import Messages, Transmissions
    from iotsim.policies import MessageKind

    kinds = np.array([MessageKind.POLL, MessageKind.EVENT, MessageKind.POLL, MessageKind.POLL], np.int8)
    m = Messages(np.array([0, 0, 1, 2]), np.array([10.0, 20.0, 30.0, 40.0]), np.zeros(4, np.int64), kinds,
                 np.full(4, -1), np.zeros(4, np.int64))
    tx = Transmissions(np.arange(4), m.node, np.zeros(4, np.int64), np.full(4, 13), np.full(4, 9), np.full(4, 0.2),
                       m.ready_s, np.array([11.0, 21.0, 31.0, 41.0]), np.zeros(4, bool), attempts=np.array([3, 1, 1, 2]),
                       busy_s=np.array([6.4, 0.2, 0.2, 3.0]),
                       fate=np.array([Fate.DELIVERED, Fate.DELIVERED, Fate.COLLISION, Fate.PENDING], np.int8))
    node, ready, ended = poll_fates(m, tx)
    assert node.tolist() == [0, 1, 2] and ready.tolist() == [10.0, 30.0, 40.0]
    assert ended[0] == pytest.approx(11.0 + 6.4) and np.isnan(ended[1:]).all()


def test_the_closed_loop_under_backlog_says_when_the_polls_have_not_settled():
    """A congested closed loop (confirmed NbTrans 4, ADR, queues backed up): a change in one answer moves every
    later event of the loop, so each pass settles the polls only up to the next one whose fate changes, and
    MAX_POLL_PASSES do not reach the end of the run. The run says so, with the count, rather than claim a
    fixed point."""
    from test_lorawan_loop_native import CASES
    from test_lorawan_loop_native import SCENARIO as BOTH

    from iotsim.engine.updates import MAX_POLL_PASSES

    case = CASES["class A unicast of a model update: polls among confirmed traffic, fragments on each gateway"]
    params = dict(seed=3, count=60, region="EU868", channels=2, lorawan="", reception="{}", backhaul="{}", gw2="",
                  updates="") | case
    scenario = load_scenario_text(BOTH.format(**params))
    result = run_scenario(scenario.model_copy(update={"policies": scenario.policies[1:]}))
    (o,) = result.outcomes
    passes, missing, differ, until = o.poll_passes
    assert passes == MAX_POLL_PASSES and missing + differ > 0
    (u,) = result.updates_of(o)
    assert u.start_s < until < scenario.duration  # settled up to a point of the run
    note = next(n for n in result.notes if n.startswith("Unicast polls, policy on_device"))
    assert f"not settled after {MAX_POLL_PASSES} passes" in note and f"heard before {until:,.0f} s" in note
    assert f"after it {differ:,} polls' fates differ" in note


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 10), n_gw=st.integers(1, 3),
       period=st.sampled_from([5.0, 40.0, 300.0]), m=st.integers(1, 5), p_poll=st.floats(0.2, 1.0),
       p_frag=st.floats(0.3, 1.0))
def test_the_schedule_answers_the_first_heard_poll_whatever_the_verdicts(seed, n, n_gw, period, m, p_poll, p_frag):
    """Property: with any mix of a run's verdicts (a random prefix of each node's polls, heard or not, their
    frames held back by up to half a period) and fading draws after them, each gateway sends a fragment only in
    the RX2 of a poll heard from one of its nodes still without the update, at least D / 0.1 after its previous
    one, and passes over no such poll once its sub-band is free; a node decodes exactly when what it received
    spans the block."""
    from iotsim.link.draws import keyed_uniform_of
    from iotsim.ota.unicast import PollVerdicts

    rng = np.random.default_rng(seed)
    gateway = rng.integers(0, n_gw, n)
    ns = UnicastNodes(gateway, np.full(n, AIR), np.full(n, period), np.full(n, p_poll), np.full(n, p_frag),
                      np.full(n, RX1), np.full(n, STARTUP))
    horizon = 60 * period + 5 * D / 0.1 * m
    draws = np.random.default_rng(seed + 1)
    first = draws.random(n) * period  # as simulate_unicast draws them from its generator, then the salt
    salt = int(draws.integers(0, 2**63))
    counts = rng.integers(0, 25, n)
    pos = np.repeat(np.arange(n), counts)
    number = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    heard_v = rng.random(pos.size) < 0.7
    late = np.maximum.accumulate(rng.random(pos.size) * period / 2) if pos.size else np.zeros(0)
    end = first[pos] + number * period + late + AIR
    verdicts = PollVerdicts(pos, number, heard_v, np.where(heard_v, end, np.nan))
    decoders = [fec.Decoder(m) for _ in range(n)]
    rollout, c = simulate_unicast(ns, decoders, first_index=1, fragment_airtime_s=D, rx2_delay_s=LEAD_DELAY,
                                  rx2_window_s=RX2, duty_cycle=0.1, start_s=0.0, horizon_s=horizon,
                                  rng=np.random.default_rng(seed + 1), verdicts=verdicts)
    # every heard poll's RX2 opening, per node: from the verdicts, then on the grid with the keyed fading draw
    opens = []
    for k in range(n):
        mine = pos == k
        opens += [(e + LEAD_DELAY, k) for e in end[mine & heard_v]]
        j = int(counts[k])
        while first[k] + j * period + AIR + LEAD_DELAY + RX2 <= horizon:
            if keyed_uniform_of(salt, 0, k, j) < p_poll:
                opens.append((first[k] + j * period + AIR + LEAD_DELAY, k))
            j += 1
    done = np.where(np.isnan(rollout.done_s), np.inf, rollout.done_s)
    gap = D / 0.1
    for g in range(n_gw):
        sends = np.sort(c["send_s"][c["send_gw"] == g])
        assert (np.diff(sends) >= gap - 1e-9).all()
        polls = sorted((t, k) for t, k in opens if gateway[k] == g and t <= done[k] - D + 1e-9)
        times = np.array([t for t, _ in polls])
        for s in sends:  # each fragment answers a heard poll of a node still polling
            assert np.isclose(times, s, rtol=0, atol=1e-9).any()
        free = np.r_[-np.inf, sends + gap]
        for t, _ in polls:  # none passed over: between a free moment and the next fragment
            i = np.searchsorted(sends, t - 1e-9)
            if t + D <= horizon and i < sends.size:
                assert not (t >= free[i] - 1e-9 and t < sends[i] - 1e-9)
            if t + D <= horizon and i == sends.size:
                assert t < free[i] - 1e-9
    for k in range(n):
        assert rollout.decoded[k] == decoders[k].complete and rollout.received[k] >= (m if decoders[k].complete else 0)
