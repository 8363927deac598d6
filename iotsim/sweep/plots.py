"""Plots of a sweep: each metric against each swept parameter, one panel per policy.

A panel draws the mean over replications with its 95 % confidence interval as error bars; when
other parameters are swept too (or the fleet has several groups), each of their combinations is
its own line.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from iotsim.sweep.tables import METRICS


def plot_name(metric: str, param: str) -> str:
    return f"{metric}__vs__{re.sub(r'[^A-Za-z0-9_.-]+', '_', param)}.png"


def plottable_metrics(points: pd.DataFrame) -> list[str]:
    """Metrics whose finite means vary across the sweep (a flat line against every parameter, such
    as no node dying anywhere, says nothing a plot would add: the tables hold it)."""
    finite = points[np.isfinite(points["mean"].to_numpy(dtype=float))]
    varying = {m for m, means in finite.groupby("metric")["mean"] if means.nunique() > 1}
    return [m for m in METRICS if m in varying]


def write_sweep_plots(points: pd.DataFrame, params: list[str], folder: Path) -> list[Path]:
    # matplotlib only when drawing: a cached re-run that keeps its plots never imports it
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    folder.mkdir(parents=True, exist_ok=True)
    policies = list(dict.fromkeys(points["policy"]))
    groups = list(dict.fromkeys(points["group"]))
    written = []
    by_metric = dict(tuple(points.groupby("metric", sort=False)))
    for metric in plottable_metrics(points):
        data = by_metric[metric]
        for param in params:
            others = [p for p in params if p != param]
            numeric = pd.api.types.is_numeric_dtype(data[param])
            categories = list(dict.fromkeys(data[param]))
            fig = Figure(figsize=(4.2 * len(policies), 3.4))
            FigureCanvasAgg(fig)
            axes = fig.subplots(1, len(policies), sharey=True, squeeze=False)
            for ax, policy in zip(axes[0], policies):
                sub = data[data["policy"] == policy]
                keys = others + (["group"] if len(groups) > 1 else [])
                lines = [((), sub)] if not keys else list(sub.groupby(keys, sort=False))
                for key, line in lines:
                    line = line.sort_values(param) if numeric else line
                    x = line[param].to_numpy() if numeric else [categories.index(v) for v in line[param]]
                    mean = line["mean"].to_numpy(dtype=float)
                    # the clipped interval: a count's bar stops at zero, a ratio's at one
                    yerr = np.vstack([mean - line["ci95_low"].to_numpy(dtype=float),
                                      line["ci95_high"].to_numpy(dtype=float) - mean])
                    label = ", ".join(f"{k}={v}" for k, v in zip(keys, key if isinstance(key, tuple) else (key,)))
                    ax.errorbar(x, mean, yerr=np.where(np.isfinite(yerr), yerr, 0.0), marker="o",
                                capsize=3, label=label or None)
                ax.set_title(policy)
                ax.set_xlabel(param)
                if not numeric:
                    ax.set_xticks(range(len(categories)), [str(c) for c in categories])
                ax.grid(alpha=0.3)
                if keys:
                    ax.legend(fontsize=7)
            axes[0][0].set_ylabel(f"{metric} (mean, 95 % CI)")
            fig.subplots_adjust(left=0.09 if len(policies) > 1 else 0.16, right=0.98, bottom=0.16, top=0.9,
                                wspace=0.08)
            path = folder / plot_name(metric, param)
            fig.savefig(path, dpi=90, metadata={"Software": None})
            written.append(path)
    return written
