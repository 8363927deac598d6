"""The 802.15.4 mesh as a run's `Link` (iotsim.link.mesh): whole runs conserve frames and energy, relays pay for
what they forward, duty cycling is what keeps nodes alive, the same seed gives the same bytes, dead relays'
frames and orphans are lost with their reasons, and bad settings are refused."""

from pathlib import Path

import numpy as np
import pytest

from iotsim.energy.ledger import SLOT_INDEX
from iotsim.engine import run_scenario, stages
from iotsim.errors import InputError
from iotsim.link import make_link
from iotsim.link.base import LinkNodes, Messages
from iotsim.link.mesh import MeshLink
from iotsim.network.fate import REASON_NAMES, Fate
from iotsim.results import nodes_table, packets_table, summary_table
from iotsim.scenario import load_scenario_text

MESH = """\
name: mesh_small
seed: 5
duration: 6h
fleet:
  - group: field
    count: 30
    device: nrf52840_802154_2xaa
    placement: {kind: uniform, area_m: [80, 60]}
    workload: {signal: farm.soil_climate, sample_period: 5min, window: 12, events_per_day: 4}
    model: farm_soil_int8
    heartbeat: 30min
network:
  technology: ieee802154
  ieee802154: {tx_power_dbm: 0%s}
  propagation: {pl_d0_db: 40.0, d0_m: 1, exponent: 3.0, shadowing_sigma_db: 4}
  gateways:
    - {id: br, position_m: [40, 30]}
policies: [cloud_offload, on_device]
outputs: {plots: false, report: none}
"""
RADIO = [i for (c, _), i in SLOT_INDEX.items() if c == "radio"]


@pytest.fixture(scope="module")
def mesh_result():
    return run_scenario(load_scenario_text(MESH % ""))


def the_tree(result):
    link = make_link(result.scenario.network)
    nodes = stages.fleet_nodes(result.plans, link)
    link.attach(nodes.link, result.scenario.seed)
    return link.topology["tree"]


def test_a_mesh_run_conserves_frames_and_energy(mesh_result):
    nodes = nodes_table(mesh_result)
    np.testing.assert_allclose(nodes.filter(regex=r"^energy_.+_j$").sum(axis=1), nodes.energy_j, rtol=1e-12)
    for out in mesh_result.outcomes:
        np.testing.assert_allclose(out.ledger.time_s[:, RADIO].sum(1), out.ledger.lifetime_s)
    packets = packets_table(mesh_result)
    assert set(packets.loss_reason.unique()) <= set(REASON_NAMES)
    summary = summary_table(mesh_result).set_index("policy")
    lost_columns = [c for c in summary.columns if c.startswith("packets_lost_")]
    assert "packets_lost_no_route" in lost_columns and "packets_lost_collision" not in lost_columns
    for _, row in summary.iterrows():
        assert row.packets_offered == row.packets_delivered + row.packets_lost
        assert row.packets_lost == row[lost_columns].sum()
        assert row.message_delivery_ratio > 0.9


def test_relays_are_charged_for_what_they_forward(mesh_result):
    tree = the_tree(mesh_result)
    n = mesh_result.n_nodes
    children = tree.descendants()[:n]
    for out in mesh_result.outcomes:
        tx = out.tx
        stats = tx.node_stats
        on_air = np.isin(tx.fate, [f for f in Fate if f.went_on_air])
        own_tx = np.bincount(tx.node[on_air], weights=tx.tx_s[on_air], minlength=n)
        # the ledger's TX time of every node: its own frames' copies plus its relay work, nothing else
        np.testing.assert_allclose(out.ledger.time_s[:, SLOT_INDEX[("radio", "tx")]], own_tx + stats["relay_tx_s"],
                                   rtol=1e-9, atol=1e-12)
        forwards = stats["frames_forwarded"]
        assert forwards.sum() > 0 and np.all(forwards[children == 0] == 0)
        assert np.all(stats["relay_tx_s"][forwards > 0] > 0)
        # a relay sends its children's frames and acknowledges them: more relay TX than a leaf's ACK-free zero
        assert np.all(stats["relay_tx_s"][children == 0] == 0)
        # idle listening: ContikiMAC's channel checks, 8 Hz x 2 CCAs of 1/8192 s, for six hours, at least
        assert np.all(stats["idle_listen_s"] >= 6 * 3600 * 8 * 2 / 8192 - 1e-9)


