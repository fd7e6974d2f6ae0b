"""One secure-sum session, whatever moves its bytes: setup, validation, the protocol
server, retries and cost counting in :class:`Session`; the clients in :class:`ClientHost`;
and :func:`run` — the one loop that drives rounds for every in-memory executor (this
process, or Ray actors on one machine or a cluster).

A driver never contains protocol logic: it asks the session for the next round's
envelopes (recipient id, message bytes), hands them to whoever hosts each recipient,
returns the replies to the session, and tells it when the round's deadline passed. The
network server (:mod:`secagg.transport.server`) uses the same :class:`Session` methods
with sockets and deadlines instead of :func:`run`.

Setup (the roles outside the protocol): the PKI (one Ed25519 key per client and the
directory of verification keys, active variant), the trusted setup of the sparse graph
seed (``secrets.token_bytes``), and the dropout schedule of a simulation.

Retries: an attempt that aborts *before anything was revealed* because of named
misbehaving clients (:attr:`ProtocolAbort.blamed`) released only masked vectors, so the
session reruns without them; byte and time counters include every attempt.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, Protocol, Sequence

import numpy as np

from .. import keys
from .._costs import Costs
from .._dropout import DropoutSchedule
from ..errors import DecodeError, IntegrityError, ProtocolAbort, ProtocolError, Reason, SecAggError
from .client import Client
from .config import MaskingConfig
from ._graph import Graph
from ._messages import (
    ConsistencyRequest,
    ForwardShares,
    KeysBroadcast,
    MaskedInput,
    StartSession,
    UnmaskRequest,
    decode_message,
)
from .rounds import Round, rounds
from .server import Server

__all__ = ["Session", "SimulationResult", "Executor", "run"]

#: rounds before which nothing is revealed (an abort there can be rerun at no privacy cost)
_NOTHING_REVEALED = (Round.ADVERTISE_KEYS.value, Round.SHARE_KEYS.value, Round.MASKED_INPUT.value)


@dataclass
class SimulationResult:
    """What one session produced and cost.

    Attributes
    ----------
    ring_sum:
        uint32/uint64 ``(d,)``: the sum of the survivors' ring vectors mod ``2^bits``.
    survivors:
        sorted ids whose inputs are in the sum (U3).
    costs:
        the session's :class:`~secagg._costs.Costs` (bytes and seconds per round and client).
    dropped:
        ``{client id: round name}``: the schedule that was applied.
    config:
        the :class:`MaskingConfig` (resolved ``k``, ``threshold``, ``min_survivors``).
    excluded:
        ``{client id: reason}``: masked inputs that arrived but were left out of the sum.
    misbehaving:
        ``{client id: reason}``: clients that sent a message the server rejected, were
        reported by a neighbour, or revealed a wrong share.
    client_aborts:
        ``{client id: reason}``: clients that refused a server message and left.
    attempts:
        attempts run (2+ when one aborted before revealing anything and was rerun).
    masked_inputs:
        ``{client id: ring vector}``: the server's view of chosen clients' masked inputs.
    sum:
        float64 ``(d,)`` decoded sum, when the caller decoded it (``None`` otherwise).
    clipped_per_client:
        int64 ``(n,)`` values clipped to the bound before encoding (``None`` when the
        inputs were ring vectors).
    """

    ring_sum: np.ndarray
    survivors: list[int]
    costs: Costs
    dropped: dict[int, str]
    config: MaskingConfig
    excluded: dict[int, str] = field(default_factory=dict)
    misbehaving: dict[int, str] = field(default_factory=dict)
    client_aborts: dict[int, str] = field(default_factory=dict)
    attempts: int = 1
    masked_inputs: dict[int, np.ndarray] = field(default_factory=dict)
    sum: np.ndarray | None = None
    clipped_per_client: np.ndarray | None = None

    # the cost record's views, under the names the results always had
    @property
    def bytes_sent(self) -> dict[str, np.ndarray]:
        """``{round: int64 (n,)}`` bytes each client sent (:attr:`Costs.bytes_up`)."""
        return self.costs.bytes_up

    @property
    def bytes_received(self) -> dict[str, np.ndarray]:
        """``{round: int64 (n,)}`` bytes each client received (:attr:`Costs.bytes_down`)."""
        return self.costs.bytes_down

    @property
    def client_seconds(self) -> dict[str, np.ndarray]:
        return self.costs.client_seconds

    @property
    def server_seconds(self) -> dict[str, float]:
        return self.costs.server_seconds

    @property
    def round_seconds(self) -> dict[str, float]:
        return self.costs.round_seconds

    @property
    def server_bytes_sent(self) -> dict[str, int]:
        return self.costs.server_bytes_sent

    @property
    def server_bytes_received(self) -> dict[str, int]:
        return self.costs.server_bytes_received

    @property
    def total_bytes_sent(self) -> np.ndarray:
        return self.costs.total_bytes_up

    @property
    def total_bytes_received(self) -> np.ndarray:
        return self.costs.total_bytes_down

    @property
    def total_client_seconds(self) -> np.ndarray:
        return self.costs.total_client_seconds

    @property
    def total_server_seconds(self) -> float:
        return self.costs.total_server_seconds

    @property
    def clipped(self) -> int:
        """Values clipped to the bound among the survivors' inputs."""
        if self.clipped_per_client is None:
            return 0
        return int(np.asarray(self.clipped_per_client)[self.survivors].sum())


