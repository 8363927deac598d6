"""Rechargeable storage between a harvester and a node: its energy, hour by hour, and where every joule went.

A step (an hour of weather, say) brings the harvester's energy H (already through its charger) and asks for the
node's demand D (its steady power over the step plus the energy of the frames it starts in it). Within a step the
flows are taken as uniform, so the storage's energy moves on a straight line:

    E' = E + eta H - D - leak,   eta: the storage's charge efficiency (a battery's coulombic and voltage losses;
                                 a supercapacitor's ~1), leak: self-discharge over the step

- E' above the capacity: the excess is clipped (the charger stops: harvest wasted);
- E' below zero: the node browns out part-way through the step, at the share f of the step where the line
  crosses zero (its demand f D is met), and stays off until the storage holds `restart_fraction` of its
  capacity again (a power-good threshold with hysteresis, e.g. the BQ25570's VBAT_OK);
- while off the node draws nothing.

Every step conserves energy exactly: H = consumed + (E' - E) + charge loss (1 - eta) H + leak + clipped, which
`StorageResult.balance_j` returns per node and step (the test sums it per day).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Storage:
    """A storage element as the simulation needs it (capacity between its charge limits)."""

    capacity_j: float  # usable energy between the empty (cut-off / brown-out) and full (charger stop) limits
    charge_efficiency: float = 1.0
    self_discharge_per_day: float = 0.0  # share of the stored energy lost per day
    leakage_w: float = 0.0  # constant leakage while not empty (a supercapacitor's leakage current x voltage)
    initial_fraction: float = 1.0
    restart_fraction: float = 0.1

    def __post_init__(self):
        if not self.capacity_j > 0:
            raise ValueError("storage capacity must be positive")
        for name in ("charge_efficiency", "initial_fraction", "restart_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1]")
        if self.self_discharge_per_day < 0 or self.leakage_w < 0:
            raise ValueError("self-discharge and leakage must not be negative")


@dataclass
class StorageResult:
    """Per node (rows) and step (columns)."""

    energy_j: np.ndarray  # (n, steps + 1): stored energy at each step boundary
    up_share: np.ndarray  # (n, steps): share of the step the node was on
    harvested_j: np.ndarray
    consumed_j: np.ndarray
    charge_loss_j: np.ndarray
    leaked_j: np.ndarray
    clipped_j: np.ndarray
    low: np.ndarray | None = None  # (n, steps) bool: the step ran on the low-charge demand (energy-aware nodes)
    capacity_j: float = float("nan")  # the store's usable energy

    @property
    def balance_j(self) -> np.ndarray:
        """harvested - consumed - stored change - losses: zero (to rounding) in every step."""
        stored = np.diff(self.energy_j, axis=1)
        return self.harvested_j - self.consumed_j - stored - self.charge_loss_j - self.leaked_j - self.clipped_j

    def downtime_s(self, step_s: float) -> np.ndarray:
        """Seconds off per node."""
        return ((1.0 - self.up_share) * step_s).sum(axis=1)

    def per_day(self, values: np.ndarray, steps_per_day: int) -> np.ndarray:
        """Sum a (n, steps) array over whole days: (n, days)."""
        n, steps = values.shape
        days = steps // steps_per_day
        return values[:, : days * steps_per_day].reshape(n, days, steps_per_day).sum(axis=2)


def simulate_storage(harvest_j: np.ndarray, demand_j: np.ndarray, step_s: float, storage: Storage,
                     low_demand_j: np.ndarray | None = None, below: float = 0.0, above: float = 0.0) -> StorageResult:
    """Run the storage of every node through the steps. `harvest_j`: (steps,) or (n, steps) energy reaching the
    storage; `demand_j`: (n, steps) what each node would draw if on the whole step.

    With `low_demand_j` a node adapts: a step that starts with the store below `below` x capacity (or below
    `above` x capacity when the previous step was low already) draws `low_demand_j` instead."""
    demand = np.atleast_2d(np.asarray(demand_j, dtype=float))
    n, steps = demand.shape
    harvest = np.broadcast_to(np.asarray(harvest_j, dtype=float), (n, steps))
    if np.any(harvest < 0) or np.any(demand < 0):
        raise ValueError("harvest and demand must not be negative")
    cap = storage.capacity_j
    keep = (1.0 - storage.self_discharge_per_day) ** (step_s / 86400.0)  # share surviving one step
    energy = np.empty((n, steps + 1))
    energy[:, 0] = storage.initial_fraction * cap
    up = np.ones((n, steps))
    consumed, leaked, clipped = np.zeros((n, steps)), np.zeros((n, steps)), np.zeros((n, steps))
    charge_loss = harvest * (1.0 - storage.charge_efficiency)
    on = energy[:, 0] > 0
    restart = storage.restart_fraction * cap
    adaptive = low_demand_j is not None
    low_demand = np.broadcast_to(np.asarray(low_demand_j, dtype=float), (n, steps)) if adaptive else None
    low = np.zeros((n, steps), dtype=bool) if adaptive else None
    was_low = np.zeros(n, dtype=bool)
    for k in range(steps):
        e = energy[:, k]
        if adaptive:
            was_low = np.where(was_low, e < above * cap, e < below * cap)
            low[:, k] = was_low
            d = np.where(on, np.where(was_low, low_demand[:, k], demand[:, k]), 0.0)
        else:
            d = np.where(on, demand[:, k], 0.0)
        gain = storage.charge_efficiency * harvest[:, k]
        leak = e * (1.0 - keep) + storage.leakage_w * step_s
        short = on & (e + gain - d - leak < 0)
        # browns out where the straight line e + (gain - d - leak) x t / step crosses zero
        share = np.where(short, np.clip(e / np.where(short, d + leak - gain, 1.0), 0.0, 1.0), 1.0)
        met = d * share
        leak = np.minimum(leak, e + gain - met)  # an empty store leaks no more
        e_new = e + gain - met - leak
        over = np.maximum(e_new - cap, 0.0)
        energy[:, k + 1] = e_new - over
        consumed[:, k], leaked[:, k], clipped[:, k] = met, leak, over
        up[:, k] = np.where(on, share, 0.0)
        on = np.where(on, ~short, energy[:, k + 1] >= restart)
    return StorageResult(energy, up, harvest.copy(), consumed, charge_loss, leaked, clipped, low, cap)


__all__ = ["Storage", "StorageResult", "simulate_storage"]
