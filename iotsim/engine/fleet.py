"""Everything about a fleet group that does not depend on the policy.

Placement, radio links and spreading factors, the window timeline, ground-truth events, and the
on-device and cloud models' verdict on every window. This is computed once per run and shared by
all policies, so the policy comparison is paired.

Windows and inference. A node's windows are back to back (or every `window_period`) from a random
phase. Windows that overlap a ground-truth event are generated fresh from the signal generator
with the event's samples marked, so partial overlap is real. Event-free windows are drawn from a
per-group pool of `simulation.background_pool` windows generated and inferred once (a Monte Carlo
sample of the workload); the false-alarm rate is therefore estimated from the pool, and its
standard error is reported. Inference runs in large batches outside the event loop.

A signal that changes during the run (`workload.phases`: from each phase's start, other generator
parameters) has a pool per phase and generates each phase's event windows from the phase's own
stream; a window belongs to the phase its first sample falls in. The first phase's pool is the
run's pool without phases (its event windows are other draws of the same signal).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from iotsim.errors import InputError
from iotsim.radio import lora, propagation
from iotsim.scenario.yaml_source import field_path
from iotsim.signals import with_params

# random streams: every draw comes from a generator keyed by (seed, stream, node id) or (seed, stream, group)
STREAM_NODE = 1
STREAM_POOL = 2
STREAM_EVENT_WINDOWS = 3
STREAM_LINK = 5
STREAM_HEARTBEATS = 6
STREAM_SHADOWING = 12  # per node: its links' shadowing to each gateway

INFERENCE_BATCH = 8192
SKIP_BLOCK = 1 << 16  # pool draws a lazy plan draws past at once
INFERENCE_BATCH_ELEMENTS = 1 << 22  # cap on samples x channels per batch (1 s audio windows: 262 per batch)


def node_rng(seed: int, stream: int, node_id: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream, node_id)))


def group_rng(seed: int, stream: int, group_index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream, 1_000_000_000 + group_index)))


@dataclass
class Verdicts:
    """What both models say about a set of windows."""

    device_positive: np.ndarray  # bool
    device_confidence: np.ndarray  # float32, confidence of the predicted class
    cloud_positive: np.ndarray  # bool
    pool_device_positive: np.ndarray | None = None  # the pool's own verdicts (false-alarm rate), where known
    wake_max: np.ndarray | None = None  # per window: the watched channel's largest and smallest sample (wake:)
    wake_min: np.ndarray | None = None

    def put(self, at, other: Verdicts, src=slice(None)) -> None:
        """Set the windows `at` to `other`'s verdicts `src` (the wake extremes too where both hold them)."""
        self.device_positive[at] = other.device_positive[src]
        self.device_confidence[at] = other.device_confidence[src]
        self.cloud_positive[at] = other.cloud_positive[src]
        if self.wake_max is not None and other.wake_max is not None:
            self.wake_max[at] = other.wake_max[src]
            self.wake_min[at] = other.wake_min[src]


@dataclass
class LazyWindows:
    """A group's windows for a run in time chunks (`iotsim.engine.chunked`): what the whole-run plan would
    hold per window, kept per node or per event instead, so that memory grows with nodes, not windows.

    Each node's pool draws come from its own generator, resumed from `pool_states` (where the whole-run
    plan starts drawing them) and advanced chunk by chunk: the same draws, in the same order."""

    pool_states: list  # per node: its generator's state before its pool draws
    pool: Verdicts  # the pool windows' verdicts (phase x pool_size + index)
    fresh: Verdicts  # the verdicts of the windows an event touches, in `WindowSet.fresh_flat` order
    fresh_event: np.ndarray  # the first event each of those windows overlaps


