"""Key agreement, key derivation, authenticated encryption and signatures for the protocols.

The public-key layer of pairwise-mask secure aggregation (Bonawitz et al., CCS 2017,
rounds AdvertiseKeys/ShareKeys; Bell et al., SecAgg+, CCS 2020), as thin, typed wrappers
over ``cryptography.hazmat.primitives``:

* :class:`AgreementKey`: X25519 Diffie-Hellman (RFC 7748). A raw shared secret is
  *not* a uniform key: always pass it through :func:`hkdf` with a purpose-specific
  ``info`` before using it as a PRG seed or an AEAD key.
* :func:`hkdf`: HKDF-SHA256 (RFC 5869) extract-and-expand; ``info`` separates domains
  (mask seeds vs. share-encryption keys, per session).
* :func:`aead_encrypt` / :func:`aead_decrypt`: AES-256-GCM (NIST SP 800-38D) with a
  fresh random 96-bit nonce per message from ``os.urandom``; the token is
  ``nonce (12) || ciphertext || tag (16)``. :func:`associated_data` builds the
  canonical bytes that bind session, round, sender and recipient, so a ciphertext
  replayed to another party, round or session fails to decrypt.
* :class:`SigningKey` / :func:`verify_signature`: Ed25519 (RFC 8032), for the
  malicious-server variant (signed public keys and consistency checks).

Keys are objects with explicit raw serialization (``to_bytes``/``from_bytes``,
``public_bytes``), in the style of pyca/cryptography. Every failed authentication
(wrong key, tampered byte, wrong associated data, bad signature, low-order X25519 point)
raises :class:`secagg.errors.IntegrityError` and nothing more specific, so an attacker
learns nothing from the error. Random 96-bit GCM nonces are safe for up to 2^32
messages per key (SP 800-38D, section 8.3); the protocols derive a fresh key per pair
and session, far below that.
"""

from __future__ import annotations

import os
import struct
from typing import Iterable

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
import numpy as np

from .errors import DecodeError, InputError, IntegrityError, SecAggError

__all__ = [
    "AgreementKey",
    "SigningKey",
    "verify_signature",
    "hkdf",
    "aead_encrypt",
    "aead_decrypt",
    "associated_data",
]

#: Raw X25519 / Ed25519 private and public key size, and AES-256-GCM key size (bytes).
KEY_SIZE = 32
PUBLIC_KEY_SIZE = 32
#: Ed25519 signature size (bytes).
SIGNATURE_SIZE = 64
#: AES-GCM nonce and tag sizes (bytes).
NONCE_SIZE = 12
TAG_SIZE = 16
#: Version byte of the :func:`associated_data` layout.
AD_VERSION = 1

_HKDF_MAX = 255 * 32
_AD_HEADER = struct.Struct(">BB")
_AD_TAIL = struct.Struct(">HII")
_AD_PAIR = struct.Struct(">II")
_RAW = serialization.Encoding.Raw
_PRIV_RAW = serialization.PrivateFormat.Raw
_PUB_RAW = serialization.PublicFormat.Raw
_NOENC = serialization.NoEncryption()

