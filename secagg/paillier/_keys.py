"""Paillier key generation, validation and compact key bytes, on python-paillier (``phe``) keys.

Keys are ordinary :class:`phe.PaillierPublicKey` / :class:`phe.PaillierPrivateKey`
objects (Paillier, EUROCRYPT 1999, with ``g = n + 1``), so code that already uses
``phe`` interoperates. This module adds the security floor (2048-bit moduli; 3072 by
default for ~128-bit security, NIST SP 800-57 Part 1 Table 2), a short key
fingerprint that binds serialized ciphertexts to their key, and a fixed-width
big-endian byte encoding of public keys (instead of JSON decimal strings).
"""

from __future__ import annotations

import hashlib
import struct

import gmpy2
import phe
from phe import PaillierPrivateKey, PaillierPublicKey

from ..errors import ConfigurationError, DecodeError, IncompatibleError, InputError, InsecureParameterError

__all__ = [
    "DEFAULT_KEY_BITS",
    "MIN_KEY_BITS",
    "security_bits",
    "PaillierPrivateKey",
    "PaillierPublicKey",
    "generate_keypair",
    "key_fingerprint",
    "public_key_from_bytes",
    "public_key_to_bytes",
]

#: default modulus size: ~128-bit security (NIST SP 800-57 Part 1, Table 2)
DEFAULT_KEY_BITS = 3072
#: smallest modulus accepted without ``allow_insecure=True`` (~112-bit security)
MIN_KEY_BITS = 2048

_PK_MAGIC = b"SGPK"
_PK_VERSION = 1
_PK_HEADER = struct.Struct(">4sBH")  # magic, version, byte length of n


#: (modulus bits, symmetric-equivalent security bits), NIST SP 800-57 Part 1 Rev. 5, Table 2
_SECURITY_LEVELS = ((15360, 256), (7680, 192), (3072, 128), (2048, 112), (1024, 80))


def security_bits(modulus_bits: int) -> int:
    """Symmetric-equivalent security of a ``modulus_bits``-bit Paillier/RSA modulus.

    The NIST SP 800-57 Part 1 (Table 2) step function: 112 bits from 2048, 128 from 3072,
    192 from 7680, 256 from 15360; 80 from 1024 and 0 below (no claim).

    Parameters
    ----------
    modulus_bits:
        bit length of ``n``.

    Returns
    -------
    int
        the security level in bits.
    """
    for size, level in _SECURITY_LEVELS:
        if modulus_bits >= size:
            return level
    return 0


def check_key_bits(bits: int, allow_insecure: bool, what: str = "key size") -> int:
    """``bits`` as a Paillier modulus size: an integer >= 64 (:class:`ConfigurationError`)
    and, unless ``allow_insecure``, at least ``MIN_KEY_BITS``
    (:class:`InsecureParameterError`). Returns ``bits``."""
    if not isinstance(bits, int) or isinstance(bits, bool) or bits < 64:
        raise ConfigurationError(f"{what} must be an integer number of bits >= 64, got {bits!r}")
    if bits < MIN_KEY_BITS and not allow_insecure:
        raise InsecureParameterError(
            f"a {bits}-bit Paillier modulus is below the {MIN_KEY_BITS}-bit security floor "
            f"(use {DEFAULT_KEY_BITS} for 128-bit security); pass allow_insecure=True only for tests"
        )
    return bits


def generate_keypair(
    bits: int = DEFAULT_KEY_BITS, *, allow_insecure: bool = False
) -> tuple[PaillierPublicKey, PaillierPrivateKey]:
    """Generate a Paillier key pair with ``phe.generate_paillier_keypair(n_length=bits)``.

    ``bits`` is the modulus length (the plaintext space is ``[0, n)``, ciphertexts are
    elements of ``Z_{n^2}``: ``2 * bits / 8`` bytes). Takes well under a second for 2048
    bits with gmpy2 and up to a few seconds for 3072.

    Raises
    ------
    InsecureParameterError
        ``bits < 2048`` without ``allow_insecure=True``.
    ConfigurationError
        ``bits`` is not an integer >= 64.
    """
    check_key_bits(bits, allow_insecure)
    return phe.generate_paillier_keypair(n_length=bits)


