"""Exact energy ledger: time spent by every node's components in every power state.

The engine reports each active interval (sampling, inference, radio start-up, transmission, receive
windows) as it schedules it; the rest of the node's life is the component's sleep state. Energy is
time-in-state x power, where a load's power is its current x its rail's voltage and the regulator
row sums the power tree's losses over every slot (`iotsim.energy.power_tree`), so it is integrated
exactly at every state change rather than sampled. Time is conserved (for every load the state
times add up to the node's lifetime in the run; the regulator is on for all of it) and so is energy
(energy from the battery = the loads' rows + the regulator row).
"""

from __future__ import annotations

import numpy as np

# (component, state) slots. Sleep slots are derived: lifetime minus the component's active time.
SLOTS: tuple[tuple[str, str], ...] = (
    ("mcu", "sleep"),
    ("mcu", "active"),
    ("mcu", "flash"),  # erasing and programming flash (applying model updates)
    ("sensor", "sleep"),
    ("sensor", "active"),
    ("radio", "sleep"),
    ("radio", "standby"),
    ("radio", "rx"),
    ("radio", "tx"),
    ("regulator", "on"),  # the power tree's losses; on for the node's whole life
)
SLOT_INDEX = {slot: i for i, slot in enumerate(SLOTS)}
COMPONENTS: tuple[str, ...] = ("mcu", "sensor", "radio")  # the loads
ROWS: tuple[str, ...] = (*COMPONENTS, "regulator")  # rows of the energy ledger
REGULATOR_SLOT = SLOT_INDEX[("regulator", "on")]
SLEEP_SLOT = {c: SLOT_INDEX[(c, "sleep")] for c in COMPONENTS}


class EnergyLedger:
    """Per-node time in each (component, state) slot."""

    def __init__(self, n_nodes: int):
        self.n_nodes = n_nodes
        self.time_s = np.zeros((n_nodes, len(SLOTS)), dtype=np.float64)
        self.lifetime_s = np.zeros(n_nodes, dtype=np.float64)

    def charge(self, component: str, state: str, nodes: np.ndarray, seconds: np.ndarray | float) -> None:
        """Add active time in a non-sleep state; `nodes` may repeat (times are summed per node)."""
        if state == "sleep":
            raise ValueError("sleep time is derived from the lifetime; charge active states only")
        slot = SLOT_INDEX[(component, state)]
        nodes = np.asarray(nodes, dtype=np.int64)
        seconds = np.broadcast_to(np.asarray(seconds, dtype=np.float64), nodes.shape)
        if nodes.size and (seconds < 0).any():
            raise ValueError("negative time charged to the ledger")
        self.time_s[:, slot] += np.bincount(nodes, weights=seconds, minlength=self.n_nodes)

    def close(self, lifetime_s: np.ndarray) -> None:
        """Set each node's lifetime in the run and derive the sleep time of every component."""
        self.lifetime_s = np.asarray(lifetime_s, dtype=np.float64).copy()
        for component in COMPONENTS:
            active = [SLOT_INDEX[s] for s in SLOTS if s[0] == component and s[1] != "sleep"]
            busy = self.time_s[:, active].sum(axis=1)
            over = busy - self.lifetime_s
            if (over > 1e-9 * np.maximum(1.0, self.lifetime_s)).any():
                worst = int(np.argmax(over))
                raise ValueError(
                    f"{component} of node {worst} is busy {busy[worst]:.6g} s in a lifetime of "
                    f"{self.lifetime_s[worst]:.6g} s: the duty cycle does not fit (sampling too fast?)"
                )
            self.time_s[:, SLEEP_SLOT[component]] = np.maximum(self.lifetime_s - busy, 0.0)
        self.time_s[:, REGULATOR_SLOT] = self.lifetime_s

    def energy_j(self, load_power_w: np.ndarray, loss_power_w: np.ndarray) -> np.ndarray:
        """Energy per node and slot: time x load power in each load slot; the regulator slot holds
        the sum over slots of time x regulator loss power (both `(nodes, slots)` arrays)."""
        energy = self.time_s * load_power_w
        energy[:, REGULATOR_SLOT] = (self.time_s * loss_power_w).sum(axis=1)
        return energy

    @staticmethod
    def by_component(energy_slots_j: np.ndarray) -> dict[str, np.ndarray]:
        """Energy per ledger row (mcu, sensor, radio, regulator)."""
        out = {}
        for component in ROWS:
            idx = [SLOT_INDEX[s] for s in SLOTS if s[0] == component]
            out[component] = energy_slots_j[:, idx].sum(axis=1)
        return out


def slot_currents_a(board, tx_power_dbm: float) -> np.ndarray:
    """Current drawn in each slot by a board's components (A); the board's sensors add up."""
    cur = np.zeros(len(SLOTS))
    cur[SLOT_INDEX[("mcu", "sleep")]] = board.mcu.sleep_current_a
    cur[SLOT_INDEX[("mcu", "active")]] = board.mcu.active_current_a
    flash = board.mcu.flash_write
    cur[SLOT_INDEX[("mcu", "flash")]] = flash.current_a if flash is not None else board.mcu.active_current_a
    cur[SLOT_INDEX[("sensor", "sleep")]] = sum(s.sleep_current_a for s in board.sensors)
    cur[SLOT_INDEX[("sensor", "active")]] = sum(s.active_current_a for s in board.sensors)
    cur[SLOT_INDEX[("radio", "sleep")]] = board.radio.sleep_current_a
    cur[SLOT_INDEX[("radio", "standby")]] = board.radio.standby_current_a
    cur[SLOT_INDEX[("radio", "rx")]] = board.radio.rx_current_a
    cur[SLOT_INDEX[("radio", "tx")]] = board.radio.tx_current_a(tx_power_dbm)
    return cur  # the regulator slot draws no current of its own: its losses come from the power tree
