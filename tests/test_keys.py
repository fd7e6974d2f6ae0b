"""secagg.keys: X25519, HKDF-SHA256, AES-256-GCM with bound associated data, Ed25519."""

import os

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import x25519
from hypothesis import given, settings
from hypothesis import strategies as st

from secagg import keys
from secagg.errors import DecodeError, InputError, IntegrityError, SecAggError
from secagg.keys import (
    AgreementKey,
    SigningKey,
    aead_decrypt,
    aead_encrypt,
    associated_data,
    hkdf,
    verify_signature,
)

AD = associated_data(session=b"session-42", round=2, sender=3, recipient=7)
KEY = bytes(range(32))


# ---------------------------------------------------------------- X25519
def test_agreement_is_symmetric_and_pair_specific():
    a, b, c = AgreementKey.generate(), AgreementKey.generate(), AgreementKey.generate()
    ab = a.exchange(b.public_bytes())
    assert ab == b.exchange(a.public_bytes())
    assert len(ab) == 32 and len(a.public_bytes()) == 32
    assert ab != a.exchange(c.public_bytes())
    assert a.public_bytes() != b.public_bytes()


def test_rfc7748_section_6_1_test_vector():
    alice = AgreementKey.from_bytes(bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
    bob = AgreementKey.from_bytes(bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"))
    assert alice.public_bytes().hex() == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    assert bob.public_bytes().hex() == "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
    k = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    assert alice.exchange(bob.public_bytes()).hex() == k
    assert bob.exchange(alice.public_bytes()).hex() == k


def test_agreement_key_serialization_round_trip():
    a = AgreementKey.generate()
    raw = a.to_bytes()
    assert len(raw) == 32
    b = AgreementKey.from_bytes(raw)
    assert b.public_bytes() == a.public_bytes()
    peer = AgreementKey.generate()
    assert b.exchange(peer.public_bytes()) == a.exchange(peer.public_bytes())
    assert raw.hex() not in repr(a)  # repr never shows the private key


@pytest.mark.parametrize(
    "low_order",
    [
        bytes(32),  # 0
        (1).to_bytes(32, "little"),  # order 1 u-coordinate
        bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),  # order 8
        bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),  # order 8
    ],
)
def test_low_order_peer_key_is_integrity_error(low_order):
    with pytest.raises(IntegrityError, match="low-order"):
        AgreementKey.generate().exchange(low_order)


@pytest.mark.parametrize("bad", [b"", bytes(31), bytes(33), "x" * 32, None])
def test_bad_peer_key_length_is_input_error(bad):
    with pytest.raises(InputError, match="peer public key"):
        AgreementKey.generate().exchange(bad)


@pytest.mark.parametrize("cls", [AgreementKey, SigningKey])
def test_from_bytes_wrong_length_is_decode_error(cls):
    for bad in (b"", bytes(31), bytes(64)):
        with pytest.raises(DecodeError, match="32 bytes"):
            cls.from_bytes(bad)
    with pytest.raises(InputError):
        cls("not a key")


