"""wearable.ecg: the generator contract, ECG physiology against closed forms, the real MIT-BIH
excerpts, the zoo model wearable_ecg_int8 and a reduced retrain of its recipe."""

from __future__ import annotations

import json

import numpy as np
import pytest

from iotsim.errors import InputError
from iotsim.paths import ZOO_DIR
from iotsim.signals import get_workload
from iotsim.signals.ecg import WearableEcg, mitdb_excerpts, real_windows, resample
from iotsim.tinyml.train import accuracy_f1, make_dataset

FS = 250.0
# no noise, no artefacts, upright lead: beats can be found with a threshold
CLEAN = {
    "emg_mv": (1e-5, 1e-5),
    "p_emg_burst": 0.0,
    "baseline_mv": (1e-5, 1e-5),
    "drift_mv": (1e-5, 1e-5),
    "dc_offset_mv": 0.0,
    "powerline_mv": (1e-6, 1e-6),
    "p_motion": 0.0,
    "p_spike": 0.0,
    "p_inverted_lead": 0.0,
    "p_inverted_t": 0.0,
    "r_amplitude_mv": (1.0, 1.0),
    "t_amplitude": (0.1, 0.3),
    "amplitude_modulation": (0.0, 0.0),
    "f_wave_mv": (1e-5, 1e-5),
}
STEADY = {"rsa_fraction": (0.0, 0.0), "lf_fraction": (0.0, 0.0), "rate_trend_per_s": 0.0, "rr_jitter": 0.0}
PVC, PAC, AF = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)


def _gen(wl, seed, mask):
    return wl.generate(np.random.default_rng(seed), mask)


def _masks(wl, n, value):
    return np.full((n, wl.window_samples), value, dtype=bool)


def _beats(x, thr=0.6, refractory_s=0.25):
    """Peaks of |x| above thr (mV), at least refractory_s apart: (sample index, width at half height in s)."""
    a = np.abs(x)
    cand = np.flatnonzero((a[1:-1] >= a[:-2]) & (a[1:-1] > a[2:]) & (a[1:-1] > thr)) + 1
    peaks: list[int] = []
    for i in cand:
        if peaks and i - peaks[-1] < refractory_s * FS:
            if a[i] > a[peaks[-1]]:
                peaks[-1] = i
        else:
            peaks.append(int(i))
    widths = []
    for i in peaks:
        half = a[i] / 2
        lo = i
        while lo > 0 and a[lo] > half and np.sign(x[lo]) == np.sign(x[i]):
            lo -= 1
        hi = i
        while hi < len(a) - 1 and a[hi] > half and np.sign(x[hi]) == np.sign(x[i]):
            hi += 1
        widths.append((hi - lo) / FS)
    return np.array(peaks), np.array(widths)


# ------------------------------------------------------------------ registry and contract
def test_registry_and_defaults():
    wl = get_workload("wearable.ecg")
    assert isinstance(wl, WearableEcg)
    assert wl.channels == ("ecg",) and wl.units == ("mV",)
    assert wl.window_samples == 1024 and wl.sample_rate_hz == FS
    assert wl.window_duration_s == pytest.approx(4.096)
    assert wl.raw_bytes_per_window == 2048
    assert wl.class_names == ("normal", "arrhythmia") and wl.positive_class == 1
    assert wl.default_events_per_day > 0 and wl.default_event_duration_s > 0
    assert get_workload("wearable.ecg", heart_rate_bpm=(60.0, 60.0)).heart_rate_bpm == (60.0, 60.0)
    with pytest.raises(InputError) as exc:
        get_workload("wearable.ecg", heart_rate=(60, 70))
    assert exc.value.field == "heart_rate"


