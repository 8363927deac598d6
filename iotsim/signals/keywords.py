"""smart_home.keyword: a microphone in a living room listening for the spoken command "lights on".

One channel, "microphone", in full-scale units ("FS": 1.0 = digital full scale of the 16-bit
PCM stream, int16 value / 32768). The node records 1 s windows of 16,000 samples at 16 kHz (the
clip length and rate of the Speech Commands data set used by MLPerf Tiny keyword spotting);
raw, every sample is sent as int16. For a MEMS microphone such as the InvenSense INMP441
(datasheet: sensitivity -26 dBFS at 94 dB SPL, SNR 61 dBA) 0 dBFS is 120 dB SPL and the
self-noise floor is -26 - 61 = -87 dBFS.

Speech comes from a bank of utterances synthesised with espeak-ng (`iotsim.signals.keyword_bank`,
shipped as iotsim/signals/data/keyword_bank.npz; the simulator reads it with numpy only): the
keyword "lights on" in 64 voice/speed/pitch variants, 18 phonetically close confusers ("lights
off", "nights on", "likes on", "right on", "lights", "on", ...) and 36 other words. Each use of
an utterance changes its speed and pitch together by a random factor (tape-speed perturbation,
+-8 % by default, linear interpolation).

Level conventions: a speech level (dBFS RMS of the utterance over its samples, uniform in dB
over `speech_dbfs`: distance to the talker and the microphone gain) is drawn per window; the
keyword is played at that level, and the stationary room noise (coloured noise plus hum) is set
to the level `snr_db` below it, SNR drawn per window: keyword RMS / stationary-noise RMS over
the window, before reverberation. Microphone self-noise (white, `mic_noise_dbfs`) is always
there; quiet windows (`p_quiet`) have no room noise at all.

Background (every window, positive or not; all with their own probabilities):
- room noise: 1/f^alpha noise, alpha uniform in `noise_slope` (1 pink, 2 brown; 0.5 is a
  flatter, ventilation-like hiss), with a hum (`p_hum`) of a fan or mains transformer: a
  fundamental in `hum_hz` with 8 harmonics of random amplitudes falling as k^-(0.5..2) and random
  phases, carrying `hum_share` of the stationary-noise power;
- foreground speech (`p_foreground`): one non-keyword utterance at about the speech level
  (`foreground_rel_db`), a phonetically close confuser with probability `p_confuser`, placed
  anywhere in the window (possibly cut at its edges);
- TV / babble (`p_babble`): 2-6 non-keyword utterances at `babble_rel_db` below the speech
  level (+-3 dB each), anywhere, overlapping, more reverberant (a far source);
- room reverberation (`p_reverb`): impulse response = direct sound + exponentially decaying
  Gaussian noise tail starting 2-10 ms after it (decay of 60 dB in T60, uniform in `t60_s`,
  truncated at `ir_s`), direct-to-reverberant energy ratio uniform in `drr_db` (6 dB lower for
  the babble); the T60 range is an assumption for furnished living rooms. Keyword and
  foreground word are convolved linearly (the tail past the window end is cut), the babble
  circularly over the window (continuous TV sound: the tail of earlier speech rings into the
  window's start);
- ADC: the sum is clipped to full scale and quantised to 16 bits.

Event (positive class "keyword"): the keyword is spoken. Let [first, last] be the span of
the mask's True samples in a window and U the length of the (speed-perturbed) utterance:
- U fits in the span: the utterance lies entirely in it, at a uniformly random position (the
  time shift);
- it does not fit and the event started inside the window (mask reaching the window's end
  only): the utterance starts at the mask start and the window holds its beginning;
- it does not fit and the event ends inside the window (mask from the window's start only):
  the utterance ends at the mask end and the window holds its end;
- otherwise (a short event strictly inside the window) a random part of the utterance.
The keyword (with its reverberation) is present only on masked samples, and the foreground
word is silenced there (one talker at a time): a window with the event differs from the same
draws without it only where the mask is True. The generator sees windows, not events: two
windows of one event each place the keyword by these rules.

Draws never depend on the mask; all come from the generator passed in, in a fixed order per
chunk of `_chunk_windows` windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iotsim.errors import InputError
from iotsim.signals.base import Workload
from iotsim.signals.keyword_bank import (
    KIND_CONFUSER,
    KIND_KEYWORD,
    KIND_OTHER,
    load_bank,
)

_N_HUM_HARMONICS = 8
_BABBLE_SLOTS = 6


def _next_smooth(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n (a fast FFT length)."""
    best = 1 << int(np.ceil(np.log2(n)))
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p = p35
            while p < n:
                p *= 2
            best = min(best, p)
            p35 *= 3
        p5 *= 5
    return best


