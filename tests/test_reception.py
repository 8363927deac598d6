"""Gateway reception as ns-3 lorawan models it: sensitivity, half duplex, demodulator paths, interference."""

import math

import numpy as np
import pytest

from iotsim.network import reception
from iotsim.network.fate import Fate
from iotsim.validation.checks import erlang_b, inter_sf_cases
from iotsim.network.reception import (
    CROCE_SIR_DB, GOURSAUD_SIR_DB, Arrival, Frames, PathAllocator, ReceptionModel, arrive, decode,
    resolve_receptions,
)

D, BS, COL, DB, GT = (Fate.DELIVERED, Fate.BELOW_SENSITIVITY, Fate.COLLISION, Fate.DEMODULATORS_BUSY,
                      Fate.GATEWAY_TRANSMITTING)


def _resolve(start, air, ch, sf, power, sens=-120.0, model=ReceptionModel(), **kw):
    """One node per frame; `power` is (frames,) or (frames, gateways) dBm."""
    power = np.asarray(power, dtype=float)
    if power.ndim == 1:
        power = power[:, None]
    n = len(start)
    return resolve_receptions(np.asarray(start, float), np.asarray(air, float), np.asarray(ch), np.asarray(sf),
                              np.arange(n), power, np.full(n, sens), model, **kw)


def _reference(start, air, ch, sf, node, node_power, sens, model, offset=None, gateway_tx=None):
    """Frame by frame, gateway by gateway, straight from the model's definition (slow)."""
    n, n_gw = len(start), node_power.shape[1]
    end = start + air
    p = node_power[node] + (0.0 if offset is None else offset[:, None])
    iso = model.isolation_db()
    tx = gateway_tx or [(np.zeros(0), np.zeros(0))] * n_gw
    rank = {BS: 0, GT: 1, DB: 2, COL: 3}
    fate = np.full((n, n_gw), -1)  # per gateway: a Fate code, or -1 when decoded
    locked = np.zeros((n, n_gw), dtype=bool)
    order = np.argsort(start, kind="stable")
    for g in range(n_gw):
        held = []
        ts, te = tx[g]
        for f in order:
            if p[f, g] < sens[f]:
                fate[f, g] = BS
                continue
            if any(a <= start[f] < b for a, b in zip(ts, te)):
                fate[f, g] = GT
                continue
            held = [x for x in held if x > start[f]]
            if model.demodulator_paths is not None and len(held) >= model.demodulator_paths:
                fate[f, g] = DB
                continue
            held.append(end[f])
            locked[f, g] = True
            if any(a < end[f] and start[f] < b for a, b in zip(ts, te)):
                fate[f, g] = GT
                continue
            energy = np.zeros(6)
            for k in range(n):
                if k == f or ch[k] != ch[f] or not (start[k] < end[f] and start[f] < end[k]):
                    continue
                if model.inter_sf == "orthogonal" and sf[k] != sf[f]:
                    continue
                energy[sf[k] - 7] += 10 ** (p[k, g] / 10) * (min(end[f], end[k]) - max(start[f], start[k]))
            signal = 10 ** (p[f, g] / 10) * (end[f] - start[f])
            destroyed = False
            for s in range(6):
                if energy[s] > 0:
                    sir = 10 * math.log10(signal / energy[s])
                    destroyed |= sir < iso[sf[f] - 7, s] or (s == sf[f] - 7 and sir <= 0)
            fate[f, g] = COL if destroyed else -1
    decoded = fate == -1
    status = np.where(decoded.any(axis=1), D, 0)
    for f in range(n):
        if not decoded[f].any():
            status[f] = max((Fate(c) for c in fate[f]), key=rank.get) if n_gw else BS
    best = np.where(decoded.any(axis=1), np.argmax(np.where(decoded, p, -np.inf), axis=1), -1)
    busy = (locked * air[:, None]).sum(axis=0)
    return status, best, decoded.sum(axis=1), busy, locked.sum(axis=0)


