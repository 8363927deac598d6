"""Run reference-firmware ELFs on QEMU's mps2 boards; count instructions per inference exactly.

One QEMU process runs all input vectors: the firmware (firmware_ref/main.c, semihosting build)
reads `in.bin` and writes `out.bin` in a private working directory through ARM semihosting,
and the TCG plugin firmware_ref/qemu_plugin/icount.c writes one instruction count per
inference. The plugin is compiled on first use with the host C compiler and cached
(~/.cache/iotsim/qemu_plugin/, or $IOTSIM_CACHE_DIR/qemu_plugin/).

    elf = build_elf(export_dir, "mps2-an386", build_dir)
    run = run_qemu(elf, "mps2-an386", inputs, input_bytes, output_bytes)
    run.outputs        # N * output_bytes
    run.instructions   # N counts: instructions from iotsim_mark_begin's return to iotsim_mark_end
    run.classes        # N dicts: the same instructions by class (iotsim.firmware.cycles.COUNTERS)

`run_host` runs the host build (build_host) on the same inputs for a quick comparison.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from iotsim.errors import InputError
from iotsim.firmware.build import (
    Board,
    compiler_version,
    get_board,
    host_cc,
    marker_addresses,
    read_elf,
)
from iotsim.firmware.cycles import DEFAULT_CACHES
from iotsim.paths import FIRMWARE_REF_DIR, user_cache_dir

QEMU_ENV = "IOTSIM_QEMU"  # override qemu-system-arm (path or name)
PLUGIN_SOURCE = FIRMWARE_REF_DIR / "qemu_plugin" / "icount.c"

EXIT_MEANINGS = {
    1: "QEMU error",
    2: "the firmware could not open its input or output file",
    3: "short read: the input is not a whole number of vectors",
    4: "iotsim_model_invoke returned non-zero",
    5: "the firmware could not write its output file",
    6: "stack overflow: the model needs more stack than the firmware reserves",
    99: "CPU fault (HardFault handler)",
}


class EmulatorError(InputError):
    """The emulator is missing, or the firmware did not run to a good end."""


@dataclass(frozen=True)
class QemuRun:
    outputs: bytes  # n_vectors * output_bytes
    instructions: list[int]  # one count per vector ([] when count=False)
    wall_s: float  # wall time of the QEMU process
    n_vectors: int
    classes: tuple[dict[str, int], ...] = ()  # per vector: instruction-class counts (iotsim.firmware.cycles)
    caches: str | None = None  # flash caches simulated for classes' icache/dcache_misses (plugin arguments)
    stack_peak_bytes: int | None = None  # deepest stack use of iotsim_model_invoke (+<= 80 B)
    heap_peak_bytes: int | None = None  # newlib heap (stdio buffers)
    command: tuple[str, ...] = ()
    stderr: str = ""


def qemu_executable() -> str:
    name = os.environ.get(QEMU_ENV, "qemu-system-arm")
    path = shutil.which(name)
    if path is None:
        raise EmulatorError(
            f"{name} not found: install QEMU's Arm system emulator, e.g. "
            "`apt-get install --no-install-recommends qemu-system-arm` (Debian/Ubuntu), "
            f"or set {QEMU_ENV}"
        )
    return path


def plugin_path() -> Path:
    """The instruction-counting plugin, compiled on first use (cached by source and compiler)."""
    cc = host_cc()
    src = PLUGIN_SOURCE.read_bytes()
    flags = ["-O2", "-std=gnu11", "-shared", "-fPIC", "-fvisibility=hidden", "-Wall"]
    key = hashlib.sha256(src + compiler_version(cc).encode() + " ".join(flags).encode()).hexdigest()[:16]
    out = user_cache_dir() / "qemu_plugin" / f"libicount-{key}.so"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    r = subprocess.run([cc, *flags, str(PLUGIN_SOURCE), "-o", str(tmp)], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise EmulatorError(f"building the QEMU plugin failed:\n{r.stderr.strip()[-3000:]}", where=str(PLUGIN_SOURCE))
    os.replace(tmp, out)  # atomic: concurrent builders end with the same file
    return out


def _opt(value: str) -> str:
    """Escape a value for QEMU's -opt key=value,... syntax (a comma is doubled)."""
    return value.replace(",", ",,")


def _as_bytes(data) -> bytes:
    if hasattr(data, "tobytes"):
        return data.tobytes()
    return bytes(data)


def _check_vectors(inputs: bytes, input_bytes: int) -> int:
    if input_bytes <= 0:
        raise EmulatorError(f"input_bytes must be positive, got {input_bytes}", field="input_bytes")
    if not inputs:
        raise EmulatorError("no input vectors given", field="inputs")
    if len(inputs) % input_bytes:
        raise EmulatorError(
            f"inputs are {len(inputs)} bytes, not a whole number of {input_bytes}-byte vectors", field="inputs"
        )
    return len(inputs) // input_bytes


