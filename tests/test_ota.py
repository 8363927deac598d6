"""Over-the-air updates: TS004 fragmentation and FEC, a FUOTA session worked by hand, the decoding
guarantee under independent loss, and delta payloads."""

import math
from pathlib import Path

import numpy as np
import pytest

from iotsim.errors import InputError
from iotsim.ota import delta, fec, fuota
from iotsim.radio import lora
from iotsim.radio.lorawan import EU868, US915

ZOO = Path(__file__).resolve().parents[1] / "iotsim" / "zoo"


def test_prbs23_gives_the_published_sequence():
    # the flash_algo crate's documented example of the TS004 generator, from 1001
    x, seq = 1001, []
    for _ in range(2):
        x = fec.prbs23(x)
        seq.append(x)
    assert seq == [0x0000_01F4, 0x0040_00FA]


@pytest.mark.parametrize("m", [1, 2, 7, 64, 105, 1250])
def test_parity_rows_draw_half_the_fragments_within_range(m):
    for n in (1, 2, 50):
        row = fec.parity_row(n, m)
        assert 0 < row < 1 << m  # only uncoded fragments 0..M-1
        ones = row.bit_count()
        assert ones <= max(1, m // 2)  # M/2 draws, repeats possible
        if m >= 64:
            assert ones >= m // 4  # dense: most draws are distinct
    assert fec.parity_row(3, 105) != fec.parity_row(4, 105)


@pytest.mark.parametrize("block_bytes,fragment_bytes,loss", [(5000, 48, 0.15), (4096, 64, 0.2), (1000, 219, 0.3)])
def test_a_receiver_missing_fragments_rebuilds_the_block_byte_for_byte(block_bytes, fragment_bytes, loss):
    rng = np.random.default_rng(block_bytes)
    block = rng.integers(0, 256, block_bytes, dtype=np.uint8).tobytes()
    plan = fec.cut(block_bytes, fragment_bytes, 0.5)
    frags = fec.encode(block, fragment_bytes, plan.total)
    assert len(frags) == plan.total and all(len(f) == fragment_bytes for f in frags)
    assert b"".join(frags[:plan.uncoded])[:block_bytes] == block  # systematic: the uncoded ones come first
    rebuilt = 0
    for _ in range(20):
        dec = fec.Decoder(plan.uncoded, fragment_bytes, block_bytes)
        order = [i for i in range(1, plan.total + 1) if rng.random() >= loss]
        for i in order:
            if dec.add(i, frags[i - 1]):
                break
        # it decodes exactly when the rows of the fragments it took span GF(2)^M
        assert dec.complete == (_gf2_rank(order[:dec.received], plan.uncoded) == plan.uncoded)
        if dec.complete:
            rebuilt += 1
            assert dec.block() == block
            assert dec.received >= plan.uncoded  # never fewer fragments than the block holds
        else:
            with pytest.raises(ValueError, match="missing"):
                dec.block()
    assert rebuilt >= (15 if plan.uncoded > 20 else 5)  # a 5-fragment block has 2-coefficient rows: a weak code


def _gf2_rank(indices, m):
    """Rank over GF(2) of the fragments' rows (unit rows for uncoded fragments), by plain elimination on
    a 0/1 matrix."""
    rows = np.array([[(((1 << (i - 1)) if i <= m else fec.parity_row(i - m, m)) >> j) & 1 for j in range(m)]
                     for i in indices], dtype=np.uint8).reshape(len(indices), m)
    rank = 0
    for col in range(m):
        hit = np.flatnonzero(rows[rank:, col]) + rank
        if hit.size == 0:
            continue
        rows[[rank, hit[0]]] = rows[[hit[0], rank]]
        below = np.flatnonzero(rows[:, col])
        below = below[below != rank]
        rows[below] ^= rows[rank]
        rank += 1
        if rank == rows.shape[0]:
            break
    return rank


def test_a_fuota_session_matches_the_hand_calculation():
    """The farm model (10,672 B) on EU868 RX2 (869.525 MHz, DR0 = SF12/125 kHz, 10 % sub-band), 30 %
    redundancy: FRMPayload N = 51 B, so 48 B fragments after the 3-byte DataFragment header;
    M = ceil(10672 / 48) = 223, N = 223 + ceil(0.3 x 223) = 290; PHY 48 + 3 + 13 = 64 B. Time on air
    (SX1276 datasheet 4.1.1.7, no CRC on downlinks, low data rate optimisation at SF12):
    8 + ceil((8 x 64 - 4 x 12 + 28) / (4 x (12 - 2))) x 5 = 73 payload symbols, plus 12.25 preamble
    symbols, x 32.768 ms = 2.793472 s; under a 10 % duty cycle one fragment every 27.93472 s."""
    plan = fuota.plan_session(EU868, 10_672, redundancy=0.3)
    f = plan.fragments
    assert (f.fragment_bytes, f.uncoded, f.total, f.redundancy, f.padding_bytes) == (48, 223, 290, 67, 223 * 48 - 10_672)
    assert (plan.sf, plan.bandwidth_hz, plan.frequency_hz, plan.duty_cycle) == (12, 125_000, 869.525e6, 0.1)
    assert plan.fragment_phy_bytes == 64
    assert plan.fragment_airtime_s == pytest.approx((12.25 + 73) * 4096 / 125_000, abs=1e-12)
    assert plan.fragment_interval_s == pytest.approx(27.93472, abs=1e-9)
    assert plan.session_s == pytest.approx(289 * 27.93472 + 2.793472, abs=1e-6)
    assert plan.downlink_airtime_s == pytest.approx(290 * 2.793472, abs=1e-9)
    # DR5 (SF7): 222 B of FRMPayload, so 219 B fragments: M = 49, N = 49 + 15 = 64
    fast = fuota.plan_session(EU868, 10_672, data_rate=5, redundancy=0.3)
    assert (fast.fragments.fragment_bytes, fast.fragments.uncoded, fast.fragments.total) == (219, 49, 64)
    # US915 RX2 (923.3 MHz, DR8 = SF12/500 kHz) has no duty cycle: fragments back to back
    us = fuota.plan_session(US915, 10_672)
    assert us.duty_cycle == 1.0 and us.fragment_interval_s == us.fragment_airtime_s


@pytest.mark.parametrize("p_receive", [0.75, 0.8, 0.9])
def test_the_share_of_nodes_that_decode_matches_the_random_code_guarantee(p_receive):
    """Each node receives each fragment independently with p; it decodes when its fragments span the
    block. The share that decodes equals that of a code with uniformly random rows,
    sum P(k lost) P(c coded received) prod_{i=c-k+1..c} (1 - 2^-i), within sampling error."""
    plan = fuota.plan_session(EU868, 10_672, redundancy=0.3)
    n = 3000
    got = fuota.simulate_rollout(plan, np.full(n, p_receive), np.random.default_rng(int(p_receive * 100)))
    expected = fuota.random_code_decode_probability(plan.fragments.total, plan.fragments.uncoded, p_receive)
    assert 0.01 < expected  # not vacuous at 0.75
    share = got.decoded.mean()
    assert share == pytest.approx(expected, abs=4 * math.sqrt(expected * (1 - expected) / n) + 0.005)
    # a node decodes after at least M fragments, at the end of the fragment that completed it
    dec = got.decoded
    assert (got.received[dec] >= plan.fragments.uncoded).all()
    assert np.allclose(got.done_s[dec], (got.decoded_at[dec] - 1) * plan.fragment_interval_s + plan.fragment_airtime_s)
    assert (got.rx_s[~dec] == plan.session_s).all() and (got.rx_s[dec] <= plan.session_s).all()
    assert got.time_to_share_s(share / 2) <= got.time_to_share_s(share - 0.01) < math.inf
    if share < 0.98:
        assert got.time_to_share_s(share + 0.02) == math.inf
    else:
        assert got.time_to_share_s(1.0) == got.done_s.max() <= plan.session_s


def test_fragment_success_falls_with_the_link_budget():
    plan = fuota.plan_session(EU868, 1000)
    sens = lora.node_sensitivity_dbm(12, 125_000)  # SX1276 datasheet table 10
    p = fuota.fragment_success(np.array([sens + 20, sens, sens - 10]), plan, fragment_loss=0.1)
    assert p[0] == pytest.approx(math.exp(-0.01) * 0.9)
    assert p[1] == pytest.approx(math.exp(-1) * 0.9)
    assert p[2] == pytest.approx(math.exp(-10) * 0.9)


def test_bad_sessions_are_refused_with_a_clear_message():
    with pytest.raises(InputError, match="do not fit DR0"):
        fuota.plan_session(EU868, 1000, fragment_bytes=49)
    with pytest.raises(InputError, match="at most 16383"):
        fuota.plan_session(EU868, 2_000_000)
    with pytest.raises(InputError, match="not a LoRa data rate"):
        fuota.plan_session(EU868, 1000, data_rate=7)  # EU868 DR7 is FSK


@pytest.mark.parametrize("compression", ["heatshrink", "lzma", "crle"])
def test_the_delta_of_identical_models_is_near_empty(compression):
    for name in ("farm_soil_int8", "factory_bearing_int8"):
        model = (ZOO / f"{name}.tflite").read_bytes()
        size = len(delta.create_delta(model, model, compression))
        assert size <= 0.02 * len(model)
        assert delta.apply_delta(model, delta.create_delta(model, model, compression)) == model


def test_a_delta_rebuilds_the_new_model_and_shrinks_with_the_change():
    """Retraining only the last layer changes a small part of the file: the delta is far smaller than
    the model; changing every weight is not."""
    old = (ZOO / "factory_bearing_int8.tflite").read_bytes()
    rng = np.random.default_rng(0)
    small, large = bytearray(old), bytearray(old)
    for i in rng.integers(len(old) - 2000, len(old) - 1000, 300):  # a 1 kB stretch (one layer's weights)
        small[i] ^= 0x5A
    for i in rng.integers(0, len(old), 8000):  # spread over the whole file
        large[i] ^= 0x5A
    for new in (bytes(small), bytes(large)):
        d = delta.create_delta(old, new)
        assert delta.apply_delta(old, d) == new
    p_small = delta.update_payload(old, bytes(small))
    p_large = delta.update_payload(old, bytes(large))
    assert p_small.payload_bytes < 0.1 * len(old) < p_large.payload_bytes
    full = delta.update_payload(old, bytes(small), mode="full")
    assert full.payload_bytes == len(old) and full.compression is None
    with pytest.raises(InputError, match="unknown update mode"):
        delta.update_payload(old, old, mode="patch")
    with pytest.raises(InputError, match="unknown delta compression"):
        delta.create_delta(old, old, "zip")


def test_the_decoder_takes_fragments_in_any_order_and_ignores_repeats():
    rng = np.random.default_rng(11)
    block = rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()
    plan = fec.cut(len(block), 40, 0.6)
    frags = fec.encode(block, 40, plan.total)
    for trial in range(10):
        kept = [i for i in range(1, plan.total + 1) if rng.random() > 0.3]
        order = list(rng.permutation(kept)) + list(rng.choice(kept, 10))  # shuffled, then repeats
        dec = fec.Decoder(plan.uncoded, 40, len(block))
        taken = []
        for i in order:
            taken.append(int(i))
            if dec.add(int(i), frags[i - 1]):
                break
        assert dec.complete == (_gf2_rank(taken, plan.uncoded) == plan.uncoded)
        if dec.complete:
            assert dec.block() == block
            assert _gf2_rank(taken[:-1], plan.uncoded) < plan.uncoded  # it completed at the first spanning fragment


def test_without_detools_a_delta_update_says_how_to_get_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "detools", None)  # as if the `updates` extra were not installed
    with pytest.raises(InputError, match=r"pip install -e '\.\[updates\]'.*mode: full"):
        delta.create_delta(b"old", b"new")
    assert delta.update_payload(b"old", b"new", mode="full").payload_bytes == 3  # a full image needs no detools


