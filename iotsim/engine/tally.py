"""What the tables and metrics count of one policy's run, per node: frames by fate, attempts, bytes and
airtime on air, messages offered and delivered, cloud inferences and decisions, and the cloud's waits.

A run that keeps every frame (`run_scenario` in one pass) computes it from its arrays (`tally_of`); a
run in time chunks (`iotsim.engine.chunked`) adds each chunk's frames and messages to it as they are
decided (`Tally.add_frames`, `Tally.add_messages`), in an order that does not depend on the chunk
length, so the tables and metrics read the same numbers either way. Its memory grows with nodes, not
frames (the cloud's waits, one per raw window served, spill to disk in a chunked run).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field

import numpy as np

from iotsim.network.fate import NOT_OFFERED, Fate, on_air
from iotsim.policies import MessageKind

N_FATES = max(int(f) for f in Fate) + 1
OFFERED_FATES = np.array([f not in NOT_OFFERED for f in sorted(Fate, key=int)])
ON_AIR_FATES = on_air(np.arange(N_FATES, dtype=np.int8))


@dataclass
class Tally:
    """Per node (every group, in node order) of one policy's run."""

    frames: np.ndarray  # (n, N_FATES) int64: frames by fate (every frame the node's messages were split into)
    attempts_on_air: np.ndarray  # int64: transmissions of the frames that went on air
    bytes_uplinked: np.ndarray  # float64: PHY bytes on air, every attempt
    airtime_s: np.ndarray  # float64: time on air, every attempt
    messages_offered: np.ndarray  # int64: application messages (not polls) with a frame handed to the radio
    messages_delivered: np.ndarray  # int64: application messages every frame of which was delivered
    cloud_inferences: np.ndarray  # int64: raw windows delivered (each inferred in the cloud)
    positive_decisions: np.ndarray  # int64: decisions saying "event" about the node's messages
    true_positive_decisions: np.ndarray  # int64: of those, about a window that overlaps an event
    final_sf: np.ndarray  # int64: spreading factor of the last frame on air (the plan's if none)
    final_tx_power_dbm: np.ndarray  # float64: TX power of the last frame on air (configured if none)
    polls: np.ndarray  # int64: class A unicast polls of model updates (messages of kind poll)
    polls_delivered: np.ndarray  # int64: of those, the ones the link delivered
    cloud_waits: list = field(default_factory=list)  # per group: queueing before each cloud inference (s)
    node_stats: dict = field(default_factory=dict)  # per-node counters the link reports (Transmissions.node_stats)
    gateway_stats: dict = field(default_factory=dict)  # per-gateway figures (Transmissions.gateway_stats)

    @classmethod
    def empty(cls, n: int, n_groups: int, sf: np.ndarray, tx_power_dbm: float) -> Tally:
        z = lambda dtype: np.zeros(n, dtype=dtype)  # noqa: E731
        return cls(np.zeros((n, N_FATES), np.int64), z(np.int64), z(np.float64), z(np.float64), z(np.int64),
                   z(np.int64), z(np.int64), z(np.int64), z(np.int64), np.asarray(sf, np.int64).copy(),
                   np.full(n, float(tx_power_dbm)), z(np.int64), z(np.int64), [WaitSpill() for _ in range(n_groups)])

    # ---- what the metrics read, per node
    def offered(self) -> np.ndarray:
        return self.frames[:, OFFERED_FATES].sum(axis=1)

    def on_air(self) -> np.ndarray:
        return self.frames[:, ON_AIR_FATES].sum(axis=1)

    def count(self, fate: Fate) -> np.ndarray:
        return self.frames[:, int(fate)]

    # ---- a chunked run adds what it decided (frames and messages in the run's canonical order)
    def add_frames(self, node: np.ndarray, fate: np.ndarray, attempts: np.ndarray, phy_bytes: np.ndarray,
                   airtime_s: np.ndarray, sf: np.ndarray, tx_power_dbm: np.ndarray | None,
                   on_air_s: np.ndarray | None = None) -> None:
        """Frames whose fate is final, in time order per node (`airtime_s`: one attempt's; `on_air_s`: all attempts'
        where a retry resends only part of a frame, as Transmissions.on_air_s)."""
        n = self.frames.shape[0]
        self.frames += np.bincount(node * N_FATES + fate, minlength=n * N_FATES).reshape(n, N_FATES)
        sent = on_air(fate)
        sn = node[sent]
        self.attempts_on_air += np.bincount(sn, weights=attempts[sent], minlength=n).astype(np.int64)
        byte_attempts, total_airtime_s = attempts, airtime_s * attempts
        if on_air_s is not None:  # as tally_of: the bytes in proportion to the time on air
            with np.errstate(divide="ignore", invalid="ignore"):
                byte_attempts = np.where(airtime_s > 0, on_air_s / airtime_s, attempts)
            total_airtime_s = on_air_s
        # float sums one frame at a time, in order, onto the running totals: the same additions as one
        # bincount over the whole run's frames of a node (in its time order)
        np.add.at(self.bytes_uplinked, sn, (phy_bytes * byte_attempts)[sent])
        np.add.at(self.airtime_s, sn, total_airtime_s[sent])
        if sn.size:
            last = np.flatnonzero(np.r_[sn[1:] != sn[:-1], True]) if _sorted(sn) else _last_of_each(sn)
            self.final_sf[sn[last]] = sf[sent][last]
            if tx_power_dbm is not None:
                self.final_tx_power_dbm[sn[last]] = tx_power_dbm[sent][last]

    def add_messages(self, node: np.ndarray, kind: np.ndarray, offered: np.ndarray, delivered: np.ndarray,
                     positive: np.ndarray, true_positive: np.ndarray) -> None:
        n = self.frames.shape[0]
        app = kind != MessageKind.POLL
        count = lambda mask: np.bincount(node[mask], minlength=n)  # noqa: E731
        self.messages_offered += count(app & offered)
        self.messages_delivered += count(app & delivered)
        self.cloud_inferences += count(app & (kind == MessageKind.RAW) & delivered)
        self.positive_decisions += count(app & positive)
        self.true_positive_decisions += count(app & positive & true_positive)
        self.polls += count(~app)
        self.polls_delivered += count(~app & delivered)


