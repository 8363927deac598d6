"""The "cmsis-nn" kernel set: Arm's own CMSIS-NN (2020 API), which iotsim does not ship, linked through
firmware_ref/kernels_cmsis as TFLM's cmsis-nn kernels called it, where $IOTSIM_CMSIS_NN names a tree.

Without a tree (as in CI): one clear error naming the variable, a tree without CMSIS-NN refused, the set
refused on cores the published build did not target and on the host. With one (the tests below skip
otherwise): the single-op cases shaped for every SIMD path, the op test models, the zoo and the four
MLPerf Tiny models bit-exact with TFLite Micro in QEMU, Arm's functions really linked, and nothing written
to the cost tables.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from reference_models import mlperf_model
from test_firmware_opt_kernels import MLPERF, OP_MODELS, SIMD_CASES, ZOO, assert_bit_exact, needs_arm, simd_case

from iotsim.firmware import build
from iotsim.firmware.build import FirmwareBuildError, build_elf, build_host, check_kernels, cmsis_nn, get_board
from iotsim.paths import ZOO_DIR

needs_cmsis_nn = pytest.mark.skipif(not os.environ.get(build.CMSIS_NN_ENV),
                                    reason=f"${build.CMSIS_NN_ENV} does not name Arm's CMSIS-NN (not shipped)")


def test_without_a_tree_the_error_names_the_variable(monkeypatch):
    monkeypatch.delenv(build.CMSIS_NN_ENV, raising=False)
    with pytest.raises(FirmwareBuildError, match=f"set {build.CMSIS_NN_ENV} to a CMSIS_5 tree"):
        cmsis_nn()


def test_a_tree_without_cmsis_nn_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(build.CMSIS_NN_ENV, str(tmp_path))
    with pytest.raises(FirmwareBuildError, match="no CMSIS/NN/Include/arm_nnfunctions.h") as e:
        cmsis_nn()
    assert str(tmp_path) in str(e.value)
    (tmp_path / "CMSIS" / "NN" / "Include").mkdir(parents=True)
    (tmp_path / "CMSIS" / "NN" / "Include" / "arm_nnfunctions.h").write_text("/* empty */\n")
    with pytest.raises(FirmwareBuildError, match="no CMSIS-NN sources"):
        cmsis_nn()


def test_a_tree_gives_its_sources_and_include_folders(tmp_path, monkeypatch):
    """A CMSIS_5 layout: the library's sources in the four folders the glue needs, and the include folders
    that exist (NN, DSP, Core, and the root's parent for trees as TFLM's download step left them)."""
    nn = tmp_path / "cmsis" / "CMSIS" / "NN"
    for d in ("Include", "Source/ConvolutionFunctions", "Source/NNSupportFunctions", "Source/PoolingFunctions"):
        (nn / d).mkdir(parents=True)
    (nn / "Include" / "arm_nnfunctions.h").write_text("\n")
    (nn / "Source" / "ConvolutionFunctions" / "arm_convolve_s8.c").write_text("\n")
    (nn / "Source" / "NNSupportFunctions" / "arm_q7_to_q15_with_offset.c").write_text("\n")
    (nn / "Source" / "PoolingFunctions" / "arm_avgpool_s8.c").write_text("\n")  # not a folder the glue needs
    (tmp_path / "cmsis" / "CMSIS" / "DSP" / "Include").mkdir(parents=True)
    monkeypatch.setenv(build.CMSIS_NN_ENV, str(tmp_path / "cmsis"))
    lib = cmsis_nn()
    assert [p.name for p in lib.sources] == ["arm_convolve_s8.c", "arm_q7_to_q15_with_offset.c"]
    assert lib.include_dirs == (nn / "Include", tmp_path / "cmsis" / "CMSIS" / "DSP" / "Include", tmp_path)


def test_the_set_is_for_the_cortex_m4_and_not_for_the_host(tmp_path):
    assert check_kernels("cmsis-nn", get_board("mps2-an386")) == "cmsis-nn"
    for board in ("mps2-an385", "mps2-an505"):
        with pytest.raises(FirmwareBuildError, match="Cortex-M4"):
            check_kernels("cmsis-nn", get_board(board))
    with pytest.raises(FirmwareBuildError, match="not for this machine"):
        build_host(tmp_path, tmp_path / "b", kernels="cmsis-nn")


@needs_arm
def test_the_cli_says_what_is_missing(monkeypatch):
    from typer.testing import CliRunner

    from iotsim.cli import app

    monkeypatch.delenv(build.CMSIS_NN_ENV, raising=False)
    r = CliRunner().invoke(app, ["firmware", "verify", "farm_soil_int8", "-n", "2", "--no-record", "--kernels", "cmsis-nn"])
    assert r.exit_code == 2 and build.CMSIS_NN_ENV in r.output, r.output


def test_validate_says_when_the_variable_names_no_tree(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from iotsim.cli import app
    from iotsim.validation import checks

    if checks.mlperf_unavailable():
        pytest.skip(checks.mlperf_unavailable())
    monkeypatch.setenv(build.CMSIS_NN_ENV, str(tmp_path))
    r = CliRunner().invoke(app, ["validate", "--only", "mlperf"])
    assert r.exit_code == 2 and "arm_nnfunctions.h" in r.output and "bug" not in r.output, r.output


# ------------------------------------------------------------------------------ with Arm's CMSIS-NN
@needs_arm
@needs_cmsis_nn
@pytest.mark.parametrize("name", sorted(SIMD_CASES))
def test_single_op_models_bit_exact(name, tmp_path):
    r = assert_bit_exact(simd_case(name, tmp_path), "cmsis-nn", vectors=8)
    assert r["kernels"] == "cmsis-nn"


@needs_arm
@needs_cmsis_nn
@pytest.mark.parametrize("name", ["mixed_int8", "residual_int8", "float_io_int8"])
def test_op_test_models_bit_exact(name):
    assert_bit_exact(OP_MODELS / f"{name}.tflite", "cmsis-nn", vectors=10)


@needs_arm
@needs_cmsis_nn
@pytest.mark.parametrize("name", ZOO)
def test_zoo_models_bit_exact_on_real_inputs(name, tmp_path, monkeypatch):
    """Bit-exact, and `record` leaves the cost table alone (the simulator prices only the sets iotsim ships)."""
    from iotsim.firmware import cost

    recorded = []
    monkeypatch.setattr(cost, "record", lambda *a, **k: recorded.append(a) or tmp_path / "never")
    r = assert_bit_exact(ZOO_DIR / f"{name}.tflite", "cmsis-nn", vectors=8, inputs="real", seed=1, record=True)
    assert recorded == [] and "cost_table" not in r


@needs_arm
@needs_cmsis_nn
@pytest.mark.parametrize("name", MLPERF)
def test_mlperf_models_bit_exact(name):
    assert_bit_exact(mlperf_model(f"{name}.tflite"), "cmsis-nn", vectors=3, inputs="random", seed=4)


@needs_arm
@needs_cmsis_nn
def test_the_firmware_runs_arms_functions(tmp_path):
    """The ELF holds CMSIS-NN's entry points and its inner kernels, and none of our optimized kernels' code."""
    from iotsim.firmware.export import export_model

    export_model(mlperf_model("pretrainedResnet_quant.tflite"), tmp_path / "export")
    res = build_elf(tmp_path / "export", "mps2-an386", tmp_path / "build", kernels="cmsis-nn")
    assert res.elf.parent.name == "mps2-an386-semihosting-cmsis-nn"
    syms = subprocess.run(["arm-none-eabi-nm", str(res.elf)], capture_output=True, text=True, check=True).stdout
    for fn in ("arm_convolve_wrapper_s8", "arm_convolve_s8", "arm_nn_mat_mult_kernel_s8_s16",
               "arm_q7_to_q15_with_offset", "arm_fully_connected_s8", "arm_elementwise_add_s8"):
        assert f" {fn}\n" in syms, fn
    assert "columns_to_s16" not in syms and "mat_mult_s16" not in syms
