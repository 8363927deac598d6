"""Bluetooth LE and Wi-Fi links: published timing vectors, the fading/retry model, and whole runs."""

import numpy as np
import pytest

from iotsim.energy.ledger import SLOT_INDEX
from iotsim.engine import run_scenario
from iotsim.network.fate import REASON_NAMES
from iotsim.link.star import attempt_success_probability, draw_attempts
from iotsim.errors import InputError
from iotsim.hardware import load_board
from iotsim.radio import ble, wifi
from iotsim.results import nodes_table, packets_table, summary_table
from iotsim.scenario import load_scenario_text


# ------------------------------------------------------------------ timing vectors
def test_ble_packet_times_match_the_core_spec_limits():
    # Core spec Vol 6 Part B 4.5.10: 27-octet payload with MIC 328 us, 251 octets with MIC 2120 us (LE 1M)
    assert ble.packet_time_s(27, "1M", encrypted=True) == pytest.approx(328e-6)
    assert ble.packet_time_s(251, "1M", encrypted=True) == pytest.approx(2120e-6)
    assert ble.packet_time_s(27, "1M") == pytest.approx(296e-6)
    assert ble.empty_packet_time_s("1M") == pytest.approx(80e-6)  # no MIC on an empty PDU
    # LE 2M: two preamble octets, twice the bit rate
    assert ble.packet_time_s(251, "2M", encrypted=True) == pytest.approx((2 + 4 + 2 + 251 + 4 + 3) * 4e-6)
    with pytest.raises(ValueError):
        ble.packet_time_s(252)


def test_wifi_ppdu_times():
    # the classic 802.11a ACK at 24 Mbit/s: 28 us (+6 us signal extension at 2.4 GHz)
    assert wifi.ofdm_ppdu_time_s(14, 24, signal_extension=False) == pytest.approx(28e-6)
    assert wifi.ack_time_s() == pytest.approx(34e-6)
    # 1500-octet PSDU at 54 Mbit/s: 20 + 4 * ceil(12022 / 216) = 20 + 4 * 56 = 244 us
    assert wifi.ofdm_ppdu_time_s(1500, 54, signal_extension=False) == pytest.approx(244e-6)
    # HT20 MCS7 (260 bits/symbol): 36 + 4 * ceil(12022 / 260) + 6 = 36 + 188 + 6 us
    assert wifi.ht20_ppdu_time_s(1500, 7) == pytest.approx(230e-6)
    assert wifi.DIFS_S == pytest.approx(28e-6)
    assert wifi.sensitivity_dbm("802.11n", 7) == -64 and wifi.sensitivity_dbm("802.11g", 0) == -82


# ------------------------------------------------------------------ fading and retries
def test_rayleigh_success_probability_closed_form():
    assert attempt_success_probability(np.array([-95.0]), -95.0)[0] == pytest.approx(np.exp(-1))
    assert attempt_success_probability(np.array([-85.0]), -95.0)[0] == pytest.approx(np.exp(-0.1))
    p = attempt_success_probability(np.linspace(-110, -60, 11), -95.0)
    assert (np.diff(p) > 0).all() and p[-1] > 0.999


def test_attempts_are_geometric_and_capped():
    rng = np.random.default_rng(1)
    n = 200_000
    p = np.full(n, 0.3)
    u = 1.0 - rng.random(n)
    k, ok = draw_attempts(p, u, limit=4)
    assert k.max() == 4 and k.min() == 1
    # P(delivered) = 1 - (1 - p)^limit, P(k = 1) = p
    assert ok.mean() == pytest.approx(1 - 0.7**4, abs=0.004)
    assert (k == 1).mean() == pytest.approx(0.3, abs=0.004)
    # mean attempts of a truncated geometric: (1 - (1-p)^L) / p
    assert k.mean() == pytest.approx((1 - 0.7**4) / 0.3, abs=0.01)
    k1, ok1 = draw_attempts(np.ones(3), np.array([1.0, 0.5, 1e-9]), 7)
    assert (k1 == 1).all() and ok1.all()
    k0, ok0 = draw_attempts(np.zeros(2), np.array([1.0, 0.5]), 7)
    assert (k0 == 7).all() and not ok0.any()


