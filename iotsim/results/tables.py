"""Tidy tables from a run: summary per (policy, group), nodes, ground-truth events, packets (frames)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from iotsim.energy.battery import LIMITS, SECONDS_PER_DAY
from iotsim.energy.ledger import ROWS, EnergyLedger
from iotsim.engine.run import RunResult
from iotsim.network.fate import REASON_NAMES, Fate
from iotsim.policies import KIND_NAMES
from iotsim.results.metrics import GroupView, metrics_for, summary_columns

PACKETS_ROW_GROUP_ROWS = 1024 * 1024  # pyarrow's default maximum row group length (pyarrow.parquet.write_table)


def nodes_table(result: RunResult) -> pd.DataFrame:
    parts = []
    for out in result.outcomes:
        by_comp = EnergyLedger.by_component(out.energy_slots_j)
        t = out.tally
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
                "sf_final": t.final_sf[sl],
                "tx_power_dbm_final": t.final_tx_power_dbm[sl],
                "energy_j": out.energy_slots_j[sl].sum(axis=1),
            }
            for c in ROWS:
                frame[f"energy_{c}_j"] = by_comp[c][sl]
            frame.update({
                "battery_life_days": out.battery_life_s[sl] / SECONDS_PER_DAY,
                "battery_life_limit": np.asarray(LIMITS, dtype=object)[out.battery_life_limit[sl]],
                "died_at_s": np.where(np.isfinite(out.died_at_s[sl]), out.died_at_s[sl], np.nan),
                "lifetime_in_run_s": out.ledger.lifetime_s[sl],
                "bytes_uplinked": t.bytes_uplinked[sl].astype(np.int64),
                "airtime_s": t.airtime_s[sl],
                "duration_s": float(result.scenario.duration),
            })
            parts.append(pd.DataFrame(frame))
            start += plan.n_nodes
    return pd.concat(parts, ignore_index=True)


def gateways_table(result: RunResult) -> pd.DataFrame:
    """One row per (policy, gateway): frames that locked a demodulator path, path utilisation, downlink
    airtime and the gateway's transmit duty cycle in its busiest sub-band (LoRaWAN)."""
    rows = []
    duration = float(result.scenario.duration)
    paths = result.scenario.network.reception.demodulator_paths
    for out in result.outcomes:
        st = out.tally.gateway_stats
        for g, gid in enumerate(result.gateway_ids):
            busy = float(st["path_busy_s"][g]) if "path_busy_s" in st else float("nan")
            bands = st["tx_band_s"][g] if "tx_band_s" in st else {}
            rows.append({
                "policy": out.policy.name,
                "gateway": gid,
                "frames_locked": int(st["frames_locked"][g]) if "frames_locked" in st else 0,
                "path_busy_s": busy,
                "path_utilisation": busy / (paths * duration) if paths else float("nan"),
                "tx_airtime_s": float(st["tx_airtime_s"][g]) if "tx_airtime_s" in st else 0.0,
                "tx_duty_cycle_max_sub_band": max(bands.values()) / duration if bands else 0.0,
            })
    return pd.DataFrame(rows, columns=["policy", "gateway", "frames_locked", "path_busy_s", "path_utilisation",
                                       "tx_airtime_s", "tx_duty_cycle_max_sub_band"])


UPDATE_COLUMNS = [
    "policy", "update", "model", "groups", "mode", "start_s", "payload_bytes", "model_bytes",
    # LoRaWAN multicast session
    "data_rate", "sf", "fragment_bytes", "fragments_uncoded", "fragments_total", "fragment_airtime_s",
    "fragment_interval_s", "session_s", "gateway_airtime_s", "gateway_duty_cycle_busiest_hour",
    # LoRaWAN class A unicast (the baseline, or the repair after the session)
    "unicast_nodes", "unicast_fragments_sent", "unicast_polls_per_node", "unicast_gateway_airtime_s",
    "unicast_poll_energy_j_per_node",
    # BLE / Wi-Fi transfers
    "packets", "packet_bytes",
    "nodes", "nodes_skipped", "nodes_updated", "nodes_rolled_back", "updated_share",
    "time_to_50pct_s", "time_to_95pct_s", "time_to_99pct_s", "listen_s_per_node", "listen_energy_j_per_node",
    "apply_s_per_updated_node", "apply_energy_j_per_updated_node",
]
"""The updates table's columns, one row per policy and update (times to a share: from the update's start; NaN when
never reached or when a column does not apply to the run's technology). The rows of one update are the same for
every policy except with class A unicast, where each policy's polls decide its fragments. nodes_updated: the nodes
running the new model by the end; nodes_rolled_back: those that had it but whose image failed its checks
(`check_failure`); apply_*_per_updated_node: per node that applied it, the rolled back included."""


