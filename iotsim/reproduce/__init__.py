"""Published comparisons reproduced: `iotsim reproduce NAME`.

Each reproduction is a module here with a `reproduce() -> Reproduction` function, registered in
`REPRODUCTIONS`. A `Reproduction` holds rows that put our figure beside the published one, with
the signed error as a fraction (+0.12: ours is 12 % above the published figure), and every
assumption the source does not state.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from iotsim.errors import InputError


@dataclass
class Reproduction:
    name: str
    title: str
    source: str  # full citation of the published work
    columns: list[str]  # the row keys, in display order
    rows: list[dict]  # one dict per compared figure
    assumptions: list[str] = field(default_factory=list)  # every assumption not stated in the source
    notes: list[str] = field(default_factory=list)


# name -> (module, one-line description)
REPRODUCTIONS: dict[str, tuple[str, str]] = {}


def register(name: str, module: str, description: str) -> None:
    REPRODUCTIONS[name] = (module, description)


def run(name: str) -> Reproduction:
    """Run one registered reproduction by name."""
    if name not in REPRODUCTIONS:
        known = ", ".join(sorted(REPRODUCTIONS)) or "none"
        raise InputError(f"unknown reproduction {name!r}; known: {known}", field="NAME")
    module = importlib.import_module(REPRODUCTIONS[name][0])
    return module.reproduce()


def signed_error(ours: float, published: float) -> float:
    """(ours - published) / published: +0.12 means ours is 12 % above the published figure."""
    return (float(ours) - float(published)) / float(published)


__all__ = ["REPRODUCTIONS", "Reproduction", "register", "run", "signed_error"]

register("casals2017", "iotsim.reproduce.casals2017", "Casals et al. 2017: LoRaWAN node battery life vs period and SF")
register("mlperf-tiny", "iotsim.reproduce.mlperf_tiny", "MLPerf Tiny v0.5/v1.0 NUCLEO-L4R5ZI latency and energy, reference and optimized kernels")
