"""Measured inference cost tables and how the simulator uses them (iotsim.firmware.cost, engine.fleet)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest

from iotsim.engine.fleet import inference_cost
from iotsim.firmware import cost
from iotsim.firmware.cycles import COUNTERS, DEFAULT_CACHES, INSN_CLASSES, CycleParams, cycles
from iotsim.hardware.profiles import load_profile
from iotsim.paths import ZOO_DIR
from iotsim.tinyml.runtime import TfliteModel


def _classes(instructions):
    """A made-up class mix adding up to `instructions` (half ALU, a fifth single loads ...)."""
    c = dict.fromkeys(COUNTERS, 0)
    c.update(load=instructions // 5, ldst_pipelined=instructions // 10, mul=instructions // 10,
             branch_only=instructions // 10, branch_taken=instructions // 12, ldst_multiple=10,
             ldst_multiple_regs=50, dcache_misses=1_000, icache_misses=100)
    c["alu"] = instructions - sum(c[k] for k in INSN_CLASSES)
    c["instructions"] = instructions
    return c


def _measured(core="cortex-m4", instructions=1_000_000):
    return cost.MeasuredCost(core=core, board="mps2-an386", instructions_per_inference=instructions,
                             instructions_min=instructions - 10, instructions_max=instructions + 10, vectors=5,
                             bit_exact=True, flash_bytes=20_000, ram_bytes=4_000, compiler="arm-none-eabi-gcc test",
                             classes=_classes(instructions), caches=DEFAULT_CACHES)


@pytest.fixture()
def user_model(tmp_path, monkeypatch):
    """A copy of a zoo model (with its card) outside the zoo, and an empty user cache."""
    monkeypatch.setenv("IOTSIM_CACHE_DIR", str(tmp_path / "cache"))

    shutil.copy(ZOO_DIR / "farm_soil_int8.json", tmp_path / "farm_soil_int8.json")
    # other bytes than the zoo model (trailing padding after the flatbuffer): no zoo table matches
    path = tmp_path / "farm_soil_int8.tflite"
    path.write_bytes((ZOO_DIR / "farm_soil_int8.tflite").read_bytes() + bytes(16))
    return path


def test_record_then_lookup_round_trip_and_sha_guard(user_model):
    sha = cost.file_sha256(user_model)
    assert cost.lookup(user_model, sha, "cortex-m4") is None
    path = cost.record(user_model, sha, _measured())
    assert path == cost.cache_dir() / f"{sha}.json"  # not a zoo model: the user cache
    got = cost.lookup(user_model, sha, "cortex-m4")
    assert got == _measured()
    assert cost.lookup(user_model, sha, "cortex-m33") is None
    # a second core is added, the first kept
    cost.record(user_model, sha, _measured("cortex-m33", 2_000_000))
    table = json.loads(path.read_text())
    assert sorted(table["costs"]) == ["cortex-m33", "cortex-m4"]
    # another model's hash never matches this table
    assert cost.lookup(user_model, "0" * 64, "cortex-m4") is None


def test_damaged_table_is_ignored(user_model):
    sha = cost.file_sha256(user_model)
    cost.cache_dir().mkdir(parents=True)
    (cost.cache_dir() / f"{sha}.json").write_text("{not json")
    assert cost.lookup(user_model, sha, "cortex-m4") is None


def test_a_copy_of_a_zoo_model_finds_the_zoo_measurement(tmp_path, monkeypatch):
    monkeypatch.setenv("IOTSIM_CACHE_DIR", str(tmp_path / "cache"))
    copy = tmp_path / "renamed.tflite"
    shutil.copy(ZOO_DIR / "farm_soil_int8.tflite", copy)
    got = cost.lookup(copy, cost.file_sha256(copy), "cortex-m4")
    table = json.loads(cost.sidecar_path(ZOO_DIR / "farm_soil_int8.tflite").read_text())
    assert got is not None and got.instructions_per_inference == table["costs"]["cortex-m4"]["instructions_per_inference"]


def test_core_aliases():
    assert cost.emulated_core("cortex-m4f") == "cortex-m4"
    assert cost.emulated_core("Cortex-M33") == "cortex-m33"
    assert cost.emulated_core("xtensa-lx6") is None


def test_engine_uses_measured_cost_when_recorded(user_model):
    mcu = load_profile("mcu", "stm32l4r5")
    model = TfliteModel.load(user_model)
    seconds, source = inference_cost(model, mcu)
    assert source.startswith("estimated") and "iotsim firmware verify" in source
    assert seconds == pytest.approx(model.macs * mcu.cycles_per_mac / mcu.clock_hz)

    # recorded for the kernel set the MCU profile runs (optimized by default)
    cost.record(user_model, model.sha256, replace(_measured(instructions=1_234_567), kernels=mcu.kernels))
    seconds, source = inference_cost(model, mcu)
    assert source.startswith("measured: 1,234,567 instructions") and "cortex-m4" in source
    params = CycleParams.from_mapping("cortex-m4", mcu.cycle_model)
    expected = cycles(_classes(1_234_567), params, caches=DEFAULT_CACHES)
    assert seconds == pytest.approx(expected / mcu.clock_hz)
    assert expected > 1_234_567  # loads, taken branches and flash stalls cost more than a cycle


def test_a_format_1_table_without_classes_is_not_used(user_model):
    """Tables written before instruction classes carry no mix to price: the engine estimates instead."""
    model = TfliteModel.load(user_model)
    old = _measured()
    path = cost.record(user_model, model.sha256, old)
    table = json.loads(path.read_text())
    del table["costs"]["cortex-m4"]["classes"], table["costs"]["cortex-m4"]["caches"]
    path.write_text(json.dumps(table))
    assert cost.lookup(user_model, model.sha256, "cortex-m4") is None
    seconds, source = inference_cost(model, load_profile("mcu", "stm32l4r5"))
    assert source.startswith("estimated")


def test_engine_estimates_for_cores_without_emulator(user_model):
    mcu = load_profile("mcu", "esp32")
    model = TfliteModel.load(user_model)
    cost.record(user_model, model.sha256, _measured())
    seconds, source = inference_cost(model, mcu)
    assert source.startswith("estimated") and "no emulated core for xtensa-lx6" in source
