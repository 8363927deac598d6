"""IEEE 802.11 (2.4 GHz) frame timing for one station sending to its access point.

PPDU durations (IEEE 802.11-2016):
- OFDM (802.11g, clause 17/18): 20 us preamble + SIGNAL, then 4-us symbols carrying
  N_DBPS data bits each; the data field holds 16 SERVICE bits + 8 x PSDU octets + 6 tail bits
  (17.3.5.4); ERP-OFDM in 2.4 GHz adds a 6-us signal extension (18.3.2.4).
- HT mixed format, 20 MHz, one spatial stream, 800 ns guard interval (clause 19):
  L-STF 8 + L-LTF 8 + L-SIG 4 + HT-SIG 8 + HT-STF 4 + one HT-LTF 4 = 36 us, then the data
  symbols as above (19.4.3), plus the 6-us signal extension in 2.4 GHz.
Published check: an ACK (14 octets) at 24 Mbit/s lasts 20 + 4 x ceil((16 + 112 + 6) / 96) = 28 us
before signal extension (the familiar 802.11a figure).

MAC timing in 2.4 GHz with short slots (802.11g/n): SIFS 10 us, slot 9 us, DIFS = SIFS + 2 slots
= 28 us, CWmin = 15 (so a first attempt waits 7.5 slots on average). Each data frame carries a
QoS data MAC header (26 octets), LLC/SNAP (8) and FCS (4); the AP answers with an ACK at the
basic rate (24 Mbit/s assumed) after SIFS.
"""

from __future__ import annotations

import numpy as np

SIFS_S = 10e-6
SLOT_S = 9e-6
DIFS_S = SIFS_S + 2 * SLOT_S
CW_MIN = 15
SIGNAL_EXTENSION_S = 6e-6
MAC_OVERHEAD_BYTES = 26 + 8 + 4  # QoS data header + LLC/SNAP + FCS
ACK_BYTES = 14
ACK_RATE_MBPS = 24

# data bits per OFDM symbol (20 MHz): 802.11g rates (Table 17-4) and HT MCS 0-7, 1 stream, (Table 19-27)
OFDM_NDBPS = {6: 24, 9: 36, 12: 48, 18: 72, 24: 96, 36: 144, 48: 192, 54: 216}
OFDM_RATES_MBPS = (6, 9, 12, 18, 24, 36, 48, 54)
HT20_NDBPS = (26, 52, 78, 104, 156, 208, 234, 260)
# minimum receiver input sensitivity (dBm) the standard requires: OFDM Table 17-18, HT20 Table 19-23
OFDM_SENSITIVITY_DBM = {6: -82, 9: -81, 12: -79, 18: -77, 24: -74, 36: -70, 48: -66, 54: -65}
HT20_SENSITIVITY_DBM = (-82, -79, -77, -74, -70, -66, -65, -64)


def _symbols(psdu_bytes, ndbps: int) -> np.ndarray:
    bits = 16 + 8 * np.asarray(psdu_bytes, dtype=np.int64) + 6
    return -(-bits // ndbps)


def ofdm_ppdu_time_s(psdu_bytes, rate_mbps: int, *, signal_extension: bool = True) -> np.ndarray:
    """Duration of an ERP-OFDM (802.11g) PPDU carrying `psdu_bytes` octets."""
    if rate_mbps not in OFDM_NDBPS:
        raise ValueError(f"unknown OFDM rate {rate_mbps}; known: {', '.join(map(str, OFDM_RATES_MBPS))} Mbit/s")
    t = 20e-6 + 4e-6 * _symbols(psdu_bytes, OFDM_NDBPS[rate_mbps])
    return t + (SIGNAL_EXTENSION_S if signal_extension else 0.0)


def ht20_ppdu_time_s(psdu_bytes, mcs: int) -> np.ndarray:
    """Duration of an HT mixed-format PPDU, 20 MHz, one stream, 800 ns GI, 2.4 GHz."""
    if not 0 <= mcs <= 7:
        raise ValueError("HT20 single-stream MCS must be 0..7")
    return 36e-6 + 4e-6 * _symbols(psdu_bytes, HT20_NDBPS[mcs]) + SIGNAL_EXTENSION_S


def data_ppdu_time_s(psdu_bytes, standard: str, mcs: int) -> np.ndarray:
    """Data frame duration for the scenario's standard: 802.11n (HT20 MCS) or 802.11g (rate index)."""
    if standard == "802.11n":
        return ht20_ppdu_time_s(psdu_bytes, mcs)
    if standard == "802.11g":
        return ofdm_ppdu_time_s(psdu_bytes, OFDM_RATES_MBPS[mcs])
    raise ValueError(f"unknown 802.11 standard {standard!r}")


def ack_time_s() -> float:
    """An ACK at the basic rate, including the 2.4 GHz signal extension."""
    return float(ofdm_ppdu_time_s(ACK_BYTES, ACK_RATE_MBPS))


def mean_access_delay_s() -> float:
    """DIFS plus the mean backoff of a first attempt on an idle channel (CWmin / 2 slots)."""
    return DIFS_S + CW_MIN / 2 * SLOT_S


def sensitivity_dbm(standard: str, mcs: int) -> float:
    """The standard's minimum receiver sensitivity for the data rate."""
    if standard == "802.11n":
        return float(HT20_SENSITIVITY_DBM[mcs])
    return float(OFDM_SENSITIVITY_DBM[OFDM_RATES_MBPS[mcs]])
