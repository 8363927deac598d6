"""`iotsim reproduce casals2017`: the CLI table and JSON rows, the abstract's two figures, the
per-message energy against a hand sum, the simulator run against the closed form, and errors."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from typer.testing import CliRunner

from iotsim.cli import app
from iotsim.errors import InputError
from iotsim.hardware import load_board
from iotsim.reproduce import casals2017 as c

runner = CliRunner()


@pytest.fixture(scope="module")
def repro():
    return c.reproduce()


@pytest.fixture(scope="module")
def profile():
    return c.load_states()


def test_cli_prints_the_table_with_source_and_assumptions():
    result = runner.invoke(app, ["reproduce", "casals2017"], terminal_width=250)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Casals et al. 2017" in out and "life_years" in out and "published_life_years" in out
    assert "abstract: 5 min" in out and "run_scenario" in out
    assert "source: L. Casals" in out and "doi:10.3390/s17102364" in out
    assert out.count("assumption:") == len(c.ASSUMPTIONS)
    listing = runner.invoke(app, ["reproduce", "list"])
    assert listing.exit_code == 0 and "casals2017" in listing.output


def test_cli_json_rows_have_the_columns_and_the_whole_curve():
    result = runner.invoke(app, ["reproduce", "casals2017", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output[result.output.index("["):])
    for row in rows:
        assert set(c.COLUMNS) <= set(row), row
    curve = {(r["sf"], r["period_s"]) for r in rows if r["figure"] == "curve"}
    assert curve == {(sf, p) for sf in c.SFS for p in c.PERIODS_S}
    scored = [r for r in rows if r["published_life_years"] is not None]
    assert {r["figure"] for r in scored} == {"abstract: 5 min", "abstract: infrequent (T -> inf)"}
    for r in scored:
        assert r["life_err"] == pytest.approx((r["life_years"] - r["published_life_years"]) / r["published_life_years"])
    assert all(r["life_err"] is None for r in rows if r["published_life_years"] is None)


def test_unknown_reproduction_exits_2_naming_the_known_ones():
    result = runner.invoke(app, ["reproduce", "casals2071"])
    assert result.exit_code == 2
    assert "unknown reproduction 'casals2071'" in result.output and "casals2017" in result.output


def test_the_abstracts_two_figures_within_tolerance(repro):
    scored = [r for r in repro.rows if r["published_life_years"] is not None]
    assert len(scored) == 3  # 5 min: closed form and run_scenario; the asymptote
    for r in scored:
        assert abs(r["life_err"]) <= c.TOLERANCE, r
    five = next(r for r in scored if r["figure"] == "abstract: 5 min" and r["method"] == "closed form")
    assert (five["sf"], five["period_s"]) == (7, 300.0)


def test_energy_per_message_at_sf7_is_the_hand_sum_of_current_x_duration_x_voltage(profile):
    # SF7, 125 kHz, CR 4/5, 10 B payload + 13 B LoRaWAN overhead = 23 B PHY, CRC, explicit header:
    # payload symbols 8 + ceil((8*23 - 4*7 + 28 + 16) / (4*7)) * 5 = 8 + 8*5 = 48;
    # time on air (8 + 4.25 + 48) x 1.024 ms = 61.696 ms. RX1 12 symbols = 12.288 ms; wait for RX2 1000 - 12.288 ms.
    states_ms_ma = [
        (168.2, 22.1), (83.8, 13.3), (61.696, 83.0), (983.3, 27.0), (12.288, 38.1),
        (1000 - 12.288, 27.1), (33.0, 35.0), (147.4, 13.2), (268.0, 21.0), (38.6, 13.3),
    ]
    hand_j = 3.3 * sum(t * 1e-3 * i * 1e-3 for t, i in states_ms_ma)
    assert c.message_energy_j(profile, 7, 10) == pytest.approx(hand_j, rel=1e-12)
    assert hand_j == pytest.approx(0.2408, abs=1e-4)


def test_asymptote_is_capacity_over_sleep_current_and_life_falls_with_sf_rises_with_period(profile):
    hours = 2400 / 0.045
    assert c.model_life_years(profile, 7, math.inf) == pytest.approx(hours * 3600 / (365.25 * 86400), rel=1e-12)
    for period in c.PERIODS_S:
        lives = [c.model_life_years(profile, sf, period) for sf in c.SFS]
        assert lives == sorted(lives, reverse=True)
    for sf in c.SFS:
        lives = [c.model_life_years(profile, sf, p) for p in c.PERIODS_S] + [c.model_life_years(profile, sf, math.inf)]
        assert lives == sorted(lives)


def test_the_boards_charge_equivalent_startup_matches_the_state_profile(profile):
    """devices/radio/casals2017_radio.yaml folds the states the simulator lacks into its start-up time;
    recompute that from the state profile so the two files cannot drift apart."""
    board = load_board(c.BOARD)
    sleep = profile.sleep_current_a
    d = c.state_durations_s(profile, 7)
    folded = [s for s in profile.states if s.name not in ("transmission", "rx1", "rx2")]
    charge = sum((s.current_a - sleep) * d[s.name] for s in folded)
    wait = next(s for s in profile.states if s.name == "wait_rx1")
    assert board.radio.standby_current_a == pytest.approx(wait.current_a - sleep, rel=1e-12)
    assert board.radio.startup_time_s == pytest.approx(charge / board.radio.standby_current_a, rel=1e-6)
    assert board.mcu.sleep_current_a + board.radio.sleep_current_a == pytest.approx(sleep, rel=1e-12)
    assert board.battery.capacity_mah == 2400  # the abstract's battery


def test_the_simulator_run_matches_the_closed_form_at_its_own_uplink_rate(profile):
    sim = c.simulate(days=2)
    assert sim["limit"] == "energy"  # the ideal cell: neither brown-out nor the shelf life binds
    assert sim["uplinks"] in (575, 576)  # one raw window every 5 min, the last may still be open at the end
    closed = c.model_life_years(profile, 7, sim["run_s"] / sim["uplinks"], sim["payload_bytes"])
    # the only modelled difference is the receive windows (simulator: 8 symbols each at the RX1 current):
    # per uplink 38.055 mA x (8.192 + 32.768) ms against 38.055 x 12.288 + 34.955 x 33 ms, 0.09 % of its charge
    assert sim["life_years"] == pytest.approx(closed, rel=2e-3)
    assert sim["life_years"] != pytest.approx(closed, rel=1e-6)  # not the same formula twice


def test_a_malformed_state_profile_names_the_state(tmp_path, profile):
    data = yaml.safe_load(profile.path.read_text())
    del data["states"][3]["duration_ms"]
    bad = tmp_path / "states.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError, match=r"states\[3\]"):
        c.load_states(bad)


def test_every_curve_point_respects_the_eu868_duty_cycle_as_the_assumptions_say(profile):
    shortest = min(c.PERIODS_S)
    for sf in c.SFS:
        assert c.state_durations_s(profile, sf)["transmission"] / shortest <= 0.01
