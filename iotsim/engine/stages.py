"""The stages of one policy's run, each a function over the previous stages' typed results.

    messages -> link.transmit -> battery -> fates before air -> energy ledger -> link.receive
             -> backhaul (message delivery) -> cloud -> detection

Nothing here knows which radio technology the link is: the link's `Transmissions` carry every
frame's attempts, radio state times and fate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from iotsim.energy.battery import LIMITS, BatteryModel, death_time_s, projected_life_s
from iotsim.energy.ledger import COMPONENTS, SLOT_INDEX, EnergyLedger, slot_currents_a
from iotsim.energy.power_tree import BoardPower, board_brownout_v
from iotsim.engine.fleet import GroupPlan
from iotsim.engine.updates import Listening
from iotsim.link.base import KeepAlive, Link, LinkNodes, Messages, Transmissions, not_on_air_fates
from iotsim.network.cloud import simulate_cloud
from iotsim.network.fate import Fate
from iotsim.network.topology import build_topology, path_to_cloud
from iotsim.policies import MessageKind, Policy


@dataclass
class FleetNodes:
    """Per-node facts of a run that no policy changes, one row per node (all groups)."""

    group: np.ndarray  # int64 group index
    currents_a: np.ndarray  # (n, slots)
    input_w: np.ndarray  # (n, slots): battery power while in each slot (the other loads asleep)
    phase_s: np.ndarray
    window_period_s: np.ndarray
    window_span_s: np.ndarray
    n_windows: np.ndarray
    batteries: list  # per group index: its BatteryModel
    powers: list  # per group index: its board's BoardPower
    brownout_v: list  # per group index: its board's brown-out voltage
    peak_current_a: list  # per group index: its largest battery current (at the configured TX power)
    link: LinkNodes
    radios: list  # per group index: the board's radio (TX current at any power)

    @property
    def n(self) -> int:
        return int(self.group.shape[0])

    def group_rows(self):
        """(group index, slice of its nodes) for every group, in node order."""
        start = 0
        for g in range(len(self.batteries)):
            count = int(np.count_nonzero(self.group == g))
            yield g, slice(start, start + count)
            start += count


def fleet_nodes(plans: list[GroupPlan], link: Link) -> FleetNodes:
    group = np.concatenate([np.full(p.n_nodes, p.index, dtype=np.int64) for p in plans])
    rows = [slot_currents_a(p.board, link.tx_power_dbm) for p in plans]
    for p, row in zip(plans, rows):  # event-driven sensing: the watching draws all the time, on the sensor's rail
        if p.spec.workload.wake is not None:
            row[SLOT_INDEX[("sensor", "sleep")]] += p.spec.workload.wake.monitor_current_ua * 1e-6
    powers = [BoardPower(p.board, row) for p, row in zip(plans, rows)]
    input_rows = [np.add(*bp.slot_powers_w(row)) for bp, row in zip(powers, rows)]
    startup = np.concatenate([np.full(p.n_nodes, p.board.radio.startup_time_s) for p in plans])
    phase = np.concatenate([p.phase_s for p in plans])
    return FleetNodes(
        group=group,
        currents_a=np.concatenate([np.tile(row, (p.n_nodes, 1)) for p, row in zip(plans, rows)]),
        input_w=np.concatenate([np.tile(row, (p.n_nodes, 1)) for p, row in zip(plans, input_rows)]),
        phase_s=phase,
        window_period_s=np.concatenate([np.full(p.n_nodes, p.window_period_s) for p in plans]),
        window_span_s=np.concatenate([np.full(p.n_nodes, p.window_span_s) for p in plans]),
        n_windows=np.concatenate([p.n_windows for p in plans]),
        batteries=[BatteryModel(p.board.battery) for p in plans],
        powers=powers,
        brownout_v=[board_brownout_v(p.board) for p in plans],
        peak_current_a=[bp.peak_current_a(row) for bp, row in zip(powers, rows)],
        link=LinkNodes(rx_power_dbm=np.concatenate([p.rx_power_dbm for p in plans]),
                       sf=np.concatenate([p.sf for p in plans]), startup_s=startup, phase_s=phase,
                       min_tx_power_dbm=max(min(p.board.radio.tx_powers_dbm) for p in plans),
                       positions_m=np.concatenate([p.positions_m for p in plans])),
        radios=[p.board.radio for p in plans],
    )


@dataclass
class BatteryBudget:
    """Per node: the energy it can draw before it dies, its self-discharge power and shelf life."""

    usable_j: np.ndarray
    self_discharge_w: np.ndarray
    shelf_life_s: np.ndarray
    brownout_binds: np.ndarray  # bool


def battery_budget(nodes: FleetNodes, mean_power_w: np.ndarray) -> BatteryBudget:
    """Usable energy per node at its mean battery power (capacity at its mean current, above the
    state of charge where its peak current browns it out), per group's battery model."""
    n = nodes.n
    usable, self_w, shelf, brown = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n, dtype=bool)
    for g, sl in nodes.group_rows():
        model = nodes.batteries[g]
        v = model.nominal_voltage_v
        mean_a = np.asarray(mean_power_w[sl], dtype=float) / v
        usable[sl] = model.usable_charge_c(mean_a, nodes.peak_current_a[g], nodes.brownout_v[g]) * v
        brown[sl] = model.brownout_binds(mean_a, nodes.peak_current_a[g], nodes.brownout_v[g])
        self_w[sl] = model.self_discharge_power_w
        shelf[sl] = model.shelf_life_s
    return BatteryBudget(usable, self_w, shelf, brown)


