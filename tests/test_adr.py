"""ADR (network side, device backoff, LinkADRReq/Ans) and class A timing, checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from iotsim.errors import InputError
from iotsim.radio import adr, lorawan, lorawan_mac
from iotsim.radio.lora import time_on_air_s

EU = lorawan.EU868
US = lorawan.US915


# ---- network side: Semtech algorithm ------------------------------------------------------
# SNRreq (SX1276 table 13): SF12 -20, SF11 -17.5, SF10 -15, SF9 -12.5, SF8 -10, SF7 -7.5 dB.
# SNRmargin = SNRmax - SNRreq - 10; NStep = floor(SNRmargin / 3).


def test_margin_allows_sf7_and_a_power_reduction():
    # DR0 (SF12): 11 - (-20) - 10 = 21 dB -> NStep 7: DR0 -> DR5 (5 steps), 2 left -> TXPower 0 -> 2
    history = [3.0, 11.0, 7.5, -2.0]
    assert adr.semtech_adr(history, 0, 0, EU) == (5, 2)
    assert EU.tx_power_eirp_dbm(2) == 12.0  # 16 dBm -> 12 dBm EIRP


def test_margin_exactly_enough_for_sf7_leaves_power_alone():
    # DR0: 5 + 20 - 10 = 15 dB -> NStep 5: DR0 -> DR5, nothing left
    assert adr.semtech_adr([5.0], 0, 0, EU) == (5, 0)
    # DR2 (SF10): -2.1 + 15 - 10 = 2.9 dB -> NStep 0: unchanged
    assert adr.semtech_adr([-2.1], 2, 3, EU) == (2, 3)


def test_at_max_data_rate_margin_only_lowers_power():
    # DR5 (SF7): 10 + 7.5 - 10 = 7.5 dB -> NStep 2 -> TXPower 0 -> 2
    assert adr.semtech_adr([10.0], 5, 0, EU) == (5, 2)
    # 30 + 7.5 - 10 = 27.5 dB -> NStep 9, TXPower 6 + 9 capped at the lowest power, index 7
    assert adr.semtech_adr([30.0], 5, 6, EU) == (5, 7)


def test_negative_margin_raises_power_and_never_lowers_the_data_rate():
    # DR5: -8 + 7.5 - 10 = -10.5 dB -> NStep floor(-3.5) = -4 -> TXPower 5 -> 1 (+8 dB)
    assert adr.semtech_adr([-8.0], 5, 5, EU) == (5, 1)
    # DR3 (SF9): -20 + 12.5 - 10 = -17.5 dB -> NStep -6 -> TXPower 1 -> 0 (already max power); DR stays 3
    assert adr.semtech_adr([-20.0], 3, 1, EU) == (3, 0)


def test_only_the_last_history_uplinks_count():
    # 5 old uplinks at 30 dB, then 20 at -15 dB: SNRmax = -15 -> DR0: -15 + 20 - 10 = -5 -> NStep -2
    history = [30.0] * 5 + [-15.0] * 20
    assert adr.semtech_adr(history, 0, 3, EU) == (0, 1)
    # with a 25-uplink history the 30 dB uplinks count: 30 + 20 - 10 = 40 -> NStep 13: DR5, TXPower 7
    assert adr.semtech_adr(history, 0, 3, EU, history=25) == (5, 7)
    # installation margin as a parameter: margin 0 -> -15 + 20 = 5 -> NStep 1 -> DR1
    assert adr.semtech_adr(history, 0, 3, EU, margin_db=0.0) == (1, 3)
    assert adr.semtech_adr([], 2, 4, EU) == (2, 4)  # no history: unchanged


def test_us915_adr_stops_at_dr3():
    # DR0 (SF10/125 kHz): 5 + 15 - 10 = 10 -> NStep 3 -> DR3 (SF7), the fastest 125 kHz uplink DR
    assert adr.semtech_adr([5.0], 0, 0, US) == (3, 0)
    # 11 + 15 - 10 = 16 -> NStep 5 -> DR3 and TXPower 2 (30 -> 26 dBm)
    assert adr.semtech_adr([11.0], 0, 0, US) == (3, 2)


def test_vectorized_adr_equals_scalar():
    rng = np.random.default_rng(3)
    snr = rng.uniform(-25, 20, 200)
    dr = rng.integers(0, 6, 200)
    txp = rng.integers(0, 8, 200)
    new_dr, new_txp = adr.semtech_adr_array(snr, dr, txp, EU)
    for i in range(200):
        assert (new_dr[i], new_txp[i]) == adr.semtech_adr([snr[i]], int(dr[i]), int(txp[i]), EU)
    assert np.all(new_dr >= dr)  # never lowers the data rate
    nd, nt = adr.semtech_adr_array(np.array([np.nan]), np.array([2]), np.array([4]), EU)
    assert (int(nd[0]), int(nt[0])) == (2, 4)
    with pytest.raises(InputError):
        adr.semtech_adr([0.0], 0, 8, EU)


# ---- device side: ADR backoff (LoRaWAN L2 1.0.4 table 9) -----------------------------------


def _run(backoff: adr.AdrBackoff, n: int) -> list[adr.UplinkSettings]:
    return [backoff.next_uplink() for _ in range(n)]


def test_backoff_sequence_of_table_9():
    # Table 9's example: DR1, reduced power, NbTrans 3; ADR_ACK_LIMIT 64, ADR_ACK_DELAY 32
    b = adr.AdrBackoff(EU, data_rate=1, tx_power_index=4, nb_trans=3)
    ups = _run(b, 200)
    for c, u in enumerate(ups):
        assert u.adr_ack_cnt == c
        assert u.adr_ack_req == (c >= 64)
        # 0..95: DR1 at reduced power; 96..127: default (max) power; 128..: DR0 (default)
        assert u.tx_power_index == (4 if c < 96 else 0)
        assert u.data_rate == (1 if c < 128 else 0)
        # >= 160: NbTrans 1 and default channels back
        assert u.nb_trans == (3 if c < 160 else 1)
        assert u.default_channels_restored == (c >= 160)
    # any downlink resets ADRACKCnt; the backed-off settings stay
    b.on_downlink()
    u = b.next_uplink()
    assert (u.adr_ack_cnt, u.adr_ack_req, u.data_rate, u.tx_power_index, u.nb_trans) == (0, False, 0, 0, 1)


def test_backoff_steps_one_data_rate_every_adr_ack_delay():
    b = adr.AdrBackoff(EU, data_rate=5, tx_power_index=7)
    ups = _run(b, 300)
    # power restored at 96, then DR5 -> 4 at 128, 3 at 160, 2 at 192, 1 at 224, 0 at 256, NbTrans reset at 288
    expect_dr = {95: 5, 96: 5, 127: 5, 128: 4, 159: 4, 160: 3, 192: 2, 224: 1, 255: 1, 256: 0, 299: 0}
    for c, dr in expect_dr.items():
        assert ups[c].data_rate == dr, c
    assert ups[95].tx_power_index == 7 and ups[96].tx_power_index == 0
    assert not ups[287].default_channels_restored and ups[288].default_channels_restored
    # a downlink before the limit stops it all
    b2 = adr.AdrBackoff(EU, data_rate=5, tx_power_index=7, adr_ack_limit=4, adr_ack_delay=2)
    for _ in range(3):
        assert not b2.next_uplink().adr_ack_req
        b2.on_downlink()
    assert b2.adr_ack_cnt == 0
    # small limits: req from 4, power at 6, DR4 at 8
    ups = _run(b2, 9)
    assert [u.adr_ack_req for u in ups] == [False] * 4 + [True] * 5
    assert [u.tx_power_index for u in ups] == [7] * 6 + [0] * 3
    assert [u.data_rate for u in ups] == [5] * 8 + [4]


# ---- LinkADRReq / LinkADRAns ----------------------------------------------------------------


def test_link_adr_req_accepted_and_sizes():
    state = adr.DeviceRadioState(data_rate=0, tx_power_index=0, nb_trans=1, channel_mask=frozenset(range(8)))
    new, ans = adr.apply_link_adr_req(state, EU, data_rate=5, tx_power_index=3, nb_trans=2, channel_mask=[0, 1, 2])
    assert ans.status_byte == 0b111 and ans.accepted
    assert (new.data_rate, new.tx_power_index, new.nb_trans, new.channel_mask) == (5, 3, 2, frozenset({0, 1, 2}))
    # CID + DataRate_TXPower 1 + ChMask 2 + Redundancy 1 = 5 bytes; Ans: CID + Status = 2 bytes
    assert adr.LINK_ADR_REQ_BYTES == 5 and adr.LINK_ADR_ANS_BYTES == 2
    assert lorawan_mac.ACK_DOWNLINK_PHY_BYTES == 12


def test_link_adr_req_rejections_apply_nothing():
    state = adr.DeviceRadioState(data_rate=2, tx_power_index=1, nb_trans=1, channel_mask=frozenset(range(8)))
    new, ans = adr.apply_link_adr_req(state, EU, data_rate=7, tx_power_index=3, nb_trans=1)  # DR7 is FSK
    assert (ans.power_ack, ans.data_rate_ack, ans.channel_mask_ack) == (True, False, True)
    assert ans.status_byte == 0b101 and new == state
    new, ans = adr.apply_link_adr_req(state, EU, data_rate=3, tx_power_index=8, nb_trans=1)
    assert ans.status_byte == 0b011 and new == state
    new, ans = adr.apply_link_adr_req(state, EU, data_rate=3, tx_power_index=2, nb_trans=1, channel_mask=[])
    assert ans.status_byte == 0b110 and new == state
    new, ans = adr.apply_link_adr_req(state, US, data_rate=4, tx_power_index=14, nb_trans=1, channel_mask=[65])
    assert ans.accepted and new.channel_mask == frozenset({65})
    new, ans = adr.apply_link_adr_req(state, EU, data_rate=4, tx_power_index=0, nb_trans=1, max_device_data_rate=3)
    assert not ans.data_rate_ack


def test_link_adr_req_keep_current_and_default_nb_trans():
    state = adr.DeviceRadioState(data_rate=2, tx_power_index=1, nb_trans=3)
    new, ans = adr.apply_link_adr_req(state, EU, data_rate=adr.KEEP_CURRENT, tx_power_index=adr.KEEP_CURRENT, nb_trans=0)
    assert ans.accepted and (new.data_rate, new.tx_power_index, new.nb_trans) == (2, 1, 1)
    with pytest.raises(InputError):
        adr.apply_link_adr_req(state, EU, data_rate=2, tx_power_index=1, nb_trans=16)


# ---- class A timing -------------------------------------------------------------------------


def test_receive_windows():
    # EU868 DR5 uplink ending at 10 s, 8-symbol windows: RX1 at 11 s for 8 x 1.024 ms (SF7),
    # RX2 at 12 s for 8 x 32.768 ms (DR0, SF12)
    r1o, r1c, r2o, r2c = lorawan_mac.rx_windows_s(10.0, EU, 5, window_symbols=8)
    assert (float(r1o), float(r2o)) == (11.0, 12.0)
    assert float(r1c - r1o) == pytest.approx(8.192e-3) and float(r2c - r2o) == pytest.approx(0.262144)
    # US915 DR0 uplink: RX1 at DR10 (SF10/500 kHz, 2.048 ms/symbol), RX2 DR8 (SF12/500 kHz, 8.192 ms)
    r1o, r1c, r2o, r2c = lorawan_mac.rx_windows_s(np.array([0.0, 5.0]), US, np.array([0, 3]), window_symbols=8)
    assert np.allclose(r1c - r1o, [8 * 2.048e-3, 8 * 0.256e-3])  # DR10 SF10, DR13 SF7 at 500 kHz
    assert np.allclose(r2c - r2o, 8 * 8.192e-3)
    assert lorawan_mac.receive_delay1_s(EU) == 1.0 and lorawan_mac.receive_delay2_s(US) == 2.0


def test_retransmission_delay_is_rx2_delay_plus_1_to_3_s():
    rng = np.random.default_rng(11)
    t = lorawan_mac.earliest_retransmission_s(np.full(100_000, 5.0), EU, rng)
    wait = t - 5.0 - EU.rx2_delay_s
    assert wait.min() >= 1.0 and wait.max() <= 3.0
    assert abs(wait.mean() - 2.0) < 0.01
    a = lorawan_mac.earliest_retransmission_s(1.0, EU, np.random.default_rng(1))
    b = lorawan_mac.earliest_retransmission_s(1.0, EU, np.random.default_rng(1))
    assert a == b and isinstance(a, float) and 4.0 <= a <= 6.0
    assert (lorawan_mac.NB_TRANS_DEFAULT, lorawan_mac.NB_TRANS_MAX) == (1, 15)
    assert lorawan_mac.check_nb_trans([1, 15]).tolist() == [1, 15]
    with pytest.raises(InputError):
        lorawan_mac.check_nb_trans(0)


def test_ack_downlink_airtime_by_hand():
    # 12 B, no CRC, SF12/125 kHz, LDRO: ceil((96 - 48 + 28) / 40) = 2 blocks x 5 = 10 -> 18 payload
    # symbols + 12.25 preamble = 30.25 x 32.768 ms = 991.232 ms (RX2 in EU868)
    assert lorawan_mac.ack_downlink_airtime_s(EU, 5, window=2) == pytest.approx(0.991232, abs=1e-9)
    # RX1 after a DR5 uplink is SF7: ceil((96 - 28 + 28) / 28) = 4 x 5 = 20 -> 28 + 12.25 = 40.25 x 1.024 ms
    assert lorawan_mac.ack_downlink_airtime_s(EU, 5) == pytest.approx(0.041216, abs=1e-9)
    assert lorawan_mac.ack_downlink_airtime_s(EU, 5) == time_on_air_s(12, 7, crc=False)
