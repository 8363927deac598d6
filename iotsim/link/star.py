"""Short-range star links (Bluetooth LE, Wi-Fi) as `Link`s: frames, timing, link-layer retries.

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
  and hop over 37 channels, Wi-Fi stations contend with CSMA/CA.

Delivery is therefore decided at transmit time (the attempt draws); `receive` only reports it.

Timing per node, in closed form like the LoRaWAN link (a running maximum per node, no event per
frame):
- BLE: the node talks in its connection events (every connection interval, phase per node),
  `packets_per_event` data packets per event; an attempt takes one packet slot, so a frame ready
  at t starts in the first free slot at or after t.
- Wi-Fi: frames go back to back (channel access + attempts, each answered by an ACK); in
  "reconnect" power-save mode every message first spends the radio's startup time associating.

Radio time per frame (all attempts):
- BLE, per attempt: TX the data packet, T_IFS, RX the central's next packet (an empty PDU);
  keep-alive per connection event the node attends (every 1 + peripheral_latency intervals):
  ramp-up (standby), RX an empty PDU, T_IFS, TX an empty PDU.
- Wi-Fi, per attempt: RX while sensing the channel (DIFS + backoff, doubling the contention
  window after each failure), TX the PPDU, RX SIFS + ACK; keep-alive in "connected" mode: RX
  for `beacon_listen` every DTIM beacon; in "reconnect" mode, RX for the startup time per message.
"""

from __future__ import annotations

import numpy as np

from iotsim.link.base import KeepAlive, Link, LinkNodes, Messages, Transmissions, frames_from_split
from iotsim.link.draws import frame_salt, frame_uniforms
from iotsim.link.schedule import ServeCarry, serve_in_order
from iotsim.network.fate import Fate
from iotsim.ota.star import BleTransfer, WifiTransfer
from iotsim.radio import ble, fragmentation, wifi

FRAGMENT_HEADER_BYTES = 2  # per-frame application header when a message is split (as for LoRaWAN)


def attempt_success_probability(mean_rx_dbm: np.ndarray, sensitivity_dbm: float) -> np.ndarray:
    """P(Rayleigh-faded power >= sensitivity) = exp(-S/P), powers in linear units."""
    return np.exp(-np.power(10.0, (sensitivity_dbm - np.asarray(mean_rx_dbm, dtype=np.float64)) / 10.0))


