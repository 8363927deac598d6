"""LoRaWAN class A timing: receive windows, confirmed-uplink retransmissions, NbTrans and the
size of an acknowledgement downlink.

Sources:
- LoRaWAN L2 1.0.4 specification (LoRa Alliance TS001-1.0.4), section 3.3 (class A receive
  windows), 4.3.1.3 "Retransmission procedure", 5.3 (NbTrans).
- RP002-1.0.x "LoRaWAN Regional Parameters", default settings: RECEIVE_DELAY1 1 s,
  RECEIVE_DELAY2 2 s, RETRANSMIT_TIMEOUT 2 s +/- 1 s "random delay between 1 and 3 seconds"
  (RP002-1.0.4 line 431-434: RETRANSMIT_TIMEOUT was called ACK_TIMEOUT before LoRaWAN 1.0.4).
  Also LoRaMac-node RegionEU868.h ``EU868_ACKTIMEOUT 2000``, ``EU868_ACK_TIMEOUT_RND 1000`` and
  The Things Stack pkg/band/default.go ``defaultAckTimeout 2 s``, ``defaultAckTimeoutMargin 1 s``.

The retransmission rule (L2 1.0.4, 4.3.1.3): "When an end-device has requested an ACK from the
Network but has not yet received it, it SHALL wait RETRANSMIT_TIMEOUT seconds after
RECEIVE_DELAY2 seconds have elapsed after the end of the previous uplink transmission before
sending a new uplink (repetition or new frame)." So the earliest next uplink after an
unacknowledged confirmed uplink ending at ``t_end`` is ``t_end + RECEIVE_DELAY2 +
RETRANSMIT_TIMEOUT``, with RETRANSMIT_TIMEOUT uniform in [1, 3] s. Between unconfirmed
repetitions only the receive windows must have expired (no RETRANSMIT_TIMEOUT required).
Confirmed and unconfirmed uplinks are sent NbTrans times unless a Class A downlink arrives.
"""

from __future__ import annotations

import numpy as np

from iotsim.errors import InputError
from iotsim.radio import lora
from iotsim.radio.lorawan import Region

RETRANSMIT_TIMEOUT_S = 2.0
"""RP002 default RETRANSMIT_TIMEOUT: 2 s (+/- RETRANSMIT_TIMEOUT_RANDOM_S)."""
RETRANSMIT_TIMEOUT_RANDOM_S = 1.0
"""RP002: +/- 1 s, i.e. a random delay between 1 and 3 s (LoRaMac-node EU868_ACK_TIMEOUT_RND 1000 ms)."""

NB_TRANS_DEFAULT = 1
"""LoRaWAN L2 1.0.4 section 5.3: default NbTrans 1."""
NB_TRANS_MAX = 15
"""NbTrans is a 4-bit field of LinkADRReq's Redundancy byte: 1..15 (0 = default)."""

MHDR_BYTES = 1
FHDR_BYTES = 7
"""DevAddr 4 + FCtrl 1 + FCnt 2, no FOpts (LoRaWAN L2 1.0.4 section 4.3)."""
MIC_BYTES = 4
FPORT_BYTES = 1
ACK_DOWNLINK_PHY_BYTES = MHDR_BYTES + FHDR_BYTES + MIC_BYTES
"""An empty downlink with the ACK bit set: MHDR + FHDR + MIC = 12 bytes, no FPort, no payload."""

GATEWAY_TX_LEAD_S = 0.0325
"""A downlink must reach its gateway more than this before its transmission starts, or the gateway
rejects it as too late: Semtech packet forwarder, jitqueue.c ``jit_enqueue`` criterion 1,
TX_START_DELAY 1500 us + TX_MARGIN_DELAY 1000 us + TX_JIT_DELAY 30000 us."""
DEDUPLICATION_DELAY_S = 0.2
"""How long a network server waits after an uplink's first copy for copies from other gateways
before it answers: ChirpStack network server's default ``deduplication_delay`` (200 ms; release
0.13.2 notes, and the v4 configuration file)."""

def receive_delay1_s(region: Region) -> float:
    """RECEIVE_DELAY1: from the end of the uplink to the opening of RX1 (1 s in EU868 and US915)."""
    return region.rx1_delay_s


def receive_delay2_s(region: Region) -> float:
    """RECEIVE_DELAY2: from the end of the uplink to the opening of RX2 (RECEIVE_DELAY1 + 1 s)."""
    return region.rx2_delay_s


