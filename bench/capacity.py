"""Capacity of one LoRaWAN gateway: message delivery against meters per gateway, each effect on and off.

The study behind docs/capacity.md. It runs scenarios/city_meters.yaml (cloud_offload: every meter
reports its hourly readings, one day) for a grid of fleet sizes and these variants:

- all effects: 8 demodulator paths, Croce et al. inter-SF rejection, 6 dB co-SF capture, unconfirmed;
- unlimited demodulator paths;
- orthogonal spreading factors (no inter-SF interference);
- no capture (any same-SF overlap destroys both frames);
- confirmed uplinks (up to 8 transmissions, ACKs from the half-duplex gateway with its duty cycle);

with `--replications` seeds each, and writes docs/capacity.csv (mean and spread per point),
docs/capacity.png, and the meters per gateway at 99 % message delivery per variant (linear
interpolation between the two grid points that bracket 0.99).

    python bench/capacity.py                    # the grid of docs/capacity.md
    python bench/capacity.py --counts 500 2000 --replications 1   # a quick look
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from iotsim.engine import run_scenario
from iotsim.results.tables import summary_table
from iotsim.scenario.yaml_source import read_yaml
from iotsim.sweep.overrides import apply_overrides, parse_set

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {
    "all effects": [],
    "unlimited demodulator paths": ["network.reception.demodulator_paths=null"],
    "orthogonal SFs": ["network.reception.inter_sf=orthogonal"],
    "no capture": ["network.reception.capture_threshold_db=.inf"],
    "confirmed (NbTrans 8)": ["network.lorawan.confirmed=true", "network.lorawan.nb_trans=8"],
}
COUNTS = [250, 500, 1000, 1500, 2000, 3000, 4000, 6000]
TARGET = 0.99


def run_point(doc, overrides: list[str], count: int, seed: int) -> dict:
    sets = [parse_set(text, single=True) for text in
            [*overrides, f"fleet.meters.count={count}", f"seed={seed}", "policies=[cloud_offload]"]]
    scenario = apply_overrides(doc, [(o.path, o.values[0]) for o in sets])
    t0 = time.perf_counter()
    row = summary_table(run_scenario(scenario)).iloc[0]
    return {"count": count, "seed": seed, "message_delivery_ratio": float(row.message_delivery_ratio),
            "packet_delivery_ratio": float(row.packet_delivery_ratio),
            "lost_collision": int(row.packets_lost_collision),
            "lost_demodulators_busy": int(row.packets_lost_demodulators_busy),
            "lost_gateway_transmitting": int(row.packets_lost_gateway_transmitting),
            "attempts_per_packet": float(row.attempts_per_packet), "wall_s": time.perf_counter() - t0}


def crossing(counts: np.ndarray, delivery: np.ndarray, target: float = TARGET) -> float | None:
    """Fleet size where the delivery curve falls through `target` (linear between grid points)."""
    for i in range(len(counts) - 1):
        if delivery[i] >= target > delivery[i + 1]:
            f = (delivery[i] - target) / (delivery[i] - delivery[i + 1])
            return float(counts[i] + f * (counts[i + 1] - counts[i]))
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", type=int, nargs="+", default=COUNTS)
    ap.add_argument("--replications", type=int, default=2)
    ap.add_argument("--variants", nargs="*", choices=list(VARIANTS), default=list(VARIANTS))
    ap.add_argument("--out", type=Path, default=REPO / "docs")
    args = ap.parse_args()
    doc = read_yaml(REPO / "scenarios" / "city_meters.yaml")
    base_seed = int(doc.data["seed"])
    rows = []
    for name in args.variants:
        for count in args.counts:
            for r in range(args.replications):
                row = {"variant": name, **run_point(doc, VARIANTS[name], count, base_seed + r)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    runs = pd.DataFrame(rows)
    points = runs.groupby(["variant", "count"], sort=False).agg(
        message_delivery_ratio=("message_delivery_ratio", "mean"),
        message_delivery_min=("message_delivery_ratio", "min"),
        message_delivery_max=("message_delivery_ratio", "max"),
        attempts_per_packet=("attempts_per_packet", "mean"),
        runs=("seed", "size"),
    ).reset_index()
    args.out.mkdir(parents=True, exist_ok=True)
    points.to_csv(args.out / "capacity.csv", index=False, float_format="%.5f")
    answers = {}
    for name, part in points.groupby("variant", sort=False):
        answers[name] = crossing(part["count"].to_numpy(), part.message_delivery_ratio.to_numpy())
    (args.out / "capacity.json").write_text(json.dumps(
        {"target": TARGET, "meters_per_gateway_at_target": answers, "counts": args.counts,
         "replications": args.replications}, indent=2) + "\n")
    plot(points, answers, args.out / "capacity.png")
    for name, value in answers.items():
        print(f"{name:>30}: " + (f"{value:,.0f} meters per gateway at {TARGET:.0%} delivery" if value
                                  else "no crossing in the grid"))


def plot(points: pd.DataFrame, answers: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    fig, (ax, ax_tx) = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [3, 2]})
    for name, part in points.groupby("variant", sort=False):
        at = answers.get(name)
        label = f"{name} ({at:,.0f} at {TARGET:.0%})" if at else name
        line, = ax.plot(part["count"], part.message_delivery_ratio, marker="o", label=label)
        ax.fill_between(part["count"], part.message_delivery_min, part.message_delivery_max, alpha=0.15,
                        color=line.get_color())
        ax_tx.plot(part["count"], part.attempts_per_packet, marker="o", color=line.get_color(), label=name)
    ax.axhline(TARGET, color="0.4", lw=0.8, ls="--")
    ticks = sorted(points["count"].unique())
    for a in (ax, ax_tx):
        a.set_xscale("log")
        a.set_xticks(ticks)
        a.xaxis.set_major_formatter(ScalarFormatter())
        a.xaxis.set_minor_formatter(NullFormatter())
        a.tick_params(axis="x", labelrotation=45, labelsize=8)
        a.set_xlabel("meters per gateway")
        a.grid(alpha=0.3)
    ax.set_ylabel("messages delivered / offered")
    ax.set_title("Delivery (city_meters.yaml: hourly 72 B readings, one day)")
    ax.legend(fontsize=8, loc="lower left")
    ax_tx.set_ylabel("transmissions per frame")
    ax_tx.set_title("Transmissions per frame (confirmed: ACK or retry)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
