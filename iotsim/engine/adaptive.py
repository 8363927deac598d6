"""Energy-aware nodes: each harvesting node picks, hour by hour, between two policies by its store's charge.

The choice feeds back: what a node sends in an hour drains its store, and the store decides the next hours. The
engine closes the loop in passes (as it does for battery deaths under feedback):

1. each policy alone: its messages, the link's frames and the node's loads give a demand per node and hour;
2. the stores run with both demands: an hour that starts below `below` of the capacity (or below `above` when
   the previous hour was low) draws the low policy's demand (iotsim.energy.storage.simulate_storage);
3. the run's messages are each policy's messages in the hours of its mode (by the hour the message is ready);
   the link schedules them once; the actual demand replaces the estimate for the hours each mode ran;
4. repeat from 2 until the modes settle (at most MAX_PASSES); the settled pass's stores are the run's.

The loads of a node blend the two policies' per-window work (inference or not) by the share of its hours in each
mode. Every frame's energy is the frame's own.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from iotsim.engine import stages
from iotsim.engine.fleet import STREAM_LINK, group_rng
from iotsim.engine.harvest import HOUR_S, HarvestOutcome, HarvestPlan, hourly_demand_j, run_stores, step_lengths_s
from iotsim.engine.messages import merge_messages, policy_messages
from iotsim.link import Messages

MAX_PASSES = 4


@dataclasses.dataclass
class Adaptive:
    messages: Messages
    tx: object  # Transmissions
    loads: stages.NodeLoads
    demand_j: np.ndarray  # (n, hours) the normal policy's demand (actual in its hours)
    low_demand_j: np.ndarray  # (n, hours) the low policy's
    low: np.ndarray  # (n, hours) bool: the modes the messages were chosen with
    stores: HarvestOutcome | None  # the stores on these demands when the modes settled (None: not settled)


def _select(messages: Messages, low: np.ndarray, want_low: bool, hours: int) -> Messages:
    hour = np.minimum((messages.ready_s // HOUR_S).astype(np.int64), hours - 1)
    keep = low[messages.node, hour] == want_low
    return Messages(messages.node[keep], messages.ready_s[keep], messages.app_bytes[keep], messages.kind[keep],
                    messages.window[keep], messages.group[keep])


def _blend(a: stages.NodeLoads, b: stages.NodeLoads, share_b: np.ndarray) -> stages.NodeLoads:
    mix = lambda x, y: (1.0 - share_b) * x + share_b * y  # noqa: E731
    return dataclasses.replace(
        a, mcu_active_per_window_s=mix(a.mcu_active_per_window_s, b.mcu_active_per_window_s),
        sensor_active_per_window_s=mix(a.sensor_active_per_window_s, b.sensor_active_per_window_s),
        steady_w=mix(a.steady_w, b.steady_w))


def energy_aware(scenario, plans, policy, policy_index: int, link, nodes: stages.FleetNodes, harvest: HarvestPlan,
                 keep_alive, listening) -> Adaptive:
    """The frames and loads of an EnergyAware policy, with each node's mode per hour (module docstring)."""
    duration = scenario.duration
    hours = harvest.hours
    step = step_lengths_s(hours, duration)

    def transmit(messages):
        tx = link.transmit(messages, nodes.link, group_rng(scenario.seed, STREAM_LINK, policy_index), duration)
        sent = ~tx.dropped & (np.nan_to_num(tx.start_s, nan=np.inf) < duration)
        return tx, sent

    def loads_of(base, tx):
        return stages.node_loads(plans, base, nodes, tx, tx.steady if tx.steady is not None else keep_alive,
                                 listening)

    alone = []
    for base in (policy.normal, policy.low):
        msgs = policy_messages(plans, base)
        tx, sent = transmit(msgs)
        ld = loads_of(base, tx)
        alone.append((msgs, hourly_demand_j(ld.steady_w, ld.frame_energy_j, tx.node, tx.start_s, sent, hours,
                                             duration)))
    demand, low_demand = alone[0][1], alone[1][1]
    low, settled = None, None
    for _ in range(MAX_PASSES):
        stores = run_stores(harvest, demand, duration, low_demand, policy.below, policy.above)
        modes = np.zeros((nodes.n, hours), dtype=bool)
        for sl, r in stores.results.values():
            modes[sl] = r.low
        if low is not None and np.array_equal(modes, low):
            settled = stores
            break
        low = modes
        messages = merge_messages(_select(alone[0][0], low, False, hours), _select(alone[1][0], low, True, hours))
        tx, sent = transmit(messages)
        ld_n, ld_l = loads_of(policy.normal, tx), loads_of(policy.low, tx)
        burst = hourly_demand_j(np.zeros(nodes.n), ld_n.frame_energy_j, tx.node, tx.start_s, sent, hours, duration)
        actual = np.where(low, ld_l.steady_w[:, None], ld_n.steady_w[:, None]) * step[None, :] + burst
        demand = np.where(low, alone[0][1], actual)
        low_demand = np.where(low, actual, alone[1][1])
    share_low = (low * step[None, :]).sum(axis=1) / duration
    return Adaptive(messages, tx, _blend(ld_n, ld_l, share_low), demand, low_demand, low, settled)


__all__ = ["energy_aware", "Adaptive", "MAX_PASSES"]
