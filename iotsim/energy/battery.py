"""Battery models: terminal voltage vs state of charge and load, rate-dependent capacity, brown-out,
self-discharge and calendar life; the kinetic battery model (`iotsim.energy.kibam`) as an option.

A battery profile (`iotsim.hardware.Battery`, numbers sourced in `devices/battery/*.yaml`) gives
per cell an open-circuit voltage curve OCV(soc) and an internal resistance curve R(soc) against the
state of charge (0 = empty at the rated cut-off, 1 = full), read from the datasheet's discharge
curves. The pack's terminal voltage under a current I is

    V(soc, I) = n_cells * (OCV(soc) - R(soc) * I)

A node dies when V under its peak current (the largest battery current of any of its power states,
e.g. the radio's TX pulse) falls below its death voltage: the higher of the board's brown-out
voltage (`iotsim.energy.power_tree.board_brownout_v`) and the cell's rated cut-off. The state of
charge where that happens, `min_soc`, is solved exactly on the piecewise-linear curves; the charge
above it is usable. The capacity itself can depend on the mean discharge current (the datasheet's
capacity-vs-drain curve, alkaline cells above all), and with a KiBaM block the usable charge is what
the kinetic model delivers at the node's mean current.

Energy is counted at the battery's nominal voltage (coulomb counting): a node drawing mean power P
from the battery draws P / V_nominal amperes. Projected lifetime of a node alive at the end of a run

    life_s = min(Q_usable * V_nominal / (P_load + P_self_discharge), shelf life)

and `limit` says which bound binds: "energy" (the cell's rated charge, to its cut-off), "brown-out"
(the board's brown-out under peak load strands charge the cell would still deliver) or "calendar"
(the cell's rated shelf life comes first).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iotsim.energy import kibam

SECONDS_PER_YEAR = 365.25 * 86400.0
SECONDS_PER_DAY = 86400.0

LIMITS: tuple[str, ...] = ("energy", "brown-out", "calendar", "harvesting")  # harvesting: a solar node, no life projected
BROWNOUT_STRANDED_SOC = 1e-3  # "brown-out" binds when it strands more than 0.1 % of the capacity


@dataclass(frozen=True)
class BatteryModel:
    """The runtime model of one battery profile (pack)."""

    profile: object  # iotsim.hardware.Battery

    @property
    def nominal_voltage_v(self) -> float:
        return self.profile.nominal_voltage_v

    @property
    def shelf_life_s(self) -> float:
        return self.profile.shelf_life_s

    @property
    def self_discharge_power_w(self) -> float:
        """Self-discharge as a steady power: rated charge x rate per year x nominal voltage."""
        b = self.profile
        return b.capacity_c * b.self_discharge_per_year / SECONDS_PER_YEAR * b.nominal_voltage_v

    # ---- voltage -----------------------------------------------------------------------------
    def ocv_v(self, soc):
        """Pack open-circuit voltage at state of charge `soc` (0..1)."""
        b = self.profile
        return b.cells_in_series * np.interp(soc, b.ocv_soc, b.cell_ocv_v)

    def resistance_ohm(self, soc):
        """Pack internal resistance at state of charge `soc`."""
        b = self.profile
        return b.cells_in_series * np.interp(soc, b.resistance_soc, b.cell_resistance_ohm)

    def terminal_voltage_v(self, soc, current_a):
        """Pack terminal voltage at `soc` under a discharge current `current_a`."""
        return self.ocv_v(soc) - self.resistance_ohm(soc) * np.asarray(current_a, dtype=float)

    def death_voltage_v(self, brownout_v: float) -> float:
        """The voltage a node dies at: the board's brown-out or the cell's rated cut-off, the higher."""
        return max(float(brownout_v), self.profile.cutoff_voltage_v)

    def min_soc(self, current_a, death_v: float) -> np.ndarray:
        """Lowest state of charge at which the terminal voltage under `current_a` stays >= `death_v`.

        Exact on the piecewise-linear curves: between the union of their breakpoints OCV and R are
        both linear in soc, so for a fixed current the terminal voltage is too, and the crossing is
        solved on the segment where it happens. 1.0 means dead when full.
        """
        b = self.profile
        knots = np.union1d(np.asarray(b.ocv_soc), np.asarray(b.resistance_soc))
        currents = np.asarray(current_a, dtype=float)
        i = currents.reshape(-1, 1)
        ocv, r = self.ocv_v(knots), self.resistance_ohm(knots)
        v = ocv - r * i  # (currents, knots): terminal voltage at every knot
        below = v < death_v
        # last knot below the death voltage: the crossing lies between it and the next knot
        j = np.where(below.any(axis=1), knots.size - 1 - np.argmax(below[:, ::-1], axis=1), 0)
        j = np.minimum(j, knots.size - 2)
        rows = np.arange(v.shape[0])
        v0, v1 = v[rows, j], v[rows, j + 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.clip((death_v - v0) / (v1 - v0), 0.0, 1.0)
        soc = knots[j] + (knots[j + 1] - knots[j]) * u
        soc = np.where(below.any(axis=1), soc, 0.0)
        soc = np.where(below[:, -1], 1.0, soc)
        return soc.reshape(currents.shape)

    # ---- charge ---------------------------------------------------------------------------------
    def capacity_c(self, mean_current_a) -> np.ndarray:
        """Charge the cell delivers to its cut-off at a constant `mean_current_a` (C).

        From the datasheet's capacity-vs-current curve where the profile has one (linear between its
        points, the end values beyond them); else the rated capacity.
        """
        b = self.profile
        i = np.asarray(mean_current_a, dtype=float)
        if b.capacity_current_a is None:
            return np.full(i.shape, b.capacity_c)
        return np.interp(i, b.capacity_current_a, b.capacity_at_current_c)

    def usable_charge_c(self, mean_current_a, peak_current_a, brownout_v: float) -> np.ndarray:
        """Charge a node can draw before it dies (arrays broadcast): the capacity at its mean current
        above the state of charge where its peak current browns it out; with KiBaM, what the kinetic
        model delivers from that charge at the mean current."""
        mean = np.asarray(mean_current_a, dtype=float)
        q = self.capacity_c(mean) * (1.0 - self.min_soc(peak_current_a, self.death_voltage_v(brownout_v)))
        b = self.profile
        if b.kibam_c is not None:
            q = kibam.delivered_charge_c(q, mean, b.kibam_c, b.kibam_k_per_s)
        return q

    def brownout_binds(self, mean_current_a, peak_current_a, brownout_v: float) -> np.ndarray:
        """True where the brown-out under peak load strands charge the cell would deliver at its mean
        load down to its rated cut-off (more than BROWNOUT_STRANDED_SOC of the capacity)."""
        at_peak = self.min_soc(peak_current_a, self.death_voltage_v(brownout_v))
        at_mean = self.min_soc(mean_current_a, self.profile.cutoff_voltage_v)
        return at_peak > at_mean + BROWNOUT_STRANDED_SOC


def projected_life_s(usable_energy_j, load_power_w, self_discharge_power_w, shelf_life_s):
    """(life_s, calendar_binds): usable energy / (load + self-discharge power), capped at the shelf life."""
    energy_life = np.asarray(usable_energy_j, dtype=float) / (np.asarray(load_power_w, dtype=float)
                                                              + self_discharge_power_w)
    calendar = energy_life > shelf_life_s
    return np.where(calendar, shelf_life_s, energy_life), calendar


def death_time_s(budget_j: float, steady_power_w: float, burst_times_s: np.ndarray,
                 burst_energy_j: np.ndarray) -> float:
    """First time the drained energy reaches `budget_j`, or inf.

    Drain(t) = steady_power_w * t + sum of bursts at or before t. Work that repeats every window
    (sampling, inference) belongs in `steady_power_w` as its mean power (with self-discharge), so
    the answer is exact to within one window's energy.
    """
    power = steady_power_w
    order = np.argsort(burst_times_s, kind="stable")
    t = np.asarray(burst_times_s, dtype=float)[order]
    e = np.asarray(burst_energy_j, dtype=float)[order]
    # energy already drained just after each burst
    after = power * t + np.cumsum(e)
    # dying inside a burst: the first burst that pushes drain over budget
    hit = np.nonzero(after >= budget_j)[0]
    first_burst_death = t[hit[0]] if hit.size else np.inf
    # dying between bursts from steady drain: before burst k the bursts so far sum to C_{k-1}
    before_bursts = np.concatenate(([0.0], np.cumsum(e)))
    starts = np.concatenate(([0.0], t))
    ends = np.concatenate((t, [np.inf]))
    if power <= 0:
        return float(first_burst_death)
    crossing = (budget_j - before_bursts) / power
    ok = (crossing >= starts) & (crossing < ends)
    steady_death = crossing[ok].min() if ok.any() else np.inf
    return float(min(first_burst_death, steady_death))
