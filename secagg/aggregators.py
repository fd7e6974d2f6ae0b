"""One interface for every aggregation technique, so ``fl`` can switch by name.

An :class:`Aggregator` takes the update vectors of the clients selected for a round
(an ``(n, d)`` float array, one row per client, or a model held as a list of per-layer
arrays ``(n, ...)``, with optional per-client ``weights``) and returns an
:class:`AggregationResult`: the (possibly noisy, weighted) sum of the rows that
survived, in the shapes they came in, which rows those were, how many values were
clipped, and what it cost (bytes per client from real message encodings, seconds of
cryptography at clients and server). The averaging and model logic stay in the caller.

Words: ``bound`` is a per-coordinate bound (``|x_j| <= bound``: the range of the
fixed-point encoding of ``secagg``, ``secagg+`` and ``paillier``), ``clip_norm`` an L2
norm (``||x||_2 <= clip_norm``: the sensitivity of the DP aggregators). A value beyond
the ``bound`` raises :class:`~secagg.errors.OutOfRangeError` unless the aggregator was
built with ``out_of_range="clip"``; then it is clipped and counted in
:attr:`AggregationResult.clipped`.

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

import functools
import importlib
import inspect
import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from ._costs import Costs, CostTotals
from ._deprecation import renamed_keyword
from ._dropout import DropoutSchedule
from .errors import ConfigurationError, InputError
from .quantize import apply_bound, check_out_of_range_policy

if TYPE_CHECKING:  # secagg.dp imports this module
    from .dp import DpEvent

__all__ = [
    "AggregationResult",
    "Aggregator",
    "Costs",
    "PlainAggregator",
    "accept_layers_and_weights",
    "aggregator_class",
    "available_aggregators",
    "make_aggregator",
    "register_aggregator",
]


@dataclass
class AggregationResult(CostTotals):
    """What one aggregation round produced and cost.

    Attributes
    ----------
    total:
        the sum of the surviving rows (after the technique's clipping and quantization,
        plus its noise for DP techniques), weighted by ``weights`` when given: float64
        ``(d,)`` for an ``(n, d)`` input, ``shape`` for an ``(n, *shape)`` array, and a
        list of arrays of the layers' shapes for a list of per-layer arrays.
    survivors:
        int64 array of the row indices whose inputs are in ``total`` (sorted).
    costs:
        the :class:`~secagg._costs.Costs` record: bytes each client sent and received
        (counted from the serialized messages) and the seconds of protocol/crypto work,
        per round (``"upload"`` for one-round techniques). ``bytes_up``, ``bytes_down``
        (int64 ``(n,)``), ``client_seconds`` (float64 ``(n,)``) and ``server_seconds``
        are its totals over rounds.
    noise_std:
        standard deviation of the noise in each coordinate of ``total`` (same units as
        the updates); 0 for non-DP techniques.
    info:
        technique-specific extras (e.g. epsilon achieved, graph degree, slots).
    clipped_per_client:
        int64 array, shape ``(n,)``: values of each client's update clipped to the
        aggregator's ``bound`` (only with ``out_of_range="clip"``; ``None`` means none).
        L2 norm clipping of the DP aggregators is not counted here (see their ``info``).
    weights:
        float64 ``(n,)`` per-client weights the rows were multiplied by, or ``None``.
    """

    total: Any
    survivors: np.ndarray
    costs: Costs
    noise_std: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    clipped_per_client: np.ndarray | None = None
    weights: np.ndarray | None = None

    @property
    def count(self) -> int:
        """Number of rows in the sum."""
        return int(len(self.survivors))

    @property
    def clipped(self) -> int:
        """Number of values clipped to the ``bound`` among the inputs in ``total`` (0 when none)."""
        if self.clipped_per_client is None:
            return 0
        return int(np.asarray(self.clipped_per_client)[self.survivors].sum())

    @property
    def weight_total(self) -> float:
        """Sum of the survivors' weights (their count without weights): ``total / weight_total`` is the mean."""
        if self.weights is None:
            return float(self.count)
        return float(np.asarray(self.weights)[self.survivors].sum())


