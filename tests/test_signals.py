"""Synthetic workloads: determinism, shapes, validation, and the physics of events and confounders."""

from __future__ import annotations

import numpy as np
import pytest

from iotsim.errors import InputError
from iotsim.signals import farm as farm_module
from iotsim.signals import get_workload, vibration, workload_names
from iotsim.signals.farm import FarmSoilClimate
from iotsim.signals.vibration import FactoryVibration, bpfo_hz

NAMES = ["farm.soil_climate", "factory.vibration"]


def _gen(wl, seed, mask):
    return wl.generate(np.random.default_rng(seed), mask)


def _masks(wl, n, value):
    return np.full((n, wl.window_samples), value, dtype=bool)


# ------------------------------------------------------------------ registry
def test_registry_names_and_defaults():
    assert set(NAMES) <= set(workload_names()) and workload_names() == sorted(workload_names())
    farm = get_workload("farm.soil_climate")
    assert isinstance(farm, FarmSoilClimate)
    assert farm.channels == ("soil_moisture", "temperature", "humidity")
    assert farm.window_samples == 12 and farm.sample_rate_hz == pytest.approx(1 / 300)
    assert farm.window_duration_s == pytest.approx(3600.0)
    assert farm.raw_bytes_per_window == 12 * 3 * 2
    vib = get_workload("factory.vibration")
    assert isinstance(vib, FactoryVibration)
    assert vib.channels == ("x", "y", "z") and vib.window_samples == 256 and vib.sample_rate_hz == 3200.0
    assert vib.window_duration_s == pytest.approx(0.08)
    for wl in (farm, vib):
        assert wl.class_names[wl.positive_class] != "normal"
        assert wl.default_events_per_day > 0 and wl.default_event_duration_s > 0


def test_unknown_workload_lists_known_names():
    with pytest.raises(InputError) as exc:
        get_workload("farm.soil")
    msg = str(exc.value)
    assert "farm.soil_climate" in msg and "factory.vibration" in msg


def test_unknown_parameter_is_input_error():
    with pytest.raises(InputError) as exc:
        get_workload("factory.vibration", shaft_rpm=(1, 2))
    assert exc.value.field == "shaft_rpm"
    assert "shaft_hz" in str(exc.value)


def test_parameter_override():
    wl = get_workload("factory.vibration", shaft_hz=(30.0, 30.0))
    assert wl.shaft_hz == (30.0, 30.0)


# ------------------------------------------------------------------ generate contract
@pytest.mark.parametrize("name", NAMES)
def test_shape_dtype_finite(name):
    wl = get_workload(name)
    x = _gen(wl, 1, _masks(wl, 50, False))
    assert x.shape == (50, wl.window_samples, wl.n_channels)
    assert x.dtype == np.float32 and x.flags.c_contiguous
    assert np.isfinite(x).all()
    assert _gen(wl, 1, _masks(wl, 0, False)).shape == (0, wl.window_samples, wl.n_channels)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_identical_bytes_other_seed_differs(name):
    wl = get_workload(name)
    rng = np.random.default_rng(0)
    mask = rng.random((40, wl.window_samples)) < 0.5
    a = _gen(wl, 123, mask)
    b = _gen(wl, 123, mask.copy())
    c = _gen(wl, 124, mask)
    assert a.tobytes() == b.tobytes()
    assert not np.array_equal(a, c)
    # the generator advances: two consecutive calls give different windows
    g = np.random.default_rng(5)
    assert not np.array_equal(wl.generate(g, mask), wl.generate(g, mask))


@pytest.mark.parametrize("name", NAMES)
def test_bad_arguments_raise_input_error(name):
    wl = get_workload(name)
    with pytest.raises(InputError) as exc:
        wl.generate(np.random.default_rng(0), np.zeros((3, wl.window_samples + 1), bool))
    assert exc.value.field == "event_mask" and str(wl.window_samples) in str(exc.value)
    with pytest.raises(InputError) as exc:
        wl.generate(np.random.default_rng(0), np.zeros(wl.window_samples, bool))
    assert exc.value.field == "event_mask"
    with pytest.raises(InputError) as exc:
        wl.generate(np.random.RandomState(0), np.zeros((3, wl.window_samples), bool))
    assert exc.value.field == "rng"
    with pytest.raises(InputError):
        wl.generate(np.random.default_rng(0), np.full((3, wl.window_samples), 0.5))
    # 0/1 integers are accepted as a mask
    ints = np.zeros((3, wl.window_samples), dtype=np.int64)
    ints[:, -2:] = 1
    assert np.array_equal(_gen(wl, 3, ints), _gen(wl, 3, ints.astype(bool)))


@pytest.mark.parametrize("name", NAMES)
def test_background_does_not_depend_on_the_mask(name):
    """Same seed, different masks: identical wherever the event has not acted yet."""
    wl = get_workload(name)
    n, w = 64, wl.window_samples
    start = w // 2
    mask = np.zeros((n, w), bool)
    mask[:, start:] = True  # event begins mid-window
    normal = _gen(wl, 9, np.zeros((n, w), bool))
    event = _gen(wl, 9, mask)
    np.testing.assert_allclose(event[:, :start], normal[:, :start], rtol=0, atol=1e-5)
    assert np.abs(event[:, start:] - normal[:, start:]).max() > 0.1


