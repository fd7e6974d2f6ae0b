"""The three DP aggregators for ``fl``: central, local and distributed differential privacy.

=================  ===================================  ===================================
name               who adds noise                       what the server sees
=================  ===================================  ===================================
``central-dp``     the (trusted) server, once           every raw update
``local-dp``       every client, full noise each        every update, each noisy on its own
``distributed-dp`` every client, a 1/n_min share        only the noisy sum (secure aggregation)
=================  ===================================  ===================================

All three clip every update to L2 norm ``clip_norm`` (an *L2 norm*, not the
per-coordinate ``bound`` of the secagg and paillier aggregators; ``clip=`` is its
deprecated old name and still works, with a :class:`DeprecationWarning`) and add
*integer* noise on a fixed-point grid (discrete
Gaussian, Canonne-Kamath-Steinke 2020), so no float-noise attack (Mironov 2012)
applies. ``noise_multiplier`` z is the noise std in units of the sensitivity; instead of
it, give ``epsilon`` (and ``delta``, default 1e-5) and ``rounds``: z is then the smallest
one such that ``rounds`` Gaussian releases without sampling amplification compose to
(epsilon, delta) (:func:`secagg.dp.noise_multiplier_for` with rate 1: exact, PLD
accountant), raised by a relative 1e-9 to cover the discrete noise on the grid (its
PLD bound, :mod:`secagg.dp._pld_discrete`, exceeds the Gaussian's by less than that at
the default resolutions).

Each :class:`~secagg.aggregators.AggregationResult` has ``noise_std`` (per coordinate
of ``total``, in update units) and ``info`` with ``noise_multiplier`` (per round),
``dp_event`` (the :class:`~secagg.dp.DpEvent` of this round, to compose into the
caller's accountant or :class:`~secagg.dp.PrivacyBudget`; for the central and local
aggregators a :class:`~secagg.dp.DiscreteGaussianEvent` carrying the grid-unit
sensitivity and dimension), and ``round_epsilon`` (this round alone, at ``delta``, PLD
accountant). Composing over rounds (and sampling amplification) is the caller's job.
"""

from __future__ import annotations

import math
import time
from typing import Any, Mapping

import numpy as np
from numpy.typing import ArrayLike

from .._deprecation import renamed_keyword
from ..aggregators import (
    AggregationResult,
    Aggregator,
    Costs,
    accept_layers_and_weights,
    dropped_rows,
    send_float32,
    validate_updates,
)
from ..errors import ConfigurationError, EncodingError
from ..quantize import default_rng
from ._accountant import DiscreteGaussianEvent, DpEvent, make_accountant, noise_multiplier_for
from ._clipping import clip_rows
from .distributed import DistributedDP, SecureSum, distributed_dp_sum
from ._samplers import discrete_gaussian

__all__ = ["CentralDPAggregator", "LocalDPAggregator", "DistributedDPAggregator"]


def resolve_noise_multiplier(
    noise_multiplier: float | None, epsilon: float | None, delta: float | None, rounds: int
) -> float:
    """The per-round noise multiplier from either ``noise_multiplier`` or an (epsilon, delta) target."""
    if noise_multiplier is not None:
        if epsilon is not None:
            raise ConfigurationError("give either noise_multiplier or epsilon, not both")
        z = float(noise_multiplier)
        if not (math.isfinite(z) and z > 0):
            raise ConfigurationError(f"noise_multiplier must be a positive finite number, got {noise_multiplier!r}")
        return z
    if epsilon is None:
        raise ConfigurationError("a DP aggregator needs noise_multiplier=... or epsilon=... (with delta)")
    if not isinstance(rounds, (int, np.integer)) or rounds < 1:
        raise ConfigurationError(f"rounds must be a positive integer, got {rounds!r}")
    z = noise_multiplier_for(float(epsilon), float(delta if delta is not None else 1e-5), 1.0, int(rounds))
    return z * (1.0 + 1e-9)


