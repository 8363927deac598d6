"""int8 NN kernels of the reference firmware (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED,
AVERAGE_POOL_2D, MAX_POOL_2D, MEAN) against TFLite Micro, bit for bit.

- Single-op models, built directly as flatbuffers (no TensorFlow needed), one per variant: strides
  1/2, SAME/VALID, dilation 2, depth_multiplier 2, groups, per-channel and per-tensor weights,
  with and without bias, NONE/RELU/RELU6/RELU_N1_TO_1, batches, keep_num_dims, pooling with
  SAME padding, MEAN over several axis patterns and quantizations. Each is exported with
  iotsim.firmware.export, compiled for the host with build.build_host, run on random int8
  inputs and compared with the `tflite_micro` Python interpreter.
- The ops of the zoo and MLPerf Tiny models, each run on TFLM's own input tensor for that op
  (an op-level harness, independent of the other ops' kernels).
- Crafted models that tell apart the float32-product and double-product multipliers of
  per-tensor weights, and the truncating and multiplier MEAN paths: they fix which one TFLM uses.
- Unit tests of the export-time parameter arithmetic, refusals, cross-compilation.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from iotsim.firmware import ops_nn
from iotsim.firmware.lower import C_TYPES, UnsupportedOpError, c_array
from iotsim.firmware.quant import f32, quantize_multiplier
from iotsim.paths import FIRMWARE_REF_DIR, REPO_DIR
from iotsim.tinyml.stats import read_model

pytest.importorskip("tflite_micro")
S = pytest.importorskip("tflite_micro.tensorflow.lite.micro.python.schema_py_generated")
flatbuffers = pytest.importorskip("flatbuffers")

GCC = shutil.which("gcc")
needs_gcc = pytest.mark.skipif(GCC is None, reason="no host gcc")
N_VECTORS = 16


# ------------------------------------------------------------------------------ model builder
_TYPES = {"int8": S.TensorType.INT8, "int32": S.TensorType.INT32, "float32": S.TensorType.FLOAT32}
_ACT = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3, "TANH": 4}
_PAD = {"SAME": 0, "VALID": 1}


def _t(shape, dtype="int8", scale=None, zp=0, qdim=0, data=None) -> dict:
    return {"shape": [int(d) for d in shape], "dtype": dtype, "scale": scale, "zp": zp, "qdim": qdim, "data": data}


def single_op_model(op: str, options_name: str | None, options, tensors, op_inputs, op_outputs, version=1) -> bytes:
    """A one-op .tflite flatbuffer: graph input = the op's first input, outputs = the op's."""
    m = S.ModelT()
    m.version = 3
    m.description = "iotsim nn op test"
    m.buffers = [S.BufferT()]
    sg = S.SubGraphT()
    sg.tensors = []
    for i, spec in enumerate(tensors):
        t = S.TensorT()
        t.shape, t.type, t.name, t.buffer = spec["shape"], _TYPES[spec["dtype"]], f"t{i}", 0
        if spec["data"] is not None:
            b = S.BufferT()
            b.data = np.ascontiguousarray(spec["data"], dtype=spec["dtype"]).tobytes()
            m.buffers.append(b)
            t.buffer = len(m.buffers) - 1
        if spec["scale"] is not None:
            q = S.QuantizationParametersT()
            sc = np.atleast_1d(np.asarray(spec["scale"], dtype=np.float32))
            zp = np.atleast_1d(np.asarray(spec["zp"], dtype=np.int64))
            q.scale = [float(v) for v in sc]
            q.zeroPoint = [int(v) for v in (zp if zp.size == sc.size else np.full(sc.size, zp[0]))]
            q.quantizedDimension = spec["qdim"]
            t.quantization = q
        sg.tensors.append(t)
    o = S.OperatorT()
    o.opcodeIndex, o.inputs, o.outputs = 0, list(op_inputs), list(op_outputs)
    if options_name:
        o.builtinOptionsType = getattr(S.BuiltinOptions, options_name)
        o.builtinOptions = options
    sg.operators = [o]
    sg.inputs, sg.outputs = [op_inputs[0]], list(op_outputs)
    m.subgraphs = [sg]
    code = getattr(S.BuiltinOperator, op)
    oc = S.OperatorCodeT()
    oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), version
    m.operatorCodes = [oc]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def conv_model(rng, in_shape, out_c, k, stride=(1, 1), dil=(1, 1), padding="SAME", act="NONE", per_channel=True,
               bias=True, in_q=(0.05, -3), out_q=(0.1, 5), groups=1, dtype="int8") -> bytes:
    n, h, w, c = in_shape
    fin = c // groups
    oh = ops_nn.compute_out_size(padding, h, k[0], stride[0], dil[0])
    ow = ops_nn.compute_out_size(padding, w, k[1], stride[1], dil[1])
    wscale = rng.uniform(0.002, 0.02, size=out_c).astype(np.float32) if per_channel else np.float32(0.01)
    q = dtype == "int8"
    ts = [_t(in_shape, dtype, *(in_q if q else (None, 0))),
          _t((out_c, *k, fin), dtype, wscale if q else None, 0, 0,
             rng.integers(-127, 128, size=(out_c, *k, fin)).astype(dtype)),
          _t((out_c,), "int32" if q else dtype, np.float32(in_q[0]) * np.atleast_1d(wscale) if q else None, 0, 0,
             rng.integers(-3000, 3000, size=out_c).astype("int32" if q else dtype)),
          _t((n, oh, ow, out_c), dtype, *(out_q if q else (None, 0)))]
    o = S.Conv2DOptionsT()
    o.padding, (o.strideH, o.strideW), (o.dilationHFactor, o.dilationWFactor) = _PAD[padding], stride, dil
    o.fusedActivationFunction = _ACT[act]
    return single_op_model("CONV_2D", "Conv2DOptions", o, ts, [0, 1, 2] if bias else [0, 1, -1], [3], version=3)


def dw_model(rng, in_shape, dm, k, stride=(1, 1), dil=(1, 1), padding="SAME", act="NONE", per_channel=True,
             bias=True, in_q=(0.05, -3), out_q=(0.1, 5)) -> bytes:
    n, h, w, c = in_shape
    oc = c * dm
    oh = ops_nn.compute_out_size(padding, h, k[0], stride[0], dil[0])
    ow = ops_nn.compute_out_size(padding, w, k[1], stride[1], dil[1])
    wscale = rng.uniform(0.002, 0.02, size=oc).astype(np.float32) if per_channel else np.float32(0.01)
    ts = [_t(in_shape, scale=in_q[0], zp=in_q[1]),
          _t((1, *k, oc), scale=wscale, qdim=3, data=rng.integers(-127, 128, size=(1, *k, oc), dtype=np.int8)),
          _t((oc,), "int32", np.float32(in_q[0]) * np.atleast_1d(wscale),
             data=rng.integers(-3000, 3000, size=oc, dtype=np.int32)),
          _t((n, oh, ow, oc), scale=out_q[0], zp=out_q[1])]
    o = S.DepthwiseConv2DOptionsT()
    o.padding, (o.strideH, o.strideW), (o.dilationHFactor, o.dilationWFactor) = _PAD[padding], stride, dil
    o.fusedActivationFunction, o.depthMultiplier = _ACT[act], dm
    return single_op_model("DEPTHWISE_CONV_2D", "DepthwiseConv2DOptions", o, ts,
                           [0, 1, 2] if bias else [0, 1, -1], [3], version=3)


def fc_model(rng, in_shape, units, act="NONE", per_channel=False, bias=True, keep_num_dims=False,
             in_q=(0.05, -3), out_q=(0.2, 5)) -> bytes:
    accum = in_shape[-1]
    batches = int(np.prod(in_shape[:-1]))
    out_shape = (*in_shape[:-1], units) if keep_num_dims else (batches, units)
    wscale = rng.uniform(0.002, 0.02, size=units).astype(np.float32) if per_channel else np.float32(0.01)
    ts = [_t(in_shape, scale=in_q[0], zp=in_q[1]),
          _t((units, accum), scale=wscale, data=rng.integers(-127, 128, size=(units, accum), dtype=np.int8)),
          _t((units,), "int32", np.float32(in_q[0]) * np.atleast_1d(wscale),
             data=rng.integers(-3000, 3000, size=units, dtype=np.int32)),
          _t(out_shape, scale=out_q[0], zp=out_q[1])]
    o = S.FullyConnectedOptionsT()
    o.fusedActivationFunction, o.keepNumDims = _ACT[act], keep_num_dims
    return single_op_model("FULLY_CONNECTED", "FullyConnectedOptions", o, ts, [0, 1, 2] if bias else [0, 1, -1],
                           [3], version=4 if per_channel else 1)


def pool_model(kind, in_shape, k, stride, padding="VALID", act="NONE", q=(0.05, -3), out_q=None) -> bytes:
    n, h, w, c = in_shape
    oh = ops_nn.compute_out_size(padding, h, k[0], stride[0])
    ow = ops_nn.compute_out_size(padding, w, k[1], stride[1])
    out_q = out_q or q
    ts = [_t(in_shape, scale=q[0], zp=q[1]), _t((n, oh, ow, c), scale=out_q[0], zp=out_q[1])]
    o = S.Pool2DOptionsT()
    o.padding, (o.strideH, o.strideW), (o.filterHeight, o.filterWidth) = _PAD[padding], stride, k
    o.fusedActivationFunction = _ACT[act]
    return single_op_model(kind, "Pool2DOptions", o, ts, [0], [1], version=2)


def mean_model(in_shape, axes, keep_dims, in_q=(0.05, -3), out_q=(0.03, 7)) -> bytes:
    rank = len(in_shape)
    ax = {a % rank for a in axes}
    out_shape = ([1 if i in ax else d for i, d in enumerate(in_shape)] if keep_dims
                 else [d for i, d in enumerate(in_shape) if i not in ax])
    ts = [_t(in_shape, scale=in_q[0], zp=in_q[1]),
          _t((len(axes),), "int32", data=np.asarray(axes, dtype=np.int32)),
          _t(out_shape, scale=out_q[0], zp=out_q[1])]
    o = S.ReducerOptionsT()
    o.keepDims = keep_dims
    return single_op_model("MEAN", "ReducerOptions", o, ts, [0, 1], [2], version=2)


def _cases() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    return {
        "conv_s1_same_relu": conv_model(rng, (1, 7, 6, 3), 4, (3, 3), act="RELU"),
        "conv_s2_valid_relu6": conv_model(rng, (1, 9, 8, 3), 5, (3, 2), stride=(2, 2), padding="VALID", act="RELU6"),
        "conv_s2x1_same_batch2": conv_model(rng, (2, 8, 8, 3), 4, (3, 3), stride=(2, 1)),
        "conv_dil2_same": conv_model(rng, (1, 9, 10, 2), 3, (3, 3), dil=(2, 2)),
        "conv_dil2_valid_s2": conv_model(rng, (1, 11, 9, 2), 3, (3, 2), dil=(2, 2), stride=(2, 2), padding="VALID"),
        "conv_per_tensor_nobias_n1to1": conv_model(rng, (1, 6, 6, 4), 3, (2, 2), per_channel=False, bias=False,
                                                   act="RELU_N1_TO_1"),
        "conv_groups2": conv_model(rng, (1, 5, 5, 4), 6, (3, 3), groups=2),
        "conv_1x1_zp0": conv_model(rng, (1, 5, 5, 16), 8, (1, 1), in_q=(0.02, 0), out_q=(0.3, -128)),
        "conv_1d_kws_like": conv_model(rng, (1, 1, 32, 6), 8, (1, 5), stride=(1, 2), act="RELU"),
        "dw_dm1_same_relu": dw_model(rng, (1, 7, 6, 3), 1, (3, 3), act="RELU"),
        "dw_dm2_s2_valid_relu6": dw_model(rng, (1, 9, 8, 3), 2, (3, 3), stride=(2, 2), padding="VALID", act="RELU6"),
        "dw_dil2_same": dw_model(rng, (1, 9, 9, 2), 1, (3, 3), dil=(2, 2)),
        "dw_dm2_per_tensor": dw_model(rng, (1, 6, 5, 4), 2, (2, 3), per_channel=False),
        "fc_bias_relu": fc_model(rng, (1, 40), 10, act="RELU"),
        "fc_nobias": fc_model(rng, (1, 40), 10, bias=False),
        "fc_per_channel": fc_model(rng, (1, 40), 10, per_channel=True),
        "fc_per_channel_nobias_relu6": fc_model(rng, (1, 33), 7, per_channel=True, bias=False, act="RELU6"),
        "fc_batches3": fc_model(rng, (3, 16), 5),
        "fc_keep_num_dims": fc_model(rng, (1, 4, 16), 5, keep_num_dims=True),
        "fc_keep_num_dims_per_channel": fc_model(rng, (1, 4, 16), 5, keep_num_dims=True, per_channel=True),
        "avgpool_valid": pool_model("AVERAGE_POOL_2D", (1, 8, 8, 3), (2, 2), (2, 2)),
        "avgpool_same_relu": pool_model("AVERAGE_POOL_2D", (1, 7, 5, 3), (3, 3), (2, 2), padding="SAME", act="RELU"),
        "avgpool_global": pool_model("AVERAGE_POOL_2D", (1, 5, 5, 8), (5, 5), (5, 5)),
        "maxpool_same": pool_model("MAX_POOL_2D", (1, 7, 5, 3), (3, 3), (2, 2), padding="SAME"),
        "maxpool_valid_relu6_batch2": pool_model("MAX_POOL_2D", (2, 8, 6, 4), (2, 3), (2, 1), act="RELU6",
                                                 q=(0.02, -100)),
        "mean_4d_axes12_keep": mean_model((1, 5, 4, 6), [1, 2], True),
        "mean_4d_axes12_keep_same_q": mean_model((1, 5, 4, 6), [1, 2], True, out_q=(0.05, -3)),
        "mean_4d_axes21_same_q": mean_model((1, 5, 4, 6), [2, 1], False, out_q=(0.05, -3)),
        "mean_4d_axis2": mean_model((1, 25, 5, 8), [2], False),
        "mean_time_axis": mean_model((1, 16, 8), [1], False),
        "mean_time_axis_same_q": mean_model((1, 16, 8), [1], False, out_q=(0.05, -3)),
        "mean_neg_axes_keep": mean_model((2, 3, 4, 5), [-1, 0], True),
        "mean_two_apart": mean_model((2, 3, 4, 5), [1, 3], False, out_q=(0.01, 0)),
        "mean_all": mean_model((3, 4, 5), [0, 1, 2], False),
    }


CASES = _cases()


# ------------------------------------------------------------------------------ runners
def tflm_outputs(content: bytes, x: np.ndarray) -> np.ndarray:
    """TFLite Micro's output for each row of x (n, *input shape), flattened: (n, elements)."""
    from tflite_micro import runtime

    it = runtime.Interpreter.from_bytes(content, arena_size=max(len(content) * 10, 1 << 20))
    out = []
    for row in x:
        it.set_input(np.ascontiguousarray(row), 0)
        it.invoke()
        out.append(np.asarray(it.get_output(0)).ravel().copy())
    return np.stack(out)


