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
    "smart_city.traffic": "iotsim.signals.traffic:CityTraffic",
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
    """`workload` with some of its generator's parameters changed; unknown names, the fields every workload has
    (channels, timing, classes: the scenario sets those elsewhere), values of another shape than the default's
    (a number for a number, a list as long as the default's range) and values the generator cannot draw from
    (tried on two windows, with and without an event) raise InputError naming `field`."""
    import dataclasses
    import math

    import numpy as np

    fields = {f for f in type(workload).__dataclass_fields__ if not f.startswith("_")} - set(Workload.__dataclass_fields__)
    bad = sorted(set(params) - fields)
    if bad:
        raise InputError(f"workload {workload.name!r} has no parameter(s) {', '.join(bad)}; known: "
                         f"{', '.join(sorted(fields))}", field=f"{field}.{bad[0]}")
    values = {k: _like(getattr(workload, k), v, f"{field}.{k}", workload.name) for k, v in params.items()}
    try:
        out = dataclasses.replace(workload, **values)
        masks = np.zeros((2, out.window_samples), dtype=bool)
        masks[1] = True
        windows = out.generate(np.random.default_rng(0), masks)
    except InputError as e:
        raise InputError(e.message, field=f"{field}.{e.field}" if e.field else field) from None
    except (TypeError, ValueError, ArithmeticError) as e:
        raise InputError(f"workload {workload.name!r} cannot generate windows with these parameters: {e}",
                         field=field) from None
    if not np.isfinite(windows).all() or not all(math.isfinite(v) for v in _numbers(values)):
        raise InputError(f"workload {workload.name!r}: these parameters give non-finite samples", field=field)
    return out


def _numbers(values: dict):
    for v in values.values():
        for x in v if isinstance(v, tuple) else (v,):
            if isinstance(x, (int, float)):
                yield float(x)


def _like(default, value, field: str, name: str):
    """`value` in the shape and type of the generator's `default` (lists become tuples; ints stay ints)."""
    import reprlib

    short = reprlib.Repr()
    short.maxlist, short.maxstring = 4, 40

    def number(x, want_int):
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise InputError(f"workload {name!r}: expected a number, got {short.repr(x)}", field=field)
        if want_int:
            if float(x) != int(x):
                raise InputError(f"workload {name!r}: expected a whole number, got {short.repr(x)}", field=field)
            return int(x)
        return float(x)

    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or len(value) != len(default):
            raise InputError(f"workload {name!r}: expected a list of {len(default)} like {list(default)}, got "
                             f"{short.repr(value)}",
                             field=field)
        return tuple(number(x, isinstance(d, int)) if isinstance(d, (int, float)) and not isinstance(d, bool) else x
                     for x, d in zip(value, default))
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise InputError(f"workload {name!r}: expected true or false, got {short.repr(value)}", field=field)
        return value
    if isinstance(default, (int, float)):
        return number(value, isinstance(default, int))
    if isinstance(default, str) and not isinstance(value, str):
        raise InputError(f"workload {name!r}: expected text, got {short.repr(value)}", field=field)
    return value


__all__ = ["Workload", "get_workload", "with_params", "workload_class", "workload_names"]
