"""LoRaWAN class A uplinks as a `Link`: frames, duty cycle per sub-band, channels, gateway reception.

Frames. A message larger than the data rate's maximum application payload (the region's table) is
split into fragments, each with a small fragment header (`iotsim.radio.fragmentation`). Each
frame's PHY payload adds the 13-byte LoRaWAN overhead; its time on air follows the Semtech formula.

Schedule (closed form per node, no event per frame: nothing from the network feeds back into an
unconfirmed uplink). A node transmits a frame no earlier than it is ready, no earlier than the
class A receive windows of its previous frame have closed (RX2 delay + RX2 window), and only on a
channel whose sub-band's duty cycle allows it: after a frame of time on air T in a sub-band with
duty cycle dc, that sub-band is closed to the node for T/dc - T (ETSI EN 300 220 as LoRaMac-node
applies it per band). The node picks a channel at random among those whose sub-band is open at
that moment, or waits for the first sub-band to open ("wait", LoRaMac-node's behaviour with an
application queue); in "drop" mode a message the node may not start when it is ready is dropped
(its frames are lost with reason "duty_cycle"). The scenario switch `duty_cycle_scope: aggregate`
applies one budget across all channels instead (the conservative model of earlier versions).
Regions without a duty cycle (US915) are limited by dwell time, which the region's payload table
already respects.

Reception: `iotsim.network.reception` (sensitivity, interference, demodulator paths).
"""

from __future__ import annotations

import numpy as np

from iotsim.link.base import Link, LinkNodes, Messages, Transmissions, frames_from_split
from iotsim.link.draws import frame_salt, frame_uniforms
from iotsim.link.schedule import node_runs
from iotsim.network import reception
from iotsim.radio import fragmentation, lora, lorawan, lorawan_mac


