"""Short-range star links (Bluetooth LE, Wi-Fi): frames, their timing, retries and radio time.

Each node keeps a link to one gateway (BLE central: a phone or hub; Wi-Fi access point): the
one with the strongest mean received power. Unlike LoRaWAN there is no duty-cycle limit, and
the link layer acknowledges and retransmits:

- a frame's every attempt succeeds independently with the probability that a Rayleigh-faded
  signal stays above the gateway's sensitivity, exp(-S / P) in linear power units (BLE hops
  channels between connection events and Wi-Fi retries after a random backoff, so successive
  attempts see independent fades); the static path loss and shadowing set the mean P;
- the number of attempts is geometric; a frame still not through after `max_attempts` is lost
  with reason "link_retries" (BLE: the supervision timeout expires, one attempt per connection
  event; Wi-Fi: dot11ShortRetryLimit);
- collisions between nodes are not modelled: BLE connections are scheduled by their centrals
  and hop over 37 channels, Wi-Fi stations contend with CSMA/CA (a warning names any access
  point whose offered airtime is not small).

Timing per node, in closed form like the LoRaWAN path (a running maximum per node, no event per
frame):
- BLE: the node talks in its connection events (every connection interval, phase per node),
  `packets_per_event` data packets per event; an attempt takes one packet slot, so a frame ready
  at t starts in the first free slot at or after t.
- Wi-Fi: frames go back to back (channel access + attempts, each answered by an ACK); in
  "reconnect" power-save mode every message first spends the radio's startup time associating.

Radio time charged to the energy ledger, per frame (all attempts):
- BLE, per attempt: TX the data packet, T_IFS, RX the central's next packet (an empty PDU);
  keep-alive per connection event the node attends (every 1 + peripheral_latency intervals):
  ramp-up (standby), RX an empty PDU, T_IFS, TX an empty PDU.
- Wi-Fi, per attempt: RX while sensing the channel (DIFS + backoff, doubling the contention
  window after each failure), TX the PPDU, RX SIFS + ACK; keep-alive in "connected" mode: RX
  for `beacon_listen` every DTIM beacon; in "reconnect" mode, RX for the startup time per message.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iotsim.engine.uplink import Frames, Messages, serve_in_order
from iotsim.radio import ble, wifi

FRAGMENT_HEADER_BYTES = 2  # per-frame application header when a message is split (as for LoRaWAN)


@dataclass
class LinkTiming:
    """Per-frame link results for a star link."""

    attempts: np.ndarray  # int64 per frame (attempts made, <= max_attempts)
    delivered: np.ndarray  # bool per frame
    duration_s: np.ndarray  # from the first attempt's start to the last attempt's end
    tx_s: np.ndarray  # radio time per frame in each state, all attempts
    rx_s: np.ndarray
    standby_s: np.ndarray
    gateway: np.ndarray  # int64 per frame (the node's gateway)


@dataclass
class KeepAlive:
    """Radio time a connected node spends per period with nothing to send."""

    period_s: float
    tx_s: float
    rx_s: float
    standby_s: np.ndarray | float  # per node (radio ramp-up differs per board)


def max_payload_bytes(network) -> int:
    """Application bytes one frame carries before a message must be split."""
    if network.technology == "ble":
        return network.ble.max_ll_payload_bytes - ble.notification_overhead_bytes()
    return network.wifi.mtu_bytes - network.wifi.ip_overhead_bytes


def frame_overhead_bytes(network) -> int:
    """Bytes each frame adds to its application payload, up to the PHY payload (PSDU / LL payload)."""
    if network.technology == "ble":
        return ble.notification_overhead_bytes()
    return network.wifi.ip_overhead_bytes + wifi.MAC_OVERHEAD_BYTES


def gateway_sensitivity_dbm(network) -> float:
    if network.technology == "ble":
        return network.ble.gateway_sensitivity_dbm
    w = network.wifi
    return w.ap_sensitivity_dbm if w.ap_sensitivity_dbm is not None else wifi.sensitivity_dbm(w.standard, w.mcs)


def max_attempts(network) -> int:
    if network.technology == "ble":
        b = network.ble
        return max(1, int(np.floor(b.supervision_timeout / b.connection_interval + 1e-9)))
    return network.wifi.max_attempts


def attempt_success_probability(mean_rx_dbm: np.ndarray, sensitivity_dbm: float) -> np.ndarray:
    """P(Rayleigh-faded power >= sensitivity) = exp(-S/P), powers in linear units."""
    return np.exp(-np.power(10.0, (sensitivity_dbm - np.asarray(mean_rx_dbm, dtype=np.float64)) / 10.0))


def build_frames(messages: Messages, network) -> Frames:
    """Split messages into frames; PHY payload and one attempt's airtime per frame."""
    max_app = max_payload_bytes(network)
    per_frame = max_app - FRAGMENT_HEADER_BYTES
    app_bytes = messages.app_bytes
    needs_split = app_bytes > max_app
    n_frag = np.where(needs_split, -(-app_bytes // per_frame), 1).astype(np.int64)
    msg_index = np.repeat(np.arange(len(messages)), n_frag)
    first = np.zeros(len(messages) + 1, dtype=np.int64)
    np.cumsum(n_frag, out=first[1:])
    fragment = np.arange(msg_index.shape[0]) - first[msg_index]
    app = app_bytes[msg_index]
    split = needs_split[msg_index]
    is_last = fragment == n_frag[msg_index] - 1
    payload = np.where(split, np.where(is_last, app - fragment * per_frame, per_frame) + FRAGMENT_HEADER_BYTES, app)
    phy = (payload + frame_overhead_bytes(network)).astype(np.int64)
    if network.technology == "ble":
        airtime = ble.packet_time_s(phy, network.ble.phy, network.ble.encrypted)
    else:
        airtime = wifi.data_ppdu_time_s(phy, network.wifi.standard, network.wifi.mcs)
    n = msg_index.shape[0]
    return Frames(
        message=msg_index, node=messages.node[msg_index], fragment=fragment, phy_bytes=phy,
        sf=np.zeros(n, dtype=np.int64), airtime_s=np.asarray(airtime, dtype=np.float64),
        ready_s=messages.ready_s[msg_index], start_s=np.full(n, np.nan), dropped=np.zeros(n, dtype=bool),
    )


def draw_attempts(success_p: np.ndarray, u: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Attempts until the first success (geometric), capped at `limit`: (attempts, delivered)."""
    p = np.clip(np.asarray(success_p, dtype=np.float64), 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.floor(np.log(u) / np.log1p(-p)) + 1.0  # u in (0, 1]
    k = np.where(p >= 1.0, 1.0, np.where(p <= 0.0, np.inf, k))
    delivered = k <= limit
    return np.minimum(k, limit).astype(np.int64), delivered


def link_timing(frames: Frames, network, node_startup_s: np.ndarray, node_gateway: np.ndarray,
                node_success_p: np.ndarray, u: np.ndarray) -> LinkTiming:
    """Attempts, outcome and per-state radio time of every frame (not yet scheduled).

    `u` holds one uniform draw in (0, 1] per frame; `node_startup_s` is each node's radio startup time.
    """
    limit = max_attempts(network)
    attempts, delivered = draw_attempts(node_success_p[frames.node], u, limit)
    a = attempts.astype(np.float64)
    if network.technology == "ble":
        b = network.ble
        empty = ble.empty_packet_time_s(b.phy)
        tx = a * frames.airtime_s
        rx = a * empty
        standby = a * 2 * ble.T_IFS_S
        if b.peripheral_latency > 0:  # the node wakes for an event it would otherwise skip
            standby = standby + a * node_startup_s[frames.node]
        interval = b.connection_interval / b.packets_per_event
        duration = (a - 1) * interval + frames.airtime_s + ble.T_IFS_S + empty
    else:
        ack = wifi.ack_time_s()
        # contention: DIFS + mean backoff, the window doubling after each failed attempt (CWmin 15, CWmax 1023)
        cw = np.minimum((wifi.CW_MIN + 1) * 2.0 ** np.arange(limit) - 1, 1023)
        access = np.concatenate(([0.0], np.cumsum(wifi.DIFS_S + cw / 2 * wifi.SLOT_S)))
        access_total = access[attempts]
        tx = a * frames.airtime_s
        rx = access_total + a * (wifi.SIFS_S + ack)
        standby = np.zeros_like(tx)
        duration = access_total + a * (frames.airtime_s + wifi.SIFS_S + ack)
        if network.wifi.power_save == "reconnect":  # associate before each message, receiving meanwhile
            rx = rx + np.where(frames.fragment == 0, node_startup_s[frames.node], 0.0)
    return LinkTiming(attempts, delivered, duration, tx, rx, standby, node_gateway[frames.node])


def schedule(frames: Frames, timing: LinkTiming, network, node_startup_s: np.ndarray, node_phase_s: np.ndarray) -> None:
    """Fill frames.start_s (nothing is dropped: these links have no duty-cycle limit).

    Frames must be sorted by (node, ready, fragment).
    """
    if len(frames) == 0:
        return
    if network.technology == "ble":
        b = network.ble
        phase = node_phase_s[frames.node]
        pair = 2 * ble.T_IFS_S + ble.empty_packet_time_s(b.phy)  # central's packet + IFS around ours
        # in units of packet slots: the first slot at or after the ready time (slots of a connection
        # event start with the event), each attempt taking one slot
        events = np.ceil((frames.ready_s - phase) / b.connection_interval - 1e-12)
        earliest = np.maximum(events, 0) * b.packets_per_event
        first_slot = serve_in_order(earliest, timing.attempts.astype(np.float64), frames.node)
        ev = np.floor(first_slot / b.packets_per_event)
        within = first_slot - ev * b.packets_per_event
        frames.start_s[:] = phase + ev * b.connection_interval + within * (pair + frames.airtime_s)
        return
    ready = frames.ready_s
    if network.wifi.power_save == "reconnect":
        ready = np.where(frames.fragment == 0, ready + node_startup_s[frames.node], ready)
    frames.start_s[:] = serve_in_order(ready, timing.duration_s, frames.node)


def keepalive(network, node_startup_s: np.ndarray) -> KeepAlive | None:
    """Radio time per period that keeps the link up (per node); None when the radio is off between messages."""
    if network.technology == "ble":
        b = network.ble
        empty = ble.empty_packet_time_s(b.phy)
        return KeepAlive(
            period_s=b.connection_interval * (1 + b.peripheral_latency),
            tx_s=empty,
            rx_s=empty,
            standby_s=np.asarray(node_startup_s, dtype=np.float64) + ble.T_IFS_S,
        )
    w = network.wifi
    if w.power_save == "reconnect":
        return None
    return KeepAlive(period_s=w.beacon_interval * w.dtim_period, tx_s=0.0, rx_s=w.beacon_listen, standby_s=0.0)


def node_links(rx_power_dbm: np.ndarray, network) -> tuple[np.ndarray, np.ndarray]:
    """(gateway index, attempt success probability) per node: the strongest gateway on average."""
    gw = np.argmax(rx_power_dbm, axis=1).astype(np.int64)
    best = rx_power_dbm[np.arange(rx_power_dbm.shape[0]), gw]
    return gw, attempt_success_probability(best, gateway_sensitivity_dbm(network))
