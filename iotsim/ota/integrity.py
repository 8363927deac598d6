"""What a node's integrity check of an update costs: SHA-256 of the new image, measured on the emulated MCU.

Before a node activates an update it hashes the received image and compares the digest with the one
the update carries (then verifies the signature over that digest: `iotsim.ota.signature`). The cost is measured, not assumed: `measure()` builds `firmware_ref/integrity/sha256.c`
(FIPS 180-4, one 64-byte block at a time) into the reference firmware as if it were a model, runs it
on QEMU with the instruction-counting plugin for two message lengths, checks every digest against
Python's hashlib, and returns the instruction-class counts of one compressed block and of the fixed
part (call, padding, output). SHA-256's work does not depend on the data, so the counts are exact
per block. `RECORDED` holds the counts measured for the Cortex-M4 (the command below reproduces them;
a test re-measures and compares); a node's hashing time is then cycles (the MCU's cycle model,
`iotsim.firmware.cycles`) / clock:

    python -m iotsim.ota.integrity            # prints the counts to record
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from iotsim.errors import InputError
from iotsim.paths import FIRMWARE_REF_DIR

SOURCE = FIRMWARE_REF_DIR / "integrity" / "sha256.c"
BOARD = "mps2-an386"  # QEMU's Cortex-M4 board (the firmware's default)
LENGTHS = (256, 1024)  # message lengths measured: 5 and 17 compressed blocks


def blocks(n_bytes: int) -> int:
    """Compressed 64-byte blocks for an n-byte message (FIPS 180-4 padding: 0x80 and a 64-bit length)."""
    return (int(n_bytes) + 9 + 63) // 64


@dataclass(frozen=True)
class Sha256Counts:
    """Instruction-class counts of SHA-256 on one core: per compressed block and the fixed rest."""

    core: str
    caches: str | None  # the flash caches the miss counts were simulated with (plugin arguments)
    per_block: dict
    fixed: dict

    def counts(self, n_bytes: int) -> dict:
        b = blocks(n_bytes)
        return {k: self.fixed[k] + b * self.per_block[k] for k in self.per_block}


def hash_seconds(n_bytes: int, mcu) -> float | None:
    """Seconds the MCU takes to hash n bytes (None: its core has no recorded counts or no cycle model)."""
    from iotsim.firmware.cycles import cycles
    from iotsim.firmware.routine import recorded_params

    found = recorded_params(mcu, RECORDED)
    if found is None:
        return None
    rec, params = found
    return cycles(rec.counts(n_bytes), params, caches=rec.caches) / mcu.clock_hz


def measure(board: str = BOARD, vectors: int = 2, work_dir: Path | None = None) -> Sha256Counts:
    """Build, run and count SHA-256 on the emulated board for LENGTHS; every digest checked with hashlib."""
    from iotsim.firmware.build import build_elf, get_board
    from iotsim.firmware.cost import emulated_core
    from iotsim.firmware.cycles import DEFAULT_CACHES
    from iotsim.firmware.qemu import run_qemu
    from iotsim.firmware.routine import export

    rng = np.random.default_rng(0)
    per_length = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(work_dir or tmp)
        for n in LENGTHS:
            exp = export(root / f"sha256_{n}", SOURCE, n, 32)
            elf = build_elf(exp, board, root / f"build_{n}").elf
            data = rng.integers(0, 256, size=(vectors, n), dtype=np.uint8)
            run = run_qemu(elf, board, data.tobytes(), n, 32, count=True, caches=DEFAULT_CACHES)
            for i in range(vectors):
                got = run.outputs[32 * i: 32 * (i + 1)]
                if got != hashlib.sha256(data[i].tobytes()).digest():
                    raise InputError(f"the firmware's SHA-256 of a {n}-byte message differs from hashlib's",
                                     where=str(SOURCE))
            if len(set(run.instructions)) != 1:
                raise InputError(f"SHA-256 took different instruction counts on different {n}-byte messages: "
                                 f"{sorted(set(run.instructions))}", where=str(SOURCE))
            per_length[n] = dict(run.classes[0])
    a, b = (per_length[n] for n in LENGTHS)
    db = blocks(LENGTHS[1]) - blocks(LENGTHS[0])
    per_block = {k: (b[k] - a[k]) / db for k in a}
    fixed = {k: a[k] - blocks(LENGTHS[0]) * per_block[k] for k in a}
    core = get_board(board).core
    return Sha256Counts(emulated_core(core) or core, DEFAULT_CACHES, per_block, fixed)


RECORDED: dict[str, Sha256Counts] = {
    # measured 2026-12-04 on mps2-an386 (QEMU 7.2, arm-none-eabi-gcc 12.2, -O2) by `python -m iotsim.ota.integrity`;
    # tests/test_ota.py re-measures and compares
    "cortex-m4": Sha256Counts("cortex-m4", "icache=32:32,dcache=8:32", per_block={
        "instructions": 3388, "alu": 2550, "mul": 0, "mul_long": 0, "div": 0, "load": 377, "store": 133,
        "ldst_pipelined": 188, "ldst_double": 7, "ldst_multiple": 2, "table_branch": 0, "branch_only": 131,
        "fp": 0, "fp_mac": 0, "fp_div": 0, "fp_ldst": 0, "ldst_multiple_regs": 18, "branch": 132,
        "branch_taken": 129, "flash_loads": 129, "dcache_misses": 9, "icache_misses": 0,
    }, fixed={
        "instructions": 194, "alu": 95, "mul": 0, "mul_long": 0, "div": 0, "load": 9, "store": 49,
        "ldst_pipelined": 0, "ldst_double": 0, "ldst_multiple": 8, "table_branch": 0, "branch_only": 33,
        "fp": 0, "fp_mac": 0, "fp_div": 0, "fp_ldst": 0, "ldst_multiple_regs": 32, "branch": 35,
        "branch_taken": 28, "flash_loads": 9, "dcache_misses": 4, "icache_misses": 23,
    }),
}


def main() -> int:
    c = measure()
    print(json.dumps({"core": c.core, "caches": c.caches, "per_block": c.per_block, "fixed": c.fixed}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
