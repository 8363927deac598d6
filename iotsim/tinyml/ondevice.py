"""What training a dense softmax layer costs on the node: one float32 SGD step, measured on the emulated MCU.

A node that trains its model's last dense layers (`iotsim.tinyml.federated`: DenseHead, local_sgd)
runs, per minibatch, the layer's forward pass, softmax cross-entropy, its gradients and the update.
The cost is measured, not assumed: `measure()` builds `firmware_ref/training/dense_sgd.c` (plain C99
float, newlib's expf) into the reference firmware as if it were a model, runs it on QEMU with the
instruction-counting plugin for two layer sizes (BATCH x IN -> OUT), checks every output against a
numpy float32 step (`reference_step`) and returns the instruction-class counts per multiply-accumulate
and of the fixed rest.

MAC accounting. One step of a layer with IN inputs and OUT outputs on BATCH samples does
BATCH*IN*OUT MACs in each of the forward pass (z = x W + b), the weight gradient (gW = x^T delta)
and the input gradient (gx = delta W^T, what the layer below back-propagates), and IN*OUT in the
update (W - lr gW): `step_macs` = 3*BATCH*IN*OUT + IN*OUT. The rest (softmax: an expf per logit and
a division per sample; bias gradient and update; loop and call overhead) is not a MAC; the fit puts
what grows with the layer into the per-MAC counts and the rest into the fixed counts. A MAC compiles
to VLDR/VLDM of both operands, VMUL.F32 and VADD.F32 (-std=c99 turns off gcc's contraction into VFMA),
pointer steps and a taken loop branch: 8.2 instructions, 12.4 cycles on the Cortex-M4 timing table,
2 of them the branch's pipeline refill (P = 2).

The fit is exact for the two sizes and approximate for others: the compiler specialises the loops to
the compile-time sizes, and softmax grows with BATCH*OUT, not with the MACs. Measured 2026-12-04
(Cortex-M4, the nRF52840's cycle model) on twelve sizes with BATCH 8 to 32, IN 16 to 128, OUT 2 to
32, a step costs 12.2 to 14.6 cycles per MAC (8.1 to 9.6 instructions); the fit predicts their
cycles within 5 % (CHECK_SIZE: 3 % low), except BATCH 8 x 32 -> 8 (short inner loops over OUT: 12 %
low). It does not hold for single-sample steps: the fixed part carries the softmax of a batch of
8, so BATCH 1 x 32 -> 2 comes out twice its measured 10.1 cycles per MAC. expf (newlib's
single-precision fdlibm code) takes a different path for small and large arguments, so the counts
vary by a few dozen instructions between input vectors; each size's counts are those of its median
vector (fixed seeds: reproducible exactly).

`RECORDED` holds the counts measured for the Cortex-M4 (the command below reproduces them; a test
re-measures and compares); a node's training time is then cycles (the MCU's cycle model,
`iotsim.firmware.cycles`) / clock:

    python -m iotsim.tinyml.ondevice          # prints the counts to record
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from iotsim.errors import InputError
from iotsim.paths import FIRMWARE_REF_DIR

SOURCE = FIRMWARE_REF_DIR / "training" / "dense_sgd.c"
BOARD = "mps2-an386"  # QEMU's Cortex-M4 board (the firmware's default)
# (BATCH, IN, OUT) fitted: the zoo's output layers are 16..40 -> 2, its hidden head layers 64 -> 32
# and 128 -> 16 (iotsim/zoo/*_float.tflite, head_from_tflite); a minibatch of 8
FIT_SIZES = ((8, 32, 2), (8, 128, 16))
CHECK_SIZE = (16, 64, 32)  # measured by the test, compared with the fit's prediction
VECTORS = 3  # input vectors per size; the median one's counts are kept
RTOL = 1e-5  # see check_outputs


def step_macs(batch: int, inputs: int, outputs: int) -> int:
    """MACs of one SGD step: forward, weight gradient, input gradient (BATCH*IN*OUT each), update (IN*OUT)."""
    return 3 * batch * inputs * outputs + inputs * outputs


@dataclass(frozen=True)
class DenseSgdCounts:
    """Instruction-class counts of a dense softmax layer's SGD step on one core: per MAC and the fixed rest."""

    core: str
    caches: str | None  # the flash caches the miss counts were simulated with (plugin arguments)
    per_mac: dict
    fixed: dict

    def counts(self, macs: float) -> dict:
        return {k: self.fixed[k] + macs * self.per_mac[k] for k in self.per_mac}