@dataclass
class GroupPlan:
    index: int
    name: str
    spec: object  # scenario FleetGroup
    board: object
    workload: object
    model: object
    cloud_model: object
    node_ids: np.ndarray  # global ids, int64
    positions_m: np.ndarray  # (n, 2)
    rx_power_dbm: np.ndarray  # (n, n_gateways): static link budget incl. shadowing
    sf: np.ndarray  # int64 per node
    sample_period_s: float
    window_samples: int
    window_span_s: float  # first sample to window ready
    window_period_s: float
    phase_s: np.ndarray  # first window start per node
    heartbeat_phase_s: np.ndarray  # first heartbeat per node (periodic heartbeats), independent of phase_s
    n_windows: np.ndarray  # int64 per node (windows that complete within the run)
    window_offset: np.ndarray  # int64 (n+1,), flat index of each node's first window
    verdicts: Verdicts  # per flat window
    windows: "WindowSet"  # how the windows are generated: another model's verdicts on the same windows
    event_id: np.ndarray  # int64 per flat window: first overlapping event, -1 if none
    event_node: np.ndarray  # local node index per event
    event_onset_s: np.ndarray
    event_end_s: np.ndarray
    inference_time_s: float  # per window on the node's MCU
    inference_cost_source: str
    raw_window_bytes: int
    pool_false_positive_rate: float
    pool_false_positive_se: float
    pool_size: int
    fresh_windows: int
    triggered: np.ndarray | None = None  # per flat window: it wakes the node (workload.wake); None: every window
    lazy: LazyWindows | None = None  # a plan for a run in time chunks: its windows are drawn chunk by chunk
    first_window: np.ndarray | None = None  # a chunk's view: per node, the run's index of its first window here
    heartbeat_span_s: tuple[float, float] | None = None  # a chunk's view: its heartbeats are those in [t0, t1)
    seed: int = 0
    duration_s: float = 0.0
    warnings: list[str] = field(default_factory=list)
    # model updates (iotsim.engine.updates.updated_plans): per update to the group, in order of start, (per node:
    # when it runs the update's model, NaN never; that model's inference time per window; where that figure comes
    # from; the model's name); and per node its mean inference time per window over the run's windows (None:
    # inference_time_s for every window)
    model_steps: tuple = ()
    node_inference_s: np.ndarray | None = None

    @property
    def n_nodes(self) -> int:
        return int(self.node_ids.shape[0])

    def inference_per_window_s(self) -> np.ndarray:
        """Per node: its mean on-device inference time per window over the run (the models it ran)."""
        return self.node_inference_s if self.node_inference_s is not None else np.full(self.n_nodes,
                                                                                        self.inference_time_s)

    def window_inference_s(self, flat_index: np.ndarray) -> np.ndarray | float:
        """Per window: the on-device inference time of the model its node runs when the window ends (a float
        when every window runs the group's model)."""
        if not self.model_steps:
            return self.inference_time_s
        node = np.searchsorted(self.window_offset, flat_index, side="right") - 1
        end = self.window_end_s(flat_index)
        t = np.full(end.shape, self.inference_time_s)
        for activated_s, inference_s, *_ in self.model_steps:  # a later update's model replaces an earlier one's
            t[end >= activated_s[node]] = inference_s  # NaN: never
        return t

    def windows_ending_before(self, t_s) -> np.ndarray:
        """Per node: how many of its windows end before t_s (a time, or one per node; NaN or inf: all)."""
        end = lambda k: self.phase_s + k * self.window_period_s + self.window_span_s  # noqa: E731
        t = np.broadcast_to(np.asarray(t_s, dtype=np.float64), self.phase_s.shape)
        t = np.where(np.isfinite(t), t, np.inf)
        with np.errstate(invalid="ignore"):
            k = np.ceil((t - self.phase_s - self.window_span_s) / self.window_period_s)
        k = np.where(np.isfinite(k), np.clip(k, 0, self.n_windows), self.n_windows).astype(np.int64)
        for _ in range(4):  # settle float rounding: end(k - 1) < t <= end(k)
            up = (k < self.n_windows) & (end(k) < t)
            down = (k > 0) & (end(k - 1) >= t)
            if not (up.any() or down.any()):
                break
            k = k + up - down
        return k

    def heartbeats(self) -> tuple[np.ndarray, np.ndarray]:
        """(local node, time) of every heartbeat within the run, sorted by node then time.

        Periodic: every `heartbeat` from the node's own heartbeat phase. Poisson: a Poisson process of
        mean interval `heartbeat` per node (`poisson_arrivals`: keyed by node and block of time, so that a run in
        chunks draws each chunk's from its blocks alone).
        """
        period = self.spec.heartbeat
        duration = self.duration_s
        lo_s, hi_s = (0.0, duration) if self.heartbeat_span_s is None else self.heartbeat_span_s
        if self.spec.heartbeat_arrivals == "poisson":
            salt = int(group_rng(self.seed, STREAM_HEARTBEATS, self.index).integers(0, 2**63))
            return poisson_arrivals(salt, self.n_nodes, period, lo_s, min(hi_s, duration))
        j0 = np.maximum(np.floor((lo_s - self.heartbeat_phase_s) / period).astype(np.int64) - 1, 0)
        counts = np.maximum(np.ceil((min(hi_s, duration) - self.heartbeat_phase_s) / period).astype(np.int64) - j0, 0)
        node = np.repeat(np.arange(self.n_nodes), counts)
        first = np.zeros(self.n_nodes + 1, dtype=np.int64)
        np.cumsum(counts, out=first[1:])
        j = np.arange(node.shape[0]) - first[node] + j0[node]
        t = self.heartbeat_phase_s[node] + j * period
        keep = (t < duration) & (t >= lo_s) & (t < hi_s)
        return node[keep], t[keep]

    def window_end_s(self, flat_index: np.ndarray) -> np.ndarray:
        """Time each window's data is complete (ready for inference or sending)."""
        node = np.searchsorted(self.window_offset, flat_index, side="right") - 1
        k = flat_index - self.window_offset[node]
        if self.first_window is not None:
            k = k + self.first_window[node]
        return self.phase_s[node] + k * self.window_period_s + self.window_span_s


POISSON_BLOCK_ARRIVALS = 8.0
"""Mean arrivals per block of a keyed Poisson process (`poisson_arrivals`)."""


