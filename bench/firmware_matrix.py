"""Every zoo and MLPerf Tiny model on every emulated board: bit-exactness and instructions per inference.

    python bench/firmware_matrix.py [--vectors 100] [--json out.json] [--record] [--kernels optimized]
                                    [--models zoo|mlperf|all]

For each model, board and kernel set (`--kernels reference,optimized`; the optimized set only on
the boards with the DSP extension), runs `verify_model` with random and with real inputs and prints a
markdown table (rows: model; per board: instructions per inference, vectors differing from
TFLite Micro / from LiteRT's reference kernels). With --record the zoo models' cost tables
(iotsim/zoo/<model>.firmware.json) are rewritten from the random-input runs.
"""

from __future__ import annotations

import argparse
import json
import time

from iotsim.firmware.build import BOARDS, DSP_CORES
from iotsim.firmware.verify import verify_model
from iotsim.paths import ZOO_DIR

try:
    from firmware_verify import MLPERF_DIR  # bench/ as the working directory or on sys.path
except ImportError:  # pragma: no cover
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from firmware_verify import MLPERF_DIR

MLPERF = ["kws_ref_model", "vww_96_int8", "pretrainedResnet_quant", "ad01_int8"]


def models(which: str = "all") -> list:
    zoo = sorted(ZOO_DIR.glob("*_int8.tflite"))
    mlperf = [MLPERF_DIR / f"{m}.tflite" for m in MLPERF]
    return {"zoo": zoo, "mlperf": mlperf, "all": zoo + mlperf}[which]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vectors", type=int, default=100)
    ap.add_argument("--boards", default=",".join(sorted(BOARDS)))
    ap.add_argument("--inputs", default="random,real")
    ap.add_argument("--json", default=None)
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--kernels", default="reference", help="kernel sets, comma-separated: reference,optimized")
    ap.add_argument("--models", choices=("zoo", "mlperf", "all"), default="all")
    args = ap.parse_args()
    boards = args.boards.split(",")
    rows = []
    t0 = time.perf_counter()
    for path in models(args.models):
        for board in boards:
            for kernels in args.kernels.split(","):
                if kernels == "optimized" and BOARDS[board].core not in DSP_CORES:
                    continue
                for kind in args.inputs.split(","):
                    r = verify_model(path, board=board, vectors=args.vectors, inputs=kind, kernels=kernels,
                                     record=args.record and kind == "random" and path.parent == ZOO_DIR)
                    rows.append(r)
                    print(f"{r['model']:<30} {board:<11} {kernels:<9} {kind:<6} "
                          f"instr {r['instructions_per_inference']:>12,} "
                          f"tflm {r['mismatches']}/{r['vectors']} litert_ref {r['litert_ref_mismatches']} "
                          f"(tflm vs ref {r['tflm_vs_litert_ref_mismatches']}) flash {r['flash_bytes']:,} "
                          f"ram {r['ram_bytes']:,} stack {r['stack_peak_bytes']} {r['timings_s']['total']:.1f} s",
                          flush=True)
    print(f"total {time.perf_counter() - t0:.0f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
