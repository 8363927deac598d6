"""LoRa physical layer: time on air, receiver sensitivity and demodulation SNR limits.

Time on air follows the Semtech SX1276/77/78/79 datasheet, section 4.1.1.7 (also Semtech
AN1200.13, "LoRa Modem Designer's Guide"):

    T_sym      = 2^SF / BW
    T_preamble = (n_preamble + 4.25) * T_sym
    n_payload  = 8 + max(ceil((8 PL - 4 SF + 28 + 16 CRC - 20 IH) / (4 (SF - 2 DE))) * (CR + 4), 0)
    T_packet   = T_preamble + n_payload * T_sym

with PL the PHY payload in bytes, IH = 1 for implicit header, DE = 1 when low data rate
optimisation is on, CR = 1..4 for coding rates 4/5..4/8. Spreading factors 7-12 are covered
(the LoRaWAN range); SF5/SF6 on the SX126x use a different preamble term and are not.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from iotsim.errors import InputError

TOA_SOURCE = "Semtech SX1276/77/78/79 datasheet Rev 7, section 4.1.1.7 (time on air); Semtech AN1200.13"

LORAWAN_OVERHEAD_BYTES = 13
"""Bytes a LoRaWAN data frame adds to the application payload: MHDR 1 + FHDR 7 (DevAddr 4,
FCtrl 1, FCnt 2, no FOpts) + FPort 1 + MIC 4 (LoRa Alliance LoRaWAN Specification 1.0.x,
section 4, "MAC Message Formats")."""

LDRO_SYMBOL_TIME_S = 16e-3
"""Low data rate optimisation is switched on when the symbol time exceeds 16 ms (SX1276
datasheet, section 4.1.1.6 / RegModemConfig3: mandated for SF11 and SF12 at 125 kHz)."""

MIN_SF, MAX_SF = 7, 12

# Receiver sensitivity of an SX1276 end node (dBm), band 1 (862-1020 MHz), highest LNA gain,
# LnaBoost: datasheet Rev 7, table 10 "LoRa Receiver Specification", RFS_L125_HF,
# RFS_L250_HF, RFS_L500_HF. SF6 at 250/500 kHz is not tabulated here.
NODE_SENSITIVITY_SOURCE = "Semtech SX1276/77/78/79 datasheet Rev 7, table 10, RFS_L125_HF / RFS_L250_HF / RFS_L500_HF (band 1, LnaBoost)"
_NODE_SENSITIVITY_DBM: dict[int, dict[int, float]] = {
    125_000: {6: -118.0, 7: -123.0, 8: -126.0, 9: -129.0, 10: -132.0, 11: -133.0, 12: -136.0},
    250_000: {7: -120.0, 8: -123.0, 9: -125.0, 10: -128.0, 11: -130.0, 12: -133.0},
    500_000: {7: -116.0, 8: -119.0, 9: -122.0, 10: -125.0, 11: -128.0, 12: -130.0},
}

# Gateway (SX1302 concentrator + SX1250 front end, reference design) sensitivity at 125 kHz.
GATEWAY_SENSITIVITY_SOURCE = (
    "Semtech SX1302 datasheet Rev 1.0, section 3.6 'Example Reference Design Performance', "
    "table 3-6 (SX1250 front end, PER 10 %, 12-byte packets), 125 kHz: SF7 -127 ... SF12 -141 dBm; "
    "the section's conditions were read (page 14 of 31: PER = 10 %, 12-byte packets, SX1250 front end "
    "behind an LNA of 18 dB gain and 1.5 dB noise figure; 38.142.81.21:8001/manual/waveshare/"
    "sx1302-lorawan-gateway-hat/datasheet-english/page-14.html) but not the table on the next page: the "
    "values are unconfirmed, transcribed from a third-party simulator that cites table 3-6 (for comparison "
    "the SX1301 datasheet v2.4 quotes -139.5 dBm for its reference design)"
)
_GATEWAY_SENSITIVITY_DBM: dict[int, dict[int, float]] = {
    125_000: {7: -127.0, 8: -129.0, 9: -132.5, 10: -135.5, 11: -138.0, 12: -141.0},
}

# Demodulator SNR limit per spreading factor (dB): SX1276 datasheet Rev 7, section 4.1.1.2,
# table 13 "Range of Spreading Factors" (also used as the demodulation floor in
# TheThingsNetwork/lorawan-stack pkg/networkserver/mac/margin_table.go).
SNR_SOURCE = "Semtech SX1276/77/78/79 datasheet Rev 7, section 4.1.1.2, table 13 (LoRa demodulator SNR)"
_SNR_THRESHOLD_DB: dict[int, float] = {6: -5.0, 7: -7.5, 8: -10.0, 9: -12.5, 10: -15.0, 11: -17.5, 12: -20.0}


def _is_scalar(*values: object) -> bool:
    return all(np.ndim(v) == 0 for v in values)


def _as_int_array(values: object, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"{name} must be a whole number, got {values!r}", field=name)
    if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
        raise InputError(f"{name} must be a whole number, got {values!r}", field=name)
    return arr.astype(np.int64)


def _check_sf(sf: np.ndarray, lo: int = MIN_SF, hi: int = MAX_SF) -> None:
    flat = np.atleast_1d(sf)
    outside = (flat < lo) | (flat > hi)
    if outside.any():
        bad = sorted(set(flat[outside].tolist()))
        raise InputError(f"spreading factor must be {lo}..{hi}, got {bad}", field="sf")


def _check_bandwidth(bw: np.ndarray) -> None:
    if not np.all(np.isfinite(bw)) or np.any(bw <= 0):
        raise InputError(f"bandwidth must be a positive number of Hz, got {bw.tolist()!r}", field="bandwidth_hz")


def symbol_time_s(sf, bandwidth_hz=125_000):
    """LoRa symbol duration 2^SF / BW in seconds (scalar in, scalar out; arrays broadcast)."""
    sf_arr = _as_int_array(sf, "sf")
    _check_sf(sf_arr, 5, 12)
    bw = np.asarray(bandwidth_hz, dtype=float)
    _check_bandwidth(bw)
    t = np.ldexp(1.0, sf_arr) / bw
    return float(t) if _is_scalar(sf, bandwidth_hz) else t


def parse_coding_rate(value: str | int) -> int:
    """Coding rate index 1..4 from "4/5".."4/8" (or from the index itself)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if 1 <= int(value) <= 4:
            return int(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            frac = text.split("/")
            if len(frac) == 2 and frac[0].strip() == "4":
                denominator = int(frac[1])
                if 5 <= denominator <= 8:
                    return denominator - 4
        except ValueError:
            pass
    raise InputError(f"coding rate must be one of 4/5, 4/6, 4/7, 4/8 (or 1..4), got {value!r}", field="coding_rate")


def low_data_rate_optimize_auto(sf, bandwidth_hz=125_000):
    """True where the symbol time exceeds 16 ms (SF11/SF12 at 125 kHz, SF12 at 250 kHz)."""
    t = symbol_time_s(sf, bandwidth_hz)
    return bool(t > LDRO_SYMBOL_TIME_S) if np.ndim(t) == 0 else t > LDRO_SYMBOL_TIME_S


def time_on_air_s(
    payload_bytes,
    sf,
    bandwidth_hz=125_000,
    coding_rate=1,
    preamble_symbols=8,
    explicit_header=True,
    crc=True,
    low_data_rate_optimize=None,
):
    """Time on air (s) of one LoRa packet of ``payload_bytes`` PHY payload bytes.

    ``payload_bytes``, ``sf`` and ``bandwidth_hz`` may be numpy arrays (they broadcast; the
    result is then an array); scalars give a float. ``coding_rate`` is 1..4 (4/5..4/8) or the
    text "4/5".."4/8". ``low_data_rate_optimize=None`` switches it on where the symbol time
    exceeds 16 ms; True/False forces it. A LoRaWAN frame's PHY payload is the application
    payload plus :data:`LORAWAN_OVERHEAD_BYTES`.
    """
    cr = parse_coding_rate(coding_rate)
    fast = _scalar_toa(payload_bytes, sf, bandwidth_hz, cr, preamble_symbols, explicit_header, crc,
                       low_data_rate_optimize)
    if fast is not None:
        return fast
    pl = _as_int_array(payload_bytes, "payload_bytes")
    if np.any((pl < 0) | (pl > 255)):
        raise InputError(f"LoRa PHY payload must be 0..255 bytes, got {np.asarray(payload_bytes).tolist()!r}", field="payload_bytes")
    sf_arr = _as_int_array(sf, "sf")
    _check_sf(sf_arr)
    bw = np.asarray(bandwidth_hz, dtype=float)
    _check_bandwidth(bw)
    n_pre = _as_int_array(preamble_symbols, "preamble_symbols")
    if np.any(n_pre < 0):
        raise InputError(f"preamble_symbols must be >= 0, got {preamble_symbols!r}", field="preamble_symbols")

    t_sym = np.ldexp(1.0, sf_arr) / bw
    if low_data_rate_optimize is None:
        de = (t_sym > LDRO_SYMBOL_TIME_S).astype(np.int64)
    else:
        de = np.asarray(low_data_rate_optimize, dtype=bool).astype(np.int64)
    ih = 0 if explicit_header else 1
    crc_bit = 1 if crc else 0

    numerator = 8 * pl - 4 * sf_arr + 28 + 16 * crc_bit - 20 * ih
    denominator = 4 * (sf_arr - 2 * de)
    blocks = -((-numerator) // denominator)  # integer ceil, exact for negative numerators too
    n_payload = 8 + np.maximum(blocks * (cr + 4), 0)
    t = (n_pre + 4.25 + n_payload) * t_sym
    if _is_scalar(payload_bytes, sf, bandwidth_hz, low_data_rate_optimize, preamble_symbols):
        return float(t)
    return t


_INT = (int, np.integer)


def _scalar_toa(pl, sf, bw, cr, n_pre, explicit_header, crc, ldro) -> float | None:
    """Pure-Python path for plain in-range scalars (same formula; None means use the array path)."""
    if not (
        isinstance(pl, _INT) and isinstance(sf, _INT) and isinstance(n_pre, _INT)
        and isinstance(cr, _INT) and isinstance(bw, (int, float, np.integer, np.floating))
        and not isinstance(pl, bool) and not isinstance(sf, bool) and not isinstance(cr, bool)
        and 0 <= pl <= 255 and MIN_SF <= sf <= MAX_SF and 1 <= cr <= 4 and n_pre >= 0
        and math.isfinite(bw) and bw > 0 and (ldro is None or isinstance(ldro, (bool, np.bool_)))
    ):
        return None
    pl, sf, n_pre, cr = int(pl), int(sf), int(n_pre), int(cr)
    t_sym = (1 << sf) / float(bw)
    de = int(t_sym > LDRO_SYMBOL_TIME_S) if ldro is None else int(bool(ldro))
    numerator = 8 * pl - 4 * sf + 28 + (16 if crc else 0) - (0 if explicit_header else 20)
    blocks = -((-numerator) // (4 * (sf - 2 * de)))
    return (n_pre + 4.25 + 8 + max(blocks * (cr + 4), 0)) * t_sym


def _lookup(table: dict[int, dict[int, float]], sf, bandwidth_hz, what: str):
    bw = float(bandwidth_hz)
    key = int(round(bw))
    if key not in table or abs(bw - key) > 1e-6:
        raise InputError(
            f"no {what} tabulated for bandwidth {bw:g} Hz; tabulated: {', '.join(f'{b:g}' for b in table)} Hz",
            field="bandwidth_hz",
        )
    row = table[key]
    sf_arr = _as_int_array(sf, "sf")
    missing = sorted({int(s) for s in np.atleast_1d(sf_arr) if int(s) not in row})
    if missing:
        raise InputError(
            f"no {what} tabulated for SF {missing} at {bw:g} Hz; tabulated SF: {sorted(row)}", field="sf"
        )
    if np.ndim(sf) == 0:
        return row[int(sf_arr)]
    return np.vectorize(row.__getitem__, otypes=[float])(sf_arr)


def node_sensitivity_dbm(sf, bandwidth_hz=125_000):
    """SX1276 end-node receiver sensitivity (dBm) for ``sf`` at ``bandwidth_hz`` (datasheet table 10)."""
    return _lookup(_NODE_SENSITIVITY_DBM, sf, bandwidth_hz, "SX1276 sensitivity")


def gateway_sensitivity_dbm(sf, bandwidth_hz=125_000):
    """LoRaWAN gateway (SX1302 reference design) sensitivity (dBm) at 125 kHz; see GATEWAY_SENSITIVITY_SOURCE."""
    return _lookup(_GATEWAY_SENSITIVITY_DBM, sf, bandwidth_hz, "gateway sensitivity")


def snr_threshold_db(sf):
    """Lowest SNR (dB) at which the LoRa demodulator still decodes ``sf`` (SX1276 table 13)."""
    sf_arr = _as_int_array(sf, "sf")
    _check_sf(sf_arr, 6, 12)
    if np.ndim(sf) == 0:
        return _SNR_THRESHOLD_DB[int(sf_arr)]
    return np.vectorize(_SNR_THRESHOLD_DB.__getitem__, otypes=[float])(sf_arr)


def bitrate_bps(sf, bandwidth_hz=125_000, coding_rate=1) -> float:
    """Nominal LoRa bit rate SF * BW / 2^SF * 4 / (4 + CR) (SX1276 datasheet, section 4.1.1.1)."""
    cr = parse_coding_rate(coding_rate)
    return float(Fraction(int(sf)) * Fraction(4, 4 + cr)) / symbol_time_s(int(sf), bandwidth_hz)
