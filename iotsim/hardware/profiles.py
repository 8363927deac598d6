"""Device profiles: the YAML files in ``devices/`` and the typed, SI-unit objects built from them.

Layout (``iotsim.paths.devices_dir()``, overridable with ``$IOTSIM_DEVICES``)::

    devices/mcu/<name>.yaml  devices/radio/<name>.yaml  devices/battery/<name>.yaml
    devices/sensor/<name>.yaml  devices/board/<name>.yaml

Every number in a profile is written with its source, ``{value: 3.3, source: "..."}``; a bare
number is an error. YAML field names carry their unit (``active_current_ma``, ``clock_mhz``);
the Python objects returned by :func:`load_board` / :func:`load_profile` are frozen dataclasses
whose attributes are plain floats in SI units (``active_current_a``, ``clock_hz``), with the
source of each attribute in ``obj.sources[attribute_name]``.

Any problem with a file (YAML syntax, bare number, unknown field, out-of-range value, unknown
part named by a board) raises one :class:`iotsim.errors.InputError` naming the file, the line
when known, and the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from iotsim.errors import InputError, did_you_mean
from iotsim.paths import devices_dir as _default_devices_dir

SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's when built with it: same safe constructors

KINDS: tuple[str, ...] = ("mcu", "radio", "battery", "sensor", "board")
TECHNOLOGIES: tuple[str, ...] = ("lora", "ble", "wifi", "ieee802154", "nbiot", "ltem")

# --------------------------------------------------------------------------------------------
# File schema (what a YAML profile may contain). Units are in the field names.
# --------------------------------------------------------------------------------------------


class Sourced(BaseModel):
    """A number with the citation it comes from: ``{value: 3.3, source: "datasheet, table 6"}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: float = Field(strict=True, allow_inf_nan=False)
    source: str = Field(strict=True, min_length=1)

    @field_validator("source")
    @classmethod
    def _source_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("source must not be blank: say where the number comes from")
        return v


def _check(predicate, text: str):
    def check(s: Sourced) -> Sourced:
        if not predicate(s.value):
            raise ValueError(f"value must be {text}, got {s.value:g}")
        return s

    return check


Positive = Annotated[Sourced, AfterValidator(_check(lambda v: v > 0, "> 0"))]
NonNegative = Annotated[Sourced, AfterValidator(_check(lambda v: v >= 0, ">= 0"))]
Fraction01 = Annotated[Sourced, AfterValidator(_check(lambda v: 0 <= v < 1, "in [0, 1)"))]


class SourcedCurve(BaseModel):
    """A tabulated curve with its citation: ``{points: [[x, y], ...], source: "datasheet, figure 3"}``.

    ``x`` must increase strictly; between points the simulator interpolates linearly and it never
    extrapolates (outside the table the end value holds).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    points: list[tuple[float, float]] = Field(min_length=2)
    source: str = Field(strict=True, min_length=1)

    @field_validator("source")
    @classmethod
    def _source_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("source must not be blank: say where the curve comes from")
        return v

    @field_validator("points")
    @classmethod
    def _increasing(cls, v: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if not all(math.isfinite(x) and math.isfinite(y) for x, y in v):
            raise ValueError("curve points must be finite numbers")
        xs = [x for x, _ in v]
        if any(b <= a for a, b in zip(xs, xs[1:])):
            raise ValueError(f"the x values of a curve must increase strictly, got {xs}")
        return v


def _curve_check(x_ok, y_ok, text: str):
    def check(c: SourcedCurve) -> SourcedCurve:
        bad = [(x, y) for x, y in c.points if not (x_ok(x) and y_ok(y))]
        if bad:
            raise ValueError(f"{text}; bad point(s): {bad}")
        return c

    return check


SocCurve = Annotated[SourcedCurve, AfterValidator(_curve_check(
    lambda x: 0 <= x <= 1, lambda y: y > 0, "points are [state of charge 0..1, value > 0]"))]
ResistanceCurve = Annotated[SourcedCurve, AfterValidator(_curve_check(
    lambda x: 0 <= x <= 1, lambda y: y >= 0, "points are [state of charge 0..1, resistance >= 0 ohm]"))]
CapacityCurve = Annotated[SourcedCurve, AfterValidator(_curve_check(
    lambda x: x > 0, lambda y: y > 0, "points are [discharge current > 0 mA, capacity > 0 mAh]"))]
EfficiencyCurve = Annotated[SourcedCurve, AfterValidator(_curve_check(
    lambda x: x > 0, lambda y: 0 < y <= 1, "points are [load current > 0 mA, efficiency in (0, 1]]"))]


class SourcedKernels(BaseModel):
    """The firmware kernel set a node runs, with the reason: ``{value: optimized, source: "..."}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: Literal["reference", "optimized"]
    source: str = Field(strict=True, min_length=1)


# An MCU profile without a `kernels` field runs the optimized kernels, as shipped products do.
DEFAULT_KERNELS = "optimized"
DEFAULT_KERNELS_SOURCE = (
    "Default, not a measurement: products ship optimized kernels, not TFLite Micro's reference kernels. TFLite "
    "Micro builds Arm's CMSIS-NN kernels for Cortex-M (OPTIMIZED_KERNEL_DIR=cmsis_nn) and ST's tool is X-CUBE-AI; "
    "in the MLPerf Tiny rows of ../shared/reference/mlperf_tiny/results.csv every Cortex-M submission other than "
    "the v0.5 reference runs CMSIS-NN (renesas v0.7, OctoML v1.0) or X-CUBE-AI (STMicroelectronics v1.0), and "
    "silicon_labs' TFLM row uses the EFR32MG24's MVP accelerator"
)


