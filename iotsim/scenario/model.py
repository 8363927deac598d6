"""Typed scenario: what a YAML scenario file may say, validated by pydantic v2.

Units: SI inside the program. In the file, durations are written with a unit ("5min", "7d",
"40ms"; a bare number means seconds) and other non-SI quantities carry the unit in the field name.

Every value is checked for range here, before any of it reaches numpy: numbers must be finite
(NaN and infinities are refused, except where a field says what .inf means), and each field has
bounds that keep a run meaningful and within memory. The bounds beyond physics are generous
sanity limits, not modelling claims:
- durations at most 100 years (MAX_DURATION_S); coordinates and areas within 10,000 km of the origin;
- a run's scheduled items per fleet group (events, heartbeats, inference windows: count x duration /
  interval) at most MAX_ITEMS_PER_GROUP, checked before any array is built;
- events_per_day at most one per minute (the workloads model rare events; faster than that they
  overlap into a permanent state), heartbeat at least a second (a keep-alive, not a data stream);
- sample rates at most 1 MHz and windows at most a million samples (the shipped sensors stream at
  most 16 kHz); the background pool at most 100,000 windows (it is held in memory, inferred once).
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from iotsim.network.reception import CAPTURE_THRESHOLD_DB
from iotsim.radio.lora import parse_coding_rate
from iotsim.radio.lorawan_mac import DEDUPLICATION_DELAY_S
from iotsim.units import parse_duration_s

MAX_DURATION_S = 100 * 365.25 * 86400.0
MAX_DISTANCE_M = 1e7
MAX_ITEMS_PER_GROUP = 500_000_000

Duration = Annotated[
    float,
    BeforeValidator(parse_duration_s),
    Field(le=MAX_DURATION_S),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "description": "seconds"},
                {"type": "string", "pattern": r"^\s*[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?\s*(us|ms|s|min|h|d)?\s*$"},
            ],
            "description": "a duration: a number of seconds or a string with a unit (us, ms, s, min, h, d)",
        }
    ),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


Coordinate = Annotated[float, Field(ge=-MAX_DISTANCE_M, le=MAX_DISTANCE_M)]
Length = Annotated[float, Field(ge=0, le=MAX_DISTANCE_M)]


class Placement(_Strict):
    """Where a group's nodes stand. `uniform`: random in a rectangle; `points`: listed positions."""

    kind: Literal["uniform", "points"] = "uniform"
    area_m: tuple[Length, Length] | None = Field(None, description="width and height of the rectangle (m)")
    origin_m: tuple[Coordinate, Coordinate] = (0.0, 0.0)
    points_m: list[tuple[Coordinate, Coordinate]] | None = Field(None, max_length=10_000_000)

    @model_validator(mode="after")
    def _check(self) -> "Placement":
        if self.kind == "uniform":
            if self.area_m is None:
                raise ValueError("uniform placement needs area_m: [width, height]")
            if min(self.area_m) < 0:
                raise ValueError("area_m must not be negative")
        elif not self.points_m:
            raise ValueError("points placement needs points_m: [[x, y], ...]")
        return self


ParamValue = Union[float, int, str, list[Union[float, int, str]]]


class WorkloadPhase(_Strict):
    """From `start` on, the signal's generator takes these parameters (on top of the workload's own): a signal
    that changes during the run (drift, seasons, wear)."""

    start: Duration = Field(gt=0, description="when the phase begins (from the start of the run)")
    params: dict[str, ParamValue] = Field(description="generator parameters, as in workload.params")


class WakeSpec(_Strict):
    """Event-driven sensing: instead of sampling every window, the node sleeps while a low-power comparator (or a
    sensor's wake-on-motion logic) watches one channel; a window in which that channel crosses a threshold wakes
    the node, which then takes and handles that window (the sensor's FIFO holds it)."""

    channel: int | str = Field(description="the watched channel: its index or name in the signal")
    above: float | None = Field(None, description="wake when a sample exceeds this (the channel's physical unit)")
    below: float | None = Field(None, description="wake when a sample falls below this")
    monitor_current_ua: float = Field(ge=0, le=100_000, description="what the watching draws, always (added to the "
                                      "sensor's sleep current)")

    @model_validator(mode="after")
    def _check(self) -> "WakeSpec":
        if self.above is None and self.below is None:
            raise ValueError("give a threshold: above, below or both")
        return self


class Workload(_Strict):
    """The sensor signal a group samples, and how it is cut into inference windows."""

    signal: str = Field(description="labelled signal generator, e.g. farm.soil_climate")
    sample_period: Duration | None = Field(None, description="time between samples inside a window")
    sample_rate_hz: float | None = Field(None, gt=0, le=1e6, description="alternative to sample_period")
    window: int | None = Field(None, ge=1, le=1_000_000,
                               description="samples per inference window (default: the signal's)")
    window_period: Duration | None = Field(
        None, description="time from one window's start to the next (default: back to back)"
    )
    events_per_day: float | None = Field(None, ge=0, le=1440,
                                         description="ground-truth event rate per node (at most one a minute)")
    event_duration: Duration | None = None
    params: dict[str, ParamValue] = Field(default_factory=dict, description="the signal generator's parameters "
                                          "(fields of its class, e.g. p_irrigation for farm.soil_climate; lists for "
                                          "ranges)")
    phases: list[WorkloadPhase] = Field(default_factory=list, max_length=100, description="the signal changes: "
                                        "windows that start in a phase are generated with its parameters")
    wake: WakeSpec | None = Field(None, description="wake on a threshold instead of handling every window")

    @model_validator(mode="after")
    def _check(self) -> "Workload":
        starts = [p.start for p in self.phases]
        if starts != sorted(starts) or len(set(starts)) != len(starts):
            raise ValueError("workload phases must start at increasing times")
        if self.sample_period is not None and self.sample_rate_hz is not None:
            raise ValueError("give sample_period or sample_rate_hz, not both")
        if self.sample_period is not None and not 1e-6 <= self.sample_period <= 86400:
            raise ValueError("sample_period must be between 1us and 1d")
        return self


class Normalization(_Strict):
    mean: list[float]
    std: list[float]


