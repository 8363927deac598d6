"""Federated rounds in a run (scenario `federated:`): nodes train, send their weights up, get the average back.

Round r starts at `start + r x every`. A share of the groups' nodes is drawn (its own random stream per
round, the same for every policy). Each trains the model's last dense layers (`iotsim.tinyml.federated`)
on its own windows that ended since the previous round (at most `max_windows`, the most recent),
labelled by the ground truth (a window that overlaps an event is the positive class: a stated
assumption, as if the application confirmed each window). Its MCU works for the local update's time
(`training_seconds`: the int8 model's measured inference per window for the frozen features, the float
head's forward and backward MACs at the MCU's measured cost of a float SGD step), then it sends the new
weights (int8 with a scale per tensor) as an uplink message of kind `model_update`, through the run's
link with the rest of its traffic. The network server averages the weights of the updates that reach it
by the deadline (FedAvg, weighted by the nodes' window counts), quantizes the average into the int8
model with that model's own scales, and sends the new layers (their int8 weights and int32 biases, the
only bytes that change) to every node of the groups as an update (`Link.plan_update`: over LoRaWAN a
FUOTA multicast session at the deadline). From the moment a node has applied it, its windows get the
new model's verdicts. A round that receives no update in time sends nothing.

The rounds depend on the traffic (a congested network delivers fewer updates) and the traffic on the
rounds (a new model changes what on-device policies send), so each policy runs its rounds in passes:
pass r simulates the whole run with the models of rounds before r and decides round r from the updates
delivered in it; a last pass runs with every round's model. That is exact because a link's outcome up
to a time depends only on the traffic up to that time (`iotsim.link.draws`), and round r's model acts
only after its deadline: the last pass delivers the same updates as the passes that decided the rounds.
The run checks this and says so in its notes (battery deaths are the exception: a node's death time
comes from its energy over the whole run).
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from iotsim.engine.fleet import GroupPlan, Verdicts, group_rng, phase_rng
from iotsim.engine.updates import (Listening, UpdateOutcome, apply_costs, effective_verdicts, powers_above_sleep,
                                   update_energy_j)
from iotsim.errors import InputError
from iotsim.link.base import Messages
from iotsim.ota.delta import UpdatePayload
from iotsim.policies import MessageKind
from iotsim.tinyml import federated as fl

STREAM_FEDERATED = 8  # who takes part in each round
STREAM_FEDERATED_PUSH = 9  # receptions of each round's new layers
STREAM_FEDERATED_SGD = 10  # the order of the local minibatches
STREAM_FEDERATED_VALIDATION = 11  # held-out windows


@dataclass
class RoundPlan:
    """What a round is before any traffic: its participants, their data and their work (same for every policy)."""

    index: int
    start_s: float
    deadline_s: float
    nodes: np.ndarray  # global node index per participant (sorted)
    samples: np.ndarray  # windows each participant trains on
    train_s: np.ndarray  # its MCU's time for the local update (0 in central mode)
    upload_bytes: np.ndarray  # what it sends: its weights (fedavg) or its raw windows (central)
    raw_bytes: np.ndarray  # its training windows as raw samples (sent in central mode, kept on the node in fedavg)
    train_energy_j: np.ndarray  # that time's battery energy (the MCU active, above sleep)
    wait_s: np.ndarray  # then its random wait before it sends the update (upload_spread)
    data: list[tuple[np.ndarray, np.ndarray]]  # per participant: (frozen features, labels)

    @property
    def upload_ready_s(self) -> np.ndarray:
        return self.start_s + self.train_s + self.wait_s


@dataclass
class FederatedPlan:
    spec: object  # the scenario's Federated
    group_indices: list[int]
    members: np.ndarray  # global node indices of the groups
    model: object  # the int8 model the groups run (its frozen layers give the features)
    head: object  # iotsim.tinyml.federated.DenseHead: the layers trained, dequantized from the groups' model
    rounds: list[RoundPlan]
    weights_bytes: int  # one node's weights as sent in fedavg mode: int8 and a float32 scale per tensor
    push_bytes: int  # the new layers sent down: int8 weights and int32 biases
    ram_bytes: int  # a local update's working memory (float32 weights, gradients, one batch's activations)
    training_measured: bool  # the MCU has a measured cost of float MACs (else only the int8 passes are timed)
    validation: "Validation"  # held-out windows of the signal as it is at a time

    def upload_messages(self, plans: list[GroupPlan]) -> tuple[Messages, np.ndarray]:
        """Every round's updates as messages in (node, ready time) order, and each one's round."""
        node = np.concatenate([r.nodes for r in self.rounds])
        ready = np.concatenate([r.upload_ready_s for r in self.rounds])
        rnd = np.concatenate([np.full(r.nodes.size, r.index) for r in self.rounds])
        offsets = np.cumsum([0] + [p.n_nodes for p in plans])
        group = np.searchsorted(offsets, node, side="right") - 1
        order = np.lexsort((ready, node))
        n = node.size
        size = np.concatenate([r.upload_bytes for r in self.rounds])
        m = Messages(node[order], ready[order], size[order].astype(np.int64),
                     np.full(n, MessageKind.MODEL_UPDATE, np.int8), np.full(n, -1, np.int64), group[order])
        return m, rnd[order]


@dataclass
class RoundOutcome:
    """One round under one policy."""

    plan: RoundPlan
    delivered: np.ndarray  # per participant: its update reached the server by the deadline
    late: np.ndarray  # per participant: it reached the server after the deadline
    accuracy: float  # the groups' model after the round (int8, LiteRT) on the held-out windows
    recall: float
    false_positive_rate: float
    baseline: tuple[float, float, float]  # the groups' starting model on the same held-out windows
    push: UpdateOutcome | None  # the new layers sent to the groups (None: no update arrived in time)
    head: object  # the averaged float layers after the round (the previous round's when nothing arrived)
    upload_airtime_s: np.ndarray | None = None  # per participant: its update's time on air, every attempt (final run)


@dataclass
class FederatedOutcome:
    """A policy's rounds, and how the passes that decided them agree with its final run."""

    policy: str
    initial_score: tuple[float, float, float]  # the groups' model before any round: accuracy, recall, false positives
    rounds: list[RoundOutcome] = field(default_factory=list)
    passes: int = 0
    consistent: bool = True  # the final pass delivered each round's updates as the pass that decided it


