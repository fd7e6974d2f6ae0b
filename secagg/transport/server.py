"""asyncio TCP/TLS server that runs one SecAgg / SecAgg+ session
(:class:`secagg.masking.Server`, Bonawitz et al. CCS 2017; Bell et al. CCS 2020) with
clients on other processes or machines.

The transport contains no protocol logic: it registers clients, sends each one its id,
the session parameters and the key directory (WELCOME), then moves the bytes of the
protocol messages between the sans-IO :class:`~secagg.masking.Server` and the
connections, exactly as the in-process driver :func:`secagg.masking.simulate_ring` does,
and plays the clock: each round ends when every live client answered or
``round_deadline`` seconds passed, then ``close_round()`` runs and silent clients count as
dropped.

Secure by default: TLS is required (``insecure_plaintext=True`` opts out) and
registration is authenticated against an allow-list of client Ed25519 keys
(``insecure_open_registration=True`` opts out to trust on first use). A client registers
with HELLO (version, key, vector length), gets a CHALLENGE (session id and a fresh
nonce), answers AUTH (its signature over
:func:`~secagg.transport._identity.registration_payload`, which binds the session, the
nonce, its id, its key and this server's certificate) and gets REGISTERED. A wrong
version or vector length, a key that is not on the allow-list, a bad signature, a taken
id or a late HELLO gets an ABORT naming the reason at once.

Robustness (each case is tested): a connection that does not finish registering within
``hello_timeout`` is closed; a frame announcing more than ``max_frame`` bytes is refused
before its payload is read; a peer that speaks TLS to a plain server, plain TCP to a TLS
server, HTTP or SSH is recognized from its first bytes, told so when it can understand
the answer, and logged; bytes that do not decode, a message claiming another sender, or
a message the protocol rejects (:class:`~secagg.errors.ProtocolError`,
:class:`~secagg.errors.IntegrityError`) close *that* connection only and the client counts
as dropped (the log and :attr:`NetworkResult.drop_reasons` say why); connections above
``max_connections`` are closed at once; a TLS handshake must finish within
``hello_timeout``; a protocol frame before the session started, or more than
:data:`MAX_QUEUED_PER_CONNECTION` messages waiting for the coordinator, closes the
connection (so a client cannot make the server queue unbounded memory).
One event-loop task (the coordinator) is the only caller of the protocol server, so no
state is shared between connection tasks.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import ssl as _ssl
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
    InsecureParameterError,
    IntegrityError,
    ProtocolAbort,
    Reason,
)
from .._costs import Costs
from ..masking.config import MaskingConfig
from ..masking.session import Session
from ..quantize import Quantizer, check_out_of_range_policy
from ._framing import (
    HANDSHAKE_MAX_FRAME,
    HEADER,
    KIND_ABORT,
    KIND_AUTH,
    KIND_CHALLENGE,
    KIND_DONE,
    KIND_HELLO,
    KIND_PROTOCOL,
    KIND_REGISTERED,
    KIND_WELCOME,
    TRANSPORT_VERSION,
    control_payload,
    encode_frame,
    max_frame_size,
    parse_control,
    printable,
    read_frame,
    sniff,
    split_payload,
)
from ._identity import check_directory_ids, key_id, registration_payload

__all__ = ["AggregationServer", "NetworkResult", "serve"]

log = logging.getLogger("secagg.transport")

#: a HELLO is a small JSON object
HELLO_MAX_FRAME = HANDSHAKE_MAX_FRAME
#: what a plain server answers a TLS ClientHello with: a TLS 1.2 fatal alert
#: ``protocol_version`` record, so the client's TLS library reports why
TLS_ALERT_PROTOCOL_VERSION = bytes.fromhex("15030300020246")
#: what a secagg server answers an HTTP request with
HTTP_ANSWER = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
    b"This is a secagg aggregation server, not an HTTP server: connect with `secagg client`.\n"
)
#: protocol messages one connection may have waiting for the coordinator (an honest client
#: has at most one: it answers each round once, after the server's message opened it)
MAX_QUEUED_PER_CONNECTION = 2


#: "not given" for a deprecated keyword whose ``None`` has a meaning
_UNSET = object()


@dataclass
class NetworkResult:
    """Outcome of one networked session.

    Attributes
    ----------
    sum:
        float64 ``(dim,)`` decoded sum of the survivors' inputs (each client refuses
        values beyond ``bound``, or clips them under ``out_of_range="clip"``), or ``None``
        when the session ran on ring vectors (``bound=None``).
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
    events:
        counters of transport events: ``refused_connections``, ``hello_timeouts``,
        ``bad_hellos``, ``refused_hellos``, ``not_on_allow_list``, ``bad_signatures``,
        ``tls_mismatches``, ``foreign_protocols``, ``tls_failures``, ``oversized_frames``,
        ``bad_frames``, ``impersonations``, ``protocol_errors``, ``disconnects``,
        ``send_failures``.
    config:
        the session's :class:`MaskingConfig`.
    drop_reasons:
        ``{id: why}`` for every id in ``dropped`` (``"never registered"``, ``"no answer
        within the 30 s deadline"``, ``"connection lost"``, a protocol error...).
    excluded, misbehaving:
        ``{id: reason}`` from the protocol server: masked inputs left out of the sum
        (reported share ciphertexts), and clients that misbehaved
        (see :class:`secagg.masking.Server`).
    bound, out_of_range:
        the per-coordinate bound and out-of-range policy announced to the clients
        (``bound=None``: ring vectors).
    costs:
        the protocol's :class:`~secagg._costs.Costs` (message bytes per round and client,
        server seconds); ``bytes_sent``/``bytes_received`` count whole frames instead.
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
    drop_reasons: dict[int, str] = field(default_factory=dict)
    excluded: dict[int, str] = field(default_factory=dict)
    misbehaving: dict[int, str] = field(default_factory=dict)
    bound: float | None = None
    out_of_range: str = "raise"
    costs: Costs | None = None

    def summary(self) -> dict:
        """JSON-ready dict of everything but the vectors."""
        return {
            "survivors": self.survivors,
            "registered": self.registered,
            "dropped": {str(k): v for k, v in sorted(self.dropped.items())},
            "drop_reasons": {str(k): v for k, v in sorted(self.drop_reasons.items())},
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
            "bound": self.bound,
            "out_of_range": self.out_of_range,
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


class _Foreign(Exception):
    """The peer is not a secagg client speaking our framing (TLS, HTTP, SSH...), or gave up."""


@dataclass
class _Counters:
    values: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            (
                "refused_connections", "hello_timeouts", "bad_hellos", "refused_hellos", "not_on_allow_list",
                "bad_signatures", "tls_mismatches", "foreign_protocols", "tls_failures", "oversized_frames",
                "bad_frames", "impersonations", "protocol_errors", "disconnects", "send_failures",
            ),
            0,
        )
    )

    def bump(self, name: str) -> None:
        self.values[name] += 1