def test_same_seed_same_bytes(mesh_result):
    again = run_scenario(load_scenario_text(MESH % ""))
    assert summary_table(again).equals(summary_table(mesh_result))
    assert packets_table(again).equals(packets_table(mesh_result))


def test_without_duty_cycling_the_radios_listen_all_day(mesh_result):
    always = run_scenario(load_scenario_text(MESH % ", duty_cycling: none"))
    rx = SLOT_INDEX[("radio", "rx")]
    for a, d in zip(always.outcomes, mesh_result.outcomes):
        # every node's radio is on whenever it does not transmit
        on = a.ledger.time_s[:, rx] + a.ledger.time_s[:, SLOT_INDEX[("radio", "tx")]]
        np.testing.assert_allclose(on, a.ledger.lifetime_s, rtol=1e-9)
        assert a.ledger.time_s[:, rx].sum() > 100 * d.ledger.time_s[:, rx].sum()


def test_the_interframe_spacing_switch_reaches_the_mac():
    on = load_scenario_text(MESH % ", duty_cycling: none")
    off = load_scenario_text(MESH % ", duty_cycling: none, interframe_spacing: false")
    assert make_link(on.network).mesh_settings().mac.ifs is True
    assert make_link(off.network).mesh_settings().mac.ifs is False


def line_nodes(n=3, spacing_m=14.0):
    """Nodes on a line toward a border router at the far end (path loss 40 + 30 log10 d)."""
    xy = np.column_stack([np.arange(n) * spacing_m, np.zeros(n)])
    gw = np.array([[n * spacing_m, 0.0]])
    d = np.hypot(*(xy - gw).T)
    rx = (0.0 - (40.0 + 30.0 * np.log10(d)))[:, None]
    return LinkNodes(rx_power_dbm=rx, sf=np.zeros(n, np.int64), startup_s=np.zeros(n), phase_s=np.zeros(n),
                     positions_m=xy)


def mesh_network(n=3, spacing_m=14.0):
    text = MESH % "" + ""
    scenario = load_scenario_text(text.replace("position_m: [40, 30]", f"position_m: [{n * spacing_m}, 0]")
                                  .replace("shadowing_sigma_db: 4", "shadowing_sigma_db: 0"))
    return scenario.network


def test_when_a_relay_dies_its_children_reattach_and_its_queue_is_lost():
    """Nodes 14 m apart on a line to a border router: 0 -> 1 -> 2 -> router. Relay 2 dies at 1,500 s; node 1
    then reaches the router directly (28 m, a weaker but usable link) and node 0 still through node 1."""
    link = MeshLink(mesh_network())
    nodes = line_nodes()
    link.attach(nodes, 1)
    assert link.topology["tree"].parent[:3].tolist() == [1, 2, 3]
    ready = np.arange(10.0, 3000.0, 7.0)
    k = ready.size
    node = np.tile([0, 1, 2], k)[:k]
    order = np.lexsort((ready, node))
    messages = Messages(node=node[order], ready_s=ready[order], app_bytes=np.full(k, 40, np.int64),
                        kind=np.zeros(k, np.int8), window=np.full(k, -1, np.int64), group=np.zeros(k, np.int64))
    stop = np.array([np.inf, np.inf, 1500.0])
    tx = link.transmit(messages, nodes, np.random.default_rng(2), 3600.0, stop)
    after = tx.ready_s > 1501.0
    children = np.isin(tx.node, [0, 1])
    assert (tx.link_fate[after & children] == Fate.DELIVERED).mean() > 0.9
    assert (tx.link_fate[~after] == Fate.DELIVERED).mean() > 0.95
    assert set(np.unique(tx.link_fate)) <= {Fate.DELIVERED, Fate.RELAY_DEAD, Fate.LINK_RETRIES,
                                             Fate.CHANNEL_ACCESS, Fate.PENDING}
    # frames of the dead relay's own after its death are the engine's (node_dead): the link never sends them
    assert np.all(tx.attempts[after & (tx.node == 2)] == 0)
    # the dead relay's steady load covers the 1,500 s it lived, and it forwarded only before
    assert tx.steady.period_s.tolist() == [3600.0, 3600.0, 1500.0]
    assert tx.node_stats["frames_forwarded"][2] > 0 and tx.node_stats["frames_forwarded"][0] == 0


