"""Pseudorandom mask expansion: a 128/256-bit seed -> a long uniform vector over Z_2^w.

Pairwise-mask secure aggregation (Bonawitz et al., "Practical Secure Aggregation for
Privacy-Preserving Machine Learning", CCS 2017, section 4; Bell et al., SecAgg+, CCS
2020) expands short shared seeds into masks as long as the model. This module does it
with AES in counter mode (NIST SP 800-38A, section 6.5) from ``cryptography`` (OpenSSL,
AES-NI/VAES), writing the keystream straight into NumPy buffers.

Construction (version ``secagg-prg-v1``)
---------------------------------------
For a seed ``k`` (16 bytes: AES-128, or 32 bytes: AES-256) and a label ``L``::

    nonce   = SHA-256(b"secagg-prg-v1" || u64_be(len(L)) || L)[:8]
    block_i = AES_k(nonce || u64_be(i))          for i = 0, 1, 2, ...
    stream  = block_0 || block_1 || ...

and ``expand(k, n, dtype, label=L)`` reads the first ``n * itemsize`` stream bytes as
little-endian unsigned integers of ``dtype`` (on every platform: the result is
identical on big-endian machines).

Why it is a secure PRG: with ``k`` uniformly random and secret, AES_k is modelled as a
pseudorandom permutation, so its outputs on *distinct* input blocks are
indistinguishable from uniform (up to the PRP/PRF switching term ``q^2 / 2^129`` for
``q`` blocks). The input blocks are distinct because (a) the 64-bit counter starts at 0
and a stream is never longer than ``2^64`` blocks, so it never wraps into the nonce
half, and (b) two different labels give different 8-byte nonces except with
probability ``2^-64`` per pair (the length prefix makes the hash input injective). So
streams for different labels are independent, and any bit of the output is uniform.
Every 8/16/32/64-bit word of a uniform byte string is uniform over its dtype.

Requirements on the caller: the seed must be uniformly random and secret (from
``os.urandom``/``secrets`` or the output of :func:`secagg.keys.hkdf`; never a raw
Diffie-Hellman value, never a low-entropy number: the 32-bit Mersenne-Twister seeds of
other frameworks are brute-forceable). One (seed, label) pair must mask one vector only.

Memory: :func:`expand` allocates exactly its output; :func:`add_mask` and
:func:`add_masks` add masks in place through a reused scratch buffer of
``CHUNK_BYTES`` bytes, so they use O(chunk) memory beyond ``acc`` for any length.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Sequence

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes
from numpy.typing import DTypeLike

from .errors import InputError

__all__ = ["expand", "add_mask", "add_masks"]

#: Domain-separation prefix of this construction (changes if the stream ever changes).
PRG_VERSION = b"secagg-prg-v1"

#: Accepted seed lengths in bytes (AES-128 and AES-256 keys).
SEED_SIZES = (16, 32)

#: Keystream bytes produced per cipher call in :func:`add_mask` / :func:`expand`.
#: A multiple of 16 and of every itemsize; 256 KiB keeps the scratch buffer and the
#: matching slice of ``acc`` in L2 cache while amortizing Python overhead.
CHUNK_BYTES = 256 * 1024

#: Read-only zero plaintext: CTR "encryption" of zeros is the keystream itself.
_ZEROS = memoryview(bytes(CHUNK_BYTES))

_MAX_BLOCKS = 1 << 64
_SUPPORTED_DTYPES = (np.uint8, np.uint16, np.uint32, np.uint64)


def _probe_update_into_slack() -> int:
    """Extra output bytes ``update_into`` needs (0 on cryptography >= 42, 15 before)."""
    enc = Cipher(algorithms.AES(bytes(16)), modes.CTR(bytes(16))).encryptor()
    try:
        enc.update_into(bytes(16), bytearray(16))
    except ValueError:
        return 15
    return 0


_SLACK = _probe_update_into_slack()


# ---------------------------------------------------------------------- validation
def _check_seed(seed: object) -> bytes:
    if not isinstance(seed, (bytes, bytearray, memoryview)):
        raise InputError(
            f"seed must be bytes of length 16 or 32 (an AES-128/AES-256 key), got {type(seed).__name__}"
        )
    key = bytes(seed)
    if len(key) not in SEED_SIZES:
        raise InputError(f"seed must be 16 or 32 bytes (AES-128/AES-256 key), got {len(key)} bytes")
    return key


def _check_label(label: object) -> bytes:
    if not isinstance(label, (bytes, bytearray, memoryview)):
        raise InputError(f"label must be bytes (a domain-separation tag), got {type(label).__name__}")
    return bytes(label)


def _check_dtype(dtype: DTypeLike) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise InputError(f"dtype must be one of uint8, uint16, uint32, uint64, got {dtype!r}") from None
    if dt.kind != "u" or dt.type not in _SUPPORTED_DTYPES:
        raise InputError(f"dtype must be one of uint8, uint16, uint32, uint64, got {dt}")
    return dt


def _check_sign(sign: object) -> int:
    if isinstance(sign, (bool, np.bool_)) or not isinstance(sign, (int, np.integer)) or sign not in (1, -1):
        raise InputError(f"sign must be +1 (add the mask) or -1 (subtract it), got {sign!r}")
    return int(sign)


def _check_acc(acc: object) -> np.ndarray:
    if not isinstance(acc, np.ndarray):
        raise InputError(f"acc must be a numpy.ndarray, got {type(acc).__name__}")
    if acc.ndim != 1:
        raise InputError(f"acc must be 1-D (flatten it first), got shape {acc.shape}")
    _check_dtype(acc.dtype)
    if not acc.flags.c_contiguous:
        raise InputError("acc must be C-contiguous (use numpy.ascontiguousarray); masks are added in place")
    if not acc.flags.writeable:
        raise InputError("acc must be writeable; masks are added in place")
    return acc


def _encryptor(seed: bytes, label: bytes) -> CipherContext:
    return Cipher(algorithms.AES(seed), modes.CTR(_counter_block(label))).encryptor()


@functools.lru_cache(maxsize=64)
def _counter_block(label: bytes) -> bytes:
    """The initial CTR block for ``label``: an 8-byte label-derived nonce, counter 0."""
    return hashlib.sha256(PRG_VERSION + len(label).to_bytes(8, "big") + label).digest()[:8] + bytes(8)


def _le(dt: np.dtype) -> np.dtype:
    """``dt`` with explicit little-endian byte order (the keystream's interpretation)."""
    return dt.newbyteorder("<")


# ---------------------------------------------------------------------- public API
def expand(seed: bytes, length: int, dtype: DTypeLike = np.uint32, *, label: bytes = b"") -> np.ndarray:
    """Expand ``seed`` into ``length`` uniformly random unsigned integers.

    Parameters
    ----------
    seed:
        16 or 32 secret, uniformly random bytes (AES-128 / AES-256 key).
    length:
        Number of elements (>= 0).
    dtype:
        ``uint8``, ``uint16``, ``uint32`` (default) or ``uint64``.
    label:
        Domain-separation tag; different labels give independent streams.

    Returns
    -------
    numpy.ndarray
        Shape ``(length,)``, native-endian ``dtype``, uniform over the dtype's range.
        Deterministic in ``(seed, label)``; the byte stream does not depend on ``dtype``
        (``expand(s, 2n, uint32)`` has the same bytes as ``expand(s, n, uint64)``).

    Raises
    ------
    InputError
        for a seed that is not 16/32 bytes, a negative or non-integer length, a label that
        is not bytes, or a dtype that is not an unsigned integer type.
    """
    seed = _check_seed(seed)
    label = _check_label(label)
    dt = _check_dtype(dtype)
    if isinstance(length, (bool, np.bool_)) or not isinstance(length, (int, np.integer)) or length < 0:
        raise InputError(f"length must be a non-negative integer, got {length!r}")
    nbytes = int(length) * dt.itemsize
    if nbytes > _MAX_BLOCKS * 16:
        raise InputError(f"length {length} exceeds the stream limit of 2^64 AES blocks per (seed, label)")
    buf = np.empty(nbytes + _SLACK, dtype=np.uint8)
    out = buf.data
    enc = _encryptor(seed, label)
    for off in range(0, nbytes, CHUNK_BYTES):
        n = min(CHUNK_BYTES, nbytes - off)
        enc.update_into(_ZEROS[:n], out[off : off + n + _SLACK])
    result = buf[:nbytes].view(_le(dt))
    if result.dtype != dt:  # big-endian host: convert to native order
        result = result.astype(dt)
    return result


def add_mask(acc: np.ndarray, seed: bytes, sign: int = 1, *, label: bytes = b"") -> np.ndarray:
    """Add (``sign=+1``) or subtract (``sign=-1``) ``expand(seed, len(acc), acc.dtype, label=label)``
    to ``acc`` in place, modulo ``2^(8 * acc.itemsize)``.

    The mask is generated ``CHUNK_BYTES`` at a time into one reused scratch buffer and
    added with ``np.add``/``np.subtract(..., out=)``, so memory beyond ``acc`` is O(chunk)
    whatever ``len(acc)``. For a ring Z_2^b with b smaller than the dtype width, mask the
    result with ``& (2^b - 1)`` afterwards (exact, because 2^b divides 2^width).

    Parameters
    ----------
    acc:
        1-D, C-contiguous, writeable array of dtype uint8/16/32/64; modified in place.
    seed, label:
        As for :func:`expand`.
    sign:
        ``+1`` or ``-1``.

    Returns
    -------
    numpy.ndarray
        ``acc`` itself.

    Raises
    ------
    InputError
        for a bad ``acc`` (not 1-D, not contiguous, read-only, not unsigned), seed, label
        or sign. Nothing is modified when validation fails.
    """
    return add_masks(acc, (seed,), (sign,), label=label)


def add_masks(
    acc: np.ndarray, seeds: Sequence[bytes], signs: Sequence[int], *, label: bytes = b""
) -> np.ndarray:
    """Add ``signs[j] * expand(seeds[j], len(acc), acc.dtype, label=label)`` for every ``j``
    to ``acc`` in place (wrap-around modulo ``2^(8 * acc.itemsize)``).

    Same semantics and validation as :func:`add_mask` applied to each seed in turn, but
    chunk-major: each ``CHUNK_BYTES`` slice of ``acc`` receives all masks while it is in
    cache, with one AES-CTR stream per seed kept open. All arguments are validated before
    ``acc`` is touched.

    Raises
    ------
    InputError
        for a bad ``acc``, any bad seed or sign, a label that is not bytes, or
        ``len(seeds) != len(signs)``.
    """
    acc = _check_acc(acc)
    label = _check_label(label)
    try:
        seeds = list(seeds)
        signs = list(signs)
    except TypeError:
        raise InputError("seeds and signs must be sequences (of bytes and of +1/-1)") from None
    if len(seeds) != len(signs):
        raise InputError(f"need one sign per seed, got {len(seeds)} seeds and {len(signs)} signs")
    checked = [(_check_seed(s), _check_sign(g)) for s, g in zip(seeds, signs)]
    if not checked or acc.size == 0:
        return acc

    dt = acc.dtype
    le = _le(dt)
    ops = {1: np.add, -1: np.subtract}
    streams = [(_encryptor(seed, label), ops[sign]) for seed, sign in checked]
    nbytes = acc.size * dt.itemsize
    chunk = min(CHUNK_BYTES, nbytes)
    scratch = np.empty(chunk + _SLACK, dtype=np.uint8)
    scratch_mv = scratch.data
    per = CHUNK_BYTES // dt.itemsize
    for start in range(0, acc.size, per):
        stop = min(start + per, acc.size)
        n = (stop - start) * dt.itemsize
        block = acc[start:stop]
        mask = scratch[:n].view(le)
        for enc, op in streams:
            enc.update_into(_ZEROS[:n], scratch_mv[: n + _SLACK])
            op(block, mask, out=block)
    return acc