# ---- node loads ---------------------------------------------------------------------------------
@dataclass
class NodeLoads:
    """What a node draws apart from its frames: sleep, per-window work and the link's keep-alive."""

    mcu_active_per_window_s: np.ndarray
    sensor_active_per_window_s: np.ndarray
    mcu_active_per_sample_s: np.ndarray  # the share of a window's work each sample brings (wake-ups, sensing)
    sensor_active_per_sample_s: np.ndarray
    sample_period_s: np.ndarray
    window_samples: np.ndarray
    triggered_windows: tuple | None  # event-driven groups: (node, end time, mask of event-driven nodes); else None
    steady_w: np.ndarray  # mean power without frames
    frame_energy_j: np.ndarray  # per frame: radio energy above sleep, all attempts
    keep_alive: KeepAlive | None
    listening: Listening | None = None  # receiver time outside frames (updates' multicast sessions)
    listening_bursts: tuple | None = None  # its (node, time, energy) battery bursts
    frame_tx: tuple | None = None  # per frame at its own TX power: frame_tx_power_w's (power, current, loss)


def node_loads(plans: list[GroupPlan], policy: Policy, nodes: FleetNodes, tx: Transmissions,
               keep_alive: KeepAlive | None, listening: Listening | None = None,
               woke: tuple[np.ndarray, np.ndarray] | None = None) -> NodeLoads:
    """Battery-side loads: every power is what the node draws from its battery (through its power tree).
    `woke` (a run in chunks, whose `plans` are one chunk's): per node of the run, the windows that woke it and its
    windows, over the whole run (event-driven nodes' mean window work)."""
    n = nodes.n
    mcu_t = np.zeros(n)
    sens_t = np.zeros(n)
    mcu_sample, sens_sample, sample_period, window_samples = np.zeros(n), np.zeros(n), np.ones(n), np.ones(n)
    trig_node, trig_end, event_driven = [], [], np.zeros(n, dtype=bool)
    win_delta_j = np.zeros(n)  # battery energy above sleep per window
    start = 0
    for p in plans:
        sl = slice(start, start + p.n_nodes)
        sp = p.sample_period_s
        mcu_sample[sl] = min(p.board.mcu.wake_time_s, sp)
        sens_sample[sl] = min(max((x.sample_time_s for x in p.board.sensors), default=0.0), sp)
        sample_period[sl], window_samples[sl] = sp, p.window_samples
        event_driven[sl] = p.triggered is not None
        m = np.full(p.n_nodes, p.window_samples * min(p.board.mcu.wake_time_s, sp))
        if policy.runs_on_device_inference:  # (per node: the models it ran, model updates)
            m = m + p.inference_per_window_s()
        # a node that samples continuously (audio, ECG) infers while the next window streams in by DMA:
        # the MCU is at most always active (plan_group warns when inference cannot keep up)
        m = np.minimum(m, p.window_period_s)
        s = p.window_samples * min(max((x.sample_time_s for x in p.board.sensors), default=0.0), sp)
        mcu_t[sl], sens_t[sl] = m, s
        pin = nodes.input_w[start]
        win_delta_j[sl] = (
            m * (pin[SLOT_INDEX[("mcu", "active")]] - pin[SLOT_INDEX[("mcu", "sleep")]])
            + s * (pin[SLOT_INDEX[("sensor", "active")]] - pin[SLOT_INDEX[("sensor", "sleep")]])
        )
        if p.triggered is not None:  # only the windows that woke the node cost work: the mean over its windows
            if woke is None:
                n_woke = np.add.reduceat(p.triggered.astype(np.float64), p.window_offset[:-1]) if p.triggered.size \
                    else np.zeros(p.n_nodes)
                n_windows = p.n_windows
            else:
                n_woke, n_windows = woke[0][sl], woke[1][sl]
            n_woke = np.where(n_windows > 0, n_woke, 0.0)
            win_delta_j[sl] *= np.where(n_windows > 0, n_woke / np.maximum(n_windows, 1), 0.0)
            flat = np.flatnonzero(p.triggered)
            trig_node.append(np.searchsorted(p.window_offset, flat, side="right") - 1 + start)
            trig_end.append(p.window_end_s(flat))
        start += p.n_nodes
    pin = nodes.input_w
    radio_sleep_w = pin[:, SLOT_INDEX[("radio", "sleep")]]
    standby_w, tx_w, rx_w = (pin[:, SLOT_INDEX[("radio", s)]] - radio_sleep_w for s in ("standby", "tx", "rx"))
    # radio power above sleep per node, looked up per frame (no frames x slots matrix)
    frame_tx = None if tx.tx_power_dbm is None else frame_tx_power_w(nodes, tx)
    frame_tx_w = tx_w[tx.node] if frame_tx is None else frame_tx[0] - radio_sleep_w[tx.node]
    frame_j = tx.standby_s * standby_w[tx.node] + tx.tx_s * frame_tx_w + tx.rx_s * rx_w[tx.node]
    sleep_w = pin[:, [SLOT_INDEX[(c, "sleep")] for c in COMPONENTS]].sum(axis=1)
    steady_w = sleep_w + win_delta_j / nodes.window_period_s
    if keep_alive is not None:  # the link's keep-alive traffic is a steady load
        steady_w = steady_w + (
            keep_alive.standby_s * standby_w + keep_alive.tx_s * tx_w + keep_alive.rx_s * rx_w
        ) / keep_alive.period_s
    bursts = listening.bursts() if listening is not None and listening.node.size else None
    triggered = None
    if event_driven.any():
        triggered = (np.concatenate(trig_node).astype(np.int64), np.concatenate(trig_end), event_driven)
    return NodeLoads(mcu_t, sens_t, mcu_sample, sens_sample, sample_period, window_samples, triggered, steady_w,
                     frame_j, keep_alive, listening, bursts, frame_tx)


