"""secagg's workflow and mod against Flower's own SecAgg+ (``SecAggPlusWorkflow`` +
``secaggplus_mod``), side by side in Flower's simulation runtime (Ray backend): same
nodes, same model (one float32 layer of ``d`` values in [-1, 1]), same FedAvg strategy.

Run: ``pytest benchmarks/bench_flower.py --benchmark-only -s`` (a few minutes on 2 cores;
``SECAGG_BENCH_FLOWER_SIZES=10x10000`` for the small size only). Each benchmark is one
simulation of 2 rounds; the numbers of the second round (the first warms the Ray actors
up) are in ``extra_info`` and printed:

* client seconds per round: each node's time inside the secure-aggregation mod, summed
  over the protocol's messages (training is a constant array, so this is protocol work
  plus Flower's conversions), mean over nodes;
* server seconds per round: the fit workflow's wall time minus the time spent waiting in
  ``grid.send_and_receive`` (the nodes' work and Flower's transport);
* bytes per client per round: the serialized size of the message contents (Flower's
  ``deflate()`` of every record) each node received and sent, mean over nodes. The
  masked-input round's download includes the global model, reported apart
  (``model_B``): Flower's SecAgg+ hands FedAvg a float64 aggregate, so from round 2 on its
  nodes download ``8 d`` bytes of model where secagg's (which keeps the model's dtype)
  download ``4 d``.

Variants: Flower's SecAgg+ (honest-but-curious only) with the degree and threshold our
parameter finder picks for that model; secagg honest-but-curious with the same; secagg's
default (active server: consistency round, signed keys, the finder's larger degree).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import pytest

flwr = pytest.importorskip("flwr")
pytest.importorskip("ray")
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

from flwr.app import ConfigRecord, Context  # noqa: E402
from flwr.client import ClientApp, NumPyClient  # noqa: E402
from flwr.client.mod import secaggplus_mod  # noqa: E402
from flwr.common import ndarrays_to_parameters  # noqa: E402
from flwr.server import LegacyContext, ServerApp, ServerConfig  # noqa: E402
from flwr.server.strategy import FedAvg  # noqa: E402
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow  # noqa: E402
from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects  # noqa: E402

from secagg.flower import SecAggWorkflow, keys_in_directory, provision_keys, secagg_mod  # noqa: E402
from secagg.masking import MaskingConfig, ThreatModel  # noqa: E402

SIZES = [tuple(int(v) for v in s.split("x"))
         for s in os.environ.get("SECAGG_BENCH_FLOWER_SIZES", "10x10000,50x100000").split(",")]
ROUNDS = 2
_TIMING = "bench.timing"
RESULTS: dict[tuple[str, int, int], dict[str, float]] = {}


class _Client(NumPyClient):
    def __init__(self, update: np.ndarray) -> None:
        self.update = update

    def fit(self, parameters, config):
        return [self.update], 10, {}


def _client_fn_for(d: int):
    def client_fn(context: Context):
        gen = np.random.default_rng(int(context.node_config["partition-id"]))
        return _Client(gen.uniform(-1, 1, size=d).astype(np.float32)).to_client()

    return client_fn


def _timing_mod(msg, ctxt, call_next):
    """Outermost mod: how long the secure-aggregation mod (and what it calls) took."""
    t0 = time.perf_counter()
    reply = call_next(msg, ctxt)
    if reply.has_content():
        reply.content.config_records[_TIMING] = ConfigRecord({"seconds": time.perf_counter() - t0})
    return reply


def _size(content) -> int:
    return sum(len(obj.deflate()) for obj in get_all_nested_objects(content).values())


def _model_size(content) -> int:
    """Bytes of the arrays (the global model a train message carries)."""
    return sum(len(obj.deflate()) for obj in get_all_nested_objects(content).values()
               if type(obj).__name__ in ("ArrayRecord", "Array", "ArrayChunk"))


class CountingGrid:
    """Wraps the Grid: per train message, the bytes each node received and sent, each
    node's mod seconds, and the time spent waiting for replies."""

    def __init__(self, grid: Any) -> None:
        self._grid = grid
        self.down: dict[int, int] = {}
        self.model: dict[int, int] = {}
        self.up: dict[int, int] = {}
        self.client_seconds: dict[int, float] = {}
        self.waiting = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._grid, name)

    def reset(self) -> None:
        self.down, self.model, self.up, self.client_seconds, self.waiting = {}, {}, {}, {}, 0.0

    def send_and_receive(self, messages, *, timeout=None):
        messages = list(messages)
        train = [m for m in messages if m.metadata.message_type == "train"]
        for m in train:
            nid = m.metadata.dst_node_id
            self.down[nid] = self.down.get(nid, 0) + _size(m.content)
            self.model[nid] = self.model.get(nid, 0) + _model_size(m.content)
        t0 = time.perf_counter()
        replies = list(self._grid.send_and_receive(messages, timeout=timeout))
        self.waiting += time.perf_counter() - t0
        for r in replies:
            if r.metadata.message_type != "train" or not r.has_content():
                continue
            nid = r.metadata.src_node_id
            timing = r.content.config_records.get(_TIMING)
            if timing is not None:
                del r.content.config_records[_TIMING]
                self.client_seconds[nid] = self.client_seconds.get(nid, 0.0) + float(timing["seconds"])
            self.up[nid] = self.up.get(nid, 0) + _size(r.content)
        return replies


