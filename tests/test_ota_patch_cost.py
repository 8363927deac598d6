"""Applying a delta update on the node: the detools sequential patcher on the emulated MCU gives detools'
images and the recorded instruction counts, refuses malformed patches, and prices a patch on an MCU."""

import shutil

import pytest

from iotsim.hardware.profiles import load_profile
from iotsim.ota import patch_cost


def _needs_toolchain():
    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None:
        pytest.skip("needs arm-none-eabi-gcc and qemu-system-arm")
    pytest.importorskip("detools", reason="delta updates need the `updates` extra (detools)")


def test_the_patcher_on_the_emulated_mcu_rebuilds_every_image_and_takes_the_recorded_counts(tmp_path):
    """measure() checks every patched image against the new one and detools' apply_patch, byte for byte; the
    fit (exact rationals) reproduces RECORDED to the last bit, and predicts the measured cycles closely."""
    _needs_toolchain()
    got = patch_cost.measure(work_dir=tmp_path)
    rec = patch_cost.RECORDED["cortex-m4"]
    assert set(got.counts) == set(rec) == set(patch_cost.MEASURED)
    for c, counts in got.counts.items():
        assert counts == rec[c]
        assert got.worst_fit_error[c] < 0.10 and abs(got.held_out_error[c]) < 0.10
    assert got.stack_peak_bytes == patch_cost.STACK_BYTES
    hs = rec["heatshrink"]
    # a patch byte (mostly a literal: 9 bits decoded) costs more than an output byte (a copy, or the diff's add)
    assert hs.per_patch_byte["instructions"] > hs.per_output_byte["instructions"] > 0


def test_the_patcher_refuses_malformed_patches(tmp_path):
    """Patches of the right length that are not detools sequential patches, name a compression it does not
    apply, or end inside a size field: iotsim_model_invoke returns non-zero (firmware exit status 4)."""
    _needs_toolchain()
    from iotsim.firmware.qemu import EmulatorError
    from iotsim.ota.delta import create_delta

    old, new = patch_cost.pair("farm->farm head scaled", tmp_path)
    patch = create_delta(old, new, "none")
    good = patch_cost.run_patch(old, [patch], len(new), patch_cost.BOARD, tmp_path, "good")
    assert good.outputs == new
    in_place = bytes([patch[0] | 0x10]) + patch[1:]  # patch type 1: in-place
    lzma = bytes([(patch[0] & 0xF0) | 1]) + patch[1:]  # compression 1: lzma
    cut_size = patch[:-1] + b"\x80"  # the last adjustment size says "more follows", and nothing does
    for bad in (in_place, lzma, cut_size):
        with pytest.raises(EmulatorError, match="status 4"):
            patch_cost.run_patch(old, [bad], len(new), patch_cost.BOARD, tmp_path, "good")


def test_patching_time_grows_with_the_patch_and_the_image_and_needs_a_cycle_model():
    """heatshrink: time grows with output and patch bytes; none: with output bytes only (its patch is its
    output, so the fit cannot tell them apart)."""
    from iotsim.firmware.cycles import CycleParams, cycle_breakdown

    mcu = load_profile("mcu", "nrf52840")
    hs = patch_cost.patch_seconds(7803, 10_672, "heatshrink", mcu)
    assert 0 < hs < patch_cost.patch_seconds(9000, 10_672, "heatshrink", mcu)
    none = patch_cost.patch_seconds(10_684, 10_672, "none", mcu)
    assert 0 < none == patch_cost.patch_seconds(11_000, 10_672, "none", mcu)
    for c in patch_cost.MEASURED:
        t = patch_cost.patch_seconds(7803, 10_672, c, mcu)
        assert t < patch_cost.patch_seconds(7803, 20_000, c, mcu)
        rec = patch_cost.RECORDED["cortex-m4"][c]
        params = CycleParams.from_mapping("cortex-m4", mcu.cycle_model)
        counts = {k: v for k, v in rec.counts(7803, 10_672).items() if k != "instructions"}
        assert t == pytest.approx(cycle_breakdown(counts, params, caches=rec.caches)["total"] / 64e6, rel=1e-12)
    assert patch_cost.patch_seconds(7803, 10_672, "heatshrink", load_profile("mcu", "esp32")) is None  # Xtensa
    assert patch_cost.patch_seconds(7803, 10_672, "lzma", mcu) is None  # not measured
    assert patch_cost.DECODER_RAM_BYTES == 256 + patch_cost.STACK_BYTES