# ------------------------------------------------------------------ masks helpers
def test_mask_for_event_interval():
    wl = get_workload("farm.soil_climate")  # samples every 300 s
    m = wl.mask_for(np.array([0.0, 3600.0]), np.array([900.0, 0.0]), np.array([1e9, 3600.0 + 600.0]))
    assert m[0].tolist() == [False] * 3 + [True] * 9
    assert m[1].tolist() == [True] * 2 + [False] * 10


def test_random_event_masks_are_contiguous_at_an_edge():
    wl = get_workload("farm.soil_climate")
    m = wl.random_event_masks(np.random.default_rng(0), 2000, partial_fraction=0.5, min_overlap=0.34)
    cover = m.sum(axis=1)
    assert cover.min() >= 4 and cover.max() == 12
    partial = cover < 12
    assert 0.4 < partial.mean() < 0.6
    for row in m[partial]:
        # one run of True touching the first or the last sample
        assert row[0] != row[-1]
        assert np.count_nonzero(np.diff(row.astype(int))) == 1


# ------------------------------------------------------------------ farm physics
# switch off the sensor's own effects, to compare the generator with the weather table
FARM_EXACT = {
    "temp_offset_sd_c": 0.0,
    "humidity_offset_sd_pct": 0.0,
    "temp_noise_c": (0.0, 0.0),
    "humidity_noise_pct": (0.0, 0.0),
    "temp_drift_sd_c_per_h": 0.0,
    "humidity_drift_sd_pct_per_h": 0.0,
    "p_irrigation": 0.0,
}


def test_farm_leak_raises_moisture_without_air_signature():
    wl = get_workload("farm.soil_climate")
    n = 500
    normal = _gen(wl, 21, _masks(wl, n, False))
    leak = _gen(wl, 21, _masks(wl, n, True))
    # the leak leaves the air alone: temperature and humidity are bit-identical
    assert np.array_equal(leak[..., 1:], normal[..., 1:])
    # windows well below saturation (a waterlogged soil cannot take the leak's water)
    room = normal[..., 0].max(axis=1) < wl.saturation_pct - 8
    assert room.mean() > 0.9
    diff = leak[room, :, 0].astype(np.float64) - normal[room, :, 0]
    step = np.diff(diff, axis=1)
    dt_h = 300.0 / 3600.0
    lo, hi = wl.leak_rate_pct_per_h
    assert step.min() > 0  # steady rise, every sample
    assert step.max() < hi * dt_h + 1e-3
    # rise over the window (11 steps): the inflow rate minus what drains (time constant >= 3 h)
    rise_rate = (diff[:, -1] - diff[:, 0]) / (11 * dt_h)
    assert rise_rate.min() > 0.55 * lo and rise_rate.max() < hi + 1e-2
    # slope of the raw moisture signal: leak windows rise, normal ones (mostly drying) do not
    t_h = np.arange(12) * dt_h
    slope = lambda x: np.polyfit(t_h, x[..., 0].T, 1)[0]
    assert np.median(slope(leak)) - np.median(slope(normal)) > lo


def test_farm_partial_leak_only_acts_on_masked_samples_and_stays():
    wl = get_workload("farm.soil_climate")
    n, w = 300, 12
    normal = _gen(wl, 4, _masks(wl, n, False)).astype(np.float64)
    room = normal[..., 0].max(axis=1) < wl.saturation_pct - 8
    # leak starting at sample 7 (window ends inside the event)
    m_end = np.zeros((n, w), bool)
    m_end[:, 7:] = True
    d_end = _gen(wl, 4, m_end)[..., 0] - normal[..., 0]
    assert np.array_equal(d_end[:, :7], np.zeros((n, 7)))
    assert (np.diff(d_end[room, 6:], axis=1) > 0).all()
    # leak stopping after sample 4 (event ends inside the window): the water stays, drains slowly
    m_start = np.zeros((n, w), bool)
    m_start[:, :5] = True
    d_start = _gen(wl, 4, m_start)[..., 0] - normal[..., 0]
    after = d_start[room, 4:]
    assert (np.diff(after, axis=1) <= 1e-4).all()  # no further rise once the leak has stopped
    assert (after[:, -1] > 0.7 * after[:, 0]).all()  # most of it is still there an hour later
    assert np.array_equal(_gen(wl, 4, m_start)[..., 1:], normal[..., 1:].astype(np.float32))


