"""A signal that changes during a run (`workload.params`, `workload.phases`): windows that start in a phase are
generated with its parameters, from their own streams; without phases nothing changes; bad parameters are
refused naming the field."""

import numpy as np
import pytest

from iotsim.engine import run_scenario
from iotsim.errors import InputError
from iotsim.scenario import load_scenario_text

SCENARIO = """\
name: phases
seed: 5
duration: 4d
fleet:
  - group: soil
    count: 30
    device: nrf52840_sx1262_2xaa
    placement: {{kind: uniform, area_m: [1000, 1000]}}
    workload: {{signal: farm.soil_climate, events_per_day: 1{workload}}}
    model: farm_soil_int8
network:
  propagation: {{pl_d0_db: 100, d0_m: 40, exponent: 2.08, shadowing_sigma_db: 0}}
  gateways:
    - {{id: gw1, position_m: [500, 500]}}
policies: [on_device]
simulation: {{background_pool: 2000}}
outputs: {{plots: false, report: none}}
"""
NOISY = ", phases: [{start: 2d, params: {soil_noise_pct: [3.0, 4.0]}}]"


def _plan(workload=""):
    return run_scenario(load_scenario_text(SCENARIO.format(workload=workload)))


@pytest.fixture(scope="module")
def runs():
    return _plan(), _plan(NOISY)


def _event_free(plan, flat):
    """The windows no event touches (the run keeps no event masks without updates or federated rounds)."""
    return flat[~np.isin(flat, plan.windows.fresh_flat)]


def _soil_roughness(plan, flat):
    w = plan.windows.samples(_event_free(plan, flat))[:, :, 0]  # soil moisture, %VWC
    return np.abs(np.diff(w, axis=1)).mean(axis=1)


def test_windows_of_a_phase_follow_its_parameters(runs):
    _, noisy = runs
    p = noisy.plans[0]
    flat = np.arange(int(p.window_offset[-1]))
    node = np.repeat(np.arange(p.n_nodes), p.n_windows)
    start = p.phase_s[node] + (flat - p.window_offset[node]) * p.window_period_s
    before, after = flat[start < 2 * 86400], flat[start >= 2 * 86400]
    assert before.size > 500 and after.size > 500
    # soil noise 0.05-0.3 %VWC before, 3-4 %VWC after: sample-to-sample changes many times larger
    r0, r1 = _soil_roughness(p, before[::7]), _soil_roughness(p, after[::7])
    assert np.median(r1) > 5 * np.median(r0) and r1.min() > r0.max() * 0.5
    # windows of the second phase draw from the second phase's pool
    assert (p.windows.pool_index[after] >= p.pool_size).all() and (p.windows.pool_index[before] < p.pool_size).all()
    assert p.windows.phase_at(0.0) == 0 and p.windows.phase_at(2 * 86400.0) == 1


def test_the_first_phase_is_the_run_without_phases(runs):
    """Event-free windows before the change are the same windows, with the same verdicts, as in the run without
    it. (Event windows come from one stream per phase in window order, so they are other draws of the same
    signal.)"""
    plain, noisy = runs
    a, b = plain.plans[0], noisy.plans[0]
    flat = np.arange(int(a.window_offset[-1]))
    node = np.repeat(np.arange(a.n_nodes), a.n_windows)
    before = flat[a.phase_s[node] + (flat - a.window_offset[node]) * a.window_period_s < 2 * 86400]
    some = _event_free(a, before[::5])
    np.testing.assert_array_equal(a.windows.samples(some), b.windows.samples(some))
    quiet = _event_free(a, before)
    np.testing.assert_array_equal(a.verdicts.device_positive[quiet], b.verdicts.device_positive[quiet])
    assert not np.array_equal(a.verdicts.device_positive, b.verdicts.device_positive)


@pytest.mark.parametrize("workload, message, field", [
    (", params: {no_such_thing: 1}", "no_such_thing", "fleet.soil.workload.params"),
    (", phases: [{start: 1d, params: {start_day_of_year: [400, 10]}}]", "start_day_of_year",
     "fleet.soil.workload.phases.0.params"),
    (", phases: [{start: 2d, params: {}}, {start: 1d, params: {}}]", "increasing", None),
    (", phases: [{start: 1d, params: {leak_rate_pct_per_h: ''}}]", "expected a list of 2", "fleet.soil.workload"),
    (", params: {soil_moisture_pct: [40, 10]}", "cannot generate windows", "fleet.soil.workload.params"),
    (", params: {p_irrigation: high}", "expected a number", "fleet.soil.workload.params"),
    (", params: {irrigation_samples: [1.5, 6]}", "whole number", "fleet.soil.workload.params"),
])
def test_bad_signal_parameters_are_refused_naming_the_field(workload, message, field):
    with pytest.raises((InputError, ValueError), match=message) as e:
        _plan(workload)
    if field is not None:
        assert e.value.field.startswith(field)
