"""Run a scenario: plan the fleet once, then simulate every policy on the same fleet and signals.

Per policy, a short pipeline of stages (`iotsim.engine.stages`) over the link's typed outcome:
the policy turns window verdicts into messages; the run's `Link` (LoRaWAN, BLE, Wi-Fi) turns them
into scheduled frames; batteries that would empty cut a node's life short; every active interval
is charged to the energy ledger; the link decides each frame's fate at the gateways; delivered
messages cross the backhaul and raw windows queue for inference at the cloud (a SimPy model);
detection quality follows from the decisions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from iotsim.energy.ledger import EnergyLedger
from iotsim.engine import stages
from iotsim.engine.adaptive import energy_aware
from iotsim.engine.fleet import STREAM_LINK, GroupPlan, group_rng, plan_group
from iotsim.engine.federated import FederatedOutcome, FederatedPlan, PolicyRounds, federated_notes, plan_federated
from iotsim.engine.federated import workdir as federated_workdir
from iotsim.engine.harvest import HarvestOutcome, HarvestPlan, frames_off, hourly_demand_j, run_stores
from iotsim.engine.messages import merge_messages, policy_messages
from iotsim.engine.tally import Tally, tally_of
from iotsim.engine.updates import (Listening, Polls, gateway_schedule, poll_fates, poll_notes, run_updates, settle_polls,
                                   update_notes, updated_plans)
from iotsim.link import Link, Messages, Transmissions, make_link
from iotsim.network.fate import Fate
from iotsim.policies import EnergyAware, Policy, make_policy

Progress = Callable[[str, float, float], None]
MAX_DEATH_PASSES = 3  # closed loop: transmissions re-run with the nodes' death times until these settle


@dataclass
class PolicyOutcome:
    policy: Policy
    messages: Messages
    tx: Transmissions  # every frame: schedule, attempts, radio state times, fate, gateway
    message_delivered: np.ndarray
    message_arrival_s: np.ndarray  # at the network server; NaN if not delivered
    decision_time_s: np.ndarray  # per message: when the application knows; NaN if no decision
    decision_positive: np.ndarray  # per message: the decision says "event"
    cloud_inferences: int
    cloud_wait_s: np.ndarray  # queueing delay of each cloud inference
    ledger: EnergyLedger
    energy_slots_j: np.ndarray  # (nodes, slots)
    died_at_s: np.ndarray  # inf if alive at the end
    battery_life_s: np.ndarray  # NaN for harvesting nodes
    battery_life_limit: np.ndarray  # per node: index into iotsim.energy.battery.LIMITS of what binds
    event_latency_s: list[np.ndarray]  # per group: per event, NaN if not detected
    true_positive_decisions: list[int]
    positive_decisions: list[int]
    wall_s: float = 0.0
    harvest: HarvestOutcome | None = None  # solar-harvesting groups: their stores hour by hour
    low_hours: np.ndarray | None = None  # energy-aware policy: (nodes, hours) the hours each node ran its low policy
    modes_settled: bool = True  # energy-aware policy: the modes its messages follow are the ones its stores give
    tally: Tally | None = None  # per node: what the tables and metrics count (frames by fate, messages, ...)
    # model updates by class A unicast: this policy's own (its run's polls decide the fragments), and the passes
    # that took (passes, polls without a verdict, polls whose verdict differs from the one the fragments answered,
    # the earliest time such a poll was on air: inf when settled)
    updates: list | None = None
    poll_passes: tuple[int, int, int, float] | None = None
    poll_fates: tuple | None = None  # a run in time chunks: what it made of its unicast polls (updates.poll_fates)


@dataclass
class RunResult:
    scenario: object
    plans: list[GroupPlan]
    outcomes: list[PolicyOutcome]
    gateway_ids: list[str]
    technology: str = "lorawan"
    tx_power_dbm: float = 14.0  # the nodes' configured TX power
    # iotsim.engine.updates.UpdateOutcome per update, by start: the same for every policy, except with class A
    # unicast, where each policy has its own (PolicyOutcome.updates; `updates_of`) and this is the first policy's
    updates: list = field(default_factory=list)
    federated: list = field(default_factory=list)  # iotsim.engine.federated.FederatedOutcome per policy
    federated_plan: object = None  # iotsim.engine.federated.FederatedPlan (None: no federated rounds)
    link_state: dict | None = None  # what the link set up for the fleet (a mesh: graph, tree, positions)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    packets_path: Path | None = None  # a run in time chunks: its packets table, streamed to parquet as it ran
    workdir: object = None  # a run in time chunks: the temporary folder holding it (removed with the result)

    @property
    def n_nodes(self) -> int:
        return sum(p.n_nodes for p in self.plans)

    def updates_of(self, outcome: PolicyOutcome) -> list:
        """The model updates as `outcome`'s policy ran them."""
        return outcome.updates if outcome.updates is not None else self.updates


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
    """Simulate every policy of `scenario` on the same fleet. Library entry point behind `iotsim run`.

    With `simulation.chunk` set, the run goes in time chunks (iotsim.engine.chunked): memory bounded by
    nodes, not frames, for long runs of large fleets."""
    if scenario.simulation.chunk is not None:
        from iotsim.engine.chunked import run_chunked

        return run_chunked(scenario, progress)
    t0 = time.perf_counter()
    say = progress or (lambda phase, done, total: None)
    gateways_xy = np.array([g.position_m for g in scenario.network.gateways], dtype=np.float64)
    link = make_link(scenario.network)
    cache: dict = {}
    plans: list[GroupPlan] = []
    start = 0
    for index, spec in enumerate(scenario.fleet):
        resources = load_group_resources(scenario, index, cache)
        plan = plan_group(
            scenario, index, start, gateways_xy, resources, link,
            progress=lambda d, t, g=spec.group: say(f"windows {g}", d, t),
        )
        say(f"windows {spec.group}", 1, 1)
        plans.append(plan)
        start += spec.count
    nodes = stages.fleet_nodes(plans, link)
    link.attach(nodes.link, scenario.seed)
    base_plans = plans
    update_outcomes = []
    if scenario.updates:
        say("updates", 0, 1)
        update_outcomes = run_updates(scenario, plans, link, nodes, cache)
        # the windows after each node's activation get the new model's verdicts
        plans = updated_plans(plans, update_outcomes)
        say("updates", 1, 1)
    by_polls = any(u.unicast is not None for u in update_outcomes)  # each policy's polls decide its fragments
    listening = Listening.of(update_outcomes) if update_outcomes else None
    fed_plan = None
    if scenario.federated is not None:
        say("federated rounds", 0, 1)
        fed_plan = plan_federated(scenario, plans, nodes)
        say("federated rounds", 1, 1)
    harvest = HarvestPlan.of(scenario, plans)
    outcomes, fed_outcomes = [], []
    policies = [make_policy(p) for p in scenario.policies]
    for pi, policy in enumerate(policies):
        say(f"policy {policy.name}", 0, 1)
        if fed_plan is not None:
            outcome, fed_outcome = simulate_federated(scenario, plans, policy, pi, link, nodes, fed_plan, harvest)
            outcomes.append(outcome)
            fed_outcomes.append(fed_outcome)
        elif by_polls:
            outcomes.append(simulate_with_polls(scenario, base_plans, policy, pi, link, nodes, cache, harvest,
                                                (update_outcomes, plans)))
        else:
            outcomes.append(simulate_policy(scenario, plans, policy, pi, link, nodes, listening, harvest=harvest))
        say(f"policy {policy.name}", 1, 1)
    if by_polls:  # the run's updates and the plans' verdicts: the first policy's, as RunResult.updates says
        update_outcomes = outcomes[0].updates
        plans = updated_plans(base_plans, update_outcomes)
    result = RunResult(scenario, plans, outcomes, [g.id for g in scenario.network.gateways], link.technology,
                       link.tx_power_dbm, updates=update_outcomes, federated=fed_outcomes, federated_plan=fed_plan,
                       link_state=link.state())
    result.warnings = [w for p in plans for w in p.warnings]
    result.notes = [f"Warning: {w}" for w in result.warnings] + methodology_notes(scenario, plans, link) \
        + update_notes(update_outcomes) + poll_notes(outcomes) \
        + federated_notes(fed_plan, fed_outcomes) + battery_limit_notes(plans, outcomes) \
        + harvest_notes(plans, outcomes, harvest)
    result.wall_s = time.perf_counter() - t0
    return result


