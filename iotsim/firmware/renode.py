"""Renode: platform description, run script and Robot test for a reference-firmware ELF.

Renode cannot be installed from the registries this project uses, so this module *generates*
what a Renode user needs, and runs it only where Renode exists (RENODE env var or `renode` on
PATH). The firmware must be the RAM-I/O build (no semihosting, which Renode does not offer for
files):

    build = build_elf(export_dir, "mps2-an386", build_dir, variant="ram", max_vectors=16)
    files = write_renode_files(build, "mps2-an386", inputs, input_bytes, output_bytes, out_dir,
                               expected=reference_outputs)
    # files.repl   Cortex-M platform with the memory map of the QEMU board the ELF was linked for
    # files.resc   loads the ELF, writes the inputs, runs, dumps status/outputs/counts; `quit`s
    # files.robot  Robot Framework test (renode-test): outputs must equal `expected`
    run = run_renode(build, "mps2-an386", inputs, input_bytes, output_bytes)   # needs Renode

How the RAM build talks to the emulator (firmware_ref/main.c, IOTSIM_IO_RAM):
    iotsim_io_count   (u32, .noinit)  number of vectors, written before the CPU starts
    iotsim_io_inputs  (.noinit)       count * input_bytes, written before the CPU starts
    iotsim_io_outputs                 count * output_bytes, read at the end
    iotsim_io_status  (u32)           0x600D when all vectors ran; 0xE000 | exit code on error
    iotsim_done                       the program parks here (WFI loop) when it has finished

`run_ram_io_qemu` runs the same RAM build on QEMU (inputs placed with -device loader, results
read back through the QEMU monitor), which checks the Renode firmware path where Renode is absent.

Three defects found by running these files on Renode 1.15.3 built from source (issue 12; that
report is the evidence, Renode is not installed here) and fixed:
  * the machine's bus was never selected, so `cpu ...` failed with "No such command or device:
    cpu": both files now issue `using sysbus` right after `mach create`, before any `cpu` or
    `sysbus` command;
  * the instruction-count hooks did `open(...).write(...)` without closing the file, and under
    Renode's IronPython most lines were lost (0-4 of 10): each hook now writes inside
    `with open(path, 'a') as f:` (IronPython 2.7 has the with statement);
  * without `emulation SetGlobalAdvanceImmediately true` Renode paces virtual time to the host
    clock and a run idled (18 s instead of under 10 s): both files issue it before
    `emulation RunFor`.
With the three changes the reporter's 9 Renode tests passed and Renode's per-inference
instruction counts equalled QEMU's.

Every command emitted was checked against Renode's documentation or sources (renode-docs,
renode/renode, renode/renode-infrastructure, read through the project's search tool):
  `$name?=@path`, `set name` with a triple-quoted multi-line value, `python $name` (accepts a
      variable holding a string: PythonExecuteCommand), `quit`   renode-docs basic/monitor-syntax.md
  `using sysbus` right after `mach create` monitor-syntax.md (prefix so `cpu` means
      `sysbus.cpu`); Renode's own scripts use it (scripts/single-node/nrf52840.resc, sam4s.resc)
  `mach create "name"`, `machine LoadPlatformDescription @file`   renode-docs basic/machines
  `sysbus LoadBinary <file> <addr>`        FileLoaderExtensions.LoadBinary(path, loadPoint);
      `sysbus LoadELF`, `sysbus WriteDoubleWord/ReadDoubleWord/ReadByte` as in Renode's scripts
      and Robot tests
  `cpu VectorTableOffset`, `cpu ExecutedInstructions`   used the same way in Renode's own Robot
      tests and in published Cortex-M scripts
  `cpu PerformanceInMips 100` (the default)    renode-docs advanced/time_framework.md
  `cpu AddHook <addr> "<python>"`              CpuHooksExtensions.AddHook(cpu, addr, script);
      BlockPythonEngine binds `self` and `cpu` to the CPU, `machine`, and `pc`
  `emulation SetGlobalAdvanceImmediately true` extension method SetGlobalAdvanceImmediately(
      this Emulation, bool) in renode-infrastructure; AdvanceImmediately in time_framework.md
  `emulation RunFor "<seconds>"`               Emulation.RunFor(TimeInterval); refuses to run
      when the emulation is already started, so the files never `start`
  Robot: `Resource ${RENODEKEYWORDS}`, `Suite Setup Setup`, `Suite Teardown Teardown`,
      `Test Teardown Test Teardown`            renode/renode tests/renode-keywords.robot;
      `Execute Command` comes from Renode's Robot remote server
  platform.repl: `Memory.MappedMemory` (size), `IRQControllers.NVIC` (priorityMask,
      systickFrequency, IRQ -> cpu@0), `CPU.CortexM` (cpuType, nvic)   describing_platforms
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from iotsim.firmware.build import Board, get_board, read_elf
from iotsim.firmware.qemu import (
    EmulatorError,
    _as_bytes,
    _check_elf_board,
    _check_vectors,
    _opt,
    plugin_path,
    qemu_executable,
)

RENODE_ENV = "RENODE"
RENODE_MIPS = 100  # Renode's default CPU PerformanceInMips: virtual time per instruction
STATUS_DONE = 0x600D
STATUS_ERROR = 0xE000

RAM_IO_SYMBOLS = (
    "iotsim_io_count",
    "iotsim_io_inputs",
    "iotsim_io_outputs",
    "iotsim_io_status",
    "iotsim_io_done_vectors",
    "iotsim_io_stack_peak",
    "iotsim_done",
    "iotsim_mark_begin",
    "iotsim_mark_end",
)


def renode_executable() -> str | None:
    """Renode's launcher: $RENODE, else `renode` on PATH, else None."""
    env = os.environ.get(RENODE_ENV)
    if env:
        return shutil.which(env) or (env if Path(env).is_file() else None)
    return shutil.which("renode")