def frame_tx_power_w(nodes: FleetNodes, tx: Transmissions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame at its own TX power (ADR changes it), from each board's radio curve and power tree:
    (battery power, TX current, regulator loss) while transmitting."""
    power, current, loss = np.empty(len(tx)), np.empty(len(tx)), np.empty(len(tx))
    one = len(nodes.radios) == 1  # one board: every frame, without selecting
    group = None if one else nodes.group[tx.node]
    for g, radio in enumerate(nodes.radios):
        sel = slice(None) if one else group == g
        if not one and not sel.any():
            continue
        values = tx.tx_power_dbm[sel]
        # a few power levels: each level's figures once (hashing and bisection, not np.unique's sort), then
        # spread to the frames (the same elementwise arithmetic)
        powers = np.sort(pd.unique(values))
        level = np.searchsorted(powers, values)
        bp = nodes.powers[g]
        cur = np.array([radio.tx_current_a(float(p)) for p in powers])
        lo = np.asarray(bp.loss_w("radio", cur), dtype=float)
        current[sel] = cur[level]
        loss[sel] = lo[level]
        power[sel] = (bp.rail_voltage_v("radio") * cur + lo)[level]
    return power, current, loss


def policy_powers(nodes: FleetNodes, tx: Transmissions | None, on_air: np.ndarray | None,
                  frame_tx: tuple | None = None, tx_sums: tuple | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(load power, regulator loss) per node and slot for this policy. Where TX power varied per frame,
    the TX slot draws the time-weighted means of the frames' powers, so that TX time x power is the
    frames' energy. `frame_tx`: frame_tx_power_w's result for `tx` where it is at hand (NodeLoads). `tx` None:
    every frame at the configured TX power, or the sums `tx_sums` (tx_power_sums') a run in chunks kept."""
    load_w, loss_w = np.zeros(nodes.currents_a.shape), np.zeros(nodes.currents_a.shape)
    for g, sl in nodes.group_rows():
        load_w[sl], loss_w[sl] = nodes.powers[g].slot_powers_w(nodes.currents_a[sl])
    if tx is not None and tx.tx_power_dbm is not None:
        _, current, loss = frame_tx_power_w(nodes, tx) if frame_tx is None else frame_tx
        tx_sums = tx_power_sums(nodes.n, tx.node, tx.tx_s, current, loss, on_air & (tx.tx_s > 0))
    if tx_sums is None:
        return load_w, loss_w
    slot = SLOT_INDEX[("radio", "tx")]
    volts = np.array([bp.rail_voltage_v("radio") for bp in nodes.powers])[nodes.group]
    t, q, lq = tx_sums
    has = t > 0
    load_w[has, slot] = volts[has] * q[has] / t[has]
    loss_w[has, slot] = lq[has] / t[has]
    return load_w, loss_w


def tx_power_sums(n: int, node: np.ndarray, tx_s: np.ndarray, current_a: np.ndarray, loss_w: np.ndarray,
                  sel: np.ndarray, into: tuple | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per node, over the frames `sel` (on air, with TX time): TX time, TX time x current and TX time x regulator
    loss, summed in frame order (`into`: onto these running sums, in place; a run in chunks)."""
    node = node[sel]
    parts = (tx_s[sel], (tx_s * current_a)[sel], (tx_s * loss_w)[sel])
    if into is None:
        return tuple(np.bincount(node, weights=w, minlength=n) for w in parts)
    for total, w in zip(into, parts):
        np.add.at(total, node, w)
    return into


# ---- battery -------------------------------------------------------------------------------------
def node_deaths(nodes: FleetNodes, loads: NodeLoads, tx: Transmissions, duration_s: float) -> np.ndarray:
    """When each node's battery empties within the run (inf if it lasts): steady drain plus its frames,
    against the usable energy at the node's mean power over the run; never after its shelf life."""
    n = nodes.n
    died = np.full(n, np.inf)
    sent = ~tx.dropped
    burst_total = np.bincount(tx.node[sent], weights=loads.frame_energy_j[sent], minlength=n)
    lb = loads.listening_bursts
    if lb is not None:  # listening within the run (its chunks end by the end of the run)
        burst_total = burst_total + listening_burst_j(lb, n, duration_s)
    budget = battery_budget(nodes, loads.steady_w + burst_total / duration_s)
    at_risk = np.flatnonzero((loads.steady_w + budget.self_discharge_w) * duration_s + burst_total
                             >= budget.usable_j)
    if at_risk.size:
        bounds = np.searchsorted(tx.node, np.arange(n + 1))
        lbounds = np.searchsorted(lb[0], np.arange(n + 1)) if lb is not None else None
        for i in at_risk.tolist():
            lo, hi = bounds[i], bounds[i + 1]
            keep = sent[lo:hi]
            times, energy = tx.start_s[lo:hi][keep], loads.frame_energy_j[lo:hi][keep]
            if lb is not None and lbounds[i + 1] > lbounds[i]:
                times = np.concatenate((times, lb[1][lbounds[i]:lbounds[i + 1]]))
                energy = np.concatenate((energy, lb[2][lbounds[i]:lbounds[i + 1]]))
            died[i] = death_time_s(budget.usable_j[i], loads.steady_w[i] + budget.self_discharge_w[i], times, energy)
    died = np.minimum(died, budget.shelf_life_s)
    died[died > duration_s] = np.inf
    return died


def fates_before_air(tx: Transmissions, died: np.ndarray, duration_s: float) -> np.ndarray:
    """Set the fates decided before reception; return the mask of frames that went on air.

    A frame the node would start (or, if dropped, would have been ready) after its death is never
    handed to the radio; one still waiting when the run ends is pending; dropped frames keep their
    duty-cycle fate while the node is alive.
    """
    t = np.where(tx.dropped, tx.ready_s, tx.start_s)
    dead = t >= died[tx.node]
    pending = ~dead & (t >= duration_s)
    tx.fate = not_on_air_fates(tx, dead, pending)
    tx.gateway = np.full(len(tx), -1, dtype=np.int16)
    return tx.fate == Fate.DELIVERED


# ---- energy ledger ---------------------------------------------------------------------------------
def charge_windows(ledger: EnergyLedger, nodes: FleetNodes, loads: NodeLoads, lifetime_s: np.ndarray,
                   woke_alive: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Charge each node's window work (MCU and sensor active time) for the windows it completed while alive.
    `woke_alive` (a run in chunks): per node, the windows that woke it and ended while it was alive, and whether
    it is event-driven (instead of `loads.triggered_windows`, which then holds one chunk's)."""
    n = nodes.n
    period, span, phase = nodes.window_period_s, nodes.window_span_s, nodes.phase_s
    windows_alive = np.clip(np.floor((lifetime_s - span - phase) / period) + 1, 0, nodes.n_windows)
    windows_alive = np.where(lifetime_s >= span + phase, windows_alive, 0)
    # the window under way when the node died or the run ended: the sample periods it completed (no inference)
    under_way = np.clip(np.floor((lifetime_s - phase - windows_alive * period) / loads.sample_period_s + 1e-9), 0,
                        loads.window_samples)
    if woke_alive is not None:  # event-driven nodes: the windows that woke them, while alive
        count, event_driven = woke_alive
        windows_alive = np.where(event_driven, count, windows_alive)
        under_way = np.where(event_driven, 0.0, under_way)
    elif loads.triggered_windows is not None:
        node, end, event_driven = loads.triggered_windows
        alive = end <= lifetime_s[node]
        windows_alive = np.where(event_driven, np.bincount(node[alive], minlength=n), windows_alive)
        under_way = np.where(event_driven, 0.0, under_way)
    all_nodes = np.arange(n)
    ledger.charge("mcu", "active", all_nodes, windows_alive * loads.mcu_active_per_window_s
                  + under_way * loads.mcu_active_per_sample_s)
    ledger.charge("sensor", "active", all_nodes, windows_alive * loads.sensor_active_per_window_s
                  + under_way * loads.sensor_active_per_sample_s)


def charge_ledger(nodes: FleetNodes, loads: NodeLoads, tx: Transmissions, on_air: np.ndarray,
                  lifetime_s: np.ndarray) -> EnergyLedger:
    n = nodes.n
    ledger = EnergyLedger(n)
    charge_windows(ledger, nodes, loads, lifetime_s)
    all_nodes = np.arange(n)
    air_nodes = tx.node[on_air]
    ledger.charge("radio", "standby", air_nodes, tx.standby_s[on_air])
    ledger.charge("radio", "tx", air_nodes, tx.tx_s[on_air])
    ledger.charge("radio", "rx", air_nodes, tx.rx_s[on_air])
    charge_listening(ledger, loads.listening, lifetime_s)
    ka = loads.keep_alive
    if ka is not None:
        # a steady load: charged for the time alive (the mean over whole keep-alive periods)
        k = lifetime_s / ka.period_s
        ledger.charge("radio", "standby", all_nodes, k * ka.standby_s)
        ledger.charge("radio", "tx", all_nodes, k * ka.tx_s)
        ledger.charge("radio", "rx", all_nodes, k * ka.rx_s)
    ledger.close(lifetime_s)
    return ledger


def charge_listening(ledger: EnergyLedger, listening: Listening | None, lifetime_s: np.ndarray) -> None:
    """Charge the time outside frames (receiving and applying updates, `Listening`), until each node died or
    the run ended; after the windows and frames, before the keep-alive."""
    li = listening
    if li is None or not li.node.size:
        return
    lived = li.alive_share(lifetime_s)
    ledger.charge("radio", "rx", li.node, lived * li.rx_s)
    ledger.charge("radio", "tx", li.node, lived * li.tx_s)
    ledger.charge("radio", "standby", li.node, lived * li.standby_s)
    # applying updates: flash time and the integrity check. An MCU active all the time (a node that streams
    # its samples) does this in time it would have spent active: that part moves from active to flash.
    mcu = [SLOT_INDEX[("mcu", "active")], SLOT_INDEX[("mcu", "flash")]]
    spare = np.maximum(lifetime_s - ledger.time_s[:, mcu].sum(axis=1), 0.0)
    work = np.bincount(li.node, weights=lived * (li.flash_s + li.cpu_s), minlength=ledger.n_nodes)
    displaced = np.maximum(work - spare, 0.0)
    ledger.charge("mcu", "flash", li.node, lived * li.flash_s)
    ledger.charge("mcu", "active", li.node, lived * li.cpu_s)
    ledger.time_s[:, mcu[0]] -= displaced


def listening_burst_j(listening_bursts: tuple | None, n: int, duration_s: float) -> np.ndarray | None:
    """Per node: the energy of its listening bursts (NodeLoads.listening_bursts) within the run; None without."""
    if listening_bursts is None:
        return None
    node, t, energy = listening_bursts
    return np.bincount(node, weights=np.where(t <= duration_s, energy, 0.0), minlength=n)


# ---- backhaul: message delivery --------------------------------------------------------------------
@dataclass
class Delivery:
    delivered: np.ndarray  # per message: every fragment delivered
    arrival_s: np.ndarray  # at the network server; NaN if not delivered


def deliver_messages(network, tx: Transmissions, n_messages: int) -> Delivery:
    """A message is delivered when all its fragments are; it arrives after the gateway's backhaul path."""
    topology = build_topology(network)
    paths = [path_to_cloud(topology, g.id) for g in network.gateways]
    gw_latency = np.array([p.latency_s for p in paths] + [np.nan])
    gw_per_byte = np.array([p.seconds_per_byte for p in paths] + [np.nan])
    ok = tx.fate == Fate.DELIVERED
    arrival = tx.start_s + tx.busy_s + gw_latency[tx.gateway] + tx.phy_bytes * gw_per_byte[tx.gateway]
    arrival = np.where(ok, arrival, np.nan)
    if n_messages == 0:
        return Delivery(np.zeros(0, bool), np.zeros(0))
    first_frame = np.flatnonzero(np.concatenate(([True], np.diff(tx.message) != 0)))
    all_ok = np.logical_and.reduceat(ok, first_frame)
    msg_arrival = np.where(all_ok, np.fmax.reduceat(arrival, first_frame), np.nan)
    return Delivery(all_ok, msg_arrival)


# ---- cloud and detection ---------------------------------------------------------------------------
@dataclass
class Decisions:
    time_s: np.ndarray  # per message: when the application knows; NaN if no decision
    positive: np.ndarray  # per message: the decision says "event"
    cloud_inferences: int
    cloud_wait_s: np.ndarray  # queueing delay of each cloud inference


def decide(network, plans: list[GroupPlan], messages: Messages, delivery: Delivery) -> Decisions:
    """Raw windows queue for inference at the cloud (SimPy); event messages are decisions on arrival."""
    n = len(messages)
    raw_idx = np.flatnonzero(delivery.delivered & (messages.kind == MessageKind.RAW))
    cloud = simulate_cloud(delivery.arrival_s[raw_idx], network.cloud.inference_time, network.cloud.servers)
    time_s = np.full(n, np.nan)
    positive = np.zeros(n, dtype=bool)
    time_s[raw_idx] = cloud.done_s
    event_ok = delivery.delivered & (messages.kind == MessageKind.EVENT)
    time_s[event_ok] = delivery.arrival_s[event_ok]
    positive[event_ok] = True
    for p in plans:
        sel = raw_idx[messages.group[raw_idx] == p.index]
        positive[sel] = p.verdicts.cloud_positive[messages.window[sel]]
    return Decisions(time_s, positive, int(raw_idx.size), cloud.start_s - delivery.arrival_s[raw_idx])


def cloud_waits(network, plans: list[GroupPlan], messages: Messages, delivery: Delivery,
                decisions: Decisions) -> list[np.ndarray]:
    """Per group: each cloud inference's queueing (decided, minus arrived, minus the inference itself)."""
    raw = delivery.delivered & (messages.kind == MessageKind.RAW)
    wait = decisions.time_s - delivery.arrival_s - network.cloud.inference_time
    return [wait[raw & (messages.group == p.index)] for p in plans]


@dataclass
class Detection:
    event_latency_s: list[np.ndarray]  # per group: per event, NaN if not detected
    true_positive_decisions: list[int]
    positive_decisions: list[int]


def detect(plans: list[GroupPlan], messages: Messages, decisions: Decisions) -> Detection:
    """Per group: each event's detection latency (first positive decision about a window overlapping it)."""
    latencies, tp, pos = [], [], []
    for p in plans:
        positive = np.flatnonzero(decisions.positive & (messages.group == p.index))
        ev = p.event_id[messages.window[positive]]
        first_seen = np.full(p.event_onset_s.shape[0], np.inf)
        hit = ev >= 0
        np.minimum.at(first_seen, ev[hit], decisions.time_s[positive][hit])
        latencies.append(np.where(np.isfinite(first_seen), first_seen - p.event_onset_s, np.nan))
        tp.append(int(hit.sum()))
        pos.append(int(positive.shape[0]))
    return Detection(latencies, tp, pos)


def battery_life(nodes: FleetNodes, energy_slots_j: np.ndarray, lifetime_s: np.ndarray,
                 died: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(life_s, limit) per node. Projected from each node's mean battery power in the run and capped at
    the cell's shelf life; dead nodes report when they died. `limit` is the index in LIMITS of what
    binds: energy, brown-out or calendar."""
    load_power = energy_slots_j.sum(axis=1) / lifetime_s
    budget = battery_budget(nodes, load_power)
    life, calendar = projected_life_s(budget.usable_j, load_power, budget.self_discharge_w, budget.shelf_life_s)
    dead = np.isfinite(died)
    calendar = np.where(dead, died >= budget.shelf_life_s, calendar)
    limit = np.where(calendar, LIMITS.index("calendar"),
                     np.where(budget.brownout_binds, LIMITS.index("brown-out"), LIMITS.index("energy")))
    return np.where(dead, died, life), limit.astype(np.int8)
