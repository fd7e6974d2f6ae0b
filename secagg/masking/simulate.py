"""In-process driver for SecAgg / SecAgg+: many clients, one server, dropouts, and
byte and time accounting from the real message encodings (Bonawitz et al. CCS 2017;
Bell et al. CCS 2020).

The driver only moves bytes: every message is encoded with ``to_bytes()`` by its sender,
counted, and decoded with :func:`~secagg.masking.messages.decode_message` by its
receiver, so a network transport can replace this loop without touching the protocol.
It also plays the roles outside the protocol: the PKI (Ed25519 keys and the directory of
verification keys, active variant), the trusted setup of the sparse graph seed, and the
round deadlines (``server.close_round()`` once every live client answered).

Times are wall-clock seconds measured around each party's ``receive`` plus its encoding
and decoding; the simulation is sequential, so in a deployment (clients in parallel) a
round takes about ``max(client time) + server time`` plus network latency.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
import warnings
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from .. import keys
from ..errors import (
    ConfigurationError,
    DecodeError,
    InputError,
    IntegrityError,
    ProtocolAbort,
    ProtocolError,
    SecAggError,
)
from ..quantize import Quantizer, default_rng, ring_dtype
from .client import Client
from .config import MaskingConfig
from .messages import decode_message
from .params import ThreatModel
from .rounds import ROUNDS
from .server import Server

__all__ = ["SimulationResult", "simulate", "simulate_ring", "secure_sum", "resolve_dropout"]


@dataclass
class SimulationResult:
    """What one simulated session produced and cost.

    Attributes
    ----------
    sum:
        float64 ``(d,)`` decoded sum of the survivors' inputs (``simulate``; clipped to
        the bound only under ``out_of_range="clip"``), or ``None`` (``simulate_ring``).
    ring_sum:
        ``(d,)`` uint32/uint64: the exact sum of the survivors' ring vectors mod ``2^bits``.
    survivors:
        sorted ids whose inputs are in the sum (U3: they sent their masked input).
    bytes_sent, bytes_received:
        ``{round name: int64 array (n,)}``: bytes each client sent to / received from the
        server in that round (``len(to_bytes())`` of every message). Rounds that did not run
        (``consistency_check`` without the active variant) are absent.
    server_bytes_sent, server_bytes_received:
        ``{round name: int}`` totals at the server.
    client_seconds:
        ``{round name: float64 array (n,)}`` wall seconds of each client's work.
    server_seconds:
        ``{round name: float}`` wall seconds of the server's work (receives + round close).
    round_seconds:
        ``{round name: float}`` wall seconds of the whole round in this sequential driver.
    dropped:
        ``{client id: round name}`` the schedule that was applied.
    config:
        the :class:`MaskingConfig` (resolved ``k`` and ``threshold``).
    masked_inputs:
        ``{client id: ring vector}`` the server's view of chosen clients' masked inputs
        (only with ``keep_masked=``).
    excluded:
        ``{client id: reason}``: clients whose masked input arrived but was left out of
        the sum (reported by a neighbour, or masked with a client whose key could not be
        rebuilt).
    misbehaving:
        ``{client id: reason}``: clients that sent a message the server rejected, were
        reported by a neighbour, or revealed a wrong share.
    client_aborts:
        ``{client id: reason}``: clients that refused a server message and left the
        session (counted as dropped from then on).
    attempts:
        sessions run: 2 or more when an attempt aborted before revealing anything because
        of a misbehaving client (named in ``misbehaving``), and was rerun without it. Byte
        and time counters include every attempt.
    clipped_per_client:
        int64 ``(n,)``: values of each client's input clipped to the quantizer's bound
        (``simulate`` under ``out_of_range="clip"``; zeros under ``"raise"``), or ``None``
        (``simulate_ring``).
    """

    sum: np.ndarray | None
    ring_sum: np.ndarray
    survivors: list[int]
    bytes_sent: dict[str, np.ndarray]
    bytes_received: dict[str, np.ndarray]
    server_bytes_sent: dict[str, int]
    server_bytes_received: dict[str, int]
    client_seconds: dict[str, np.ndarray]
    server_seconds: dict[str, float]
    round_seconds: dict[str, float]
    dropped: dict[int, str]
    config: MaskingConfig
    masked_inputs: dict[int, np.ndarray] = field(default_factory=dict)
    excluded: dict[int, str] = field(default_factory=dict)
    misbehaving: dict[int, str] = field(default_factory=dict)
    client_aborts: dict[int, str] = field(default_factory=dict)
    attempts: int = 1
    clipped_per_client: np.ndarray | None = None

    @property
    def clipped(self) -> int:
        """Number of values clipped to the bound among the inputs in ``sum`` (0 when none)."""
        if self.clipped_per_client is None:
            return 0
        return int(np.asarray(self.clipped_per_client)[self.survivors].sum())

    @property
    def total_bytes_sent(self) -> np.ndarray:
        """int64 ``(n,)``: bytes each client sent over all rounds."""
        return sum(self.bytes_sent.values())

    @property
    def total_bytes_received(self) -> np.ndarray:
        """int64 ``(n,)``: bytes each client received over all rounds."""
        return sum(self.bytes_received.values())

    @property
    def total_client_seconds(self) -> np.ndarray:
        """float64 ``(n,)``: each client's seconds over all rounds."""
        return sum(self.client_seconds.values())

    @property
    def total_server_seconds(self) -> float:
        return float(sum(self.server_seconds.values()))


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


