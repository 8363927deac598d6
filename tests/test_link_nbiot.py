"""NB-IoT as a run's `Link` (iotsim.link.nbiot): coverage levels from coupling loss, one report's radio time and
energy worked by hand from the 3GPP numerology and LENA-NB's BG96 powers, connections kept between close reports,
block errors, nodes beyond coverage, and whole runs that conserve frames and energy."""

import numpy as np
import pytest

from iotsim.energy.ledger import SLOT_INDEX
from iotsim.engine import run_scenario, stages
from iotsim.errors import InputError
from iotsim.hardware.profiles import load_profile
from iotsim.link import make_link
from iotsim.link.base import LinkNodes, Messages
from iotsim.link.nbiot import NbIotLink
from iotsim.network.fate import REASON_NAMES, Fate
from iotsim.results import packets_table, summary_table
from iotsim.scenario import load_scenario_text

RUN = """\
name: nbiot_small
seed: 3
duration: 6h
fleet:
  - group: lights
    count: 24
    device: nrf52840_bg96_traffic_18650
    placement: {kind: uniform, area_m: [400, 400]}
    workload: {signal: smart_city.traffic, events_per_day: 2}
    model: smart_city_traffic_int8
    heartbeat: 1h
network:
  technology: nbiot
  nbiot: {tx_power_dbm: 23%s}
  propagation: {pl_d0_db: 119.8, d0_m: 1000, exponent: 3.76, shadowing_sigma_db: 10}
  gateways:
    - {id: enb, position_m: [2200, -3500]}
policies: [cloud_offload, on_device]
outputs: {plots: false, report: none}
"""


def network(extra: str = ""):
    return load_scenario_text(RUN % extra).network


def one_node(coupling_loss_db: float, n: int = 1) -> LinkNodes:
    return LinkNodes(rx_power_dbm=np.full((n, 1), 23.0 - coupling_loss_db), sf=np.zeros(n, np.int64),
                     startup_s=np.zeros(n), phase_s=np.zeros(n))


def messages(ready_s, app_bytes=40, node=None) -> Messages:
    ready = np.asarray(ready_s, dtype=float)
    k = ready.size
    return Messages(node=np.zeros(k, np.int64) if node is None else np.asarray(node), ready_s=ready,
                    app_bytes=np.full(k, app_bytes, np.int64), kind=np.zeros(k, np.int8),
                    window=np.arange(k, dtype=np.int64), group=np.zeros(k, np.int64))


def test_coverage_level_follows_the_coupling_loss():
    link = NbIotLink(network())
    rx = 23.0 - np.array([[120.0], [147.6], [147.7], [159.6], [159.7], [164.0], [164.1]])
    _, loss, level = link.node_cells(rx)
    np.testing.assert_allclose(loss, [120, 147.6, 147.7, 159.6, 159.7, 164.0, 164.1])
    assert level.tolist() == [0, 0, 1, 1, 2, 2, -1]
    # the least loss wins among cells
    cell, _, _ = link.node_cells(np.array([[-130.0, -120.0, -125.0]]))
    assert cell.tolist() == [1]


def test_one_report_at_ce_level_1_by_hand():
    """A 40-byte report at CE level 1 (coupling loss 150 dB), no block errors, the defaults (LENA-NB's cell):

    NPRACH format 1 preamble 6.4 ms x 8 repetitions = 51.2 ms; search space Rmax 64 x G 1.5 = 96 ms;
    a downlink message 64 subframes; NPUSCH 3.75 kHz single tone, I_TBS 10 / I_RU 0: 144-bit blocks of one 32 ms
    resource unit x 8 repetitions = 256 ms. The packet: 40 + 28 (IP, UDP) + 10 (MAC, RLC) = 78 B = 624 bits:
    5 blocks; Msg3 88 bits: 1 block.
    """
    link = NbIotLink(network(", block_error_rate: 0"))
    tx = link.transmit(messages([100.0]), one_node(150.0), np.random.default_rng(1), 1e6)
    ms = 1e-3
    ra_tx = 51.2 + 256 + 16  # preamble, Msg3, Msg4's acknowledgement
    ra_rx = 2 * (64 + 64)  # RAR and Msg4: NPDCCH Rmax + NPDSCH
    ra_sb = 4 + (48 + 5) + 13 + (48 + 5) + 13  # delays and half-period waits for the search space
    data_tx, data_rx, data_sb = 5 * 256, 5 * 64, 5 * (48 + 8)  # per block: grant wait + NPDCCH + k0, the block
    tail_rx, tail_sb = 30_000 * 64 / 96, 30_000 * 32 / 96  # 30 s connected: Rmax of every 96 ms
    rel_tx, rel_rx, rel_sb = 16, 64 + 64, 48 + 5 + 13  # the release and its acknowledgement
    idle = 3_500  # T3324 in idle
    assert tx.tx_s[0] == pytest.approx((ra_tx + data_tx + rel_tx) * ms)
    assert tx.rx_s[0] == pytest.approx((ra_rx + data_rx + tail_rx + rel_rx) * ms)
    # the wait for the NPRACH occasion is the one random part: uniform within the 640 ms period
    wait = tx.busy_s[0] - (ra_tx + ra_rx + ra_sb + data_tx + data_rx + data_sb) * ms
    assert 0 <= wait < 0.64
    assert tx.standby_s[0] == pytest.approx((ra_sb + data_sb + tail_sb + rel_sb + idle) * ms + wait)
    assert tx.attempts[0] == 1 and tx.link_fate[0] == Fate.DELIVERED
    assert tx.total_airtime_s[0] == pytest.approx(5 * 0.256) and tx.airtime_s[0] == pytest.approx(5 * 0.256)
    # energy with LENA-NB's BG96 powers (W): uplink 3.8 x 0.155, downlink 0.080, idle 3.8 x 0.81e-3
    radio = load_profile("radio", "bg96_nbiot")
    p_tx, p_rx, p_sb = 3.8 * radio.tx_current_a(23), 3.8 * radio.rx_current_a, 3.8 * radio.standby_current_a
    assert (p_tx, p_rx, p_sb) == pytest.approx((0.589, 0.080, 0.003078), rel=1e-3)
    energy = p_tx * tx.tx_s[0] + p_rx * tx.rx_s[0] + p_sb * tx.standby_s[0]
    by_hand = 0.589 * 1.6192 + 0.080 * 20.704 + 0.003078 * (13.982 + wait)
    assert energy == pytest.approx(by_hand, rel=1e-3)
    assert 2.65 < by_hand < 2.66  # of which the 30 s connected after the data: 0.080 x 20 + 0.003078 x 10 = 1.63 J


