"""Execute single runs on a Dask `distributed` cluster (local by default) or in this process.

Each run is a whole scenario with its seed: `run_one` rebuilds it from JSON on the worker,
simulates it and returns its summary rows. The client stores every finished run in the cache as
soon as it arrives, so an interrupted sweep keeps everything that finished. Results depend only on
the scenario and seed, never on the worker that ran them or the order they finished in.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from iotsim.errors import InputError
from iotsim.scenario.loader import scenario_hash
from iotsim.sweep.cache import RunCache, code_version

SCHEDULER_TIMEOUT_S = 15  # how long to try to reach a --scheduler

# called with (runs finished, runs to do, of which served from the cache)
Progress = Callable[[int, int, int], None]


@dataclass
class Execution:
    """What `Executor.execute` gives back: every run's record by key, and how many came from the cache."""

    records: dict[str, dict]
    cached: int

    @property
    def computed(self) -> int:
        return len(self.records) - self.cached


@dataclass(frozen=True)
class RunSpec:
    """One run to do: a validated scenario (its seed set), its cache key and a label for messages."""

    key: str
    scenario: Any  # iotsim.scenario.Scenario
    label: str


def run_one(scenario_json: dict) -> dict:
    """Simulate one scenario (given as JSON) and return its summary rows. Runs on a worker."""
    from iotsim.engine import run_scenario
    from iotsim.results.tables import summary_table
    from iotsim.scenario.model import Scenario

    t0 = time.perf_counter()
    scenario = Scenario.model_validate(scenario_json)
    result = run_scenario(scenario)
    rows = summary_table(result).to_dict("records")
    return {
        "seed": scenario.seed,
        "iotsim_version": code_version(),
        "rows": rows,
        "warnings": list(result.warnings),
        "wall_s": time.perf_counter() - t0,
    }


def worker_payload(scenario) -> dict:
    """The scenario as JSON with model files named by absolute path (workers may run elsewhere)."""
    from iotsim.tinyml.runtime import resolve_model_path
    from iotsim.paths import ZOO_DIR

    data = scenario.model_dump(mode="json")

    def absolute(name: str) -> str:
        path = resolve_model_path(name)
        return name if path.parent.resolve() == ZOO_DIR.resolve() else str(path.resolve())

    for group in data["fleet"]:
        if isinstance(group["model"], dict):
            group["model"]["file"] = str(Path(group["model"]["file"]).resolve())
        else:
            group["model"] = absolute(group["model"])
    cloud = data["network"]["cloud"]
    if cloud.get("model"):
        cloud["model"] = absolute(cloud["model"])
    return data


# what every run imports: a forkserver imports them once, and each worker process forks from it
WORKER_IMPORTS = ["distributed", "iotsim.sweep.execute", "iotsim.engine.run", "iotsim.results.tables",
                  "iotsim.tinyml.runtime", "ai_edge_litert.interpreter"]


def _start_method() -> str:
    """How the local cluster starts its worker processes: from a forkserver that has already
    imported what the runs need (about 1.5 s less per sweep than spawning each worker and importing
    there), where the platform has one; else spawn. Never a plain fork of this process, whose
    threads (the Dask client's event loop) a fork would not carry over safely."""
    import multiprocessing

    import dask
    import distributed.utils

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return "spawn"
    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
        ctx = distributed.utils.get_mp_context()  # distributed sets its own preload list first
    ctx.set_forkserver_preload(WORKER_IMPORTS)
    return "forkserver"


