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


class ServeCarry:
    """Each node's place in `serve_in_order`'s recursion between the chunks of a run in time chunks: its last
    item's cumulative gap and gap, and the running maximum, so that the next chunk's items continue the same
    sums (`serve_in_order` reads and updates it)."""

    def __init__(self, n_nodes: int):
        self.started = np.zeros(n_nodes, dtype=bool)  # the node served an item before
        self.cum_gap = np.zeros(n_nodes)  # G of its last item
        self.last_gap = np.zeros(n_nodes)  # g of its last item
        self.best = np.full(n_nodes, -np.inf)  # max over its items so far of (a_j - G_j)


def serve_in_order(ready: np.ndarray, gap: np.ndarray, node: np.ndarray, carry: ServeCarry | None = None) -> np.ndarray:
    """Start of each item when a node serves its items in order, each no earlier than it is ready and
    no earlier than `gap` after the node's previous start. Items sorted by node, then order of service.

    t_i = max(a_i, t_{i-1} + g_{i-1})  =>  t_i = G_i + max_{j<=i}(a_j - G_j), G = cumulative gaps
    per node: a running maximum, in closed form instead of one simulation event per item. `carry`: the
    nodes' items before these (a run in time chunks): the sums go on from them.
    """
    out = np.empty(ready.shape[0], dtype=np.float64)
    if ready.shape[0] == 0:
        return out
    for lo, hi in zip(*(r.tolist() for r in node_runs(node))):
        i = int(node[lo])
        if carry is not None and carry.started[i]:  # G goes on from the node's last item: the same sequential sums
            g = np.cumsum(np.concatenate(([carry.cum_gap[i], carry.last_gap[i]], gap[lo : hi - 1])))[1:]
            m = np.maximum.accumulate(np.concatenate(([carry.best[i]], ready[lo:hi] - g)))[1:]
        else:
            g = np.concatenate(([0.0], np.cumsum(gap[lo : hi - 1])))
            m = np.maximum.accumulate(ready[lo:hi] - g)
        out[lo:hi] = g + m
        if carry is not None:
            carry.started[i] = True
            carry.cum_gap[i], carry.last_gap[i], carry.best[i] = g[-1], gap[hi - 1], m[-1]
    return out


__all__ = ["node_runs", "serve_in_order", "ServeCarry"]
