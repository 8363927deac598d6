"""The mesh's compiled event loop (iotsim/mesh/_mesh_loop.c) gives its Python twin's bytes.

The Python loop (`simulate_mesh(..., compiled=False)`) is the reference. Both run the same meshes here, covering
each mechanism: always-on radios and ContikiMAC with and without phase lock, fading on and off, hidden
terminals, full queues, orphans, relays dying with and without rerouting (two at the same instant), and whole
runs through the Link. Every array of the result must be equal to the last bit, and the generator must be left
in the same state."""

import numpy as np
import pytest

from iotsim.engine import run_scenario
from iotsim.mesh import loop_native
from iotsim.mesh import network as mn
from iotsim.mesh import routing
from iotsim.mesh.csma import MacSettings
from iotsim.results import nodes_table, packets_table, summary_table
from iotsim.scenario import load_scenario_text
from test_link_mesh import MESH
from test_mesh_network import ALWAYS_ON, ORPHAN, ROOT, diamond, grid_mesh, line

pytestmark = pytest.mark.skipif(loop_native.lib() is None, reason=f"no compiled loop: {loop_native.load_error}")

FIELDS = ("fate", "own_tx_s", "own_rx_s", "delivered_s", "hops", "lost_at", "hop_frame", "hop_sender",
          "hop_receiver", "hop_start_s", "hop_end_s", "hop_copies", "tx_s", "rx_s", "forwarded", "overheard",
          "transmissions", "acks", "collisions", "cca", "cca_busy", "always_on")


def both(*args, seed=8, **kwargs):
    """Run the mesh with each loop from the same generator state; assert identical results; return one."""
    out = []
    for compiled in (False, True):
        rng = np.random.default_rng(seed)
        r = mn.simulate_mesh(*args, rng, **kwargs, compiled=compiled)
        out.append((r, rng.bit_generator.state))
    (a, state_a), (b, state_b) = out
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert x.tobytes() == y.tobytes(), f"{name} differs"
    assert a.duration_s == b.duration_s and a.notes == b.notes
    assert state_a == state_b  # the same draws, in number and order
    return a


def traffic(nodes, n, horizon_s, seed=7):
    rng = np.random.default_rng(seed)
    return rng.integers(0, nodes, n), np.sort(rng.uniform(0, horizon_s, n))


@pytest.mark.parametrize("fading", [True, False])
@pytest.mark.parametrize("rdc", [None, mn.ContikiMac(), mn.ContikiMac(phase_lock=False)],
                         ids=["always_on", "contikimac", "no_phase_lock"])
def test_a_grid_mesh(rdc, fading):
    power, tree = grid_mesh()
    node, ready = traffic(power.shape[0] - 1, 400, 250.0)
    r = both(power, tree.parent, node, ready, 60, 300.0, settings=mn.MeshSettings(rdc=rdc, fading=fading))
    counts = np.bincount(r.fate, minlength=len(mn.Hop))
    assert counts[mn.Hop.DELIVERED] > 300 and r.hop_frame.size > 400  # frames went several hops
    if rdc is not None:
        assert r.overheard.sum() > 0


def test_equal_phases_and_late_times():
    """Every node checking the channel at the same instants (wake-ups at the same times: their order decides),
    and a run whose clock reads 10^8 s (where the C loop takes no shortcut)."""
    power, tree = grid_mesh()
    node, ready = traffic(power.shape[0] - 1, 300, 250.0)
    r = both(power, tree.parent, node, ready, 60, 300.0, settings=mn.MeshSettings(), phase_s=np.zeros(13))
    assert r.overheard.sum() > 0
    both(power, tree.parent, node, ready + 1e8, 60, 1e8 + 300.0, settings=mn.MeshSettings(rdc=mn.ContikiMac(
        phase_lock=False)))


def test_a_busy_mesh_with_every_kind_of_loss():
    """Saturated relays: channel access failures, missing acknowledgements and full queues together."""
    power, tree = grid_mesh(rows=4, cols=5)
    node, ready = traffic(power.shape[0] - 1, 3000, 100.0, seed=3)
    r = both(power, tree.parent, node, ready, 110, 120.0, settings=mn.MeshSettings(mac=MacSettings(max_be=4)),
             seed=2)
    seen = set(np.unique(r.fate).tolist())
    assert {mn.Hop.DELIVERED, mn.Hop.QUEUE_FULL, mn.Hop.CHANNEL_ACCESS, mn.Hop.NO_ACK} <= seen


def test_hidden_terminals():
    power = np.array([[0.0, -120.0, -60.0], [-120.0, 0.0, -60.0], [-60.0, -60.0, 0.0]])
    node, ready = traffic(2, 3000, 60.0, seed=4)
    r = both(power, [2, 2, ROOT], node, ready, 100, 70.0, settings=mn.MeshSettings(rdc=None), seed=5)
    assert r.collisions.sum() > 0


@pytest.mark.parametrize("settings", [ALWAYS_ON, mn.MeshSettings()], ids=["always_on", "contikimac"])
def test_a_full_queue(settings):
    power, parent = line(1)
    r = both(power, parent, np.zeros(30, int), np.zeros(30), 60, 10.0, settings=settings)
    assert (r.fate == mn.Hop.QUEUE_FULL).sum() == 30 - mn.QUEUE_FRAMES


