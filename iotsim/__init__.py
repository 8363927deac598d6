"""iotsim: discrete-event simulator of IoT sensor fleets (cloud offload vs on-device TinyML).

`iotsim.run(scenario, overrides, **fields) -> Result` simulates one scenario, `iotsim.sweep(scenario,
grid, out=...)` a grid of them (see `iotsim.api`); both are imported on first use.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    if name in ("run", "Result"):
        from iotsim import api

        return getattr(api, name)
    if name == "sweep":  # the subpackage, callable (iotsim.api.sweep)
        import importlib

        return importlib.import_module("iotsim.sweep")
    raise AttributeError(f"module 'iotsim' has no attribute '{name}'")
