"""Write a run's results folder atomically: everything goes into a temporary sibling folder that is
renamed into place only when complete, so a failed run leaves no half-written output."""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import iotsim
from iotsim.files import atomic_replace_dir
from iotsim.results.findings import run_findings, write_findings
from iotsim.engine.run import Progress
from iotsim.results.tables import (PACKETS_ROW_GROUP_ROWS, events_table, federated_table, gateways_table, mesh_hops_table,
                                   solar_daily_table,
                                   mesh_table, nodes_table, packet_counts,
                                   packets_row_groups, summary_table, updates_table)
from iotsim.scenario.loader import scenario_hash

VERSIONED_PACKAGES = ("numpy", "pandas", "simpy", "ai-edge-litert", "pyarrow", "pydantic", "matplotlib", "networkx")


def package_versions() -> dict[str, str]:
    out = {"iotsim": iotsim.__version__, "python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def build_manifest(result, command: str | None) -> dict:
    scenario = result.scenario
    return {
        "scenario": scenario.name,
        "scenario_sha256": scenario_hash(scenario),
        "seed": scenario.seed,
        "duration_s": scenario.duration,
        "policies": [o.policy.describe() for o in result.outcomes],
        "nodes": result.n_nodes,
        "models": {
            p.name: {
                "node_model": p.model.name,
                "node_interpreter": p.model.interpreter_name,
                "cloud_model": p.cloud_model.name,
                "cloud_interpreter": p.cloud_model.interpreter_name,
                "inference_cost": p.inference_cost_source,
            }
            for p in result.plans
        },
        "warnings": list(result.warnings),
        "versions": package_versions(),
        "command": command if command is not None else " ".join(sys.argv),
    }


PARQUET_COMPRESSION = "zstd"


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    # no pandas index, fixed compression; row order is deterministic, so bytes are too
    frame.to_parquet(path, index=False, compression=PARQUET_COMPRESSION)


def _link_or_copy(src: Path, dest: Path) -> None:
    """A hard link where both are on one file system (a year's packets table is large), else a copy."""
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def _write_packets(result, path: Path, rows_per_group: int = PACKETS_ROW_GROUP_ROWS) -> None:
    """Build the packets table one row group at a time and write each to `path`, so the whole table is never in
    memory.

    The file has the bytes `packets_table(result).to_parquet(path, index=False, compression="zstd",
    row_group_size=rows_per_group)` gives (by default the bytes of `_write_parquet`): the same row
    groups, schema, pandas metadata and options, written by the same pyarrow writer.
    """
    writer = None
    try:
        for frame in packets_row_groups(result, rows_per_group):
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, compression=PARQUET_COMPRESSION)
            writer.write_table(table, row_group_size=rows_per_group)
    finally:
        if writer is not None:
            writer.close()


def write_results(result, out_dir: str | Path, *, command: str | None = None, plots: bool | None = None,
                  report: bool | None = None, packets: bool | None = None,
                  progress: Progress | None = None) -> Path:
    """Write summary.csv, nodes.parquet, events.parquet, packets.parquet, gateways.csv (LoRaWAN), updates.csv
    (model updates), federated.csv (federated rounds), mesh.csv and mesh_hops.csv (802.15.4 meshes), solar_daily.csv (harvesting groups), manifest.json, findings.md and findings.json, plots and report.html into `out_dir`,
    replacing it atomically. Returns the folder.

    `progress(step, done, total)` is called with done = 0 when a step starts and done = total = 1
    when it ends; steps: "tables", "findings", "packets", "plots", "report" (those that run)."""
    outputs = result.scenario.outputs
    plots = outputs.plots if plots is None else plots
    report = (outputs.report == "html") if report is None else report
    packets = outputs.packets_table if packets is None else packets
    out_dir = Path(out_dir)

    def fill(tmp: Path) -> None:
        with _step(progress, "tables"):
            nodes = nodes_table(result)
            summary = summary_table(result, nodes)
            events = events_table(result)
            summary.to_csv(tmp / "summary.csv", index=False, float_format="%.6g")
            if result.technology == "lorawan":
                gateways_table(result).to_csv(tmp / "gateways.csv", index=False, float_format="%.6g")
            if result.updates:
                updates_table(result).to_csv(tmp / "updates.csv", index=False, float_format="%.6g")
            if result.federated:
                federated_table(result).to_csv(tmp / "federated.csv", index=False, float_format="%.6g")
            mesh = mesh_table(result) if result.link_state else None
            if mesh is not None and len(mesh):
                mesh.to_csv(tmp / "mesh.csv", index=False, float_format="%.6g")
                mesh_hops_table(result).to_csv(tmp / "mesh_hops.csv", index=False, float_format="%.6g")
            solar = solar_daily_table(result) if any(o.harvest is not None for o in result.outcomes) else None
            if solar is not None:
                solar.to_csv(tmp / "solar_daily.csv", index=False, float_format="%.6g")
            _write_parquet(nodes, tmp / "nodes.parquet")
            _write_parquet(events, tmp / "events.parquet")
            manifest = build_manifest(result, command)
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        with _step(progress, "findings"):
            findings = run_findings(result, summary, nodes)
            write_findings(findings, tmp, f"Findings: {result.scenario.name}")
        if packets:
            with _step(progress, "packets"):
                if result.packets_path is not None:  # a run in time chunks streamed it as it ran
                    _link_or_copy(result.packets_path, tmp / "packets.parquet")
                else:
                    _write_packets(result, tmp / "packets.parquet")
        if plots or report:
            from iotsim.report import write_plots, write_report

            plot_paths = []
            if plots:
                with _step(progress, "plots"):
                    plot_paths = write_plots(tmp, summary, nodes, events, packet_counts(result))
                    if mesh is not None and len(mesh):
                        from iotsim.report.plots import MESH_TREE_PNG, plot_mesh_tree

                        plot_paths.append(plot_mesh_tree(tmp / MESH_TREE_PNG, mesh))
                    if solar is not None and len(solar):
                        from iotsim.report.plots import SOLAR_PNG, plot_solar

                        plot_paths.append(plot_solar(tmp / SOLAR_PNG, solar))
            if report:
                with _step(progress, "report"):
                    write_report(tmp, summary, result.scenario.name, result.scenario.description, manifest,
                                 plot_paths, result.notes, findings)

    atomic_replace_dir(out_dir, fill)
    return out_dir


@contextmanager
def _step(progress: Progress | None, name: str):
    if progress:
        progress(name, 0, 1)
    yield
    if progress:
        progress(name, 1, 1)