def poisson_arrivals(salt: int, n_nodes: int, mean_interval_s: float, lo_s: float,
                     hi_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(node, time) of a Poisson process of mean interval `mean_interval_s` per node within [lo_s, hi_s), sorted by
    node then time. Time is cut into blocks of POISSON_BLOCK_ARRIVALS mean intervals from 0; each (node, block)
    draws its count (Poisson, by inversion) and its times (uniform in the block) from hashes of the salt, the node,
    the block and the arrival's number (iotsim.link.draws.keyed_uniforms): counts then uniform times is a Poisson
    process, and any span draws the same arrivals, so the chunks of a run together give the whole run's."""
    from iotsim.link.draws import keyed_uniforms

    block_s = POISSON_BLOCK_ARRIVALS * mean_interval_s
    if not hi_s > lo_s or n_nodes == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    blocks = np.arange(int(np.floor(lo_s / block_s)), int(np.ceil(hi_s / block_s)), dtype=np.int64)
    node = np.repeat(np.arange(n_nodes, dtype=np.int64), blocks.size)
    block = np.tile(blocks, n_nodes)
    k = np.arange(4 * int(POISSON_BLOCK_ARRIVALS) + 40)  # the pmf beyond is below 1e-17
    log_pmf = k * np.log(POISSON_BLOCK_ARRIVALS) - POISSON_BLOCK_ARRIVALS - np.cumsum(np.log(np.maximum(k, 1)))
    cdf = np.cumsum(np.exp(log_pmf))
    count = np.minimum(np.searchsorted(cdf, keyed_uniforms(salt, node, block, np.full(node.size, -1)), side="right"),
                       k[-1])
    node, block = np.repeat(node, count), np.repeat(block, count)
    j = np.arange(node.size) - np.repeat(np.cumsum(count) - count, count)  # the arrival's number in its block
    t = (block + keyed_uniforms(salt, node, block, j)) * block_s
    keep = (t >= lo_s) & (t < hi_s)
    node, t = node[keep], t[keep]
    order = np.lexsort((t, node))
    return node[order], t[order]


def woken(verdicts: Verdicts, wake) -> np.ndarray:
    """Per window: whether its watched channel crossed the threshold (`workload.wake`), from the verdicts' wake
    extremes, which it then drops (nothing else reads them)."""
    triggered = np.zeros(verdicts.wake_max.shape[0], dtype=bool)
    if wake.above is not None:
        triggered |= verdicts.wake_max > wake.above
    if wake.below is not None:
        triggered |= verdicts.wake_min < wake.below
    verdicts.wake_max = verdicts.wake_min = None
    return triggered


def _predict(model, cloud_model, windows: np.ndarray) -> Verdicts:
    """Both models' verdicts (cloud_model None: the cloud's are left False)."""
    cls, conf = model.predict(windows)
    if cloud_model is None:
        cloud = np.zeros(cls.shape, dtype=bool)
    else:
        cloud_cls, _ = cloud_model.predict(windows)
        cloud = cloud_cls == cloud_model.positive_class
    return Verdicts(
        device_positive=(cls == model.positive_class),
        device_confidence=conf.astype(np.float32),
        cloud_positive=cloud,
    )


def _concat(parts: list[Verdicts]) -> Verdicts:
    if not parts:
        return Verdicts(np.zeros(0, bool), np.zeros(0, np.float32), np.zeros(0, bool))
    wake = parts[0].wake_max is not None
    return Verdicts(
        np.concatenate([p.device_positive for p in parts]),
        np.concatenate([p.device_confidence for p in parts]),
        np.concatenate([p.cloud_positive for p in parts]),
        wake_max=np.concatenate([p.wake_max for p in parts]) if wake else None,
        wake_min=np.concatenate([p.wake_min for p in parts]) if wake else None,
    )


def _batch(workload, masks: np.ndarray) -> int:
    """Windows generated per call (the generator's draws depend on it: every use of a stream batches alike)."""
    per_window = max(1, masks.shape[1] * workload.n_channels)
    return max(16, min(INFERENCE_BATCH, INFERENCE_BATCH_ELEMENTS // per_window))


def _infer_generated(workload, model, cloud_model, rng, masks: np.ndarray, progress=None,
                     wake_channel: int | None = None) -> Verdicts:
    parts = []
    batch = _batch(workload, masks)
    for lo in range(0, masks.shape[0], batch):
        windows = workload.generate(rng, masks[lo : lo + batch])
        v = _predict(model, cloud_model, windows)
        if wake_channel is not None:
            v.wake_max = windows[:, :, wake_channel].max(axis=1)
            v.wake_min = windows[:, :, wake_channel].min(axis=1)
        parts.append(v)
        if progress:
            progress(min(lo + batch, masks.shape[0]), masks.shape[0])
    return _concat(parts)


def phase_rng(seed: int, stream: int, group_index: int, phase: int) -> np.random.Generator:
    """A group's stream for the windows of one phase of its signal (phase 0: the group's own stream)."""
    if phase == 0:
        return group_rng(seed, stream, group_index)
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream, 1_000_000_000 + group_index, phase)))


