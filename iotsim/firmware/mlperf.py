"""MLPerf Tiny: predicted latency and energy per inference beside the published figures.

    rows = predict_rows(kernels="reference")      # four tasks on the NUCLEO-L4R5ZI (stm32l4r5)
    rows[0]["latency_err"]                       # signed fraction: +0.12 is 12 % above published

For each task the firmware is exported, built and run on QEMU's mps2-an386 (Cortex-M4) with the
instruction-class plugin; the STM32L4R5 profile's cycle model (iotsim.firmware.cycles) prices
the classes, its clock turns cycles into time, and energy = supply voltage x the profile's run
current x time, at the supply the published energy was measured at. That current is measured on the
board by one published row (ST's v1.0 KWS run, devices/mcu/stm32l4r5.yaml), not by the v0.5 rows.

Nothing here is fitted to the v0.5 figures `iotsim validate` judges. `calibrated()` shows, separately and labelled
as such, what one constant fitted on one task would give on the other three.

The published figures come from results.csv (mlcommons/tiny_results_v0.5 and v1.0; found in
$IOTSIM_MLPERF_DIR or ../shared/reference/mlperf_tiny beside the repository). Which rows a
kernel set is compared with (PUBLISHED_ROWS) is an assumption stated there.
"""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path

import numpy as np

from iotsim.errors import InputError
from iotsim.paths import mlperf_dir as _mlperf_dir

TASKS = {  # task -> model file of the MLPerf Tiny reference models (mlcommons/tiny)
    "kws": "kws_ref_model.tflite",
    "vww": "vww_96_int8.tflite",
    "ic": "pretrainedResnet_quant.tflite",
    "ad": "ad01_int8.tflite",
}
BOARD = "NUCLEO-L4R5ZI"
MCU = "stm32l4r5"
EMULATED_BOARD = "mps2-an386"
# Published NUCLEO-L4R5ZI rows to compare with: name -> (round, submitter). The v0.5 reference
# rows are labelled "TFLM 2.3.1"; their build (mlcommons/tiny, benchmark/reference_submissions/
# anomaly_detection/BUILD/NUCLEO_L4R5ZI/GCC_ARM) links TFLM's cmsis-nn kernel variants
# (tensorflow/lite/micro/kernels/cmsis-nn/{conv,depthwise_conv,fully_connected,...}.o and
# CMSIS/NN/Source) compiled with -Os, not the plain reference kernels: docs/firmware.md. So they
# are the published match for a CMSIS-NN-style kernel set built -Os (BUILDS); no published row on
# this board ran TFLM's reference kernels. The v1.0 ST rows ran another library (X-CUBE-AI 7.3).
PUBLISHED_ROWS = {
    "v0.5-tflm": ("v0.5", "reference"),
    "v1.0-xcube-ai": ("v1.0", "STMicroelectronics"),
}
KERNEL_SETS = ("reference", "optimized", "cmsis-nn")
# Compiler optimisation of a build: the project's own (-O2, what the simulator's cost tables measure) or
# the one the published v0.5 build used. The v0.5 reference submission's stored build flags
# (mlcommons/tiny benchmark/reference_submissions/anomaly_detection/BUILD/NUCLEO_L4R5ZI/GCC_ARM/
# .profile-cxx, Mbed's release profile): -Os -mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16
# -mfloat-abi=softfp -fomit-frame-pointer -ffunction-sections -fdata-sections -funsigned-char. Only
# the optimisation level is taken over: the other flags do not change integer code's instructions
# (-funsigned-char aside, which the firmware does not depend on: it uses int8_t/uint8_t throughout).
BUILDS = {"-O2": (), "-Os": ("-Os",)}


def mlperf_dir() -> Path:
    d = _mlperf_dir()
    if not (d / "results.csv").is_file():
        raise InputError(f"MLPerf Tiny models and results.csv not found in {d}: set IOTSIM_MLPERF_DIR", where=str(d))
    return d


