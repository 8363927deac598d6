"""LoRa time on air, sensitivities, LoRaWAN EU868 parameters, fragmentation, propagation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from iotsim.errors import InputError
from iotsim.radio import lora, lorawan, propagation
from iotsim.radio.lora import LORAWAN_OVERHEAD_BYTES, parse_coding_rate, symbol_time_s, time_on_air_s


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
    with pytest.raises(InputError):
        lorawan.get_region("US915")


def test_duty_cycle_bounds_messages_per_hour():
    # a 51-byte SF12 frame on one 1 % sub-band: at most 36 s of airtime per hour
    airtime = time_on_air_s(51 + LORAWAN_OVERHEAD_BYTES, 12)
    per_hour = math.floor(3600 * lorawan.EU868.duty_cycle / airtime)
    assert airtime == pytest.approx(2.793472, abs=1e-9)  # 85.25 symbols x 32.768 ms
    assert per_hour == 12


# ---- fragmentation ---------------------------------------------------------------------------


@pytest.mark.parametrize("max_payload", [51, 115, 222])
@pytest.mark.parametrize("header", [0, 1, 2, 4])
def test_fragments_sum_back_to_the_payload(max_payload, header):
    for payload in (0, 1, 10, max_payload - header - 1, max_payload - header, max_payload - header + 1, 384 * 4, 10_000):
        sizes = lorawan.fragment_sizes(payload, max_payload, header)
        assert sum(sizes) - len(sizes) * header == payload
        assert all(header < s <= max_payload for s in sizes)
        assert all(s == max_payload for s in sizes[:-1])
        assert len(sizes) == lorawan.n_fragments(payload, max_payload, header) == math.ceil(payload / (max_payload - header))


def test_header_only_on_split_messages_option():
    # 50 B fits a 51 B frame whole; with a header on every frame it needs two
    assert lorawan.fragment_sizes(50, 51, 2) == [51, 3]
    assert lorawan.fragment_sizes(50, 51, 2, header_on_single_frame=False) == [50]
    assert lorawan.fragment_sizes(52, 51, 2, header_on_single_frame=False) == [51, 5]
    payloads = np.arange(0, 400)
    n = lorawan.n_fragments(payloads, 51, 2, header_on_single_frame=False)
    assert n.tolist() == [len(lorawan.fragment_sizes(int(p), 51, 2, header_on_single_frame=False)) for p in payloads]
    for p in payloads:
        sizes = lorawan.fragment_sizes(int(p), 51, 2, header_on_single_frame=False)
        headers = 2 * len(sizes) if len(sizes) > 1 else 0
        assert sum(sizes) - headers == p


def test_max_payload_array_matches_scalar_lookup():
    sfs = np.array([[7, 8, 9], [10, 11, 12]])
    arr = lorawan.max_app_payload_array(sfs)
    assert arr.shape == sfs.shape and arr.dtype == np.int64
    assert arr.tolist() == [[lorawan.max_app_payload_bytes(int(s)) for s in row] for row in sfs]
    assert lorawan.EU868.rx2_delay_s == lorawan.EU868.rx1_delay_s + 1.0


def test_n_fragments_is_vectorized():
    payloads = np.array([0, 1, 49, 50, 51, 1536])
    n = lorawan.n_fragments(payloads, 51, 2)
    assert isinstance(n, np.ndarray)
    assert n.tolist() == [len(lorawan.fragment_sizes(int(p), 51, 2)) for p in payloads] == [0, 1, 1, 2, 2, 32]
    assert isinstance(lorawan.n_fragments(100, 51, 2), int)


def test_fragment_header_must_leave_room_for_data():
    with pytest.raises(InputError) as err:
        lorawan.fragment_sizes(100, 51, 51)
    assert err.value.field == "header_bytes"
    with pytest.raises(InputError):
        lorawan.n_fragments(100, 10, 12)
    with pytest.raises(InputError):
        lorawan.fragment_sizes(-1, 51, 2)


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
