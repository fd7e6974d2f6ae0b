"""asyncio TCP/TLS server that runs one SecAgg / SecAgg+ session
(:class:`secagg.masking.Server`, Bonawitz et al. CCS 2017; Bell et al. CCS 2020) with
clients on other processes or machines.

The transport contains no protocol logic: it registers clients (HELLO frame: a verification
key, trust on first use), sends each one its id, the session parameters and the key
directory (WELCOME), then moves the bytes of the protocol messages between the sans-IO
:class:`~secagg.masking.Server` and the connections, exactly as the in-process driver
:func:`secagg.masking.simulate_ring` does, and plays the clock: each round ends when every
live client answered or ``round_deadline`` seconds passed, then ``close_round()`` runs and
silent clients count as dropped.

Robustness (each case is tested): a connection that does not say HELLO within
``hello_timeout`` is closed; a frame announcing more than ``max_frame`` bytes is refused
before its payload is read; bytes that do not decode, a message claiming another sender, or
a message the protocol rejects (:class:`~secagg.errors.ProtocolError`,
:class:`~secagg.errors.IntegrityError`) close *that* connection only and the client counts
as dropped; a second HELLO claiming a taken id or a registered key, or any HELLO once the
session started, is refused; connections above ``max_connections`` are closed at once; a
TLS handshake must finish within ``hello_timeout``; a protocol frame before the session
started, or more than :data:`MAX_QUEUED_PER_CONNECTION` messages waiting for the
coordinator, closes the connection (so a client cannot make the server queue unbounded
memory).
One event-loop task (the coordinator) is the only caller of the protocol server, so no
state is shared between connection tasks.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl as _ssl
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigurationError, DecodeError, InputError, IntegrityError, ProtocolAbort, ProtocolError
from ..masking.config import MaskingConfig
from ..masking.messages import decode_message
from ..masking.server import Server
from ..quantize import Quantizer
from .framing import (
    KIND_ABORT,
    KIND_DONE,
    KIND_HELLO,
    KIND_PROTOCOL,
    KIND_WELCOME,
    TRANSPORT_VERSION,
    control_payload,
    encode_frame,
    max_frame_size,
    parse_control,
    read_frame,
    split_payload,
)

__all__ = ["AggregationServer", "NetworkResult", "serve", "HELLO_MAX_FRAME"]

log = logging.getLogger("secagg.transport")

#: a HELLO is a small JSON object
HELLO_MAX_FRAME = 4096
#: protocol messages one connection may have waiting for the coordinator (an honest client
#: has at most one: it answers each round once, after the server's message opened it)
MAX_QUEUED_PER_CONNECTION = 2
#: message type sent by the server at the start of each round -> round name
_ROUND_OF_STATE = {
    "advertise_keys": "advertise_keys",
    "share_keys": "share_keys",
    "masked_input": "masked_input",
    "consistency_check": "consistency_check",
    "unmasking": "unmasking",
}


@dataclass
class NetworkResult:
    """Outcome of one networked session.

    Attributes
    ----------
    sum:
        float64 ``(dim,)`` decoded sum of the survivors' clipped inputs, or ``None`` when
        the session ran on ring vectors (``clip=None``).
    ring_sum:
        ``(dim,)`` uint32/uint64 sum of the survivors' ring vectors mod ``2^bits``.
    survivors:
        sorted ids whose inputs are in the sum (U3).
    registered:
        sorted ids that completed HELLO before the session started.
    dropped:
        ``{id: round name}``: where each id that is not in the final round's answers was
        lost (``"join"`` for an id no client registered for).
    round_seconds:
        ``{round name: wall seconds}`` from sending the round's messages to the end of
        ``close_round``.
    bytes_sent, bytes_received:
        ``{round name: int}`` frame bytes the server wrote / read in each round.
    excluded, misbehaving:
        ``{id: reason}`` from the protocol server (see :class:`secagg.masking.Server`).
    events:
        counters of transport events: ``refused_connections``, ``hello_timeouts``,
        ``bad_hellos``, ``refused_hellos``, ``oversized_frames``, ``bad_frames``,
        ``impersonations``, ``protocol_errors``, ``disconnects``, ``send_failures``.
    config:
        the session's :class:`MaskingConfig`.
    """

    sum: np.ndarray | None
    ring_sum: np.ndarray
    survivors: list[int]
    registered: list[int]
    dropped: dict[int, str]
    round_seconds: dict[str, float]
    bytes_sent: dict[str, int]
    bytes_received: dict[str, int]
    events: dict[str, int]
    config: MaskingConfig
    excluded: dict[int, str] = field(default_factory=dict)
    misbehaving: dict[int, str] = field(default_factory=dict)

    def summary(self) -> dict:
        """JSON-ready dict of everything but the vectors."""
        return {
            "survivors": self.survivors,
            "registered": self.registered,
            "dropped": {str(k): v for k, v in sorted(self.dropped.items())},
            "round_seconds": self.round_seconds,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "events": self.events,
            "n": self.config.n,
            "threshold": self.config.threshold,
            "dim": self.config.dim,
            "bits": self.config.bits,
            "graph": "complete" if self.config.is_complete else "sparse",
            "k": self.config.k,
            "consistency_check": self.config.consistency_check,
            "adversary": self.config.threat.adversary,
            "min_survivors": self.config.min_survivors,
            "excluded": {str(k): v for k, v in sorted(self.excluded.items())},
            "misbehaving": {str(k): v for k, v in sorted(self.misbehaving.items())},
        }


@dataclass(eq=False)
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    peer: str
    id: int | None = None
    verify_key: bytes = b""
    alive: bool = True
    reason: str = ""
    queued: int = 0  # protocol messages read but not yet taken by the coordinator


@dataclass
class _Counters:
    values: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            (
                "refused_connections", "hello_timeouts", "bad_hellos", "refused_hellos", "oversized_frames",
                "bad_frames", "impersonations", "protocol_errors", "disconnects", "send_failures",
            ),
            0,
        )
    )

    def bump(self, name: str) -> None:
        self.values[name] += 1


class AggregationServer:
    """Network server for one secure-aggregation session.

    Parameters
    ----------
    config:
        the session (:class:`MaskingConfig`: ``n``, ``dim``, ``bits``, ``threshold``,
        ``graph``/``k``, ``consistency_check``).
    clip:
        coordinate bound of the float inputs: clients quantize with
        ``Quantizer(clip, num_clients=n, bits)`` and :attr:`NetworkResult.sum` is decoded.
        ``None``: clients send ring vectors and only ``ring_sum`` is returned.
    host, port:
        where to listen (``port=0``: any free port; see :attr:`port` after :meth:`start`).
    ssl_context:
        a server-side :class:`ssl.SSLContext` (see :func:`secagg.transport.tls.server_context`)
        or ``None`` for plain TCP.
    round_deadline:
        seconds each round waits for live clients before ``close_round`` (> 0).
    join_timeout:
        seconds to wait for ``n`` registrations; the session starts earlier once all
        ``n`` ids are taken. Ids nobody took count as dropped in the first round.
    hello_timeout:
        seconds a new connection has to send its HELLO.
    max_connections:
        simultaneous connections (registered or not); default ``2 * n + 16``.
    max_frame:
        largest accepted frame in bytes; default :func:`~secagg.transport.framing.max_frame_size`.

    Raises
    ------
    ConfigurationError
        non-positive timeouts or limits.
    """

    def __init__(
        self,
        config: MaskingConfig,
        *,
        clip: float | None = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: _ssl.SSLContext | None = None,
        round_deadline: float = 30.0,
        join_timeout: float = 60.0,
        hello_timeout: float = 10.0,
        max_connections: int | None = None,
        max_frame: int | None = None,
    ) -> None:
        if not isinstance(config, MaskingConfig):
            raise InputError(f"config must be a MaskingConfig, got {type(config).__name__}")
        for name, value in (("round_deadline", round_deadline), ("join_timeout", join_timeout),
                            ("hello_timeout", hello_timeout)):
            if not value > 0:
                raise ConfigurationError(f"{name} must be a positive number of seconds, got {value!r}")
        self.config = config
        self.quantizer = None if clip is None else Quantizer(clip, num_clients=config.n, bits=config.bits)
        self.clip = None if clip is None else float(clip)
        self.host = host
        self._port = int(port)
        self.ssl_context = ssl_context
        self.round_deadline = float(round_deadline)
        self.join_timeout = float(join_timeout)
        self.hello_timeout = float(hello_timeout)
        self.max_connections = 2 * config.n + 16 if max_connections is None else int(max_connections)
        self.max_frame = max_frame_size(config.n, config.dim, config.bits) if max_frame is None else int(max_frame)
        if self.max_connections < 1 or self.max_frame < 64:
            raise ConfigurationError("max_connections must be >= 1 and max_frame >= 64 bytes")
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[_Conn] = set()
        self._tasks: set[asyncio.Task] = set()
        self._registered: dict[int, _Conn] = {}
        self._keys: set[bytes] = set()
        self._started = False
        self._finished = False
        self._full: asyncio.Event | None = None
        self._queue: asyncio.Queue | None = None
        self._counters = _Counters()
        self._round = "join"
        self._bytes_in: dict[str, int] = {}

    # ------------------------------------------------------------------ lifecycle
    @property
    def port(self) -> int:
        """The bound TCP port (after :meth:`start`)."""
        return self._port

    async def start(self) -> int:
        """Bind and start accepting connections; returns the port."""
        self._full = asyncio.Event()
        self._queue = asyncio.Queue()
        extra = {} if self.ssl_context is None else {"ssl_handshake_timeout": self.hello_timeout}
        self._server = await asyncio.start_server(
            self._handle, self.host, self._port, ssl=self.ssl_context, limit=64 * 1024, **extra
        )
        self._port = self._server.sockets[0].getsockname()[1]
        log.info("listening on %s:%d (tls=%s)", self.host, self._port, self.ssl_context is not None)
        return self._port

    async def aclose(self) -> None:
        """Stop listening and close every connection."""
        self._finished = True
        if self._server is not None:
            self._server.close()
        for conn in list(self._conns):
            self._close(conn, "server shutting down", graceful=True)
        if self._tasks:  # connection tasks end once their stream is closed
            await asyncio.wait(list(self._tasks), timeout=5.0)
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> "AggregationServer":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ connections
    def _close(self, conn: _Conn, reason: str, *, graceful: bool = False) -> None:
        """Mark ``conn`` dead and close it: flush pending writes if ``graceful``, else abort."""
        if conn.alive:
            conn.alive = False
            conn.reason = reason
            if conn.id is not None and not graceful:
                log.info("client %d dropped: %s", conn.id, reason)
        try:
            conn.writer.close() if graceful else conn.writer.transport.abort()
        except Exception:  # pragma: no cover - closing an already broken transport
            pass

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = str(writer.get_extra_info("peername"))
        conn = _Conn(reader, writer, peer)
        if self._finished or len(self._conns) >= self.max_connections:
            self._counters.bump("refused_connections")
            writer.transport.abort()
            return
        self._conns.add(conn)
        self._tasks.add(asyncio.current_task())
        try:
            if not await self._hello(conn):
                return
            while conn.alive:
                payload = await read_frame(reader, self.max_frame)
                self._bytes_in[self._round] = self._bytes_in.get(self._round, 0) + len(payload) + 4
                kind, body = split_payload(payload)
                if kind == KIND_PROTOCOL:
                    if not self._started or conn.queued >= MAX_QUEUED_PER_CONNECTION:
                        self._counters.bump("bad_frames")
                        self._close(conn, "protocol message before the session started" if not self._started
                                    else "sent messages faster than the rounds ask for them")
                        break
                    msg = decode_message(body)
                    if getattr(msg, "sender", None) != conn.id:
                        self._counters.bump("impersonations")
                        self._close(conn, f"sent {type(msg).__name__} for sender "
                                          f"{getattr(msg, 'sender', None)} on the connection of client {conn.id}")
                        break
                    conn.queued += 1
                    self._queue.put_nowait(("msg", conn, msg))
                elif kind == KIND_ABORT:
                    reason = parse_control(body, "ABORT").get("reason", "")
                    self._close(conn, f"client gave up: {str(reason)[:200]}")
                    break
                else:
                    self._counters.bump("bad_frames")
                    self._close(conn, f"unexpected control frame {kind:#x} after registration")
                    break
        except DecodeError as exc:
            self._counters.bump("oversized_frames" if "above the limit" in str(exc) else "bad_frames")
            self._close(conn, f"malformed traffic: {exc}")
        except (asyncio.IncompleteReadError, ConnectionError, OSError, _ssl.SSLError):
            if conn.alive:
                self._counters.bump("disconnects")
            self._close(conn, "connection lost")
        except asyncio.CancelledError:  # server shutting down
            self._close(conn, "server shutting down")
        finally:
            self._tasks.discard(asyncio.current_task())
            self._conns.discard(conn)
            if conn.alive:
                self._close(conn, "connection closed")
            if conn.id is not None:
                if not self._started and self._registered.get(conn.id) is conn:
                    del self._registered[conn.id]  # free the id for someone else
                    self._keys.discard(conn.verify_key)
                elif self._queue is not None:
                    self._queue.put_nowait(("gone", conn, None))

    async def _hello(self, conn: _Conn) -> bool:
        """Read and check the HELLO; register the client. False if the connection was closed."""
        try:
            payload = await asyncio.wait_for(read_frame(conn.reader, HELLO_MAX_FRAME), self.hello_timeout)
            kind, body = split_payload(payload)
            if kind != KIND_HELLO:
                raise DecodeError(f"expected a HELLO frame first, got kind {kind:#x}")
            hello = parse_control(body, "HELLO")
            if hello.get("v") != TRANSPORT_VERSION:
                raise DecodeError(f"unsupported transport version {hello.get('v')!r} (this server: {TRANSPORT_VERSION})")
            vk = bytes.fromhex(str(hello.get("verify_key", "")))
            if len(vk) != 32:
                raise DecodeError("verify_key must be 32 bytes (64 hex digits)")
            want = hello.get("id")
            if want is not None and (not isinstance(want, int) or isinstance(want, bool)):
                raise DecodeError(f"requested id must be an integer or null, got {want!r}")
        except asyncio.TimeoutError:
            self._counters.bump("hello_timeouts")
            self._close(conn, f"no HELLO within {self.hello_timeout:g} s")
            return False
        except (DecodeError, ValueError) as exc:
            self._counters.bump("oversized_frames" if "above the limit" in str(exc) else "bad_hellos")
            self._close(conn, f"bad HELLO: {exc}")
            return False
        refusal = self._register(conn, vk, want)
        if refusal:
            self._counters.bump("refused_hellos")
            log.info("refused HELLO from %s: %s", conn.peer, refusal)
            try:
                conn.writer.write(encode_frame(KIND_ABORT, control_payload({"reason": refusal})))
                await asyncio.wait_for(conn.writer.drain(), 5.0)
            except (OSError, asyncio.TimeoutError, ConnectionError):
                pass
            conn.alive = False
            conn.writer.close()
            return False
        return True

    def _register(self, conn: _Conn, vk: bytes, want: int | None) -> str:
        """Assign an id; returns a refusal reason or ``""``."""
        n = self.config.n
        if self._started:
            return "the session already started; a client that lost its connection cannot rejoin it"
        if vk in self._keys:
            return "this verification key is already registered (one key per client)"
        if want is not None:
            if not 0 <= want < n:
                return f"requested id {want} is outside [0, {n})"
            if want in self._registered:
                return f"id {want} is already taken by a connected client"
            uid = want
        else:
            free = [u for u in range(n) if u not in self._registered]
            if not free:
                return f"the session is full ({n} clients)"
            uid = free[0]
        conn.id, conn.verify_key = uid, vk
        self._registered[uid] = conn
        self._keys.add(vk)
        log.info("client %d registered from %s", uid, conn.peer)
        if len(self._registered) == n:
            self._full.set()
        return ""

    async def _send(self, conn: _Conn, frame: bytes) -> int:
        if not conn.alive:
            return 0
        try:
            conn.writer.write(frame)
            await asyncio.wait_for(conn.writer.drain(), self.round_deadline)
            return len(frame)
        except (OSError, ConnectionError, asyncio.TimeoutError, RuntimeError):
            self._counters.bump("send_failures")
            self._close(conn, "could not deliver a frame")
            return 0

    async def _broadcast(self, frames: dict[int, bytes]) -> int:
        conns = [(self._registered.get(u), f) for u, f in frames.items()]
        sizes = await asyncio.gather(*(self._send(c, f) for c, f in conns if c is not None))
        return int(sum(sizes))

    # ------------------------------------------------------------------ session
    async def run(self) -> NetworkResult:
        """Wait for registrations, run the protocol, tell the clients the outcome.

        Returns a :class:`NetworkResult`. Raises :class:`ProtocolAbort` (after sending
        ABORT to every client) when too few clients remain; the connections are closed
        either way.
        """
        if self._server is None:
            await self.start()
        try:
            return await self._run()
        finally:
            await self.aclose()

    async def _run(self) -> NetworkResult:
        cfg = self.config
        try:
            await asyncio.wait_for(self._full.wait(), self.join_timeout)
        except asyncio.TimeoutError:
            pass
        self._started = True
        registered = {u: c for u, c in self._registered.items() if c.alive}
        log.info("session starts with %d of %d clients", len(registered), cfg.n)
        graph_seed = secrets.token_bytes(32)
        graph = cfg.build_graph(graph_seed)
        directory = {u: c.verify_key for u, c in registered.items()}
        proto = Server(cfg, graph, directory=directory if cfg.consistency_check else None)
        base = {
            "n": cfg.n, "dim": cfg.dim, "bits": cfg.bits, "threshold": cfg.threshold,
            "graph": "complete" if cfg.is_complete else "sparse", "k": cfg.k,
            "adversary": cfg.threat.adversary, "min_survivors": cfg.min_survivors, "graph_seed": graph_seed.hex(),
            "clip": self.clip, "rounding": "stochastic", "max_frame": self.max_frame,
            "session": proto.session.hex(),
            "directory": {str(u): vk.hex() for u, vk in sorted(directory.items())},
        }
        sent: dict[str, int] = {}
        self._round = "advertise_keys"
        sent["advertise_keys"] = await self._broadcast(
            {u: encode_frame(KIND_WELCOME, control_payload({**base, "id": u})) for u in registered}
        )
        dropped: dict[int, str] = {u: "join" for u in range(cfg.n) if u not in registered}
        round_seconds: dict[str, float] = {}
        outgoing = proto.start()
        try:
            while proto.state != "done":
                rname = _ROUND_OF_STATE[proto.state]
                self._round = rname
                t0 = time.perf_counter()
                frames = {m.recipient: encode_frame(KIND_PROTOCOL, m.to_bytes()) for m in outgoing}
                sent[rname] = sent.get(rname, 0) + await self._broadcast(frames)
                expected = {u for u in frames if u in registered}
                pending = {u for u in expected if registered[u].alive}
                answered = await self._collect(proto, pending)
                for u in sorted(expected - answered):
                    dropped.setdefault(u, rname)
                outgoing = await asyncio.to_thread(proto.close_round)
                round_seconds[rname] = time.perf_counter() - t0
        except ProtocolAbort as exc:
            log.warning("session aborted: %s", exc.reason)
            await self._broadcast(
                {u: encode_frame(KIND_ABORT, control_payload({"reason": exc.reason})) for u in registered}
            )
            raise
        survivors = proto.survivors
        done = control_payload({"status": "ok", "survivors": survivors})
        await self._broadcast({u: encode_frame(KIND_DONE, done) for u in registered})
        ring = proto.result
        total = None if self.quantizer is None else self.quantizer.decode(ring, len(survivors))
        return NetworkResult(
            sum=total,
            ring_sum=ring,
            survivors=list(survivors),
            registered=sorted(registered),
            dropped=dropped,
            round_seconds=round_seconds,
            bytes_sent=sent,
            bytes_received={k: v for k, v in self._bytes_in.items() if k != "join"},
            events=dict(self._counters.values),
            config=cfg,
            excluded=dict(proto.excluded),
            misbehaving=dict(proto.misbehaving),
        )

    async def _collect(self, proto: Server, pending: set[int]) -> set[int]:
        """Feed queued messages to ``proto`` until ``pending`` answered or the deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.round_deadline
        answered: set[int] = set()
        while pending or not self._queue.empty():
            remaining = deadline - loop.time()
            if pending and remaining <= 0:
                break
            try:
                if pending:
                    what, conn, msg = await asyncio.wait_for(self._queue.get(), remaining)
                else:
                    what, conn, msg = self._queue.get_nowait()
            except (asyncio.TimeoutError, asyncio.QueueEmpty):
                break
            if what == "gone":
                pending.discard(conn.id)
                continue
            conn.queued -= 1
            try:
                proto.receive(msg)
            except (ProtocolError, IntegrityError) as exc:
                self._counters.bump("protocol_errors")
                self._close(conn, f"protocol error: {exc}")
                pending.discard(conn.id)
                continue
            answered.add(conn.id)
            pending.discard(conn.id)
        return answered


def serve(config: MaskingConfig, **kwargs) -> NetworkResult:
    """Blocking helper: ``asyncio.run(AggregationServer(config, **kwargs).run())``."""
    return asyncio.run(AggregationServer(config, **kwargs).run())
