"""The LoRaWAN closed loop compiled: `iotsim/link/_lorawan_loop.c`, built on first use, loaded with ctypes.

`ClosedLoop.run()` uses it when it can (see `lib` and `unsupported`): it computes what the SimPy engine of
`iotsim.link.lorawan_loop` computes, the same bytes (tests/test_lorawan_loop_native.py runs both), at
about 2 us per transmission instead of about 50. The SimPy engine stays the reference and the
place where node behaviour is extended (new feedback goes there first, then here); the environment
variable IOTSIM_CLOSED_LOOP chooses: "auto" (default: compiled when it can be built), "simpy" or
"compiled" (an error if it cannot be used).

This module only marshals: `Session` turns a ClosedLoop's tables into the C structure `loop_in`, feeds
the loop its messages in batches (`iotsim_lorawan_loop_feed`), advances it (`_advance`) and turns the
frames of finished batches back into columns (`_drain`); `run` is a whole run: one batch, to the end.
"""

from __future__ import annotations

import ctypes
import math
import os
from pathlib import Path

import numpy as np

from iotsim.errors import InputError
from iotsim.network import native, reception
from iotsim.network.fate import Fate
from iotsim.radio import adr, lora, lorawan_mac

SOURCE = Path(__file__).with_name("_lorawan_loop.c")
ENGINE_ENV = "IOTSIM_CLOSED_LOOP"  # auto | simpy | compiled
ENGINES = ("auto", "simpy", "compiled")
MAX_GATEWAYS = 64  # a frame's gateways are bits of one 64-bit word
PHY_CAP = 256  # LoRa PHY payloads are 0..255 bytes

_p = ctypes.c_void_p
_i = ctypes.c_int64
_d = ctypes.c_double


class _LoopIn(ctypes.Structure):
    _fields_ = [
        *[(n, _i) for n in ("n_nodes", "n_gw", "n_ch", "n_bands", "n_gw_bands")],
        *[(n, _d) for n in ("duration", "rx1_delay", "rx2_delay", "max_power_dbm", "gw_tx_power_dbm", "noise_dbm",
                            "adr_margin_db", "k_co", "ticks_per_s", "timeout_low", "timeout_range")],
        *[(n, _i) for n in ("confirmed", "nb_trans", "adr", "drop", "dl_interference", "paths", "capture_rule",
                            "inter", "frag_header", "overhead", "ans_bytes", "adr_max_dr", "max_tx_index",
                            "lowest_index", "default_dr", "ack_limit", "ack_delay", "fate_dc", "fate_bs", "fate_gt",
                            "fate_db", "fate_col")],
        ("rng_retx", ctypes.c_uint64 * 4), ("rng_timeouts", ctypes.c_uint64 * 4), ("salt", ctypes.c_uint64),
        *[(n, _p) for n in ("sf0", "initial_dr", "horizon", "startup", "power_dbm", "lin", "max_payload", "sf_dr",
                            "air_tab", "rx_done_tab")],
        ("phy_cap", _i),
        ("rx1_win", _p), ("sens", _p), ("rx2_win", _d),
        *[(n, _p) for n in ("dr_sf", "snr_req", "band_of", "band_dc", "off_factor", "k_inter", "dl1_air", "dl1_dc",
                            "dl1_sens", "dl1_freq", "dl1_band", "dl1_sf", "dl2_air", "dl2_dc", "dl2_sens", "dl2_band")],
        ("dl2_freq", _d), ("dl2_sf", _i),
        ("app_off", _p), ("app_t", _p),
        ("gw_latency", _p), ("dedup", _d), ("tx_lead", _d),
        ("n_sched", _i), ("n_holds", _i),
        *[(n, _p) for n in ("sched_start", "sched_end", "hold_lo", "hold_hi", "hold_band", "sched_gw")],
        ("n_hold_bands", _i), ("n_gholds", _i),
        *[(n, _p) for n in ("ghold_lo", "ghold_hi", "ghold_off")],
    ]


