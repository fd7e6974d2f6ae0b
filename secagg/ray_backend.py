"""Ray executor for the secure-sum session: the clients of SecAgg / SecAgg+ (Bonawitz et
al. CCS 2017; Bell et al. CCS 2020) run in Ray actors spread over the cores of one machine
or a Ray cluster; the session (server, costs, retries) stays in the driver and only
message bytes travel. The loop that drives the rounds is :func:`secagg.masking.session.run`,
the same as in process.

Ray is optional (``pip install secagg[ray]``). If Ray is not initialised, the first use
runs ``ray.init(include_dashboard=False, log_to_driver=False)``; to use a cluster started
with ``ray start --head`` (and ``ray start --address=...`` on the workers), call
``ray.init(address="auto")`` first. For the same inputs, ``rng`` seed and dropout schedule
the sums equal the in-process ones exactly: the statistical randomness is drawn in the
driver, and the protocol's secrets (fresh in every run, from the OS CSPRNG in each actor)
cancel out of the sum.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .errors import ConfigurationError, InputError, ProtocolAbort, SecAggError
from .masking.session import ClientHost, Session

__all__ = ["RayExecutor", "BACKENDS"]

BACKENDS = ("inprocess", "ray")


def _ray() -> Any:
    try:
        import ray
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise ConfigurationError(
            "backend='ray' needs the optional dependency ray: pip install 'secagg[ray]'"
        ) from None
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    return ray


class RayExecutor:
    """The clients in ``num_workers`` Ray actors (default: the cluster's CPUs, at most ``n``),
    each hosting a :class:`~secagg.masking.session.ClientHost` for a slice of the ids."""

    def __init__(self, vectors: np.ndarray, num_workers: int | None = None) -> None:
        self.ray = _ray()
        if num_workers is not None and (not isinstance(num_workers, int) or isinstance(num_workers, bool)
                                        or num_workers < 1):
            raise InputError(f"num_workers must be a positive integer, got {num_workers!r}")
        self.vectors = np.ascontiguousarray(vectors)
        self.num_workers = num_workers
        self._vec_ref: Any = None
        self._actors: list[Any] = []
        self._shard_of: np.ndarray | None = None

    def reset(self, session: Session) -> None:
        self.close()
        ray, n = self.ray, session.config.n
        workers = self.num_workers or max(1, int(ray.available_resources().get("CPU", 1)))
        workers = min(workers, n)
        if self._vec_ref is None:
            self._vec_ref = ray.put(self.vectors)
        self._shard_of = np.arange(n) % workers
        actor = ray.remote(num_cpus=1)(ClientHost)
        for w in range(workers):
            ids = [int(u) for u in np.flatnonzero(self._shard_of == w)]
            sks = [session.signing[u].to_bytes() for u in ids] if session.signing is not None else None
            self._actors.append(actor.remote(session.config, session.graph, ids, self._vec_ref, sks, session.directory))

    def handle(self, datas: Sequence[tuple[int, bytes]]) -> list[tuple[int, list[bytes], float, SecAggError | None]]:
        assert self._shard_of is not None
        batches: list[list[bytes]] = [[] for _ in self._actors]
        for u, data in datas:
            batches[int(self._shard_of[u])].append(data)
        futures = [a.handle.remote(b) for a, b in zip(self._actors, batches) if b]
        return sorted((item for part in self._gather(futures) for item in part), key=lambda item: item[0])

    def _gather(self, futures: list[Any]) -> list[Any]:
        """``ray.get`` that keeps the library's exception contract: a protocol error raised
        inside an actor reaches the caller as that secagg error; a worker that died is the
        simulated equivalent of clients vanishing mid-round, so it becomes
        :class:`ProtocolAbort`. Other errors (bugs) propagate as is."""
        ray = self.ray
        lost = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.ObjectLostError)
        try:
            return list(ray.get(futures))
        except SecAggError:
            raise
        except lost as exc:
            raise ProtocolAbort(f"a Ray worker died during the round ({type(exc).__name__})") from exc

    def close(self) -> None:
        for a in self._actors:
            self.ray.kill(a)
        self._actors = []