@dataclass(frozen=True)
class KeywordAudio(Workload):
    name: str = "smart_home.keyword"
    channels: tuple[str, ...] = ("microphone",)
    units: tuple[str, ...] = ("FS",)  # full scale: int16 value / 32768
    window_samples: int = 16000  # 1 s, the Speech Commands / MLPerf Tiny KWS clip
    sample_rate_hz: float = 16000.0
    bytes_per_sample: int = 2  # 16-bit PCM
    # Scenario defaults (assumptions): the command is spoken about a dozen times a day per room;
    # an event is the second of audio that holds the utterance.
    default_events_per_day: float = 12.0
    default_event_duration_s: float = 1.0
    class_names: tuple[str, ...] = ("background", "keyword")
    positive_class: int = 1
    description: str = (
        "1-s microphone windows at 16 kHz in a living room: room noise (pink/brown, fan/mains hum), "
        "TV babble, other words (some phonetically close) and reverberation; event: the command "
        "'lights on' (espeak-ng voices), possibly truncated at the window edge"
    )

    bank: str = ""  # path of another bank file; "" = the shipped iotsim/signals/data/keyword_bank.npz
    speech_dbfs: tuple[float, float] = (-40.0, -15.0)  # speech RMS level, uniform in dB (assumption)
    snr_db: tuple[float, float] = (0.0, 30.0)  # keyword RMS over stationary noise RMS
    speed_perturbation: float = 0.08  # +- relative tape-speed change per utterance use
    mic_noise_dbfs: float = -87.0  # INMP441 datasheet: -26 dBFS sensitivity, 61 dBA SNR
    p_quiet: float = 0.1  # windows with only microphone self-noise (no room noise)
    noise_slope: tuple[float, float] = (0.5, 2.0)  # power spectrum ~ 1/f^alpha
    p_hum: float = 0.4
    hum_hz: tuple[float, float] = (45.0, 180.0)  # fan blade pass / mains hum fundamental
    hum_share: tuple[float, float] = (0.1, 0.7)  # fraction of the stationary-noise power
    p_foreground: float = 0.5
    p_confuser: float = 0.6  # of foreground words: a phonetically close one
    foreground_rel_db: tuple[float, float] = (-6.0, 3.0)
    p_babble: float = 0.35
    babble_words: tuple[int, int] = (2, 6)
    babble_rel_db: tuple[float, float] = (-25.0, -8.0)
    p_reverb: float = 0.7
    t60_s: tuple[float, float] = (0.2, 0.7)  # assumption: furnished living rooms
    drr_db: tuple[float, float] = (0.0, 15.0)  # direct-to-reverberant ratio (assumption)
    ir_s: float = 0.3  # impulse response length (the tail is cut there)

    _chunk_windows: int = 256  # windows per internal step (bounds temporary memory; fixes the draw order)

    def __post_init__(self) -> None:
        def fail(field: str, msg: str):
            raise InputError(msg, where=self.name, field=field)

        for f in ("speech_dbfs", "snr_db", "noise_slope", "hum_hz", "hum_share", "foreground_rel_db",
                  "babble_rel_db", "t60_s", "drr_db", "babble_words"):
            v = getattr(self, f)
            if not (isinstance(v, (tuple, list)) and len(v) == 2 and all(np.isfinite(x) for x in v) and v[0] <= v[1]):
                fail(f, f"{f} must be a range [low, high] with low <= high, got {v!r}")
            object.__setattr__(self, f, tuple(v))
        for f in ("p_quiet", "p_hum", "p_foreground", "p_confuser", "p_babble", "p_reverb"):
            if not 0.0 <= getattr(self, f) <= 1.0:
                fail(f, f"{f} must be a probability in [0, 1], got {getattr(self, f)!r}")
        if self.speech_dbfs[1] > 0:
            fail("speech_dbfs", "speech levels above 0 dBFS cannot be represented")
        if not 0.0 <= self.speed_perturbation < 0.5:
            fail("speed_perturbation", f"speed_perturbation must be in [0, 0.5), got {self.speed_perturbation}")
        if not (self.babble_words[0] >= 1 and self.babble_words[1] <= _BABBLE_SLOTS):
            fail("babble_words", f"babble_words must lie within [1, {_BABBLE_SLOTS}], got {self.babble_words}")
        if self.hum_share[0] < 0 or self.hum_share[1] > 1:
            fail("hum_share", f"hum_share must lie within [0, 1], got {self.hum_share}")
        if self.t60_s[0] <= 0 or not 0 < self.ir_s <= 2.0:
            fail("t60_s", "t60_s must be > 0 and ir_s in (0, 2] s")
        if self.noise_slope[0] < 0 or self.noise_slope[1] > 3:
            fail("noise_slope", f"noise_slope must lie within [0, 3], got {self.noise_slope}")
        if self.hum_hz[0] <= 0 or self.hum_hz[1] >= self.sample_rate_hz / 2:
            fail("hum_hz", f"hum_hz must lie within (0, {self.sample_rate_hz / 2}) Hz, got {self.hum_hz}")

    # ----------------------------------------------------------------- bank
    def load_bank(self):
        """The utterance bank this workload plays (cached; numpy only)."""
        bank = load_bank(self.bank or None)
        if bank.sample_rate_hz != self.sample_rate_hz:
            raise InputError(
                f"the keyword bank is sampled at {bank.sample_rate_hz} Hz but the workload at {self.sample_rate_hz} Hz",
                where=self.name,
                field="sample_rate_hz",
            )
        if not (bank.indices(KIND_KEYWORD).size and bank.indices(KIND_CONFUSER, KIND_OTHER).size):
            raise InputError("the keyword bank needs keyword and non-keyword utterances", where=self.name, field="bank")
        return bank

    def summary(self) -> dict:
        bank = self.load_bank()
        return {
            **super().summary(),
            "keyword": bank.meta.get("keyword", ""),
            "bank_utterances": {k: int(np.sum(bank.kind == i)) for i, k in enumerate(("keyword", "confuser", "other"))},
            "bank_synthesiser": bank.meta.get("espeak_ng_version", ""),
        }

    # ----------------------------------------------------------------- generation
    def _generate(self, rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
        n, w = mask.shape
        bank = self.load_bank()
        out = np.empty((n, w, 1), dtype=np.float32)
        for a in range(0, n, self._chunk_windows):
            b = min(n, a + self._chunk_windows)
            out[a:b, :, 0] = self._chunk(rng, mask[a:b], bank)
        return out

    def _chunk(self, rng: np.random.Generator, mask: np.ndarray, bank) -> np.ndarray:
        n, w = mask.shape
        fs = self.sample_rate_hz
        kw = bank.indices(KIND_KEYWORD)
        conf = bank.indices(KIND_CONFUSER)
        other = bank.indices(KIND_OTHER)
        nonkw = bank.indices(KIND_CONFUSER, KIND_OTHER)
        if not conf.size:
            conf = nonkw
        if not other.size:
            other = nonkw
        ir_len = max(2, round(self.ir_s * fs))
        sp = self.speed_perturbation

        # ---- draws (fixed order, independent of the mask) ----
        kw_pick = rng.integers(0, len(kw), n)
        kw_rate = rng.uniform(1.0 - sp, 1.0 + sp, n)
        kw_u = rng.random(n)
        speech_db = rng.uniform(*self.speech_dbfs, n)
        snr = rng.uniform(*self.snr_db, n)
        quiet = rng.random(n) < self.p_quiet
        slope = rng.uniform(*self.noise_slope, n)
        white = rng.random((n, w), dtype=np.float32)  # uniform, see the room-noise notes below
        hum = rng.random(n) < self.p_hum
        hum_f0 = rng.uniform(*self.hum_hz, n)
        hum_share = rng.uniform(*self.hum_share, n)
        hum_decay = rng.uniform(0.5, 2.0, n)
        hum_amp = rng.uniform(0.3, 1.0, (_N_HUM_HARMONICS, n))
        hum_phase = rng.uniform(0.0, 2.0 * np.pi, (_N_HUM_HARMONICS, n))
        fg = rng.random(n) < self.p_foreground
        fg_conf = rng.random(n) < self.p_confuser
        fg_pick = rng.random(n)
        fg_rate = rng.uniform(1.0 - sp, 1.0 + sp, n)
        fg_u = rng.random(n)
        fg_rel = rng.uniform(*self.foreground_rel_db, n)
        babble = rng.random(n) < self.p_babble
        n_babble = rng.integers(self.babble_words[0], self.babble_words[1] + 1, n)
        b_pick = rng.integers(0, len(nonkw), (_BABBLE_SLOTS, n))
        b_u = rng.random((_BABBLE_SLOTS, n))
        b_rel = rng.uniform(*self.babble_rel_db, n)
        b_jit = rng.uniform(-3.0, 3.0, (_BABBLE_SLOTS, n))
        reverb = rng.random(n) < self.p_reverb
        t60 = rng.uniform(*self.t60_s, n)
        drr = rng.uniform(*self.drr_db, n)
        pre_delay = rng.uniform(0.002, 0.010, n)
        tail = rng.standard_normal((n, ir_len), dtype=np.float32)
        mic = rng.random((n, w), dtype=np.float32)

        speech_rms = 10.0 ** (speech_db / 20.0)

        # ---- stationary room noise: coloured noise + hum, built as one spectrum ----
        # White sources are uniform draws (drawing uniforms is about three times faster than
        # normals): the spectral shaping sums many of them, so the room noise is close to
        # Gaussian, and the self-noise, 17 dB or more under any room noise, only needs to be white.
        # Noise and hum are circular over the window (an FFT of the window length), so their
        # RMS follows exactly from Parseval's theorem; hum harmonics sit on the FFT bins nearest
        # to k x f0 (1-Hz bins for a 1-s window).
        nb = w // 2 + 1
        f = np.fft.rfftfreq(w, 1.0 / fs).astype(np.float32)
        shape = (np.maximum(f, np.float32(20.0)) / np.float32(1000.0))[None, :] ** (-0.5 * slope[:, None]).astype(
            np.float32
        )
        shape[:, 0] = 0.0  # no DC (also removes the mean of the uniform draws)
        spec = np.fft.rfft(white, axis=1) * shape
        spec /= np.sqrt(_parseval(spec, w))[:, None]
        rows = np.flatnonzero(hum & ~quiet)
        if rows.size:
            harm = np.arange(1, _N_HUM_HARMONICS + 1)[:, None]
            bins = np.rint(harm * hum_f0[rows] * w / fs).astype(np.int64)  # (H, rows)
            ok = (bins >= 1) & (bins < nb - 1)  # not DC, not the Nyquist bin
            amp = hum_amp[:, rows] * harm ** -hum_decay[rows] * ok
            tone = np.zeros((rows.size, nb), dtype=np.complex64)
            r_idx = np.broadcast_to(np.arange(rows.size), bins.shape)
            tone[r_idx[ok], bins[ok]] = (amp * np.exp(1j * hum_phase[:, rows]))[ok]
            tone /= np.sqrt(_parseval(tone, w))[:, None]
            sh = hum_share[rows, None].astype(np.float32)
            mix = np.sqrt(1.0 - sh) * spec[rows] + np.sqrt(sh) * tone
            spec[rows] = mix / np.sqrt(_parseval(mix, w))[:, None]
        noise_rms = np.where(quiet, 0.0, speech_rms * 10.0 ** (-snr / 20.0)).astype(np.float32)
        spec *= noise_rms[:, None]

        # ---- keyword placement (only where the mask has an event) ----
        kw_idx = kw[kw_pick]
        kw_len = bank.length[kw_idx] / kw_rate  # in window samples
        has = mask.any(axis=1)
        first = np.argmax(mask, axis=1)
        last = w - 1 - np.argmax(mask[:, ::-1], axis=1)
        span = (last - first + 1).astype(np.float64)
        at_start, at_end = mask[:, 0], mask[:, -1]
        fits = kw_len <= span
        offset = np.where(
            fits,
            first + kw_u * (span - kw_len),
            np.where(
                at_end & ~at_start,
                first,
                np.where(at_start & ~at_end, last + 1 - kw_len, first - kw_u * (kw_len - span)),
            ),
        )
        keyword = np.zeros((n, w), dtype=np.float32)
        rows_kw = np.flatnonzero(has)
        if rows_kw.size:
            gain = speech_rms[rows_kw] / bank.rms[kw_idx[rows_kw]]
            keyword[rows_kw] = _place(bank, kw_idx[rows_kw], offset[rows_kw], kw_rate[rows_kw], w, gain)

        # ---- foreground word ----
        fg_idx = np.where(fg_conf, conf[np.minimum((fg_pick * len(conf)).astype(np.int64), len(conf) - 1)],
                          other[np.minimum((fg_pick * len(other)).astype(np.int64), len(other) - 1)])
        fg_len = bank.length[fg_idx] / fg_rate
        fg_off = np.where(fg_len <= w, fg_u * (w - fg_len), -fg_u * (fg_len - w))
        foreground = np.zeros((n, w), dtype=np.float32)
        rows_fg = np.flatnonzero(fg)
        if rows_fg.size:
            gain = speech_rms[rows_fg] * 10.0 ** (fg_rel[rows_fg] / 20.0) / bank.rms[fg_idx[rows_fg]]
            foreground[rows_fg] = _place(bank, fg_idx[rows_fg], fg_off[rows_fg], fg_rate[rows_fg], w, gain)

        # ---- TV / babble: integer offsets from -length to the window end, no speed change ----
        babble_sig = np.zeros((n, w), dtype=np.float32)
        for j in range(_BABBLE_SLOTS):
            rows_b = np.flatnonzero(babble & (n_babble > j))
            if not rows_b.size:
                continue
            idx = nonkw[b_pick[j, rows_b]]
            length = bank.length[idx]
            off = np.floor(b_u[j, rows_b] * (w + length)) - length
            gain = speech_rms[rows_b] * 10.0 ** ((b_rel[rows_b] + b_jit[j, rows_b]) / 20.0) / bank.rms[idx]
            babble_sig[rows_b] += _place(bank, idx, off, np.ones(rows_b.size), w, gain, integer=True)

        # ---- reverberation: h = delta + g * tail, tail = decaying noise with unit energy ----
        # keyword and foreground word: linear convolution (the tail runs past the window end and
        # is cut there); babble: circular over the window (continuous TV sound: the tail of
        # speech before the window rings into its start), added to the noise spectrum.
        rows_b = np.flatnonzero(babble)
        if rows_b.size:
            spec[rows_b] += np.fft.rfft(babble_sig[rows_b], axis=1)
        rows_r = np.flatnonzero(reverb)
        if rows_r.size:
            tt = (np.arange(ir_len) / fs).astype(np.float32)[None, :]
            decay = (np.log(1000.0) / t60[rows_r, None]).astype(np.float32)  # amplitude -60 dB at T60
            h = tail[rows_r] * np.exp(-decay * tt)
            h[tt < pre_delay[rows_r, None]] = 0.0
            h /= np.sqrt(np.sum(h * h, axis=1, keepdims=True)) + np.float32(1e-30)
            g_near = (10.0 ** (-drr / 20.0)).astype(np.float32)
            g_far = (10.0 ** (-(drr - 6.0) / 20.0)).astype(np.float32)
            pos = np.full(n, -1)
            pos[rows_r] = np.arange(rows_r.size)
            nfft = _next_smooth(w + ir_len - 1)
            hf = np.fft.rfft(h, nfft, axis=1)
            for sig, active in ((keyword, has), (foreground, fg)):
                sel = np.flatnonzero(active & reverb)
                if sel.size:
                    wet = np.fft.irfft(np.fft.rfft(sig[sel], nfft, axis=1) * hf[pos[sel]], nfft, axis=1)[:, :w]
                    sig[sel] += g_near[sel, None] * wet
            sel = np.flatnonzero(babble & reverb)
            if sel.size:
                bf = np.fft.rfft(babble_sig[sel], axis=1)
                spec[sel] += g_far[sel, None] * bf * np.fft.rfft(h[pos[sel]], w, axis=1)

        background = np.fft.irfft(spec, w, axis=1)
        # microphone self-noise; uniform draws in [0, 1): variance 1/12
        mic_sd = np.float32(10.0 ** (self.mic_noise_dbfs / 20.0) * np.sqrt(12.0))
        background += (mic - np.float32(0.5)) * mic_sd
        x = background + np.where(mask, keyword, foreground)
        # 16-bit ADC: clip to full scale, quantise
        return np.clip(np.rint(x * 32768.0), -32768.0, 32767.0) / np.float32(32768.0)


def _parseval(spec: np.ndarray, w: int) -> np.ndarray:
    """Mean square over the window of irfft(spec, w), per row (Parseval's theorem)."""
    p = 2.0 * np.sum(spec.real**2 + spec.imag**2, axis=1, dtype=np.float64) - np.abs(spec[:, 0]) ** 2
    if w % 2 == 0:
        p -= np.abs(spec[:, -1]) ** 2
    return (p / (w * w)).astype(np.float32) + np.float32(1e-30)


def _place(bank, idx, offset, rate, w, gain, integer: bool = False) -> np.ndarray:
    """Utterances bank[idx] placed with their sample 0 at window sample `offset`, played at `rate`
    (utterance samples per window sample), scaled by `gain`: float32 (len(idx), w)."""
    k = np.arange(w, dtype=np.float32)
    start = bank.start[idx][:, None]
    length = bank.length[idx][:, None]
    a = bank.audio
    if integer:
        pos = (k[None, :] - offset.astype(np.float32)[:, None]).astype(np.intp)
        valid = (pos >= 0) & (pos < length)
        y = a[np.where(valid, start + pos, 0)]  # index 0 holds a zero sample
    else:
        # float32 positions: < 2e-3 sample error over 16,000 samples
        pos = (k[None, :] - offset.astype(np.float32)[:, None]) * rate.astype(np.float32)[:, None]
        valid = (pos >= 0) & (pos < length - 1)
        i0 = np.floor(pos)
        frac = pos - i0
        i = np.where(valid, start + i0.astype(np.intp), 0)  # indices 0 and 1 hold zero samples
        y = a[i] * (1.0 - frac) + a[i + 1] * frac
    return y * gain.astype(np.float32)[:, None]
