"""C kernels of the reception model (iotsim/network/_reception.c), built on first use and loaded with ctypes.

The source is compiled with the host C compiler ($IOTSIM_HOST_CC, else cc, else gcc) into the user
cache (`iotsim.paths.user_cache_dir()` / native/, keyed by the sha256 of the source, the flags and
the compiler's version; written to a temporary name, then renamed into place, so that concurrent
builders end with the same file). Without a compiler, or when the build or the load fails (a cache
directory that cannot be written, say), `lib()` returns None and the callers use their pure-Python
path, which gives the same results; `load_error` then says why. IOTSIM_NATIVE=0 disables the kernels.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import re
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np

SOURCE = Path(__file__).with_name("_reception.c")
FLAGS = ("-O3", "-std=c99", "-shared", "-fPIC", "-ffp-contract=off", "-fno-fast-math")
DISABLE_ENV = "IOTSIM_NATIVE"  # "0": never build or load the kernels
HOST_CC_ENV = "IOTSIM_HOST_CC"  # the same override as iotsim.firmware.build

load_error: str | None = None
"""Why the kernels are not available (None: loaded, or not tried yet)."""

_lib: ctypes.CDLL | None = None
_tried = False

_int = ctypes.c_int64


def _compiler() -> str | None:
    for name in ([os.environ[HOST_CC_ENV]] if os.environ.get(HOST_CC_ENV) else ["cc", "gcc"]):
        path = shutil.which(name)
        if path:
            return path
    return None


def build(source: Path, stem: str) -> Path:
    """The shared library of one C source, compiled if not cached (user cache / native /
    lib{stem}-{key}.so); raises OSError/RuntimeError when it cannot be. Also used by
    iotsim.link.loop_native for the compiled closed loop."""
    cc = _compiler()
    if cc is None:
        raise RuntimeError("no host C compiler (cc or gcc) found")
    src = source.read_bytes()
    # the project's headers it includes ("..." paths, relative to it) are part of what it compiles
    for inc in re.findall(rb'^#include "([^"]+)"', src, flags=re.M):
        src += b"\0" + (source.parent / inc.decode()).read_bytes()
    r = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=60, check=False)
    version = r.stdout.splitlines()[0].strip() if r.returncode == 0 and r.stdout else cc
    key = hashlib.sha256(b"\0".join([src, " ".join(FLAGS).encode(), version.encode(),
                                     platform.machine().encode()])).hexdigest()[:16]
    from iotsim.paths import user_cache_dir

    out = user_cache_dir() / "native" / f"lib{stem}-{key}.so"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        r = subprocess.run([cc, *FLAGS, str(source), "-o", str(tmp)], capture_output=True, text=True,
                           timeout=300, check=False)
        if r.returncode != 0:
            raise RuntimeError(f"building {source.name} failed: {r.stderr.strip()[-2000:]}")
        os.replace(tmp, out)  # atomic
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _declare(lib: ctypes.CDLL) -> None:
    # arrays go in as raw pointers (`_ptr`, after the callers made them contiguous with the right dtype):
    # ctypes' ndpointer checks cost more than the kernel on the small batches of the closed loop
    _p = ctypes.c_void_p
    lib.iotsim_allocate.restype = None
    lib.iotsim_allocate.argtypes = [_int, _int, _p, _p, _p, _p, _int, _p, _p, _int, _p, _p, _p]
    lib.iotsim_energy.restype = None
    lib.iotsim_energy.argtypes = [_int, _int, _int, _p, _p, _p, _p, _p, _p, _p, _p, _int, _p, _p]
    lib.iotsim_verdict.restype = None
    lib.iotsim_verdict.argtypes = [_int, _int, _int, _p, _p, _p, _p, _p, _p, _p, _p, _int, _p, _int, ctypes.c_double,
                                   _p, _int, _p, _p, _p, _p, _p, _int, _p, _p, _p, _p, _p]
    lib.iotsim_arrive.restype = None
    lib.iotsim_arrive.argtypes = [_int, _int, _p, _p, _p, _p, _p, _p, _p, _int, _p, _p, _int, _int, _p, _p, _p, _p,
                                  _int, _int]
    lib.iotsim_cloud_fifo.restype = None
    lib.iotsim_cloud_fifo.argtypes = [_int, _p, ctypes.c_double, _int, _p, _p, _p, _p, _p]


def load(source: Path, stem: str, declare) -> tuple[ctypes.CDLL | None, str | None]:
    """Build (`build`) and load one C source, `declare(library)` setting its functions' types: (library, None),
    or (None, why not) when IOTSIM_NATIVE=0, there is no compiler, or the build or the load fails."""
    if os.environ.get(DISABLE_ENV, "1") == "0":
        return None, f"disabled by {DISABLE_ENV}=0"
    try:
        so = ctypes.CDLL(str(build(source, stem)))
        declare(so)
        return so, None
    except (OSError, RuntimeError, subprocess.SubprocessError, AttributeError) as e:
        return None, f"{type(e).__name__}: {e}"


def lib() -> ctypes.CDLL | None:
    """The loaded kernels, or None (then `load_error` says why). Built and loaded once per process."""
    global _lib, _tried, load_error
    if _tried:
        return _lib
    _tried = True
    _lib, load_error = load(SOURCE, "reception", _declare)
    return _lib


def _ptr(a: np.ndarray | None) -> int | None:
    """Address of a C-contiguous array's data (None for None). The caller keeps the array alive."""
    if a is None:
        return None
    if not a.flags.c_contiguous:
        raise ValueError("arrays passed to the kernels must be C-contiguous")
    return a.__array_interface__["data"][0]


