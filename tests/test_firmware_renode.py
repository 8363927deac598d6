"""Renode support (iotsim.firmware.renode): the RAM-I/O firmware build, the generated platform
(.repl), run script (.resc) and Robot test, and - where Renode is installed - running them.

Renode is not installable here, so generation is checked for form and content, and the RAM-I/O
firmware itself is checked on QEMU (inputs placed in RAM, outputs read back through the monitor).
The three defects a run on Renode 1.15.3 exposed (issue 12: no `using sysbus`, hooks that never
closed their file, no `SetGlobalAdvanceImmediately`) are checked structurally on the generated
files. The tests that run Renode skip unless `RENODE` (or `renode` on PATH) names one.
"""

from __future__ import annotations

import ast
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
    render_resc,
    render_robot,
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


# --------------------------------------------------------------------------------------------
# Checks of the generated scripts against the three defects a real Renode (1.15.3, issue 12)
# exposed. Each works on the command sequence as Renode would execute it.
# --------------------------------------------------------------------------------------------

# Monitor commands that are not devices: everything else (cpu, sysbus, nvic, ...) names a
# peripheral and needs the machine's bus selected first.
MONITOR_BUILTINS = {"mach", "machine", "emulation", "using", "set", "python", "quit", "include",
                    "i", "start", "s", "pause", "logLevel", "logFile", "macro", "runMacro", "help"}


def resc_commands(text: str) -> list[str]:
    """The monitor commands of a .resc in execution order (comments, blank lines, variable
    assignments and the bodies of triple-quoted multi-line values left out)."""
    cmds, in_block = [], False
    for line in text.splitlines():
        s = line.strip()
        if in_block:
            in_block = s != '"""'
            continue
        if not s or s.startswith("#") or s.startswith("$"):
            continue
        if s.endswith('"""') and s.count('"""') == 1:
            in_block = True
        cmds.append(s)
    return cmds


def robot_commands(text: str) -> list[str]:
    """The `Execute Command` arguments of a generated .robot, in the order its test cases run
    them: calls to the file's own keywords are expanded in place."""
    sections = check_robot(text)

    def blocks(lines: list[str]) -> dict[str, list[list[str]]]:
        out: dict[str, list[list[str]]] = {}
        name = None
        for ln in lines:
            if not ln.strip():
                continue
            if not ln.startswith(" "):
                name = ln.strip()
                out[name] = []
            else:
                assert name, ln
                out[name].append(re.split(r"\s{2,}", ln.strip()))
        return out

    keywords = blocks(sections["Keywords"])

    def expand(steps: list[list[str]]) -> list[str]:
        cmds: list[str] = []
        for cells in steps:
            if cells[0].endswith("="):  # ${x}=    Keyword    args
                cells = cells[1:]
            if cells[0] == "Execute Command":
                cmds.append(cells[1])
            elif cells[0] in keywords:
                cmds += expand(keywords[cells[0]])
        return cmds

    return [c for steps in blocks(sections["Test Cases"]).values() for c in expand(steps)]


def check_bus_selected(cmds: list[str], where: str) -> None:
    """`using sysbus` comes after `mach create` and before the first command that names a
    device (`cpu ...`, `sysbus ...`): without it Renode answers "No such command or device: cpu"."""
    first = lambda pred: next((i for i, c in enumerate(cmds) if pred(c)), None)  # noqa: E731
    create = first(lambda c: c.split()[0] == "mach" and c.split()[1] == "create")
    using = first(lambda c: c.split() == ["using", "sysbus"])
    device = first(lambda c: c.split()[0] not in MONITOR_BUILTINS)
    assert create is not None, f"{where}: no `mach create`"
    assert device is not None, f"{where}: no device command at all"
    assert using is not None, f"{where}: the machine's bus is never selected (`using sysbus`)"
    assert create < using < device, (
        f"{where}: `using sysbus` (command {using}) must follow `mach create` ({create}) and precede "
        f"the first device command ({device}: {cmds[device]!r})"
    )


def check_advance_immediately(cmds: list[str], where: str) -> None:
    """`emulation SetGlobalAdvanceImmediately true` is issued before the emulation first runs."""
    run = next((i for i, c in enumerate(cmds)
                if c.split()[0] in ("start", "s") or c.split()[:2] == ["emulation", "RunFor"]), None)
    adv = next((i for i, c in enumerate(cmds)
                if c.split()[:2] == ["emulation", "SetGlobalAdvanceImmediately"]
                and c.split()[2:] and c.split()[2].lower() == "true"), None)
    assert run is not None, f"{where}: the emulation never runs"
    assert adv is not None and adv < run, (
        f"{where}: `emulation SetGlobalAdvanceImmediately true` must come before {cmds[run]!r}"
    )


def unclosed_opens(source: str) -> list[int]:
    """Lines of `open(...)` calls in Python `source` whose file is not sure to be closed: one is
    closed when it is a `with` item, or when it is bound to a name that is then used as a `with`
    item or has `.close()` called on it. Anything else (`open(...).write(...)`, a handle never
    closed, an open passed along) is reported."""
    tree = ast.parse(source)

    def is_open(node: ast.AST) -> bool:
        return isinstance(node, ast.Call) and (
            (isinstance(node.func, ast.Name) and node.func.id == "open")
            or (isinstance(node.func, ast.Attribute) and node.func.attr == "open")
        )

    closed_names = {
        n.func.value.id for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "close"
        and isinstance(n.func.value, ast.Name)
    }
    with_items = [item.context_expr for n in ast.walk(tree) if isinstance(n, (ast.With, ast.AsyncWith))
                  for item in n.items]
    closed_names |= {e.id for e in with_items if isinstance(e, ast.Name)}
    safe = {id(e) for e in with_items if is_open(e)}
    for n in ast.walk(tree):
        if (isinstance(n, ast.Assign) and is_open(n.value) and len(n.targets) == 1
                and isinstance(n.targets[0], ast.Name) and n.targets[0].id in closed_names):
            safe.add(id(n.value))
    return [n.lineno for n in ast.walk(tree) if is_open(n) and id(n) not in safe]


