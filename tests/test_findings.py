"""Findings (best policy per metric with paired intervals, energy explanation, flags) and readable output:
the terminal table within 80 columns, the HTML table without hidden columns, plots' value axes from zero."""

from __future__ import annotations

import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from iotsim.engine import run_scenario
from iotsim.report import plots as plots_module
from iotsim.report.html import write_report
from iotsim.results.findings import (Findings, calendar_flags, loss_flags, paired_difference, run_findings, statistic,
                                     sweep_findings, write_findings)
from iotsim.results.metrics import METRICS
from iotsim.results.tables import nodes_table, summary_table
from iotsim.scenario import load_scenario_text

REPO = Path(__file__).resolve().parents[1]
# two-sided 95 % Student's t quantiles t(0.975, df), from published tables (e.g. NIST/SEMATECH e-Handbook 1.3.6.7.2)
T975 = {2: 4.302652730, 9: 2.262157163, 29: 2.045229642}


def small_farm_text() -> str:
    """The shipped farm scenario at reduced size: 30 nodes, one day."""
    text = (REPO / "scenarios" / "farm.yaml").read_text()
    text = text.replace("count: 300", "count: 30").replace("duration: 7d", "duration: 1d")
    assert "count: 30\n" in text and "duration: 1d" in text
    return text


@pytest.fixture(scope="module")
def farm():
    result = run_scenario(load_scenario_text(small_farm_text()))
    nodes = nodes_table(result)
    summary = summary_table(result, nodes)
    return result, nodes, summary, run_findings(result, summary, nodes)


# --------------------------------------------------------------------------- intervals


def test_paired_t_interval_matches_hand_computation():
    rng = np.random.default_rng(5)
    a = rng.normal(10.0, 2.0, 10)
    b = a + rng.normal(0.7, 0.3, 10)  # same units, correlated: pairing matters
    diff, low, high, how = paired_difference(a, b, "mean")
    d = b - a
    half = T975[9] * d.std(ddof=1) / np.sqrt(10)
    assert how == "t"
    assert diff == pytest.approx(d.mean(), rel=1e-12)
    assert (low, high) == pytest.approx((d.mean() - half, d.mean() + half), rel=1e-9)
    # a sum over units is n x the mean, and so is its interval
    s, slo, shi, _ = paired_difference(a, b, "sum")
    assert (s, slo, shi) == pytest.approx((10 * d.mean(), 10 * (d.mean() - half), 10 * (d.mean() + half)), rel=1e-9)
    # unpaired, the same data would give a far wider interval: the pairing is what makes it narrow
    assert high - low < T975[9] * np.sqrt(a.var(ddof=1) / 10 + b.var(ddof=1) / 10)


def test_paired_bootstrap_of_a_ratio_and_a_median():
    rng = np.random.default_rng(1)
    den = rng.integers(50, 100, 200).astype(float)
    a = np.column_stack([rng.binomial(den.astype(int), 0.5), den])
    b = np.column_stack([rng.binomial(den.astype(int), 0.6), den])
    diff, low, high, how = paired_difference(a, b, "ratio")
    assert how == "bootstrap"
    assert diff == pytest.approx(b[:, 0].sum() / den.sum() - a[:, 0].sum() / den.sum())
    assert low < diff < high and 0 < low and high < 0.2
    assert paired_difference(a, b, "ratio") == (diff, low, high, how)  # fixed seed: same findings
    same = paired_difference(a, a, "ratio")
    assert same[:3] == (0.0, 0.0, 0.0)
    x = rng.normal(size=(40, 31))
    x[rng.random(x.shape) < 0.2] = np.nan
    np.testing.assert_allclose(statistic(x, "p95"), np.nanpercentile(x, 95, axis=-1))
    np.testing.assert_allclose(statistic(x, "median"), np.nanmedian(x, axis=-1))


