"""The mesh's compiled event loop (iotsim/mesh/_mesh_loop.c), built on first use and loaded with ctypes.

`iotsim.mesh.network.simulate_mesh` runs it when it is available and keeps its Python twin (`_event_loop`)
for the rest: both give the same bytes (tests/test_mesh_native.py). The source is compiled with the host C
compiler into the user cache as the reception kernels are (`iotsim.network.native.build`); without a
compiler, or with IOTSIM_NATIVE=0, the Python loop runs. The C loop continues the caller's numpy PCG64
stream from its state words and hands the final state back, so the generator ends where the Python loop
leaves it.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from iotsim.mesh import phy
from iotsim.network import native

SOURCE = Path(__file__).with_name("_mesh_loop.c")

_i, _d, _p = ctypes.c_int64, ctypes.c_double, ctypes.c_void_p
_IN_INTS = ("m", "n_frames", "n_deaths", "queue_frames", "min_be", "max_be", "max_csma_backoffs",
            "max_frame_retries", "rdc", "phase_lock", "fading", "cca_count", "n_ber", "ack_psdu", "reroute", "ifs",
            "max_sifs_octets")
_IN_DOUBLES = ("duration", "cycle", "cca_check", "listen_after_detect", "inter_packet", "strobe_s", "guard_s",
               "noise_mw", "senses_mw", "ack_air", "header_s", "bit_s", "unit_backoff_s", "cca_s", "turnaround_s",
               "ack_wait_s", "sifs_s", "lifs_s")
_IN_ARRAYS = ("offsets", "ber_c", "ber_e", "mw", "phase", "f_air", "f_ready", "death_t", "always_on", "lockable",
              "parent",
              "lock_off", "lock_idx", "wake_off", "wake_idx", "f_origin", "f_octets", "ready_order", "death_node",
              "reroute_parent")
_OUT_ARRAYS = ("fate", "delivered_s", "own_tx_s", "own_rx_s", "tx_s", "rx_s", "hops", "lost_at", "transmissions",
               "forwarded", "overheard", "acks", "collisions", "cca", "cca_busy")


class _In(ctypes.Structure):
    _fields_ = [*[(n, _i) for n in _IN_INTS], *[(n, _d) for n in _IN_DOUBLES], *[(n, _p) for n in _IN_ARRAYS],
                ("rng", ctypes.c_uint64 * 4)]


class _Out(ctypes.Structure):
    _fields_ = [*[(n, _p) for n in _OUT_ARRAYS], ("hop_log", ctypes.POINTER(_d)), ("n_hops", _i),
                ("rng", ctypes.c_uint64 * 4)]


load_error: str | None = None
"""Why the compiled loop is not available (None: loaded, or not tried yet)."""
_lib: ctypes.CDLL | None = None
_tried = False


def _declare(so: ctypes.CDLL) -> None:
    so.iotsim_mesh_loop.restype = _i
    so.iotsim_mesh_loop.argtypes = [ctypes.POINTER(_In), ctypes.POINTER(_Out)]
    so.iotsim_mesh_free.restype = None
    so.iotsim_mesh_free.argtypes = [_p]
    so.iotsim_mesh_py_mod.restype = _d
    so.iotsim_mesh_py_mod.argtypes = [_d, _d]


def lib() -> ctypes.CDLL | None:
    """The loaded library, or None (then `load_error` says why). Built and loaded once per process."""
    global _lib, _tried, load_error
    if _tried:
        return _lib
    _tried = True
    _lib, load_error = native.load(SOURCE, "mesh_loop", _declare)
    return _lib


def unsupported(rng: np.random.Generator) -> str | None:
    """Why the compiled loop cannot run with this generator (None: it can)."""
    if rng.bit_generator.state.get("bit_generator") != "PCG64":
        return "random streams other than numpy's PCG64"
    if lib() is None:
        return load_error
    return None


def _state_words(rng: np.random.Generator) -> list[int]:
    st = rng.bit_generator.state["state"]
    mask = (1 << 64) - 1
    return [st["state"] >> 64, st["state"] & mask, st["inc"] >> 64, st["inc"] & mask]


def _csr(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    off = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=off[1:])
    return off, np.array([j for r in rows for j in r], dtype=np.int64)


def run(mesh, duration_s: float, rng: np.random.Generator, reroute, out: dict) -> np.ndarray:
    """The compiled `_event_loop(mesh, duration_s, rng, reroute, out)`: fills `out`, advances `rng` as the Python
    loop does and returns the hop log."""
    from iotsim.mesh import network as mn

    k = lib()
    s = mesh.settings
    mac, rdc, m = s.mac, s.rdc, mesh.m
    # deaths in the order the Python loop meets them (time, then node), and the tree `reroute` gives after each
    dying = np.flatnonzero(mesh.dies < duration_s)
    dying = dying[np.argsort(mesh.dies[dying], kind="stable")]
    trees = np.zeros((0, m), dtype=np.int64)
    if reroute is not None and dying.size:
        dead = np.zeros(m, dtype=bool)
        trees = np.empty((dying.size, m), dtype=np.int64)
        for i, node in enumerate(dying.tolist()):
            dead[node] = True
            trees[i] = mn.rerouted(reroute, dead)
    lock_off, lock_idx = _csr(mesh.lock_always)
    wake_off, wake_idx = _csr(mesh.wake_list)
    c = np.ascontiguousarray
    arrays = {
        "offsets": c([i * (rdc.cca_check_s + rdc.cca_sleep_s) for i in range(rdc.cca_count)] if rdc else [0.0],
                     dtype=np.float64),
        "ber_c": c([t[0] for t in mn._BER_TERMS], dtype=np.float64),
        "ber_e": c([t[1] for t in mn._BER_TERMS], dtype=np.float64),
        "mw": c(mesh.mw, dtype=np.float64), "phase": c(mesh.phase, dtype=np.float64),
        "f_air": c(mesh.f_air, dtype=np.float64), "f_ready": c(mesh.f_ready, dtype=np.float64),
        "death_t": c(mesh.dies[dying], dtype=np.float64), "always_on": c(mesh.always_on, dtype=np.uint8),
        "lockable": c(np.packbits(mesh.lockable, axis=1, bitorder="little")),
        "parent": c(mesh.parent, dtype=np.int64), "lock_off": lock_off, "lock_idx": lock_idx, "wake_off": wake_off,
        "wake_idx": wake_idx, "f_origin": c(mesh.f_node, dtype=np.int64), "f_octets": c(mesh.f_psdu, dtype=np.int64),
        "ready_order": c(np.argsort(mesh.f_ready, kind="stable"), dtype=np.int64),
        "death_node": c(dying, dtype=np.int64), "reroute_parent": c(trees),
    }
    cin = _In(
        m=m, n_frames=mesh.f_node.shape[0], n_deaths=dying.size, queue_frames=int(s.queue_frames),
        min_be=int(mac.min_be), max_be=int(mac.max_be), max_csma_backoffs=int(mac.max_csma_backoffs),
        max_frame_retries=int(mac.max_frame_retries), rdc=rdc is not None, phase_lock=bool(rdc and rdc.phase_lock),
        fading=bool(s.fading), cca_count=int(rdc.cca_count) if rdc else 0, n_ber=len(mn._BER_TERMS),
        ack_psdu=phy.ACK_PSDU_OCTETS, reroute=reroute is not None, ifs=bool(mac.ifs and rdc is None),
        max_sifs_octets=phy.MAX_SIFS_FRAME_OCTETS, sifs_s=phy.SIFS_S, lifs_s=phy.LIFS_S, duration=duration_s,
        cycle=rdc.cycle_s if rdc else 1.0, cca_check=rdc.cca_check_s if rdc else 0.0,
        listen_after_detect=rdc.listen_after_detect_s if rdc else 0.0,
        inter_packet=rdc.inter_packet_s if rdc else 0.0, strobe_s=rdc.strobe_s if rdc else 0.0,
        guard_s=rdc.guard_s if rdc else 0.0, noise_mw=mesh.noise_mw, senses_mw=mesh.senses_mw,
        ack_air=mesh.ack_air, header_s=mn.HEADER_S, bit_s=mn.BIT_S, unit_backoff_s=phy.UNIT_BACKOFF_S,
        cca_s=phy.CCA_S, turnaround_s=phy.TURNAROUND_S, ack_wait_s=phy.ACK_WAIT_S,
        **{name: a.ctypes.data for name, a in arrays.items()})
    cin.rng[:] = _state_words(rng)
    for name in _OUT_ARRAYS:
        if not out[name].flags.c_contiguous:
            raise ValueError(f"out[{name!r}] must be C-contiguous")
    cout = _Out(**{name: out[name].ctypes.data for name in _OUT_ARRAYS})
    if k.iotsim_mesh_loop(ctypes.byref(cin), ctypes.byref(cout)):
        raise MemoryError("the compiled mesh loop ran out of memory")
    try:
        log = np.ctypeslib.as_array(cout.hop_log, shape=(cout.n_hops, 6)).copy() if cout.n_hops \
            else np.zeros((0, 6))
    finally:
        k.iotsim_mesh_free(ctypes.cast(cout.hop_log, _p))
    state = rng.bit_generator.state
    w = list(cout.rng)
    state["state"] = {"state": (w[0] << 64) | w[1], "inc": (w[2] << 64) | w[3]}
    rng.bit_generator.state = state
    return log


__all__ = ["SOURCE", "lib", "load_error", "run", "unsupported"]