@contextmanager
def _caller_main_hidden():
    """Hide the caller's main module from multiprocessing while the local cluster starts its workers.

    A worker process started by spawn or forkserver first re-runs the parent's main script (as
    `__mp_main__`, multiprocessing.spawn.get_preparation_data), so a script calling a sweep without an
    `if __name__ == "__main__":` guard would start the sweep again inside every worker, which fails
    ("Nanny failed to start"). The workers need nothing from that script (they run
    `iotsim.sweep.execute.run_one`), so while the cluster starts, the main module names neither a file
    nor a module to re-run (from the cluster's start to the sweep's end: a worker that dies is
    restarted). A notebook's main module has neither anyway."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {name: vars(main)[name] for name in ("__file__", "__spec__") if name in vars(main)}
    vars(main).pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        for name in ("__file__", "__spec__"):
            vars(main).pop(name, None)
        vars(main).update(saved)


def default_workers() -> int:
    return os.cpu_count() or 1


class Executor:
    """Where runs execute: `workers=0` in this process; else a `distributed` cluster, a LocalCluster
    of `workers` single-threaded processes on loopback (default: one per core) or, with `scheduler`,
    an existing cluster ("tcp://HOST:PORT"). Started on first use, shut down on exit."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None):
        if workers is not None and workers < 0:
            raise InputError(f"--workers must be 0 (this process) or more, not {workers}")
        self.workers = default_workers() if workers is None else workers
        self.scheduler = scheduler
        self._client = None
        self._cluster = None

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def description(self) -> str:
        if self.scheduler:
            return f"Dask cluster at {self.scheduler}"
        if self.workers == 0:
            return "this process"
        return f"local Dask cluster, {self.workers} worker process(es)"

    def _connect(self):
        if self._client is not None:
            return self._client
        import dask
        from distributed import Client, LocalCluster

        if self.scheduler:
            try:
                self._client = Client(self.scheduler, timeout=f"{SCHEDULER_TIMEOUT_S}s")
            except (OSError, TimeoutError) as exc:
                raise InputError(f"cannot reach the Dask scheduler: {exc}", where=f"--scheduler {self.scheduler}") from None
        else:
            # no statistical profiler in the workers: sampling the run's stack every 10 ms costs the
            # runs (pure Python in large part) about a tenth of their speed
            with dask.config.set({"distributed.worker.multiprocessing-method": _start_method(),
                                  "distributed.worker.profile.enabled": False}):
                self._cluster = LocalCluster(
                    n_workers=self.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                    dashboard_address=None, silence_logs=logging.ERROR, preload=["iotsim.sweep.worker"],
                )
            self._client = Client(self._cluster)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def execute(self, runs: Iterable[RunSpec], cache: RunCache, progress: Progress | None = None) -> Execution:
        """Every run's record by key: from the cache, else computed and cached as it finishes."""
        runs = list(runs)
        unique: dict[str, RunSpec] = {}
        for spec in runs:
            unique.setdefault(spec.key, spec)
        records: dict[str, dict] = {}
        todo: list[RunSpec] = []
        for key, spec in unique.items():
            record = cache.get(key)
            if record is not None:
                records[key] = record
            else:
                todo.append(spec)
        total, cached = len(unique), len(records)
        say = progress or (lambda done, total, cached: None)
        say(cached, total, cached)
        if not todo:
            return Execution(records, cached)
        version = code_version()

        def finish(spec: RunSpec, record: dict) -> None:
            record["scenario_sha256"] = scenario_hash(spec.scenario)  # the scenario as named here
            if record.get("iotsim_version") != version:
                raise InputError(
                    f"a worker runs iotsim {record.get('iotsim_version')}, this process {version}: install the "
                    "same iotsim on every worker", where=self.description)
            cache.put(spec.key, record)
            records[spec.key] = record
            say(len(records), total, cached)

        if self.workers == 0 and not self.scheduler:
            for spec in todo:
                finish(spec, _run_here(spec))
        else:
            with _caller_main_hidden():  # also while a worker the nanny restarts may start
                self._run_on_cluster(todo, finish)
        return Execution(records, cached)

    def _run_on_cluster(self, todo: list[RunSpec], finish: Callable[[RunSpec, dict], None]) -> None:
        from distributed import as_completed

        client = self._connect()
        by_key = {}
        futures = []
        # longest first (by node-seconds simulated): the last runs to finish are short ones, so no
        # worker idles long at the end; the results do not depend on the order
        for spec in sorted(todo, key=lambda sp: -sp.scenario.duration * sum(g.count for g in sp.scenario.fleet)):
            fut = client.submit(run_one, worker_payload(spec.scenario), key=f"iotsim-run-{spec.key}", pure=False)
            by_key[fut.key] = spec
            futures.append(fut)
        try:
            for fut in as_completed(futures):
                spec = by_key[fut.key]
                try:
                    record = fut.result()
                except InputError as exc:  # bad input found on the worker
                    raise InputError(str(exc), where=f"run {spec.label}") from None
                except Exception as exc:  # anything else is a bug: keep the worker's traceback
                    raise RunCrashed(f"run {spec.label} crashed on a worker: {type(exc).__name__}: {exc}") from exc
                finish(spec, record)
        finally:
            pending = [f for f in futures if not f.done()]
            if pending:
                client.cancel(pending)


class RunCrashed(RuntimeError):
    """A run failed on a worker with an error that is not bad input (a bug); its cause carries the
    worker's exception and traceback."""


def _run_here(spec: RunSpec) -> dict:
    try:
        return run_one(worker_payload(spec.scenario))
    except InputError as exc:
        raise InputError(str(exc), where=f"run {spec.label}") from None
