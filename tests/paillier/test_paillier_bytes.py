"""Versioned bytes of encrypted vectors and public keys: round trips and validation on decode."""

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secagg import Quantizer
from secagg import paillier as P
from secagg.errors import (
    DecodeError,
    IncompatibleError,
    InsecureParameterError,
    IntegrityError,
    SecAggError,
    SumOverflowError,
)
from secagg.paillier._keys import key_fingerprint

HEADER = 52


@pytest.fixture(scope="module")
def keys():
    return P.generate_keypair(512, allow_insecure=True)


@pytest.fixture(scope="module")
def blob(keys):
    pk, _ = keys
    q = Quantizer(bound=1.0, num_clients=4, bits=16, rounding="nearest")
    ev = P.encrypt_vector(pk, np.linspace(-1, 1, 70), q, allow_insecure=True) + np.full(70, 0.5)
    return ev, ev.to_bytes()


def test_round_trip_preserves_everything(keys, blob):
    pk, sk = keys
    ev, data = blob
    width = (int(pk.n) ** 2).bit_length() // 8 + (1 if (int(pk.n) ** 2).bit_length() % 8 else 0)
    assert len(data) == HEADER + ev.layout.num_ciphertexts * width
    back = P.EncryptedVector.from_bytes(data, pk, count=2, allow_insecure=True)
    assert back.count == 2 and back.dim == 70
    assert back.layout == ev.layout and back.quantizer == ev.quantizer
    assert [int(c) for c in back.ciphertexts] == [int(c) for c in ev.ciphertexts]
    np.testing.assert_array_equal(P.decrypt_quantized(sk, back), P.decrypt_quantized(sk, ev))
    assert back.to_bytes() == data


@settings(deadline=None, max_examples=25)
@given(dim=st.integers(1, 200), bits=st.sampled_from([8, 16, 21, 32]), count=st.integers(1, 3))
def test_round_trip_property(keys, dim, bits, count):
    pk, sk = keys
    q = Quantizer(bound=3.0, num_clients=3, bits=bits, rounding="nearest", out_of_range="clip")
    x = np.linspace(-4, 4, dim)
    ev = P.encrypt_vector(pk, x, q, obfuscation="fast", allow_insecure=True) * count
    back = P.EncryptedVector.from_bytes(ev.to_bytes(), pk, count=count, allow_insecure=True)
    np.testing.assert_array_equal(P.decrypt_quantized(sk, back), count * q.quantize(x))


def test_public_key_bytes_round_trip_fixed_width(keys):
    pk, _ = keys
    data = P.public_key_to_bytes(pk)
    assert len(data) == 7 + 64  # header + 512-bit n, big-endian
    assert int.from_bytes(data[7:], "big") == pk.n
    assert P.public_key_from_bytes(data, allow_insecure=True) == pk
    with pytest.raises(InsecureParameterError):
        P.public_key_from_bytes(data)  # a 512-bit key is below the floor without the flag
    assert len(key_fingerprint(pk)) == 16


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d[:-1],  # truncated
        lambda d: d + b"\x00",  # trailing garbage
        lambda d: b"XXXX" + d[4:],  # magic
        lambda d: d[:4] + b"\x02" + d[5:],  # version
        lambda d: d[:5] + b"\x01\x00" + d[7:],  # length field too small for n
        lambda d: d[:-1] + bytes([d[-1] & 0xFE]),  # even modulus
    ],
)
def test_malformed_public_key_bytes_raise(keys, mutate):
    data = P.public_key_to_bytes(keys[0])
    with pytest.raises(DecodeError):
        P.public_key_from_bytes(mutate(data), allow_insecure=True)


def _patch(data: bytes, fmt: str, offset: int, value) -> bytes:
    size = struct.calcsize(fmt)
    return data[:offset] + struct.pack(fmt, value) + data[offset + size :]


# header offsets: magic 0, version 4, fingerprint 5, width 21, clip 23, num_clients 31,
# bits 35, rounding 36, slot_bits 37, slots 38, count 40, dim 44
@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d[:10],
        lambda d: d[:-1],
        lambda d: d + b"\x00",
        lambda d: b"NOPE" + d[4:],
        lambda d: _patch(d, ">B", 4, 9),
        lambda d: _patch(d, ">H", 21, 7),
        lambda d: _patch(d, ">d", 23, float("nan")),
        lambda d: _patch(d, ">d", 23, -1.0),
        lambda d: _patch(d, ">I", 31, 0),
        lambda d: _patch(d, ">B", 35, 99),
        lambda d: _patch(d, ">B", 36, 5),
        lambda d: _patch(d, ">B", 37, 17),
        lambda d: _patch(d, ">H", 38, 3),
        lambda d: _patch(d, ">I", 40, 5),  # count above the capacity of 4
        lambda d: _patch(d, ">I", 40, 1),  # a count the reader does not know of
        lambda d: _patch(d, ">I", 40, 0),
        lambda d: _patch(d, ">Q", 44, 3 * 31 + 1),  # dim that needs a 4th ciphertext (31 slots each)
        lambda d: _patch(d, ">Q", 44, 0),
        lambda d: _patch(d, ">Q", 44, 2**63),
        lambda d: d[:HEADER] + b"\x00" * (len(d) - HEADER),  # zero ciphertexts
        lambda d: d[:HEADER] + b"\xff" * (len(d) - HEADER),  # ciphertexts >= n^2
    ],
)
def test_malformed_vector_bytes_raise_decode_error(keys, blob, mutate):
    _, data = blob
    P.EncryptedVector.from_bytes(data, keys[0], count=2, allow_insecure=True)  # the unmutated blob decodes
    with pytest.raises(DecodeError):
        P.EncryptedVector.from_bytes(mutate(data), keys[0], count=2, allow_insecure=True)


