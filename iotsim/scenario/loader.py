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
from iotsim.scenario.model import MAX_ITEMS_PER_GROUP, Scenario
from iotsim.scenario.yaml_source import (YamlDocument, field_path, parse_yaml_text, pydantic_error_to_input_error,
                                        read_yaml)


def scenario_from_document(doc: YamlDocument, *, check_references: bool = True) -> Scenario:
    if not isinstance(doc.data, dict):
        raise InputError("a scenario file must be a mapping of fields (name, duration, fleet, ...)", where=doc.where)
    try:
        scenario = Scenario.model_validate(doc.data)
    except ValidationError as exc:
        raise pydantic_error_to_input_error(exc, doc, Scenario) from None
    if check_references:
        check_scenario_references(scenario, doc)
    return scenario


def load_scenario(path: str | Path, *, check_references: bool = True) -> Scenario:
    """Read and validate a scenario file. Raises InputError (file:line, field) on any problem."""
    return scenario_from_document(read_yaml(path), check_references=check_references)


def load_scenario_text(text: str, where: str = "<scenario>", *, check_references: bool = True) -> Scenario:
    return scenario_from_document(parse_yaml_text(text, where), check_references=check_references)


def _field(scenario: Scenario, loc: list[Any]) -> str:
    """`loc` in the names `--set` takes: a fleet group by its name (`fleet.soil.device`)."""
    if len(loc) > 1 and loc[0] == "fleet" and isinstance(loc[1], int):
        return field_path({"fleet": [{"group": g.group} for g in scenario.fleet]}, loc)
    return ".".join(map(str, loc))


def _check(doc: YamlDocument | None, loc: list[Any], action: Callable[[], Any], scenario: Scenario) -> None:
    try:
        action()
    except InputError as exc:
        where = doc.locate(loc) if doc else None
        raise InputError(exc.message if not exc.where else f"{exc.message} ({exc.where})", where=where,
                         field=_field(scenario, loc)) from None


def _check_model_fits(group, model_ref=None) -> None:
    """The group's model (or `model_ref`) loads as an int8 model and takes the group's windows."""
    from iotsim.signals import get_workload
    from iotsim.tinyml.runtime import load_model

    model = load_model(group.model if model_ref is None else model_ref, require_int8=True)
    wl = get_workload(group.workload.signal)
    window = group.workload.window or wl.window_samples
    model.check_window(window, wl.n_channels, where=str(model.path))


def _check_sensors(group, board) -> None:
    """The board's sensors give every channel the group's signal samples (a signal's `channels` are
    named as the sensor profiles that measure them: soil_moisture, x/y/z acceleration, ecg, ...)."""
    from iotsim.hardware import list_profiles, load_profile
    from iotsim.signals import get_workload

    wl = get_workload(group.workload.signal)
    missing = [c for c in wl.channels if c not in board.channels]
    if not missing:
        return
    givers = [name for name in list_profiles("sensor")
              if set(missing) <= set(load_profile("sensor", name).channels)]
    have = ", ".join(f"{s.name} ({', '.join(s.channels)})" for s in board.sensors) or "none"
    raise InputError(
        f"group '{group.group}': board '{board.name}' has no sensor for the {group.workload.signal} signal "
        f"(missing channel{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
        f"{'; measured by the ' + ' or '.join(givers) + ' sensor' if givers else ''}); the board's sensors: {have}")


def _check_windows(group, duration_s: float) -> None:
    """At most MAX_ITEMS_PER_GROUP inference windows in the run (count x duration / window period)."""
    from iotsim.signals import get_workload

    wl, spec = get_workload(group.workload.signal), group.workload
    sample = spec.sample_period or (1.0 / spec.sample_rate_hz if spec.sample_rate_hz else 1.0 / wl.sample_rate_hz)
    period = spec.window_period or sample * (spec.window or wl.window_samples)
    total = group.count * duration_s / period
    if total > MAX_ITEMS_PER_GROUP:
        raise InputError(f"group '{group.group}' would infer {total:.3g} windows (count x duration / window period), "
                         f"more than the {MAX_ITEMS_PER_GROUP:.0e} a run holds: lower count or duration, or sample "
                         "less often")


