"""Scenario overrides by dotted path: `fleet.soil.count=100,200`, `network.lorawan.sf=7`.

A path walks the scenario's fields; a list entry is named by its index or, where entries carry
one, by their `group` (fleet) or `id` (gateways). Values are YAML scalars or flow collections
("7", "auto", "6h", "[100, 200]"). The overridden scenario is validated exactly like a scenario
file, and an error names the `--set` option (or the file line) and the field.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Sequence

import yaml
from pydantic import BaseModel, ValidationError

from iotsim.errors import InputError, did_you_mean
from iotsim.scenario.loader import check_scenario_references
from iotsim.scenario.model import Scenario
from iotsim.scenario.yaml_source import (NAMED_ENTRIES, YamlDocument, inner_model, pydantic_error_to_input_error)



@dataclass(frozen=True)
class Override:
    """One `--set PATH=V1,V2,...` option: a field path and the values to try."""

    path: str  # as written, e.g. "fleet.soil.count"
    values: tuple[Any, ...]


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on `sep` outside brackets, braces and quotes: "1,[2, 3],'a,b'" -> ["1", "[2, 3]", "'a,b'"]."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def parse_value(text: str, option: str) -> Any:
    """A YAML scalar or flow collection (safe loader: never executes anything)."""
    try:
        return yaml.safe_load(text) if text else None
    except yaml.YAMLError as exc:
        raise InputError(f"value '{text}' is not valid YAML: {getattr(exc, 'problem', exc)}", where=option) from None


def parse_set(text: str, *, single: bool = False) -> Override:
    """Parse `PATH=V1,V2,...` (with `single`, exactly one value: `PATH=V`)."""
    where = f"--set {text}"
    path, eq, raw = text.partition("=")
    path = path.strip()
    if not eq or not path:
        raise InputError("expected PATH=VALUE[,VALUE...], e.g. fleet.soil.count=100,200", where=where)
    if any(not part for part in path.split(".")):
        raise InputError(f"'{path}' is not a dotted field path (e.g. network.lorawan.sf)", where=where)
    texts = [raw.strip()] if single else split_top_level(raw)
    if any(t == "" for t in texts):
        raise InputError("empty value (values are separated by commas)", where=where)
    values = tuple(parse_value(t, where) for t in texts)
    if len(set(map(repr, values))) != len(values):
        raise InputError("a value is listed twice", where=where)
    return Override(path, values)


def resolve_path(data: Any, path: str, *, create: bool = True) -> list[str | int]:
    """The path as keys and list indices into `data` (names of fleet groups and gateways resolved).

    With `create`, missing mappings on the way are created (a default section the file leaves out)."""
    loc: list[str | int] = []
    node = data
    parts = path.split(".")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            key = _list_index(node, part, loc, path)
        elif isinstance(node, dict) or node is None:
            key = part
            if node is None:
                raise InputError(f"'{'.'.join(map(str, loc))}' is empty, cannot set '{part}' in it", field=path)
            if not last and key not in node and create:
                node[key] = {} if not parts[i + 1].isdigit() else []
        else:
            raise InputError(f"'{'.'.join(map(str, loc))}' is a value ({node!r}), not a section with '{part}'",
                             field=path)
        loc.append(key)
        if not last:
            node = node[key] if isinstance(node, list) or key in node else None
    return loc


def _list_index(items: list, part: str, loc: list, path: str) -> int:
    if part.lstrip("-").isdigit():
        index = int(part)
        if not 0 <= index < len(items):
            raise InputError(f"index {index} is out of range: '{'.'.join(map(str, loc))}' has {len(items)} entries",
                             field=path)
        return index
    name_key = NAMED_ENTRIES.get(str(loc[-1]) if loc else "")
    if name_key is None:
        raise InputError(f"'{'.'.join(map(str, loc))}' is a list: name an entry by its index", field=path)
    names = [e.get(name_key) if isinstance(e, dict) else None for e in items]
    if part not in names:
        raise InputError(f"no entry with {name_key} '{part}' in '{'.'.join(map(str, loc))}'"
                         f"{did_you_mean(part, [n for n in names if n is not None])} "
                         f"(there are: {', '.join(map(str, names))})", field=path)
    return names.index(part)


def set_value(data: Any, loc: Sequence[str | int], value: Any) -> None:
    node = data
    for key in loc[:-1]:
        node = node[key]
    node[loc[-1]] = copy.deepcopy(value)


def get_value(data: Any, loc: Sequence[str | int]) -> Any:
    node = data
    for depth, key in enumerate(loc):
        if isinstance(node, dict) and key not in node:
            inside = ".".join(map(str, loc[:depth])) or "the scenario"
            raise InputError(f"no field '{key}' in {inside}{did_you_mean(key, node)} (fields: {', '.join(sorted(node))})",
                             field=".".join(map(str, loc)))
        node = node[key]
    return node


class _OverriddenDocument(YamlDocument):
    """Locates errors in an overridden field at its `--set` option, others in the file."""

    def __init__(self, doc: YamlDocument, data: Any, options: dict[tuple, str]):
        super().__init__(data, doc.root, doc.where)
        self.options = options

    def locate(self, loc: Sequence[str | int]) -> str:
        for prefix, option in self.options.items():
            if tuple(loc[: len(prefix)]) == prefix:
                return option
        return super().locate(loc)


def apply_overrides(doc: YamlDocument, assignments: Sequence[tuple[str, Any]], *,
                    check_references: bool = True) -> Scenario:
    """The scenario of `doc` with each (path, value) set, validated like a scenario file."""
    if not isinstance(doc.data, dict):
        raise InputError("a scenario file must be a mapping of fields (name, duration, fleet, ...)", where=doc.where)
    data = copy.deepcopy(doc.data)
    options: dict[tuple, str] = {}
    for path, value in assignments:
        option = f"--set {path}={_show(value)}"
        try:
            loc = resolve_path(data, path)
        except InputError as exc:
            raise InputError(exc.message, where=option, field=exc.field) from None
        set_value(data, loc, value)
        options[tuple(loc)] = option
    over = _OverriddenDocument(doc, data, options)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise pydantic_error_to_input_error(exc, over, Scenario) from None
    if check_references:
        check_scenario_references(scenario, over)
    return scenario


def _show(value: Any) -> str:
    return value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def validated_value(scenario: Scenario, path: str) -> Any:
    """The value at `path` in the validated scenario (SI units: durations in seconds)."""
    data = scenario.model_dump(mode="json")
    return get_value(data, resolve_path(data, path, create=False))


def numeric_bounds(scenario: Scenario, path: str) -> tuple[float | None, float | None, bool | None]:
    """(lower, upper, is_integer) of the field at `path` from the scenario's declared constraints
    (`ge`/`gt`/`le`/`lt`); None where the model does not say."""
    data = scenario.model_dump(mode="json")
    loc = resolve_path(data, path, create=False)
    model: Any = Scenario
    info = None
    for key in loc:
        if isinstance(key, int):
            continue  # list entries share their field's type
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or key not in model.model_fields:
            return None, None, None
        info = model.model_fields[key]
        model = inner_model(info.annotation)
    if info is None:
        return None, None, None
    is_int = info.annotation is int if info.annotation in (int, float) else None
    lo = hi = None
    for meta in info.metadata:
        if getattr(meta, "ge", None) is not None:
            lo = meta.ge
        if getattr(meta, "le", None) is not None:
            hi = meta.le
        # strict bounds become the nearest allowed value
        if getattr(meta, "gt", None) is not None:
            lo = meta.gt + 1 if is_int else math.nextafter(meta.gt, math.inf)
        if getattr(meta, "lt", None) is not None:
            hi = meta.lt - 1 if is_int else math.nextafter(meta.lt, -math.inf)
    return lo, hi, is_int