def test_run_findings_energy_interval_is_paired_across_the_nodes(farm):
    result, nodes, summary, findings = farm
    energy = next(c for c in findings.comparisons if c.metric == "energy_j_per_node_day")
    assert energy.best == "on_device" and energy.method == "paired across 30 nodes, t"
    per_day = nodes.assign(e=nodes.energy_j / (nodes.lifetime_in_run_s / 86400)).pivot(
        index="node_id", columns="policy", values="e")
    for d in energy.differences:
        diff = (per_day[d.policy] - per_day["on_device"]).to_numpy()
        half = T975[29] * diff.std(ddof=1) / np.sqrt(diff.size)
        assert d.diff == pytest.approx(diff.mean(), rel=1e-9)
        assert (d.low, d.high) == pytest.approx((diff.mean() - half, diff.mean() + half), rel=1e-6)
    # every metric that declares a direction and a sample gets a comparison; the text says how it was paired
    declared = {m.name for m in METRICS if m.better and m.sample and m.name in summary.columns}
    assert {c.metric for c in findings.comparisons} == declared
    text = "\n".join(findings.lines())
    assert "paired across 30 nodes" in text
    assert re.search(r"paired across \d+ events?, bootstrap", text)  # latency: per event (one event says so)


def test_precision_point_estimate_per_node_adds_up_to_the_summary(farm):
    result, nodes, summary, findings = farm
    precision = next(c for c in findings.comparisons if c.metric == "precision")
    values = summary.set_index("policy").precision
    for d in precision.differences:
        assert d.diff == pytest.approx(values[d.policy] - values[precision.best], abs=1e-12)


def test_findings_round_trip_through_json_and_markdown(farm, tmp_path):
    findings = farm[3]
    md, js = write_findings(findings, tmp_path, "Findings: farm")
    back = Findings.from_dict(json.loads(js.read_text()))
    assert back.lines() == findings.lines()
    assert md.read_text().startswith("# Findings: farm")


# --------------------------------------------------------------------------- flags and explanations


def _rows(ratio: float) -> pd.DataFrame:
    offered = 1000
    return pd.DataFrame({"policy": ["cloud_offload", "on_device"], "message_delivery_ratio": [ratio, 0.999],
                         "messages_delivered": [round(ratio * offered), 999], "messages_offered": [offered, 1000],
                         "packets_lost_collision": [40, 1], "packets_lost_duty_cycle": [900, 0]}).set_index("policy")


def test_loss_flag_above_the_threshold_only():
    flags = loss_flags(_rows(0.134))
    assert len(flags) == 1
    assert flags[0].startswith("cloud_offload delivers 13.4 % of its messages (134 of 1,000")
    assert "duty cycle 900, collision 40" in flags[0]
    assert loss_flags(_rows(0.96)) == []  # 4 % lost: under the 5 % threshold


def test_calendar_flag_names_the_nodes_limited_by_shelf_life():
    nodes = pd.DataFrame({"policy": ["a", "a", "b", "b"], "battery_life_limit": ["calendar", "energy", "energy", "energy"]})
    rows = pd.DataFrame({"policy": ["a", "b"], "battery_life_days": [5479.0, 900.0]}).set_index("policy")
    [flag] = calendar_flags(nodes, rows, "soil")
    assert "limited by calendar" in flag and "a 1 of 2" in flag and "a 5,479 d" in flag
    assert calendar_flags(nodes.assign(battery_life_limit="energy"), rows, "soil") == []


def test_farm_flags_calendar_and_the_false_alarm_arithmetic(farm):
    result, nodes, summary, findings = farm
    assert any("limited by calendar" in f for f in findings.flags) == (nodes.battery_life_limit == "calendar").any()
    [precision] = [f for f in findings.flags if f.startswith("precision")]
    # the arithmetic reproduces the best flagged policy's precision from base rate and false-positive rate
    numbers = re.search(r"precision = ([\d,]+) / \(([\d,]+) \+ ([\d,]+)\) = (\d\.\d+)", precision)
    assert numbers and float(numbers.group(4)) == pytest.approx(summary.precision.max(), abs=2e-3)


