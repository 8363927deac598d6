"""The optimized kernel set (firmware_ref/kernels_opt: CMSIS-NN-style DSP kernels) equals TFLite
Micro bit for bit, and the simulator uses it where the device profile says so (issue 12, item 3).

- Host builds (the DSP instructions as their plain-C equivalents) of every single-op model of
  test_firmware_nn_ops plus cases shaped to reach each SIMD path and its tails (channels and
  depths not multiples of 4, odd channel and pixel counts, padding, strides, dilation, 1x1 and
  1xK convolutions read in place).
- The same shaped cases, the op test models, the zoo and the four MLPerf Tiny models cross-built
  for the Cortex-M4 (real SXTB16/SXTAB16/SMLAD/SMLABB/SMLATT) and run in QEMU.
- The requantization shortcut against TFLite's MultiplyByQuantizedMultiplier, exhaustively on
  ties and on random arguments.
- `--kernels`: CLI option, one clear error for an unknown set and for a core without DSP; cost
  tables per kernel set; the MCU profile's `kernels` field and the engine's lookup.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from reference_models import mlperf_model
from test_firmware_nn_ops import CASES, conv_model, dw_model, fc_model, random_int8, tflm_outputs
from typer.testing import CliRunner

from iotsim.cli import app
from iotsim.firmware import cost
from iotsim.firmware.build import FirmwareBuildError, build_elf, build_host, check_kernels, get_board
from iotsim.paths import FIRMWARE_REF_DIR, REPO_DIR, ZOO_DIR
from iotsim.tinyml.stats import read_model

GCC = shutil.which("gcc")
needs_gcc = pytest.mark.skipif(GCC is None, reason="no host gcc")
needs_arm = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="needs Debian's gcc-arm-none-eabi, libnewlib-arm-none-eabi and qemu-system-arm (.ci/run installs them)",
)
ZOO = sorted(p.stem for p in ZOO_DIR.glob("*_int8.tflite"))
MLPERF = ["kws_ref_model", "vww_96_int8", "pretrainedResnet_quant", "ad01_int8"]
OP_MODELS = REPO_DIR / "tests" / "data" / "firmware_ops"


def _simd_cases() -> dict[str, bytes]:
    """Shapes that reach every path of the optimized kernels (and their remainders)."""
    rng = np.random.default_rng(12)
    return {
        # im2col with padding, k = 3*3*5 = 45 (k % 4 = 1), odd out_c, odd pixel count (5x5)
        "opt_conv_pad_k45_oc7": conv_model(rng, (1, 5, 5, 5), 7, (3, 3), act="RELU"),
        # 1x1 read in place at stride 2, k = 24, odd pixel count (3x3 outputs), per-tensor
        "opt_conv_1x1_s2": conv_model(rng, (1, 6, 6, 24), 9, (1, 1), stride=(2, 2), padding="VALID",
                                      per_channel=False),
        # 1x1 stride 1, many channels, input zero point -128 (offset 128: the int16 extreme)
        "opt_conv_1x1_zp_min": conv_model(rng, (1, 4, 3, 32), 16, (1, 1), in_q=(0.02, -128), out_q=(0.05, 3)),
        # 1xK read in place where inside, im2col at the padded ends; k = 5*6 = 30 (k % 4 = 2)
        "opt_conv_1xk_same": conv_model(rng, (1, 1, 16, 6), 8, (1, 5), stride=(1, 1), act="RELU6"),
        # filter spanning whole rows (KWS-like first layer), VALID
        "opt_conv_full_rows": conv_model(rng, (1, 9, 4, 1), 6, (3, 4), padding="VALID"),
        # dilation through im2col, k = 3*3*4 = 36
        "opt_conv_dil2": conv_model(rng, (1, 9, 9, 4), 6, (3, 3), dil=(2, 2)),
        # depthwise: 4-channel groups + 2 remaining, padding, strides
        "opt_dw_c6_s2": dw_model(rng, (1, 7, 8, 6), 1, (3, 3), stride=(2, 2), act="RELU"),
        "opt_dw_c16_valid_per_tensor": dw_model(rng, (1, 6, 6, 16), 1, (3, 3), padding="VALID",
                                                per_channel=False, in_q=(0.05, -128)),
        "opt_dw_c8_dil2": dw_model(rng, (1, 9, 9, 8), 1, (3, 3), dil=(2, 2)),
        # fully connected: accum % 4 = 3 and odd units; accum a multiple of 4
        "opt_fc_accum39_units7": fc_model(rng, (1, 39), 7, per_channel=True),
        "opt_fc_accum64": fc_model(rng, (1, 64), 12, act="RELU", in_q=(0.05, -128)),
    }


def _host_only_cases() -> dict[str, bytes]:
    """Batches and no bias: verify_model's LiteRT comparison cannot load these, the host test can."""
    rng = np.random.default_rng(13)
    return {
        "opt_dw_c6_s2_batch2": dw_model(rng, (2, 7, 8, 6), 1, (3, 3), stride=(2, 2), act="RELU"),
        "opt_fc_batches2_accum64": fc_model(rng, (2, 64), 12, act="RELU", in_q=(0.05, -128)),
        "opt_conv_full_rows_nobias": conv_model(rng, (1, 9, 4, 1), 6, (3, 4), padding="VALID", bias=False),
    }


