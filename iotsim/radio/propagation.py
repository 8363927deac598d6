"""Log-distance path loss with log-normal shadowing, and the LoRa capture threshold.

    PL(d) = PL(d0) + 10 * gamma * log10(d / d0) + X_sigma,   X_sigma ~ N(0, sigma^2) dB

Default parameters are those of Bor, Roedig, Voigt and Alonso, "Do LoRa Low-Power Wide-Area
Networks Scale?", ACM MSWiM 2016 (fitted to their measurements, 868 MHz, built-up area):
PL(d0) = 127.41 dB at d0 = 40 m, gamma = 2.08, sigma = 3.57 dB. The same values are the
defaults of LoRaSim (Bor et al.'s simulator: Lpld0 = 127.41, d0 = 40.0, gamma = 2.08) and of
FLoRa (inet-framework/inet src/inet/lora/loraphy/LoRaLogNormalShadowing.ned: d0 = 40 m,
gamma = 2.08, sigma = 3.57, "parameters taken from paper LoRaSim"; PL_d0 = 127.41 dB in
LoRaLogNormalShadowing.cc).
"""

from __future__ import annotations

import numpy as np

from iotsim.errors import InputError

PROPAGATION_SOURCE = (
    "Bor, Roedig, Voigt, Alonso, 'Do LoRa Low-Power Wide-Area Networks Scale?', MSWiM 2016; "
    "defaults confirmed in LoRaSim and FLoRa (inet LoRaLogNormalShadowing.ned/.cc)"
)
PL_D0_DB = 127.41
"""Path loss at the reference distance (dB), Bor et al. 2016."""
D0_M = 40.0
"""Reference distance (m), Bor et al. 2016."""
PATH_LOSS_EXPONENT = 2.08
"""Path loss exponent gamma, Bor et al. 2016."""
SHADOWING_SIGMA_DB = 3.57
"""Standard deviation of log-normal shadowing (dB), Bor et al. 2016 (FLoRa default sigma)."""
SPEED_OF_LIGHT_M_S = 299_792_458.0
"""Speed of light in vacuum (SI definition of the metre)."""


def _distance(distance_m) -> np.ndarray:
    d = np.asarray(distance_m, dtype=float)
    if not np.all(np.isfinite(d)) or np.any(d <= 0):
        raise InputError(f"distance must be a positive number of metres, got {np.asarray(distance_m).tolist()!r}", field="distance_m")
    return d


def path_loss_db(distance_m, pl_d0_db: float = PL_D0_DB, d0_m: float = D0_M, exponent: float = PATH_LOSS_EXPONENT):
    """Mean path loss (dB) at ``distance_m`` (scalar or array), without shadowing."""
    if not d0_m > 0:
        raise InputError(f"reference distance must be > 0 m, got {d0_m!r}", field="d0_m")
    d = _distance(distance_m)
    pl = pl_d0_db + 10.0 * exponent * np.log10(d / d0_m)
    return float(pl) if np.ndim(distance_m) == 0 else pl


def free_space_path_loss_db(distance_m, frequency_hz: float):
    """Free-space path loss (dB) between isotropic antennas: 20 log10(4 pi d f / c) (Friis).

    No terrestrial path loses less than this; empirical models fitted at longer range (Hata,
    log-distance fits such as Bor et al.) fall below it close to the antenna, outside the range
    they were fitted on, so the engine never lets a model's loss drop under it.
    """
    d = _distance(distance_m)
    pl = 20.0 * np.log10(4.0 * np.pi * d * float(frequency_hz) / SPEED_OF_LIGHT_M_S)
    return float(pl) if np.ndim(distance_m) == 0 else pl


def rx_power_dbm(
    tx_power_dbm,
    distance_m,
    pl_d0_db: float = PL_D0_DB,
    d0_m: float = D0_M,
    exponent: float = PATH_LOSS_EXPONENT,
    shadowing_db=0.0,
    antenna_gains_db=0.0,
):
    """Received power (dBm): tx power + antenna gains - path loss - shadowing (all broadcast).

    ``shadowing_db`` is a draw of X_sigma (positive = extra loss), e.g. from
    :func:`draw_shadowing_db` with a generator seeded from the scenario and node id.
    """
    pl = path_loss_db(distance_m, pl_d0_db, d0_m, exponent)
    p = np.asarray(tx_power_dbm, dtype=float) + antenna_gains_db - pl - np.asarray(shadowing_db, dtype=float)
    if all(np.ndim(v) == 0 for v in (tx_power_dbm, distance_m, shadowing_db, antenna_gains_db)):
        return float(p)
    return p


