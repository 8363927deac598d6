"""Synthetic workloads: determinism, shapes, validation, and the physics of events and confounders."""

from __future__ import annotations

import numpy as np
import pytest

from iotsim.errors import InputError
from iotsim.signals import get_workload, workload_names
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
def test_farm_leak_raises_moisture_without_air_signature():
    wl = get_workload("farm.soil_climate")
    n = 500
    normal = _gen(wl, 21, _masks(wl, n, False))
    leak = _gen(wl, 21, _masks(wl, n, True))
    # the leak leaves the air alone: temperature and humidity are bit-identical
    assert np.array_equal(leak[..., 1:], normal[..., 1:])
    diff = leak[..., 0].astype(np.float64) - normal[..., 0]
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
    slope = lambda x: np.polyfit(t_h, x[..., 0].T, 1)[0]  # noqa: E731
    assert np.median(slope(leak)) - np.median(slope(normal)) > lo


def test_farm_partial_leak_only_acts_on_masked_samples_and_stays():
    wl = get_workload("farm.soil_climate")
    n, w = 300, 12
    normal = _gen(wl, 4, _masks(wl, n, False)).astype(np.float64)
    # leak starting at sample 7 (window ends inside the event)
    m_end = np.zeros((n, w), bool)
    m_end[:, 7:] = True
    d_end = _gen(wl, 4, m_end)[..., 0] - normal[..., 0]
    assert np.array_equal(d_end[:, :7], np.zeros((n, 7)))
    assert (np.diff(d_end[:, 6:], axis=1) > 0).all()
    # leak stopping after sample 4 (event ends inside the window): the water stays, drains slowly
    m_start = np.zeros((n, w), bool)
    m_start[:, :5] = True
    d_start = _gen(wl, 4, m_start)[..., 0] - normal[..., 0]
    after = d_start[:, 4:]
    assert (np.diff(after, axis=1) <= 1e-4).all()  # no further rise once the leak has stopped
    assert (after[:, -1] > 0.7 * after[:, 0]).all()  # most of it is still there an hour later
    assert np.array_equal(_gen(wl, 4, m_start)[..., 1:], normal[..., 1:].astype(np.float32))


def test_farm_humidity_falls_when_temperature_rises():
    """Dew point roughly constant within an hour -> RH anti-correlated with air temperature."""
    wl = get_workload("farm.soil_climate", p_rain=0.0, p_irrigation=0.0)
    x = _gen(wl, 8, _masks(wl, 3000, False)).astype(np.float64)
    d_temp = x[:, -1, 1] - x[:, 0, 1]
    d_rh = x[:, -1, 2] - x[:, 0, 2]
    unsaturated = x[:, :, 2].max(axis=1) < 97
    assert np.corrcoef(d_temp[unsaturated], d_rh[unsaturated])[0, 1] < -0.7
    # values in physical ranges
    assert 0 <= x[..., 2].min() and x[..., 2].max() <= 100
    assert 5 < x[..., 0].min() and x[..., 0].max() < 60
    assert -25 < x[..., 1].min() and x[..., 1].max() < 45


def test_farm_rain_wets_the_soil_and_the_air():
    """Same draws with and without rain: rain only adds water and humidity, and cools the air."""
    fixed = dict(p_irrigation=0.0, soil_temp_coeff_pct_per_c=(0.0, 0.0))  # probe reads water only
    dry = get_workload("farm.soil_climate", p_rain=0.0, **fixed)
    wet = get_workload("farm.soil_climate", p_rain=1.0, **fixed)
    m = _masks(dry, 400, False)
    a = _gen(dry, 31, m).astype(np.float64)
    b = _gen(wet, 31, m).astype(np.float64)
    assert (b[..., 0] >= a[..., 0] - 1e-4).all()
    assert (b[..., 1] <= a[..., 1] + 1e-4).all()
    assert (b[..., 2] >= a[..., 2] - 1e-3).all()
    changed = np.abs(b - a).max(axis=(1, 2)) > 0.05
    # where it rained within the window, the air is wetter than without rain
    assert (b[changed, -1, 2] - a[changed, -1, 2]).mean() > 3.0
    assert (b[changed, -1, 1] - a[changed, -1, 1]).mean() < -0.3


def test_farm_drip_irrigation_is_a_short_steep_pulse_without_air_signature():
    base = get_workload("farm.soil_climate", p_rain=0.0, p_irrigation=0.0)
    drip = get_workload("farm.soil_climate", p_rain=0.0, p_irrigation=1.0, p_sprinkler=0.0)
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


# ------------------------------------------------------------------ vibration physics
def test_bpfo_of_the_6205_bearing_matches_cwru():
    # CWRU Bearing Data Center: outer race defect frequency 3.5848 x running speed
    assert bpfo_hz(1.0) == pytest.approx(3.5848, abs=2e-3)
    assert bpfo_hz(30.0) == pytest.approx(107.54, abs=0.1)


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


@pytest.mark.parametrize("shaft_hz", [25.0, 45.0])
def test_fault_envelope_spectrum_peaks_at_bpfo(shaft_hz):
    wl = get_workload("factory.vibration", shaft_hz=(shaft_hz, shaft_hz), fault_m_s2=(1.0, 2.0))
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


def test_fault_energy_lies_in_the_resonance_band():
    wl = get_workload("factory.vibration")
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
    quiet = dict(p_mesh=0.0, resonance_noise_m_s2=(0.001, 0.001), noise_m_s2=(0.01, 0.01))
    shocks = get_workload("factory.vibration", shaft_hz=(30.0, 30.0), p_shock=1.0, **quiet)
    fault = get_workload("factory.vibration", shaft_hz=(30.0, 30.0), p_shock=0.0, fault_m_s2=(1.0, 2.0), **quiet)
    xs = _gen(shocks, 2, _masks(shocks, 200, False))[:, :, 1].astype(np.float64)
    xf = _gen(fault, 2, _masks(fault, 200, True))[:, :, 1].astype(np.float64)
    f, es = _envelope_spectrum(xs, 3200.0)
    _, ef = _envelope_spectrum(xf, 3200.0)
    near = np.abs(f - fault.bpfo_hz(30.0)) <= 6.25
    sel = (f > 40) & (f < 400)
    assert ef[near].max() / np.median(ef[sel]) > 3 * es[near].max() / np.median(es[sel])
