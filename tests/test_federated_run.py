"""Federated rounds in a run (scenario `federated:`): the rounds repair a broken model measured on held-out
windows, the server averages exactly the updates that reached it by the deadline, the nodes' verdicts switch
when they apply the new layers, training and the pushes are charged to the ledger, the traffic carries the
updates' real bytes, runs are byte-identical, and bad input is refused."""

from pathlib import Path

import numpy as np
import pytest

from iotsim.engine import run_scenario
from iotsim.engine.federated import STREAM_FEDERATED_SGD
from iotsim.engine.fleet import group_rng
from iotsim.energy.ledger import SLOT_INDEX
from iotsim.errors import InputError
from iotsim.policies import MessageKind
from iotsim.results.tables import federated_table, summary_table
from iotsim.scenario import load_scenario_text
from iotsim.tinyml.federated import fedavg, head_from_tflite, write_int8_head

ZOO = Path(__file__).resolve().parents[1] / "iotsim" / "zoo"

SCENARIO = """\
name: federated
seed: 3
duration: 3d
fleet:
  - group: soil
    count: 60
    device: nrf52840_sx1262_2xaa
    placement: {{kind: uniform, area_m: [1200, 1200]}}
    workload: {{signal: farm.soil_climate, events_per_day: 2}}
    model: {model}
network:
  propagation: {{pl_d0_db: 100, d0_m: 40, exponent: 2.08, shadowing_sigma_db: 0}}
  gateways:
    - {{id: gw1, position_m: [600, 600]}}
  cloud: {{model: farm_soil_int8}}
policies: [cloud_offload, on_device]
{federated}
outputs: {{plots: false, report: none}}
"""
ROUNDS = ("federated: {start: 1d, every: 12h, rounds: 3, participation: 1.0, deadline: 2h, data_rate: 5, epochs: 5, "
          "learning_rate: 0.5}")


def swapped_model(folder: Path) -> Path:
    """The farm model with its last layer's two classes swapped: wrong on almost every window."""
    head = head_from_tflite(ZOO / "farm_soil_int8.tflite", 1)
    head.weights[0], head.biases[0] = head.weights[0][:, ::-1].copy(), head.biases[0][::-1].copy()
    return write_int8_head(ZOO / "farm_soil_int8.tflite", head, folder / "farm_swapped.tflite")


def _run(model, federated=ROUNDS):
    return run_scenario(load_scenario_text(SCENARIO.format(model=model, federated=federated)))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    model = swapped_model(tmp_path_factory.mktemp("models"))
    return _run(model), _run(model, ""), model


def test_rounds_repair_a_broken_model_on_held_out_windows(runs):
    fed, _, _ = runs
    table = federated_table(fed)
    for policy in ("cloud_offload", "on_device"):
        acc = table[table.policy == policy].accuracy.to_numpy()
        assert acc[0] < 0.1 and acc[-1] > 0.8  # before any round: swapped; after three rounds: repaired
        assert acc[1] > acc[0] + 0.5  # the first round does most of the repair
    fo = fed.federated[0]
    assert fo.passes == 4 and fo.consistent  # one pass per round, then the final run, agreeing
    assert all(r.push is not None and r.push.rollout.decoded.all() for r in fo.rounds)


def test_the_server_averages_exactly_the_updates_on_time(runs):
    """Each round's layers are FedAvg of the previous ones over the participants whose update arrived by the
    deadline, with the round's own minibatch stream; the updates are the participants' messages."""
    fed, _, _ = runs
    spec = fed.scenario.federated
    for fo, out in zip(fed.federated, fed.outcomes):
        head = head_from_tflite(fed.federated_plan.model.path, 1)
        ups = np.flatnonzero(out.messages.kind == MessageKind.MODEL_UPDATE)
        assert ups.size == sum(r.plan.nodes.size for r in fo.rounds)
        for r in fo.rounds:
            rp = r.plan
            mine = ups[np.isin(out.messages.node[ups], rp.nodes) & (np.abs(out.messages.ready_s[ups] - rp.start_s)
                                                                     < spec.deadline)]
            on_time = out.message_delivered[mine] & (out.message_arrival_s[mine] <= rp.deadline_s)
            np.testing.assert_array_equal(on_time, r.delivered)
            data = [d for d, ok in zip(rp.data, r.delivered) if ok]
            head = fedavg(head, data, epochs=spec.epochs, batch_size=spec.batch_size, learning_rate=spec.learning_rate,
                          rng=group_rng(fed.scenario.seed, STREAM_FEDERATED_SGD, rp.index))
            for a, b in zip(head.weights + head.biases, r.head.weights + r.head.biases):
                np.testing.assert_array_equal(a, b)


