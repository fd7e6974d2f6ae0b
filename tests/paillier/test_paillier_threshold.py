"""Two-party decryption: shares combine to the exact sum; wrong or foreign partials are rejected."""

import numpy as np
import pytest

from secagg import Quantizer
from secagg import paillier as P
from secagg.errors import ConfigurationError, IncompatibleError, InputError, IntegrityError


@pytest.fixture(scope="module")
def setup():
    pk, sk = P.generate_keypair(512, allow_insecure=True)
    q = Quantizer(bound=1.0, num_clients=4, bits=16)
    rng = np.random.default_rng(4)
    ev = P.sum([P.encrypt_vector(pk, rng.uniform(-1, 1, 80), q, rng=rng, allow_insecure=True) for _ in range(4)])
    return pk, sk, ev


def test_two_shares_decrypt_exactly_like_the_key(setup):
    pk, sk, ev = setup
    s1, s2 = P.split_private_key(sk)
    assert s1.exponent >= 0 and s2.exponent < 0  # d2 = d - d1 with d1 >> d
    assert "exponent" not in repr(s1)
    parts = [P.partial_decrypt(s2, ev), P.partial_decrypt(s1, ev)]
    np.testing.assert_array_equal(P.combine_partial_decryptions(ev, parts), P.decrypt_vector(sk, ev))
    # fresh splits are independent: shares differ each time, results agree
    t1, _ = P.split_private_key(sk)
    assert t1.exponent != s1.exponent


def test_one_share_alone_or_mixed_splits_do_not_decrypt(setup):
    pk, sk, ev = setup
    s1, s2 = P.split_private_key(sk)
    t1, t2 = P.split_private_key(sk)
    with pytest.raises(InputError):
        P.combine_partial_decryptions(ev, [P.partial_decrypt(s1, ev)])
    with pytest.raises(InputError):
        P.combine_partial_decryptions(ev, [P.partial_decrypt(s1, ev), P.partial_decrypt(s1, ev)])
    # shares of two different splits: the product is not 1 + m n
    with pytest.raises(IntegrityError):
        P.combine_partial_decryptions(ev, [P.partial_decrypt(s1, ev), P.partial_decrypt(t2, ev)])


def test_foreign_key_and_bad_arguments(setup):
    pk, sk, ev = setup
    other_pk, other_sk = P.generate_keypair(512, allow_insecure=True)
    o1, _ = P.split_private_key(other_sk)
    with pytest.raises(IncompatibleError):
        P.partial_decrypt(o1, ev)
    with pytest.raises(ConfigurationError):
        P.split_private_key(sk, statistical_bits=40)
    with pytest.raises(InputError):
        P.split_private_key(pk)
    with pytest.raises(InputError):
        P.partial_decrypt(sk, ev)


def test_combine_refuses_objects_that_are_not_partials_or_vectors(setup):
    pk, sk, ev = setup
    s1, s2 = P.split_private_key(sk)
    p1, p2 = P.partial_decrypt(s1, ev), P.partial_decrypt(s2, ev)
    with pytest.raises(InputError):
        P.combine_partial_decryptions(ev, [p1, object()])
    with pytest.raises(InputError):
        P.combine_partial_decryptions("not a vector", [p1, p2])


def test_split_refuses_a_private_key_whose_factors_are_not_the_public_modulus():
    import copy

    from secagg.errors import IncompatibleError
    from secagg.paillier import generate_keypair, split_private_key

    _, sk = generate_keypair(1024, allow_insecure=True)
    _, sk_other = generate_keypair(1024, allow_insecure=True)
    mixed = copy.copy(sk)  # the public key of one pair with the factors of another
    mixed.p, mixed.q = sk_other.p, sk_other.q
    with pytest.raises(IncompatibleError, match=r"p \* q"):
        split_private_key(mixed)
