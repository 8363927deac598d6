"""Findings of a run or a sweep: which policy is best on each metric, by how much and how sure we are;
where the energy goes and why the winner wins; and flags for results that need a second look.

Every policy of a run sees the same nodes and the same ground-truth events, so two policies are
compared unit by unit (iotsim.results.metrics.Sample): a metric that is a mean or a sum over nodes
(or events) gets a Student's t interval of the per-unit differences; a median, percentile or ratio
of sums gets a paired bootstrap (the same resampled units for both policies). These intervals say
how sure one run is about this fleet; seed-to-seed variation (placement, shadowing, events) needs
replications, which a sweep gives: there the interval is over the per-seed differences.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from iotsim.energy.ledger import ROWS
from iotsim.results.metrics import BY_NAME, GroupView, Metric, metrics_for
from iotsim.sweep.stats import mean_ci

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_MAX_DRAWS = 4_000_000  # resamples x units: fewer resamples for very large fleets (memory)
BOOTSTRAP_SEED = 0  # fixed: the same run gives the same findings
LOSS_THRESHOLD = 0.05  # flag a policy that loses more than this share of its messages
PRECISION_FRACTION = 0.5  # flag precision below this fraction of the node model's int8 accuracy
PER_WINDOWS = 10_000  # the false-alarm arithmetic is told per this many windows
FINDINGS_MD = "findings.md"
FINDINGS_JSON = "findings.json"


@dataclass
class Difference:
    policy: str
    value: float
    diff: float  # value - best value
    low: float  # 95 % CI of diff
    high: float


@dataclass
class Comparison:
    metric: str
    label: str
    group: str
    better: str  # "higher" or "lower"
    best: str  # policy; "" when every policy has the same value
    best_value: float
    differences: list[Difference]
    method: str  # how the interval was computed, e.g. "paired t across 300 nodes"
    terminal: bool = False
    kind: str = "float"  # the metric's kind (iotsim.results.metrics.Metric.kind)


@dataclass
class Findings:
    scope: str  # what the intervals cover
    comparisons: list[Comparison] = field(default_factory=list)
    energy: list[str] = field(default_factory=list)  # dominant component, why the winner wins, surprises
    flags: list[str] = field(default_factory=list)

    def comparison_lines(self, terminal_only: bool = False) -> list[str]:
        several = len({c.group for c in self.comparisons}) > 1
        return [_comparison_text(c, several) for c in self.comparisons if c.terminal or not terminal_only]

    def lines(self, terminal_only: bool = False) -> list[str]:
        """Plain-text lines: scope, comparisons, energy, flags."""
        out = [self.scope, *self.comparison_lines(terminal_only), *self.energy]
        return out + [f"FLAG: {f}" for f in self.flags]

    def to_markdown(self, title: str = "Findings") -> str:
        parts = [f"# {title}", "", self.scope, "", "## Best policy per metric", ""]
        parts += [f"- {line}" for line in self.comparison_lines()] or ["- no comparable metrics"]
        parts += ["", "## Energy", ""] + [f"- {line}" for line in self.energy or ["no energy components"]]
        parts += ["", "## Flags", ""] + [f"- {line}" for line in self.flags or ["none"]]
        return "\n".join(parts) + "\n"

    def to_dict(self) -> dict:
        return _clean(asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> "Findings":
        """The inverse of to_dict (None back to NaN), e.g. from findings.json."""
        def num(x):
            return float("nan") if x is None else x

        comparisons = []
        for c in data.get("comparisons", []):
            diffs = [Difference(d["policy"], num(d["value"]), num(d["diff"]), num(d["low"]), num(d["high"]))
                     for d in c["differences"]]
            comparisons.append(Comparison(**{**c, "best_value": num(c["best_value"]), "differences": diffs}))
        return cls(data["scope"], comparisons, list(data.get("energy", [])), list(data.get("flags", [])))


def _clean(value):
    """JSON-safe: NaN and infinities become None."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_findings(findings: Findings, out_dir, title: str) -> list:
    """findings.md and findings.json into `out_dir`; returns their paths."""
    from pathlib import Path

    out_dir = Path(out_dir)
    md, js = out_dir / FINDINGS_MD, out_dir / FINDINGS_JSON
    md.write_text(findings.to_markdown(title), encoding="utf-8")
    js.write_text(json.dumps(findings.to_dict(), indent=2) + "\n", encoding="utf-8")
    return [md, js]


