"""Integer-valued noise for differential privacy: discrete Gaussian, discrete Laplace, Skellam.

Implements the samplers of Canonne, Kamath and Steinke, "The Discrete Gaussian for
Differential Privacy" (NeurIPS 2020, arXiv:2004.00010), Algorithms 1-3, vectorized as
*batched rejection sampling* in numpy (a Python loop runs over rejection rounds, never
over samples), the Skellam distribution of Agarwal, Kairouz and Liu (NeurIPS 2021), and
the floating-point-safe continuous mechanisms of :func:`gaussian_mechanism` /
:func:`laplace_mechanism`, which add *integer* noise on a fixed-point grid instead of
float noise (the defence against Mironov, "On Significance of the Least Significant
Bits for Differential Privacy", CCS 2012).

Two paths for the discrete Gaussian and Laplace
-----------------------------------------------
``method="exact"``
    Every Bernoulli trial is decided in exact integer arithmetic, as in the paper:
    ``Bernoulli(n/d)`` is ``integers(0, d) < n`` and ``Bernoulli(exp(-n/d))`` is
    Algorithm 1 (with the integer part of ``n/d`` peeled off as repeated
    ``Bernoulli(exp(-1))``). The output distribution is exactly the discrete Gaussian
    with variance parameter ``sigma^2`` rounded to the nearest rational with
    denominator at most 1024 (``Fraction.limit_denominator``; for sigma = 10, 2.5,
    0.5 ... this is sigma^2 itself). Intermediate products are int64 when they
    fit (sigma up to about 1000) and Python integers (object arrays, ~20x slower)
    beyond.

``method="fast"`` (the default)
    The same algorithm with the same integer skeleton (the uniform ``U`` in
    ``[0, t)``, the sign bit and the final integer are exact), but the three
    Bernoulli decisions with irrational success probability use a float64 uniform
    ``u`` (a multiple of 2^-53) compared with the float64 value of the probability,
    and the geometric count of Algorithm 2 is ``floor(E)`` for a standard
    exponential ``E`` (``P(floor(E) = v) = e^-v (1 - e^-1)`` exactly).

    *Total-variation bound.* Couple the fast and exact samplers on the same random
    stream. They can only disagree when one float decision differs from the exact
    one, i.e. when ``u`` falls between ``p`` and its float64 evaluation ``p_hat``, or
    when ``E`` lies within float rounding of an integer. For ``p = exp(-x)`` with
    ``x`` computed to relative error ``k * 2^-53`` (k <= 4 here), ``|p - p_hat| <=
    (k x e^-x + 1) 2^-53 <= 2.5 * 2^-53``; the uniform grid adds ``2^-53``; and
    ``P(E within 2^-52 * v of an integer v) <= sum_v 2^-51 v e^-v < 2^-50``. A
    candidate uses at most 3 such decisions plus one exponential, and the expected
    number of candidates per output is below 4 for every sigma >= 0.5 (the
    acceptance rate of Algorithm 3 is at least ``1 - e^-1`` times that of
    Algorithm 2, CKS Sec. 5), so the TV distance per sample is at most
    ``4 * (3 * 3.5 * 2^-53 + 2^-50) < 1e-14``, far below the 1e-12 this library
    promises, *independently of sigma* because the large integers (``U``, the
    output) are never rounded. It is 10-20x faster than the exact path.

Randomness
----------
Every sampler takes ``rng=`` (a ``numpy.random.Generator``). By default
:func:`secagg.quantize.default_rng` creates a generator over AES-128-CTR
(``randomgen.AESCounter``) keyed with 128 bits from :mod:`secrets`: a cryptographically
secure stream, so nobody can predict the noise from other outputs of the generator,
at the speed of PCG64 (AES-NI). Pass a seeded generator only for reproducible tests.
:func:`secure_generator` returns such a CSPRNG-backed generator explicitly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from fractions import Fraction
from typing import Any, SupportsInt, TypeAlias

import numpy as np
from numpy.typing import ArrayLike

from ..errors import InputError
from ..quantize import default_rng, secure_generator

__all__ = [
    "discrete_gaussian",
    "discrete_laplace",
    "skellam",
    "gaussian_mechanism",
    "laplace_mechanism",
    "secure_generator",
    "discrete_gaussian_pmf",
    "discrete_laplace_pmf",
    "DEFAULT_METHOD",
]

#: default path of :func:`discrete_gaussian` and :func:`discrete_laplace`
DEFAULT_METHOD = "fast"

_MAX_DENOMINATOR = 1024
_INT64_SAFE = 1 << 62
_SQRT_SAFE = 3_000_000_000  # a^2 < 2^63 for |a| below this
_SKELLAM_MAX_VARIANCE = 2.0**62  # Poisson means variance/2 <= 2^61, inside numpy's limit (~2^63)


# ---------------------------------------------------------------------------- helpers



#: an output shape: an int or a sequence of ints (numpy integers accepted)
Size: TypeAlias = "int | np.integer[Any] | Iterable[SupportsInt]"


def _check_size(size: Size) -> tuple[int, ...]:
    if isinstance(size, (int, np.integer)):
        size = (int(size),)
    try:
        shape = tuple(int(s) for s in size)
    except TypeError:
        raise InputError(f"size must be an int or a tuple of ints, got {size!r}") from None
    if any(s < 0 for s in shape):
        raise InputError(f"size must be non-negative, got {shape}")
    return shape


def _check_positive(value: float, name: str, minimum: float = 0.0) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a positive finite number, got {value!r}") from None
    if not math.isfinite(v) or v <= minimum:
        raise InputError(f"{name} must be a finite number > {minimum}, got {value!r}")
    return v


def _check_method(method: str) -> str:
    if method not in ("fast", "exact"):
        raise InputError(f"method must be 'fast' or 'exact', got {method!r}")
    return method


def _sampler_call(size: Size, rng: np.random.Generator | None,
                  method: str) -> tuple[tuple[int, ...], np.random.Generator, bool, int]:
    """A sampler's checked ``(shape, generator, exact method?, number of values)``."""
    shape = _check_size(size)
    gen = default_rng(rng)
    exact = _check_method(method) == "exact"
    return shape, gen, exact, int(np.prod(shape, dtype=np.int64))