@dataclass(frozen=True)
class LayerLayout:
    """How :func:`flatten_updates` turned per-client arrays into ``(n, d)`` rows.

    ``shapes`` holds each layer's shape without the client axis; ``as_list`` says whether
    the input was a list of layers (restored as a list) or one ``(n, *shape)`` array.
    """

    shapes: tuple[tuple[int, ...], ...]
    as_list: bool

    @property
    def sizes(self) -> tuple[int, ...]:
        """Number of values per client in each layer."""
        return tuple(math.prod(s) for s in self.shapes)

    def restore(self, flat: np.ndarray) -> np.ndarray | list[np.ndarray]:
        """Split a flat ``(d,)`` vector back into the layers' shapes (a list, or one array)."""
        flat = np.asarray(flat)
        if flat.shape != (sum(self.sizes),):
            raise InputError(f"a flat vector of {sum(self.sizes)} values is needed to restore the layers, "
                             f"got shape {flat.shape}")
        parts = np.split(flat, np.cumsum(self.sizes)[:-1])
        out = [p.reshape(shape) for p, shape in zip(parts, self.shapes)]
        return out if self.as_list else out[0]


def flatten_updates(updates) -> tuple[np.ndarray, LayerLayout | None]:
    """Turn what a caller holds into the ``(n, d)`` float64 rows every technique sums.

    Parameters
    ----------
    updates:
        * an ``(n, d)`` array (or a list of ``n`` rows): returned as float64, layout ``None``;
        * an ``(n, *shape)`` array with more than two axes: rows of ``prod(shape)`` values;
        * a list or tuple of per-layer arrays, each ``(n, *shape_k)`` with ``ndim >= 2``
          and the same ``n`` (the client axis first, as ``np.stack`` of each client's
          layer gives): rows are the layers' values concatenated in order. A per-client
          list of layers (Flower's ``NDArrays``) becomes this with
          ``[np.stack([c[k] for c in clients]) for k in range(len(clients[0]))]``.

    Returns
    -------
    (numpy.ndarray, LayerLayout or None)
        float64 rows ``(n, d)`` and the layout that :meth:`LayerLayout.restore` uses to
        give a flat ``(d,)`` total back its shapes (``None``: the input was 2-D).

    Raises
    ------
    InputError
        layers with different client counts, a layer without a client axis, non-numeric data.
    """
    if isinstance(updates, (list, tuple)) and updates and all(np.ndim(u) >= 2 for u in updates):
        layers = []
        for k, layer in enumerate(updates):
            try:
                layers.append(np.asarray(layer, dtype=np.float64))
            except (TypeError, ValueError) as exc:
                raise InputError(f"layer {k} must be a numeric array (n_clients, ...): {exc}") from None
        counts = {a.shape[0] for a in layers}
        if len(counts) != 1:
            raise InputError(
                "every layer must have the clients on its first axis, with the same count; got shapes "
                + ", ".join(str(a.shape) for a in layers)
            )
        n = counts.pop()
        shapes = tuple(a.shape[1:] for a in layers)
        if n < 1 or any(math.prod(sh) < 1 for sh in shapes):
            raise InputError(f"layers need >= 1 client and >= 1 value each, got shapes {[a.shape for a in layers]}")
        return np.concatenate([a.reshape(n, -1) for a in layers], axis=1), LayerLayout(shapes, True)
    if isinstance(updates, (list, tuple)) and updates and any(np.ndim(u) >= 2 for u in updates):
        raise InputError(
            "a list of layers needs every layer shaped (n_clients, ...) with ndim >= 2; got ndims "
            + ", ".join(str(np.ndim(u)) for u in updates)
            + " (reshape a per-client scalar layer to (n, 1))"
        )
    if isinstance(updates, np.ndarray) and updates.ndim > 2:
        try:
            arr = np.asarray(updates, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InputError(f"updates must be a numeric (n, ...) array: {exc}") from None
        if arr.shape[0] < 1 or math.prod(arr.shape[1:]) < 1:
            raise InputError(f"updates must have >= 1 client and >= 1 value each, got {arr.shape}")
        return arr.reshape(arr.shape[0], -1), LayerLayout((arr.shape[1:],), False)
    return validate_updates(updates), None


def validate_weights(weights, n: int) -> np.ndarray:
    """Check per-client ``weights``: shape ``(n,)``, finite, each in ``[0, 1]``; return float64.

    A weight above 1 would take an update past the aggregator's ``bound`` or
    ``clip_norm`` (and so change the DP sensitivity); scale weights first, e.g.
    ``num_examples / num_examples.max()``.
    """
    try:
        w = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"weights must be a numeric array of shape ({n},): {exc}") from None
    if w.shape != (n,):
        raise InputError(f"weights must have shape ({n},), one per client, got {w.shape}")
    if not np.all(np.isfinite(w)):
        raise InputError("weights contain NaN or infinity")
    if w.size and (w.min() < 0 or w.max() > 1):
        raise InputError(
            f"weights must lie in [0, 1], got values in [{w.min():g}, {w.max():g}]: scale them first, "
            "e.g. num_examples / num_examples.max() (a weight above 1 would exceed the bound or clip_norm)"
        )
    return w


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
    """Base class: subclasses implement :meth:`aggregate` for an ``(n, d)`` float array.

    Every subclass's :meth:`aggregate` is wrapped (in ``__init_subclass__``) so that each
    technique also accepts what ML code holds, with no code of its own:

    * **layers**: ``updates`` may be a list of per-layer arrays ``(n, *shape_k)`` or one
      ``(n, *shape)`` array (:func:`flatten_updates`); ``total`` comes back in the same
      shapes (a list of arrays, or one array);
    * **weights**: ``weights`` of shape ``(n,)``, each in ``[0, 1]``; ``total`` is then
      the weighted sum ``sum_i w_i x_i`` over the survivors, each row clipped *before* it
      is weighted (to ``clip_norm`` for DP techniques, to ``bound`` under
      ``out_of_range="clip"``), as DP-FedAvg does; ``result.weight_total`` is the
      survivors' total weight (divide by it for the weighted mean).

    Class attributes a subclass sets when it clips (the wrapper uses them to clip before
    weighting): ``bound`` (per-coordinate bound, with ``out_of_range`` ``"raise"`` or
    ``"clip"``) and ``clip_norm`` (L2 norm). ``dropout`` in :meth:`aggregate` is either
    ``None``, a rate in ``[0, 1)`` or a mapping ``{row: round_name}``; techniques without
    rounds treat any listed row as absent.
    """

    #: registry name, set by subclasses
    name: str = ""
    #: whether the server sees only the sum (True) or individual updates (False)
    hides_individual_updates: bool = False
    #: whether the technique adds differential-privacy noise: such an aggregator also
    #: implements :meth:`dp_event_for`, and a caller accounts what it reports
    is_dp: bool = False
    #: where a DP aggregator's noise is added: "central" (a trusted server), "local" (each
    #: client, full noise) or "distributed" (shares under secure aggregation); None if unknown
    noise_placement: str | None = None
    #: whether the output depends on randomness beyond the inputs (noise, stochastic
    #: rounding): a reproducible run must seed it explicitly
    randomized: bool = False
    #: per-coordinate bound of the technique's encoding (None: no bound)
    bound: float | None = None
    #: what happens to a value beyond ``bound``: "raise" or "clip" (then counted)
    out_of_range: str = "raise"
    #: L2 norm each update is clipped to (DP techniques; None: no norm clipping)
    clip_norm: float | None = None

    @property
    def round_trips(self) -> int:
        """Server -> client -> server exchanges of one aggregation (the protocol's rounds)."""
        return 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        impl = cls.__dict__.get("aggregate")
        if impl is not None and not getattr(impl, "__isabstractmethod__", False) and not getattr(
            impl, "_accepts_layers_and_weights", False
        ):
            setattr(cls, "aggregate", accept_layers_and_weights(impl))

    def dp_event_for(self, n: int, dim: int, survivors: int | None = None, dropout: object = None) -> DpEvent:
        """The privacy event one aggregation of ``n`` rows of length ``dim`` will report
        (DP aggregators; nothing is run). Raises :class:`ConfigurationError` otherwise."""
        raise ConfigurationError(f"the {self.name or type(self).__name__} aggregator adds no DP noise: no privacy event")

    @abstractmethod
    def aggregate(
        self,
        updates: np.ndarray | Sequence[np.ndarray],
        *,
        weights: np.ndarray | None = None,
        dropout: float | Mapping[int, str] | None = None,
        rng: np.random.Generator | None = None,
    ) -> AggregationResult:
        """Aggregate the clients' updates.

        Parameters
        ----------
        updates:
            ``(n, d)`` float array, an ``(n, *shape)`` array, or a list of per-layer
            arrays ``(n, *shape_k)`` (see :func:`flatten_updates`).
        weights:
            optional ``(n,)`` per-client weights in ``[0, 1]``: ``total`` is then
            ``sum_i w_i x_i`` over the survivors (rows clipped before weighting).
        dropout:
            ``None``, a rate in ``[0, 1)`` or ``{row: round_name}``.
        rng:
            generator for statistical randomness (rounding, noise, dropout choice).

        Returns
        -------
        AggregationResult
            ``total`` in the shapes of ``updates``.

        Raises
        ------
        OutOfRangeError
            a value beyond the technique's ``bound`` with ``out_of_range="raise"``.
        InputError
            bad shapes, NaN or infinity, weights outside ``[0, 1]``.
        """


