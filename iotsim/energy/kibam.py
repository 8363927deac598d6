"""Kinetic battery model (KiBaM; J. F. Manwell and J. G. McGowan, "Lead acid battery storage model for
hybrid energy systems", Solar Energy 50(5):399-405, 1993), in the form of M. R. Jongerden and
B. R. Haverkort, "Which battery model to use?", IET Software 3(6):445-457, 2009.

The charge sits in two wells: an available well y1 (a fraction c of the capacity) that feeds the
load, and a bound well y2 that refills it through a valve of rate constant k:

    dy1/dt = -I + k (h2 - h1),   dy2/dt = -k (h2 - h1),   h1 = y1 / c,   h2 = y2 / (1 - c)

The battery is empty when y1 reaches 0, possibly with charge left in y2: at a high current less of
the capacity comes out (rate effect) and a rest lets y2 refill y1 (recovery). With
k' = k / (c (1 - c)) and delta = h2 - h1, for a constant current from any state

    y = y1 + y2 = y0 - I t,   delta(t) = delta0 e^(-k' t) + I / (c k') (1 - e^(-k' t)),
    y1 = c (y - (1 - c) delta),   y2 = (1 - c) (y + c delta)

which is the closed form the tests check against numerical integration and the published form.
In the limit k -> inf (or c -> 1) the wells stay level and KiBaM is the linear battery.
"""

from __future__ import annotations

import numpy as np


def _kprime(c: float, k_per_s: float) -> float:
    return k_per_s / (c * (1.0 - c))


def state(y1_c, y2_c, current_a, t_s, c: float, k_per_s: float):
    """(y1, y2) after `t_s` seconds at constant `current_a` from wells (y1_c, y2_c) (arrays broadcast)."""
    y1_c, y2_c = np.asarray(y1_c, dtype=float), np.asarray(y2_c, dtype=float)
    i, t = np.asarray(current_a, dtype=float), np.asarray(t_s, dtype=float)
    kp = _kprime(c, k_per_s)
    decay = np.exp(-kp * t)
    delta = (y2_c / (1.0 - c) - y1_c / c) * decay + i / (c * kp) * (1.0 - decay)
    y = y1_c + y2_c - i * t
    return c * (y - (1.0 - c) * delta), (1.0 - c) * (y + c * delta)


def time_to_empty_s(capacity_c, current_a, c: float, k_per_s: float, iterations: int = 100) -> np.ndarray:
    """Time until the available well of a full battery empties at a constant current (inf at 0 A).

    Solves C - I t - (1 - c) I (1 - e^(-k' t)) / (c k') = 0 (y1 = 0 from full wells); the left side
    falls strictly with t, from C at t = 0 to <= 0 at t = C / I, so bisection brackets the root.
    """
    cap = np.asarray(capacity_c, dtype=float)
    i = np.asarray(current_a, dtype=float)
    cap, i = np.broadcast_arrays(cap, i)
    kp = _kprime(c, k_per_s)
    pos = i > 0
    lo = np.zeros(cap.shape)
    hi = np.where(pos, cap / np.where(pos, i, 1.0), 0.0)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        f = cap - i * mid - (1.0 - c) * i * (1.0 - np.exp(-kp * mid)) / (c * kp)
        lo = np.where(f > 0, mid, lo)
        hi = np.where(f > 0, hi, mid)
    return np.where(pos, 0.5 * (lo + hi), np.inf)


def delivered_charge_c(capacity_c, current_a, c: float, k_per_s: float) -> np.ndarray:
    """Charge a full battery delivers at a constant current before its available well empties."""
    cap = np.asarray(capacity_c, dtype=float)
    i = np.asarray(current_a, dtype=float)
    t = time_to_empty_s(cap, i, c, k_per_s)
    return np.where(i > 0, np.minimum(i * np.where(np.isfinite(t), t, 0.0), cap), cap)


def simulate(capacity_c: float, currents_a, durations_s, c: float, k_per_s: float):
    """A piecewise-constant load from full wells: (y1, y2) after each step and the time the
    available well empties (inf if it never does). Steps use the exact constant-current solution."""
    y1, y2 = c * capacity_c, (1.0 - c) * capacity_c
    out1, out2, t0, empty_at = [], [], 0.0, np.inf
    for i, d in zip(np.asarray(currents_a, float), np.asarray(durations_s, float)):
        n1, n2 = state(y1, y2, i, d, c, k_per_s)
        if n1 <= 0 and not np.isfinite(empty_at):
            lo, hi = 0.0, d  # y1 along the step is not monotone in general: bisect on the first sign change
            for _ in range(100):
                mid = 0.5 * (lo + hi)
                if state(y1, y2, i, mid, c, k_per_s)[0] > 0:
                    lo = mid
                else:
                    hi = mid
            empty_at = t0 + hi
        y1, y2 = float(n1), float(n2)
        out1.append(y1)
        out2.append(y2)
        t0 += d
    return np.array(out1), np.array(out2), empty_at
