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
- the gateway answers the first heard poll it can (the first whose RX2 opens once its sub-band is free), as a
  network server sends a device's queued downlink at its next uplink when a gateway is free;
- the network hears a poll as the policy's run decided it (`PollVerdicts`: its frame delivered, among the
  other uplinks, under the duty cycle, against the gateways' own transmissions), and the answer's RX2 opens
  RECEIVE_DELAY2 after the transmission it heard ended (a frame the duty cycle held back, or heard on a
  repeat, is answered late); a poll the run
  has no verdict for (no run yet: pass 0; or a poll past the node's last one in that run) is heard with the
  probability that its Rayleigh-faded power clears the gateway's sensitivity at the node's SF (exp(-S/P));
  an unheard poll gets nothing; a fragment reaches the node with the session's rule (exp(-S/P) at the node's
  sensitivity, times 1 - fragment_loss); the server cannot tell a lost fragment (downlinks are not
  acknowledged) and sends the next one next time;
- the baseline sends the uncoded fragments first, then coded ones; a repair sends the coded fragments the
  session did not (N + 1, N + 2, ...): each new parity row helps any node with high probability, and
  `fec.Decoder` decides when a node can decode;
- a node polls until it can decode, until the run ends, or until TS004's fragment numbers run out.
The draws are keyed by node and poll (or fragment) number, so a poll whose verdict changes changes only what
follows from it. The engine (iotsim.engine.updates.settle_polls) runs each policy in passes, each planning the
fragments from the run before, until the run hears exactly the polls the fragments answer.

The polls are uplinks of the run (`Unicast.polls_of`: the engine adds them to the policy's messages,
kind `poll`), so the link puts them on air with the other uplinks: they take the nodes' duty cycle,
collide with the others, and their radio time (TX, the RX1 and RX2 windows, startup) is charged as frames.
The rollout keeps only what lies outside those frames: a fragment received in RX2 keeps the radio on for its
time on air instead of the window.

Every fragment sent (`Unicast.send_s`, `send_gw`) goes into its gateway's transmit schedule for the run
(`iotsim.engine.updates.gateway_schedule`): half duplex, that gateway receives nothing meanwhile; and it
holds that gateway's sub-band for its off-time (airtime / duty cycle), so the network server sends no class A
answer (ACK, MAC command) on that band through that gateway meanwhile. The fragments come first: the answers
take the duty cycle they leave.

