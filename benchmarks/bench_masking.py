"""Benchmarks of secagg.masking (SecAgg / SecAgg+), each group with its baseline.

Run: ``pytest benchmarks/bench_masking.py --benchmark-only``. The n x graph scaling table
of docs/secure-aggregation.md: ``python benchmarks/bench_masking.py --table``
(add ``--with-complete-1000`` for the ~5 minute complete-graph n=1000 point).
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pytest
from _timing import min_time
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from secagg.aggregators import PlainAggregator
from secagg.masking import Client, MaskingConfig, Server, ThreatModel, simulate_ring

D = 100_000


def _keystream_add(acc: np.ndarray, total_bytes: int) -> None:
    """Baseline: raw AES-256-CTR keystream of total_bytes added to acc chunk by chunk."""
    enc = Cipher(algorithms.AES(bytes(32)), modes.CTR(bytes(16))).encryptor()
    nb = acc.nbytes
    zeros = bytes(nb)
    for _ in range(total_bytes // nb):
        ks = np.frombuffer(enc.update(zeros), dtype="<u4")
        np.add(acc, ks, out=acc)


def _session(n: int, d: int, rounds: int, absent=()):
    # the masking work itself: honest-but-curious (no consistency round, so no PKI to set up)
    cfg = MaskingConfig(n=n, dim=d, threat=ThreatModel(adversary="honest-but-curious"))
    g = cfg.build_graph()
    vecs = np.random.default_rng(0).integers(0, 2**32, (n, d), dtype=np.uint64).astype(np.uint32)
    server = Server(cfg, g)
    clients = [Client(u, cfg, g, vecs[u]) for u in range(n)]
    out = server.start()
    for r in range(rounds):
        pending = []
        for m in out:
            if m.recipient in absent and r >= 2:
                pending.append(m)
                continue
            for rep in clients[m.recipient].receive(m):
                server.receive(rep)
        out = server.close_round()
    return server, clients, out


# ----------------------------------------------------------------------------- per neighbour
NEIGHBORS = 20


def _client_setup(d: int = D):
    _, clients, out = _session(NEIGHBORS + 1, d, 2)
    m = next(x for x in out if x.recipient == 0)
    return clients[0], m


def _marginal_ratio(ours_at, masks: int, repeat: int = 5) -> float:
    """Per-element cost ratio: (ours(2D) - ours(D)) / (keystream+add(2D) - keystream+add(D)).

    The fixed per-pair work (X25519, HKDF, Shamir) cancels in the difference, leaving the
    cost of each extra masked element against the raw AES-CTR keystream plus add.
    """
    ours = [ours_at(d) for d in (D, 2 * D)]
    base = [min_time(lambda d=d: _keystream_add(np.zeros(d, np.uint32), masks * 4 * d), repeat)
            for d in (D, 2 * D)]
    return (ours[1] - ours[0]) / (base[1] - base[0])


def _client_mask(arg):
    client, m = arg
    client.receive(m)


@pytest.mark.benchmark(group="masking-client-per-neighbor")
def test_client_masked_input(benchmark):
    """Real client round: X25519 + HKDF per neighbour, 20 pairwise masks + self mask, d=1e5."""
    benchmark.pedantic(_client_mask, setup=lambda: ((_client_setup(),), {}), rounds=5)
    base = min_time(lambda: _keystream_add(np.zeros(D, np.uint32), (NEIGHBORS + 1) * 4 * D))
    ours = min_time(_client_mask, setup=_client_setup)
    marginal = _marginal_ratio(lambda d: min_time(_client_mask, 5, setup=lambda: _client_setup(d)), NEIGHBORS + 1)
    benchmark.extra_info.update(neighbors=NEIGHBORS, d=D, ratio_to_aes_ctr=ours / base,
                                marginal_per_element_ratio_to_aes_ctr=marginal,
                                seconds_per_neighbor_element=ours / ((NEIGHBORS + 1) * D))


@pytest.mark.benchmark(group="masking-client-per-neighbor")
def test_baseline_aes_ctr_keystream_add(benchmark):
    """Baseline: AES-256-CTR keystream + numpy add of the same total length."""
    acc = np.zeros(D, np.uint32)
    benchmark(_keystream_add, acc, (NEIGHBORS + 1) * 4 * D)


# ----------------------------------------------------------------------------- server per dropped pair
N_UNMASK = 12


def _server_setup(d: int = D):
    server, clients, out = _session(N_UNMASK, d, 3, absent=(0,))  # client 0 drops after sharing keys
    for m in out:
        for rep in clients[m.recipient].receive(m):
            server.receive(rep)
    return server


def _server_unmask(server):
    server.close_round()


@pytest.mark.benchmark(group="masking-server-per-dropped-pair")
def test_server_unmask_dropped_pairs(benchmark):
    """Server unmasking with 1 dropped client: its 11 pair masks + 11 survivors' self masks, d=1e5."""
    benchmark.pedantic(_server_unmask, setup=lambda: ((_server_setup(),), {}), rounds=3)
    masks = 2 * (N_UNMASK - 1)
    base = min_time(lambda: _keystream_add(np.zeros(D, np.uint32), masks * 4 * D))
    ours = min_time(_server_unmask, setup=_server_setup)
    marginal = _marginal_ratio(lambda d: min_time(_server_unmask, 5, setup=lambda: _server_setup(d)), masks)
    benchmark.extra_info.update(masks=masks, d=D, ratio_to_aes_ctr=ours / base,
                                marginal_per_element_ratio_to_aes_ctr=marginal)