def test_every_mesh_outcome_has_a_fate_with_its_reason():
    from iotsim.link.mesh import _FATE_OF_HOP
    from iotsim.mesh.network import Hop

    reasons = {h: Fate(int(_FATE_OF_HOP[h])).reason for h in Hop}
    assert reasons == {Hop.DELIVERED: "", Hop.CHANNEL_ACCESS: "channel_access", Hop.NO_ACK: "link_retries",
                       Hop.QUEUE_FULL: "queue_full", Hop.NO_ROUTE: "no_route", Hop.PENDING: "pending_at_end",
                       Hop.NODE_DEAD: "relay_dead"}


def test_bad_mesh_settings_are_refused():
    with pytest.raises(InputError, match="channel_check_rate_hz"):
        load_scenario_text(MESH % ", channel_check_rate_hz: 3")
    with pytest.raises(InputError, match="min_be"):
        load_scenario_text(MESH % ", min_be: 6, max_be: 4")
    with pytest.raises(InputError, match="radio"):
        load_scenario_text((MESH % "").replace("nrf52840_802154_2xaa", "nrf52840_sx1262_2xaa"))


def test_mesh_tables_and_tree_plot_are_written(mesh_result, tmp_path):
    from iotsim.results import write_results
    from iotsim.results.tables import MESH_COLUMNS, mesh_hops_table, mesh_table

    mesh = mesh_table(mesh_result)
    assert list(mesh.columns) == MESH_COLUMNS and len(mesh) == 2 * mesh_result.n_nodes
    tree = the_tree(mesh_result)
    for out in mesh_result.outcomes:
        rows = mesh[mesh.policy == out.policy.name]
        np.testing.assert_array_equal(rows.frames_forwarded, out.tx.node_stats["frames_forwarded"])
        # a parent is a node id or the border router's, "" for the orphans
        assert set(rows.parent[tree.parent[:30] == routing_orphan()]) <= {""}
        assert set(rows.parent[tree.parent[:30] == 30]) == {"br"}
    hops = mesh_hops_table(mesh_result)
    summary = summary_table(mesh_result).set_index("policy")
    for policy, part in hops.groupby("policy"):
        # every frame of a routed node is in its route length's row; the orphans' frames in none
        orphans = (tree.parent[:30] == routing_orphan()).sum()
        assert part.nodes.sum() == 30 - orphans
        assert part.frames.sum() <= summary.loc[policy, "packets_offered"]
        assert (part.delivered_ratio > 0.8).all()
    # beyond one hop, frames wait for duty-cycled receivers to wake (the border router is always on). Not
    # asserted: that the median grows from each route length to the next. A node's messages come every 30 or
    # 60 min, whole multiples of the 1/8 s cycle, so each meets its receivers at the same phases every time,
    # and a route length held by two nodes has a median set by two phase draws.
    on = hops[hops.policy == "on_device"].set_index("hops_to_router")
    assert on.index[0] == 1 and len(on) >= 3
    assert on.latency_p50_s.iloc[1:].min() > 5 * on.latency_p50_s.iloc[0]
    out = write_results(mesh_result, tmp_path / "out", plots=True, report=False, packets=True)
    assert (out / "mesh.csv").is_file() and (out / "mesh_hops.csv").is_file() and (out / "mesh_tree.png").is_file()
    assert "hops" in pd_read_parquet(out / "packets.parquet").columns


