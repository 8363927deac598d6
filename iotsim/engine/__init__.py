"""The simulation engine: plans the fleet once, then simulates each policy on it."""

from iotsim.engine.run import PolicyOutcome, RunResult, run_scenario

__all__ = ["run_scenario", "RunResult", "PolicyOutcome"]
