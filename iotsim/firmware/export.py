"""Export a .tflite int8 model as C sources for the reference firmware.

    result = export_model("model.tflite", "out/")   # writes model.h, model.c, manifest.json

What is written
---------------
- `model.c`: every constant tensor the kernels read (weights, biases) as a `static const`
  array (flash), each op's constant parameters (`decls` from its lowering), one statically
  allocated, 16-byte aligned arena holding every activation at the offset TFLite Micro's greedy
  planner would give it (iotsim.tinyml.stats.plan_arena), and `iotsim_model_invoke()`: copy the
  input into the arena, run the ops in order (a static execution plan: straight-line calls),
  copy the output out. No dynamic allocation, no interpreter, no flatbuffer parsing at run time.
- `model.h`: IOTSIM_INPUT_BYTES, IOTSIM_OUTPUT_BYTES, IOTSIM_ARENA_BYTES and the invoke prototype.
- `manifest.json`: the kernel sources and headers to compile with it, I/O tensors (shape, dtype,
  quantization), the op plan (lowered or folded), arena and weight bytes, the model's sha256.

Shape-only ops
--------------
Ops whose outputs are known at export time (Keras Flatten's SHAPE -> STRIDED_SLICE -> PACK chain
feeding RESHAPE's shape input, see stats.compile_time_tensors) are folded: they are not run, and
their tensors take no arena space. RESHAPE needs no shape input at run time (output shapes are
static). A folded tensor read by any other op is refused.

Compile with `-DIOTSIM_TRACE` and provide `void iotsim_trace(int op, int tensor, const void *data,
unsigned bytes)` to observe every op's output (iotsim.firmware.devcheck does).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from iotsim.errors import InputError
from iotsim.firmware.lower import (
    C_TYPES,
    LoweredOp,
    UnsupportedOpError,
    c_array,
    registry,
)
from iotsim.tinyml.stats import (
    ALIGNMENT,
    ModelGraph,
    compile_time_tensors,
    plan_arena,
    read_model,
    tensor_lifetimes,
)

EXPORT_FORMAT = 1
# ops that only feed compile-time shape inputs may consume folded tensors at these positions
_SHAPE_INPUTS = {"RESHAPE": {1}}
_PLACEHOLDER = re.compile(r"\{T(\d+)\}")


@dataclass
class ExportResult:
    out_dir: Path
    manifest: dict
    lowered: dict[int, LoweredOp] = field(repr=False, default_factory=dict)

    @property
    def input_bytes(self) -> int:
        return int(self.manifest["input_bytes"])

    @property
    def output_bytes(self) -> int:
        return int(self.manifest["output_bytes"])


def model_sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _io_info(graph: ModelGraph, t: int) -> dict:
    ti = graph.tensors[t]
    q = ti.quantization
    return {
        "tensor": t,
        "name": ti.name,
        "shape": list(ti.shape),
        "dtype": ti.dtype,
        "bytes": ti.nbytes,
        "scale": q.scales[0] if q.scales else None,
        "zero_point": q.zero_points[0] if q.zero_points else None,
    }


def _shape_overrides(graph: ModelGraph) -> dict[int, tuple[int, ...]]:
    """Intermediate shapes to correct before planning (ops whose stored shape is not what runs)."""
    from iotsim.firmware import ops_elementwise

    fn = getattr(ops_elementwise, "corrected_shapes", None)
    return dict(fn(graph)) if fn is not None else {}


def _with_shapes(graph: ModelGraph, shapes: dict[int, tuple[int, ...]]) -> ModelGraph:
    if not shapes:
        return graph
    tensors = list(graph.tensors)
    for t, shape in shapes.items():
        old = tensors[t]
        elements = 1
        for d in shape:
            elements *= int(d)
        itemsize = old.nbytes // max(old.elements, 1) if old.elements else 1
        tensors[t] = replace(old, shape=tuple(int(d) for d in shape), elements=elements, nbytes=elements * itemsize)
    return replace(graph, tensors=tensors)


def plan_model(path_or_bytes, *, where: str | None = None) -> tuple[ModelGraph, dict[int, LoweredOp], list[int], dict]:
    """Read, check and lower a model: (graph, {op index: LoweredOp}, folded op indices, arena).

    Raises InputError naming the model for anything the firmware cannot run.
    """
    graph = read_model(path_or_bytes, where=where)
    where = graph.where
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise InputError(
            f"the firmware runs models with one input and one output; this one has {len(graph.inputs)} "
            f"and {len(graph.outputs)}",
            where=where,
        )
    for t in (*graph.inputs, *graph.outputs):
        if graph.tensors[t].dtype not in ("int8", "uint8", "int16", "float32"):
            raise InputError(f"model I/O tensor {t} has dtype {graph.tensors[t].dtype}, not int8 or float32", where=where)
    for ti in graph.tensors:
        if ti.variable:
            raise UnsupportedOpError(f"tensor {ti.index} ({ti.name}) is a variable (stateful model)", where=where)
    overrides = _shape_overrides(graph)
    graph = _with_shapes(graph, overrides)

    folded_tensors = compile_time_tensors(graph)
    folded_ops = [
        op.index for op in graph.ops if op.outputs and all(t in folded_tensors for t in op.outputs if t >= 0)
    ]
    table = registry()
    lowered: dict[int, LoweredOp] = {}
    for op in graph.ops:
        if op.index in folded_ops:
            continue
        for pos, t in enumerate(op.inputs):
            if t in folded_tensors and pos not in _SHAPE_INPUTS.get(op.name, ()):
                raise UnsupportedOpError(
                    f"op {op.index} ({op.name}) reads tensor {t}, which is computed at export time; "
                    "only RESHAPE's shape input may be", where=where,
                )
        fn = table.get(op.name)
        if fn is None:
            raise UnsupportedOpError(
                f"op {op.index} ({op.name}) is not supported by the reference firmware; "
                f"supported ops: {', '.join(sorted(table))}",
                where=where,
            )
        lowered[op.index] = fn(graph, op)
        for t in op.outputs:
            if t >= 0 and graph.tensors[t].dtype not in C_TYPES:
                raise UnsupportedOpError(
                    f"op {op.index} ({op.name}) writes tensor {t} of dtype {graph.tensors[t].dtype}", where=where
                )

    life = {t: span for t, span in tensor_lifetimes(graph).items() if t not in folded_tensors}
    plan = plan_arena(graph, life)
    if plan.conflicts():
        raise AssertionError(f"arena plan overlaps live tensors: {plan.conflicts()[:3]}")
    arena = {"bytes": plan.size, "alignment": ALIGNMENT, "offsets": plan.offsets,
             "corrected_shapes": {int(t): list(shape) for t, shape in sorted(overrides.items())}}
    return graph, lowered, folded_ops, arena


def _tensor_expr(graph: ModelGraph, t: int, arena_offsets: dict[int, int]) -> str:
    ti = graph.tensors[t]
    ctype = C_TYPES.get(ti.dtype)
    if ctype is None:
        raise UnsupportedOpError(f"tensor {t} ({ti.name}) has dtype {ti.dtype}", where=graph.where)
    if ti.constant:
        return f"iotsim_t{t}"
    if t not in arena_offsets:
        raise AssertionError(f"tensor {t} has no arena offset")
    return f"(({ctype} *)(iotsim_arena + {arena_offsets[t]}))"


def generate_c(graph: ModelGraph, lowered: dict[int, LoweredOp], folded_ops: list[int], arena: dict, *,
               model_name: str, sha256: str) -> tuple[str, str, dict]:
    """(model.h text, model.c text, size facts) of a planned model."""
    offsets = arena["offsets"]
    calls: list[tuple[int, str]] = []
    used_constants: set[int] = set()
    for idx in sorted(lowered):
        low = lowered[idx]

        def sub(m: re.Match) -> str:
            t = int(m.group(1))
            if not 0 <= t < len(graph.tensors):
                raise AssertionError(f"op {idx}: placeholder for unknown tensor {t}")
            if graph.tensors[t].constant:
                used_constants.add(t)
            return _tensor_expr(graph, t, offsets)

        calls.append((idx, _PLACEHOLDER.sub(sub, low.call)))

    t_in, t_out = graph.inputs[0], graph.outputs[0]
    in_bytes, out_bytes = graph.tensors[t_in].nbytes, graph.tensors[t_out].nbytes
    headers = sorted({h for low in lowered.values() for h in low.headers})
    weight_bytes = 0
    const_parts = []
    for t in sorted(used_constants):
        ti = graph.tensors[t]
        values = graph.constant_array(t)
        weight_bytes += values.nbytes
        const_parts.append(f"/* tensor {t}: {ti.name} {list(ti.shape)} {ti.dtype} */\n")
        const_parts.append(c_array(f"iotsim_t{t}", C_TYPES[ti.dtype], values).replace(
            "static const", "static const __attribute__((aligned(4)))", 1))

    guard = "IOTSIM_MODEL_H"
    h = (
        f"/* Generated by iotsim firmware export from {model_name} (sha256 {sha256[:16]}). Do not edit. */\n"
        f"#ifndef {guard}\n#define {guard}\n\n"
        f"#define IOTSIM_INPUT_BYTES {in_bytes}\n"
        f"#define IOTSIM_OUTPUT_BYTES {out_bytes}\n"
        f"#define IOTSIM_ARENA_BYTES {max(arena['bytes'], 1)}\n\n"
        "/* Runs one inference: input and output are the model's I/O tensors in their stored layout.\n"
        "   Returns 0. Not reentrant (one static arena). */\n"
        "int iotsim_model_invoke(const void *input, void *output);\n\n#endif\n"
    )
    body = [
        f"/* Generated by iotsim firmware export from {model_name} (sha256 {sha256}). Do not edit.\n"
        f"   {len(lowered)} ops run, {len(folded_ops)} folded at export time; arena {arena['bytes']} bytes. */\n",
        "#include <stdint.h>\n#include <string.h>\n",
        '#include "model.h"\n',
        *[f'#include "{hname}"\n' for hname in headers],
        "\n#ifdef IOTSIM_TRACE\n"
        "void iotsim_trace(int op, int tensor, const void *data, unsigned bytes);\n"
        "#define IOTSIM_TRACE_OUT(op, t, p, n) iotsim_trace((op), (t), (p), (n))\n"
        "#else\n#define IOTSIM_TRACE_OUT(op, t, p, n) ((void)0)\n#endif\n\n",
        f"static uint8_t iotsim_arena[IOTSIM_ARENA_BYTES] __attribute__((aligned({ALIGNMENT})));\n\n",
        *const_parts,
        "\n",
        *[lowered[i].decls + ("\n" if lowered[i].decls and not lowered[i].decls.endswith("\n") else "")
          for i in sorted(lowered)],
        "\nint iotsim_model_invoke(const void *input, void *output)\n{\n",
        f"    memcpy(iotsim_arena + {offsets[t_in]}, input, IOTSIM_INPUT_BYTES);\n",
    ]
    for idx, call in calls:
        op = graph.ops[idx]
        body.append(f"    /* op {idx}: {op.name} */\n")
        body.append("    {\n" + "".join(f"        {line}\n" for line in call.strip().splitlines()) + "    }\n")
        for t in op.outputs:
            if t >= 0:
                body.append(f"    IOTSIM_TRACE_OUT({idx}, {t}, iotsim_arena + {offsets[t]}, {graph.tensors[t].nbytes}u);\n")
    body.append(f"    memcpy(output, iotsim_arena + {offsets[t_out]}, IOTSIM_OUTPUT_BYTES);\n    return 0;\n}}\n")
    facts = {"weight_bytes": weight_bytes, "input_bytes": in_bytes, "output_bytes": out_bytes}
    return h, "".join(body), facts


def _write_atomic(out_dir: Path, files: dict[str, str]) -> None:
    """Write all files or none: into a sibling temp dir, then rename each into place."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as tmp:
        for name, text in files.items():
            Path(tmp, name).write_text(text)
        for name in files:
            os.replace(Path(tmp, name), out_dir / name)


