"""Renyi-DP privacy accountant: events, composition, conversion to (epsilon, delta).

Follows the design of Google's ``dp_accounting`` (``dp_event.py``,
``rdp/rdp_privacy_accountant.py``): privacy *events* are small immutable objects, an
:class:`RdpAccountant` composes them by adding their Renyi-DP curves over a fixed grid
of orders, and converts the total to (epsilon, delta). All math is vectorized over the
orders (no Python loop over orders or series terms). Results agree with
``dp_accounting.rdp.RdpAccountant`` (v0.6) on the same orders to 1e-6 relative
(tests/dp/test_dp_accountant.py holds its reference values).

Formulas (alpha = order, z = noise multiplier = sigma / L2 sensitivity):

* Gaussian mechanism (Mironov, "Renyi Differential Privacy", CSF 2017, Prop. 7):
  ``RDP(alpha) = alpha / (2 z^2)``.
* Poisson-subsampled Gaussian with rate q (Mironov, Talwar, Zhang, "Renyi Differential
  Privacy of the Sampled Gaussian Mechanism", 2019, Sec. 3.3):
  ``RDP(alpha) = log(A_alpha) / (alpha - 1)``; for integer alpha
  ``A_alpha = sum_{i=0}^{alpha} C(alpha, i) (1-q)^(alpha-i) q^i exp((i^2 - i) / (2 z^2))``
  (evaluated in log space with log-sum-exp); for fractional alpha the two-series
  expansion ``A = sum_i [t0_i e0_i + t1_i e1_i]`` with ``z0 = z^2 log(1/q - 1) + 1/2``,
  ``e0_i = erfc((i - z0) / (sqrt 2 z)) / 2`` and ``e1_i = erfc((z0 - (alpha-i)) /
  (sqrt 2 z)) / 2``, summed until both series decrease and are below total * e^-30
  (as ``_compute_log_a_frac`` in dp_accounting / TF-Privacy).
* Laplace mechanism with scale b = z * L1 sensitivity (Mironov 2017, Prop. 6; the
  numerically stable form of dp_accounting).
* Discrete Gaussian on an integer-valued query (Canonne, Kamath, Steinke, NeurIPS 2020,
  Thm 4 and 14): ``(Delta^2 / (2 sigma^2))``-concentrated DP, i.e. the same RDP curve as
  the continuous Gaussian.
* Sum of n discrete Gaussians, each ``N_Z(0, s^2)`` (Kairouz, Liu, Steinke, "The
  Distributed Discrete Gaussian Mechanism for Federated Learning with Secure
  Aggregation", ICML 2021, Thm 1 / Prop 14): with ``tau = 10 sum_{k=1}^{n-1}
  exp(-2 pi^2 s^2 k/(k+1))``, ``a = D2/(sqrt(n) s)``, ``b = D1/(sqrt(n) s)``:
  ``RDP(alpha) = min(alpha a^2/2 + tau d, alpha/2 (a^2 + 2 b tau + tau^2 d),
  alpha/2 (a + sqrt(d) tau)^2)``.
* Skellam with per-coordinate variance mu (Agarwal, Kairouz, Liu, "The Skellam
  Mechanism for Differentially Private Federated Learning", NeurIPS 2021, Thm 3.5),
  integer alpha: ``alpha D2^2/(2 mu) + min(((2 alpha - 1) D2^2 + 6 D1)/(4 mu^2),
  3 D1/(2 mu))``; fractional orders use ``ceil(alpha)`` (RDP is non-decreasing in alpha,
  so this is a valid upper bound).
* Composition: RDP curves add (Mironov 2017, Prop. 1).
* Conversion (Canonne, Kamath, Steinke 2020, Prop. 12 / Balle et al., "Hypothesis
  Testing Interpretations and Renyi Differential Privacy", AISTATS 2020, Thm 21):
  ``epsilon = min_alpha RDP(alpha) + log1p(-1/alpha) - log(delta alpha) / (alpha - 1)``
  for alpha > 1.01, and epsilon = 0 when ``delta^2 + expm1(-RDP) > 0`` (the KL bound
  ``delta <= sqrt(1 - exp(-KL))``); the inverse for delta:
  ``log delta = min_alpha min(0.5 log1p(-exp(-RDP)), (alpha-1)(RDP - eps + log1p(-1/alpha)) - log alpha)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, Sequence, TypeVar, overload

import numpy as np
from numpy.typing import ArrayLike

from ..errors import ConfigurationError, InputError
from ._calibration import smallest_meeting

if TYPE_CHECKING:
    from ._pld_accountant import PldAccountant

__all__ = [
    "DEFAULT_RDP_ORDERS",
    "DpEvent",
    "GaussianEvent",
    "LaplaceEvent",
    "DiscreteGaussianEvent",
    "DistributedDiscreteGaussianEvent",
    "SkellamEvent",
    "PoissonSampledEvent",
    "SelfComposedEvent",
    "ComposedEvent",
    "NoOpEvent",
    "RdpAccountant",
    "rdp_gaussian",
    "rdp_poisson_subsampled_gaussian",
    "epsilon_from_rdp",
    "delta_from_rdp",
    "compute_epsilon",
    "make_accountant",
    "noise_multiplier_for",
    "steps_for_epochs",
]

#: The orders of dp_accounting's default RdpAccountant (v0.6 DEFAULT_RDP_ORDERS).
DEFAULT_RDP_ORDERS: tuple[float, ...] = tuple(
    [1 + x / 10.0 for x in range(1, 100)] + list(range(11, 64)) + [128, 256, 512, 1024]
)


# ---------------------------------------------------------------------------- events
def _nonneg(value: float, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a non-negative number, got {value!r}") from None
    if math.isnan(v) or v < 0:
        raise InputError(f"{name} must be a non-negative number, got {value!r}")
    return v


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _count(value: object, name: str) -> int:
    """A non-negative integer count (bools and non-integral numbers refused: int(2.5) under-counts)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise InputError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


