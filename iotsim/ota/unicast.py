"""LoRaWAN class A unicast of an update's fragments: the baseline to a multicast session, and the repair of
the nodes that could not decode one.

A class A node hears the network only right after its own uplinks, so to be sent an update by unicast it
polls: an uplink without application payload (LORAWAN_OVERHEAD_BYTES: MHDR, FHDR, FPort, MIC) as often as
its duty cycle lets it (its uplink sub-bands' duty cycles added: time on air / duty cycle between polls;
or every `poll_period`), never before its previous poll's RX2 has closed. The network server answers a
poll with one DataFragment (TS004-1.0.0, the session's format and size) in RX2 (the update's data rate and
frequency, by default the region's RX2 ones: what the multicast session uses), RECEIVE_DELAY2 after the
poll ends; nothing comes in RX1. Per gateway (each node is served by its strongest, as in the session):
- a fragment goes out only when the gateway's sub-band on that frequency has duty cycle left (ETSI EN 300
  220 as iotsim applies it elsewhere: after t_air the sub-band waits t_air / d);
- the gateway answers the first poll it can (the first whose RX2 opens once its sub-band is free), as a
  network server sends a device's queued downlink at its next uplink when a gateway is free;
- a poll reaches the gateway with the probability that its Rayleigh-faded power clears the gateway's
  sensitivity at the node's SF (exp(-S/P), as the star links' attempts); a lost poll gets nothing (the
  gateway heard nothing); a fragment reaches the node with the session's rule (exp(-S/P) at the node's
  sensitivity, times 1 - fragment_loss); the server cannot tell a lost fragment (downlinks are not
  acknowledged) and sends the next one next time;
- the baseline sends the uncoded fragments first, then coded ones; a repair sends the coded fragments the
  session did not (N + 1, N + 2, ...): each new parity row helps any node with high probability, and
  `fec.Decoder` decides when a node can decode;
- a node polls until it can decode, until the run ends, or until TS004's fragment numbers run out.
The polls are uplinks of the run (`Unicast.polls_of`: the engine adds them to every policy's messages,
kind `poll`), so the link puts them on air with the other uplinks: they take the nodes' duty cycle,
collide with the others, and their radio time (TX, the RX1 and RX2 windows, startup) is charged as frames.
The rollout keeps only what lies outside those frames: a fragment received in RX2 keeps the radio on for its
time on air instead of the window.

Every fragment sent (`Unicast.send_s`, `send_gw`) goes into its gateway's transmit schedule for the run
(`iotsim.engine.updates.gateway_schedule`): half duplex, that gateway receives nothing meanwhile; and it
holds that gateway's sub-band for its off-time (airtime / duty cycle), so the network server sends no class A
answer (ACK, MAC command) on that band through that gateway meanwhile. The fragments come first: they were
scheduled before the run, and the answers take the duty cycle they leave.

Not modelled (the run's notes say so): the schedule of fragments takes a poll's success from fading alone,
not from the link's verdict on that poll in the run (the run reports both).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

from iotsim.ota import fec
from iotsim.ota.rollout import Rollout


@dataclass(frozen=True)
class UnicastNodes:
    """Per node served by unicast (times in s)."""

    gateway: np.ndarray  # its strongest gateway
    poll_air_s: np.ndarray  # a poll's time on air at the node's SF
    poll_period_s: np.ndarray  # time between its polls
    poll_success: np.ndarray  # probability that a poll reaches its gateway
    fragment_success: np.ndarray  # probability that a fragment sent to it reaches it
    rx1_window_s: np.ndarray  # RX1 open with nothing in it
    startup_s: np.ndarray  # its radio's ramp-up per poll


@dataclass(frozen=True)
class Unicast:
    """What a unicast phase of an update did (times from the update's start)."""

    data_rate: int
    sf: int
    fragment_bytes: int
    fragment_airtime_s: float
    duty_cycle: float  # the gateways' sub-band on the downlink frequency
    first_index: int  # the first fragment number sent (1: the baseline; N + 1: a repair)
    start_s: float  # when the nodes start polling
    nodes: int
    fragments_sent: int
    polls: int
    gateway_airtime_s: float  # all gateways together
    busy_until_s: float  # the last fragment's end (start_s if none)
    # per node of the phase: its place among the update's nodes, its first poll (from the update's start),
    # the time between its polls and how many it made
    node_pos: np.ndarray | None = None
    first_poll_s: np.ndarray | None = None
    poll_period_s: np.ndarray | None = None
    polls_per_node: np.ndarray | None = None
    poll_radio_s: np.ndarray | None = None  # per node: one poll's (TX, RX, standby) seconds as its frame is charged
    poll_success: np.ndarray | None = None  # per node: the probability the schedule took for a poll to be heard
    send_s: np.ndarray | None = None  # every fragment sent: its start (from the update's start) and its gateway
    send_gw: np.ndarray | None = None
    frequency_hz: float = 0.0  # the downlinks' frequency

    def polls_of(self) -> tuple[np.ndarray, np.ndarray]:
        """Every poll: (place of its node among the update's nodes, its time from the update's start), in that
        order."""
        count = self.polls_per_node
        pos = np.repeat(self.node_pos, count)
        j = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
        return pos, np.repeat(self.first_poll_s, count) + j * np.repeat(self.poll_period_s, count)

    def table_row(self) -> dict:
        """The unicast columns of the updates table."""
        return {"unicast_nodes": self.nodes, "unicast_fragments_sent": self.fragments_sent,
                "unicast_polls_per_node": self.polls / self.nodes if self.nodes else 0.0,
                "unicast_gateway_airtime_s": self.gateway_airtime_s}

    def describe(self) -> str:
        return (f"class A unicast to {self.nodes:,} nodes from {self.start_s:.0f} s: {self.fragments_sent:,} fragments "
                f"of {self.fragment_bytes} B in RX2 at DR{self.data_rate} (SF{self.sf}) answering "
                f"{self.polls / max(self.nodes, 1):.3g} polls per node")


@dataclass(frozen=True)
class UnicastSession:
    """An update sent by class A unicast only (the baseline to a multicast session)."""

    unicast: Unicast
    fragments: fec.Fragments

    def busy_s(self, rollout) -> float:
        return self.unicast.busy_until_s

    def table_row(self) -> dict:
        u = self.unicast
        return {"data_rate": u.data_rate, "sf": u.sf, "fragment_bytes": u.fragment_bytes,
                "fragments_uncoded": self.fragments.uncoded, "fragment_airtime_s": u.fragment_airtime_s,
                "gateway_airtime_s": u.gateway_airtime_s, **u.table_row()}

    def describe(self) -> str:
        return self.unicast.describe()


def simulate_unicast(nodes: UnicastNodes, decoders: list[fec.Decoder], *, first_index: int, fragment_airtime_s: float,
                     rx2_delay_s: float, rx2_window_s: float, duty_cycle: float, start_s: float, horizon_s: float,
                     rng: np.random.Generator) -> tuple[Rollout, dict]:
    """Every node's polls and fragments from `start_s` (after the update's start) until it decodes or
    `horizon_s` (from the update's start). `decoders`: per node, what it holds already (a fresh
    `fec.Decoder` for the baseline). Returns the rollout (times from the update's start; its radio times
    outside the polls, which are frames of the run) and the counts (fragments_sent, polls,
    gateway_airtime_s, busy_until_s) with the polls per node (first_poll_s, poll_period_s, polls_per_node) and
    every fragment's start and gateway (send_s, send_gw).

    Each gateway answers the first poll it can: the first one whose RX2 opens once its sub-band is free.
    A node polls on a fixed grid (its first poll, then every period), so among the nodes that share a
    period and a poll airtime the next poll after a moment is the next phase in their sorted phases:
    one bisection per such class and fragment, not one look per node."""
    n = nodes.gateway.shape[0]
    period = np.asarray(nodes.poll_period_s, dtype=np.float64)
    air = np.asarray(nodes.poll_air_s, dtype=np.float64)
    # the first poll: a random phase within one period (the nodes learn of the update at different moments)
    first = start_s + rng.random(n) * period
    received = np.zeros(n, np.int64)
    decoded_at = np.full(n, -1, np.int64)
    done = np.full(n, np.nan)
    last_poll = np.full(n, np.nan)  # the poll after which the node decoded
    next_index = np.full(n, first_index, np.int64)
    fragments_sent, airtime, busy_until = 0, 0.0, start_s
    send_s: list[float] = []  # every fragment's start (from the update's start) and its gateway
    send_gw: list[int] = []
    gap = fragment_airtime_s / duty_cycle if duty_cycle < 1.0 else fragment_airtime_s
    lead = air + rx2_delay_s  # from a poll's start to its RX2 opening
    phase = np.mod(first, period)
    for g in np.unique(nodes.gateway).tolist():
        mine = np.flatnonzero(nodes.gateway == g)
        # classes of nodes with one period and one poll airtime: their phases sorted (with the node)
        classes: dict[tuple[float, float], list] = {}
        for k in mine.tolist():
            classes.setdefault((float(period[k]), float(lead[k])), []).append((float(phase[k]), k))
        for c in classes.values():
            c.sort()
        x = start_s  # the next poll the gateway can answer is at or after x
        band_free = -math.inf
        while classes:
            best = None
            for (p, ld), c in classes.items():
                y = max(x, band_free - ld)
                r = math.fmod(y, p)
                i = bisect.bisect_left(c, (r, -1))
                t = y + (c[i][0] - r) if i < len(c) else y + (c[0][0] + p - r)
                i = i if i < len(c) else 0
                if best is None or (t + ld, c[i][1]) < (best[0] + best[1], best[3]):
                    best = (t, ld, (p, ld), c[i][1], i)
            t, ld, key, k, i = best
            t = first[k] + round((t - first[k]) / period[k]) * period[k]  # on the node's own grid
            t_send = t + ld
            if t_send + fragment_airtime_s > horizon_s:
                break  # no later poll fits either: the rest stay without the update
            x = math.nextafter(t, math.inf)
            if rng.random() >= nodes.poll_success[k]:  # the gateway did not hear the poll
                continue
            index = int(next_index[k])
            next_index[k] += 1
            fragments_sent += 1
            airtime += fragment_airtime_s
            send_s.append(t_send)
            send_gw.append(g)
            band_free = t_send + gap
            busy_until = max(busy_until, t_send + fragment_airtime_s)
            got = rng.random() < nodes.fragment_success[k]
            if got:
                received[k] += 1
            if (got and decoders[k].add(index)) or next_index[k] - first_index >= fec.MAX_FRAGMENTS:
                if got and decoders[k].complete:
                    decoded_at[k] = index
                    done[k] = t_send + fragment_airtime_s
                    last_poll[k] = t
                classes[key].pop(i)
                if not classes[key]:
                    del classes[key]
    # every node polled on its grid from its first poll to its last (the one after which it decoded, else the
    # last whose RX2 closes by the horizon)
    open_last = first + np.floor((horizon_s - first - lead - rx2_window_s) / period) * period
    last = np.where(np.isnan(last_poll), open_last, last_poll)
    polls = np.where(last >= first, np.floor((last - first) / period + 1e-9) + 1, 0).astype(np.int64)
    # the polls are frames of the run (TX, RX1 and RX2 windows, startup); outside them only a received
    # fragment's time on air beyond the RX2 window
    rx = received * max(fragment_airtime_s - rx2_window_s, 0.0)
    until = np.where(np.isnan(done), np.maximum(last + lead + rx2_window_s, first), done)
    rollout = Rollout(received, decoded_at, done, rx, np.minimum(first, until), until, np.zeros(n), np.zeros(n))
    return rollout, {"fragments_sent": fragments_sent, "polls": int(polls.sum()), "gateway_airtime_s": airtime,
                     "busy_until_s": busy_until, "first_poll_s": first, "poll_period_s": period,
                     "polls_per_node": polls, "send_s": np.array(send_s), "send_gw": np.array(send_gw, np.int64)}


__all__ = ["Unicast", "UnicastNodes", "UnicastSession", "simulate_unicast"]
