"""PLD accountant: agreement with dp_accounting, never below the exact epsilon, properties.

Reference literals: ``tests/dp/make_pld_reference_values.py`` (dp-accounting 0.6.0,
``PLDAccountant()`` / ``privacy_loss_distribution``, discretization 1e-4). Exact
epsilons come from closed forms evaluated with scipy (independent of secagg's code).
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, stats

from secagg.dp import (
    ComposedEvent,
    DiscreteGaussianEvent,
    GaussianEvent,
    LaplaceEvent,
    NoOpEvent,
    PldAccountant,
    PoissonSampledEvent,
    RdpAccountant,
    SelfComposedEvent,
    make_accountant,
)
from secagg.dp._pld import gaussian_pmf, subsampled_gaussian_pmf
from secagg.errors import ConfigurationError, InputError

from _pld_reference import (
    DISCRETE_GAUSSIAN_PLD,
    LAPLACE_PLD,
    PLD_GRID,
    PLD_OPTIMISTIC,
    SUBSAMPLED_DISCRETE_GAUSSIAN_PLD,
    SUBSAMPLED_LAPLACE_PLD,
)

REL = 0.01  # the issue's agreement target; measured agreement is ~1e-8 (benchmarks/bench_pld.py)


def _pld_eps(q, sigma, steps, delta):
    return PldAccountant().compose(PoissonSampledEvent(q, GaussianEvent(sigma)), steps).get_epsilon(delta)


# ---------------------------------------------------------------- agreement with dp_accounting
FAST_GRID = [
    (0.01, 1.1, 1000, 1e-05),
    (0.04, 1.5, 2250, 1e-05),
    (1.0, 9.61, 20, 1e-05),
    (0.001, 0.8, 2250, 1e-07),
    (0.04, 4.0, 20, 1e-07),
    (0.01, 0.8, 1, 1e-05),
    (1.0, 1.1, 1000, 1e-05),
]


@pytest.mark.parametrize("key", FAST_GRID)
def test_epsilon_agrees_with_dp_accounting_pld(key):
    assert _pld_eps(*key) == pytest.approx(PLD_GRID[key], rel=REL)


def test_epsilon_agrees_with_dp_accounting_pld_on_the_whole_grid():
    # q x sigma x steps x delta = 4 x 5 x 4 x 2 cases (about 3 s): the issue's 1% target
    worst = max((abs(_pld_eps(*key) - ref) / ref, key) for key, ref in PLD_GRID.items())
    assert worst[0] < REL, worst


def test_the_issues_numbers_rdp_versus_pld():
    # issue 16: RDP 1.712 vs PLD 1.515; 7.33 vs 6.77; 20 unsampled rounds at 9.61: 2.000 vs 1.840
    cases = [((0.01, 1.1, 1000), 1.712, 1.515), ((0.04, 1.5, 2250), 7.33, 6.77), ((1.0, 9.61, 20), 2.000, 1.840)]
    for (q, s, t), rdp, pld in cases:
        ev = PoissonSampledEvent(q, GaussianEvent(s))
        assert RdpAccountant().compose(ev, t).get_epsilon(1e-5) == pytest.approx(rdp, abs=6e-3)
        assert make_accountant("pld").compose(ev, t).get_epsilon(1e-5) == pytest.approx(pld, abs=6e-3)


@pytest.mark.parametrize("key", sorted(PLD_OPTIMISTIC))
def test_between_dp_accountings_optimistic_and_pessimistic_estimates(key):
    # dp_accounting's optimistic PLD is a lower estimate of the true epsilon
    ours = _pld_eps(*key)
    assert PLD_OPTIMISTIC[key] <= ours <= PLD_GRID.get(key, ours) * (1 + 1e-6)


@pytest.mark.parametrize("key", sorted(LAPLACE_PLD))
def test_laplace_agrees_with_dp_accounting(key):
    b, steps, delta = key
    assert PldAccountant().compose(LaplaceEvent(b), steps).get_epsilon(delta) == pytest.approx(LAPLACE_PLD[key], rel=REL)


@pytest.mark.parametrize("key", sorted(SUBSAMPLED_LAPLACE_PLD))
def test_subsampled_laplace_agrees_with_dp_accounting(key):
    # ours subsamples the discretized Laplace PLD (Zhu-Dong-Wang Thm 11), theirs the exact mixture
    b, q, steps, delta = key
    eps = PldAccountant().compose(PoissonSampledEvent(q, LaplaceEvent(b)), steps).get_epsilon(delta)
    assert eps == pytest.approx(SUBSAMPLED_LAPLACE_PLD[key], rel=REL)


@pytest.mark.parametrize("key", sorted(DISCRETE_GAUSSIAN_PLD))
def test_scalar_discrete_gaussian_agrees_with_dp_accounting(key):
    sigma, sens, steps, delta = key
    ev = DiscreteGaussianEvent(sigma / sens, sensitivity=sens, dim=1)
    ctd, optimistic = DISCRETE_GAUSSIAN_PLD[key]
    eps = PldAccountant().compose(ev, steps).get_epsilon(delta)
    assert optimistic <= eps == pytest.approx(ctd, rel=REL)


@pytest.mark.parametrize("key", sorted(SUBSAMPLED_DISCRETE_GAUSSIAN_PLD))
def test_subsampled_scalar_discrete_gaussian_agrees_with_dp_accounting(key):
    sigma, sens, q, steps, delta = key
    ev = PoissonSampledEvent(q, DiscreteGaussianEvent(sigma / sens, sensitivity=sens, dim=1))
    ctd, optimistic = SUBSAMPLED_DISCRETE_GAUSSIAN_PLD[key]
    eps = PldAccountant().compose(ev, steps).get_epsilon(delta)
    assert optimistic <= eps == pytest.approx(ctd, rel=REL)


# ---------------------------------------------------------------- never below the truth
def _exact_gaussian_delta(eps, mu):
    return stats.norm.cdf(mu / 2 - eps / mu) - math.exp(eps) * stats.norm.cdf(-mu / 2 - eps / mu)


def _exact_gaussian_epsilon(mu, delta):
    if _exact_gaussian_delta(0.0, mu) <= delta:
        return 0.0
    return optimize.brentq(lambda e: _exact_gaussian_delta(e, mu) - delta, 0.0, 500.0, xtol=1e-14, rtol=1e-14)


@pytest.mark.parametrize("sigma,rounds", [(9.61, 20), (1.0, 1), (0.8, 50), (4.0, 1000), (30.0, 3)])
@pytest.mark.parametrize("delta", [1e-5, 1e-7])
def test_unsampled_gaussian_composition_is_exact_and_never_below(sigma, rounds, delta):
    truth = _exact_gaussian_epsilon(math.sqrt(rounds) / sigma, delta)
    eps = PldAccountant().compose(GaussianEvent(sigma), rounds).get_epsilon(delta)
    assert truth - 1e-12 <= eps <= truth * (1 + 1e-9) + 1e-12


@pytest.mark.parametrize("mu", [0.1, 0.5, 1.0, 2.0, 5.0])
def test_discretized_gaussian_pld_is_pessimistic_and_tight(mu):
    pmf = gaussian_pmf(mu)
    for delta in (1e-3, 1e-5, 1e-7, 1e-10):
        truth = _exact_gaussian_epsilon(mu, delta)
        eps = pmf.epsilon(delta)
        assert truth - 1e-12 <= eps <= truth + 2e-3 * max(1.0, truth)


_GAUSSIAN_PMFS: dict = {}


@settings(deadline=None, max_examples=60)
@given(mu=st.sampled_from([0.05, 0.3, 1.0, 2.5, 6.0]), eps=st.floats(-4.0, 12.0))
def test_discretized_gaussian_profile_dominates_everywhere(mu, eps):
    # domination at every real epsilon (negative ones too) is what makes composition valid
    if mu not in _GAUSSIAN_PMFS:
        _GAUSSIAN_PMFS[mu] = gaussian_pmf(mu)
    pmf = _GAUSSIAN_PMFS[mu]
    assert pmf.delta(eps) >= _exact_gaussian_delta(eps, mu) - 1e-13


def _exact_subsampled_delta(eps, q, sigma, direction):
    """Closed form for the Poisson-subsampled Gaussian pair (outcome with loss eps), via scipy."""
    s2 = sigma * sigma
    if direction == "remove":
        if eps <= math.log1p(-q):
            return -math.expm1(eps)
        x = -s2 * math.log((math.expm1(eps) + q) / q) - 0.5
        return q * stats.norm.cdf((x + 1) / sigma) - (math.expm1(eps) + q) * stats.norm.cdf(x / sigma)
    if eps >= -math.log1p(-q):
        return 0.0
    x = s2 * math.log((math.expm1(-eps) + q) / q) + 0.5
    return (1 - math.exp(eps) * (1 - q)) * stats.norm.cdf(x / sigma) - math.exp(eps) * q * stats.norm.cdf((x - 1) / sigma)


@settings(deadline=None, max_examples=30)
@given(
    q=st.sampled_from([0.001, 0.01, 0.2]),
    sigma=st.sampled_from([0.8, 1.5, 4.0]),
    direction=st.sampled_from(["remove", "add"]),
    eps=st.floats(-2.0, 6.0),
)
def test_discretized_subsampled_gaussian_dominates_its_exact_profile(q, sigma, direction, eps):
    pmf = subsampled_gaussian_pmf(q, sigma, direction)
    assert pmf.delta(eps) >= max(0.0, _exact_subsampled_delta(eps, q, sigma, direction)) - 1e-13


def test_laplace_single_release_is_above_the_exact_value():
    # Laplace, sensitivity/scale eps0: delta(eps) = 1 - exp((eps - eps0)/2), so eps(delta) = eps0 + 2 log(1 - delta)
    for b in (0.5, 1.0, 3.0):
        for delta in (1e-5, 0.1):
            truth = 1 / b + 2 * math.log1p(-delta)
            eps = PldAccountant().compose(LaplaceEvent(b)).get_epsilon(delta)
            assert truth - 1e-12 <= eps <= truth + 2e-4


# ---------------------------------------------------------------- properties
@settings(deadline=None, max_examples=12)
@given(q=st.sampled_from([0.005, 0.02, 0.1]), sigma=st.floats(0.7, 5.0), steps=st.integers(1, 300))
def test_pld_is_monotone_inverts_and_never_above_rdp(q, sigma, steps):
    ev = PoissonSampledEvent(q, GaussianEvent(sigma))
    acc = PldAccountant().compose(ev, steps)
    eps = acc.get_epsilon(1e-5)
    assert PldAccountant().compose(PoissonSampledEvent(q, GaussianEvent(sigma * 1.2)), steps).get_epsilon(1e-5) <= eps + 1e-9
    assert PldAccountant().compose(ev, steps + 5).get_epsilon(1e-5) >= eps - 1e-9
    assert eps <= RdpAccountant().compose(ev, steps).get_epsilon(1e-5) + 1e-9
    if eps > 0:
        assert acc.get_delta(eps) <= 1e-5 * (1 + 1e-6)
        assert acc.get_delta(eps * 0.98) > 1e-5


def test_composition_forms_agree():
    ev = PoissonSampledEvent(0.02, GaussianEvent(0.9))
    lap = LaplaceEvent(4.0)
    a = PldAccountant().compose(ev, 6).compose(lap, 2)
    b = PldAccountant()
    for _ in range(6):
        b.compose(ev)
    b.compose(lap).compose(lap)
    c = PldAccountant().compose(ComposedEvent((SelfComposedEvent(ev, 6), SelfComposedEvent(lap, 2))))
    ref = a.get_epsilon(1e-6)
    # each composition truncates 1e-15 and rounds on the same grid: equal to well below 1e-3
    for other in (b, c):
        assert other.get_epsilon(1e-6) == pytest.approx(ref, rel=1e-3)


def test_gaussians_merge_exactly_with_other_events():
    # Gaussian(2) and Gaussian(2) composed = Gaussian(sqrt 2), exact; beside a Laplace event it is discretized
    a = PldAccountant().compose(GaussianEvent(2.0), 2)
    assert a.get_epsilon(1e-5) == pytest.approx(_exact_gaussian_epsilon(math.sqrt(2) / 2.0, 1e-5), rel=1e-9)
    with_lap = PldAccountant().compose(GaussianEvent(2.0), 2).compose(LaplaceEvent(1e6))
    assert with_lap.get_epsilon(1e-5) == pytest.approx(a.get_epsilon(1e-5), abs=2e-3)
    assert with_lap.get_epsilon(1e-5) >= a.get_epsilon(1e-5) - 1e-12


def test_edge_events():
    assert PldAccountant().get_epsilon(1e-5) == 0.0
    assert PldAccountant().compose(NoOpEvent(), 5).get_epsilon(1e-5) == 0.0
    assert PldAccountant().compose(GaussianEvent(0.0)).get_epsilon(1e-5) == math.inf
    assert PldAccountant().compose(GaussianEvent(0.0)).get_delta(10.0) == 1.0
    assert PldAccountant().compose(PoissonSampledEvent(0.0, GaussianEvent(1.0)), 100).get_epsilon(1e-5) == 0.0
    assert PldAccountant().compose(GaussianEvent(0.0), count=0).get_epsilon(1e-5) == 0.0
    acc = PldAccountant().compose(GaussianEvent(1.0))
    assert acc.copy().compose(GaussianEvent(1.0)).get_epsilon(1e-5) > acc.get_epsilon(1e-5)


def test_bad_inputs_raise_one_line_library_errors():
    with pytest.raises(InputError):
        PldAccountant(value_discretization_interval=0)
    with pytest.raises(InputError):
        PldAccountant().get_epsilon(1.5)
    with pytest.raises(InputError):
        PldAccountant().get_delta(-1)
    with pytest.raises(InputError):
        PldAccountant().compose(GaussianEvent(1.0), count=2.5)
    with pytest.raises(ConfigurationError, match="unsupported privacy event"):
        PldAccountant().compose(object())
    with pytest.raises(ConfigurationError, match="sensitivity"):
        PldAccountant().compose(DiscreteGaussianEvent(1.0))  # no scale: no PLD for a discrete Gaussian
    with pytest.raises(ConfigurationError, match="accountant"):
        make_accountant("moments")
    with pytest.raises(ConfigurationError):
        make_accountant("pld", orders=[2, 3])


def test_coarser_discretization_is_looser_but_still_above_the_truth():
    truth_rdp = RdpAccountant().compose(PoissonSampledEvent(0.01, GaussianEvent(1.1)), 1000).get_epsilon(1e-5)
    fine = PldAccountant(1e-4).compose(PoissonSampledEvent(0.01, GaussianEvent(1.1)), 1000).get_epsilon(1e-5)
    coarse = PldAccountant(1e-2).compose(PoissonSampledEvent(0.01, GaussianEvent(1.1)), 1000).get_epsilon(1e-5)
    assert PLD_OPTIMISTIC[(0.01, 1.1, 1000, 1e-05)] <= fine <= coarse < truth_rdp