def test_farm_weather_table_is_a_full_tmy_year():
    wx = farm_module.load_weather()
    for col in ("temp_c", "dew_point_c", "rh_pct", "ghi_w_m2", "precip_mm"):
        assert wx[col].shape == (8760,) and np.isfinite(wx[col]).all()
    assert (wx["dew_point_c"] <= wx["temp_c"] + 1e-9).all()
    assert 0 < wx["rh_pct"].min() and wx["rh_pct"].max() <= 100
    assert (wx["ghi_w_m2"] >= 0).all() and (wx["precip_mm"] >= 0).all()
    # values of the NREL file (723170TYA.CSV): 1 Jan 01:00 10.0 degC, dew point 6.1 degC, 77 %
    assert (wx["temp_c"][0], wx["dew_point_c"][0], wx["rh_pct"][0]) == (10.0, 6.1, 77.0)
    # a humid subtropical year: cold Januaries, warm Julys, 834 mm of rain in 358 wet hours
    jan, jul = wx["temp_c"][: 31 * 24].mean(), wx["temp_c"][181 * 24 : 212 * 24].mean()
    assert jan < 5 and jul > 20
    assert wx["precip_mm"].sum() == pytest.approx(834.5, abs=0.5)
    assert int((wx["precip_mm"] > 0).sum()) == 358
    # no sun at night: GHI of the hour ending 03:00 LST is zero every day
    assert (wx["ghi_w_m2"][2::24] == 0).all()
    with pytest.raises(InputError) as exc:
        get_workload("farm.soil_climate", weather="nowhere").generate(np.random.default_rng(0), np.zeros((1, 12), bool))
    assert exc.value.field == "weather" and "tmy3_723170" in str(exc.value)


def test_magnus_humidity_reproduces_the_tmy_humidity():
    wx = farm_module.load_weather()
    rh = farm_module.relative_humidity_pct(wx["temp_c"], wx["dew_point_c"])
    err = np.abs(rh - wx["rh_pct"])
    assert np.median(err) < 0.5 and np.percentile(err, 95) < 2.0  # the file's RH is rounded to 1 %
    # closed forms: saturated air; air at 30 degC with dew point 20 degC holds e_s(20) / e_s(30)
    # of saturation: 2.3393 kPa / 4.2470 kPa (saturation pressure of water, IAPWS-95 tables)
    assert farm_module.relative_humidity_pct(12.3, 12.3) == pytest.approx(100.0)
    assert farm_module.relative_humidity_pct(30.0, 20.0) == pytest.approx(100 * 2.3393 / 4.2470, abs=0.1)


@pytest.mark.parametrize("hour", [0, 7, 13, 4000, 8759])
def test_farm_air_follows_the_tmy_at_the_right_hour(hour):
    """A window starting on the hour shows the table's values there, interpolated in between."""
    wl = get_workload("farm.soil_climate", start_day_of_year=(hour / 24, hour / 24), **FARM_EXACT)
    x = _gen(wl, 1, _masks(wl, 3, False)).astype(np.float64)
    wx = farm_module.load_weather()
    row = (hour - 1) % 8760  # row i holds the values at i + 1 hours after 1 Jan 00:00
    nxt = hour % 8760
    t0, t1 = wx["temp_c"][row], wx["temp_c"][nxt]
    d0, d1 = wx["dew_point_c"][row], wx["dew_point_c"][nxt]
    np.testing.assert_allclose(x[:, 0, 1], t0, atol=1e-4)
    # 30 min later: half-way between the two hourly values
    np.testing.assert_allclose(x[:, 6, 1], 0.5 * (t0 + t1), atol=1e-4)
    mid = 0.5 * (d0 + d1)
    rh = farm_module.relative_humidity_pct(0.5 * (t0 + t1), min(mid, 0.5 * (t0 + t1)))
    np.testing.assert_allclose(x[:, 6, 2], min(rh, 100.0), atol=1e-3)
    np.testing.assert_allclose(x[:, 0, 2], min(wx["rh_pct"][row], 100.0), atol=2.5)  # Magnus vs the file's RH


def test_farm_season_is_chosen_by_the_scenario():
    m = np.zeros((2000, 12), bool)
    summer = _gen(get_workload("farm.soil_climate", start_day_of_year=(152, 244)), 3, m)
    winter = _gen(get_workload("farm.soil_climate", start_day_of_year=(335, 60)), 3, m)  # wraps the new year
    year = _gen(get_workload("farm.soil_climate"), 3, m)
    wx = farm_module.load_weather()
    jja = wx["temp_c"][151 * 24 : 243 * 24]
    djf = np.concatenate([wx["temp_c"][334 * 24 :], wx["temp_c"][: 59 * 24]])
    assert summer[..., 1].mean() == pytest.approx(jja.mean(), abs=1.0)
    assert winter[..., 1].mean() == pytest.approx(djf.mean(), abs=1.0)
    assert year[..., 1].mean() == pytest.approx(wx["temp_c"].mean(), abs=1.0)
    assert winter[..., 1].min() < -5 and summer[..., 1].max() > 30
    with pytest.raises(InputError) as exc:
        get_workload("farm.soil_climate", start_day_of_year=(100, 400))
    assert exc.value.field == "start_day_of_year"


def test_farm_humidity_falls_when_temperature_rises():
    """Dew point changes slowly within an hour -> RH anti-correlated with air temperature."""
    wl = get_workload("farm.soil_climate", p_irrigation=0.0)
    x = _gen(wl, 8, _masks(wl, 3000, False)).astype(np.float64)
    d_temp = x[:, -1, 1] - x[:, 0, 1]
    d_rh = x[:, -1, 2] - x[:, 0, 2]
    unsaturated = x[:, :, 2].max(axis=1) < 97
    assert np.corrcoef(d_temp[unsaturated], d_rh[unsaturated])[0, 1] < -0.6
    # values in physical ranges
    assert 0 <= x[..., 2].min() and x[..., 2].max() <= 100
    assert 5 < x[..., 0].min() and x[..., 0].max() <= wl.saturation_pct + 2
    assert -25 < x[..., 1].min() and x[..., 1].max() < 45