# ------------------------------------------------------------------ whole runs
BLE = """\
name: ble_small
seed: 5
duration: 1d
fleet:
  - group: g
    count: 30
    device: nrf52840_ble_cr2032
    placement: {kind: uniform, area_m: [40, 30]}
    workload: {signal: farm.soil_climate, sample_period: 5min, window: 12, events_per_day: 2}
    model: farm_soil_int8
    heartbeat: 1h
network:
  technology: ble
  ble: {connection_interval: 500ms, tx_power_dbm: 0}
  # ITU-R P.1238 site-general indoor model at 2.44 GHz, office (N = 30): 20 log10(2440) - 28 = 39.7 dB at 1 m
  propagation: {pl_d0_db: 39.7, d0_m: 1, exponent: 3.0, shadowing_sigma_db: 6}
  gateways:
    - {id: hub, position_m: [20, 15]}
policies: [cloud_offload, on_device]
outputs: {plots: false, report: none}
"""


@pytest.fixture(scope="module")
def ble_result():
    return run_scenario(load_scenario_text(BLE))


def test_ble_run_conserves_energy_and_packets(ble_result):
    nodes = nodes_table(ble_result)
    parts = nodes.filter(regex=r"^energy_.+_j$").sum(axis=1)
    np.testing.assert_allclose(parts, nodes.energy_j, rtol=1e-12)
    for out in ble_result.outcomes:
        t = out.ledger.time_s
        radio = [i for (c, _), i in SLOT_INDEX.items() if c == "radio"]
        np.testing.assert_allclose(t[:, radio].sum(1), out.ledger.lifetime_s)
    packets = packets_table(ble_result)
    assert set(packets.loss_reason.unique()) <= set(REASON_NAMES)
    summary = summary_table(ble_result).set_index("policy")
    for pol, row in summary.iterrows():
        assert row.packets_offered == row.packets_delivered + row.packets_lost


def test_ble_keepalive_energy_matches_closed_form(ble_result):
    board = load_board("nrf52840_ble_cr2032")
    radio = board.radio
    out = ble_result.outcomes[1]  # on_device: few frames, the keep-alive dominates the radio
    day = 86400.0
    events = day / 0.5
    empty = ble.empty_packet_time_s("1M")
    rx_keep = events * empty
    frame_rx = out.ledger.time_s[:, SLOT_INDEX[("radio", "rx")]] - rx_keep  # beyond the keep-alive: the frames' acks
    assert (frame_rx >= -1e-9).all()
    # one empty-PDU receive per attempt (the central's answer)
    n_attempts = np.bincount(out.tx.node, weights=out.tx.attempts, minlength=30)
    assert frame_rx.sum() == pytest.approx(n_attempts.sum() * empty, rel=0.2)
    standby_keep = events * (radio.startup_time_s + ble.T_IFS_S)
    assert (out.ledger.time_s[:, SLOT_INDEX[("radio", "standby")]] >= standby_keep - 1e-6).all()


def test_ble_frames_ride_connection_events(ble_result):
    out = ble_result.outcomes[0]
    plan = ble_result.plans[0]
    f = out.tx
    sent = ~np.isnan(f.start_s)
    offset = (f.start_s[sent] - plan.phase_s[f.node[sent]]) / 0.5
    # every first packet of an event sits on the node's connection-event grid, later ones within it
    frac = offset - np.floor(offset + 1e-9)
    assert (frac < 0.02).all()
    assert (f.start_s[sent] >= f.ready_s[sent] - 1e-9).all()
    # raw windows (72 B) fit one notification: no fragmentation on BLE with data length extension
    assert (f.fragment == 0).all()