class LoRaWanLink(Link):
    technology = "lorawan"
    radio_technology = "lora"

    def __init__(self, network):
        self.network = network
        self.settings = network.lorawan
        self.region = lorawan.get_region(network.region)

    @property
    def channels_hz(self) -> np.ndarray:
        """The uplink channels nodes use: the region's plan, or its first `uplink_channels`."""
        plan = np.asarray(self.region.uplink_channels_hz, dtype=np.float64)
        n = self.settings.uplink_channels
        if n is not None and n > plan.shape[0]:
            from iotsim.errors import InputError

            raise InputError(f"{self.region.name} has {plan.shape[0]} uplink channels, not {n}",
                             field="network.lorawan.uplink_channels")
        return plan if n is None else plan[:n]

    @property
    def carrier_frequency_hz(self) -> float:
        return float(self.channels_hz.min())

    def uplink_sfs(self) -> list[int]:
        """Spreading factors of the region's uplink data rates at the scenario's bandwidth."""
        bw = float(self.settings.bandwidth_hz)
        rates = [self.region.data_rates[dr] for dr in self.region.uplink_data_rates]
        return sorted({int(r[0]) for r in rates if r is not None and abs(r[1] - bw) < 1e-6})

    @property
    def tx_power_dbm(self) -> float:
        return float(self.settings.tx_power_dbm)

    # ---- frames
    def split(self, messages: Messages, node_sf: np.ndarray) -> Transmissions:
        """Split messages into frames; PHY size and one attempt's time on air per frame."""
        s = self.settings
        sf_msg = node_sf[messages.node]
        max_payload = lorawan.max_app_payload_array(sf_msg, s.bandwidth_hz, self.region)
        msg_index, fragment, payload = fragmentation.split_messages(
            messages.app_bytes, max_payload, s.fragment_header_bytes)
        phy = payload + lora.LORAWAN_OVERHEAD_BYTES
        sf = sf_msg[msg_index]
        airtime = lora.time_on_air_s(phy, sf, bandwidth_hz=s.bandwidth_hz,
                                     coding_rate=lora.parse_coding_rate(s.coding_rate),
                                     preamble_symbols=s.preamble_symbols)
        return frames_from_split(messages, msg_index, fragment, phy, sf, airtime)

    def receive_windows_s(self, sf: np.ndarray) -> tuple[np.ndarray, float]:
        """Time each class A receive window stays open with no downlink: RX1 at the region's RX1 data
        rate for the uplink's (the uplink's own in EU868 with offset 0; 500 kHz in US915), RX2 at rx2_sf."""
        s = self.settings
        sf = np.asarray(sf, dtype=np.int64)
        dr = np.zeros(sf.shape, dtype=np.int64)
        for value in np.unique(sf):
            dr[sf == value] = self.region.sf_to_data_rate(int(value), s.bandwidth_hz)
        rx1 = lorawan_mac.rx1_window_s(self.region, dr, s.rx_window_symbols, s.rx1_dr_offset)
        rx2 = s.rx_window_symbols * lora.symbol_time_s(s.rx2_sf, self.rx2_bandwidth_hz)
        return np.asarray(rx1, dtype=np.float64), float(rx2)

    @property
    def rx2_bandwidth_hz(self) -> float:
        return float(self.region.data_rate_bandwidth_hz(self.region.rx2_data_rate))

    def channel_bands(self) -> tuple[np.ndarray, np.ndarray]:
        """(sub-band index per uplink channel, duty cycle per sub-band) under the scenario's scope."""
        channels = self.channels_hz
        dc = np.asarray(self.region.sub_band_duty_cycle(channels), dtype=np.float64)
        if self.settings.duty_cycle_scope == "aggregate":
            return np.zeros(channels.shape[0], dtype=np.int64), np.array([dc.min()])
        band = np.asarray(self.region.sub_band_index(channels), dtype=np.int64)
        used, first, band = np.unique(band, return_index=True, return_inverse=True)
        return band.astype(np.int64).reshape(-1), dc[first]

    @property
    def closed_loop(self) -> bool:
        """Whether the network feeds back into the nodes (then the SimPy engine runs them)."""
        s = self.settings
        return (s.engine == "closed_loop" or s.confirmed or s.adr or s.nb_trans > 1 or s.downlinks_per_day > 0)

    def schedule_carry(self, n_nodes: int) -> ScheduleCarry | None:
        """What a run in time chunks hands from one chunk's schedule to the next (None: the closed loop, whose
        compiled loop carries its own state across chunks: iotsim.link.lorawan_loop.LoopChunks)."""
        return None if self.closed_loop else ScheduleCarry(n_nodes, self.channel_bands()[1].shape[0])

    def transmit(self, messages: Messages, nodes: LinkNodes, rng: np.random.Generator, duration_s: float,
                 stop_s: np.ndarray | None = None, carry: ScheduleCarry | None = None) -> Transmissions:
        """`carry` (open loop only): a run in time chunks hands each node's duty-cycle state from one chunk's
        frames to the next (updated in place)."""
        if self.closed_loop:
            from iotsim.link.lorawan_loop import ClosedLoop

            return ClosedLoop(self, messages, nodes, rng, duration_s, stop_s).run()
        tx = self.split(messages, nodes.sf)
        rx1, rx2 = self.receive_windows_s(tx.sf)
        band_of_channel, band_dc = self.channel_bands()
        u = frame_uniforms(frame_salt(rng), messages, tx)
        rx_done = tx.airtime_s + self.region.rx2_delay_s + rx2  # the node is free once RX2 has closed
        tx.start_s, tx.channel, tx.dropped = schedule_uplinks(
            tx.ready_s, tx.airtime_s, rx_done, tx.node, tx.message, u, band_of_channel, band_dc,
            self.settings.duty_cycle_mode, carry)
        tx.tx_s = tx.airtime_s
        tx.rx_s = rx1 + rx2
        tx.standby_s = nodes.startup_s[tx.node]
        tx.busy_s = tx.airtime_s
        return tx

    def reception_model(self) -> reception.ReceptionModel:
        g = self.network.reception
        return reception.ReceptionModel(
            capture_threshold_db=g.capture_threshold_db, inter_sf=g.inter_sf, demodulator_paths=g.demodulator_paths)

    def receive(self, tx: Transmissions, on_air: np.ndarray, nodes: LinkNodes) -> None:
        if tx.link_fate is not None:  # decided by the closed loop
            return super().receive(tx, on_air, nodes)
        idx = np.flatnonzero(on_air)
        sens = np.full(13, np.inf)  # indexed by SF
        sens[7:] = [lora.gateway_sensitivity_dbm(s, self.settings.bandwidth_hz) for s in range(7, 13)]
        n_gw = nodes.rx_power_dbm.shape[1]
        rec = reception.resolve_receptions(
            tx.start_s[idx], tx.airtime_s[idx], tx.channel[idx], tx.sf[idx], tx.node[idx], nodes.rx_power_dbm,
            sens[tx.sf[idx]], self.reception_model(), gateway_tx=self.gateway_tx(n_gw))
        tx.fate[idx] = rec.status
        tx.gateway[idx] = rec.gateway
        tx.gateway_stats = {"path_busy_s": rec.path_busy_s, "frames_locked": rec.frames_locked,
                            "tx_airtime_s": np.zeros(n_gw), "tx_band_s": [{} for _ in range(n_gw)]}
        self.add_schedule_airtime(tx.gateway_stats)

    def gateway_tx(self, n_gateways: int) -> reception.GatewayTx | None:
        """Each gateway's own transmissions (`gateway_schedule`) as reception sees them (half duplex), or None."""
        sched = self.gateway_schedule
        if sched is None:
            return None
        return reception.GatewayTx([(sched.start_s[mine], sched.end_s[mine])
                                    for mine in map(sched.of_gateway, range(n_gateways))], n_gateways)

    def plan_update(self, payload_bytes, spec, rx_power_dbm, startup_s, rng, sf=None, horizon_s=np.inf,
                    verdicts=None):
        """A FUOTA class C multicast session (iotsim.ota.fuota) from every gateway; each node hears its strongest
        gateway (the reciprocal of its uplink budget at `gateway_tx_power_dbm`). With `unicast: repair` the nodes
        that could not decode it then poll for more fragments over class A; with `unicast: only` they are sent
        the update that way instead (iotsim.ota.unicast; `sf`: the nodes' uplink SFs; `horizon_s`: the run's
        end, from the update's start; `verdicts`: what a run made of the polls, iotsim.ota.unicast.PollVerdicts)."""
        import dataclasses

        from iotsim.ota import fec, fuota, unicast
        from iotsim.ota.rollout import Rollout

        s = self.settings
        session = fuota.plan_session(self.region, payload_bytes, data_rate=spec.data_rate, redundancy=spec.redundancy,
                                     coding_rate=s.coding_rate, preamble_symbols=s.preamble_symbols)
        node_dbm = rx_power_dbm.max(axis=1) - self.tx_power_dbm + s.gateway_tx_power_dbm if rx_power_dbm.size \
            else np.zeros(0)
        success = fuota.fragment_success(node_dbm, session, spec.fragment_loss)
        mode = getattr(spec, "unicast", "none")
        if mode == "none":
            return session, fuota.simulate_rollout(session, success, rng)
        n = node_dbm.shape[0]
        m = session.fragments.uncoded

        def phase(who, decoders, first_index, start_s):
            nodes, rx2 = self._unicast_nodes(rx_power_dbm[who], np.asarray(sf)[who], np.asarray(startup_s)[who],
                                             success[who], session, getattr(spec, "poll_period", None))
            rollout, counts = unicast.simulate_unicast(
                nodes, decoders, first_index=first_index, fragment_airtime_s=session.fragment_airtime_s,
                rx2_delay_s=self.region.rx2_delay_s, rx2_window_s=rx2, duty_cycle=session.duty_cycle,
                start_s=start_s, horizon_s=horizon_s, rng=rng, verdicts=verdicts)
            summary = unicast.Unicast(session.data_rate, session.sf, session.fragments.fragment_bytes,
                                      session.fragment_airtime_s, session.duty_cycle, first_index, start_s,
                                      int(who.size), node_pos=who, **counts,
                                      poll_radio_s=np.stack([nodes.poll_air_s, nodes.rx1_window_s + rx2,
                                                             nodes.startup_s], axis=1),
                                      frequency_hz=session.frequency_hz)
            return rollout, summary

        if mode == "only":
            rollout, summary = phase(np.arange(n), [fec.Decoder(m) for _ in range(n)], 1, 0.0)
            return unicast.UnicastSession(summary, session.fragments), rollout
        decoders: list = []
        multicast = fuota.simulate_rollout(session, success, rng, decoders)
        left = np.flatnonzero(~multicast.decoded)
        repair, summary = phase(left, [decoders[k] for k in left], session.fragments.total + 1, session.session_s)
        # a fresh copy of every array (the session's rollout shares one array for its listening and its end)
        out = Rollout(*[np.array(getattr(multicast, f.name)) for f in dataclasses.fields(multicast)])
        for name in ("received", "rx_s", "tx_s", "standby_s"):
            getattr(out, name)[left] += getattr(repair, name)
        out.decoded_at[left] = repair.decoded_at
        out.done_s[left] = repair.done_s
        out.radio_until_s[left] = np.maximum(out.radio_until_s[left], repair.radio_until_s)
        return dataclasses.replace(session, unicast=summary), out

    def _unicast_nodes(self, rx_power_dbm, sf, startup_s, fragment_success, session, poll_period_s):
        """The nodes' side of a class A unicast (iotsim.ota.unicast): their polls and RX1 windows, and the RX2
        window (s)."""
        from iotsim.ota import unicast

        s = self.settings
        gateway = rx_power_dbm.argmax(axis=1) if rx_power_dbm.size else np.zeros(0, np.int64)
        best = rx_power_dbm.max(axis=1) if rx_power_dbm.size else np.zeros(0)
        sf = np.asarray(sf, dtype=np.int64)
        air = lora.time_on_air_s(np.full(sf.shape, lora.LORAWAN_OVERHEAD_BYTES), sf, bandwidth_hz=s.bandwidth_hz,
                                 coding_rate=lora.parse_coding_rate(s.coding_rate),
                                 preamble_symbols=s.preamble_symbols)
        air = np.asarray(air, dtype=np.float64)
        sens = np.asarray(lora.gateway_sensitivity_dbm(sf, s.bandwidth_hz), dtype=np.float64)
        poll_success = np.exp(-np.power(10.0, (sens - best) / 10.0))
        _, band_dc = self.channel_bands()
        dc = min(float(band_dc.sum()), 1.0)
        rx1, rx2 = self.receive_windows_s(sf)
        # never before the previous poll's RX2 has closed (with a fragment in it, the longer)
        closed = air + self.region.rx2_delay_s + max(session.fragment_airtime_s, rx2)
        period = np.maximum(air / dc, closed) if poll_period_s is None else np.maximum(float(poll_period_s), closed)
        return unicast.UnicastNodes(gateway.astype(np.int64), air, period, poll_success, fragment_success,
                                    np.asarray(rx1, dtype=np.float64), np.asarray(startup_s, dtype=np.float64)), rx2

    def add_schedule_airtime(self, gateway_stats: dict) -> None:
        """Count the gateways' own transmissions (`gateway_schedule`) in their airtime, per sub-band."""
        sched = self.gateway_schedule
        if sched is None or not len(sched):
            return
        air_all = sched.end_s - sched.start_s
        bands_all = np.asarray(self.region.sub_band_index(sched.frequency_hz), dtype=np.int64).reshape(-1)
        for g in range(len(gateway_stats["tx_band_s"])):
            mine = sched.of_gateway(g)
            air, bands = air_all[mine], bands_all[mine]
            gateway_stats["tx_airtime_s"][g] += float(air.sum())
            for b in np.unique(bands).tolist():
                d = gateway_stats["tx_band_s"][g]
                d[b] = d.get(b, 0.0) + float(air[bands == b].sum())

    def notes(self) -> list[str]:
        s, g = self.settings, self.network.reception
        scope = ("per ETSI sub-band (each sub-band its own budget)" if s.duty_cycle_scope == "sub_band"
                 else "as one budget across all channels")
        has_dc = bool((np.asarray(self.region.sub_band_duty_cycle(self.channels_hz)) < 1).any())
        dc = f"duty cycle applied {scope}" if has_dc else "no duty cycle (dwell time limits payloads)"
        paths = "unlimited demodulator paths" if g.demodulator_paths is None else f"{g.demodulator_paths} demodulator paths per gateway"
        inter = ("inter-SF interference with the rejection thresholds of Croce et al. 2018" if g.inter_sf == "croce"
                 else "spreading factors treated as orthogonal")
        capture = ("no capture (any same-SF overlap destroys both frames)" if not np.isfinite(g.capture_threshold_db)
                   else f"co-SF capture at {g.capture_threshold_db:g} dB SIR")
        if self.closed_loop:
            feedback = ", ".join(x for x in (
                "confirmed uplinks (ACK in RX1 or RX2, up to NbTrans transmissions)" if s.confirmed else "unconfirmed uplinks",
                f"NbTrans {s.nb_trans}" if s.nb_trans > 1 and not s.confirmed else "",
                "network ADR (Semtech) with the device's ADR backoff" if s.adr else "",
                f"{s.downlinks_per_day:g} application downlinks per node per day" if s.downlinks_per_day > 0 else "",
            ) if x) + ("; on the SimPy closed loop: the network answers in RX1, else RX2, through the strongest "
                       "gateway that received the uplink and is free to transmit (half duplex, duty cycle per "
                       "sub-band); " + ("downlinks of different gateways on one frequency interfere at the nodes"
                                        if self.network.reception.downlink_interference
                                        else "downlinks are not interfered with (downlink_interference: false)"))
        else:
            feedback = "unconfirmed uplinks, nothing fed back (closed-form schedule)"
        return [
            f"LoRaWAN class A ({self.region.name}): each uplink opens RX1 (at the region's RX1 data rate) and RX2 "
            f"(SF{s.rx2_sf}) for {s.rx_window_symbols} symbols; {feedback}.",
            f"Radio: LoRa time on air per the Semtech formula; {self.region.name} payload limits with fragmentation "
            f"of large messages; {dc}; random channel among the {self.channels_hz.shape[0]} uplink "
            f"channels. Reception: interference energy summed over each frame's overlap per SF (as ns-3 lorawan); "
            f"{capture}; {inter}; {paths}.",
        ]


