"""Packed Paillier vs scalar python-paillier (phe), 2048-bit keys, in the same run.

Groups (each holds the technique and its phe baseline):

* ``paillier-encrypt``: per-element encryption, phe ``encrypt(float)`` vs packed vectors
  with ``obfuscation="full"`` and ``"fast"`` at 16- and 32-bit values;
* ``paillier-add``: per-element homomorphic addition;
* ``paillier-decrypt``: per-element decryption (bounded by slots per ciphertext);
* ``paillier-bytes``: serialization, and the ciphertext expansion for d = 100,000 at
  16-bit values and 100 summands (computed from the layout).

Speed-ups (phe seconds per element / packed seconds per element, both measured in this
run; phe is timed on a small sample) are stored in ``extra_info``. Run with
``pytest benchmarks/bench_paillier.py --benchmark-only``.
"""

from __future__ import annotations


import numpy as np
import pytest
from _timing import min_time

from secagg import Quantizer
from secagg import paillier as P

KEY_BITS = 2048
PHE_SAMPLE = 20
SUMMANDS = 100


@pytest.fixture(scope="module")
def keys():
    return P.generate_keypair(KEY_BITS)


#: per-element seconds of the phe baselines, filled by the phe benchmarks of this run
_PHE: dict[str, float] = {}


@pytest.fixture(scope="module")
def _phe_sampled(keys):
    """Fallback when a phe baseline benchmark was deselected: time it here (min of 3)."""
    pk, sk = keys
    vals = np.random.default_rng(0).uniform(-1, 1, PHE_SAMPLE).tolist()
    cts = [pk.encrypt(v) for v in vals]
    enc = min_time(lambda: [pk.encrypt(v) for v in vals]) / PHE_SAMPLE
    add = min_time(lambda: [a + b for a, b in zip(cts, cts[1:] + cts[:1])], 5) / PHE_SAMPLE
    dec = min_time(lambda: [sk.decrypt(c) for c in cts[:10]]) / 10
    return {"encrypt": enc, "add": add, "decrypt": dec}


@pytest.fixture
def phe_costs(request):
    """``op -> phe seconds per element``: from this run's baseline benchmark of the same
    group (it runs first), else sampled by ``_phe_sampled``."""

    def cost(op: str) -> float:
        return _PHE[op] if op in _PHE else request.getfixturevalue("_phe_sampled")[op]

    return cost


def _quantizer(bits: int) -> Quantizer:
    return Quantizer(bound=1.0, num_clients=SUMMANDS, bits=bits)


def _vector(d: int) -> np.ndarray:
    return np.random.default_rng(1).uniform(-1, 1, d)


def _record(benchmark, phe_costs, op: str, d: int, layout=None) -> None:
    per_element = benchmark.stats.stats.min / d
    benchmark.extra_info["seconds_per_element"] = per_element
    base = phe_costs(op)
    benchmark.extra_info["phe_seconds_per_element"] = base
    benchmark.extra_info["speedup_vs_phe"] = base / per_element
    if layout is not None:
        benchmark.extra_info["slots_per_ciphertext"] = layout.slots
        benchmark.extra_info["slot_bits"] = layout.slot_bits


# ---------------------------------------------------------------- encryption
@pytest.mark.benchmark(group="paillier-encrypt")
def test_phe_encrypt_scalar(benchmark, keys):
    pk, _ = keys
    vals = _vector(PHE_SAMPLE).tolist()
    benchmark.pedantic(lambda: [pk.encrypt(v) for v in vals], rounds=3, iterations=1)
    _PHE["encrypt"] = benchmark.extra_info["seconds_per_element"] = benchmark.stats.stats.min / PHE_SAMPLE


@pytest.mark.benchmark(group="paillier-encrypt")
@pytest.mark.parametrize(
    "obfuscation,bits,d",
    [("full", 16, 127 * 8), ("full", 32, 63 * 8), ("fast", 16, 127 * 64), ("fast", 32, 63 * 64)],
)
def test_packed_encrypt(benchmark, keys, phe_costs, obfuscation, bits, d):
    pk, _ = keys
    q, x = _quantizer(bits), _vector(d)
    enc = P.Encryptor(pk, obfuscation=obfuscation)
    enc.obfuscators(1)  # build the fast table outside the timing (once per key per client)
    ev = benchmark.pedantic(lambda: P.encrypt_vector(pk, x, q, encryptor=enc), rounds=3, iterations=1)
    _record(benchmark, phe_costs, "encrypt", d, ev.layout)
    benchmark.extra_info["obfuscation"] = obfuscation


