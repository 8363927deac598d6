"""IEEE 802.15.4 unslotted CSMA/CA with acknowledgements, as an event simulation of nodes sending to one
receiver (a parent or border router) on one channel.

The procedure (IEEE Std 802.15.4-2006, 7.5.1.4 and Figure 68, nonbeacon-enabled PAN), per frame attempt:
NB = 0, BE = macMinBE; wait random(2^BE - 1) unit backoff periods (aUnitBackoffPeriod, 20 symbols); clear
channel assessment over 8 symbols; if the channel was idle, turn the radio around (aTurnaroundTime, 12
symbols) and transmit; if busy, NB += 1 and BE = min(BE + 1, macMaxBE), and after more than
macMaxCSMABackoffs busy assessments the attempt fails with a channel access failure. The receiver
acknowledges a frame it received aTurnaroundTime after its last symbol (7.5.6.4.2); the sender waits
macAckWaitDuration (54 symbols) for it and otherwise sends the frame again, each retry with a fresh
CSMA/CA, up to macMaxFrameRetries times (7.5.6.4.2). PIB defaults (7.4.2): macMinBE 3, macMaxBE 5,
macMaxCSMABackoffs 4, macMaxFrameRetries 3. Between two frames of one sender lies at least the interframe
spacing (7.5.1.3: SIFS after a PSDU of at most 18 octets, else LIFS), counted from the end of the acknowledgement
(or of the frame, without acknowledgements); the sender starts its next CSMA/CA then (`MacSettings.ifs`).
Timing from `iotsim.mesh.phy`.

Who hears whom is a boolean matrix (`hears[i, j]`: node i senses node j's transmissions; the receiver is
the last row and column), so hidden terminals are a matrix with holes; by default every node hears every
other (one collision domain). A frame is received when no other transmission that the receiver hears
overlaps it and the receiver is not transmitting (no capture), and then passes its link's frame success
probability (channel errors, `iotsim.mesh.phy.link_success`); an acknowledgement likewise at its sender.
A CCA finds the channel busy when a transmission the node hears overlaps the 8 symbols of the assessment.

Saturated mode (`saturated=True`) gives every node a new frame as soon as it is done with the last (sent,
acknowledged or dropped); otherwise frames arrive at the given times, queued per node.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np

from iotsim.mesh import phy

MAC_MIN_BE = 3
MAC_MAX_BE = 5
MAC_MAX_CSMA_BACKOFFS = 4
MAC_MAX_FRAME_RETRIES = 3


@dataclass(frozen=True)
class MacSettings:
    """The MAC PIB attributes the procedure reads (defaults: IEEE 802.15.4-2006 Table 86)."""

    min_be: int = MAC_MIN_BE
    max_be: int = MAC_MAX_BE
    max_csma_backoffs: int = MAC_MAX_CSMA_BACKOFFS
    max_frame_retries: int = MAC_MAX_FRAME_RETRIES
    ack: bool = True  # acknowledged data frames
    ifs: bool = True  # the interframe spacing before a sender's next frame (False: none, the simplification)

    def __post_init__(self):
        if not 0 <= self.min_be <= self.max_be or not 3 <= self.max_be <= 8:
            raise ValueError("802.15.4 needs 0 <= macMinBE <= macMaxBE and 3 <= macMaxBE <= 8")
        if not 0 <= self.max_csma_backoffs <= 5 or not 0 <= self.max_frame_retries <= 7:
            raise ValueError("802.15.4 needs macMaxCSMABackoffs in 0..5 and macMaxFrameRetries in 0..7")


@dataclass
class MacResult:
    """Per sender: what its frames became and how long its radio spent in each state (s)."""

    frames: np.ndarray  # frames it finished (delivered or dropped)
    delivered: np.ndarray  # acknowledged (received, without acknowledgements)
    access_failures: np.ndarray  # dropped after more than macMaxCSMABackoffs busy assessments
    retry_failures: np.ndarray  # dropped after macMaxFrameRetries retries without an acknowledgement
    transmissions: np.ndarray  # data frames put on air, retries included
    collisions: np.ndarray  # transmissions the receiver did not get because another overlapped
    cca: np.ndarray  # clear channel assessments made
    cca_busy: np.ndarray
    tx_s: np.ndarray
    rx_s: np.ndarray  # assessments, turnarounds, waiting for and receiving acknowledgements
    # per delivered frame: from when its sender took it up (its arrival, or the end of the frame before it: the
    # queueing before that is not in it) to its acknowledgement
    latency_s: list = field(default_factory=list)
    duration_s: float = 0.0
    frame_airtime_s: float = 0.0

    @property
    def throughput(self) -> float:
        """Delivered data time on air / run time (the channel's normalised throughput)."""
        return float(self.delivered.sum()) * self.frame_airtime_s / self.duration_s if self.duration_s else 0.0


def simulate(n: int, psdu_octets: int, duration_s: float, rng: np.random.Generator, *,
             settings: MacSettings = MacSettings(), hears: np.ndarray | None = None,
             link_success: np.ndarray | None = None, saturated: bool = True,
             arrivals: list | None = None) -> MacResult:
    """Run `n` senders for `duration_s`. `hears`: (n + 1) x (n + 1), the receiver last (default: everyone hears
    everyone); `link_success`: per sender, the probability a frame (and its acknowledgement) survives channel
    errors (default 1); `arrivals`: per sender, frame arrival times when not saturated."""
    s = settings
    air = float(phy.frame_airtime_s(psdu_octets))
    ack_air = float(phy.frame_airtime_s(phy.ACK_PSDU_OCTETS))
    rx_node = n
    hears = np.ones((n + 1, n + 1), dtype=bool) if hears is None else np.asarray(hears, dtype=bool)
    if hears.shape != (n + 1, n + 1):
        raise ValueError(f"hears must be ({n + 1}, {n + 1}): the senders and the receiver (last)")
    ok = np.ones(n) if link_success is None else np.asarray(link_success, dtype=np.float64)
    zeros = lambda dtype=np.int64: np.zeros(n, dtype)  # noqa: E731
    res = MacResult(zeros(), zeros(), zeros(), zeros(), zeros(), zeros(), zeros(), zeros(), zeros(float),
                    zeros(float), [], duration_s, air)
    on_air: list[tuple[float, float, int]] = []  # (start, end, transmitter) of recent transmissions
    events: list = []
    seq = 0

    def push(t, kind, node, *data):
        nonlocal seq
        heapq.heappush(events, (t, seq, kind, node, data))
        seq += 1

    def heard(listener: int, t0: float, t1: float, but: int = -1) -> bool:
        """Some transmission that `listener` hears overlaps [t0, t1] (other than by `but`)."""
        return any(a < t1 and b > t0 and who != but and who != listener and hears[listener, who]
                   for a, b, who in on_air)

    queue = [list(a) if a is not None else [] for a in (arrivals or [None] * n)]
    nb, be, retries, arrived = zeros(), zeros(), zeros(), np.full(n, np.nan)
    ifs = phy.ifs_s(psdu_octets) if s.ifs else 0.0
    quiet_until = np.zeros(n)  # a sender's next CSMA/CA starts after its interframe spacing

    def new_attempt(k: int, t: float) -> None:
        nb[k], be[k] = 0, s.min_be
        backoff(k, max(t, quiet_until[k]))

    def backoff(k: int, t: float) -> None:
        push(t + int(rng.integers(0, 2 ** int(be[k]))) * phy.UNIT_BACKOFF_S, "cca", k)

    def next_frame(k: int, t: float) -> None:
        if saturated:
            start_frame(k, t)
        elif queue[k]:
            start_frame(k, max(t, queue[k].pop(0)))

    def start_frame(k: int, t: float) -> None:
        arrived[k] = t
        retries[k] = 0
        new_attempt(k, t)

    def finish(k: int, t: float, delivered: bool) -> None:
        res.frames[k] += 1
        if delivered:
            res.delivered[k] += 1
            res.latency_s.append(t - arrived[k])
        next_frame(k, t)

    for k in range(n):
        if saturated:
            start_frame(k, 0.0)
        elif queue[k]:
            queue[k].sort()
            start_frame(k, queue[k].pop(0))
    while events:
        t, _, kind, k, data = heapq.heappop(events)
        if t >= duration_s:
            break
        if len(on_air) > 64:  # forget transmissions that ended long before
            on_air = [x for x in on_air if x[1] > t - 1.0]
        if kind == "cca":  # the assessment runs for 8 symbols from t; decided at its end
            push(t + phy.CCA_S, "cca_end", k, t)
        elif kind == "cca_end":
            t0 = data[0]
            res.cca[k] += 1
            res.rx_s[k] += phy.CCA_S
            if heard(k, t0, t):
                res.cca_busy[k] += 1
                nb[k] += 1
                be[k] = min(be[k] + 1, s.max_be)
                if nb[k] > s.max_csma_backoffs:
                    res.access_failures[k] += 1
                    finish(k, t, False)
                else:
                    backoff(k, t)
            else:  # turn around and transmit
                start = t + phy.TURNAROUND_S
                res.rx_s[k] += phy.TURNAROUND_S
                on_air.append((start, start + air, k))
                res.transmissions[k] += 1
                res.tx_s[k] += air
                push(start + air, "tx_end", k, start)
        elif kind == "tx_end":
            start = data[0]
            quiet_until[k] = t + ifs
            got = hears[rx_node, k] and not heard(rx_node, start, t, but=k) \
                and not any(w == rx_node and a < t and b > start for a, b, w in on_air)
            if not got and hears[rx_node, k]:
                res.collisions[k] += 1
            got = got and rng.random() < ok[k]
            if not s.ack:
                finish(k, t, got)
                continue
            if got:  # the receiver acknowledges aTurnaroundTime after the frame
                a0 = t + phy.TURNAROUND_S
                on_air.append((a0, a0 + ack_air, rx_node))
                push(a0 + ack_air, "ack_end", k, t, a0)
            else:
                push(t + phy.ACK_WAIT_S, "ack_timeout", k)
        elif kind == "ack_end":  # decided at its end, when everything that could overlap it has started
            t_end, a0 = data
            if hears[k, rx_node] and not heard(k, a0, t, but=rx_node) and rng.random() < ok[k]:
                res.rx_s[k] += t - t_end
                quiet_until[k] = t + ifs
                finish(k, t, True)
            else:
                push(t_end + phy.ACK_WAIT_S, "ack_timeout", k)
        elif kind == "ack_timeout":
            res.rx_s[k] += phy.ACK_WAIT_S
            retries[k] += 1
            if retries[k] > s.max_frame_retries:
                res.retry_failures[k] += 1
                finish(k, t, False)
            else:
                new_attempt(k, t)
    return res


__all__ = ["MAC_MAX_BE", "MAC_MAX_CSMA_BACKOFFS", "MAC_MAX_FRAME_RETRIES", "MAC_MIN_BE", "MacResult",
           "MacSettings", "simulate"]
