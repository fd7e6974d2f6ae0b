"""PrivacyBudget and clipping tests."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from secagg.dp import GaussianEvent, PoissonSampledEvent, PrivacyBudget, RdpAccountant, clip_rows
from secagg.dp._clipping import clip_vector
from secagg.errors import BudgetExceeded, InputError


def test_budget_refuses_the_round_that_would_exceed_and_stays_unchanged():
    ev = PoissonSampledEvent(0.1, GaussianEvent(1.0))
    budget = PrivacyBudget(epsilon=3.0, delta=1e-5)
    allowed = budget.rounds_affordable(ev)
    assert allowed >= 1
    for _ in range(allowed):
        budget.charge(ev)
    spent = budget.spent
    assert spent <= 3.0
    with pytest.raises(BudgetExceeded):
        budget.charge(ev)
    assert budget.spent == spent and budget.rounds == allowed
    # cross-check with a fresh accountant: one more round is indeed over budget
    acc = RdpAccountant().compose(ev, allowed + 1)
    assert acc.get_epsilon(1e-5) > 3.0


def test_budget_bookkeeping():
    budget = PrivacyBudget(2.0, 1e-5)
    assert budget.spent == 0.0 and budget.remaining == 2.0
    after = budget.charge(GaussianEvent(5.0), count=2)
    assert after == pytest.approx(budget.spent) and 0 < budget.spent < 2.0
    assert budget.can_afford(GaussianEvent(100.0))
    assert not budget.can_afford(GaussianEvent(0.1))
    assert budget.epsilon_after(GaussianEvent(5.0)) > budget.spent


@pytest.mark.parametrize("eps,delta", [(0, 1e-5), (-1, 1e-5), (1, 0), (1, 1.5), (float("nan"), 1e-5)])
def test_budget_bad_target(eps, delta):
    with pytest.raises(InputError):
        PrivacyBudget(eps, delta)


def test_clip_rows_fraction_and_norms():
    rows = np.array([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0], [6.0, 8.0]])
    clipped, frac = clip_rows(rows, 1.0)
    np.testing.assert_allclose(np.linalg.norm(clipped, axis=1), [1.0, 0.5, 0.0, 1.0])
    np.testing.assert_allclose(clipped[0], [0.6, 0.8])
    assert frac == 0.5
    assert rows[0, 0] == 3.0  # input untouched
    v, was = clip_vector(np.array([3.0, 4.0]), 10.0)
    assert not was and np.array_equal(v, [3.0, 4.0])


@settings(deadline=None, max_examples=50)
@given(
    rows=hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=20),
                    elements=st.floats(-1e6, 1e6)),
    c=st.floats(1e-3, 1e3),
)
def test_clip_rows_properties(rows, c):
    clipped, frac = clip_rows(rows, c)
    norms = np.linalg.norm(rows, axis=1)
    assert np.all(np.linalg.norm(clipped, axis=1) <= c * (1 + 1e-12))
    inside = norms <= c
    np.testing.assert_array_equal(clipped[inside], rows[inside])
    assert frac == pytest.approx(float((~inside).mean()))
    # direction preserved
    assert np.all(np.einsum("ij,ij->i", clipped, rows) >= 0)


@pytest.mark.parametrize("bad", [np.array([1.0, np.nan]), np.zeros((2, 2, 2))])
def test_clip_bad_input(bad):
    with pytest.raises(InputError):
        clip_rows(bad, 1.0)
    with pytest.raises(InputError):
        clip_vector(np.ones(3), 0.0)


# ---------------------------------------------------------------- review R2: library errors only
@pytest.mark.parametrize("eps, delta", [("x", 1e-5), (1.0, "y"), (None, 1e-5), (1.0, None)])
def test_budget_non_numeric_target_raises_input_error(eps, delta):
    with pytest.raises(InputError):
        PrivacyBudget(eps, delta)


@pytest.mark.parametrize("name", ["central-dp", "local-dp", "distributed-dp"])
@pytest.mark.parametrize("delta", [0.0, 1.0, 2.0, float("nan")])
def test_dp_aggregators_refuse_a_delta_outside_the_unit_interval_at_construction(name, delta):
    from secagg import make_aggregator
    from secagg.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="delta"):
        make_aggregator(name, clip_norm=1.0, noise_multiplier=1.0, delta=delta)