def _check_clip_norm(clip_norm: float) -> float:
    try:
        c = float(clip_norm)
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"clip_norm (an L2 norm) must be a positive finite number, got {clip_norm!r}") from None
    if isinstance(clip_norm, bool) or not (math.isfinite(c) and c > 0):
        raise ConfigurationError(f"clip_norm (an L2 norm) must be a positive finite number, got {clip_norm!r}")
    return c


def _check_delta(delta: float) -> float:
    try:
        d = float(delta)
    except (TypeError, ValueError):
        raise ConfigurationError(f"delta must be a number in (0, 1), got {delta!r}") from None
    if not 0 < d < 1:
        raise ConfigurationError(f"delta must be in (0, 1), got {delta!r}")
    return d


def _round_epsilon(event: DpEvent, delta: float) -> float:
    return make_accountant("auto").compose(event).get_epsilon(delta)


class _GridDPAggregator(Aggregator):
    """Shared configuration of the central and local DP aggregators.

    Both clip each update to L2 norm ``clip_norm``, round it to the grid ``resolution``
    (default ``clip_norm / 2^_default_resolution_bits``) and add discrete Gaussian noise
    of std ``z * sensitivity(d)``, where the sensitivity charges the rounding slack:
    ``clip_norm + resolution * sqrt(d) / 2``. ``clip=`` is the deprecated old name of
    ``clip_norm``.
    """

    _default_resolution_bits = 20
    clip_norm: float  # always set (the base class allows None: no norm clipping)

    def __init__(
        self,
        clip_norm: float | None = None,
        noise_multiplier: float | None = None,
        *,
        epsilon: float | None = None,
        delta: float = 1e-5,
        rounds: int = 1,
        resolution: float | None = None,
        clip: float | None = None,
    ) -> None:
        self.clip_norm = _check_clip_norm(renamed_keyword(self, "clip", clip, "clip_norm", clip_norm, default=1.0))
        self.delta = _check_delta(delta)
        self.noise_multiplier = resolve_noise_multiplier(noise_multiplier, epsilon, delta, rounds)
        default = self.clip_norm * 2.0**-self._default_resolution_bits
        self.resolution = default if resolution is None else float(resolution)
        if not (math.isfinite(self.resolution) and 0 < self.resolution <= self.clip_norm):
            raise ConfigurationError(f"resolution must be in (0, clip_norm], got {resolution!r}")

    def sensitivity(self, dim: int) -> float:
        """L2 sensitivity of one rounded, clipped update, or of the rounded sum (update units)."""
        return self.clip_norm + self.resolution * math.sqrt(dim) / 2

    def dp_event_for(
        self, n: int, dim: int, survivors: int | None = None, dropout: object = None
    ) -> DiscreteGaussianEvent:
        """The privacy event one aggregation of ``n`` rows of length ``dim`` will report.

        The same for any number of survivors or ``dropout``: the noise does not depend on who survives.
        Lets a caller plan or calibrate a budget without running an aggregation.
        """
        return DiscreteGaussianEvent(self.noise_multiplier, sensitivity=self.sensitivity(dim) / self.resolution,
                                     dim=dim)

    def _result(
        self,
        total: np.ndarray,
        keep: np.ndarray,
        up: np.ndarray,
        client_seconds: np.ndarray,
        server_seconds: float,
        noise_std: float,
        dim: int,
        **extra: Any,
    ) -> AggregationResult:
        """The round's result with the DP fields every grid aggregator reports."""
        # integer units of the grid: L2 sensitivity Delta / resolution, noise z * that
        event = DiscreteGaussianEvent(self.noise_multiplier, sensitivity=self.sensitivity(dim) / self.resolution, dim=dim)
        return AggregationResult(
            total=total,
            survivors=keep.astype(np.int64),
            costs=Costs.one_round(len(up), bytes_up=up, client_seconds=client_seconds, server_seconds=server_seconds),
            noise_std=noise_std,
            info={
                "noise_multiplier": self.noise_multiplier,
                "sensitivity": self.sensitivity(dim),
                "dp_event": event,
                "round_epsilon": _round_epsilon(event, self.delta),
                "delta": self.delta,
                "mechanism": "discrete-gaussian",
                **extra,
            },
        )


