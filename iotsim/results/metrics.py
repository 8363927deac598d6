"""The metric registry: every summary metric declared once (name, unit, labels, how it is computed,
which radio technologies it applies to). The summary table, the CLI table, the report and sweeps
all read it, so no list of metrics is written twice (as Mesa's DataCollector declares reporters).

A metric is computed per (policy, fleet group) from a `GroupView` of one run.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import numpy as np
import pandas as pd

from iotsim.energy.battery import LIMITS
from iotsim.network.fate import Fate

ALL_TECHNOLOGIES = frozenset({"lorawan", "ble", "wifi", "ieee802154", "nbiot"})


@dataclass
class GroupView:
    """One (policy, group) of a run, with the masks the metrics share."""

    result: object  # RunResult
    outcome: object  # PolicyOutcome
    plan: object  # GroupPlan
    group_position: int  # position of the group in the run's plans
    nodes: pd.DataFrame  # rows of the nodes table for this policy and group

    @property
    def tally(self):
        """The policy's per-node counts (iotsim.engine.tally.Tally)."""
        return self.outcome.tally

    def total(self, per_node: np.ndarray) -> int:
        """A per-node count of the tally summed over the group's nodes."""
        return int(per_node[self.nodes_slice].sum())

    def node_values(self, per_node: np.ndarray) -> np.ndarray:
        """A per-node count of the tally for the group's nodes, as float64 (one row per node)."""
        return np.asarray(per_node[self.nodes_slice], dtype=np.float64)

    @property
    def node_stats(self) -> dict:
        return self.tally.node_stats

    @cached_property
    def days(self) -> np.ndarray:
        return self.nodes.lifetime_in_run_s.to_numpy() / 86400.0

    @property
    def latency(self) -> np.ndarray:
        return self.outcome.event_latency_s[self.group_position]

    def count(self, fate: Fate) -> int:
        """Frames of the group with this fate."""
        return self.total(self.tally.count(fate))

    def cloud_wait_percentile(self, q: float) -> float:
        waits = self.tally.cloud_waits[self.group_position]
        return _pct(waits, q) if isinstance(waits, np.ndarray) else waits.percentile(q)

    def node_stat(self, name: str) -> float:
        """A per-node counter the link reports (downlinks, ACKs, ...), summed over the group's nodes; 0 if none."""
        values = self.node_stats.get(name)
        if values is None:
            return 0
        return values[self.nodes_slice].sum().item()

    @property
    def nodes_slice(self) -> slice:
        start = sum(p.n_nodes for p in self.result.plans[: self.group_position])
        return slice(start, start + self.plan.n_nodes)


@dataclass(frozen=True)
class Sample:
    """How a metric comes from independent units shared by every policy (the same nodes, the same
    ground-truth events), so two policies' values can be compared unit by unit (iotsim.results.findings).

    `values(view)` gives one row per unit: shape (n,), or (n, 2) of (numerator, denominator) for "ratio".
    `statistic` turns the rows into the metric: "mean", "sum", "median", "p10"/"p50"/"p95" (of the
    finite values) or "ratio" (sum of numerators / sum of denominators)."""

    unit: str  # "node" or "event"
    values: Callable[[GroupView], np.ndarray]
    statistic: str


@dataclass(frozen=True)
class Metric:
    name: str  # column name (unit in the name where not obvious)
    label: str  # header with unit, for the report
    short: str  # terminal header
    kind: str  # "int" (a count), "float", "ratio" (0..1)
    compute: Callable[[GroupView], float]
    description: str
    technologies: frozenset = ALL_TECHNOLOGIES
    terminal: bool = False  # shown in `iotsim run`'s table
    better: str = ""  # "higher" or "lower" if one policy can be best on it; "" for descriptive counts
    sample: Sample | None = None  # per-unit values for paired intervals between policies
    harvesting: bool = False  # only in runs with solar-harvesting groups
    updates: bool = False  # only in runs with model updates (scenario `updates:`)


