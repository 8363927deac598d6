"""Solar-harvesting groups in a run: each node's store, hour by hour, and the frames it could not send.

A group with `solar:` runs its nodes from a rechargeable store that a panel charges (iotsim.energy.solar,
iotsim.energy.storage) instead of from its board's battery. Per policy, after the link has scheduled the frames:

1. each node's demand per hour of the run: its steady power (sleep, sampling, inference, the link's keep-alive)
   over the hour plus the radio energy of the frames it starts in it (the same loads the ledger charges);
2. the group's harvest per hour: the panel at the site's typical-year weather from `start_day` (the year
   wraps around for longer runs);
3. the storage simulation: when the store empties the node browns out part-way through an hour and stays off
   until the store reaches its restart level;
4. frames the node would have started while off get the fate no_energy (never on air); the ledger charges each
   node for its time on only.

Harvesting nodes never die of an empty battery: their projected battery life is not defined (NaN); downtime
is what they report instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iotsim.energy.solar import HOURS_PER_YEAR, Panel, hourly_harvest_j, load_weather
from iotsim.energy.storage import Storage, simulate_storage

HOUR_S = 3600.0
RECHARGEABLE = ("li-ion", "lipo", "li-po", "nimh", "lifepo4")  # chemistry names a battery store may have


def store_of(st, board) -> Storage:
    """The `Storage` a scenario's store spec describes. A battery profile's usable energy: its rated charge x
    nominal voltage between full and the state of charge where its open-circuit voltage meets the board's brown-out
    (or the cell's cut-off, the higher), its self-discharge the profile's."""
    per_day = 1.0 - (1.0 - st.self_discharge_per_month) ** (12 / 365.25)
    if st.kind != "battery":
        capacity = st.capacity_j
    else:
        from iotsim.energy.battery import BatteryModel
        from iotsim.energy.power_tree import board_brownout_v
        from iotsim.hardware.profiles import load_profile

        model = BatteryModel(load_profile("battery", st.battery))
        chemistry = model.profile.chemistry
        if not chemistry.lower().startswith(RECHARGEABLE):
            from iotsim.errors import InputError

            raise InputError(f"battery '{st.battery}' ({chemistry}) is a primary cell: a harvesting store must be "
                             f"rechargeable ({', '.join(RECHARGEABLE)})", field="solar.storage.battery")
        empty = float(model.min_soc(0.0, model.death_voltage_v(board_brownout_v(board))))
        capacity = model.profile.capacity_c * model.nominal_voltage_v * (1.0 - empty)
        per_day = 1.0 - (1.0 - model.profile.self_discharge_per_year) ** (1 / 365.25)
    return Storage(capacity, st.charge_efficiency, per_day, st.leakage_w, st.initial_fraction, st.restart_fraction)


@dataclass
class HarvestPlan:
    """The harvesting groups of a run: per group (by plan index) its nodes' rows, hourly harvest and store."""

    groups: dict  # plan index -> (slice of node rows, harvest_j per hour (hours,), Storage)
    hours: int

    @classmethod
    def of(cls, scenario, plans) -> "HarvestPlan | None":
        groups = {}
        hours = int(np.ceil(scenario.duration / HOUR_S))
        start = 0
        for p in plans:
            sl = slice(start, start + p.n_nodes)
            start += p.n_nodes
            spec = p.spec.solar
            if spec is None:
                continue
            pn = spec.panel
            panel = Panel(pn.area_cm2, pn.efficiency, pn.tilt_deg, pn.azimuth_deg, pn.gamma_per_c,
                          pn.charger_efficiency, pn.albedo, pn.transposition)
            year = hourly_harvest_j(load_weather(spec.site), panel)
            index = (spec.start_day * 24 + np.arange(hours)) % HOURS_PER_YEAR
            storage = store_of(spec.storage, p.board)
            groups[p.index] = (sl, year[index], storage)
        return cls(groups, hours) if groups else None

    def harvesting(self, n: int) -> np.ndarray:
        """Mask of the run's nodes that harvest."""
        mask = np.zeros(n, dtype=bool)
        for sl, _, _ in self.groups.values():
            mask[sl] = True
        return mask


@dataclass
class HarvestOutcome:
    """One policy's stores: per harvesting group, the storage result of its nodes (rows in group order)."""

    results: dict  # plan index -> (slice of node rows, StorageResult)
    up_s: np.ndarray  # per node of the run: time on (non-harvesting nodes: the run's length)
    duration_s: float

    def downtime_s(self) -> np.ndarray:
        return self.duration_s - self.up_s


def step_lengths_s(hours: int, duration_s: float) -> np.ndarray:
    """Each hour of the run's length (the last may be partial)."""
    step_len = np.full(hours, HOUR_S)
    step_len[-1] = duration_s - HOUR_S * (hours - 1)
    return step_len


def frame_hours(frame_start_s: np.ndarray, hours: int) -> np.ndarray:
    return np.minimum((np.nan_to_num(frame_start_s, nan=0.0) // HOUR_S).astype(np.int64), hours - 1)


def hourly_demand_j(steady_w: np.ndarray, frame_energy_j: np.ndarray, frame_node: np.ndarray,
                    frame_start_s: np.ndarray, sent: np.ndarray, hours: int, duration_s: float) -> np.ndarray:
    """(n, hours): what each node would draw in each hour if on throughout: its steady power over the hour plus the
    radio energy of the frames (among `sent`) it starts in it."""
    n = steady_w.shape[0]
    burst = np.zeros((n, hours))
    np.add.at(burst, (frame_node[sent], frame_hours(frame_start_s, hours)[sent]), frame_energy_j[sent])
    return np.asarray(steady_w)[:, None] * step_lengths_s(hours, duration_s)[None, :] + burst


def run_stores(plan: HarvestPlan, demand_j: np.ndarray, duration_s: float, low_demand_j: np.ndarray | None = None,
               below: float = 0.0, above: float = 0.0) -> HarvestOutcome:
    """Run every harvesting node's store on its hourly demand (`low_demand_j`, `below`, `above`: an energy-aware
    node's other demand and its thresholds)."""
    step_len = step_lengths_s(plan.hours, duration_s)
    up_s = np.full(demand_j.shape[0], float(duration_s))
    results = {}
    for g, (sl, harvest, storage) in plan.groups.items():
        low = None if low_demand_j is None else low_demand_j[sl]
        r = simulate_storage(harvest * step_len / HOUR_S, demand_j[sl], HOUR_S, storage, low, below, above)
        results[g] = (sl, r)
        up_s[sl] = (r.up_share * step_len[None, :]).sum(axis=1)
    return HarvestOutcome(results, up_s, float(duration_s))


def frames_off(stores: HarvestOutcome, frame_node: np.ndarray, frame_start_s: np.ndarray,
               sent: np.ndarray) -> np.ndarray:
    """Mask of the frames (among `sent`) the nodes would have started while off: off for the whole hour, or after
    the hour's brown-out."""
    off = np.zeros(frame_node.shape[0], dtype=bool)
    for sl, r in stores.results.values():
        hours = r.up_share.shape[1]
        step_len = step_lengths_s(hours, stores.duration_s)
        hour = frame_hours(frame_start_s, hours)
        f = np.flatnonzero(sent & (frame_node >= sl.start) & (frame_node < sl.stop))
        share = r.up_share[frame_node[f] - sl.start, hour[f]]
        off[f] = frame_start_s[f] - hour[f] * HOUR_S >= share * step_len[hour[f]]
    return off


__all__ = ["store_of", "HarvestPlan", "HarvestOutcome", "run_stores", "frames_off", "hourly_demand_j", "frame_hours",
           "step_lengths_s"]
