"""Static PNG plots of one scenario run (energy, battery life, detection latency, uplink).

Everything is drawn on ``matplotlib.figure.Figure`` objects with the Agg canvas, so
importing this module does not change pyplot's global backend or state, and figures are
never registered with pyplot.  PNGs are written with a fixed size and dpi and without
the "Software" metadata entry, so the same inputs give byte-identical files.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import matplotlib
import matplotlib.cm
import matplotlib.colors
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

SECONDS_PER_DAY = 86400.0
DAYS_PER_YEAR = 365.25
DPI = 100
PNG_METADATA = {"Software": None}

ENERGY_BREAKDOWN_PNG = "energy_breakdown.png"
BATTERY_LIFE_PNG = "battery_life.png"
LATENCY_CDF_PNG = "latency_cdf.png"
BYTES_ON_AIR_PNG = "bytes_on_air.png"
MESH_TREE_PNG = "mesh_tree.png"
SOLAR_PNG = "solar.png"

# Figure sizes in inches (x DPI = pixels).
_ENERGY_SIZE_PER_GROUP = (4.5, 4.5)
_BATTERY_SIZE = (8.0, 4.8)
_LATENCY_SIZE = (8.0, 4.8)
_BYTES_SIZE = (15.0, 4.8)

_ENERGY_COLUMN_RE = re.compile(r"^energy_(.+)_j$")
_UNATTRIBUTED = "other (unattributed)"
# Components whose share of the total below this is treated as rounding noise.
_UNATTRIBUTED_MIN_SHARE = 1e-6
# Ratio max/min above which a quantity is drawn on a log axis.
_WIDE_RANGE_RATIO = 30.0

_KNOWN_POLICY_COLORS = {
    "cloud_offload": "#1f77b4",
    "on_device": "#2ca02c",
    "cascade": "#ff7f0e",
}
_KNOWN_COMPONENT_COLORS = {
    "mcu": "#4c72b0",
    "sensor": "#55a868",
    "radio": "#c44e52",
    _UNATTRIBUTED: "#bbbbbb",
}
_PALETTE = [
    "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#d62728", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
]
_DELIVERED_COLOR = "#2ca02c"
_LOSS_COLORS = {  # by Fate.reason (iotsim.network.fate)
    "collision": "#d62728",
    "below_sensitivity": "#9467bd",
    "duty_cycle": "#ff7f0e",
    "demodulators_busy": "#8c564b",
    "gateway_transmitting": "#e377c2",
    "link_retries": "#17becf",
    "pending_at_end": "#7f7f7f",
    "channel_access": "#bcbd22",
    "queue_full": "#aec7e8",
    "no_route": "#c5b0d5",
    "relay_dead": "#ff9896",
}
# The columns of the packets table the plots read (the writer passes iotsim.results.tables.packet_counts: these
# columns counted per policy, group and fate, with a `count` column).
PACKET_COLUMNS = ["policy", "group", "airtime_s", "delivered", "loss_reason"]
_GROUP_LINESTYLES = ["-", "--", ":", "-."]
_GROUP_HATCHES = ["", "//", "..", "xx", "\\\\", "++"]


# --------------------------------------------------------------------------- helpers


def _frame(df: pd.DataFrame | None) -> pd.DataFrame:
    return pd.DataFrame() if df is None else df


def _require(df: pd.DataFrame, columns: list[str], name: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{name} table lacks column(s) {missing}; has {list(df.columns)}")


def _with_group(df: pd.DataFrame) -> pd.DataFrame:
    """Return ``df`` with a string ``group`` column ("all" when absent).

    A shallow copy: the columns are replaced, never written in place, so ``df`` is left as it was
    without copying a large packets table.
    """
    df = df.copy(deep=False)
    if "group" not in df.columns:
        df["group"] = "all"
    df["group"] = df["group"].astype(str)
    df["policy"] = df["policy"].astype(str)
    return df


def _ordered_unique(*series: pd.Series) -> list[str]:
    """Unique string values in order of first appearance across ``series``."""
    seen: dict[str, None] = {}
    for s in series:
        for v in pd.unique(s.astype(str)).tolist():  # pd.unique keeps the order of appearance
            seen.setdefault(v, None)
    return list(seen)


def _policy_order(*frames: pd.DataFrame) -> list[str]:
    return _ordered_unique(*(f["policy"] for f in frames if len(f) and "policy" in f.columns))


def _group_order(*frames: pd.DataFrame) -> list[str]:
    cols = [f["group"] for f in frames if len(f) and "group" in f.columns]
    return _ordered_unique(*cols) if cols else ["all"]


def _color_map(names: list[str], known: dict[str, str]) -> dict[str, str]:
    colors: dict[str, str] = {}
    spare = [c for c in _PALETTE if c not in known.values()]
    i = 0
    for name in names:
        if name in known:
            colors[name] = known[name]
        else:
            colors[name] = spare[i % len(spare)]
            i += 1
    return colors


def _new_figure(size: tuple[float, float]) -> Figure:
    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path | None) -> Path | Figure:
    if path is None:  # `figures`: the figure itself
        return fig
    fig.savefig(path, format="png", dpi=DPI, metadata=PNG_METADATA)
    return path


def _placeholder(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center",
            fontsize=12, color="#555555")
    ax.set_xticks([])
    ax.set_yticks([])


def _wide_range(values) -> bool:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    return v.size > 0 and v.max() / v.min() > _WIDE_RANGE_RATIO


def _fmt(x: float) -> str:
    if not np.isfinite(x):
        return "n/a"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}"


# --------------------------------------------------------------------------- tables


def energy_components(nodes: pd.DataFrame) -> list[str]:
    """Component names from ``energy_<component>_j`` columns, in column order."""
    out = []
    for col in nodes.columns:
        m = _ENERGY_COLUMN_RE.match(str(col))
        if m:
            out.append(m.group(1))
    return out


def energy_per_node_day(nodes: pd.DataFrame) -> pd.DataFrame:
    """Mean energy per node per day (J/day) by component, indexed by (group, policy).

    Columns are the components found as ``energy_<component>_j`` (in column order).  When
    the table also has the total ``energy_j`` and the components add up to less than it,
    the remainder is reported as an extra ``"other (unattributed)"`` column so that the
    stacked bar height equals the total.  Without component columns the total is reported
    as a single ``"total"`` column.
    """
    nodes = _frame(nodes)
    if len(nodes) == 0:
        return pd.DataFrame(index=pd.MultiIndex.from_tuples([], names=["group", "policy"]))
    _require(nodes, ["policy", "duration_s"], "nodes")
    nodes = _with_group(nodes)
    comps = energy_components(nodes)
    if not comps and "energy_j" not in nodes.columns:
        raise ValueError("nodes table has neither energy_<component>_j columns nor energy_j")
    days = nodes["duration_s"].astype(float) / SECONDS_PER_DAY
    days = days.where(days > 0)
    per_day = pd.DataFrame({"group": nodes["group"], "policy": nodes["policy"]})
    if comps:
        for c in comps:
            per_day[c] = nodes[f"energy_{c}_j"].astype(float) / days
    else:
        per_day["total"] = nodes["energy_j"].astype(float) / days
    if comps and "energy_j" in nodes.columns:
        rest = nodes["energy_j"].astype(float) / days - per_day[comps].sum(axis=1)
        total = nodes["energy_j"].astype(float) / days
        if (rest > _UNATTRIBUTED_MIN_SHARE * total.abs()).any():
            per_day[_UNATTRIBUTED] = rest.clip(lower=0.0)
    per_day = per_day.dropna()
    groups = _group_order(per_day)
    policies = _policy_order(per_day)
    table = per_day.groupby(["group", "policy"], sort=False).mean()
    order = [(g, p) for g in groups for p in policies if (g, p) in table.index]
    return table.loc[order]


def packet_fate(packets: pd.DataFrame) -> pd.DataFrame:
    """Packet counts per policy by fate: ``"delivered"`` then each loss reason (sorted).

    One row per packet, or rows counting ``count`` packets each. Lost packets with an empty reason are
    counted as ``"lost (unknown)"``.
    """
    packets = _frame(packets)
    if len(packets) == 0:
        return pd.DataFrame()
    _require(packets, ["policy", "delivered"], "packets")
    p = _with_group(packets)
    delivered = p["delivered"].astype(bool)
    reason = p["loss_reason"] if "loss_reason" in p.columns else pd.Series("", index=p.index)
    reason = reason.fillna("").astype(str).replace("", "lost (unknown)")
    fate = reason.where(~delivered, "delivered")
    if "count" in p.columns:  # rows of `count` packets each (iotsim.results.tables.packet_counts)
        counts = pd.crosstab(p["policy"], fate, values=p["count"], aggfunc="sum").fillna(0).astype(np.int64)
    else:
        counts = pd.crosstab(p["policy"], fate)
    counts.columns.name = None
    losses = sorted(c for c in counts.columns if c != "delivered")
    cols = (["delivered"] if "delivered" in counts.columns else []) + losses
    return counts.reindex(index=_policy_order(p), columns=cols, fill_value=0)


# --------------------------------------------------------------------------- plots


def _plot_energy_breakdown(path: Path, nodes: pd.DataFrame, policies: list[str]) -> Path:
    table = energy_per_node_day(nodes)
    groups = list(dict.fromkeys(table.index.get_level_values("group"))) if len(table) else []
    n = max(1, len(groups))
    w, h = _ENERGY_SIZE_PER_GROUP
    fig = _new_figure((max(6.0, w * n), h))
    axes = fig.subplots(1, n, sharey=True, squeeze=False)[0]
    fig.suptitle("Mean energy per node per day, by component")
    if not len(table):
        ax = axes[0]
        _placeholder(ax, "no node energy data")
        ax.set_xlabel("Policy")
        ax.set_ylabel("Energy (J/node/day)")
        return _save(fig, path)
    comps = [c for c in table.columns if (table[c].abs() > 0).any()] or list(table.columns[:1])  # drawable only
    colors = _color_map(comps, _KNOWN_COMPONENT_COLORS)
    for k, (ax, group) in enumerate(zip(axes, groups)):
        sub = table.loc[group]
        pols = [p for p in policies if p in sub.index]
        x = np.arange(len(pols))
        bottom = np.zeros(len(pols))
        for c in comps:
            vals = sub.loc[pols, c].to_numpy(dtype=float)
            ax.bar(x, vals, 0.6, bottom=bottom, color=colors[c], label=c.replace("_", " "),
                   edgecolor="white", linewidth=0.5)
            bottom += vals
        for xi, total in zip(x, bottom):
            ax.annotate(_fmt(total), (xi, total), xytext=(0, 2), textcoords="offset points",
                        ha="center", va="bottom", fontsize=8)
        ax.set_xticks(x, pols)
        ax.set_xlabel("Policy")
        ax.set_title(f"group: {group}" if len(groups) > 1 else "all nodes")
        top = float(np.nanmax(table[comps].sum(axis=1).to_numpy())) if len(table) else 0.0
        ax.set_ylim(0, top * 1.15 if top > 0 else 1.0)
        if k == 0:
            ax.set_ylabel("Energy (J/node/day)")
    axes[0].legend(title="component", fontsize=8, loc="upper right")
    return _save(fig, path)


def _plot_battery_life(path: Path, nodes: pd.DataFrame, policies: list[str],
                       pcolors: dict[str, str]) -> Path:
    fig = _new_figure(_BATTERY_SIZE)
    ax = fig.subplots()
    ax.set_title("Projected battery life per node")
    ax.set_xlabel("Policy")
    ax.set_ylabel("Battery life (days)")
    nodes = _frame(nodes)
    if len(nodes) == 0:
        _placeholder(ax, "no node data")
        return _save(fig, path)
    _require(nodes, ["policy", "battery_life_days"], "nodes")
    nodes = _with_group(nodes)
    groups = _group_order(nodes)
    multi = len(groups) > 1
    data, labels, colors, hatches = [], [], [], []
    for p in policies:
        for gi, g in enumerate(groups):
            sel = nodes[(nodes["policy"] == p) & (nodes["group"] == g)]
            if not len(sel):
                continue
            life = sel["battery_life_days"].astype(float).to_numpy()
            finite = life[np.isfinite(life) & (life > 0)]
            label = f"{p}\n{g}" if multi else p
            label += f"\nn={len(sel)}"
            unbounded = int(np.sum(np.isposinf(life)))
            if unbounded:
                label += f", {unbounded} unbounded"
            if "died_at_s" in sel.columns:
                died = int(sel["died_at_s"].notna().sum())
                if died:
                    label += f", {died} died"
            data.append(finite)
            labels.append(label)
            colors.append(pcolors[p])
            hatches.append(_GROUP_HATCHES[gi % len(_GROUP_HATCHES)] if multi else "")
    all_vals = np.concatenate(data) if data else np.array([])
    if all_vals.size == 0:
        _placeholder(ax, "no finite battery-life projections")
        return _save(fig, path)
    x = np.arange(1, len(data) + 1)
    plotted = [(xi, d) for xi, d in zip(x, data) if d.size]
    bp = ax.boxplot([d for _, d in plotted], positions=[xi for xi, _ in plotted],
                    widths=0.6, patch_artist=True, showfliers=True)
    for box, (xi, _) in zip(bp["boxes"], plotted):
        box.set_facecolor(colors[xi - 1])
        box.set_alpha(0.75)
        box.set_hatch(hatches[xi - 1])
    for med in bp["medians"]:
        med.set_color("black")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_xlim(0.4, len(data) + 0.6)
    if _wide_range(all_vals):
        ax.set_yscale("log")
        ax.set_ylabel("Battery life (days, log scale)")
    else:  # a linear value axis starts at zero, so the gap between boxes is drawn to scale
        ax.set_ylim(0, float(all_vals.max()) * 1.08)
    ax.grid(axis="y", which="major", alpha=0.3)
    sec = ax.secondary_yaxis("right", functions=(lambda d: d / DAYS_PER_YEAR,
                                                 lambda y: y * DAYS_PER_YEAR))
    sec.set_ylabel("Battery life (years)")
    return _save(fig, path)


def _ecdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.sort(values)
    y = np.arange(1, x.size + 1) / x.size
    return np.concatenate([x[:1], x]), np.concatenate([[0.0], y])


def _plot_latency_cdf(path: Path, events: pd.DataFrame, policies: list[str],
                      pcolors: dict[str, str]) -> Path:
    fig = _new_figure(_LATENCY_SIZE)
    ax = fig.subplots()
    ax.set_title("Detection latency (detected events only)")
    ax.set_xlabel("Detection latency after onset (s, log scale)")
    ax.set_ylabel("Fraction of detected events")
    events = _frame(events)
    if len(events) == 0:
        _placeholder(ax, "no ground-truth events")
        return _save(fig, path)
    _require(events, ["policy", "detected", "latency_s"], "events")
    ev = _with_group(events)
    ev["detected"] = ev["detected"].fillna(False).astype(bool)
    ev["latency_s"] = ev["latency_s"].astype(float)
    groups = _group_order(ev)
    multi = len(groups) > 1
    hit = ev[ev["detected"] & np.isfinite(ev["latency_s"])]
    if len(hit) == 0:
        _placeholder(ax, "no detections")
        return _save(fig, path)
    positive = hit.loc[hit["latency_s"] > 0, "latency_s"]
    floor = positive.min() if len(positive) else 1e-3
    clipped = int((hit["latency_s"] <= 0).sum())
    for pi, p in enumerate(policies):
        for gi, g in enumerate(groups):
            sel = ev[(ev["policy"] == p) & (ev["group"] == g)]
            if not len(sel):
                continue
            recall = sel["detected"].mean()
            lat = sel.loc[sel["detected"], "latency_s"].to_numpy(dtype=float)
            lat = lat[np.isfinite(lat)]
            name = f"{p} / {g}" if multi else p
            label = f"{name} (recall {recall:.0%}, {lat.size}/{len(sel)} detected)"
            # groups by line style (policies, if one group); earlier policies drawn wider and below, so
            # coinciding curves stay visible as an outline around the later ones
            style = _GROUP_LINESTYLES[(gi if multi else pi) % len(_GROUP_LINESTYLES)]
            width = max(1.0, 3.5 - 1.0 * pi)
            if lat.size == 0:
                ax.plot([], [], color=pcolors[p], linestyle=style, linewidth=width, label=label)
                continue
            xs, ys = _ecdf(np.maximum(lat, floor))
            ax.step(xs, ys, where="post", color=pcolors[p], linestyle=style, linewidth=width, zorder=2 + pi,
                    label=label)
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    for q in (0.5, 0.95):
        ax.axhline(q, color="#999999", linewidth=0.6, linestyle=":")
    ax.grid(which="major", alpha=0.3)
    if clipped:
        ax.text(0.01, 0.98, f"{clipped} latencies <= 0 s drawn at {_fmt(floor)} s",
                transform=ax.transAxes, ha="left", va="top", fontsize=8, color="#555555")
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def _grouped_bars(ax, table: pd.DataFrame, value: str, policies: list[str],
                  groups: list[str], pcolors: dict[str, str]) -> np.ndarray:
    """Bars of ``table[value]`` per policy (x) and group (side by side); returns values."""
    multi = len(groups) > 1
    width = 0.8 / len(groups)
    vals = []
    for gi, g in enumerate(groups):
        for pi, p in enumerate(policies):
            sel = table[(table["policy"] == p) & (table["group"] == g)]
            if not len(sel):
                continue
            v = float(sel[value].iloc[0])
            if not np.isfinite(v):
                continue
            xi = pi - 0.4 + width * (gi + 0.5)
            ax.bar(xi, v, width * 0.95, color=pcolors[p],
                   hatch=_GROUP_HATCHES[gi % len(_GROUP_HATCHES)] if multi else "",
                   edgecolor="white" if not multi else "black", linewidth=0.5)
            ax.annotate(_fmt(v), (xi, v), xytext=(0, 2), textcoords="offset points",
                        ha="center", va="bottom", fontsize=7)
            vals.append(v)
    ax.set_xticks(np.arange(len(policies)), policies)
    if multi:
        from matplotlib.patches import Patch

        handles = [Patch(facecolor="white", edgecolor="black",
                         hatch=_GROUP_HATCHES[gi % len(_GROUP_HATCHES)], label=g)
                   for gi, g in enumerate(groups)]
        ax.legend(handles=handles, title="group", fontsize=8)
    vals = np.asarray(vals)
    if _wide_range(vals):
        ax.set_yscale("log")
        ax.margins(y=0.15)
    else:
        ax.set_ylim(0, float(vals.max()) * 1.15 if vals.size and vals.max() > 0 else 1.0)
    return vals


def _message_delivery(summary: pd.DataFrame) -> dict[str, float]:
    """Per policy: messages delivered / messages offered (%), all groups together, if the summary has them."""
    if not len(summary) or not {"messages_delivered", "messages_offered"} <= set(summary.columns):
        return {}
    sums = summary.groupby("policy", sort=False)[["messages_delivered", "messages_offered"]].sum()
    sums = sums[sums["messages_offered"] > 0]
    return (100.0 * sums["messages_delivered"] / sums["messages_offered"]).to_dict()


def _plot_bytes_on_air(path: Path, summary: pd.DataFrame, packets: pd.DataFrame,
                       policies: list[str], pcolors: dict[str, str]) -> Path:
    fig = _new_figure(_BYTES_SIZE)
    ax_bytes, ax_air, ax_fate = fig.subplots(1, 3)
    fig.suptitle("Uplink traffic: volume, airtime and packet fate")

    ax_bytes.set_title("Bytes uplinked per node per day")
    ax_bytes.set_xlabel("Policy")
    ax_bytes.set_ylabel("Uplink (bytes/node/day)")
    summary = _frame(summary)
    if len(summary) == 0:
        _placeholder(ax_bytes, "no summary rows")
    else:
        _require(summary, ["policy", "bytes_uplinked_per_node_day"], "summary")
        s = _with_group(summary)
        vals = _grouped_bars(ax_bytes, s, "bytes_uplinked_per_node_day", policies,
                             _group_order(s), pcolors)
        if ax_bytes.get_yscale() == "log":
            ax_bytes.set_ylabel("Uplink (bytes/node/day, log scale)")
        if vals.size == 0:
            _placeholder(ax_bytes, "no uplink data")

    ax_air.set_title("Total radio airtime (all nodes, whole run)")
    ax_air.set_xlabel("Policy")
    ax_air.set_ylabel("Airtime (s)")
    ax_fate.set_title("Packet fate (share of packets offered)")
    ax_fate.set_xlabel("Policy (packets offered)")
    ax_fate.set_ylabel("Packets (%)")
    packets = _frame(packets)
    if len(packets) == 0:
        _placeholder(ax_air, "no packets sent")
        _placeholder(ax_fate, "no packets sent")
        return _save(fig, path)
    _require(packets, ["policy", "airtime_s", "delivered"], "packets")
    pk = _with_group(packets)
    air = (pk.assign(airtime_s=pk["airtime_s"].astype(float))
           .groupby(["policy", "group"], sort=False)["airtime_s"].sum().reset_index())
    _grouped_bars(ax_air, air, "airtime_s", policies, _group_order(pk), pcolors)
    if ax_air.get_yscale() == "log":
        ax_air.set_ylabel("Airtime (s, log scale)")

    fate = packet_fate(pk)
    fate = fate.reindex([p for p in policies if p in fate.index])
    share = fate.div(fate.sum(axis=1), axis=0) * 100.0
    colors = _color_map([c for c in fate.columns if c != "delivered"], _LOSS_COLORS)
    colors["delivered"] = _DELIVERED_COLOR
    x = np.arange(len(share))
    bottom = np.zeros(len(share))
    for c in share.columns:
        v = share[c].to_numpy(dtype=float)
        ax_fate.bar(x, v, 0.6, bottom=bottom, color=colors[c], label=c.replace("_", " "),
                    edgecolor="white", linewidth=0.5)
        bottom += v
    delivered = share["delivered"] if "delivered" in share.columns else pd.Series(0.0, share.index)
    messages = _message_delivery(summary)
    for xi, (p, d) in zip(x, delivered.items()):
        text = f"packets: {d:.1f}% delivered"
        if p in messages:
            text += f"\nmessages: {messages[p]:.1f}% delivered"
        ax_fate.annotate(text, (xi, 100.0), xytext=(0, 2),
                         textcoords="offset points", ha="center", va="bottom", fontsize=7)
    ax_fate.set_xticks(x, [f"{p}\n({int(n):,})" for p, n in zip(share.index, fate.sum(axis=1))])
    ax_fate.set_ylim(0, 115)
    ax_fate.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), title="fate",
                   title_fontsize=7)
    return _save(fig, path)


def plot_mesh_tree(path: Path | None, mesh: pd.DataFrame) -> Path | Figure:
    """The routing tree of a mesh run (the mesh table), one panel per policy: each node at its place, a line to
    its parent, coloured by the energy it draws per day (one colour scale for all panels); border routers as
    black triangles, nodes without a route as crosses."""
    _require(mesh, ["policy", "x_m", "y_m", "parent_x_m", "parent_y_m", "energy_j_per_day"], "mesh")
    policies = _ordered_unique(mesh["policy"])
    fig = _new_figure((4.2 * max(len(policies), 1) + 0.8, 4.2))
    if not policies:
        _placeholder(fig.add_subplot(1, 1, 1), "no mesh")
        return _save(fig, path)
    energy = mesh["energy_j_per_day"].to_numpy(dtype=float)
    finite = energy[np.isfinite(energy)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    norm = matplotlib.colors.Normalize(vmin=vmin, vmax=vmax if vmax > vmin else vmin + 1e-9)
    cmap = matplotlib.colormaps["viridis"]
    axes = fig.subplots(1, len(policies), squeeze=False)[0]
    for ax, policy in zip(axes, policies):
        d = mesh[mesh["policy"] == policy]
        routed = d["parent_x_m"].notna().to_numpy()
        e = d["energy_j_per_day"].to_numpy(dtype=float)
        for (x, y, px, py, v) in zip(d["x_m"][routed], d["y_m"][routed], d["parent_x_m"][routed],
                                     d["parent_y_m"][routed], e[routed]):
            ax.plot([x, px], [y, py], color=cmap(norm(v)), linewidth=0.8, zorder=1)
        ax.scatter(d["x_m"][routed], d["y_m"][routed], c=e[routed], cmap=cmap, norm=norm, s=14, zorder=2)
        if (~routed).any():
            ax.scatter(d["x_m"][~routed], d["y_m"][~routed], marker="x", color="#c44e52", s=18, zorder=2,
                       label="no route")
            ax.legend(fontsize=7, loc="upper right")
        # border routers: parents that are not nodes
        nodes_xy = set(zip(d["x_m"], d["y_m"]))
        routers = sorted(set(zip(d["parent_x_m"][routed], d["parent_y_m"][routed])) - nodes_xy)
        ax.scatter([x for x, _ in routers], [y for _, y in routers], marker="^", color="black", s=50, zorder=3)
        ax.set_title(policy, fontsize=9)
        ax.set_xlabel("x (m)", fontsize=8)
        ax.set_ylabel("y (m)", fontsize=8)
        ax.set_aspect("equal", adjustable="datalim")
        ax.tick_params(labelsize=7)
    bar = fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=list(axes), fraction=0.03)
    bar.set_label("energy (J/day)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    return _save(fig, path)


def write_plots(out_dir: Path, summary: pd.DataFrame, nodes: pd.DataFrame,
                events: pd.DataFrame, packets: pd.DataFrame) -> list[Path]:
    """Write the four report PNGs into ``out_dir`` (created if needed); return their paths.

    Order of the returned list: energy breakdown, battery life, latency CDF, bytes on air.
    Empty (or ``None``) tables give a plot carrying a short "no data" message instead of
    failing; non-empty tables missing a required column raise ``ValueError``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary, nodes, events, packets = map(_frame, (summary, nodes, events, packets))
    policies = _policy_order(summary, nodes, events, packets)
    pcolors = _color_map(policies, _KNOWN_POLICY_COLORS)
    return [
        _plot_energy_breakdown(out_dir / ENERGY_BREAKDOWN_PNG, nodes, policies),
        _plot_battery_life(out_dir / BATTERY_LIFE_PNG, nodes, policies, pcolors),
        _plot_latency_cdf(out_dir / LATENCY_CDF_PNG, events, policies, pcolors),
        _plot_bytes_on_air(out_dir / BYTES_ON_AIR_PNG, summary, packets, policies, pcolors),
    ]