def _random_scenario(seed, n=300, n_nodes=40, n_gw=3, channels=2, sfs=(7, 8), tx_intervals=0, offsets=False):
    rng = np.random.default_rng(seed)
    node = rng.integers(0, n_nodes, n)
    node_power = rng.uniform(-125, -95, (n_nodes, n_gw))
    start = np.round(rng.random(n) * 10, 3)  # some frames start at the same instant
    sf = rng.choice(sfs, n)
    air = 0.03 * 2.0 ** (sf - 7) * rng.uniform(0.8, 1.2, n)
    ch = rng.integers(0, channels, n).astype(np.int8)
    sens = -118.0 - 2.5 * (sf - 7)
    offset = rng.uniform(-6, 0, n) if offsets else None
    gateway_tx = None
    if tx_intervals:
        gateway_tx = []
        for _ in range(n_gw):
            ts = np.sort(rng.random(tx_intervals) * 10)
            gateway_tx.append((ts, ts + rng.uniform(0.05, 0.3, tx_intervals)))
    return start, air, ch, sf, node, node_power, sens, offset, gateway_tx


# ---------------------------------------------------------------- analytic checks


@pytest.mark.parametrize("load", [0.05, 0.1, 0.25, 0.5, 0.75, 1.0])
def test_pure_aloha_delivery_is_exp_minus_2g(load):
    rng = np.random.default_rng(int(load * 100))
    n, air = 40_000, 0.1
    start = np.cumsum(rng.exponential(air / load, n))
    model = ReceptionModel(capture_threshold_db=math.inf, inter_sf="orthogonal", demodulator_paths=None)
    r = _resolve(start, np.full(n, air), np.zeros(n, int), np.full(n, 7), np.full(n, -100.0), model=model)
    delivered = (r.status == D).mean()
    assert delivered == pytest.approx(math.exp(-2 * load), abs=0.02)
    assert set(np.unique(r.status)) <= {D, COL}


@pytest.mark.parametrize("paths,offered", [(1, 0.3), (1, 1.0), (2, 1.0), (2, 3.0), (8, 5.0), (8, 9.0)])
def test_demodulator_losses_follow_erlang_b(paths, offered):
    rng = np.random.default_rng(paths * 100 + int(offered * 10))
    n, air = 40_000, 1.0
    start = np.cumsum(rng.exponential(air / offered, n))
    model = ReceptionModel(inter_sf="orthogonal", demodulator_paths=paths)
    # every frame on its own channel: no interference, only the paths limit reception
    r = _resolve(start, np.full(n, air), np.arange(n), np.full(n, 7), np.full(n, -100.0), model=model)
    busy = (r.status == DB).mean()
    assert busy == pytest.approx(erlang_b(paths, offered), abs=0.02)
    assert set(np.unique(r.status)) <= {D, DB}
    assert r.frames_locked[0] == (r.status == D).sum()
    assert r.path_busy_s[0] == pytest.approx(r.frames_locked[0] * air, rel=1e-9)


# ---------------------------------------------------------------- interference


def test_croce_matrix_is_the_ns3_encoding():
    assert CROCE_SIR_DB[0, 1:].tolist() == [-8, -9, -9, -9, -9]
    assert CROCE_SIR_DB[5, :5].tolist() == [-25, -25, -25, -24, -23]
    assert GOURSAUD_SIR_DB[1, 0] == -24 and GOURSAUD_SIR_DB[0, 5] == -20
    iso = ReceptionModel(capture_threshold_db=6.0).isolation_db()
    assert (np.diag(iso) == 6.0).all() and iso[2, 4] == -14
    assert (ReceptionModel(inter_sf="orthogonal").isolation_db()[0, 1:] == -np.inf).all()


@pytest.mark.parametrize("matrix", ["croce", "goursaud"])
def test_inter_sf_threshold_for_every_pair(matrix):
    # one scenario per channel: a frame fully covered by one interferer of another SF, at SIR
    # threshold +- 0.1 dB
    table = CROCE_SIR_DB if matrix == "croce" else GOURSAUD_SIR_DB
    start, air, ch, sf, power, cases = inter_sf_cases(table)
    for inter in (matrix, "orthogonal"):
        r = _resolve(start, air, ch, sf, power, sens=-200.0, model=ReceptionModel(inter_sf=inter, demodulator_paths=None))
        for k, (s, t, delta) in enumerate(cases):
            expected = D if (delta > 0 or inter == "orthogonal") else COL
            assert r.status[2 * k] == expected, (inter, s, t, delta)