class ModelSpec(_Strict):
    """Bring your own model: any int8 .tflite file, described here instead of by a card beside it."""

    file: str = Field(description="path to an int8 .tflite file (relative to the working directory)")
    class_names: list[str] = Field(min_length=2, description="one name per model output")
    positive_class: int = Field(1, ge=0, description="index of the class that means 'event'")
    normalization: Normalization | None = Field(
        None, description="per-channel (x - mean) / std applied before quantization (default: none)"
    )
    input_adapter: dict | None = Field(
        None,
        description="feature extraction before the model, e.g. {name: mfcc, window_shape: [16000, 1], params: {}}; "
        "default: the window itself",
    )

    @model_validator(mode="after")
    def _check(self) -> "ModelSpec":
        if self.positive_class >= len(self.class_names):
            raise ValueError(f"positive_class {self.positive_class} is out of range for {len(self.class_names)} classes")
        return self

    def card(self) -> dict:
        """The model card this entry stands for."""
        card: dict = {"class_names": list(self.class_names), "positive_class": self.positive_class}
        if self.normalization is not None:
            card["normalization"] = {"mean": list(self.normalization.mean), "std": list(self.normalization.std)}
        if self.input_adapter is not None:
            card["input_adapter"] = self.input_adapter
        return card


class PanelSpec(_Strict):
    """A small fixed photovoltaic panel and the charger behind it (iotsim.energy.solar.Panel)."""

    area_cm2: float = Field(gt=0, le=100_000)
    efficiency: float = Field(gt=0, le=0.5, description="at standard test conditions (1000 W/m^2, 25 C cell)")
    tilt_deg: float = Field(30.0, ge=0, le=90)
    azimuth_deg: float = Field(180.0, ge=0, lt=360, description="compass direction it faces (180: south)")
    gamma_per_c: float = Field(-0.004, ge=-0.02, le=0, description="power temperature coefficient per degree C")
    charger_efficiency: float = Field(gt=0, le=1, description="share of the panel's DC energy the harvester's "
                                      "boost charger delivers to the storage")
    albedo: float = Field(0.2, ge=0, le=1)
    transposition: Literal["isotropic", "haydavies"] = "isotropic"


class StorageSpec(_Strict):
    """The rechargeable store of a harvesting node: a LiPo cell or a supercapacitor. Its usable energy lies
    between the empty limit (the cell's cut-off or the board's brown-out) and full (the charger's stop)."""

    kind: Literal["lipo", "supercap", "battery"]
    battery: str | None = Field(None, description="battery: a rechargeable profile in devices/battery/ (its capacity, "
                                "open-circuit voltage curve and self-discharge); usable down to the board's brown-out")
    capacity_mah: float | None = Field(None, gt=0, le=1e6, description="lipo: rated capacity")
    nominal_voltage_v: float | None = Field(None, gt=0, le=60, description="lipo: nominal voltage")
    usable_fraction: float = Field(1.0, gt=0, le=1, description="lipo: share of the capacity between the charger's "
                                   "stop and the empty limit")
    capacitance_f: float | None = Field(None, gt=0, le=1e5, description="supercap: capacitance")
    max_voltage_v: float | None = Field(None, gt=0, le=60, description="supercap: charged to")
    min_voltage_v: float | None = Field(None, ge=0, le=60, description="supercap: the node browns out below")
    leakage_ua: float = Field(0.0, ge=0, le=1e6, description="supercap: leakage current (charged at max voltage)")
    charge_efficiency: float = Field(gt=0, le=1, description="share of the energy put in that can be drawn again")
    self_discharge_per_month: float = Field(0.0, ge=0, lt=1, description="share of the stored energy lost per month")
    initial_fraction: float = Field(1.0, ge=0, le=1, description="charge at the start of the run")
    restart_fraction: float = Field(0.1, ge=0, le=1, description="a browned-out node restarts once the store holds "
                                    "this share again (the charger's power-good threshold with hysteresis)")

    @model_validator(mode="after")
    def _check(self) -> "StorageSpec":
        need = {"lipo": ("capacity_mah", "nominal_voltage_v"),
                "supercap": ("capacitance_f", "max_voltage_v", "min_voltage_v"), "battery": ("battery",)}[self.kind]
        missing = [f for f in need if getattr(self, f) is None]
        if missing:
            raise ValueError(f"a {self.kind} store needs {', '.join(missing)}")
        if self.kind == "supercap" and self.min_voltage_v >= self.max_voltage_v:
            raise ValueError("min_voltage_v must be below max_voltage_v")
        return self

    @property
    def capacity_j(self) -> float:
        """Usable energy (lipo, supercap; a battery profile's depends on the board: iotsim.engine.harvest)."""
        if self.kind == "battery":
            raise ValueError("a battery store's capacity depends on the board's brown-out: see iotsim.engine.harvest")
        if self.kind == "lipo":
            return self.capacity_mah * 3.6 * self.nominal_voltage_v * self.usable_fraction
        return 0.5 * self.capacitance_f * (self.max_voltage_v ** 2 - self.min_voltage_v ** 2)

    @property
    def leakage_w(self) -> float:
        return self.leakage_ua * 1e-6 * (self.max_voltage_v or 0.0)


class SolarSpec(_Strict):
    """Solar harvesting for a fleet group: its nodes run from a rechargeable store that a panel charges, under a
    site's typical-year weather (iotsim.energy.solar, iotsim.engine.harvest)."""

    site: Literal["greensboro_nc", "sand_point_ak", "miami_fl"] = Field(
        description="typical-year weather (iotsim/energy/data/solar_sites.md)")
    start_day: int = Field(0, ge=0, le=364, description="day of the typical year the run starts (0: 1 January)")
    panel: PanelSpec
    storage: StorageSpec