def published(against: str = "v0.5-tflm", directory: Path | None = None) -> dict[str, dict]:
    """task -> {latency_ms, energy_uj, supply_v, round, submitter, framework} for NUCLEO-L4R5ZI rows."""
    if against not in PUBLISHED_ROWS:
        raise InputError(f"unknown published rows {against!r}; known: {sorted(PUBLISHED_ROWS)}", field="against")
    rnd, submitter = PUBLISHED_ROWS[against]
    d = directory or mlperf_dir()
    out = {}
    with open(d / "results.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["round"] != rnd or row["submitter"] != submitter:
                continue
            if row["board"].replace("_", "-").upper() != BOARD:
                continue
            supply = row["supply"].strip().rstrip("V").split()[0] if row["supply"].strip() else ""
            out[row["task"]] = {
                "latency_ms": float(row["latency_ms"]),
                "energy_uj": float(row["energy_uJ"]) if row["energy_uJ"] else None,
                "supply_v": float(supply) if supply else None,
                "round": rnd, "submitter": submitter, "framework": row["framework"],
            }
    missing = set(TASKS) - set(out)
    if missing:
        raise InputError(f"results.csv has no {rnd} {submitter} {BOARD} rows for {sorted(missing)}", where=str(d))
    return out


def _check_kernels(kernels: str) -> str:
    if kernels not in KERNEL_SETS:
        raise InputError(f"unknown kernel set {kernels!r}; known: {list(KERNEL_SETS)}", field="kernels")
    return kernels


def _check_build(build: str) -> str:
    if build not in BUILDS:
        raise InputError(f"unknown build {build!r}; known: {list(BUILDS)}", field="build")
    return build


def measure_classes(task: str, *, kernels: str = "reference", build: str = "-O2", vectors: int = 1,
                    seed: int = 0, directory: Path | None = None, work: Path | None = None) -> dict:
    """Instruction-class counts of one inference of an MLPerf task (median over random vectors), with
    the firmware compiled at `build` (BUILDS)."""
    from iotsim.firmware.build import build_elf
    from iotsim.firmware.export import export_model
    from iotsim.firmware.qemu import run_qemu

    if task not in TASKS:
        raise InputError(f"unknown MLPerf Tiny task {task!r}; known: {sorted(TASKS)}", field="task")
    _check_kernels(kernels)
    _check_build(build)
    model = (directory or mlperf_dir()) / TASKS[task]
    with tempfile.TemporaryDirectory(prefix=f"iotsim-mlperf-{task}-") as tmp:
        w = Path(work) if work else Path(tmp)
        exported = export_model(model, w / "export")
        built = build_elf(w / "export", EMULATED_BOARD, w / "build", kernels=kernels,
                          extra_cflags=BUILDS[build])
        rng = np.random.default_rng(seed)
        x = rng.integers(-128, 128, size=vectors * exported.input_bytes, dtype=np.int8).tobytes()
        run = run_qemu(built.elf, EMULATED_BOARD, x, exported.input_bytes, exported.output_bytes, count=True)
    order = np.argsort(run.instructions, kind="stable")
    row = dict(run.classes[int(order[(len(order) - 1) // 2])])
    row["caches"] = run.caches
    row["compiler"] = built.compiler
    return row


def predict_row(task: str, classes: dict, *, kernels: str = "reference", build: str = "-O2",
                against: str = "v0.5-tflm", published_row: dict | None = None) -> dict:
    """One row: predicted latency and energy of one task from its class counts, beside the published
    row `against` names (or `published_row`, which must be that row)."""
    from iotsim.firmware.cycles import CycleParams, cycle_breakdown
    from iotsim.hardware.profiles import load_profile

    mcu = load_profile("mcu", MCU)
    params = CycleParams.from_mapping("cortex-m4", mcu.cycle_model, where=str(mcu.path))
    counts = {k: v for k, v in classes.items() if isinstance(v, int)}
    br = cycle_breakdown(counts, params, caches=classes.get("caches"))
    pub = published_row or published(against)[task]
    latency_s = br["total"] / mcu.clock_hz
    supply_v = pub["supply_v"] or 1.8
    energy_uj = supply_v * mcu.active_current_a * latency_s * 1e6
    row = {
        "task": task,
        "kernels": kernels,
        "build": build,
        "board": BOARD,
        "mcu_profile": MCU,
        "latency_ms": latency_s * 1e3,
        "published_latency_ms": pub["latency_ms"],
        "latency_err": latency_s * 1e3 / pub["latency_ms"] - 1.0,
        "energy_uj": energy_uj,
        "published_energy_uj": pub["energy_uj"],
        "energy_err": None if not pub["energy_uj"] else energy_uj / pub["energy_uj"] - 1.0,
        "supply_v": supply_v,
        "current_ma": mcu.active_current_a * 1e3,
        "cycles": br["total"],
        "instructions": counts.get("instructions"),
        "flash_stall_cycles": br["flash_stalls"],
        "branch_refill_cycles": br["branch_refill"],
        "compared_with": against,
        "published_source": f"{pub['round']} {pub['submitter']} ({pub['framework']})",
    }
    return row


def predict_rows(kernels: str = "reference", *, build: str = "-O2", against: str = "v0.5-tflm",
                 vectors: int = 1, directory: Path | None = None) -> list[dict]:
    """Rows for the four tasks: task, kernels, board, latency_ms, published_latency_ms, latency_err,
    energy_uj, published_energy_uj, energy_err (errors as signed fractions), and the cycle detail.

    against: which published rows (PUBLISHED_ROWS); the v0.5 "reference" rows by default."""
    pubs = published(against, directory)
    return [predict_row(t, measure_classes(t, kernels=kernels, build=build, vectors=vectors, directory=directory),
                        kernels=kernels, build=build, against=against, published_row=pubs[t]) for t in TASKS]


def calibrated(rows: list[dict], on: str = "kws") -> list[dict]:
    """What ONE constant fitted on task `on` would predict for the others (labelled, not used by the engine).

    scale = published / predicted latency of `on`; each row gets latency_calibrated_ms and
    latency_calibrated_err. The `on` row's error is 0 by construction, so it is no prediction.
    """
    ref = next((r for r in rows if r["task"] == on), None)
    if ref is None:
        raise InputError(f"no row for task {on!r} to calibrate on", field="on")
    scale = ref["published_latency_ms"] / ref["latency_ms"]
    out = []
    for r in rows:
        c = dict(r)
        c["calibration_scale"] = scale
        c["calibrated_on"] = on
        c["latency_calibrated_ms"] = r["latency_ms"] * scale
        c["latency_calibrated_err"] = r["latency_ms"] * scale / r["published_latency_ms"] - 1.0
        out.append(c)
    return out


def format_rows(rows: list[dict]) -> str:
    lines = ["| task | kernels | predicted latency | published | error | predicted energy | published | error |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        e_pub = "-" if r["published_energy_uj"] is None else f"{r['published_energy_uj']:,.1f} uJ"
        e_err = "-" if r["energy_err"] is None else f"{r['energy_err']:+.0%}"
        lines.append(f"| {r['task']} | {r['kernels']} | {r['latency_ms']:.1f} ms | {r['published_latency_ms']:.2f} ms "
                     f"| {r['latency_err']:+.0%} | {r['energy_uj']:,.0f} uJ | {e_pub} | {e_err} |")
    return "\n".join(lines)
