"""Distributed DP (DDG / Skellam) and the three DP aggregators.

Statistical tests: fixed seeds, significance ALPHA = 1e-3.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from secagg.errors import ProtocolAbort
from scipy import stats

from secagg import make_aggregator
from secagg.dp import (
    DistributedDiscreteGaussianEvent,
    GaussianEvent,
    SkellamEvent,
    make_accountant,
)
from secagg.dp._rotation import RandomizedHadamard, fwht
from secagg.dp.distributed import DistributedDP, distributed_dp_sum, plain_ring_sum
from secagg.errors import ConfigurationError, InputError

ALPHA = 1e-3
Z = stats.norm.ppf(1 - ALPHA / 2)


def _masking_available() -> bool:
    try:
        from secagg.masking.simulate import simulate_ring  # noqa: F401
    except ImportError:
        return False
    return True


def test_fwht_matches_hadamard_matrix_and_rotation_is_orthonormal():
    from scipy.linalg import hadamard

    v = np.random.default_rng(0).normal(size=(3, 16))
    np.testing.assert_allclose(fwht(v), v @ hadamard(16).T / 4.0, atol=1e-12)
    rot = RandomizedHadamard(1000, seed=b"public seed")
    x = np.random.default_rng(1).normal(size=(4, 1000))
    y = rot.forward(x)
    assert y.shape == (4, 1024)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), np.linalg.norm(x, axis=1), rtol=1e-12)
    np.testing.assert_allclose(rot.inverse(y), x, atol=1e-12)
    # flattening: a spike becomes +-1/sqrt(m) everywhere
    spike = np.zeros(1000)
    spike[7] = 1.0
    np.testing.assert_allclose(np.abs(rot.forward(spike)), 1 / 32.0)


def _params(mech: str, n: int = 8, d: int = 60, min_clients: int | None = None, z: float = 0.5) -> DistributedDP:
    return DistributedDP(clip_norm=1.0, noise_multiplier=z, num_clients=n, dim=d, bits=32, mechanism=mech,
                         min_clients=min_clients)


@pytest.mark.parametrize("mech", ["ddg", "skellam"])
def test_decoded_sum_is_unbiased_with_the_target_variance(mech):
    rng = np.random.default_rng(42)
    n, d, reps = 8, 60, 150
    x = rng.normal(size=(n, d)) * 0.2
    x[0] *= 10  # one client gets clipped
    params = _params(mech, n, d)
    norms = np.linalg.norm(x, axis=1)
    target = (x * np.minimum(1, 1 / norms)[:, None]).sum(axis=0)
    errs = np.array([distributed_dp_sum(x, params, rng=rng, secure_sum=plain_ring_sum).total - target for _ in range(reps)])
    sd = params.noise_std(n)
    assert sd == pytest.approx(0.5, rel=1e-12)
    # unbiased: every coordinate's mean error within Z standard errors (Bonferroni over d)
    z_d = stats.norm.ppf(1 - ALPHA / (2 * d))
    assert np.all(np.abs(errs.mean(axis=0)) < z_d * sd / math.sqrt(reps))
    # variance: pooled sample variance vs target, chi-square interval with reps*d dof
    dof = reps * d
    var = float((errs**2).mean())
    lo, hi = stats.chi2.ppf(ALPHA / 2, dof) / dof, stats.chi2.ppf(1 - ALPHA / 2, dof) / dof
    assert lo * sd**2 <= var <= hi * sd**2 * 1.001


def test_dropouts_leave_less_noise_and_report_a_larger_epsilon():
    rng = np.random.default_rng(3)
    params = _params("ddg", n=10, d=40, min_clients=8, z=1.0)
    x = rng.normal(size=(10, 40)) * 0.1
    full = distributed_dp_sum(x, params, rng=rng, secure_sum=plain_ring_sum)
    some = distributed_dp_sum(x, params, rng=rng, secure_sum=plain_ring_sum, dropout={0: "masked_input", 1: "share_keys", 2: "unmasking"})
    assert full.survivors.size == 10 and some.survivors.size == 7
    assert some.noise_std == pytest.approx(math.sqrt(7 / 8), rel=1e-12)
    assert full.noise_std == pytest.approx(math.sqrt(10 / 8), rel=1e-12)
    assert some.epsilon > params.epsilon(8, 1e-5) > full.epsilon
    assert isinstance(some.event, DistributedDiscreteGaussianEvent) and some.event.num_clients == 7
    np.testing.assert_allclose(some.total, x[3:].sum(axis=0), atol=6 * some.noise_std)


@pytest.mark.parametrize("accountant", ["pld", "rdp"])
def test_epsilon_is_close_to_the_continuous_gaussian_with_enough_bits(accountant):
    params = _params("ddg", n=20, d=1000, z=1.0)
    g = make_accountant(accountant).compose(GaussianEvent(1.0)).get_epsilon(1e-5)
    assert g <= params.epsilon(20, 1e-5, accountant=accountant) <= g * 1.01
    sk = DistributedDP(1.0, 1.0, 20, 1000, mechanism="skellam")
    assert isinstance(sk.dp_event(20), SkellamEvent)
    assert g <= sk.epsilon(20, 1e-5, accountant=accountant) <= g * 1.02


def test_encode_is_uniform_looking_integers_in_the_ring_and_bits_are_checked():
    params = DistributedDP(1.0, 1.0, 4, 10, bits=20)
    enc = params.encode(np.ones((4, 10)) * 0.1, np.random.default_rng(0))
    assert enc.dtype == np.uint32 and enc.shape == (4, 16) and int(enc.max()) < 2**20
    with pytest.raises(ConfigurationError):
        DistributedDP(1.0, 1.0, 10**6, 10, bits=8)
    with pytest.raises(ConfigurationError):
        DistributedDP(1.0, 1.0, 4, 10, mechanism="gauss")
    with pytest.raises(ConfigurationError):
        DistributedDP(1.0, 1.0, 4, 10, min_clients=5)
    with pytest.raises(InputError):
        params.encode(np.ones(11))
    with pytest.raises(InputError):
        params.encode(np.array([np.nan] * 10))


@pytest.mark.skipif(not _masking_available(), reason="secagg.masking.simulate_ring not installed")
@pytest.mark.parametrize("graph", ["complete", "sparse"])
def test_distributed_dp_aggregator_over_masking(graph):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(12, 30)) * 0.05
    agg = make_aggregator("distributed-dp", clip_norm=1.0, noise_multiplier=1.0, graph=graph)
    res = agg.aggregate(x, rng=rng, dropout={4: "masked_input"})
    assert agg.hides_individual_updates
    assert 4 not in res.survivors and res.count == 11
    assert res.info["min_clients"] == 11  # the schedule's dropout is planned for
    assert res.noise_std == pytest.approx(1.0, rel=1e-12)  # z * clip with n_min survivors
    assert np.all(np.abs(res.total - x[res.survivors].sum(axis=0)) < 6 * res.noise_std)
    assert res.bytes_up.shape == (12,) and res.bytes_up[0] > 4 * 30
    assert res.info["epsilon_achieved"] > 0 and res.info["noise_multiplier"] == 1.0


@pytest.mark.parametrize("graph", ["complete", "sparse"])
def test_the_clients_refuse_to_unmask_below_the_noise_floor(graph):
    """Noise calibrated for all 12 clients: a 13th-hour dropout (the server drops an honest
    client on purpose, say) would shrink the noise, so the round aborts instead."""
    x = np.random.default_rng(5).normal(size=(12, 30)) * 0.05
    agg = make_aggregator("distributed-dp", clip_norm=1.0, noise_multiplier=1.0, graph=graph, min_clients=12)
    with pytest.raises(ProtocolAbort, match="min_survivors=12"):
        agg.aggregate(x, rng=np.random.default_rng(1), dropout={4: "masked_input"})


def test_old_clip_keyword_of_distributed_dp_warns_and_means_clip_norm():
    from secagg.dp.distributed import DistributedDP
    from secagg.errors import ConfigurationError

    with pytest.warns(DeprecationWarning, match="use clip_norm="):
        old = DistributedDP(clip=2.0, noise_multiplier=1.0, num_clients=4, dim=8)
    assert old == DistributedDP(clip_norm=2.0, noise_multiplier=1.0, num_clients=4, dim=8)
    with pytest.warns(DeprecationWarning, match="read clip_norm"):
        assert old.clip == 2.0
    with pytest.raises(ConfigurationError, match="clip_norm= only"):
        DistributedDP(2.0, 1.0, 4, 8, clip=2.0)


def test_target_epsilon_is_enforced_before_the_round_runs():
    from secagg.dp.distributed import DistributedDP, distributed_dp_sum
    from secagg.errors import BudgetExceeded

    params = DistributedDP(clip_norm=1.0, noise_multiplier=0.5, num_clients=8, dim=4, min_clients=6)
    worst = params.epsilon(6, 1e-5)

    def never_called(*a, **k):  # the secure sum must not even start
        raise AssertionError("the round ran")

    with pytest.raises(BudgetExceeded, match="minimum 6 survivors"):
        distributed_dp_sum(np.zeros((8, 4)), params, delta=1e-5, target_epsilon=worst * 0.99, secure_sum=never_called)
    res = distributed_dp_sum(np.zeros((8, 4)), params, delta=1e-5, target_epsilon=worst * 1.01,
                             rng=np.random.default_rng(0), secure_sum=plain_ring_sum)
    assert res.epsilon <= worst * 1.01


def test_distributed_dp_calibrates_for_expected_dropout():
    agg = make_aggregator("distributed-dp", clip_norm=1.0, noise_multiplier=1.0, secure_sum=plain_ring_sum)
    p = agg.params_for(20, 10, dropout=0.25)
    assert p.min_clients == 15
    res = agg.aggregate(np.zeros((20, 10)), dropout=0.25, rng=np.random.default_rng(0))
    assert res.count == 15 and res.noise_std == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["central-dp", "local-dp"])
def test_central_and_local_aggregators(name):
    rng = np.random.default_rng(7)
    n, d = 30, 200
    x = rng.normal(size=(n, d)) * 0.05
    agg = make_aggregator(name, clip_norm=1.0, noise_multiplier=2.0)
    res = agg.aggregate(x, rng=rng)
    expected_sd = 2.0 * agg.sensitivity(d) * (math.sqrt(n) if name == "local-dp" else 1.0)
    assert res.noise_std == pytest.approx(expected_sd)
    err = res.total - x.sum(axis=0)
    lo, hi = stats.chi2.ppf(ALPHA / 2, d) / d, stats.chi2.ppf(1 - ALPHA / 2, d) / d
    assert lo * expected_sd**2 <= float((err**2).mean()) <= hi * expected_sd**2
    assert not agg.hides_individual_updates
    assert res.info["round_epsilon"] == pytest.approx(
        make_accountant("pld").compose(res.info["dp_event"]).get_epsilon(1e-5)
    )


def test_epsilon_target_sets_the_noise_multiplier():
    agg = make_aggregator("central-dp", clip_norm=1.0, epsilon=1.0, delta=1e-5, rounds=10)
    from secagg.dp import GaussianEvent

    # calibrated with the (default) PLD accountant, and the round's own event agrees
    eps = make_accountant("pld").compose(GaussianEvent(agg.noise_multiplier), 10).get_epsilon(1e-5)
    assert 0.99 < eps <= 1.0
    res = agg.aggregate(np.zeros((3, 5)), rng=np.random.default_rng(0))
    assert make_accountant("pld").compose(res.info["dp_event"], 10).get_epsilon(1e-5) <= 1.0


@pytest.mark.parametrize(
    "name,kw",
    [
        ("central-dp", {}),
        ("local-dp", {"noise_multiplier": 1.0, "epsilon": 1.0}),
        ("central-dp", {"noise_multiplier": -1.0}),
        ("distributed-dp", {"noise_multiplier": 1.0, "mechanism": "laplace"}),
        ("distributed-dp", {"noise_multiplier": 1.0, "graph": "ring"}),
        ("local-dp", {"noise_multiplier": 1.0, "clip_norm": 0.0}),
    ],
)
def test_bad_configuration(name, kw):
    with pytest.raises(ConfigurationError):
        make_aggregator(name, **kw)


def test_bad_updates():
    agg = make_aggregator("central-dp", noise_multiplier=1.0)
    with pytest.raises(InputError):
        agg.aggregate(np.array([[1.0, np.inf]]))
