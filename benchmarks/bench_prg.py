"""Benchmarks for secagg.prg: mask expansion and in-place masked add at d = 10^6.

Each group holds the technique and its baseline in the same run:

* ``prg-expand-1e6``: ``prg.expand(seed, 10^6, uint32)`` vs the raw AES-CTR keystream
  of 4 * 10^6 bytes from ``cryptography`` (``encryptor.update`` on zero bytes).
* ``prg-masked-add-1e6``: ``prg.add_mask`` in place vs raw keystream + ``np.frombuffer``
  + ``np.add``, and the INSECURE reference ``mt19937-mask`` (a Mersenne Twister seeded
  with 32 bits, as Flower's SecAgg+ does; brute-forceable, shown for cost only).
* ``prg-add-masks-8-seeds-1e6``: ``prg.add_masks`` with 8 seeds (a SecAgg+ client with 8
  neighbours) vs 8 sequential raw keystream + add passes.

Same-run ratios (technique / baseline, min-of-N wall time) are in ``extra_info``.
Run: ``pytest benchmarks/bench_prg.py --benchmark-only``.
"""

from __future__ import annotations


import numpy as np
import pytest
from _timing import min_time
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from secagg import prg

D = 10**6
SEED = bytes(range(16))
ZEROS = bytes(4 * D)
REPEATS = 30


def raw_keystream() -> bytes:
    enc = Cipher(algorithms.AES(SEED), modes.CTR(bytes(16))).encryptor()
    return enc.update(ZEROS)


def raw_keystream_add(acc: np.ndarray) -> np.ndarray:
    np.add(acc, np.frombuffer(raw_keystream(), dtype=np.uint32), out=acc)
    return acc


def mt19937_mask_add(acc: np.ndarray, seed32: int = 123456789) -> np.ndarray:
    """INSECURE reference: Flower-style mask from a 32-bit-seeded Mersenne Twister."""
    gen = np.random.Generator(np.random.MT19937(seed32))
    np.add(acc, gen.integers(0, 2**32, size=acc.size, dtype=np.uint32), out=acc)
    return acc


# ---------------------------------------------------------------- expand
@pytest.mark.benchmark(group="prg-expand-1e6")
def test_expand_uint32(benchmark):
    out = benchmark(prg.expand, SEED, D, np.uint32)
    assert out.shape == (D,)
    t_prg = min_time(lambda: prg.expand(SEED, D, np.uint32), REPEATS, warmup=True)
    t_raw = min_time(raw_keystream, REPEATS, warmup=True)
    benchmark.extra_info["ratio_vs_raw_keystream"] = round(t_prg / t_raw, 3)
    benchmark.extra_info["ns_per_element"] = round(t_prg / D * 1e9, 3)


@pytest.mark.benchmark(group="prg-expand-1e6")
def test_raw_aes_ctr_keystream_baseline(benchmark):
    out = benchmark(raw_keystream)
    assert len(out) == 4 * D


# ---------------------------------------------------------------- masked add
@pytest.mark.benchmark(group="prg-masked-add-1e6")
def test_add_mask_in_place(benchmark):
    acc = np.zeros(D, dtype=np.uint32)
    benchmark(prg.add_mask, acc, SEED, 1)
    t_prg = min_time(lambda: prg.add_mask(acc, SEED, 1), REPEATS, warmup=True)
    t_raw = min_time(lambda: raw_keystream_add(acc), REPEATS, warmup=True)
    t_mt = min_time(lambda: mt19937_mask_add(acc), 10, warmup=True)
    benchmark.extra_info["ratio_vs_raw_keystream_plus_add"] = round(t_prg / t_raw, 3)
    benchmark.extra_info["mt19937_over_add_mask"] = round(t_mt / t_prg, 3)
    benchmark.extra_info["ns_per_element"] = round(t_prg / D * 1e9, 3)


@pytest.mark.benchmark(group="prg-masked-add-1e6")
def test_raw_keystream_plus_numpy_add_baseline(benchmark):
    acc = np.zeros(D, dtype=np.uint32)
    benchmark(raw_keystream_add, acc)


@pytest.mark.benchmark(group="prg-masked-add-1e6")
def test_mt19937_mask_insecure_reference(benchmark):
    """Flower's approach (32-bit MT seed): brute-forceable; cost reference only."""
    acc = np.zeros(D, dtype=np.uint32)
    benchmark(mt19937_mask_add, acc)


# ---------------------------------------------------------------- many seeds
SEEDS8 = [bytes([i]) * 16 for i in range(8)]
SIGNS8 = [1, -1] * 4


@pytest.mark.benchmark(group="prg-add-masks-8-seeds-1e6")
def test_add_masks_8_seeds(benchmark):
    acc = np.zeros(D, dtype=np.uint32)
    benchmark(prg.add_masks, acc, SEEDS8, SIGNS8)

    def sequential():
        for _ in SEEDS8:
            raw_keystream_add(acc)

    t_prg = min_time(lambda: prg.add_masks(acc, SEEDS8, SIGNS8), 10, warmup=True)
    t_raw = min_time(sequential, 10, warmup=True)
    benchmark.extra_info["ratio_vs_8x_raw_keystream_plus_add"] = round(t_prg / t_raw, 3)


@pytest.mark.benchmark(group="prg-add-masks-8-seeds-1e6")
def test_8x_raw_keystream_plus_add_baseline(benchmark):
    acc = np.zeros(D, dtype=np.uint32)

    def sequential():
        for _ in SEEDS8:
            raw_keystream_add(acc)

    benchmark(sequential)