FIGURE_NAMES = ("energy_breakdown", "battery_life", "latency_cdf", "bytes_on_air")


def figures(summary: pd.DataFrame, nodes: pd.DataFrame, events: pd.DataFrame, packets: pd.DataFrame,
            names: tuple[str, ...] = FIGURE_NAMES) -> dict[str, Figure]:
    """The plots `write_plots` saves, as matplotlib Figures by name (those in `names`), unsaved."""
    summary, nodes, events, packets = map(_frame, (summary, nodes, events, packets))
    policies = _policy_order(summary, nodes, events, packets)
    pcolors = _color_map(policies, _KNOWN_POLICY_COLORS)
    draw = {
        "energy_breakdown": lambda: _plot_energy_breakdown(None, nodes, policies),
        "battery_life": lambda: _plot_battery_life(None, nodes, policies, pcolors),
        "latency_cdf": lambda: _plot_latency_cdf(None, events, policies, pcolors),
        "bytes_on_air": lambda: _plot_bytes_on_air(None, summary, packets, policies, pcolors),
    }
    return {name: draw[name]() for name in names}


def plot_solar(path: Path | None, solar: pd.DataFrame) -> Path | Figure:
    """Harvesting groups over the run (the solar_daily table), one column per policy: above, the store's charge at
    each day's end (median, and the band from the 10th to the 90th percentile of the nodes); below, the energy
    harvested and consumed per node per day, with the hours off per node on a second axis."""
    _require(solar, ["policy", "group", "day", "harvested_j", "consumed_j", "downtime_h", "store_p10", "store_p50",
                     "store_p90"], "solar_daily")
    policies = _ordered_unique(solar["policy"])
    fig = _new_figure((4.4 * max(len(policies), 1) + 0.8, 6.4))
    if not policies:
        _placeholder(fig.add_subplot(1, 1, 1), "no harvesting groups")
        return _save(fig, path)
    for i, policy in enumerate(policies):
        top = fig.add_subplot(2, len(policies), i + 1)
        bottom = fig.add_subplot(2, len(policies), len(policies) + i + 1)
        for group, d in solar[solar.policy == policy].groupby("group", sort=False):
            line = top.plot(d.day, 100 * d.store_p50, label=group)[0]
            top.fill_between(d.day, 100 * d.store_p10, 100 * d.store_p90, color=line.get_color(), alpha=0.2)
            bottom.plot(d.day, d.harvested_j, color=line.get_color(), label=f"{group} harvested")
            bottom.plot(d.day, d.consumed_j, color=line.get_color(), linestyle="--", label=f"{group} consumed")
            if (d.downtime_h > 0).any():
                twin = bottom.twinx()
                twin.bar(d.day, d.downtime_h, color="tab:red", alpha=0.3, width=1.0)
                twin.set_ylabel("off (h/node/day)")
        top.set_title(policy)
        top.set_ylabel("store at day end (% of capacity)")
        top.set_ylim(0, 105)
        bottom.set_xlabel("day of the run")
        bottom.set_ylabel("J per node per day")
        bottom.set_yscale("symlog", linthresh=1.0)
        if i == 0:
            top.legend(fontsize=7)
            bottom.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)

