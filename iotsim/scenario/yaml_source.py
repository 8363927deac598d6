"""Read YAML while remembering where each value came from, so errors can name file and line.

Scenario files never execute code: only PyYAML's safe constructors are used.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import yaml

from iotsim.errors import InputError, did_you_mean

# libyaml's safe loader where PyYAML was built with it (several times faster), else the pure-Python
# one: the same safe constructors either way, so scenario and device files never execute code
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlDocument:
    """A parsed YAML document plus its node tree, for turning a field path into a line number."""

    def __init__(self, data: Any, root: yaml.Node | None, where: str):
        self.data = data
        self.root = root
        self.where = where

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """1-based line of the deepest node along `loc` that exists in the file."""
        node = self.root
        line = node.start_mark.line + 1 if node is not None else None
        for key in loc:
            if isinstance(node, yaml.MappingNode):
                match = None
                for k_node, v_node in node.value:
                    if isinstance(k_node, yaml.ScalarNode) and k_node.value == str(key):
                        match = (k_node, v_node)
                        break
                if match is None:
                    break
                line = match[0].start_mark.line + 1
                node = match[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
                node = node.value[key]
                line = node.start_mark.line + 1
            else:
                break
        return line

    def locate(self, loc: Sequence[str | int]) -> str:
        line = self.line_of(loc)
        return f"{self.where}:{line}" if line else self.where


def _check_duplicate_keys(node: yaml.Node, where: str) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for k_node, v_node in node.value:
            if isinstance(k_node, yaml.ScalarNode):
                if k_node.value in seen:
                    raise InputError(
                        f"key '{k_node.value}' appears twice (first on line {seen[k_node.value]})",
                        where=f"{where}:{k_node.start_mark.line + 1}",
                    )
                seen[k_node.value] = k_node.start_mark.line + 1
            _check_duplicate_keys(v_node, where)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_duplicate_keys(item, where)


def parse_yaml_text(text: str, where: str) -> YamlDocument:
    """Parse YAML text (safe loader); syntax errors become InputError with the line."""
    try:
        root = yaml.compose(text, Loader=SAFE_LOADER)
        if root is not None:
            _check_duplicate_keys(root, where)
        data = yaml.load(text, Loader=SAFE_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = f"{where}:{mark.line + 1}" if mark else where
        raise InputError(f"YAML syntax error: {exc.problem or exc}", where=loc) from None
    except yaml.YAMLError as exc:
        raise InputError(f"YAML error: {exc}", where=where) from None
    return YamlDocument(data, root, where)


def read_yaml(path: str | Path) -> YamlDocument:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("file not found", where=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read file: {exc}", where=str(path)) from None
    return parse_yaml_text(text, str(path))


def _is_field_name(part: object) -> bool:
    """pydantic puts union branch tags ("literal['a','b']", "CascadePolicy", "function-after[...]")
    into error locations; only real field names and list indices belong in a field path."""
    if isinstance(part, int):
        return True
    return isinstance(part, str) and part.isidentifier() and not part[:1].isupper()


# list fields whose entries are named (in field paths and `--set`) by a key instead of an index
NAMED_ENTRIES = {"fleet": "group", "gateways": "id"}


def field_path(data: Any, loc: Sequence[str | int]) -> str:
    """`loc` as a dotted path in the names `--set` takes: a fleet group or gateway by its name
    (`fleet.soil.count`, not `fleet.0.count`) where the entry has a usable one, else by index."""
    parts: list[str] = []
    node = data
    for depth, key in enumerate(loc):
        if isinstance(key, int) and isinstance(node, list) and 0 <= key < len(node):
            name_key = NAMED_ENTRIES.get(str(loc[depth - 1])) if depth else None
            names = [e.get(name_key) if isinstance(e, dict) else None for e in node] if name_key else []
            name = names[key] if names else None
            usable = (isinstance(name, str) and name and "." not in name and not name.lstrip("-").isdigit()
                      and names.count(name) == 1)
            parts.append(name if usable else str(key))
            node = node[key]
            continue
        parts.append(str(key))
        node = node.get(key) if isinstance(node, dict) else None
    return ".".join(parts)


def inner_model(annotation: Any) -> Any:
    """The pydantic model a field holds, through list[...], Optional[...] and unions."""
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        inner = inner_model(arg)
        if inner is not None:
            return inner
    return None


def _field_info(model: Any, loc: Sequence[str | int]) -> Any:
    """The pydantic FieldInfo at `loc` (list indices skipped), or None."""
    info = None
    for key in loc:
        if isinstance(key, int):
            continue
        if model is None or key not in model.model_fields:
            return None
        info = model.model_fields[key]
        model = inner_model(info.annotation)
    return info


def _is_duration(model: Any, loc: Sequence[str | int]) -> bool:
    from iotsim.units import parse_duration_s

    info = _field_info(model, [k for k in loc if not isinstance(k, int)]) if model is not None else None
    found = [info.annotation, *info.metadata] if info is not None else []
    for item in found:
        for meta in [item, *getattr(item, "__metadata__", ())]:
            if getattr(meta, "func", None) is parse_duration_s:
                return True
    return False


def _fields_at(model: Any, loc: Sequence[str | int]) -> list[str]:
    """Field names of the model found at `loc` (list indices skipped); [] where unknown."""
    for key in loc:
        if isinstance(key, int):
            continue
        if model is None or key not in model.model_fields:
            return []
        model = inner_model(model.model_fields[key].annotation)
    return list(model.model_fields) if model is not None else []


def pydantic_error_to_input_error(exc: Any, doc: YamlDocument, model: Any = None) -> InputError:
    """Turn the first error of a pydantic ValidationError into one located InputError (`model`: the
    validated pydantic model, for "did you mean" on unknown field names)."""
    # an unknown field is usually a typo that also causes a "field required": report the typo
    # and where a union takes a name or a mapping, a mapping's problems beat "should be a string"
    errors = sorted(
        exc.errors(),
        key=lambda e: (e.get("type") != "extra_forbidden", e.get("type") == "string_type" and isinstance(e.get("input"), dict)),
    )
    err = errors[0]
    loc = [p for p in err.get("loc", ()) if _is_field_name(p)]
    field = field_path(doc.data, loc) or None
    msg = err.get("msg", "invalid value")
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    # the other branches of a union failing at the same place are one problem, not several
    same_place = [e for e in errors if [p for p in e.get("loc", ()) if _is_field_name(p)] == loc]
    if err.get("type") == "extra_forbidden":
        hint = did_you_mean(loc[-1], _fields_at(model, loc[:-1])) if loc and model is not None else ""
        msg = f"unknown field{hint} (check the spelling; `iotsim schema` lists the fields)"
    elif "input" in err and err.get("type") not in ("missing",):
        if err.get("type", "").startswith(("greater_than", "less_than")) and _is_duration(model, loc):
            msg = re.sub(r"(than|equal to) (\S+)$", lambda m: f"{m.group(1)} {float(m.group(2)):g} s", msg)
        shown = repr(err["input"])
        if len(shown) > 60:
            shown = shown[:57] + "..."
        msg = f"{msg} (got {shown})"
        if err.get("type") == "literal_error":  # a misspelt choice: policies, technology, region, ...
            msg += did_you_mean(err["input"], re.findall(r"'([^']*)'", str(err.get("ctx", {}).get("expected", ""))))
    others = len(errors) - len(same_place)
    if others > 0:
        msg += f" [and {others} more problem(s)]"
    return InputError(msg, where=doc.locate(loc), field=field)