def routing_orphan():
    from iotsim.mesh.routing import ORPHAN

    return ORPHAN


def pd_read_parquet(path):
    import pandas as pd

    return pd.read_parquet(path)


def test_partition_is_the_first_death_that_cuts_off_a_live_node():
    """A line 0 -> 1 -> 2 -> router (3), node 1 also reaching 3 directly: node 2 dying first cuts no one off
    (1 takes its own link); then node 1 dying cuts node 0 off."""
    from types import SimpleNamespace

    import networkx as nx

    from iotsim.results.metrics import mesh_partition_days

    g = nx.DiGraph()
    g.add_weighted_edges_from([(0, 1, 1.0), (1, 2, 1.0), (2, 3, 1.0), (1, 3, 3.0)])
    result = SimpleNamespace(link_state={"graph": g, "roots": [3], "n": 3})
    day = 86400.0
    assert mesh_partition_days(result, SimpleNamespace(battery_life_s=np.array([900, 500, 100]) * day)) == 500
    # the leaf dying first, then the others together: nobody alive is ever cut off
    assert np.isnan(mesh_partition_days(result, SimpleNamespace(battery_life_s=np.array([100, 500, 500]) * day)))
    # relay 1 first: node 0 loses its only route while alive
    assert mesh_partition_days(result, SimpleNamespace(battery_life_s=np.array([900, 200, 700]) * day)) == 200


# a raw window a minute (5-s samples) on a slightly smaller field, cloud offload only
DYING = ((MESH % "").replace("name: mesh_small", "name: mesh_die").replace("seed: 5", "seed: 6")
         .replace("[80, 60]", "[70, 50]")
         .replace("sample_period: 5min", "sample_period: 5s").replace("[40, 30]", "[35, 25]")
         .replace("[cloud_offload, on_device]", "[cloud_offload]"))


def test_relays_die_first_and_the_mesh_reroutes_around_them(tmp_path, monkeypatch):
    """0.5 mAh packs and a raw window a minute: every node dies within the run, relays earlier than leaves
    (they pay for their children's frames); the engine re-runs the mesh with the deaths, so the survivors route
    around the dead and the nodes left without any route lose their frames (no_route). Idle listening is most
    of every node's budget here, so the deaths fall within minutes of each other and their exact order also
    follows each node's links and phases: the test compares relays with leaves, not places in the order.
    Seed 6 places the nodes so that a relay's death cuts off nodes still alive (asserted: no_route losses)."""
    import shutil

    import yaml

    devices = tmp_path / "devices"
    shutil.copytree(Path(__file__).resolve().parents[1] / "devices", devices)
    battery = devices / "battery" / "2xaa.yaml"
    data = yaml.safe_load(battery.read_text())
    data["capacity_mah"]["value"] = 0.5
    battery.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("IOTSIM_DEVICES", str(devices))
    result = run_scenario(load_scenario_text(DYING))
    out = result.outcomes[0]
    forwarded = out.tx.node_stats["frames_forwarded"]
    died = out.died_at_s
    assert np.isfinite(died).sum() > 20
    leaves = forwarded == 0
    assert np.median(died[~leaves]) < np.median(died[leaves])
    assert died[np.argmax(forwarded)] < np.median(died[leaves])
    # frames: nothing sent after a node's death, every loss with its reason
    tx = out.tx
    after = tx.ready_s >= died[tx.node]
    assert np.all(tx.fate[after] == Fate.NODE_DEAD)
    summary = summary_table(result).iloc[0]
    assert summary.packets_offered == summary.packets_delivered + summary.packets_lost
    assert summary.packets_lost_no_route > 0
    # a dead relay's steady load covers the time it lived, no more (the death times of the link's last pass:
    # the engine's passes settle them to within a second here)
    np.testing.assert_allclose(tx.steady.period_s, np.minimum(died, result.scenario.duration), atol=1.0)