class ClientHost:
    """The protocol clients of some parties (all of them in process, a slice in a Ray
    actor): bytes in, bytes out.

    Parameters: ``config``, ``graph``, ``parties`` (ids), ``vectors`` (ring vectors,
    indexed by party id), ``signing_keys`` (32-byte raw Ed25519 keys in ``parties`` order,
    or ``None`` for the honest-but-curious variant), ``directory``.
    """

    def __init__(self, config: MaskingConfig, graph: Graph, parties: Iterable[int], vectors: np.ndarray,
                 signing_keys: Sequence[bytes] | None, directory: Mapping[int, bytes] | None) -> None:
        arr = np.asarray(vectors)
        self.clients: dict[int, Client] = {}
        for i, u in enumerate(parties):
            sk = keys.SigningKey.from_bytes(signing_keys[i]) if signing_keys is not None else None
            self.clients[int(u)] = Client(int(u), config, graph, arr[int(u)], signing_key=sk, directory=directory)

    def handle(self, datas: Sequence[bytes]) -> list[tuple[int, list[bytes], float, SecAggError | None]]:
        """One message per entry, in order; returns ``(party, replies, seconds, error)``
        where ``error`` is the exception of a client that refused its message (it leaves)."""
        return list(self.stream(datas))

    def stream(self, datas: Iterable[bytes]) -> Iterator[tuple[int, list[bytes], float, SecAggError | None]]:
        """:meth:`handle`, one result at a time (so a driver can pass each reply on
        before the next client runs, and nothing of a round piles up in memory)."""
        for data in datas:
            t0 = time.perf_counter()
            msg = decode_message(data)
            if not isinstance(msg, (StartSession, KeysBroadcast, ForwardShares, ConsistencyRequest, UnmaskRequest)):
                raise DecodeError(f"a client host received a {msg.kind}, which only clients send")
            u = msg.recipient
            try:
                replies, err = [m.to_bytes() for m in self.clients[u].receive(msg)], None
            except SecAggError as exc:
                replies, err = [], exc
            yield u, replies, time.perf_counter() - t0, err


