"""Energy checks for `iotsim validate`: battery life and power-tree currents against closed forms and
hand calculations, for every shipped battery and board.

Each check returns `Check` rows (name, expected, measured, tolerance, passed): `expected` comes from a
closed form written out here, independently of the engine's code path, `measured` from the simulator
(the battery model, the power tree, or a whole scenario run through `run_scenario`). All checks are
fast (well under a second each, except `engine_battery_life_checks`, one small run).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iotsim.energy import kibam
from iotsim.energy.battery import SECONDS_PER_YEAR, BatteryModel, projected_life_s
from iotsim.energy.ledger import COMPONENTS, SLOT_INDEX, SLOTS, EnergyLedger, slot_currents_a
from iotsim.energy.power_tree import BoardPower, rail_input_power_w


@dataclass(frozen=True)
class Check:
    name: str
    expected: float
    measured: float
    tolerance: float  # relative, |measured - expected| <= tolerance * |expected|
    passed: bool

    @staticmethod
    def relative(name: str, expected: float, measured: float, tolerance: float) -> "Check":
        expected, measured = float(expected), float(measured)
        ok = abs(measured - expected) <= tolerance * abs(expected) or (expected == measured)
        return Check(name, expected, measured, tolerance, bool(ok))


def _cell_ocv_at_death(battery, death_v: float, current_a: float) -> float:
    """State of charge where n (OCV(s) - R(s) I) = death_v, by bisection on the tabulated curves (an
    independent route to the model's exact segment solution)."""
    lo, hi = 0.0, 1.0
    f = lambda s: battery.cells_in_series * (np.interp(s, battery.ocv_soc, battery.cell_ocv_v)  # noqa: E731
                                             - np.interp(s, battery.resistance_soc, battery.cell_resistance_ohm)
                                             * current_a) - death_v
    if f(hi) < 0:
        return 1.0
    if f(lo) >= 0:
        return 0.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if f(mid) >= 0 else (mid, hi)
    return hi


def battery_life_checks(mean_current_a: float = 50e-6, peak_current_a: float = 40e-3,
                        brownout_v: float = 1.8) -> list[Check]:
    """For every battery profile: projected life at a constant mean current with a peak (radio) current,
    against the hand calculation Q(I_mean) (1 - soc at brown-out) / (I_mean + I_self_discharge), capped at
    the shelf life; KiBaM profiles against their own closed form."""
    from iotsim.hardware import list_profiles, load_profile

    rows = []
    for name in list_profiles("battery"):
        b = load_profile("battery", name)
        model = BatteryModel(b)
        death_v = max(brownout_v, b.cutoff_voltage_v)
        soc = _cell_ocv_at_death(b, death_v, peak_current_a)
        cap = b.capacity_c if b.capacity_current_a is None else float(
            np.interp(mean_current_a, b.capacity_current_a, b.capacity_at_current_c))
        q = cap * (1 - soc)
        if b.kibam_c is not None:
            q = float(kibam.delivered_charge_c(q, mean_current_a, b.kibam_c, b.kibam_k_per_s))
        self_a = b.capacity_c * b.self_discharge_per_year / SECONDS_PER_YEAR
        expected = min(q / (mean_current_a + self_a), b.shelf_life_s)
        v = b.nominal_voltage_v
        usable_j = model.usable_charge_c(mean_current_a, peak_current_a, brownout_v) * v
        measured, _ = projected_life_s(usable_j, mean_current_a * v, model.self_discharge_power_w, b.shelf_life_s)
        rows.append(Check.relative(f"battery life, {name} ({b.chemistry}), {mean_current_a * 1e6:g} uA mean, "
                                   f"{peak_current_a * 1e3:g} mA peak", expected / SECONDS_PER_YEAR,
                                   float(measured) / SECONDS_PER_YEAR, 1e-6))
    return rows


def kibam_checks() -> list[Check]:
    """KiBaM: the closed form against a fine explicit integration, and the linear limit (k -> inf)."""
    c, k, cap, i = 0.3, 1e-4, 3600.0, 0.5
    t = 1500.0
    y1, y2 = c * cap, (1 - c) * cap
    steps = 200_000
    dt = t / steps
    for _ in range(steps):  # forward Euler: first order, error O(dt)
        flow = k * (y2 / (1 - c) - y1 / c)
        y1, y2 = y1 + (-i + flow) * dt, y2 - flow * dt
    closed, _ = kibam.state(c * cap, (1 - c) * cap, i, t, c, k)
    return [
        Check.relative("KiBaM available charge after 1500 s at 0.5 A (c 0.3, k 1e-4/s): closed form vs Euler",
                       y1, float(closed), 1e-4),
        Check.relative("KiBaM delivered charge, k -> inf: the linear battery's capacity (C)", cap,
                       float(kibam.delivered_charge_c(cap, i, c, 1e3)), 1e-6),
    ]


def power_tree_checks() -> list[Check]:
    """For every board with a regulator: battery current of each load state against the hand calculation
    (LDO: load + quiescent; buck: V_out I / (V_b eta(I)), eta interpolated by hand), and conservation of a
    one-day ledger (battery energy = loads' rows + regulator row)."""
    from iotsim.hardware import list_profiles, load_board

    rows = []
    for name in list_profiles("board"):
        board = load_board(name)
        cur = slot_currents_a(board, min(board.radio.tx_powers_dbm[-1], max(0.0, board.radio.tx_powers_dbm[0])))
        vb = board.battery.nominal_voltage_v
        for rail in board.power_tree:
            reg = rail.regulator
            if reg.kind == "direct":
                continue
            load = max(cur[SLOT_INDEX[(c, "active" if c != "radio" else "tx")]] for c in rail.loads)
            if reg.kind == "ldo":
                expected_a = load + reg.quiescent_current_a
            else:
                x, y = reg.efficiency_load_a, reg.efficiency
                j = int(np.searchsorted(x, load))
                eta = y[0] if j == 0 else y[-1] if j == len(x) else \
                    y[j - 1] + (y[j] - y[j - 1]) * (load - x[j - 1]) / (x[j] - x[j - 1])
                expected_a = reg.output_v * load / (eta * vb)
            rows.append(Check.relative(f"power tree {name}/{rail.name} ({reg.kind} {reg.part}): battery current at "
                                       f"{load * 1e3:.3g} mA load (mA)", expected_a * 1e3,
                                       float(rail_input_power_w(rail, load, vb)) / vb * 1e3, 1e-9))
        ledger = EnergyLedger(1)
        ledger.charge("mcu", "active", np.array([0]), 60.0)
        ledger.charge("sensor", "active", np.array([0]), 30.0)
        ledger.charge("radio", "tx", np.array([0]), 5.0)
        ledger.close(np.array([86400.0]))
        bp = BoardPower(board, cur)
        e = ledger.energy_j(*bp.slot_powers_w(cur[None, :]))
        parts = EnergyLedger.by_component(e)
        idle = {c: cur[SLOT_INDEX[(c, "sleep")]] for c in COMPONENTS}
        expected = 0.0
        for rail in board.power_tree:
            i0 = sum(idle[c] for c in rail.loads)
            p0 = float(rail_input_power_w(rail, i0, vb))
            expected += p0 * 86400.0
            for s, (c, state) in enumerate(SLOTS):
                if c in rail.loads and state != "sleep":
                    expected += ledger.time_s[0, s] * (float(rail_input_power_w(rail, i0 - idle[c] + cur[s], vb)) - p0)
        rows.append(Check.relative(f"ledger conservation, {name}: battery energy = loads + regulator (J/day)",
                                   expected, float(sum(parts.values())[0]), 1e-9))
    return rows


def engine_battery_life_checks() -> list[Check]:
    """One small run of the farm board (one hourly uplink, 1 day): the engine's projected life against the
    hand calculation from its own energy, capped at the 2xaa shelf life."""
    from iotsim.engine import run_scenario
    from iotsim.hardware import load_board
    from iotsim.results import nodes_table
    from iotsim.scenario import load_scenario_text

    text = """\
name: battery_check
seed: 5
duration: 1d
fleet:
  - group: one
    count: 2
    device: nrf52840_sx1262_2xaa
    placement: {kind: points, points_m: [[10, 0], [0, 10]]}
    workload: {signal: farm.soil_climate, sample_period: 5min, window: 12, events_per_day: 0}
    model: farm_soil_int8
network:
  lorawan: {sf: 7, tx_power_dbm: 14}
  gateways: [{id: gw, position_m: [0, 0]}]
policies: [cloud_offload]
outputs: {plots: false, report: none}
"""
    nodes = nodes_table(run_scenario(load_scenario_text(text)))
    b = load_board("nrf52840_sx1262_2xaa")
    bat = b.battery
    peak = b.radio.tx_current_a(14) + b.mcu.sleep_current_a + sum(s.sleep_current_a for s in b.sensors)
    death_v = max(b.power_tree[0].min_supply_v, bat.cutoff_voltage_v)
    q = bat.capacity_c * (1 - _cell_ocv_at_death(bat, death_v, peak))
    mean_w = float(nodes.energy_j.iloc[0]) / 86400.0
    self_w = bat.capacity_c * bat.self_discharge_per_year / SECONDS_PER_YEAR * bat.nominal_voltage_v
    expected = min(q * bat.nominal_voltage_v / (mean_w + self_w), bat.shelf_life_s) / 86400.0
    return [Check.relative("engine battery life, farm board, 1 uplink/h (days, calendar-capped)", expected,
                           float(nodes.battery_life_days.iloc[0]), 1e-6)]


def all_checks(include_engine: bool = True) -> list[Check]:
    rows = battery_life_checks() + kibam_checks() + power_tree_checks()
    if include_engine:
        rows += engine_battery_life_checks()
    return rows


__all__ = ["Check", "all_checks", "battery_life_checks", "kibam_checks", "power_tree_checks",
           "engine_battery_life_checks"]