def reset() -> None:
    """Forget the loaded library (tests: build again, e.g. under another environment)."""
    global _lib, _tried, load_error
    _lib, _tried, load_error = None, False, None


def _heaps(held: list[np.ndarray], paths: int, n_gw: int, busy_ticks: np.ndarray, frames_locked: np.ndarray):
    """(heap (n_gw, cap), heap_len, cap): each gateway's held path ends as a min-heap for the kernels."""
    held = [np.asarray(h, dtype=np.float64) for h in held]
    cap = max([paths] + [h.size for h in held])
    heap = np.zeros((n_gw, cap))
    heap_len = np.zeros(n_gw, dtype=np.int64)
    for g, h in enumerate(held):
        heap[g, : h.size] = h  # sorted: a valid min-heap
        heap_len[g] = h.size
    for a in (busy_ticks, frames_locked):
        if a.dtype != np.int64 or a.shape != (n_gw,) or not a.flags.c_contiguous:
            raise ValueError("busy_ticks and frames_locked must be contiguous (n_gw,) int64 arrays")
    return heap, heap_len, cap


def _held_after(heap: np.ndarray, heap_len: np.ndarray, last_s: float) -> list[np.ndarray]:
    """Each gateway's held path ends after the last start fed, sorted."""
    out = []
    for g in range(heap.shape[0]):
        h = heap[g, : heap_len[g]]
        out.append(np.sort(h[h > last_s]))
    return out


def allocate(start_s: np.ndarray, end_s: np.ndarray, ticks: np.ndarray, candidate: np.ndarray, paths: int,
             held: list[np.ndarray], busy_ticks: np.ndarray, frames_locked: np.ndarray):
    """Demodulator paths of every gateway for frames in start order (see `PathAllocator.allocate`).

    held: per gateway the end times of its held paths (sorted). busy_ticks, frames_locked: (n_gw,)
    int64, accumulated in place. Returns (locked (n, n_gw) bool, each gateway's held ends after the
    last start, sorted), or None without the kernels.
    """
    k = lib()
    if k is None:
        return None
    n, n_gw = candidate.shape
    heap, heap_len, cap = _heaps(held, paths, n_gw, busy_ticks, frames_locked)
    cand = np.ascontiguousarray(candidate, dtype=bool).view(np.uint8)
    locked = np.empty((n, n_gw), dtype=np.uint8)
    s = np.ascontiguousarray(start_s, dtype=np.float64)
    e = np.ascontiguousarray(end_s, dtype=np.float64)
    t = np.ascontiguousarray(ticks, dtype=np.int64)
    k.iotsim_allocate(n, n_gw, _ptr(s), _ptr(e), _ptr(t), _ptr(cand), paths, _ptr(heap), _ptr(heap_len), cap,
                      _ptr(locked), _ptr(busy_ticks), _ptr(frames_locked))
    return locked.view(bool), _held_after(heap, heap_len, start_s[-1])


