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
        make_aggregator("central-dp", clip=1.0, noise_multiplier=1.0).aggregate(np.full((2, 3), 1e39))
