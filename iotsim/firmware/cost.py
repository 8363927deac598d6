"""Measured inference cost per (model, core): the table the simulator reads.

`iotsim firmware verify` measures how many instructions the firmware executes for one
inference of a model on an emulated core, by instruction class, with one of its two kernel sets
(reference: TFLite Micro's reference kernels; optimized: the CMSIS-NN-style DSP kernels), and
records it here; the engine turns the class counts into cycles with the node MCU's cycle model
(iotsim.firmware.cycles, `cycle_model` in devices/mcu/*.yaml), into time with its clock and into
energy with its active power.

Where the tables live
---------------------
- next to the model: `<model stem>.firmware.json` beside `<model stem>.tflite` (the zoo ships
  one per model, measured on all three emulated cores);
- otherwise in the user cache: `$IOTSIM_CACHE_DIR/firmware/<model sha256>.json`
  (default `~/.cache/iotsim`).
Lookup tries the model's own sidecar, then the user cache, then every zoo table: a copy of a
zoo model under another name or path gets the zoo's measurement (same bytes, same cost).

Table layout (format 2): {"format", "model", "model_sha256", "costs": {core: entry},
"optimized_costs": {core: entry}}: `costs` holds the reference kernels' measurements (as
before the optimized set existed, so older tables still read), `optimized_costs` the optimized
kernels'. Each entry is a MeasuredCost; entries without instruction-class counts (format 1, before
the cycle model) are ignored, as the engine cannot price them.

A table is keyed by the model file's sha256: a retrained or edited model no longer matches its
old table, and the simulator falls back to the MAC-count estimate (and says so).
Writes are atomic (temp file + rename).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from iotsim.paths import ZOO_DIR, user_cache_dir

TABLE_FORMAT = 2  # 2: instruction classes and simulated flash caches
KERNEL_SETS = ("reference", "optimized")
_COSTS_KEY = {"reference": "costs", "optimized": "optimized_costs"}  # where each set's entries live

# MCU profile core names -> the emulated core that runs the same instruction set
CORE_ALIASES = {
    "cortex-m4f": "cortex-m4",
    "cortex-m4": "cortex-m4",
    "cortex-m33": "cortex-m33",
    "cortex-m33f": "cortex-m33",
    "cortex-m3": "cortex-m3",
}


def emulated_core(mcu_core: str) -> str | None:
    """The emulated core for an MCU profile's core name (None: no emulated equivalent, e.g. Xtensa)."""
    return CORE_ALIASES.get(mcu_core.strip().lower())


@dataclass(frozen=True)
class MeasuredCost:
    core: str  # emulated core, e.g. "cortex-m4"
    board: str  # emulated board it ran on, e.g. "mps2-an386"
    instructions_per_inference: int  # median over the vectors
    instructions_min: int
    instructions_max: int
    vectors: int
    bit_exact: bool  # the firmware's outputs equalled TFLite Micro's on every vector
    flash_bytes: int
    ram_bytes: int
    compiler: str  # e.g. "arm-none-eabi-gcc 12.2.1 -O2"
    classes: dict | None = None  # instruction-class counts of the median vector (iotsim.firmware.cycles.COUNTERS)
    caches: str | None = None  # flash caches simulated for classes' cache misses (cycles.DEFAULT_CACHES)
    kernels: str = "reference"  # kernel set: "reference" or "optimized" (absent in older tables)

    def describe(self) -> str:
        return (f"measured: {self.instructions_per_inference:,} instructions per inference on {self.core} "
                f"(QEMU {self.board}, {self.kernels} kernels, {self.vectors} vectors"
                f"{', bit-exact with TFLite Micro' if self.bit_exact else ', NOT bit-exact'})")


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def cache_dir() -> Path:
    return user_cache_dir() / "firmware"


def sidecar_path(model_path: Path) -> Path:
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + ".firmware.json")


def _read_table(path: Path, sha256: str) -> dict | None:
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(table, dict) or table.get("model_sha256") != sha256:
        return None
    return table


def _costs_key(kernels: str) -> str:
    try:
        return _COSTS_KEY[kernels]
    except KeyError:
        raise ValueError(f"unknown kernel set '{kernels}': choose one of {', '.join(KERNEL_SETS)}") from None


def lookup(model_path: Path | None, sha256: str, core: str, kernels: str = "reference") -> MeasuredCost | None:
    """The measured cost of this model (by content hash) on an emulated core with a kernel set, or None."""
    key = _costs_key(kernels)
    candidates = []
    if model_path is not None:
        candidates.append(sidecar_path(model_path))
    candidates.append(cache_dir() / f"{sha256}.json")
    candidates.extend(sorted(ZOO_DIR.glob("*.firmware.json")))  # the same bytes under another name
    for path in candidates:
        table = _read_table(path, sha256)
        if table and core in table.get(key, {}):
            entry = table[key][core]
            try:
                cost = MeasuredCost(**entry)
            except TypeError:  # an older or damaged entry: ignore it
                continue
            if cost.classes is None:  # format 1: instructions only, no classes to price
                continue
            if cost.kernels == kernels:
                return cost
    return None


def table_path_for(model_path: Path, sha256: str) -> Path:
    """Where a new measurement is recorded: beside zoo models, else in the user cache."""
    model_path = Path(model_path).resolve()
    if model_path.parent == ZOO_DIR.resolve():
        return sidecar_path(model_path)
    return cache_dir() / f"{sha256}.json"


def record(model_path: Path, sha256: str, cost: MeasuredCost, *, path: Path | None = None) -> Path:
    """Add or replace one (core, kernel set) measurement in the model's table; returns the table's path."""
    key = _costs_key(cost.kernels)
    target = Path(path) if path is not None else table_path_for(model_path, sha256)
    table = _read_table(target, sha256) or {"format": TABLE_FORMAT, "model": Path(model_path).name,
                                            "model_sha256": sha256, "costs": {}}
    table["format"] = TABLE_FORMAT
    costs = table.setdefault(key, {})
    costs[cost.core] = asdict(cost)
    table[key] = dict(sorted(costs.items()))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".cost-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(table, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, target)
    return target
