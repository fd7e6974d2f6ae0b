"""One interface for every aggregation technique, so ``fl`` can switch by name.

An :class:`Aggregator` takes the update vectors of the clients selected for a round
(an ``(n, d)`` float array, one row per client) and returns an
:class:`AggregationResult`: the (possibly noisy) sum of the rows that survived, which
rows those were, and what it cost (bytes per client from real message encodings,
seconds of cryptography at clients and server). The averaging, weighting and model
logic stay in the caller.

Techniques register under a short name; :func:`make_aggregator` builds one:

=================  ===========================================================
name               technique
=================  ===========================================================
``plain``          plain float sum (no protection; the baseline)
``secagg``         pairwise-mask secure sum, complete graph (Bonawitz et al. 2017)
``secagg+``        pairwise-mask secure sum, sparse graph (Bell et al. 2020)
``paillier``       packed Paillier homomorphic summation
``central-dp``     plain sum + Gaussian noise added by a trusted server
``local-dp``       each client adds enough noise on its own
``distributed-dp`` discrete Gaussian / Skellam noise shares under secure aggregation
=================  ===========================================================
"""

from __future__ import annotations

import importlib
import inspect
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from .errors import ConfigurationError, InputError

__all__ = [
    "AggregationResult",
    "Aggregator",
    "PlainAggregator",
    "available_aggregators",
    "make_aggregator",
    "register_aggregator",
    "send_float32",
    "validate_updates",
]


@dataclass
class AggregationResult:
    """What one aggregation round produced and cost.

    Attributes
    ----------
    total:
        float64 array, shape ``(d,)``: sum of the surviving rows (after the technique's
        clipping and quantization, plus its noise for DP techniques).
    survivors:
        int64 array of the row indices whose inputs are in ``total`` (sorted).
    bytes_up, bytes_down:
        int64 arrays, shape ``(n,)``: bytes each client sent to / received from the
        server, counted from the serialized messages.
    client_seconds:
        float64 array, shape ``(n,)``: wall seconds of protocol/crypto work per client.
    server_seconds:
        wall seconds of protocol/crypto work at the server.
    noise_std:
        standard deviation of the noise in each coordinate of ``total`` (same units as
        the updates); 0 for non-DP techniques.
    info:
        technique-specific extras (e.g. epsilon achieved, graph degree, slots).
    """

    total: np.ndarray
    survivors: np.ndarray
    bytes_up: np.ndarray
    bytes_down: np.ndarray
    client_seconds: np.ndarray
    server_seconds: float
    noise_std: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def count(self) -> int:
        """Number of rows in the sum."""
        return int(len(self.survivors))