class _Refusal(Exception):
    """A registration refused with a reason the client is told (``code`` for programs)."""

    def __init__(self, reason: str, code: str, counter: str = "refused_hellos") -> None:
        super().__init__(reason)
        self.reason, self.code, self.counter = reason, code, counter


class AggregationServer:
    """Network server for one secure-aggregation session.

    Parameters
    ----------
    config:
        the session (:class:`MaskingConfig`: ``n``, ``dim``, ``bits``, ``threshold``,
        ``graph``/``k``, ``consistency_check``).
    bound:
        per-coordinate bound of the float inputs (default 1.0): clients quantize with
        ``Quantizer(bound, num_clients=n, bits)`` and :attr:`NetworkResult.sum` is decoded.
        ``None``: clients send ring vectors and only ``ring_sum`` is returned.
    out_of_range:
        announced to the clients with ``bound``: ``"raise"`` (default) makes a client
        whose input has a value beyond ``bound`` refuse before it sends anything
        (:class:`~secagg.errors.OutOfRangeError` naming the server's ``--bound``);
        ``"clip"`` makes it clip such values and count them (``ClientOutcome.clipped``).
    clip:
        deprecated old name of ``bound`` (a :class:`DeprecationWarning`).
    host, port:
        where to listen (``port=0``: any free port; see :attr:`port` after :meth:`start`).
    ssl_context:
        a server-side :class:`ssl.SSLContext` (:func:`secagg.transport.tls.server_context`).
        Required unless ``insecure_plaintext=True``.
    allow_list:
        ``{id: 32-byte Ed25519 public key}`` of the clients allowed to register
        (:func:`secagg.transport._identity.load_allow_list`); each id in ``[0, n)``.
        Required unless ``insecure_open_registration=True``.
    certificate_sha256:
        SHA-256 of this server's DER certificate, which clients bind into their
        registration signature; default: taken from a context made by
        :func:`~secagg.transport.tls.server_context`.
    insecure_plaintext:
        run over plain TCP: a network attacker can read and change every frame.
    insecure_open_registration:
        trust on first use: anyone may register under any free id with any key (the
        clients' keys are not checked against an allow-list), so one peer can take every
        id.
    round_deadline:
        seconds each round waits for live clients before ``close_round`` (> 0).
    join_timeout:
        seconds to wait for ``n`` registrations; the session starts earlier once all
        ``n`` ids are taken. Ids nobody took count as dropped in the first round.
    hello_timeout:
        seconds a new connection has to finish the TLS handshake and to register.
    max_connections:
        simultaneous connections (registered or not); default ``2 * n + 16``.
    max_frame:
        largest accepted frame in bytes; default :func:`~secagg.transport._framing.max_frame_size`.

    Raises
    ------
    InsecureParameterError
        no ``ssl_context`` without ``insecure_plaintext``, or no ``allow_list`` without
        ``insecure_open_registration``.
    ConfigurationError
        non-positive timeouts or limits, a port outside ``0..65535``, allow-list ids
        outside ``[0, n)``, or a TLS context whose certificate fingerprint is unknown.
    """

    def __init__(
        self,
        config: MaskingConfig,
        *,
        bound: float | None = 1.0,
        out_of_range: str = "raise",
        clip: float | None | object = _UNSET,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: _ssl.SSLContext | None = None,
        allow_list: Mapping[int, bytes] | None = None,
        certificate_sha256: bytes | None = None,
        insecure_plaintext: bool = False,
        insecure_open_registration: bool = False,
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
        if isinstance(port, bool) or not isinstance(port, (int, np.integer)) or not 0 <= port <= 65535:
            raise ConfigurationError(f"port must be an integer in 0..65535 (0: any free port), got {port!r}")
        if ssl_context is None and not insecure_plaintext:
            raise InsecureParameterError(
                "no TLS: pass ssl_context=secagg.transport.tls.server_context(cert, key), or "
                "insecure_plaintext=True to let anyone on the network read and change the frames"
            )
        if ssl_context is not None and insecure_plaintext:
            raise ConfigurationError("ssl_context and insecure_plaintext=True contradict each other")
        if allow_list is None and not insecure_open_registration:
            raise InsecureParameterError(
                "no allow-list of client keys: pass allow_list={id: ed25519 public key} "
                "(secagg.transport._identity.load_allow_list), or insecure_open_registration=True to let "
                "anyone register under any id"
            )
        if allow_list is not None and insecure_open_registration:
            raise ConfigurationError("allow_list and insecure_open_registration=True contradict each other")
        if ssl_context is not None:
            certificate_sha256 = certificate_sha256 or getattr(ssl_context, "secagg_certificate_sha256", None)
            if certificate_sha256 is None or len(certificate_sha256) != 32:
                raise ConfigurationError(
                    "the SHA-256 of the server certificate is unknown: build the context with "
                    "secagg.transport.tls.server_context(), or pass certificate_sha256=certificate_sha256(cert)"
                )
        if clip is not _UNSET:
            if bound != 1.0:
                raise ConfigurationError("give bound= only (clip= is its deprecated old name)")
            if clip is not None and not isinstance(clip, (int, float, np.integer, np.floating)):
                raise ConfigurationError(f"clip (now bound) must be a number or None, got {clip!r}")
            warnings.warn("AggregationServer(clip=...) is deprecated: use bound= (the per-coordinate bound)",
                          DeprecationWarning, stacklevel=2)
            bound = None if clip is None else float(clip)
        self.config = config
        self.out_of_range = check_out_of_range_policy(out_of_range)
        self.quantizer = None if bound is None else Quantizer(bound, num_clients=config.n, bits=config.bits,
                                                               out_of_range=out_of_range)
        self.bound = None if bound is None else float(bound)
        self.host = host
        self._port = int(port)
        self.ssl_context = ssl_context
        # with TLS the fingerprint was checked above: never None there
        self.certificate_sha256 = (
            None if ssl_context is None or certificate_sha256 is None else bytes(certificate_sha256)
        )
        self.allow_list: dict[int, bytes] | None = None
        if allow_list is not None:
            self.allow_list = {int(u): bytes(k) for u, k in allow_list.items()}
            check_directory_ids(self.allow_list, config.n, "the allow-list")
            if any(len(k) != 32 for k in self.allow_list.values()):
                raise ConfigurationError("allow-list keys must be 32-byte Ed25519 public keys")
        self._id_of_key = {} if self.allow_list is None else {k: u for u, k in self.allow_list.items()}
        self.round_deadline = float(round_deadline)
        self.join_timeout = float(join_timeout)
        self.hello_timeout = float(hello_timeout)
        self.max_connections = 2 * config.n + 16 if max_connections is None else int(max_connections)
        self.max_frame = max_frame_size(config.n, config.dim, config.bits) if max_frame is None else int(max_frame)
        if self.max_connections < 1 or self.max_frame < 64:
            raise ConfigurationError("max_connections must be >= 1 and max_frame >= 64 bytes")
        #: the protocol session id, fixed before registration so that clients sign it
        self.session = secrets.token_bytes(16)
        self._listener: socket.socket | None = None
        self._accept_task: asyncio.Task | None = None
        self._admitting = 0
        self._admissions: set[asyncio.Task] = set()  # connections not yet past the TLS handshake
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

    @property
    def _join_event(self) -> asyncio.Event:
        """Set once all ``n`` ids are registered (made by :meth:`start`, in the serving loop)."""
        if self._full is None:
            raise RuntimeError("the server is not started: call start() first")
        return self._full

    @property
    def _messages(self) -> asyncio.Queue:
        """Protocol messages from the connections, in arrival order (made by :meth:`start`)."""
        if self._queue is None:
            raise RuntimeError("the server is not started: call start() first")
        return self._queue

    @property
    def registration(self) -> str:
        """``"allow-list"`` or ``"open"`` (trust on first use)."""
        return "open" if self.allow_list is None else "allow-list"

    # ------------------------------------------------------------------ lifecycle
    @property
    def port(self) -> int:
        """The bound TCP port (after :meth:`start`)."""
        return self._port

    async def start(self) -> int:
        """Bind and start accepting connections; returns the port.

        Raises :class:`OSError` if the address cannot be bound.
        """
        self._full = asyncio.Event()
        self._queue = asyncio.Queue()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.create_server((self.host, self._port), family=family, backlog=max(128, self.max_connections))
        sock.setblocking(False)
        self._listener = sock
        self._port = sock.getsockname()[1]
        self._accept_task = asyncio.create_task(self._accept_loop(sock))
        log.info("listening on %s:%d (%s, %s registration)", self.host, self._port,
                 "TLS" if self.ssl_context else "plain TCP", self.registration)
        return self._port

    async def aclose(self) -> None:
        """Stop listening and close every connection."""
        self._finished = True
        if self._accept_task is not None:
            self._accept_task.cancel()
            await asyncio.gather(self._accept_task, return_exceptions=True)
        if self._listener is not None:
            self._listener.close()
        for task in list(self._admissions):
            task.cancel()
        for conn in list(self._conns):
            self._close(conn, "server shutting down", graceful=True)
        if self._tasks:  # connection tasks end once their stream is closed
            await asyncio.wait(list(self._tasks), timeout=5.0)
        for task in list(self._tasks):
            task.cancel()

    async def __aenter__(self) -> "AggregationServer":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ accepting
    async def _accept_loop(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, addr = await loop.sock_accept(listener)
            except OSError as exc:  # e.g. out of file descriptors: back off, keep serving
                log.warning("accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            task = asyncio.create_task(self._admit(sock, addr))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _peek(self, sock: socket.socket, size: int) -> bytes:
        """The first ``size`` bytes the peer sent (fewer if it closed, or at the deadline),
        without consuming them; :class:`asyncio.TimeoutError` if nothing came within
        ``hello_timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.hello_timeout
        while True:
            fut = loop.create_future()

            def readable() -> None:
                if not fut.done():
                    fut.set_result(None)

            loop.add_reader(sock.fileno(), readable)
            try:
                await asyncio.wait_for(fut, max(deadline - loop.time(), 0.0))
            finally:
                loop.remove_reader(sock.fileno())
            try:
                data = sock.recv(size, socket.MSG_PEEK)
            except (BlockingIOError, InterruptedError):
                continue
            if not data or len(data) >= size or loop.time() >= deadline:
                return data
            await asyncio.sleep(0.02)  # a short first segment: the socket stays readable, so poll gently

    async def _admit(self, sock: socket.socket, addr) -> None:
        """Refuse above the connection limit; on a TLS server, look at the first bytes before
        the handshake so a plain-TCP secagg client is told to use TLS; then serve it."""
        peer = str(addr)
        if self._finished or len(self._conns) + self._admitting >= self.max_connections:
            self._counters.bump("refused_connections")
            sock.close()
            return
        self._admitting += 1
        me = asyncio.current_task()
        assert me is not None  # _admit runs as a task of the accept loop
        self._admissions.add(me)
        loop = asyncio.get_running_loop()
        try:
            sock.setblocking(False)
            if self.ssl_context is not None:
                try:
                    first = await self._peek(sock, 8)
                except asyncio.TimeoutError:
                    self._counters.bump("hello_timeouts")
                    log.info("connection from %s closed: nothing sent within %g s", peer, self.hello_timeout)
                    sock.close()
                    return
                except OSError:
                    sock.close()
                    return
                kind = sniff(first) if first else "closed"
                if kind != "tls":
                    self._foreign(sock, peer, first, kind)
                    return
            reader = asyncio.StreamReader(limit=64 * 1024)
            protocol = asyncio.StreamReaderProtocol(reader)
            try:
                transport, _ = await loop.connect_accepted_socket(
                    lambda: protocol, sock, ssl=self.ssl_context,
                    ssl_handshake_timeout=self.hello_timeout if self.ssl_context is not None else None,
                )
            except (OSError, _ssl.SSLError, asyncio.TimeoutError, ConnectionError) as exc:
                self._counters.bump("tls_failures")
                log.info("TLS handshake with %s failed: %s", peer, exc)
                sock.close()
                return
            writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        except asyncio.CancelledError:  # server shutting down during the handshake
            sock.close()
            raise
        finally:
            self._admitting -= 1
            self._admissions.discard(me)
        await self._handle(reader, writer, peer)

    def _foreign(self, sock: socket.socket, peer: str, first: bytes, kind: str) -> None:
        """A TLS server got something other than a TLS handshake: answer in plain text when
        the peer can read it, log what it was, close."""
        if kind == "closed":
            sock.close()
            return
        try:
            if kind == "secagg":
                self._counters.bump("tls_mismatches")
                log.info("connection from %s speaks plain TCP to this TLS server", peer)
                sock.send(encode_frame(KIND_ABORT, control_payload({
                    "reason": "this server speaks TLS: connect with TLS (secagg client: drop --insecure-plaintext "
                              "and pass --ca)",
                    "code": "tls-required",
                })))
            else:
                self._counters.bump("foreign_protocols")
                log.info("connection from %s is not a secagg client (%s: %s)", peer, kind, printable(first))
                if kind == "http":
                    sock.send(HTTP_ANSWER)
            sock.shutdown(socket.SHUT_WR)
            # read what the peer already sent: closing with unread data would reset the
            # connection and could destroy the answer before the peer reads it
            for _ in range(16):  # at most 1 MiB: a peer that keeps sending is simply reset
                if not sock.recv(65536):
                    break
        except OSError:  # includes BlockingIOError once the receive buffer is empty
            pass
        sock.close()

    # ------------------------------------------------------------------ connections
    def _close(self, conn: _Conn, reason: str, *, graceful: bool = False) -> None:
        """Mark ``conn`` dead and close it: flush pending writes if ``graceful``, else abort."""
        if conn.alive:
            conn.alive = False
            conn.reason = reason
            if conn.id is not None and not graceful:
                log.debug("client %d: connection closed: %s", conn.id, reason)
        try:
            conn.writer.close() if graceful else conn.writer.transport.abort()
        except Exception:  # pragma: no cover - closing an already broken transport
            pass

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str) -> None:
        conn = _Conn(reader, writer, peer)
        self._conns.add(conn)
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
                    conn.queued += 1
                    self._messages.put_nowait(("msg", conn, body))  # the session decodes and checks it
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
            self._conns.discard(conn)
            if conn.alive:
                self._close(conn, "connection closed")
            if conn.id is not None:
                if not self._started and self._registered.get(conn.id) is conn:
                    del self._registered[conn.id]  # free the id for someone else
                    self._keys.discard(conn.verify_key)
                    log.info("client %d left before the session started (%s); its id is free again",
                             conn.id, conn.reason)
                elif self._queue is not None:
                    self._queue.put_nowait(("gone", conn, None))

    # ------------------------------------------------------------------ registration
    async def _hello(self, conn: _Conn) -> bool:
        """Run registration (HELLO, CHALLENGE, AUTH, REGISTERED) within ``hello_timeout``.
        False if the connection was refused or closed."""
        try:
            await asyncio.wait_for(self._registration(conn), self.hello_timeout)
            return True
        except asyncio.TimeoutError:
            self._counters.bump("hello_timeouts")
            self._close(conn, f"did not register within {self.hello_timeout:g} s")
        except _Refusal as refusal:
            self._counters.bump(refusal.counter)
            log.info("refused registration from %s: %s", conn.peer, refusal.reason)
            try:
                conn.writer.write(encode_frame(KIND_ABORT, control_payload(
                    {"reason": refusal.reason, "code": refusal.code})))
                await asyncio.wait_for(conn.writer.drain(), 5.0)
            except (OSError, asyncio.TimeoutError, ConnectionError):
                pass
            conn.alive = False
            conn.writer.close()
        except _Foreign as foreign:
            log.info("connection from %s closed: %s", conn.peer, foreign)
            self._close(conn, str(foreign), graceful=True)
        except (DecodeError, ValueError) as exc:
            self._counters.bump("oversized_frames" if "above the limit" in str(exc) else "bad_hellos")
            log.info("bad registration from %s: %s", conn.peer, exc)
            self._close(conn, f"bad HELLO: {exc}")
        except (asyncio.IncompleteReadError, ConnectionError, OSError, _ssl.SSLError):
            self._close(conn, "connection lost during registration")
        return False

    async def _read_handshake(self, conn: _Conn, expect: int, what: str, *, first: bool = False) -> dict:
        header = await conn.reader.readexactly(HEADER.size)
        if first:
            sniffed = sniff(header)
            if sniffed == "tls":  # only a plain server gets here (a TLS server peeks before the handshake)
                self._counters.bump("tls_mismatches")
                conn.writer.write(TLS_ALERT_PROTOCOL_VERSION)
                raise _Foreign("speaks TLS to this plain-TCP server (it was started with --insecure-plaintext)")
            if sniffed in ("http", "ssh") or (sniffed == "unknown" and header[:1] != b"\x00"):
                self._counters.bump("foreign_protocols")
                if sniffed == "http":
                    conn.writer.write(HTTP_ANSWER)
                raise _Foreign(f"not a secagg client ({sniffed}: {printable(header)})")
        (size,) = HEADER.unpack(header)
        if size == 0 or size > HANDSHAKE_MAX_FRAME:
            raise DecodeError(f"frame of {size} bytes announced, above the limit of {HANDSHAKE_MAX_FRAME} bytes")
        kind, body = split_payload(await conn.reader.readexactly(size))
        if kind == KIND_ABORT:
            raise _Foreign(f"client gave up: {str(parse_control(body, 'ABORT').get('reason', ''))[:200]}")
        if kind != expect:
            raise DecodeError(f"expected a {what} frame, got kind {kind:#x}")
        return parse_control(body, what)

    async def _registration(self, conn: _Conn) -> None:
        hello = await self._read_handshake(conn, KIND_HELLO, "HELLO", first=True)
        if hello.get("v") != TRANSPORT_VERSION:
            raise _Refusal(
                f"this server speaks transport version {TRANSPORT_VERSION}, the client {hello.get('v')!r}: "
                "install the same secagg version on both sides", "version")
        vk = bytes.fromhex(str(hello.get("verify_key", "")))
        if len(vk) != 32:
            raise DecodeError("verify_key must be 32 bytes (64 hex digits)")
        want = hello.get("id")
        if want is not None and (not isinstance(want, int) or isinstance(want, bool)):
            raise DecodeError(f"requested id must be an integer or null, got {want!r}")
        dim = hello.get("dim")
        if dim is not None and (not isinstance(dim, int) or isinstance(dim, bool)):
            raise DecodeError(f"dim must be an integer or null, got {dim!r}")
        if dim is not None and dim != self.config.dim:
            raise _Refusal(
                f"this session sums vectors of length {self.config.dim}; this client's input has length {dim}",
                "dim")
        uid = self._check_registration(vk, want)
        nonce = secrets.token_bytes(32)
        conn.writer.write(encode_frame(KIND_CHALLENGE, control_payload({
            "v": TRANSPORT_VERSION, "session": self.session.hex(), "nonce": nonce.hex(), "id": uid,
            "n": self.config.n, "dim": self.config.dim, "registration": self.registration,
            "bound": self.bound, "out_of_range": self.out_of_range,
        })))
        await conn.writer.drain()
        auth = await self._read_handshake(conn, KIND_AUTH, "AUTH")
        try:
            signature = bytes.fromhex(str(auth.get("signature", "")))
            keys.verify_signature(vk, registration_payload(self.session, nonce, uid, vk, self.certificate_sha256),
                                  signature)
        except (ValueError, IntegrityError):
            raise _Refusal(
                "the registration signature does not verify: this client does not hold the private key it "
                "announced, or it signed for another server certificate (a relay)", "bad-signature",
                "bad_signatures") from None
        uid = self._check_registration(vk, want)  # again: another connection may have won meanwhile
        if uid is None:  # open registration: the first free id
            uid = next(u for u in range(self.config.n) if u not in self._registered)
        conn.id, conn.verify_key = uid, vk
        self._registered[uid] = conn
        self._keys.add(vk)
        log.info("client %d registered from %s (%d of %d)", uid, conn.peer, len(self._registered), self.config.n)
        conn.writer.write(encode_frame(KIND_REGISTERED, control_payload(
            {"id": uid, "n": self.config.n, "registered": len(self._registered)})))
        await conn.writer.drain()
        if len(self._registered) == self.config.n:
            self._join_event.set()

    def _check_registration(self, vk: bytes, want: int | None) -> int | None:
        """The id ``vk`` may register under (``None``: any free id, open registration), or
        :class:`_Refusal` naming why not."""
        n = self.config.n
        if self._started:
            raise _Refusal("the session already started; a client that lost its connection cannot rejoin it",
                           "started")
        if self.allow_list is not None:
            uid = self._id_of_key.get(vk)
            if uid is None:
                raise _Refusal(f"this client's key {key_id(vk)}... is not on the server's allow-list",
                               "not-allowed", "not_on_allow_list")
            if want is not None and want != uid:
                raise _Refusal(f"the allow-list gives this client's key id {uid}, not {want}", "wrong-id")
        else:
            uid = want
            if uid is not None and not 0 <= uid < n:
                raise _Refusal(f"requested id {uid} is outside [0, {n})", "wrong-id")
        if vk in self._keys:
            raise _Refusal(
                "this key is already registered on another connection (is another copy of this client running?)",
                "id-taken")
        if uid is not None and uid in self._registered:
            raise _Refusal(f"id {uid} is already taken by a connected client", "id-taken")
        if uid is None and len(self._registered) >= n:
            raise _Refusal(f"the session is full ({n} clients)", "full")
        return uid

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
        if self._listener is None:
            await self.start()
        try:
            return await self._run()
        finally:
            await self.aclose()

    # -------------------------------------------------- the one place that knows MaskingConfig's fields
    def _protocol_session(self, graph_seed: bytes, directory: dict[int, bytes]) -> Session:
        """The protocol session (server, cost counters) this transport moves bytes for."""
        cfg = self.config
        return Session(cfg, graph_seed=graph_seed, nonce=self.session,
                       directory=directory if cfg.consistency_check else None)

    def _welcome_fields(self, graph_seed: bytes, directory: dict[int, bytes]) -> dict:
        """The WELCOME body shared by every client (each also gets its ``id``)."""
        cfg = self.config
        return {
            "v": TRANSPORT_VERSION, "n": cfg.n, "dim": cfg.dim, "bits": cfg.bits, "threshold": cfg.threshold,
            "graph": "complete" if cfg.is_complete else "sparse", "k": cfg.k,
            "adversary": cfg.threat.adversary, "min_survivors": cfg.min_survivors, "graph_seed": graph_seed.hex(),
            "bound": self.bound, "out_of_range": self.out_of_range, "rounding": "stochastic",
            "max_frame": self.max_frame,
            "session": self.session.hex(), "registration": self.registration,
            "directory": {str(u): vk.hex() for u, vk in sorted(directory.items())},
        }

    async def _run(self) -> NetworkResult:
        cfg = self.config
        try:
            await asyncio.wait_for(self._join_event.wait(), self.join_timeout)
        except asyncio.TimeoutError:
            pass
        self._started = True
        registered = {u: c for u, c in self._registered.items() if c.alive}
        log.info("session starts with %d of %d clients", len(registered), cfg.n)
        graph_seed = secrets.token_bytes(32)
        directory = {u: c.verify_key for u, c in registered.items()}
        session = self._protocol_session(graph_seed, directory)
        base = self._welcome_fields(graph_seed, directory)
        sent: dict[str, int] = {}
        self._round = "advertise_keys"
        sent["advertise_keys"] = await self._broadcast(
            {u: encode_frame(KIND_WELCOME, control_payload({**base, "id": u})) for u in registered}
        )
        dropped: dict[int, str] = {u: "join" for u in range(cfg.n) if u not in registered}
        reasons: dict[int, str] = {u: "never registered" for u in dropped}
        round_seconds: dict[str, float] = {}
        outgoing = session.open()
        try:
            for rname in session.rounds:
                self._round = rname
                t0 = time.perf_counter()
                frames = {u: encode_frame(KIND_PROTOCOL, data) for u, data in outgoing}
                sent[rname] = sent.get(rname, 0) + await self._broadcast(frames)
                expected = {u for u in frames if u in registered}
                pending = {u for u in expected if registered[u].alive}
                for u, data in outgoing:
                    if u in pending:
                        session.delivered(u, rname, len(data))
                answered = await self._collect(session, rname, pending)
                for u in sorted(expected - answered):
                    if u not in dropped:
                        conn = registered[u]
                        why = conn.reason if not conn.alive and conn.reason else (
                            f"no answer within the {self.round_deadline:g} s deadline")
                        dropped[u], reasons[u] = rname, why
                        log.info("client %d dropped at %s: %s", u, rname, why)
                outgoing = await asyncio.to_thread(session.close, rname)
                round_seconds[rname] = time.perf_counter() - t0
                session.costs.round_seconds[rname] += round_seconds[rname]
        except ProtocolAbort as exc:
            log.warning("session aborted: %s", exc.reason)
            await self._broadcast(
                {u: encode_frame(KIND_ABORT, control_payload({"reason": exc.reason, "code": "aborted"}))
                 for u in registered}
            )
            raise
        out = session.result()
        survivors = out.survivors
        done = control_payload({"status": "ok", "survivors": survivors,
                                "dropped": {str(u): r for u, r in sorted(dropped.items())}})
        await self._broadcast({u: encode_frame(KIND_DONE, done) for u in registered})
        ring = out.ring_sum
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
            drop_reasons=reasons,
            excluded=dict(out.excluded),
            misbehaving=dict(out.misbehaving),
            costs=out.costs,
            bound=self.bound,
            out_of_range=self.out_of_range,
        )

    async def _collect(self, session: Session, rname: str, pending: set[int]) -> set[int]:
        """Feed queued messages to ``session`` until ``pending`` answered or the deadline;
        a client whose message the protocol rejects is cut off (and named)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.round_deadline
        answered: set[int] = set()
        while pending or not self._messages.empty():
            remaining = deadline - loop.time()
            if pending and remaining <= 0:
                break
            try:
                if pending:
                    what, conn, body = await asyncio.wait_for(self._messages.get(), remaining)
                else:
                    what, conn, body = self._messages.get_nowait()
            except (asyncio.TimeoutError, asyncio.QueueEmpty):
                break
            if what == "gone":
                pending.discard(conn.id)
                continue
            conn.queued -= 1
            error = session.to_server(conn.id, rname, body)
            if error is not None:
                impersonation = getattr(error, "code", None) == Reason.IMPERSONATION
                self._counters.bump("impersonations" if impersonation else
                                    "bad_frames" if isinstance(error, DecodeError) else "protocol_errors")
                self._close(conn, f"protocol error: {error}")
                pending.discard(conn.id)
                continue
            answered.add(conn.id)
            pending.discard(conn.id)
        return answered


def serve(config: MaskingConfig, **kwargs) -> NetworkResult:
    """Blocking helper: ``asyncio.run(AggregationServer(config, **kwargs).run())``."""
    return asyncio.run(AggregationServer(config, **kwargs).run())