def test_a_report_while_connected_skips_the_random_access():
    link = NbIotLink(network(", block_error_rate: 0"))
    tx = link.transmit(messages([100.0, 105.0]), one_node(150.0), np.random.default_rng(1), 1e6)
    # the second report comes 5 s later, within the 30 s inactivity timer: grants and blocks only
    assert tx.tx_s[1] - 0.016 == pytest.approx(5 * 0.256)  # its own release at the end (16 ms acknowledgement)
    assert tx.busy_s[1] == pytest.approx(5 * (0.256 + 0.064 + 0.048 + 0.008))
    # the first stays connected until the second starts, and is not released
    data_end = tx.start_s[0] + tx.busy_s[0]
    assert tx.rx_s[0] == pytest.approx(0.256 + 5 * 0.064 + (tx.start_s[1] - data_end) * 64 / 96)
    assert tx.node_stats["connections"].tolist() == [1]
    # with release assistance the cell releases each at once: two connections, no connected tail
    rai = NbIotLink(network(", block_error_rate: 0, release_assistance: true"))
    tx2 = rai.transmit(messages([100.0, 105.0]), one_node(150.0), np.random.default_rng(1), 1e6)
    assert tx2.node_stats["connections"].tolist() == [2]
    assert tx2.rx_s[1] == pytest.approx(tx2.rx_s[0])
    assert tx2.tx_s.sum() + tx2.rx_s.sum() < tx.tx_s.sum() + tx.rx_s.sum() - 1.0