@pytest.mark.benchmark(group="masking-server-per-dropped-pair")
def test_baseline_server_keystream(benchmark):
    acc = np.zeros(D, np.uint32)
    benchmark(_keystream_add, acc, 2 * (N_UNMASK - 1) * 4 * D)


# ----------------------------------------------------------------------------- n=100, d=1e5
def _ring(n, d):
    return np.random.default_rng(1).integers(0, 2**32, (n, d), dtype=np.uint64).astype(np.uint32)


def _report(res, d):
    s = res.survivors
    return dict(
        client_seconds_median=float(np.median(res.total_client_seconds[s])),
        server_seconds=res.total_server_seconds,
        client_bytes_up_median=float(np.median(res.total_bytes_sent[s])),
        client_bytes_down_median=float(np.median(res.total_bytes_received[s])),
        server_bytes_in=int(sum(res.server_bytes_received.values())),
        server_bytes_out=int(sum(res.server_bytes_sent.values())),
        expansion=float(np.median(res.total_bytes_sent[s]) / (4 * d)),
        k=res.config.k,
        threshold=res.config.threshold,
    )


@pytest.mark.benchmark(group="masking-n100-d100k")
@pytest.mark.parametrize("graph", ["complete", "sparse"])
def test_secagg_n100_d100k_10pct_dropout(benchmark, graph):
    v = _ring(100, D)
    res = benchmark.pedantic(
        simulate_ring, args=(v,), kwargs=dict(bits=32, graph=graph, dropout=0.1, rng=np.random.default_rng(0)),
        rounds=1, iterations=1,
    )
    benchmark.extra_info.update(_report(res, D))


@pytest.mark.benchmark(group="masking-n100-d100k")
def test_plain_n100_d100k_baseline(benchmark):
    x = np.random.default_rng(1).uniform(-1, 1, (100, D))
    res = benchmark.pedantic(PlainAggregator().aggregate, args=(x,), kwargs=dict(dropout=0.1), rounds=1, iterations=1)
    benchmark.extra_info.update(client_bytes_up=int(res.bytes_up.max()))


# ----------------------------------------------------------------------------- scaling table
SCALING = [(n, g) for n in (100, 300, 1000) for g in ("complete", "sparse")]


@pytest.mark.benchmark(group="masking-scaling-d10k")
@pytest.mark.parametrize(
    "n,graph",
    [pytest.param(n, g, marks=[pytest.mark.slow, pytest.mark.skipif(
        not os.environ.get("SECAGG_BENCH_SLOW"), reason="~5 min; set SECAGG_BENCH_SLOW=1")])
     if (n, g) == (1000, "complete") else (n, g) for n, g in SCALING],
)
def test_scaling(benchmark, n, graph):
    d = 10_000
    v = _ring(n, d)
    res = benchmark.pedantic(
        simulate_ring, args=(v,), kwargs=dict(bits=32, graph=graph, dropout=0.1, rng=np.random.default_rng(0)),
        rounds=1, iterations=1,
    )
    benchmark.extra_info.update(_report(res, d))


@pytest.mark.benchmark(group="masking-scaling-d10k")
@pytest.mark.parametrize("n", [100, 300, 1000])
def test_scaling_plain_baseline(benchmark, n):
    x = np.random.default_rng(1).uniform(-1, 1, (n, 10_000))
    benchmark.pedantic(PlainAggregator().aggregate, args=(x,), rounds=1, iterations=1)


def table(with_complete_1000: bool = False, d: int = 10_000) -> str:
    """Markdown table: per-client and server time and bytes for n x graph (10% dropouts)."""
    rows = ["| n | graph | k | t | wall s | client ms (median) | server s | client KB up | expansion |",
            "|---|---|---|---|---|---|---|---|---|"]
    for n, g in SCALING:
        if (n, g) == (1000, "complete") and not with_complete_1000:
            rows.append(f"| {n} | {g} | 999 | 501 | (skipped: ~5 min, use --with-complete-1000) | | | | |")
            continue
        t0 = time.perf_counter()
        res = simulate_ring(_ring(n, d), bits=32, graph=g, dropout=0.1, rng=np.random.default_rng(0))
        wall = time.perf_counter() - t0
        r = _report(res, d)
        rows.append(
            f"| {n} | {g} | {r['k']} | {r['threshold']} | {wall:.1f} | {1e3 * r['client_seconds_median']:.1f} | "
            f"{r['server_seconds']:.2f} | {r['client_bytes_up_median'] / 1e3:.1f} | {r['expansion']:.3f} |"
        )
        print(rows[-1], file=sys.stderr)
    return "\n".join(rows)


if __name__ == "__main__":
    if "--table" in sys.argv:
        print(table("--with-complete-1000" in sys.argv))
