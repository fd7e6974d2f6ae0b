"""Shamir t-of-n secret sharing over GF(p), vectorized with NumPy over many secrets and parties.

Implements A. Shamir, "How to share a secret" (CACM 22(11), 1979), as used for the
seed and key shares of Bonawitz et al., "Practical Secure Aggregation for
Privacy-Preserving Machine Learning" (CCS 2017, rounds ShareKeys/Unmasking) and of
Bell et al., "Secure Single-Server Aggregation with (Poly)Logarithmic Overhead"
(SecAgg+, CCS 2020).

Field and limb layout
---------------------
* The field is GF(p) with ``p = PRIME = 2**21 - 9 = 2097143`` (the largest prime below
  2^21). Field elements are stored as ``uint32``.
* A secret of ``N`` bytes is read as one little-endian integer of ``8N`` bits and cut
  into ``L = ceil(8N / 20)`` limbs of ``LIMB_BITS = 20`` bits (limb ``j`` holds bits
  ``[20j, 20j + 20)``; the unused high bits of the last limb are zero). A 32-byte secret
  is 13 limbs. Every limb is ``< 2^20 < p``, so the map bytes -> limbs is injective and
  each limb is a field element; decoding inverts it exactly.
* Each limb is shared by its own, independent Shamir polynomial of degree ``t - 1``:
  ``f(X) = limb + c_1 X + ... + c_{t-1} X^{t-1}`` with every ``c_k`` drawn uniformly from
  ``[0, p)`` by rejection sampling on ``os.urandom`` bytes (no modulo bias). Share ``i``
  is ``f(x_i)`` for the public x-coordinate ``x_i`` in ``1..p-1`` (the protocol uses
  ``x = party_id + 1``). Up to ``p - 1 = 2,097,142`` parties are possible.

Why it is information-theoretically sound
-----------------------------------------
For one limb, and any ``t - 1`` distinct non-zero points, the map
``(c_1, ..., c_{t-1}) -> (f(x_1), ..., f(x_{t-1}))`` is an affine bijection of
GF(p)^{t-1} (its linear part is an invertible Vandermonde-type matrix
``[x_i^k]``, ``k = 1..t-1``), for *every* value of the limb. Uniform independent
coefficients therefore give ``t - 1`` share values that are uniform and independent of
the limb. Limbs use independent coefficients, so the ``t - 1`` shares of the whole
secret are uniform over GF(p)^{(t-1) x L} whatever the secret is: they carry zero
information about it, against an unbounded adversary. ``t`` shares determine every
polynomial, hence every limb, hence the secret (Lagrange interpolation at 0).

Speed
-----
Share generation for ``S`` secrets is one matrix product over the field,
``shares (n x S*L) = V (n x t, V[i, k] = x_i^k mod p) @ C (t x S*L) mod p``, computed with
float64 BLAS: entries are ``< 2^21`` so each product is ``< 2^42`` and a dot product of up
to ``_MAX_INNER = 2040`` terms stays below ``2^53``, i.e. exact; longer inner dimensions
are split and reduced between chunks. ``V`` is cached per ``(xs, t)`` in a bounded LRU.
Reconstruction computes the ``t`` Lagrange weights at 0 with vectorized tree products and
a batched Fermat inversion, then one matrix-vector product for all secrets at once.

Batch shapes
------------
``split_batch(secrets, t, xs)`` returns ``(n, S, L)`` uint32 (row ``i`` belongs to the party
with x-coordinate ``xs[i]``); ``combine_batch(xs, values, secret_len)`` takes ``(k, S, L)``
share values from ``k >= t`` parties and returns ``(S, secret_len)`` uint8.
``encode_share_values`` / ``decode_share_values`` turn one party's ``(S, L)`` row into
``3 * S * L`` compact bytes (21-bit elements in 3 little-endian bytes) for encryption.

Not covered: batch shares carry no tag, so the caller must bind them to their sharing
(the protocol does so with AEAD associated data). Shares are not verifiable against a
malicious dealer (no Feldman/Pedersen commitments); ``combine(..., verify=True)`` only
checks that surplus shares lie on the same polynomials. Python cannot reliably wipe
memory, so secrets live in ordinary arrays until garbage-collected.
"""

from __future__ import annotations

import math
import secrets as _secrets
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass
from os import urandom as _urandom  # coefficient source; tests may substitute a seeded one
from typing import Sequence, Union

import numpy as np

from .errors import DecodeError, InputError, SecretSharingError

__all__ = [
    "PRIME",
    "Share",
    "split",
    "combine",
    "split_batch",
    "combine_batch",
    "robust_combine",
    "encode_share_values",
    "decode_share_values",
]

PRIME: int = 2**21 - 9
"""The field modulus p (prime, < 2^21)."""
LIMB_BITS: int = 20
"""Secret bits carried by one field element (2^20 < p, so limbs are always < p)."""
VALUE_BYTES: int = 3
"""Bytes per field element in the compact encoding (p < 2^24)."""
TAG_BYTES: int = 16
"""Length of the random tag that identifies one sharing."""
SHARE_VERSION: int = 1
"""Version byte of :meth:`Share.to_bytes`."""

