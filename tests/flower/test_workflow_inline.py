"""The workflow and the mod end to end over an in-process grid: exact sums of the
survivors' encodings with and without dropouts, distributed DP and its accountant, and
the nodes the workflow must refuse."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("flwr")

from flower_helpers import (  # noqa: E402
    SHAPES, InlineGrid, client_fn, drop_mod, examples_of, run_rounds, update_of,
)

from flwr.client import ClientApp  # noqa: E402

from secagg.errors import BudgetExceeded  # noqa: E402
from secagg.flower import SecAggWorkflow, provision_keys, secagg_mod  # noqa: E402
from secagg.flower.pki import keys_in_directory  # noqa: E402
from secagg.masking import SecurityPolicy  # noqa: E402

N = 5


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    provision_keys(d, N + 1)  # one more than the nodes: a key the tests can use as an outsider's
    return d


def _app(keys_dir, inputs: dict, drops=None, **mod_options):
    mods = [] if drops is None else [drop_mod(drops)]
    mods.append(secagg_mod(signing_key=keys_in_directory(keys_dir), trusted_keys=keys_dir / "allow-list.txt",
                           on_input=lambda nid, ring: inputs.__setitem__(nid, ring), **mod_options))
    return ClientApp(client_fn=client_fn, mods=mods)


def _expected_ring(report, inputs) -> np.ndarray:
    dt = report.ring_sum.dtype
    total = np.zeros_like(report.ring_sum)
    for nid in report.survivors:
        np.add(total, inputs[nid].astype(dt), out=total)
    return total


def _weighted_mean(grid, survivors, round_=1) -> list[np.ndarray]:
    parts = [grid.partition[nid] for nid in survivors]
    w = np.array([examples_of(p) / 1000.0 for p in parts])
    layers = [sum(wi * update_of(p, round_)[li].astype(np.float64) for wi, p in zip(w, parts)) / w.sum()
              for li in range(len(SHAPES))]
    return layers


@pytest.mark.parametrize("graph", ["sparse", "complete"])
def test_aggregate_is_the_exact_sum_of_the_nodes_encodings(task_identity, keys_dir, graph):
    inputs: dict = {}
    grid = InlineGrid(_app(keys_dir, inputs), N)
    wf = SecAggWorkflow(trusted_keys=keys_dir / "allow-list.txt", graph=graph)
    ctx = run_rounds(wf, grid, 1)
    (report,) = wf.reports
    assert report.aborted is None and sorted(report.survivors) == sorted(grid.node_ids)
    assert np.array_equal(report.ring_sum, _expected_ring(report, inputs))
    # the vector the server sees is the weighted layout: [w, clipped flag, w * x]
    q_step = 8.0 * N / (2**31 - 1)
    for got, want in zip(report.aggregate, _weighted_mean(grid, report.survivors)):
        assert np.abs(got - want).max() < 2 * N * q_step * 1000 / sum(examples_of(i) for i in range(N))
    # the strategy received it: the new global model is the aggregate (as float32)
    import flwr.compat.common.recorddict_compat as compat
    from flwr.common import parameters_to_ndarrays
    from flwr.server.workflow.constant import MAIN_PARAMS_RECORD

    glob = parameters_to_ndarrays(compat.arrayrecord_to_parameters(ctx.state.array_records[MAIN_PARAMS_RECORD], True))
    assert all(np.allclose(g, a.astype(np.float32), atol=1e-6) for g, a in zip(glob, report.aggregate))
    # each party talked 5 rounds (active server: the consistency round runs)
    assert report.costs.rounds[3] == "consistency_check" and (report.costs.total_bytes_up > 0).all()


@pytest.mark.parametrize("drop_at", ["masked_input", "consistency_check", "unmasking"])
def test_dropouts_leave_the_exact_sum_of_the_survivors(task_identity, keys_dir, drop_at):
    inputs: dict = {}
    grid = InlineGrid(_app(keys_dir, inputs, drops={1: drop_at}), N)
    wf = SecAggWorkflow(trusted_keys=keys_dir / "allow-list.txt", timeout=30)
    run_rounds(wf, grid, 1)
    (report,) = wf.reports
    gone = grid.node_ids[1]
    assert report.aborted is None
    assert report.dropped == {gone: drop_at}
    in_sum = sorted(set(grid.node_ids) - ({gone} if drop_at == "masked_input" else set()))
    assert sorted(report.survivors) == in_sum  # after its masked input, a node's input is in the sum
    assert np.array_equal(report.ring_sum, _expected_ring(report, inputs))
    for got, want in zip(report.aggregate, _weighted_mean(grid, report.survivors)):
        assert np.abs(got - want).max() < 1e-6


def test_a_node_that_fails_in_fit_is_left_out_and_the_next_round_runs(task_identity, keys_dir):
    inputs: dict = {}
    grid = InlineGrid(_app(keys_dir, inputs), N)
    wf = SecAggWorkflow(trusted_keys=keys_dir / "allow-list.txt")
    run_rounds(wf, grid, 2, drop_in_fit={1: {0}})
    first, second = wf.reports
    assert grid.node_ids[0] not in first.survivors and "fails in fit" in first.failures[grid.node_ids[0]]
    assert sorted(second.survivors) == sorted(grid.node_ids)
    assert np.array_equal(second.ring_sum, _expected_ring(second, inputs))


def test_too_many_dropouts_abort_and_keep_the_model(task_identity, keys_dir):
    grid = InlineGrid(_app(keys_dir, {}, drops={0: "masked_input", 1: "masked_input"}), N)
    wf = SecAggWorkflow(trusted_keys=keys_dir / "allow-list.txt")
    run_rounds(wf, grid, 1)
    (report,) = wf.reports
    assert report.aggregate is None and "only 3 clients remain" in report.aborted and report.ring_sum is None


def test_a_node_whose_key_is_not_on_the_allow_list_is_refused(task_identity, keys_dir, tmp_path):
    # the server trusts nodes 1..N-1 only (node 0's key is missing from its allow-list)
    from secagg.transport._identity import load_allow_list

    listed = load_allow_list(keys_dir / "allow-list.txt")
    inputs: dict = {}
    grid = InlineGrid(_app(keys_dir, inputs), N)
    wf = SecAggWorkflow(trusted_keys={i: listed[i] for i in range(1, N)})
    run_rounds(wf, grid, 1)
    (report,) = wf.reports
    outsider = grid.node_ids[0]
    assert outsider not in report.survivors and "allow-list" in report.failures[outsider]
    assert report.dropped[outsider] == "advertise_keys"
    assert np.array_equal(report.ring_sum, _expected_ring(report, inputs))


def test_a_reply_in_another_partys_name_is_rejected(task_identity, keys_dir):
    from flwr.app import ConfigRecord

    from secagg.flower._wire import K_MSG, RECORD
    from secagg.masking._messages import MaskedInput, decode_message

    victim_holder: dict = {}

    def impersonate(nid, reply):
        rec = reply.content.config_records.get(RECORD) if reply.has_content() else None
        if rec is None:
            return reply
        msg = decode_message(rec[K_MSG][0])
        if isinstance(msg, MaskedInput) and nid == grid.node_ids[2]:
            victim_holder["party"] = msg.sender
            forged = MaskedInput(msg.session, (msg.sender + 1) % N, msg.bits, msg.vector, msg.b_commit, msg.complaints)
            reply.content.config_records[RECORD] = ConfigRecord({**rec, K_MSG: [forged.to_bytes()]})
        return reply

    grid = InlineGrid(_app(keys_dir, {}), N, tamper_reply=impersonate)
    wf = SecAggWorkflow(trusted_keys=keys_dir / "allow-list.txt")
    run_rounds(wf, grid, 1)
    (report,) = wf.reports
    assert grid.node_ids[2] in report.misbehaving and "in the name of" in report.misbehaving[grid.node_ids[2]]
    assert grid.node_ids[2] not in report.survivors and report.aborted is None


def test_honest_but_curious_needs_the_nodes_consent(task_identity, keys_dir):
    grid = InlineGrid(_app(keys_dir, {}), N)
    wf = SecAggWorkflow(adversary="honest-but-curious")
    run_rounds(wf, grid, 1)
    (report,) = wf.reports
    assert report.survivors == [] and report.aborted is not None
    assert all("consistency check required" in why for why in report.failures.values())
    inputs: dict = {}
    grid = InlineGrid(ClientApp(client_fn=client_fn, mods=[secagg_mod(
        accept_honest_but_curious=True, on_input=lambda nid, ring: inputs.__setitem__(nid, ring))]), N)
    wf = SecAggWorkflow(adversary="honest-but-curious")
    run_rounds(wf, grid, 1)
    (report,) = wf.reports
    assert report.aborted is None and len(report.costs.rounds) == 4  # no consistency round
    assert np.array_equal(report.ring_sum, _expected_ring(report, inputs))


def test_distributed_dp_decodes_the_clipped_mean_and_composes_epsilon(task_identity, keys_dir):
    from secagg.dp._accountant import make_accountant
    from secagg.flower._encoding import DPEncoding

    inputs: dict = {}
    grid = InlineGrid(_app(keys_dir, inputs), N)
    # little noise, so the decoded mean can be checked tightly against the clipped updates
    wf = SecAggWorkflow(trusted_keys=keys_dir / "allow-list.txt", noise_multiplier=0.01, clip_norm=0.5)
    run_rounds(wf, grid, 2)
    r1, r2 = wf.reports
    assert r1.aborted is None and r2.aborted is None
    assert np.array_equal(r2.ring_sum, _expected_ring(r2, inputs))  # the sum of the last round's noisy encodings
    flat = [np.concatenate([a.ravel().astype(np.float64) for a in update_of(grid.partition[nid], 1)])
            for nid in r1.survivors]
    mean_clipped = sum(f * min(1.0, 0.5 / np.linalg.norm(f)) for f in flat) / len(flat)
    got = np.concatenate([a.ravel() for a in r1.aggregate])  # initial model 0: the mean update itself
    assert 0 < r1.noise_std < 0.01 and np.abs(got - mean_clipped).max() < 6 * r1.noise_std + 1e-6
    # the accountant composed both rounds' events with the actual survivors
    dp = DPEncoding(tuple(SHAPES), 0.5, 0.01, "ddg", r1.config.min_survivors).params(N, 32)
    acc = make_accountant(wf.accountant_kind).compose(dp.dp_event(len(r1.survivors))).compose(dp.dp_event(len(r2.survivors)))
    assert r1.epsilon < r2.epsilon == pytest.approx(acc.get_epsilon(1e-5), rel=1e-12)


def test_a_target_epsilon_calibrates_the_noise_and_refuses_an_extra_round(task_identity, keys_dir):
    grid = InlineGrid(_app(keys_dir, {}), N)
    wf = SecAggWorkflow(trusted_keys=keys_dir / "allow-list.txt", target_epsilon=4.0, num_rounds=2)
    run_rounds(wf, grid, 2)
    assert wf.reports[-1].epsilon <= 4.0 and wf.reports[-1].epsilon > 3.5  # calibrated, not wasteful
    with pytest.raises(BudgetExceeded, match="above target_epsilon=4"):
        run_rounds(wf, grid, 1)


def test_a_node_refuses_less_noise_than_its_minimum(task_identity, keys_dir):
    grid = InlineGrid(_app(keys_dir, {}, min_noise_multiplier=2.0), N)
    wf = SecAggWorkflow(trusted_keys=keys_dir / "allow-list.txt", noise_multiplier=1.0)
    run_rounds(wf, grid, 1)
    (report,) = wf.reports
    assert report.aggregate is None
    assert all("noise_multiplier=1" in why and "minimum 2" in why for why in report.failures.values())


def test_out_of_range_values_are_refused_or_clipped_and_counted(task_identity, keys_dir):
    inputs: dict = {}
    grid = InlineGrid(_app(keys_dir, inputs), N)
    wf = SecAggWorkflow(trusted_keys=keys_dir / "allow-list.txt", clipping_range=0.5)
    run_rounds(wf, grid, 1)
    assert wf.reports[0].aggregate is None and all("0.5" in why for why in wf.reports[0].failures.values())
    wf = SecAggWorkflow(trusted_keys=keys_dir / "allow-list.txt", clipping_range=0.5, out_of_range="clip")
    grid = InlineGrid(_app(keys_dir, inputs), N)
    run_rounds(wf, grid, 1)
    (report,) = wf.reports
    assert report.clients_clipped == N and np.abs(np.concatenate([a.ravel() for a in report.aggregate])).max() <= 0.5


def test_policy_floor_is_enforced_by_the_nodes(task_identity, keys_dir):
    grid = InlineGrid(_app(keys_dir, {}, policy=SecurityPolicy(min_survivors=5)), N)
    wf = SecAggWorkflow(trusted_keys=keys_dir / "allow-list.txt")  # announces the finder's floor, 4
    run_rounds(wf, grid, 1)
    assert wf.reports[0].aggregate is None
    assert all("minimum survivors" in why for why in wf.reports[0].failures.values())


def test_flowers_example_parameters_are_refused_as_insecure(task_identity, keys_dir):
    from secagg.errors import InsecureParameterError

    # Flower's example uses num_shares=3, reconstruction_threshold=2: not secure against an
    # active server colluding with 5 % of the clients, so the round refuses to start
    grid = InlineGrid(_app(keys_dir, {}), N)
    with pytest.raises(InsecureParameterError, match="threshold"):
        run_rounds(SecAggWorkflow(3, 2, trusted_keys=keys_dir / "allow-list.txt"), grid, 1)
    assert grid.log == []  # nothing was sent


def test_num_shares_maps_to_the_graph_degree(task_identity, keys_dir):
    from secagg.errors import ConfigurationError

    grid = InlineGrid(_app(keys_dir, {}), N)
    with pytest.raises(ConfigurationError, match="num_shares=4 is even"):
        run_rounds(SecAggWorkflow(4, trusted_keys=keys_dir / "allow-list.txt"), grid, 1)
    wf = SecAggWorkflow(1.0, 0.8, trusted_keys=keys_dir / "allow-list.txt")  # Flower's proportions
    run_rounds(wf, grid, 1)
    assert wf.reports[0].config.is_complete and wf.reports[0].config.threshold == 4
