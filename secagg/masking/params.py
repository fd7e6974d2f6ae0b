"""The threat model of a SecAgg / SecAgg+ session and the parameter finder that turns it
into a graph degree ``k``, a Shamir threshold ``t`` and a survivor floor.

Follows the approach of Bell et al., "Secure Single-Server Aggregation with
(Poly)Logarithmic Overhead" (CCS 2020, Sec. 4: pick the smallest ``k`` such that a random
Harary graph keeps its properties with all but negligible probability), and the shape of
Google's open-source ``fcp/secagg`` graph parameter finder (hypergeometric tails, union
bounds over the clients, statistical security ``2^-40``, failure probability ``2^-20``),
with the active-server bound derived for *this* protocol.

Notation: ``n`` clients, ``C = ceil(gamma * n)`` of them corrupt (chosen before the graph
seed is drawn), each honest client drops out independently with probability ``delta``,
holders ``H(u) = N(u) + {u}`` (``|H| = k + 1``; ``n`` on the complete graph), threshold
``t`` over the holders.

Why ``2t - |H| - 1`` (active server)
------------------------------------
An honest client ``u``'s input is hidden by its self mask (seed ``b_u``) and its pairwise
masks (from its key ``s_u``). An honest holder reveals, for ``u``, either a share of
``b_u`` (it signed a survivor set containing ``u``) or a share of ``s_u`` (it signed one
without ``u``), never both, and ``u`` never reveals a share of its own key. A server that
shows different survivor sets to different holders can therefore collect ``t`` shares of
both secrets only by splitting the ``|H| - c`` honest holders into two groups of at least
``t - c`` each, where ``c`` is the number of corrupt holders (who give both). That needs
``2(t - c) <= |H| - c``, i.e. ``c >= 2t - |H|``. So ``u`` is safe while
``c <= 2t - |H| - 1``. Against an honest-but-curious server (one survivor set for all)
``c <= t - 1`` suffices.

Conditions checked (each a union bound over the clients)
-------------------------------------------------------
1. *Security, secrets* (SecAgg+): ``n * P[Hyp(n - 1, C, k) >= c_bad] <= 2^-(sigma+1)``
   with ``c_bad = 2t - k - 1`` (active) or ``t`` (honest-but-curious): no honest client
   has enough corrupt neighbours. On the complete graph the count is exactly ``C``, so
   the condition is ``C < c_bad``.
2. *Security, connectivity* (SecAgg+, honest-but-curious partial sums): the graph of
   honest survivors stays connected when a fraction ``p = gamma + delta`` of positions is
   removed at random; disconnecting a Harary graph ``H_{k,n}`` needs two runs of ``k/2``
   removed positions, so ``n (n - k - 1) / 2 * p^k <= 2^-(sigma+1)``.
3. *Correctness*: every client keeps ``t`` live holders when both dropouts and corrupt
   clients (who may refuse to answer) are lost: ``n * P[1 + Bin(k, 1 - delta - gamma) < t]
   <= 2^-eta`` (complete graph: ``P[Bin(n - C, 1 - delta) < t]``, one global event), and
   the survivor floor holds: ``P[Bin(n, 1 - delta - gamma) < min_survivors] <= 2^-eta``.

The finder returns the smallest even ``k`` (and the smallest secure ``t`` for it) meeting
all three; when no ``k < n - 1`` does, the complete graph, whose ``t`` is set by (1) alone
and whose failure probability is reported (a handful of clients cannot reach ``2^-20``
with a 5 % dropout rate; the protocol then aborts cleanly more often, it never leaks).
The survivor floor ``min_survivors`` is the largest value meeting (3), at least ``t``:
clients refuse to unmask a survivor set smaller than it, so the server cannot shrink the
aggregate (or the distributed-DP noise calibrated for it) by dropping honest clients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from ..errors import ConfigurationError

__all__ = ["ThreatModel", "SessionParameters", "find_parameters", "check_parameters"]

#: the adversary models a session can be set up for, strongest first
ADVERSARIES = ("active", "honest-but-curious")
_LN2 = math.log(2.0)


@dataclass(frozen=True)
class ThreatModel:
    """What a session must withstand.

    Parameters
    ----------
    adversary:
        ``"active"`` (default): the server may deviate arbitrarily (replay, split views,
        drop clients on purpose) and collude with ``corrupt_fraction`` of the clients;
        sessions run the consistency round. ``"honest-but-curious"``: the server follows
        the protocol (one round fewer, lower threshold).
    corrupt_fraction:
        ``gamma``: fraction of clients that may be corrupt and collude with the server
        (rounded up: at least one corrupt client whenever it is positive). Default 0.05.
    dropout_rate:
        ``delta``: probability that an honest client drops out during a session. Default 0.05.
    security_bits:
        ``sigma``: the security failure probability is at most ``2^-sigma`` (default 40).
    correctness_bits:
        ``eta``: an honest run aborts with probability at most ``2^-eta`` (default 20).

    Raises
    ------
    ConfigurationError
        an unknown adversary, rates outside ``[0, 1)`` or ``gamma + delta >= 0.9``.
    """

    adversary: str = "active"
    corrupt_fraction: float = 0.05
    dropout_rate: float = 0.05
    security_bits: float = 40.0
    correctness_bits: float = 20.0

    def __post_init__(self) -> None:
        if self.adversary not in ADVERSARIES:
            raise ConfigurationError(f"adversary must be one of {', '.join(ADVERSARIES)}, got {self.adversary!r}")
        g, d = self.corrupt_fraction, self.dropout_rate
        for name, v in (("corrupt_fraction", g), ("dropout_rate", d)):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0.0 <= float(v) < 1.0:
                raise ConfigurationError(f"{name} must be a number in [0, 1), got {v!r}")
        if float(g) + float(d) >= 0.9:
            raise ConfigurationError(
                f"corrupt_fraction + dropout_rate = {float(g) + float(d):.3g} leaves too few honest, live "
                "clients; it must be below 0.9"
            )
        for name, v in (("security_bits", self.security_bits), ("correctness_bits", self.correctness_bits)):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 < float(v) <= 256:
                raise ConfigurationError(f"{name} must be in (0, 256], got {v!r}")
        object.__setattr__(self, "corrupt_fraction", float(g))
        object.__setattr__(self, "dropout_rate", float(d))
        object.__setattr__(self, "security_bits", float(self.security_bits))
        object.__setattr__(self, "correctness_bits", float(self.correctness_bits))

    @property
    def active(self) -> bool:
        """Whether the server is assumed to deviate (the consistency round is needed)."""
        return self.adversary == "active"


@dataclass(frozen=True)
class SessionParameters:
    """What :func:`find_parameters` chose, and why.

    Attributes
    ----------
    n, k, threshold:
        clients, graph degree (``n - 1``: complete graph) and Shamir threshold.
    graph:
        ``"complete"`` or ``"sparse"``.
    min_survivors:
        survivor floor clients enforce before they unmask.
    tolerated_corrupt_holders:
        the most corrupt holders of one honest client under which its input stays
        hidden (``2t - k - 2`` active, ``t - 1`` honest-but-curious).
    security_log2:
        log2 of the bound on the security failure probability (conditions 1 and 2;
        ``-inf`` when it is deterministic and holds).
    failure_log2:
        log2 of the bound on the probability that an honest run aborts (condition 3).
    meets_correctness:
        whether ``failure_log2 <= -correctness_bits`` (may be False for tiny complete graphs).
    threat:
        the :class:`ThreatModel` used.
    """

    n: int
    k: int
    threshold: int
    graph: str
    min_survivors: int
    tolerated_corrupt_holders: int
    security_log2: float
    failure_log2: float
    meets_correctness: bool
    threat: ThreatModel


# ----------------------------------------------------------------------------- exact tails
def _log_comb(a: int, b: int) -> float:
    return math.lgamma(a + 1) - math.lgamma(b + 1) - math.lgamma(a - b + 1)


def _logsumexp(xs: list[float]) -> float:
    if not xs:
        return -math.inf
    m = max(xs)
    if m == -math.inf:
        return -math.inf
    return m + math.log(sum(math.exp(x - m) for x in xs))


def _log_hyp_sf(population: int, successes: int, draws: int, x: int) -> float:
    """ln P[X >= x] for X ~ Hypergeometric(population, successes, draws).

    Sums the pmf from the first term upwards and stops once the terms fall below
    ``1e-18`` of the largest (past the mode they decrease geometrically), so the cost is
    the width of the tail, not of the support.
    """
    lo = max(x, 0, draws - (population - successes))
    hi = min(draws, successes)
    if lo > hi:
        return -math.inf if x > 0 else 0.0
    base = _log_comb(population, draws)
    terms: list[float] = []
    best = -math.inf
    for i in range(lo, hi + 1):
        v = _log_comb(successes, i) + _log_comb(population - successes, draws - i) - base
        terms.append(v)
        best = max(best, v)
        if v < best - 41.0 and i > lo:
            break
    return min(0.0, _logsumexp(terms))


@lru_cache(maxsize=4096)
def _log_hyp_sf_all(population: int, successes: int, draws: int) -> tuple[float, ...]:
    """``(ln P[X >= c] for c = 0 .. min(draws, successes) + 1)`` for a hypergeometric X."""
    top = min(draws, successes)
    lo = max(0, draws - (population - successes))
    base = _log_comb(population, draws)
    logp = [-math.inf] * (top + 1)
    for i in range(lo, top + 1):
        logp[i] = _log_comb(successes, i) + _log_comb(population - successes, draws - i) - base
    out = [-math.inf] * (top + 2)
    acc = -math.inf
    for i in range(top, -1, -1):
        acc = _logsumexp([acc, logp[i]]) if logp[i] > -math.inf else acc
        out[i] = min(0.0, acc)
    return tuple(out)


def _log_binom_cdf(trials: int, p: float, x: int) -> float:
    """ln P[X <= x] for X ~ Bin(trials, p).

    Sums the pmf from ``x`` downwards (from the mode down when ``x`` lies above it) and
    stops once the terms fall below ``1e-18`` of the largest: the lower tail of a binomial
    decreases geometrically below the mode.
    """
    if x < 0:
        return -math.inf
    if x >= trials or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return -math.inf
    lp, lq = math.log(p), math.log1p(-p)
    mode = int((trials + 1) * p)
    if x > mode:  # upper part of the support: use the complement, summed from x + 1 upwards
        terms = []
        best = -math.inf
        for i in range(x + 1, trials + 1):
            v = _log_comb(trials, i) + i * lp + (trials - i) * lq
            terms.append(v)
            best = max(best, v)
            if v < best - 41.0:
                break
        upper = _logsumexp(terms)
        return math.log1p(-math.exp(upper)) if upper < 0 else -math.inf
    terms = []
    best = -math.inf
    for i in range(x, -1, -1):
        v = _log_comb(trials, i) + i * lp + (trials - i) * lq
        terms.append(v)
        best = max(best, v)
        if v < best - 41.0:
            break
    return min(0.0, _logsumexp(terms))


def corrupt_count(n: int, threat: ThreatModel) -> int:
    """``C = ceil(gamma * n)``: corrupt clients assumed (at least one when ``gamma > 0``)."""
    return min(n, math.ceil(threat.corrupt_fraction * n - 1e-9))


def _c_bad(k: int, t: int, active: bool) -> int:
    """Corrupt holders of one honest client that break it."""
    return 2 * t - k - 1 if active else t


def min_secure_threshold(n: int, k: int, threat: ThreatModel) -> int | None:
    """Smallest ``t`` meeting the security conditions for degree ``k`` (``n - 1``: complete
    graph), or ``None`` when no ``t <= k + 1`` does."""
    _check_n(n)
    C = corrupt_count(n, threat)
    active = threat.active
    if k >= n - 1:  # complete graph: exactly C corrupt holders
        t = (n + C + 2) // 2 if active else C + 1  # active: 2t - n - 1 >= C
        t = max(t, 1)
        return t if t <= n else None
    target = -(threat.security_bits + 1.0) * _LN2 - math.log(n)
    # the smallest number of corrupt neighbours c_bad that is unlikely enough: one pass
    # over the pmf, then suffix sums from the top
    sf = _log_hyp_sf_all(n - 1, C, k)
    c_bad = next((c for c in range(len(sf)) if sf[c] <= target), None)
    if c_bad is None:
        return None
    t = (c_bad + k + 2) // 2 if active else c_bad  # 2t - k - 1 >= c_bad  /  t >= c_bad
    t = max(t, 1)
    return t if t <= k + 1 else None


def _security_log2(n: int, k: int, t: int, threat: ThreatModel) -> float:
    C = corrupt_count(n, threat)
    c_bad = _c_bad(k, t, threat.active)
    if k >= n - 1:
        return -math.inf if C < c_bad else 0.0
    ln_secret = math.log(n) + _log_hyp_sf(n - 1, C, k, c_bad)
    p = threat.corrupt_fraction + threat.dropout_rate
    ln_conn = (math.log(n) + math.log(max(n - k - 1, 1)) - math.log(2.0) + k * math.log(p)) if p > 0 else -math.inf
    return max(ln_secret, ln_conn) / _LN2


def _failure_log2(n: int, k: int, t: int, threat: ThreatModel, min_survivors: int) -> float:
    g, d = threat.corrupt_fraction, threat.dropout_rate
    if k >= n - 1:
        C = corrupt_count(n, threat)
        ln_holders = _log_binom_cdf(n - C, 1.0 - d, t - 1)
    else:
        ln_holders = min(0.0, math.log(n) + _log_binom_cdf(k, 1.0 - d - g, t - 2))
    ln_floor = _log_binom_cdf(n, 1.0 - d - g, min_survivors - 1)
    return _logsumexp([ln_holders, ln_floor]) / _LN2


def _default_floor(n: int, t: int, threat: ThreatModel) -> int:
    """Largest ``m >= t`` with ``P[Bin(n, 1 - delta - gamma) < m] <= 2^-eta`` (or ``t``)."""
    return max(t, _floor_quantile(n, threat))


@lru_cache(maxsize=1024)
def _floor_quantile(n: int, threat: ThreatModel) -> int:
    """Largest ``m`` with ``P[Bin(n, 1 - delta - gamma) < m] <= 2^-eta`` (0 if none)."""
    target = -threat.correctness_bits * _LN2
    q = 1.0 - threat.dropout_rate - threat.corrupt_fraction
    lo, hi = 0, n  # bisection on the monotone cdf
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _log_binom_cdf(n, q, mid - 1) <= target:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _check_n(n: object) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < 2:
        raise ConfigurationError(f"secure aggregation needs n >= 2 clients, got {n!r}")
    return n


def _build(n: int, k: int, t: int, threat: ThreatModel, min_survivors: int | None) -> SessionParameters:
    floor = _default_floor(n, t, threat) if min_survivors is None else min_survivors
    fail = _failure_log2(n, k, t, threat, floor)
    return SessionParameters(
        n=n, k=k, threshold=t, graph="complete" if k >= n - 1 else "sparse", min_survivors=floor,
        tolerated_corrupt_holders=(2 * t - k - 2) if threat.active else t - 1,
        security_log2=_security_log2(n, k, t, threat), failure_log2=fail,
        meets_correctness=fail <= -threat.correctness_bits, threat=threat,
    )


@lru_cache(maxsize=1024)
def find_parameters(n: int, threat: ThreatModel = ThreatModel(), graph: str = "sparse") -> SessionParameters:
    """Choose ``k``, ``t`` and the survivor floor for ``n`` clients under ``threat``.

    ``graph="sparse"`` (SecAgg+) returns the smallest even ``k`` meeting every condition
    of the module docstring (the complete graph when none does); ``graph="complete"``
    (SecAgg) returns ``k = n - 1`` and the smallest secure ``t``.

    Example: ``find_parameters(10_000)`` (active server, 5 % corrupt, 5 % dropouts) gives
    ``k = 98, t = 65``.

    Raises
    ------
    ConfigurationError
        ``n < 2``, an unknown graph, or no secure threshold exists (e.g. a corrupt
        fraction so large that even ``t = n`` is not enough).
    """
    _check_n(n)
    if not isinstance(threat, ThreatModel):
        raise ConfigurationError(f"threat must be a ThreatModel, got {type(threat).__name__}")
    if graph not in ("sparse", "complete"):
        raise ConfigurationError(f"graph must be 'sparse' or 'complete', got {graph!r}")
    if graph == "sparse":
        for k in range(2, n - 1, 2):
            t = min_secure_threshold(n, k, threat)
            if t is None:
                continue
            params = _build(n, k, t, threat, None)
            if params.security_log2 <= -threat.security_bits and params.meets_correctness:
                return params
    t = min_secure_threshold(n, n - 1, threat)
    if t is None:
        raise ConfigurationError(
            f"no threshold protects {n} clients with {corrupt_count(n, threat)} corrupt against an "
            f"{threat.adversary} server; lower corrupt_fraction or add clients"
        )
    return _build(n, n - 1, t, threat, None)


def check_parameters(n: int, k: int, threshold: int, threat: ThreatModel) -> SessionParameters:
    """Evaluate given ``(n, k, threshold)`` against ``threat``; raise if they are not secure.

    Returns the :class:`SessionParameters` (with the default survivor floor for that
    threshold). Used by a client to judge what a server announces.

    Raises
    ------
    InsecureParameterError
        the threshold is below the smallest secure one for this degree, or the sparse
        graph's security bound exceeds ``2^-security_bits``.
    """
    from ..errors import InsecureParameterError

    _check_n(n)
    t_min = min_secure_threshold(n, k, threat)
    if t_min is None or threshold < t_min:
        raise InsecureParameterError(
            f"threshold {threshold} with {k + 1 if k < n - 1 else n} share holders does not protect against "
            f"an {threat.adversary} server with {threat.corrupt_fraction:g} of clients corrupt "
            f"(needs t >= {t_min if t_min is not None else 'more holders'}); raise the threshold, or state a "
            "weaker threat model (adversary='honest-but-curious' or a lower corrupt_fraction)"
        )
    params = _build(n, k, threshold, threat, None)
    if params.security_log2 > -threat.security_bits:
        raise InsecureParameterError(
            f"a sparse graph of degree {k} over {n} clients is secure only up to 2^{params.security_log2:.1f}, "
            f"above the required 2^-{threat.security_bits:g}; use a larger degree k"
        )
    return params