# --------------------------------------------------------------------------- numbers


def fmt(x: float, signed: bool = False) -> str:
    """Three significant digits, thousands separators from 1,000; '-' for NaN."""
    if x is None or not np.isfinite(x):
        return "inf" if x is not None and np.isposinf(x) else "-"
    sign = "+" if signed and x > 0 else ""
    if abs(x) >= 1000:
        return f"{sign}{x:,.0f}"
    if abs(x) >= 100:
        return f"{sign}{x:.0f}"
    return f"{sign}{x:.3g}"


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %" if np.isfinite(x) else "-"


def _comparison_text(c: Comparison, show_group: bool) -> str:
    head = f"{c.label}{f' [{c.group}]' if show_group else ''}"
    if not c.best:
        return f"{head}: every policy {fmt(c.best_value)}"
    diffs = ", ".join(f"{d.policy} {fmt(d.diff, signed=True)} [{fmt(d.low, True)}, {fmt(d.high, True)}]"
                      for d in c.differences)
    clear = any(d.low > 0 or d.high < 0 for d in c.differences)  # some interval excludes zero
    value = f"{c.best_value:.3f}" if c.kind == "ratio" else fmt(c.best_value)
    best = f"{c.best} best, {value}" if clear else f"no clear winner ({c.best} {value}; every interval holds 0)"
    return f"{head}: {best}" + (f"; {diffs}" if diffs else "") + f" ({c.method})"


# --------------------------------------------------------------------------- statistics


def statistic(values: np.ndarray, name: str) -> np.ndarray:
    """The metric from per-unit values along the last unit axis (see Sample.statistic)."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        if name == "ratio":
            return values[..., 0].sum(axis=-1) / values[..., 1].sum(axis=-1)
        values = values.astype(np.float64)
        if name == "mean":
            return values.mean(axis=-1)
        if name == "sum":
            return values.sum(axis=-1)
        q = {"median": 50.0, "p10": 10.0, "p50": 50.0, "p95": 95.0}[name]
        return _nan_percentile(values, q)


def _nan_percentile(values: np.ndarray, q: float) -> np.ndarray:
    """np.nanpercentile(values, q, axis=-1) (linear interpolation), vectorised over the other axes
    (numpy's loops over rows in Python)."""
    ordered = np.sort(values, axis=-1)  # NaN sort last
    k = (~np.isnan(ordered)).sum(axis=-1)
    pos = q / 100.0 * np.maximum(k - 1, 0)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(k - 1, 0))
    a = np.take_along_axis(ordered, lo[..., None], axis=-1)[..., 0]
    b = np.take_along_axis(ordered, hi[..., None], axis=-1)[..., 0]
    frac = pos - lo
    out = np.where(frac > 0, a + (b - a) * frac, a)
    return np.where(k > 0, out, np.nan)