class ScheduleCarry:
    """Each node's duty-cycle state between the chunks of a run in time chunks: when the node is free again
    (its last receive windows closed) and when each sub-band is open again for it. `schedule_uplinks` starts
    every node from it and leaves it as the node's last frame left it."""

    def __init__(self, n_nodes: int, n_bands: int):
        self.node_free = np.full(n_nodes, -np.inf)
        self.band_free = np.full((n_nodes, n_bands), -np.inf)

    def update(self, node: np.ndarray, start: np.ndarray, rx_done: np.ndarray, airtime: np.ndarray,
               band: np.ndarray, band_dc: np.ndarray, sent: np.ndarray) -> None:
        """After scheduling frames sorted by (node, ready): each node's and sub-band's release time after its
        last frame sent (the expressions of the schedule loop)."""
        idx = np.flatnonzero(sent)
        if not idx.size:
            return
        n = node[idx]
        last = idx[np.r_[n[1:] != n[:-1], True]]
        self.node_free[node[last]] = start[last] + rx_done[last]
        key = node[idx] * self.band_free.shape[1] + band[idx]
        order = np.argsort(key, kind="stable")
        k = key[order]
        last_b = idx[order][np.r_[k[1:] != k[:-1], True]]
        self.band_free[node[last_b], band[last_b]] = start[last_b] + airtime[last_b] / band_dc[band[last_b]]


