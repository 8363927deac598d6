"""On-device TinyML: the node runs the int8 model on every window and sends only detected events."""

from __future__ import annotations

import numpy as np

from iotsim.policies.base import NOTHING, SEND_EVENT, Policy


class OnDevice(Policy):
    name = "on_device"
    runs_on_device_inference = True
    sends_heartbeats = True

    def actions(self, device_positive: np.ndarray, device_confidence: np.ndarray) -> np.ndarray:
        return np.where(device_positive, SEND_EVENT, NOTHING).astype(np.int8)