def test_orphans_and_a_long_line_with_given_phases():
    power, parent = line(3, spacing_dbm=-62.0)
    node, ready = traffic(4, 300, 500.0, seed=9)
    r = both(power, parent, node, ready, 80, 600.0, settings=mn.MeshSettings(), phase_s=np.linspace(0, 0.1, 5))
    assert r.hops.max() == 4
    parent = parent.copy()
    parent[1] = ORPHAN
    r = both(power, parent, node, ready, 80, 600.0, settings=mn.MeshSettings())
    assert set(r.lost_at[r.fate == mn.Hop.NO_ROUTE]) == {1}


@pytest.mark.parametrize("reroute", [True, False])
def test_relays_dying(reroute):
    power, graph = diamond()
    tree = routing.dodag(graph, [3])
    ready = np.append(np.arange(1.0, 200.0, 0.7), np.full(6, 99.99))
    node = np.append(np.zeros(ready.size - 6, dtype=int), np.ones(6, dtype=int))  # a burst at the relay
    death = np.array([np.inf, 100.0, np.inf, np.inf])
    r = both(power, tree.parent, node, ready, 60, 220.0, settings=mn.MeshSettings(), death_s=death,
             reroute=(lambda alive: routing.dodag(graph, [3], alive).parent) if reroute else None)
    assert (r.fate == mn.Hop.NODE_DEAD).sum() > 0 and not np.any((r.hop_sender == 1) & (r.hop_start_s >= 100.0))
    if not reroute:
        assert (r.fate == mn.Hop.NO_ACK).sum() > 0  # the leaf strobes its dead parent


def test_two_relays_dying_at_the_same_instant_leave_orphans():
    power, tree = grid_mesh()
    graph = routing.link_graph(routing.link_etx(power, 60))
    root = power.shape[0] - 1
    parent = routing.dodag(graph, [root]).parent
    children = np.bincount(parent[parent >= 0], minlength=root + 1)[:root]
    relays, leaf = np.flatnonzero(children)[:2], np.flatnonzero(children == 0)[0]
    death = np.full(root + 1, np.inf)
    death[relays] = 150.0
    death[leaf] = 200.0  # and a leaf later
    node, ready = traffic(root, 600, 280.0, seed=11)
    node, ready = np.append(node, np.repeat(relays, 6)), np.append(ready, np.full(12, 149.99))  # bursts
    r = both(power, parent, node, ready, 60, 300.0, settings=mn.MeshSettings(), death_s=death,
             reroute=lambda alive: routing.dodag(graph, [root], alive).parent)
    assert set(r.lost_at[r.fate == mn.Hop.NODE_DEAD]) >= set(relays.tolist())
    assert not np.any(np.isin(r.hop_sender, relays) & (r.hop_start_s >= 150.0))


def test_the_compiled_loop_needs_numpys_pcg64():
    power, parent = line(0)
    rng = np.random.Generator(np.random.MT19937(1))
    with pytest.raises(RuntimeError, match="PCG64"):
        mn.simulate_mesh(power, parent, [0], [0.5], 60, 1.0, rng, ALWAYS_ON, compiled=True)
    r = mn.simulate_mesh(power, parent, [0], [0.5], 60, 1.0, rng, ALWAYS_ON)  # the Python loop then
    assert r.fate.tolist() == [mn.Hop.DELIVERED]


def test_pythons_float_modulo():
    """The C loop's `%` of a time by the cycle is CPython's float_rem, bit for bit."""
    rng = np.random.default_rng(0)
    cycle = 1 / 8
    x = np.concatenate([rng.uniform(-1, 90000, 20000), np.arange(-40, 40) * cycle,
                        np.nextafter(np.arange(1, 40) * cycle, 0), np.nextafter(np.arange(1, 40) * cycle, 1),
                        [0.0, -0.0, 1e7 + 0.3, 3e8 + 0.1, -5e-324]])
    k = loop_native.lib()
    assert all(k.iotsim_mesh_py_mod(float(v), cycle) == float(v) % cycle and
               np.signbit(k.iotsim_mesh_py_mod(float(v), cycle)) == np.signbit(float(v) % cycle) for v in x)
    y = 0.1 + 1e-9  # a cycle that is no power of two
    assert all(k.iotsim_mesh_py_mod(float(v), y) == float(v) % y for v in x[:5000])


def run_both(text, monkeypatch):
    compiled = run_scenario(load_scenario_text(text))
    with monkeypatch.context() as m:
        m.setattr(loop_native, "unsupported", lambda rng: "the Python loop, for the test")
        python = run_scenario(load_scenario_text(text))
    return compiled, python


def test_whole_runs_are_the_same_with_either_loop(monkeypatch):
    compiled, python = run_both(MESH % "", monkeypatch)
    assert summary_table(compiled).equals(summary_table(python))
    assert packets_table(compiled).equals(packets_table(python))
    assert nodes_table(compiled).equals(nodes_table(python))