# ---- planning (policy-independent) ------------------------------------------------------------------
def plan_federated(scenario, plans: list[GroupPlan], nodes) -> FederatedPlan:
    """Participants, their local data and work, per round; the held-out windows."""
    spec = scenario.federated
    where = "federated"
    groups = [p.index for p in plans if spec.groups is None or p.name in spec.groups]
    models = {str(plans[g].model.path) for g in groups}
    if len(models) > 1:
        raise InputError(f"federated rounds average one model, but the groups run {', '.join(sorted(models))}",
                         field=f"{where}.groups")
    model = plans[groups[0]].model
    if len(model.class_names) != 2:
        raise InputError(f"federated rounds label windows from the ground truth (event or not), but model "
                         f"'{model.name}' has {len(model.class_names)} classes", field=f"{where}.groups")
    head = fl.head_from_tflite(model.path, spec.layers)  # the int8 layers the nodes run, dequantized
    macs = int(model.card.get("macs") or 0)
    offsets = np.cumsum([0] + [p.n_nodes for p in plans])
    members = np.concatenate([np.arange(offsets[g], offsets[g + 1]) for g in groups])
    shapes = [w.shape for w in head.weights]
    push_bytes = sum(i * o + 4 * o for i, o in shapes)
    per_sample = fl.training_cost(head, macs, 1, epochs=1, batch_size=1)
    ram = fl.training_cost(head, macs, spec.batch_size or spec.max_windows, batch_size=spec.batch_size).ram_bytes
    for g in groups if spec.mode == "fedavg" else []:  # central: the nodes train nothing
        ram_avail = plans[g].board.mcu.ram_bytes
        if ram_avail is not None and ram > ram_avail:
            raise InputError(f"a local update of {len(shapes)} layer(s) with batches of {spec.batch_size} needs "
                             f"{ram:,} B of RAM; {plans[g].board.mcu.name} has {int(ram_avail):,} B: train fewer layers "
                             "or use smaller batches", field=f"{where}.batch_size")

    (active,) = powers_above_sleep(nodes, "mcu", ("active",))
    measured = True
    rounds = []
    starts = spec.round_starts()
    for r, t in enumerate(starts):
        rng = group_rng(scenario.seed, STREAM_FEDERATED, r)
        k = max(1, int(round(spec.participation * members.size)))
        chosen = np.sort(rng.choice(members, size=k, replace=False))
        since = starts[r - 1] if r else -math.inf
        who, samples, train_s, sizes, raw, data = [], [], [], [], [], []
        for g in groups:
            p = plans[g]
            local = chosen[(chosen >= offsets[g]) & (chosen < offsets[g + 1])] - offsets[g]
            flats = [_recent_windows(p, i, since, t, spec.max_windows) for i in local]
            keep = [i for i, f in enumerate(flats) if f.size]
            if not keep:
                continue
            flat = np.concatenate([flats[i] for i in keep])
            feats = fl.frozen_features(model, head, p.windows.samples(flat))
            labels = np.where(p.event_id[flat] >= 0, model.positive_class, 1 - model.positive_class)
            bounds = np.cumsum([0] + [flats[i].size for i in keep])
            for j, i in enumerate(keep):
                n = flats[i].size
                if spec.mode == "fedavg":
                    seconds, ok = training_seconds(head, per_sample, n, spec, p.inference_time_s, p.board.mcu)
                    measured &= ok
                    size = per_sample.upload_bytes
                else:  # the raw windows go up; the cloud trains
                    seconds, size = 0.0, n * p.raw_window_bytes
                who.append(int(local[i] + offsets[g]))
                samples.append(n)
                train_s.append(seconds)
                sizes.append(size)
                raw.append(n * p.raw_window_bytes)
                data.append((feats[bounds[j]:bounds[j + 1]], labels[bounds[j]:bounds[j + 1]]))
        order = np.argsort(who, kind="stable")
        who = np.asarray(who, np.int64)[order]
        train = np.asarray(train_s)[order]
        spread = spec.deadline / 2 if spec.upload_spread is None else spec.upload_spread
        wait = rng.random(who.size) * spread
        rounds.append(RoundPlan(r, float(t), float(t + spec.deadline), who, np.asarray(samples, np.int64)[order],
                                train, np.asarray(sizes, np.int64)[order], np.asarray(raw, np.int64)[order],
                                train * active[who], wait,
                                [data[i] for i in order]))
    validation = Validation(scenario.seed, plans, groups, model, spec.validation_windows)
    return FederatedPlan(spec, groups, members, model, head, rounds, per_sample.upload_bytes, push_bytes,
                         ram, measured, validation)


