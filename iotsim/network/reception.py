"""Which gateways decode which LoRa frames, as ns-3's lorawan module models a gateway.

Each frame is followed at every gateway through the stages of ns-3's `SimpleGatewayLoraPhy`
(`StartReceive` / `EndReceive`, signetlabdei/lorawan, model/simple-gateway-lora-phy.cc) and
`LoraInterferenceHelper::IsDestroyedByInterference` (model/lora-interference-helper.cc):

1. Sensitivity: a frame weaker than the gateway's sensitivity for its SF (`rx < sensitivity`) is
   BELOW_SENSITIVITY there and takes no demodulator path. It still interferes with the others: as
   in ns-3, every frame on air on the channel counts as interference, heard or not.
2. Half duplex: a frame that arrives while the gateway transmits takes no path; a frame whose
   reception overlaps one of the gateway's transmit intervals at all is lost there
   (GATEWAY_TRANSMITTING; ns-3's `Send` interrupts the receptions in progress).
3. Demodulator paths: an audible frame that does not arrive during TX locks a free path at its
   start for its whole airtime (SX1301-class gateways have 8); with every path held it is lost
   there (DEMODULATORS_BUSY). Frames are taken in start order; frames that start at the same
   instant in the order of the (stably) sorted input. A path held until t is free for a frame
   starting at t.
4. Interference, for a frame f that locked a path: for each SF s the interference energy
   E_s = sum over the other frames k on f's channel with SF s of P_k * overlap(f, k) (P in mW at
   this gateway, overlap in s) is compared with the signal energy P_f * airtime_f; f is destroyed
   when 10 log10(P_f airtime_f / E_s) < threshold[SF_f][s] for any s with E_s > 0 (COLLISION).
   Same SF: `capture_threshold_db` (6 dB: Bor et al., MSWiM 2016; ns-3's diagonal), plus the rule
   that a frame needs SIR > 0 to survive (so with 0 dB the strictly strongest frame wins and two
   equal frames both fail); `math.inf` is pure ALOHA (any same-SF overlap destroys). Other SFs:
   `CROCE_SIR_DB` (Croce et al., "Impact of LoRa Imperfect Orthogonality: Analysis of Link-Level
   Performance", IEEE Commun. Lett. 22(4), 2018), `GOURSAUD_SIR_DB` (upstream ns-3's default), or
   orthogonal (never interfere).

A frame is DELIVERED when at least one gateway decodes it; otherwise its fate is the furthest
stage it reached at any gateway, BELOW_SENSITIVITY < GATEWAY_TRANSMITTING < DEMODULATORS_BUSY <
COLLISION (at one gateway a frame that locked a path and was then cut by a gateway transmission is
GATEWAY_TRANSMITTING there).

Differences from ns-3, on purpose: ns-3 does not register frames that arrive during a gateway
transmission with the interference helper (here they interfere like every frame on air), and it
frees the paths of receptions a transmission interrupts (here a path stays held for the frame's
whole airtime, so that path allocation never depends on transmissions decided later); ns-3 checks
sensitivity only when a path is free (a weak frame arriving with all paths busy counts as
"no more demodulators" there; here it is BELOW_SENSITIVITY).

Structure, so that a closed-loop engine can resolve frames in batches in time order:
- `PathAllocator` holds each gateway's held paths; fed frames in start order over successive calls
  it gives the same result as one call (`arrive` feeds it frames and records, per frame, the
  gateways where it locked a path and the furthest stage reached where it did not).
- `decode` resolves a set of target frames (interference, half duplex, the verdict) against a
  context: every frame that may overlap them (for frames that ended by T: all frames started
  before T).
- `resolve_receptions` is the one-shot composition of the two, used by the fast path.

Speed and memory: `decode` is a vectorized sweep over frames sorted by (channel, start) (by
(channel, SF, start) when SFs are orthogonal), and the frames x gateways x SF arrays exist for one
block of `BLOCK_ELEMENTS` at a time; `arrive` feeds the allocator blocks of frames; path allocation
is vectorized where a frame finds fewer than `paths` audible frames on air at its start (it
certainly gets a path) and sequential only through congested stretches. With a host C compiler,
the sequential parts run as C kernels instead (`iotsim.network.native`, built on first use into
the user cache): path allocation as one pass of a min-heap of held path ends per gateway, and
decode's sweep and verdict per target frame, summing the same floats in the same order as the
numpy sweep, so that the results are bit-identical with or without them (`USE_NATIVE = False` or
IOTSIM_NATIVE=0 forces the numpy/Python path; without a compiler it is used silently). Where no
gateway transmits (the open loop), `arrive` is one C pass per frame over the gateways (sensitivity
and path together, no frames x gateways matrices), and the verdict sums and judges interference
only at the gateways where the target locked a path (the only ones that can decode it: the same
sums there). Both split their work between threads (the gateways, the targets; IOTSIM_THREADS,
default the CPUs up to 8), each thread with its own data: the same bytes for any number.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from iotsim.network import native
from iotsim.network.fate import Fate

BLOCK_ELEMENTS = 1 << 22  # frames x gateways (x SFs) per block: 32 MB for each float64 array
SPREADING_FACTORS = (7, 8, 9, 10, 11, 12)
TICKS_PER_S = float(1 << 32)  # path busy time is summed in integer ticks: exact, whatever the batching

_nan = math.nan
CROCE_SIR_DB = np.array([
    # interferer: SF7  SF8  SF9 SF10 SF11 SF12
    [_nan, -8, -9, -9, -9, -9],  # wanted SF7
    [-11, _nan, -11, -12, -13, -13],  # SF8
    [-15, -13, _nan, -13, -14, -15],  # SF9
    [-19, -18, -17, _nan, -17, -18],  # SF10
    [-22, -22, -21, -20, _nan, -20],  # SF11
    [-25, -25, -25, -24, -23, _nan],  # SF12
], dtype=np.float64)
"""Minimum SIR (dB) for a frame of SF row to survive an interferer of SF column (Croce et al.,
IEEE Commun. Lett. 22(4):796-799, 2018, Table I, measured co-channel rejection with SX1272
transceivers), as ns-3 lorawan encodes it: `LoraInterferenceHelper::collisionSnirCroce` in
brunocitoni/my-modified-lorawan-module (model/lora-interference-helper.cc, commit 151d7618). Croce's
diagonal (1 dB) is replaced by `ReceptionModel.capture_threshold_db`. Upstream ns-3
(signetlabdei/lorawan) ships only `collisionSnirGoursaud` (below) and an ALOHA matrix."""

GOURSAUD_SIR_DB = np.array([
    [_nan, -16, -18, -19, -19, -20],
    [-24, _nan, -20, -22, -22, -22],
    [-27, -27, _nan, -23, -25, -25],
    [-30, -30, -30, _nan, -26, -28],
    [-33, -33, -33, -33, _nan, -29],
    [-36, -36, -36, -36, -36, _nan],
], dtype=np.float64)
"""Upstream ns-3's default isolation matrix (`LoraInterferenceHelper::collisionSnirGoursaud`,
signetlabdei/lorawan model/lora-interference-helper.cc, after Goursaud and Gorce, EAI Endorsed
Trans. IoT 2015); its diagonal (6 dB) is `capture_threshold_db`."""

# stages a frame can reach at a gateway without being decoded, in the order "furthest wins"
_RANK_FATES = (Fate.BELOW_SENSITIVITY, Fate.GATEWAY_TRANSMITTING, Fate.DEMODULATORS_BUSY, Fate.COLLISION)
_RANK_TO_FATE = np.array([int(f) for f in _RANK_FATES], dtype=np.int8)
_FATE_TO_RANK = np.zeros(max(int(f) for f in Fate) + 1, dtype=np.int8)
for _rank, _fate in enumerate(_RANK_FATES):
    _FATE_TO_RANK[int(_fate)] = _rank
_BS, _GT, _DB, _COL = range(4)
_REBUILD_GAP = 16  # leave a congested stretch when the next congested frame is further than this
USE_NATIVE = True
"""Use the C kernels (`iotsim.network.native`) when they build; False: the pure-Python/numpy path
(the same results, slower)."""


def _native():
    """The C kernels, or None (disabled, or no compiler: see `native.load_error`)."""
    return native.lib() if USE_NATIVE else None


CAPTURE_THRESHOLD_DB = 6.0
"""Co-SF capture threshold: a LoRa frame survives same-SF interference at least this much weaker
(Bor et al., MSWiM 2016; LoRaSim's power threshold; ns-3 lorawan's co-SF diagonal)."""


@dataclass(frozen=True)
class ReceptionModel:
    """How gateways decode overlapping frames; each simplification is a switch."""

    capture_threshold_db: float = CAPTURE_THRESHOLD_DB
    """Co-SF: a frame survives same-SF interference when SIR >= this and SIR > 0 (0: the strictly
    strongest wins; `math.inf`: no capture, any same-SF overlap destroys both)."""
    inter_sf: Literal["croce", "goursaud", "orthogonal"] = "croce"
    """Thresholds against other SFs: `CROCE_SIR_DB`, `GOURSAUD_SIR_DB`, or never interfere."""
    demodulator_paths: int | None = 8
    """Frames a gateway demodulates at once (8 on SX1301-class gateways); None: unlimited."""

    def __post_init__(self):
        if math.isnan(self.capture_threshold_db) or self.capture_threshold_db == -math.inf:
            raise ValueError(f"capture_threshold_db must be a number or inf, not {self.capture_threshold_db}")
        if self.inter_sf not in ("croce", "goursaud", "orthogonal"):
            raise ValueError(f"inter_sf must be 'croce', 'goursaud' or 'orthogonal', not {self.inter_sf!r}")
        if self.demodulator_paths is not None and self.demodulator_paths < 1:
            raise ValueError("demodulator_paths must be >= 1 or None")

    def isolation_db(self) -> np.ndarray:
        """6 x 6 SIR thresholds (wanted SF row, interfering SF column, SF7..SF12); -inf: never interferes."""
        if self.inter_sf == "croce":
            m = CROCE_SIR_DB.copy()
        elif self.inter_sf == "goursaud":
            m = GOURSAUD_SIR_DB.copy()
        else:
            m = np.full((6, 6), -np.inf)
        np.fill_diagonal(m, self.capture_threshold_db)
        return m

    def sir_factors(self) -> np.ndarray:
        """10^(isolation_db/10): a frame at SF s is destroyed by SF t's energy E when E * factor > its own."""
        with np.errstate(over="ignore"):
            return 10.0 ** (self.isolation_db() / 10.0)  # -inf -> 0 (never), inf -> inf

    @property
    def capture_rule(self) -> int:
        """Which co-SF rule decides: 0 no capture (any same-SF energy destroys), 1 capture above a
        threshold > 0 (E * factor > S destroys), 2 threshold <= 0 (E >= S and E > 0 destroys)."""
        cap = self.capture_threshold_db
        return 0 if cap == math.inf else (1 if cap > 0 else 2)


