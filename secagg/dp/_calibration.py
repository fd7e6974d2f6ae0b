"""Noise calibration: Gaussian and Laplace scales for a target (epsilon, delta), and sensitivities.

* :func:`classic_gaussian_sigma`: ``sigma = sqrt(2 ln(1.25/delta)) * sensitivity / epsilon``
  (Dwork and Roth, "The Algorithmic Foundations of Differential Privacy", 2014,
  Theorem A.1; valid only for ``epsilon < 1``).
* :func:`analytic_gaussian_sigma`: the analytic Gaussian mechanism of Balle and Wang,
  "Improving the Gaussian Mechanism for Differential Privacy: Analytical Calibration
  and Optimal Denoising" (ICML 2018), Algorithm 1: the smallest sigma such that the
  Gaussian mechanism is (epsilon, delta)-DP, from the exact condition (their Theorem 8)

      Phi(D/(2 s) - e s/D) - exp(e) Phi(-D/(2 s) - e s/D) <= delta,

  solved by bisection to 1e-12 relative. Valid for every epsilon > 0.
* :func:`gaussian_delta`: the left-hand side of that condition (the exact privacy
  profile of the Gaussian mechanism).
* :func:`laplace_scale`: ``b = L1 sensitivity / epsilon`` (Dwork et al. 2006).
* :func:`l2_sensitivity`, :func:`l1_sensitivity`: sensitivity of a sum of clipped
  contributions under add/remove-one or replace-one neighbouring.

Only the standard library's ``math`` is used (no scipy): ``Phi`` comes from
``math.erfc`` with an asymptotic expansion in log space for the far tail.
"""

from __future__ import annotations

import math
from typing import Callable

from ..errors import ConfigurationError, InputError

__all__ = [
    "smallest_meeting",
    "classic_gaussian_sigma",
    "analytic_gaussian_sigma",
    "gaussian_delta",
    "laplace_scale",
    "l2_sensitivity",
    "l1_sensitivity",
]


