"""The `iotsim` command: a thin layer over the library (parse arguments, call, print)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from iotsim.errors import InputError

class _App(typer.Typer):
    """The command app: bad input exits 2 with one message (`_fail`); anything else is a bug, which
    exits 1 with one line naming the file that holds the full traceback."""

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - every exception that is not bad input is a bug
            _report_bug(exc)


def _report_bug(exc: BaseException) -> None:
    import tempfile
    import time
    import traceback

    text = "".join(traceback.format_exception(exc))
    header = f"iotsim {_version()} crashed on: {' '.join(['iotsim', *sys.argv[1:]])}\n\n"
    try:
        fd, path = tempfile.mkstemp(prefix=time.strftime("iotsim-bug-%Y%m%d-%H%M%S-"), suffix=".txt")
        with open(fd, "w") as fh:
            fh.write(header + text)
        where = f"the full traceback is in {path}"
    except OSError:
        where = "the full traceback follows"
        sys.stderr.write(text)
    err_console.print(f"[bold red]bug:[/] {type(exc).__name__}: {exc}", highlight=False, soft_wrap=True)
    err_console.print(f"This is a bug in iotsim, not a problem with your input; {where}. Please report it "
                      "with that file.", highlight=False, soft_wrap=True)
    sys.exit(1)


def _version() -> str:
    try:
        from iotsim import __version__

        return __version__
    except ImportError:  # pragma: no cover
        return "(unknown version)"


app = _App(add_completion=False, pretty_exceptions_show_locals=False, no_args_is_help=True, help="Simulate IoT sensor fleets: cloud offload vs "
                  "on-device TinyML, with real int8 models, radio airtime and an exact energy ledger.")
# wide enough for the summary table even when output is piped
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)


def _fail(exc: InputError) -> None:
    err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@app.command()
def run(
    scenario: Path = typer.Argument(..., help="scenario YAML file, e.g. scenarios/farm.yaml"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="results folder (default: the scenario's outputs.dir)"),
    seed: Optional[int] = typer.Option(None, help="override the scenario's seed"),
    sets: Optional[list[str]] = typer.Option(
        None, "--set", help="PATH=VALUE: set a scenario field by dotted path, validated like the file "
        "(e.g. --set network.lorawan.confirmed=true); repeatable"),
    no_plots: bool = typer.Option(False, "--no-plots", help="skip PNG plots and the HTML report"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
) -> None:
    """Run every policy of a scenario on the same fleet and write tables, plots and a report."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from iotsim.engine import run_scenario
    from iotsim.results import write_results
    from iotsim.scenario import load_scenario

    try:
        if sets:
            from iotsim.scenario.yaml_source import read_yaml
            from iotsim.sweep.overrides import apply_overrides, parse_set

            overrides = [parse_set(text, single=True) for text in sets]
            sc = apply_overrides(read_yaml(scenario), [(o.path, o.values[0]) for o in overrides])
        else:
            sc = load_scenario(scenario)
        if seed is not None:
            sc = sc.model_copy(update={"seed": seed})
        out_dir = out or Path(sc.outputs.dir)
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                      TimeElapsedColumn(), console=err_console, disable=quiet, transient=True) as bar:
            tasks: dict[str, int] = {}

            def progress(phase: str, done: float, total: float) -> None:
                if phase not in tasks:
                    tasks[phase] = bar.add_task(phase, total=max(total, 1))
                bar.update(tasks[phase], completed=done, total=max(total, 1))

            result = run_scenario(sc, progress=progress)
            write_results(result, out_dir, command=" ".join(["iotsim", *sys.argv[1:]]),
                          plots=False if no_plots else None, report=False if no_plots else None,
                          progress=lambda step, done, total: progress(f"writing {step}", done, total))
    except InputError as exc:
        _fail(exc)
    from iotsim.results.tables import summary_table

    for warning in result.warnings:
        err_console.print(f"[bold yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    _print_summary(summary_table(result), sc.name, result.n_nodes, sc.duration, result.wall_s)
    if result.updates:
        _print_updates(result)
    if result.federated:
        _print_federated(result)
    _print_findings(out_dir)
    console.print(f"results: {out_dir}/ ({_written(out_dir)})", highlight=False, soft_wrap=True)


def _print_updates(result) -> None:
    """One line per model update: what it carried, how it went out, how fast the fleet took it."""
    from iotsim.results.tables import updates_table

    def dur(s: float) -> str:
        if math.isnan(s):
            return "never"
        return f"{s:.3g} s" if s < 120 else (f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h")

    per_policy = any(o.updates is not None for o in result.outcomes)  # class A unicast: each policy its own
    pairs = [(u, o.policy.name) for o in result.outcomes for u in result.updates_of(o)]
    for (u, policy), row in zip(pairs, updates_table(result).itertuples()):
        if not per_policy and policy != result.outcomes[0].policy.name:
            continue
        console.print(
            (f"{policy}: " if per_policy else "")
            + f"update {row.update} ({row.model}, {row.mode}, {row.payload_bytes:,} B of a {row.model_bytes:,} B model): "
            f"{u.session.describe()}; {row.nodes_updated:,} of {row.nodes:,} nodes updated ({row.nodes_skipped:,} left "
            "out" + (f", {row.nodes_rolled_back:,} rolled back" if row.nodes_rolled_back else "")
            + f"); 50 % after {dur(row.time_to_50pct_s)}, 95 % after {dur(row.time_to_95pct_s)}; "
            f"receiving {row.listen_energy_j_per_node:.3g} J per node"
            + ("" if math.isnan(row.unicast_poll_energy_j_per_node) else
               f" (and {row.unicast_poll_energy_j_per_node:.3g} J of unicast polls)")
            + ", applying (flash, integrity check) "
            f"{row.apply_s_per_updated_node:.2g} s and {row.apply_energy_j_per_updated_node * 1e3:.3g} mJ per node "
            "applying it "
            "(updates.csv)", highlight=False, soft_wrap=True)


def _print_federated(result) -> None:
    """One line per policy: the rounds' updates on time and the groups' model accuracy, first to last."""
    from iotsim.results.tables import federated_table

    table = federated_table(result)
    for policy, rows in table.groupby("policy", sort=False):
        rounds = rows[rows["round"] >= 0]
        acc = " -> ".join(f"{a:.3f}" for a in rows["accuracy"])
        console.print(
            f"federated ({policy}): {len(rounds)} round(s), updates on time {int(rounds.updates_on_time.sum()):,} of "
            f"{int(rounds.participants.sum()):,}, {int(rounds.pushed.sum())} pushed; held-out accuracy {acc} "
            "(federated.csv)", highlight=False, soft_wrap=True)


def _written(folder: Path) -> str:
    """What the results folder holds (the writer replaced it whole, so this is what it wrote)."""
    names = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    plots = [n for n in names if n.endswith(".png")]
    listed = [n for n in names if not n.endswith(".png")]
    return ", ".join(listed + ([f"{len(plots)} plot{'s' if len(plots) != 1 else ''}"] if plots else []))


def _run_progress(quiet: bool):
    """A rich progress bar for runs: done / to compute, elapsed and ETA (cached runs are not timed)."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("ETA"), TimeRemainingColumn(), console=err_console, disable=quiet, transient=True)
    state: dict = {}

    def progress(done: int, total: int, cached: int) -> None:
        if "task" not in state:
            label = f"runs ({cached} of {total} cached)" if cached else "runs"
            state["task"] = bar.add_task(label, total=max(total - cached, 1))
        bar.update(state["task"], completed=done - cached)

    return bar, progress


SWEEP_COLUMNS = [("energy_j_per_node_day", "J/node/day"), ("battery_life_days", "battery (d)"),
                 ("message_delivery_ratio", "msgs delivered"), ("latency_p50_s", "lat p50 (s)"),
                 ("recall", "recall")]


def _print_points(points, params: list[str], title: str) -> None:
    table = Table(title=title)
    for p in params:
        table.add_column(p, justify="right")
    table.add_column("policy")
    table.add_column("group")
    for _, header in SWEEP_COLUMNS:
        table.add_column(f"{header} (mean [95 % CI])", justify="right")
    # the interval's bounds as sweep_points holds them: clipped to the metric's range (counts >= 0, ratios <= 1)
    wide = points.pivot_table(index=["point", "policy", "group"], columns="metric",
                              values=["mean", "ci95_low", "ci95_high"], sort=False, dropna=False)
    first = points.drop_duplicates(["point", "policy", "group"]).set_index(["point", "policy", "group"])
    for index in wide.index:
        cells = [_fmt(first.loc[index, p]) for p in params] + [index[1], index[2]]
        for metric, _ in SWEEP_COLUMNS:
            mean = wide.loc[index, ("mean", metric)]
            low, high = wide.loc[index, ("ci95_low", metric)], wide.loc[index, ("ci95_high", metric)]
            bounds = "" if math.isnan(low) or math.isnan(high) else f" [{_fmt(low, 2)}, {_fmt(high, 2)}]"
            cells.append(_fmt(mean) + bounds)
        table.add_row(*cells)
    console.print(table)


@app.command()
def sweep(
    scenario: Path = typer.Argument(..., help="scenario YAML file"),
    set_: list[str] = typer.Option(..., "--set", help="PATH=V1,V2,...: values to try for a scenario field, e.g. "
                                   "fleet.soil.count=100,200 (repeat for a grid; one value fixes the field)"),
    replications: int = typer.Option(1, "--replications", "-r", min=1, help="seeds per grid point (seed, seed+1, ...)"),
    out: Path = typer.Option(..., "--out", "-o", help="sweep folder (tables, plots, manifest, run cache)"),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", min=0,
                                          help="local Dask worker processes (default: the core count; 0: this process)"),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="run on an existing Dask cluster, tcp://HOST:PORT"),
    cache: Optional[Path] = typer.Option(None, "--cache", help="result cache folder (default: OUT/runs)"),
    no_plots: bool = typer.Option(False, "--no-plots", help="skip the plots"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
) -> None:
    """Run a scenario over a grid of overrides x replications (cached, resumable, on Dask); write tables
    with mean and 95 % CI per grid point, and plots."""
    from iotsim.sweep import Executor, RunCache, parse_set, plan_sweep, run_sweep

    try:
        overrides = [parse_set(s) for s in set_]
        # a field given one value is fixed for the whole sweep (recorded in sweep.json), not a grid axis
        plan = plan_sweep(scenario, [o for o in overrides if len(o.values) > 1], replications,
                          fixed=[(o.path, o.values[0]) for o in overrides if len(o.values) == 1])
        err_console.print(f"{plan.n_runs} runs: {len(plan.points)} grid point(s) x {replications} replication(s)",
                          highlight=False)
        bar, progress = _run_progress(quiet)
        with bar, Executor(workers, scheduler) as executor:
            result = run_sweep(plan, out, executor=executor, cache_dir=cache, plots=not no_plots, progress=progress,
                               command=" ".join(["iotsim", *sys.argv[1:]]))
    except InputError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        kept = RunCache(cache if cache is not None else out / "runs")
        done = sum(1 for key in {s.key for _, _, s in plan.runs} if key in kept)
        err_console.print(f"interrupted: {done} of {plan.n_runs} runs are finished and kept in {kept.root}/; "
                          "run the same command to resume", highlight=False, soft_wrap=True)
        raise typer.Exit(130)
    for warning in result.warnings:
        err_console.print(f"[bold yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    _print_points(result.points, plan.params,
                  f"{plan.base.name}: {plan.n_runs} runs, {result.computed} computed and {result.cached} cached, "
                  f"{result.wall_s:.1f} s on {executor.description}")
    _print_findings(out)
    console.print(f"results: {out}/ ({_written(out)})", highlight=False, soft_wrap=True)


def _parse_range(text: Optional[str]) -> tuple[Optional[float], Optional[float]]:
    if text is None:
        return None, None
    lo, sep, hi = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return (float(lo) if lo.strip() else None), (float(hi) if hi.strip() else None)
    except ValueError:
        raise InputError("expected LO:HI (either may be empty), e.g. 10:5000", where=f"--range {text}") from None


def _probe_table(result) -> Table:
    table = Table(title="probes (mean over replications ± 95 % CI; judged on the mean)")
    table.add_column(result.path, justify="right")
    table.add_column("meets", justify="center")
    keys = list(result.probes[0].stats) if result.probes else []
    several = len({g for _, g in keys}) > 1
    for metric, group in keys:
        table.add_column(f"{metric} ({group})" if several else metric, justify="right")
    table.add_column("runs (cached)", justify="right")
    for probe in sorted(result.probes, key=lambda p: p.value):
        cells = [_fmt(probe.value), "yes" if probe.feasible else "no"]
        for key in keys:
            n, mean, half = probe.stats[key]
            cells.append(_fmt(mean, 5) + ("" if math.isnan(half) else f" ± {_fmt(half, 2)}"))
        cells.append(f"{probe.runs} ({probe.cached})")
        table.add_row(*cells)
    return table


@app.command()
def size(
    scenario: Path = typer.Argument(..., help="scenario YAML file"),
    vary: str = typer.Option(..., "--vary", help="the field to size, e.g. fleet.soil.count"),
    constraint: list[str] = typer.Option(..., "--constraint", "-c", help="METRIC>=X (or <=, >, <) on a summary "
                                         "metric, e.g. message_delivery_ratio>=0.99; repeat for several"),
    policy: str = typer.Option(..., "--policy", "-p", help="the policy the constraints apply to"),
    smallest: bool = typer.Option(False, "--smallest", help="find the smallest value that meets them (default: largest)"),
    group: Optional[str] = typer.Option(None, "--group", help="judge one fleet group (default: every group)"),
    value_range: Optional[str] = typer.Option(None, "--range", help="LO:HI bounds of the search (default: the field's)"),
    start: Optional[float] = typer.Option(None, "--start", help="first probe (default: the scenario's value)"),
    step: Optional[float] = typer.Option(None, "--step", help="first galloping step (default: half the start)"),
    resolution: Optional[float] = typer.Option(None, "--resolution", help="real fields: stop when the bracket is "
                                               "this narrow (default: 1 % of the start)"),
    replications: int = typer.Option(3, "--replications", "-r", min=1, help="seeds per probe"),
    set_: list[str] = typer.Option([], "--set", help="PATH=VALUE: fix another field for the whole search"),
    max_probes: int = typer.Option(40, "--max-probes", min=1),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="write size.csv and size.json here"),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", min=0,
                                          help="local Dask worker processes (default: the core count; 0: this process)"),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="run on an existing Dask cluster, tcp://HOST:PORT"),
    cache: Optional[Path] = typer.Option(None, "--cache", help="result cache (default: OUT/runs, else the user cache)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no line per probe"),
) -> None:
    """Find the largest (or smallest) value of one field that meets every constraint: galloping then
    bisection, replications at each probe; prints the answer with the probes that support it."""
    from iotsim.sweep import Executor, RunCache, parse_set
    from iotsim.sweep.cache import user_run_cache
    from iotsim.sweep.size import describe, parse_constraint, size_scenario, write_size

    try:
        constraints = [parse_constraint(c) for c in constraint]
        fixed = []
        for text in set_:
            o = parse_set(text, single=True)
            fixed.append((o.path, o.values[0]))
        lo, hi = _parse_range(value_range)
        run_cache = RunCache(cache if cache is not None else (out / "runs" if out is not None else user_run_cache()))

        def on_probe(probe) -> None:
            if not quiet:
                verdict = "meets" if probe.feasible else "fails: " + "; ".join(probe.failed)
                err_console.print(f"probe {vary}={_fmt(probe.value)}: {verdict}", highlight=False, soft_wrap=True)

        with Executor(workers, scheduler) as executor:
            result = size_scenario(scenario, vary, constraints, policy, goal="smallest" if smallest else "largest",
                                   replications=replications, fixed=fixed, lo=lo, hi=hi, start=start, step=step,
                                   resolution=resolution, group=group, max_probes=max_probes, executor=executor,
                                   cache=run_cache, on_probe=on_probe)
        if out is not None:
            write_size(result, out, command=" ".join(["iotsim", *sys.argv[1:]]))
    except InputError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        err_console.print("interrupted: finished runs are kept in the cache; run the same command to resume",
                          highlight=False)
        raise typer.Exit(130)
    console.print(_probe_table(result))
    console.print(describe(result), highlight=False, soft_wrap=True)
    if out is not None:
        console.print(f"results: {out}/ (size.csv, size.json)")
    if result.answer is None:
        raise typer.Exit(1)


def _fmt(value, digits=3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.{digits}g}"
    return f"{value:,}"


def _print_summary(summary, name: str, nodes: int, duration_s: float, wall_s: float) -> None:
    """The terminal metrics of the registry as rows, one column per policy (one table per group), so the
    table fits 80 columns and no policy name is cut."""
    from iotsim.results.metrics import METRICS

    rows = [m for m in METRICS if m.terminal and m.name in summary.columns]
    groups = list(dict.fromkeys(summary["group"]))
    console.print(f"[bold]{name}[/]: {nodes:,} nodes, {duration_s / 86400:g} days simulated in {wall_s:.1f} s",
                  highlight=False)
    for group in groups:
        part = summary[summary["group"] == group]
        table = Table(title=f"group {group}" if len(groups) > 1 else None, title_justify="left")
        table.add_column("metric", no_wrap=True)
        for policy in part["policy"]:
            table.add_column(str(policy), justify="right", no_wrap=True, min_width=len(str(policy)))
        for m in rows:
            table.add_row(m.short, *[_fmt_metric(v, m.kind) for v in part[m.name]])
        console.print(table)


def _fmt_metric(value, kind: str) -> str:
    if kind == "ratio" and isinstance(value, float) and not math.isnan(value):
        return f"{value:.3f}"
    return _fmt(value)


def _print_findings(out_dir: Path) -> None:
    """The findings the run wrote (findings.json): the terminal metrics' comparisons, energy, flags."""
    from rich.markup import escape

    from iotsim.results.findings import FINDINGS_JSON, FINDINGS_MD, Findings

    path = out_dir / FINDINGS_JSON
    if not path.is_file():
        return
    findings = Findings.from_dict(json.loads(path.read_text()))
    console.print(f"[bold]Findings[/] (all metrics: {out_dir / FINDINGS_MD})", highlight=False)
    console.print(findings.scope, highlight=False, markup=False, style="dim")
    for line in findings.comparison_lines(terminal_only=True) + findings.energy:
        console.print(f"- {line}", highlight=False, markup=False)
    for flag in findings.flags:
        console.print(f"[bold yellow]flag:[/] {escape(flag)}", highlight=False)


@app.command()
def schema() -> None:
    """Print the JSON Schema of scenario files (for editor completion and checking)."""
    from iotsim.scenario.loader import scenario_json_schema

    typer.echo(json.dumps(scenario_json_schema(), indent=2))


@app.command()
def airtime(
    sf: int = typer.Option(..., min=6, max=12, help="spreading factor"),
    bw: int = typer.Option(125_000, help="bandwidth (Hz)"),
    payload: int = typer.Option(..., min=0, max=255, help="PHY payload (bytes); with --lorawan the application payload"),
    cr: str = typer.Option("4/5", help="coding rate 4/5 .. 4/8"),
    preamble: int = typer.Option(8, help="preamble symbols"),
    lorawan: bool = typer.Option(False, "--lorawan", help="add the 13-byte LoRaWAN frame overhead"),
    no_crc: bool = typer.Option(False, "--no-crc"),
    implicit_header: bool = typer.Option(False, "--implicit-header"),
) -> None:
    """Print LoRa time on air (Semtech SX1276 datasheet 4.1.1.7 / AN1200.13)."""
    from iotsim.radio import lora

    try:
        rate = lora.parse_coding_rate(cr)
    except (InputError, ValueError) as exc:
        _fail(exc if isinstance(exc, InputError) else InputError(str(exc), field="--cr"))
    phy = payload + (lora.LORAWAN_OVERHEAD_BYTES if lorawan else 0)
    toa = lora.time_on_air_s(phy, sf, bandwidth_hz=bw, coding_rate=rate, preamble_symbols=preamble,
                             explicit_header=not implicit_header, crc=not no_crc)
    typer.echo(f"{float(toa) * 1e3:.3f} ms  (SF{sf}, {bw / 1e3:g} kHz, CR {cr}, {phy} B PHY payload)")


models_app = typer.Typer(no_args_is_help=True, help="The TinyML model zoo: list, build, statistics, interpreters.")
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list(as_json: bool = typer.Option(False, "--json", help="print the cards' key figures as JSON")) -> None:
    """Zoo models with their workload, float and int8 accuracy, size and training time."""
    from iotsim.tinyml.zoo import zoo_cards

    rows = [
        {k: card.get(k) for k in ("name", "workload", "float_accuracy", "int8_accuracy", "float_f1", "int8_f1",
                                  "params", "macs", "tflite_bytes", "train_time_s", "class_names")}
        for card in zoo_cards()
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"iotsim model zoo: {len(rows)} int8 models (held-out test sets, see each model's .md card)")
    for header in ("model", "workload", "float acc", "int8 acc", "int8 - float", "int8 F1", "params", "MACs",
                   "int8 bytes", "train (s)"):
        table.add_column(header, justify="left" if header in ("model", "workload") else "right")
    for r in rows:
        table.add_row(r["name"], r["workload"], f"{r['float_accuracy']:.4f}", f"{r['int8_accuracy']:.4f}",
                      f"{r['int8_accuracy'] - r['float_accuracy']:+.4f}", f"{r['int8_f1']:.4f}", f"{r['params']:,}",
                      f"{r['macs']:,}", f"{r['tflite_bytes']:,}", f"{r['train_time_s']:.0f}")
    console.print(table)


@models_app.command("build")
def models_build(
    name: str = typer.Argument(..., help="zoo model (e.g. farm_soil_int8) or alias (farm, factory, wearable, smart_home, smart_city)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="output folder (default: the package zoo)"),
    small: bool = typer.Option(False, "--small", help="reduced configuration (fewer windows and epochs)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="accepted for compatibility; training prints a summary only"),
) -> None:
    """Train, quantize to full int8, evaluate and write a zoo model (.tflite + card). Needs TensorFlow."""
    from iotsim.paths import ZOO_DIR
    from iotsim.tinyml.recipes import build, get_recipe

    try:
        get_recipe(name, small=small)
        try:
            import tensorflow  # noqa: F401
        except ImportError:
            raise InputError("building models needs TensorFlow: pip install -e '.[train]'", field="NAME") from None
        console.print(f"training {name} ({'small configuration' if small else 'full recipe'}) ...")
        card = build(name, out or ZOO_DIR, small=small)
    except InputError as exc:
        _fail(exc)
    console.print(
        f"{card['name']}: float accuracy {card['float_accuracy']:.4f}, int8 {card['int8_accuracy']:.4f} "
        f"(F1 {card['int8_f1']:.4f}), {card['params']:,} params, {card['macs']:,} MACs, {card['tflite_bytes']:,} B, "
        f"{card['train_time_s']:.0f} s -> {(out or ZOO_DIR) / (card['name'] + '.tflite')}"
    )


@models_app.command("stats")
def models_stats(
    model: str = typer.Argument(..., help="a .tflite file or a zoo model name"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Parameters, MACs, flash and peak activation memory (arena lower bound) per op and in total."""
    from iotsim.tinyml.runtime import resolve_model_path
    from iotsim.tinyml.stats import format_stats, model_stats

    try:
        stats = model_stats(resolve_model_path(model))
    except InputError as exc:
        _fail(exc)
    typer.echo(json.dumps(stats, indent=2) if as_json else format_stats(stats))


@models_app.command("compare")
def models_compare(
    model: str = typer.Argument(..., help="a .tflite file or a zoo model name"),
    vectors: int = typer.Option(100, "--vectors", "-n", min=1, help="input rows to run"),
    inputs: str = typer.Option("random", help="random: uniform int8 tensors; real: windows of the model's workload "
                               "(zoo models and models with a card)"),
    seed: int = typer.Option(0, help="seed of the inputs"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Run the same int8 inputs through TFLite Micro and LiteRT's kernel sets; report how they differ."""
    from iotsim.tinyml.compare import compare_interpreters, format_comparison, zoo_inputs
    from iotsim.tinyml.runtime import resolve_model_path

    try:
        path = resolve_model_path(model)
        if inputs == "real":
            tensors = zoo_inputs(str(path), vectors, seed)
        elif inputs == "random":
            tensors = None
        else:
            raise InputError(f"--inputs must be 'random' or 'real', got {inputs!r}", field="--inputs")
        result = compare_interpreters(path, vectors=vectors, seed=seed, inputs=tensors)
    except InputError as exc:
        _fail(exc)
    typer.echo(json.dumps(result, indent=2) if as_json else format_comparison(result))


firmware_app = typer.Typer(no_args_is_help=True, help="Reference C firmware: export a model, run it on emulated "
                           "Cortex-M boards, verify it against TFLite Micro, measure its cost.")
app.add_typer(firmware_app, name="firmware")


@firmware_app.command("export")
def firmware_export(
    model: str = typer.Argument(..., help="a .tflite file or a zoo model name"),
    out: Path = typer.Option(..., "--out", "-o", help="folder for model.c, model.h, manifest.json"),
    board: Optional[str] = typer.Option(None, help="also cross-build for this board (e.g. mps2-an386) and report "
                                        "the linked firmware's flash and RAM"),
    as_json: bool = typer.Option(False, "--json", help="print the manifest (and build sizes) as JSON"),
) -> None:
    """Turn an int8 .tflite model into C sources: weights in flash, a static plan, a planned arena."""
    from iotsim.firmware.export import export_model
    from iotsim.tinyml.runtime import resolve_model_path

    try:
        res = export_model(resolve_model_path(model), out)
        m = dict(res.manifest)
        if board is not None:
            from iotsim.firmware.build import build_elf

            built = build_elf(out, board, Path(out) / "build")
            m["build"] = {"board": board, "elf": str(built.elf), "flash_bytes": built.flash_bytes,
                          "ram_bytes": built.ram_bytes, "model_flash_bytes": built.model_flash_bytes,
                          "model_ram_bytes": built.model_ram_bytes, "stack_reserve_bytes": built.stack_reserve_bytes,
                          "compiler": built.compiler}
    except InputError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(m, indent=2))
        return
    run_ops = sum(not o["folded"] for o in m["ops"])
    lines = [f"{m['model']} -> {out}/ (model.c, model.h, manifest.json)",
             f"  {run_ops} ops run, {len(m['folded_ops'])} shape ops folded at export",
             f"  flash: weights {m['weight_bytes']:,} B",
             f"  RAM:   arena {m['arena_bytes']:,} B (planned like TFLite Micro's greedy planner)",
             f"  input {m['input']['shape']} {m['input']['dtype']}, output {m['output']['shape']} {m['output']['dtype']}",
             f"  kernels: {', '.join(m['sources'])}"]
    if "build" in m:
        b = m["build"]
        lines.append(f"  {board} firmware: flash {b['flash_bytes']:,} B (model and kernels {b['model_flash_bytes']:,} B), "
                     f"static RAM {b['ram_bytes']:,} B (model {b['model_ram_bytes']:,} B) + {b['stack_reserve_bytes']:,} B "
                     f"stack reserve; {b['elf']}")
    else:
        lines.append("  (--board mps2-an386 also builds it and reports the firmware's flash and RAM)")
    typer.echo("\n".join(lines))


@firmware_app.command("verify")
def firmware_verify(
    model: str = typer.Argument(..., help="a .tflite file or a zoo model name"),
    board: str = typer.Option("mps2-an386", help="emulated board: mps2-an386 (Cortex-M4), mps2-an505 (Cortex-M33), "
                              "mps2-an385 (Cortex-M3)"),
    vectors: int = typer.Option(100, "--vectors", "-n", min=1, help="input vectors to run"),
    inputs: str = typer.Option("random", help="random, or real: data of the kind the model expects"),
    seed: int = typer.Option(0, help="seed of the inputs"),
    kernels: str = typer.Option("reference", help="kernel set: reference (TFLite Micro's reference kernels), "
                                "optimized (CMSIS-NN-style DSP kernels; Cortex-M4/M33 only) or cmsis-nn (Arm's "
                                "CMSIS-NN from $IOTSIM_CMSIS_NN, not shipped; Cortex-M4; not recorded)"),
    record: bool = typer.Option(True, "--record/--no-record", help="store a bit-exact measurement in the model's "
                                "cost table, for the simulator"),
    keep: Optional[Path] = typer.Option(None, "--keep", help="keep the export and build in this folder"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Run N inputs through the firmware in QEMU, TFLite Micro and LiteRT; exit 1 unless bit-exact with TFLM."""
    from iotsim.firmware.verify import format_report, verify_model

    try:
        with err_console.status("verifying") as status:
            report = verify_model(model, board=board, vectors=vectors, inputs=inputs, seed=seed, record=record,
                                  build_dir=keep, progress=lambda text: status.update(text), kernels=kernels)
    except InputError as exc:
        _fail(exc)
    typer.echo(json.dumps(report, indent=2) if as_json else format_report(report))
    if not report["bit_exact"]:
        raise typer.Exit(1)


@app.command()
def validate(
    quick: bool = typer.Option(False, "--quick", help="only the fast checks (seconds; part of the test suite)"),
    out: Optional[Path] = typer.Option(None, "--out", help="write the table and plots as markdown here, e.g. "
                                       "docs/validation.md"),
    only: Optional[list[str]] = typer.Option(None, "--only", help="run only this check (repeatable)"),
    as_json: bool = typer.Option(False, "--json", help="print the results as a JSON list"),
) -> None:
    """Run every closed-form and published-value check; exit 1 if any fails."""
    from dataclasses import asdict

    from iotsim.validation import check_names, run_checks
    from iotsim.validation.report import write

    unknown = sorted(set(only or []) - set(check_names()))
    if unknown:
        _fail(InputError(f"unknown check(s) {', '.join(unknown)}; known: {', '.join(check_names())}", field="--only"))
    try:
        with err_console.status("validating") as status:
            v = run_checks(quick=quick, only=only, progress=lambda name: status.update(f"validating: {name}"))
    except InputError as exc:  # e.g. $IOTSIM_CMSIS_NN set to something that is not a CMSIS-NN tree
        _fail(exc)
    if as_json:
        typer.echo(json.dumps([{**asdict(r), "passed": r.passed} for r in v.results], indent=2))
    else:
        table = Table(title="iotsim validate" + (" --quick" if quick else ""), title_justify="left")
        for col in ("check", "expected", "measured", "tolerance", "verdict"):
            table.add_column(col, justify="left" if col in ("check", "verdict") else "right")
        for r in v.results:
            table.add_row(r.check, f"{r.expected:.6g}", f"{r.measured:.6g}", r.tolerance_text,
                          "pass" if r.passed else "[bold red]FAIL[/]")
        console.print(table)
        console.print(f"{sum(r.passed for r in v.results)} of {len(v.results)} checks pass", highlight=False)
        for name, text in v.failure_notes.items():
            console.print(f"[bold yellow]{name} fails:[/] {text}", highlight=False, soft_wrap=True)
    if out is not None:
        command = "iotsim validate" + (" --quick" if quick else "") + f" --out {out}"
        for path in write(v, out, command):
            err_console.print(f"wrote {path}", highlight=False)
    if not v.passed:
        raise typer.Exit(1)


@app.command()
def reproduce(
    name: str = typer.Argument(..., help="the published comparison: `iotsim reproduce list` names them"),
    as_json: bool = typer.Option(False, "--json", help="print the rows as a JSON list"),
) -> None:
    """Reproduce a published comparison: ours beside the published figure, the error, every assumption."""
    from iotsim import reproduce as repro

    if name == "list":
        for key, (_, description) in sorted(repro.REPRODUCTIONS.items()):
            typer.echo(f"{key:16} {description}")
        return
    try:
        result = repro.run(name)
    except InputError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(result.rows, indent=2))
        return
    table = Table(title=f"{result.title}", title_justify="left")
    for col in result.columns:
        table.add_column(col, justify="left" if col in {"task", "kernels", "board", "figure", "case"} else "right")
    for row in result.rows:
        table.add_row(*[_fmt_cell(col, row.get(col)) for col in result.columns])
    console.print(table)
    console.print(f"source: {result.source}", highlight=False, soft_wrap=True)
    for text in result.assumptions:
        console.print(f"assumption: {text}", highlight=False, soft_wrap=True)
    for text in result.notes:
        console.print(f"note: {text}", highlight=False, soft_wrap=True)


def _fmt_cell(column: str, value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if column.endswith("_err"):
            return f"{value:+.1%}"
        return _fmt(value, 4)
    return str(value)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
