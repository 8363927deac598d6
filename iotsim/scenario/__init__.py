"""Scenario files: YAML -> validated, typed `Scenario`."""

from iotsim.scenario.loader import load_scenario, load_scenario_text, scenario_hash, scenario_json_schema
from iotsim.scenario.model import Scenario

__all__ = ["Scenario", "load_scenario", "load_scenario_text", "scenario_hash", "scenario_json_schema"]
