"""A run in time chunks: memory bounded by nodes, not by frames, and the same bytes whatever the chunk length.

`simulation.chunk: 1d` runs a scenario one chunk of time after the other. Per chunk, each group's
windows that end in it (`WindowCursor`: each node's pool draws resumed from its own generator, the
fresh event windows' verdicts kept from the plan) and its heartbeats become each policy's messages;
the link schedules their frames from each node's state left by the chunk before
(`Link.schedule_carry`: LoRaWAN's duty cycle, `iotsim.link.lorawan.ScheduleCarry`; BLE's and Wi-Fi's
in-order service, `iotsim.link.schedule.ServeCarry`); gateway reception runs as frames become decidable (all frames
that start before the end of the chunk are known: a later chunk's frames are ready after it), with
each gateway's demodulator paths carried (`iotsim.network.reception.PathAllocator`); the frames of a
chunk whose fates are all known are then added, in the run's canonical order, to the per-node tally
and energy ledger, the packets table (streamed to parquet) and the cloud queue, which serves requests
in arrival order once no later request can arrive before them (`CloudQueue`, the FIFO recurrence of
`iotsim.network.cloud.simulate_cloud`).

Canonical order: messages by (ready time, node, kind), where a window's message is ready when its window
ends (plus the inference on the node for on-device policies) and a heartbeat or a poll when it fires
(chunks are cut on ready times, `MessageStream`, so concatenating chunks keeps the order, and each node
sends its messages in the whole run's order); frames by their message's rank, then fragment. Every sum over frames is made one frame at a
time in that order onto running totals, so no float depends on where the chunks were cut.

Batteries that empty within the run: the first pass gives each node's usable energy (at its mean power,
as the whole-run engine); a pass of schedules only finds when each at-risk node dies (`DeathWatch`), and
the chunks run again with those deaths. Under the closed loop a death changes the others' traffic: the
whole run's passes, over the chunks (`closed_loop_deaths`).

Model updates (`updates:`): the rollouts are planned before any policy, as in the whole run
(`iotsim.engine.updates.run_updates`); with class A unicast each policy runs over all the chunks in passes
until the fragments answer exactly the polls it heard (`updates.settle_polls`, one policy at a time: each
pass has its own gateway schedule). Each chunk's windows that end once their node runs a new model get
its on-device verdicts on the same draws (`ModelSwitch`); the gateways' own transmissions (multicast and
unicast fragments) block uplinks in `ReceptionCarry` as in the whole run's reception (and are in the
closed loop's schedules); the class A unicast polls go out with the chunk they are ready in
(`MessageCursor`); the listening and applying time is charged at the end, its bursts in the battery
budget and the `DeathWatch`.

What it runs: the open-loop LoRaWAN link (ALOHA, duty cycle, gateway reception as ns-3 models it), the
LoRaWAN closed loop (confirmed uplinks, ADR, NbTrans, downlinks: one compiled loop kept across chunks,
`iotsim.link.lorawan_loop.LoopChunks`, which hands back a chunk's frames, fates decided, once the nodes
have sent all its messages), NB-IoT, BLE and Wi-Fi (each frame's fate decided as it is sent; their
keep-alive charged as in the whole run; NB-IoT's reports added once the tail after each, which lasts until
the node's next report, is settled: `iotsim.link.nbiot.NbIotCarry`), model updates over LoRaWAN, BLE and
Wi-Fi (multicast, class A unicast, BLE and Wi-Fi transfers), periodic heartbeats, every policy but the
energy-aware one, event-driven wake-ups (each chunk's windows judged on their own samples; the windows that
woke each node counted over the run, `WakeCount`), Poisson heartbeats (keyed by node and block of time,
`fleet.poisson_arrivals`). What it refuses with a clear message: the mesh, federated rounds, solar
harvesting (and with it the energy-aware policy).
"""

from __future__ import annotations

import ctypes
import dataclasses
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from iotsim.energy.ledger import EnergyLedger
from iotsim.engine import stages
from iotsim.engine.fleet import STREAM_LINK, GroupPlan, Verdicts, group_rng, plan_group, woken
from iotsim.engine.messages import merge_messages, policy_messages
from iotsim.engine.tally import Tally
from iotsim.engine.updates import (Listening, Polls, UpdateOutcome, activation_s, gateway_schedule, model_steps,
                                   poll_fates, poll_notes, run_updates, settle_polls, update_notes)
from iotsim.errors import InputError
from iotsim.link import Messages, make_link
from iotsim.network import native, reception
from iotsim.network.cloud import CloudQueue
from iotsim.network.fate import NOT_OFFERED, Fate, on_air
from iotsim.policies import EnergyAware, MessageKind, make_policy
from iotsim.radio import lora

WHERE = "simulation.chunk"
PACKETS_ROW_GROUP_ROWS = 1024 * 1024  # as the whole-run packets table (iotsim.results.tables)


# ---- what runs in chunks --------------------------------------------------------------------------
def check_chunkable(scenario, link, policies) -> None:
    """Raise InputError (at simulation.chunk) naming the first thing a run in time chunks does not model."""
    why = None
    if link.technology not in ("lorawan", "nbiot", "ble", "wifi"):
        why = (f"network.technology {link.technology!r}: only LoRaWAN, NB-IoT, BLE and Wi-Fi run in chunks so far")
    elif getattr(link, "closed_loop", False) and _loop_unavailable():
        why = f"the LoRaWAN closed loop without its compiled loop ({_loop_unavailable()})"
    elif scenario.federated is not None:
        why = "federated rounds (federated:)"
    else:
        for g in scenario.fleet:
            if g.solar is not None:
                why = f"solar harvesting (fleet group {g.group}: solar)"
                break
    if why is None:
        for p in policies:
            if isinstance(p, EnergyAware):
                why = f"the energy-aware policy {p.name!r}"
                break
    if why:
        raise InputError(f"a run in time chunks does not support {why}; remove simulation.chunk to run it whole",
                         field=WHERE)


def _loop_unavailable() -> str | None:
    from iotsim.link.lorawan_loop import LoopChunks

    return LoopChunks.unavailable()


# ---- windows and polls, chunk by chunk ------------------------------------------------------------
@dataclass
class ModelSwitch:
    """An update's new model on a group's windows, as `iotsim.engine.updates.effective_verdicts` switches them:
    the windows that end once a node runs it get its on-device verdicts."""

    activated_s: np.ndarray  # per node of the group: when it runs the new model (NaN: never)
    pool: Verdicts  # the new model's verdicts on the group's pool (phase x pool_size + index)
    fresh: Verdicts  # its verdicts on the windows an event touches, in `WindowSet.fresh_flat` order


def model_switches(plans: list[GroupPlan], updates: list[UpdateOutcome]) -> list[list[ModelSwitch]]:
    """Per group: the updates' new models on its windows, in order of start (a later one replaces an earlier)."""
    out, start = [], 0
    for p in plans:
        mine = []
        for u in updates:
            if p.index not in u.group_indices:
                continue
            mine.append(ModelSwitch(activation_s(u, p, start), p.windows.pool_verdicts(u.model, None),
                                    p.windows.fresh_verdicts(u.model, None)))
        out.append(mine)
        start += p.n_nodes
    return out