@dataclass
class Reception:
    status: np.ndarray  # int8 per frame: a `Fate` code (DELIVERED or the reason it was lost)
    gateway: np.ndarray  # int16 per frame: strongest gateway that decoded it, -1 if none
    gateways_decoding: np.ndarray  # int16 per frame: how many gateways decoded it
    path_busy_s: np.ndarray  # float64 per gateway: airtime of the frames that locked a demodulator path
    frames_locked: np.ndarray  # int64 per gateway: frames that locked a demodulator path


@dataclass
class Frames:
    """Uplink frames as the gateways see them (one entry per frame)."""

    start_s: np.ndarray
    airtime_s: np.ndarray
    channel: np.ndarray
    sf: np.ndarray
    node: np.ndarray  # row of `node_rx_power_dbm` holding the frame's received power at each gateway
    sensitivity_dbm: np.ndarray  # gateway sensitivity for the frame's SF
    tx_power_offset_db: np.ndarray | None = None  # added to the node's row (ADR power changes)

    def __post_init__(self):
        self.start_s = np.asarray(self.start_s, dtype=np.float64)
        self.airtime_s = np.asarray(self.airtime_s, dtype=np.float64)
        self.channel = np.asarray(self.channel)
        self.sf = np.asarray(self.sf)
        self.node = np.asarray(self.node)
        self.sensitivity_dbm = np.asarray(self.sensitivity_dbm, dtype=np.float64)
        if self.tx_power_offset_db is not None:
            self.tx_power_offset_db = np.asarray(self.tx_power_offset_db, dtype=np.float64)
        n = self.start_s.shape[0]
        for name in ("airtime_s", "channel", "sf", "node", "sensitivity_dbm", "tx_power_offset_db"):
            a = getattr(self, name)
            if a is not None and a.shape != (n,):
                raise ValueError(f"{name} has shape {a.shape}, expected ({n},)")

    def __len__(self) -> int:
        return self.start_s.shape[0]

    @property
    def end_s(self) -> np.ndarray:
        return self.start_s + self.airtime_s

    def take(self, idx) -> Frames:
        off = None if self.tx_power_offset_db is None else self.tx_power_offset_db[idx]
        return Frames(self.start_s[idx], self.airtime_s[idx], self.channel[idx], self.sf[idx], self.node[idx],
                      self.sensitivity_dbm[idx], off)

    def rx_power_dbm(self, node_rx_power_dbm: np.ndarray, idx) -> np.ndarray:
        """(frames, gateways) received power of the frames `idx`."""
        p = node_rx_power_dbm[self.node[idx]]
        if self.tx_power_offset_db is not None:
            p = p + self.tx_power_offset_db[idx, None]
        return p