def simulate_with_polls(scenario, plans: list[GroupPlan], policy: Policy, policy_index: int, link: Link,
                        nodes: stages.FleetNodes, cache: dict, harvest: HarvestPlan | None,
                        first: tuple[list, list[GroupPlan]]) -> PolicyOutcome:
    """A policy whose model updates go out by class A unicast, in passes until the fragments answer exactly the
    polls its run heard (iotsim.engine.updates.settle_polls; `first`: the updates planned with fading alone and
    `plans` with their verdicts)."""
    ups0, plans0 = first

    def run(ups):
        plans_u = plans0 if ups is ups0 else updated_plans(plans, ups)
        link.gateway_schedule = gateway_schedule(ups)
        polls = Polls.of(ups, plans_u)
        outcome = simulate_policy(scenario, plans_u, policy, policy_index, link, nodes, Listening.of(ups),
                                  extra_messages=polls.messages if polls else None, harvest=harvest)
        return outcome, polls.verdicts(ups, poll_fates(outcome.messages, outcome.tx)) if polls else {}

    return settle_polls(ups0, lambda heard: run_updates(scenario, plans, link, nodes, cache, heard), run)


def simulate_federated(scenario, plans: list[GroupPlan], policy: Policy, policy_index: int, link: Link,
                       nodes: stages.FleetNodes, fed_plan: FederatedPlan,
                       harvest: HarvestPlan | None = None) -> tuple[PolicyOutcome, FederatedOutcome]:
    """A policy with federated rounds: its run in passes that decide the rounds one by one (engine.federated)."""
    with federated_workdir() as tmp:
        rounds = PolicyRounds(fed_plan, plans, link, nodes, scenario.seed, Path(tmp))

        def simulate(plans_r, pushes, training):
            link.gateway_schedule = gateway_schedule(pushes)
            parts = [training] + ([Listening.of(pushes)] if pushes else [])
            return simulate_policy(scenario, plans_r, policy, policy_index, link, nodes, Listening.concat(parts),
                                   extra_messages=rounds.uploads, harvest=harvest)

        outcome, fed_outcome = rounds.run(policy.name, simulate)
    link.gateway_schedule = None
    return outcome, fed_outcome


