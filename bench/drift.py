"""A drifting farm three ways: a frozen model, cloud retraining from raw uploads, federated rounds.

The study behind docs/drift.md. It runs scenarios/farm_drift.yaml (300 nodes, eight weeks, the signal
drifting from early summer into autumn, on-device detection) three ways:

- frozen: no rounds (`federated=null`): the zoo model all season;
- cloud retraining: `federated.mode=central`: every week the drawn nodes send their week's windows raw,
  the cloud retrains the last layer on what arrived and pushes it (FUOTA);
- federated: the scenario as written: the drawn nodes train the last layer on their own windows and send
  the weights; the server averages and pushes.

and writes docs/drift.md (weekly recall of the ground-truth leaks and false alarms per node and day,
energy, bytes on air, bytes of raw data sent or kept, the held-out accuracy per round) and
docs/drift.png.

    python bench/drift.py                      # the study of docs/drift.md
    python bench/drift.py --nodes 60           # a quicker look (written to --out)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from iotsim.engine import run_scenario
from iotsim.policies import MessageKind
from iotsim.results.tables import events_table, federated_table, summary_table
from iotsim.scenario.yaml_source import read_yaml
from iotsim.sweep.overrides import apply_overrides, parse_set

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "scenarios" / "farm_drift.yaml"
VARIANTS = {
    "frozen": ["federated=null"],
    "cloud retraining": ["federated.mode=central"],
    "federated": [],
}
WEEK_S = 7 * 86400.0


def run_variant(sets: list[str], nodes: int | None):
    doc = read_yaml(SCENARIO)
    extra = [f"fleet.soil.count={nodes}"] if nodes else []
    scenario = apply_overrides(doc, [(o.path, o.values[0]) for o in map(parse_set, sets + extra)])
    return run_scenario(scenario)


def weekly(result) -> pd.DataFrame:
    """Per week: recall of the leaks that start in it, and false alarms (positive decisions about event-free
    windows) per node and day, from the on-device policy's decisions."""
    out = result.outcomes[0]
    plan = result.plans[0]
    ev = events_table(result)
    ev["week"] = (ev.onset_s // WEEK_S).astype(int)
    rows = ev.groupby("week").agg(events=("detected", "size"), recall=("detected", "mean"))
    m = out.messages
    positive = out.decision_positive & (m.kind == MessageKind.EVENT)
    false = positive & (plan.event_id[np.maximum(m.window, 0)] < 0)
    week = (out.decision_time_s[false] // WEEK_S).astype(int)
    counts = np.bincount(week[week < len(rows)], minlength=len(rows))
    rows["false_alarms_per_node_day"] = counts / (plan.n_nodes * 7.0)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=None, help="fleet size (default: the scenario's 300)")
    ap.add_argument("--out", type=Path, default=REPO / "docs", help="folder for drift.md and drift.png")
    args = ap.parse_args()

    results, walls = {}, {}
    for name, sets in VARIANTS.items():
        t = time.perf_counter()
        results[name] = run_variant(sets, args.nodes)
        walls[name] = time.perf_counter() - t
        print(f"{name}: {walls[name]:.1f} s", flush=True)

    weeks = pd.concat({k: weekly(r) for k, r in results.items()}, axis=1)
    rows = []
    for name, r in results.items():
        s = summary_table(r).iloc[0]
        out = r.outcomes[0]
        ups = out.messages.kind == MessageKind.MODEL_UPDATE
        fed = federated_table(r) if r.federated else None
        raw_sent = int(fed.raw_bytes_uploaded.sum()) if fed is not None else 0
        raw_kept = int(fed.raw_bytes_kept_on_nodes.sum()) if fed is not None else 0
        push_air = sum(ro.push.session.fragment_airtime_s * ro.push.session.fragments.total
                       for fo in r.federated for ro in fo.rounds if ro.push is not None)
        train_j = float(sum((ro.plan.train_energy_j.sum() for fo in r.federated for ro in fo.rounds)))
        rows.append({
            "variant": name,
            "recall (season)": s.recall, "precision (season)": s.precision,
            "recall, last 2 weeks": float(weeks[(name, "recall")].iloc[-2:].mean()),
            "false alarms / node / day, last 2 weeks": float(weeks[(name, "false_alarms_per_node_day")].iloc[-2:].mean()),
            "energy J / node / day": s.energy_j_per_node_day,
            "bytes uplinked / node / day": s.bytes_uplinked_per_node_day,
            "model-maintenance bytes offered": int(out.messages.app_bytes[ups].sum()),
            "raw bytes sent for training": raw_sent,
            "raw bytes kept on the nodes": raw_kept,
            "push airtime per gateway (s)": push_air,
            "training energy, whole fleet (J)": train_j,
            "wall (s)": walls[name],
        })
    table = pd.DataFrame(rows).set_index("variant")
    fed = federated_table(results["federated"])
    cen = federated_table(results["cloud retraining"])
    rounds = pd.DataFrame({
        "round": fed["round"], "deadline (d)": fed.deadline_s / 86400.0,
        "frozen": fed.frozen_accuracy, "cloud retraining": cen.accuracy, "federated": fed.accuracy,
        "federated recall": fed.recall, "federated false positives": fed.false_positive_rate,
        "frozen recall": fed.frozen_recall, "frozen false positives": fed.frozen_false_positive_rate,
    })
    rounds.loc[rounds["round"] == -1, "frozen"] = fed.accuracy[fed["round"] == -1]
    args.out.mkdir(parents=True, exist_ok=True)
    _plot(weeks, rounds, args.out / "drift.png")
    text = [
        "# A drifting farm: frozen model, cloud retraining, federated rounds",
        "",
        "    python bench/drift.py" + (f" --nodes {args.nodes}" if args.nodes else ""),
        "",
        f"scenarios/farm_drift.yaml ({results['federated'].n_nodes} nodes, 56 days, on-device detection; the signal's "
        "phases at days 14, 28 and 42 are in the scenario). Run three ways; each is one `iotsim run` of the "
        "scenario with the override shown in bench/drift.py.",
        "",
        "## Season totals",
        "",
        _reading(table, rounds),
        "",
        _markdown(table.reset_index(), ".4g"),
        "",
        "## Weekly recall of the leaks (by onset week) and false alarms per node and day",
        "",
        _markdown(_flat(weeks), ".3f"),
        "",
        "## Held-out accuracy after each round (2,000 windows of the signal at the round's deadline, half in a leak)",
        "",
        _markdown(rounds, ".4f"),
        "",
        "![weekly recall and held-out accuracy](drift.png)",
        "",
    ]
    (args.out / "drift.md").write_text("\n".join(text))
    print(table.to_string())
    print(weeks.to_string())
    print(rounds.to_string())
    return 0


def _reading(table: pd.DataFrame, rounds: pd.DataFrame) -> str:
    """What the numbers say, in words (every figure from the tables below)."""
    t = table
    fa = t["false alarms / node / day, last 2 weeks"]
    e = t["energy J / node / day"]
    last = rounds.iloc[-1]
    return (
        f"In the last two weeks (the strongest drift) the frozen model raises {fa['frozen']:.2f} false alarms per node "
        f"and day; retraining its last layer brings that to {fa['cloud retraining']:.2f} in the cloud and "
        f"{fa['federated']:.2f} with federated rounds, at the same leak recall "
        f"({t['recall, last 2 weeks'].min():.3f}-{t['recall, last 2 weeks'].max():.3f}: a six-hour leak is caught "
        f"by some window either way). On held-out windows of the last week the models score {last['frozen']:.3f} "
        f"(frozen), {last['cloud retraining']:.3f} (cloud) and {last['federated']:.3f} (federated). Cloud retraining "
        f"costs energy and airtime: the nodes send {t.loc['cloud retraining', 'raw bytes sent for training']:,.0f} B "
        f"of raw windows ({e['cloud retraining']:.3f} J per node and day against {e['frozen']:.3f} frozen); federated "
        f"rounds send {t.loc['federated', 'model-maintenance bytes offered']:,.0f} B of weights, keep those windows on "
        f"the nodes and spend {t.loc['federated', 'training energy, whole fleet (J)']:.2f} J of MCU time in the whole "
        f"fleet on training, so the fleet's energy ({e['federated']:.3f} J per node and day) stays at the frozen "
        f"model's (fewer false alarms to send pay for it). Neither gets back to the {rounds.iloc[0]['frozen']:.3f} of "
        "the start: retraining the last layer on the frozen layers' features recovers part of the drift only, and "
        "the cloud, with every window of the drawn nodes, does no better than the average of their own updates.")


def _flat(weeks: pd.DataFrame) -> pd.DataFrame:
    """The weekly table with one header row: week, then variant / figure."""
    out = weeks.copy()
    out.columns = [f"{a}: {b}" for a, b in out.columns]
    out.insert(0, "week", out.index + 1)
    return out


def _markdown(df: pd.DataFrame, fmt: str) -> str:
    """A pipe table (floats with `fmt`)."""
    def cell(v):
        if isinstance(v, (float, np.floating)):
            return "" if np.isnan(v) else format(v, fmt)
        if isinstance(v, (int, np.integer)):
            return f"{v:,}"
        return str(v)

    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + " --- |" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def _plot(weeks: pd.DataFrame, rounds: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name in VARIANTS:
        a.plot(weeks.index + 1, weeks[(name, "recall")], marker="o", label=name)
    a.set_xlabel("week (leak onset)")
    a.set_ylabel("leaks detected")
    a.set_title("Recall by week")
    a.legend()
    days = rounds["deadline (d)"].fillna(7.0)
    for name in VARIANTS:
        b.plot(days, rounds[name], marker="o", label=name)
    b.set_xlabel("day")
    b.set_ylabel("held-out accuracy")
    b.set_title("Model accuracy on the signal of the day")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