def paired_difference(a: np.ndarray, b: np.ndarray, stat: str, confidence: float = CONFIDENCE,
                      rng: np.random.Generator | None = None) -> tuple[float, float, float, str]:
    """(statistic(b) - statistic(a), CI low, CI high, "t" or "bootstrap") over units shared by a and b.

    Means and sums: Student's t interval of the per-unit differences b - a (a sum is n x the mean).
    Medians, percentiles and ratios of sums: percentile interval of a paired bootstrap (both policies
    resampled with the same units)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    point = float(statistic(b, stat) - statistic(a, stat))
    n = a.shape[0]
    if stat in ("mean", "sum"):
        d = b - a
        count, mean, _, half = mean_ci(d, confidence)
        scale = n if stat == "sum" else 1.0
        return point, point - scale * half, point + scale * half, "t"
    if n < 2:
        return point, float("nan"), float("nan"), "bootstrap"
    rng = rng or np.random.default_rng(BOOTSTRAP_SEED)
    resamples = max(200, min(BOOTSTRAP_RESAMPLES, BOOTSTRAP_MAX_DRAWS // n))
    # in blocks of resamples (the generator fills rows in order: the same draws as one call), so that a year of
    # a large fleet's events does not hold resamples x units indices at once
    block = max(1, BOOTSTRAP_MAX_DRAWS // n)
    parts = []
    for lo in range(0, resamples, block):
        idx = rng.integers(0, n, size=(min(block, resamples - lo), n))
        parts.append(statistic(b[idx], stat) - statistic(a[idx], stat))
    d = np.concatenate(parts)
    d = d[np.isfinite(d)]
    if d.size < resamples // 2:
        return point, float("nan"), float("nan"), "bootstrap"
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(d, [tail, 100 - tail])
    return point, float(low), float(high), "bootstrap"


def _best(values: dict[str, float], better: str) -> str:
    finite = {p: v for p, v in values.items() if np.isfinite(v)}
    if not finite or len(set(finite.values())) == 1:
        return ""
    pick = min if better == "lower" else max
    return pick(finite, key=finite.get)


def _unit_words(unit: str, n: int) -> str:
    return f"{n:,} {unit}{'s' if n != 1 else ''}"


# --------------------------------------------------------------------------- one run


def run_findings(result, summary: pd.DataFrame | None = None, nodes: pd.DataFrame | None = None) -> Findings:
    """Findings of one run (every policy on the same fleet)."""
    from iotsim.results.tables import nodes_table, summary_table

    nodes = nodes_table(result) if nodes is None else nodes
    summary = summary_table(result, nodes) if summary is None else summary
    scope = (f"Best policy per metric; other policies' difference from it [95 % CI] from this one run (seed "
             f"{result.scenario.seed}). Every policy sees the same nodes and events, so intervals are paired: "
             "t = t interval of per-node (or per-event) differences; bootstrap = paired bootstrap, for medians, "
             "percentiles and ratios. Seed-to-seed variation is not included: `iotsim sweep` with "
             "replications gives it.")
    f = Findings(scope)
    harvesting = any(p.spec.solar is not None for p in result.plans)
    metrics = [m for m in metrics_for(result.technology, harvesting, bool(result.updates))
               if m.better and m.sample is not None]
    for gi, plan in enumerate(result.plans):
        views = {out.policy.name: GroupView(result, out, plan, gi,
                                            nodes[(nodes.policy == out.policy.name) & (nodes.group == plan.name)])
                 for out in result.outcomes}
        rows = summary[summary.group == plan.name].set_index("policy")
        for m in metrics:
            f.comparisons.append(_compare_in_run(m, plan.name, views, rows[m.name].astype(float).to_dict()))
        f.energy += energy_findings(nodes[nodes.group == plan.name], rows, plan.name, len(result.plans) > 1)
        f.flags += _group_flags(plan, rows, nodes[nodes.group == plan.name], views, len(result.plans) > 1)
    f.flags += [f"model warning: {w}" for w in result.warnings]
    return f


def _compare_in_run(m: Metric, group: str, views: dict[str, GroupView], values: dict[str, float]) -> Comparison:
    best = _best(values, m.better)
    diffs, units = [], 0
    if best:
        rng = np.random.default_rng(BOOTSTRAP_SEED)
        base = m.sample.values(views[best])
        units = base.shape[0]
        for policy, view in views.items():
            if policy == best:
                continue
            point, low, high, how = paired_difference(base, m.sample.values(view), m.sample.statistic, rng=rng)
            diffs.append(Difference(policy, values[policy], values[policy] - values[best], low, high))
        kind = "t" if m.sample.statistic in ("mean", "sum") else "bootstrap"
    method = f"paired across {_unit_words(m.sample.unit, units)}, {kind}" if best else ""
    return Comparison(m.name, m.label, group, m.better, best, values[best] if best else next(iter(values.values())),
                      diffs, method, m.terminal, m.kind)


def _components(nodes: pd.DataFrame) -> pd.DataFrame:
    """Mean J/node/day per (policy, component), components of the ledger in its order."""
    days = nodes.lifetime_in_run_s.to_numpy() / 86400.0
    cols = {c: f"energy_{c}_j" for c in ROWS if f"energy_{c}_j" in nodes.columns}
    per_day = pd.DataFrame({c: nodes[col].to_numpy() / days for c, col in cols.items()})
    per_day["policy"] = nodes.policy.to_numpy()
    return per_day.groupby("policy", sort=False).mean()


def energy_findings(nodes: pd.DataFrame, rows: pd.DataFrame, group: str, show_group: bool = False) -> list[str]:
    """Largest energy component per policy; why the policy with the least energy wins (the components
    that differ most, J/node/day); and policies that uplink fewer bytes yet use more energy."""
    if not len(nodes) or "energy_j_per_node_day" not in rows:
        return []
    comp = _components(nodes)
    if comp.empty or not len(comp.columns):
        return []
    tag = f" [{group}]" if show_group else ""
    total = rows["energy_j_per_node_day"].astype(float)
    largest = ", ".join(f"{p} {comp.loc[p].idxmax()} {comp.loc[p].max() / total[p]:.0%}" for p in comp.index)
    lines = [f"Largest energy component{tag} (share of J/node/day): {largest}."]
    winner = _best(total.to_dict(), "lower")
    if winner:
        why = []
        for p in comp.index:
            if p == winner:
                continue
            d = comp.loc[p] - comp.loc[winner]
            top = [c for c in d.abs().sort_values(ascending=False).index[:2] if abs(d[c]) >= 0.01 * abs(d).sum()]
            parts = ", ".join(f"{c} {fmt(d[c], True)}" for c in top)
            why.append(f"{p} uses {fmt(total[p] - total[winner])} J/node/day more ({parts})")
        lines.append(f"Why {winner} uses least energy{tag}: " + "; ".join(why) + ".")
    if "bytes_uplinked_per_node_day" in rows:
        sent = rows["bytes_uplinked_per_node_day"].astype(float)
        for p in comp.index:
            for q in comp.index:
                if sent[p] < sent[q] and total[p] > total[q]:
                    d = comp.loc[p] - comp.loc[q]
                    up = d[d > 0].sort_values(ascending=False)
                    down = d[d < 0].sort_values()
                    because = ", ".join(f"{c} {fmt(v, True)}" for c, v in up.items())
                    saved = ", ".join(f"{c} {fmt(v, True)}" for c, v in down.items())
                    lines.append(
                        f"Counter-intuitive{tag}: {p} uplinks fewer bytes than {q} ({fmt(sent[p])} vs "
                        f"{fmt(sent[q])} B/node/day) yet uses {fmt(total[p] - total[q])} J/node/day more: "
                        f"{because} J/node/day" + (f" outweigh {saved}" if saved else "") + ".")
    return lines


def _group_flags(plan, rows: pd.DataFrame, nodes: pd.DataFrame, views: dict[str, GroupView],
                 show_group: bool) -> list[str]:
    tag = f" [{plan.name}]" if show_group else ""
    return loss_flags(rows, tag) + _precision_flag(plan, rows, views, tag) + calendar_flags(nodes, rows, plan.name)


def loss_flags(rows: pd.DataFrame, tag: str = "", threshold: float = LOSS_THRESHOLD) -> list[str]:
    """Policies that deliver less than 1 - threshold of the messages they offered, with the main loss reasons."""
    flags = []
    if "message_delivery_ratio" not in rows:
        return flags
    reasons = [c for c in rows.columns if c.startswith("packets_lost_")]
    for policy, r in rows.iterrows():
        ratio = float(r["message_delivery_ratio"])
        if np.isfinite(ratio) and ratio < 1 - threshold:
            lost = sorted(((int(r[c]), c.removeprefix("packets_lost_").replace("_", " ")) for c in reasons
                           if np.isfinite(r[c]) and r[c] > 0), reverse=True)
            why = ", ".join(f"{name} {n:,}" for n, name in lost[:3])
            flags.append(f"{policy}{tag} delivers {_pct(ratio)} of its messages ({int(r['messages_delivered']):,} of "
                         f"{int(r['messages_offered']):,}; more than {threshold:.0%} lost)"
                         + (f"; packets lost to {why}" if why else "") + ".")
    return flags


def calendar_flags(nodes: pd.DataFrame, rows: pd.DataFrame, group: str) -> list[str]:
    """Battery life bound by the cell's shelf life (calendar) rather than by energy."""
    if "battery_life_limit" not in nodes:
        return []
    cal = nodes.assign(cal=nodes.battery_life_limit == "calendar").groupby("policy", sort=False)["cal"].agg(["sum", "size"])
    cal = cal[cal["sum"] > 0]
    if cal.empty:
        return []
    counts = ", ".join(f"{p} {int(r['sum']):,} of {int(r['size']):,}" for p, r in cal.iterrows())
    life = ""
    if "battery_life_days" in rows:
        life = "; median battery life " + ", ".join(f"{p} {fmt(float(rows.loc[p, 'battery_life_days']))} d"
                                                    for p in cal.index if p in rows.index)
    return [f"battery life of {group} nodes is limited by calendar (the cell's shelf life), not energy ({counts} "
            f"nodes){life}: energy savings there do not lengthen battery life."]


