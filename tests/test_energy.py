"""Batteries, KiBaM, power trees and the ledger: closed forms, hand calculations and conservation."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from iotsim.energy import kibam
from iotsim.energy.battery import (
    SECONDS_PER_YEAR,
    BatteryModel,
    death_time_s,
    projected_life_s,
)
from iotsim.energy.ledger import COMPONENTS, REGULATOR_SLOT, SLOT_INDEX, SLOTS, EnergyLedger, slot_currents_a
from iotsim.energy.power_tree import BoardPower, board_brownout_v, rail_input_power_w, rail_min_input_v
from iotsim.hardware import Battery, load_board, load_profile
from iotsim.hardware.profiles import Rail, Regulator


def cell(ocv=((0.0, 3.0), (1.0, 3.0)), resistance=((0.0, 0.0), (1.0, 0.0)), cells=1, capacity_mah=1000.0,
         cutoff_v=2.0, self_discharge=0.0, shelf_years=100.0, capacity_curve=None, kibam_ck=None) -> Battery:
    """A battery profile built in code, for closed forms."""
    cap_i = cap_q = None
    if capacity_curve is not None:
        cap_i = tuple(i * 1e-3 for i, _ in capacity_curve)
        cap_q = tuple(q * 3.6 for _, q in capacity_curve)
    return Battery(
        name="test", chemistry="test", cells_in_series=cells, nominal_voltage_v=3.0 * cells,
        capacity_mah=capacity_mah, self_discharge_per_year=self_discharge, cutoff_voltage_v=cutoff_v,
        shelf_life_s=shelf_years * SECONDS_PER_YEAR,
        ocv_soc=tuple(s for s, _ in ocv), cell_ocv_v=tuple(v for _, v in ocv),
        resistance_soc=tuple(s for s, _ in resistance), cell_resistance_ohm=tuple(r for _, r in resistance),
        capacity_current_a=cap_i, capacity_at_current_c=cap_q,
        kibam_c=None if kibam_ck is None else kibam_ck[0], kibam_k_per_s=None if kibam_ck is None else kibam_ck[1],
    )


# ---- linear battery ------------------------------------------------------------------------------------


def test_linear_battery_life_closed_form():
    """Flat voltage, no resistance, no rate curve: the whole capacity is usable; life = Q V / (P + P_sd)."""
    m = BatteryModel(cell(capacity_mah=3000.0, self_discharge=0.02))
    q = 3000 * 3.6
    assert m.usable_charge_c(30e-6, 20e-3, brownout_v=1.8) == pytest.approx(q)
    assert m.self_discharge_power_w == pytest.approx(q * 0.02 / SECONDS_PER_YEAR * 3.0)
    p = 30e-6 * 3.0
    life, calendar = projected_life_s(q * 3.0, p, m.self_discharge_power_w, m.shelf_life_s)
    assert life == pytest.approx(q * 3.0 / (p + q * 3.0 * 0.02 / SECONDS_PER_YEAR), rel=1e-12)
    assert not calendar


def test_calendar_cap_binds_when_the_energy_would_outlast_the_shelf_life():
    m = BatteryModel(cell(capacity_mah=3000.0, shelf_years=15.0))
    energy = 3000 * 3.6 * 3.0
    light, heavy = 1e-6, 1e-3  # W: 1 uW would last 1000+ years on energy; 1 mW about 1.2 years
    life, calendar = projected_life_s(energy, np.array([light, heavy]), 0.0, m.shelf_life_s)
    assert calendar.tolist() == [True, False]
    assert life[0] == pytest.approx(15 * SECONDS_PER_YEAR)
    assert life[1] == pytest.approx(energy / heavy)


# ---- terminal voltage and brown-out -------------------------------------------------------------------


def test_min_soc_solved_by_hand_with_constant_resistance():
    # OCV 2.0 V empty .. 3.0 V full (linear), R = 10 ohm, 20 mA: V = 2 + s - 0.2 = 2.4 V at s = 0.6
    m = BatteryModel(cell(ocv=((0.0, 2.0), (1.0, 3.0)), resistance=((0.0, 10.0), (1.0, 10.0))))
    assert m.min_soc(0.020, 2.4) == pytest.approx(0.6, abs=1e-12)
    # two cells in series: twice the voltage and twice the resistance
    m2 = BatteryModel(cell(ocv=((0.0, 2.0), (1.0, 3.0)), resistance=((0.0, 10.0), (1.0, 10.0)), cells=2))
    assert m2.min_soc(0.020, 4.8) == pytest.approx(0.6, abs=1e-12)
    assert m2.terminal_voltage_v(0.6, 0.020) == pytest.approx(4.8)
    # dead when full, and never browns out
    assert m.min_soc(0.5, 2.9) == 1.0
    assert m.min_soc(0.0, 1.5) == 0.0


def test_min_soc_solved_by_hand_with_resistance_rising_towards_empty():
    # R = 20 ohm empty .. 10 ohm full: V = 2 + s - (20 - 10 s) 0.02 = 1.6 + 1.2 s = 2.4 V at s = 2/3
    m = BatteryModel(cell(ocv=((0.0, 2.0), (1.0, 3.0)), resistance=((0.0, 20.0), (1.0, 10.0))))
    assert m.min_soc(0.020, 2.4) == pytest.approx(2 / 3, abs=1e-12)
    # a curve with a knee: OCV 2.0 -> 2.8 over the first 10 %, then flat to 2.9; R = 0
    knee = BatteryModel(cell(ocv=((0.0, 2.0), (0.1, 2.8), (1.0, 2.9))))
    assert knee.min_soc(0.0, 2.4) == pytest.approx(0.05, abs=1e-12)


def test_brownout_time_of_a_constant_load_solved_by_hand():
    """A 1000 mAh cell, OCV 2.0 -> 3.0 V, R = 10 ohm, a constant 20 mA load and a 2.4 V brown-out: the
    node dies at soc 0.6, i.e. after 0.4 x 1000 mAh / 20 mA = 20 h; the rated cut-off (2.0 V) alone
    would give 0.8 x ... -> the brown-out binds."""
    m = BatteryModel(cell(ocv=((0.0, 2.0), (1.0, 3.0)), resistance=((0.0, 10.0), (1.0, 10.0)), cutoff_v=2.0))
    i = 0.020
    t = m.usable_charge_c(i, i, brownout_v=2.4) / i
    assert t == pytest.approx(0.4 * 1000 * 3.6 / i)
    assert t / 3600 == pytest.approx(20.0)
    assert m.brownout_binds(i, i, 2.4)
    # with a brown-out below the cut-off, the cut-off under load sets the end: 2 + s - 0.2 = 2.0 at s = 0.2
    assert m.usable_charge_c(i, i, brownout_v=1.0) / i == pytest.approx(0.8 * 1000 * 3.6 / i)
    assert not m.brownout_binds(i, i, 1.0)


def test_coin_cell_under_radio_pulses_loses_capacity_to_its_rising_resistance():
    """The shipped CR2032: a 16 mA pulse strands charge a 0.2 mA load still gets to 2.0 V."""
    m = BatteryModel(load_profile("battery", "cr2032"))
    light = m.usable_charge_c(0.2e-3, 0.2e-3, brownout_v=1.7)
    pulsed = m.usable_charge_c(0.2e-3, 16e-3, brownout_v=1.7)
    assert pulsed < light < m.profile.capacity_c
    assert m.brownout_binds(0.2e-3, 16e-3, 1.7)
    # the terminal voltage where it dies is the cut-off (2.0 V, above the nRF52840's 1.7 V)
    s = m.min_soc(16e-3, m.death_voltage_v(1.7))
    assert m.terminal_voltage_v(s, 16e-3) == pytest.approx(2.0)


def test_alkaline_capacity_depends_on_drain():
    m = BatteryModel(load_profile("battery", "2xaa_alkaline"))
    pts = dict(zip(np.round(np.array(m.profile.capacity_current_a) * 1e3), np.array(m.profile.capacity_at_current_c)))
    assert m.capacity_c(0.250) == pytest.approx(pts[250])
    assert m.capacity_c(0.375) == pytest.approx((pts[250] + pts[500]) / 2)  # linear between points
    assert m.capacity_c(0.001) == pytest.approx(pts[25])  # below the curve: its first value, no extrapolation
    assert m.capacity_c(0.250) < m.capacity_c(0.025)


# ---- KiBaM ---------------------------------------------------------------------------------------------


C_FRAC, K = 0.3, 1e-4  # 1/s


def test_kibam_closed_form_matches_numerical_integration():
    cap, i = 3600.0, 0.5  # 1 Ah at 0.5 A
    kp = K / (C_FRAC * (1 - C_FRAC))

    def rhs(_t, y):
        h1, h2 = y[0] / C_FRAC, y[1] / (1 - C_FRAC)
        return [-i + K * (h2 - h1), -K * (h2 - h1)]

    ts = np.array([100.0, 600.0, 1500.0])
    sol = solve_ivp(rhs, (0, ts[-1]), [C_FRAC * cap, (1 - C_FRAC) * cap], t_eval=ts, rtol=1e-11, atol=1e-9)
    y1, y2 = kibam.state(C_FRAC * cap, (1 - C_FRAC) * cap, i, ts, C_FRAC, K)
    np.testing.assert_allclose(y1, sol.y[0], rtol=1e-7)
    np.testing.assert_allclose(y2, sol.y[1], rtol=1e-7)
    # the published form (Jongerden and Haverkort 2009, from full wells)
    e = np.exp(-kp * ts)
    y1_pub = C_FRAC * cap * e + (cap * kp * C_FRAC - i) * (1 - e) / kp - i * C_FRAC * (kp * ts - 1 + e) / kp
    np.testing.assert_allclose(y1, y1_pub, rtol=1e-12)


def test_kibam_time_to_empty_and_rate_effect():
    cap = 3600.0
    for i in (0.05, 0.5, 2.0):
        t = kibam.time_to_empty_s(cap, i, C_FRAC, K)
        y1, _ = kibam.state(C_FRAC * cap, (1 - C_FRAC) * cap, i, t, C_FRAC, K)
        assert abs(y1) < 1e-6 * cap
    delivered = kibam.delivered_charge_c(cap, np.array([0.01, 0.5, 2.0]), C_FRAC, K)
    assert np.all(np.diff(delivered) < 0)  # the higher the current, the less comes out
    assert delivered[-1] < cap


def test_kibam_reduces_to_the_linear_battery_in_the_limit():
    cap = 3600.0
    assert kibam.delivered_charge_c(cap, 0.5, C_FRAC, 1e3) == pytest.approx(cap, rel=1e-6)  # k -> inf
    assert kibam.delivered_charge_c(cap, 0.5, 1 - 1e-9, K) == pytest.approx(cap, rel=1e-6)  # c -> 1
    assert kibam.delivered_charge_c(cap, 0.0, C_FRAC, K) == cap


def test_kibam_recovery_rests_let_a_pulsed_load_deliver_more():
    cap, i = 3600.0, 2.0
    continuous = kibam.time_to_empty_s(cap, i, C_FRAC, K) * i
    # 60 s on, 600 s off, repeated: the bound well refills the available one during the rests
    steps = 200
    currents = np.tile([i, 0.0], steps)
    durations = np.tile([60.0, 600.0], steps)
    y1, y2, empty_at = kibam.simulate(cap, currents, durations, C_FRAC, K)
    assert np.isfinite(empty_at)
    on_time = (empty_at // 660) * 60 + min(empty_at % 660, 60)
    assert on_time * i > continuous * 1.2
    # piecewise-constant steps at one current reproduce the constant-current closed form
    y1s, _, t_empty = kibam.simulate(cap, [i] * 10, [100.0] * 10, C_FRAC, K)
    assert t_empty == pytest.approx(kibam.time_to_empty_s(cap, i, C_FRAC, K), rel=1e-9)


def test_kibam_option_in_the_battery_model_applies_at_the_mean_current():
    q = 1000 * 3.6
    m = BatteryModel(cell(kibam_ck=(C_FRAC, K)))
    assert m.usable_charge_c(0.5, 0.5, 1.0) == pytest.approx(kibam.delivered_charge_c(q, 0.5, C_FRAC, K))
    # light load (t >> 1/k'): the wells' level difference settles at I / (c k'), and the bound well keeps
    # (1 - c) times it when the available well empties; the rest of the charge comes out, as linear
    kp = K / (C_FRAC * (1 - C_FRAC))
    i = 1e-6
    assert m.usable_charge_c(i, i, 1.0) == pytest.approx(q - (1 - C_FRAC) * i / (C_FRAC * kp), rel=1e-12)


# ---- death time with bursts ---------------------------------------------------------------------------------


def test_death_time_steady_drain_matches_closed_form():
    assert death_time_s(100.0, 0.5, np.array([]), np.array([])) == pytest.approx(200.0)


def test_death_time_with_bursts():
    # 3.6 J budget, 0.1 W steady; a 3 J burst at t=1 s => drained 3.1 J after the burst, dies at t = 6 s
    assert death_time_s(3.6, 0.1, np.array([1.0]), np.array([3.0])) == pytest.approx(6.0)
    # a burst that crosses the budget kills the node at the burst
    assert death_time_s(3.6, 0.1, np.array([2.0]), np.array([3.5])) == pytest.approx(2.0)
    # never dies within bursts when power is zero and bursts stay below budget
    assert death_time_s(3.6, 0.0, np.array([1.0, 2.0]), np.array([1.0, 1.0])) == np.inf


# ---- power trees -----------------------------------------------------------------------------------------


def ldo_rail(vout=3.3, iq=1.6e-6, dropout=0.2, loads=("mcu", "sensor", "radio")):
    return Rail("3v3", loads, Regulator("ldo", "test LDO", output_v=vout, quiescent_current_a=iq, dropout_v=dropout),
                min_supply_v=1.8)


def buck_rail(loads=("mcu", "sensor", "radio")):
    reg = Regulator("buck", "test buck", output_v=1.8, min_input_v=2.2,
                    efficiency_load_a=(1e-6, 1e-3, 100e-3), efficiency=(0.6, 0.9, 0.8))
    return Rail("1v8", loads, reg, min_supply_v=1.7)


def test_ldo_battery_current_is_load_plus_quiescent_exactly():
    rail = ldo_rail()
    load = np.array([0.0, 5e-6, 2e-3, 120e-3])
    assert np.array_equal(rail_input_power_w(rail, load, 3.6) / 3.6, load + 1.6e-6)
    assert rail_min_input_v(rail) == pytest.approx(3.5)


def test_buck_input_power_is_output_power_over_interpolated_efficiency():
    rail = buck_rail()
    # 50.5 mA is halfway between the 1 mA (90 %) and 100 mA (80 %) points: efficiency 85 %
    i = 50.5e-3
    assert rail_input_power_w(rail, i, 3.6) == pytest.approx(1.8 * i / 0.85, rel=1e-12)
    assert rail_input_power_w(rail, 1e-3, 3.0) == pytest.approx(1.8 * 1e-3 / 0.9, rel=1e-12)
    assert rail_min_input_v(rail) == pytest.approx(2.2)


def _ledger_with_activity(lifetime=1000.0):
    ledger = EnergyLedger(2)
    ledger.charge("mcu", "active", np.array([0, 1]), np.array([10.0, 3.0]))
    ledger.charge("sensor", "active", np.array([0]), 5.0)
    ledger.charge("radio", "tx", np.array([0, 1]), np.array([2.0, 1.0]))
    ledger.charge("radio", "rx", np.array([1]), 0.5)
    ledger.close(np.array([lifetime, lifetime / 2]))
    return ledger


def _board_with(rails):
    import dataclasses

    return dataclasses.replace(load_board("stm32l4r5_sx1276_18650"), power_tree=tuple(rails))


def test_ledger_conserves_energy_through_an_ldo():
    """Battery energy = V_b x (sum of time x current + I_q x lifetime) = loads' rows + regulator row."""
    board = _board_with([ldo_rail()])
    cur = slot_currents_a(board, 13)
    bp = BoardPower(board, cur)
    ledger = _ledger_with_activity()
    currents = np.tile(cur, (2, 1))
    e = ledger.energy_j(*bp.slot_powers_w(currents))
    vb = board.battery.nominal_voltage_v
    load_slots = [i for i, (c, _) in enumerate(SLOTS) if c in COMPONENTS]
    charge = (ledger.time_s[:, load_slots] * currents[:, load_slots]).sum(axis=1)
    battery_j = vb * (charge + 1.6e-6 * ledger.lifetime_s)
    np.testing.assert_allclose(e.sum(axis=1), battery_j, rtol=1e-12)
    loads_j = 3.3 * charge
    np.testing.assert_allclose(e[:, load_slots].sum(axis=1), loads_j, rtol=1e-12)
    np.testing.assert_allclose(e[:, REGULATOR_SLOT], battery_j - loads_j, rtol=1e-12)
    assert (e[:, REGULATOR_SLOT] > 0).all()
    parts = EnergyLedger.by_component(e)
    assert set(parts) == {"mcu", "sensor", "radio", "regulator"}
    np.testing.assert_allclose(sum(parts.values()), e.sum(axis=1))


