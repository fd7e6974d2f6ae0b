"""The PLD privacy accountant: the RdpAccountant interface on privacy loss distributions.

:class:`PldAccountant` composes privacy events (:mod:`secagg.dp._accountant`, or
dp-accounting's, converted by :mod:`secagg.dp._interop`) into the privacy loss
distributions of :mod:`secagg.dp._pld` and :mod:`secagg.dp._pld_discrete`, keeping one
PLD per neighbouring direction (remove / add one record, as dp_accounting's
``PLDAccountant`` with ``ADD_OR_REMOVE_ONE``) and the Gaussian part in closed form.
``get_epsilon(delta)`` is the larger epsilon of the two directions. Every step only
replaces a PLD by one that dominates it, so the epsilon reported is never below the
true one (module docstring of :mod:`secagg.dp._pld`).

Events and what they become:

=========================================  ==============================================
``GaussianEvent(z)``                       exact Gaussian, ``mu^2 += 1/z^2``
``LaplaceEvent(b)``                        connect-the-dots PLD of the Laplace mechanism
``DiscreteGaussianEvent(z, sensitivity)``  exact PMF (one coordinate) or the vector bound
``DistributedDiscreteGaussianEvent``       sum of ``n`` discrete Gaussians, same
``SkellamEvent``                           Skellam, same
``PoissonSampledEvent(q, e)``              Gaussian: exact mixture profile; integer noise:
                                           exact mixture PMFs (scalar) or the subsampled
                                           vector bound; other ``e``: Zhu-Dong-Wang Thm 11
                                           on ``e``'s PLD
``SelfComposedEvent``, ``ComposedEvent``   FFT self-composition / convolution
=========================================  ==============================================
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

from ..errors import ConfigurationError, InputError
from ._accountant import (
    ComposedEvent,
    DiscreteGaussianEvent,
    DistributedDiscreteGaussianEvent,
    DpEvent,
    GaussianEvent,
    LaplaceEvent,
    NoOpEvent,
    PoissonSampledEvent,
    SelfComposedEvent,
    SkellamEvent,
)
from ._interop import as_event
from ._pld import (
    DEFAULT_TAIL_MASS_TRUNCATION,
    DEFAULT_VALUE_DISCRETIZATION_INTERVAL,
    GaussianCore,
    PldPair,
    gaussian_profile,
    laplace_pmf,
    subsampled_gaussian_pmf,
)
from ._pld_discrete import DiscreteNoise, event_pair

__all__ = ["PldAccountant", "event_pld", "pld_noise_multiplier", "gaussian_epsilon"]


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise InputError(f"count must be a non-negative integer, got {value!r}")
    return int(value)


def _interval(value: Any) -> float:
    try:
        h = float(value)
    except (TypeError, ValueError):
        raise InputError(f"value_discretization_interval must be a positive number, got {value!r}") from None
    if not (math.isfinite(h) and 0 < h <= 1):
        raise InputError(f"value_discretization_interval must be in (0, 1], got {value!r}")
    return h


@lru_cache(maxsize=64)
def event_pld(event: DpEvent, interval: float = DEFAULT_VALUE_DISCRETIZATION_INTERVAL) -> PldPair:
    """The :class:`~secagg.dp._pld.PldPair` of one run of ``event`` (cached per event).

    Raises
    ------
    ConfigurationError
        for an event the PLD accountant cannot bound (the message says what to change).
    """
    if isinstance(event, NoOpEvent):
        return PldPair()
    if isinstance(event, GaussianEvent):
        z = event.noise_multiplier
        return PldPair(nonprivate=True) if z == 0 else PldPair(GaussianCore(mu2=1.0 / (z * z)))
    if isinstance(event, LaplaceEvent):
        b = event.noise_multiplier
        if b == 0:
            return PldPair(nonprivate=True)
        pmf = laplace_pmf(1.0 / b, interval)
        return PldPair(GaussianCore(), pmf, pmf)
    if isinstance(event, (DiscreteGaussianEvent, DistributedDiscreteGaussianEvent, SkellamEvent)):
        return _integer_noise(event, 1.0, interval)
    if isinstance(event, PoissonSampledEvent):
        q, inner = event.sampling_rate, event.event
        if q == 0:
            return PldPair()
        if q == 1:
            return event_pld(inner, interval)
        if isinstance(inner, GaussianEvent):
            if inner.noise_multiplier == 0:
                return PldPair(nonprivate=True)
            rem = subsampled_gaussian_pmf(q, inner.noise_multiplier, "remove", interval)
            add = subsampled_gaussian_pmf(q, inner.noise_multiplier, "add", interval)
            return PldPair(GaussianCore(), rem, add)
        if isinstance(inner, (DiscreteGaussianEvent, DistributedDiscreteGaussianEvent, SkellamEvent)):
            return _integer_noise(inner, q, interval)
        return event_pld(inner, interval).subsample(q, interval)
    if isinstance(event, SelfComposedEvent):
        return event_pld(event.event, interval).self_compose(event.count)
    if isinstance(event, ComposedEvent):
        total = PldPair()
        for e in event.events:
            total = total.compose(event_pld(e, interval))
        return total
    raise ConfigurationError(f"unsupported privacy event {type(event).__name__}")


def _integer_noise(
    event: DiscreteGaussianEvent | DistributedDiscreteGaussianEvent | SkellamEvent, q: float, interval: float
) -> PldPair:
    if isinstance(event, DiscreteGaussianEvent):
        if event.noise_multiplier == 0:
            return PldPair(nonprivate=True)
        if event.sensitivity is None:
            raise ConfigurationError(
                "the PLD accountant needs the integer L2 sensitivity of a discrete Gaussian: "
                "pass DiscreteGaussianEvent(noise_multiplier, sensitivity=..., dim=...), or use accountant='rdp'"
            )
        sens = float(event.sensitivity)
        if sens == 0:
            return PldPair()
        l1 = math.inf if event.l1_sensitivity is None else float(event.l1_sensitivity)
        noise = DiscreteNoise("dg", event.noise_multiplier * sens, 1)
        return event_pair(noise, sens, l1, event.dim, q, interval)
    if isinstance(event, DistributedDiscreteGaussianEvent):
        noise = DiscreteNoise("dg", float(event.local_stddev), int(event.num_clients))
        return event_pair(noise, float(event.l2_sensitivity), float(event.l1_sensitivity), int(event.dim), q, interval)
    noise = DiscreteNoise("skellam", float(event.variance), 1)
    return event_pair(noise, float(event.l2_sensitivity), float(event.l1_sensitivity), event.dim, q, interval)


class PldAccountant:
    """Privacy accountant on privacy loss distributions (same interface as :class:`RdpAccountant`).

    Parameters
    ----------
    value_discretization_interval:
        grid step ``h`` of the privacy loss (nats, default ``1e-4`` as dp_accounting).
        Every loss is rounded up to a multiple of ``h``: smaller is tighter and slower.
    tail_mass_truncation:
        probability each composition may move to ``+inf`` when it trims tails (default
        ``1e-15``); it is charged to delta.

    Examples
    --------
    >>> from secagg.dp import GaussianEvent, PoissonSampledEvent
    >>> acc = PldAccountant().compose(PoissonSampledEvent(0.01, GaussianEvent(1.1)), count=1000)
    >>> round(acc.get_epsilon(1e-5), 2)
    1.52
    """

    def __init__(
        self,
        value_discretization_interval: float = DEFAULT_VALUE_DISCRETIZATION_INTERVAL,
        *,
        tail_mass_truncation: float = DEFAULT_TAIL_MASS_TRUNCATION,
    ) -> None:
        self._h = _interval(value_discretization_interval)
        tail = float(tail_mass_truncation)
        if not 0 <= tail < 1e-3:
            raise InputError(f"tail_mass_truncation must be in [0, 1e-3), got {tail_mass_truncation!r}")
        self._tail = tail
        self._state = PldPair()
        self._cache: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<PldAccountant interval={self._h:g} core_mu={math.sqrt(self._state.core.mu2):.4g}>"

    @property
    def value_discretization_interval(self) -> float:
        """The discretization interval ``h``."""
        return self._h

    @property
    def pld(self) -> PldPair:
        """The composed :class:`~secagg.dp._pld.PldPair` (immutable)."""
        return self._state

    def copy(self) -> "PldAccountant":
        """An independent accountant with the same spent privacy."""
        other = PldAccountant(self._h, tail_mass_truncation=self._tail)
        other._state = self._state
        return other

    def event_pld(self, event: Any) -> PldPair:
        """The PLD pair of one run of ``event`` (nothing is composed)."""
        return event_pld(as_event(event), self._h)

    def compose(self, event: Any, count: int = 1) -> "PldAccountant":
        """Add ``count`` runs of ``event`` (a secagg or dp_accounting event); returns ``self``.

        Raises
        ------
        InputError
            for a negative or non-integer ``count``.
        ConfigurationError
            for an event this accountant cannot bound.
        """
        n = _count(count)
        pair = self.event_pld(event)
        if n == 0:
            return self
        self._state = self._state.compose(pair.self_compose(n, self._tail), self._tail)
        self._cache.clear()
        return self

    def get_epsilon(self, delta: float) -> float:
        """Epsilon spent so far at ``delta`` in [0, 1] (``inf`` if no finite epsilon)."""
        d = _delta(delta)
        key = f"eps{d!r}"
        if key not in self._cache:
            self._cache[key] = self._state.epsilon(d, self._h)
        return float(self._cache[key])

    def get_delta(self, epsilon: float) -> float:
        """Delta spent so far at ``epsilon >= 0``."""
        try:
            e = float(epsilon)
        except (TypeError, ValueError):
            raise InputError(f"epsilon must be a non-negative number, got {epsilon!r}") from None
        if not e >= 0:
            raise InputError(f"epsilon must be non-negative, got {epsilon!r}")
        return float(self._state.delta(e, self._h))


def _delta(delta: Any) -> float:
    try:
        d = float(delta)
    except (TypeError, ValueError):
        raise InputError(f"delta must be a number in [0, 1], got {delta!r}") from None
    if not 0 <= d <= 1:
        raise InputError(f"delta must be in [0, 1], got {delta!r}")
    return d


# ---------------------------------------------------------------------------- calibration
def gaussian_epsilon(mu: float, delta: float) -> float:
    """Exact epsilon of the Gaussian pair with parameter ``mu`` at ``delta`` (upper end of a bisection)."""
    return GaussianCore(mu2=mu * mu).epsilon(delta)


def _gaussian_mu_for(epsilon: float, delta: float) -> float:
    """Largest ``mu`` (to 1e-12 relative, rounded down) with ``delta_G(epsilon; mu) <= delta``."""
    def d(mu: float) -> float:
        return float(gaussian_profile(np.array([epsilon]), mu)[0])

    lo, hi = 0.0, 1.0
    while d(hi) <= delta:
        lo, hi = hi, hi * 2.0
        if hi > 1e6:
            return lo
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if d(mid) <= delta:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return lo


def pld_noise_multiplier(
    epsilon: float,
    delta: float,
    sampling_rate: float,
    steps: int,
    *,
    tolerance: float = 1e-4,
    value_discretization_interval: float = DEFAULT_VALUE_DISCRETIZATION_INTERVAL,
    start: float | None = None,
) -> float:
    """Smallest noise multiplier (to ``tolerance`` relative) with PLD epsilon <= ``epsilon``.

    ``sampling_rate = 1``: the composition is one Gaussian with ``mu = sqrt(steps)/z``,
    solved in closed form (exact). Otherwise: a bracketed search on ``log z`` (regula
    falsi with bisection fallback) on the PLD epsilon of ``steps`` Poisson-sampled
    Gaussian steps; ``start`` (e.g. the RDP solution) seeds the bracket. The returned
    value always meets the target (it is the upper end of the final bracket).

    Raises :class:`ConfigurationError` when no multiplier below 1e6 reaches the target.
    """
    h = _interval(value_discretization_interval)
    if sampling_rate >= 1.0:
        mu = _gaussian_mu_for(epsilon, delta)
        if mu <= 0:
            raise ConfigurationError(f"no noise multiplier reaches epsilon={epsilon} at delta={delta}")
        z = math.sqrt(steps) / mu * (1.0 + 1e-12)
        return z

    def eps_of(z: float) -> float:
        ev = PoissonSampledEvent(sampling_rate, GaussianEvent(z))
        return PldAccountant(h).compose(ev, steps).get_epsilon(delta)

    hi = float(start) if start is not None and start > 0 else 1.0
    e_hi = eps_of(hi)
    while e_hi > epsilon:
        hi *= 1.5
        if hi > 1e6:
            raise ConfigurationError(f"no noise multiplier below 1e6 reaches epsilon={epsilon} at delta={delta}")
        e_hi = eps_of(hi)
    lo = hi / 1.25
    e_lo = eps_of(lo)
    while e_lo <= epsilon:
        hi, e_hi = lo, e_lo
        lo /= 1.5
        if lo < 1e-3:
            return hi
        e_lo = eps_of(lo)
    # f(x) = log eps(e^x) - log target is decreasing and smooth: regula falsi (Illinois)
    target = math.log(epsilon)
    xl, xh = math.log(lo), math.log(hi)
    fl, fh = math.log(e_lo) - target, math.log(max(e_hi, 1e-300)) - target
    side = 0
    for _ in range(60):
        if xh - xl <= math.log1p(tolerance):
            break
        if math.isfinite(fl) and math.isfinite(fh) and fl != fh:
            x = xh - fh * (xh - xl) / (fh - fl)
            width = xh - xl
            if not xl + 0.02 * width < x < xh - 0.02 * width:
                x = 0.5 * (xl + xh)
        else:
            x = 0.5 * (xl + xh)
        e = eps_of(math.exp(x))
        f = math.log(max(e, 1e-300)) - target
        if e > epsilon:
            xl, fl = x, f
            if side == -1:
                fh *= 0.5
            side = -1
        else:
            xh, fh = x, f
            if side == 1:
                fl *= 0.5
            side = 1
    return math.exp(xh)
