"""Input adapters: what a node computes from a window of sensor samples before its model runs.

A model's input is not always the raw window: a keyword spotter takes MFCC features of one
second of audio, not 16,000 samples. An adapter is named in the model card (or in a scenario
that brings its own model) as

    "input_adapter": {"name": "mfcc", "window_shape": [16000, 1], "params": {...}}

and maps windows (n, *window_shape) in physical units to features (n, *model input shape),
float32. The card's per-channel normalization and the int8 quantization then apply to the
features (last axis = channel). Without an adapter ("identity"), features are the window.

Adapters are plain numpy, deterministic, and do not import TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from iotsim.errors import InputError


def _identity(windows: np.ndarray) -> np.ndarray:
    return windows


def _mfcc(windows: np.ndarray, **params) -> np.ndarray:
    from iotsim.tinyml.features import mfcc

    if windows.shape[-1] != 1:
        raise InputError(f"the mfcc adapter takes one audio channel, got {windows.shape[-1]}", field="input_adapter")
    return mfcc(windows[..., 0], **params)


# name -> function(windows (n, *window_shape) float32, **params) -> features (n, *input_shape)
ADAPTERS: dict[str, Callable[..., np.ndarray]] = {"identity": _identity, "mfcc": _mfcc}


@dataclass(frozen=True)
class InputAdapter:
    """A named feature extractor with its parameters and the window shape it consumes."""

    name: str = "identity"
    window_shape: tuple[int, ...] = ()
    params: dict = field(default_factory=dict)

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        out = ADAPTERS[self.name](np.asarray(windows, dtype=np.float32), **self.params)
        return np.asarray(out, dtype=np.float32)

    def to_card(self) -> dict:
        return {"name": self.name, "window_shape": list(self.window_shape), "params": dict(self.params)}


def adapter_from_spec(spec: object, input_shape: tuple[int, ...], *, where: str) -> InputAdapter:
    """Validate a card's (or scenario's) `input_adapter` entry; None means identity.

    The adapter is run once on a zero window to check that it yields the model's input shape,
    so a mismatch is reported when the model is loaded, not in the middle of a run.
    """
    if spec is None:
        return InputAdapter("identity", tuple(input_shape), {})
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict) or "name" not in spec:
        raise InputError("input_adapter must be a mapping with a 'name'", where=where, field="input_adapter")
    name = spec["name"]
    if name not in ADAPTERS:
        raise InputError(
            f"unknown input adapter {name!r}; known: {', '.join(sorted(ADAPTERS))}", where=where, field="input_adapter"
        )
    unknown = sorted(set(spec) - {"name", "window_shape", "params"})
    if unknown:
        raise InputError(
            f"input_adapter has unknown field(s) {', '.join(unknown)} (allowed: name, window_shape, params)",
            where=where,
            field="input_adapter",
        )
    params = spec.get("params") or {}
    if not isinstance(params, dict):
        raise InputError("input_adapter.params must be a mapping", where=where, field="input_adapter.params")
    if name == "identity":
        window = tuple(input_shape)
    else:
        ws = spec.get("window_shape")
        if not (isinstance(ws, (list, tuple)) and ws and all(isinstance(d, int) and d > 0 for d in ws)):
            raise InputError(
                f"input adapter {name!r} needs window_shape, a list of positive integers such as [16000, 1]",
                where=where,
                field="input_adapter.window_shape",
            )
        window = tuple(int(d) for d in ws)
    adapter = InputAdapter(name, window, dict(params))
    try:
        probe = adapter(np.zeros((1, *window), dtype=np.float32))
    except InputError as exc:
        raise InputError(exc.message, where=where, field="input_adapter") from None
    except TypeError as exc:  # unknown keyword parameter
        raise InputError(f"input adapter {name!r}: {exc}", where=where, field="input_adapter.params") from None
    if tuple(probe.shape[1:]) != tuple(input_shape):
        raise InputError(
            f"input adapter {name!r} turns windows of shape {window} into {tuple(probe.shape[1:])}, "
            f"but the model's input is {tuple(input_shape)}",
            where=where,
            field="input_adapter",
        )
    return adapter