# ---- applying an update on the node: flash and integrity check ---------------------------------------------

def test_sha256_on_the_emulated_mcu_matches_hashlib_and_the_recorded_counts(tmp_path):
    """The firmware's SHA-256 gives hashlib's digests (measure() checks every one) and takes the instruction
    counts recorded in iotsim.ota.integrity: a fixed part plus the same counts per 64-byte block."""
    import shutil

    from iotsim.ota import integrity

    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None:
        pytest.skip("needs arm-none-eabi-gcc and qemu-system-arm")
    got = integrity.measure(work_dir=tmp_path)
    rec = integrity.RECORDED["cortex-m4"]
    assert got.core == rec.core and got.caches == rec.caches
    assert got.per_block == rec.per_block and got.fixed == rec.fixed
    assert rec.per_block["instructions"] > 3000  # 64 rounds of a few dozen instructions each


def test_integrity_check_time_is_the_cycle_model_of_fixed_plus_blocks():
    from iotsim.firmware.cycles import CycleParams, cycles
    from iotsim.hardware.profiles import load_profile
    from iotsim.ota import integrity

    mcu = load_profile("mcu", "nrf52840")
    rec = integrity.RECORDED["cortex-m4"]
    params = CycleParams.from_mapping("cortex-m4", mcu.cycle_model)
    per_block = cycles(rec.per_block, params, caches=rec.caches)
    for n in (0, 55, 56, 64, 10_672):
        b = (n + 9 + 63) // 64  # FIPS 180-4: 0x80, zeros, a 64-bit length
        assert integrity.blocks(n) == b
        expected = (cycles(rec.fixed, params, caches=rec.caches) + b * per_block) / 64e6
        assert integrity.hash_seconds(n, mcu) == pytest.approx(expected, rel=1e-12)
    assert integrity.blocks(55) == 1 and integrity.blocks(56) == 2
    assert integrity.hash_seconds(1000, load_profile("mcu", "esp32")) is None  # Xtensa: not emulated