def updates_table(result: RunResult) -> pd.DataFrame:
    """One row per policy and model update (scenario `updates:`): its payload and how it went out (the LoRaWAN session,
    or the BLE / Wi-Fi transfers), how fast the fleet took it and what receiving it cost the nodes (radio
    time receiving and its battery energy, transmit and ramp-up included)."""
    rows = []
    for out, u in ((o, u) for o in result.outcomes for u in result.updates_of(o)):
        r = u.rollout
        n = int(u.nodes.size)

        def share(x):
            t = u.time_to_share_s(x) if n else float("inf")
            return t if np.isfinite(t) else float("nan")

        rows.append({
            "policy": out.policy.name, "update": u.index, "model": u.model.name,
            "groups": " ".join(result.plans[g].name for g in u.group_indices),
            "mode": u.payload.mode, "start_s": u.start_s, "payload_bytes": u.payload.payload_bytes,
            "model_bytes": u.payload.new_model_bytes, **u.session.table_row(),
            "nodes": n, "nodes_skipped": u.skipped, "nodes_updated": int(u.updated.sum()),
            "nodes_rolled_back": int(u.rolled_back.sum()) if u.rolled_back is not None else 0,
            "updated_share": float(u.updated.mean()) if n else float("nan"),
            "time_to_50pct_s": share(0.5), "time_to_95pct_s": share(0.95), "time_to_99pct_s": share(0.99),
            "listen_s_per_node": float(r.rx_s.mean()) if n else 0.0,
            "listen_energy_j_per_node": float(u.listen_energy_j.mean()) if n else 0.0,
            **({"unicast_poll_energy_j_per_node": float(u.poll_energy_j.mean())} if u.unicast is not None else {}),
            "apply_s_per_updated_node": float((u.flash_s + u.cpu_s)[r.decoded].mean()) if r.decoded.any() else 0.0,
            "apply_energy_j_per_updated_node": float(u.apply_energy_j[r.decoded].mean()) if r.decoded.any() else 0.0,
        })
    return pd.DataFrame(rows, columns=UPDATE_COLUMNS)


FEDERATED_COLUMNS = [
    "policy", "round", "start_s", "deadline_s", "participants", "windows", "updates_on_time", "updates_late",
    "updates_lost", "train_s_per_participant", "train_energy_j_per_participant", "upload_bytes_per_participant",
    "upload_airtime_s_per_participant",
    "raw_bytes_uploaded", "raw_bytes_kept_on_nodes", "push_bytes",
    "pushed", "nodes_updated", "time_to_50pct_s", "time_to_95pct_s", "listen_energy_j_per_node", "accuracy",
    "recall", "false_positive_rate", "frozen_accuracy", "frozen_recall", "frozen_false_positive_rate",
]
"""The federated table's columns: one row per policy and round (scenario `federated:`). Round 0's accuracy
columns are after round 0; the model before any round is in the row with round -1; the frozen_ columns score
the groups' starting model on the same held-out windows (the signal as it is at the round's deadline). Times to a share of the
groups' nodes running the round's model are from the deadline (when the new layers go out)."""


