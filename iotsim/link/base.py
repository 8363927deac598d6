"""The `Link` interface: from a policy's messages to frames on air and what became of each.

A link is one radio technology between the nodes and the network (LoRaWAN, Bluetooth LE, Wi-Fi;
mesh and cellular links come the same way). The engine calls it in two steps, with the battery in
between (a node that dies sends nothing afterwards, and what it never sent interferes with no
one):

1. `transmit(messages, nodes)` splits messages into frames and schedules them: every frame's
   start, attempts, time on air of all attempts, the radio's time in each state, and which frames
   the node dropped before air (duty cycle). Nothing here depends on the battery.
2. `receive(tx, on_air)` decides the fate of the frames that went on air (delivered, or lost with
   a `Fate`) and which gateway got each.

Both steps fill one typed `Transmissions` record, which the engine's later stages (ledger,
backhaul, cloud, detection) and the tables read; nothing downstream asks which technology it was.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from iotsim.network.fate import Fate


@dataclass
class Messages:
    """Messages of one policy run, sorted by (node, ready time, kind)."""

    node: np.ndarray  # global node index (row in the run's node arrays), int64
    ready_s: np.ndarray  # when the node has the message ready
    app_bytes: np.ndarray  # application payload, int64
    kind: np.ndarray  # int8 MessageKind
    window: np.ndarray  # flat window index within its group, -1 for heartbeats
    group: np.ndarray  # group index, int64

    def __len__(self) -> int:
        return int(self.node.shape[0])

    def take(self, sel: np.ndarray) -> "Messages":
        """The messages `sel` (indices or a mask), in that order."""
        return Messages(self.node[sel], self.ready_s[sel], self.app_bytes[sel], self.kind[sel], self.window[sel],
                        self.group[sel])

    @staticmethod
    def empty() -> "Messages":
        z = np.zeros(0, np.int64)
        return Messages(z, np.zeros(0), z, np.zeros(0, np.int8), z, z)


@dataclass
class LinkNodes:
    """What a link needs to know about the nodes: static radio facts, one row per node."""

    rx_power_dbm: np.ndarray  # (n, gateways): mean received power at 0 dB offset, shadowing included
    sf: np.ndarray  # int64 spreading factor per node (0 outside LoRa)
    startup_s: np.ndarray  # radio start-up time per node
    phase_s: np.ndarray  # the node's time origin (first window start): BLE connection events align to it
    min_tx_power_dbm: float = -np.inf  # lowest TX power every node's radio has a current for (ADR's floor)
    positions_m: np.ndarray | None = None  # (n, 2): where each node is (links between nodes need it: meshes)

    @property
    def n(self) -> int:
        return int(self.sf.shape[0])


@dataclass
class KeepAlive:
    """Radio time a node spends per period outside its own frames, as a steady load: a connected node's
    keep-alive, or (per node) a mesh node's relaying and idle listening over the time it was alive."""

    period_s: np.ndarray | float
    tx_s: np.ndarray | float
    rx_s: np.ndarray | float
    standby_s: np.ndarray | float  # per node (radio ramp-up differs per board)


