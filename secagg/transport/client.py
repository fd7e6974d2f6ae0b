"""asyncio TCP/TLS client that takes part in one SecAgg / SecAgg+ session
(:class:`secagg.masking.Client`, Bonawitz et al. CCS 2017; Bell et al. CCS 2020) run by
:class:`secagg.transport.server.AggregationServer`.

The client registers with a HELLO carrying its Ed25519 verification key (generated here
from the OS CSPRNG unless the caller passes one), receives its id, the session parameters
and the key directory in the WELCOME, builds the sans-IO protocol client and then only
moves message bytes: each server message is decoded, handed to
:meth:`secagg.masking.Client.receive`, and the answers are framed back. The transport
holds no protocol logic.

Trust: the directory of verification keys comes from the server (trust on first use).
This defends against other clients but not against a server that substitutes keys; pass
``expected_directory`` (keys distributed out of band, i.e. a PKI) to pin it. The client
judges the session against its own threat model, never the server's: the threshold and
degree the server announces must be secure for an active server colluding with 5 % of the
clients (:class:`~secagg.errors.InsecureParameterError` otherwise), and a session set up
for an honest-but-curious server (no consistency round) is refused unless the caller
passes ``accept_honest_but_curious=True``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import ssl as _ssl
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from .. import keys
from ..errors import (
    DecodeError,
    InputError,
    InsecureParameterError,
    IntegrityError,
    ProtocolAbort,
    ProtocolError,
    ProtocolViolation,
)
from ..masking.client import Client
from ..masking.config import MaskingConfig
from ..masking.params import ThreatModel
from ..masking.messages import decode_message
from ..masking.rounds import ROUNDS
from ..quantize import Quantizer, default_rng
from .framing import (
    KIND_ABORT,
    KIND_DONE,
    KIND_HELLO,
    KIND_PROTOCOL,
    KIND_WELCOME,
    TRANSPORT_VERSION,
    control_payload,
    encode_frame,
    parse_control,
    read_frame,
    split_payload,
)

__all__ = ["ClientOutcome", "run_client", "participate", "kill_self", "TRIGGER_ROUND"]

#: the server message that opens each round, as seen by a client
TRIGGER_ROUND = {
    "StartSession": "advertise_keys",
    "KeysBroadcast": "share_keys",
    "ForwardShares": "masked_input",
    "ConsistencyRequest": "consistency_check",
    "UnmaskRequest": "unmasking",
}
#: WELCOME frames carry the directory: allow a generous size before the session limit is known
_WELCOME_MAX = 64 << 20


@dataclass
class ClientOutcome:
    """What the client learned: its ``id``, the ``survivors`` the server reported, whether
    its own input is ``included`` in the sum, the ``rounds`` it answered, the ring
    ``vector`` it contributed (uint32/uint64 ``(dim,)``), and the ``status``
    (``"ok"``, or ``"crashed"``/``"stalled"`` under fault injection)."""

    id: int
    survivors: list[int]
    included: bool
    rounds: list[str]
    vector: np.ndarray
    status: str = "ok"


def kill_self() -> None:
    """Fault injection for process tests: SIGKILL this process (no clean shutdown)."""
    os.kill(os.getpid(), signal.SIGKILL)


def _abort_transport(writer: asyncio.StreamWriter) -> None:
    writer.transport.abort()


async def run_client(
    host: str,
    port: int,
    inputs: np.ndarray | Callable[[int, np.random.Generator], np.ndarray],
    *,
    ssl_context: _ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    rng: np.random.Generator | None = None,
    signing_key: keys.SigningKey | None = None,
    requested_id: int | None = None,
    expected_directory: Mapping[int, bytes] | None = None,
    accept_honest_but_curious: bool = False,
    threat: ThreatModel | None = None,
    timeout: float = 300.0,
    crash_at: str | None = None,
    stall_at: str | None = None,
    on_crash: Callable[[asyncio.StreamWriter], None] | None = None,
    on_welcome: Callable[[int, np.ndarray, np.ndarray], None] | None = None,
) -> ClientOutcome:
    """Join the session served at ``host:port`` with ``inputs`` and run it to the end.

    Parameters
    ----------
    inputs:
        ``(dim,)`` float vector (quantized with the session's ``clip`` and stochastic
        rounding from ``rng``), or, when the server runs on ring vectors (``clip=None``),
        a uint32/uint64 ring vector. A callable ``inputs(dim, rng)`` is called once the
        session's ``dim`` is known (e.g. a random vector for demos).
    ssl_context, server_hostname:
        client-side TLS (:func:`secagg.transport.tls.client_context`); ``server_hostname``
        defaults to ``host``.
    rng:
        numpy Generator for the stochastic rounding only (default: OS entropy).
    signing_key:
        Ed25519 key announced in HELLO (default: a fresh one).
    requested_id:
        ask for a specific id (refused if taken).
    expected_directory:
        ``{id: 32-byte Ed25519 public key}`` distributed out of band; the WELCOME's
        directory must agree on every id it lists.
    accept_honest_but_curious:
        accept a session run for an honest-but-curious server (no consistency round).
    threat:
        this client's own :class:`~secagg.masking.ThreatModel` (default: an active server
        colluding with 5 % of the clients): the announced threshold and degree must be
        secure under it.
    timeout:
        seconds to wait for any single frame from the server (registration included), and
        for the server to read each frame this client writes.
    crash_at, stall_at:
        fault injection (tests, demos): on the message that opens round ``crash_at`` the
        connection is aborted (``on_crash(writer)``, e.g. :func:`kill_self`); on the one
        opening ``stall_at`` the client stops answering but keeps the connection open.
    on_welcome:
        called as ``on_welcome(id, inputs, ring_vector)`` once registered, before round 1
        (e.g. to record what this client contributes).

    Returns
    -------
    ClientOutcome

    Raises
    ------
    ProtocolAbort
        the server aborts, refuses the HELLO, or the connection is lost.
    ProtocolError, IntegrityError
        the server's messages break the protocol (the client tells the server and leaves).
    InputError
        inputs of the wrong shape.
    ConfigurationError
        an unacceptable session.
    """
    for name, value in (("crash_at", crash_at), ("stall_at", stall_at)):
        if value is not None and value not in ROUNDS:
            raise InputError(f"{name} must be one of {', '.join(ROUNDS)}, got {value!r}")
    signing_key = signing_key or keys.SigningKey.generate()
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                host, port, ssl=ssl_context, server_hostname=(server_hostname or host) if ssl_context else None,
                limit=64 * 1024,
            ),
            timeout,
        )
    except (OSError, asyncio.TimeoutError) as exc:
        raise ProtocolAbort(f"cannot connect to {host}:{port}: {exc}") from None
    try:
        return await _session(
            reader, writer, inputs, rng=rng, signing_key=signing_key, requested_id=requested_id,
            expected_directory=expected_directory,
            policy=threat or ThreatModel(adversary="honest-but-curious" if accept_honest_but_curious else "active"),
            timeout=timeout,
            crash_at=crash_at, stall_at=stall_at, on_crash=on_crash or _abort_transport, on_welcome=on_welcome,
        )
    finally:
        if not writer.transport.is_closing():
            writer.close()


async def _read(reader: asyncio.StreamReader, limit: int, timeout: float) -> tuple[int, bytes]:
    try:
        payload = await asyncio.wait_for(read_frame(reader, limit), timeout)
    except asyncio.TimeoutError:
        raise ProtocolAbort(f"no frame from the server within {timeout:g} s") from None
    except (asyncio.IncompleteReadError, ConnectionError, OSError):
        raise ProtocolAbort("the server closed the connection") from None
    return split_payload(payload)


async def _drain(writer: asyncio.StreamWriter, timeout: float) -> None:
    """Wait for the write buffer to drain, at most ``timeout`` seconds (a server that stops
    reading must not block the client forever)."""
    try:
        await asyncio.wait_for(writer.drain(), timeout)
    except asyncio.TimeoutError:
        raise ProtocolAbort(f"the server did not read this client's frame within {timeout:g} s") from None
    except (ConnectionError, OSError):
        raise ProtocolAbort("the server closed the connection") from None


def _build(welcome: dict, vk: bytes, expected_directory, policy: ThreatModel):
    try:
        uid = int(welcome["id"])
        directory = {int(u): bytes.fromhex(h) for u, h in welcome["directory"].items()}
        params = dict(
            n=int(welcome["n"]), dim=int(welcome["dim"]), bits=int(welcome["bits"]),
            threshold=int(welcome["threshold"]), graph=str(welcome["graph"]), k=int(welcome["k"]),
            min_survivors=int(welcome["min_survivors"]),
        )
        announced = str(welcome["adversary"])
        seed = bytes.fromhex(welcome["graph_seed"])
        clip = welcome.get("clip")
        clip = None if clip is None else float(clip)
        max_frame = int(welcome["max_frame"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DecodeError(f"WELCOME frame is missing or has a malformed field: {exc!r}") from None
    if announced != "active" and policy.active:
        raise InsecureParameterError(
            f"the server runs this session for an {announced!r} server (no consistency round); this client "
            "requires protection against an active server (accept_honest_but_curious=True, or the CLI flag "
            "--insecure-honest-but-curious, to accept)"
        )
    if announced not in ("active", "honest-but-curious"):
        raise DecodeError(f"WELCOME frame announces an unknown adversary model {announced!r}")
    # the client's own threat model decides what is secure, never the server's announcement
    cfg = MaskingConfig(**params, threat=dataclasses.replace(policy, adversary=announced))
    if directory.get(uid) != vk:
        raise ProtocolViolation(f"the server's directory does not list this client's key under its id {uid}")
    if expected_directory is not None:
        wrong = [u for u, k in directory.items() if u in expected_directory and expected_directory[u] != k]
        unknown = [u for u in directory if u not in expected_directory]
        if wrong or unknown:
            raise IntegrityError(
                f"the server's key directory disagrees with the pinned one for ids {(wrong + unknown)[:5]}"
            )
    return uid, cfg, cfg.build_graph(seed), directory, clip, max_frame


def _done_survivors(done: dict) -> list[int]:
    """The survivor ids of a DONE frame; :class:`DecodeError` unless a list of ints."""
    survivors = done.get("survivors", [])
    if not isinstance(survivors, list) or not all(
        isinstance(u, int) and not isinstance(u, bool) for u in survivors
    ):
        raise DecodeError("DONE frame: survivors must be a list of integer ids")
    return [int(u) for u in survivors]


async def _session(reader, writer, inputs, *, rng, signing_key, requested_id, expected_directory,
                   policy, timeout, crash_at, stall_at, on_crash, on_welcome) -> ClientOutcome:
    vk = signing_key.public_bytes()
    hello = {"v": TRANSPORT_VERSION, "verify_key": vk.hex(), "id": requested_id}
    writer.write(encode_frame(KIND_HELLO, control_payload(hello)))
    await _drain(writer, timeout)
    kind, body = await _read(reader, _WELCOME_MAX, timeout)
    if kind == KIND_ABORT:
        raise ProtocolAbort(f"the server refused to register this client: {parse_control(body, 'ABORT').get('reason')}")
    if kind != KIND_WELCOME:
        raise DecodeError(f"expected a WELCOME frame, got kind {kind:#x}")
    uid, cfg, graph, directory, clip, max_frame = _build(
        parse_control(body, "WELCOME"), vk, expected_directory, policy
    )
    gen = default_rng(rng)
    if callable(inputs):
        inputs = inputs(cfg.dim, gen)
    if clip is None:
        vec = np.asarray(inputs)
    else:
        try:
            x = np.asarray(inputs, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InputError(f"inputs must be a numeric vector: {exc}") from None
        if x.shape != (cfg.dim,):
            raise InputError(f"the session sums vectors of shape ({cfg.dim},), this client has {x.shape}")
        vec = Quantizer(clip, num_clients=cfg.n, bits=cfg.bits).encode(x, gen)
    client = Client(
        uid, cfg, graph, vec,
        signing_key=signing_key if cfg.consistency_check else None,
        directory=directory if cfg.consistency_check else None,
    )
    if on_welcome is not None:
        on_welcome(uid, np.asarray(inputs), vec)
    rounds: list[str] = []
    while True:
        kind, body = await _read(reader, max_frame, timeout)
        if kind == KIND_DONE:
            survivors = _done_survivors(parse_control(body, "DONE"))
            return ClientOutcome(uid, survivors, uid in survivors, rounds, vec)
        if kind == KIND_ABORT:
            raise ProtocolAbort(f"the server aborted the session: {parse_control(body, 'ABORT').get('reason')}")
        if kind != KIND_PROTOCOL:
            raise DecodeError(f"unexpected frame kind {kind:#x} from the server")
        msg = decode_message(body)
        rname = TRIGGER_ROUND.get(type(msg).__name__)
        if rname is not None and rname == crash_at:
            on_crash(writer)
            return ClientOutcome(uid, [], False, rounds, vec, status="crashed")
        if rname is not None and rname == stall_at:
            try:  # keep the connection open and silent until the server closes it
                await reader.read()
            except (ConnectionError, OSError):
                pass
            return ClientOutcome(uid, [], False, rounds, vec, status="stalled")
        try:
            replies = client.receive(msg)
        except (ProtocolError, ProtocolAbort, IntegrityError) as exc:
            try:
                writer.write(encode_frame(KIND_ABORT, control_payload({"reason": str(exc)[:500]})))
                await asyncio.wait_for(writer.drain(), 5.0)
            except (OSError, ConnectionError, asyncio.TimeoutError):
                pass
            raise
        for rep in replies:
            writer.write(encode_frame(KIND_PROTOCOL, rep.to_bytes()))
        await _drain(writer, timeout)
        if rname is not None:
            rounds.append(rname)


def participate(host: str, port: int, inputs: np.ndarray, **kwargs) -> ClientOutcome:
    """Blocking helper: ``asyncio.run(run_client(host, port, inputs, **kwargs))``."""
    return asyncio.run(run_client(host, port, inputs, **kwargs))