class _Measured:
    """The fit workflow under test, measured per round on the counting grid."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.rounds: list[dict[str, float]] = []

    def __call__(self, grid: CountingGrid, context: Any) -> None:
        grid.reset()
        t0 = time.perf_counter()
        self.inner(grid, context)
        wall = time.perf_counter() - t0
        nodes = sorted(grid.down)
        self.rounds.append({
            "client_s": float(np.mean([grid.client_seconds.get(u, 0.0) for u in nodes])),
            "server_s": wall - grid.waiting,
            "round_s": wall,
            "down_B": float(np.mean([grid.down[u] for u in nodes])),
            "model_B": float(np.mean([grid.model.get(u, 0) for u in nodes])),
            "up_B": float(np.mean([grid.up.get(u, 0) for u in nodes])),
        })


def _simulate(variant: str, n: int, d: int, tmp) -> dict[str, float]:
    from flwr.simulation import run_simulation

    hbc = MaskingConfig(n=n, dim=d, graph="sparse", threat=ThreatModel(adversary="honest-but-curious"))
    if variant == "flower-secagg+":
        inner = SecAggPlusWorkflow(num_shares=min(hbc.k + 1, n), reconstruction_threshold=hbc.threshold)
        mod = secaggplus_mod
    elif variant == "secagg-hbc":
        inner = SecAggWorkflow(min(hbc.k + 1, n), hbc.threshold, adversary="honest-but-curious")
        mod = secagg_mod(accept_honest_but_curious=True)
    else:
        allow = provision_keys(tmp, n, overwrite=True)
        inner = SecAggWorkflow(trusted_keys=allow)
        mod = secagg_mod(signing_key=keys_in_directory(tmp), trusted_keys=allow)
    measured = _Measured(inner)
    server_app = ServerApp()

    @server_app.main()
    def main(grid, context: Context) -> None:
        strategy = FedAvg(fraction_fit=1.0, fraction_evaluate=0.0, min_available_clients=n, min_fit_clients=n,
                          initial_parameters=ndarrays_to_parameters([np.zeros(d, dtype=np.float32)]))
        legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=ROUNDS), strategy=strategy)
        DefaultWorkflow(fit_workflow=measured)(CountingGrid(grid), legacy)

    run_simulation(server_app=server_app, client_app=ClientApp(client_fn=_client_fn_for(d), mods=[_timing_mod, mod]),
                   num_supernodes=n, backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}})
    assert len(measured.rounds) == ROUNDS
    out = dict(measured.rounds[-1])
    if variant != "flower-secagg+":
        report = inner.reports[-1]
        assert report.aborted is None and len(report.survivors) == n
        out.update(k=report.config.k, t=report.config.threshold)
    else:
        out.update(k=min(hbc.k, n - 1), t=hbc.threshold)
    return out


@pytest.mark.parametrize("n, d", SIZES, ids=[f"{n}x{d}" for n, d in SIZES])
@pytest.mark.parametrize("variant", ["flower-secagg+", "secagg-hbc", "secagg-active"])
@pytest.mark.benchmark(group="flower-simulation")
def test_flower_round(benchmark, variant, n, d, tmp_path):
    res = benchmark.pedantic(_simulate, args=(variant, n, d, tmp_path), rounds=1, iterations=1)
    RESULTS[(variant, n, d)] = res
    benchmark.extra_info.update(variant=variant, n=n, d=d, **res)
    print(f"\n{variant:>15} n={n:<3} d={d:<7} k={res['k']:<3} t={res['t']:<3} client {res['client_s']:.3f} s  "
          f"server {res['server_s']:.3f} s  round {res['round_s']:.2f} s  "
          f"down {res['down_B'] / 1e3:.1f} kB (model {res['model_B'] / 1e3:.1f} kB)  up {res['up_B'] / 1e3:.1f} kB")
