"""Kernel developer's check: the exported C, built for the host, op by op against TFLite Micro.

    python -m iotsim.firmware.devcheck MODEL.tflite [-n 20] [--seed 0] [--keep DIR]

Exports the model, compiles it with the host's gcc and `-DIOTSIM_TRACE` (every op's output is
recorded), runs n random inputs, and compares each op's output tensor with TFLite Micro's
(kPreserveAllTensors). Prints, per op, how many vectors differ and by how many LSB, and the
first op that differs: where a kernel bug shows up first. Exit status 1 if anything differs.

`trace_host(model, inputs)` is the library form (returns {op: {tensor: array (n, ...)}}).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from iotsim.errors import InputError
from iotsim.firmware.build import build_host
from iotsim.firmware.export import export_model

_TRACE_MAIN = r"""
#include <stdio.h>
#include <stdlib.h>
#include "model.h"

static FILE *trace_file;
static int vector_index;

void iotsim_trace(int op, int tensor, const void *data, unsigned bytes)
{
    int header[4] = {vector_index, op, tensor, (int)bytes};
    fwrite(header, sizeof header, 1, trace_file);
    fwrite(data, 1, bytes, trace_file);
}

int main(int argc, char **argv)
{
    static unsigned char in[IOTSIM_INPUT_BYTES], out[IOTSIM_OUTPUT_BYTES];
    if (argc != 4) { fprintf(stderr, "usage: %s IN OUT TRACE\n", argv[0]); return 2; }
    FILE *fi = fopen(argv[1], "rb"), *fo = fopen(argv[2], "wb");
    trace_file = fopen(argv[3], "wb");
    if (!fi || !fo || !trace_file) { perror("open"); return 2; }
    while (fread(in, 1, IOTSIM_INPUT_BYTES, fi) == IOTSIM_INPUT_BYTES) {
        if (iotsim_model_invoke(in, out) != 0) { fprintf(stderr, "invoke failed\n"); return 3; }
        fwrite(out, 1, IOTSIM_OUTPUT_BYTES, fo);
        vector_index++;
    }
    fclose(fo); fclose(trace_file);
    return 0;
}
"""


def trace_host(model_path, inputs: np.ndarray, *, keep: Path | None = None):
    """Run inputs through the host build with tracing: (outputs (n, ...), {op: {tensor: (n, ...)}}, manifest)."""
    from iotsim.tinyml.stats import read_model

    graph = read_model(model_path)
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="iotsim-devcheck-"))
    try:
        res = export_model(model_path, work / "export")
        (work / "trace_main.c").write_text(_TRACE_MAIN)
        exe = build_host(work / "export", work / "build", main_source=work / "trace_main.c",
                         extra_cflags=("-DIOTSIM_TRACE",))
        x = np.ascontiguousarray(inputs)
        (work / "in.bin").write_bytes(x.tobytes())
        proc = subprocess.run([str(exe), str(work / "in.bin"), str(work / "out.bin"), str(work / "trace.bin")], check=False,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise InputError(f"host run failed ({proc.returncode}): {proc.stderr[-2000:]}")
        out_t = graph.tensors[graph.outputs[0]]
        out_dtype = np.dtype(out_t.dtype)
        outputs = np.frombuffer((work / "out.bin").read_bytes(), dtype=out_dtype).reshape(len(x), -1)
        raw = (work / "trace.bin").read_bytes()
        traces: dict[int, dict[int, list[np.ndarray]]] = {}
        pos = 0
        while pos < len(raw):
            v, op, t, nbytes = np.frombuffer(raw, dtype=np.int32, count=4, offset=pos)
            pos += 16
            arr = np.frombuffer(raw, dtype=np.dtype(graph.tensors[int(t)].dtype), count=int(nbytes) // np.dtype(
                graph.tensors[int(t)].dtype).itemsize, offset=pos)
            pos += int(nbytes)
            traces.setdefault(int(op), {}).setdefault(int(t), []).append(arr)
        stacked = {op: {t: np.stack(v) for t, v in d.items()} for op, d in traces.items()}
        return outputs, stacked, res.manifest
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)


def compare_ops(model_path, inputs: np.ndarray, *, keep: Path | None = None) -> list[dict]:
    """Per lowered op: vectors whose output differs from TFLite Micro's, and the largest difference."""
    from iotsim.tinyml.runtime import RawInterpreter

    content = Path(model_path).read_bytes()
    _, traces, manifest = trace_host(model_path, inputs, keep=keep)
    tflm = RawInterpreter(content, "tflm", where=str(model_path), keep_all_tensors=True)
    tensors = sorted({t for d in traces.values() for t in d})
    golden: dict[int, list[np.ndarray]] = {t: [] for t in tensors}
    for row in inputs:
        vals = tflm.tensors(row, tensors)
        for t in tensors:
            golden[t].append(np.asarray(vals[t]).ravel())
    ops = {o["index"]: o["op"] for o in manifest["ops"]}
    rows = []
    for op in sorted(traces):
        for t, ours in traces[op].items():
            ref = np.stack(golden[t])
            if ref.shape[1] != ours.shape[1]:
                rows.append({"op": op, "name": ops[op], "tensor": t, "vectors_differing": len(inputs), "max_diff": None,
                             "note": f"size {ours.shape[1]} vs TFLM {ref.shape[1]}"})
                continue
            diff = np.abs(ours.astype(np.float64) - ref.astype(np.float64))
            rows.append({"op": op, "name": ops[op], "tensor": t,
                         "vectors_differing": int((diff.reshape(len(diff), -1) > 0).any(axis=1).sum()),
                         "max_diff": float(diff.max()) if diff.size else 0.0, "note": ""})
    return rows


def main(argv: list[str] | None = None) -> int:
    from iotsim.tinyml.compare import random_inputs
    from iotsim.tinyml.stats import read_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, default=None, help="keep the export, binary and trace in this directory")
    args = ap.parse_args(argv)
    graph = read_model(args.model)
    t_in = graph.tensors[graph.inputs[0]]
    x = random_inputs(tuple(t_in.shape[1:]), np.dtype(t_in.dtype), args.n, seed=args.seed)
    rows = compare_ops(args.model, x, keep=args.keep)
    first = None
    for r in rows:
        flag = "" if r["vectors_differing"] == 0 else "  <-- differs"
        print(f"op {r['op']:3d} {r['name']:<20} tensor {r['tensor']:4d}: {r['vectors_differing']:3d}/{args.n} vectors differ,"
              f" max {r['max_diff']} {r['note']}{flag}")
        if r["vectors_differing"] and first is None:
            first = r
    if first:
        print(f"first differing op: {first['op']} ({first['name']})")
        return 1
    print("all ops bit-exact with TFLite Micro")
    return 0


if __name__ == "__main__":
    sys.exit(main())
