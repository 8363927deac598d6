"""LoRaWAN with feedback on the SimPy engine: class A nodes, gateways and the network server.

Used when something the network says reaches a node again: confirmed uplinks (ACKs and
retransmissions), NbTrans repetitions, ADR (LinkADRReq and the device's ADR backoff) and
application downlinks. This SimPy engine is the reference; `ClosedLoop.run()` runs the same loop
compiled (`iotsim/link/_lorawan_loop.c` via `iotsim.link.loop_native`, the same bytes) when it can,
and `run_simpy()` here otherwise (or when IOTSIM_CLOSED_LOOP=simpy). The processes:

- **Each node** walks through its messages. It picks the start of its next transmission exactly as
  the closed-form schedule does (ready, its previous receive windows closed, a sub-band open; a
  channel among the open ones) and announces it (the gateways see it from its start). It sleeps until
  RX1 opens (RECEIVE_DELAY1 after the end of the uplink), or RX2 if nothing came in RX1 and something
  still can, and reacts: an ACK ends the frame; a missing ACK sends it again after RECEIVE_DELAY2 +
  RETRANSMIT_TIMEOUT (1-3 s, LoRaWAN 1.0.4 4.3.1.3), up to NbTrans times; a LinkADRReq changes its
  data rate and TX power from the next frame (answered by LinkADRAns in that frame's FOpts); ADRACKCnt
  counts uplinks without downlink (ADR backoff).
- **The gateways** decide each uplink at its end (an event at the end of every uplink): every
  transmission that overlaps it started before, so was announced, and every gateway transmission
  that cuts it was requested earlier still. Reception is `iotsim.network.reception`
  (`PathAllocator`/`arrive` in start order, `decode` against a context), so with no feedback this
  engine gives the same bytes as the closed-form fast path (a test runs both). Each gateway has two
  processes, as the Semtech packet forwarder has an upstream and a downstream thread: upstream, it
  forwards each uplink it decoded to the network server, arriving one backhaul latency later;
  downstream, the server's request for a downlink arrives one latency after the server sent it, and
  the gateway puts the downlink on its radio (half duplex: no reception meanwhile).
- **The network server** receives the copies. The first opens the deduplication window
  (`lorawan.deduplication_delay`); when it closes, the server answers through the gateways whose
  copies came by then, strongest first: ADR bookkeeping, then the downlink if any, in RX1 if the
  request reaches a free gateway more than GATEWAY_TX_LEAD_S before the window, else RX2, else none.
  Answers go in order of their times (then of the uplinks' ends).

Events at one instant fire in a fixed order (`_END` .. `_WAKE`: decisions, copies, answers, requests,
then nodes), at exact times (`_Clock.at`), which is the order the compiled loop resolves in. After the
run's end, what is still in flight is decided in the same order without the clock (`_drain`).

Simplifications (stated in the run's notes): a message is split into frames at the data rate in
force when its first frame goes; a downlink reaches its node when the reciprocal link budget clears
the node's sensitivity and (switch `downlink_interference`) other gateways' downlinks on the same
frequency do not destroy it (the uplink reception rule; uplinks do not disturb downlinks, which use
inverted I/Q); the node's receiver stays on for a downlink's whole time on air. The network answers as
ns-3 lorawan's does: in RX1, else RX2, through the strongest gateway that received the uplink and is
free to transmit (not transmitting, its sub-band's duty cycle open); with none free, no downlink. The
server knows the gateways' state as ns-3's GatewayStatus does (`ns_tx`, booked when it decides), so it
never sends a request its gateway would refuse (the gateway checks). The gateways' own transmissions
(`link.gateway_schedule`: model updates' multicast sessions) are in their transmit schedules from the
start: they block uplink reception while on air (half duplex) and class A answers around them, and no
answer goes out on a sub-band while a session spends its duty cycle. A node's process does not wake at
RX2 when nothing can come there (it would change nothing but the order of random draws).
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, bisect_right, insort
from collections import deque
from dataclasses import dataclass
from itertools import accumulate

import numpy as np
import simpy

from iotsim.errors import InputError
from iotsim.link import loop_native
from iotsim.link.base import LinkNodes, Messages, Transmissions
from iotsim.link.draws import frame_salt, keyed_uniform
from iotsim.network import reception
from iotsim.network.fate import Fate
from iotsim.network.topology import gateway_latencies_s
from iotsim.radio import adr, fragmentation, lora, lorawan_mac

NOISE_FIGURE_DB = 6.0
"""Gateway receiver noise figure for the SNR the network server's ADR sees (ns-3 lorawan
AdrComponent::RxPowerToSNR: noise = -174 dBm/Hz + 10 log10(BW) + 6 dB)."""
THERMAL_NOISE_DBM_HZ = -174.0
"""Thermal noise density at 290 K (kT = -174 dBm/Hz)."""

# rank of an on-air loss across attempts and gateways: the furthest stage reached wins
_RANK = {Fate.BELOW_SENSITIVITY: 0, Fate.GATEWAY_TRANSMITTING: 1, Fate.DEMODULATORS_BUSY: 2, Fate.COLLISION: 3}


@dataclass
class _Node:
    """A node's MAC state."""

    sf: int
    tx_index: int  # TXPower index: tx power = max - 2 dB x index
    nb_trans: int
    band_free: list
    node_free: float = -math.inf
    backoff: adr.AdrBackoff | None = None
    ans_pending: bool = False  # a LinkADRAns rides the next uplink's FOpts


# the order of the loop's events at one instant (after SimPy's own: URGENT 0, NORMAL 1): uplinks that end
# are decided first, then copies reach the server, which then answers, then requests reach gateways, then
# nodes wake (the order in which the compiled loop resolves before it runs a node)
_END, _COPY, _ANSWER, _REQUEST, _WAKE = 2, 3, 4, 5, 6


class _Clock(simpy.Environment):
    """SimPy's environment with events at absolute times: `at(t, priority)` fires at exactly t (adding a
    delay to `now` can round), and events at one instant fire in order of priority, then of creation."""

    def at(self, t: float, priority: int, value=None) -> simpy.Event:
        ev = simpy.Event(self)
        ev._ok, ev._value = True, value  # triggered, as simpy.Timeout does
        heapq.heappush(self._queue, (t if t > self._now else self._now, priority, next(self._eid), ev))
        return ev


class _Line:
    """One direction of a gateway's backhaul: a FIFO of (due time, message...) and the event its forwarder
    sleeps on while it is empty."""

    __slots__ = ("items", "waker")

    def __init__(self):
        self.items: deque = deque()
        self.waker = None


class _TxSchedule:
    """A gateway's transmissions, sorted by start. They never overlap (one transmitter), so their ends are
    sorted too."""

    __slots__ = ("starts", "ends", "busy_until")

    def __init__(self, starts=(), ends=()):
        self.starts, self.ends = list(starts), list(ends)
        self.busy_until = self.ends[-1] if self.ends else -math.inf  # end of the latest-ending one

    def overlaps(self, t0: float, t1: float) -> bool:
        """It transmits somewhere in [t0, t1)."""
        if self.busy_until <= t0:
            return False
        i = bisect_left(self.starts, t1) - 1  # the last transmission starting before t1 ends last of those
        return i >= 0 and self.ends[i] > t0

    def transmitting(self, t: float) -> bool:
        if self.busy_until <= t:
            return False
        i = bisect_right(self.starts, t) - 1
        return i >= 0 and self.ends[i] > t

    def add(self, t0: float, t1: float) -> None:
        i = bisect_right(self.starts, t0)
        self.starts.insert(i, t0)
        self.ends.insert(i, t1)
        if t1 > self.busy_until:
            self.busy_until = t1

    def between(self, lo: float, hi: float) -> tuple[list, list]:
        """The transmissions that overlap [lo, hi) (one slice: found by bisection)."""
        i0, i1 = bisect_right(self.ends, lo), bisect_left(self.starts, hi)
        return self.starts[i0:i1], self.ends[i0:i1]

    def trim(self, before: float) -> None:
        """Forget the transmissions that ended by `before`."""
        cut = bisect_right(self.ends, before)
        del self.starts[:cut]
        del self.ends[:cut]