def test_far_nodes_lose_frames_to_retries():
    text = BLE.replace("area_m: [40, 30]", "area_m: [160, 120]").replace("count: 30", "count: 40")
    result = run_scenario(load_scenario_text(text))
    packets = packets_table(result)
    lost = packets[packets.loss_reason == "link_retries"]
    assert len(lost) > 0
    # losses come from the weak links: lost frames' nodes are farther from the hub than average
    plan = result.plans[0]
    dist = np.hypot(*(plan.positions_m - np.array([20, 15])).T)
    local = np.searchsorted(plan.node_ids, lost.node_id.to_numpy())
    assert dist[local].mean() > dist.mean() + 20
    # the nearest quarter of the nodes loses far less than the farthest quarter
    def loss(ids):
        return (packets[packets.node_id.isin(ids)].loss_reason == "link_retries").mean()

    near, far = plan.node_ids[dist < np.percentile(dist, 25)], plan.node_ids[dist > np.percentile(dist, 75)]
    assert loss(near) < 0.1
    assert loss(far) > 0.5
    # time on air counts every attempt: a lost frame was on air max_attempts times (supervision timeout
    # 4 s / 500 ms interval = 8 attempts), and the nodes' airtime adds up the packets' airtime
    one = ble.packet_time_s(packets.bytes.to_numpy(), "1M", True)
    np.testing.assert_allclose(packets.airtime_s, packets.attempts * one)
    assert (lost.attempts == 8).all()
    assert packets.airtime_s.sum() > 2 * one.sum()  # lossy links: far more than one attempt per frame
    nodes = nodes_table(result)
    for policy in nodes.policy.unique():
        assert nodes[nodes.policy == policy].airtime_s.sum() == pytest.approx(
            packets[packets.policy == policy].airtime_s.sum(), rel=1e-12)
    # and the summary's loss columns add up, link_retries included
    summary = summary_table(result)
    assert (summary.packets_lost == summary.packets_lost_link_retries).all()
    assert (summary.packets_lost > 0).all()
    assert "packets_lost_collision" not in summary  # not a loss this link models


WIFI = BLE.replace("technology: ble", "technology: wifi").replace(
    "ble: {connection_interval: 500ms, tx_power_dbm: 0}", "wifi: {standard: 802.11n, mcs: 7, tx_power_dbm: 14}"
).replace("nrf52840_ble_cr2032", "esp32_wifi_18650").replace(  # the Wi-Fi board carries an accelerometer
    "farm.soil_climate, sample_period: 5min, window: 12",
    "factory.vibration, sample_rate_hz: 3200, window: 256, window_period: 5min").replace(
    "model: farm_soil_int8", "model: factory_bearing_int8").replace(
    "outputs: {plots: false, report: none}", "outputs: {plots: false, report: none}\nsimulation: {background_pool: 1000}")


def test_wifi_connected_vs_reconnect():
    connected = run_scenario(load_scenario_text(WIFI))
    reconnect = run_scenario(load_scenario_text(WIFI.replace("tx_power_dbm: 14}", "tx_power_dbm: 14, power_save: reconnect}")))
    for res in (connected, reconnect):
        s = summary_table(res).set_index("policy")
        for _, row in s.iterrows():
            assert row.packets_offered == row.packets_delivered + row.packets_lost
    radio_rx = lambda res, i: res.outcomes[i].ledger.time_s[:, SLOT_INDEX[("radio", "rx")]].sum()
    # connected: the DTIM beacons every 307.2 ms dominate the receive time
    beacons = 86400.0 / (0.1024 * 3) * 0.003
    assert radio_rx(connected, 1) / 30 == pytest.approx(beacons, rel=0.05)
    # reconnect: 1 s of association per message, receiving
    n_msgs = len(reconnect.outcomes[1].messages)
    assert radio_rx(reconnect, 1) == pytest.approx(n_msgs * 1.0, rel=0.01)


def test_board_radio_must_match_the_network():
    with pytest.raises(InputError, match="ble radio, but the network is lorawan") as err:
        load_scenario_text(BLE.replace("  technology: ble\n", ""))
    assert err.value.field == "fleet.g.device" and err.value.where.endswith(":7")
