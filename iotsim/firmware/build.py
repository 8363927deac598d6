"""Build an exported model with the reference firmware: Cortex-M ELF (arm-none-eabi-gcc) or host exe.

An exported model is a directory with `model.h`, `model.c` and `manifest.json` (see export.py).
The firmware is compiled from

    firmware_ref/main.c  +  firmware_ref/boards/startup.c  +  export_dir/model.c
    +  firmware_ref/kernels/<manifest "sources">

Two kernel sets (`kernels=`): "reference" (firmware_ref/kernels/, TFLite Micro's reference
kernels) and "optimized" (firmware_ref/kernels_opt/: CONV_2D, DEPTHWISE_CONV_2D and
FULLY_CONNECTED written with the Cortex-M DSP instructions the way CMSIS-NN is; every other
op's source still comes from kernels/). Same functions, same results; the optimized set needs
the DSP extension (Cortex-M4, M33) and is refused for the Cortex-M3. A third set, "cmsis-nn",
links Arm's own CMSIS-NN, which iotsim does not ship: firmware_ref/kernels_cmsis/ calls it as
TFLM's cmsis-nn kernels of 2020 did (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, ADD), and the
library's sources come from the tree $IOTSIM_CMSIS_NN names (`cmsis_nn()`); Cortex-M4 only.

with include dirs export_dir and firmware_ref/include, and linked with the board's linker script
(firmware_ref/boards/<board>.ld, which INCLUDEs common.ld).

Two ARM variants:
    "semihosting"  (default) files through ARM semihosting; run by qemu.run_qemu
    "ram"          inputs/outputs in RAM buffers at known symbols; for Renode (renode.py)

Builds are cached: the output directory holds a `build.json` with a hash of every input (sources,
headers, linker scripts, flags, compiler version) and a rebuild happens only when it changes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from iotsim.errors import InputError
from iotsim.paths import FIRMWARE_REF_DIR

MiB = 1024 * 1024

ARM_GCC_ENV = "IOTSIM_ARM_GCC"  # override the cross compiler (path or name)
HOST_CC_ENV = "IOTSIM_HOST_CC"  # override the host compiler (default: gcc)
ARM_PACKAGES = "gcc-arm-none-eabi libnewlib-arm-none-eabi"

COMMON_CFLAGS = ("-O2", "-std=c99", "-ffunction-sections", "-fdata-sections", "-Wall")
HOST_CFLAGS = ("-O2", "-std=c99", "-Wall")
VARIANTS = ("semihosting", "ram")
KERNEL_SETS = ("reference", "optimized", "cmsis-nn")
KERNELS_OPT_DIR = FIRMWARE_REF_DIR / "kernels_opt"
KERNELS_CMSIS_DIR = FIRMWARE_REF_DIR / "kernels_cmsis"
# Arm's CMSIS-NN, user-supplied: a CMSIS_5 tree (the directory holding CMSIS/NN) with the API of May 2020
# that TFLM 2.3's cmsis-nn kernels called (arm_nnfunctions.h V.3.0.0: struct arguments for convolutions,
# plain ones for depthwise, fully connected and pooling). The MLPerf Tiny v0.5 reference build vendored
# such a tree (mlcommons/tiny, benchmark/reference_submissions/<task>/tensorflow/lite/micro/tools/make/
# downloads/cmsis). Its sources in these folders are compiled; --gc-sections keeps what the glue calls.
CMSIS_NN_ENV = "IOTSIM_CMSIS_NN"
CMSIS_NN_SOURCE_DIRS = ("ConvolutionFunctions", "FullyConnectedFunctions", "NNSupportFunctions", "BasicMathFunctions")
# what the v0.5 build defined for CMSIS (mlcommons/tiny .../BUILD/NUCLEO_L4R5ZI/GCC_ARM/.profile-c: mbed's
# ARM_MATH_CM4 and __FPU_PRESENT=1, C as gnu11)
CMSIS_NN_CFLAGS = ("-std=gnu11", "-DARM_MATH_CM4", "-D__FPU_PRESENT=1")
CMSIS_NN_CORES = ("cortex-m4",)
# cores with the DSP extension the optimized kernels use (SXTB16, SXTAB16, SMLAD, SMLABB/TT):
# Armv7E-M (Cortex-M4) and Armv8-M Mainline with DSP (Cortex-M33: gcc's -mcpu=cortex-m33 enables
# it, __ARM_FEATURE_DSP; QEMU's cortex-m33 implements it). The Cortex-M3 (Armv7-M) has none.
DSP_CORES = ("cortex-m4", "cortex-m33")


class FirmwareBuildError(InputError):
    """The firmware could not be built (toolchain missing, bad export, compiler error)."""


@dataclass(frozen=True)
class Board:
    """A QEMU board the reference firmware runs on, and how to compile for it."""

    name: str
    qemu_machine: str
    core: str  # e.g. "cortex-m4"
    cpu_flags: tuple[str, ...]  # gcc -mcpu/-mthumb/-mfloat-abi/-mfpu
    linker_script: str  # file under firmware_ref/boards/
    flash_origin: int
    flash_size: int
    ram_origin: int
    ram_size: int
    fpu: str | None  # gcc -mfpu name, None for soft float
    renode_cpu_type: str  # Renode CPU.CortexM cpuType
    description: str = ""

    @property
    def linker_script_path(self) -> Path:
        return FIRMWARE_REF_DIR / "boards" / self.linker_script


BOARDS: dict[str, Board] = {
    b.name: b
    for b in (
        Board(
            name="mps2-an385",
            qemu_machine="mps2-an385",
            core="cortex-m3",
            cpu_flags=("-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft"),
            linker_script="mps2_an385.ld",
            flash_origin=0x00000000,
            flash_size=4 * MiB,
            ram_origin=0x20000000,
            ram_size=4 * MiB,
            fpu=None,
            renode_cpu_type="cortex-m3",
            description="Arm MPS2 AN385: Cortex-M3, no FPU (soft float)",
        ),
        Board(
            name="mps2-an386",
            qemu_machine="mps2-an386",
            core="cortex-m4",
            cpu_flags=("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"),
            linker_script="mps2_an386.ld",
            flash_origin=0x00000000,
            flash_size=4 * MiB,
            ram_origin=0x20000000,
            ram_size=4 * MiB,
            fpu="fpv4-sp-d16",
            renode_cpu_type="cortex-m4f",
            description="Arm MPS2 AN386: Cortex-M4 with single-precision FPU (hard float)",
        ),
        Board(
            name="mps2-an505",
            qemu_machine="mps2-an505",
            core="cortex-m33",
            cpu_flags=("-mcpu=cortex-m33", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"),
            linker_script="mps2_an505.ld",
            flash_origin=0x10000000,
            flash_size=4 * MiB,
            ram_origin=0x38000000,
            ram_size=4 * MiB,
            fpu="fpv5-sp-d16",
            renode_cpu_type="cortex-m33",
            description="Arm MPS2 AN505 (SSE-200): Cortex-M33 with FPU, Secure state",
        ),
    )
}


def check_kernels(kernels: str, board: "Board | None" = None) -> str:
    """`kernels` if it names a kernel set the board can run, else FirmwareBuildError saying why."""
    if kernels not in KERNEL_SETS:
        raise FirmwareBuildError(f"unknown kernel set '{kernels}': choose one of {', '.join(KERNEL_SETS)}",
                                 field="kernels")
    if kernels == "cmsis-nn" and board is not None and board.core not in CMSIS_NN_CORES:
        raise FirmwareBuildError(
            f"the cmsis-nn kernels are built as the MLPerf Tiny v0.5 build built them, for the Cortex-M4; "
            f"{board.name} is a {board.core}: use mps2-an386", field="kernels")
    if kernels == "optimized" and board is not None and board.core not in DSP_CORES:
        raise FirmwareBuildError(
            f"the optimized kernels use the DSP extension (SMLAD, SXTB16), which {board.name} ({board.core}) "
            f"does not have: use kernels 'reference' on it, or a board with {' or '.join(DSP_CORES)}",
            field="kernels",
        )
    return kernels


def kernel_dir(kernels: str) -> Path | None:
    """The folder whose files replace kernels/<name> for a kernel set (None for the reference set)."""
    return {"optimized": KERNELS_OPT_DIR, "cmsis-nn": KERNELS_CMSIS_DIR}.get(kernels)


def kernel_sources(sources: tuple[Path, ...], kernels: str) -> list[Path]:
    """The kernel files to compile: <the set's folder>/<name> where the set has one, else kernels/<name>
    (for cmsis-nn, followed by the CMSIS-NN library's sources)."""
    d = kernel_dir(kernels)
    if d is None:
        return list(sources)
    out = [d / s.name if (d / s.name).is_file() else s for s in sources]
    if kernels == "cmsis-nn":
        out += list(cmsis_nn().sources)
    return out


@dataclass(frozen=True)
class CmsisNn:
    """A CMSIS-NN tree: where $IOTSIM_CMSIS_NN points, its library sources and the include folders."""

    root: Path
    sources: tuple[Path, ...]
    include_dirs: tuple[Path, ...]


def cmsis_nn() -> CmsisNn:
    """The CMSIS-NN tree $IOTSIM_CMSIS_NN names, or FirmwareBuildError saying what is missing.

    Include folders: CMSIS/NN/Include, CMSIS/DSP/Include and CMSIS/Core/Include under the root (a CMSIS_5
    checkout), and the root's parent, for trees laid out as TFLM's download step left them (sources that
    include "cmsis/CMSIS/...")."""
    value = os.environ.get(CMSIS_NN_ENV, "")
    if not value:
        raise FirmwareBuildError(
            f"the cmsis-nn kernels link Arm's CMSIS-NN, which iotsim does not ship: set {CMSIS_NN_ENV} to a CMSIS_5 "
            f"tree with the May 2020 API (the directory holding CMSIS/NN; docs/firmware.md says where to get one)",
            field="kernels")
    root = Path(value).expanduser()
    nn = root / "CMSIS" / "NN"
    if not (nn / "Include" / "arm_nnfunctions.h").is_file():
        raise FirmwareBuildError(f"no CMSIS/NN/Include/arm_nnfunctions.h under {CMSIS_NN_ENV}", where=str(root))
    sources = tuple(sorted(p for d in CMSIS_NN_SOURCE_DIRS for p in (nn / "Source" / d).glob("*.c")))
    if not sources:
        raise FirmwareBuildError(f"no CMSIS-NN sources in CMSIS/NN/Source/{{{','.join(CMSIS_NN_SOURCE_DIRS)}}}",
                                 where=str(root))
    includes = tuple(d for d in (nn / "Include", root / "CMSIS" / "DSP" / "Include", root / "CMSIS" / "Core" / "Include",
                                 root.parent) if d.is_dir())
    return CmsisNn(root=root, sources=sources, include_dirs=includes)


def get_board(board: str | Board) -> Board:
    if isinstance(board, Board):
        return board
    try:
        return BOARDS[board]
    except KeyError:
        raise FirmwareBuildError(
            f"unknown board '{board}': choose one of {', '.join(sorted(BOARDS))}", field="board"
        ) from None


@dataclass(frozen=True)
class BuildResult:
    """One firmware build. `os.fspath(result)` is the ELF path, so it can stand in for a Path."""

    elf: Path
    board: str
    variant: str
    flash_bytes: int  # everything stored in flash: vectors + text + rodata + .data's load image
    ram_bytes: int  # static RAM: .data + .bss + .noinit (the model's arena included)
    stack_reserve_bytes: int  # RAM reserved for the stack (not in ram_bytes)
    heap_min_bytes: int  # RAM reserved at least for newlib's heap (not in ram_bytes)
    model_flash_bytes: int  # part of flash_bytes from model.o and kernel objects (from the map)
    model_ram_bytes: int  # part of ram_bytes from model.o and kernel objects
    compiler: str  # first line of `arm-none-eabi-gcc --version`
    cflags: tuple[str, ...]
    map_file: Path
    cached: bool = False
    warnings: str = ""

    def __fspath__(self) -> str:
        return str(self.elf)

    def to_json(self) -> dict:
        d = asdict(self)
        d["elf"] = str(self.elf)
        d["map_file"] = str(self.map_file)
        d["cflags"] = list(self.cflags)
        return d


# --------------------------------------------------------------------------------------------
# toolchain
# --------------------------------------------------------------------------------------------


def arm_gcc() -> str:
    """Path of arm-none-eabi-gcc, or FirmwareBuildError naming the packages to install."""
    name = os.environ.get(ARM_GCC_ENV, "arm-none-eabi-gcc")
    path = shutil.which(name)
    if path is None:
        raise FirmwareBuildError(
            f"{name} not found: install the cross compiler and its C library, e.g. "
            f"`apt-get install --no-install-recommends {ARM_PACKAGES}` (Debian/Ubuntu), "
            f"or set {ARM_GCC_ENV}"
        )
    return path


def host_cc() -> str:
    name = os.environ.get(HOST_CC_ENV, "gcc")
    path = shutil.which(name)
    if path is None:
        raise FirmwareBuildError(f"host C compiler '{name}' not found: install gcc or set {HOST_CC_ENV}")
    return path


@functools.cache
def compiler_version(compiler: str) -> str:
    try:
        out = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise FirmwareBuildError(f"cannot run '{compiler} --version': {e}") from e
    return out.splitlines()[0].strip() if out else compiler


# --------------------------------------------------------------------------------------------
# the export directory
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Export:
    dir: Path
    sources: tuple[Path, ...]  # kernel sources (absolute)
    input_bytes: int
    output_bytes: int
    manifest: dict = field(default_factory=dict)


_DEFINE_RE = r"^\s*#\s*define\s+{name}\s+\(?\s*(\d+)\s*\)?"


def read_export(export_dir: str | os.PathLike) -> Export:
    d = Path(export_dir)
    where = str(d)
    if not d.is_dir():
        raise FirmwareBuildError("exported model directory not found", where=where)
    for name in ("model.h", "model.c", "manifest.json"):
        if not (d / name).is_file():
            raise FirmwareBuildError(f"missing {name} (not an exported model?)", where=where)
    try:
        manifest = json.loads((d / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise FirmwareBuildError(f"cannot read manifest.json: {e}", where=str(d / "manifest.json")) from e
    kernels = FIRMWARE_REF_DIR / "kernels"
    sources = []
    for s in manifest.get("sources", []):
        p = (kernels / s).resolve()
        if not p.is_file():
            raise FirmwareBuildError(
                f"kernel source '{s}' not found under {kernels}", where=str(d / "manifest.json"), field="sources"
            )
        sources.append(p)
    header = (d / "model.h").read_text()
    sizes = {}
    for key, macro in (("input_bytes", "IOTSIM_INPUT_BYTES"), ("output_bytes", "IOTSIM_OUTPUT_BYTES")):
        m = re.search(_DEFINE_RE.format(name=macro), header, re.MULTILINE)
        from_header = int(m.group(1)) if m else None
        from_manifest = manifest.get(key)
        if from_header is None and from_manifest is None:
            raise FirmwareBuildError(f"model.h does not #define {macro}", where=str(d / "model.h"))
        if from_header is not None and from_manifest is not None and int(from_manifest) != from_header:
            raise FirmwareBuildError(
                f"manifest.json {key}={from_manifest} but model.h defines {macro} {from_header}", where=where
            )
        sizes[key] = int(from_header if from_header is not None else from_manifest)
    return Export(d, tuple(sources), sizes["input_bytes"], sizes["output_bytes"], manifest)


# --------------------------------------------------------------------------------------------
# ELF reading (ELF32 little-endian, enough for symbols and section sizes)
# --------------------------------------------------------------------------------------------

SHT_SYMTAB, SHT_NOBITS = 2, 8
SHF_ALLOC = 0x2


@dataclass(frozen=True)
class ElfSection:
    name: str
    type: int
    flags: int
    addr: int
    size: int


@dataclass(frozen=True)
class ElfSymbol:
    name: str
    value: int
    size: int
    type: int  # 0 NOTYPE, 1 OBJECT, 2 FUNC


@dataclass(frozen=True)
class ElfInfo:
    entry: int
    sections: tuple[ElfSection, ...]
    symbols: dict[str, ElfSymbol]

    def symbol(self, name: str, where: str = "") -> ElfSymbol:
        try:
            return self.symbols[name]
        except KeyError:
            raise InputError(f"symbol '{name}' not found in the ELF", where=where or None) from None

    def section(self, name: str) -> ElfSection | None:
        return next((s for s in self.sections if s.name == name), None)


def read_elf(path: str | os.PathLike) -> ElfInfo:
    """Sections and symbols of a 32-bit little-endian ELF (what arm-none-eabi-gcc produces)."""
    p = Path(os.fspath(path))
    try:
        data = p.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read ELF: {e}", where=str(p)) from e
    if data[:4] != b"\x7fELF" or data[4] != 1 or data[5] != 1:
        raise InputError("not a 32-bit little-endian ELF file", where=str(p))
    (e_entry,) = struct.unpack_from("<I", data, 0x18)
    (e_shoff,) = struct.unpack_from("<I", data, 0x20)
    e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHH", data, 0x2E)
    raw = [struct.unpack_from("<IIIIIIIIII", data, e_shoff + i * e_shentsize) for i in range(e_shnum)]
    shstr_off = raw[e_shstrndx][4]

    def cstr(off: int) -> str:
        end = data.index(b"\0", off)
        return data[off:end].decode("utf-8", "replace")

    sections = tuple(ElfSection(cstr(shstr_off + r[0]), r[1], r[2], r[3], r[5]) for r in raw)
    symbols: dict[str, ElfSymbol] = {}
    for r in raw:
        if r[1] != SHT_SYMTAB:
            continue
        off, size, link, entsize = r[4], r[5], r[6], r[9] or 16
        str_off = raw[link][4]
        for k in range(size // entsize):
            st_name, st_value, st_size, st_info, _other, st_shndx = struct.unpack_from(
                "<IIIBBH", data, off + k * entsize
            )
            if not st_name or st_shndx == 0:
                continue
            name = cstr(str_off + st_name)
            bind = st_info >> 4
            sym = ElfSymbol(name, st_value, st_size, st_info & 0xF)
            if name not in symbols or bind == 1:  # prefer global definitions over locals
                symbols[name] = sym
    return ElfInfo(e_entry, sections, symbols)


def marker_addresses(elf: str | os.PathLike) -> tuple[int, int]:
    """Addresses (Thumb bit cleared) of iotsim_mark_begin and iotsim_mark_end."""
    info = read_elf(elf)
    where = os.fspath(elf)
    begin = info.symbol("iotsim_mark_begin", where).value & ~1
    end = info.symbol("iotsim_mark_end", where).value & ~1
    return begin, end


def _sizes(info: ElfInfo, board: Board) -> dict[str, int]:
    flash = ram = stack = heap = 0
    for s in info.sections:
        if not (s.flags & SHF_ALLOC) or s.size == 0:
            continue
        in_ram = board.ram_origin <= s.addr < board.ram_origin + board.ram_size
        if s.name == ".stack":
            stack += s.size
        elif s.name == ".heap":
            heap += s.size
        else:
            if s.type != SHT_NOBITS:
                flash += s.size  # code, constants and .data's initial image all live in flash
            if in_ram:
                ram += s.size
    return {"flash_bytes": flash, "ram_bytes": ram, "stack_reserve_bytes": stack, "heap_min_bytes": heap}


_MAP_ONE_LINE = re.compile(r"^ (\.\S+|COMMON)\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)\s+(\S.*)$")
_MAP_NAME_ONLY = re.compile(r"^ (\.\S+|COMMON)\s*$")
_MAP_CONT = re.compile(r"^\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)\s+(\S.*)$")


def map_object_sizes(map_file: str | os.PathLike) -> dict[str, dict[str, int]]:
    """Bytes each object file contributes to the linked image, from a GNU ld map file.

    Returns {object path: {"flash": n, "ram": n}}; .data counts in both (load image + RAM copy).
    """
    text = Path(map_file).read_text(errors="replace")
    start = text.find("Linker script and memory map")
    lines = text[start:].splitlines() if start >= 0 else []
    out: dict[str, dict[str, int]] = {}

    def add(sec: str, size: int, obj: str) -> None:
        if size == 0:
            return
        kind = sec.split(".")[1] if sec.startswith(".") else sec
        entry = out.setdefault(obj.strip(), {"flash": 0, "ram": 0})
        if kind in ("text", "rodata", "ARM", "init_array", "fini_array", "preinit_array", "isr_vector"):
            entry["flash"] += size
        elif kind == "data":
            entry["flash"] += size
            entry["ram"] += size
        elif kind in ("bss", "noinit", "COMMON") or sec == "COMMON":
            entry["ram"] += size

    pending = None
    for line in lines:
        if pending is not None:
            m = _MAP_CONT.match(line)
            if m:
                add(pending, int(m.group(2), 16), m.group(3))
            pending = None
            continue
        m = _MAP_ONE_LINE.match(line)
        if m:
            add(m.group(1), int(m.group(3), 16), m.group(4))
            continue
        m = _MAP_NAME_ONLY.match(line)
        if m:
            pending = m.group(1)
    return out


# --------------------------------------------------------------------------------------------
# building
# --------------------------------------------------------------------------------------------


def _hash_inputs(parts: list[str], files: list[Path]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    for f in sorted(set(files)):
        h.update(str(f).encode())
        h.update(b"\0")
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def _headers(dirs: list[Path]) -> list[Path]:
    out = []
    for d in dirs:
        if d.is_dir():
            out += [p for p in d.rglob("*.h") if p.is_file()]
    return out


def _tail(text: str, lines: int = 40, chars: int = 4000) -> str:
    t = "\n".join(text.strip().splitlines()[-lines:])
    return t[-chars:]


def _run(cmd: list[str], what: str, where: str) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as e:
        raise FirmwareBuildError(f"cannot run {cmd[0]}: {e}", where=where) from e
    if r.returncode != 0:
        err = r.stderr or r.stdout
        hint = ""
        if re.search(r"(stdio\.h|stdint\.h|rdimon|nano\.specs|nosys\.specs).*(No such file|cannot find|not found)", err):
            hint = f"\n(the C library seems missing: install {ARM_PACKAGES})"
        raise FirmwareBuildError(f"{what} failed (exit {r.returncode}):\n{_tail(err)}{hint}", where=where)
    return (r.stderr or "").strip()


def _obj_name(src: Path, export_dir: Path) -> str:
    fw = FIRMWARE_REF_DIR.resolve()
    s = src.resolve()
    if s == (export_dir / "model.c").resolve():
        return "model.o"
    try:
        rel = s.relative_to(fw)
    except ValueError:
        rel = Path(s.name)
    return str(rel.with_suffix(".o")).replace(os.sep, "__")


def build_elf(
    export_dir: str | os.PathLike,
    board: str | Board,
    build_dir: str | os.PathLike,
    *,
    variant: str = "semihosting",
    max_vectors: int = 16,
    extra_cflags: tuple[str, ...] = (),
    stack_size: int | None = None,
    jobs: int | None = None,
    kernels: str = "reference",
) -> BuildResult:
    """Cross-compile the exported model with the reference firmware for `board`.

    kernels "reference" or "optimized" (module docstring); an optimized build goes to
    build_dir/<board>-<variant>-optimized.

    variant "semihosting" (QEMU; file I/O over semihosting) or "ram" (Renode; RAM buffers for
    `max_vectors` inputs). The ELF goes to build_dir/<board>-<variant>/firmware.elf; a build
    whose inputs (sources, headers, flags, compiler) have not changed is reused.
    """
    b = get_board(board)
    if variant not in VARIANTS:
        raise FirmwareBuildError(f"unknown variant '{variant}': choose one of {', '.join(VARIANTS)}", field="variant")
    check_kernels(kernels, b)
    exp = read_export(export_dir)
    gcc = arm_gcc()
    version = compiler_version(gcc)
    fw = FIRMWARE_REF_DIR
    out_dir = Path(build_dir) / (f"{b.name}-{variant}" + ("" if kernels == "reference" else f"-{kernels}"))
    elf = out_dir / "firmware.elf"
    map_file = out_dir / "firmware.map"

    defines = ["-DIOTSIM_IO_SEMIHOSTING=1"] if variant == "semihosting" else [
        "-DIOTSIM_IO_RAM=1",
        f"-DIOTSIM_MAX_VECTORS={int(max_vectors)}",
    ]
    cflags = (*b.cpu_flags, *COMMON_CFLAGS, *defines, *extra_cflags)
    header_dirs = [exp.dir, fw / "include"]
    if kernel_dir(kernels) is not None:
        header_dirs.append(kernel_dir(kernels))
    kernel_files = kernel_sources(exp.sources, kernels)
    library = cmsis_nn() if kernels == "cmsis-nn" else None
    if library is not None:
        cflags = (*cflags, *CMSIS_NN_CFLAGS)
        # the library's include folders are searched and their headers hashed, all but the root's parent (only
        # searched: it holds the whole download, whose CMSIS headers are the folders already hashed)
        header_dirs += [d for d in library.include_dirs if d != library.root.parent]
    includes = [f"-I{d.resolve()}" for d in header_dirs]
    if library is not None and library.root.parent in library.include_dirs:
        includes.append(f"-I{library.root.parent.resolve()}")
    if variant == "semihosting":
        specs = ["-nostartfiles", "--specs=nano.specs", "--specs=rdimon.specs"]
    else:
        specs = ["-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs"]
    ldflags = [
        *specs,
        f"-T{b.linker_script_path}",
        f"-L{fw / 'boards'}",
        "-Wl,--gc-sections",
        f"-Wl,-Map={map_file}",
    ]
    if stack_size is not None:
        ldflags.append(f"-Wl,--defsym=IOTSIM_STACK_SIZE={int(stack_size)}")

    sources = [fw / "main.c", fw / "boards" / "startup.c", exp.dir / "model.c", *kernel_files]
    key = _hash_inputs(
        [version, variant, *cflags, *ldflags] + ([] if kernels == "reference" else [kernels]),
        [*sources, *_headers(header_dirs), fw / "boards" / "common.ld", b.linker_script_path],
    )
    stamp = out_dir / "build.json"
    if elf.is_file() and stamp.is_file():
        try:
            saved = json.loads(stamp.read_text())
            if saved.get("key") == key:
                res = saved["result"]
                return BuildResult(
                    **{**res, "elf": Path(res["elf"]), "map_file": Path(res["map_file"]),
                       "cflags": tuple(res["cflags"]), "cached": True}
                )
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            pass

    obj_dir = out_dir / "obj"
    obj_dir.mkdir(parents=True, exist_ok=True)
    objs = [obj_dir / _obj_name(s, exp.dir) for s in sources]
    if len(set(objs)) != len(objs):
        raise FirmwareBuildError("two sources map to the same object name", where=str(exp.dir))

    def compile_one(src_obj: tuple[Path, Path]) -> str:
        src, obj = src_obj
        return _run([gcc, *cflags, *includes, "-c", str(src), "-o", str(obj)], f"compiling {src.name}", str(src))

    workers = jobs or min(len(sources), os.cpu_count() or 2)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        warnings = [w for w in pool.map(compile_one, zip(sources, objs)) if w]
    link_warn = _run([gcc, *b.cpu_flags, *[str(o) for o in objs], *ldflags, "-o", str(elf), "-lm"], "linking", str(out_dir))
    if link_warn:
        warnings.append(link_warn)

    info = read_elf(elf)
    sizes = _sizes(info, b)
    per_obj = map_object_sizes(map_file)
    model_objs = {str(obj_dir / "model.o")} | {str(o) for o, s in zip(objs, sources) if s in kernel_files}
    model_flash = sum(v["flash"] for k, v in per_obj.items() if k in model_objs)
    model_ram = sum(v["ram"] for k, v in per_obj.items() if k in model_objs)
    result = BuildResult(
        elf=elf,
        board=b.name,
        variant=variant,
        **sizes,
        model_flash_bytes=model_flash,
        model_ram_bytes=model_ram,
        compiler=version,
        cflags=tuple(cflags),
        map_file=map_file,
        cached=False,
        warnings="\n".join(warnings),
    )
    stamp.write_text(json.dumps({"key": key, "result": result.to_json()}, indent=1))
    return result


def build_host(export_dir: str | os.PathLike, build_dir: str | os.PathLike, *, extra_cflags: tuple[str, ...] = (),
               main_source: str | os.PathLike | None = None, kernels: str = "reference") -> Path:
    """Compile the exported model and main.c for this machine (markers are no-ops). Returns the exe.

    Run it as `exe input.bin output.bin` (see run_host in qemu.py). Cached like build_elf.
    `main_source` replaces firmware_ref/main.c (devcheck's tracing main does). With kernels
    "optimized" the DSP instructions are their plain-C equivalents (kernels_opt/iotsim_dsp.h).
    """
    check_kernels(kernels)
    if kernels == "cmsis-nn":
        raise FirmwareBuildError("the cmsis-nn kernels are Arm's Cortex-M code: they build for a board, not for this "
                                 "machine", field="kernels")
    exp = read_export(export_dir)
    cc = host_cc()
    version = compiler_version(cc)
    fw = FIRMWARE_REF_DIR
    out_dir = Path(build_dir) / ("host" if kernels == "reference" else f"host-{kernels}")
    exe = out_dir / "iotsim_host"
    main = Path(main_source) if main_source is not None else fw / "main.c"
    sources = [main, exp.dir / "model.c", *kernel_sources(exp.sources, kernels)]
    cflags = (*HOST_CFLAGS, *extra_cflags)
    header_dirs = [exp.dir, fw / "include"] + ([KERNELS_OPT_DIR] if kernels == "optimized" else [])
    key = _hash_inputs([version, *cflags], [*sources, *_headers(header_dirs)])
    stamp = out_dir / "build.json"
    if exe.is_file() and stamp.is_file():
        try:
            if json.loads(stamp.read_text()).get("key") == key:
                return exe
        except (OSError, json.JSONDecodeError):
            pass
    out_dir.mkdir(parents=True, exist_ok=True)
    includes = [f"-I{d.resolve()}" for d in header_dirs]
    _run([cc, *cflags, *includes, *[str(s) for s in sources], "-o", str(exe), "-lm"], "host build", str(exp.dir))
    stamp.write_text(json.dumps({"key": key, "compiler": version, "cflags": list(cflags)}))
    return exe
