"""Run the example in Flower's simulation runtime (Ray backend):

    python -m examples.flower.run                      # 5 nodes, 3 rounds, node 0 drops in round 2
    python -m examples.flower.run --nodes 10 --rounds 5 --drop 2:3

Keys: every run provisions one Ed25519 identity per node and the allow-list in a
temporary folder (``--keys DIR`` to keep them), as ``secagg keygen`` would.
"""

from __future__ import annotations

import argparse
import os
import tempfile

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


def _drops(text: str) -> dict[int, int]:
    out = {}
    for item in filter(None, text.split(",")):
        rnd, _, count = item.partition(":")
        out[int(rnd)] = int(count or 1)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=5, help="simulated nodes (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="federated rounds (default 3)")
    parser.add_argument("--drop", default="2:1", help="ROUND:COUNT,... nodes that fail in fit (default 2:1)")
    parser.add_argument("--keys", help="keep the provisioned keys in this folder")
    args = parser.parse_args(argv)

    from flwr.simulation import run_simulation

    from secagg.flower import SecAggWorkflow, provision_keys

    from .client_app import make_client_app
    from .server_app import make_server_app
    from .task import local_data, mse

    with tempfile.TemporaryDirectory() as tmp:
        keys_dir = args.keys or tmp
        allow_list = provision_keys(keys_dir, args.nodes, overwrite=True)
        workflow = SecAggWorkflow(trusted_keys=allow_list, timeout=60)
        run_simulation(
            server_app=make_server_app(keys_dir, num_nodes=args.nodes, num_rounds=args.rounds,
                                       drops=_drops(args.drop), workflow=workflow),
            client_app=make_client_app(keys_dir),
            num_supernodes=args.nodes,
            backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}},
        )
    print(f"{'round':>5} {'nodes':>5} {'in sum':>6} {'dropped':>8} {'k':>3} {'t':>3} {'protocol KB up/node':>20}")
    for r in workflow.reports:
        up = r.costs.total_bytes_up.mean() / 1e3 if r.costs is not None else 0.0
        cfg = r.config
        print(f"{r.round:>5} {len(r.node_ids):>5} {len(r.survivors):>6} {len(r.dropped):>8} "
              f"{cfg.k if cfg else '-':>3} {cfg.threshold if cfg else '-':>3} {up:>20.1f}"
              + (f"   aborted: {r.aborted}" if r.aborted else ""))
    last = next((r for r in reversed(workflow.reports) if r.aggregate is not None), None)
    if last is not None:
        data = [local_data(i) for i in range(args.nodes)]
        print("mean squared error of the final global model:",
              round(sum(mse(last.aggregate, x, y) for x, y in data) / len(data), 4))


if __name__ == "__main__":
    main()