def test_farm_rain_comes_from_the_tmy_and_wets_the_soil():
    """Same draws with and without rain water: rain only adds water, the air is the TMY's either way."""
    fixed = {"p_irrigation": 0.0, "soil_temp_coeff_pct_per_c": (0.0, 0.0)}  # probe reads water only
    dry = get_workload("farm.soil_climate", rain_pct_per_mm=(0.0, 0.0), **fixed)
    wet = get_workload("farm.soil_climate", **fixed)
    m = _masks(dry, 3000, False)
    a = _gen(dry, 31, m).astype(np.float64)
    b = _gen(wet, 31, m).astype(np.float64)
    assert np.array_equal(a[..., 1:], b[..., 1:])
    assert (b[..., 0] >= a[..., 0] - 1e-4).all()
    # windows starting in a wet hour of the table: the soil gains water within the hour and the air
    # is near saturation (the TMY's own humidity while it rains)
    wx = farm_module.load_weather()
    rng = np.random.default_rng(31)
    day0 = rng.random(3000) * 365.0  # the generator's first draw: the start time
    rows = (np.ceil(day0 * 24).astype(int) - 1) % 8760
    raining = (wx["precip_mm"][rows] >= 1.0) & (wx["precip_mm"][(rows + 1) % 8760] >= 1.0)
    assert raining.sum() >= 20
    gain = (b[:, -1, 0] - a[:, -1, 0]) - (b[:, 0, 0] - a[:, 0, 0])
    assert np.median(gain[raining]) > 0.3 and np.median(gain[~raining]) < 0.05
    assert np.median(b[raining, :, 2]) > 85 > np.median(b[~raining, :, 2])


def test_farm_evapotranspiration_follows_the_sun():
    quiet = dict(
        FARM_EXACT,
        rain_pct_per_mm=(0.0, 0.0),
        p_draining=0.0,
        soil_temp_coeff_pct_per_c=(0.0, 0.0),
        soil_drift_sd_pct_per_h=0.0,
        soil_noise_pct=(0.0, 0.0),
        evapotranspiration_pct_per_kwh_m2=(0.2, 0.2),
    )
    wx = farm_module.load_weather()
    night = get_workload("farm.soil_climate", start_day_of_year=(180 + 1 / 24, 180 + 1 / 24), **quiet)
    x = _gen(night, 2, _masks(night, 5, False)).astype(np.float64)
    assert np.ptp(x[..., 0], axis=1).max() < 1e-4  # no sun, no drying
    noon = get_workload("farm.soil_climate", start_day_of_year=(180 + 12 / 24, 180 + 12 / 24), **quiet)
    x = _gen(noon, 2, _masks(noon, 5, False)).astype(np.float64)
    # over 55 min from 12:00: 0.2 %VWC/h per kW/m^2 times the irradiance (hour midpoints interpolated)
    hours = 180 * 24 + 12 + np.arange(12) * 300 / 3600
    ghi = np.interp(hours - 0.5, np.arange(8760), wx["ghi_w_m2"])  # row i: middle of its hour at i + 0.5
    expected = 0.2 * np.sum(ghi[1:] / 1000.0) * 300 / 3600
    np.testing.assert_allclose(x[:, 0, 0] - x[:, -1, 0], expected, rtol=1e-3)
    assert expected > 0.05


def test_farm_drip_irrigation_is_a_short_steep_pulse_without_air_signature():
    base = get_workload("farm.soil_climate", rain_pct_per_mm=(0.0, 0.0), p_irrigation=0.0)
    drip = get_workload("farm.soil_climate", rain_pct_per_mm=(0.0, 0.0), p_irrigation=1.0, p_sprinkler=0.0)
    m = _masks(base, 400, False)
    a = _gen(base, 12, m)
    b = _gen(drip, 12, m)
    assert np.array_equal(a[..., 1:], b[..., 1:])
    d = b[..., 0].astype(np.float64) - a[..., 0]
    assert (d >= -1e-4).all()
    steps = np.diff(d, axis=1).max(axis=1)
    wetted = d[:, -1] > 0.2
    # irrigation infiltrates faster than the fastest leak (per 5-min step), for most pulses
    lo_irr = drip.irrigation_rate_pct_per_h[0] * 300 / 3600
    assert np.median(steps[wetted]) > lo_irr


def test_farm_generation_reads_the_table_without_pvlib():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np; from iotsim.signals import get_workload; "
        "wl = get_workload('farm.soil_climate'); wl.generate(np.random.default_rng(0), np.zeros((10, 12), bool)); "
        "assert 'pvlib' not in sys.modules and 'pandas' not in sys.modules, sorted(sys.modules)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr[-2000:]


