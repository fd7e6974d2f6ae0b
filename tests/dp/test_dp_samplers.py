"""Sampler tests: pmf (chi-square), mean and variance against the exact distributions.

Every statistical test uses a fixed seed and significance level ALPHA = 1e-3, so CI is
deterministic and a correct sampler fails with probability 1e-3 per seed choice.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from secagg.dp import discrete_gaussian, discrete_laplace, gaussian_mechanism, laplace_mechanism, skellam
from secagg.dp._samplers import discrete_gaussian_pmf, discrete_laplace_pmf, secure_generator
from secagg.errors import InputError

ALPHA = 1e-3
N = 200_000


def _chi2_pvalue(samples: np.ndarray, pmf, lo: int, hi: int) -> float:
    """Chi-square goodness of fit over the bins lo..hi whose expected count is >= 5; the
    rest of the support is merged into the two tail bins."""
    values = np.arange(lo, hi + 1)
    inner = pmf(values) * samples.size
    values = values[inner >= 5]
    lo, hi = int(values.min()), int(values.max())
    clipped = np.clip(samples, lo - 1, hi + 1)
    observed = np.bincount(clipped - (lo - 1), minlength=hi - lo + 3).astype(np.float64)
    tail_lo = pmf(np.arange(lo - 20000, lo)).sum()
    tail_hi = pmf(np.arange(hi + 1, hi + 20001)).sum()
    expected = np.concatenate([[tail_lo], pmf(np.arange(lo, hi + 1)), [tail_hi]]) * samples.size
    keep = expected > 0
    observed, expected = observed[keep], expected[keep]
    expected *= observed.sum() / expected.sum()
    return float(stats.chisquare(observed, expected).pvalue)


def _dg_var(sigma: float) -> float:
    k = np.arange(-int(sigma * 40) - 2, int(sigma * 40) + 3)
    return float((discrete_gaussian_pmf(k, sigma) * k.astype(float) ** 2).sum())


@pytest.mark.parametrize("method", ["fast", "exact"])
@pytest.mark.parametrize("sigma", [0.8, 3.0, 10.0])
def test_discrete_gaussian_pmf_chi_square(method, sigma):
    x = discrete_gaussian(sigma, N, np.random.default_rng(11), method=method)
    assert x.dtype == np.int64 and x.shape == (N,)
    k = int(math.ceil(2.5 * sigma))
    assert _chi2_pvalue(x, lambda v: discrete_gaussian_pmf(v, sigma), -k, k) > ALPHA


@pytest.mark.parametrize("method", ["fast", "exact"])
def test_discrete_gaussian_mean_and_variance(method):
    sigma = 4.0
    x = discrete_gaussian(sigma, N, np.random.default_rng(5), method=method)
    var = _dg_var(sigma)
    z = stats.norm.ppf(1 - ALPHA / 2)
    assert abs(x.mean()) < z * math.sqrt(var / N)
    # var of the sample variance ~ (mu4 - var^2)/N; mu4 = 3 var^2 for a near-Gaussian
    assert abs(x.var() - var) < z * math.sqrt(2 * var**2 / N) * 1.1


def test_discrete_gaussian_large_sigma_variance_fast_path():
    sigma = 12345.6
    x = discrete_gaussian(sigma, 50_000, np.random.default_rng(3))
    z = stats.norm.ppf(1 - ALPHA / 2)
    assert abs(x.var() / sigma**2 - 1) < z * math.sqrt(2 / 50_000) * 1.1


def test_discrete_gaussian_exact_path_with_python_ints():
    # sigma^2 * 1024^2 * t^2 overflows int64: exercises the object-integer branch
    sigma = 2500.3
    x = discrete_gaussian(sigma, 3000, np.random.default_rng(4), method="exact")
    z = stats.norm.ppf(1 - ALPHA / 2)
    assert abs(x.var() / sigma**2 - 1) < z * math.sqrt(2 / 3000) * 1.1


@pytest.mark.parametrize("method", ["fast", "exact"])
@pytest.mark.parametrize("scale", [0.7, 2.0, 3.5, 40.0])
def test_discrete_laplace_pmf_chi_square(method, scale):
    x = discrete_laplace(scale, N, np.random.default_rng(2024), method=method)
    assert x.dtype == np.int64
    k = int(math.ceil(3 * scale)) + 1
    assert _chi2_pvalue(x, lambda v: discrete_laplace_pmf(v, scale), -k, k) > ALPHA


def test_discrete_laplace_variance():
    scale = 3.0
    r = math.exp(-1 / scale)
    var = 2 * r / (1 - r) ** 2
    x = discrete_laplace(scale, N, np.random.default_rng(8))
    # Laplace kurtosis 6: var of sample variance ~ 5 var^2 / N
    assert abs(x.var() - var) < stats.norm.ppf(1 - ALPHA / 2) * math.sqrt(5 * var**2 / N) * 1.1


def test_skellam_pmf_mean_and_variance():
    variance = 9.0
    x = skellam(variance, N, np.random.default_rng(9))
    pmf = lambda v: stats.skellam.pmf(v, variance / 2, variance / 2)  # noqa: E731
    assert _chi2_pvalue(x, pmf, -8, 8) > ALPHA
    assert abs(x.mean()) < stats.norm.ppf(1 - ALPHA / 2) * math.sqrt(variance / N)


def test_seeded_generators_are_reproducible_and_shapes_kept():
    a = discrete_gaussian(5.0, (3, 4), np.random.default_rng(1))
    b = discrete_gaussian(5.0, (3, 4), np.random.default_rng(1))
    assert a.shape == (3, 4) and np.array_equal(a, b)
    assert discrete_laplace(2.0, 0).shape == (0,)
    assert secure_generator().integers(0, 2**62) != secure_generator().integers(0, 2**62)


def test_gaussian_mechanism_outputs_lie_on_the_grid():
    res = 2.0**-10
    out = gaussian_mechanism(np.array([0.1, 0.2, 0.3] * 1000), 1.0, resolution=res, rng=np.random.default_rng(2))
    ints = out / res
    assert np.array_equal(ints, np.rint(ints))  # no float noise bits: the Mironov attack has nothing to read
    assert abs(np.std(out - np.array([0.1, 0.2, 0.3] * 1000)) - 1.0) < 0.1
    lap = laplace_mechanism(np.zeros(5000), 2.0, rng=np.random.default_rng(3))
    step = 2.0 ** math.floor(math.log2(2.0) - 12)
    assert np.array_equal(lap / step, np.rint(lap / step))


@pytest.mark.parametrize(
    "call",
    [
        lambda: discrete_gaussian(0.0, 10),
        lambda: discrete_gaussian(float("nan"), 10),
        lambda: discrete_gaussian(1.0, -1),
        lambda: discrete_gaussian(1.0, 10, method="float"),
        lambda: discrete_gaussian(1.0, 10, rng=42),
        lambda: discrete_laplace(-2.0, 10),
        lambda: skellam(0.0, 10),
        lambda: gaussian_mechanism([1.0, float("inf")], 1.0),
        lambda: gaussian_mechanism([1.0], 1.0, resolution=0.0),
    ],
)
def test_bad_inputs_raise_input_error(call):
    with pytest.raises(InputError):
        call()


# ---------------------------------------------------------------- review R2: edge scales
def test_fast_discrete_gaussian_with_underflowing_sigma_squared_is_a_point_mass():
    # sigma^2 underflows to 0 in float64: the distribution is 0 with probability 1 - 1e-(huge)
    rng = np.random.default_rng(0)
    for sigma in (1e-5, 1e-160, 5e-324):
        out = discrete_gaussian(sigma, 64, rng)
        assert out.dtype == np.int64 and not out.any()


@pytest.mark.parametrize(
    "call",
    [
        lambda: discrete_laplace(1e-4, 5),  # rounds to the rational 0/1: no sampler exists
        lambda: discrete_laplace(1e-4, 5, method="exact"),
        lambda: skellam(1e20, 3),  # numpy's Poisson sampler refuses such means
    ],
)
def test_unrepresentable_scales_raise_input_error(call):
    with pytest.raises(InputError):
        call()