def _precision_flag(plan, rows: pd.DataFrame, views: dict[str, GroupView], tag: str) -> list[str]:
    """Precision far below the node model's accuracy, explained by the base rate and the false-positive rate."""
    card = getattr(plan.model, "card", None) or {}
    accuracy = card.get("int8_accuracy")
    if accuracy is None or "precision" not in rows:
        return []
    precision = rows["precision"].astype(float)
    low = precision[precision < PRECISION_FRACTION * accuracy]
    if low.empty:
        return []
    policy = low.idxmax()  # the best of the flagged policies: even it is far below
    view = views[policy]
    tp, pos = _decisions(view)
    event_windows = plan.fresh_windows  # the windows an event touches
    free_windows = int(plan.n_windows.sum()) - event_windows
    if not event_windows or not free_windows:
        return []
    base = event_windows / (event_windows + free_windows)
    hit = tp / event_windows
    fpr = (pos - tp) / free_windows
    true_alarms = PER_WINDOWS * base * hit
    false_alarms = PER_WINDOWS * (1 - base) * fpr
    others = ", ".join(f"{p} {precision[p]:.3f}" for p in low.index if p != policy)
    return [f"precision{tag} {precision[policy]:.3f} ({policy}{'; ' + others if others else ''}) is far below "
            f"the model's int8 accuracy {accuracy:.3f}: events are rare. Per {PER_WINDOWS:,} windows, "
            f"{PER_WINDOWS * base:,.0f} overlap an event (base rate {_pct(base)}) and {hit:.0%} of them "
            f"get a positive decision = {true_alarms:,.0f} true alarms, while {PER_WINDOWS * (1 - base):,.0f} event-free windows x "
            f"false-positive rate {_pct(fpr)} = {false_alarms:,.0f} false alarms; precision = "
            f"{true_alarms:,.0f} / ({true_alarms:,.0f} + {false_alarms:,.0f}) = "
            f"{true_alarms / (true_alarms + false_alarms):.3f}."]


