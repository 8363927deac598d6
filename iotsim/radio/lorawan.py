"""LoRaWAN regional parameters (EU868, US915): channels, data rates, payload limits, sub-bands
and duty cycles, dwell time, RX1/RX2 settings and TX power tables.

Sources (each constant below names its own):
- LoRa Alliance RP002-1.0.x "LoRaWAN Regional Parameters", EU863-870 and US902-928 chapters:
  channels, data rates, maximum payload size tables, RX1/RX2 defaults, TX power tables.
- Semtech LoRaMac-node, which encodes those tables (Lora-net/LoRaMac-node src/mac/region/
  RegionEU868.h/.c, RegionUS915.h/.c, RegionCommon.c) and mbed-os LoRaPHYEU868.cpp.
- ETSI EN 300 220 / ERC Recommendation 70-03 sub-band duty cycles, as LoRaMac-node
  RegionEU868.c ``VerifyRfFreq`` and ``EU868_BAND0..5`` encode them.
- The Things Network US_902_928_FSB_2 frequency plan (sub-band 2: channels 8-15 and 65).

TX power convention: the tables give **EIRP** (dBm), as RP002 does (EU868: TXPower 0..7 =
max EIRP - 0, 2, ..., 14 dB). A radio's supply current is tabulated against its conducted
output power, so :meth:`Region.tx_power_conducted_dbm` subtracts an antenna gain: by default
2.15 dBi for EU868 (a half-wave dipole, LoRaMac-node ``EU868_DEFAULT_ANTENNA_GAIN 2.15f``, used
as ``floor(maxEirp - 2 * index - antennaGain)`` in RegionCommonComputeTxPower) and 0 dBi for
US915 (LoRaMac-node applies the 30 dBm ``US915_DEFAULT_MAX_ERP`` with no antenna gain).
Unlike LoRaMac-node we do not round the conducted power down to whole dBm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from iotsim.errors import InputError


@dataclass(frozen=True)
class SubBand:
    """A regulatory sub-band: frequencies ``low_hz``..``high_hz`` share one duty-cycle budget.

    ``low_inclusive=False`` makes the lower edge exclusive (LoRaMac-node puts 868.0 MHz itself in
    the 865-868 MHz band, and 868.0 < f <= 868.6 MHz in the next one).
    """

    low_hz: float
    high_hz: float
    duty_cycle: float
    max_eirp_dbm: float | None = None
    low_inclusive: bool = True
    name: str = ""

    def contains(self, freq_hz) -> np.ndarray:
        f = np.asarray(freq_hz, dtype=float)
        above = f >= self.low_hz if self.low_inclusive else f > self.low_hz
        return above & (f <= self.high_hz)


@dataclass(frozen=True)
class Region:
    """Regional parameters of a LoRaWAN band (SI units: Hz, s; powers in dBm EIRP)."""

    name: str
    default_channels_hz: tuple[float, ...]
    uplink_channels_hz: tuple[float, ...]
    """The channels a node of this simulator hops over (EU868: the 8-channel plan; US915: sub-band 2)."""
    duty_cycle: float
    """Aggregate duty cycle the engine applies to all channels together (1.0: no limit)."""
    rx1_delay_s: float
    rx2_delay_s: float
    rx2_frequency_hz: float
    rx2_data_rate: int
    max_eirp_dbm: float
    data_rates: tuple[tuple[int, float] | None, ...]
    """data_rates[DR] = (spreading factor, bandwidth Hz); None for non-LoRa or RFU rates."""
    max_payload_bytes: tuple[int, ...]
    """N, maximum application payload per DR, repeater-compatible (no FOpts); 0 where undefined."""
    max_payload_no_repeater_bytes: tuple[int, ...]
    """N per DR when the network has no repeater."""
    # ---- added with ADR / class A support (all have defaults so older constructions still work)
    uplink_data_rates: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
    downlink_data_rates: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
    default_data_rate: int = 0
    adr_max_data_rate: int = 5
    """Highest DR the network-side ADR raises a node to (the fastest 125 kHz uplink rate)."""
    max_rx1_dr_offset: int = 5
    rx1_dr_table: tuple[tuple[int, ...], ...] | None = None
    """rx1_dr_table[uplink DR][RX1DROffset] = RX1 DR; None: RX1 DR = max(DR - offset, 0)."""
    tx_power_steps_db: tuple[float, ...] = (0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0)
    """TXPower index i -> EIRP = max_eirp_dbm - tx_power_steps_db[i]."""
    default_antenna_gain_dbi: float = 0.0
    sub_bands: tuple[SubBand, ...] = ()
    uplink_dwell_time_s: float | None = None
    downlink_channels_hz: tuple[float, ...] = ()
    """RX1 downlink channels; empty means RX1 uses the uplink frequency (EU868)."""
    all_uplink_channels_hz: tuple[float, ...] = ()
    """Every uplink channel of the plan (US915: 64 x 125 kHz + 8 x 500 kHz), by channel index."""
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    # ---- data rates ------------------------------------------------------------------------

    def data_rate_to_sf(self, data_rate: int) -> int:
        """Spreading factor of LoRa data rate ``data_rate`` (EU868: DR0 = SF12 ... DR5 = SF7, DR6 = SF7/250 kHz)."""
        return self._lora_rate(data_rate)[0]

    def data_rate_bandwidth_hz(self, data_rate: int) -> float:
        """Bandwidth (Hz) of LoRa data rate ``data_rate``."""
        return self._lora_rate(data_rate)[1]

    def sf_to_data_rate(self, sf: int, bandwidth_hz: float = 125_000) -> int:
        """Uplink data rate index for a spreading factor and bandwidth (the lowest DR that matches)."""
        for dr, rate in enumerate(self.data_rates):
            if rate is not None and rate[0] == int(sf) and abs(rate[1] - float(bandwidth_hz)) < 1e-6:
                return dr
        raise InputError(
            f"{self.name} has no LoRa data rate for SF{sf} at {float(bandwidth_hz):g} Hz; "
            f"data rates: {self._rates_text()}",
            field="sf",
        )

    def max_app_payload_bytes(self, sf: int, bandwidth_hz: float = 125_000, repeater_compatible: bool = True) -> int:
        """Largest application payload (FRMPayload, bytes) of one uplink frame at ``sf``/``bandwidth_hz``.

        EU868, 125 kHz: 51 B at SF10-SF12, 115 B at SF9, 222 B at SF7-SF8 (242 B with
        ``repeater_compatible=False``). US915: 11 B at SF10, 53 B at SF9, 125 B at SF8, 242 B at
        SF7 and SF8/500 kHz. Assumes no MAC commands piggybacked in FOpts.
        """
        return self.max_app_payload_for_data_rate(self.sf_to_data_rate(sf, bandwidth_hz), repeater_compatible)

    def max_app_payload_for_data_rate(self, data_rate: int, repeater_compatible: bool = True) -> int:
        """Maximum application payload N (bytes) of data rate ``data_rate`` (uplink or downlink DR)."""
        self._lora_rate(data_rate)
        table = self.max_payload_bytes if repeater_compatible else self.max_payload_no_repeater_bytes
        return table[int(data_rate)]

    def rx1_data_rate(self, uplink_data_rate: int, rx1_dr_offset: int = 0) -> int:
        """Data rate of the RX1 downlink after an uplink at ``uplink_data_rate``.

        EU868: max(DR - RX1DROffset, 0) (RP002 EU863-870 RX1 table). US915: RP002 US902-928 RX1
        table (LoRaMac-node ``DatarateOffsetsUS915``): DR0 -> DR10 ... DR4 -> DR13 at offset 0.
        """
        dr = int(uplink_data_rate)
        off = int(rx1_dr_offset)
        if dr not in self.uplink_data_rates:
            raise InputError(f"{self.name} DR{dr} is not an uplink data rate; uplink DRs: {list(self.uplink_data_rates)}",
                             field="data_rate")
        if not 0 <= off <= self.max_rx1_dr_offset:
            raise InputError(f"{self.name} RX1DROffset must be 0..{self.max_rx1_dr_offset}, got {off}",
                             field="rx1_dr_offset")
        if self.rx1_dr_table is None:
            return max(dr - off, 0)
        return self.rx1_dr_table[dr][off]

    # ---- channels and sub-bands -------------------------------------------------------------

    def sub_band_index(self, freq_hz):
        """Index into :attr:`sub_bands` of each frequency (vectorized; scalar in, int out).

        Raises :class:`InputError` for a frequency outside every sub-band of the region.
        """
        f = np.asarray(freq_hz, dtype=float)
        out = np.full(f.shape, -1, dtype=np.int64)
        for i, band in enumerate(self.sub_bands):
            out[(out < 0) & band.contains(f)] = i
        if np.any(out < 0):
            bad = sorted({float(x) for x in np.atleast_1d(f)[np.atleast_1d(out) < 0]})
            raise InputError(
                f"{self.name}: frequency {', '.join(f'{b / 1e6:g} MHz' for b in bad)} is in no sub-band; "
                f"sub-bands: {', '.join(f'{b.low_hz / 1e6:g}-{b.high_hz / 1e6:g} MHz' for b in self.sub_bands)}",
                field="frequency_hz",
            )
        return int(out) if np.ndim(freq_hz) == 0 else out

    def sub_band_duty_cycle(self, freq_hz):
        """Duty cycle of the sub-band holding each frequency (vectorized)."""
        idx = self.sub_band_index(freq_hz)
        dc = np.array([b.duty_cycle for b in self.sub_bands], dtype=float)
        return float(dc[idx]) if np.ndim(freq_hz) == 0 else dc[idx]

    def uplink_channel_index(self, freq_hz):
        """Channel index of each uplink frequency in :attr:`all_uplink_channels_hz` (vectorized)."""
        table = np.asarray(self.all_uplink_channels_hz or self.uplink_channels_hz, dtype=float)
        f = np.asarray(freq_hz, dtype=float)
        diff = np.abs(f[..., None] - table)
        idx = np.argmin(diff, axis=-1)
        if np.any(np.take_along_axis(diff, idx[..., None], axis=-1)[..., 0] > 1.0):
            raise InputError(f"{self.name}: {np.asarray(freq_hz).tolist()!r} Hz is not an uplink channel", field="frequency_hz")
        return int(idx) if np.ndim(freq_hz) == 0 else idx.astype(np.int64)

    def rx1_frequency_hz(self, uplink_freq_hz):
        """RX1 downlink frequency after an uplink on ``uplink_freq_hz`` (vectorized).

        EU868: the uplink frequency. US915: channel (uplink channel mod 8) of 923.3 + 0.6 k MHz.
        """
        if not self.downlink_channels_hz:
            f = np.asarray(uplink_freq_hz, dtype=float)
            return float(f) if np.ndim(uplink_freq_hz) == 0 else f.copy()
        ch = np.asarray(self.uplink_channel_index(uplink_freq_hz))
        dl = np.asarray(self.downlink_channels_hz, dtype=float)[ch % len(self.downlink_channels_hz)]
        return float(dl) if np.ndim(uplink_freq_hz) == 0 else dl

    # ---- TX power ---------------------------------------------------------------------------

    @property
    def max_tx_power_index(self) -> int:
        """Largest TXPower index (lowest power): EU868 7, US915 14."""
        return len(self.tx_power_steps_db) - 1

    def tx_power_eirp_dbm(self, tx_power_index):
        """EIRP (dBm) of TXPower index ``tx_power_index`` (vectorized): max EIRP - step."""
        idx = np.asarray(tx_power_index)
        if idx.dtype == bool or not np.issubdtype(idx.dtype, np.integer) or np.any((idx < 0) | (idx > self.max_tx_power_index)):
            raise InputError(f"{self.name} TXPower index must be 0..{self.max_tx_power_index}, got {np.asarray(tx_power_index).tolist()!r}",
                             field="tx_power_index")
        eirp = self.max_eirp_dbm - np.asarray(self.tx_power_steps_db, dtype=float)[idx]
        return float(eirp) if np.ndim(tx_power_index) == 0 else eirp

    def tx_power_conducted_dbm(self, tx_power_index, antenna_gain_dbi: float | None = None, *,
                               floor_to_db: bool = False):
        """Radio output power (dBm) for TXPower ``tx_power_index``: EIRP - antenna gain.

        ``antenna_gain_dbi=None`` uses :attr:`default_antenna_gain_dbi` (EU868 2.15 dBi, US915 0).
        This is the power to look the radio's supply current up at. ``floor_to_db=True`` rounds
        down to whole dBm as LoRaMac-node does (RegionCommonComputeTxPower: EU868 TXPower 0 ->
        floor(16 - 2.15) = 13 dBm).
        """
        gain = self.default_antenna_gain_dbi if antenna_gain_dbi is None else float(antenna_gain_dbi)
        p = self.tx_power_eirp_dbm(tx_power_index) - gain
        if floor_to_db:
            p = np.floor(p + 1e-9)
            return float(p) if np.ndim(p) == 0 else p
        return p

    # ---- dwell time -------------------------------------------------------------------------

    def respects_dwell_time(self, data_rate, app_bytes, *, coding_rate=1, preamble_symbols=8):
        """True where an uplink of ``app_bytes`` application bytes at ``data_rate`` stays within the
        uplink dwell time (US915: 400 ms per channel, FCC 15.247); always True without a limit.

        The frame's PHY payload is ``app_bytes + LORAWAN_OVERHEAD_BYTES`` (no FOpts). Vectorized.
        """
        from iotsim.radio import lora  # local import: lora does not depend on lorawan

        dr = np.asarray(data_rate)
        pl = np.asarray(app_bytes)
        if self.uplink_dwell_time_s is None:
            out = np.ones(np.broadcast(dr, pl).shape, dtype=bool)
            return bool(out) if out.ndim == 0 else out
        drs = np.unique(dr)
        sf = np.zeros(dr.shape, dtype=np.int64)
        bw = np.zeros(dr.shape, dtype=float)
        for d in drs:
            sf[dr == d] = self.data_rate_to_sf(int(d))
            bw[dr == d] = self.data_rate_bandwidth_hz(int(d))
        toa = lora.time_on_air_s(pl + lora.LORAWAN_OVERHEAD_BYTES, sf, bw, coding_rate, preamble_symbols)
        ok = np.asarray(toa) <= self.uplink_dwell_time_s
        return bool(ok) if ok.ndim == 0 else ok

    def max_payload_within_dwell_time(self, data_rate: int, **kwargs) -> int:
        """Largest application payload at ``data_rate`` that respects the uplink dwell time
        (and never more than the DR's maximum payload N)."""
        n = self.max_app_payload_for_data_rate(data_rate, repeater_compatible=False)
        sizes = np.arange(0, n + 1)
        ok = np.atleast_1d(self.respects_dwell_time(np.full(sizes.shape, int(data_rate)), sizes, **kwargs))
        return int(sizes[ok].max()) if ok.any() else -1

    # ---- helpers ----------------------------------------------------------------------------

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


# ---- EU863-870 ----------------------------------------------------------------------------

EU868_SUB_BANDS: tuple[SubBand, ...] = (
    # LoRaMac-node RegionEU868.c VerifyRfFreq() and EU868_BAND0..5 (duty cycle 100 = 1 %,
    # 1000 = 0.1 %, 10 = 10 %), after ETSI EN 300 220 / ERC Rec 70-03 annex 1 bands h1.2-h1.7.
    # Listed in LoRaMac-node's band order (band index = position here).
    SubBand(865.0e6, 868.0e6, 0.01, name="865-868 MHz (band 0, 1 %)"),
    SubBand(868.0e6, 868.6e6, 0.01, low_inclusive=False, name="868.0-868.6 MHz (band 1, 1 %)"),
    SubBand(863.0e6, 865.0e6 - 1.0, 0.001, name="863-865 MHz (band 2, 0.1 %)"),  # LoRaMac-node: 863 <= f < 865 MHz
    # 869.4-869.65 MHz: 10 %, and ERC 70-03 h1.6 allows 500 mW ERP (27 dBm) here; RX2 869.525 MHz.
    SubBand(869.4e6, 869.65e6, 0.10, max_eirp_dbm=29.15, name="869.4-869.65 MHz (band 3, 10 %)"),
    SubBand(869.7e6, 870.0e6, 0.01, name="869.7-870 MHz (band 4, 1 %)"),
    SubBand(868.7e6, 869.2e6, 0.001, name="868.7-869.2 MHz (band 5, 0.1 %)"),
)

EU868 = Region(
    name="EU868",
    # RP002-1.0.x EU863-870 "default channels": 868.1, 868.3, 868.5 MHz, DR0-DR5, 125 kHz
    # (LoRaMac-node EU868_LC1..3).
    default_channels_hz=(868.1e6, 868.3e6, 868.5e6),
    # Typical 8-channel plan: the 3 defaults plus 867.1-867.9 MHz sent in the join CFList, as in
    # The Things Network EU863-870 plan (TheThingsNetwork/lorawan-frequency-plans EU_863_870.yml).
    uplink_channels_hz=(868.1e6, 868.3e6, 868.5e6, 867.1e6, 867.3e6, 867.5e6, 867.7e6, 867.9e6),
    # ETSI EN 300 220 / ERC Rec 70-03: 1 % in 868.0-868.6 MHz (sub-band g1) and in 865-868 MHz;
    # the engine applies one 1 % budget to all channels together (conservative).
    duty_cycle=0.01,
    # RP002 EU863-870 default settings: RECEIVE_DELAY1 1 s (LoRaMac-node EU868_RECEIVE_DELAY1 1000 ms).
    rx1_delay_s=1.0,
    # RP002: RECEIVE_DELAY2 = RECEIVE_DELAY1 + 1 s = 2 s (EU868_RECEIVE_DELAY2 2000 ms).
    rx2_delay_s=2.0,
    # RP002 EU863-870: RX2 default 869.525 MHz, DR0 (SF12/125 kHz) (EU868_RX_WND_2_FREQ/DR).
    rx2_frequency_hz=869.525e6,
    rx2_data_rate=0,
    # RP002 EU863-870: default max EIRP +16 dBm (LoRaMac-node EU868_DEFAULT_MAX_EIRP 16.0f).
    max_eirp_dbm=16.0,
    # RP002 EU863-870 data rate table (LoRaMac-node DataratesEU868 / BandwidthsEU868): DR7 is FSK 50 kbps.
    data_rates=(
        (12, 125_000.0), (11, 125_000.0), (10, 125_000.0), (9, 125_000.0),
        (8, 125_000.0), (7, 125_000.0), (7, 250_000.0), None,
    ),
    # RP002 EU863-870 maximum payload size table, N; repeater-compatible column
    # (LoRaMac-node MaxPayloadOfDatarateRepeaterEU868 = {51,51,51,115,222,222,222,222}).
    max_payload_bytes=(51, 51, 51, 115, 222, 222, 222, 222),
    # Same table, no repeater (MaxPayloadOfDatarateEU868 = {51,51,51,115,242,242,242,242}).
    max_payload_no_repeater_bytes=(51, 51, 51, 115, 242, 242, 242, 242),
    # LoRa uplink/downlink DRs DR0-DR6 (EU868_TX_MIN/MAX_DATARATE DR_0..DR_7 include FSK DR7).
    uplink_data_rates=(0, 1, 2, 3, 4, 5, 6),
    downlink_data_rates=(0, 1, 2, 3, 4, 5, 6),
    default_data_rate=0,  # EU868_DEFAULT_DATARATE DR_0
    # ADR over the 125 kHz channels stops at DR5 (SF7/125 kHz), as ns-3 AdrComponent (min SF 7).
    adr_max_data_rate=5,
    max_rx1_dr_offset=5,  # EU868_MAX_RX1_DR_OFFSET 5; RX1 DR = max(DR - offset, 0) (RP002 EU RX1 table)
    rx1_dr_table=None,
    # RP002 EU863-870 TX power table: TXPower 0..7 = max EIRP - 0, 2, ..., 14 dB
    # (LoRaMac-node EU868_MAX_TX_POWER TX_POWER_0 ... EU868_MIN_TX_POWER TX_POWER_7).
    tx_power_steps_db=(0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0),
    default_antenna_gain_dbi=2.15,  # LoRaMac-node EU868_DEFAULT_ANTENNA_GAIN 2.15f
    sub_bands=EU868_SUB_BANDS,
    uplink_dwell_time_s=None,  # RP002 EU863-870: no dwell-time limit
    downlink_channels_hz=(),
    all_uplink_channels_hz=(868.1e6, 868.3e6, 868.5e6, 867.1e6, 867.3e6, 867.5e6, 867.7e6, 867.9e6),
)

# ---- US902-928 ----------------------------------------------------------------------------

# RP002 US902-928 upstream channels: 64 x 125 kHz at 902.3 + 0.2 k MHz (channels 0-63, DR0-DR3)
# and 8 x 500 kHz at 903.0 + 1.6 k MHz (channels 64-71, DR4).
US915_UPLINK_125KHZ_HZ: tuple[float, ...] = tuple(902.3e6 + 0.2e6 * k for k in range(64))
US915_UPLINK_500KHZ_HZ: tuple[float, ...] = tuple(903.0e6 + 1.6e6 * k for k in range(8))
# RP002 US902-928 downstream: 8 x 500 kHz at 923.3 + 0.6 k MHz (LoRaMac-node US915_FIRST_RX1_CHANNEL
# 923300000, US915_STEPWIDTH_RX1_CHANNEL 600000, US915_LAST_RX1_CHANNEL 927500000).
US915_DOWNLINK_HZ: tuple[float, ...] = tuple(923.3e6 + 0.6e6 * k for k in range(8))
# Sub-band 2 ("FSB2"), the plan The Things Network uses (US_902_928_FSB_2): channels 8-15
# (903.9-905.3 MHz, 125 kHz) and channel 65 (904.6 MHz, 500 kHz).
US915_FSB2_CHANNELS: tuple[int, ...] = (8, 9, 10, 11, 12, 13, 14, 15, 65)

US915 = Region(
    name="US915",
    # RP002 US902-928: all 72 channels are enabled by default.
    default_channels_hz=US915_UPLINK_125KHZ_HZ + US915_UPLINK_500KHZ_HZ,
    # The simulator hops over the 8 x 125 kHz channels of sub-band 2 (channels 8-15).
    uplink_channels_hz=US915_UPLINK_125KHZ_HZ[8:16],
    # RP002 US902-928: no duty-cycle limit (LoRaMac-node US915_DUTY_CYCLE_ENABLED 0, band 0 100 %).
    duty_cycle=1.0,
    # RP002 default settings (all regions): RECEIVE_DELAY1 1 s, RECEIVE_DELAY2 2 s.
    rx1_delay_s=1.0,
    rx2_delay_s=2.0,
    # RP002 US902-928: RX2 923.3 MHz, DR8 (LoRaMac-node US915_RX_WND_2_FREQ 923300000, US915_RX_WND_2_DR DR_8).
    rx2_frequency_hz=923.3e6,
    rx2_data_rate=8,
    # RP002 US902-928 TX power table: TXPower 0 = 30 dBm (LoRaMac-node US915_DEFAULT_MAX_ERP 30.0f).
    max_eirp_dbm=30.0,
    # RP002 US902-928 data rates (LoRaMac-node DataratesUS915 / BandwidthsUS915): DR0 SF10 ... DR3 SF7
    # at 125 kHz, DR4 SF8/500 kHz; DR5/DR6 LR-FHSS and DR7 RFU (None); DR8-DR13 SF12..SF7 at 500 kHz
    # (downlink); DR14/15 RFU.
    data_rates=(
        (10, 125_000.0), (9, 125_000.0), (8, 125_000.0), (7, 125_000.0), (8, 500_000.0),
        None, None, None,
        (12, 500_000.0), (11, 500_000.0), (10, 500_000.0), (9, 500_000.0), (8, 500_000.0), (7, 500_000.0),
    ),
    # RP002 US902-928 maximum payload size, repeater-compatible (LoRaMac-node
    # MaxPayloadOfDatarateRepeaterUS915 = {11,53,125,242,242,0,0,0,33,109,222,222,222,222}).
    max_payload_bytes=(11, 53, 125, 242, 242, 0, 0, 0, 33, 109, 222, 222, 222, 222),
    # No repeater (LoRaMac-node MaxPayloadOfDatarateUS915 = {11,53,125,242,242,0,0,0,53,129,242,242,242,242}).
    max_payload_no_repeater_bytes=(11, 53, 125, 242, 242, 0, 0, 0, 53, 129, 242, 242, 242, 242),
    uplink_data_rates=(0, 1, 2, 3, 4),  # US915_TX_MIN/MAX_DATARATE DR_0..DR_4
    downlink_data_rates=(8, 9, 10, 11, 12, 13),  # US915_RX_MIN/MAX_DATARATE DR_8..DR_13
    default_data_rate=0,  # US915_DEFAULT_DATARATE DR_0
    adr_max_data_rate=3,  # fastest 125 kHz uplink DR (DR4 is the 500 kHz channel only)
    max_rx1_dr_offset=3,  # US915_MAX_RX1_DR_OFFSET 3
    # RP002 US902-928 RX1 DR table (LoRaMac-node DatarateOffsetsUS915[5][4]).
    rx1_dr_table=(
        (10, 9, 8, 8),
        (11, 10, 9, 8),
        (12, 11, 10, 9),
        (13, 12, 11, 10),
        (13, 13, 12, 11),
    ),
    # RP002 US902-928 TX power table: TXPower 0..14 = 30 dBm - 2 dB x TXPower
    # (LoRaMac-node US915_MAX_TX_POWER TX_POWER_0 ... US915_MIN_TX_POWER TX_POWER_14).
    tx_power_steps_db=tuple(2.0 * i for i in range(15)),
    default_antenna_gain_dbi=0.0,  # LoRaMac-node RegionUS915: RegionCommonComputeTxPower(..., 0)
    # One band, no duty cycle (US915_MAX_NB_BANDS 1, US915_BAND0 duty 1 = 100 %).
    sub_bands=(SubBand(902.0e6, 928.0e6, 1.0, name="902-928 MHz (no duty cycle)"),),
    # FCC 15.247 400 ms dwell time per channel for the 125 kHz channels; RP002 US902-928 sizes the
    # DR0 payload (11 B) so that a frame stays under it; TTN/Semtech docs: "400 ms dwell time".
    uplink_dwell_time_s=0.4,
    downlink_channels_hz=US915_DOWNLINK_HZ,
    all_uplink_channels_hz=US915_UPLINK_125KHZ_HZ + US915_UPLINK_500KHZ_HZ,
)

REGIONS: dict[str, Region] = {"EU868": EU868, "US915": US915}


def get_region(name: str) -> Region:
    """Region by name ("EU868", "US915"; case, "-" and "_" ignored)."""
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
    """Vectorized :func:`max_app_payload_bytes` over an array of spreading factors (int64 array).

    ``region`` may be a :class:`Region` or a region name ("EU868", "US915").
    """
    if isinstance(region, str):
        region = get_region(region)
    sf_arr = np.asarray(sf)
    values = np.unique(sf_arr)
    lookup = {int(v): region.max_app_payload_bytes(int(v), bandwidth_hz, repeater_compatible) for v in values}
    out = np.zeros(sf_arr.shape, dtype=np.int64)
    for v, n in lookup.items():
        out[sf_arr == v] = n
    return out