def test_model_warnings_become_flags(farm):
    import dataclasses

    result, nodes, summary, _ = farm
    warned = dataclasses.replace(result, warnings=["model 'x' was trained at 100 Hz; the workload samples at 50 Hz"])
    flags = run_findings(warned, summary, nodes).flags
    assert "model warning: model 'x' was trained at 100 Hz; the workload samples at 50 Hz" in flags


def test_counter_intuitive_energy_is_explained_by_component():
    from iotsim.results.findings import energy_findings

    nodes = pd.DataFrame({"policy": ["cloud", "device"] * 2, "group": "g", "lifetime_in_run_s": 86400.0,
                          "energy_mcu_j": [10.0, 30.0, 10.0, 30.0], "energy_radio_j": [20.0, 12.0, 20.0, 12.0],
                          "energy_sensor_j": 1.0})
    rows = pd.DataFrame({"policy": ["cloud", "device"], "energy_j_per_node_day": [31.0, 43.0],
                         "bytes_uplinked_per_node_day": [1e6, 1e3]}).set_index("policy")
    lines = energy_findings(nodes, rows, "g")
    assert "Why cloud uses least energy: device uses 12 J/node/day more (mcu +20, radio -8)." in lines
    assert any(line.startswith("Counter-intuitive: device uplinks fewer bytes than cloud") and "mcu +20" in line
               and "outweigh radio -8" in line for line in lines)


def test_sweep_findings_pair_policies_by_replication():
    runs = pd.DataFrame({
        "point": 0, "replication": [0, 0, 1, 1, 2, 2], "group": "g", "policy": ["a", "b"] * 3,
        "energy_j_per_node_day": [1.0, 2.0, 1.5, 2.7, 0.9, 1.8],
    })
    f = sweep_findings(runs, [])
    [c] = [c for c in f.comparisons if c.metric == "energy_j_per_node_day"]
    d = np.array([1.0, 1.2, 0.9])
    half = T975[2] * d.std(ddof=1) / np.sqrt(3)
    assert c.best == "a" and c.method == "paired across 3 replications, t"
    assert (c.differences[0].diff, c.differences[0].low, c.differences[0].high) == pytest.approx(
        (d.mean(), d.mean() - half, d.mean() + half))


# --------------------------------------------------------------------------- readable output


def test_terminal_table_and_findings_fit_80_columns(farm, tmp_path, monkeypatch):
    from iotsim import cli

    result, nodes, summary, findings = farm
    buffer = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(width=80, file=buffer, force_terminal=False, color_system=None))
    write_findings(findings, tmp_path, "f")
    cli._print_summary(summary, "farm", result.n_nodes, result.scenario.duration, 1.0)
    cli._print_findings(tmp_path)
    text = buffer.getvalue()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    header = next(line for line in lines if "metric" in line)
    for policy in summary.policy:
        assert re.search(rf"[\s│┃]{policy}[\s│┃]", header), policy  # whole name, not cut
    for m in METRICS:
        if m.terminal and result.technology in m.technologies and not m.harvesting:  # LoRaWAN, no solar
            assert any(line.startswith(f"│ {m.short} ") for line in lines), m.short
    assert "…" not in text
    assert "Findings" in text and "paired across 30 nodes" in text