def test_the_updates_carry_their_real_bytes(runs):
    fed, _, _ = runs
    plan = fed.federated_plan
    # one dense layer of 32 x 2: 66 int8 values + 2 float32 scales up; 64 int8 weights + 2 int32 biases down
    assert (plan.weights_bytes, plan.push_bytes) == (66 + 8, 64 + 8)
    out = fed.outcomes[1]
    ups = np.flatnonzero(out.messages.kind == MessageKind.MODEL_UPDATE)
    assert (out.messages.app_bytes[ups] == plan.weights_bytes).all()
    assert all(r.push.payload.payload_bytes == plan.push_bytes for r in fed.federated[1].rounds)
    # each update's time on air: its frames' attempts, as the packets of the final run give them
    tx = out.tx
    for r in fed.federated[1].rounds:
        mine = ups[np.isin(out.messages.node[ups], r.plan.nodes)
                   & (np.abs(out.messages.ready_s[ups] - r.plan.start_s) < fed.scenario.federated.deadline)]
        expected = [tx.tx_s[tx.message == m].sum() for m in mine]
        np.testing.assert_allclose(r.upload_airtime_s, expected, rtol=1e-12)
        assert (r.upload_airtime_s > 0).all()


def test_nodes_switch_to_the_new_layers_when_they_apply_them(runs):
    """Under on_device a window becomes an event message exactly when the model the node runs at the window's
    end says so: the swapped model before the first push is applied, then each round's model."""
    fed, _, _ = runs
    out, plan = fed.outcomes[1], fed.plans[0]
    flat = np.arange(int(plan.window_offset[-1]))
    end = plan.window_end_s(flat)
    node = np.repeat(np.arange(plan.n_nodes), plan.n_windows)
    expected = plan.verdicts.device_positive.copy()
    changed = 0
    for r in fed.federated[1].rounds:
        act = np.full(plan.n_nodes, np.inf)
        act[r.push.nodes] = r.push.activated_s
        after = end >= act[node]
        new = plan.windows.verdicts(r.push.model, None).device_positive
        changed += int((expected[after] != new[after]).sum())
        expected[after] = new[after]
    ev = out.messages.kind == MessageKind.EVENT
    sent = np.zeros(flat.size, bool)
    sent[out.messages.window[ev]] = True
    np.testing.assert_array_equal(sent, expected)
    assert changed > 500  # the pushes changed many verdicts


def test_training_and_the_pushes_are_charged_to_the_ledger(runs):
    """The MCU's active time grows by each node's training time plus the pushes' integrity checks, and its
    flash time by the pushes' flash work, exactly (the same windows are sampled and inferred in both runs)."""
    fed, plain, _ = runs
    active, flash = SLOT_INDEX[("mcu", "active")], SLOT_INDEX[("mcu", "flash")]
    n = fed.plans[0].n_nodes
    train = np.zeros(n)
    check = np.zeros(n)
    flash_s = np.zeros(n)
    fo = fed.federated[0]
    for r in fo.rounds:
        np.add.at(train, r.plan.nodes, r.plan.train_s)
        np.add.at(check, r.push.nodes, r.push.cpu_s)
        np.add.at(flash_s, r.push.nodes, r.push.flash_s)
    assert train.min() > 0 and check.min() > 0 and flash_s.min() > 0
    a, b = fed.outcomes[0].ledger.time_s, plain.outcomes[0].ledger.time_s
    np.testing.assert_allclose(a[:, active] - b[:, active], train + check, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a[:, flash] - b[:, flash], flash_s, rtol=1e-9, atol=1e-12)
    # and the table reports the training energy at the MCU's active power above sleep
    table = federated_table(fed)
    rows = table[(table.policy == "cloud_offload") & (table["round"] >= 0)]
    energy = [r.plan.train_energy_j.mean() for r in fo.rounds]
    np.testing.assert_allclose(rows.train_energy_j_per_participant, energy)


