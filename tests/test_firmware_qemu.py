"""Reference firmware on QEMU (iotsim.firmware.build / qemu): builds for the three mps2 boards,
outputs equal to the host build, exact and deterministic instruction counts, clear errors.

Needs arm-none-eabi-gcc + newlib, qemu-system-arm and a host gcc; skipped when they are missing.
The models here are small stand-ins written by the tests (the exporter's output has the same
contract: model.h, model.c, manifest.json).
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from iotsim.errors import InputError
from iotsim.firmware.build import (
    BOARDS,
    FirmwareBuildError,
    build_elf,
    build_host,
    get_board,
    map_object_sizes,
    marker_addresses,
    read_elf,
)
from iotsim.firmware.qemu import (
    EmulatorError,
    plugin_path,
    qemu_executable,
    run_host,
    run_qemu,
)

pytestmark = [
    pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                       reason="arm-none-eabi-gcc is not installed (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)"),
    pytest.mark.skipif(shutil.which("qemu-system-arm") is None,
                       reason="qemu-system-arm is not installed (apt-get install qemu-system-arm)"),
    pytest.mark.skipif(shutil.which("gcc") is None, reason="host gcc is not installed"),
]

IN_BYTES, OUT_BYTES = 490, 12
INVOKE_FAIL_MAGIC = bytes([127, 128, 127, 128])  # the dense dummy returns 7 on this input prefix


def write_dense_export(d: Path, seed: int = 1) -> Path:
    """A 490 -> 12 int8 'model': dot products, data-dependent extra rounds, a float rescale."""
    d.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    rows = ",\n".join(
        "{" + ",".join(str(rng.randint(-128, 127)) for _ in range(IN_BYTES)) + "}" for _ in range(OUT_BYTES)
    )
    (d / "model.h").write_text(
        f"#ifndef MODEL_H\n#define MODEL_H\n#define IOTSIM_INPUT_BYTES {IN_BYTES}\n"
        f"#define IOTSIM_OUTPUT_BYTES {OUT_BYTES}\n"
        "int iotsim_model_invoke(const void *input, void *output);\n#endif\n"
    )
    (d / "model.c").write_text(f"""#include <stdint.h>