def renode_test_executable() -> str | None:
    """renode-test (Robot Framework runner shipped with Renode), next to renode or on PATH."""
    r = renode_executable()
    if r:
        sibling = Path(r).resolve().parent / "renode-test"
        if sibling.is_file():
            return str(sibling)
    return shutil.which("renode-test")


@dataclass(frozen=True)
class RamIoLayout:
    """Addresses of the RAM-I/O build's buffers, from its symbol table."""

    count: int
    inputs: int
    outputs: int
    status: int
    done_vectors: int
    stack_peak: int
    done: int
    mark_begin: int
    mark_end: int
    capacity: int  # vectors the buffers hold
    marker_insns: int  # instructions in the begin marker's body (a `bx lr`: 1)

    @classmethod
    def from_elf(cls, elf: str | os.PathLike, input_bytes: int) -> RamIoLayout:
        info = read_elf(elf)
        missing = [s for s in RAM_IO_SYMBOLS if s not in info.symbols]
        if missing:
            raise EmulatorError(
                f"not a RAM-I/O firmware build (missing {', '.join(missing)}): "
                "build it with build_elf(..., variant='ram')",
                where=os.fspath(elf),
            )
        s = {k: info.symbols[k] for k in RAM_IO_SYMBOLS}
        cap = s["iotsim_io_inputs"].size // input_bytes if input_bytes > 0 else 0
        body = s["iotsim_mark_begin"].size
        return cls(
            count=s["iotsim_io_count"].value,
            inputs=s["iotsim_io_inputs"].value,
            outputs=s["iotsim_io_outputs"].value,
            status=s["iotsim_io_status"].value,
            done_vectors=s["iotsim_io_done_vectors"].value,
            stack_peak=s["iotsim_io_stack_peak"].value,
            done=s["iotsim_done"].value & ~1,
            mark_begin=s["iotsim_mark_begin"].value & ~1,
            mark_end=s["iotsim_mark_end"].value & ~1,
            capacity=cap,
            marker_insns=1 if body in (0, 2) else max(1, body // 2),
        )


@dataclass(frozen=True)
class RenodeFiles:
    dir: Path
    repl: Path
    resc: Path
    robot: Path
    inputs: Path
    result: Path  # written by the .resc: status, vectors done, outputs (hex)
    counts: Path  # written by the .resc hooks: "B <n>" / "E <n>" per marker
    run_for_s: float


@dataclass(frozen=True)
class RenodeRun:
    outputs: bytes
    instructions: list[int]
    wall_s: float
    executed_total: int | None = None


# --------------------------------------------------------------------------------------------
# generation
# --------------------------------------------------------------------------------------------


def render_repl(board: str | Board) -> str:
    """A Renode platform: one Cortex-M core with memory where the ELF for `board` expects it."""
    b = get_board(board)
    return (
        f"// iotsim: Cortex-M platform with the memory map of QEMU's {b.name} ({b.description}).\n"
        f"// Generated by iotsim.firmware.renode; load with: machine LoadPlatformDescription @<this file>\n"
        f"\n"
        f"flash: Memory.MappedMemory @ sysbus {b.flash_origin:#010x}\n"
        f"    size: {b.flash_size:#x}\n"
        f"\n"
        f"sram: Memory.MappedMemory @ sysbus {b.ram_origin:#010x}\n"
        f"    size: {b.ram_size:#x}\n"
        f"\n"
        f"nvic: IRQControllers.NVIC @ sysbus 0xE000E000\n"
        f"    priorityMask: 0xF0\n"
        f"    systickFrequency: 25000000\n"
        f"    IRQ -> cpu@0\n"
        f"\n"
        f"cpu: CPU.CortexM @ sysbus\n"
        f'    cpuType: "{b.renode_cpu_type}"\n'
        f"    nvic: nvic\n"
    )


def _run_for_seconds(n_vectors: int, instructions_per_vector: float) -> float:
    # virtual seconds at RENODE_MIPS, with margin for start-up and the copy loops
    return float(max(1, math.ceil((n_vectors * instructions_per_vector * 1.5 + 5e6) / (RENODE_MIPS * 1e6))))


def _renode_path(p: Path) -> str:
    s = str(p.resolve())
    if any(c in s for c in ' "'):
        raise EmulatorError("Renode script paths must not contain spaces or quotes", where=s)
    return s


def _machine_setup(
    b: Board, repl: str, elf: str, inputs: str, layout: RamIoLayout, n_vectors: int | str,
    *, inputs_addr: str | None = None, count_addr: str | None = None,
) -> list[str]:
    """Monitor commands that build the machine and load firmware and inputs, up to (not
    including) running it; shared by the .resc and the .robot so the two cannot drift apart.
    `repl`, `elf`, `inputs` (and the addresses) are the script's own variable references."""
    return [
        'mach create "iotsim"',
        # the prefix that lets `cpu` name sysbus.cpu; without it Renode 1.15.3 answers
        # "No such command or device: cpu" (issue 12)
        "using sysbus",
        f"machine LoadPlatformDescription {repl}",
        f"sysbus LoadELF {elf}",
        f"cpu VectorTableOffset {b.flash_origin:#x}",
        f"cpu PerformanceInMips {RENODE_MIPS}",
        f"sysbus LoadBinary {inputs} {inputs_addr or f'{layout.inputs:#x}'}",
        f"sysbus WriteDoubleWord {count_addr or f'{layout.count:#x}'} {n_vectors}",
        # run as fast as the host allows instead of pacing virtual time to the wall clock
        # (otherwise a run idles: 18 s instead of under 10 s on Renode 1.15.3, issue 12)
        "emulation SetGlobalAdvanceImmediately true",
    ]


def _count_hook(counts: Path, tag: str) -> str:
    """Python (IronPython 2.7 inside Renode) for a `cpu AddHook`: append "<tag> <executed
    instructions>" to `counts`, closing the file (an unclosed handle loses lines, issue 12)."""
    return (f"with open(r'{_renode_path(counts)}', 'a') as f: "
            f"f.write('{tag} %d' % self.ExecutedInstructions + chr(10))")


def render_resc(
    board: str | Board, elf: Path, repl: Path, inputs: Path, result: Path, counts: Path,
    layout: RamIoLayout, n_vectors: int, output_bytes: int, run_for_s: float,
) -> str:
    b = get_board(board)
    n_out = n_vectors * output_bytes
    setup = "\n".join(_machine_setup(b, "$repl", "$elf", "$inputs", layout, n_vectors))
    return f'''# iotsim: run {elf.name} on a Renode Cortex-M platform shaped like QEMU's {b.name}.
# Generated by iotsim.firmware.renode. Headless: renode --disable-gui --console run.resc
# The firmware is the RAM-I/O build (main.c with IOTSIM_IO_RAM): {n_vectors} input vector(s) are
# loaded into iotsim_io_inputs before the CPU starts; outputs are read from iotsim_io_outputs.

$repl?=@{_renode_path(repl)}
$elf?=@{_renode_path(elf)}
$inputs?=@{_renode_path(inputs)}

{setup}

# Instructions per inference: hooks at the two markers record Renode's executed-instruction count
cpu AddHook {layout.mark_begin:#x} "{_count_hook(counts, "B")}"
cpu AddHook {layout.mark_end:#x} "{_count_hook(counts, "E")}"

emulation RunFor "{run_for_s:g}"

set iotsim_dump """
bus = monitor.Machine.SystemBus
f = open(r'{_renode_path(result)}', 'w')
f.write('status %d\\n' % int(bus.ReadDoubleWord({layout.status:#x})))
f.write('done_vectors %d\\n' % int(bus.ReadDoubleWord({layout.done_vectors:#x})))
f.write('stack_peak %d\\n' % int(bus.ReadDoubleWord({layout.stack_peak:#x})))
f.write('outputs ' + ''.join(['%02x' % int(bus.ReadByte({layout.outputs:#x} + i)) for i in range({n_out})]) + '\\n')
f.close()
"""
python $iotsim_dump
quit
'''


def render_robot(
    board: str | Board, elf: Path, repl: Path, inputs: Path, layout: RamIoLayout,
    n_vectors: int, output_bytes: int, expected: bytes, run_for_s: float,
) -> str:
    b = get_board(board)
    n_out = n_vectors * output_bytes
    if len(expected) != n_out:
        raise EmulatorError(f"expected outputs are {len(expected)} bytes, not {n_vectors} x {output_bytes}")
    exp_cells = []
    per_line = 16
    for i in range(0, n_out, per_line):
        exp_cells.append("...               " + "    ".join(str(v) for v in expected[i : i + per_line]))
    expected_block = "@{EXPECTED}\n" + "\n".join(exp_cells) if exp_cells else "@{EXPECTED}"
    setup = "\n".join(
        "    Execute Command    " + c
        for c in _machine_setup(b, "${REPL}", "${ELF}", "${INPUTS}", layout, "${N_VECTORS}",
                                inputs_addr="${INPUTS_ADDR}", count_addr="${COUNT_ADDR}")
    )
    return f"""*** Comments ***
iotsim: the reference firmware {elf.name} on a Renode platform shaped like QEMU's {b.name}
must produce the expected int8 outputs for {n_vectors} input vector(s).
Generated by iotsim.firmware.renode. Run: renode-test test.robot

*** Settings ***
Suite Setup         Setup
Suite Teardown      Teardown
Test Teardown       Test Teardown
Resource            ${{RENODEKEYWORDS}}

*** Variables ***
${{REPL}}             @{_renode_path(repl)}
${{ELF}}              @{_renode_path(elf)}
${{INPUTS}}           @{_renode_path(inputs)}
${{N_VECTORS}}        {n_vectors}
${{N_OUT}}            {n_out}
${{INPUTS_ADDR}}      {layout.inputs:#x}
${{COUNT_ADDR}}       {layout.count:#x}
${{OUTPUTS_ADDR}}     {layout.outputs:#x}
${{STATUS_ADDR}}      {layout.status:#x}
${{DONE_VECTORS}}     {layout.done_vectors:#x}
${{RUN_FOR}}          {run_for_s:g}
{expected_block}

*** Keywords ***
Load Firmware With Inputs
{setup}

*** Test Cases ***
Firmware Runs All Vectors
    Load Firmware With Inputs
    Execute Command    emulation RunFor "${{RUN_FOR}}"
    ${{status}}=    Execute Command    sysbus ReadDoubleWord ${{STATUS_ADDR}}
    Should Be Equal As Integers    ${{status.strip()}}    {STATUS_DONE:#x}    msg=firmware status is not DONE (0x600D); 0xE00n means exit code n
    ${{done}}=    Execute Command    sysbus ReadDoubleWord ${{DONE_VECTORS}}
    Should Be Equal As Integers    ${{done.strip()}}    ${{N_VECTORS}}
    FOR    ${{i}}    IN RANGE    ${{N_OUT}}
        ${{addr}}=    Evaluate    ${{OUTPUTS_ADDR}} + ${{i}}
        ${{byte}}=    Execute Command    sysbus ReadByte ${{addr}}
        Should Be Equal As Integers    ${{byte.strip()}}    ${{EXPECTED}}[${{i}}]    msg=output byte ${{i}} differs from the reference
    END
    ${{executed}}=    Execute Command    cpu ExecutedInstructions
    Log    executed instructions (whole run): ${{executed.strip()}}
"""


def write_renode_files(
    elf: str | os.PathLike,
    board: str | Board,
    inputs: bytes,
    input_bytes: int,
    output_bytes: int,
    out_dir: str | os.PathLike,
    *,
    expected: bytes | None = None,
    instructions_per_vector: float = 2e8,
) -> RenodeFiles:
    """Write platform.repl, run.resc, test.robot and inputs.bin for the RAM-I/O build `elf`.

    expected: reference outputs for the Robot test (default: all zero, i.e. fill them in).
    instructions_per_vector: a generous bound; sets the virtual time to run (Renode at 100 MIPS).
    """
    b = get_board(board)
    elf_path = Path(os.fspath(elf)).resolve()
    if not elf_path.is_file():
        raise EmulatorError("ELF file not found", where=str(elf_path))
    data = _as_bytes(inputs)
    n = _check_vectors(data, input_bytes)
    _check_elf_board(elf_path, b)
    layout = RamIoLayout.from_elf(elf_path, input_bytes)
    if n > layout.capacity:
        raise EmulatorError(
            f"{n} vectors do not fit the firmware's buffers ({layout.capacity}): "
            "rebuild with build_elf(..., variant='ram', max_vectors=N)",
            where=str(elf_path),
        )
    d = Path(out_dir).resolve()
    d.mkdir(parents=True, exist_ok=True)
    files = RenodeFiles(
        dir=d,
        repl=d / "platform.repl",
        resc=d / "run.resc",
        robot=d / "test.robot",
        inputs=d / "inputs.bin",
        result=d / "result.txt",
        counts=d / "counts.txt",
        run_for_s=_run_for_seconds(n, instructions_per_vector),
    )
    files.inputs.write_bytes(data)
    files.repl.write_text(render_repl(b))
    files.resc.write_text(
        render_resc(b, elf_path, files.repl, files.inputs, files.result, files.counts, layout, n, output_bytes,
                    files.run_for_s)
    )
    exp = _as_bytes(expected) if expected is not None else bytes(n * output_bytes)
    files.robot.write_text(
        render_robot(b, elf_path, files.repl, files.inputs, layout, n, output_bytes, exp, files.run_for_s)
    )
    return files


# --------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------


def parse_counts(text: str, marker_insns: int = 1) -> list[int]:
    """Per-inference counts from the hooks' "B n" / "E n" lines, on QEMU's definition (the begin
    marker's own instructions excluded)."""
    out, begin = [], None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 2 or parts[0] not in ("B", "E"):
            continue
        if parts[0] == "B":
            begin = int(parts[1])
        elif begin is not None:
            out.append(int(parts[1]) - begin - marker_insns)
            begin = None
    return out


def parse_result(text: str) -> dict:
    res: dict = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "outputs":
            res[key] = bytes.fromhex(value.strip())
        elif key:
            res[key] = int(value.strip())
    return res


def _check_status(status: int | None, done: int | None, n: int, where: str) -> None:
    if status != STATUS_DONE:
        code = (status & 0xFF) if status is not None and (status & 0xFF00) == STATUS_ERROR else None
        from iotsim.firmware.qemu import EXIT_MEANINGS

        what = f"exit code {code} ({EXIT_MEANINGS.get(code, '?')})" if code is not None else "did not finish"
        raise EmulatorError(f"firmware status {status!r}: {what}; {done} of {n} vectors ran", where=where)


def run_renode(
    elf: str | os.PathLike,
    board: str | Board,
    inputs: bytes,
    input_bytes: int,
    output_bytes: int,
    *,
    instructions_per_vector: float = 2e8,
    timeout_s: float = 600.0,
    workdir: str | os.PathLike | None = None,
) -> RenodeRun:
    """Run the RAM-I/O build on Renode (which must be installed) and return outputs and counts."""
    renode = renode_executable()
    if renode is None:
        raise EmulatorError(
            "Renode is not installed: get it from https://renode.io (portable Linux package) "
            f"and put `renode` on PATH or set {RENODE_ENV}"
        )
    with tempfile.TemporaryDirectory(prefix="iotsim-renode-") as tmp:
        d = Path(workdir) if workdir is not None else Path(tmp)
        files = write_renode_files(
            elf, board, inputs, input_bytes, output_bytes, d, instructions_per_vector=instructions_per_vector
        )
        for f in (files.result, files.counts):
            f.unlink(missing_ok=True)
        n = len(_as_bytes(inputs)) // input_bytes
        t0 = time.perf_counter()
        cmd = [renode, "--disable-gui", "--console", "--plain", str(files.resc)]
        try:
            r = subprocess.run(cmd, cwd=d, capture_output=True, text=True, errors="replace", timeout=timeout_s, check=False)
            if r.returncode != 0 and "disable-gui" in (r.stderr + r.stdout):  # Renode < 1.15
                cmd[1] = "--disable-xwt"
                r = subprocess.run(cmd, cwd=d, capture_output=True, text=True, errors="replace", timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as e:
            raise EmulatorError(f"Renode did not finish within {timeout_s:g} s", where=str(files.resc)) from e
        wall = time.perf_counter() - t0
        if not files.result.is_file():
            tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-30:])
            raise EmulatorError(f"Renode wrote no result (exit {r.returncode}):\n{tail}", where=str(files.resc))
        res = parse_result(files.result.read_text())
        _check_status(res.get("status"), res.get("done_vectors"), n, str(files.resc))
        layout = RamIoLayout.from_elf(elf, input_bytes)
        counts = parse_counts(files.counts.read_text(), layout.marker_insns) if files.counts.is_file() else []
        outputs = res.get("outputs", b"")
        if len(outputs) != n * output_bytes:
            raise EmulatorError(f"output size mismatch: {len(outputs)} bytes for {n} x {output_bytes}")
        return RenodeRun(outputs=outputs, instructions=counts, wall_s=wall)


