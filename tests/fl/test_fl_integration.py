"""FedAvg through every registered technique: same accuracy as plain within quantization,
dropouts survived by masking, epsilon reported by DP runs, budgets enforced before training.

A test skips only while its aggregator's module is not installed yet
(``make_aggregator`` raising ConfigurationError "not available").
"""

import numpy as np
import pytest

from fl.data import load_dataset
from fl.server import FedAvgConfig, run_fedavg
from secagg import make_aggregator
from secagg.errors import BudgetExceeded, ConfigurationError

PAILLIER_TEST_OPTIONS = {"key_bits": 1024, "allow_insecure": True}  # small key: test speed only


def _require(name, **options):
    try:
        return make_aggregator(name, **options)
    except ConfigurationError as exc:
        if "not available" in str(exc):
            pytest.skip(f"aggregator {name!r} is not installed yet: {exc}")
        raise


@pytest.fixture(scope="module")
def cancer():
    return load_dataset("breast_cancer", seed=0)


@pytest.fixture(scope="module")
def plain_run(cancer):
    return run_fedavg(cancer, FedAvgConfig(rounds=15), num_clients=8, seed=11)


@pytest.fixture(scope="module")
def paillier_agg():
    return _require("paillier", bound=5.0, **PAILLIER_TEST_OPTIONS)


@pytest.mark.parametrize("name", ["secagg", "secagg+"])
def test_masking_matches_plain_within_half_a_point(name, cancer, plain_run):
    _require(name)
    res = run_fedavg(cancer, FedAvgConfig(rounds=15, aggregator=name), num_clients=8, seed=11)
    assert abs(res.accuracy - plain_run.accuracy) <= 0.005
    # only quantization differs: the parameters agree to a few ring resolutions
    assert np.max(np.abs(res.params - plain_run.params)) < 1e-4
    r = res.history[0]
    assert r.bytes_up_per_client > plain_run.history[0].bytes_up_per_client  # masking costs bytes
    assert r.crypto_client_seconds > 0 and res.hides_individual_updates


def test_paillier_matches_plain_within_half_a_point(cancer, plain_run, paillier_agg):
    res = run_fedavg(cancer, FedAvgConfig(rounds=15, aggregator="paillier"), num_clients=8, seed=11,
                     aggregator=paillier_agg)
    assert abs(res.accuracy - plain_run.accuracy) <= 0.005
    assert res.hides_individual_updates
    assert res.history[0].bytes_up_per_client > 0


@pytest.mark.parametrize("name", ["secagg", "secagg+"])
def test_thirty_percent_dropout_masked_run_completes_and_converges(name, cancer):
    _require(name)
    res = run_fedavg(cancer, FedAvgConfig(rounds=12, aggregator=name, dropout=0.3), num_clients=10, seed=2)
    assert len(res.history) == 12
    assert all(not r.aborted and r.survivors == 7 for r in res.history)
    assert res.accuracy > 0.92


def test_dropout_before_masked_input_also_recovers(cancer):
    _require("secagg")
    res = run_fedavg(cancer, FedAvgConfig(rounds=3, aggregator="secagg", dropout=0.3, dropout_round="share_keys"),
                     num_clients=10, seed=2)
    assert all(not r.aborted and r.survivors == 7 for r in res.history)


def test_threshold_above_clients_fails_before_training(cancer):
    _require("secagg")
    with pytest.raises(ConfigurationError, match="threshold 11 is above the 10 clients"):
        run_fedavg(cancer, FedAvgConfig(aggregator="secagg", aggregator_options={"threshold": 11}),
                   num_clients=10, seed=0)


@pytest.mark.parametrize("name", ["central-dp", "distributed-dp", "local-dp"])
def test_dp_runs_report_increasing_epsilon(name, cancer):
    _require(name, clip_norm=1.0, noise_multiplier=1.0)
    res = run_fedavg(cancer, FedAvgConfig(rounds=5, aggregator=name, noise_multiplier=1.0, clip_norm=1.0),
                     num_clients=10, seed=0)
    eps = [r.epsilon for r in res.history]
    assert all(e is not None and e > 0 for e in eps)
    assert all(b > a for a, b in zip(eps, eps[1:]))
    assert res.history[-1].noise_std > 0