def federated_table(result: RunResult) -> pd.DataFrame:
    """Per policy and round: who trained, whose update reached the server in time, what the work and the
    traffic cost, how the new layers went out and how good the groups' model is after the round (the int8
    model on the held-out windows)."""
    rows = []
    fp = result.federated_plan
    for fo in result.federated:
        acc, recall, fpr = fo.initial_score
        rows.append({"policy": fo.policy, "round": -1, "accuracy": acc, "recall": recall, "false_positive_rate": fpr})
        for ro in fo.rounds:
            rp, push = ro.plan, ro.push
            n = int(rp.nodes.size)

            def share(x):
                t = push.time_to_share_s(x) if push is not None else float("inf")
                return t if np.isfinite(t) else float("nan")

            rows.append({
                "policy": fo.policy, "round": rp.index, "start_s": rp.start_s, "deadline_s": rp.deadline_s,
                "participants": n, "windows": int(rp.samples.sum()), "updates_on_time": int(ro.delivered.sum()),
                "updates_late": int(ro.late.sum()), "updates_lost": int(n - ro.delivered.sum() - ro.late.sum()),
                "train_s_per_participant": float(rp.train_s.mean()) if n else 0.0,
                "train_energy_j_per_participant": float(rp.train_energy_j.mean()) if n else 0.0,
                "upload_bytes_per_participant": float(rp.upload_bytes.mean()) if n else 0.0,
                "upload_airtime_s_per_participant": float(ro.upload_airtime_s.mean()) if n else 0.0,
                "raw_bytes_uploaded": int(rp.raw_bytes.sum()) if fp.spec.mode == "central" else 0,
                "raw_bytes_kept_on_nodes": int(rp.raw_bytes.sum()) if fp.spec.mode == "fedavg" else 0,
                "push_bytes": fp.push_bytes, "pushed": push is not None,
                "nodes_updated": int(push.updated.sum()) if push is not None else 0,
                "time_to_50pct_s": share(0.5), "time_to_95pct_s": share(0.95),
                "listen_energy_j_per_node": float(push.listen_energy_j.mean()) if push is not None else 0.0,
                "accuracy": ro.accuracy, "recall": ro.recall, "false_positive_rate": ro.false_positive_rate,
                "frozen_accuracy": ro.baseline[0], "frozen_recall": ro.baseline[1],
                "frozen_false_positive_rate": ro.baseline[2],
            })
    return pd.DataFrame(rows, columns=FEDERATED_COLUMNS)


SOLAR_COLUMNS = ["policy", "group", "day", "harvested_j", "consumed_j", "stored_change_j", "charge_loss_j", "leaked_j",
                 "clipped_j", "downtime_h", "nodes_down", "store_p10", "store_p50", "store_p90"]


def solar_daily_table(result: RunResult) -> pd.DataFrame:
    """Per policy, harvesting group and day of the run: energy per node (harvested = consumed + stored change +
    charge loss + leakage + clipped), mean hours off per node, nodes off at some time that day, and the store's
    charge at the day's end as a share of its capacity (10th, 50th, 90th percentile over the nodes)."""
    rows = []
    for out in result.outcomes:
        h = out.harvest
        if h is None:
            continue
        for plan in result.plans:
            if plan.index not in h.results:
                continue
            _, r = h.results[plan.index]
            cap = r.capacity_j
            steps = r.harvested_j.shape[1]
            for d in range(int(np.ceil(steps / 24))):
                cols = slice(24 * d, min(24 * (d + 1), steps))
                n = plan.n_nodes
                end = r.energy_j[:, cols.stop] / cap
                down = (1.0 - r.up_share[:, cols]) * 3600.0
                rows.append({
                    "policy": out.policy.name, "group": plan.name, "day": d,
                    "harvested_j": r.harvested_j[:, cols].sum() / n, "consumed_j": r.consumed_j[:, cols].sum() / n,
                    "stored_change_j": (r.energy_j[:, cols.stop] - r.energy_j[:, cols.start]).sum() / n,
                    "charge_loss_j": r.charge_loss_j[:, cols].sum() / n, "leaked_j": r.leaked_j[:, cols].sum() / n,
                    "clipped_j": r.clipped_j[:, cols].sum() / n, "downtime_h": down.sum() / n / 3600.0,
                    "nodes_down": int((down.sum(axis=1) > 0).sum()),
                    "store_p10": float(np.percentile(end, 10)), "store_p50": float(np.percentile(end, 50)),
                    "store_p90": float(np.percentile(end, 90)),
                })
    return pd.DataFrame(rows, columns=SOLAR_COLUMNS)


