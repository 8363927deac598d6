"""Who in a fleet has an update when, and what receiving it cost each node's radio (any transport)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class Rollout:
    """Per node of an update: how much of it arrived, when it had all of it (s after the update's start;
    NaN if never) and its radio's time receiving, transmitting and ramping up (standby) for it, spread
    evenly from `radio_from_s` to `radio_until_s` after the start."""

    received: np.ndarray  # fragments or packets
    decoded_at: np.ndarray  # the fragment or packet after which the node had the update; -1: never
    done_s: np.ndarray
    rx_s: np.ndarray
    radio_from_s: np.ndarray
    radio_until_s: np.ndarray
    tx_s: np.ndarray
    standby_s: np.ndarray

    def radio_energy_j(self, rx_w: np.ndarray, tx_w: np.ndarray, standby_w: np.ndarray) -> np.ndarray:
        """Per node: battery energy of these radio times at its powers (above sleep)."""
        return self.rx_s * rx_w + self.tx_s * tx_w + self.standby_s * standby_w

    @property
    def decoded(self) -> np.ndarray:
        return self.decoded_at >= 0

    def time_to_share_s(self, share: float) -> float:
        """Time after the update's start until `share` of the nodes have received it (inf if never)."""
        return time_to_share(self.done_s, share)


def time_to_share(times_s: np.ndarray, share: float) -> float:
    """The time by which `share` of the nodes reached a point (NaN: never; inf if the share never does)."""
    n = times_s.size
    need = math.ceil(share * n - 1e-9)
    if need <= 0:
        return 0.0
    t = np.sort(np.where(np.isnan(times_s), np.inf, times_s))
    return float(t[need - 1])


__all__ = ["Rollout", "time_to_share"]