def positive_finite(value: float, name: str) -> float:
    """``value`` as a float, or :class:`InputError` unless it is a positive finite number
    (the check of every DP parameter such as sigma, epsilon, a sensitivity or a norm)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a positive finite number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise InputError(f"{name} must be a positive finite number, got {value!r}")
    return v


def smallest_meeting(
    f: Callable[[float], float],
    target: float,
    *,
    start: float = 1.0,
    below: float | None = None,
    grow: float = 2.0,
    floor: float,
    ceiling: float,
    tolerance: float,
    what: str,
) -> float:
    """Smallest ``x`` with ``f(x) <= target`` for a non-increasing ``f`` (e.g. epsilon, or
    delta, as a function of a noise multiplier): the search behind every calibration.

    Brackets from ``start`` (multiplied by ``grow`` while ``f`` is above ``target``; past
    ``ceiling`` a :class:`ConfigurationError` saying ``what`` is out of reach; then divided
    by ``grow`` while ``f`` still meets the target, stopping at ``floor``), then bisects in
    log space to relative width ``tolerance``. ``below``: a value known not to meet the
    target (skips the downward search). The result is the upper end of the final bracket,
    so ``f(result) <= target`` always holds: calibration errs on the side of more noise.
    """
    hi, lo = float(start), below
    while f(hi) > target:
        lo, hi = hi, hi * grow
        if hi > ceiling:
            raise ConfigurationError(what)
    if lo is None:
        lo = hi / grow
        while f(lo) <= target:
            hi, lo = lo, lo / grow
            if lo < floor:
                return hi
    for _ in range(200):
        if hi / lo - 1.0 <= tolerance:
            break
        mid = math.sqrt(lo * hi)
        if f(mid) > target:
            lo = mid
        else:
            hi = mid
    return hi


def _delta(value: float) -> float:
    d = positive_finite(value, "delta")
    if d >= 1:
        raise InputError(f"delta must be in (0, 1), got {value!r}")
    return d


def log_ndtr(x: float) -> float:
    """log Phi(x) for the standard normal CDF, accurate in the far lower tail."""
    if x > -20.0:
        return math.log(0.5 * math.erfc(-x / math.sqrt(2.0)))
    # Phi(x) ~ phi(x)/|x| (1 - 1/x^2 + 3/x^4 - 15/x^6 + 105/x^8)
    z = x * x
    series = 1 - 1 / z + 3 / z**2 - 15 / z**3 + 105 / z**4
    return -0.5 * z - math.log(-x) - 0.5 * math.log(2 * math.pi) + math.log(series)


def gaussian_delta(sigma: float, epsilon: float, sensitivity: float = 1.0) -> float:
    """Exact delta(epsilon) of the Gaussian mechanism with noise ``sigma`` (Balle-Wang Thm 8)."""
    s = positive_finite(sigma, "sigma") / positive_finite(sensitivity, "sensitivity")
    eps = float(epsilon)
    if not math.isfinite(eps) or eps < 0:
        raise InputError(f"epsilon must be a non-negative finite number, got {epsilon!r}")
    a = 1 / (2 * s)
    b = eps * s
    first = 0.5 * math.erfc(-(a - b) / math.sqrt(2.0))
    second = math.exp(eps + log_ndtr(-a - b))
    return max(0.0, first - second)


def classic_gaussian_sigma(epsilon: float, delta: float, sensitivity: float = 1.0) -> float:
    """``sqrt(2 ln(1.25/delta)) * sensitivity / epsilon`` (Dwork-Roth Thm A.1).

    Raises :class:`ConfigurationError` for ``epsilon >= 1``, where the classic bound is
    not a theorem; use :func:`analytic_gaussian_sigma` there (it is valid and smaller).
    """
    eps = positive_finite(epsilon, "epsilon")
    d = _delta(delta)
    sens = positive_finite(sensitivity, "sensitivity")
    if eps >= 1:
        raise ConfigurationError(
            f"the classic Gaussian calibration only holds for epsilon < 1 (got {eps}); "
            "use analytic_gaussian_sigma, which is valid for every epsilon"
        )
    return math.sqrt(2 * math.log(1.25 / d)) * sens / eps


def analytic_gaussian_sigma(epsilon: float, delta: float, sensitivity: float = 1.0) -> float:
    """Smallest Gaussian noise sigma that makes a query (epsilon, delta)-DP (Balle-Wang 2018).

    Parameters
    ----------
    epsilon:
        > 0.
    delta:
        in (0, 1).
    sensitivity:
        L2 sensitivity of the query (> 0), same unit as the returned sigma.

    Returns
    -------
    float: sigma (standard deviation of the Gaussian noise), relative precision 1e-12.

    Raises
    ------
    InputError
        for out-of-range arguments.
    """
    eps = positive_finite(epsilon, "epsilon")
    d = _delta(delta)
    sens = positive_finite(sensitivity, "sensitivity")
    sigma = smallest_meeting(lambda x: gaussian_delta(x, eps), d, floor=1e-12, ceiling=1e12, tolerance=1e-13,
                             what=f"no sigma below 1e12 reaches delta={d} at epsilon={eps}")
    return sigma * sens


def laplace_scale(epsilon: float, sensitivity: float = 1.0) -> float:
    """Laplace scale ``b = sensitivity / epsilon`` for epsilon-DP (L1 sensitivity)."""
    return positive_finite(sensitivity, "sensitivity") / positive_finite(epsilon, "epsilon")


def l2_sensitivity(clip_norm: float, relation: str = "add_remove") -> float:
    """L2 sensitivity of a sum of contributions each clipped to L2 norm ``clip_norm``.

    ``relation="add_remove"`` (one contribution added or removed: ``clip_norm``) or
    ``"replace"`` (one contribution replaced by another: ``2 * clip_norm``).
    """
    c = positive_finite(clip_norm, "clip_norm")
    if relation == "add_remove":
        return c
    if relation == "replace":
        return 2 * c
    raise InputError(f"relation must be 'add_remove' or 'replace', got {relation!r}")


def l1_sensitivity(clip_norm: float, dim: int | None = None, *, norm: str = "l1", relation: str = "add_remove") -> float:
    """L1 sensitivity of a sum of clipped contributions.

    ``norm="l1"``: contributions are clipped in L1 norm to ``clip_norm``. ``norm="l2"``:
    clipped in L2 norm, then the L1 norm is at most ``sqrt(dim) * clip_norm``
    (Cauchy-Schwarz; ``dim`` required). Doubled for ``relation="replace"``.
    """
    c = positive_finite(clip_norm, "clip_norm")
    if norm == "l2":
        if not isinstance(dim, int) or dim < 1:
            raise InputError(f"dim must be a positive int when norm='l2', got {dim!r}")
        c = c * math.sqrt(dim)
    elif norm != "l1":
        raise InputError(f"norm must be 'l1' or 'l2', got {norm!r}")
    return l2_sensitivity(c, relation)