def resolve_dropout(
    n: int, dropout, dropout_round: str = "masked_input", rng: np.random.Generator | None = None
) -> dict[int, str]:
    """Turn ``dropout`` into ``{client id: round name}``.

    ``None`` -> no dropouts; a float rate in ``[0, 1)`` -> ``round(rate * n)`` clients
    chosen with ``rng`` drop at ``dropout_round``; a mapping is validated and copied.
    Raises :class:`InputError` for bad rates, ids or round names.
    """
    if dropout_round not in ROUNDS:
        raise InputError(f"dropout_round must be one of {', '.join(ROUNDS)}, got {dropout_round!r}")
    if dropout is None:
        return {}
    if isinstance(dropout, Mapping):
        out = {}
        for u, r in dropout.items():
            if not isinstance(u, (int, np.integer)) or not 0 <= int(u) < n:
                raise InputError(f"dropout ids must be client ids in [0, {n}), got {u!r}")
            if r not in ROUNDS:
                raise InputError(f"dropout round for client {u} must be one of {', '.join(ROUNDS)}, got {r!r}")
            out[int(u)] = r
        return out
    try:
        rate = float(dropout)
    except (TypeError, ValueError):
        raise InputError(f"dropout must be None, a rate in [0, 1) or a mapping, got {dropout!r}") from None
    if not 0.0 <= rate < 1.0:
        raise InputError(f"dropout rate must be in [0, 1), got {dropout!r}")
    gen = default_rng(rng)
    count = int(round(rate * n))
    chosen = gen.choice(n, size=count, replace=False) if count else []
    return {int(u): dropout_round for u in chosen}


