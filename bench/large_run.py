"""Large single run: the farm workload at fleet scale, the whole `iotsim run` pipeline in one process.

    python bench/large_run.py                      # 100,000 nodes x 1 day (issue 5)
    python bench/large_run.py --nodes 10000        # quicker look
    /usr/bin/time -v python bench/large_run.py     # the kernel's own peak-RSS figure, for comparison

The scenario is scenarios/farm.yaml scaled up: nRF52840 + SX1262 on 2xAA, farm.soil_climate sampled
every 5 min in 12-sample windows (one window an hour), model farm_soil_int8, heartbeat 6 h, the three
policies (cloud_offload, on_device, cascade below 0.8 confidence), seed 42, LoRaWAN EU868 with SF
chosen per node, open farmland (Okumura-Hata open area, 8 dB shadowing). Nodes are placed uniformly
on a square at farm.yaml's density (300 nodes on 2 km x 1 km = 150 per km^2: 25.8 km x 25.8 km for
100,000 nodes), under a square grid of gateways about 2 km apart (see `gateway_grid`).

It runs `run_scenario` and `write_results` (summary.csv, nodes.parquet, events.parquet,
packets.parquet, manifest.json; plots and report.html unless --no-plots / --no-report) and prints
the wall time of each phase with the peak resident memory seen in it (sampled every 20 ms from
/proc/self/statm), and the process's peak RSS (getrusage ru_maxrss).
"""

from __future__ import annotations

import argparse
import math
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path

from iotsim.engine import run_scenario
from iotsim.radio.propagation import hata_open_area_log_distance
from iotsim.results import write_results
from iotsim.scenario.model import Scenario

NODES_PER_M2 = 300 / (2000.0 * 1000.0)  # scenarios/farm.yaml: 300 nodes on 2 km x 1 km
GATEWAY_SPACING_M = 2000.0
PAGE_BYTES = resource.getpagesize()


def gateway_grid(side_m: float, spacing_m: float) -> list[dict]:
    """A k x k grid of gateways, k = side / spacing rounded (at least 1), each centred in its cell.

    farm.yaml's three gateways stand 600 m apart, set by the size of that farm rather than by radio
    range: with farm.yaml's link budget (14 dBm, Hata open area with 30 m masts, SF7 gateway
    sensitivity -127 dBm from iotsim.radio.lora (SX1302 reference design), the default 10 dB ADR
    margin) a node gets SF7 up to about 8 km from a gateway, before shadowing, so
    any spacing of a few km puts every node at SF7 within reach of several gateways, as on the
    farm. The link table is nodes x gateways: at 600 m spacing a 25.8 km square needs 43 x 43 =
    1,849 gateways and the table alone takes 1.5 GB (float64); at 2 km (as bench/fleet.py) it is
    13 x 13 = 169 gateways, 135 MB, about 600 nodes per gateway.
    """
    k = max(1, round(side_m / spacing_m))
    return [{"id": f"gw{i:02d}_{j:02d}", "position_m": [side_m * (i + 0.5) / k, side_m * (j + 0.5) / k]}
            for i in range(k) for j in range(k)]


def large_scenario(nodes: int, days: float, spacing_m: float = GATEWAY_SPACING_M, plots: bool = True,
                   report: bool = True, chunk: str | None = None, packets: bool = True,
                   feedback: bool = False) -> Scenario:
    """`feedback`: confirmed uplinks (up to 8 transmissions) with ADR, on the closed loop (bench/fleet.py's confirmed
    variants)."""
    side_m = math.sqrt(nodes / NODES_PER_M2)
    pl_d0, d0, exponent = hata_open_area_log_distance()
    return Scenario.model_validate({
        "name": "large_farm",
        "description": f"{nodes:,} soil and climate nodes on {side_m / 1000:.1f} km x {side_m / 1000:.1f} km "
                       f"of farmland, LoRaWAN EU868, {days:g} d (bench/large_run.py)",
        "seed": 42,
        "duration": days * 86400.0,
        "fleet": [{
            "group": "soil",
            "count": nodes,
            "device": "nrf52840_sx1262_2xaa",
            "placement": {"kind": "uniform", "area_m": [side_m, side_m]},
            "workload": {"signal": "farm.soil_climate", "sample_period": "5min", "window": 12},
            "model": "farm_soil_int8",
            "heartbeat": "6h",
        }],
        "network": {
            "technology": "lorawan",
            "region": "EU868",
            "lorawan": {"sf": "auto", "bandwidth_hz": 125000, "coding_rate": "4/5", "tx_power_dbm": 14,
                        "duty_cycle_mode": "wait",
                        **({"confirmed": True, "nb_trans": 8, "adr": True} if feedback else {})},
            # as scenarios/farm.yaml: Okumura-Hata open area in log-distance form, 8 dB shadowing
            # (3GPP TR 38.901 Table 7.4.1-1, RMa NLOS)
            "propagation": {"pl_d0_db": pl_d0, "d0_m": d0, "exponent": exponent, "shadowing_sigma_db": 8.0},
            "gateways": gateway_grid(side_m, spacing_m),
            "backhaul": {"latency": "40ms", "bandwidth_bps": 10e6},
            "cloud": {"inference_time": "8ms", "servers": 4},
        },
        "policies": ["cloud_offload", "on_device", {"cascade": {"confidence_below": 0.8}}],
        "outputs": {"plots": plots, "report": "html" if report else "none", "packets_table": packets},
        **({"simulation": {"chunk": chunk}} if chunk else {}),
    })