SIMD_CASES = _simd_cases()
HOST_CASES = {**CASES, **SIMD_CASES, **_host_only_cases()}


def _host_outputs(content: bytes, x: np.ndarray, work) -> np.ndarray:
    from iotsim.firmware.export import export_model
    from iotsim.firmware.qemu import run_host

    res = export_model(content, work / "export", where="test model")
    exe = build_host(work / "export", work / "build", extra_cflags=("-Werror",), kernels="optimized")
    out = run_host(exe, np.ascontiguousarray(x).tobytes(), res.input_bytes, res.output_bytes)
    return np.frombuffer(out, dtype=np.int8).reshape(len(x), -1)


@needs_gcc
@pytest.mark.parametrize("name", sorted(HOST_CASES))
def test_single_op_models_bit_exact_on_the_host(name, tmp_path):
    content = HOST_CASES[name]
    graph = read_model(content)
    x = random_int8(graph.tensors[graph.inputs[0]].shape, 16, seed=len(name))
    ours, ref = _host_outputs(content, x, tmp_path), tflm_outputs(content, x)
    differ = np.flatnonzero((ours != ref).any(axis=1))
    assert differ.size == 0, f"{name}: {differ.size}/{len(x)} vectors differ"


def assert_bit_exact(model, kernels: str, **kw) -> dict:
    """verify_model with a kernel set (on the Cortex-M4 board and without recording unless told), checked
    bit-exact with TFLite Micro; its report."""
    from iotsim.firmware.verify import verify_model

    kw.setdefault("board", "mps2-an386")
    kw.setdefault("record", False)
    r = verify_model(model, kernels=kernels, **kw)
    assert r["bit_exact"] and r["mismatches"] == 0, r
    return r


def simd_case(name: str, tmp_path) -> Path:
    """A shaped single-op case written to a .tflite file."""
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(SIMD_CASES[name])
    return path


@needs_arm
@pytest.mark.parametrize("name", sorted(SIMD_CASES))
def test_single_op_models_bit_exact_in_qemu(name, tmp_path):
    r = assert_bit_exact(simd_case(name, tmp_path), "optimized", vectors=8)
    assert r["kernels"] == "optimized"


@needs_arm
@pytest.mark.parametrize("name", ["mixed_int8", "residual_int8", "float_io_int8"])
def test_op_test_models_bit_exact_in_qemu(name):
    assert_bit_exact(OP_MODELS / f"{name}.tflite", "optimized", vectors=10)


@needs_arm
@pytest.mark.parametrize("board", ["mps2-an386", "mps2-an505"])
@pytest.mark.parametrize("name", ZOO)
def test_zoo_models_bit_exact_on_real_inputs(name, board):
    assert_bit_exact(ZOO_DIR / f"{name}.tflite", "optimized", board=board, vectors=8, inputs="real", seed=1)


@needs_arm
@pytest.mark.parametrize("name", MLPERF)
def test_mlperf_models_bit_exact_on_cortex_m4(name):
    assert_bit_exact(mlperf_model(f"{name}.tflite"), "optimized", vectors=3, inputs="random", seed=4)


