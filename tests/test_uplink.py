"""Fragmentation and duty-cycle scheduling against closed forms."""

import numpy as np
import pytest

from iotsim.engine.uplink import Messages, build_frames, min_gap_s, schedule
from iotsim.radio import lora
from iotsim.scenario.model import LoRaWanSettings


def _messages(node, ready, app_bytes, kind=2):
    n = len(node)
    return Messages(np.asarray(node, np.int64), np.asarray(ready, float), np.asarray(app_bytes, np.int64),
                    np.full(n, kind, np.int8), np.arange(n, dtype=np.int64), np.zeros(n, np.int64))


def test_raw_window_is_fragmented_to_the_sf_payload_limit():
    settings = LoRaWanSettings(fragment_header_bytes=2)
    msgs = _messages([0, 1], [0.0, 0.0], [1536, 1536])
    frames = build_frames(msgs, np.array([7, 10]), settings)
    # SF7: 222 B max -> 220 B per fragment -> 7 frames; SF10: 51 B -> 49 per fragment -> 32 frames
    assert (frames.message == 0).sum() == 7 and (frames.message == 1).sum() == 32
    app0 = frames.phy_bytes[frames.message == 0] - lora.LORAWAN_OVERHEAD_BYTES - 2
    assert app0.sum() == 1536 and app0.max() == 220
    assert (frames.phy_bytes - lora.LORAWAN_OVERHEAD_BYTES <= 222).all()
    expected = lora.time_on_air_s(frames.phy_bytes, frames.sf, bandwidth_hz=125000, coding_rate=1, preamble_symbols=8)
    np.testing.assert_allclose(frames.airtime_s, expected)
    # a message that fits travels in one frame without a fragment header
    one = build_frames(_messages([0], [0.0], [20]), np.array([7]), settings)
    assert len(one) == 1 and one.phy_bytes[0] == 33


def test_wait_mode_paces_frames_by_the_duty_cycle():
    settings = LoRaWanSettings(duty_cycle_mode="wait")
    msgs = _messages([0, 0, 0], [0.0, 1.0, 1000.0], [20, 20, 20])
    frames = build_frames(msgs, np.array([12]), settings)
    schedule(frames, msgs, settings, 0.01)
    toa = lora.time_on_air_s(33, 12)
    # frame 0 at 0; frame 1 waits toa/dc; frame 2 is ready long after and goes at once
    np.testing.assert_allclose(frames.start_s, [0.0, toa / 0.01, 1000.0])
    assert not frames.dropped.any()


def test_wait_mode_backlog_matches_recursion():
    settings = LoRaWanSettings(duty_cycle_mode="wait")
    rng = np.random.default_rng(1)
    ready = np.sort(rng.random(200) * 3000)
    msgs = _messages(np.zeros(200), ready, rng.integers(5, 300, 200))
    frames = build_frames(msgs, np.array([9]), settings)
    schedule(frames, msgs, settings, 0.01)
    gap = min_gap_s(frames, settings, 0.01)
    t = -np.inf
    for i in range(len(frames)):
        t = max(frames.ready_s[i], t + gap[i - 1]) if i else frames.ready_s[0]
        assert frames.start_s[i] == pytest.approx(t, abs=1e-9)


def test_drop_mode_drops_messages_that_may_not_start():
    settings = LoRaWanSettings(duty_cycle_mode="drop")
    msgs = _messages([0, 0, 0, 1], [0.0, 5.0, 500.0, 5.0], [400, 20, 20, 20])
    frames = build_frames(msgs, np.array([7, 7]), settings)
    schedule(frames, msgs, settings, 0.01)
    m0 = frames.message == 0
    assert m0.sum() == 2 and not frames.dropped[m0].any()  # fragments of a started message wait
    gap = min_gap_s(frames, settings, 0.01)
    assert frames.start_s[m0][1] == pytest.approx(gap[0])
    assert frames.dropped[frames.message == 1].all()  # node 0 still restricted at t=5
    assert not frames.dropped[frames.message == 2].any()
    assert not frames.dropped[frames.message == 3].any()  # another node is not affected
    assert np.isnan(frames.start_s[frames.dropped]).all()
