"""What applying a delta update costs a node's CPU: a detools sequential patch, measured on the emulated MCU.

A node that receives a delta (`iotsim.ota.delta`: a detools sequential patch, heatshrink-compressed by
default) rebuilds the new model from the one it runs: it decompresses the patch stream and, chunk by
chunk, adds diff bytes to the old image's, copies extra bytes, and moves its position in the old image.
The cost is measured, not assumed: `measure()` builds `firmware_ref/delta/detools_apply.c` (written
for iotsim from the patch format; the none and heatshrink decoders in one build, picked by the patch
header) into the reference firmware as if it were a model (input: the old image, then the patch;
output: the new image), runs it on QEMU with the instruction-counting plugin for each (old, new) pair
of PAIRS and each compression of MEASURED, checks every output against the new image and against
detools' own apply_patch, byte for byte, and fits each instruction class by least squares as

    counts = fixed + per_output_byte x new image bytes + per_patch_byte x patch bytes

(exact rational arithmetic, so the fit is reproducible to the last bit). A chunk's output bytes are
either diff bytes (decoded, then added to the old image's: about 13 cycles a byte for the add) or extra
bytes (decoded only), and bsdiff's choice between them is erratic: one model's versions with its last
layer changed come out all diff, the farm model retrained with the reduced recipe (5,226 of 10,672
bytes changed) as 528 diff and 10,144 extra bytes, different models a quarter to two fifths diff. The
fit cannot see that split (nor, for heatshrink, how much of the stream is literals, 9 bits each, and
how much back-references), so:

- heatshrink is fitted on every pair of PAIRS: on the nRF52840's cycle model it predicts their cycles
  within 8.1 %, HELD_OUT's (a model size not fitted) within 1.1 %, and the real 7,803 B delta to the
  farm model retrained by `iotsim models build farm --small` (docs/design.md; not in the zoo, measured
  once on 2026-12-04: 514,704 cycles, 8.04 ms at 64 MHz) 10.5 % high.
- none is fitted on output bytes alone (its patch is its output and a few bytes of sizes per chunk, so
  the two move together) over the patches that are all diff: an upper bound, within 0.06 % for those.
  Patches mostly of extra bytes cost far less (memcpy, ~0.8 cycles a byte): the retrained farm model's
  delta takes 17,432 cycles, 8.6 times below the bound, the ecg model with shuffled weights 12.6 times
  below; the pairs of different models 1.3 to 2.2 times.

FitReport gives the errors of a measurement (worst_fit_error, held_out_error, unfitted_error).

Left out: flash. In the measurement the old image and the patch are read from RAM and the new image
written to RAM; on a node the old image and the received patch sit in flash and the new image is
programmed into the inactive slot. Programming and erasing are priced by `iotsim/ota/apply.py`'s
flash model (flash_write); reads of memory-mapped flash are plain loads here, and the wait states of
an MCU whose flash has them (a flash data-cache miss on every new line of the old image and of the
patch) are not modelled. Only the CPU's work is measured here.

`RECORDED` holds the counts measured for the Cortex-M4 (the command below reproduces them; a test
re-measures and compares); a node's patching time is then cycles (the MCU's cycle model,
`iotsim.firmware.cycles`) / clock:

    python -m iotsim.ota.patch_cost           # prints the counts to record and the fit's errors
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from iotsim.errors import InputError
from iotsim.paths import FIRMWARE_REF_DIR

SOURCE = FIRMWARE_REF_DIR / "delta" / "detools_apply.c"
BOARD = "mps2-an386"  # QEMU's Cortex-M4 board (the firmware's default)
ZOO_DIR = Path(__file__).resolve().parents[1] / "zoo"
MEASURED = ("heatshrink", "none")  # the compressions the firmware applies (detools' lzma and crle: not measured)

# heatshrink's parameters in detools' patches: detools.create_patch(heatshrink_window_sz2=8,
# heatshrink_lookahead_sz2=7) by default (detools 0.53, create.py), which iotsim.ota.delta.create_delta
# keeps; the patch's stream starts with them (compression/heatshrink.py pack_header)
HS_WINDOW_SZ2 = 8
HS_LOOKAHEAD_SZ2 = 7

# The decoder's RAM: the heatshrink window, the last 2^window_sz2 = 256 decompressed bytes
# (detools_apply.c `window`, static, sized for windows up to HS_MAX_WINDOW_SZ2 = 8), and the stack of
# iotsim_model_invoke: its stream state (13 words) and registers, measured by the firmware's stack
# paint (QemuRun.stack_peak_bytes, which overstates by up to 80 B of call glue). Not included: the
# images (in flash on a node) and the buffer the flash driver programs the new image from (apply.py).
WINDOW_BYTES = 1 << HS_WINDOW_SZ2
STACK_BYTES = 212  # the largest QemuRun.stack_peak_bytes of measure()'s runs, 2026-12-04 (RECORDED's conditions)
DECODER_RAM_BYTES = WINDOW_BYTES + STACK_BYTES


@dataclass(frozen=True)
class PatchCounts:
    """Instruction-class counts of applying a detools sequential patch on one core with one compression:
    the fixed part, per byte of the new image and per byte of the patch (fractional: a least-squares fit;
    none's are an upper bound, see the module docstring)."""

    core: str
    caches: str | None  # the flash caches the miss counts were simulated with (plugin arguments)
    compression: str
    fixed: dict
    per_output_byte: dict
    per_patch_byte: dict

    def counts(self, patch_bytes: int, new_bytes: int) -> dict:
        return {k: self.fixed[k] + new_bytes * self.per_output_byte[k] + patch_bytes * self.per_patch_byte[k]
                for k in self.fixed}


def patch_seconds(patch_bytes: int, new_bytes: int, compression: str, mcu) -> float | None:
    """Seconds the MCU's CPU takes to apply a `patch_bytes` detools sequential patch that makes a `new_bytes`
    image (flash programming not included: iotsim.ota.apply; none: an upper bound, see the module docstring).
    None: its core has no recorded counts for this compression (lzma and crle are not measured) or the MCU
    has no cycle model."""
    from iotsim.firmware.routine import fractional_cycles, recorded_params
    from iotsim.ota.delta import COMPRESSIONS

    if compression not in COMPRESSIONS:
        raise InputError(f"unknown delta compression {compression!r}: one of {', '.join(COMPRESSIONS)}",
                         field="updates")
    found = recorded_params(mcu, RECORDED)
    rec = found[0].get(compression) if found else None
    if rec is None:
        return None
    return fractional_cycles(rec.counts(patch_bytes, new_bytes), found[1], rec.caches) / mcu.clock_hz


# ---- the pairs measured ------------------------------------------------------------------------------------
def _zoo(name: str) -> bytes:
    return (ZOO_DIR / f"{name}_int8.tflite").read_bytes()


def _head_changed(name: str, how: str, out_dir: Path) -> bytes:
    """The zoo int8 model `name` with its last layer's weights and biases scaled by 0.8 ("scaled") or its
    two output classes swapped ("swapped"), written with the model's own quantization (write_int8_head)."""
    from iotsim.tinyml.federated import head_from_tflite, write_int8_head

    src = ZOO_DIR / f"{name}_int8.tflite"
    head = head_from_tflite(src)
    if how == "scaled":
        head.weights[-1] = head.weights[-1] * 0.8
        head.biases[-1] = head.biases[-1] * 0.8
    else:
        head.weights[-1] = head.weights[-1][:, ::-1].copy()
        head.biases[-1] = head.biases[-1][::-1].copy()
    out_dir.mkdir(parents=True, exist_ok=True)
    return write_int8_head(src, head, out_dir / f"{name}_{how}.tflite").read_bytes()


def _scattered(data: bytes, places: int, run_bytes: int, seed: int) -> bytes:
    """`data` with `places` runs of `run_bytes` bytes, at random offsets, each byte changed to another value."""
    rng = np.random.default_rng(seed)
    out = np.frombuffer(data, dtype=np.uint8).copy()
    for at in rng.choice(len(data) - run_bytes, size=places, replace=False):
        out[at: at + run_bytes] += rng.integers(1, 256, size=run_bytes, dtype=np.uint8)  # mod 256, never 0
    return out.tobytes()


def _shuffled(data: bytes, seed: int) -> bytes:
    """`data` (an int8 .tflite) with the bytes of each int8 weight tensor permuted at random: a stand-in for a
    retrained model (every weight moves, their distribution stays, the rest of the file does not change)."""
    import tflite

    out = bytearray(data)
    model = tflite.Model.GetRootAsModel(data, 0)
    graph = model.Subgraphs(0)
    rng = np.random.default_rng(seed)
    for i in range(graph.TensorsLength()):
        t = graph.Tensors(i)
        buf = model.Buffers(t.Buffer())
        if t.Type() != 9 or buf.DataLength() == 0:  # INT8 with constant data
            continue
        at, n = buf._tab.Vector(buf._tab.Offset(4)), buf.DataLength()
        out[at: at + n] = rng.permutation(np.frombuffer(data[at: at + n], dtype=np.uint8)).tobytes()
    return bytes(out)


PAIRS = (  # (old -> new) recipes, see pair(): versions of one model (its last layer changed, the update federated
    # learning sends; runs of bytes changed at random; every weight moved, as retraining does), then different
    # models (different sizes)
    "farm->farm", "farm->farm head scaled", "farm->farm head swapped", "farm->farm 4x16 B changed",
    "farm->farm 64x16 B changed", "farm->farm 300x16 B changed", "farm->farm weights shuffled",
    "bearing->bearing head scaled", "ecg->ecg 64x16 B changed", "ecg->ecg weights shuffled",
    "kws->bearing", "bearing->ecg", "ecg->farm", "farm->kws",
)
HELD_OUT = "kws->kws head scaled"  # a model of a size not fitted, its last layer updated: measured, not fitted
_SHORT = {"farm": "farm_soil", "kws": "smart_home_kws", "bearing": "factory_bearing", "ecg": "wearable_ecg"}


def pair(name: str, work_dir: Path) -> tuple[bytes, bytes]:
    """The (old, new) images of a pair of PAIRS or HELD_OUT."""
    old_key, new_spec = name.split("->")
    old = _zoo(_SHORT[old_key])
    key, *change = new_spec.split(" ", 1)
    if not change:
        return old, _zoo(_SHORT[key])
    change = change[0]
    if change.startswith("head "):
        return old, _head_changed(_SHORT[key], change.split()[1], work_dir / "heads")
    if change == "weights shuffled":
        return old, _shuffled(_zoo(_SHORT[key]), seed=0)
    places, run = (int(x) for x in change.split()[0].split("x"))
    return old, _scattered(_zoo(_SHORT[key]), places, run, seed=places)


# ---- running the firmware ----------------------------------------------------------------------------------
def _export(directory: Path, from_bytes: int, patch_bytes: int, to_bytes: int) -> Path:
    from iotsim.firmware.routine import export

    return export(directory, SOURCE, from_bytes + patch_bytes, to_bytes,
                  defines={"FROM_BYTES": from_bytes, "PATCH_BYTES": patch_bytes, "TO_BYTES": to_bytes})


def run_patch(old: bytes, patches: list[bytes], to_bytes: int, board: str, work_dir: Path, tag: str):
    """QemuRun of the firmware applying each of `patches` (all of one length) to `old`: one vector each."""
    from iotsim.firmware.build import build_elf
    from iotsim.firmware.cycles import DEFAULT_CACHES
    from iotsim.firmware.qemu import run_qemu

    n = len(patches[0])
    if any(len(p) != n for p in patches):
        raise InputError("run_patch: the patches of one build must have one length", field="patches")
    elf = build_elf(_export(work_dir / f"patch_{tag}", len(old), n, to_bytes), board, work_dir / f"build_{tag}").elf
    return run_qemu(elf, board, b"".join(old + p for p in patches), len(old) + n, to_bytes, count=True,
                    caches=DEFAULT_CACHES)


@dataclass(frozen=True)
class Point:
    """One measured patch: its pair, compression, sizes, how its output splits, and instruction-class counts."""

    pair: str
    compression: str
    patch_bytes: int
    new_bytes: int
    diff_bytes: int  # output bytes made by adding the patch's to the old image's
    extra_bytes: int  # output bytes copied from the patch
    chunks: int  # (diff, extra, adjustment) triples
    counts: dict
    stack_peak_bytes: int | None


def _read_size(data: bytes, at: int) -> tuple[int, int]:
    """A detools size at `at`, and where the next field starts (the format: detools_apply.c)."""
    b = data[at]
    value, shift, at = b & 0x3F, 6, at + 1
    negative = b & 0x40
    while b & 0x80:
        b = data[at]
        value |= (b & 0x7F) << shift
        shift, at = shift + 7, at + 1
    return (-value if negative else value), at


def chunk_split(patch: bytes) -> tuple[int, int, int]:
    """(diff bytes, extra bytes, chunks) of an uncompressed (compression none) sequential patch without a data
    format; detools makes the same chunks whatever the compression."""
    if patch[0] & 0x7F != 0:
        raise InputError("chunk_split reads sequential patches without compression", field="patch")
    to_size, at = _read_size(patch, 1)
    _, at = _read_size(patch, at)  # the data-format patch's length: 0
    diff = extra = chunks = 0
    while diff + extra < to_size:
        n, at = _read_size(patch, at)
        m, at = _read_size(patch, at + n)
        _, at = _read_size(patch, at + m)
        diff, extra, chunks = diff + n, extra + m, chunks + 1
    return diff, extra, chunks


def measure_points(names, board: str = BOARD, work_dir: Path | None = None) -> list[Point]:
    """Each pair's patch for each compression of MEASURED, applied on the emulated board; every output
    checked against the new image and detools' apply_patch."""
    from iotsim.ota.delta import apply_delta, create_delta

    points = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(work_dir or tmp)
        for i, name in enumerate(names):
            old, new = pair(name, root)
            split = chunk_split(create_delta(old, new, "none"))
            for compression in MEASURED:
                patch = create_delta(old, new, compression)
                if apply_delta(old, patch) != new:
                    raise InputError(f"detools' apply_patch does not rebuild {name!r} ({compression})")
                run = run_patch(old, [patch], len(new), board, root, f"{i}_{compression}")
                if run.outputs != new:
                    bad = next(k for k in range(len(new)) if run.outputs[k] != new[k])
                    raise InputError(f"the firmware's patched image of {name!r} ({compression}) differs from the new "
                                     f"image at byte {bad}", where=str(SOURCE))
                points.append(Point(name, compression, len(patch), len(new), *split, dict(run.classes[0]),
                                    run.stack_peak_bytes))
    return points


def _solve_exact(rows: list[tuple[int, ...]], ys: list[int]) -> list[Fraction]:
    """Least squares x minimising |rows x - ys|, in exact rationals (normal equations, Gauss-Jordan)."""
    k = len(rows[0])
    a = [[Fraction(sum(r[i] * r[j] for r in rows)) for j in range(k)]
         + [Fraction(sum(r[i] * y for r, y in zip(rows, ys)))] for i in range(k)]
    for c in range(k):
        p = next(r for r in range(c, k) if a[r][c] != 0)
        a[c], a[p] = a[p], a[c]
        for r in range(k):
            if r != c and a[r][c] != 0:
                f = a[r][c] / a[c][c]
                a[r] = [x - f * y for x, y in zip(a[r], a[c])]
    return [a[i][k] / a[i][i] for i in range(k)]


def fitted(point: Point) -> bool:
    """Whether a point enters its compression's fit: heatshrink, every pair; none, the patches whose output is
    all diff bytes (see PatchCounts: an upper bound)."""
    return point.compression != "none" or point.extra_bytes == 0


def fit(points: list[Point], core: str, caches: str | None) -> dict[str, PatchCounts]:
    """{compression: PatchCounts} fitted by least squares over the `points` that are `fitted` (of at least 3
    sizes; none's per_patch_byte is 0: its patch bytes are its output bytes and a few per chunk)."""
    out = {}
    for compression in sorted({p.compression for p in points}):
        pts = [p for p in points if p.compression == compression and fitted(p)]
        if compression == "none":
            rows = [(1, p.new_bytes) for p in pts]
        else:
            rows = [(1, p.new_bytes, p.patch_bytes) for p in pts]
        coef = {k: _solve_exact(rows, [p.counts[k] for p in pts]) + [Fraction(0)] for k in pts[0].counts}
        out[compression] = PatchCounts(core, caches, compression,
                                       fixed={k: float(c[0]) for k, c in coef.items()},
                                       per_output_byte={k: float(c[1]) for k, c in coef.items()},
                                       per_patch_byte={k: float(c[2]) for k, c in coef.items()})
    return out


@dataclass(frozen=True)
class FitReport:
    """The fitted counts and how well they predict the measured cycles (priced with the nRF52840's cycle model)."""

    counts: dict  # {compression: PatchCounts}
    worst_fit_error: dict  # {compression: the largest |predicted - measured| / measured cycles over the fitted points}
    held_out_error: dict  # {compression: (predicted - measured) / measured cycles of HELD_OUT}
    unfitted_error: dict  # {compression: (lowest, highest) (predicted - measured) / measured of PAIRS not fitted}
    points: list  # the Points of PAIRS
    held_out: list  # HELD_OUT's Points
    stack_peak_bytes: int  # the largest over all runs


def relative_error(counts: PatchCounts, point: Point, params) -> float:
    """(predicted - measured) / measured cycles of one measured patch."""
    from iotsim.firmware.cycles import cycles
    from iotsim.firmware.routine import fractional_cycles

    measured = cycles(point.counts, params, caches=counts.caches)
    return (fractional_cycles(counts.counts(point.patch_bytes, point.new_bytes), params, counts.caches) - measured) / measured


def measure(board: str = BOARD, work_dir: Path | None = None) -> FitReport:
    """Build, run and count the patcher on the emulated board for PAIRS (fitted) and HELD_OUT (checked), every
    compression of MEASURED; every output checked byte for byte."""
    from iotsim.firmware.build import get_board
    from iotsim.firmware.cost import emulated_core
    from iotsim.firmware.cycles import DEFAULT_CACHES, CycleParams
    from iotsim.hardware.profiles import load_profile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(work_dir or tmp)
        points = measure_points(PAIRS, board, root / "fit")
        held = measure_points([HELD_OUT], board, root / "held_out")
    core = get_board(board).core
    counts = fit(points, emulated_core(core) or core, DEFAULT_CACHES)
    params = CycleParams.from_mapping(counts["none"].core, load_profile("mcu", "nrf52840").cycle_model)
    err = {id(p): relative_error(counts[p.compression], p, params) for p in points + held}
    worst = {c: max(abs(err[id(p)]) for p in points if p.compression == c and fitted(p)) for c in counts}
    held_err = {p.compression: err[id(p)] for p in held}
    unfitted = {}
    for c in counts:
        e = [err[id(p)] for p in points if p.compression == c and not fitted(p)]
        unfitted[c] = (min(e), max(e)) if e else None
    stack = max(p.stack_peak_bytes or 0 for p in points + held)
    return FitReport(counts, worst, held_err, unfitted, points, held, stack)


RECORDED: dict[str, dict[str, PatchCounts]] = {
    # measured 2026-12-04 on mps2-an386 (QEMU 7.2, arm-none-eabi-gcc 12.2, -O2, detools 0.53, numpy's seeded
    # generators for the changed pairs) by `python -m iotsim.ota.patch_cost`; tests/test_ota_patch_cost.py
    # re-measures and compares. On the nRF52840's cycle model: heatshrink 28,930 cycles + 27.13 per output byte
    # + 32.10 per patch byte (the fixed part is the fit's intercept: the decoder's own set-up is ~1,000);
    # none 1,691 + 13.81 per output byte. A few counts are negative or fractional: only their sum priced by
    # the cycle model means something
    "cortex-m4": {
        "heatshrink": PatchCounts("cortex-m4", "icache=32:32,dcache=8:32", "heatshrink", fixed={
            "instructions": 19646.148170758646, "alu": 10977.03257335223, "mul": 0.0, "mul_long": 0.0, "div": 0.0,
            "load": 2158.412791104747, "store": 2169.1380136660996, "ldst_pipelined": 2062.9909188458832,
            "ldst_double": -7.643110989041638, "ldst_multiple": 41.09078839270588, "table_branch": 0.0,
            "branch_only": 2245.126196386022, "fp": 0.0, "fp_mac": 0.0, "fp_div": 0.0, "fp_ldst": 0.0,
            "ldst_multiple_regs": 525.1537677948713, "branch": 2279.770810112061, "branch_taken": 2222.98104014906,
            "flash_loads": 18.792058917613456, "dcache_misses": 1.874415420801482,
            "icache_misses": 45.122276105726705,
        }, per_output_byte={
            "instructions": 18.027938120536344, "alu": 10.023820022968879, "mul": 0.0, "mul_long": 0.0, "div": 0.0,
            "load": 1.9638628297693779, "store": 2.9903586020174266, "ldst_pipelined": 0.9858360454213493,
            "ldst_double": 0.013823079944483325, "ldst_multiple": 0.02738674734024346, "table_branch": 0.0,
            "branch_only": 2.0228507930745865, "fp": 0.0, "fp_mac": 0.0, "fp_div": 0.0, "fp_ldst": 0.0,
            "ldst_multiple_regs": 0.05920554277563812, "branch": 2.020996057433224,
            "branch_taken": 2.0319581536953275, "flash_loads": -0.0012254780770486811,
            "dcache_misses": 4.171854360626157e-06, "icache_misses": -6.826497427210727e-06,
        }, per_patch_byte={
            "instructions": 20.69767800959187, "alu": 5.611577321261338, "mul": 0.0, "mul_long": 0.0, "div": 0.0,
            "load": 5.247352530455696, "store": 2.8122317042741884, "ldst_pipelined": 0.18726622693036693,
            "ldst_double": 0.16668735517853386, "ldst_multiple": 0.19396369510975317, "table_branch": 0.0,
            "branch_only": 6.478599176381993, "fp": 0.0, "fp_mac": 0.0, "fp_div": 0.0, "fp_ldst": 0.0,
            "ldst_multiple_regs": 0.9967513538791734, "branch": 6.513061190733068,
            "branch_taken": 1.0037918263551318, "flash_loads": 0.02212756275433282,
            "dcache_misses": 1.7818009608851422e-05, "icache_misses": 4.652033233569715e-05,
        }),
        "none": PatchCounts("cortex-m4", "icache=32:32,dcache=8:32", "none", fixed={
            "instructions": 920.7539604557288, "alu": 564.4807259413408, "mul": 0.0, "mul_long": 0.0, "div": 0.0,
            "load": 54.04121136572734, "store": 41.09956148514814, "ldst_pipelined": 10.099561485148147,
            "ldst_double": 14.099561485148147, "ldst_multiple": 42.199122970296294, "table_branch": 0.0,
            "branch_only": 194.73421572292, "fp": 0.0, "fp_mac": 0.0, "fp_div": 0.0, "fp_ldst": 0.0,
            "ldst_multiple_regs": 361.9912297029629, "branch": 215.83377720806814, "branch_taken": 142.3359697823274,
            "flash_loads": -0.3570345748652462, "dcache_misses": -0.3570345748652462, "icache_misses": 39.0,
        }, per_output_byte={
            "instructions": 9.531704298475288, "alu": 5.015881308685313, "mul": 0.0, "mul_long": 0.0, "div": 0.0,
            "load": 1.2500676207560009, "store": 1.0000084156698843, "ldst_pipelined": 1.2500084156698843,
            "ldst_double": 8.415669884305971e-06, "ldst_multiple": 1.6831339768611943e-05, "table_branch": 0.0,
            "branch_only": 1.0157132906845536, "fp": 0.0, "fp_mac": 0.0, "fp_div": 0.0, "fp_ldst": 0.0,
            "ldst_multiple_regs": 0.00016831339768611943, "branch": 1.015721706354438,
            "branch_taken": 1.0156796280050164, "flash_loads": 3.395807646370811e-05,
            "dcache_misses": 3.395807646370811e-05, "icache_misses": 0.0,
        }, per_patch_byte={
            "instructions": 0.0, "alu": 0.0, "mul": 0.0, "mul_long": 0.0, "div": 0.0, "load": 0.0, "store": 0.0,
            "ldst_pipelined": 0.0, "ldst_double": 0.0, "ldst_multiple": 0.0, "table_branch": 0.0, "branch_only": 0.0,
            "fp": 0.0, "fp_mac": 0.0, "fp_div": 0.0, "fp_ldst": 0.0, "ldst_multiple_regs": 0.0, "branch": 0.0,
            "branch_taken": 0.0, "flash_loads": 0.0, "dcache_misses": 0.0, "icache_misses": 0.0,
        }),
    },
}


def main() -> int:
    r = measure()

    def row(p: Point, is_fitted: bool) -> dict:
        return {"pair": p.pair, "compression": p.compression, "patch_bytes": p.patch_bytes, "new_bytes": p.new_bytes,
                "diff_bytes": p.diff_bytes, "extra_bytes": p.extra_bytes, "chunks": p.chunks,
                "instructions": p.counts["instructions"], "fitted": is_fitted}

    print(json.dumps({
        "counts": {c: {"core": k.core, "caches": k.caches, "fixed": k.fixed, "per_output_byte": k.per_output_byte,
                       "per_patch_byte": k.per_patch_byte} for c, k in r.counts.items()},
        "worst_fit_error": r.worst_fit_error, "held_out_error": r.held_out_error, "unfitted_error": r.unfitted_error,
        "stack_peak_bytes": r.stack_peak_bytes,
        "points": [row(p, fitted(p)) for p in r.points] + [row(p, False) for p in r.held_out],
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
