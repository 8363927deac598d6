"""Model updates over the air (scenario `updates:`): who gets each new model when, before any policy runs.

The run's link plans each update (`Link.plan_update`): over LoRaWAN one FUOTA session
(`iotsim.ota.fuota`): every gateway sends the block's fragments as class C multicast and each node
listens to its strongest gateway from the session's start until it can decode (or the session ends);
over BLE and Wi-Fi each gateway sends the update to its nodes one after another over their own links
(`iotsim.ota.star`). A node runs the new model from the moment it has the update. The transfers do
not depend on the uplinks, so the rollout is the same for every policy; its effects are per policy:
the nodes' windows after activation get the new model's verdicts (`effective_verdicts`), and the
radio time spent receiving is charged to each node's ledger and battery. Class A unicast is the
exception: the network answers the polls a policy's run heard, so each policy has its own rollout
(`settle_polls`).

A node takes a delta update only if it runs the update's base model when the update starts (the
model of the previous update to its group, activated before this one starts); a full image needs no
base. Nodes that cannot apply an update are left out of it.

Every LoRaWAN gateway sends every session (`gateway_schedule`): while it sends a fragment it receives
no uplink (half duplex), class A answers cannot overlap the fragments, and during the session no answer
goes out on its sub-band, whose duty cycle the session spends.

A node that has the whole update applies it (`iotsim.ota.apply`): it writes the received block and
the new model into flash and checks the model's SHA-256, and runs the new model when that is done;
the flash time is charged at the MCU's flash current, the check at its active current.

LoRaWAN class A unicast (`unicast:`, `iotsim.ota.unicast`): the nodes poll with empty uplinks and the network
answers each poll it heard with one fragment in RX2, instead of the session (`only`, the baseline) or after it
for the nodes that could not decode it (`repair`). The polls are uplinks of the policy's run (`Polls`); which
of them the network heard comes from that run (`poll_fates`, `Polls.verdicts`), in passes until the
fragments answer exactly those (`settle_polls`).

From its activation a node's windows take the new model's inference time on its MCU (`model_steps`).

Not modelled yet (stated in the run's notes): LoRaWAN nodes hear only their strongest gateway's copy of each
fragment, and a unicast answer goes through the node's strongest gateway whichever gateway heard its poll; BLE
and Wi-Fi transfers do not delay other nodes' uplinks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from iotsim.engine.fleet import GroupPlan, Verdicts, group_rng
from iotsim.errors import InputError
from iotsim.link.base import GatewaySchedule, Messages
from iotsim.network.fate import Fate
from iotsim.ota import delta, fuota, unicast
from iotsim.ota.apply import apply_cost
from iotsim.ota.delta import UpdatePayload
from iotsim.ota.rollout import Rollout, time_to_share
from iotsim.policies.base import MessageKind
from iotsim.scenario.model import MAX_ITEMS_PER_GROUP

STREAM_UPDATES = 7
"""Random stream of the updates' fragment receptions (engine.fleet numbers the others)."""
STREAM_UPDATE_CHECKS = 13
"""Random stream of the nodes whose applied update fails its checks (`check_failure`)."""
LISTEN_CHUNK_S = 60.0
"""An update's radio time is drawn from the battery in chunks of this length (each at its end), so a node
that dies while it listens dies within a minute of the time its energy runs out."""


