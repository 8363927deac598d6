"""The stages of one policy's run, each a function over the previous stages' typed results.

    messages -> link.transmit -> battery -> fates before air -> energy ledger -> link.receive
             -> backhaul (message delivery) -> cloud -> detection

Nothing here knows which radio technology the link is: the link's `Transmissions` carry every
frame's attempts, radio state times and fate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iotsim.energy.battery import LinearBattery
from iotsim.energy.ledger import COMPONENTS, SLOT_INDEX, EnergyLedger, slot_currents_a
from iotsim.engine.fleet import GroupPlan
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
    voltage_v: np.ndarray
    phase_s: np.ndarray
    window_period_s: np.ndarray
    window_span_s: np.ndarray
    n_windows: np.ndarray
    usable_energy_j: np.ndarray
    self_discharge_w: np.ndarray
    batteries: dict  # group index -> LinearBattery
    link: LinkNodes
    radios: list  # per group index: the board's radio (TX current at any power)

    @property
    def n(self) -> int:
        return int(self.group.shape[0])


def fleet_nodes(plans: list[GroupPlan], link: Link) -> FleetNodes:
    group = np.concatenate([np.full(p.n_nodes, p.index, dtype=np.int64) for p in plans])
    batteries = {p.index: battery_of(p.board) for p in plans}
    currents = np.concatenate([np.tile(slot_currents_a(p.board, link.tx_power_dbm), (p.n_nodes, 1)) for p in plans])
    startup = np.concatenate([np.full(p.n_nodes, p.board.radio.startup_time_s) for p in plans])
    phase = np.concatenate([p.phase_s for p in plans])
    return FleetNodes(
        group=group, currents_a=currents,
        voltage_v=np.concatenate([np.full(p.n_nodes, p.board.supply_voltage_v) for p in plans]),
        phase_s=phase,
        window_period_s=np.concatenate([np.full(p.n_nodes, p.window_period_s) for p in plans]),
        window_span_s=np.concatenate([np.full(p.n_nodes, p.window_span_s) for p in plans]),
        n_windows=np.concatenate([p.n_windows for p in plans]),
        usable_energy_j=np.array([batteries[g].usable_energy_j for g in group]),
        self_discharge_w=np.array([batteries[g].self_discharge_power_w for g in group]),
        batteries=batteries,
        link=LinkNodes(rx_power_dbm=np.concatenate([p.rx_power_dbm for p in plans]),
                       sf=np.concatenate([p.sf for p in plans]), startup_s=startup, phase_s=phase,
                       min_tx_power_dbm=max(min(p.board.radio.tx_powers_dbm) for p in plans)),
        radios=[p.board.radio for p in plans],
    )


def battery_of(board) -> LinearBattery:
    b = board.battery
    return LinearBattery(b.capacity_mah, b.nominal_voltage_v, b.usable_fraction, b.self_discharge_per_year)


# ---- node loads ---------------------------------------------------------------------------------
@dataclass
class NodeLoads:
    """What a node draws apart from its frames: sleep, per-window work and the link's keep-alive."""

    mcu_active_per_window_s: np.ndarray
    sensor_active_per_window_s: np.ndarray
    steady_w: np.ndarray  # mean power without frames
    frame_energy_j: np.ndarray  # per frame: radio energy above sleep, all attempts
    keep_alive: KeepAlive | None


def node_loads(plans: list[GroupPlan], policy: Policy, nodes: FleetNodes, tx: Transmissions,
               keep_alive: KeepAlive | None) -> NodeLoads:
    n = nodes.n
    mcu_t = np.zeros(n)
    sens_t = np.zeros(n)
    win_delta_j = np.zeros(n)  # energy above sleep per window
    start = 0
    for p in plans:
        sl = slice(start, start + p.n_nodes)
        sp = p.sample_period_s
        m = p.window_samples * min(p.board.mcu.wake_time_s, sp)
        if policy.runs_on_device_inference:
            m += p.inference_time_s
        # a node that samples continuously (audio, ECG) infers while the next window streams in by DMA:
        # the MCU is at most always active (plan_group warns when inference cannot keep up)
        m = min(m, p.window_period_s)
        s = p.window_samples * min(max((x.sample_time_s for x in p.board.sensors), default=0.0), sp)
        mcu_t[sl], sens_t[sl] = m, s
        cur = nodes.currents_a[start]
        win_delta_j[sl] = p.board.supply_voltage_v * (
            m * (cur[SLOT_INDEX[("mcu", "active")]] - cur[SLOT_INDEX[("mcu", "sleep")]])
            + s * (cur[SLOT_INDEX[("sensor", "active")]] - cur[SLOT_INDEX[("sensor", "sleep")]])
        )
        start += p.n_nodes
    cur, v = nodes.currents_a, nodes.voltage_v
    standby_a, tx_a, rx_a = (cur[:, SLOT_INDEX[("radio", s)]] - cur[:, SLOT_INDEX[("radio", "sleep")]]
                             for s in ("standby", "tx", "rx"))
    # radio current above sleep per node, looked up per frame (no frames x slots matrix)
    frame_tx_a = tx_a[tx.node] if tx.tx_power_dbm is None else frame_tx_current_a(nodes, tx) - \
        cur[tx.node, SLOT_INDEX[("radio", "sleep")]]
    frame_j = v[tx.node] * (tx.standby_s * standby_a[tx.node] + tx.tx_s * frame_tx_a + tx.rx_s * rx_a[tx.node])
    sleep_w = v * cur[:, [SLOT_INDEX[(c, "sleep")] for c in COMPONENTS]].sum(axis=1)
    steady_w = sleep_w + win_delta_j / nodes.window_period_s
    if keep_alive is not None:  # the link's keep-alive traffic is a steady load
        steady_w = steady_w + v * (
            keep_alive.standby_s * standby_a + keep_alive.tx_s * tx_a + keep_alive.rx_s * rx_a
        ) / keep_alive.period_s
    return NodeLoads(mcu_t, sens_t, steady_w, frame_j, keep_alive)


