"""Conventions users bring: Google dp-accounting's privacy events, converted to secagg's.

``dp_accounting`` (https://github.com/google/differential-privacy, ``python/dp_accounting``)
describes mechanisms with ``GaussianDpEvent``, ``LaplaceDpEvent``,
``PoissonSampledDpEvent``, ``SelfComposedDpEvent``, ``ComposedDpEvent``, ``NoOpDpEvent``
and ``NonPrivateDpEvent``. :func:`from_dp_accounting` maps them one-to-one onto
:mod:`secagg.dp._accountant` events (``NonPrivateDpEvent`` becomes a Gaussian with noise
multiplier 0, which both accountants report as ``epsilon = inf``), so both accountants
accept them directly. The package is never imported here: objects are recognised by the
module of their class, so this works whether or not dp-accounting is installed.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigurationError
from ._accountant import (
    ComposedEvent,
    DpEvent,
    GaussianEvent,
    LaplaceEvent,
    NoOpEvent,
    PoissonSampledEvent,
    SelfComposedEvent,
)

__all__ = ["from_dp_accounting", "as_event"]

_SUPPORTED = (
    "GaussianDpEvent, LaplaceDpEvent, PoissonSampledDpEvent, SelfComposedDpEvent, ComposedDpEvent, "
    "NoOpDpEvent, NonPrivateDpEvent"
)


def _is_dp_accounting(obj: object) -> bool:
    return type(obj).__module__.split(".")[0] == "dp_accounting"


def from_dp_accounting(event: Any) -> DpEvent:
    """Convert a ``dp_accounting`` event (recursively) to the equivalent secagg event.

    Parameters
    ----------
    event:
        a ``dp_accounting.DpEvent`` instance.

    Returns
    -------
    DpEvent
        the secagg event describing the same mechanism.

    Raises
    ------
    ConfigurationError
        for a dp-accounting event class secagg has no equivalent for (the message names
        the class), or an object that is not a dp-accounting event.
    """
    name = type(event).__name__
    if not _is_dp_accounting(event):
        raise ConfigurationError(f"expected a dp_accounting event, got {name}")
    if name == "GaussianDpEvent":
        return GaussianEvent(float(event.noise_multiplier))
    if name == "LaplaceDpEvent":
        return LaplaceEvent(float(event.noise_multiplier))
    if name == "NoOpDpEvent":
        return NoOpEvent()
    if name == "NonPrivateDpEvent":
        return GaussianEvent(0.0)
    if name == "PoissonSampledDpEvent":
        return PoissonSampledEvent(float(event.sampling_probability), from_dp_accounting(event.event))
    if name == "SelfComposedDpEvent":
        return SelfComposedEvent(from_dp_accounting(event.event), int(event.count))
    if name == "ComposedDpEvent":
        return ComposedEvent(tuple(from_dp_accounting(e) for e in event.events))
    raise ConfigurationError(
        f"dp_accounting.{name} has no secagg equivalent; supported dp_accounting events: {_SUPPORTED}"
    )


def as_event(event: Any) -> DpEvent:
    """``event`` itself if it is a secagg :class:`~secagg.dp.DpEvent`, else :func:`from_dp_accounting`.

    Raises :class:`ConfigurationError` naming the class of anything else.
    """
    if isinstance(event, DpEvent):
        return event
    if _is_dp_accounting(event):
        return from_dp_accounting(event)
    raise ConfigurationError(
        f"unsupported privacy event {type(event).__name__}: pass a secagg.dp event or a dp_accounting event"
    )
