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
    """Reference kernels: exactly the v0.5 latency's cycle count; optimized: half of it."""
    mlperf_model("results.csv")  # skips without the MLPerf files
    pub = mlperf.published("v0.5-tflm")
    calls = []

    def measure(task, *, kernels="reference", **_):
        calls.append((kernels, task))
        cycles = round(pub[task]["latency_ms"] * 1e-3 * CLOCK_HZ)
        return _alu_only(cycles if kernels == "reference" else cycles // 2)

    monkeypatch.setattr(mlperf, "measure_classes", measure)
    return calls


def test_reproduce_json_rows_and_signed_errors(fake_measurement):
    r = CliRunner().invoke(app, ["reproduce", "mlperf-tiny", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout[r.stdout.index("["):])
    # each (kernel set, task) is measured once, whatever it is compared with
    assert sorted(fake_measurement) == sorted((k, t) for k in ("reference", "optimized") for t in mlperf.TASKS)
    assert [(x["kernels"], x["compared_with"]) for x in rows] == [
        (k, a) for k, a in mlperf_tiny.COMPARISONS for _ in mlperf.TASKS]
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
        if row["kernels"] == "reference":  # built to hit the v0.5 latency
            assert row["latency_err"] == pytest.approx(0, abs=1e-8)
        elif row["compared_with"] == "v0.5-tflm":  # half of it
            assert row["latency_err"] == pytest.approx(-0.5, abs=1e-8)
    # below published on every v0.5 energy: 13.2 mA (datasheet) < 22.5 mA (implied by the rows)
    assert all(x["energy_err"] < 0 for x in rows if x["compared_with"] == "v0.5-tflm")


def test_reproduce_table_names_the_assumptions(fake_measurement):
    r = CliRunner().invoke(app, ["reproduce", "mlperf-tiny"])
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    for needle in ("cmsis-nn", "X-CUBE-AI", "1.8 V", "wait states", "LRU", "P = 2", "Nothing is fitted"):
        assert needle in text
    assert "reference / optimized kernels: kws 2.00x" in text


def test_validate_mlperf_check_verdicts(fake_measurement):
    """Reference rows exactly on the v0.5 latency pass; energies 41 % low fail; optimized vs v1.0 by arithmetic."""
    if checks.mlperf_unavailable():
        pytest.skip(checks.mlperf_unavailable())
    results, figures = checks.mlperf_tiny()
    assert len(results) == 16 and not figures
    assert all(r.relative and r.tolerance == 0.30 for r in results)
    ref_latency = [r for r in results if "reference kernels" in r.check and "latency" in r.check]
    assert len(ref_latency) == 4 and all(r.passed for r in ref_latency)
    for r in results:
        assert r.passed == (abs(r.measured / r.expected - 1) <= 0.30)
        assert ("v0.5 reference" in r.check) == ("reference kernels" in r.check)
        assert ("X-CUBE-AI" in r.check) == ("optimized kernels" in r.check)


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
    by = {(r["kernels"], r["compared_with"], r["task"]): r for r in rows}
    for task in mlperf.TASKS:
        ref, opt = by["reference", "v0.5-tflm", task], by["optimized", "v0.5-tflm", task]
        assert opt["instructions"] < ref["instructions"] and opt["latency_ms"] < ref["latency_ms"]
        # a single-issue core retires at most one instruction per cycle
        assert ref["cycles"] >= ref["instructions"] and opt["cycles"] >= opt["instructions"]
        assert by["optimized", "v1.0-xcube-ai", task]["latency_ms"] == opt["latency_ms"]
        for r in (ref, opt):
            assert r["latency_err"] == pytest.approx(r["latency_ms"] / r["published_latency_ms"] - 1)