@dataclass
class UpdateOutcome:
    """One update's session and rollout. Per-node arrays follow `nodes` (global node indices)."""

    index: int
    spec: object  # the scenario's Update
    model: object  # the new model
    group_indices: list[int]
    payload: UpdatePayload
    session: object  # the link's plan: iotsim.ota.fuota.SessionPlan (LoRaWAN) or an iotsim.ota.star transfer
    start_s: float
    nodes: np.ndarray  # the nodes in the multicast group
    rollout: Rollout
    skipped: int  # nodes of the groups left out: they did not run the base model when it started
    listen_energy_j: np.ndarray | None = None  # per node: battery energy of its radio for the update (above sleep)
    # per node: applying the update once received (iotsim.ota.apply): flash erase and program time, and the
    # CPU's work (patching a delta, SHA-256, the signature check; 0 where its MCU gives no figures); their
    # battery energy above sleep
    flash_s: np.ndarray | None = None
    cpu_s: np.ndarray | None = None
    apply_energy_j: np.ndarray | None = None
    apply_missing: tuple[str, ...] = ()  # MCUs of the update's nodes whose profiles lack figures
    poll_energy_j: np.ndarray | None = None  # per node: battery energy of its class A unicast polls (frames of the run)
    rolled_back: np.ndarray | None = None  # per node: it had the update but the new image failed its checks

    @property
    def unicast(self):
        """The class A unicast phase (iotsim.ota.unicast.Unicast), or None."""
        return getattr(self.session, "unicast", None)

    @property
    def activated_s(self) -> np.ndarray:
        """Per node of `nodes`: when it runs the new model, received and applied (NaN: never, or rolled back)."""
        t = self.start_s + self.rollout.done_s + self.flash_s + self.cpu_s
        return t if self.rolled_back is None else np.where(self.rolled_back, np.nan, t)

    @property
    def updated(self) -> np.ndarray:
        """Per node of `nodes`: it runs the new model by the end (received, applied and checked)."""
        return ~np.isnan(self.activated_s)

    def time_to_share_s(self, share: float) -> float:
        """Time after the start until `share` of the nodes run the new model (inf if never)."""
        return time_to_share(self.activated_s - self.start_s, share)


def plan_updates(scenario, plans: list[GroupPlan], link, cache: dict,
                 heard: dict | None = None) -> list[UpdateOutcome]:
    """Every update's session and rollout, in order of start. `heard`: per update index, what a policy's run
    made of its class A unicast polls (`Polls.verdicts`); without it the polls are heard with their fading
    probability."""
    from iotsim.scenario.loader import model_before, update_before, update_groups
    from iotsim.tinyml.runtime import load_model, model_key

    def model(ref):
        key = ("model", model_key(ref))
        if key not in cache:
            cache[key] = load_model(ref, require_int8=True)
        return cache[key]

    startup_s = np.concatenate([np.full(p.n_nodes, p.board.radio.startup_time_s) for p in plans])
    offsets = np.cumsum([0] + [p.n_nodes for p in plans])
    # per node: activation time of the model it runs and the index of the update (-1: its own)
    running = np.full(int(offsets[-1]), -1, dtype=np.int64)
    since = np.zeros(int(offsets[-1]))
    outcomes: list[UpdateOutcome] = []
    order = sorted(range(len(scenario.updates)), key=lambda j: (scenario.updates[j].at, j))
    for j in order:
        spec = scenario.updates[j]
        groups = [scenario.fleet.index(g) for g in update_groups(scenario, spec)]
        base = model(model_before(scenario, j, scenario.fleet[groups[0]]))
        new = model(spec.model)
        key = ("update payload", str(base.path), str(new.path), spec.mode, spec.compression)
        if key not in cache:  # a run with class A unicast plans its updates once per policy and pass
            cache[key] = delta.update_payload(base.path.read_bytes(), new.path.read_bytes(), spec.mode,
                                              spec.compression)
        payload = cache[key]
        members = np.concatenate([np.arange(offsets[g], offsets[g + 1]) for g in groups])
        base_update = update_before(scenario, j, scenario.fleet[groups[0]])
        if spec.mode == "full":
            eligible = members
        else:  # a delta applies to the base model only, running when the session starts
            ok = (running[members] == base_update) & (since[members] <= spec.at)
            eligible = members[ok]
        keep = np.isin(members, eligible)
        rx = np.concatenate([plans[g].rx_power_dbm for g in groups])[keep]
        sf = np.concatenate([plans[g].sf for g in groups])[keep]
        session, rollout = link.plan_update(payload.payload_bytes, spec, rx, startup_s[eligible],
                                            group_rng(scenario.seed, STREAM_UPDATES, j), sf=sf,
                                            horizon_s=float(scenario.duration) - float(spec.at),
                                            verdicts=(heard or {}).get(j))
        out = UpdateOutcome(j, spec, new, groups, payload, session, float(spec.at), eligible, rollout,
                            int(members.size - eligible.size))
        if out.unicast is not None and out.unicast.polls > MAX_ITEMS_PER_GROUP:
            raise InputError(f"update {j}'s class A unicast would put {out.unicast.polls:,} polls on air, more than the "
                             f"{MAX_ITEMS_PER_GROUP:.0e} uplinks a run holds: set poll_period (the nodes poll as often "
                             "as their duty cycle allows without it), or fewer nodes", field=f"updates.{j}.poll_period")
        apply_costs(out, plans, offsets)
        failure = float(getattr(spec, "check_failure", 0.0))
        if failure > 0:  # an image that fails its checks: the node keeps its old slot (A/B rollback)
            fails = group_rng(scenario.seed, STREAM_UPDATE_CHECKS, j).random(eligible.size) < failure
            out.rolled_back = out.rollout.decoded & fails
        prev = outcomes[-1] if outcomes else None
        if prev is not None and prev.start_s + prev.session.busy_s(prev.rollout) > out.start_s:
            raise InputError(f"update {j} starts at {out.start_s:.0f} s while update {prev.index} is still being sent "
                             f"(until {prev.start_s + prev.session.busy_s(prev.rollout):.0f} s): the gateways send one "
                             "update at a time; start it later", field=f"updates.{j}.at")
        got = ~np.isnan(out.activated_s)
        running[eligible[got]] = j
        since[eligible[got]] = out.activated_s[got]
        outcomes.append(out)
    return outcomes


