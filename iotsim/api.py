"""The notebook and script API: `iotsim.run(...) -> Result` and `iotsim.sweep(...) -> SweepResult`.

    import iotsim
    result = iotsim.run("scenarios/farm.yaml", {"fleet.soil.count": 20}, duration="1d")
    result.summary                       # pandas DataFrame, one row per policy and fleet group
    result.plot("energy_breakdown")      # matplotlib Figure
    result.write("results/farm-small")   # the folder `iotsim run` writes

A scenario is a file path (str or Path), a validated `Scenario` or a mapping of its fields (what a
YAML file holds). Overrides are the CLI's `--set`: a mapping of dotted paths to values, and/or keyword
arguments for top-level fields (`duration="1d"`, `seed=3`); they go through the same code
(`iotsim.sweep.overrides.apply_overrides`), so they are validated like a scenario file and a bad one
raises the same `InputError`, naming the same path.
"""

from __future__ import annotations

import functools
import html
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from iotsim.errors import InputError
from iotsim.scenario.model import Scenario
from iotsim.scenario.yaml_source import YamlDocument, read_yaml
from iotsim.sweep.overrides import Override, apply_overrides

ScenarioLike = "str | Path | Scenario | Mapping[str, Any]"


def _document(scenario: Any) -> YamlDocument:
    """The scenario as a document `apply_overrides` takes (errors name the file and line where there is one)."""
    if isinstance(scenario, Scenario):
        return YamlDocument(scenario.model_dump(mode="json"), None, f"scenario '{scenario.name}'")
    if isinstance(scenario, Mapping):
        return YamlDocument(dict(scenario), None, "scenario (mapping)")
    if isinstance(scenario, (str, Path)):
        if isinstance(scenario, str) and "\n" in scenario:
            raise InputError("a scenario given as text is a file path here; for YAML text pass "
                             "yaml.safe_load(text), a mapping of the scenario's fields")
        return read_yaml(scenario)
    raise InputError(f"a scenario is a file path, a Scenario or a mapping of its fields, not {type(scenario).__name__}")


def _assignments(overrides: Mapping[str, Any] | None, fields: Mapping[str, Any]) -> list[tuple[str, Any]]:
    merged: dict[str, Any] = {}
    for source in (overrides or {}), fields:
        for path, value in source.items():
            if path in merged:
                raise InputError(f"a field is set more than once: {path}")
            merged[str(path)] = value
    return list(merged.items())


def scenario_with(scenario: Any, overrides: Mapping[str, Any] | None = None, /, **fields: Any) -> Scenario:
    """The validated scenario with the overrides set (what `run` simulates)."""
    assignments = _assignments(overrides, fields)
    if isinstance(scenario, Scenario) and not assignments:
        return scenario
    return apply_overrides(_document(scenario), assignments)


def _call_text(func: str, scenario: Any, assignments: list[tuple[str, Any]]) -> str:
    """How the run was asked for, for the manifest's `command`."""
    shown = str(scenario) if isinstance(scenario, (str, Path)) else "<scenario>"
    args = [repr(shown)] + ([repr(dict(assignments))] if assignments else [])
    return f"iotsim.{func}({', '.join(args)})"


def run(scenario: Any, overrides: Mapping[str, Any] | None = None, /, **fields: Any) -> "Result":
    """Simulate every policy of `scenario` (a path, a `Scenario` or a mapping) with the overrides set.

    `overrides` maps dotted paths to values (`{"fleet.soil.count": 20}`, as `iotsim run --set`);
    keyword arguments set top-level fields (`duration="1d"`, `seed=3`). Raises `InputError` on bad input.
    """
    from iotsim.engine import run_scenario

    assignments = _assignments(overrides, fields)
    sc = scenario_with(scenario, dict(assignments))
    return Result(run_scenario(sc), command=_call_text("run", scenario, assignments))


