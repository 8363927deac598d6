"""A multi-hop IEEE 802.15.4 mesh as one event simulation: every node's frame queue, unslotted CSMA/CA with
acknowledgements and retries, a duty-cycled receiver (ContikiMAC) or always-on radios, frames forwarded hop
by hop along a routing tree to the border routers, and each reception decided by its SINR over time.

    result = simulate_mesh(rx_power_dbm, parent, frame_node, frame_ready_s, frame_psdu, duration_s, rng)

Nodes are the rows of `rx_power_dbm` (`[i, j]`: mean power node j receives from node i, dBm); `parent` is the
routing tree (`iotsim.mesh.routing.dodag(...).parent`: ROOT for a border router, ORPHAN without a route).
Border routers are mains powered: always on, they never duty-cycle.

Channel access (IEEE Std 802.15.4-2006 7.5.1.4, `iotsim.mesh.csma`): per attempt, a random backoff of
0..2^BE - 1 unit periods and an 8-symbol CCA, repeated with a growing BE while the channel is busy, up to
macMaxCSMABackoffs; an attempt that gets no acknowledgement is retried with a fresh CSMA/CA up to
macMaxFrameRetries times. With always-on radios a sender's next frame waits out the interframe spacing after
the acknowledgement of the one before (7.5.1.3; `MacSettings.ifs`); duty-cycled senders pace their frames by
ContikiMAC's own timing instead. A CCA finds the channel busy when the power of the transmissions overlapping it
adds up to the energy-detection threshold (CCA mode 1; 6.9.9: at most 10 dB above the sensitivity, taken
there by default).

Duty cycling (`ContikiMac`; A. Dunkels, "The ContikiMAC Radio Duty Cycling Protocol", SICS Technical Report
T2011:13, 2011; every constant as contiki-os/contiki core/net/mac/contikimac/contikimac.c sets it):
- a sleeping node checks the channel `channel_check_rate_hz` times a second (its own phase) with
  `cca_count` CCAs of `cca_check_s`, `cca_sleep_s` apart; a check that overlaps a transmission it senses
  wakes it, and it listens for `listen_after_detect_s` for a frame to start;
- a sender repeats the whole data frame (a strobe), `inter_packet_s` apart, listening for the
  acknowledgement in each gap, until the receiver acknowledges or `strobe_s` (a cycle and two checks) has
  passed; an always-on receiver (a border router) takes the first copy;
- with `phase_lock`, a sender that has had a frame acknowledged by a neighbour knows its wake-up phase and
  starts strobing `guard_s` before it (ContikiMAC's phase optimisation);
- a node that wakes for a frame addressed to another receives one copy and sleeps again (overhearing); after
  sending or receiving its own frame it sleeps.

Reception: a listening radio locks onto the first frame that starts while it is free and arrives above the
sensitivity; frames starting while it is locked or transmitting are lost to it. A locked frame survives with
the product over its PSDU's stretches of constant interference of (1 - BER(SINR))^bits
(`iotsim.mesh.phy.bit_error_rate`, the noise floor of `phy.noise_floor_dbm`), so interference from hidden
terminals, capture and channel errors all follow from the powers. Acknowledgements likewise. With `fading`
(the default) every copy's power at every receiver, the signal's and each interferer's, is Rayleigh faded (an
Exp(1) power gain drawn per copy and receiver), as the project's other links fade per frame; locking, CCAs and
wake-ups use the mean powers.

Random draws: one numpy Generator, consumed in event order and only through `random()` (doubles u in [0, 1)):
a backoff of 0..2^BE - 1 unit periods is int(u 2^BE), a Rayleigh power gain is -log1p(-u) (Exp(1) by
inversion), a reception succeeds when u < its success probability; the phases, when not given, are drawn
`uniform` over a cycle before the loop. Doubles only, so that the compiled loop can continue the same stream
(numpy's ziggurat exponential and its bounded integers are not worth reproducing in C).

The event loop is compiled (`_mesh_loop.c`, loaded by `iotsim.mesh.loop_native`) with a Python twin
(`_event_loop`) that runs without a C compiler or with IOTSIM_NATIVE=0: the same events in the same order, the
same floating-point operations and the same draws, so both give the same bytes and leave the generator in the
same state (tests/test_mesh_native.py).

Forwarding: a node that receives a frame it has not seen before queues it for its parent (duplicates, after
a lost acknowledgement, are acknowledged and dropped); a full queue (`queue_frames`, Contiki's QUEUEBUF_NUM
8, core/net/queuebuf.h) drops the frame. Every radio second is charged to the node whose radio spent it, in
one of three roles: `own` (sending its own frames), `relay` (receiving and sending others' frames,
acknowledgements included) and `idle` (channel checks, listening that received nothing for it, overhearing).

Simplifications (each stated where a run reports them): the routing tree is fixed for the run (no RPL control
traffic: DIOs, DAOs and their energy are not simulated); one channel; a channel check that finds energy from
two weak transmissions together is not modelled (detection needs one transmission above the threshold);
periodic checks are charged in closed form for the whole run, also while the node was awake anyway (at most
cca_count x cca_check_s per cycle overcounted); the strobe of a phase-locked sender is not cut at ContikiMAC's
MAX_PHASE_STROBE_TIME (1/60 s) but at `strobe_s` like any other (it ends at the acknowledgement anyway).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from iotsim.mesh import loop_native, phy
from iotsim.mesh.csma import MacSettings
from iotsim.mesh.routing import ORPHAN, ROOT

BIT_S = phy.OCTET_S / 8  # 250 kbit/s
HEADER_S = (phy.SHR_OCTETS + phy.PHR_OCTETS) * phy.OCTET_S  # before the PSDU: synchronisation and PHY header
QUEUE_FRAMES = 8  # Contiki core/net/queuebuf.h: QUEUEBUF_NUM 8 (queued frames per node)
CCA_ABOVE_SENSITIVITY_DB = 10.0  # IEEE 802.15.4-2006 6.9.9: the ED threshold at most 10 dB above the sensitivity


class Hop(IntEnum):
    """End-to-end fate of a frame; for a loss, the hop where it happened is in `lost_at`."""

    DELIVERED = 0
    CHANNEL_ACCESS = 1  # more than macMaxCSMABackoffs busy assessments
    NO_ACK = 2  # macMaxFrameRetries retries without an acknowledgement
    QUEUE_FULL = 3  # the next node's queue was full
    NO_ROUTE = 4  # the node holding it has no parent (orphan)
    PENDING = 5  # still queued or in flight when the run ended
    NODE_DEAD = 6  # the node holding it died (its queue dies with it)

    @property
    def reason(self) -> str:
        return _REASONS[self]


_REASONS = {Hop.DELIVERED: "", Hop.CHANNEL_ACCESS: "channel_access", Hop.NO_ACK: "no_ack",
            Hop.QUEUE_FULL: "queue_full", Hop.NO_ROUTE: "no_route", Hop.PENDING: "pending_at_end",
            Hop.NODE_DEAD: "node_dead"}
ROLES = ("own", "relay", "idle")


@dataclass(frozen=True)
class ContikiMac:
    """ContikiMAC's parameters; the defaults are contiki-os/contiki's (contikimac.c, core/net/netstack.h)."""

    channel_check_rate_hz: float = 8.0  # NETSTACK_RDC_CHANNEL_CHECK_RATE, default 8 (a power of two)
    cca_count: int = 2  # CCA_COUNT_MAX
    cca_check_s: float = 1 / 8192  # CCA_CHECK_TIME, RTIMER_ARCH_SECOND / 8192
    cca_sleep_s: float = 1 / 2000  # CCA_SLEEP_TIME, RTIMER_ARCH_SECOND / 2000
    listen_after_detect_s: float = 1 / 80  # LISTEN_TIME_AFTER_PACKET_DETECTED
    inter_packet_s: float = 1 / 2500  # INTER_PACKET_INTERVAL
    cca_count_tx: int = 6  # CCA_COUNT_MAX_TX (enters GUARD_TIME)
    phase_lock: bool = True  # WITH_PHASE_OPTIMIZATION

    def __post_init__(self):
        if not self.channel_check_rate_hz > 0 or self.cca_count < 1 or self.cca_check_s <= 0 or self.cca_sleep_s < 0:
            raise ValueError("ContikiMAC needs a positive check rate, at least one CCA and a positive CCA time")
        if self.inter_packet_s < phy.TURNAROUND_S:
            raise ValueError("inter_packet_s must leave the receiver its turnaround before the acknowledgement")

    @property
    def cycle_s(self) -> float:  # CYCLE_TIME
        return 1.0 / self.channel_check_rate_hz

    @property
    def check_s(self) -> float:  # CHECK_TIME
        return self.cca_count * (self.cca_check_s + self.cca_sleep_s)

    @property
    def strobe_s(self) -> float:  # STROBE_TIME
        return self.cycle_s + 2 * self.check_s

    @property
    def guard_s(self) -> float:  # GUARD_TIME = 10 x CHECK_TIME + CHECK_TIME_TX
        return 10 * self.check_s + self.cca_count_tx * (self.cca_check_s + self.cca_sleep_s)

    def idle_check_s(self, duration_s: float) -> float:
        """Radio time of the periodic channel checks over `duration_s`."""
        return duration_s * self.channel_check_rate_hz * self.cca_count * self.cca_check_s


@dataclass(frozen=True)
class MeshSettings:
    mac: MacSettings = MacSettings()
    rdc: ContikiMac | None = ContikiMac()  # None: every radio always on
    queue_frames: int = QUEUE_FRAMES
    sensitivity_dbm: float = phy.STANDARD_SENSITIVITY_DBM
    cca_threshold_dbm: float | None = None  # None: sensitivity + 10 dB
    fading: bool = True  # Rayleigh: every copy's power at every receiver gains an Exp(1) factor; False: static

    @property
    def cca_dbm(self) -> float:
        return self.sensitivity_dbm + CCA_ABOVE_SENSITIVITY_DB if self.cca_threshold_dbm is None \
            else self.cca_threshold_dbm


@dataclass
class MeshResult:
    """Per frame (in the order given), per hop taken, and per node."""

    fate: np.ndarray  # int8 Hop per frame
    own_tx_s: np.ndarray  # per frame: its origin's transmitting for it (the first hop's copies)
    own_rx_s: np.ndarray  # per frame: its duty-cycled origin's listening for it (CCAs, turnaround, ACK waits);
    #                       an always-on origin listens all the time anyway (its rx_s, role idle)
    delivered_s: np.ndarray  # when a border router acknowledged it; NaN if not delivered
    hops: np.ndarray  # hops it completed
    lost_at: np.ndarray  # node holding it when it was lost, -1 if delivered or pending
    hop_frame: np.ndarray  # per hop completed: the frame,
    hop_sender: np.ndarray
    hop_receiver: np.ndarray
    hop_start_s: np.ndarray  # when the sender began the hop (its first attempt's channel access)
    hop_end_s: np.ndarray  # when the receiver had it (its acknowledgement ended; the sender may not hear it)
    hop_copies: np.ndarray  # data frames put on air for the hop, all attempts
    tx_s: np.ndarray  # (nodes, 3): transmitting, per role (ROLES)
    rx_s: np.ndarray  # (nodes, 3): receiving or listening, per role
    forwarded: np.ndarray  # frames each node passed on for others (that reached the next node)
    overheard: np.ndarray  # frames addressed to others it received a copy of (duty-cycled nodes)
    transmissions: np.ndarray  # (nodes, 2): data copies each node put on air, its own frames and others'
    acks: np.ndarray  # acknowledgements each node sent
    collisions: np.ndarray  # copies lost at their addressee to interference it could have survived alone
    cca: np.ndarray
    cca_busy: np.ndarray
    always_on: np.ndarray  # bool per node
    duration_s: float = 0.0
    notes: list = field(default_factory=list)

    @property
    def n_nodes(self) -> int:
        return int(self.always_on.shape[0])

    def radio_s(self) -> np.ndarray:
        """Per node: time the radio was on (all roles, TX and RX)."""
        return self.tx_s.sum(axis=1) + self.rx_s.sum(axis=1)


def wakes_receiver(rx_power_dbm: np.ndarray, settings: MeshSettings, always_on: np.ndarray) -> np.ndarray:
    """Which links i -> j can carry data: a duty-cycled receiver j wakes only for a sender whose power reaches its
    CCA threshold (a frame above the sensitivity but below the threshold would be decodable, but never wakes
    it); an always-on receiver hears every sender. Routing leaves the others out (their ETX set to inf); the
    acknowledgement back needs no wake-up (the sender listens for it)."""
    p = np.asarray(rx_power_dbm, dtype=np.float64)
    ok = np.ones(p.shape, dtype=bool)
    if settings.rdc is not None:
        sleepy = ~np.asarray(always_on, dtype=bool)
        ok[:, sleepy] = p[:, sleepy] >= settings.cca_dbm
    return ok


class _Copy:
    __slots__ = ("start", "end", "sender", "dest", "frame", "ack", "psdu", "locked", "fades")

    def __init__(self, start, end, sender, dest, frame, ack, psdu):
        self.start, self.end, self.sender, self.dest = start, end, sender, dest
        self.frame, self.ack, self.psdu = frame, ack, psdu
        self.locked: list[int] = []
        self.fades: dict[int, float] = {}  # receiver -> its Rayleigh power gain for this copy


OWN, RELAY, IDLE = 0, 1, 2
_BER_TERMS = [((-1) ** k * math.comb(16, k) * (8.0 / 15.0) / 16.0, 20.0 * (1.0 / k - 1.0)) for k in range(2, 17)]


def _ber(sinr: float) -> float:
    """`phy.bit_error_rate` for one SINR (a power ratio), in plain floats: the event loop's hot path. Above an
    SINR of 4 (6 dB) the BER is below 1e-17, so 1 - BER is exactly 1.0 in double precision: returned as 0."""
    if sinr >= 4.0:
        return 0.0
    b = 0.0
    for c, e in _BER_TERMS:
        b += c * math.exp(e * sinr)
    return min(max(b, 0.0), 1.0)


def simulate_mesh(rx_power_dbm: np.ndarray, parent: np.ndarray, frame_node: np.ndarray, frame_ready_s: np.ndarray,
                  frame_psdu: np.ndarray, duration_s: float, rng: np.random.Generator,
                  settings: MeshSettings = MeshSettings(), phase_s: np.ndarray | None = None,
                  death_s: np.ndarray | None = None, reroute=None, compiled: bool | None = None) -> MeshResult:
    """Run the mesh for `duration_s`. Frames enter their node's queue at `frame_ready_s` (PSDU `frame_psdu`
    octets each, forwarded unchanged); `phase_s`: each duty-cycled node's first channel check (default: drawn
    uniformly over a cycle).

    `death_s`: when each node dies (inf: never): from then on it neither sends, receives nor forwards, and
    the frames in its queue are lost with it. `reroute(alive) -> parent`: the routing tree without the dead
    (`iotsim.mesh.routing.dodag` over the alive nodes), recomputed at each death; the orphans it leaves lose
    their frames (no_route) until a later tree gives them a parent again. Without it the tree stays.

    `compiled`: None runs the compiled event loop (`iotsim.mesh.loop_native`) when it is available and its
    Python twin otherwise; False the Python loop; True the compiled one (an error if it cannot be built). Both
    give the same bytes and leave `rng` in the same state."""
    power = np.asarray(rx_power_dbm, dtype=np.float64)
    m = power.shape[0]
    if power.shape != (m, m):
        raise ValueError("rx_power_dbm must be square: nodes x nodes")
    parent = np.asarray(parent, dtype=np.int64)
    if parent.shape != (m,) or np.any((parent >= m) | ((parent < 0) & (parent != ROOT) & (parent != ORPHAN))):
        raise ValueError("parent must give, per node, a node index, ROOT or ORPHAN")
    f_node = np.asarray(frame_node, dtype=np.int64)
    if f_node.ndim != 1 or np.any((f_node < 0) | (f_node >= m)):
        raise ValueError("frame_node must give, per frame, the index of its node")
    f_ready = np.asarray(frame_ready_s, dtype=np.float64)
    if f_ready.shape != f_node.shape or np.isnan(f_ready).any():
        raise ValueError("frame_ready_s must give, per frame, when it is ready (no NaN)")
    f_psdu = np.broadcast_to(np.asarray(frame_psdu, dtype=np.int64), f_node.shape)
    if np.any(f_psdu > phy.MAX_PSDU_OCTETS) or np.any(f_psdu < 1):
        raise ValueError(f"a frame's PSDU holds 1 to {phy.MAX_PSDU_OCTETS} octets")
    s, rdc = settings, settings.rdc
    always_on = (parent == ROOT) | (rdc is None)
    phase = (rng.uniform(0.0, rdc.cycle_s, m) if phase_s is None else np.asarray(phase_s, dtype=np.float64)) \
        if rdc is not None else np.zeros(m)
    dies = np.full(m, np.inf) if death_s is None else np.asarray(death_s, dtype=np.float64)
    if phase.shape != (m,) or dies.shape != (m,):
        raise ValueError("phase_s and death_s must give one time per node")
    n_frames = f_node.shape[0]
    out = {"fate": np.full(n_frames, Hop.PENDING, dtype=np.int8), "delivered_s": np.full(n_frames, np.nan),
           "hops": np.zeros(n_frames, dtype=np.int64), "lost_at": np.full(n_frames, -1, dtype=np.int64),
           "own_tx_s": np.zeros(n_frames), "own_rx_s": np.zeros(n_frames), "tx_s": np.zeros((m, 3)),
           "rx_s": np.zeros((m, 3)), "transmissions": np.zeros((m, 2), dtype=np.int64),
           **{k: np.zeros(m, dtype=np.int64) for k in _COUNTERS}}
    mesh = _Mesh(power, parent, always_on, phase, dies, f_node, f_ready, f_psdu, s)
    why = loop_native.unsupported(rng) if compiled is not False else "not asked for"
    if compiled and why:
        raise RuntimeError(f"the compiled mesh loop cannot run: {why}")
    if why:
        log = _event_loop(mesh, float(duration_s), rng, reroute, out)
    else:
        log = loop_native.run(mesh, float(duration_s), rng, reroute, out)
    return _result(mesh, float(duration_s), out, log)


_COUNTERS = ("forwarded", "overheard", "acks", "collisions", "cca", "cca_busy")


class _Mesh:
    """What both event loops read: the links' powers in mW, who can lock onto and who is woken by whom, each
    frame's origin, size and airtime, and the settings' constants."""

    def __init__(self, power, parent, always_on, phase, dies, f_node, f_ready, f_psdu, s: MeshSettings):
        self.m, self.settings = power.shape[0], s
        self.parent, self.always_on, self.phase, self.dies = parent, always_on, phase, dies
        self.f_node, self.f_ready, self.f_psdu = f_node, f_ready, f_psdu
        self.f_air = phy.frame_airtime_s(f_psdu)
        self.mw = np.power(10.0, power / 10.0)
        self.noise_mw = 10 ** (phy.noise_floor_dbm(float(s.sensitivity_dbm)) / 10)
        self.senses_mw = 10 ** (s.cca_dbm / 10)
        self.ack_air = float(phy.frame_airtime_s(phy.ACK_PSDU_OCTETS))
        self.lockable = lockable = power >= s.sensitivity_dbm  # j can lock onto i's frames
        wakes = power >= s.cca_dbm  # i's transmission wakes a sleeping j in a channel check
        np.fill_diagonal(lockable, False)
        np.fill_diagonal(wakes, False)
        wakes[:, always_on] = False
        self.lock_always = [np.flatnonzero(row & always_on).tolist() for row in lockable]  # always-on ones
        self.wake_list = [np.flatnonzero(row).tolist() for row in wakes]  # the duty-cycled j that i wakes


def rerouted(reroute, dead: np.ndarray) -> np.ndarray:
    """The parents `reroute` gives the alive nodes (int64; the dead: ORPHAN)."""
    alive = ~dead
    parent = np.asarray(reroute(alive), dtype=np.int64)
    m = dead.shape[0]
    if parent.shape != (m,) or np.any((parent >= m) | ((parent < 0) & (parent != ROOT) & (parent != ORPHAN))):
        raise ValueError("reroute must give, per node, a node index, ROOT or ORPHAN")
    return np.where(alive, parent, ORPHAN)


def _result(mesh: _Mesh, duration_s: float, out: dict, log: np.ndarray) -> MeshResult:
    """The MeshResult of a finished loop: periodic channel checks in closed form, always-on radios listening
    whenever they do not transmit."""
    s, mac, rdc = mesh.settings, mesh.settings.mac, mesh.settings.rdc
    always_on, tx, rx = mesh.always_on, out["tx_s"], out["rx_s"]
    alive_s = np.minimum(mesh.dies, duration_s)
    if rdc is not None:
        rx[~always_on, IDLE] += rdc.idle_check_s(1.0) * alive_s[~always_on]
    tx_total = tx.sum(axis=1)
    rx[always_on] = 0.0
    rx[always_on, IDLE] = np.maximum(alive_s[always_on] - tx_total[always_on], 0.0)
    notes = [f"802.15.4 mesh: macMinBE {mac.min_be}, macMaxBE {mac.max_be}, macMaxCSMABackoffs "
             f"{mac.max_csma_backoffs}, macMaxFrameRetries {mac.max_frame_retries}; CCA threshold {s.cca_dbm:g} dBm, "
             f"sensitivity {s.sensitivity_dbm:g} dBm; {s.queue_frames} queued frames per node"]
    if rdc is None:
        notes.append("always-on radios: " + ("a sender's next frame waits the interframe spacing (SIFS 12 / LIFS 40 "
                                             "symbols) after the acknowledgement" if mac.ifs else
                                             "no interframe spacing between a sender's frames (switched off)"))
    if rdc is not None:
        notes.append(f"ContikiMAC: channel checks at {rdc.channel_check_rate_hz:g} Hz ({rdc.cca_count} CCAs of "
                     f"{rdc.cca_check_s * 1e6:.0f} us), strobes up to {rdc.strobe_s * 1e3:.1f} ms, phase lock "
                     f"{'on' if rdc.phase_lock else 'off'}")
    return MeshResult(
        **out, hop_frame=log[:, 0].astype(np.int64), hop_sender=log[:, 1].astype(np.int64),
        hop_receiver=log[:, 2].astype(np.int64), hop_start_s=log[:, 3], hop_end_s=log[:, 4],
        hop_copies=log[:, 5].astype(np.int64), always_on=always_on, duration_s=duration_s, notes=notes)


def _event_loop(mesh: _Mesh, duration_s: float, rng: np.random.Generator, reroute, out: dict) -> np.ndarray:
    """The event loop in Python (the compiled loop's twin, `_mesh_loop.c`): fills `out` and returns the hop log
    (frame, sender, receiver, start, end, copies) per hop, as float64 rows."""
    m, s = mesh.m, mesh.settings
    mac, rdc = s.mac, s.rdc
    noise_mw, senses_mw, ack_air = mesh.noise_mw, mesh.senses_mw, mesh.ack_air
    always_on = mesh.always_on.tolist()
    phase = mesh.phase.tolist()
    dies = mesh.dies
    dead = [False] * m
    parent = mesh.parent.tolist()
    f_origin = mesh.f_node.tolist()
    f_octets = mesh.f_psdu.tolist()
    f_air = mesh.f_air.tolist()
    mwl = mesh.mw.tolist()
    wake_list = mesh.wake_list
    lock_always = mesh.lock_always  # always-on neighbours that hear i
    lock_set = [set(np.flatnonzero(row).tolist()) for row in mesh.lockable]
    listening: set[int] = set()  # duty-cycled nodes whose radio is on (listening windows, waiting for ACKs)
    if rdc is not None:
        cycle, cca_check, cca_count = rdc.cycle_s, rdc.cca_check_s, rdc.cca_count
        step = rdc.cca_check_s + rdc.cca_sleep_s
        offsets = [i * step for i in range(cca_count)]  # a node's checks within its cycle

    fate, delivered_s, hops, lost_at = out["fate"], out["delivered_s"], out["hops"], out["lost_at"]
    own_tx, own_rx, tx, rx, transmissions = out["own_tx_s"], out["own_rx_s"], out["tx_s"], out["rx_s"], \
        out["transmissions"]
    holder = mesh.f_node.copy()  # the furthest node that has each frame
    hop_log: list[tuple] = []
    z = lambda: [0] * m  # noqa: E731
    forwarded, overheard, collisions, cca, cca_busy, acks = z(), z(), z(), z(), z(), z()

    # per node (Python lists: the event loop reads and writes them one element at a time)
    queue = [deque() for _ in range(m)]
    seen = [set() for _ in range(m)]
    sending = [False] * m  # working on its head frame (backoff, strobe, waiting)
    strobing = [False] * m  # between its first copy and the end of the attempt: cannot receive
    tx_until = [0.0] * m
    locked: list[_Copy | None] = [None] * m
    awake_until = [0.0] * m  # duty-cycled: listening until then
    awake_since = [math.nan] * m  # duty-cycled: when its radio went on to listen (NaN: asleep)
    awake_role = [IDLE] * m
    awake_frame = [-1] * m  # the own frame its radio is on for (role OWN)
    detect_at = [math.inf] * m  # a wake-up already scheduled
    nb, be, retries = z(), z(), z()
    hop_start, hop_copies = [0.0] * m, z()
    quiet_until = [0.0] * m  # a sender's next CSMA/CA waits out its interframe spacing (always-on radios)
    ifs_on = mac.ifs and rdc is None
    strobe_start = [0.0] * m
    waiting_ack = [False] * m
    ack_incoming: list[_Copy | None] = [None] * m
    knows_phase = np.zeros((m, m), dtype=bool) if rdc is not None and rdc.phase_lock else None
    on_air: list[_Copy] = []
    events: list = []
    seq = 0
    listen_token = z()

    def push(t, kind, node, data=None):
        nonlocal seq
        heapq.heappush(events, (t, seq, kind, node, data))
        seq += 1

    def role_of(k: int, frame: int) -> int:
        return OWN if f_origin[frame] == k else RELAY

    # ---- duty-cycled listening ------------------------------------------------------------------
    def radio_on(j: int, t: float, role: int = IDLE, frame: int = -1) -> None:
        if not always_on[j] and math.isnan(awake_since[j]):
            awake_since[j] = t
            awake_role[j] = role
            awake_frame[j] = frame
            listening.add(j)

    def radio_off(j: int, t: float) -> None:
        if not always_on[j] and not math.isnan(awake_since[j]):
            rx[j, awake_role[j]] += t - awake_since[j]
            if awake_role[j] == OWN:
                own_rx[awake_frame[j]] += t - awake_since[j]
            awake_since[j] = math.nan
            listening.discard(j)
        awake_until[j] = 0.0

    def next_wake(j: int, t: float) -> float:
        """Start of j's first channel check at or after t."""
        k = math.ceil((t - phase[j]) / cycle - 1e-12)
        return phase[j] + k * cycle

    def schedule_detection(c: _Copy) -> None:
        """Sleeping nodes whose channel check overlaps copy `c` and that sense it wake at that check's end."""
        c_start = c.start
        length = c.end - c_start
        for j in wake_list[c.sender]:
            if dead[j] or awake_since[j] == awake_since[j] or strobing[j]:  # (x == x: not NaN, awake)
                continue
            # j's checks start at cycle offsets `offsets` from its phase; the copy starts `rel` into j's cycle.
            # A check at offset o overlaps the copy when rel - cca_check < o < rel + length: the first offset
            # above rel - cca_check is the only candidate in this cycle, else the next cycle's first check
            rel = (c_start - phase[j]) % cycle
            found = math.inf
            for o in offsets:
                if o > rel - cca_check:
                    if o < rel + length:
                        found = c_start - rel + o + cca_check
                    break
            if found == math.inf and cycle < rel + length:
                found = c_start - rel + cycle + cca_check
            if found < detect_at[j]:
                detect_at[j] = found
                push(found, "detect", j)

    # ---- physics --------------------------------------------------------------------------------
    def success(c: _Copy, r: int) -> tuple[bool, bool]:
        """(received, anything overlapped it) for copy `c` at node `r`."""
        s0, s1 = c.start + HEADER_S, c.end
        sig = mwl[c.sender][r] * fade(c, r)
        pieces = [(max(o.start, s0), min(o.end, s1), mwl[o.sender][r] * fade(o, r)) for o in on_air
                  if o is not c and o.sender != r and o.start < s1 and o.end > s0]
        if not pieces:
            p = (1.0 - _ber(sig / noise_mw)) ** (8 * c.psdu)
        else:
            cuts = sorted({s0, s1, *[a for a, _, _ in pieces], *[b for _, b, _ in pieces]})
            p = 1.0
            for a, b in zip(cuts[:-1], cuts[1:]):
                if b <= a:
                    continue
                inter = 0.0  # summed in order (sum() rounds differently from Python 3.12 on)
                for x, y, w in pieces:
                    if x < b and y > a:
                        inter += w
                p *= (1.0 - _ber(sig / (noise_mw + inter))) ** ((b - a) / BIT_S)
        return bool(rng.random() < p), bool(pieces)

    def fade(c: _Copy, r: int) -> float:
        """The copy's Rayleigh power gain at receiver r (drawn once; 1 without fading)."""
        if not s.fading:
            return 1.0
        g = c.fades.get(r)
        if g is None:
            g = c.fades[r] = -math.log1p(-rng.random())
        return g

    def channel_energy_mw(k: int, t0: float, t1: float) -> float:
        e = 0.0
        for o in on_air:
            if o.sender != k and o.start < t1 and o.end > t0:
                e += mwl[o.sender][k]
        return e

    def unlock(j: int) -> None:
        """j stops receiving the frame it locked onto (it transmits, or dies)."""
        if locked[j] is not None:
            locked[j].locked.remove(j)
            locked[j] = None

    def put_on_air(c: _Copy, t: float) -> None:
        on_air.append(c)
        tx_until[c.sender] = c.end
        unlock(c.sender)  # transmitting ends any reception
        hears = lock_set[c.sender]
        awake = [j for j in listening if j in hears and t < awake_until[j]]
        for j in sorted(awake + lock_always[c.sender]) if awake else lock_always[c.sender]:
            if dead[j] or locked[j] is not None or tx_until[j] > t or strobing[j]:
                continue
            if always_on[j] or t < awake_until[j]:
                locked[j] = c
                c.locked.append(j)
        if rdc is not None and not c.ack:
            schedule_detection(c)
        push(c.end, "ack_end" if c.ack else "copy_end", c.sender, c)

    # ---- the sender's procedure -------------------------------------------------------------------
    def start_next(k: int, t: float) -> None:
        while queue[k]:
            f = queue[k][0]
            if parent[k] == ORPHAN:
                queue[k].popleft()
                lose(f, k, Hop.NO_ROUTE)
                continue
            sending[k] = True
            retries[k] = 0
            hop_start[k] = t
            hop_copies[k] = 0
            new_attempt(k, t)
            return
        sending[k] = False

    def new_attempt(k: int, t: float) -> None:
        nb[k], be[k] = 0, mac.min_be
        t = max(t, quiet_until[k])
        d = int(parent[k])
        if d == ORPHAN:  # its parent died and no other route was found
            frame_lost(k, t, Hop.NO_ROUTE)
            return
        if knows_phase is not None and knows_phase[k, d] and not always_on[d]:
            t = max(t, next_wake(d, t + rdc.guard_s) - rdc.guard_s)
        backoff(k, t)

    def backoff(k: int, t: float) -> None:
        push(t + int(rng.random() * (1 << be[k])) * phy.UNIT_BACKOFF_S, "cca", k)

    def stop_sending(k: int, t: float) -> None:
        sending[k] = strobing[k] = waiting_ack[k] = False
        ack_incoming[k] = None
        radio_off(k, t)

    def lose(f: int, k: int, outcome: Hop) -> None:
        """Frame f is lost at node k, unless a copy of it already went on (its acknowledgement was lost)."""
        if holder[f] == k:
            fate[f], lost_at[f] = outcome, k

    def frame_lost(k: int, t: float, outcome: Hop) -> None:
        lose(queue[k].popleft(), k, outcome)
        stop_sending(k, t)
        start_next(k, t)

    def attempt_failed(k: int, t: float) -> None:
        strobing[k] = waiting_ack[k] = False
        ack_incoming[k] = None
        radio_off(k, t)
        retries[k] += 1
        if retries[k] > mac.max_frame_retries:
            frame_lost(k, t, Hop.NO_ACK)
        else:
            new_attempt(k, t)

    def send_copy(k: int, t: float) -> None:
        f = queue[k][0]
        radio_off(k, t)  # listening for an acknowledgement in the gap, or for frames, ends
        c = _Copy(t, t + f_air[f], k, parent[k], f, False, f_octets[f])
        role = role_of(k, f)
        tx[k, role] += c.end - c.start
        transmissions[k, role] += 1
        if role == OWN:
            own_tx[f] += c.end - c.start
        hop_copies[k] += 1
        strobing[k] = True
        waiting_ack[k] = False
        put_on_air(c, t)

    def continue_strobe(k: int, t: float) -> None:
        if t < strobe_start[k] + rdc.strobe_s:
            send_copy(k, t)
        else:
            attempt_failed(k, t)

    def hop_done(k: int, t: float, receiver: int) -> None:
        """k has the acknowledgement of its head frame (the hop itself was logged when the receiver got it)."""
        if ifs_on:
            quiet_until[k] = t + phy.ifs_s(f_octets[queue[k][0]])
        queue[k].popleft()
        if knows_phase is not None:
            knows_phase[k, receiver] = True
        stop_sending(k, t)
        start_next(k, t)

    def arrive(j: int, f: int, t: float) -> None:
        """Frame f reaches node j (its origin, or the receiver of a hop): j holds it now."""
        holder[f] = j
        if dead[j]:
            fate[f], lost_at[f] = Hop.NODE_DEAD, j
            return
        if parent[j] == ROOT:
            fate[f], delivered_s[f] = Hop.DELIVERED, t
            return
        if len(queue[j]) >= s.queue_frames:
            fate[f], lost_at[f] = Hop.QUEUE_FULL, j
            return
        queue[j].append(f)
        if not sending[j]:
            start_next(j, t)

    def die(k: int, t: float) -> None:
        radio_off(k, t)
        dead[k] = True
        for f in queue[k]:
            lose(f, k, Hop.NODE_DEAD)
        queue[k].clear()
        sending[k] = strobing[k] = waiting_ack[k] = False
        unlock(k)
        if reroute is not None:
            parent[:] = rerouted(reroute, np.array(dead)).tolist()

    f_ready, f_node = mesh.f_ready, mesh.f_node
    for f in np.argsort(f_ready, kind="stable").tolist():
        push(float(f_ready[f]), "ready", int(f_node[f]), f)
    for k in np.flatnonzero(dies < duration_s).tolist():
        push(float(dies[k]), "death", k)

    while events:
        t, _, kind, k, data = heapq.heappop(events)
        if t >= duration_s:
            break
        if len(on_air) > 64:
            on_air = [o for o in on_air if o.end > t - 0.02]
        if dead[k] and kind not in ("copy_end", "ack_end"):
            continue  # a dead node does nothing more (its last transmission ends on air)
        if kind == "death":
            die(k, t)
        elif kind == "ready":
            arrive(k, data, t)
        elif kind == "cca":
            push(t + phy.CCA_S, "cca_end", k, t)
        elif kind == "cca_end":
            cca[k] += 1
            f = queue[k][0]
            role = role_of(k, f)
            if not always_on[k] and math.isnan(awake_since[k]):
                rx[k, role] += phy.CCA_S
                if role == OWN:
                    own_rx[f] += phy.CCA_S
            if channel_energy_mw(k, data, t) >= senses_mw:
                cca_busy[k] += 1
                nb[k] += 1
                be[k] = min(be[k] + 1, mac.max_be)
                if nb[k] > mac.max_csma_backoffs:
                    frame_lost(k, t, Hop.CHANNEL_ACCESS)
                else:
                    backoff(k, t)
            else:
                radio_off(k, t)  # a listening window it was in ends: it sends now
                if not always_on[k]:
                    rx[k, role] += phy.TURNAROUND_S
                    if role == OWN:
                        own_rx[f] += phy.TURNAROUND_S
                strobe_start[k] = t + phy.TURNAROUND_S
                send_copy(k, t + phy.TURNAROUND_S)
        elif kind == "detect":
            if detect_at[k] == t:
                detect_at[k] = math.inf
                if math.isnan(awake_since[k]) and not strobing[k]:
                    radio_on(k, t)
                    awake_until[k] = t + rdc.listen_after_detect_s
                    listen_token[k] += 1
                    push(awake_until[k], "listen_end", k, int(listen_token[k]))
        elif kind == "listen_end":
            if data == listen_token[k] and locked[k] is None and not strobing[k]:
                radio_off(k, t)
        elif kind == "copy_end":
            c = data
            for j in c.locked:
                locked[j] = None
                got, interfered = success(c, j)
                if j == c.dest and got:
                    if not always_on[j]:  # what it listened to was relay work
                        awake_role[j] = RELAY
                    first = c.frame not in seen[j]
                    seen[j].add(c.frame)
                    push(t + phy.TURNAROUND_S, "ack_start", j, (c, first))
                    continue
                if j == c.dest and interfered:
                    collisions[c.sender] += 1
                if not always_on[j] and (got or t >= awake_until[j]):
                    overheard[j] += bool(got)
                    radio_off(j, t)
            c.locked = []
            if dead[k]:
                continue
            waiting_ack[k] = True
            if not always_on[k]:
                radio_on(k, t, role_of(k, c.frame), c.frame)
            if rdc is None:
                push(t + phy.ACK_WAIT_S, "ack_timeout", k, c)
            else:
                push(t + rdc.inter_packet_s, "gap_end", k, c)
        elif kind == "ack_start":
            c, first = data
            a = _Copy(t, t + ack_air, k, c.sender, c.frame, True, phy.ACK_PSDU_OCTETS)
            tx[k, RELAY] += ack_air
            acks[k] += 1
            radio_off(k, t)
            ack_incoming[c.sender] = a
            if first:
                push(t + ack_air, "hop", k, (c.frame, c.sender))
            put_on_air(a, t)
        elif kind == "hop":  # the receiver has a frame it had not seen: the hop is done, whatever the ACK's fate
            f, sender = data
            hop_log.append((f, sender, k, hop_start[sender], t, hop_copies[sender]))
            hops[f] += 1
            if f_origin[f] != sender:
                forwarded[sender] += 1
            arrive(k, f, t)
        elif kind == "ack_end":
            a = data
            for j in a.locked:  # third parties that locked onto it
                locked[j] = None
                if not always_on[j] and t >= awake_until[j]:
                    radio_off(j, t)
            a.locked = []
            ks = a.dest
            if ack_incoming[ks] is not a or dead[ks]:
                continue
            ack_incoming[ks] = None
            if waiting_ack[ks] and sending[ks] and queue[ks] and queue[ks][0] == a.frame:
                if success(a, ks)[0]:
                    hop_done(ks, t, k)
                elif rdc is not None:
                    continue_strobe(ks, t)
        elif kind == "gap_end":
            c = data
            if not (waiting_ack[k] and sending[k] and queue[k] and queue[k][0] == c.frame):
                continue
            a = ack_incoming[k]
            if a is not None and a.frame == c.frame:
                continue  # its acknowledgement has started: the acknowledgement's end decides
            continue_strobe(k, t)
        elif kind == "ack_timeout":
            c = data
            if waiting_ack[k] and sending[k] and queue[k] and queue[k][0] == c.frame and ack_incoming[k] is None:
                attempt_failed(k, t)

    for j in range(m):
        if not math.isnan(awake_since[j]):
            radio_off(j, duration_s)
    for name, values in zip(_COUNTERS, (forwarded, overheard, acks, collisions, cca, cca_busy)):
        out[name][:] = values
    return np.array(hop_log, dtype=np.float64).reshape(-1, 6)


__all__ = ["ContikiMac", "Hop", "MeshResult", "MeshSettings", "QUEUE_FRAMES", "ROLES", "wakes_receiver",
           "simulate_mesh"]