def schedule_uplinks(ready: np.ndarray, airtime: np.ndarray, rx_done: np.ndarray, node: np.ndarray,
                     message: np.ndarray, u: np.ndarray, band_of_channel: np.ndarray, band_dc: np.ndarray,
                     mode: str, carry: ScheduleCarry | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start, channel, dropped) of every frame; frames sorted by (node, ready, fragment).

    `u` holds one uniform draw in [0, 1) per frame: the channel is the floor(u * k)-th of the k
    channels (in channel order) whose sub-band is open when the frame starts.

    Fast path: a node whose every frame is ready after its previous frame's receive windows have
    closed and finds every sub-band open never waits, so each frame starts when it is ready and
    the channel is uniform over all channels; numpy checks that for all nodes at once, with the
    same floating-point expressions as the loop. The other nodes, and every node in drop mode,
    take the exact per-frame loop (frame by frame, as a discrete-event simulation would), so both
    give the same bytes.
    """
    n = ready.shape[0]
    n_channels = band_of_channel.shape[0]
    start = np.full(n, np.nan)
    channel = np.full(n, -1, dtype=np.int8)
    dropped = np.zeros(n, dtype=bool)
    if n == 0:
        return start, channel, dropped
    if mode == "wait":
        ch = np.minimum((u * n_channels).astype(np.int64), n_channels - 1)
        first = np.concatenate(([True], node[1:] != node[:-1]))
        node_free = np.concatenate(([-np.inf], (ready + rx_done)[:-1]))
        band_free = np.concatenate(([-np.inf], (ready + airtime / band_dc[band_of_channel[ch]])[:-1]))
        node_free[first] = -np.inf if carry is None else carry.node_free[node[first]]
        band_free[first] = -np.inf if carry is None else carry.band_free[node[first]].max(axis=1)
        # every earlier frame of the node has released its sub-band: as a node's frames come in ready order, that
        # holds for all of them when each frame finds the sub-band of the one before open
        ok = (node_free <= ready) & (band_free <= ready)
        slow_nodes = np.unique(node[~ok])
        fast = ~np.isin(node, slow_nodes)
        start[fast] = ready[fast]
        channel[fast] = ch[fast]
    else:
        slow_nodes = np.unique(node)
    if slow_nodes.size:
        los, his = node_runs(node)
        sel = np.isin(node[los], slow_nodes)
        _schedule_loop(ready, airtime, rx_done, message, u, band_of_channel, band_dc, mode,
                       los[sel].tolist(), his[sel].tolist(), start, channel, dropped, carry, node)
    if carry is not None:
        carry.update(node, start, rx_done, airtime, band_of_channel[np.maximum(channel, 0)], band_dc, ~dropped)
    return start, channel, dropped


def _schedule_loop(ready, airtime, rx_done, message, u, band_of_channel, band_dc, mode, los, his,
                   start, channel, dropped, carry=None, node=None) -> None:
    """The exact per-frame schedule of the nodes whose frames [lo, hi) are given."""
    ready_l, air_l, rx_l, msg_l, u_l = ready.tolist(), airtime.tolist(), rx_done.tolist(), message.tolist(), u.tolist()
    chan_band = band_of_channel.tolist()
    dc = band_dc.tolist()
    n_bands = len(dc)
    wait = mode == "wait"
    for lo, hi in zip(los, his):
        if carry is None:
            band_free = [-np.inf] * n_bands
            node_free = -np.inf
        else:
            band_free = carry.band_free[node[lo]].tolist()
            node_free = float(carry.node_free[node[lo]])
        current_msg, sending = -1, True
        for i in range(lo, hi):
            earliest_band = min(band_free)
            if not wait and msg_l[i] != current_msg:
                current_msg = msg_l[i]
                sending = ready_l[i] >= node_free and ready_l[i] >= earliest_band
            if not sending:
                dropped[i] = True
                continue
            t = ready_l[i]
            if node_free > t:
                t = node_free
            if earliest_band > t:
                t = earliest_band
            open_channels = [c for c, b in enumerate(chan_band) if band_free[b] <= t]
            c = open_channels[min(int(u_l[i] * len(open_channels)), len(open_channels) - 1)]
            b = chan_band[c]
            start[i] = t
            channel[i] = c
            band_free[b] = t + air_l[i] / dc[b]
            node_free = t + rx_l[i]


__all__ = ["LoRaWanLink", "ScheduleCarry", "schedule_uplinks"]