def test_shape_dtype_determinism_and_bad_input():
    wl = get_workload("wearable.ecg")
    mask = np.random.default_rng(0).random((40, wl.window_samples)) < 0.5
    a = _gen(wl, 123, mask)
    assert a.shape == (40, 1024, 1) and a.dtype == np.float32 and a.flags.c_contiguous
    assert np.isfinite(a).all()
    assert a.tobytes() == _gen(wl, 123, mask.copy()).tobytes()
    assert not np.array_equal(a, _gen(wl, 124, mask))
    g = np.random.default_rng(5)
    assert not np.array_equal(wl.generate(g, mask), wl.generate(g, mask))
    assert _gen(wl, 1, _masks(wl, 0, False)).shape == (0, 1024, 1)
    with pytest.raises(InputError) as exc:
        _gen(wl, 0, np.zeros((3, 1000), bool))
    assert exc.value.field == "event_mask"
    with pytest.raises(InputError) as exc:
        wl.generate(np.random.RandomState(0), np.zeros((3, 1024), bool))
    assert exc.value.field == "rng"
    ints = np.zeros((3, 1024), dtype=np.int64)
    ints[:, -100:] = 1
    assert np.array_equal(_gen(wl, 3, ints), _gen(wl, 3, ints.astype(bool)))


def test_windows_are_generated_in_chunks_of_fixed_draw_order():
    """Internal chunks bound memory; a chunk draws exactly what a call of that size would."""
    mask = np.random.default_rng(1).random((50, 1024)) < 0.3
    chunked = WearableEcg(_chunk_windows=7)
    assert np.array_equal(_gen(WearableEcg(), 4, mask[:7]), _gen(chunked, 4, mask)[:7])


@pytest.mark.parametrize("kind", [PVC, PAC, AF])
@pytest.mark.parametrize("start", [1, 300, 700])
def test_background_does_not_depend_on_the_mask(kind, start):
    """Same seed, event from `start` on: identical before it, different after (every event kind)."""
    wl = WearableEcg(event_kind_p=kind)
    n = 64
    mask = _masks(wl, n, False)
    mask[:, start:] = True
    normal = _gen(wl, 9, _masks(wl, n, False))
    event = _gen(wl, 9, mask)
    np.testing.assert_allclose(event[:, :start], normal[:, :start], rtol=0, atol=1e-5)
    changed = np.abs(event[:, start:] - normal[:, start:]).max(axis=(1, 2)) > 0.05
    # ectopy comes every 2nd-4th beat, some skipped: 1.3 s of event (start 700) may hold none
    assert changed.mean() > (0.3 if start > 512 else 0.7)


def test_generation_is_fast_enough_for_the_engine():
    import time

    wl = get_workload("wearable.ecg")
    mask = np.zeros((4000, 1024), bool)
    mask[:2000, 500:] = True
    t = time.perf_counter()
    wl.generate(np.random.default_rng(0), mask)
    assert time.perf_counter() - t < 8.0  # ~0.5 s on an idle 2-CPU machine; generous for loaded CI


# ------------------------------------------------------------------ physiology
@pytest.mark.parametrize("hr", [50.0, 75.0, 120.0])
def test_r_peak_rate_matches_the_drawn_heart_rate(hr):
    wl = WearableEcg(heart_rate_bpm=(hr, hr), **CLEAN, **STEADY)
    x = _gen(wl, 3, _masks(wl, 20, False))[:, :, 0]
    for row in x:
        peaks, widths = _beats(row)
        rr = np.diff(peaks) / FS
        assert len(rr) >= int(4.096 * hr / 60) - 1
        np.testing.assert_allclose(rr, 60.0 / hr, atol=1.01 / FS)
        assert widths.max() < 0.04  # narrow QRS: R half-height width 2.355 sd = 19-28 ms


def test_sinus_arrhythmia_modulates_rr_by_the_drawn_fraction():
    steady = {**STEADY, "respiration_hz": (0.25, 0.25)}
    for rsa, lo, hi in ((0.0, 0.0, 0.01), (0.1, 0.08, 0.22)):
        wl = WearableEcg(heart_rate_bpm=(70.0, 70.0), **CLEAN, **{**steady, "rsa_fraction": (rsa, rsa)})
        x = _gen(wl, 6, _masks(wl, 30, False))[:, :, 0]
        spread = []
        for row in x:
            rr = np.diff(_beats(row)[0]) / FS
            spread.append((rr.max() - rr.min()) / (60.0 / 70.0))
        # RR = RR0 (1 + rsa sin(...)): over the ~1 breath in a window the range approaches 2 rsa
        assert lo <= np.median(spread) <= hi, (rsa, np.median(spread))


