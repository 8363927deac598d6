"""farm.soil_climate: a soil-moisture + air temperature/humidity node in an irrigated field.

Channels (physical units): soil_moisture (%VWC, volumetric water content at ~10 cm depth),
temperature (degC, air), humidity (%RH, air). One sample every 5 min, 12 samples per window
(one hour), sent raw as int16 per channel (0.01-unit resolution).

Weather is real: the air channels follow a typical meteorological year (NREL TMY3, Greensboro
NC, station 723170; hourly dry-bulb temperature, dew point, global horizontal irradiance and
precipitation; provenance in iotsim/signals/data/tmy3_723170.md). A window starts at a random time
of the year (`start_day_of_year`, a range of days since 1 January 00:00 local standard time;
a scenario can choose a season, e.g. (152, 244) for June-August or (335, 60) for winter).
Temperature and dew point are interpolated linearly between the hourly values to the sample
times; relative humidity follows from them by the Magnus formula. The table is read with
numpy; pvlib is not needed.

Event (positive class) -- **irrigation leak / waterlogging**: a broken drip line or valve near
the probe feeds water continuously. While the event is active water arrives at the probe's
depth at a steady rate (1.5-6 %VWC/h, log-uniform; directly, no infiltration lag) and the
reading rises at that rate less what drains, with no rain signature in the air: humidity and
temperature keep following the weather. After the leak stops the added water stays and drains
slowly (the same drainage time constant as any other wetting, hours), so a window that ends an
event shows a rise then a plateau. (A leak is an event of the field, independent of the
weather, which is how the simulator's events arrive; frost or irrigation need would be a
threshold of the weather or of the reading itself, not something a model has to detect.)

Normal windows (must not be flagged) contain:
- real weather: diurnal and synoptic temperature changes, humidity high at night and low in
  the afternoon, fronts;
- rain from the TMY precipitation (about 4 % of the hours): the hourly depth falls in bursts
  within the hour, and soil moisture rises irregularly 5-15 min later (infiltration lag);
  the air is near saturation while it rains (the TMY humidity) -- a rise *with* an air
  signature (weak at night, when the air is often saturated anyway). Rain of the 48 hours
  before the window is still draining at its start;
- evapotranspiration: soil drying in proportion to the TMY solar irradiance (clouds included);
- scheduled irrigation (15 % of windows): a 5-30 min pulse at 8-25 %VWC/h, half of them by
  sprinkler (raises humidity a little and cools the air), half by drip (no air signature) --
  the main confounder: a steep, short rise that stops within the hour;
- drainage of earlier irrigation (slow fall), sensor offsets, slow drift, temperature
  sensitivity of the capacitive soil probe and white noise with a per-window level;
- water beyond saturation (porosity) runs off: a waterlogged soil reads flat.

The confounders (drip irrigation, rain at night, weak leaks, leaks that only cover part of the
window, noise) keep a small model's accuracy clearly below 100 %.

Field and soil numbers are illustrative assumptions for an irrigated loam field, not fitted
to a data set; they are collected as fields of `FarmSoilClimate` so a scenario can change
them. Numbers taken from datasheets or papers say so where they appear.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from iotsim.errors import InputError
from iotsim.signals.base import Workload, log_uniform

_DAY_S = 86400.0
_YEAR_H = 8760  # hours in a TMY year (no 29 February)
DATA_DIR = Path(__file__).resolve().parent / "data"
# Magnus formula coefficients over water: Alduchov, O. A. and Eskridge, R. E. (1996),
# "Improved Magnus form approximation of saturation vapor pressure", J. Appl. Meteor. 35:601-609.
_MAGNUS_A = 17.625
_MAGNUS_B_DEGC = 243.04


def _magnus(temp_c: np.ndarray) -> np.ndarray:
    return _MAGNUS_A * temp_c / (_MAGNUS_B_DEGC + temp_c)


def relative_humidity_pct(temp_c: np.ndarray, dew_point_c: np.ndarray) -> np.ndarray:
    """RH (%) from air temperature and dew point: 100 e_s(Td) / e_s(T), Magnus form (Alduchov and Eskridge 1996)."""
    return 100.0 * np.exp(_magnus(np.asarray(dew_point_c, float)) - _magnus(np.asarray(temp_c, float)))


@lru_cache(maxsize=4)
def load_weather(name: str = "tmy3_723170") -> dict[str, np.ndarray]:
    """Hourly weather table `iotsim/signals/data/<name>.csv` as float64 columns (8760 rows each).

    Row i holds the values at i + 1 hours after 1 January 00:00 local standard time
    (instantaneous temperature, dew point, RH) or for the hour ending then (irradiance,
    precipitation); see data/tmy3_723170.md. Adds `daily_mean_temp_c`, the 24-h centred mean.
    """
    path = DATA_DIR / f"{name}.csv"
    if not path.is_file():
        known = sorted(p.stem for p in DATA_DIR.glob("*.csv"))
        raise InputError(f"no weather table {name!r}; known: {', '.join(known)}", field="weather")
    with open(path, encoding="utf-8") as f:
        header = f.readline().strip().split(",")
    data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    if data.shape != (_YEAR_H, len(header)) or not np.array_equal(data[:, 0], np.arange(1, _YEAR_H + 1)):
        raise InputError(f"weather table {path} must have {_YEAR_H} hourly rows numbered 1..{_YEAR_H}", field="weather")
    cols = {h: np.ascontiguousarray(data[:, j]) for j, h in enumerate(header)}
    kernel = np.ones(24) / 24.0
    padded = np.concatenate([cols["temp_c"][-12:], cols["temp_c"], cols["temp_c"][:11]])
    cols["daily_mean_temp_c"] = np.convolve(padded, kernel, mode="valid")
    for v in cols.values():
        v.flags.writeable = False
    return cols


def _interp_hourly(col: np.ndarray, hours: np.ndarray, offset_h: float) -> np.ndarray:
    """Linear interpolation of a periodic hourly series whose row i is at time i + offset_h hours."""
    size = col.shape[0]
    p = np.mod(hours - offset_h, size)
    i0 = p.astype(np.int64)  # floor (p >= 0)
    frac = p - i0
    i1 = i0 + 1
    i1[i1 >= size] = 0
    i0[i0 >= size] = size - 1  # p rounding up to `size`
    return col[i0] * (1.0 - frac) + col[i1] * frac


def _hour_row(hours: np.ndarray) -> np.ndarray:
    """Row of the hourly interval (i, i + 1] containing each time (hours since 1 January 00:00)."""
    return (np.ceil(hours).astype(np.int64) - 1) % _YEAR_H


def _log_uniform0(rng: np.random.Generator, low: float, high: float, n: int) -> np.ndarray:
    """log_uniform that also accepts (0, 0) (a switched-off effect); one draw per element either way."""
    if high <= 0:
        rng.random(n)
        return np.zeros(n)
    return log_uniform(rng, low, high, n)


@dataclass(frozen=True)
class FarmSoilClimate(Workload):
    name: str = "farm.soil_climate"
    channels: tuple[str, ...] = ("soil_moisture", "temperature", "humidity")
    units: tuple[str, ...] = ("%VWC", "degC", "%RH")
    window_samples: int = 12
    sample_rate_hz: float = 1.0 / 300.0
    bytes_per_sample: int = 2  # int16 per channel, 0.01 %VWC / 0.01 degC / 0.01 %RH per LSB
    # Scenario defaults (assumptions): a leak per node every ~20 days, found and fixed in ~6 h.
    default_events_per_day: float = 0.05
    default_event_duration_s: float = 6 * 3600.0
    class_names: tuple[str, ...] = ("normal", "leak")
    positive_class: int = 1
    description: str = (
        "soil moisture + air temperature/humidity, 5-min samples, 1-h windows, weather from NREL TMY3 "
        "(Greensboro NC); event: irrigation leak (steady moisture rise without rain signature)"
    )

    # --- weather ---
    weather: str = "tmy3_723170"  # hourly table in iotsim/signals/data/
    start_day_of_year: tuple[float, float] = (0.0, 365.0)  # days since 1 Jan 00:00; lo > hi wraps the new year
    # --- soil ---
    soil_moisture_pct: tuple[float, float] = (12.0, 38.0)  # %VWC baseline (loam, wilting..field capacity)
    # Water beyond saturation runs off: loam total porosity 0.463 (Rawls, Brakensiek and Saxton
    # 1982, "Estimation of soil water properties", Trans. ASAE 25(5):1316-1320).
    saturation_pct: float = 46.3
    # drying of the probe layer per kW/m^2 of global irradiance (assumption; 0.02-0.25 %VWC/h at
    # a typical 800 W/m^2 noon)
    evapotranspiration_pct_per_kwh_m2: tuple[float, float] = (0.025, 0.3)
    drainage_time_s: tuple[float, float] = (3 * 3600.0, 12 * 3600.0)
    p_draining: float = 0.3  # window starts while earlier irrigation is still draining
    earlier_excess_pct: tuple[float, float] = (0.5, 4.0)
    infiltration_lag_s: tuple[float, float] = (300.0, 900.0)
    # --- rain (TMY precipitation) ---
    # %VWC gained at the probe per mm of rain: 1 mm held in a 10-cm layer is 1 %VWC; part is
    # intercepted, runs off or passes deeper (assumption)
    rain_pct_per_mm: tuple[float, float] = (0.4, 1.0)
    rain_gustiness: float = 0.6  # sd of log rain intensity from sample to sample (showers are bursty)
    rain_history_h: int = 48  # earlier rain still draining at the window start
    # --- scheduled irrigation (normal) ---
    p_irrigation: float = 0.15
    irrigation_rate_pct_per_h: tuple[float, float] = (8.0, 25.0)
    irrigation_samples: tuple[int, int] = (1, 6)  # 5-30 min
    p_sprinkler: float = 0.5
    # --- leak (the event) ---
    leak_rate_pct_per_h: tuple[float, float] = (1.5, 6.0)
    # --- sensors ---
    # Sensirion SHT3x-DIS datasheet (v6, 2019), SHT31: typical accuracy +-0.2 degC, +-2 %RH.
    temp_offset_sd_c: float = 0.2
    humidity_offset_sd_pct: float = 2.0
    # Short-term noise (assumption: sensor repeatability plus microclimate turbulence).
    temp_noise_c: tuple[float, float] = (0.05, 0.2)
    humidity_noise_pct: tuple[float, float] = (0.3, 1.5)
    soil_noise_pct: tuple[float, float] = (0.05, 0.3)
    # Slow drift within the hour (assumption).
    soil_drift_sd_pct_per_h: float = 0.1
    temp_drift_sd_c_per_h: float = 0.05
    humidity_drift_sd_pct_per_h: float = 0.3
    # Capacitive probe reading vs soil temperature (assumption, order of 0.1 %VWC/degC).
    soil_temp_coeff_pct_per_c: tuple[float, float] = (-0.1, 0.15)

    _pre_samples: int = 8  # simulate this many samples before the window (lags, earlier events)

    def __post_init__(self) -> None:
        lo, hi = (float(v) for v in self.start_day_of_year)
        if not (0.0 <= lo <= 365.0 and 0.0 <= hi <= 365.0):
            raise InputError(
                f"start_day_of_year must be two days in [0, 365] (lo > hi wraps the new year), got {(lo, hi)}",
                where=self.name,
                field="start_day_of_year",
            )
        object.__setattr__(self, "start_day_of_year", (lo, hi))

    def weather_table(self) -> dict[str, np.ndarray]:
        """The hourly weather table this workload follows (read-only arrays)."""
        return load_weather(self.weather)

    def _generate(self, rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
        wx = self.weather_table()
        n, w = mask.shape
        p = self._pre_samples
        length = p + w
        dt = 1.0 / self.sample_rate_hz
        dt_h = dt / 3600.0
        kk = np.arange(-p, w, dtype=np.float64)

        # ---- draws: all of size n, in a fixed order, independent of the mask ----
        lo, hi = self.start_day_of_year
        span = hi - lo if hi >= lo else hi + 365.0 - lo
        day0 = np.mod(lo + span * rng.random(n), 365.0)
        theta0 = rng.uniform(*self.soil_moisture_pct, n)
        et_coeff = rng.uniform(*self.evapotranspiration_pct_per_kwh_m2, n)
        tau_drain = rng.uniform(*self.drainage_time_s, n)
        draining = rng.random(n) < self.p_draining
        excess0 = rng.uniform(*self.earlier_excess_pct, n)
        lag_s = rng.uniform(*self.infiltration_lag_s, n)

        rain_coeff = rng.uniform(*self.rain_pct_per_mm, n)
        rain_burst = np.exp(self.rain_gustiness * rng.standard_normal((n, length)) - 0.5 * self.rain_gustiness**2)

        irr = rng.random(n) < self.p_irrigation
        irr_start = rng.integers(-p // 2, w, n)
        irr_len = rng.integers(self.irrigation_samples[0], self.irrigation_samples[1] + 1, n)
        irr_rate = rng.uniform(*self.irrigation_rate_pct_per_h, n)
        sprinkler = rng.random(n) < self.p_sprinkler
        spr_humid = rng.uniform(0.2, 0.6, n)
        spr_cool = rng.uniform(0.2, 1.0, n)

        leak_rate = log_uniform(rng, *self.leak_rate_pct_per_h, n)

        t_off = rng.normal(0.0, self.temp_offset_sd_c, n)
        rh_off = rng.normal(0.0, self.humidity_offset_sd_pct, n)
        soil_drift = rng.normal(0.0, self.soil_drift_sd_pct_per_h, n)
        temp_drift = rng.normal(0.0, self.temp_drift_sd_c_per_h, n)
        rh_drift = rng.normal(0.0, self.humidity_drift_sd_pct_per_h, n)
        soil_tc = rng.uniform(*self.soil_temp_coeff_pct_per_c, n)
        s_soil = _log_uniform0(rng, *self.soil_noise_pct, n)
        s_temp = _log_uniform0(rng, *self.temp_noise_c, n)
        s_rh = _log_uniform0(rng, *self.humidity_noise_pct, n)
        noise = rng.standard_normal((3, n, w))

        # ---- weather at the sample times (hours since 1 January 00:00 local standard time) ----
        hours = (day0 * 24.0)[:, None] + kk[None, :] * dt_h  # (n, length)
        temp = _interp_hourly(wx["temp_c"], hours, 1.0)
        dew = np.minimum(_interp_hourly(wx["dew_point_c"], hours, 1.0), temp)
        t_mean = _interp_hourly(wx["daily_mean_temp_c"], hours, 1.0)
        ghi = _interp_hourly(wx["ghi_w_m2"], hours, 0.5)  # hourly totals: at the middle of their hour
        rain_mm_h = wx["precip_mm"][_hour_row(hours)]  # depth of the current hour = mean rate, mm/h

        # earlier rain, still draining at the first simulated sample
        first_row = _hour_row(hours[:, 0])
        back = np.arange(1, self.rain_history_h + 1)
        rows_back = (first_row[:, None] - back[None, :]) % _YEAR_H  # (n, H), ended `age` hours ago
        age0_h = hours[:, 0] - np.ceil(hours[:, 0]) + 1.0  # age of the newest of them, (0, 1]
        decay_h = np.exp(-3600.0 / tau_drain)  # drainage over one hour
        weights = np.exp(-age0_h * 3600.0 / tau_drain)[:, None] * decay_h[:, None] ** (back - 1)[None, :]
        rain_hist = (wx["precip_mm"][rows_back] * weights).sum(axis=1)

        # ---- water inputs per sample (%VWC/h) ----
        k_int = np.arange(-p, w)[None, :]
        in_irr = irr[:, None] & (k_int >= irr_start[:, None]) & (k_int < (irr_start + irr_len)[:, None])
        surface = rain_coeff[:, None] * rain_mm_h * rain_burst + in_irr * irr_rate[:, None]
        leak_on = np.concatenate([np.repeat(mask[:, :1], p, axis=1), mask], axis=1)
        leak_in = leak_on * leak_rate[:, None]

        # First-order lags, stepped along the (short) time axis, vectorised over windows:
        # infiltration lag for surface water, "wetness" of the air for sprinklers.
        a_inf = np.exp(-dt / lag_s)
        a_wet = np.exp(-dt / 600.0)  # air humidity/temperature respond within ~10 min (assumption)
        a_drain = np.exp(-dt / tau_drain)
        # Evapotranspiration follows the solar irradiance.
        dry = np.cumsum(et_coeff[:, None] * (ghi / 1000.0) * dt_h, axis=1)
        room = self.saturation_pct - theta0[:, None] + dry  # excess water the pores can hold
        wet_spr = np.empty((n, length))
        excess = np.empty((n, length))
        f = np.zeros(n)
        ws = np.zeros(n)
        ex = np.minimum(np.where(draining, excess0, 0.0) + rain_coeff * rain_hist, room[:, 0])
        spr_on = in_irr & sprinkler[:, None]
        for j in range(length):
            f = a_inf * f + (1.0 - a_inf) * surface[:, j]
            ws = a_wet * ws + (1.0 - a_wet) * spr_on[:, j]
            ex = np.minimum(a_drain * ex + (f + leak_in[:, j]) * dt_h, room[:, j])  # the rest runs off
            wet_spr[:, j] = ws
            excess[:, j] = ex

        temp = temp - spr_cool[:, None] * wet_spr
        # Spray pulls the dew point towards the air temperature (air closer to saturation).
        dew = np.minimum(dew + (temp - dew) * np.clip(spr_humid[:, None] * wet_spr, 0.0, 1.0), temp)
        rh = relative_humidity_pct(temp, dew)

        theta = theta0[:, None] + excess - dry

        # ---- crop to the window, add sensor effects ----
        temp = temp[:, p:]
        rh = rh[:, p:]
        theta = theta[:, p:]
        t_win = temp - t_mean[:, p:]
        hours_w = (np.arange(w) * dt_h)[None, :]
        theta = theta + soil_tc[:, None] * 0.3 * t_win + soil_drift[:, None] * hours_w
        theta = theta + s_soil[:, None] * noise[0]
        temp = temp + t_off[:, None] + temp_drift[:, None] * hours_w + s_temp[:, None] * noise[1]
        rh = rh + rh_off[:, None] + rh_drift[:, None] * hours_w + s_rh[:, None] * noise[2]

        out = np.empty((n, w, 3), dtype=np.float32)
        out[:, :, 0] = np.clip(theta, 0.0, 60.0)
        out[:, :, 1] = temp
        out[:, :, 2] = np.clip(rh, 0.0, 100.0)
        return out
