"""PLDs of integer noise (discrete Gaussian, DDG, Skellam): the lemmas, brute force, tightness.

Every bound is checked against quantities computed here independently: PMFs by direct
convolution / scipy, hockey-stick divergences by enumerating outcomes.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from secagg.dp import (
    DiscreteGaussianEvent,
    DistributedDiscreteGaussianEvent,
    GaussianEvent,
    PldAccountant,
    PoissonSampledEvent,
    RdpAccountant,
    SkellamEvent,
)
from secagg.dp.distributed import DistributedDP
from secagg.dp._pld_discrete import (
    DiscreteNoise,
    skellam_log_ratio_bounds,
    skellam_numeric_log_ratio_bounds,
    sum_dg_log_ratio_bounds,
)
from secagg.errors import ConfigurationError


# ---------------------------------------------------------------- independent PMFs
def _dg_pmf(s, w):
    z = np.arange(-w, w + 1)
    p = np.exp(-(z.astype(float) ** 2) / (2 * s * s))
    return p / p.sum()


def _sum_dg_pmf(s, n):
    w = int(math.ceil(40 * s)) + 5
    base = _dg_pmf(s, w)
    out = base
    for _ in range(n - 1):
        out = np.convolve(out, base)
    return out  # centred: index i <-> z = i - n w


def _skellam_pmf(mu, w):
    z = np.arange(-w, w + 1)
    return stats.skellam.pmf(z, mu / 2, mu / 2)


# ---------------------------------------------------------------- the lemmas
@pytest.mark.parametrize("s,n", [(0.5, 2), (0.6, 3), (0.8, 4), (1.2, 5), (2.0, 3)])
def test_poisson_summation_bounds_hold_for_the_exact_sum_pmf(s, n):
    lo, hi = sum_dg_log_ratio_bounds(s, n)
    p = _sum_dg_pmf(s, n)
    half = (p.size - 1) // 2
    z = np.arange(-half, half + 1)
    keep = np.abs(z) <= 20 * s * math.sqrt(n)  # away from the truncated edges of the convolution
    log_phi = -(z[keep] ** 2) / (2 * n * s * s) - 0.5 * math.log(2 * math.pi * n * s * s)
    ratio = np.log(p[keep]) - log_phi
    assert ratio.min() >= lo - 1e-9 and ratio.max() <= hi + 1e-9
    assert hi - lo < 0.5  # and the bound is informative


@pytest.mark.parametrize("mu", [60.0, 300.0, 5000.0, 2e5])
@pytest.mark.parametrize("which", ["saddle", "numeric"])
def test_skellam_ratio_bounds_hold_on_their_window(mu, which):
    t = 7 * math.sqrt(mu)
    if which == "numeric" and mu > 1e4:
        pytest.skip("the exact-PMF bounds are used up to mu = 1e4")
    bounds = skellam_log_ratio_bounds if which == "saddle" else skellam_numeric_log_ratio_bounds
    lo, hi = bounds(mu, t, t + 3)
    assert math.isfinite(lo) and math.isfinite(hi)
    z = np.arange(-int(t + 3), int(t + 3) + 1)
    logp = stats.skellam.logpmf(z, mu / 2, mu / 2)
    log_phi = -(z.astype(float) ** 2) / (2 * mu) - 0.5 * math.log(2 * math.pi * mu)
    ratio = logp - log_phi
    inner = np.abs(z) <= t
    assert ratio[inner].max() <= hi + 1e-9
    assert ratio.min() >= lo - 1e-9


# ---------------------------------------------------------------- brute force over every shift
def _exact_profile(logp, delta_vec):
    """Exact hockey-stick divergence of (p^d, p^d shifted by delta_vec) as a function of eps.

    Enumerates every outcome of the product (the PMF ``exp(logp)`` per coordinate):
    ``delta(eps) = sum_y P(y) (1 - e^{eps - L(y)})_+`` via sorted suffix sums.
    """
    n = logp.size
    prob, loss = np.ones(1), np.zeros(1)
    for dj in delta_vec:
        lq = np.full(n, -np.inf)
        if dj >= 0:
            lq[dj:] = logp[: n - dj]
        else:
            lq[: n + dj] = logp[-dj:]
        prob = np.multiply.outer(prob, np.exp(logp)).ravel()
        loss = np.add.outer(loss, logp - lq).ravel()
    order = np.argsort(loss)
    l, m = loss[order], prob[order]
    finite = np.isfinite(l)
    inf_mass = float(m[~finite].sum())
    l, m = l[finite], m[finite]
    s1 = np.append(np.cumsum(m[::-1])[::-1], 0.0)
    s2 = np.append(np.cumsum((m * np.exp(-l))[::-1])[::-1], 0.0)

    def profile(eps):
        j = np.searchsorted(l, eps, side="right")
        return inf_mass + s1[j] - np.exp(eps) * s2[j]

    return profile


def _exact_delta(logp, delta_vec, eps):
    return _exact_profile(logp, delta_vec)(np.asarray(eps, dtype=float))


EPS = np.linspace(-1.0, 6.0, 15)


def _bound(event):
    acc = PldAccountant().compose(event)
    return np.array([acc.get_delta(max(e, 0.0)) if e >= 0 else acc.pld.delta(e, acc.value_discretization_interval) for e in EPS])


@pytest.mark.parametrize(
    "event,logp,dim,l2sq",
    [
        (DistributedDiscreteGaussianEvent(0.8, 4, 3.0, 9.0, 3), "dg:0.8:4", 3, 9),
        (DistributedDiscreteGaussianEvent(1.5, 3, 2.0, 4.0, 3), "dg:1.5:3", 3, 4),
        (DiscreteGaussianEvent(1.0, sensitivity=2.0, dim=2), "dg:2.0:1", 2, 4),
        (SkellamEvent(10.0, 2.0, 4.0, dim=2), "sk:10", 2, 4),
    ],
)
def test_vector_bound_dominates_every_integer_shift(event, logp, dim, l2sq):
    kind, *params = logp.split(":")
    if kind == "dg":
        p = _sum_dg_pmf(float(params[0]), int(params[1]))
    else:
        p = _skellam_pmf(float(params[0]), 60)
    p = p[p > 1e-40]  # the left-out outcomes change no divergence by more than 1e-38
    lp = np.log(p)
    bound = _bound(event)
    r = int(math.isqrt(l2sq))
    worst = np.zeros_like(EPS)
    for shift in itertools.product(range(-r, r + 1), repeat=dim):
        if 0 < sum(x * x for x in shift) <= l2sq:
            worst = np.maximum(worst, _exact_delta(lp, shift, EPS))
    assert np.all(worst <= bound + 1e-12)
    if kind == "dg":  # tight for discrete Gaussians: epsilon within 10% of the worst shift's (measured 3-9%)
        profiles = [
            _exact_profile(lp, sh)
            for sh in itertools.product(range(0, r + 1), repeat=dim)
            if 0 < sum(x * x for x in sh) <= l2sq
        ]
        grid = np.linspace(0.0, 12.0, 6001)
        worst_fine = np.max([f(grid) for f in profiles], axis=0)
        acc = PldAccountant().compose(event)
        for delta in (1e-2, 1e-5):
            eps_worst = grid[np.argmax(worst_fine <= delta)]
            assert eps_worst <= acc.get_epsilon(delta) <= 1.1 * eps_worst + 2e-3


@pytest.mark.parametrize("noise,s,n", [("dg", 0.7, 3), ("dg", 1.0, 1), ("skellam", 4.0, 1)])
@pytest.mark.parametrize("l2", [1.0, 3.0])
def test_scalar_case_is_exact_at_the_worst_shift(noise, s, n, l2):
    p = _sum_dg_pmf(s, n) if noise == "dg" else _skellam_pmf(s, 80)
    lp = np.log(p[p > 1e-40])
    profiles = [_exact_delta(lp, (k,), EPS) for k in range(1, int(l2) + 1)]
    # the monotonicity lemma: a larger shift is never more private (log-concave noise)
    for a, b in zip(profiles, profiles[1:]):
        assert np.all(b >= a - 1e-12)
    ev = (DistributedDiscreteGaussianEvent(s, n, l2, l2, 1) if noise == "dg" else SkellamEvent(s, l2, l2, dim=1))
    bound = _bound(ev)
    assert np.all(profiles[-1] <= bound + 1e-12)
    assert np.all(bound <= profiles[-1] + 2e-3)  # exact up to the discretization


def test_subsampled_scalar_discrete_gaussian_dominates_the_exact_mixture():
    s, k, q = 1.2, 2, 0.1
    p = _dg_pmf(s, 40)
    lp = np.log(p)
    pad = np.zeros(k)
    upper = q * np.concatenate([p, pad]) + (1 - q) * np.concatenate([pad, p])  # remove direction
    lower = np.concatenate([pad, p])
    with np.errstate(divide="ignore"):
        loss = np.log(upper) - np.log(lower)
    acc = PldAccountant().compose(PoissonSampledEvent(q, DiscreteGaussianEvent(s / k, sensitivity=k, dim=1)))
    for e in np.linspace(0, 3, 7):
        exact = float((upper * -np.expm1(np.minimum(e - loss, 0))).sum())
        assert exact <= acc.get_delta(e) + 1e-12
    assert lp.size  # the PMF is non-trivial


# ---------------------------------------------------------------- distributed-DP settings
def test_large_noise_ddg_is_the_continuous_gaussian():
    n, s, l2, d = 7, 2.0**20, 2.0**20 * 1.3, 64
    ev = DistributedDiscreteGaussianEvent(s, n, l2, l2 * 8, d)
    eps = PldAccountant().compose(ev, 20).get_epsilon(1e-5)
    g = PldAccountant().compose(GaussianEvent(math.sqrt(n) * s / l2), 20).get_epsilon(1e-5)
    assert eps == pytest.approx(g, rel=1e-9)
    assert eps < RdpAccountant().compose(ev, 20).get_epsilon(1e-5)


@pytest.mark.parametrize("mechanism", ["ddg", "skellam"])
def test_distributed_dp_pld_is_tighter_than_rdp(mechanism):
    params = DistributedDP(clip_norm=1.0, noise_multiplier=1.0, num_clients=10, dim=62, mechanism=mechanism, min_clients=7)
    pld = params.epsilon(7, 1e-5, rounds=20)
    rdp = params.epsilon(7, 1e-5, rounds=20, accountant="rdp")
    assert pld < 0.95 * rdp
    g = PldAccountant().compose(GaussianEvent(1.0), 20).get_epsilon(1e-5)
    assert pld == pytest.approx(g, rel=1e-3)


@pytest.mark.parametrize("mechanism", ["ddg", "skellam"])
@pytest.mark.parametrize("dim", [10_000, 100_000])
def test_distributed_dp_pld_holds_for_long_vectors(mechanism, dim):
    """The vector core multiplies a per-coordinate ratio bound over ``dim`` coordinates
    (``e^a`` with ``a`` in the thousands at d = 10^4); it used to overflow (OverflowError
    from math.exp) instead of falling back to the candidates that stay finite."""
    params = DistributedDP(clip_norm=1.0, noise_multiplier=1.0, num_clients=10, dim=dim, mechanism=mechanism,
                           min_clients=7)
    pld = params.epsilon(7, 1e-5, rounds=20)
    rdp = params.epsilon(7, 1e-5, rounds=20, accountant="rdp")
    assert math.isfinite(pld) and 0 < pld < rdp
    g = PldAccountant().compose(GaussianEvent(1.0), 20).get_epsilon(1e-5)
    assert pld >= g * (1 - 1e-9)  # never below the continuous Gaussian it post-processes


def test_poisson_subsampled_ddg_is_bounded_and_amplified():
    ev = DistributedDiscreteGaussianEvent(2.0**10, 10, 2.0**10 * 3, 2.0**10 * 24, 64)
    full = PldAccountant().compose(ev, 50).get_epsilon(1e-5)
    sub = PldAccountant().compose(PoissonSampledEvent(0.1, ev), 50).get_epsilon(1e-5)
    gauss = PldAccountant().compose(PoissonSampledEvent(0.1, GaussianEvent(math.sqrt(10) / 3)), 50).get_epsilon(1e-5)
    assert sub < full
    assert sub == pytest.approx(gauss, rel=0.01)  # two discretizations (bound, then subsampling) cost < 1%


def test_subsampled_ddg_and_skellam_are_pld_only():
    ev = DistributedDiscreteGaussianEvent(2.0**10, 10, 2.0**10 * 3, 2.0**10 * 24, 64)
    for inner in (ev, SkellamEvent(1e6, 3.0, 9.0, dim=4)):
        with pytest.raises(ConfigurationError, match="PLD"):
            RdpAccountant().compose(PoissonSampledEvent(0.1, inner))
        assert 0 < PldAccountant().compose(PoissonSampledEvent(0.1, inner)).get_epsilon(1e-5) < math.inf


def test_distributed_dp_refuses_a_per_client_sigma_below_one_half():
    # 12-bit ring, 100 clients, z = 0.1: each client's sigma would be about 0.2
    with pytest.raises(ConfigurationError, match="1/2"):
        DistributedDP(clip_norm=1.0, noise_multiplier=0.1, num_clients=100, dim=16, bits=12)
    ok = DistributedDP(clip_norm=1.0, noise_multiplier=0.1, num_clients=100, dim=16, bits=12, mechanism="skellam")
    assert ok.local_stddev < 0.5  # Skellam has no such restriction


def test_discrete_noise_too_small_for_the_vector_bound_is_refused():
    ev = DistributedDiscreteGaussianEvent(0.1, 50, 4.0, 16.0, 8)
    with pytest.raises(ConfigurationError, match="rdp|too small"):
        PldAccountant().compose(ev)
    assert DiscreteNoise("dg", 2.0, 3).variance_parameter == 12.0