def _generate_at(workload, rng, masks: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Windows number `index` of the sequence `workload` generates from `rng` for `masks` (batched as always)."""
    out = np.zeros((index.size, masks.shape[1], workload.n_channels), dtype=np.float32)
    if not index.size:
        return out
    batch = _batch(workload, masks)
    for lo in range(0, int(index.max()) + 1, batch):
        windows = workload.generate(rng, masks[lo:lo + batch])
        here = (index >= lo) & (index < lo + batch)
        out[here] = windows[index[here] - lo]
    return out


@dataclass
class WindowSet:
    """A group's windows as generated: per phase of the signal (`workload.phases`; one phase when it does not
    change), a pool of event-free windows the phase's windows draw from, and fresh windows for those an event
    touches, each from its own stream, so any model sees the same windows."""

    workloads: list  # the signal's generator in each phase (phase 0: from the start of the run)
    seed: int
    group_index: int
    pool_size: int  # per phase
    window_samples: int
    fresh_masks_packed: np.ndarray | None  # (fresh windows, samples) packed 8 to a byte: where the event is;
    # None once the plan no longer needs them (no update runs another model on the group)
    pool_index: np.ndarray  # per flat window: its pool window (phase x pool_size + index in the phase's pool)
    fresh_flat: np.ndarray  # flat index of each fresh window
    fresh_phase: np.ndarray  # the phase of each fresh window
    phase_starts_s: np.ndarray  # when each phase begins (0 for the first)

    def phase_at(self, t_s: float) -> int:
        """The phase of the signal at time t_s."""
        return int(np.searchsorted(self.phase_starts_s, t_s, side="right") - 1)

    @staticmethod
    def pack(masks: np.ndarray) -> np.ndarray:
        return np.packbits(masks, axis=1)

    def _fresh_masks(self, fresh_masks: np.ndarray | None) -> np.ndarray:
        if fresh_masks is not None:
            return fresh_masks
        if self.fresh_masks_packed is None:
            raise ValueError("this group's windows were not kept: no update runs another model on it")
        return np.unpackbits(self.fresh_masks_packed, axis=1, count=self.window_samples).astype(bool)

    def pool_verdicts(self, model, cloud_model, wake_channel: int | None = None) -> Verdicts:
        """The verdicts on each phase's pool (phase x pool_size + index in the phase's pool)."""
        pool_masks = np.zeros((self.pool_size, self.window_samples), dtype=bool)
        return _concat([_infer_generated(wl, model, cloud_model, phase_rng(self.seed, STREAM_POOL, self.group_index, k),
                                         pool_masks, wake_channel=wake_channel) for k, wl in enumerate(self.workloads)])

    def fresh_verdicts(self, model, cloud_model, fresh_masks: np.ndarray | None = None, progress=None,
                       wake_channel: int | None = None) -> Verdicts:
        """The verdicts on the windows an event touches, in `fresh_flat` order."""
        fresh_masks = self._fresh_masks(fresh_masks)
        total, done = fresh_masks.shape[0], 0
        wake = wake_channel is not None
        out = Verdicts(np.zeros(total, bool), np.zeros(total, np.float32), np.zeros(total, bool),
                       wake_max=np.zeros(total, np.float32) if wake else None,
                       wake_min=np.zeros(total, np.float32) if wake else None)
        for k, wl in enumerate(self.workloads):
            sel = np.flatnonzero(self.fresh_phase == k)
            if not sel.size:
                continue
            report = (lambda d, t, base=done: progress(base + d, total)) if progress else None
            fresh = _infer_generated(wl, model, cloud_model, phase_rng(self.seed, STREAM_EVENT_WINDOWS,
                                                                       self.group_index, k), fresh_masks[sel], report,
                                     wake_channel=wake_channel)
            out.put(sel, fresh)
            done += sel.size
        return out

    def verdicts(self, model, cloud_model, progress=None, fresh_masks: np.ndarray | None = None,
                 wake_channel: int | None = None) -> Verdicts:
        """Per flat window: `model`'s verdicts on the node and `cloud_model`'s (None: not run, False); with
        `wake_channel`, each window's largest and smallest sample on that channel too."""
        pool = self.pool_verdicts(model, cloud_model, wake_channel)
        fresh = self.fresh_verdicts(model, cloud_model, fresh_masks, progress, wake_channel)
        wake = wake_channel is not None
        out = Verdicts(pool.device_positive[self.pool_index], pool.device_confidence[self.pool_index],
                       pool.cloud_positive[self.pool_index],
                       wake_max=pool.wake_max[self.pool_index] if wake else None,
                       wake_min=pool.wake_min[self.pool_index] if wake else None)
        out.put(self.fresh_flat, fresh)
        out.pool_device_positive = pool.device_positive
        return out

    def samples(self, flat: np.ndarray) -> np.ndarray:
        """The generated windows (physical units, (n, samples, channels)) at flat indices `flat`: the same
        windows every model sees (regenerated from the pools' and the fresh windows' streams)."""
        flat = np.asarray(flat, dtype=np.int64)
        out = np.zeros((flat.size, self.window_samples, self.workloads[0].n_channels), dtype=np.float32)
        fresh_at = np.searchsorted(self.fresh_flat, flat)
        is_fresh = (fresh_at < self.fresh_flat.size) & (self.fresh_flat[np.minimum(fresh_at, self.fresh_flat.size - 1)]
                                                        == flat) if self.fresh_flat.size else np.zeros(flat.size, bool)
        pool_masks = np.zeros((self.pool_size, self.window_samples), dtype=bool)
        pool_at = self.pool_index[flat]
        fresh_masks = None
        for k, wl in enumerate(self.workloads):
            rows = np.flatnonzero(~is_fresh & (pool_at // max(self.pool_size, 1) == k))
            if rows.size:
                out[rows] = _generate_at(wl, phase_rng(self.seed, STREAM_POOL, self.group_index, k), pool_masks,
                                         pool_at[rows] % self.pool_size)
            rows = np.flatnonzero(is_fresh & (self.fresh_phase[np.minimum(fresh_at, max(self.fresh_flat.size - 1, 0))]
                                              == k)) if self.fresh_flat.size else np.zeros(0, np.int64)
            if rows.size:
                fresh_masks = self._fresh_masks(None) if fresh_masks is None else fresh_masks
                mine = np.flatnonzero(self.fresh_phase == k)  # the phase's fresh windows, in generation order
                out[rows] = _generate_at(wl, phase_rng(self.seed, STREAM_EVENT_WINDOWS, self.group_index, k),
                                         fresh_masks[mine], np.searchsorted(mine, fresh_at[rows]))
        return out


def plan_group(scenario, index: int, node_id_start: int, gateways_xy: np.ndarray, resources, link,
               progress=None, lazy_windows: bool = False) -> GroupPlan:
    """Build the policy-independent plan of fleet group `index` (`link`: the run's `iotsim.link.Link`).

    `lazy_windows`: for a run in time chunks, keep no per-window arrays (verdicts, event ids, pool draws):
    the plan's `lazy` holds what draws them chunk by chunk (`iotsim.engine.chunked.WindowCursor`)."""
    spec = scenario.fleet[index]
    # the group's path as `--set` names it (fleet.soil), for messages
    where = field_path({"fleet": [{"group": g.group} for g in scenario.fleet]}, ["fleet", index])
    board, workload, model, cloud_model = resources
    lw = scenario.network.lorawan
    prop = scenario.network.propagation
    seed = scenario.seed
    duration = scenario.duration
    n = spec.count
    node_ids = np.arange(node_id_start, node_id_start + n, dtype=np.int64)

    # --- timing of samples and windows
    wl = spec.workload
    window_samples = wl.window or workload.window_samples
    model_window = model.window_shape[0]
    if window_samples != model_window:
        raise InputError(
            f"workload window is {window_samples} samples but model '{model.name}' takes {model_window}",
            field=f"{where}.workload.window",
        )
    if wl.sample_period is not None:
        sample_period = wl.sample_period
    elif wl.sample_rate_hz is not None:
        sample_period = 1.0 / wl.sample_rate_hz
    else:
        sample_period = 1.0 / workload.sample_rate_hz
    if wl.params:
        workload = with_params(workload, wl.params, f"{where}.workload.params")
    if abs(sample_period * workload.sample_rate_hz - 1.0) > 1e-9:
        # generate the signal at the scenario's timing, not the workload's default
        workload = dataclasses.replace(workload, sample_rate_hz=1.0 / sample_period)
    # the signal's phases: from each phase's start its own parameters (on top of the group's)
    workloads = [workload] + [with_params(workload, ph.params, f"{where}.workload.phases.{k}.params")
                              for k, ph in enumerate(wl.phases)]
    phase_starts = np.array([0.0] + [ph.start for ph in wl.phases])
    warnings = model_fit_warnings(spec, model, workload, sample_period)
    span = window_samples * sample_period
    period = wl.window_period if wl.window_period is not None else span
    if period < span:
        raise InputError(
            f"window_period ({period:g} s) is shorter than a window ({window_samples} samples x "
            f"{sample_period:g} s = {span:g} s)",
            field=f"{where}.workload.window_period",
        )
    events_per_day = wl.events_per_day if wl.events_per_day is not None else workload.default_events_per_day
    event_duration = wl.event_duration if wl.event_duration is not None else workload.default_event_duration_s

    # --- per-node draws, in a fixed order from each node's own generator
    positions = np.empty((n, 2))
    phase = np.empty(n)
    hb_phase = np.empty(n)
    shadow = np.empty((n, gateways_xy.shape[0]))
    ev_node, ev_onset = [], []
    pool_size = scenario.simulation.background_pool
    pool_draws, pool_states, n_windows = [], [], np.zeros(n, dtype=np.int64)
    placement = spec.placement
    for i, nid in enumerate(node_ids.tolist()):
        rng = node_rng(seed, STREAM_NODE, nid)
        if placement.kind == "uniform":
            positions[i] = np.asarray(placement.origin_m) + rng.random(2) * np.asarray(placement.area_m)
        else:
            positions[i] = placement.points_m[i % len(placement.points_m)]
        phase[i] = rng.random() * period
        n_ev = rng.poisson(events_per_day * duration / 86400.0)
        if n_ev:
            ev_node.append(np.full(n_ev, i))
            ev_onset.append(np.sort(rng.random(n_ev) * duration))
        nw = max(int(np.floor((duration - span - phase[i]) / period)) + 1, 0) if duration >= span + phase[i] else 0
        n_windows[i] = nw
        if lazy_windows:  # keep where the pool draws start, then draw past them (in blocks: the same draws)
            pool_states.append(rng.bit_generator.state)
            for lo in range(0, nw, SKIP_BLOCK):
                rng.integers(0, pool_size, size=min(SKIP_BLOCK, nw - lo))
        else:
            pool_draws.append(rng.integers(0, pool_size, size=nw))
        hb_phase[i] = rng.random() * spec.heartbeat
        # from a stream of its own: the number of gateways sets how many draws it takes, and neither the node's
        # signals and events nor its links may depend on the other (or on the run's length)
        shadow[i] = node_rng(seed, STREAM_SHADOWING, nid).normal(0.0, prop.shadowing_sigma_db,
                                                                 size=gateways_xy.shape[0])
    offset = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(n_windows, out=offset[1:])
    total_windows = int(offset[-1])

    # --- radio links and spreading factor
    dist = np.hypot(positions[:, None, 0] - gateways_xy[None, :, 0], positions[:, None, 1] - gateways_xy[None, :, 1])
    d = np.maximum(dist, 1.0)
    # never below free-space loss at the carrier: fitted models undershoot it close to the antenna
    pl = np.maximum(
        propagation.path_loss_db(d, pl_d0_db=prop.pl_d0_db, d0_m=prop.d0_m, exponent=prop.exponent),
        propagation.free_space_path_loss_db(d, link.carrier_frequency_hz),
    )
    rx_power = link.tx_power_dbm - pl + shadow
    if link.technology != "lorawan":
        sf = np.zeros(n, dtype=np.int64)  # no spreading factor outside LoRa
    elif lw.sf == "auto":
        # the fastest data rate of the region that keeps the ADR margin at the strongest gateway
        sfs = link.uplink_sfs()
        best = rx_power.max(axis=1)
        sf = np.full(n, max(sfs), dtype=np.int64)
        for candidate in sorted(sfs, reverse=True):
            ok = best >= lorawan_sensitivity(candidate, lw.bandwidth_hz) + lw.adr_margin_db
            sf[ok] = candidate
    else:
        sf = np.full(n, int(lw.sf), dtype=np.int64)

    # --- ground-truth events and the windows they touch
    event_node = np.concatenate(ev_node) if ev_node else np.zeros(0, np.int64)
    event_onset = np.concatenate(ev_onset) if ev_onset else np.zeros(0)
    event_end = event_onset + event_duration
    fresh_flat, fresh_event, masks = event_windows(event_node, event_onset, event_end, phase, n_windows, offset, span,
                                                   period, sample_period, window_samples)

    # --- inference: the pool once, fresh event windows in batches
    # the event windows' masks are kept (packed) only where an update or federated rounds run another model on them
    fed = scenario.federated
    updated = any(u.groups is None or spec.group in u.groups for u in scenario.updates) or (
        fed is not None and (fed.groups is None or spec.group in fed.groups))
    # a window belongs to the phase its first sample falls in; it draws from that phase's pool
    if lazy_windows:  # the fresh windows' phases only
        fresh_node = np.searchsorted(offset, fresh_flat, side="right") - 1
        fresh_start = phase[fresh_node] + (fresh_flat - offset[fresh_node]) * period
        fresh_phase = np.searchsorted(phase_starts, fresh_start, side="right") - 1
        pool_index = None
    else:
        window_start = (np.repeat(phase, n_windows) + (np.arange(total_windows) - np.repeat(offset[:-1], n_windows))
                        * period) if total_windows else np.zeros(0)
        window_phase = np.searchsorted(phase_starts, window_start, side="right") - 1
        pool_index = (np.concatenate(pool_draws) if pool_draws else np.zeros(0, np.int64)) + window_phase * pool_size
        fresh_phase = window_phase[fresh_flat]
    windows = WindowSet(workloads, seed, index, pool_size, window_samples, WindowSet.pack(masks) if updated else None,
                        pool_index, fresh_flat, fresh_phase, phase_starts)
    wake = wl.wake
    wake_channel = None
    if wake is not None:
        names = list(workload.channels)
        if isinstance(wake.channel, str):
            if wake.channel not in names:
                raise InputError(f"workload.wake.channel {wake.channel!r} is not a channel of {wl.signal} "
                                 f"({', '.join(names)})", field=f"{where}.workload.wake.channel")
            wake_channel = names.index(wake.channel)
        elif not 0 <= wake.channel < len(names):
            raise InputError(f"workload.wake.channel {wake.channel} is out of range: {wl.signal} has {len(names)} "
                             f"channels ({', '.join(names)})", field=f"{where}.workload.wake.channel")
        else:
            wake_channel = int(wake.channel)
    lazy = None
    if lazy_windows:  # (with wake: the watched channel's extremes per pool and event window, for each chunk's views)
        pool = windows.pool_verdicts(model, cloud_model, wake_channel)
        fresh = windows.fresh_verdicts(model, cloud_model, masks, progress, wake_channel)
        lazy = LazyWindows(pool_states, pool, fresh, fresh_event)
        verdicts = Verdicts(np.zeros(0, bool), np.zeros(0, np.float32), np.zeros(0, bool), pool.device_positive)
    else:
        verdicts = windows.verdicts(model, cloud_model, progress, fresh_masks=masks, wake_channel=wake_channel)
    triggered = None
    if wake is not None and not lazy_windows:
        triggered = woken(verdicts, wake)
    if lazy_windows:
        event_id = np.zeros(0, dtype=np.int64)
    else:
        event_id = np.full(total_windows, -1, dtype=np.int64)
        event_id[fresh_flat] = fresh_event

    fp = float(verdicts.pool_device_positive.mean()) if pool_size else 0.0
    se = float(np.sqrt(fp * (1 - fp) / (pool_size * len(workloads)))) if pool_size else 0.0

    inference_time, cost_source = inference_cost(model, board.mcu)
    raw_bytes = window_samples * len(workload.channels) * workload.bytes_per_sample
    if inference_time > period:
        warnings.append(
            f"group {spec.group}: one inference takes {inference_time * 1e3:.1f} ms on {board.mcu.name}, longer than "
            f"the {period * 1e3:.1f} ms between windows: the node cannot keep up (windows would queue without bound)"
        )

    return GroupPlan(
        index=index, name=spec.group, spec=spec, board=board, workload=workload, model=model,
        cloud_model=cloud_model, node_ids=node_ids, positions_m=positions, rx_power_dbm=rx_power, sf=sf,
        sample_period_s=sample_period, window_samples=window_samples, window_span_s=span,
        window_period_s=period, phase_s=phase, heartbeat_phase_s=hb_phase, n_windows=n_windows, window_offset=offset,
        verdicts=verdicts, windows=windows, event_id=event_id, event_node=event_node, event_onset_s=event_onset,
        event_end_s=event_end, inference_time_s=inference_time, inference_cost_source=cost_source,
        raw_window_bytes=raw_bytes, pool_false_positive_rate=fp, pool_false_positive_se=se,
        pool_size=pool_size, fresh_windows=int(fresh_flat.shape[0]), triggered=triggered, lazy=lazy, seed=seed,
        duration_s=float(duration), warnings=warnings,
    )


EVENT_PAIRS_PER_BLOCK = 1 << 20  # (event, window) pairs handled at once (a year of a large fleet has millions)


def event_windows(event_node, event_onset, event_end, phase, n_windows, offset, span, period, sample_period,
                  window_samples) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The windows some event touches: (flat index, first event it overlaps, (windows, samples) mask of the
    samples inside an event), sorted by flat index. Events come by node (each node's in onset order); they are
    taken in blocks of whole nodes, whose windows no other block shares, so memory stays bounded."""
    n_events = event_node.shape[0]
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, window_samples), bool))
    if not n_events:
        return empty
    ph = phase[event_node]
    k_lo = np.maximum(np.floor((event_onset - span - ph) / period).astype(np.int64) + 1, 0)
    k_hi = np.minimum(np.ceil((event_end - ph) / period).astype(np.int64) - 1, n_windows[event_node] - 1)
    counts = np.maximum(k_hi - k_lo + 1, 0)
    # blocks of whole nodes, a new one where the running count of pairs passes a multiple of the block size
    node_end = np.flatnonzero(np.r_[event_node[1:] != event_node[:-1], True]) + 1
    block = np.cumsum(counts)[node_end - 1] // EVENT_PAIRS_PER_BLOCK
    cuts = [0] + node_end[np.flatnonzero(np.r_[block[1:] != block[:-1], True])].tolist()
    flats, events, mask_parts = [], [], []
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        c = counts[lo:hi]
        first_pair = np.zeros(hi - lo + 1, dtype=np.int64)
        np.cumsum(c, out=first_pair[1:])
        pe = np.repeat(np.arange(lo, hi), c)
        pk = k_lo[pe] + (np.arange(int(first_pair[-1])) - first_pair[pe - lo])
        pn = event_node[pe]
        flat = offset[pn] + pk
        sample_t = (phase[pn] + pk * period)[:, None] + np.arange(window_samples)[None, :] * sample_period
        pair_mask = (sample_t >= event_onset[pe][:, None]) & (sample_t < event_end[pe][:, None])
        order = np.lexsort((pe, flat))
        flat, pe, pair_mask = flat[order], pe[order], pair_mask[order]
        uniq, first = np.unique(flat, return_index=True)
        if not uniq.size:
            continue
        masks = np.logical_or.reduceat(pair_mask, first, axis=0)
        has_event = masks.any(axis=1)
        flats.append(uniq[has_event])
        events.append(pe[first][has_event])
        mask_parts.append(masks[has_event])
    if not flats:
        return empty
    return np.concatenate(flats), np.concatenate(events), np.concatenate(mask_parts)


def graph_signature(model) -> str:
    """A model's graph without its weights: every operator (type, version, options) with its tensors' shapes
    and types. Two models with the same signature make the same kernels do the same work."""
    import json

    from iotsim.tinyml.stats import model_stats

    ops = model_stats(model.path)["ops"]
    return json.dumps([[o["op"], o["version"], o["options"],
                        [None if t is None else [t["shape"], t["dtype"]] for t in o["inputs"] + o["outputs"]]]
                       for o in ops], sort_keys=True, default=str)


def inference_cost(model, mcu, same_graph_as=None) -> tuple[float, str]:
    """(seconds per inference on this MCU, where the figure comes from).

    Measured when the firmware's instruction-class counts for this exact model (by sha256) on the
    MCU's core, with the MCU profile's kernel set (reference or optimized), are in a cost table
    (iotsim.firmware.cost): cycles from the MCU's cycle model (iotsim.firmware.cycles) / clock.
    Without one, `same_graph_as` (a model whose graph is this one's, `graph_signature`: an update that
    retrained the weights) lends its measured counts: the int8 kernels' instructions do not depend on the
    weights' values. Otherwise estimated from the model's MACs x the MCU's cycles per MAC / clock.
    """
    from iotsim.firmware.cost import emulated_core, lookup
    from iotsim.firmware.cycles import CycleParams, cycles

    core = emulated_core(mcu.core)
    kernels = mcu.kernels
    measured = lookup(getattr(model, "path", None), model.sha256, core, kernels) if core else None
    if measured is None and core and same_graph_as is not None \
            and graph_signature(model) == graph_signature(same_graph_as):
        measured = lookup(getattr(same_graph_as, "path", None), same_graph_as.sha256, core, kernels)
        if measured is not None:
            seconds, source = inference_cost(same_graph_as, mcu)
            return seconds, f"{same_graph_as.name}'s, the same graph (operators and shapes): {source}"
    if measured is not None and mcu.cycle_model is None:
        why = f"{mcu.name} has no cycle_model to price measured instructions"
    elif measured is not None:
        params = CycleParams.from_mapping(core, mcu.cycle_model, where=str(mcu.path or mcu.name))
        n_cycles = cycles(measured.classes, params, caches=measured.caches)
        return n_cycles / mcu.clock_hz, (
            f"{measured.describe()}; {n_cycles:,.0f} cycles ({n_cycles / measured.instructions_per_inference:.2f} "
            f"per instruction) from the {core} instruction timing and {mcu.name}'s memory system / "
            f"{mcu.clock_hz / 1e6:g} MHz")
    else:
        why = (f"no measured cost for this model on {core} with the {kernels} kernels: run `iotsim firmware "
               f"verify --kernels {kernels}` to measure it" if core else f"no emulated core for {mcu.core}")
    macs = float(model.macs)
    return macs * mcu.cycles_per_mac / mcu.clock_hz, (
        f"estimated: {macs:,.0f} MACs x {mcu.cycles_per_mac:g} cycles/MAC / {mcu.clock_hz / 1e6:g} MHz "
        f"({mcu.name}; {why})"
    )


def model_fit_warnings(spec, model, workload, sample_period_s: float) -> list[str]:
    """Ways in which a group's windows differ from what its model was trained on."""
    out = []
    card = model.card
    trained_on = card.get("workload")
    if trained_on and trained_on != workload.name:
        out.append(f"group {spec.group}: model {model.name} was trained on '{trained_on}' windows, but the group "
                   f"samples '{workload.name}': its detection quality here is not what its card reports")
    trained_rate = card.get("sample_rate_hz")
    if trained_rate and abs(sample_period_s * float(trained_rate) - 1.0) > 1e-6:
        out.append(f"group {spec.group}: model {model.name} was trained on samples {1 / float(trained_rate):g} s "
                   f"apart, but the group samples every {sample_period_s:g} s: detection quality numbers are "
                   "not meaningful (energy, traffic and timing are)")
    return out


def lorawan_sensitivity(sf: int, bandwidth_hz: float) -> float:
    return float(lora.gateway_sensitivity_dbm(sf, bandwidth_hz))


__all__ = ["GroupPlan", "plan_group", "Verdicts", "node_rng", "group_rng"]
