"""LoRaWAN firmware (model) updates over the air: a class C multicast session carrying a fragmented
data block with forward error correction, and who in the fleet ends up with the new model when.

The session (LoRa Alliance TS005 remote multicast setup, TS004 fragmented data block transport):
the gateways send the block's N fragments (`iotsim.ota.fec`) as class C multicast downlinks on one
frequency and data rate, one after the other as fast as their duty cycle on that frequency's
sub-band allows; the nodes' receivers stay on (class C) from the session's start until they can
decode the block, or until the session ends.

Sources and hand rules, each used as written:
- a DataFragment's FRMPayload is its 3-byte header plus the fragment (TS004-1.0.0), at most the
  region's N for the data rate (RP002); the frame adds LORAWAN_OVERHEAD_BYTES (MHDR, FHDR, FPort,
  MIC); downlinks carry no payload CRC (LoRaWAN L2 1.0.4 section 4.1), so the time on air uses
  crc=False;
- under a duty cycle d a transmitter that sent for t_air waits until t_air / d after the start
  before it sends again (ETSI EN 300 220 as the rest of iotsim applies it); with no duty cycle the
  fragments follow each other back to back;
- a fragment reaches a node when its Rayleigh-faded power at the node clears the node's
  sensitivity, probability exp(-S/P) in linear units (as the star links' attempts), times
  (1 - fragment_loss) for any further independent loss the scenario states; draws are independent
  per node and fragment;
- decoding: the node decodes when the fragments it holds span the block (`fec.Decoder`); for
  rows drawn uniformly at random the probability that c coded fragments span k missing ones is
  prod_{i=c-k+1..c} (1 - 2^-i) (the rank of a random binary matrix), the bound the tests hold the
  specification's parity matrix to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from iotsim.errors import InputError
from iotsim.ota import fec
from iotsim.ota.rollout import Rollout
from iotsim.radio import lora
from iotsim.radio.lorawan import Region


@dataclass(frozen=True)
class SessionPlan:
    """A multicast session's fragments and timing."""

    fragments: fec.Fragments
    data_rate: int
    sf: int
    bandwidth_hz: float
    frequency_hz: float
    fragment_phy_bytes: int
    fragment_airtime_s: float
    duty_cycle: float
    fragment_interval_s: float  # start to start
    unicast: object = None  # iotsim.ota.unicast.Unicast: the class A repair of the nodes that could not decode

    @property
    def session_s(self) -> float:
        """From the first fragment's start to the last one's end."""
        return (self.fragments.total - 1) * self.fragment_interval_s + self.fragment_airtime_s

    @property
    def downlink_airtime_s(self) -> float:
        """One gateway's time on air for the whole session."""
        return self.fragments.total * self.fragment_airtime_s

    @property
    def busiest_hour_duty_cycle(self) -> float:
        """One gateway's time on air in the session's busiest hour / 1 h (ETSI EN 300 220 measures duty cycle
        over one hour): the fragments that start within any 3600 s."""
        n = min(self.fragments.total, int(math.floor(3600.0 / self.fragment_interval_s + 1e-9)) + 1)
        return n * self.fragment_airtime_s / 3600.0

    def busy_s(self, rollout) -> float:
        """How long the gateways are taken by the session: every fragment and the duty-cycle wait after it, and
        the unicast repair after it."""
        own = self.fragments.total * self.fragment_interval_s
        return own if self.unicast is None else max(own, self.unicast.busy_until_s)

    def table_row(self) -> dict:
        """The session's columns of the updates table."""
        return {"data_rate": self.data_rate, "sf": self.sf, "fragment_bytes": self.fragments.fragment_bytes,
                "fragments_uncoded": self.fragments.uncoded, "fragments_total": self.fragments.total,
                "fragment_airtime_s": self.fragment_airtime_s, "fragment_interval_s": self.fragment_interval_s,
                "session_s": self.session_s, "gateway_airtime_s": self.downlink_airtime_s,
                "gateway_duty_cycle_busiest_hour": self.busiest_hour_duty_cycle,
                **(self.unicast.table_row() if self.unicast is not None else {})}

    def describe(self) -> str:
        own = (f"{self.fragments.total} fragments of {self.fragments.fragment_bytes} B ({self.fragments.uncoded} "
               f"uncoded) multicast at DR{self.data_rate} (SF{self.sf}), one every {self.fragment_interval_s:.3g} s")
        return own if self.unicast is None else f"{own}, then repair by {self.unicast.describe()}"


    def fragment_end_s(self, index: int) -> float:
        """End of fragment `index` (1-based) after the session's start."""
        return (index - 1) * self.fragment_interval_s + self.fragment_airtime_s