# ------------------------------------------------------------------------------ requantization
_REQUANT_MAIN = r"""
#include <stdio.h>
#include "iotsim_fixedpoint.h"
#include "iotsim_dsp.h"
static unsigned long long s = 88172645463325252ull;
static unsigned rnd(void) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return (unsigned)s; }
int main(void) {
    long bad = 0;
    const int32_t edges[] = {0, 1, -1, INT32_MAX, INT32_MIN, INT32_MIN + 1, 1 << 30, -(1 << 30), 12345, -12345};
    /* exact ties: multipliers that are short binary fractions, all shifts, small accumulators */
    const int32_t mults[] = {1 << 30, (1 << 30) + (1 << 29), (1 << 30) + (1 << 28), 0x7fffffff, 0, 1};
    for (int mi = 0; mi < 6; ++mi)
        for (int sh = -31; sh <= 4; ++sh)
            for (int32_t acc = -3000; acc <= 3000; ++acc)
                bad += iotsim_mbqm(acc, mults[mi], sh) != iotsim_requantize(acc, mults[mi], sh);
    for (long i = 0; i < 3000000; ++i) {
        const unsigned r = rnd();
        const int32_t acc = i % 7 == 0 ? edges[r % 10] : (i % 3 == 0 ? (int32_t)rnd() : (int32_t)(rnd() % 2000001) - 1000000);
        const int32_t mult = (int32_t)((1u << 30) | (rnd() & 0x3fffffffu));
        const int32_t shift = (int32_t)(rnd() % 40) - 31;
        bad += iotsim_mbqm(acc, mult, shift) != iotsim_requantize(acc, mult, shift);
    }
    printf("%ld\n", bad);
    return bad != 0;
}
"""


@needs_gcc
def test_requantization_equals_tflite_multiply_by_quantized_multiplier(tmp_path):
    src = tmp_path / "requant.c"
    src.write_text(_REQUANT_MAIN)
    exe = tmp_path / "requant"
    cc = subprocess.run([GCC, "-O2", "-std=c99", "-Wall", "-Werror", f"-I{FIRMWARE_REF_DIR / 'include'}",
                         f"-I{FIRMWARE_REF_DIR / 'kernels_opt'}", str(src), "-o", str(exe)],
                        capture_output=True, text=True)
    assert cc.returncode == 0, cc.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "0", run.stdout


# ------------------------------------------------------------------------------ selection
def test_unknown_kernel_set_and_core_without_dsp_are_refused():
    with pytest.raises(FirmwareBuildError, match="unknown kernel set 'fast'.*reference, optimized"):
        check_kernels("fast")
    with pytest.raises(FirmwareBuildError, match="mps2-an385 \\(cortex-m3\\) does not have"):
        check_kernels("optimized", get_board("mps2-an385"))
    assert check_kernels("reference", get_board("mps2-an385")) == "reference"
    assert check_kernels("optimized", get_board("mps2-an505")) == "optimized"


@needs_arm
def test_optimized_build_compiles_the_optimized_sources(tmp_path):
    from iotsim.firmware.export import export_model

    export_model(ZOO_DIR / "smart_home_kws_int8.tflite", tmp_path / "export")
    res = build_elf(tmp_path / "export", "mps2-an386", tmp_path / "build", kernels="optimized")
    assert res.elf.parent.name == "mps2-an386-semihosting-optimized"
    objs = {p.name for p in (res.elf.parent / "obj").iterdir()}
    assert "kernels_opt__conv.o" in objs and "kernels__conv.o" not in objs
    # the DSP instructions are really there
    dis = subprocess.run(["arm-none-eabi-objdump", "-d", str(res.elf)], capture_output=True, text=True).stdout
    assert "smlad" in dis and "sxtb16" in dis


@needs_arm
def test_cli_kernels_option():
    runner = CliRunner()
    ok = runner.invoke(app, ["firmware", "verify", "farm_soil_int8", "-n", "4", "--json", "--no-record",
                             "--kernels", "optimized"])
    assert ok.exit_code == 0, ok.output
    r = json.loads(ok.output)
    assert r["kernels"] == "optimized" and r["bit_exact"] is True
    bad = runner.invoke(app, ["firmware", "verify", "farm_soil_int8", "--kernels", "fast"])
    assert bad.exit_code == 2 and "unknown kernel set 'fast'" in bad.output and "optimized" in bad.output
    m3 = runner.invoke(app, ["firmware", "verify", "farm_soil_int8", "--board", "mps2-an385", "--kernels", "optimized"])
    assert m3.exit_code == 2 and "cortex-m3" in m3.output and "DSP" in m3.output


