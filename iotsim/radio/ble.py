"""Bluetooth LE link-layer timing (Bluetooth Core Specification v5.x, Vol 6 Part B).

A data-channel packet on air (Vol 6 Part B 2.1, 2.4): preamble (1 octet on LE 1M, 2 on LE 2M),
access address (4), PDU header (2), payload (0-251), MIC (4, only on an encrypted link with a
non-empty payload), CRC (3). LE 1M sends 1 bit/us, LE 2M 2 bit/us.

Published checks (Vol 6 Part B 4.5.10, "connMaxTxTime" limits): a 27-octet payload with MIC on
LE 1M takes 328 us; 251 octets with MIC take 2120 us. An empty PDU (keep-alive) takes 80 us.

Packets in a connection event alternate central -> peripheral -> central ... separated by the
inter frame space T_IFS = 150 us (Vol 6 Part B 4.1.1). A GATT notification carries 3 octets of
ATT header (opcode 1, handle 2) inside a 4-octet L2CAP basic header (Vol 3 Part A 3.1).
"""

from __future__ import annotations

import numpy as np

T_IFS_S = 150e-6
ACCESS_ADDRESS_BYTES = 4
HEADER_BYTES = 2
CRC_BYTES = 3
MIC_BYTES = 4
L2CAP_HEADER_BYTES = 4
ATT_NOTIFY_HEADER_BYTES = 3
PHY_BITRATE_BPS = {"1M": 1e6, "2M": 2e6}
PREAMBLE_BYTES = {"1M": 1, "2M": 2}


def packet_time_s(payload_bytes, phy: str = "1M", encrypted: bool = False) -> np.ndarray:
    """Time on air of LL data packets with `payload_bytes` octets of LL payload (vectorised)."""
    if phy not in PHY_BITRATE_BPS:
        raise ValueError(f"unknown LE PHY {phy!r}; known: {', '.join(PHY_BITRATE_BPS)}")
    pl = np.asarray(payload_bytes, dtype=np.int64)
    if (pl < 0).any() or (pl > 251).any():
        raise ValueError("LL payload must be 0..251 octets")
    mic = np.where((pl > 0) & encrypted, MIC_BYTES, 0)
    octets = PREAMBLE_BYTES[phy] + ACCESS_ADDRESS_BYTES + HEADER_BYTES + pl + mic + CRC_BYTES
    return octets * 8.0 / PHY_BITRATE_BPS[phy]


def empty_packet_time_s(phy: str = "1M") -> float:
    """An empty PDU (no payload, no MIC): what each side sends in an idle connection event."""
    return float(packet_time_s(0, phy))


def notification_overhead_bytes() -> int:
    """Octets a GATT notification adds to the application payload inside the LL payload."""
    return L2CAP_HEADER_BYTES + ATT_NOTIFY_HEADER_BYTES