class FleetGroup(_Strict):
    group: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    count: int = Field(ge=1, le=10_000_000)
    device: str = Field(description="a board profile in devices/board/")
    placement: Placement
    workload: Workload
    model: str | ModelSpec = Field(
        description="zoo model name, path to an int8 .tflite file with its .json card beside it, or a mapping "
        "{file, class_names, positive_class, normalization, input_adapter} for any int8 .tflite file"
    )
    heartbeat: Duration = Field(6 * 3600.0, ge=1.0, description="on-device policies report alive this often "
                                "(at least every second)")
    heartbeat_arrivals: Literal["periodic", "poisson"] = Field(
        "periodic",
        description="periodic: every `heartbeat` from a random phase per node; poisson: a Poisson process with "
        "mean interval `heartbeat` per node (for validation against ALOHA's closed forms)",
    )
    event_payload_bytes: int = Field(
        4, ge=1, le=1_000_000, description="application payload of an event message (class, confidence, window time)"
    )
    heartbeat_payload_bytes: int = Field(4, ge=1, le=1_000_000, description="application payload of a heartbeat")
    solar: SolarSpec | None = Field(None, description="the nodes harvest solar energy into a rechargeable store "
                                    "(instead of living off their board's battery)")


class LoRaWanSettings(_Strict):
    sf: Literal["auto"] | Annotated[int, Field(ge=7, le=12)] = "auto"
    bandwidth_hz: Literal[125000, 250000, 500000] = 125000
    coding_rate: str = "4/5"
    tx_power_dbm: float = Field(14.0, ge=-30, le=40)
    confirmed: bool = Field(
        False, description="confirmed uplinks: the network acknowledges each in RX1 or RX2; an unacknowledged frame "
        "is sent again (up to nb_trans times) after RECEIVE_DELAY2 + RETRANSMIT_TIMEOUT (LoRaWAN 1.0.4 4.3.1.3)"
    )
    nb_trans: int = Field(
        1, ge=1, le=15, description="transmissions per frame (NbTrans, LoRaWAN 1.0.4 5.3): confirmed frames stop at "
        "their ACK, unconfirmed ones at any downlink"
    )
    adr: bool = Field(
        False, description="network-side ADR (Semtech algorithm: max SNR of the last 20 uplinks, adr_margin_db "
        "installation margin) with LinkADRReq/Ans, and the device's ADR backoff (ADR_ACK_LIMIT 64, ADR_ACK_DELAY 32)"
    )
    rx1_dr_offset: int = Field(0, ge=0, le=5, description="RX1DROffset: RX1 data rate below the uplink's (RP002)")
    downlinks_per_day: float = Field(
        0.0, ge=0, le=1440, description="application downlinks queued at the network server per node per day (Poisson); "
        "sent in the receive windows after the node's next uplink (class A)"
    )
    downlink_payload_bytes: int = Field(8, ge=0, le=200, description="application payload of a downlink")
    gateway_tx_power_dbm: float = Field(
        14.0, ge=-30, le=40, description="gateway transmit power for downlinks (EU868: RP002 default max EIRP 16 dBm)"
    )
    engine: Literal["auto", "closed_loop"] = Field(
        "auto", description="auto: the closed-form fast path when nothing feeds back into the nodes (unconfirmed, "
        "no ADR, no downlinks, nb_trans 1), the SimPy closed loop otherwise; closed_loop: always the SimPy engine"
    )
    uplink_channels: int | None = Field(
        None, ge=1, description="use only the first N uplink channels of the region's plan (default: all)"
    )
    duty_cycle_scope: Literal["sub_band", "aggregate"] = Field(
        "sub_band",
        description="sub_band: each ETSI sub-band keeps its own duty-cycle budget (as LoRaMac-node); aggregate: "
        "one budget across all channels at the strictest sub-band's duty cycle (conservative)",
    )
    preamble_symbols: int = Field(8, ge=6, le=65535)
    adr_margin_db: float = Field(
        10.0, ge=-50, le=100,
        description="link margin kept when choosing SF (Semtech ADR recommendation; TTN's default is 10 dB)",
    )
    rx_window_symbols: int = Field(
        8, ge=4, le=1023, description="symbols a class A receive window stays open when no downlink comes"
    )
    rx2_sf: int = Field(12, ge=7, le=12, description="RX2 data rate (EU868 default DR0 = SF12; TTN uses SF9)")
    duty_cycle_mode: Literal["wait", "drop"] = Field(
        "wait", description="when the duty cycle forbids sending: wait for the next allowed time, or drop"
    )
    fragment_header_bytes: int = Field(2, ge=0, le=64, description="per-frame header when a raw window is split")
    deduplication_delay: Duration = Field(
        DEDUPLICATION_DELAY_S, le=60,
        description="the network server waits this long after an uplink's first copy (its gateway's backhaul "
        "latency after the uplink's end) for copies from other gateways, then answers through one of the gateways "
        "whose copy came in time; the answer must reach that gateway over its backhaul 32.5 ms before the receive "
        "window opens (Semtech packet forwarder), else RX2 is tried, else no answer (ChirpStack's default: 200 ms)",
    )

    @field_validator("coding_rate")
    @classmethod
    def _cr(cls, v: str) -> str:
        parse_coding_rate(v)
        return v


class BleSettings(_Strict):
    """A Bluetooth LE connection from each node (peripheral) to its gateway (central: phone or hub).

    Data goes up as GATT notifications; timing per the Bluetooth Core Specification (Vol 6 Part B).
    """

    phy: Literal["1M", "2M"] = Field("1M", description="LE PHY (Core spec Vol 6 Part A 3.1)")
    connection_interval: Duration = Field(
        1.0, description="connection interval, 7.5 ms to 4 s (Core spec Vol 6 Part B 4.5.1)"
    )
    peripheral_latency: int = Field(
        0, ge=0, le=499, description="connection events the node may skip when it has nothing to send"
    )
    supervision_timeout: Duration = Field(
        4.0, description="link dropped after this long without a received packet (100 ms to 32 s)"
    )
    max_ll_payload_bytes: int = Field(
        251, ge=27, le=251, description="LL data payload: 27 (BLE 4.0/4.1) or up to 251 with data length extension"
    )
    packets_per_event: int = Field(
        4, ge=1, le=1000, description="data packets the node sends per connection event (stack dependent)"
    )
    encrypted: bool = Field(True, description="link-layer encryption adds a 4-byte MIC to every data PDU")
    tx_power_dbm: float = Field(0.0, ge=-30, le=40)
    gateway_sensitivity_dbm: float = Field(
        -95.0, ge=-200, le=0,
        description="gateway receiver sensitivity at BER 1e-3; default: nRF52840 PS, RX sensitivity, "
        "1 Mbps BLE, ideal transmitter, <= 37 B packets: -95 dBm (a gateway with the same class of radio)",
    )

    @model_validator(mode="after")
    def _check(self) -> "BleSettings":
        if not 0.0075 <= self.connection_interval <= 4.0:
            raise ValueError("connection_interval must be between 7.5ms and 4s (Core spec Vol 6 Part B 4.5.1)")
        if not 0.1 <= self.supervision_timeout <= 32.0:
            raise ValueError("supervision_timeout must be between 100ms and 32s")
        if self.supervision_timeout <= 2 * self.connection_interval * (1 + self.peripheral_latency):
            raise ValueError(
                "supervision_timeout must exceed 2 x connection_interval x (1 + peripheral_latency) (Core spec)"
            )
        return self