class DpEvent:
    """Base class of privacy events (immutable descriptions of a mechanism run)."""


@dataclass(frozen=True)
class NoOpEvent(DpEvent):
    """An event that costs no privacy (e.g. a round that released nothing)."""


@dataclass(frozen=True)
class GaussianEvent(DpEvent):
    """One Gaussian mechanism run with ``sigma = noise_multiplier * L2 sensitivity``."""

    noise_multiplier: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "noise_multiplier", _nonneg(self.noise_multiplier, "noise_multiplier"))


@dataclass(frozen=True)
class LaplaceEvent(DpEvent):
    """One Laplace mechanism run with ``scale = noise_multiplier * L1 sensitivity``."""

    noise_multiplier: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "noise_multiplier", _nonneg(self.noise_multiplier, "noise_multiplier"))


@dataclass(frozen=True)
class DiscreteGaussianEvent(DpEvent):
    """Discrete Gaussian ``N_Z(0, sigma^2)`` per coordinate on an integer query, ``sigma = noise_multiplier * sensitivity``.

    ``sensitivity``: the L2 sensitivity in integer units (``None``: unknown);
    ``l1_sensitivity`` and ``dim`` (optional) bound how many coordinates can change.
    The RDP accountant needs only the ratio (CKS 2020: ``(Delta/sigma)^2/2``-concentrated
    DP, the Gaussian's RDP curve); the PLD accountant needs ``sensitivity`` (the
    discrete noise's privacy depends on the scale, not only on the ratio), and so does
    Poisson subsampling under either accountant (the subsampled-Gaussian RDP formula is
    proven for continuous noise; the RDP accountant applies it through the comparison
    of :mod:`secagg.dp._pld_discrete`).
    """

    noise_multiplier: float
    sensitivity: float | None = None
    l1_sensitivity: float | None = None
    dim: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "noise_multiplier", _nonneg(self.noise_multiplier, "noise_multiplier"))
        if self.sensitivity is not None:
            object.__setattr__(self, "sensitivity", _nonneg(self.sensitivity, "sensitivity"))
        if self.l1_sensitivity is not None:
            object.__setattr__(self, "l1_sensitivity", _nonneg(self.l1_sensitivity, "l1_sensitivity"))
        if self.dim is not None:
            object.__setattr__(self, "dim", _positive_int(self.dim, "dim"))


@dataclass(frozen=True)
class DistributedDiscreteGaussianEvent(DpEvent):
    """Sum of ``num_clients`` independent ``N_Z(0, local_stddev^2)^dim`` vectors (KLS 2021).

    All quantities in integer units: ``l2_sensitivity`` and ``l1_sensitivity`` bound the
    norms of one client's integer vector; ``dim`` is its length.
    """

    local_stddev: float
    num_clients: int
    l2_sensitivity: float
    l1_sensitivity: float
    dim: int

    def __post_init__(self) -> None:
        if _nonneg(self.local_stddev, "local_stddev") <= 0:
            raise InputError("local_stddev must be > 0")
        try:
            n, d = int(self.num_clients), int(self.dim)
        except (TypeError, ValueError):
            raise InputError(f"num_clients and dim must be integers, got {self.num_clients!r}, {self.dim!r}") from None
        if n < 1 or d < 1:
            raise InputError(f"num_clients and dim must be >= 1, got {self.num_clients}, {self.dim}")
        _nonneg(self.l2_sensitivity, "l2_sensitivity")
        _nonneg(self.l1_sensitivity, "l1_sensitivity")


@dataclass(frozen=True)
class SkellamEvent(DpEvent):
    """Skellam noise of per-coordinate ``variance`` on an integer query (Agarwal et al. 2021).

    ``dim`` (optional): the number of coordinates; the PLD accountant's vector bound
    grows with the number of coordinates that can change, ``min(dim, l1, l2^2)``.
    """

    variance: float
    l2_sensitivity: float
    l1_sensitivity: float
    dim: int | None = None

    def __post_init__(self) -> None:
        if _nonneg(self.variance, "variance") <= 0:
            raise InputError("variance must be > 0")
        _nonneg(self.l2_sensitivity, "l2_sensitivity")
        _nonneg(self.l1_sensitivity, "l1_sensitivity")
        if self.dim is not None:
            object.__setattr__(self, "dim", _positive_int(self.dim, "dim"))


