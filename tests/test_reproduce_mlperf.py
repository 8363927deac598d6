"""`iotsim reproduce mlperf-tiny` and the `mlperf` check of `iotsim validate`.

The fast tests replace the QEMU measurement with made-up instruction-class counts (only ALU
instructions and untaken branches: one cycle each, no flash access, so the latency is known in
closed form) and check the rows' keys, the published figures they are compared with and the
signed-error arithmetic. One slow test runs the real thing.
"""

from __future__ import annotations

import csv
import json
import shutil

import pytest
from reference_models import MLPERF_DIR, mlperf_model
from typer.testing import CliRunner

from iotsim.cli import app
from iotsim.firmware import mlperf
from iotsim.firmware.cycles import COUNTERS, DEFAULT_CACHES
from iotsim.hardware.profiles import load_profile
from iotsim.reproduce import mlperf_tiny
from iotsim.validation import checks

KEYS = ("task", "kernels", "board", "latency_ms", "published_latency_ms", "latency_err", "energy_uj",
        "published_energy_uj", "energy_err", "compared_with")
CLOCK_HZ = 120e6


def _alu_only(instructions: int) -> dict:
    c = dict.fromkeys(COUNTERS, 0)
    c.update(instructions=instructions, alu=instructions)
    c["caches"] = DEFAULT_CACHES
    return c


def _published_csv() -> dict[tuple[str, str, str], dict]:
    with open(MLPERF_DIR / "results.csv", newline="") as fh:
        return {(r["round"], r["submitter"], r["task"]): r for r in csv.DictReader(fh)
                if r["board"].upper().replace("_", "-") == "NUCLEO-L4R5ZI"}