def test_pvc_is_wide_premature_with_full_compensatory_pause():
    hr = 60.0
    rr0 = 60.0 / hr
    wl = WearableEcg(heart_rate_bpm=(hr, hr), event_kind_p=PVC, pvc_amplitude=(1.5, 1.5), **CLEAN, **STEADY)
    x = _gen(wl, 11, _masks(wl, 30, True))[:, :, 0]
    n_pvc = 0
    for row in x:
        peaks, widths = _beats(row, thr=0.8)
        wide = widths > 0.05  # PVC main deflection: sd 25-40 ms -> half-height width 59-94 ms
        assert (widths[~wide] < 0.04).all()
        for j in np.flatnonzero(wide):
            if 0 < j < len(peaks) - 1 and not wide[j - 1] and not wide[j + 1]:
                before = (peaks[j] - peaks[j - 1]) / FS
                after = (peaks[j + 1] - peaks[j]) / FS
                lo, hi = wl.pvc_coupling
                assert lo * rr0 - 0.01 < before < hi * rr0 + 0.01  # premature
                # full compensatory pause: the sinus grid goes on, the beats around the PVC are 2 RR apart
                assert before + after == pytest.approx(2 * rr0, abs=2.5 / FS)
                n_pvc += 1
    assert n_pvc >= 15


def test_pac_is_premature_narrow_and_resets_the_sinus_node():
    hr = 60.0
    rr0 = 60.0 / hr
    wl = WearableEcg(heart_rate_bpm=(hr, hr), event_kind_p=PAC, **CLEAN, **STEADY)
    x = _gen(wl, 12, _masks(wl, 30, True))[:, :, 0]
    n_pac = 0
    for row in x:
        peaks, widths = _beats(row)
        assert (widths < 0.04).all()  # supraventricular: narrow QRS
        rr = np.diff(peaks) / FS
        short = rr < 0.95 * rr0
        for j in np.flatnonzero(short[:-1]):
            lo, hi = wl.pac_coupling
            assert lo * rr0 - 0.01 < rr[j] < hi * rr0 + 0.01
            # non-compensatory: the next beat comes one sinus cycle after the PAC
            assert rr[j + 1] == pytest.approx(rr0, abs=1.5 / FS)
            n_pac += 1
    assert n_pac >= 15


def test_af_rr_is_irregular_and_f_waves_lie_at_4_to_9_hz():
    wl = WearableEcg(event_kind_p=AF, **CLEAN)
    n = 60
    normal = _gen(wl, 13, _masks(wl, n, False))[:, :, 0]
    af = _gen(wl, 13, _masks(wl, n, True))[:, :, 0]

    def cv(x):
        out = []
        for row in x:
            rr = np.diff(_beats(row)[0])
            if len(rr) >= 2:
                out.append(rr.std() / rr.mean())
        return np.array(out)

    cv_n, cv_af = cv(normal), cv(af)
    # sinus: RSA <= 12 % -> CV of a few %; AF: log-normal RR with CV 0.12-0.35 (Tateno and Glass 2001)
    assert np.median(cv_n) < 0.06
    assert np.median(cv_af) > 0.1 and np.median(cv_af) > 2.5 * np.median(cv_n)
    # f-waves alone: a heart too small to see, so the window is the fibrillatory baseline
    lo_hz, hi_hz = wl.f_wave_hz
    fw = WearableEcg(event_kind_p=AF, **{**CLEAN, "r_amplitude_mv": (1e-6, 1e-6), "f_wave_mv": (0.1, 0.1)})
    x = _gen(fw, 14, _masks(fw, 40, True))[:, :, 0].astype(np.float64)
    spec = np.abs(np.fft.rfft(x - x.mean(axis=1, keepdims=True), axis=1)) ** 2
    f = np.fft.rfftfreq(1024, 1 / FS)
    dominant = f[np.argmax(spec, axis=1)]
    assert ((dominant >= lo_hz - 0.5) & (dominant <= hi_hz + 0.5)).all()
    assert 0.03 < np.sqrt(np.mean(x**2)) < 0.12  # 0.1 mV fundamental, 1/h harmonics, x0.7, modulation
    assert np.abs(_gen(fw, 14, _masks(fw, 40, False))).max() < 1e-3  # no f-waves outside the episode


