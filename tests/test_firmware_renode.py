"""Renode support (iotsim.firmware.renode): the RAM-I/O firmware build, the generated platform
(.repl), run script (.resc) and Robot test, and - where Renode is installed - running them.

Renode is not installable here, so generation is checked for form and content, and the RAM-I/O
firmware itself is checked on QEMU (inputs placed in RAM, outputs read back through the monitor).
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

import pytest

from iotsim.firmware.build import BOARDS, build_elf, build_host, read_elf
from iotsim.firmware.qemu import EmulatorError, run_host, run_qemu
from iotsim.firmware.renode import (
    STATUS_DONE,
    RamIoLayout,
    parse_counts,
    parse_result,
    render_repl,
    renode_executable,
    renode_test_executable,
    run_ram_io_qemu,
    run_renode,
    write_renode_files,
)

HAVE_ARM = shutil.which("arm-none-eabi-gcc") is not None and shutil.which("gcc") is not None
HAVE_QEMU = shutil.which("qemu-system-arm") is not None
needs_arm = pytest.mark.skipif(not HAVE_ARM, reason="arm-none-eabi-gcc (and host gcc) not installed")
needs_qemu = pytest.mark.skipif(not HAVE_QEMU, reason="qemu-system-arm is not installed")
needs_renode = pytest.mark.skipif(
    renode_executable() is None, reason="Renode is not installed: set RENODE or put `renode` on PATH"
)

IN_BYTES, OUT_BYTES = 64, 8


def write_export(d: Path) -> Path:
    """A small 64 -> 8 int8 'model' (dot products with fixed weights)."""
    d.mkdir(parents=True, exist_ok=True)
    rng = random.Random(3)
    w = ",".join(str(rng.randint(-128, 127)) for _ in range(IN_BYTES * OUT_BYTES))
    (d / "model.h").write_text(
        f"#define IOTSIM_INPUT_BYTES {IN_BYTES}\n#define IOTSIM_OUTPUT_BYTES {OUT_BYTES}\n"
        "int iotsim_model_invoke(const void *input, void *output);\n"
    )
    (d / "model.c").write_text(f"""#include <stdint.h>
#include "model.h"
static const int8_t w[{IN_BYTES * OUT_BYTES}] = {{{w}}};
int iotsim_model_invoke(const void *input, void *output) {{
    const int8_t *x = (const int8_t *)input;
    int8_t *y = (int8_t *)output;
    for (int k = 0; k < {OUT_BYTES}; ++k) {{
        int32_t a = 0;
        for (int i = 0; i < {IN_BYTES}; ++i) a += (int32_t)x[i] * w[k * {IN_BYTES} + i];
        a >>= 9;
        y[k] = (int8_t)(a < -128 ? -128 : a > 127 ? 127 : a);
    }}
    return 0;
}}
""")
    (d / "manifest.json").write_text(json.dumps({"sources": [], "input_bytes": IN_BYTES, "output_bytes": OUT_BYTES}))
    return d


def inputs(n: int) -> bytes:
    rng = random.Random(11)
    return bytes(rng.randrange(256) for _ in range(n * IN_BYTES))


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("renode")


@pytest.fixture(scope="module")
def export(work) -> Path:
    return write_export(work / "model")


@pytest.fixture(scope="module")
def reference(export, work) -> bytes:
    if not HAVE_ARM:
        pytest.skip("arm-none-eabi-gcc (and host gcc) not installed")
    return run_host(build_host(export, work / "build"), inputs(5), IN_BYTES, OUT_BYTES)


def check_repl(text: str) -> list[tuple[str, str, int | None]]:
    """Well-formedness of a Renode platform description as we write it; returns the entries."""
    entries, current = [], None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("//"):
            continue
        if not line.startswith(" "):
            m = re.fullmatch(r"(\w+): ([\w.]+) @ sysbus(?: (0x[0-9a-fA-F]+))?", line)
            assert m, f"bad entry line: {line!r}"
            current = m.group(1)
            entries.append((m.group(1), m.group(2), int(m.group(3), 16) if m.group(3) else None))
        else:
            assert current, f"property before any entry: {line!r}"
            assert re.fullmatch(r"    (\w+: (\"[\w-]+\"|0x[0-9a-fA-F]+|\d+|\w+)|IRQ -> \w+@\d+)", line), line
    return entries


def check_robot(text: str) -> dict[str, list[str]]:
    """Sections, separators and FOR/END balance of the generated Robot Framework file."""
    sections: dict[str, list[str]] = {}
    current = None
    depth = 0
    for line in text.splitlines():
        m = re.fullmatch(r"\*\*\* (Comments|Settings|Variables|Keywords|Test Cases) \*\*\*", line)
        if m:
            current = m.group(1)
            sections[current] = []
            continue
        assert current, f"text before the first section: {line!r}"
        sections[current].append(line)
        if current in ("Keywords", "Test Cases") and line.strip():
            cells = re.split(r"\s{2,}", line.strip())
            if cells[0] == "FOR":
                depth += 1
                assert cells[2] == "IN RANGE", line
            elif cells[0] == "END":
                depth -= 1
            if line.startswith(" "):
                assert line.startswith("    "), f"test steps are indented by 4 spaces: {line!r}"
    assert depth == 0, "FOR without END"
    return sections


def test_repl_for_every_board():
    for name, board in BOARDS.items():
        entries = check_repl(render_repl(name))
        types = {e[0]: (e[1], e[2]) for e in entries}
        assert types["flash"] == ("Memory.MappedMemory", board.flash_origin)
        assert types["sram"] == ("Memory.MappedMemory", board.ram_origin)
        assert types["nvic"] == ("IRQControllers.NVIC", 0xE000E000)
        assert types["cpu"][0] == "CPU.CortexM"
        assert f'cpuType: "{board.renode_cpu_type}"' in render_repl(name)
        assert f"size: {board.ram_size:#x}" in render_repl(name)


@needs_arm
@pytest.mark.parametrize("board", ["mps2-an386", "mps2-an505"])
def test_generated_files(board, export, work, reference):
    res = build_elf(export, board, work / "build", variant="ram", max_vectors=8)
    assert res.variant == "ram"
    syms = read_elf(res.elf).symbols
    assert "initialise_monitor_handles" not in syms  # no semihosting in the Renode build
    layout = RamIoLayout.from_elf(res.elf, IN_BYTES)
    assert layout.capacity == 8 and layout.marker_insns == 1
    b = BOARDS[board]
    for addr in (layout.inputs, layout.outputs, layout.count, layout.status):
        assert b.ram_origin <= addr < b.ram_origin + b.ram_size
    files = write_renode_files(res, board, inputs(5), IN_BYTES, OUT_BYTES, work / f"gen-{board}", expected=reference)
    assert files.inputs.read_bytes() == inputs(5)
    check_repl(files.repl.read_text())

    resc = files.resc.read_text()
    assert f"$elf?=@{res.elf.resolve()}" in resc
    assert f"$repl?=@{files.repl}" in resc
    assert f"cpu VectorTableOffset {b.flash_origin:#x}" in resc
    assert f"sysbus LoadBinary $inputs {layout.inputs:#x}" in resc
    assert f"sysbus WriteDoubleWord {layout.count:#x} 5" in resc
    assert f"cpu AddHook {layout.mark_begin:#x} " in resc and f"cpu AddHook {layout.mark_end:#x} " in resc
    assert re.search(r'^emulation RunFor "\d+"$', resc, re.MULTILINE)
    assert resc.count('"""') == 2 and resc.rstrip().endswith("quit")
    # the Python the .resc hands to Renode compiles (it is Python 2 there, kept 2/3-neutral)
    script = resc.split('"""')[1]
    compile(script, "iotsim_dump", "exec")
    for line in resc.splitlines():
        if line.startswith("cpu AddHook"):
            hook = re.fullmatch(r'cpu AddHook 0x[0-9a-f]+ "(.*)"', line).group(1)
            compile(hook, "hook", "exec")

    sections = check_robot(files.robot.read_text())
    assert set(sections) == {"Comments", "Settings", "Variables", "Keywords", "Test Cases"}
    variables = "\n".join(sections["Variables"])
    assert f"${{OUTPUTS_ADDR}}     {layout.outputs:#x}" in variables
    assert f"${{ELF}}              @{res.elf.resolve()}" in variables
    expected_cells = [int(v) for ln in sections["Variables"] if ln.startswith("...") for v in ln.split()[1:]]
    assert bytes(expected_cells) == reference
    assert any("Resource            ${RENODEKEYWORDS}" in ln for ln in sections["Settings"])


