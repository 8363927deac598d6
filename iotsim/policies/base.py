"""What a policy is: given the on-device model's verdict on each window, what the node sends.

Policies are vectorized: they see all windows of a fleet group at once and return one action per
window. Every policy runs on the same windows (same fleet, signals and seed), so comparisons are
paired.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

NOTHING = 0  # the window stays on the node
SEND_EVENT = 1  # a small event message (class, confidence, window time) goes up
SEND_RAW = 2  # the raw window goes up for inference in the cloud
ACTION_KINDS = {SEND_EVENT: "event", SEND_RAW: "raw"}


class Policy(ABC):
    name: str
    runs_on_device_inference: bool  # the node runs the int8 model on every window
    sends_heartbeats: bool  # the node reports it is alive periodically

    @abstractmethod
    def actions(self, device_positive: np.ndarray, device_confidence: np.ndarray) -> np.ndarray:
        """int8 action per window (NOTHING, SEND_EVENT or SEND_RAW)."""

    def describe(self) -> str:
        return self.name