# ------------------------------------------------------------------ vibration physics
BEARING_FAULTS = ("bpfo", "bpfi", "ball")
# A quiet machine at constant speed and load, for closed-form checks of one fault's signature.
QUIET = {
    "p_mesh": 0.0,
    "p_shock": 0.0,
    "p_load_step": 0.0,
    "speed_drift_sd_hz": 0.0,
    "load_fraction": (1.0, 1.0),
    "resonance_noise_m_s2": (0.001, 0.001),
    "noise_m_s2": (0.01, 0.01),
}


def test_bearing_frequencies_of_the_6205_match_cwru():
    # CWRU Bearing Data Center, 6205-2RS JEM SKF defect frequencies (multiples of running speed):
    # inner ring 5.4152, outer ring 3.5848, cage train 0.39828, rolling element 4.7135 (= 2 x BSF)
    assert bpfo_hz(1.0) == pytest.approx(3.5848, abs=2e-3)
    assert bpfo_hz(30.0) == pytest.approx(107.54, abs=0.1)
    assert vibration.bpfi_hz(1.0) == pytest.approx(5.4152, abs=2e-3)
    assert vibration.ftf_hz(1.0) == pytest.approx(0.39828, abs=2e-4)
    assert 2 * vibration.bsf_hz(1.0) == pytest.approx(4.7135, abs=2e-3)
    # identities of the kinematics: BPFO + BPFI = n fr, BPFO = n FTF
    assert bpfo_hz(1.0) + vibration.bpfi_hz(1.0) == pytest.approx(9.0)
    assert bpfo_hz(1.0) == pytest.approx(9 * vibration.ftf_hz(1.0))
    wl = get_workload("factory.vibration")
    assert wl.bpfi_hz(40.0) == pytest.approx(vibration.bpfi_hz(40.0))


def _envelope_spectrum(x, fs, band=(900.0, 1500.0), nfft=1024):
    """Mean envelope spectrum of band-passed signals (analytic signal via FFT)."""
    n = x.shape[1]
    spec = np.fft.fft(x, axis=1)
    f = np.fft.fftfreq(n, 1 / fs)
    h = np.where((f > band[0]) & (f < band[1]), 2.0, 0.0)
    env = np.abs(np.fft.ifft(spec * h, axis=1))
    env -= env.mean(axis=1, keepdims=True)
    e = np.abs(np.fft.rfft(env * np.hanning(n), nfft, axis=1)).mean(axis=0)
    return np.fft.rfftfreq(nfft, 1 / fs), e


def _line(f, e, freq):
    """Spectrum level at a line (largest of the three nearest bins)."""
    i = int(np.argmin(np.abs(f - freq)))
    return e[max(i - 1, 0) : i + 2].max()


@pytest.mark.parametrize("shaft_hz", [25.0, 45.0])
def test_fault_envelope_spectrum_peaks_at_bpfo(shaft_hz):
    wl = get_workload("factory.vibration", shaft_hz=(shaft_hz, shaft_hz), fault_m_s2=(1.0, 2.0), fault_types=("bpfo",))
    n = 200
    target = wl.bpfo_hz(shaft_hz)
    ratios = {}
    for fault in (False, True):
        x = _gen(wl, 77, _masks(wl, n, fault))[:, :, 1].astype(np.float64)
        f, e = _envelope_spectrum(x, wl.sample_rate_hz)
        sel = (f > 40) & (f < 400)
        peak_f = f[sel][np.argmax(e[sel])]
        near = np.abs(f - target) <= 6.25
        ratios[fault] = e[near].max() / np.median(e[sel])
        if fault:
            assert abs(peak_f - target) <= 6.25, (peak_f, target)
    assert ratios[True] > 3 * ratios[False]


def _one_second(kind, shaft_hz, **extra):
    """Workload with 1-s windows (1 Hz lines) showing only `kind`, on a quiet machine, fixed resonance."""
    params = dict(
        QUIET,
        shaft_hz=(shaft_hz, shaft_hz),
        fault_types=(kind,),
        window_samples=3200,
        resonance_hz=(1200.0, 1200.0),
        damping_ratio=(0.04, 0.04),
    )
    params.update(extra)
    return get_workload("factory.vibration", **params)


def _ringdown_gain(freq, f_n=1200.0, zeta=0.04):
    """Envelope of the ring-down exp(-t / tau) acts as a first-order low-pass on the envelope spectrum."""
    tau = 1.0 / (zeta * 2 * np.pi * f_n)
    return 1.0 / np.sqrt(1.0 + (2 * np.pi * freq * tau) ** 2)


def _fourier_ratio(q_of_psi):
    """|c1| / c0 of a function on one turn."""
    psi = np.linspace(0.0, 2 * np.pi, 20000, endpoint=False)
    q = q_of_psi(psi)
    return abs(np.mean(q * np.exp(1j * psi))) / np.mean(q)


