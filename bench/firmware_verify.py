"""Firmware verification speed: export + cross-build + QEMU run of N vectors + TFLM/LiteRT checks.

    python bench/firmware_verify.py                       # MLPerf Tiny KWS DS-CNN, 100 vectors, mps2-an386
    python bench/firmware_verify.py --model smart_home_kws_int8 --vectors 100

Target (issue 4): verifying 100 vectors of the KWS DS-CNN model, build included, in under a
minute. Prints the phases' wall times (a fresh build directory each time: nothing cached) and
the emulator's speed in guest instructions per second.
"""

from __future__ import annotations

import argparse
import json
import time

from iotsim.firmware.verify import verify_model
from iotsim.paths import mlperf_dir

MLPERF_DIR = mlperf_dir()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(MLPERF_DIR / "kws_ref_model.tflite"))
    ap.add_argument("--board", default="mps2-an386")
    ap.add_argument("--vectors", type=int, default=100)
    args = ap.parse_args()
    t0 = time.perf_counter()
    r = verify_model(args.model, board=args.board, vectors=args.vectors, record=False)
    wall = time.perf_counter() - t0
    executed = r["instructions_per_inference"] * r["vectors"]
    print(json.dumps({
        "model": r["model"], "board": r["board"], "vectors": r["vectors"], "bit_exact": r["bit_exact"],
        "instructions_per_inference": r["instructions_per_inference"], "wall_s": round(wall, 2),
        "phases_s": r["timings_s"],
        "guest_minstr_per_s_in_run": round(executed / r["timings_s"]["run"] / 1e6, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
