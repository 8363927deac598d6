"""Energy-aware: a harvesting node follows one policy while its store is well charged and another when it runs
low (iotsim.engine.adaptive decides the mode of every node and hour from the store)."""

from __future__ import annotations

import numpy as np

from iotsim.policies.base import Policy


class EnergyAware(Policy):
    name = "energy_aware"

    def __init__(self, normal: Policy, low: Policy, below: float = 0.3, above: float = 0.5):
        if not 0 < below <= above <= 1:
            raise ValueError("need 0 < below <= above <= 1")
        self.normal, self.low, self.below, self.above = normal, low, below, above
        self.runs_on_device_inference = normal.runs_on_device_inference or low.runs_on_device_inference
        self.sends_heartbeats = normal.sends_heartbeats or low.sends_heartbeats

    def actions(self, device_positive: np.ndarray, device_confidence: np.ndarray) -> np.ndarray:
        raise TypeError("an energy-aware policy's actions depend on each node's store, hour by hour: "
                        "iotsim.engine.adaptive decides them")

    def describe(self) -> str:
        return (f"energy-aware ({self.normal.describe()}; {self.low.describe()} from an hour that starts below "
                f"{self.below:.0%} of the store until one starts above {self.above:.0%})")