MESH_COLUMNS = ["policy", "node_id", "group", "x_m", "y_m", "parent", "parent_x_m", "parent_y_m", "hops_to_router",
                "frames_forwarded", "frames_overheard", "relay_tx_s", "relay_rx_s", "idle_listen_s",
                "energy_j_per_day", "battery_life_days"]
"""The mesh table's columns (802.15.4 runs): one row per policy and node, with its routing-tree parent (a node id
or a border router's id; "" without a route) and what it did for others."""


def mesh_table(result: RunResult) -> pd.DataFrame:
    """Per policy and node of a mesh run: its place in the routing tree (at the start of the run), its relay work
    and its energy; empty for other technologies."""
    state = result.link_state
    if not state or "tree" not in state:
        return pd.DataFrame(columns=MESH_COLUMNS)
    n, tree, xy = state["n"], state["tree"], state["positions_m"]
    node_ids = np.concatenate([p.node_ids for p in result.plans]).astype(object)
    names = np.concatenate([node_ids, np.array(result.gateway_ids, dtype=object)])
    groups = np.concatenate([np.full(p.n_nodes, p.name, dtype=object) for p in result.plans])
    parent = tree.parent[:n]
    has = parent >= 0
    px = np.where(has, xy[np.maximum(parent, 0), 0], np.nan)
    py = np.where(has, xy[np.maximum(parent, 0), 1], np.nan)
    parts = []
    for out in result.outcomes:
        st = out.tx.node_stats
        life = np.minimum(out.died_at_s, float(result.scenario.duration))
        parts.append(pd.DataFrame({
            "policy": out.policy.name, "node_id": node_ids, "group": groups, "x_m": xy[:n, 0], "y_m": xy[:n, 1],
            "parent": np.where(has, names[np.maximum(parent, 0)], ""), "parent_x_m": px, "parent_y_m": py,
            "hops_to_router": tree.hops[:n], "frames_forwarded": st["frames_forwarded"],
            "frames_overheard": st["frames_overheard"], "relay_tx_s": st["relay_tx_s"], "relay_rx_s": st["relay_rx_s"],
            "idle_listen_s": st["idle_listen_s"],
            "energy_j_per_day": out.energy_slots_j.sum(axis=1) / (life / SECONDS_PER_DAY),
            "battery_life_days": out.battery_life_s / SECONDS_PER_DAY,
        }, columns=MESH_COLUMNS))
    return pd.concat(parts, ignore_index=True)


MESH_HOPS_COLUMNS = ["policy", "hops_to_router", "nodes", "frames", "delivered_ratio", "latency_p50_s", "latency_p95_s"]


def mesh_hops_table(result: RunResult) -> pd.DataFrame:
    """Per policy and route length (hops from the origin to its border router in the starting tree): frames, the
    share delivered and the end-to-end latency of the delivered ones (ready to the router's acknowledgement)."""
    state = result.link_state
    if not state or "tree" not in state:
        return pd.DataFrame(columns=MESH_HOPS_COLUMNS)
    hops_of = state["tree"].hops[: state["n"]]
    rows = []
    for out in result.outcomes:
        tx = out.tx
        offered = ~np.isin(tx.fate, [Fate.NODE_DEAD])
        hops = hops_of[tx.node]
        ok = tx.fate == Fate.DELIVERED
        latency = tx.start_s + tx.busy_s - tx.ready_s
        for h in np.unique(hops_of[hops_of >= 0]):
            sel = offered & (hops == h)
            lat = latency[sel & ok]
            rows.append({"policy": out.policy.name, "hops_to_router": int(h), "nodes": int((hops_of == h).sum()),
                         "frames": int(sel.sum()), "delivered_ratio": float(ok[sel].mean()) if sel.any() else np.nan,
                         "latency_p50_s": float(np.percentile(lat, 50)) if lat.size else np.nan,
                         "latency_p95_s": float(np.percentile(lat, 95)) if lat.size else np.nan})
    return pd.DataFrame(rows, columns=MESH_HOPS_COLUMNS)


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
    return np.flatnonzero(outcome.tx.fate != Fate.NODE_DEAD)