#include "model.h"
static const int8_t w[{OUT_BYTES}][{IN_BYTES}] = {{{rows}}};
static int32_t acc[{OUT_BYTES}];
int iotsim_model_invoke(const void *input, void *output) {{
    const int8_t *x = (const int8_t *)input;
    int8_t *y = (int8_t *)output;
    if (x[0] == 127 && x[1] == -128 && x[2] == 127 && x[3] == -128) return 7;
    for (int k = 0; k < {OUT_BYTES}; ++k) {{
        int32_t a = k * 17;
        for (int i = 0; i < {IN_BYTES}; ++i) a += (int32_t)x[i] * w[k][i];
        acc[k] = a;
    }}
    unsigned rounds = (uint8_t)x[0] & 31u;
    for (unsigned r = 0; r < rounds; ++r)
        for (int k = 0; k < {OUT_BYTES}; ++k) acc[k] ^= (acc[(k + 1) % {OUT_BYTES}] >> 3) + (int32_t)r;
    for (int k = 0; k < {OUT_BYTES}; ++k) {{
        float f = (float)acc[k] * 0.000123f;
        int v = (int)(f + (f >= 0.0f ? 0.5f : -0.5f));
        y[k] = (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
    }}
    return 0;
}}
""")
    (d / "manifest.json").write_text(
        json.dumps({"sources": [], "headers": [], "input_bytes": IN_BYTES, "output_bytes": OUT_BYTES})
    )
    return d


# iotsim_model_invoke as a naked Thumb loop: exactly 5 + 3 * (x[0] + 1) instructions
LOOP_C = r"""#include "model.h"
__attribute__((naked)) int iotsim_model_invoke(const void *input, void *output) {
    __asm__ volatile(
        ".syntax unified\n"
        "ldrb r2, [r0]\n"
        "adds r2, r2, #1\n"
        "1: subs r2, r2, #1\n"
        "nop\n"
        "bne 1b\n"
        "strb r2, [r1]\n"
        "movs r0, #0\n"
        "bx lr\n");
}
"""

# faults on request: x[0] == 1 -> undefined instruction, x[0] == 2 -> bus error
FAULT_C = r"""#include "model.h"
int iotsim_model_invoke(const void *input, void *output) {
    (void)output;
    if (((const unsigned char *)input)[0] == 1) __asm__ volatile("udf #7");
    if (((const unsigned char *)input)[0] == 2) return *(volatile int *)0xF0000000u;
    return 0;
}
"""


def write_small_export(d: Path, model_c: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "model.h").write_text(
        "#define IOTSIM_INPUT_BYTES 4\n#define IOTSIM_OUTPUT_BYTES 4\n"
        "int iotsim_model_invoke(const void *input, void *output);\n"
    )
    (d / "model.c").write_text(model_c)
    (d / "manifest.json").write_text(json.dumps({"sources": [], "headers": [], "input_bytes": 4, "output_bytes": 4}))
    return d


def random_inputs(n: int, seed: int = 5) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.randrange(256) for _ in range(n * IN_BYTES))


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("firmware")


@pytest.fixture(scope="module")
def dense(work) -> Path:
    return write_dense_export(work / "dense")


@pytest.fixture(scope="module")
def host_outputs(dense, work) -> bytes:
    exe = build_host(dense, work / "build")
    return run_host(exe, random_inputs(8), IN_BYTES, OUT_BYTES)


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_board_outputs_equal_host_and_counts_repeat(board, dense, work, host_outputs):
    res = build_elf(dense, board, work / "build")
    assert res.elf.is_file() and res.board == board and res.compiler.startswith("arm-none-eabi-gcc")
    # the weights (12 x 490 int8) are in flash and attributed to the model
    assert res.model_flash_bytes >= OUT_BYTES * IN_BYTES
    assert res.flash_bytes > res.model_flash_bytes
    assert res.ram_bytes >= res.model_ram_bytes >= 4 * OUT_BYTES
    assert res.stack_reserve_bytes == 64 * 1024
    # the ELF lives where the board boots from
    b = get_board(board)
    assert read_elf(res.elf).section(".isr_vector").addr == b.flash_origin

    inputs = random_inputs(8)
    first = run_qemu(res, board, inputs, IN_BYTES, OUT_BYTES)
    assert first.outputs == host_outputs
    assert len(first.instructions) == 8 and min(first.instructions) > 5000
    assert len(set(first.instructions)) > 1  # data-dependent work shows
    second = run_qemu(res.elf, board, inputs, IN_BYTES, OUT_BYTES)
    assert second.instructions == first.instructions
    assert first.stack_peak_bytes is not None and 0 < first.stack_peak_bytes < 1024
    plain = run_qemu(res, board, inputs, IN_BYTES, OUT_BYTES, count=False)
    assert plain.outputs == host_outputs and plain.instructions == []
    split = run_qemu(res, board, inputs, IN_BYTES, OUT_BYTES, jobs=3)  # 3 QEMUs, 3+2+3 vectors
    assert split.outputs == host_outputs and split.instructions == first.instructions


def test_build_is_cached_and_rebuilt_on_change(work):
    d = write_dense_export(work / "cache_model", seed=2)
    first = build_elf(d, "mps2-an386", work / "cache_build")
    again = build_elf(d, "mps2-an386", work / "cache_build")
    assert not first.cached and again.cached and again.elf == first.elf
    assert again.flash_bytes == first.flash_bytes
    with open(d / "model.c", "a") as f:  # a used 4-byte table more in .data
        f.write("\nint iotsim_extra_table[1] = {3};\nint *iotsim_extra(void) { return iotsim_extra_table; }\n")
    changed = build_elf(d, "mps2-an386", work / "cache_build", extra_cflags=("-DIOTSIM_UNUSED_FLAG=1",))
    assert not changed.cached
    assert build_elf(d, "mps2-an386", work / "cache_build", extra_cflags=("-DIOTSIM_UNUSED_FLAG=1",)).cached


def _glue_instructions(elf: Path) -> int:
    """Instructions the CPU executes after iotsim_mark_begin returns up to and including the
    `bl iotsim_mark_end`, minus the model's own: straight-line code in main (from objdump)."""
    dump = subprocess.run(["arm-none-eabi-objdump", "-d", str(elf)], capture_output=True, text=True, check=True).stdout
    lines = [ln for ln in dump.splitlines() if re.match(r"^\s+[0-9a-f]+:\s+[0-9a-f]{4}", ln)]
    start = next(i for i, ln in enumerate(lines) if re.search(r"\bbl\s+[0-9a-f]+ <iotsim_mark_begin>", ln))
    end = next(i for i in range(start, len(lines)) if re.search(r"\bbl\s+[0-9a-f]+ <iotsim_mark_end>", lines[i]))
    between = lines[start + 1 : end + 1]
    assert not any(re.search(r"\s(b|beq|bne|cbz|cbnz|b\.n|b\.w)\s", ln) for ln in between), between
    return len(between)


@pytest.mark.parametrize("board", ["mps2-an386", "mps2-an385"])
def test_plugin_counts_known_loop_exactly(board, work):
    d = write_small_export(work / "loop", LOOP_C)
    res = build_elf(d, board, work / "build")
    x0 = [0, 1, 2, 10, 100, 255]
    inputs = b"".join(bytes([v, 0, 0, 0]) for v in x0)
    run = run_qemu(res, board, inputs, 4, 4)
    glue = _glue_instructions(res.elf) if shutil.which("arm-none-eabi-objdump") else run.instructions[0] - 8
    expected = [glue + 5 + 3 * (v + 1) for v in x0]
    assert run.instructions == expected
    # translation-block boundaries must not matter: one instruction per block gives the same
    assert run_qemu(res, board, inputs, 4, 4, singlestep=True).instructions == expected


def test_plugin_agrees_with_qemu_exec_trace(dense, work):
    """Count with QEMU's own log (one line per executed 1-instruction TB, no chaining)."""
    res = build_elf(dense, "mps2-an386", work / "build")
    inputs = random_inputs(2, seed=9)
    log = work / "exec.log"
    run = run_qemu(res, "mps2-an386", inputs, IN_BYTES, OUT_BYTES, singlestep=True,
                   extra_args=("-d", "exec,nochain", "-D", str(log)))
    begin, end = marker_addresses(res.elf)
    counts, current = [], None
    trace = re.compile(r"^Trace \d+: \S+ \[[0-9a-f]+/([0-9a-f]+)/")
    with open(log) as f:
        for line in f:
            m = trace.match(line)
            if not m:
                continue
            pc = int(m.group(1), 16)
            if pc == begin:
                current = 0
            elif pc == end:
                counts.append(current)
                current = None
            elif current is not None:
                current += 1
    assert counts == run.instructions
    assert counts == run_qemu(res, "mps2-an386", inputs, IN_BYTES, OUT_BYTES).instructions


def test_firmware_errors_are_reported(dense, work):
    res = build_elf(dense, "mps2-an386", work / "build")
    # the model fails on one vector: non-zero exit, the firmware's message included
    bad = random_inputs(3)
    bad = bad[:IN_BYTES] + INVOKE_FAIL_MAGIC + bad[IN_BYTES + 4 :]
    with pytest.raises(EmulatorError, match=r"status 4.*\n(.|\n)*iotsim_model_invoke failed with 7 on vector 1"):
        run_qemu(res, "mps2-an386", bad, IN_BYTES, OUT_BYTES)
    # inputs that are not whole vectors are refused before running
    with pytest.raises(EmulatorError, match="not a whole number"):
        run_qemu(res, "mps2-an386", bytes(IN_BYTES + 3), IN_BYTES, OUT_BYTES)
    with pytest.raises(EmulatorError, match="no input vectors"):
        run_qemu(res, "mps2-an386", b"", IN_BYTES, OUT_BYTES)
    # a wrong output size is caught
    with pytest.raises(EmulatorError, match="output size mismatch"):
        run_qemu(res, "mps2-an386", random_inputs(2), IN_BYTES, OUT_BYTES - 2, count=False)
    # an ELF for one board on another
    with pytest.raises(EmulatorError, match="another board"):
        run_qemu(res, "mps2-an505", random_inputs(1), IN_BYTES, OUT_BYTES)
    with pytest.raises(EmulatorError, match="did not finish within"):
        run_qemu(res, "mps2-an386", random_inputs(1), IN_BYTES, OUT_BYTES, timeout_s=0.001)


def test_firmware_file_errors(dense, work, tmp_path):
    """The firmware itself: missing input file and a partial vector, with their exit codes."""
    res = build_elf(dense, "mps2-an386", work / "build")

    def qemu(input_name: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [qemu_executable(), "-M", "mps2-an386", "-display", "none", "-monitor", "none", "-serial", "null",
             "-semihosting-config", f"enable=on,target=native,arg=fw,arg={input_name},arg=out.bin",
             "-kernel", str(res.elf)],
            cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        )

    r = qemu("missing.bin")
    assert r.returncode == 2 and "cannot open input file 'missing.bin'" in r.stderr
    (tmp_path / "short.bin").write_bytes(bytes(IN_BYTES + 10))
    r = qemu("short.bin")
    assert r.returncode == 3 and "short read: vector 1" in r.stderr
    # the host build behaves the same
    exe = build_host(dense, work / "build")
    r = subprocess.run([str(exe), "missing.bin", "out.bin"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert r.returncode == 2 and "cannot open input file" in r.stderr


@pytest.mark.parametrize("board", ["mps2-an386", "mps2-an505"])
def test_cpu_fault_exits_non_zero(board, work):
    res = build_elf(write_small_export(work / "fault", FAULT_C), board, work / "build")
    assert run_qemu(res, board, bytes(8), 4, 4).outputs == bytes(8)
    for first in (1, 2):
        with pytest.raises(EmulatorError, match=r"status 99 \(CPU fault.*\n(.|\n)*HardFault.*pc=0x"):
            run_qemu(res, board, bytes([first, 0, 0, 0]), 4, 4)


def test_build_errors(dense, work, monkeypatch, tmp_path):
    with pytest.raises(FirmwareBuildError, match="unknown board 'mps2-an999'.*mps2-an385, mps2-an386, mps2-an505"):
        build_elf(dense, "mps2-an999", work / "build")
    with pytest.raises(InputError, match="missing model.c"):
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "model.h").write_text("")
        build_elf(tmp_path / "empty", "mps2-an386", work / "build")
    broken = write_dense_export(tmp_path / "broken")
    (broken / "model.c").write_text('#include "model.h"\nint iotsim_model_invoke(const void *i, void *o) { return oops; }\n')
    with pytest.raises(FirmwareBuildError, match=r"compiling model.c failed(.|\n)*'oops' undeclared"):
        build_elf(broken, "mps2-an386", work / "build_broken")
    mismatch = write_dense_export(tmp_path / "mismatch")
    (mismatch / "manifest.json").write_text(json.dumps({"sources": [], "input_bytes": 491, "output_bytes": 12}))
    with pytest.raises(FirmwareBuildError, match="input_bytes=491 but model.h defines IOTSIM_INPUT_BYTES 490"):
        build_elf(mismatch, "mps2-an386", work / "build")
    nokernel = write_dense_export(tmp_path / "nokernel")
    (nokernel / "manifest.json").write_text(json.dumps({"sources": ["no_such_kernel.c"]}))
    with pytest.raises(FirmwareBuildError, match="kernel source 'no_such_kernel.c' not found"):
        build_elf(nokernel, "mps2-an386", work / "build")
    # missing tools name the packages to install
    monkeypatch.setenv("IOTSIM_ARM_GCC", "arm-none-eabi-gcc-not-here")
    with pytest.raises(FirmwareBuildError, match="gcc-arm-none-eabi libnewlib-arm-none-eabi"):
        build_elf(dense, "mps2-an386", work / "build")
    monkeypatch.setenv("IOTSIM_QEMU", "qemu-system-arm-not-here")
    with pytest.raises(EmulatorError, match="apt-get install --no-install-recommends qemu-system-arm"):
        qemu_executable()


def test_map_attribution_and_plugin_cache(dense, work):
    res = build_elf(dense, "mps2-an385", work / "build")
    sizes = map_object_sizes(res.map_file)
    model = next(v for k, v in sizes.items() if k.endswith("model.o"))
    assert model["flash"] == res.model_flash_bytes and model["ram"] == res.model_ram_bytes
    assert plugin_path() == plugin_path() and plugin_path().suffix == ".so"
