"""The Workload interface: a labelled synthetic sensor signal that the engine samples in windows.

A workload turns (random generator, per-sample event mask) into windows of sensor readings in
physical units. The mask says, sample by sample, whether the ground-truth event is active; a
window that only partly overlaps an event shows the event signature only on the masked
samples, so the on-node model sees partial evidence and detection latency comes out of the
signal rather than being assumed.

Contract of `generate` (tested in tests/test_signals.py):
- every random draw comes from the `rng` passed in; same generator state -> byte-identical output;
- the draws do not depend on the mask contents, so the same seed with a different mask gives the
  same background and differs only where the event acts;
- vectorised over windows: the engine calls it with up to ~100k windows at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iotsim.errors import InputError


@dataclass(frozen=True)
class Workload:
    """Common description of a sensor workload; subclasses implement `_generate`.

    Attributes:
        name: registry name, e.g. "farm.soil_climate".
        channels: channel names, in the order of the last axis of a window.
        units: unit of each channel (physical units, SI or named where not SI, e.g. "%VWC").
        window_samples: default number of samples per inference window.
        sample_rate_hz: sampling rate within a window.
        bytes_per_sample: bytes per sample per channel when the node sends the window raw.
        default_events_per_day: scenario default for how often the event starts (per node).
        default_event_duration_s: scenario default for how long one event lasts.
        class_names: model output classes; `positive_class` indexes the event class.
    """

    name: str = ""
    channels: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    window_samples: int = 0
    sample_rate_hz: float = 0.0
    bytes_per_sample: int = 2
    default_events_per_day: float = 0.0
    default_event_duration_s: float = 0.0
    class_names: tuple[str, ...] = ("normal", "event")
    positive_class: int = 1
    description: str = ""

    # ----------------------------------------------------------------- derived quantities
    @property
    def n_channels(self) -> int:
        return len(self.channels)

    @property
    def window_duration_s(self) -> float:
        """Time spanned by one window's samples (window_samples / sample_rate_hz)."""
        return self.window_samples / self.sample_rate_hz

    @property
    def raw_bytes_per_window(self) -> int:
        """Payload bytes to ship one window raw (all channels, no header)."""
        return self.window_samples * self.n_channels * self.bytes_per_sample

    # ----------------------------------------------------------------- generation
    def generate(self, rng: np.random.Generator, event_mask: np.ndarray) -> np.ndarray:
        """Return float32 windows of shape (n, window_samples, n_channels) in physical units.

        `event_mask` is a bool array (n, window_samples): True where the event is active.
        """
        mask = self.check_mask(rng, event_mask)
        n = mask.shape[0]
        if n == 0:
            return np.zeros((0, self.window_samples, self.n_channels), dtype=np.float32)
        out = self._generate(rng, mask)
        return np.ascontiguousarray(out, dtype=np.float32)

    def _generate(self, rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def check_mask(self, rng: object, event_mask: object) -> np.ndarray:
        """Validate the arguments of `generate`; return the mask as a C-contiguous bool array."""
        if not isinstance(rng, np.random.Generator):
            raise InputError(
                f"expected a numpy Generator (np.random.default_rng(seed)), got {type(rng).__name__}",
                where=self.name,
                field="rng",
            )
        mask = np.asarray(event_mask)
        if mask.ndim != 2 or mask.shape[1] != self.window_samples:
            raise InputError(
                f"event_mask must have shape (n, {self.window_samples}), got {mask.shape}",
                where=self.name,
                field="event_mask",
            )
        if mask.dtype != np.bool_:
            if not (np.issubdtype(mask.dtype, np.integer) and np.isin(mask, (0, 1)).all()):
                raise InputError(
                    f"event_mask must be boolean, got dtype {mask.dtype}",
                    where=self.name,
                    field="event_mask",
                )
            mask = mask.astype(bool)
        return np.ascontiguousarray(mask)

    # ----------------------------------------------------------------- masks
    def sample_times_s(self, window_start_s: np.ndarray) -> np.ndarray:
        """Absolute time of every sample, shape (n, window_samples), for given window starts."""
        start = np.asarray(window_start_s, dtype=np.float64).reshape(-1, 1)
        return start + np.arange(self.window_samples) / self.sample_rate_hz

    def mask_for(
        self,
        window_start_s: np.ndarray,
        event_start_s: np.ndarray,
        event_end_s: np.ndarray,
    ) -> np.ndarray:
        """Event mask for windows starting at `window_start_s` and one event interval each.

        A sample at time t is in the event when event_start_s <= t < event_end_s.
        All arguments broadcast to shape (n,). Returns bool (n, window_samples).
        """
        t = self.sample_times_s(window_start_s)
        # 1 ns tolerance so that k / sample_rate_hz landing a rounding error below an event
        # boundary (e.g. 3 / (1/300) = 899.999...) counts as on it
        t = t + 1e-9 * np.maximum(1.0, np.abs(t))
        s = np.asarray(event_start_s, dtype=np.float64).reshape(-1, 1)
        e = np.asarray(event_end_s, dtype=np.float64).reshape(-1, 1)
        return (t >= s) & (t < e)

    def random_event_masks(
        self,
        rng: np.random.Generator,
        n: int,
        *,
        partial_fraction: float,
        min_overlap: float,
    ) -> np.ndarray:
        """Masks for n event windows: a `partial_fraction` of them overlap the event only partly.

        A partial window has the event at its start (event ending) or at its end (event
        starting), covering a fraction of the window drawn uniformly in [min_overlap, 1).
        The others are fully covered. Used to build training and test sets that look like the
        windows the engine produces around event boundaries.
        """
        w = self.window_samples
        partial = rng.random(n) < partial_fraction
        frac = rng.uniform(min_overlap, 1.0, n)
        covered = np.clip(np.ceil(frac * w).astype(np.int64), 1, w)
        covered = np.where(partial, np.minimum(covered, w - 1), w)
        at_end = rng.random(n) < 0.5
        k = np.arange(w)
        start_mask = k[None, :] < covered[:, None]
        end_mask = k[None, :] >= (w - covered)[:, None]
        return np.where(at_end[:, None], end_mask, start_mask)

    def summary(self) -> dict:
        """Plain-dict description (for manifests and model cards)."""
        return {
            "name": self.name,
            "channels": list(self.channels),
            "units": list(self.units),
            "window_samples": self.window_samples,
            "sample_rate_hz": self.sample_rate_hz,
            "bytes_per_sample": self.bytes_per_sample,
            "raw_bytes_per_window": self.raw_bytes_per_window,
            "default_events_per_day": self.default_events_per_day,
            "default_event_duration_s": self.default_event_duration_s,
            "class_names": list(self.class_names),
            "positive_class": self.positive_class,
        }


def log_uniform(rng: np.random.Generator, low: float, high: float, n: int) -> np.ndarray:
    """n draws, uniform in log between low and high (low == high gives a constant)."""
    return np.exp(rng.uniform(np.log(low), np.log(high), n))