class _Run:
    """Everything a driver needs for one session, whatever moves the bytes.

    The in-process driver and the Ray driver (:mod:`secagg.ray_backend`) share it:
    input validation, the configuration, the dropout schedule as round indices, the
    graph from a fresh secret seed (the trusted setup), the signing-key directory, the
    server, and the per-round byte and time counters that become the result.
    """

    def __init__(self, vectors, cfg: MaskingConfig, schedule: dict[int, str]) -> None:
        self.vectors = vectors
        self.cfg = cfg
        self.schedule = schedule
        n = cfg.n
        self.rounds = [r for r in ROUNDS if cfg.consistency_check or r != "consistency_check"]
        self.drop_at: dict[int, int] = {}
        for u, r in schedule.items():
            if r == "consistency_check" and not cfg.consistency_check:
                r = "unmasking"  # the next time such a client would speak
            self.drop_at[u] = self.rounds.index(r)
        self.graph = cfg.build_graph(secrets.token_bytes(32))
        self.signing = self.directory = None
        if cfg.consistency_check:
            self.signing = [keys.SigningKey.generate() for _ in range(n)]
            self.directory = {u: sk.public_bytes() for u, sk in enumerate(self.signing)}
        self.server = Server(cfg, self.graph, directory=self.directory)
        self.attempts = 1
        self.banned: set[int] = set()
        self.sent = {r: np.zeros(n, dtype=np.int64) for r in self.rounds}
        self.recv = {r: np.zeros(n, dtype=np.int64) for r in self.rounds}
        self.csec = {r: np.zeros(n) for r in self.rounds}
        self.s_sent = {r: 0 for r in self.rounds}
        self.s_recv = {r: 0 for r in self.rounds}
        self.ssec = {r: 0.0 for r in self.rounds}
        self.rsec = {r: 0.0 for r in self.rounds}
        self.masked: dict[int, np.ndarray] = {}
        self.misbehaving: dict[int, str] = {}
        self.client_aborts: dict[int, str] = {}

    @classmethod
    def setup(cls, vectors, *, bits, threshold, graph, k, dropout, dropout_round, rng, threat, min_survivors) -> "_Run":
        arr = np.asarray(vectors)
        dt = ring_dtype(bits)
        if arr.ndim != 2 or arr.shape[0] < 2 or arr.shape[1] < 1:
            raise InputError(f"vectors must have shape (n_clients >= 2, dim >= 1), got {arr.shape}")
        if arr.dtype != dt:
            raise InputError(f"ring vectors for a {bits}-bit ring must have dtype {dt}, got {arr.dtype}")
        if bits < dt.itemsize * 8 and arr.size and int(arr.max()) >> bits:
            raise InputError(f"ring vectors have values >= 2^{bits}")
        n, d = arr.shape
        schedule = resolve_dropout(n, dropout, dropout_round, rng)
        cfg = MaskingConfig(
            n=n, dim=d, bits=bits, threshold=threshold, graph=graph, k=k,
            threat=planned_threat(threat, len(schedule) / n), min_survivors=min_survivors,
        )
        return cls(arr, cfg, schedule)

    def retry_without(self, exc: ProtocolAbort) -> bool:
        """After an abort that blamed clients *before anything was revealed* (no consistency
        or unmasking answer reached the server), start a fresh session without them and
        return True; the aborted attempt released only masked vectors, so rerunning costs
        no privacy. Otherwise (nothing blamed, shares already revealed, or too many
        attempts) return False."""
        revealed = exc.round not in ("advertise_keys", "share_keys", "masked_input")
        if not exc.blamed or revealed or self.attempts > max(1, self.cfg.n // 2):
            return False
        for u, why in self.server.misbehaving.items():
            self.misbehaving.setdefault(u, why)
        self.banned |= set(exc.blamed)
        for u in self.banned:
            self.drop_at[u] = 0
        self.attempts += 1
        self.server = Server(self.cfg, self.graph, directory=self.directory)
        self.masked = {}
        return True

    def signing_key(self, u: int):
        return self.signing[u] if self.signing else None

    def to_server(self, u: int, round_name: str, data: bytes, keep_masked=()) -> None:
        """Count and deliver one encoded reply of client ``u`` to the server. A message
        the server rejects (undecodable, another sender's, against the rules) is recorded
        in ``misbehaving`` and the client counts as dropped: one bad client does not stop
        the others."""
        self.sent[round_name][u] += len(data)
        self.s_recv[round_name] += len(data)
        try:
            msg = decode_message(data)
            if getattr(msg, "sender", None) != u:
                raise ProtocolError(f"client {u} sent a message in the name of client {getattr(msg, 'sender', None)}")
            if u in keep_masked and type(msg).__name__ == "MaskedInput":
                self.masked[u] = msg.vector.copy()
            self.server.receive(msg)
        except (ProtocolError, IntegrityError, DecodeError) as exc:
            self.misbehaving.setdefault(u, f"{round_name}: {exc}")

    def client_abort(self, u: int, ri: int, exc: SecAggError) -> None:
        """Client ``u`` refused a server message: record why, count it as dropped."""
        self.client_aborts[u] = f"{self.rounds[ri]}: {exc}"
        self.drop_at[u] = min(self.drop_at.get(u, len(self.rounds)), ri + 1)

    def result(self) -> SimulationResult:
        return SimulationResult(
            sum=None,
            ring_sum=self.server.result,
            survivors=self.server.survivors,
            bytes_sent=self.sent,
            bytes_received=self.recv,
            server_bytes_sent=self.s_sent,
            server_bytes_received=self.s_recv,
            client_seconds=self.csec,
            server_seconds=self.ssec,
            round_seconds=self.rsec,
            dropped=dict(self.schedule),
            config=self.cfg,
            masked_inputs=self.masked,
            excluded={**{u: "excluded after an aborted attempt it was blamed for" for u in self.banned},
                      **self.server.excluded},
            misbehaving={**self.server.misbehaving, **self.misbehaving},
            client_aborts=dict(self.client_aborts),
            attempts=self.attempts,
        )


def simulate_ring(
    vectors: np.ndarray,
    *,
    bits: int,
    threshold: int | None = None,
    graph: str = "complete",
    k: int | None = None,
    dropout: float | Mapping[int, str] | None = None,
    dropout_round: str = "masked_input",
    rng: np.random.Generator | None = None,
    threat: ThreatModel | None = None,
    min_survivors: int | None = None,
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
        ring size.
    threshold, graph, k, min_survivors:
        see :class:`MaskingConfig` (defaults from the parameter finder).
    threat:
        the :class:`~secagg.masking.params.ThreatModel` (default: active server, 5 %
        corrupt clients, and a dropout rate of at least the fraction ``dropout`` drops).
    dropout, dropout_round:
        ``None``, a rate in ``[0, 1)`` (clients chosen with ``rng`` drop at
        ``dropout_round``) or ``{client id: round name}``. A client dropping at a round
        sends nothing from that round on (and receives nothing). Without the consistency
        check, a drop at ``"consistency_check"`` means a drop at ``"unmasking"`` (the
        next time the client would speak); its input is in the sum either way.
    rng:
        numpy Generator for the dropout choice (statistical only; secrets use the OS).
    keep_masked:
        client ids whose masked input (the server's view) is returned in ``masked_inputs``.
    progress:
        show a tqdm progress bar over rounds and clients.
    backend, num_workers:
        ``"inprocess"`` (default) runs every party in this process; ``"ray"`` runs the
        clients in ``num_workers`` Ray actors (:mod:`secagg.ray_backend`, needs the
        ``ray`` extra) with the same messages, sums and exceptions.

    Returns
    -------
    SimulationResult
        with ``sum=None`` (the ring sum is in ``ring_sum``).

    Raises
    ------
    InputError, ConfigurationError, InsecureParameterError
        bad vectors or parameters.
    ProtocolAbort
        fewer than ``threshold`` live share holders at some round (no partial result).
    """
    if backend != "inprocess":
        if backend != "ray":
            raise ConfigurationError(f"backend must be 'inprocess' or 'ray', got {backend!r}")
        from ..ray_backend import simulate_ring_ray

        return simulate_ring_ray(
            vectors, bits=bits, threshold=threshold, graph=graph, k=k, dropout=dropout,
            dropout_round=dropout_round, rng=rng, threat=threat, min_survivors=min_survivors,
            keep_masked=keep_masked, progress=progress, num_workers=num_workers,
        )
    run = _Run.setup(
        vectors, bits=bits, threshold=threshold, graph=graph, k=k, dropout=dropout, dropout_round=dropout_round,
        rng=rng, threat=threat, min_survivors=min_survivors,
    )
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(run.rounds) * run.cfg.n, desc="secure sum", unit="client", leave=False)
    try:
        while True:
            try:
                _run_once(run, keep_masked, bar)
                return run.result()
            except ProtocolAbort as exc:
                if not run.retry_without(exc):
                    raise
    finally:
        if bar is not None:
            bar.close()


def _run_once(run: _Run, keep_masked, bar) -> None:
    """One attempt of the session in this process."""
    n, rounds, drop_at, server = run.cfg.n, run.rounds, run.drop_at, run.server
    clients = [
        Client(u, run.cfg, run.graph, run.vectors[u], signing_key=run.signing_key(u), directory=run.directory)
        for u in range(n)
    ]
    recv, csec, s_sent, ssec, rsec = run.recv, run.csec, run.s_sent, run.ssec, run.rsec
    t0 = time.perf_counter()
    outgoing = [m.to_bytes() for m in server.start()]
    ssec[rounds[0]] += time.perf_counter() - t0
    for ri, rname in enumerate(rounds):
        r_start = time.perf_counter()
        for data in outgoing:
            s_sent[rname] += len(data)
        for data in outgoing:
            tc = time.perf_counter()
            msg = decode_message(data)
            u = msg.recipient
            if drop_at.get(u, len(rounds)) <= ri:
                continue  # offline: never sees the message
            recv[rname][u] += len(data)
            try:
                replies = [m.to_bytes() for m in clients[u].receive(msg)]
            except SecAggError as exc:  # the client refuses and leaves; the others go on
                run.client_abort(u, ri, exc)
                replies = []
            csec[rname][u] += time.perf_counter() - tc
            for rep in replies:
                ts = time.perf_counter()
                run.to_server(u, rname, rep, keep_masked)
                ssec[rname] += time.perf_counter() - ts
            if bar is not None:
                bar.update(1)
        ts = time.perf_counter()
        outgoing = [m.to_bytes() for m in server.close_round()]
        ssec[rname] += time.perf_counter() - ts
        rsec[rname] += time.perf_counter() - r_start


def simulate(
    inputs: np.ndarray,
    *,
    threshold: int | None = None,
    graph: str = "complete",
    k: int | None = None,
    dropout: float | Mapping[int, str] | None = None,
    dropout_round: str = "masked_input",
    quantizer: Quantizer | None = None,
    rng: np.random.Generator | None = None,
    bound: float | None = None,
    bits: int = 32,
    out_of_range: str | None = None,
    clip: float | None = None,
    **options,
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
    go to :func:`simulate_ring`. ``clip=`` is the deprecated old name of ``bound=``.
    Raises like :func:`simulate_ring`.
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
        quantizer = Quantizer(1.0 if bound is None else bound, num_clients=max(n, 1), bits=bits,
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
    res = simulate_ring(
        ring, bits=quantizer.bits, threshold=threshold, graph=graph, k=k, dropout=dropout,
        dropout_round=dropout_round, rng=gen, **options,
    )
    res.sum = quantizer.decode(res.ring_sum, len(res.survivors))
    res.clipped_per_client = np.asarray(clipped, dtype=np.int64).reshape(n)
    return res


def secure_sum(vectors: np.ndarray, **kwargs) -> np.ndarray:
    """One line secure sum: ``simulate(vectors, **kwargs).sum`` (float64 ``(d,)``).

    Values beyond ``bound`` (default 1.0) raise :class:`~secagg.errors.OutOfRangeError`
    unless ``out_of_range="clip"`` is passed (see :func:`simulate`).
    """
    return simulate(vectors, **kwargs).sum
