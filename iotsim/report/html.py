"""Self-contained HTML report (``report.html``) of one scenario run.

The page has inline CSS only (no scripts, fonts, CDNs or other network resources); plots
are referenced by their path relative to the report folder.  All text coming from the
caller is escaped.  The output has no timestamps, so the same inputs give the same bytes.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from iotsim import __version__
from iotsim.results.metrics import METRICS

REPORT_FILENAME = "report.html"
DAYS_PER_YEAR = 365.25
MISSING = "\u2014"  # em dash shown for NaN / not available

# Known summary columns: (column, header with units, kind), from the metric registry.  Kinds: text, int, float, ratio.
SUMMARY_COLUMNS: list[tuple[str, str, str]] = [
    ("policy", "Policy", "text"),
    ("group", "Group", "text"),
    *((m.name, m.label, m.kind) for m in METRICS),
]
# battery life in years, derived from days for the report
SUMMARY_COLUMNS.insert([c[0] for c in SUMMARY_COLUMNS].index("battery_life_days") + 1,
                       ("battery_life_years", "Battery life (years)", "float"))
_UNIT_SUFFIXES = [("_per_node_day", "per node per day"), ("_days", "days"), ("_s", "s"),
                  ("_j", "J"), ("_w", "W"), ("_bytes", "bytes")]

PLOT_CAPTIONS = {
    "energy_breakdown.png": "Mean energy per node per day, stacked by component (J/day).",
    "battery_life.png": "Distribution of projected battery life per node (days; years on the right axis).",
    "latency_cdf.png": "Empirical CDF of detection latency for detected events; recall in the legend.",
    "bytes_on_air.png": "Bytes uplinked per node per day, total radio airtime, and the fate of every packet (frame) "
                        "offered, with the share of messages delivered (a message may need several packets).",
}

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; margin-top: 1.6em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
table { border-collapse: collapse; font-size: 0.88em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.55em; }
th { background: #f2f2f2; text-align: left; vertical-align: bottom; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.na { text-align: center; color: #888; }
table.summary { width: 100%; table-layout: fixed; }
table.summary caption { text-align: left; font-weight: 600; padding: 0.3em 0; }
table.summary th, table.summary td { overflow-wrap: anywhere; }
table.summary th.metric { width: 34%; }
table.summary thead th { text-align: right; }
table.summary thead th.metric { text-align: left; }
#findings ul { padding-left: 1.2em; }
#findings li { margin: 0.25em 0; }
#findings .flag { color: #8a4b00; }
#findings .scope { font-size: 0.9em; color: #555; }
figure { margin: 1.2em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #555; }
table.manifest td { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.95em; }
footer { margin-top: 2em; font-size: 0.8em; color: #777; }
""".strip()


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _is_missing(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def format_value(value: object, kind: str) -> str:
    """Text of one table cell (unescaped).

    ``int``: thousands separators; ``float``: no decimals from 100 up (with separators),
    three significant digits below; ``ratio``: three decimals; NaN/None: an em dash;
    infinity: the infinity sign.
    """
    if _is_missing(value):
        return MISSING
    if kind == "text":
        return str(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isinf(x):
        return "\u221e" if x > 0 else "-\u221e"
    if kind == "int":
        return f"{int(round(x)):,}"
    if kind == "ratio":
        return f"{x:.3f}"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def _extra_header(column: str) -> str:
    for suffix, unit in _UNIT_SUFFIXES:
        if column.endswith(suffix):
            return f"{column} ({unit})"
    return column


def _extra_kind(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_integer_dtype(series):
        return "int"
    if pd.api.types.is_float_dtype(series):
        return "float"
    return "text"


def summary_columns(summary: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(column, header, kind) for the table: known columns in fixed order, then extras."""
    present = set(summary.columns)
    if "battery_life_days" in present:
        present.add("battery_life_years")
    cols = [c for c in SUMMARY_COLUMNS if c[0] in present]
    known = {c[0] for c in SUMMARY_COLUMNS}
    for col in summary.columns:
        if str(col) not in known:
            cols.append((str(col), _extra_header(str(col)), _extra_kind(summary[col])))
    return cols


def _summary_table(summary: pd.DataFrame | None) -> str:
    """One table per group, metrics as rows and policies as columns, so it fits the page at any number
    of metrics (no sideways scrolling, no hidden columns)."""
    if summary is None or len(summary) == 0:
        return "<p>No summary rows.</p>"
    summary = summary.copy()
    summary.columns = [str(c) for c in summary.columns]
    if "group" not in summary.columns:
        summary["group"] = "all"
    if "battery_life_days" in summary.columns:
        summary["battery_life_years"] = summary["battery_life_days"].astype(float) / DAYS_PER_YEAR
    cols = [c for c in summary_columns(summary) if c[0] not in ("policy", "group")]
    groups = list(dict.fromkeys(summary["group"].astype(str)))
    lines = []
    for group in groups:
        part = summary[summary["group"].astype(str) == group]
        lines.append('<table class="summary">')
        lines.append(f"<caption>Group: {_e(group)} ({len(part)} policies)</caption>")
        lines.append('<thead><tr><th scope="col" class="metric">Metric</th>'
                     + "".join(f'<th scope="col">{_e(p)}</th>' for p in part["policy"]) + "</tr></thead>")
        lines.append("<tbody>")
        for col, header, kind in cols:
            cells = []
            for value in part[col]:
                text = format_value(value, kind)
                if text == MISSING:
                    cls = ' class="na" title="not available"'
                elif kind == "text":
                    cls = ""
                else:
                    cls = ' class="num"'
                cells.append(f"<td{cls}>{_e(text)}</td>")
            lines.append(f'<tr><th scope="row" class="metric">{_e(header)}</th>' + "".join(cells) + "</tr>")
        lines.append("</tbody></table>")
    lines.append(f'<p class="legend">{_e(MISSING)} = not available (e.g. no detections, so '
                 "no latency or precision).</p>")
    return "\n".join(lines)


def _findings(findings) -> str:
    """Flags, then the best policy per metric with intervals, then the energy explanation."""
    if findings is None:
        return "<p>No findings.</p>"
    lines = []
    if findings.flags:
        lines.append("<ul>" + "".join(f'<li class="flag"><strong>Flag:</strong> {_e(f)}</li>'
                                      for f in findings.flags) + "</ul>")
    lines.append("<ul>" + "".join(f"<li>{_e(c)}</li>" for c in findings.comparison_lines())
                 + "".join(f"<li>{_e(e)}</li>" for e in findings.energy) + "</ul>")
    lines.append(f'<p class="scope">{_e(findings.scope)}</p>')
    return "\n".join(lines)


def _flatten(mapping: Mapping, prefix: str = "") -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out += _flatten(value, name + ".")
        else:
            out.append((name, value))
    return out


def _manifest_value(value: object) -> str:
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return ", ".join(str(v) for v in items)
    return str(value)


def _manifest_table(manifest: Mapping | None) -> str:
    rows = _flatten(manifest or {})
    if not rows:
        return "<p>No manifest.</p>"
    lines = ['<table class="manifest"><tbody>']
    for key, value in rows:
        lines.append(f'<tr><th scope="row">{_e(key)}</th><td>{_e(_manifest_value(value))}</td></tr>')
    lines.append("</tbody></table>")
    return "\n".join(lines)


def _plots(out_dir: Path, plot_paths: list[Path]) -> str:
    if not plot_paths:
        return "<p>No plots.</p>"
    lines = []
    for p in plot_paths:
        p = Path(p)
        rel = Path(os.path.relpath(p.resolve(), out_dir.resolve())).as_posix()
        caption = PLOT_CAPTIONS.get(p.name, p.stem.replace("_", " "))
        lines.append(
            f'<figure><img src="{_e(quote(rel))}" alt="{_e(caption)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>"
        )
    return "\n".join(lines)


def _paragraphs(text: str) -> str:
    paras = [p.strip() for p in str(text or "").replace("\r\n", "\n").split("\n\n")]
    paras = [p for p in paras if p]
    if not paras:
        return "<p>No description.</p>"
    return "\n".join(f"<p>{_e(p)}</p>" for p in paras)


def _notes(notes: list[str]) -> str:
    if not notes:
        return "<p>No notes.</p>"
    return "<ul>\n" + "\n".join(f"<li>{_e(n)}</li>" for n in notes) + "\n</ul>"


def write_report(out_dir: Path, summary: pd.DataFrame, scenario_name: str, description: str,
                 manifest: dict, plot_paths: list[Path], notes: list[str], findings=None) -> Path:
    """Write ``out_dir/report.html`` and return its path.

    ``plot_paths`` are referenced relative to ``out_dir`` (normally just the file name);
    the PNGs are not copied.  ``manifest`` may nest dicts (shown with dotted keys).  ``findings``
    (iotsim.results.findings.Findings) are shown first.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    title = f"iotsim report \u2014 {scenario_name}"
    body = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>
{_CSS}
</style>
</head>
<body>
<header>
<h1>{_e(title)}</h1>
</header>
<section id="findings">
<h2>Findings</h2>
{_findings(findings)}
</section>
<section id="description">
<h2>Scenario</h2>
{_paragraphs(description)}
</section>
<section id="summary">
<h2>Summary per policy and group</h2>
{_summary_table(summary)}
</section>
<section id="plots">
<h2>Plots</h2>
{_plots(out_dir, list(plot_paths or []))}
</section>
<section id="notes">
<h2>Methodology notes</h2>
{_notes(list(notes or []))}
</section>
<section id="manifest">
<h2>Run manifest</h2>
{_manifest_table(manifest)}
</section>
<footer>Generated by iotsim {_e(__version__)}.</footer>
</body>
</html>
"""
    path = out_dir / REPORT_FILENAME
    path.write_text(body, encoding="utf-8", newline="\n")
    return path