def exported_outputs(content: bytes, x: np.ndarray, work: Path) -> np.ndarray:
    """Export the model (iotsim.firmware.export), build it for the host, run x: (n, elements)."""
    from iotsim.firmware.build import build_host
    from iotsim.firmware.export import export_model
    from iotsim.firmware.qemu import run_host

    work.mkdir(parents=True, exist_ok=True)
    res = export_model(content, work / "export", where="test model")
    exe = build_host(work / "export", work / "build", extra_cflags=("-Werror",))
    out = run_host(exe, np.ascontiguousarray(x).tobytes(), res.input_bytes, res.output_bytes)
    graph = read_model(content)
    out_t = graph.tensors[graph.outputs[0]]
    return np.frombuffer(out, dtype=np.dtype(out_t.dtype)).reshape(len(x), -1)


def random_int8(shape, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-128, 128, size=(n, *shape), dtype=np.int8)


def op_level_check(content: bytes, x: np.ndarray, work: Path) -> dict[int, tuple[str, int]]:
    """Each NN op of a model run alone on TFLM's own input tensors: {op: (name, vectors differing)}.

    Builds one host program calling every lowered NN op (ops_nn.LOWERINGS only; the other ops
    are not run), fed per vector with the op inputs TFLM computed (kPreserveAllTensors).
    """
    from tflite_micro import runtime

    g = read_model(content)
    ops = [op for op in g.ops if op.name in ops_nn.LOWERINGS]
    lowered = {op.index: ops_nn.LOWERINGS[op.name](g, op) for op in ops}
    consts: set[int] = set()
    bufs: dict[int, int] = {}
    plan = []
    for op in ops:
        def sub(m: re.Match) -> str:
            t = int(m.group(1))
            ti = g.tensors[t]
            if ti.constant:
                consts.add(t)
                return f"iotsim_t{t}"
            bufs[t] = ti.nbytes
            return f"(({C_TYPES[ti.dtype]} *)buf{t})"

        call = re.sub(r"\{T(\d+)\}", sub, lowered[op.index].call)
        ins = [t for t in op.inputs if t >= 0 and not g.tensors[t].constant]
        plan.append((ins, [t for t in op.outputs if t >= 0], call))
    src = ["#include <stdio.h>\n#include <stdlib.h>\n#include <stdint.h>\n#include \"nn_ops.h\"\n"]
    src += [f"static int32_t buf{t}[{(n + 3) // 4}];\n" for t, n in sorted(bufs.items())]
    src += [c_array(f"iotsim_t{t}", C_TYPES[g.tensors[t].dtype], g.constant_array(t)) for t in sorted(consts)]
    src += [low.decls for low in lowered.values()]
    src.append("int main(int argc, char **argv)\n{\n    FILE *fi, *fo;\n    int v, n;\n    if (argc != 4) return 2;\n"
               "    fi = fopen(argv[1], \"rb\"); fo = fopen(argv[2], \"wb\"); n = atoi(argv[3]);\n"
               "    if (!fi || !fo) return 2;\n    for (v = 0; v < n; ++v) {\n")
    for ins, outs, call in plan:
        src += [f"        if (fread(buf{t}, 1, {g.tensors[t].nbytes}, fi) != {g.tensors[t].nbytes}u) return 2;\n"
                for t in ins]
        src.append(f"        {{ {call} }}\n")
        src += [f"        fwrite(buf{t}, 1, {g.tensors[t].nbytes}, fo);\n" for t in outs]
    src.append("    }\n    fclose(fo);\n    return 0;\n}\n")
    work.mkdir(parents=True, exist_ok=True)
    (work / "main.c").write_text("".join(src))
    sources = sorted({s for low in lowered.values() for s in low.sources})
    cmd = [GCC, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-I", str(FIRMWARE_REF_DIR / "include"),
           str(work / "main.c"), *[str(FIRMWARE_REF_DIR / "kernels" / s) for s in sources], "-o", str(work / "run")]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr

    it = runtime.Interpreter.from_bytes(content, arena_size=max(len(content) * 10, 1 << 20),
                                        intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
    need = sorted({t for ins, outs, _ in plan for t in ins + outs})
    golden, blob = [], bytearray()
    for row in x:
        it.set_input(np.ascontiguousarray(row), 0)
        it.invoke()
        vals = {t: np.asarray(it.GetTensor(t, 0)["tensor_data"]).copy() for t in need}
        golden.append(vals)
        for ins, _, _ in plan:
            for t in ins:
                blob += np.ascontiguousarray(vals[t]).tobytes()
    (work / "in.bin").write_bytes(bytes(blob))
    proc = subprocess.run([str(work / "run"), str(work / "in.bin"), str(work / "out.bin"), str(len(x))],
                          check=False, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    raw = (work / "out.bin").read_bytes()
    pos, differing = 0, {op.index: 0 for op in ops}
    for vals in golden:
        for op, (_, outs, _) in zip(ops, plan):
            for t in outs:
                ti = g.tensors[t]
                ours = np.frombuffer(raw, dtype=np.dtype(ti.dtype), count=ti.elements, offset=pos)
                pos += ti.nbytes
                if not np.array_equal(ours, np.asarray(vals[t]).ravel()):
                    differing[op.index] += 1
    return {op.index: (op.name, differing[op.index]) for op in ops}


# ------------------------------------------------------------------------------ single-op models
@needs_gcc
@pytest.mark.parametrize("name", sorted(CASES))
def test_single_op_model_bit_exact_with_tflm(name, tmp_path):
    content = CASES[name]
    graph = read_model(content)
    x = random_int8(graph.tensors[graph.inputs[0]].shape, N_VECTORS, seed=len(name))
    ours = exported_outputs(content, x, tmp_path)
    ref = tflm_outputs(content, x)
    assert ours.shape == ref.shape
    differ = np.flatnonzero((ours != ref).any(axis=1))
    assert differ.size == 0, (f"{name}: {differ.size}/{len(x)} vectors differ, max "
                              f"{np.abs(ours.astype(int) - ref.astype(int)).max()} LSB")


# ------------------------------------------------------------------------------ real models
_MODELS = [REPO_DIR / "iotsim" / "zoo" / f"{m}.tflite" for m in
           ("factory_bearing_int8", "smart_home_kws_int8", "wearable_ecg_int8", "farm_soil_int8")]
_MODELS += [REPO_DIR.parent / "shared" / "reference" / "mlperf_tiny" / f"{m}.tflite" for m in
            ("kws_ref_model", "vww_96_int8", "pretrainedResnet_quant", "ad01_int8")]


@needs_gcc
@pytest.mark.parametrize("path", _MODELS, ids=lambda p: p.stem)
def test_model_ops_bit_exact_with_tflm(path, tmp_path):
    if not path.exists():
        pytest.skip(f"{path} not present")
    content = path.read_bytes()
    graph = read_model(content)
    x = random_int8(graph.tensors[graph.inputs[0]].shape, 6, seed=7)
    result = op_level_check(content, x, tmp_path)
    assert result, "no NN op in the model"
    bad = {op: v for op, v in result.items() if v[1]}
    assert not bad, f"ops differing from TFLM (op: (name, vectors)): {bad}"


# ------------------------------------------------------------------------------ what TFLM computes
# Scales (float32-exact) for which QuantizeMultiplier(double(float(in*w))/out) and
# QuantizeMultiplier(double(in)*double(w)/out) differ, and accumulators whose output they change.
_PRODUCT_CASES = [
    (0.037632621824741364, 0.0020108772441744804, 0.004916952922940254, [-7764, 7764]),
    (0.09962808340787888, 0.010073923505842686, 0.004644233733415604, [-520, 520]),
    (0.03699927031993866, 0.0017130587948486209, 0.002185295568779111, [-3499, 3499]),
]


def _product_model(kind: str, a: float, b: float, c: float, accs: list[int], rng) -> bytes:
    """Zero input and zero points: the accumulator of output channel i is bias i = accs[i]."""
    units, bias = len(accs), np.asarray(accs, dtype=np.int32)
    w = rng.integers(-127, 128, size=(units, 4), dtype=np.int8)
    bq = {"scale": np.float32(a * b), "data": bias}
    if kind == "FULLY_CONNECTED":
        ts = [_t((1, 4), scale=a), _t((units, 4), scale=b, data=w), _t((units,), "int32", **bq),
              _t((1, units), scale=c)]
        return single_op_model(kind, "FullyConnectedOptions", S.FullyConnectedOptionsT(), ts, [0, 1, 2], [3])
    if kind == "CONV_2D":
        ts = [_t((1, 1, 1, 4), scale=a), _t((units, 1, 1, 4), scale=b, data=w.reshape(units, 1, 1, 4)),
              _t((units,), "int32", **bq), _t((1, 1, 1, units), scale=c)]
        o = S.Conv2DOptionsT()
        o.padding, o.strideH, o.strideW, o.dilationHFactor, o.dilationWFactor = 1, 1, 1, 1, 1
        return single_op_model(kind, "Conv2DOptions", o, ts, [0, 1, 2], [3], version=3)
    ts = [_t((1, 1, 1, units), scale=a), _t((1, 1, 1, units), scale=b, qdim=3, data=w[:, 0].reshape(1, 1, 1, units)),
          _t((units,), "int32", **bq), _t((1, 1, 1, units), scale=c)]
    o = S.DepthwiseConv2DOptionsT()
    o.padding, o.strideH, o.strideW, o.dilationHFactor, o.dilationWFactor, o.depthMultiplier = 1, 1, 1, 1, 1, 1
    return single_op_model(kind, "DepthwiseConv2DOptions", o, ts, [0, 1, 2], [3], version=3)


def test_per_tensor_multiplier_is_the_double_product():
    for a, b, c, _ in _PRODUCT_CASES:
        assert quantize_multiplier(f32(a * b) / c) != quantize_multiplier(a * b / c)
        assert ops_nn.fc_per_tensor_multiplier(a, b, c) == quantize_multiplier(a * b / c)
        m, s = ops_nn.conv_multipliers(a, [b], c, 3)
        assert m == [quantize_multiplier(a * b / c)[0]] * 3 and s == [quantize_multiplier(a * b / c)[1]] * 3


@needs_gcc
@pytest.mark.parametrize("kind", ["FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D"])
def test_per_tensor_multiplier_matches_tflm_where_float_product_would_not(kind, tmp_path):
    from iotsim.firmware.quant import multiply_by_quantized_multiplier as mbqm

    rng = np.random.default_rng(3)
    for i, (a, b, c, accs) in enumerate(_PRODUCT_CASES):
        content = _product_model(kind, a, b, c, accs, rng)
        x = np.zeros((1, *read_model(content).tensors[0].shape), dtype=np.int8)
        ref = tflm_outputs(content, x)[0]
        m_float = quantize_multiplier(f32(a * b) / c)
        assert [mbqm(v, *m_float) for v in accs] != ref.tolist()  # the case discriminates
        assert exported_outputs(content, x, tmp_path / str(i))[0].tolist() == ref.tolist()


def test_mean_with_equal_quantization_uses_the_multiplier_not_truncation():
    """TFLM's int8 MEAN rounds (integer multiplier) even when in/out scale and zero point are equal."""
    content = CASES["mean_time_axis_same_q"]
    x = random_int8((1, 16, 8), 8, seed=1)
    ref = tflm_outputs(content, x)
    truncated = np.trunc(x.astype(np.int32).sum(axis=2) / 16).astype(np.int32).reshape(ref.shape)
    assert (truncated != ref).any()


# ------------------------------------------------------------------------------ parameter arithmetic
def test_padding_matches_tensorflow_windowed_output_size():
    # SAME: out = ceil(in / stride), total padding split with the odd pixel after
    assert ops_nn.compute_padding_hw("SAME", 2, 2, 1, 1, 49, 10, 10, 4) == (4, 1, 25, 5)
    assert ops_nn.compute_padding_hw("SAME", 1, 2, 1, 1, 1, 256, 1, 7) == (0, 2, 1, 128)
    assert ops_nn.compute_padding_hw("VALID", 1, 1, 1, 1, 25, 5, 1, 1) == (0, 0, 25, 5)
    assert ops_nn.compute_padding_hw("VALID", 2, 2, 1, 1, 9, 8, 3, 2) == (0, 0, 4, 4)
    # dilation 2: effective filter 5
    assert ops_nn.compute_padding_hw("SAME", 1, 1, 2, 2, 9, 10, 3, 3) == (2, 2, 9, 10)
    assert ops_nn.compute_padding_hw("VALID", 1, 1, 2, 2, 9, 10, 3, 3) == (0, 0, 5, 6)
    for size in range(1, 20):
        for k in range(1, 6):
            for s in range(1, 4):
                out = ops_nn.compute_out_size("SAME", size, k, s)
                assert out == -(-size // s)
                pad, extra = ops_nn.compute_padding_with_offset(s, 1, size, k, out)
                assert 2 * pad + extra == max((out - 1) * s + k - size, 0)


def test_mean_multiplier_folds_one_over_n():
    m0, s0 = quantize_multiplier(0.05 / 0.03)
    for n in (1, 2, 16, 64, 1024):  # powers of two: the multiplier is kept, the shift drops by log2 n
        assert ops_nn.mean_multiplier(0.05, 0.03, n) == (m0, s0 - (n.bit_length() - 1))
    for n in (3, 5, 25, 125, 1000):
        m, s = ops_nn.mean_multiplier(0.05, 0.03, n)
        k = n.bit_length() - 1
        assert m == (m0 << k) // n and s == s0 - k
        assert m * 2.0 ** (s - 31) == pytest.approx(0.05 / 0.03 / n, rel=1e-8)


def test_mean_loops_merge_and_order():
    assert ops_nn.mean_loops((1, 25, 5, 40), {2}) == ([(25, 200), (40, 1)], [(5, 40)])
    assert ops_nn.mean_loops((1, 16, 64), {1}) == ([(64, 1)], [(16, 64)])
    assert ops_nn.mean_loops((1, 5, 4, 6), {1, 2}) == ([(6, 1)], [(20, 6)])
    assert ops_nn.mean_loops((2, 3, 4, 5), {0, 3}) == ([(12, 5)], [(2, 60), (5, 1)])
    assert ops_nn.mean_loops((3, 4, 5), {0, 1, 2}) == ([], [(60, 1)])


def test_conv_multipliers_broadcast_per_tensor_scale():
    m, s = ops_nn.conv_multipliers(0.05, [0.01], 0.1, 4)
    assert m == [quantize_multiplier(0.05 * 0.01 / 0.1)[0]] * 4 and len(s) == 4
    m, s = ops_nn.conv_multipliers(0.05, [0.01, 0.02], 0.1, 2)
    assert (m[1], s[1]) == quantize_multiplier(0.05 * 0.02 / 0.1)


def test_lowering_emits_prefixed_decls_and_placeholders():
    g = read_model(CASES["conv_s1_same_relu"])
    low = ops_nn.LOWERINGS["CONV_2D"](g, g.ops[0])
    assert low.call == "iotsim_conv_s8(&op0_params, {T0}, {T1}, {T2}, {T3});"
    assert low.headers == ("nn_ops.h",) and low.sources == ("conv.c",)
    names = re.findall(r"static const \w+ (\w+)", low.decls)
    assert names and all(n.startswith("op0_") for n in names)
    g = read_model(CASES["conv_per_tensor_nobias_n1to1"])
    low = ops_nn.LOWERINGS["CONV_2D"](g, g.ops[0])
    assert "(const int32_t *)0" in low.call and ".per_channel = 0" in low.decls


# ------------------------------------------------------------------------------ refusals
@pytest.mark.parametrize("content, why", [
    (conv_model(np.random.default_rng(0), (1, 5, 5, 2), 3, (3, 3), dtype="float32"), "only int8"),
    (conv_model(np.random.default_rng(0), (1, 5, 5, 2), 3, (3, 3), act="TANH"), "fused activation TANH"),
    (dw_model(np.random.default_rng(0), (1, 5, 5, 2), 1, (3, 3), bias=False), "without bias"),
    (pool_model("AVERAGE_POOL_2D", (1, 4, 4, 2), (2, 2), (2, 2), out_q=(0.1, -3)), "quantization differ"),
    (pool_model("MAX_POOL_2D", (1, 4, 4, 2), (2, 2), (2, 2), out_q=(0.05, 0)), "quantization differ"),
], ids=["float_conv", "tanh", "dw_nobias", "avgpool_requant", "maxpool_zp"])
def test_unsupported_variants_are_refused(content, why):
    g = read_model(content)
    op = g.ops[0]
    with pytest.raises(UnsupportedOpError, match=why):
        ops_nn.LOWERINGS[op.name](g, op)


# ------------------------------------------------------------------------------ C hygiene
@pytest.mark.parametrize("cc, flags", [
    ("gcc", ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic"]),
    ("arm-none-eabi-gcc", ["-std=c99", "-mcpu=cortex-m4", "-mthumb", "-O2", "-Wall", "-Wextra", "-Werror"]),
])
def test_kernels_compile_warning_free(cc, flags, tmp_path):
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} not installed")
    for src in ("conv.c", "depthwise_conv.c", "fully_connected.c", "pooling.c", "mean.c"):
        proc = subprocess.run([cc, *flags, "-I", str(FIRMWARE_REF_DIR / "include"), "-c",
                               str(FIRMWARE_REF_DIR / "kernels" / src), "-o", str(tmp_path / (src + ".o"))],
                              check=False, capture_output=True, text=True)
        assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