class WifiSettings(_Strict):
    """An 802.11 station (the node) associated with an access point (the gateway), 2.4 GHz."""

    standard: Literal["802.11n", "802.11g"] = "802.11n"
    mcs: int = Field(7, ge=0, le=7, description="802.11n HT20 MCS (one stream), or the index of the 802.11g rate "
                     "in 6, 9, 12, 18, 24, 36, 48, 54 Mbit/s")
    tx_power_dbm: float = Field(14.0, ge=-30, le=40)
    power_save: Literal["connected", "reconnect"] = Field(
        "connected",
        description="connected: stay associated, wake for every DTIM beacon; reconnect: radio off between "
        "messages, (re)associate before each one (the radio's startup time, spent receiving)",
    )
    beacon_interval: Duration = Field(0.1024, ge=1e-3, le=60, description="AP beacon interval (100 TU = 102.4 ms default)")
    dtim_period: int = Field(3, ge=1, le=255, description="the station wakes for every DTIM-th beacon")
    beacon_listen: Duration = Field(
        0.003, description="radio on per DTIM beacon: early wake-up margin + a ~250 B beacon at 1 Mbit/s"
    )
    max_attempts: int = Field(7, ge=1, le=255, description="transmissions per frame (dot11ShortRetryLimit = 7)")
    ip_overhead_bytes: int = Field(28, ge=0, le=65535, description="IPv4 (20 B) + UDP (8 B) headers per frame")
    mtu_bytes: int = Field(1500, ge=68, le=65535, description="IP MTU; larger messages are fragmented")
    ap_sensitivity_dbm: float | None = Field(
        None, ge=-200, le=0,
        description="AP receiver sensitivity; default: IEEE 802.11-2016 minimum input sensitivity for the rate "
        "(Table 19-23 for HT20, Table 17-18 for OFDM)",
    )


class Ieee802154Settings(_Strict):
    """A multi-hop IEEE 802.15.4 mesh (2.4 GHz O-QPSK, 250 kbit/s): the nodes route to the gateways (border
    routers, always on) over an ETX tree, with unslotted CSMA/CA and, by default, ContikiMAC duty cycling
    (iotsim.mesh.network)."""

    tx_power_dbm: float = Field(0.0, ge=-40, le=20)
    sensitivity_dbm: float = Field(
        -85.0, ge=-130, le=0,
        description="receiver sensitivity (1 % PER, 20-octet PSDU); default: the least a compliant 2.4 GHz radio "
        "must hear (IEEE 802.15.4-2006 6.5.3.3)")
    cca_threshold_dbm: float | None = Field(
        None, ge=-130, le=0,
        description="CCA energy-detection threshold; default: sensitivity + 10 dB (802.15.4-2006 6.9.9, the "
        "highest it may be)")
    min_be: int = Field(3, ge=0, le=8, description="macMinBE (802.15.4-2006 Table 86, default 3)")
    max_be: int = Field(5, ge=3, le=8, description="macMaxBE (default 5)")
    max_csma_backoffs: int = Field(4, ge=0, le=5, description="macMaxCSMABackoffs (default 4)")
    max_frame_retries: int = Field(3, ge=0, le=7, description="macMaxFrameRetries (default 3)")
    interframe_spacing: bool = Field(
        True, description="with duty_cycling none: a sender's next frame waits SIFS (12 symbols) or LIFS (40) after "
        "the acknowledgement (802.15.4-2006 7.5.1.3); false: no spacing, the simplification")
    duty_cycling: Literal["contikimac", "none"] = Field(
        "contikimac", description="contikimac: radio duty cycling as Contiki's ContikiMAC (Dunkels 2011); none: "
        "every radio always listening")
    channel_check_rate_hz: float = Field(
        8.0, gt=0, le=1024, description="ContikiMAC channel checks per second (a power of two; Contiki's default 8)")
    phase_lock: bool = Field(True, description="ContikiMAC phase optimisation: senders learn their receivers' "
                             "wake-up phase")
    queue_frames: int = Field(8, ge=1, le=10_000, description="frames a node can queue (Contiki QUEUEBUF_NUM 8)")
    fading: Literal["rayleigh", "none"] = Field(
        "rayleigh", description="rayleigh: every frame's power at every receiver fades (an exponential power gain "
        "per frame and receiver), and routing weighs links by their faded delivery; none: static link budgets")
    frame_overhead_bytes: int = Field(
        18, ge=0, le=100,
        description="bytes of every frame's PSDU that are not application payload: the MAC header with short "
        "addresses and PAN ID compression (frame control 2, sequence number 1, PAN ID 2, two addresses 2 + 2) and "
        "the FCS 2 (IEEE 802.15.4-2006 7.2.1) = 11, plus 6LoWPAN header compression at its best with a shared "
        "context (RFC 6282: IPHC 2 + context identifier 1; UDP next header 4: dispatch 1, both ports in 0xF0Bx 1, "
        "checksum 2) = 7")

    @model_validator(mode="after")
    def _check(self) -> "Ieee802154Settings":
        if self.min_be > self.max_be:
            raise ValueError("min_be must not exceed max_be")
        rate = self.channel_check_rate_hz
        if self.duty_cycling == "contikimac" and (rate != int(rate) or int(rate) & (int(rate) - 1)):
            raise ValueError("channel_check_rate_hz must be a power of two (ContikiMAC, core/net/netstack.h)")
        if self.frame_overhead_bytes >= 127 - 4:
            raise ValueError("frame_overhead_bytes leaves no room for payload in a 127-octet PSDU")
        return self