def resc_python(text: str) -> dict[str, str]:
    """Every piece of Python a .resc hands to Renode: the `cpu AddHook` scripts and the
    triple-quoted values run with `python $name`."""
    out = {}
    for line in text.splitlines():
        if line.startswith("cpu AddHook"):
            m = re.fullmatch(r'cpu AddHook (0x[0-9a-f]+) "(.*)"', line)
            assert m, f"bad hook line: {line!r}"
            out[f"hook at {m.group(1)}"] = m.group(2)
    for m in re.finditer(r'^set (\w+) """\n(.*?)^"""$', text, re.MULTILINE | re.DOTALL):
        out[m.group(1)] = m.group(2)
    return out


def check_resc_python(text: str) -> int:
    """All Python in the .resc compiles and closes every file it opens; returns how many
    pieces were checked."""
    pieces = resc_python(text)
    for name, source in pieces.items():
        compile(source, name, "exec")  # Python 2 inside Renode: kept 2/3-neutral
        assert not unclosed_opens(source), f"{name} opens a file it does not close: {source!r}"
    return len(pieces)


def synthetic_layout() -> RamIoLayout:
    """Buffer addresses shaped like a RAM-I/O build's, for rendering without a toolchain."""
    return RamIoLayout(count=0x20000100, inputs=0x20000200, outputs=0x20001000, status=0x20000104,
                       done_vectors=0x20000108, stack_peak=0x2000010C, done=0x400, mark_begin=0x500,
                       mark_end=0x510, capacity=8, marker_insns=1)


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


def test_open_check_catches_unclosed_files():
    """The structural check behind the hook tests: the hook form that lost lines under
    IronPython is caught, in any spelling; closed forms pass."""
    assert unclosed_opens("open(r'/c.txt', 'a').write('B %d' % 1 + chr(10))") == [1]
    assert unclosed_opens("f = open('/c.txt', 'a')\nf.write('x')") == [1]
    assert unclosed_opens("import io\nio.open('/c.txt', 'a').write(u'x')") == [2]
    assert unclosed_opens("print(open('/c.txt').read())") == [1]
    assert unclosed_opens("g = open('/a', 'a')\nf = open('/b', 'a')\nf.close()") == [1]
    assert unclosed_opens("with open('/c.txt', 'a') as f: f.write('x')") == []
    assert unclosed_opens("with open('/a') as f, open('/b', 'w') as g:\n    g.write(f.read())") == []
    assert unclosed_opens("f = open('/c.txt', 'w')\nf.write('x')\nf.close()") == []
    assert unclosed_opens("f = open('/c.txt', 'w')\nwith f:\n    f.write('x')") == []


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_scripts_select_bus_close_files_and_do_not_idle(board, tmp_path):
    """The three defects Renode 1.15.3 exposed (issue 12), checked on the generated .resc and
    .robot for every board (no toolchain needed: the layout is synthetic)."""
    lay = synthetic_layout()
    d = tmp_path
    resc = render_resc(board, d / "fw.elf", d / "platform.repl", d / "inputs.bin", d / "result.txt",
                       d / "counts.txt", lay, 3, OUT_BYTES, 4.0)
    robot = render_robot(board, d / "fw.elf", d / "platform.repl", d / "inputs.bin", lay, 3, OUT_BYTES,
                         bytes(3 * OUT_BYTES), 4.0)
    resc_cmds, robot_cmds = resc_commands(resc), robot_commands(robot)
    for cmds, where in ((resc_cmds, "run.resc"), (robot_cmds, "test.robot")):
        check_bus_selected(cmds, where)
        check_advance_immediately(cmds, where)
    # both hooks are there, and they and the result dump close what they open
    hooks = [c for c in resc_cmds if c.startswith("cpu AddHook")]
    assert [h.split()[2] for h in hooks] == [f"{lay.mark_begin:#x}", f"{lay.mark_end:#x}"]
    assert check_resc_python(resc) == 3
    # the .robot builds the machine with the same commands as the .resc, in the same order
    setup = resc_cmds[: resc_cmds.index(hooks[0])]
    assert robot_cmds[: len(setup)] == [
        c.replace("$repl", "${REPL}").replace("$elf", "${ELF}").replace("$inputs", "${INPUTS}")
        .replace(f"{lay.inputs:#x}", "${INPUTS_ADDR}").replace(f"{lay.count:#x} 3", "${COUNT_ADDR} ${N_VECTORS}")
        for c in setup
    ]


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
    # the Python the .resc hands to Renode compiles and closes what it opens
    assert check_resc_python(resc) == 3
    check_bus_selected(resc_commands(resc), "run.resc")
    check_advance_immediately(resc_commands(resc), "run.resc")
    robot = files.robot.read_text()
    check_bus_selected(robot_commands(robot), "test.robot")
    check_advance_immediately(robot_commands(robot), "test.robot")

    sections = check_robot(robot)
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