class CentralDPAggregator(_GridDPAggregator):
    """Central DP: clients send raw updates; the trusted server clips, sums and adds noise once.

    Protects the *output* (the released sum and everything trained from it) against
    anyone who sees it, but not the updates against the server. The server rounds each
    clipped update to the grid ``resolution`` (default ``clip_norm / 2^20``), sums integers
    and adds discrete Gaussian noise of std ``z * Delta`` with
    ``Delta = clip_norm + resolution * sqrt(d) / 2`` (the rounding slack is charged to the
    sensitivity).

    Parameters: ``clip_norm`` (L2 norm, default 1.0), ``noise_multiplier`` or ``epsilon``
    (+ ``delta``, ``rounds``), ``resolution``.
    """

    name = "central-dp"
    is_dp = True
    noise_placement = "central"
    randomized = True
    hides_individual_updates = False
    _default_resolution_bits = 20

    @accept_layers_and_weights
    def aggregate(
        self,
        updates: ArrayLike,
        *,
        dropout: float | Mapping[int, str] | None = None,
        rng: np.random.Generator | None = None,
    ) -> AggregationResult:
        arr = validate_updates(updates)
        n, d = arr.shape
        gen = default_rng(rng)
        keep = np.setdiff1d(np.arange(n), dropped_rows(n, dropout, gen))
        payloads, up, client_seconds = send_float32(arr, keep)
        t0 = time.perf_counter()
        rows = np.array([np.frombuffer(p, dtype="<f4") for p in payloads], dtype=np.float64).reshape(len(payloads), d)
        clipped, frac = clip_rows(rows, self.clip_norm)
        ints = np.rint(clipped / self.resolution).astype(np.int64).sum(axis=0)
        sigma = self.noise_multiplier * self.sensitivity(d)
        ints += discrete_gaussian(sigma / self.resolution, d, gen)
        total = ints.astype(np.float64) * self.resolution
        server_seconds = time.perf_counter() - t0
        return self._result(total, keep, up, client_seconds, server_seconds, sigma, d, fraction_clipped=frac)


class LocalDPAggregator(_GridDPAggregator):
    """Local DP: each client clips and adds the *full* noise ``z * Delta`` to its own update.

    Each client's update is then (epsilon, delta)-DP on its own, even against the server,
    and against every other client (no trust needed); the price is that the sum carries
    ``sqrt(n)`` times the noise of central DP. The sensitivity (and ``round_epsilon``) is
    that of one update against a zero update (norm ``clip_norm``); distinguishing two
    arbitrary updates of one client has sensitivity ``2 clip_norm``, i.e. noise multiplier
    ``z / 2``. Clients send the noisy integers on the grid
    ``resolution`` (default ``clip_norm / 2^16``) as int32 (int64 if they do not fit).
    """

    name = "local-dp"
    is_dp = True
    noise_placement = "local"
    randomized = True
    hides_individual_updates = False
    _default_resolution_bits = 16

    @accept_layers_and_weights
    def aggregate(
        self,
        updates: ArrayLike,
        *,
        dropout: float | Mapping[int, str] | None = None,
        rng: np.random.Generator | None = None,
    ) -> AggregationResult:
        arr = validate_updates(updates)
        n, d = arr.shape
        gen = default_rng(rng)
        keep = np.setdiff1d(np.arange(n), dropped_rows(n, dropout, gen))
        sigma = self.noise_multiplier * self.sensitivity(d)
        client_seconds = np.zeros(n)
        up = np.zeros(n, dtype=np.int64)
        payloads = []
        for i in keep:
            t0 = time.perf_counter()
            clipped, _ = clip_rows(arr[i][None, :], self.clip_norm)
            noisy = np.rint(clipped[0] / self.resolution).astype(np.int64) + discrete_gaussian(
                sigma / self.resolution, d, gen
            )
            wide = noisy.size and int(np.abs(noisy).max()) >= 2**31
            payload = (b"\x08" + noisy.astype("<i8").tobytes()) if wide else (b"\x04" + noisy.astype("<i4").tobytes())
            client_seconds[i] = time.perf_counter() - t0
            up[i] = len(payload)
            payloads.append(payload)
        t0 = time.perf_counter()
        total_int = np.zeros(d, dtype=np.int64)
        for p in payloads:
            width = p[0]
            if width not in (4, 8) or len(p) != 1 + width * d:
                raise EncodingError("malformed local-DP payload")
            total_int += np.frombuffer(p, dtype="<i4" if width == 4 else "<i8", offset=1)
        total = total_int.astype(np.float64) * self.resolution
        server_seconds = time.perf_counter() - t0
        return self._result(
            total, keep, up, client_seconds, server_seconds, math.sqrt(len(keep)) * sigma, d,
            guarantee="per client, against everyone including the server",
        )