class _Tables(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables, self.row, self.cells, self.styles = [], None, None, ""
        self.in_style = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        assert "display:none" not in (attrs.get("style") or "").replace(" ", "")
        if tag == "table" and "summary" in (attrs.get("class") or ""):
            self.cells = []
        elif tag == "tr" and self.cells is not None:
            self.row = 0
        elif tag in ("td", "th") and self.row is not None:
            self.row += int(attrs.get("colspan", 1))
        elif tag == "style":
            self.in_style = True

    def handle_endtag(self, tag):
        if tag == "tr" and self.row is not None:
            self.cells.append(self.row)
            self.row = None
        elif tag == "table" and self.cells is not None:
            self.tables.append(self.cells)
            self.cells = None
        elif tag == "style":
            self.in_style = False

    def handle_data(self, data):
        if self.in_style:
            self.styles += data


def test_html_summary_shows_every_metric_and_policy_without_hidden_columns(farm, tmp_path):
    result, nodes, summary, findings = farm
    path = write_report(tmp_path, summary, "farm", "d", {}, [], [], findings)
    text = path.read_text()
    parser = _Tables()
    parser.feed(text)
    [table] = parser.tables  # one group
    assert set(table) == {1 + len(summary)}  # every row: the metric and one cell per policy
    metrics = [c for c in summary.columns if c not in ("policy", "group")]
    assert len(table) == 1 + len(metrics) + 1  # header, one row per metric (+ battery life in years)
    css = parser.styles.replace(" ", "")
    assert "overflow-x" not in css and "display:none" not in css and "visibility:hidden" not in css
    assert "table-layout:fixed" in css and "width:100%" in css  # the table takes the page width, never more
    # findings come first, flags included
    assert text.index('id="findings"') < text.index('id="summary"')
    assert "limited by calendar" in text or "Flag:" in text


def test_plot_value_axes_start_at_zero_unless_labelled_log(monkeypatch, tmp_path):
    from tests.test_report import make_events, make_nodes, make_packets, make_summary

    figures = []
    monkeypatch.setattr(plots_module, "_save", lambda fig, path: figures.append(fig) or path)
    plots_module.write_plots(tmp_path, make_summary(), make_nodes(), make_events(), make_packets())
    checked = 0
    for fig in figures:
        for ax in fig.axes:
            if not ax.get_ylabel() or not ax.has_data():
                continue
            if ax.get_yscale() == "log":
                assert "log scale" in ax.get_ylabel(), ax.get_ylabel()
            else:
                assert ax.get_ylim()[0] == 0, (ax.get_title(), ax.get_ylim())
            checked += 1
    assert checked >= 5


def test_battery_axis_starts_at_zero_for_lives_close_together(monkeypatch, tmp_path):
    from tests.test_report import make_nodes

    nodes = make_nodes()
    nodes["battery_life_days"] = 13_000.0 + np.arange(len(nodes))  # a 24 % gap must not look enormous
    figures = []
    monkeypatch.setattr(plots_module, "_save", lambda fig, path: figures.append(fig) or path)
    plots_module._plot_battery_life(tmp_path / "b.png", nodes, ["cloud_offload", "on_device"],
                                    {"cloud_offload": "b", "on_device": "g"})
    ax = figures[0].axes[0]
    assert ax.get_yscale() == "linear" and ax.get_ylim()[0] == 0


def test_packet_fate_panel_counts_packets_and_states_message_delivery(monkeypatch, tmp_path):
    from tests.test_report import make_packets, make_summary

    figures = []
    monkeypatch.setattr(plots_module, "_save", lambda fig, path: figures.append(fig) or path)
    summary = make_summary().assign(messages_offered=100, messages_delivered=[50, 50, 90, 90])
    plots_module._plot_bytes_on_air(tmp_path / "x.png", summary, make_packets(), ["cloud_offload", "on_device"],
                                    {"cloud_offload": "b", "on_device": "g"})
    fate = next(ax for ax in figures[0].axes if "fate" in ax.get_title())
    assert "packets" in fate.get_title() and fate.get_ylabel() == "Packets (%)"
    notes = [t.get_text() for t in fate.texts]
    assert any("messages: 50.0% delivered" in n for n in notes) and any("messages: 90.0% delivered" in n for n in notes)


def test_coinciding_latency_curves_stay_visible(monkeypatch, tmp_path):
    from tests.test_report import make_events

    events = make_events()
    figures = []
    monkeypatch.setattr(plots_module, "_save", lambda fig, path: figures.append(fig) or path)
    policies = list(dict.fromkeys(events.policy))
    plots_module._plot_latency_cdf(tmp_path / "l.png", events, policies, {p: "k" for p in policies})
    lines = [line for line in figures[0].axes[0].get_lines() if line.get_label() and not line.get_label().startswith("_")]
    styles = {(line.get_linestyle(), line.get_linewidth()) for line in lines}
    assert len(styles) == len(lines)  # same colour, same data: still told apart