def packets_part(result: RunResult, outcome, rows: np.ndarray, message_id: np.ndarray | None = None) -> pd.DataFrame:
    """Rows of the packets table for the frames `rows` (indices into outcome.tx) of one policy. `message_id`:
    per message of outcome.messages, the number the table gives it (default: its index)."""
    group_names = [p.name for p in result.plans]
    node_ids = np.concatenate([p.node_ids for p in result.plans])
    gw_names = result.gateway_ids + [""]  # gateway -1 (none) is the last
    f = outcome.tx
    m = outcome.messages
    msg = f.message[rows]
    status = f.fate[rows]
    attempts = np.ones(rows.shape[0], dtype=np.int64) if f.attempts is None else f.attempts[rows]
    extra = {} if f.hops is None else {"hops": f.hops[rows]}  # meshes: hops each frame completed
    return pd.DataFrame({
        "node_id": node_ids[f.node[rows]],
        "policy": outcome.policy.name,
        "group": _text(group_names, m.group[msg]),
        "message": msg if message_id is None else message_id[msg],
        "kind": _text(KIND_NAMES, m.kind[msg]),
        "fragment": f.fragment[rows],
        "ready_s": f.ready_s[rows],
        "start_s": f.start_s[rows],
        "attempts": np.where(f.dropped[rows], 0, attempts),
        "airtime_s": np.where(f.dropped[rows], 0.0, f.airtime_s[rows] * attempts),  # every attempt
        "bytes": f.phy_bytes[rows],
        "sf": f.sf[rows],
        "channel": f.channel[rows].astype(np.int64),  # int8 in memory, int64 in the table
        "gateway": _text(gw_names, f.gateway[rows]),
        "delivered": status == Fate.DELIVERED,
        "loss_reason": _text(REASON_NAMES, status),
        **extra,
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


def packet_counts(result: RunResult) -> pd.DataFrame:
    """The packets table counted per (policy, group, fate): what the plots read of it, in rows of `count` frames
    (`airtime_s`: the group's time on air, every attempt, on its delivered row), from each policy's tally, so
    that no run keeps its frames for them."""
    rows = []
    for out in result.outcomes:
        t = out.tally
        start = 0
        for plan in result.plans:
            sl = slice(start, start + plan.n_nodes)
            counts = t.frames[sl].sum(axis=0)
            for f in Fate:
                if f is Fate.NODE_DEAD or not (counts[int(f)] or f is Fate.DELIVERED):
                    continue
                rows.append({"policy": out.policy.name, "group": plan.name,
                             "airtime_s": float(t.airtime_s[sl].sum()) if f is Fate.DELIVERED else 0.0,
                             "delivered": f is Fate.DELIVERED, "loss_reason": f.reason, "count": int(counts[int(f)])})
            start += plan.n_nodes
    return pd.DataFrame(rows, columns=["policy", "group", "airtime_s", "delivered", "loss_reason", "count"])


def packets_table(result: RunResult) -> pd.DataFrame:
    """One row per LoRaWAN frame the node handed to its MAC within the run (the frames a node would have
    sent after dying are left out; frames still waiting for the duty cycle at the end are listed)."""
    return pd.concat([packets_part(result, out, _packet_rows(out)) for out in result.outcomes], ignore_index=True)


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
            parts.append(packets_part(result, out, rows[lo:hi]))
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


def summary_table(result: RunResult, nodes: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (policy, group): every metric of the registry that applies to the run's technology."""
    nodes = nodes_table(result) if nodes is None else nodes
    harvesting = any(p.spec.solar is not None for p in result.plans)
    updates = bool(result.updates)
    metrics = metrics_for(result.technology, harvesting, updates)
    rows = []
    for out in result.outcomes:
        for gi, plan in enumerate(result.plans):
            view = GroupView(result, out, plan, gi, nodes[(nodes.policy == out.policy.name) & (nodes.group == plan.name)])
            rows.append({"policy": out.policy.name, "group": plan.name, **{m.name: m.compute(view) for m in metrics}})
    return pd.DataFrame(rows, columns=summary_columns(result.technology, harvesting, updates))