class FlashWriteSpec(BaseModel):
    """How the MCU erases and programs the flash an update is written to (every figure sourced)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    page_bytes: Positive  # smallest erasable unit
    page_erase_ms: Positive
    word_bytes: Positive  # smallest programmable unit
    word_write_us: Positive
    current_ma: Positive  # the node's current while the flash erases or programs


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    description: str = ""


class McuSpec(_Spec):
    kind: Literal["mcu"]
    core: str = Field(min_length=1)
    clock_mhz: Positive
    active_current_ma: Positive
    sleep_current_ua: NonNegative
    cycles_per_mac: Positive
    # cycle model of measured firmware (iotsim.firmware.cycles.PARAMS): MCUs with an emulated core
    cycle_model: dict[str, NonNegative] | None = None
    wake_time_ms: NonNegative
    flash_kib: Positive | None = None
    ram_kib: Positive | None = None
    kernels: SourcedKernels | None = None  # firmware kernel set; absent: DEFAULT_KERNELS
    flash_write: FlashWriteSpec | None = None  # erasing and programming flash (model updates)


class RadioSpec(_Spec):
    kind: Literal["radio"]
    technology: Literal["lora", "ble", "wifi", "ieee802154", "nbiot", "ltem"]
    sleep_current_ua: NonNegative
    standby_current_ma: NonNegative
    rx_current_ma: Positive
    tx_current_ma: dict[str, Positive] = Field(min_length=1)
    bitrate_bps: Positive | None = None
    startup_time_ms: NonNegative

    @field_validator("tx_current_ma", mode="before")
    @classmethod
    def _keys_as_text(cls, v: Any) -> Any:
        # YAML reads `14:` as an int key and `"14":` as a string; accept both.
        if isinstance(v, dict):
            return {str(k): val for k, val in v.items()}
        return v

    @field_validator("tx_current_ma")
    @classmethod
    def _keys_are_dbm(cls, v: dict[str, Sourced]) -> dict[str, Sourced]:
        for key in v:
            try:
                p = float(key)
            except ValueError:
                raise ValueError(f"keys are TX powers in dBm, e.g. \"14\"; got {key!r}") from None
            if not math.isfinite(p):
                raise ValueError(f"TX power key must be finite, got {key!r}")
        return v


class KibamSpec(BaseModel):
    """Kinetic battery model parameters (Manwell and McGowan 1993): capacity fraction ``c`` in the
    available well, rate constant ``k`` between the wells."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    c: Annotated[Sourced, AfterValidator(_check(lambda v: 0 < v < 1, "in (0, 1)"))]
    k_per_h: Positive


class BatterySpec(_Spec):
    kind: Literal["battery"]
    chemistry: str = Field(min_length=1)
    cells_in_series: Annotated[Sourced, AfterValidator(_check(lambda v: v >= 1 and v == int(v), "a whole number >= 1"))]
    nominal_voltage_v: Positive
    capacity_mah: Positive
    capacity_vs_current: CapacityCurve | None = None
    self_discharge_per_year: Fraction01
    cutoff_voltage_v: Positive
    shelf_life_years: Positive
    cell_ocv_v: SocCurve
    cell_resistance_ohm: ResistanceCurve
    kibam: KibamSpec | None = None

    @field_validator("cell_ocv_v", "cell_resistance_ohm")
    @classmethod
    def _covers_0_to_1(cls, v: SourcedCurve) -> SourcedCurve:
        if v.points[0][0] != 0 or v.points[-1][0] != 1:
            raise ValueError("the curve must run from state of charge 0 to 1")
        return v

    @field_validator("cell_ocv_v")
    @classmethod
    def _ocv_rises(cls, v: SourcedCurve) -> SourcedCurve:
        ys = [y for _, y in v.points]
        if any(b < a for a, b in zip(ys, ys[1:])):
            raise ValueError(f"open-circuit voltage must not fall as the state of charge rises, got {ys}")
        return v


