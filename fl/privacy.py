"""Privacy accounting of federated runs: the accountant seam, a ledger, calibration, neighbouring relations.

Everything in :mod:`fl` that turns privacy events into an epsilon goes through
:func:`make_accountant`, the **one** place that chooses the accountant. It builds
:class:`secagg.dp.AutoAccountant`: the smaller of the PLD bound
(:class:`secagg.dp.PldAccountant`, privacy-loss distributions with pessimistic
discretization) and the RDP bound, each an upper bound, so their minimum is one too;
RDP alone for an event PLD cannot bound. Switching every federated run (budget checks,
calibration, reported epsilons) to another accountant with the same
``compose(event, count)`` / ``get_epsilon(delta)`` interface is a one-line change there.

* :class:`PrivacyLedger` keeps the multiset of events charged so far and answers "what
  would epsilon be after this event?" by composing into a *fresh* accountant (memoized
  per multiset: events are frozen and the accountant deterministic), so it
  needs nothing from the accountant beyond ``compose`` and ``get_epsilon`` (no
  ``copy``). :meth:`PrivacyLedger.charge` refuses (:class:`~secagg.errors.BudgetExceeded`,
  nothing charged) an event that does not fit the budget.
* :func:`calibrate_noise_multiplier` solves, once, for the smallest noise multiplier
  whose *own* per-round event (whatever the technique reports: a Gaussian, a discrete
  Gaussian, the sum of ``n_min`` discrete Gaussians, Poisson-subsampled or not) meets
  an (epsilon, delta) target over the planned rounds, by bisection on ``log z``.
* :data:`NEIGHBOURING` states, per privacy unit, the neighbouring relation under which a
  reported epsilon holds (also written into every result JSON).
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from typing import Any, Callable

from secagg.dp import smallest_meeting
from secagg.errors import BudgetExceeded, ConfigurationError

__all__ = ["PrivacyLedger", "calibrate_noise_multiplier", "make_accountant"]

#: the neighbouring relation behind a reported epsilon, per privacy unit
NEIGHBOURING = {
    "client": (
        "add/remove one client: two federations differ by all the data of one client (its whole "
        "contribution to every round it takes part in). Each contribution is clipped to L2 norm `clip_norm` and "
        "weighted by a public w_i <= 1 that depends on nothing but the client's own size and the public cap "
        "(uniform, or min(n_i / weight_cap, 1)); the server divides by a fixed public denominator (the expected "
        "number of contributions per round), never by a data-dependent total. Client sampling is an "
        "amplification only with central DP (a trusted server that keeps the sample secret)."
    ),
    "example": (
        "add/remove one training example (one row of one client): each example's gradient is clipped to "
        "L2 norm `clip_norm` before anything leaves the client. The number of examples per client is public; "
        "the server divides by the fixed expected batch size. Poisson sampling of a client's own examples is "
        "an amplification (the client, not the server, draws it); client sampling is one only with central DP."
    ),
}


def make_accountant() -> Any:
    """The privacy accountant every :mod:`fl` run uses (the seam: change the accountant here only).

    Returns a fresh accountant with ``compose(event, count=1)`` and
    ``get_epsilon(delta)``: :class:`secagg.dp.AutoAccountant`, the smaller of the PLD
    (privacy-loss distributions, pessimistic discretization) and RDP bounds, RDP alone for
    an event PLD cannot bound.

    Raises
    ------
    ConfigurationError
        if :mod:`secagg.dp` is not installed.
    """
    try:
        from secagg.dp import make_accountant as _make
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ConfigurationError(f"DP accounting is not available (secagg.dp): {exc}") from None
    return _make("auto")


def accountant_name() -> str:
    """Class name of the accountant :func:`make_accountant` builds (recorded in results)."""
    return type(make_accountant()).__name__


@functools.lru_cache(maxsize=4096)
def _epsilon_of_multiset(events: frozenset, delta: float) -> float:
    """Epsilon at ``delta`` of a multiset of ``(event, count)`` pairs, composed into a fresh accountant.

    Memoized: events are frozen (hashable, immutable) and the accountant is deterministic,
    so the same multiset always has the same epsilon. A round that checks ``fits``, then
    ``charge``, then reads ``epsilon`` computes it once, and so do the seeds of a sweep
    that charge the same events.
    """
    acc = make_accountant()
    for ev, count in sorted(events, key=repr):  # a fixed order: the PLD is the same whatever the order
        acc.compose(ev, count)
    return float(acc.get_epsilon(delta))


class PrivacyLedger:
    """The privacy events charged so far, with an optional (epsilon, delta) budget.

    Parameters
    ----------
    delta:
        delta at which epsilon is reported, in (0, 1).
    target_epsilon:
        budget (None: no budget, :meth:`charge` never refuses).

    Notes
    -----
    Events are kept as a multiset (events are frozen dataclasses, so equal events
    group), and every query composes them into a fresh :func:`make_accountant`.
    """

    def __init__(self, delta: float, target_epsilon: float | None = None) -> None:
        self.delta = float(delta)
        self.target_epsilon = None if target_epsilon is None else float(target_epsilon)
        self._events: Counter = Counter()
        self.charges = 0

    def _epsilon_of(self, events: Counter) -> float:
        if not events:
            return 0.0
        return _epsilon_of_multiset(frozenset(events.items()), self.delta)

    @property
    def epsilon(self) -> float:
        """Epsilon spent so far at :attr:`delta` (0 before any charge)."""
        return self._epsilon_of(self._events)

    def epsilon_after(self, event: Any, count: int = 1) -> float:
        """Epsilon that charging ``count`` runs of ``event`` would leave spent (nothing is charged)."""
        trial = self._events.copy()
        trial[event] += int(count)
        return self._epsilon_of(trial)

    def fits(self, event: Any, count: int = 1) -> bool:
        """Whether ``count`` more runs of ``event`` stay within the budget (always True without one)."""
        return self.target_epsilon is None or self.epsilon_after(event, count) <= self.target_epsilon

    def charge(self, event: Any, count: int = 1) -> float:
        """Charge ``count`` runs of ``event``; returns the epsilon spent afterwards.

        Raises
        ------
        BudgetExceeded
            if the budget would be exceeded; nothing is charged then.
        """
        after = self.epsilon_after(event, count)
        if self.target_epsilon is not None and after > self.target_epsilon:
            raise BudgetExceeded(
                f"this round would bring epsilon to {after:.4g} (delta {self.delta:g}), above the budget "
                f"{self.target_epsilon:g} (spent {self.epsilon:.4g} over {self.charges} rounds); the round is "
                "refused and the run stops")
        self._events[event] += int(count)
        self.charges += int(count)
        return after


def calibrate_noise_multiplier(event_for: Callable[[float], Any], target_epsilon: float, delta: float,
                               rounds: int, *, tolerance: float = 1e-4, z_max: float = 1e6) -> float:
    """Smallest noise multiplier ``z`` with ``epsilon(rounds x event_for(z)) <= target_epsilon``.

    Parameters
    ----------
    event_for:
        ``z -> DpEvent`` of one round at noise multiplier ``z`` (the technique's own
        event: sampling, discreteness and planned survivors included). Epsilon must not
        increase with ``z``.
    target_epsilon, delta:
        the budget.
    rounds:
        planned rounds (>= 1).
    tolerance:
        relative precision of ``z`` (the returned ``z`` always meets the target: it is the
        upper end of the final bracket).

    Returns
    -------
    float: the noise multiplier (std of the noise in units of the sensitivity).

    Raises
    ------
    ConfigurationError
        if even ``z_max`` does not meet the target, or the accountant cannot bound the event.
    """
    if not (math.isfinite(target_epsilon) and target_epsilon > 0):
        raise ConfigurationError(f"target_epsilon must be positive, got {target_epsilon!r}")
    ledger = PrivacyLedger(delta)

    def eps(z: float) -> float:
        return ledger.epsilon_after(event_for(z), rounds)

    return smallest_meeting(eps, target_epsilon, floor=1e-6, ceiling=z_max, tolerance=tolerance,
                            what=f"no noise multiplier up to {z_max:g} meets epsilon {target_epsilon:g} "
                                 f"(delta {delta:g}) over {rounds} rounds")
