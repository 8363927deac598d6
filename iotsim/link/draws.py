"""Random draws of frames keyed by what each frame is, not by where it sits in the run's arrays.

A frame's first-attempt draw (the channel a LoRaWAN node picks; the attempts a BLE or Wi-Fi frame
needs) is a hash of the run's salt and the frame's identity: its node, its message's kind, window
and ready time, and its fragment number (splitmix64's finalizer, S. Vigna, applied in a chain; the
top 53 bits give a double in [0, 1)). Two runs whose messages differ only after a time T therefore
give every frame before T the same draw, so the same schedule and the same fate: a link's outcome
up to T depends on the traffic up to T only (the closed loop's later draws come from streams
consumed in event order, which is time order). Federated rounds rely on it: a round is decided on a
pass whose later traffic still uses the previous model, and the final pass agrees with it.

The frames of one node's messages must differ in (kind, window, ready time, fragment), as they do:
windows of a node end at distinct times, heartbeats at distinct times.
"""

from __future__ import annotations

import struct

import numpy as np

from iotsim.link.base import Messages, Transmissions

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's output function on uint64 arrays (wrapping arithmetic)."""
    z = z + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _C1
    z = (z ^ (z >> np.uint64(27))) * _C2
    return z ^ (z >> np.uint64(31))


def keyed_uniforms(salt: int, *keys: np.ndarray) -> np.ndarray:
    """Uniform doubles in [0, 1), one per row of the equally long integer arrays `keys`."""
    n = keys[0].shape[0]
    h = _mix(np.full(n, np.uint64(salt & (2**64 - 1)), dtype=np.uint64))
    for k in keys:
        h = _mix(h ^ np.asarray(k).astype(np.int64).view(np.uint64))
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


_M64 = 2**64 - 1


def _mix_int(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def keyed_uniform(salt: int, node: int, kind: int, window: int, ready_s: float, fragment: int) -> float:
    """One frame's draw, as `frame_uniforms` computes it for arrays (the SimPy engine, one at a time)."""
    h = _mix_int(salt & _M64)
    for k in (node, kind, window, struct.unpack("<q", struct.pack("<d", ready_s))[0], fragment):
        h = _mix_int(h ^ (k & _M64))
    return (h >> 11) * (1.0 / 9007199254740992.0)


def keyed_uniform_of(salt: int, *keys: int) -> float:
    """`keyed_uniforms` for one row of integer keys (plain Python: no array per draw)."""
    h = _mix_int(salt & _M64)
    for k in keys:
        h = _mix_int(h ^ (k & _M64))
    return (h >> 11) * (1.0 / 9007199254740992.0)


def frame_salt(rng: np.random.Generator) -> int:
    """The run's salt for frame draws: the first draw of the link's generator."""
    return int(rng.integers(0, 2**63))


def frame_uniforms(salt: int, messages: Messages, tx: Transmissions) -> np.ndarray:
    """One uniform in [0, 1) per frame of `tx` (split from `messages`), keyed by the frame's identity."""
    m = tx.message
    return keyed_uniforms(salt, tx.node, messages.kind[m].astype(np.int64), messages.window[m],
                          np.ascontiguousarray(messages.ready_s[m], dtype=np.float64).view(np.int64), tx.fragment)


__all__ = ["frame_salt", "frame_uniforms", "keyed_uniform", "keyed_uniform_of", "keyed_uniforms"]
