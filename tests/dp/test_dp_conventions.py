"""Conventions users bring: dp-accounting events, Opacus keyword names, diffprivlib mechanisms.

Statistical tests: fixed seeds, significance ALPHA = 1e-3.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from secagg.dp import (
    ComposedEvent,
    GaussianEvent,
    GaussianMechanism,
    LaplaceEvent,
    LaplaceMechanism,
    NoOpEvent,
    PoissonSampledEvent,
    PrivacyBudget,
    SelfComposedEvent,
    analytic_gaussian_sigma,
    from_dp_accounting,
    make_accountant,
    noise_multiplier_for,
    steps_for_epochs,
)
from secagg.errors import ConfigurationError, InputError

dpa = pytest.importorskip("dp_accounting")
ALPHA = 1e-3


# ---------------------------------------------------------------- dp-accounting events
def test_dp_accounting_events_convert_one_to_one():
    ev = dpa.ComposedDpEvent([
        dpa.SelfComposedDpEvent(dpa.PoissonSampledDpEvent(0.01, dpa.GaussianDpEvent(1.1)), 100),
        dpa.LaplaceDpEvent(2.0),
        dpa.NoOpDpEvent(),
    ])
    ours = ComposedEvent((
        SelfComposedEvent(PoissonSampledEvent(0.01, GaussianEvent(1.1)), 100),
        LaplaceEvent(2.0),
        NoOpEvent(),
    ))
    assert from_dp_accounting(ev) == ours
    assert from_dp_accounting(dpa.NonPrivateDpEvent()) == GaussianEvent(0.0)


@pytest.mark.parametrize("kind", ["pld", "rdp"])
def test_both_accountants_accept_dp_accounting_events(kind):
    ev = dpa.PoissonSampledDpEvent(0.02, dpa.GaussianDpEvent(1.3))
    theirs = make_accountant(kind).compose(ev, 50).get_epsilon(1e-5)
    ours = make_accountant(kind).compose(PoissonSampledEvent(0.02, GaussianEvent(1.3)), 50).get_epsilon(1e-5)
    assert theirs == ours > 0
    assert make_accountant(kind).compose(dpa.NonPrivateDpEvent()).get_epsilon(1e-5) == math.inf
    # and dp_accounting's own accountant gives the same number for its event
    if kind == "pld":
        from dp_accounting.pld import pld_privacy_accountant

        ref = pld_privacy_accountant.PLDAccountant()
        ref.compose(ev, 50)
        assert theirs == pytest.approx(ref.get_epsilon(1e-5), rel=1e-3)


@pytest.mark.parametrize("kind", ["pld", "rdp"])
def test_unsupported_dp_accounting_events_name_their_class(kind):
    with pytest.raises(ConfigurationError, match="DiscreteLaplaceDpEvent"):
        make_accountant(kind).compose(dpa.dp_event.DiscreteLaplaceDpEvent(1.0, 1))
    with pytest.raises(ConfigurationError, match="SampledWithoutReplacementDpEvent"):
        make_accountant(kind).compose(dpa.SampledWithoutReplacementDpEvent(100, 10, dpa.GaussianDpEvent(1.0)))
    with pytest.raises(ConfigurationError, match="RandomizedResponseDpEvent"):
        make_accountant(kind).compose(dpa.RandomizedResponseDpEvent(0.5, 2))
    with pytest.raises(ConfigurationError, match="str"):
        make_accountant(kind).compose("gaussian")


# ---------------------------------------------------------------- Opacus names
def test_opacus_keyword_names_equal_the_positional_call():
    a = noise_multiplier_for(1.0, 1e-5, 0.01, 1000)
    b = noise_multiplier_for(target_epsilon=1.0, target_delta=1e-5, sample_rate=0.01, steps=1000)
    assert a == b


def test_epochs_become_steps_rounded_up():
    assert steps_for_epochs(3, 0.01) == 300  # 3 / 0.01 = 300.00000000000006 in floats: still 300
    assert steps_for_epochs(1, 0.03) == 34  # 33.33 -> 34
    assert steps_for_epochs(0.5, 0.5) == 1
    z_epochs = noise_multiplier_for(target_epsilon=2.0, target_delta=1e-5, sample_rate=0.03, epochs=1, accountant="rdp")
    z_steps = noise_multiplier_for(2.0, 1e-5, 0.03, 34, accountant="rdp")
    assert z_epochs == z_steps


@pytest.mark.parametrize(
    "kwargs",
    [
        {"epsilon": 1.0, "target_epsilon": 1.0, "delta": 1e-5},
        {"target_epsilon": 1.0, "target_delta": 1e-5, "steps": 10, "epochs": 1, "sample_rate": 0.1},
        {"target_epsilon": 1.0},
        {"target_epsilon": 1.0, "target_delta": 1e-5, "accountant": "moments"},
        {"target_epsilon": 1.0, "target_delta": 1e-5, "orders": [2, 3]},
        {"target_epsilon": 1.0, "target_delta": 1e-5, "accountant": "rdp", "value_discretization_interval": 1e-3},
    ],
)
def test_conflicting_or_missing_calibration_arguments_are_refused(kwargs):
    with pytest.raises(ConfigurationError):
        noise_multiplier_for(**kwargs)


def test_bad_epochs():
    with pytest.raises(InputError):
        noise_multiplier_for(target_epsilon=1.0, target_delta=1e-5, sample_rate=0.1, epochs=0)


def test_pld_calibration_meets_the_target_and_is_smaller_than_rdp():
    z = noise_multiplier_for(1.0, 1e-5, 0.01, 1000)
    z_rdp = noise_multiplier_for(1.0, 1e-5, 0.01, 1000, accountant="rdp")
    ev = lambda s: PoissonSampledEvent(0.01, GaussianEvent(s))  # noqa: E731
    assert make_accountant("pld").compose(ev(z), 1000).get_epsilon(1e-5) <= 1.0
    assert make_accountant("pld").compose(ev(z * 0.999), 1000).get_epsilon(1e-5) > 1.0
    assert z < 0.95 * z_rdp


def test_unsampled_pld_calibration_is_exact():
    # 20 unsampled Gaussian rounds compose to one Gaussian with mu = sqrt(20)/z: the issue's
    # 9.61 gives epsilon 2 under RDP; the exact z for epsilon 2 is smaller
    z = noise_multiplier_for(2.0, 1e-5, 1.0, 20)
    single = analytic_gaussian_sigma(2.0, 1e-5)  # Balle-Wang for mu = 1/sigma
    assert z == pytest.approx(math.sqrt(20) * single, rel=1e-9)
    assert z < 9.61


def test_budget_defaults_to_pld_and_keeps_rdp():
    ev = PoissonSampledEvent(0.01, GaussianEvent(1.1))
    pld = PrivacyBudget(10.0, 1e-5)
    rdp = PrivacyBudget(10.0, 1e-5, accountant="rdp")
    assert pld.charge(ev, 1000) < rdp.charge(ev, 1000)
    with pytest.raises(ConfigurationError):
        PrivacyBudget(1.0, 1e-5, orders=[2, 3])


# ---------------------------------------------------------------- diffprivlib-style mechanisms
def test_gaussian_mechanism_calibrates_with_the_analytic_gaussian():
    mech = GaussianMechanism(epsilon=1.0, delta=1e-5, sensitivity=2.0)
    charged = 2.0 + mech.resolution / 2
    assert mech.sigma() == pytest.approx(analytic_gaussian_sigma(1.0, 1e-5, charged), rel=1e-9)
    assert mech.sigma(10_000) > mech.sigma()  # more values: more rounding slack charged


def test_gaussian_mechanism_noise_has_the_stated_variance_and_lives_on_the_grid():
    mech = GaussianMechanism(epsilon=0.5, delta=1e-6, sensitivity=1.0)
    n = 20_000
    x = np.linspace(-3, 3, n)
    out = mech(x, rng=np.random.default_rng(11))
    err = out - x
    sd = mech.sigma(n)
    lo, hi = stats.chi2.ppf(ALPHA / 2, n) / n, stats.chi2.ppf(1 - ALPHA / 2, n) / n
    assert lo * sd**2 <= float((err**2).mean()) <= hi * sd**2 * (1 + 1e-6)
    assert abs(float(err.mean())) < stats.norm.ppf(1 - ALPHA / 2) * sd / math.sqrt(n)
    steps = out / mech.resolution
    assert np.all(steps == np.round(steps))
    one = mech.randomise(1.0, rng=np.random.default_rng(0))
    assert isinstance(one, float)


def test_a_coarse_grid_is_charged_to_the_sensitivity_not_ignored():
    fine = GaussianMechanism(epsilon=1.0, delta=1e-5, sensitivity=1.0)
    coarse = GaussianMechanism(epsilon=1.0, delta=1e-5, sensitivity=1.0, resolution=0.5)
    # rounding 4 values to a 0.5 grid moves them by up to 0.5: sensitivity 1 + 0.5 * 2 / 2 = 1.5
    assert coarse.sigma(4) >= 1.5 * analytic_gaussian_sigma(1.0, 1e-5) > fine.sigma(4)
    out = coarse(np.array([0.1, 0.2, 0.3, 0.4]), rng=np.random.default_rng(3))
    assert np.all(out * 2 == np.round(out * 2))


def test_laplace_mechanism_is_pure_dp_with_the_stated_scale():
    mech = LaplaceMechanism(epsilon=2.0, sensitivity=1.0)
    n = 20_000
    b = mech.scale(n)
    assert b == pytest.approx((1.0 + mech.resolution * n / 2) / 2.0, rel=1e-8)
    err = mech(np.zeros(n), rng=np.random.default_rng(5))
    var = 2 * b * b  # Laplace variance (the discrete one on a fine grid is within 1e-10)
    # the variance of the sample variance of Laplace noise: (mu4 - var^2)/n with mu4 = 24 b^4
    se = math.sqrt((24 * b**4 - var**2) / n)
    assert abs(float((err**2).mean()) - var) < stats.norm.ppf(1 - ALPHA / 2) * se
    assert isinstance(mech.randomise(0.0, rng=np.random.default_rng(0)), float)


@pytest.mark.parametrize(
    "call,exc",
    [
        (lambda: GaussianMechanism(epsilon=0, delta=1e-5, sensitivity=1), InputError),
        (lambda: GaussianMechanism(epsilon=1, delta=1.0, sensitivity=1), InputError),
        (lambda: GaussianMechanism(epsilon=1, delta=1e-5, sensitivity=-1), InputError),
        (lambda: LaplaceMechanism(epsilon=1, sensitivity=1, delta=1e-5), ConfigurationError),
        (lambda: GaussianMechanism(epsilon=1, delta=1e-5, sensitivity=1).randomise([1.0, 2.0]), InputError),
        (lambda: GaussianMechanism(epsilon=1, delta=1e-5, sensitivity=1)([np.nan]), InputError),
        (lambda: GaussianMechanism(epsilon=1, delta=1e-5, sensitivity=1)([]), InputError),
        (lambda: LaplaceMechanism(epsilon=1, sensitivity=1, resolution=0.0), InputError),
    ],
)
def test_mechanisms_refuse_bad_input(call, exc):
    with pytest.raises(exc):
        call()
