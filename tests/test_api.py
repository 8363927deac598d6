"""The notebook API: iotsim.run / Result / iotsim.sweep, the README's snippet and docs/example.ipynb.

The API is a layer over the same code as the CLI, so its results and errors are compared with the
CLI's, byte for byte and message for message."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml

import iotsim
from iotsim.errors import InputError
from iotsim.results.tables import events_table, gateways_table, nodes_table, packets_table, summary_table
from iotsim.scenario import load_scenario

REPO = Path(__file__).resolve().parents[1]
FARM = REPO / "scenarios" / "farm.yaml"
SMALL = {"fleet.soil.count": 6, "duration": "6h", "seed": 3}  # as --set fleet.soil.count=6 --set duration=6h ...


def _env() -> dict[str, str]:
    """This checkout first on the path of a child process (it may not be the installed one)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "iotsim.cli", *args], capture_output=True, text=True, env=_env(),
                          cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def small():
    return iotsim.run(FARM, {"fleet.soil.count": 6}, duration="6h", seed=3)


def _without_command(folder: Path, command: str) -> dict[str, bytes]:
    """Every file of a results folder; the manifest and report with the command that made them blanked."""
    files = {p.name: p.read_bytes() for p in sorted(folder.iterdir())}
    files["manifest.json"] = json.dumps({**json.loads(files["manifest.json"]), "command": ""}).encode()
    if "report.html" in files:
        files["report.html"] = files["report.html"].replace(html.escape(command).encode(), b"")
    return files


