"""Privacy loss distribution (PLD) accounting: pessimistic discretized PLDs composed by FFT.

Implements the PLD accountant of Koskela, Jälkö and Honkela ("Computing Tight
Differential Privacy Guarantees Using FFT", AISTATS 2020) and Meiser and Mohammadi
("Tight on Budget? Tight Bounds for r-Fold Approximate Differential Privacy", CCS
2018), with the pessimistic "connect-the-dots" discretization of Doroshenko, Ghazi,
Kamath, Kumar and Manurangsi ("Connect the Dots: Tighter Discrete Approximations of
Privacy Loss Distributions", PETS 2022), the dominating-pair calculus of Zhu, Dong and
Wang ("Optimal Accounting of Differential Privacy via Characteristic Function",
AISTATS 2022) and the layout of Google's ``dp_accounting.pld`` (v0.6), which it
agrees with to well under 1% (tests/dp/test_dp_pld.py, benchmarks/bench_pld.py).

Definitions (one direction of one neighbouring pair ``(P, Q)``):

* privacy loss ``L = log(P(o)/Q(o))`` for ``o ~ P``; its law is the PLD ``omega``;
* hockey-stick divergence / privacy profile, for every real ``eps``:
  ``delta(eps) = sup_S P(S) - e^eps Q(S) = E_omega[(1 - e^(eps - L))_+]`` (Meiser and
  Mohammadi 2018, Lemma 5; Sommer, Meiser, Mohammadi 2019, Thm 4);
* a PLD ``omega'`` *dominates* ``omega`` when ``delta'(eps) >= delta(eps)`` for every
  real ``eps``; then the pair it defines (``P' = omega'``, ``Q' = omega' e^{-l}``, the
  rest of ``Q'`` at loss ``-inf``) is a dominating pair in the sense of Zhu-Dong-Wang
  (Def. 7), compositions of dominating pairs dominate the composition (their Thm 10:
  the PLDs convolve), and a Poisson-subsampled mechanism with rate ``q`` is dominated
  by ``(q P' + (1-q) Q', Q')`` (remove) and ``(Q', q P' + (1-q) Q')`` (add) (their
  Thm 11). Everything below only ever replaces a PLD by one that dominates it.

Discretization (interval ``h``, default ``1e-4`` as in dp_accounting):

* *connect the dots* (Doroshenko et al. 2022, Algorithm 1, fixed-gap form): from the
  exact profile at ``eps_k = k h`` for ``k`` in ``[k_lo, k_hi]`` put mass on the grid
  points so that the discrete profile equals ``delta(eps_k)`` at every grid point and is
  linear in ``e^eps`` in between. The true profile is convex in ``e^eps``, so it lies
  below every chord: the discrete PLD dominates on ``[eps_lo, eps_hi]``; below
  ``eps_lo`` both profiles meet ``1`` at ``e^eps = 0`` and the discrete one is a chord;
  above ``eps_hi`` the leftover ``delta(eps_hi)`` sits at ``+inf``. The range is the
  privacy loss of the outcomes ``Z = 10`` standard deviations out (``Phi(-10) <
  10^-23``).
* *privacy buckets* (Meiser-Mohammadi 2018) for PLDs given as atoms (integer noise, and
  after subsampling a discretized PLD): every loss is rounded *up* to the grid (``delta``
  is non-decreasing in every loss), mass with no ``Q`` counterpart goes to ``+inf``.
* composition: FFT convolution; self-composition ``T`` times: one FFT raised to the
  power ``T`` on a window chosen by a Chernoff bound (as dp_accounting's
  ``self_convolve``); every truncated tail goes to ``+inf`` (right) or is lumped into
  the lowest kept loss (left): the result still dominates. Floating-point rounding of
  the FFT (about 1e-16 of the largest bin) is not charged, as in dp_accounting.

The Gaussian part is kept exact: unsampled Gaussian mechanisms compose to one
Gaussian with ``mu^2 = sum mu_i^2`` (Dong, Roth, Su, "Gaussian Differential Privacy",
2022, Cor. 3.3); its profile ``Phi(mu/2 - eps/mu) - e^eps Phi(-mu/2 - eps/mu)`` (Balle
and Wang 2018, Thm 8) is evaluated in closed form and only discretized when it must be
convolved with another PLD. The same closed form carries the discrete-noise bounds of
:mod:`secagg.dp._pld_discrete` (a Gaussian profile shifted by ``a + b``, scaled by
``e^a``, plus a tail ``beta``), which compose the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from numpy.typing import NDArray

from ..errors import ConfigurationError, InputError

__all__ = [
    "DEFAULT_VALUE_DISCRETIZATION_INTERVAL",
    "DEFAULT_TAIL_MASS_TRUNCATION",
    "GaussianCore",
    "Pmf",
    "connect_the_dots",
    "atoms_profile",
    "from_atoms",
    "from_losses",
    "gaussian_profile",
    "gaussian_pmf",
    "laplace_pmf",
    "laplace_profile",
    "log_ndtr",
    "subsampled_gaussian_pmf",
    "subsampled_gaussian_profile",
]

FloatArray = NDArray[np.float64]
# no np.dot / BLAS calls in this module: a threaded OpenBLAS on a busy machine makes a
# 50k-element dot product 200x slower than the plain multiply-and-sum used instead
ProfileFn = Callable[[FloatArray], FloatArray]

#: default discretization interval of the privacy loss (dp_accounting's default)
DEFAULT_VALUE_DISCRETIZATION_INTERVAL = 1e-4
#: probability mass that one composition may move to +infinity when it truncates tails
DEFAULT_TAIL_MASS_TRUNCATION = 1e-15
_Z = 10.0  # discretization range: the outcomes Z standard deviations out
_MAX_BINS = 1 << 24
_SQRT2 = math.sqrt(2.0)


# ---------------------------------------------------------------------------- normal cdf
def _erfc(x: FloatArray) -> FloatArray:
    flat = np.ascontiguousarray(x, dtype=np.float64).ravel()
    out = np.fromiter(map(math.erfc, flat.tolist()), dtype=np.float64, count=flat.size)
    return out.reshape(np.shape(x))


def log_ndtr(x: FloatArray | float) -> FloatArray:
    """``log Phi(x)`` (standard normal CDF), vectorized, accurate in both tails.

    ``Phi(x) = erfc(-x/sqrt 2)/2``; for ``x < -35`` (where ``erfc`` underflows) the
    asymptotic series ``erfc(y) = e^{-y^2}/(y sqrt(pi)) (1 - 1/(2y^2) + 3/(4y^4) -
    15/(8y^6) + 105/(16 y^8))`` (relative error below 1e-12); for ``x > 0``,
    ``log1p(-Phi(-x))``.
    """
    arr = np.asarray(x, dtype=np.float64)
    out = np.empty(arr.shape, dtype=np.float64)
    pos = arr > 0
    far = arr < -35.0
    mid = ~pos & ~far
    if np.any(pos):
        out[pos] = np.log1p(-0.5 * _erfc(arr[pos] / _SQRT2))
    if np.any(mid):
        with np.errstate(divide="ignore"):
            out[mid] = np.log(0.5 * _erfc(-arr[mid] / _SQRT2))
    if np.any(far):
        y = -arr[far] / _SQRT2
        z = 1.0 / (y * y)
        series = 1.0 - z / 2.0 + 3.0 * z**2 / 4.0 - 15.0 * z**3 / 8.0 + 105.0 * z**4 / 16.0
        out[far] = -y * y - np.log(y) - 0.5 * math.log(math.pi) + np.log(series) - math.log(2.0)
    return out


def _diff_exp(log_a: FloatArray, log_b: FloatArray) -> FloatArray:
    """``e^log_a - e^log_b`` for ``log_b <= log_a`` (clipped at 0), without cancellation."""
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.minimum(log_b - log_a, 0.0)
        out = np.exp(log_a) * -np.expm1(d)
    out[~np.isfinite(log_a)] = 0.0
    res: FloatArray = np.maximum(out, 0.0)
    return res


# ---------------------------------------------------------------------------- profiles
def gaussian_profile(eps: FloatArray, mu: float) -> FloatArray:
    """Privacy profile of the Gaussian pair ``(N(0,1), N(mu,1))`` at every real ``eps``.

    ``delta(eps) = Phi(mu/2 - eps/mu) - e^eps Phi(-mu/2 - eps/mu)`` (Balle and Wang
    2018, Thm 8; the pair is symmetric, so the same for both directions). ``mu = 0``
    gives ``max(0, 1 - e^eps)``. Shape of ``eps``.
    """
    e = np.asarray(eps, dtype=np.float64)
    if mu <= 0:
        return np.maximum(0.0, -np.expm1(e))
    la = log_ndtr(mu / 2.0 - e / mu)
    lb = e + log_ndtr(-mu / 2.0 - e / mu)
    return _diff_exp(la, lb)


def subsampled_gaussian_profile(eps: FloatArray, q: float, sigma: float, direction: str) -> FloatArray:
    """Profile of the Poisson-subsampled Gaussian (sensitivity 1, std ``sigma``, rate ``q``).

    ``direction="remove"``: ``P = (1-q) N(0, s^2) + q N(-1, s^2)``, ``Q = N(0, s^2)``;
    ``"add"``: ``P = N(0, s^2)``, ``Q = (1-q) N(0, s^2) + q N(1, s^2)`` (Zhu-Dong-Wang
    2022, Thm 11; dp_accounting's ``GaussianPrivacyLoss``). The loss is monotone in the
    outcome ``x``, so ``delta(eps) = P(x <= x*) - e^eps Q(x <= x*)`` at the outcome
    ``x*`` of loss ``eps``, evaluated in log space.
    """
    e = np.asarray(eps, dtype=np.float64)
    out = np.zeros(e.shape, dtype=np.float64)
    log_q, log_1mq = math.log(q), math.log1p(-q)
    s2 = sigma * sigma
    if direction == "remove":
        low = e <= log_1mq
        out[low] = -np.expm1(e[low])
        ee = e[~low]
        c = np.log(np.expm1(ee) + q) - log_q
        x = -s2 * c - 0.5
        la = log_q + log_ndtr((x + 1.0) / sigma)
        lb = np.log(np.expm1(ee) + q) + log_ndtr(x / sigma)
        out[~low] = _diff_exp(la, lb)
        return out
    if direction == "add":
        live = e < -log_1mq
        ee = e[live]
        c = np.log(np.expm1(-ee) + q) - log_q
        x = s2 * c + 0.5
        la = np.log(-np.expm1(ee + log_1mq)) + log_ndtr(x / sigma)
        lb = ee + log_q + log_ndtr((x - 1.0) / sigma)
        out[live] = _diff_exp(la, lb)
        return out
    raise InputError(f"direction must be 'remove' or 'add', got {direction!r}")


def laplace_profile(eps: FloatArray, eps0: float) -> FloatArray:
    """Profile of the Laplace pair with ``sensitivity / scale = eps0``.

    ``delta(eps) = 1 - e^{(eps - eps0)/2}`` for ``|eps| <= eps0``, ``0`` above and
    ``1 - e^eps`` below (dp_accounting's ``LaplacePrivacyLoss``; symmetric).
    """
    e = np.asarray(eps, dtype=np.float64)
    out = -np.expm1((e - eps0) / 2.0)
    out = np.where(e >= eps0, 0.0, out)
    out = np.where(e <= -eps0, -np.expm1(e), out)
    return np.clip(out, 0.0, 1.0)


# ---------------------------------------------------------------------------- the discrete PLD
def _next_fast_len(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n (a fast FFT length for numpy's pocketfft)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            v = p35
            while v < n:
                v *= 2
            best = min(best, v)
            p35 *= 3
        p5 *= 5
    return best


def _convolve(a: FloatArray, b: FloatArray) -> FloatArray:
    if a.size * b.size <= 200_000:
        return np.convolve(a, b)
    n = a.size + b.size - 1
    size = _next_fast_len(n)
    out = np.fft.irfft(np.fft.rfft(a, size) * np.fft.rfft(b, size), size)[:n]
    return np.maximum(out, 0.0)


def _truncate(probs: FloatArray, tail: float) -> tuple[int, FloatArray, float]:
    """Drop at most ``tail/2`` of mass on each side: (first kept index, kept probs, right mass).

    The left mass is added to the first kept bin (a loss rounded up), the right mass is
    returned for the ``+inf`` bucket: the result dominates the input.
    """
    nz = np.flatnonzero(probs > 0)
    if nz.size == 0:
        return 0, np.zeros(1), float(probs.sum())
    start, stop = int(nz[0]), int(nz[-1]) + 1
    probs = probs[start:stop]
    if tail > 0 and probs.size > 1:
        left = np.cumsum(probs)
        i = int(np.searchsorted(left, tail / 2.0, side="right"))
        right = np.cumsum(probs[::-1])
        j = int(np.searchsorted(right, tail / 2.0, side="right"))
        i = min(i, probs.size - 1)
        j = min(j, probs.size - 1 - i)
        left_mass = float(left[i - 1]) if i > 0 else 0.0
        right_mass = float(right[j - 1]) if j > 0 else 0.0
        kept = probs[i : probs.size - j].copy()
        kept[0] += left_mass
        return start + i, kept, right_mass
    return start, probs.copy(), 0.0


@dataclass(frozen=True, eq=False)
class Pmf:
    """A discretized PLD: mass ``probs[i]`` at loss ``(offset + i) * interval``, plus ``+inf``.

    Parameters
    ----------
    interval:
        discretization interval ``h`` of the privacy loss (nats).
    offset:
        grid index of ``probs[0]``.
    probs:
        float64 array of shape ``(n,)``, non-negative.
    infinity_mass:
        probability of the loss ``+inf`` (charged to delta at every epsilon).
    """

    interval: float
    offset: int
    probs: FloatArray
    infinity_mass: float

    @property
    def losses(self) -> FloatArray:
        """The grid losses, shape ``(n,)``."""
        return (self.offset + np.arange(self.probs.size, dtype=np.float64)) * self.interval

    # ---------------------------------------------------------------- queries
    def delta(self, epsilon: float) -> float:
        """``delta(epsilon) = inf_mass + sum_l p_l (1 - e^{eps - l})_+`` (any real epsilon)."""
        losses = self.losses
        sel = losses > epsilon
        val = float((self.probs[sel] * -np.expm1(epsilon - losses[sel])).sum())
        return min(1.0, self.infinity_mass + val)

    def epsilon(self, delta: float) -> float:
        """Smallest ``epsilon >= 0`` with ``delta(epsilon) <= delta`` (``inf`` if none).

        Exact for this discrete PLD: on each interval between grid losses the profile is
        ``A - e^eps B`` with suffix sums ``A``, ``B``, solved in closed form.
        """
        if self.infinity_mass > delta:
            return math.inf
        losses = self.losses
        pos = losses > 0
        lp, pp = losses[pos], self.probs[pos]
        if lp.size == 0:
            return 0.0
        s1 = np.cumsum(pp[::-1])[::-1]  # mass of losses >= l_k
        s2 = np.cumsum((pp * np.exp(-lp))[::-1])[::-1]
        target = delta - self.infinity_mass
        # profile at eps = 0: all positive losses count
        if float(s1[0] - s2[0]) <= target:
            return 0.0
        # profile at eps = l_k: the losses strictly above l_k, i.e. suffix k + 1
        nxt1 = np.append(s1[1:], 0.0)
        nxt2 = np.append(s2[1:], 0.0)
        at_knot = nxt1 - np.exp(lp) * nxt2
        k = int(np.argmax(at_knot <= target))  # the last knot always qualifies (profile 0)
        # on (l_{k-1}, l_k] the losses >= l_k count: s1[k] - e^eps s2[k] = target
        eps = math.log((float(s1[k]) - target) / float(s2[k])) if s2[k] > 0 else float(lp[k])
        lo = float(lp[k - 1]) if k > 0 else 0.0
        return float(min(max(eps, lo), float(lp[k])))

    # ---------------------------------------------------------------- composition
    def compose(self, other: "Pmf", tail: float = DEFAULT_TAIL_MASS_TRUNCATION) -> "Pmf":
        """The PLD of running both mechanisms (convolution); truncated tails dominate."""
        _same_interval(self, other)
        probs = _convolve(self.probs, other.probs)
        inf = self.infinity_mass + other.infinity_mass - self.infinity_mass * other.infinity_mass
        start, kept, right = _truncate(probs, tail)
        return _pmf(self.interval, self.offset + other.offset + start, kept, inf + right)

    def self_compose(self, count: int, tail: float = DEFAULT_TAIL_MASS_TRUNCATION) -> "Pmf":
        """The PLD of ``count`` runs: one FFT raised to the power ``count`` on a Chernoff window."""
        if count < 1:
            raise InputError(f"count must be >= 1, got {count!r}")
        if count == 1:
            return self
        p = self.probs
        lo, hi = _chernoff_window(p, count, tail)
        width = hi - lo + 1
        size = _next_fast_len(max(width, p.size))
        spec = np.fft.rfft(p, size)
        zero = spec == 0
        with np.errstate(divide="ignore", invalid="ignore"):
            powered = np.exp(count * np.log(np.where(zero, 1.0, spec)))
        powered[zero] = 0.0
        circ = np.fft.irfft(powered, size)
        out = np.maximum(circ[(lo + np.arange(width)) % size], 0.0)
        inf = -math.expm1(count * math.log1p(-self.infinity_mass)) if self.infinity_mass < 1 else 1.0
        start, kept, right = _truncate(out, 0.0)
        return _pmf(self.interval, self.offset * count + lo + start, kept, inf + tail + right)

    # ---------------------------------------------------------------- subsampling
    def subsample(self, q: float, direction: str) -> "Pmf":
        """PLD of the Poisson-subsampled mechanism whose (symmetric) PLD is ``self``.

        The canonical pair of ``self`` (``P = omega``, ``Q = omega e^{-l}`` plus ``Q``'s
        remaining mass ``m`` at loss ``-inf``) is subsampled with Zhu-Dong-Wang 2022
        Thm 11: ``remove``: loss ``log(q e^l + 1 - q)`` with ``P``-mass ``omega (q + (1-q)
        e^{-l})``, the ``-inf`` atom becomes ``log(1-q)`` with mass ``(1-q) m``, ``+inf``
        keeps ``q`` of its mass; ``add``: loss ``-log(q e^l + 1 - q)`` with mass ``omega
        e^{-l}``, the ``-inf`` atom becomes ``-log(1-q)`` with mass ``m``. Losses are
        rounded up to the grid.
        """
        if not 0 < q <= 1:
            raise InputError(f"sampling rate must be in (0, 1], got {q!r}")
        if q == 1:
            return self
        l = self.losses
        w = self.probs
        with np.errstate(divide="ignore"):
            q_mass = np.exp(np.log(w) - l)  # Q-mass omega e^{-l}, in log space (no inf * 0)
        m_minus = max(0.0, 1.0 - float(q_mass.sum()))
        log_q, log_1mq = math.log(q), math.log1p(-q)
        shifted = np.logaddexp(log_q + l, log_1mq)  # log(q e^l + 1 - q)
        if direction == "remove":
            mass = q * w + (1 - q) * q_mass
            losses = np.append(shifted, log_1mq)
            masses = np.append(mass, (1 - q) * m_minus)
            return from_atoms(losses, masses, q * self.infinity_mass, self.interval)
        if direction == "add":
            losses = np.append(-shifted, -log_1mq)
            masses = np.append(q_mass, m_minus)
            return from_atoms(losses, masses, 0.0, self.interval)
        raise InputError(f"direction must be 'remove' or 'add', got {direction!r}")


_TINY = 1e-290


def _pmf(interval: float, offset: int, probs: FloatArray, infinity_mass: float) -> Pmf:
    """A :class:`Pmf` with masses below 1e-290 moved to ``+inf`` (subnormal floats make FFTs crawl)."""
    tiny = probs < _TINY
    moved = 0.0
    if np.any(tiny):
        moved = float(probs[tiny].sum())
        probs = np.where(tiny, 0.0, probs)
    return Pmf(interval, offset, probs, min(1.0, infinity_mass + moved))


def _same_interval(a: Pmf, b: Pmf) -> None:
    if a.interval != b.interval:
        raise ConfigurationError(
            f"PLDs with different discretization intervals cannot be composed: {a.interval} vs {b.interval}"
        )


def _chernoff_window(p: FloatArray, count: int, tail: float) -> tuple[int, int]:
    """Index window ``[lo, hi]`` of the ``count``-fold sum holding all but ``tail`` of its mass.

    Chernoff: ``P(S > u) <= e^{count K(t) - t u}`` for every ``t > 0`` (``K`` the
    cumulant generating function of one index, centred at its mean); so ``u = (count
    K(t) + log(2/tail)) / t`` bounds the upper tail by ``tail/2`` for *any* ``t``, and
    symmetrically below. ``t`` is chosen by a safeguarded Newton search for the
    minimiser (``t K'(t) - K(t) = log(2/tail)/count``); a suboptimal ``t`` only widens
    the window.
    """
    n = p.size
    top = count * (n - 1)
    if tail <= 0 or n == 1:
        return 0, top
    nz = p > 0
    w0 = p[nz]
    mass = float(w0.sum())
    idx = np.arange(n, dtype=np.float64)[nz]
    mean = float((idx * w0).sum()) / mass
    x = idx - mean
    logp = np.log(w0 / mass)  # normalised: the finite part; its mass only lowers the bound
    var = max(float((x * x * w0).sum()) / mass, 1e-12)
    c = math.log(2.0 / tail)
    goal = c / count

    def cumulants(t: float) -> tuple[float, float, float]:
        a = t * x + logp
        m = float(a.max())
        # floor at e^-700 (a normal float: subnormals slow numpy down 50x); it only adds mass
        e = np.exp(np.maximum(a - m, -700.0))
        s0 = float(e.sum())
        s1 = float((e * x).sum()) / s0
        s2 = float((e * x * x).sum()) / s0 - s1 * s1
        return m + math.log(s0), s1, max(s2, 0.0)

    bounds: list[float] = []
    for sign in (1.0, -1.0):
        # safeguarded Newton on s = log t for g(t) = t K'(t) - K(t) - goal (increasing in t)
        s_t = 0.5 * math.log(2.0 * goal / var)
        s_lo, s_hi = -math.inf, math.inf
        best = math.inf
        for _ in range(30):
            t = math.exp(s_t)
            k, k1, k2 = cumulants(sign * t)
            best = min(best, (count * k + c) / t)  # bound on sign * (S - count * mean)
            g = t * sign * k1 - k - goal
            if g > 0:
                s_hi = s_t
            else:
                s_lo = s_t
            if abs(g) <= 1e-3 * goal or s_hi - s_lo < 1e-3:
                break
            step = -g / max(t * t * k2, 1e-300)
            s_new = s_t + max(-2.0, min(2.0, step))
            if not (s_lo < s_new < s_hi):
                s_new = 0.5 * (s_lo + s_hi) if math.isfinite(s_lo) and math.isfinite(s_hi) else s_t + (2.0 if g < 0 else -2.0)
            s_t = s_new
        bounds.append(best)
    hi = math.ceil(count * mean + bounds[0])
    lo = math.floor(count * mean - bounds[1])
    lo = max(0, min(lo, top))
    hi = max(lo, min(hi, top))
    return lo, hi


# ---------------------------------------------------------------------------- constructors
def _finite_atoms(losses: FloatArray, masses: FloatArray, infinity_mass: float) -> tuple[FloatArray, FloatArray, float]:
    """The atoms with positive mass and finite loss (flat float64 arrays), and the
    infinity mass plus that of the ``+inf`` losses."""
    l = np.asarray(losses, dtype=np.float64).ravel()
    m = np.asarray(masses, dtype=np.float64).ravel()
    keep = m > 0
    l, m = l[keep], m[keep]
    inf_sel = np.isposinf(l)
    inf = float(infinity_mass) + float(m[inf_sel].sum())
    return l[~inf_sel], m[~inf_sel], inf


def from_losses(losses: FloatArray, masses: FloatArray, infinity_mass: float, interval: float) -> Pmf:
    """Privacy-buckets PLD: each (loss, P-mass) atom rounded *up* to the grid ``interval``.

    ``losses`` and ``masses``: float arrays of the same shape; ``+inf`` losses (no
    ``Q``-mass) go to ``infinity_mass``; atoms with zero mass are dropped.
    """
    l, m, inf = _finite_atoms(losses, masses, infinity_mass)
    if l.size == 0:
        return Pmf(interval, 0, np.zeros(1), min(1.0, inf))
    # round up, with a relative guard so that float error in l never rounds a loss down
    k = np.ceil(l / interval + 1e-9 * (1.0 + np.abs(l / interval))).astype(np.int64)
    k0 = int(k.min())
    span = int(k.max()) - k0 + 1
    if span > _MAX_BINS:
        raise ConfigurationError(
            f"the privacy loss spans {span} grid points at interval {interval}; use a larger value_discretization_interval"
        )
    probs = np.bincount(k - k0, weights=m, minlength=span).astype(np.float64)
    return _pmf(interval, k0, probs, inf)


def atoms_profile(losses: FloatArray, masses: FloatArray, infinity_mass: float) -> ProfileFn:
    """The exact privacy profile of a PLD given as finite atoms plus ``infinity_mass``.

    ``delta(eps) = inf + sum_{l_i > eps} m_i (1 - e^{eps - l_i}) = inf + S1 - e^eps S2`` with
    suffix sums ``S1 = sum m_i``, ``S2 = sum m_i e^{-l_i}`` over the atoms above ``eps``.
    """
    order = np.argsort(losses, kind="stable")
    l = np.asarray(losses, dtype=np.float64)[order]
    m = np.asarray(masses, dtype=np.float64)[order]
    s1 = np.append(np.cumsum(m[::-1])[::-1], 0.0)
    with np.errstate(divide="ignore", over="ignore"):
        s2 = np.append(np.cumsum(np.exp(np.log(m) - l)[::-1])[::-1], 0.0)

    def profile(eps: FloatArray) -> FloatArray:
        e = np.asarray(eps, dtype=np.float64)
        j = np.searchsorted(l, e, side="right")
        with np.errstate(over="ignore", invalid="ignore"):
            d = infinity_mass + s1[j] - np.exp(e) * s2[j]
        out: FloatArray = np.clip(np.nan_to_num(d, nan=1.0), 0.0, 1.0)
        return out

    return profile


def from_atoms(losses: FloatArray, masses: FloatArray, infinity_mass: float, interval: float) -> Pmf:
    """Connect-the-dots PLD of a pair given by its (loss, P-mass) atoms and ``+inf`` mass.

    The exact profile of the atoms (:func:`atoms_profile`) is evaluated on the grid
    between the smallest and largest finite loss and connected (Doroshenko et al. 2022):
    tighter than rounding every atom up (privacy buckets), and dominating for the same
    reason (the exact profile is convex in ``e^eps``).
    """
    l, m, inf = _finite_atoms(losses, masses, infinity_mass)
    if l.size == 0:
        return Pmf(interval, 0, np.zeros(1), min(1.0, inf))
    return connect_the_dots(atoms_profile(l, m, inf), float(l.min()), float(l.max()), interval)


def connect_the_dots(profile: ProfileFn, eps_lo: float, eps_hi: float, interval: float) -> Pmf:
    """Pessimistic connect-the-dots PLD of a mechanism with privacy profile ``profile``.

    Doroshenko et al. 2022, Algorithm 1 (fixed gap ``h``): with ``d_k = profile(k h)``
    for ``k = k_lo..k_hi`` (``k_lo = floor(eps_lo/h)``, ``k_hi = ceil(eps_hi/h)``), the
    masses are ``(1 - d_1) + (d_2 - d_1)/(e^h - 1)`` at the first point,
    ``((d_{i+1} - d_i) - e^h (d_i - d_{i-1}))/(e^h - 1)`` inside,
    ``(d_{n-1} - d_n)/(1 - e^{-h})`` at the last, and ``d_n`` at ``+inf``. ``profile``
    must be a valid upper bound of the true profile at the grid points, convex and
    non-increasing in ``e^eps`` there, and at most 1.
    """
    k_lo = math.floor(eps_lo / interval)
    k_hi = max(math.ceil(eps_hi / interval), k_lo)
    n = k_hi - k_lo + 1
    if n > _MAX_BINS:
        raise ConfigurationError(
            f"the privacy loss spans {n} grid points at interval {interval}; use a larger value_discretization_interval"
        )
    eps = (k_lo + np.arange(n, dtype=np.float64)) * interval
    d = np.clip(profile(eps), 0.0, 1.0)
    d = np.minimum.accumulate(d)
    if n == 1:
        return Pmf(interval, k_lo, np.array([1.0 - d[0]]), float(d[0]))
    eh = math.expm1(interval)
    diff = np.diff(d)  # d_{i+1} - d_i <= 0
    probs = np.empty(n, dtype=np.float64)
    probs[0] = (1.0 - d[0]) + diff[0] / eh
    probs[1:-1] = (diff[1:] - (eh + 1.0) * diff[:-1]) / eh
    probs[-1] = -diff[-1] / -math.expm1(-interval)
    return _pmf(interval, k_lo, np.maximum(probs, 0.0), float(d[-1]))


def gaussian_pmf(mu: float, interval: float = DEFAULT_VALUE_DISCRETIZATION_INTERVAL) -> Pmf | None:
    """Connect-the-dots PLD of the Gaussian pair ``(N(0,1), N(mu,1))`` (``None`` for ``mu = 0``).

    Range: the loss ``mu^2/2 + mu x`` of ``x`` within ``Z = 10`` standard deviations.
    """
    if mu <= 0:
        return None
    lo, hi = mu * mu / 2.0 - _Z * mu, mu * mu / 2.0 + _Z * mu
    return connect_the_dots(lambda e: gaussian_profile(e, mu), lo, hi, interval)


def subsampled_gaussian_pmf(
    q: float, sigma: float, direction: str, interval: float = DEFAULT_VALUE_DISCRETIZATION_INTERVAL
) -> Pmf:
    """Connect-the-dots PLD of the Poisson-subsampled Gaussian, one direction (``q < 1``)."""
    log_q, log_1mq = math.log(q), math.log1p(-q)
    s2 = sigma * sigma

    def loss(x: float) -> float:
        if direction == "remove":
            return float(np.logaddexp(log_1mq, log_q + (-2.0 * x - 1.0) / (2.0 * s2)))
        return -float(np.logaddexp(log_1mq, log_q + (2.0 * x - 1.0) / (2.0 * s2)))

    if direction == "remove":
        hi, lo = loss(-1.0 - _Z * sigma), loss(_Z * sigma)
    else:
        hi, lo = loss(-_Z * sigma), loss(_Z * sigma)
    return connect_the_dots(lambda e: subsampled_gaussian_profile(e, q, sigma, direction), lo, hi, interval)


def laplace_pmf(eps0: float, interval: float = DEFAULT_VALUE_DISCRETIZATION_INTERVAL) -> Pmf | None:
    """Connect-the-dots PLD of the Laplace mechanism with ``sensitivity/scale = eps0``."""
    if eps0 <= 0:
        return None
    return connect_the_dots(lambda e: laplace_profile(e, eps0), -eps0, eps0, interval)


# ---------------------------------------------------------------------------- the exact Gaussian core
def _bisect_decreasing(fn: Callable[[float], float], target: float) -> float:
    """Smallest ``x >= 0`` with ``fn(x) <= target`` for non-increasing ``fn`` (upper end of the bracket)."""
    if fn(0.0) <= target:
        return 0.0
    lo, hi = 0.0, 1.0
    while fn(hi) > target:
        lo, hi = hi, hi * 2.0
        if hi > 1e7:
            return math.inf
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if fn(mid) > target:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * max(1.0, hi):
            break
    return hi


@dataclass(frozen=True)
class GaussianCore:
    """Privacy profile ``beta + e^a G_mu(eps - a - b)`` with ``G_mu`` the Gaussian profile.

    ``mu2 = mu^2``; ``a, b >= 0`` bound the log-ratio of a noise PMF to a post-processed
    Gaussian (:mod:`secagg.dp._pld_discrete`); ``beta`` is a probability charged to delta.
    A plain Gaussian mechanism is ``(mu2, 0, 0, 0)``. Cores compose by adding all four
    fields (products of likelihood-ratio bounds multiply, Gaussian ``mu^2`` add (Dong,
    Roth, Su 2022, Cor. 3.3), bad events add by the union bound).
    """

    mu2: float = 0.0
    a: float = 0.0
    b: float = 0.0
    beta: float = 0.0

    @property
    def is_identity(self) -> bool:
        """True when the core costs no privacy."""
        return self.mu2 == 0 and self.a == 0 and self.b == 0 and self.beta == 0

    def __add__(self, other: "GaussianCore") -> "GaussianCore":
        return GaussianCore(self.mu2 + other.mu2, self.a + other.a, self.b + other.b, min(1.0, self.beta + other.beta))

    def times(self, count: int) -> "GaussianCore":
        """``count`` compositions of this core."""
        return GaussianCore(self.mu2 * count, self.a * count, self.b * count, min(1.0, self.beta * count))

    def profile(self, eps: FloatArray) -> FloatArray:
        """The profile at every real ``eps`` (array), capped at 1."""
        e = np.asarray(eps, dtype=np.float64)
        g = gaussian_profile(e - self.a - self.b, math.sqrt(self.mu2))
        with np.errstate(divide="ignore", over="ignore"):  # e^a * g in logs: a can exceed 709 (many coordinates)
            scaled = np.exp(self.a + np.log(g))
        return np.minimum(1.0, self.beta + scaled)

    def delta(self, epsilon: float) -> float:
        """Delta at ``epsilon`` (closed form)."""
        return float(self.profile(np.array([float(epsilon)]))[0])

    def epsilon(self, delta: float) -> float:
        """Smallest ``epsilon >= 0`` with ``delta(epsilon) <= delta`` (bisection, upper end)."""
        if self.is_identity:
            return 0.0
        if delta <= self.beta:
            return math.inf
        return _bisect_decreasing(self.delta, delta)

    def to_pmf(self, interval: float) -> Pmf | None:
        """Connect-the-dots PLD of this profile (``None`` for the identity)."""
        if self.is_identity:
            return None
        mu = math.sqrt(self.mu2)
        centre = self.a + self.b + self.mu2 / 2.0
        lo, hi = centre - _Z * max(mu, 1e-3), centre + _Z * max(mu, 1e-3)
        # profile <= 1 needs eps >= b + log(e^a - 1 + beta); e^a overflows past a = 709, where no eps will do
        need = (math.expm1(self.a) if self.a < 700.0 else math.inf) + self.beta
        if need > 0:
            lo = max(lo, self.b + math.log(need) + interval)
        if lo >= hi or self.delta(hi) >= 1.0:
            return Pmf(interval, 0, np.zeros(1), 1.0)
        return connect_the_dots(self.profile, lo, hi, interval)


# ---------------------------------------------------------------------------- a PLD pair
@dataclass(frozen=True, eq=False)
class PldPair:
    """The PLDs of both neighbouring directions plus an exact Gaussian core.

    ``remove``/``add``: :class:`Pmf` or ``None`` (identity). For symmetric mechanisms
    ``add is remove`` (one object, computed once). ``core`` composes with both.
    ``nonprivate``: a mechanism without any guarantee was composed (epsilon = inf).
    """

    core: GaussianCore = field(default_factory=GaussianCore)
    remove: Pmf | None = None
    add: Pmf | None = None
    nonprivate: bool = False

    @property
    def symmetric(self) -> bool:
        """Whether both directions share one PLD."""
        return self.add is self.remove

    def compose(self, other: "PldPair", tail: float = DEFAULT_TAIL_MASS_TRUNCATION) -> "PldPair":
        """Both mechanisms run (in either order)."""
        rem = _compose_opt(self.remove, other.remove, tail)
        if self.symmetric and other.symmetric:
            add = rem
        else:
            add = _compose_opt(self.add, other.add, tail)
        return PldPair(self.core + other.core, rem, add, self.nonprivate or other.nonprivate)

    def self_compose(self, count: int, tail: float = DEFAULT_TAIL_MASS_TRUNCATION) -> "PldPair":
        """``count`` runs (``count >= 0``)."""
        if count == 0:
            return PldPair()
        if count == 1:
            return self
        rem = self.remove.self_compose(count, tail) if self.remove is not None else None
        if self.symmetric:
            add = rem
        else:
            add = self.add.self_compose(count, tail) if self.add is not None else None
        return PldPair(self.core.times(count), rem, add, self.nonprivate)

    def materialized(self, interval: float, tail: float = DEFAULT_TAIL_MASS_TRUNCATION) -> tuple[Pmf | None, Pmf | None]:
        """(remove, add) with the core discretized and convolved in."""
        core = self.core.to_pmf(interval)
        rem = _compose_opt(self.remove, core, tail)
        add = rem if self.symmetric else _compose_opt(self.add, core, tail)
        return rem, add

    def epsilon(self, delta: float, interval: float) -> float:
        """Epsilon at ``delta``: the larger of both directions."""
        if self.nonprivate:
            return math.inf
        if self.remove is None and self.add is None:
            return self.core.epsilon(delta)
        rem, add = self.materialized(interval)
        eps = [p.epsilon(delta) for p in {id(x): x for x in (rem, add) if x is not None}.values()]
        return max(eps) if eps else 0.0

    def delta(self, epsilon: float, interval: float) -> float:
        """Delta at ``epsilon``: the larger of both directions."""
        if self.nonprivate:
            return 1.0
        if self.remove is None and self.add is None:
            return self.core.delta(epsilon)
        rem, add = self.materialized(interval)
        d = [p.delta(epsilon) for p in {id(x): x for x in (rem, add) if x is not None}.values()]
        return max(d) if d else 0.0

    def subsample(self, q: float, interval: float) -> "PldPair":
        """Poisson subsampling with rate ``q`` of a *symmetric* pair (Zhu-Dong-Wang Thm 11)."""
        if q == 1:
            return self
        if self.nonprivate:
            return self
        if not self.symmetric:
            raise ConfigurationError(
                "Poisson subsampling of an already subsampled (asymmetric) privacy event is not supported"
            )
        base, _ = self.materialized(interval)
        if base is None:
            return PldPair()
        rem = base.subsample(q, "remove")
        add = base.subsample(q, "add")
        return PldPair(GaussianCore(), rem, add)


def _compose_opt(a: Pmf | None, b: Pmf | None, tail: float) -> Pmf | None:
    if a is None:
        return b
    if b is None:
        return a
    return a.compose(b, tail)