def simulate_policy(scenario, plans: list[GroupPlan], policy: Policy, policy_index: int, link: Link,
                    nodes: stages.FleetNodes, listening: Listening | None = None,
                    extra_messages: Messages | None = None, harvest: HarvestPlan | None = None) -> PolicyOutcome:
    """messages -> link -> battery (or a harvesting node's store) -> energy ledger -> reception -> backhaul ->
    cloud -> detection. `extra_messages`: sent besides the policy's (a federated round's model updates, unicast
    polls)."""
    t0 = time.perf_counter()
    duration = scenario.duration
    adaptive_policy = isinstance(policy, EnergyAware)  # its messages depend on the stores: engine.adaptive
    messages = None if adaptive_policy else policy_messages(plans, policy)
    if extra_messages is not None and len(extra_messages) and not adaptive_policy:
        messages = merge_messages(messages, extra_messages)
    keep_alive = link.keep_alive(nodes.link)

    harvesting = harvest.harvesting(nodes.n) if harvest is not None else None

    def transmit(stop_s=None):
        tx = link.transmit(messages, nodes.link, group_rng(scenario.seed, STREAM_LINK, policy_index), duration, stop_s)
        # a mesh reports each node's relaying and idle listening of this run as its steady load
        loads = stages.node_loads(plans, policy, nodes, tx, tx.steady if tx.steady is not None else keep_alive,
                                  listening)
        died = stages.node_deaths(nodes, loads, tx, duration)
        if harvesting is not None:  # a harvesting node's store empties and refills: it never dies
            died[harvesting] = np.inf
        return tx, loads, died

    adaptive = None
    if adaptive_policy:  # modes per node and hour from the stores (engine.adaptive)
        adaptive = energy_aware(scenario, plans, policy, policy_index, link, nodes, harvest, keep_alive, listening)
        messages, tx, loads = adaptive.messages, adaptive.tx, adaptive.loads
        died = np.full(nodes.n, np.inf)
    else:
        tx, loads, died = transmit()
    # with feedback a node's schedule depends on the others': run it again with the deaths until they settle
    for _ in range(MAX_DEATH_PASSES if link.closed_loop and adaptive is None else 0):
        if not np.isfinite(died).any():
            break
        tx, loads, again = transmit(died)
        settled = np.array_equal(again, died)
        # unsettled after the last pass: a node counts as dead at the earlier of the death time the link ran
        # with and the one its energy gives, so that no frame counts as on air that the link did not send
        died = again if settled else np.minimum(again, died)
        if settled:
            break
    lifetime = np.minimum(died, duration)
    on_air = stages.fates_before_air(tx, died, duration)
    stores = None
    if harvest is not None:
        if adaptive is None:
            demand = hourly_demand_j(loads.steady_w, loads.frame_energy_j, tx.node, tx.start_s, on_air, harvest.hours,
                                     duration)
            stores = run_stores(harvest, demand, duration)
        else:
            stores = adaptive.stores if adaptive.stores is not None else run_stores(
                harvest, adaptive.demand_j, duration, adaptive.low_demand_j, policy.below, policy.above)
        off = frames_off(stores, tx.node, tx.start_s, on_air)
        tx.fate[off] = Fate.NO_ENERGY
        on_air &= ~off
        lifetime = np.where(harvesting, stores.up_s, lifetime)
    ledger = stages.charge_ledger(nodes, loads, tx, on_air, lifetime)
    energy = ledger.energy_j(*stages.policy_powers(nodes, tx, on_air, loads.frame_tx))
    life, limit = stages.battery_life(nodes, energy, np.maximum(lifetime, 1e-9), died)
    if harvesting is not None:
        from iotsim.energy.battery import LIMITS

        life = np.where(harvesting, np.nan, life)
        limit = np.where(harvesting, LIMITS.index("harvesting"), limit).astype(np.int8)
    link.receive(tx, on_air, nodes.link)
    delivery = stages.deliver_messages(scenario.network, tx, len(messages))
    decisions = stages.decide(scenario.network, plans, messages, delivery)
    detection = stages.detect(plans, messages, decisions)
    tally = tally_of(plans, messages, tx, delivery.delivered, decisions.positive,
                     stages.cloud_waits(scenario.network, plans, messages, delivery, decisions), nodes.n,
                     link.tx_power_dbm)
    return PolicyOutcome(
        policy=policy, messages=messages, tx=tx, message_delivered=delivery.delivered,
        message_arrival_s=delivery.arrival_s, decision_time_s=decisions.time_s,
        decision_positive=decisions.positive, cloud_inferences=decisions.cloud_inferences,
        cloud_wait_s=decisions.cloud_wait_s, ledger=ledger, energy_slots_j=energy, died_at_s=died,
        battery_life_s=life, battery_life_limit=limit,
        event_latency_s=detection.event_latency_s, true_positive_decisions=detection.true_positive_decisions,
        positive_decisions=detection.positive_decisions, wall_s=time.perf_counter() - t0, harvest=stores,
        low_hours=None if adaptive is None else adaptive.low,
        modes_settled=adaptive is None or adaptive.stores is not None, tally=tally,
    )


