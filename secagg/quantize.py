"""Fixed-point encoding of float vectors into the ring Z_{2^b}, and back.

Secure aggregation sums integers modulo 2^b; federated learning sums floats. A
:class:`Quantizer` bridges the two so that the ring sum of up to ``num_clients``
encodings decodes to the float sum of the inputs, within ``count * resolution`` per
coordinate (plus float64 round-off when the scale is capped at 2^53, which only happens
for 64-bit rings with few clients, where ``resolution`` is below one ulp of the inputs):

1. check every coordinate against the per-coordinate ``bound`` (the encoder's range is
   ``[-bound, bound]``). Values outside it are never changed silently: with
   ``out_of_range="raise"`` (the default) encoding raises
   :class:`~secagg.errors.OutOfRangeError` saying how many values are out and the bound
   that would hold them; with ``out_of_range="clip"`` they are clipped to the bound and
   counted (``return_clipped=True``, and every aggregator reports the count as
   ``AggregationResult.clipped``). A coordinate-wise bound is what makes the no-overflow
   guarantee below hold for any input; when an L2 norm bound is what you need (as for
   differential privacy, where it is called ``clip_norm``), apply :func:`clip_l2` first,
2. scale by ``scale = q_max / bound`` where ``q_max = floor((2^(b-1) - 1) / num_clients)``,
   so that any sum of ``num_clients`` values lies in ``[-(2^(b-1) - 1), 2^(b-1) - 1]``
   and its two's-complement representative in Z_{2^b} is unique,
3. round to an integer with unbiased stochastic rounding (``E[round(v)] = v``), so the
   decoded sum is an unbiased estimate of the float sum (the technique used by
   Kairouz, Liu, Steinke, ICML 2021, and Bonawitz et al., CCS 2017, for fixed-point inputs),
4. store the integer modulo 2^b in a ``uint32`` (b <= 32) or ``uint64`` (b <= 64) array.

Decoding maps the ring sum back to the signed range and divides by ``scale``.

Words: ``bound`` is always a per-coordinate bound (``|x_j| <= bound``); ``clip_norm`` is
always an L2 norm (``||x||_2 <= clip_norm``, :mod:`secagg.dp`). ``clip=`` is the old name
of ``bound`` here and still works, with a :class:`DeprecationWarning`.
"""

from __future__ import annotations

import math
import secrets
import warnings
from dataclasses import dataclass, field
from typing import Literal, overload

import numpy as np
from numpy.typing import ArrayLike
from randomgen import AESCounter

from .errors import ConfigurationError, InputError, OutOfRangeError, SumOverflowError

__all__ = ["Quantizer", "clip_l2", "default_rng", "ring_dtype", "ring_sum", "secure_generator"]

#: Largest integer magnitude a float64 represents exactly; finer scales add nothing.
_FLOAT_EXACT = 2**53

#: What an encoder does with values beyond its bound: raise (default) or clip and count.
OUT_OF_RANGE_POLICIES = ("raise", "clip")

#: Values within this relative slack above the bound (4 ulp of float64) are float round-off,
#: e.g. of an L2 clip ``x * (c / ||x||)``; they are clipped to the bound and not counted.
_ROUNDOFF = 2.0**-50


def count_beyond(x: np.ndarray, bound: float) -> np.ndarray:
    """Count the values of each vector of ``x`` with ``|v| > bound`` (beyond float round-off).

    ``x`` is a finite float array whose last axis holds one vector; returns int64 counts of
    shape ``x.shape[:-1]`` (0-d for a 0-d or 1-d ``x``). Values within 4 ulp above ``bound``
    are float round-off (e.g. of an L2 clip) and are not counted. This is the check behind
    ``out_of_range`` in :class:`Quantizer` and the aggregators.
    """
    arr = np.asarray(x)
    limit = float(bound) * (1.0 + _ROUNDOFF)
    if arr.size == 0 or (float(arr.max()) <= limit and float(arr.min()) >= -limit):
        return np.zeros(arr.shape[:-1] if arr.ndim else (), dtype=np.int64)
    outside = np.abs(arr) > limit
    return np.asarray(outside.sum(axis=-1, dtype=np.int64) if arr.ndim else outside, dtype=np.int64)


