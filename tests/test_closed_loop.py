"""LoRaWAN with feedback on the SimPy engine: identical to the fast path without feedback, confirmed
uplinks against their closed forms, ADR against the algorithm worked by hand, gateway downlinks."""

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iotsim.engine import run_scenario
from iotsim.link.lorawan_loop import ClosedLoop
from iotsim.radio import lora
from iotsim.results import nodes_table, packets_table, summary_table
from iotsim.results.tables import gateways_table
from iotsim.scenario import load_scenario_text
from iotsim.validation.checks import (ADR_SCENARIO, BACKHAUL_ONE_GATEWAY, BACKHAUL_SCENARIO, adr_fixed_point,
                                      coin_decoder)

REPO = Path(__file__).resolve().parents[1]

DENSE = """\
name: dense
seed: 7
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
  lorawan: {{sf: auto, uplink_channels: 2, {lorawan}}}
  reception: {{demodulator_paths: 2}}
  gateways:
    - {{id: gw1, position_m: [800, 1500]}}
    - {{id: gw2, position_m: [2200, 1500]}}
policies: [cloud_offload, on_device]
simulation: {{background_pool: 500}}
outputs: {{plots: false, report: none}}
"""


def _run(count=150, lorawan="", **kw):
    return run_scenario(load_scenario_text(DENSE.format(count=count, lorawan=lorawan), **kw))


def _tables(result):
    return summary_table(result), packets_table(result), nodes_table(result)


@pytest.mark.parametrize("engine", ["simpy", "auto"])
@pytest.mark.parametrize("lorawan", ["duty_cycle_mode: wait", "duty_cycle_mode: drop"])
def test_closed_loop_equals_the_fast_path_without_feedback(monkeypatch, lorawan, engine):
    """Dense traffic (collisions, busy demodulators, duty-cycle waits or drops): the closed loop (on SimPy,
    and compiled where it can be built) gives the closed form's bytes when nothing feeds back."""
    monkeypatch.setenv("IOTSIM_CLOSED_LOOP", engine)
    fast = _run(lorawan=lorawan)
    loop = _run(lorawan=lorawan + ", engine: closed_loop")
    for a, b in zip(_tables(fast), _tables(loop)):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    s = summary_table(fast)
    # the comparison is not vacuous: every mechanism was at work
    assert s.packets_lost_collision.sum() > 0 and s.packets_lost_demodulators_busy.sum() > 0
    assert s.packets_delivered.sum() > 0
    if "drop" in lorawan:
        assert s.packets_lost_duty_cycle.sum() > 0
    else:
        packets = packets_table(fast)
        assert (packets.start_s > packets.ready_s + 1).sum() > 0  # waited for the duty cycle


def tiny_batteries(tmp_path, monkeypatch):
    """The device profiles with 0.4 mAh 2xAA packs: the cloud-offload nodes die within the run."""
    import yaml

    devices = tmp_path / "devices"
    shutil.copytree(REPO / "devices", devices)
    battery = devices / "battery" / "2xaa.yaml"
    data = yaml.safe_load(battery.read_text())
    data["capacity_mah"]["value"] = 0.4
    battery.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("IOTSIM_DEVICES", str(devices))


def test_closed_loop_equals_the_fast_path_when_nodes_die(tmp_path, monkeypatch):
    tiny_batteries(tmp_path, monkeypatch)
    fast = _run(count=60)
    loop = _run(count=60, lorawan="engine: closed_loop")
    nodes = nodes_table(fast)
    assert nodes.died_at_s.notna().sum() > 10
    for a, b in zip(_tables(fast), _tables(loop)):
        pd.testing.assert_frame_equal(a, b, check_exact=True)