def accept_layers_and_weights(impl: Callable[..., AggregationResult]) -> Callable[..., AggregationResult]:
    """Wrap a subclass's ``aggregate(updates (n, d), *, dropout, rng)`` with layers and weights.

    :class:`Aggregator` applies it to every subclass's ``aggregate`` on its own; write it
    as a decorator on yours (as the built-in techniques do) so that a type checker sees
    the full signature of :meth:`Aggregator.aggregate` (``weights=`` included).
    """

    @functools.wraps(impl)
    def aggregate(self: Aggregator, updates: ArrayLike | Sequence[ArrayLike], *, weights: ArrayLike | None = None,
                  dropout: float | Mapping[int, str] | None = None, rng: np.random.Generator | None = None,
                  **kwargs: Any) -> AggregationResult:
        rows, layout = flatten_updates(updates)
        if weights is None:
            res = impl(self, rows if layout is not None else updates, dropout=dropout, rng=rng, **kwargs)
        else:
            w = validate_weights(weights, rows.shape[0])
            rows, pre_clipped = _clip_then_weight(self, rows, w)
            res = impl(self, rows, dropout=dropout, rng=rng, **kwargs)
            res.weights = w
            if pre_clipped is not None:
                own = res.clipped_per_client
                res.clipped_per_client = pre_clipped if own is None else pre_clipped + np.asarray(own)
        if layout is not None:
            res.total = layout.restore(res.total)
        return res

    setattr(aggregate, "_accepts_layers_and_weights", True)
    setattr(aggregate, "__signature__", inspect.signature(Aggregator.__dict__["aggregate"]))
    aggregate.__doc__ = (impl.__doc__ or "").rstrip() + (
        "\n\n        Also takes per-layer arrays and ``weights=`` (see :meth:`Aggregator.aggregate`)."
    )
    return aggregate