class Result:
    """One run: its tables as pandas DataFrames (built on first use), figures, warnings, notes.

    `raw` is the engine's `RunResult`; the tables are those of `iotsim.results.tables`, and
    `write()` writes the folder `iotsim run` writes."""

    def __init__(self, raw, command: str | None = None):
        self.raw = raw
        self.command = command

    @property
    def scenario(self) -> Scenario:
        return self.raw.scenario

    @property
    def warnings(self) -> list[str]:
        return list(self.raw.warnings)

    @property
    def notes(self) -> list[str]:
        """Methodology notes (as in the report)."""
        return list(self.raw.notes)

    @property
    def wall_s(self) -> float:
        return self.raw.wall_s

    @functools.cached_property
    def nodes(self) -> pd.DataFrame:
        """One row per node and policy (nodes.parquet)."""
        from iotsim.results.tables import nodes_table

        return nodes_table(self.raw)

    @functools.cached_property
    def summary(self) -> pd.DataFrame:
        """One row per policy and fleet group, every metric (summary.csv)."""
        from iotsim.results.tables import summary_table

        return summary_table(self.raw, self.nodes)

    @functools.cached_property
    def events(self) -> pd.DataFrame:
        """One row per ground-truth event and policy (events.parquet)."""
        from iotsim.results.tables import events_table

        return events_table(self.raw)

    @functools.cached_property
    def packets(self) -> pd.DataFrame:
        """One row per frame (packets.parquet)."""
        from iotsim.results.tables import packets_table

        if self.raw.packets_path is not None:  # a run in time chunks streamed it to disk
            return pd.read_parquet(self.raw.packets_path)
        return packets_table(self.raw)

    @functools.cached_property
    def findings(self):
        """Best policy per metric with paired 95 % intervals, energy explanations and flags
        (iotsim.results.findings.Findings; `print(*result.findings.lines(), sep="\n")`)."""
        from iotsim.results.findings import run_findings

        return run_findings(self.raw, self.summary, self.nodes)

    @functools.cached_property
    def gateways(self) -> pd.DataFrame | None:
        """LoRaWAN: one row per policy and gateway (gateways.csv); None for other technologies."""
        from iotsim.results.tables import gateways_table

        return gateways_table(self.raw) if self.raw.technology == "lorawan" else None

    def figures(self, names: Sequence[str] | None = None) -> dict[str, Any]:
        """The report's plots as matplotlib Figures by name (all of `FIGURE_NAMES` by default)."""
        from iotsim.report.plots import FIGURE_NAMES, figures

        names = tuple(FIGURE_NAMES if names is None else names)
        unknown = [n for n in names if n not in FIGURE_NAMES]
        if unknown:
            raise InputError(f"no plot named {', '.join(map(repr, unknown))} (plots: {', '.join(FIGURE_NAMES)})")
        _show_figures_in_ipython()
        return figures(self.summary, self.nodes, self.events, self._plot_packets(), names)

    def plot(self, name: str):
        """One of the report's plots as a matplotlib Figure: energy_breakdown, battery_life,
        latency_cdf or bytes_on_air."""
        return self.figures([name])[name]

    def _plot_packets(self) -> pd.DataFrame:
        """What the plots read of the packets table: its rows counted per (policy, group, fate)."""
        from iotsim.results.tables import packet_counts

        return packet_counts(self.raw)

    def write(self, out_dir: str | Path | None = None, *, plots: bool | None = None, report: bool | None = None,
              packets: bool | None = None) -> Path:
        """Write the results folder `iotsim run` writes (default: the scenario's `outputs.dir`), atomically.
        `plots`, `report` and `packets` default to the scenario's `outputs`."""
        from iotsim.results.writer import write_results

        return write_results(self.raw, Path(out_dir) if out_dir is not None else Path(self.scenario.outputs.dir),
                             command=self.command, plots=plots, report=report, packets=packets)

    # ------------------------------------------------------------------ display

    def _headline(self) -> str:
        sc = self.scenario
        return (f"{sc.name}: {self.raw.n_nodes:,} nodes, {sc.duration / 86400:g} days, seed {sc.seed}, "
                f"{len(self.raw.outcomes)} policies, simulated in {self.wall_s:.1f} s")

    def _metrics_by_policy(self) -> pd.DataFrame:
        """The summary with metrics as rows and (policy[, group]) as columns: narrow enough to read."""
        s = self.summary
        label = s["policy"] if s["group"].nunique() == 1 else s["policy"] + " / " + s["group"]
        return s.drop(columns=["policy", "group"]).set_axis(label, axis=0).T

    def __repr__(self) -> str:
        lines = [f"<iotsim Result {self._headline()}>"]
        lines += [f"warning: {w}" for w in self.warnings]
        with pd.option_context("display.width", 120, "display.max_rows", 200, "display.float_format", "{:.4g}".format):
            lines.append(self._metrics_by_policy().to_string())
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        parts = [f"<p><b>iotsim result</b> {html.escape(self._headline())}</p>"]
        parts += [f"<p><b>warning:</b> {html.escape(w)}</p>" for w in self.warnings]
        parts.append(self._metrics_by_policy().to_html(float_format="{:.4g}".format, na_rep="n/a"))
        return "\n".join(parts)


