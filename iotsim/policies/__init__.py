"""Policies: small strategy objects deciding what each node sends."""

from __future__ import annotations

from iotsim.policies.base import KIND_NAMES, NOTHING, SEND_EVENT, SEND_RAW, MessageKind, Policy
from iotsim.policies.cascade import Cascade
from iotsim.policies.cloud_offload import CloudOffload
from iotsim.policies.energy_aware import EnergyAware
from iotsim.policies.on_device import OnDevice

__all__ = ["Policy", "CloudOffload", "OnDevice", "Cascade", "EnergyAware", "make_policy", "NOTHING", "SEND_EVENT",
           "SEND_RAW", "MessageKind", "KIND_NAMES"]


def make_policy(entry) -> Policy:
    """Build a policy from a scenario entry: 'cloud_offload', 'on_device', 'cascade', {cascade: {...}} or
    {energy_aware: {...}}."""
    if entry == "cloud_offload":
        return CloudOffload()
    if entry == "on_device":
        return OnDevice()
    if entry == "cascade":
        return Cascade()
    if hasattr(entry, "cascade"):
        return Cascade(confidence_below=entry.cascade.confidence_below)
    if hasattr(entry, "energy_aware"):
        e = entry.energy_aware
        return EnergyAware(make_policy(e.normal), make_policy(e.low), e.below, e.above)
    raise ValueError(f"unknown policy {entry!r}")
