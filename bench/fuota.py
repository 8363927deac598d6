"""Farm model rollout over LoRaWAN: class C multicast (FUOTA), multicast with class A unicast repair, and
class A unicast only (the baseline), at several fleet sizes.

The farm scenario (scenarios/farm.yaml: three gateways, EU868, SF by link budget) with the update of a
retrained farm model (`iotsim models build farm --small`, built here into a temporary folder unless
--model gives one) as a delta, sent on day 1 at the region's RX2 data rate (DR0). The runs use the
on_device policy only (the unicast polls are uplinks of the run, and the fragments answer the polls it heard).

    python bench/fuota.py                              # 300 and 5,000 nodes, 10 days
    python bench/fuota.py --nodes 300 --days 4 --loss 0.2
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from iotsim.engine import run_scenario
from iotsim.policies import MessageKind
from iotsim.results.tables import summary_table, updates_table
from iotsim.scenario import load_scenario_text

REPO = Path(__file__).resolve().parents[1]


def scenario_text(nodes: int, days: int, model: Path, update: str) -> str:
    data = yaml.safe_load((REPO / "scenarios" / "farm.yaml").read_text())
    data["fleet"][0]["count"] = nodes
    data["duration"] = f"{days}d"
    data["policies"] = ["on_device"]
    data["outputs"] = {"plots": False, "report": "none"}
    data["updates"] = [{"at": "1d", "model": str(model), **yaml.safe_load("{" + update + "}")}]
    return yaml.safe_dump(data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, nargs="+", default=[300, 5000])
    ap.add_argument("--days", type=int, default=10, help="run length (the update goes out on day 1)")
    ap.add_argument("--loss", type=float, default=0.2, help="fragment_loss of the repaired variant")
    ap.add_argument("--model", type=Path, help="the new model's .tflite (default: build the retrained farm model)")
    ap.add_argument("--only", help="run only the variants whose name contains this text")
    args = ap.parse_args()
    model = args.model
    if model is None:
        folder = Path(tempfile.mkdtemp(prefix="farm_small_"))
        subprocess.run([sys.executable, "-m", "iotsim.cli", "models", "build", "farm", "--small", "--out", str(folder)],
                       check=True, capture_output=True)
        model = folder / "farm_soil_int8.tflite"
    # at 5,000 nodes polling as fast as the duty cycle allows would put hundreds of millions of polls on air:
    # there every unicast variant polls every 10 minutes
    fast = [("+ unicast repair", f"fragment_loss: {args.loss}, unicast: repair"), ("unicast only", "unicast: only")]
    slow = [("+ unicast repair, a poll every 10 min", f"fragment_loss: {args.loss}, unicast: repair, poll_period: 10min"),
            ("unicast only, a poll every 10 min", "unicast: only, poll_period: 10min")]
    common = [("multicast", ""), ("multicast, fragment_loss", f"fragment_loss: {args.loss}")]
    cols = ["nodes", "nodes_updated", "time_to_50pct_s", "time_to_95pct_s", "time_to_99pct_s", "unicast_nodes",
            "unicast_fragments_sent", "unicast_polls_per_node", "listen_energy_j_per_node",
            "unicast_poll_energy_j_per_node"]
    print(f"farm, update on day 1 of {args.days}: {model}")
    print("| nodes | variant | updated | 50 % | 95 % | 99 % | unicast nodes | unicast fragments | polls / node "
          "| radio J / node | polls delivered | app. messages delivered | passes | wall s |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")

    def t(s):
        return "never" if s != s else (f"{s / 60:.1f} min" if s < 2 * 86400 else f"{s / 86400:.1f} d")

    for n in args.nodes:
        for name, update in common + (fast if n <= 1000 else []) + slow:
            if args.only and args.only not in name:
                continue
            t0 = time.perf_counter()
            result = run_scenario(load_scenario_text(scenario_text(n, args.days, model, update)))
            wall = time.perf_counter() - t0
            r = updates_table(result).iloc[0][cols]
            un = "" if r.unicast_nodes != r.unicast_nodes else f"{int(r.unicast_nodes):,}"
            uf = "" if r.unicast_fragments_sent != r.unicast_fragments_sent else f"{int(r.unicast_fragments_sent):,}"
            up = "" if r.unicast_polls_per_node != r.unicast_polls_per_node else f"{r.unicast_polls_per_node:,.0f}"
            polls_j = 0.0 if r.unicast_poll_energy_j_per_node != r.unicast_poll_energy_j_per_node \
                else r.unicast_poll_energy_j_per_node
            radio = r.listen_energy_j_per_node + polls_j  # listening and fragments, and the polls' frames
            o = result.outcomes[0]
            polls = o.messages.kind == MessageKind.POLL
            pd_share = f"{o.message_delivered[polls].mean():.1%}" if polls.any() else ""
            app = float(summary_table(result).message_delivery_ratio.iloc[0])
            # class A unicast: the runs until the fragments answered exactly the polls the run heard (* not settled)
            settled = o.poll_passes is None or o.poll_passes[1:3] == (0, 0)
            passes = "" if o.poll_passes is None else f"{o.poll_passes[0]}" + ("" if settled else "*")
            print(f"| {n:,} | {name} | {int(r.nodes_updated):,} | {t(r.time_to_50pct_s)} | {t(r.time_to_95pct_s)} | "
                  f"{t(r.time_to_99pct_s)} | {un} | {uf} | {up} | {radio:,.1f} | {pd_share} | {app:.2%} | {passes} "
                  f"| {wall:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
