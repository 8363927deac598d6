"""Keyword spotting: the espeak-ng utterance bank, the smart_home.keyword workload, MFCC features,
the shipped smart_home_kws_int8 model and its recipe."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from iotsim.errors import InputError
from iotsim.paths import REPO_DIR, ZOO_DIR
from iotsim.signals import get_workload
from iotsim.signals.keyword_bank import (
    BANK_PATH,
    CONFUSERS,
    KEYWORD,
    KIND_CONFUSER,
    KIND_KEYWORD,
    KIND_OTHER,
    build_bank,
    espeak_binary,
    load_bank,
    mulaw_decode,
    mulaw_encode,
    resample,
)
from iotsim.signals.keywords import KeywordAudio
from iotsim.tinyml.adapters import InputAdapter
from iotsim.tinyml.features import (
    dct_matrix,
    hz_to_mel,
    log_mel,
    mel_to_hz,
    mel_weight_matrix,
    mfcc,
)
from iotsim.tinyml.runtime import Int8Model, TfliteModel
from iotsim.tinyml.train import accuracy_f1, make_dataset

W = 16000
NAME = "smart_home_kws_int8"
# only speech and stationary noise: closed-form checks
PLAIN = {"p_reverb": 0.0, "p_foreground": 0.0, "p_babble": 0.0}


def _gen(wl, seed, mask):
    return wl.generate(np.random.default_rng(seed), mask)[..., 0].astype(np.float64)


def _extent(d, thresh=1.5 / 32768):
    """First and one-past-last sample where |d| exceeds thresh."""
    nz = np.flatnonzero(np.abs(d) > thresh)
    return (nz[0], nz[-1] + 1) if nz.size else (0, 0)


# ------------------------------------------------------------------ bank
def test_bank_contents():
    bank = load_bank()
    assert bank.sample_rate_hz == 16000 and bank.meta["sample_rate_hz"] == 16000
    assert bank.meta["keyword"] == KEYWORD == "lights on"
    assert bank.meta["espeak_ng_version"].startswith("eSpeak NG")
    assert BANK_PATH.stat().st_size < 1.5e6
    kw = bank.indices(KIND_KEYWORD)
    assert len(kw) >= 48
    assert {bank.text[i].rstrip(".!?") for i in kw} == {KEYWORD}
    # several voices: language voices and voice variants
    assert len({bank.voice[i].split("+")[0] for i in kw}) >= 5
    assert len({bank.voice[i].split("+")[1] for i in kw}) >= 12
    texts = {bank.text[i] for i in bank.indices(KIND_CONFUSER)}
    assert {"lights off", "nights on", "likes on"} <= texts and texts == set(CONFUSERS)
    assert len({bank.text[i] for i in bank.indices(KIND_OTHER)}) >= 30
    assert not (texts & {bank.text[i] for i in bank.indices(KIND_OTHER)})
    # utterances: trimmed, peak-normalised, short enough to fit a 1-s window (the keyword)
    assert bank.length[kw].max() <= W and bank.length.min() > 0.15 * 16000
    for i in range(bank.n):
        u = bank.utterance(i)
        assert np.abs(u).max() == pytest.approx(1.0, abs=1e-6)
        assert abs(u[0]) < 0.05 and abs(u[-1]) < 0.05  # faded in and out
    assert np.all(bank.audio[:2] == 0)  # the "no sound" samples used by gathers
    listing = json.loads(BANK_PATH.with_suffix(".json").read_text())
    assert len(listing["utterances"]) == bank.n
    assert all(u["command"].startswith("espeak-ng -v ") for u in listing["utterances"])


def test_mulaw_and_resampler():
    x = np.linspace(-1, 1, 2001)
    y = mulaw_decode(mulaw_encode(x))
    # 8-bit mu-law: error within half a code step; dx/dy = ln(1 + mu) (|x| + 1 / mu), steps of 1/127 in y
    step = np.log1p(255) / 127 * (np.maximum(np.abs(x), np.abs(y)) + 1 / 255)
    assert np.all(np.abs(y - x) <= 0.5 * step + 1e-7)
    t_in = np.arange(22050) / 22050
    for f, gain in ((1000.0, 1.0), (6000.0, 1.0), (9000.0, 0.0)):  # 9 kHz is above the new Nyquist
        r = resample(np.sin(2 * np.pi * f * t_in), 22050, 16000)
        assert len(r) == 16000
        ref = gain * np.sin(2 * np.pi * f * np.arange(16000) / 16000)
        assert np.abs(r - ref)[200:-200].max() < 0.02


@pytest.mark.skipif(espeak_binary() is None, reason="espeak-ng is not installed")
def test_bank_rebuild_with_espeak(tmp_path):
    plan = [
        {"text": "lights on", "kind": KIND_KEYWORD, "voice": "en-us+f3", "speed": 180, "pitch": 50, "gap": 0},
        {"text": "lights off", "kind": KIND_CONFUSER, "voice": "en-gb-x-rp+m2", "speed": 160, "pitch": 40, "gap": 0},
    ]
    out = tmp_path / "bank.npz"
    summary = build_bank(out, plan=plan, jobs=1)
    assert summary["n_utterances"] == 2 and out.is_file() and out.with_suffix(".json").is_file()
    bank = load_bank(out)
    assert bank.text == ("lights on", "lights off") and list(bank.kind) == [KIND_KEYWORD, KIND_CONFUSER]
    assert np.all((bank.length > 0.25 * 16000) & (bank.length < 16000))
    # with the espeak-ng version that built the shipped bank, the same command gives the same utterance
    shipped = load_bank()
    if bank.meta["espeak_ng_version"] == shipped.meta["espeak_ng_version"]:
        first = dict(json.loads(BANK_PATH.with_suffix(".json").read_text())["utterances"][0])
        first["kind"] = KIND_KEYWORD
        out2 = tmp_path / "one.npz"
        build_bank(out2, plan=[first], jobs=1)
        again = load_bank(out2)
        assert again.length[0] == shipped.length[0]
        assert np.abs(again.utterance(0) - shipped.utterance(0)).max() < 1e-6
    # a workload can play another bank
    wl = KeywordAudio(bank=str(out), babble_words=(1, 1))
    x = wl.generate(np.random.default_rng(0), np.ones((3, W), bool))
    assert x.shape == (3, W, 1) and np.isfinite(x).all()


def test_missing_bank_is_input_error(tmp_path):
    wl = KeywordAudio(bank=str(tmp_path / "none.npz"))
    with pytest.raises(InputError) as exc:
        wl.generate(np.random.default_rng(0), np.zeros((1, W), bool))
    assert "espeak-ng" in str(exc.value)


# ------------------------------------------------------------------ workload contract
def test_registry_and_description():
    wl = get_workload("smart_home.keyword")
    assert isinstance(wl, KeywordAudio)
    assert wl.channels == ("microphone",) and wl.units == ("FS",)
    assert wl.window_samples == 16000 and wl.sample_rate_hz == 16000.0 and wl.window_duration_s == 1.0
    assert wl.bytes_per_sample == 2 and wl.raw_bytes_per_window == 32000
    assert wl.class_names[wl.positive_class] == "keyword"
    assert wl.default_events_per_day > 0 and wl.default_event_duration_s > 0
    s = wl.summary()
    assert s["keyword"] == "lights on" and s["bank_utterances"]["keyword"] >= 48


def test_shape_dtype_range_and_adc_grid():
    wl = get_workload("smart_home.keyword")
    mask = wl.random_event_masks(np.random.default_rng(1), 20, partial_fraction=0.5, min_overlap=0.25)
    mask = np.concatenate([mask, np.zeros((20, W), bool)])
    x = wl.generate(np.random.default_rng(2), mask)
    assert x.shape == (40, W, 1) and x.dtype == np.float32 and x.flags.c_contiguous
    assert np.isfinite(x).all() and x.min() >= -1.0 and x.max() < 1.0
    codes = x * 32768.0
    assert np.array_equal(codes, np.round(codes))  # 16-bit PCM
    assert wl.generate(np.random.default_rng(2), mask[:0]).shape == (0, W, 1)


def test_deterministic_and_mask_independent():
    wl = get_workload("smart_home.keyword")
    rng = np.random.default_rng(3)
    mask = wl.random_event_masks(rng, 30, partial_fraction=0.6, min_overlap=0.1)
    a = wl.generate(np.random.default_rng(7), mask)
    b = wl.generate(np.random.default_rng(7), mask.copy())
    c = wl.generate(np.random.default_rng(8), mask)
    assert a.tobytes() == b.tobytes() and a.tobytes() != c.tobytes()
    # the same draws without the event: identical outside the mask, different inside it
    bg = wl.generate(np.random.default_rng(7), np.zeros_like(mask))
    d = (a - bg)[..., 0]
    assert np.all(d[~mask] == 0)
    energy_in = np.sum(d**2 * mask, axis=1)
    assert np.all(energy_in > 0)
    # another mask on the same windows: again identical outside both masks
    other = np.roll(mask, 5000, axis=1)
    e = wl.generate(np.random.default_rng(7), other)
    assert np.all((e - a)[..., 0][~(mask | other)] == 0)


def test_bad_arguments_are_input_errors():
    wl = get_workload("smart_home.keyword")
    with pytest.raises(InputError):
        wl.generate(np.random.default_rng(0), np.zeros((2, 8000), bool))
    with pytest.raises(InputError):
        wl.generate(0, np.zeros((2, W), bool))
    for bad in ({"snr_db": (10.0, 0.0)}, {"p_babble": 1.5}, {"speech_dbfs": (-10.0, 3.0)},
                {"babble_words": (0, 9)}, {"speed_perturbation": 0.7}, {"hum_hz": (50.0, 9000.0)}):
        with pytest.raises(InputError) as exc:
            get_workload("smart_home.keyword", **bad)
        assert exc.value.field == next(iter(bad))


# ------------------------------------------------------------------ closed-form checks
@pytest.mark.parametrize("snr", [0.0, 10.0, 25.0])
def test_snr_as_drawn(snr):
    wl = get_workload("smart_home.keyword", **PLAIN, p_quiet=0.0, snr_db=(snr, snr))
    n = 60
    on = _gen(wl, 4, np.ones((n, W), bool))
    off = _gen(wl, 4, np.zeros((n, W), bool))
    d = on - off  # the keyword alone (full mask: the whole utterance inside the window)
    measured = []
    for i in range(n):
        a, b = _extent(d[i])
        measured.append(10 * np.log10(np.mean(d[i, a:b] ** 2) / np.mean(off[i] ** 2)))
    # interpolation in the +-8 % speed change loses a little high-frequency energy (~0.1 dB)
    assert np.abs(np.array(measured) - snr).max() < 0.35


def test_speech_level_and_self_noise():
    wl = get_workload("smart_home.keyword", **PLAIN, p_quiet=1.0, speech_dbfs=(-20.0, -20.0))
    n = 40
    on = _gen(wl, 5, np.ones((n, W), bool))
    off = _gen(wl, 5, np.zeros((n, W), bool))
    # quiet windows: microphone self-noise only (INMP441: -87 dBFS), plus 16-bit rounding
    noise_db = 10 * np.log10(np.mean(off**2, axis=1))
    assert np.all(np.abs(noise_db + 87.0) < 0.6)
    level = [10 * np.log10(np.mean((on[i] - off[i])[slice(*_extent(on[i] - off[i]))] ** 2)) for i in range(n)]
    assert np.abs(np.array(level) + 20.0).max() < 0.35


def test_event_placement_at_window_edges():
    wl = get_workload("smart_home.keyword", **PLAIN)
    n = 20
    cover = 4800  # 0.3 s, shorter than any keyword utterance
    tol = 800  # 50 ms: the utterance's 10-ms margin and fade, and a quiet onset
    bg = _gen(wl, 6, np.zeros((n, W), bool))
    starting = np.zeros((n, W), bool)
    starting[:, W - cover :] = True  # the event starts in the window: the keyword's beginning
    d = _gen(wl, 6, starting) - bg
    for i in range(n):
        a, b = _extent(d[i])
        assert W - cover <= a < W - cover + tol and b > W - tol
    ending = np.zeros((n, W), bool)
    ending[:, :cover] = True  # the event ends in the window: the keyword's end
    d = _gen(wl, 6, ending) - bg
    for i in range(n):
        a, b = _extent(d[i])
        assert a < tol and cover - tol < b <= cover
    # a short event inside the window with room for the utterance: all of it, inside the mask
    inside = np.zeros((n, W), bool)
    inside[:, 2000:15500] = True
    d = _gen(wl, 6, inside) - bg
    bank = load_bank()
    shortest = bank.length[bank.indices(KIND_KEYWORD)].min() / 1.08
    for i in range(n):
        a, b = _extent(d[i])
        assert 2000 <= a and b <= 15500 and b - a > 0.7 * shortest


def test_hum_harmonics_on_fan_frequency():
    wl = get_workload("smart_home.keyword", **PLAIN, p_quiet=0.0, p_hum=1.0, hum_share=(1.0, 1.0),
                      hum_hz=(100.0, 100.0), snr_db=(0.0, 0.0))
    x = _gen(wl, 7, np.zeros((8, W), bool))
    p = np.mean(np.abs(np.fft.rfft(x, axis=1)) ** 2, axis=0)  # 1-Hz bins
    harmonics = p[100:801:100].sum()
    assert harmonics / p.sum() > 0.99
    assert np.argmax(p) in range(100, 801, 100)


@pytest.mark.parametrize("alpha", [1.0, 2.0])
def test_room_noise_spectral_slope(alpha):
    wl = get_workload("smart_home.keyword", **PLAIN, p_quiet=0.0, p_hum=0.0, noise_slope=(alpha, alpha),
                      speech_dbfs=(-20.0, -20.0), snr_db=(0.0, 0.0))
    x = _gen(wl, 8, np.zeros((16, W), bool))
    p = np.mean(np.abs(np.fft.rfft(x, axis=1)) ** 2, axis=0)
    f = np.arange(p.size)
    band = (f >= 100) & (f <= 4000)
    slope = np.polyfit(np.log(f[band]), np.log(p[band]), 1)[0]
    assert slope == pytest.approx(-alpha, abs=0.1)


def test_reverberation_energy_follows_drr():
    # same draws with and without reverberation: wet - dry = g h * dry with unit-energy h and
    # g^2 = 10^(-DRR/10); the tail cut at the window end loses a little
    kw = dict(PLAIN, p_quiet=1.0, drr_db=(6.0, 6.0), t60_s=(0.3, 0.3))
    dry_wl = get_workload("smart_home.keyword", **kw)
    wet_wl = get_workload("smart_home.keyword", **{**kw, "p_reverb": 1.0})
    mask = np.zeros((40, W), bool)
    mask[:, : W // 2] = True  # the keyword in the first half: the tail fits in the window
    dry = _gen(dry_wl, 9, mask)
    wet = _gen(wet_wl, 9, mask)
    ratio = 10 * np.log10(np.sum((wet - dry)[mask] ** 2) / np.sum(dry[mask] ** 2))
    assert ratio == pytest.approx(-6.0, abs=1.5)
    assert np.all((wet - dry)[~mask] == 0)


def test_generation_time_is_reasonable():
    wl = get_workload("smart_home.keyword")
    mask = wl.random_event_masks(np.random.default_rng(0), 200, partial_fraction=0.4, min_overlap=0.25)
    import time

    t = time.process_time()
    wl.generate(np.random.default_rng(1), mask)
    # about 2 ms of CPU per window on the development machine; generous bound for CI
    assert (time.process_time() - t) / 200 < 0.05


# ------------------------------------------------------------------ MFCC
def test_mfcc_shapes_and_adapter():
    x = np.random.default_rng(0).standard_normal((5, W)).astype(np.float32) * 0.1
    m = mfcc(x)
    assert m.shape == (5, 49, 10) and m.dtype == np.float32
    assert np.array_equal(mfcc(x[2]), m[2])  # one window, no batch axis
    # chunking does not change results
    assert np.array_equal(np.concatenate([mfcc(x[i : i + 1]) for i in range(5)]), m)
    assert mfcc(x, frame_length=640, fft_length=1024).shape == (5, 49, 10)  # Hello Edge: 40 ms / 20 ms
    ad = InputAdapter("mfcc", (W, 1), {"n_mfcc": 10})
    assert np.array_equal(ad(x[..., None]), m)


def test_mfcc_matches_tensorflow():
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(1)
    t = np.arange(W) / 16000
    utt = load_bank().utterance(0)[:W]
    x = np.stack(
        [
            rng.standard_normal(W) * 0.05,
            np.sin(2 * np.pi * 440 * t) * 0.5 + rng.standard_normal(W) * 1e-3,
            np.concatenate([utt, np.zeros(W - len(utt))]),
            get_workload("smart_home.keyword").generate(np.random.default_rng(2), np.ones((1, W), bool))[0, :, 0],
            np.zeros(W),
        ]
    ).astype(np.float32)
    for fl, ff, power in ((480, 512, 1.0), (640, 1024, 2.0)):
        st = tf.signal.stft(x, frame_length=fl, frame_step=320, fft_length=ff, window_fn=tf.signal.hann_window)
        spec = tf.abs(st) ** power
        wmel = tf.signal.linear_to_mel_weight_matrix(40, st.shape[-1], 16000, 20.0, 4000.0)
        assert np.abs(wmel.numpy() - mel_weight_matrix(40, ff // 2 + 1, 16000.0, 20.0, 4000.0)).max() < 1e-5
        lm = tf.math.log(tf.tensordot(spec, wmel, 1) + 1e-6)
        ref = tf.signal.mfccs_from_log_mel_spectrograms(lm)[..., :10].numpy()
        got = mfcc(x, frame_length=fl, fft_length=ff, magnitude_power=power)
        # both in float32: about 1e-4 apart on values up to 124
        assert np.abs(got - ref).max() < 2e-3
        assert np.abs(log_mel(x, frame_length=fl, fft_length=ff, magnitude_power=power) - lm.numpy()).max() < 2e-3


def test_pure_tone_lands_in_its_mel_band():
    t = np.arange(W) / 16000
    w = mel_weight_matrix(40, 257, 16000.0, 20.0, 4000.0)
    centres = mel_to_hz(np.linspace(hz_to_mel(20.0), hz_to_mel(4000.0), 42)[1:-1])
    for band in (3, 10, 20, 30, 38):
        k = round(centres[band] / 16000 * 512)  # the FFT bin nearest to the band's centre
        assert int(np.argmax(w[k])) == band and w[k, band] > 0.7
        lm = log_mel(np.sin(2 * np.pi * k * 16000 / 512 * t).astype(np.float32)).mean(axis=0)
        assert int(np.argmax(lm)) == band
        # neighbouring bands see the triangles' overlap and the Hann main lobe (+-2 bins, wider
        # than the lowest triangles); bands two or more away almost nothing
        assert lm[band] - np.delete(lm, band).max() > 0.25
        far = np.abs(np.arange(40) - band) >= 2
        assert lm[band] - lm[far].max() > np.log(20.0)


def test_dct_closed_forms():
    n = 40
    const = np.full((1, n), 3.0)
    for norm, c0 in (("tf", np.sqrt(2.0 * n)), ("ortho", np.sqrt(n))):
        c = const @ dct_matrix(n, n, norm)
        assert c[0, 0] == pytest.approx(3.0 * c0) and np.abs(c[0, 1:]).max() < 1e-12
    d = dct_matrix(n, n, "ortho")
    assert np.allclose(d.T @ d, np.eye(n), atol=1e-12)  # orthonormal DCT-II
    # silence: every log-mel value is log(1e-6) -> only coefficient 0, sqrt(2 N) log(1e-6)
    m = mfcc(np.zeros(W, np.float32))
    assert np.allclose(m[:, 0], np.sqrt(80.0) * np.log(1e-6), rtol=1e-6)
    assert np.abs(m[:, 1:]).max() < 1e-4


def test_mfcc_bad_input():
    x = np.zeros((2, W), np.float32)
    for kwargs in ({"n_mfcc": 41}, {"fft_length": 256}, {"fmax_hz": 9000.0}, {"frame_step": 0},
                   {"dct_norm": "dct3"}, {"log_offset": 0.0}):
        with pytest.raises(InputError):
            mfcc(x, **kwargs)
    with pytest.raises(InputError):
        mfcc(np.zeros((2, 100), np.float32))
    with pytest.raises(InputError):
        mfcc(np.zeros((2, 3, W), np.float32))


# ------------------------------------------------------------------ shipped model
def _card():
    return json.loads((ZOO_DIR / f"{NAME}.json").read_text())


@pytest.fixture(scope="module")
def kws_model():
    return Int8Model.load(NAME)


def test_card_and_files():
    card = _card()
    assert card["workload"] == "smart_home.keyword" and card["input_shape"] == [49, 10]
    assert card["input_adapter"]["name"] == "mfcc" and card["input_adapter"]["window_shape"] == [16000, 1]
    assert card["tflite_bytes"] == (ZOO_DIR / f"{NAME}.tflite").stat().st_size < 64 * 1024
    assert (ZOO_DIR / card["float_model"]).is_file() and (ZOO_DIR / f"{NAME}.md").is_file()
    assert card["params"] < 25_000 and 0 < card["macs"] < 2_660_000  # smaller than MLPerf Tiny's DS-CNN
    # hard enough that float is not perfect; int8 close to float
    assert 0.88 < card["float_accuracy"] < 0.98
    assert abs(card["float_accuracy"] - card["int8_accuracy"]) < 0.02


def test_model_runs_on_raw_windows_and_reaches_card_accuracy(kws_model):
    card = _card()
    assert kws_model.input_shape == (49, 10) and kws_model.window_shape == (16000, 1)
    wl = get_workload(card["workload"])
    ds = card["dataset"]
    x, y, _ = make_dataset(wl, 2000, np.random.default_rng(4242), positive_fraction=ds["positive_fraction"],
                           partial_fraction=ds["partial_fraction"], min_overlap=ds["min_overlap"])
    pred, _ = kws_model.predict(x)
    acc, f1 = accuracy_f1(y, pred, kws_model.positive_class)
    # binomial sd at n=2000 and p~0.93: 0.006
    assert abs(acc - card["int8_accuracy"]) < 0.025
    assert abs(f1 - card["int8_f1"]) < 0.03
    twin = TfliteModel.load(ZOO_DIR / card["float_model"])
    pf, _ = twin.predict(x[:500])
    assert np.mean(pf == pred[:500]) > 0.97


def test_events_score_higher_than_background(kws_model):
    wl = get_workload("smart_home.keyword")
    event = wl.generate(np.random.default_rng(11), np.ones((300, W), bool))
    normal = wl.generate(np.random.default_rng(11), np.zeros((300, W), bool))
    pos = kws_model.positive_class
    assert kws_model.scores(event)[:, pos].mean() > kws_model.scores(normal)[:, pos].mean() + 0.5


def test_simulator_side_needs_neither_tensorflow_nor_espeak():
    code = (
        "import sys, numpy as np; from iotsim.signals import get_workload; "
        "from iotsim.tinyml.runtime import Int8Model; "
        "wl = get_workload('smart_home.keyword'); x = wl.generate(np.random.default_rng(0), np.ones((4, 16000), bool)); "
        "m = Int8Model.load('smart_home_kws_int8'); m.predict(x); "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'tensorflow imported'; "
        "assert 'scipy' not in sys.modules, 'scipy imported'"
    )
    env = {**os.environ, "PATH": "/nonexistent"}  # no espeak-ng on the path
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO_DIR, capture_output=True, text=True, env=env, check=False)
    assert res.returncode == 0, res.stderr[-2000:]


# ------------------------------------------------------------------ recipe (reduced size)
def test_recipe_small_trains_and_quantizes(tmp_path):
    pytest.importorskip("tensorflow")
    from iotsim.tinyml.recipes import smart_home

    card = smart_home.build(tmp_path, small=True)
    assert card["input_adapter"]["name"] == "mfcc" and card["input_shape"] == [49, 10]
    assert card["float_accuracy"] >= 0.75 and card["int8_accuracy"] >= 0.74
    assert abs(card["float_accuracy"] - card["int8_accuracy"]) <= 0.03
    assert card["test_samples"] == smart_home.SMALL.n_test
    m = Int8Model.load(tmp_path / f"{NAME}.tflite")
    assert m.window_shape == (16000, 1)