def test_target_epsilon_solves_the_noise_and_is_met(cancer):
    _require("central-dp", clip_norm=1.0, noise_multiplier=1.0)
    res = run_fedavg(cancer, FedAvgConfig(rounds=6, aggregator="central-dp", target_epsilon=3.0, clip_norm=1.0,
                                          sampling="poisson", fraction=0.5), num_clients=10, seed=0)
    assert res.noise_multiplier > 0
    assert res.epsilon <= 3.0 and res.epsilon > 2.0


def test_exhausted_budget_fails_before_training(cancer, monkeypatch):
    _require("central-dp", clip_norm=1.0, noise_multiplier=1.0)
    import fl.client

    monkeypatch.setattr(fl.client.Client, "local_update", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(BudgetExceeded, match="above the budget 1"):
        run_fedavg(cancer, FedAvgConfig(rounds=50, aggregator="central-dp", noise_multiplier=0.7,
                                        target_epsilon=1.0), num_clients=10, seed=0)


def test_accuracy_vs_epsilon_is_monotone_within_noise(cancer):
    """Quick version: 4 noise levels, 3 seeds each; the mean accuracy must not drop by
    more than the noise band (2 standard errors) as epsilon grows."""
    _require("central-dp", clip_norm=1.0, noise_multiplier=1.0)
    points = []
    for z in (8.0, 2.0, 0.7, 0.3):  # decreasing noise -> increasing epsilon
        accs, eps = [], None
        for seed in range(3):
            r = run_fedavg(cancer, FedAvgConfig(rounds=8, aggregator="central-dp", noise_multiplier=z, clip_norm=1.0,
                                                lr=0.2), num_clients=10, seed=seed)
            accs.append(r.accuracy)
            eps = r.epsilon
        points.append((eps, float(np.mean(accs)), float(np.std(accs) / np.sqrt(3))))
    eps = [p[0] for p in points]
    assert eps == sorted(eps)
    for (e0, a0, s0), (e1, a1, s1) in zip(points, points[1:]):
        assert a1 >= a0 - 2 * np.hypot(s0, s1) - 0.01, points
    assert points[-1][1] > points[0][1]  # and the ends really differ


@pytest.mark.slow
@pytest.mark.parametrize("name", ["central-dp", "distributed-dp"])
def test_accuracy_vs_epsilon_monotone_full_sweep(name, cancer):
    """Five epsilons, eight seeds each: no step down by more than two standard errors."""
    _require(name, clip_norm=1.0, noise_multiplier=1.0)
    points = []
    for z in (8.0, 4.0, 2.0, 1.0, 0.5):
        accs, eps = [], None
        for seed in range(8):
            r = run_fedavg(cancer, FedAvgConfig(rounds=15, aggregator=name, noise_multiplier=z, clip_norm=1.0),
                           num_clients=10, seed=100 + seed)
            accs.append(r.accuracy)
            eps = r.epsilon
        points.append((eps, float(np.mean(accs)), float(np.std(accs) / np.sqrt(8))))
    assert [p[0] for p in points] == sorted(p[0] for p in points)
    for (e0, a0, s0), (e1, a1, s1) in zip(points, points[1:]):
        assert a1 >= a0 - 2 * np.hypot(s0, s1), points
    assert points[-1][1] > points[0][1] + 0.02


def test_poisson_sampling_with_distributed_dp_is_charged_without_amplification(cancer):
    """The accountant has no subsampled bound for the distributed discrete Gaussian: the
    run must still account (upper bound, no amplification) instead of failing."""
    _require("distributed-dp", clip_norm=1.0, noise_multiplier=1.0)
    cfg = FedAvgConfig(rounds=2, aggregator="distributed-dp", noise_multiplier=2.0, sampling="poisson", fraction=0.6)
    res = run_fedavg(cancer, cfg, num_clients=10, seed=0)
    full = run_fedavg(cancer, FedAvgConfig(rounds=2, aggregator="distributed-dp", noise_multiplier=2.0),
                      num_clients=10, seed=0)
    assert res.epsilon is not None and res.epsilon > 0
    assert res.epsilon == pytest.approx(full.epsilon, rel=0.2)