def test_ledger_conserves_energy_through_a_buck_with_one_load_active_at_a_time():
    """Hand calculation: the rail idles at I0 (all loads asleep) for the lifetime, and each active interval
    of load c at current I adds P_in(I0 - I_sleep,c + I) - P_in(I0)."""
    rail = buck_rail()
    board = _board_with([rail])
    cur = slot_currents_a(board, 13)
    bp = BoardPower(board, cur)
    ledger = _ledger_with_activity()
    e = ledger.energy_j(*bp.slot_powers_w(np.tile(cur, (2, 1))))
    vb = board.battery.nominal_voltage_v
    sleep = {c: cur[SLOT_INDEX[(c, "sleep")]] for c in COMPONENTS}
    i0 = sum(sleep.values())
    p_in = lambda i: float(rail_input_power_w(rail, i, vb))  # noqa: E731
    expected = p_in(i0) * ledger.lifetime_s
    for s, (c, state) in enumerate(SLOTS):
        if c in COMPONENTS and state != "sleep":
            expected = expected + ledger.time_s[:, s] * (p_in(i0 - sleep[c] + cur[s]) - p_in(i0))
    np.testing.assert_allclose(e.sum(axis=1), expected, rtol=1e-12)
    # the loads are charged at the rail's 1.8 V; the rest is the converter's loss
    load_slots = [i for i, (c, _) in enumerate(SLOTS) if c in COMPONENTS]
    np.testing.assert_allclose(e[:, load_slots], 1.8 * ledger.time_s[:, load_slots] * cur[load_slots], rtol=1e-12)