@pytest.mark.parametrize("p,n", [(0.3, 4), (0.6, 3), (0.5, 8)])
def test_confirmed_uplinks_match_the_closed_forms(monkeypatch, p, n):
    """Each attempt is lost independently with probability p (a stand-in for the gateways' verdict):
    mean attempts per frame (1 - p^N) / (1 - p), delivery 1 - p^N."""
    monkeypatch.setenv("IOTSIM_CLOSED_LOOP", "simpy")  # the stand-in replaces a method of the SimPy engine
    monkeypatch.setattr(ClosedLoop, "_decode", coin_decoder(p, np.random.default_rng(int(p * 100) + n)))
    # US915 has no duty cycle, and open-field propagation puts every node in easy reach of the gateways
    # both ways, so every frame they get is acknowledged
    text = DENSE.format(count=200, lorawan=f"confirmed: true, nb_trans: {n}").replace(
        "network:", "network:\n  region: US915\n  propagation: {pl_d0_db: 98.91, d0_m: 1000, exponent: 3.522, "
        "shadowing_sigma_db: 0}")
    result = run_scenario(load_scenario_text(text))
    s = summary_table(result)
    row = s[s.policy == "on_device"].iloc[0]  # heartbeats and events: sparse, far from the duty cycle
    frames = row.packets_on_air
    assert frames > 3000
    expected_attempts = (1 - p**n) / (1 - p)
    sd = math.sqrt(p * (1 - p**n) / (1 - p) ** 2 / frames) * 4 + 0.01  # generous: attempts have variance
    assert row.attempts_per_packet == pytest.approx(expected_attempts, abs=sd)
    assert row.packet_delivery_ratio == pytest.approx(1 - p**n, abs=4 * math.sqrt(p**n * (1 - p**n) / frames) + 0.005)
    # delivered frames were acknowledged, but for the rare ACK the gateway could not send because it was
    # already transmitting another one; and the ledger paid for every attempt
    assert 0.99 * row.packets_delivered <= row.acks_received <= row.packets_delivered
    assert row.retransmissions == round(row.attempts_per_packet * frames) - frames
    packets = packets_table(result)
    pk = packets[packets.policy == "on_device"]
    assert pk.attempts.max() == n
    one = lora.time_on_air_s(pk.bytes.to_numpy(), pk.sf.to_numpy())
    np.testing.assert_allclose(pk.airtime_s, pk.attempts * one)
    nodes = nodes_table(result)
    on = nodes[nodes.policy == "on_device"]
    assert on.airtime_s.sum() == pytest.approx(pk.airtime_s.sum(), rel=1e-12)


@pytest.mark.parametrize("distance,confirmed", [(2000, "false"), (600, "true"), (6000, "false")])
def test_adr_settles_where_the_algorithm_predicts(distance, confirmed):
    result = run_scenario(load_scenario_text(ADR_SCENARIO.format(distance=distance, confirmed=confirmed,
                                                                 pl_d0_db=127.41)))
    rx = float(result.plans[0].rx_power_dbm[0, 0])
    sf, power = adr_fixed_point(rx)
    nodes = nodes_table(result)
    assert int(nodes.sf_final.iloc[0]) == sf
    assert float(nodes.tx_power_dbm_final.iloc[0]) == power
    s = summary_table(result).iloc[0]
    assert s.adr_commands >= (1 if (sf, power) != (12, 14.0) else 0)
    assert s.downlinks_received <= s.downlinks_sent
    # the ledger charged each frame at its own TX power: energy above what the same frames cost at 14 dBm
    packets = packets_table(result)
    assert packets.sf.iloc[0] == 12 and packets.sf.iloc[-1] == sf


def test_downlinks_gateway_duty_cycle_and_half_duplex():
    result = _run(count=150, lorawan="confirmed: true, nb_trans: 4, downlinks_per_day: 6")
    s = summary_table(result)
    gw = gateways_table(result)
    duration = 6 * 3600
    for row in s.itertuples():
        assert row.acks_received <= row.downlinks_received <= row.downlinks_sent
        assert row.app_downlinks_delivered <= row.downlinks_received
        assert row.packets_offered == row.packets_delivered + row.packets_lost
    off = s[s.policy == "cloud_offload"].iloc[0]
    assert off.downlinks_sent > 0 and off.packets_lost_gateway_transmitting > 0  # half duplex at work
    assert (s.app_downlinks_delivered > 0).all()
    # a gateway transmits at most 10 % of the time in the RX2 sub-band and 1 % in the others (plus one frame)
    assert (gw.tx_duty_cycle_max_sub_band <= 0.10 + 2.0 / duration).all()
    assert (gw.path_utilisation > 0).all() and (gw.path_utilisation <= 1).all()


