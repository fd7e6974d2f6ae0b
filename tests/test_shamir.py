"""Tests for secagg.shamir: reconstruction from any t shares, secrecy of t-1 shares
(statistical, alpha = 1e-3, fixed seed), error handling, wire format, batch API."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from secagg import shamir
from secagg.errors import DecodeError, InputError, SecretSharingError
from secagg.shamir import (
    LIMB_BITS,
    PRIME,
    Share,
    combine,
    combine_batch,
    decode_share_values,
    encode_share_values,
    lagrange_weights,
    num_limbs,
    split,
    split_batch,
)

ALPHA = 1e-3


@pytest.fixture
def seeded_urandom(monkeypatch):
    """Replace the coefficient byte source by a seeded generator so statistical tests are
    deterministic in CI (the sampling, rejection and share arithmetic stay the real ones)."""
    gen = np.random.default_rng(20240601)
    monkeypatch.setattr(shamir, "_urandom", lambda n: gen.bytes(n))
    return gen


# ----------------------------------------------------------------------------- field basics


def test_prime_and_limb_layout_constants():
    import gmpy2

    assert gmpy2.is_prime(PRIME)
    assert 2**LIMB_BITS < PRIME < 2**21
    assert num_limbs(32) == 13
    assert num_limbs(1) == 1
    assert num_limbs(5) == 2  # 40 bits = 2 limbs exactly


@given(st.binary(min_size=1, max_size=80), st.integers(1, 5))
@settings(deadline=None, max_examples=60)
def test_limb_encoding_is_bijective_and_below_p(secret, copies):
    arr = np.frombuffer(secret * copies, dtype=np.uint8).reshape(copies, -1)
    limbs = shamir._to_limbs(arr)
    assert limbs.shape == (copies, num_limbs(len(secret)))
    assert limbs.max() < 2**LIMB_BITS < PRIME
    # little-endian integer layout: limb j = bits [20j, 20j+20)
    as_int = int.from_bytes(secret, "little")
    expected = [(as_int >> (LIMB_BITS * j)) & (2**LIMB_BITS - 1) for j in range(limbs.shape[1])]
    assert limbs[0].tolist() == expected
    assert np.array_equal(shamir._from_limbs(limbs, len(secret)), arr)


def test_matmul_mod_is_exact_beyond_one_chunk():
    rng = np.random.default_rng(7)
    k = shamir._MAX_INNER + 700  # forces the chunked path
    a = rng.integers(0, PRIME, size=(3, k))
    b = rng.integers(0, PRIME, size=(k, 4))
    a[:, :50] = PRIME - 1  # worst-case magnitudes
    b[:50] = PRIME - 1
    got = shamir._matmul_mod(a.astype(np.float64), b.astype(np.float64))
    ai, bi = a.astype(object), b.astype(object)  # Python ints: exact
    ref = [[int(ai[i] @ bi[:, c]) % PRIME for c in range(4)] for i in range(3)]
    assert got.astype(np.int64).tolist() == ref


def test_reduce_inplace_matches_integer_mod():
    rng = np.random.default_rng(3)
    vals = rng.integers(0, 2**53, size=100_000, dtype=np.int64)
    vals[:4] = [0, PRIME, 2**53 - 1, PRIME * (2**31)]
    got = shamir._reduce_inplace(vals.astype(np.float64))
    assert np.array_equal(got.astype(np.int64), vals % PRIME)


def test_random_field_is_in_range_and_uses_all_values(seeded_urandom):
    v = shamir._random_field(200_000)
    assert v.dtype == np.uint32 and v.min() >= 0 and v.max() < PRIME
    # top of the range is reachable (no truncation to 2^20)
    assert v.max() > 2**21 - 2**14


def test_lagrange_weights_interpolate_polynomials():
    rng = np.random.default_rng(11)
    xs = np.array([3, 17, 250, 9999, PRIME - 1])
    coeffs = [int(c) for c in rng.integers(0, PRIME, size=xs.size)]

    def f(x):
        return sum(c * pow(int(x), k, PRIME) for k, c in enumerate(coeffs)) % PRIME

    at = [0, 1, 2, 12345]
    w = lagrange_weights(xs, at)
    assert w.shape == (4, 5)
    ys = np.array([f(x) for x in xs], dtype=object)
    for r, a in enumerate(at):
        assert int(np.dot(w[r].astype(object), ys) % PRIME) == f(a)
    with pytest.raises(InputError):
        lagrange_weights(xs, 17)  # at coincides with a share point


# ----------------------------------------------------------------------------- reconstruction


@given(
    secret=st.one_of(st.binary(min_size=32, max_size=32), st.binary(min_size=1, max_size=70)),
    n=st.integers(1, 40),
    data=st.data(),
)
@settings(deadline=None, max_examples=80)
def test_any_t_subset_reconstructs(secret, n, data):
    t = data.draw(st.integers(1, n), label="t")
    shares = split(secret, t, n)
    assert [s.x for s in shares] == list(range(1, n + 1))
    k = data.draw(st.integers(t, n), label="k")
    subset = data.draw(st.permutations(shares), label="order")[:k]
    assert combine(subset) == secret
    assert combine(subset, verify=True) == secret


@given(
    ids=st.lists(st.integers(0, PRIME - 2), min_size=2, max_size=25, unique=True),
    secret=st.binary(min_size=1, max_size=40),
    data=st.data(),
)
@settings(deadline=None, max_examples=50)
def test_arbitrary_xs_such_as_neighbour_ids(ids, secret, data):
    xs = [i + 1 for i in ids]
    t = data.draw(st.integers(1, len(xs)), label="t")
    shares = split(secret, t, xs=xs)
    assert [s.x for s in shares] == xs
    chosen = data.draw(st.permutations(shares), label="order")[:t]
    assert combine(chosen) == secret


def test_single_secret_t51_n100_all_windows():
    secret = os.urandom(32)
    shares = split(secret, 51, 100)
    for start in (0, 20, 49):
        assert combine(shares[start : start + 51]) == secret
    assert combine(shares[::-1]) == secret


def test_large_threshold_beyond_one_chunk():
    # t > _MAX_INNER exercises the chunked exact products in split and combine
    t = shamir._MAX_INNER + 60
    xs = np.arange(1, t + 1) * 7  # arbitrary distinct xs
    secrets_ = np.frombuffer(os.urandom(3 * 32), dtype=np.uint8).reshape(3, 32)
    vals = split_batch(secrets_, t, xs)
    rng = np.random.default_rng(5)
    idx = rng.permutation(t)
    assert np.array_equal(combine_batch(xs[idx], vals[idx], 32, threshold=t), secrets_)


def test_ten_thousand_parties_small_threshold():
    xs = np.arange(1, 10_001)
    secrets_ = np.frombuffer(os.urandom(4 * 32), dtype=np.uint8).reshape(4, 32)
    vals = split_batch(secrets_, 7, xs)
    assert vals.shape == (10_000, 4, 13) and vals.dtype == np.uint32
    assert vals.max() < PRIME
    pick = np.array([0, 1234, 5000, 7777, 8888, 9998, 9999])
    assert np.array_equal(combine_batch(xs[pick], vals[pick], 32, threshold=7), secrets_)
    shares = split(b"k" * 32, 5, 10_000)
    assert combine(shares[-5:]) == b"k" * 32


def test_fresh_randomness_per_split():
    secret = b"\x00" * 32
    a, b = split(secret, 3, 5), split(secret, 3, 5)
    assert a[0].tag != b[0].tag
    assert not np.array_equal(a[0].values, b[0].values)


def test_threshold_one_shares_are_the_secret_limbs():
    shares = split(b"abc", 1, 4)
    assert all(np.array_equal(s.values, shares[0].values) for s in shares)
    assert combine([shares[2]]) == b"abc"


# ----------------------------------------------------------------------------- secrecy (statistics)


def _t_minus_1_share_samples(secret: bytes, threshold: int, xs: list[int], trials: int):
    """(t-1, trials, L) share values of the first t-1 parties over ``trials`` sharings."""
    arr = np.frombuffer(secret * trials, dtype=np.uint8).reshape(trials, len(secret))
    vals = split_batch(arr, threshold, xs)  # every secret of the batch is an independent sharing
    return vals[: threshold - 1]  # (t-1, trials, L)


def _chi2_uniform_pvalue(values: np.ndarray, bins: int) -> float:
    """Chi-square goodness of fit of field elements to uniform over GF(p), with bins of
    exactly known (unequal) sizes: bin b = floor(v * bins / p)."""
    b = (values.astype(np.int64) * bins) // PRIME
    observed = np.bincount(b.ravel(), minlength=bins)
    edges = -(-np.arange(bins + 1) * PRIME // bins)  # first v with floor(v*bins/p) >= i
    probs = np.diff(edges) / PRIME
    return stats.chisquare(observed, probs * observed.sum()).pvalue


def test_t_minus_1_shares_are_uniform_over_the_field(seeded_urandom):
    t = 4
    secret = bytes(range(32))
    samples = _t_minus_1_share_samples(secret, t, [1, 2, 3, 4, 5, 6], trials=4000)
    # marginal of every element: 3 shares x 4000 sharings x 13 limbs = 156,000 values
    assert _chi2_uniform_pvalue(samples, bins=128) > ALPHA
    # joint law of the t-1 = 3 shares of limb 0: 8 x 8 x 8 cells
    cells = ((samples[:, :, 0].astype(np.int64) * 8) // PRIME).T  # (trials, 3)
    idx = cells[:, 0] * 64 + cells[:, 1] * 8 + cells[:, 2]
    observed = np.bincount(idx, minlength=512)
    edges = -(-np.arange(9) * PRIME // 8)
    p1 = np.diff(edges) / PRIME
    probs = np.einsum("i,j,k->ijk", p1, p1, p1).ravel()
    assert stats.chisquare(observed, probs * observed.sum()).pvalue > ALPHA


def test_t_minus_1_share_distribution_does_not_depend_on_secret(seeded_urandom):
    t = 3
    xs = [5, 9, 100, 101]
    zeros = _t_minus_1_share_samples(b"\x00" * 32, t, xs, trials=3000)
    ones = _t_minus_1_share_samples(b"\xff" * 32, t, xs, trials=3000)
    bins = 64
    table = np.stack(
        [
            np.bincount(((s.astype(np.int64) * bins) // PRIME).ravel(), minlength=bins)
            for s in (zeros, ones)
        ]
    )
    assert stats.chi2_contingency(table).pvalue > ALPHA
    assert stats.ks_2samp(zeros.ravel(), ones.ravel()).pvalue > ALPHA


def test_statistical_check_has_power_when_threshold_is_met(seeded_urandom):
    # Negative control: t shares (here t = 1: the share IS the limb) are not uniform, and
    # the same test statistic rejects them decisively.
    arr = np.frombuffer(b"\x00\x01" * 16 * 2000, dtype=np.uint8).reshape(2000, 32)
    vals = split_batch(arr, 1, [1, 2])[:1]
    assert _chi2_uniform_pvalue(vals, bins=128) < ALPHA


# ----------------------------------------------------------------------------- bad shares


def test_fewer_than_threshold_raises():
    shares = split(b"s" * 32, 5, 9)
    with pytest.raises(SecretSharingError, match="threshold=5"):
        combine(shares[:4])
    with pytest.raises(SecretSharingError):
        combine([])
    vals = split_batch([b"s" * 32], 5, range(1, 10))
    with pytest.raises(SecretSharingError):
        combine_batch(range(1, 5), vals[:4], 32, threshold=5)


def test_duplicate_x_raises():
    shares = split(b"s" * 32, 3, 5)
    with pytest.raises(SecretSharingError, match="duplicate"):
        combine([shares[0], shares[1], shares[1]])
    vals = split_batch([b"s" * 32], 3, [1, 2, 3])
    with pytest.raises(SecretSharingError, match="distinct"):
        combine_batch([1, 2, 2], vals, 32)


def test_mixed_sharings_raise():
    a = split(b"a" * 32, 3, 5)
    b = split(b"a" * 32, 3, 5)  # same secret, different sharing
    with pytest.raises(SecretSharingError, match="different sharings"):
        combine([a[0], a[1], b[2]])
    c = split(b"a" * 32, 2, 5)
    with pytest.raises(SecretSharingError):
        combine([a[0], a[1], c[2]])
    d = split(b"a" * 31, 3, 5)
    with pytest.raises(SecretSharingError):
        combine([a[0], a[1], d[2]])


def test_forged_tag_is_detected_by_verify_or_encoding(seeded_urandom):
    a = split(b"A" * 64, 3, 5)
    b = split(b"B" * 64, 3, 5)
    forged = Share(b[3].x, 3, 64, a[0].tag, b[3].values)  # attacker copies the tag
    with pytest.raises(SecretSharingError):
        combine([forged, a[0], a[1]])  # 26 limbs: a mix decodes validly with prob ~2^-26
    with pytest.raises(SecretSharingError, match="inconsistent"):
        combine([a[0], a[1], a[2], forged], verify=True)
    assert combine([a[0], a[1], a[2], forged]) == b"A" * 64  # without verify: first t only


def test_combine_batch_verify_flags_corrupted_rows():
    xs = np.arange(1, 8)
    vals = split_batch([os.urandom(32) for _ in range(5)], 4, xs)
    bad = vals.copy()
    bad[6, 3, 2] = (int(bad[6, 3, 2]) + 1) % PRIME
    with pytest.raises(SecretSharingError, match="inconsistent"):
        combine_batch(xs, bad, 32, threshold=4, verify=True)
    # the first t rows are intact, so without verify the secret is still right
    assert np.array_equal(combine_batch(xs, bad, 32, threshold=4), combine_batch(xs, vals, 32))


# ----------------------------------------------------------------------------- wire format


@given(secret=st.binary(min_size=1, max_size=100), t=st.integers(1, 6))
@settings(deadline=None, max_examples=40)
def test_share_bytes_round_trip(secret, t):
    shares = split(secret, t, 6)
    blobs = [s.to_bytes() for s in shares]
    assert all(len(b) == 29 + 3 * num_limbs(len(secret)) for b in blobs)
    back = [Share.from_bytes(b) for b in blobs]
    assert back == shares
    assert hash(back[0]) == hash(shares[0])
    assert combine(back[-t:]) == secret


def test_malformed_share_bytes_raise_decode_error():
    blob = bytearray(split(b"x" * 32, 2, 3)[0].to_bytes())
    cases = {
        "truncated": bytes(blob[:-1]),
        "extended": bytes(blob) + b"\x00",
        "header only": bytes(blob[:10]),
        "empty": b"",
        "version": bytes([99]) + bytes(blob[1:]),
        "x zero": bytes(blob[:1]) + (0).to_bytes(4, "little") + bytes(blob[5:]),
        "threshold zero": bytes(blob[:5]) + (0).to_bytes(4, "little") + bytes(blob[9:]),
        "secret_len zero": bytes(blob[:9]) + (0).to_bytes(4, "little") + bytes(blob[13:]),
        "huge secret_len": bytes(blob[:9]) + (2**32 - 1).to_bytes(4, "little") + bytes(blob[13:]),
        "value >= p": bytes(blob[:-3]) + b"\xff\xff\xff",
    }
    for data in cases.values():
        with pytest.raises(DecodeError):
            Share.from_bytes(data)
    with pytest.raises(DecodeError):
        Share.from_bytes("not bytes")  # type: ignore[arg-type]


def test_share_values_codec_round_trip_and_errors():
    vals = split_batch([os.urandom(32) for _ in range(3)], 2, [1, 2, 3])
    blob = encode_share_values(vals[1])
    assert len(blob) == 3 * 3 * 13
    assert np.array_equal(decode_share_values(blob, 3, 13), vals[1])
    with pytest.raises(DecodeError):
        decode_share_values(blob[:-1], 3, 13)
    with pytest.raises(DecodeError):
        decode_share_values(blob, 3, 12)
    with pytest.raises(DecodeError):
        decode_share_values(b"\xff\xff\xff" + blob[3:], 3, 13)
    with pytest.raises(InputError):
        encode_share_values(np.array([PRIME]))
    with pytest.raises(InputError):
        encode_share_values(np.array([1.0]))


def test_repr_does_not_leak_values():
    share = split(b"top secret" * 4, 2, 2)[0]
    assert str(int(share.values[0])) not in repr(share).split("values=")[1]
    assert "elements" in repr(share)


def test_share_values_are_read_only():
    share = split(b"q" * 32, 2, 3)[0]
    with pytest.raises(ValueError):
        share.values[0] = 0


# ----------------------------------------------------------------------------- batch API


@given(
    num_secrets=st.integers(1, 12),
    nbytes=st.sampled_from([1, 5, 16, 32, 33]),
    n=st.integers(2, 25),
    data=st.data(),
)
@settings(deadline=None, max_examples=40)
def test_batch_round_trip_any_subset(num_secrets, nbytes, n, data):
    t = data.draw(st.integers(1, n), label="t")
    secrets_ = [os.urandom(nbytes) for _ in range(num_secrets)]
    xs = np.arange(1, n + 1)
    vals = split_batch(secrets_, t, xs)
    assert vals.shape == (n, num_secrets, num_limbs(nbytes))
    rows = data.draw(st.permutations(list(range(n))), label="rows")[:t]
    # through the wire encoding, as the protocol does it
    L = vals.shape[2]
    received = np.stack(
        [decode_share_values(encode_share_values(vals[r]), num_secrets, L) for r in rows]
    )
    out = combine_batch(xs[rows], received, nbytes, threshold=t)
    assert out.shape == (num_secrets, nbytes) and out.dtype == np.uint8
    assert [bytes(r) for r in out] == secrets_


def test_batch_matches_single_api():
    secrets_ = [os.urandom(32) for _ in range(6)]
    xs = [4, 8, 15, 16, 23, 42]
    vals = split_batch(np.frombuffer(b"".join(secrets_), np.uint8).reshape(6, 32), 4, xs)
    for s_idx, secret in enumerate(secrets_):
        shares = [Share(x, 4, 32, b"\x00" * 16, vals[i, s_idx]) for i, x in enumerate(xs)]
        assert combine(shares[2:]) == secret
        single = split(secret, 4, xs=xs)
        stacked = np.stack([s.values for s in single])[:, None, :]
        assert combine_batch(xs, stacked, 32)[0].tobytes() == secret


def test_combine_batch_without_threshold_uses_all_rows():
    xs = np.arange(1, 11)
    secrets_ = np.frombuffer(os.urandom(2 * 32), np.uint8).reshape(2, 32)
    vals = split_batch(secrets_, 6, xs)
    assert np.array_equal(combine_batch(xs[2:], vals[2:], 32), secrets_)


# ----------------------------------------------------------------------------- input validation


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(secret=b"", threshold=1, num_shares=2),
        dict(secret="text", threshold=1, num_shares=2),
        dict(secret=b"s", threshold=0, num_shares=2),
        dict(secret=b"s", threshold=3, num_shares=2),
        dict(secret=b"s", threshold=True, num_shares=2),
        dict(secret=b"s", threshold=1.0, num_shares=2),
        dict(secret=b"s", threshold=1),
        dict(secret=b"s", threshold=1, num_shares=2, xs=[1, 2]),
        dict(secret=b"s", threshold=1, num_shares=0),
        dict(secret=b"s", threshold=1, xs=[0, 1]),
        dict(secret=b"s", threshold=1, xs=[1, PRIME]),
        dict(secret=b"s", threshold=1, xs=[1, 1]),
        dict(secret=b"s", threshold=1, xs=[1.5, 2]),
        dict(secret=b"s", threshold=1, xs=[]),
    ],
)
def test_split_rejects_bad_input(kwargs):
    with pytest.raises(InputError):
        split(**kwargs)


def test_split_batch_rejects_bad_secrets():
    with pytest.raises(InputError, match="same length"):
        split_batch([b"ab", b"abc"], 1, [1])
    with pytest.raises(InputError):
        split_batch([], 1, [1])
    with pytest.raises(InputError):
        split_batch(b"abc", 1, [1])
    with pytest.raises(InputError):
        split_batch(np.zeros((2, 4), dtype=np.int32), 1, [1])
    with pytest.raises(InputError):
        split_batch(np.zeros(4, dtype=np.uint8), 1, [1])
    with pytest.raises(InputError):
        split_batch(np.zeros((2, 0), dtype=np.uint8), 1, [1])


def test_combine_batch_rejects_bad_shapes_and_values():
    vals = split_batch([b"s" * 32], 2, [1, 2, 3])
    with pytest.raises(InputError, match="match"):
        combine_batch([1, 2], vals, 32)
    with pytest.raises(InputError, match="limbs"):
        combine_batch([1, 2, 3], vals, 30)
    with pytest.raises(SecretSharingError, match="padding"):  # 31 bytes also has 13 limbs
        combine_batch([1, 2, 3], vals, 31)
    with pytest.raises(InputError):
        combine_batch([1, 2, 3], vals[:, 0], 32)
    with pytest.raises(InputError):
        combine_batch([1, 2, 3], vals.astype(np.float64), 32)
    bad = vals.astype(np.int64)
    bad[0, 0, 0] = PRIME
    with pytest.raises(InputError, match="field elements"):
        combine_batch([1, 2, 3], bad, 32)
    with pytest.raises(InputError):
        combine_batch([0, 2, 3], vals, 32)
    with pytest.raises(InputError):
        combine([b"not a share"])  # type: ignore[list-item]


def test_share_constructor_validates():
    good = split(b"z" * 32, 2, 2)[0]
    with pytest.raises(InputError):
        Share(0, 2, 32, good.tag, good.values)
    with pytest.raises(InputError):
        Share(1, 2, 32, b"short", good.values)
    with pytest.raises(InputError):
        Share(1, 2, 30, good.tag, good.values)
    with pytest.raises(InputError):
        Share(1, 2, 32, good.tag, np.full(13, PRIME))


def test_module_draws_no_statistical_randomness():
    # secrets must come from os.urandom / secrets, never `random` or np.random
    import inspect

    src = inspect.getsource(shamir)
    assert "import random" not in src and "np.random" not in src


@given(st.lists(st.one_of(
    st.lists(st.integers(0, shamir.PRIME - 1), min_size=6, max_size=6).map(
        lambda v: encode_share_values(np.array(v, dtype=np.uint32))),
    st.binary(min_size=0, max_size=21),
    st.just(b"\xff" * 18),  # right length, values >= PRIME
    st.just("not bytes"),
), max_size=8))
@settings(max_examples=80, deadline=None)
def test_decode_many_agrees_with_decode_one_by_one(blobs):
    rows = shamir.decode_share_values_many(blobs, 2, 3)
    assert len(rows) == len(blobs)
    for blob, row in zip(blobs, rows):
        try:
            want = decode_share_values(blob, 2, 3)
        except DecodeError:
            assert row is None
        else:
            assert row is not None and row.dtype == np.uint32
            np.testing.assert_array_equal(row, want)