def test_interference_adds_up_over_interferers():
    # ten co-SF interferers each 10 dB below the frame: each alone is harmless at 6 dB, together
    # they are 0 dB below it
    model = ReceptionModel(demodulator_paths=None)
    n = 11
    r = _resolve(np.zeros(n), np.full(n, 0.1), np.zeros(n, int), np.full(n, 9), [-100.0] + [-110.0] * 10,
                 model=model)
    assert r.status[0] == COL
    for k in range(1, n):  # pairwise it survives
        r = _resolve([0.0, 0.0], [0.1, 0.1], [0, 0], [9, 9], [-100.0, -110.0], model=model)
        assert r.status[0] == D


def test_capture_threshold_zero_means_strictly_strongest_wins():
    model = ReceptionModel(capture_threshold_db=0.0)
    r = _resolve([0.0, 0.0], [0.1, 0.1], [0, 0], [7, 7], [-100.0, -100.0], model=model)
    assert list(r.status) == [COL, COL]
    r = _resolve([0.0, 0.0], [0.1, 0.1], [0, 0], [7, 7], [-99.99, -100.0], model=model)
    assert list(r.status) == [D, COL]


def test_no_capture_destroys_both():
    model = ReceptionModel(capture_threshold_db=math.inf)
    r = _resolve([0.0, 0.09], [0.1, 0.1], [0, 0], [7, 7], [-80.0, -120.0], model=model)
    assert list(r.status) == [COL, COL]


def test_partial_overlap_counts_energy_over_the_overlap():
    # the interferer covers half the frame: its energy is halved, worth 10 log10(2) dB of SIR
    at_threshold = -100.0 - 6.0 + 10 * math.log10(2)  # about -102.99 dBm
    for delta, expected in ((0.05, COL), (-0.05, D)):
        r = _resolve([0.0, 0.5], [1.0, 1.0], [0, 0], [7, 7], [-100.0, at_threshold + delta])
        assert r.status[0] == expected, delta


def test_capture_effect_and_overlap_rules():
    r = _resolve([0.0, 0.05], [0.1, 0.1], [0, 0], [7, 7], [-90, -100])
    assert list(r.status) == [D, COL]
    assert _resolve([0, 0.05], [0.1, 0.1], [0, 0], [7, 7], [-100, -101]).status.tolist() == [COL, COL]
    # other channel, and back to back (the second starts exactly when the first ends)
    assert list(_resolve([0, 0.05], [0.1, 0.1], [0, 1], [7, 7], [-100, -100]).status) == [D, D]
    assert list(_resolve([0, 0.1], [0.1, 0.1], [0, 0], [7, 7], [-100, -100]).status) == [D, D]
    # orthogonal SFs never interfere; with Croce an SF8 frame 30 dB stronger destroys an SF7 one
    orth = ReceptionModel(inter_sf="orthogonal")
    assert list(_resolve([0, 0.05], [0.1, 0.1], [0, 0], [7, 8], [-100, -70], model=orth).status) == [D, D]
    assert list(_resolve([0, 0.05], [0.1, 0.1], [0, 0], [7, 8], [-100, -70]).status) == [COL, D]


def test_long_frame_collides_with_a_later_short_one_beyond_its_neighbour():
    r = _resolve([0.0, 0.1, 0.5], [1.0, 0.1, 0.1], [0, 0, 0], [7, 7, 7], [-100, -80, -100])
    assert list(r.status) == [COL, D, COL]


def test_tx_power_offset_is_added_to_the_node_row():
    power = np.array([[-100.0], [-100.0]])
    r = resolve_receptions(np.zeros(2), np.full(2, 0.1), np.zeros(2, int), np.full(2, 7), np.array([0, 1]), power,
                           np.full(2, -120.0), tx_power_offset_db=np.array([0.0, -7.0]))
    assert list(r.status) == [D, COL]
    r = resolve_receptions(np.zeros(1), np.full(1, 0.1), np.zeros(1, int), np.full(1, 7), np.array([0]), power,
                           np.full(1, -120.0), tx_power_offset_db=np.array([-25.0]))
    assert r.status[0] == BS