def _clip_then_weight(agg: Aggregator, rows: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Clip each row as the technique would (L2 norm, then the coordinate bound), then weight it."""
    rows = validate_updates(rows)
    counts = None
    if agg.clip_norm is not None:
        norms = np.linalg.norm(rows, axis=1)
        rows = rows * np.minimum(1.0, agg.clip_norm / np.maximum(norms, np.finfo(float).tiny))[:, None]
    if agg.bound is not None:
        rows, counts = apply_bound(rows, agg.bound, agg.out_of_range)
    return rows * w[:, None], counts


def dropped_rows(n: int, dropout, rng: np.random.Generator | None) -> np.ndarray:
    """Rows that drop under ``dropout`` (rate, mapping or schedule) for techniques without
    rounds: :class:`~secagg._dropout.DropoutSchedule`'s ids (the one parser)."""
    return DropoutSchedule.resolve(n, dropout, "masked_input", rng).rows


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

    Parameters
    ----------
    bound:
        optional per-coordinate bound, checked like the quantized techniques check
        theirs, so the baseline sums exactly what they would (``None``: no bound).
    out_of_range:
        ``"raise"`` (default): a value beyond ``bound`` raises
        :class:`~secagg.errors.OutOfRangeError`; ``"clip"``: it is clipped and counted in
        ``result.clipped``.
    clip:
        deprecated old name of ``bound`` (a :class:`DeprecationWarning`).
    """

    name = "plain"
    hides_individual_updates = False

    def __init__(self, bound: float | None = None, out_of_range: str = "raise", *, clip: float | None = None) -> None:
        bound = renamed_keyword(self, "clip", clip, "bound", bound)
        self.bound = None if bound is None else _check_bound(bound)
        self.out_of_range = check_out_of_range_policy(out_of_range)

    @accept_layers_and_weights
    def aggregate(
        self,
        updates: ArrayLike,
        *,
        dropout: float | Mapping[int, str] | None = None,
        rng: np.random.Generator | None = None,
    ) -> AggregationResult:
        """Sum the surviving rows of ``updates`` (``(n, d)`` float) as float32 on the wire.

        Raises :class:`~secagg.errors.OutOfRangeError` for a value beyond ``bound`` under
        ``out_of_range="raise"``, :class:`InputError` for bad updates.
        """
        arr = validate_updates(updates)
        n, d = arr.shape
        clipped = None
        if self.bound is not None:
            arr, clipped = apply_bound(arr, self.bound, self.out_of_range)
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
            costs=Costs.one_round(n, bytes_up=up, client_seconds=client_seconds, server_seconds=server_seconds),
            clipped_per_client=clipped,
        )


def _check_bound(bound) -> float:
    """A per-coordinate bound: a positive finite number (ConfigurationError otherwise)."""
    try:
        b = float(bound)
    except (TypeError, ValueError):
        raise ConfigurationError(f"bound must be a positive finite number, got {bound!r}") from None
    if isinstance(bound, bool) or not (math.isfinite(b) and b > 0):
        raise ConfigurationError(f"bound must be a positive finite number, got {bound!r}")
    return b


# name -> "module:Class" (imported lazily so optional parts stay optional)
_REGISTRY: dict[str, str | type[Aggregator]] = {
    "plain": "secagg.aggregators:PlainAggregator",
    "secagg": "secagg.masking.aggregator:SecAggAggregator",
    "secagg+": "secagg.masking.aggregator:SecAggPlusAggregator",
    "paillier": "secagg.paillier.aggregator:PaillierAggregator",
    "central-dp": "secagg.dp.aggregators:CentralDPAggregator",
    "local-dp": "secagg.dp.aggregators:LocalDPAggregator",
    "distributed-dp": "secagg.dp.aggregators:DistributedDPAggregator",
}


def register_aggregator(name: str, target: str | type[Aggregator]) -> None:
    """Register an aggregator class (or ``"module:Class"`` path) under ``name``."""
    if not isinstance(target, (str, type)):
        raise ConfigurationError(f"register a class or a 'module:Class' string, got {type(target).__name__}")
    _REGISTRY[name] = target


def available_aggregators() -> list[str]:
    """Names accepted by :func:`make_aggregator` (sorted)."""
    return sorted(_REGISTRY)


def aggregator_class(name: str) -> type[Aggregator]:
    """The class registered as ``name`` (imported on first use).

    Raises :class:`ConfigurationError` for an unknown name, listing the known ones, or
    when the class cannot be imported (an optional part not installed).
    """
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise ConfigurationError(
            f"unknown aggregator {name!r}; choose one of {', '.join(available_aggregators())}"
        ) from None
    if isinstance(target, type):
        return target
    module_name, _, cls_name = target.partition(":")
    try:
        return getattr(importlib.import_module(module_name), cls_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"aggregator {name!r} is not available: {exc}") from None


def make_aggregator(name: str, **options: Any) -> Aggregator:
    """Build the aggregator registered as ``name`` with ``options``.

    Options are the class's constructor keywords: ``bound`` and ``out_of_range`` for the
    techniques with a fixed-point encoding (``plain``, ``secagg``, ``secagg+``,
    ``paillier``; values beyond ``bound`` raise unless ``out_of_range="clip"``),
    ``clip_norm`` for the DP techniques. Raises :class:`ConfigurationError` for an
    unknown name (listing the known ones) or an option the class does not take.
    """
    cls = aggregator_class(name)
    params = inspect.signature(cls).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(options) - set(params))
        if unknown:
            raise ConfigurationError(
                f"aggregator {name!r} has no option(s) {', '.join(unknown)}; "
                f"it accepts: {', '.join(p for p in params if p != 'self')}"
            )
    return cls(**options)