class MemorySampler:
    """Resident set size of this process, sampled in a background thread; peak per named phase."""

    def __init__(self, interval_s: float = 0.02):
        self.interval_s = interval_s
        self.phase = "start"
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def rss_bytes() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * PAGE_BYTES

    def _record(self) -> None:
        rss = self.rss_bytes()
        if rss > self.peaks.get(self.phase, 0):
            self.peaks[self.phase] = rss

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._record()

    def enter(self, phase: str) -> None:
        self._record()  # the end of the previous phase belongs to it
        self.phase = phase
        self._record()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._record()


class PhaseClock:
    """Wall time and peak RSS per phase, in the order phases start."""

    def __init__(self, sampler: MemorySampler):
        self.sampler = sampler
        self.rows: list[tuple[str, float]] = []
        self._name: str | None = None
        self._t0 = 0.0

    def start(self, name: str) -> None:
        self.stop()
        self._name, self._t0 = name, time.perf_counter()
        self.sampler.enter(name)

    def stop(self) -> None:
        if self._name is not None:
            self.rows.append((self._name, time.perf_counter() - self._t0))
            self.sampler.enter("between phases")
            self._name = None

    def progress(self, prefix: str, log_every: int = 0):
        """A progress callback for run_scenario / write_results: a phase per policy or output step; with
        `log_every`, a line every that many chunks of a chunked run (so a long run's pace shows as it goes)."""
        t_start = time.perf_counter()

        def callback(step: str, done: float, total: float) -> None:
            if step.startswith("windows"):
                return  # planning is one phase, started before run_scenario
            if log_every and step.startswith("chunks") and done and (int(done) % log_every == 0 or done == total):
                print(f"  {step}: {int(done):,} of {int(total):,} after {time.perf_counter() - t_start:,.0f} s, "
                      f"RSS {MemorySampler.rss_bytes() / 2**20:,.0f} MB, peak so far "
                      f"{max(self.sampler.peaks.values(), default=0) / 2**20:,.0f} MB", flush=True)
            if done == 0:
                self.start(f"{prefix}{step}")
            elif done == total:
                self.stop()

        return callback


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=100_000, help="fleet size (default 100,000)")
    ap.add_argument("--days", type=float, default=1.0, help="simulated duration (default 1)")
    ap.add_argument("--gateway-spacing-m", type=float, default=GATEWAY_SPACING_M,
                    help=f"gateway grid spacing (default {GATEWAY_SPACING_M:g} m)")
    ap.add_argument("--out", help="results folder (default: a temporary folder, removed at the end)")
    ap.add_argument("--no-write", action="store_true", help="run_scenario only, no results folder")
    ap.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    ap.add_argument("--no-report", action="store_true", help="write no report.html")
    ap.add_argument("--no-packets", action="store_true", help="no packets table (outputs.packets_table: false)")
    ap.add_argument("--chunk", help="run in time chunks of this length (simulation.chunk), e.g. 1d")
    ap.add_argument("--log-every", type=int, default=0, help="print the pace every N chunks (chunked runs)")
    ap.add_argument("--feedback", action="store_true",
                    help="confirmed uplinks (nb_trans 8) and ADR: the LoRaWAN closed loop")
    args = ap.parse_args()

    scenario = large_scenario(args.nodes, args.days, args.gateway_spacing_m, plots=not args.no_plots,
                              report=not args.no_report, chunk=args.chunk, packets=not args.no_packets,
                              feedback=args.feedback)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="iotsim-large-")) / "results"
    t_start = time.perf_counter()
    with MemorySampler() as sampler:
        clock = PhaseClock(sampler)
        clock.start("plan (windows, inference)")
        result = run_scenario(scenario, progress=clock.progress("run: ", args.log_every))
        clock.stop()
        if not args.no_write:
            write_results(result, out, command="python bench/large_run.py", progress=clock.progress("write: "))
    total_s = time.perf_counter() - t_start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # ru_maxrss is in KiB on Linux

    n_gw = len(scenario.network.gateways)
    print(f"{args.nodes:,} nodes x {args.days:g} d, {n_gw} gateways, policies: "
          f"{', '.join(o.policy.name for o in result.outcomes)}")
    for o in result.outcomes:
        print(f"  {o.policy.name:>14}: {int(o.tally.messages_offered.sum()):,} messages offered, "
              f"{int(o.tally.frames.sum()):,} frames")
    print(f"{'phase':<28} {'wall (s)':>9} {'peak RSS (MB)':>14}")
    for name, wall in clock.rows:
        print(f"{name:<28} {wall:9.1f} {sampler.peaks.get(name, 0) / 2**20:14,.0f}")
    print(f"{'total':<28} {total_s:9.1f} {peak_mb:14,.0f}  (ru_maxrss)")
    if not args.no_write:
        sizes = {p.name: p.stat().st_size for p in sorted(out.iterdir())}
        print("outputs: " + ", ".join(f"{k} {v / 2**20:,.1f} MB" for k, v in sizes.items()))
        if not args.out:
            shutil.rmtree(out.parent, ignore_errors=True)
    for warning in result.warnings:
        print(f"note: {warning}")


if __name__ == "__main__":
    main()
