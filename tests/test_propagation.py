"""Path loss models against their closed forms."""

import numpy as np
import pytest

from iotsim.radio.propagation import hata_open_area_db, hata_open_area_log_distance, path_loss_db
from iotsim.scenario import load_scenario


def test_hata_open_area_by_hand():
    # f = 868 MHz, h_b = 30 m, h_m = 1 m, d = 1 km, worked through term by term
    lf = np.log10(868.0)
    a_hm = (1.1 * lf - 0.7) - (1.56 * lf - 0.8)
    urban = 69.55 + 26.16 * lf - 13.82 * np.log10(30.0) - a_hm
    assert hata_open_area_db(1000.0) == pytest.approx(urban - 4.78 * lf**2 + 18.33 * lf - 40.94)
    assert hata_open_area_db(1000.0) == pytest.approx(98.908, abs=1e-3)
    # loss grows by (44.9 - 6.55 log10 30) dB per decade of distance
    assert hata_open_area_db(10_000.0) - hata_open_area_db(1000.0) == pytest.approx(44.9 - 6.55 * np.log10(30))


def test_hata_as_log_distance_is_exact():
    pl0, d0, n = hata_open_area_log_distance()
    d = np.array([500.0, 1000.0, 3000.0, 12000.0])
    np.testing.assert_allclose(path_loss_db(d, pl0, d0, n), hata_open_area_db(d), rtol=0, atol=1e-9)


def test_farm_scenario_uses_the_hata_open_area_numbers():
    from pathlib import Path

    sc = load_scenario(Path(__file__).resolve().parents[1] / "scenarios" / "farm.yaml", check_references=False)
    pl0, d0, n = hata_open_area_log_distance()
    assert sc.network.propagation.pl_d0_db == pytest.approx(pl0, abs=0.01)
    assert sc.network.propagation.d0_m == d0
    assert sc.network.propagation.exponent == pytest.approx(n, abs=0.001)


def test_hata_urban_by_hand_and_in_city_meters():
    from pathlib import Path

    from iotsim.radio.propagation import hata_urban_db, hata_urban_log_distance

    # f = 868 MHz, h_b = 30 m, h_m = 1.5 m, d = 1 km (Hata 1980, small/medium city)
    lf = np.log10(868.0)
    a_hm = (1.1 * lf - 0.7) * 1.5 - (1.56 * lf - 0.8)
    assert hata_urban_db(1000.0) == pytest.approx(69.55 + 26.16 * lf - 13.82 * np.log10(30.0) - a_hm)
    assert hata_urban_db(1000.0) == pytest.approx(125.993, abs=1e-3)
    pl0, d0, n = hata_urban_log_distance()
    d = np.array([500.0, 1000.0, 3000.0])
    np.testing.assert_allclose(path_loss_db(d, pl0, d0, n), hata_urban_db(d), rtol=0, atol=1e-9)
    sc = load_scenario(Path(__file__).resolve().parents[1] / "scenarios" / "city_meters.yaml", check_references=False)
    assert sc.network.propagation.pl_d0_db == pytest.approx(pl0, abs=0.01)
    assert sc.network.propagation.d0_m == d0
    assert sc.network.propagation.exponent == pytest.approx(n, abs=0.001)