def check_scenario_references(scenario: Scenario, doc: YamlDocument | None = None) -> None:
    """Check that every named device, signal and model exists and fits the group's workload."""
    # imported here so that schema-only use (iotsim schema) stays light
    from iotsim.hardware import load_board
    from iotsim.signals import get_workload, with_params
    from iotsim.tinyml.runtime import load_model

    for i, group in enumerate(scenario.fleet):
        _check(doc, ["fleet", i, "device"], lambda g=group: load_board(g.device), scenario)
        _check(doc, ["fleet", i, "workload", "signal"], lambda g=group: get_workload(g.workload.signal), scenario)
        base = get_workload(group.workload.signal)
        if group.workload.params:
            _check(doc, ["fleet", i, "workload", "params"],
                   lambda g=group, w=base: with_params(w, g.workload.params), scenario)
            base = with_params(base, group.workload.params)
        for k, phase in enumerate(group.workload.phases):
            _check(doc, ["fleet", i, "workload", "phases", k, "params"],
                   lambda ph=phase, w=base: with_params(w, ph.params), scenario)
        _check(doc, ["fleet", i, "model"], lambda g=group: _check_model_fits(g), scenario)
        _check(doc, ["fleet", i, "count"], lambda g=group: _check_windows(g, scenario.duration), scenario)
        board = load_board(group.device)
        _check(doc, ["fleet", i, "device"], lambda g=group, b=board: _check_sensors(g, b), scenario)
        net = scenario.network
        if board.radio.technology != net.radio_technology:
            raise InputError(
                f"board '{group.device}' has a {board.radio.technology} radio, but the network is "
                f"{net.technology} (needs a {net.radio_technology} radio)",
                where=doc.locate(["fleet", i, "device"]) if doc else None,
                field=f"fleet.{group.group}.device",
            )
        tech = net.technology
        _check(doc, ["network", tech, "tx_power_dbm"], lambda b=board, p=net.tx_power_dbm: b.radio.tx_current_a(p),
               scenario)
    if scenario.network.cloud.model:
        _check(doc, ["network", "cloud", "model"], lambda: load_model(scenario.network.cloud.model), scenario)
    for u, update in enumerate(scenario.updates):
        for group in update_groups(scenario, update):
            _check(doc, ["updates", u, "model"], lambda g=group, m=update.model: _check_model_fits(g, m), scenario)
        bases = {str(model_before(scenario, u, g)) for g in update_groups(scenario, update)}
        if len(bases) > 1:
            raise InputError(f"an update goes to groups that run different models ({', '.join(sorted(bases))}): one "
                             "multicast session carries one delta; split it into one update per model",
                             where=doc.locate(["updates", u, "groups"]) if doc else None, field=f"updates.{u}.groups")


def update_groups(scenario: Scenario, update) -> list:
    """The fleet groups an update goes to, in fleet order."""
    return [g for g in scenario.fleet if update.groups is None or g.group in update.groups]


def update_before(scenario: Scenario, index: int, group) -> int:
    """The update whose model `group` runs before update `index`: the latest earlier one to it (by start,
    then by order in the list); -1 for the group's own model."""
    this = scenario.updates[index]
    earlier = [(u.at, j) for j, u in enumerate(scenario.updates)
               if (u.at, j) < (this.at, index) and group in update_groups(scenario, u)]
    return max(earlier)[1] if earlier else -1


def model_before(scenario: Scenario, index: int, group):
    """The model `group` runs before update `index` (see `update_before`)."""
    j = update_before(scenario, index, group)
    return scenario.updates[j].model if j >= 0 else group.model


def scenario_hash(scenario: Scenario) -> str:
    """SHA-256 of the validated scenario in canonical JSON (field order and formatting do not matter)."""
    dump = scenario.model_dump(mode="json")
    if dump["simulation"].get("chunk") is None:  # added later: scenarios without it keep their hash
        del dump["simulation"]["chunk"]
    canonical = json.dumps(dump, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def scenario_json_schema() -> dict[str, Any]:
    schema = Scenario.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "iotsim scenario"
    return schema
