"""The cycle model (iotsim.firmware.cycles) and the plugin's instruction classes (icount.c).

- the cost function against cycles computed by hand from the Cortex-M4 TRM's Table 3-1;
- the plugin's class counts on a hand-written Thumb-2 loop whose mix is known instruction by
  instruction (including which loads pipeline, taken branches and flash data-cache misses);
- the counts do not depend on how QEMU cuts code into translation blocks (-singlestep).
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest

from iotsim.firmware.cycles import (
    COUNTERS,
    DEFAULT_CACHES,
    INSN_CLASSES,
    CycleModelError,
    CycleParams,
    cycle_breakdown,
    cycles,
)
from iotsim.hardware.profiles import load_profile

M4 = CycleParams(core="cortex-m4", branch_refill_cycles=2, divide_cycles=12, flash_wait_states=5,
                 icache_lines=32, icache_line_bytes=32, dcache_lines=8, dcache_line_bytes=32)


def mix(**kw) -> dict:
    c = dict.fromkeys(COUNTERS, 0)
    c.update(kw)
    c["instructions"] = sum(c[k] for k in INSN_CLASSES)
    return c


def test_cost_function_equals_hand_computed_cycles():
    # 10 ALU (1 each) + 4 MUL (1) + 2 SMULL (1) + 1 SDIV (12, assumed) + 6 loads (2) + 3 pipelined
    # loads/stores (1) + 2 stores (2) + 1 LDRD (3) + 2 PUSH/POP of 3 registers each (1 + 3) +
    # 1 TBB (2) + 5 branches (1), 4 of them taken (+2 each) + 1 VMLA (3) + 1 VDIV (14) + 1 VLDR (2)
    # + 3 cache misses x 5 wait states
    c = mix(alu=10, mul=4, mul_long=2, div=1, load=6, ldst_pipelined=3, store=2, ldst_double=1,
            ldst_multiple=2, ldst_multiple_regs=6, table_branch=1, branch_only=5, branch_taken=4,
            fp_mac=1, fp_div=1, fp_ldst=1, icache_misses=1, dcache_misses=2)
    hand = 10 + 4 + 2 + 12 + 12 + 3 + 4 + 3 + (2 + 6) + 2 + 5 + 4 * 2 + 3 + 14 + 2 + 3 * 5
    assert cycles(c, M4, caches=DEFAULT_CACHES) == hand
    br = cycle_breakdown(c, M4, caches=DEFAULT_CACHES)
    assert br["branch_refill"] == 8 and br["flash_stalls"] == 15 and br["divide"] == 12
    assert br["total"] == sum(v for k, v in br.items() if k != "total")
    # zero wait states: no cache simulation needed, no stalls
    no_ws = CycleParams(core="cortex-m4", branch_refill_cycles=2, divide_cycles=12)
    assert cycles(c, no_ws) == hand - 15


def test_cortex_m3_prices_multiplies_higher():
    c = mix(mul=10, mul_long=10)
    m3 = CycleParams(core="cortex-m3", branch_refill_cycles=2, divide_cycles=12)
    m4 = CycleParams(core="cortex-m4", branch_refill_cycles=2, divide_cycles=12)
    assert cycles(c, m4) == 20 and cycles(c, m3) == 10 * 2 + 10 * 7


def test_bad_inputs_are_refused_with_a_reason():
    with pytest.raises(CycleModelError, match="1..3"):
        CycleParams(core="cortex-m4", branch_refill_cycles=4, divide_cycles=12)
    with pytest.raises(CycleModelError, match="2..12"):
        CycleParams(core="cortex-m4", branch_refill_cycles=2, divide_cycles=1)
    with pytest.raises(CycleModelError, match="cortex-m4"):
        CycleParams(core="xtensa", branch_refill_cycles=2, divide_cycles=12)
    with pytest.raises(CycleModelError, match="geometry"):
        CycleParams(core="cortex-m4", branch_refill_cycles=2, divide_cycles=12, flash_wait_states=5)
    with pytest.raises(CycleModelError, match="unknown cycle_model keys"):
        CycleParams.from_mapping("cortex-m4", {"branch_refill_cycles": 2, "divide_cycles": 12, "cpi": 0.83})
    with pytest.raises(CycleModelError, match="re-measure"):
        cycles(mix(alu=5), M4, caches="icache=16:32,dcache=8:32")
    bad = mix(alu=5)
    bad["instructions"] = 6
    with pytest.raises(CycleModelError, match="add up"):
        cycles(bad, M4, caches=DEFAULT_CACHES)


def test_shipped_m4_profiles_carry_a_sourced_cycle_model():
    for name in ("stm32l4r5", "nrf52840"):
        mcu = load_profile("mcu", name)
        params = CycleParams.from_mapping("cortex-m4", mcu.cycle_model)
        assert params.branch_refill_cycles == 2
        for key in mcu.cycle_model:
            assert mcu.sources[f"cycle_model.{key}"].strip()
    assert CycleParams.from_mapping("cortex-m4", load_profile("mcu", "stm32l4r5").cycle_model).caches == DEFAULT_CACHES
    assert load_profile("mcu", "esp32").cycle_model is None


# ---- the plugin on a known loop -------------------------------------------------------------

needs_tools = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None
    or shutil.which("gcc") is None,
    reason="needs arm-none-eabi-gcc + newlib, qemu-system-arm and a host gcc",
)

# One iteration, 12 instructions, classes by the plugin's rules:
#   ldrb r3,[r0],#1   load            (after the taken bne: nothing to pipeline with)
#   ldrb r4,[r1],#1   ldst_pipelined  (after a load, address r1 independent of r3); r1 -> flash
#   mla               mul
#   ldr r6,[r2]       load            (after a multiply)
#   ldr r7,[r6]       load            (after a load, but its address is that load's result)
#   str r7,[r2,#4]    ldst_pipelined  (after a load; address r2)
#   smull             mul_long
#   sdiv              div
#   push {r4,r5}      ldst_multiple, 2 registers
#   pop {r4,r5}       ldst_multiple, 2 registers
#   subs              alu
#   bne 1b            branch_only, taken on all but the last iteration
PER_ITERATION = dict(alu=1, mul=1, mul_long=1, div=1, load=3, store=0, ldst_pipelined=2, ldst_double=0,
                     ldst_multiple=2, ldst_multiple_regs=4, branch_only=1, branch=1, branch_taken=1,
                     flash_loads=1, instructions=12)
MIX_C = r"""#include <stdint.h>
#include "model.h"
static const uint8_t weights[1024] __attribute__((aligned(32))) = {1, 2, 3};
static int8_t acts[1024];
static int32_t cell[2];

