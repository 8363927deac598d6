"""Linear battery (coulomb counting at nominal voltage) with usable-capacity derating and self-discharge.

This is the common default (ns-3's BasicEnergySource does the same bookkeeping): the energy a node
can draw is `capacity_mah * 3.6 * nominal_voltage_v * usable_fraction`; self-discharge removes
`self_discharge_per_year` of the nominal capacity per year, at a constant rate.

Projected lifetime (for runs shorter than the battery's life): the node's mean load power over
the run, `P_load = E_run / T_run`, is assumed to continue, so

    life_s = E_usable / (P_load + P_self_discharge)

which is exact for a node whose duty cycle repeats with a period much shorter than the run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SECONDS_PER_YEAR = 365.25 * 86400.0
SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class LinearBattery:
    capacity_mah: float
    nominal_voltage_v: float
    usable_fraction: float
    self_discharge_per_year: float

    @property
    def nominal_energy_j(self) -> float:
        return self.capacity_mah * 3.6 * self.nominal_voltage_v

    @property
    def usable_energy_j(self) -> float:
        return self.nominal_energy_j * self.usable_fraction

    @property
    def self_discharge_power_w(self) -> float:
        return self.nominal_energy_j * self.self_discharge_per_year / SECONDS_PER_YEAR

    def projected_life_s(self, load_energy_j, run_time_s):
        """Projected lifetime from the load energy drawn over `run_time_s` (arrays allowed)."""
        load_power_w = np.asarray(load_energy_j, dtype=float) / float(run_time_s)
        return self.usable_energy_j / (load_power_w + self.self_discharge_power_w)

    def death_time_s(self, steady_power_w: float, burst_times_s: np.ndarray, burst_energy_j: np.ndarray) -> float:
        """First time the drained energy reaches the usable energy, or inf.

        Drain(t) = (steady_power_w + self-discharge) * t + sum of bursts at or before t. Work that
        repeats every window (sampling, inference) belongs in `steady_power_w` as its mean power, so
        the answer is exact to within one window's energy.
        """
        power = steady_power_w + self.self_discharge_power_w
        budget = self.usable_energy_j
        order = np.argsort(burst_times_s, kind="stable")
        t = np.asarray(burst_times_s, dtype=float)[order]
        e = np.asarray(burst_energy_j, dtype=float)[order]
        # energy already drained just after each burst
        after = power * t + np.cumsum(e)
        # dying inside a burst: the first burst that pushes drain over budget
        hit = np.nonzero(after >= budget)[0]
        first_burst_death = t[hit[0]] if hit.size else np.inf
        # dying between bursts from steady drain: before burst k the bursts so far sum to C_{k-1}
        before_bursts = np.concatenate(([0.0], np.cumsum(e)))
        starts = np.concatenate(([0.0], t))
        ends = np.concatenate((t, [np.inf]))
        if power <= 0:
            return float(first_burst_death)
        crossing = (budget - before_bursts) / power
        ok = (crossing >= starts) & (crossing < ends)
        steady_death = crossing[ok].min() if ok.any() else np.inf
        return float(min(first_burst_death, steady_death))
