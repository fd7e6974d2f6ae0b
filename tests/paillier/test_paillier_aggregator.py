"""PaillierAggregator: the "paillier" technique behind the common Aggregator interface."""

import numpy as np
import pytest

from secagg import make_aggregator
from secagg import paillier as P
from secagg.aggregators import AggregationResult
from secagg.errors import ConfigurationError, InputError, InsecureParameterError, OutOfRangeError, ProtocolAbort


@pytest.fixture(scope="module")
def keypair():
    return P.generate_keypair(512, allow_insecure=True)


def test_registry_builds_it_and_it_hides_updates(keypair):
    agg = make_aggregator("paillier", bound=1.0, keypair=keypair, allow_insecure=True)
    assert isinstance(agg, P.PaillierAggregator)
    assert agg.name == "paillier" and agg.hides_individual_updates


@pytest.mark.parametrize("obfuscation", ["full", "fast"])
def test_sum_matches_plain_sum_and_reports_costs(keypair, obfuscation):
    rng = np.random.default_rng(5)
    x = rng.uniform(-1.2, 1.2, size=(6, 45))
    agg = P.PaillierAggregator(bound=1.0, bits=16, keypair=keypair, allow_insecure=True, obfuscation=obfuscation,
                               out_of_range="clip")
    res = agg.aggregate(x, rng=np.random.default_rng(0))
    assert isinstance(res, AggregationResult)
    q = agg.quantizer(6)
    expected = np.clip(x, -1, 1).sum(axis=0)
    assert np.max(np.abs(res.total - expected)) <= 6 * q.resolution
    np.testing.assert_array_equal(res.clipped_per_client, (np.abs(x) > 1).sum(axis=1))
    assert res.clipped == int((np.abs(x) > 1).sum()) > 0
    assert res.survivors.tolist() == list(range(6))
    layout = P.layout_for(q, 512, 45)
    assert (res.bytes_up == 52 + layout.num_ciphertexts * 128).all()  # n^2 is 1024 bits = 128 bytes
    assert (res.bytes_down == len(P.public_key_to_bytes(keypair[0]))).all()
    assert (res.client_seconds > 0).all() and res.server_seconds > 0
    assert res.info["slots_per_ciphertext"] == layout.slots and res.info["obfuscation"] == obfuscation
    assert res.noise_std == 0.0


def test_dropouts_are_left_out_of_the_sum(keypair):
    x = np.arange(24, dtype=float).reshape(6, 4) / 30.0
    agg = P.PaillierAggregator(bound=1.0, keypair=keypair, allow_insecure=True, rounding="nearest")
    res = agg.aggregate(x, dropout={1: "masked_input", 4: "share_keys"})
    assert res.survivors.tolist() == [0, 2, 3, 5]
    np.testing.assert_allclose(res.total, x[[0, 2, 3, 5]].sum(axis=0), atol=4 * agg.quantizer(6).resolution)
    assert res.bytes_up[1] == 0 and res.bytes_up[4] == 0 and res.bytes_up[0] > 0
    res = agg.aggregate(x, dropout=0.5, rng=np.random.default_rng(2))
    assert res.count == 3
    with pytest.raises(ProtocolAbort):
        agg.aggregate(x, dropout={i: "masked_input" for i in range(6)})


def test_keys_are_generated_once_and_reused():
    agg = P.PaillierAggregator(key_bits=512, allow_insecure=True)
    x = np.zeros((2, 3))
    agg.aggregate(x)
    first = agg.keypair
    agg.aggregate(x)
    assert agg.keypair is first and int(first[0].n).bit_length() == 512


def test_configuration_errors(keypair):
    with pytest.raises(InsecureParameterError):
        P.PaillierAggregator(key_bits=1024)
    with pytest.raises(InsecureParameterError):
        P.PaillierAggregator(keypair=keypair)  # a 512-bit key needs the flag too
    with pytest.raises(ConfigurationError):
        P.PaillierAggregator(obfuscation="quick", key_bits=2048)
    with pytest.raises(ConfigurationError):
        P.PaillierAggregator(bound=0.0, key_bits=2048)
    with pytest.raises(ConfigurationError, match="out_of_range"):
        P.PaillierAggregator(out_of_range="wrap", key_bits=2048)
    with pytest.raises(ConfigurationError, match="bound= only"):
        P.PaillierAggregator(bound=1.0, clip=1.0, key_bits=2048)
    with pytest.raises(ConfigurationError):
        P.PaillierAggregator(bits=1, key_bits=2048)
    other = P.generate_keypair(512, allow_insecure=True)
    with pytest.raises(ConfigurationError):
        P.PaillierAggregator(keypair=(keypair[0], other[1]), allow_insecure=True)
    agg = P.PaillierAggregator(keypair=keypair, allow_insecure=True, num_clients=2)
    with pytest.raises(ConfigurationError, match="at most 2"):
        agg.aggregate(np.zeros((3, 2)))
    with pytest.raises(InputError):
        agg.aggregate(np.zeros(3))


def test_stochastic_rounding_is_unbiased(keypair):
    """Mean decoded sum over 200 runs is within 4 standard errors of the true sum (seeded; alpha ~ 6e-5)."""
    agg = P.PaillierAggregator(bound=1.0, bits=6, keypair=keypair, allow_insecure=True, obfuscation="fast")
    x = np.full((2, 5), 0.013)  # far from a quantization level at 6 bits (resolution 1/15)
    rng = np.random.default_rng(11)
    totals = np.array([agg.aggregate(x, rng=rng).total for _ in range(200)])
    res = agg.quantizer(2).resolution
    se = res * np.sqrt(2 * 0.25) / np.sqrt(200)  # per-summand rounding variance <= res^2 / 4
    assert np.all(np.abs(totals.mean(axis=0) - 0.026) < 4 * se)
    # with nearest rounding the same input would always decode to 0: a real bias
    assert abs(0.026 - 0.0) > 4 * se


def test_values_beyond_the_bound_raise_before_encryption_by_default(keypair):
    """Issue 14: the default never sums silently clipped inputs; the error says how many and what to change."""
    agg = P.PaillierAggregator(keypair=keypair, allow_insecure=True)
    x = np.random.default_rng(0).normal(0, 3, size=(10, 4))
    with pytest.raises(OutOfRangeError, match=r"of 40 input values lie outside \[-1, 1\].*bound=") as info:
        agg.aggregate(x)
    assert info.value.count == int((np.abs(x) > 1).sum())
    assert agg._encryptor is None  # refused before any encryption
    ok = P.PaillierAggregator(bound=float(np.abs(x).max()), keypair=keypair, allow_insecure=True).aggregate(x)
    np.testing.assert_allclose(ok.total, x.sum(axis=0), atol=1e-6)
    assert ok.clipped == 0


def test_old_clip_keyword_is_the_bound_with_a_deprecation_warning(keypair):
    with pytest.warns(DeprecationWarning, match="use bound="):
        agg = make_aggregator("paillier", clip=2.0, keypair=keypair, allow_insecure=True)
    assert agg.bound == 2.0
