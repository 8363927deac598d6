"""Time gateway reception on a large random fleet: the new ns-3-style model against the old sweep.

Random frames (uniform start over `--days`, 8 channels, SF7..12 uniform with 20-byte airtimes,
nodes with random received power at 9 gateways) are resolved with
- the old co-SF-only sweep (`git show <rev>:iotsim/network/reception.py`, default `ec2fede`),
- the new model with SFs orthogonal and unlimited paths (the old model's switches),
- the new default (Croce inter-SF, 8 demodulator paths), also with gateway transmissions.

    python bench/reception.py --frames 2000000 --days 1

Defaults (2 M frames, 1 day, 9 gateways; 2-core machine, shared), with the C kernels
(iotsim/network/native.py) and with IOTSIM_NATIVE=0 (the numpy/Python path, same results):

    old sweep (co-SF, 6 dB, no paths)          0.98 s
    new: orthogonal SFs, unlimited paths       0.81 s   (numpy 2.18 s)
    new: orthogonal SFs, 8 paths               1.06 s   (numpy 10.01 s)
    new: Croce inter-SF, 8 paths (default)     1.14 s   (numpy 10.92 s)
    new: Croce, 8 paths, gateway TX            1.92 s   (numpy 10.88 s)
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from iotsim.network import reception
from iotsim.network.fate import Fate

AIRTIME_20B_S = {7: 0.0617, 8: 0.1132, 9: 0.2058, 10: 0.3707, 11: 0.7414, 12: 1.3189}


def load_old(rev: str):
    root = Path(__file__).resolve().parents[1]
    src = subprocess.run(["git", "show", f"{rev}:iotsim/network/reception.py"], cwd=root, check=True,
                         capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "old_reception.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("old_reception", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=2_000_000)
    ap.add_argument("--days", type=float, default=1.0)
    ap.add_argument("--gateways", type=int, default=9)
    ap.add_argument("--nodes", type=int, default=20_000)
    ap.add_argument("--old-rev", default="ec2fede")
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    n, n_gw = args.frames, args.gateways
    start = np.sort(rng.random(n) * args.days * 86400)
    sf = rng.integers(7, 13, n)
    air = np.array([AIRTIME_20B_S[s] for s in range(13) if s in AIRTIME_20B_S])[sf - 7]
    ch = rng.integers(0, 8, n).astype(np.int8)
    node = rng.integers(0, args.nodes, n)
    node_power = rng.uniform(-145, -105, (args.nodes, n_gw))
    sens = np.array([-130.0, -132.5, -135.0, -137.5, -140.0, -142.5])[sf - 7]  # SX1301, as ns-3
    tx_starts = [np.sort(rng.random(n // (20 * n_gw)) * args.days * 86400) for _ in range(n_gw)]
    gateway_tx = [(s, s + 0.1) for s in tx_starts]  # every 20th frame answered
    print(f"{n} frames, {args.days:g} days, 8 channels, SF7-12, {n_gw} gateways, {args.nodes} nodes")

    def run(label, fn):
        t = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t
        counts = np.bincount(out.status.astype(np.int64), minlength=len(Fate))
        shares = ", ".join(f"{Fate(k).name.lower()} {c / n:.3f}" for k, c in enumerate(counts) if c)
        print(f"{label:48s} {dt:7.2f} s   {shares}")
        return out

    old = load_old(args.old_rev)
    run("old sweep (co-SF, 6 dB, no paths)", lambda: old.resolve_receptions(
        start, air, ch, sf, node, node_power, sens, 6.0))
    run("new: orthogonal SFs, unlimited paths", lambda: reception.resolve_receptions(
        start, air, ch, sf, node, node_power, sens,
        reception.ReceptionModel(inter_sf="orthogonal", demodulator_paths=None)))
    run("new: orthogonal SFs, 8 paths", lambda: reception.resolve_receptions(
        start, air, ch, sf, node, node_power, sens, reception.ReceptionModel(inter_sf="orthogonal")))
    run("new: Croce inter-SF, 8 paths (default)", lambda: reception.resolve_receptions(
        start, air, ch, sf, node, node_power, sens, reception.ReceptionModel()))
    r = run("new: Croce, 8 paths, gateway TX", lambda: reception.resolve_receptions(
        start, air, ch, sf, node, node_power, sens, reception.ReceptionModel(), gateway_tx=gateway_tx))
    print("frames locked per gateway:", r.frames_locked.tolist())


if __name__ == "__main__":
    sys.exit(main())
