"""Mesh benchmark: an 802.15.4 mesh (ContikiMAC, one window a minute per node) against the SimPy event floor.

    python bench/mesh.py                     # 200 nodes x 6 h
    python bench/mesh.py --nodes 1000 --hours 24   # issue 16's speed target (slow in pure Python)

The nodes sit uniformly on a square sized for about 12 neighbours each within 12 m (the ContikiMAC wake-up
range of a 0 dBm radio under 40 + 30 log10(d) path loss), with one border router per 250 nodes on a grid.
They sample the farm signal every 5 s (12-sample windows, one a minute), as bench/fleet.py does; the
detection numbers are not meaningful, the wall time is. The floor is bench/fleet.py's: one SimPy timeout
per window per node.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from fleet import event_floor_s  # noqa: E402

from iotsim.engine import run_scenario  # noqa: E402
from iotsim.results.tables import summary_table  # noqa: E402
from iotsim.scenario.model import Scenario  # noqa: E402

VARIANTS = ("on_device", "cloud_offload")


def mesh_scenario(nodes: int, duration_s: float, policy: str) -> Scenario:
    side_m = math.sqrt(nodes * math.pi * 12.0**2 / 12.0)
    routers = max(1, round(nodes / 250))
    k = math.ceil(math.sqrt(routers))
    gateways = [{"id": f"br{i}", "position_m": [side_m * ((i % k) + 0.5) / k, side_m * ((i // k) + 0.5) / k]}
                for i in range(routers)]
    return Scenario.model_validate({
        "name": "bench_mesh", "seed": 1, "duration": duration_s,
        "fleet": [{"group": "nodes", "count": nodes, "device": "nrf52840_802154_2xaa",
                   "placement": {"kind": "uniform", "area_m": [side_m, side_m]},
                   "workload": {"signal": "farm.soil_climate", "sample_period": "5s", "window": 12},
                   "model": "farm_soil_int8", "heartbeat": "6h"}],
        "network": {"technology": "ieee802154", "gateways": gateways, "ieee802154": {"tx_power_dbm": 0},
                    "propagation": {"pl_d0_db": 40.0, "d0_m": 1.0, "exponent": 3.0, "shadowing_sigma_db": 4.0}},
        "policies": [policy],
        "outputs": {"plots": False, "report": "none", "packets_table": False},
    })


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=200)
    ap.add_argument("--hours", type=float, default=6.0)
    ap.add_argument("--only", nargs="*", choices=VARIANTS)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    duration = args.hours * 3600.0
    floor_s, windows = event_floor_s(args.nodes, duration, 60.0)
    rows = {"nodes": args.nodes, "hours": args.hours, "windows": windows, "floor_s": floor_s}
    for variant in args.only or VARIANTS:
        t0 = time.perf_counter()
        result = run_scenario(mesh_scenario(args.nodes, duration, variant))
        wall = time.perf_counter() - t0
        row = summary_table(result).iloc[0]
        rows[variant] = {"wall_s": wall, "ratio": wall / floor_s, "frames": int(row.packets_offered),
                         "delivered": float(row.packet_delivery_ratio),
                         "energy_j_per_node_day": float(row.energy_j_per_node_day)}
    if args.json:
        print(json.dumps(rows))
        return
    print(f"event floor (bare SimPy, one timeout per window): {floor_s:.3f} s for {windows:,} windows")
    for variant in args.only or VARIANTS:
        r = rows[variant]
        print(f"{variant:>14}: {r['wall_s']:8.2f} s = {r['ratio']:7.1f} x floor, {r['frames']:,} frames, "
              f"{r['delivered']:.3f} delivered, {r['energy_j_per_node_day']:.2f} J/node/day")


if __name__ == "__main__":
    main()
