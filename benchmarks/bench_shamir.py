"""Benchmarks for secagg.shamir, each group with its baseline in the same run.

Groups:
* ``shamir-51-100``: one 32-byte secret, t=51, n=100, split + combine. Baseline: Flower's
  recipe (``flwr.common.secure_aggregation.crypto.shamir``: PKCS#7-pad to 16-byte chunks,
  ``Crypto.Protocol.SecretSharing.Shamir.split/combine`` per chunk, GF(2^128)), run with
  pycryptodome when it is installed (sequential, without Flower's pickling and thread
  pool). Flower's numbers measured elsewhere (issue 2) are recorded as constants.
* ``shamir-batch-51-100``: 100 secrets; baseline = the single-secret API in a loop.
* ``shamir-batch-501-1000``: 1000 secrets, t=501, n=1000; baseline = single API in a loop.
  Issue-2 target: batch split+combine under 5 s.

Run: ``pytest benchmarks/bench_shamir.py --benchmark-only``. Ratios are in extra_info.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from secagg.shamir import combine, combine_batch, split, split_batch

# Flower's Shamir (pycryptodome) on this machine, measured outside this run (issue 2).
FLOWER_REFERENCE_MS = {
    "flower_create_ms_measured_elsewhere": 160.0,
    "flower_combine_ms_measured_elsewhere": 220.0,
}

_MEDIANS: dict[str, float] = {}


def _median(benchmark) -> float | None:
    stats = getattr(benchmark, "stats", None)
    return None if not stats else float(stats.stats.median)


def _record(benchmark, key: str) -> None:
    med = _median(benchmark)
    if med is not None:
        _MEDIANS[key] = med


def _ratio(benchmark, baseline_key: str, ours_key: str, label: str) -> None:
    if baseline_key in _MEDIANS and ours_key in _MEDIANS:
        benchmark.extra_info[label] = round(_MEDIANS[baseline_key] / _MEDIANS[ours_key], 1)


# ---------------------------------------------------------------- t=51, n=100, one secret


@pytest.mark.benchmark(group="shamir-51-100")
def test_secagg_split_combine_51_100(benchmark):
    secret = os.urandom(32)
    rows = list(range(100))

    def run():
        shares = split(secret, 51, 100)
        return combine([shares[i] for i in rows[-51:]])

    assert benchmark(run) == secret
    _record(benchmark, "ours-51-100")
    benchmark.extra_info.update(FLOWER_REFERENCE_MS)
    med = _median(benchmark)
    if med is not None:
        ref_s = sum(FLOWER_REFERENCE_MS.values()) / 1e3
        speedup = round(ref_s / med, 1)
        benchmark.extra_info["speedup_vs_flower_reference_measured_elsewhere"] = speedup
        benchmark.extra_info["target_speedup"] = 100


@pytest.mark.benchmark(group="shamir-51-100")
def test_baseline_flower_pycryptodome_51_100(benchmark):
    shamir_mod = pytest.importorskip(
        "Crypto.Protocol.SecretSharing", reason="pycryptodome not installed"
    )
    padding = pytest.importorskip("Crypto.Util.Padding")
    secret = os.urandom(32)

    def flower_create(data: bytes, threshold: int, num: int) -> list[list[tuple[int, bytes]]]:
        padded = padding.pad(data, 16)
        per_party: list[list[tuple[int, bytes]]] = [[] for _ in range(num)]
        for i in range(0, len(padded), 16):
            chunk = padded[i : i + 16]
            for idx, share in shamir_mod.Shamir.split(threshold, num, chunk, ssss=False):
                per_party[idx - 1].append((idx, share))
        return per_party

    def flower_combine(per_party: list[list[tuple[int, bytes]]]) -> bytes:
        out = bytearray()
        for chunk in range(len(per_party[0])):
            out += shamir_mod.Shamir.combine([p[chunk] for p in per_party], ssss=False)
        return padding.unpad(bytes(out), 16)

    def run():
        return flower_combine(flower_create(secret, 51, 100)[-51:])

    assert benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=0) == secret
    _record(benchmark, "flower-51-100")
    _ratio(benchmark, "flower-51-100", "ours-51-100", "speedup_of_secagg_over_this_baseline")
    benchmark.extra_info["target_speedup"] = 100


# ---------------------------------------------------------------- batch t=51, n=100, 100 secrets


@pytest.mark.benchmark(group="shamir-batch-51-100")
def test_secagg_batch_51_100_100_secrets(benchmark):
    secrets_ = np.frombuffer(os.urandom(100 * 32), dtype=np.uint8).reshape(100, 32)
    xs = np.arange(1, 101)

    def run():
        vals = split_batch(secrets_, 51, xs)
        return combine_batch(xs[49:], vals[49:], 32, threshold=51)

    assert np.array_equal(benchmark(run), secrets_)
    _record(benchmark, "batch-51")


@pytest.mark.benchmark(group="shamir-batch-51-100")
def test_baseline_single_api_loop_51_100_100_secrets(benchmark):
    secrets_ = [os.urandom(32) for _ in range(100)]

    def run():
        return [combine(split(s, 51, 100)[49:]) for s in secrets_]

    assert benchmark.pedantic(run, rounds=5, iterations=1) == secrets_
    _record(benchmark, "loop-51")
    _ratio(benchmark, "loop-51", "batch-51", "speedup_of_batch_over_loop")


# ---------------------------------------------------------------- batch t=501, n=1000, 1000 secrets


@pytest.mark.benchmark(group="shamir-batch-501-1000")
def test_secagg_batch_501_1000_1000_secrets(benchmark):
    secrets_ = np.frombuffer(os.urandom(1000 * 32), dtype=np.uint8).reshape(1000, 32)
    xs = np.arange(1, 1001)
    survivors = np.sort(np.random.default_rng(0).permutation(1000)[:501])  # which parties answer

    def run():
        vals = split_batch(secrets_, 501, xs)
        return combine_batch(xs[survivors], vals[survivors], 32, threshold=501)

    out = benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    assert np.array_equal(out, secrets_)
    _record(benchmark, "batch-501")
    med = _median(benchmark)
    if med is not None:
        benchmark.extra_info["target_s"] = 5.0
        benchmark.extra_info["within_target"] = med < 5.0


@pytest.mark.benchmark(group="shamir-batch-501-1000")
def test_baseline_single_api_loop_501_1000_1000_secrets(benchmark):
    secrets_ = [os.urandom(32) for _ in range(1000)]

    def run():
        return [combine(split(s, 501, 1000)[499:]) for s in secrets_]

    assert benchmark.pedantic(run, rounds=1, iterations=1) == secrets_
    _record(benchmark, "loop-501")
    _ratio(benchmark, "loop-501", "batch-501", "speedup_of_batch_over_loop")