@dataclass
class Arrival:
    """What happened to frames at their start, per gateway (from `arrive`)."""

    locked: np.ndarray  # uint8 (frames, ceil(gateways / 8)): bit g (little-endian) set: locked a path at g
    fate: np.ndarray  # int8 Fate: furthest stage at the gateways where it locked no path (BELOW_SENSITIVITY if none)

    def take(self, idx) -> Arrival:
        return Arrival(self.locked[idx], self.fate[idx])

    @staticmethod
    def empty(n: int, n_gateways: int) -> Arrival:
        return Arrival(np.zeros((n, (n_gateways + 7) // 8), dtype=np.uint8),
                       np.full(n, Fate.BELOW_SENSITIVITY, dtype=np.int8))

    def put(self, idx, other: Arrival) -> None:
        self.locked[idx] = other.locked
        self.fate[idx] = other.fate

    def locked_at(self, n_gateways: int, idx=slice(None)) -> np.ndarray:
        """(frames, gateways) bool: where each frame locked a path."""
        return np.unpackbits(self.locked[idx], axis=1, count=n_gateways, bitorder="little").astype(bool)


class GatewayTx:
    """Each gateway's transmit intervals [start, end) (merged, sorted)."""

    def __init__(self, intervals: Sequence[tuple[np.ndarray, np.ndarray]] | None, n_gateways: int):
        self.n_gateways = n_gateways
        self.starts: list[np.ndarray] = []
        self.ends: list[np.ndarray] = []
        if intervals is not None and len(intervals) != n_gateways:
            raise ValueError(f"gateway_tx has {len(intervals)} entries for {n_gateways} gateways")
        for g in range(n_gateways):
            s, e = (np.zeros(0), np.zeros(0)) if intervals is None else intervals[g]
            s = np.asarray(s, dtype=np.float64).ravel()
            e = np.asarray(e, dtype=np.float64).ravel()
            keep = e > s
            s, e = s[keep], e[keep]
            o = np.argsort(s, kind="stable")
            s, e = s[o], e[o]
            if s.size > 1:  # merge overlapping intervals
                run_end = np.maximum.accumulate(e)
                new = np.ones(s.size, dtype=bool)
                new[1:] = s[1:] > run_end[:-1]
                first = np.flatnonzero(new)
                last = np.r_[first[1:], s.size] - 1
                s, e = s[first], run_end[last]
            self.starts.append(s)
            self.ends.append(e)
        self.any = any(s.size for s in self.starts)

    @classmethod
    def of(cls, gateway_tx, n_gateways: int) -> GatewayTx:
        return gateway_tx if isinstance(gateway_tx, GatewayTx) else cls(gateway_tx, n_gateways)

    def arriving_during(self, start_s: np.ndarray) -> np.ndarray:
        """(frames, gateways) bool: the frame starts while the gateway transmits."""
        out = np.zeros((start_s.shape[0], self.n_gateways), dtype=bool)
        for g in range(self.n_gateways):
            if self.starts[g].size:
                k = np.searchsorted(self.starts[g], start_s, side="right") - 1
                out[:, g] = (k >= 0) & (self.ends[g][np.maximum(k, 0)] > start_s)
        return out

    def overlapping(self, start_s: np.ndarray, end_s: np.ndarray) -> np.ndarray:
        """(frames, gateways) bool: some transmission of the gateway overlaps [start, end)."""
        out = np.zeros((start_s.shape[0], self.n_gateways), dtype=bool)
        for g in range(self.n_gateways):
            if self.starts[g].size:
                k = np.searchsorted(self.starts[g], end_s, side="left") - 1  # last TX starting before the end
                out[:, g] = (k >= 0) & (self.ends[g][np.maximum(k, 0)] > start_s)
        return out


class PathAllocator:
    """Demodulator paths of every gateway, fed frames in start order (over one or many calls).

    State: per gateway, the end times of the paths held at the last start fed. A frame locks a
    path when fewer than `paths` are held at its start. Feeding frames in successive calls gives
    the same result as one call, as long as each call's starts are >= the previous call's.
    `path_busy_s` and `frames_locked` accumulate per gateway (busy time in integer ticks of
    2^-32 s, so that it is bit-identical however the frames are batched).
    """

    def __init__(self, n_gateways: int, paths: int | None):
        if paths is not None and paths < 1:
            raise ValueError("paths must be >= 1 or None")
        self.n_gateways = n_gateways
        self.paths = paths
        self._held = [np.zeros(0) for _ in range(n_gateways)]
        self._last_start = -np.inf
        self._busy_ticks = np.zeros(n_gateways, dtype=np.int64)
        self.frames_locked = np.zeros(n_gateways, dtype=np.int64)

    @property
    def path_busy_s(self) -> np.ndarray:
        return self._busy_ticks / TICKS_PER_S

    def allocate(self, start_s: np.ndarray, airtime_s: np.ndarray, candidate: np.ndarray) -> np.ndarray:
        """Which candidates lock a path: (frames, gateways) bool.

        start_s: (frames,) non-decreasing, not before the last start of the previous call.
        candidate: (frames, gateways) bool, the frame asks gateway g for a path (audible, not
        arriving during TX).
        """
        start_s = np.asarray(start_s, dtype=np.float64)
        airtime_s = np.asarray(airtime_s, dtype=np.float64)
        n = start_s.shape[0]
        if candidate.shape != (n, self.n_gateways):
            raise ValueError(f"candidate has shape {candidate.shape}, expected ({n}, {self.n_gateways})")
        if n == 0:
            return np.zeros((0, self.n_gateways), dtype=bool)
        if start_s[0] < self._last_start or (n > 1 and (np.diff(start_s) < 0).any()):
            raise ValueError("frames must be fed to the allocator in start order")
        end_s = start_s + airtime_s
        ticks = np.rint(airtime_s * TICKS_PER_S).astype(np.int64)
        last = start_s[-1]
        if self.paths is not None and self.n_gateways and _native() is not None:
            # the same sequential allocation in C (busy ticks: the same integer sums)
            locked, held = native.allocate(start_s, end_s, ticks, candidate, self.paths, self._held,
                                           self._busy_ticks, self.frames_locked)
            for g in np.flatnonzero(candidate.any(axis=0)).tolist():
                self._held[g] = held[g]
            self._last_start = last
            return locked
        locked = np.zeros((n, self.n_gateways), dtype=bool)
        for g in range(self.n_gateways):
            idx = np.flatnonzero(candidate[:, g])
            if not idx.size:
                continue
            s, e = start_s[idx], end_s[idx]
            if self.paths is None:
                lk = np.ones(idx.size, dtype=bool)
            else:
                lk = self._allocate_gateway(g, s, e)
            locked[idx[lk], g] = True
            self._busy_ticks[g] += ticks[idx[lk]].sum()
            self.frames_locked[g] += int(lk.sum())
            if self.paths is not None:
                ends = np.concatenate([self._held[g], e[lk]])
                self._held[g] = np.sort(ends[ends > last])
        self._last_start = last
        return locked

    def arrive_native(self, frames: Frames, node_rx_power_dbm: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """`arrive` and `allocate` in one C pass for frames no gateway transmission meets: (locked bits as
        `Arrival.locked`, rank per frame: -1 locked somewhere and audible nowhere else it could not lock, 2
        demodulators busy somewhere, 0 below sensitivity), or None where the kernels are not used."""
        if self.paths is None or not self.n_gateways or _native() is None:
            return None
        start_s = frames.start_s
        n = start_s.shape[0]
        if start_s[0] < self._last_start or (n > 1 and (np.diff(start_s) < 0).any()):
            raise ValueError("frames must be fed to the allocator in start order")
        ticks = np.rint(frames.airtime_s * TICKS_PER_S).astype(np.int64)
        locked, rank, held = native.arrive(start_s, frames.end_s, ticks, frames.node, frames.sensitivity_dbm,
                                           frames.tx_power_offset_db, np.asarray(node_rx_power_dbm, dtype=np.float64),
                                           self.paths, self._held, self._busy_ticks, self.frames_locked)
        self._held = held
        self._last_start = start_s[-1]
        return locked, rank

    def _allocate_gateway(self, g: int, s: np.ndarray, e: np.ndarray) -> np.ndarray:
        paths = self.paths
        m = s.size
        held = self._held[g]
        # upper bound of the paths held at each start: held from earlier calls plus every earlier
        # candidate still on air (all of them, as if none had been turned away)
        count = (held.size - np.searchsorted(held, s, side="right")) + np.arange(m) \
            - np.searchsorted(np.sort(e), s, side="right")
        lk = np.ones(m, dtype=bool)
        congested = np.flatnonzero(count >= paths)
        if not congested.size:
            return lk
        # sequential through congested stretches; a stretch ends at a frame that finds fewer than
        # `paths` candidates on air and no turned-away frame still on air (from there the bound is exact)
        # (or at one that certainly gets a path when the next congested frame is far: the held paths
        # are then rebuilt there from the frames that locked one)
        cummax_e = np.maximum.accumulate(e)
        s_l, e_l = s.tolist(), e.tolist()
        congested_l = congested.tolist()
        nxt = np.r_[congested, m][np.searchsorted(congested, np.arange(m))]
        leave = ((count < paths) & (nxt - np.arange(m) > _REBUILD_GAP)).tolist()
        count_ok = (count < paths).tolist()
        ci = 0
        while ci < len(congested_l):
            k = congested_l[ci]
            sk = s_l[k]
            j0 = int(np.searchsorted(cummax_e[:k], sk, side="right"))  # first earlier frame that may still be on air
            w = np.arange(j0, k)
            w = w[(e[j0:k] > sk) & lk[j0:k]]
            heap = held[held > sk].tolist() + e[w].tolist()
            heapq.heapify(heap)
            max_dropped_end = -math.inf
            q = k
            while q < m:
                sq = s_l[q]
                if count_ok[q] and (leave[q] or max_dropped_end <= sq):
                    break
                while heap and heap[0] <= sq:
                    heapq.heappop(heap)
                if len(heap) < paths:
                    heapq.heappush(heap, e_l[q])
                else:
                    lk[q] = False
                    if e_l[q] > max_dropped_end:
                        max_dropped_end = e_l[q]
                q += 1
            ci = bisect_left(congested_l, q, ci)
        return lk


def arrive(frames: Frames, node_rx_power_dbm: np.ndarray, allocator: PathAllocator, gateway_tx=None) -> Arrival:
    """Feed frames (in start order, after those of earlier calls) to the allocator, in blocks.

    Per frame and gateway: below sensitivity, arriving during TX, no free path, or a path locked.
    """
    n = len(frames)
    n_gw = allocator.n_gateways
    tx = GatewayTx.of(gateway_tx, n_gw)
    out = Arrival.empty(n, n_gw)
    if n_gw == 0 or n == 0:
        return out
    if not tx.any:  # no gateway transmits: one C pass per frame, without (frames, gateways) matrices
        fused = allocator.arrive_native(frames, node_rx_power_dbm)
        if fused is not None:
            locked, rank = fused
            return Arrival(locked, _RANK_TO_FATE[np.maximum(rank, 0)])
    block = max(1, BLOCK_ELEMENTS // n_gw)
    for lo in range(0, n, block):
        hi = min(lo + block, n)
        sl = slice(lo, hi)
        audible = frames.rx_power_dbm(node_rx_power_dbm, sl) >= frames.sensitivity_dbm[sl, None]
        if tx.any:
            during = tx.arriving_during(frames.start_s[sl])
            candidate = audible & ~during
        else:
            during = None
            candidate = audible
        locked = allocator.allocate(frames.start_s[sl], frames.airtime_s[sl], candidate)
        rank = np.where(audible, _DB, _BS).astype(np.int8)
        if during is not None:
            rank[audible & during] = _GT
        rank[locked] = -1
        out.fate[sl] = _RANK_TO_FATE[np.maximum(rank.max(axis=1), 0)]
        out.locked[sl] = np.packbits(locked, axis=1, bitorder="little")
    return out


@dataclass
class Decoded:
    status: np.ndarray  # int8 Fate per target
    gateway: np.ndarray  # int16 per target: strongest decoding gateway, -1 if none
    gateways_decoding: np.ndarray  # int16 per target


def _energy_sweep(s, e, grp, slot, power_mw, maxend, first_of, tp, lo, hi, rows, slots, n_gw):
    """(rows * slots, n_gw) interference energy of the targets at positions tp (sorted, in [lo, hi)):
    the numpy sweep (`native.energy` is the same sums in C)."""
    n = s.shape[0]
    loc = np.full(hi - lo, -1, dtype=np.int64)
    loc[tp - lo] = np.arange(rows)
    energy = np.zeros((rows * slots, n_gw))
    # earlier frames of the first group that may still be on air when the block starts
    gf = int(first_of[lo])
    lo_ext = gf + int(np.searchsorted(maxend[gf:lo], s[lo], side="right"))
    i = np.arange(lo_ext, hi)
    d = 1
    while i.size:
        # pairs (i, i + d) in one group that overlap; once i + d starts after i ends, so do all
        # later frames, so i leaves the sweep; within one d every i (and every j) appears once,
        # so plain fancy-index accumulation is exact
        i = i[i + d < n]
        j = i + d
        ok = (grp[j] == grp[i]) & (s[j] < e[i])
        i, j = i[ok], j[ok]
        if not i.size:
            break
        ov = np.minimum(e[i], e[j]) - s[j]
        ri = np.full(i.size, -1, dtype=np.int64)
        in_i = i >= lo
        ri[in_i] = loc[i[in_i] - lo]
        m = ri >= 0
        if m.any():
            jm = j[m]
            energy[ri[m] * slots + slot[jm]] += power_mw(jm) * ov[m, None]
        rj = np.full(j.size, -1, dtype=np.int64)
        before_hi = j < hi
        in_j = before_hi & (j >= lo)
        rj[in_j] = loc[j[in_j] - lo]
        m = rj >= 0
        if m.any():
            im = i[m]
            energy[rj[m] * slots + slot[im]] += power_mw(im) * ov[m, None]
        d += 1
        i = i[in_i | before_hi]  # frames before the block whose successors left it contribute nothing more
    return energy


def _group_start_order(start_s: np.ndarray, group: np.ndarray) -> np.ndarray:
    """`np.lexsort((start_s, group))` (by group, then start, then index), faster: a stable sort by
    start (skipped when the starts are sorted already) then a stable radix sort by a 16-bit group."""
    n = start_s.shape[0]
    if n < 2 or group.min() < 0 or group.max() > 0xFFFF:
        return np.lexsort((start_s, group))
    g16 = group.astype(np.uint16)
    if (start_s[1:] >= start_s[:-1]).all():
        return np.argsort(g16, kind="stable")
    by_start = np.argsort(start_s, kind="stable")
    return by_start[np.argsort(g16[by_start], kind="stable")]


def decode(context: Frames, arrival: Arrival, node_rx_power_dbm: np.ndarray, model: ReceptionModel,
           targets: np.ndarray | None = None, gateway_tx=None, node_rx_power_mw: np.ndarray | None = None) -> Decoded:
    """Verdict on the target frames: interference against the context, half duplex, delivery.

    context: every frame that may overlap a target (targets included).
    targets: indices into `context` (None: all of it); `arrival` is aligned with `targets`.
    """
    n = len(context)
    n_gw = node_rx_power_dbm.shape[1] if node_rx_power_dbm.ndim == 2 else 0
    tgt = np.arange(n) if targets is None else np.asarray(targets, dtype=np.int64)
    nt = tgt.shape[0]
    status = np.empty(nt, dtype=np.int8)
    best = np.full(nt, -1, dtype=np.int16)
    count = np.zeros(nt, dtype=np.int16)
    if nt == 0:
        return Decoded(status, best, count)
    tx = GatewayTx.of(gateway_tx, n_gw)
    inter = model.inter_sf != "orthogonal"
    sf = context.sf.astype(np.int64)
    if inter and ((sf < 7) | (sf > 12)).any():
        raise ValueError("inter-SF interference needs spreading factors 7..12")
    sfi = np.clip(sf - 7, 0, 5)
    group = context.channel.astype(np.int64)
    if not inter:
        group = (group << 8) | (sf & 0xFF)
    order = _group_start_order(context.start_s, group)
    s = context.start_s[order]
    e = s + context.airtime_s[order]
    grp = group[order]
    slot = sfi[order] if inter else np.zeros(n, dtype=np.int64)
    node_s = context.node[order]
    # mW, per node and gateway (a caller resolving many batches passes it once computed)
    lin = 10.0 ** (node_rx_power_dbm / 10.0) if node_rx_power_mw is None else node_rx_power_mw
    off_s = None if context.tx_power_offset_db is None else 10.0 ** (context.tx_power_offset_db[order] / 10.0)

    def power_mw(x):
        p = lin[node_s[x]]
        return p if off_s is None else p * off_s[x, None]

    # first position of each frame's group, and the running max of end times within each group
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = grp[1:] != grp[:-1]
    group_first = np.flatnonzero(new_group)
    maxend = np.empty(n)
    for a, b in zip(group_first, np.r_[group_first[1:], n]):
        maxend[a:b] = np.maximum.accumulate(e[a:b])

    k_lin = model.sir_factors()  # destroyed by SF s when E_s * k > S
    k_inter = k_lin.copy()
    np.fill_diagonal(k_inter, 0.0)
    slots = 6 if inter else 1
    co_mode = model.capture_rule  # the three capture rules below

    if targets is None:  # every frame, in sweep order
        torder, tpos_sorted = order, np.arange(n)
    else:
        pos_of = np.empty(n, dtype=np.int64)
        pos_of[order] = np.arange(n)
        tpos = pos_of[tgt]
        torder = np.argsort(tpos, kind="stable")
        tpos_sorted = tpos[torder]
    # the verdict in C (the same sums and comparisons); a target repeated in `targets` gets its
    # energy in one of its rows only in the numpy sweep, so that case stays in numpy
    kernels = _native() if n_gw and (targets is None or nt < 2 or (np.diff(tpos_sorted) > 0).all()) else None
    if kernels is None:
        first_of = np.repeat(group_first, np.diff(np.r_[group_first, n]))
    block = max(1, BLOCK_ELEMENTS // max(n_gw * slots, 1))
    for a in range(0, nt, block):
        b = min(a + block, nt)
        tp = tpos_sorted[a:b]
        rows = b - a
        lo, hi = int(tp[0]), int(tp[-1]) + 1
        sel = torder[a:b]
        if kernels is not None:  # the same verdict, in C
            cut = tx.overlapping(s[tp], e[tp]) if tx.any else None
            status[sel], best[sel], count[sel] = native.verdict(
                s, e, grp, slot, node_s, lin, off_s, maxend, tp, slots, n_gw, co_mode, k_lin[0, 0],
                k_inter if inter else None, arrival.locked[sel], cut, _FATE_TO_RANK[arrival.fate[sel]],
                node_rx_power_dbm, _RANK_TO_FATE, Fate.DELIVERED)
            continue
        energy = _energy_sweep(s, e, grp, slot, power_mw, maxend, first_of, tp, lo, hi, rows, slots, n_gw)
        signal = power_mw(tp) * (e[tp] - s[tp])[:, None]  # (rows, gateways)
        energy = energy.reshape(rows, slots, n_gw)
        own = slot[tp]
        e_co = energy[np.arange(rows), own]
        if co_mode == 0:
            destroyed = e_co > 0
        elif co_mode == 1:
            destroyed = e_co * k_lin[own, own][:, None] > signal
        else:  # SIR must be > 0
            destroyed = (e_co >= signal) & (e_co > 0)
        if inter:
            destroyed |= (energy * k_inter[own][:, :, None] > signal[:, None, :]).any(axis=1)

        locked = arrival.locked_at(n_gw, sel)
        if tx.any:
            cut = tx.overlapping(s[tp], e[tp])
        else:
            cut = np.zeros_like(locked)
        decoded = locked & ~cut & ~destroyed
        any_decoded = decoded.any(axis=1)
        rank = _FATE_TO_RANK[arrival.fate[sel]]
        if n_gw:
            gw_rank = np.where(locked, np.where(cut, _GT, _COL), -1).max(axis=1)
            rank = np.maximum(rank, gw_rank)
        ti = tgt[sel]
        status[sel] = np.where(any_decoded, Fate.DELIVERED, _RANK_TO_FATE[rank])
        if n_gw:
            p_dbm = node_rx_power_dbm[context.node[ti]]
            best[sel] = np.where(any_decoded, np.argmax(np.where(decoded, p_dbm, -np.inf), axis=1), -1)
            count[sel] = decoded.sum(axis=1)
    return Decoded(status, best, count)


def resolve_receptions(
    start_s: np.ndarray,
    airtime_s: np.ndarray,
    channel: np.ndarray,
    sf: np.ndarray,
    node: np.ndarray,
    node_rx_power_dbm: np.ndarray,
    sensitivity_dbm: np.ndarray,
    model: ReceptionModel = ReceptionModel(),
    *,
    tx_power_offset_db: np.ndarray | None = None,
    gateway_tx: Sequence[tuple[np.ndarray, np.ndarray]] | GatewayTx | None = None,
) -> Reception:
    """Resolve every frame at every gateway (one shot: `arrive` then `decode`).

    node: (n_frames,) row of `node_rx_power_dbm` that holds each frame's received power.
    node_rx_power_dbm: (n_nodes, n_gateways) received power of each node at each gateway (dBm).
    sensitivity_dbm: (n_frames,) gateway sensitivity for each frame's spreading factor.
    tx_power_offset_db: (n_frames,) optional, added to the frame's node row.
    gateway_tx: optional, per gateway (start_s, end_s) arrays of its transmit intervals.
    """
    frames = Frames(start_s, airtime_s, channel, sf, node, sensitivity_dbm, tx_power_offset_db)
    node_rx_power_dbm = np.asarray(node_rx_power_dbm, dtype=np.float64)
    n_gw = node_rx_power_dbm.shape[1] if node_rx_power_dbm.ndim == 2 else 0
    tx = GatewayTx.of(gateway_tx, n_gw)
    allocator = PathAllocator(n_gw, model.demodulator_paths)
    n = len(frames)
    if n > 1 and not (frames.start_s[1:] >= frames.start_s[:-1]).all():
        # in start order (ties in input order) both steps see the frames in the same order as given
        # unsorted, so the results (scattered back below) are the same
        order = np.argsort(frames.start_s, kind="stable")
        frames = frames.take(order)
    else:
        order = None
    arrival = arrive(frames, node_rx_power_dbm, allocator, tx)
    dec = decode(frames, arrival, node_rx_power_dbm, model, gateway_tx=tx)
    status, gateway, decoding = dec.status, dec.gateway, dec.gateways_decoding
    if order is not None:
        status, gateway, decoding = np.empty_like(status), np.empty_like(gateway), np.empty_like(decoding)
        status[order], gateway[order], decoding[order] = dec.status, dec.gateway, dec.gateways_decoding
    return Reception(status, gateway, decoding, allocator.path_busy_s, allocator.frames_locked.copy())


__all__ = [
    "BLOCK_ELEMENTS", "CROCE_SIR_DB", "GOURSAUD_SIR_DB", "Arrival", "Decoded", "Frames", "GatewayTx",
    "PathAllocator", "Reception", "ReceptionModel", "arrive", "decode", "resolve_receptions",
]
