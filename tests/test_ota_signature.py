"""Verifying an update's ECDSA P-256 signature on the node: the firmware's verdicts on the emulated MCU,
the recorded instruction counts, and the time they price to."""

import shutil

import pytest

from iotsim.hardware.profiles import load_profile
from iotsim.ota import signature


def _needs_emulator_and_cryptography():
    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None:
        pytest.skip("needs arm-none-eabi-gcc and qemu-system-arm")
    pytest.importorskip("cryptography")
    if not signature.has_deterministic_ecdsa():
        pytest.skip("needs a cryptography with deterministic ECDSA (RFC 6979) for reproducible vectors")


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("p256")  # one build for the module's tests


def test_p256_verification_on_the_emulated_mcu_takes_the_recorded_counts(work_dir):
    """measure() checks every verdict against cryptography's and keeps the median valid vector's counts:
    they equal those recorded in iotsim.ota.signature, exactly (fixed seeds, deterministic signatures)."""
    _needs_emulator_and_cryptography()
    got = signature.measure(work_dir=work_dir)
    rec = signature.RECORDED["cortex-m4"]
    assert got == rec
    assert rec.instructions_min <= rec.classes["instructions"] <= rec.instructions_max
    assert rec.classes["mul_long"] > 100_000  # the limb products: 64 per field product, thousands of products


def test_valid_signatures_are_accepted_and_corrupted_ones_rejected_on_the_emulated_mcu(work_dir):
    _needs_emulator_and_cryptography()
    cs = signature.cases(3)
    results = signature.run_cases(cs, work_dir=work_dir)
    verdict = {c.name: v for c, (v, _) in zip(cs, results)}
    instructions = {c.name: k["instructions"] for c, (_, k) in zip(cs, results)}
    for c in cs:
        assert verdict[c.name] == signature.cryptography_verdict(c), c.name
    assert all(verdict[f"valid {i}"] for i in range(3)) and verdict["n - s"]
    for name in ("digest", "r", "s", "key", "key off curve", "r = 0", "s = n"):
        assert verdict[name] is False, name
    # a malformed signature or key is turned away before any point arithmetic; a well-formed wrong one is not
    full = instructions["valid 0"]
    for name in ("r = 0", "s = n", "key off curve"):
        assert instructions[name] < 0.02 * full, name
    for name in ("digest", "r", "s", "key"):
        assert instructions[name] > 0.8 * full, name


def test_verify_seconds_is_the_cycle_model_of_the_recorded_counts():
    from iotsim.firmware.cycles import CycleParams, cycles

    mcu = load_profile("mcu", "nrf52840")
    rec = signature.RECORDED["cortex-m4"]
    expected = cycles(rec.classes, CycleParams.from_mapping("cortex-m4", mcu.cycle_model), caches=rec.caches) / 64e6
    assert signature.verify_seconds(mcu) == pytest.approx(expected, rel=1e-12)
    assert 0.01 < signature.verify_seconds(mcu) < 1.0  # tens to hundreds of ms in software at 64 MHz
    assert signature.verify_seconds(load_profile("mcu", "esp32")) is None  # Xtensa: not emulated