def run_updates(scenario, plans: list[GroupPlan], link, nodes, cache: dict,
                heard: dict | None = None) -> list[UpdateOutcome]:
    """Every update's session and rollout (`plan_updates`, `heard` as there) with each node's energy for it
    (listening, applying, polling), and the link's `gateway_schedule` set to the gateways' transmissions of
    them."""
    outcomes = plan_updates(scenario, plans, link, cache, heard)
    for u in outcomes:
        u.listen_energy_j, u.apply_energy_j = update_energy_j(u, nodes)
        u.poll_energy_j = poll_energy_j(u, nodes)
    link.gateway_schedule = gateway_schedule(outcomes)
    return outcomes


def apply_costs(out: UpdateOutcome, plans: list[GroupPlan], offsets: np.ndarray) -> None:
    """Set each node's time to apply the update (flash, CPU work) from its group's MCU."""
    n = out.nodes.size
    out.flash_s, out.cpu_s = np.zeros(n), np.zeros(n)
    missing = []
    group_of = np.searchsorted(offsets, out.nodes, side="right") - 1
    decoded = out.rollout.decoded
    for g in out.group_indices:
        mcu = plans[g].board.mcu
        cost = apply_cost(out.payload.payload_bytes, out.payload.new_model_bytes, out.payload.mode, mcu,
                          out.payload.compression)
        mine = (group_of == g) & decoded
        if cost is None or not cost.measured:
            missing.append(mcu.name)
        if cost is not None:
            out.flash_s[mine], out.cpu_s[mine] = cost.flash_s, cost.cpu_s
    out.apply_missing = tuple(dict.fromkeys(missing))


def update_energy_j(out: UpdateOutcome, nodes) -> tuple[np.ndarray, np.ndarray]:
    """Per node of an update: battery energy (above sleep) of receiving it, its radio's times at their
    powers, and of applying it, flash time at the MCU's flash power and the check at its active power.
    (For an MCU that is active all the time the ledger moves the applying time from active to flash
    instead, so there the battery bursts overstate it by the active power over under a second; see
    stages.charge_ledger.)"""
    n = out.nodes
    rx, tx, standby = powers_above_sleep(nodes, "radio", ("rx", "tx", "standby"))
    flash, active = powers_above_sleep(nodes, "mcu", ("flash", "active"))
    return (out.rollout.radio_energy_j(rx[n], tx[n], standby[n]),
            out.flash_s * flash[n] + out.cpu_s * active[n])


def poll_energy_j(out: UpdateOutcome, nodes) -> np.ndarray:
    """Per node of an update: battery energy (above sleep) of its class A unicast polls, as their frames are
    charged (at the radio's TX power state of the profile; the run's ledger has them at each frame's own)."""
    energy = np.zeros(out.nodes.size)
    u = out.unicast
    if u is None:
        return energy
    tx, rx, standby = powers_above_sleep(nodes, "radio", ("tx", "rx", "standby"))
    k = out.nodes[u.node_pos]
    per_poll = u.poll_radio_s[:, 0] * tx[k] + u.poll_radio_s[:, 1] * rx[k] + u.poll_radio_s[:, 2] * standby[k]
    energy[u.node_pos] = u.polls_per_node * per_poll
    return energy


