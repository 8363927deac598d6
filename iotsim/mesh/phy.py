"""IEEE 802.15.4 at 2.4 GHz (O-QPSK, 250 kbit/s): frame timing and the chance a frame survives the channel.

Timing (IEEE Std 802.15.4-2006, 6.5 and 7.4): 62.5 ksymbol/s, 4 bits a symbol, so 2 symbols (32 us) an
octet; every PPDU carries a 4-octet preamble, a 1-octet start-of-frame delimiter (the synchronisation
header, 10 symbols) and a 1-octet PHY header before its PSDU of at most 127 octets. An acknowledgement
is a 5-octet PSDU (frame control, sequence number, FCS). aTurnaroundTime is 12 symbols,
aUnitBackoffPeriod 20, a CCA lasts 8; macAckWaitDuration = aUnitBackoffPeriod + aTurnaroundTime +
phySHRDuration + 6 x phySymbolsPerOctet = 54 symbols.

Errors (IEEE Std 802.15.4-2006, E.4.1.7, AWGN, non-coherent detection of the 16-chip symbols): with SINR
as a power ratio,

    BER = (8/15) (1/16) sum_{k=2..16} (-1)^k C(16, k) exp(20 SINR (1/k - 1))

and a frame of n octets survives with (1 - BER)^(8 n). ns-3's lr-wpan module uses the same expression
(`LrWpanErrorModel`), and its unit test's values (BER 7.38e-14 at 5 dB, 5.13e-7 at 2 dB, 0.00114 at
-1 dB, 0.0391 at -4 dB, 0.175 at -7 dB) are this module's test vectors.

The receiver's noise floor is not a free parameter: it is set so that a 20-octet PSDU is received
with 1 % packet error at the radio's sensitivity, the condition under which the standard (6.5.3.3:
-85 dBm or better) and datasheets state sensitivity.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

SYMBOL_S = 16e-6  # 62.5 ksymbol/s
SYMBOLS_PER_OCTET = 2
OCTET_S = SYMBOL_S * SYMBOLS_PER_OCTET  # 32 us
SHR_OCTETS = 5  # preamble (4) and SFD (1)
PHR_OCTETS = 1
MAX_PSDU_OCTETS = 127  # aMaxPHYPacketSize
ACK_PSDU_OCTETS = 5
TURNAROUND_S = 12 * SYMBOL_S  # aTurnaroundTime
UNIT_BACKOFF_S = 20 * SYMBOL_S  # aUnitBackoffPeriod
CCA_S = 8 * SYMBOL_S
ACK_WAIT_S = (20 + 12 + 2 * SHR_OCTETS + 6 * SYMBOLS_PER_OCTET) * SYMBOL_S  # macAckWaitDuration: 54 symbols
# Interframe spacing (IEEE 802.15.4-2006 7.5.1.3; Table 86 and 85, the same figures in Nordic's nRF5340 Product
# Specification, "Interframe spacing (IFS)"): two frames a device sends are at least an IFS apart, counted from
# the acknowledgement when the first asked for one; SIFS after an MPDU of at most aMaxSIFSFrameSize octets, else LIFS
SIFS_S = 12 * SYMBOL_S  # macMinSIFSPeriod
LIFS_S = 40 * SYMBOL_S  # macMinLIFSPeriod
MAX_SIFS_FRAME_OCTETS = 18  # aMaxSIFSFrameSize
STANDARD_SENSITIVITY_DBM = -85.0  # IEEE 802.15.4-2006 6.5.3.3: the least a compliant 2.4 GHz receiver hears
SENSITIVITY_PSDU_OCTETS = 20  # ... with 1 % packet error on 20-octet PSDUs
SENSITIVITY_PER = 0.01

_SIGNS_BINOMIAL = np.array([(-1) ** k * math.comb(16, k) for k in range(2, 17)], dtype=np.float64)
_K = np.arange(2, 17, dtype=np.float64)


def ifs_s(psdu_octets: int) -> float:
    """The interframe spacing after a frame with this PSDU (MPDU): SIFS up to aMaxSIFSFrameSize octets, else LIFS."""
    return SIFS_S if int(psdu_octets) <= MAX_SIFS_FRAME_OCTETS else LIFS_S


def frame_airtime_s(psdu_octets) -> np.ndarray:
    """Time on air of a PPDU carrying `psdu_octets`: synchronisation header, PHY header and PSDU."""
    psdu = np.asarray(psdu_octets)
    if np.any(psdu > MAX_PSDU_OCTETS) or np.any(psdu < 0):
        raise ValueError(f"an 802.15.4 PSDU holds 0 to {MAX_PSDU_OCTETS} octets")
    return (SHR_OCTETS + PHR_OCTETS + psdu) * OCTET_S


def bit_error_rate(sinr) -> np.ndarray:
    """BER of O-QPSK at 2.4 GHz for SINR as a power ratio (IEEE 802.15.4-2006 E.4.1.7), in [0, 1]."""
    s = np.asarray(sinr, dtype=np.float64)[..., None]
    ber = (8.0 / 15.0) / 16.0 * (_SIGNS_BINOMIAL * np.exp(20.0 * s * (1.0 / _K - 1.0))).sum(axis=-1)
    return np.clip(ber, 0.0, 1.0)


def frame_success(sinr, psdu_octets) -> np.ndarray:
    """Probability that a frame of `psdu_octets` is received: (1 - BER)^(8 n)."""
    return (1.0 - bit_error_rate(sinr)) ** (8.0 * np.asarray(psdu_octets, dtype=np.float64))


@lru_cache(maxsize=64)
def noise_floor_dbm(sensitivity_dbm: float = STANDARD_SENSITIVITY_DBM) -> float:
    """The receiver noise power (dBm) that makes a 20-octet PSDU at `sensitivity_dbm` fail 1 % of the time."""
    lo, hi = -20.0, 20.0  # SNR in dB; success grows with SNR
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if frame_success(10 ** (mid / 10), SENSITIVITY_PSDU_OCTETS) < 1 - SENSITIVITY_PER:
            lo = mid
        else:
            hi = mid
    return sensitivity_dbm - 0.5 * (lo + hi)


def link_success(rx_power_dbm, psdu_octets, sensitivity_dbm: float = STANDARD_SENSITIVITY_DBM) -> np.ndarray:
    """Probability that a frame received at `rx_power_dbm` (no interference) survives."""
    snr = 10 ** ((np.asarray(rx_power_dbm, dtype=np.float64) - noise_floor_dbm(float(sensitivity_dbm))) / 10)
    return frame_success(snr, psdu_octets)


_FADED_DB = np.arange(-30.0, 70.0 + 1e-9, 0.1)  # mean SINR grid (dB) of the faded-success tables


@lru_cache(maxsize=256)
def _faded_table(psdu_octets: int) -> np.ndarray:
    """Rayleigh-averaged frame success over _FADED_DB: E[(1 - BER(h x mean SINR))^(8 n)], h ~ Exp(1).

    The integral over h runs on a log grid (1e-9 .. 60, where e^-h is negligible), trapezoidal in h; against a
    grid 5 times finer in h and 2 in SINR the table differs by under 5e-5 (127-octet frames)."""
    h = np.concatenate(([0.0], np.geomspace(1e-9, 60.0, 1500)))
    w = np.exp(-h)
    mean = 10 ** (_FADED_DB / 10)
    out = np.empty(mean.shape)
    for i in range(0, mean.size, 200):
        s = frame_success(mean[i:i + 200, None] * h[None, :], psdu_octets) * w[None, :]
        out[i:i + 200] = np.trapezoid(s, h, axis=1) if hasattr(np, "trapezoid") else np.trapz(s, h, axis=1)
    return out


def faded_frame_success(mean_sinr, psdu_octets: int) -> np.ndarray:
    """Probability that a frame survives when the received power is Rayleigh-faded around `mean_sinr` (a power
    ratio): the frame success of E.4.1.7 averaged over an exponential power gain of mean 1."""
    db = 10 * np.log10(np.maximum(np.asarray(mean_sinr, dtype=np.float64), 1e-300))
    table = _faded_table(int(psdu_octets))
    return np.interp(db, _FADED_DB, table, left=0.0, right=float(table[-1]))


def faded_link_success(rx_power_dbm, psdu_octets: int, sensitivity_dbm: float = STANDARD_SENSITIVITY_DBM) -> np.ndarray:
    """Probability that a frame received at a Rayleigh-faded mean power `rx_power_dbm` (no interference) survives."""
    snr = 10 ** ((np.asarray(rx_power_dbm, dtype=np.float64) - noise_floor_dbm(float(sensitivity_dbm))) / 10)
    return faded_frame_success(snr, psdu_octets)


__all__ = ["ACK_PSDU_OCTETS", "ACK_WAIT_S", "CCA_S", "LIFS_S", "MAX_PSDU_OCTETS", "MAX_SIFS_FRAME_OCTETS", "OCTET_S",
           "SIFS_S", "SYMBOL_S", "TURNAROUND_S", "UNIT_BACKOFF_S", "bit_error_rate", "ifs_s", "faded_frame_success", "faded_link_success", "frame_airtime_s", "frame_success",
           "link_success", "noise_floor_dbm"]