@dataclass(frozen=True)
class PoissonSampledEvent(DpEvent):
    """``event`` run on a Poisson sample (each record included w.p. ``sampling_rate``)."""

    sampling_rate: float
    event: DpEvent

    def __post_init__(self) -> None:
        q = _nonneg(self.sampling_rate, "sampling_rate")
        if q > 1:
            raise InputError(f"sampling_rate must be in [0, 1], got {self.sampling_rate!r}")
        object.__setattr__(self, "sampling_rate", q)
        if not isinstance(self.event, DpEvent):
            raise InputError(f"event must be a DpEvent, got {type(self.event).__name__}")


@dataclass(frozen=True)
class SelfComposedEvent(DpEvent):
    """``event`` repeated ``count`` times."""

    event: DpEvent
    count: int

    def __post_init__(self) -> None:
        if not isinstance(self.event, DpEvent):
            raise InputError(f"event must be a DpEvent, got {type(self.event).__name__}")
        object.__setattr__(self, "count", _count(self.count, "count"))


@dataclass(frozen=True)
class ComposedEvent(DpEvent):
    """Several events run one after another."""

    events: tuple[DpEvent, ...]

    def __post_init__(self) -> None:
        try:
            events = tuple(self.events)
        except TypeError:
            raise InputError(f"events must be a sequence of DpEvent, got {type(self.events).__name__}") from None
        bad = [type(e).__name__ for e in events if not isinstance(e, DpEvent)]
        if bad:
            raise InputError(f"events must all be DpEvent objects, got {', '.join(bad)}")
        object.__setattr__(self, "events", events)


# ---------------------------------------------------------------------------- RDP math
def rdp_gaussian(noise_multiplier: float, orders: ArrayLike) -> np.ndarray:
    """RDP of the Gaussian mechanism: ``orders / (2 z^2)`` (inf for z = 0)."""
    orders = np.asarray(orders, dtype=np.float64)
    if noise_multiplier == 0:
        return np.full(orders.shape, np.inf)
    return orders / (2.0 * noise_multiplier**2)


