"""The aggregator registry and the plain baseline."""

import numpy as np
import pytest

from secagg import available_aggregators, make_aggregator
from secagg.aggregators import AggregationResult, PlainAggregator, dropped_rows, register_aggregator
from secagg.errors import ConfigurationError, InputError


def test_registry_lists_every_technique_of_the_issue():
    assert {"plain", "secagg", "secagg+", "paillier", "central-dp", "local-dp", "distributed-dp"} <= set(
        available_aggregators()
    )


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ConfigurationError, match="choose one of .*plain"):
        make_aggregator("no-such-thing")


def test_plain_sum_matches_float32_wire_sum():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(7, 33))
    res = make_aggregator("plain").aggregate(x)
    assert isinstance(res, AggregationResult)
    np.testing.assert_allclose(res.total, x.astype(np.float32).astype(np.float64).sum(axis=0), rtol=0, atol=1e-12)
    assert res.count == 7
    assert (res.bytes_up == 4 * 33).all() and (res.bytes_down == 0).all()


def test_plain_dropouts_by_mapping_and_rate():
    x = np.arange(20, dtype=float).reshape(5, 4)
    res = PlainAggregator().aggregate(x, dropout={1: "masked_input", 3: "share_keys"})
    assert res.survivors.tolist() == [0, 2, 4]
    np.testing.assert_allclose(res.total, x[[0, 2, 4]].sum(axis=0))
    assert res.bytes_up[1] == 0 and res.bytes_up[3] == 0
    rows = dropped_rows(100, 0.3, np.random.default_rng(0))
    assert len(rows) == 30 and len(set(rows.tolist())) == 30


@pytest.mark.parametrize("bad", [np.zeros(3), np.zeros((2, 0)), [[1.0, np.nan]], [["a"]]])
def test_plain_rejects_bad_updates(bad):
    with pytest.raises(InputError):
        PlainAggregator().aggregate(bad)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 2])
def test_bad_dropout_rate(rate):
    with pytest.raises(InputError):
        dropped_rows(10, rate, None)


def test_register_custom_aggregator(monkeypatch):
    import secagg.aggregators as mod

    monkeypatch.setattr(mod, "_REGISTRY", dict(mod._REGISTRY))
    class Doubler(PlainAggregator):
        name = "doubler"

        def aggregate(self, updates, *, dropout=None, rng=None):
            res = super().aggregate(updates, dropout=dropout, rng=rng)
            res.total = 2 * res.total
            return res

    register_aggregator("doubler", Doubler)
    res = make_aggregator("doubler").aggregate(np.ones((2, 3)))
    np.testing.assert_allclose(res.total, 4.0)


@pytest.mark.parametrize("name", ["plain", "secagg", "secagg+", "paillier", "central-dp", "local-dp", "distributed-dp"])
def test_misspelled_option_is_refused_with_the_accepted_ones(name):
    with pytest.raises(ConfigurationError, match="has no option.*clipp.*accepts: .*clip"):
        make_aggregator(name, clipp=1.0)


# ---------------------------------------------------------------- review R2
def test_plain_refuses_values_that_overflow_the_float32_wire_format():
    # float32(1e39) is inf: the sum would silently be inf
    with pytest.raises(InputError, match="float32"):
        PlainAggregator().aggregate(np.array([[1e39, 0.0], [1.0, 2.0]]))


@pytest.mark.parametrize("dropout", ["abc", {"a": "masked_input"}, [0.1]])
def test_malformed_dropout_raises_input_error(dropout):
    with pytest.raises(InputError):
        dropped_rows(10, dropout, np.random.default_rng(0))


def test_central_dp_names_the_float32_wire_limit():
    with pytest.raises(InputError, match="float32 range"):
        make_aggregator("central-dp", clip_norm=1.0, noise_multiplier=1.0).aggregate(np.full((2, 3), 1e39))


# ---------------------------------------------------------------- issue 14: bound vs clip_norm, layers, weights
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from secagg.aggregators import flatten_updates, validate_weights  # noqa: E402
from secagg.errors import OutOfRangeError  # noqa: E402

ALL = ["plain", "secagg", "secagg+", "paillier", "central-dp", "local-dp", "distributed-dp"]


