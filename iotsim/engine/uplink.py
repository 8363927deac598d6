"""From the messages a node wants to send to the LoRaWAN frames it puts on air, and when.

A message larger than the data rate's maximum application payload is split into fragments, each
with a small fragment header. Frames are paced by the regional duty cycle: after a frame of
airtime T the node may not transmit again for T/dc - T (ETSI EN 300 220; the whole duty-cycle
budget is applied to all channels together, which is conservative), nor before its class A
receive windows have closed. The node either waits for the next allowed time ("wait", the
LoRaMac-node behaviour with an application queue) or drops a message it may not start on time
("drop"); a dropped message's frames are lost with reason "duty_cycle".

For unconfirmed uplinks nothing from the network feeds back into a node's schedule, so each
node's schedule is computed exactly in closed form (a running maximum per node) instead of one
simulation event per frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iotsim.radio import lora, lorawan


@dataclass
class Messages:
    """Messages of one policy run, sorted by (node, ready time)."""

    node: np.ndarray  # global node index (row in the run's node arrays), int64
    ready_s: np.ndarray  # when the node has the message ready
    app_bytes: np.ndarray  # application payload, int64
    kind: np.ndarray  # int8: 0 heartbeat, 1 event, 2 raw
    window: np.ndarray  # flat window index within its group, -1 for heartbeats
    group: np.ndarray  # group index, int64

    def __len__(self) -> int:
        return int(self.node.shape[0])


KIND_HEARTBEAT = 0
KIND_NAMES = {0: "heartbeat", 1: "event", 2: "raw"}


@dataclass
class Frames:
    message: np.ndarray  # index into Messages
    node: np.ndarray
    fragment: np.ndarray  # 0-based fragment number within the message
    phy_bytes: np.ndarray  # LoRaWAN PHY payload (app + fragment header + 13 B MAC overhead)
    sf: np.ndarray
    airtime_s: np.ndarray
    ready_s: np.ndarray
    start_s: np.ndarray  # NaN when not transmitted
    dropped: np.ndarray  # bool: dropped because of the duty cycle

    def __len__(self) -> int:
        return int(self.node.shape[0])


def build_frames(messages: Messages, node_sf: np.ndarray, settings) -> Frames:
    """Split messages into frames and compute each frame's PHY size and airtime."""
    sf_msg = node_sf[messages.node]
    max_payload = lorawan.max_app_payload_array(sf_msg)
    header = settings.fragment_header_bytes
    needs_split = messages.app_bytes > max_payload
    per_frame = np.where(needs_split, max_payload - header, max_payload)
    if (per_frame <= 0).any():
        raise ValueError("fragment header does not fit in the maximum payload")
    n_frag = np.where(needs_split, -(-messages.app_bytes // per_frame), 1).astype(np.int64)
    msg_index = np.repeat(np.arange(len(messages)), n_frag)
    first = np.zeros(len(messages) + 1, dtype=np.int64)
    np.cumsum(n_frag, out=first[1:])
    fragment = np.arange(msg_index.shape[0]) - first[msg_index]
    app = messages.app_bytes[msg_index]
    pf = per_frame[msg_index]
    split = needs_split[msg_index]
    is_last = fragment == n_frag[msg_index] - 1
    payload = np.where(split, np.where(is_last, app - fragment * pf, pf) + header, app)
    phy = payload + lora.LORAWAN_OVERHEAD_BYTES
    sf = sf_msg[msg_index]
    airtime = lora.time_on_air_s(
        phy,
        sf,
        bandwidth_hz=settings.bandwidth_hz,
        coding_rate=lora.parse_coding_rate(settings.coding_rate),
        preamble_symbols=settings.preamble_symbols,
    )
    n = msg_index.shape[0]
    return Frames(
        message=msg_index, node=messages.node[msg_index], fragment=fragment, phy_bytes=phy.astype(np.int64),
        sf=sf, airtime_s=np.asarray(airtime, dtype=np.float64), ready_s=messages.ready_s[msg_index],
        start_s=np.full(n, np.nan), dropped=np.zeros(n, dtype=bool),
    )


def receive_windows_s(sf: np.ndarray, settings) -> tuple[np.ndarray, float]:
    """Time each class A receive window stays open (RX1 at the uplink SF, RX2 at rx2_sf)."""
    rx1 = settings.rx_window_symbols * lora.symbol_time_s(sf, settings.bandwidth_hz)
    rx2 = settings.rx_window_symbols * lora.symbol_time_s(settings.rx2_sf, settings.bandwidth_hz)
    return np.asarray(rx1, dtype=np.float64), float(rx2)


def min_gap_s(frames: Frames, settings, duty_cycle: float) -> np.ndarray:
    """Shortest time from a frame's start to the same node's next frame's start."""
    _, rx2 = receive_windows_s(frames.sf, settings)  # the node is free once RX2 has closed
    rx_done = frames.airtime_s + lorawan.EU868.rx2_delay_s + rx2
    return np.maximum(frames.airtime_s / duty_cycle, rx_done)


def schedule(frames: Frames, messages: Messages, settings, duty_cycle: float) -> None:
    """Fill frames.start_s and frames.dropped. Frames must be sorted by (node, ready, fragment)."""
    gap = min_gap_s(frames, settings, duty_cycle)
    n = len(frames)
    if n == 0:
        return
    if settings.duty_cycle_mode == "wait":
        frames.start_s[:] = serve_in_order(frames.ready_s, gap, frames.node)
    else:
        starts, ends = node_runs(frames.node)
        _schedule_drop(frames, gap, starts, ends)


def node_runs(node: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) indices of each run of equal values in `node` (sorted by node)."""
    n = node.shape[0]
    bounds = np.flatnonzero(np.diff(node)) + 1
    return np.concatenate(([0], bounds)), np.concatenate((bounds, [n]))


def serve_in_order(ready: np.ndarray, gap: np.ndarray, node: np.ndarray) -> np.ndarray:
    """Start of each item when a node serves its items in order, each no earlier than it is ready and
    no earlier than `gap` after the node's previous start. Items sorted by node, then order of service.

    t_i = max(a_i, t_{i-1} + g_{i-1})  =>  t_i = G_i + max_{j<=i}(a_j - G_j), G = cumulative gaps:
    a running maximum per node, in closed form instead of one simulation event per item.
    """
    out = np.empty(ready.shape[0], dtype=np.float64)
    if ready.shape[0] == 0:
        return out
    for lo, hi in zip(*(r.tolist() for r in node_runs(node))):
        g = np.concatenate(([0.0], np.cumsum(gap[lo : hi - 1])))
        out[lo:hi] = g + np.maximum.accumulate(ready[lo:hi] - g)
    return out


def _schedule_drop(frames: Frames, gap: np.ndarray, starts, ends) -> None:
    """A message starts only if the node may transmit when it is ready; its fragments then wait."""
    ready = frames.ready_s.tolist()
    msg = frames.message.tolist()
    gaps = gap.tolist()
    start = frames.start_s
    dropped = frames.dropped
    for lo, hi in zip(starts.tolist(), ends.tolist()):
        allowed = -np.inf
        current_msg = -1
        sending = False
        for i in range(lo, hi):
            if msg[i] != current_msg:
                current_msg = msg[i]
                sending = ready[i] >= allowed
            if not sending:
                dropped[i] = True
                continue
            t = ready[i] if ready[i] > allowed else allowed
            start[i] = t
            allowed = t + gaps[i]
