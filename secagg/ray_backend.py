"""Ray backend for the secure-sum simulation: the clients of SecAgg / SecAgg+ (Bonawitz et
al. CCS 2017; Bell et al. CCS 2020) run in Ray actors spread over the cores of one machine
or a Ray cluster, the server runs in the driver, and only message bytes travel.

:func:`simulate_ray` has the signature and result of :func:`secagg.masking.simulate`
(:func:`simulate_ring_ray` of :func:`~secagg.masking.simulate_ring`) plus ``num_workers``;
:func:`simulate_with_backend` dispatches on ``backend="inprocess" | "ray"``. For the same
inputs, ``rng`` seed and dropout schedule the sums equal the in-process ones exactly:
the statistical randomness (stochastic rounding, dropout choice) is drawn in the driver in
the same order as the in-process driver, and the protocol's cryptographic secrets (fresh
in every run, from the OS CSPRNG in each actor) cancel out of the sum.

Ray is optional (``pip install secagg[ray]``). If Ray is not initialised, the first call
runs ``ray.init(include_dashboard=False, log_to_driver=False)``; call ``ray.init`` yourself
to join a cluster (``ray.init(address="auto")``).
"""

from __future__ import annotations

import time
from typing import Mapping

import numpy as np

from . import keys
from .errors import ConfigurationError, InputError, ProtocolAbort, SecAggError
from .masking.messages import decode_message
from .masking.simulate import SimulationResult, _Run

__all__ = ["simulate_ray", "simulate_ring_ray", "simulate_with_backend", "BACKENDS"]

BACKENDS = ("inprocess", "ray")


def _ray():
    try:
        import ray
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise ConfigurationError(
            "backend='ray' needs the optional dependency ray: pip install 'secagg[ray]'"
        ) from None
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    return ray


class _ClientShard:
    """A Ray actor hosting the protocol clients of a subset of ids (sans-IO, bytes in/out)."""

    def __init__(self, ids, cfg, graph, vectors, signing_keys, directory):
        from .masking.client import Client

        arr = np.asarray(vectors)
        self.clients = {}
        for i, u in enumerate(ids):
            sk = keys.SigningKey.from_bytes(signing_keys[i]) if signing_keys is not None else None
            self.clients[int(u)] = Client(int(u), cfg, graph, arr[int(u)], signing_key=sk, directory=directory)

    def step(self, datas):
        """``datas``: encoded server messages for clients of this shard. Returns a list of
        ``(id, [reply bytes], seconds, error)`` in the same order; ``error`` is the
        exception of a client that refused its message (it leaves the session), else None."""
        out = []
        for data in datas:
            t0 = time.perf_counter()
            msg = decode_message(data)
            u = msg.recipient
            try:
                replies, err = [m.to_bytes() for m in self.clients[u].receive(msg)], None
            except SecAggError as exc:
                replies, err = [], exc
            out.append((u, replies, time.perf_counter() - t0, err))
        return out


def simulate_ring_ray(
    vectors: np.ndarray,
    *,
    bits: int,
    threshold: int | None = None,
    graph: str = "complete",
    k: int | None = None,
    dropout: float | Mapping[int, str] | None = None,
    dropout_round: str = "masked_input",
    rng: np.random.Generator | None = None,
    threat=None,
    min_survivors: int | None = None,
    keep_masked: tuple[int, ...] = (),
    progress: bool = False,
    num_workers: int | None = None,
) -> SimulationResult:
    """:func:`secagg.masking.simulate_ring` with the clients in ``num_workers`` Ray actors
    (default: the cluster's CPU count, at most ``n``).

    ``vectors`` is ``(n, d)`` uint32/uint64 ring elements. Same parameters, result and
    exceptions as the in-process driver; ``client_seconds`` are measured inside the actors
    and ``round_seconds`` is the wall time of each round with the actors in parallel.
    ``progress`` is accepted for signature compatibility and ignored.
    """
    ray = _ray()
    run = _Run.setup(
        vectors, bits=bits, threshold=threshold, graph=graph, k=k, dropout=dropout, dropout_round=dropout_round,
        rng=rng, threat=threat, min_survivors=min_survivors,
    )
    n = run.cfg.n
    if num_workers is None:
        num_workers = max(1, int(ray.available_resources().get("CPU", 1)))
    if not isinstance(num_workers, int) or num_workers < 1:
        raise InputError(f"num_workers must be a positive integer, got {num_workers!r}")
    num_workers = min(num_workers, n)

    shard_of = np.arange(n) % num_workers
    Actor = ray.remote(num_cpus=1)(_ClientShard)
    vec_ref = ray.put(np.ascontiguousarray(run.vectors))
    while True:
        try:
            _run_once_ray(ray, run, Actor, vec_ref, shard_of, num_workers, keep_masked)
            return run.result()
        except ProtocolAbort as exc:
            if not run.retry_without(exc):
                raise


