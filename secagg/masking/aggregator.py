"""SecAgg and SecAgg+ as :class:`secagg.aggregators.Aggregator` plug-ins (Bonawitz et al.
CCS 2017; Bell et al. CCS 2020): check the bound, quantize, run the simulated protocol, decode."""

from __future__ import annotations

from typing import Mapping

import numpy as np
from numpy.typing import ArrayLike

from .._deprecation import renamed_keyword
from ..aggregators import AggregationResult, Aggregator, accept_layers_and_weights, validate_updates
from ..errors import ConfigurationError
from ..quantize import Quantizer, check_out_of_range_policy, default_rng
from .params import ThreatModel
from .rounds import round_trips
from .simulate import simulate

__all__ = ["SecAggAggregator", "SecAggPlusAggregator"]


class SecAggAggregator(Aggregator):
    """Pairwise-mask secure sum on the complete graph (SecAgg).

    Parameters: ``bound`` (per-coordinate bound, default 1.0), ``bits`` (ring, 32),
    ``threshold`` (default smallest ``t`` above half the holders), ``k`` (sparse degree,
    SecAgg+ only), ``dropout_round`` (where rate-based dropouts happen, default
    ``"masked_input"``), ``threat`` (a :class:`~secagg.masking.params.ThreatModel`;
    default: an active server with 5 % corrupt clients), ``min_survivors`` (survivor floor),
    ``backend`` (``"inprocess"`` or ``"ray"``: clients as Ray actors) and ``num_workers``;
    ``out_of_range``: ``"raise"`` (default: a value beyond ``bound`` raises
    :class:`~secagg.errors.OutOfRangeError` before anything runs) or ``"clip"`` (clipped
    and counted in ``result.clipped``); ``clip`` is the deprecated old name of ``bound``.

    ``aggregate`` returns ``bytes_up``/``bytes_down`` per client summed over rounds (real
    encodings), ``client_seconds`` per client, ``server_seconds``; ``info`` holds the
    resolved ``k``, ``threshold``, per-round byte totals and the quantizer resolution.
    Fewer live clients than the threshold raises :class:`secagg.errors.ProtocolAbort`.
    """

    name = "secagg"
    randomized = True

    @property
    def round_trips(self) -> int:
        """The protocol's rounds: 5 against an active server, 4 honest-but-curious."""
        return round_trips(self.threat is None or self.threat.active)
    hides_individual_updates = True
    _graph = "complete"

    def __init__(
        self,
        bound: float | None = None,
        bits: int = 32,
        threshold: int | None = None,
        k: int | None = None,
        dropout_round: str = "masked_input",
        threat: ThreatModel | None = None,
        min_survivors: int | None = None,
        backend: str = "inprocess",
        num_workers: int | None = None,
        *,
        out_of_range: str = "raise",
        clip: float | None = None,
    ) -> None:
        if backend not in ("inprocess", "ray"):
            raise ConfigurationError(f"backend must be 'inprocess' or 'ray', got {backend!r}")
        bound = renamed_keyword(self, "clip", clip, "bound", bound, default=1.0)
        if not np.isfinite(bound) or bound <= 0:
            raise ConfigurationError(f"bound must be a positive finite number, got {bound!r}")
        self.bound = float(bound)
        self.out_of_range = check_out_of_range_policy(out_of_range)
        self.bits = int(bits)
        self.threshold = threshold
        self.k = k
        self.dropout_round = dropout_round
        self.threat = threat
        self.min_survivors = min_survivors
        self.backend = backend
        self.num_workers = num_workers

    @accept_layers_and_weights
    def aggregate(
        self,
        updates: ArrayLike,
        *,
        dropout: float | Mapping[int, str] | None = None,
        rng: np.random.Generator | None = None,
    ) -> AggregationResult:
        arr = validate_updates(updates)
        n = arr.shape[0]
        gen = default_rng(rng)
        q = Quantizer(self.bound, num_clients=n, bits=self.bits, out_of_range=self.out_of_range)
        res = simulate(
            arr, quantizer=q, threshold=self.threshold, graph=self._graph, k=self.k, dropout=dropout,
            dropout_round=self.dropout_round, rng=gen, threat=self.threat, min_survivors=self.min_survivors,
            backend=self.backend, num_workers=self.num_workers,
        )
        return AggregationResult(
            total=res.sum,
            survivors=np.asarray(res.survivors, dtype=np.int64),
            costs=res.costs,
            clipped_per_client=res.clipped_per_client,
            info={
                "k": res.config.k,
                "threshold": res.config.threshold,
                "graph": "complete" if res.config.is_complete else "sparse",
                "resolution": q.resolution,
                "rounds": list(res.bytes_sent),
                "round_bytes_up": {r: int(v.sum()) for r, v in res.bytes_sent.items()},
                "round_bytes_down": {r: int(v.sum()) for r, v in res.bytes_received.items()},
                "dropped": res.dropped,
                "excluded": res.excluded,
                "misbehaving": res.misbehaving,
                "client_aborts": res.client_aborts,
                "min_survivors": res.config.min_survivors,
                "adversary": res.config.threat.adversary,
            },
        )


class SecAggPlusAggregator(SecAggAggregator):
    """Pairwise-mask secure sum on a sparse ``k``-regular Harary graph (SecAgg+).

    ``k`` and ``t`` default to the parameter finder's
    (:func:`secagg.masking.params.find_parameters`, ``O(log n)``); for small ``n`` this
    can be the complete graph."""

    name = "secagg+"
    _graph = "sparse"