@needs_arm
def test_generation_errors(export, work):
    sh = build_elf(export, "mps2-an386", work / "build")  # the semihosting build lacks the RAM buffers
    with pytest.raises(EmulatorError, match="not a RAM-I/O firmware build"):
        write_renode_files(sh, "mps2-an386", inputs(1), IN_BYTES, OUT_BYTES, work / "bad")
    ram = build_elf(export, "mps2-an386", work / "build", variant="ram", max_vectors=2)
    with pytest.raises(EmulatorError, match="do not fit the firmware's buffers"):
        write_renode_files(ram, "mps2-an386", inputs(3), IN_BYTES, OUT_BYTES, work / "bad")


def test_result_parsing():
    assert parse_counts("B 100\nE 250\nB 300\nE 301\n") == [149, 0]
    res = parse_result(f"status {STATUS_DONE}\ndone_vectors 2\nstack_peak 64\noutputs 00ff7f80\n")
    assert res == {"status": STATUS_DONE, "done_vectors": 2, "stack_peak": 64, "outputs": bytes([0, 255, 127, 128])}


@needs_arm
@needs_qemu
@pytest.mark.parametrize("board", ["mps2-an386", "mps2-an505"])
def test_ram_io_build_runs_on_qemu(board, export, work, reference):
    """The firmware Renode would run, checked on QEMU: same outputs and counts as the
    semihosting build."""
    ram = build_elf(export, board, work / "build", variant="ram", max_vectors=8)
    run = run_ram_io_qemu(ram, board, inputs(5), IN_BYTES, OUT_BYTES)
    assert run.outputs == reference
    sh = run_qemu(build_elf(export, board, work / "build"), board, inputs(5), IN_BYTES, OUT_BYTES)
    assert run.instructions == sh.instructions


@needs_renode
@needs_arm
def test_run_on_renode(export, work, reference):
    ram = build_elf(export, "mps2-an386", work / "build", variant="ram", max_vectors=8)
    run = run_renode(ram, "mps2-an386", inputs(5), IN_BYTES, OUT_BYTES)
    assert run.outputs == reference
    assert len(run.instructions) == 5


@needs_renode
@needs_arm
def test_robot_on_renode(export, work, reference):
    import subprocess

    runner = renode_test_executable()
    if runner is None:
        pytest.skip("renode-test (Renode's Robot runner) not found")
    ram = build_elf(export, "mps2-an386", work / "build", variant="ram", max_vectors=8)
    files = write_renode_files(ram, "mps2-an386", inputs(5), IN_BYTES, OUT_BYTES, work / "robot", expected=reference)
    r = subprocess.run([runner, str(files.robot)], cwd=files.dir, capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
