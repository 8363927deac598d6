"""C routines measured on the emulated MCU as if they were models, and priced from their recorded counts.

Several costs of a node are measured rather than assumed (`iotsim.ota.integrity`: SHA-256;
`iotsim.ota.patch_cost`: applying a delta; `iotsim.ota.signature`: ECDSA verification;
`iotsim.tinyml.ondevice`: a float SGD step): each is a C source under firmware_ref/ with the firmware's
model entry point (`iotsim_model_invoke`), built by `export` into an export directory that
`iotsim.firmware.build.build_elf` takes like a model's, run on QEMU with the instruction-counting plugin,
its instruction-class counts recorded per core. `recorded_params` finds a core's recorded counts and the
MCU's cycle model; `fractional_cycles` prices fitted (fractional) counts.
"""

from __future__ import annotations

import json
from pathlib import Path


def export(directory: Path, source: Path, input_bytes: int, output_bytes: int, defines: dict | None = None) -> Path:
    """An export directory holding `source` as the model: model.h with the sizes (and `defines`), model.c, and
    a manifest without other sources."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = [f"#define {k} {v}" for k, v in (defines or {}).items()]
    lines += [f"#define IOTSIM_INPUT_BYTES {input_bytes}", f"#define IOTSIM_OUTPUT_BYTES {output_bytes}",
              "int iotsim_model_invoke(const void *input, void *output);"]
    (directory / "model.h").write_text("\n".join(lines) + "\n")
    (directory / "model.c").write_text(Path(source).read_text())
    (directory / "manifest.json").write_text(json.dumps({"sources": [], "input_bytes": input_bytes,
                                                         "output_bytes": output_bytes}))
    return directory


def recorded_params(mcu, recorded: dict):
    """(the recorded entry of the MCU's emulated core, its CycleParams), or None when the core has no recorded
    counts or the MCU no cycle model."""
    from iotsim.firmware.cost import emulated_core
    from iotsim.firmware.cycles import CycleParams

    core = emulated_core(mcu.core)
    rec = recorded.get(core) if core else None
    if rec is None or mcu.cycle_model is None:
        return None
    return rec, CycleParams.from_mapping(core, mcu.cycle_model, where=str(mcu.path or mcu.name))


def fractional_cycles(counts: dict, params, caches: str | None) -> float:
    """Cycles of fitted (fractional) counts: the classes' sum was checked when measured, so `instructions`,
    which `cycles` checks against it, is left out."""
    from iotsim.firmware.cycles import cycle_breakdown

    return cycle_breakdown({k: v for k, v in counts.items() if k != "instructions"}, params, caches=caches)["total"]


__all__ = ["export", "fractional_cycles", "recorded_params"]
