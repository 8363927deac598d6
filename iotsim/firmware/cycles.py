"""Cycles per inference from the instruction stream: a cycle-approximate Cortex-M timing model.

The QEMU plugin (firmware_ref/qemu_plugin/icount.c) counts, per inference, the executed
instructions by class; this module prices each class with the core's published instruction
timing and adds the board's memory system:

    cycles = sum over classes (count x cycles of that class)          core, zero wait states
           + taken branches x P                                         pipeline refill
           + instruction-cache misses x flash wait states               memory system

Core timing (zero wait states), Arm Cortex-M4 Technical Reference Manual r0p1 (ARM DDI 0439),
Table 3-1 "Cortex-M4 instruction set summary" (the same table, reproduced by licensees, e.g.
TI SWCU192 Table 3-25):
- data processing, moves, compares, shifts, saturation, bit fields, IT: 1
- MUL, MLA, MLS and the DSP multiplies (SMULxy, SMLAxy, SMULW, SMLAD, SMUAD, SMMUL ...): 1
- long multiplies SMULL, UMULL, SMLAL, UMLAL (and SMLALD, UMAAL): 1
- SDIV, UDIV: 2 to 12 ("division operations use early termination": data dependent)
- load single (LDR, LDRB, LDRH, LDRSB, LDRSH): 2; store single (STR ...): 2; footnote: "neighboring
  load and store single instructions can pipeline their address and data phases", so a load or
  store right after a load costs 1 (the plugin finds those: ldst_pipelined; section 3.3.2:
  nothing pipelines after a store)
- LDRD, STRD: 1 + 2 = 3; LDM, STM, PUSH, POP: 1 + N (N registers)
- B, BL, BX, BLX, CBZ, CBNZ: 1, + P when taken; TBB, TBH: 2 + P; a load or POP writing the PC: + P
- FPU (Table 7-1): VADD/VMUL/VCMP/VCVT/VMOV ...: 1, VMLA/VFMA ...: 3, VDIV/VSQRT: 14, VLDR/VSTR: 2
P, "the number of cycles required for a pipeline refill, 1 to 3 depending on the alignment and
width of the target instruction, and whether the processor manages to speculate the address
early", and the divide time are per-MCU assumptions in devices/mcu/*.yaml (`cycle_model`),
stated there, not fitted.

The Cortex-M3 (ARM DDI 0337, Table 18-1) differs in multiplies: MLA/MLS 2, long multiplies 3-5
(SMULL/UMULL) and 4-7 (SMLAL/UMLAL), taken here at their upper ends. The Cortex-M33 TRM (Arm
100230) publishes no per-instruction cycle table; the M4 table is used for it (unconfirmed).

Memory system: the plugin simulates the flash caches in front of the core (fully associative,
LRU) on the executed instruction addresses and on every data load from flash (weights are
`const`, so in flash as on a real board): each miss waits flash_wait_states cycles. Not
modelled: the flash prefetch buffer, bus contention between instruction and data fetches,
interrupts and DMA.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from iotsim.errors import InputError

# Counter names written by the plugin (firmware_ref/qemu_plugin/icount.c `counter_names`).
INSN_CLASSES = (
    "alu", "mul", "mul_long", "div", "load", "store", "ldst_pipelined", "ldst_double", "ldst_multiple",
    "table_branch", "branch_only", "fp", "fp_mac", "fp_div", "fp_ldst",
)  # these partition the executed instructions
EXTRA_COUNTERS = ("ldst_multiple_regs", "branch", "branch_taken", "flash_loads", "dcache_misses", "icache_misses")
COUNTERS = INSN_CLASSES + EXTRA_COUNTERS

_M4 = {  # cycles per instruction of the class at zero wait states (Cortex-M4 TRM Table 3-1)
    "alu": 1, "mul": 1, "mul_long": 1, "load": 2, "store": 2, "ldst_pipelined": 1, "ldst_double": 3,
    "ldst_multiple": 1,  # + 1 per register (ldst_multiple_regs)
    "table_branch": 2, "branch_only": 1, "fp": 1, "fp_mac": 3, "fp_div": 14, "fp_ldst": 2,
}
CORE_TIMING: dict[str, dict[str, float]] = {
    "cortex-m4": _M4,
    "cortex-m33": _M4,  # no per-instruction table in the Cortex-M33 TRM: M4's, unconfirmed
    "cortex-m3": {**_M4, "mul": 2, "mul_long": 7},  # M3 TRM Table 18-1: MUL 1, MLA 2; SMULL 3-5, SMLAL 4-7 (upper ends)
}
CORE_SOURCE = {
    "cortex-m4": "Arm Cortex-M4 TRM r0p1 (DDI 0439) Table 3-1",
    "cortex-m33": "Arm Cortex-M4 TRM Table 3-1 used for the Cortex-M33 (its TRM has no cycle table; unconfirmed)",
    "cortex-m3": "Arm Cortex-M3 TRM r2p0 (DDI 0337) Table 18-1",
}

# The flash caches measurements simulate: the STM32L4R5's ART accelerator (devices/mcu/stm32l4r5.yaml),
# the one shipped MCU with flash wait states. "icache=LINES:BYTES,dcache=LINES:BYTES" (plugin arguments).
DEFAULT_CACHES = "icache=32:32,dcache=8:32"

# keys of an MCU profile's `cycle_model` mapping
PARAMS = {
    "branch_refill_cycles": "P: extra cycles of a taken branch (pipeline refill), 1..3 per the TRM",
    "divide_cycles": "cycles of SDIV/UDIV, 2..12 per the TRM",
    "flash_wait_states": "wait states of an instruction fetch that misses the flash cache",
    "icache_lines": "lines of the flash instruction cache",
    "icache_line_bytes": "bytes per instruction-cache line",
    "dcache_lines": "lines of the flash data cache",
    "dcache_line_bytes": "bytes per data-cache line",
}


class CycleModelError(InputError):
    """Instruction-class counts or cycle-model parameters that cannot be priced."""


@dataclass(frozen=True)
class CycleParams:
    """An MCU's cycle-model parameters (devices/mcu/*.yaml `cycle_model`)."""

    core: str  # emulated core whose timing table applies: cortex-m4 / cortex-m33 / cortex-m3
    branch_refill_cycles: float
    divide_cycles: float
    flash_wait_states: float = 0.0
    icache_lines: int = 0
    icache_line_bytes: int = 0
    dcache_lines: int = 0
    dcache_line_bytes: int = 0

    def __post_init__(self):
        if self.core not in CORE_TIMING:
            raise CycleModelError(f"no instruction timing for core {self.core!r}; known: {sorted(CORE_TIMING)}",
                                  field="core")
        if not 1 <= self.branch_refill_cycles <= 3:
            raise CycleModelError("branch_refill_cycles must be in 1..3 (the TRM's range for P)",
                                  field="branch_refill_cycles")
        if not 2 <= self.divide_cycles <= 12:
            raise CycleModelError("divide_cycles must be in 2..12 (the TRM's range)", field="divide_cycles")
        if self.flash_wait_states < 0:
            raise CycleModelError("flash_wait_states must be >= 0", field="flash_wait_states")
        if self.flash_wait_states and not (self.icache_lines > 0 and self.icache_line_bytes > 0
                                           and self.dcache_lines > 0 and self.dcache_line_bytes > 0):
            raise CycleModelError("flash_wait_states > 0 needs the flash caches' geometry (icache_lines, "
                                  "icache_line_bytes, dcache_lines, dcache_line_bytes)", field="flash_wait_states")

    @property
    def caches(self) -> str | None:
        """The plugin arguments for this MCU's flash caches (None: no wait states, nothing to simulate)."""
        if not self.flash_wait_states:
            return None
        return f"icache={self.icache_lines}:{self.icache_line_bytes},dcache={self.dcache_lines}:{self.dcache_line_bytes}"

    @classmethod
    def from_mapping(cls, core: str, values: Mapping[str, float], where: str = "") -> CycleParams:
        unknown = set(values) - set(PARAMS)
        if unknown:
            raise CycleModelError(f"unknown cycle_model keys {sorted(unknown)}; known: {sorted(PARAMS)}",
                                  where=where, field="cycle_model")
        missing = {"branch_refill_cycles", "divide_cycles"} - set(values)
        if missing:
            raise CycleModelError(f"cycle_model needs {sorted(missing)}", where=where, field="cycle_model")
        return cls(
            core=core,
            branch_refill_cycles=float(values["branch_refill_cycles"]),
            divide_cycles=float(values["divide_cycles"]),
            flash_wait_states=float(values.get("flash_wait_states", 0)),
            icache_lines=int(values.get("icache_lines", 0)),
            icache_line_bytes=int(values.get("icache_line_bytes", 0)),
            dcache_lines=int(values.get("dcache_lines", 0)),
            dcache_line_bytes=int(values.get("dcache_line_bytes", 0)),
        )