_LENA_SIB2 = ("LENA-NB (ns-3 NB-IoT, tudo-cni/ns3-lena-nb; Joerke, Gebauer, Wietfeld, WNS3 2022) "
              "model/lte-enb-rrc.cc GenerateSystemInformationBlockType2Nb, 'Values from Vodafone Cell'")


class NbIotCoverageLevel(_Strict):
    """One NB-IoT coverage enhancement level: its random access and downlink control configuration (SIB2-NB) and
    the uplink repetitions the cell uses for its nodes."""

    nprach_repetitions: int = Field(description="NPRACH numRepetitionsPerPreambleAttempt (1, 2, 4, ..., 128)")
    nprach_period: Duration = Field(gt=0, description="NPRACH periodicity: a node waits for the next occasion")
    npdcch_rmax: int = Field(ge=1, le=2048, description="NPDCCH search space Rmax (subframes the node monitors)")
    npdcch_g: float = Field(description="NPDCCH search space start G (1.5, 2, 4, 8, 16, 32, 48, 64): the search "
                            "space repeats every Rmax x G subframes")
    npdsch_subframes: int = Field(ge=1, le=20_480, description="subframes of one short downlink message (RAR, "
                                  "RRC setup or release, acknowledgement), repetitions included")
    npusch_repetitions: int = Field(description="NPUSCH repetitions of every uplink transport block (1, 2, ..., 128)")
    rar_window_periods: int = Field(ge=2, le=10, description="ra-ResponseWindowSize in search space periods")

    @model_validator(mode="after")
    def _check(self) -> "NbIotCoverageLevel":
        from iotsim.radio.nbiot import REPETITIONS

        for name in ("nprach_repetitions", "npusch_repetitions"):
            if getattr(self, name) not in REPETITIONS:
                raise ValueError(f"{name} must be one of {', '.join(map(str, REPETITIONS))}")
        if self.npdcch_g not in (1.5, 2, 4, 8, 16, 32, 48, 64):
            raise ValueError("npdcch_g must be one of 1.5, 2, 4, 8, 16, 32, 48, 64 (TS 36.331 npdcch-StartSF-CSS-RA)")
        return self


def _nbiot_levels() -> tuple[NbIotCoverageLevel, NbIotCoverageLevel, NbIotCoverageLevel]:
    # NPRACH repetitions n1/n8/n32, periodicity ms320/ms640/ms2560, Rmax r8/r64/r512, G v2/v1dot5/v4 and
    # ra-ResponseWindowSize pp10/pp8/pp8: LENA-NB's SIB2-NB (_LENA_SIB2). Downlink messages: 2 subframes repeated
    # as the DCI (r2/r32/r256 in LENA-NB's nb-iot-scheduler.cc, "Liberg ... Table 8.9"): an assumption.
    # NPUSCH repetitions: the least that LENA-NB's NPUSCH BLER table (csv/clean_NPUSCH_100_TRBlks.csv, 3.75 kHz
    # single tone, I_TBS 10, one resource unit) lists at the level's worst coupling loss: 2 at 147 dB, 8 at 159 dB
    # and 8 at 164 dB (BLER 0.01, 0.03, 0.07).
    return (
        NbIotCoverageLevel(nprach_repetitions=1, nprach_period=0.32, npdcch_rmax=8, npdcch_g=2, npdsch_subframes=4,
                           npusch_repetitions=2, rar_window_periods=10),
        NbIotCoverageLevel(nprach_repetitions=8, nprach_period=0.64, npdcch_rmax=64, npdcch_g=1.5,
                           npdsch_subframes=64, npusch_repetitions=8, rar_window_periods=8),
        NbIotCoverageLevel(nprach_repetitions=32, nprach_period=2.56, npdcch_rmax=512, npdcch_g=4,
                           npdsch_subframes=512, npusch_repetitions=8, rar_window_periods=8),
    )


