"""The parameter finder (secagg.masking.params): exact tails, the conditions it claims,
minimality, the active-server bound, and the table published in the docs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from secagg.errors import ConfigurationError, InsecureParameterError
from secagg.masking import MaskingConfig, ThreatModel, find_parameters
from secagg.masking import params as P

ROOT = Path(__file__).resolve().parents[2]


def _mp_hyp_sf(pop, succ, draws, x):
    import mpmath as mp

    lo, hi = max(x, 0, draws - (pop - succ)), min(draws, succ)
    return sum((mp.binomial(succ, i) * mp.binomial(pop - succ, draws - i) for i in range(lo, hi + 1)),
               mp.mpf(0)) / mp.binomial(pop, draws)


def _mp_binom_cdf(trials, p, y):
    import mpmath as mp

    p = mp.mpf(p)
    return sum((mp.binomial(trials, i) * p**i * (1 - p) ** (trials - i) for i in range(0, y + 1)), mp.mpf(0))


@settings(max_examples=40, deadline=None)
@given(pop=st.integers(2, 5000), data=st.data())
def test_exact_tails_match_arbitrary_precision(pop, data):
    """Reference: mpmath at 50 digits (SciPy's binomial cdf is off by ~1e-7 relative
    deep in the tail, where the finder works)."""
    import mpmath as mp

    mp.mp.dps = 50
    succ = data.draw(st.integers(0, pop))
    draws = data.draw(st.integers(0, min(pop, 300)))
    x = data.draw(st.integers(0, draws + 1))
    ref = float(_mp_hyp_sf(pop, succ, draws, x))
    assert math.exp(P._log_hyp_sf(pop, succ, draws, x)) == pytest.approx(ref, rel=1e-9, abs=1e-300)
    sf_all = P._log_hyp_sf_all(pop, succ, draws)
    if x < len(sf_all):
        assert math.exp(sf_all[x]) == pytest.approx(ref, rel=1e-9, abs=1e-300)
    p = data.draw(st.floats(0.01, 0.99))
    trials = data.draw(st.integers(1, 1500))
    y = data.draw(st.integers(0, trials))
    ref = float(_mp_binom_cdf(trials, p, y))
    assert math.exp(P._log_binom_cdf(trials, p, y)) == pytest.approx(ref, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("n", [60, 100, 1000, 10_000, 100_000])
@pytest.mark.parametrize("gamma,delta", [(0.05, 0.05), (0.1, 0.1)])
def test_sparse_parameters_meet_every_condition_and_are_minimal(n, gamma, delta):
    threat = ThreatModel(corrupt_fraction=gamma, dropout_rate=delta)
    p = find_parameters(n, threat)
    if p.graph == "complete":
        pytest.skip("no sparse degree exists for this n")
    k, t = p.k, p.threshold
    C = math.ceil(gamma * n - 1e-9)
    sec = 2.0 ** -(40 + 1)
    # 1. no honest client has 2t - k - 1 corrupt neighbours (active-server bound)
    assert n * stats.hypergeom(n - 1, C, k).sf(2 * t - k - 2) <= sec
    # ... and t - 1 would not be enough
    assert n * stats.hypergeom(n - 1, C, k).sf(2 * (t - 1) - k - 2) > sec
    # 2. honest survivors connected
    assert n * (n - k - 1) / 2 * (gamma + delta) ** k <= sec
    # 3. every client keeps t live holders, and the floor holds
    assert n * stats.binom(k, 1 - gamma - delta).cdf(t - 2) <= 2.0**-20
    assert stats.binom(n, 1 - gamma - delta).cdf(p.min_survivors - 1) <= 2.0**-20 * 1.0001
    # the next even degree down fails some condition
    smaller = P.min_secure_threshold(n, k - 2, threat)
    if smaller is not None:
        fails = (
            P._security_log2(n, k - 2, smaller, threat) > -40
            or P._failure_log2(n, k - 2, smaller, threat, p.min_survivors) > -20
        )
        assert fails
    assert p.tolerated_corrupt_holders == 2 * t - k - 2


@pytest.mark.parametrize("n", [3, 5, 7, 10, 20, 31])
def test_complete_graph_threshold_is_the_active_bound(n):
    p = find_parameters(n, ThreatModel(), "complete")
    C = math.ceil(0.05 * n - 1e-9)
    t = p.threshold
    assert C <= 2 * t - n - 1 and not C <= 2 * (t - 1) - n - 1
    hbc = find_parameters(n, ThreatModel(adversary="honest-but-curious"), "complete")
    assert hbc.threshold == C + 1 <= t


def test_degree_grows_logarithmically():
    ks = [find_parameters(n).k for n in (1_000, 10_000, 100_000, 1_000_000)]
    assert ks == sorted(ks) and ks[-1] - ks[0] < 50 and ks[-1] < 200


def test_weaker_threat_models_are_explicit():
    with pytest.raises(InsecureParameterError, match="honest-but-curious"):
        MaskingConfig(n=1000, dim=2, graph="sparse", threshold=43)
    ok = MaskingConfig(n=1000, dim=2, graph="sparse", threshold=43, k=84,
                       threat=ThreatModel(adversary="honest-but-curious"))
    assert ok.threshold == 43 and not ok.consistency_check


@pytest.mark.parametrize(
    "kw", [dict(adversary="lazy"), dict(corrupt_fraction=1.0), dict(dropout_rate=-0.1),
           dict(corrupt_fraction=0.5, dropout_rate=0.45), dict(security_bits=0)]
)
def test_threat_model_refuses_impossible_values(kw):
    with pytest.raises(ConfigurationError):
        ThreatModel(**kw)


def test_the_docs_table_is_what_the_finder_returns():
    from secagg.commands.params import TABLE_CLIENTS, _row

    doc = (ROOT / "docs" / "threat-model.md").read_text()
    for n in TABLE_CLIENTS[:4]:
        p = _row(n, 0.05, 0.05)
        row = f"| {n:,} | 0.05 | 0.05 | {p.graph} | {p.k} | {p.threshold} | {p.tolerated_corrupt_holders} | "
        assert row in doc, row