@pytest.fixture()
def fake_measurement(monkeypatch):
    """Optimized kernels built -Os: exactly the v0.5 latency's cycle count; built -O2: half of it;
    reference kernels: twice it."""
    mlperf_model("results.csv")  # skips without the MLPerf files
    monkeypatch.delenv("IOTSIM_CMSIS_NN", raising=False)  # the comparisons of a machine without Arm's CMSIS-NN
    pub = mlperf.published("v0.5-tflm")
    calls = []

    def measure(task, *, kernels="reference", build="-O2", **_):
        calls.append((kernels, build, task))
        cycles = round(pub[task]["latency_ms"] * 1e-3 * CLOCK_HZ)
        if kernels == "reference":
            return _alu_only(2 * cycles)
        return _alu_only(cycles if build == "-Os" else cycles // 2)

    monkeypatch.setattr(mlperf, "measure_classes", measure)
    return calls


def test_reproduce_json_rows_and_signed_errors(fake_measurement):
    r = CliRunner().invoke(app, ["reproduce", "mlperf-tiny", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout[r.stdout.index("["):])
    # each (kernel set, build, task) is measured once, whatever it is compared with
    assert sorted(fake_measurement) == sorted((k, b, t) for k, b in (("optimized", "-Os"), ("reference", "-O2"),
                                                                     ("optimized", "-O2")) for t in mlperf.TASKS)
    assert [(x["kernels"], x["build"], x["compared_with"]) for x in rows] == [
        c for c in mlperf_tiny.COMPARISONS for _ in mlperf.TASKS]
    published = _published_csv()
    mcu = load_profile("mcu", "stm32l4r5")
    for row in rows:
        assert all(k in row for k in KEYS) and row["board"] == "NUCLEO-L4R5ZI"
        rnd, submitter = mlperf.PUBLISHED_ROWS[row["compared_with"]]
        src = published[rnd, submitter, row["task"]]
        assert row["published_latency_ms"] == float(src["latency_ms"])
        assert row["published_energy_uj"] == float(src["energy_uJ"])
        # one cycle per ALU instruction: latency = instructions / 120 MHz
        assert row["latency_ms"] == pytest.approx(row["instructions"] / CLOCK_HZ * 1e3)
        assert row["energy_uj"] == pytest.approx(1.8 * mcu.active_current_a * row["latency_ms"] * 1e3)
        # signed fractions: + when ours is above the published figure
        assert row["latency_err"] == pytest.approx((row["latency_ms"] - row["published_latency_ms"])
                                                   / row["published_latency_ms"])
        assert row["energy_err"] == pytest.approx((row["energy_uj"] - row["published_energy_uj"])
                                                  / row["published_energy_uj"])
        assert row["checked"] == ((row["kernels"], row["build"], row["compared_with"]) == ("optimized", "-Os", "v0.5-tflm"))
        if row["checked"]:  # built to hit the v0.5 latency
            assert row["latency_err"] == pytest.approx(0, abs=1e-8)
            # the v0.5 rows imply 22.5-23.0 mA; the profile's current (ST's v1.0 KWS row) is above that
            assert 0.08 < row["energy_err"] < 0.12
        elif row["kernels"] == "reference":
            assert row["latency_err"] == pytest.approx(1.0, abs=1e-8)


def test_run_current_is_the_v1_kws_row_it_cites():
    """The STM32L4R5's run current is energy / latency / supply of ST's v1.0 KWS row, as its source says."""
    mlperf_model("results.csv")
    kws = mlperf.published("v1.0-xcube-ai")["kws"]
    mcu = load_profile("mcu", "stm32l4r5")
    assert mcu.active_current_a * 1e3 == pytest.approx(
        kws["energy_uj"] / kws["latency_ms"] / kws["supply_v"], abs=0.005)
    # and it is not taken from the v0.5 rows validate judges: those imply 22.5-23.0 mA
    for row in mlperf.published("v0.5-tflm").values():
        assert abs(row["energy_uj"] / row["latency_ms"] / row["supply_v"] - mcu.active_current_a * 1e3) > 1.5


def test_reproduce_table_names_the_assumptions(fake_measurement):
    r = CliRunner().invoke(app, ["reproduce", "mlperf-tiny"])
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    for needle in ("cmsis-nn", "X-CUBE-AI", "1.8 V", "wait states", "LRU", "P = 2", "Nothing is fitted"):
        assert needle in text
    assert "reference / optimized kernels (-O2): kws 4.00x" in text
    assert "judged by iotsim validate" in text and "shown, not judged" in text


def test_validate_mlperf_check_verdicts(fake_measurement):
    """Only the like-for-like rows are judged: CMSIS-NN-style kernels built -Os against v0.5; on the v0.5
    latency exactly, they pass, and the energies (the v1.0 KWS current, 8-11 % above those rows') too."""
    if checks.mlperf_unavailable():
        pytest.skip(checks.mlperf_unavailable())
    results, figures = checks.mlperf_tiny()
    assert len(results) == 8 and not figures
    assert all(r.relative and r.tolerance == 0.30 for r in results)
    for r in results:
        assert "optimized kernels (-Os) vs v0.5 reference" in r.check
        assert r.passed == (abs(r.measured / r.expected - 1) <= 0.30)
    assert all(r.passed for r in results)


def test_validate_mlperf_check_fails_when_a_latency_is_off(fake_measurement, monkeypatch):
    """A prediction 31 % off the published latency fails the check (the verdict is not fixed)."""
    if checks.mlperf_unavailable():
        pytest.skip(checks.mlperf_unavailable())
    pub = mlperf.published("v0.5-tflm")

    def measure(task, *, kernels="reference", build="-O2", **_):
        cycles = pub[task]["latency_ms"] * 1e-3 * CLOCK_HZ * (0.69 if task == "ic" else 1.0)
        return _alu_only(round(cycles))

    monkeypatch.setattr(mlperf, "measure_classes", measure)
    results, _ = checks.mlperf_tiny()
    failed = [r.check for r in results if not r.passed]
    assert failed == [next(r.check for r in results if "ic latency" in r.check)]


def test_with_cmsis_nn_at_hand_its_rows_come_first_and_are_the_ones_judged(fake_measurement, monkeypatch):
    """Where $IOTSIM_CMSIS_NN names Arm's CMSIS-NN, the cmsis-nn kernels built -Os are measured too, compared
    with the v0.5 rows (the library those rows ran) and judged; our optimized kernels are then shown only."""
    monkeypatch.setattr(mlperf_tiny, "cmsis_nn_at_hand", lambda: True)
    rows = mlperf_tiny.rows_from(mlperf_tiny.measure(progress=None))
    assert ("cmsis-nn", "-Os", "kws") in fake_measurement
    keys = list(dict.fromkeys((r["kernels"], r["build"], r["compared_with"]) for r in rows))
    assert keys == [("cmsis-nn", "-Os", "v0.5-tflm"), *mlperf_tiny.COMPARISONS]
    assert [r["task"] for r in rows if r["checked"]] == list(mlperf.TASKS)
    assert all(r["kernels"] == "cmsis-nn" for r in rows if r["checked"])
    notes = " ".join(mlperf_tiny._notes(rows))
    assert "cmsis-nn kernels (-Os) vs v0.5-tflm" in notes and "(judged by iotsim validate)" in notes
    assert notes.count("judged by iotsim validate") == 1
    # without it, the optimized kernels built -Os are the judged ones (the fixture's default)
    monkeypatch.setattr(mlperf_tiny, "cmsis_nn_at_hand", lambda: False)
    rows = mlperf_tiny.rows_from(mlperf_tiny.measure(progress=None))
    assert {(r["kernels"], r["build"]) for r in rows if r["checked"]} == {("optimized", "-Os")}
    assert any("cmsis-nn kernels: not measured" in n for n in mlperf_tiny._notes(rows))


def test_a_cmsis_nn_variable_that_names_no_tree_is_an_error(tmp_path, monkeypatch):
    """Set but wrong is not "not at hand": the user asked for Arm's code, so the reproduction says what is missing."""
    from iotsim.firmware.build import FirmwareBuildError

    monkeypatch.setenv("IOTSIM_CMSIS_NN", str(tmp_path))
    with pytest.raises(FirmwareBuildError, match="arm_nnfunctions.h"):
        mlperf_tiny.comparisons()
    monkeypatch.delenv("IOTSIM_CMSIS_NN")
    assert mlperf_tiny.comparisons() == mlperf_tiny.COMPARISONS


def test_validate_mlperf_check_skips_without_the_files(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("IOTSIM_MLPERF_DIR", str(tmp_path))

    def never(*a, **k):
        raise AssertionError("measured without the MLPerf files")

    monkeypatch.setattr(mlperf, "measure_classes", never)
    assert checks.mlperf_tiny() == ([], [])
    assert "mlperf skipped" in capsys.readouterr().err and str(tmp_path) in checks.mlperf_unavailable()


def test_validate_mlperf_check_skips_without_qemu(monkeypatch, capsys):
    mlperf_model("results.csv")
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "qemu-system-arm" else real_which(name))
    assert checks.mlperf_tiny() == ([], [])
    assert "qemu-system-arm not installed" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                    reason="needs Debian's gcc-arm-none-eabi, libnewlib-arm-none-eabi and qemu-system-arm")
def test_reproduce_mlperf_tiny_for_real():
    mlperf_model("results.csv")
    rows = mlperf_tiny.reproduce(progress=None).rows
    assert len(rows) == 12
    by = {(r["kernels"], r["build"], r["task"]): r for r in rows}
    for task in mlperf.TASKS:
        ref, opt, opt_os = by["reference", "-O2", task], by["optimized", "-O2", task], by["optimized", "-Os", task]
        assert opt["instructions"] < ref["instructions"] and opt["latency_ms"] < ref["latency_ms"]
        # -Os trades speed for size: more instructions than -O2, fewer than the reference kernels
        assert opt["instructions"] < opt_os["instructions"] < ref["instructions"]
        # a single-issue core retires at most one instruction per cycle
        for r in (ref, opt, opt_os):
            assert r["cycles"] >= r["instructions"]
        assert opt["compared_with"] == "v1.0-xcube-ai" and opt_os["compared_with"] == "v0.5-tflm"
        for r in (ref, opt, opt_os):
            assert r["latency_err"] == pytest.approx(r["latency_ms"] / r["published_latency_ms"] - 1)