def test_block_errors_are_geometric_and_capped():
    link = NbIotLink(network(", block_error_rate: 0.3, max_block_transmissions: 3"))
    k = 4000
    tx = link.transmit(messages(np.arange(k) * 1000.0 + 10.0, app_bytes=40), one_node(140.0),
                       np.random.default_rng(7), 1e7)
    blocks = 5 * k
    # per block: E[min(Geometric(0.7), 3)] = 1 + 0.3 + 0.09 transmissions; lost when all 3 fail (0.027)
    sent = tx.total_airtime_s / 0.064  # CE level 0: 144-bit blocks of 32 ms x 2 repetitions
    np.testing.assert_allclose(sent, np.round(sent))
    assert sent.sum() / blocks == pytest.approx(1.39, abs=0.02)
    # attempts are HARQ rounds: the most transmissions any of the frame's blocks needed
    assert tx.attempts.min() == 1 and tx.attempts.max() == 3 and np.all(tx.attempts <= sent - 4)
    lost = (tx.link_fate == Fate.LINK_RETRIES).mean()
    assert lost == pytest.approx(1 - (1 - 0.027) ** 5, abs=0.02)
    # same seed, same draws; a later report does not change earlier ones
    again = link.transmit(messages(np.arange(k // 2) * 1000.0 + 10.0), one_node(140.0), np.random.default_rng(7), 1e7)
    assert np.array_equal(again.total_airtime_s, tx.total_airtime_s[: k // 2])


def test_a_node_beyond_coverage_tries_and_loses_its_frames():
    link = NbIotLink(network())
    tx = link.transmit(messages([100.0, 5000.0]), one_node(170.0), np.random.default_rng(1), 1e6)
    assert tx.link_fate.tolist() == [Fate.BELOW_SENSITIVITY] * 2
    assert np.all(tx.attempts == 0)
    # 10 random access attempts at CE level 2: 32 preamble repetitions of 6.4 ms each
    np.testing.assert_allclose(tx.tx_s, 10 * 32 * 6.4e-3)
    assert np.all(tx.link_gateway == -1)


def test_bad_nbiot_settings_are_refused():
    for extra, words in [(", i_tbs: 11", "single-tone"), (", ce_thresholds_db: [160, 150]", "must rise"),
                         (", subcarrier_spacing_hz: 3750, subcarriers: 3", "3.75 kHz"),
                         (", coverage_levels: [{nprach_repetitions: 3, nprach_period: 1, npdcch_rmax: 8, "
                          "npdcch_g: 2, npdsch_subframes: 4, npusch_repetitions: 2, rar_window_periods: 10}, "
                          "{nprach_repetitions: 8, nprach_period: 1, npdcch_rmax: 8, npdcch_g: 2, npdsch_subframes: 4, "
                          "npusch_repetitions: 2, rar_window_periods: 10}, {nprach_repetitions: 8, nprach_period: 1, "
                          "npdcch_rmax: 8, npdcch_g: 2, npdsch_subframes: 4, npusch_repetitions: 2, "
                          "rar_window_periods: 10}]", "nprach_repetitions")]:
        with pytest.raises(InputError, match=words):
            load_scenario_text(RUN % extra)


@pytest.fixture(scope="module")
def nbiot_result():
    return run_scenario(load_scenario_text(RUN % ""))


def test_an_nbiot_run_conserves_frames_and_energy(nbiot_result):
    summary = summary_table(nbiot_result).set_index("policy")
    lost_columns = [c for c in summary.columns if c.startswith("packets_lost_")]
    assert set(lost_columns) == {"packets_lost_below_sensitivity", "packets_lost_link_retries"}
    for _, row in summary.iterrows():
        assert row.packets_offered == row.packets_delivered + row.packets_lost
        assert row.packets_lost == row[lost_columns].sum()
    assert set(packets_table(nbiot_result).loss_reason.unique()) <= set(REASON_NAMES)
    radio = [i for (c, _), i in SLOT_INDEX.items() if c == "radio"]
    link = make_link(nbiot_result.scenario.network)
    nodes = stages.fleet_nodes(nbiot_result.plans, link)
    for out in nbiot_result.outcomes:
        np.testing.assert_allclose(out.ledger.time_s[:, radio].sum(1), out.ledger.lifetime_s)
        # the ledger's radio TX time is the frames' (alive nodes) plus the periodic tracking area updates' share
        tx = out.tx
        own = np.bincount(tx.node, weights=np.where(tx.fate != Fate.NODE_DEAD, tx.tx_s, 0.0),
                          minlength=nbiot_result.n_nodes)
        ledger_tx = out.ledger.time_s[:, SLOT_INDEX[("radio", "tx")]]
        keep = link.keep_alive(nodes.link)  # T3412 every 5 days: its share of an update over each node's life
        np.testing.assert_allclose(ledger_tx, own + keep.tx_s * out.ledger.lifetime_s / keep.period_s, rtol=1e-9)
    # cloud offload sends more and spends more radio energy than on-device inference
    assert summary.loc["cloud_offload", "bytes_uplinked_per_node_day"] > summary.loc["on_device", "bytes_uplinked_per_node_day"]
    assert summary.loc["cloud_offload", "energy_j_per_node_day"] > summary.loc["on_device", "energy_j_per_node_day"]


def test_same_seed_same_bytes(nbiot_result):
    again = run_scenario(load_scenario_text(RUN % ""))
    assert summary_table(again).equals(summary_table(nbiot_result))
    assert packets_table(again).equals(packets_table(nbiot_result))


def test_make_link_and_notes():
    link = make_link(network())
    assert isinstance(link, NbIotLink) and link.carrier_frequency_hz == 800e6
    assert any("CE level 0 below 147.7 dB" in n for n in link.notes())


def test_no_reports_no_frames():
    link = NbIotLink(network())
    empty = Messages(node=np.zeros(0, np.int64), ready_s=np.zeros(0), app_bytes=np.zeros(0, np.int64),
                     kind=np.zeros(0, np.int8), window=np.zeros(0, np.int64), group=np.zeros(0, np.int64))
    tx = link.transmit(empty, one_node(150.0, n=3), np.random.default_rng(1), 3600.0)
    assert len(tx) == 0 and tx.node_stats["connections"].tolist() == [0, 0, 0]


def test_the_busiest_cell_load_is_the_frames_resource_time(nbiot_result):
    s = summary_table(nbiot_result).set_index("policy")
    for out in nbiot_result.outcomes:
        tx = out.tx
        covered = tx.link_gateway >= 0
        # 3.75 kHz single tone: 1/48 of the 180 kHz carrier, for each block transmission's time on air
        by_hand = (tx.on_air_s[covered] / 48).sum() / nbiot_result.scenario.duration  # one cell
        assert s.loc[out.policy.name, "busiest_cell_uplink_load"] == pytest.approx(by_hand, rel=1e-12)
    assert s.loc["cloud_offload", "busiest_cell_uplink_load"] > s.loc["on_device", "busiest_cell_uplink_load"]