def check_counts(counts: Mapping[str, int], where: str = "") -> None:
    missing = [k for k in INSN_CLASSES + ("ldst_multiple_regs", "branch_taken") if k not in counts]
    if missing:
        raise CycleModelError(f"instruction-class counts lack {missing}", where=where)
    if "instructions" in counts:
        total = sum(int(counts[k]) for k in INSN_CLASSES)
        if total != int(counts["instructions"]):
            raise CycleModelError(
                f"instruction classes add up to {total:,}, not to the {int(counts['instructions']):,} instructions counted",
                where=where)


def cycle_breakdown(counts: Mapping[str, int], params: CycleParams, *, caches: str | None = None) -> dict[str, float]:
    """Cycles per inference by source: each instruction class, 'divide', 'ldst_multiple_regs',
    'branch_refill', 'flash_stalls'; 'total' is their sum.

    caches: the flash caches the counts' icache_misses/dcache_misses were simulated with (plugin
    arguments, e.g. DEFAULT_CACHES); must equal params.caches when the MCU has flash wait states.
    A miss waits flash_wait_states cycles (the critical word first; the rest of the line fills
    while the core runs).
    """
    check_counts(counts)
    table = CORE_TIMING[params.core]
    out: dict[str, float] = {k: float(counts[k]) * table[k] for k in INSN_CLASSES if k != "div"}
    out["divide"] = float(counts["div"]) * params.divide_cycles
    out["ldst_multiple_regs"] = float(counts["ldst_multiple_regs"])
    out["branch_refill"] = float(counts["branch_taken"]) * params.branch_refill_cycles
    stalls = 0.0
    if params.flash_wait_states:
        if caches != params.caches or "icache_misses" not in counts or "dcache_misses" not in counts:
            raise CycleModelError(
                f"the counts' flash-cache misses were simulated for caches {caches or 'none'}, "
                f"this MCU has {params.caches}: re-measure with its geometry")
        stalls = float(counts["icache_misses"] + counts["dcache_misses"]) * params.flash_wait_states
    out["flash_stalls"] = stalls
    out["total"] = sum(out.values())
    return out


def cycles(counts: Mapping[str, int], params: CycleParams, *, caches: str | None = None) -> float:
    """Predicted cycles per inference for instruction-class counts on a core + memory system."""
    return cycle_breakdown(counts, params, caches=caches)["total"]