Not modelled: the answer goes through the node's strongest gateway, whichever gateway heard the poll.
"""

from __future__ import annotations

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
    send_s: np.ndarray | None = None  # every fragment sent: its start (from the update's start) and its gateway
    send_gw: np.ndarray | None = None
    frequency_hz: float = 0.0  # the downlinks' frequency

    def polls_of(self, numbers: bool = False) -> tuple[np.ndarray, ...]:
        """Every poll: (place of its node among the phase's nodes, its time from the update's start[, its number
        on the node's grid]), in that order."""
        count = self.polls_per_node
        k = np.repeat(np.arange(count.size), count)
        j = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
        t = np.repeat(self.first_poll_s, count) + j * np.repeat(self.poll_period_s, count)
        return (k, t, j) if numbers else (self.node_pos[k], t)

    def table_row(self) -> dict:
        """The unicast columns of the updates table."""
        return {"unicast_nodes": self.nodes, "unicast_fragments_sent": self.fragments_sent,
                "unicast_polls_per_node": self.polls / self.nodes if self.nodes else 0.0,
                "unicast_gateway_airtime_s": self.gateway_airtime_s}

    def describe(self) -> str:
        return (f"class A unicast to {self.nodes:,} nodes from {self.start_s:.0f} s: {self.fragments_sent:,} fragments "
                f"of {self.fragment_bytes} B in RX2 at DR{self.data_rate} (SF{self.sf}), answering the polls the "
                f"network heard ({self.polls / max(self.nodes, 1):.3g} per node)")


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


@dataclass(frozen=True)
class PollVerdicts:
    """What a run made of one unicast phase's polls: per poll on air, its node's place in the phase, its number
    on the node's grid (0: the first poll), whether the network server heard it and when the transmission it
    heard ended (from the update's start; NaN when not heard): the node's RX2 opens RECEIVE_DELAY2 later.
    `Polls.verdicts` in iotsim.engine.updates reads them off a policy's run."""

    pos: np.ndarray
    number: np.ndarray
    heard: np.ndarray
    end_s: np.ndarray
    ready_s: np.ndarray | None = None  # when each poll was ready (from the update's start): for reports only

    def key(self) -> np.ndarray:
        return _poll_key(self.pos, self.number)

    def agrees(self, other: "PollVerdicts") -> tuple[int, int, float]:
        """(polls of `self` that `other` has no verdict for, polls whose verdicts differ: heard or not, and the
        heard transmission's end; the earliest time one of those polls was heard in either, or else was ready,
        inf when there are none)."""
        mine, theirs = self.key(), other.key()
        order = np.argsort(theirs, kind="stable")
        i = np.searchsorted(theirs[order], mine)
        found = i < theirs.size
        found[found] = theirs[order][i[found]] == mine[found]
        j = order[i[found]]
        same = np.ones(mine.size, bool)
        same[found] = (self.heard[found] == other.heard[j]) & (
            ~self.heard[found] | (self.end_s[found] == other.end_s[j]))
        # when each such poll was on air: the end of the transmission heard in either pass (else when it was ready)
        on_air = np.where(self.heard, self.end_s, np.inf)
        theirs_end = np.full(mine.size, np.inf)
        theirs_end[found] = np.where(other.heard[j], other.end_s[j], np.inf)
        on_air = np.minimum(on_air, theirs_end)
        if self.ready_s is not None:
            on_air = np.where(np.isfinite(on_air), on_air, self.ready_s)
        off = ~found | ~same
        first = float(on_air[off].min()) if off.any() else np.inf
        return int((~found).sum()), int((found & ~same).sum()), first


def _poll_key(pos, number) -> np.ndarray:
    return np.asarray(pos, dtype=np.int64) * (1 << 32) + np.asarray(number, dtype=np.int64)


class _Verdicts:
    """Per node of a phase: what a run made of its polls (a prefix of its grid): how many it has verdicts for,
    and the numbers and RX2 openings of those heard."""

    def __init__(self, v: PollVerdicts | None, n: int, rx2_delay_s: float):
        self.count = np.zeros(n, np.int64)
        self.numbers: list = [None] * n
        self.opens: list = [None] * n
        if v is None or not v.pos.size:
            return
        order = np.lexsort((v.number, v.pos))
        pos, number, heard, ended = v.pos[order], v.number[order], v.heard[order], v.end_s[order]
        bounds = np.flatnonzero(np.diff(pos)) + 1
        for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, pos.size]):
            k = int(pos[lo])
            self.count[k] = int(number[hi - 1]) + 1
            h = heard[lo:hi]
            self.numbers[k] = number[lo:hi][h]
            self.opens[k] = ended[lo:hi][h] + rx2_delay_s

    def next_heard(self, k: int, j: int, t: float) -> tuple[float, int] | None:
        """Among node k's polls with verdicts: the first heard one from number j on whose RX2 opens at or after
        t (its opening, its number), or None."""
        nums = self.numbers[k]
        if nums is None or j >= self.count[k]:
            return None
        opens = self.opens[k]
        i = max(int(np.searchsorted(nums, j)), int(np.searchsorted(opens, t)))
        while i < nums.size and opens[i] < t:  # a run's frames of one node keep their order: rarely taken
            i += 1
        return (float(opens[i]), int(nums[i])) if i < nums.size else None