class NbIotSettings(_Strict):
    """NB-IoT (3GPP Rel-13, in-band or stand-alone 180 kHz carrier): each node camps on the cell (gateway) with the
    least coupling loss, picks its coverage enhancement level from that loss, and per report resumes its RRC
    connection (random access, Msg3, Msg4), sends, stays connected until the cell's inactivity timer releases it,
    listens in idle for the active timer T3324 and then sleeps in power saving mode (iotsim.link.nbiot)."""

    tx_power_dbm: float = Field(23.0, ge=-40, le=23, description="UE power class 3: 23 dBm (TS 36.101)")
    carrier_frequency_mhz: float = Field(800.0, gt=0, le=6000, description="E-UTRA band 20 (EU 800 MHz)")
    ce_thresholds_db: tuple[float, float] = Field(
        (147.7, 159.7), description="coupling loss from which a node uses CE level 1 and CE level 2: LENA-NB's SIB2-NB "
        "RSRP thresholds -115.5 and -127.5 dBm ('From Vodafone wireshark') with its 43 dBm cell over 12 subcarriers "
        "(coupling loss = 43 - 10 log10 12 - RSRP)")
    max_coupling_loss_db: float = Field(
        164.0, ge=100, le=200, description="beyond it a node finds no cell: 164 dB, the Rel-13 NB-IoT coverage "
        "target (20 dB beyond GPRS; Ratasuk et al., quoted in dan-leo/masters' literature chapter)")
    coverage_levels: tuple[NbIotCoverageLevel, NbIotCoverageLevel, NbIotCoverageLevel] = Field(
        default_factory=_nbiot_levels, description="CE levels 0, 1, 2 (defaults: LENA-NB's Vodafone cell)")
    nprach_format: Literal[0, 1] = Field(1, description="NPRACH preamble format (cyclic prefix 66.7 or 266.7 us); "
                                         "LENA-NB sends format 1")
    subcarrier_spacing_hz: Literal[3750, 15000] = 3750
    subcarriers: Literal[1, 3, 6, 12] = 1
    i_tbs: int = Field(10, ge=0, le=12, description="NPUSCH I_TBS (single tone: at most 10)")
    i_ru: int = Field(0, ge=0, le=7, description="NPUSCH I_RU: 1, 2, 3, 4, 5, 6, 8 or 10 resource units per block")
    msg3_bits: int = Field(88, ge=16, le=1000, description="Msg3 (RRC resume request) MAC PDU: LENA-NB's 88 bits")
    harq_ack: Duration = Field(0.016, ge=0, le=10, description="NPUSCH format 2 acknowledgement of a downlink "
                               "message: LENA-NB's subframesNpuschHarq = 16")
    block_error_rate: float = Field(0.1, ge=0, lt=1, description="each transmission of a transport block fails with "
                                    "this probability (the cell dimensions repetitions for 10 %: the LTE CQI "
                                    "definition's 0.1, TS 36.213 7.2.3)")
    max_block_transmissions: int = Field(4, ge=1, le=64, description="transmissions of a block before the frame is "
                                         "lost (link_retries); assumption")
    max_preamble_attempts: int = Field(10, ge=1, le=200, description="random access attempts before a node gives "
                                       "up (LENA-NB maxNumPreambleAttemptCE n10)")
    inactivity_timer: Duration = Field(30.0, ge=0, le=3600, description="the cell releases a node this long after "
                                       "its last data (LENA-NB m_dataInactivityInterval 30000 ms)")
    release_assistance: bool = Field(False, description="Rel-14 release assistance indication: the node says it has "
                                     "nothing more and the cell releases it at once (no inactivity timer)")
    active_timer: Duration = Field(3.5, ge=0, le=11_160, description="T3324: idle (eDRX) listening after release "
                                   "before power saving mode (LENA-NB's 3500 ms)")
    tau_period: Duration = Field(5 * 86400.0, gt=0, description="T3412: a periodic tracking area update (a random "
                                 "access and a release) this often (LENA-NB's UE default: 5 days)")
    ip_overhead_bytes: int = Field(28, ge=0, le=1000, description="IPv4 (20 B) + UDP (8 B) headers per packet")
    l2_overhead_bytes: int = Field(10, ge=0, le=100, description="MAC, RLC and PDCP headers per packet: the 10 B "
                                   "LENA-NB's scheduler adds to the RLC buffer (nb-iot-scheduler: (10 + buffer) x 8)")
    mtu_bytes: int = Field(1500, ge=100, le=1600, description="IP MTU (the PDCP SDU is at most 1600 B); larger "
                           "messages are fragmented")

    @model_validator(mode="after")
    def _check(self) -> "NbIotSettings":
        from iotsim.radio.nbiot import npusch_tbs_bits, resource_unit_s

        lo, hi = self.ce_thresholds_db
        if not lo <= hi <= self.max_coupling_loss_db:
            raise ValueError("ce_thresholds_db must rise and stay at or below max_coupling_loss_db")
        resource_unit_s(self.subcarrier_spacing_hz, self.subcarriers)
        npusch_tbs_bits(self.i_tbs, self.i_ru)
        if self.subcarriers == 1 and self.i_tbs > 10:
            raise ValueError("a single-tone NPUSCH allocation carries I_TBS 0-10 (TS 36.213 Table 16.5.1.2-1)")
        if self.mtu_bytes <= self.ip_overhead_bytes:
            raise ValueError("mtu_bytes leaves no room for payload")
        return self


class Propagation(_Strict):
    """Log-distance path loss with log-normal shadowing (defaults: Bor et al., MSWiM 2016)."""

    pl_d0_db: float = Field(127.41, ge=0, le=300)
    d0_m: float = Field(40.0, gt=0, le=MAX_DISTANCE_M)
    exponent: float = Field(2.08, gt=0, le=10)
    shadowing_sigma_db: float = Field(3.57, ge=0, le=50)


class Reception(_Strict):
    """How LoRaWAN gateways decode overlapping frames; each simplification is a switch."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=True)  # .inf: no capture (NaN fails ge=0)

    capture_threshold_db: float = Field(
        CAPTURE_THRESHOLD_DB, ge=0,
        description="co-SF capture: a frame survives same-SF interference when its signal-to-interference ratio "
        "(energy summed over the overlap) is at least this (6 dB: Bor et al., MSWiM 2016); 0 means the strongest "
        "frame wins (ties lose); .inf means no capture (any same-SF overlap destroys both)",
    )
    inter_sf: Literal["croce", "orthogonal"] = Field(
        "croce",
        description="croce: frames of other spreading factors interfere above the rejection thresholds of Croce "
        "et al., IEEE Commun. Lett. 22(4), 2018; orthogonal: spreading factors never interfere",
    )
    demodulator_paths: int | None = Field(
        8, ge=1, le=1_000_000,
        description="frames a gateway can demodulate at once (8 on SX1301/SX1302-class gateways); null: unlimited",
    )
    downlink_interference: bool = Field(
        True,
        description="downlinks of different gateways on the same frequency interfere at the nodes (same rule as "
        "uplinks); false: a downlink strong enough for its node always arrives",
    )



class Backhaul(_Strict):
    latency: Duration = Field(0.04, le=86400)
    bandwidth_bps: float = Field(10e6, gt=0, le=1e15)


class Gateway(_Strict):
    id: str
    position_m: tuple[Coordinate, Coordinate]
    backhaul: Backhaul | None = None


class Cloud(_Strict):
    inference_time: Duration = Field(0.008, le=86400, description="service time of one cloud inference")
    servers: int = Field(4, ge=1, le=1_000_000)
    model: str | None = Field(None, description="model the cloud runs (default: the node model's float twin)")


class Network(_Strict):
    technology: Literal["lorawan", "ble", "wifi", "ieee802154", "nbiot"] = "lorawan"
    region: Literal["EU868", "US915"] = Field("EU868", description="LoRaWAN regional parameters (RP002)")
    lorawan: LoRaWanSettings = LoRaWanSettings()
    ble: BleSettings = BleSettings()
    wifi: WifiSettings = WifiSettings()
    ieee802154: Ieee802154Settings = Ieee802154Settings()
    nbiot: NbIotSettings = NbIotSettings()
    propagation: Propagation = Propagation()
    reception: Reception = Reception()
    gateways: list[Gateway] = Field(min_length=1, max_length=100_000)
    backhaul: Backhaul = Backhaul()
    cloud: Cloud = Cloud()

    @property
    def tx_power_dbm(self) -> float:
        """The nodes' TX power under the chosen technology."""
        return {"lorawan": self.lorawan, "ble": self.ble, "wifi": self.wifi,
                "ieee802154": self.ieee802154, "nbiot": self.nbiot}[self.technology].tx_power_dbm

    @property
    def radio_technology(self) -> str:
        """The radio a board needs for this network (a radio profile's `technology`)."""
        return {"lorawan": "lora", "ble": "ble", "wifi": "wifi", "ieee802154": "ieee802154",
                "nbiot": "nbiot"}[self.technology]

    @model_validator(mode="after")
    def _unique_ids(self) -> "Network":
        ids = [g.id for g in self.gateways]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"gateway ids must be unique, repeated: {sorted(dup)}")
        return self


