"""Closed-form per-node schedules: when each of a node's frames can start, without an event per frame.

Frames are sorted by node, then in the order the node serves them. Without feedback from the
network a node's schedule depends only on its own frames, so it is a recursion per node that
numpy evaluates for all nodes at once where it has a closed form.
"""

from __future__ import annotations

import numpy as np


def node_runs(node: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) indices of each run of equal values in `node` (sorted by node)."""
    n = node.shape[0]
    bounds = np.flatnonzero(np.diff(node)) + 1
    return np.concatenate(([0], bounds)), np.concatenate((bounds, [n]))


def serve_in_order(ready: np.ndarray, gap: np.ndarray, node: np.ndarray) -> np.ndarray:
    """Start of each item when a node serves its items in order, each no earlier than it is ready and
    no earlier than `gap` after the node's previous start. Items sorted by node, then order of service.

    t_i = max(a_i, t_{i-1} + g_{i-1})  =>  t_i = G_i + max_{j<=i}(a_j - G_j), G = cumulative gaps
    per node: a running maximum, in closed form instead of one simulation event per item.
    """
    out = np.empty(ready.shape[0], dtype=np.float64)
    if ready.shape[0] == 0:
        return out
    for lo, hi in zip(*(r.tolist() for r in node_runs(node))):
        g = np.concatenate(([0.0], np.cumsum(gap[lo : hi - 1])))
        out[lo:hi] = g + np.maximum.accumulate(ready[lo:hi] - g)
    return out


__all__ = ["node_runs", "serve_in_order"]
