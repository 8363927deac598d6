"""Model updates over Bluetooth LE and Wi-Fi: each gateway (BLE central: a phone or hub; Wi-Fi access
point) sends the update to its nodes one after another, over each node's own link, as a phone's DFU
app or a hub's update service does. Nothing is multicast; the transfer is acknowledged and retried by
the link layer.

- Bluetooth LE (Core spec Vol 6 Part B; packet times from `iotsim.radio.ble`): the central writes the
  payload in LL data packets of `max_ll_payload_bytes`, each carrying an L2CAP (4 B) and ATT (3 B)
  header before its share of the payload (Write Without Response, the same 7 bytes as a notification),
  `packets_per_event` per connection event. Per attempt the node receives the packet and answers
  (an empty PDU) T_IFS later; per connection event it ramps its radio up (its startup time).
- Wi-Fi (IEEE 802.11-2016; `iotsim.radio.wifi`): the access point sends MSDUs of the link's MTU (IP
  and MAC overheads as for uplinks); per attempt DIFS + the mean backoff of the current contention
  window (doubling after each failure) + the PPDU + SIFS + the node's ACK. The node stays awake and
  receiving for its whole transfer, transmitting only its ACKs; in "reconnect" power save it first
  associates (its startup time, receiving).
- Each attempt arrives with the probability that the Rayleigh-faded signal clears the sensitivity
  (exp(-S/P), the link's mean power and the gateway's sensitivity figure, as for uplinks: the
  reciprocal link with the same radios), times 1 - `fragment_loss`. A packet that fails its link's
  attempt limit (BLE: the supervision timeout, one attempt per packet slot; Wi-Fi: the retry limit)
  ends the node's transfer: the node does not get the update.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iotsim.ota.rollout import Rollout
from iotsim.radio import ble, wifi


@dataclass(frozen=True)
class StarTransfer:
    """One node's transfer of an update over its link (a technology's subclass times it)."""

    payload_bytes: int
    packet_payload_bytes: int  # payload bytes per packet (BLE LL packet, Wi-Fi MSDU)
    packets: int
    max_attempts: int  # per packet

    def busy_s(self, rollout: Rollout) -> float:
        """How long the gateways are taken by the transfers: until the last node's ends."""
        return float(rollout.radio_until_s.max()) if rollout.radio_until_s.size else 0.0

    def table_row(self) -> dict:
        """The transfer's columns of the updates table."""
        return {"packets": self.packets, "packet_bytes": self.packet_payload_bytes}

    def describe(self) -> str:
        return (f"{self.packets} packets of up to {self.packet_payload_bytes} B to each node over its link, each gateway "
                "serving its nodes one after another")

    def radio_times(self, settings, made: np.ndarray, got: np.ndarray, startup_s: np.ndarray):
        """(duration, rx, tx, standby) per node, from the attempts made per packet and packets received."""
        raise NotImplementedError


class BleTransfer(StarTransfer):
    @classmethod
    def of(cls, settings, payload_bytes: int, max_attempts: int) -> "BleTransfer":
        per = settings.max_ll_payload_bytes - ble.notification_overhead_bytes()
        return cls(payload_bytes, per, -(-payload_bytes // per), max_attempts)

    def radio_times(self, settings, made, got, startup_s):
        s = settings
        attempts = made.sum(axis=1).astype(np.float64)
        pkt = float(ble.packet_time_s(self.packet_payload_bytes + ble.notification_overhead_bytes(), s.phy,
                                      s.encrypted))
        events = np.ceil(attempts / s.packets_per_event)
        duration = events * s.connection_interval
        return (duration, attempts * pkt, attempts * ble.empty_packet_time_s(s.phy),
                events * startup_s + attempts * 2 * ble.T_IFS_S)


class WifiTransfer(StarTransfer):
    @classmethod
    def of(cls, settings, payload_bytes: int, max_attempts: int) -> "WifiTransfer":
        per = settings.mtu_bytes - settings.ip_overhead_bytes
        return cls(payload_bytes, per, -(-payload_bytes // per), max_attempts)

    def radio_times(self, settings, made, got, startup_s):
        w = settings
        ppdu = float(wifi.data_ppdu_time_s(self.packet_payload_bytes + w.ip_overhead_bytes + wifi.MAC_OVERHEAD_BYTES,
                                           w.standard, w.mcs))
        ack = wifi.ack_time_s()
        cw = np.minimum((wifi.CW_MIN + 1) * 2.0 ** np.arange(self.max_attempts) - 1, 1023)
        access = np.concatenate(([0.0], np.cumsum(wifi.DIFS_S + cw / 2 * wifi.SLOT_S)))  # before attempt k + 1
        duration = (access[made] + made * (ppdu + wifi.SIFS_S + ack)).sum(axis=1)
        if w.power_save == "reconnect":  # associate first, receiving
            duration = duration + startup_s
        tx = got * ack
        return duration, duration - tx, tx, np.zeros(made.shape[0])


def _attempts(transfer: StarTransfer, success: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per node and packet: attempts made (geometric, capped at the limit) and whether it got through."""
    n = success.shape[0]
    p = np.clip(success, 1e-300, 1.0)[:, None]
    draws = rng.geometric(np.broadcast_to(p, (n, transfer.packets)))
    ok = draws <= transfer.max_attempts
    made = np.minimum(draws, transfer.max_attempts)
    # the transfer stops at the first packet that fails: later packets are never sent
    failed_before = np.cumsum(~ok, axis=1) - ~ok
    made = np.where(failed_before > 0, 0, made)
    return made, ok & (failed_before == 0)


def simulate_star_rollout(transfer: StarTransfer, settings, success: np.ndarray, gateway: np.ndarray,
                          startup_s: np.ndarray, rng: np.random.Generator) -> Rollout:
    """Every node's transfer, each gateway serving its nodes one after another in node order."""
    n = success.shape[0]
    made, ok = _attempts(transfer, success, rng)
    got = ok.sum(axis=1)
    complete = got == transfer.packets
    duration, rx, tx, standby = transfer.radio_times(settings, made, got, np.asarray(startup_s, dtype=np.float64))
    # each gateway's nodes one after another
    start = np.zeros(n)
    for g in np.unique(gateway).tolist():
        idx = np.flatnonzero(gateway == g)
        start[idx] = np.concatenate(([0.0], np.cumsum(duration[idx])[:-1]))
    end = start + duration
    decoded_at = np.where(complete, transfer.packets, -1).astype(np.int64)
    done = np.where(complete, end, np.nan)
    return Rollout(got, decoded_at, done, rx, start, end, tx, standby)


__all__ = ["BleTransfer", "StarTransfer", "WifiTransfer", "simulate_star_rollout"]
