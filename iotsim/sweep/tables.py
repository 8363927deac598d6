"""A sweep's tables: every run's summary rows, and each grid point's mean with its 95 % CI.

Two tidy tables, one per kind of observation: `runs` has one row per (grid point, replication,
policy, group) with every summary metric as a column; `points` has one row per (grid point,
policy, group, metric) with n, mean, standard deviation and the 95 % confidence interval of the
mean over the replications (Student's t; NaN values, such as a latency with no detection, are
left out of n). Every registered metric is a count, a duration, an energy or a ratio, so the
interval is clipped to the values the metric can take: [0, inf), and [0, 1] for ratios (a count's
t interval over few replications can otherwise reach below zero).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from iotsim.results.metrics import BY_NAME, METRICS as REGISTRY, summary_columns
from iotsim.sweep.grid import SweepPlan
from iotsim.sweep.stats import mean_ci

SUMMARY_COLUMNS = summary_columns()
METRICS = [m.name for m in REGISTRY]
CONFIDENCE = 0.95


def runs_table(plan: SweepPlan, records: dict[str, dict]) -> pd.DataFrame:
    """One row per (run, policy, group), in grid order then replication order."""
    rows = []
    for point, replication, spec in plan.runs:
        for summary in records[spec.key]["rows"]:
            rows.append({"point": point.index, **point.values, "replication": replication,
                         "seed": spec.scenario.seed, "run_key": spec.key, **summary})
    # fixed column order: a record read back from the cache has its keys sorted
    head = ["point", *plan.params, "replication", "seed", "run_key"]
    frame = pd.DataFrame(rows)
    frame = frame[head + [c for c in SUMMARY_COLUMNS if c in frame] + sorted(set(frame) - set(head) - set(SUMMARY_COLUMNS))]
    for column in METRICS:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column]).astype(np.float64 if frame[column].isna().any()
                                                                 else frame[column].dtype)
    for column in plan.params:
        frame[column] = _uniform(frame[column])
    return frame


def _uniform(column: pd.Series) -> pd.Series:
    """Numbers stay numbers; a column mixing kinds (7, 'auto') becomes text."""
    kinds = {type(v) for v in column}
    if kinds <= {int}:
        return column.astype(np.int64)
    if kinds <= {int, float}:
        return column.astype(np.float64)
    return column.astype(str)


def metric_range(metric: str) -> tuple[float, float]:
    """The values a summary metric can take: ratios lie in [0, 1], every other metric in [0, inf)."""
    return (0.0, 1.0) if BY_NAME[metric].kind == "ratio" else (0.0, np.inf)


def points_table(plan: SweepPlan, runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95 % confidence interval per (grid point, policy, group, metric)."""
    rows = []
    metrics = [m for m in METRICS if m in runs]
    for (point, policy, group), chunk in runs.groupby(["point", "policy", "group"], sort=False):
        first = chunk.iloc[0]
        for metric in metrics:
            n, mean, std, half = mean_ci(chunk[metric].to_numpy(dtype=np.float64), CONFIDENCE)
            low, high = metric_range(metric)
            rows.append({"point": point, **{p: first[p] for p in plan.params}, "policy": policy, "group": group,
                         "metric": metric, "n": n, "mean": mean, "std": std, "ci95_half_width": half,
                         "ci95_low": max(mean - half, low), "ci95_high": min(mean + half, high)})
    frame = pd.DataFrame(rows)
    for column in plan.params:
        frame[column] = frame[column].astype(runs[column].dtype)
    return frame
