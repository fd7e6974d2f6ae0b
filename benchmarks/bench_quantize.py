"""Benchmarks for secagg.quantize at d = 10^6, each beside a plain NumPy cast.

* ``quantize-encode-1e6``: ``Quantizer.encode`` (clip, scale, stochastic rounding, ring
  reduction) vs ``(x * scale).astype(int64).astype(uint32)`` (truncation, no clipping,
  biased: what a naive fixed-point cast costs).
* ``quantize-decode-1e6``: ``Quantizer.decode`` (signed map + range check + scale) vs
  ``total.view(int32) / scale``.

Same-run ratios (technique / baseline, min-of-N wall time) are in ``extra_info``.
Run: ``pytest benchmarks/bench_quantize.py --benchmark-only``.
"""

from __future__ import annotations


import numpy as np
import pytest
from _timing import min_time

from secagg.quantize import Quantizer

D = 10**6
Q = Quantizer(bound=1.0, num_clients=100, bits=32, out_of_range="clip")  # X exceeds the bound: clip
X = np.random.default_rng(0).uniform(-1.2, 1.2, D)
TOTAL = Q.encode(X, rng=np.random.default_rng(1))
REPEATS = 20


def plain_encode(x: np.ndarray) -> np.ndarray:
    return (x * Q.scale).astype(np.int64).astype(np.uint32)


def plain_decode(total: np.ndarray) -> np.ndarray:
    return total.view(np.int32) / Q.scale


@pytest.mark.benchmark(group="quantize-encode-1e6")
def test_encode(benchmark):
    rng = np.random.default_rng(2)
    out = benchmark(Q.encode, X, rng)
    assert out.dtype == np.uint32 and out.shape == (D,)
    ratio = min_time(lambda: Q.encode(X, rng), REPEATS, warmup=True) / min_time(lambda: plain_encode(X), REPEATS, warmup=True)
    benchmark.extra_info["ratio_vs_plain_cast"] = round(ratio, 3)


@pytest.mark.benchmark(group="quantize-encode-1e6")
def test_plain_cast_baseline(benchmark):
    benchmark(plain_encode, X)


@pytest.mark.benchmark(group="quantize-decode-1e6")
def test_decode(benchmark):
    out = benchmark(Q.decode, TOTAL, 1)
    assert out.dtype == np.float64
    ratio = min_time(lambda: Q.decode(TOTAL, 1), REPEATS, warmup=True) / min_time(lambda: plain_decode(TOTAL), REPEATS, warmup=True)
    benchmark.extra_info["ratio_vs_plain_cast"] = round(ratio, 3)


@pytest.mark.benchmark(group="quantize-decode-1e6")
def test_plain_decode_baseline(benchmark):
    benchmark(plain_decode, TOTAL)
