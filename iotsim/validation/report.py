"""docs/validation.md: the validation table and its plots (measured points on the expected curve)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from iotsim.validation import Validation


def _num(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 1e4 or abs(x) < 1e-3:
        return f"{x:.4g}"
    return f"{x:.6g}"


def markdown(v: Validation, command: str) -> str:
    lines = [
        "# Validation: the simulator against closed forms and published values",
        "",
        f"Produced by `{command}` (the quick subset, `iotsim validate --quick`, runs in the test suite).",
        "Each check runs the simulator's own code; the table gives what it should be, what it is, and",
        "the tolerance. Regenerate this file with the command above.",
        "",
        f"**{sum(r.passed for r in v.results)} of {len(v.results)} checks pass.**",
        "",
        "| group | check | expected | measured | tolerance | verdict | source |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for r in v.results:
        unit = f" {r.unit}" if r.unit else ""
        lines.append(f"| {r.group} | {r.check} | {_num(r.expected)}{unit} | {_num(r.measured)}{unit} | "
                     f"{r.tolerance_text} | {'pass' if r.passed else '**FAIL**'} | {r.source} |")
    if v.failure_notes:
        lines += ["", "## Why checks fail", ""]
        lines += [f"- `{name}`: {text}" for name, text in v.failure_notes.items()]
    if v.figures:
        lines += ["", "## Plots", ""]
        for f in v.figures:
            lines += [f"![{f.title}](validation_{f.name}.png)", ""]
    lines += ["", "Wall time per check (s): " + ", ".join(f"{k} {s:.1f}" for k, s in v.seconds.items()), ""]
    return "\n".join(lines)


def write(v: Validation, out_md: Path, command: str) -> list[Path]:
    """Write the markdown file and one PNG per figure beside it (atomically); returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_md = Path(out_md)
    out_md.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for f in v.figures:
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        ax.plot(f.x, f.expected, "-", color="0.3", label="expected (closed form)")
        ax.plot(f.x, f.measured, "o", color="tab:blue", label="measured (iotsim)")
        ax.set_xlabel(f.x_label)
        ax.set_ylabel(f.y_label)
        ax.set_title(f.title, fontsize=10)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_md.parent / f"validation_{f.name}.png"
        _atomic(path, lambda p: fig.savefig(p, dpi=110, format="png"))
        plt.close(fig)
        written.append(path)
    text = markdown(v, command)
    _atomic(out_md, lambda p: Path(p).write_text(text))
    written.append(out_md)
    return written


def _atomic(path: Path, write_to) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    os.close(fd)
    try:
        write_to(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