THREADS_ENV = "IOTSIM_THREADS"  # threads for the reception kernels (default: the CPUs, at most 8); 1: none
MIN_WORK_PER_THREAD = 200_000  # (frames x gateways) below which one thread does it all


def threads() -> int:
    v = os.environ.get(THREADS_ENV)
    if v:
        return max(1, int(v))
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def _split(n: int, align: int, work: int) -> list[tuple[int, int]]:
    """[lo, hi) ranges of 0..n for the threads (boundaries multiples of `align`)."""
    t = min(threads(), max(1, work // MIN_WORK_PER_THREAD), max(1, n // align))
    if t <= 1:
        return [(0, n)]
    cuts = sorted({min(n, ((n * i // t) // align) * align) for i in range(t)} | {n})
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


_pool: tuple[int, int, object] | None = None  # (pid, workers, ThreadPoolExecutor): one pool per process, reused
_pool_lock = threading.Lock()  # policies of a chunked run call the kernels from their own threads


def _in_threads(run, count: int) -> None:
    """run(0) .. run(count - 1), on a pool of threads kept for the process (a pool per call cost as much as the
    kernels on the many small blocks of a large run)."""
    global _pool
    if count == 1:
        run(0)
        return
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid() or _pool[1] < count:  # a forked child builds its own
            from concurrent.futures import ThreadPoolExecutor

            _pool = (os.getpid(), count, ThreadPoolExecutor(count, thread_name_prefix="iotsim-reception"))
        pool = _pool[2]
    list(pool.map(run, range(count)))


def arrive(start_s: np.ndarray, end_s: np.ndarray, ticks: np.ndarray, node: np.ndarray, sens: np.ndarray,
           offset: np.ndarray | None, dbm: np.ndarray, paths: int, held: list[np.ndarray], busy_ticks: np.ndarray,
           frames_locked: np.ndarray):
    """`reception.arrive` with no gateway transmitting, fused with the path allocation (see `allocate`):
    (locked bits (n, ceil(n_gw / 8)) uint8, rank (n,) int8, each gateway's held ends after the last start), or
    None without the kernels."""
    k = lib()
    if k is None:
        return None
    n = start_s.shape[0]
    n_gw = dbm.shape[1]
    heap, heap_len, cap = _heaps(held, paths, n_gw, busy_ticks, frames_locked)
    nbytes = (n_gw + 7) // 8
    locked = np.empty((n, nbytes), dtype=np.uint8)
    rank = np.empty(n, dtype=np.int8)
    c = np.ascontiguousarray
    a = [c(start_s, dtype=np.float64), c(end_s, dtype=np.float64), c(ticks, dtype=np.int64), c(node, dtype=np.int64),
         c(sens, dtype=np.float64), None if offset is None else c(offset, dtype=np.float64), c(dbm, dtype=np.float64)]
    # the gateways split between threads (ctypes lets go of the GIL; each thread its own gateways' heaps, bytes
    # of `locked` and ranks): the same results for any number of threads
    parts = _split(n_gw, 8, n * n_gw)
    ranks = [rank] + [np.empty(n, dtype=np.int8) for _ in parts[1:]]

    def run(i):
        g0, g1 = parts[i]
        k.iotsim_arrive(n, n_gw, *(_ptr(x) for x in a), paths, _ptr(heap), _ptr(heap_len), cap, nbytes,
                        _ptr(locked), _ptr(ranks[i]), _ptr(busy_ticks), _ptr(frames_locked), g0, g1)

    _in_threads(run, len(parts))
    for other in ranks[1:]:
        np.maximum(rank, other, out=rank)
    return locked, rank, _held_after(heap, heap_len, start_s[-1] if n else -np.inf)


def energy(s, e, grp, slot, node, lin, off, maxend, tp, slots: int, n_gw: int) -> np.ndarray | None:
    """(rows * slots, n_gw) interference energy of the targets at positions `tp` (see `decode`), or None."""
    k = lib()
    if k is None:
        return None
    rows = tp.shape[0]
    out = np.empty((rows * slots, n_gw))
    c = np.ascontiguousarray
    a = [c(s, dtype=np.float64), c(e, dtype=np.float64), c(grp, dtype=np.int64), c(slot, dtype=np.int64),
         c(node, dtype=np.int64), c(lin, dtype=np.float64), None if off is None else c(off, dtype=np.float64),
         c(maxend, dtype=np.float64), c(tp, dtype=np.int64)]
    k.iotsim_energy(s.shape[0], n_gw, slots, *(_ptr(x) for x in a[:8]), rows, _ptr(a[8]), _ptr(out))
    return out


def verdict(s, e, grp, slot, node, lin, off, maxend, tp, slots: int, n_gw: int, co_mode: int, k_co: float, k_inter,
            locked, cut, fate_rank, dbm, rank_to_fate, delivered: int):
    """(status int8, best int16, count int16) of the targets at positions `tp` (see `decode`): locked
    (rows, ceil(n_gw / 8)) uint8 bits, cut None or (rows, n_gw) bool, fate_rank (rows,) int8, dbm
    (n_nodes, n_gw) received power in dBm. None without the kernels."""
    k = lib()
    if k is None:
        return None
    rows = tp.shape[0]
    c = np.ascontiguousarray
    off_c = None if off is None else c(off, dtype=np.float64)
    ki = None if k_inter is None else c(k_inter, dtype=np.float64)
    if ki is not None and ki.shape != (slots, slots):
        raise ValueError(f"k_inter has shape {ki.shape}, expected ({slots}, {slots})")
    locked = c(locked, dtype=np.uint8)
    if locked.shape != (rows, (n_gw + 7) // 8):
        raise ValueError(f"locked has shape {locked.shape}, expected ({rows}, {(n_gw + 7) // 8})")
    cut_c = None if cut is None else c(cut, dtype=bool)
    if cut_c is not None and cut_c.shape != (rows, n_gw):
        raise ValueError(f"cut has shape {cut_c.shape}, expected ({rows}, {n_gw})")
    rank_to_fate = c(rank_to_fate, dtype=np.int8)
    if rank_to_fate.shape != (4,):
        raise ValueError("rank_to_fate must have 4 entries")
    status = np.empty(rows, dtype=np.int8)
    best = np.empty(rows, dtype=np.int16)
    count = np.empty(rows, dtype=np.int16)
    a = [c(s, dtype=np.float64), c(e, dtype=np.float64), c(grp, dtype=np.int64), c(slot, dtype=np.int64),
         c(node, dtype=np.int64), c(lin, dtype=np.float64), off_c, c(maxend, dtype=np.float64)]
    tp_c, rank_c, dbm_c = c(tp, dtype=np.int64), c(fate_rank, dtype=np.int8), c(dbm, dtype=np.float64)
    parts = _split(rows, 1, rows * n_gw)  # targets split between threads: each is decided on its own

    def run(i):
        lo, hi = parts[i]
        work, seen = np.empty(slots * n_gw), np.empty(n_gw, dtype=np.uint8)
        at = lambda x, w=1: None if x is None else _ptr(x) + lo * w * x.itemsize  # noqa: E731
        k.iotsim_verdict(s.shape[0], n_gw, slots, *(_ptr(x) for x in a), hi - lo, at(tp_c), co_mode, float(k_co),
                         _ptr(ki), locked.shape[1], at(locked, locked.shape[1]), at(cut_c, n_gw), at(rank_c),
                         _ptr(dbm_c), _ptr(rank_to_fate), int(delivered), _ptr(work), _ptr(seen), at(status), at(best),
                         at(count))

    _in_threads(run, len(parts))
    return status, best, count


__all__ = ["SOURCE", "allocate", "arrive", "cloud_fifo", "energy", "verdict", "lib", "load_error", "reset"]


def cloud_fifo(arrival_s: np.ndarray, service_s: float, free_s: np.ndarray, seq: np.ndarray,
               next_seq: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(start, done) of requests arriving at `arrival_s` (sorted) on servers free at `free_s` (ties by `seq`),
    updating the three state arrays in place (see iotsim.engine.chunked.CloudQueue); None without the kernels."""
    k = lib()
    if k is None:
        return None
    arrival = np.ascontiguousarray(arrival_s, dtype=np.float64)
    start = np.empty(arrival.size)
    done = np.empty(arrival.size)
    k.iotsim_cloud_fifo(arrival.size, _ptr(arrival), float(service_s), free_s.size, _ptr(free_s), _ptr(seq),
                        _ptr(next_seq), _ptr(start), _ptr(done))
    return start, done
