"""Which gateways decode which frames: sensitivity, collisions and the capture effect.

A frame is decoded by a gateway when its received power reaches the gateway's sensitivity for its
spreading factor and it survives every frame that overlaps it in time on the same channel and
spreading factor (LoRa spreading factors are treated as orthogonal). It survives an overlapping
frame when it is at least `capture_threshold_db` stronger at that gateway (capture effect, 6 dB in
Bor et al., "Do LoRa Low-Power Wide-Area Networks Scale?", MSWiM 2016); otherwise both may be lost.
A frame is delivered when at least one gateway decodes it.

The check is a vectorized sweep: frames sorted by (channel, SF, start), each compared with the
frames that start before it ends. It needs no simulation event per frame and is exact for
uplinks that nodes send without feedback (unconfirmed LoRaWAN). Received powers are looked up
per node (they are static), and the arrays of frames x gateways are built for one block of
frames at a time, so memory stays bounded however many frames the run sends.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DELIVERED = 0
LOST_BELOW_SENSITIVITY = 1
LOST_COLLISION = 2
LOSS_REASONS = {LOST_BELOW_SENSITIVITY: "below_sensitivity", LOST_COLLISION: "collision"}
BLOCK_ELEMENTS = 1 << 22  # frames x gateways per block: 32 MB for each float64 array


@dataclass
class Reception:
    status: np.ndarray  # int8 per frame: DELIVERED or a LOST_* code
    gateway: np.ndarray  # int16 per frame: strongest gateway that decoded it, -1 if none
    gateways_decoding: np.ndarray  # int16 per frame: how many gateways decoded it


def resolve_receptions(
    start_s: np.ndarray,
    airtime_s: np.ndarray,
    channel: np.ndarray,
    sf: np.ndarray,
    node: np.ndarray,
    node_rx_power_dbm: np.ndarray,
    sensitivity_dbm: np.ndarray,
    capture_threshold_db: float,
) -> Reception:
    """Resolve every frame at every gateway.

    node: (n_frames,) row of `node_rx_power_dbm` that holds each frame's received power.
    node_rx_power_dbm: (n_nodes, n_gateways) received power of each node at each gateway.
    sensitivity_dbm: (n_frames,) gateway sensitivity for each frame's spreading factor.
    """
    n = start_s.shape[0]
    n_gw = node_rx_power_dbm.shape[1] if node_rx_power_dbm.ndim == 2 else 0
    if n == 0:
        empty = np.zeros(0, dtype=np.int16)
        return Reception(np.zeros(0, dtype=np.int8), empty, empty)
    order = np.lexsort((start_s, sf, channel))
    pairs = overlapping_pairs(
        start_s[order], (start_s + airtime_s)[order],
        (channel.astype(np.int64)[order] << 8) | sf.astype(np.int64)[order],
    )
    s_node = np.asarray(node)[order]
    s_sensitivity = np.asarray(sensitivity_dbm)[order]
    status_sorted = np.empty(n, dtype=np.int8)
    best = np.empty(n, dtype=np.int16)
    count = np.empty(n, dtype=np.int16)
    # frames x gateways arrays are built for one block of frames at a time
    block = max(1, BLOCK_ELEMENTS // max(n_gw, 1))
    for lo in range(0, n, block):
        hi = min(lo + block, n)
        power = node_rx_power_dbm[s_node[lo:hi]]
        collided = np.zeros((hi - lo, n_gw), dtype=bool)
        for d, first in enumerate(pairs, start=1):
            # pairs (i, i + d) with i in the block: frame i survives i + d only if it is
            # `capture_threshold_db` stronger; within one offset every i appears once, so plain
            # fancy indexing is exact
            a, b = np.searchsorted(first, (lo, hi))
            i = first[a:b]
            diff = power[i - lo] - node_rx_power_dbm[s_node[i + d]]  # (pairs, gateways)
            collided[i - lo] |= diff < capture_threshold_db
            # pairs (i, j = i + d) with j in the block: the same rule for frame j
            a, b = np.searchsorted(first, (lo - d, hi - d))
            i = first[a:b]
            diff = node_rx_power_dbm[s_node[i]] - power[i + d - lo]
            collided[i + d - lo] |= -diff < capture_threshold_db
        audible = power >= s_sensitivity[lo:hi, None]
        decoded = audible & ~collided
        delivered = decoded.any(axis=1)
        status_sorted[lo:hi] = np.where(
            delivered, DELIVERED, np.where(audible.any(axis=1), LOST_COLLISION, LOST_BELOW_SENSITIVITY)
        )
        masked = np.where(decoded, power, -np.inf)
        best[lo:hi] = np.where(delivered, np.argmax(masked, axis=1), -1)
        count[lo:hi] = decoded.sum(axis=1)

    status = np.empty(n, dtype=np.int8)
    gateway = np.empty(n, dtype=np.int16)
    gateways_decoding = np.empty(n, dtype=np.int16)
    status[order] = status_sorted
    gateway[order] = best
    gateways_decoding[order] = count
    return Reception(status, gateway, gateways_decoding)


def overlapping_pairs(start_s: np.ndarray, end_s: np.ndarray, group: np.ndarray) -> list[np.ndarray]:
    """Frames that overlap in time within one (channel, SF) group, for frames sorted by (group, start).

    Returns, for d = 1, 2, ..., the sorted indices i whose d-th successor i + d is in the same group
    and starts before i ends. Once i + d does not overlap i, no later frame does (same group means
    contiguous, later start), so the search stops there.
    """
    n = start_s.shape[0]
    out = []
    i = np.arange(n - 1)
    d = 1
    while i.size:
        j = i + d
        keep = j < n
        i, j = i[keep], j[keep]
        i = i[(group[j] == group[i]) & (start_s[j] < end_s[i])]
        if i.size:
            out.append(i)
        d += 1
    return out