def test_rails_run_their_loads_at_their_own_voltage():
    """MCU and sensor on a 1.8 V buck, the radio straight on the battery."""
    board = _board_with([buck_rail(("mcu", "sensor")), Rail("vbat", ("radio",), Regulator("direct"), 1.8)])
    cur = slot_currents_a(board, 13)
    bp = BoardPower(board, cur)
    vb = board.battery.nominal_voltage_v
    assert board.rail_voltage_v("mcu") == 1.8 and board.rail_voltage_v("radio") == vb
    load_w, loss_w = bp.slot_powers_w(cur)
    tx = SLOT_INDEX[("radio", "tx")]
    assert load_w[tx] == pytest.approx(vb * cur[tx]) and loss_w[tx] == 0.0
    mcu = SLOT_INDEX[("mcu", "active")]
    assert load_w[mcu] == pytest.approx(1.8 * cur[mcu]) and loss_w[mcu] > 0
    assert board_brownout_v(board) == pytest.approx(2.2)  # the buck's minimum input, above the radio's 1.8 V
    # peak battery current: the largest slot with the other loads asleep (TX here: the radio's 29 mA at the
    # battery beats the MCU's 22.5 mA at 1.8 V through the buck)
    sleep = {c: cur[SLOT_INDEX[(c, "sleep")]] for c in COMPONENTS}
    behind_buck_asleep = float(bp.input_power_w("mcu", sleep["mcu"]) + bp.input_power_w("sensor", sleep["sensor"]))
    assert bp.peak_current_a(cur) == pytest.approx((vb * cur[tx] + behind_buck_asleep) / vb)
    mcu_peak = float(bp.input_power_w("mcu", cur[mcu]) + bp.input_power_w("sensor", sleep["sensor"])) \
        + vb * sleep["radio"]
    assert mcu_peak / vb < bp.peak_current_a(cur)