def test_inner_race_fault_peaks_at_bpfi_with_shaft_rate_sidebands():
    fr = 30.0
    wl = _one_second("bpfi", fr, slip_sd=0.0, load_zone_eps=(0.5, 0.5), fault_m_s2=(1.0, 1.0))
    x = _gen(wl, 41, _masks(wl, 30, True))[:, :, 1].astype(np.float64)
    f, e = _envelope_spectrum(x, wl.sample_rate_hz, nfft=3200)
    sel = (f > 5) & (f < 400)
    med = np.median(e[sel])
    bpfi = wl.bpfi_hz(fr)
    # the strongest line within half a shaft order of BPFI is BPFI itself
    near = np.abs(f - bpfi) < fr / 2
    assert abs(f[near][np.argmax(e[near])] - bpfi) <= 1.0
    center, lower, upper = (_line(f, e, bpfi + k * fr) for k in (0, -1, 1))
    assert center > 10 * med and lower > 5 * med and upper > 5 * med
    assert _line(f, e, fr) > 10 * med  # the load zone modulates at the shaft rate
    # closed form: sideband / line = |c1| / c0 of the Stribeck load zone (eps = 0.5: cos^1.5 on
    # the loaded half), times the ring-down's low-pass on the envelope
    c = _fourier_ratio(lambda psi: vibration.load_zone(psi, 0.5))
    for side, fs_ in ((lower, bpfi - fr), (upper, bpfi + fr)):
        expected = c * _ringdown_gain(fs_) / _ringdown_gain(bpfi)
        assert side / center == pytest.approx(expected, rel=0.25)
    # an outer-race fault at the same speed has no BPFI line
    wo = _one_second("bpfo", fr, slip_sd=0.0, fault_m_s2=(1.0, 1.0))
    xo = _gen(wo, 41, _masks(wo, 30, True))[:, :, 1].astype(np.float64)
    fo, eo = _envelope_spectrum(xo, wo.sample_rate_hz, nfft=3200)
    assert _line(fo, eo, bpfi) < 0.2 * _line(fo, eo, wo.bpfo_hz(fr))


def test_ball_fault_peaks_at_twice_ball_spin_with_cage_sidebands():
    fr = 30.0
    rho = 0.5
    wl = _one_second("ball", fr, slip_sd=0.0, load_zone_eps=(0.5, 0.5), ball_skip=(0.0, 0.0), ball_race_ratio=(rho, rho))
    x = _gen(wl, 43, _masks(wl, 30, True))[:, :, 1].astype(np.float64)
    f, e = _envelope_spectrum(x, wl.sample_rate_hz, nfft=3200)
    med = np.median(e[(f > 5) & (f < 400)])
    two_bsf, ftf = 2 * wl.bsf_hz(fr), wl.ftf_hz(fr)
    near = np.abs(f - two_bsf) < ftf / 2
    assert abs(f[near][np.argmax(e[near])] - two_bsf) <= 1.0
    center = _line(f, e, two_bsf)
    assert center > 10 * med
    assert _line(f, e, two_bsf - ftf) > 4 * med and _line(f, e, two_bsf + ftf) > 4 * med  # cage-rate modulation
    # outer- and inner-race contacts alternate with amplitudes 1 and rho: a line at BSF itself,
    # which vanishes when both contacts are equally strong (rho = 1)
    assert _line(f, e, two_bsf / 2) > 0.3 * center
    same = _one_second("ball", fr, slip_sd=0.0, load_zone_eps=(0.5, 0.5), ball_skip=(0.0, 0.0), ball_race_ratio=(1.0, 1.0))
    x1 = _gen(same, 43, _masks(same, 30, True))[:, :, 1].astype(np.float64)
    f1, e1 = _envelope_spectrum(x1, same.sample_rate_hz, nfft=3200)
    assert _line(f1, e1, two_bsf / 2) < 0.15 * _line(f1, e1, two_bsf)


def test_imbalance_is_a_rotating_1x_vector_of_the_given_velocity():
    fr, v_mm_s = 40.0, 4.0
    wl = _one_second("imbalance", fr, imbalance_mm_s=(v_mm_s, v_mm_s))
    n = 20
    d = _gen(wl, 5, _masks(wl, n, True)).astype(np.float64) - _gen(wl, 5, _masks(wl, n, False))
    f = np.fft.rfftfreq(3200, 1 / 3200)
    for ax in range(3):
        p = np.abs(np.fft.rfft(d[:, :, ax], axis=1)) ** 2
        assert p[:, np.abs(f - fr) <= 1].sum() > 0.99 * p.sum()  # all at 1x
    # y (load direction) carries the full unbalance: velocity RMS = accel RMS / (2 pi fr)
    v = d[:, :, 1].std(axis=1) / (2 * np.pi * fr) * 1e3
    np.testing.assert_allclose(v, v_mm_s, rtol=0.02)
    # rotating force: x lags y by a quarter turn (x(t) ~ y(t + T/4)), not in phase
    q = round(3200 / fr / 4)
    r_quarter = [np.corrcoef(d[i, :-q, 0], d[i, q:, 1])[0, 1] for i in range(n)]
    r_same = [np.corrcoef(d[i, :, 0], d[i, :, 1])[0, 1] for i in range(n)]
    assert min(np.abs(r_quarter)) > 0.99 and max(np.abs(r_same)) < 0.05
    # axial response is small
    assert (d[:, :, 2].std(axis=1) < 0.35 * d[:, :, 1].std(axis=1)).all()


