"""A board's power tree: what each rail draws from the battery, and what its regulator loses.

Each rail (`iotsim.hardware.Rail`, sourced in `devices/board/*.yaml`) feeds some of the loads (mcu,
sensor, radio) through a regulator, from the battery at its nominal voltage V_b:

- direct:  battery current = load current; the loads run at V_b.
- ldo:     battery current = load current + quiescent current; the loads run at V_out; the
           regulator needs V_out + dropout at its input.
- buck, buck_boost: input power = V_out x load current / efficiency(load current), the efficiency
           read off the datasheet's curve (linear between its points, end values beyond them); the
           converter needs its minimum input voltage (a buck also its output voltage: in 100 % duty
           cycle it passes the battery through).

Loss of a rail at load current I: L(I) = input power - V_out x I (0 for a direct rail). The ledger
knows how long each load spends in each state, not which states overlap, so the loss is split over
the slots assuming one load of a rail is active at a time while the others sleep (exact when the
rail's activities do not overlap): with I0 the rail's current when all its m loads sleep, the
sleep slot of each load carries L(I0) / m and an active slot of load c at current I carries

    L(I0) / m + L(I0 - I_sleep,c + I) - L(I0)

so that over a node's life the rail's loss sums to L(I0) x lifetime plus the extra loss of every
active interval. Energy from the battery = energy charged to the loads (time x current x rail
voltage) + these losses (the ledger's regulator row).
"""

from __future__ import annotations

import numpy as np

from iotsim.energy.ledger import SLEEP_SLOT, SLOTS


def rail_min_input_v(rail) -> float:
    """Lowest battery voltage at which the rail still feeds its loads."""
    reg = rail.regulator
    if reg.kind == "direct":
        return rail.min_supply_v
    if reg.kind == "ldo":
        return reg.output_v + reg.dropout_v
    if reg.kind == "buck":
        return max(reg.min_input_v, rail.min_supply_v)
    return reg.min_input_v  # buck_boost


def board_brownout_v(board) -> float:
    """The board's brown-out voltage: the highest minimum input voltage of its rails."""
    return max(rail_min_input_v(r) for r in board.power_tree)


def rail_input_power_w(rail, load_a, battery_v: float) -> np.ndarray:
    """Power the rail draws from a battery at `battery_v` when its loads draw `load_a` in total."""
    reg = rail.regulator
    i = np.asarray(load_a, dtype=float)
    if reg.kind == "direct":
        return battery_v * i
    if reg.kind == "ldo":
        return battery_v * (i + reg.quiescent_current_a)
    eta = np.interp(i, reg.efficiency_load_a, reg.efficiency)
    return reg.output_v * i / eta


def rail_loss_w(rail, load_a, battery_v: float) -> np.ndarray:
    """Regulator loss at a rail load current: input power - output power (0 for a direct rail)."""
    v_out = battery_v if rail.regulator.output_v is None else rail.regulator.output_v
    return rail_input_power_w(rail, load_a, battery_v) - v_out * np.asarray(load_a, dtype=float)


class BoardPower:
    """The power tree of one board with its loads' sleep currents (from a row of slot currents)."""

    def __init__(self, board, slot_currents_a: np.ndarray):
        self.board = board
        self.battery_v = board.battery.nominal_voltage_v
        cur = np.asarray(slot_currents_a, dtype=float)
        self._rail = {}
        self._voltage = {}
        self._sleep_a = {}
        self._base = {}  # load -> (rail idle current I0, rail idle loss L(I0), loads on the rail)
        for rail in board.power_tree:
            idle_a = sum(cur[SLEEP_SLOT[load]] for load in rail.loads)
            idle_loss = float(rail_loss_w(rail, idle_a, self.battery_v))
            for load in rail.loads:
                self._rail[load] = rail
                self._voltage[load] = board.rail_voltage_v(load)
                self._sleep_a[load] = cur[SLEEP_SLOT[load]]
                self._base[load] = (idle_a, idle_loss, len(rail.loads))

    def rail_voltage_v(self, load: str) -> float:
        return self._voltage[load]

    def loss_w(self, load: str, current_a) -> np.ndarray:
        """Regulator loss charged while `load` draws `current_a` (the rail's other loads asleep)."""
        idle_a, idle_loss, m = self._base[load]
        rail_a = idle_a - self._sleep_a[load] + np.asarray(current_a, dtype=float)
        return idle_loss / m + rail_loss_w(self._rail[load], rail_a, self.battery_v) - idle_loss

    def input_power_w(self, load: str, current_a) -> np.ndarray:
        """Battery power while `load` draws `current_a`: its own power at its rail voltage + loss."""
        return self._voltage[load] * np.asarray(current_a, dtype=float) + self.loss_w(load, current_a)

    def slot_powers_w(self, currents_a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(load power, regulator loss) per slot for currents per slot (`(..., slots)` arrays)."""
        cur = np.asarray(currents_a, dtype=float)
        load_w = np.zeros(cur.shape)
        loss_w = np.zeros(cur.shape)
        for s, (component, _state) in enumerate(SLOTS):
            if component not in self._rail:
                continue  # the regulator's own row: its energy is the sum of the losses
            load_w[..., s] = self._voltage[component] * cur[..., s]
            loss_w[..., s] = self.loss_w(component, cur[..., s])
        return load_w, loss_w

    def peak_current_a(self, currents_a: np.ndarray) -> float:
        """Largest battery current of any slot (one load at its state, the others asleep)."""
        load_w, loss_w = self.slot_powers_w(np.asarray(currents_a, dtype=float))
        idle_w = sum(self.input_power_w(c, self._sleep_a[c]) for c in self._rail)
        # a slot's battery power is its own input power plus the other loads' sleep input power
        per_slot = np.zeros(len(SLOTS))
        for s, (component, _state) in enumerate(SLOTS):
            if component in self._rail:
                per_slot[s] = idle_w - self.input_power_w(component, self._sleep_a[component]) \
                    + load_w[s] + loss_w[s]
        return float(per_slot.max() / self.battery_v)