@dataclass
class Transmissions:
    """Every frame of one policy run, one row per frame, sorted by (node, ready time, fragment).

    Times per frame cover all its attempts: `airtime_s` is one attempt's time on air and
    `attempts` how many went on air, so `airtime_s * attempts` is the frame's time on air;
    `tx_s`, `rx_s` and `standby_s` are the radio's time in each state for the frame;
    `busy_s` runs from the first attempt's start to the end of the last.
    """

    message: np.ndarray  # int64 index into Messages
    node: np.ndarray  # int64
    fragment: np.ndarray  # 0-based fragment number within the message
    phy_bytes: np.ndarray  # PHY payload of one attempt (bytes)
    sf: np.ndarray  # int64 spreading factor (0 outside LoRa)
    airtime_s: np.ndarray  # one attempt's time on air
    ready_s: np.ndarray
    start_s: np.ndarray  # first attempt's start; NaN when dropped before air
    dropped: np.ndarray  # bool: dropped by the node before air (duty cycle)
    attempts: np.ndarray | None = None  # int64 attempts on air (None: one each)
    channel: np.ndarray | None = None  # int8 uplink channel index, -1 where not tracked
    tx_s: np.ndarray | None = None
    rx_s: np.ndarray | None = None
    standby_s: np.ndarray | None = None
    busy_s: np.ndarray | None = None
    fate: np.ndarray | None = None  # int8 Fate per frame, set by the engine and `Link.receive`
    gateway: np.ndarray | None = None  # int16 gateway that delivered it, -1 if none
    link_gateway: np.ndarray | None = None  # int16 gateway of each link_fate delivery
    link_fate: np.ndarray | None = None  # int8 Fate decided at transmit time (links with retries or feedback)
    tx_power_dbm: np.ndarray | None = None  # per frame, where it varies (ADR); None: the link's TX power
    gateway_stats: dict = field(default_factory=dict)  # per-gateway figures the link reports (arrays by gateway)
    node_stats: dict = field(default_factory=dict)  # per-node counters the link reports (downlinks, ACKs, ...)
    steady: KeepAlive | None = None  # radio time per node outside its own frames in this run (mesh relaying)
    hops: np.ndarray | None = None  # per frame: hops it completed (meshes)
    on_air_s: np.ndarray | None = None  # per frame: time on air of all attempts where a retry resends only part
    #                                     of the frame (NB-IoT's transport blocks); None: airtime_s x attempts

    def __len__(self) -> int:
        return int(self.node.shape[0])

    @property
    def total_airtime_s(self) -> np.ndarray:
        """Time on air of each frame, all attempts."""
        if self.on_air_s is not None:
            return self.on_air_s
        return self.airtime_s if self.attempts is None else self.airtime_s * self.attempts


@dataclass(frozen=True)
class GatewaySchedule:
    """Transmissions the gateways make on their own schedule, known before the policies run: the multicast
    sessions of model updates (every gateway) and class A unicast fragments (one gateway each)."""

    start_s: np.ndarray  # sorted; each gateway's own (its entries and those of every gateway) disjoint
    end_s: np.ndarray
    frequency_hz: np.ndarray  # per transmission
    holds: tuple = ()  # (frequency_hz, from_s, until_s, gateway): windows in which a gateway (-1: every one)
    #                    spends its sub-band's duty cycle on these transmissions
    gateway: np.ndarray | None = None  # per transmission: the gateway sending it, -1 every gateway (None: all -1)

    def __len__(self) -> int:
        return int(self.start_s.shape[0])

    def of_gateway(self, g: int) -> np.ndarray:
        """Which transmissions gateway `g` makes (boolean, in schedule order)."""
        if self.gateway is None:
            return np.ones(len(self), dtype=bool)
        return (self.gateway < 0) | (self.gateway == g)