def draw_attempts(success_p: np.ndarray, u: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Attempts until the first success (geometric), capped at `limit`: (attempts, delivered)."""
    p = np.clip(np.asarray(success_p, dtype=np.float64), 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.floor(np.log(u) / np.log1p(-p)) + 1.0  # u in (0, 1]
    k = np.where(p >= 1.0, 1.0, np.where(p <= 0.0, np.inf, k))
    delivered = k <= limit
    return np.minimum(k, limit).astype(np.int64), delivered


class StarLink(Link):
    """What BLE and Wi-Fi share: strongest gateway per node, geometric attempts, no duty cycle."""

    carrier_frequency_hz = 2.44e9  # the 2.4 GHz ISM band's centre (2400-2483.5 MHz)

    def __init__(self, network):
        self.network = network

    @property
    def settings(self):
        return getattr(self.network, self.technology)

    @property
    def tx_power_dbm(self) -> float:
        return float(self.settings.tx_power_dbm)

    # per technology
    def max_payload_bytes(self) -> int:
        raise NotImplementedError

    def frame_overhead_bytes(self) -> int:
        raise NotImplementedError

    def attempt_airtime_s(self, phy_bytes: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def gateway_sensitivity_dbm(self) -> float:
        raise NotImplementedError

    def max_attempts(self) -> int:
        raise NotImplementedError

    def _state_times(self, tx: Transmissions, attempts: np.ndarray, startup_s: np.ndarray) -> None:
        raise NotImplementedError

    def _schedule(self, tx: Transmissions, nodes: LinkNodes, carry: ServeCarry | None = None) -> np.ndarray:
        raise NotImplementedError

    def schedule_carry(self, n_nodes: int) -> ServeCarry:
        """What a run in time chunks hands from one chunk's schedule to the next (see `transmit`)."""
        return ServeCarry(n_nodes)

    # shared
    def node_links(self, rx_power_dbm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(gateway index, attempt success probability) per node: the strongest gateway on average."""
        gw = np.argmax(rx_power_dbm, axis=1).astype(np.int64)
        best = rx_power_dbm[np.arange(rx_power_dbm.shape[0]), gw]
        return gw, attempt_success_probability(best, self.gateway_sensitivity_dbm())

    def split(self, messages: Messages) -> Transmissions:
        n = len(messages)
        max_payload = np.full(n, self.max_payload_bytes(), dtype=np.int64)
        msg_index, fragment, payload = fragmentation.split_messages(messages.app_bytes, max_payload,
                                                                    FRAGMENT_HEADER_BYTES)
        phy = (payload + self.frame_overhead_bytes()).astype(np.int64)
        return frames_from_split(messages, msg_index, fragment, phy, np.zeros(msg_index.shape[0], np.int64),
                                 self.attempt_airtime_s(phy))

    def transmit(self, messages: Messages, nodes: LinkNodes, rng: np.random.Generator, duration_s: float,
                 stop_s: np.ndarray | None = None, carry: ServeCarry | None = None) -> Transmissions:
        """`carry`: a run in time chunks hands each node's schedule from one chunk to the next (in place)."""
        tx = self.split(messages)
        node_gw, node_p = self.node_links(nodes.rx_power_dbm)
        u = 1.0 - frame_uniforms(frame_salt(rng), messages, tx)  # in (0, 1]
        attempts, delivered = draw_attempts(node_p[tx.node], u, self.max_attempts())
        tx.attempts = attempts
        tx.link_fate = np.where(delivered, Fate.DELIVERED, Fate.LINK_RETRIES).astype(np.int8)
        tx.link_gateway = node_gw[tx.node].astype(np.int16)
        tx.channel = np.full(len(tx), -1, dtype=np.int8)  # BLE hops, Wi-Fi has one channel: not tracked
        self._state_times(tx, attempts, nodes.startup_s)
        tx.start_s = self._schedule(tx, nodes, carry)
        return tx

    transfer = None  # the technology's iotsim.ota.star transfer class

    def plan_update(self, payload_bytes, spec, rx_power_dbm, startup_s, rng, sf=None, horizon_s=np.inf,
                    verdicts=None):
        """Unicast transfers over each node's link, its gateway serving its nodes one after another
        (iotsim.ota.star)."""
        from iotsim.errors import InputError
        from iotsim.ota.star import simulate_star_rollout

        lorawan_only = {"data_rate", "redundancy", "unicast", "poll_period"} & spec.model_fields_set
        if lorawan_only:
            raise InputError(f"{', '.join(sorted(lorawan_only))} set a LoRaWAN FUOTA session; over {self.technology} an "
                             "update goes to each node over its link (leave them out)", field="updates")
        gateway, best = self.node_links(rx_power_dbm)
        success = attempt_success_probability(best, self.gateway_sensitivity_dbm()) * (1.0 - spec.fragment_loss)
        plan = self.transfer.of(self.settings, payload_bytes, self.max_attempts())
        return plan, simulate_star_rollout(plan, self.settings, success, gateway, startup_s, rng)

    def _common_note(self) -> str:
        return (
            "each node keeps a link to its strongest gateway; every attempt succeeds with the probability that a "
            "Rayleigh-faded signal stays above the gateway's sensitivity "
            f"({self.gateway_sensitivity_dbm():g} dBm), up to {self.max_attempts()} attempts per frame "
            "(then lost: link_retries); the frame's time on air counts every attempt; collisions between nodes "
            "are not modelled."
        )


class BleLink(StarLink):
    technology = "ble"
    radio_technology = "ble"
    transfer = BleTransfer

    def max_payload_bytes(self) -> int:
        return self.settings.max_ll_payload_bytes - ble.notification_overhead_bytes()

    def frame_overhead_bytes(self) -> int:
        return ble.notification_overhead_bytes()

    def attempt_airtime_s(self, phy_bytes):
        return ble.packet_time_s(phy_bytes, self.settings.phy, self.settings.encrypted)

    def gateway_sensitivity_dbm(self) -> float:
        return self.settings.gateway_sensitivity_dbm

    def max_attempts(self) -> int:
        b = self.settings
        return max(1, int(np.floor(b.supervision_timeout / b.connection_interval + 1e-9)))

    def _state_times(self, tx, attempts, startup_s) -> None:
        b = self.settings
        a = attempts.astype(np.float64)
        empty = ble.empty_packet_time_s(b.phy)
        tx.tx_s = a * tx.airtime_s
        tx.rx_s = a * empty
        standby = a * 2 * ble.T_IFS_S
        if b.peripheral_latency > 0:  # the node wakes for an event it would otherwise skip
            standby = standby + a * startup_s[tx.node]
        tx.standby_s = standby
        interval = b.connection_interval / b.packets_per_event
        tx.busy_s = (a - 1) * interval + tx.airtime_s + ble.T_IFS_S + empty

    def _schedule(self, tx, nodes, carry=None) -> np.ndarray:
        b = self.settings
        phase = nodes.phase_s[tx.node]
        pair = 2 * ble.T_IFS_S + ble.empty_packet_time_s(b.phy)  # central's packet + IFS around ours
        # in units of packet slots: the first slot at or after the ready time (slots of a connection
        # event start with the event), each attempt taking one slot
        events = np.ceil((tx.ready_s - phase) / b.connection_interval - 1e-12)
        earliest = np.maximum(events, 0) * b.packets_per_event
        first_slot = serve_in_order(earliest, tx.attempts.astype(np.float64), tx.node, carry)
        ev = np.floor(first_slot / b.packets_per_event)
        within = first_slot - ev * b.packets_per_event
        return phase + ev * b.connection_interval + within * (pair + tx.airtime_s)

    def keep_alive(self, nodes: LinkNodes) -> KeepAlive:
        b = self.settings
        empty = ble.empty_packet_time_s(b.phy)
        return KeepAlive(period_s=b.connection_interval * (1 + b.peripheral_latency), tx_s=empty, rx_s=empty,
                         standby_s=np.asarray(nodes.startup_s, dtype=np.float64) + ble.T_IFS_S)

    def notes(self) -> list[str]:
        b = self.settings
        return [
            f"Bluetooth LE keep-alive: every {b.connection_interval * (1 + b.peripheral_latency) * 1e3:g} ms "
            "the node ramps up its radio and exchanges empty PDUs with its central.",
            f"Radio: BLE LE {b.phy} packets per the Core spec (GATT notifications, {b.max_ll_payload_bytes}-byte LL "
            f"payloads, {'encrypted' if b.encrypted else 'unencrypted'}), {b.packets_per_event} packets per connection "
            f"event; {self._common_note()}",
        ]


class WifiLink(StarLink):
    technology = "wifi"
    radio_technology = "wifi"
    transfer = WifiTransfer

    def max_payload_bytes(self) -> int:
        return self.settings.mtu_bytes - self.settings.ip_overhead_bytes

    def frame_overhead_bytes(self) -> int:
        return self.settings.ip_overhead_bytes + wifi.MAC_OVERHEAD_BYTES

    def attempt_airtime_s(self, phy_bytes):
        return wifi.data_ppdu_time_s(phy_bytes, self.settings.standard, self.settings.mcs)

    def gateway_sensitivity_dbm(self) -> float:
        w = self.settings
        return w.ap_sensitivity_dbm if w.ap_sensitivity_dbm is not None else wifi.sensitivity_dbm(w.standard, w.mcs)

    def max_attempts(self) -> int:
        return self.settings.max_attempts

    def _state_times(self, tx, attempts, startup_s) -> None:
        limit = self.max_attempts()
        a = attempts.astype(np.float64)
        ack = wifi.ack_time_s()
        # contention: DIFS + mean backoff, the window doubling after each failed attempt (CWmin 15, CWmax 1023)
        cw = np.minimum((wifi.CW_MIN + 1) * 2.0 ** np.arange(limit) - 1, 1023)
        access = np.concatenate(([0.0], np.cumsum(wifi.DIFS_S + cw / 2 * wifi.SLOT_S)))
        access_total = access[attempts]
        tx.tx_s = a * tx.airtime_s
        rx = access_total + a * (wifi.SIFS_S + ack)
        if self.settings.power_save == "reconnect":  # associate before each message, receiving meanwhile
            rx = rx + np.where(tx.fragment == 0, startup_s[tx.node], 0.0)
        tx.rx_s = rx
        tx.standby_s = np.zeros_like(tx.tx_s)
        tx.busy_s = access_total + a * (tx.airtime_s + wifi.SIFS_S + ack)

    def _schedule(self, tx, nodes, carry=None) -> np.ndarray:
        ready = tx.ready_s
        if self.settings.power_save == "reconnect":
            ready = np.where(tx.fragment == 0, ready + nodes.startup_s[tx.node], ready)
        return serve_in_order(ready, tx.busy_s, tx.node, carry)

    def keep_alive(self, nodes: LinkNodes) -> KeepAlive | None:
        w = self.settings
        if w.power_save == "reconnect":
            return None
        return KeepAlive(period_s=w.beacon_interval * w.dtim_period, tx_s=0.0, rx_s=w.beacon_listen, standby_s=0.0)

    def notes(self) -> list[str]:
        w = self.settings
        mode = (f"stays associated and wakes for every DTIM beacon ({w.beacon_interval * w.dtim_period * 1e3:g} ms, "
                f"{w.beacon_listen * 1e3:g} ms receiving)" if w.power_save == "connected"
                else "re-associates before every message (the radio's startup time, receiving)")
        return [
            f"Wi-Fi power save: the node {mode}.",
            f"Radio: {w.standard} PPDU durations per IEEE 802.11-2016 (rate index {w.mcs}), DIFS + binary exponential "
            f"backoff, SIFS + ACK per attempt; {self._common_note()}",
        ]


__all__ = ["BleLink", "WifiLink", "StarLink", "attempt_success_probability", "draw_attempts"]
