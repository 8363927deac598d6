"""farm.soil_climate: a soil-moisture + air temperature/humidity node in an irrigated field.

Channels (physical units): soil_moisture (%VWC, volumetric water content at ~10 cm depth),
temperature (degC, air), humidity (%RH, air). One sample every 5 min, 12 samples per window
(one hour), sent raw as int16 per channel (0.01-unit resolution).

Event (positive class) -- **irrigation leak / waterlogging**: a broken drip line or valve near
the probe feeds water continuously. While the event is active water arrives at the probe's
depth at a steady rate (1.5-6 %VWC/h, log-uniform; directly, no infiltration lag) and the
reading rises at that rate less what drains, with no rain signature in the air: humidity and temperature keep following
the diurnal cycle. After the leak stops the added water stays and drains slowly (the same
drainage time constant as any other wetting, hours), so a window that ends an event shows a
rise then a plateau.

Normal windows (must not be flagged) contain, with their own probabilities:
- diurnal temperature cycle (cosine, maximum at 15:00) around a seasonal + day-to-day mean,
  window start at a uniformly random time of day;
- humidity from a dew point via the Magnus formula, so it is high at night and low in the
  afternoon; near saturation at dawn;
- evapotranspiration: slow soil drying during daylight;
- rain (12 % of windows, 10-90 min, bursty intensity): humidity rises to near saturation and
  the air cools, soil moisture rises irregularly 5-15 min later (infiltration lag) -- a rise
  *with* an air signature (weak at night, when the air is often saturated anyway);
- scheduled irrigation (15 % of windows): a 5-30 min pulse at 8-25 %VWC/h, half of them by
  sprinkler (raises humidity a little and cools the air), half by drip (no air signature) --
  the main confounder: a steep, short rise that stops within the hour;
- drainage of earlier wetting (slow fall), sensor offsets, slow drift, temperature
  sensitivity of the capacitive soil probe and white noise with a per-window level.

The confounders (drip irrigation, weak leaks, leaks that only cover part of the window, noise)
keep a small model's accuracy clearly below 100 %.

Climate and field numbers are illustrative assumptions for a temperate irrigated field, not
fitted to a data set; they are collected as fields of `FarmSoilClimate` so a scenario can
change them. Numbers taken from datasheets or papers say so where they appear.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iotsim.signals.base import Workload, log_uniform

_DAY_S = 86400.0
# Magnus formula coefficients over water: Alduchov, O. A. and Eskridge, R. E. (1996),
# "Improved Magnus form approximation of saturation vapor pressure", J. Appl. Meteor. 35:601-609.
_MAGNUS_A = 17.625
_MAGNUS_B_DEGC = 243.04


def _magnus(temp_c: np.ndarray) -> np.ndarray:
    return _MAGNUS_A * temp_c / (_MAGNUS_B_DEGC + temp_c)


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
        "soil moisture + air temperature/humidity, 5-min samples, 1-h windows; "
        "event: irrigation leak (steady moisture rise without rain signature)"
    )

    # --- climate (assumptions: temperate mid-latitude field) ---
    annual_mean_temp_c: float = 11.0
    annual_temp_amplitude_c: float = 9.0  # warmest day ~ mid July (day of year 196)
    day_to_day_temp_sd_c: float = 3.0
    diurnal_half_range_c: tuple[float, float] = (2.5, 7.0)
    dew_point_depression_c: tuple[float, float] = (1.5, 12.0)  # daily mean T - dew point
    # --- soil ---
    soil_moisture_pct: tuple[float, float] = (12.0, 38.0)  # %VWC baseline (loam, wilting..field capacity)
    evapotranspiration_pct_per_h: tuple[float, float] = (0.02, 0.25)  # peak, at solar noon
    drainage_time_s: tuple[float, float] = (3 * 3600.0, 12 * 3600.0)
    p_draining: float = 0.3  # window starts while earlier wetting is still draining
    earlier_excess_pct: tuple[float, float] = (0.5, 4.0)
    infiltration_lag_s: tuple[float, float] = (300.0, 900.0)
    # --- rain ---
    p_rain: float = 0.12
    rain_rate_pct_per_h: tuple[float, float] = (1.0, 10.0)
    rain_samples: tuple[int, int] = (2, 18)  # 10-90 min
    rain_cooling_c: tuple[float, float] = (0.5, 3.0)
    rain_gustiness: float = 0.6  # sd of log rain intensity from sample to sample (showers are bursty)
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

    def _generate(self, rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
        n, w = mask.shape
        p = self._pre_samples
        length = p + w
        dt = 1.0 / self.sample_rate_hz
        dt_h = dt / 3600.0
        kk = np.arange(-p, w, dtype=np.float64)

        # ---- draws: all of size n, in a fixed order, independent of the mask ----
        t0 = rng.uniform(0.0, _DAY_S, n)
        doy = rng.uniform(0.0, 365.0, n)
        day_dev = rng.normal(0.0, self.day_to_day_temp_sd_c, n)
        half_range = rng.uniform(*self.diurnal_half_range_c, n)
        dew_dep = log_uniform(rng, *self.dew_point_depression_c, n)
        theta0 = rng.uniform(*self.soil_moisture_pct, n)
        et_peak = rng.uniform(*self.evapotranspiration_pct_per_h, n)
        tau_drain = rng.uniform(*self.drainage_time_s, n)
        draining = rng.random(n) < self.p_draining
        excess0 = rng.uniform(*self.earlier_excess_pct, n)
        lag_s = rng.uniform(*self.infiltration_lag_s, n)

        rain = rng.random(n) < self.p_rain
        rain_start = rng.integers(-p, w, n)
        rain_len = rng.integers(self.rain_samples[0], self.rain_samples[1] + 1, n)
        rain_rate = log_uniform(rng, *self.rain_rate_pct_per_h, n)
        rain_cool = rng.uniform(*self.rain_cooling_c, n)
        rain_sat = rng.uniform(0.85, 1.0, n)
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
        s_soil = log_uniform(rng, *self.soil_noise_pct, n)
        s_temp = log_uniform(rng, *self.temp_noise_c, n)
        s_rh = log_uniform(rng, *self.humidity_noise_pct, n)
        noise = rng.standard_normal((3, n, w))

        # ---- air temperature and dew point ----
        t = t0[:, None] + kk[None, :] * dt  # time of day of each sample, s (n, length)
        season = self.annual_mean_temp_c + self.annual_temp_amplitude_c * np.cos(
            2.0 * np.pi * (doy - 196.0) / 365.0
        )
        t_mean = season + day_dev
        temp = t_mean[:, None] + half_range[:, None] * np.cos(2.0 * np.pi * (t - 15 * 3600.0) / _DAY_S)
        dew = (t_mean - dew_dep)[:, None] + np.zeros((1, length))

        # ---- water inputs per sample (%VWC/h) ----
        k_int = np.arange(-p, w)[None, :]
        in_rain = rain[:, None] & (k_int >= rain_start[:, None]) & (k_int < (rain_start + rain_len)[:, None])
        in_irr = irr[:, None] & (k_int >= irr_start[:, None]) & (k_int < (irr_start + irr_len)[:, None])
        surface = in_rain * rain_rate[:, None] * rain_burst + in_irr * irr_rate[:, None]
        leak_on = np.concatenate([np.repeat(mask[:, :1], p, axis=1), mask], axis=1)
        leak_in = leak_on * leak_rate[:, None]

        # First-order lags, stepped along the (short) time axis, vectorised over windows:
        # infiltration lag for surface water, "wetness" of the air for rain / sprinklers.
        a_inf = np.exp(-dt / lag_s)
        a_wet = np.exp(-dt / 600.0)  # air humidity/temperature respond within ~10 min (assumption)
        a_drain = np.exp(-dt / tau_drain)
        inflow = np.empty((n, length))
        wet_rain = np.empty((n, length))
        wet_spr = np.empty((n, length))
        excess = np.empty((n, length))
        f = np.zeros(n)
        wr = np.zeros(n)
        ws = np.zeros(n)
        ex = np.where(draining, excess0, 0.0)
        spr_on = in_irr & sprinkler[:, None]
        for j in range(length):
            f = a_inf * f + (1.0 - a_inf) * surface[:, j]
            wr = a_wet * wr + (1.0 - a_wet) * in_rain[:, j]
            ws = a_wet * ws + (1.0 - a_wet) * spr_on[:, j]
            ex = a_drain * ex + (f + leak_in[:, j]) * dt_h
            inflow[:, j] = f
            wet_rain[:, j] = wr
            wet_spr[:, j] = ws
            excess[:, j] = ex

        temp = temp - rain_cool[:, None] * wet_rain - spr_cool[:, None] * wet_spr
        # Rain / spray pull the dew point towards the air temperature (air near saturation).
        moist = np.clip(rain_sat[:, None] * wet_rain + spr_humid[:, None] * wet_spr, 0.0, 1.0)
        dew = dew + (temp - dew) * moist
        dew = np.minimum(dew, temp)
        rh = 100.0 * np.exp(_magnus(dew) - _magnus(temp))

        # Evapotranspiration follows the sun (positive part of a cosine peaking at 13:00).
        sun = np.maximum(0.0, np.cos(2.0 * np.pi * (t - 13 * 3600.0) / _DAY_S))
        dry = np.cumsum(et_peak[:, None] * sun * dt_h, axis=1)
        theta = theta0[:, None] + excess - dry

        # ---- crop to the window, add sensor effects ----
        temp = temp[:, p:]
        rh = rh[:, p:]
        theta = theta[:, p:]
        t_win = temp - t_mean[:, None]
        hours = (np.arange(w) * dt_h)[None, :]
        theta = theta + soil_tc[:, None] * 0.3 * t_win + soil_drift[:, None] * hours
        theta = theta + s_soil[:, None] * noise[0]
        temp = temp + t_off[:, None] + temp_drift[:, None] * hours + s_temp[:, None] * noise[1]
        rh = rh + rh_off[:, None] + rh_drift[:, None] * hours + s_rh[:, None] * noise[2]

        out = np.empty((n, w, 3), dtype=np.float32)
        out[:, :, 0] = np.clip(theta, 0.0, 60.0)
        out[:, :, 1] = temp
        out[:, :, 2] = np.clip(rh, 0.0, 100.0)
        return out