def _show_figures_in_ipython() -> None:
    """In IPython (a notebook), display a matplotlib Figure as a PNG, as `%matplotlib inline` does.

    The report's figures are never registered with pyplot (iotsim.report.plots), so unless the user
    imported pyplot IPython would show them as text ("Figure(800x480)")."""
    import sys

    if "IPython" not in sys.modules:
        return
    from IPython import get_ipython

    shell = get_ipython()
    png = shell.display_formatter.formatters.get("image/png") if shell is not None else None
    if png is None:
        return
    from IPython.core.pylabtools import print_figure
    from matplotlib.figure import Figure

    try:
        png.lookup_by_type(Figure)
    except KeyError:  # nothing displays Figures yet
        png.for_type(Figure, lambda fig: print_figure(fig, "png", bbox_inches="tight"))


def sweep(scenario: Any, grid: Mapping[str, Sequence[Any]], /, *, out: str | Path, replications: int = 1,
          workers: int | None = None, scheduler: str | None = None, plots: bool = True,
          cache_dir: str | Path | None = None, overrides: Mapping[str, Any] | None = None, **fields: Any):
    """Run the grid of `grid` (dotted path -> values to try, as `iotsim sweep --set PATH=V1,V2`) with
    `replications` seeds per point, writing the sweep folder into `out`; returns the `SweepResult`
    (`.runs`, `.points`: mean and 95 % CI per grid point, policy, group and metric).

    `overrides` and keyword arguments fix other fields for every run (as `run`'s). Runs execute on a
    local Dask cluster of `workers` processes (default: one per core; 0: in this process) or on
    `scheduler` ("tcp://HOST:PORT"); no `if __name__ == "__main__":` guard is needed."""
    from iotsim.sweep.execute import Executor
    from iotsim.sweep.grid import plan_sweep
    from iotsim.sweep.study import run_sweep

    options = []
    for path, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise InputError(f"give a non-empty list of values to try, not {values!r}", field=str(path))
        if len(set(map(repr, values))) != len(values):
            raise InputError("a value is listed twice", field=str(path))
        options.append(Override(str(path), tuple(values)))
    fixed = _assignments(overrides, fields)
    doc = _document(scenario)
    plan = plan_sweep(doc, options, replications, fixed=fixed)
    command = _call_text("sweep", scenario, [*fixed, *((o.path, list(o.values)) for o in options)])
    with Executor(workers=workers, scheduler=scheduler) as executor:
        return run_sweep(plan, out, executor=executor, cache_dir=cache_dir, plots=plots, command=command)


__all__ = ["Result", "run", "scenario_with", "sweep"]