def test_looseness_shows_half_harmonics_harmonics_and_a_truncated_waveform():
    fr = 40.0
    wl = _one_second(
        "looseness",
        fr,
        looseness_knock=(0.0, 0.0),
        looseness_half=(0.6, 0.6),
        looseness_clip=(0.3, 0.3),
        looseness_m_s2=(2.0, 2.0),
    )
    n = 20
    d = _gen(wl, 6, _masks(wl, n, True)).astype(np.float64) - _gen(wl, 6, _masks(wl, n, False))
    y = d[:, :, 1]
    f = np.fft.rfftfreq(3200, 1 / 3200)
    a = np.abs(np.fft.rfft(y * np.hanning(3200), axis=1)).mean(axis=0)
    orders = f / fr
    off_lines = (f > 5) & (f < 600) & (np.abs(orders * 2 - np.round(orders * 2)) > 0.1)
    floor = np.median(a[off_lines])
    for order in (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0):
        assert _line(f, a, order * fr) > 20 * floor, order
    # half harmonics are a sizeable fraction of the harmonics (Mobley: about half)
    half = np.mean([_line(f, a, o * fr) for o in (0.5, 1.5, 2.5)])
    whole = np.mean([_line(f, a, o * fr) for o in (1.0, 2.0, 3.0)])
    assert 0.1 < half / whole < 1.5
    # truncated at the stop: one side of the waveform is clipped flat, the other is not
    hi, lo = y.max(axis=1), -y.min(axis=1)
    ratio = np.maximum(hi, lo) / np.minimum(hi, lo)
    assert (ratio > 1.3).all()
    flat = np.where((hi < lo)[:, None], y, -y)  # the clipped side up
    top = flat.max(axis=1, keepdims=True)
    assert (np.mean(flat > top - 0.01 * (hi + lo)[:, None], axis=1) > 0.1).all()


def test_looseness_knocks_ring_the_resonance_once_per_revolution():
    fr = 40.0
    wl = _one_second("looseness", fr, looseness_knock=(1.0, 1.0), looseness_half=(0.6, 0.6))
    x = _gen(wl, 8, _masks(wl, 30, True))[:, :, 1].astype(np.float64)
    f, e = _envelope_spectrum(x, wl.sample_rate_hz, nfft=3200)
    med = np.median(e[(f > 5) & (f < 400)])
    assert _line(f, e, fr) > 10 * med
    assert _line(f, e, 0.5 * fr) > 5 * med  # alternate knocks weaker: half order in the envelope


def test_bearing_impacts_scale_with_the_load():
    base = dict(QUIET, fault_types=BEARING_FAULTS, p_shock=0.2)
    light = get_workload("factory.vibration", **{**base, "load_fraction": (0.5, 0.5)})
    full = get_workload("factory.vibration", **{**base, "load_fraction": (1.0, 1.0)})
    m1, m0 = _masks(full, 50, True), _masks(full, 50, False)
    d_full = _gen(full, 3, m1).astype(np.float64) - _gen(full, 3, m0)
    d_light = _gen(light, 3, m1).astype(np.float64) - _gen(light, 3, m0)
    np.testing.assert_allclose(d_full, 2 * d_light, atol=1e-4)
    assert np.abs(d_full).max() > 0.1


def test_speed_drift_moves_the_impacts():
    """Impacts follow the shaft angle: a speeding-up shaft packs them closer at the end."""
    wl = get_workload("factory.vibration", **{**QUIET, "fault_types": ("bpfo",), "shaft_hz": (30.0, 30.0),
                                              "speed_drift_sd_hz": 0.0, "slip_sd": 0.0, "window_samples": 3200})
    ramp = get_workload("factory.vibration", **{**QUIET, "fault_types": ("bpfo",), "shaft_hz": (30.0, 30.0),
                                                "speed_drift_sd_hz": 10.0, "slip_sd": 0.0, "window_samples": 3200})
    trends = []
    for w_, expect_const in ((wl, True), (ramp, False)):
        d = _gen(w_, 9, _masks(w_, 8, True)).astype(np.float64) - _gen(w_, 9, _masks(w_, 8, False))
        env = np.abs(d[:, :, 1])
        for row in env:
            peaks = np.flatnonzero((row[1:-1] > row[:-2]) & (row[1:-1] >= row[2:]) & (row[1:-1] > 0.5 * row.max())) + 1
            # keep one peak per impact: the first of each cluster
            starts = peaks[np.concatenate([[True], np.diff(peaks) > 10])]
            gaps = np.diff(starts)
            if expect_const:
                assert np.ptp(gaps) <= 2  # constant BPFO period, to the sample
                assert np.median(gaps) == pytest.approx(3200 / wl.bpfo_hz(30.0), abs=1)
            elif np.ptp(gaps) > 3:
                # a linear speed ramp: the impact period changes steadily through the window
                trends.append(abs(np.corrcoef(np.arange(gaps.size), gaps)[0, 1]))
    assert len(trends) >= 5 and min(trends) > 0.8