class WindowCursor:
    """A lazy group plan's windows handed out chunk by chunk: each chunk's view is a GroupPlan holding only
    the windows that end in it (with the verdicts and event ids the whole-run plan would give them, the
    updates' new models' on-device verdicts from each node's activation: `switches`)."""

    def __init__(self, plan: GroupPlan, switches: list[ModelSwitch] = ()):
        lz = plan.lazy
        self.plan = plan
        self.switches = switches
        self.gens = []
        for state in lz.pool_states:
            g = np.random.Generator(np.random.PCG64())
            g.bit_generator.state = state
            self.gens.append(g)
        self.taken = np.zeros(plan.n_nodes, dtype=np.int64)  # windows handed out so far, per node
        self.run_offset = plan.window_offset  # flat index of each node's first window in the whole run
        self.t0 = 0.0
        # the windows an event touches (sorted by flat index: by node, then window): per node, how many are taken
        self.fresh_taken = np.searchsorted(plan.windows.fresh_flat, plan.window_offset[:-1])

    def windows_before(self, t_s: float) -> np.ndarray:
        """Per node: how many of its windows end before t_s (ends computed as GroupPlan.window_end_s does)."""
        return self.plan.windows_ending_before(t_s)

    def take(self, t1_s: float) -> tuple[GroupPlan, np.ndarray]:
        """(view, run flat index of each of its windows) for the windows ending in [previous t1, t1_s)."""
        p, lz = self.plan, self.plan.lazy
        hi = np.maximum(self.windows_before(t1_s), self.taken)
        counts = hi - self.taken
        offset = np.zeros(p.n_nodes + 1, dtype=np.int64)
        np.cumsum(counts, out=offset[1:])
        total = int(offset[-1])
        draws = np.empty(total, dtype=np.int64)
        for i in np.flatnonzero(counts).tolist():
            draws[offset[i]:offset[i + 1]] = self.gens[i].integers(0, p.pool_size, size=int(counts[i]))
        node = np.repeat(np.arange(p.n_nodes), counts)
        k = np.arange(total) - offset[node] + self.taken[node]
        flat = self.run_offset[node] + k
        start = p.phase_s[node] + k * p.window_period_s
        phase = np.searchsorted(p.windows.phase_starts_s, start, side="right") - 1
        pool_index = draws + phase * p.pool_size
        event_id = np.full(total, -1, dtype=np.int64)
        # the event windows among this chunk's: per node, those before its window `hi`
        fresh = p.windows.fresh_flat
        upto = np.searchsorted(fresh, self.run_offset[:-1] + hi)
        n_fresh = upto - self.fresh_taken
        fn = np.repeat(np.arange(p.n_nodes), n_fresh)
        first = np.zeros(p.n_nodes + 1, dtype=np.int64)
        np.cumsum(n_fresh, out=first[1:])
        src = self.fresh_taken[fn] + (np.arange(int(first[-1])) - first[fn])
        self.fresh_taken = upto
        rows = offset[fn] + (fresh[src] - self.run_offset[fn]) - self.taken[fn]
        event_id[rows] = lz.fresh_event[src]

        def verdicts(pool: Verdicts, fresh_v: Verdicts) -> Verdicts:
            """A model's verdicts on the chunk's windows, from its verdicts on the pool and the event windows (and
            the watched channel's extremes where the group wakes on a threshold)."""
            v = Verdicts(pool.device_positive[pool_index], pool.device_confidence[pool_index],
                         pool.cloud_positive[pool_index])
            if pool.wake_max is not None:
                v.wake_max, v.wake_min = pool.wake_max[pool_index], pool.wake_min[pool_index]
            if src.size:
                v.put(rows, fresh_v, src)
            return v

        v = verdicts(lz.pool, lz.fresh)
        wake = p.spec.workload.wake
        triggered = woken(v, wake) if wake is not None else None  # the windows that wake the node
        end = start + p.window_span_s  # (as GroupPlan.window_end_s computes it)
        for switch in self.switches:  # in order of start: a later update's model replaces an earlier one's
            after = end >= switch.activated_s[node]  # NaN: never
            if after.any():
                new = verdicts(switch.pool, switch.fresh)
                v.device_positive[after] = new.device_positive[after]
                v.device_confidence[after] = new.device_confidence[after]
        view = dataclasses.replace(p, verdicts=v, n_windows=counts, window_offset=offset, event_id=event_id,
                                   first_window=self.taken.copy(), heartbeat_span_s=(self.t0, t1_s), lazy=None,
                                   triggered=triggered)
        self.taken = hi
        self.t0 = t1_s
        return view, flat


class MessageCursor:
    """Messages known before the run (model updates' unicast polls) handed out chunk by chunk: each chunk's are
    those ready in it, in (node, ready time) order."""

    def __init__(self, messages: Messages | None):
        self.messages = messages
        self.by_ready = None if messages is None else np.argsort(messages.ready_s, kind="stable")
        self.ready_sorted_s = None if messages is None else messages.ready_s[self.by_ready]
        self.taken = 0

    def take(self, t1_s: float) -> Messages | None:
        """The messages ready in [previous t1, t1_s) (None: there are none in the run)."""
        m = self.messages
        if m is None:
            return None
        hi = int(np.searchsorted(self.ready_sorted_s, t1_s, side="left"))
        sel = np.sort(self.by_ready[self.taken:hi])
        self.taken = hi
        return m.take(sel)