@dataclass(frozen=True)
class Polls:
    """The updates' class A unicast polls as uplinks of a run without payload (kind `poll`, in (node, ready time)
    order), with per poll its update's place in the updates, its node's place in the update's unicast phase and
    its number on the node's grid."""

    messages: Messages
    which: np.ndarray
    pos: np.ndarray
    number: np.ndarray

    @staticmethod
    def of(updates: list[UpdateOutcome], plans: list[GroupPlan]) -> "Polls | None":
        """The polls of `updates` (None without any)."""
        node, ready, which, pos_all, number = [], [], [], [], []
        for i, u in enumerate(updates):
            if u.unicast is None:
                continue
            pos, t, j = u.unicast.polls_of(numbers=True)
            node.append(u.nodes[u.unicast.node_pos[pos]])
            ready.append(u.start_s + t)
            which.append(np.full(pos.size, i, np.int64))
            pos_all.append(pos)
            number.append(j)
        if not node:
            return None
        node, ready = np.concatenate(node).astype(np.int64), np.concatenate(ready)
        order = np.lexsort((ready, node))
        offsets = np.cumsum([0] + [p.n_nodes for p in plans])
        n = node.size
        messages = Messages(node[order], ready[order], np.zeros(n, np.int64), np.full(n, MessageKind.POLL, np.int8),
                            np.full(n, -1, np.int64),
                            (np.searchsorted(offsets, node[order], side="right") - 1).astype(np.int64))
        return Polls(messages, np.concatenate(which)[order], np.concatenate(pos_all)[order],
                     np.concatenate(number)[order])

    def verdicts(self, updates: list[UpdateOutcome],
                 fates: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict[int, unicast.PollVerdicts]:
        """Per update index with a class A unicast: what a run made of each of these polls (`fates`: `poll_fates`'s
        arrays, in any order): heard by the network server or not, and when the heard transmission ended (from the
        update's start)."""
        want = self.messages
        node, ready, ended = fates
        order = np.lexsort((ready, node))
        if not (np.array_equal(node[order], want.node) and np.array_equal(ready[order], want.ready_s)):
            raise AssertionError("the run's polls are not the unicast schedule's")
        ended = ended[order]
        out = {}
        for i, u in enumerate(updates):
            sel = self.which == i
            if u.unicast is not None:
                out[u.index] = unicast.PollVerdicts(self.pos[sel], self.number[sel], ~np.isnan(ended[sel]),
                                                    ended[sel] - u.start_s, want.ready_s[sel] - u.start_s)
        return out


def poll_fates(messages: Messages, tx) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A run's class A unicast polls (its `messages` and frames `tx`, fates decided): per poll its node, its
    ready time and when the transmission the network server heard ended (NaN: not heard). A delivered frame's
    `busy_s` runs from its first attempt to the end of the one that got through (the closed loop stops there;
    one attempt elsewhere)."""
    mine = np.flatnonzero(messages.kind == MessageKind.POLL)
    ended = np.full(len(messages), np.nan)
    hit = np.flatnonzero(tx.fate == Fate.DELIVERED)
    hit = hit[messages.kind[tx.message[hit]] == MessageKind.POLL]
    first, at = np.unique(tx.message[hit], return_index=True)  # each poll's first delivered frame
    row = hit[at]
    ended[first] = tx.start_s[row] + (tx.busy_s[row] if tx.busy_s is not None else tx.airtime_s[row])
    return messages.node[mine], messages.ready_s[mine], ended[mine]


MAX_POLL_PASSES = 40
"""Class A unicast: a policy's run is repeated with the fragments answering its polls until these settle."""


def settle_polls(first: list[UpdateOutcome], replan, run):
    """A policy's run when its model updates go out by class A unicast: the network answers the polls its run
    heard.

    The fragments depend on the polls' fates, and the traffic on the fragments (a gateway sending one hears
    nothing; a node that has decoded stops polling and runs the new model), so the run goes in passes: pass 0
    takes each poll as heard with its fading probability (`first`: the updates so planned); each later pass
    plans the updates from what the previous pass's run made of the polls (`replan(heard)`), until the run
    (`run(updates)` -> (outcome, `Polls.verdicts`)) hears exactly the polls the fragments answered, or
    MAX_POLL_PASSES. That fixed point is the closed loop's answer: a link's outcome up to a time depends on the
    traffic up to then only (iotsim.link.draws) and a poll's fragment comes after it, so each pass agrees with
    the one before up to a later time than that one did. Returns the last pass's outcome, with its updates and
    (passes, polls without a verdict, polls whose verdict differs, the earliest time such a poll was on air)
    set."""
    ups, heard = first, None
    for k in range(MAX_POLL_PASSES):
        if k:
            ups = replan(heard)
        outcome, got = run(ups)
        missing = differ = 0
        settled_until = np.inf  # the earliest time a poll that differs was on air (from the run's start)
        for u in ups:
            v = got.get(u.index)
            if v is None:
                continue
            m, d, first = v.agrees(heard[u.index]) if heard is not None else (v.pos.size, 0, u.start_s)
            missing, differ = missing + m, differ + d
            settled_until = min(settled_until, u.start_s + first)
        outcome.updates, outcome.poll_passes = ups, (k + 1, missing, differ, settled_until)
        if missing == differ == 0 or k + 1 == MAX_POLL_PASSES:
            return outcome
        heard, outcome = got, None  # (the next pass's run need not share memory with this one)


def poll_notes(outcomes) -> list[str]:
    """Per policy with class A unicast polls: how many the link put on air and delivered, and whether the
    fragments answer exactly the polls the run heard (the passes of `iotsim.engine.run.simulate_with_polls`)."""
    notes = []
    for out in outcomes:
        if out.poll_passes is None:
            continue
        polls, delivered = int(out.tally.polls.sum()), int(out.tally.polls_delivered.sum())
        passes, missing, differ, until = out.poll_passes
        settled = (f"the fragments answer exactly the polls the run heard (settled after {passes} passes)"
                   if missing == differ == 0 else
                   f"not settled after {passes} passes: the fragments answer exactly the polls the run heard before "
                   f"{until:,.0f} s ({until / 86400:.2f} d); after it {differ:,} polls' fates differ "
                   f"from those the fragments answered and {missing:,} had none (the fragments follow the pass "
                   "before's run)")
        notes.append(f"Unicast polls, policy {out.policy.name}: {polls:,} on air, "
                     f"{delivered / max(polls, 1):.1%} delivered by the link (with the other uplinks); {settled}.")
    return notes


def update_notes(updates: list[UpdateOutcome]) -> list[str]:
    """The run's notes on its model updates: the model used and what it leaves out."""
    if not updates:
        return []
    multicast = any(isinstance(u.session, fuota.SessionPlan) for u in updates)
    repaired = any(isinstance(u.session, fuota.SessionPlan) and u.session.unicast is not None for u in updates)
    by_unicast = repaired or any(isinstance(u.session, unicast.UnicastSession) for u in updates)
    over_star = any(not isinstance(u.session, (fuota.SessionPlan, unicast.UnicastSession)) for u in updates)
    notes = [] if not multicast else [
        "Model updates (FUOTA): one class C multicast session per update on its data rate and frequency (default the "
        "region's RX2), fragments per LoRa Alliance TS004-1.0.0 with its parity-matrix FEC, one every time on air / "
        "duty cycle of the frequency's sub-band; a fragment reaches a node with the probability that its Rayleigh-faded "
        "power from the node's strongest gateway clears the node's sensitivity (times 1 - fragment_loss); a node "
        "decodes when its fragments span the block, runs the new model from then (its windows' on-device verdicts) "
        "and listens until then (RX current, charged to the ledger). Deltas: detools sequential patches.",
        "Updates and uplinks: every gateway sends every session; while it sends a fragment it receives no uplink (half "
        "duplex), class A answers do not overlap the fragments, and none goes out on the session's sub-band during "
        "the session (it spends that sub-band's duty cycle).",
        "Updates, not modelled yet: " + ("" if repaired else "no unicast repair of nodes that could not decode "
                                         "(`unicast: repair` adds it); ")
        + "other gateways' copies of a fragment are ignored; a node's own uplinks do not interrupt its reception of "
        "fragments.",
    ]
    if by_unicast:
        notes.append(
            "Updates by LoRaWAN class A unicast (iotsim.ota.unicast): a node polls with empty uplinks, as often as its "
            "uplink sub-bands' duty cycles allow (or every poll_period), and the network answers a poll with one "
            "DataFragment in RX2 through the node's strongest gateway when that gateway's sub-band has duty cycle left "
            "(the first poll it can answer gets the next fragment); a poll is heard and a fragment received with the "
            "probability that its Rayleigh-faded power clears the sensitivity; a repair sends the coded fragments the "
            "session did not; the node polls until it can decode or the run ends. The polls are uplinks of every "
            "policy's run (kind poll): on air with the other uplinks, under the duty cycle, charged as frames; each "
            "fragment is in its gateway's transmit schedule (half duplex: the gateway receives nothing meanwhile, and "
            "class A answers do not overlap it) and holds that gateway's RX2 sub-band for its off-time (class A "
            "answers on the band through that gateway wait: the fragments come first). The network answers the polls "
            "the run heard (timed from the heard frame), so each policy has its own rollout: the run goes in passes "
            "until the fragments answer exactly the polls it heard (the notes say after how many). Not modelled: "
            "the answer goes through the node's strongest gateway whichever gateway heard the poll.")
    if over_star:
        notes.append(
            "Model updates over the node's own link: each gateway sends the update to its nodes one after another "
            "(BLE: LL packets with L2CAP and ATT headers, packets_per_event per connection event; Wi-Fi: MSDUs with "
            "DIFS, backoff, SIFS and ACK), every attempt a Rayleigh draw as for uplinks, a packet out of attempts ends "
            "the node's transfer; the node's radio time is charged to the ledger. Not modelled: the transfers' effect "
            "on other nodes' uplinks.")
    notes.append("Updates applied (iotsim.ota.apply): a node that has the whole update writes the received block and "
                 "the new model (a delta patched into the inactive slot of an A/B pair) into flash, erasing whole pages "
                 "(the MCU profile's flash_write), checks the model's SHA-256 and its ECDSA P-256 signature (the "
                 "patch, the hash and the software signature check each measured on the emulated core, priced by the "
                 "MCU's cycle model; a crypto accelerator is not modelled), flips the slot record and runs the new "
                 "model from then on, without a reboot (the model is data). An image fails its checks only where the "
                 "update's check_failure draws the node (the fragments' MIC drops corrupted ones): it keeps the old "
                 "slot and model (A/B rollback) and does not ask again. From its activation a node's windows take the new "
                 "model's inference time on its MCU (the messages are ready after it, the MCU is active for it).")
    missing = sorted({m for u in updates for m in u.apply_missing})
    if missing:
        notes.append("Updates: no flash figures or no measured CPU cost (patch, hash, signature) for MCU(s) "
                     f"{', '.join(missing)}: that part of applying an update costs nothing there.")
    for u in updates:
        notes.append(f"Update {u.index} ({u.model.name}): {u.payload.mode} payload {u.payload.payload_bytes:,} B "
                     f"({u.payload.new_model_bytes:,} B model), {u.session.describe()}; "
                     f"{int(u.updated.sum()):,} of {u.nodes.size:,} nodes updated, {u.skipped:,} left out "
                     "(not running its base model)"
                     + ("." if u.rolled_back is None else
                        f", {int(u.rolled_back.sum()):,} rolled back (the image failed its checks: check_failure "
                        f"{u.spec.check_failure:g}; they keep the old model and do not ask again)."))
    return notes


def gateway_schedule(updates: list[UpdateOutcome]) -> GatewaySchedule | None:
    """The gateways' transmissions of the updates: every gateway's multicast fragments of the sessions, with
    the windows in which they hold their sub-band's duty cycle (from the first fragment to one interval after
    the last one's start), and each class A unicast fragment on the gateway that sent it. Updates do not
    overlap (`plan_updates` refuses that), and a repair's unicast comes after its session."""
    starts, ends, freqs, gws, holds = [], [], [], [], []
    for u in sorted(updates, key=lambda x: (x.start_s, x.index)):
        s = u.session
        if isinstance(s, fuota.SessionPlan):
            t = u.start_s + np.arange(s.fragments.total) * s.fragment_interval_s
            starts.append(t)
            ends.append(t + s.fragment_airtime_s)
            freqs.append(np.full(t.shape, s.frequency_hz))
            gws.append(np.full(t.shape, -1, np.int64))
            holds.append((s.frequency_hz, float(t[0]), float(t[-1] + s.fragment_interval_s), -1))
        uc = u.unicast
        if uc is not None and uc.send_s is not None and uc.send_s.size:
            t = u.start_s + uc.send_s
            starts.append(t)
            ends.append(t + uc.fragment_airtime_s)
            freqs.append(np.full(t.shape, uc.frequency_hz))
            gws.append(uc.send_gw)
            # each fragment spends its gateway's sub-band for its off-time (airtime / duty cycle): class A
            # answers (ACKs, MAC commands) on that band wait for it, as the fragments waited for the band
            off = uc.fragment_airtime_s / uc.duty_cycle if uc.duty_cycle < 1.0 else uc.fragment_airtime_s
            holds.extend((uc.frequency_hz, float(a0), float(a0 + off), int(g)) for a0, g in zip(t, uc.send_gw))
    if not starts:
        return None
    start, end, freq, gw = (np.concatenate(x) for x in (starts, ends, freqs, gws))
    order = np.argsort(start, kind="stable")
    return GatewaySchedule(start[order], end[order], freq[order], tuple(holds), gw[order])


def powers_above_sleep(nodes, component: str, states: tuple[str, ...]) -> list[np.ndarray]:
    """Per node: battery power of a component in each of `states`, above the component asleep."""
    from iotsim.energy.ledger import SLOT_INDEX

    sleep = nodes.input_w[:, SLOT_INDEX[(component, "sleep")]]
    return [nodes.input_w[:, SLOT_INDEX[(component, s)]] - sleep for s in states]


def activation_s(u: UpdateOutcome, plan: GroupPlan, start: int) -> np.ndarray:
    """Per node of `plan` (whose first node is the run's node `start`): when it runs update `u`'s model (NaN:
    never)."""
    local = u.nodes - start
    mine = (local >= 0) & (local < plan.n_nodes)
    act = np.full(plan.n_nodes, np.nan)
    act[local[mine]] = u.activated_s[mine]
    return act


def effective_verdicts(plans: list[GroupPlan], updates: list[UpdateOutcome],
                       verdicts: list[Verdicts] | None = None) -> list[Verdicts]:
    """Per group: the verdicts of the model each node runs when each window ends (the cloud's unchanged), the
    updates applied in order over `verdicts` (default: each plan's own)."""
    out = []
    start = 0
    for p, v in zip(plans, verdicts if verdicts is not None else [p.verdicts for p in plans]):
        dev, conf = v.device_positive.copy(), v.device_confidence.copy()
        window_node = np.repeat(np.arange(p.n_nodes), p.n_windows)
        window_end = p.window_end_s(np.arange(int(p.window_offset[-1])))
        for u in updates:  # in order of start: a later update's model replaces an earlier one's
            if p.index not in u.group_indices:
                continue
            after = window_end >= activation_s(u, p, start)[window_node]  # NaN: never
            if not after.any():
                continue
            new = p.windows.verdicts(u.model, None)
            dev[after] = new.device_positive[after]
            conf[after] = new.device_confidence[after]
        out.append(Verdicts(dev, conf, v.cloud_positive, v.pool_device_positive))
        start += p.n_nodes
    return out


def model_steps(plans: list[GroupPlan], updates: list[UpdateOutcome]) -> list[GroupPlan]:
    """The plans with each node's inference time per window as the models it runs give it: per update to a
    group, its nodes' activation times and the new model's inference time on the group's MCU
    (`GroupPlan.model_steps`, for each window's own time: a message is ready after it), and per node the mean
    over its windows of the run (`GroupPlan.node_inference_s`, for the MCU's active time)."""
    from iotsim.engine.fleet import inference_cost

    out, start = [], 0
    for p in plans:
        steps, before = [], p.model
        for u in updates:  # in order of start: a later update's model replaces an earlier one's
            if p.index in u.group_indices:
                steps.append((activation_s(u, p, start), *inference_cost(u.model, p.board.mcu, before), u.model.name))
                before = u.model
        start += p.n_nodes
        if not steps:
            out.append(p)
            continue
        # windows per node that end at or after a time: c(a) = windows - those ending before a (NaN: none)
        after = [p.n_windows - p.windows_ending_before(step[0]) for step in steps]
        total = np.zeros(p.n_nodes)
        runs_base = p.n_windows.astype(np.float64)
        for i, (_, inference_s, *_) in enumerate(steps):
            later = after[i + 1:]
            # the windows of step i: from its activation until a later update's (the earliest) takes over
            until = np.max(later, axis=0) if later else np.zeros(p.n_nodes, np.int64)
            count = np.maximum(after[i] - until, 0)
            total += count * inference_s
            runs_base -= count
        total += runs_base * p.inference_time_s
        mean = np.divide(total, p.n_windows, out=np.full(p.n_nodes, p.inference_time_s), where=p.n_windows > 0)
        out.append(dataclasses.replace(p, model_steps=tuple(steps), node_inference_s=mean))
    return out


def updated_plans(plans: list[GroupPlan], updates: list[UpdateOutcome]) -> list[GroupPlan]:
    """The plans as the nodes run the updates' models: each window's on-device verdict (`effective_verdicts`)
    and inference time (`model_steps`)."""
    return [dataclasses.replace(p, verdicts=v) for p, v in zip(model_steps(plans, updates),
                                                               effective_verdicts(plans, updates))]


@dataclass
class Listening:
    """Time outside frames, per entry: a node receiving and applying an update (an entry per node and
    update), spread evenly over [from_s, until_s) (applying takes under a second: spread with the rest)."""

    node: np.ndarray
    from_s: np.ndarray
    until_s: np.ndarray
    rx_s: np.ndarray
    tx_s: np.ndarray
    standby_s: np.ndarray
    flash_s: np.ndarray  # applying the update: flash erase and program
    cpu_s: np.ndarray  # applying the update: patching, hashing, the signature check (or a federated round's training)
    energy_j: np.ndarray  # battery energy of all those times

    @staticmethod
    def of(updates: list[UpdateOutcome]) -> "Listening":
        """The updates' radio and apply time (their `listen_energy_j` and `apply_energy_j` set)."""
        def cat(get):
            return np.concatenate([np.asarray(get(u), dtype=np.float64) for u in updates]) if updates else np.zeros(0)

        return Listening(
            np.concatenate([u.nodes for u in updates]).astype(np.int64) if updates else np.zeros(0, np.int64),
            cat(lambda u: u.start_s + u.rollout.radio_from_s), cat(lambda u: u.start_s + u.rollout.radio_until_s),
            cat(lambda u: u.rollout.rx_s), cat(lambda u: u.rollout.tx_s), cat(lambda u: u.rollout.standby_s),
            cat(lambda u: u.flash_s), cat(lambda u: u.cpu_s),
            cat(lambda u: u.listen_energy_j + u.apply_energy_j))

    @staticmethod
    def concat(parts: list["Listening"]) -> "Listening":
        """The entries of several in one."""
        names = [f.name for f in dataclasses.fields(Listening)]
        return Listening(*[np.concatenate([getattr(p, n) for p in parts]) for n in names])

    def alive_share(self, lifetime_s: np.ndarray) -> np.ndarray:
        """Per entry: the share of its span the node lived through."""
        span = self.until_s - self.from_s
        lived = np.clip(lifetime_s[self.node] - self.from_s, 0.0, span)
        return np.divide(lived, span, out=np.ones_like(span), where=span > 0)

    def bursts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(node, time, energy) as battery bursts: each span in chunks of LISTEN_CHUNK_S, each chunk's share of
        the entry's energy at its end; sorted by node, then time."""
        span = self.until_s - self.from_s
        energy = self.energy_j
        k = np.maximum(np.ceil(span / LISTEN_CHUNK_S), 1).astype(np.int64)
        node = np.repeat(self.node, k)
        first = np.repeat(np.cumsum(k) - k, k)
        i = np.arange(node.size) - first  # chunk number within its entry
        length = np.repeat(span, k)
        end = np.minimum((i + 1) * LISTEN_CHUNK_S, length)
        share = np.divide(end - np.minimum(i * LISTEN_CHUNK_S, length), length, out=np.ones(node.size),
                          where=length > 0)
        t = np.repeat(self.from_s, k) + end
        order = np.lexsort((t, node))
        return node[order], t[order], (share * np.repeat(energy, k))[order]


__all__ = ["Listening", "Polls", "UpdateOutcome", "effective_verdicts", "gateway_schedule", "model_steps", "plan_updates",
           "run_updates", "update_energy_j", "update_notes", "updated_plans"]