def test_fault_types_are_restricted_validated_and_leave_the_background_alone():
    wl = get_workload("factory.vibration")
    assert wl.fault_types == vibration.FAULT_TYPES
    assert wl.fault_probabilities == {k: pytest.approx(0.2) for k in vibration.FAULT_TYPES}
    assert wl.summary()["fault_probabilities"] == wl.fault_probabilities
    only = get_workload("factory.vibration", fault_types=["bpfo", "imbalance"], fault_weights=[3, 1])
    assert only.fault_types == ("bpfo", "imbalance")
    assert only.fault_probabilities == {"bpfo": 0.75, "imbalance": 0.25}
    assert get_workload("factory.vibration", fault_types=("ball",)).fault_probabilities == {"ball": 1.0}
    with pytest.raises(InputError) as exc:
        get_workload("factory.vibration", fault_types=("outer",))
    assert exc.value.field == "fault_types" and "bpfi" in str(exc.value)
    with pytest.raises(InputError) as exc:
        get_workload("factory.vibration", fault_types=("bpfo", "ball"), fault_weights=(1.0, 2.0, 3.0))
    assert exc.value.field == "fault_weights"
    with pytest.raises(InputError):
        get_workload("factory.vibration", fault_weights=(0, 0, 0, 0, 0))
    # the fault kind is drawn for every window, so normal windows do not depend on the fault mix
    m = _masks(wl, 30, False)
    assert np.array_equal(_gen(wl, 2, m), _gen(only, 2, m))
    # every kind shows: with the mask set, each restricted workload differs from the normal machine
    for kind in vibration.FAULT_TYPES:
        k = get_workload("factory.vibration", fault_types=(kind,))
        assert np.abs(_gen(k, 2, _masks(k, 30, True)) - _gen(k, 2, m)).max() > 0.1, kind


def test_fault_energy_lies_in_the_resonance_band():
    wl = get_workload("factory.vibration", fault_types=BEARING_FAULTS)
    n = 300
    normal = _gen(wl, 5, _masks(wl, n, False)).astype(np.float64)
    fault = _gen(wl, 5, _masks(wl, n, True)).astype(np.float64)
    d = fault - normal  # the fault's contribution alone (same background draws)
    spec = (np.abs(np.fft.rfft(d[:, :, 1], axis=1)) ** 2).sum(axis=0)
    f = np.fft.rfftfreq(256, 1 / 3200)
    lo, hi = wl.resonance_hz
    in_band = spec[(f >= lo - 100) & (f <= hi + 100)].sum()
    assert in_band / spec.sum() > 0.8
    # severity is log-uniform: many weak faults, some strong ones
    peak = np.abs(d[:, :, 1]).max(axis=1)
    assert np.percentile(peak, 90) > 4 * np.percentile(peak, 10)


def test_shaft_faults_lie_at_low_orders():
    wl = get_workload("factory.vibration", fault_types=("imbalance", "looseness"), looseness_knock=(0.0, 0.0))
    n = 300
    d = _gen(wl, 5, _masks(wl, n, True)).astype(np.float64) - _gen(wl, 5, _masks(wl, n, False))
    spec = (np.abs(np.fft.rfft(d[:, :, 1], axis=1)) ** 2).sum(axis=0)
    f = np.fft.rfftfreq(256, 1 / 3200)
    assert spec[f <= 400].sum() > 0.95 * spec.sum()  # up to ~7x of the fastest shaft


def test_fault_ring_down_ends_after_the_mask():
    wl = get_workload("factory.vibration")
    n, w = 200, 256
    normal = _gen(wl, 6, _masks(wl, n, False)).astype(np.float64)
    m = np.zeros((n, w), bool)
    m[:, :100] = True  # event ends after 31 ms
    d = _gen(wl, 6, m).astype(np.float64) - normal
    inside = np.mean(d[:, :100] ** 2)
    tail = np.mean(d[:, 230:] ** 2)  # 40 ms after the last possible impact
    assert inside > 0
    assert tail < 1e-3 * inside


def test_isolated_shocks_are_not_periodic():
    """Shocks (the impulsive confounder) ring the resonance but give no BPFO line."""
    quiet = {"p_mesh": 0.0, "resonance_noise_m_s2": (0.001, 0.001), "noise_m_s2": (0.01, 0.01)}
    shocks = get_workload("factory.vibration", shaft_hz=(30.0, 30.0), p_shock=1.0, **quiet)
    fault = get_workload(
        "factory.vibration", shaft_hz=(30.0, 30.0), p_shock=0.0, fault_m_s2=(1.0, 2.0), fault_types=("bpfo",), **quiet
    )
    xs = _gen(shocks, 2, _masks(shocks, 200, False))[:, :, 1].astype(np.float64)
    xf = _gen(fault, 2, _masks(fault, 200, True))[:, :, 1].astype(np.float64)
    f, es = _envelope_spectrum(xs, 3200.0)
    _, ef = _envelope_spectrum(xf, 3200.0)
    near = np.abs(f - fault.bpfo_hz(30.0)) <= 6.25
    sel = (f > 40) & (f < 400)
    assert ef[near].max() / np.median(ef[sel]) > 3 * es[near].max() / np.median(es[sel])
