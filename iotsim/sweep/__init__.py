"""Parameter sweeps with replications, a sizing search, and execution on Dask (local or remote)."""

import sys
import types

from iotsim.sweep.cache import RunCache, code_version
from iotsim.sweep.execute import Executor, RunSpec
from iotsim.sweep.grid import SweepPlan, plan_sweep
from iotsim.sweep.overrides import Override, apply_overrides, parse_set
from iotsim.sweep.study import SweepResult, run_sweep

__all__ = ["Executor", "Override", "RunCache", "RunSpec", "SweepPlan", "SweepResult", "apply_overrides",
           "code_version", "parse_set", "plan_sweep", "run_sweep"]


class _CallableModule(types.ModuleType):
    """This package, callable: `iotsim.sweep(scenario, grid, out=...)` runs a sweep (`iotsim.api.sweep`)."""

    def __call__(self, *args, **kwargs):
        from iotsim.api import sweep

        return sweep(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