def validate_updates(updates) -> np.ndarray:
    """Check that ``updates`` is a finite 2-D float array ``(n, d)`` and return it as float64."""
    try:
        arr = np.asarray(updates, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"updates must be a numeric (n, d) array: {exc}") from None
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise InputError(f"updates must have shape (n_clients, dim) with both >= 1, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError("updates contain NaN or infinity")
    return arr


class Aggregator(ABC):
    """Base class: subclasses implement :meth:`aggregate`.

    Constructor parameters are the technique's configuration (``clip`` bounds each
    coordinate of each update for the quantized techniques). ``dropout`` in
    :meth:`aggregate` is either ``None``, a rate in ``[0, 1)`` or a mapping
    ``{row: round_name}``; techniques without rounds treat any listed row as absent.
    """

    #: registry name, set by subclasses
    name: str = ""
    #: whether the server sees only the sum (True) or individual updates (False)
    hides_individual_updates: bool = False

    @abstractmethod
    def aggregate(
        self,
        updates: np.ndarray,
        *,
        dropout: float | Mapping[int, str] | None = None,
        rng: np.random.Generator | None = None,
    ) -> AggregationResult:
        """Aggregate the rows of ``updates`` (shape ``(n, d)``, float)."""


def dropped_rows(n: int, dropout, rng: np.random.Generator | None) -> np.ndarray:
    """Rows that drop under ``dropout`` (rate or mapping) for techniques without rounds."""
    if dropout is None:
        return np.zeros(0, dtype=np.int64)
    if isinstance(dropout, Mapping):
        try:
            rows = np.array(sorted(int(k) for k in dropout), dtype=np.int64)
        except (TypeError, ValueError):
            raise InputError(f"dropout mapping keys must be row indices, got {list(dropout)!r}") from None
        if rows.size and (rows.min() < 0 or rows.max() >= n):
            raise InputError(f"dropout rows must be in [0, {n}), got {rows.tolist()}")
        return rows
    try:
        rate = float(dropout)
    except (TypeError, ValueError):
        raise InputError(f"dropout must be None, a rate in [0, 1) or a mapping, got {dropout!r}") from None
    if not 0.0 <= rate < 1.0:
        raise InputError(f"dropout rate must be in [0, 1), got {dropout!r}")
    gen = rng if rng is not None else np.random.default_rng()
    k = int(round(rate * n))
    return np.sort(gen.choice(n, size=k, replace=False)).astype(np.int64)


def send_float32(arr: np.ndarray, rows: np.ndarray) -> tuple[list[bytes], np.ndarray, np.ndarray]:
    """Serialize ``arr[rows]`` the way a client sends an update in clear: little-endian float32.

    Returns the payloads (one per row of ``rows``), the bytes each of the ``n`` clients
    sent (int64, 0 for rows not listed) and each client's serialization seconds.
    Raises :class:`InputError` for values beyond the float32 range (they would arrive as inf).
    """
    if arr.size and np.abs(arr).max() > np.finfo(np.float32).max:
        raise InputError("updates exceed the float32 range of the plain wire format (would sum to inf)")
    n = arr.shape[0]
    client_seconds = np.zeros(n)
    up = np.zeros(n, dtype=np.int64)
    payloads = []
    for i in rows:
        t0 = time.perf_counter()
        payload = arr[i].astype("<f4").tobytes()
        client_seconds[i] = time.perf_counter() - t0
        up[i] = len(payload)
        payloads.append(payload)
    return payloads, up, client_seconds


class PlainAggregator(Aggregator):
    """Plain sum: the server sees every update. The baseline for cost and accuracy.

    Each client serializes its update as little-endian float32 (``4 d`` bytes, what
    federated frameworks send in clear); the server parses and sums them in float64.
    Client time is the serialization, server time the parsing and summing, so the
    ratios of the other techniques to this one compare like with like.
    """

    name = "plain"
    hides_individual_updates = False

    def __init__(self, clip: float | None = None) -> None:
        # ``clip`` is accepted so callers can pass the same options to every technique;
        # the plain sum does not clip.
        self.clip = clip

    def aggregate(self, updates, *, dropout=None, rng=None) -> AggregationResult:
        arr = validate_updates(updates)
        n, d = arr.shape
        gone = dropped_rows(n, dropout, rng)
        keep = np.setdiff1d(np.arange(n), gone)
        payloads, up, client_seconds = send_float32(arr, keep)
        t0 = time.perf_counter()
        total = np.zeros(d)
        for payload in payloads:
            total += np.frombuffer(payload, dtype="<f4")
        server_seconds = time.perf_counter() - t0
        return AggregationResult(
            total=total,
            survivors=keep,
            bytes_up=up,
            bytes_down=np.zeros(n, dtype=np.int64),
            client_seconds=client_seconds,
            server_seconds=server_seconds,
        )


# name -> "module:Class" (imported lazily so optional parts stay optional)
_REGISTRY: dict[str, str | type] = {
    "plain": "secagg.aggregators:PlainAggregator",
    "secagg": "secagg.masking.aggregator:SecAggAggregator",
    "secagg+": "secagg.masking.aggregator:SecAggPlusAggregator",
    "paillier": "secagg.paillier.aggregator:PaillierAggregator",
    "central-dp": "secagg.dp.aggregators:CentralDPAggregator",
    "local-dp": "secagg.dp.aggregators:LocalDPAggregator",
    "distributed-dp": "secagg.dp.aggregators:DistributedDPAggregator",
}


def register_aggregator(name: str, target: str | type) -> None:
    """Register an aggregator class (or ``"module:Class"`` path) under ``name``."""
    if not isinstance(target, (str, type)):
        raise ConfigurationError(f"register a class or a 'module:Class' string, got {type(target).__name__}")
    _REGISTRY[name] = target


def available_aggregators() -> list[str]:
    """Names accepted by :func:`make_aggregator` (sorted)."""
    return sorted(_REGISTRY)


def make_aggregator(name: str, **options: Any) -> Aggregator:
    """Build the aggregator registered as ``name`` with ``options``.

    Raises :class:`ConfigurationError` for an unknown name, listing the known ones.
    """
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise ConfigurationError(
            f"unknown aggregator {name!r}; choose one of {', '.join(available_aggregators())}"
        ) from None
    if isinstance(target, type):
        cls = target
    else:
        module_name, _, cls_name = target.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), cls_name)
        except (ImportError, AttributeError) as exc:
            raise ConfigurationError(f"aggregator {name!r} is not available: {exc}") from None
    params = inspect.signature(cls).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(options) - set(params))
        if unknown:
            raise ConfigurationError(
                f"aggregator {name!r} has no option(s) {', '.join(unknown)}; "
                f"it accepts: {', '.join(p for p in params if p != 'self')}"
            )
    return cls(**options)
