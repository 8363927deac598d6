"""Solar harvesting: hourly energy from a small photovoltaic panel at a site of typical-year weather.

Weather: a typical meteorological year per site (8,760 hourly rows: global horizontal, direct normal and diffuse
horizontal irradiance, air temperature, wind), each row the mean over the hour ending at its time, local standard
time. Three climates ship (`SITES`; provenance in iotsim/energy/data/solar_sites.md): Greensboro NC (temperate,
the farm's weather), Sand Point AK (55 N, a northern winter) and Miami FL (26 N, subtropical).

Panel, per hour (pvlib, a maintained library for exactly this):
- the sun's position at the middle of the hour (pvlib.solarposition, NREL SPA);
- plane-of-array irradiance from the three components for the panel's tilt and azimuth (pvlib.irradiance,
  `transposition`: "isotropic" sky by default, or "haydavies");
- cell temperature from the Faiman model (pvlib.temperature.faiman: u0 = 25 W/m^2/K, u1 = 6.84 W s/m^3/K,
  pvlib's defaults for an open-rack module);
- DC power = area x efficiency x POA x (1 + gamma (T_cell - 25 C)), never below zero;
- harvested energy = DC energy x the harvester's charger efficiency (the boost charger between panel and storage).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

DATA = Path(__file__).with_name("data")
HOURS_PER_YEAR = 8760


@dataclass(frozen=True)
class Site:
    key: str
    name: str
    latitude_deg: float
    longitude_deg: float
    utc_offset_h: float  # local standard time
    altitude_m: float
    source: str


SITES: dict[str, Site] = {
    s.key: s for s in (
        Site("greensboro_nc", "Greensboro Piedmont Triad Int'l, NC, USA", 36.1, -79.95, -5.0, 273.0,
             "NREL TMY3 station 723170 (pvlib/data/723170TYA.CSV)"),
        Site("sand_point_ak", "Sand Point, AK, USA", 55.317, -160.517, -9.0, 7.0,
             "NREL TMY3 station 703165 (pvlib/data/703165TY.csv)"),
        Site("miami_fl", "Miami, FL, USA", 25.8, -80.26666666666667, -5.0, 2.0,
             "NREL TMY2 station WBAN 12839 (pvlib/data/12839.tm2)"),
    )
}


@dataclass(frozen=True)
class Weather:
    """One typical year of a site, hourly (index h: the hour ending h + 1 hours after 1 January 00:00)."""

    site: Site
    ghi_w_m2: np.ndarray
    dni_w_m2: np.ndarray
    dhi_w_m2: np.ndarray
    temp_c: np.ndarray
    wind_m_s: np.ndarray
    first_hour: int = 0  # hour of the year of the first row (a slice of the year: the rows that follow)


@lru_cache(maxsize=8)
def load_weather(key: str) -> Weather:
    """The typical year of site `key` (one of SITES)."""
    if key not in SITES:
        raise KeyError(f"unknown solar site {key!r}; known: {', '.join(sorted(SITES))}")
    table = np.loadtxt(DATA / f"solar_{key}.csv", delimiter=",", skiprows=1)
    if table.shape != (HOURS_PER_YEAR, 6):
        raise ValueError(f"solar_{key}.csv must hold {HOURS_PER_YEAR} hourly rows of 6 columns, got {table.shape}")
    return Weather(SITES[key], *(np.ascontiguousarray(table[:, i]) for i in range(1, 6)))


@dataclass(frozen=True)
class Panel:
    """A small fixed PV panel and the charger behind it."""

    area_cm2: float
    efficiency: float  # at standard test conditions (1000 W/m^2, 25 C cell)
    tilt_deg: float = 30.0
    azimuth_deg: float = 180.0  # compass: 180 faces south
    gamma_per_c: float = -0.004  # power temperature coefficient (crystalline silicon: about -0.4 %/K)
    charger_efficiency: float = 0.8
    albedo: float = 0.2
    transposition: str = "isotropic"


def hour_midpoints(site: Site, hours: np.ndarray | None = None):
    """The middle of each hour of the typical year as UTC timestamps (a pandas DatetimeIndex)."""
    import pandas as pd

    h = np.arange(HOURS_PER_YEAR) if hours is None else np.asarray(hours)
    local = pd.Timestamp("2001-01-01") + pd.to_timedelta(h + 0.5, unit="h")  # a non-leap year
    return pd.DatetimeIndex(local - pd.Timedelta(hours=site.utc_offset_h)).tz_localize("UTC")


def plane_of_array_w_m2(weather: Weather, panel: Panel) -> np.ndarray:
    """Hourly irradiance on the panel's plane (mean over each hour, W/m^2)."""
    from pvlib import irradiance, solarposition

    s = weather.site
    hours = weather.first_hour + np.arange(weather.ghi_w_m2.shape[0])
    pos = solarposition.get_solarposition(hour_midpoints(s, hours), s.latitude_deg, s.longitude_deg,
                                          altitude=s.altitude_m)
    kw = {}
    if panel.transposition == "haydavies":
        kw["dni_extra"] = irradiance.get_extra_radiation(pos.index).to_numpy()
    poa = irradiance.get_total_irradiance(
        panel.tilt_deg, panel.azimuth_deg, pos["apparent_zenith"].to_numpy(), pos["azimuth"].to_numpy(),
        weather.dni_w_m2, weather.ghi_w_m2, weather.dhi_w_m2, albedo=panel.albedo, model=panel.transposition, **kw)
    return np.nan_to_num(np.asarray(poa["poa_global"], dtype=float), nan=0.0).clip(min=0.0)


def dc_power_w(poa_w_m2: np.ndarray, temp_c: np.ndarray, wind_m_s: np.ndarray, panel: Panel) -> np.ndarray:
    """The panel's DC power at the given plane-of-array irradiance, air temperature and wind."""
    from pvlib.temperature import faiman

    cell_c = faiman(poa_w_m2, temp_c, wind_m_s)
    p = panel.area_cm2 * 1e-4 * panel.efficiency * poa_w_m2 * (1.0 + panel.gamma_per_c * (cell_c - 25.0))
    return np.clip(p, 0.0, None)


def hourly_harvest_j(weather: Weather, panel: Panel) -> np.ndarray:
    """Energy the charger delivers to the storage in each hour of the typical year (J)."""
    poa = plane_of_array_w_m2(weather, panel)
    return dc_power_w(poa, weather.temp_c, weather.wind_m_s, panel) * 3600.0 * panel.charger_efficiency


__all__ = ["SITES", "Site", "Weather", "Panel", "load_weather", "hour_midpoints", "plane_of_array_w_m2",
           "dc_power_w", "hourly_harvest_j", "HOURS_PER_YEAR"]