class ClosedLoop:
    """One policy's LoRaWAN traffic with feedback. `run()` returns the `Transmissions` (fates decided)."""

    def __init__(self, link, messages: Messages, nodes: LinkNodes, rng: np.random.Generator,
                 duration_s: float, stop_s: np.ndarray | None = None):
        self.link = link
        self.s = link.settings
        self.region = link.region
        self.messages = messages
        self.nodes = nodes
        self.duration = float(duration_s)
        self.horizon = np.full(nodes.n, self.duration) if stop_s is None else np.minimum(stop_s, self.duration)
        self.model = link.reception_model()
        self.band_of_channel, self.band_dc = link.channel_bands()
        self.channels_hz = link.channels_hz
        self.n_channels = self.band_of_channel.shape[0]
        self.power_mw = 10.0 ** (nodes.rx_power_dbm / 10.0)
        self.n_gw = nodes.rx_power_dbm.shape[1]
        self.sens = np.full(13, np.inf)
        self.sens[7:] = [lora.gateway_sensitivity_dbm(sf, self.s.bandwidth_hz) for sf in range(7, 13)]
        self.rx1_delay = self.region.rx1_delay_s
        self.rx2_delay = self.region.rx2_delay_s
        # the backhaul: each gateway's latency to the network server, which waits dedup_s for copies
        self.gw_latency = gateway_latencies_s(link.network)
        self.dedup_s = float(self.s.deduplication_delay)
        self.max_power_dbm = float(link.tx_power_dbm)
        self.min_power_dbm = float(nodes.min_tx_power_dbm)
        self.max_tx_index = self.region.max_tx_power_index
        self._sf_dr = {sf: self.region.sf_to_data_rate(sf, self.s.bandwidth_hz) for sf in link.uplink_sfs()}
        self._dr_sf = {dr: self.region.data_rate_to_sf(dr) for dr in self.region.uplink_data_rates
                       if self.region.data_rates[dr] is not None}
        self.noise_dbm = THERMAL_NOISE_DBM_HZ + 10 * math.log10(self.s.bandwidth_hz) + NOISE_FIGURE_DB
        self._split_by_sf: dict[int, tuple] = {}
        self._rx_cache: dict[int, tuple] = {}
        self._audible: dict[tuple, list] = {}  # (node, SF, TX power offset) -> gateways that hear it
        # the allocator's state as plain Python (fast one frame at a time), written back before it runs
        self._held: list[list[float]] = [[] for _ in range(self.n_gw)]
        self._busy = [0] * self.n_gw
        self._locked_n = [0] * self.n_gw
        self._dl_cache: dict[tuple, tuple] = {}
        self._dr_cache: dict[tuple, tuple] = {}
        self.power_dbm_l = nodes.rx_power_dbm.tolist()
        # the reception model as plain Python for one-target verdicts (_decode_one)
        self._lin_l = self.power_mw.tolist()
        self._off_cache: dict[float, float] = {}
        self._inter = self.model.inter_sf != "orthogonal"
        self._capture_rule = self.model.capture_rule
        k_lin = self.model.sir_factors()
        self._k_co = float(k_lin[0, 0])
        np.fill_diagonal(k_lin, 0.0)
        self._k_inter = k_lin.tolist()
        self.sens_l = self.sens.tolist()
        # a frame's first attempt draws its channel keyed by the frame's identity (iotsim.link.draws), as the
        # fast path does, so both engines agree when nothing feeds back; later attempts draw in event order
        self.salt = frame_salt(rng)
        self.rng_retx = np.random.default_rng(rng.integers(0, 2**63))  # draws beyond the open-loop frames
        self.rng_timeouts = np.random.default_rng(rng.integers(0, 2**63))
        self._timeouts: list[float] = []
        # attempts announced to the network (one entry per transmission)
        self.a_start: list[float] = []
        self.a_air: list[float] = []
        self.a_ch: list[int] = []
        self.a_sf: list[int] = []
        self.a_node: list[int] = []
        self.a_off: list[float] = []
        self.a_confirmed: list[bool] = []
        self.a_ackreq: list[bool] = []
        self.a_ans: list[bool] = []
        self.a_status: list[int] = []
        self.a_gw: list[int] = []
        self.a_decoders: list[list[int] | None] = []  # per attempt: gateways that decoded it, strongest first
        self.a_dl: list[tuple | None] = []  # (window, received, ack, airtime_s, cmd) of the downlink, if any
        self.a_answer_t: list[float] = []  # per delivered attempt: when the network server decides its answer
        self.a_window: list[bool] = []  # per attempt: its first copy reached the network server
        self.a_sent: list[int] = []  # per attempt: the window (1, 2) of the server's downlink (0: none)
        self.a_heard: list[list[int] | None] = []  # per delivered attempt: every gateway that decoded it
        self.a_seq: list[int] = []  # per attempt: its rank in decode order (ties between equal answer times)
        self._n_decoded = 0
        self._arrival_heap: list = []
        self._end_heap: list = []
        self._arrived_ids: list[int] = []
        self._arrived_start: list[float] = []
        self.a_bits: list[int] = []  # per attempt: bit g set where it locked a path at gateway g
        self.a_afate: list[int] = []  # per attempt: furthest stage where it locked no path (reception.Arrival.fate)
        self._allocator = reception.PathAllocator(self.n_gw, self.model.demodulator_paths)
        self._max_air = 0.0
        # the gateways' own transmissions (updates' multicast sessions on every gateway, unicast fragments on
        # one), known in advance, and the windows in which they spend a sub-band's duty cycle: (sub-band, from,
        # until)
        self.holds: list[tuple[int, float, float]] = []  # every gateway's: (sub-band, from, until)
        self.gw_holds: dict[tuple[int, int], tuple[list, list]] = {}  # (gateway, sub-band) -> (froms, untils)
        sched = link.gateway_schedule
        if sched is not None and len(sched):
            self.holds, self.gw_holds = split_holds(sched.holds, self.region)
            own = [sched.of_gateway(g) for g in range(self.n_gw)]
            # each gateway's radio: what it transmits (half duplex: no reception meanwhile), filled as the
            # network server's requests reach it over the backhaul
            self.gw_radio = [_TxSchedule(sched.start_s[m].tolist(), sched.end_s[m].tolist()) for m in own]
            self._tx_last_end = float(sched.end_s.max())
        else:
            self.gw_radio = [_TxSchedule() for _ in range(self.n_gw)]
            self._tx_last_end = -math.inf
        self.gw_tx_s = np.zeros(self.n_gw)
        self.gw_band_tx_s: list[dict] = [dict() for _ in range(self.n_gw)]
        # the network server's view of the gateways (as ns-3's GatewayStatus): the transmissions it has asked
        # for, booked when it decides them, and each gateway's per-sub-band off time
        self.ns_tx = [_TxSchedule(r.starts, r.ends) for r in self.gw_radio]
        self.ns_band_free: list[dict] = [dict() for _ in range(self.n_gw)]
        # the gateways' packet forwarders (the Semtech forwarder's upstream and downstream threads): what
        # crosses each gateway's backhaul, (due, attempt, gateway) up and (due, attempt, downlink, sub-band)
        # down, each line served by a SimPy process
        self._uplinks = [_Line() for _ in range(self.n_gw)]
        self._requests = [_Line() for _ in range(self.n_gw)]
        # network server state per node
        self.snr_history: list[deque] = [deque(maxlen=adr.DEFAULT_HISTORY) for _ in range(nodes.n)]
        self.pending_cmd: dict[int, tuple] = {}
        # downlinks sent, sorted by start: (end, frequency, SF, gateway) (for interference at the nodes)
        self.dl_interference = bool(link.network.reception.downlink_interference)
        self.dl_starts: list[float] = []
        self.dl_rows: list[tuple] = []
        self._max_dl_air = 0.0
        self._adr_cache: dict[tuple, tuple[int, int]] = {}
        self.app_queue: list[deque] = [deque() for _ in range(nodes.n)]
        self._app_queued = False
        self.stats = {"downlinks_sent": np.zeros(nodes.n, np.int64), "downlinks_received": np.zeros(nodes.n, np.int64),
                      "downlink_airtime_s": np.zeros(nodes.n), "acks_received": np.zeros(nodes.n, np.int64),
                      "adr_commands": np.zeros(nodes.n, np.int64), "app_downlinks_sent": np.zeros(nodes.n, np.int64),
                      "app_downlinks_received": np.zeros(nodes.n, np.int64),
                      "downlinks_interfered": np.zeros(nodes.n, np.int64)}
        # frames as the nodes send them (one row per frame)
        self.rows: list[tuple] = []

    # ---- per-SF splits ----------------------------------------------------------------------
    def split_at(self, sf: int):
        """Frames of every message at one SF: (first row per message, phy, airtime, rx_done) as lists."""
        if sf not in self._split_by_sf:
            m = self.messages
            max_payload = np.full(len(m), self.region.max_app_payload_bytes(sf, self.s.bandwidth_hz), np.int64)
            msg_index, _, payload = fragmentation.split_messages(m.app_bytes, max_payload, self.s.fragment_header_bytes)
            phy = payload + lora.LORAWAN_OVERHEAD_BYTES
            air = self._airtime(phy, sf)
            _, rx2 = self.link.receive_windows_s(np.array([sf]))
            first = np.searchsorted(msg_index, np.arange(len(m) + 1))
            self._split_by_sf[sf] = (first.tolist(), phy.tolist(), air.tolist(), (air + self.rx2_delay + rx2).tolist())
        return self._split_by_sf[sf]

    def _airtime(self, phy, sf, bandwidth_hz=None, crc=True):
        s = self.s
        return np.asarray(lora.time_on_air_s(phy, sf, bandwidth_hz=bandwidth_hz or s.bandwidth_hz,
                                             coding_rate=lora.parse_coding_rate(s.coding_rate),
                                             preamble_symbols=s.preamble_symbols, crc=crc), dtype=np.float64)

    # ---- the run ----------------------------------------------------------------------------
    def run(self) -> Transmissions:
        """The frames with their fates: compiled (iotsim.link.loop_native) when it can be, else on SimPy."""
        choice = loop_native.engine_choice()
        if choice != "simpy":
            why = loop_native.unsupported(self)
            if why is None and loop_native.lib() is None:
                why = f"it could not be built ({loop_native.load_error})"
            if why is None:
                self._queue_app_downlinks()
                got = loop_native.run(self)
                if got is not None:
                    return self._native_transmissions(*got)
                # the compiled loop stopped on an input error: the SimPy engine raises it with its message
            elif choice == "compiled":
                raise InputError(f"{loop_native.ENGINE_ENV}=compiled, but the compiled closed loop cannot run: {why}",
                                 field=loop_native.ENGINE_ENV)
        return self.run_simpy()

    def run_simpy(self) -> Transmissions:
        """The closed loop as SimPy processes (the reference engine): one per node, two per gateway (its
        packet forwarder's upstream and downstream), one for the network server."""
        self.ready_l = self.messages.ready_s.tolist()
        self.kind_l = self.messages.kind.tolist()
        self.window_l = self.messages.window.tolist()
        env = _Clock()
        self.env = env
        m = self.messages
        bounds = np.searchsorted(m.node, np.arange(self.nodes.n + 1)).tolist()
        initial_dr = self.initial_data_rates()
        self._queue_app_downlinks()
        n_bands = self.band_dc.shape[0]
        gens = []
        for k in range(self.nodes.n):
            lo, hi = bounds[k], bounds[k + 1]
            if lo == hi:
                continue
            st = _Node(sf=int(self.nodes.sf[k]), tx_index=0, nb_trans=self.s.nb_trans, band_free=[-math.inf] * n_bands)
            if self.s.adr:
                st.backoff = adr.AdrBackoff(self.region, initial_dr[k], 0, self.s.nb_trans)
            gen = self._node(k, lo, hi, st)
            gens.append(gen)
            env.process(gen)
        for g in range(self.n_gw):
            env.process(self._forwarder(self._uplinks[g], self._reach_server, _COPY))
            env.process(self._forwarder(self._requests[g], self._transmit, _REQUEST))
        self._answers: list = []  # (answer time, decode order, attempt): the server's pending answers
        self._ns_target = math.inf
        self._ns_proc = env.process(self._network_server(env))
        env.run(until=self.duration)
        # after the end: what is still in flight is decided in the same order, then the nodes finish
        # what they planned (never on air)
        self.offline = True
        self._drain()
        for gen in gens:
            for _ in gen:
                pass
        return self._transmissions()

    offline = False

    def _wait_until(self, t: float):
        """The event a node sleeps on until time t (None after the run: everything is decided then)."""
        return None if self.offline else self.env.at(t, _WAKE)

    # ---- the uplink's end: the gateways decide -------------------------------------------------------
    def _on_end(self, event) -> None:
        """An uplink ended (a SimPy callback): every gateway decides it, with every uplink that ended by
        then (all that overlap them started before, so were announced), and forwards what it decoded."""
        self._decode_until(event.value)

    def _decode_until(self, T: float) -> None:
        """Decode every uplink that ended by T; each gateway that decoded one forwards it upstream."""
        if not (self._end_heap and self._end_heap[0][0] <= T):
            return
        # arrivals (path allocation) of everything that started before T, in start order
        arr = []
        while self._arrival_heap and self._arrival_heap[0][0] < T:
            arr.append(heapq.heappop(self._arrival_heap)[1])
        if arr:
            self._arrive(arr)
        targets = []
        while self._end_heap and self._end_heap[0][0] <= T:
            targets.append(heapq.heappop(self._end_heap)[1])
        self._decode(targets)
        ends = self._decoded_until
        for a in targets:  # in order of their ends
            e = self.a_start[a] + self.a_air[a]
            if e > ends:
                ends = e
            if self.a_status[a] == Fate.DELIVERED:
                self.a_seq[a] = self._n_decoded
                self._n_decoded += 1
                for g in self.a_heard[a]:
                    self._send(self._uplinks[g], (e + self.gw_latency[g], a, g))
        self._decoded_until = ends
        if T < math.inf:
            self._trim_gateway_tx(T)

    _decoded_until = -math.inf

    # ---- the gateways' packet forwarders -------------------------------------------------------------
    def _send(self, line: _Line, item: tuple) -> None:
        """Put an item (due time first) on a backhaul line; wake its forwarder if it sleeps."""
        line.items.append(item)
        if line.waker is not None and not self.offline:
            line.waker.succeed()
            line.waker = None

    def _forwarder(self, line: _Line, deliver, priority: int):
        """One direction of a gateway's backhaul, a SimPy process: delivers each item at its due time. Items
        come in the order of their due times (uplinks in order of their ends plus one latency; requests
        in order of the server's answers plus one latency), so the queue is a FIFO."""
        env, queue = self.env, line.items
        while True:
            if not queue:
                line.waker = env.event()
                yield line.waker
                continue
            due = queue[0][0]
            if due > env.now:
                yield env.at(due, priority)
            deliver(*queue.popleft()[1:])

    def _transmit(self, a: int, dl: tuple, band: int) -> None:
        """The server's request for downlink `dl` (a_dl's record) on sub-band `band` reaches its gateway,
        more than GATEWAY_TX_LEAD_S before the window opens: the gateway books the transmission on its radio,
        and the node will find the downlink in its window."""
        _, _, _, air, _, t0, freq, sf, g, _ = dl
        radio = self.gw_radio[g]
        if radio.overlaps(t0, t0 + air):  # the server's view of the gateway is exact
            raise AssertionError(f"gateway {g} asked to transmit at {t0} while it transmits")
        radio.add(t0, t0 + air)
        self._tx_last_end = max(self._tx_last_end, t0 + air)
        self.gw_tx_s[g] += air
        self.gw_band_tx_s[g][band] = self.gw_band_tx_s[g].get(band, 0.0) + air
        i = bisect_right(self.dl_starts, t0)
        self.dl_starts.insert(i, t0)
        self.dl_rows.insert(i, (t0 + air, freq, sf, g))
        self._max_dl_air = max(self._max_dl_air, air)
        self.a_dl[a] = dl

    # ---- the network server: a SimPy process -------------------------------------------------------
    def _reach_server(self, a: int, g: int) -> None:
        """A gateway's copy of uplink `a` reaches the network server. The first copy (through the fastest
        backhaul) opens the deduplication window: the server answers `dedup_s` later (a_answer_t, set when
        the gateways decoded it), through the gateways whose copies came by then (a_decoders, strongest
        first); later copies are dropped."""
        if self.a_window[a]:
            return
        self.a_window[a] = True
        entry = (self.a_answer_t[a], self.a_seq[a], a)
        heapq.heappush(self._answers, entry)
        if self.offline:
            return
        if self._ns_target is None:  # idle: wake it
            self._ns_target = math.inf
            self._ns_idle.succeed()
        elif entry[0] < self._ns_target:  # earlier than the server planned to wake: wake it now
            self._ns_target = math.inf
            self._ns_proc.interrupt()

    _ns_idle = None

    def _network_server(self, env):
        """Sleeps until the next answer time, then answers every uplink due by then, in order of answer
        time (then of decoding)."""
        heap = self._answers
        while True:
            if not heap:
                self._ns_target = None
                self._ns_idle = env.event()
                yield self._ns_idle
                continue
            t = heap[0][0]
            if t > env.now:
                self._ns_target = t
                try:
                    yield env.at(t, _ANSWER)
                except simpy.Interrupt:  # a copy opened a window that closes sooner
                    continue
                self._ns_target = math.inf
            self._answer_until(t)

    def _answer_until(self, T: float) -> None:
        heap = self._answers
        while heap and heap[0][0] <= T:
            self._server(heapq.heappop(heap)[2])

    def _drain(self) -> None:
        """After the run: decode what is still on air, forward every copy, answer in order, deliver every
        request: the processes' decisions, taken without their clock."""
        self._decode_until(math.inf)
        for line in self._uplinks:
            while line.items:
                self._reach_server(*line.items.popleft()[1:])
        self._answer_until(math.inf)
        for line in self._requests:
            while line.items:
                self._transmit(*line.items.popleft()[1:])

    def _queue_app_downlinks(self) -> None:
        if self._app_queued:  # once per loop (the compiled loop queued them before it stopped)
            return
        self._app_queued = True
        rate = self.s.downlinks_per_day
        if rate <= 0:
            return
        rng = np.random.default_rng(self.rng_retx.integers(0, 2**63))
        counts = rng.poisson(rate * self.duration / 86400.0, size=self.nodes.n)
        for k in np.flatnonzero(counts).tolist():
            for t in np.sort(rng.random(counts[k]) * self.duration).tolist():
                self.app_queue[k].append(t)

    def _node(self, k: int, lo: int, hi: int, st: _Node):
        """The node's class A MAC, a SimPy process: it sleeps from each uplink until its RX1 opens."""
        ready_l = self.ready_l
        kind_l, window_l = self.kind_l, self.window_l
        drop = self.s.duty_cycle_mode == "drop"
        confirmed = self.s.confirmed
        band_of = self.band_of_channel.tolist()
        dc = self.band_dc.tolist()
        n_ch = self.n_channels
        rx1_delay, rx2_delay = self.rx1_delay, self.rx2_delay
        horizon = float(self.horizon[k])
        startup = float(self.nodes.startup_s[k])
        for msg in range(lo, hi):
            ready = ready_l[msg]
            settings = st.backoff.next_uplink() if st.backoff is not None else None
            if settings is not None:
                st.sf = self._dr_sf[settings.data_rate]
                st.tx_index = settings.tx_power_index
                st.nb_trans = settings.nb_trans
            first, phys, airs, rx_dones = self.split_at(st.sf)
            rows = range(first[msg], first[msg + 1])
            if drop and not (ready >= st.node_free and ready >= min(st.band_free)):
                for j, r in enumerate(rows):
                    self.rows.append((msg, j, phys[r], st.sf, airs[r], ready, math.nan, True, 0, -1, 0.0, 0.0, 0.0,
                                      0.0, int(Fate.DUTY_CYCLE), -1, st.tx_index))
                continue
            power_dbm = self.max_power_dbm - 2.0 * st.tx_index
            off = power_dbm - self.max_power_dbm
            for j, r in enumerate(rows):
                phy, air, rx_done = phys[r], airs[r], rx_dones[r]
                if st.ans_pending:  # LinkADRAns (2 B) in FOpts
                    phy = phy + adr.LINK_ADR_ANS_BYTES
                    air = float(self._airtime(phy, st.sf))
                    _, rx2 = self.link.receive_windows_s(np.array([st.sf]))
                    rx_done = air + rx2_delay + rx2
                    ans = True
                    st.ans_pending = False
                else:
                    ans = False
                attempt_ready = ready
                attempts, first_start, first_ch = 0, math.nan, -1
                tx_s = rx_s = 0.0
                delivered_end = math.nan
                last_end = math.nan
                best_rank, gw_of, ack_req = -1, -1, bool(settings.adr_ack_req) if settings is not None else False
                while True:
                    t = attempt_ready
                    if st.node_free > t:
                        t = st.node_free
                    earliest = min(st.band_free)
                    if earliest > t:
                        t = earliest
                    if attempts == 0:
                        u = keyed_uniform(self.salt, k, kind_l[msg], window_l[msg], ready, j)
                    else:
                        u = float(self.rng_retx.random())
                    if max(st.band_free) <= t:  # every sub-band open
                        c = min(int(u * n_ch), n_ch - 1)
                    else:
                        open_ch = [c for c in range(n_ch) if st.band_free[band_of[c]] <= t]
                        c = open_ch[min(int(u * len(open_ch)), len(open_ch) - 1)]
                    b = band_of[c]
                    st.band_free[b] = t + air / dc[b]
                    st.node_free = t + rx_done
                    if attempts == 0:
                        first_start, first_ch = t, c
                    if t >= horizon:  # dead or past the end: planned, never on air
                        if attempts == 0:
                            attempts = 1
                        break
                    attempts += 1
                    a = self._announce(t, air, c, st.sf, k, off, confirmed, ack_req, ans)
                    end = t + air
                    last_end = end
                    tx_s += air
                    # asleep until RX1 opens: the gateways decided the uplink at its end, and a downlink for
                    # RX1 reached its gateway before the window opens
                    yield self._wait_until(end + rx1_delay)
                    status = self.a_status[a]
                    if status == Fate.DELIVERED and (self.a_sent[a] == 2 if self.a_answer_t[a] <= end + rx1_delay
                                                     else self.a_answer_t[a] <= end + rx2_delay):
                        # nothing in RX1, and the server sent its answer for RX2 or answers before RX2 opens:
                        # the node listens in RX2 (a node with nothing in RX1 always does; its process
                        # wakes only when something can still come)
                        yield self._wait_until(end + rx2_delay)
                    if status == Fate.DELIVERED:
                        if math.isnan(delivered_end):
                            delivered_end = end
                            gw_of = self.a_gw[a]
                    else:
                        best_rank = max(best_rank, _RANK[Fate(status)])
                    dl = self.a_dl[a]
                    win_rx1, win_rx2 = self._rx_windows(st.sf)
                    got = dl is not None and dl[1]  # strong enough for the node
                    lost = False
                    if got and self.dl_interference:
                        # the node listens to the downlink to its end: by then the network has sent
                        # every downlink that overlaps it
                        yield self._wait_until(dl[5] + dl[3])
                        lost = not self._downlink_survives(k, dl)
                    if got:
                        window, _, acked, dl_air, cmd = dl[:5]
                        if lost:  # the receiver stayed on for it, but another gateway's downlink destroyed it
                            self.stats["downlinks_interfered"][k] += 1
                            acked, cmd = False, None
                        else:
                            self.stats["downlinks_received"][k] += 1
                            self.stats["app_downlinks_received"][k] += dl[9]
                        if window == 1:
                            rx_s += dl_air
                            st.node_free = end + rx1_delay + dl_air
                        else:
                            rx_s += win_rx1 + dl_air
                            st.node_free = end + rx2_delay + dl_air
                        if st.backoff is not None and not lost:
                            st.backoff.on_downlink()
                        if cmd is not None:
                            new_dr, new_idx = cmd
                            st.backoff.data_rate, st.backoff.tx_power_index = new_dr, new_idx
                            st.ans_pending = True
                        if acked:
                            self.stats["acks_received"][k] += 1
                    else:
                        rx_s += win_rx1 + win_rx2
                        acked = False
                    if confirmed:
                        if acked or attempts >= st.nb_trans:
                            break
                        # no ACK: wait RETRANSMIT_TIMEOUT after RX2's delay before the next uplink
                        attempt_ready = end + rx2_delay + self._retransmit_timeout()
                    else:
                        if (got and not lost) or attempts >= st.nb_trans:
                            break
                        attempt_ready = ready
                if attempts and not math.isnan(last_end) and first_start < horizon:
                    if not math.isnan(delivered_end):
                        # the first attempt's end is start + air exactly as the fast path computes it
                        fate, busy = int(Fate.DELIVERED), (air if delivered_end == first_start + air
                                                           else delivered_end - first_start)
                    else:
                        fate = int(_RANK_FATES[best_rank]) if best_rank >= 0 else int(Fate.BELOW_SENSITIVITY)
                        busy = air if attempts == 1 else last_end - first_start
                else:  # never on air: the engine marks it pending or dead from its planned start
                    fate, busy, attempts = int(Fate.DELIVERED), air, 1
                    tx_s, rx_s = air, sum(self._rx_windows(st.sf))
                self.rows.append((msg, j, phy, st.sf, air, ready, first_start, False, attempts, first_ch, tx_s,
                                  rx_s, attempts * startup, busy, fate, gw_of, st.tx_index))

    def _retransmit_timeout(self) -> float:
        """The next RETRANSMIT_TIMEOUT draw (drawn in blocks from their own stream, used in event order)."""
        if not self._timeouts:
            self._timeouts = lorawan_mac.draw_retransmit_timeout_s(self.rng_timeouts, 4096).tolist()[::-1]
        return self._timeouts.pop()

    def _rx_windows(self, sf: int) -> tuple[float, float]:
        """Time RX1 and RX2 stay open with no downlink (s)."""
        got = self._rx_cache.get(sf)
        if got is None:
            rx1, rx2 = self.link.receive_windows_s(np.array([sf]))
            got = self._rx_cache[sf] = (float(rx1[0]), float(rx2))
        return got

    def _announce(self, t, air, c, sf, k, off, confirmed, ack_req, ans) -> int:
        a = len(self.a_start)
        self.a_start.append(t)
        self.a_air.append(air)
        self.a_ch.append(c)
        self.a_sf.append(sf)
        self.a_node.append(k)
        self.a_off.append(off)
        self.a_confirmed.append(confirmed)
        self.a_ackreq.append(ack_req)
        self.a_ans.append(ans)
        self.a_status.append(-1)
        self.a_gw.append(-1)
        self.a_decoders.append(None)
        self.a_dl.append(None)
        self.a_answer_t.append(math.nan)
        self.a_heard.append(None)
        self.a_seq.append(-1)
        self.a_window.append(False)
        self.a_sent.append(0)
        self.a_bits.append(0)
        self.a_afate.append(int(Fate.BELOW_SENSITIVITY))
        heapq.heappush(self._arrival_heap, (t, a))
        heapq.heappush(self._end_heap, (t + air, a))
        if t < self._decoded_until:  # the gateways would have decided an uplink it overlaps without it
            raise AssertionError(f"uplink announced at {t} after the gateways decided one ending at {self._decoded_until}")
        if not self.offline:  # the gateways decide it at its end
            self.env.at(t + air, _END, t + air).callbacks.append(self._on_end)
        if air > self._max_air:
            self._max_air = air
        return a

    # ---- reception -------------------------------------------------------------------------------
    def _frames(self, ids) -> reception.Frames:
        def pick(values, dtype):
            return np.fromiter((values[i] for i in ids), dtype=dtype, count=len(ids))

        sf = pick(self.a_sf, np.int64)
        return reception.Frames(pick(self.a_start, np.float64), pick(self.a_air, np.float64),
                                pick(self.a_ch, np.int64), sf, pick(self.a_node, np.int64), self.sens[sf],
                                pick(self.a_off, np.float64))

    def _gateway_tx(self, lo: float, hi: float) -> reception.GatewayTx | None:
        """The gateways' transmit intervals that overlap [lo, hi), or None if there are none."""
        if self._tx_last_end <= lo:
            return None
        out = [radio.between(lo, hi) for radio in self.gw_radio]
        return reception.GatewayTx([(np.array(a), np.array(b)) for a, b in out], self.n_gw) if any(a for a, _ in out) \
            else None

    def _trim_gateway_tx(self, T: float) -> None:
        """Forget transmissions that ended long before T: after the gateways decided everything that
        ended by T, nothing looked at later starts before T minus the longest uplink."""
        for sched in self.gw_radio + self.ns_tx:
            if len(sched.starts) > TX_TRIM:
                sched.trim(T - TX_KEEP_S)
        if len(self.dl_starts) > TX_TRIM:  # downlinks: the same horizon (none lasts near TX_KEEP_S)
            cut = bisect_right(self.dl_starts, T - TX_KEEP_S)
            del self.dl_starts[:cut]
            del self.dl_rows[:cut]

    def _arrive(self, ids: list[int]) -> None:
        if len(ids) <= SCALAR_BATCH:
            for a in ids:
                self._arrive_one(a)
            return
        alloc = self._allocator
        self._sync_allocator()
        frames = self._frames(ids)
        tx = self._gateway_tx(frames.start_s[0], frames.end_s.max())
        got = reception.arrive(frames, self.nodes.rx_power_dbm, alloc, tx)
        if alloc.paths is not None:
            self._held = [h.tolist() for h in alloc._held]
        self._busy = alloc._busy_ticks.tolist()
        self._locked_n = alloc.frames_locked.tolist()
        for a, row, fate in zip(ids, got.locked, got.fate.tolist()):
            self.a_bits[a] = int.from_bytes(row.tobytes(), "little")
            self.a_afate[a] = fate
        self._arrived_ids.extend(ids)
        self._arrived_start.extend(frames.start_s.tolist())

    def _sync_allocator(self) -> None:
        """Write the plain-Python copies of the allocator's state back into it."""
        alloc = self._allocator
        if alloc.paths is not None:
            alloc._held = [np.array(h, dtype=np.float64) for h in self._held]
        alloc._busy_ticks = np.array(self._busy, dtype=np.int64)
        alloc.frames_locked = np.array(self._locked_n, dtype=np.int64)

    def _arrive_one(self, a: int) -> None:
        """`reception.arrive` for one frame, in plain Python (the same arithmetic as the allocator's).

        Only the gateways that hear the frame can lock a path; at the others it is below sensitivity.
        (A gateway's list of held paths is trimmed when it is next used: ends at or before a start
        never count, here or in the allocator.)"""
        s, air, k, off = self.a_start[a], self.a_air[a], self.a_node[a], self.a_off[a]
        key = (k, self.a_sf[a], off)
        audible = self._audible.get(key)
        if audible is None:
            sens = self.sens_l[self.a_sf[a]]
            audible = self._audible[key] = [g for g, p in enumerate(self.power_dbm_l[k]) if p + off >= sens]
        alloc = self._allocator
        paths = alloc.paths
        best = _BS_RANK if len(audible) < self.n_gw else -1  # furthest stage where no path was locked
        bits = 0
        if audible:
            e = s + air
            ticks = int(round(air * reception.TICKS_PER_S))
            for g in audible:
                radio = self.gw_radio[g]
                if radio.busy_until > s and radio.transmitting(s):
                    best = max(best, _GT_RANK)
                    continue
                if paths is not None:
                    held = self._held[g]
                    if held and held[0] <= s:
                        del held[: bisect_right(held, s)]
                    if len(held) >= paths:
                        best = max(best, _DB_RANK)
                        continue
                    insort(held, e)
                self._busy[g] += ticks
                self._locked_n[g] += 1
                bits |= 1 << g
        alloc._last_start = s
        self.a_afate[a] = _RANK_FATE_CODES[max(best, 0)]
        self.a_bits[a] = bits
        self._arrived_ids.append(a)
        self._arrived_start.append(s)

    def _cut(self, bits: int, t0: float, t1: float) -> bool:
        """Some gateway among `bits` (where a frame locked a path) transmits during [t0, t1)."""
        g = 0
        while bits:
            if bits & 1 and self.gw_radio[g].overlaps(t0, t1):
                return True
            bits >>= 1
            g += 1
        return False

    def _decode(self, targets: list[int]) -> None:
        t_start = min(self.a_start[a] for a in targets)
        t_end = max(self.a_start[a] + self.a_air[a] for a in targets)
        lo = bisect_left(self._arrived_start, t_start - self._max_air)
        # every arrived frame that starts from the longest airtime before the batch up to its end, also
        # those that end before the batch starts: they add nothing, but they are part of the group that
        # _decode_one walks, so the sums are added in an order that does not depend on the batch (the
        # order reception.decode gives them over a whole run)
        context = [i for i in self._arrived_ids[lo:] if self.a_start[i] < t_end]
        # a target alone on its channel, with none of the gateways where it locked a path transmitting
        # meanwhile, meets no interference and is cut nowhere: its verdict follows from its arrival
        # (plain Python); the others go through `reception.decode`
        busy = []
        for a in targets:
            s0, e0, ch = self.a_start[a], self.a_start[a] + self.a_air[a], self.a_ch[a]
            alone = not any(
                i != a and self.a_ch[i] == ch and self.a_start[i] < e0 and self.a_start[i] + self.a_air[i] > s0
                for i in context) and not self._cut(self.a_bits[a], s0, e0)
            if alone:
                self._verdict_alone(a)
            else:
                busy.append(a)
        for a in busy:
            self._decode_one(a, context)
        # trim the arrived list now and then: nothing before the earliest unresolved start matters
        if len(self._arrived_ids) > 4096 and self._end_heap:
            keep_from = bisect_left(self._arrived_start, min(self.a_start[a] for _, a in self._end_heap[:1])
                                    - 2 * self._max_air)
            keep_from = min(keep_from, bisect_left(self._arrived_start, t_start - 2 * self._max_air))
            if keep_from > 2048:
                del self._arrived_ids[:keep_from]
                del self._arrived_start[:keep_from]

    def _decode_one(self, a: int, context: list[int]) -> None:
        """`reception.decode` for one target in plain Python: the same sums in the same order (the
        target's group in start order, then at d = 1, 2, ... the frame d after it, then the frame d
        before it), so the same floats and the same verdict; only the gateways where the target
        locked a path are summed (the others cannot decode it, and each gateway's sum stands alone).
        """
        bits = self.a_bits[a]
        rank = _FATE_RANK[self.a_afate[a]]
        if not bits:
            self.a_status[a] = _RANK_FATE_CODES[rank]
            self.a_gw[a] = -1
            return
        a_start, a_air, a_ch, a_sf, a_node = self.a_start, self.a_air, self.a_ch, self.a_sf, self.a_node
        gws = [g for g in range(self.n_gw) if bits >> g & 1]
        ch, inter = a_ch[a], self._inter
        if inter:  # the target's group: its channel, in start order (the context is in start order)
            grp = [i for i in context if a_ch[i] == ch]
        else:
            sf = a_sf[a]
            grp = [i for i in context if a_ch[i] == ch and a_sf[i] == sf]
        p = grp.index(a)
        n = len(grp)
        starts = [a_start[i] for i in grp]
        ends = [a_start[i] + a_air[i] for i in grp]
        maxend = list(accumulate(ends, max))  # running max of the ends in start order
        sp, ep = starts[p], ends[p]
        energy = [[0.0] * len(gws) for _ in range(6 if inter else 1)]
        lin, factor = self._lin_l, self._off_factor

        def add(j, ov):
            i = grp[j]
            cell = energy[a_sf[i] - 7 if inter else 0]
            pw, f = lin[a_node[i]], factor(self.a_off[i])
            for x, g in enumerate(gws):
                cell[x] += (pw[g] * f) * ov

        after = before = True
        d = 1
        while after or before:
            if after:
                j = p + d
                if j < n and starts[j] < ep:
                    add(j, (ep if ep < ends[j] else ends[j]) - starts[j])
                else:
                    after = False
            if before:
                j = p - d
                if j < 0 or not (maxend[j] > sp):
                    before = False
                elif sp < ends[j]:
                    add(j, (ends[j] if ends[j] < ep else ep) - sp)
            d += 1
        own = a_sf[a] - 7 if inter else 0
        pw, f, dur = lin[a_node[a]], factor(self.a_off[a]), ep - sp
        power = self.power_dbm_l[a_node[a]]
        decoders = []
        for x, g in enumerate(gws):
            is_cut = self.gw_radio[g].overlaps(sp, ep)
            gr = _GT_RANK if is_cut else _COL_RANK
            if gr > rank:
                rank = gr
            if is_cut:
                continue
            if not self._destroyed(energy[own][x], (slot[x] for slot in energy), own, (pw[g] * f) * dur):
                decoders.append(g)
        if decoders:
            self._delivered(a, decoders, power)
        else:
            self.a_status[a] = _RANK_FATE_CODES[rank]
            self.a_gw[a] = -1

    def _off_factor(self, off_db: float) -> float:
        """10^(offset/10) as reception.decode computes it (numpy), cached per offset."""
        got = self._off_cache.get(off_db)
        if got is None:
            got = self._off_cache[off_db] = float(10.0 ** (np.array([off_db]) / 10.0)[0])
        return got

    def _verdict_alone(self, a: int) -> None:
        """`reception.decode` for a frame no other frame or transmission disturbs: decoded wherever it
        locked a path."""
        bits = self.a_bits[a]
        if not bits:
            self.a_status[a] = self.a_afate[a]
            self.a_gw[a] = -1
            return
        self._delivered(a, [g for g in range(self.n_gw) if bits >> g & 1], self.power_dbm_l[self.a_node[a]])

    def _delivered(self, a: int, decoders: list[int], power: list[float]) -> None:
        """The uplink was decoded at `decoders` (ascending): delivered through the strongest (the first
        on a tie, as reception.decode reports it). Its first copy reaches the network server after the
        fastest of their backhauls; the server answers `dedup_s` later, through the gateways whose copies
        came by then, strongest first."""
        self.a_status[a] = int(Fate.DELIVERED)
        if len(decoders) > 1:
            decoders = sorted(decoders, key=lambda g: -power[g])  # stable: ties keep the lower index first
        self.a_gw[a] = decoders[0]
        lat = self.gw_latency
        first = min(lat[g] for g in decoders)
        self.a_answer_t[a] = (self.a_start[a] + self.a_air[a]) + first + self.dedup_s
        self.a_decoders[a] = [g for g in decoders if lat[g] <= first + self.dedup_s]
        self.a_heard[a] = decoders

    def _server(self, a: int) -> None:
        """What the network server does with one delivered uplink at its answer time: ADR bookkeeping and
        the downlink, sent to its gateway over the backhaul."""
        k = self.a_node[a]
        decoders = self.a_decoders[a]
        g = decoders[0]
        sf = self.a_sf[a]
        end = self.a_start[a] + self.a_air[a]
        answer_t = self.a_answer_t[a]
        dr = self._sf_dr[sf]
        tx_index = int(round(-self.a_off[a] / 2.0))
        cmd = None
        if self.s.adr:
            if self.a_ans[a]:  # the node confirmed the last LinkADRReq: its settings changed
                self.pending_cmd.pop(k, None)
                self.snr_history[k].clear()
            snr = self.power_dbm_l[k][g] + self.a_off[a] - self.noise_dbm
            self.snr_history[k].append(snr)
            if len(self.snr_history[k]) >= adr.DEFAULT_HISTORY and k not in self.pending_cmd:
                # the algorithm reads only SNRmax of the history: cache its answer per (SNRmax, settings)
                key = (max(self.snr_history[k]), dr, tx_index)
                got = self._adr_cache.get(key)
                if got is None:
                    got = self._adr_cache[key] = adr.semtech_adr([key[0]], dr, tx_index, self.region,
                                                                 margin_db=self.s.adr_margin_db)
                new_dr, new_idx = got
                new_idx = min(new_idx, self._lowest_index())
                if (new_dr, new_idx) != (dr, tx_index):
                    self.pending_cmd[k] = (new_dr, new_idx)
            cmd = self.pending_cmd.get(k)
        app = None
        q = self.app_queue[k]
        if q and q[0] <= answer_t:
            app = q[0]
        if not (self.a_confirmed[a] or cmd is not None or app is not None or self.a_ackreq[a]):
            return
        phy = self.downlink_phy_bytes(cmd is not None, app is not None)
        rx1_hz, rx1_sf, rx1_bw = self._rx1(dr, self.a_ch[a])
        # RX1: the uplink's data rate minus the offset, on the region's RX1 frequency; RX2: fixed
        options = [(1, end + self.rx1_delay, rx1_hz, rx1_sf, rx1_bw),
                   (2, end + self.rx2_delay, float(self.region.rx2_frequency_hz), int(self.s.rx2_sf),
                    self.link.rx2_bandwidth_hz)]
        # as ns-3 lorawan's network server (LoraNetworkStatus::GetBestGatewayForDevice): in RX1, else RX2,
        # through the strongest gateway that received the uplink and is free to transmit then (not
        # transmitting, its sub-band's duty cycle open), if the answer reaches it in time over its backhaul
        lat = self.gw_latency
        for window, t0, freq, dl_sf, dl_bw in options:
            air, band, dc, sens = self._downlink_facts(phy, dl_sf, dl_bw, freq)
            for g in decoders:
                if answer_t + lat[g] + lorawan_mac.GATEWAY_TX_LEAD_S < t0 and not (
                        self.ns_band_free[g].get(band, -math.inf) > t0 or self.ns_tx[g].overlaps(t0, t0 + air)
                        or self._band_held(g, band, t0, t0 + air)):
                    break
            else:
                continue
            self.ns_tx[g].add(t0, t0 + air)
            self.ns_band_free[g][band] = t0 + air / dc
            node_dbm = self.power_dbm_l[k][g] - self.max_power_dbm + self.s.gateway_tx_power_dbm
            received = node_dbm >= sens
            self.stats["downlinks_sent"][k] += 1
            self.stats["downlink_airtime_s"][k] += air
            if cmd is not None:
                self.stats["adr_commands"][k] += 1
            if app is not None:
                q.popleft()
                self.stats["app_downlinks_sent"][k] += 1
            # (window, strong enough for the node, ACK, airtime, command, start, frequency, SF, gateway, app data):
            # the gateway puts it on its radio when the request arrives
            dl = (window, received, bool(self.a_confirmed[a]), air, cmd if received else None, t0, freq,
                  dl_sf, g, int(app is not None))
            self.a_sent[a] = window
            self._send(self._requests[g], (answer_t + lat[g], a, dl, band))
            return

    def _band_held(self, g: int, band: int, t0: float, t1: float) -> bool:
        """Gateway g's own transmissions (a session's, or its unicast fragments) spend `band`'s duty cycle
        somewhere in [t0, t1)."""
        if any(b == band and t0 < hi and t1 > lo for b, lo, hi in self.holds):
            return True
        own = self.gw_holds.get((g, band))
        if own is None:
            return False
        i = bisect_left(own[0], t1) - 1  # windows are disjoint: only the last one starting before t1 can overlap
        return i >= 0 and own[1][i] > t0

    def downlink_phy_bytes(self, link_adr_req: bool, app_data: bool) -> int:
        """PHY size of a downlink: the ACK frame, plus a LinkADRReq in FOpts, plus FPort and application data."""
        return (lorawan_mac.ACK_DOWNLINK_PHY_BYTES + (adr.LINK_ADR_REQ_BYTES if link_adr_req else 0)
                + ((lorawan_mac.FPORT_BYTES + self.s.downlink_payload_bytes) if app_data else 0))

    def initial_data_rates(self) -> list[int]:
        """Each node's data rate at the start (its planned SF): where its ADR backoff starts."""
        return [self.region.sf_to_data_rate(int(sf), self.s.bandwidth_hz) for sf in self.nodes.sf.tolist()]

    def _downlink_survives(self, k: int, dl: tuple) -> bool:
        """Whether a downlink survives the other gateways' downlinks at its node: the same reception rule
        as uplinks (energy summed over the overlap per SF, co-SF capture, inter-SF thresholds) among
        downlinks on the same frequency. The node's power from each gateway is the reciprocal of the
        uplink's at `gateway_tx_power_dbm`. Uplinks do not disturb it: LoRaWAN downlinks use inverted
        I/Q polarity, which a node's receiver tells apart from uplinks (LoRaWAN L2 1.0.4 section 4)."""
        _, _, _, air, _, t0, freq, sf, g, _ = dl
        end = t0 + air
        base = self.s.gateway_tx_power_dbm - self.max_power_dbm
        power = self.power_dbm_l[k]
        starts, rows = self.dl_starts, self.dl_rows
        energy = [0.0] * 6
        j = bisect_left(starts, end) - 1
        while j >= 0 and starts[j] > t0 - self._max_dl_air:
            s2 = starts[j]
            e2, f2, sf2, g2 = rows[j]
            if f2 == freq and e2 > t0 and not (s2 == t0 and g2 == g):
                ov = (end if end < e2 else e2) - (t0 if t0 > s2 else s2)
                energy[sf2 - 7] += 10.0 ** ((power[g2] + base) / 10.0) * ov
            j -= 1
        if not any(energy):
            return True
        own = sf - 7
        return not self._destroyed(energy[own], energy, own, 10.0 ** ((power[g] + base) / 10.0) * air)

    def _destroyed(self, e_co: float, slot_energy, own: int, signal: float) -> bool:
        """reception.decode's rule for one receiver: co-SF energy against the capture rule, then each SF
        slot's energy against the inter-SF thresholds (interference energy and signal over the frame)."""
        rule = self._capture_rule
        if rule == 0:
            dead = e_co > 0
        elif rule == 1:
            dead = e_co * self._k_co > signal
        else:
            dead = e_co >= signal and e_co > 0
        if not dead and self._inter:
            dead = any(e * k > signal for e, k in zip(slot_energy, self._k_inter[own]))
        return dead

    def _rx1(self, dr: int, channel: int) -> tuple[float, int, float]:
        key = (dr, channel)
        got = self._dr_cache.get(key)
        if got is None:
            rx1_dr = self.region.rx1_data_rate(dr, self.s.rx1_dr_offset)
            got = self._dr_cache[key] = (float(self.region.rx1_frequency_hz(float(self.channels_hz[channel]))),
                                         self.region.data_rate_to_sf(rx1_dr), self.region.data_rate_bandwidth_hz(rx1_dr))
        return got

    def _downlink_facts(self, phy: int, sf: int, bw: float, freq: float) -> tuple[float, int, float, float]:
        """(time on air, sub-band, its duty cycle, node sensitivity) of a downlink (cached)."""
        key = (phy, sf, bw, freq)
        got = self._dl_cache.get(key)
        if got is None:
            got = self._dl_cache[key] = (
                float(self._airtime(phy, sf, bw, crc=False)), int(self.region.sub_band_index(freq)),
                float(self.region.sub_band_duty_cycle(freq)), float(lora.node_sensitivity_dbm(sf, bw)))
        return got

    def _lowest_index(self) -> int:
        """The highest TXPower index (lowest power) every node's radio can reach: max - 2 dB x index."""
        if not math.isfinite(self.min_power_dbm):
            return self.max_tx_index
        return max(0, min(self.max_tx_index, int(math.floor((self.max_power_dbm - self.min_power_dbm) / 2.0 + 1e-9))))

    # ---- the outcome ---------------------------------------------------------------------------
    def _transmissions(self) -> Transmissions:
        rows = sorted(self.rows, key=lambda r: (r[0], r[1]))
        cols = dict(zip(ROW_COLUMNS, (np.asarray(c) for c in (zip(*rows) if rows else [()] * len(ROW_COLUMNS)))))
        self._sync_allocator()
        gateway_stats = {"path_busy_s": self._allocator.path_busy_s, "frames_locked": self._allocator.frames_locked.copy(),
                         "tx_airtime_s": self.gw_tx_s.copy(), "tx_band_s": [dict(d) for d in self.gw_band_tx_s]}
        return self._build(cols, gateway_stats, {k: v.copy() for k, v in self.stats.items()})

    def _native_transmissions(self, cols: dict, report: dict) -> Transmissions:
        gateway_stats = {"path_busy_s": report["busy_ticks"] / reception.TICKS_PER_S,
                         "frames_locked": report["frames_locked"], "tx_airtime_s": report["tx_airtime_s"],
                         "tx_band_s": report["tx_band_s"]}
        return self._build(cols, gateway_stats, {k: report["node_stats"][k] for k in self.stats})

    def _build(self, cols: dict, gateway_stats: dict, node_stats: dict) -> Transmissions:
        tx = self._frames_of(cols, self.messages)
        self.link.add_schedule_airtime(gateway_stats)
        tx.gateway_stats = gateway_stats
        tx.node_stats = node_stats
        return tx

    def _frames_of(self, cols: dict, m: Messages) -> Transmissions:
        """The frames of `m` whose rows are `cols` (messages numbered as in `m`)."""
        n = len(cols["msg"])
        msg = cols["msg"].astype(np.int64, copy=False)
        tx = Transmissions(
            message=msg, node=m.node[msg] if n else np.zeros(0, np.int64), fragment=cols["frag"].astype(np.int64, copy=False),
            phy_bytes=cols["phy"].astype(np.int64, copy=False), sf=cols["sf"].astype(np.int64, copy=False),
            airtime_s=cols["air"].astype(np.float64, copy=False), ready_s=cols["ready"].astype(np.float64, copy=False),
            start_s=cols["start"].astype(np.float64, copy=False), dropped=cols["dropped"].astype(bool, copy=False),
        )
        tx.attempts = cols["attempts"].astype(np.int64, copy=False)
        tx.channel = cols["ch"].astype(np.int8, copy=False)
        tx.tx_s = cols["tx_s"].astype(np.float64, copy=False)
        tx.rx_s = cols["rx_s"].astype(np.float64, copy=False)
        tx.standby_s = cols["standby"].astype(np.float64, copy=False)
        tx.busy_s = cols["busy"].astype(np.float64, copy=False)
        tx.link_fate = cols["fate"].astype(np.int8, copy=False)
        tx.link_gateway = cols["gw"].astype(np.int16, copy=False)
        if self.s.adr:  # TX power varies per frame only under ADR
            tx.tx_power_dbm = (self.max_power_dbm - 2.0 * cols["tx_index"].astype(np.float64, copy=False)) if n else np.zeros(0)
        return tx