def _decisions(view: GroupView) -> tuple[int, int]:
    counts = BY_NAME["precision"].sample.values(view).sum(axis=0)
    return int(counts[0]), int(counts[1])


# --------------------------------------------------------------------------- sweeps


def sweep_findings(runs: pd.DataFrame, params: list[str], confidence: float = CONFIDENCE) -> Findings:
    """Findings of a sweep's runs table (one row per grid point, replication, policy and group): per
    grid point, group and metric, the best policy by mean over replications and its difference from
    each other policy, paired by replication (the same seed), with a t interval over replications."""
    f = Findings("Differences from the best policy per grid point with 95 % confidence intervals across "
                 "replications (paired by seed: every policy of a replication runs on the same fleet).")
    metrics = [m for m in BY_NAME.values() if m.better and m.name in runs.columns]
    for (point, group), chunk in runs.groupby(["point", "group"], sort=False):
        first = chunk.iloc[0]
        where = ", ".join(f"{p}={first[p]}" for p in params)
        label_group = f"{group}; {where}" if where else group
        for m in metrics:
            table = chunk.pivot_table(index="replication", columns="policy", values=m.name, aggfunc="first",
                                      dropna=False, sort=False)
            means = {p: float(np.nanmean(table[p])) if table[p].notna().any() else float("nan") for p in table.columns}
            best = _best(means, m.better)
            diffs = []
            if best:
                for p in table.columns:
                    if p == best:
                        continue
                    n, mean, _, half = mean_ci((table[p] - table[best]).to_numpy(dtype=np.float64), confidence)
                    diffs.append(Difference(p, means[p], mean, mean - half, mean + half))
            reps = int(table.shape[0])
            f.comparisons.append(Comparison(m.name, m.label, label_group, m.better, best,
                                            means[best] if best else next(iter(means.values()), float("nan")),
                                            diffs, f"paired across {reps} replication{'s' if reps != 1 else ''}, t",
                                            m.terminal, m.kind))
        rows = chunk.groupby("policy", sort=False).mean(numeric_only=True)
        f.flags += loss_flags(rows, f" [{label_group}]")
    return f


__all__ = ["Findings", "Comparison", "Difference", "run_findings", "sweep_findings", "paired_difference",
           "statistic", "write_findings", "loss_flags", "calendar_flags", "energy_findings", "LOSS_THRESHOLD"]