def test_run_and_write_give_the_files_iotsim_run_writes_with_the_same_overrides(tmp_path, small):
    cli_out, api_out = tmp_path / "cli", tmp_path / "api"
    sets = [a for path, value in SMALL.items() for a in ("--set", f"{path}={value}")]
    proc = _cli("run", str(FARM), *sets, "--out", str(cli_out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert small.write(api_out) == api_out
    cli_command = json.loads((cli_out / "manifest.json").read_text())["command"]
    assert cli_command.startswith("iotsim run ")
    assert small.command == f"iotsim.run({str(FARM)!r}, {{'fleet.soil.count': 6, 'duration': '6h', 'seed': 3}})"
    cli_files, api_files = _without_command(cli_out, cli_command), _without_command(api_out, small.command)
    assert sorted(api_files) == sorted(cli_files)
    assert {"summary.csv", "nodes.parquet", "events.parquet", "packets.parquet", "gateways.csv", "report.html",
            "energy_breakdown.png"} <= set(api_files)
    for name in cli_files:
        assert api_files[name] == cli_files[name], name


def test_result_tables_are_those_of_iotsim_results_tables(small):
    raw = small.raw
    pd.testing.assert_frame_equal(small.nodes, nodes_table(raw))
    pd.testing.assert_frame_equal(small.summary, summary_table(raw))
    pd.testing.assert_frame_equal(small.events, events_table(raw))
    pd.testing.assert_frame_equal(small.packets, packets_table(raw))
    pd.testing.assert_frame_equal(small.gateways, gateways_table(raw))
    assert small.summary is small.summary  # built once
    sc = small.scenario
    assert (sc.fleet[0].count, sc.duration, sc.seed) == (6, 6 * 3600.0, 3)
    assert small.warnings == list(raw.warnings) and small.notes == list(raw.notes)


def test_a_path_a_scenario_and_a_mapping_give_the_same_run(small):
    base = load_scenario(FARM)
    mapping = yaml.safe_load(FARM.read_text())
    for scenario in (str(FARM), base, mapping):
        other = iotsim.run(scenario, {"fleet.soil.count": 6, "duration": "6h"}, seed=3)
        assert other.scenario == small.scenario
        pd.testing.assert_frame_equal(other.summary, small.summary)


def test_the_package_exposes_run_sweep_and_result():
    import iotsim.api
    import iotsim.sweep.execute as execute  # iotsim.sweep is still the package
    from iotsim import Result, run, sweep

    assert run is iotsim.api.run and Result is iotsim.api.Result
    assert sweep is iotsim.sweep and callable(sweep) and sweep.execute is execute and sweep.run_sweep
    with pytest.raises(AttributeError, match="no attribute 'rnu'"):
        iotsim.rnu


def test_a_scenario_object_without_overrides_runs_as_given():
    from iotsim.api import scenario_with

    base = load_scenario(FARM)
    assert scenario_with(base) is base
    assert scenario_with(FARM, {"fleet.soil.count": 7}).fleet[0].count == 7


@pytest.mark.parametrize("overrides, fields", [
    ({"fleet.soil.cuont": 5}, {}),  # no such field
    ({"fleet.orchard.count": 5}, {}),  # no such group
    ({"network.lorawan.sf": 13}, {}),  # out of range
    ({}, {"duration": "a week"}),  # not a duration, by keyword
])
def test_a_bad_override_gives_the_error_iotsim_run_set_gives(tmp_path, overrides, fields):
    assignments = {**overrides, **fields}
    with pytest.raises(InputError) as caught:
        iotsim.run(FARM, overrides, **fields)
    (path, value), = assignments.items()
    assert path in str(caught.value) and f"--set {path}={value}" in str(caught.value)
    proc = _cli("run", str(FARM), "--set", f"{path}={value}", "--out", str(tmp_path / "out"), "--quiet")
    assert proc.returncode == 2
    assert " ".join(f"error: {caught.value}".split()) in " ".join(proc.stderr.split())


def test_other_bad_calls_are_input_errors():
    with pytest.raises(InputError, match="set more than once: duration"):
        iotsim.run(FARM, {"duration": "1d"}, duration="2d")
    with pytest.raises(InputError, match="file path here"):
        iotsim.run("name: x\nduration: 1d\n")
    with pytest.raises(InputError, match="file not found"):
        iotsim.run(REPO / "scenarios" / "no_such.yaml")
    with pytest.raises(InputError, match="not int"):
        iotsim.run(3)


def test_figures_are_the_report_plots(tmp_path, small):
    from iotsim.report.plots import FIGURE_NAMES, _save

    small.write(tmp_path / "out")
    figures = small.figures()
    assert list(figures) == list(FIGURE_NAMES)
    for name, fig in figures.items():
        assert _save(fig, tmp_path / f"{name}.png").read_bytes() == (tmp_path / "out" / f"{name}.png").read_bytes()
    one = small.plot("latency_cdf")
    assert _save(one, tmp_path / "one.png").read_bytes() == (tmp_path / "out" / "latency_cdf.png").read_bytes()
    with pytest.raises(InputError, match="no plot named 'energy'.*energy_breakdown, battery_life"):
        small.plot("energy")


def test_the_result_shows_its_summary(small):
    text = repr(small)
    assert text.startswith("<iotsim Result farm: 6 nodes, 0.25 days, seed 3, 3 policies")
    lines = text.splitlines()
    header = lines[1].split()
    assert header == ["policy", "cloud_offload", "on_device", "cascade"]
    energy = next(line.split() for line in lines if line.startswith("energy_j_per_node_day "))
    expected = small.summary.energy_j_per_node_day
    assert [float(v) for v in energy[1:]] == pytest.approx(expected.tolist(), rel=1e-3)
    page = small._repr_html_()
    assert "<table" in page and "cloud_offload" in page and "energy_j_per_node_day" in page


NO_GUARD = """\
import sys
print("script body ran", flush=True)
import iotsim

scenario = sys.argv[1]
for workers in (2, 1):
    sweep = iotsim.sweep(scenario, {"fleet.soil.count": [4, 6]}, replications=2, duration="3h",
                         out=f"w{workers}", workers=workers, plots=False)
    print("computed", sweep.computed, flush=True)
"""


def test_a_script_without_a_main_guard_sweeps_on_two_workers_as_on_one(tmp_path):
    """Worker processes of spawn and forkserver re-run the parent's main script unless something stops
    them: without a `__main__` guard that started the sweep again in every worker ("Nanny failed to
    start"). The script runs once, and two workers give the bytes one does."""
    script = tmp_path / "sweep_script.py"
    script.write_text(NO_GUARD)
    proc = subprocess.run([sys.executable, str(script), str(FARM)], capture_output=True, text=True, cwd=tmp_path,
                          env=_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("script body ran") == 1, proc.stdout
    assert proc.stdout.count("computed 4") == 2
    for name in ("sweep.parquet", "sweep.csv", "sweep_points.parquet", "sweep_points.csv"):
        assert (tmp_path / "w2" / name).read_bytes() == (tmp_path / "w1" / name).read_bytes(), name


def test_sweep_overrides_are_checked_like_run_overrides(tmp_path):
    with pytest.raises(InputError, match="non-empty list"):
        iotsim.sweep(FARM, {"fleet.soil.count": 5}, out=tmp_path, workers=0)
    with pytest.raises(InputError, match="listed twice"):
        iotsim.sweep(FARM, {"fleet.soil.count": [5, 5]}, out=tmp_path, workers=0)
    with pytest.raises(InputError, match="fleet.soil.cuont"):
        iotsim.sweep(FARM, {"fleet.soil.cuont": [5, 6]}, out=tmp_path, workers=0)
    assert not any(tmp_path.iterdir())


def _readme_python() -> str:
    section = (REPO / "README.md").read_text().split("## In a notebook", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1
    return blocks[0]


def test_the_readme_snippet_runs_as_a_script(tmp_path):
    code = _readme_python()
    assert "__main__" not in code and "iotsim.run(" in code and "iotsim.sweep(" in code
    (tmp_path / "scenarios").symlink_to(REPO / "scenarios")
    script = tmp_path / "snippet.py"
    script.write_text(code + textwrap.dedent("""
        print("points", len(sweep.points), "summary", len(result.summary), type(fig).__name__)
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, env=_env(),
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1].split()
    assert last[0] == "points" and int(last[1]) > 0 and last[2:] == ["summary", "3", "Figure"]
    assert (tmp_path / "results").is_dir()


def test_the_example_notebook_runs(tmp_path):
    nbformat = pytest.importorskip("nbformat", reason="the notebook test needs the dev extras (nbformat)")
    nbclient = pytest.importorskip("nbclient", reason="the notebook test needs the dev extras (nbclient)")
    path = REPO / "docs" / "example.ipynb"
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "commit the notebook without outputs"
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute(env={**_env(), "TMPDIR": str(tmp_path)})  # raises CellExecutionError on any error
    shown = [o for c in code for o in c.outputs if o.output_type in ("execute_result", "display_data")]
    assert any("image/png" in o.data for o in shown), "a figure displays as an image"
    assert any("text/html" in o.data and "energy_j_per_node_day" in o.data["text/html"] for o in shown)
    assert any(p.name.startswith("farm-sweep-") for p in tmp_path.iterdir())  # the sweep wrote there


def test_result_findings_equal_the_written_findings(tmp_path):
    import json

    import iotsim
    from iotsim.results.findings import Findings

    result = iotsim.run(REPO / "scenarios" / "farm.yaml", **{"fleet.soil.count": 12}, duration="12h")
    out = result.write(tmp_path / "r", plots=False, report="none")
    written = Findings.from_dict(json.loads((out / "findings.json").read_text()))
    assert written.lines() == result.findings.lines()
    assert result.findings.comparisons and result.findings.scope