class LoopChunks:
    """The closed loop of a run in time chunks (iotsim.engine.chunked): one compiled loop (`loop_native.Session`)
    kept across chunks, each chunk's messages fed as a batch, the loop advanced to the chunk's end, and the frames
    of every chunk all of whose messages the nodes have sent handed back. The same bytes as `ClosedLoop.run()`
    on the whole run's messages (the loop's text says why), with the nodes' MAC, ADR and duty-cycle state, the
    network server's and the gateways' carried in the loop, and memory bounded by the nodes and what is on air.
    It needs the compiled loop (the SimPy engine runs whole runs only)."""

    def __init__(self, link, nodes: LinkNodes, rng: np.random.Generator, duration_s: float,
                 stop_s: np.ndarray | None = None, where: str = "simulation.chunk"):
        self.loop = ClosedLoop(link, Messages.empty(), nodes, rng, duration_s, stop_s)
        why = self.unavailable() or loop_native.unsupported(self.loop)
        if why:
            raise InputError(f"a run in time chunks with the LoRaWAN closed loop needs the compiled loop: {why}; "
                             "remove simulation.chunk to run it whole", field=where)
        self.where = where
        self.loop._queue_app_downlinks()  # (drawn as the whole run draws them: before the loop starts)
        self.session = loop_native.Session(self.loop)
        self.pending: list[tuple[int, Messages]] = []  # (first message number, messages) of batches not handed back
        self._next_base = 0  # the number of the next batch's first message
        self._drained = 0  # batches handed back

    @staticmethod
    def unavailable() -> str | None:
        """Why the compiled loop cannot run here (None: it can)."""
        if loop_native.engine_choice() == "simpy":
            return f"{loop_native.ENGINE_ENV}=simpy asks for the SimPy engine, which runs whole runs only"
        if loop_native.lib() is None:
            return f"it could not be built ({loop_native.load_error})"
        return None

    def feed(self, messages: Messages, t_end_s: float) -> list[Transmissions]:
        """A chunk's messages (ordered by node), then the loop up to `t_end_s` (inf: to the end of the run).
        Returns the frames of each chunk now complete, oldest first (fates in `link_fate`)."""
        base = self._next_base
        self.pending.append((base, messages))
        self._next_base = base + len(messages)
        try:
            self.session.feed(messages)
            self.session.advance(t_end_s)
        except loop_native.Stopped as stop:
            raise self._input_error(stop) from None
        upto = self.session.finished()
        done = upto - self._drained
        if done <= 0:
            return []
        cols = self.session.drain(upto)
        self._drained = upto
        out = []
        for base, m in self.pending[:done]:
            mine = (cols["msg"] >= base) & (cols["msg"] < base + len(m))
            part = {k: v[mine] for k, v in cols.items()}
            part["msg"] = part["msg"] - base
            out.append(self.loop._frames_of(part, m))
        del self.pending[:done]
        return out

    def stats(self) -> tuple[dict, dict]:
        """(gateway stats, node stats) of the run, once every chunk has been fed (as `Transmissions` carries them)."""
        report = self.session.report()
        gateway_stats = {"path_busy_s": report["busy_ticks"] / reception.TICKS_PER_S,
                         "frames_locked": report["frames_locked"], "tx_airtime_s": report["tx_airtime_s"],
                         "tx_band_s": report["tx_band_s"]}
        self.loop.link.add_schedule_airtime(gateway_stats)
        return gateway_stats, {k: report["node_stats"][k] for k in self.loop.stats}

    def close(self) -> None:
        self.session.close()

    def _input_error(self, stop) -> InputError:
        if stop.code == 2:
            return InputError(f"LoRaWAN frames at SF{stop.sf} leave no room for data after the fragment header",
                              field="network.lorawan.fragment_header_bytes")
        return InputError(f"the compiled LoRaWAN closed loop stopped (code {stop.code}) on this scenario; remove "
                          "simulation.chunk to run it whole, where the SimPy engine reports the cause", field=self.where)


