"""Verify the reference firmware against TFLite Micro on an emulated board, and measure its cost.

    report = verify_model("model.tflite", board="mps2-an386", vectors=100, inputs="random",
                          kernels="optimized")   # or "reference" (the default)

Steps: export the model to C (export.py), cross-build it for the board (build.py), run the
vectors through it in QEMU counting the instructions of each inference (qemu.py), run the same
vectors through TFLite Micro's Python runtime (the golden reference: what MCUs run) and through
LiteRT's reference kernels, and compare outputs bit for bit.

The report (JSON-ready dict):
  bit_exact                 the firmware's outputs equal TFLM's on every vector
  vectors, inputs           how many, and which kind (random / real, with their origin)
  mismatches, max_lsb       vectors whose output differs from TFLM's, largest difference (LSB)
  litert_ref_mismatches     vectors where the firmware differs from LiteRT's reference kernels
  litert_ref_max_lsb        (and TFLM vs LiteRT reference: tflm_vs_litert_ref_mismatches)
  instructions_per_inference  median over the vectors (min and max beside it)
  flash_bytes, ram_bytes    of the linked ELF: flash = vectors + code + constants + .data image,
                            RAM = static .data + .bss (arena included; stack and heap reserves not)
  model_flash_bytes, model_ram_bytes  the model's and kernels' own share (from the linker map;
                            the rest is startup, semihosting stdio and libc)
  stack_peak_bytes          deepest stack use of one inference, measured (painted stack)
  board, core, kernels, compiler, model, model_sha256, timings_s {export, build, run, reference, total}
With record=True a bit-exact measurement is written to the model's cost table (cost.py),
which the simulator then uses for this model on that core with that kernel set.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from iotsim.errors import InputError
from iotsim.firmware import cost as cost_table
from iotsim.firmware.export import export_model, model_sha256
from iotsim.firmware.vectors import make_vectors
from iotsim.tinyml.stats import read_model


def _compare(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """(rows that differ, largest absolute difference) of two (n, ...) output arrays."""
    if a.dtype.kind == "f":  # float outputs: bit patterns compared, difference in value
        differ = (a.view(np.uint32) != b.view(np.uint32)).reshape(len(a), -1).any(axis=1)
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        return int(differ.sum()), float(diff.max()) if diff.size else 0.0
    diff = np.abs(a.astype(np.int64) - b.astype(np.int64)).reshape(len(a), -1)
    return int((diff > 0).any(axis=1).sum()), int(diff.max()) if diff.size else 0


def verify_model(model, *, board: str = "mps2-an386", vectors: int = 100, inputs: str = "random",
                 seed: int = 0, record: bool = False, build_dir: Path | None = None,
                 progress=None, kernels: str = "reference") -> dict:
    """Run `vectors` inputs through the firmware on `board`, TFLM and LiteRT's reference kernels."""
    from iotsim.firmware.build import build_elf, check_kernels, get_board
    from iotsim.firmware.qemu import run_qemu
    from iotsim.tinyml.runtime import RawInterpreter, resolve_model_path

    def step(text: str) -> None:
        if progress is not None:
            progress(text)

    spec = get_board(board)  # an unknown board or kernel set is refused before any work
    check_kernels(kernels, spec)
    t0 = time.perf_counter()
    path = resolve_model_path(model)
    content = path.read_bytes()
    sha = model_sha256(content)
    graph = read_model(content, where=str(path))
    x, origin = make_vectors(path, graph, vectors, inputs, seed)
    timings: dict[str, float] = {}
    work = Path(build_dir) if build_dir else Path(tempfile.mkdtemp(prefix="iotsim-verify-"))
    try:
        step("exporting")
        t = time.perf_counter()
        exported = export_model(path, work / "export")
        timings["export"] = time.perf_counter() - t
        step(f"building for {board} ({kernels} kernels)")
        t = time.perf_counter()
        built = build_elf(work / "export", board, work / "build", kernels=kernels)
        timings["build"] = time.perf_counter() - t
        step(f"running {len(x)} vectors in QEMU")
        t = time.perf_counter()
        run = run_qemu(built.elf, board, np.ascontiguousarray(x).tobytes(), exported.input_bytes,
                       exported.output_bytes, count=True)
        timings["run"] = time.perf_counter() - t
    finally:
        if build_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    out_t = graph.tensors[graph.outputs[0]]
    fw = np.frombuffer(run.outputs, dtype=np.dtype(out_t.dtype)).reshape(len(x), *out_t.shape[1:])

    step("running TFLite Micro and LiteRT reference kernels")
    t = time.perf_counter()
    tflm = RawInterpreter(content, "tflm", where=str(path)).invoke(x)
    # batch 1, as the firmware runs: models with fixed-shape reshapes cannot be resized to a batch
    ref = RawInterpreter(content, "reference", where=str(path), batch_size=1).invoke(x)
    timings["reference"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0

    mismatches, max_lsb = _compare(fw, tflm.reshape(fw.shape))
    ref_mismatches, ref_max = _compare(fw, ref.reshape(fw.shape))
    tflm_ref_mismatches, tflm_ref_max = _compare(tflm.reshape(fw.shape), ref.reshape(fw.shape))
    counts = np.asarray(run.instructions, dtype=np.int64)
    if len(counts) != len(x):
        raise InputError(f"the emulator reported {len(counts)} instruction counts for {len(x)} vectors",
                         where=str(built.elf))
    report = {
        "model": path.name,
        "model_path": str(path),
        "model_sha256": sha,
        "board": board,
        "core": spec.core,
        "kernels": kernels,
        "emulator": "qemu-system-arm -M " + spec.qemu_machine,
        "compiler": built.compiler,
        "inputs": inputs,
        "input_origin": origin,
        "seed": seed,
        "vectors": len(x),
        "bit_exact": mismatches == 0,
        "mismatches": mismatches,
        "max_lsb": max_lsb,
        "litert_ref_mismatches": ref_mismatches,
        "litert_ref_max_lsb": ref_max,
        "tflm_vs_litert_ref_mismatches": tflm_ref_mismatches,
        "tflm_vs_litert_ref_max_lsb": tflm_ref_max,
        "instructions_per_inference": int(np.median(counts)),
        "instruction_classes": _median_classes(run.classes, counts),
        "caches": run.caches,
        "instructions_min": int(counts.min()),
        "instructions_max": int(counts.max()),
        "flash_bytes": int(built.flash_bytes),
        "ram_bytes": int(built.ram_bytes),
        "model_flash_bytes": int(built.model_flash_bytes),
        "model_ram_bytes": int(built.model_ram_bytes),
        "stack_peak_bytes": run.stack_peak_bytes,
        "arena_bytes": int(exported.manifest["arena_bytes"]),
        "weight_bytes": int(exported.manifest["weight_bytes"]),
        "ops": len(exported.lowered),
        "folded_ops": len(exported.manifest["folded_ops"]),
        "corrected_shapes": len(exported.manifest["corrected_shapes"]),
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }
    # the cost tables hold the kernel sets iotsim ships (the simulator prices inference from them); a build
    # against a user's CMSIS-NN is measured and reported, not recorded
    if record and report["bit_exact"] and kernels in cost_table.KERNEL_SETS:
        measured = cost_table.MeasuredCost(
            core=spec.core, board=board, instructions_per_inference=report["instructions_per_inference"],
            instructions_min=report["instructions_min"], instructions_max=report["instructions_max"],
            vectors=report["vectors"], bit_exact=True, flash_bytes=report["flash_bytes"],
            ram_bytes=report["ram_bytes"], compiler=built.compiler,
            classes=report["instruction_classes"], caches=report["caches"], kernels=kernels,
        )
        report["cost_table"] = str(cost_table.record(path, sha, measured))
    return report


def _median_classes(classes, counts: np.ndarray) -> dict | None:
    """The class counts of the vector whose instruction count is the (lower) median."""
    if not len(classes):
        return None
    order = np.argsort(counts, kind="stable")
    return dict(classes[int(order[(len(order) - 1) // 2])])


def format_report(r: dict) -> str:
    lines = [
        f"{r['model']} on {r['board']} ({r['core']}, {r['kernels']} kernels), {r['vectors']} {r['inputs']} vectors ({r['input_origin']})",
        f"  vs TFLite Micro:        {'BIT-EXACT' if r['bit_exact'] else 'DIFFERS'}: {r['mismatches']} vectors differ"
        f" (max {r['max_lsb']} LSB)",
        f"  vs LiteRT reference:    {r['litert_ref_mismatches']} vectors differ (max {r['litert_ref_max_lsb']} LSB);"
        f" TFLM vs LiteRT reference: {r['tflm_vs_litert_ref_mismatches']}",
        f"  instructions/inference: {r['instructions_per_inference']:,} (min {r['instructions_min']:,}, "
        f"max {r['instructions_max']:,})",
        f"  flash {r['flash_bytes']:,} B (model and kernels {r['model_flash_bytes']:,} B, weights "
        f"{r['weight_bytes']:,} B); RAM {r['ram_bytes']:,} B static (model {r['model_ram_bytes']:,} B, arena "
        f"{r['arena_bytes']:,} B) + stack peak {r['stack_peak_bytes']} B; {r['ops']} ops, {r['folded_ops']} folded",
        "  time: " + ", ".join(f"{k} {v:.2f} s" for k, v in r["timings_s"].items()),
    ]
    if r["mismatches"] and r["corrected_shapes"] and not r["litert_ref_mismatches"]:
        lines.append(f"  note: {r['corrected_shapes']} tensors have a stored batch of 1 where the graph computes more "
                     "(dilated convolution via SPACE_TO_BATCH_ND): TFLite Micro runs the stored shapes and is wrong "
                     "here; the firmware equals LiteRT's reference kernels (docs/firmware.md)")
    if "cost_table" in r:
        lines.append(f"  recorded in {r['cost_table']}")
    return "\n".join(lines)