_P = PRIME
_PF = float(PRIME)
_INV_P = 1.0 / _PF
_MAX_INNER = 2040  # inner-dimension chunk for exact float64 products
assert _MAX_INNER * (_P - 1) ** 2 + _P < 2**53  # partial sums stay exactly representable
_BLOCK_ELEMS = 1 << 22  # float64 working-set per block (32 MiB)
_CACHE_BYTES = 64 << 20  # bound on cached power matrices
_HEADER = struct.Struct("<BIII16s")  # version, x, threshold, secret_len, tag

SecretsLike = Union[np.ndarray, Sequence[bytes]]


# ----------------------------------------------------------------------------- field helpers


def num_limbs(secret_len: int) -> int:
    """Number of field elements ``L = ceil(8 * secret_len / 20)`` that encode a secret.

    Raises
    ------
    InputError
        ``secret_len`` is not a positive int.
    """
    n = _as_int(secret_len, "secret_len")
    if n < 1:
        raise InputError(f"secret_len must be a positive number of bytes, got {n}.")
    return -(-8 * n // LIMB_BITS)


def _as_int(v: object, name: str) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise InputError(f"{name} must be an int, got {type(v).__name__}.")
    return int(v)


def _prod_mod(a: np.ndarray) -> np.ndarray:
    """Product mod p along the last axis (int64 entries in [0, p)), as a tree of
    vectorized pairwise products so no intermediate exceeds p^2 < 2^42."""
    while a.shape[-1] > 1:
        if a.shape[-1] % 2:
            pad = np.ones(a.shape[:-1] + (1,), dtype=np.int64)
            a = np.concatenate([a, pad], axis=-1)
        a = a[..., 0::2] * a[..., 1::2] % _P
    return a[..., 0]


def _inv_mod(a: np.ndarray) -> np.ndarray:
    """Elementwise inverse mod p of non-zero int64 entries (Fermat: a^(p-2))."""
    result = np.ones_like(a)
    base = a % _P
    e = _P - 2
    while e:
        if e & 1:
            result = result * base % _P
        base = base * base % _P
        e >>= 1
    return result


def _reduce_inplace(a: np.ndarray) -> np.ndarray:
    """Reduce float64 integers in [0, 2^53) modulo p in place (exact).

    ``q = floor(a / p)`` computed in floating point is off by at most one, ``a - q*p`` is an
    exact integer in ``[-p, 2p)`` (all operands < 2^53), and one conditional correction on
    each side lands it in ``[0, p)``. About 25x faster than ``np.fmod`` on large values.
    """
    q = a * _INV_P
    np.floor(q, out=q)
    q *= _PF
    a -= q
    np.add(a, _PF, out=a, where=a < 0)
    np.subtract(a, _PF, out=a, where=a >= _PF)
    return a


def _matmul_mod(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact ``a @ b mod p`` for float64 matrices with integer entries in [0, p).

    The inner dimension is processed in chunks of ``_MAX_INNER`` so that every partial
    sum is an integer below 2^53 (exact in float64). Returns float64 entries in [0, p).
    """
    k = a.shape[1]
    if k <= _MAX_INNER:
        return _reduce_inplace(a @ b)
    out = np.zeros((a.shape[0], b.shape[1]), dtype=np.float64)
    for s in range(0, k, _MAX_INNER):
        e = min(k, s + _MAX_INNER)
        out += a[:, s:e] @ b[s:e]
        _reduce_inplace(out)
    return out


def _random_field(count: int) -> np.ndarray:
    """``count`` independent uniform elements of [0, p) as uint32, by rejection sampling
    21-bit words from ``os.urandom`` (acceptance probability 1 - 9/2^21)."""
    out = np.empty(count, dtype=np.uint32)
    filled = 0
    while filled < count:
        need = count - filled
        draw = need + (need >> 12) + 16
        words = np.frombuffer(_urandom(4 * draw), dtype="<u4") & np.uint32((1 << 21) - 1)
        words = words[words < _P]
        take = min(need, words.size)
        out[filled : filled + take] = words[:take]
        filled += take
    return out


# ----------------------------------------------------------------------------- validation


def _check_xs(xs: object, name: str = "xs", dup_error: type = InputError) -> np.ndarray:
    """Validate x-coordinates: 1-D, integers, in 1..p-1, pairwise distinct -> int64."""
    if isinstance(xs, (str, bytes)):
        raise InputError(f"{name} must be a sequence of ints, got {type(xs).__name__}.")
    try:
        arr = np.asarray(xs)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be a sequence of ints: {exc}.") from None
    if arr.ndim != 1 or arr.size == 0:
        raise InputError(f"{name} must be a non-empty 1-D sequence of ints, got shape {arr.shape}.")
    if arr.dtype == object:
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in arr):
            raise InputError(f"{name} must contain only ints.")
        if any(not 1 <= int(v) < _P for v in arr):
            raise InputError(f"{name} must lie in 1..{_P - 1} (x = 0 would reveal the secret).")
        arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "iu":
        raise InputError(f"{name} must contain ints, got dtype {arr.dtype}.")
    if arr.min() < 1 or arr.max() >= _P:
        raise InputError(
            f"{name} must lie in 1..{_P - 1} (x = 0 would reveal the secret), "
            f"got values in [{arr.min()}, {arr.max()}]."
        )
    arr = arr.astype(np.int64)
    if np.unique(arr).size != arr.size:
        raise dup_error(f"{name} must be pairwise distinct; found a duplicate x-coordinate.")
    return arr


def _check_threshold(threshold: object, n: int) -> int:
    t = _as_int(threshold, "threshold")
    if not 1 <= t <= n:
        raise InputError(f"threshold must be in 1..{n} (the number of shares), got {t}.")
    return t


def _secrets_array(secrets: SecretsLike) -> np.ndarray:
    """Secrets as a C-contiguous (S, N) uint8 array, S >= 1, N >= 1."""
    if isinstance(secrets, np.ndarray):
        if secrets.dtype != np.uint8 or secrets.ndim != 2:
            raise InputError(
                "secrets array must be 2-D uint8 of shape (S, nbytes), "
                f"got {secrets.ndim}-D {secrets.dtype}."
            )
        arr = np.ascontiguousarray(secrets)
    else:
        if isinstance(secrets, (bytes, bytearray, memoryview, str)):
            raise InputError(
                "secrets must be a sequence of bytes (one per secret) or an (S, nbytes) uint8 "
                "array; for one secret use split()."
            )
        items = list(secrets)
        if not items or not all(isinstance(s, (bytes, bytearray, memoryview)) for s in items):
            raise InputError("secrets must be a non-empty sequence of bytes objects.")
        lens = {len(s) for s in items}
        if len(lens) != 1:
            raise InputError(
                f"all secrets in a batch must have the same length, got lengths {sorted(lens)}."
            )
        joined = b"".join(bytes(s) for s in items)
        arr = np.frombuffer(joined, dtype=np.uint8).reshape(len(items), -1)
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"need at least one secret of at least one byte, got shape {arr.shape}.")
    return arr


# ----------------------------------------------------------------------------- limb codec

_BIT_WEIGHTS = (np.uint32(1) << np.arange(LIMB_BITS, dtype=np.uint32)).astype(np.uint32)


def _to_limbs(secrets: np.ndarray) -> np.ndarray:
    """(S, N) uint8 -> (S, L) uint32 limbs of 20 bits (secret as a little-endian integer)."""
    s, n = secrets.shape
    L = num_limbs(n)
    bits = np.zeros((s, L * LIMB_BITS), dtype=np.uint8)
    bits[:, : 8 * n] = np.unpackbits(secrets, axis=1, bitorder="little")
    return bits.reshape(s, L, LIMB_BITS).astype(np.uint32) @ _BIT_WEIGHTS


def _from_limbs(limbs: np.ndarray, secret_len: int) -> np.ndarray:
    """(S, L) integer limbs -> (S, secret_len) uint8; raises SecretSharingError when a
    limb or padding bit is out of range (shares that do not belong together)."""
    limbs = limbs.astype(np.uint32)
    if np.any(limbs >> LIMB_BITS):
        raise SecretSharingError(
            "reconstructed value is not a valid secret encoding: the shares do not belong to one "
            "sharing (foreign or corrupted shares, or fewer than the threshold)."
        )
    s, L = limbs.shape
    bits = ((limbs[:, :, None] >> np.arange(LIMB_BITS, dtype=np.uint32)) & 1).astype(np.uint8)
    bits = bits.reshape(s, L * LIMB_BITS)
    if np.any(bits[:, 8 * secret_len :]):
        raise SecretSharingError(
            "reconstructed value has non-zero padding bits: the shares do not belong to one "
            "sharing (foreign or corrupted shares, or fewer than the threshold)."
        )
    return np.packbits(bits[:, : 8 * secret_len], axis=1, bitorder="little")


# ----------------------------------------------------------------------------- caches


class _LRU:
    """Thread-safe LRU of read-only arrays bounded by total bytes."""

    def __init__(self, max_bytes: int) -> None:
        self._data: OrderedDict[tuple[object, ...], np.ndarray] = OrderedDict()
        self._bytes = 0
        self._max = max_bytes
        self._lock = threading.Lock()

    def get(self, key: tuple[object, ...]) -> np.ndarray | None:
        with self._lock:
            v = self._data.get(key)
            if v is not None:
                self._data.move_to_end(key)
            return v

    def put(self, key: tuple[object, ...], value: np.ndarray) -> None:
        if value.nbytes > self._max:
            return
        value.setflags(write=False)
        with self._lock:
            if key in self._data:
                return
            self._data[key] = value
            self._bytes += value.nbytes
            while self._bytes > self._max:
                _, old = self._data.popitem(last=False)
                self._bytes -= old.nbytes

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0


_POWERS = _LRU(_CACHE_BYTES)
_WEIGHTS = _LRU(16 << 20)


def _powers(xs: np.ndarray, t: int) -> np.ndarray:
    """(n, t) float64 matrix ``x_i^k mod p`` for k = 0..t-1, built column-block-wise
    (about 2*sqrt(t) vectorized steps)."""
    n = xs.size
    v = np.empty((n, t), dtype=np.int64)
    v[:, 0] = 1
    b = min(t, math.isqrt(t) + 1)
    for j in range(1, b):
        v[:, j] = v[:, j - 1] * xs % _P
    if t > b:
        xb = v[:, b - 1] * xs % _P  # x^b
        for start in range(b, t, b):
            stop = min(t, start + b)
            v[:, start:stop] = v[:, start - b : stop - b] * xb[:, None] % _P
    return v.astype(np.float64)


def _cached_powers(xs: np.ndarray, t: int) -> np.ndarray:
    key = (t, xs.tobytes())
    v = _POWERS.get(key)
    if v is None:
        v = _powers(xs, t)
        _POWERS.put(key, v)
    return v


def lagrange_weights(
    xs: Sequence[int] | np.ndarray, at: Sequence[int] | np.ndarray | int = 0
) -> np.ndarray:
    """Lagrange interpolation weights over GF(p).

    Parameters
    ----------
    xs
        ``t`` distinct x-coordinates in ``1..p-1``.
    at
        evaluation point(s) (ints in ``0..p-1``, none equal to an entry of ``xs``).

    Returns
    -------
    numpy.ndarray
        int64 array of shape ``(e, t)`` (``e`` = number of points in ``at``; ``(1, t)``
        for a scalar) with ``f(at_r) = sum_i w[r, i] * f(xs[i]) mod p`` for every
        polynomial ``f`` of degree ``< t``.

    Raises
    ------
    InputError
        bad ``xs``/``at`` (duplicates, out of range, ``at`` equal to an x).
    """
    x = _check_xs(xs)
    pts = np.atleast_1d(np.asarray(at))
    if pts.ndim != 1 or pts.dtype.kind not in "iu" or pts.size == 0:
        raise InputError("at must be an int or a non-empty 1-D sequence of ints.")
    if pts.min() < 0 or pts.max() >= _P:
        raise InputError(f"at must lie in 0..{_P - 1}.")
    pts = pts.astype(np.int64)
    if np.isin(pts, x).any():
        raise InputError("at must not coincide with one of xs (the weight would be a unit vector).")
    return _weights(x, pts)


def _weights(x: np.ndarray, pts: np.ndarray) -> np.ndarray:
    t = x.size
    # den_i = prod_{j != i} (x_i - x_j), in row blocks to bound memory to ~_BLOCK_ELEMS.
    den = np.empty(t, dtype=np.int64)
    rb = max(1, _BLOCK_ELEMS // t)
    for r0 in range(0, t, rb):
        r1 = min(t, r0 + rb)
        d = (x[r0:r1, None] - x[None, :]) % _P
        d[np.arange(r1 - r0), np.arange(r0, r1)] = 1
        den[r0:r1] = _prod_mod(d)
    diff = (pts[:, None] - x[None, :]) % _P  # (e, t), non-zero
    num = _prod_mod(diff)  # prod_j (at - x_j)
    # w_i = prod_{j != i}(at - x_j) / den_i = num / ((at - x_i) * den_i)
    w: np.ndarray = num[:, None] * _inv_mod(diff * den[None, :] % _P) % _P
    return w


def _weights_at_zero(x: np.ndarray) -> np.ndarray:
    key = (x.tobytes(),)
    w = _WEIGHTS.get(key)
    if w is None:
        w = _weights(x, np.zeros(1, dtype=np.int64)).astype(np.float64)
        _WEIGHTS.put(key, w)
    return w


# ----------------------------------------------------------------------------- batch API


def split_batch(secrets: SecretsLike, threshold: int, xs: Sequence[int] | np.ndarray) -> np.ndarray:
    """Share ``S`` equal-length secrets among the parties at x-coordinates ``xs``.

    Parameters
    ----------
    secrets
        ``(S, nbytes)`` uint8 array, or a sequence of ``S`` bytes objects of one
        common length ``nbytes >= 1``.
    threshold
        ``t`` in ``1..len(xs)``: any ``t`` shares reconstruct, ``t - 1`` reveal
        nothing.
    xs
        ``n`` distinct x-coordinates in ``1..PRIME-1`` (e.g. ``party_id + 1``).

    Returns
    -------
    numpy.ndarray
        ``(n, S, L)`` uint32 array of field elements, ``L = num_limbs(nbytes)``; row ``i`` is
        the share of party ``xs[i]`` (encode it with :func:`encode_share_values`).
        Every secret and limb uses fresh, independent random coefficients.

    Raises
    ------
    InputError
        malformed secrets, threshold or xs (duplicates, 0, >= PRIME).
    """
    sec = _secrets_array(secrets)
    x = _check_xs(xs)
    n = x.size
    t = _check_threshold(threshold, n)
    s_count, nbytes = sec.shape
    L = num_limbs(nbytes)
    limbs = _to_limbs(sec).reshape(-1)  # (m,)
    m = limbs.size
    out = np.empty((n, m), dtype=np.uint32)

    whole_v = n * t <= 4 * _BLOCK_ELEMS
    v_all = _cached_powers(x, t) if whole_v else None
    rb = n if whole_v else max(1, _BLOCK_ELEMS // t)
    mb = max(1, min(m, _BLOCK_ELEMS // t))
    for c0 in range(0, m, mb):
        c1 = min(m, c0 + mb)
        coeffs = np.empty((t, c1 - c0), dtype=np.float64)
        coeffs[0] = limbs[c0:c1]
        if t > 1:
            coeffs[1:] = _random_field((t - 1) * (c1 - c0)).reshape(t - 1, c1 - c0)
        for r0 in range(0, n, rb):
            r1 = min(n, r0 + rb)
            v = v_all[r0:r1] if v_all is not None else _powers(x[r0:r1], t)
            out[r0:r1, c0:c1] = _matmul_mod(v, coeffs)
        del coeffs
    return out.reshape(n, s_count, L)


def combine_batch(
    xs: Sequence[int] | np.ndarray,
    values: np.ndarray,
    secret_len: int,
    *,
    threshold: int | None = None,
    verify: bool = False,
) -> np.ndarray:
    """Reconstruct ``S`` secrets from the shares of ``k`` parties.

    Parameters
    ----------
    xs
        the ``k`` distinct x-coordinates of the contributing parties.
    values
        ``(k, S, L)`` integer array of field elements (< PRIME), ``values[i]`` from
        party ``xs[i]``; ``L`` must equal ``num_limbs(secret_len)``.
    secret_len
        byte length of each secret.
    threshold
        the sharing threshold ``t``. If given, ``k >= t`` is required and only the
        first ``t`` parties are used (the rest are checked if ``verify``). If ``None``,
        all ``k`` shares are interpolated, which is correct whenever ``k >= t``.
    verify
        with ``threshold`` and ``k > t``, check that the surplus shares lie on the
        same polynomials (detects corrupted or foreign shares).

    Returns
    -------
    numpy.ndarray
        ``(S, secret_len)`` uint8 array; ``bytes(out[s])`` is secret ``s``.

    Raises
    ------
    SecretSharingError
        fewer than ``threshold`` shares, duplicate xs, inconsistent
        shares (verify), or a result that is not a valid encoding (foreign shares).
    InputError
        malformed shapes, dtypes, out-of-range values.
    """
    x = _check_xs(xs, dup_error=SecretSharingError)
    L = num_limbs(secret_len)
    vals = np.asarray(values)
    if vals.ndim != 3 or vals.dtype.kind not in "iu":
        raise InputError(
            f"values must be a 3-D integer array (k, S, L), got {vals.ndim}-D {vals.dtype}."
        )
    k, s_count, got_l = vals.shape
    if k != x.size:
        raise InputError(
            f"values has {k} rows of shares but xs has {x.size} entries; they must match."
        )
    if got_l != L:
        raise InputError(
            f"values has {got_l} limbs per secret but secret_len={secret_len} needs {L}."
        )
    if s_count == 0:
        raise InputError("values holds zero secrets; need at least one.")
    if vals.size and (vals.min() < 0 or vals.max() >= _P):
        raise InputError(f"share values must be field elements in 0..{_P - 1}.")
    if threshold is None:
        t = k
    else:
        t = _as_int(threshold, "threshold")
        if t < 1:
            raise InputError(f"threshold must be >= 1, got {t}.")
        if k < t:
            raise SecretSharingError(f"need at least threshold={t} shares to reconstruct, got {k}.")
    flat = vals.reshape(k, s_count * L)
    base = flat[:t].astype(np.float64)
    if verify and k > t:
        w_extra = _weights(x[:t], x[t:]).astype(np.float64)
        pred = np.empty((k - t, flat.shape[1]), dtype=np.float64)
        cb = max(1, _BLOCK_ELEMS // max(t, 1))
        for c0 in range(0, flat.shape[1], cb):
            pred[:, c0 : c0 + cb] = _matmul_mod(w_extra, base[:, c0 : c0 + cb])
        bad = np.flatnonzero(np.any(pred != flat[t:], axis=1))
        if bad.size:
            raise SecretSharingError(
                f"{bad.size} share(s) are inconsistent with the first {t} "
                f"(x = {x[t:][bad][:5].tolist()}...): corrupted or from another sharing."
            )
    w0 = _weights_at_zero(x[:t])
    limbs = _matmul_mod(w0, base).reshape(s_count, L)
    return _from_limbs(limbs, int(secret_len))


# ----------------------------------------------------------------------------- robust decoding


def _solve_mod_p(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """One solution of ``a z = b`` over GF(p) (free variables set to 0), or ``None`` when
    the system is inconsistent. Gauss-Jordan elimination, rows updated with int64 numpy
    operations (entries < p < 2^21, so products stay below 2^42)."""
    a = a.astype(np.int64) % _P
    b = b.astype(np.int64) % _P
    rows, cols = a.shape
    pivots: list[int] = []
    r = 0
    for c in range(cols):
        if r == rows:
            break
        nz = np.flatnonzero(a[r:, c])
        if nz.size == 0:
            continue
        p = r + int(nz[0])
        if p != r:
            a[[r, p]] = a[[p, r]]
            b[[r, p]] = b[[p, r]]
        inv = pow(int(a[r, c]), _P - 2, _P)
        a[r] = a[r] * inv % _P
        b[r] = b[r] * inv % _P
        f = a[:, c].copy()
        f[r] = 0
        a -= f[:, None] * a[r][None, :]
        a %= _P
        b = (b - f * b[r]) % _P
        pivots.append(c)
        r += 1
    if np.any(b[r:]):
        return None
    z = np.zeros(cols, dtype=np.int64)
    for i, c in enumerate(pivots):
        z[c] = b[i]
    return z


def _poly_eval(coeffs: list[int], x: np.ndarray) -> np.ndarray:
    """Evaluate sum coeffs[i] x^i mod p at every x (Horner, int64)."""
    out = np.zeros(x.shape, dtype=np.int64)
    for c in reversed(coeffs):
        out = (out * x + c) % _P
    return out


def _berlekamp_welch(x: np.ndarray, y: np.ndarray, t: int) -> tuple[int, np.ndarray] | None:
    """Decode one Reed-Solomon codeword: the value at 0 of the degree ``< t`` polynomial
    that agrees with all but at most ``e = (m - t) // 2`` of the ``m`` points, and the
    mask of the points it disagrees with; ``None`` when no such polynomial exists.

    Berlekamp-Welch: find ``E`` (monic, degree ``e``) and ``Q`` (degree ``< t + e``) with
    ``Q(x_i) = y_i E(x_i)`` for every point; then ``P = Q / E``.
    """
    m = x.size
    e = (m - t) // 2
    xp = np.ones((m, t + e), dtype=np.int64)
    for j in range(1, t + e):
        xp[:, j] = xp[:, j - 1] * x % _P
    x_e = xp[:, e] if e < t + e else _poly_eval([0] * e + [1], x)
    a = np.concatenate([xp, (-(y[:, None] * xp[:, :e])) % _P], axis=1)
    sol = _solve_mod_p(a, y * x_e % _P)
    if sol is None:
        return None
    q = [int(v) for v in sol[: t + e]]
    err = [int(v) for v in sol[t + e :]] + [1]  # monic E, low to high
    # polynomial long division q / err over GF(p)
    rem = q[:]
    quot = [0] * max(len(q) - e, 1)
    for i in range(len(q) - 1, e - 1, -1):
        coef = rem[i] % _P
        if coef:
            quot[i - e] = coef
            for j in range(e + 1):
                rem[i - e + j] = (rem[i - e + j] - coef * err[j]) % _P
    if any(r % _P for r in rem[:e]) or len(quot) > t and any(quot[t:]):
        return None
    poly = quot[:t]
    bad = _poly_eval(poly, x) != y % _P
    if int(bad.sum()) > e:
        return None
    return poly[0] if poly else 0, bad


def robust_combine(
    xs: Sequence[int] | np.ndarray, values: np.ndarray, secret_len: int, *, threshold: int
) -> tuple[bytes, list[int]]:
    """Reconstruct one secret from ``m >= threshold`` shares of which some may be wrong.

    Reed-Solomon unique decoding (Berlekamp-Welch, per limb): corrects up to
    ``(m - threshold) // 2`` wrong shares, whatever values they carry.

    Parameters
    ----------
    xs
        the ``m`` distinct x-coordinates.
    values
        ``(m, L)`` share values of one secret, row ``i`` from ``xs[i]``.
    secret_len
        byte length of the secret.
    threshold
        the sharing threshold ``t``.

    Returns
    -------
    (bytes, list[int])
        the secret, and the row indices whose shares were wrong (sorted).

    Raises
    ------
    SecretSharingError
        fewer than ``threshold`` shares, or more wrong shares than can be corrected.
    InputError
        malformed shapes or values.
    """
    x = _check_xs(xs, dup_error=SecretSharingError)
    vals = np.asarray(values)
    L = num_limbs(secret_len)
    if vals.shape != (x.size, L) or vals.dtype.kind not in "iu":
        raise InputError(f"values must be an integer array of shape ({x.size}, {L}), got {vals.dtype} {vals.shape}.")
    t = _as_int(threshold, "threshold")
    if not 1 <= t <= x.size:
        raise SecretSharingError(f"need at least threshold={t} shares to reconstruct, got {x.size}.")
    if vals.size and (vals.min() < 0 or vals.max() >= _P):
        raise InputError(f"share values must be field elements in 0..{_P - 1}.")
    vals = vals.astype(np.int64)
    limbs = np.zeros((1, L), dtype=np.int64)
    bad = np.zeros(x.size, dtype=bool)
    for j in range(L):
        res = _berlekamp_welch(x, vals[:, j], t)
        if res is None:
            raise SecretSharingError(
                f"the {x.size} shares do not lie on one polynomial of degree < {t} up to "
                f"{(x.size - t) // 2} errors: too many wrong shares to correct."
            )
        limbs[0, j], wrong = res
        bad |= wrong
    if int(bad.sum()) > (x.size - t) // 2:
        raise SecretSharingError("the wrong shares of different limbs exceed what can be corrected together.")
    return bytes(_from_limbs(limbs, int(secret_len))[0]), [int(i) for i in np.flatnonzero(bad)]


# ----------------------------------------------------------------------------- compact bytes


def encode_share_values(values: np.ndarray) -> bytes:
    """Encode field elements (any shape, C order) as 3 little-endian bytes each.

    Typically one party's ``(S, L)`` row of :func:`split_batch`: ``3 * S * L`` bytes.

    Raises
    ------
    InputError
        non-integer dtype or a value outside ``0..PRIME-1``.
    """
    v = np.asarray(values)
    if v.dtype.kind not in "iu":
        raise InputError(f"share values must be integers, got dtype {v.dtype}.")
    if v.size and (v.min() < 0 or v.max() >= _P):
        raise InputError(f"share values must be field elements in 0..{_P - 1}.")
    w = np.ascontiguousarray(v, dtype="<u4").reshape(-1).view(np.uint8).reshape(-1, 4)
    return w[:, :VALUE_BYTES].tobytes()


def decode_share_values(data: bytes, num_secrets: int, num_limbs_per_secret: int) -> np.ndarray:
    """Inverse of :func:`encode_share_values` for an ``(num_secrets, num_limbs_per_secret)`` row.

    Returns
    -------
    numpy.ndarray
        ``(num_secrets, num_limbs_per_secret)`` uint32 array.

    Raises
    ------
    DecodeError
        wrong length, or an encoded value ``>= PRIME``.
    InputError
        non-positive shape arguments.
    """
    s = _as_int(num_secrets, "num_secrets")
    L = _as_int(num_limbs_per_secret, "num_limbs_per_secret")
    if s < 1 or L < 1:
        raise InputError(f"num_secrets and num_limbs_per_secret must be >= 1, got {s}, {L}.")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(f"share values must be bytes, got {type(data).__name__}.")
    expected = VALUE_BYTES * s * L
    if len(data) != expected:
        raise DecodeError(
            f"share values must be exactly {expected} bytes ({s} x {L} elements x "
            f"{VALUE_BYTES}), got {len(data)}."
        )
    raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, VALUE_BYTES).astype(np.uint32)
    out = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
    if out.size and out.max() >= _P:
        raise DecodeError(f"share value out of range: every element must be < {_P}.")
    return out.reshape(s, L)


def decode_share_values_many(blobs: Sequence[object], num_secrets: int, num_limbs_per_secret: int) -> list[np.ndarray | None]:
    """:func:`decode_share_values` over many encoded rows at once (one vectorized pass).

    Returns one ``(num_secrets, num_limbs_per_secret)`` uint32 array per blob, or
    ``None`` for a blob that :func:`decode_share_values` would reject (not bytes, wrong
    length, a value ``>= PRIME``), so a caller can report exactly the bad senders.
    """
    s = _as_int(num_secrets, "num_secrets")
    L = _as_int(num_limbs_per_secret, "num_limbs_per_secret")
    if s < 1 or L < 1:
        raise InputError(f"num_secrets and num_limbs_per_secret must be >= 1, got {s}, {L}.")
    size = VALUE_BYTES * s * L
    good: list[int] = []
    parts: list[bytes] = []
    for i, b in enumerate(blobs):
        if isinstance(b, (bytes, bytearray, memoryview)) and len(b) == size:
            good.append(i)
            parts.append(bytes(b))
    out: list[np.ndarray | None] = [None] * len(blobs)
    if not good:
        return out
    raw = np.frombuffer(b"".join(parts), dtype=np.uint8).reshape(len(good), s * L, 3)
    raw = raw.astype(np.uint32)
    vals = (raw[..., 0] | (raw[..., 1] << 8) | (raw[..., 2] << 16)).reshape(len(good), s, L)
    ok = np.asarray((vals < _P).all(axis=(1, 2)), dtype=bool)
    for j, i in enumerate(good):
        if ok[j]:
            out[i] = vals[j]
    return out


# ----------------------------------------------------------------------------- single-secret API


@dataclass(frozen=True, eq=False)
class Share:
    """One party's share of one secret.

    Attributes
    ----------
    x
        x-coordinate in ``1..PRIME-1``.
    threshold
        shares needed to reconstruct.
    secret_len
        length of the secret in bytes.
    tag
        16 random bytes identifying the sharing (shares of different secrets cannot be
        mixed silently).
    values
        ``(num_limbs(secret_len),)`` uint32 field elements (read-only).
    """

    x: int
    threshold: int
    secret_len: int
    tag: bytes
    values: np.ndarray

    def __post_init__(self) -> None:
        x = _as_int(self.x, "x")
        if not 1 <= x < _P:
            raise InputError(f"x must be in 1..{_P - 1}, got {x}.")
        t = _as_int(self.threshold, "threshold")
        if not 1 <= t < 2**32:
            raise InputError(f"threshold must be in 1..2^32-1, got {t}.")
        n = _as_int(self.secret_len, "secret_len")
        if not 1 <= n < 2**32:
            raise InputError(f"secret_len must be in 1..2^32-1, got {n}.")
        if not isinstance(self.tag, (bytes, bytearray)) or len(self.tag) != TAG_BYTES:
            raise InputError(f"tag must be {TAG_BYTES} bytes.")
        v = np.asarray(self.values)
        if v.dtype.kind not in "iu" or v.shape != (num_limbs(n),):
            raise InputError(
                f"values must be an integer array of shape ({num_limbs(n)},), "
                f"got {v.dtype} {v.shape}."
            )
        if v.min() < 0 or v.max() >= _P:
            raise InputError(f"values must be field elements in 0..{_P - 1}.")
        v = v.astype(np.uint32, copy=True)
        v.setflags(write=False)
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "threshold", t)
        object.__setattr__(self, "secret_len", n)
        object.__setattr__(self, "tag", bytes(self.tag))
        object.__setattr__(self, "values", v)

    def to_bytes(self) -> bytes:
        """``version(1) | x(u32) | threshold(u32) | secret_len(u32) | tag(16) | values(3 each)``,
        integers little-endian: ``29 + 3 * num_limbs(secret_len)`` bytes."""
        head = _HEADER.pack(SHARE_VERSION, self.x, self.threshold, self.secret_len, self.tag)
        return head + encode_share_values(self.values)

    @classmethod
    def from_bytes(cls, data: bytes) -> "Share":
        """Parse :meth:`to_bytes` output. Lengths are checked before anything is allocated.

        Raises
        ------
        DecodeError
            wrong type, version, length, or field values.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise DecodeError(f"a share must be bytes, got {type(data).__name__}.")
        data = bytes(data)
        if len(data) < _HEADER.size:
            raise DecodeError(f"a share is at least {_HEADER.size} bytes, got {len(data)}.")
        version, x, t, n, tag = _HEADER.unpack_from(data)
        if version != SHARE_VERSION:
            raise DecodeError(
                f"unsupported share version {version}; this library reads version {SHARE_VERSION}."
            )
        if n < 1:
            raise DecodeError("share header has secret_len 0; must be >= 1.")
        L = num_limbs(n)
        expected = _HEADER.size + VALUE_BYTES * L
        if len(data) != expected:
            raise DecodeError(
                f"share with secret_len={n} must be {expected} bytes, got {len(data)}."
            )
        values = decode_share_values(data[_HEADER.size :], 1, L)[0]
        try:
            return cls(x=x, threshold=t, secret_len=n, tag=tag, values=values)
        except InputError as exc:
            raise DecodeError(f"invalid share field: {exc}") from None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Share):
            return NotImplemented
        return (self.x, self.threshold, self.secret_len, self.tag) == (
            other.x,
            other.threshold,
            other.secret_len,
            other.tag,
        ) and bool(np.array_equal(self.values, other.values))

    def __hash__(self) -> int:
        return hash((self.x, self.threshold, self.secret_len, self.tag, self.values.tobytes()))

    def __repr__(self) -> str:  # do not print share values
        return (
            f"Share(x={self.x}, threshold={self.threshold}, secret_len={self.secret_len}, "
            f"tag={self.tag.hex()[:8]}..., values=<{self.values.size} elements>)"
        )


def split(
    secret: bytes,
    threshold: int,
    num_shares: int | None = None,
    *,
    xs: Sequence[int] | None = None,
) -> list[Share]:
    """Split ``secret`` into shares, any ``threshold`` of which reconstruct it.

    Give exactly one of ``num_shares`` (x-coordinates ``1..num_shares``) or ``xs``
    (distinct ints in ``1..PRIME-1``). Shares get one fresh random 16-byte tag.

    Returns
    -------
    list of Share
        list of :class:`Share`, in the order of the x-coordinates.

    Raises
    ------
    InputError
        empty/non-bytes secret, bad threshold, both or neither of
        ``num_shares``/``xs``, bad x-coordinates.
    """
    if not isinstance(secret, (bytes, bytearray, memoryview)):
        raise InputError(f"secret must be bytes, got {type(secret).__name__}.")
    secret = bytes(secret)
    if not secret:
        raise InputError("secret must be at least one byte long.")
    if (num_shares is None) == (xs is None):
        raise InputError("give exactly one of num_shares or xs.")
    if num_shares is not None:
        n = _as_int(num_shares, "num_shares")
        if not 1 <= n < _P:
            raise InputError(f"num_shares must be in 1..{_P - 1}, got {n}.")
        x = np.arange(1, n + 1, dtype=np.int64)
    else:
        x = _check_xs(xs)
    vals = split_batch(np.frombuffer(secret, dtype=np.uint8).reshape(1, -1), threshold, x)
    tag = _secrets.token_bytes(TAG_BYTES)
    t = int(threshold)
    rows = vals[:, 0, :]  # (n, L) uint32, validated by construction
    rows.setflags(write=False)
    return [_trusted_share(xi, t, len(secret), tag, rows[i]) for i, xi in enumerate(x.tolist())]


def _trusted_share(
    x: int, threshold: int, secret_len: int, tag: bytes, values: np.ndarray
) -> Share:
    """Build a Share from values this module just produced (skips re-validation)."""
    share = object.__new__(Share)
    fields = dict(x=x, threshold=threshold, secret_len=secret_len, tag=tag, values=values)
    for name, value in fields.items():
        object.__setattr__(share, name, value)
    return share


def combine(shares: Sequence[Share], *, verify: bool = False) -> bytes:
    """Reconstruct the secret from at least ``threshold`` shares of one sharing.

    Uses the first ``threshold`` shares; with ``verify=True`` the surplus shares must lie
    on the same polynomials.

    Raises
    ------
    SecretSharingError
        too few shares, duplicate x, shares of different sharings
        (tag, threshold or length differ), or inconsistent shares.
    InputError
        an element that is not a :class:`Share`.
    """
    shares = list(shares)
    if not shares:
        raise SecretSharingError("no shares given; need at least the threshold.")
    if not all(isinstance(s, Share) for s in shares):
        raise InputError("combine() takes a sequence of Share objects.")
    first = shares[0]
    for s in shares[1:]:
        if s.tag != first.tag or s.threshold != first.threshold or s.secret_len != first.secret_len:
            raise SecretSharingError(
                "shares come from different sharings (tag, threshold or secret length differ); "
                "they cannot be combined."
            )
    t = first.threshold
    if len(shares) < t:
        raise SecretSharingError(
            f"need at least threshold={t} shares to reconstruct, got {len(shares)}."
        )
    xs = [s.x for s in shares]
    if len(set(xs)) != len(xs):
        raise SecretSharingError(
            "duplicate share x-coordinates; each party's share may be used once."
        )
    use = shares if verify else shares[:t]
    values = np.stack([s.values for s in use])[:, None, :]
    out = combine_batch([s.x for s in use], values, first.secret_len, threshold=t, verify=verify)
    secret: bytes = out[0].tobytes()
    return secret
