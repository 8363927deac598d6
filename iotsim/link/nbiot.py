"""NB-IoT as a `Link`: coverage enhancement levels, the RRC connection per report, and the radio's power states.

Each node camps on the cell (a scenario gateway, an eNodeB) with the least coupling loss (its TX power minus its
mean received power: path loss and shadowing). The loss picks its coverage enhancement (CE) level from the cell's
thresholds; beyond `max_coupling_loss_db` the node finds no cell.

A report (one IP packet; larger messages are fragmented at the MTU) from a node that is not connected runs, in the
order LENA-NB (the ns-3 NB-IoT module of TU Dortmund) runs an RRC resume:

1. wait for the next NPRACH occasion (uniform over the NPRACH period; radio awake, standby);
2. Msg1: the NPRACH preamble with the level's repetitions (TX);
3. Msg2: the random access response: 4 ms after the preamble the node waits for the NPDCCH search space (half
   a period Rmax x G on average, standby), monitors it (Rmax subframes, RX), and 5 ms later receives the NPDSCH
   (RX);
4. Msg3 (RRC resume request, `msg3_bits`) 13 ms after the response (TX, NPUSCH blocks with repetitions);
5. Msg4 (RRC resume): a downlink message (search space wait, NPDCCH, NPDSCH as above) and its HARQ
   acknowledgement 13 ms later (NPUSCH format 2, TX);
6. the data: per transport block an uplink grant (search space wait, NPDCCH RX, 8 ms scheduling delay: k0 of
   TS 36.213 Table 16.5.1-1) and the block (TX); a block fails with `block_error_rate` per transmission and is sent
   again, up to `max_block_transmissions` (then the frame is lost: link_retries).

The frame reaches the cell at the end of its last block. A node that is still connected when its next frame is
ready (within the inactivity timer) skips steps 1-5. After its last frame the node stays connected, monitoring
the search space (Rmax of every Rmax x G subframes RX, the rest standby), until the cell's inactivity timer
releases it (a downlink message with its acknowledgement; with release assistance at once), then listens in idle
(eDRX, standby) for the active timer T3324, then sleeps in power saving mode (the radio's sleep current). A node
beyond coverage tries `max_preamble_attempts` random accesses at CE level 2, each with a full response window,
and its frame is lost (below_sensitivity).

Power states map onto the radio profile's: TX (uplink: preambles, NPUSCH, acknowledgements), RX (NPDCCH and
NPDSCH reception), standby (awake between them, connected or idle eDRX) and sleep (power saving mode). Every
periodic tracking area update (T3412) costs a random access and a release (`keep_alive`).

Not modelled: contention on NPRACH and the cell's uplink capacity (nodes never wait for each other; the busiest
cell's NPUSCH load, `busiest_cell_uplink_load`, says how far that holds), paging
occasions in idle, link adaptation within a CE level (one uplink configuration per level, dimensioned for the
level's worst coupling loss), re-acquiring synchronisation and system information after power saving mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iotsim.link.base import KeepAlive, Link, LinkNodes, Messages, Transmissions, frames_from_split
from iotsim.link.draws import frame_salt, frame_uniforms, keyed_uniforms
from iotsim.network.fate import Fate
from iotsim.radio import fragmentation, nbiot

FRAGMENT_HEADER_BYTES = 2  # per-packet application header when a message is split (as for the other links)
RAR_DELAY_S = 4e-3  # preamble end to the response window (LENA-NB lte-ue-mac.cc: raWindowEnd = time + 4 ...)
DL_DATA_DELAY_S = 5e-3  # NPDCCH end to its NPDSCH: 4 + 1 subframes with k0 = 0 (LENA-NB nb-iot-scheduler.cc)
HARQ_DELAY_S = 13e-3  # NPDSCH end to its acknowledgement, and the response to Msg3 (LENA-NB: first offset 13)
UL_GRANT_DELAY_S = 8e-3  # NPDCCH end to its NPUSCH: k0 = 8 for I_Delay 0 (TS 36.213 Table 16.5.1-1)
OUT_OF_COVERAGE = -1


@dataclass(frozen=True)
class Costs:
    """Radio time of one procedure (per CE level: arrays of 3)."""

    tx_s: np.ndarray
    rx_s: np.ndarray
    standby_s: np.ndarray

    @property
    def duration_s(self) -> np.ndarray:
        return self.tx_s + self.rx_s + self.standby_s

    def __add__(self, other: "Costs") -> "Costs":
        return Costs(self.tx_s + other.tx_s, self.rx_s + other.rx_s, self.standby_s + other.standby_s)


@dataclass(frozen=True)
class Procedure:
    """The closed-form pieces of a report at each CE level (index 0, 1, 2)."""

    block_s: np.ndarray  # one uplink transport block with its repetitions
    random_access: Costs  # Msg1 to Msg4 (the wait for the NPRACH occasion excluded)
    grant: Costs  # the uplink grant before each block
    release: Costs  # the release message and its acknowledgement
    connected_rx_share: np.ndarray  # connected: share of time monitoring the search space (1 / G)
    failed_attempt: Costs  # one random access without a response (out of coverage), its wait included
    nprach_period_s: np.ndarray
    tbs_bits: int

    @classmethod
    def of(cls, s) -> "Procedure":
        lv = s.coverage_levels
        ms = 1e-3
        rmax = np.array([c.npdcch_rmax for c in lv], dtype=float) * ms
        period = rmax * np.array([c.npdcch_g for c in lv], dtype=float)  # search space period Rmax x G
        npdsch = np.array([c.npdsch_subframes for c in lv], dtype=float) * ms
        tbs = nbiot.npusch_tbs_bits(s.i_tbs, s.i_ru)
        block = np.array([nbiot.transport_block_s(s.i_ru, s.subcarrier_spacing_hz, s.subcarriers,
                                                  c.npusch_repetitions) for c in lv])
        preamble = nbiot.nprach_preamble_s(s.nprach_format) * np.array([c.nprach_repetitions for c in lv], float)
        zero = np.zeros(3)
        downlink = Costs(zero, rmax + npdsch, period / 2 + DL_DATA_DELAY_S)  # search space wait, NPDCCH, NPDSCH
        ack = Costs(np.full(3, s.harq_ack), zero, np.full(3, HARQ_DELAY_S))
        msg3 = Costs(int(nbiot.transport_blocks(-(-s.msg3_bits // 8), tbs)) * block, zero, np.full(3, HARQ_DELAY_S))
        random_access = Costs(preamble, zero, np.full(3, RAR_DELAY_S)) + downlink + msg3 + downlink + ack
        window = np.array([c.rar_window_periods for c in lv], dtype=float) * period
        failed = Costs(preamble, window * rmax / period,
                       np.array([c.nprach_period for c in lv]) / 2 + RAR_DELAY_S + window * (1 - rmax / period))
        return cls(
            block_s=block, random_access=random_access, grant=Costs(zero, rmax, period / 2 + UL_GRANT_DELAY_S),
            release=downlink + ack, connected_rx_share=rmax / period, failed_attempt=failed,
            nprach_period_s=np.array([c.nprach_period for c in lv], dtype=float), tbs_bits=tbs,
        )


class NbIotLink(Link):
    technology = "nbiot"
    radio_technology = "nbiot"

    def __init__(self, network):
        self.network = network
        self.settings = network.nbiot
        self.procedure = Procedure.of(self.settings)

    @property
    def carrier_frequency_hz(self) -> float:
        return self.settings.carrier_frequency_mhz * 1e6

    @property
    def tx_power_dbm(self) -> float:
        return float(self.settings.tx_power_dbm)

    # --- cells and coverage levels
    def node_cells(self, rx_power_dbm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(cell, coupling loss dB, CE level or OUT_OF_COVERAGE) per node: the cell with the least loss."""
        cell = np.argmax(rx_power_dbm, axis=1).astype(np.int64)
        loss = self.tx_power_dbm - rx_power_dbm[np.arange(rx_power_dbm.shape[0]), cell]
        level = np.searchsorted(np.asarray(self.settings.ce_thresholds_db), loss, side="right").astype(np.int64)
        level[loss > self.settings.max_coupling_loss_db] = OUT_OF_COVERAGE
        return cell, loss, level

    def split(self, messages: Messages) -> Transmissions:
        s = self.settings
        n = len(messages)
        max_payload = np.full(n, s.mtu_bytes - s.ip_overhead_bytes, dtype=np.int64)
        msg_index, fragment, payload = fragmentation.split_messages(messages.app_bytes, max_payload,
                                                                    FRAGMENT_HEADER_BYTES)
        phy = (payload + s.ip_overhead_bytes).astype(np.int64)
        return frames_from_split(messages, msg_index, fragment, phy, np.zeros(msg_index.shape[0], np.int64),
                                 np.zeros(msg_index.shape[0]))

    def block_transmissions(self, blocks: np.ndarray, u_frame: np.ndarray,
                            salt: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(transmissions of all the frame's blocks, rounds = the most any block needed, delivered) per frame:
        each block geometric with success 1 - block_error_rate, capped at max_block_transmissions."""
        s = self.settings
        limit = s.max_block_transmissions
        if s.block_error_rate == 0 or blocks.size == 0:
            return blocks.copy(), np.ones(blocks.shape[0], dtype=np.int64), np.ones(blocks.shape[0], dtype=bool)
        frame_key = (u_frame * 9007199254740992.0).astype(np.int64)
        owner = np.repeat(np.arange(blocks.shape[0]), blocks)
        first = np.cumsum(blocks) - blocks
        index = np.arange(owner.shape[0]) - np.repeat(first, blocks)
        u = 1.0 - keyed_uniforms(salt ^ 0x5EED_B10C, frame_key[owner], index)  # (0, 1]
        k = np.floor(np.log(u) / np.log(s.block_error_rate)) + 1.0
        failed = k > limit
        sent = np.minimum(k, limit)
        return (np.bincount(owner, weights=sent, minlength=blocks.shape[0]).astype(np.int64),
                np.maximum.reduceat(sent, first).astype(np.int64),
                np.bincount(owner, weights=failed, minlength=blocks.shape[0]) == 0)

    def schedule_carry(self, n_nodes: int) -> "NbIotCarry":
        return NbIotCarry(n_nodes)

    def transmit(self, messages: Messages, nodes: LinkNodes, rng: np.random.Generator, duration_s: float,
                 stop_s: np.ndarray | None = None, carry: "NbIotCarry | None" = None) -> Transmissions:
        """`carry`: a run in time chunks hands each node's last frame from one chunk's frames to the next (updated in
        place; that frame's tail, connected then idle until the node's next frame, is settled once it is known)."""
        s, p = self.settings, self.procedure
        tx = self.split(messages)
        n = len(tx)
        cell, _, level = self.node_cells(nodes.rx_power_dbm)
        salt = frame_salt(rng)
        u = frame_uniforms(salt, messages, tx)
        lv = level[tx.node]
        covered = lv >= 0
        li = np.maximum(lv, 0)
        blocks = nbiot.transport_blocks(tx.phy_bytes + s.l2_overhead_bytes, p.tbs_bits)
        sent, rounds, ok = self.block_transmissions(blocks, u, salt)
        sent = np.where(covered, sent, 0)
        tx.attempts = np.where(covered, rounds, 0)  # HARQ rounds: the most transmissions any block needed
        tx.airtime_s = blocks * p.block_s[li]  # one transmission of every block
        tx.on_air_s = sent * p.block_s[li]
        tx.channel = np.full(n, -1, dtype=np.int8)
        tx.link_gateway = np.where(covered, cell[tx.node], -1).astype(np.int16)
        tx.link_fate = np.where(~covered, Fate.BELOW_SENSITIVITY,
                                np.where(ok, Fate.DELIVERED, Fate.LINK_RETRIES)).astype(np.int8)

        # the data part (grants and blocks) and the cost of a random access, per frame
        a = sent.astype(np.float64)
        data_tx = a * p.block_s[li]
        data_rx = a * p.grant.rx_s[li]
        data_sb = a * p.grant.standby_s[li]
        wait = keyed_uniforms(salt ^ 0x0A11_0CC5, (u * 9007199254740992.0).astype(np.int64)) * p.nprach_period_s[li]
        ra = p.random_access
        fail = p.failed_attempt
        tries = float(s.max_preamble_attempts)

        start = np.empty(n)
        data_end = np.empty(n)
        connected = np.zeros(n, dtype=bool)
        busy = np.empty(n)
        pos = _position_in_node(tx.node)
        by_pos = np.argsort(pos, kind="stable")
        bounds = np.searchsorted(pos[by_pos], np.arange(int(pos.max()) + 2 if n else 1))
        hold = 0.0 if s.release_assistance else s.inactivity_timer
        for k in range(bounds.shape[0] - 1):  # the k-th frame of every node at once
            idx = by_pos[bounds[k]:bounds[k + 1]]
            if k == 0:
                start[idx] = tx.ready_s[idx]
                if carry is not None:  # after the node's frames of the chunks before
                    i = tx.node[idx]
                    had = carry.has[i]
                    start[idx] = np.where(had, np.maximum(tx.ready_s[idx], carry.data_end[i]), start[idx])
                    connected[idx] = had & covered[idx] & carry.covered[i] & (start[idx] < carry.data_end[i] + hold)
            else:
                prev = idx - 1
                start[idx] = np.maximum(tx.ready_s[idx], data_end[prev])
                release_at = data_end[prev] + (0.0 if s.release_assistance else s.inactivity_timer)
                connected[idx] = covered[idx] & covered[prev] & (start[idx] < release_at)
            access = np.where(connected[idx], 0.0, wait[idx] + ra.duration_s[li[idx]])
            d = access + data_tx[idx] + data_rx[idx] + data_sb[idx]
            busy[idx] = np.where(covered[idx], d, tries * fail.duration_s[2])
            data_end[idx] = start[idx] + busy[idx]

        # radio state times of each frame's own procedure
        new = covered & ~connected
        tx.tx_s = data_tx + np.where(new, ra.tx_s[li], 0.0)
        tx.rx_s = data_rx + np.where(new, ra.rx_s[li], 0.0)
        tx.standby_s = data_sb + np.where(new, wait + ra.standby_s[li], 0.0)
        out = ~covered
        tx.tx_s[out] = tries * fail.tx_s[2]
        tx.rx_s[out] = tries * fail.rx_s[2]
        tx.standby_s[out] = tries * fail.standby_s[2]

        # after the frame: connected until the next frame or the release, then idle for T3324 (or until the next);
        # a node's last frame here has no next yet (a run in chunks settles it when the next chunk comes)
        nxt = np.arange(1, n + 1)
        has_next = np.zeros(n, dtype=bool)
        if n:
            has_next[:-1] = tx.node[1:] == tx.node[:-1]
        next_start = np.where(has_next, start[np.minimum(nxt, n - 1)], np.inf)
        next_connected = np.where(has_next, connected[np.minimum(nxt, n - 1)], False)
        base = (tx.tx_s, tx.rx_s, tx.standby_s, np.where(covered, busy - np.where(new, wait, 0.0), 0.0))
        tail = self._tails(data_end, covered, li, next_start, next_connected, duration_s)
        tx.tx_s, tx.rx_s, tx.standby_s, frame_connected_s = (b + t for b, t in zip(base, tail))
        tx.busy_s = busy
        tx.start_s = start
        # the uplink resources the frames take: time on air x the share of the 180 kHz carrier they occupy
        frame_npusch_s = np.where(covered, tx.on_air_s * (s.subcarriers * s.subcarrier_spacing_hz / 180e3), 0.0)
        if carry is None:
            tx.gateway_stats = {"npusch_resource_s": self.per_cell(
                np.bincount(tx.node, weights=frame_npusch_s, minlength=nodes.n), nodes)}
            tx.node_stats = {
                "ce_level": level,
                "connections": np.bincount(tx.node[new], minlength=nodes.n).astype(np.int64),
                "connected_s": np.bincount(tx.node, weights=frame_connected_s, minlength=nodes.n),
            }
        else:
            carry.add(self, tx, start, connected, dict(data_end=data_end, covered=covered, li=li, base=base, new=new,
                                                       connected_s=frame_connected_s, npusch_s=frame_npusch_s),
                      has_next, duration_s)
        return tx

    def _tails(self, data_end, covered, li, next_start, next_connected, duration_s) -> tuple:
        """(TX, RX, standby, connected) time after each frame: connected until the next frame (`next_start`, when
        it finds the node connected) or the release, then idle for T3324 (or until the next)."""
        s, p = self.settings, self.procedure
        end_of_run = np.maximum(duration_s - data_end, 0.0)
        hold = 0.0 if s.release_assistance else s.inactivity_timer
        conn = np.minimum(np.where(next_connected, next_start - data_end, hold), end_of_run)
        conn = np.maximum(conn, 0.0)
        released = covered & ~next_connected
        rel = p.release
        idle = np.clip(np.minimum(next_start - data_end - conn - rel.duration_s[li], s.active_timer), 0.0, None)
        idle = np.minimum(idle, np.maximum(end_of_run - conn - rel.duration_s[li], 0.0))
        share = p.connected_rx_share[li]
        tail_rx = np.where(covered, conn * share, 0.0) + np.where(released, rel.rx_s[li], 0.0)
        tail_tx = np.where(released, rel.tx_s[li], 0.0)
        tail_sb = np.where(covered, conn * (1.0 - share), 0.0) + np.where(released, rel.standby_s[li] + idle, 0.0)
        return tail_tx, tail_rx, tail_sb, np.where(covered, conn, 0.0)

    def tail_horizon_s(self, li: np.ndarray) -> np.ndarray:
        """After a frame's data ends: how soon the node's next frame must start to change the frame's tail (the
        inactivity timer, the release, T3324); a later one leaves the tail as if no frame followed."""
        s = self.settings
        hold = 0.0 if s.release_assistance else s.inactivity_timer
        return hold + self.procedure.release.duration_s[li] + s.active_timer

    def per_cell(self, node_npusch_s: np.ndarray, nodes: LinkNodes) -> np.ndarray:
        """Per cell: the NPUSCH resource time of its nodes (each node's own sum, added in node order)."""
        cell, _, level = self.node_cells(nodes.rx_power_dbm)
        mine = level >= 0
        return np.bincount(cell[mine], weights=node_npusch_s[mine], minlength=nodes.rx_power_dbm.shape[1])

    def keep_alive(self, nodes: LinkNodes) -> KeepAlive:
        """The periodic tracking area update (T3412): a random access, the inactivity timer, the release and the
        active timer, per node at its CE level (beyond coverage: its failed attempts)."""
        s, p = self.settings, self.procedure
        _, _, level = self.node_cells(nodes.rx_power_dbm)
        li = np.maximum(level, 0)
        hold = 0.0 if s.release_assistance else s.inactivity_timer
        share = p.connected_rx_share[li]
        wait = p.nprach_period_s[li] / 2
        covered = level >= 0
        tries = float(s.max_preamble_attempts)
        f = p.failed_attempt
        tx = np.where(covered, p.random_access.tx_s[li] + p.release.tx_s[li], tries * f.tx_s[2])
        rx = np.where(covered, p.random_access.rx_s[li] + hold * share + p.release.rx_s[li], tries * f.rx_s[2])
        sb = np.where(covered, wait + p.random_access.standby_s[li] + hold * (1 - share) + p.release.standby_s[li]
                      + s.active_timer, tries * f.standby_s[2])
        return KeepAlive(period_s=s.tau_period, tx_s=tx, rx_s=rx, standby_s=sb)

    def notes(self) -> list[str]:
        s, p = self.settings, self.procedure
        lo, hi = s.ce_thresholds_db
        rel = "released at once (release assistance)" if s.release_assistance else \
            f"stays connected {s.inactivity_timer:g} s after its last data (the cell's inactivity timer)"
        return [
            f"NB-IoT: each node uses the cell with the least coupling loss; CE level 0 below {lo:g} dB, 1 below "
            f"{hi:g} dB, 2 up to {s.max_coupling_loss_db:g} dB (beyond: no cell, frames lost below_sensitivity after "
            f"{s.max_preamble_attempts} random access attempts).",
            f"NB-IoT per report: NPRACH preamble ({', '.join(str(c.nprach_repetitions) for c in s.coverage_levels)} "
            f"repetitions by level), response, RRC resume (Msg3, Msg4), then {p.tbs_bits}-bit NPUSCH blocks "
            f"({s.subcarriers} x {s.subcarrier_spacing_hz / 1e3:g} kHz, "
            f"{', '.join(f'{b * 1e3:g}' for b in p.block_s)} ms each by level) each after its grant, "
            f"block error rate {s.block_error_rate:g}, at most {s.max_block_transmissions} transmissions per block; "
            f"the node {rel}, then listens {s.active_timer:g} s in idle before power saving mode.",
            "NB-IoT simplifications: no contention on NPRACH and no limit on the cell's uplink capacity; one uplink "
            "configuration per CE level; no paging in idle; no re-synchronisation after power saving mode.",
        ]


class NbIotCarry:
    """What a run in time chunks hands from one chunk's NB-IoT frames to the next: each node's last frame (when its
    data ended, whether it had a cell), and that frame's tail until it is settled. The tail (connected, released,
    idle) depends on when the node's next frame starts: the node's first frame in a later chunk settles it (the
    frame's radio times are then rewritten in place), and so does a chunk's end past the tail's horizon
    (`NbIotLink.tail_horizon_s`: the tail is then the one of a last frame). The per-node counters (connections,
    connected time, NPUSCH resource time) take each frame once it is settled, in each node's frame order, as the
    whole run sums them."""

    def __init__(self, n_nodes: int):
        self.has = np.zeros(n_nodes, dtype=bool)
        self.data_end = np.zeros(n_nodes)
        self.covered = np.zeros(n_nodes, dtype=bool)
        self.pending: dict[int, tuple] = {}  # node -> (tx, row, its facts) of its last frame, not settled yet
        self.open: dict[int, int] = {}  # id(tx) -> how many of its frames are not settled
        self.connections = np.zeros(n_nodes, dtype=np.int64)
        self.connected_s = np.zeros(n_nodes)
        self.npusch_s = np.zeros(n_nodes)
        self.link, self.duration_s = None, None

    def add(self, link, tx, start, connected, frames: dict, has_next, duration_s) -> None:
        """A chunk's frames (NbIotLink.transmit): first the nodes' pending frames these follow are settled, then
        these are counted but for each node's last, which waits."""
        self.link, self.duration_s = link, duration_s
        if len(tx):
            first = np.flatnonzero(np.r_[True, tx.node[1:] != tx.node[:-1]])
            for f in first[np.isin(tx.node[first], list(self.pending))].tolist():
                self._settle(int(tx.node[f]), float(start[f]), bool(connected[f]))
        done = np.flatnonzero(has_next)
        self._count(tx.node[done], frames["new"][done], frames["connected_s"][done], frames["npusch_s"][done])
        for r in np.flatnonzero(~has_next).tolist():
            self.pending[int(tx.node[r])] = (tx, r, {k: v[r] for k, v in frames.items() if k != "base"},
                                             tuple(b[r] for b in frames["base"]))
            self.open[id(tx)] = self.open.get(id(tx), 0) + 1
        last = ~has_next
        i = tx.node[last]
        self.has[i] = True
        self.data_end[i] = frames["data_end"][last]
        self.covered[i] = frames["covered"][last]

    def settle_before(self, t_s: float) -> None:
        """Every later frame starts at `t_s` or after: settle the pending frames whose tail it can no longer change
        (all of them at the end of the run: t_s infinite)."""
        for k in [k for k, (_, _, f, _) in self.pending.items()
                  if f["data_end"] + self.link.tail_horizon_s(f["li"]) <= t_s]:
            self._settle(k, np.inf, False)

    def is_open(self, tx) -> bool:
        """Whether some frame of `tx` still waits for its tail."""
        return self.open.get(id(tx), 0) > 0

    def stats(self, nodes) -> tuple[dict, dict]:
        """(gateway stats, node stats) once every frame is settled, as the whole run's transmit reports them."""
        _, _, level = self.link.node_cells(nodes.rx_power_dbm)
        return ({"npusch_resource_s": self.link.per_cell(self.npusch_s, nodes)},
                {"ce_level": level, "connections": self.connections.copy(), "connected_s": self.connected_s.copy()})

    def _settle(self, k: int, next_start: float, next_connected: bool) -> None:
        tx, r, f, base = self.pending.pop(k)
        tail = self.link._tails(np.array([f["data_end"]]), np.array([f["covered"]]), np.array([f["li"]]),
                                np.array([next_start]), np.array([next_connected]), self.duration_s)
        tx.tx_s[r], tx.rx_s[r], tx.standby_s[r], connected_s = (b + t[0] for b, t in zip(base, tail))
        self._count(np.array([k]), np.array([f["new"]]), np.array([connected_s]), np.array([f["npusch_s"]]))
        self.open[id(tx)] -= 1
        if not self.open[id(tx)]:
            del self.open[id(tx)]

    def _count(self, node, new, connected_s, npusch_s) -> None:
        np.add.at(self.connections, node[new], 1)
        np.add.at(self.connected_s, node, connected_s)
        np.add.at(self.npusch_s, node, npusch_s)


def _position_in_node(node: np.ndarray) -> np.ndarray:
    """Index of each frame among its node's frames (frames sorted by node)."""
    n = node.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    first = np.concatenate(([True], node[1:] != node[:-1]))
    start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    return np.arange(n) - start


__all__ = ["NbIotLink", "NbIotCarry", "Procedure", "Costs", "OUT_OF_COVERAGE"]
