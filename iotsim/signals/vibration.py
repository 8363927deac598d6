"""factory.vibration: tri-axial accelerometer on a rotating machine, outer-race bearing fault.

Channels x, y (radial) and z (axial), m/s^2. The node samples one burst of 256 samples at
3200 Hz (80 ms) and sleeps; raw, each sample is sent as int16 per axis.

Background (normal machine):
- shaft speed 20-60 Hz (1200-3600 rpm), drifting slightly within the burst;
- 1x (imbalance), 2x (misalignment) and 3x..6x harmonics with random amplitudes and phases per
  axis; 1x amplitude 0.3-3 m/s^2. For scale: ISO 10816-3 puts the zone boundaries of medium
  machines at 1.4 / 2.8 / 4.5 / 7.1 mm/s RMS velocity; 2.8 mm/s at 40 Hz is
  2*pi*40*2.8e-3*sqrt(2) = 1.0 m/s^2 peak acceleration;
- gear / blade mesh tone (half the machines): n_teeth x shaft with shaft-rate sidebands, kept
  below 1500 Hz (an anti-alias filter removes what lies above);
- load steps (amplitude change at a random instant);
- structural resonance excited by broadband machine noise, white sensor/process noise;
- random isolated shocks (20 % of bursts: 1-2 knocks from nearby machinery) that ring the same
  resonance as a bearing impact does -- the confounder that is impulsive but not periodic.

Event (positive class) -- outer-race defect of a 6205 deep-groove ball bearing: every time a
ball passes the defect an impulse excites a structural resonance, which rings down. Impacts
come at the ball-pass frequency of the outer race

    BPFO = (n_balls / 2) * f_shaft * (1 - d / D * cos(phi))

with n_balls = 9, ball diameter d = 7.94 mm (0.3126 in), pitch diameter D = 39.04 mm
(1.537 in), contact angle phi = 0: the drive-end bearing (SKF 6205-2RS JEM) of the Case
Western Reserve University Bearing Data Center test rig, whose documentation lists the outer
race defect frequency as 3.5848 x shaft speed. Intervals jitter by 1 % (random slip of rolling
elements, 1-2 % per Randall and Antoni, "Rolling element bearing diagnostics -- A tutorial",
MSSP 25 (2011) 485-520). Severity (impact peak acceleration) is log-uniform over 0.15-5 m/s^2,
so weak faults sit under the machine's own vibration and noise.

Resonance: real bearing impacts ring structural modes at 2-4 kHz and beyond; at 3200 Hz
sampling (Nyquist 1600 Hz) these cannot be represented, so the simulated structure has its
mode at 1.0-1.4 kHz with damping ratio 0.02-0.06 (assumption; corresponds to a low-cost MEMS
accelerometer whose band ends below the bearing's natural high-frequency modes, mounted on a
housing with a lower mode). Impacts are placed on the nearest sample.

Samples where the event mask is True receive impacts; the ring-down of the last impact before
the mask ends decays over the following few milliseconds (time constant 1/(zeta*2*pi*f_r),
2-8 ms), as it would physically.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iotsim.signals.base import Workload, log_uniform

# CWRU Bearing Data Center, "Apparatus & Procedures": drive-end bearing 6205-2RS JEM SKF,
# 9 balls, ball diameter 0.3126 in, pitch diameter 1.537 in.
BEARING_6205 = {"n_balls": 9, "ball_diameter_m": 7.94e-3, "pitch_diameter_m": 39.04e-3, "contact_angle_rad": 0.0}


def bpfo_hz(shaft_hz: np.ndarray | float, bearing: dict = BEARING_6205) -> np.ndarray | float:
    """Ball-pass frequency of the outer race for a shaft speed in Hz."""
    ratio = bearing["ball_diameter_m"] / bearing["pitch_diameter_m"] * np.cos(bearing["contact_angle_rad"])
    return bearing["n_balls"] / 2.0 * np.asarray(shaft_hz) * (1.0 - ratio)


@dataclass(frozen=True)
class FactoryVibration(Workload):
    name: str = "factory.vibration"
    channels: tuple[str, ...] = ("x", "y", "z")
    units: tuple[str, ...] = ("m/s^2", "m/s^2", "m/s^2")
    window_samples: int = 256
    sample_rate_hz: float = 3200.0
    bytes_per_sample: int = 2  # int16 per axis
    # Scenario defaults (assumptions): a detectable fault episode every two days per machine,
    # lasting 30 min (until the machine is stopped or the fault stops showing).
    default_events_per_day: float = 0.5
    default_event_duration_s: float = 1800.0
    class_names: tuple[str, ...] = ("normal", "outer_race_fault")
    positive_class: int = 1
    description: str = (
        "tri-axial accelerometer burst, 256 samples at 3200 Hz; event: outer-race bearing "
        "fault (impacts at BPFO ringing a 1.0-1.4 kHz resonance)"
    )

    shaft_hz: tuple[float, float] = (20.0, 60.0)
    speed_drift_sd_hz: float = 0.5  # change of shaft speed across one burst
    imbalance_m_s2: tuple[float, float] = (0.3, 3.0)  # 1x peak amplitude, log-uniform
    p_mesh: float = 0.5
    mesh_teeth: tuple[int, int] = (15, 40)
    mesh_m_s2: tuple[float, float] = (0.05, 1.0)
    mesh_max_hz: float = 1500.0
    p_load_step: float = 0.3
    load_step: float = 0.3  # relative amplitude change at a load step, +-
    noise_m_s2: tuple[float, float] = (0.02, 0.2)  # white noise RMS, log-uniform
    resonance_noise_m_s2: tuple[float, float] = (0.005, 0.08)  # broadband excitation of the mode
    p_shock: float = 0.2
    shock_m_s2: tuple[float, float] = (0.2, 4.0)
    resonance_hz: tuple[float, float] = (1000.0, 1400.0)
    damping_ratio: tuple[float, float] = (0.02, 0.06)
    fault_m_s2: tuple[float, float] = (0.15, 5.0)  # impact peak acceleration, log-uniform
    slip_sd: float = 0.01

    _chunk_windows: int = 4096  # windows per internal step (bounds temporary memory; fixes the draw order)
    _kernel_samples: int = 128
    _fft_size: int = 512
    _max_impacts: int = 24  # > 80 ms * BPFO(60 Hz * 1.02) + 1

    def bpfo_hz(self, shaft_hz: np.ndarray | float) -> np.ndarray | float:
        return bpfo_hz(shaft_hz)

    def _generate(self, rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
        n, w = mask.shape
        out = np.empty((n, w, 3), dtype=np.float32)
        for a in range(0, n, self._chunk_windows):
            b = min(n, a + self._chunk_windows)
            out[a:b] = self._chunk(rng, mask[a:b])
        return out

    def _chunk(self, rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
        n, w = mask.shape
        fs = self.sample_rate_hz
        t = np.arange(w) / fs  # (w,)
        dur = w / fs
        two_pi = 2.0 * np.pi

        # ---- draws (fixed order, independent of the mask) ----
        f0 = rng.uniform(*self.shaft_hz, n)
        df = rng.normal(0.0, self.speed_drift_sd_hz, n)
        phase0 = rng.uniform(0.0, two_pi, n)
        a1 = log_uniform(rng, *self.imbalance_m_s2, n)
        harm_rel = np.stack(
            [
                rng.uniform(0.1, 0.6, n),  # 2x
                rng.uniform(0.02, 0.3, n),  # 3x
                rng.uniform(0.0, 0.15, n),  # 4x
                rng.uniform(0.0, 0.1, n),  # 5x
                rng.uniform(0.0, 0.08, n),  # 6x
            ]
        )  # (5, n)
        harm_phase = rng.uniform(0.0, two_pi, (6, 3, n))  # harmonic, axis, window
        axis_gain = np.stack([rng.uniform(0.5, 1.0, n), rng.uniform(0.7, 1.2, n), rng.uniform(0.1, 0.5, n)])
        mesh = rng.random(n) < self.p_mesh
        teeth = rng.integers(self.mesh_teeth[0], self.mesh_teeth[1] + 1, n)
        mesh_amp = log_uniform(rng, *self.mesh_m_s2, n)
        mesh_sb = rng.uniform(0.0, 0.5, n)
        mesh_phase = rng.uniform(0.0, two_pi, (3, n))
        load = rng.random(n) < self.p_load_step
        load_at = rng.uniform(0.0, dur, n)
        load_dv = rng.uniform(-self.load_step, self.load_step, n)
        noise_sd = log_uniform(rng, *self.noise_m_s2, n)
        res_sd = log_uniform(rng, *self.resonance_noise_m_s2, n)
        shock = rng.random(n) < self.p_shock
        n_shock = rng.integers(1, 3, n)
        shock_t = rng.uniform(0.0, dur, (2, n))
        shock_amp = log_uniform(rng, *self.shock_m_s2, n)
        f_r = rng.uniform(*self.resonance_hz, n)
        zeta = rng.uniform(*self.damping_ratio, n)
        res_gain = np.stack([rng.uniform(0.3, 1.0, n), np.ones(n), rng.uniform(0.1, 0.5, n)])
        res_sign = np.where(rng.random((3, n)) < 0.5, -1.0, 1.0)
        severity = log_uniform(rng, *self.fault_m_s2, n)
        m = self._max_impacts
        intervals = 1.0 + self.slip_sd * rng.standard_normal((n, m))
        first = rng.random(n)
        imp_amp = rng.uniform(0.8, 1.2, (n, m))
        white = rng.standard_normal((3, n, w))
        res_white = rng.standard_normal((n, w))

        # ---- deterministic machine vibration ----
        # phase(t) = 2 pi (f0 t + df/(2 dur) t^2) + phase0: speed drifts linearly by df over the burst
        phase = two_pi * (f0[:, None] * t + 0.5 * (df / dur)[:, None] * t**2) + phase0[:, None]  # (n, w)
        amps = np.concatenate([np.ones((1, n)), harm_rel]) * a1  # (6, n)
        env = 1.0 + np.where(load, load_dv, 0.0)[:, None] * (t[None, :] >= load_at[:, None])
        sig = np.zeros((3, n, w))
        # sin/cos of (h+1)*phase by the angle-addition recurrence (two trig calls in total);
        # a sin(x + p) = (a cos p) sin x + (a sin p) cos x
        s1, c1 = np.sin(phase), np.cos(phase)
        sh, ch = s1, c1
        for h in range(6):
            if h:
                sh, ch = sh * c1 + ch * s1, ch * c1 - sh * s1
            for ax in range(3):
                a = amps[h] * axis_gain[ax]
                p = harm_phase[h, ax]
                sig[ax] += (a * np.cos(p))[:, None] * sh + (a * np.sin(p))[:, None] * ch
        mesh_on = mesh & ((teeth + 1) * f0 < self.mesh_max_hz)  # tone and upper sideband
        mesh_a = np.where(mesh_on, mesh_amp, 0.0)[:, None] * (1.0 + mesh_sb[:, None] * c1)
        tp = teeth[:, None] * phase
        sm, cm = np.sin(tp), np.cos(tp)
        for ax in range(3):
            sig[ax] += mesh_a * (np.cos(mesh_phase[ax])[:, None] * sm + np.sin(mesh_phase[ax])[:, None] * cm)
        sig *= env[None]

        # ---- excitation of the structural resonance: fault impacts + shocks + broadband ----
        exc = res_sd[:, None] * res_white * 0.5  # broadband machine noise exciting the mode
        rows = np.arange(n)
        # fault impacts at BPFO, jittered intervals, first impact at a random phase of the period
        period = 1.0 / self.bpfo_hz(f0)
        times = (first[:, None] + np.cumsum(intervals, axis=1) - intervals[:, :1]) * period[:, None]
        idx = np.rint(times * fs).astype(np.int64)
        valid = idx < w
        idx_c = np.minimum(idx, w - 1)
        hit = valid & mask[rows[:, None], idx_c]
        amp = np.where(hit, imp_amp * severity[:, None], 0.0)
        flat = (rows[:, None] * w + idx_c).ravel()
        exc += np.bincount(flat, weights=amp.ravel(), minlength=n * w).reshape(n, w)
        # isolated shocks
        s_idx = np.minimum(np.rint(shock_t * fs).astype(np.int64), w - 1)  # (2, n)
        s_amp = np.where(shock, shock_amp, 0.0)
        exc[rows, s_idx[0]] += s_amp
        exc[rows, s_idx[1]] += np.where(n_shock > 1, s_amp, 0.0)

        # impulse response of the mode: ring-down exp(-zeta w_n t) cos(w_d t), unit peak
        k = np.arange(self._kernel_samples) / fs
        wn = two_pi * f_r
        wd = wn * np.sqrt(1.0 - zeta**2)
        kern = np.exp(-(zeta * wn)[:, None] * k) * np.cos(wd[:, None] * k)  # peak at the impact
        nfft = self._fft_size
        ring = np.fft.irfft(np.fft.rfft(exc, nfft, axis=1) * np.fft.rfft(kern, nfft, axis=1), nfft, axis=1)[:, :w]

        out = np.empty((n, w, 3), dtype=np.float32)
        for ax in range(3):
            out[:, :, ax] = (
                sig[ax]
                + (res_gain[ax] * res_sign[ax])[:, None] * ring
                + (noise_sd * (1.0 if ax < 2 else 0.7))[:, None] * white[ax]
            )
        return out
