"""SecAgg / SecAgg+ aggregators and the `secagg demo secure-sum` command."""

import numpy as np
import pytest

from secagg import make_aggregator
from secagg.cli import main
from secagg.errors import ConfigurationError, OutOfRangeError, ProtocolAbort
from secagg import secure_sum
from secagg.masking import ThreatModel, simulate
from secagg.quantize import Quantizer
from secagg.masking.aggregator import SecAggAggregator, SecAggPlusAggregator


@pytest.mark.parametrize("name,cls", [("secagg", SecAggAggregator), ("secagg+", SecAggPlusAggregator)])
def test_aggregator_sum_bytes_and_times(name, cls):
    rng = np.random.default_rng(3)
    x = rng.uniform(-1.5, 1.5, size=(8, 40))  # inside the bound: values beyond it raise (issue 14)
    # 8 clients cannot reach 2^-40 on a degree-4 graph, and two of 5 holders dropping is too
    # many for the active-server threshold: state the weaker model explicitly
    weaker = ThreatModel(adversary="honest-but-curious", security_bits=5)
    agg = make_aggregator(name, bound=1.5, k=4, threat=weaker)
    with pytest.raises(OutOfRangeError):
        agg.aggregate(2 * x, rng=rng)
    assert isinstance(agg, cls) and agg.hides_individual_updates
    res = agg.aggregate(x, dropout={2: "masked_input", 5: "share_keys"}, rng=rng)
    assert res.survivors.tolist() == [0, 1, 3, 4, 6, 7]
    err = np.abs(res.total - np.clip(x[res.survivors], -1.5, 1.5).sum(axis=0)).max()
    assert err <= 6 * res.info["resolution"]
    assert res.bytes_up.shape == (8,) and res.bytes_up[0] > 4 * 40 and res.bytes_up[5] < res.bytes_up[2] < res.bytes_up[0]
    assert (res.bytes_down > 0).all() and (res.client_seconds[res.survivors] > 0).all() and res.server_seconds > 0
    assert res.info["graph"] == ("complete" if name == "secagg" else "sparse")


def test_aggregator_abort_propagates():
    with pytest.raises(ProtocolAbort):
        make_aggregator("secagg").aggregate(np.zeros((4, 3)), dropout={0: "unmasking", 1: "unmasking", 2: "unmasking"})


def test_secure_sum_refuses_out_of_range_input_naming_bound_and_clip():
    """Issue 14: `secagg.secure_sum(w)` with w ~ N(0, 3) returned a silently clipped sum."""
    import secagg

    w = np.random.default_rng(0).normal(0, 3, size=(10, 4))
    with pytest.raises(OutOfRangeError) as exc:
        secagg.secure_sum(w)
    assert exc.value.count == int((np.abs(w) > 1).sum()) and exc.value.bound == 1.0
    assert "bound=" in str(exc.value) and "out_of_range='clip'" in str(exc.value)
    top = float(np.abs(w).max())
    assert exc.value.max_abs == pytest.approx(top)
    total = secagg.secure_sum(w, bound=top, rng=np.random.default_rng(1))
    np.testing.assert_allclose(total, w.sum(axis=0), atol=10 * top / (2**31 // 10))


def test_simulate_clips_only_when_asked_and_counts_per_client():
    w = np.random.default_rng(2).normal(0, 1.5, size=(8, 6))
    outside = (np.abs(w) > 1).sum(axis=1)
    res = simulate(w, out_of_range="clip", dropout={3: "masked_input"}, rng=np.random.default_rng(0),
                   threat=ThreatModel(adversary="honest-but-curious"))
    assert res.clipped_per_client.tolist() == outside.tolist()
    assert res.clipped == int(outside[res.survivors].sum()) and 3 not in res.survivors
    clipped_sum = np.clip(w[res.survivors], -1, 1).sum(axis=0)
    assert np.abs(res.sum - clipped_sum).max() <= len(res.survivors) * Quantizer(1.0, 8).resolution
    inside = simulate(np.clip(w, -1, 1), rng=np.random.default_rng(0),
                      threat=ThreatModel(adversary="honest-but-curious"))
    assert inside.clipped == 0 and inside.clipped_per_client.tolist() == [0] * 8


def test_simulate_old_clip_keyword_warns_and_a_quantizer_excludes_bound():
    x = np.full((3, 2), 1.5)
    with pytest.warns(DeprecationWarning, match="bound="):
        res = simulate(x, clip=2.0, rng=np.random.default_rng(0))
    np.testing.assert_allclose(res.sum, x.sum(axis=0), atol=1e-6)
    with pytest.raises(ConfigurationError, match="bound= only"):
        simulate(x, clip=2.0, bound=2.0)
    with pytest.raises(ConfigurationError, match="not both"):
        simulate(x, bound=2.0, quantizer=Quantizer(2.0, 3))
    with pytest.raises(ConfigurationError, match="not both"):
        simulate(x, out_of_range="clip", quantizer=Quantizer(2.0, 3))


@pytest.mark.parametrize("name", ["secagg", "secagg+"])
def test_aggregator_clip_policy_counts_and_weights_after_clipping(name):
    x = np.array([[3.0, 0.5], [0.2, -2.0], [0.1, 0.1], [-0.3, 0.4]])
    weak = ThreatModel(adversary="honest-but-curious")
    with pytest.raises(OutOfRangeError, match="2 of 8"):
        make_aggregator(name, threat=weak).aggregate(x)
    agg = make_aggregator(name, bound=1.0, out_of_range="clip", threat=weak)
    assert (agg.bound, agg.out_of_range) == (1.0, "clip")
    res = agg.aggregate(x, rng=np.random.default_rng(0))
    assert res.clipped == 2 and res.clipped_per_client.tolist() == [1, 1, 0, 0]
    np.testing.assert_allclose(res.total, np.clip(x, -1, 1).sum(axis=0), atol=1e-6)
    weighted = agg.aggregate(x, weights=[0.5, 1.0, 1.0, 1.0], rng=np.random.default_rng(0))
    assert weighted.clipped == 2  # counted once, before weighting
    np.testing.assert_allclose(weighted.total, [0.5 + 0.2 + 0.1 - 0.3, 0.25 - 1.0 + 0.1 + 0.4], atol=1e-6)
    with pytest.warns(DeprecationWarning, match="use bound="):
        assert make_aggregator(name, clip=2.0).bound == 2.0


def test_secure_sum_one_liner():
    x = np.array([[0.5, -0.25], [0.25, 0.5], [0.1, 0.1]])
    np.testing.assert_allclose(secure_sum(x, rng=np.random.default_rng(0)), x.sum(axis=0), atol=3e-8)


def test_demo_command_prints_table_uniformity_and_exactness(capsys):
    rc = main(["demo", "secure-sum", "--clients", "60", "--dim", "300", "--dropout", "0.1", "--graph", "sparse",
               "--seed", "2"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "masked_input" in out and "unmasking" in out and "graph=sparse" in out and "active server" in out
    assert "exact up to quantization" in out


def test_demo_command_refuses_an_insecure_degree_in_one_line(capsys):
    rc = main(["demo", "secure-sum", "--clients", "12", "--dim", "10", "--graph", "sparse", "--k", "4"])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and len(err.splitlines()) == 1 and "larger degree" in err and "--k" in err