def rx_windows_s(uplink_end_s, region: Region, uplink_data_rate, window_symbols: int, rx1_dr_offset: int = 0):
    """Class A receive windows after uplinks ending at ``uplink_end_s`` (vectorized).

    Returns ``(rx1_open, rx1_close, rx2_open, rx2_close)`` in seconds: RX1 opens RECEIVE_DELAY1
    after the end of the uplink, at the RX1 data rate; RX2 opens RECEIVE_DELAY2 after, at the
    region's RX2 data rate; each stays open ``window_symbols`` symbols of its data rate (a
    receiver that detects a preamble stays on for the frame; that is not modelled here).
    """
    end = np.asarray(uplink_end_s, dtype=float)
    dr = np.asarray(uplink_data_rate, dtype=np.int64)
    t1 = rx1_window_s(region, np.broadcast_to(dr, np.broadcast(end, dr).shape), window_symbols, rx1_dr_offset)
    t2 = window_symbols * lora.symbol_time_s(region.data_rate_to_sf(region.rx2_data_rate),
                                             region.data_rate_bandwidth_hz(region.rx2_data_rate))
    rx1_open = end + region.rx1_delay_s
    rx2_open = end + region.rx2_delay_s
    return rx1_open, rx1_open + t1, rx2_open, rx2_open + t2


def rx1_window_s(region: Region, uplink_data_rate, window_symbols: int, rx1_dr_offset: int = 0) -> np.ndarray:
    """How long RX1 stays open with no downlink: ``window_symbols`` symbols at the RX1 data rate
    the region derives from each uplink's data rate and the offset (vectorized)."""
    dr = np.asarray(uplink_data_rate, dtype=np.int64)
    t1 = np.zeros(dr.shape, dtype=float)
    for d in np.unique(dr):
        rx1_dr = region.rx1_data_rate(int(d), rx1_dr_offset)
        t1[dr == d] = window_symbols * lora.symbol_time_s(region.data_rate_to_sf(rx1_dr),
                                                          region.data_rate_bandwidth_hz(rx1_dr))
    return t1


def draw_retransmit_timeout_s(rng: np.random.Generator, size=None):
    """RETRANSMIT_TIMEOUT draws: uniform in [2 - 1, 2 + 1] s (RP002 default settings)."""
    return rng.uniform(RETRANSMIT_TIMEOUT_S - RETRANSMIT_TIMEOUT_RANDOM_S,
                       RETRANSMIT_TIMEOUT_S + RETRANSMIT_TIMEOUT_RANDOM_S, size)


def earliest_retransmission_s(uplink_end_s, region: Region, rng: np.random.Generator):
    """Earliest start of the next uplink after an unacknowledged confirmed uplink ending at
    ``uplink_end_s``: end + RECEIVE_DELAY2 + RETRANSMIT_TIMEOUT (L2 1.0.4 section 4.3.1.3).

    The duty cycle may delay it further; that is the scheduler's business. Vectorized; draws
    one RETRANSMIT_TIMEOUT per element from ``rng``.
    """
    end = np.asarray(uplink_end_s, dtype=float)
    timeout = draw_retransmit_timeout_s(rng, end.shape if end.ndim else None)
    t = end + region.rx2_delay_s + timeout
    return float(t) if np.ndim(uplink_end_s) == 0 else t


def check_nb_trans(nb_trans) -> np.ndarray:
    """Validate NbTrans values (1..15); returns them as int64."""
    arr = np.asarray(nb_trans)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer) or np.any((arr < 1) | (arr > NB_TRANS_MAX)):
        raise InputError(f"NbTrans must be 1..{NB_TRANS_MAX}, got {np.asarray(nb_trans).tolist()!r}", field="nb_trans")
    return arr.astype(np.int64)


def ack_downlink_airtime_s(region: Region, uplink_data_rate: int, rx1_dr_offset: int = 0, window: int = 1,
                           coding_rate=1, preamble_symbols: int = 8) -> float:
    """Time on air of the empty ACK downlink (12 B PHY payload) in RX1 (``window=1``) or RX2.

    LoRaWAN downlinks carry no payload CRC (L2 1.0.x "Downlink messages": only uplinks append
    the CRC; section number not re-checked), so ``crc=False``; explicit header, as LoRaMac-node.
    """
    dr = region.rx1_data_rate(uplink_data_rate, rx1_dr_offset) if window == 1 else region.rx2_data_rate
    return lora.time_on_air_s(ACK_DOWNLINK_PHY_BYTES, region.data_rate_to_sf(dr), region.data_rate_bandwidth_hz(dr),
                              coding_rate, preamble_symbols, crc=False)