def _pct(values: np.ndarray, q: float) -> float:
    values = values[np.isfinite(values)]
    return float(np.percentile(values, q)) if values.size else float("nan")


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole else float("nan")


def _per_node_day(column: str) -> Callable[[GroupView], float]:
    return lambda v: float(np.mean(v.nodes[column].to_numpy() / v.days))


def _node_days(column: str) -> Callable[[GroupView], np.ndarray]:
    return lambda v: v.nodes[column].to_numpy(dtype=np.float64) / v.days


def _nodes_column(column: str) -> Callable[[GroupView], np.ndarray]:
    return lambda v: v.nodes[column].to_numpy(dtype=np.float64)


def _messages_by_node(v: GroupView) -> np.ndarray:
    """Per node: (messages delivered, messages offered)."""
    t = v.tally
    return np.column_stack([v.node_values(t.messages_delivered), v.node_values(t.messages_offered)])


def _packets_by_node(v: GroupView, lost: bool) -> np.ndarray:
    t = v.tally
    offered, delivered = v.node_values(t.offered()), v.node_values(t.count(Fate.DELIVERED))
    return offered - delivered if lost else np.column_stack([delivered, offered])


def _decisions_by_node(v: GroupView) -> np.ndarray:
    """Per node: (positive decisions about windows overlapping an event, positive decisions)."""
    t = v.tally
    return np.column_stack([v.node_values(t.true_positive_decisions), v.node_values(t.positive_decisions)])


def _cloud_by_node(v: GroupView) -> np.ndarray:
    return v.node_values(v.tally.cloud_inferences)


LORAWAN = frozenset({"lorawan"})
STAR = frozenset({"ble", "wifi"})
MESH = frozenset({"ieee802154"})
CELLULAR = frozenset({"nbiot"})
_LOSS_TECHNOLOGIES = {
    Fate.BELOW_SENSITIVITY: LORAWAN | CELLULAR, Fate.COLLISION: LORAWAN, Fate.DEMODULATORS_BUSY: LORAWAN,
    Fate.GATEWAY_TRANSMITTING: LORAWAN, Fate.LINK_RETRIES: STAR | MESH | CELLULAR, Fate.DUTY_CYCLE: LORAWAN,
    Fate.CHANNEL_ACCESS: MESH, Fate.QUEUE_FULL: MESH, Fate.NO_ROUTE: MESH, Fate.RELAY_DEAD: MESH,
}
LOSS_FATES = tuple(_LOSS_TECHNOLOGIES)
"""Fates counted as losses of offered frames (each has a `packets_lost_<reason>` metric)."""


def _loss_metric(fate: Fate) -> Metric:
    words = fate.reason.replace("_", " ")
    where = "dropped by the node before air" if fate is Fate.DUTY_CYCLE else "lost on air"
    return Metric(
        f"packets_lost_{fate.reason}", f"Packets lost: {words}", f"lost {words}", "int",
        lambda v, f=fate: v.count(f), f"frames {where}: {words}", _LOSS_TECHNOLOGIES[fate])



# ---- meshes --------------------------------------------------------------------------------------
def _downtime_s(v: GroupView) -> np.ndarray:
    """Per node of the group: seconds off with an empty store (zeros for nodes that do not harvest)."""
    h = v.outcome.harvest
    return np.zeros(v.plan.n_nodes) if h is None else h.downtime_s()[v.nodes_slice]


def _harvested_per_node_day(v: GroupView) -> float:
    h = v.outcome.harvest
    if h is None or v.plan.index not in h.results:
        return 0.0
    return float(h.results[v.plan.index][1].harvested_j.sum() / v.plan.n_nodes / (h.duration_s / 86400.0))