def apply_bound(x: np.ndarray, bound: float, out_of_range: str) -> tuple[np.ndarray, np.ndarray]:
    """Apply an out-of-range policy to float vectors ``x`` (last axis = one vector).

    Returns ``(clipped copy of x, counts)`` with ``counts`` as in :func:`count_beyond`.
    Raises :class:`~secagg.errors.OutOfRangeError` when ``out_of_range="raise"`` and a
    value lies beyond ``bound``; ``"clip"`` clips to ``[-bound, bound]``.
    """
    check_out_of_range_policy(out_of_range)
    arr = _as_finite_float(x, "x")
    counts = count_beyond(arr, bound)
    if out_of_range == "raise" and counts.any():
        raise OutOfRangeError(int(counts.sum()), arr.size, float(np.abs(arr).max()), float(bound))
    return np.clip(arr, -bound, bound), counts


def check_out_of_range_policy(out_of_range: str) -> str:
    """Return ``out_of_range`` if it is ``"raise"`` or ``"clip"``; else raise ConfigurationError."""
    if out_of_range not in OUT_OF_RANGE_POLICIES:
        raise ConfigurationError(
            f"out_of_range must be 'raise' (refuse values beyond the bound) or 'clip' (clip them and count "
            f"them), got {out_of_range!r}"
        )
    return out_of_range


def default_rng(rng: np.random.Generator | None = None) -> np.random.Generator:
    """Return ``rng``, or a fresh generator driven by AES-128-CTR under a key from ``secrets``.

    The default generator is ``numpy.random.Generator(randomgen.AESCounter(key=k))`` with
    ``k`` 128 bits from :mod:`secrets`: a cryptographically secure stream (AES-NI where the
    CPU has it, as fast as PCG64 here), so stochastic rounding and DP noise drawn with it
    cannot be predicted from other outputs. Pass a seeded generator
    (``numpy.random.default_rng(seed)``) only for reproducible tests and simulations.
    """
    if rng is None:
        return secure_generator()
    if not isinstance(rng, np.random.Generator):
        raise InputError(
            f"rng must be a numpy.random.Generator (got {type(rng).__name__}); "
            "create one with numpy.random.default_rng(seed)"
        )
    return rng


def secure_generator() -> np.random.Generator:
    """A fresh ``numpy.random.Generator`` over AES-128-CTR keyed with 128 bits from ``secrets``."""
    return np.random.Generator(AESCounter(key=secrets.randbits(128)))


def ring_dtype(bits: int) -> np.dtype:
    """The unsigned dtype that holds Z_{2^bits}: uint32 for bits <= 32, else uint64."""
    if not isinstance(bits, (int, np.integer)) or not 2 <= bits <= 64:
        raise ConfigurationError(f"ring bits must be an integer in [2, 64], got {bits!r}")
    return np.dtype(np.uint32) if bits <= 32 else np.dtype(np.uint64)


def ring_sum(vectors: np.ndarray, bits: int, axis: int = 0) -> np.ndarray:
    """Sum ring elements modulo 2^bits along ``axis``.

    ``vectors`` is an unsigned array (any shape); the result has the ring dtype.
    NumPy's unsigned addition already wraps modulo 2^32 / 2^64; narrower rings are masked.
    """
    dt = ring_dtype(bits)
    arr = np.asarray(vectors)
    if arr.dtype != dt:
        raise InputError(f"ring vectors for {bits}-bit rings must have dtype {dt}, got {arr.dtype}")
    total: np.ndarray = arr.sum(axis=axis, dtype=dt)  # numpy types a reduction to a run-time dtype as Any
    return reduce_to_ring(total, bits)


def reduce_to_ring(arr: np.ndarray, bits: int) -> np.ndarray:
    """In place, ``arr &= 2^bits - 1`` when the ring is narrower than the unsigned dtype
    (NumPy's wrap-around already reduces mod ``2^32`` / ``2^64``); returns ``arr``."""
    if bits < arr.dtype.itemsize * 8:
        arr &= arr.dtype.type((1 << bits) - 1)
    return arr


def clip_l2(x: np.ndarray, max_norm: float) -> np.ndarray:
    """Scale ``x`` (shape ``(d,)``) down so its L2 norm is at most ``max_norm``.

    Returns a new float64 array; ``x`` is not modified. Vectors already inside the
    ball are returned unchanged. For per-row clipping with statistics see
    :func:`secagg.dp.clip_rows`.
    """
    if not np.isfinite(max_norm) or max_norm <= 0:
        raise InputError(f"max_norm must be a positive finite float, got {max_norm!r}")
    arr = _as_finite_float(x, "x")
    norm = float(np.linalg.norm(arr))
    if norm <= max_norm:
        return arr.copy()
    return arr * (max_norm / norm)


