"""PLDs of integer noise: discrete Gaussian, sums of discrete Gaussians (DDG) and Skellam.

The mechanism adds independent integer noise ``Y`` (i.i.d. coordinates, PMF ``p``) to
an integer vector query whose change ``Delta`` between neighbours satisfies
``||Delta||_2 <= l2``, ``||Delta||_1 <= l1`` (and has ``dim`` coordinates). Noises:

* discrete Gaussian ``N_Z(0, s^2)``: ``p(z) = e^{-z^2/2s^2} / sum_w e^{-w^2/2s^2}``
  (Canonne, Kamath, Steinke, NeurIPS 2020);
* the sum of ``n`` independent ``N_Z(0, s^2)`` (the distributed discrete Gaussian of
  Kairouz, Liu, Steinke, ICML 2021): *not* a discrete Gaussian; its exact PMF is the
  ``n``-fold convolution;
* Skellam of variance ``mu``, ``Poisson(mu/2) - Poisson(mu/2)``, ``p(z) = e^{-mu}
  I_|z|(mu)`` (Agarwal, Kairouz, Liu, NeurIPS 2021).

Scalar case (one coordinate can change; exact)
    All three PMFs are log-concave (the discrete Gaussian and Poisson are; sums of
    independent discrete log-concave variables are, Hoggar 1974), so ``p(z)/p(z-K)`` is
    monotone in ``z`` and, by the Neyman-Pearson lemma, the pair ``(p, p(.-K))`` is
    dominated by ``(p, p(.-K'))`` for ``K <= K'`` (every level-``alpha`` most powerful
    test is a threshold test and ``Y + K'`` is stochastically larger). The worst shift
    is ``K = floor(min(l2, l1))``; its PLD is built from the exact PMF (computed by
    direct convolution of positive terms, relative error ~1e-15), truncated where the
    neglected mass is below ``1e-18`` (charged to delta, i.e. put at ``+inf``), and
    discretized by connect-the-dots from the exact profile of its atoms.

Vector case (a provable bound)
    Only the ``k = min(dim, floor(l1), floor(l2^2))`` coordinates where ``Delta`` is
    non-zero matter (identical independent factors cancel). Compare ``p`` with the PMF
    ``q`` of ``R(G)``, where ``G ~ N(0, s1^2)`` and ``R(u)`` draws a discrete Gaussian
    of parameter ``s2`` centred at ``u`` (any ``s1^2 + s2^2 = var``). ``z + R(G)`` is a
    post-processing of the *continuous* Gaussian mechanism, and the continuous Gaussian
    is rotation invariant: for every ``Delta`` the pair of products of ``q`` is
    dominated by ``(N(0,1), N(mu,1))`` with ``mu = l2 / s1``. If
    ``e^{-b'} q <= p <= e^{a'} q`` coordinate-wise on a set whose complement has
    probability at most ``beta``, then for every real ``eps``::

        delta(eps) <= beta + e^a G_mu(eps - a - b),   a = k a',  b = k b'

    (``P(S) - e^eps P'(S) <= beta + e^a [Q(S) - e^{eps-a-b} Q'(S)]``). The ratio bounds
    come from the Poisson summation formula ``sum_z phi_t(z - u) = 1 + 2 sum_m
    e^{-2 pi^2 t^2 m^2} cos(2 pi m u) in [1 - e(t), 1 + e(t)]``, ``e(t) = 2 sum_{m>=1}
    e^{-2 pi^2 t^2 m^2}``:

    * ``q(z) / phi_var(z) in [1/(1 + e(s2)), 1/(1 - e(s2))]`` for all ``z``;
    * discrete Gaussian sums, by induction with
      ``phi_{s sqrt(j-1)}(x) phi_s(z-x) = phi_{s sqrt j}(z) phi_{t_j}(x - c z)``,
      ``t_j = s sqrt((j-1)/j)``: ``p(z)/phi_{s sqrt n}(z) in theta(s)^{-n} [prod_j
      (1 - e(t_j)), prod_j (1 + e(t_j))]`` for all ``z`` (no tail: ``beta = 0``). The
      terms ``e^{-2 pi^2 s^2 (j-1)/j}`` are those of KLS 2021's ``tau``.
    * Skellam, on ``|z| <= T``: exponential tilting at the saddle point ``theta =
      asinh(z/mu)`` (Daniels 1954) gives exactly ``log(p(z)/phi_{sqrt mu}(z)) = mu F(z/mu)
      - log(1 + (z/mu)^2)/4 + log(p_theta(z) sqrt(2 pi V))``, ``F(u) = sqrt(1+u^2) - 1 -
      u asinh u + u^2/2 in [0, u^4/24]``, ``V = mu sqrt(1 + (z/mu)^2)``; the last term,
      the local density of a difference of Poissons at its mean, is within ``0.16/V +
      0.29 z^2/V^3`` (plus terms exponentially small in ``V``) of 0, by elementary bounds
      on its Fourier integral (:func:`_tilted_local_error`); ``beta = k P(|Y| > T)`` by
      the Chernoff bound ``P(Y >= t) <= exp(-(t asinh(t/mu) - sqrt(t^2 + mu^2) + mu))``.
      For ``mu <= 10^4`` the extremes of ``log(p/phi)`` on the window are also taken from
      the exact PMF (:func:`skellam_numeric_log_ratio_bounds`), whichever is tighter.

    ``s2`` (and ``T``) are chosen among a few candidates to minimise the epsilon of one
    release at ``delta = 1e-5``; any choice is valid. For large noise (``s >= 2``, as in
    :class:`~secagg.dp.distributed.DistributedDP`) ``a, b, beta`` are below ``1e-30``
    and the bound is the continuous Gaussian with ``mu = l2/sqrt(var - s2^2)``. For
    small per-client ``s`` (below about 1) the factors ``e(t_j)`` grow with ``n`` and
    the vector bound becomes loose; the scalar case stays exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
import numpy as np
from numpy.typing import NDArray

from ..errors import ConfigurationError
from ._pld import GaussianCore, PldPair, Pmf, from_atoms

__all__ = [
    "DiscreteNoise",
    "core_for",
    "poisson_summation_error",
    "scalar_pmf",
    "skellam_log_ratio_bounds",
    "skellam_numeric_log_ratio_bounds",
    "sum_dg_log_ratio_bounds",
    "vector_core",
]

FloatArray = NDArray[np.float64]

_TRUNCATION = 1e-18  # mass of the exact PMFs left out (charged to delta)
_DELTA_REF = 1e-5  # the parameters of the vector bound minimise epsilon at this delta
_MAX_SCALAR_SUPPORT = 40_000
_MAX_SKELLAM_EXACT = 10_000.0
_S2_CANDIDATES = (0.3, 0.4, 0.5, 0.6, 0.75, 0.9, 1.1, 1.35, 1.7, 2.1, 2.6, 3.2)


# ---------------------------------------------------------------------------- Poisson summation
def poisson_summation_error(t: float | FloatArray) -> FloatArray:
    """``e(t) = 2 sum_{m >= 1} exp(-2 pi^2 t^2 m^2)`` (vectorized; ``inf`` for ``t <= 0``).

    ``sum_z phi_t(z - u)`` lies in ``[1 - e(t), 1 + e(t)]`` for every real ``u``
    (Poisson summation), and ``theta(t) = sum_z phi_t(z) = 1 + e(t)``.
    """
    arr = np.atleast_1d(np.asarray(t, dtype=np.float64))
    out = np.full(arr.shape, np.inf)
    ok = arr > 0
    c = 2.0 * math.pi**2 * arr[ok] ** 2
    if c.size:
        # terms up to M (e^{-c M^2} below 1e-320 or M = 64); the rest is below
        # term_M / (1 - e^{-c}) (the tail of e^{-c m^2} is dominated by a geometric series)
        big_m = int(min(64, max(2, math.ceil(math.sqrt(740.0 / float(c.min()))))))
        m = np.arange(1, big_m + 1, dtype=np.float64)
        terms = np.exp(-np.outer(c, m * m))
        rest = terms[:, -1] / -np.expm1(-c)
        out[ok] = 2.0 * (terms.sum(axis=1) + rest)
    return out


def sum_dg_log_ratio_bounds(s: float, n: int) -> tuple[float, float]:
    """``(lo, hi)`` with ``lo <= log(p(z) / phi_{s sqrt n}(z)) <= hi`` for every integer ``z``.

    ``p``: PMF of the sum of ``n`` independent ``N_Z(0, s^2)``; ``phi``: the Gaussian
    density. Returns ``(-inf, inf)`` when a Poisson-summation error reaches 1.
    """
    log_theta = math.log1p(float(poisson_summation_error(s)[0]))
    lo = hi = -n * log_theta
    for start in range(2, n + 1, 100_000):  # in blocks: n can be millions of clients
        j = np.arange(start, min(n, start + 99_999) + 1, dtype=np.float64)
        e = poisson_summation_error(s * np.sqrt((j - 1.0) / j))
        if np.any(e >= 1):
            return -math.inf, math.inf
        lo += float(np.log1p(-e).sum())
        hi += float(np.log1p(e).sum())
    return lo, hi


def _log_norm_sf(x: float) -> float:
    """log(1 - Phi(x))."""
    return math.log(0.5 * math.erfc(x / math.sqrt(2.0))) if x < 37 else -x * x / 2 - math.log(x * math.sqrt(2 * math.pi))


_C1 = 0.5 - 1.0 / 24.0  # cos t - 1 <= -C1 t^2 on |t| <= 1


def _tilted_local_error(v: float, m: float) -> float:
    """Bound on ``|p_theta(m) sqrt(2 pi V) - 1|`` for a difference of Poissons of total rate ``V`` at its mean ``m``.

    ``p_theta(m) = (1/2pi) int_{-pi}^{pi} e^{V(cos t - 1)} cos(m (sin t - t)) dt`` and
    ``1/sqrt(2 pi V) = (1/2pi) int e^{-V t^2/2} dt``. On ``|t| <= 1``:
    ``0 <= e^{V(cos t - 1)} - e^{-V t^2/2} <= (V t^4/24) e^{-C1 V t^2}`` and
    ``1 - cos(m(sin t - t)) <= m^2 t^6 / 72``; integrating the Gaussian moments gives
    ``1/(32 sqrt2 C1^{5/2} V) + 15 m^2/(576 sqrt2 C1^{7/2} V^3)``; outside, the
    integrands are below ``e^{V(cos 1 - 1)}`` (``|t| <= pi``) and the Gaussian tail.
    """
    inner = 1.0 / (32.0 * math.sqrt(2.0) * math.pow(_C1, 2.5) * v) + 15.0 * m * m / (
        576.0 * math.sqrt(2.0) * math.pow(_C1, 3.5) * v * v * v
    )
    outer = math.sqrt(v / (2.0 * math.pi)) * 4.0 * (math.pi - 1.0) * math.exp(v * (math.cos(1.0) - 1.0))
    tail = 2.0 * math.exp(_log_norm_sf(math.pi * math.sqrt(v)))
    return inner + outer + tail


def _saddle_excess(u: float) -> float:
    """``F(u) = sqrt(1+u^2) - 1 - u asinh(u) + u^2/2`` (>= 0, increasing in |u|, about u^4/24)."""
    u = abs(u)
    return u * u / (math.sqrt(1.0 + u * u) + 1.0) - u * math.asinh(u) + u * u / 2.0


def skellam_log_ratio_bounds(mu: float, t_hi: float, t_lo: float) -> tuple[float, float]:
    """Bounds on ``log(p(z) / phi_{sqrt mu}(z))`` for the Skellam PMF of variance ``mu``.

    Returns ``(lo, hi)``: ``log(p/phi) <= hi`` for ``|z| <= t_hi`` and ``>= lo`` for
    ``|z| <= t_lo``; ``(-inf, inf)`` when the bound is void. Exponential tilting (the
    saddle point ``theta = asinh(z/mu)``) writes exactly
    ``log p(z) - log phi(z) = mu F(z/mu) - log(1 + (z/mu)^2)/4 + log(p_theta(z) sqrt(2 pi V))``
    with ``V = mu sqrt(1 + (z/mu)^2)``, where the last term is bounded by
    :func:`_tilted_local_error` (Daniels 1954 saddle-point approximation, here with
    explicit constants).
    """
    e_hi = _tilted_local_error(mu, t_hi)
    e_lo = _tilted_local_error(mu, t_lo)
    if e_hi >= 1 or e_lo >= 1:
        return -math.inf, math.inf
    hi = mu * _saddle_excess(t_hi / mu) + math.log1p(e_hi)
    lo = -0.25 * math.log1p((t_lo / mu) ** 2) + math.log1p(-e_lo)
    return lo, hi


def _poisson_upper_tail(lam: float, k: float) -> float:
    """``P(N > k)`` for ``N ~ Poisson(lam)``, ``k >= lam``: Chernoff ``exp(-lam h(k/lam - 1))``."""
    u = k / lam - 1.0
    if u <= 0:
        return 1.0
    return math.exp(-lam * ((1.0 + u) * math.log1p(u) - u))


@lru_cache(maxsize=32)
def skellam_numeric_log_ratio_bounds(mu: float, t_hi: float, t_lo: float) -> tuple[float, float]:
    """Same as :func:`skellam_log_ratio_bounds`, from the exact PMF (for ``mu`` up to 1e4).

    ``p~(z) = sum_{j <= J} P(j + z) P(j)`` (two Poisson(mu/2) PMFs, direct correlation:
    positive terms, relative error ~1e-15) is below ``p(z)`` by at most ``P(N > J - |z|)``;
    ``J`` is far enough out that this is ~e^-70 of ``phi`` on the window. The extremes of
    ``log(p/phi)`` are taken over every integer of the window.
    """
    lam = mu / 2.0
    w = int(math.ceil(t_lo))
    j_max = int(math.ceil(lam + w + 15.0 * math.sqrt(lam) + 60.0))
    k = np.arange(j_max + 1, dtype=np.float64)
    logfact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, j_max + 1, dtype=np.float64)))])
    pois = np.exp(k * math.log(lam) - lam - logfact)
    full = np.correlate(pois, pois, mode="full")  # index i <-> z = i - j_max
    z = np.arange(-w, w + 1, dtype=np.float64)
    p = full[j_max - w : j_max + w + 1]
    slack = np.array([_poisson_upper_tail(lam, j_max - abs(v)) for v in range(-w, w + 1)])
    log_phi = -z * z / (2.0 * mu) - 0.5 * math.log(2.0 * math.pi * mu)
    with np.errstate(divide="ignore"):
        lower = np.log(p) - log_phi
        upper = np.log(p + slack) - log_phi
    inner = np.abs(z) <= t_hi
    return float(lower.min()), float(upper[inner].max())


def _skellam_tail(mu: float, t: float) -> float:
    """``P(|Y| > t)`` for Skellam of variance ``mu`` (two-sided Chernoff bound)."""
    rate = t * math.asinh(t / mu) - math.sqrt(t * t + mu * mu) + mu
    return min(1.0, 2.0 * math.exp(-rate))


# ---------------------------------------------------------------------------- the noise
@dataclass(frozen=True)
class DiscreteNoise:
    """Per-coordinate integer noise: ``kind="dg"`` (sum of ``n`` ``N_Z(0, s^2)``) or ``"skellam"``.

    ``scale``: ``s`` (per-summand parameter) for ``"dg"``, the variance ``mu`` for
    ``"skellam"``; ``n``: number of discrete Gaussians summed (1 for Skellam).
    """

    kind: str
    scale: float
    n: int = 1

    @property
    def variance_parameter(self) -> float:
        """``n s^2`` (the variance parameter of the Gaussian it is compared with) or ``mu``."""
        return self.n * self.scale**2 if self.kind == "dg" else self.scale

    @property
    def sd(self) -> float:
        """Square root of :attr:`variance_parameter`."""
        return math.sqrt(self.variance_parameter)


def vector_core(noise: DiscreteNoise, l2: float, k: int, s2: float, t: float = 0.0) -> GaussianCore | None:
    """The bound ``beta + e^a G_mu(eps - a - b)`` for one choice of ``s2`` (and ``T = t``).

    ``l2``: L2 bound of ``Delta`` (integer units); ``k``: number of coordinates that can
    change. ``None`` when this choice gives no bound.
    """
    var = noise.variance_parameter
    s1sq = var - s2 * s2
    if s1sq <= 0:
        return None
    e2 = float(poisson_summation_error(s2)[0])
    if e2 >= 1:
        return None
    if noise.kind == "dg":
        lo, hi = sum_dg_log_ratio_bounds(noise.scale, noise.n)
        beta = 0.0
    else:
        lo, hi = skellam_log_ratio_bounds(var, t, t + l2)
        if var <= _MAX_SKELLAM_EXACT:
            nlo, nhi = skellam_numeric_log_ratio_bounds(var, t, t + l2)
            lo, hi = max(lo, nlo), min(hi, nhi)
        beta = min(1.0, k * _skellam_tail(var, t))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    a1 = max(0.0, hi + math.log1p(e2))
    b1 = max(0.0, -(lo + math.log1p(-e2)))
    return GaussianCore(mu2=l2 * l2 / s1sq, a=k * a1, b=k * b1, beta=beta)


@lru_cache(maxsize=256)
def core_for(noise: DiscreteNoise, l2: float, k: int) -> GaussianCore:
    """The best :func:`vector_core` over the candidate ``s2`` (and ``T``), by epsilon at 1e-5.

    Raises :class:`ConfigurationError` when no candidate gives a bound (noise too small).
    """
    sd = noise.sd
    ts: tuple[float, ...] = (0.0,)
    if noise.kind == "skellam":
        ts = tuple(c * sd for c in (6.0, 6.5, 7.0, 7.5, 8.0, 9.0, 10.0))
    best: tuple[float, GaussianCore] | None = None
    for s2 in _S2_CANDIDATES:
        for t in ts:
            core = vector_core(noise, l2, k, s2, t)
            if core is None:
                continue
            eps = core.epsilon(_DELTA_REF)
            if best is None or eps < best[0]:
                best = (eps, core)
    if best is None:
        raise ConfigurationError(
            f"no PLD bound for {noise.kind} noise with parameter {noise.scale:g} (n={noise.n}) over {k} "
            "coordinates: the noise is too small for the vector bound; use accountant='rdp'"
        )
    return best[1]


# ---------------------------------------------------------------------------- exact scalar PMFs
def _dg_pmf(s: float) -> tuple[int, FloatArray, float]:
    """``(z0, p, missing)``: ``N_Z(0, s^2)`` on ``[-W, W]`` (sub-PMF), mass left out ``<= missing``."""
    w = int(math.ceil(s * math.sqrt(2.0 * math.log(2.0 / _TRUNCATION)))) + 1
    z = np.arange(-w, w + 1, dtype=np.float64)
    log_norm = math.log(math.sqrt(2.0 * math.pi) * s) + math.log1p(float(poisson_summation_error(s)[0]))
    p = np.exp(-z * z / (2.0 * s * s) - log_norm)
    missing = 2.0 * math.exp(-(w * w) / (2.0 * s * s))  # N_Z(0, s^2) is s^2-subgaussian (CKS 2020)
    return -w, p, missing


def _sum_dg_pmf(s: float, n: int) -> tuple[int, FloatArray, float]:
    """Sub-PMF of the sum of ``n`` ``N_Z(0, s^2)`` by direct convolution, truncated each step.

    Every kept value is a sum of positive products (relative error ~1e-15); the mass
    dropped from the window ``+-c s sqrt(j)`` at step ``j`` is added to ``missing``
    (the sum of ``j`` is ``j s^2``-subgaussian).
    """
    z0, base, base_missing = _dg_pmf(s)
    out_z0, out = z0, base
    missing = n * base_missing  # each factor is a sub-PMF short of at most base_missing
    c = math.sqrt(2.0 * math.log(2.0 * n / _TRUNCATION))
    for j in range(2, n + 1):
        out = np.convolve(out, base)
        out_z0 += z0
        w = int(math.ceil(c * s * math.sqrt(j))) + 1
        lo = max(0, -w - out_z0)
        hi = min(out.size, w - out_z0 + 1)
        if lo > 0 or hi < out.size:
            missing += 2.0 * math.exp(-(w * w) / (2.0 * j * s * s))
            out = out[lo:hi]
            out_z0 += lo
    return out_z0, out, missing


def _skellam_pmf(mu: float) -> tuple[int, FloatArray, float]:
    """Sub-PMF of Skellam(variance ``mu``) = correlation of two Poisson(mu/2) PMFs (direct)."""
    lam = mu / 2.0
    # Poisson upper tail: P(N > J) <= exp(-lam h(J/lam - 1)), h(u) = (1+u) log(1+u) - u
    j_max = int(math.ceil(lam + 12.0 * math.sqrt(lam) + 40.0))
    u = j_max / lam - 1.0
    tail = math.exp(-lam * ((1.0 + u) * math.log1p(u) - u))
    k = np.arange(j_max + 1, dtype=np.float64)
    logfact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, j_max + 1, dtype=np.float64)))])
    pois = np.exp(k * math.log(lam) - lam - logfact)
    p = np.correlate(pois, pois, mode="full")  # index i <-> z = i - j_max
    return -j_max, p, 2.0 * tail


def scalar_pmf(noise: DiscreteNoise) -> tuple[int, FloatArray, float] | None:
    """``(z0, p, missing)`` exact sub-PMF on ``[z0, z0 + len(p))``, or None if too large to enumerate."""
    if noise.kind == "dg":
        width = 2.0 * math.sqrt(2.0 * math.log(2.0 * noise.n / _TRUNCATION)) * noise.sd
        if width > _MAX_SCALAR_SUPPORT or noise.n > 20_000:
            return None
        return _sum_dg_pmf(noise.scale, noise.n)
    if noise.scale > _MAX_SKELLAM_EXACT:
        return None
    return _skellam_pmf(noise.scale)


def _log(x: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore"):
        return np.log(x)


def scalar_pair(noise: DiscreteNoise, shift: int, q: float, interval: float) -> PldPair | None:
    """Exact PLD pair for the scalar mechanism with integer shift ``shift`` and sampling rate ``q``.

    Unsampled: ``(p, p(.-K))`` (symmetric). Subsampled (Zhu-Dong-Wang 2022, Thm 11):
    remove ``(q p(.+K) + (1-q) p, p)``, add ``(p, q p(.-K) + (1-q) p)``. The truncated
    sub-PMF ``p~ <= p`` is used on both sides: its missing mass goes to ``+inf`` and a
    smaller lower distribution only raises losses. The exact profile of the resulting
    atoms is discretized by connect-the-dots. ``None`` if the PMF is too large.
    """
    got = scalar_pmf(noise)
    if got is None:
        return None
    _, p, missing = got
    k = int(shift)
    z = np.zeros(k)
    if q >= 1:
        upper = np.concatenate([p, z])
        lower = np.concatenate([z, p])
        pmf = _pair_pmf(upper, lower, missing, interval)
        return PldPair(GaussianCore(), pmf, pmf)
    # remove: outcomes y = z (index over [z0 - K, z0 + n))
    up_r = q * np.concatenate([p, z]) + (1 - q) * np.concatenate([z, p])
    lo_r = np.concatenate([z, p])
    # add: outcomes over [z0, z0 + n + K)
    up_a = np.concatenate([p, z])
    lo_a = q * np.concatenate([z, p]) + (1 - q) * np.concatenate([p, z])
    rem = _pair_pmf(up_r, lo_r, missing, interval)
    add = _pair_pmf(up_a, lo_a, missing, interval)
    return PldPair(GaussianCore(), rem, add)


def _pair_pmf(upper: FloatArray, lower: FloatArray, missing: float, interval: float) -> Pmf:
    live = upper > 0
    with np.errstate(divide="ignore"):
        losses = np.where(lower[live] > 0, _log(upper[live]) - _log(lower[live]), np.inf)
    return from_atoms(losses, upper[live], missing, interval)


# ---------------------------------------------------------------------------- dispatch
def coordinates_that_change(l2: float, l1: float, dim: int | None) -> int:
    """``k = min(dim, floor(l1), floor(l2^2))``: an integer vector with those norms has at most k non-zeros."""
    bound = min(l1 + 1e-9, l2 * l2 * (1 + 1e-12) + 1e-9, math.inf if dim is None else float(dim))
    if not math.isfinite(bound):
        raise ConfigurationError("the number of coordinates that can change is unbounded: give dim or an L1 bound")
    return max(0, math.floor(bound))


def event_pair(noise: DiscreteNoise, l2: float, l1: float, dim: int | None, q: float, interval: float) -> PldPair:
    """The PLD pair of one (possibly Poisson-subsampled) integer-noise release.

    Scalar (``k = 1``): exact. Vector: :func:`core_for`, discretized and subsampled by
    with :meth:`PldPair.subsample` when ``q < 1``.
    """
    k = coordinates_that_change(l2, l1, dim)
    if k == 0:
        return PldPair()
    if k == 1:
        shift = max(1, math.floor(min(l2, l1) + 1e-9))
        try:
            pair = scalar_pair(noise, shift, q, interval)
        except ConfigurationError:  # losses too spread for the grid: the bound below needs no grid
            pair = None
        if pair is not None:
            return pair
        l2_eff = float(shift)
    else:
        l2_eff = min(math.sqrt(math.floor(l2 * l2 * (1 + 1e-12) + 1e-9)), l1)
    core = core_for(noise, float(l2_eff), int(k))
    pair = PldPair(core)
    return pair if q >= 1 else pair.subsample(q, interval)