def _node_stat(v: GroupView, name: str) -> np.ndarray:
    """Per node of the group: a counter the link reports (zeros if it reports none)."""
    values = v.node_stats.get(name)
    n = v.nodes_slice.stop - v.nodes_slice.start
    return np.zeros(n) if values is None else np.asarray(values)[v.nodes_slice]


def _relays(v: GroupView) -> np.ndarray:
    """Per node of the group: it forwarded frames for others in this run."""
    return _node_stat(v, "frames_forwarded") > 0


def _first_relay_death_days(v: GroupView) -> float:
    relays = _relays(v)
    life = v.outcome.battery_life_s[v.nodes_slice] / 86400.0
    return float(life[relays].min()) if relays.any() else float("nan")


def mesh_partition_days(result, outcome) -> float:
    """When the mesh first cuts off a live node: nodes die at their projected battery lives (the policy's; equal
    lives together), and the first deaths that leave a live node, which had a route at the start, without any
    path of usable links to a live border router partition the network. NaN if that never happens before every
    node has died, or without a mesh. Computed once per policy (vectorised breadth-first searches)."""
    cached = getattr(outcome, "_partition_days", None)
    if cached is not None:
        return cached
    value = _partition_days(result, outcome)
    outcome._partition_days = value
    return value


def _partition_days(result, outcome) -> float:
    state = result.link_state
    if not state or "graph" not in state:
        return float("nan")
    n, graph, roots = state["n"], state["graph"], list(state["roots"])
    m = graph.number_of_nodes()
    edges = np.array(list(graph.edges()), dtype=np.int64).reshape(-1, 2)
    src, dst = edges[:, 0], edges[:, 1]
    # links toward the roots, reversed: from each node to the nodes that can send to it
    order = np.argsort(dst, kind="stable")
    nbr = src[order]
    ptr = np.searchsorted(dst[order], np.arange(m + 1))

    def reachable(alive: np.ndarray) -> np.ndarray:
        """Nodes with a path to a live border router through live nodes (a breadth-first search from the
        routers over the reversed links, one level at a time)."""
        seen = np.zeros(m, dtype=bool)
        frontier = np.array([r for r in roots if alive[r]], dtype=np.int64)
        seen[frontier] = True
        while frontier.size:
            counts = ptr[frontier + 1] - ptr[frontier]
            starts = np.repeat(ptr[frontier], counts)
            offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
            cand = np.unique(nbr[starts + offsets])
            cand = cand[alive[cand] & ~seen[cand]]
            seen[cand] = True
            frontier = cand
        return seen

    alive = np.ones(m, dtype=bool)
    start = reachable(alive)[:n]
    life = np.asarray(outcome.battery_life_s, dtype=np.float64) / 86400.0
    can_relay = np.isin(np.arange(n), dst)  # someone can send through it
    for t in np.unique(life):
        dying = np.flatnonzero(life == t)
        alive[dying] = False
        # only a node someone alive could route through can cut anyone off
        if not (can_relay[dying].any() and (np.isin(dst, dying) & alive[src]).any()):
            continue
        lost = start & alive[:n] & ~reachable(alive)[:n]
        if lost.any():
            return float(t)
    return float("nan")


def _orphans(v: GroupView) -> int:
    state = v.result.link_state
    if not state or "tree" not in state:
        return 0
    from iotsim.mesh.routing import ORPHAN

    return int((state["tree"].parent[v.nodes_slice] == ORPHAN).sum())


# ---- model updates -------------------------------------------------------------------------------
def _group_updates(v: GroupView) -> list:
    """The model updates to the group, as the view's policy ran them, in order of start."""
    return [u for u in v.result.updates_of(v.outcome) if v.plan.index in u.group_indices]


def _update_members(v: GroupView, u) -> np.ndarray:
    """Which of update `u`'s nodes belong to the group."""
    return (u.nodes >= v.nodes_slice.start) & (u.nodes < v.nodes_slice.stop)


