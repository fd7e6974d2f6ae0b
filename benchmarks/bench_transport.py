"""Deployment costs of the secure sum: TCP transport vs the in-process driver, and the Ray
backend vs the in-process driver (SecAgg+, per-round wall time).

Run: ``pytest benchmarks/bench_transport.py --benchmark-only``. Sizes are small by default;
the issue's measurement (n = 1000, d = 100,000, minutes on 2 cores) is::

    SECAGG_BENCH_RAY_N=1000 SECAGG_BENCH_RAY_D=100000 \\
        pytest benchmarks/bench_transport.py -k secaggplus --benchmark-only

Ratios (technique / baseline) and per-round seconds are stored in ``extra_info``; the
``*_estimate_*`` keys extrapolate one round at n = 10^5 on a cluster (see
docs/deployment.md for the model).
"""

from __future__ import annotations

import asyncio
import os
import tempfile

import numpy as np
import pytest

from secagg import keys
from secagg.masking import MaskingConfig, ThreatModel, find_parameters, simulate, simulate_ring
from secagg.transport import AggregationServer, run_client
from secagg.transport.tls import client_context, server_context, write_self_signed

_RESULTS: dict[str, dict] = {}

NET_N, NET_D = 10, 100_000
RAY_N = int(os.environ.get("SECAGG_BENCH_RAY_N", "100"))
RAY_D = int(os.environ.get("SECAGG_BENCH_RAY_D", "10000"))


# ------------------------------------------------------------------ TCP loopback vs in-process
def _ring(n, d, seed=0):
    return np.random.default_rng(seed).integers(0, 2**32, size=(n, d), dtype=np.uint32)


_IDS = [keys.SigningKey.generate() for _ in range(NET_N)]
_ALLOW = {u: sk.public_bytes() for u, sk in enumerate(_IDS)}
_CERT, _KEY = write_self_signed(tempfile.mkdtemp(prefix="secagg-bench-tls-"))


async def _network_session(vecs, tls: bool = True):
    """One session on loopback: TLS and the allow-list (the default), or plain TCP."""
    n, d = vecs.shape
    srv_sec = {"ssl_context": server_context(_CERT, _KEY)} if tls else {"insecure_plaintext": True}
    srv = AggregationServer(MaskingConfig(n=n, dim=d), bound=None, round_deadline=60, join_timeout=60,
                            allow_list=_ALLOW, **srv_sec)
    port = await srv.start()
    task = asyncio.create_task(srv.run())
    cli_sec = {"ssl_context": client_context(_CERT)} if tls else {"insecure_plaintext": True}
    clients = [asyncio.create_task(run_client("127.0.0.1", port, vecs[u], signing_key=_IDS[u], **cli_sec))
               for u in range(n)]
    res = await task
    await asyncio.gather(*clients)
    return res


@pytest.mark.benchmark(group="transport-loopback")
def test_inprocess_driver_baseline(benchmark):
    vecs = _ring(NET_N, NET_D)
    res = benchmark.pedantic(simulate_ring, args=(vecs,), kwargs={"bits": 32}, rounds=3, iterations=1)
    _RESULTS["inprocess"] = {"median": benchmark.stats.stats.median}
    benchmark.extra_info.update(n=NET_N, d=NET_D, survivors=len(res.survivors))


@pytest.mark.benchmark(group="transport-loopback")
def test_tcp_loopback_session(benchmark):
    """The default: TLS and authenticated registration."""
    vecs = _ring(NET_N, NET_D)
    res = benchmark.pedantic(lambda: asyncio.run(_network_session(vecs)), rounds=3, iterations=1)
    np.testing.assert_array_equal(res.ring_sum, vecs.sum(axis=0, dtype=np.uint32))
    benchmark.extra_info.update(n=NET_N, d=NET_D, bytes_sent=sum(res.bytes_sent.values()),
                                bytes_received=sum(res.bytes_received.values()))
    base = _RESULTS.get("inprocess")
    if base:
        benchmark.extra_info["ratio_vs_inprocess"] = benchmark.stats.stats.median / base["median"]
    _RESULTS["tls"] = {"median": benchmark.stats.stats.median}


