"""Battery and ledger: closed forms and conservation."""

import numpy as np
import pytest

from iotsim.energy.battery import SECONDS_PER_YEAR, LinearBattery
from iotsim.energy.ledger import COMPONENTS, SLOT_INDEX, SLOTS, EnergyLedger

AA2 = LinearBattery(capacity_mah=3000.0, nominal_voltage_v=3.0, usable_fraction=0.8, self_discharge_per_year=0.02)


def test_usable_energy_closed_form():
    assert AA2.nominal_energy_j == pytest.approx(3000 * 3.6 * 3.0)
    assert AA2.usable_energy_j == pytest.approx(3000 * 3.6 * 3.0 * 0.8)
    assert AA2.self_discharge_power_w == pytest.approx(3000 * 3.6 * 3.0 * 0.02 / SECONDS_PER_YEAR)


def test_projected_life_of_constant_load():
    # a node drawing 30 uA at 3 V for a week: life = E_usable / (P + P_sd)
    p = 30e-6 * 3.0
    week = 7 * 86400.0
    life = AA2.projected_life_s(p * week, week)
    assert life == pytest.approx(AA2.usable_energy_j / (p + AA2.self_discharge_power_w), rel=1e-12)
    # the same node over a day projects the same life: the method is run-length independent
    assert AA2.projected_life_s(p * 86400.0, 86400.0) == pytest.approx(life, rel=1e-12)


def test_death_time_steady_drain_matches_closed_form():
    p = 0.5
    expected = AA2.usable_energy_j / (p + AA2.self_discharge_power_w)
    assert AA2.death_time_s(p, np.array([]), np.array([])) == pytest.approx(expected, rel=1e-12)


def test_death_time_with_bursts():
    small = LinearBattery(capacity_mah=1.0, nominal_voltage_v=1.0, usable_fraction=1.0, self_discharge_per_year=0.0)
    budget = small.usable_energy_j  # 3.6 J
    # 0.1 W steady; a 3 J burst at t=1 s => drained 3.1 J after the burst, dies at t = (3.6-3)/0.1 = 6 s
    assert small.death_time_s(0.1, np.array([1.0]), np.array([3.0])) == pytest.approx(6.0)
    # a burst that crosses the budget kills the node at the burst
    assert small.death_time_s(0.1, np.array([2.0]), np.array([3.5])) == pytest.approx(2.0)
    # never dies within bursts when power is zero and bursts stay below budget
    assert small.death_time_s(0.0, np.array([1.0, 2.0]), np.array([1.0, 1.0])) == np.inf
    assert budget == pytest.approx(3.6)


def test_ledger_conserves_time_and_energy():
    ledger = EnergyLedger(3)
    ledger.charge("mcu", "active", np.array([0, 0, 2]), np.array([1.0, 2.0, 5.0]))
    ledger.charge("radio", "tx", np.array([1]), 0.5)
    ledger.charge("radio", "rx", np.array([1]), 0.25)
    ledger.close(np.array([100.0, 50.0, 10.0]))
    for comp in COMPONENTS:
        idx = [SLOT_INDEX[s] for s in SLOTS if s[0] == comp]
        np.testing.assert_allclose(ledger.time_s[:, idx].sum(axis=1), ledger.lifetime_s)
    assert ledger.time_s[0, SLOT_INDEX[("mcu", "sleep")]] == pytest.approx(97.0)
    assert ledger.time_s[1, SLOT_INDEX[("radio", "sleep")]] == pytest.approx(49.25)
    currents = np.random.default_rng(0).random((3, len(SLOTS)))
    volts = np.array([3.0, 3.3, 1.8])
    e = ledger.energy_j(currents, volts)
    np.testing.assert_allclose(e, ledger.time_s * currents * volts[:, None])
    parts = EnergyLedger.by_component(e)
    np.testing.assert_allclose(sum(parts.values()), e.sum(axis=1))


def test_ledger_refuses_impossible_duty_cycle():
    ledger = EnergyLedger(1)
    ledger.charge("sensor", "active", np.array([0]), 20.0)
    with pytest.raises(ValueError, match="busy"):
        ledger.close(np.array([10.0]))
    with pytest.raises(ValueError):
        ledger.charge("mcu", "sleep", np.array([0]), 1.0)
