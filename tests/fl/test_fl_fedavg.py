"""fl.server / fl.client: FedAvg with the plain aggregator, dropouts, deadlines, bad input."""

import dataclasses

import numpy as np
import pytest

from fl.client import clip_and_weight
from fl.data import load_dataset
from fl.devices import DeviceFleet
from fl.server import FedAvg, FedAvgConfig, make_clients, run_fedavg
from secagg.aggregators import register_aggregator, PlainAggregator
from secagg.errors import ConfigurationError, InputError


@pytest.fixture(scope="module")
def cancer():
    return load_dataset("breast_cancer", seed=0)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


@pytest.mark.parametrize("name", ["cancer", "digits"])
def test_plain_fedavg_iid_within_two_points_of_sklearn(name, request):
    from sklearn.linear_model import LogisticRegression

    ds = request.getfixturevalue(name)
    ref = LogisticRegression(max_iter=2000).fit(ds.X_train, ds.y_train).score(ds.X_test, ds.y_test)
    res = run_fedavg(ds, FedAvgConfig(rounds=30), num_clients=10, seed=0)
    assert len(res.history) == 30
    assert res.accuracy >= ref - 0.02, (res.accuracy, ref)


def test_records_bytes_and_times_per_round(cancer):
    res = run_fedavg(cancer, FedAvgConfig(rounds=3), num_clients=8, seed=1)
    P = 31
    for r in res.history:
        assert r.sampled == r.survivors == 8
        # plain sends float32 updates up and the float32 model comes down
        assert r.bytes_up_per_client == 4 * P and r.bytes_down_per_client == 4 * P
        assert r.bytes_up == 8 * 4 * P
        assert r.train_seconds > 0 and r.simulated_seconds > 0 and r.epsilon is None
    assert res.bytes_total == 3 * 2 * 8 * 4 * P
    d = res.to_dict()
    assert d["accuracy"] == res.accuracy and len(d["rounds"]) == 3


def test_same_seed_same_run_and_different_seed_differs(cancer):
    cfg = FedAvgConfig(rounds=3, fraction=0.5)
    a = run_fedavg(cancer, cfg, num_clients=10, seed=5)
    b = run_fedavg(cancer, cfg, num_clients=10, seed=5)
    c = run_fedavg(cancer, cfg, num_clients=10, seed=6)
    np.testing.assert_array_equal(a.params, b.params)
    assert not np.array_equal(a.params, c.params)