class Session:
    """Setup, validation, the protocol server, retries and costs of one session.

    Parameters
    ----------
    config:
        the :class:`MaskingConfig`.
    dropout:
        a :class:`~secagg._dropout.DropoutSchedule` (simulations), or ``None``.
    graph_seed:
        the 32-byte setup seed of a sparse graph (default: fresh from ``secrets``).
    signing_keys:
        the clients' long-term Ed25519 keys, index = id (default: generated; the active
        variant needs them, the honest-but-curious one ignores them).
    directory:
        ``{id: verification key}`` (default: from ``signing_keys``); a network server
        passes the registered clients' keys.
    nonce:
        the server's 16..32-byte session id (default: random).
    """

    def __init__(
        self,
        config: MaskingConfig,
        *,
        dropout: DropoutSchedule | None = None,
        graph_seed: bytes | None = None,
        signing_keys: Sequence[keys.SigningKey] | None = None,
        directory: Mapping[int, bytes] | None = None,
        nonce: bytes | None = None,
    ) -> None:
        self.config = config
        n = config.n
        self.schedule = dropout if dropout is not None else DropoutSchedule(n)
        self.rounds: tuple[str, ...] = tuple(r.value for r in rounds(config.consistency_check))
        self.drop_at: dict[int, int] = {}
        for u, r in self.schedule.items():
            if r == Round.CONSISTENCY_CHECK.value and not config.consistency_check:
                r = Round.UNMASKING.value  # the next time such a client would speak
            self.drop_at[u] = self.rounds.index(r)
        self.graph = config.build_graph(graph_seed if graph_seed is not None else secrets.token_bytes(32))
        self.signing: list[keys.SigningKey] | None = None
        self.directory: dict[int, bytes] | None = None
        if config.consistency_check:
            if directory is not None:  # the clients hold their own keys (a network server)
                self.signing = list(signing_keys) if signing_keys is not None else None
                self.directory = dict(directory)
            else:
                self.signing = list(signing_keys) if signing_keys is not None else [
                    keys.SigningKey.generate() for _ in range(n)]
                self.directory = {u: sk.public_bytes() for u, sk in enumerate(self.signing)}
        self._nonce = nonce
        self.server = Server(config, self.graph, session=nonce, directory=self.directory)
        self.costs = Costs.zeros(self.rounds, n)
        self.attempts = 1
        self.banned: set[int] = set()
        self.misbehaving: dict[int, str] = {}
        self.client_aborts: dict[int, str] = {}
        self.keep_masked: frozenset[int] = frozenset()
        self.masked: dict[int, np.ndarray] = {}

    # ------------------------------------------------------------------ the clients
    def host(self, parties: Iterable[int], vectors: np.ndarray) -> ClientHost:
        """A :class:`ClientHost` for ``parties`` with this session's PKI keys."""
        ids = [int(u) for u in parties]
        sks = [self.signing[u].to_bytes() for u in ids] if self.signing is not None else None
        return ClientHost(self.config, self.graph, ids, vectors, sks, self.directory)

    def silent(self, party: int, round_index: int) -> bool:
        """Whether ``party`` is offline (dropped by the schedule, or left) at that round."""
        return self.drop_at.get(party, len(self.rounds)) <= round_index

    # ------------------------------------------------------------------ the server side
    def open(self) -> list[tuple[int, bytes]]:
        """Start the protocol: the first round's envelopes ``(recipient, bytes)``."""
        t0 = time.perf_counter()
        out = [(m.recipient, m.to_bytes()) for m in self.server.start()]
        self.costs.server_seconds[self.rounds[0]] += time.perf_counter() - t0
        self.costs.server_bytes_sent[self.rounds[0]] += sum(len(d) for _, d in out)
        return out

    def delivered(self, party: int, round_name: str, nbytes: int) -> None:
        """Count a message the driver delivered to ``party``."""
        self.costs.bytes_down[round_name][party] += nbytes

    def answered(self, party: int, round_index: int, seconds: float, error: SecAggError | None) -> None:
        """Count a client's work; a client that refused its message leaves the session."""
        rname = self.rounds[round_index]
        self.costs.client_seconds[rname][party] += seconds
        if error is not None:
            self.client_aborts[party] = f"{rname}: {error}"
            self.drop_at[party] = min(self.drop_at.get(party, len(self.rounds)), round_index + 1)

    def to_server(self, party: int, round_name: str, data: bytes) -> SecAggError | None:
        """Count and deliver one message of ``party`` to the server. A message the server
        rejects (undecodable, in another sender's name, against the rules) is recorded in
        :attr:`misbehaving` and returned; the sender then counts as dropped (one bad
        client does not stop the others)."""
        self.costs.bytes_up[round_name][party] += len(data)
        t0 = time.perf_counter()
        try:
            msg = decode_message(data)
            if getattr(msg, "sender", None) != party:
                raise ProtocolError(f"client {party} sent a message in the name of client "
                                    f"{getattr(msg, 'sender', None)}", party=party, round=round_name,
                                    code=Reason.IMPERSONATION)
            if party in self.keep_masked and isinstance(msg, MaskedInput):
                self.masked[party] = msg.vector.copy()
            self.server.receive(msg)
            return None
        except (ProtocolError, IntegrityError, DecodeError) as exc:
            self.misbehaving.setdefault(party, f"{round_name}: {exc}")
            return exc
        finally:
            self.costs.server_seconds[round_name] += time.perf_counter() - t0

    def close(self, round_name: str) -> list[tuple[int, bytes]]:
        """The round's deadline passed: the next round's envelopes (``[]`` at the end)."""
        t0 = time.perf_counter()
        try:
            msgs = self.server.close_round()
            out = [(m.recipient, m.to_bytes()) for m in msgs]
        finally:
            self.costs.server_seconds[round_name] += time.perf_counter() - t0
        nxt = self.rounds.index(round_name) + 1
        if out and nxt < len(self.rounds):
            self.costs.server_bytes_sent[self.rounds[nxt]] += sum(len(d) for _, d in out)
        return out

    def retry_without(self, exc: ProtocolAbort) -> bool:
        """After an abort that blamed clients before anything was revealed, start a new
        attempt without them (fresh nonce and server) and return True; otherwise False."""
        if not exc.blamed or exc.round not in _NOTHING_REVEALED or self.attempts > max(1, self.config.n // 2):
            return False
        for u, why in self.server.misbehaving.items():
            self.misbehaving.setdefault(u, why)
        self.banned |= set(exc.blamed)
        for u in self.banned:
            self.drop_at[u] = 0
        self.attempts += 1
        self.server = Server(self.config, self.graph, directory=self.directory)
        self.masked = {}
        return True

    def result(self) -> SimulationResult:
        """The outcome once the server is done (raises if it is not)."""
        ring = self.server.result
        if ring is None:  # pragma: no cover - drivers call this after the last round only
            raise ProtocolAbort("the session has not finished")
        excluded = {u: "excluded after an attempt it was blamed for aborted" for u in self.banned}
        excluded.update(self.server.excluded)
        return SimulationResult(
            ring_sum=ring, survivors=self.server.survivors, costs=self.costs, dropped=dict(self.schedule),
            config=self.config, excluded=excluded, misbehaving={**self.server.misbehaving, **self.misbehaving},
            client_aborts=dict(self.client_aborts), attempts=self.attempts, masked_inputs=dict(self.masked),
        )


class Executor(Protocol):
    """Where the clients run: :meth:`reset` builds fresh clients for an attempt,
    :meth:`handle` processes one round's messages and yields each recipient's
    ``(party, replies, seconds, error)`` in the order of the messages (recipient order)."""

    def reset(self, session: Session) -> None: ...

    def handle(self, datas: Sequence[tuple[int, bytes]]) -> Iterable[tuple[int, list[bytes], float,
                                                                           SecAggError | None]]:
        ...

    def close(self) -> None: ...


class InProcess:
    """Every client in this process (one :class:`ClientHost`)."""

    def __init__(self, vectors: np.ndarray, progress: Any = None) -> None:
        self.vectors = vectors
        self.progress = progress
        self._host: ClientHost | None = None

    def reset(self, session: Session) -> None:
        self._host = session.host(range(session.config.n), self.vectors)

    def handle(self, datas: Sequence[tuple[int, bytes]]) -> Iterator[tuple[int, list[bytes], float,
                                                                           SecAggError | None]]:
        assert self._host is not None
        for item in self._host.stream(d for _, d in datas):
            yield item
            if self.progress is not None:
                self.progress.update(1)

    def close(self) -> None:
        self._host = None


def run(session: Session, executor: Executor) -> SimulationResult:
    """Drive every round of ``session`` with the clients in ``executor``, rerunning an
    attempt that aborted before anything was revealed because of blamed clients.

    Raises
    ------
    ProtocolAbort
        fewer than ``t`` live holders or survivors below the floor at some round.
    """
    try:
        while True:
            try:
                _attempt(session, executor)
                return session.result()
            except ProtocolAbort as exc:
                if not session.retry_without(exc):
                    raise
    finally:
        executor.close()


def _attempt(session: Session, executor: Executor) -> None:
    executor.reset(session)
    out = session.open()
    for ri, rname in enumerate(session.rounds):
        t0 = time.perf_counter()
        live = [(u, data) for u, data in out if not session.silent(u, ri)]
        for u, data in live:
            session.delivered(u, rname, len(data))
        for u, replies, seconds, err in executor.handle(live):  # in recipient order, one at a time
            session.answered(u, ri, seconds, err)
            for rep in replies:
                session.to_server(u, rname, rep)
        out = session.close(rname)
        session.costs.round_seconds[rname] += time.perf_counter() - t0