# ---- gateway reception across chunks --------------------------------------------------------------
class ReceptionCarry:
    """Frames on air not yet decided, and those a later frame may still overlap, with the gateways' paths.

    `step(T)`: every frame starting before T is known. Frames starting before T are fed to the path
    allocator in (start, node) order; frames ending by T are decided against every known frame and the
    gateways' own transmissions (`Link.gateway_schedule`: model updates; half duplex), known in advance."""

    def __init__(self, link, nodes, n_gateways: int, received_mw: np.ndarray | None = None):
        self.link = link
        self.nodes = nodes
        self.model = link.reception_model()
        self.allocator = reception.PathAllocator(n_gateways, self.model.demodulator_paths)
        self.gateway_tx = link.gateway_tx(n_gateways)
        self.n_gw = n_gateways
        sens = np.full(13, np.inf)
        sens[7:] = [lora.gateway_sensitivity_dbm(s, link.settings.bandwidth_hz) for s in range(7, 13)]
        self.sens = sens
        self.cols = None  # per frame: start, airtime, channel, sf, node, chunk and row (where its fate goes), fed,
        #                   decided, and what `arrive` recorded (arr_fate, locked)
        self.rx_power = np.asarray(nodes.link.rx_power_dbm, dtype=np.float64)
        # in mW, as decode computes it: once per run, shared by the policies (a large fleet's table is large)
        self.rx_power_mw = 10.0 ** (self.rx_power / 10.0) if received_mw is None else received_mw

    def add(self, chunk: int, tx, rows: np.ndarray) -> None:
        """Frames `rows` of chunk `chunk`'s transmissions went on air."""
        new = {"start": tx.start_s[rows], "airtime": tx.airtime_s[rows], "channel": tx.channel[rows],
               "sf": tx.sf[rows], "node": tx.node[rows], "chunk": np.full(rows.size, chunk, np.int64), "row": rows,
               "fed": np.zeros(rows.size, bool), "decided": np.zeros(rows.size, bool),
               "arr_fate": np.zeros(rows.size, np.int8), "locked": np.zeros((rows.size, (self.n_gw + 7) // 8), np.uint8)}
        self.cols = new if self.cols is None else {k: np.concatenate([self.cols[k], new[k]]) for k in new}

    def step(self, t_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """Decide what can be decided; (chunk, row, fate, gateway) of the frames decided, or None."""
        c = self.cols
        if c is None or not c["start"].size:
            return None
        order = np.lexsort((c["node"], c["start"]))
        self.cols = None  # (the unsorted columns go as the sorted copy is made: a large chunk's peak)
        c = {k: c.pop(k)[order] for k in list(c)}
        frames = reception.Frames(c["start"], c["airtime"], c["channel"], c["sf"], c["node"], self.sens[c["sf"]])
        feed = np.flatnonzero(~c["fed"] & (c["start"] < t_s))
        if feed.size:  # in (start, node) order, after every frame fed before
            arrival = reception.arrive(frames.take(feed), self.rx_power, self.allocator, self.gateway_tx)
            c["arr_fate"][feed] = arrival.fate
            c["locked"][feed] = arrival.locked
            c["fed"][feed] = True
        end = frames.end_s
        targets = np.flatnonzero(c["fed"] & ~c["decided"] & (end <= t_s))
        out = None
        if targets.size:  # against every frame known (those starting before t_s), in the same order
            ctx = np.flatnonzero(c["start"] < t_s)
            known = frames if ctx.size == len(frames) else frames.take(ctx)  # (no copy when all are known)
            dec = reception.decode(known, reception.Arrival(c["locked"][targets], c["arr_fate"][targets]),
                                   self.rx_power, self.model, targets=np.searchsorted(ctx, targets),
                                   gateway_tx=self.gateway_tx, node_rx_power_mw=self.rx_power_mw)
            out = (c["chunk"][targets], c["row"][targets], dec.status, dec.gateway)
            c["decided"][targets] = True
        # keep the undecided, and the decided that may overlap a frame decided later
        undecided = ~c["decided"]
        later = min(float(c["start"][undecided].min()) if undecided.any() else np.inf, t_s)
        keep = undecided | (end > later)
        self.cols = {k: v[keep] for k, v in c.items()}
        return out

    def gateway_stats(self) -> dict:
        n = self.n_gw
        stats = {"path_busy_s": self.allocator.path_busy_s, "frames_locked": self.allocator.frames_locked.copy(),
                 "tx_airtime_s": np.zeros(n), "tx_band_s": [{} for _ in range(n)]}
        self.link.add_schedule_airtime(stats)
        return stats


# ---- the packets table, streamed ------------------------------------------------------------------
class PacketSink:
    """Rows appended as arrow tables, written in row groups of exactly `rows` rows (the last shorter), so the
    file's bytes depend on the rows only, not on how they were appended."""

    def __init__(self, path: Path, rows: int = PACKETS_ROW_GROUP_ROWS):
        self.path, self.rows = path, rows
        self.parts, self.filled, self.writer = [], 0, None

    def append(self, table: pa.Table) -> None:
        while table.num_rows:
            take = min(self.rows - self.filled, table.num_rows)
            self.parts.append(table.slice(0, take))
            self.filled += take
            table = table.slice(take)
            if self.filled == self.rows:
                self._flush()

    def _flush(self) -> None:
        if not self.parts:
            return
        table = pa.concat_tables(self.parts).combine_chunks()
        if self.writer is None:
            from iotsim.results.writer import PARQUET_COMPRESSION

            self.writer = pq.ParquetWriter(self.path, table.schema, compression=PARQUET_COMPRESSION)
        self.writer.write_table(table, row_group_size=self.rows)
        self.parts, self.filled = [], 0

    def close(self, empty: pa.Table | None = None) -> None:
        self._flush()
        if self.writer is None and empty is not None:  # no rows: the columns only
            self.append(empty)
            table = empty
            from iotsim.results.writer import PARQUET_COMPRESSION

            self.writer = pq.ParquetWriter(self.path, table.schema, compression=PARQUET_COMPRESSION)
            self.writer.write_table(table, row_group_size=self.rows)
        if self.writer is not None:
            self.writer.close()
            self.writer = None


# ---- event-driven nodes' windows, chunk by chunk ---------------------------------------------------
class WakeCount:
    """The windows that woke the nodes of event-driven groups (`workload.wake`), counted chunk by chunk: over the
    run (a node's mean window work is its windows' energy times the share that woke it) and those that ended while
    the node was alive (the ledger's window work), as the whole run counts them from its plans."""

    def __init__(self, plans: list[GroupPlan], lifetime_s: np.ndarray):
        n = sum(p.n_nodes for p in plans)
        self.offset = dict(zip([p.index for p in plans], np.cumsum([0] + [p.n_nodes for p in plans]).tolist()))
        self.driven = np.concatenate([np.full(p.n_nodes, p.spec.workload.wake is not None) for p in plans])
        self.windows = np.concatenate([p.n_windows for p in plans])  # per node: its windows in the whole run
        self.lifetime_s = lifetime_s
        self.woke = np.zeros(n)
        self.woke_alive = np.zeros(n, dtype=np.int64)

    @staticmethod
    def of(plans: list[GroupPlan], lifetime_s: np.ndarray) -> "WakeCount | None":
        return WakeCount(plans, lifetime_s) if any(p.spec.workload.wake is not None for p in plans) else None

    def add(self, views: list[GroupPlan]) -> None:
        """A chunk's window views (WindowCursor.take's)."""
        for v in views:
            if v.triggered is None:
                continue
            flat = np.flatnonzero(v.triggered)
            node = np.searchsorted(v.window_offset, flat, side="right") - 1 + self.offset[v.index]
            np.add.at(self.woke, node, 1.0)
            alive = v.window_end_s(flat) <= self.lifetime_s[node]
            np.add.at(self.woke_alive, node[alive], 1)

    def loads(self, views: list[GroupPlan], policy, nodes, keep_alive) -> stages.NodeLoads:
        """The nodes' loads with the run's counts (their frames' energies left out: none given)."""
        return stages.node_loads(views, policy, nodes, _no_frames(), keep_alive, woke=(self.woke, self.windows))


def _no_frames():
    from iotsim.link.base import Transmissions

    z, f = np.zeros(0, np.int64), np.zeros(0)
    return Transmissions(message=z, node=z, fragment=z, phy_bytes=z, sf=z, airtime_s=f, ready_s=f, start_s=f,
                         dropped=np.zeros(0, bool), channel=np.zeros(0, np.int8))


# ---- one policy, chunk after chunk ------------------------------------------------------------------
@dataclass
class _Chunk:
    """A chunk's messages and frames, waiting until every frame's fate is known."""

    messages: "ChunkMessages"
    tx: object  # Transmissions (None: the closed loop has not sent all of them yet)
    frame_j: np.ndarray | None  # per frame: radio energy above sleep (the battery's view)
    undecided: int  # frames on air whose fate reception has not given yet (1 while tx is None)
    frame_tx: tuple | None = None  # per frame at its own TX power (ADR): frame_tx_power_w's (power, current, loss)


class PolicyChunks:
    """One policy's run over successive chunks: its carried state and running totals."""

    def __init__(self, scenario, plans: list[GroupPlan], policy, policy_index: int, link, nodes,
                 packets_path: Path | None, gateway_ids: list[str], died: np.ndarray | None = None,
                 received_mw: np.ndarray | None = None, listening: Listening | None = None,
                 stop: np.ndarray | None = None):
        """`died`: when each node dies (inf: it lasts), where a first pass found batteries that empty; None: only
        cells past their shelf life die (each at its shelf life) and `finish` tells whether a battery empties.
        `listening`: the nodes' time receiving and applying model updates (outside frames). `stop` (closed loop):
        when each node stops sending in the loop (the death times its traffic was run with, `closed_loop_deaths`;
        None: never)."""
        self.scenario, self.plans, self.policy, self.pi, self.link, self.nodes = (scenario, plans, policy, policy_index,
                                                                                  link, nodes)
        self.listening = listening
        n = nodes.n
        self.deaths_known = died is not None
        self.died = died if died is not None else shelf_deaths(nodes, scenario.duration)
        self.at_risk = None  # after `finish`: (usable energy, drain power, mask) when a battery empties in the run
        self.tally = Tally.empty(n, len(plans), np.concatenate([p.sf for p in plans]), link.tx_power_dbm)
        self.carry = link.schedule_carry(n)
        # the LoRaWAN closed loop: one compiled loop across chunks, which decides the fates itself
        self.loop = None
        if getattr(link, "closed_loop", False):
            from iotsim.link.lorawan_loop import LoopChunks

            self.loop = LoopChunks(link, nodes.link, group_rng(scenario.seed, STREAM_LINK, policy_index),
                                   scenario.duration, stop_s=stop, where=WHERE)
            self.loop_chunks: list[int] = []  # chunks fed to the loop whose frames it has not handed back
        # open-loop LoRaWAN: gateway reception across chunks; BLE and Wi-Fi decide each frame's fate as they send it
        self.rx = (ReceptionCarry(link, nodes, len(gateway_ids), received_mw)
                   if link.technology == "lorawan" and self.loop is None else None)
        self.tx_sums = None  # ADR: per node, TX time and its time-weighted current and loss (stages.tx_power_sums)
        self.keep_alive = link.keep_alive(nodes.link)
        cloud = scenario.network.cloud
        self.cloud = CloudQueue(cloud.inference_time, cloud.servers)
        self.cloud_waiting: list[tuple] = []  # (arrival, message id, group, event, positive) arrays not yet served
        self.chunks: dict[int, _Chunk] = {}
        self.stream = MessageStream(policy)
        self.wake = WakeCount.of(plans, np.minimum(self.died, float(scenario.duration)))
        self.views = None  # the last chunk's window views
        self.radio = {s: np.zeros(n) for s in ("standby", "tx", "rx")}  # radio time of frames on air, per node
        self.burst_j = np.zeros(n)  # radio energy of the frames the nodes sent
        self.first_seen = [np.full(p.event_onset_s.shape[0], np.inf) for p in plans]
        self.n_messages = 0
        self.poll_fates: list[tuple] = []  # per chunk with unicast polls: updates.poll_fates's arrays
        self.loads = None
        self.sink = PacketSink(packets_path) if packets_path is not None else None
        self.packet_context = _PacketContext(plans, gateway_ids, policy)
        self.wall_s = 0.0

    # ---- a chunk's messages and frames
    def add_chunk(self, index: int, views: list[GroupPlan], flats: list[np.ndarray], t1_s: float,
                  polls: Messages | None = None) -> None:
        """Chunk `index`: its windows (`views`, `flats`: WindowCursor.take's) and the unicast polls ready in it."""
        t0 = time.perf_counter()
        self.views = views
        if self.wake is not None:
            self.wake.add(views)
        cm = self.stream.take(views, flats, t1_s, polls)
        global_m = cm.messages
        duration = self.scenario.duration
        if self.loop is not None:
            self.chunks[index] = _Chunk(cm, None, None, 1)
            self.loop_chunks.append(index)
            for tx in self.loop.feed(global_m, t1_s):
                self._add_decided(self.chunks[self.loop_chunks.pop(0)], tx)
            self._settle(t1_s)
            self.wall_s += time.perf_counter() - t0
            return
        tx = self.link.transmit(global_m, self.nodes.link, group_rng(self.scenario.seed, STREAM_LINK, self.pi),
                                duration, carry=self.carry)
        _settle_before(self.carry, t1_s)
        on_air = stages.fates_before_air(tx, self.died, duration)
        rows = np.flatnonzero(on_air)
        if self.rx is None:
            self.link.receive(tx, on_air, self.nodes.link)
        else:
            self.rx.add(index, tx, rows)
        undecided = 0 if self.rx is None else int(rows.size)
        self.chunks[index] = _Chunk(cm, tx, None, undecided)
        self._settle(t1_s)
        self.wall_s += time.perf_counter() - t0

    def _add_decided(self, ch: _Chunk, tx) -> None:
        """The closed loop's frames of chunk `ch`, fates decided."""
        on_air = stages.fates_before_air(tx, self.died, self.scenario.duration)
        self.loads = stages.node_loads(self.plans, self.policy, self.nodes, tx, self.keep_alive)
        self.link.receive(tx, on_air, self.nodes.link)
        ch.tx, ch.frame_j, ch.frame_tx, ch.undecided = tx, self.loads.frame_energy_j, self.loads.frame_tx, 0

    def _settle(self, t_s: float) -> None:
        decided = self.rx.step(t_s) if self.rx is not None else None
        if decided is not None:
            chunk, row, fate, gateway = decided
            for c in np.unique(chunk).tolist():
                sel = chunk == c
                ch = self.chunks[c]
                ch.tx.fate[row[sel]] = fate[sel]
                ch.tx.gateway[row[sel]] = gateway[sel]
                ch.undecided -= int(sel.sum())
        while self.chunks:
            first = min(self.chunks)
            ch = self.chunks[first]
            if ch.undecided or _unsettled(self.carry, ch.tx):
                break
            if ch.frame_j is None:  # the frames' radio times are final: their energy
                self.loads = stages.node_loads(self.plans, self.policy, self.nodes, ch.tx, self.keep_alive)
                ch.frame_j, ch.frame_tx = self.loads.frame_energy_j, self.loads.frame_tx
            self._emit(self.chunks.pop(first))
        # requests arriving before every frame still undecided started (and before t_s) can be served
        starts = [ch.tx.start_s[ch.tx.fate == Fate.DELIVERED].min() for ch in self.chunks.values()
                  if ch.tx is not None and (ch.tx.fate == Fate.DELIVERED).any()]
        # (a chunk the closed loop has not handed back: its frames start once its messages are ready)
        starts += [ch.messages.messages.ready_s.min() for ch in self.chunks.values()
                   if ch.tx is None and len(ch.messages.messages)]
        self._serve(min([t_s, *starts]))

    def _emit(self, ch: _Chunk) -> None:
        """Add a chunk whose fates are all known, in canonical order."""
        m, tx = ch.messages.messages, ch.tx
        network = self.scenario.network
        delivery = stages.deliver_messages(network, tx, len(m))
        order_m = np.lexsort((m.kind, m.node, m.ready_s))
        rank = np.empty(len(m), dtype=np.int64)
        rank[order_m] = np.arange(len(m))
        order_f = np.lexsort((tx.fragment, rank[tx.message]))
        node, fate = tx.node[order_f], tx.fate[order_f]
        attempts = np.ones(order_f.size, dtype=np.int64) if tx.attempts is None else tx.attempts[order_f]
        self.tally.add_frames(node, fate.astype(np.int64), attempts, tx.phy_bytes[order_f], tx.airtime_s[order_f],
                              tx.sf[order_f], None if tx.tx_power_dbm is None else tx.tx_power_dbm[order_f],
                              None if tx.on_air_s is None else tx.on_air_s[order_f])
        aired = on_air(fate)
        if tx.tx_power_dbm is not None:  # TX power per frame (ADR): the TX slot's time-weighted power, in order
            n = self.nodes.n
            if self.tx_sums is None:
                self.tx_sums = (np.zeros(n), np.zeros(n), np.zeros(n))
            _, current, loss = ch.frame_tx
            tx_s = tx.tx_s[order_f]
            stages.tx_power_sums(n, node, tx_s, current[order_f], loss[order_f], aired & (tx_s > 0), into=self.tx_sums)
        np.add.at(self.radio["standby"], node[aired], tx.standby_s[order_f][aired])
        np.add.at(self.radio["tx"], node[aired], tx.tx_s[order_f][aired])
        np.add.at(self.radio["rx"], node[aired], tx.rx_s[order_f][aired])
        sent = ~tx.dropped[order_f]
        np.add.at(self.burst_j, node[sent], ch.frame_j[order_f][sent])
        # messages: delivery, decisions, detection
        offered = np.zeros(len(m), dtype=bool)
        offered[tx.message[~np.isin(tx.fate, list(NOT_OFFERED))]] = True
        raw_ok = delivery.delivered & (m.kind == MessageKind.RAW)
        event_ok = delivery.delivered & (m.kind == MessageKind.EVENT)
        cloud_pos, event = ch.messages.cloud_positive, ch.messages.event
        positive = event_ok | (raw_ok & cloud_pos)
        self.tally.add_messages(m.node, m.kind, offered, delivery.delivered, positive, event >= 0)
        for g, p in enumerate(self.plans):
            hit = np.flatnonzero(event_ok & (m.group == p.index) & (event >= 0))
            np.minimum.at(self.first_seen[g], event[hit], delivery.arrival_s[hit])
        raw = np.flatnonzero(raw_ok)
        if raw.size:
            self.cloud_waiting.append((delivery.arrival_s[raw], self.n_messages + rank[raw], m.group[raw], event[raw],
                                       cloud_pos[raw]))
        if (m.kind == MessageKind.POLL).any():  # class A unicast: what the run made of each poll
            self.poll_fates.append(poll_fates(m, tx))
        if self.sink is not None:
            listed = order_f[fate != Fate.NODE_DEAD]  # as the whole-run table: not the frames never sent
            self.sink.append(self.packet_context.table(m, tx, listed, self.n_messages + rank))
        self.n_messages += len(m)

    def _serve(self, before_s: float) -> None:
        """Serve, in (arrival, message) order, the cloud requests arriving before `before_s`."""
        if not self.cloud_waiting:
            return
        arrival, msg, group, event, positive = (np.concatenate(a) for a in zip(*self.cloud_waiting))
        order = np.lexsort((msg, arrival))
        now = order[arrival[order] < before_s]
        later = order[arrival[order] >= before_s]
        self.cloud_waiting = [tuple(a[later] for a in (arrival, msg, group, event, positive))] if later.size else []
        if not now.size:
            return
        _, done = self.cloud.serve(arrival[now])
        wait = done - arrival[now] - self.scenario.network.cloud.inference_time
        for g, p in enumerate(self.plans):
            mine = group[now] == p.index
            self.tally.cloud_waits[g].append(wait[mine])
            hit = mine & positive[now] & (event[now] >= 0)
            np.minimum.at(self.first_seen[g], event[now][hit], done[hit])

    # ---- the end of the run
    def finish(self):
        """Decide and add what is left, then the policy's energy, batteries and detection."""
        from iotsim.engine.run import PolicyOutcome

        t0 = time.perf_counter()
        _settle_before(self.carry, np.inf)
        self._settle(np.inf)
        self._serve(np.inf)
        loop_stats = None
        if self.loop is not None:
            loop_stats = self.loop.stats()
            self.loop.close()
        if self.sink is not None:
            self.sink.close(self.packet_context.empty())
        nodes, loads, duration = self.nodes, self.loads, self.scenario.duration
        if self.wake is not None:  # event-driven nodes: their window work from the run's counts, not a chunk's
            loads = self.wake.loads(self.views, self.policy, nodes, self.keep_alive)
        if not self.deaths_known:  # as stages.node_deaths: the nodes whose battery may empty within the run
            listen_j = stages.listening_burst_j(_bursts(self.listening), nodes.n, duration)
            burst_j = self.burst_j if listen_j is None else self.burst_j + listen_j
            budget = stages.battery_budget(nodes, loads.steady_w + burst_j / duration)
            at_risk = (loads.steady_w + budget.self_discharge_w) * duration + burst_j >= budget.usable_j
            # (with feedback a death changes the others' traffic: any death, a cell's shelf life too, sends the
            # policy through the whole run's passes, closed_loop_deaths)
            if at_risk.any() or (self.loop is not None and np.isfinite(self.died).any()):
                self.at_risk = (budget.usable_j, loads.steady_w + budget.self_discharge_w, at_risk)
                return None
        died = self.died
        lifetime = np.minimum(died, float(duration))
        ledger = EnergyLedger(nodes.n)
        stages.charge_windows(ledger, nodes, loads, lifetime,
                              None if self.wake is None else (self.wake.woke_alive, self.wake.driven))
        every = np.arange(nodes.n)
        for state in ("standby", "tx", "rx"):
            ledger.charge("radio", state, every, self.radio[state])
        stages.charge_listening(ledger, self.listening, lifetime)
        ka = loads.keep_alive
        if ka is not None:  # as stages.charge_ledger: the keep-alive for the time alive, after the frames
            k = lifetime / ka.period_s
            ledger.charge("radio", "standby", every, k * ka.standby_s)
            ledger.charge("radio", "tx", every, k * ka.tx_s)
            ledger.charge("radio", "rx", every, k * ka.rx_s)
        ledger.close(lifetime)
        energy = ledger.energy_j(*stages.policy_powers(nodes, None, None, tx_sums=self.tx_sums))
        life, limit = stages.battery_life(nodes, energy, np.maximum(lifetime, 1e-9), died)
        t = self.tally
        t.gateway_stats = self.rx.gateway_stats() if self.rx is not None else {}
        if loop_stats is not None:
            t.gateway_stats, t.node_stats = loop_stats
        elif hasattr(self.carry, "stats"):  # NB-IoT: its counters of the settled frames
            t.gateway_stats, t.node_stats = self.carry.stats(nodes.link)
        latency, tp, pos = [], [], []
        for g, p in enumerate(self.plans):
            sl = slice(int(np.searchsorted(nodes.group, p.index)), int(np.searchsorted(nodes.group, p.index, "right")))
            seen = self.first_seen[g]
            latency.append(np.where(np.isfinite(seen), seen - p.event_onset_s, np.nan))
            tp.append(int(t.true_positive_decisions[sl].sum()))
            pos.append(int(t.positive_decisions[sl].sum()))
        self.wall_s += time.perf_counter() - t0
        return PolicyOutcome(
            policy=self.policy, messages=None, tx=None, message_delivered=None, message_arrival_s=None,
            decision_time_s=None, decision_positive=None, cloud_inferences=int(t.cloud_inferences.sum()),
            cloud_wait_s=None, ledger=ledger, energy_slots_j=energy, died_at_s=died, battery_life_s=life,
            battery_life_limit=limit, event_latency_s=latency, true_positive_decisions=tp, positive_decisions=pos,
            wall_s=self.wall_s, tally=t,
            poll_fates=tuple(np.concatenate(a) for a in zip(*self.poll_fates)) if self.poll_fates else None)


def shelf_deaths(nodes, duration_s: float) -> np.ndarray:
    """Per node: its cell's shelf life where that ends within the run (inf otherwise), as stages.node_deaths."""
    shelf = np.array([b.shelf_life_s for b in nodes.batteries])[nodes.group]
    return np.where(shelf <= duration_s, shelf, np.inf)


class DeathWatch:
    """When each watched node's battery empties, from its bursts fed in time order over successive calls: the
    arithmetic of iotsim.energy.battery.death_time_s (drain = power x t + the bursts so far; death inside the
    first burst that reaches the budget, or between bursts where the steady drain does), one burst at a time.

    Frames come chunk by chunk; the listening bursts (`NodeLoads.listening_bursts`: receiving and applying model
    updates), known in advance, go in among them in time order (at one time, after the frames, as
    death_time_s's stable sort puts them)."""

    def __init__(self, budget_j: np.ndarray, power_w: np.ndarray, watch: np.ndarray,
                 listening_bursts: tuple | None = None):
        self.budget, self.power, self.watch = budget_j, power_w, watch
        n = budget_j.shape[0]
        self.before = np.zeros(n)  # energy of the bursts so far
        self.start = np.zeros(n)  # the last burst's time: the current interval's start
        self.died = np.full(n, np.inf)
        self.listening = listening_bursts  # (node, time, energy) sorted by node then time: those not fed yet

    def frames(self, node: np.ndarray, t_s: np.ndarray, energy_j: np.ndarray, later_s: float) -> None:
        """A chunk's frame bursts, sorted by (node, time), each later than the node's bursts fed before; every
        later frame starts at `later_s` or after (a later chunk's messages are ready from then), and after the
        node's frames here. The listening bursts no later frame can come before go in with them."""
        if self.listening is not None:
            ln, lt, le = self.listening
            last = np.full(self.budget.shape[0], -np.inf)
            np.maximum.at(last, node, t_s)
            now = (lt < later_s) | (lt <= last[ln])
            self.listening = (ln[~now], lt[~now], le[~now])
            src = np.r_[np.zeros(node.size, np.int8), np.ones(int(now.sum()), np.int8)]
            node, t_s, energy_j = np.r_[node, ln[now]], np.r_[t_s, lt[now]], np.r_[energy_j, le[now]]
            order = np.lexsort((src, t_s, node))
            node, t_s, energy_j = node[order], t_s[order], energy_j[order]
        self.bursts(node, t_s, energy_j)

    def bursts(self, node: np.ndarray, t_s: np.ndarray, energy_j: np.ndarray) -> None:
        """Bursts sorted by (node, time), each later than the node's bursts fed before."""
        sel = np.flatnonzero(self.watch[node] & np.isinf(self.died[node]))
        budget, power, before, start, died = self.budget, self.power, self.before, self.start, self.died
        for i, t, e in zip(node[sel].tolist(), t_s[sel].tolist(), energy_j[sel].tolist()):
            if died[i] < np.inf:
                continue
            if power[i] > 0:
                crossing = (budget[i] - before[i]) / power[i]
                if start[i] <= crossing < t:  # the steady drain empties it before this burst
                    died[i] = crossing
                    continue
            before[i] = before[i] + e
            if power[i] * t + before[i] >= budget[i]:  # this burst empties it
                died[i] = t
                continue
            start[i] = t

    def close(self) -> np.ndarray:
        """After the last burst: the steady drain's crossing after it, for the nodes still alive."""
        if self.listening is not None:  # those after every frame
            self.bursts(*self.listening)
            self.listening = None
        alive = self.watch & np.isinf(self.died) & (self.power > 0)
        with np.errstate(divide="ignore"):
            crossing = (self.budget - self.before) / np.where(alive, self.power, 1.0)
        late = alive & (crossing >= self.start)
        self.died[late] = crossing[late]
        return self.died


def _bursts(listening: Listening | None) -> tuple | None:
    """The battery bursts (node, time, energy) of `listening` (Listening.bursts), or None without any."""
    return listening.bursts() if listening is not None and listening.node.size else None


def death_times(scenario, plans, policy, policy_index: int, link, nodes, at_risk: tuple, say,
                switches: list[list[ModelSwitch]], polls: Messages | None, listening: Listening | None) -> np.ndarray:
    """When each node dies under `policy` (inf: it lasts): the chunks again, messages and schedules only (an open
    loop's schedule does not depend on who died), each at-risk node's bursts fed to a DeathWatch (with the
    listening bursts of model updates)."""
    budget_j, power_w, watch = at_risk
    deaths = DeathWatch(budget_j, power_w, watch, _bursts(listening))
    carry = link.schedule_carry(nodes.n)
    cursors = [WindowCursor(p, s) for p, s in zip(plans, switches)]
    poll_cursor = MessageCursor(polls)
    stream = MessageStream(policy)
    chunk_s, duration = float(scenario.simulation.chunk), float(scenario.duration)
    n_chunks = max(1, int(np.ceil(duration / chunk_s)))
    waiting = []  # (frames, end of their chunk) whose radio times are not all settled yet (NB-IoT's tails)

    def feed(everything: bool = False) -> None:
        while waiting and (everything or not _unsettled(carry, waiting[0][0])):
            tx, t1 = waiting.pop(0)
            frame_j = stages.node_loads(plans, policy, nodes, tx, None).frame_energy_j
            sent = ~tx.dropped
            deaths.frames(tx.node[sent], tx.start_s[sent], frame_j[sent], t1)

    for c in range(n_chunks):
        t1 = (c + 1) * chunk_s if c + 1 < n_chunks else np.inf
        views, flats = zip(*[cur.take(t1) for cur in cursors])
        m = stream.take(list(views), list(flats), t1, poll_cursor.take(t1)).messages
        tx = link.transmit(m, nodes.link, group_rng(scenario.seed, STREAM_LINK, policy_index), duration, carry=carry)
        _settle_before(carry, t1)
        waiting.append((tx, t1))
        feed()
        say(f"battery deaths {policy.name}", c + 1, n_chunks)
    _settle_before(carry, np.inf)
    feed(everything=True)
    died = np.minimum(deaths.close(), shelf_deaths(nodes, duration))
    died[died > duration] = np.inf
    return died


def _settle_before(carry, t_s: float) -> None:
    """Every later frame starts at `t_s` or after: a carry that holds frames open until it knows the node's next
    one (NB-IoT's tails) settles those it can."""
    if hasattr(carry, "settle_before"):
        carry.settle_before(t_s)


def _unsettled(carry, tx) -> bool:
    """Whether some frame of `tx` still waits for the carry to settle its radio times."""
    return hasattr(carry, "is_open") and carry.is_open(tx)


def closed_loop_deaths(scenario, plans, policy, policy_index: int, link, nodes, at_risk: tuple, say,
                       switches: list[list[ModelSwitch]], polls: Messages | None,
                       listening: Listening | None) -> tuple[np.ndarray | None, np.ndarray]:
    """(stop, died) for a closed-loop policy whose first pass found a battery that may empty (`at_risk`, as
    PolicyChunks.finish gives it) or a cell past its shelf life: the whole run's passes (engine.run.simulate_policy)
    over the chunks. Each pass runs the loop with the deaths found so far (a death changes the others' traffic),
    sums the nodes' bursts for their usable energy and, where one may empty, runs again feeding a DeathWatch,
    until the deaths settle or MAX_DEATH_PASSES; unsettled, a node dies at the earlier of the two last death
    times. The chunks are then run with `stop` as the loop's and `died` as the run's deaths. Model updates'
    listening counts as the whole run counts it (in the budget and among the bursts)."""
    from iotsim.engine.run import MAX_DEATH_PASSES

    def deaths(stop, risk) -> np.ndarray:
        """node_deaths of the traffic run with `stop` (`risk`: its at-risk tuple when already known)."""
        if risk is None:
            burst_j = np.zeros(nodes.n)

            def add(tx, loads, _):
                sent = ~tx.dropped
                np.add.at(burst_j, tx.node[sent], loads.frame_energy_j[sent])

            loads = _loop_pass(scenario, plans, policy, policy_index, link, nodes, stop, add, say, switches, polls)
            duration = float(scenario.duration)
            listen_j = stages.listening_burst_j(_bursts(listening), nodes.n, duration)
            if listen_j is not None:
                burst_j = burst_j + listen_j
            budget = stages.battery_budget(nodes, loads.steady_w + burst_j / duration)
            power = loads.steady_w + budget.self_discharge_w
            risk = (budget.usable_j, power, power * duration + burst_j >= budget.usable_j)
        died = np.full(nodes.n, np.inf)
        if risk[2].any():
            watch = DeathWatch(*risk, _bursts(listening))

            def feed(tx, loads, t1):
                sent = ~tx.dropped
                watch.frames(tx.node[sent], tx.start_s[sent], loads.frame_energy_j[sent], t1)

            _loop_pass(scenario, plans, policy, policy_index, link, nodes, stop, feed, say, switches, polls)
            died = watch.close()
        died = np.minimum(died, shelf_deaths(nodes, scenario.duration))
        died[died > scenario.duration] = np.inf
        return died

    stop, died = None, deaths(None, at_risk)
    for _ in range(MAX_DEATH_PASSES):
        if not np.isfinite(died).any():
            break
        stop = died
        again = deaths(stop, None)
        settled = np.array_equal(again, died)
        died = again if settled else np.minimum(again, died)
        if settled:
            break
    return stop, died


def _loop_pass(scenario, plans, policy, policy_index: int, link, nodes, stop, each, say,
               switches: list[list[ModelSwitch]], polls: Messages | None):
    """The closed loop's frames over every chunk, run with `stop`, and nothing else: each(tx, loads, t1) per chunk's
    frames, in chunk order (per node in time order; t1: the end of the chunk the frames' messages were ready in).
    Returns the nodes' loads (the run's steady power)."""
    from iotsim.link.lorawan_loop import LoopChunks

    loop = LoopChunks(link, nodes.link, group_rng(scenario.seed, STREAM_LINK, policy_index), scenario.duration,
                      stop_s=stop, where=WHERE)
    cursors = [WindowCursor(p, s) for p, s in zip(plans, switches)]
    poll_cursor = MessageCursor(polls)
    stream = MessageStream(policy)
    chunk_s, duration = float(scenario.simulation.chunk), float(scenario.duration)
    n_chunks = max(1, int(np.ceil(duration / chunk_s)))
    keep_alive, loads, fed = link.keep_alive(nodes.link), None, []
    wake = WakeCount.of(plans, np.full(nodes.n, np.inf))
    try:
        for c in range(n_chunks):
            t1 = (c + 1) * chunk_s if c + 1 < n_chunks else np.inf
            views, flats = zip(*[cur.take(t1) for cur in cursors])
            if wake is not None:
                wake.add(views)
            fed.append(t1)
            for tx in loop.feed(stream.take(list(views), list(flats), t1, poll_cursor.take(t1)).messages, t1):
                loads = stages.node_loads(plans, policy, nodes, tx, keep_alive)
                each(tx, loads, fed.pop(0))
            say(f"battery deaths {policy.name}", c + 1, n_chunks)
    finally:
        loop.close()
    if wake is not None:  # event-driven nodes: their window work from the run's counts, not the last chunk's
        loads = wake.loads(list(views), policy, nodes, keep_alive)
    return loads


@dataclass
class ChunkMessages:
    """A chunk's messages in the link's (node, ready, kind) order (windows as the run's flat indices, for the
    link's keyed draws), with what deciding and detecting need of each one's window."""

    messages: Messages
    cloud_positive: np.ndarray  # bool: the cloud model's verdict on its window (False: no window)
    event: np.ndarray  # int64: the event its window overlaps (-1: none, or no window)

    def take(self, sel: np.ndarray) -> "ChunkMessages":
        return ChunkMessages(self.messages.take(sel), self.cloud_positive[sel], self.event[sel])

    @staticmethod
    def concat(a: "ChunkMessages", b: "ChunkMessages") -> "ChunkMessages":
        """Both in one (node, ready, kind) order."""
        cat = lambda name: np.concatenate([getattr(a.messages, name), getattr(b.messages, name)])  # noqa: E731
        both = ChunkMessages(Messages(*(cat(f.name) for f in dataclasses.fields(Messages))),
                             np.concatenate([a.cloud_positive, b.cloud_positive]), np.concatenate([a.event, b.event]))
        m = both.messages
        return both.take(np.lexsort((m.kind, m.ready_s, m.node)))


class MessageStream:
    """A policy's messages chunk by chunk, cut on their ready times. A window's message is ready when the window
    ends, or one inference later (on-device policies): one whose window ends in a chunk but that is ready after
    the chunk's end goes with the next chunk. So the chunks in order hold the messages in ready-time order, the
    order each node sends them in (the whole run's); a heartbeat or a poll ready during that inference goes
    before the window's message, as in the whole run."""

    def __init__(self, policy):
        self.policy = policy
        self.held: ChunkMessages | None = None  # ready at or after the last chunk's end

    def take(self, views: list[GroupPlan], flats: list[np.ndarray], t1_s: float,
             polls: Messages | None = None) -> ChunkMessages:
        """The messages ready before `t1_s` and not handed out yet: those of the windows `views` (WindowCursor.take's,
        `flats` their run flat indices) and the polls `polls`, and those held from before."""
        m = policy_messages(views, self.policy)
        if polls is not None and len(polls):  # as the whole run merges them
            m = merge_messages(m, polls)
        run_window = np.full(len(m), -1, dtype=np.int64)
        cloud = np.zeros(len(m), dtype=bool)
        event = np.full(len(m), -1, dtype=np.int64)
        for view, flat in zip(views, flats):
            sel = np.flatnonzero((m.group == view.index) & (m.window >= 0))
            run_window[sel] = flat[m.window[sel]]
            cloud[sel] = view.verdicts.cloud_positive[m.window[sel]]
            event[sel] = view.event_id[m.window[sel]]
        cm = ChunkMessages(dataclasses.replace(m, window=run_window), cloud, event)
        if self.held is not None:
            cm = ChunkMessages.concat(cm, self.held)
        now = cm.messages.ready_s < t1_s
        self.held = cm.take(np.flatnonzero(~now)) if not now.all() else None
        return cm if self.held is None else cm.take(np.flatnonzero(now))


class _PacketContext:
    """Builds packets-table rows of a chunk's frames (the columns of iotsim.results.tables' packets table)."""

    def __init__(self, plans, gateway_ids, policy):
        from types import SimpleNamespace

        self.result = SimpleNamespace(plans=plans, gateway_ids=gateway_ids)
        self.policy = policy

    def table(self, messages, tx, rows, message_id) -> pa.Table:
        from types import SimpleNamespace

        from iotsim.results.tables import packets_part

        frame = packets_part(self.result, SimpleNamespace(policy=self.policy, tx=tx, messages=messages), rows,
                             message_id)
        return pa.Table.from_pandas(frame, preserve_index=False)

    def empty(self) -> pa.Table:
        z = np.zeros(0, np.int64)
        tx = _no_frames()
        tx.fate, tx.gateway = np.zeros(0, np.int8), np.zeros(0, np.int16)
        return self.table(Messages.empty(), tx, z, z)


# ---- the run ------------------------------------------------------------------------------------------
def _trim_heap() -> None:
    """Hand the memory freed within a chunk back to the system (glibc's malloc_trim; elsewhere nothing): the
    threads' heaps otherwise keep what the chunk's arrays left, and the resident size grows by it."""
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL("libc.so.6")
            _libc.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _libc = False
    if _libc:
        _libc.malloc_trim(0)


_libc = None


def run_chunked(scenario, progress=None):
    """Simulate every policy of `scenario` in time chunks of `simulation.chunk` (see the module's text)."""
    from iotsim.engine.run import RunResult, battery_limit_notes, load_group_resources, methodology_notes

    t_start = time.perf_counter()
    say = progress or (lambda phase, done, total: None)
    chunk_s = float(scenario.simulation.chunk)
    duration = float(scenario.duration)
    link = make_link(scenario.network)
    policies = [make_policy(p) for p in scenario.policies]
    check_chunkable(scenario, link, policies)
    gateways_xy = np.array([g.position_m for g in scenario.network.gateways], dtype=np.float64)
    cache: dict = {}
    plans, start = [], 0
    for index, spec in enumerate(scenario.fleet):
        resources = load_group_resources(scenario, index, cache)
        plans.append(plan_group(scenario, index, start, gateways_xy, resources, link, lazy_windows=True,
                                progress=lambda d, t, g=spec.group: say(f"windows {g}", d, t)))
        say(f"windows {spec.group}", 1, 1)
        start += spec.count
    nodes = stages.fleet_nodes(plans, link)
    link.attach(nodes.link, scenario.seed)
    update_outcomes = []
    if scenario.updates:  # as the whole run: the rollouts before any policy (with unicast: pass 0 of each policy's)
        say("updates", 0, 1)
        update_outcomes = run_updates(scenario, plans, link, nodes, cache)
        say("updates", 1, 1)
    gateway_ids = [g.id for g in scenario.network.gateways]
    workdir = tempfile.TemporaryDirectory(prefix="iotsim-chunks-")
    packets = scenario.outputs.packets_table
    n_chunks = max(1, int(np.ceil(duration / chunk_s)))
    received_mw = 10.0 ** (np.asarray(nodes.link.rx_power_dbm, dtype=np.float64) / 10.0)

    def chunks(items: list[tuple], phase: str, updates: list[UpdateOutcome], poll_set: Polls | None = None) -> list:
        """Every chunk for the policies `items` ((index, policy, death times or None, the closed loop's stop or
        None)) with the model updates `updates` (and their class A unicast polls `poll_set`, uplinks of the run),
        then their outcomes."""
        plans_u = model_steps(plans, updates)  # each window's inference time: the model its node runs then
        switches = model_switches(plans, updates)
        listening = Listening.of(updates) if updates else None
        polls = poll_set.messages if poll_set is not None else None
        runs = [PolicyChunks(scenario, plans_u, policy, pi, link, nodes,
                             Path(workdir.name) / f"packets-{pi}.parquet" if packets else None, gateway_ids, died,
                             received_mw, listening, stop)
                for pi, policy, died, stop in items]
        cursors = [WindowCursor(p, s) for p, s in zip(plans_u, switches)]
        poll_cursor = MessageCursor(polls)
        say(phase, 0, n_chunks)
        # the policies share nothing they write (each its own carried state, generators and files): they run
        # side by side on threads, the C kernels and numpy letting go of the lock
        workers = min(len(runs), native.threads())
        pool = ThreadPoolExecutor(workers, thread_name_prefix="iotsim-policy") if workers > 1 else None
        try:
            for c in range(n_chunks):
                t1 = (c + 1) * chunk_s if c + 1 < n_chunks else np.inf  # the last chunk takes what is left
                views, flats = zip(*[cur.take(t1) for cur in cursors])
                chunk_polls = poll_cursor.take(t1)
                step = lambda run: run.add_chunk(c, list(views), list(flats), t1, chunk_polls)  # noqa: E731
                if pool is None:
                    for run in runs:
                        step(run)
                else:
                    list(pool.map(step, runs))
                _trim_heap()
                say(phase, c + 1, n_chunks)
        finally:
            if pool is not None:
                pool.shutdown()
        for run in runs:
            say(f"policy {run.policy.name}", 0, 1)
            run.outcome = run.finish()
            say(f"policy {run.policy.name}", 1, 1)
        # a battery empties within the run: when, from the same schedules (with feedback: the whole run's passes),
        # then the chunks again with those deaths
        again = []
        for run in runs:
            if run.outcome is None and run.loop is not None:
                stop, died = closed_loop_deaths(scenario, plans_u, run.policy, run.pi, link, nodes, run.at_risk, say,
                                                switches, polls, listening)
                again.append((run.pi, run.policy, died, stop))
            elif run.outcome is None:
                again.append((run.pi, run.policy, death_times(scenario, plans_u, run.policy, run.pi, link, nodes,
                                                              run.at_risk, say, switches, polls, listening), None))
        if again:
            redone = {run.pi: run for run in chunks(again, f"{phase} with battery deaths", updates, poll_set)}
            runs = [redone.get(run.pi, run) for run in runs]
        return runs

    if any(u.unicast is not None for u in update_outcomes):
        # class A unicast: each policy's polls decide its fragments, in passes over all the chunks (as the whole
        # run, iotsim.engine.updates.settle_polls); the gateways' schedule is the pass's, so one policy at a time
        runs = []
        for pi, policy in enumerate(policies):
            last = {"passes": 0, "run": None}  # this policy's passes so far and the last one's chunked run

            def run_pass(ups, pi=pi, policy=policy, last=last):
                link.gateway_schedule = gateway_schedule(ups)
                last["passes"] += 1
                poll_set = Polls.of(ups, plans)
                (last["run"],) = chunks([(pi, policy, None, None)], f"chunks, {policy.name} pass {last['passes']}", ups,
                                        poll_set)
                out = last["run"].outcome
                return out, poll_set.verdicts(ups, out.poll_fates) if poll_set is not None else {}

            settle_polls(update_outcomes, lambda heard: run_updates(scenario, plans, link, nodes, cache, heard),
                         run_pass)
            runs.append(last["run"])
        update_outcomes = runs[0].outcome.updates
    else:
        runs = chunks([(pi, p, None, None) for pi, p in enumerate(policies)], "chunks", update_outcomes)
    outcomes = [run.outcome for run in runs]
    packets_path = None
    if packets:
        packets_path = Path(workdir.name) / "packets.parquet"
        sink = PacketSink(packets_path)
        for pi in range(len(runs)):
            part = pq.ParquetFile(Path(workdir.name) / f"packets-{pi}.parquet")
            for batch in part.iter_batches(batch_size=PACKETS_ROW_GROUP_ROWS):
                sink.append(pa.Table.from_batches([batch], schema=part.schema_arrow))
            (Path(workdir.name) / f"packets-{pi}.parquet").unlink()
        sink.close(runs[0].packet_context.empty() if runs else None)
    plans = model_steps(plans, update_outcomes)  # (the first policy's, as RunResult.updates)
    result = RunResult(scenario, plans, outcomes, gateway_ids, link.technology, link.tx_power_dbm,
                       updates=update_outcomes, link_state=link.state())
    result.packets_path = packets_path
    result.workdir = workdir
    result.warnings = [w for p in plans for w in p.warnings]
    result.notes = [f"Warning: {w}" for w in result.warnings] + methodology_notes(scenario, plans, link) \
        + update_notes(update_outcomes) + poll_notes(outcomes) \
        + battery_limit_notes(plans, outcomes) + [
            f"Run in {n_chunks:,} time chunks of {chunk_s:g} s (simulation.chunk): every table is the same whatever "
            "the chunk length; packets are listed in the run's canonical order (by when each message was ready)."]
    result.wall_s = time.perf_counter() - t_start
    return result


__all__ = ["run_chunked", "check_chunkable", "WindowCursor", "ModelSwitch", "MessageCursor", "MessageStream",
           "ChunkMessages", "CloudQueue", "PacketSink", "ReceptionCarry", "PolicyChunks", "DeathWatch"]
