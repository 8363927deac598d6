"""smart_city.traffic: a street-light-mounted traffic sensor counting vehicles on one lane of an urban arterial
(a magnetometer pair or a radar: `devices/sensor/vehicle_magnetometer.yaml` is the one the shipped board carries).

Channels: flow (vehicles counted in the minute) and speed (their mean spot speed, km/h; 0 when no vehicle
passed). One sample a minute, 30 samples per window (half an hour), sent raw as int16 per channel.

Traffic follows the speed-flow-density relation of Greenshields' model (B. D. Greenshields, "A study of
traffic capacity", Proc. Highway Research Board 14:448-477, 1935): speed falls linearly with density,
v = v_f (1 - k / k_j), so flow q = k v peaks at capacity q_c = v_f k_j / 4 at half the free-flow speed. A
minute's demand follows a daily profile (a night trough, morning and evening peaks: a shape assumed here, not
fitted to counts) scaled by the lane's peak demand; the vehicles counted are Poisson around it. On the
uncongested branch the mean speed is v = v_f (1 + sqrt(1 - q / q_c)) / 2; demand above capacity (a peak)
puts the lane on the congested branch, where speed falls and flow stays at capacity. Each vehicle's spot speed
scatters around the mean (a per-window spread), so a minute's mean is noisier when few vehicles pass.

Event (positive class) -- **incident downstream**: a stalled vehicle or a crash blocks part of the road
beyond the sensor. Its capacity drops to a fraction (0-75 %) of normal within a minute. Where demand exceeds
what the bottleneck passes, a queue reaches the sensor (within 1-5 minutes): flow falls to the bottleneck's
discharge rate and speed to the congested branch's, with stop-and-go scatter. Where it does not (a quiet
hour, a minor blockage), there is no queue and drivers only slow a little past the scene: such incidents are
all but invisible to a traffic sensor, as in practice. When the event ends the queue discharges at capacity
and speed recovers over a few minutes.

Normal windows (must not be flagged) contain:
- the daily demand cycle, quiet nights with empty minutes (speed 0), and day-to-day variation;
- recurring peak-hour congestion: demand above capacity in the peaks of busy lanes, a gradual fall in speed
  with flow held at capacity -- the main confounder;
- rain (a share of windows): free-flow speed and capacity both lower (by 5-15 %, assumed; of the order the
  Highway Capacity Manual gives for wet pavement, not read here);
- platoons from an upstream traffic signal (flow alternating from minute to minute) and counting errors.

Numbers: free-flow speed around the 50 km/h urban limit; capacity 1,400-1,900 vehicles per hour per lane
(the upper end is of the order of the base saturation flow of 1,900 passenger cars per hour per lane in the
Highway Capacity Manual, recalled, not read here); the others are assumptions of this generator, collected as
fields of `CityTraffic` so a scenario can change them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iotsim.signals.base import Workload


def daily_demand_share(hour: np.ndarray) -> np.ndarray:
    """Demand relative to the lane's peak hour at `hour` of the day (0-24): a night trough of 5 %, a morning
    peak at 8:00 and an evening peak at 17:30 of full demand, 55 % in between (an assumed shape)."""
    h = np.mod(np.asarray(hour, dtype=np.float64), 24.0)
    base = 0.05 + 0.50 / (1.0 + np.exp(-(h - 6.0) * 1.6)) - 0.50 / (1.0 + np.exp(-(h - 21.5) * 1.2))
    peaks = 0.45 * np.exp(-0.5 * ((h - 8.0) / 1.0) ** 2) + 0.45 * np.exp(-0.5 * ((h - 17.5) / 1.3) ** 2)
    return np.clip(base + peaks, 0.02, 1.0)


def greenshields_speed_kmh(flow_vph: np.ndarray, free_flow_kmh: np.ndarray, capacity_vph: np.ndarray) -> np.ndarray:
    """Mean speed on the uncongested branch of Greenshields' model: v_f (1 + sqrt(1 - q / q_c)) / 2 (flow
    at most capacity)."""
    x = np.clip(np.asarray(flow_vph, dtype=np.float64) / capacity_vph, 0.0, 1.0)
    return free_flow_kmh * (1.0 + np.sqrt(1.0 - x)) / 2.0


@dataclass(frozen=True)
class CityTraffic(Workload):
    name: str = "smart_city.traffic"
    channels: tuple[str, ...] = ("flow", "speed")
    units: tuple[str, ...] = ("veh/min", "km/h")
    window_samples: int = 30
    sample_rate_hz: float = 1.0 / 60.0
    bytes_per_sample: int = 2  # int16 per channel: 1 vehicle / 0.01 km/h per LSB
    # Scenario defaults (assumptions): an incident near a given sensor every ~10 days, cleared in ~40 min.
    default_events_per_day: float = 0.1
    default_event_duration_s: float = 40 * 60.0
    class_names: tuple[str, ...] = ("normal", "incident")
    positive_class: int = 1
    description: str = (
        "traffic sensor on an urban lane: vehicles per minute and mean speed, 30-min windows, Greenshields "
        "speed-flow model, daily demand cycle with peak-hour congestion; event: incident downstream (queue "
        "spillback)"
    )

    free_flow_kmh: tuple[float, float] = (42.0, 58.0)  # around the 50 km/h urban limit (assumption)
    capacity_vph: tuple[float, float] = (1400.0, 1900.0)  # per lane (see the module docstring)
    peak_demand_share_of_capacity: tuple[float, float] = (0.5, 1.15)  # busy lanes exceed capacity in the peaks
    demand_day_sd: float = 0.15  # day-to-day variation of a lane's demand (log sd, assumption)
    speed_spread_kmh: tuple[float, float] = (4.0, 9.0)  # sd of vehicles' spot speeds about the mean
    p_rain: float = 0.08  # share of windows with rain (assumption)
    rain_reduction: tuple[float, float] = (0.05, 0.15)  # of free-flow speed and of capacity (assumption)
    p_signal_platoons: float = 0.4  # windows downstream of a signal: flow alternates minute to minute
    platoon_swing: tuple[float, float] = (0.2, 0.6)
    count_error: float = 0.03  # share of vehicles missed or double counted (assumption)
    # --- incident (the event) ---
    incident_capacity_share: tuple[float, float] = (0.0, 0.75)
    rubbernecking_speed_share: tuple[float, float] = (0.8, 1.0)  # speed past the scene without a queue (assumed)
    queue_arrival_min: tuple[int, int] = (1, 5)
    incident_speed_kmh: tuple[float, float] = (3.0, 20.0)
    recovery_min: tuple[int, int] = (2, 8)

    def _generate(self, rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
        n, w = mask.shape
        minute = np.arange(w, dtype=np.float64)
        # --- per window draws (all of them, whatever the mask, so the background does not depend on it)
        start_h = rng.uniform(0.0, 24.0, n)
        v_f = rng.uniform(*self.free_flow_kmh, n)
        cap = rng.uniform(*self.capacity_vph, n)
        peak = rng.uniform(*self.peak_demand_share_of_capacity, n) * cap * np.exp(rng.normal(0.0, self.demand_day_sd, n))
        spread = rng.uniform(*self.speed_spread_kmh, n)
        rain = rng.random(n) < self.p_rain
        cut = rng.uniform(*self.rain_reduction, n)
        v_f = np.where(rain, v_f * (1.0 - cut), v_f)
        cap = np.where(rain, cap * (1.0 - cut), cap)
        platoon = rng.random(n) < self.p_signal_platoons
        swing = rng.uniform(*self.platoon_swing, n) * platoon
        phase = rng.integers(0, 2, n)
        inc_share = rng.uniform(*self.incident_capacity_share, n)
        inc_lag = rng.integers(self.queue_arrival_min[0], self.queue_arrival_min[1] + 1, n)
        inc_speed = rng.uniform(*self.incident_speed_kmh, n)
        rec = rng.integers(self.recovery_min[0], self.recovery_min[1] + 1, n)
        rubberneck = rng.uniform(*self.rubbernecking_speed_share, n)
        u_count = rng.random((n, w))  # Poisson draws below come from these (inverse transform), mask-independent
        z_speed = rng.normal(0.0, 1.0, (n, w))
        z_stop = rng.normal(0.0, 1.0, (n, w))
        z_count = rng.normal(0.0, 1.0, (n, w))
        z_pois = rng.normal(0.0, 1.0, (n, w))  # for minutes busier than the inverse-CDF table covers

        hours = start_h[:, None] + minute[None, :] / 60.0
        demand = peak[:, None] * daily_demand_share(hours)  # veh/h
        alternate = np.where((minute[None, :] + phase[:, None]) % 2 == 0, 1.0, -1.0)
        demand = demand * (1.0 + swing[:, None] * alternate)
        # recurring congestion: above capacity the lane runs at capacity on the congested branch
        over = demand / cap[:, None]
        flow = np.minimum(demand, cap[:, None])
        speed = greenshields_speed_kmh(flow, v_f[:, None], cap[:, None])
        congested = over > 1.0
        # congested branch: density beyond critical, speed v_f (1 - k / k_j) falls as the queue grows
        k_share = np.clip(0.5 + 0.4 * (over - 1.0) / 0.15, 0.5, 0.9)
        speed = np.where(congested, v_f[:, None] * (1.0 - k_share), speed)

        # --- the incident: from the queue's arrival at the sensor on masked samples, until it clears
        if mask.any():
            idx = np.arange(w)[None, :]
            first = np.where(mask.any(axis=1), mask.argmax(axis=1), w)
            last = np.where(mask.any(axis=1), w - 1 - mask[:, ::-1].argmax(axis=1), -1)
            starts_inside = mask[:, 0] == 0
            queue_from = np.where(starts_inside, first + inc_lag, first)
            active = mask & (idx >= queue_from[:, None])
            bott = inc_share[:, None] * cap[:, None]
            # a queue forms only where demand exceeds what the bottleneck passes; below it drivers only slow
            # down past the scene
            queued = active & (demand > bott)
            flow = np.where(queued, np.minimum(flow, bott), flow)
            stop = np.clip(inc_speed[:, None] * (1.0 + 0.35 * z_stop), 1.0, None)
            speed = np.where(queued, stop, np.where(active, speed * rubberneck[:, None], speed))
            # after the incident clears (inside the window): the queue discharges, speed recovers
            after = (idx > last[:, None]) & (last[:, None] >= 0) & (last[:, None] < w - 1) & mask.any(axis=1)[:, None]
            t_after = (idx - last[:, None]).astype(np.float64)
            frac = np.clip(t_after / rec[:, None], 0.0, 1.0)
            speed = np.where(after, stop + (speed - stop) * frac, speed)
            flow = np.where(after, np.maximum(flow, cap[:, None] * (1.0 - frac) * 0.9), flow)

        # --- counting: Poisson vehicles in the minute (inverse transform of the pre-drawn uniforms), errors
        lam = np.maximum(flow / 60.0, 0.0)
        counts = _poisson_inverse(u_count, z_pois, lam)
        counts = np.maximum(np.rint(counts * (1.0 + self.count_error * z_count)), 0.0)
        mean_speed = speed + spread[:, None] * z_speed / np.sqrt(np.maximum(counts, 1.0))
        mean_speed = np.where(counts > 0, np.clip(mean_speed, 1.0, None), 0.0)
        return np.stack([counts, mean_speed], axis=-1)


def _poisson_inverse(u: np.ndarray, z: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Poisson(lam) by inverting its CDF at the uniforms u, so that the random numbers used do not depend on
    lam; above 40 a minute its normal approximation at the standard normals z."""
    lam = np.broadcast_to(lam, u.shape)
    out = np.zeros(u.shape)
    small = lam <= 40.0
    if small.any():
        lu, ll = u[small], lam[small]
        k = np.zeros(ll.shape)
        p = np.exp(-ll)
        cdf = p.copy()
        for i in range(1, 121):
            more = lu > cdf
            if not more.any():
                break
            k = np.where(more, i, k)
            p = p * ll / i
            cdf = cdf + np.where(more, p, 0.0)
        out[small] = k
    big = ~small
    if big.any():
        out[big] = np.maximum(np.rint(lam[big] + np.sqrt(lam[big]) * z[big]), 0.0)
    return out