@pytest.mark.benchmark(group="transport-loopback")
def test_plain_tcp_loopback_session(benchmark):
    """The same session over plain TCP (--insecure-plaintext): what TLS costs."""
    vecs = _ring(NET_N, NET_D)
    res = benchmark.pedantic(lambda: asyncio.run(_network_session(vecs, tls=False)), rounds=3, iterations=1)
    np.testing.assert_array_equal(res.ring_sum, vecs.sum(axis=0, dtype=np.uint32))
    tls = _RESULTS.get("tls")
    if tls:
        benchmark.extra_info["tls_over_plain"] = tls["median"] / benchmark.stats.stats.median


# ------------------------------------------------------------------ Ray vs in-process (SecAgg+)
def _per_round(res) -> dict:
    return {r: round(float(s), 3) for r, s in res.round_seconds.items()}


def _record(benchmark, res, name):
    rounds = _per_round(res)
    info = {
        "n": RAY_N, "d": RAY_D, "k": res.config.k, "threshold": res.config.threshold,
        "round_seconds": rounds,
        "max_client_seconds": {r: round(float(a.max()), 4) for r, a in res.client_seconds.items()},
        "server_seconds": {r: round(float(s), 3) for r, s in res.server_seconds.items()},
    }
    benchmark.extra_info.update(info)
    _RESULTS[name] = {"rounds": rounds, "res": res}


def _inputs():
    return np.random.default_rng(0).uniform(-1, 1, size=(RAY_N, RAY_D))


@pytest.mark.benchmark(group="ray-vs-inprocess")
def test_secaggplus_inprocess_baseline(benchmark):
    x = _inputs()
    res = benchmark.pedantic(
        simulate, args=(x,), kwargs={"graph": "sparse", "dropout": 0.05, "rng": np.random.default_rng(1)},
        rounds=1, iterations=1,
    )
    _record(benchmark, res, "sim")
    # cluster estimate: clients in parallel, so a round costs the slowest client plus the
    # server; client work grows with k (pairwise masks, shares), server work with n
    n_big = 100_000
    k_big = find_parameters(n_big, ThreatModel(), "sparse").k
    scale_client = k_big / res.config.k
    scale_server = n_big / RAY_N
    est = {
        r: float(res.client_seconds[r].max()) * scale_client + float(res.server_seconds[r]) * scale_server
        for r in res.round_seconds
    }
    benchmark.extra_info.update(
        estimate_n=n_big, estimate_k=k_big,
        estimate_round_seconds={r: round(v, 2) for r, v in est.items()},
        estimate_total_seconds=round(sum(est.values()), 1),
    )


@pytest.mark.benchmark(group="ray-vs-inprocess")
def test_secaggplus_ray(benchmark):
    ray = pytest.importorskip("ray")
    from secagg.masking import simulate

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        x = _inputs()
        res = benchmark.pedantic(
            simulate, args=(x,), kwargs={"graph": "sparse", "dropout": 0.05, "rng": np.random.default_rng(1),
                                         "backend": "ray"},
            rounds=1, iterations=1,
        )
    finally:
        if started:
            ray.shutdown()
    _record(benchmark, res, "ray")
    base = _RESULTS.get("sim")
    if base:
        np.testing.assert_array_equal(res.ring_sum, base["res"].ring_sum)  # same seed, same sum
        benchmark.extra_info["ratio_round_seconds_ray_vs_inprocess"] = {
            r: round(res.round_seconds[r] / max(base["res"].round_seconds[r], 1e-9), 3) for r in res.round_seconds
        }
        benchmark.extra_info["ratio_total_ray_vs_inprocess"] = round(
            sum(res.round_seconds.values()) / sum(base["res"].round_seconds.values()), 3
        )
