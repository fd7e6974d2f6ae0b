"""secagg's workflow and mod in Flower's own simulation runtime (Ray backend): three
rounds over five nodes — no dropout, a node failing in training (it leaves before its
masked input), a node leaving at unmasking (its input stays in the sum) — and each
round's aggregate is the exact ring sum of the survivors' encodings."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("flwr")

from flower_helpers import (  # noqa: E402
    SHAPES, RoundConfigFedAvg, client_fn, drop_mod, examples_of, update_of,
)

from flwr.client import ClientApp  # noqa: E402
from flwr.common import Context, ndarrays_to_parameters  # noqa: E402
from flwr.server import LegacyContext, ServerApp, ServerConfig  # noqa: E402
from flwr.server.workflow import DefaultWorkflow  # noqa: E402

pytest.importorskip("ray")

import flower_helpers  # noqa: E402
from ray import cloudpickle  # noqa: E402

# the Ray actors unpickle the ClientApp: ship the helpers by value, so a worker never
# resolves them by module name (another test folder's module of that name, or none)
cloudpickle.register_pickle_by_value(flower_helpers)

from secagg.flower import SecAggWorkflow, keys_in_directory, provision_keys, secagg_mod  # noqa: E402

N = 5


def _save_input(folder):
    def on_input(node_id: int, ring: np.ndarray) -> None:
        import time

        np.save(folder / f"{node_id}-{time.time_ns()}.npy", ring)  # the name orders a node's rounds

    return on_input


def _remember_partition(folder):
    def mod(msg, ctxt, call_next):
        (folder / f"{ctxt.node_id}.partition").write_text(str(ctxt.node_config["partition-id"]))
        return call_next(msg, ctxt)

    return mod


def test_flower_simulation_sums_the_survivors_exactly(tmp_path):
    from flwr.simulation import run_simulation

    keys_dir, inputs_dir = tmp_path / "keys", tmp_path / "inputs"
    inputs_dir.mkdir()
    allow_list = provision_keys(keys_dir, N)
    client_app = ClientApp(client_fn=client_fn, mods=[
        _remember_partition(inputs_dir),
        drop_mod({0: ("masked_input", 2), 1: ("unmasking", 3)}),
        secagg_mod(signing_key=keys_in_directory(keys_dir), trusted_keys=allow_list, on_input=_save_input(inputs_dir)),
    ])
    workflow = SecAggWorkflow(trusted_keys=allow_list, timeout=120)
    server_app = ServerApp()

    @server_app.main()
    def main(grid, context: Context) -> None:
        strategy = RoundConfigFedAvg(fraction_fit=1.0, fraction_evaluate=0.0, min_available_clients=N,
                                     min_fit_clients=N,
                                     initial_parameters=ndarrays_to_parameters(
                                         [np.zeros(s, dtype=np.float32) for s in SHAPES]))
        legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=3), strategy=strategy)
        DefaultWorkflow(fit_workflow=workflow)(grid, legacy)

    run_simulation(server_app=server_app, client_app=client_app, num_supernodes=N,
                   backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}})

    r1, r2, r3 = workflow.reports
    partition = {int(f.stem): int(f.read_text()) for f in inputs_dir.glob("*.partition")}
    node_of = {p: nid for nid, p in partition.items()}
    assert all(r.aborted is None for r in (r1, r2, r3))
    assert r1.dropped == {} and len(r1.survivors) == N
    assert r2.dropped == {node_of[0]: "masked_input"} and node_of[0] not in r2.survivors
    assert r3.dropped == {node_of[1]: "unmasking"} and len(r3.survivors) == N  # its masked input is in the sum
    # each node's encodings, in round order (node 0 encoded nothing in round 2)
    files = sorted(inputs_dir.glob("*.npy"), key=lambda f: int(f.stem.split("-")[1]))
    by_node: dict[int, list[np.ndarray]] = {}
    for f in files:
        by_node.setdefault(int(f.stem.split("-")[0]), []).append(np.load(f))
    rounds_of = {nid: [1, 3] if nid == node_of[0] else [1, 2, 3] for nid in by_node}
    for r in (r1, r2, r3):
        total = np.zeros_like(r.ring_sum)
        for nid in r.survivors:
            np.add(total, by_node[nid][rounds_of[nid].index(r.round)], out=total)
        assert np.array_equal(total, r.ring_sum), f"round {r.round}"
        parts = [partition[nid] for nid in r.survivors]
        w = np.array([examples_of(p) for p in parts], dtype=np.float64)
        for li, got in enumerate(r.aggregate):
            want = sum(wi * update_of(p, r.round)[li].astype(np.float64) for wi, p in zip(w, parts)) / w.sum()
            assert np.abs(got - want).max() < 1e-6
