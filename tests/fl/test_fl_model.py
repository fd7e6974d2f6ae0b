"""fl.model: gradients, DP-SGD clipping, and the sklearn-style estimator."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fl.data import load_dataset
from fl.model import LogisticRegression, loss_and_grad, n_params, per_example_grads, predict_proba, sgd
from secagg.errors import ConfigurationError, InputError


@settings(deadline=None, max_examples=25)
@given(k=st.integers(2, 4), d=st.integers(1, 5), seed=st.integers(0, 1000), l2=st.sampled_from([0.0, 0.3]))
def test_gradient_matches_finite_differences(k, d, seed, l2):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(12, d))
    y = rng.integers(0, k, size=12)
    p = rng.normal(size=n_params(d, k))
    _, g = loss_and_grad(p, X, y, k, l2)
    eps = 1e-6
    E = np.eye(len(p)) * eps
    num = np.array([(loss_and_grad(p + e, X, y, k, l2)[0] - loss_and_grad(p - e, X, y, k, l2)[0]) / (2 * eps)
                    for e in E])
    np.testing.assert_allclose(g, num, atol=1e-6)


def test_per_example_grads_average_to_the_batch_gradient():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 4)), rng.integers(0, 3, size=30)
    p = rng.normal(size=n_params(4, 3))
    G = per_example_grads(p, X, y, 3)
    assert G.shape == (30, 15)
    np.testing.assert_allclose(G.mean(axis=0), loss_and_grad(p, X, y, 3)[1], atol=1e-12)


def test_probabilities_are_normalized():
    rng = np.random.default_rng(1)
    for k in (2, 5):
        P = predict_proba(rng.normal(size=n_params(3, k)) * 10, rng.normal(size=(7, 3)), k)
        assert P.shape == (7, k)
        np.testing.assert_allclose(P.sum(axis=1), 1.0)
        assert (P >= 0).all()


def test_dp_sgd_clips_and_noise_moves_the_result():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 3)) * 50, rng.integers(0, 2, size=64)
    p0 = np.zeros(n_params(3, 2))
    p_clip, steps, frac = sgd(p0, X, y, 2, epochs=1, batch_size=64, lr=1.0, clip_norm=0.1, rng=np.random.default_rng(1))
    # one step: the update is the mean of clipped gradients, so its norm is <= lr * clip
    assert steps == 1 and frac > 0.9
    assert np.linalg.norm(p_clip - p0) <= 0.1 + 1e-12
    # same seed => same shuffle, so the difference is exactly lr * N(0, (z clip)^2) / B per coordinate
    diffs = np.stack([
        sgd(p0, X, y, 2, epochs=1, batch_size=64, lr=1.0, clip_norm=0.1, noise_multiplier=5.0,
            rng=np.random.default_rng(s))[0]
        - sgd(p0, X, y, 2, epochs=1, batch_size=64, lr=1.0, clip_norm=0.1, rng=np.random.default_rng(s))[0]
        for s in range(200)])
    expected_sd = 5.0 * 0.1 / 64
    # 800 draws: the sample sd is within 10% of the truth with probability > 1 - 1e-4
    assert abs(diffs.std() / expected_sd - 1) < 0.1


def test_sgd_rejects_noise_without_clip_and_bad_params():
    X, y = np.zeros((4, 2)), np.array([0, 1, 0, 1])
    with pytest.raises(ConfigurationError, match="clip"):
        sgd(np.zeros(3), X, y, 2, noise_multiplier=1.0)
    with pytest.raises(ConfigurationError):
        sgd(np.zeros(3), X, y, 2, lr=0.0)
    with pytest.raises(InputError, match="shape"):
        loss_and_grad(np.zeros(5), X, y, 2)


def test_per_example_clip_is_called_clip_norm_and_the_old_name_warns():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 3)), rng.integers(0, 2, size=64)
    p0 = np.zeros(4)
    new = sgd(p0, X, y, 2, lr=1.0, clip_norm=0.1, rng=np.random.default_rng(1))
    with pytest.warns(DeprecationWarning, match="use clip_norm="):
        old = sgd(p0, X, y, 2, lr=1.0, clip=0.1, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(new[0], old[0])
    with pytest.raises(ConfigurationError, match="clip_norm= only"):
        sgd(p0, X, y, 2, clip=0.1, clip_norm=0.1)
    est = LogisticRegression(epochs=1, clip=0.1, random_state=0)
    with pytest.warns(DeprecationWarning, match="LogisticRegression"):
        est.fit(X, y)
    np.testing.assert_array_equal(
        est.params_, LogisticRegression(epochs=1, clip_norm=0.1, random_state=0).fit(X, y).params_)


@pytest.mark.parametrize("name", ["breast_cancer", "digits"])
def test_estimator_is_close_to_sklearn(name):
    from sklearn.linear_model import LogisticRegression as SkLR

    ds = load_dataset(name, seed=0)
    ours = LogisticRegression(epochs=30, random_state=0).fit(ds.X_train, ds.y_train)
    ref = SkLR(max_iter=2000).fit(ds.X_train, ds.y_train)
    assert abs(ours.score(ds.X_test, ds.y_test) - ref.score(ds.X_test, ds.y_test)) <= 0.02
    k = ds.n_classes
    assert ours.coef_.shape == ((1 if k == 2 else k), ds.n_features)
    assert ours.predict_proba(ds.X_test[:3]).shape == (3, k)


def test_estimator_keeps_original_labels_and_sklearn_params():
    from sklearn.base import clone

    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 2))
    y = np.where(X[:, 0] > 0, "yes", "no")
    m = LogisticRegression(epochs=20, lr=0.5, random_state=1).fit(X, y)
    assert set(m.predict(X)) <= {"yes", "no"} and m.score(X, y) > 0.9
    assert clone(m).get_params()["lr"] == 0.5
    with pytest.raises(InputError, match="not fitted"):
        LogisticRegression().predict(X)
