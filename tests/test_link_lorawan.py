"""The LoRaWAN link: fragmentation, duty cycle per sub-band, channel choice, against closed forms."""

import numpy as np
import pytest

from iotsim.link import LinkNodes, Messages
from iotsim.link.draws import frame_salt, frame_uniforms
from iotsim.link.lorawan import LoRaWanLink, schedule_uplinks
from iotsim.radio import lora, lorawan
from iotsim.scenario.model import Network


def _network(**lw):
    return Network.model_validate({"gateways": [{"id": "g", "position_m": [0, 0]}], "lorawan": lw})


def _messages(node, ready, app_bytes, kind=2):
    n = len(node)
    return Messages(np.asarray(node, np.int64), np.asarray(ready, float), np.asarray(app_bytes, np.int64),
                    np.full(n, kind, np.int8), np.arange(n, dtype=np.int64), np.zeros(n, np.int64))


def _nodes(sf):
    sf = np.asarray(sf, np.int64)
    n = sf.shape[0]
    return LinkNodes(np.zeros((n, 1)), sf, np.full(n, 0.001), np.zeros(n))


def _transmit(link, msgs, sf, seed=0):
    return link.transmit(msgs, _nodes(sf), np.random.default_rng(seed), 1e9)


def test_raw_window_is_fragmented_to_the_sf_payload_limit():
    link = LoRaWanLink(_network(fragment_header_bytes=2))
    tx = link.split(_messages([0, 1], [0.0, 0.0], [1536, 1536]), np.array([7, 10]))
    # SF7: 222 B max -> 220 B per fragment -> 7 frames; SF10: 51 B -> 49 per fragment -> 32 frames
    assert (tx.message == 0).sum() == 7 and (tx.message == 1).sum() == 32
    app0 = tx.phy_bytes[tx.message == 0] - lora.LORAWAN_OVERHEAD_BYTES - 2
    assert app0.sum() == 1536 and app0.max() == 220
    assert (tx.phy_bytes - lora.LORAWAN_OVERHEAD_BYTES <= 222).all()
    expected = lora.time_on_air_s(tx.phy_bytes, tx.sf, bandwidth_hz=125000, coding_rate=1, preamble_symbols=8)
    np.testing.assert_allclose(tx.airtime_s, expected)
    # a message that fits travels in one frame without a fragment header
    one = link.split(_messages([0], [0.0], [20]), np.array([7]))
    assert len(one) == 1 and one.phy_bytes[0] == 33


def test_us915_region_sets_payload_limits_and_no_duty_cycle():
    net = Network.model_validate({"gateways": [{"id": "g", "position_m": [0, 0]}], "region": "US915",
                                  "lorawan": {"sf": 10}})
    link = LoRaWanLink(net)
    assert link.uplink_sfs() == [7, 8, 9, 10]
    # US915 DR0 (SF10/125 kHz) carries at most 11 B of application payload (RP002 US902-928)
    tx = link.split(_messages([0], [0.0], [30]), np.array([10]))
    assert len(tx) > 1 and (tx.phy_bytes - lora.LORAWAN_OVERHEAD_BYTES <= 11).all()
    band, dc = link.channel_bands()
    assert (dc == 1.0).all()


def _rx_done(link, tx):
    _, rx2 = link.receive_windows_s(tx.sf)
    return tx.airtime_s + link.region.rx2_delay_s + rx2


def test_aggregate_duty_cycle_paces_frames_as_one_budget():
    link = LoRaWanLink(_network(duty_cycle_scope="aggregate", sf=12))
    tx = _transmit(link, _messages([0, 0, 0], [0.0, 1.0, 1000.0], [20, 20, 20]), [12])
    toa = lora.time_on_air_s(33, 12)
    # frame 0 at 0; frame 1 waits toa/dc; frame 2 is ready long after and goes at once
    np.testing.assert_allclose(tx.start_s, [0.0, toa / 0.01, 1000.0])
    assert not tx.dropped.any()