def _recent_windows(p: GroupPlan, i: int, since_s: float, until_s: float, at_most: int) -> np.ndarray:
    """Flat indices of node i's windows that ended in (since_s, until_s], the last `at_most` of them."""
    flat = np.arange(p.window_offset[i], p.window_offset[i + 1])
    end = p.window_end_s(flat)
    return flat[(end > since_s) & (end <= until_s)][-at_most:]


def training_seconds(head, per_sample, samples: int, spec, inference_s: float, mcu) -> tuple[float, bool]:
    """The MCU's time for one local update, and whether its float work is measured on this MCU.

    Per window and epoch the int8 model runs once (its measured inference time: the frozen features),
    then the float head runs forward and backward; each minibatch ends with an update of every weight.
    The float MACs are priced by `iotsim.tinyml.ondevice` (a float SGD step measured on the emulated core)."""
    from iotsim.tinyml.ondevice import float_mac_seconds

    head_forward = sum(i * o for i, o in (w.shape for w in head.weights))
    params = sum(i * o + o for i, o in (w.shape for w in head.weights))
    steps = spec.epochs * math.ceil(samples / (spec.batch_size or samples))
    float_macs = spec.epochs * samples * (head_forward + per_sample.backward_macs) + steps * params
    per_step = float_mac_seconds(float_macs / steps, mcu)  # the measured step's fixed part counts once per step
    float_s = None if per_step is None else steps * per_step
    int8_s = spec.epochs * samples * inference_s
    return (int8_s + (float_s or 0.0), float_s is not None)


