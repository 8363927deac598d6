"""`iotsim models ...`: list, build, stats, compare through the command line."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from iotsim.cli import app
from iotsim.paths import REPO_DIR
from iotsim.tinyml.recipes import ALIASES, RECIPE_MODULES, get_recipe
from iotsim.tinyml.zoo import zoo_cards

runner = CliRunner()


def test_list_shows_every_zoo_model_with_float_and_int8_accuracy():
    res = runner.invoke(app, ["models", "list", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    cards = {c["name"]: c for c in zoo_cards()}
    assert {r["name"] for r in rows} == set(cards)
    for r in rows:
        assert r["float_accuracy"] == cards[r["name"]]["float_accuracy"]
        assert 0.5 < r["int8_accuracy"] < 1.0
    table = runner.invoke(app, ["models", "list"])
    assert table.exit_code == 0
    for name in cards:
        assert name in table.stdout


def test_every_zoo_model_has_a_recipe_and_every_recipe_a_zoo_model():
    assert {c["name"] for c in zoo_cards()} == set(RECIPE_MODULES)
    for name in RECIPE_MODULES:
        assert get_recipe(name).name == name
    for alias, name in ALIASES.items():
        assert get_recipe(alias).name == name


def test_build_unknown_name_is_one_clear_error():
    res = runner.invoke(app, ["models", "build", "nope"])
    assert res.exit_code == 2
    assert "no recipe builds 'nope'" in res.output and "Traceback" not in res.output


def test_stats_and_compare_errors_on_a_corrupt_file(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"garbage" * 10)
    for cmd in (["models", "stats", str(bad)], ["models", "compare", str(bad), "-n", "2"]):
        res = runner.invoke(app, cmd)
        assert res.exit_code == 2, res.output
        assert "bad.tflite" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["models", "stats", str(tmp_path / "missing.tflite")])
    assert res.exit_code == 2 and "not found" in res.output


@pytest.mark.parametrize("name", sorted(RECIPE_MODULES))
def test_stats_agree_with_the_card(name):
    res = runner.invoke(app, ["models", "stats", name, "--json"])
    assert res.exit_code == 0, res.output
    stats = json.loads(res.stdout)
    card = next(c for c in zoo_cards() if c["name"] == name)
    total = stats["totals"]
    assert total["macs"] == pytest.approx(card["macs"], rel=0.05)
    assert total["params"] == pytest.approx(card["params"], rel=0.05)
    assert stats["flash"]["total"] == card["tflite_bytes"]
    assert stats["flash"]["weights"] + stats["flash"]["graph"] == card["tflite_bytes"]
    assert 0 < stats["memory"]["arena_lower_bound"] <= stats["memory"]["arena_plan_bytes"]


def test_compare_reports_every_pair_against_tflm():
    res = runner.invoke(app, ["models", "compare", "farm_soil_int8", "-n", "20", "--inputs", "real", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    text = json.dumps(out)
    assert "tflm" in text and "reference" in text


def test_models_build_small_via_the_cli(tmp_path):
    pytest.importorskip("tensorflow")
    res = subprocess.run(
        [sys.executable, "-m", "iotsim.cli", "models", "build", "farm", "--small", "--quiet", "--out", str(tmp_path)],
        cwd=REPO_DIR, capture_output=True, text=True,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    card = json.loads((tmp_path / "farm_soil_int8.json").read_text())
    assert card["int8_accuracy"] > 0.8 and (tmp_path / "farm_soil_int8.tflite").is_file()
    assert "float accuracy" in res.stdout