__attribute__((naked, noinline)) static int32_t mix_loop(const int8_t *a, const uint8_t *b, int32_t *c, int32_t n) {
    __asm__ volatile(
        ".syntax unified\n"
        "push {r4-r11}\n"
        "mov r12, r3\n"
        "movs r11, #3\n"
        "movs r5, #0\n"
        "1: ldrb r3, [r0], #1\n"
        "ldrb r4, [r1], #1\n"
        "mla r5, r3, r4, r5\n"
        "ldr r6, [r2]\n"
        "ldr r7, [r6]\n"
        "str r7, [r2, #4]\n"
        "smull r8, r9, r3, r4\n"
        "sdiv r10, r5, r11\n"
        "push {r4, r5}\n"
        "pop {r4, r5}\n"
        "subs r12, r12, #1\n"
        "bne 1b\n"
        "mov r0, r5\n"
        "pop {r4-r11}\n"
        "bx lr\n");
}

int iotsim_model_invoke(const void *input, void *output) {
    int32_t n;
    __builtin_memcpy(&n, input, 4);
    cell[0] = (int32_t)(uintptr_t)&cell[1];
    int32_t r = mix_loop(acts, weights, cell, n);
    __builtin_memcpy(output, &r, 4);
    return 0;
}
"""


def _build(tmp_path: Path, board: str) -> Path:
    from iotsim.firmware.build import build_elf

    d = tmp_path / "export"
    d.mkdir(parents=True, exist_ok=True)
    (d / "model.h").write_text("#define IOTSIM_INPUT_BYTES 4\n#define IOTSIM_OUTPUT_BYTES 4\n"
                               "int iotsim_model_invoke(const void *input, void *output);\n")
    (d / "model.c").write_text(MIX_C)
    (d / "manifest.json").write_text(json.dumps({"sources": [], "headers": [], "input_bytes": 4, "output_bytes": 4}))
    return build_elf(d, board, tmp_path / "build").elf


@needs_tools
@pytest.mark.parametrize("board", ["mps2-an386", "mps2-an505"])
def test_plugin_classes_on_a_known_instruction_mix(tmp_path, board):
    from iotsim.firmware.qemu import run_qemu

    elf = _build(tmp_path, board)
    n1, n2 = 64, 320  # multiples of the 32-byte cache line: the weights stream over 2 and 10 lines
    # one QEMU each: the simulated caches start cold (within one run they stay warm across inferences)
    runs = [run_qemu(elf, board, struct.pack("<i", n), 4, 4, count=True) for n in (n1, n2)]
    a, b = (r.classes[0] for r in runs)
    for k in COUNTERS + ("instructions",):
        if k.endswith("cache_misses"):
            continue
        per = PER_ITERATION.get(k, 0)
        assert b[k] - a[k] == per * (n2 - n1), (k, a[k], b[k])
    # sequential weights: one data-cache miss per 32-byte line; the loop's code stays cached
    assert b["dcache_misses"] - a["dcache_misses"] == (n2 - n1) // 32
    assert b["icache_misses"] == a["icache_misses"]
    assert runs[0].caches == DEFAULT_CACHES
    assert sum(a[k] for k in INSN_CLASSES) == a["instructions"]  # the classes partition the instructions


@needs_tools
def test_class_counts_do_not_depend_on_translation_blocks(tmp_path):
    """-singlestep makes every instruction its own block: pipelining and taken-branch detection
    across block boundaries must give the same counts."""
    from iotsim.firmware.qemu import run_qemu

    elf = _build(tmp_path, "mps2-an386")
    x = struct.pack("<ii", 5, 40)
    normal = run_qemu(elf, "mps2-an386", x, 4, 4, count=True)
    single = run_qemu(elf, "mps2-an386", x, 4, 4, count=True, singlestep=True)
    assert normal.classes == single.classes


# ---- MLPerf Tiny rows (iotsim.firmware.mlperf) ----------------------------------------------


def test_mlperf_published_rows_and_row_arithmetic():
    from reference_models import mlperf_model

    from iotsim.errors import InputError
    from iotsim.firmware import mlperf

    mlperf_model("kws_ref_model.tflite")  # skips without the MLPerf files
    pub = mlperf.published("v0.5-tflm")
    assert pub["kws"]["latency_ms"] == 181.92 and pub["ad"]["energy_uj"] == 416.3 and pub["ic"]["supply_v"] == 1.8
    assert mlperf.published("v1.0-xcube-ai")["vww"]["latency_ms"] == 230.47
    # a made-up mix priced by hand: 1.2 M ALU + 0.4 M single loads + 0.1 M taken branches, no misses
    classes = mix(alu=1_200_000, load=400_000, branch_only=100_000, branch_taken=100_000)
    classes["caches"] = DEFAULT_CACHES
    row = mlperf.predict_row("ad", classes)
    hand_cycles = 1_200_000 + 2 * 400_000 + 100_000 + 2 * 100_000
    mcu = load_profile("mcu", "stm32l4r5")
    assert row["cycles"] == hand_cycles
    assert row["latency_ms"] == pytest.approx(hand_cycles / mcu.clock_hz * 1e3)
    assert row["latency_err"] == pytest.approx(row["latency_ms"] / 10.05 - 1)
    assert row["energy_uj"] == pytest.approx(1.8 * mcu.active_current_a * row["latency_ms"] * 1e3)
    assert row["energy_err"] == pytest.approx(row["energy_uj"] / 416.3 - 1)
    for key in ("task", "kernels", "board", "latency_ms", "published_latency_ms", "latency_err", "energy_uj",
                "published_energy_uj", "energy_err"):
        assert key in row
    # one constant fitted on one task: that task's error is 0 by construction, the others keep their ratios
    rows = [dict(row, task="kws", latency_ms=200.0, published_latency_ms=100.0),
            dict(row, task="ad", latency_ms=30.0, published_latency_ms=10.0)]
    cal = mlperf.calibrated(rows, on="kws")
    assert cal[0]["latency_calibrated_err"] == pytest.approx(0) and cal[1]["latency_calibrated_err"] == pytest.approx(0.5)
    with pytest.raises(InputError, match="v0.5-tflm"):
        mlperf.published("v9")
    with pytest.raises(InputError, match="reference"):
        mlperf.measure_classes("kws", kernels="fast")


@needs_tools
def test_plugin_profile_accounts_for_every_instruction(tmp_path):
    """profile= (per translated block: address, instructions, executions inside the regions) sums to the count."""
    import subprocess

    from iotsim.firmware.build import marker_addresses
    from iotsim.firmware.qemu import plugin_path, qemu_executable

    elf = _build(tmp_path, "mps2-an386")
    (tmp_path / "in.bin").write_bytes(struct.pack("<ii", 7, 50))
    begin, end = marker_addresses(elf)
    prof, counts = tmp_path / "prof.txt", tmp_path / "counts.txt"
    subprocess.run([qemu_executable(), "-M", "mps2-an386", "-display", "none", "-monitor", "none", "-serial", "null",
                    "-nodefaults", "-semihosting-config", "enable=on,target=native,arg=iotsim,arg=in.bin,arg=out.bin",
                    "-kernel", str(elf), "-plugin",
                    f"{plugin_path()},begin={begin:#x},end={end:#x},out={counts},profile={prof}"],
                   cwd=tmp_path, check=True, capture_output=True, timeout=60)
    total = sum(int(n) for n in counts.read_text().split())
    rows = [line.split() for line in prof.read_text().splitlines()]
    assert sum(int(n) * int(e) for _, n, e in rows) == total