def test_federated_runs_are_byte_identical(runs):
    fed, _, model = runs
    again = _run(model)
    assert federated_table(again).to_csv() == federated_table(fed).to_csv()
    assert summary_table(again).to_csv() == summary_table(fed).to_csv()


def test_participation_draws_a_share_of_the_nodes(tmp_path):
    fed = _run("farm_soil_int8", ROUNDS.replace("participation: 1.0", "participation: 0.25"))
    counts = [r.plan.nodes.size for r in fed.federated[0].rounds]
    assert counts == [15, 15, 15]
    assert len({tuple(r.plan.nodes) for r in fed.federated[0].rounds}) == 3  # a fresh draw each round


@pytest.mark.parametrize("federated, message", [
    (ROUNDS.replace("every: 12h", "every: 1h"), "shorter than the time between rounds"),
    (ROUNDS.replace("rounds: 3", "rounds: 5"), "not before the run ends"),
    (ROUNDS.replace("deadline: 2h", "deadline: 2h, upload_spread: 3h"), "upload_spread"),
    (ROUNDS.replace("start: 1d", "start: 1d, groups: [leaves]"), "unknown groups"),
    (ROUNDS + "\nupdates:\n  - {at: 1d, model: farm_soil_int8}", "not supported yet"),
    (ROUNDS.replace("epochs: 5", "epochs: 5, layers: 2, batch_size: 100000, max_windows: 100000"), "RAM"),
])
def test_bad_federated_input_is_refused_naming_the_field(federated, message):
    with pytest.raises((InputError, ValueError), match=message):
        _run("farm_soil_int8", federated)


def test_central_mode_sends_the_raw_windows_and_retrains_in_the_cloud(runs):
    """The cloud-retraining alternative: the drawn nodes send their windows raw (72 B each for the farm:
    12 samples x 3 channels x int16), train nothing, and the cloud runs the same SGD on the union of what
    arrived in time."""
    from iotsim.tinyml.federated import local_sgd

    _, _, model = runs
    fed = _run(model, ROUNDS.replace("federated: {", "federated: {mode: central, "))
    spec = fed.scenario.federated
    fo, out = fed.federated[1], fed.outcomes[1]
    head = head_from_tflite(fed.federated_plan.model.path, 1)
    ups = np.flatnonzero(out.messages.kind == MessageKind.MODEL_UPDATE)
    sizes = np.concatenate([r.plan.samples * 72 for r in fo.rounds])
    np.testing.assert_array_equal(np.sort(out.messages.app_bytes[ups]), np.sort(sizes))
    for r in fo.rounds:
        assert (r.plan.train_s == 0).all() and r.plan.raw_bytes.sum() == r.plan.samples.sum() * 72
        data = [d for d, ok in zip(r.plan.data, r.delivered) if ok]
        head = local_sgd(head, np.concatenate([x for x, _ in data]), np.concatenate([y for _, y in data]),
                         epochs=spec.epochs, batch_size=spec.batch_size, learning_rate=spec.learning_rate,
                         rng=group_rng(fed.scenario.seed, STREAM_FEDERATED_SGD, r.plan.index))
        for a, b in zip(head.weights + head.biases, r.head.weights + r.head.biases):
            np.testing.assert_array_equal(a, b)
    table = federated_table(fed)
    rows = table[(table.policy == "on_device") & (table["round"] >= 0)]
    assert (rows.raw_bytes_uploaded == rows.windows * 72).all() and (rows.raw_bytes_kept_on_nodes == 0).all()
    assert rows.accuracy.iloc[-1] > 0.8


def test_the_results_folder_holds_the_federated_table(runs, tmp_path):
    import pandas as pd

    from iotsim.results import write_results

    fed, plain, _ = runs
    folder = write_results(fed, tmp_path / "fed", plots=False, report=False, packets=False)
    written = pd.read_csv(folder / "federated.csv")
    assert list(written.columns) == list(federated_table(fed).columns)
    assert len(written) == 2 * (1 + 3)  # two policies: before any round, then three rounds
    assert not (write_results(plain, tmp_path / "plain", plots=False, report=False, packets=False)
                / "federated.csv").exists()
