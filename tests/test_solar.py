"""Solar harvesting (iotsim.energy.solar) and storage (iotsim.energy.storage): a clear-sky day against a hand
integration of the irradiance, the shipped typical years against their source files, and storage that conserves
energy in every step and every day."""

from pathlib import Path

import numpy as np
import pytest

from iotsim.energy import solar
from iotsim.energy.storage import Storage, simulate_storage


def test_a_clear_sky_day_equals_a_hand_integration_of_the_irradiance():
    """A 40 cm^2 panel tilted 40 degrees to the south-east at Greensboro on 21 June, under pvlib's Ineichen clear
    sky: the model takes the hourly values at the middle of each hour; by hand, the plane-of-array irradiance
    DNI cos(AOI) + DHI (1 + cos tilt) / 2 + GHI albedo (1 - cos tilt) / 2 is integrated minute by minute from
    the sun's position, and the energy is area x efficiency x charger efficiency x that integral."""
    from iotsim.validation.checks import clear_sky_day

    panel = solar.Panel(area_cm2=40, efficiency=0.2, tilt_deg=40, azimuth_deg=135, gamma_per_c=0.0,
                        charger_efficiency=0.85, albedo=0.2)
    w, hand_poa_wh_m2 = clear_sky_day("greensboro_nc", 171, panel)  # 21 June of the typical (non-leap) year
    site = w.site
    model_j = (solar.dc_power_w(solar.plane_of_array_w_m2(w, panel), w.temp_c, w.wind_m_s, panel) * 3600
               * panel.charger_efficiency).sum()
    hand_j = 40e-4 * 0.2 * 0.85 * hand_poa_wh_m2 * 3600.0
    assert model_j == pytest.approx(hand_j, rel=0.01)
    assert 10_000 < hand_j < 25_000  # a clear June day on 40 cm^2 at 20 %: about 5 Wh
    # an hour's shift of the weather against the sun would show: the south-east panel favours the morning
    shifted = solar.Weather(site, *(np.roll(a, 1) for a in (w.ghi_w_m2, w.dni_w_m2, w.dhi_w_m2)), w.temp_c,
                            w.wind_m_s, first_hour=w.first_hour)
    shifted_j = (solar.dc_power_w(solar.plane_of_array_w_m2(shifted, panel), w.temp_c, w.wind_m_s, panel) * 3600
                 * panel.charger_efficiency).sum()
    assert abs(shifted_j / hand_j - 1) > 0.02


@pytest.mark.parametrize("key,reader,columns", [
    ("greensboro_nc", "tmy3", ("ghi", "dni", "dhi", "temp_air", "wind_speed")),
    ("sand_point_ak", "tmy3", ("ghi", "dni", "dhi", "temp_air", "wind_speed")),
    ("miami_fl", "tmy2", ("GHI", "DNI", "DHI", "DryBulb", "Wspd")),
])
def test_each_typical_year_is_its_source_file(key, reader, columns):
    """Every hourly value of the shipped table equals the source file's (pvlib ships the NREL files); the year sums
    to the file's annual total."""
    import pvlib
    from pvlib import iotools

    src = Path(pvlib.__file__).parent / "data" / solar.SITES[key].source.split("pvlib/data/")[1].rstrip(")")
    if reader == "tmy3":
        raw, meta = iotools.read_tmy3(src, map_variables=True)
        scale = (1, 1, 1, 1, 1)
    else:
        raw, meta = iotools.read_tmy2(src)
        scale = (1, 1, 1, 10, 10)  # TMY2 stores temperature and wind speed in tenths
    w = solar.load_weather(key)
    ours = (w.ghi_w_m2, w.dni_w_m2, w.dhi_w_m2, w.temp_c, w.wind_m_s)
    for a, col, k in zip(ours, columns, scale):
        np.testing.assert_allclose(a, raw[col].to_numpy() / k, atol=0.051)
    assert w.ghi_w_m2.sum() == raw[columns[0]].sum()
    assert (meta["latitude"], meta["longitude"]) == pytest.approx((w.site.latitude_deg, w.site.longitude_deg))


