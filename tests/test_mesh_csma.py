"""IEEE 802.15.4 unslotted CSMA/CA (iotsim.mesh.csma): one frame worked by hand, one saturated sender
against its closed form, the counts conserved, hidden terminals, and the PIB's bounds."""

import numpy as np
import pytest

from iotsim.mesh import csma, phy

US = 1e-6


def test_one_frame_worked_by_hand():
    """A 127-octet PSDU (4.256 ms on air) alone on the channel: k unit backoffs of 320 us (k drawn from
    0..2^3 - 1), an 8-symbol CCA (128 us), aTurnaroundTime (192 us), the frame, aTurnaroundTime again and
    the 5-octet acknowledgement (11 octets on air, 352 us): the frame is acknowledged at their sum."""
    seed = 11
    k = int(np.random.default_rng(seed).integers(0, 8))
    r = csma.simulate(1, 127, 1.0, np.random.default_rng(seed), saturated=False, arrivals=[[0.0]])
    expected = k * 320 * US + 128 * US + 192 * US + 4256 * US + 192 * US + 352 * US
    assert r.latency_s == [pytest.approx(expected, abs=1e-12)]
    assert (r.frames[0], r.delivered[0], r.transmissions[0], r.cca[0], r.cca_busy[0]) == (1, 1, 1, 1, 0)
    assert r.tx_s[0] == pytest.approx(4256 * US)
    assert r.rx_s[0] == pytest.approx((128 + 192 + 192 + 352) * US)  # CCA, turnaround, waiting for the ACK


def test_one_saturated_sender_matches_its_closed_form():
    """Alone and saturated, a cycle lasts E[k] x 320 us + CCA + 2 turnarounds + frame + ACK + LIFS (640 us after
    a 60-octet PSDU) with E[k] = (2^3 - 1) / 2: the channel's throughput is the frame's share of that. Without
    the interframe spacing (the switch off), the LIFS drops out of the cycle."""
    air = float(phy.frame_airtime_s(60))
    cycle = 3.5 * 320 * US + 128 * US + 2 * 192 * US + air + 352 * US
    r = csma.simulate(1, 60, 20.0, np.random.default_rng(1))
    assert r.throughput == pytest.approx(air / (cycle + 640 * US), rel=0.01)
    assert r.delivered[0] == r.frames[0] > 4000 and r.transmissions[0] - r.frames[0] <= 1  # one on air at the end
    assert r.cca_busy[0] == 0 and r.collisions[0] == 0
    off = csma.simulate(1, 60, 20.0, np.random.default_rng(1), settings=csma.MacSettings(ifs=False))
    assert off.throughput == pytest.approx(air / cycle, rel=0.01)
    assert off.throughput > r.throughput * 1.05


@pytest.mark.parametrize("psdu, ifs_us", [(18, 192), (19, 640), (127, 640)])
def test_back_to_back_frames_keep_the_interframe_spacing(psdu, ifs_us):
    """Two frames queued at 0: the second's CSMA/CA starts SIFS (12 symbols, PSDU <= aMaxSIFSFrameSize 18
    octets) or LIFS (40 symbols) after the first's acknowledgement; worked by hand from the two backoff draws."""
    seed = 3
    draws = np.random.default_rng(seed).integers(0, 8, size=2)
    r = csma.simulate(1, psdu, 1.0, np.random.default_rng(seed), saturated=False, arrivals=[[0.0, 0.0]])
    air = float(phy.frame_airtime_s(psdu)) / US
    hop = 128 + 192 + air + 192 + 352  # CCA, turnaround, frame, turnaround, ACK (us)
    first = draws[0] * 320 + hop
    second = ifs_us + draws[1] * 320 + hop  # taken up when the first is acknowledged
    assert r.latency_s == [pytest.approx(first * US, abs=1e-12), pytest.approx(second * US, abs=1e-12)]
    assert phy.ifs_s(psdu) == pytest.approx(ifs_us * US)


@pytest.mark.parametrize("n", [5, 20])
def test_a_crowded_channel_conserves_its_frames(n):
    r = csma.simulate(n, 60, 5.0, np.random.default_rng(n))
    np.testing.assert_array_equal(r.frames, r.delivered + r.access_failures + r.retry_failures)
    assert (r.transmissions >= r.delivered).all() and (r.cca >= r.transmissions).all()
    assert r.collisions.sum() > 0 and r.cca_busy.sum() > 0
    if n == 20:
        assert r.access_failures.sum() > 0
    # every transmission either reached the receiver or collided (no channel errors here), and a frame
    # is acknowledged at most once
    assert r.delivered.sum() <= r.transmissions.sum() - r.collisions.sum()
    # the channel carries less than one frame at a time
    assert 0.1 < r.throughput < 1.0


def test_hidden_terminals_collide_more():
    """Two senders that both reach the receiver: hearing each other, CCA keeps most of their frames apart;
    hidden from each other, they collide far more often."""
    both = np.ones((3, 3), dtype=bool)
    hidden = both.copy()
    hidden[0, 1] = hidden[1, 0] = False
    a = csma.simulate(2, 100, 10.0, np.random.default_rng(3), hears=both)
    b = csma.simulate(2, 100, 10.0, np.random.default_rng(3), hears=hidden)
    share = lambda r: r.collisions.sum() / r.transmissions.sum()  # noqa: E731
    assert share(b) > 3 * share(a) and share(b) > 0.2
    assert b.throughput < a.throughput


def test_channel_errors_are_retried_up_to_the_limit():
    r = csma.simulate(1, 60, 10.0, np.random.default_rng(4), link_success=np.array([0.5]))
    # a frame and its ACK each pass with 0.5: an attempt succeeds with 0.25, 4 attempts at most
    assert r.delivered.sum() / r.frames.sum() == pytest.approx(1 - 0.75 ** 4, abs=0.03)
    assert r.retry_failures[0] > 0 and r.access_failures[0] == 0


def test_without_acknowledgements_a_frame_is_sent_once():
    r = csma.simulate(3, 60, 2.0, np.random.default_rng(5), settings=csma.MacSettings(ack=False))
    sent_done = r.frames - r.access_failures  # frames that went on air and were finished
    assert ((r.transmissions - sent_done >= 0) & (r.transmissions - sent_done <= 1)).all()  # one on air at the end
    assert r.retry_failures.sum() == 0 and r.delivered.sum() < r.transmissions.sum()


@pytest.mark.parametrize("kw", [{"min_be": 6, "max_be": 5}, {"max_be": 9}, {"max_csma_backoffs": 6},
                                {"max_frame_retries": 8}])
def test_settings_outside_the_standard_are_refused(kw):
    with pytest.raises(ValueError, match="802.15.4"):
        csma.MacSettings(**kw)


def test_runs_are_reproducible():
    a = csma.simulate(8, 40, 2.0, np.random.default_rng(9))
    b = csma.simulate(8, 40, 2.0, np.random.default_rng(9))
    for f in ("frames", "delivered", "collisions", "cca_busy", "tx_s", "rx_s"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