#: Encodings of the 8 small-order Ed25519 points, canonical and non-canonical (the same
#: list as libsodium's ``has_small_order``). A "public key" among them verifies forged
#: signatures (e.g. the all-zero key with an all-zero signature), so it is refused.
_ED25519_SMALL_ORDER = frozenset(
    bytes.fromhex(h)
    for h in (
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000080",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    )
)


def _as_bytes(value: object, name: str) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise InputError(f"{name} must be bytes, got {type(value).__name__}")
    return bytes(value)


def _as_int(value: object) -> int | None:
    """``value`` as a Python int if it is an integer (numpy integers included, bool not)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        return None
    return int(value)


def _exact(value: object, name: str, size: int, error: type[SecAggError] = InputError) -> bytes:
    raw = _as_bytes(value, name)
    if len(raw) != size:
        raise error(f"{name} must be exactly {size} bytes, got {len(raw)}")
    return raw


# ---------------------------------------------------------------------- X25519
class AgreementKey:
    """An X25519 private key (RFC 7748) for Diffie-Hellman key agreement.

    >>> a, b = AgreementKey.generate(), AgreementKey.generate()
    >>> a.exchange(b.public_bytes()) == b.exchange(a.public_bytes())
    True
    """

    __slots__ = ("_key", "_public")

    def __init__(self, key: x25519.X25519PrivateKey) -> None:
        if not isinstance(key, x25519.X25519PrivateKey):
            raise InputError(
                "AgreementKey wraps a cryptography X25519PrivateKey; use AgreementKey.generate() "
                "or AgreementKey.from_bytes(raw32)"
            )
        self._key = key
        self._public: bytes | None = None

    @classmethod
    def generate(cls) -> "AgreementKey":
        """A fresh key from the operating system's CSPRNG."""
        return cls(x25519.X25519PrivateKey.generate())

    @classmethod
    def from_bytes(cls, data: bytes) -> "AgreementKey":
        """Load a raw 32-byte private key. Raises :class:`DecodeError` for another length."""
        raw = _exact(data, "X25519 private key", KEY_SIZE, DecodeError)
        return cls(x25519.X25519PrivateKey.from_private_bytes(raw))

    def to_bytes(self) -> bytes:
        """The raw 32-byte private key (secret: store it encrypted)."""
        return self._key.private_bytes(_RAW, _PRIV_RAW, _NOENC)

    def public_bytes(self) -> bytes:
        """The raw 32-byte public key (u-coordinate, RFC 7748 encoding); computed once
        (a scalar multiplication) and kept."""
        if self._public is None:
            self._public = self._key.public_key().public_bytes(_RAW, _PUB_RAW)
        return self._public

    def exchange(self, peer_public: bytes) -> bytes:
        """The 32-byte raw shared secret with the peer's raw public key.

        Not uniformly random: derive keys from it with :func:`hkdf`.

        Raises
        ------
        InputError
            if ``peer_public`` is not 32 bytes.
        IntegrityError
            if the peer key is a low-order point (the shared secret would be all zeros,
            RFC 7748 section 6.1), i.e. a malicious or corrupted public key.
        """
        raw = _exact(peer_public, "peer public key", PUBLIC_KEY_SIZE)
        try:
            peer = x25519.X25519PublicKey.from_public_bytes(raw)
            return self._key.exchange(peer)
        except ValueError:
            raise IntegrityError(
                "X25519 exchange rejected the peer public key (low-order point: all-zero shared secret)"
            ) from None

    def __repr__(self) -> str:
        return f"AgreementKey(public={self.public_bytes().hex()[:16]}...)"


# ---------------------------------------------------------------------- Ed25519
class SigningKey:
    """An Ed25519 private key (RFC 8032) for signing protocol messages.

    >>> k = SigningKey.generate()
    >>> verify_signature(k.public_bytes(), b"msg", k.sign(b"msg"))  # returns None
    """

    __slots__ = ("_key",)

    def __init__(self, key: ed25519.Ed25519PrivateKey) -> None:
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise InputError(
                "SigningKey wraps a cryptography Ed25519PrivateKey; use SigningKey.generate() "
                "or SigningKey.from_bytes(raw32)"
            )
        self._key = key

    @classmethod
    def generate(cls) -> "SigningKey":
        """A fresh key from the operating system's CSPRNG."""
        return cls(ed25519.Ed25519PrivateKey.generate())

    @classmethod
    def from_bytes(cls, data: bytes) -> "SigningKey":
        """Load a raw 32-byte private key (seed). Raises :class:`DecodeError` for another length."""
        raw = _exact(data, "Ed25519 private key", KEY_SIZE, DecodeError)
        return cls(ed25519.Ed25519PrivateKey.from_private_bytes(raw))

    def to_bytes(self) -> bytes:
        """The raw 32-byte private key (secret)."""
        return self._key.private_bytes(_RAW, _PRIV_RAW, _NOENC)

    def public_bytes(self) -> bytes:
        """The raw 32-byte public key."""
        return self._key.public_key().public_bytes(_RAW, _PUB_RAW)

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``data`` (deterministic, RFC 8032)."""
        return self._key.sign(_as_bytes(data, "data"))

    def __repr__(self) -> str:
        return f"SigningKey(public={self.public_bytes().hex()[:16]}...)"


def verify_signature(public_key: bytes, data: bytes, signature: bytes) -> None:
    """Check an Ed25519 signature; return ``None`` if valid.

    Raises
    ------
    InputError
        if ``public_key`` is not 32 bytes or an argument is not bytes.
    IntegrityError
        if the signature is invalid (any length other than 64 bytes included), or the
        public key is not a valid curve point or is a small-order point.
    """
    pub = _exact(public_key, "Ed25519 public key", PUBLIC_KEY_SIZE)
    msg = _as_bytes(data, "data")
    sig = _as_bytes(signature, "signature")
    if len(sig) != SIGNATURE_SIZE:
        raise IntegrityError(f"invalid Ed25519 signature (must be {SIGNATURE_SIZE} bytes, got {len(sig)})")
    if pub in _ED25519_SMALL_ORDER:
        raise IntegrityError("Ed25519 public key is a small-order point; signatures under it prove nothing")
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(pub).verify(sig, msg)
    except (InvalidSignature, ValueError):
        raise IntegrityError("invalid Ed25519 signature for this public key and data") from None


# ---------------------------------------------------------------------- HKDF
def hkdf(secret: bytes, *, info: bytes, length: int = 32, salt: bytes | None = None) -> bytes:
    """HKDF-SHA256 (RFC 5869): ``length`` pseudorandom bytes from ``secret``.

    ``info`` names the purpose (e.g. ``b"secagg/mask-seed/" + session``); different
    ``info`` give independent keys. ``salt`` defaults to 32 zero bytes (RFC 5869, 2.2).

    Raises :class:`InputError` for non-bytes arguments, an empty secret, or ``length``
    outside ``1..8160`` (255 SHA-256 blocks).
    """
    ikm = _as_bytes(secret, "secret")
    if not ikm:
        raise InputError("secret must be non-empty")
    info_b = _as_bytes(info, "info")
    salt_b = None if salt is None else _as_bytes(salt, "salt")
    n = _as_int(length)
    if n is None or not 1 <= n <= _HKDF_MAX:
        raise InputError(f"length must be an integer in [1, {_HKDF_MAX}] bytes, got {length!r}")
    return HKDF(algorithm=hashes.SHA256(), length=n, salt=salt_b, info=info_b).derive(ikm)


# ---------------------------------------------------------------------- AEAD
def aead_encrypt(key: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    """AES-256-GCM encryption with a random 96-bit nonce.

    Returns ``nonce (12) || ciphertext (len(plaintext)) || tag (16)``. The
    ``associated_data`` is authenticated, not encrypted, and must be given again to
    decrypt (build it with :func:`associated_data`).

    Raises :class:`InputError` if ``key`` is not 32 bytes or an argument is not bytes.
    """
    k = _exact(key, "AES-256-GCM key", KEY_SIZE)
    pt = _as_bytes(plaintext, "plaintext")
    ad = _as_bytes(associated_data, "associated_data")
    nonce = os.urandom(NONCE_SIZE)
    return nonce + AESGCM(k).encrypt(nonce, pt, ad)


def aead_decrypt(key: bytes, token: bytes, associated_data: bytes) -> bytes:
    """Decrypt and authenticate a token from :func:`aead_encrypt`.

    Raises
    ------
    InputError
        if ``key`` is not 32 bytes or an argument is not bytes.
    DecodeError
        if ``token`` is shorter than nonce + tag (28 bytes).
    IntegrityError
        if any byte was changed, or the key or associated data differ.
    """
    k = _exact(key, "AES-256-GCM key", KEY_SIZE)
    tok = _as_bytes(token, "token")
    ad = _as_bytes(associated_data, "associated_data")
    if len(tok) < NONCE_SIZE + TAG_SIZE:
        raise DecodeError(
            f"AEAD token must be at least {NONCE_SIZE + TAG_SIZE} bytes (nonce + tag), got {len(tok)}"
        )
    try:
        return AESGCM(k).decrypt(tok[:NONCE_SIZE], tok[NONCE_SIZE:], ad)
    except InvalidTag:
        raise IntegrityError(
            "AEAD authentication failed: tampered ciphertext, wrong key or wrong associated data"
        ) from None


def associated_data(*, session: bytes, round: int, sender: int, recipient: int) -> bytes:
    """Canonical associated data binding a ciphertext to its context.

    Layout (big-endian, ``8 + len(session)`` bytes)::

        version (u8) = 1 || len(session) (u8) || session || round (u16) || sender (u32) || recipient (u32)

    The length prefix makes the encoding injective: different tuples give different bytes.

    Raises :class:`InputError` if ``session`` is not bytes of at most 255 bytes, ``round``
    is outside ``0..65535``, or ``sender``/``recipient`` outside ``0..2^32-1``.
    """
    sess = _as_bytes(session, "session")
    if len(sess) > 255:
        raise InputError(f"session id must be at most 255 bytes, got {len(sess)}")
    fields = []
    for name, value, bits in (("round", round, 16), ("sender", sender, 32), ("recipient", recipient, 32)):
        v = _as_int(value)
        if v is None or not 0 <= v < (1 << bits):
            raise InputError(f"{name} must be an integer in [0, {(1 << bits) - 1}], got {value!r}")
        fields.append(v)
    return _AD_HEADER.pack(AD_VERSION, len(sess)) + sess + _AD_TAIL.pack(*fields)


def associated_data_many(*, session: bytes, round: int, pairs: Iterable[tuple[int, int]]) -> list[bytes]:
    """:func:`associated_data` for many ``(sender, recipient)`` pairs of one session and
    round (same bytes, validated once: a party's ciphertexts to all its neighbours)."""
    pairs = list(pairs)
    head = associated_data(session=session, round=round, sender=0, recipient=0)[:-8]
    flat = [_as_int(v) for pair in pairs for v in pair]
    if len(flat) != 2 * len(pairs) or any(v is None or not 0 <= v < (1 << 32) for v in flat):
        raise InputError("sender and recipient must be integers in [0, 2^32 - 1]")
    pack = _AD_PAIR.pack
    return [head + pack(a, b) for a, b in pairs]