def _on_latest_model(v: GroupView) -> int:
    ups = _group_updates(v)
    if not ups:
        return 0
    u = ups[-1]
    return int(u.updated[_update_members(v, u)].sum())


def _latest_s_to_95pct(v: GroupView) -> float:
    """From the latest update's start until 95 % of the group's nodes run its model (NaN: never)."""
    from iotsim.ota.rollout import time_to_share

    ups = _group_updates(v)
    if not ups:
        return float("nan")
    u = ups[-1]
    done = np.full(v.plan.n_nodes, np.nan)  # the group's nodes left out of it never run it
    done[u.nodes[_update_members(v, u)] - v.nodes_slice.start] = (u.activated_s - u.start_s)[_update_members(v, u)]
    t = time_to_share(done, 0.95)
    return t if np.isfinite(t) else float("nan")


def _update_energy_by_node(v: GroupView) -> np.ndarray:
    """Per node of the group: battery energy of its model updates: receiving (listening, fragments, unicast polls)
    and applying."""
    energy = np.zeros(v.plan.n_nodes)
    for u in _group_updates(v):
        mine = _update_members(v, u)
        each = u.listen_energy_j + u.apply_energy_j + (u.poll_energy_j if u.poll_energy_j is not None else 0.0)
        np.add.at(energy, u.nodes[mine] - v.nodes_slice.start, each[mine])
    return energy