class CascadeSettings(_Strict):
    confidence_below: float = Field(0.8, gt=0, le=1, description="windows below this confidence go up raw")


class CascadePolicy(_Strict):
    cascade: CascadeSettings


class EnergyAwareSettings(_Strict):
    """Switch each harvesting node between two policies by its store's charge, hour by hour."""

    normal: Literal["cloud_offload", "on_device", "cascade"] = "cloud_offload"
    low: Literal["cloud_offload", "on_device", "cascade"] = "on_device"
    below: float = Field(0.3, gt=0, lt=1, description="a node switches to `low` for an hour whose start finds its "
                         "store below this share of its capacity")
    above: float = Field(0.5, gt=0, le=1, description="and back to `normal` once an hour starts above this share "
                         "(hysteresis; at least `below`)")

    @model_validator(mode="after")
    def _check(self) -> "EnergyAwareSettings":
        if self.above < self.below:
            raise ValueError("above must be at least below")
        if self.normal == self.low:
            raise ValueError("normal and low must be different policies")
        return self


class EnergyAwarePolicy(_Strict):
    energy_aware: EnergyAwareSettings


PolicyEntry = Union[Literal["cloud_offload", "on_device", "cascade"], CascadePolicy, EnergyAwarePolicy]


class Outputs(_Strict):
    dir: str = "results"
    plots: bool = True
    report: Literal["html", "none"] = "html"
    packets_table: bool = Field(True, description="write the per-frame packets table (large for big fleets)")


class Simulation(_Strict):
    background_pool: int = Field(
        20000,
        ge=100,
        le=100_000,
        description="event-free windows generated and inferred once per group; nodes draw from this "
        "Monte Carlo pool (event windows are always generated fresh)",
    )
    chunk: Duration | None = Field(
        None, gt=0,
        description="run in time chunks of this length (e.g. 1d): memory bounded by the fleet, not by the frames, "
        "for long runs of large fleets; every table is the same whatever the length (LoRaWAN without feedback, BLE "
        "and Wi-Fi; see docs/design.md)")


class Update(_Strict):
    """A model update sent over the air to some groups (LoRaWAN: a class C multicast FUOTA session; BLE and
    Wi-Fi: each node's own link, its gateway serving its nodes one after another)."""

    at: Duration = Field(description="when the session starts (from the start of the run)")
    model: str | ModelSpec = Field(description="the new model: a zoo name, an int8 .tflite path with its card, or a "
                                   "mapping as a group's model; it must take the groups' windows")
    groups: list[str] | None = Field(None, min_length=1, description="the groups it goes to (default: every group); "
                                     "they must run the same model before it")
    mode: Literal["delta", "full"] = Field("delta", description="send a detools delta from the model the nodes run, "
                                           "or the whole new model file")
    compression: Literal["heatshrink", "lzma", "crle", "none"] = Field(
        "heatshrink", description="the delta's compression (detools; heatshrink suits small RAM)")
    data_rate: int | None = Field(None, ge=0, le=15, description="LoRaWAN: the multicast session's data rate "
                                  "(default: the region's RX2 data rate, EU868 DR0 = SF12)")
    redundancy: float = Field(0.2, ge=0, le=10, description="LoRaWAN: coded fragments per uncoded one (TS004 FEC)")
    fragment_loss: float = Field(0.0, ge=0, lt=1, description="independent loss of each fragment (LoRaWAN) or packet "
                                 "attempt (BLE, Wi-Fi) at a node, besides fading below the sensitivity")
    unicast: Literal["none", "repair", "only"] = Field(
        "none", description="LoRaWAN: class A unicast of the fragments, each node polling with empty uplinks and the "
                            "network answering a poll with one fragment in RX2: `repair` after the multicast session, "
                            "to the nodes that could not decode it; `only` instead of a multicast session (the "
                            "baseline); `none`")
    poll_period: Duration | None = Field(None, gt=0, le=86400, description="LoRaWAN unicast: time between a node's polls "
                                         "(default: as often as its duty cycle allows)")
    check_failure: float = Field(0.0, ge=0, le=1, description="share of the nodes that have the whole update whose "
                                 "new image then fails its checks (a corrupted flash write, power lost while "
                                 "applying; 1: a bad signature), drawn per node: they roll back to the old slot "
                                 "and keep the old model, having spent the work of applying it")