def simulate_unicast(nodes: UnicastNodes, decoders: list[fec.Decoder], *, first_index: int, fragment_airtime_s: float,
                     rx2_delay_s: float, rx2_window_s: float, duty_cycle: float, start_s: float, horizon_s: float,
                     rng: np.random.Generator, verdicts: PollVerdicts | None = None) -> tuple[Rollout, dict]:
    """Every node's polls and fragments from `start_s` (after the update's start) until it decodes or
    `horizon_s` (from the update's start). `decoders`: per node, what it holds already (a fresh
    `fec.Decoder` for the baseline). Returns the rollout (times from the update's start; its radio times
    outside the polls, which are frames of the run) and the counts (fragments_sent, polls,
    gateway_airtime_s, busy_until_s) with the polls per node (first_poll_s, poll_period_s, polls_per_node) and
    every fragment's start and gateway (send_s, send_gw).

    `verdicts`: what a run made of these polls (heard or not, and when the heard transmission ended: its RX2
    opens RECEIVE_DELAY2 later). A poll without one (no run yet, or one past the node's last poll in it) is
    heard with its fading probability and timed on its grid. The draws are keyed by node and poll number
    (fragment number for a fragment's reception), not by their order, so a change in one poll's verdict
    changes what follows from it only.

    Each gateway answers the first heard poll it can: the first whose RX2 opens once its sub-band is free
    (polls in order of their RX2 openings, one node's next poll at a time)."""
    import heapq

    from iotsim.link.draws import keyed_uniform_of

    n = nodes.gateway.shape[0]
    period = np.asarray(nodes.poll_period_s, dtype=np.float64)
    air = np.asarray(nodes.poll_air_s, dtype=np.float64)
    # the first poll: a random phase within one period (the nodes learn of the update at different moments)
    first = start_s + rng.random(n) * period
    salt = int(rng.integers(0, 2**63))
    lead = air + rx2_delay_s  # from a poll's start to its RX2 opening
    # the last poll on each node's grid whose RX2 closes by the horizon
    last_grid = np.floor((horizon_s - first - lead - rx2_window_s) / period)
    last_grid = np.where(np.isfinite(last_grid), last_grid, np.iinfo(np.int64).max // 2).astype(np.int64)
    known = _Verdicts(verdicts, n, rx2_delay_s)
    received = np.zeros(n, np.int64)
    decoded_at = np.full(n, -1, np.int64)
    done = np.full(n, np.nan)
    last_number = last_grid.copy()  # the node's last poll: the one after which it stopped, else its last on the grid
    next_index = np.full(n, first_index, np.int64)
    fragments_sent, airtime, busy_until = 0, 0.0, start_s
    send_s: list[float] = []  # every fragment's start (from the update's start) and its gateway
    send_gw: list[int] = []
    gap = fragment_airtime_s / duty_cycle if duty_cycle < 1.0 else fragment_airtime_s
    poll_success = np.asarray(nodes.poll_success, dtype=np.float64).tolist()
    fragment_success = np.asarray(nodes.fragment_success, dtype=np.float64).tolist()

    F, P, L, G, C = first.tolist(), period.tolist(), lead.tolist(), last_grid.tolist(), known.count.tolist()

    def next_heard(k: int, j: int, t: float) -> tuple[float, int] | None:
        """Node k's first poll from number j on that the network hears and whose RX2 opens at or after t:
        (its RX2 opening, its number), or None."""
        if j < C[k]:  # polls the run gave verdicts for
            hit = known.next_heard(k, j, t)
            if hit is not None:
                return hit
            j = C[k]
        if t > F[k] + j * P[k] + L[k]:  # on its grid: jump to the first whose RX2 opens at or after t
            j0, j = j, max(j, math.ceil((t - F[k] - L[k]) / P[k]))
            while j > j0 and F[k] + (j - 1) * P[k] + L[k] >= t:  # rounding
                j -= 1
            while F[k] + j * P[k] + L[k] < t:
                j += 1
        while j <= G[k]:
            if keyed_uniform_of(salt, 0, k, j) < poll_success[k]:
                return F[k] + j * P[k] + L[k], j
            j += 1
        return None

    for g in np.unique(nodes.gateway).tolist():
        heap = []
        for k in np.flatnonzero(nodes.gateway == g).tolist():
            nxt = next_heard(k, 0, -math.inf)
            if nxt is not None:
                heap.append((nxt[0], k, nxt[1]))
        heapq.heapify(heap)
        band_free = -math.inf
        while heap:
            t, k, j = heapq.heappop(heap)
            if t < band_free:  # the sub-band is spent: the node's next heard poll once it is free
                nxt = next_heard(k, j + 1, band_free)
                if nxt is not None:
                    heapq.heappush(heap, (nxt[0], k, nxt[1]))
                continue
            if t + fragment_airtime_s > horizon_s:
                break  # its RX2 opens too late for a fragment: so do all later ones
            index = int(next_index[k])
            next_index[k] += 1
            fragments_sent += 1
            airtime += fragment_airtime_s
            send_s.append(t)
            send_gw.append(g)
            band_free = t + gap
            busy_until = max(busy_until, t + fragment_airtime_s)
            got = keyed_uniform_of(salt, 1, k, index) < fragment_success[k]
            if got:
                received[k] += 1
            if (got and decoders[k].add(index)) or next_index[k] - first_index >= fec.MAX_FRAGMENTS:
                if got and decoders[k].complete:
                    decoded_at[k] = index
                    done[k] = t + fragment_airtime_s
                last_number[k] = j
                continue
            nxt = next_heard(k, j + 1, band_free)
            if nxt is not None:
                heapq.heappush(heap, (nxt[0], k, nxt[1]))
    # every node polled on its grid from its first poll to its last (the one after which it stopped, else the
    # last whose RX2 closes by the horizon)
    polls = np.maximum(last_number + 1, 0)
    # the polls are frames of the run (TX, RX1 and RX2 windows, startup); outside them only a received
    # fragment's time on air beyond the RX2 window
    rx = received * max(fragment_airtime_s - rx2_window_s, 0.0)
    last = first + last_number * period
    until = np.where(np.isnan(done), np.maximum(last + lead + rx2_window_s, first), done)
    rollout = Rollout(received, decoded_at, done, rx, np.minimum(first, until), until, np.zeros(n), np.zeros(n))
    return rollout, {"fragments_sent": fragments_sent, "polls": int(polls.sum()), "gateway_airtime_s": airtime,
                     "busy_until_s": busy_until, "first_poll_s": first, "poll_period_s": period,
                     "polls_per_node": polls, "send_s": np.array(send_s), "send_gw": np.array(send_gw, np.int64)}


__all__ = ["PollVerdicts", "Unicast", "UnicastNodes", "UnicastSession", "simulate_unicast"]
