"""Fuzz the scenario input: mutated shipped scenarios end in one clear InputError or in a completed
run whose ledgers balance, never in a traceback.

Each case takes a shipped scenario (scenarios/*.yaml) and applies one to three mutations chosen by a
seeded generator: a number scaled by an extreme factor, negated, zeroed or made NaN/inf; a
duration's number scaled; a value of the wrong type; a key deleted; an unknown key added; a list
made huge. Every case is validated through the loader (the whole scenario check, references
included); the cases that validate are run at a tiny size (three nodes per group, an hour at most,
the smallest background pool),
since the fuzz is about input handling, not scale.
"""

from __future__ import annotations

import copy
import random
import re
import time
import traceback
from pathlib import Path

import numpy as np
import yaml

from iotsim.errors import InputError

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((REPO / "scenarios").glob("*.yaml"))
CASES = 1000
SEED = 20261204
RUN_NODES = 3
RUN_DURATION_S = 3600.0
RUN_POOL = 100  # background windows inferred per group (the smallest allowed)

FACTORS = (0.0, -1.0, 1e-12, 1e-6, 1e-3, 0.5, 2.0, 1e3, 1e6, 1e9, 1e18, 1e300)
ODD_VALUES = ("abc", "", "nan", "inf", "-inf", "NaN", ".inf", "1e999", None, True, [], [1, 2], {}, {"x": 1},
              float("nan"), float("inf"), float("-inf"), -1, 0, 2**63, -(2**63), 1e308)
DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-z]*)\s*$")


def _paths(node, prefix=()):
    """Every (path, value) in a parsed YAML tree, containers included."""
    yield prefix, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


def _parent(data, path):
    node = data
    for key in path[:-1]:
        node = node[key]
    return node


def _mutate(data, rng: random.Random) -> str:
    """Apply one random mutation in place; returns what it did (for failure messages)."""
    paths = [p for p, _ in _paths(data) if p]
    path = rng.choice(paths)
    parent, key = _parent(data, path), path[-1]
    value = parent[key]
    roll = rng.random()
    if isinstance(value, bool) or value is None:
        new = rng.choice(ODD_VALUES)
    elif isinstance(value, (int, float)) and roll < 0.7:
        factor = rng.choice(FACTORS)
        new = value * factor
        if isinstance(value, int) and abs(new) < 2**70:
            new = int(new)
    elif isinstance(value, str) and DURATION.match(value) and roll < 0.6:
        number, unit = DURATION.match(value).groups()
        new = f"{float(number) * rng.choice(FACTORS):g}{unit}"
    elif isinstance(value, list) and value and roll < 0.25:
        new = value * rng.choice((2, 100, 10_000))  # a huge list
    elif roll < 0.8:
        new = copy.deepcopy(rng.choice(ODD_VALUES))
    elif roll < 0.9 and isinstance(parent, dict):
        del parent[key]
        return f"deleted {'.'.join(map(str, path))}"
    else:
        target = value if isinstance(value, dict) else parent
        if isinstance(target, dict):
            target[rng.choice(("bogus", "extra_field", "cout", "sead"))] = rng.choice((1, "x", [1]))
            return f"unknown key in {'.'.join(map(str, path))}"
        new = rng.choice(ODD_VALUES)
    parent[key] = new
    shown = repr(new) if not isinstance(new, list) or len(new) < 5 else f"list of {len(new)}"
    return f"{'.'.join(map(str, path))}: {value!r} -> {shown}"


def mutated_cases(n: int = CASES, seed: int = SEED):
    """(name, description, YAML text) of n mutated scenarios, the same for the same seed."""
    rng = random.Random(seed)
    bases = [(p.stem, yaml.safe_load(p.read_text())) for p in SCENARIOS]
    for i in range(n):
        name, base = bases[i % len(bases)]
        data = copy.deepcopy(base)
        done = [_mutate(data, rng) for _ in range(rng.choice((1, 1, 2, 3)))]
        yield f"{name}#{i}", "; ".join(done), yaml.safe_dump(data, sort_keys=False)


def _tiny(scenario):
    """The validated scenario shrunk to a few nodes and at most an hour."""
    fleet = [g.model_copy(update={"count": min(g.count, RUN_NODES)}) for g in scenario.fleet]
    outputs = scenario.outputs.model_copy(update={"plots": False, "report": "none"})
    simulation = scenario.simulation.model_copy(
        update={"background_pool": min(scenario.simulation.background_pool, RUN_POOL)})
    return scenario.model_copy(update={"fleet": fleet, "duration": min(scenario.duration, RUN_DURATION_S),
                                       "outputs": outputs, "simulation": simulation})


def _check_ledgers(result) -> None:
    from iotsim.results import nodes_table, summary_table

    nodes = nodes_table(result)
    parts = nodes.filter(regex=r"^energy_.+_j$").sum(axis=1)
    assert np.isfinite(nodes.energy_j).all() and (nodes.energy_j >= 0).all()
    np.testing.assert_allclose(parts, nodes.energy_j, rtol=1e-9)
    summary = summary_table(result, nodes)
    assert (summary.packets_offered == summary.packets_delivered + summary.packets_lost).all()
    assert (summary.packets_lost == summary.filter(regex=r"^packets_lost_").sum(axis=1)).all()
    assert (summary.messages_delivered <= summary.messages_offered).all()


def fuzz(n: int = CASES, seed: int = SEED):
    """Validate every case, run the ones that validate; returns (counts, failures)."""
    from iotsim.engine import run_scenario
    from iotsim.scenario import load_scenario_text

    counts = {"cases": 0, "input_errors": 0, "runs": 0, "run_input_errors": 0}
    failures = []
    for name, what, text in mutated_cases(n, seed):
        counts["cases"] += 1
        stage = "validate"
        try:
            scenario = load_scenario_text(text, f"{name}.yaml")
            stage = "run"
            result = run_scenario(_tiny(scenario))
            stage = "ledgers"
            _check_ledgers(result)
            counts["runs"] += 1
        except InputError as exc:
            counts["input_errors" if stage == "validate" else "run_input_errors"] += 1
            message = str(exc)
            if not message or "Traceback" in message or len(message) > 2000:
                failures.append((name, what, stage, f"unclear message: {message[:300]!r}"))
        except Exception:  # noqa: BLE001 - anything else is the bug this test looks for
            failures.append((name, what, stage, traceback.format_exc(limit=-3)))
    return counts, failures


def test_mutated_scenarios_end_in_a_clear_error_or_a_balanced_run():
    start = time.perf_counter()
    counts, failures = fuzz()
    elapsed = time.perf_counter() - start
    assert counts["cases"] >= 1000
    # the mutations reach both outcomes: most fail validation, some still run
    assert counts["input_errors"] > counts["cases"] // 4 and counts["runs"] > 20, counts
    assert not failures, f"{len(failures)} of {counts['cases']} cases failed ({elapsed:.0f} s):\n" + "\n".join(
        f"{n} [{w}] at {s}:\n{e}" for n, w, s, e in failures[:10])


if __name__ == "__main__":  # exploration: python tests/test_fuzz.py [N] [SEED]
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else CASES
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else SEED
    t0 = time.perf_counter()
    counts, failures = fuzz(n, seed)
    for name, what, stage, err in failures:
        print(f"--- {name} [{what}] at {stage}\n{err}")
    print(counts, f"{len(failures)} failures, {time.perf_counter() - t0:.1f} s")