class Federated(_Strict):
    """Federated rounds (FedAvg): chosen nodes train the model's last dense layers on their own recent
    windows, send the new weights up as uplinks, and the network server averages those that arrive by the
    deadline and sends the averaged layers back to the groups over the air (as an update)."""

    groups: list[str] | None = Field(None, min_length=1, description="the groups that take part (default: every "
                                     "group); they must run the same model")
    mode: Literal["fedavg", "central"] = Field("fedavg", description="fedavg: the nodes train and send weights; "
                                               "central: the nodes send their raw windows and the cloud retrains "
                                               "(the alternative federated learning avoids)")
    start: Duration = Field(description="the first round (from the start of the run)")
    every: Duration = Field(7 * 86400.0, gt=0, description="time between rounds")
    rounds: int = Field(1, ge=1, le=1000)
    participation: float = Field(0.1, gt=0, le=1, description="share of the groups' nodes drawn to train in each "
                                 "round (at least one)")
    layers: int = Field(1, ge=1, le=8, description="the model's last fully connected layers trained on the node")
    epochs: int = Field(1, ge=1, le=100, description="local epochs per round")
    batch_size: int | None = Field(16, ge=1, le=100_000, description="local minibatch (null: all the node's windows)")
    learning_rate: float = Field(0.05, gt=0, le=10)
    positive_weight: float = Field(1.0, gt=0, le=1000, description="weight of the event class in the training "
                                   "loss (events are rare in a node's windows; about negatives / positives "
                                   "balances them)")
    max_windows: int = Field(200, ge=1, le=100_000, description="a node trains on its most recent windows since "
                             "the previous round, at most this many (labelled by the ground truth)")
    deadline: Duration = Field(3600.0, gt=0, description="updates that reach the server later than this after "
                               "the round starts miss it; the averaged layers go out then")
    upload_spread: Duration | None = Field(None, ge=0, description="a node sends its update at a random time this "
                                           "long after its training ends, so that the round's updates do not all "
                                           "collide (default: half the deadline)")
    validation_windows: int = Field(2000, ge=100, le=100_000, description="held-out windows per group, half with "
                                    "an event, on which each round's model is scored")
    data_rate: int | None = Field(None, ge=0, le=15, description="LoRaWAN: the multicast session's data rate "
                                  "(default: the region's RX2 data rate)")
    redundancy: float = Field(0.2, ge=0, le=10, description="LoRaWAN: coded fragments per uncoded one (TS004 FEC)")
    fragment_loss: float = Field(0.0, ge=0, lt=1, description="independent loss of each fragment or packet attempt "
                                 "at a node, besides fading")

    def round_starts(self) -> list[float]:
        return [self.start + r * self.every for r in range(self.rounds)]


class Scenario(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    seed: int = Field(0, ge=0, le=2**63 - 1)
    duration: Duration
    fleet: list[FleetGroup] = Field(min_length=1, max_length=10_000)
    network: Network
    policies: list[PolicyEntry] = Field(min_length=1)
    outputs: Outputs = Outputs()
    simulation: Simulation = Simulation()
    updates: list[Update] = Field(default_factory=list, max_length=100, description="model updates over the air")
    federated: Federated | None = Field(None, description="federated training rounds on the nodes")

    @model_validator(mode="after")
    def _check(self) -> "Scenario":
        if self.duration <= 0:
            raise ValueError("duration must be positive")
        groups = [g.group for g in self.fleet]
        dup = {g for g in groups if groups.count(g) > 1}
        if dup:
            raise ValueError(f"fleet group names must be unique, repeated: {sorted(dup)}")
        for u in self.updates:
            if u.at >= self.duration:
                raise ValueError(f"an update at {u.at:g} s starts after the run ends ({self.duration:g} s)")
            unknown = sorted(set(u.groups or []) - set(groups))
            if unknown:
                raise ValueError(f"an update names unknown groups {unknown} (the fleet's: {groups})")

        fed = self.federated
        if fed is not None:
            last = fed.round_starts()[-1] + fed.deadline
            if last >= self.duration:
                raise ValueError(f"federated: the last round's deadline ({last:g} s) is not before the run ends "
                                 f"({self.duration:g} s)")
            if fed.deadline >= fed.every and fed.rounds > 1:
                raise ValueError(f"federated: the deadline ({fed.deadline:g} s) must be shorter than the time between "
                                 f"rounds ({fed.every:g} s)")
            if fed.upload_spread is not None and fed.upload_spread >= fed.deadline:
                raise ValueError(f"federated: upload_spread ({fed.upload_spread:g} s) must be shorter than the "
                                 f"deadline ({fed.deadline:g} s)")
            unknown = sorted(set(fed.groups or []) - set(groups))
            if unknown:
                raise ValueError(f"federated names unknown groups {unknown} (the fleet's: {groups})")
            if self.updates:
                raise ValueError("federated rounds and scheduled updates in one scenario are not supported yet (both "
                                 "send models over the gateways): run them as separate scenarios")
        for group in self.fleet:
            self._check_size(group)
        names = [policy_name(p) for p in self.policies]
        if "energy_aware" in names and (self.updates or self.federated is not None):
            raise ValueError("energy_aware with model updates or federated rounds is not supported yet")
        if "energy_aware" in names and any(g.solar is None for g in self.fleet):
            raise ValueError("energy_aware reads each node's store: every fleet group needs solar: "
                             f"(without: {[g.group for g in self.fleet if g.solar is None]})")
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"each policy may appear once, repeated: {sorted(dup)}")
        return self


    def _check_size(self, group: "FleetGroup") -> None:
        """Refuse a group whose run would schedule more than MAX_ITEMS_PER_GROUP items (before numpy
        is asked for the arrays). Inference windows, which depend on the signal's defaults, are counted
        when the references are checked (iotsim.scenario.loader)."""
        wl = group.workload
        counts = {"heartbeats": self.duration / group.heartbeat}
        if wl.events_per_day is not None:
            counts["events"] = wl.events_per_day * self.duration / 86400.0
        for what, per_node in counts.items():
            total = per_node * group.count
            if total > MAX_ITEMS_PER_GROUP:
                raise ValueError(
                    f"fleet group '{group.group}' would schedule {total:.3g} {what} (count x duration / interval), "
                    f"more than the {MAX_ITEMS_PER_GROUP:.0e} a run holds: lower count or duration, or lengthen "
                    "the interval")


def policy_name(entry: PolicyEntry) -> str:
    if isinstance(entry, str):
        return entry
    return "energy_aware" if isinstance(entry, EnergyAwarePolicy) else "cascade"