class SensorPartSpec(BaseModel):
    """One chip or probe of a sensor module; the parts of a module are sampled in parallel."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    description: str = ""
    active_current_ma: NonNegative
    sleep_current_ua: NonNegative
    sample_time_ms: Positive


class SensorSpec(_Spec):
    kind: Literal["sensor"]
    channels: list[str] = Field(min_length=1)
    parts: list[SensorPartSpec] = Field(min_length=1)
    max_sample_rate_hz: Positive | None = None

    @field_validator("channels")
    @classmethod
    def _unique_channels(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"channel names must be unique, got {v}")
        return v


LOADS: tuple[str, ...] = ("mcu", "sensor", "radio")
REGULATOR_FIELDS = {
    "direct": set(),
    "ldo": {"output_v", "quiescent_current_ua", "dropout_v"},
    "buck": {"output_v", "min_input_v", "efficiency"},
    "buck_boost": {"output_v", "min_input_v", "efficiency"},
}


class RegulatorSpec(BaseModel):
    """How a rail is fed from the battery: ``direct``, ``ldo`` or a switching converter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["direct", "ldo", "buck", "buck_boost"]
    part: str = ""
    output_v: Positive | None = None
    quiescent_current_ua: NonNegative | None = None
    dropout_v: NonNegative | None = None
    min_input_v: Positive | None = None
    efficiency: EfficiencyCurve | None = None

    @model_validator(mode="after")
    def _fields_of_kind(self):
        need = REGULATOR_FIELDS[self.kind]
        given = {f for f in ("output_v", "quiescent_current_ua", "dropout_v", "min_input_v", "efficiency")
                 if getattr(self, f) is not None}
        missing, extra = sorted(need - given), sorted(given - need)
        if missing:
            raise ValueError(f"a {self.kind} regulator needs {', '.join(missing)}")
        if extra:
            raise ValueError(f"a {self.kind} regulator has no {', '.join(extra)}")
        if self.kind != "direct" and not self.part.strip():
            raise ValueError(f"name the {self.kind} regulator's part (part: \"...\") its numbers come from")
        return self