def _classes(instructions):
    """A made-up class mix adding up to `instructions`: a fifth loads, a tenth multiplies, the rest ALU."""
    from iotsim.firmware.cycles import COUNTERS, INSN_CLASSES

    c = dict.fromkeys(COUNTERS, 0)
    c.update(load=instructions // 5, mul=instructions // 10, branch_taken=instructions // 12)
    c["alu"] = instructions - sum(c[k] for k in INSN_CLASSES)
    c["instructions"] = instructions
    return c


def _measured(kernels, instructions):
    from iotsim.firmware.cycles import DEFAULT_CACHES

    return cost.MeasuredCost(core="cortex-m4", board="mps2-an386", instructions_per_inference=instructions,
                             instructions_min=instructions, instructions_max=instructions, vectors=5, bit_exact=True,
                             flash_bytes=1, ram_bytes=1, compiler="test", classes=_classes(instructions),
                             caches=DEFAULT_CACHES, kernels=kernels)


def test_cost_tables_keep_each_kernel_set(tmp_path, monkeypatch):
    monkeypatch.setenv("IOTSIM_CACHE_DIR", str(tmp_path / "cache"))
    model = tmp_path / "m.tflite"
    model.write_bytes(b"not a zoo model")
    sha = cost.file_sha256(model)
    path = cost.record(model, sha, _measured("reference", 3_000))
    assert cost.lookup(model, sha, "cortex-m4", "optimized") is None
    cost.record(model, sha, _measured("optimized", 1_000))
    assert cost.lookup(model, sha, "cortex-m4", "reference").instructions_per_inference == 3_000
    assert cost.lookup(model, sha, "cortex-m4", "optimized").instructions_per_inference == 1_000
    table = json.loads(path.read_text())
    # the reference entries stay under "costs", the optimized ones under "optimized_costs"
    assert table["format"] == cost.TABLE_FORMAT == 2 and table["costs"]["cortex-m4"]["instructions_per_inference"] == 3_000
    assert table["optimized_costs"]["cortex-m4"]["instructions_per_inference"] == 1_000
    with pytest.raises(ValueError, match="unknown kernel set"):
        cost.lookup(model, sha, "cortex-m4", "fast")


def test_entries_without_a_kernel_field_read_as_reference():
    entry = json.loads(cost.sidecar_path(ZOO_DIR / "farm_soil_int8.tflite").read_text())["costs"]["cortex-m4"]
    entry.pop("kernels", None)
    assert cost.MeasuredCost(**entry).kernels == "reference"


@pytest.mark.parametrize("name", ZOO)
def test_zoo_tables_hold_optimized_measurements(name):
    """Recorded by bench/firmware_matrix.py --kernels optimized --record; fewer instructions than reference."""
    table = json.loads(cost.sidecar_path(ZOO_DIR / f"{name}.tflite").read_text())
    assert sorted(table["optimized_costs"]) == ["cortex-m33", "cortex-m4"]
    for core, entry in table["optimized_costs"].items():
        assert entry["kernels"] == "optimized" and entry["bit_exact"]
        assert entry["instructions_per_inference"] < table["costs"][core]["instructions_per_inference"]
        # class counts of the (lower) median vector for the cycle model (format 2)
        assert entry["instructions_min"] <= entry["classes"]["instructions"] <= entry["instructions_per_inference"]
        assert entry["caches"]


@needs_arm
@pytest.mark.parametrize("name", ZOO)
def test_committed_optimized_costs_are_current(name):
    from iotsim.firmware.verify import verify_model

    recorded = json.loads(cost.sidecar_path(ZOO_DIR / f"{name}.tflite").read_text())["optimized_costs"]["cortex-m4"]
    r = verify_model(ZOO_DIR / f"{name}.tflite", board="mps2-an386", vectors=recorded["vectors"], inputs="random",
                     seed=0, kernels="optimized", record=False)
    assert [r["instructions_per_inference"], r["instructions_min"], r["instructions_max"]] == [
        recorded["instructions_per_inference"], recorded["instructions_min"], recorded["instructions_max"]]
    assert r["instruction_classes"] == recorded["classes"] and r["caches"] == recorded["caches"]


@pytest.mark.parametrize("mcu_name", ["stm32l4r5", "nrf52840"])
@pytest.mark.parametrize("name", ZOO)
def test_engine_prices_optimized_zoo_inference_by_cycles(name, mcu_name):
    """Shipped zoo models on the shipped Cortex-M4F profiles (optimized kernels): the engine prices the
    committed class counts with the MCU's cycle model, never the MAC estimate, and the optimized
    kernels take less time than the reference kernels on the same MCU."""
    from dataclasses import replace

    from iotsim.engine.fleet import inference_cost
    from iotsim.firmware.cycles import CycleParams, cycles
    from iotsim.hardware.profiles import load_profile
    from iotsim.tinyml.runtime import TfliteModel

    mcu = load_profile("mcu", mcu_name)
    model = TfliteModel.load(ZOO_DIR / f"{name}.tflite")
    assert mcu.kernels == "optimized"
    seconds, source = inference_cost(model, mcu)
    entry = json.loads(cost.sidecar_path(ZOO_DIR / f"{name}.tflite").read_text())["optimized_costs"]["cortex-m4"]
    params = CycleParams.from_mapping("cortex-m4", mcu.cycle_model)
    assert source.startswith(f"measured: {entry['instructions_per_inference']:,} instructions") and "estimated" not in source
    assert "optimized kernels" in source
    assert seconds == pytest.approx(cycles(entry["classes"], params, caches=entry["caches"]) / mcu.clock_hz)
    # a single-issue core: at least one cycle per instruction
    assert seconds * mcu.clock_hz >= entry["instructions_per_inference"]
    ref_seconds, ref_source = inference_cost(model, replace(mcu, kernels="reference"))
    assert "reference kernels" in ref_source and seconds < ref_seconds


# ------------------------------------------------------------------------------ device profiles
def test_mcu_profiles_choose_the_kernel_set(tmp_path):
    from iotsim.hardware.profiles import DEFAULT_KERNELS, load_profile

    for name in ("stm32l4r5", "nrf52840"):
        mcu = load_profile("mcu", name)
        assert mcu.kernels == "optimized" and "CMSIS-NN" in mcu.sources["kernels"]
    # a profile without the field: the default, with its rationale as the source
    text = (REPO_DIR / "devices" / "mcu" / "stm32l4r5.yaml").read_text()
    (tmp_path / "mcu").mkdir()
    (tmp_path / "mcu" / "plain.yaml").write_text(text.split("\nkernels:")[0].replace("name: stm32l4r5", "name: plain")
                                                 + "\n")
    plain = load_profile("mcu", "plain", tmp_path)
    assert plain.kernels == DEFAULT_KERNELS == "optimized" and "MLPerf Tiny" in plain.sources["kernels"]
    # a reference choice is kept; an unknown one is one clear error naming the field
    (tmp_path / "mcu" / "ref.yaml").write_text(text.replace("name: stm32l4r5", "name: ref").replace(
        "  value: optimized", "  value: reference"))
    assert load_profile("mcu", "ref", tmp_path).kernels == "reference"
    (tmp_path / "mcu" / "bad.yaml").write_text(text.replace("name: stm32l4r5", "name: bad").replace(
        "  value: optimized", "  value: turbo"))
    from iotsim.errors import InputError

    with pytest.raises(InputError, match="kernels"):
        load_profile("mcu", "bad", tmp_path)


def test_engine_uses_the_profiles_kernel_set(tmp_path, monkeypatch):
    from dataclasses import replace

    from iotsim.engine.fleet import inference_cost
    from iotsim.firmware.cycles import DEFAULT_CACHES, CycleParams, cycles
    from iotsim.hardware.profiles import load_profile
    from iotsim.tinyml.runtime import TfliteModel

    monkeypatch.setenv("IOTSIM_CACHE_DIR", str(tmp_path / "cache"))
    shutil.copy(ZOO_DIR / "farm_soil_int8.json", tmp_path / "farm_soil_int8.json")
    path = tmp_path / "farm_soil_int8.tflite"
    path.write_bytes((ZOO_DIR / "farm_soil_int8.tflite").read_bytes() + bytes(16))  # no zoo table matches
    model = TfliteModel.load(path)
    mcu = load_profile("mcu", "stm32l4r5")
    cost.record(path, model.sha256, _measured("reference", 3_000_000))
    seconds, source = inference_cost(model, mcu)  # optimized by default: not measured yet
    assert source.startswith("estimated") and "--kernels optimized" in source
    cost.record(path, model.sha256, _measured("optimized", 1_000_000))
    seconds, source = inference_cost(model, mcu)
    params = CycleParams.from_mapping("cortex-m4", mcu.cycle_model)
    assert "optimized kernels" in source and seconds == pytest.approx(
        cycles(_classes(1_000_000), params, caches=DEFAULT_CACHES) / mcu.clock_hz)
    seconds, source = inference_cost(model, replace(mcu, kernels="reference"))
    assert "reference kernels" in source and seconds == pytest.approx(
        cycles(_classes(3_000_000), params, caches=DEFAULT_CACHES) / mcu.clock_hz)