def draw_shadowing_db(rng: np.random.Generator, size=None, sigma_db: float = SHADOWING_SIGMA_DB):
    """Log-normal shadowing draws X_sigma ~ N(0, sigma_db^2) in dB from ``rng``."""
    if sigma_db < 0:
        raise InputError(f"shadowing sigma must be >= 0 dB, got {sigma_db!r}", field="sigma_db")
    return rng.normal(0.0, sigma_db, size=size)


def max_range_m(
    tx_power_dbm: float,
    sensitivity_dbm: float,
    pl_d0_db: float = PL_D0_DB,
    d0_m: float = D0_M,
    exponent: float = PATH_LOSS_EXPONENT,
    antenna_gains_db: float = 0.0,
):
    """Distance (m) at which the mean received power equals ``sensitivity_dbm`` (inverse of the model)."""
    budget = np.asarray(tx_power_dbm, dtype=float) + antenna_gains_db - np.asarray(sensitivity_dbm, dtype=float)
    d = d0_m * 10.0 ** ((budget - pl_d0_db) / (10.0 * exponent))
    return float(d) if np.ndim(d) == 0 else d


def hata_open_area_db(distance_m, frequency_hz: float = 868e6, gateway_height_m: float = 30.0,
                      node_height_m: float = 1.0):
    """Okumura-Hata path loss for open (rural) areas, small/medium-city mobile antenna correction.

    Hata, "Empirical formula for propagation loss in land mobile radio services", IEEE Trans. Veh.
    Technol. 29(3):317-325, 1980 (valid for 150-1500 MHz, base antenna 30-200 m, 1-20 km):
        L_urban = 69.55 + 26.16 log f - 13.82 log h_b - a(h_m) + (44.9 - 6.55 log h_b) log d
        a(h_m)  = (1.1 log f - 0.7) h_m - (1.56 log f - 0.8)
        L_open  = L_urban - 4.78 (log f)^2 + 18.33 log f - 40.94
    with f in MHz and d in km.
    """
    d_km = _distance(distance_m) / 1000.0
    f = frequency_hz / 1e6
    lf = np.log10(f)
    a_hm = (1.1 * lf - 0.7) * node_height_m - (1.56 * lf - 0.8)
    urban = 69.55 + 26.16 * lf - 13.82 * np.log10(gateway_height_m) - a_hm \
        + (44.9 - 6.55 * np.log10(gateway_height_m)) * np.log10(d_km)
    return urban - 4.78 * lf**2 + 18.33 * lf - 40.94


def hata_urban_db(distance_m, frequency_hz: float = 868e6, gateway_height_m: float = 30.0,
                  node_height_m: float = 1.5):
    """Okumura-Hata path loss for urban areas, small/medium-city mobile antenna correction (Hata 1980,
    the L_urban of `hata_open_area_db`; valid for 150-1500 MHz, base antenna 30-200 m, 1-20 km)."""
    d_km = _distance(distance_m) / 1000.0
    f = frequency_hz / 1e6
    lf = np.log10(f)
    a_hm = (1.1 * lf - 0.7) * node_height_m - (1.56 * lf - 0.8)
    return 69.55 + 26.16 * lf - 13.82 * np.log10(gateway_height_m) - a_hm \
        + (44.9 - 6.55 * np.log10(gateway_height_m)) * np.log10(d_km)


def hata_urban_log_distance(frequency_hz: float = 868e6, gateway_height_m: float = 30.0,
                            node_height_m: float = 1.5) -> tuple[float, float, float]:
    """The Hata urban model written as log-distance parameters: (pl_d0_db, d0_m, exponent)."""
    pl_1km = float(hata_urban_db(1000.0, frequency_hz, gateway_height_m, node_height_m))
    return pl_1km, 1000.0, float((44.9 - 6.55 * np.log10(gateway_height_m)) / 10.0)


def hata_open_area_log_distance(frequency_hz: float = 868e6, gateway_height_m: float = 30.0,
                                node_height_m: float = 1.0) -> tuple[float, float, float]:
    """The Hata open-area model written as log-distance parameters: (pl_d0_db, d0_m, exponent)."""
    pl_1km = float(hata_open_area_db(1000.0, frequency_hz, gateway_height_m, node_height_m))
    exponent = (44.9 - 6.55 * np.log10(gateway_height_m)) / 10.0
    return pl_1km, 1000.0, float(exponent)