def _run_once_ray(ray, run, Actor, vec_ref, shard_of, num_workers: int, keep_masked) -> None:
    """One attempt of the session with the clients in fresh Ray actors."""
    cfg, rounds, server = run.cfg, run.rounds, run.server
    actors = []
    for w in range(num_workers):
        ids = [int(u) for u in np.flatnonzero(shard_of == w)]
        sks = [run.signing[u].to_bytes() for u in ids] if run.signing else None
        actors.append(Actor.remote(ids, cfg, run.graph, vec_ref, sks, run.directory))
    recv, csec, s_sent, ssec, rsec = run.recv, run.csec, run.s_sent, run.ssec, run.rsec
    try:
        t0 = time.perf_counter()
        outgoing = [m.to_bytes() for m in server.start()]
        ssec[rounds[0]] += time.perf_counter() - t0
        for ri, rname in enumerate(rounds):
            r_start = time.perf_counter()
            batches: list[list[bytes]] = [[] for _ in range(num_workers)]
            for data in outgoing:
                s_sent[rname] += len(data)
                u = decode_message(data).recipient
                if run.drop_at.get(u, len(rounds)) <= ri:
                    continue
                recv[rname][u] += len(data)
                batches[shard_of[u]].append(data)
            futures = [a.step.remote(b) for a, b in zip(actors, batches) if b]
            replies = [item for part in _gather(ray, futures, rname) for item in part]
            replies.sort(key=lambda item: item[0])  # feed the server in id order, like the in-process driver
            ts = time.perf_counter()
            for u, reps, seconds, err in replies:
                csec[rname][u] += seconds
                if err is not None:
                    run.client_abort(u, ri, err)
                for rep in reps:
                    run.to_server(u, rname, rep, keep_masked)
            outgoing = [m.to_bytes() for m in server.close_round()]
            ssec[rname] += time.perf_counter() - ts
            rsec[rname] += time.perf_counter() - r_start
    finally:
        for a in actors:
            ray.kill(a)


def _gather(ray, futures, round_name: str):
    """``ray.get`` that keeps the library's exception contract.

    A protocol error raised inside an actor reaches the caller as that secagg error (Ray
    re-raises task errors as subclasses of the original class); a worker that died or an
    object that was lost is the simulated equivalent of clients vanishing mid-round, so it
    becomes :class:`ProtocolAbort` naming the round. Other errors (bugs) propagate as is.
    """
    lost = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.ObjectLostError)
    try:
        return ray.get(futures)
    except SecAggError:
        raise
    except lost as exc:
        raise ProtocolAbort(f"a Ray worker died during round {round_name!r} ({type(exc).__name__})") from exc


def simulate_ray(inputs: np.ndarray, **kwargs) -> SimulationResult:
    """:func:`secagg.masking.simulate` with the clients in Ray actors.

    Same parameters (plus ``num_workers``) and result; the quantization draws the same
    ``rng`` values in the same order, so ``sum`` equals the in-process one for the same
    seed and dropout schedule.
    """
    from .masking.simulate import simulate

    return simulate(inputs, backend="ray", **kwargs)


def simulate_with_backend(inputs: np.ndarray, *, backend: str = "inprocess", **kwargs) -> SimulationResult:
    """:func:`secagg.masking.simulate` with ``backend`` (``"inprocess"`` or ``"ray"``)."""
    from .masking.simulate import simulate

    return simulate(inputs, backend=backend, **kwargs)
