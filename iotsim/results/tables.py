"""Tidy tables from a run: summary per (policy, group), nodes, ground-truth events, packets (frames)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from iotsim.energy.battery import SECONDS_PER_DAY
from iotsim.energy.ledger import COMPONENTS, EnergyLedger
from iotsim.engine.run import FRAME_FATES, FRAME_NODE_DEAD, FRAME_PENDING, NOT_SENT, RunResult
from iotsim.engine.uplink import KIND_NAMES

SUMMARY_COLUMNS = [
    "policy", "group", "nodes", "energy_j_per_node_day", "battery_life_days", "battery_life_p10_days",
    "nodes_died", "bytes_uplinked_per_node_day", "airtime_s_per_node_day", "packets_sent", "packets_delivered",
    "packets_lost", "packets_lost_collision", "packets_lost_below_sensitivity", "packets_lost_duty_cycle",
    "packets_pending_at_end", "packet_delivery_ratio", "messages_sent", "messages_delivered",
    "message_delivery_ratio", "latency_p50_s", "latency_p95_s", "events", "events_detected",
    "precision", "recall", "cloud_inferences", "cloud_wait_p95_s",
]


def nodes_table(result: RunResult) -> pd.DataFrame:
    parts = []
    for out in result.outcomes:
        by_comp = EnergyLedger.by_component(out.energy_slots_j)
        on_air = ~np.isin(out.frame_status, NOT_SENT) & ~out.frames.dropped
        n = out.energy_slots_j.shape[0]
        bytes_up = np.bincount(out.frames.node[on_air], weights=out.frames.phy_bytes[on_air], minlength=n)
        airtime = np.bincount(out.frames.node[on_air], weights=out.frames.airtime_s[on_air], minlength=n)
        start = 0
        for plan in result.plans:
            sl = slice(start, start + plan.n_nodes)
            frame = {
                "node_id": plan.node_ids,
                "policy": out.policy.name,
                "group": plan.name,
                "x_m": plan.positions_m[:, 0],
                "y_m": plan.positions_m[:, 1],
                "sf": plan.sf,
                "energy_j": out.energy_slots_j[sl].sum(axis=1),
            }
            for c in COMPONENTS:
                frame[f"energy_{c}_j"] = by_comp[c][sl]
            frame.update({
                "battery_life_days": out.battery_life_s[sl] / SECONDS_PER_DAY,
                "died_at_s": np.where(np.isfinite(out.died_at_s[sl]), out.died_at_s[sl], np.nan),
                "lifetime_in_run_s": out.ledger.lifetime_s[sl],
                "bytes_uplinked": bytes_up[sl].astype(np.int64),
                "airtime_s": airtime[sl],
                "duration_s": float(result.scenario.duration),
            })
            parts.append(pd.DataFrame(frame))
            start += plan.n_nodes
    return pd.concat(parts, ignore_index=True)


def events_table(result: RunResult) -> pd.DataFrame:
    parts = []
    for out in result.outcomes:
        for plan, latency in zip(result.plans, out.event_latency_s):
            parts.append(pd.DataFrame({
                "node_id": plan.node_ids[plan.event_node],
                "policy": out.policy.name,
                "group": plan.name,
                "onset_s": plan.event_onset_s,
                "end_s": plan.event_end_s,
                "detected": np.isfinite(latency),
                "latency_s": latency,
            }))
    return pd.concat(parts, ignore_index=True)


def packets_table(result: RunResult) -> pd.DataFrame:
    """One row per LoRaWAN frame the node handed to its MAC within the run (the frames a node would have
    sent after dying are left out; frames still waiting for the duty cycle at the end are listed)."""
    parts = []
    group_names = np.array([p.name for p in result.plans], dtype=object)
    node_ids = np.concatenate([p.node_ids for p in result.plans])
    fate_names = np.array([FRAME_FATES[k] for k in range(len(FRAME_FATES))], dtype=object)
    kind_names = np.array([KIND_NAMES[k] for k in range(len(KIND_NAMES))], dtype=object)
    gw_names = np.array(result.gateway_ids + [""], dtype=object)
    for out in result.outcomes:
        f = out.frames
        m = out.messages
        keep = out.frame_status != FRAME_NODE_DEAD
        msg = f.message[keep]
        parts.append(pd.DataFrame({
            "node_id": node_ids[f.node[keep]],
            "policy": out.policy.name,
            "group": group_names[m.group[msg]],
            "message": msg,
            "kind": kind_names[m.kind[msg]],
            "fragment": f.fragment[keep],
            "ready_s": f.ready_s[keep],
            "start_s": f.start_s[keep],
            "airtime_s": np.where(f.dropped[keep], 0.0, f.airtime_s[keep]),
            "bytes": f.phy_bytes[keep],
            "sf": f.sf[keep],
            "channel": out.frame_channel[keep],
            "gateway": gw_names[out.frame_gateway[keep]],
            "delivered": out.frame_status[keep] == 0,
            "loss_reason": fate_names[out.frame_status[keep]],
        }))
    return pd.concat(parts, ignore_index=True)


def _pct(values: np.ndarray, q: float) -> float:
    values = values[np.isfinite(values)]
    return float(np.percentile(values, q)) if values.size else float("nan")


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else float("nan")


def summary_table(result: RunResult, nodes: pd.DataFrame | None = None) -> pd.DataFrame:
    nodes = nodes_table(result) if nodes is None else nodes
    rows = []
    for out in result.outcomes:
        f = out.frames
        m = out.messages
        status = out.frame_status
        frame_group = m.group[f.message]
        for gi, plan in enumerate(result.plans):
            nd = nodes[(nodes.policy == out.policy.name) & (nodes.group == plan.name)]
            in_group = (frame_group == plan.index) & ~np.isin(status, NOT_SENT)
            st = status[in_group]
            pending = int(((frame_group == plan.index) & (status == FRAME_PENDING)).sum())
            msg_in = (m.group == plan.index)
            msg_sent = msg_in & np.isin(np.arange(len(m)), f.message[in_group])
            latency = out.event_latency_s[gi]
            days = nd.lifetime_in_run_s.to_numpy() / 86400.0
            raw_in_group = msg_in & (m.kind == 2) & out.message_delivered
            waits = out.decision_time_s[raw_in_group] - out.message_arrival_s[raw_in_group] - \
                result.scenario.network.cloud.inference_time
            rows.append({
                "policy": out.policy.name,
                "group": plan.name,
                "nodes": plan.n_nodes,
                "energy_j_per_node_day": float(np.mean(nd.energy_j.to_numpy() / days)),
                "battery_life_days": float(np.median(nd.battery_life_days)),
                "battery_life_p10_days": float(np.percentile(nd.battery_life_days, 10)),
                "nodes_died": int(nd.died_at_s.notna().sum()),
                "bytes_uplinked_per_node_day": float(np.mean(nd.bytes_uplinked.to_numpy() / days)),
                "airtime_s_per_node_day": float(np.mean(nd.airtime_s.to_numpy() / days)),
                "packets_sent": int(st.size),
                "packets_delivered": int((st == 0).sum()),
                "packets_lost": int((st != 0).sum()),
                "packets_lost_collision": int((st == 2).sum()),
                "packets_lost_below_sensitivity": int((st == 1).sum()),
                "packets_lost_duty_cycle": int((st == 3).sum()),
                "packets_pending_at_end": pending,
                "packet_delivery_ratio": _ratio(int((st == 0).sum()), int(st.size)),
                "messages_sent": int(msg_sent.sum()),
                "messages_delivered": int((msg_in & out.message_delivered).sum()),
                "message_delivery_ratio": _ratio(int((msg_in & out.message_delivered).sum()), int(msg_sent.sum())),
                "latency_p50_s": _pct(latency, 50),
                "latency_p95_s": _pct(latency, 95),
                "events": int(latency.shape[0]),
                "events_detected": int(np.isfinite(latency).sum()),
                "precision": (out.true_positive_decisions[gi] / out.positive_decisions[gi])
                if out.positive_decisions[gi] else float("nan"),
                "recall": float(np.isfinite(latency).mean()) if latency.size else float("nan"),
                "cloud_inferences": int(raw_in_group.sum()),
                "cloud_wait_p95_s": _pct(waits, 95),
            })
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
