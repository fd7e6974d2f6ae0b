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

A server that receives clients' bytes uses :func:`sum_submissions`: every payload counts
as one summand, whatever its header says, and a bad payload is rejected on its own.
Keys below 2048 bits and ``"fast"`` exponents below twice the key's security level raise
:class:`~secagg.errors.InsecureParameterError` wherever they enter, unless
``allow_insecure=True`` is passed there.
"""

from __future__ import annotations

from .aggregator import PaillierAggregator
from .encrypted_vector import (
    EncryptedVector,
    SubmissionSum,
    decrypt_quantized,
    decrypt_vector,
    encrypt_quantized,
    encrypt_vector,
    sum,
    sum_submissions,
)
from .keys import (
    DEFAULT_KEY_BITS,
    MIN_KEY_BITS,
    PaillierPrivateKey,
    PaillierPublicKey,
    generate_keypair,
    check_public_key,
    key_fingerprint,
    public_key_from_bytes,
    public_key_to_bytes,
    security_bits,
)
from .obfuscation import OBFUSCATIONS, Encryptor, get_encryptor, min_exponent_bits
from .packing import PackingLayout, layout_for
from .threshold import KeyShare, PartialDecryption, combine_partial_decryptions, partial_decrypt, split_private_key

__all__ = [
    "DEFAULT_KEY_BITS",
    "MIN_KEY_BITS",
    "OBFUSCATIONS",
    "EncryptedVector",
    "KeyShare",
    "PartialDecryption",
    "Encryptor",
    "PackingLayout",
    "PaillierAggregator",
    "PaillierPrivateKey",
    "PaillierPublicKey",
    "SubmissionSum",
    "check_public_key",
    "combine_partial_decryptions",
    "decrypt_quantized",
    "decrypt_vector",
    "encrypt_quantized",
    "encrypt_vector",
    "generate_keypair",
    "get_encryptor",
    "key_fingerprint",
    "layout_for",
    "min_exponent_bits",
    "partial_decrypt",
    "public_key_from_bytes",
    "public_key_to_bytes",
    "security_bits",
    "split_private_key",
    "sum",
    "sum_submissions",
]