def test_closed_loop_runs_are_byte_identical_for_one_seed(tmp_path):
    from iotsim.results import write_results

    text = DENSE.format(count=80, lorawan="confirmed: true, nb_trans: 3, adr: true, downlinks_per_day: 4")
    for name in ("a", "b"):
        write_results(run_scenario(load_scenario_text(text)), tmp_path / name, plots=False)
    for f in ("summary.csv", "gateways.csv", "nodes.parquet", "packets.parquet", "events.parquet"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


@pytest.mark.parametrize("reception", ["{}", "{inter_sf: orthogonal}", "{capture_threshold_db: 0}",
                                       "{capture_threshold_db: .inf, demodulator_paths: null}"])
def test_one_target_verdicts_equal_reception_decode(monkeypatch, reception):
    """The closed loop's plain-Python verdict for one frame (`_decode_one`) is reception.decode's, checked
    on every frame it decides in dense confirmed traffic with ADR, under each reception model."""
    from iotsim.network import reception as rx

    monkeypatch.setenv("IOTSIM_CLOSED_LOOP", "simpy")  # checks a method of the SimPy engine
    checked, mismatched = [0], []
    one = ClosedLoop._decode_one

    def both(self, a, context):
        one(self, a, context)
        pos = {x: p for p, x in enumerate(context)}
        tx = self._gateway_tx(min(self.a_start[i] for i in context),
                              max(self.a_start[i] + self.a_air[i] for i in context))
        width = (self.n_gw + 7) // 8
        arrival = rx.Arrival(np.frombuffer(self.a_bits[a].to_bytes(width, "little"), dtype=np.uint8).reshape(1, width),
                             np.array([self.a_afate[a]], dtype=np.int8))
        dec = rx.decode(self._frames(context), arrival, self.nodes.rx_power_dbm, self.model,
                        targets=np.array([pos[a]]), gateway_tx=tx, node_rx_power_mw=self.power_mw)
        checked[0] += 1
        if (int(dec.status[0]), int(dec.gateway[0])) != (self.a_status[a], self.a_gw[a]):
            mismatched.append(a)

    monkeypatch.setattr(ClosedLoop, "_decode_one", both)
    text = DENSE.format(count=120, lorawan="confirmed: true, nb_trans: 4, adr: true").replace(
        "  reception: {demodulator_paths: 2}", f"  reception: {reception}")
    run_scenario(load_scenario_text(text))
    assert checked[0] > 500
    assert mismatched == []


FALLBACK = """\
name: fallback
seed: 5
duration: 3h
fleet:
  - group: g
    count: 40
    device: nrf52840_sx1262_2xaa
    placement: {{kind: uniform, area_m: [50, 50]}}
    workload: {{signal: farm.soil_climate, sample_period: 5min, window: 12, events_per_day: 0}}
    model: farm_soil_int8
    heartbeat: 1min
network:
  lorawan: {{sf: 12, confirmed: true, nb_trans: 4, uplink_channels: 3}}
  propagation: {{pl_d0_db: 100, d0_m: 40, exponent: 2.08, shadowing_sigma_db: 0}}
  gateways:
{gateways}
policies: [on_device]
simulation: {{background_pool: 200}}
outputs: {{plots: false, report: none}}
"""


def test_the_network_answers_through_the_next_gateway_when_the_strongest_is_closed(monkeypatch):
    """An SF12 ACK (about 1 s) closes a gateway's 1 % RX1 sub-band for about 99 s and its 10 % RX2 sub-band
    for about 9 s, so one gateway cannot acknowledge 40 nodes' uplinks. The network answers through the
    strongest free gateway that received the uplink, RX1 first (ns-3 lorawan's choice): more uplinks are
    acknowledged, and fewer sent again, than by a network that only ever uses the strongest gateway."""
    monkeypatch.setenv("IOTSIM_CLOSED_LOOP", "simpy")  # the comparison replaces a method of the SimPy engine
    text = FALLBACK.format(gateways="    - {id: near, position_m: [300, 0]}\n    - {id: far, position_m: [0, 500]}")
    fallback = run_scenario(load_scenario_text(text))
    delivered = ClosedLoop._delivered
    monkeypatch.setattr(ClosedLoop, "_delivered", lambda self, a, decoders, power: (
        delivered(self, a, decoders, power), self.a_decoders.__setitem__(a, self.a_decoders[a][:1])))
    strongest = run_scenario(load_scenario_text(text))
    s_fb, s_st = summary_table(fallback).iloc[0], summary_table(strongest).iloc[0]
    g_fb = gateways_table(fallback).set_index("gateway")
    g_st = gateways_table(strongest).set_index("gateway")
    assert s_fb.downlinks_sent > 1.05 * s_st.downlinks_sent
    assert s_fb.retransmissions < s_st.retransmissions
    assert g_fb.tx_airtime_s["far"] > 1.2 * g_st.tx_airtime_s["far"]  # the far gateway takes over when near is closed
    for g in (g_fb, g_st):  # neither gateway beyond its duty cycle (10 % in RX2, 1 % in RX1, plus one frame)
        assert (g.tx_duty_cycle_max_sub_band <= 0.10 + 2.0 / 3 / 3600).all()


def _downlink_judge(power_dbm_node_to_gw, capture_db=6.0, inter=True):
    """A ClosedLoop with only what `_downlink_survives` reads (no run)."""
    from types import SimpleNamespace

    loop = ClosedLoop.__new__(ClosedLoop)
    loop.s = SimpleNamespace(gateway_tx_power_dbm=14.0)
    loop.max_power_dbm = 14.0
    loop.power_dbm_l = [list(power_dbm_node_to_gw)]
    loop.dl_starts, loop.dl_rows, loop._max_dl_air = [], [], 0.0
    k = 10.0 ** (np.array([[capture_db if i == j else -8.0 for j in range(6)] for i in range(6)]) / 10.0)
    loop._capture_rule, loop._k_co, loop._inter = 1, float(k[0, 0]), inter
    np.fill_diagonal(k, 0.0)
    loop._k_inter = k.tolist()
    return loop


def _send(loop, t0, air, freq, sf, g):
    from bisect import bisect_right

    i = bisect_right(loop.dl_starts, t0)
    loop.dl_starts.insert(i, t0)
    loop.dl_rows.insert(i, (t0 + air, freq, sf, g))
    loop._max_dl_air = max(loop._max_dl_air, air)
    return (2, True, True, air, None, t0, freq, sf, g, 0)


@pytest.mark.parametrize("margin_db,survives", [(6.1, True), (5.9, False)])
def test_a_downlink_survives_another_gateways_at_the_capture_threshold(margin_db, survives):
    """Two gateways send RX2 downlinks (869.525 MHz, SF12) over the same second: at the node, the wanted one
    survives when it is at least 6 dB above the other (energy over the overlap), as uplinks do."""
    loop = _downlink_judge([-100.0, -100.0 - margin_db])
    mine = _send(loop, 10.0, 1.0, 869.525e6, 12, 0)
    _send(loop, 10.0, 1.0, 869.525e6, 12, 1)
    assert loop._downlink_survives(0, mine) is survives
    # half the overlap halves the interference energy: 3 dB more margin
    loop = _downlink_judge([-100.0, -100.0 - margin_db + 3.0103])
    mine = _send(loop, 10.0, 1.0, 869.525e6, 12, 0)
    _send(loop, 10.5, 1.0, 869.525e6, 12, 1)
    assert loop._downlink_survives(0, mine) is survives


def test_downlinks_on_other_frequencies_or_before_do_not_interfere():
    loop = _downlink_judge([-100.0, -90.0])
    mine = _send(loop, 10.0, 1.0, 869.525e6, 12, 0)
    _send(loop, 10.0, 1.0, 868.1e6, 12, 1)  # RX1 on another channel
    _send(loop, 8.0, 2.0, 869.525e6, 12, 1)  # ends as mine starts
    assert loop._downlink_survives(0, mine)
    _send(loop, 10.9, 1.0, 869.525e6, 7, 1)  # another SF, 10 dB stronger, 0.1 s overlap: below Croce's -8 dB
    assert loop._downlink_survives(0, mine)
    _send(loop, 10.2, 1.0, 869.525e6, 7, 1)  # 0.8 s overlap: energy ratio above -8 dB
    assert not loop._downlink_survives(0, mine)


def test_downlink_interference_is_counted_and_switchable():
    text = DENSE.format(count=150, lorawan="confirmed: true, nb_trans: 4, downlinks_per_day: 24")
    on = summary_table(run_scenario(load_scenario_text(text)))
    off = summary_table(run_scenario(load_scenario_text(text.replace(
        "reception: {demodulator_paths: 2}", "reception: {demodulator_paths: 2, downlink_interference: false}"))))
    for s in (on, off):
        assert (s.downlinks_received + s.downlinks_interfered <= s.downlinks_sent).all()
        assert (s.acks_received <= s.downlinks_received).all()
    assert on.downlinks_interfered.sum() > 0
    assert off.downlinks_interfered.sum() == 0


def _backhaul(latency, dedup="200ms", gateways=BACKHAUL_ONE_GATEWAY):
    return run_scenario(load_scenario_text(BACKHAUL_SCENARIO.format(latency=latency, dedup=dedup, gateways=gateways)))


@pytest.mark.parametrize("engine", ["simpy", "auto"])
def test_a_slow_backhaul_moves_the_answer_from_rx1_to_rx2_and_then_loses_it(monkeypatch, engine):
    """The server answers deduplication_delay (200 ms) after the uplink's copy arrives (one backhaul latency
    after the uplink's end); the answer must reach the gateway 32.5 ms before the window opens. RX1 opens
    1 s after the end: in time while 2 x latency + 0.2325 s < 1 s (latency < 383.75 ms); RX2 (2 s) while
    latency < 883.75 ms; beyond, no answer at all and every confirmed frame goes NbTrans times."""
    monkeypatch.setenv("IOTSIM_CLOSED_LOOP", engine)
    ack_rx1 = float(lora.time_on_air_s(12, 7, crc=False))  # an ACK at the uplink's SF7 (RX1DROffset 0)
    ack_rx2 = float(lora.time_on_air_s(12, 12, crc=False))  # an ACK in RX2 (SF12)
    per_downlink = {}
    for latency in ("383ms", "384ms", "883ms", "884ms"):
        s = summary_table(_backhaul(latency)).iloc[0]
        assert s.packets_offered == s.packets_delivered + s.packets_lost
        per_downlink[latency] = s.downlink_airtime_s / s.downlinks_sent if s.downlinks_sent else None
        if latency == "884ms":
            assert s.downlinks_sent == 0 and s.acks_received == 0
            assert s.attempts_per_packet == 3  # NbTrans 3, never acknowledged
        else:
            assert s.acks_received > 0 and s.attempts_per_packet < 1.5
    # a lightly loaded gateway answers every uplink in RX1 while it can (its 1 % sub-band reopens in 4 s)
    assert per_downlink["383ms"] == pytest.approx(ack_rx1, rel=1e-9)
    assert per_downlink["384ms"] == pytest.approx(ack_rx2, rel=1e-9)
    assert per_downlink["883ms"] == pytest.approx(ack_rx2, rel=1e-9)


@pytest.mark.parametrize("engine", ["simpy", "auto"])
def test_the_server_answers_only_through_gateways_whose_copies_came_within_the_deduplication_delay(monkeypatch, engine):
    """The near gateway hears every uplink strongest but its backhaul is 290 ms slower than the far one's:
    with a 200 ms deduplication delay its copies come too late and the far gateway answers; with 300 ms
    the near (strongest) gateway answers."""
    monkeypatch.setenv("IOTSIM_CLOSED_LOOP", engine)
    gateways = ("    - {id: near, position_m: [0, 0], backhaul: {latency: 300ms}}\n"
                "    - {id: far, position_m: [400, 0], backhaul: {latency: 10ms}}")
    short = gateways_table(_backhaul("10ms", dedup="200ms", gateways=gateways)).set_index("gateway")
    long = gateways_table(_backhaul("10ms", dedup="300ms", gateways=gateways)).set_index("gateway")
    assert short.tx_airtime_s["near"] == 0 and short.tx_airtime_s["far"] > 0
    assert long.tx_airtime_s["near"] > 0 and long.tx_airtime_s["far"] < long.tx_airtime_s["near"]


def test_gateways_and_the_server_pass_messages_as_simpy_processes(monkeypatch):
    """On the SimPy engine each message crosses the network at its own time on the simulation clock:
    a gateway's copy reaches the server exactly one backhaul latency after the uplink ends; the server
    answers exactly deduplication_delay after the first copy, through a gateway whose copy came by then;
    its request reaches that gateway one latency later and more than GATEWAY_TX_LEAD_S before the window
    opens, and the node reads the downlink only when that window opens."""
    from iotsim.radio.lorawan_mac import GATEWAY_TX_LEAD_S

    monkeypatch.setenv("IOTSIM_CLOSED_LOOP", "simpy")
    copies, answers, requests = [], [], []
    reach, server, transmit = ClosedLoop._reach_server, ClosedLoop._server, ClosedLoop._transmit

    def on_copy(self, a, g):
        if not self.offline:
            copies.append((self.env.now, self.a_start[a] + self.a_air[a], self.gw_latency[g], self.a_window[a]))
        reach(self, a, g)

    def on_answer(self, a):
        if not self.offline:
            answers.append((self.env.now, self.a_start[a] + self.a_air[a], list(self.a_heard[a]),
                            list(self.a_decoders[a]), [self.gw_latency[g] for g in range(self.n_gw)]))
        server(self, a)

    def on_request(self, a, dl, band):
        if not self.offline:
            requests.append((self.env.now, dl[5], self.a_dl[a]))
        transmit(self, a, dl, band)

    monkeypatch.setattr(ClosedLoop, "_reach_server", on_copy)
    monkeypatch.setattr(ClosedLoop, "_server", on_answer)
    monkeypatch.setattr(ClosedLoop, "_transmit", on_request)
    gateways = ("    - {id: near, position_m: [0, 0], backhaul: {latency: 250ms}}\n"
                "    - {id: far, position_m: [400, 0], backhaul: {latency: 10ms}}")
    result = _backhaul("10ms", dedup="200ms", gateways=gateways)
    assert len(copies) > 100 and len(answers) > 50 and len(requests) > 50
    for now, end, latency, window_open in copies:
        assert now == pytest.approx(end + latency, abs=1e-9)
    assert any(w for *_, w in copies) and not all(w for *_, w in copies)  # later copies find the window open
    for now, end, heard, decoders, lat in answers:
        first = min(lat[g] for g in heard)
        assert now == pytest.approx(end + first + 0.2, abs=1e-9)
        assert decoders and all(lat[g] <= first + 0.2 + 1e-12 for g in decoders)
    assert any(len(h) > len(d) for _, _, h, d, _ in answers)  # the near gateway's copy came too late
    for now, t0, before in requests:
        assert now < t0 - GATEWAY_TX_LEAD_S
        assert before is None  # nothing told the node before the request reached its gateway
    assert summary_table(result).iloc[0].acks_received > 0