def _check_elf_board(elf: Path, board: Board) -> None:
    info = read_elf(elf)
    vt = info.section(".isr_vector")
    if vt is None:
        raise EmulatorError("the ELF has no .isr_vector section: not built with firmware_ref", where=str(elf))
    if vt.addr != board.flash_origin:
        raise EmulatorError(
            f"the ELF's vector table is at {vt.addr:#x} but {board.name} boots from {board.flash_origin:#x}: "
            "built for another board?",
            where=str(elf),
        )


_STATS = re.compile(r"iotsim: vectors=(\d+) invoke_stack_peak_bytes=(\d+) heap_peak_bytes=(\d+)")


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def default_jobs(n_vectors: int) -> int:
    """QEMU processes for n vectors: one per core, but at least 16 vectors per process."""
    return max(1, min(os.cpu_count() or 1, n_vectors // 16))


def run_qemu(
    elf: str | os.PathLike,
    board: str | Board,
    inputs: bytes,
    input_bytes: int,
    output_bytes: int,
    *,
    count: bool = True,
    timeout_s: float = 600.0,
    jobs: int | None = 1,
    singlestep: bool = False,
    extra_args: tuple[str, ...] = (),
    workdir: str | os.PathLike | None = None,
    caches: str | None = DEFAULT_CACHES,
) -> QemuRun:
    """Run the semihosting firmware `elf` on `board` over all vectors in `inputs`.

    count: load the icount plugin and return exact per-inference instruction counts.
    jobs: QEMU processes run side by side, each on a contiguous share of the vectors (counts
        do not depend on it); None picks default_jobs(n). Each process costs ~0.1-0.2 s start-up.
    singlestep: one instruction per translation block (slow; for checking the plugin).
    workdir: keep QEMU's files (in.bin, out.bin, counts.txt, classes.txt) there instead of a temp dir.
    caches: the flash caches the plugin simulates ("icache=LINES:BYTES,dcache=LINES:BYTES"; None: none).
    timeout_s: per QEMU process.
    """
    b = get_board(board)
    elf_path = Path(os.fspath(elf)).resolve()
    if not elf_path.is_file():
        raise EmulatorError("ELF file not found", where=str(elf_path))
    data = _as_bytes(inputs)
    n = _check_vectors(data, input_bytes)
    _check_elf_board(elf_path, b)
    qemu_executable()
    k = default_jobs(n) if jobs is None else max(1, min(int(jobs), n))
    if k == 1:
        return _run_qemu_one(elf_path, b, data, n, output_bytes, count, timeout_s, singlestep, extra_args, workdir,
                             caches)
    bounds = [round(i * n / k) for i in range(k + 1)]
    chunks = [data[bounds[i] * input_bytes : bounds[i + 1] * input_bytes] for i in range(k)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=k) as pool:
        futures = [
            pool.submit(
                _run_qemu_one, elf_path, b, chunk, bounds[i + 1] - bounds[i], output_bytes, count, timeout_s,
                singlestep, extra_args, None if workdir is None else Path(workdir) / f"job{i}", caches,
            )
            for i, chunk in enumerate(chunks)
        ]
        runs = [f.result() for f in futures]
    peaks = [r.stack_peak_bytes for r in runs if r.stack_peak_bytes is not None]
    heaps = [r.heap_peak_bytes for r in runs if r.heap_peak_bytes is not None]
    return QemuRun(
        outputs=b"".join(r.outputs for r in runs),
        instructions=[c for r in runs for c in r.instructions],
        wall_s=time.perf_counter() - t0,
        n_vectors=n,
        classes=tuple(c for r in runs for c in r.classes),
        caches=runs[0].caches,
        stack_peak_bytes=max(peaks) if peaks else None,
        heap_peak_bytes=max(heaps) if heaps else None,
        command=runs[0].command,
        stderr="".join(r.stderr for r in runs),
    )


def _run_qemu_one(
    elf_path: Path,
    b: Board,
    data: bytes,
    n: int,
    output_bytes: int,
    count: bool,
    timeout_s: float,
    singlestep: bool,
    extra_args: tuple[str, ...],
    workdir: str | os.PathLike | None,
    caches: str | None = None,
) -> QemuRun:
    qemu = qemu_executable()

    with tempfile.TemporaryDirectory(prefix="iotsim-qemu-") as tmp:
        wd = Path(workdir) if workdir is not None else Path(tmp)
        wd.mkdir(parents=True, exist_ok=True)
        (wd / "in.bin").write_bytes(data)
        out_file = wd / "out.bin"
        counts_file = wd / "counts.txt"
        classes_file = wd / "classes.txt"
        for f in (out_file, counts_file, classes_file):
            f.unlink(missing_ok=True)
        cmd = [
            qemu,
            "-M", b.qemu_machine,
            "-display", "none",
            "-monitor", "none",
            "-serial", "null",
            "-nodefaults",
            "-semihosting-config", "enable=on,target=native,arg=iotsim,arg=in.bin,arg=out.bin",
            "-kernel", str(elf_path),
        ]
        if singlestep:
            cmd.append("-singlestep")
        if count:
            begin, end = marker_addresses(elf_path)
            flash = f"{b.flash_origin:#x}:{b.flash_origin + b.flash_size:#x}"
            cmd += ["-plugin", f"{_opt(str(plugin_path()))},begin={begin:#x},end={end:#x},out={_opt(str(counts_file))},"
                    f"classes={_opt(str(classes_file))},flash={flash}" + (f",{caches}" if caches else "")]
        cmd += list(extra_args)
        t0 = time.perf_counter()
        try:
            r = subprocess.run(cmd, cwd=wd, capture_output=True, text=True, errors="replace", timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as e:
            raise EmulatorError(
                f"QEMU ({b.name}) did not finish within {timeout_s:g} s on {n} vectors; "
                "raise timeout_s for big models, or the firmware hangs",
                where=str(elf_path),
            ) from e
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            meaning = EXIT_MEANINGS.get(r.returncode, "")
            msg = f"QEMU ({b.name}) exited with status {r.returncode}" + (f" ({meaning})" if meaning else "")
            detail = _tail(r.stderr + ("\n" + r.stdout if r.stdout.strip() else ""))
            raise EmulatorError(msg + (f":\n{detail}" if detail else ""), where=str(elf_path))
        if not out_file.is_file():
            raise EmulatorError("the firmware wrote no output file", where=str(elf_path))
        outputs = out_file.read_bytes()
        if len(outputs) != n * output_bytes:
            raise EmulatorError(
                f"output size mismatch: expected {n} x {output_bytes} = {n * output_bytes} bytes, "
                f"got {len(outputs)} (is output_bytes right for this model?)",
                where=str(elf_path),
            )
        instructions: list[int] = []
        classes: list[dict[str, int]] = []
        if count:
            lines = counts_file.read_text().split() if counts_file.is_file() else []
            instructions = [int(x) for x in lines]
            if len(instructions) != n:
                raise EmulatorError(
                    f"instruction counter reported {len(instructions)} inferences for {n} vectors\n{_tail(r.stderr)}",
                    where=str(elf_path),
                )
            classes = _read_classes(classes_file, instructions, elf_path)
        m = _STATS.search(r.stdout)
        if m and int(m.group(1)) != n:
            raise EmulatorError(f"the firmware ran {m.group(1)} vectors of {n}", where=str(elf_path))
        return QemuRun(
            outputs=outputs,
            instructions=instructions,
            wall_s=wall,
            n_vectors=n,
            classes=tuple(classes),
            caches=caches if count else None,
            stack_peak_bytes=int(m.group(2)) if m else None,
            heap_peak_bytes=int(m.group(3)) if m else None,
            command=tuple(cmd),
            stderr=r.stderr,
        )


def _read_classes(path: Path, instructions: list[int], elf_path: Path) -> list[dict[str, int]]:
    """The plugin's per-inference class counts; their classes must add up to its instruction counts."""
    from iotsim.firmware.cycles import INSN_CLASSES

    rows = []
    lines = path.read_text().splitlines() if path.is_file() else []
    for line in lines:
        row = {k: int(v) for k, v in (item.split("=", 1) for item in line.split())}
        rows.append(row)
    if len(rows) != len(instructions):
        raise EmulatorError(f"the plugin wrote {len(rows)} class lines for {len(instructions)} inferences",
                            where=str(elf_path))
    for row, total in zip(rows, instructions):
        if row.get("instructions") != total or sum(row.get(k, 0) for k in INSN_CLASSES) != total:
            raise EmulatorError(f"instruction classes do not add up to the count {total}: {row}", where=str(elf_path))
    return rows


def run_host(
    exe: str | os.PathLike, inputs: bytes, input_bytes: int, output_bytes: int, *, timeout_s: float = 600.0
) -> bytes:
    """Run the host build (build.build_host) over all vectors; returns the outputs."""
    exe_path = Path(os.fspath(exe)).resolve()
    if not exe_path.is_file():
        raise EmulatorError("host executable not found", where=str(exe_path))
    data = _as_bytes(inputs)
    n = _check_vectors(data, input_bytes)
    with tempfile.TemporaryDirectory(prefix="iotsim-host-") as tmp:
        wd = Path(tmp)
        (wd / "in.bin").write_bytes(data)
        try:
            r = subprocess.run(
                [str(exe_path), "in.bin", "out.bin"], cwd=wd, capture_output=True, text=True, errors="replace",
                timeout=timeout_s, check=False,
            )
        except subprocess.TimeoutExpired as e:
            raise EmulatorError(f"host firmware did not finish within {timeout_s:g} s", where=str(exe_path)) from e
        if r.returncode != 0:
            meaning = EXIT_MEANINGS.get(r.returncode, "")
            raise EmulatorError(
                f"host firmware exited with status {r.returncode}" + (f" ({meaning})" if meaning else "")
                + (f":\n{_tail(r.stderr)}" if r.stderr.strip() else ""),
                where=str(exe_path),
            )
        outputs = (wd / "out.bin").read_bytes()
    if len(outputs) != n * output_bytes:
        raise EmulatorError(
            f"output size mismatch: expected {n} x {output_bytes} = {n * output_bytes} bytes, got {len(outputs)}",
            where=str(exe_path),
        )
    return outputs