# ---------------------------------------------------------------- sensitivity, gateways, half duplex, paths


def test_below_sensitivity_and_gateway_diversity():
    r = _resolve([0.0], [0.1], [0], [7], [-130.0])
    assert r.status[0] == BS and r.gateway[0] == -1 and r.frames_locked[0] == 0
    # collision at gateway 0, but gateway 1 hears frame 0 much stronger: delivered via gateway 1
    r = _resolve([0.0, 0.05], [0.1, 0.1], [0, 0], [7, 7], [[-100.0, -90.0], [-100.0, -110.0]])
    assert list(r.status) == [D, COL]
    assert r.gateway[0] == 1 and r.gateways_decoding[0] == 1


def test_inaudible_frames_still_interfere_but_take_no_path():
    model = ReceptionModel(demodulator_paths=1)
    # frame 1 is below sensitivity: it takes no path (frame 2 still gets one) but destroys frame 0
    r = _resolve([0.0, 0.01, 0.02], [0.1, 0.1, 0.1], [0, 0, 1], [7, 7, 7], [-119.0, -121.0, -100.0],
                 model=model)
    assert list(r.status) == [COL, BS, DB]
    r = _resolve([0.0, 0.01], [0.1, 0.1], [0, 1], [7, 7], [-100.0, -121.0], model=model)
    assert list(r.status) == [D, BS]


def test_strongest_decoding_gateway_is_reported():
    r = _resolve([0.0], [0.1], [0], [7], [[-110.0, -95.0, -100.0]])
    assert r.gateway[0] == 1 and r.gateways_decoding[0] == 3


def test_half_duplex_loses_the_frame_at_the_transmitting_gateway_only():
    power = [[-100.0, -105.0]]
    tx = [(np.array([0.05]), np.array([0.2])), (np.zeros(0), np.zeros(0))]
    r = _resolve([0.0], [0.1], [0], [7], power, gateway_tx=tx)
    assert r.status[0] == D and r.gateway[0] == 1 and r.gateways_decoding[0] == 1
    assert r.frames_locked.tolist() == [1, 1]  # it locked a path at gateway 0 before the TX began
    r = _resolve([0.0], [0.1], [0], [7], [[-100.0, -130.0]], gateway_tx=tx)
    assert r.status[0] == GT
    # a frame ending exactly when the TX starts, or starting exactly when it ends, is fine
    r = _resolve([-0.05, 0.2], [0.1, 0.1], [0, 1], [7, 7], [[-100.0, -130.0]] * 2, gateway_tx=tx)
    assert list(r.status) == [D, D]


def test_frame_arriving_during_tx_takes_no_path():
    model = ReceptionModel(demodulator_paths=1)
    tx = [(np.array([0.0]), np.array([0.1]))]
    # frame 0 arrives during TX (lost, no path), frame 1 after it: the only path is free
    r = _resolve([0.05, 0.15], [0.5, 0.1], [0, 1], [7, 7], [-100.0, -100.0], model=model, gateway_tx=tx)
    assert list(r.status) == [GT, D]
    assert r.frames_locked[0] == 1 and r.path_busy_s[0] == pytest.approx(0.1)


def test_status_is_the_furthest_stage_over_gateways():
    model = ReceptionModel(demodulator_paths=1)
    no, loud = -200.0, -90.0
    frames = [  # start, air, channel, power at gateways 0, 1, 2
        (0.0, 1.0, 0, [loud, loud, loud]),  # A: locks every gateway's only path
        (0.5, 0.2, 1, [no, loud, no]),  # B: busy at 1, inaudible elsewhere
        (2.0, 0.2, 1, [no, loud, no]),  # C: gateway 1 transmits over it
        (2.9, 1.0, 2, [no, loud, no]),  # F: holds gateway 1's path
        (3.0, 0.2, 3, [loud, loud, no]),  # D: locks gateway 0 (destroyed there by E), busy at 1
        (3.05, 0.2, 3, [loud, no, no]),  # E: busy at gateway 0, interferes with D
    ]
    start, air, ch, power = (np.array([f[k] for f in frames]) for k in range(4))
    tx = [(np.zeros(0), np.zeros(0)), (np.array([1.9]), np.array([2.5])), (np.zeros(0), np.zeros(0))]
    r = _resolve(start, air, ch, np.full(6, 7), power, model=model, gateway_tx=tx)
    assert list(r.status) == [D, DB, GT, D, COL, DB]
    assert r.gateways_decoding.tolist() == [3, 0, 0, 1, 0, 0]
    assert r.frames_locked.tolist() == [2, 2, 1]  # gateway 0: A, D; gateway 1: A, F; gateway 2: A
    np.testing.assert_allclose(r.path_busy_s, [1.2, 2.0, 1.0])