def plan_session(region: Region, block_bytes: int, *, data_rate: int | None = None, frequency_hz: float | None = None,
                 redundancy: float = 0.2, fragment_bytes: int | None = None, coding_rate: str = "4/5",
                 preamble_symbols: int = 8) -> SessionPlan:
    """The session for a block of `block_bytes`: by default on the region's RX2 frequency and data rate
    (what every class A node can already hear), fragments as large as the data rate allows."""
    dr = region.rx2_data_rate if data_rate is None else int(data_rate)
    freq = float(region.rx2_frequency_hz if frequency_hz is None else frequency_hz)
    try:
        sf = region.data_rate_to_sf(dr)
        bw = float(region.data_rate_bandwidth_hz(dr))
        max_frm = region.max_app_payload_for_data_rate(dr)
    except (KeyError, ValueError, TypeError, IndexError) as e:
        raise InputError(f"data rate {dr} is not a LoRa data rate of {region.name}: {e}", field="updates") from e
    largest = max_frm - fec.DATA_FRAGMENT_HEADER_BYTES
    size = largest if fragment_bytes is None else int(fragment_bytes)
    if size > largest:
        raise InputError(f"fragments of {size} B do not fit DR{dr} of {region.name} (at most {largest} B after the "
                         f"{fec.DATA_FRAGMENT_HEADER_BYTES}-byte DataFragment header)", field="updates")
    frags = fec.cut(block_bytes, size, redundancy)
    phy = size + fec.DATA_FRAGMENT_HEADER_BYTES + lora.LORAWAN_OVERHEAD_BYTES
    air = float(lora.time_on_air_s(phy, sf, bandwidth_hz=bw, coding_rate=lora.parse_coding_rate(coding_rate),
                                   preamble_symbols=preamble_symbols, crc=False))
    dc = float(region.sub_band_duty_cycle(freq))
    interval = air / dc if dc < 1.0 else air
    return SessionPlan(frags, dr, sf, bw, freq, phy, air, dc, interval)


def fragment_success(node_rx_dbm: np.ndarray, plan: SessionPlan, fragment_loss: float = 0.0) -> np.ndarray:
    """Per node: probability that one fragment reaches it (Rayleigh fading over the mean power at the
    node, times 1 - fragment_loss)."""
    sens = float(lora.node_sensitivity_dbm(plan.sf, plan.bandwidth_hz))
    mean = np.asarray(node_rx_dbm, dtype=np.float64)
    return np.exp(-np.power(10.0, (sens - mean) / 10.0)) * (1.0 - fragment_loss)


def simulate_rollout(plan: SessionPlan, success: np.ndarray, rng: np.random.Generator,
                     decoders: list | None = None) -> Rollout:
    """Draw every fragment's reception at every node and decode: who has the block when. `decoders`, if
    given, receives each node's `fec.Decoder` after the session (for a unicast repair)."""
    n = success.shape[0]
    m, total = plan.fragments.uncoded, plan.fragments.total
    got = rng.random((n, total)) < success[:, None]
    decoded_at = np.full(n, -1, np.int64)
    done = np.full(n, np.nan)
    listen = np.full(n, plan.session_s)
    for k in range(n):
        row = got[k]
        dec = fec.Decoder(m)
        uncoded = row[:m]
        mask = int.from_bytes(np.packbits(uncoded, bitorder="little").tobytes(), "little")
        dec.add_uncoded_received(mask)
        last = m if not dec.missing else None
        if dec.missing:
            for idx in (np.flatnonzero(row[m:]) + m + 1).tolist():
                if dec.add(idx):
                    last = idx
                    break
        if last is not None:
            decoded_at[k] = last
            done[k] = plan.fragment_end_s(last)
            listen[k] = done[k]
        if decoders is not None:
            decoders.append(dec)
    return Rollout(got.sum(axis=1), decoded_at, done, listen, np.zeros(n), listen, np.zeros(n), np.zeros(n))


def random_code_decode_probability(total: int, uncoded: int, p_receive: float) -> float:
    """Probability that a receiver holding each of `total` fragments independently with `p_receive`
    can decode, if the coded rows were uniformly random: sum over the uncoded fragments lost (k) and
    the coded ones received (c) of P(k) P(c) prod_{i=c-k+1..c} (1 - 2^-i)."""
    m, r = uncoded, total - uncoded
    pk = _binomial_pmf(m, 1.0 - p_receive)  # uncoded lost
    pc = _binomial_pmf(r, p_receive)  # coded received
    prob = 0.0
    for k in range(m + 1):
        if pk[k] < 1e-300:
            continue
        if k == 0:
            prob += pk[0]
            continue
        for c in range(k, r + 1):
            full = math.prod(1.0 - 2.0 ** -i for i in range(c - k + 1, c + 1))
            prob += pk[k] * pc[c] * full
    return float(prob)


def _binomial_pmf(n: int, p: float) -> list[float]:
    """P(X = x) for x = 0..n, X ~ Binomial(n, p)."""
    if p <= 0.0 or p >= 1.0:
        return [float(x == (n if p >= 1.0 else 0)) for x in range(n + 1)]
    lp, lq = math.log(p), math.log1p(-p)
    return [math.exp(math.lgamma(n + 1) - math.lgamma(x + 1) - math.lgamma(n - x + 1) + x * lp + (n - x) * lq)
            for x in range(n + 1)]


__all__ = ["SessionPlan", "fragment_success", "plan_session", "random_code_decode_probability",
           "simulate_rollout"]
