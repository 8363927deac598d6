"""LoRaWAN regional parameters (EU868) and application-level fragmentation of large payloads.

Sources (each constant below names its own):
- LoRa Alliance RP002-1.0.x "LoRaWAN Regional Parameters", EU863-870 chapter: default channels,
  data rates, maximum payload size table, RX1/RX2 defaults.
- Semtech/ARM LoRaMac implementations that encode those tables: LoRaMac-node RegionEU868 and
  mbed-os LoRaPHYEU868.cpp (MaxPayloadOfDatarateEU868 / ...RepeaterEU868, EU868_RECEIVE_DELAY1,
  EU868_RX_WND_2_FREQ, EU868_RX_WND_2_DR, the 1 % bands).
- ETSI EN 300 220 / ERC Recommendation 70-03 sub-band duty cycles (1 % on 865-868 MHz and on
  868.0-868.6 MHz, which hold all eight channels below).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iotsim.errors import InputError


@dataclass(frozen=True)
class Region:
    """Regional parameters of a LoRaWAN band (SI units: Hz, s)."""

    name: str
    default_channels_hz: tuple[float, ...]
    uplink_channels_hz: tuple[float, ...]
    duty_cycle: float
    rx1_delay_s: float
    rx2_delay_s: float
    rx2_frequency_hz: float
    rx2_data_rate: int
    max_eirp_dbm: float
    data_rates: tuple[tuple[int, float] | None, ...]
    """data_rates[DR] = (spreading factor, bandwidth Hz); None for non-LoRa rates (FSK)."""
    max_payload_bytes: tuple[int, ...]
    """N, maximum application payload per DR, repeater-compatible (no FOpts)."""
    max_payload_no_repeater_bytes: tuple[int, ...]
    """N per DR when the network has no repeater."""

    def data_rate_to_sf(self, data_rate: int) -> int:
        """Spreading factor of LoRa data rate ``data_rate`` (EU868: DR0 = SF12 ... DR5 = SF7, DR6 = SF7/250 kHz)."""
        return self._lora_rate(data_rate)[0]

    def data_rate_bandwidth_hz(self, data_rate: int) -> float:
        """Bandwidth (Hz) of LoRa data rate ``data_rate``."""
        return self._lora_rate(data_rate)[1]

    def sf_to_data_rate(self, sf: int, bandwidth_hz: float = 125_000) -> int:
        """Data rate index for a spreading factor and bandwidth."""
        for dr, rate in enumerate(self.data_rates):
            if rate is not None and rate[0] == int(sf) and abs(rate[1] - float(bandwidth_hz)) < 1e-6:
                return dr
        raise InputError(
            f"{self.name} has no LoRa data rate for SF{sf} at {float(bandwidth_hz):g} Hz; "
            f"data rates: {self._rates_text()}",
            field="sf",
        )

    def max_app_payload_bytes(self, sf: int, bandwidth_hz: float = 125_000, repeater_compatible: bool = True) -> int:
        """Largest application payload (FRMPayload, bytes) of one frame at ``sf``/``bandwidth_hz``.

        EU868, 125 kHz: 51 B at SF10-SF12, 115 B at SF9, 222 B at SF7-SF8 (242 B with
        ``repeater_compatible=False``). Assumes no MAC commands piggybacked in FOpts.
        """
        dr = self.sf_to_data_rate(sf, bandwidth_hz)
        table = self.max_payload_bytes if repeater_compatible else self.max_payload_no_repeater_bytes
        return table[dr]

    def _lora_rate(self, data_rate: int) -> tuple[int, float]:
        if isinstance(data_rate, bool) or not isinstance(data_rate, (int, np.integer)):
            raise InputError(f"data rate must be an integer index, got {data_rate!r}", field="data_rate")
        dr = int(data_rate)
        if not 0 <= dr < len(self.data_rates) or self.data_rates[dr] is None:
            raise InputError(
                f"{self.name} DR{dr} is not a LoRa data rate; LoRa data rates: {self._rates_text()}",
                field="data_rate",
            )
        rate = self.data_rates[dr]
        assert rate is not None
        return rate

    def _rates_text(self) -> str:
        return ", ".join(
            f"DR{i}=SF{r[0]}/{r[1] / 1000:g}kHz" for i, r in enumerate(self.data_rates) if r is not None
        )


EU868 = Region(
    name="EU868",
    # RP002-1.0.x EU863-870 "default channels": 868.1, 868.3, 868.5 MHz, DR0-DR5, 125 kHz.
    default_channels_hz=(868.1e6, 868.3e6, 868.5e6),
    # Typical 8-channel plan: the 3 defaults plus 867.1-867.9 MHz sent in the join CFList, as in
    # The Things Network EU863-870 plan (TheThingsNetwork/lorawan-frequency-plans EU_863_870.yml).
    uplink_channels_hz=(868.1e6, 868.3e6, 868.5e6, 867.1e6, 867.3e6, 867.5e6, 867.7e6, 867.9e6),
    # ETSI EN 300 220 / ERC Rec 70-03: 1 % in 868.0-868.6 MHz (sub-band g1) and in 865-868 MHz;
    # encoded as EU868_BAND0/BAND1 = 1 % in mbed-os LoRaPHYEU868.cpp.
    duty_cycle=0.01,
    # RP002 EU863-870 default settings: RECEIVE_DELAY1 1 s (mbed-os EU868_RECEIVE_DELAY1 1000 ms).
    rx1_delay_s=1.0,
    # RP002: RECEIVE_DELAY2 = RECEIVE_DELAY1 + 1 s = 2 s (mbed-os EU868_RECEIVE_DELAY2 2000 ms).
    rx2_delay_s=2.0,
    # RP002 EU863-870: RX2 default 869.525 MHz, DR0 (SF12/125 kHz) (EU868_RX_WND_2_FREQ/DR).
    rx2_frequency_hz=869.525e6,
    rx2_data_rate=0,
    # RP002 EU863-870: default max EIRP +16 dBm (mbed-os EU868_DEFAULT_MAX_EIRP 16.0).
    max_eirp_dbm=16.0,
    # RP002 EU863-870 data rate table (mbed-os DataratesEU868 / BandwidthsEU868): DR7 is FSK 50 kbps.
    data_rates=(
        (12, 125_000.0), (11, 125_000.0), (10, 125_000.0), (9, 125_000.0),
        (8, 125_000.0), (7, 125_000.0), (7, 250_000.0), None,
    ),
    # RP002 EU863-870 maximum payload size table, N; repeater-compatible column
    # (mbed-os/LoRaMac-node MaxPayloadOfDatarateRepeaterEU868 = {51,51,51,115,222,222,222,222}).
    max_payload_bytes=(51, 51, 51, 115, 222, 222, 222, 222),
    # Same table, no repeater (MaxPayloadOfDatarateEU868 = {51,51,51,115,242,242,242,242}).
    max_payload_no_repeater_bytes=(51, 51, 51, 115, 242, 242, 242, 242),
)

REGIONS: dict[str, Region] = {"EU868": EU868}


def get_region(name: str) -> Region:
    """Region by name ("EU868")."""
    key = str(name).upper().replace("-", "").replace("_", "")
    for region_name, region in REGIONS.items():
        if region_name.upper() == key:
            return region
    raise InputError(f"unknown LoRaWAN region {name!r}; available: {', '.join(REGIONS)}", field="region")


def data_rate_to_sf(data_rate: int, region: Region = EU868) -> int:
    """Spreading factor of ``data_rate`` in ``region`` (default EU868)."""
    return region.data_rate_to_sf(data_rate)


def max_app_payload_bytes(
    sf: int, bandwidth_hz: float = 125_000, region: Region = EU868, repeater_compatible: bool = True
) -> int:
    """Largest application payload (bytes) of one LoRaWAN frame; see :meth:`Region.max_app_payload_bytes`."""
    return region.max_app_payload_bytes(sf, bandwidth_hz, repeater_compatible)


def max_app_payload_array(
    sf, bandwidth_hz: float = 125_000, region: Region = EU868, repeater_compatible: bool = True
) -> np.ndarray:
    """Vectorized :func:`max_app_payload_bytes` over an array of spreading factors (int64 array)."""
    sf_arr = np.asarray(sf)
    values = np.unique(sf_arr)
    lookup = {int(v): region.max_app_payload_bytes(int(v), bandwidth_hz, repeater_compatible) for v in values}
    out = np.zeros(sf_arr.shape, dtype=np.int64)
    for v, n in lookup.items():
        out[sf_arr == v] = n
    return out


# ---- application-level fragmentation --------------------------------------------------------


def _check_fragment_args(payload_bytes, max_payload_bytes: int, header_bytes: int) -> None:
    for name, v in (("max_payload_bytes", max_payload_bytes), ("header_bytes", header_bytes)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise InputError(f"{name} must be a whole number >= 0, got {v!r}", field=name)
    if header_bytes >= max_payload_bytes:
        raise InputError(
            f"fragment header ({header_bytes} B) must be smaller than the frame payload limit "
            f"({max_payload_bytes} B): no room left for data",
            field="header_bytes",
        )
    arr = np.asarray(payload_bytes)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number) or np.any(arr < 0) or np.any(arr != np.round(arr)):
        raise InputError(f"payload_bytes must be whole numbers >= 0, got {payload_bytes!r}", field="payload_bytes")


def fragment_sizes(
    payload_bytes: int, max_payload_bytes: int, header_bytes: int, *, header_on_single_frame: bool = True
) -> list[int]:
    """Split a ``payload_bytes`` message into LoRaWAN frames of at most ``max_payload_bytes``.

    Every frame carries ``header_bytes`` of fragment header (sequence number, count, ...) plus
    up to ``max_payload_bytes - header_bytes`` bytes of data. Returns each frame's application
    payload size (header included): all full frames, then the remainder. An empty message
    gives no frames. ``sum(sizes) - len(sizes) * header_bytes == payload_bytes``.

    With ``header_on_single_frame=False`` a message that fits one frame
    (``payload_bytes <= max_payload_bytes``) is sent whole, without a fragment header, and only
    split messages carry headers (the convention of ``iotsim.engine.uplink``).
    """
    _check_fragment_args(payload_bytes, max_payload_bytes, header_bytes)
    if np.ndim(payload_bytes) != 0:
        raise InputError("fragment_sizes takes one payload; use n_fragments for arrays", field="payload_bytes")
    payload = int(payload_bytes)
    if not header_on_single_frame and 0 < payload <= max_payload_bytes:
        return [payload]
    capacity = max_payload_bytes - header_bytes
    full, rest = divmod(payload, capacity)
    sizes = [max_payload_bytes] * full
    if rest:
        sizes.append(header_bytes + rest)
    return sizes


def n_fragments(payload_bytes, max_payload_bytes: int, header_bytes: int, *, header_on_single_frame: bool = True):
    """Number of frames :func:`fragment_sizes` makes; vectorized over ``payload_bytes``."""
    _check_fragment_args(payload_bytes, max_payload_bytes, header_bytes)
    capacity = max_payload_bytes - header_bytes
    arr = np.asarray(payload_bytes).astype(np.int64)
    n = -((-arr) // capacity)
    if not header_on_single_frame:
        n = np.where((arr > 0) & (arr <= max_payload_bytes), 1, n)
    return int(n) if np.ndim(payload_bytes) == 0 else n