class Link(ABC):
    """A radio technology between nodes and gateways. One instance per run (it holds the settings)."""

    technology: str  # the scenario's network.technology
    radio_technology: str  # the radio a board needs (a radio profile's `technology`)
    gateway_schedule: GatewaySchedule | None = None
    """The gateways' own transmissions of the run (set before the policies run), or None."""

    @property
    @abstractmethod
    def carrier_frequency_hz(self) -> float:
        """Carrier frequency that bounds the path loss from below (free-space loss)."""

    @property
    @abstractmethod
    def tx_power_dbm(self) -> float:
        """The nodes' TX power (the radio's TX current is looked up at it)."""

    @abstractmethod
    def transmit(self, messages: Messages, nodes: LinkNodes, rng: np.random.Generator, duration_s: float,
                 stop_s: np.ndarray | None = None) -> Transmissions:
        """Frames with their schedule, attempts and radio state times; dropped frames marked.

        `stop_s` (closed-loop links): when each node dies; it sends nothing from then on."""

    def receive(self, tx: Transmissions, on_air: np.ndarray, nodes: LinkNodes) -> None:
        """Set `tx.fate` and `tx.gateway` of the frames in `on_air` (bool mask).

        This default serves links that decide fates while transmitting (`tx.link_fate`)."""
        idx = np.flatnonzero(on_air)
        tx.fate[idx] = tx.link_fate[idx]
        tx.gateway[idx] = np.where(tx.link_fate[idx] == Fate.DELIVERED, tx.link_gateway[idx], -1)

    def schedule_carry(self, n_nodes: int):
        """What a run in time chunks (iotsim.engine.chunked) hands from one chunk's schedule to the next, passed to
        `transmit(..., carry=)`; None: the link does not run in chunks."""
        return None

    closed_loop: bool = False
    """True when the link's schedule depends on what the network tells the nodes: the engine then
    re-runs `transmit` with the nodes' death times so that dead nodes stop sending."""

    def keep_alive(self, nodes: LinkNodes) -> KeepAlive | None:
        """The steady radio load that keeps the link up, if any."""
        return None

    def state(self) -> dict | None:
        """What the link set up for this fleet, for the results (a mesh: its graph, tree and positions)."""
        return None

    def attach(self, nodes: LinkNodes, seed: int) -> None:
        """Set up what the link needs to know about this fleet before the policies run (a mesh: the links between
        nodes and the routing tree), the same for every policy. Most links need nothing."""

    def plan_update(self, payload_bytes: int, spec, rx_power_dbm: np.ndarray, startup_s: np.ndarray,
                    rng: np.random.Generator, sf: np.ndarray | None = None, horizon_s: float = np.inf,
                    verdicts=None):
        """How a model update of `payload_bytes` reaches the nodes whose link budgets are the rows of
        `rx_power_dbm` (`spec`: the scenario's Update; `sf`: the nodes' uplink spreading factors where the link
        has them; `horizon_s`: the run's end, from the update's start; `verdicts`: what a run made of the
        update's class A unicast polls, where the link has them): (its plan, an `iotsim.ota.rollout.Rollout`)."""
        from iotsim.errors import InputError

        raise InputError(f"model updates are not modelled over {self.technology}", field="updates")

    @abstractmethod
    def notes(self) -> list[str]:
        """Methodology notes: what this link models and what it simplifies."""


def frames_from_split(messages: Messages, message_index: np.ndarray, fragment: np.ndarray,
                      phy_bytes: np.ndarray, sf: np.ndarray, airtime_s: np.ndarray) -> Transmissions:
    """A `Transmissions` record for freshly split frames, not yet scheduled."""
    n = message_index.shape[0]
    return Transmissions(
        message=message_index, node=messages.node[message_index], fragment=fragment,
        phy_bytes=np.asarray(phy_bytes, dtype=np.int64), sf=np.asarray(sf, dtype=np.int64),
        airtime_s=np.asarray(airtime_s, dtype=np.float64), ready_s=messages.ready_s[message_index],
        start_s=np.full(n, np.nan), dropped=np.zeros(n, dtype=bool),
    )


def not_on_air_fates(tx: Transmissions, dead: np.ndarray, pending: np.ndarray) -> np.ndarray:
    """Fate codes before reception: node dead, pending at the end, dropped by the duty cycle; others
    provisionally DELIVERED (the link's `receive` decides them)."""
    fate = np.full(len(tx), Fate.DELIVERED, dtype=np.int8)
    fate[tx.dropped] = Fate.DUTY_CYCLE
    fate[pending] = Fate.PENDING
    fate[dead] = Fate.NODE_DEAD
    return fate


__all__ = ["GatewaySchedule", "Link", "LinkNodes", "Messages", "Transmissions", "KeepAlive", "frames_from_split",
           "not_on_air_fates"]
