"""The one error type for bad user input (scenario, device profile, model file, parameter).

The CLI turns it into a single message and exit code 2; library users catch it like any exception.
"""

from __future__ import annotations


class InputError(Exception):
    """Bad input, located: `where` names the file (and line) and `field` the dotted field path."""

    def __init__(self, message: str, *, where: str | None = None, field: str | None = None):
        self.message = message
        self.where = where
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = []
        if self.where:
            parts.append(self.where)
        if self.field:
            parts.append(f"field '{self.field}'")
        prefix = ": ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message


def did_you_mean(name: object, choices) -> str:
    """' (did you mean 'x'?)' naming the choices closest to a misspelt `name` (difflib), or ''."""
    if not isinstance(name, str):
        return ""
    import difflib

    close = difflib.get_close_matches(name, [str(c) for c in choices], n=2, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(f"'{c}'" for c in close) + "?)"
