"""LoRa time on air, sensitivities, LoRaWAN EU868 parameters, fragmentation, propagation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from iotsim.errors import InputError
from iotsim.radio import lora, lorawan, propagation
from hypothesis import given, settings
from hypothesis import strategies as st

from iotsim.radio.fragmentation import n_frames, split_messages
from iotsim.radio.lora import LORAWAN_OVERHEAD_BYTES, parse_coding_rate, symbol_time_s, time_on_air_s
from iotsim.validation.checks import NS3_TOA_CASES


def reference_toa_s(pl, sf, bw=125_000, cr=1, n_pre=8, explicit=True, crc=True, de=None):
    """Plain-Python transcription of SX1276 datasheet section 4.1.1.7, for cross-checking."""
    t_sym = (2**sf) / bw
    if de is None:
        de = t_sym > 0.016
    num = 8 * pl - 4 * sf + 28 + 16 * int(crc) - 20 * (0 if explicit else 1)
    n_payload = 8 + max(math.ceil(num / (4 * (sf - 2 * int(de)))) * (cr + 4), 0)
    return (n_pre + 4.25 + n_payload) * t_sym


# NUMBERS.md test vectors: 125 kHz, CR 4/5, CRC on, explicit header, 8-symbol preamble.
@pytest.mark.parametrize(
    ("payload", "sf", "expected_ms"),
    [
        (20, 7, 56.576),
        (20, 12, 1318.912),
        (13, 9, 164.864),
        (20 + LORAWAN_OVERHEAD_BYTES, 7, 71.936),  # LoRaWAN 20 B application payload -> 33 B PHY
        (20 + LORAWAN_OVERHEAD_BYTES, 12, 1810.432),
    ],
)
def test_time_on_air_matches_published_vectors_to_the_microsecond(payload, sf, expected_ms):
    t = time_on_air_s(payload, sf)
    assert isinstance(t, float)
    assert abs(t - expected_ms * 1e-3) < 1e-9


def test_lorawan_overhead_is_mhdr_fhdr_fport_mic():
    assert LORAWAN_OVERHEAD_BYTES == 1 + 7 + 1 + 4


def test_symbol_time_closed_form():
    assert symbol_time_s(7, 125_000) == pytest.approx(1.024e-3, abs=1e-15)
    assert symbol_time_s(12, 125_000) == pytest.approx(32.768e-3, abs=1e-15)
    assert symbol_time_s(12, 500_000) == pytest.approx(8.192e-3, abs=1e-15)
    arr = symbol_time_s(np.arange(7, 13), 125_000)
    assert np.allclose(arr, 2.0 ** np.arange(7, 13) / 125_000, rtol=0, atol=1e-15)


@pytest.mark.parametrize("bw", [125_000, 250_000, 500_000])
@pytest.mark.parametrize("cr", [1, 2, 3, 4])
@pytest.mark.parametrize("crc", [True, False])
@pytest.mark.parametrize("explicit", [True, False])
def test_time_on_air_equals_datasheet_formula_over_a_grid(bw, cr, crc, explicit):
    for sf in range(7, 13):
        for pl in (0, 1, 5, 13, 20, 51, 115, 222, 255):
            got = time_on_air_s(pl, sf, bw, cr, explicit_header=explicit, crc=crc)
            want = reference_toa_s(pl, sf, bw, cr, explicit=explicit, crc=crc)
            assert got == pytest.approx(want, rel=0, abs=1e-12), (pl, sf, bw, cr)


def test_vectorized_calls_equal_scalar_calls():
    payloads = np.arange(0, 256, 7)
    sfs = np.arange(7, 13)
    grid = time_on_air_s(payloads[:, None], sfs[None, :])
    assert isinstance(grid, np.ndarray) and grid.shape == (len(payloads), len(sfs))
    for i, pl in enumerate(payloads):
        for j, sf in enumerate(sfs):
            assert grid[i, j] == time_on_air_s(int(pl), int(sf))
    # array payload, scalar SF
    row = time_on_air_s(payloads, 9)
    assert np.array_equal(row, [time_on_air_s(int(p), 9) for p in payloads])
    # scalar payload, array SF
    col = time_on_air_s(20, sfs)
    assert np.array_equal(col, [time_on_air_s(20, int(s)) for s in sfs])
    # numpy scalars give floats
    assert isinstance(time_on_air_s(np.int64(20), np.int32(7)), float)


def test_ldro_switches_on_at_sf11_and_sf12_for_125_khz():
    for sf in range(7, 13):
        auto = time_on_air_s(50, sf, 125_000)
        forced_on = time_on_air_s(50, sf, 125_000, low_data_rate_optimize=True)
        forced_off = time_on_air_s(50, sf, 125_000, low_data_rate_optimize=False)
        if sf >= 11:
            assert auto == forced_on and forced_on > forced_off
        else:
            assert auto == forced_off
    assert list(lora.low_data_rate_optimize_auto(np.arange(7, 13), 125_000)) == [False] * 4 + [True] * 2
    # at 250 kHz only SF12 has a symbol longer than 16 ms
    assert list(lora.low_data_rate_optimize_auto(np.arange(7, 13), 250_000)) == [False] * 5 + [True]
    assert lora.low_data_rate_optimize_auto(12, 500_000) is False


def test_time_on_air_grows_with_payload_in_steps_and_with_sf():
    t = time_on_air_s(np.arange(0, 256), 7)
    assert np.all(np.diff(t) >= 0)
    steps = np.unique(np.round(np.diff(t), 12))
    # payload grows in whole blocks of (CR + 4) symbols
    assert set(steps) <= {0.0, round(5 * 1.024e-3, 12)}
    assert np.all(np.diff(time_on_air_s(20, np.arange(7, 13))) > 0)


def test_coding_rate_parsing():
    assert [parse_coding_rate(x) for x in ("4/5", "4/6", "4/7", "4/8")] == [1, 2, 3, 4]
    assert parse_coding_rate(3) == 3
    assert time_on_air_s(20, 7, coding_rate="4/8") == time_on_air_s(20, 7, coding_rate=4)
    for bad in ("5/4", "4/9", "", 0, 5, True, "abc", 1.0):
        with pytest.raises(InputError) as err:
            parse_coding_rate(bad)
        assert err.value.field == "coding_rate"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"payload_bytes": 256, "sf": 7}, "payload_bytes"),
        ({"payload_bytes": -1, "sf": 7}, "payload_bytes"),
        ({"payload_bytes": 2.5, "sf": 7}, "payload_bytes"),
        ({"payload_bytes": 10, "sf": 13}, "sf"),
        ({"payload_bytes": 10, "sf": 6}, "sf"),
        ({"payload_bytes": 10, "sf": 7, "bandwidth_hz": 0}, "bandwidth_hz"),
        ({"payload_bytes": [10, 300], "sf": 7}, "payload_bytes"),
    ],
)
def test_bad_time_on_air_arguments_give_input_errors(kwargs, field):
    with pytest.raises(InputError) as err:
        time_on_air_s(**kwargs)
    assert err.value.field == field


def test_node_and_gateway_sensitivities():
    assert lora.node_sensitivity_dbm(7) == -123.0
    assert lora.node_sensitivity_dbm(12) == -136.0
    assert lora.node_sensitivity_dbm(12, 500_000) == -130.0
    assert np.array_equal(lora.node_sensitivity_dbm(np.arange(7, 13)), [-123, -126, -129, -132, -133, -136])
    gw = lora.gateway_sensitivity_dbm(np.arange(7, 13))
    assert np.all(np.diff(gw) < 0)  # higher SF -> more sensitive
    assert np.all(gw < lora.node_sensitivity_dbm(np.arange(7, 13)))  # gateway beats the node
    with pytest.raises(InputError):
        lora.gateway_sensitivity_dbm(7, 250_000)
    with pytest.raises(InputError):
        lora.node_sensitivity_dbm(6, 500_000)


def test_snr_thresholds_fall_2_5_db_per_sf():
    snr = lora.snr_threshold_db(np.arange(6, 13))
    assert snr[0] == -5.0 and snr[-1] == -20.0
    assert np.allclose(np.diff(snr), -2.5)
    assert lora.snr_threshold_db(7) == -7.5


def test_bitrate_closed_form():
    # SF7/125 kHz/CR4/5: 7 * 125000 / 128 * 4/5 = 5468.75 bit/s (SX1276 datasheet section 4.1.1.1)
    assert lora.bitrate_bps(7) == pytest.approx(5468.75)
    assert lora.bitrate_bps(12) == pytest.approx(12 * 125_000 / 4096 * 0.8)


# ---- LoRaWAN EU868 ---------------------------------------------------------------------------


def test_eu868_payload_limits():
    eu = lorawan.EU868
    assert [eu.max_app_payload_bytes(sf) for sf in (12, 11, 10, 9, 8, 7)] == [51, 51, 51, 115, 222, 222]
    assert lorawan.max_app_payload_bytes(7, repeater_compatible=False) == 242
    assert lorawan.max_app_payload_bytes(7, 250_000) == 222
    # every maximum frame fits the 255-byte LoRa PHY payload with the LoRaWAN overhead
    for sf in range(7, 13):
        assert eu.max_app_payload_bytes(sf, repeater_compatible=False) + LORAWAN_OVERHEAD_BYTES <= 255
    with pytest.raises(InputError):
        eu.max_app_payload_bytes(12, 250_000)


def test_eu868_data_rates_and_defaults():
    eu = lorawan.get_region("eu868")
    assert [lorawan.data_rate_to_sf(dr) for dr in range(7)] == [12, 11, 10, 9, 8, 7, 7]
    assert eu.data_rate_bandwidth_hz(6) == 250_000
    assert eu.sf_to_data_rate(9) == 3
    with pytest.raises(InputError):
        eu.data_rate_to_sf(7)  # FSK
    with pytest.raises(InputError):
        eu.data_rate_to_sf(9)
    assert eu.rx1_delay_s == 1.0
    assert eu.rx2_frequency_hz == 869.525e6 and eu.data_rate_to_sf(eu.rx2_data_rate) == 12
    assert eu.duty_cycle == 0.01
    assert len(eu.uplink_channels_hz) == 8 == len(set(eu.uplink_channels_hz))
    assert set(eu.default_channels_hz) <= set(eu.uplink_channels_hz)
    assert all(865e6 <= f <= 868.6e6 for f in eu.uplink_channels_hz)  # the 1 % sub-bands
    assert lorawan.get_region("us-915") is lorawan.US915
    with pytest.raises(InputError):
        lorawan.get_region("AS923")


def test_duty_cycle_bounds_messages_per_hour():
    # a 51-byte SF12 frame on one 1 % sub-band: at most 36 s of airtime per hour
    airtime = time_on_air_s(51 + LORAWAN_OVERHEAD_BYTES, 12)
    per_hour = math.floor(3600 * lorawan.EU868.duty_cycle / airtime)
    assert airtime == pytest.approx(2.793472, abs=1e-9)  # 85.25 symbols x 32.768 ms
    assert per_hour == 12


# ---- fragmentation (iotsim.radio.fragmentation.split_messages) ---------------------------


def _sizes(payload: int, max_payload: int, header: int) -> list[int]:
    _, _, sizes = split_messages(np.array([payload]), max_payload, header)
    return sizes.tolist()


@pytest.mark.parametrize("max_payload", [51, 115, 222])
@pytest.mark.parametrize("header", [0, 1, 2, 4])
def test_fragments_sum_back_to_the_payload(max_payload, header):
    for payload in (1, 10, max_payload - 1, max_payload, max_payload + 1, 384 * 4, 10_000):
        sizes = _sizes(payload, max_payload, header)
        headers = header * len(sizes) if len(sizes) > 1 else 0
        assert sum(sizes) - headers == payload
        assert all(0 < s <= max_payload for s in sizes)
        assert all(s == max_payload for s in sizes[:-1])
        expected = 1 if payload <= max_payload else math.ceil(payload / (max_payload - header))
        assert len(sizes) == expected == int(n_frames([payload], max_payload, header)[0])


def test_header_only_on_split_messages():
    # 50 B fits a 51 B frame whole (no header); 52 B is split, 2 B of header on each fragment
    assert _sizes(50, 51, 2) == [50]
    assert _sizes(51, 51, 2) == [51]
    assert _sizes(52, 51, 2) == [51, 5]
    assert _sizes(120, 51, 2) == [51, 51, 24]  # 49 + 49 + 22 data bytes
    assert _sizes(0, 51, 2) == [0]  # an empty message still takes one frame
    msg, frag, size = split_messages(np.array([50, 120, 7]), np.array([51, 51, 11]), 2)
    assert msg.tolist() == [0, 1, 1, 1, 2] and frag.tolist() == [0, 0, 1, 2, 0]
    assert size.tolist() == [50, 51, 51, 24, 7]


def test_split_matches_the_engine_convention_per_message_limits():
    # per-message limits, as the engine passes max_app_payload_array(sf) (SF12: 51 B, SF7: 222 B)
    app = np.array([300, 300, 10])
    cap = lorawan.max_app_payload_array(np.array([12, 7, 12]))
    msg, frag, size = split_messages(app, cap, 2)
    assert msg.tolist() == [0] * 7 + [1, 1, 2]
    assert size.tolist() == [51] * 6 + [300 - 6 * 49 + 2] + [222, 300 - 220 + 2] + [10]
    assert n_frames(app, cap, 2).tolist() == [7, 2, 1]


def test_fragment_header_must_leave_room_for_data():
    with pytest.raises(InputError) as err:
        split_messages(np.array([100]), 51, 51)
    assert err.value.field == "header_bytes"
    # a message that fits needs no header, so a large header is fine for it
    assert _sizes(10, 10, 12) == [10]
    with pytest.raises(InputError):
        n_frames([100], 10, 12)
    with pytest.raises(InputError):
        split_messages(np.array([-1]), 51, 2)
    with pytest.raises(InputError):
        split_messages(np.array([10, 20]), np.array([51, 51, 51]), 2)


@settings(max_examples=200, deadline=None)
@given(
    app=st.lists(st.integers(0, 5000), min_size=1, max_size=30),
    caps=st.lists(st.sampled_from([11, 51, 53, 115, 125, 222, 242]), min_size=30, max_size=30),
    header=st.integers(0, 10),
)
def test_split_property_bytes_sum_back_and_frames_fit(app, caps, header):
    app_arr = np.array(app, dtype=np.int64)
    cap = np.array(caps[: len(app)], dtype=np.int64)
    msg, frag, size = split_messages(app_arr, cap, header)
    assert np.all(size <= cap[msg])  # every frame fits its message's limit
    n = np.bincount(msg, minlength=len(app))
    assert np.array_equal(n, n_frames(app_arr, cap, header))
    assert np.all(n >= 1)
    split = n > 1
    data = np.bincount(msg, weights=size, minlength=len(app)) - np.where(split, n * header, 0)
    assert np.array_equal(data.astype(np.int64), app_arr)  # data bytes sum to the message bytes
    assert np.all(size[split[msg]] > header)  # each fragment carries data
    for m in range(len(app)):  # fragments numbered 0..n-1 in order
        assert frag[msg == m].tolist() == list(range(n[m]))


def test_max_payload_array_matches_scalar_lookup():
    sfs = np.array([[7, 8, 9], [10, 11, 12]])
    arr = lorawan.max_app_payload_array(sfs)
    assert arr.shape == sfs.shape and arr.dtype == np.int64
    assert arr.tolist() == [[lorawan.max_app_payload_bytes(int(s)) for s in row] for row in sfs]
    assert lorawan.EU868.rx2_delay_s == lorawan.EU868.rx1_delay_s + 1.0
    # US915 (RP002 US902-928): SF10 11 B, SF9 53 B, SF8 125 B, SF7 242 B; SF11/12 are no uplink DR
    us = lorawan.max_app_payload_array(np.array([10, 9, 8, 7]), 125_000, lorawan.US915)
    assert us.tolist() == [11, 53, 125, 242]
    assert lorawan.max_app_payload_array([8], 500_000, "US915").tolist() == [242]
    with pytest.raises(InputError):
        lorawan.max_app_payload_array([12], 125_000, lorawan.US915)


# ---- propagation -----------------------------------------------------------------------------


def test_path_loss_closed_form():
    assert propagation.path_loss_db(40.0) == pytest.approx(127.41)
    assert propagation.path_loss_db(400.0) == pytest.approx(127.41 + 20.8)
    d = np.array([40.0, 400.0, 4000.0])
    assert np.allclose(propagation.path_loss_db(d), 127.41 + 20.8 * np.arange(3))
    assert propagation.rx_power_dbm(14, 40.0) == pytest.approx(14 - 127.41)
    assert propagation.rx_power_dbm(14, 40.0, shadowing_db=3.0) == pytest.approx(14 - 127.41 - 3.0)
    with pytest.raises(InputError):
        propagation.path_loss_db(0.0)


def test_max_range_inverts_the_model():
    sens = lora.gateway_sensitivity_dbm(12)
    r = propagation.max_range_m(14, sens)
    assert propagation.rx_power_dbm(14, r) == pytest.approx(sens)
    # closed form: d = d0 * 10^((P_tx - S - PL(d0)) / (10 gamma))
    assert r == pytest.approx(40.0 * 10 ** ((14 - sens - 127.41) / 20.8))


def test_shadowing_draws_are_seeded_and_have_the_stated_sigma():
    a = propagation.draw_shadowing_db(np.random.default_rng(7), 200_000)
    b = propagation.draw_shadowing_db(np.random.default_rng(7), 200_000)
    assert np.array_equal(a, b)
    assert abs(a.std() - propagation.SHADOWING_SIGMA_DB) < 0.02
    assert abs(a.mean()) < 0.02


def test_bor_parameters_and_capture_threshold():
    assert (propagation.PL_D0_DB, propagation.D0_M, propagation.PATH_LOSS_EXPONENT) == (127.41, 40.0, 2.08)
    assert propagation.SHADOWING_SIGMA_DB == 3.57
    assert propagation.CAPTURE_THRESHOLD_DB == 6.0


# ---- ns-3 lorawan TimeOnAirTest -----------------------------------------------------------

# ns-3 lorawan's TimeOnAirTest vectors, with their source, live in iotsim.validation.checks
@pytest.mark.parametrize(("pl", "sf", "bw", "cr", "n_pre", "explicit", "ldro", "expected"), NS3_TOA_CASES)
def test_time_on_air_matches_ns3_lorawan_test_suite(pl, sf, bw, cr, n_pre, explicit, ldro, expected):
    t = time_on_air_s(pl, sf, bw, cr, n_pre, explicit_header=explicit, crc=True, low_data_rate_optimize=ldro)
    assert abs(t - expected) < 1e-4  # ns-3's own tolerance
    if expected != 0.14028:
        assert t == pytest.approx(expected, abs=1e-9)  # and to the nanosecond for the other 14
    else:
        assert t == pytest.approx(0.140288, abs=1e-9)


def test_ns3_case_list_is_complete():
    assert len(NS3_TOA_CASES) == 15


# ---- regions: EU868 sub-bands, TX power; US915 ---------------------------------------------


def test_eu868_sub_bands_of_channels_and_rx2():
    eu = lorawan.EU868
    idx = eu.sub_band_index(np.array(eu.uplink_channels_hz))
    # 868.1/.3/.5 MHz in LoRaMac-node band 1 (868.0-868.6 MHz, 1 %), 867.1-867.9 in band 0 (865-868, 1 %)
    assert idx.tolist() == [1, 1, 1, 0, 0, 0, 0, 0]
    assert eu.sub_band_duty_cycle(np.array(eu.uplink_channels_hz)).tolist() == [0.01] * 8
    assert eu.sub_band_index(869.525e6) == 3 and eu.sub_band_duty_cycle(869.525e6) == 0.10  # RX2, 10 %
    assert eu.sub_band_duty_cycle(868.8e6) == 0.001 and eu.sub_band_duty_cycle(864.0e6) == 0.001
    assert eu.sub_band_index(868.0e6) == 0 and eu.sub_band_index(868.6e6) == 1  # edges as LoRaMac-node
    assert eu.sub_band_duty_cycle(869.8e6) == 0.01
    assert isinstance(eu.sub_band_index(868.1e6), int)
    with pytest.raises(InputError) as err:
        eu.sub_band_index(np.array([868.1e6, 869.3e6]))  # 869.2-869.4 MHz is in no band
    assert "869.3 MHz" in err.value.message


def test_eu868_tx_power_and_rx1():
    eu = lorawan.EU868
    # RP002 EU863-870: TXPower 0..7 = 16 dBm EIRP - 0, 2, ..., 14 dB
    assert eu.tx_power_eirp_dbm(np.arange(8)).tolist() == [16, 14, 12, 10, 8, 6, 4, 2]
    assert eu.max_tx_power_index == 7
    assert eu.tx_power_conducted_dbm(0) == pytest.approx(16 - 2.15)
    assert eu.tx_power_conducted_dbm(0, antenna_gain_dbi=0) == 16.0
    assert eu.tx_power_conducted_dbm(np.arange(8), floor_to_db=True).tolist() == [13, 11, 9, 7, 5, 3, 1, -1]
    with pytest.raises(InputError):
        eu.tx_power_eirp_dbm(8)
    assert [eu.rx1_data_rate(5, off) for off in range(6)] == [5, 4, 3, 2, 1, 0]
    assert eu.rx1_data_rate(1, 3) == 0
    assert eu.rx1_frequency_hz(868.3e6) == 868.3e6
    with pytest.raises(InputError):
        eu.rx1_data_rate(5, 6)


def test_us915_channels_data_rates_and_payloads():
    us = lorawan.get_region("US915")
    ch = np.array(us.all_uplink_channels_hz)
    assert len(ch) == 72 and ch[0] == 902.3e6 and ch[63] == pytest.approx(914.9e6) and ch[64] == 903.0e6
    assert ch[71] == pytest.approx(914.2e6)
    # sub-band 2 (TTN US_902_928_FSB_2): channels 8-15 = 903.9 ... 905.3 MHz, plus 65 = 904.6 MHz
    assert np.allclose(us.uplink_channels_hz, 903.9e6 + 0.2e6 * np.arange(8))
    assert ch[65] == pytest.approx(904.6e6)
    assert [us.data_rate_to_sf(d) for d in range(5)] == [10, 9, 8, 7, 8]
    assert us.data_rate_bandwidth_hz(4) == 500_000 and us.data_rate_bandwidth_hz(3) == 125_000
    assert [us.data_rate_to_sf(d) for d in range(8, 14)] == [12, 11, 10, 9, 8, 7]
    assert us.sf_to_data_rate(8, 500_000) == 4  # the uplink DR4, not the downlink DR12
    with pytest.raises(InputError):
        us.data_rate_to_sf(5)  # LR-FHSS
    # RP002 US902-928 N: DR0 11, DR1 53, DR2 125, DR3 242, DR4 242; DR8 53 ... DR13 242 (no repeater)
    assert [us.max_app_payload_for_data_rate(d) for d in range(5)] == [11, 53, 125, 242, 242]
    assert [us.max_app_payload_for_data_rate(d, False) for d in range(8, 14)] == [53, 129, 242, 242, 242, 242]
    assert us.duty_cycle == 1.0 and us.sub_band_duty_cycle(ch).tolist() == [1.0] * 72
    assert (us.rx2_frequency_hz, us.rx2_data_rate, us.rx1_delay_s, us.rx2_delay_s) == (923.3e6, 8, 1.0, 2.0)
    # TX power: TXPower 0 = 30 dBm ... 14 = 2 dBm, 2 dB steps
    assert us.tx_power_eirp_dbm(np.array([0, 1, 7, 14])).tolist() == [30, 28, 16, 2]
    assert us.max_tx_power_index == 14 and us.tx_power_conducted_dbm(0) == 30.0


def test_us915_rx1_channel_and_data_rate():
    us = lorawan.US915
    ch = np.array(us.all_uplink_channels_hz)
    # RX1 channel = uplink channel mod 8 on 923.3 + 0.6 k MHz
    assert us.rx1_frequency_hz(ch[8]) == 923.3e6  # channel 8 -> downlink 0
    assert us.rx1_frequency_hz(ch[15]) == pytest.approx(927.5e6)  # 15 -> 7
    assert us.rx1_frequency_hz(ch[65]) == pytest.approx(923.9e6)  # 65 -> 1
    assert np.allclose(us.rx1_frequency_hz(ch[:16]), np.tile(923.3e6 + 0.6e6 * np.arange(8), 2))
    # RP002 US902-928 RX1 DR table (LoRaMac-node DatarateOffsetsUS915)
    assert [us.rx1_data_rate(d) for d in range(5)] == [10, 11, 12, 13, 13]
    assert [us.rx1_data_rate(0, o) for o in range(4)] == [10, 9, 8, 8]
    assert [us.rx1_data_rate(4, o) for o in range(4)] == [13, 13, 12, 11]
    with pytest.raises(InputError):
        us.rx1_data_rate(0, 4)
    with pytest.raises(InputError):
        us.rx1_data_rate(8)  # a downlink DR
    with pytest.raises(InputError):
        us.uplink_channel_index(910.05e6)


def test_us915_dwell_time_limits():
    us = lorawan.US915
    # DR0 (SF10/125 kHz): 11 B app (24 B PHY) takes 370.688 ms, 12 B takes 411.648 ms > 400 ms
    assert time_on_air_s(11 + LORAWAN_OVERHEAD_BYTES, 10) == pytest.approx(0.370688, abs=1e-9)
    assert us.respects_dwell_time(0, 11) and not us.respects_dwell_time(0, 12)
    assert [us.max_payload_within_dwell_time(d) for d in range(5)] == [11, 53, 125, 242, 242]
    ok = us.respects_dwell_time(np.array([0, 1, 1, 3]), np.array([11, 53, 200, 242]))
    assert ok.tolist() == [True, True, False, True]
    assert lorawan.EU868.respects_dwell_time(0, 51) is True  # no dwell limit in EU868