def test_weighted_average_is_exact_for_plain():
    """One round, lr so small nothing clips: the update is sum(w_i delta_i) / sum(w_i)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int)
    from fl.client import Client

    clients = [Client(0, X[:10], y[:10], 2), Client(1, X[10:60], y[10:60], 2)]
    cfg = FedAvgConfig(rounds=1, batch_size=100, lr=0.01, clip_norm=100.0)
    fed = FedAvg(clients, X, y, cfg, seed=0)
    res = fed.run()
    d0 = clients[0].local_update(np.zeros(4), batch_size=100, lr=0.01).delta
    d1 = clients[1].local_update(np.zeros(4), batch_size=100, lr=0.01).delta
    w = np.array([10, 50]) / 50
    expected = (w[0] * d0 + w[1] * d1) / w.sum()
    # the wire carries float32
    np.testing.assert_allclose(res.params, expected, rtol=1e-6, atol=1e-8)


def test_clip_and_weight_bounds_every_row():
    rng = np.random.default_rng(0)
    D = rng.normal(size=(20, 7)) * rng.uniform(0, 10, size=(20, 1))
    w = rng.uniform(0, 1, size=20)
    rows, clipped = clip_and_weight(D, w, 2.0)
    norms = np.linalg.norm(rows, axis=1)
    assert (norms <= 2.0 * w + 1e-12).all()
    np.testing.assert_array_equal(clipped, np.linalg.norm(D, axis=1) > 2.0)
    with pytest.raises(InputError):
        clip_and_weight(D, w * 2 + 1, 1.0)
    np.testing.assert_array_equal(clip_and_weight(D, w, clip_norm=2.0)[0], rows)
    with pytest.warns(DeprecationWarning, match="use clip_norm="):
        np.testing.assert_array_equal(clip_and_weight(D, w, clip=2.0)[0], rows)


def test_thirty_percent_dropout_plain_completes_and_converges(cancer):
    res = run_fedavg(cancer, FedAvgConfig(rounds=20, dropout=0.3), num_clients=10, seed=0)
    assert all(r.survivors == 7 and r.dropped == 3 and not r.aborted for r in res.history)
    assert res.accuracy > 0.92


def test_deadline_drops_stragglers_and_caps_round_time(cancer):
    fleet = DeviceFleet.sample(10, 0)
    base = run_fedavg(cancer, FedAvgConfig(rounds=2), num_clients=10, seed=0, devices=fleet)
    slowest = max(r.simulated_seconds for r in base.history)
    deadline = 0.5 * slowest
    res = run_fedavg(cancer, FedAvgConfig(rounds=2, deadline=deadline), num_clients=10, seed=0, devices=fleet)
    for r in res.history:
        assert r.late >= 1 and r.survivors == r.sampled - r.late
        assert r.simulated_seconds <= deadline + 1e-6 + r.crypto_server_seconds


def test_poisson_sampling_varies_cohort_size(cancer):
    res = run_fedavg(cancer, FedAvgConfig(rounds=15, fraction=0.5, sampling="poisson"), num_clients=20, seed=0)
    sizes = {r.sampled for r in res.history}
    assert len(sizes) > 1 and all(0 <= s <= 20 for s in sizes)


def test_bad_input_fails_before_training(cancer, monkeypatch):
    import fl.client

    calls = []
    monkeypatch.setattr(fl.client.Client, "local_update", lambda *a, **k: calls.append(1))
    with pytest.raises(ConfigurationError, match="unknown aggregator 'secagg-9000'"):
        run_fedavg(cancer, FedAvgConfig(aggregator="secagg-9000"), num_clients=4, seed=0)
    with pytest.raises(ConfigurationError, match="threshold 9 is above the 5 clients"):
        run_fedavg(cancer, FedAvgConfig(aggregator="plain", fraction=0.5, aggregator_options={"threshold": 9}),
                   num_clients=10, seed=0)
    with pytest.raises(ConfigurationError, match="below the threshold"):
        run_fedavg(cancer, FedAvgConfig(dropout=0.5, aggregator_options={"threshold": 8}), num_clients=10, seed=0)
    with pytest.raises(ConfigurationError, match="give noise_multiplier or target_epsilon"):
        run_fedavg(cancer, FedAvgConfig(aggregator="central-dp"), num_clients=4, seed=0)
    for bad in ({"rounds": 0}, {"fraction": 0.0}, {"dropout": 1.0}, {"sampling": "lottery"}, {"clip": -1.0}):
        with pytest.raises(ConfigurationError):
            run_fedavg(cancer, dataclasses.replace(FedAvgConfig(), **bad), num_clients=4, seed=0)
    assert calls == []


def test_a_registered_custom_aggregator_plugs_in_by_name(cancer):
    class HalfAggregator(PlainAggregator):
        """Sums then halves: a deliberately different technique to see it is used."""

        name = "half"

        def aggregate(self, updates, *, dropout=None, rng=None):
            res = super().aggregate(updates, dropout=dropout, rng=rng)
            res.total = res.total / 2
            return res

    register_aggregator("half-test", HalfAggregator)
    a = run_fedavg(cancer, FedAvgConfig(rounds=1, clip_norm=100.0), num_clients=4, seed=0)
    b = run_fedavg(cancer, FedAvgConfig(rounds=1, clip_norm=100.0, aggregator="half-test"), num_clients=4, seed=0)
    np.testing.assert_allclose(b.params, a.params / 2, rtol=1e-12)


def test_make_clients_partition_summary(cancer):
    clients, summary = make_clients(cancer, 5, "quantity", alpha=1.0, rng=np.random.default_rng(0))
    assert sum(c.n_examples for c in clients) == len(cancer.y_train)
    assert summary["sizes"] == [c.n_examples for c in clients]


def test_unknown_dropout_round_is_refused_for_every_aggregator():
    """A misspelled dropout round must not be silently ignored (the plain aggregator has
    no rounds of its own)."""
    with pytest.raises(ConfigurationError, match="dropout_round"):
        FedAvgConfig(dropout=0.3, dropout_round="bogus").validate()
    FedAvgConfig(dropout=0.3, dropout_round="share_keys").validate()


def test_seed_does_not_reach_the_aggregator_noise_unless_reproducible_noise(monkeypatch):
    """With or without a seed, FedAvg passes rng=None so noise and rounding come from the
    aggregator's AES-CTR generator; only reproducible_noise=True hands it a seeded stream."""
    from secagg.aggregators import PlainAggregator

    seen = []

    class Spy(PlainAggregator):
        def aggregate(self, updates, *, dropout=None, rng=None):
            seen.append(rng)
            return super().aggregate(updates, dropout=dropout, rng=rng)

    ds = load_dataset("iris", seed=0)
    # the first call is the dry run on all-zero updates (checks the configuration; its
    # output is discarded), the next two are the training rounds
    for seed in (None, 5):
        seen.clear()
        run_fedavg(ds, FedAvgConfig(rounds=2), num_clients=3, seed=seed, aggregator=Spy())
        assert len(seen) == 3 and all(r is None for r in seen[1:])
    seen.clear()
    run_fedavg(ds, FedAvgConfig(rounds=2, aggregator="secagg", reproducible_noise=True), num_clients=3, seed=5,
               aggregator=Spy())
    assert len(seen) == 3 and all(isinstance(r, np.random.Generator) for r in seen[1:])