def test_applying_an_update_writes_pages_and_words_worked_by_hand():
    """nRF52840 (4 kB pages, 85 ms per page erase, 41 us per 32-bit word): a 7,803 B delta of a 10,672 B
    model stores the block (2 pages, 1,951 words), the patched model (3 pages, 2,668 words) and the slot
    record (1 page, 1 word); a full image stores the model once, then the record."""
    from iotsim.hardware.profiles import load_profile
    from iotsim.ota.apply import apply_cost
    from iotsim.ota.integrity import hash_seconds
    from iotsim.ota.patch_cost import patch_seconds
    from iotsim.ota.signature import verify_seconds

    mcu = load_profile("mcu", "nrf52840")
    d = apply_cost(7803, 10672, "delta", mcu)
    assert d.flash_s == pytest.approx(6 * 0.085 + (1951 + 2668 + 1) * 41e-6, rel=1e-12)
    assert d.hash_s == hash_seconds(10672, mcu) and d.verify_s == verify_seconds(mcu) > 0
    assert d.patch_s == patch_seconds(7803, 10672, "none", mcu) > 0 and d.measured
    assert d.cpu_s == d.patch_s + d.hash_s + d.verify_s
    h = apply_cost(72, 10672, "head", mcu)  # new layers: no patch, the same checks
    assert h.patch_s == 0 and h.hash_s == d.hash_s and h.verify_s == d.verify_s
    f = apply_cost(10672, 10672, "full", mcu)
    assert f.flash_s == pytest.approx(4 * 0.085 + (2668 + 1) * 41e-6, rel=1e-12)
    assert apply_cost(7803, 10672, "delta", load_profile("mcu", "casals2017_mcu")) is None  # no flash figures


def test_flash_sizes_must_be_whole_bytes(tmp_path):
    from iotsim.hardware.profiles import load_file

    text = (Path(__file__).resolve().parents[1] / "devices" / "mcu" / "nrf52840.yaml").read_text()
    bad = tmp_path / "mcu" / "odd.yaml"
    bad.parent.mkdir()
    bad.write_text(text.replace("name: nrf52840", "name: odd").replace("value: 4096\n", "value: 4096.5\n", 1))
    with pytest.raises(InputError, match="page_bytes must be a whole number"):
        load_file(bad)