@pytest.mark.benchmark(group="paillier-encrypt")
def test_fast_table_build(benchmark, keys):
    """One-off cost of the fixed-base table for "fast" (per key, per client)."""
    pk, _ = keys
    benchmark.pedantic(lambda: P.Encryptor(pk, obfuscation="fast").obfuscators(1), rounds=2, iterations=1)


# ---------------------------------------------------------------- addition
@pytest.mark.benchmark(group="paillier-add")
def test_phe_add_scalar(benchmark, keys):
    pk, _ = keys
    cts = [pk.encrypt(v) for v in _vector(PHE_SAMPLE).tolist()]
    other = cts[1:] + cts[:1]
    benchmark(lambda: [a + b for a, b in zip(cts, other)])
    _PHE["add"] = benchmark.extra_info["seconds_per_element"] = benchmark.stats.stats.min / PHE_SAMPLE


@pytest.mark.benchmark(group="paillier-add")
@pytest.mark.parametrize("bits", [16, 32])
def test_packed_add(benchmark, keys, phe_costs, bits):
    pk, _ = keys
    d = 127 * 64
    q = _quantizer(bits)
    enc = P.Encryptor(pk, obfuscation="fast")
    a = P.encrypt_vector(pk, _vector(d), q, encryptor=enc)
    b = P.encrypt_vector(pk, -_vector(d), q, encryptor=enc)
    benchmark(lambda: a + b)
    _record(benchmark, phe_costs, "add", d, a.layout)


# ---------------------------------------------------------------- decryption
@pytest.mark.benchmark(group="paillier-decrypt")
def test_phe_decrypt_scalar(benchmark, keys):
    pk, sk = keys
    cts = [pk.encrypt(v) for v in _vector(10).tolist()]
    benchmark.pedantic(lambda: [sk.decrypt(c) for c in cts], rounds=3, iterations=1)
    _PHE["decrypt"] = benchmark.extra_info["seconds_per_element"] = benchmark.stats.stats.min / 10


@pytest.mark.benchmark(group="paillier-decrypt")
@pytest.mark.parametrize("bits", [16, 32])
def test_packed_decrypt(benchmark, keys, phe_costs, bits):
    pk, sk = keys
    q = _quantizer(bits)
    layout = P.layout_for(q, KEY_BITS, 1)
    d = layout.slots * 8
    ev = P.encrypt_vector(pk, _vector(d), q, obfuscation="fast")
    out = benchmark.pedantic(lambda: P.decrypt_vector(sk, ev), rounds=3, iterations=1)
    assert out.shape == (d,)
    _record(benchmark, phe_costs, "decrypt", d, ev.layout)
    benchmark.extra_info["slots_bound"] = layout.slots


# ---------------------------------------------------------------- bytes
@pytest.mark.benchmark(group="paillier-bytes")
def test_phe_serialize_scalar(benchmark, keys):
    """phe's usual wire form: decimal ciphertext strings (as in its JSON examples)."""
    pk, _ = keys
    cts = [pk.encrypt(v) for v in _vector(PHE_SAMPLE).tolist()]
    out = benchmark(lambda: [str(c.ciphertext(be_secure=False)) for c in cts])
    per_value = sum(len(s) for s in out) / PHE_SAMPLE
    benchmark.extra_info["bytes_per_element"] = per_value
    benchmark.extra_info["expansion"] = per_value / 4


@pytest.mark.benchmark(group="paillier-bytes")
def test_packed_serialize(benchmark, keys):
    pk, _ = keys
    q = _quantizer(16)
    d = 127 * 64
    ev = P.encrypt_vector(pk, _vector(d), q, obfuscation="fast")
    data = benchmark(ev.to_bytes)
    benchmark.extra_info["bytes_per_element"] = len(data) / d
    benchmark.extra_info["expansion"] = len(data) / (4 * d)
    # the target point, from the layout: d = 100,000, 16-bit values, 100 summands
    big = P.layout_for(q, KEY_BITS, 100_000)
    benchmark.extra_info["expansion_d100k_16bit_100summands"] = (52 + big.num_ciphertexts * ev.ciphertext_bytes) / (
        4 * 100_000
    )
    assert benchmark.extra_info["expansion_d100k_16bit_100summands"] <= 3.0
