"""Fleet-day benchmark: 10,000 nodes x 1 day x 1 window per minute, on_device and cloud_offload.

In the same process it times the event floor: a bare SimPy loop with one process per node doing
one timeout per window (14.4 M events at full size). It prints the wall times and the ratios
policy / floor. Targets: on_device <= 0.5 x floor, cloud_offload <= 3 x floor (issue 2); the confirmed variants
(confirmed uplinks, up to 8 transmissions, network ADR, on the closed loop: compiled where it can be
built, else SimPy; `--engine` chooses): on_device <= 1 x floor, cloud_offload <= 4 x floor (issue 11).

    python bench/fleet.py                   # full size
    python bench/fleet.py --nodes 1000      # quicker look

The nodes sample the farm signal every 5 s (12-sample windows, one a minute) on 36 km^2 of open
farmland with 9 gateways; the zoo's farm model was trained on 5-minute samples, so the run warns
that its detection numbers are not meaningful: this benchmark measures the engine's speed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import time

import numpy as np
import simpy

from iotsim.engine import run_scenario
from iotsim.link import loop_native
from iotsim.radio.propagation import hata_open_area_log_distance
from iotsim.results.tables import summary_table
from iotsim.scenario.model import Scenario


VARIANTS = ("on_device", "cloud_offload", "confirmed_on_device", "confirmed_cloud_offload")


def event_floor_s(nodes: int, duration_s: float, period_s: float, seed: int = 0) -> tuple[float, int]:
    """Wall time of one SimPy timeout per window per node, and the number of events."""
    rng = np.random.default_rng(seed)
    phases = (rng.random(nodes) * period_s).tolist()
    env = simpy.Environment()
    count = [0]

    def node(env, phase):
        yield env.timeout(phase)
        while True:
            count[0] += 1
            yield env.timeout(period_s)

    t0 = time.perf_counter()
    for p in phases:
        env.process(node(env, p))
    env.run(until=duration_s)
    return time.perf_counter() - t0, count[0]


def bench_scenario(nodes: int, duration_s: float, policy: str, model: str = "farm_soil_int8",
                   confirmed: bool = False) -> Scenario:
    side_m = 6000.0
    pl_d0, d0, exponent = hata_open_area_log_distance()
    gateways = [{"id": f"gw{i}{j}", "position_m": [side_m * (i + 0.5) / 3, side_m * (j + 0.5) / 3]}
                for i in range(3) for j in range(3)]
    return Scenario.model_validate({
        "name": "bench_fleet",
        "seed": 1,
        "duration": duration_s,
        "fleet": [{
            "group": "nodes",
            "count": nodes,
            "device": "nrf52840_sx1262_2xaa",
            "placement": {"kind": "uniform", "area_m": [side_m, side_m]},
            "workload": {"signal": "farm.soil_climate", "sample_period": "5s", "window": 12},
            "model": model,
            "heartbeat": "6h",
        }],
        "network": {
            "gateways": gateways,
            # confirmed variants: every frame acknowledged or retried (up to 8 transmissions), network ADR
            "lorawan": {"sf": "auto", "tx_power_dbm": 14,
                        **({"confirmed": True, "nb_trans": 8, "adr": True} if confirmed else {})},
            # open farmland (Okumura-Hata open area, 30 m masts): most nodes reach a gateway at SF7-SF8
            "propagation": {"pl_d0_db": pl_d0, "d0_m": d0, "exponent": exponent, "shadowing_sigma_db": 8.0},
        },
        "policies": [policy],
        "outputs": {"plots": False, "report": "none", "packets_table": False},
    })


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=10_000)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--model", default="farm_soil_int8", help="int8 model taking 12 x 3 farm windows")
    ap.add_argument("--json", action="store_true", help="print one JSON line instead of text")
    ap.add_argument("--only", nargs="*", choices=VARIANTS, help="run only these variants")
    ap.add_argument("--engine", choices=loop_native.ENGINES, default=None,
                    help="closed-loop engine of the confirmed variants (default: $IOTSIM_CLOSED_LOOP, else auto)")
    args = ap.parse_args()
    if args.engine:
        os.environ[loop_native.ENGINE_ENV] = args.engine
    engine = loop_native.engine_choice()
    if engine == "auto":
        engine = "compiled" if loop_native.lib() is not None else f"simpy ({loop_native.load_error})"
    duration = args.hours * 3600.0
    floor_s, events = event_floor_s(args.nodes, duration, 60.0)
    gc.collect()
    rows = {"nodes": args.nodes, "hours": args.hours, "windows": events, "floor_s": floor_s,
            "floor_events_per_s": events / floor_s, "closed_loop_engine": engine}
    for variant in VARIANTS:
        if args.only and variant not in args.only:
            continue
        policy = variant.removeprefix("confirmed_")
        scenario = bench_scenario(args.nodes, duration, policy, args.model, confirmed=variant.startswith("confirmed_"))
        t0 = time.perf_counter()
        result = run_scenario(scenario)
        summary = summary_table(result)
        wall = time.perf_counter() - t0
        rows[f"{variant}_s"] = wall
        rows[f"{variant}_ratio"] = wall / floor_s
        rows[f"{variant}_frames"] = int(summary.packets_on_air.sum())
        rows[f"{variant}_delivered"] = int(summary.packets_delivered.sum())
        rows[f"{variant}_message_delivery_ratio"] = float(summary.message_delivery_ratio.mean())
        transmissions = int(round(float((summary.attempts_per_packet * summary.packets_on_air).sum())))
        rows[f"{variant}_transmissions"] = transmissions  # every attempt, retransmissions included
        rows[f"{variant}_us_per_transmission"] = wall / max(transmissions, 1) * 1e6
        rows["warnings"] = result.warnings
        del result, summary
        gc.collect()
    rows["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.json:
        print(json.dumps(rows))
        return
    print(f"fleet: {args.nodes:,} nodes x {args.hours:g} h x 1 window/min = {events:,} windows")
    print(f"event floor (bare SimPy, one timeout per window): {floor_s:8.2f} s  ({events / floor_s:,.0f} events/s)")
    print(f"closed loop (confirmed variants): {engine}")
    for variant in VARIANTS:
        if variant + "_s" in rows:
            print(f"{variant:>24}: {rows[variant + '_s']:8.2f} s  = {rows[variant + '_ratio']:.2f} x floor  "
                  f"({rows[variant + '_frames']:,} frames on air, {rows[variant + '_delivered']:,} delivered, "
                  f"messages delivered {rows[variant + '_message_delivery_ratio']:.4f}; "
                  f"{rows[variant + '_transmissions']:,} transmissions, "
                  f"{rows[variant + '_us_per_transmission']:.0f} us each)")
    print(f"peak RSS {rows['peak_rss_mb']:,.0f} MB")
    for warning in rows["warnings"]:
        print(f"note: {warning}")


if __name__ == "__main__":
    main()
