"""wearable.ecg: single-lead ECG from a chest-strap / patch wearable; event: arrhythmia episode.

One channel, "ecg", in mV, 250 samples/s (an assumption within the range wearable ECGs use;
the Polar H10 chest strap, for one, streams ECG at 130 Hz), windows of 1024 samples (4.1 s).
Raw, each sample is sent as int16.

Heartbeats -- Gaussian-wave PQRST model. McSharry, Clifford, Tarassenko and Smith, "A dynamical
model for generating synthetic electrocardiogram signals", IEEE Trans. Biomed. Eng. 50(3)
289-294 (2003) (ECGSYN; neurokit2's `ecg_simulate` implements it) move a point round a limit
cycle and push the ECG towards a sum of five Gaussian waves P, Q, R, S, T placed at fixed
phases; without the small baseline-relaxation term its z-equation integrates in closed form to

    z(theta) = (1 / omega) sum_i a_i b_i^2 exp(-(theta - theta_i)^2 / (2 b_i^2)),

a sum of Gaussians in the phase of the beat (omega: angular speed, 2 pi / RR). This module
uses that closed form directly in time (each wave a Gaussian centred at a fixed offset from the
R peak), which is what makes it fast enough to vectorise over 100k windows: every beat of a
window shares one template, and the ECG is an impulse train (beat times, per-beat amplitudes)
convolved with the templates via FFT. Wave amplitudes and timings start from ECGSYN's Table 1
(at 60 bpm: P -167 ms, Q -42 ms, S +42 ms, T +250 ms relative to R; a_i b_i^2 = 0.075, -0.05,
0.30, -0.075, 0.12) and vary per window (subject and lead differences); the QRS is kept
narrow (80-110 ms, below the 120 ms that marks abnormal ventricular conduction: Surawicz et
al., AHA/ACCF/HRS recommendations for the standardization and interpretation of the ECG, part
III, Circulation 119:e235-e240, 2009), and the T wave moves with the RR interval as QT does
(Bazett, Heart 7:353-370, 1920: QT proportional to sqrt(RR)).

Rhythm (normal windows): sinus rhythm at 48-140 bpm; heart-rate variability as in ECGSYN's RR
model -- a high-frequency component at the breathing rate (respiratory sinus arrhythmia) and a
low-frequency one at 0.1 Hz (Mayer waves) -- plus a slow trend (rate changing during activity)
and beat-to-beat jitter. Strong sinus arrhythmia (RR modulated by up to +-12 %) is the main
confounder of AF detection.

Noise and artefacts (the components of the MIT-BIH Noise Stress Test Database: baseline wander,
muscle artefact, electrode motion -- Moody, Muldrow and Mark, "A noise stress test for
arrhythmia detectors", Computers in Cardiology 11:381-384, 1984):
- baseline wander: a respiration sinusoid plus slow drift and a DC offset;
- EMG (muscle) noise: band-limited Gaussian noise, 15-100 Hz, per-window level, with bursts;
- powerline interference at 50 or 60 Hz;
- electrode-motion artefacts (30 % of windows): smooth bumps 30-300 ms wide and baseline steps
  with an AC-coupling recovery -- a 60-ms bump looks much like a wide ectopic QRS;
- narrow spikes (12 % of windows; cable taps, ESD) that look like an extra narrow beat;
- amplitude and lead variation: R amplitude 0.4-2.2 mV, T polarity, and 10 % of windows with
  an inverted lead (QRS mostly negative, e.g. a patch or watch worn the other way round).

Event (positive class) -- an arrhythmia episode, one of three kinds per window (the window's
kind is drawn whether or not its mask has any True sample):
- ventricular ectopy (40 %): premature ventricular contractions in a bigeminy / trigeminy /
  quadrigeminy pattern (every 2nd / 3rd / 4th beat, some skipped). A PVC comes early
  (coupling 45-75 % of the RR interval), has no P wave, a wide bizarre QRS (Gaussian width
  25-40 ms: 120-200 ms long, >= 120 ms per Surawicz 2009) with a T wave of opposite polarity,
  and is followed by a full compensatory pause: the sinus node keeps its rhythm, the sinus
  P wave that falls in the PVC is not conducted, the next beat comes on the sinus grid;
- supraventricular ectopy (25 %): premature atrial contractions in the same patterns, earlier
  by 15-40 % of the RR interval, with an abnormal (smaller, flat or inverted) P' wave and a
  normal narrow QRS; the sinus node is reset (non-compensatory pause);
- atrial fibrillation (35 %): no P waves, fibrillatory waves at 4-9 Hz (dominant atrial
  frequency range in AF: Bollmann et al., Europace 8:911-926, 2006), modelled as a sawtooth-like
  sum of three harmonics with frequency and amplitude modulation (Stridh and Sornmo, IEEE Trans.
  Biomed. Eng. 48:105-111, 2001), peak 20-150 uV; an irregularly irregular ventricular response,
  RR intervals independent log-normal draws with coefficient of variation 0.12-0.35 (Tateno
  and Glass, Med. Biol. Eng. Comput. 39:664-671, 2001, separate AF from sinus rhythm by the
  variability of RR and delta-RR) at a mean rate of 60-150 bpm.

A beat belongs to the event when its waveform starts (P onset, PVC onset or QRS onset) on a
masked sample; waveforms are truncated before that point, so samples before the event are
untouched. Compensatory pauses, sinus resets and the last T wave can reach past the end of the
mask, as they would. Weak evidence -- a quadrigeminy whose mask covers one second, AF with a
low RR variability and fine f-waves under muscle noise -- and the confounders keep a small
model's accuracy clearly below 100 %.

Real recordings: `mitdb_excerpts()` loads two excerpts of the MIT-BIH Arrhythmia Database
shipped in iotsim/signals/data/ (provenance and licence in ecg_mitdb_excerpts.md), and
`real_windows()` cuts them into windows of this workload; see that file for what their labels
are and are not.

All numbers not attributed to a source above or in a comment are assumptions for a consumer
wearable, collected as fields of `WearableEcg` so a scenario can change them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from iotsim.errors import InputError
from iotsim.signals.base import Workload, log_uniform

DATA_DIR = Path(__file__).resolve().parent / "data"
EXCERPTS_FILE = DATA_DIR / "ecg_mitdb_excerpts.npz"
NORMAL_208_S = 10.0  # record 208 excerpt: normal sinus rhythm up to here (see real_windows)

# Beat kinds in the rhythm simulation.
_SINUS, _AF_BEAT, _PVC, _PAC = 0, 1, 2, 3
# Event kinds (per window).
EVENT_KINDS = ("pvc", "pac", "af")

# Template support around the R peak (s). A beat's waveform starts at most this early.
_P_PRE_S = 0.40  # P wave (centre <= 225 ms before R, sd <= 28 ms: > 6 sd)
_QRS_PRE_S = 0.12  # QRS-T without P (AF beats; Q centre >= -32 ms, sd <= 12 ms: > 7 sd)
_PVC_PRE_S = 0.25  # PVC complex (centre at 0, sd <= 40 ms: > 6 sd)
_POST_S = 0.70  # end of the T wave (PVC T wave: centre <= 0.38 s, width <= 0.09 s)


@dataclass(frozen=True)
class WearableEcg(Workload):
    name: str = "wearable.ecg"
    channels: tuple[str, ...] = ("ecg",)
    units: tuple[str, ...] = ("mV",)
    window_samples: int = 1024
    sample_rate_hz: float = 250.0
    bytes_per_sample: int = 2  # int16 (e.g. 2.5 uV/LSB)
    # Scenario defaults (assumptions): a paroxysmal episode per wearer every ~2 days, 15 min.
    default_events_per_day: float = 0.5
    default_event_duration_s: float = 900.0
    class_names: tuple[str, ...] = ("normal", "arrhythmia")
    positive_class: int = 1
    description: str = (
        "single-lead wearable ECG, 1024 samples at 250 Hz (4.1 s), mV; event: arrhythmia "
        "episode (PVC bigeminy/trigeminy, frequent PACs or atrial fibrillation)"
    )

    # --- sinus rhythm and heart-rate variability ---
    heart_rate_bpm: tuple[float, float] = (48.0, 140.0)
    respiration_hz: tuple[float, float] = (0.15, 0.4)  # 9-24 breaths/min
    rsa_fraction: tuple[float, float] = (0.0, 0.12)  # RR modulation by breathing, +- fraction of RR
    lf_fraction: tuple[float, float] = (0.0, 0.04)  # 0.1 Hz Mayer-wave RR modulation (ECGSYN's LF peak)
    lf_hz: float = 0.1  # McSharry et al. 2003: LF spectral peak of the RR model at 0.1 Hz
    rate_trend_per_s: float = 0.02  # sd of the relative RR change per second (activity)
    rr_jitter: float = 0.01  # sd of beat-to-beat RR jitter, relative
    # --- morphology (per window; ECGSYN Table 1 as the centre, assumptions for the spread) ---
    r_amplitude_mv: tuple[float, float] = (0.4, 2.2)  # log-uniform
    pr_interval_s: tuple[float, float] = (0.12, 0.20)  # normal PR interval
    p_amplitude: tuple[float, float] = (0.06, 0.2)  # relative to R
    q_amplitude: tuple[float, float] = (0.0, 0.25)
    s_amplitude: tuple[float, float] = (0.05, 0.5)
    t_amplitude: tuple[float, float] = (0.1, 0.45)
    p_inverted_t: float = 0.15  # T wave negative in this lead
    p_inverted_lead: float = 0.1
    amplitude_modulation: tuple[float, float] = (0.0, 0.15)  # breathing modulates QRS amplitude
    # --- noise and artefacts ---
    dc_offset_mv: float = 0.5  # uniform +-
    baseline_mv: tuple[float, float] = (0.01, 0.4)  # respiratory baseline wander, log-uniform
    drift_mv: tuple[float, float] = (0.01, 0.3)  # slow drift, log-uniform
    emg_mv: tuple[float, float] = (0.004, 0.08)  # RMS, log-uniform
    emg_band_hz: tuple[float, float] = (15.0, 100.0)
    p_emg_burst: float = 0.2
    emg_burst_gain: tuple[float, float] = (2.0, 8.0)
    powerline_mv: tuple[float, float] = (0.001, 0.05)  # log-uniform
    p_powerline_60hz: float = 0.5  # else 50 Hz
    p_motion: float = 0.3
    motion_mv: tuple[float, float] = (0.1, 1.5)  # log-uniform
    motion_width_s: tuple[float, float] = (0.03, 0.3)  # log-uniform
    p_spike: float = 0.12
    spike_mv: tuple[float, float] = (0.2, 1.5)  # log-uniform
    # --- events ---
    event_kind_p: tuple[float, float, float] = (0.4, 0.25, 0.35)  # probabilities of EVENT_KINDS
    ectopy_period_p: tuple[float, float, float] = (0.4, 0.35, 0.25)  # every 2nd / 3rd / 4th beat
    ectopy_keep: tuple[float, float] = (0.6, 1.0)  # fraction of scheduled ectopic beats that occur
    pvc_coupling: tuple[float, float] = (0.45, 0.75)  # fraction of the sinus RR interval
    pvc_width_s: tuple[float, float] = (0.025, 0.04)  # Gaussian sd of the main QRS deflection
    pvc_amplitude: tuple[float, float] = (1.0, 2.5)  # relative to R
    pac_coupling: tuple[float, float] = (0.6, 0.85)
    af_rate_bpm: tuple[float, float] = (60.0, 150.0)
    af_rr_cv: tuple[float, float] = (0.12, 0.35)
    af_min_rr_s: float = 0.3  # AV-node refractoriness (assumption)
    f_wave_hz: tuple[float, float] = (4.0, 9.0)  # Bollmann et al. 2006
    f_wave_mv: tuple[float, float] = (0.02, 0.15)  # log-uniform

    _chunk_windows: int = 2048  # windows per internal step (bounds temporary memory; fixes the draw order)
    _pre_s: float = 1.2  # simulated time before the window (beats whose T wave reaches into it)
    _post_s: float = 0.45  # and after it (beats whose P wave reaches back into it)

    # ------------------------------------------------------------------ generation
    def _generate(self, rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
        n, w = mask.shape
        out = np.empty((n, w, 1), dtype=np.float32)
        for a in range(0, n, self._chunk_windows):
            b = min(n, a + self._chunk_windows)
            out[a:b, :, 0] = self._chunk(rng, mask[a:b])
        return out

    def _grid(self) -> tuple[int, int, int, int]:
        """(pre samples, grid length, template pre samples, template length)."""
        fs = self.sample_rate_hz
        pre = round(self._pre_s * fs)
        grid = pre + self.window_samples + round(self._post_s * fs)
        k_pre = int(np.ceil(_P_PRE_S * fs))
        k_len = k_pre + int(np.ceil(_POST_S * fs)) + 1
        return pre, grid, k_pre, k_len

    def _n_steps(self) -> int:
        """Beat steps needed to cover the simulated span at the fastest possible rhythm."""
        window_s = self.window_samples / self.sample_rate_hz
        span = self._pre_s + window_s + self._post_s + 1.3 * 60.0 / self.heart_rate_bpm[0]
        # a step advances the sinus grid by >= 0.6 RR (clipped modulation); a PAC step by a
        # coupling of that, but at most every second step; an AF step by >= af_min_rr_s
        rr_min = 0.6 * 60.0 / self.heart_rate_bpm[1]
        per_step = min(self.af_min_rr_s, rr_min * (1.0 + self.pac_coupling[0]) / 2.0)
        return int(np.ceil(span / max(per_step, 0.05))) + 2

    def _chunk(self, rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
        n, w = mask.shape
        fs = self.sample_rate_hz
        two_pi = 2.0 * np.pi
        pre, grid, k_pre, k_len = self._grid()
        # circular convolution: wrapped template tails land before the window (index < pre)
        nfft = _fft_size(grid + k_len - pre + 1)
        steps = self._n_steps()
        dur = w / fs

        # ---- draws (fixed order and sizes, independent of the mask) ----
        hr = rng.uniform(*self.heart_rate_bpm, n)
        f_resp = rng.uniform(*self.respiration_hz, n)
        ph_resp = rng.uniform(0.0, two_pi, n)
        rsa = rng.uniform(*self.rsa_fraction, n)
        lf = rng.uniform(*self.lf_fraction, n)
        ph_lf = rng.uniform(0.0, two_pi, n)
        trend = rng.normal(0.0, self.rate_trend_per_s, n)
        jitter = rng.standard_normal((n, steps))
        first = rng.random(n)
        amp_jitter = rng.standard_normal((n, steps))
        # morphology
        r_amp = log_uniform(rng, *self.r_amplitude_mv, n)
        pr = rng.uniform(*self.pr_interval_s, n)
        p_rel = rng.uniform(*self.p_amplitude, n)
        p_w = rng.uniform(0.018, 0.028, n)  # P wave sd: P lasts ~4.5 sd = 80-125 ms
        q_rel = rng.uniform(*self.q_amplitude, n)
        s_rel = rng.uniform(*self.s_amplitude, n)
        r_w = rng.uniform(0.008, 0.012, n)  # R sd: QRS (Q..S) 80-110 ms
        qs_off = rng.uniform(0.022, 0.032, n)  # Q and S centres from R
        t_rel = rng.uniform(*self.t_amplitude, n)
        t_inv = rng.random(n) < self.p_inverted_t
        t_off60 = rng.uniform(0.22, 0.3, n)  # T peak after R at 60 bpm (ECGSYN: 0.25 s)
        t_w = rng.uniform(0.045, 0.07, n)  # T sd (ECGSYN b_T = 0.4 rad = 64 ms at 60 bpm)
        lead_inv = rng.random(n) < self.p_inverted_lead
        am = rng.uniform(*self.amplitude_modulation, n)
        # events
        kind = rng.choice(3, size=n, p=np.asarray(self.event_kind_p) / np.sum(self.event_kind_p))
        period = rng.choice([2, 3, 4], size=n, p=np.asarray(self.ectopy_period_p) / np.sum(self.ectopy_period_p))
        phase = rng.integers(0, 4, n)
        keep = rng.uniform(*self.ectopy_keep, n)
        u_keep = rng.random((n, steps))
        c_pvc = rng.uniform(*self.pvc_coupling, (n, steps))
        c_pac = rng.uniform(*self.pac_coupling, (n, steps))
        pac_p = rng.uniform(-0.6, 0.5, n)  # P' relative to the sinus P: smaller, flat or inverted
        pvc_w = rng.uniform(*self.pvc_width_s, n)
        pvc_amp = rng.uniform(*self.pvc_amplitude, n)
        pvc_sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
        pvc_notch = rng.uniform(0.2, 0.6, n)  # second, opposite deflection (bizarre, notched QRS)
        pvc_notch_off = rng.uniform(0.03, 0.06, n)
        pvc_t = rng.uniform(0.2, 0.5, n)
        pvc_t_off = rng.uniform(0.26, 0.38, n)
        pvc_t_w = rng.uniform(0.06, 0.09, n)
        af_rr = 60.0 / rng.uniform(*self.af_rate_bpm, n)
        af_cv = rng.uniform(*self.af_rr_cv, n)
        af_z = rng.standard_normal((n, steps))
        f0 = rng.uniform(*self.f_wave_hz, n)
        f_amp = log_uniform(rng, *self.f_wave_mv, n)
        f_fm = rng.uniform(0.1, 0.5, n)  # frequency deviation, Hz
        f_fm_hz = rng.uniform(0.05, 0.2, n)
        f_am = rng.uniform(0.0, 0.4, n)
        f_ph = rng.uniform(0.0, two_pi, (3, n))
        # noise
        dc = rng.uniform(-self.dc_offset_mv, self.dc_offset_mv, n)
        bw = log_uniform(rng, *self.baseline_mv, n)
        drift = log_uniform(rng, *self.drift_mv, n)
        drift_f = rng.uniform(0.03, 0.3, (2, n))
        drift_ph = rng.uniform(0.0, two_pi, (2, n))
        emg = log_uniform(rng, *self.emg_mv, n)
        burst = rng.random(n) < self.p_emg_burst
        burst_gain = rng.uniform(*self.emg_burst_gain, n)
        burst_t = rng.uniform(0.0, dur, n)
        burst_len = rng.uniform(0.3, 1.5, n)
        emg_re_im = rng.standard_normal((2, n, w // 2 + 1), dtype=np.float32)  # EMG noise, as its spectrum
        pl = log_uniform(rng, *self.powerline_mv, n)
        pl_60 = rng.random(n) < self.p_powerline_60hz
        pl_ph = rng.uniform(0.0, two_pi, n)
        motion = rng.random(n) < self.p_motion
        n_motion = rng.integers(1, 4, n)
        mo_t = rng.uniform(-0.2, dur + 0.2, (3, n))
        mo_amp = log_uniform(rng, *self.motion_mv, 3 * n).reshape(3, n) * np.where(rng.random((3, n)) < 0.5, -1.0, 1.0)
        mo_w = log_uniform(rng, *self.motion_width_s, 3 * n).reshape(3, n)
        mo_kind = rng.integers(0, 3, (3, n))  # bump, biphasic bump, baseline step
        spike = rng.random(n) < self.p_spike
        n_spike = rng.integers(1, 3, n)
        sp_t = rng.uniform(0.0, dur, (2, n))
        sp_amp = log_uniform(rng, *self.spike_mv, 2 * n).reshape(2, n) * np.where(rng.random((2, n)) < 0.7, 1.0, -1.0)
        sp_w = rng.uniform(0.002, 0.006, (2, n))

        # ---- rhythm: beat times and kinds, step by step, vectorised over windows ----
        rr0 = 60.0 / hr
        pre_s = pre / fs
        lead_in = k_pre / fs  # earliest beat whose template fits on the grid
        t_last = -pre_s + lead_in - first * rr0  # a sinus beat before the grid: timing anchor only
        is_af, is_pvc, is_pac = kind == 2, kind == 0, kind == 1
        sched_phase = (phase % period).astype(np.int64)
        af_sig = np.sqrt(np.log1p(af_cv**2))
        beat_t = np.full((n, steps), np.nan)
        beat_kind = np.zeros((n, steps), dtype=np.int8)
        blocked_p = np.full((n, steps), np.nan)  # sinus P waves not conducted (under a PVC)
        rows = np.arange(n)

        def masked(t):
            idx = np.clip(np.floor(t * fs).astype(np.int64), 0, w - 1)
            return mask[rows, idx]

        for k in range(steps):
            t = t_last
            mod = (
                1.0
                + rsa * np.sin(two_pi * f_resp * t + ph_resp)
                + lf * np.sin(two_pi * self.lf_hz * t + ph_lf)
                + trend * t
                + self.rr_jitter * jitter[:, k]
            )
            rr = rr0 * np.clip(mod, 0.6, 1.6)
            sin_c = t + rr
            sched = ((k + sched_phase) % period == 0) & (u_keep[:, k] < keep)
            pvc_c = t + c_pvc[:, k] * rr
            pac_c = t + c_pac[:, k] * rr
            af_c = t + np.maximum(af_rr * np.exp(af_sig * af_z[:, k] - 0.5 * af_sig**2), self.af_min_rr_s)
            m_pvc = is_pvc & sched & masked(pvc_c - _PVC_PRE_S)
            m_pac = is_pac & sched & masked(pac_c - _P_PRE_S)
            # AF replaces the sinus beat only if that beat's P wave would start inside the episode
            # (a beat already begun before the event stays as it was); when the AF candidate's
            # QRS would start outside the episode, the sinus beat is conducted without its P wave
            af_now = is_af & masked(sin_c - _P_PRE_S)
            m_af = af_now & masked(af_c - _QRS_PRE_S)
            sin_no_p = af_now & ~m_af
            bt = np.where(m_af, af_c, np.where(m_pvc, pvc_c, np.where(m_pac, pac_c, sin_c)))
            bk = np.where(m_af | sin_no_p, _AF_BEAT, np.where(m_pvc, _PVC, np.where(m_pac, _PAC, _SINUS)))
            beat_t[:, k] = bt
            beat_kind[:, k] = bk
            blocked_p[:, k] = np.where(m_pvc, sin_c, np.nan)
            # PVC: the sinus node keeps its rhythm (full compensatory pause); PAC, AF: reset
            t_last = np.where(m_pvc, sin_c, bt)

        # per-beat amplitude: breathing modulation and 3 % jitter
        def beat_gain(t):
            return 1.0 + am[:, None] * np.sin(two_pi * f_resp[:, None] * t + ph_resp[:, None]) + 0.03 * amp_jitter

        gain = beat_gain(np.nan_to_num(beat_t))
        gain_blocked = beat_gain(np.nan_to_num(blocked_p))

        # ---- beat templates on tau = (j - k_pre) / fs: each wave A exp(-(tau - mu)^2 / (2 sd^2)),
        # zero before the template's onset (more than 6 sd before every wave's centre) ----
        tau = ((np.arange(k_len) - k_pre) / fs).astype(np.float32)[None, :]

        def waves(onset_s, *specs):
            out = np.zeros((len(specs[0][0]), k_len), dtype=np.float32)
            for amp, mu, sd in specs:
                x = (tau - np.asarray(mu, np.float32)[:, None]) / np.asarray(sd, np.float32)[:, None]
                out += np.asarray(amp, np.float32)[:, None] * np.exp(np.float32(-0.5) * x * x)
            out[:, tau[0] < -onset_s] = 0.0
            return out

        rr_mean = 60.0 / hr
        zero = np.zeros(n)
        # PR interval = P onset (peak - 2 sd) to QRS onset (R - Q offset - 2 sd)
        p_mu = -(pr + qs_off + 2.0 * r_w - 2.0 * p_w)
        t_mu = t_off60 * np.sqrt(rr_mean)  # Bazett: QT ~ sqrt(RR)
        t_sd = t_w * np.sqrt(rr_mean)
        p_wave = (p_rel * r_amp, p_mu, p_w)
        # sinus beat: P + QRS + T. Other beats are this template plus a P-wave correction (AF:
        # -P, PAC: (P' - P)), so windows of plain sinus rhythm need one convolution only. The
        # QRS-T waves are < 1e-10 of their peak before -_QRS_PRE_S, so an AF beat (sinus - P)
        # starts at its QRS onset.
        tmpl_s = waves(
            _P_PRE_S,
            p_wave,
            (r_amp, zero, r_w),
            (-q_rel * r_amp, -qs_off, r_w),
            (-s_rel * r_amp, qs_off, 1.2 * r_w),
            (np.where(t_inv, -1.0, 1.0) * t_rel * r_amp, t_mu, t_sd),
        )

        # ---- impulse trains (linear split between neighbouring samples) ----
        def train(times, weights, r):
            pos = (np.nan_to_num(times[r], nan=-1e6) + pre_s) * fs - k_pre
            ok = np.isfinite(times[r]) & (pos >= 0) & (pos < grid)
            i0 = np.floor(np.where(ok, pos, 0.0)).astype(np.int64)
            frac = np.where(ok, pos, 0.0) - i0
            wgt = np.where(ok, weights[r], 0.0)
            flat = np.arange(len(r))[:, None] * nfft + i0
            m = len(r) * nfft
            out = np.bincount(flat.ravel(), weights=(wgt * (1.0 - frac)).ravel(), minlength=m)
            out += np.bincount((flat + 1).ravel(), weights=(wgt * frac).ravel(), minlength=m)
            return out[:m].reshape(len(r), nfft)

        s_weight = np.where(beat_kind != _PVC, 1.0, 0.0) * gain
        spec = np.fft.rfft(train(beat_t, s_weight, rows), axis=1) * np.fft.rfft(tmpl_s, nfft, axis=1)
        # P-wave corrections: AF beats lose the P wave, PACs have P' = pac_p x P, and a PVC leaves
        # the blocked sinus P wave in place
        p_corr = np.where(beat_kind == _AF_BEAT, -1.0, np.where(beat_kind == _PAC, pac_p[:, None] - 1.0, 0.0)) * gain
        r = np.flatnonzero((p_corr != 0.0).any(axis=1) | np.isfinite(blocked_p).any(axis=1))
        if r.size:
            tmpl_p = waves(_P_PRE_S, tuple(v[r] for v in p_wave))
            p_train = train(beat_t, p_corr, r) + train(blocked_p, gain_blocked, r)
            spec[r] += np.fft.rfft(p_train, axis=1) * np.fft.rfft(tmpl_p, nfft, axis=1)
        has_pvc = np.flatnonzero((beat_kind == _PVC).any(axis=1))
        if has_pvc.size:
            r = has_pvc
            va = pvc_amp[r] * pvc_sign[r] * r_amp[r]
            tmpl_v = waves(
                _PVC_PRE_S,
                (va, zero[r], pvc_w[r]),
                (-va * pvc_notch[r], pvc_notch_off[r], pvc_w[r]),
                (-va * pvc_t[r], pvc_t_off[r] * np.sqrt(rr_mean[r]) ** 0.5, pvc_t_w[r]),
            )
            v_weight = np.where(beat_kind == _PVC, 1.0, 0.0) * gain
            spec[r] += np.fft.rfft(train(beat_t, v_weight, r), axis=1) * np.fft.rfft(tmpl_v, nfft, axis=1)
        heart = np.fft.irfft(spec, nfft, axis=1)[:, pre : pre + w].astype(np.float32)
        heart *= np.where(lead_inv, -1.0, 1.0).astype(np.float32)[:, None]
        ecg = heart

        # ---- per-sample components, float32 ----
        f32 = np.float32

        def col(v):
            return np.asarray(v, dtype=f32)[:, None]

        t = (np.arange(w) / fs).astype(f32)[None, :]  # (1, w)
        tp = f32(two_pi)

        # AF f-waves on masked samples (only windows that have them are computed)
        sel = np.flatnonzero(is_af & mask.any(axis=1))
        if sel.size:
            theta = tp * col(f0[sel]) * t + col(f_fm[sel] / f_fm_hz[sel]) * np.sin(tp * col(f_fm_hz[sel]) * t)
            fw = np.zeros((sel.size, w), dtype=f32)
            for h in range(3):
                fw -= np.sin(f32(h + 1) * theta + col(f_ph[h][sel])) / f32(h + 1)
            # 0.7: the three-harmonic sawtooth peaks at ~1.44, so the f-wave peak is ~f_amp
            env = col(0.7 * f_amp[sel]) * (1.0 + col(f_am[sel]) * np.sin(tp * f32(0.3) * t + col(f_ph[0][sel])))
            ecg[sel] += np.where(mask[sel], env * fw, f32(0.0))

        # baseline wander (breathing + drift), DC offset, powerline
        ecg += col(dc) + col(bw) * np.sin(tp * col(f_resp) * t + col(ph_resp))
        for j in range(2):
            ecg += col(drift / np.sqrt(2.0)) * np.sin(tp * col(drift_f[j]) * t + col(drift_ph[j]))
        ecg += col(pl) * np.sin(tp * col(np.where(pl_60, 60.0, 50.0)) * t + col(pl_ph))

        # EMG: white noise shaped to the EMG band, unit RMS, per-window level and bursts
        f = np.fft.rfftfreq(w, 1.0 / fs)
        lo, hi = self.emg_band_hz
        shape = (f / lo) / np.sqrt(1.0 + (f / lo) ** 2) / np.sqrt(1.0 + (f / hi) ** 4)
        shape /= np.sqrt((np.sum(shape**2) * 2.0 - shape[0] ** 2 - shape[-1] ** 2) / w)  # Parseval: unit RMS
        # the DFT of white unit-variance noise: independent complex Gaussian bins of variance w
        # (real at DC and Nyquist), drawn directly
        spec_n = (emg_re_im[0] + 1j * emg_re_im[1]) * f32(np.sqrt(w / 2.0))
        spec_n[:, 0] = emg_re_im[0][:, 0] * f32(np.sqrt(w))
        if w % 2 == 0:
            spec_n[:, -1] = emg_re_im[0][:, -1] * f32(np.sqrt(w))
        noise = np.fft.irfft(spec_n * shape.astype(np.complex64), w, axis=1).astype(f32)
        env = np.where(
            burst[:, None] & (t >= col(burst_t)) & (t < col(burst_t + burst_len)), col(burst_gain), f32(1.0)
        )
        ecg += col(emg) * env * noise

        # electrode motion and spikes (only the affected windows are computed)
        sel = np.flatnonzero(motion)
        if sel.size:
            art = np.zeros((sel.size, w), dtype=f32)
            for j in range(3):
                on = (j < n_motion[sel])[:, None]
                x = (t - col(mo_t[j, sel])) / col(mo_w[j, sel])
                g = np.exp(f32(-0.5) * x * x)
                kj = mo_kind[j, sel][:, None]
                # step: jump, then AC-coupling recovery with a time constant of 4 widths
                step = np.where(x > 0, np.exp(-np.maximum(x, f32(0.0)) / f32(4.0)), f32(0.0))
                shape_j = np.where(kj == 0, g, np.where(kj == 1, f32(-1.6487) * x * g, step))  # biphasic peak = 1
                art += np.where(on, col(mo_amp[j, sel]) * shape_j, f32(0.0))
            ecg[sel] += art
        sel = np.flatnonzero(spike)
        if sel.size:
            for j in range(2):
                on = (j < n_spike[sel])[:, None]
                x = (t - col(sp_t[j, sel])) / col(sp_w[j, sel])
                ecg[sel] += np.where(on, col(sp_amp[j, sel]) * np.exp(f32(-0.5) * x * x), f32(0.0))
        return ecg


def _fft_size(m: int) -> int:
    """Smallest 2^a 3^b >= m (fast FFT lengths)."""
    best = 1 << int(np.ceil(np.log2(m)))
    p3 = 1
    while p3 < best:
        p2 = p3
        while p2 < m:
            p2 *= 2
        best = min(best, p2)
        p3 *= 3
    return best


# ---------------------------------------------------------------------- real recordings
def mitdb_excerpts(path: str | Path | None = None) -> dict[str, dict]:
    """The MIT-BIH excerpts shipped with iotsim (see data/ecg_mitdb_excerpts.md).

    Returns {name: {"mv": float64 signal in mV, "fs": 360.0, "label": bool per sample or None,
    "source": str}} for "tsbuad_extract" (20.8 s, per-sample anomaly label) and
    "record208_excerpt" (5 min of record 208, no labels).
    """
    p = Path(path) if path is not None else EXCERPTS_FILE
    if not p.is_file():
        raise InputError(f"ECG excerpt file not found: {p}", where=str(p))
    with np.load(p, allow_pickle=False) as z:
        gain = float(z["adc_gain"])
        fs = float(z["fs"])
        out = {}
        for name in ("tsbuad_extract", "record208_excerpt"):
            adc = np.cumsum(z[f"{name}_diff"].astype(np.int64))  # stored as first differences
            label = z[f"{name}_label"].astype(bool) if f"{name}_label" in z.files else None
            out[name] = {
                "mv": (adc - int(z[f"{name}_baseline"])) / gain,
                "fs": fs,
                "label": label,
                "source": str(z[f"{name}_source"]),
            }
    return out


def resample(x: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Band-limited resampling of a 1-D record with numpy's FFT (ends joined by a ramp first).

    The record is trimmed so that its length maps to a whole number of output samples.
    """
    x = np.asarray(x, dtype=np.float64)
    ratio = fs_out / fs_in
    n = len(x)
    while n > 0 and abs(n * ratio - round(n * ratio)) > 1e-9:
        n -= 1
    if n < 2:
        raise InputError("record too short to resample", field="x")
    x = x[:n]
    m = round(n * ratio)
    slope = (x[-1] - x[0]) / ((n - 1) / fs_in)  # mV/s; the ramp joins the ends for the FFT's periodicity
    spec = np.fft.rfft(x - x[0] - slope * np.arange(n) / fs_in)
    keep = min(len(spec), m // 2 + 1)
    if m % 2 == 0 and keep == m // 2 + 1:
        spec[keep - 1] = spec[keep - 1].real  # the new Nyquist bin of a real signal
    y = np.fft.irfft(spec[:keep], m) * (m / n)
    return y + x[0] + slope * np.arange(m) / fs_out


def real_windows(wl: WearableEcg, stride_s: float = 0.25, path: str | Path | None = None) -> dict[str, dict]:
    """Sliding windows of the shipped MIT-BIH excerpts, resampled to the workload's rate.

    For the labelled extract each window gets y = 1 when it contains the whole labelled span
    (the annotated abnormal beat), y = 0 when it contains no labelled sample, and y = -1
    (ambiguous: only part of the span) otherwise. The unlabelled record gets y = -1 except for
    windows that end by `NORMAL_208_S` (10 s): scipy's documentation of the excerpt says "the
    first few seconds show the electrical activity of a heart in normal sinus rhythm" (its
    example plot shows 9-10.2 s) and that the first PVCs appear after second 16; taller, wider
    beats already show at 15.2-15.8 s, so only the first 10 s are taken as normal (y = 0).
    Returns {name: {"x": (n, W, 1) float32, "y": int64 (n,), "start_s": (n,)}}.
    """
    fs = wl.sample_rate_hz
    w = wl.window_samples
    step = max(1, round(stride_s * fs))
    out = {}
    for name, rec in mitdb_excerpts(path).items():
        x = resample(rec["mv"], rec["fs"], fs)
        starts = np.arange(0, len(x) - w + 1, step)
        idx = starts[:, None] + np.arange(w)
        win = x[idx].astype(np.float32)[..., None]
        t0 = starts / fs
        if rec["label"] is not None:
            lab = np.flatnonzero(rec["label"])
            lo, hi = lab.min() / rec["fs"], (lab.max() + 1) / rec["fs"]
            t1 = t0 + w / fs
            full = (t0 <= lo) & (t1 >= hi)
            none = (t1 <= lo) | (t0 >= hi)
            y = np.where(full, 1, np.where(none, 0, -1))
        else:
            y = np.where(t0 + w / fs <= NORMAL_208_S, 0, -1)
        out[name] = {"x": win, "y": y.astype(np.int64), "start_s": t0}
    return out
