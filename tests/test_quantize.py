"""secagg.quantize: floats <-> Z_2^b, exact sums within count x resolution, unbiased rounding."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from secagg.errors import ConfigurationError, EncodingError, InputError, OutOfRangeError, SumOverflowError
from secagg.quantize import Quantizer, clip_l2, default_rng, ring_dtype, ring_sum

ALPHA = 1e-3  # significance level of the statistical tests (fixed seeds: deterministic)


# ---------------------------------------------------------------- round trip
@st.composite
def _sum_case(draw):
    bits = draw(st.sampled_from([16, 32, 64]))
    num_clients = draw(st.integers(1, 200 if bits > 16 else 50))
    count = draw(st.integers(1, min(num_clients, 12)))
    d = draw(st.integers(1, 16))
    clip = draw(st.sampled_from([0.5, 1.0, 3.7, 1000.0]))
    rounding = draw(st.sampled_from(["stochastic", "nearest"]))
    # values up to 3x the clip so that clipping is exercised
    vals = draw(
        st.lists(
            st.lists(st.floats(-3 * clip, 3 * clip, allow_nan=False), min_size=d, max_size=d),
            min_size=count,
            max_size=count,
        )
    )
    seed = draw(st.integers(0, 2**32 - 1))
    return bits, num_clients, count, clip, rounding, np.array(vals, dtype=np.float64), seed


@settings(deadline=None, max_examples=150)
@given(case=_sum_case())
def test_ring_sum_decodes_to_clipped_float_sum_within_count_resolution(case):
    bits, num_clients, count, clip, rounding, vals, seed = case
    q = Quantizer(bound=clip, num_clients=num_clients, bits=bits, rounding=rounding, out_of_range="clip")
    rng = np.random.default_rng(seed)
    enc = np.stack([q.encode(v, rng=rng) for v in vals])
    assert enc.dtype == q.dtype == ring_dtype(bits)
    if bits < 8 * enc.itemsize:
        assert int(enc.max()) < (1 << bits)
    decoded = q.decode(ring_sum(enc, bits), count=count)
    clipped = np.clip(vals, -clip, clip)
    exact = np.array([math.fsum(col) for col in clipped.T])
    err = np.abs(decoded - exact)
    # float64 itself cannot resolve below ~2^-52 of the magnitudes involved (matters only
    # when the scale is capped at 2^53, i.e. for very wide rings)
    float_slack = 4 * count * clip * 2.0**-52
    assert np.all(err <= count * q.resolution + float_slack), (err.max(), count * q.resolution)


@pytest.mark.parametrize("bits", [16, 32, 64])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_full_headroom_never_wraps(bits, sign):
    """num_clients summands all at the clip bound decode to num_clients * clip exactly."""
    n = 7
    q = Quantizer(bound=2.5, num_clients=n, bits=bits, rounding="nearest", out_of_range="clip")
    enc = np.stack([q.encode(np.full(3, sign * 100.0)) for _ in range(n)])  # clipped to +-2.5
    out = q.decode(ring_sum(enc, bits), count=n)
    np.testing.assert_allclose(out, sign * n * 2.5, rtol=1e-12)


def test_quantize_dequantize_and_signed_ring_round_trip():
    q = Quantizer(bound=1.0, num_clients=3, bits=20)
    ints = np.array([-q.q_max, -1, 0, 1, q.q_max], dtype=np.int64)
    ring = q.to_ring(ints)
    assert ring.dtype == np.uint32 and int(ring.max()) < 2**20
    np.testing.assert_array_equal(q.to_signed(ring), ints)
    np.testing.assert_allclose(q.dequantize(ints, count=1), ints / q.scale)


def test_shape_is_preserved():
    q = Quantizer(bound=1.0, num_clients=2)
    x = np.linspace(-1, 1, 12).reshape(3, 4)
    assert q.encode(x, rng=np.random.default_rng(0)).shape == (3, 4)


def test_properties():
    q = Quantizer(bound=2.0, num_clients=10, bits=32)
    assert q.q_max == (2**31 - 1) // 10
    assert q.resolution == pytest.approx(2.0 / q.q_max)
    assert q.modulus == 2**32 and q.dtype == np.uint32
    assert Quantizer(bound=1.0, num_clients=1, bits=33).dtype == np.uint64
    # the scale is capped where float64 stops being exact
    assert Quantizer(bound=1.0, num_clients=1, bits=64).q_max == 2**53


# ---------------------------------------------------------------- stochastic rounding
def test_stochastic_rounding_is_unbiased():
    q = Quantizer(bound=1.0, num_clients=1, bits=8)  # q_max = 127: coarse, so bias would show
    frac = np.array([0.1, 0.25, 0.5, 0.73, 0.9])
    x = (np.array([3, -7, 0, 50, -100]) + frac) / q.scale
    n = 40_000
    ints = q.quantize(np.tile(x, (n, 1)), rng=np.random.default_rng(2024))
    target = x * q.scale
    # rounding is Bernoulli(frac) on top of floor: mean ~ N(target, f(1-f)/n)
    z = (ints.mean(axis=0) - target) / np.sqrt(frac * (1 - frac) / n)
    p = 2 * stats.norm.sf(np.abs(z))
    assert p.min() > ALPHA / len(x)  # Bonferroni over coordinates
    # each draw is one of the two neighbours
    assert np.all((ints == np.floor(target)) | (ints == np.ceil(target)))
    # power check: nearest rounding is visibly biased at the same sample size
    near = Quantizer(bound=1.0, num_clients=1, bits=8, rounding="nearest").quantize(np.tile(x, (n, 1)))
    z_near = (near.mean(axis=0) - target) / np.sqrt(frac * (1 - frac) / n)
    assert np.abs(z_near).max() > 10


def test_rng_makes_encoding_reproducible():
    q = Quantizer(bound=1.0, num_clients=5)
    x = np.linspace(-1, 1, 100)
    a = q.encode(x, rng=np.random.default_rng(7))
    b = q.encode(x, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, q.encode(x, rng=np.random.default_rng(8)))


def test_default_rng():
    g = np.random.default_rng(1)
    assert default_rng(g) is g
    assert isinstance(default_rng(), np.random.Generator)
    with pytest.raises(InputError, match="Generator"):
        default_rng(42)


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(bound=1.0, num_clients=2**15, bits=16), "cannot fit"),
        (dict(bound=1.0, num_clients=3, bits=2), "cannot fit"),
        (dict(bound=1.0, num_clients=10, bits=1), "bits"),
        (dict(bound=1.0, num_clients=10, bits=65), "bits"),
        (dict(bound=1.0, num_clients=10, bits=32.0), "bits"),
        (dict(bound=0.0, num_clients=10), "bound"),
        (dict(bound=-1.0, num_clients=10), "bound"),
        (dict(bound=float("nan"), num_clients=10), "bound"),
        (dict(bound=float("inf"), num_clients=10), "bound"),
        (dict(bound=1.0, num_clients=0), "num_clients"),
        (dict(bound=1.0, num_clients=2.5), "num_clients"),
        (dict(bound=1.0, num_clients=2, rounding="up"), "rounding"),
        (dict(bound=1.0, num_clients=2, out_of_range="wrap"), "out_of_range must be 'raise'"),
        (dict(bound=True, num_clients=2), "bound"),
        (dict(num_clients=2), "needs bound="),
        (dict(bound=1.0), "needs num_clients="),
        (dict(bound=1.0, clip=1.0, num_clients=2), "give bound= only"),
    ],
)
def test_impossible_configuration_raises(kwargs, match):
    with pytest.raises(ConfigurationError, match=match):
        Quantizer(**kwargs)


def test_largest_fitting_configuration_is_accepted():
    q = Quantizer(bound=1.0, num_clients=2**15 - 1, bits=16)
    assert q.q_max == 1


@pytest.mark.parametrize("bad", [[1.0, np.nan], [np.inf, 0.0], [-np.inf], "abc", [[1.0], [2.0, 3.0]]])
def test_nan_inf_and_non_numeric_input_raise(bad):
    q = Quantizer(bound=1.0, num_clients=2)
    with pytest.raises(InputError):
        q.encode(bad)


def test_decode_with_more_summands_than_headroom_raises():
    q = Quantizer(bound=1.0, num_clients=4)
    total = q.encode([0.5])
    with pytest.raises(SumOverflowError, match="num_clients >= 5"):
        q.decode(total, count=5)
    for bad in (-1, 1.5, "2"):
        with pytest.raises(InputError, match="count"):
            q.decode(total, count=bad)


@pytest.mark.parametrize("bits", [16, 32, 40])
def test_corrupted_sum_outside_reachable_range_raises(bits):
    q = Quantizer(bound=1.0, num_clients=10, bits=bits)
    count = 2
    reachable = q.to_ring(np.array([count * q.q_max, -count * q.q_max]))
    np.testing.assert_allclose(q.decode(reachable, count=count), [count * 1.0, -count * 1.0])
    corrupted = q.to_ring(np.array([count * q.q_max + 1]))
    with pytest.raises(SumOverflowError, match="corrupted"):
        q.decode(corrupted, count=count)


def test_corrupted_64_bit_sum_at_int64_min_raises():
    q = Quantizer(bound=1.0, num_clients=4, bits=64)
    with pytest.raises(SumOverflowError):
        q.decode(np.array([2**63], dtype=np.uint64), count=2)


def test_ring_values_must_be_integers():
    q = Quantizer(bound=1.0, num_clients=2)
    for call in (q.to_ring, q.to_signed, lambda a: q.dequantize(a, 1)):
        with pytest.raises(InputError):
            call(np.array([0.5]))


# ---------------------------------------------------------------- ring helpers
def test_ring_sum_wraps_and_masks_narrow_rings():
    a = np.array([[2**20 - 1, 5], [3, 2**20 - 1]], dtype=np.uint32)
    np.testing.assert_array_equal(ring_sum(a, 20), [2, 4])
    b = np.array([[2**32 - 1], [2]], dtype=np.uint32)
    np.testing.assert_array_equal(ring_sum(b, 32), [1])
    c = np.array([[2**64 - 1], [3]], dtype=np.uint64)
    np.testing.assert_array_equal(ring_sum(c, 64), [2])
    with pytest.raises(InputError, match="dtype"):
        ring_sum(a, 40)


# ---------------------------------------------------------------- clip_l2
def test_clip_l2_scales_down_only_long_vectors():
    x = np.array([3.0, 4.0])  # norm 5
    out = clip_l2(x, 1.0)
    assert np.linalg.norm(out) == pytest.approx(1.0)
    np.testing.assert_allclose(out / np.linalg.norm(out), x / 5.0)  # same direction
    np.testing.assert_array_equal(x, [3.0, 4.0])  # input untouched
    inside = clip_l2(x, 5.0)
    np.testing.assert_array_equal(inside, x)
    assert inside is not x
    np.testing.assert_array_equal(clip_l2(np.zeros(3), 1.0), np.zeros(3))


@settings(deadline=None, max_examples=50)
@given(
    x=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=20),
    c=st.floats(1e-3, 1e3),
)
def test_clip_l2_norm_bound_property(x, c):
    arr = np.array(x)
    out = clip_l2(arr, c)
    assert np.linalg.norm(out) <= c * (1 + 1e-12)
    if np.linalg.norm(arr) <= c:
        np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("max_norm", [0.0, -1.0, float("nan"), float("inf")])
def test_clip_l2_bad_norm_raises(max_norm):
    with pytest.raises(InputError, match="max_norm"):
        clip_l2(np.ones(3), max_norm)


def test_clip_l2_nan_raises():
    with pytest.raises(InputError, match="NaN"):
        clip_l2(np.array([1.0, np.nan]), 1.0)


# ---------------------------------------------------------------- review R2: float range of the scale
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(bound=1e-300, num_clients=1),  # scale = q_max / clip overflows to inf
        dict(bound=5e-324, num_clients=3, bits=64),
        dict(bound=1e308, num_clients=10),  # a sum of 10 clipped values is not a finite float
    ],
)
def test_bound_whose_scale_or_sum_is_not_a_finite_float_is_refused(kwargs):
    with pytest.raises(ConfigurationError, match="bound"):
        Quantizer(**kwargs)


def test_largest_finite_bound_still_decodes_exactly():
    q = Quantizer(bound=1e307, num_clients=10, rounding="nearest")
    total = ring_sum(np.stack([q.encode([1e307, -1e307])] * 10), 32)
    np.testing.assert_allclose(q.decode(total, 10), [1e308, -1e308], rtol=1e-9)


def test_zero_dimensional_input_is_encoded_like_a_scalar():
    for rounding in ("nearest", "stochastic"):
        q = Quantizer(bound=1.0, num_clients=2, rounding=rounding)
        enc = q.encode(0.5, np.random.default_rng(0))
        assert enc.shape == () and enc.dtype == np.uint32
        assert abs(float(q.decode(enc, 1)) - 0.5) <= q.resolution


# ---------------------------------------------------------------- out-of-range policy (issue 14)
@st.composite
def _range_case(draw):
    bound = draw(st.sampled_from([0.5, 1.0, 7.5]))
    shape = draw(st.sampled_from([(5,), (3, 4), (2, 3, 2)]))
    vals = draw(st.lists(st.floats(-4 * bound, 4 * bound, allow_nan=False), min_size=int(np.prod(shape)),
                         max_size=int(np.prod(shape))))
    return bound, np.array(vals).reshape(shape)


@settings(deadline=None, max_examples=80)
@given(case=_range_case())
def test_clip_policy_counts_exactly_the_values_beyond_the_bound(case):
    bound, x = case
    q = Quantizer(bound=bound, num_clients=3, out_of_range="clip", rounding="nearest")
    ring, clipped = q.encode(x, return_clipped=True)
    expected = (np.abs(x) > bound).sum(axis=-1)
    assert clipped.shape == x.shape[:-1] and clipped.dtype == np.int64
    np.testing.assert_array_equal(clipped, expected)
    np.testing.assert_array_equal(q.count_out_of_range(x), expected)
    # the encoding is that of the clipped values
    np.testing.assert_allclose(q.decode(ring, 1), np.clip(x, -bound, bound), atol=q.resolution)


@settings(deadline=None, max_examples=80)
@given(case=_range_case())
def test_raise_policy_refuses_exactly_when_a_value_is_beyond_the_bound(case):
    bound, x = case
    q = Quantizer(bound=bound, num_clients=3)
    n_out = int((np.abs(x) > bound).sum())
    if n_out == 0:
        q.encode(x)
        return
    with pytest.raises(OutOfRangeError) as info:
        q.encode(x)
    err = info.value
    assert (err.count, err.size, err.bound) == (n_out, x.size, bound)
    assert err.max_abs == pytest.approx(float(np.abs(x).max()))
    assert isinstance(err, EncodingError) and "\n" not in str(err)


def test_default_raises_with_a_message_that_names_the_bound_and_the_clip_option():
    w = np.random.default_rng(0).normal(0, 3, size=(10, 4))
    with pytest.raises(OutOfRangeError, match=r"of 40 input values lie outside \[-1, 1\].*bound=.*out_of_range='clip'"):
        Quantizer(bound=1.0, num_clients=10).encode(w)


def test_roundoff_above_the_bound_is_not_an_error():
    # an L2-clipped one-hot vector may exceed its norm by an ulp; that is not out of range
    bound = 0.1
    x = np.array([np.nextafter(bound, 1.0), -np.nextafter(bound, 1.0), 0.0])
    q = Quantizer(bound=bound, num_clients=2, rounding="nearest")
    ring, clipped = q.encode(x, return_clipped=True)
    assert int(clipped) == 0
    np.testing.assert_allclose(q.decode(ring, 1), [bound, -bound, 0.0], atol=q.resolution)


def test_old_clip_keyword_still_works_with_a_deprecation_warning():
    with pytest.warns(DeprecationWarning, match="bound="):
        q = Quantizer(clip=2.0, num_clients=3)
    assert q == Quantizer(2.0, 3)
    with pytest.warns(DeprecationWarning, match="Quantizer.bound"):
        assert q.clip == 2.0