def test_noise_levels_match_their_parameters():
    silent = {**CLEAN, "r_amplitude_mv": (1e-6, 1e-6)}
    wl = WearableEcg(**{**silent, "emg_mv": (0.05, 0.05)})
    x = _gen(wl, 15, _masks(wl, 200, False))[:, :, 0].astype(np.float64)
    assert np.sqrt(np.mean(x**2)) == pytest.approx(0.05, rel=0.03)  # unit-RMS band-limited noise
    f = np.fft.rfftfreq(1024, 1 / FS)
    spec = (np.abs(np.fft.rfft(x, axis=1)) ** 2).mean(axis=0)
    assert spec[f < 5].sum() < 0.02 * spec.sum()  # EMG band starts at 15 Hz
    pl = WearableEcg(**{**silent, "powerline_mv": (0.05, 0.05)})
    y = _gen(pl, 16, _masks(pl, 100, False))[:, :, 0].astype(np.float64)
    peak = f[np.argmax(np.abs(np.fft.rfft(y, axis=1)), axis=1)]
    assert set(np.round(peak)) <= {50.0, 60.0} and len(set(np.round(peak))) == 2
    assert np.sqrt(np.mean(y**2)) == pytest.approx(0.05 / np.sqrt(2), rel=0.02)


def test_confounders_are_present_in_normal_windows():
    wl = get_workload("wearable.ecg")
    x = _gen(wl, 17, _masks(wl, 3000, False))[:, :, 0].astype(np.float64)
    d = np.abs(np.diff(x, axis=1)).max(axis=1)
    amp = np.percentile(np.abs(x - np.median(x, axis=1, keepdims=True)), 99.5, axis=1)
    assert 0.2 < np.median(amp) < 2.5  # mV: R amplitudes 0.4-2.2 mV plus noise
    assert np.percentile(d, 99) > 3 * np.median(d)  # spikes and motion give steep, large deflections


# ------------------------------------------------------------------ real recordings
def test_mitdb_excerpts_match_their_sources():
    ex = mitdb_excerpts()
    rec = ex["record208_excerpt"]
    # scipy.misc.electrocardiogram's docstring: shape (108000,), mean -0.16510875, std 0.5992...
    assert rec["mv"].shape == (108000,) and rec["fs"] == 360.0 and rec["label"] is None
    assert rec["mv"][:3].tolist() == [-0.245, -0.215, -0.185]
    assert rec["mv"].mean() == pytest.approx(-0.16510875, abs=1e-8)
    assert rec["mv"].std() == pytest.approx(0.5992473991177294, rel=1e-9)
    tsb = ex["tsbuad_extract"]
    assert tsb["mv"].shape == (7500,) and tsb["label"].sum() == 352
    lab = np.flatnonzero(tsb["label"])
    assert lab[-1] - lab[0] + 1 == 352  # one contiguous labelled span
    assert "sktime" in tsb["source"] and "scipy" in rec["source"]
    with pytest.raises(InputError):
        mitdb_excerpts("/nonexistent/ecg.npz")


def test_resample_keeps_a_band_limited_signal():
    fs_in, fs_out = 360.0, 250.0
    t = np.arange(3600) / fs_in
    x = 0.3 + np.sin(2 * np.pi * 7.0 * t) + 0.5 * np.sin(2 * np.pi * 31.0 * t + 1.0)
    y = resample(x, fs_in, fs_out)
    assert len(y) == 2500
    tt = np.arange(2500) / fs_out
    ref = 0.3 + np.sin(2 * np.pi * 7.0 * tt) + 0.5 * np.sin(2 * np.pi * 31.0 * tt + 1.0)
    assert np.abs(y - ref)[50:-50].max() < 1e-3  # ends joined by a ramp: small residual kink


def test_real_windows_labels():
    wl = get_workload("wearable.ecg")
    d = real_windows(wl, stride_s=0.5)
    tsb = d["tsbuad_extract"]
    assert tsb["x"].shape[1:] == (1024, 1) and tsb["x"].dtype == np.float32
    lab = np.flatnonzero(mitdb_excerpts()["tsbuad_extract"]["label"])
    lo, hi = lab[0] / 360.0, (lab[-1] + 1) / 360.0
    ends = tsb["start_s"] + wl.window_duration_s
    assert ((tsb["start_s"][tsb["y"] == 1] <= lo) & (ends[tsb["y"] == 1] >= hi)).all()
    assert ((ends[tsb["y"] == 0] <= lo) | (tsb["start_s"][tsb["y"] == 0] >= hi)).all()
    assert (tsb["y"] == 1).sum() >= 1 and (tsb["y"] == 0).sum() >= 20
    rec = d["record208_excerpt"]
    assert (rec["start_s"][rec["y"] == 0] + wl.window_duration_s <= 10.0).all()
    assert (rec["y"] == 0).sum() == 12  # windows every 0.5 s ending by 10 s


