"""factory.vibration: tri-axial accelerometer on a rotating machine; bearing and shaft faults.

Channels x, y (radial; y is the direction of the bearing load) and z (axial), m/s^2. The node
samples one burst of 256 samples at 3200 Hz (80 ms) and sleeps; raw, each sample is sent as
int16 per axis.

Operating point (drawn per window, and varying within it):
- shaft speed 20-60 Hz (1200-3600 rpm) across windows, drifting linearly within the burst
  (sd 1 Hz over the burst: a variable-speed drive ramping, or slip changing with load);
- load 40-100 % of rated, with a load step at a random instant in 30 % of bursts; bearing
  impacts, gear mesh and the broadband excitation of the structure scale with the load.

Background (normal machine):
- residual unbalance: a 1x component of 0.3-2.8 mm/s RMS velocity (log-uniform), i.e. within
  the zones A and B of ISO 10816-3 (group 2, medium machines 15-300 kW, rigid foundation: zone
  boundaries A/B 1.4, B/C 2.8, C/D 4.5 mm/s RMS); 1.0 mm/s RMS at 40 Hz is
  2*pi*40*1.0e-3*sqrt(2) = 0.36 m/s^2 peak acceleration. Its phase differs per axis;
- 2x (misalignment) and 3x..6x harmonics with random amplitudes and phases per axis;
- gear / blade mesh tone (half the machines): n_teeth x shaft with shaft-rate sidebands, kept
  below 1500 Hz (an anti-alias filter removes what lies above);
- a structural resonance excited by broadband machine noise, and white sensor/process noise
  with a per-burst level;
- random isolated shocks (20 % of bursts: 1-2 knocks from nearby machinery) that ring the same
  resonance as a bearing impact does -- the confounder that is impulsive but not periodic.

Event (positive class "fault"). The class stays binary (the simulator's events are binary);
the kind of fault is drawn per window from `fault_types` with probabilities `fault_weights`
(default: the five kinds below, equally likely; a scenario can restrict it, e.g.
`fault_types=("bpfo",)`). The generator sees windows, not events, so two windows of one
ground-truth event can show different kinds of fault.

Bearing kinematics -- deep-groove ball bearing with n balls of diameter d on pitch diameter D,
contact angle phi, outer race fixed, shaft frequency f_r (Randall and Antoni, "Rolling
element bearing diagnostics -- A tutorial", MSSP 25 (2011) 485-520, bearing-frequency
formulas):

    BPFO = (n / 2) f_r (1 - d/D cos phi)         ball pass frequency, outer race
    BPFI = (n / 2) f_r (1 + d/D cos phi)         ball pass frequency, inner race
    FTF  = (1 / 2) f_r (1 - d/D cos phi)         fundamental train (cage) frequency
    BSF  = D / (2 d) f_r (1 - (d/D cos phi)^2)   ball spin frequency

with the drive-end bearing of the Case Western Reserve University Bearing Data Center test rig
(SKF 6205-2RS JEM: n = 9, d = 0.3126 in, D = 1.537 in, phi = 0), whose documentation lists the
defect frequencies as multiples of shaft speed: inner race 5.4152, outer race 3.5848, cage
0.39828, rolling element 4.7135 (= 2 x BSF).

Each local bearing defect produces a train of impacts; every impact rings a structural
resonance, which rings down. The impact intervals jitter by 1 % (random slip of the rolling
elements: 1-2 % per Randall and Antoni 2011). Impact times follow the shaft angle, so they
follow the speed drift. Severity (impact peak acceleration at full load) is log-uniform over
0.7-6 m/s^2 (assumption), proportional to the load, so weak faults sit under the machine's own
vibration and noise.

- "bpfo", outer race: the defect is fixed in the load zone: impacts at BPFO of constant
  strength;
- "bpfi", inner race: the defect turns with the shaft through the load zone, so the impacts
  at BPFI are amplitude-modulated at the shaft rate -> envelope spectrum lines at BPFI with
  sidebands at BPFI +- f_r. Load on the rolling element at angle psi from the load direction
  (Stribeck distribution, as used by McFadden and Smith, "Model for the vibration produced by
  a single point defect in a rolling element bearing", JSV 96(1) (1984) 69-82):
  q(psi) = q_max [1 - (1 - cos psi) / (2 eps)]^(3/2) where positive, 0 elsewhere, with the
  load distribution factor eps 0.4-0.8 (assumption; 0.5 = half the races loaded);
- "ball", rolling element: a defect on a ball strikes the outer and the inner race once each
  per spin revolution -> impacts at 2 x BSF, alternately weaker (the inner-race contact's
  path to the housing is longer; ratio 0.3-1, assumption), modulated by the load zone as the
  ball travels with the cage (FTF), and skipped at random (0-20 % of impacts, assumption: the
  spin axis wanders and the defect leaves the contact track now and then);
- "imbalance" (1x): added unbalance of 2.5-10 mm/s RMS at 1x with a random phase relative to
  the residual one (vector sum: a new unbalance can partly cancel the old), from a rotating
  force, so x and y are in quadrature (circular-ish orbit, stiffness anisotropy 0.6-1.4) and
  the axial axis sees little (0.05-0.3);
- "looseness" (mechanical looseness of a foot or housing, mainly in the load direction y): the
  part lifts until stopped by the bolts, so its 1x response is truncated at the stop
  (harmonics of the shaft rate), lifts higher on every other revolution (half harmonics 0.5x,
  1.5x, 2.5x, about half the amplitude of the harmonics per Mobley, "An Introduction to
  Predictive Maintenance", 2nd ed. 2002, sec. 14.1.3) and knocks against the stop once per
  revolution, ringing the structure (alternate knocks weaker). Peak of the truncated
  component 0.7-4 m/s^2, log-uniform (assumption).

Resonance: real bearing impacts ring structural modes at 2-4 kHz and beyond; at 3200 Hz
sampling (Nyquist 1600 Hz) these cannot be represented, so the simulated structure has its
mode at 1.0-1.4 kHz with damping ratio 0.02-0.06 (assumption; corresponds to a low-cost MEMS
accelerometer whose band ends below the bearing's natural high-frequency modes, mounted on a
housing with a lower mode). Impacts are placed on the nearest sample.

Samples where the event mask is True receive the fault's impacts and its additive components
(imbalance, looseness); the ring-down of the last impact before the mask ends decays over the
following few milliseconds (time constant 1/(zeta*2*pi*f_r), 2-8 ms), as it would physically.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iotsim.errors import InputError
from iotsim.signals.base import Workload, log_uniform

# CWRU Bearing Data Center, "Apparatus & Procedures": drive-end bearing 6205-2RS JEM SKF,
# 9 balls, ball diameter 0.3126 in, pitch diameter 1.537 in.
BEARING_6205 = {"n_balls": 9, "ball_diameter_m": 7.94e-3, "pitch_diameter_m": 39.04e-3, "contact_angle_rad": 0.0}

FAULT_TYPES = ("bpfo", "bpfi", "ball", "imbalance", "looseness")
_BPFO, _BPFI, _BALL, _IMBALANCE, _LOOSENESS = range(5)


def _ratio(bearing: dict) -> float:
    return bearing["ball_diameter_m"] / bearing["pitch_diameter_m"] * np.cos(bearing["contact_angle_rad"])


def bpfo_hz(shaft_hz: np.ndarray | float, bearing: dict = BEARING_6205) -> np.ndarray | float:
    """Ball-pass frequency of the outer race for a shaft speed in Hz (Randall and Antoni 2011)."""
    return bearing["n_balls"] / 2.0 * np.asarray(shaft_hz) * (1.0 - _ratio(bearing))


def bpfi_hz(shaft_hz: np.ndarray | float, bearing: dict = BEARING_6205) -> np.ndarray | float:
    """Ball-pass frequency of the inner race for a shaft speed in Hz (Randall and Antoni 2011)."""
    return bearing["n_balls"] / 2.0 * np.asarray(shaft_hz) * (1.0 + _ratio(bearing))


def ftf_hz(shaft_hz: np.ndarray | float, bearing: dict = BEARING_6205) -> np.ndarray | float:
    """Fundamental train (cage) frequency for a shaft speed in Hz (Randall and Antoni 2011)."""
    return 0.5 * np.asarray(shaft_hz) * (1.0 - _ratio(bearing))


def bsf_hz(shaft_hz: np.ndarray | float, bearing: dict = BEARING_6205) -> np.ndarray | float:
    """Ball spin frequency for a shaft speed in Hz (Randall and Antoni 2011); a ball defect hits at 2x this."""
    r = _ratio(bearing)
    return bearing["pitch_diameter_m"] / (2.0 * bearing["ball_diameter_m"]) * np.asarray(shaft_hz) * (1.0 - r * r)


def load_zone(psi: np.ndarray, eps: np.ndarray | float) -> np.ndarray:
    """Relative rolling-element load at angle psi from the load direction (Stribeck, exponent 3/2
    for ball bearings, as in McFadden and Smith 1984): [1 - (1 - cos psi) / (2 eps)]^1.5, >= 0."""
    return np.maximum(0.0, 1.0 - (1.0 - np.cos(psi)) / (2.0 * np.asarray(eps))) ** 1.5


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
    class_names: tuple[str, ...] = ("normal", "fault")
    positive_class: int = 1
    description: str = (
        "tri-axial accelerometer burst, 256 samples at 3200 Hz, varying speed and load; event: "
        "machine fault, one of outer-race (BPFO), inner-race (BPFI, shaft-rate modulated) or "
        "ball (2xBSF, cage-rate modulated) bearing defect ringing a 1.0-1.4 kHz resonance, "
        "imbalance (1x) or mechanical looseness (truncated 1x, harmonics and half harmonics)"
    )

    # --- which fault an event window shows (drawn per window) ---
    fault_types: tuple[str, ...] = FAULT_TYPES
    fault_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0)
    # --- operating point ---
    shaft_hz: tuple[float, float] = (20.0, 60.0)
    speed_drift_sd_hz: float = 1.0  # change of shaft speed across one burst
    load_fraction: tuple[float, float] = (0.4, 1.0)  # of rated load (assumption)
    p_load_step: float = 0.3
    load_step: float = 0.3  # relative load change at a load step, +-
    # --- normal machine ---
    residual_unbalance_mm_s: tuple[float, float] = (0.3, 2.8)  # 1x velocity RMS, log-uniform (ISO 10816-3 zones A-B)
    p_mesh: float = 0.5
    mesh_teeth: tuple[int, int] = (15, 40)
    mesh_m_s2: tuple[float, float] = (0.05, 1.0)
    mesh_max_hz: float = 1500.0
    noise_m_s2: tuple[float, float] = (0.02, 0.2)  # white noise RMS, log-uniform
    resonance_noise_m_s2: tuple[float, float] = (0.005, 0.08)  # broadband excitation of the mode
    p_shock: float = 0.2
    shock_m_s2: tuple[float, float] = (0.2, 4.0)
    resonance_hz: tuple[float, float] = (1000.0, 1400.0)
    damping_ratio: tuple[float, float] = (0.02, 0.06)
    # --- bearing faults ---
    fault_m_s2: tuple[float, float] = (0.7, 6.0)  # impact peak acceleration at full load, log-uniform
    slip_sd: float = 0.01  # Randall and Antoni (2011): 1-2 % random slip
    load_zone_eps: tuple[float, float] = (0.4, 0.8)  # Stribeck load distribution factor (assumption)
    ball_race_ratio: tuple[float, float] = (0.3, 1.0)  # inner- vs outer-race contact of a ball defect
    ball_skip: tuple[float, float] = (0.0, 0.2)  # fraction of ball-defect impacts that miss the track
    # --- shaft faults ---
    imbalance_mm_s: tuple[float, float] = (2.5, 10.0)  # added 1x velocity RMS, log-uniform
    looseness_m_s2: tuple[float, float] = (0.7, 4.0)  # truncated component peak, log-uniform
    looseness_half: tuple[float, float] = (0.3, 1.0)  # depth of the every-other-revolution lift
    looseness_clip: tuple[float, float] = (0.2, 0.7)  # stop at this fraction of the free peak
    looseness_knock: tuple[float, float] = (0.2, 1.0)  # knock impact, relative to the component peak

    _chunk_windows: int = 4096  # windows per internal step (bounds temporary memory; fixes the draw order)

    def __post_init__(self) -> None:
        types = tuple(str(t) for t in self.fault_types)
        weights = tuple(float(w) for w in self.fault_weights)
        bad = [t for t in types if t not in FAULT_TYPES]
        if not types or bad or len(set(types)) != len(types):
            raise InputError(
                f"fault_types must be distinct names among {', '.join(FAULT_TYPES)}, got {list(types)}",
                where=self.name,
                field="fault_types",
            )
        if len(weights) != len(types):
            if weights == (1.0,) * len(FAULT_TYPES):  # default weights with a restricted list: equal
                weights = (1.0,) * len(types)
            else:
                raise InputError(
                    f"fault_weights needs one weight per fault type ({len(types)}), got {len(weights)}",
                    where=self.name,
                    field="fault_weights",
                )
        if not all(np.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
            raise InputError(
                f"fault_weights must be >= 0 with a positive sum, got {list(weights)}",
                where=self.name,
                field="fault_weights",
            )
        object.__setattr__(self, "fault_types", types)
        object.__setattr__(self, "fault_weights", weights)

    # ----------------------------------------------------------------- kinematics
    def bpfo_hz(self, shaft_hz: np.ndarray | float) -> np.ndarray | float:
        return bpfo_hz(shaft_hz)

    def bpfi_hz(self, shaft_hz: np.ndarray | float) -> np.ndarray | float:
        return bpfi_hz(shaft_hz)

    def bsf_hz(self, shaft_hz: np.ndarray | float) -> np.ndarray | float:
        return bsf_hz(shaft_hz)

    def ftf_hz(self, shaft_hz: np.ndarray | float) -> np.ndarray | float:
        return ftf_hz(shaft_hz)

    @property
    def fault_probabilities(self) -> dict[str, float]:
        """Probability of each fault kind in an event window."""
        total = sum(self.fault_weights)
        return {t: w / total for t, w in zip(self.fault_types, self.fault_weights)}

    def summary(self) -> dict:
        return {**super().summary(), "fault_probabilities": self.fault_probabilities}

    # ----------------------------------------------------------------- generation
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
        orders = np.array([bpfo_hz(1.0), bpfi_hz(1.0), 2.0 * bsf_hz(1.0), 1.0, 1.0])  # impacts per revolution
        # impacts per burst, bounded by the fastest fault at the highest speed (slip of +-4 sd)
        f_hi = self.shaft_hz[1] + 4.0 * abs(self.speed_drift_sd_hz)
        m = int(np.ceil(orders.max() * f_hi * dur * (1.0 + 4.0 * self.slip_sd))) + 2

        # ---- draws (fixed order, independent of the mask) ----
        f0 = rng.uniform(*self.shaft_hz, n)
        df = rng.normal(0.0, self.speed_drift_sd_hz, n)
        phase0 = rng.uniform(0.0, two_pi, n)
        load = rng.uniform(*self.load_fraction, n)
        step = rng.random(n) < self.p_load_step
        step_at = rng.uniform(0.0, dur, n)
        step_dv = rng.uniform(-self.load_step, self.load_step, n)
        v_res = log_uniform(rng, *self.residual_unbalance_mm_s, n)
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
        # fault kind and parameters (drawn for every window, used where the mask is set)
        cum = np.cumsum(self.fault_weights) / sum(self.fault_weights)
        pick = np.minimum(np.searchsorted(cum, rng.random(n), side="right"), len(cum) - 1)
        kind = np.array([FAULT_TYPES.index(k) for k in self.fault_types])[pick]
        severity = log_uniform(rng, *self.fault_m_s2, n)
        eps = rng.uniform(*self.load_zone_eps, n)
        defect_pos = rng.random(n)  # angular position of the defect / ball at t = 0, in turns
        race_ratio = rng.uniform(*self.ball_race_ratio, n)
        skip_p = rng.uniform(*self.ball_skip, n)
        parity = rng.integers(0, 2, n)  # which race a ball defect hits first
        first = rng.random(n)
        intervals = rng.standard_normal((n, m))
        imp_amp = rng.uniform(0.8, 1.2, (n, m))
        skip_u = rng.random((n, m))
        v_imb = log_uniform(rng, *self.imbalance_mm_s, n)
        imb_phase = rng.uniform(0.0, two_pi, n)
        imb_gain = np.stack([rng.uniform(0.6, 1.4, n), rng.uniform(0.05, 0.3, n)])  # x (y = 1), z
        imb_zphase = rng.uniform(0.0, two_pi, n)
        loose_amp = log_uniform(rng, *self.looseness_m_s2, n)
        loose_half = rng.uniform(*self.looseness_half, n)
        loose_clip = rng.uniform(*self.looseness_clip, n)
        loose_knock = rng.uniform(*self.looseness_knock, n)
        loose_phase = rng.uniform(0.0, two_pi, n)
        loose_gain = np.stack([rng.uniform(0.2, 0.6, n), rng.uniform(0.1, 0.4, n)])  # x, z (y = 1)
        loose_sign = np.where(rng.random((3, n)) < 0.5, -1.0, 1.0)
        white = rng.standard_normal((3, n, w))
        res_white = rng.standard_normal((n, w))

        # ---- shaft rotation and load ----
        accel = df / dur  # linear speed drift, Hz/s
        rev = f0[:, None] * t + 0.5 * accel[:, None] * t**2  # revolutions since the burst start (n, w)
        phase = two_pi * rev + phase0[:, None]
        speed = f0[:, None] + accel[:, None] * t  # instantaneous shaft frequency (n, w)
        dv = np.where(step, step_dv, 0.0)
        env = 1.0 + dv[:, None] * (t[None, :] >= step_at[:, None])  # load step
        load_t = load[:, None] * env

        # ---- deterministic machine vibration ----
        # residual unbalance: velocity RMS v -> peak acceleration 2 pi f v sqrt(2)
        a1 = two_pi * speed * (v_res * 1e-3 * np.sqrt(2.0))[:, None]  # (n, w)
        sig = np.zeros((3, n, w))
        # sin/cos of (h+1)*phase by the angle-addition recurrence (two trig calls in total);
        # a sin(x + p) = (a cos p) sin x + (a sin p) cos x
        s1, c1 = np.sin(phase), np.cos(phase)
        sh, ch = s1, c1
        rel = np.concatenate([np.ones((1, n)), harm_rel])  # (6, n)
        for h in range(6):
            if h:
                sh, ch = sh * c1 + ch * s1, ch * c1 - sh * s1
            for ax in range(3):
                a = rel[h] * axis_gain[ax]
                p = harm_phase[h, ax]
                sig[ax] += (a * np.cos(p))[:, None] * sh + (a * np.sin(p))[:, None] * ch
        sig *= a1[None]  # all shaft harmonics scale with the 1x level
        mesh_on = mesh & ((teeth + 1) * (f0 + np.abs(df)) < self.mesh_max_hz)  # tone and upper sideband
        mesh_a = (np.where(mesh_on, mesh_amp, 0.0)[:, None] * load_t) * (1.0 + mesh_sb[:, None] * c1)
        tp = teeth[:, None] * phase
        sm, cm = np.sin(tp), np.cos(tp)
        for ax in range(3):
            sig[ax] += mesh_a * (np.cos(mesh_phase[ax])[:, None] * sm + np.sin(mesh_phase[ax])[:, None] * cm)

        # ---- excitation of the structural resonance: broadband + fault impacts + shocks ----
        exc = (res_sd * 0.5)[:, None] * np.sqrt(load_t) * res_white
        rows = np.arange(n)
        # Impact k of a fault of order r (impacts per revolution) comes when the shaft has turned
        # s_k = u_k / r revolutions, u_k = first + k + slip; with the linear speed drift,
        # f0 t + accel t^2 / 2 = s_k  ->  t_k = 2 s_k / (f0 + sqrt(f0^2 + 2 accel s_k)).
        r = orders[kind]
        loose = kind == _LOOSENESS
        # looseness knocks come where the lifted part meets the stop: at the peak of its 1x response
        first = np.where(loose, np.mod(-(phase0 + loose_phase) / two_pi, 1.0), first)
        jitter = np.where(loose, 0.0, self.slip_sd)
        steps = 1.0 + jitter[:, None] * intervals
        u = first[:, None] + np.cumsum(steps, axis=1) - steps[:, :1]
        s_k = u / r[:, None]
        disc = np.maximum(f0[:, None] ** 2 + 2.0 * accel[:, None] * s_k, 0.0)
        t_k = 2.0 * s_k / (f0[:, None] + np.sqrt(disc))
        k_idx = np.arange(m)[None, :]
        mod = np.ones((n, m))
        # inner race: the defect turns with the shaft through the load zone (around psi = 0)
        mod = np.where((kind == _BPFI)[:, None], load_zone(two_pi * (s_k + defect_pos[:, None]), eps[:, None]), mod)
        # ball: travels with the cage through the load zone; alternate races; skips
        cage = load_zone(two_pi * (ftf_hz(1.0) * s_k + defect_pos[:, None]), eps[:, None])
        race = np.where((k_idx + parity[:, None]) % 2 == 0, 1.0, race_ratio[:, None])
        ball_mod = cage * race * (skip_u >= skip_p[:, None])
        mod = np.where((kind == _BALL)[:, None], ball_mod, mod)
        # looseness: every other knock is weaker (the part lifts less on alternate revolutions)
        knock_alt = (1.0 + loose_half[:, None] * np.where(k_idx % 2 == 0, 1.0, -1.0)) / (1.0 + loose_half[:, None])
        mod = np.where(loose[:, None], knock_alt, mod)
        idx = np.rint(t_k * fs).astype(np.int64)
        valid = (idx >= 0) & (idx < w)
        idx_c = np.clip(idx, 0, w - 1)
        hit = valid & mask[rows[:, None], idx_c]
        bearing = (kind == _BPFO) | (kind == _BPFI) | (kind == _BALL)
        strength = np.where(bearing, severity, 0.0) + np.where(loose, loose_amp * loose_knock, 0.0)
        amp = np.where(hit, imp_amp * mod * strength[:, None], 0.0)
        amp = amp * np.where(bearing[:, None], load_t[rows[:, None], idx_c], 1.0)
        flat = (rows[:, None] * w + idx_c).ravel()
        exc += np.bincount(flat, weights=amp.ravel(), minlength=n * w).reshape(n, w)
        # isolated shocks
        s_idx = np.minimum(np.rint(shock_t * fs).astype(np.int64), w - 1)  # (2, n)
        s_amp = np.where(shock, shock_amp, 0.0)
        exc[rows, s_idx[0]] += s_amp
        exc[rows, s_idx[1]] += np.where(n_shock > 1, s_amp, 0.0)

        # impulse response of the mode: ring-down exp(-zeta w_n t) cos(w_d t), unit peak, over
        # five of the slowest time constants
        tau_max = 1.0 / (two_pi * self.resonance_hz[0] * self.damping_ratio[0])
        k_len = max(16, int(np.ceil(5.0 * tau_max * fs)))
        k = np.arange(k_len) / fs
        wn = two_pi * f_r
        wd = wn * np.sqrt(1.0 - zeta**2)
        kern = np.exp(-(zeta * wn)[:, None] * k) * np.cos(wd[:, None] * k)  # peak at the impact
        nfft = 1 << int(np.ceil(np.log2(w + k_len)))
        ring = np.fft.irfft(np.fft.rfft(exc, nfft, axis=1) * np.fft.rfft(kern, nfft, axis=1), nfft, axis=1)[:, :w]

        # ---- additive shaft faults, on the masked samples ----
        sel = np.flatnonzero((kind == _IMBALANCE) & mask.any(axis=1))
        if sel.size:
            # rotating force: y = A sin, x = g A cos (quadrature), axial small
            th = phase[sel] + imb_phase[sel, None]
            amp_i = two_pi * speed[sel] * (v_imb[sel] * 1e-3 * np.sqrt(2.0))[:, None] * mask[sel]
            sig[0, sel] += imb_gain[0, sel, None] * amp_i * np.cos(th)
            sig[1, sel] += amp_i * np.sin(th)
            sig[2, sel] += imb_gain[1, sel, None] * amp_i * np.cos(th + imb_zphase[sel, None])
        sel = np.flatnonzero(loose & mask.any(axis=1))
        if sel.size:
            # free 1x response with an every-other-revolution lift, truncated at the stop
            th = phase[sel] + loose_phase[sel, None]  # 0 (mod 2 pi) at the knocks
            hh, cc = loose_half[sel, None], loose_clip[sel, None]
            # the first knock is at th = 2 pi j0; the part lifts higher on knocks 0, 2, 4, ...
            j0 = np.ceil(th[:, :1] / two_pi)
            free = np.cos(th) * (1.0 + hh * np.cos(0.5 * (th - two_pi * j0)))
            trunc = np.minimum(free, cc * (1.0 + hh))
            # remove the mean of the truncated waveform (an accelerometer has no DC from it):
            # average over two revolutions on a fine grid
            g = np.linspace(0.0, 2.0 * two_pi, 256, endpoint=False)[None, :]
            dc = np.minimum(np.cos(g) * (1.0 + hh * np.cos(0.5 * g)), cc * (1.0 + hh)).mean(axis=1, keepdims=True)
            comp = loose_amp[sel, None] * (trunc - dc) / (1.0 + hh) * mask[sel]
            sig[0, sel] += (loose_sign[0, sel] * loose_gain[0, sel])[:, None] * comp
            sig[1, sel] += loose_sign[1, sel, None] * comp
            sig[2, sel] += (loose_sign[2, sel] * loose_gain[1, sel])[:, None] * comp

        out = np.empty((n, w, 3), dtype=np.float32)
        for ax in range(3):
            out[:, :, ax] = (
                sig[ax]
                + (res_gain[ax] * res_sign[ax])[:, None] * ring
                + (noise_sd * (1.0 if ax < 2 else 0.7))[:, None] * white[ax]
            )
        return out