ROW_COLUMNS = ("msg", "frag", "phy", "sf", "air", "ready", "start", "dropped", "attempts", "ch", "tx_s", "rx_s",
               "standby", "busy", "fate", "gw", "tx_index")
"""The columns of one frame's row, in the order the SimPy engine appends them (and the compiled loop names them)."""

_RANK_FATES = sorted(_RANK, key=_RANK.get)
_BS_RANK, _GT_RANK, _DB_RANK = _RANK[Fate.BELOW_SENSITIVITY], _RANK[Fate.GATEWAY_TRANSMITTING], _RANK[Fate.DEMODULATORS_BUSY]
_RANK_FATE_CODES = [int(f) for f in _RANK_FATES]
_COL_RANK = _RANK[Fate.COLLISION]
_FATE_RANK = [0] * (max(int(f) for f in Fate) + 1)  # Fate code -> rank (other codes: 0)
for _f, _r in _RANK.items():
    _FATE_RANK[int(_f)] = _r
TX_KEEP_S = 60.0  # gateway transmissions kept this long after their end (longer than any uplink)
def split_holds(holds, region) -> tuple[list, dict]:
    """A gateway schedule's holds, (frequency, from, until, gateway) with gateway -1 for every one, as the
    loops read them: every gateway's as (sub-band, from, until), and each gateway's own per (gateway,
    sub-band) as sorted lists of froms and untils, overlapping windows merged (so they are disjoint)."""
    shared, own = [], {}
    for h in holds:
        f, lo, hi = h[0], float(h[1]), float(h[2])
        g = int(h[3]) if len(h) > 3 else -1
        band = int(region.sub_band_index(f))
        if g < 0:
            shared.append((band, lo, hi))
        else:
            own.setdefault((g, band), []).append((lo, hi))
    merged = {}
    for key, windows in own.items():
        windows.sort()
        los, his = [windows[0][0]], [windows[0][1]]
        for lo, hi in windows[1:]:
            if lo <= his[-1]:
                his[-1] = max(his[-1], hi)
            else:
                los.append(lo)
                his.append(hi)
        merged[key] = (los, his)
    return shared, merged


TX_TRIM = 4096  # trim a gateway's list of transmissions once it holds this many
SCALAR_BATCH = 8  # arrivals fed one by one in Python up to this many (numpy's overhead dominates below)

__all__ = ["ClosedLoop"]
