"""Tidy tables from a run: summary per (policy, group), nodes, ground-truth events, packets (frames)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from iotsim.energy.battery import SECONDS_PER_DAY
from iotsim.energy.ledger import COMPONENTS, EnergyLedger
from iotsim.engine.run import FRAME_FATES, FRAME_NODE_DEAD, FRAME_PENDING, NOT_SENT, RunResult
from iotsim.engine.uplink import KIND_NAMES

PACKETS_ROW_GROUP_ROWS = 1024 * 1024  # pyarrow's default maximum row group length (pyarrow.parquet.write_table)
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


def _packet_rows(outcome) -> np.ndarray:
    """Frames of one policy listed in the packets table: all but those a node never sent because it died."""
    return np.flatnonzero(outcome.frame_status != FRAME_NODE_DEAD)


def _packets_part(result: RunResult, outcome, rows: np.ndarray) -> pd.DataFrame:
    """Rows of the packets table for the frames `rows` (indices into outcome.frames) of one policy."""
    group_names = [p.name for p in result.plans]
    node_ids = np.concatenate([p.node_ids for p in result.plans])
    fate_names = [FRAME_FATES[k] for k in range(len(FRAME_FATES))]
    kind_names = [KIND_NAMES[k] for k in range(len(KIND_NAMES))]
    gw_names = result.gateway_ids + [""]  # frame_gateway -1 (none) is the last
    f = outcome.frames
    m = outcome.messages
    msg = f.message[rows]
    status = outcome.frame_status[rows]
    return pd.DataFrame({
        "node_id": node_ids[f.node[rows]],
        "policy": outcome.policy.name,
        "group": _text(group_names, m.group[msg]),
        "message": msg,
        "kind": _text(kind_names, m.kind[msg]),
        "fragment": f.fragment[rows],
        "ready_s": f.ready_s[rows],
        "start_s": f.start_s[rows],
        "airtime_s": np.where(f.dropped[rows], 0.0, f.airtime_s[rows]),
        "bytes": f.phy_bytes[rows],
        "sf": f.sf[rows],
        "channel": outcome.frame_channel[rows].astype(np.int64),  # int8 in memory, int64 in the table
        "gateway": _text(gw_names, outcome.frame_gateway[rows]),
        "delivered": status == 0,
        "loss_reason": _text(fate_names, status),
    })


def _text(names: list[str], codes: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """names[codes] as a pandas string column; negative codes count from the end, as in numpy.

    Taken in Arrow, several times faster than pandas converting an object array of Python
    strings. The column gets pandas' default dtype for Arrow strings, chosen by type, not by value:
    an empty part has the same dtype as the others, so concatenating parts never turns a string
    column into object dtype (which parquet would store as another type).
    """
    codes = np.asarray(codes, dtype=np.int64)
    codes = np.where(codes < 0, codes + len(names), codes)
    return pa.array(names, type=pa.large_string()).take(codes).to_pandas().array


def packets_table(result: RunResult) -> pd.DataFrame:
    """One row per LoRaWAN frame the node handed to its MAC within the run (the frames a node would have
    sent after dying are left out; frames still waiting for the duty cycle at the end are listed)."""
    return pd.concat([_packets_part(result, out, _packet_rows(out)) for out in result.outcomes], ignore_index=True)


def packets_row_groups(result: RunResult, rows_per_group: int = PACKETS_ROW_GROUP_ROWS):
    """The rows of `packets_table`, in order, as frames of `rows_per_group` rows (the last one shorter).

    Each frame is built from its own rows only, so the whole table is never in memory at once; a
    frame that spans two policies is the concatenation of their parts, as in `packets_table`.
    """
    parts, filled, total = [], 0, 0
    for out in result.outcomes:
        rows = _packet_rows(out)
        lo = 0
        while lo < rows.size:
            hi = min(lo + rows_per_group - filled, rows.size)
            parts.append(_packets_part(result, out, rows[lo:hi]))
            filled += hi - lo
            total += hi - lo
            lo = hi
            if filled == rows_per_group:
                yield _concat_parts(parts)
                parts, filled = [], 0
    if parts:
        yield _concat_parts(parts)
    elif total == 0:  # an empty table is still one frame, which carries the columns
        yield packets_table(result)


def _concat_parts(parts: list[pd.DataFrame]) -> pd.DataFrame:
    return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)


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