def frame_tx_current_a(nodes: FleetNodes, tx: Transmissions) -> np.ndarray:
    """TX current of each frame at its own TX power (ADR changes it), from each board's radio curve."""
    out = np.empty(len(tx))
    group = nodes.group[tx.node]
    for g, radio in enumerate(nodes.radios):
        sel = group == g
        if not sel.any():
            continue
        powers, inverse = np.unique(tx.tx_power_dbm[sel], return_inverse=True)
        out[sel] = np.array([radio.tx_current_a(float(p)) for p in powers])[inverse.reshape(-1)]
    return out


def policy_currents(nodes: FleetNodes, loads: NodeLoads, tx: Transmissions, on_air: np.ndarray) -> np.ndarray:
    """Slot currents per node for this policy: where TX power varied per frame, the TX slot draws the
    time-weighted mean of the frames' TX currents, so that TX time x current is each frame's energy."""
    if tx.tx_power_dbm is None:
        return nodes.currents_a
    cur = nodes.currents_a.copy()
    slot = SLOT_INDEX[("radio", "tx")]
    sel = on_air & (tx.tx_s > 0)
    t = np.bincount(tx.node[sel], weights=tx.tx_s[sel], minlength=nodes.n)
    q = np.bincount(tx.node[sel], weights=(tx.tx_s * frame_tx_current_a(nodes, tx))[sel], minlength=nodes.n)
    has = t > 0
    cur[has, slot] = q[has] / t[has]
    return cur


# ---- battery -------------------------------------------------------------------------------------
def node_deaths(nodes: FleetNodes, loads: NodeLoads, tx: Transmissions, duration_s: float) -> np.ndarray:
    """When each node's battery empties within the run (inf if it lasts): steady drain plus its frames."""
    n = nodes.n
    died = np.full(n, np.inf)
    sent = ~tx.dropped
    burst_total = np.bincount(tx.node[sent], weights=loads.frame_energy_j[sent], minlength=n)
    at_risk = np.flatnonzero((loads.steady_w + nodes.self_discharge_w) * duration_s + burst_total
                             >= nodes.usable_energy_j)
    if at_risk.size:
        bounds = np.searchsorted(tx.node, np.arange(n + 1))
        for i in at_risk.tolist():
            lo, hi = bounds[i], bounds[i + 1]
            keep = sent[lo:hi]
            battery = nodes.batteries[int(nodes.group[i])]
            died[i] = min(battery.death_time_s(loads.steady_w[i], tx.start_s[lo:hi][keep],
                                               loads.frame_energy_j[lo:hi][keep]), np.inf)
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
def charge_ledger(nodes: FleetNodes, loads: NodeLoads, tx: Transmissions, on_air: np.ndarray,
                  lifetime_s: np.ndarray) -> EnergyLedger:
    n = nodes.n
    ledger = EnergyLedger(n)
    period, span, phase = nodes.window_period_s, nodes.window_span_s, nodes.phase_s
    windows_alive = np.clip(np.floor((lifetime_s - span - phase) / period) + 1, 0, nodes.n_windows)
    windows_alive = np.where(lifetime_s >= span + phase, windows_alive, 0)
    all_nodes = np.arange(n)
    ledger.charge("mcu", "active", all_nodes, windows_alive * loads.mcu_active_per_window_s)
    ledger.charge("sensor", "active", all_nodes, windows_alive * loads.sensor_active_per_window_s)
    air_nodes = tx.node[on_air]
    ledger.charge("radio", "standby", air_nodes, tx.standby_s[on_air])
    ledger.charge("radio", "tx", air_nodes, tx.tx_s[on_air])
    ledger.charge("radio", "rx", air_nodes, tx.rx_s[on_air])
    ka = loads.keep_alive
    if ka is not None:
        # a steady load: charged for the time alive (the mean over whole keep-alive periods)
        k = lifetime_s / ka.period_s
        ledger.charge("radio", "standby", all_nodes, k * ka.standby_s)
        ledger.charge("radio", "tx", all_nodes, k * ka.tx_s)
        ledger.charge("radio", "rx", all_nodes, k * ka.rx_s)
    ledger.close(lifetime_s)
    return ledger


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


def battery_life_s(nodes: FleetNodes, energy_slots_j: np.ndarray, lifetime_s: np.ndarray,
                   died: np.ndarray) -> np.ndarray:
    """Projected life from each node's mean load in the run; dead nodes report when they died."""
    load_power = energy_slots_j.sum(axis=1) / lifetime_s
    life = nodes.usable_energy_j / (load_power + nodes.self_discharge_w)
    return np.where(np.isfinite(died), died, life)
