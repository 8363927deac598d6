"""Device profiles in devices/: every profile loads, every number carries its source, bad files
give one clear InputError naming the file and the field, and SI conversions are exact."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from iotsim.errors import InputError
from iotsim.hardware import (
    KINDS,
    Battery,
    Board,
    Mcu,
    Radio,
    Sensor,
    list_profiles,
    load_board,
    load_file,
    load_profile,
)
from iotsim.paths import devices_dir

DEVICES = devices_dir()
ALL_FILES = sorted(DEVICES.glob("*/*.yaml"))
ALL_PROFILES = [(k, n) for k in KINDS for n in list_profiles(k)]

REQUIRED = {
    "mcu": {"nrf52840", "stm32l4r5", "esp32"},
    "radio": {"sx1276", "sx1262", "nrf52840_ble", "esp32_wifi"},
    "battery": {"cr2032", "2xaa", "18650", "lisocl2_aa", "2xaa_alkaline"},
    "sensor": {"soil_climate", "accel_3axis"},
    "board": {"nrf52840_sx1262_2xaa", "stm32l4r5_sx1276_18650", "nrf52840_ble_cr2032", "esp32_wifi_18650",
              "nrf52840_sx1262_lisocl2"},
}


def raw(kind: str, name: str) -> dict:
    return yaml.safe_load((DEVICES / kind / f"{name}.yaml").read_text())


@pytest.fixture()
def devdir(tmp_path: Path) -> Path:
    """A private copy of devices/ to break on purpose."""
    target = tmp_path / "devices"
    shutil.copytree(DEVICES, target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


# ---- the shipped profiles ---------------------------------------------------------------------


def test_required_profiles_exist():
    for kind, names in REQUIRED.items():
        assert names <= set(list_profiles(kind)), kind


@pytest.mark.parametrize(("kind", "name"), ALL_PROFILES)
def test_every_profile_loads(kind, name):
    profile = load_profile(kind, name)
    expected = {"mcu": Mcu, "radio": Radio, "battery": Battery, "sensor": Sensor, "board": Board}[kind]
    assert isinstance(profile, expected)
    assert profile.name == name
    # every SI attribute that came from a number has its source attached
    assert profile.sources and all(isinstance(s, str) and s.strip() for s in profile.sources.values())


def _numeric_leaves(node, path=()):
    """Yield (path, parent mapping, key) for every int/float leaf in a parsed YAML tree; the numbers of a
    sourced curve ({points: [[x, y], ...], source: ...}) share the curve's source."""
    if isinstance(node, dict):
        if "points" in node and set(node) == {"points", "source"}:
            assert all(len(p) == 2 for p in node["points"]), f"{path}: curve points are [x, y] pairs"
            yield path + ("points",), {"value": node["points"], "source": node["source"]}, "value"
            return
        for key, value in node.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                yield path + (key,), node, key
            else:
                yield from _numeric_leaves(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                yield path + (i,), None, i
            else:
                yield from _numeric_leaves(value, path + (i,))


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_number_in_every_yaml_has_a_source(path):
    data = yaml.safe_load(path.read_text())
    leaves = list(_numeric_leaves(data))
    assert leaves or path.parent.name == "board", "a profile without numbers?"
    for loc, parent, key in leaves:
        assert parent is not None and key == "value", f"{path}: bare number at {loc}"
        assert set(parent) == {"value", "source"}, f"{path}: {loc[:-1]} has fields {set(parent)}"
        source = parent["source"]
        assert isinstance(source, str) and len(source.strip()) >= 10, f"{path}: weak source at {loc[:-1]}"


def test_board_parts_resolve_and_the_farm_node_is_as_described():
    board = load_board("nrf52840_sx1262_2xaa")
    assert (board.mcu.name, board.radio.name, board.battery.name) == ("nrf52840", "sx1262", "2xaa")
    assert [s.name for s in board.sensors] == ["soil_climate"]
    assert board.channels == ("soil_moisture", "temperature", "humidity")
    assert board.supply_voltage_v == 3.0
    assert board.radio.technology == "lora" and board.radio.bitrate_bps is None
    assert board.mcu.core == "cortex-m4f"
    factory = load_board("stm32l4r5_sx1276_18650")
    assert factory.sensors[0].channels == ("x", "y", "z")
    assert load_board("esp32_wifi_18650").mcu.core == "xtensa-lx6"
    assert load_board("nrf52840_ble_cr2032").radio.technology == "ble"


# ---- SI conversions and closed forms ---------------------------------------------------------


def test_battery_profile_si_conversions_for_2xaa():
    b = load_profile("battery", "2xaa")
    r = raw("battery", "2xaa")
    assert b.capacity_c == pytest.approx(r["capacity_mah"]["value"] * 3.6)
    assert b.cells_in_series == 2
    assert b.shelf_life_s == pytest.approx(r["shelf_life_years"]["value"] * 365.25 * 86400)
    assert b.ocv_soc == tuple(p[0] for p in r["cell_ocv_v"]["points"])
    assert b.cell_ocv_v == tuple(p[1] for p in r["cell_ocv_v"]["points"])
    assert b.capacity_current_a is None and b.kibam_c is None
    assert "shelf life" in b.sources["shelf_life_s"]
    alk = load_profile("battery", "2xaa_alkaline")
    ra = raw("battery", "2xaa_alkaline")["capacity_vs_current"]["points"]
    assert alk.capacity_current_a == tuple(p[0] * 1e-3 for p in ra)
    assert alk.capacity_at_current_c == tuple(p[1] * 3.6 for p in ra)


def test_board_power_tree_si_conversions():
    ldo = load_board("stm32l4r5_sx1276_18650")
    (rail,) = ldo.power_tree
    r = raw("board", "stm32l4r5_sx1276_18650")["power_tree"][0]["regulator"]
    assert rail.loads == ("mcu", "sensor", "radio") and rail.regulator.kind == "ldo"
    assert rail.regulator.quiescent_current_a == pytest.approx(r["quiescent_current_ua"]["value"] * 1e-6)
    assert ldo.supply_voltage_v == r["output_v"]["value"] == ldo.rail_voltage_v("radio")
    buck = load_board("nrf52840_sx1262_lisocl2").power_tree[0].regulator
    rb = raw("board", "nrf52840_sx1262_lisocl2")["power_tree"][0]["regulator"]["efficiency"]["points"]
    assert buck.efficiency_load_a == tuple(p[0] * 1e-3 for p in rb)
    assert buck.efficiency == tuple(p[1] for p in rb)
    direct = load_board("nrf52840_sx1262_2xaa")
    assert direct.rail_voltage_v("mcu") == direct.battery.nominal_voltage_v


def test_units_are_si():
    r = raw("mcu", "nrf52840")
    m = load_profile("mcu", "nrf52840")
    assert m.clock_hz == r["clock_mhz"]["value"] * 1e6 == 64e6
    assert m.active_current_a == pytest.approx(r["active_current_ma"]["value"] * 1e-3)
    assert m.sleep_current_a == pytest.approx(r["sleep_current_ua"]["value"] * 1e-6)
    assert m.wake_time_s == pytest.approx(r["wake_time_ms"]["value"] * 1e-3)
    assert m.ram_bytes == 256 * 1024
    radio = load_profile("radio", "sx1276")
    assert radio.tx_powers_dbm == [7.0, 13.0, 17.0, 20.0]
    assert radio.tx_current_a(20) == pytest.approx(0.120)
    assert radio.tx_current_a(13.0) == pytest.approx(0.029)
    assert radio.rx_current_a == pytest.approx(11.5e-3)
    assert radio.sleep_current_a == pytest.approx(0.2e-6)
    ble = load_profile("radio", "nrf52840_ble")
    assert ble.tx_powers_dbm == [-40.0, 0.0, 8.0]
    assert ble.bitrate_bps == 1e6


def test_tx_power_outside_the_table_names_the_range():
    radio = load_profile("radio", "sx1262")
    with pytest.raises(InputError) as err:
        radio.tx_current_a(23)
    msg = str(err.value)
    assert "23 dBm" in msg and "-9..22 dBm" in msg and "outside the tabulated range" in msg
    assert err.value.field == "tx_current_ma" and "sx1262.yaml" in err.value.where
    with pytest.raises(InputError):
        radio.tx_current_a(-9.5)
    with pytest.raises(InputError):
        load_profile("radio", "sx1276").tx_current_a(6)  # SX1276 datasheet points start at +7 dBm
    with pytest.raises(InputError):
        radio.tx_current_a(float("nan"))


def test_tx_current_interpolates_linearly_between_tabulated_powers():
    sx1276 = load_profile("radio", "sx1276")
    # between +7 dBm (20 mA) and +13 dBm (29 mA): 10 dBm -> 20 + 9 * 3/6 = 24.5 mA
    assert sx1276.tx_current_a(10) == pytest.approx(0.0245)
    assert sx1276.tx_current_a(13.85) == pytest.approx(0.029 + (0.087 - 0.029) * 0.85 / 4)
    sx1262 = load_profile("radio", "sx1262")
    # every EU868 ADR level (EIRP 16..2 dBm, 2.15 dBi antenna -> 13.85 .. -0.15 dBm conducted) has a current
    from iotsim.radio.lorawan import EU868
    levels = EU868.tx_power_conducted_dbm(np.arange(8))
    currents = [sx1262.tx_current_a(p) for p in levels]
    assert np.all(np.diff(currents) < 0)  # less power, less current
    # 13.85 dBm between 13 dBm (83.5 mA) and 14 dBm (89.3 mA): 83.5 + 0.85 x 5.8 = 88.43 mA
    assert currents[0] == pytest.approx(0.08843)
    # tabulated points come back exactly (Semtech LBM table: 0 dBm 40.6 mA, 22 dBm 117.9 mA)
    assert sx1262.tx_current_a(0) == pytest.approx(0.0406) and sx1262.tx_current_a(22) == pytest.approx(0.1179)
    # midpoint of two neighbours is their mean
    for lo in range(-9, 22):
        mid = sx1262.tx_current_a(lo + 0.5)
        assert mid == pytest.approx((sx1262.tx_current_a(lo) + sx1262.tx_current_a(lo + 1)) / 2)
    ble = load_profile("radio", "nrf52840_ble")
    assert ble.tx_current_a(4) == pytest.approx((ble.tx_current_a(0) + ble.tx_current_a(8)) / 2)


def test_calibrated_cycles_per_mac_reproduces_mlperf_tiny_kws_latency():
    """181.92 ms x 120 MHz / 2.66 M MACs = 8.2 cycles/MAC; the profile must give back ~181.9 ms."""
    mcu = load_profile("mcu", "stm32l4r5")
    assert mcu.inference_time_s(2.66e6) == pytest.approx(0.18192, rel=0.005)
    # the active current is ST's v1.0 KWS run on this board (3371.7 uJ / 75.06 ms / 1.8 V), not the v0.5
    # rows the MLPerf check judges (7373.7 uJ / 181.92 ms / 1.8 V = 22.5 mA)
    assert mcu.active_current_a == pytest.approx(3371.7e-6 / 75.06e-3 / 1.8, rel=1e-3)
    assert mcu.active_current_a > 7373.7e-6 / 0.18192 / 1.8


def test_sensor_parts_combine_preserving_charge():
    s = load_profile("sensor", "soil_climate")
    r = raw("sensor", "soil_climate")
    charge = sum(p["active_current_ma"]["value"] * 1e-3 * p["sample_time_ms"]["value"] * 1e-3 for p in r["parts"])
    assert s.charge_per_sample_c == pytest.approx(charge, rel=1e-12)
    assert s.sample_time_s == max(p["sample_time_ms"]["value"] for p in r["parts"]) * 1e-3
    assert s.sleep_current_a == pytest.approx(sum(p["sleep_current_ua"]["value"] for p in r["parts"]) * 1e-6)
    accel = load_profile("sensor", "accel_3axis")
    assert accel.sample_time_s == pytest.approx(1 / accel.max_sample_rate_hz)


# ---- bad input --------------------------------------------------------------------------------


def test_bare_number_is_rejected_naming_file_line_and_field(devdir):
    path = devdir / "mcu" / "nrf52840.yaml"
    text = path.read_text()
    start = text.index("clock_mhz:")
    end = text.index("active_current_ma:")
    path.write_text(text[:start] + "clock_mhz: 64\n" + text[end:])
    line = path.read_text().splitlines().index("clock_mhz: 64") + 1
    with pytest.raises(InputError) as err:
        load_profile("mcu", "nrf52840", devdir)
    e = err.value
    assert "every number needs its source" in e.message
    assert e.where == f"{path}:{line}"
    assert e.field == "clock_mhz"
    # also when the bad part is reached through a board
    with pytest.raises(InputError) as err:
        load_board("nrf52840_sx1262_2xaa", devdir)
    assert "nrf52840.yaml" in err.value.where and err.value.field == "clock_mhz"


def test_value_without_source_is_rejected(devdir):
    path = devdir / "battery" / "2xaa.yaml"
    text = path.read_text()
    start = text.index("capacity_mah:")
    end = text.index("self_discharge_per_year:")
    path.write_text(text[:start] + "capacity_mah: {value: 3500}\n" + text[end:])
    with pytest.raises(InputError) as err:
        load_profile("battery", "2xaa", devdir)
    assert "source" in err.value.message and err.value.field == "capacity_mah"
    assert "2xaa.yaml:" in err.value.where


def test_blank_source_is_rejected(devdir):
    path = devdir / "battery" / "2xaa.yaml"
    text = path.read_text()
    start = text.index("capacity_mah:")
    end = text.index("self_discharge_per_year:")
    path.write_text(text[:start] + 'capacity_mah: {value: 3500, source: "  "}\n' + text[end:])
    with pytest.raises(InputError) as err:
        load_profile("battery", "2xaa", devdir)
    assert err.value.field == "capacity_mah.source" and "2xaa.yaml" in err.value.where


def test_unknown_field_is_rejected_naming_file_and_field(devdir):
    path = devdir / "radio" / "sx1276.yaml"
    path.write_text(path.read_text() + 'tx_curent_ma: {value: 1, source: "typo"}\n')
    with pytest.raises(InputError) as err:
        load_profile("radio", "sx1276", devdir)
    e = err.value
    assert "unknown field 'tx_curent_ma'" in e.message and "tx_current_ma" in e.message
    assert e.field == "tx_curent_ma"
    assert e.where.startswith(str(path)) and e.where.rsplit(":", 1)[1].isdigit()


def test_unknown_field_inside_a_sourced_number(devdir):
    path = devdir / "radio" / "sx1276.yaml"
    edit(path, 'value: 0.2\n', 'value: 0.2\n  unit: uA\n')
    with pytest.raises(InputError) as err:
        load_profile("radio", "sx1276", devdir)
    assert err.value.field == "sleep_current_ua.unit"
    assert "value, source" in err.value.message


def test_unknown_board_part_lists_the_available_names(devdir):
    path = devdir / "board" / "nrf52840_sx1262_2xaa.yaml"
    edit(path, "radio: sx1262", "radio: sx1263")
    with pytest.raises(InputError) as err:
        load_board("nrf52840_sx1262_2xaa", devdir)
    e = err.value
    assert "unknown radio 'sx1263'" in e.message
    for name in ("sx1262", "sx1276", "nrf52840_ble", "esp32_wifi"):
        assert name in e.message
    assert e.where.startswith(str(path) + ":") and e.field == "radio"


def test_unknown_sensor_on_a_board(devdir):
    edit(devdir / "board" / "nrf52840_sx1262_2xaa.yaml", "sensors: [soil_climate]", "sensors: [soil_climate, lidar]")
    with pytest.raises(InputError) as err:
        load_board("nrf52840_sx1262_2xaa", devdir)
    assert err.value.field == "sensors.1" and "accel_3axis" in err.value.message


def test_unknown_profile_name_lists_available():
    with pytest.raises(InputError) as err:
        load_board("no_such_board")
    assert "nrf52840_sx1262_2xaa" in err.value.message
    with pytest.raises(InputError) as err:
        list_profiles("antenna")
    assert "mcu" in err.value.message


def test_yaml_syntax_error_names_file_and_line(devdir):
    path = devdir / "sensor" / "accel_3axis.yaml"
    path.write_text(path.read_text() + "channels: [x, y\n")
    with pytest.raises(InputError) as err:
        load_profile("sensor", "accel_3axis", devdir)
    assert "YAML syntax error" in err.value.message
    assert err.value.where.startswith(str(path) + ":")


def test_duplicate_key_is_rejected(devdir):
    path = devdir / "battery" / "cr2032.yaml"
    path.write_text(path.read_text() + 'capacity_mah: {value: 240, source: "again"}\n')
    with pytest.raises(InputError) as err:
        load_profile("battery", "cr2032", devdir)
    assert "duplicate key 'capacity_mah'" in err.value.message


@pytest.mark.parametrize(
    ("kind", "name", "old", "new", "field"),
    [
        ("battery", "2xaa", "value: 0.007\n", "value: 1.5\n", "self_discharge_per_year"),
        ("mcu", "esp32", "value: 240\n", "value: -240\n", "clock_mhz"),
        ("radio", "sx1262", 'value: 4.6\n', 'value: "4.6"\n', "rx_current_ma.value"),
        ("radio", "sx1262", "technology: lora", "technology: sigfox", "technology"),
        ("mcu", "esp32", "kind: mcu", "kind: radio", "kind"),
        ("mcu", "esp32", "name: esp32", "name: esp32s3", "name"),
    ],
)
def test_out_of_range_and_mistyped_values(devdir, kind, name, old, new, field):
    edit(devdir / kind / f"{name}.yaml", old, new)
    with pytest.raises(InputError) as err:
        load_profile(kind, name, devdir)
    assert err.value.field == field
    assert f"{name}.yaml" in err.value.where


def test_numeric_looking_names_are_names(devdir):
    # `battery: 18650` (unquoted) names devices/battery/18650.yaml, it is not a quantity
    edit(devdir / "board" / "esp32_wifi_18650.yaml", 'battery: "18650"', "battery: 18650")
    assert load_board("esp32_wifi_18650", devdir).battery.name == "18650"


def test_load_file_reads_kind_from_the_file():
    board = load_file(DEVICES / "board" / "esp32_wifi_18650.yaml")
    assert isinstance(board, Board) and board.radio.name == "esp32_wifi"


def test_error_message_format():
    err = InputError("bad", where="devices/mcu/x.yaml:3", field="clock_mhz")
    assert str(err) == "devices/mcu/x.yaml:3: field 'clock_mhz': bad"


# ---- batteries and power trees: bad files -------------------------------------------------------------


def _load_err(devdir, kind, name):
    with pytest.raises(InputError) as err:
        load_board(name, devdir) if kind == "board" else load_profile(kind, name, devdir)
    return err.value


def test_curve_without_source_is_rejected(devdir):
    edit(devdir / "battery" / "2xaa.yaml", "cell_resistance_ohm:\n  points: [[0.0, 0.15], [1.0, 0.15]]\n  source:",
         "cell_resistance_ohm:\n  points: [[0.0, 0.15], [1.0, 0.15]]\n  comment:")
    e = _load_err(devdir, "battery", "2xaa")
    assert e.field.startswith("cell_resistance_ohm") and "2xaa.yaml" in e.where


def test_bare_number_in_a_curve_without_source_is_rejected(devdir):
    path = devdir / "battery" / "2xaa.yaml"
    path.write_text(path.read_text() + "extra_curve: [[0.0, 1.0]]\n")
    e = _load_err(devdir, "battery", "2xaa")
    assert "source" in e.message and "2xaa.yaml:" in e.where


def test_out_of_range_efficiency_is_rejected(devdir):
    edit(devdir / "board" / "nrf52840_sx1262_lisocl2.yaml", "[10.0, 0.93]", "[10.0, 1.2]")
    e = _load_err(devdir, "board", "nrf52840_sx1262_lisocl2")
    assert "efficiency" in e.message and "(0, 1]" in e.message
    assert e.field == "power_tree.0.regulator.efficiency" and "nrf52840_sx1262_lisocl2.yaml:" in e.where


def test_efficiency_curve_must_rise_in_current(devdir):
    edit(devdir / "board" / "nrf52840_sx1262_lisocl2.yaml", "[10.0, 0.93]", "[0.5, 0.93]")
    e = _load_err(devdir, "board", "nrf52840_sx1262_lisocl2")
    assert "increase strictly" in e.message


def test_ldo_without_quiescent_current_is_rejected(devdir):
    path = devdir / "board" / "stm32l4r5_sx1276_18650.yaml"
    text = path.read_text()
    start = text.index("      quiescent_current_ua:")
    end = text.index("      dropout_v:")
    path.write_text(text[:start] + text[end:])
    e = _load_err(devdir, "board", "stm32l4r5_sx1276_18650")
    assert "ldo regulator needs quiescent_current_ua" in e.message
    assert e.field == "power_tree.0.regulator"


def test_a_load_on_two_rails_or_none_is_rejected(devdir):
    edit(devdir / "board" / "nrf52840_sx1262_2xaa.yaml", "loads: [mcu, sensor, radio]", "loads: [mcu, sensor]")
    e = _load_err(devdir, "board", "nrf52840_sx1262_2xaa")
    assert "radio must be on exactly one rail" in e.message and e.field == "power_tree"


def test_board_without_power_tree_is_rejected(devdir):
    path = devdir / "board" / "nrf52840_sx1262_2xaa.yaml"
    text = path.read_text()
    path.write_text(text[: text.index("power_tree:")])
    e = _load_err(devdir, "board", "nrf52840_sx1262_2xaa")
    assert e.message == "required field is missing" and e.field == "power_tree"


def test_regulator_that_cannot_start_from_a_full_battery_is_rejected(devdir):
    # a 3.3 V LDO with 1 V of dropout needs 4.3 V: more than a full 18650 (4.17 V open circuit)
    edit(devdir / "board" / "stm32l4r5_sx1276_18650.yaml", "value: 0.021", "value: 1.0")
    e = _load_err(devdir, "board", "stm32l4r5_sx1276_18650")
    assert "needs at least 4.3 V" in e.message and e.field == "power_tree.0"


def test_ocv_curve_must_span_empty_to_full_and_not_fall(devdir):
    edit(devdir / "battery" / "cr2032.yaml", "[[0.0, 2.0], [0.1, 2.5]", "[[0.01, 2.0], [0.1, 2.5]")
    assert "from state of charge 0 to 1" in _load_err(devdir, "battery", "cr2032").message
    edit(devdir / "battery" / "cr2032.yaml", "[[0.01, 2.0], [0.1, 2.5]", "[[0.0, 2.6], [0.1, 2.5]")
    assert "must not fall" in _load_err(devdir, "battery", "cr2032").message