def _require_public_key(public_key) -> PaillierPublicKey:
    """``public_key`` if it is a phe public key, else :class:`InputError` (no size check)."""
    if not isinstance(public_key, PaillierPublicKey):
        raise InputError(
            f"expected a phe.PaillierPublicKey, got {type(public_key).__name__}; "
            "create one with secagg.paillier.generate_keypair()"
        )
    return public_key


def check_public_key(public_key, *, allow_insecure: bool = False) -> PaillierPublicKey:
    """Return ``public_key`` if it is a phe public key of at least :data:`MIN_KEY_BITS` bits.

    Every place a key enters the library (encryption, decoding a vector, the aggregator)
    calls this, so a 256-bit ``phe`` key is refused wherever it is used, not only where
    secagg generated it.

    Raises
    ------
    InputError
        not a ``phe.PaillierPublicKey``.
    InsecureParameterError
        a modulus below 2048 bits without ``allow_insecure=True``.
    """
    _require_public_key(public_key)
    check_key_bits(int(public_key.n).bit_length(), allow_insecure)
    return public_key


def check_private_key(private_key) -> PaillierPrivateKey:
    """Return ``private_key`` if it is a phe private key (raises :class:`InputError` otherwise)."""
    if not isinstance(private_key, PaillierPrivateKey):
        raise InputError(
            f"expected a phe.PaillierPrivateKey, got {type(private_key).__name__}; "
            "create one with secagg.paillier.generate_keypair()"
        )
    return private_key


def _n_bytes(n: int) -> int:
    return (int(n).bit_length() + 7) // 8


def key_fingerprint(public_key: PaillierPublicKey) -> bytes:
    """16-byte fingerprint of a public key: SHA-256 over a domain label and ``n`` (big-endian)."""
    n = int(_require_public_key(public_key).n)
    return hashlib.sha256(b"secagg/paillier/public-key/v1\x00" + n.to_bytes(_n_bytes(n), "big")).digest()[:16]


def public_key_to_bytes(public_key: PaillierPublicKey) -> bytes:
    """Encode a public key: ``b"SGPK" | version (1 B) | len(n) (2 B, big-endian) | n`` (big-endian).

    A 2048-bit key takes 7 + 256 bytes (phe's JSON form takes ~620 bytes of decimal text).
    """
    n = int(_require_public_key(public_key).n)
    nb = _n_bytes(n)
    return _PK_HEADER.pack(_PK_MAGIC, _PK_VERSION, nb) + n.to_bytes(nb, "big")


def public_key_from_bytes(data: bytes, *, allow_insecure: bool = False) -> PaillierPublicKey:
    """Decode :func:`public_key_to_bytes` output into a ``phe.PaillierPublicKey``.

    Raises
    ------
    DecodeError
        wrong magic/version, truncated or over-long input, or a modulus that cannot be a
        Paillier modulus (even, or not filling its declared width).
    InsecureParameterError
        the modulus is shorter than 2048 bits and ``allow_insecure`` is false.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(f"public key bytes must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < _PK_HEADER.size:
        raise DecodeError(f"public key bytes are truncated: {len(data)} bytes, need at least {_PK_HEADER.size}")
    magic, version, nb = _PK_HEADER.unpack_from(data)
    if magic != _PK_MAGIC:
        raise DecodeError("these bytes are not a secagg Paillier public key (bad magic)")
    if version != _PK_VERSION:
        raise DecodeError(f"unsupported public key version {version}; this library reads version {_PK_VERSION}")
    if len(data) != _PK_HEADER.size + nb:
        raise DecodeError(f"public key declares a {nb}-byte modulus but carries {len(data) - _PK_HEADER.size} bytes")
    n = int.from_bytes(data[_PK_HEADER.size :], "big")
    if nb == 0 or n.bit_length() <= 8 * (nb - 1) or n % 2 == 0 or gmpy2.is_prime(n):
        raise DecodeError("the encoded modulus is not a valid Paillier modulus (must be odd, composite, full width)")
    check_key_bits(n.bit_length(), allow_insecure)
    return PaillierPublicKey(n)


def same_key(a: PaillierPublicKey, b: PaillierPublicKey) -> None:
    """Raise :class:`IncompatibleError` unless ``a`` and ``b`` are the same public key."""
    if int(a.n) != int(b.n):
        raise IncompatibleError(
            "the ciphertexts/keys belong to different Paillier public keys "
            f"(fingerprints {key_fingerprint(a).hex()} vs {key_fingerprint(b).hex()})"
        )