# ------------------------------------------------------------------ zoo model
def _card():
    return json.loads((ZOO_DIR / "wearable_ecg_int8.json").read_text())


@pytest.fixture(scope="module")
def ecg_model():
    from iotsim.tinyml.runtime import Int8Model

    return Int8Model.load("wearable_ecg_int8")


def test_card_sizes_and_accuracy_band():
    card = _card()
    assert card["workload"] == "wearable.ecg" and card["input_shape"] == [1024, 1]
    assert card["params"] < 25_000 and card["macs"] < 1_000_000
    assert card["tflite_bytes"] < 64 * 1024
    assert card["tflite_bytes"] == (ZOO_DIR / "wearable_ecg_int8.tflite").stat().st_size
    assert (ZOO_DIR / card["float_model"]).is_file()
    assert 0.85 < card["int8_accuracy"] < 0.98 and 0.85 < card["float_accuracy"] < 0.98
    assert abs(card["float_accuracy"] - card["int8_accuracy"]) < 0.02
    assert "extra_evaluation" in card and len(card["extra_evaluation"]) == 4


def test_shipped_model_reaches_card_accuracy_on_fresh_windows(ecg_model):
    card = _card()
    wl = get_workload("wearable.ecg")
    ds = card["dataset"]
    x, y, _ = make_dataset(
        wl,
        4000,
        np.random.default_rng(424242),
        positive_fraction=ds["positive_fraction"],
        partial_fraction=ds["partial_fraction"],
        min_overlap=ds["min_overlap"],
    )
    pred, _ = ecg_model.predict(x)
    acc, f1 = accuracy_f1(y, pred, ecg_model.positive_class)
    # binomial sd at n=4000, p~0.9: 0.005
    assert abs(acc - card["int8_accuracy"]) < 0.02
    assert abs(f1 - card["int8_f1"]) < 0.03


def test_shipped_model_per_event_kind(ecg_model):
    """Every arrhythmia kind is detected far above the false-positive rate on normal rhythm."""
    n = 600
    fp = ecg_model.predict(_gen(WearableEcg(), 31, np.zeros((n, 1024), bool)))[0].mean()
    assert fp < 0.15
    for kind in (PVC, PAC, AF):
        wl = WearableEcg(event_kind_p=kind)
        recall = ecg_model.predict(_gen(wl, 32, np.ones((n, 1024), bool)))[0].mean()
        assert recall > fp + 0.4, (kind, recall, fp)


def test_real_data_evaluation_reproduces_the_card(ecg_model):
    from iotsim.tinyml.recipes.wearable import evaluate_real
    from iotsim.tinyml.runtime import TfliteModel

    card = _card()
    twin = TfliteModel.load(ZOO_DIR / card["float_model"])
    assert evaluate_real(ecg_model, twin) == card["extra_evaluation"]
    groups = list(card["extra_evaluation"].values())
    assert [g["windows"] for g in groups[:2]] == [2, 62]


# ------------------------------------------------------------------ recipe (reduced size)
def test_recipe_small_trains_and_quantizes(tmp_path):
    pytest.importorskip("tensorflow")
    from iotsim.tinyml.recipes import wearable

    card = wearable.build(tmp_path, small=True)
    name = wearable.RECIPE.name
    assert card["test_samples"] == wearable.SMALL.n_test and card["epochs"] == wearable.SMALL.epochs
    assert card["float_accuracy"] >= 0.72 and card["int8_accuracy"] >= 0.71  # 0.77 on a 2-CPU x86_64
    assert abs(card["float_accuracy"] - card["int8_accuracy"]) <= 0.03
    assert card["params"] < 25_000 and card["tflite_bytes"] < 64 * 1024
    assert json.loads((tmp_path / f"{name}.json").read_text()) == card
    assert (tmp_path / f"{name}.md").read_text().startswith(f"# {name}")
    assert "Other held-out evaluations" in (tmp_path / f"{name}.md").read_text()
    assert not list(tmp_path.glob(".*"))
