"""Lowering: one TFLite op -> the C that runs it in the reference firmware.

The contract between the exporter and the kernels
--------------------------------------------------
A lowering function takes the model graph and one op and returns a `LoweredOp`:

    def lower_conv_2d(graph: ModelGraph, op: OpInfo) -> LoweredOp

- `call`: C statements that run the op, inside the generated `iotsim_model_invoke()`. Tensor
  data pointers are written as placeholders `{T<i>}` (i = tensor index in subgraph 0); the
  exporter replaces each with a C expression of the tensor's element type: a pointer into the
  arena for activations (e.g. `((int8_t *)(iotsim_arena + 1024))`), or the name of a `static
  const` array in flash for constant tensors (weights, biases). Both convert to `const T *`.
- `decls`: C at file scope that `call` refers to: `static const` parameter structs and
  per-channel arrays (use `c_array()`). Every identifier must start with `op<index>_` so that
  ops never clash.
- `headers`: headers under firmware_ref/include the call needs; `sources`: kernel files under
  firmware_ref/kernels/ that must be compiled in.
- All parameters the kernel needs are computed here, in Python, from the model's float
  scales, exactly as TFLite Micro's Prepare() does (see quant.py); kernels get integers only.

An op no lowering knows is refused by the exporter with `UnsupportedOpError`, naming the op,
its index and the supported list. An op the lowering knows but whose variant it cannot run
(e.g. a float CONV_2D, an unsupported fused activation) raises `UnsupportedOpError` too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from iotsim.errors import InputError
from iotsim.tinyml.stats import ModelGraph, OpInfo

C_TYPES = {
    "int8": "int8_t",
    "uint8": "uint8_t",
    "int16": "int16_t",
    "int32": "int32_t",
    "int64": "int64_t",
    "float32": "float",
    "bool": "uint8_t",
}


class UnsupportedOpError(InputError):
    """The reference firmware cannot run this op (or this variant of it)."""


@dataclass(frozen=True)
class LoweredOp:
    call: str
    decls: str = ""
    headers: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()


Lowering = Callable[[ModelGraph, OpInfo], LoweredOp]


def c_array(name: str, ctype: str, values: Iterable, *, per_line: int = 16) -> str:
    """`static const <ctype> <name>[n] = {...};` with integer (or float) values."""
    vals = np.asarray(list(values) if not isinstance(values, np.ndarray) else values).ravel()
    if ctype == "float":
        items = [repr(float(np.float32(v))) + "f" for v in vals]
    else:
        items = [str(int(v)) for v in vals]
    if not items:
        items = ["0"]  # C forbids empty initializers
    lines = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    body = ",\n    ".join(lines)
    return f"static const {ctype} {name}[{max(len(vals), 1)}] = {{\n    {body}\n}};\n"


def unsupported(graph: ModelGraph, op: OpInfo, why: str) -> UnsupportedOpError:
    return UnsupportedOpError(f"op {op.index} ({op.name}): {why}", where=graph.where)


def registry() -> dict[str, Lowering]:
    """Op name -> lowering, gathered from the kernel families."""
    from iotsim.firmware import ops_elementwise, ops_nn

    table: dict[str, Lowering] = {}
    for family in (ops_nn, ops_elementwise):
        for name, fn in family.LOWERINGS.items():
            assert name not in table, f"{name} lowered twice"
            table[name] = fn
    return table