METRICS: tuple[Metric, ...] = (
    Metric("nodes", "Nodes", "nodes", "int", lambda v: v.plan.n_nodes, "nodes in the group"),
    Metric("energy_j_per_node_day", "Energy (J/node/day)", "J/node/day", "float",
           lambda v: float(np.mean(v.nodes.energy_j.to_numpy() / v.days)),
           "mean energy drawn per node per day alive", terminal=True,
           better="lower", sample=Sample("node", _node_days("energy_j"), "mean")),
    Metric("battery_life_days", "Battery life (days)", "battery (d)", "float",
           lambda v: float(np.median(v.nodes.battery_life_days)), "median projected battery life", terminal=True,
           better="higher", sample=Sample("node", _nodes_column("battery_life_days"), "median")),
    Metric("battery_life_p10_days", "Battery life p10 (days)", "battery p10 (d)", "float",
           lambda v: float(np.percentile(v.nodes.battery_life_days, 10)),
           "10th percentile of projected battery life",
           better="higher", sample=Sample("node", _nodes_column("battery_life_days"), "p10")),
    *(Metric(f"battery_limit_{w.replace('-', '')}", f"Battery life limited by {w} (nodes)", f"lim. {w}", "int",
             lambda v, w=w: int((v.nodes.battery_life_limit == w).sum()),
             f"nodes whose battery life the {w} bound limits (see battery_life_limit in the nodes table)")
      for w in LIMITS),
    Metric("harvested_j_per_node_day", "Harvested (J/node/day)", "harvest J/d", "float",
           _harvested_per_node_day, "solar energy the charger delivered to the store, per "
           "node per day of the run (clipped when full included)", harvesting=True),
    Metric("downtime_h_per_node_day", "Downtime (h/node/day)", "down h/d", "float",
           lambda v: float(np.mean(_downtime_s(v)) / 3600 / v.result.scenario.duration * 86400),
           "hours a node was off (its store empty) per day of the run", terminal=True, harvesting=True,
           better="lower", sample=Sample("node", lambda v: _downtime_s(v) / 3600 / v.result.scenario.duration * 86400,
                                         "mean")),
    Metric("nodes_with_downtime", "Nodes with downtime", "nodes down", "int",
           lambda v: int((_downtime_s(v) > 0).sum()), "nodes whose store emptied at least once", harvesting=True),
    Metric("update_nodes_on_latest_model", "Nodes running the latest update's model", "on new model", "int",
           _on_latest_model, "the group's nodes running the model of the latest update sent to it by the end of the "
           "run (received, applied, checked)", better="higher", updates=True),
    Metric("update_s_to_95pct", "Latest update: time to 95 % of the nodes (s)", "update 95% (s)", "float",
           _latest_s_to_95pct, "from the latest update's start until 95 % of the group's nodes run its model "
           "(NaN: never within the run)", better="lower", updates=True),
    Metric("update_energy_j_per_node", "Model updates' energy (J/node)", "update J/node", "float",
           lambda v: float(_update_energy_by_node(v).mean()), "battery energy per node of the run's model updates: "
           "listening, fragments and class A polls, applying", better="lower",
           sample=Sample("node", _update_energy_by_node, "mean"), updates=True),
    Metric("nodes_died", "Nodes died", "died", "int", lambda v: int(v.nodes.died_at_s.notna().sum()),
           "nodes whose battery emptied within the run",
           better="lower", sample=Sample("node", lambda v: v.nodes.died_at_s.notna().to_numpy(dtype=np.float64), "sum")),
    Metric("bytes_uplinked_per_node_day", "Uplink (bytes/node/day)", "B/node/day", "float",
           _per_node_day("bytes_uplinked"), "PHY bytes put on air per node per day, every attempt", terminal=True,
           better="lower", sample=Sample("node", _node_days("bytes_uplinked"), "mean")),
    Metric("airtime_s_per_node_day", "Airtime (s/node/day)", "air s/node/day", "float",
           _per_node_day("airtime_s"), "time on air per node per day, every attempt",
           better="lower", sample=Sample("node", _node_days("airtime_s"), "mean")),
    Metric("messages_offered", "Messages offered", "msgs", "int", lambda v: v.total(v.tally.messages_offered),
           "messages the nodes handed to their radio within the run (unicast polls count as packets only)"),
    Metric("messages_delivered", "Messages delivered", "msgs ok", "int",
           lambda v: v.total(v.tally.messages_delivered), "messages whose every frame was delivered"),
    Metric("message_delivery_ratio", "Messages delivered (ratio)", "msg deliv.", "ratio",
           lambda v: _ratio(v.total(v.tally.messages_delivered), v.total(v.tally.messages_offered)),
           "messages delivered / messages offered", terminal=True,
           better="higher", sample=Sample("node", _messages_by_node, "ratio")),
    Metric("packets_offered", "Packets offered", "pkts", "int", lambda v: v.total(v.tally.offered()),
           "frames handed to the radio within the run (on air or dropped before air)"),
    Metric("packets_on_air", "Packets on air", "pkts on air", "int",
           lambda v: v.total(v.tally.on_air()), "frames put on air (in a mesh: handed to the network)"),
    Metric("packets_delivered", "Packets delivered", "pkts ok", "int", lambda v: v.count(Fate.DELIVERED),
           "frames delivered to the network"),
    Metric("packets_lost", "Packets lost", "pkts lost", "int",
           lambda v: v.total(v.tally.offered()) - v.count(Fate.DELIVERED),
           "frames offered but not delivered: the sum of the packets_lost_<reason> columns", terminal=True,
           better="lower", sample=Sample("node", lambda v: _packets_by_node(v, lost=True), "sum")),
    *(_loss_metric(f) for f in LOSS_FATES),
    Metric("packets_pending_at_end", "Packets pending at end", "pending", "int",
           lambda v: v.count(Fate.PENDING),
           "frames still waiting to be sent when the run ended (not offered)"),
    Metric("packet_delivery_ratio", "Packets delivered (ratio)", "pkt deliv.", "ratio",
           lambda v: _ratio(v.count(Fate.DELIVERED), v.total(v.tally.offered())), "packets delivered / packets offered",
           better="higher", sample=Sample("node", lambda v: _packets_by_node(v, lost=False), "ratio")),
    Metric("attempts_per_packet", "Attempts per packet on air", "attempts", "float",
           lambda v: _ratio(v.total(v.tally.attempts_on_air), v.total(v.tally.on_air())),
           "mean transmissions per frame put on air (retransmissions and link-layer retries included)"),
    Metric("retransmissions", "Retransmissions", "retx", "int",
           lambda v: v.total(v.tally.attempts_on_air) - v.total(v.tally.on_air()),
           "transmissions beyond the first of each frame on air"),
    Metric("acks_received", "ACKs received", "acks", "int", lambda v: v.node_stat("acks_received"),
           "acknowledgements of confirmed uplinks the nodes received", LORAWAN),
    Metric("downlinks_sent", "Downlinks sent", "downlinks", "int", lambda v: v.node_stat("downlinks_sent"),
           "downlinks the gateways sent to the group's nodes (ACKs, MAC commands, application data)", LORAWAN),
    Metric("downlinks_received", "Downlinks received", "dl rx", "int", lambda v: v.node_stat("downlinks_received"),
           "downlinks that reached their node", LORAWAN),
    Metric("downlinks_interfered", "Downlinks lost to interference", "dl lost", "int",
           lambda v: v.node_stat("downlinks_interfered"),
           "downlinks strong enough for their node but destroyed by another gateway's downlink", LORAWAN),
    Metric("downlink_airtime_s", "Downlink airtime (s)", "dl air (s)", "float",
           lambda v: float(v.node_stat("downlink_airtime_s")), "gateways' time on air for the group's downlinks",
           LORAWAN),
    Metric("adr_commands", "ADR commands", "ADR cmds", "int", lambda v: v.node_stat("adr_commands"),
           "LinkADRReq commands sent", LORAWAN),
    Metric("app_downlinks_delivered", "Application downlinks delivered", "app dl", "int",
           lambda v: v.node_stat("app_downlinks_received"), "application downlinks that reached their node",
           LORAWAN),
    Metric("frames_forwarded", "Frames forwarded", "fwd", "int", lambda v: v.node_stat("frames_forwarded"),
           "frames the group's nodes passed on for others (mesh)", MESH),
    Metric("relays", "Relays", "relays", "int", lambda v: int(_relays(v).sum()),
           "nodes of the group that forwarded frames for others", MESH),
    Metric("relay_radio_s_per_node_day", "Relay radio time (s/node/day)", "relay s/d", "float",
           lambda v: float(np.mean((np.asarray(v.node_stats.get("relay_tx_s", 0.0))[v.nodes_slice]
                                    + np.asarray(v.node_stats.get("relay_rx_s", 0.0))[v.nodes_slice])
                                   / v.days)),
           "radio time spent receiving, acknowledging and sending others' frames, per node per day alive", MESH),
    Metric("first_relay_death_days", "First relay to die (days)", "1st relay (d)", "float", _first_relay_death_days,
           "the shortest projected battery life among the group's relays", MESH, better="higher"),
    Metric("partition_days", "Network partition (days)", "partition (d)", "float",
           lambda v: mesh_partition_days(v.result, v.outcome),
           "when the first node loses its last route to a border router as nodes die in the order of their "
           "projected battery lives (the whole mesh; NaN: never)", MESH, terminal=True, better="higher"),
    Metric("nodes_without_route", "Nodes without a route", "no route", "int", _orphans,
           "nodes of the group with no usable path to a border router at the start", MESH),
    Metric("connections_per_node_day", "RRC connections (/node/day)", "conn/d", "float",
           lambda v: float(np.mean(_node_stat(v, "connections") / v.days)),
           "random accesses that opened a connection, per node per day alive (reports within the inactivity "
           "timer share one)", CELLULAR),
    Metric("connected_s_per_node_day", "Connected time (s/node/day)", "conn s/d", "float",
           lambda v: float(np.mean(_node_stat(v, "connected_s") / v.days)),
           "time in RRC connected (sending, then monitoring the search space until the release), per node per day "
           "alive", CELLULAR),
    Metric("busiest_cell_uplink_load", "Busiest cell's uplink load", "cell load", "ratio",
           lambda v: float(np.max(v.tally.gateway_stats.get("npusch_resource_s", np.zeros(1)))
                           / v.result.scenario.duration),
           "share of the busiest cell's NPUSCH resources (time x carrier share) the run's frames take, all groups "
           "(contention is not modelled: the results hold while this stays well below 1)", CELLULAR),
    Metric("nodes_ce_level_2", "Nodes in CE level 2", "CE2", "int", lambda v: int((_node_stat(v, "ce_level") == 2).sum()),
           "nodes of the group in the deepest coverage enhancement level (the most repetitions)", CELLULAR),
    Metric("nodes_out_of_coverage", "Nodes out of coverage", "no cell", "int",
           lambda v: int((_node_stat(v, "ce_level") < 0).sum()),
           "nodes of the group beyond the maximum coupling loss of every cell", CELLULAR),
    Metric("latency_p50_s", "Latency p50 (s)", "lat p50 (s)", "float", lambda v: _pct(v.latency, 50),
           "median detection latency from event onset", terminal=True,
           better="lower", sample=Sample("event", lambda v: v.latency, "p50")),
    Metric("latency_p95_s", "Latency p95 (s)", "lat p95 (s)", "float", lambda v: _pct(v.latency, 95),
           "95th percentile of detection latency",
           better="lower", sample=Sample("event", lambda v: v.latency, "p95")),
    Metric("events", "Events", "events", "int", lambda v: int(v.latency.shape[0]), "ground-truth events"),
    Metric("events_detected", "Events detected", "detected", "int", lambda v: int(np.isfinite(v.latency).sum()),
           "events with a positive decision about an overlapping window"),
    Metric("precision", "Precision", "precision", "ratio",
           lambda v: _ratio(v.outcome.true_positive_decisions[v.group_position],
                            v.outcome.positive_decisions[v.group_position]),
           "positive decisions about windows that overlap an event / positive decisions", terminal=True,
           better="higher", sample=Sample("node", _decisions_by_node, "ratio")),
    Metric("recall", "Recall", "recall", "ratio",
           lambda v: float(np.isfinite(v.latency).mean()) if v.latency.size else float("nan"),
           "events detected / events", terminal=True,
           better="higher", sample=Sample("event", lambda v: np.isfinite(v.latency).astype(np.float64), "mean")),
    Metric("cloud_inferences", "Cloud inferences", "cloud inf.", "int",
           lambda v: v.total(v.tally.cloud_inferences),
           "raw windows inferred in the cloud", terminal=True,
           better="lower", sample=Sample("node", _cloud_by_node, "sum")),
    Metric("cloud_wait_p95_s", "Cloud queueing p95 (s)", "cloud wait p95 (s)", "float",
           lambda v: v.cloud_wait_percentile(95), "95th percentile of queueing before a cloud inference"),
)
BY_NAME = {m.name: m for m in METRICS}
ID_COLUMNS = ("policy", "group")


def metrics_for(technology: str, harvesting: bool = False, updates: bool = False) -> list[Metric]:
    """The metrics that apply to a radio technology (and to harvesting groups, to model updates, if the run has
    any), in table order."""
    return [m for m in METRICS if technology in m.technologies and (harvesting or not m.harvesting)
            and (updates or not m.updates)]


def summary_columns(technology: str | None = None, harvesting: bool = False, updates: bool = False) -> list[str]:
    """Columns of the summary table: the ids, then every metric (of one technology, or all)."""
    metrics = METRICS if technology is None else metrics_for(technology, harvesting, updates)
    return [*ID_COLUMNS, *(m.name for m in metrics)]


__all__ = ["Metric", "Sample", "METRICS", "mesh_partition_days", "BY_NAME", "GroupView", "metrics_for", "summary_columns", "LOSS_FATES", "ID_COLUMNS"]