def test_sub_bands_keep_their_own_budget():
    """EU868's 8-channel plan spans two 1 % sub-bands: the second frame goes at once in the other one."""
    link = LoRaWanLink(_network(sf=12))
    band, dc = link.channel_bands()
    assert sorted(set(band.tolist())) == [0, 1] and (dc == 0.01).all()
    tx = _transmit(link, _messages([0, 0, 0], [0.0, 0.0, 0.0], [20, 20, 20]), [12])
    toa = lora.time_on_air_s(33, 12)
    rx_done = _rx_done(link, tx)[0]
    b = band[tx.channel]
    # first frame at 0; second as soon as RX2 has closed, in the other sub-band; the third waits for
    # the first sub-band to reopen (toa / 1 %)
    assert tx.start_s[0] == 0.0
    assert tx.start_s[1] == pytest.approx(rx_done) and b[1] != b[0]
    assert tx.start_s[2] == pytest.approx(toa / 0.01) and b[2] == b[0]


def test_wait_mode_backlog_matches_the_per_frame_recursion():
    """Random backlog on the two-sub-band plan: the schedule equals a frame-by-frame simulation."""
    link = LoRaWanLink(_network(sf=9))
    rng = np.random.default_rng(1)
    n = 300
    node = np.sort(rng.integers(0, 5, n))
    ready = np.concatenate([np.sort(rng.random((node == k).sum()) * 2000) for k in range(5)])
    msgs = _messages(node, ready, rng.integers(5, 300, n))
    tx = _transmit(link, msgs, np.full(5, 9), seed=4)
    band, dc = link.channel_bands()
    rx_done = _rx_done(link, tx)
    u = frame_uniforms(frame_salt(np.random.default_rng(4)), msgs, tx)  # the link's draws
    for k in range(5):
        free, node_free = [-np.inf, -np.inf], -np.inf
        for i in np.flatnonzero(tx.node == k):
            t = max(tx.ready_s[i], node_free, min(free))
            open_ch = [c for c in range(8) if free[band[c]] <= t]
            c = open_ch[int(u[i] * len(open_ch))]
            assert tx.start_s[i] == pytest.approx(t, abs=1e-9) and tx.channel[i] == c
            free[band[c]] = t + tx.airtime_s[i] / dc[band[c]]
            node_free = t + rx_done[i]
    assert (tx.start_s > tx.ready_s + 1e-6).sum() > 20  # the duty cycle did bind


def test_fast_path_equals_the_loop():
    """Sparse traffic takes the vectorized path; forcing every node through the loop changes nothing."""
    rng = np.random.default_rng(2)
    n = 2000
    node = np.sort(rng.integers(0, 50, n))
    ready = np.concatenate([np.sort(rng.random((node == k).sum()) * 86400) for k in range(50)])
    air = rng.uniform(0.05, 0.4, n)
    rx_done = air + 2.2
    msg = np.arange(n)
    u = rng.random(n)
    band = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    dc = np.array([0.01, 0.01])
    fast = schedule_uplinks(ready, air, rx_done, node, msg, u, band, dc, "wait")
    from iotsim.link import lorawan as mod

    slow_start, slow_ch, slow_drop = np.full(n, np.nan), np.full(n, -1, np.int8), np.zeros(n, bool)
    los, his = mod.node_runs(node)
    mod._schedule_loop(ready, air, rx_done, msg, u, band, dc, "wait", los.tolist(), his.tolist(),
                       slow_start, slow_ch, slow_drop)
    np.testing.assert_array_equal(fast[0], slow_start)
    np.testing.assert_array_equal(fast[1], slow_ch)


def test_drop_mode_drops_messages_that_may_not_start():
    link = LoRaWanLink(_network(duty_cycle_mode="drop", duty_cycle_scope="aggregate", sf=7))
    msgs = _messages([0, 0, 0, 1], [0.0, 5.0, 500.0, 5.0], [400, 20, 20, 20])
    tx = _transmit(link, msgs, [7, 7])
    m0 = tx.message == 0
    assert m0.sum() == 2 and not tx.dropped[m0].any()  # fragments of a started message wait
    gap = max(tx.airtime_s[0] / 0.01, _rx_done(link, tx)[0])
    assert tx.start_s[m0][1] == pytest.approx(gap)
    assert tx.dropped[tx.message == 1].all()  # node 0 still restricted at t=5
    assert not tx.dropped[tx.message == 2].any()
    assert not tx.dropped[tx.message == 3].any()  # another node is not affected
    assert np.isnan(tx.start_s[tx.dropped]).all()


def test_single_channel_plan():
    link = LoRaWanLink(_network(uplink_channels=1, sf=7))
    tx = _transmit(link, _messages(np.zeros(50), np.arange(50) * 100.0, np.full(50, 10)), [7])
    assert (tx.channel == 0).all()
    assert link.carrier_frequency_hz == lorawan.EU868.uplink_channels_hz[0]