class DistributedDPAggregator(Aggregator):
    """Distributed DP: DDG or Skellam noise shares under pairwise-mask secure aggregation.

    Each client adds ``1/n_min`` of the noise variance; the server learns only the noisy
    sum (see :mod:`secagg.dp.distributed`). Options: ``clip_norm`` (L2 norm, default 1.0;
    ``clip=`` is its deprecated old name), ``noise_multiplier``
    or ``epsilon`` (+ ``delta``, ``rounds``), ``bits`` (ring, default 32), ``mechanism``
    (``"ddg"`` | ``"skellam"``), ``graph`` (``"complete"`` | ``"sparse"``), ``threshold``,
    ``k`` (sparse-graph degree), ``min_clients`` or ``expected_dropout`` (fraction; the
    noise is calibrated for ``n_min = n - floor(n * expected_dropout)`` survivors; a
    dropout rate or schedule passed to :meth:`aggregate` lowers ``n_min`` to what it
    drops), ``dropout_round``, ``rotation_seed``, ``k_stddevs``. The clients refuse to
    unmask fewer than ``n_min`` survivors (the round aborts), so the noise never falls
    below what was calibrated.

    ``info`` also carries ``epsilon_achieved`` (this round, at ``delta``, with the actual
    survivors), ``min_clients``, ``local_stddev`` (integer units), ``scale``, ``bits``.
    """

    name = "distributed-dp"
    is_dp = True
    noise_placement = "distributed"
    randomized = True
    clip_norm: float  # always set (the base class allows None: no norm clipping)

    @property
    def round_trips(self) -> int:
        """The masking protocol's rounds (5 against an active server)."""
        from ..masking.rounds import round_trips

        return round_trips(True)
    hides_individual_updates = True

    def __init__(
        self,
        clip_norm: float | None = None,
        noise_multiplier: float | None = None,
        *,
        epsilon: float | None = None,
        delta: float = 1e-5,
        rounds: int = 1,
        bits: int = 32,
        mechanism: str = "ddg",
        graph: str = "complete",
        threshold: int | None = None,
        k: int | None = None,
        min_clients: int | None = None,
        expected_dropout: float = 0.0,
        dropout_round: str | None = None,
        rotation_seed: int = 0,
        k_stddevs: float = 4.0,
        secure_sum: SecureSum | None = None,
        clip: float | None = None,
    ) -> None:
        self.clip_norm = _check_clip_norm(renamed_keyword(self, "clip", clip, "clip_norm", clip_norm, default=1.0))
        self.delta = _check_delta(delta)
        self.noise_multiplier = resolve_noise_multiplier(noise_multiplier, epsilon, delta, rounds)
        if mechanism not in ("ddg", "skellam"):
            raise ConfigurationError(f"mechanism must be 'ddg' or 'skellam', got {mechanism!r}")
        if graph not in ("complete", "sparse"):
            raise ConfigurationError(f"graph must be 'complete' or 'sparse', got {graph!r}")
        if not 0 <= float(expected_dropout) < 1:
            raise ConfigurationError(f"expected_dropout must be in [0, 1), got {expected_dropout!r}")
        self.bits, self.mechanism, self.graph = int(bits), mechanism, graph
        self.threshold, self.k, self.min_clients = threshold, k, min_clients
        self.expected_dropout = float(expected_dropout)
        self.dropout_round = dropout_round
        self.rotation_seed, self.k_stddevs = int(rotation_seed), float(k_stddevs)
        self.secure_sum = secure_sum
        self._params_cache: dict[tuple[int, int, int], DistributedDP] = {}

    def params_for(self, n: int, d: int, dropout: object = None) -> DistributedDP:
        """The :class:`DistributedDP` parameters used for ``n`` clients of dimension ``d``."""
        planned = math.floor(n * self.expected_dropout + 1e-9)
        if isinstance(dropout, (int, float)) and not isinstance(dropout, bool):
            planned = max(planned, int(round(float(dropout) * n)))  # what the simulator drops
        elif isinstance(dropout, Mapping):
            planned = max(planned, len(dropout))
        n_min = self.min_clients if self.min_clients is not None else max(1, n - planned)
        n_min = min(int(n_min), n)
        key = (n, d, n_min)
        if key not in self._params_cache:
            self._params_cache[key] = DistributedDP(
                clip_norm=self.clip_norm,
                noise_multiplier=self.noise_multiplier,
                num_clients=n,
                dim=d,
                bits=self.bits,
                mechanism=self.mechanism,
                min_clients=n_min,
                k_stddevs=self.k_stddevs,
                rotation_seed=self.rotation_seed,
            )
        return self._params_cache[key]

    def dp_event_for(self, n: int, dim: int, survivors: int | None = None, dropout: object = None) -> DpEvent:
        """The privacy event of one aggregation of ``n`` rows of length ``dim`` with ``survivors`` survivors.

        ``survivors`` defaults to the ``n_min`` the noise is calibrated for (the planned
        round); fewer survivors mean less noise and a costlier event. Nothing is run.
        """
        params = self.params_for(int(n), int(dim), dropout)
        assert params.min_clients is not None  # DistributedDP resolves its default (num_clients)
        return params.dp_event(params.min_clients if survivors is None else int(survivors))

    @accept_layers_and_weights
    def aggregate(
        self,
        updates: ArrayLike,
        *,
        dropout: float | Mapping[int, str] | None = None,
        rng: np.random.Generator | None = None,
    ) -> AggregationResult:
        arr = validate_updates(updates)
        n, d = arr.shape
        params = self.params_for(n, d, dropout)
        options: dict[str, Any] = {}
        if self.secure_sum is None:
            options.update(threshold=self.threshold, graph=self.graph)
            if self.k is not None:
                options["k"] = self.k
            if self.dropout_round is not None:
                options["dropout_round"] = self.dropout_round
        res = distributed_dp_sum(
            arr, params, dropout=dropout, rng=rng, delta=self.delta, secure_sum=self.secure_sum, **options
        )
        info = dict(res.info)
        info.update(
            noise_multiplier=self.noise_multiplier,
            dp_event=res.event,
            round_epsilon=res.epsilon,
            epsilon_achieved=res.epsilon,
            delta=self.delta,
            mechanism=self.mechanism,
            min_clients=params.min_clients,
            local_stddev=params.local_stddev,
            scale=params.scale,
            bits=params.bits,
            padded_dim=params.padded_dim,
            encode_seconds=res.encode_seconds,
        )
        return AggregationResult(
            total=res.total,
            survivors=res.survivors,
            costs=res.costs,
            noise_std=res.noise_std,
            info=info,
        )