def test_bytes_under_another_key_raise_incompatible(keys, blob):
    other, _ = P.generate_keypair(512, allow_insecure=True)
    with pytest.raises(IncompatibleError, match="encrypted under key"):
        P.EncryptedVector.from_bytes(blob[1], other, allow_insecure=True)


@settings(deadline=None, max_examples=60)
@given(data=st.binary(max_size=400), keep=st.integers(0, HEADER + 10))
def test_garbage_never_escapes_the_error_tree(keys, blob, data, keep):
    """Arbitrary bytes (alone or after a valid prefix) raise the library's errors, never others."""
    for candidate in (data, blob[1][:keep] + data):
        try:
            P.EncryptedVector.from_bytes(candidate, keys[0], count=2, allow_insecure=True)
        except (DecodeError, IncompatibleError):
            pass
        else:  # only possible if the candidate is a valid encoding
            assert candidate[:4] == b"SGPV"


def test_tampered_ciphertext_or_count_is_detected_at_decryption(keys):
    pk, sk = keys
    q = Quantizer(bound=1.0, num_clients=3, bits=16, rounding="nearest")
    ev = P.sum([P.encrypt_vector(pk, np.ones(40), q, allow_insecure=True) for _ in range(3)])
    n = int(pk.n)
    # add 2^(|n|-2) to the first plaintext: bits above the packing layout
    bad = P.EncryptedVector(pk, q, ev.layout, list(ev.ciphertexts), ev.count)
    bad.ciphertexts[0] = bad.ciphertexts[0] * (1 + n * (1 << (n.bit_length() - 2))) % (n * n)
    with pytest.raises(IntegrityError):
        P.decrypt_vector(sk, bad)
    # a server that under-reports the count to the key holder produces impossible slot values
    lied = P.EncryptedVector.from_bytes(_patch(ev.to_bytes(), ">I", 40, 1), pk, count=1, allow_insecure=True)
    with pytest.raises(IntegrityError, match="count"):
        P.decrypt_vector(sk, lied)
    assert issubclass(IntegrityError, SecAggError)


# ---------------------------------------------------------------- the server counts, not the bytes
def _submissions(pk, q, xs):
    return [P.encrypt_vector(pk, x, q, allow_insecure=True).to_bytes() for x in xs]


@pytest.mark.parametrize("claimed", [0, 2, 4])
def test_a_client_cannot_claim_another_summand_count(keys, claimed):
    """The attack of issue 12: count=0 shifted the decrypted sum by +clip per coordinate,
    count=num_clients made everyone's sum overflow. A submission is one summand: the
    forged one is rejected alone and the others' sum is exact."""
    pk, sk = keys
    q = Quantizer(bound=1.0, num_clients=4, bits=16, rounding="nearest")
    xs = np.random.default_rng(claimed).uniform(-1, 1, size=(4, 30))
    payloads = _submissions(pk, q, xs)
    payloads[2] = _patch(payloads[2], ">I", 40, claimed)  # client 2 lies about its count
    with pytest.raises(DecodeError, match="claims"):
        P.EncryptedVector.from_bytes(payloads[2], pk, allow_insecure=True)
    res = P.sum_submissions(payloads, pk, q, 30, allow_insecure=True)
    assert res.accepted == [0, 1, 3] and list(res.rejected) == [2] and "claims" in res.rejected[2]
    assert res.total.count == res.count == 3
    np.testing.assert_array_equal(P.decrypt_quantized(sk, res.total), q.quantize(xs[[0, 1, 3]]).sum(axis=0))


def test_a_client_cannot_choose_the_encoding_or_length_for_the_others(keys):
    """The first submission does not set the encoding: the server's quantizer and dim do."""
    pk, sk = keys
    q = Quantizer(bound=1.0, num_clients=3, bits=16, rounding="nearest")
    wide = Quantizer(bound=100.0, num_clients=3, bits=16, rounding="nearest")
    xs = np.random.default_rng(1).uniform(-1, 1, size=(2, 12))
    payloads = [
        P.encrypt_vector(pk, np.full(12, 50.0), wide, allow_insecure=True).to_bytes(),  # other encoding
        P.encrypt_vector(pk, np.ones(13), q, allow_insecure=True).to_bytes(),  # other length
        b"garbage",
        *_submissions(pk, q, xs),
    ]
    res = P.sum_submissions(payloads, pk, q, 12, allow_insecure=True)
    assert res.accepted == [3, 4] and sorted(res.rejected) == [0, 1, 2]
    assert "encoding" in res.rejected[0] and "13 values" in res.rejected[1]
    np.testing.assert_array_equal(P.decrypt_quantized(sk, res.total), q.quantize(xs).sum(axis=0))
    with pytest.raises(IncompatibleError):
        P.EncryptedVector.from_bytes(payloads[0], pk, quantizer=q, allow_insecure=True)
    empty = P.sum_submissions([b"x"], pk, q, 12, allow_insecure=True)
    assert empty.total is None and empty.count == 0


def test_more_submissions_than_the_capacity_raise_before_adding(keys):
    pk, _ = keys
    q = Quantizer(bound=1.0, num_clients=2, bits=8)
    with pytest.raises(SumOverflowError):
        P.sum_submissions(_submissions(pk, q, np.zeros((3, 5))), pk, q, 5, allow_insecure=True)
