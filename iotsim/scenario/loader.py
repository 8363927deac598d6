"""Load a scenario file: YAML -> validated `Scenario`, with references (devices, signals, models) checked.

Every problem becomes one `InputError` naming the file, the line and the field.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

from pydantic import ValidationError

from iotsim.errors import InputError
from iotsim.scenario.model import Scenario
from iotsim.scenario.yaml_source import YamlDocument, parse_yaml_text, pydantic_error_to_input_error, read_yaml


def scenario_from_document(doc: YamlDocument, *, check_references: bool = True) -> Scenario:
    if not isinstance(doc.data, dict):
        raise InputError("a scenario file must be a mapping of fields (name, duration, fleet, ...)", where=doc.where)
    try:
        scenario = Scenario.model_validate(doc.data)
    except ValidationError as exc:
        raise pydantic_error_to_input_error(exc, doc) from None
    if check_references:
        check_scenario_references(scenario, doc)
    return scenario


def load_scenario(path: str | Path, *, check_references: bool = True) -> Scenario:
    """Read and validate a scenario file. Raises InputError (file:line, field) on any problem."""
    return scenario_from_document(read_yaml(path), check_references=check_references)


def load_scenario_text(text: str, where: str = "<scenario>", *, check_references: bool = True) -> Scenario:
    return scenario_from_document(parse_yaml_text(text, where), check_references=check_references)


def _check(doc: YamlDocument | None, loc: list[Any], action: Callable[[], Any]) -> None:
    try:
        action()
    except InputError as exc:
        where = doc.locate(loc) if doc else None
        raise InputError(exc.message if not exc.where else f"{exc.message} ({exc.where})", where=where,
                         field=".".join(map(str, loc))) from None


def _check_model_fits(group) -> None:
    """The group's model loads as an int8 model and takes the group's windows."""
    from iotsim.signals import get_workload
    from iotsim.tinyml.runtime import load_model

    model = load_model(group.model, require_int8=True)
    wl = get_workload(group.workload.signal)
    window = group.workload.window or wl.window_samples
    model.check_window(window, wl.n_channels, where=str(model.path))


def check_scenario_references(scenario: Scenario, doc: YamlDocument | None = None) -> None:
    """Check that every named device, signal and model exists and fits the group's workload."""
    # imported here so that schema-only use (iotsim schema) stays light
    from iotsim.hardware import load_board
    from iotsim.signals import get_workload
    from iotsim.tinyml.runtime import load_model

    for i, group in enumerate(scenario.fleet):
        _check(doc, ["fleet", i, "device"], lambda g=group: load_board(g.device))
        _check(doc, ["fleet", i, "workload", "signal"], lambda g=group: get_workload(g.workload.signal))
        _check(doc, ["fleet", i, "model"], lambda g=group: _check_model_fits(g))
        board = load_board(group.device)
        net = scenario.network
        if board.radio.technology != net.radio_technology:
            raise InputError(
                f"board '{group.device}' has a {board.radio.technology} radio, but the network is "
                f"{net.technology} (needs a {net.radio_technology} radio)",
                where=doc.locate(["fleet", i, "device"]) if doc else None,
                field=f"fleet.{i}.device",
            )
        tech = net.technology
        _check(doc, ["network", tech, "tx_power_dbm"], lambda b=board, p=net.tx_power_dbm: b.radio.tx_current_a(p))
    if scenario.network.cloud.model:
        _check(doc, ["network", "cloud", "model"], lambda: load_model(scenario.network.cloud.model))


def scenario_hash(scenario: Scenario) -> str:
    """SHA-256 of the validated scenario in canonical JSON (field order and formatting do not matter)."""
    canonical = json.dumps(scenario.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def scenario_json_schema() -> dict[str, Any]:
    schema = Scenario.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "iotsim scenario"
    return schema
