"""Cloud offload: every raw window goes up; the cloud runs the model and decides."""

from __future__ import annotations

import numpy as np

from iotsim.policies.base import SEND_RAW, Policy


class CloudOffload(Policy):
    name = "cloud_offload"
    runs_on_device_inference = False
    sends_heartbeats = False  # the raw windows themselves show the node is alive

    def actions(self, device_positive: np.ndarray, device_confidence: np.ndarray) -> np.ndarray:
        return np.full(device_positive.shape, SEND_RAW, dtype=np.int8)
