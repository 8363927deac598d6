"""What a policy is: given the on-device model's verdict on each window, what the node sends.

Policies are vectorized: they see all windows of a fleet group at once and return one action per
window. Every policy runs on the same windows (same fleet, signals and seed), so comparisons are
paired.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import IntEnum

import numpy as np


class MessageKind(IntEnum):
    """What a message carries (int8 codes in message arrays; names in the tables)."""

    HEARTBEAT = 0  # the node reports it is alive
    EVENT = 1  # a small event message (class, confidence, window time)
    RAW = 2  # a raw sensor window, for inference in the cloud
    MODEL_UPDATE = 3  # a node's locally trained weights, for a federated round
    POLL = 4  # an uplink without payload that opens class A receive windows (unicast of an update)

    @property
    def label(self) -> str:
        return self.name.lower()


# a policy's action per window: nothing, or send a message of that kind
NOTHING = -1  # the window stays on the node
SEND_EVENT = MessageKind.EVENT
SEND_RAW = MessageKind.RAW
KIND_NAMES = [k.label for k in MessageKind]
"""Message kind names by code."""


class Policy(ABC):
    name: str
    runs_on_device_inference: bool  # the node runs the int8 model on every window
    sends_heartbeats: bool  # the node reports it is alive periodically

    @abstractmethod
    def actions(self, device_positive: np.ndarray, device_confidence: np.ndarray) -> np.ndarray:
        """int8 action per window (NOTHING, SEND_EVENT or SEND_RAW)."""

    def describe(self) -> str:
        return self.name