def export_model(model, out_dir, *, where: str | None = None) -> ExportResult:
    """Export `model` (a .tflite path or its bytes) into `out_dir`; returns the manifest.

    Raises InputError (nothing written) for a model the firmware cannot run.
    """
    if isinstance(model, (bytes, bytearray)):
        content, name = bytes(model), where or "model"
    else:
        path = Path(model)
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read model file: {exc.strerror or exc}", where=str(path)) from None
        name, where = path.name, where or str(path)
    graph, lowered, folded, arena = plan_model(content, where=where)
    sha = model_sha256(content)
    h, c, facts = generate_c(graph, lowered, folded, arena, model_name=name, sha256=sha)
    sources = sorted({s for low in lowered.values() for s in low.sources})
    headers = sorted({s for low in lowered.values() for s in low.headers})
    manifest = {
        "format": EXPORT_FORMAT,
        "model": name,
        "sha256": sha,
        "sources": sources,
        "headers": headers,
        "input_bytes": facts["input_bytes"],
        "output_bytes": facts["output_bytes"],
        "input": _io_info(graph, graph.inputs[0]),
        "output": _io_info(graph, graph.outputs[0]),
        "arena_bytes": arena["bytes"],
        "weight_bytes": facts["weight_bytes"],
        "ops": [
            {"index": op.index, "op": op.name, "folded": op.index in folded} for op in graph.ops
        ],
        "folded_ops": folded,
        # tensors whose stored shape is not what runs (a dynamic batch stored as 1), and the shape used
        "corrected_shapes": {str(t): shape for t, shape in arena["corrected_shapes"].items()},
    }
    _write_atomic(Path(out_dir), {
        "model.h": h,
        "model.c": c,
        "manifest.json": json.dumps(manifest, indent=2) + "\n",
    })
    return ExportResult(out_dir=Path(out_dir), manifest=manifest, lowered=lowered)