def _sorted(a: np.ndarray) -> bool:
    return bool((a[1:] >= a[:-1]).all())


def _last_of_each(node: np.ndarray) -> np.ndarray:
    """Index of the last occurrence of each value of `node` (any order)."""
    rev = node[::-1]
    _, first_in_rev = np.unique(rev, return_index=True)
    return node.shape[0] - 1 - first_in_rev


class WaitSpill:
    """A sample of floats too large to keep in memory (a year of cloud waits): appended to a temporary file,
    read back in blocks for its percentiles, which equal numpy's (linear interpolation) on the whole sample."""

    BLOCK = 1 << 22

    def __init__(self):
        self._file = None
        self.n = 0

    def append(self, values: np.ndarray) -> None:
        values = np.ascontiguousarray(values, dtype=np.float64)
        values = values[np.isfinite(values)]
        if not values.size:
            return
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="iotsim-waits-")
        self._file.write(values.tobytes())
        self.n += values.size

    def _blocks(self):
        self._file.seek(0)
        while True:
            raw = self._file.read(self.BLOCK * 8)
            if not raw:
                return
            yield np.frombuffer(raw, dtype=np.float64)

    def _kth(self, k: int) -> float:
        """The k-th smallest value (0-based), by narrowing a value range over passes through the file."""
        lo, hi = -np.inf, np.inf  # the answer is in [lo, hi]; `below`: values < lo
        below = 0
        while True:
            inside = []
            count = 0
            vmin, vmax = np.inf, -np.inf
            for b in self._blocks():
                sel = b[(b >= lo) & (b <= hi)]
                count += sel.size
                if sel.size:
                    vmin, vmax = min(vmin, sel.min()), max(vmax, sel.max())
                    if count <= self.BLOCK:
                        inside.append(sel)
            if count <= self.BLOCK:
                return float(np.sort(np.concatenate(inside))[k - below])
            if vmin == vmax:
                return float(vmin)
            edges = np.linspace(vmin, vmax, 1025)
            hist = np.zeros(1024, dtype=np.int64)
            for b in self._blocks():
                sel = b[(b >= vmin) & (b <= vmax)]
                hist += np.histogram(sel, bins=edges)[0]
            cum = np.cumsum(hist)
            j = int(np.searchsorted(cum, k - below, side="right"))
            below += int(cum[j - 1]) if j else 0
            lo, hi = edges[j], edges[j + 1]
            if j < 1023:  # numpy's bins are half-open but the last: keep [lo, hi) apart from the last bin
                hi = np.nextafter(hi, -np.inf)

    def percentile(self, q: float) -> float:
        """numpy.percentile(sample, q) of the finite values (NaN if none)."""
        if self.n == 0:
            return float("nan")
        if self.n <= self.BLOCK:
            return float(np.percentile(np.concatenate(list(self._blocks())), q))
        # numpy's linear method, the same float operations: the order statistics around (n - 1) q / 100, lerped
        virtual = np.float64(self.n - 1) * np.true_divide(np.float64(q), 100)
        k = int(np.floor(virtual))
        gamma = virtual - np.floor(virtual)
        a = np.float64(self._kth(k))
        b = np.float64(self._kth(min(k + 1, self.n - 1)))
        diff = b - a
        return float(b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def tally_of(plans, messages, tx, message_delivered: np.ndarray, decision_positive: np.ndarray,
             cloud_waits_by_group: list[np.ndarray], n: int, tx_power_dbm: float) -> Tally:
    """The tally of a run that kept its arrays (every frame and message of the policy)."""
    sf = np.concatenate([p.sf for p in plans])
    t = Tally.empty(n, len(plans), sf, tx_power_dbm)
    t.cloud_waits = list(cloud_waits_by_group)
    t.node_stats, t.gateway_stats = tx.node_stats, tx.gateway_stats
    fate = np.asarray(tx.fate, dtype=np.int64)
    t.frames = np.bincount(tx.node * N_FATES + fate, minlength=n * N_FATES).reshape(n, N_FATES)
    sent = on_air(tx.fate)
    attempts = np.ones(len(tx), np.int64) if tx.attempts is None else tx.attempts
    t.attempts_on_air = np.bincount(tx.node[sent], weights=attempts[sent], minlength=n).astype(np.int64)
    byte_attempts = attempts
    if tx.on_air_s is not None:  # retries resend part of a frame: its bytes in proportion to its time on air
        with np.errstate(divide="ignore", invalid="ignore"):
            byte_attempts = np.where(tx.airtime_s > 0, tx.on_air_s / tx.airtime_s, attempts)
    t.bytes_uplinked = np.bincount(tx.node[sent], weights=(tx.phy_bytes * byte_attempts)[sent], minlength=n)
    t.airtime_s = np.bincount(tx.node[sent], weights=tx.total_airtime_s[sent], minlength=n)
    rows = np.flatnonzero(sent)
    if rows.size:
        last = rows[np.r_[tx.node[rows][1:] != tx.node[rows][:-1], True]]  # frames sorted by node
        t.final_sf[tx.node[last]] = tx.sf[last]
        if tx.tx_power_dbm is not None:
            t.final_tx_power_dbm[tx.node[last]] = tx.tx_power_dbm[last]
    offered = np.zeros(len(messages), dtype=bool)
    offered[tx.message[~np.isin(tx.fate, list(NOT_OFFERED))]] = True
    event_id = np.full(len(messages), -1, dtype=np.int64)
    for p in plans:
        sel = np.flatnonzero((messages.group == p.index) & (messages.window >= 0))
        event_id[sel] = p.event_id[messages.window[sel]]
    t.add_messages(messages.node, messages.kind, offered, message_delivered, decision_positive, event_id >= 0)
    return t


__all__ = ["Tally", "WaitSpill", "tally_of", "N_FATES"]