def test_direct_board_peak_current_is_its_largest_state_plus_the_others_asleep():
    board = load_board("nrf52840_sx1262_2xaa")
    cur = slot_currents_a(board, 14)
    bp = BoardPower(board, cur)
    tx = cur[SLOT_INDEX[("radio", "tx")]]
    others = cur[SLOT_INDEX[("mcu", "sleep")]] + cur[SLOT_INDEX[("sensor", "sleep")]]
    assert bp.peak_current_a(cur) == pytest.approx(tx + others)
    assert board_brownout_v(board) == board.power_tree[0].min_supply_v


# ---- the ledger's time bookkeeping -----------------------------------------------------------------------


def test_ledger_conserves_time():
    ledger = EnergyLedger(3)
    ledger.charge("mcu", "active", np.array([0, 0, 2]), np.array([1.0, 2.0, 5.0]))
    ledger.charge("radio", "tx", np.array([1]), 0.5)
    ledger.charge("radio", "rx", np.array([1]), 0.25)
    ledger.close(np.array([100.0, 50.0, 10.0]))
    for comp in COMPONENTS:
        idx = [SLOT_INDEX[s] for s in SLOTS if s[0] == comp]
        np.testing.assert_allclose(ledger.time_s[:, idx].sum(axis=1), ledger.lifetime_s)
    np.testing.assert_allclose(ledger.time_s[:, REGULATOR_SLOT], ledger.lifetime_s)
    assert ledger.time_s[0, SLOT_INDEX[("mcu", "sleep")]] == pytest.approx(97.0)
    assert ledger.time_s[1, SLOT_INDEX[("radio", "sleep")]] == pytest.approx(49.25)


def test_ledger_refuses_impossible_duty_cycle():
    ledger = EnergyLedger(1)
    ledger.charge("sensor", "active", np.array([0]), 20.0)
    with pytest.raises(ValueError, match="busy"):
        ledger.close(np.array([10.0]))
    with pytest.raises(ValueError):
        ledger.charge("mcu", "sleep", np.array([0]), 1.0)


def test_energy_checks_for_validate_all_pass():
    """The rows `iotsim validate` reports: every battery and board against its hand calculation."""
    from iotsim.energy.checks import all_checks

    rows = all_checks()
    assert len(rows) >= 15
    failed = [r for r in rows if not r.passed]
    assert not failed, failed
    assert any("lisocl2_aa" in r.name for r in rows) and any("buck" in r.name for r in rows)
