"""Synthetic sensor workloads with labelled events.

    from iotsim.signals import get_workload
    wl = get_workload("farm.soil_climate")
    windows = wl.generate(np.random.default_rng(1), np.zeros((100, wl.window_samples), bool))
"""

from __future__ import annotations

import importlib

from iotsim.errors import InputError, did_you_mean
from iotsim.signals.base import Workload

# name -> "module:class"; modules are imported on first use
_REGISTRY: dict[str, str] = {
    "farm.soil_climate": "iotsim.signals.farm:FarmSoilClimate",
    "factory.vibration": "iotsim.signals.vibration:FactoryVibration",
    "wearable.ecg": "iotsim.signals.ecg:WearableEcg",
    "smart_home.keyword": "iotsim.signals.keywords:KeywordAudio",
}


def workload_class(name: str) -> type[Workload]:
    """The Workload subclass registered under `name` (InputError listing the known names if none)."""
    target = _REGISTRY.get(name)
    if target is None:
        known = ", ".join(workload_names())
        raise InputError(f"unknown workload {name!r}{did_you_mean(name, workload_names())}; known workloads: {known}",
                         field="signal")
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def workload_names() -> list[str]:
    """Names accepted by `get_workload`."""
    return sorted(_REGISTRY)


def get_workload(name: str, **params) -> Workload:
    """The workload registered under `name`, with its default parameters unless overridden.

    Keyword arguments override fields of the workload (e.g. `window_samples=24`, or a
    generator parameter such as `shaft_hz=(30.0, 30.0)`). Unknown names or fields raise
    InputError listing what is known.
    """
    cls = workload_class(name)
    fields = {f for f in cls.__dataclass_fields__ if not f.startswith("_")} - {"name"}
    bad = sorted(set(params) - fields)
    if bad:
        raise InputError(
            f"workload {name!r} has no parameter(s) {', '.join(bad)}; known: {', '.join(sorted(fields))}",
            where=name,
            field=bad[0],
        )
    wl = cls(**params)
    if wl.window_samples < 1 or not wl.sample_rate_hz > 0:
        raise InputError(
            f"window_samples must be >= 1 and sample_rate_hz > 0, got {wl.window_samples} and {wl.sample_rate_hz}",
            where=name,
            field="window_samples",
        )
    return wl


def with_params(workload: Workload, params: dict, field: str = "params") -> Workload:
    """`workload` with some of its generator's parameters changed (lists become tuples); unknown names, and the
    fields every workload has (channels, timing, classes: the scenario sets those elsewhere), raise InputError
    naming `field`."""
    import dataclasses

    # the generator's own fields: what every workload has (channels, timing, classes, event rate) is set elsewhere
    fields = {f for f in type(workload).__dataclass_fields__ if not f.startswith("_")} - set(Workload.__dataclass_fields__)
    bad = sorted(set(params) - fields)
    if bad:
        raise InputError(f"workload {workload.name!r} has no parameter(s) {', '.join(bad)}; known: "
                         f"{', '.join(sorted(fields))}", field=f"{field}.{bad[0]}")
    try:
        return dataclasses.replace(workload, **{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})
    except InputError as e:
        raise InputError(e.message, field=f"{field}.{e.field}" if e.field else field) from None
    except (TypeError, ValueError) as e:
        raise InputError(f"workload {workload.name!r}: {e}", field=field) from None


__all__ = ["Workload", "get_workload", "with_params", "workload_class", "workload_names"]