def _log_erfc(x: np.ndarray) -> np.ndarray:
    """log(erfc(x)), vectorized; accurate in the far tail (asymptotic series beyond x = 25)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    tail = x > 25.0
    if np.any(~tail):
        out[~tail] = np.log(_ERFC(x[~tail]).astype(np.float64))
    if np.any(tail):
        xt = x[tail]
        z = xt**-2
        out[tail] = (
            -0.5 * math.log(math.pi)
            - np.log(xt)
            - xt**2
            - 0.5 * z
            + 0.625 * z**2
            - 37.0 / 24.0 * z**3
            + 353.0 / 64.0 * z**4
        )
    return out


_ERFC = np.frompyfunc(math.erfc, 1, 1)


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    m = np.max(a, axis=axis, keepdims=True)
    m_safe = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        s: np.ndarray = np.log(np.sum(np.exp(a - m_safe), axis=axis, keepdims=True)) + m_safe
    return np.squeeze(s, axis=axis)


def _log_a_int(q: float, sigma: float, alphas: np.ndarray) -> np.ndarray:
    """log(A_alpha) for integer alphas (vector), 0 < q < 1: exact binomial expansion."""
    amax = int(alphas.max())
    i = np.arange(amax + 1, dtype=np.float64)
    logfact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, amax + 1, dtype=np.float64)))])
    a_col = alphas[:, None]
    ai = a_col - i[None, :]
    valid = ai >= 0
    ai_idx = np.where(valid, ai, 0).astype(np.int64)
    log_comb = logfact[alphas.astype(np.int64)][:, None] - logfact[None, :] - logfact[ai_idx]
    terms = log_comb + i * math.log(q) + ai * math.log1p(-q) + (i * i - i) / (2.0 * sigma**2)
    terms = np.where(valid, terms, -np.inf)
    return _logsumexp(terms, axis=1)


_MAX_TERMS_FRAC = 1000


def _log_a_frac(q: float, sigma: float, alphas: np.ndarray) -> np.ndarray:
    """log(A_alpha) for fractional alphas (vector), 0 < q < 1: the two-series expansion (MTZ 2019 Sec 3.3)."""
    z0 = sigma**2 * math.log(1.0 / q - 1.0) + 0.5
    log_q, log1mq = math.log(q), math.log1p(-q)
    result = np.full(alphas.shape, np.inf)
    todo = np.arange(alphas.size)
    n_terms = 64
    while todo.size:
        a = alphas[todo][:, None]
        i = np.arange(n_terms, dtype=np.float64)[None, :]
        # log |C(alpha, i)| = sum_{k=1}^{i} log|alpha - k + 1| - log k
        steps = np.log(np.abs(a - i[:, 1:] + 1.0)) - np.log(i[:, 1:])
        log_coef = np.concatenate([np.zeros((a.shape[0], 1)), np.cumsum(steps, axis=1)], axis=1)
        j = a - i
        log_t0 = log_coef + i * log_q + j * log1mq
        log_t1 = log_coef + j * log_q + i * log1mq
        log_e0 = math.log(0.5) + _log_erfc((i - z0) / (math.sqrt(2) * sigma) + 0 * a)
        log_e1 = math.log(0.5) + _log_erfc((z0 - j) / (math.sqrt(2) * sigma))
        log_s0 = log_t0 + (i * i - i) / (2 * sigma**2) + log_e0
        log_s1 = log_t1 + (j * j - j) / (2 * sigma**2) + log_e1
        # stopping rule of dp_accounting: first i where both series decrease and are < total - 30
        cum = np.logaddexp(np.logaddexp.accumulate(log_s0, axis=1), np.logaddexp.accumulate(log_s1, axis=1))
        dec = np.zeros_like(log_s0, dtype=bool)
        dec[:, 1:] = (log_s0[:, 1:] < log_s0[:, :-1]) & (log_s1[:, 1:] < log_s1[:, :-1])
        stop = dec & (np.maximum(log_s0, log_s1) < cum - 30)
        has = stop.any(axis=1)
        first = np.argmax(stop, axis=1)
        done = todo[has]
        result[done] = cum[has, first[has]]
        todo = todo[~has]
        if n_terms >= _MAX_TERMS_FRAC:
            break  # non-converged orders stay +inf and are ignored, as in dp_accounting
        n_terms = min(n_terms * 4, _MAX_TERMS_FRAC)
    return result


def rdp_poisson_subsampled_gaussian(sampling_rate: float, noise_multiplier: float, orders: ArrayLike) -> np.ndarray:
    """RDP curve of the Poisson-subsampled Gaussian (Mironov-Talwar-Zhang 2019), shape of ``orders``."""
    q, z = float(sampling_rate), float(noise_multiplier)
    orders = np.asarray(orders, dtype=np.float64)
    if not 0 <= q <= 1:
        raise InputError(f"sampling_rate must be in [0, 1], got {sampling_rate!r}")
    if z < 0:
        raise InputError(f"noise_multiplier must be non-negative, got {noise_multiplier!r}")
    if q == 0:
        return np.zeros(orders.shape)
    if z == 0:
        return np.full(orders.shape, np.inf)
    if q == 1:
        return rdp_gaussian(z, orders)
    out = np.full(orders.shape, np.inf)
    finite = np.isfinite(orders)
    is_int = finite & (orders == np.floor(orders))
    if is_int.any():
        out[is_int] = _log_a_int(q, z, orders[is_int]) / (orders[is_int] - 1)
    frac = finite & ~is_int
    if frac.any():
        out[frac] = _log_a_frac(q, z, orders[frac]) / (orders[frac] - 1)
    return out


def _rdp_laplace(noise_multiplier: float, orders: np.ndarray) -> np.ndarray:
    if noise_multiplier == 0:
        return np.full(orders.shape, np.inf)
    eps = 1.0 / noise_multiplier
    a = orders
    out = np.empty(a.shape)
    kl = a == 1
    small = (a > 1) & (a < 1.1)
    big = a >= 1.1
    out[kl] = eps + math.expm1(-eps)
    if small.any():
        c = np.expm1(eps * (1 - 2 * a[small])) / (2 * a[small] - 1)
        v = -c * (a[small] - 1)
        k = np.arange(1, 100)[None, :]
        out[small] = eps + c * np.sum(v[:, None] ** (k - 1) / k, axis=1)
    out[big] = eps + np.log1p((a[big] - 1) * np.expm1(eps * (1 - 2 * a[big])) / (2 * a[big] - 1)) / (a[big] - 1)
    return out


def _rdp_ddg(ev: DistributedDiscreteGaussianEvent, orders: np.ndarray) -> np.ndarray:
    n, s, d = int(ev.num_clients), float(ev.local_stddev), int(ev.dim)
    k = np.arange(1, n, dtype=np.float64)
    tau = 10.0 * float(np.sum(np.exp(-2.0 * (math.pi * s) ** 2 * (k / (k + 1))))) if n > 1 else 0.0
    a = ev.l2_sensitivity / (math.sqrt(n) * s)
    b = ev.l1_sensitivity / (math.sqrt(n) * s)
    t1 = orders / 2.0 * a**2 + tau * d
    t2 = orders / 2.0 * (a**2 + 2 * b * tau + tau**2 * d)
    t3 = orders / 2.0 * (a + math.sqrt(d) * tau) ** 2
    return np.minimum(np.minimum(t1, t2), t3)


def _rdp_skellam(ev: SkellamEvent, orders: np.ndarray) -> np.ndarray:
    a = np.ceil(orders)
    mu, d2, d1 = float(ev.variance), float(ev.l2_sensitivity), float(ev.l1_sensitivity)
    rdp: np.ndarray = a * d2**2 / (2 * mu) + np.minimum(((2 * a - 1) * d2**2 + 6 * d1) / (4 * mu**2), 3 * d1 / (2 * mu))
    return rdp


def _rdp_subsampled_discrete(q: float, inner: DpEvent, orders: np.ndarray) -> np.ndarray:
    """RDP of a Poisson-subsampled discrete Gaussian, by comparison (the code also covers DDG events).

    The subsampled-Gaussian formula (Mironov-Talwar-Zhang 2019) is proven for continuous
    noise only. :mod:`secagg.dp._pld_discrete` bounds the noise PMF ``p`` between
    ``e^{-b'} q`` and ``e^{a'} q``, where ``q`` is a continuous Gaussian of std ``s1``
    rounded by a post-processing kernel; only ``k`` coordinates differ, so with ``a = k
    a'``, ``b = k b'`` both subsampled mixtures (and the base) are within those factors of
    the post-processed subsampled Gaussian, whose RDP is at most MTZ's for noise
    multiplier ``s1 / l2`` (data processing). ``D_a(P || P') <= D_a(Q || Q') + (alpha a +
    (alpha - 1) b)/(alpha - 1)`` then gives ``MTZ(q, s1/l2) + alpha a/(alpha - 1) + b``,
    in both neighbouring directions. Needs the discrete Gaussian's integer sensitivity.
    """
    from ._pld_discrete import DiscreteNoise, coordinates_that_change, core_for

    if isinstance(inner, DiscreteGaussianEvent):
        if inner.noise_multiplier == 0:
            return np.full(orders.shape, np.inf)
        if inner.sensitivity is None:
            raise ConfigurationError(
                "Poisson subsampling of a discrete Gaussian needs its integer L2 sensitivity: "
                "pass DiscreteGaussianEvent(noise_multiplier, sensitivity=..., dim=...)"
            )
        l2 = float(inner.sensitivity)
        l1 = math.inf if inner.l1_sensitivity is None else float(inner.l1_sensitivity)
        noise = DiscreteNoise("dg", inner.noise_multiplier * l2, 1)
        dim = inner.dim
    else:
        assert isinstance(inner, DistributedDiscreteGaussianEvent)
        l2, l1, dim = float(inner.l2_sensitivity), float(inner.l1_sensitivity), int(inner.dim)
        noise = DiscreteNoise("dg", float(inner.local_stddev), int(inner.num_clients))
    k = coordinates_that_change(l2, l1, dim)
    if k == 0:
        return np.zeros(orders.shape)
    l2_eff = min(math.sqrt(math.floor(l2 * l2 * (1 + 1e-12) + 1e-9)), l1)
    core = core_for(noise, float(l2_eff), int(k))
    z_eff = 1.0 / math.sqrt(core.mu2)
    return rdp_poisson_subsampled_gaussian(q, z_eff, orders) + core.a * orders / (orders - 1.0) + core.b


def epsilon_from_rdp(orders: ArrayLike, rdp: ArrayLike, delta: float) -> tuple[float, float]:
    """(epsilon, optimal order) for an RDP curve at ``delta`` (CKS 2020 / Balle et al. 2020)."""
    orders = np.asarray(orders, dtype=np.float64)
    rdp = np.asarray(rdp, dtype=np.float64)
    delta = float(delta)
    if not 0 <= delta <= 1 or math.isnan(delta):
        raise InputError(f"delta must be in [0, 1], got {delta!r}")
    if orders.shape != rdp.shape:
        raise InputError("orders and rdp must have the same length")
    if delta == 0:
        return (0.0, 0.0) if np.all(rdp == 0) else (math.inf, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        eps = np.where(
            orders > 1.01,
            rdp + np.log1p(-1.0 / orders) - math.log(delta) / (orders - 1) - np.log(orders) / (orders - 1),
            np.inf,
        )
        eps = np.where(delta**2 + np.expm1(-rdp) > 0, 0.0, eps)
        eps = np.where(rdp < 0, 0.0, eps)
    eps = np.where(np.isnan(eps), np.inf, eps)
    k = int(np.argmin(eps))
    return max(0.0, float(eps[k])), float(orders[k])


def delta_from_rdp(orders: ArrayLike, rdp: ArrayLike, epsilon: float) -> tuple[float, float]:
    """(delta, optimal order) for an RDP curve at ``epsilon`` (inverse of :func:`epsilon_from_rdp`)."""
    orders = np.asarray(orders, dtype=np.float64)
    rdp = np.asarray(rdp, dtype=np.float64)
    epsilon = float(epsilon)
    if not epsilon >= 0:
        raise InputError(f"epsilon must be non-negative, got {epsilon!r}")
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = np.where(rdp > 0, 0.5 * np.log1p(-np.exp(-rdp)), -np.inf)
        bound = (orders - 1) * (rdp - epsilon + np.log1p(-1.0 / orders)) - np.log(orders)
        logd = np.where(orders > 1.01, np.minimum(kl, bound), kl)
        logd = np.where(rdp < 0, -np.inf, logd)
    logd = np.where(np.isnan(logd), np.inf, logd)
    k = int(np.argmin(logd))
    return min(math.exp(float(logd[k])), 1.0), float(orders[k])


def _times(count: int, rdp: np.ndarray) -> np.ndarray:
    """``count`` runs of an event: ``count * rdp``, with zero runs costing exactly nothing
    (``0 * inf`` would be NaN and poison every later epsilon)."""
    return np.zeros_like(rdp) if count == 0 else count * rdp


# ---------------------------------------------------------------------------- accountant
class RdpAccountant:
    """Accumulates the RDP of composed events over a grid of orders.

    Parameters
    ----------
    orders:
        RDP orders (all > 1). Default :data:`DEFAULT_RDP_ORDERS` (dp_accounting's).

    Examples
    --------
    >>> acc = RdpAccountant()
    >>> acc.compose(PoissonSampledEvent(0.01, GaussianEvent(1.1)), count=1000)  # doctest: +ELLIPSIS
    <...RdpAccountant...>
    >>> round(acc.get_epsilon(1e-5), 3)
    1.712
    """

    def __init__(self, orders: ArrayLike | None = None) -> None:
        arr = np.asarray(DEFAULT_RDP_ORDERS if orders is None else orders, dtype=np.float64)
        if arr.ndim != 1 or arr.size == 0 or not np.all(arr > 1) or not np.all(np.isfinite(arr)):
            raise InputError("orders must be a non-empty 1-D sequence of finite numbers > 1")
        self._orders = arr
        self._rdp = np.zeros_like(arr)

    def __repr__(self) -> str:
        return f"<RdpAccountant orders={self._orders.size} rdp_max={float(self._rdp.max()):.4g}>"

    @property
    def orders(self) -> np.ndarray:
        """Copy of the RDP orders (float64)."""
        return self._orders.copy()

    @property
    def rdp(self) -> np.ndarray:
        """Copy of the accumulated RDP at each order (float64)."""
        return self._rdp.copy()

    def copy(self) -> "RdpAccountant":
        """An independent accountant with the same orders and spent RDP."""
        other = RdpAccountant(self._orders)
        other._rdp = self._rdp.copy()
        return other

    def event_rdp(self, event: DpEvent) -> np.ndarray:
        """The RDP curve of one ``event`` on this accountant's orders (nothing is composed).

        Raises :class:`ConfigurationError` for an event this accountant cannot handle.
        """
        from ._interop import as_event

        event = as_event(event)
        o = self._orders
        if isinstance(event, NoOpEvent):
            return np.zeros_like(o)
        if isinstance(event, (GaussianEvent, DiscreteGaussianEvent)):
            return rdp_gaussian(event.noise_multiplier, o)
        if isinstance(event, LaplaceEvent):
            return _rdp_laplace(event.noise_multiplier, o)
        if isinstance(event, DistributedDiscreteGaussianEvent):
            if event.local_stddev < 0.5:
                raise ConfigurationError(
                    f"the distributed discrete Gaussian RDP bound (Kairouz-Liu-Steinke 2021, Thm 1) needs a "
                    f"per-client sigma >= 1/2, got {event.local_stddev:g}; use more noise or the PLD accountant"
                )
            return _rdp_ddg(event, o)
        if isinstance(event, SkellamEvent):
            return _rdp_skellam(event, o)
        if isinstance(event, PoissonSampledEvent):
            inner = event.event
            if isinstance(inner, GaussianEvent):
                return rdp_poisson_subsampled_gaussian(event.sampling_rate, inner.noise_multiplier, o)
            if event.sampling_rate == 1.0:
                return self.event_rdp(inner)
            if event.sampling_rate == 0.0:
                return np.zeros_like(o)
            if isinstance(inner, DiscreteGaussianEvent):
                return _rdp_subsampled_discrete(event.sampling_rate, inner, o)
            raise ConfigurationError(
                f"the RDP accountant bounds Poisson subsampling of Gaussian and discrete Gaussian events only, got "
                f"{type(inner).__name__}; use the PLD accountant (make_accountant('pld'))"
            )
        if isinstance(event, SelfComposedEvent):
            return _times(event.count, self.event_rdp(event.event))
        if isinstance(event, ComposedEvent):
            total = np.zeros_like(o)
            for e in event.events:
                total = total + self.event_rdp(e)
            return total
        raise ConfigurationError(f"unsupported privacy event {type(event).__name__}")

    def compose(self, event: DpEvent, count: int = 1) -> "RdpAccountant":
        """Add ``count`` runs of ``event`` (a secagg or dp_accounting event) to the spent privacy; returns ``self``."""
        if not isinstance(count, (int, np.integer)) or count < 0:
            raise InputError(f"count must be a non-negative integer, got {count!r}")
        self._rdp = self._rdp + _times(int(count), self.event_rdp(event))
        return self

    def get_epsilon_and_optimal_order(self, delta: float) -> tuple[float, float]:
        """(epsilon, order) spent so far at ``delta``."""
        return epsilon_from_rdp(self._orders, self._rdp, delta)

    def get_epsilon(self, delta: float) -> float:
        """Epsilon spent so far at ``delta`` (in [0, 1])."""
        return self.get_epsilon_and_optimal_order(delta)[0]

    def get_delta(self, epsilon: float) -> float:
        """Delta spent so far at ``epsilon`` (>= 0)."""
        return delta_from_rdp(self._orders, self._rdp, epsilon)[0]


ACCOUNTANTS = ("pld", "rdp", "auto")


class AutoAccountant:
    """The tightest bound available for whatever is composed: a PLD accountant and an RDP
    accountant run side by side, and :meth:`get_epsilon` reports the smaller of their
    (both valid) upper bounds. When the PLD accountant cannot bound an event (a discrete
    noise too small for its vector bound, say) it is dropped for the rest of the run and
    RDP alone answers, instead of failing the whole training run.
    """

    def __init__(self) -> None:
        from ._pld_accountant import PldAccountant

        self._pld: PldAccountant | None = PldAccountant()
        self._rdp = RdpAccountant()
        self._rdp_broken = False
        self.pld_unavailable: str | None = None

    def __repr__(self) -> str:
        return f"<AutoAccountant pld={'off: ' + self.pld_unavailable if self.pld_unavailable else 'on'}>"

    def copy(self) -> "AutoAccountant":
        other = AutoAccountant.__new__(AutoAccountant)
        other._pld = None if self._pld is None else self._pld.copy()
        other._rdp = self._rdp.copy()
        other._rdp_broken = self._rdp_broken
        other.pld_unavailable = self.pld_unavailable
        return other

    def compose(self, event: Any, count: int = 1) -> "AutoAccountant":
        """Add ``count`` runs of ``event`` to both accountants; returns ``self``.

        Raises :class:`ConfigurationError` only if neither accountant can bound it."""
        pld_error: ConfigurationError | None = None
        if self._pld is not None:
            try:
                self._pld = self._pld.copy().compose(event, count)
            except ConfigurationError as exc:
                pld_error = exc
        try:
            self._rdp.compose(event, count)
        except ConfigurationError:
            if self._pld is None or pld_error is not None:
                raise
            self._rdp_broken = True
        if pld_error is not None:
            self._pld, self.pld_unavailable = None, str(pld_error)
        return self

    def get_epsilon(self, delta: float) -> float:
        """The smaller of the PLD and RDP epsilons at ``delta`` (both are upper bounds)."""
        eps = [] if self._rdp_broken else [self._rdp.get_epsilon(delta)]
        if self._pld is not None:
            eps.append(self._pld.get_epsilon(delta))
        return float(min(eps))

    def get_delta(self, epsilon: float) -> float:
        dl = [] if self._rdp_broken else [self._rdp.get_delta(epsilon)]
        if self._pld is not None:
            dl.append(self._pld.get_delta(epsilon))
        return float(min(dl))


class Accountant(Protocol):
    """What every accountant :func:`make_accountant` builds offers (RDP, PLD and auto alike)."""

    def copy(self) -> Accountant: ...

    def compose(self, event: DpEvent, count: int = 1) -> Accountant: ...

    def get_epsilon(self, delta: float) -> float: ...

    def get_delta(self, epsilon: float) -> float: ...


@overload
def make_accountant(kind: Literal["rdp"], **options: Any) -> RdpAccountant: ...
@overload
def make_accountant(kind: Literal["auto"], **options: Any) -> AutoAccountant: ...
@overload
def make_accountant(kind: Literal["pld"] = "pld", **options: Any) -> PldAccountant: ...
@overload
def make_accountant(kind: str = "pld", **options: Any) -> Accountant: ...


def make_accountant(kind: str = "pld", **options: Any) -> Accountant:
    """A fresh accountant: ``"pld"`` (:class:`~secagg.dp.PldAccountant`, tight), ``"rdp"``
    (:class:`RdpAccountant`), or ``"auto"`` (:class:`AutoAccountant`: the smaller of the
    two, RDP alone where PLD cannot bound an event).

    ``options`` go to the constructor (``value_discretization_interval=`` for PLD,
    ``orders=`` for RDP). Both have ``compose(event, count=1)``, ``get_epsilon(delta)``,
    ``get_delta(epsilon)`` and ``copy()``.

    Raises :class:`ConfigurationError` for another ``kind`` or an option the kind does not take.
    """
    if kind == "rdp":
        unknown = set(options) - {"orders"}
        if unknown:
            raise ConfigurationError(f"the RDP accountant takes orders=..., not {sorted(unknown)}")
        return RdpAccountant(**options)
    if kind == "auto":
        if options:
            raise ConfigurationError(f"the auto accountant takes no options, got {sorted(options)}")
        return AutoAccountant()
    if kind == "pld":
        from ._pld_accountant import PldAccountant

        unknown = set(options) - {"value_discretization_interval", "tail_mass_truncation"}
        if unknown:
            raise ConfigurationError(
                f"the PLD accountant takes value_discretization_interval=... and tail_mass_truncation=..., "
                f"not {sorted(unknown)}"
            )
        return PldAccountant(**options)
    raise ConfigurationError(f"accountant must be one of {ACCOUNTANTS}, got {kind!r}")


def compute_epsilon(
    noise_multiplier: float,
    sampling_rate: float,
    steps: int,
    delta: float,
    orders: Sequence[float] | None = None,
    *,
    accountant: str = "pld",
) -> float:
    """Epsilon of ``steps`` Poisson-sampled Gaussian steps (DP-SGD / DP-FedAvg) at ``delta``.

    ``accountant="pld"`` (default, tight) or ``"rdp"`` (``orders`` applies to RDP only).
    """
    if orders is not None and accountant != "rdp":
        raise ConfigurationError("orders apply to the RDP accountant: pass accountant='rdp'")
    acc = make_accountant(accountant, **({"orders": orders} if orders is not None else {}))
    acc.compose(PoissonSampledEvent(sampling_rate, GaussianEvent(noise_multiplier)), count=int(steps))
    return acc.get_epsilon(delta)


_T = TypeVar("_T")


def _pick(positional: _T | None, keyword: _T | None, pos_name: str, kw_name: str) -> _T | None:
    if positional is not None and keyword is not None:
        raise ConfigurationError(f"give {pos_name} or {kw_name}, not both")
    return keyword if keyword is not None else positional


def steps_for_epochs(epochs: float, sample_rate: float) -> int:
    """Steps of ``epochs`` passes at Poisson rate ``sample_rate``: ``ceil(epochs / sample_rate)``.

    A quotient within 1e-9 (relative) of an integer is taken as that integer (so
    ``epochs=3, sample_rate=0.01`` is 300 steps, not 301 from float rounding).
    """
    e = float(epochs)
    if not (math.isfinite(e) and e > 0):
        raise InputError(f"epochs must be a positive number, got {epochs!r}")
    r = e / float(sample_rate)
    k = round(r)
    return max(1, int(k if abs(r - k) <= 1e-9 * max(1.0, r) else math.ceil(r)))


def noise_multiplier_for(
    epsilon: float | None = None,
    delta: float | None = None,
    sampling_rate: float | None = None,
    steps: int | None = None,
    *,
    target_epsilon: float | None = None,
    target_delta: float | None = None,
    sample_rate: float | None = None,
    epochs: float | None = None,
    accountant: str = "pld",
    orders: Sequence[float] | None = None,
    tolerance: float = 1e-4,
    value_discretization_interval: float | None = None,
) -> float:
    """Smallest noise multiplier z with ``epsilon(z) <= epsilon`` after ``steps`` Poisson-sampled Gaussian steps.

    Parameters
    ----------
    epsilon, delta, sampling_rate, steps:
        the target and the run (positional, as before). Opacus' names are accepted as
        keywords instead: ``target_epsilon``, ``target_delta``, ``sample_rate``, and
        ``epochs`` in place of ``steps`` (``steps = ceil(epochs / sample_rate)``, see
        :func:`steps_for_epochs`). ``sampling_rate`` defaults to 1 (every record, every
        step) and ``steps`` to 1.
    accountant:
        ``"pld"`` (default): the tight PLD accountant (closed form for
        ``sampling_rate = 1``, where the composition is one Gaussian; otherwise a
        bracketed search seeded by the RDP solution). ``"rdp"``: the RDP accountant
        (faster, looser).
    orders:
        RDP orders (``accountant="rdp"`` only).
    tolerance:
        relative precision of z; the returned z always meets the target (the upper end
        of the final bracket).
    value_discretization_interval:
        PLD grid step (``accountant="pld"`` only; default 1e-4).

    Raises
    ------
    InputError
        for epsilon <= 0, delta outside (0, 1), sampling_rate outside (0, 1], steps < 1.
    ConfigurationError
        for conflicting or missing arguments, or when no z below 1e6 reaches the target.
    """
    epsilon = _pick(epsilon, target_epsilon, "epsilon", "target_epsilon")
    delta = _pick(delta, target_delta, "delta", "target_delta")
    sampling_rate = _pick(sampling_rate, sample_rate, "sampling_rate", "sample_rate")
    if epsilon is None or delta is None:
        raise ConfigurationError("noise_multiplier_for needs a target: epsilon= (target_epsilon=) and delta= (target_delta=)")
    if sampling_rate is None:
        sampling_rate = 1.0
    eps = float(epsilon)
    if not math.isfinite(eps) or eps <= 0:
        raise InputError(f"epsilon must be a positive finite number, got {epsilon!r}")
    if not 0 < float(delta) < 1:
        raise InputError(f"delta must be in (0, 1), got {delta!r}")
    if not 0 < float(sampling_rate) <= 1:
        raise InputError(f"sampling_rate must be in (0, 1], got {sampling_rate!r}")
    if epochs is not None:
        if steps is not None:
            raise ConfigurationError("give steps or epochs, not both")
        steps = steps_for_epochs(epochs, float(sampling_rate))
    if steps is None:
        steps = 1
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 1:
        raise InputError(f"steps must be a positive integer, got {steps!r}")
    if accountant not in ACCOUNTANTS:
        raise ConfigurationError(f"accountant must be one of {ACCOUNTANTS}, got {accountant!r}")
    if accountant == "pld":
        if orders is not None:
            raise ConfigurationError("orders apply to the RDP accountant: pass accountant='rdp'")
        from ._pld_accountant import pld_noise_multiplier

        start = None
        if float(sampling_rate) < 1:
            start = _rdp_noise_multiplier(eps, float(delta), float(sampling_rate), int(steps), None, 1e-3)
        return pld_noise_multiplier(
            eps, float(delta), float(sampling_rate), int(steps), tolerance=tolerance,
            value_discretization_interval=1e-4 if value_discretization_interval is None else value_discretization_interval,
            start=start,
        )
    if value_discretization_interval is not None:
        raise ConfigurationError("value_discretization_interval applies to the PLD accountant: pass accountant='pld'")
    return _rdp_noise_multiplier(eps, float(delta), float(sampling_rate), int(steps), orders, tolerance)


def _rdp_noise_multiplier(
    eps: float, delta: float, sampling_rate: float, steps: int, orders: Sequence[float] | None, tolerance: float
) -> float:
    acc = RdpAccountant(orders)

    def eps_of(z: float) -> float:
        r = int(steps) * rdp_poisson_subsampled_gaussian(sampling_rate, z, acc._orders)
        return epsilon_from_rdp(acc._orders, r, delta)[0]

    return smallest_meeting(eps_of, eps, floor=1e-4, ceiling=1e6, tolerance=tolerance,
                            what=f"no noise multiplier below 1e6 reaches epsilon={eps} at delta={delta}")
