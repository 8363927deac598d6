"""NB-IoT physical-layer timing (iotsim.radio.nbiot) against 3GPP TS 36.211 and TS 36.213 by hand."""

import numpy as np
import pytest

from iotsim.radio import nbiot


def test_npusch_tbs_table_is_the_standards():
    # TS 36.213 Table 16.5.1.2-2: I_TBS 0 runs 16 ... 256 bits over I_RU 0-7; Rel-13 caps blocks at 1000 bits
    assert nbiot.NPUSCH_TBS_BITS[0].tolist() == [16, 32, 56, 88, 120, 152, 208, 256]
    assert nbiot.npusch_tbs_bits(10, 0) == 144 and nbiot.npusch_tbs_bits(12, 3) == 1000
    assert nbiot.NPUSCH_TBS_BITS.max() == 1000
    # the first column is LTE's one-PRB column (TS 36.213 Table 7.1.7.2.1-1): 16 24 32 40 56 72 88 104 120 136 144 176 208
    assert nbiot.NPUSCH_TBS_BITS[:, 0].tolist() == [16, 24, 32, 40, 56, 72, 88, 104, 120, 136, 144, 176, 208]
    # every row and column grows
    t = np.where(nbiot.NPUSCH_TBS_BITS == 0, np.nan, nbiot.NPUSCH_TBS_BITS)
    assert np.all(np.diff(t, axis=1)[~np.isnan(np.diff(t, axis=1))] > 0)
    with pytest.raises(ValueError, match="allows no transport block"):
        nbiot.npusch_tbs_bits(12, 4)


def test_resource_units_and_blocks_by_hand():
    # TS 36.211 Table 10.1.2.3-1: 16 slots of 2 ms at 3.75 kHz; 16, 8, 4, 2 slots of 0.5 ms at 15 kHz
    assert nbiot.resource_unit_s(3750, 1) == pytest.approx(16 * 2e-3)
    assert [nbiot.resource_unit_s(15000, k) for k in (1, 3, 6, 12)] == pytest.approx([8e-3, 4e-3, 2e-3, 1e-3])
    with pytest.raises(ValueError, match="3.75 kHz"):
        nbiot.resource_unit_s(3750, 3)
    # I_RU 3 = 4 resource units of 4 ms (3 tones at 15 kHz), 16 repetitions: 256 ms
    assert nbiot.transport_block_s(3, 15000, 3, 16) == pytest.approx(4 * 4e-3 * 16)
    # 78 bytes in 144-bit blocks: 624 bits -> 5 blocks; an empty payload still takes one
    assert nbiot.transport_blocks(np.array([78, 18, 0]), 144).tolist() == [5, 1, 1]


def test_nprach_preamble_by_hand():
    # 4 symbol groups of CP + 5 symbols of 8192 Ts (Ts = 1 / 30.72 MHz): format 0 CP 2048 Ts, format 1 CP 8192 Ts
    ts = 1 / 30.72e6
    assert nbiot.nprach_preamble_s(0) == pytest.approx(4 * (2048 + 5 * 8192) * ts)
    assert nbiot.nprach_preamble_s(0) == pytest.approx(5.6e-3)
    assert nbiot.nprach_preamble_s(1) == pytest.approx(6.4e-3)