# ---------------------------------------------------------------- Ed25519
def test_sign_verify_and_rfc8032_test_vector_1():
    sk = SigningKey.from_bytes(bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"))
    assert sk.public_bytes().hex() == "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    sig = sk.sign(b"")
    assert sig.hex() == (
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    assert verify_signature(sk.public_bytes(), b"", sig) is None


def test_signature_serialization_round_trip():
    sk = SigningKey.generate()
    sk2 = SigningKey.from_bytes(sk.to_bytes())
    assert sk2.public_bytes() == sk.public_bytes()
    assert sk2.sign(b"m") == sk.sign(b"m")  # Ed25519 is deterministic
    assert len(sk.sign(b"m")) == 64
    assert sk.to_bytes().hex() not in repr(sk)


@settings(deadline=None, max_examples=40)
@given(data=st.binary(min_size=1, max_size=200), pos=st.integers(0, 10**6), bit=st.integers(0, 7))
def test_tampered_signature_or_message_is_rejected(data, pos, bit):
    sk = SigningKey.from_bytes(bytes(range(32)))
    sig = sk.sign(data)
    verify_signature(sk.public_bytes(), data, sig)
    bad_sig = bytearray(sig)
    bad_sig[pos % 64] ^= 1 << bit
    with pytest.raises(IntegrityError):
        verify_signature(sk.public_bytes(), data, bytes(bad_sig))
    bad_data = bytearray(data)
    bad_data[pos % len(data)] ^= 1 << bit
    with pytest.raises(IntegrityError):
        verify_signature(sk.public_bytes(), bytes(bad_data), sig)


def test_signature_under_other_key_or_wrong_length_is_rejected():
    a, b = SigningKey.generate(), SigningKey.generate()
    sig = a.sign(b"msg")
    with pytest.raises(IntegrityError):
        verify_signature(b.public_bytes(), b"msg", sig)
    for bad in (sig[:-1], sig + b"\x00", b""):
        with pytest.raises(IntegrityError, match="64 bytes"):
            verify_signature(a.public_bytes(), b"msg", bad)
    with pytest.raises(InputError, match="public key"):
        verify_signature(a.public_bytes()[:31], b"msg", sig)


def test_small_order_public_key_cannot_validate_a_forgery():
    # With the all-zero public key (a point of order 4), the all-zero signature
    # satisfies the cofactored verification equation for every message.
    for pub in (bytes(32), (1).to_bytes(32, "little")):
        with pytest.raises(IntegrityError, match="small-order"):
            verify_signature(pub, b"anything", bytes(64))


# ---------------------------------------------------------------- HKDF
def test_hkdf_rfc5869_test_case_1():
    ikm = bytes.fromhex("0b" * 22)
    salt = bytes.fromhex("000102030405060708090a0b0c")
    info = bytes.fromhex("f0f1f2f3f4f5f6f7f8f9")
    okm = hkdf(ikm, info=info, length=42, salt=salt)
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_hkdf_domain_separation_and_lengths():
    s = os.urandom(32)
    assert hkdf(s, info=b"mask") != hkdf(s, info=b"aead")
    assert hkdf(s, info=b"mask") == hkdf(s, info=b"mask")
    assert hkdf(s, info=b"mask", salt=b"x") != hkdf(s, info=b"mask")
    assert len(hkdf(s, info=b"", length=16)) == 16
    assert len(hkdf(s, info=b"", length=8160)) == 8160
    assert len(hkdf(s, info=b"", length=np.int64(24))) == 24
    for bad in (0, -1, 8161, 2.0, True):
        with pytest.raises(InputError, match="length"):
            hkdf(s, info=b"", length=bad)
    with pytest.raises(InputError, match="secret"):
        hkdf(b"", info=b"x")
    with pytest.raises(InputError, match="info"):
        hkdf(s, info="text")


# ---------------------------------------------------------------- AEAD
@settings(deadline=None, max_examples=30)
@given(pt=st.binary(max_size=300))
def test_aead_round_trip_and_layout(pt):
    token = aead_encrypt(KEY, pt, AD)
    assert len(token) == 12 + len(pt) + 16
    assert aead_decrypt(KEY, token, AD) == pt


def test_aead_nonces_are_fresh():
    tokens = {aead_encrypt(KEY, b"same", AD) for _ in range(50)}
    assert len(tokens) == 50
    assert len({t[:12] for t in tokens}) == 50


@settings(deadline=None, max_examples=60)
@given(pos=st.integers(0, 10**6), bit=st.integers(0, 7))
def test_aead_any_tampered_byte_is_integrity_error(pos, bit):
    token = bytearray(aead_encrypt(KEY, b"share of seed b_i for party 7", AD))
    token[pos % len(token)] ^= 1 << bit  # nonce, ciphertext or tag
    with pytest.raises(IntegrityError):
        aead_decrypt(KEY, bytes(token), AD)


def test_aead_truncation_and_extension_are_rejected():
    token = aead_encrypt(KEY, b"payload", AD)
    with pytest.raises(IntegrityError):
        aead_decrypt(KEY, token[:-1], AD)
    with pytest.raises(IntegrityError):
        aead_decrypt(KEY, token + b"\x00", AD)
    for short in (b"", token[:27]):
        with pytest.raises(DecodeError, match="at least 28"):
            aead_decrypt(KEY, short, AD)


@pytest.mark.parametrize(
    "field, value",
    [("session", b"session-43"), ("round", 3), ("sender", 7), ("recipient", 3), ("session", b"")],
)
def test_aead_wrong_associated_data_is_integrity_error(field, value):
    ctx = dict(session=b"session-42", round=2, sender=3, recipient=7)
    token = aead_encrypt(KEY, b"payload", associated_data(**ctx))
    ctx[field] = value
    with pytest.raises(IntegrityError, match="associated data"):
        aead_decrypt(KEY, token, associated_data(**ctx))


def test_aead_wrong_key_is_integrity_error():
    token = aead_encrypt(KEY, b"payload", AD)
    with pytest.raises(IntegrityError):
        aead_decrypt(bytes(32), token, AD)


def test_aead_bad_key_length_is_input_error():
    for bad in (bytes(16), bytes(31), "k" * 32):
        with pytest.raises(InputError, match="key"):
            aead_encrypt(bad, b"x", AD)
        with pytest.raises(InputError, match="key"):
            aead_decrypt(bad, bytes(40), AD)
    with pytest.raises(InputError, match="plaintext"):
        aead_encrypt(KEY, "text", AD)


def test_protocol_style_channel_from_agreement():
    """Two parties derive the same AEAD key from X25519 + HKDF and exchange a share."""
    a, b = AgreementKey.generate(), AgreementKey.generate()
    k_ab = hkdf(a.exchange(b.public_bytes()), info=b"secagg/share-enc/session-42")
    k_ba = hkdf(b.exchange(a.public_bytes()), info=b"secagg/share-enc/session-42")
    assert k_ab == k_ba
    token = aead_encrypt(k_ab, b"share", associated_data(session=b"s", round=1, sender=0, recipient=1))
    assert aead_decrypt(k_ba, token, associated_data(session=b"s", round=1, sender=0, recipient=1)) == b"share"


# ---------------------------------------------------------------- associated_data
def test_associated_data_layout():
    ad = associated_data(session=b"abc", round=0x0102, sender=0x03040506, recipient=0x0708090A)
    assert ad == bytes([1, 3]) + b"abc" + bytes([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    assert ad[0] == keys.AD_VERSION
    assert associated_data(session=b"", round=np.int64(1), sender=np.uint32(2), recipient=3) == (
        bytes([1, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3])
    )


@settings(deadline=None, max_examples=60)
@given(
    a=st.tuples(st.binary(max_size=8), st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)),
    b=st.tuples(st.binary(max_size=8), st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)),
)
def test_associated_data_is_injective(a, b):
    enc = lambda t: associated_data(session=t[0], round=t[1], sender=t[2], recipient=t[3])  # noqa: E731
    assert (enc(a) == enc(b)) == (a == b)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(session=bytes(256), round=0, sender=0, recipient=0), "session"),
        (dict(session="s", round=0, sender=0, recipient=0), "session"),
        (dict(session=b"s", round=65536, sender=0, recipient=0), "round"),
        (dict(session=b"s", round=-1, sender=0, recipient=0), "round"),
        (dict(session=b"s", round=0, sender=2**32, recipient=0), "sender"),
        (dict(session=b"s", round=0, sender=0, recipient=1.0), "recipient"),
        (dict(session=b"s", round=True, sender=0, recipient=0), "round"),
    ],
)
def test_associated_data_bad_input(kwargs, match):
    with pytest.raises(InputError, match=match):
        associated_data(**kwargs)