def run_ram_io_qemu(
    elf: str | os.PathLike,
    board: str | Board,
    inputs: bytes,
    input_bytes: int,
    output_bytes: int,
    *,
    count: bool = True,
    timeout_s: float = 120.0,
) -> RenodeRun:
    """Run the RAM-I/O (Renode) build on QEMU: inputs placed in RAM with `-device loader`, the
    end detected and the outputs read through QEMU's monitor. Checks that build where Renode
    is not installed."""
    b = get_board(board)
    elf_path = Path(os.fspath(elf)).resolve()
    data = _as_bytes(inputs)
    n = _check_vectors(data, input_bytes)
    _check_elf_board(elf_path, b)
    layout = RamIoLayout.from_elf(elf_path, input_bytes)
    if n > layout.capacity:
        raise EmulatorError(f"{n} vectors do not fit the firmware's buffers ({layout.capacity})", where=str(elf_path))
    qemu = qemu_executable()
    with tempfile.TemporaryDirectory(prefix="iotsim-ramio-") as tmp:
        d = Path(tmp)
        (d / "in.bin").write_bytes(data)
        counts_file = d / "counts.txt"
        cmd = [
            qemu, "-M", b.qemu_machine, "-display", "none", "-serial", "null", "-nodefaults",
            "-monitor", "stdio",
            "-kernel", str(elf_path),
            "-device", f"loader,file={_opt(str(d / 'in.bin'))},addr={layout.inputs:#x},force-raw=on",
            "-device", f"loader,addr={layout.count:#x},data={n},data-len=4",
        ]
        if count:
            plugin = (f"{_opt(str(plugin_path()))},begin={layout.mark_begin:#x},"
                      f"end={layout.mark_end:#x},out={_opt(str(counts_file))}")
            cmd += ["-plugin", plugin]
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, cwd=d, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, errors="replace", bufsize=1)
        word = re.compile(r"^\s*([0-9a-fA-F]+):\s+0x([0-9a-fA-F]+)")

        def xp(addr: int, fmt: str = "1wx", n_values: int = 1) -> list[int]:
            # HMP `xp` reads through the CPU's own (on the an505: Secure) view of memory;
            # `pmemsave` would not (it reads as Non-secure there and gets zeros).
            assert p.stdin and p.stdout
            p.stdin.write(f"xp /{fmt} {addr:#x}\n")
            p.stdin.flush()
            values: list[int] = []
            while len(values) < n_values:
                line = p.stdout.readline()
                if not line:
                    raise EmulatorError(f"QEMU exited early:\n{p.stderr.read() if p.stderr else ''}",
                                        where=str(elf_path))
                m = word.match(line.replace("(qemu)", ""))
                if m and addr <= int(m.group(1), 16) < addr + 4 * n_values:
                    values += [int(v, 16) for v in re.findall(r"0x([0-9a-fA-F]+)", line.split(":", 1)[1])]
            return values[:n_values]

        try:
            status = 0
            while True:
                status = xp(layout.status)[0]
                if status != 0:
                    break
                if time.perf_counter() - t0 > timeout_s:
                    raise EmulatorError(f"RAM-I/O firmware did not finish within {timeout_s:g} s", where=str(elf_path))
                time.sleep(0.02)
            done = xp(layout.done_vectors)[0]
            n_out = n * output_bytes
            outputs = bytes(xp(layout.outputs, f"{n_out}bx", n_out)) if n_out else b""
            assert p.stdin
            p.stdin.write("quit\n")
            p.stdin.flush()
            p.wait(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        wall = time.perf_counter() - t0
        _check_status(status, done, n, str(elf_path))
        counts = [int(x) for x in counts_file.read_text().split()] if count and counts_file.is_file() else []
        if count and len(counts) != n:
            raise EmulatorError(f"instruction counter reported {len(counts)} inferences for {n}", where=str(elf_path))
        return RenodeRun(outputs=outputs, instructions=counts, wall_s=wall)
