"""Two-party decryption: split a Paillier private key so neither share can decrypt alone.

The decryption exponent ``d`` with ``d = 0 (mod lambda)`` and ``d = 1 (mod n)`` turns any
ciphertext ``c = (1+n)^m r^n`` into ``c^d = 1 + m n (mod n^2)`` (Damgard-Jurik, PKC 2001,
Sec. 4; Paillier 1999 with ``g = n + 1``). It is split additively over the integers:
``d = d_1 + d_2`` with ``d_1`` uniform in ``[0, n^2 2^sigma)`` (``sigma = 128``
statistical bits), so each share alone is statistically independent of ``d`` and of the
factorization. Each holder computes a partial decryption ``c^{d_i} mod n^2``; the two
partials multiply to ``1 + m n``. This is the semi-honest two-party variant (no proofs
of correct partial decryption): it removes the single key holder who can decrypt
anything, but a holder that lies can still corrupt the result.

Cost: each partial decryption is one exponentiation with a ~``2|n| + 128``-bit exponent
mod ``n^2`` per ciphertext (about 2x a "full" encryption; ~10x a CRT decryption), still
amortized over all slots of a packed ciphertext.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Sequence

import gmpy2
import numpy as np

from ..errors import ConfigurationError, IncompatibleError, InputError, IntegrityError
from ._encrypted_vector import EncryptedVector, decode_plaintexts
from ._keys import PaillierPrivateKey, PaillierPublicKey, check_private_key, key_fingerprint, same_key

__all__ = ["KeyShare", "PartialDecryption", "split_private_key", "partial_decrypt", "combine_partial_decryptions"]


@dataclass(frozen=True, repr=False)
class KeyShare:
    """One of two additive shares of the decryption exponent (``index`` 1 or 2)."""

    public_key: PaillierPublicKey
    index: int
    exponent: int

    def __repr__(self) -> str:  # never print the secret exponent
        return f"KeyShare(index={self.index}, key={key_fingerprint(self.public_key).hex()[:16]})"


@dataclass(frozen=True)
class PartialDecryption:
    """``c^{d_i} mod n^2`` for each ciphertext of one vector, by share ``index``."""

    index: int
    fingerprint: bytes
    values: tuple


def split_private_key(private_key: PaillierPrivateKey, *, statistical_bits: int = 128) -> tuple[KeyShare, KeyShare]:
    """Split ``private_key`` into two shares; give each to a different party, then discard the key.

    Raises :class:`ConfigurationError` for ``statistical_bits < 80``.
    """
    check_private_key(private_key)
    if not isinstance(statistical_bits, int) or statistical_bits < 80:
        raise ConfigurationError(f"statistical_bits must be an integer >= 80, got {statistical_bits!r}")
    p, q = gmpy2.mpz(private_key.p), gmpy2.mpz(private_key.q)
    n = p * q
    if n != private_key.public_key.n:
        raise IncompatibleError("the private key's p * q is not its public key's n; refusing to split it")
    lam = gmpy2.lcm(p - 1, q - 1)
    d = lam * gmpy2.invert(lam, n)  # d = 0 mod lambda, d = 1 mod n
    d1 = secrets.randbelow(int(n * n) << statistical_bits)
    d2 = int(d) - d1
    pk = private_key.public_key
    return KeyShare(pk, 1, d1), KeyShare(pk, 2, d2)


def partial_decrypt(share: KeyShare, ev: EncryptedVector) -> PartialDecryption:
    """This holder's partial decryption of every ciphertext of ``ev`` (``c^{d_i} mod n^2``)."""
    if not isinstance(share, KeyShare):
        raise InputError(f"expected a KeyShare, got {type(share).__name__}")
    if not isinstance(ev, EncryptedVector):
        raise InputError(f"expected an EncryptedVector, got {type(ev).__name__}")
    same_key(share.public_key, ev.public_key)
    n = gmpy2.mpz(ev.public_key.n)
    nsq = n * n
    e = share.exponent
    vals = gmpy2.powmod_base_list(ev.ciphertexts, abs(e), nsq)
    if e < 0:
        vals = [gmpy2.invert(v, nsq) for v in vals]
    return PartialDecryption(share.index, key_fingerprint(ev.public_key), tuple(vals))


def combine_partial_decryptions(ev: EncryptedVector, partials: Sequence[PartialDecryption]) -> np.ndarray:
    """Combine the two holders' partials into the decoded float64 sum (shape ``(d,)``).

    Raises :class:`InputError` unless exactly shares 1 and 2 are given,
    :class:`IncompatibleError` for partials of another key or vector length, and
    :class:`IntegrityError` if the product is not of the form ``1 + m n`` (a wrong or
    corrupted partial).
    """
    if not isinstance(ev, EncryptedVector):
        raise InputError(f"expected an EncryptedVector, got {type(ev).__name__}")
    parts = list(partials)
    if not all(isinstance(p, PartialDecryption) for p in parts):
        raise InputError("partials must be PartialDecryption objects from partial_decrypt()")
    if sorted(p.index for p in parts) != [1, 2]:
        raise InputError("combine exactly two partial decryptions, one from each share (indices 1 and 2)")
    fp = key_fingerprint(ev.public_key)
    for p in parts:
        if p.fingerprint != fp:
            raise IncompatibleError("a partial decryption was made under another public key")
        if len(p.values) != len(ev.ciphertexts):
            raise IncompatibleError(f"a partial decryption has {len(p.values)} values, the vector {len(ev.ciphertexts)}")
    n = gmpy2.mpz(ev.public_key.n)
    nsq = n * n
    plaintexts = []
    for a, b in zip(parts[0].values, parts[1].values):
        x = a * b % nsq - 1
        if x % n:
            raise IntegrityError("the partial decryptions do not combine to a plaintext: one of them is wrong")
        plaintexts.append(x // n)
    return ev.quantizer.dequantize(decode_plaintexts(ev, plaintexts), ev.count)