def methodology_notes(scenario, plans: list[GroupPlan], link: Link) -> list[str]:
    notes = [
        "Battery life: terminal voltage from each cell's open-circuit voltage and internal resistance vs state of "
        "charge; a node dies when its peak current pulls the battery below the board's brown-out voltage (or the "
        "cell's cut-off); capacity at the node's mean current; self-discharge. For nodes alive at the end, "
        "projected as usable energy / (mean battery power over the run + self-discharge power), capped at the "
        "cell's rated shelf life; nodes that died report the time they died. The nodes table's "
        "battery_life_limit says which bound binds (energy, brown-out, calendar).",
        "Energy: exact time-in-state ledger per component (MCU, sensor, radio) at each rail's voltage, plus the "
        "power tree's regulator losses (LDO quiescent current and dropout, converter efficiency vs load) as a "
        "regulator row; sleep is the rest of each node's lifetime.",
        "Path loss: the scenario's model, never below free-space loss at the carrier "
        f"({link.carrier_frequency_hz / 1e6:g} MHz).",
        *link.notes(),
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
            + "".join(f" From each node's activation of {name}: {seconds * 1e3:.3f} ms per window, {source}."
                      for _, seconds, source, name in p.model_steps)
        )
    return notes


def battery_limit_notes(plans: list[GroupPlan], outcomes: list[PolicyOutcome]) -> list[str]:
    """Per policy and group: how many nodes' battery life each bound (energy, brown-out, calendar) limits."""
    from iotsim.energy.battery import LIMITS, SECONDS_PER_YEAR

    notes = []
    for out in outcomes:
        start = 0
        for p in plans:
            if p.spec.solar is not None:
                start += p.n_nodes
                continue
            limit = out.battery_life_limit[start:start + p.n_nodes]
            counts = ", ".join(f"{w} {int((limit == i).sum())}" for i, w in enumerate(LIMITS) if (limit == i).any())
            shelf = p.board.battery.shelf_life_s / SECONDS_PER_YEAR
            notes.append(f"Battery life limit, {out.policy.name} / {p.name} ({p.board.battery.name}, shelf life "
                         f"{shelf:g} years): {counts} nodes.")
            start += p.n_nodes
    return notes


