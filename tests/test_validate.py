"""`iotsim validate`: the quick subset passes, failures exit 1, the markdown and plots are written."""

import json

from typer.testing import CliRunner

from iotsim.cli import app
from iotsim.validation import CHECKS, CheckResult, check_names, run_checks


def test_quick_checks_all_pass():
    v = run_checks(quick=True)
    failed = [(r.check, r.expected, r.measured) for r in v.results if not r.passed]
    assert failed == []
    groups = {r.group for r in v.results}
    assert {"radio", "network", "ledger"} <= groups
    assert len(v.results) >= 40


def test_check_result_verdicts():
    assert CheckResult("g", "abs", 1.0, 1.015, 0.02).passed
    assert not CheckResult("g", "abs", 1.0, 1.03, 0.02).passed
    assert CheckResult("g", "rel", 100.0, 125.0, 0.3, relative=True).passed
    assert not CheckResult("g", "rel", 100.0, 131.0, 0.3, relative=True).passed
    assert not CheckResult("g", "nan", 1.0, float("nan"), 1.0).passed


def test_cli_writes_markdown_and_plots_and_json(tmp_path):
    out = tmp_path / "docs" / "validation.md"
    r = CliRunner().invoke(app, ["validate", "--quick", "--out", str(out), "--only", "pure_aloha", "--only",
                                 "time_on_air"])
    assert r.exit_code == 0, r.output
    text = out.read_text()
    assert "| radio | LoRa time on air" in text and "pure ALOHA delivery, G = 0.5" in text
    assert (tmp_path / "docs" / "validation_aloha.png").stat().st_size > 1000
    r = CliRunner().invoke(app, ["validate", "--quick", "--json", "--only", "time_on_air"])
    rows = json.loads(r.stdout)
    assert len(rows) == 20 and all(row["passed"] for row in rows)


def test_a_failing_check_exits_1(monkeypatch):
    from iotsim.validation import Check

    monkeypatch.setattr("iotsim.validation.CHECKS", CHECKS + [
        Check("broken", True, lambda: ([CheckResult("g", "always wrong", 1.0, 2.0, 0.1)], []))])
    r = CliRunner().invoke(app, ["validate", "--quick", "--only", "broken"])
    assert r.exit_code == 1
    assert "FAIL" in r.stdout


def test_unknown_check_is_an_input_error():
    r = CliRunner().invoke(app, ["validate", "--only", "nonsense"])
    assert r.exit_code == 2
    assert "unknown check" in r.output and "time_on_air" in r.output
    assert "pure_aloha" in check_names()


def test_what_is_known_about_a_failure_is_printed_and_written(monkeypatch, tmp_path):
    from iotsim.validation import Check

    monkeypatch.setattr("iotsim.validation.CHECKS", CHECKS + [
        Check("broken", True, lambda: ([CheckResult("g", "always wrong", 1.0, 2.0, 0.1)], []),
              "the published figure ran other code"),
        Check("fine", True, lambda: ([CheckResult("g", "right", 1.0, 1.0, 0.1)], []), "never shown")])
    out = tmp_path / "v.md"
    r = CliRunner().invoke(app, ["validate", "--quick", "--only", "broken", "--only", "fine", "--out", str(out)])
    assert r.exit_code == 1
    assert "broken fails: the published figure ran other code" in r.stdout and "never shown" not in r.stdout
    text = out.read_text()
    assert "## Why checks fail" in text and "`broken`: the published figure ran other code" in text
    assert "never shown" not in text