def _as_finite_float(x: ArrayLike, name: str) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be a numeric array: {exc}") from None
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} contains NaN or infinity; clean the input before encoding it")
    return arr


@dataclass(frozen=True, init=False)
class Quantizer:
    """Map floats in ``[-bound, bound]`` to Z_{2^bits} so sums of ``num_clients`` decode exactly.

    Parameters
    ----------
    bound:
        Per-coordinate bound (same unit as the inputs): the encoder's range is
        ``[-bound, bound]``. A larger bound costs resolution (``bound / q_max`` per step).
    num_clients:
        Largest number of encodings that will ever be summed. Sets the headroom.
    bits:
        Ring size in bits (2..64). 32 gives uint32 arrays, 33..64 give uint64 arrays.
    rounding:
        ``"stochastic"`` (default, unbiased) or ``"nearest"`` (deterministic, biased by at
        most half a step per summand).
    out_of_range:
        What :meth:`quantize` / :meth:`encode` do with a value ``|x| > bound``:
        ``"raise"`` (default) raises :class:`~secagg.errors.OutOfRangeError` (how many
        values, the largest magnitude) before encoding anything; ``"clip"`` clips it to
        ``+-bound`` and counts it (``return_clipped=True``). Values within 4 ulp above the
        bound are float round-off (e.g. of an L2 clip) and are clipped without counting.
        Not part of equality: quantizers that differ only here encode compatibly.
    clip:
        Deprecated old name of ``bound`` (a :class:`DeprecationWarning`); give one of the two.

    Raises
    ------
    ConfigurationError
        when ``num_clients`` summands cannot fit in ``bits`` bits with at least one
        quantization level per sign, or when a parameter is out of range.

    Examples
    --------
    >>> q = Quantizer(bound=1.0, num_clients=10)
    >>> total = q.encode([0.5, -0.25]) + q.encode([0.25, 0.5])
    >>> [round(float(v), 6) for v in q.decode(total, count=2)]
    [0.75, 0.25]
    >>> ring, clipped = Quantizer(1.0, 10, out_of_range="clip").encode([3.0, 0.5], return_clipped=True)
    >>> int(clipped)
    1
    """

    bound: float
    num_clients: int
    bits: int = 32
    rounding: str = "stochastic"
    out_of_range: str = field(default="raise", compare=False)
    q_max: int = field(init=False, repr=False)
    scale: float = field(init=False, repr=False)

    def __init__(
        self,
        bound: float | None = None,
        num_clients: int | None = None,
        bits: int = 32,
        rounding: str = "stochastic",
        out_of_range: str = "raise",
        *,
        clip: float | None = None,
    ) -> None:
        if clip is not None:
            if bound is not None:
                raise ConfigurationError("give bound= only: clip= is its deprecated old name")
            warnings.warn(
                "Quantizer(bound=...) is deprecated: the per-coordinate bound is now called bound= "
                "(clip_norm is the L2 norm of secagg.dp)",
                DeprecationWarning,
                stacklevel=2,
            )
            bound = clip
        if bound is None:
            raise ConfigurationError("Quantizer needs bound=, the largest |value| a coordinate may take")
        if num_clients is None:
            raise ConfigurationError("Quantizer needs num_clients=, the largest number of encodings summed")
        if isinstance(bound, bool) or not isinstance(bound, (int, float, np.floating, np.integer)) or not (
            np.isfinite(bound) and bound > 0
        ):
            raise ConfigurationError(f"bound must be a positive finite number, got {bound!r}")
        if isinstance(num_clients, bool) or not isinstance(num_clients, (int, np.integer)) or num_clients < 1:
            raise ConfigurationError(f"num_clients must be a positive integer, got {num_clients!r}")
        ring_dtype(bits)  # validates bits
        if rounding not in ("stochastic", "nearest"):
            raise ConfigurationError(f"rounding must be 'stochastic' or 'nearest', got {rounding!r}")
        check_out_of_range_policy(out_of_range)
        q_max = min(((1 << (int(bits) - 1)) - 1) // int(num_clients), _FLOAT_EXACT)
        if q_max < 1:
            raise ConfigurationError(
                f"a sum of {num_clients} values cannot fit in a {bits}-bit ring: "
                f"each summand would get less than one quantization level. Use more bits "
                f"(at least {int(num_clients).bit_length() + 2}) or fewer clients."
            )
        scale = q_max / float(bound)
        if not math.isfinite(scale) or not math.isfinite(float(bound) * int(num_clients)):
            raise ConfigurationError(
                f"bound={bound!r} with num_clients={num_clients} leaves float64's range: the scale "
                f"q_max / bound ({scale!r}) and the largest decoded sum bound * num_clients must be finite"
            )
        object.__setattr__(self, "bound", float(bound))
        object.__setattr__(self, "num_clients", int(num_clients))
        object.__setattr__(self, "bits", int(bits))
        object.__setattr__(self, "rounding", rounding)
        object.__setattr__(self, "out_of_range", out_of_range)
        object.__setattr__(self, "q_max", int(q_max))
        object.__setattr__(self, "scale", scale)

    @property
    def clip(self) -> float:
        """Deprecated alias of :attr:`bound` (a :class:`DeprecationWarning`)."""
        warnings.warn("Quantizer.clip is deprecated: read Quantizer.bound", DeprecationWarning, stacklevel=2)
        return self.bound

    # ------------------------------------------------------------------ properties
    @property
    def dtype(self) -> np.dtype:
        """The ring dtype: uint32 for bits <= 32, uint64 otherwise."""
        return ring_dtype(self.bits)

    @property
    def modulus(self) -> int:
        """The ring size 2^bits."""
        return 1 << self.bits

    @property
    def resolution(self) -> float:
        """Float value of one ring step (``bound / q_max``); per-summand error is below it."""
        return 1.0 / self.scale

    # ------------------------------------------------------------------ signed integers
    def count_out_of_range(self, x: ArrayLike) -> np.ndarray:
        """How many values of each vector lie beyond the bound (what ``"clip"`` would clip).

        Parameters
        ----------
        x:
            float array, any shape; the last axis holds one vector's coordinates.

        Returns
        -------
        numpy.ndarray
            int64 counts of shape ``x.shape[:-1]`` (a 0-d array for a 0-d or 1-d ``x``).

        Raises
        ------
        InputError
            for NaN, infinity or non-numeric input.
        """
        return self._count_outside(_as_finite_float(x, "x"))

    def _count_outside(self, arr: np.ndarray) -> np.ndarray:
        return count_beyond(arr, self.bound)

    @overload
    def quantize(
        self, x: ArrayLike, rng: np.random.Generator | None = None, *, return_clipped: Literal[False] = False
    ) -> np.ndarray: ...

    @overload
    def quantize(
        self, x: ArrayLike, rng: np.random.Generator | None = None, *, return_clipped: Literal[True]
    ) -> tuple[np.ndarray, np.ndarray]: ...

    @overload
    def quantize(
        self, x: ArrayLike, rng: np.random.Generator | None = None, *, return_clipped: bool
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]: ...

    def quantize(
        self, x: ArrayLike, rng: np.random.Generator | None = None, *, return_clipped: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Check, scale and round ``x`` to signed integers in ``[-q_max, q_max]`` (int64).

        Same shape as ``x``. This is the integer domain that Paillier packing and
        discrete DP noise work in; :meth:`encode` then reduces it into the ring.

        Parameters
        ----------
        x:
            float array, any shape (the last axis is one vector).
        rng:
            generator for stochastic rounding (default: AES-CTR keyed from ``secrets``).
        return_clipped:
            also return the number of values clipped to the bound per vector: int64 of
            shape ``x.shape[:-1]`` (always zeros under ``out_of_range="raise"``).

        Returns
        -------
        numpy.ndarray or (numpy.ndarray, numpy.ndarray)
            the int64 values, and the clipped counts when ``return_clipped``.

        Raises
        ------
        OutOfRangeError
            a value beyond ``bound`` under ``out_of_range="raise"`` (nothing is encoded).
        InputError
            NaN, infinity or non-numeric input.
        """
        arr = _as_finite_float(x, "x")
        clipped = self._count_outside(arr)
        if self.out_of_range == "raise" and clipped.any():
            raise OutOfRangeError(int(clipped.sum()), arr.size, float(np.abs(arr).max()), self.bound)
        scaled = np.asarray(np.clip(arr, -self.bound, self.bound))  # 0-d input: keep an array for out=
        scaled *= self.scale
        if self.rounding == "nearest":
            ints = np.rint(scaled, out=scaled)
        else:
            # floor(v + U), U ~ U[0, 1), rounds up with probability frac(v): unbiased
            ints = scaled
            ints += default_rng(rng).random(scaled.shape)
            np.floor(ints, out=ints)
        # float round-off at +-bound must never step outside the guaranteed range
        np.clip(ints, -self.q_max, self.q_max, out=ints)
        out = ints.astype(np.int64)
        return (out, clipped) if return_clipped else out

    def dequantize(self, total: ArrayLike, count: int) -> np.ndarray:
        """Turn a signed integer sum of ``count`` quantized vectors into floats (float64)."""
        count = self._check_count(count)
        ints = np.asarray(total)
        if ints.dtype.kind not in "iu":
            raise InputError(f"integer sums must have an integer dtype, got {ints.dtype}")
        ints = ints.astype(np.int64)
        bound = count * self.q_max
        # compare max and min separately: np.abs(int64 min) wraps to a negative number
        if ints.size and (int(ints.max()) > bound or int(ints.min()) < -bound):
            worst = max(int(ints.max()), -int(ints.min()))
            raise SumOverflowError(
                f"a sum of {count} encodings must lie in [-{bound}, {bound}], got "
                f"magnitude {worst}: the sum is corrupted or has more summands"
            )
        return ints.astype(np.float64) / self.scale

    # ------------------------------------------------------------------ ring
    @overload
    def encode(
        self, x: ArrayLike, rng: np.random.Generator | None = None, *, return_clipped: Literal[False] = False
    ) -> np.ndarray: ...

    @overload
    def encode(
        self, x: ArrayLike, rng: np.random.Generator | None = None, *, return_clipped: Literal[True]
    ) -> tuple[np.ndarray, np.ndarray]: ...

    @overload
    def encode(
        self, x: ArrayLike, rng: np.random.Generator | None = None, *, return_clipped: bool
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]: ...

    def encode(
        self, x: ArrayLike, rng: np.random.Generator | None = None, *, return_clipped: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Encode floats ``x`` (any shape) into the ring: returns a ``self.dtype`` array.

        With ``return_clipped=True`` returns ``(ring, clipped)`` where ``clipped`` is the
        int64 number of values clipped to the bound per vector (shape ``x.shape[:-1]``).
        Raises :class:`~secagg.errors.OutOfRangeError` for values beyond ``bound`` under
        ``out_of_range="raise"`` and :class:`InputError` for NaN/inf or non-numeric input.
        """
        if return_clipped:
            ints, clipped = self.quantize(x, rng, return_clipped=True)
            return self.to_ring(ints), clipped
        return self.to_ring(self.quantize(x, rng))

    def to_ring(self, ints: ArrayLike) -> np.ndarray:
        """Reduce signed integers (int64) modulo 2^bits into the ring dtype."""
        ints = np.asarray(ints)
        if ints.dtype.kind not in "iu":
            raise InputError(f"ring values must be integers, got dtype {ints.dtype}")
        dt = self.dtype
        out = ints.astype(np.int64).astype(np.uint64) if dt == np.uint64 else ints.astype(np.int64).astype(dt)
        return reduce_to_ring(out, self.bits)

    def to_signed(self, total: ArrayLike) -> np.ndarray:
        """Map ring elements to their two's-complement representatives as int64."""
        arr = np.asarray(total)
        if arr.dtype.kind not in "iu":
            raise InputError(f"ring sums must be unsigned integers, got dtype {arr.dtype}")
        signed_view = {8: np.int8, 16: np.int16, 32: np.int32, 64: np.int64}.get(self.bits)
        if signed_view is not None and arr.dtype.itemsize * 8 == self.bits and arr.dtype.kind == "u":
            return arr.view(signed_view).astype(np.int64)  # two's complement by reinterpretation
        if self.bits == 64:
            return arr.astype(np.uint64).view(np.int64)
        half = 1 << (self.bits - 1)
        return ((arr.astype(np.int64) + half) & ((1 << self.bits) - 1)) - half

    def decode(self, total: ArrayLike, count: int) -> np.ndarray:
        """Decode the ring sum of ``count`` encodings into the float sum (float64).

        Raises :class:`SumOverflowError` if ``count`` exceeds ``num_clients`` or the
        value is outside what ``count`` summands can produce (a corrupted sum).
        """
        return self.dequantize(self.to_signed(total), count)

    def _check_count(self, count: object) -> int:
        if not isinstance(count, (int, np.integer)) or count < 0:
            raise InputError(f"count must be a non-negative integer, got {count!r}")
        if count > self.num_clients:
            raise SumOverflowError(
                f"this quantizer leaves headroom for {self.num_clients} summands, not {count}; "
                f"build it with num_clients >= {count}"
            )
        return int(count)
