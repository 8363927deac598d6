"""On-device training cost: a dense softmax layer's float32 SGD step on the emulated Cortex-M4, checked
against numpy and DenseHead, its recorded instruction counts, and the time the cycle model gives."""

import shutil

import numpy as np
import pytest

from iotsim.errors import InputError
from iotsim.tinyml import ondevice

needs_arm = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                               reason="needs arm-none-eabi-gcc and qemu-system-arm")


def test_the_numpy_step_is_densehead_local_sgd_in_float32():
    """reference_step (what the firmware is checked against) is local_sgd's one full-batch step of a one-layer
    head, and its gx is the gradient of the mean loss with respect to the input (central differences)."""
    from iotsim.tinyml.federated import DenseHead, local_sgd

    rng = np.random.default_rng(5)
    x, w, b, y, lr = ondevice.random_step(rng, 8, 12, 3)
    w_new, b_new, gx = ondevice.reference_step(x, w, b, y, lr)
    head = DenseHead([w.astype(np.float64)], [b.astype(np.float64)])
    upd = local_sgd(head, x.astype(np.float64), y, learning_rate=float(lr))
    np.testing.assert_allclose(w_new, upd.weights[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b_new, upd.biases[0], rtol=1e-5, atol=1e-6)
    x64, h = x.astype(np.float64), 1e-6
    num = np.zeros_like(x64)
    for idx in np.ndindex(*x64.shape):
        up, down = x64.copy(), x64.copy()
        up[idx] += h
        down[idx] -= h
        num[idx] = (head.loss_and_gradients(up, y)[0] - head.loss_and_gradients(down, y)[0]) / (2 * h)
    np.testing.assert_allclose(gx, num, rtol=1e-4, atol=1e-6)


def test_the_output_check_catches_a_wrong_element():
    rng = np.random.default_rng(1)
    step = ondevice.random_step(rng, 4, 8, 2)
    want = ondevice.reference_step(*step)
    got = np.concatenate([a.ravel() for a in want]).astype("<f4")
    ondevice.check_outputs(got.tobytes(), want, (4, 8, 2))
    got[-1] += 1e-3 * np.abs(want[2]).max()  # gx off by 0.1 % of its scale
    with pytest.raises(InputError, match="gx"):
        ondevice.check_outputs(got.tobytes(), want, (4, 8, 2))


def test_macs_of_a_step_worked_by_hand():
    # 8 samples, 32 -> 2: forward, weight gradient, input gradient 8*32*2 = 512 each; update 32*2 = 64
    assert ondevice.step_macs(8, 32, 2) == 3 * 512 + 64 == 1600


@needs_arm
def test_the_sgd_step_on_the_emulated_mcu_matches_numpy_and_the_recorded_counts(tmp_path):
    """Every output of the firmware's step equals numpy's within RTOL (step_counts checks each), its counts
    are the recorded ones, and the fit predicts a third layer size's instructions within 5 %."""
    got = ondevice.measure(work_dir=tmp_path / "fit")
    rec = ondevice.RECORDED["cortex-m4"]
    assert got.core == rec.core and got.caches == rec.caches
    assert got.per_mac == rec.per_mac and got.fixed == rec.fixed
    assert 6 < rec.per_mac["instructions"] < 12  # two FP loads, VMUL, VADD, pointer steps, loop branch
    (size, counts), = ondevice.step_counts([ondevice.CHECK_SIZE], work_dir=tmp_path / "check").items()
    predicted = rec.counts(ondevice.step_macs(*size))["instructions"]
    assert predicted == pytest.approx(counts["instructions"], rel=0.05)


@needs_arm
def test_a_label_out_of_range_makes_the_step_fail(tmp_path):
    from iotsim.firmware.build import build_elf
    from iotsim.firmware.qemu import EmulatorError, run_qemu

    size = (2, 4, 3)
    elf = build_elf(ondevice._export(tmp_path / "exp", *size), ondevice.BOARD, tmp_path / "build").elf
    x, w, b, y, lr = ondevice.random_step(np.random.default_rng(2), *size)
    n_in, n_out = ondevice._sizes(*size)
    with pytest.raises(EmulatorError, match="returned non-zero"):
        run_qemu(elf, ondevice.BOARD, ondevice._pack(x, w, b, np.array([0, 3]), lr), n_in, n_out, count=False)


def test_training_time_is_fixed_plus_linear_in_macs_at_a_plausible_rate():
    from iotsim.hardware.profiles import load_profile

    mcu = load_profile("mcu", "nrf52840")
    t0 = ondevice.float_mac_seconds(0, mcu)
    t1 = ondevice.float_mac_seconds(1e5, mcu)
    t2 = ondevice.float_mac_seconds(2e5, mcu)
    assert 0 < t0 < t1 < t2
    assert t2 - t1 == pytest.approx(t1 - t0, rel=1e-12)
    per_mac_cycles = (t1 - t0) / 1e5 * mcu.clock_hz
    # Cortex-M4 FPU: VFMA.F32 issues at most one per cycle; the operand loads and the loop add a few
    assert 1 < per_mac_cycles < 20
    assert ondevice.float_mac_seconds(1e5, load_profile("mcu", "esp32")) is None  # Xtensa: not emulated
