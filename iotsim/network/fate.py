"""What became of a frame: one enum for every link, reception model, table and plot.

A frame's fate is decided in stages: the node may never send it (it died first, the run ended
while it waited, or the duty cycle made it drop the message), or it goes on air and is then
delivered or lost at the gateways (too weak, the gateway was transmitting, every demodulator
path was busy, interference) or, on links that retry at the link layer, lost after the last
attempt. The string `reason` is what tables and plots show (empty for delivered frames).
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Fate(IntEnum):
    DELIVERED = 0
    BELOW_SENSITIVITY = 1  # weaker than every gateway's sensitivity for its data rate
    COLLISION = 2  # lost to interference at every gateway that heard it (SINR below the threshold)
    DEMODULATORS_BUSY = 3  # arrived while all of a gateway's reception paths were busy
    GATEWAY_TRANSMITTING = 4  # arrived while the gateway was transmitting (half duplex)
    LINK_RETRIES = 5  # BLE / Wi-Fi: every link-layer attempt failed
    DUTY_CYCLE = 6  # dropped by the node before air: the duty cycle forbade sending in time
    NODE_DEAD = 7  # the node died before it could send it
    PENDING = 8  # still waiting to be sent when the run ended
    CHANNEL_ACCESS = 9  # mesh: a node on its path found the channel busy macMaxCSMABackoffs + 1 times
    QUEUE_FULL = 10  # mesh: the next node's frame queue was full
    NO_ROUTE = 11  # mesh: the node holding it had no route (orphaned)
    RELAY_DEAD = 12  # mesh: the relay holding it died
    NO_ENERGY = 13  # a harvesting node was off (its store empty) when it would have sent it

    @property
    def reason(self) -> str:
        """The loss reason as tables show it ("" for a delivered frame)."""
        return _REASONS[self]

    @property
    def went_on_air(self) -> bool:
        return self not in NOT_ON_AIR


_REASONS = {
    Fate.DELIVERED: "",
    Fate.BELOW_SENSITIVITY: "below_sensitivity",
    Fate.COLLISION: "collision",
    Fate.DEMODULATORS_BUSY: "demodulators_busy",
    Fate.GATEWAY_TRANSMITTING: "gateway_transmitting",
    Fate.LINK_RETRIES: "link_retries",
    Fate.DUTY_CYCLE: "duty_cycle",
    Fate.NODE_DEAD: "node_dead",
    Fate.PENDING: "pending_at_end",
    Fate.CHANNEL_ACCESS: "channel_access",
    Fate.QUEUE_FULL: "queue_full",
    Fate.NO_ROUTE: "no_route",
    Fate.RELAY_DEAD: "relay_dead",
    Fate.NO_ENERGY: "no_energy",
}
NOT_ON_AIR = frozenset({Fate.DUTY_CYCLE, Fate.NODE_DEAD, Fate.PENDING, Fate.NO_ENERGY})
"""Fates of frames that never went on air."""
NOT_OFFERED = frozenset({Fate.NODE_DEAD, Fate.PENDING, Fate.NO_ENERGY})
"""Fates of frames the node never handed to its radio within the run (not counted as offered)."""
LOSSES_ON_AIR = tuple(f for f in Fate if f is not Fate.DELIVERED and f not in NOT_ON_AIR)
"""Ways a frame that went on air is lost, in table order."""
REASON_NAMES = [f.reason for f in Fate]
"""Reason text by fate code (index with the int8 codes of a fate array)."""


def on_air(codes: np.ndarray) -> np.ndarray:
    """Mask of frames that went on air, from an array of fate codes (in a mesh: handed to the network)."""
    return ~np.isin(codes, _NOT_ON_AIR_CODES)


_NOT_ON_AIR_CODES = np.array(sorted(int(f) for f in NOT_ON_AIR), dtype=np.int8)


__all__ = ["Fate", "NOT_ON_AIR", "NOT_OFFERED", "LOSSES_ON_AIR", "REASON_NAMES", "on_air"]