# ---------------------------------------------------------------------------- exact Bernoullis
def _bern_frac(num: np.ndarray, den: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exact Bernoulli(num/den) for int64 arrays with 0 <= num <= den < 2^62 (or object ints)."""
    if num.dtype == object:
        return np.array([_uniform_below(int(d), rng) < int(n) for n, d in zip(num, den)], dtype=bool)
    return rng.integers(0, den, dtype=np.int64) < num


def _uniform_below(d: int, rng: np.random.Generator) -> int:
    """Uniform integer in [0, d) for a Python int d of any size, from ``rng``'s bits (exact)."""
    nbits = max(1, (d - 1).bit_length())
    nbytes = (nbits + 7) // 8
    while True:
        v = int.from_bytes(rng.bytes(nbytes), "little") & ((1 << nbits) - 1)
        if v < d:
            return v


def _bern_exp_neg_le1(num: np.ndarray, den: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exact Bernoulli(exp(-num/den)) for 0 <= num <= den (CKS Algorithm 1, gamma in [0, 1]).

    K = 1; while Bernoulli(gamma / K): K += 1; return K odd. Bernoulli(gamma/K) is the
    product of independent Bernoulli(gamma) and Bernoulli(1/K), which avoids forming
    den * K (no overflow).
    """
    m = num.shape[0]
    k = np.ones(m, dtype=np.int64)
    running = np.arange(m)
    while running.size:
        a = _bern_frac(num[running], den[running], rng)
        a &= rng.integers(0, k[running], dtype=np.int64) == 0
        k[running[a]] += 1
        running = running[a]
    odd: np.ndarray = (k & 1) == 1
    return odd


def _survive_whole(whole: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exact Bernoulli(exp(-whole)) for int64 ``whole >= 0``: ``whole`` Bernoulli(e^-1)
    successes in a row (the integer part of CKS Algorithm 1), vectorized over entries."""
    alive = np.ones(whole.shape[0], dtype=bool)
    ones = np.ones(whole.shape[0], dtype=np.int64)
    j = 0
    while True:
        idx = np.flatnonzero(alive & (whole > j))
        if idx.size == 0:
            return alive
        alive[idx] = _bern_exp_neg_le1(ones[idx], ones[idx], rng)
        j += 1


def _bern_exp_neg(num: np.ndarray, den: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exact Bernoulli(exp(-num/den)) for num >= 0, den > 0 (CKS Algorithm 1, any gamma >= 0)."""
    whole = num // den
    rem = num - whole * den
    alive = _survive_whole(whole, rng)
    idx = np.flatnonzero(alive)
    if idx.size:
        alive[idx] = _bern_exp_neg_le1(rem[idx], den[idx], rng)
    return alive


def _geometric_exp_neg1_exact(m: int, rng: np.random.Generator) -> np.ndarray:
    """Number of successes of Bernoulli(e^-1) before the first failure (exact)."""
    v = np.zeros(m, dtype=np.int64)
    running = np.arange(m)
    ones = np.ones(m, dtype=np.int64)
    while running.size:
        ok = _bern_exp_neg_le1(ones[: running.size], ones[: running.size], rng)
        v[running[ok]] += 1
        running = running[ok]
    return v


# ---------------------------------------------------------------------------- discrete Laplace
def _laplace_candidates(t: int, m: int, rng: np.random.Generator, exact: bool) -> np.ndarray:
    """One batch of CKS Algorithm 2 with integer scale t (s = 1); returns accepted int64 samples.

    U ~ Uniform{0..t-1}; D ~ Bernoulli(exp(-U/t)), reject if 0; V ~ Geometric(1 - e^-1);
    X = U + t V; B ~ Bernoulli(1/2); reject if B = 1 and X = 0; return (1 - 2B) X.
    Output pmf is proportional to exp(-|x| / t).
    """
    # one uniform on [0, 2t) gives U = v mod t and the sign bit B = [v >= t], independent
    v = rng.integers(0, 2 * t, size=m, dtype=np.int64)
    b = v >= t
    u = v - t * b
    if exact:
        keep = _bern_exp_neg(u, np.full(m, t, dtype=np.int64), rng)
    else:
        keep = rng.random(m) < np.exp(u * (-1.0 / t))
    u, b = u[keep], b[keep]
    if exact:
        geo = _geometric_exp_neg1_exact(u.size, rng)
    else:
        geo = rng.standard_exponential(u.size).astype(np.int64)  # floor(E) for E >= 0
    x = u + t * geo
    ok = ~(b & (x == 0))
    x, b = x[ok], b[ok]
    signed: np.ndarray = np.where(b, -x, x)
    return signed


def _discrete_laplace_int_scale(t: int, n: int, rng: np.random.Generator, exact: bool) -> np.ndarray:
    out = np.empty(n, dtype=np.int64)
    filled = 0
    # P(accept) >= (1 - e^-1) * (1 - 1/(2t+...)) >= 0.3
    while filled < n:
        need = n - filled
        batch = _laplace_candidates(t, int(need * 1.8) + 16, rng, exact)
        take = min(need, batch.size)
        out[filled : filled + take] = batch[:take]
        filled += take
    return out


def discrete_laplace(
    scale: float, size: Size, rng: np.random.Generator | None = None, *, method: str = DEFAULT_METHOD
) -> np.ndarray:
    """Samples of the discrete Laplace distribution ``P(x) ∝ exp(-|x| / scale)`` on Z.

    Parameters
    ----------
    scale:
        positive float (in integer units). It is first rounded to the nearest rational
        ``t/s`` with ``s <= 1024`` (exact for integers and simple fractions), and CKS
        Algorithm 2 is run for it (``U + t V`` then ``floor(. / s)`` as in the paper).
    size:
        int or tuple: output shape.
    rng:
        optional ``numpy.random.Generator`` (default: OS-entropy seeded, see module doc).
    method:
        ``"fast"`` (default, TV < 1e-14 per sample, see module doc) or ``"exact"``.

    Returns
    -------
    int64 array of shape ``size``. Variance ``2 e^{-1/scale} / (1 - e^{-1/scale})^2``.

    Raises
    ------
    InputError
        for a non-positive/non-finite scale, a bad size, method or rng.
    """
    scale = _check_positive(scale, "scale")
    shape, gen, exact, n = _sampler_call(size, rng, method)
    if n == 0:
        return np.zeros(shape, dtype=np.int64)
    frac = Fraction(scale).limit_denominator(_MAX_DENOMINATOR)
    t, s = frac.numerator, frac.denominator
    if t >= _INT64_SAFE:
        raise InputError(f"scale must be below 2^62, got {scale!r}")
    if t == 0:
        raise InputError(
            f"scale {scale!r} is below 1/{2 * _MAX_DENOMINATOR} and rounds to 0 as a rational with "
            f"denominator <= {_MAX_DENOMINATOR}; such a distribution is the point mass at 0"
        )
    if s == 1:
        return _discrete_laplace_int_scale(t, n, gen, exact).reshape(shape)
    # CKS Algorithm 2 with s > 1: X = U + t V has pmf ∝ exp(-x/t) on N; Y = floor(X / s)
    # then has pmf ∝ exp(-y s/t) = exp(-|y| / scale); sign as before.
    out = np.empty(n, dtype=np.int64)
    filled = 0
    while filled < n:
        m = int((n - filled) * 1.8) + 16
        u = gen.integers(0, t, size=m, dtype=np.int64)
        if exact:
            u = u[_bern_exp_neg(u, np.full(m, t, dtype=np.int64), gen)]
            v = _geometric_exp_neg1_exact(u.size, gen)
        else:
            u = u[gen.random(m) < np.exp(-u / t)]
            v = np.floor(gen.standard_exponential(u.size)).astype(np.int64)
        y = (u + t * v) // s
        b = gen.integers(0, 2, size=y.size, dtype=np.int8).astype(bool)
        ok = ~(b & (y == 0))
        y = np.where(b[ok], -y[ok], y[ok])
        take = min(n - filled, y.size)
        out[filled : filled + take] = y[:take]
        filled += take
    return out.reshape(shape)


# ---------------------------------------------------------------------------- discrete Gaussian
def _dg_fast(sigma: float, n: int, rng: np.random.Generator) -> np.ndarray:
    t = int(math.floor(sigma)) + 1
    sigma2 = sigma * sigma
    shift = sigma2 / t
    out = np.empty(n, dtype=np.int64)
    filled = 0
    while filled < n:
        need = n - filled
        y = _laplace_candidates(t, int(need * 2.2) + 32, rng, exact=False)
        # (|y| - sigma^2/t)^2 / (2 sigma^2), divided by sigma first: sigma^2 may underflow
        # (to 0 or a subnormal) for tiny sigma, where 1/(2 sigma^2) would give inf * 0 = NaN
        # and reject every candidate forever; |y|/sigma only overflows to +inf (rejected)
        dev = np.abs(y) - shift
        with np.errstate(over="ignore"):
            dev /= sigma
            dev *= dev
        dev *= -0.5
        y = y[rng.random(y.size) < np.exp(dev)]
        take = min(need, y.size)
        out[filled : filled + take] = y[:take]
        filled += take
    return out


def _dg_exact(sigma2: Fraction, n: int, rng: np.random.Generator) -> np.ndarray:
    p, q = sigma2.numerator, sigma2.denominator
    t = math.isqrt(p // q) + 1
    den = 2 * p * q * t * t
    big = den >= _INT64_SAFE
    out = np.empty(n, dtype=np.int64)
    filled = 0
    while filled < n:
        need = n - filled
        y = _laplace_candidates(t, int(need * 2.6) + 32, rng, exact=True)
        # gamma = (|Y| - sigma^2/t)^2 / (2 sigma^2) = (|Y| q t - p)^2 / (2 p q t^2)
        a_abs = np.abs(np.abs(y) * (q * t) - p) if not big else None
        if a_abs is None or (a_abs.size and int(a_abs.max()) >= _SQRT_SAFE):  # None: big
            a = np.array([abs(abs(int(v)) * q * t - p) for v in y], dtype=object)
            num = a * a
            dens = np.full(y.size, den, dtype=object)
            whole = num // dens
            rem = num - whole * dens
            acc = _bern_exp_neg_obj(whole, rem, den, rng)
        else:
            num = a_abs * a_abs
            acc = _bern_exp_neg(num, np.full(y.size, den, dtype=np.int64), rng)
        y = y[acc]
        take = min(need, y.size)
        out[filled : filled + take] = y[:take]
        filled += take
    return out


def _bern_exp_neg_obj(whole: np.ndarray, rem: np.ndarray, den: int, rng: np.random.Generator) -> np.ndarray:
    """Exact Bernoulli(exp(-(whole + rem/den))) with Python-int remainders (large sigma)."""
    # capping at 2^40 changes nothing: surviving even 41 Bernoulli(e^-1) draws has probability e^-41
    alive = _survive_whole(np.array([min(int(v), 1 << 40) for v in whole], dtype=np.int64), rng)
    for i in np.flatnonzero(alive):
        k = 1
        while _uniform_below(den, rng) < int(rem[i]) and int(rng.integers(0, k)) == 0:
            k += 1
        alive[i] = (k & 1) == 1
    return alive


def discrete_gaussian(
    sigma: float, size: Size, rng: np.random.Generator | None = None, *, method: str = DEFAULT_METHOD
) -> np.ndarray:
    """Samples of the discrete Gaussian ``N_Z(0, sigma^2)``: ``P(x) ∝ exp(-x^2 / (2 sigma^2))``.

    CKS 2020 Algorithm 3: propose ``Y ~ Lap_Z(t)`` with ``t = floor(sigma) + 1``, accept
    with probability ``exp(-(|Y| - sigma^2/t)^2 / (2 sigma^2))``; batched over numpy
    arrays.

    Parameters
    ----------
    sigma:
        positive float, the scale parameter (the variance is slightly below ``sigma^2``
        for ``sigma < 1`` and equal to it within 1e-10 relative for ``sigma >= 1``).
    size:
        int or tuple: output shape.
    rng:
        optional ``numpy.random.Generator``.
    method:
        ``"fast"`` (default; TV distance to exact < 1e-14 per sample, see module
        docstring) or ``"exact"`` (integer arithmetic, exact for ``sigma^2`` rounded to a
        rational with denominator <= 1024).

    Returns
    -------
    int64 array of shape ``size``.

    Raises
    ------
    InputError
        for a non-positive or non-finite sigma, a bad size, method or rng.
    """
    sigma = _check_positive(sigma, "sigma")
    shape, gen, exact, n = _sampler_call(size, rng, method)
    if n == 0:
        return np.zeros(shape, dtype=np.int64)
    if sigma > 2.0**40:
        raise InputError(f"sigma must be at most 2^40 for int64 outputs, got {sigma!r}")
    if exact:
        s2 = Fraction(sigma * sigma).limit_denominator(_MAX_DENOMINATOR)
        if s2 <= 0:
            raise InputError(f"sigma is too small to represent: {sigma!r}")
        return _dg_exact(s2, n, gen).reshape(shape)
    return _dg_fast(sigma, n, gen).reshape(shape)


# ---------------------------------------------------------------------------- Skellam
def skellam(variance: float, size: Size, rng: np.random.Generator | None = None) -> np.ndarray:
    """Symmetric Skellam noise: ``Poisson(variance/2) - Poisson(variance/2)`` (int64).

    Mean 0, variance ``variance``. Closed under summation: the sum of n independent
    ``skellam(v_i)`` is ``skellam(sum v_i)``, which is why Agarwal, Kairouz, Liu (NeurIPS
    2021) use it for distributed DP. Uses numpy's Poisson sampler (PTRS for large means,
    float-based; the Mironov attack does not apply because outputs are integers added to
    integers).

    Raises :class:`InputError` for a non-positive variance, one above 2^62, or a bad size.
    """
    variance = _check_positive(variance, "variance")
    if variance > _SKELLAM_MAX_VARIANCE:
        raise InputError(f"variance must be at most 2^62 (numpy's Poisson sampler limit), got {variance!r}")
    shape = _check_size(size)
    gen = default_rng(rng)
    lam = variance / 2.0
    return gen.poisson(lam, shape).astype(np.int64) - gen.poisson(lam, shape).astype(np.int64)


# ---------------------------------------------------------------------------- pmfs (for tests)
def discrete_gaussian_pmf(values: ArrayLike, sigma: float) -> np.ndarray:
    """Exact pmf of ``N_Z(0, sigma^2)`` at integer ``values`` (float64)."""
    sigma = _check_positive(sigma, "sigma")
    k = int(math.ceil(sigma * 40)) + 2
    support = np.arange(-k, k + 1)
    norm = np.exp(-(support.astype(np.float64) ** 2) / (2 * sigma * sigma)).sum()
    v = np.asarray(values, dtype=np.float64)
    pmf: np.ndarray = np.exp(-(v**2) / (2 * sigma * sigma)) / norm
    return pmf


def discrete_laplace_pmf(values: ArrayLike, scale: float) -> np.ndarray:
    """Exact pmf of ``Lap_Z(scale)`` at integer ``values``: ``(1-r)/(1+r) r^|x|``, ``r = e^{-1/scale}``."""
    scale = _check_positive(scale, "scale")
    r = math.exp(-1.0 / scale)
    v = np.abs(np.asarray(values, dtype=np.float64))
    return (1 - r) / (1 + r) * np.exp(-v / scale)


# ---------------------------------------------------------------------------- safe continuous mechanisms
def _grid(values: ArrayLike, sigma_like: float, resolution: float | None) -> tuple[np.ndarray, float]:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"values must be a numeric array: {exc}") from None
    if not np.all(np.isfinite(arr)):
        raise InputError("values contain NaN or infinity")
    if resolution is None:
        # a power of two about 2^-12 of the noise scale: noise is >= 4096 grid steps wide
        resolution = 2.0 ** math.floor(math.log2(sigma_like) - 12)
    res = _check_positive(resolution, "resolution")
    ints = np.rint(arr / res)
    if ints.size and np.abs(ints).max() >= 2.0**52:
        raise InputError(
            f"values / resolution exceed 2^52 (max {np.abs(arr).max()!r} at resolution {res!r}); "
            "use a coarser resolution"
        )
    return ints.astype(np.int64), res


def gaussian_mechanism(
    values: ArrayLike, sigma: float, *, resolution: float | None = None, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Gaussian mechanism safe against Mironov's floating-point attack (float64 output).

    ``values`` (any shape, float) are rounded to the grid ``resolution * Z``; integer
    discrete Gaussian noise with scale ``sigma / resolution`` is added *on the grid*; the
    result is scaled back. Every output is an exact multiple of ``resolution``, so its
    low-order bits carry no information about the input (the attack reads the irregular
    set of floats that ``x + float_noise`` can produce). Rounding moves each coordinate by
    at most ``resolution / 2``, so the L2 sensitivity grows by at most
    ``resolution * sqrt(d) / 2``: account for it (the default resolution is
    ``2^floor(log2(sigma) - 12)``, i.e. at most sigma/4096).
    """
    sigma = _check_positive(sigma, "sigma")
    ints, res = _grid(values, sigma, resolution)
    noise = discrete_gaussian(sigma / res, ints.shape, rng)
    noisy: np.ndarray = (ints + noise).astype(np.float64) * res
    return noisy


def laplace_mechanism(
    values: ArrayLike, scale: float, *, resolution: float | None = None, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Laplace mechanism on a fixed-point grid (discrete Laplace noise); see :func:`gaussian_mechanism`.

    L1 sensitivity grows by at most ``resolution * d / 2`` from the rounding.
    """
    scale = _check_positive(scale, "scale")
    ints, res = _grid(values, scale, resolution)
    noise = discrete_laplace(scale / res, ints.shape, rng)
    noisy: np.ndarray = (ints + noise).astype(np.float64) * res
    return noisy