def _options(name: str) -> dict:
    if name == "paillier":
        from secagg import paillier

        return {"keypair": _KEYS.setdefault("k", paillier.generate_keypair(512, allow_insecure=True)),
                "allow_insecure": True, "rounding": "nearest"}
    if name.endswith("-dp"):
        return {"noise_multiplier": 1e-6}
    return {}


_KEYS: dict = {}


@settings(deadline=None, max_examples=60)
@given(n=st.integers(1, 4), shapes=st.lists(st.lists(st.integers(1, 3), min_size=0, max_size=3), min_size=1,
                                             max_size=4), seed=st.integers(0, 2**16))
def test_layer_lists_flatten_and_restore_exactly(n, shapes, seed):
    rng = np.random.default_rng(seed)
    layers = [rng.normal(size=(n, *s)) for s in shapes]
    if any(layer.ndim < 2 for layer in layers):  # a per-client scalar layer needs an explicit (n, 1)
        layers = [layer.reshape(n, -1) if layer.ndim < 2 else layer for layer in layers]
    rows, layout = flatten_updates(layers)
    assert rows.shape == (n, sum(int(np.prod(layer.shape[1:])) for layer in layers))
    for i in range(n):
        back = layout.restore(rows[i])
        assert isinstance(back, list) and len(back) == len(layers)
        for b, layer in zip(back, layers):
            np.testing.assert_array_equal(b, layer[i])


def test_plain_two_d_input_keeps_its_meaning():
    rows = [np.array([1.0, 2.0]), np.array([3.0, 4.0])]  # a list of per-client rows, as before
    arr, layout = flatten_updates(rows)
    assert layout is None and arr.shape == (2, 2)


@pytest.mark.parametrize("name", ALL)
def test_every_aggregator_takes_layers_and_weights(name):
    rng = np.random.default_rng(3)
    n = 4
    layers = [rng.uniform(-0.1, 0.1, size=(n, 2, 3)), rng.uniform(-0.1, 0.1, size=(n, 5))]
    w = np.array([1.0, 0.5, 0.25, 0.0])
    res = make_aggregator(name, **_options(name)).aggregate(layers, weights=w, rng=rng)
    assert isinstance(res.total, list) and [t.shape for t in res.total] == [(2, 3), (5,)]
    for t, layer in zip(res.total, layers):
        np.testing.assert_allclose(t, np.tensordot(w, layer, axes=1), atol=1e-3)
    assert res.weight_total == pytest.approx(1.75) and res.weights.tolist() == w.tolist()


def test_one_array_with_extra_axes_comes_back_in_its_shape():
    x = np.arange(24, dtype=float).reshape(2, 3, 4) / 100
    res = make_aggregator("plain").aggregate(x)
    assert res.total.shape == (3, 4)
    np.testing.assert_allclose(res.total, x.sum(axis=0), atol=1e-6)


@pytest.mark.parametrize("bad, match", [
    (np.ones(3), r"shape \(4,\)"), (np.ones((4, 1)), r"shape \(4,\)"), ([1, 1, 1, 1.5], r"\[0, 1\].*num_examples"),
    ([1, 1, -0.1, 1], r"\[0, 1\]"), ([1, np.nan, 1, 1], "NaN"), ("abcd", "numeric"),
])
def test_bad_weights_are_refused(bad, match):
    with pytest.raises(InputError, match=match):
        validate_weights(bad, 4)
    with pytest.raises(InputError, match=match):
        make_aggregator("plain").aggregate(np.zeros((4, 2)), weights=bad)


def test_layers_with_different_client_counts_are_refused():
    with pytest.raises(InputError, match="same count"):
        flatten_updates([np.zeros((3, 2)), np.zeros((4, 2))])
    with pytest.raises(InputError, match="ndim >= 2"):
        flatten_updates([np.zeros((3, 2)), np.zeros(3)])


def test_dp_rows_are_clipped_to_clip_norm_before_they_are_weighted():
    x = np.zeros((2, 4))
    x[0, 0] = 10.0  # norm 10: clipped to 1, then weighted 0.5
    x[1, 1] = 0.2
    res = make_aggregator("central-dp", clip_norm=1.0, noise_multiplier=1e-6).aggregate(x, weights=[0.5, 1.0])
    np.testing.assert_allclose(res.total, [0.5, 0.2, 0, 0], atol=1e-4)