def test_all_failures_are_secagg_errors():
    for call in (
        lambda: aead_decrypt(KEY, bytes(40), AD),
        lambda: verify_signature(bytes(range(32)), b"", bytes(64)),
        lambda: AgreementKey.from_bytes(b"x"),
    ):
        with pytest.raises(SecAggError):
            call()


def test_cryptography_objects_are_wrapped():
    raw = x25519.X25519PrivateKey.generate()
    assert AgreementKey(raw).public_bytes() == AgreementKey.from_bytes(AgreementKey(raw).to_bytes()).public_bytes()


@given(st.binary(min_size=0, max_size=40), st.integers(0, 2**16 - 1),
       st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)), max_size=6))
@settings(max_examples=60, deadline=None)
def test_associated_data_many_is_associated_data_pair_by_pair(session, rnd, pairs):
    many = keys.associated_data_many(session=session, round=rnd, pairs=pairs)
    assert many == [keys.associated_data(session=session, round=rnd, sender=a, recipient=b) for a, b in pairs]


@pytest.mark.parametrize("pairs", [[(0, 2**32)], [(-1, 0)], [(0, 1.5)], [(0, True)], [(0, 1, 2)]])
def test_associated_data_many_rejects_what_associated_data_rejects(pairs):
    with pytest.raises(InputError):
        keys.associated_data_many(session=b"s" * 16, round=1, pairs=pairs)
