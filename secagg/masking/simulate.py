"""Run SecAgg / SecAgg+ on many clients at once: :func:`simulate` (float vectors) and
:func:`simulate_ring` (ring vectors), in this process or on Ray (Bonawitz et al. CCS 2017;
Bell et al. CCS 2020).

Both validate their inputs once, build one :class:`~secagg.masking.MaskingConfig` (or
take yours), and hand a :class:`~secagg.masking.session.Session` and an executor to
:func:`~secagg.masking.session.run`: every message is encoded by its sender, counted,
and decoded by its receiver, so the result's costs are those of the real encodings.

Times are wall-clock seconds measured around each party's work; in process the clients
run one after the other, so in a deployment (clients in parallel) a round takes about
``max(client time) + server time`` plus network latency.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Mapping

import numpy as np

from .._dropout import DropoutSchedule
from ..errors import ConfigurationError, InputError
from ..quantize import Quantizer, default_rng, ring_dtype
from .config import MaskingConfig
from .params import ThreatModel
from .session import InProcess, Session, SimulationResult, run

__all__ = ["simulate", "simulate_ring"]


def planned_threat(threat: ThreatModel | None, dropout_fraction: float) -> ThreatModel:
    """The threat model a session is planned for: ``threat`` when given; otherwise the
    default one, with its dropout rate raised to the fraction of clients the schedule
    drops (so the parameter finder sizes ``k`` and the survivor floor for the dropouts
    actually simulated)."""
    if threat is not None:
        if not isinstance(threat, ThreatModel):
            raise ConfigurationError(f"threat must be a secagg.masking.ThreatModel, got {type(threat).__name__}")
        return threat
    base = ThreatModel()
    if dropout_fraction > base.dropout_rate:
        return dataclasses.replace(base, dropout_rate=min(float(dropout_fraction), 0.89 - base.corrupt_fraction))
    return base


def simulate_ring(
    vectors: np.ndarray,
    *,
    bits: int | None = None,
    config: MaskingConfig | None = None,
    threshold: int | None = None,
    graph: str = "complete",
    k: int | None = None,
    threat: ThreatModel | None = None,
    min_survivors: int | None = None,
    dropout: float | Mapping[int, str] | DropoutSchedule | None = None,
    dropout_round: str = "masked_input",
    rng: np.random.Generator | None = None,
    keep_masked: tuple[int, ...] = (),
    progress: bool = False,
    backend: str = "inprocess",
    num_workers: int | None = None,
) -> SimulationResult:
    """Run SecAgg (``graph="complete"``) or SecAgg+ (``"sparse"``) on ring vectors.

    Parameters
    ----------
    vectors:
        ``(n, d)`` uint32 (``bits <= 32``) or uint64 array of ring elements ``< 2^bits``.
    bits:
        ring size (required without ``config``).
    config:
        a :class:`MaskingConfig` for these ``n`` and ``d``; then ``bits``, ``threshold``,
        ``graph``, ``k``, ``threat`` and ``min_survivors`` must not be given.
    threshold, graph, k, min_survivors:
        see :class:`MaskingConfig` (defaults from the parameter finder).
    threat:
        the :class:`~secagg.masking.params.ThreatModel` (default: active server, 5 %
        corrupt clients, and a dropout rate of at least the fraction ``dropout`` drops).
    dropout, dropout_round:
        ``None``, a rate in ``[0, 1)`` (clients chosen with ``rng`` drop at
        ``dropout_round``), a mapping ``{client id: round name}`` or a
        :class:`~secagg._dropout.DropoutSchedule`. A client dropping at a round sends
        nothing from that round on (and receives nothing). Without the consistency check, a
        drop at ``"consistency_check"`` means a drop at ``"unmasking"``.
    rng:
        numpy Generator for the dropout choice (statistical only; secrets use the OS).
    keep_masked:
        client ids whose masked input (the server's view) is returned in ``masked_inputs``.
    progress:
        show a tqdm progress bar over rounds and clients (in process).
    backend, num_workers:
        ``"inprocess"`` (default) runs every party in this process; ``"ray"`` runs the
        clients in ``num_workers`` Ray actors (:mod:`secagg.ray_backend`, needs the
        ``ray`` extra) with the same messages, sums and exceptions.

    Returns
    -------
    SimulationResult
        ``ring_sum``, ``survivors``, the :class:`~secagg._costs.Costs` of every round,
        and who was excluded or misbehaved (``sum`` is ``None``).

    Raises
    ------
    InputError, ConfigurationError, InsecureParameterError
        bad vectors or parameters.
    ProtocolAbort
        fewer than ``threshold`` live share holders, or fewer survivors than the floor,
        at some round (no partial result).
    """
    arr = np.asarray(vectors)
    if config is not None:
        given = {name: v for name, v in (("bits", bits), ("threshold", threshold), ("k", k), ("threat", threat),
                                          ("min_survivors", min_survivors)) if v is not None}
        if given or graph != "complete":
            raise ConfigurationError(f"give config= or the parameters {sorted(given) or ['graph']}, not both")
        if not isinstance(config, MaskingConfig):
            raise InputError(f"config must be a MaskingConfig, got {type(config).__name__}")
        bits = config.bits
    if bits is None:
        raise ConfigurationError("simulate_ring needs bits= (the ring size) or config=")
    dt = ring_dtype(bits)
    if arr.ndim != 2 or arr.shape[0] < 2 or arr.shape[1] < 1:
        raise InputError(f"vectors must have shape (n_clients >= 2, dim >= 1), got {arr.shape}")
    if arr.dtype != dt:
        raise InputError(f"ring vectors for a {bits}-bit ring must have dtype {dt}, got {arr.dtype}")
    if bits < dt.itemsize * 8 and arr.size and int(arr.max()) >> bits:
        raise InputError(f"ring vectors have values >= 2^{bits}")
    n, d = arr.shape
    schedule = DropoutSchedule.resolve(n, dropout, dropout_round, rng)
    if config is None:
        config = MaskingConfig(n=n, dim=d, bits=bits, threshold=threshold, graph=graph, k=k,
                               threat=planned_threat(threat, schedule.fraction), min_survivors=min_survivors)
    elif (config.n, config.dim) != (n, d):
        raise InputError(f"config is for {config.n} clients of dimension {config.dim}, the vectors are {arr.shape}")
    session = Session(config, dropout=schedule)
    session.keep_masked = frozenset(int(u) for u in keep_masked)
    if backend == "ray":
        from ..ray_backend import RayExecutor

        return run(session, RayExecutor(arr, num_workers))
    if backend != "inprocess":
        raise ConfigurationError(f"backend must be 'inprocess' or 'ray', got {backend!r}")
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(session.rounds) * n, desc="secure sum", unit="client", leave=False)
    try:
        return run(session, InProcess(arr, bar))
    finally:
        if bar is not None:
            bar.close()


def simulate(
    inputs: np.ndarray,
    *,
    bound: float | None = None,
    out_of_range: str | None = None,
    bits: int = 32,
    quantizer: Quantizer | None = None,
    rng: np.random.Generator | None = None,
    clip: float | None = None,
    **options: Any,
) -> SimulationResult:
    """Secure sum of float vectors: quantize, :func:`simulate_ring`, decode.

    ``inputs`` is an ``(n, d)`` float array. Without ``quantizer``, it is encoded by
    ``Quantizer(bound, num_clients=n, bits=bits, out_of_range=out_of_range)`` (default
    ``bound=1.0``, ``out_of_range="raise"``) with stochastic rounding drawn from ``rng``;
    a given ``quantizer`` must have ``num_clients >= n`` (its ``bits`` and policy win, and
    ``bound``/``out_of_range`` must not be given with it). A value beyond the bound raises
    :class:`~secagg.errors.OutOfRangeError` before anything runs, unless the policy is
    ``"clip"``: then it is clipped and counted in ``result.clipped_per_client``.
    ``sum`` is the decoded float64 ``(d,)`` sum of the survivors' inputs, within
    ``len(survivors) * quantizer.resolution`` per coordinate. Other keyword ``options``
    (``graph``, ``threshold``, ``k``, ``threat``, ``min_survivors``, ``config``,
    ``dropout``, ``dropout_round``, ``keep_masked``, ``progress``, ``backend``,
    ``num_workers``) go to :func:`simulate_ring`. ``clip=`` is the deprecated old name of
    ``bound=``. Raises like :func:`simulate_ring`.
    """
    try:
        x = np.asarray(inputs, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"inputs must be a numeric (n, d) array: {exc}") from None
    if x.ndim != 2:
        raise InputError(f"inputs must have shape (n_clients, dim), got {x.shape}")
    n = x.shape[0]
    gen = default_rng(rng)
    if clip is not None:
        if bound is not None:
            raise ConfigurationError("give bound= only (clip= is its deprecated old name)")
        warnings.warn("simulate(clip=...) is deprecated: use bound= (the per-coordinate bound)", DeprecationWarning,
                      stacklevel=2)
        bound = clip
    if quantizer is None:
        cfg = options.get("config")
        quantizer = Quantizer(1.0 if bound is None else bound, num_clients=max(n, 1),
                              bits=cfg.bits if isinstance(cfg, MaskingConfig) else bits,
                              out_of_range="raise" if out_of_range is None else out_of_range)
    elif not isinstance(quantizer, Quantizer):
        raise InputError(f"quantizer must be a secagg.quantize.Quantizer, got {type(quantizer).__name__}")
    elif bound is not None or out_of_range is not None:
        raise ConfigurationError("give bound=/out_of_range= or a quantizer=, not both (the quantizer has its own)")
    if quantizer.num_clients < n:
        raise ConfigurationError(
            f"quantizer leaves headroom for {quantizer.num_clients} summands but there are {n} clients"
        )
    ring, clipped = quantizer.encode(x, gen, return_clipped=True)
    if "config" not in options:
        options["bits"] = quantizer.bits
    res = simulate_ring(ring, rng=gen, **options)
    res.sum = quantizer.decode(res.ring_sum, len(res.survivors))
    res.clipped_per_client = np.asarray(clipped, dtype=np.int64).reshape(n)
    return res