def float_mac_seconds(macs: float, mcu) -> float | None:
    """Seconds the MCU takes for one SGD step of `macs` MACs (step_macs; the fixed part is per step, so price
    several steps one by one). None: its core has no recorded counts or it has no cycle model."""
    from iotsim.firmware.routine import fractional_cycles, recorded_params

    found = recorded_params(mcu, RECORDED)
    if found is None:
        return None
    rec, params = found
    fixed, per_mac = (fractional_cycles(c, params, rec.caches) for c in (rec.fixed, rec.per_mac))
    return (fixed + float(macs) * per_mac) / mcu.clock_hz


# ---- the step in numpy, and the kernel's inputs and outputs ------------------------------------------
def reference_step(x: np.ndarray, w: np.ndarray, b: np.ndarray, y: np.ndarray, lr: float
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One SGD step in float32, DenseHead.loss_and_gradients + local_sgd for a one-layer head: (W', b', gx)."""
    f = np.float32
    x, w, b = (np.asarray(a, dtype=f) for a in (x, w, b))
    n = x.shape[0]
    z = x @ w + b
    e = np.exp(z - z.max(axis=1, keepdims=True))
    p = e * (f(1) / e.sum(axis=1, keepdims=True))
    p[np.arange(n), y] -= f(1)
    delta = p * (f(1) / f(n))
    gx = delta @ w.T
    return w - f(lr) * (x.T @ delta), b - f(lr) * delta.sum(axis=0), gx


def _sizes(batch: int, inputs: int, outputs: int) -> tuple[int, int]:
    """Input and output bytes of the kernel (firmware_ref/training/dense_sgd.c)."""
    n_in = 4 * (batch * inputs + inputs * outputs + outputs + batch + 1)  # x, W, b, y, lr
    return n_in, 4 * (inputs * outputs + outputs + batch * inputs)  # W', b', gx


def random_step(rng: np.random.Generator, batch: int, inputs: int, outputs: int) -> tuple:
    """(x, W, b, y, lr) like a head's: unit-variance features, weights of variance 1/IN, small biases."""
    x = rng.standard_normal((batch, inputs)).astype(np.float32)
    w = (rng.standard_normal((inputs, outputs)) / np.sqrt(inputs)).astype(np.float32)
    b = (0.1 * rng.standard_normal(outputs)).astype(np.float32)
    y = rng.integers(0, outputs, size=batch).astype("<i4")
    lr = np.float32(rng.uniform(0.1, 1.0))  # large enough that W' - W is far above the tolerance
    return x, w, b, y, lr


def _pack(x, w, b, y, lr) -> bytes:
    return b"".join(np.ascontiguousarray(a).astype(t).tobytes()
                    for a, t in ((x, "<f4"), (w, "<f4"), (b, "<f4"), (y, "<i4"), (np.array([lr]), "<f4")))


def check_outputs(got: bytes, want: tuple[np.ndarray, ...], size: tuple[int, int, int]) -> None:
    """The kernel's W', b', gx against the numpy step, element by element: |got - want| <= RTOL x (|want| +
    the tensor's largest |want|). Both are float32 but round differently (summation order, numpy's BLAS
    may fuse multiply-adds, expf's last bit): a few ulps (2^-23 relative) times a sum's condition, which
    gx's cancellation (delta's rows sum to zero) raises. RTOL 1e-5 is about 80 ulps of the tensor's
    scale, far above those and far below what a wrong index or a missing term gives (order 1)."""
    flat = np.frombuffer(got, dtype="<f4")
    at = 0
    for name, ref in zip(("W'", "b'", "gx"), want):
        ref = np.asarray(ref, dtype=np.float64).ravel()
        val = flat[at: at + ref.size].astype(np.float64)
        at += ref.size
        bound = RTOL * (np.abs(ref) + np.abs(ref).max())
        if not np.all(np.abs(val - ref) <= bound):
            k = int(np.argmax(np.abs(val - ref) - bound))
            raise InputError(f"the firmware's SGD step ({'x'.join(map(str, size))}) gives {name}[{k}] = {val[k]!r}, "
                             f"numpy {ref[k]!r}", where=str(SOURCE))


def _export(directory: Path, batch: int, inputs: int, outputs: int) -> Path:
    from iotsim.firmware.routine import export

    return export(directory, SOURCE, *_sizes(batch, inputs, outputs),
                  defines={"DSGD_BATCH": batch, "DSGD_IN": inputs, "DSGD_OUT": outputs})


# ---- measuring -------------------------------------------------------------------------------------
def step_counts(sizes, board: str = BOARD, vectors: int = VECTORS, work_dir: Path | None = None) -> dict:
    """{(BATCH, IN, OUT): instruction-class counts of one step} on the emulated board, the median of
    `vectors` random inputs (seeded by the size); every output checked against reference_step."""
    from iotsim.firmware.build import build_elf
    from iotsim.firmware.cycles import DEFAULT_CACHES
    from iotsim.firmware.qemu import run_qemu

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(work_dir or tmp)
        for size in sizes:
            size = tuple(int(s) for s in size)
            tag = "x".join(map(str, size))
            rng = np.random.default_rng(list(size))
            steps = [random_step(rng, *size) for _ in range(vectors)]
            n_in, n_out = _sizes(*size)
            elf = build_elf(_export(root / f"dense_sgd_{tag}", *size), board, root / f"build_{tag}").elf
            run = run_qemu(elf, board, b"".join(_pack(*s) for s in steps), n_in, n_out, count=True,
                           caches=DEFAULT_CACHES)
            for i, s in enumerate(steps):
                check_outputs(run.outputs[n_out * i: n_out * (i + 1)], reference_step(*s), size)
            median = sorted(range(vectors), key=lambda i: run.instructions[i])[(vectors - 1) // 2]
            out[size] = dict(run.classes[median])
    return out


def measure(board: str = BOARD, vectors: int = VECTORS, work_dir: Path | None = None) -> DenseSgdCounts:
    """Build, run and count the SGD step on the emulated board for FIT_SIZES; per-MAC and fixed counts
    from the two (every output checked against numpy)."""
    from iotsim.firmware.build import get_board
    from iotsim.firmware.cost import emulated_core
    from iotsim.firmware.cycles import DEFAULT_CACHES

    per_size = step_counts(FIT_SIZES, board, vectors, work_dir)
    (sa, a), (sb, b) = per_size.items()
    ma, mb = step_macs(*sa), step_macs(*sb)
    per_mac = {k: (b[k] - a[k]) / (mb - ma) for k in a}
    fixed = {k: a[k] - ma * per_mac[k] for k in a}
    core = get_board(board).core
    return DenseSgdCounts(emulated_core(core) or core, DEFAULT_CACHES, per_mac, fixed)


RECORDED: dict[str, DenseSgdCounts] = {
    # measured 2026-12-04 on mps2-an386 (QEMU 7.2, arm-none-eabi-gcc 12.2, -O2, newlib's libm) for FIT_SIZES by
    # `python -m iotsim.tinyml.ondevice`; tests/test_ondevice_training.py re-measures and compares. Some fixed
    # counts are negative: gcc loads with VLDM and VLDR in different proportions at the two sizes, so only
    # their sum priced by the cycle model means something (positive: 1925 cycles on the nRF52840's model)
    "cortex-m4": DenseSgdCounts("cortex-m4", "icache=32:32,dcache=8:32", per_mac={
        "instructions": 8.220645161290323, "alu": 2.9242943548387097, "mul": 0.0, "mul_long": 0.0, "div": 0.0,
        "load": 0.015463709677419354, "store": 0.0, "ldst_pipelined": 0.00020161290322580645,
        "ldst_double": 0.0003225806451612903, "ldst_multiple": 1.0935483870967742, "table_branch": 0.0,
        "branch_only": 1.070866935483871, "fp": 2.0665524193548386, "fp_mac": 0.01532258064516129,
        "fp_div": 0.0022580645161290325, "fp_ldst": 1.0318145161290322, "ldst_multiple_regs": 1.1025,
        "branch": 1.073125, "branch_taken": 0.9939112903225806, "flash_loads": 0.0941733870967742,
        "dcache_misses": 0.0, "icache_misses": -0.00018145161290322582,
    }, fixed={
        "instructions": 1505.967741935483, "alu": 845.1290322580644, "mul": 0.0, "mul_long": 0.0, "div": 0.0,
        "load": 96.25806451612902, "store": 2.0, "ldst_pipelined": 1.6774193548387097,
        "ldst_double": 0.4838709677419355, "ldst_multiple": -785.6774193548385, "table_branch": 0.0,
        "branch_only": -60.387096774193424, "fp": 264.5161290322585, "fp_mac": 23.483870967741936,
        "fp_div": 12.387096774193548, "fp_ldst": 1106.0967741935485, "ldst_multiple_regs": -710.0,
        "branch": -47.00000000000023, "branch_taken": -142.25806451612902, "flash_loads": 57.32258064516128,
        "dcache_misses": 0.0, "icache_misses": 29.29032258064516,
    }),
}


def main() -> int:
    c = measure()
    print(json.dumps({"core": c.core, "caches": c.caches, "per_mac": c.per_mac, "fixed": c.fixed}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
