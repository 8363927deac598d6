"""Tests for iotsim.report: PNG plots and the HTML report, on small synthetic run tables."""

from __future__ import annotations

import math
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iotsim.report import write_plots, write_report
from iotsim.report.html import format_value
from iotsim.report.plots import (
    BATTERY_LIFE_PNG,
    BYTES_ON_AIR_PNG,
    DPI,
    ENERGY_BREAKDOWN_PNG,
    LATENCY_CDF_PNG,
    PACKET_COLUMNS,
    energy_per_node_day,
    packet_fate,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DAY_S = 86400.0
DURATION_S = 2 * DAY_S
POLICIES = ["cloud_offload", "on_device"]
GROUPS = ["barn", "field"]
PLOT_NAMES = [ENERGY_BREAKDOWN_PNG, BATTERY_LIFE_PNG, LATENCY_CDF_PNG, BYTES_ON_AIR_PNG]


# --------------------------------------------------------------------------- fixtures


def make_summary() -> pd.DataFrame:
    rows = [
        # policy, group, nodes, energy, life_days, bytes/day, sent, delivered, lost, p50, p95, prec, recall, cloud
        ("cloud_offload", "barn", 3, 1234.4, 120.0, 2_500_000.0, 28800, 28000, 800, 1.25, 4.5, 0.9, 0.875, 28000),
        ("cloud_offload", "field", 3, 1500.2, 98.0, 2_600_000.0, 30000, 29000, 1000, 1.5, 6.0, 0.8, 0.75, 29000),
        ("on_device", "barn", 3, 12.34, 3650.0, 512.0, 40, 39, 1, 0.05, 0.2, 0.95, 0.625, 0),
        ("on_device", "field", 3, 13.0, 3400.0, 600.0, 42, 40, 2, np.nan, np.nan, np.nan, 0.0, 0),
    ]
    cols = ["policy", "group", "nodes", "energy_j_per_node_day", "battery_life_days",
            "bytes_uplinked_per_node_day", "packets_sent", "packets_delivered", "packets_lost",
            "latency_p50_s", "latency_p95_s", "precision", "recall", "cloud_inferences"]
    df = pd.DataFrame(rows, columns=cols)
    df["extra_metric_s"] = [0.5, 0.25, 0.125, 2.0]  # extra columns must be tolerated
    return df


def make_nodes() -> pd.DataFrame:
    rows = []
    k = 0
    for policy in POLICIES:
        for group in GROUPS:
            for i in range(3):
                k += 1
                scale = 100.0 if policy == "cloud_offload" else 1.0
                mcu, sensor, radio = 2.0 * k, 1.0 * k, scale * (5.0 + i)
                rows.append({
                    "node_id": f"{group}-{i}",
                    "policy": policy,
                    "group": group,
                    "energy_j": mcu + sensor + radio,
                    "energy_mcu_j": mcu,
                    "energy_sensor_j": sensor,
                    "energy_radio_j": radio,
                    "battery_life_days": (90.0 + 10 * i) if policy == "cloud_offload" else (3000.0 + 300 * i),
                    "died_at_s": 1000.0 if (policy == "cloud_offload" and i == 0) else np.nan,
                    "bytes_uplinked": 1000 * k,
                    "duration_s": DURATION_S,
                    "firmware": "v1",  # extra column
                })
    return pd.DataFrame(rows)


def make_events() -> pd.DataFrame:
    rows = []
    for policy in POLICIES:
        for group in GROUPS:
            for j in range(8):
                detected = policy == "cloud_offload" or j % 2 == 0
                latency = (0.5 + j) if policy == "cloud_offload" else 0.02 * (j + 1)
                rows.append({
                    "node_id": f"{group}-{j % 3}", "policy": policy, "group": group,
                    "onset_s": 100.0 * j, "detected": detected,
                    "latency_s": latency if detected else np.nan,
                })
    return pd.DataFrame(rows)


def make_packets() -> pd.DataFrame:
    rows = []
    reasons = ["", "", "", "collision", "", "below_sensitivity", "", "fragment_lost"]
    for policy in POLICIES:
        n = 16 if policy == "cloud_offload" else 4
        for j in range(n):
            reason = reasons[j % len(reasons)]
            rows.append({
                "node_id": f"barn-{j % 3}", "policy": policy, "group": GROUPS[j % 2],
                "kind": "raw" if policy == "cloud_offload" else ("event" if j % 2 else "heartbeat"),
                "bytes": 1200 if policy == "cloud_offload" else 24,
                "frames": 6 if policy == "cloud_offload" else 1,
                "airtime_s": 1.2 if policy == "cloud_offload" else 0.05,
                "delivered": reason == "",
                "loss_reason": reason,
            })
    return pd.DataFrame(rows)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture
def tables():
    return make_summary(), make_nodes(), make_events(), make_packets()


MANIFEST = {
    "seed": 1234,
    "scenario_hash": "sha256:abc123",
    "versions": {"iotsim": "0.1.0", "numpy": "1.26.4"},
    "policies": ["cloud_offload", "on_device"],
}
NOTES = [
    "Battery life is projected linearly from the mean power over the simulated window.",
    "Latency is measured from event onset to cloud receipt (<= window + airtime).",
]


# --------------------------------------------------------------------------- plots


def test_write_plots_writes_four_valid_pngs_of_fixed_size(tmp_path, tables):
    paths = write_plots(tmp_path / "out", *tables)
    assert [p.name for p in paths] == PLOT_NAMES
    for p in paths:
        assert p.parent == tmp_path / "out"
        assert p.stat().st_size > 1000
        assert p.read_bytes()[:8] == PNG_MAGIC
    # Figure size is fixed (no tight bbox): energy breakdown widens with one subplot per group.
    assert png_size(paths[0]) == (int(4.5 * 2 * DPI), int(4.5 * DPI))
    assert png_size(paths[1]) == (int(8.0 * DPI), int(4.8 * DPI))
    assert png_size(paths[2]) == (int(8.0 * DPI), int(4.8 * DPI))
    assert png_size(paths[3]) == (int(15.0 * DPI), int(4.8 * DPI))


def test_png_output_is_byte_identical_across_writes(tmp_path, tables):
    first = write_plots(tmp_path / "a", *tables)
    second = write_plots(tmp_path / "b", *tables)
    again = write_plots(tmp_path / "a", *tables)
    for p, q, r in zip(first, second, again):
        assert p.read_bytes() == q.read_bytes()
        assert q.read_bytes() == r.read_bytes()
        assert b"Software" not in p.read_bytes()


def test_pngs_depend_on_data(tmp_path, tables):
    summary, nodes, events, packets = tables
    base = write_plots(tmp_path / "base", *tables)
    nodes2 = nodes.assign(energy_radio_j=nodes["energy_radio_j"] * 3)
    other = write_plots(tmp_path / "other", summary, nodes2, events, packets)
    assert base[0].read_bytes() != other[0].read_bytes()  # energy breakdown changed
    assert base[2].read_bytes() == other[2].read_bytes()  # latency CDF did not


def test_empty_events_gives_no_detection_plot(tmp_path, tables):
    summary, nodes, events, packets = tables
    normal = write_plots(tmp_path / "normal", *tables)
    empty_cols = events.iloc[0:0]
    no_hits = events.assign(detected=False, latency_s=np.nan)
    for name, ev in [("cols", empty_cols), ("bare", pd.DataFrame()), ("none", None), ("nohits", no_hits)]:
        paths = write_plots(tmp_path / name, summary, nodes, ev, packets)
        cdf = paths[2]
        assert cdf.read_bytes()[:8] == PNG_MAGIC
        assert png_size(cdf) == (800, 480)
        assert cdf.read_bytes() != normal[2].read_bytes()
        # the other plots are unaffected by the events table
        assert paths[0].read_bytes() == normal[0].read_bytes()


def test_all_tables_empty_still_writes_plots(tmp_path):
    empty = pd.DataFrame()
    paths = write_plots(tmp_path, empty, empty, empty, empty)
    assert [p.name for p in paths] == PLOT_NAMES
    for p in paths:
        assert p.read_bytes()[:8] == PNG_MAGIC and p.stat().st_size > 0


def test_missing_required_column_is_reported(tmp_path, tables):
    summary, nodes, events, packets = tables
    with pytest.raises(ValueError, match="duration_s"):
        write_plots(tmp_path, summary, nodes.drop(columns="duration_s"), events, packets)


def test_energy_per_node_day_discovers_components_and_averages(tables):
    nodes = tables[1]
    table = energy_per_node_day(nodes)
    assert list(table.columns) == ["mcu", "sensor", "radio"]
    assert list(table.index) == [(g, p) for g in GROUPS for p in POLICIES]
    sel = nodes[(nodes.policy == "on_device") & (nodes.group == "field")]
    days = DURATION_S / DAY_S
    assert table.loc[("field", "on_device"), "radio"] == pytest.approx(sel.energy_radio_j.mean() / days)
    assert table.loc[("field", "on_device"), "mcu"] == pytest.approx(sel.energy_mcu_j.mean() / days)
    # stacked total equals the ledger total when components are complete
    totals = table.sum(axis=1)
    expected = nodes.assign(e=nodes.energy_j / days).groupby(["group", "policy"]).e.mean()
    for key in table.index:
        assert totals[key] == pytest.approx(expected[key])


def test_energy_per_node_day_new_component_and_unattributed_rest(tables):
    nodes = tables[1].copy()
    nodes["energy_storage_leak_j"] = 0.5
    nodes["energy_j"] = nodes["energy_j"] + 0.5 + 2.0  # 2 J not attributed to any component
    table = energy_per_node_day(nodes)
    assert list(table.columns) == ["mcu", "sensor", "radio", "storage_leak", "other (unattributed)"]
    assert table["storage_leak"].tolist() == pytest.approx([0.25] * 4)
    assert table["other (unattributed)"].tolist() == pytest.approx([1.0] * 4)


def test_plots_read_only_the_packet_columns_they_declare(tmp_path, tables):
    # the writer hands the plots only PACKET_COLUMNS of the packets table: the plots must not change
    summary, nodes, events, packets = tables
    full = write_plots(tmp_path / "full", summary, nodes, events, packets)
    slim = write_plots(tmp_path / "slim", summary, nodes, events, packets[PACKET_COLUMNS])
    for a, b in zip(full, slim):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_packet_fate_counts_delivered_and_each_loss_reason(tables):
    packets = tables[3]
    fate = packet_fate(packets)
    assert list(fate.index) == POLICIES
    assert list(fate.columns) == ["delivered", "below_sensitivity", "collision", "fragment_lost"]
    assert fate.loc["cloud_offload"].tolist() == [10, 2, 2, 2]
    assert fate.loc["on_device"].tolist() == [3, 0, 1, 0]
    assert int(fate.to_numpy().sum()) == len(packets)


def test_plotting_does_not_touch_pyplot(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        import matplotlib
        backend = matplotlib.rcParams._get_backend_or_none()
        import pandas as pd
        from iotsim.report import write_plots
        e = pd.DataFrame()
        write_plots({str(tmp_path)!r}, e, e, e, e)
        assert "matplotlib.pyplot" not in sys.modules
        assert matplotlib.rcParams._get_backend_or_none() == backend
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# --------------------------------------------------------------------------- html


def test_report_contains_policies_values_plots_notes_and_manifest(tmp_path, tables):
    summary = tables[0]
    plots = write_plots(tmp_path, *tables)
    report = write_report(tmp_path, summary, "dairy farm", "Cows & sensors.\n\nSecond paragraph.",
                          MANIFEST, plots, NOTES)
    assert report == tmp_path / "report.html"
    text = report.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    for policy in POLICIES:
        assert f'<th scope="col">{policy}</th>' in text
    for group in GROUPS:
        assert f"<caption>Group: {group} (2 policies)</caption>" in text
    # formatted numbers from the table
    for value in ["1,234", "1,500", "2,500,000", "28,800", "28,000", "0.875", "0.625", "12.3",
                  "3,650", "9.99", "1.25", "4.5", "512", "0.05"]:
        assert f">{value}</td>" in text, value
    # headers carry units; extra column shown with its unit
    for header in ["Energy (J/node/day)", "Battery life (days)", "Battery life (years)",
                   "Uplink (bytes/node/day)", "Latency p50 (s)", "extra_metric_s (s)"]:
        assert f">{header}</th>" in text
    # NaN latency/precision shown as not available
    assert text.count('<td class="na" title="not available">\u2014</td>') == 3
    for p in plots:
        assert f'src="{p.name}"' in text
    assert "<p>Cows &amp; sensors.</p>" in text and "<p>Second paragraph.</p>" in text
    assert "(&lt;= window + airtime)" in text
    for key, value in [("seed", "1234"), ("scenario_hash", "sha256:abc123"),
                       ("versions.numpy", "1.26.4"), ("policies", "cloud_offload, on_device")]:
        assert f'<tr><th scope="row">{key}</th><td>{value}</td></tr>' in text
    # self-contained: no network resources, no scripts
    assert "http:" not in text and "https:" not in text and "//" not in text
    assert "<script" not in text and "<link" not in text


def test_report_escapes_scenario_name_and_is_deterministic(tmp_path, tables):
    summary = tables[0].copy()
    summary.loc[0, "group"] = "<b>barn</b>"
    name = "<farm & co>"
    a = write_report(tmp_path / "a", summary, name, "<script>alert(1)</script>", MANIFEST, [], NOTES)
    b = write_report(tmp_path / "b", summary, name, "<script>alert(1)</script>", MANIFEST, [], NOTES)
    text = a.read_text(encoding="utf-8")
    assert a.read_bytes() == b.read_bytes()
    assert "&lt;farm &amp; co&gt;" in text
    assert "<farm & co>" not in text
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "<b>barn</b>" not in text and "&lt;b&gt;barn&lt;/b&gt;" in text
    assert "<title>iotsim report \u2014 &lt;farm &amp; co&gt;</title>" in text


def test_report_references_plots_relative_to_report_folder(tmp_path, tables):
    plots = write_plots(tmp_path / "run" / "figs", *tables)
    report = write_report(tmp_path / "run", tables[0], "s", "d", {}, plots, [])
    text = report.read_text(encoding="utf-8")
    for p in plots:
        assert f'src="figs/{p.name}"' in text
        assert (report.parent / "figs" / p.name).is_file()


def test_report_with_empty_summary(tmp_path):
    report = write_report(tmp_path, pd.DataFrame(), "empty", "", {}, [], [])
    text = report.read_text(encoding="utf-8")
    assert "No summary rows." in text and "No notes." in text and "No manifest." in text


@pytest.mark.parametrize("value, kind, expected", [
    (1234.4, "float", "1,234"),
    (999.9, "float", "1,000"),
    (12.345, "float", "12.3"),
    (0.001234, "float", "0.00123"),
    (28800, "int", "28,800"),
    (28800.0, "int", "28,800"),
    (0.875, "ratio", "0.875"),
    (float("nan"), "float", "\u2014"),
    (None, "int", "\u2014"),
    (math.inf, "float", "\u221e"),
    ("on_device", "text", "on_device"),
])
def test_format_value(value, kind, expected):
    assert format_value(value, kind) == expected