def test_path_allocator_in_pieces_equals_one_call():
    rng = np.random.default_rng(11)
    n, n_gw = 5000, 3
    start = np.sort(np.round(rng.random(n) * 100, 2))
    air = rng.uniform(0.05, 2.0, n)
    cand = rng.random((n, n_gw)) < 0.7
    one = PathAllocator(n_gw, 3)
    whole = one.allocate(start, air, cand)
    pieces = PathAllocator(n_gw, 3)
    cuts = np.unique(np.r_[0, np.sort(rng.integers(0, n, 40)), n])
    parts = [pieces.allocate(start[a:b], air[a:b], cand[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert pieces.frames_locked.tolist() == one.frames_locked.tolist()
    assert pieces.path_busy_s.tobytes() == one.path_busy_s.tobytes()
    assert 0 < whole[cand].mean() < 1  # congested: some frames were turned away
    with pytest.raises(ValueError):
        pieces.allocate(start[:1], air[:1], cand[:1])  # earlier than what was fed


# ---------------------------------------------------------------- against the definition


@pytest.mark.parametrize("block_elements", [1, 7, 1 << 22])
@pytest.mark.parametrize("case", [
    dict(model=ReceptionModel(inter_sf="orthogonal", demodulator_paths=None)),
    dict(model=ReceptionModel(demodulator_paths=2), sfs=(7, 8, 9, 12), offsets=True),
    dict(model=ReceptionModel(capture_threshold_db=0.0, demodulator_paths=3), sfs=(7, 10), tx_intervals=4),
    dict(model=ReceptionModel(capture_threshold_db=math.inf, inter_sf="goursaud", demodulator_paths=1),
         sfs=(7, 8, 11), tx_intervals=2, offsets=True),
])
def test_matches_the_definition_frame_by_frame(monkeypatch, block_elements, case):
    monkeypatch.setattr(reception, "BLOCK_ELEMENTS", block_elements)
    case = dict(case)
    model = case.pop("model")
    start, air, ch, sf, node, node_power, sens, offset, gateway_tx = _random_scenario(
        block_elements % 97 + len(case), **case)
    r = resolve_receptions(start, air, ch, sf, node, node_power, sens, model, tx_power_offset_db=offset,
                           gateway_tx=gateway_tx)
    status, best, count, busy, locked = _reference(start, air, ch, sf, node, node_power, sens, model, offset,
                                                   gateway_tx)
    np.testing.assert_array_equal(r.status, status)
    np.testing.assert_array_equal(r.gateway, best)
    np.testing.assert_array_equal(r.gateways_decoding, count)
    np.testing.assert_array_equal(r.frames_locked, locked)
    np.testing.assert_allclose(r.path_busy_s, busy, rtol=1e-9)
    assert r.status.dtype == np.int8 and r.gateway.dtype == np.int16 and r.gateways_decoding.dtype == np.int16
    assert len(set(np.unique(r.status))) >= 2  # the scenario exercises several outcomes


# ---------------------------------------------------------------- incremental use


@pytest.mark.parametrize("seed", [1, 2])
def test_batches_in_time_order_equal_one_call(seed):
    rng = np.random.default_rng(seed)
    n, n_nodes, n_gw = 3000, 200, 9
    start, air, ch, sf, node, node_power, sens, offset, gateway_tx = _random_scenario(
        seed, n=n, n_nodes=n_nodes, n_gw=n_gw, channels=3, sfs=(7, 8, 9, 10, 11, 12), tx_intervals=15,
        offsets=True)
    start = start * 3  # 30 s
    gateway_tx = [(a * 3, b * 3) for a, b in gateway_tx]
    model = ReceptionModel(demodulator_paths=2)
    one = resolve_receptions(start, air, ch, sf, node, node_power, sens, model, tx_power_offset_db=offset,
                             gateway_tx=gateway_tx)

    frames = Frames(start, air, ch, sf, node, sens, offset)
    end = frames.end_s
    allocator = PathAllocator(n_gw, model.demodulator_paths)
    arrival = Arrival.empty(n, n_gw)
    status = np.full(n, -1, dtype=np.int8)
    gateway = np.full(n, -2, dtype=np.int16)
    decoding = np.full(n, -2, dtype=np.int16)
    by_start = np.argsort(start, kind="stable")
    cuts = np.r_[np.sort(rng.uniform(start.min(), end.max(), 60)), np.inf]
    prev = -np.inf
    for cut in cuts:
        # frames that started since the last cut take (or not) their demodulator paths
        new = by_start[(start[by_start] >= prev) & (start[by_start] < cut)]
        arrival.put(new, arrive(frames.take(new), node_power, allocator, gateway_tx))
        # frames that ended since the last cut are resolved against everything started before the cut
        context = np.flatnonzero(start < cut)
        targets = np.flatnonzero((end[context] >= prev) & (end[context] < cut))
        if targets.size:
            done = context[targets]
            dec = decode(frames.take(context), arrival.take(done), node_power, model, targets, gateway_tx)
            status[done], gateway[done], decoding[done] = dec.status, dec.gateway, dec.gateways_decoding
        prev = cut
    assert status.tobytes() == one.status.tobytes()
    assert gateway.tobytes() == one.gateway.tobytes()
    assert decoding.tobytes() == one.gateways_decoding.tobytes()
    assert allocator.path_busy_s.tobytes() == one.path_busy_s.tobytes()
    assert allocator.frames_locked.tobytes() == one.frames_locked.tobytes()
    assert {D, COL, DB} <= set(np.unique(one.status))


def test_empty_input_and_model_validation():
    r = resolve_receptions(np.zeros(0), np.zeros(0), np.zeros(0, int), np.zeros(0, int), np.zeros(0, int),
                           np.zeros((3, 2)), np.zeros(0))
    assert r.status.shape == (0,) and r.frames_locked.tolist() == [0, 0]
    with pytest.raises(ValueError):
        ReceptionModel(inter_sf="perfect")
    with pytest.raises(ValueError):
        ReceptionModel(demodulator_paths=0)


# ---------------------------------------------------------------- C kernels against the Python path


def _kernels_or_skip():
    from iotsim.network import native
    if native.lib() is None:
        pytest.skip(f"C kernels unavailable: {native.load_error}")
    return native


def _congested_allocation(seed, paths, n_gw=4, n=4000):
    rng = np.random.default_rng(seed)
    # bursts of frames starting together and a steady load of a few times the paths
    start = np.sort(np.round(rng.random(n) * n * 0.25 / paths, 2))
    air = rng.choice([0.06, 0.11, 0.2, 0.37, 0.74, 1.32], n) * rng.uniform(0.9, 1.1, n)
    cand = rng.random((n, n_gw)) < rng.uniform(0.3, 0.95, n_gw)
    return rng, start, air, cand


@pytest.mark.parametrize("paths", [1, 2, 8])
@pytest.mark.parametrize("seed", [3, 4, 5])
def test_native_allocation_equals_python(monkeypatch, seed, paths):
    _kernels_or_skip()
    rng, start, air, cand = _congested_allocation(seed, paths)
    cuts = np.unique(np.r_[0, np.sort(rng.integers(0, len(start), 25)), len(start)])
    n_gw = cand.shape[1]
    runs = {}
    for use in (True, False):
        monkeypatch.setattr(reception, "USE_NATIVE", use)
        alloc = PathAllocator(n_gw, paths)
        parts, held = [], []
        for a, b in zip(cuts[:-1], cuts[1:]):  # held paths carried across calls
            parts.append(alloc.allocate(start[a:b], air[a:b], cand[a:b]))
            held.append([h.tobytes() for h in alloc._held])
        runs[use] = (np.concatenate(parts), held, alloc._busy_ticks.copy(), alloc.frames_locked.copy(),
                     alloc._last_start)
    (lc, hc, bc, fc, sc), (lp, hp, bp, fp, sp) = runs[True], runs[False]
    assert lc.dtype == bool and lc.shape == lp.shape
    np.testing.assert_array_equal(lc, lp)
    assert hc == hp
    assert bc.tobytes() == bp.tobytes() and fc.tobytes() == fp.tobytes() and sc == sp
    assert 0.05 < 1 - lp[cand].mean() < 0.95  # congested: many frames turned away, many not


@pytest.mark.parametrize("seed", [6, 7])
def test_native_decode_equals_python(monkeypatch, seed):
    _kernels_or_skip()
    for case in (dict(sfs=(7, 8, 9, 10, 11, 12), offsets=True, tx_intervals=5),
                 dict(sfs=(7, 12), channels=1)):
        start, air, ch, sf, node, node_power, sens, offset, gateway_tx = _random_scenario(
            seed, n=3000, n_gw=5, **case)
        for model in (ReceptionModel(demodulator_paths=3), ReceptionModel(inter_sf="orthogonal"),
                      ReceptionModel(capture_threshold_db=0.0, inter_sf="goursaud", demodulator_paths=1)):
            out = {}
            for use in (True, False):
                monkeypatch.setattr(reception, "USE_NATIVE", use)
                r = resolve_receptions(start, air, ch, sf, node, node_power, sens, model,
                                       tx_power_offset_db=offset, gateway_tx=gateway_tx)
                out[use] = [r.status.tobytes(), r.gateway.tobytes(), r.gateways_decoding.tobytes(),
                            r.path_busy_s.tobytes(), r.frames_locked.tobytes()]
            assert out[True] == out[False]


@pytest.mark.parametrize("model", [ReceptionModel(), ReceptionModel(capture_threshold_db=0.0, inter_sf="goursaud"),
                                   ReceptionModel(capture_threshold_db=math.inf),
                                   ReceptionModel(inter_sf="orthogonal")])
def test_native_energy_is_the_same_floats(monkeypatch, model):
    # the C sweep sums the same floats in the same order as the numpy sweep, block by block
    native = _kernels_or_skip()
    calls = []
    real = native.verdict

    def spy(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(native, "verdict", spy)
    monkeypatch.setattr(reception, "BLOCK_ELEMENTS", 997)
    start, air, ch, sf, node, node_power, sens, offset, _ = _random_scenario(8, n=2000, n_gw=3, channels=2,
                                                                              sfs=(7, 9, 12), offsets=True)
    resolve_receptions(start, air, ch, sf, node, node_power, sens, model, tx_power_offset_db=offset)
    assert len(calls) >= 7  # blocks
    hits = 0
    for s, e, grp, slot, node_s, lin, off, maxend, tp, slots, n_gw, *_ in calls:
        new_group = np.r_[True, grp[1:] != grp[:-1]]
        group_first = np.flatnonzero(new_group)
        first_of = np.repeat(group_first, np.diff(np.r_[group_first, s.size]))

        def power_mw(x):
            return lin[node_s[x]] * off[x, None]

        ref = reception._energy_sweep(s, e, grp, slot, power_mw, maxend, first_of, tp, int(tp[0]),
                                      int(tp[-1]) + 1, tp.size, slots, n_gw)
        got = native.energy(s, e, grp, slot, node_s, lin, off, maxend, tp, slots, n_gw)
        assert got.tobytes() == ref.tobytes()
        hits += (ref > 0).sum()
    assert hits > 1000


@pytest.mark.parametrize("seed", [10, 11, 12])
def test_native_verdict_edge_cases_equal_python(monkeypatch, seed):
    # equal powers at several gateways (first one wins), capture at exactly the threshold, repeated
    # starts, gateway transmissions, one path
    _kernels_or_skip()
    rng = np.random.default_rng(seed)
    n, n_gw = 1500, 10
    start = np.round(rng.random(n) * 300, 1)
    ch = rng.integers(0, 4, n)
    sf = rng.choice([7, 8, 12], n)
    air = np.where(sf == 7, 0.25, np.where(sf == 8, 0.5, 1.0))
    node = rng.integers(0, 30, n)
    node_power = np.round(rng.uniform(-120, -100, (30, n_gw)) / 3) * 3
    sens = np.full(n, -118.0)
    tx = [(np.sort(rng.random(20) * 300), None) for _ in range(n_gw)]
    tx = [(a, a + 0.4) for a, _ in tx]
    for model in (ReceptionModel(capture_threshold_db=3.0, demodulator_paths=1), ReceptionModel(capture_threshold_db=0.0),
                  ReceptionModel(inter_sf="orthogonal", capture_threshold_db=math.inf, demodulator_paths=None)):
        out = {}
        for use in (True, False):
            monkeypatch.setattr(reception, "USE_NATIVE", use)
            r = resolve_receptions(start, air, ch, sf, node, node_power, sens, model,
                                   gateway_tx=tx)
            out[use] = [r.status.tobytes(), r.gateway.tobytes(), r.gateways_decoding.tobytes()]
        assert out[True] == out[False]
        status = np.frombuffer(out[True][0], np.int8)
        assert (np.frombuffer(out[True][2], np.int16) > 1).any() and {D, COL} <= set(status.tolist())


def test_falls_back_to_python_without_a_compiler(monkeypatch, tmp_path):
    from iotsim.network import native
    monkeypatch.setattr(native, "_compiler", lambda: None)
    monkeypatch.delenv(native.DISABLE_ENV, raising=False)
    native.reset()
    try:
        assert native.lib() is None and "compiler" in native.load_error
        start, air, ch, sf, node, node_power, sens, offset, gateway_tx = _random_scenario(9, tx_intervals=3)
        model = ReceptionModel(demodulator_paths=2)
        r = resolve_receptions(start, air, ch, sf, node, node_power, sens, model, gateway_tx=gateway_tx)
        status, best, count, busy, locked = _reference(start, air, ch, sf, node, node_power, sens, model,
                                                       None, gateway_tx)
        np.testing.assert_array_equal(r.status, status)
        np.testing.assert_array_equal(r.frames_locked, locked)
    finally:
        native.reset()


def test_falls_back_when_the_cache_is_not_writable(monkeypatch, tmp_path):
    from iotsim.network import native
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("IOTSIM_CACHE_DIR", str(blocker / "cache"))  # under a file: mkdir fails
    native.reset()
    try:
        assert native.lib() is None and native.load_error
        r = _resolve([0.0, 0.05], [0.1, 0.1], [0, 0], [7, 7], [-90, -100], model=ReceptionModel(demodulator_paths=1))
        assert list(r.status) == [D, DB]
    finally:
        native.reset()


def test_native_builds_into_the_cache(monkeypatch, tmp_path):
    from iotsim.network import native
    if native._compiler() is None:
        pytest.skip("no host C compiler")
    monkeypatch.setenv("IOTSIM_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv(native.DISABLE_ENV, raising=False)
    native.reset()
    try:
        assert native.lib() is not None, native.load_error
        built = list((tmp_path / "native").iterdir())
        assert len(built) == 1 and built[0].suffix == ".so"  # no temporary left behind
    finally:
        native.reset()


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_native_kernels_in_threads_equal_python(monkeypatch, threads):
    """The fused arrival (gateways split between threads) and the verdict (targets split between threads) give
    the bytes of the pure-Python path for any number of threads."""
    _kernels_or_skip()
    from iotsim.network import native

    monkeypatch.setenv(native.THREADS_ENV, str(threads))
    monkeypatch.setattr(native, "MIN_WORK_PER_THREAD", 1)
    start, air, ch, sf, node, node_power, sens, offset, _ = _random_scenario(11, n=4000, n_gw=21, sfs=(7, 8, 9),
                                                                     offsets=True)
    for model in (ReceptionModel(demodulator_paths=2), ReceptionModel(capture_threshold_db=0.0, inter_sf="goursaud")):
        out = {}
        for use in (True, False):
            monkeypatch.setattr(reception, "USE_NATIVE", use)
            r = resolve_receptions(start, air, ch, sf, node, node_power, sens, model, tx_power_offset_db=offset)
            out[use] = [r.status.tobytes(), r.gateway.tobytes(), r.gateways_decoding.tobytes(),
                        r.path_busy_s.tobytes(), r.frames_locked.tobytes()]
        assert out[True] == out[False]