class Validation:
    """Held-out windows per group, half of them wholly inside an event, generated from the signal as it is at a
    given time (its phase: `workload.phases`), from their own stream; (windows, labels) per set of phases."""

    def __init__(self, seed: int, plans: list[GroupPlan], groups: list[int], model, n: int):
        self.seed, self.plans, self.groups, self.model, self.n = seed, plans, groups, model, n
        self._sets: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def at(self, t_s: float) -> tuple[np.ndarray, np.ndarray]:
        phases = tuple(self.plans[g].windows.phase_at(t_s) for g in self.groups)
        if phases not in self._sets:
            windows, labels = [], []
            m = self.model
            for g, k in zip(self.groups, phases):
                p = self.plans[g]
                rng = phase_rng(self.seed, STREAM_FEDERATED_VALIDATION, g, k)
                masks = np.zeros((self.n, p.window_samples), dtype=bool)
                masks[: self.n // 2] = True
                windows.append(p.windows.workloads[k].generate(rng, masks))
                labels.append(np.where(masks[:, 0], m.positive_class, 1 - m.positive_class))
            self._sets[phases] = (np.concatenate(windows), np.concatenate(labels))
        return self._sets[phases]

    def score(self, model, t_s: float) -> tuple[float, float, float]:
        """(accuracy, recall, false-positive rate) of an int8 model on the held-out windows of time t_s."""
        windows, labels = self.at(t_s)
        cls, _ = model.predict(windows)
        pos = labels == model.positive_class
        hit = cls == model.positive_class
        return float((cls == labels).mean()), float(hit[pos].mean()), float(hit[~pos].mean())


# ---- one policy's rounds ---------------------------------------------------------------------------------
class PolicyRounds:
    """Runs one policy's rounds in passes (see the module docstring). `simulate(plans, pushes, training)` runs
    the policy once with those groups' verdicts, pushes (UpdateOutcomes) and training work, returning a
    PolicyOutcome."""

    def __init__(self, fed: FederatedPlan, plans: list[GroupPlan], link, nodes, seed: int, workdir: Path):
        self.fed, self.plans, self.link, self.nodes, self.seed = fed, plans, link, nodes, seed
        self.workdir = workdir
        self.uploads, self.upload_round = fed.upload_messages(plans)
        self.training = self._training_listening()

    def _training_listening(self) -> Listening:
        """The participants' local updates as MCU work (charged at the active power)."""
        rounds = self.fed.rounds
        node = np.concatenate([r.nodes for r in rounds]) if rounds else np.zeros(0, np.int64)
        start = np.concatenate([np.full(r.nodes.size, r.start_s) for r in rounds]) if rounds else np.zeros(0)
        cpu = np.concatenate([r.train_s for r in rounds]) if rounds else np.zeros(0)
        energy = np.concatenate([r.train_energy_j for r in rounds]) if rounds else np.zeros(0)
        z = np.zeros(node.size)
        return Listening(node, start, start + cpu, z, z, z, z, cpu, energy)

    def run(self, policy_name: str, simulate) -> tuple[object, FederatedOutcome]:
        """The policy's final run (a PolicyOutcome) and its rounds."""
        fed = self.fed
        head = fed.head
        model = fed.model
        verdicts = [p.verdicts for p in self.plans]
        pushes: list[UpdateOutcome] = []
        out = FederatedOutcome(policy_name, fed.validation.score(model, fed.rounds[0].start_s if fed.rounds else 0.0))
        decided = []
        for rp in fed.rounds:
            plans = self._with(verdicts)
            outcome = simulate(plans, pushes, self.training)
            out.passes += 1
            ok, late = self._arrivals(outcome, rp)
            decided.append(ok)
            push = None
            if ok.any():
                data = [d for d, keep in zip(rp.data, ok) if keep]
                head = train_round(head, data, fed.spec, group_rng(self.seed, STREAM_FEDERATED_SGD, rp.index),
                                   fed.model.positive_class)
                model = self._int8_model(head, rp.index)
                push = self._push(rp, model)
                pushes.append(push)
                verdicts = effective_verdicts(self.plans, [push], verdicts)
            acc, recall, fpr = fed.validation.score(model, rp.deadline_s)
            baseline = fed.validation.score(fed.model, rp.deadline_s)
            out.rounds.append(RoundOutcome(rp, ok, late, acc, recall, fpr, baseline, push, head))
        plans = self._with(verdicts)
        final = simulate(plans, pushes, self.training)
        out.passes += 1
        out.consistent = all(np.array_equal(self._arrivals(final, rp)[0], ok) for rp, ok in zip(fed.rounds, decided))
        ups = np.flatnonzero(final.messages.kind == MessageKind.MODEL_UPDATE)
        air = np.bincount(final.tx.message, weights=final.tx.tx_s, minlength=len(final.messages))[ups]
        for ro in out.rounds:
            ro.upload_airtime_s = air[self.upload_round == ro.plan.index]
        return final, out

    def _with(self, verdicts: list[Verdicts]) -> list[GroupPlan]:
        import dataclasses

        return [dataclasses.replace(p, verdicts=v) for p, v in zip(self.plans, verdicts)]

    def _arrivals(self, outcome, rp: RoundPlan) -> tuple[np.ndarray, np.ndarray]:
        """Per participant of round rp: its update arrived by the deadline; arrived after it."""
        idx = np.flatnonzero(outcome.messages.kind == MessageKind.MODEL_UPDATE)
        mine = idx[self.upload_round == rp.index]  # uploads are in (node, ready) order in both
        arrival = outcome.message_arrival_s[mine]
        got = outcome.message_delivered[mine]
        return got & (arrival <= rp.deadline_s), got & (arrival > rp.deadline_s)

    def _int8_model(self, head, r: int):
        from iotsim.tinyml.runtime import load_model

        path = fl.write_int8_head(self.fed.model.path, head, self.workdir / f"federated_round{r}.tflite",
                                  name=f"{self.fed.model.name}_federated_round{r}")
        return load_model(str(path), require_int8=True)

    def _push(self, rp: RoundPlan, model) -> UpdateOutcome:
        """The round's new layers to every node of the groups, from the deadline."""
        fed = self.fed
        plans = self.plans
        members = fed.members
        offsets = np.cumsum([0] + [p.n_nodes for p in plans])
        rx = np.concatenate([plans[g].rx_power_dbm for g in fed.group_indices])
        startup = np.concatenate([np.full(plans[g].n_nodes, plans[g].board.radio.startup_time_s)
                                  for g in fed.group_indices])
        size = fed.model.path.stat().st_size
        payload = UpdatePayload("head", fed.push_bytes, size, size, None)
        session, rollout = self.link.plan_update(fed.push_bytes, fed.spec, rx, startup,
                                                 group_rng(self.seed, STREAM_FEDERATED_PUSH, rp.index))
        push = UpdateOutcome(rp.index, fed.spec, model, fed.group_indices, payload, session, rp.deadline_s, members,
                             rollout, 0)
        apply_costs(push, plans, offsets)
        push.listen_energy_j, push.apply_energy_j = update_energy_j(push, self.nodes)
        return push


def train_round(head, data: list[tuple[np.ndarray, np.ndarray]], spec, rng: np.random.Generator,
                positive_class: int = 1):
    """The round's new layers from the data that arrived: FedAvg of the nodes' local updates (fedavg), or the
    same minibatch SGD on the union of the nodes' windows in the cloud (central). The event class weighs
    `spec.positive_weight` in the loss."""
    weight = np.ones(2)
    weight[positive_class] = spec.positive_weight
    sgd = dict(epochs=spec.epochs, batch_size=spec.batch_size, learning_rate=spec.learning_rate, rng=rng,
               class_weight=None if spec.positive_weight == 1.0 else weight)
    if spec.mode == "fedavg":
        return fl.fedavg(head, data, **sgd)
    return fl.local_sgd(head, np.concatenate([x for x, _ in data]), np.concatenate([y for _, y in data]), **sgd)


def federated_notes(plan: FederatedPlan | None, outcomes: list[FederatedOutcome]) -> list[str]:
    """The run's notes on its federated rounds: the method, what it leaves out, and whether the passes agreed."""
    if plan is None:
        return []
    spec = plan.spec
    notes = [
        f"Federated rounds (FedAvg, McMahan et al. 2017): {spec.rounds} round(s) from {spec.start:g} s every "
        f"{spec.every:g} s; {spec.participation:g} of the groups' nodes drawn per round train the model's last "
        f"{spec.layers} dense layer(s) (its int8 weights dequantized; features from its own int8 layers) for "
        f"{spec.epochs} epoch(s) of minibatch SGD on their windows since the previous round (at most "
        f"{spec.max_windows}), labelled by the ground truth (as if each window were confirmed), then send them "
        f"({plan.weights_bytes:,} B: int8 and a scale per tensor) as an uplink at a random time within "
        f"{(spec.deadline / 2 if spec.upload_spread is None else spec.upload_spread):g} s; the server averages the "
        f"updates that arrive within {spec.deadline:g} s, weighted by window counts, quantizes them with the model's "
        f"own scales and sends the new layers ({plan.push_bytes:,} B) to the groups as an update; a round with no "
        "update in time sends nothing."
        + (" Mode central (cloud retraining): instead of training, each drawn node sends those windows raw and the "
           "cloud runs the same minibatch SGD on all that arrived in time." if spec.mode == "central" else "")
        + " Accuracy: the int8 model after each round on "
        f"{spec.validation_windows:,} held-out windows per group (half inside an event) of the signal as it is at "
        "the round's deadline (federated.csv); before any round: at the first round's start.",
        "Federated training cost: per window and epoch the int8 model's inference (its measured firmware time) and "
        "the float layers' forward and backward MACs, with a weight update per minibatch, priced by a float SGD step "
        "measured on the emulated core (iotsim.tinyml.ondevice); RAM for float weights, gradients and one batch's "
        f"activations: {plan.ram_bytes:,} B, checked against the MCU."
        + ("" if plan.training_measured else " No measured float cost for this MCU: only the int8 passes are timed."),
        "Federated rounds, not modelled: the round's announcement to the nodes (rounds are on a fixed schedule), "
        "partial-overlap windows are labelled as events, and labels are assumed to exist on the node.",
    ]
    for fo in outcomes:
        if not fo.consistent:
            notes.append(f"Warning: federated rounds under {fo.policy}: the final run delivered some round's updates "
                         "differently from the pass that decided the round (a node's battery death moved); the rounds "
                         "stand as decided.")
    return notes


def workdir() -> tempfile.TemporaryDirectory:
    """A scratch directory for the rounds' int8 models (loaded into memory; removed after the run)."""
    return tempfile.TemporaryDirectory(prefix="iotsim_federated_")


__all__ = ["FederatedOutcome", "FederatedPlan", "PolicyRounds", "RoundOutcome", "RoundPlan", "federated_notes",
           "plan_federated",
           "training_seconds", "workdir"]
