"""Cascade: the node decides when its model is confident; unsure windows go up raw to the cloud."""

from __future__ import annotations

import numpy as np

from iotsim.policies.base import NOTHING, SEND_EVENT, SEND_RAW, Policy


class Cascade(Policy):
    name = "cascade"
    runs_on_device_inference = True
    sends_heartbeats = True

    def __init__(self, confidence_below: float = 0.8):
        if not 0.0 < confidence_below <= 1.0:
            raise ValueError("confidence_below must be in (0, 1]")
        self.confidence_below = confidence_below

    def actions(self, device_positive: np.ndarray, device_confidence: np.ndarray) -> np.ndarray:
        local = np.where(device_positive, SEND_EVENT, NOTHING)
        return np.where(device_confidence < self.confidence_below, SEND_RAW, local).astype(np.int8)

    def describe(self) -> str:
        return f"cascade (raw to cloud when confidence < {self.confidence_below:g})"