_ROW_INT = ("msg", "frag", "phy", "sf", "attempts", "tx_index")
_ROW_FLOAT = ("air", "ready", "start", "tx_s", "rx_s", "standby", "busy")
_ROW_INT8 = ("dropped", "ch", "fate")


class _Rows(ctypes.Structure):
    _fields_ = [("n", _i), ("slabs", _p), ("n_chunks", _i), ("cap_slabs", _i), ("free_head", _i), ("head", _p),
                ("tail", _p)]


class _LoopOut(ctypes.Structure):
    _fields_ = [("rows", _Rows), ("busy_ticks", _i * MAX_GATEWAYS), ("locked", _i * MAX_GATEWAYS),
                ("gw_tx_s", _d * MAX_GATEWAYS), ("band_tx_s", _p), ("band_tx_count", _p), ("stats", _p),
                ("dl_air_s", _p), ("error", _i), ("error_sf", _i), ("announced", _i)]


# per-node counters in the order of loop_out.stats, then downlink_airtime_s (double)
STAT_NAMES = ("downlinks_sent", "downlinks_received", "acks_received", "adr_commands", "app_downlinks_sent",
              "app_downlinks_received", "downlinks_interfered")

load_error: str | None = None
_lib: ctypes.CDLL | None = None
_tried = False


def _declare(so: ctypes.CDLL) -> None:
    so.iotsim_lorawan_loop_open.restype = _p
    so.iotsim_lorawan_loop_open.argtypes = [ctypes.POINTER(_LoopIn), ctypes.POINTER(_LoopOut)]
    so.iotsim_lorawan_loop_feed.restype = _i
    so.iotsim_lorawan_loop_feed.argtypes = [_p, _i] + [_p] * 5
    so.iotsim_lorawan_loop_advance.restype = _i
    so.iotsim_lorawan_loop_advance.argtypes = [_p, _d]
    so.iotsim_lorawan_loop_finished.restype = _i
    so.iotsim_lorawan_loop_finished.argtypes = [_p]
    so.iotsim_lorawan_loop_count.restype = _i
    so.iotsim_lorawan_loop_count.argtypes = [_p, _i]
    so.iotsim_lorawan_loop_drain.restype = None
    so.iotsim_lorawan_loop_drain.argtypes = [_p, _i] + [_p] * 17
    so.iotsim_lorawan_loop_free.restype = None
    so.iotsim_lorawan_loop_free.argtypes = [_p, ctypes.POINTER(_LoopOut)]
    so.iotsim_pcg64_doubles.restype = None
    so.iotsim_pcg64_doubles.argtypes = [_p, _i, _p]


def lib() -> ctypes.CDLL | None:
    """The loaded library, or None (then `load_error` says why). Built and loaded once per process."""
    global _lib, _tried, load_error
    if _tried:
        return _lib
    _tried = True
    _lib, load_error = native.load(SOURCE, "lorawan_loop", _declare)
    return _lib


def engine_choice() -> str:
    """The engine IOTSIM_CLOSED_LOOP asks for (auto, simpy or compiled)."""
    choice = os.environ.get(ENGINE_ENV, "auto").strip().lower() or "auto"
    if choice not in ENGINES:
        raise InputError(f"{ENGINE_ENV} must be one of {', '.join(ENGINES)}, got {choice!r}", field=ENGINE_ENV)
    return choice


def unsupported(loop) -> str | None:
    """Why the compiled loop cannot run this ClosedLoop (None: it can)."""
    if loop.n_gw > MAX_GATEWAYS:
        return f"more than {MAX_GATEWAYS} gateways"
    for r in (loop.rng_retx, loop.rng_timeouts):
        if r.bit_generator.state.get("bit_generator") != "PCG64":
            return "random streams other than numpy's PCG64"
    return None


