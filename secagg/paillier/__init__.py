"""Packed Paillier vector summation on python-paillier keys: fast enough to use.

Paillier encryption (Paillier, EUROCRYPT 1999) is additively homomorphic: a server
multiplies clients' ciphertexts and a key holder decrypts only the total. This package
packs many quantized values into each plaintext (BatchCrypt, Zhang et al., USENIX ATC
2020), encrypts with gmpy2 and optionally DJN-style short-exponent obfuscators on a
fixed-base table (Damgard, Jurik, Nielsen, IJIS 2010), decrypts with the CRT, and
serializes compactly. Keys are plain ``phe`` key objects.

Quick use::

    from secagg import Quantizer
    from secagg import paillier
    pk, sk = paillier.generate_keypair()            # 3072 bits by default
    q = Quantizer(bound=1.0, num_clients=100, bits=16)
    evs = [paillier.encrypt_vector(pk, x, q) for x in rows]
    total = paillier.decrypt_vector(sk, paillier.sum(evs))

For the common case, :func:`encrypt_vector`, :func:`sum` and :func:`decrypt_vector` as
above; for control, :class:`EncryptedVector` (arithmetic and bytes), :class:`Encryptor`
(obfuscation and precomputation), the two-share threshold decryption
(:func:`split_private_key`, :func:`partial_decrypt`, :func:`combine_partial_decryptions`)
and :class:`PaillierAggregator` (the ``paillier`` aggregator). A server that receives
clients' bytes uses :func:`sum_submissions`: every payload counts as one summand,
whatever its header says, and a bad payload is rejected on its own.
Keys below 2048 bits and ``"fast"`` exponents below twice the key's security level raise
:class:`~secagg.errors.InsecureParameterError` wherever they enter, unless
``allow_insecure=True`` is passed there.
"""

from __future__ import annotations

from ._encrypted_vector import (
    EncryptedVector,
    SubmissionSum,
    decrypt_quantized,
    decrypt_vector,
    encrypt_quantized,
    encrypt_vector,
    sum,
    sum_submissions,
)
from ._keys import (
    DEFAULT_KEY_BITS,
    MIN_KEY_BITS,
    PaillierPrivateKey,
    PaillierPublicKey,
    generate_keypair,
    public_key_from_bytes,
    public_key_to_bytes,
)
from ._obfuscation import Encryptor, min_exponent_bits
from ._packing import layout_for  # noqa: F401 - kept importable from here for the benchmarks
from ._threshold import KeyShare, PartialDecryption, combine_partial_decryptions, partial_decrypt, split_private_key
from .aggregator import PaillierAggregator

__all__ = [
    # keys
    "generate_keypair",
    "PaillierPublicKey",
    "PaillierPrivateKey",
    "public_key_to_bytes",
    "public_key_from_bytes",
    "DEFAULT_KEY_BITS",
    "MIN_KEY_BITS",
    # vectors
    "encrypt_vector",
    "decrypt_vector",
    "sum",
    "sum_submissions",
    "encrypt_quantized",
    "decrypt_quantized",
    "EncryptedVector",
    "SubmissionSum",
    "Encryptor",
    "min_exponent_bits",
    # two-share decryption
    "split_private_key",
    "partial_decrypt",
    "combine_partial_decryptions",
    "KeyShare",
    "PartialDecryption",
    # the aggregator
    "PaillierAggregator",
]
