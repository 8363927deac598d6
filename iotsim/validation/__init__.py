"""`iotsim validate`: every closed-form and published-value check, one table.

A check runs the simulator's own code (the radio formulas, the reception model, whole scenarios
on the engine) and compares what it measures with a closed form or a published figure, within a
stated tolerance. `CHECKS` lists them; `quick` ones run in seconds and are part of the test suite
(tests/test_validate.py), the full set is documented in docs/validation.md with its command.

A check function returns a list of `CheckResult` (one per case: e.g. one per load of the pure
ALOHA check), and may add a `Figure` to draw (measured vs expected over a parameter).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class CheckResult:
    group: str  # e.g. "radio", "network", "energy", "firmware"
    check: str  # what is checked, with the case: "pure ALOHA delivery, G = 0.5"
    expected: float
    measured: float
    tolerance: float  # allowed |measured - expected| (absolute), or relative when `relative`
    unit: str = ""
    relative: bool = False
    source: str = ""  # where the expected value comes from
    passed: bool = field(init=False)

    def __post_init__(self) -> None:
        self.expected = float(self.expected)
        self.measured = float(self.measured)
        err = abs(self.measured - self.expected)
        if self.relative:
            err = err / abs(self.expected) if self.expected else math.inf
        self.passed = bool(math.isfinite(self.measured) and err <= self.tolerance)

    @property
    def tolerance_text(self) -> str:
        return f"{self.tolerance * 100:g} %" if self.relative else f"{self.tolerance:g}{(' ' + self.unit) if self.unit else ''}"


@dataclass
class Figure:
    """A curve to plot: measured points against the expected curve over one parameter."""

    name: str  # file stem, e.g. "aloha"
    title: str
    x_label: str
    y_label: str
    x: list[float]
    expected: list[float]
    measured: list[float]


@dataclass
class Check:
    name: str
    quick: bool
    run: Callable[[], tuple[list[CheckResult], list[Figure]]]
    on_failure: str = ""  # what is known about why it fails, printed when it does


CHECKS: list[Check] = []


def check(name: str, quick: bool, on_failure: str = ""):
    """Register a check function returning (results, figures); `on_failure`: what is known about why it
    fails, shown beside the table when it does."""

    def register(fn):
        CHECKS.append(Check(name, quick, fn, on_failure))
        return fn

    return register


@dataclass
class Validation:
    results: list[CheckResult]
    figures: list[Figure]
    seconds: dict[str, float]  # wall time per check
    failure_notes: dict[str, str] = field(default_factory=dict)  # check name -> why it fails (when it does)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)


def run_checks(quick: bool = False, only: list[str] | None = None,
               progress: Callable[[str], None] | None = None) -> Validation:
    """Run the checks (the quick subset when `quick`); `only`: names to run."""
    from iotsim.validation import checks  # noqa: F401  (registers the checks)

    results, figures, seconds, notes = [], [], {}, {}
    for c in CHECKS:
        if (quick and not c.quick) or (only and c.name not in only):
            continue
        if progress:
            progress(c.name)
        t0 = time.perf_counter()
        got, figs = c.run()
        seconds[c.name] = time.perf_counter() - t0
        results.extend(got)
        figures.extend(figs)
        if c.on_failure and not all(r.passed for r in got):
            notes[c.name] = c.on_failure
    return Validation(results, figures, seconds, notes)


def check_names() -> list[str]:
    from iotsim.validation import checks  # noqa: F401

    return [c.name for c in CHECKS]


__all__ = ["CHECKS", "Check", "CheckResult", "Figure", "Validation", "check", "check_names", "run_checks"]
