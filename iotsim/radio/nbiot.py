"""NB-IoT physical-layer timing (3GPP Release 13, TS 36.211 and TS 36.213): how long the uplink and the
random access of one report occupy the radio.

Uplink data (NPUSCH format 1, TS 36.211 10.1.3 and TS 36.213 16.5.1):
- a transport block of TBS bits spans N_RU resource units; I_TBS and I_RU pick its size from
  TS 36.213 Table 16.5.1.2-2 (`NPUSCH_TBS_BITS`, Rel-13: at most 1000 bits), I_RU the number of units from
  Table 16.5.1.1-2 (`N_RU`: 1, 2, 3, 4, 5, 6, 8, 10);
- a resource unit lasts (TS 36.211 Table 10.1.2.3-1): 3.75 kHz spacing, 1 subcarrier: 16 slots of 2 ms = 32 ms;
  15 kHz spacing: 1 subcarrier 8 ms, 3 subcarriers 4 ms, 6 subcarriers 2 ms, 12 subcarriers 1 ms;
- the block is repeated N_rep times (TS 36.213 Table 16.5.1.1-3: 1, 2, 4, ..., 128), the coverage
  enhancement's way of buying link budget with time.

Random access (NPRACH, TS 36.211 10.1.6.1): a preamble is 4 symbol groups, each a cyclic prefix and 5 symbols
of 8192 Ts (Ts = 1 / 30.72 MHz, so 266.7 us); the prefix is 2048 Ts (66.7 us) in format 0 and 8192 Ts in
format 1. One preamble therefore lasts 5.6 ms (format 0) or 6.4 ms (format 1), repeated
`numRepetitionsPerPreambleAttempt` times (1, 2, 4, ..., 128) per coverage enhancement level.

The TBS table is the Rel-13 table as an srsLTE/srsRAN NB-IoT eNB scheduler carries it (`tbs_table_npusch` in its
sched_ue, commented "from 3GPP TS 36.213 v13.2.0 table 16.5.1.2-2"; found by the code index); 0 marks sizes the
table does not allow.
"""

from __future__ import annotations

import numpy as np

TS_S = 1.0 / 30.72e6  # LTE basic time unit (TS 36.211 4)

# TS 36.213 v13.2.0 Table 16.5.1.2-2: TBS (bits) by I_TBS (rows 0-12) and I_RU (columns 0-7); 0: not allowed
NPUSCH_TBS_BITS = np.array([
    [16, 32, 56, 88, 120, 152, 208, 256],
    [24, 56, 88, 144, 176, 208, 256, 344],
    [32, 72, 144, 176, 208, 256, 328, 424],
    [40, 104, 176, 208, 256, 328, 440, 568],
    [56, 120, 208, 256, 328, 408, 552, 680],
    [72, 144, 224, 328, 424, 504, 680, 872],
    [88, 176, 256, 392, 504, 600, 808, 1000],
    [104, 224, 328, 472, 584, 712, 1000, 0],
    [120, 256, 392, 536, 680, 808, 0, 0],
    [136, 296, 456, 616, 776, 936, 0, 0],
    [144, 328, 504, 680, 872, 1000, 0, 0],
    [176, 376, 584, 776, 1000, 0, 0, 0],
    [208, 440, 680, 1000, 0, 0, 0, 0],
], dtype=np.int64)
N_RU = (1, 2, 3, 4, 5, 6, 8, 10)  # TS 36.213 Table 16.5.1.1-2, by I_RU
REPETITIONS = (1, 2, 4, 8, 16, 32, 64, 128)  # NPUSCH N_rep (Table 16.5.1.1-3) and NPRACH repetitions

# TS 36.211 Table 10.1.2.3-1: NPUSCH format 1 resource unit duration by (subcarrier spacing Hz, subcarriers)
RESOURCE_UNIT_S = {(3750, 1): 32e-3, (15000, 1): 8e-3, (15000, 3): 4e-3, (15000, 6): 2e-3, (15000, 12): 1e-3}

NPRACH_SYMBOL_S = 8192 * TS_S  # 266.7 us
NPRACH_CP_S = {0: 2048 * TS_S, 1: 8192 * TS_S}  # preamble format 0 / 1


def npusch_tbs_bits(i_tbs: int, i_ru: int) -> int:
    """Transport block size of NPUSCH format 1 (TS 36.213 Table 16.5.1.2-2); raises if not allowed."""
    if not 0 <= i_tbs < NPUSCH_TBS_BITS.shape[0] or not 0 <= i_ru < NPUSCH_TBS_BITS.shape[1]:
        raise ValueError(f"I_TBS must be 0..12 and I_RU 0..7, got I_TBS {i_tbs}, I_RU {i_ru}")
    tbs = int(NPUSCH_TBS_BITS[i_tbs, i_ru])
    if tbs == 0:
        raise ValueError(f"TS 36.213 Table 16.5.1.2-2 allows no transport block for I_TBS {i_tbs} with I_RU {i_ru} "
                         "(Rel-13 caps NPUSCH blocks at 1000 bits)")
    return tbs


def resource_unit_s(spacing_hz: int, subcarriers: int) -> float:
    """Duration of one NPUSCH format 1 resource unit (TS 36.211 Table 10.1.2.3-1)."""
    try:
        return RESOURCE_UNIT_S[(int(spacing_hz), int(subcarriers))]
    except KeyError:
        raise ValueError(f"NPUSCH allocations are 1 subcarrier at 3.75 kHz or 1, 3, 6 or 12 at 15 kHz; got "
                         f"{subcarriers} at {spacing_hz / 1e3:g} kHz") from None


def transport_block_s(i_ru: int, spacing_hz: int, subcarriers: int, repetitions: int) -> float:
    """Time on air of one NPUSCH transport block with its repetitions."""
    return N_RU[i_ru] * resource_unit_s(spacing_hz, subcarriers) * repetitions


def transport_blocks(payload_bytes, tbs_bits: int) -> np.ndarray:
    """Transport blocks a MAC payload of `payload_bytes` needs (vectorised)."""
    bits = np.asarray(payload_bytes, dtype=np.int64) * 8
    return np.maximum(-(-bits // int(tbs_bits)), 1)


def nprach_preamble_s(preamble_format: int = 0) -> float:
    """One NPRACH preamble: 4 symbol groups of a cyclic prefix and 5 symbols (TS 36.211 10.1.6.1)."""
    return 4 * (NPRACH_CP_S[preamble_format] + 5 * NPRACH_SYMBOL_S)


__all__ = ["NPUSCH_TBS_BITS", "N_RU", "REPETITIONS", "RESOURCE_UNIT_S", "npusch_tbs_bits", "resource_unit_s",
           "transport_block_s", "transport_blocks", "nprach_preamble_s"]