def pcg64_doubles(rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` draws of `rng.random()` computed by the C generator from rng's state (rng is not advanced)."""
    k = lib()
    out = np.zeros(n)
    state = np.array(_state_words(rng), dtype=np.uint64)
    k.iotsim_pcg64_doubles(state.ctypes.data, n, out.ctypes.data)
    return out


def _state_words(rng: np.random.Generator) -> list[int]:
    st = rng.bit_generator.state["state"]
    m = (1 << 64) - 1
    return [st["state"] >> 64, st["state"] & m, st["inc"] >> 64, st["inc"] & m]


def _c(a, dtype) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=dtype)


def run(loop) -> tuple[dict[str, np.ndarray], dict] | None:
    """Run a ClosedLoop compiled: its messages in one batch. Returns (columns of the frames in (message,
    fragment) order, what the loop reports), or None when the C loop stopped on something the SimPy engine
    reports better (an input error: the caller then runs the SimPy engine, which raises it)."""
    try:
        session = Session(loop)
    except Stopped:
        return None
    try:
        session.feed(loop.messages)
        session.advance(math.inf)
        return session.drain(session.finished()), session.report()
    except Stopped:
        return None
    finally:
        session.close()


class Stopped(Exception):
    """The compiled loop stopped on an input error (`code`: 2, no room for data at SF `sf`; 3, a frame larger than
    the airtime table; 4, an attempt never decided)."""

    def __init__(self, code: int, sf: int = -1):
        super().__init__(code, sf)
        self.code, self.sf = code, sf


class Session:
    """A ClosedLoop compiled, fed its messages in batches and advanced in time: one batch and one advance to the
    end for a whole run (`run`), a chunk's each for a run in time chunks (iotsim.engine.chunked), the same
    bytes either way (see `iotsim/link/_lorawan_loop.c`). Frames come out (`drain`) once every node has sent
    the batches they belong to (`finished`). `close` frees the C side."""

    def __init__(self, loop):
        self.k = k = lib()
        self.handle = None
        self.n_nodes = loop.nodes.n
        self.keep = keep = []  # arrays the structure points into, alive as long as the session
        self._init(loop, k, keep)

    def _init(self, loop, k, keep) -> None:
        s, region, nodes = loop.s, loop.region, loop.nodes
        bw = float(s.bandwidth_hz)

        def ptr(a, dtype):
            a = _c(a, dtype)
            keep.append(a)
            return a.ctypes.data

        n, n_gw = nodes.n, loop.n_gw
        # per SF: payload limit, airtime and "free after RX2" per PHY size, RX1 window
        sfs = sorted(set(loop._sf_dr) | set(loop._dr_sf.values()) | {int(x) for x in np.unique(nodes.sf)})
        max_payload = np.full(13, -1, np.int64)
        air_tab = np.zeros((13, PHY_CAP))
        rx_done_tab = np.zeros((13, PHY_CAP))
        rx1_win = np.zeros(13)
        rx2_win = 0.0
        phys = np.arange(PHY_CAP, dtype=np.int64)
        for sf in sfs:
            if not 7 <= sf <= 12:
                raise Stopped(2, sf)
            max_payload[sf] = region.max_app_payload_bytes(sf, bw)
            air = loop._airtime(phys, sf)
            _, rx2 = loop.link.receive_windows_s(np.array([sf]))
            air_tab[sf] = air
            rx_done_tab[sf] = air + loop.rx2_delay + rx2
            rx1_win[sf], rx2_win = loop._rx_windows(sf)
        sf_dr = np.full(13, -1, np.int64)
        for sf, dr in loop._sf_dr.items():
            sf_dr[sf] = dr
        dr_sf = np.full(16, -1, np.int64)
        snr_req = np.zeros(16)
        for dr, sf in loop._dr_sf.items():
            dr_sf[dr] = sf
            snr_req[dr] = float(np.asarray(lora.snr_threshold_db(np.array([sf])), dtype=float)[0])
        initial_dr = np.array(loop.initial_data_rates(), dtype=np.int64)
        # TX power index -> 10^(offset/10), as the SimPy engine computes it
        off_factor = np.zeros(16)
        for idx in range(16):
            off = (loop.max_power_dbm - 2.0 * idx) - loop.max_power_dbm
            off_factor[idx] = loop._off_factor(off)
        k_inter = np.asarray(loop._k_inter, dtype=np.float64).reshape(6, 6) if loop._inter else np.zeros((6, 6))
        # downlinks: variant v = LinkADRReq (bit 0) | application payload (bit 1)
        phy_v = [loop.downlink_phy_bytes(bool(v & 1), bool(v & 2)) for v in range(4)]
        n_ch = loop.n_channels
        dl1 = {name: np.zeros((16, n_ch, 4)) for name in ("air", "dc", "sens", "freq")}
        dl1_band = np.zeros((16, n_ch, 4), np.int64)
        dl1_sf = np.zeros((16, n_ch, 4), np.int64)
        for dr in sorted(set(loop._sf_dr.values())):
            for ch in range(n_ch):
                hz, dsf, dbw = loop._rx1(dr, ch)
                for v in range(4):
                    air, band, dc, sens = loop._downlink_facts(phy_v[v], dsf, dbw, hz)
                    dl1["air"][dr, ch, v], dl1["dc"][dr, ch, v], dl1["sens"][dr, ch, v] = air, dc, sens
                    dl1["freq"][dr, ch, v], dl1_band[dr, ch, v], dl1_sf[dr, ch, v] = hz, band, dsf
        rx2_hz, rx2_sf = float(region.rx2_frequency_hz), int(s.rx2_sf)
        dl2 = np.zeros((4, 3))
        dl2_band = np.zeros(4, np.int64)
        for v in range(4):
            air, band, dc, sens = loop._downlink_facts(phy_v[v], rx2_sf, loop.link.rx2_bandwidth_hz, rx2_hz)
            dl2[v] = air, dc, sens
            dl2_band[v] = band
        n_gw_bands = int(max(dl1_band.max(), dl2_band.max())) + 1
        app_counts = np.array([len(q) for q in loop.app_queue], dtype=np.int64)
        app_off = np.zeros(n + 1, np.int64)
        np.cumsum(app_counts, out=app_off[1:])
        app_t = np.array([t for q in loop.app_queue for t in q], dtype=np.float64)
        t_low = lorawan_mac.RETRANSMIT_TIMEOUT_S - lorawan_mac.RETRANSMIT_TIMEOUT_RANDOM_S
        t_high = lorawan_mac.RETRANSMIT_TIMEOUT_S + lorawan_mac.RETRANSMIT_TIMEOUT_RANDOM_S
        rule = loop._capture_rule
        paths = loop._allocator.paths
        sched = loop.link.gateway_schedule
        sched_start = sched.start_s if sched is not None else np.zeros(0)
        sched_end = sched.end_s if sched is not None else np.zeros(0)
        sched_gw = np.zeros(0, np.int64) if sched is None else (
            np.full(len(sched), -1, np.int64) if sched.gateway is None else sched.gateway)
        # each gateway's own holds, per (gateway, sub-band), disjoint and sorted (lorawan_loop.split_holds)
        n_hold_bands = 1 + max([b for (_, b) in loop.gw_holds] + [0])
        ghold_lo, ghold_hi = [], []
        ghold_off = np.zeros(n_gw * n_hold_bands + 1, np.int64)
        for g in range(n_gw):
            for b in range(n_hold_bands):
                los, his = loop.gw_holds.get((g, b), ([], []))
                ghold_lo.extend(los)
                ghold_hi.extend(his)
                ghold_off[g * n_hold_bands + b + 1] = len(ghold_lo)

        cin = _LoopIn(
            n_nodes=n, n_gw=n_gw, n_ch=n_ch, n_bands=int(loop.band_dc.shape[0]), n_gw_bands=n_gw_bands,
            duration=loop.duration, rx1_delay=loop.rx1_delay, rx2_delay=loop.rx2_delay,
            max_power_dbm=loop.max_power_dbm, gw_tx_power_dbm=float(s.gateway_tx_power_dbm), noise_dbm=loop.noise_dbm,
            adr_margin_db=float(s.adr_margin_db), k_co=loop._k_co, ticks_per_s=reception.TICKS_PER_S,
            timeout_low=t_low, timeout_range=t_high - t_low,
            confirmed=int(bool(s.confirmed)), nb_trans=int(s.nb_trans), adr=int(bool(s.adr)),
            drop=int(s.duty_cycle_mode == "drop"), dl_interference=int(loop.dl_interference),
            paths=-1 if paths is None else int(paths), capture_rule=int(rule), inter=int(loop._inter),
            frag_header=int(s.fragment_header_bytes), overhead=int(lora.LORAWAN_OVERHEAD_BYTES),
            ans_bytes=int(adr.LINK_ADR_ANS_BYTES), adr_max_dr=int(region.adr_max_data_rate),
            max_tx_index=int(region.max_tx_power_index), lowest_index=int(loop._lowest_index()),
            default_dr=int(region.default_data_rate), ack_limit=adr.ADR_ACK_LIMIT, ack_delay=adr.ADR_ACK_DELAY,
            fate_dc=int(Fate.DUTY_CYCLE), fate_bs=int(Fate.BELOW_SENSITIVITY), fate_gt=int(Fate.GATEWAY_TRANSMITTING),
            fate_db=int(Fate.DEMODULATORS_BUSY), fate_col=int(Fate.COLLISION),
            sf0=ptr(nodes.sf, np.int64),
            initial_dr=ptr(initial_dr, np.int64), horizon=ptr(loop.horizon, np.float64),
            startup=ptr(nodes.startup_s, np.float64), power_dbm=ptr(nodes.rx_power_dbm, np.float64),
            lin=ptr(loop.power_mw, np.float64), salt=loop.salt,
            max_payload=ptr(max_payload, np.int64), sf_dr=ptr(sf_dr, np.int64), air_tab=ptr(air_tab, np.float64),
            rx_done_tab=ptr(rx_done_tab, np.float64), phy_cap=PHY_CAP, rx1_win=ptr(rx1_win, np.float64),
            sens=ptr(loop.sens, np.float64), rx2_win=float(rx2_win), dr_sf=ptr(dr_sf, np.int64),
            snr_req=ptr(snr_req, np.float64), band_of=ptr(loop.band_of_channel, np.int64),
            band_dc=ptr(loop.band_dc, np.float64), off_factor=ptr(off_factor, np.float64),
            k_inter=ptr(k_inter, np.float64), dl1_air=ptr(dl1["air"], np.float64), dl1_dc=ptr(dl1["dc"], np.float64),
            dl1_sens=ptr(dl1["sens"], np.float64), dl1_freq=ptr(dl1["freq"], np.float64),
            dl1_band=ptr(dl1_band, np.int64), dl1_sf=ptr(dl1_sf, np.int64), dl2_air=ptr(dl2[:, 0], np.float64),
            dl2_dc=ptr(dl2[:, 1], np.float64), dl2_sens=ptr(dl2[:, 2], np.float64), dl2_band=ptr(dl2_band, np.int64),
            dl2_freq=rx2_hz, dl2_sf=rx2_sf, app_off=ptr(app_off, np.int64), app_t=ptr(app_t, np.float64),
            gw_latency=ptr(loop.gw_latency, np.float64), dedup=loop.dedup_s, tx_lead=lorawan_mac.GATEWAY_TX_LEAD_S,
            n_sched=len(sched_start), n_holds=len(loop.holds), sched_start=ptr(sched_start, np.float64),
            sched_end=ptr(sched_end, np.float64), hold_lo=ptr([h[1] for h in loop.holds], np.float64),
            hold_hi=ptr([h[2] for h in loop.holds], np.float64), hold_band=ptr([h[0] for h in loop.holds], np.int64),
            sched_gw=ptr(sched_gw, np.int64), n_hold_bands=n_hold_bands, n_gholds=len(ghold_lo),
            ghold_lo=ptr(ghold_lo, np.float64), ghold_hi=ptr(ghold_hi, np.float64), ghold_off=ptr(ghold_off, np.int64),
        )
        cin.rng_retx[:] = _state_words(loop.rng_retx)
        cin.rng_timeouts[:] = _state_words(loop.rng_timeouts)
        self.cin = cin
        self.n_gw, self.n_gw_bands = n_gw, n_gw_bands
        self.band_tx_s = np.zeros((n_gw, n_gw_bands))
        self.band_tx_count = np.zeros((n_gw, n_gw_bands), np.int64)
        self.stats = np.zeros((len(STAT_NAMES), n), np.int64)
        self.dl_air_s = np.zeros(n)
        self.out = _LoopOut(band_tx_s=self.band_tx_s.ctypes.data, band_tx_count=self.band_tx_count.ctypes.data,
                            stats=self.stats.ctypes.data, dl_air_s=self.dl_air_s.ctypes.data)
        self.handle = k.iotsim_lorawan_loop_open(ctypes.byref(cin), ctypes.byref(self.out))
        if not self.handle:
            k.iotsim_lorawan_loop_free(None, ctypes.byref(self.out))
            self._check(self.out.error or 1)

    def _check(self, err: int) -> None:
        if err == 1:
            raise MemoryError("the compiled LoRaWAN closed loop ran out of memory")
        if err:
            raise Stopped(int(err), int(self.out.error_sf))

    def feed(self, m) -> None:
        """The next batch of messages (`iotsim.link.Messages`, ordered by node; windows as the run numbers them)."""
        lo = np.searchsorted(m.node, np.arange(self.n_nodes + 1)).astype(np.int64)
        cols = [_c(m.ready_s, np.float64), _c(m.app_bytes, np.int64), _c(m.kind, np.int64), _c(m.window, np.int64)]
        self._check(self.k.iotsim_lorawan_loop_feed(self.handle, len(m), lo.ctypes.data,
                                                    *[c.ctypes.data for c in cols]))

    def advance(self, t_end_s: float) -> None:
        """Process what happens before `t_end_s` (at or past the run's duration: to the end of the run)."""
        self._check(self.k.iotsim_lorawan_loop_advance(self.handle, float(t_end_s)))

    def finished(self) -> int:
        """How many batches, from the first, every node has sent all of."""
        return int(self.k.iotsim_lorawan_loop_finished(self.handle))

    def drain(self, upto: int) -> dict[str, np.ndarray]:
        """The frames of the batches not drained yet before `upto` (finished ones), as columns in (message,
        fragment) order; messages are numbered across batches (the first batch's from 0)."""
        n_rows = int(self.k.iotsim_lorawan_loop_count(self.handle, upto))
        cols = {name: np.empty(n_rows, dtype) for name, dtype in
                [(x, np.int64) for x in _ROW_INT] + [(x, np.float64) for x in _ROW_FLOAT]
                + [(x, np.int8) for x in _ROW_INT8] + [("gw", np.int16)]}
        self.k.iotsim_lorawan_loop_drain(self.handle, upto, *[c.ctypes.data for c in cols.values()])
        return cols

    def report(self) -> dict:
        """What the loop counted so far: per gateway and per node."""
        out, n_gw = self.out, self.n_gw
        return {
            "busy_ticks": np.array(out.busy_ticks[:n_gw], dtype=np.int64),
            "frames_locked": np.array(out.locked[:n_gw], dtype=np.int64),
            "tx_airtime_s": np.array(out.gw_tx_s[:n_gw], dtype=np.float64),
            "tx_band_s": [{b: float(self.band_tx_s[g, b]) for b in range(self.n_gw_bands) if self.band_tx_count[g, b]}
                          for g in range(n_gw)],
            "node_stats": {**{name: self.stats[i].copy() for i, name in enumerate(STAT_NAMES)},
                           "downlink_airtime_s": self.dl_air_s.copy()},
            "transmissions": int(out.announced),
        }

    def close(self) -> None:
        if self.k is not None:
            self.k.iotsim_lorawan_loop_free(self.handle, ctypes.byref(self.out))
            self.handle, self.k = None, None


__all__ = ["ENGINE_ENV", "Session", "Stopped", "engine_choice", "lib", "load_error", "pcg64_doubles", "run", "unsupported"]