class RailSpec(BaseModel):
    """One supply rail: the loads on it, what feeds it, and the lowest voltage its loads run at."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    loads: list[Literal["mcu", "sensor", "radio"]] = Field(min_length=1)
    regulator: RegulatorSpec
    min_supply_v: Positive

    @model_validator(mode="after")
    def _regulated_voltage_is_enough(self):
        out = self.regulator.output_v
        if out is not None and out.value < self.min_supply_v.value:
            raise ValueError(f"rail {self.name!r} gives {out.value:g} V but its loads need at least "
                             f"{self.min_supply_v.value:g} V (min_supply_v)")
        return self


class BoardSpec(_Spec):
    kind: Literal["board"]
    mcu: str = Field(min_length=1)
    radio: str = Field(min_length=1)
    battery: str = Field(min_length=1)
    sensors: list[str] = Field(default_factory=list)
    power_tree: list[RailSpec] = Field(min_length=1)

    @field_validator("power_tree")
    @classmethod
    def _each_load_on_one_rail(cls, v: list[RailSpec]) -> list[RailSpec]:
        placed = [load for rail in v for load in rail.loads]
        for load in LOADS:
            n = placed.count(load)
            if n != 1:
                where = "no rail" if n == 0 else f"{n} rails"
                raise ValueError(f"the {load} must be on exactly one rail of the power tree, found on {where}")
        names = [rail.name for rail in v]
        if len(set(names)) != len(names):
            raise ValueError(f"rail names must be unique, got {names}")
        return v


_SPECS: dict[str, type[_Spec]] = {
    "mcu": McuSpec,
    "radio": RadioSpec,
    "battery": BatterySpec,
    "sensor": SensorSpec,
    "board": BoardSpec,
}

# --------------------------------------------------------------------------------------------
# Runtime objects (what the engine consumes). SI units, plain floats.
# --------------------------------------------------------------------------------------------

_Sources = Mapping[str, str]


def _no_sources() -> _Sources:
    return MappingProxyType({})


@dataclass(frozen=True)
class FlashWrite:
    """Erasing and programming an MCU's flash: page and word sizes in bytes, times in s, current in A."""

    page_bytes: int
    page_erase_s: float
    word_bytes: int
    word_write_s: float
    current_a: float

    def seconds(self, n_bytes: int) -> tuple[float, float]:
        """(erase, program) seconds to write n bytes into freshly erased pages."""
        pages = -(-int(n_bytes) // self.page_bytes)
        words = -(-int(n_bytes) // self.word_bytes)
        return pages * self.page_erase_s, words * self.word_write_s


@dataclass(frozen=True)
class Mcu:
    """A microcontroller. Currents in A, clock in Hz, times in s."""

    name: str
    core: str
    clock_hz: float
    active_current_a: float
    sleep_current_a: float
    cycles_per_mac: float
    wake_time_s: float
    flash_bytes: float | None = None
    ram_bytes: float | None = None
    kernels: str = DEFAULT_KERNELS  # firmware kernel set whose measured cost the node uses
    description: str = ""
    path: Path | None = field(default=None, compare=False)
    sources: _Sources = field(default_factory=_no_sources, compare=False, repr=False)
    # iotsim.firmware.cycles parameters (None: no emulated core, e.g. Xtensa)
    cycle_model: Mapping[str, float] | None = field(default=None, compare=False)
    flash_write: FlashWrite | None = field(default=None, compare=False)

    def inference_time_s(self, macs: float) -> float:
        """Time for one inference of ``macs`` multiply-accumulates: macs * cycles_per_mac / clock."""
        return float(macs) * self.cycles_per_mac / self.clock_hz


@dataclass(frozen=True)
class Radio:
    """A radio transceiver. Currents in A, times in s, TX power in dBm."""

    name: str
    technology: str
    sleep_current_a: float
    standby_current_a: float
    rx_current_a: float
    tx_currents_a: Mapping[float, float]
    startup_time_s: float
    bitrate_bps: float | None = None
    description: str = ""
    path: Path | None = field(default=None, compare=False)
    sources: _Sources = field(default_factory=_no_sources, compare=False, repr=False)

    @property
    def tx_powers_dbm(self) -> list[float]:
        """The TX powers (dBm) the profile gives a current for, ascending."""
        return sorted(self.tx_currents_a)

    def tx_current_a(self, tx_power_dbm: float) -> float:
        """Supply current while transmitting at ``tx_power_dbm`` (conducted output power, dBm).

        A tabulated power gives its tabulated current; a power between two tabulated powers gives
        the straight-line interpolation between their currents (linear in dBm, as the datasheet
        curves are drawn; no physical model beyond that). Powers outside the tabulated range are
        refused with an :class:`InputError` that lists the tabulated powers: a profile never
        extrapolates.
        """
        p = float(tx_power_dbm)
        powers = self.tx_powers_dbm
        for power, current in self.tx_currents_a.items():
            if abs(power - p) < 1e-9:
                return current
        if powers and math.isfinite(p) and powers[0] < p < powers[-1]:
            hi = next(i for i, x in enumerate(powers) if x > p)
            p0, p1 = powers[hi - 1], powers[hi]
            i0, i1 = self.tx_currents_a[p0], self.tx_currents_a[p1]
            return i0 + (i1 - i0) * (p - p0) / (p1 - p0)
        available = ", ".join(f"{x:g}" for x in powers)
        raise InputError(
            f"radio '{self.name}' has no TX current for {p:g} dBm: outside the tabulated range "
            f"{powers[0]:g}..{powers[-1]:g} dBm (tabulated powers: {available} dBm)",
            where=str(self.path) if self.path else None,
            field="tx_current_ma",
        )


@dataclass(frozen=True)
class Battery:
    """A battery (pack) of ``cells_in_series`` identical cells.

    ``capacity_mah``, ``nominal_voltage_v`` and ``cutoff_voltage_v`` are for the whole pack; the
    open-circuit voltage and internal resistance curves are per cell, tabulated against the state
    of charge (0 = empty at the rated cut-off, 1 = full); ``capacity_vs_current`` (if given) is the
    capacity delivered at a constant discharge current, from the datasheet's rate curve. The models
    that use these numbers are in :mod:`iotsim.energy.battery`.
    """

    name: str
    chemistry: str
    cells_in_series: int
    nominal_voltage_v: float
    capacity_mah: float
    self_discharge_per_year: float
    cutoff_voltage_v: float
    shelf_life_s: float
    ocv_soc: tuple[float, ...]
    cell_ocv_v: tuple[float, ...]
    resistance_soc: tuple[float, ...]
    cell_resistance_ohm: tuple[float, ...]
    capacity_current_a: tuple[float, ...] | None = None  # constant discharge current ...
    capacity_at_current_c: tuple[float, ...] | None = None  # ... and the charge it delivers (C)
    kibam_c: float | None = None
    kibam_k_per_s: float | None = None
    description: str = ""
    path: Path | None = field(default=None, compare=False)
    sources: _Sources = field(default_factory=_no_sources, compare=False, repr=False)

    @property
    def capacity_c(self) -> float:
        """Rated charge in coulombs (mAh x 3.6)."""
        return self.capacity_mah * 3.6


@dataclass(frozen=True)
class Regulator:
    """What feeds a rail from the battery. ``kind``: direct, ldo, buck or buck_boost; SI units."""

    kind: str
    part: str = ""
    output_v: float | None = None
    quiescent_current_a: float | None = None
    dropout_v: float | None = None
    min_input_v: float | None = None
    efficiency_load_a: tuple[float, ...] | None = None  # load currents of the efficiency curve ...
    efficiency: tuple[float, ...] | None = None  # ... and the converter's efficiency there


@dataclass(frozen=True)
class Rail:
    """A supply rail: its loads (mcu, sensor, radio), its regulator and its loads' minimum supply (V)."""

    name: str
    loads: tuple[str, ...]
    regulator: Regulator
    min_supply_v: float


@dataclass(frozen=True)
class SensorPart:
    """One chip or probe of a sensor module."""

    name: str
    active_current_a: float
    sleep_current_a: float
    sample_time_s: float
    description: str = ""


@dataclass(frozen=True)
class Sensor:
    """A sensor module (one or more parts sampled together).

    The module's figures are charge-preserving combinations of its parts, sampled in parallel:
    ``sample_time_s`` is the longest part's, ``active_current_a`` is the total charge per sample
    divided by ``sample_time_s`` (so current x time equals the sum of the parts' charges), and
    ``sleep_current_a`` is the sum of the parts' sleep currents. For a streaming sensor read at
    its output data rate, ``sample_time_s`` is one sample period; a window of N samples keeps it
    active N sample periods.
    """

    name: str
    channels: tuple[str, ...]
    active_current_a: float
    sleep_current_a: float
    sample_time_s: float
    parts: tuple[SensorPart, ...] = ()
    max_sample_rate_hz: float | None = None
    description: str = ""
    path: Path | None = field(default=None, compare=False)
    sources: _Sources = field(default_factory=_no_sources, compare=False, repr=False)

    @property
    def charge_per_sample_c(self) -> float:
        """Charge drawn by one sample of all channels (C)."""
        return self.active_current_a * self.sample_time_s


@dataclass(frozen=True)
class Board:
    """A node: MCU + radio + battery + sensors, fed from the battery through its power tree (rails)."""

    name: str
    mcu: Mcu
    radio: Radio
    battery: Battery
    sensors: tuple[Sensor, ...]
    power_tree: tuple[Rail, ...]
    description: str = ""
    path: Path | None = field(default=None, compare=False)
    sources: _Sources = field(default_factory=_no_sources, compare=False, repr=False)

    @property
    def channels(self) -> tuple[str, ...]:
        """All sensor channels of the board, in sensor order."""
        return tuple(c for s in self.sensors for c in s.channels)

    def rail_of(self, load: str) -> Rail:
        """The rail that feeds ``load`` (mcu, sensor or radio)."""
        return next(r for r in self.power_tree if load in r.loads)

    def rail_voltage_v(self, load: str) -> float:
        """Voltage ``load`` runs at: its regulator's output, or the battery's nominal voltage if direct."""
        out = self.rail_of(load).regulator.output_v
        return self.battery.nominal_voltage_v if out is None else out

    @property
    def supply_voltage_v(self) -> float:
        """The MCU's supply voltage (its rail's voltage)."""
        return self.rail_voltage_v("mcu")


Profile = Union[Mcu, Radio, Battery, Sensor, Board]

# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _dir(devices_dir: Path | str | None) -> Path:
    return Path(devices_dir) if devices_dir is not None else _default_devices_dir()


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise InputError(f"unknown device kind {kind!r}; kinds are: {', '.join(KINDS)}")


def list_profiles(kind: str, devices_dir: Path | str | None = None) -> list[str]:
    """Names of the ``kind`` profiles (file stems of ``devices/<kind>/*.yaml``), sorted."""
    _check_kind(kind)
    folder = _dir(devices_dir) / kind
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.yaml") if p.is_file())


def _profile_path(kind: str, name: str, devices_dir: Path, where: str | None, fld: str | None) -> Path:
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
        raise InputError(f"invalid {kind} name {name!r}", where=where, field=fld)
    path = devices_dir / kind / f"{name}.yaml"
    if not path.is_file():
        available = list_profiles(kind, devices_dir)
        listing = ", ".join(available) if available else f"none (no files in {devices_dir / kind})"
        raise InputError(f"unknown {kind} {name!r}{did_you_mean(name, available)}; available: {listing}",
                         where=where, field=fld)
    return path


def load_profile(kind: str, name: str, devices_dir: Path | str | None = None) -> Profile:
    """Load one profile: ``load_profile("radio", "sx1262")``. Boards come with their parts."""
    _check_kind(kind)
    root = _dir(devices_dir)
    path = _profile_path(kind, name, root, where=str(root / kind), fld=None)
    return _load(kind, path, root)


def load_board(name: str, devices_dir: Path | str | None = None) -> Board:
    """Load a board and the MCU, radio, battery and sensors it names."""
    board = load_profile("board", name, devices_dir)
    assert isinstance(board, Board)
    return board


def load_file(path: Path | str, devices_dir: Path | str | None = None) -> Profile:
    """Load a profile from an explicit file; its kind is read from the file's ``kind`` field.

    A board's parts are looked up in ``devices_dir`` (default: the file's grandparent folder).
    """
    path = Path(path)
    data, lines = _read_yaml(path)
    kind = data.get("kind")
    if kind not in KINDS:
        raise InputError(
            f"field 'kind' must be one of {', '.join(KINDS)}, got {kind!r}",
            where=_where(path, lines, ("kind",)),
            field="kind",
        )
    root = Path(devices_dir) if devices_dir is not None else path.resolve().parent.parent
    return _load(kind, path, root, data=data, lines=lines, check_location=False)


def _load(
    kind: str,
    path: Path,
    root: Path,
    *,
    data: dict | None = None,
    lines: dict | None = None,
    check_location: bool = True,
) -> Profile:
    if data is None or lines is None:
        data, lines = _read_yaml(path)
    spec = _validate(kind, path, data, lines)
    if check_location and spec.name != path.stem:
        raise InputError(
            f"name {spec.name!r} differs from the file name {path.stem!r}; make them equal",
            where=_where(path, lines, ("name",)),
            field="name",
        )
    if isinstance(spec, McuSpec):
        return _build_mcu(spec, path)
    if isinstance(spec, RadioSpec):
        return _build_radio(spec, path)
    if isinstance(spec, BatterySpec):
        return _build_battery(spec, path)
    if isinstance(spec, SensorSpec):
        return _build_sensor(spec, path)
    assert isinstance(spec, BoardSpec)
    return _build_board(spec, path, root, lines)


# ---- YAML reading with line numbers ---------------------------------------------------------


def _where(path: Path, lines: Mapping[tuple, int], loc: tuple) -> str:
    """``file:line`` for the deepest known prefix of ``loc``."""
    key = tuple(str(x) for x in loc)
    while key:
        if key in lines:
            return f"{path}:{lines[key]}"
        key = key[:-1]
    return str(path)


def _read_yaml(path: Path) -> tuple[dict, dict[tuple, int]]:
    """Parse ``path``; return the data and a map from field path to 1-based line number.

    Rejects YAML syntax errors, duplicate keys, non-mapping documents and bare numbers.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", where=str(path)) from None
    try:
        node = yaml.compose(text, Loader=SAFE_LOADER)
        data = yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError(f"YAML syntax error: {problem}", where=where) from None
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise InputError("a device profile must be a YAML mapping (key: value lines)", where=str(path))
    lines: dict[tuple, int] = {}
    texts: dict[tuple, str] = {}
    _walk(node, (), path, lines, texts)
    for loc, text in texts.items():  # e.g. `battery: 18650` names the file 18650.yaml
        target: Any = data
        for part in loc[:-1]:
            target = target[int(part)] if isinstance(target, list) else target[part]
        last = loc[-1]
        if isinstance(target, list):
            target[int(last)] = text
        else:
            target[last] = text
    return data, lines


_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
# Fields holding names or text: a number written there is a name (`battery: 18650`), not a quantity.
_TEXT_FIELDS = frozenset(
    {"kind", "name", "description", "core", "chemistry", "technology", "mcu", "radio", "battery", "sensors", "channels",
     "part", "loads"}
)


def _walk(
    node: yaml.Node, loc: tuple, path: Path, lines: dict[tuple, int], texts: dict[tuple, str]
) -> None:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        keys = [k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode)]
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                raise InputError(
                    f"duplicate key {key!r}", where=f"{path}:{key_node.start_mark.line + 1}",
                    field=".".join(map(str, loc + (key,))),
                )
            seen.add(key)
            child = loc + (key,)
            lines[child] = value_node.start_mark.line + 1
            if key == "points" and "source" in keys and isinstance(value_node, yaml.SequenceNode):
                continue  # a sourced curve: its numbers share the curve's source
            if (
                key == "value"
                and isinstance(value_node, yaml.ScalarNode)
                and value_node.tag in _NUMBER_TAGS
            ):
                if "source" not in keys:
                    raise InputError(
                        f"every number needs its source: add source: \"...\" next to value: {value_node.value}",
                        where=f"{path}:{value_node.start_mark.line + 1}",
                        field=".".join(map(str, loc)),
                    )
                continue
            _walk(value_node, child, path, lines, texts)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, loc + (str(i),), path, lines, texts)
    elif isinstance(node, yaml.ScalarNode) and node.tag in _NUMBER_TAGS:
        named = [x for x in loc if not x.isdigit()]
        if named and named[-1] in _TEXT_FIELDS:
            texts[loc] = node.value
            return
        raise InputError(
            f"every number needs its source: write {{value: {node.value}, source: \"...\"}} "
            f"instead of the bare number {node.value}",
            where=f"{path}:{node.start_mark.line + 1}",
            field=".".join(map(str, loc)) or None,
        )


def _validate(kind: str, path: Path, data: dict, lines: dict[tuple, int]) -> _Spec:
    spec_cls = _SPECS[kind]
    if "kind" in data and data["kind"] != kind:
        raise InputError(
            f"file is in devices/{kind}/ but says kind: {data['kind']!r}",
            where=_where(path, lines, ("kind",)),
            field="kind",
        )
    try:
        return spec_cls.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        err = errors[0]
        loc = tuple(x for x in err["loc"] if x != "[key]")
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        raise InputError(
            _describe(err, spec_cls, loc) + more,
            where=_where(path, lines, loc),
            field=".".join(str(x) for x in loc) or None,
        ) from None


def _describe(err: dict, spec_cls: type[BaseModel], loc: tuple) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_fields(spec_cls, loc[:-1])
        hint = f"; allowed here: {', '.join(allowed)}" if allowed else ""
        return f"unknown field {loc[-1]!r}{hint}"
    if kind == "missing":
        return "required field is missing"
    if kind in ("model_type", "dict_type") and isinstance(err.get("input"), (int, float)):
        return f"every number needs its source: write {{value: {err['input']}, source: \"...\"}}"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    return msg


def _allowed_fields(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the sub-model reached by ``loc`` (best effort)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or (isinstance(part, str) and part.isdigit()):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        info = current.model_fields.get(str(part))
        if info is None:
            # a dict key (e.g. a TX power): descend into the dict's value type
            continue
        current = _inner_model(info.annotation)
        if current is None:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    meta = getattr(annotation, "__origin__", None)
    if meta is not None and isinstance(meta, type) and issubclass(meta, BaseModel):
        return meta
    return None


# ---- builders ---------------------------------------------------------------------------------


def _opt(s: Sourced | None, scale: float) -> float | None:
    return None if s is None else s.value * scale


def _build_mcu(spec: McuSpec, path: Path) -> Mcu:
    src = {
        "clock_hz": spec.clock_mhz.source,
        "active_current_a": spec.active_current_ma.source,
        "sleep_current_a": spec.sleep_current_ua.source,
        "cycles_per_mac": spec.cycles_per_mac.source,
        "wake_time_s": spec.wake_time_ms.source,
    }
    for key, sourced in (spec.cycle_model or {}).items():
        src[f"cycle_model.{key}"] = sourced.source
    if spec.flash_kib is not None:
        src["flash_bytes"] = spec.flash_kib.source
    if spec.ram_kib is not None:
        src["ram_bytes"] = spec.ram_kib.source
    src["kernels"] = spec.kernels.source if spec.kernels is not None else DEFAULT_KERNELS_SOURCE
    fw = spec.flash_write
    if fw is not None:
        for key in FlashWriteSpec.model_fields:
            src[f"flash_write.{key}"] = getattr(fw, key).source
        for key in ("page_bytes", "word_bytes"):
            if not float(getattr(fw, key).value).is_integer():
                raise InputError(f"flash_write.{key} must be a whole number of bytes", where=str(path),
                                   field=f"flash_write.{key}")
    return Mcu(
        name=spec.name,
        core=spec.core,
        clock_hz=spec.clock_mhz.value * 1e6,
        active_current_a=spec.active_current_ma.value * 1e-3,
        sleep_current_a=spec.sleep_current_ua.value * 1e-6,
        cycles_per_mac=spec.cycles_per_mac.value,
        cycle_model=(None if spec.cycle_model is None
                     else MappingProxyType({k: v.value for k, v in spec.cycle_model.items()})),
        wake_time_s=spec.wake_time_ms.value * 1e-3,
        flash_bytes=_opt(spec.flash_kib, 1024.0),
        ram_bytes=_opt(spec.ram_kib, 1024.0),
        kernels=spec.kernels.value if spec.kernels is not None else DEFAULT_KERNELS,
        description=spec.description,
        path=path,
        sources=MappingProxyType(src),
        flash_write=None if fw is None else FlashWrite(
            int(fw.page_bytes.value), fw.page_erase_ms.value * 1e-3, int(fw.word_bytes.value),
            fw.word_write_us.value * 1e-6, fw.current_ma.value * 1e-3),
    )


def _build_radio(spec: RadioSpec, path: Path) -> Radio:
    tx = {float(k): v.value * 1e-3 for k, v in spec.tx_current_ma.items()}
    if len(tx) != len(spec.tx_current_ma):
        raise InputError("two TX power keys name the same power", where=str(path), field="tx_current_ma")
    src = {
        "sleep_current_a": spec.sleep_current_ua.source,
        "standby_current_a": spec.standby_current_ma.source,
        "rx_current_a": spec.rx_current_ma.source,
        "startup_time_s": spec.startup_time_ms.source,
    }
    for k, v in spec.tx_current_ma.items():
        src[f"tx_current_a[{float(k):g}]"] = v.source
    if spec.bitrate_bps is not None:
        src["bitrate_bps"] = spec.bitrate_bps.source
    return Radio(
        name=spec.name,
        technology=spec.technology,
        sleep_current_a=spec.sleep_current_ua.value * 1e-6,
        standby_current_a=spec.standby_current_ma.value * 1e-3,
        rx_current_a=spec.rx_current_ma.value * 1e-3,
        tx_currents_a=MappingProxyType(dict(sorted(tx.items()))),
        startup_time_s=spec.startup_time_ms.value * 1e-3,
        bitrate_bps=_opt(spec.bitrate_bps, 1.0),
        description=spec.description,
        path=path,
        sources=MappingProxyType(src),
    )


def _curve(c: SourcedCurve, x_scale: float = 1.0, y_scale: float = 1.0) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return tuple(x * x_scale for x, _ in c.points), tuple(y * y_scale for _, y in c.points)


def _build_battery(spec: BatterySpec, path: Path) -> Battery:
    src = {
        "cells_in_series": spec.cells_in_series.source,
        "nominal_voltage_v": spec.nominal_voltage_v.source,
        "capacity_mah": spec.capacity_mah.source,
        "self_discharge_per_year": spec.self_discharge_per_year.source,
        "cutoff_voltage_v": spec.cutoff_voltage_v.source,
        "shelf_life_s": spec.shelf_life_years.source,
        "cell_ocv_v": spec.cell_ocv_v.source,
        "cell_resistance_ohm": spec.cell_resistance_ohm.source,
    }
    ocv_soc, ocv = _curve(spec.cell_ocv_v)
    r_soc, r = _curve(spec.cell_resistance_ohm)
    cap_i = cap_q = None
    if spec.capacity_vs_current is not None:
        cap_i, cap_q = _curve(spec.capacity_vs_current, 1e-3, 3.6)
        src["capacity_vs_current"] = spec.capacity_vs_current.source
    kc = kk = None
    if spec.kibam is not None:
        kc, kk = spec.kibam.c.value, spec.kibam.k_per_h.value / 3600.0
        src["kibam_c"], src["kibam_k_per_s"] = spec.kibam.c.source, spec.kibam.k_per_h.source
    return Battery(
        name=spec.name,
        chemistry=spec.chemistry,
        cells_in_series=int(spec.cells_in_series.value),
        nominal_voltage_v=spec.nominal_voltage_v.value,
        capacity_mah=spec.capacity_mah.value,
        self_discharge_per_year=spec.self_discharge_per_year.value,
        cutoff_voltage_v=spec.cutoff_voltage_v.value,
        shelf_life_s=spec.shelf_life_years.value * 365.25 * 86400.0,
        ocv_soc=ocv_soc,
        cell_ocv_v=ocv,
        resistance_soc=r_soc,
        cell_resistance_ohm=r,
        capacity_current_a=cap_i,
        capacity_at_current_c=cap_q,
        kibam_c=kc,
        kibam_k_per_s=kk,
        description=spec.description,
        path=path,
        sources=MappingProxyType(src),
    )


def _build_rail(spec: RailSpec, src: dict[str, str]) -> Rail:
    reg = spec.regulator
    key = f"power_tree.{spec.name}"
    src[f"{key}.min_supply_v"] = spec.min_supply_v.source
    for name in ("output_v", "quiescent_current_ua", "dropout_v", "min_input_v", "efficiency"):
        value = getattr(reg, name)
        if value is not None:
            src[f"{key}.{name}"] = value.source
    eff_i = eff = None
    if reg.efficiency is not None:
        eff_i, eff = _curve(reg.efficiency, 1e-3, 1.0)
    return Rail(
        name=spec.name,
        loads=tuple(spec.loads),
        regulator=Regulator(
            kind=reg.kind, part=reg.part,
            output_v=_opt(reg.output_v, 1.0),
            quiescent_current_a=_opt(reg.quiescent_current_ua, 1e-6),
            dropout_v=_opt(reg.dropout_v, 1.0),
            min_input_v=_opt(reg.min_input_v, 1.0),
            efficiency_load_a=eff_i, efficiency=eff,
        ),
        min_supply_v=spec.min_supply_v.value,
    )


def _build_sensor(spec: SensorSpec, path: Path) -> Sensor:
    parts = tuple(
        SensorPart(
            name=p.name,
            active_current_a=p.active_current_ma.value * 1e-3,
            sleep_current_a=p.sleep_current_ua.value * 1e-6,
            sample_time_s=p.sample_time_ms.value * 1e-3,
            description=p.description,
        )
        for p in spec.parts
    )
    sample_time = max(p.sample_time_s for p in parts)
    charge = sum(p.active_current_a * p.sample_time_s for p in parts)
    src = {
        "active_current_a": "charge-weighted combination of the parts: "
        + "; ".join(f"{p.name}: {q.active_current_ma.source}" for p, q in zip(parts, spec.parts)),
        "sleep_current_a": "sum of the parts: "
        + "; ".join(f"{p.name}: {q.sleep_current_ua.source}" for p, q in zip(parts, spec.parts)),
        "sample_time_s": "longest part: "
        + "; ".join(f"{p.name}: {q.sample_time_ms.source}" for p, q in zip(parts, spec.parts)),
    }
    if spec.max_sample_rate_hz is not None:
        src["max_sample_rate_hz"] = spec.max_sample_rate_hz.source
    return Sensor(
        name=spec.name,
        channels=tuple(spec.channels),
        active_current_a=charge / sample_time,
        sleep_current_a=sum(p.sleep_current_a for p in parts),
        sample_time_s=sample_time,
        parts=parts,
        max_sample_rate_hz=_opt(spec.max_sample_rate_hz, 1.0),
        description=spec.description,
        path=path,
        sources=MappingProxyType(src),
    )


def _build_board(spec: BoardSpec, path: Path, root: Path, lines: dict[tuple, int]) -> Board:
    def part(kind: str, name: str, loc: tuple) -> Profile:
        fld = ".".join(map(str, loc))
        part_path = _profile_path(kind, name, root, where=_where(path, lines, loc), fld=fld)
        return _load(kind, part_path, root)

    mcu = part("mcu", spec.mcu, ("mcu",))
    radio = part("radio", spec.radio, ("radio",))
    battery = part("battery", spec.battery, ("battery",))
    sensors = tuple(part("sensor", s, ("sensors", i)) for i, s in enumerate(spec.sensors))
    channels = [c for s in sensors for c in s.channels]  # type: ignore[union-attr]
    duplicated = sorted({c for c in channels if channels.count(c) > 1})
    if duplicated:
        raise InputError(
            f"two sensors give the same channel(s) {', '.join(duplicated)}; channel names must be unique on a board",
            where=_where(path, lines, ("sensors",)),
            field="sensors",
        )
    src: dict[str, str] = {}
    rails = tuple(_build_rail(r, src) for r in spec.power_tree)
    board = Board(
        name=spec.name,
        mcu=mcu,  # type: ignore[arg-type]
        radio=radio,  # type: ignore[arg-type]
        battery=battery,  # type: ignore[arg-type]
        sensors=sensors,  # type: ignore[arg-type]
        power_tree=rails,
        description=spec.description,
        path=path,
        sources=MappingProxyType(src),
    )
    _check_power_tree(board, path, lines)
    return board


def _check_power_tree(board: Board, path: Path, lines: dict[tuple, int]) -> None:
    """A rail whose regulator cannot start from a full battery is a design error, not a short life."""
    from iotsim.energy.power_tree import rail_min_input_v

    full_v = board.battery.cells_in_series * board.battery.cell_ocv_v[-1]
    for i, rail in enumerate(board.power_tree):
        need = rail_min_input_v(rail)
        if need >= full_v:
            raise InputError(
                f"rail {rail.name!r} needs at least {need:g} V from the battery but a full "
                f"{board.battery.name} gives {full_v:g} V (open circuit)",
                where=_where(path, lines, ("power_tree", i)),
                field=f"power_tree.{i}",
            )
        out = rail.regulator.output_v
        if rail.regulator.kind == "buck" and out is not None and out >= full_v:
            raise InputError(
                f"rail {rail.name!r}: a buck converter cannot make {out:g} V from {full_v:g} V",
                where=_where(path, lines, ("power_tree", i)),
                field=f"power_tree.{i}",
            )