def test_a_flat_panel_harvests_the_global_horizontal_irradiance():
    """A horizontal panel sees the global horizontal irradiance: over the year its harvest is area x efficiency x
    charger efficiency x the annual GHI (the data's own DNI cos z + DHI agree with GHI to within a percent)."""
    for key in solar.SITES:
        w = solar.load_weather(key)
        panel = solar.Panel(area_cm2=100, efficiency=0.2, tilt_deg=0, gamma_per_c=0.0, charger_efficiency=0.8)
        got = solar.hourly_harvest_j(w, panel).sum()
        assert got == pytest.approx(100e-4 * 0.2 * 0.8 * w.ghi_w_m2.sum() * 3600, rel=0.01)
    # the northern site harvests far less in December than in June; the subtropical one nearly the same
    for key, low in (("sand_point_ak", 0.4), ("miami_fl", 0.7)):
        h = solar.hourly_harvest_j(solar.load_weather(key), solar.Panel(area_cm2=50, efficiency=0.18, tilt_deg=30))
        ratio = h[334 * 24:].sum() / h[151 * 24:181 * 24].sum() * 30 / 31
        assert (ratio < low) if key == "sand_point_ak" else (ratio > low)


def test_temperature_derates_the_panel():
    poa = np.array([800.0, 800.0])
    p = solar.dc_power_w(poa, np.array([0.0, 35.0]), np.array([1.0, 1.0]), solar.Panel(area_cm2=100, efficiency=0.2))
    assert p[1] < p[0]
    from pvlib.temperature import faiman

    cell = faiman(poa, np.array([0.0, 35.0]), np.array([1.0, 1.0]))
    np.testing.assert_allclose(p, 0.01 * 0.2 * 800 * (1 - 0.004 * (cell - 25)))


def storage_case(capacity=50.0, **kw):
    st = Storage(capacity_j=capacity, charge_efficiency=0.9, self_discharge_per_day=0.02, leakage_w=2e-4,
                 initial_fraction=0.5, **kw)
    rng = np.random.default_rng(4)
    days = 20
    sun = np.clip(np.sin(np.linspace(0, 2 * np.pi, 24, endpoint=False) - np.pi / 2), 0, None)
    harvest = np.tile(sun, days) * np.repeat(rng.uniform(0, 16, size=days), 24)  # cloudy and clear days
    demand = rng.uniform(0.5, 3.0, size=(6, 24 * days))
    return st, harvest, demand, simulate_storage(harvest, demand, 3600.0, st)


def test_storage_conserves_energy_every_step_and_day():
    st, harvest, demand, r = storage_case()
    assert np.abs(r.balance_j).max() < 1e-9
    per_day = [r.per_day(x, 24) for x in (r.harvested_j, r.consumed_j, r.charge_loss_j, r.leaked_j, r.clipped_j)]
    stored = r.energy_j[:, 24::24] - r.energy_j[:, :-1:24]
    np.testing.assert_allclose(per_day[0], per_day[1] + stored + per_day[2] + per_day[3] + per_day[4], atol=1e-9)
    # the case exercises every term: shortages, full storage, charge losses, leakage
    assert r.downtime_s(3600.0).sum() > 0 and r.clipped_j.sum() > 0
    np.testing.assert_allclose(r.charge_loss_j, 0.1 * r.harvested_j)
    assert np.all(r.energy_j >= -1e-12) and np.all(r.energy_j <= st.capacity_j + 1e-12)


def test_a_node_off_waits_for_the_restart_threshold():
    st, harvest, demand, r = storage_case(restart_fraction=0.3)
    off = r.up_share == 0
    # every step that starts off either stays off or starts with the storage above the restart level
    was_off = np.zeros_like(off)
    was_off[:, 1:] = r.up_share[:, :-1] < 1
    restarted = was_off & (r.up_share > 0)
    assert np.all(r.energy_j[:, :-1][restarted] >= 0.3 * st.capacity_j - 1e-9)
    # off steps consume nothing; a brown-out step consumes its share of the demand
    assert np.all(r.consumed_j[off] == 0)
    part = (r.up_share > 0) & (r.up_share < 1)
    np.testing.assert_allclose(r.consumed_j[part], demand[part] * r.up_share[part])


def test_storage_refuses_nonsense():
    with pytest.raises(ValueError, match="capacity"):
        Storage(capacity_j=0)
    with pytest.raises(ValueError, match="charge_efficiency"):
        Storage(capacity_j=1, charge_efficiency=1.5)
    with pytest.raises(ValueError, match="negative"):
        simulate_storage(np.array([-1.0]), np.array([[1.0]]), 3600.0, Storage(capacity_j=1))