def harvest_notes(plans: list[GroupPlan], outcomes: list[PolicyOutcome], harvest: HarvestPlan | None) -> list[str]:
    """Per harvesting group: how it is modelled; per policy: harvest, consumption and downtime."""
    notes = []
    for p in plans:
        spec = p.spec.solar
        if spec is None:
            continue
        pn, st = spec.panel, spec.storage
        store = harvest.groups[p.index][2]
        kind = f"{st.battery} battery" if st.kind == "battery" else st.kind
        notes.append(
            f"Solar harvesting, group {p.name}: a {pn.area_cm2:g} cm^2 panel ({pn.efficiency * 100:g} % efficient, tilt "
            f"{pn.tilt_deg:g} deg, azimuth {pn.azimuth_deg:g} deg, charger {pn.charger_efficiency * 100:g} %) under the "
            f"typical year of {spec.site} from day {spec.start_day}, hourly (pvlib: sun position, {pn.transposition} "
            f"sky, Faiman cell temperature); a {kind} store of {store.capacity_j:,.0f} J usable (charge efficiency "
            f"{st.charge_efficiency:g}); a node browns out when the store empties and restarts at "
            f"{st.restart_fraction * 100:g} %. Battery life is not projected for these nodes; see their downtime.")
        for out in outcomes:
            if out.harvest is None or p.index not in out.harvest.results:
                continue
            sl, r = out.harvest.results[p.index]
            days = out.harvest.duration_s / 86400.0
            down = r.downtime_s(3600.0)
            notes.append(
                f"Solar, {out.policy.name} / {p.name}: harvested {r.harvested_j.sum() / p.n_nodes / days:,.1f} J/node/day "
                f"(clipped {r.clipped_j.sum() / p.n_nodes / days:,.1f} when full), consumed "
                f"{r.consumed_j.sum() / p.n_nodes / days:,.1f}; {int((down > 0).sum())} of {p.n_nodes} nodes had downtime "
                f"({down.sum() / p.n_nodes / 3600:,.1f} h per node); lowest store {r.energy_j.min() / r.capacity_j:.0%} "
                "of its capacity.")
            if out.low_hours is not None:
                low = out.low_hours[sl]
                notes.append(
                    f"Energy-aware, {p.name}: {out.policy.describe()}; {low.mean():.1%} of node-hours ran the low "
                    f"policy ({int(low.any(axis=1).sum())} of {p.n_nodes} nodes at some time)"
                    + ("." if out.modes_settled else "; the modes had not settled after the engine's passes (the "
                       "messages follow the last pass's modes)."))
    return notes


__all__ = ["run_scenario", "RunResult", "PolicyOutcome", "simulate_policy"]
