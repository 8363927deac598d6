"""What each node wants to send under a policy: window messages and heartbeats, in time order."""

from __future__ import annotations

import numpy as np

from iotsim.engine.fleet import GroupPlan
from iotsim.link.base import Messages
from iotsim.policies import NOTHING, SEND_RAW, MessageKind, Policy


def policy_messages(plans: list[GroupPlan], policy: Policy) -> Messages:
    """Every message of every node under `policy`, sorted by (node, ready time, kind).

    Window messages are ready when the window is complete (plus the inference on the node when the
    policy runs it there); heartbeats come from the plan's heartbeat times (their own phase per node,
    independent of the window phase).
    """
    parts = []
    node_start = 0
    for plan in plans:
        v = plan.verdicts
        actions = policy.actions(v.device_positive, v.device_confidence)
        if plan.triggered is not None:  # event-driven sensing: only the windows that woke the node are handled
            actions = np.where(plan.triggered, actions, NOTHING).astype(actions.dtype)
        flat = np.flatnonzero(actions != NOTHING)
        local = np.searchsorted(plan.window_offset, flat, side="right") - 1
        ready = plan.window_end_s(flat)
        if policy.runs_on_device_inference:  # (the model the node runs then: model updates)
            ready = ready + plan.window_inference_s(flat)
        kind = actions[flat]
        app = np.where(kind == SEND_RAW, plan.raw_window_bytes, plan.spec.event_payload_bytes).astype(np.int64)
        parts.append((local + node_start, ready, app, kind.astype(np.int8), flat, plan.index))
        if policy.sends_heartbeats:
            hb_node, hb_ready = plan.heartbeats()
            parts.append((
                hb_node + node_start, hb_ready,
                np.full(hb_node.shape, plan.spec.heartbeat_payload_bytes, dtype=np.int64),
                np.full(hb_node.shape, MessageKind.HEARTBEAT, dtype=np.int8), np.full(hb_node.shape, -1, np.int64),
                plan.index,
            ))
        node_start += plan.n_nodes
    node = np.concatenate([p[0] for p in parts]).astype(np.int64)
    ready = np.concatenate([p[1] for p in parts]).astype(np.float64)
    app = np.concatenate([p[2] for p in parts])
    kind = np.concatenate([p[3] for p in parts])
    window = np.concatenate([p[4] for p in parts]).astype(np.int64)
    group = np.concatenate([np.full(p[0].shape, p[5], dtype=np.int64) for p in parts])
    if _sorted(node, ready, kind):  # one plan's windows without heartbeats come sorted: no 3-key sort
        return Messages(node, ready, app, kind, window, group)
    order = np.lexsort((kind, ready, node))
    return Messages(node[order], ready[order], app[order], kind[order], window[order], group[order])


def merge_messages(a: Messages, b: Messages) -> Messages:
    """`a` and `b` in one (node, ready time, kind) order."""
    node = np.concatenate([a.node, b.node])
    ready = np.concatenate([a.ready_s, b.ready_s])
    kind = np.concatenate([a.kind, b.kind])
    order = np.lexsort((kind, ready, node))
    return Messages(node[order], ready[order], np.concatenate([a.app_bytes, b.app_bytes])[order], kind[order],
                    np.concatenate([a.window, b.window])[order], np.concatenate([a.group, b.group])[order])


def _sorted(node: np.ndarray, ready: np.ndarray, kind: np.ndarray) -> bool:
    """Whether (node, ready, kind) is already in lexicographic order."""
    if node.size < 2:
        return True
    dn, same = np.diff(node), node[1:] == node[:-1]
    if (dn < 0).any():
        return False
    dr = np.diff(ready)
    if (same & (dr < 0)).any():
        return False
    return not (same & (dr == 0) & (kind[1:] < kind[:-1])).any()


__all__ = ["merge_messages", "policy_messages"]