def test_bound_clip_policy_clips_before_weighting_and_counts():
    x = np.array([[3.0, 0.5], [0.2, -2.0]])
    res = make_aggregator("plain", bound=1.0, out_of_range="clip").aggregate(x, weights=[0.5, 1.0])
    np.testing.assert_allclose(res.total, [0.5 * 1.0 + 0.2, 0.5 * 0.5 - 1.0], atol=1e-6)
    assert res.clipped == 2 and res.clipped_per_client.tolist() == [1, 1]
    with pytest.raises(OutOfRangeError, match="2 of 4"):
        make_aggregator("plain", bound=1.0).aggregate(x, weights=[0.5, 1.0])


def test_plain_bound_is_checked_like_the_encoders_and_dropped_rows_are_not_counted():
    x = np.array([[3.0, 0.5], [0.2, -2.0], [5.0, 5.0]])
    with pytest.raises(OutOfRangeError, match="4 of 6"):
        PlainAggregator(bound=1.0).aggregate(x)
    res = PlainAggregator(bound=1.0, out_of_range="clip").aggregate(x, dropout={2: "masked_input"})
    np.testing.assert_allclose(res.total, [1.2, -0.5], atol=1e-6)
    assert res.clipped_per_client.tolist() == [1, 1, 2] and res.clipped == 2  # survivors' values only
    assert PlainAggregator().aggregate(x).clipped == 0  # no bound: nothing clipped


def test_one_word_per_meaning_bound_versus_clip_norm():
    """Issue 14's example: 0.5-valued (4, 100) input. The coordinate bound leaves it alone
    (total 2.0); the L2 norm scales each row to norm 1 (total 0.4). Each word now names one."""
    x = np.full((4, 100), 0.5)
    assert make_aggregator("plain", bound=1.0).aggregate(x).total[0] == pytest.approx(2.0)
    dp = make_aggregator("central-dp", clip_norm=1.0, noise_multiplier=1e-6).aggregate(x)
    assert dp.total[0] == pytest.approx(0.4, abs=1e-4)
    with pytest.raises(ConfigurationError, match="has no option.*bound"):
        make_aggregator("central-dp", bound=1.0, noise_multiplier=1.0)
    with pytest.raises(ConfigurationError, match="has no option.*clip_norm"):
        make_aggregator("paillier", clip_norm=1.0)
    for name in ("secagg", "secagg+"):
        with pytest.raises(ConfigurationError, match="has no option.*clip_norm"):
            make_aggregator(name, clip_norm=1.0)


@pytest.mark.parametrize("name, new", [("central-dp", "clip_norm"), ("local-dp", "clip_norm"),
                                       ("distributed-dp", "clip_norm"), ("plain", "bound"), ("secagg", "bound"),
                                       ("secagg+", "bound")])
def test_old_clip_keyword_warns_and_means_what_it_meant(name, new):
    extra = {"noise_multiplier": 1.0} if name.endswith("-dp") else {}
    with pytest.warns(DeprecationWarning, match=f"use {new}="):
        agg = make_aggregator(name, clip=2.5, **extra)
    assert getattr(agg, new) == 2.5
    with pytest.raises(ConfigurationError, match=f"give {new}= only"):
        make_aggregator(name, clip=2.5, **{new: 2.5}, **extra)


def test_fedavg_config_has_one_default_and_keeps_the_old_name():
    import dataclasses

    from fl.server import FedAvgConfig

    assert FedAvgConfig().clip_norm == 1.0
    with pytest.warns(DeprecationWarning, match="clip_norm"):
        cfg = FedAvgConfig(clip=2.0)
    assert cfg.clip_norm == 2.0 and dataclasses.replace(cfg, rounds=3).clip_norm == 2.0
    assert dataclasses.replace(cfg, clip_norm=3.0).clip_norm == 3.0
    with pytest.warns(DeprecationWarning):
        assert cfg.clip == 2.0
    with pytest.raises(ConfigurationError, match="clip_norm= only"):
        FedAvgConfig(clip=2.0, clip_norm=3.0)
