"""The epsilon fl reports is never smaller than the privacy given (issue 16 point 0), noise
is never reproducible by accident (issue 12 point 5), and example-level DP clients."""


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fl.client import Client
from fl.data import load_dataset
from fl.example_dp import clipped_gradient_sum, example_event
from fl.model import per_example_grads
from fl.privacy import PrivacyLedger, calibrate_noise_multiplier, make_accountant
from fl.server import FedAvg, FedAvgConfig, run_fedavg
from secagg.dp import GaussianEvent, PoissonSampledEvent
from secagg.dp.aggregators import CentralDPAggregator
from secagg.errors import BudgetExceeded, ConfigurationError


@pytest.fixture(scope="module")
def cancer():
    return load_dataset("breast_cancer", seed=0)


def _clients(ds, sizes, start=0):
    out, at = [], start
    for i, n in enumerate(sizes):
        out.append(Client(i, ds.X_train[at:at + n], ds.y_train[at:at + n], ds.n_classes))
        at += n
    return out


# ---------------------------------------------------------------- (a) weights under DP
class _Recorder(CentralDPAggregator):
    """Central DP that remembers the rows it was given (the input of the DP sum)."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.rows = []

    def aggregate(self, updates, *, dropout=None, rng=None):
        self.rows.append(np.array(updates))
        return super().aggregate(updates, dropout=dropout, rng=rng)


@pytest.mark.parametrize("weighting, cap", [(None, None), ("examples", 40.0)])
def test_adding_a_large_client_moves_the_dp_sum_by_at_most_one_clip(cancer, weighting, cap):
    """Issue 16 (a): with w_i = n_i / max_j n_j a 400-row client rescaled every other row;
    under DP the weights are uniform or capped by a public W, so only the new row is added."""
    clip = 1.0
    small = _clients(cancer, [20] * 5)
    big = small + [Client(5, cancer.X_train[20:420], cancer.y_train[20:420], 2)]
    cfg = FedAvgConfig(rounds=1, aggregator="central-dp", noise_multiplier=1.0, clip_norm=clip, weighting=weighting,
                       weight_cap=cap, lr=0.5)
    sums = []
    for clients in (small, big):
        agg = _Recorder(clip_norm=clip, noise_multiplier=1.0)
        FedAvg(clients, cancer.X_test, cancer.y_test, cfg, seed=3, aggregator=agg).run()
        sums.append(agg.rows[-1])  # [0] is the zero probe
    np.testing.assert_array_equal(sums[1][:5], sums[0])  # the other clients' rows do not move
    assert np.linalg.norm(sums[1].sum(0) - sums[0].sum(0)) <= clip * (1 + 1e-12)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(2, 500), min_size=2, max_size=12), st.integers(2, 5000),
       st.floats(1.0, 600.0))
def test_dp_weights_of_others_never_depend_on_an_added_client(sizes, extra, cap):
    X = np.zeros((max(sizes + [extra]), 2))
    y = np.zeros(len(X), dtype=np.int64)
    y[1] = 1

    def weights(ns):
        clients = [Client(i, X[:n], y[:n], 2) for i, n in enumerate(ns)]
        cfg = FedAvgConfig(rounds=1, aggregator="central-dp", noise_multiplier=1.0, weighting="examples",
                           weight_cap=cap)
        return FedAvg(clients, X[:4], y[:4], cfg, seed=0).weights

    a, b = weights(sizes), weights(sizes + [extra])
    np.testing.assert_array_equal(a, b[:-1])
    assert 0 <= b.min() and b.max() <= 1
    np.testing.assert_allclose(b, np.minimum(np.array(sizes + [extra]) / cap, 1.0))


def test_examples_weighting_under_dp_needs_a_public_cap():
    with pytest.raises(ConfigurationError, match="weight_cap"):
        FedAvgConfig(aggregator="central-dp", noise_multiplier=1.0, weighting="examples").validate()
    assert FedAvgConfig(aggregator="central-dp", noise_multiplier=1.0).resolved_weighting == "uniform"
    assert FedAvgConfig().resolved_weighting == "examples"


def test_dp_result_states_the_neighbouring_relation(cancer):
    res = run_fedavg(cancer, FedAvgConfig(rounds=1, aggregator="central-dp", noise_multiplier=2.0), num_clients=4,
                     seed=0)
    p = res.to_dict()["privacy"]
    assert p["unit"] == "client" and "add/remove one client" in p["neighbouring"]
    assert p["accountant"] == type(make_accountant()).__name__ and p["delta"] == 1e-5


# ---------------------------------------------------------------- (b) charge the actual event
def test_round_whose_actual_survivors_overspend_is_refused_before_release(cancer):
    """Noise shares calibrated for all 10 clients while 3 drop: each round costs more than
    planned. The budget is set so that round 4 passes the planned check but its actual
    event does not fit: it must be refused, charged nothing, and leave the model as is.

    Over the masking protocol the clients themselves refuse to unmask fewer survivors than
    the noise was calibrated for (see the next test), so the overspend needs a secure sum
    that does not enforce the floor: the non-secure ``plain_ring_sum`` test backend."""
    from secagg import make_aggregator
    from secagg.dp.distributed import plain_ring_sum

    agg = make_aggregator("distributed-dp", clip_norm=1.0, noise_multiplier=2.0, min_clients=10)
    planned, actual = agg.dp_event_for(10, 31), agg.dp_event_for(10, 31, survivors=7)

    def eps(n_actual, n_planned):
        return make_accountant().compose(actual, n_actual).compose(planned, n_planned).get_epsilon(1e-5)

    assert eps(0, 4) < eps(3, 1) < eps(4, 0)
    target = 0.5 * (eps(3, 1) + eps(4, 0))
    cfg = FedAvgConfig(rounds=4, aggregator="distributed-dp", noise_multiplier=2.0, target_epsilon=target,
                       dropout=0.3, clip_norm=1.0, aggregator_options={"min_clients": 10, "secure_sum": plain_ring_sum},
                       reproducible_noise=True)
    res = run_fedavg(cancer, cfg, num_clients=10, seed=1)
    assert [r.survivors for r in res.history] == [7] * 4
    assert [r.refused for r in res.history] == [False, False, False, True]
    assert all(r.epsilon <= target for r in res.history)
    assert res.history[-1].epsilon == pytest.approx(eps(3, 0), rel=1e-9)  # nothing charged for round 4
    assert "refused" in res.stop_reason
    three = run_fedavg(cancer, FedAvgConfig(**{**cfg.__dict__, "rounds": 3, "target_epsilon": None}),
                       num_clients=10, seed=1)
    np.testing.assert_array_equal(res.params, three.params)  # round 4's aggregate was discarded


def test_over_masking_the_clients_refuse_a_round_below_the_noise_floor(cancer):
    """The same plan over the real masking protocol: no round can release a sum with less
    noise than calibrated, since the clients refuse to unmask fewer than min_clients
    survivors; the run fails before training (the probe round) instead of overspending."""
    from secagg.errors import ProtocolAbort

    cfg = FedAvgConfig(rounds=1, aggregator="distributed-dp", noise_multiplier=2.0, dropout=0.3, clip_norm=1.0,
                       aggregator_options={"min_clients": 10}, reproducible_noise=True)
    with pytest.raises(ProtocolAbort, match="min_survivors=10"):
        run_fedavg(cancer, cfg, num_clients=10, seed=1)


def test_ledger_refuses_and_charges_nothing():
    ledger = PrivacyLedger(1e-5, target_epsilon=1.0)
    ev = GaussianEvent(8.0)
    ledger.charge(ev)
    before = ledger.epsilon
    with pytest.raises(BudgetExceeded):
        ledger.charge(ev, 50)
    assert ledger.epsilon == before and ledger.charges == 1


# ---------------------------------------------------------------- (c) no amplification by the server's sample
@pytest.mark.parametrize("name", ["local-dp", "distributed-dp"])
def test_local_and_distributed_dp_are_not_amplified_by_client_sampling(cancer, name):
    cfg = FedAvgConfig(rounds=4, aggregator=name, noise_multiplier=3.0, sampling="poisson", fraction=0.4, clip_norm=1.0)
    res = run_fedavg(cancer, cfg, num_clients=10, seed=0)
    released = [r for r in res.history if r.survivors > 0]
    assert released
    from secagg import make_aggregator

    full = make_aggregator(name, clip_norm=1.0, noise_multiplier=3.0).dp_event_for(10, 31)
    if name == "local-dp":  # each released round costs one full discrete Gaussian of multiplier 3
        ref = make_accountant().compose(full, len(released)).get_epsilon(1e-5)
        assert res.epsilon == pytest.approx(ref, rel=1e-9)
    amplified = make_accountant().compose(PoissonSampledEvent(0.4, full), len(released)).get_epsilon(1e-5)
    assert res.epsilon > 2 * amplified


def test_central_dp_is_amplified_by_secret_poisson_client_sampling(cancer):
    cfg = FedAvgConfig(rounds=4, aggregator="central-dp", noise_multiplier=3.0, sampling="poisson", fraction=0.4)
    res = run_fedavg(cancer, cfg, num_clients=10, seed=0)
    from secagg import make_aggregator

    ev = make_aggregator("central-dp", clip_norm=res.config.clip_norm,
                         noise_multiplier=3.0).dp_event_for(10, 31)
    ref = make_accountant().compose(PoissonSampledEvent(0.4, ev), 4).get_epsilon(1e-5)
    assert res.epsilon == pytest.approx(ref, rel=1e-9)
    assert "client sampling" in res.privacy["amplification"]


def test_poisson_round_with_one_client_under_secure_aggregation_is_skipped_not_a_crash(cancer):
    cfg = FedAvgConfig(rounds=10, aggregator="distributed-dp", noise_multiplier=2.0, sampling="poisson",
                       fraction=0.1, clip_norm=1.0)
    res = run_fedavg(cancer, cfg, num_clients=10, seed=0)
    lone = [r for r in res.history if r.sampled == 1]
    assert lone and all(r.aborted and r.survivors == 0 and "at least 2" in r.abort_reason for r in lone)
    assert len(res.history) == 10
    prev = 0.0
    for r in res.history:  # a round that released nothing costs nothing
        assert (r.epsilon == prev) if r.survivors == 0 else (r.epsilon > prev)
        prev = r.epsilon


# ---------------------------------------------------------------- calibration solved once
@pytest.mark.parametrize("name", ["central-dp", "distributed-dp"])
def test_calibrated_noise_is_the_smallest_that_meets_the_target(cancer, name):
    cfg = FedAvgConfig(rounds=10, aggregator=name, target_epsilon=3.0, clip_norm=1.0, dropout=0.2)
    res = run_fedavg(cancer, cfg, num_clients=10, seed=0)
    from secagg import make_aggregator

    def eps(z):
        opts = {"expected_dropout": 0.2} if name == "distributed-dp" else {}
        ev = make_aggregator(name, clip_norm=1.0, noise_multiplier=z, **opts).dp_event_for(10, 31)
        return make_accountant().compose(ev, 10).get_epsilon(1e-5)

    z = res.noise_multiplier
    assert eps(z) <= 3.0 < eps(z * (1 - 1e-3))
    assert res.epsilon <= 3.0


def test_calibration_function_brackets_any_monotone_event():
    z = calibrate_noise_multiplier(lambda z: GaussianEvent(z), 1.0, 1e-5, 1)
    assert make_accountant().compose(GaussianEvent(z)).get_epsilon(1e-5) <= 1.0
    assert make_accountant().compose(GaussianEvent(z * 0.999)).get_epsilon(1e-5) > 1.0


# ---------------------------------------------------------------- flags that do not apply
@pytest.mark.parametrize("kwargs, flag", [
    ({"aggregator": "secagg", "dp_unit": "example"}, "dp_unit"),
    ({"aggregator": "plain", "target_epsilon": 2.0}, "target_epsilon"),
    ({"aggregator": "secagg+", "noise_multiplier": 1.0}, "noise_multiplier"),
    ({"aggregator": "plain", "reproducible_noise": True}, "reproducible_noise"),
    ({"aggregator": "central-dp", "noise_multiplier": 1.0, "example_sampling_rate": 0.5}, "example_sampling_rate"),
    ({"aggregator": "distributed-dp", "noise_multiplier": 1.0, "dp_unit": "example", "local_epochs": 3},
     "local_epochs"),
])
def test_inapplicable_settings_are_refused(kwargs, flag):
    with pytest.raises(ConfigurationError, match=flag):
        FedAvgConfig(**kwargs).validate()


# ---------------------------------------------------------------- issue 12 point 5: noise
@pytest.mark.parametrize("name, unit", [("central-dp", None), ("distributed-dp", None), ("local-dp", "example"),
                                        ("secagg", None)])
def test_same_seed_gives_different_noise_unless_reproducible(cancer, name, unit):
    dp = {"noise_multiplier": 1.0, "dp_unit": unit} if name.endswith("dp") else {}
    base = FedAvgConfig(rounds=2, aggregator=name, clip_norm=1.0, **dp)
    a = run_fedavg(cancer, base, num_clients=4, seed=7)
    b = run_fedavg(cancer, base, num_clients=4, seed=7)
    assert not np.array_equal(a.params, b.params)
    assert a.to_dict()["privacy"]["reproducible_noise"] is False
    rep = FedAvgConfig(**{**base.__dict__, "reproducible_noise": True})
    c = run_fedavg(cancer, rep, num_clients=4, seed=7)
    d = run_fedavg(cancer, rep, num_clients=4, seed=7)
    np.testing.assert_array_equal(c.params, d.params)
    assert c.to_dict()["privacy"]["reproducible_noise"] is True


# ---------------------------------------------------------------- example-level DP
def test_clipped_gradient_sum_matches_a_per_example_loop(cancer):
    rng = np.random.default_rng(0)
    w = rng.normal(size=31)
    X, y = cancer.X_train[:50], cancer.y_train[:50]
    s, k, c = clipped_gradient_sum(w, X, y, 2, 0.7, 1.0, rng)
    ref = np.zeros(31)
    n_clipped = 0
    for i in range(50):
        g = per_example_grads(w, X[i:i + 1], y[i:i + 1], 2)[0]
        n = np.linalg.norm(g)
        n_clipped += n > 0.7
        ref += g * min(1.0, 0.7 / n)
    np.testing.assert_allclose(s, ref, rtol=1e-12, atol=1e-12)
    assert k == 50 and c == n_clipped


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.05, 5.0), st.integers(0, 39))
def test_one_example_moves_a_client_sum_by_at_most_clip(seed, clip, drop):
    ds = load_dataset("iris", seed=0)
    X, y = ds.X_train[:40], ds.y_train[:40]
    w = np.random.default_rng(seed).normal(size=(ds.n_features + 1) * 3)
    full, _, _ = clipped_gradient_sum(w, X, y, 3, clip, 1.0, np.random.default_rng(0))
    keep = np.arange(40) != drop
    less, _, _ = clipped_gradient_sum(w, X[keep], y[keep], 3, clip, 1.0, np.random.default_rng(0))
    assert np.linalg.norm(full - less) <= clip * (1 + 1e-9)


def test_example_level_central_epsilon_is_the_subsampled_gaussian_over_rounds(cancer):
    cfg = FedAvgConfig(rounds=15, aggregator="central-dp", dp_unit="example", noise_multiplier=1.2,
                       example_sampling_rate=0.2, clip_norm=1.0, lr=1.0)
    res = run_fedavg(cancer, cfg, num_clients=10, seed=0)
    ev = example_event("central", 1.2, 0.2, clip_norm=1.0, dim=31)
    assert res.epsilon == pytest.approx(make_accountant().compose(ev, 15).get_epsilon(1e-5), rel=1e-9)
    p = res.privacy
    assert p["unit"] == "example" and "one training example" in p["neighbouring"]
    assert "example sampling" in p["amplification"]


def test_example_level_local_charges_every_local_step(cancer):
    cfg = FedAvgConfig(rounds=3, aggregator="local-dp", dp_unit="example", noise_multiplier=2.0,
                       example_sampling_rate=0.5, local_epochs=1, clip_norm=1.0)
    res = run_fedavg(cancer, cfg, num_clients=5, seed=0)
    ev = example_event("local", 2.0, 0.5, steps=2, clip_norm=1.0, dim=31)
    assert res.epsilon == pytest.approx(make_accountant().compose(ev, 3).get_epsilon(1e-5), rel=1e-9)


def test_example_level_distributed_noise_is_the_sum_of_the_survivors_shares(cancer):
    cfg = FedAvgConfig(rounds=2, aggregator="distributed-dp", dp_unit="example", noise_multiplier=3.0,
                       clip_norm=0.5, dropout=0.2)
    res = run_fedavg(cancer, cfg, num_clients=10, seed=0)
    for r in res.history:
        assert r.survivors == 8
        assert r.noise_std == pytest.approx(3.0 * 0.5, rel=1e-9)  # calibrated for the 8 expected survivors
    assert res.hides_individual_updates and res.epsilon > 0


def test_example_level_dp_at_epsilon_2_is_close_to_non_private(cancer):
    """Five seeds; the mean of example-level distributed DP at epsilon 2 must be within 5
    points of plain FedAvg (measured gap ~0 on this split; 5 points is far beyond the
    seed-to-seed spread, sd ~1 point)."""
    plain = np.mean([run_fedavg(cancer, FedAvgConfig(rounds=20), num_clients=10, seed=s).accuracy
                     for s in range(5)])
    cfg = FedAvgConfig(rounds=20, aggregator="central-dp", dp_unit="example", target_epsilon=2.0, clip_norm=1.0, lr=1.0)
    accs = [run_fedavg(cancer, cfg, num_clients=10, seed=s) for s in range(5)]
    assert all(r.epsilon <= 2.0 for r in accs)
    assert np.mean([r.accuracy for r in accs]) >= plain - 0.05


def test_a_registered_custom_dp_aggregator_is_accounted(cancer):
    """DP aggregators are recognized by what their class declares (is_dp, dp_event_for),
    not by name: a custom one gets the same budget accounting as the built-in ones."""
    from secagg.aggregators import AggregationResult, Aggregator, Costs, register_aggregator

    class GaussianSum(Aggregator):
        name = "test-gaussian-sum"
        is_dp = True
        randomized = True

        def __init__(self, clip_norm=1.0, noise_multiplier=1.0):
            self.clip_norm, self.z = clip_norm, noise_multiplier

        def dp_event_for(self, n, dim, survivors=None, dropout=None):
            return GaussianEvent(self.z)

        def aggregate(self, updates, *, dropout=None, rng=None):
            x = np.asarray(updates, dtype=np.float64)
            n, d = x.shape
            norms = np.maximum(np.linalg.norm(x, axis=1), 1e-300)
            total = (x * np.minimum(1.0, self.clip_norm / norms)[:, None]).sum(axis=0)
            total += np.random.default_rng().normal(scale=self.z * self.clip_norm, size=d)
            return AggregationResult(total, np.arange(n), Costs.one_round(n, bytes_up=np.full(n, 4 * d)),
                                     noise_std=self.z * self.clip_norm, info={"dp_event": GaussianEvent(self.z)})

    register_aggregator("test-gaussian-sum", GaussianSum)
    res = run_fedavg(cancer, FedAvgConfig(rounds=3, aggregator="test-gaussian-sum", noise_multiplier=2.0,
                                          clip_norm=1.0), num_clients=5, seed=0)
    assert res.epsilon == pytest.approx(make_accountant().compose(GaussianEvent(2.0), 3).get_epsilon(1e-5), rel=1e-9)
    assert res.privacy["dp"] is True
