"""Run a scenario: plan the fleet once, then simulate every policy on the same fleet and signals.

Per policy: the policy turns window verdicts into messages; messages become LoRaWAN frames paced
by the duty cycle (closed form per node, see `uplink`); batteries that would empty cut a node's
life short; gateways resolve sensitivity, collisions and capture (vectorized, see
`network.reception`); delivered messages cross the backhaul and raw windows queue for inference
at the cloud, which is a SimPy model (`network.cloud`); every active interval is charged to the
energy ledger (`energy.ledger`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from iotsim.energy.battery import LinearBattery
from iotsim.energy.ledger import COMPONENTS, SLOT_INDEX, SLOTS, EnergyLedger, slot_currents_a
from iotsim.engine import starlink
from iotsim.engine.fleet import STREAM_CHANNELS, STREAM_LINK, GroupPlan, group_rng, plan_group
from iotsim.engine.uplink import KIND_HEARTBEAT, Frames, Messages, build_frames, receive_windows_s, schedule
from iotsim.network.cloud import simulate_cloud
from iotsim.network.reception import LOSS_REASONS, resolve_receptions
from iotsim.network.topology import build_topology, path_to_cloud
from iotsim.policies import NOTHING, SEND_RAW, Policy, make_policy
from iotsim.radio import lora, lorawan

# frame fates beyond the reception codes (0 delivered, 1 below_sensitivity, 2 collision)
FRAME_DUTY_CYCLE = 3
FRAME_NODE_DEAD = 4  # the node died before it could send: not counted as sent
FRAME_PENDING = 5  # still waiting for the duty cycle when the run ended: not counted as sent
FRAME_LINK_RETRIES = 6  # BLE / Wi-Fi: every link-layer attempt failed
FRAME_FATES = {0: "", **LOSS_REASONS, FRAME_DUTY_CYCLE: "duty_cycle", FRAME_NODE_DEAD: "node_dead",
               FRAME_PENDING: "pending_at_end", FRAME_LINK_RETRIES: "link_retries"}
NOT_SENT = (FRAME_NODE_DEAD, FRAME_PENDING)

Progress = Callable[[str, float, float], None]


@dataclass
class PolicyOutcome:
    policy: Policy
    messages: Messages
    frames: Frames
    frame_status: np.ndarray  # int8 fate per frame (FRAME_FATES)
    frame_channel: np.ndarray  # int8 uplink channel index per frame, -1 where not tracked (BLE, Wi-Fi)
    frame_gateway: np.ndarray  # int16 gateway index per frame, -1 if none received it
    message_delivered: np.ndarray
    message_arrival_s: np.ndarray  # at the network server; NaN if not delivered
    decision_time_s: np.ndarray  # per message: when the application knows; NaN if no decision
    decision_positive: np.ndarray  # per message: the decision says "event"
    cloud_inferences: int
    cloud_wait_s: np.ndarray  # queueing delay of each cloud inference
    ledger: EnergyLedger
    energy_slots_j: np.ndarray  # (nodes, slots)
    died_at_s: np.ndarray  # inf if alive at the end
    battery_life_s: np.ndarray
    event_latency_s: list[np.ndarray]  # per group: per event, NaN if not detected
    true_positive_decisions: list[int]
    positive_decisions: list[int]
    wall_s: float = 0.0


@dataclass
class RunResult:
    scenario: object
    plans: list[GroupPlan]
    outcomes: list[PolicyOutcome]
    gateway_ids: list[str]
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def n_nodes(self) -> int:
        return sum(p.n_nodes for p in self.plans)


def load_group_resources(scenario, index: int, cache: dict):
    """Board, workload generator, node model and cloud model of a fleet group (loaded once per name)."""
    from iotsim.hardware import load_board
    from iotsim.signals import get_workload
    from iotsim.tinyml.runtime import load_model, model_key

    spec = scenario.fleet[index]

    def cached(key, loader):
        if key not in cache:
            cache[key] = loader()
        return cache[key]

    board = cached(("board", spec.device), lambda: load_board(spec.device))
    workload = cached(("workload", spec.workload.signal), lambda: get_workload(spec.workload.signal))
    model = cached(("model", model_key(spec.model)), lambda: load_model(spec.model, require_int8=True))
    cloud_name = scenario.network.cloud.model
    if cloud_name is None:
        # the cloud runs the node model's float twin when the card names one, else the node model
        twin = model.card.get("float_model")
        if not twin:
            return board, workload, model, model
        cloud_name = str(model.path.parent / twin)
    cloud_model = cached(("model", cloud_name), lambda: load_model(cloud_name))
    return board, workload, model, cloud_model


def run_scenario(scenario, progress: Progress | None = None) -> RunResult:
    """Simulate every policy of `scenario` on the same fleet. Library entry point behind `iotsim run`."""
    t0 = time.perf_counter()
    say = progress or (lambda phase, done, total: None)
    gateways_xy = np.array([g.position_m for g in scenario.network.gateways], dtype=np.float64)
    cache: dict = {}
    plans: list[GroupPlan] = []
    start = 0
    for index, spec in enumerate(scenario.fleet):
        resources = load_group_resources(scenario, index, cache)
        plan = plan_group(
            scenario, index, start, gateways_xy, resources,
            progress=lambda d, t, g=spec.group: say(f"windows {g}", d, t),
        )
        say(f"windows {spec.group}", 1, 1)
        plans.append(plan)
        start += spec.count
    outcomes = []
    policies = [make_policy(p) for p in scenario.policies]
    for pi, policy in enumerate(policies):
        say(f"policy {policy.name}", 0, 1)
        outcomes.append(simulate_policy(scenario, plans, policy, pi))
        say(f"policy {policy.name}", 1, 1)
    result = RunResult(scenario, plans, outcomes, [g.id for g in scenario.network.gateways])
    result.warnings = [w for p in plans for w in p.warnings]
    result.notes = [f"Warning: {w}" for w in result.warnings] + methodology_notes(scenario, plans)
    result.wall_s = time.perf_counter() - t0
    return result


def _policy_messages(scenario, plans: list[GroupPlan], policy: Policy) -> Messages:
    parts = []
    node_start = 0
    for plan in plans:
        v = plan.verdicts
        actions = policy.actions(v.device_positive, v.device_confidence)
        flat = np.flatnonzero(actions != NOTHING)
        local = np.searchsorted(plan.window_offset, flat, side="right") - 1
        ready = plan.window_end_s(flat)
        if policy.runs_on_device_inference:
            ready = ready + plan.inference_time_s
        kind = actions[flat]
        app = np.where(kind == SEND_RAW, plan.raw_window_bytes, plan.spec.event_payload_bytes).astype(np.int64)
        parts.append((local + node_start, ready, app, kind.astype(np.int8), flat, plan.index))
        if policy.sends_heartbeats:
            period = plan.spec.heartbeat
            counts = np.floor((scenario.duration - plan.phase_s) / period).astype(np.int64)
            counts = np.maximum(counts, 0)
            hb_node = np.repeat(np.arange(plan.n_nodes), counts)
            first = np.zeros(plan.n_nodes + 1, dtype=np.int64)
            np.cumsum(counts, out=first[1:])
            j = np.arange(hb_node.shape[0]) - first[hb_node] + 1
            hb_ready = plan.phase_s[hb_node] + j * period
            parts.append((
                hb_node + node_start, hb_ready,
                np.full(hb_node.shape, plan.spec.heartbeat_payload_bytes, dtype=np.int64),
                np.full(hb_node.shape, KIND_HEARTBEAT, dtype=np.int8), np.full(hb_node.shape, -1, np.int64),
                plan.index,
            ))
        node_start += plan.n_nodes
    node = np.concatenate([p[0] for p in parts]).astype(np.int64)
    ready = np.concatenate([p[1] for p in parts]).astype(np.float64)
    app = np.concatenate([p[2] for p in parts])
    kind = np.concatenate([p[3] for p in parts])
    window = np.concatenate([p[4] for p in parts]).astype(np.int64)
    group = np.concatenate([np.full(p[0].shape, p[5], dtype=np.int64) for p in parts])
    order = np.lexsort((kind, ready, node))
    return Messages(node[order], ready[order], app[order], kind[order], window[order], group[order])


def simulate_policy(scenario, plans: list[GroupPlan], policy: Policy, policy_index: int) -> PolicyOutcome:
    t0 = time.perf_counter()
    net = scenario.network
    lw = net.lorawan
    region = lorawan.EU868
    duration = scenario.duration
    n_nodes = sum(p.n_nodes for p in plans)
    node_group = np.concatenate([np.full(p.n_nodes, p.index, dtype=np.int64) for p in plans])
    node_sf = np.concatenate([p.sf for p in plans])
    rx_power = np.concatenate([p.rx_power_dbm for p in plans])
    currents = np.concatenate([np.tile(slot_currents_a(p.board, net.tx_power_dbm), (p.n_nodes, 1)) for p in plans])
    voltage = np.concatenate([np.full(p.n_nodes, p.board.supply_voltage_v) for p in plans])
    startup = np.concatenate([np.full(p.n_nodes, p.board.radio.startup_time_s) for p in plans])
    phase = np.concatenate([p.phase_s for p in plans])

    messages = _policy_messages(scenario, plans, policy)
    keep_alive = None
    if net.technology == "lorawan":
        frames = build_frames(messages, node_sf, lw)
        schedule(frames, messages, lw, region.duty_cycle)
        rx1, rx2 = receive_windows_s(frames.sf, lw)
        frame_tx_s, frame_rx_s, frame_standby_s = frames.airtime_s, rx1 + rx2, startup[frames.node]
        frame_busy_s = frames.airtime_s
        link = None
    else:
        frames = starlink.build_frames(messages, net)
        node_gw, node_p = starlink.node_links(rx_power, net)
        u = 1.0 - group_rng(scenario.seed, STREAM_LINK, policy_index).random(len(frames))  # in (0, 1]
        link = starlink.link_timing(frames, net, startup, node_gw, node_p, u)
        starlink.schedule(frames, link, net, startup, phase)
        frame_tx_s, frame_rx_s, frame_standby_s = link.tx_s, link.rx_s, link.standby_s
        frame_busy_s = link.duration_s
        keep_alive = starlink.keepalive(net, startup)

    # ---- per-node activity outside the radio: sampling and on-device inference, per window
    win_delta_j = np.zeros(n_nodes)  # energy above sleep per window
    mcu_active_per_window = np.zeros(n_nodes)
    sensor_active_per_window = np.zeros(n_nodes)
    period = np.zeros(n_nodes)
    span = np.zeros(n_nodes)
    n_windows = np.concatenate([p.n_windows for p in plans])
    node_start = 0
    for p in plans:
        sl = slice(node_start, node_start + p.n_nodes)
        sp = p.sample_period_s
        mcu_t = p.window_samples * min(p.board.mcu.wake_time_s, sp)
        if policy.runs_on_device_inference:
            mcu_t += p.inference_time_s
        # a node that samples continuously (audio, ECG) infers while the next window streams in by DMA:
        # the MCU is at most always active (plan_group warns when inference cannot keep up)
        mcu_t = min(mcu_t, p.window_period_s)
        sens_t = p.window_samples * min(max((s.sample_time_s for s in p.board.sensors), default=0.0), sp)
        mcu_active_per_window[sl] = mcu_t
        sensor_active_per_window[sl] = sens_t
        cur = currents[node_start]
        win_delta_j[sl] = p.board.supply_voltage_v * (
            mcu_t * (cur[SLOT_INDEX[("mcu", "active")]] - cur[SLOT_INDEX[("mcu", "sleep")]])
            + sens_t * (cur[SLOT_INDEX[("sensor", "active")]] - cur[SLOT_INDEX[("sensor", "sleep")]])
        )
        period[sl] = p.window_period_s
        span[sl] = p.window_span_s
        node_start += p.n_nodes

    # radio current above sleep per node; looked up per frame (no frames x slots matrix)
    standby_a, tx_a, rx_a = (currents[:, SLOT_INDEX[("radio", state)]] - currents[:, SLOT_INDEX[("radio", "sleep")]]
                             for state in ("standby", "tx", "rx"))
    burst_j = voltage[frames.node] * (
        frame_standby_s * standby_a[frames.node]
        + frame_tx_s * tx_a[frames.node]
        + frame_rx_s * rx_a[frames.node]
    )
    sleep_w = voltage * currents[:, [SLOT_INDEX[(c, "sleep")] for c in COMPONENTS]].sum(axis=1)
    steady_w = sleep_w + win_delta_j / period
    if keep_alive is not None:  # the link's keep-alive traffic is a steady load
        steady_w = steady_w + voltage * (
            keep_alive.standby_s * standby_a + keep_alive.tx_s * tx_a + keep_alive.rx_s * rx_a
        ) / keep_alive.period_s
    sent_mask = ~frames.dropped
    burst_total = np.bincount(frames.node[sent_mask], weights=burst_j[sent_mask], minlength=n_nodes)

    # ---- batteries: who dies within the run, and when
    died = np.full(n_nodes, np.inf)
    batteries = {p.index: _battery(p.board) for p in plans}
    sd_w = np.array([batteries[g].self_discharge_power_w for g in node_group])
    usable = np.array([batteries[g].usable_energy_j for g in node_group])
    at_risk = np.flatnonzero((steady_w + sd_w) * duration + burst_total >= usable)
    if at_risk.size:
        bounds = np.searchsorted(frames.node, np.arange(n_nodes + 1))
        for i in at_risk.tolist():
            lo, hi = bounds[i], bounds[i + 1]
            keep = sent_mask[lo:hi]
            t = frames.start_s[lo:hi][keep]
            died[i] = min(batteries[node_group[i]].death_time_s(steady_w[i], t, burst_j[lo:hi][keep]), np.inf)
        died[died > duration] = np.inf
    lifetime = np.minimum(died, duration)

    # frames a node would start after its death, or after the end of the run, are never sent;
    # dropped frames keep their duty-cycle fate while the node is alive
    frame_t = np.where(frames.dropped, frames.ready_s, frames.start_s)
    dead = frame_t >= died[frames.node]
    pending = ~dead & (frame_t >= duration)
    on_air = sent_mask & ~dead & ~pending

    # ---- energy ledger
    ledger = EnergyLedger(n_nodes)
    windows_alive = np.clip(np.floor((lifetime - span - phase) / period) + 1, 0, n_windows)
    windows_alive = np.where(lifetime >= span + phase, windows_alive, 0)
    all_nodes = np.arange(n_nodes)
    ledger.charge("mcu", "active", all_nodes, windows_alive * mcu_active_per_window)
    ledger.charge("sensor", "active", all_nodes, windows_alive * sensor_active_per_window)
    air_nodes = frames.node[on_air]
    ledger.charge("radio", "standby", air_nodes, frame_standby_s[on_air])
    ledger.charge("radio", "tx", air_nodes, frame_tx_s[on_air])
    ledger.charge("radio", "rx", air_nodes, frame_rx_s[on_air])
    if keep_alive is not None:
        # a steady load: charged for the time alive (the mean over whole keep-alive periods)
        k = lifetime / keep_alive.period_s
        ledger.charge("radio", "standby", all_nodes, k * keep_alive.standby_s)
        ledger.charge("radio", "tx", all_nodes, k * keep_alive.tx_s)
        ledger.charge("radio", "rx", all_nodes, k * keep_alive.rx_s)
    ledger.close(lifetime)
    energy_slots = ledger.energy_j(currents, voltage)

    # ---- reception at the gateways
    status = np.full(len(frames), FRAME_NODE_DEAD, dtype=np.int8)
    status[pending] = FRAME_PENDING
    status[frames.dropped & ~dead & ~pending] = FRAME_DUTY_CYCLE
    gateway = np.full(len(frames), -1, dtype=np.int16)
    air_idx = np.flatnonzero(on_air)
    if link is None:
        channel = group_rng(scenario.seed, STREAM_CHANNELS, policy_index).integers(
            0, len(region.uplink_channels_hz), size=len(frames)
        ).astype(np.int8)
        sens = np.full(13, np.inf)  # indexed by SF
        sens[7:] = [lora.gateway_sensitivity_dbm(s, lw.bandwidth_hz) for s in range(7, 13)]
        rec = resolve_receptions(
            frames.start_s[air_idx], frames.airtime_s[air_idx], channel[air_idx], frames.sf[air_idx],
            frames.node[air_idx], rx_power, sens[frames.sf[air_idx]], net.propagation.capture_threshold_db,
        )
        status[air_idx] = rec.status
        gateway[air_idx] = rec.gateway
    else:
        channel = np.full(len(frames), -1, dtype=np.int8)  # BLE hops, Wi-Fi has one channel: not tracked
        status[air_idx] = np.where(link.delivered[air_idx], 0, FRAME_LINK_RETRIES)
        gateway[air_idx] = np.where(link.delivered[air_idx], link.gateway[air_idx], -1)

    # ---- messages: delivered when every fragment is; arrival after the backhaul
    topology = build_topology(scenario.network)
    paths = [path_to_cloud(topology, g.id) for g in scenario.network.gateways]
    gw_latency = np.array([p.latency_s for p in paths] + [np.nan])
    gw_per_byte = np.array([p.seconds_per_byte for p in paths] + [np.nan])
    frame_arrival = frames.start_s + frame_busy_s + gw_latency[gateway] + frames.phy_bytes * gw_per_byte[gateway]
    frame_arrival = np.where(status == 0, frame_arrival, np.nan)
    first_frame = np.flatnonzero(np.concatenate(([True], np.diff(frames.message) != 0)))
    n_msg = len(messages)
    msg_all_ok = np.logical_and.reduceat(status == 0, first_frame) if n_msg else np.zeros(0, bool)
    msg_arrival = np.fmax.reduceat(frame_arrival, first_frame) if n_msg else np.zeros(0)
    msg_arrival = np.where(msg_all_ok, msg_arrival, np.nan)

    # ---- cloud: raw windows queue for inference (SimPy); events are decisions on arrival
    raw_ok = msg_all_ok & (messages.kind == SEND_RAW)
    raw_idx = np.flatnonzero(raw_ok)
    cloud = simulate_cloud(msg_arrival[raw_idx], scenario.network.cloud.inference_time, scenario.network.cloud.servers)
    decision_time = np.full(n_msg, np.nan)
    decision_positive = np.zeros(n_msg, dtype=bool)
    decision_time[raw_idx] = cloud.done_s
    event_ok = msg_all_ok & (messages.kind == 1)
    decision_time[event_ok] = msg_arrival[event_ok]
    decision_positive[event_ok] = True
    for p in plans:
        sel = raw_idx[messages.group[raw_idx] == p.index]
        decision_positive[sel] = p.verdicts.cloud_positive[messages.window[sel]]

    # ---- detection quality per group
    latencies, tp_counts, pos_counts = [], [], []
    for p in plans:
        positive = np.flatnonzero(decision_positive & (messages.group == p.index))
        ev = p.event_id[messages.window[positive]]
        first_seen = np.full(p.event_onset_s.shape[0], np.inf)
        hit = ev >= 0
        np.minimum.at(first_seen, ev[hit], decision_time[positive][hit])
        latency = np.where(np.isfinite(first_seen), first_seen - p.event_onset_s, np.nan)
        latencies.append(latency)
        tp_counts.append(int(hit.sum()))
        pos_counts.append(int(positive.shape[0]))

    # projected life uses each node's own lifetime in the run; dead nodes report when they died
    load_power = energy_slots.sum(axis=1) / lifetime
    battery_life = usable / (load_power + sd_w)
    battery_life = np.where(np.isfinite(died), died, battery_life)

    return PolicyOutcome(
        policy=policy, messages=messages, frames=frames, frame_status=status, frame_channel=channel,
        frame_gateway=gateway, message_delivered=msg_all_ok, message_arrival_s=msg_arrival,
        decision_time_s=decision_time, decision_positive=decision_positive, cloud_inferences=int(raw_idx.size),
        cloud_wait_s=cloud.start_s - msg_arrival[raw_idx], ledger=ledger, energy_slots_j=energy_slots,
        died_at_s=died, battery_life_s=battery_life, event_latency_s=latencies,
        true_positive_decisions=tp_counts, positive_decisions=pos_counts, wall_s=time.perf_counter() - t0,
    )


def _battery(board) -> LinearBattery:
    b = board.battery
    return LinearBattery(b.capacity_mah, b.nominal_voltage_v, b.usable_fraction, b.self_discharge_per_year)


def _link_notes(net) -> list[str]:
    ledger = "Energy: exact time-in-state ledger per component (MCU, sensor, radio); sleep is the rest of each node's lifetime."
    if net.technology == "lorawan":
        lw = net.lorawan
        return [
            f"{ledger} LoRaWAN class A: each uplink opens RX1 (uplink SF) and RX2 (SF{lw.rx2_sf}) for "
            f"{lw.rx_window_symbols} symbols.",
            "Radio: LoRa time on air per the Semtech formula; EU868 payload limits with fragmentation of raw windows; "
            "1 % duty cycle applied across all channels; collisions per gateway, channel and SF with a "
            f"{net.propagation.capture_threshold_db:g} dB capture threshold; unconfirmed uplinks.",
        ]
    common = (
        "each node keeps a link to its strongest gateway; every attempt succeeds with the probability that a "
        "Rayleigh-faded signal stays above the gateway's sensitivity "
        f"({starlink.gateway_sensitivity_dbm(net):g} dBm), up to {starlink.max_attempts(net)} attempts per frame "
        "(then lost: link_retries); collisions between nodes are not modelled."
    )
    if net.technology == "ble":
        b = net.ble
        return [
            f"{ledger} Bluetooth LE keep-alive: every {b.connection_interval * (1 + b.peripheral_latency) * 1e3:g} ms "
            "the node ramps up its radio and exchanges empty PDUs with its central.",
            f"Radio: BLE LE {b.phy} packets per the Core spec (GATT notifications, {b.max_ll_payload_bytes}-byte LL "
            f"payloads, {'encrypted' if b.encrypted else 'unencrypted'}), {b.packets_per_event} packets per connection "
            f"event; {common}",
        ]
    w = net.wifi
    mode = (f"stays associated and wakes for every DTIM beacon ({w.beacon_interval * w.dtim_period * 1e3:g} ms, "
            f"{w.beacon_listen * 1e3:g} ms receiving)" if w.power_save == "connected"
            else "re-associates before every message (the radio's startup time, receiving)")
    return [
        f"{ledger} Wi-Fi power save: the node {mode}.",
        f"Radio: {w.standard} PPDU durations per IEEE 802.11-2016 (rate index {w.mcs}), DIFS + binary exponential "
        f"backoff, SIFS + ACK per attempt; {common}",
    ]


def methodology_notes(scenario, plans: list[GroupPlan]) -> list[str]:
    notes = [
        "Battery life: linear battery (usable-capacity derating, self-discharge); for nodes alive at the end, "
        "projected as usable energy / (mean load power over the run + self-discharge power); nodes that died "
        "report the time they died.",
        *_link_notes(scenario.network),
        "Cloud: FIFO queue with "
        f"{scenario.network.cloud.servers} server(s), {scenario.network.cloud.inference_time * 1e3:g} ms per inference.",
    ]
    for p in plans:
        notes.append(
            f"Group {p.name}: {p.fresh_windows:,} event windows generated fresh; event-free windows drawn from a pool "
            f"of {p.pool_size:,} (on-device false-alarm rate per window {p.pool_false_positive_rate:.4f} +/- "
            f"{p.pool_false_positive_se:.4f} s.e.). On-device inference {p.inference_time_s * 1e3:.3f} ms per window, "
            f"{p.inference_cost_source}. Node model {p.model.name} ({p.model.interpreter_name}); cloud model "
            f"{p.cloud_model.name}."
        )
    return notes


__all__ = ["run_scenario", "RunResult", "PolicyOutcome", "simulate_policy", "FRAME_FATES", "NOT_SENT", "SLOTS"]
