"""asyncio TCP/TLS client that takes part in one SecAgg / SecAgg+ session
(:class:`secagg.masking.Client`, Bonawitz et al. CCS 2017; Bell et al. CCS 2020) run by
:class:`secagg.transport.server.AggregationServer`.

The client connects over TLS (the server's certificate is verified against the caller's
CA file and host name), registers (HELLO with its Ed25519 identity key and vector length;
the server's CHALLENGE; AUTH, its signature over
:func:`~secagg.transport._identity.registration_payload`), receives the session parameters
and the key directory in the WELCOME, checks them against its own policy, builds the
sans-IO protocol client and then only moves message bytes: each server message is
decoded, handed to :meth:`secagg.masking.Client.receive`, and the answers are framed back.
The transport holds no protocol logic.

Policy (checked against the WELCOME, never taken from it): the announced parameters must
satisfy this client's :class:`~secagg.masking.SecurityPolicy` (the consistency check
unless ``accept_honest_but_curious``; a threshold and degree secure under the client's own
threat model; optional minimum threshold, degree and survivor floor); the directory must
list this client's key under its id and, with ``expected_directory`` (the allow-list,
distributed out of band), agree with it on every id; the server must present a certificate
for the expected name, chained to the caller's CA. Violations raise
:class:`~secagg.errors.InsecureParameterError` or :class:`~secagg.errors.IntegrityError`
naming the rule, before any protocol message is sent.

Outcome: :attr:`ClientOutcome.included` is ``True`` or ``False`` when the client knows
(the server's DONE, or it never sent its masked input) and ``None`` when it cannot know
(its connection ended after it sent its masked input).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import signal
import ssl as _ssl
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, TypeGuard

import numpy as np

from .. import keys
from ..errors import (
    ConfigurationError,
    DecodeError,
    InputError,
    InsecureParameterError,
    IntegrityError,
    OutOfRangeError,
    ProtocolAbort,
    ProtocolError,
    ProtocolViolation,
)
from ..masking.client import Client
from ..masking.config import MaskingConfig
from ..masking.policy import SecurityPolicy
from ..masking._messages import decode_message
from ..masking.rounds import OPENS, ROUNDS
from ..quantize import OUT_OF_RANGE_POLICIES, Quantizer, count_beyond, default_rng
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
from ._identity import registration_payload
from .tls import peer_certificate_sha256

__all__ = ["ClientOutcome", "run_client", "participate"]

#: WELCOME frames carry the directory: allow a generous size before the session limit is known
_WELCOME_MAX = 64 << 20
#: the default wait for the server's answer to HELLO (a secagg server answers at once)
HANDSHAKE_TIMEOUT = 30.0


@dataclass
class ClientOutcome:
    """What the client learned about its session.

    Attributes
    ----------
    id:
        this client's id.
    survivors:
        the survivor ids the server reported in DONE (empty if no DONE arrived).
    included:
        ``True`` if the server reported this client's input in the sum, ``False`` if it is
        not (the server said so, or the client never sent its masked input), ``None`` if
        the client cannot know (its connection ended after it sent its masked input).
    rounds:
        the rounds this client answered.
    vector:
        the ring vector it contributed (uint32/uint64 ``(dim,)``).
    status:
        ``"ok"``, ``"connection lost"``, or ``"crashed"`` / ``"stalled"`` under fault
        injection.
    reason:
        why ``included`` is ``False`` or ``None`` (empty when included).
    dropped:
        ``{id: round}`` the server reported in DONE.
    clipped:
        values of this client's input clipped to the session's ``bound`` (only when the
        server announced ``out_of_range="clip"``; otherwise out-of-range input is refused
        before anything is sent).
    """

    id: int
    survivors: list[int]
    included: bool | None
    rounds: list[str]
    vector: np.ndarray
    status: str = "ok"
    reason: str = ""
    dropped: dict[int, str] = field(default_factory=dict)
    clipped: int = 0

    @property
    def inclusion(self) -> str:
        """``"included"``, ``"not included"`` or ``"unknown"``."""
        return {True: "included", False: "not included", None: "unknown"}[self.included]


@dataclass(frozen=True)
class _Policy:
    """What this client accepts: the protocol policy plus the transport's pins."""

    expected_directory: Mapping[int, bytes] | None
    security: SecurityPolicy
    insecure_open_registration: bool


def kill_self() -> None:
    """Fault injection for process tests: SIGKILL this process (no clean shutdown)."""
    os.kill(os.getpid(), signal.SIGKILL)


def _abort_transport(writer: asyncio.StreamWriter) -> None:
    writer.transport.abort()


def _input_dim(inputs) -> int | None:
    """The vector length a client announces in HELLO (``None`` for a callable)."""
    if callable(inputs):
        return None
    shape = np.shape(inputs)
    return int(shape[0]) if len(shape) == 1 else None


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
    insecure_plaintext: bool = False,
    insecure_open_registration: bool = False,
    accept_honest_but_curious: bool = False,
    policy: SecurityPolicy | None = None,
    timeout: float = 300.0,
    handshake_timeout: float = HANDSHAKE_TIMEOUT,
    crash_at: str | None = None,
    stall_at: str | None = None,
    on_crash: Callable[[asyncio.StreamWriter], None] | None = None,
    on_welcome: Callable[[int, np.ndarray, np.ndarray], None] | None = None,
    on_registered: Callable[[int, int, int], None] | None = None,
) -> ClientOutcome:
    """Join the session served at ``host:port`` with ``inputs`` and run it to the end.

    Parameters
    ----------
    inputs:
        ``(dim,)`` float vector (quantized with the session's ``bound`` and stochastic
        rounding from ``rng``; a value beyond the bound raises
        :class:`~secagg.errors.OutOfRangeError` before anything is sent, unless the
        server announced ``out_of_range="clip"``: then it is clipped and counted in
        ``ClientOutcome.clipped``), or, when the server runs on ring vectors (``bound=None``),
        a uint32/uint64 ring vector. A callable ``inputs(dim, rng)`` is called once the
        session's ``dim`` is known (e.g. a random vector for demos).
    ssl_context, server_hostname:
        client-side TLS (:func:`secagg.transport.tls.client_context`: the CA file or
        pinned self-signed certificate the server must present); ``server_hostname`` is
        the name the certificate must carry (default ``host``). Required unless
        ``insecure_plaintext=True``.
    rng:
        numpy Generator for the stochastic rounding only (default: OS entropy).
    signing_key:
        this client's long-term Ed25519 identity key
        (:func:`secagg.transport._identity.load_identity_key`), whose public key is on
        the server's allow-list. It signs the registration challenge and the protocol
        messages. Required unless ``insecure_open_registration=True`` (then a fresh key).
    requested_id:
        the id to register under (the allow-list decides; a different one is refused).
    expected_directory:
        ``{id: 32-byte Ed25519 public key}`` distributed out of band (the allow-list):
        the WELCOME's directory must agree with it on every id it lists.
    insecure_plaintext:
        plain TCP: a network attacker can read and change every frame.
    insecure_open_registration:
        register without an identity key, and accept a server that does not check an
        allow-list (anyone may take any id there).
    accept_honest_but_curious:
        accept a session without the consistency check: a server that lies about who
        dropped can then unmask this client's input (shorthand for a ``policy`` whose
        threat model is honest-but-curious).
    policy:
        this client's :class:`~secagg.masking.SecurityPolicy` (default: the parameter
        finder's safe defaults); the announced session must satisfy every rule.
    timeout:
        seconds to wait for any single frame from the server once registered (the wait
        for the session to start included), and for the server to read each frame.
    handshake_timeout:
        seconds to wait for the server's answer to HELLO and AUTH (a secagg server
        answers at once; a silent peer is probably not one).
    crash_at, stall_at:
        fault injection (tests, demos): on the message that opens round ``crash_at`` the
        connection is aborted (``on_crash(writer)``, e.g. :func:`kill_self`); on the one
        opening ``stall_at`` the client stops answering but keeps reading until the
        session ends, so it still learns whether its input is in the sum.
    on_welcome:
        called as ``on_welcome(id, inputs, ring_vector)`` once the session starts, before
        round 1 (e.g. to record what this client contributes).
    on_registered:
        called as ``on_registered(id, n, registered_so_far)`` once the server accepted
        the registration.

    Returns
    -------
    ClientOutcome
        ``included`` is ``None`` when the connection ended after the masked input was
        sent (the client cannot know).

    Raises
    ------
    InsecureParameterError
        no TLS context or identity key without the matching ``insecure_*`` flag, or a
        session weaker than this client's policy.
    ProtocolAbort
        the server refuses the registration (the reason says why), aborts, is not a
        secagg server, speaks TLS when this client does not (or the reverse), or the
        connection is lost before this client sent its masked input.
    ProtocolError, IntegrityError
        the server's messages break the protocol, or the directory disagrees with
        ``expected_directory`` (the client tells the server and leaves).
    InputError
        inputs of the wrong shape.
    """
    for name, value in (("crash_at", crash_at), ("stall_at", stall_at)):
        if value is not None and value not in ROUNDS:
            raise InputError(f"{name} must be one of {', '.join(ROUNDS)}, got {value!r}")
    if ssl_context is None and not insecure_plaintext:
        raise InsecureParameterError(
            "no TLS: pass ssl_context=secagg.transport.tls.client_context(ca_file) (secagg client --ca), or "
            "insecure_plaintext=True (--insecure-plaintext) to let anyone on the network read and change the frames"
        )
    if ssl_context is not None and insecure_plaintext:
        raise ConfigurationError("ssl_context and insecure_plaintext=True contradict each other")
    if signing_key is None and not insecure_open_registration:
        raise InsecureParameterError(
            "no identity key: pass signing_key=load_identity_key(file) (secagg client --key), whose public key is "
            "on the server's allow-list, or insecure_open_registration=True (--insecure-open-registration)"
        )
    security = policy or SecurityPolicy()
    if accept_honest_but_curious:
        security = dataclasses.replace(
            security, threat=dataclasses.replace(security.threat, adversary="honest-but-curious"))
    rules = _Policy(
        expected_directory=None if expected_directory is None else dict(expected_directory),
        security=security,
        insecure_open_registration=insecure_open_registration,
    )
    signing_key = signing_key or keys.SigningKey.generate()
    where = f"{host}:{port}"
    hostname = (server_hostname or host) if ssl_context else None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=ssl_context, server_hostname=hostname, limit=64 * 1024),
            timeout,
        )
    except _ssl.SSLError as exc:
        raise ProtocolAbort(_describe_tls_error(exc, where, hostname)) from None
    except (OSError, asyncio.TimeoutError) as exc:
        if ssl_context is not None and isinstance(exc, ConnectionError):
            raise ProtocolAbort(
                f"{where} closed the connection during the TLS handshake: it is not a TLS secagg server "
                "(check the address; a plain-TCP server needs --insecure-plaintext on both sides)"
            ) from None
        raise ProtocolAbort(f"cannot connect to {where}: {exc or type(exc).__name__}") from None
    try:
        return await _session(
            reader, writer, inputs, where=where, rng=rng, signing_key=signing_key, requested_id=requested_id,
            policy=rules, timeout=timeout, handshake_timeout=min(handshake_timeout, timeout), crash_at=crash_at,
            stall_at=stall_at, on_crash=on_crash or _abort_transport, on_welcome=on_welcome,
            on_registered=on_registered,
        )
    finally:
        if not writer.transport.is_closing():
            writer.close()


def _describe_tls_error(exc: _ssl.SSLError, where: str, hostname: str | None) -> str:
    """One line saying why the TLS handshake failed and what to change."""
    reason = getattr(exc, "reason", None) or ""
    if isinstance(exc, _ssl.SSLCertVerificationError) or reason == "CERTIFICATE_VERIFY_FAILED":
        detail = getattr(exc, "verify_message", "") or str(exc)
        if "mismatch" in detail.lower():
            return (f"the certificate of {where} is not valid for the name {hostname!r} ({detail}): connect by a "
                    "name the certificate lists, or pass the expected name with --server-name")
        return (f"the certificate of {where} is not trusted by the CA file given with --ca ({detail}): "
                "this is not the server you expect, or --ca is the wrong file")
    if reason == "TLSV1_ALERT_PROTOCOL_VERSION":
        return (f"{where} refused TLS with a protocol-version alert, as a secagg server started with "
                "--insecure-plaintext does: pass --insecure-plaintext here too, or restart the server with TLS")
    if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST",
                  "UNKNOWN_PROTOCOL") or isinstance(exc, _ssl.SSLEOFError):
        return (f"{where} does not speak TLS, and it is not a plain-TCP secagg server either "
                f"(TLS handshake: {reason or exc}): check the address")
    return f"TLS handshake with {where} failed: {reason or exc}"


async def _read(reader: asyncio.StreamReader, limit: int, timeout: float) -> tuple[int, bytes]:
    try:
        payload = await asyncio.wait_for(read_frame(reader, limit), timeout)
    except asyncio.TimeoutError:
        raise ProtocolAbort(f"no frame from the server within {timeout:g} s") from None
    except (asyncio.IncompleteReadError, ConnectionError, OSError):
        raise ProtocolAbort("the server closed the connection") from None
    return split_payload(payload)


async def _read_first(reader: asyncio.StreamReader, where: str, timeout: float) -> tuple[int, bytes]:
    """The server's first frame, or a one-line verdict on what the peer is instead."""
    try:
        header = await asyncio.wait_for(reader.readexactly(HEADER.size), timeout)
    except asyncio.TimeoutError:
        raise ProtocolAbort(
            f"{where} did not answer the registration within {timeout:g} s: it is not a secagg server "
            "(a TLS server waits silently for a TLS client: drop --insecure-plaintext and pass --ca)"
        ) from None
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ProtocolAbort(f"this is not a secagg server: {where} answered {printable(exc.partial)}") from None
        raise ProtocolAbort(
            f"{where} closed the connection without answering: it is not a secagg server of this version"
        ) from None
    except (ConnectionError, OSError):
        raise ProtocolAbort(f"{where} closed the connection without answering") from None
    (size,) = HEADER.unpack(header)
    if sniff(header) != "secagg" or size > HANDSHAKE_MAX_FRAME:
        try:  # a little more of the answer makes the message recognizable (e.g. "HTTP/1.1 400 ...")
            header += await asyncio.wait_for(reader.read(60), 1.0)
        except (asyncio.TimeoutError, ConnectionError, OSError):
            pass
        what = sniff(header)
        if what == "tls":
            raise ProtocolAbort(
                f"{where} speaks TLS: drop --insecure-plaintext and pass --ca with the server's CA certificate")
        raise ProtocolAbort(f"this is not a secagg server: {where} answered {printable(header)}")
    try:
        payload = await asyncio.wait_for(reader.readexactly(size), timeout)
    except asyncio.TimeoutError:
        raise ProtocolAbort(f"no frame from the server within {timeout:g} s") from None
    except (asyncio.IncompleteReadError, ConnectionError, OSError):
        raise ProtocolAbort("the server closed the connection") from None
    return split_payload(payload)


def _refused(body: bytes, what: str) -> ProtocolAbort:
    abort = parse_control(body, "ABORT")
    if abort.get("code") == "tls-required":
        return ProtocolAbort("the server speaks TLS: drop --insecure-plaintext and pass --ca with its CA certificate")
    return ProtocolAbort(f"{what}: {str(abort.get('reason'))[:500]}")


async def _drain(writer: asyncio.StreamWriter, timeout: float) -> None:
    """Wait for the write buffer to drain, at most ``timeout`` seconds (a server that stops
    reading must not block the client forever)."""
    try:
        await asyncio.wait_for(writer.drain(), timeout)
    except asyncio.TimeoutError:
        raise ProtocolAbort(f"the server did not read this client's frame within {timeout:g} s") from None
    except (ConnectionError, OSError):
        raise ProtocolAbort("the server closed the connection") from None


def _hex(value, size: int | None, what: str) -> bytes:
    try:
        data = bytes.fromhex(str(value))
    except ValueError:
        raise DecodeError(f"{what} is not hex") from None
    if size is not None and len(data) != size:
        raise DecodeError(f"{what} must be {size} bytes, got {len(data)}")
    return data


# ---------------------------------------------------------------- the one place that builds a MaskingConfig
def _config_from_welcome(welcome: dict, policy: _Policy) -> MaskingConfig:
    """The session's :class:`MaskingConfig` from the WELCOME, checked against ``policy``.

    The parameters are the server's announcement; what is acceptable is this client's
    own :class:`~secagg.masking.SecurityPolicy` (never the server's).
    """
    try:
        params: dict[str, Any] = dict(
            n=int(welcome["n"]), dim=int(welcome["dim"]), bits=int(welcome["bits"]),
            threshold=int(welcome["threshold"]), graph=str(welcome["graph"]), k=int(welcome["k"]),
            adversary=str(welcome["adversary"]), min_survivors=int(welcome["min_survivors"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DecodeError(f"WELCOME frame is missing or has a malformed field: {exc!r}") from None
    try:
        return policy.security.config_for(**params)
    except InsecureParameterError as exc:
        raise InsecureParameterError(
            f"{exc} (refused before sending anything; secagg client flags: --insecure-honest-but-curious, "
            "--corrupt-fraction, --min-threshold, --min-degree, --min-survivors)") from None


def _build(welcome: dict, vk: bytes, uid: int, session: bytes, policy: _Policy):
    cfg = _config_from_welcome(welcome, policy)
    try:
        directory = {int(u): _hex(h, 32, "a directory key") for u, h in welcome["directory"].items()}
        seed = _hex(welcome["graph_seed"], 32, "graph_seed")
        welcome_session = _hex(welcome["session"], None, "session")
        welcome_id = int(welcome["id"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DecodeError(f"WELCOME frame is missing or has a malformed field: {exc!r}") from None
    bound, out_of_range = _encoding(welcome, "WELCOME")
    if welcome_id != uid or welcome_session != session:
        raise ProtocolViolation("the WELCOME is for another id or session than this client registered for")
    if directory.get(uid) != vk:
        raise ProtocolViolation(f"the server's directory does not list this client's key under its id {uid}")
    pins = policy.expected_directory
    if pins is not None:
        wrong = [u for u, k in directory.items() if u in pins and pins[u] != k]
        unknown = [u for u in directory if u not in pins]
        if wrong or unknown:
            raise IntegrityError(
                f"the server's key directory disagrees with the pinned one for ids {(wrong + unknown)[:5]}"
            )
    # the frame limit is this client's own bound for the announced session, not the server's word
    max_frame = max_frame_size(cfg.n, cfg.dim, cfg.bits)
    return cfg, cfg.build_graph(seed), directory, (bound, out_of_range), max_frame


def _done(body: bytes) -> tuple[list[int], dict[int, str]]:
    """The survivor ids and drop rounds of a DONE frame; :class:`DecodeError` unless well formed."""
    done = parse_control(body, "DONE")
    survivors = done.get("survivors", [])
    if not isinstance(survivors, list) or not all(
        isinstance(u, int) and not isinstance(u, bool) for u in survivors
    ):
        raise DecodeError("DONE frame: survivors must be a list of integer ids")
    dropped = done.get("dropped", {})
    if not isinstance(dropped, dict):
        raise DecodeError("DONE frame: dropped must be an object")
    try:
        dropped = {int(u): str(r) for u, r in dropped.items()}
    except ValueError:
        raise DecodeError("DONE frame: dropped must map ids to rounds") from None
    return [int(u) for u in survivors], dropped


def _plain_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


async def _register(reader, writer, *, where, signing_key, requested_id, dim, policy, handshake_timeout,
                    server_certificate, precheck=None) -> tuple[int, bytes, int, int, dict]:
    """HELLO, CHALLENGE, AUTH, REGISTERED. Returns (id, session, n, registered so far, the
    CHALLENGE). ``precheck(challenge)`` runs before AUTH: raising there leaves without
    registering (e.g. an input beyond the announced bound)."""
    vk = signing_key.public_bytes()
    hello = {"v": TRANSPORT_VERSION, "verify_key": vk.hex(), "id": requested_id, "dim": dim}
    writer.write(encode_frame(KIND_HELLO, control_payload(hello)))
    try:
        await _drain(writer, handshake_timeout)
    except ProtocolAbort:
        pass  # the server may have answered before closing (e.g. "this server speaks TLS"): read it
    kind, body = await _read_first(reader, where, handshake_timeout)
    if kind == KIND_ABORT:
        raise _refused(body, "the server refused to register this client")
    if kind != KIND_CHALLENGE:
        raise DecodeError(f"expected a CHALLENGE frame, got kind {kind:#x}")
    challenge = parse_control(body, "CHALLENGE")
    session = _hex(challenge.get("session"), None, "session")
    nonce = _hex(challenge.get("nonce"), 32, "nonce")
    offered = challenge.get("id")
    if not 16 <= len(session) <= 32 or (offered is not None and (not isinstance(offered, int) or isinstance(offered, bool))):
        raise DecodeError("CHALLENGE frame: malformed session or id")
    if challenge.get("registration") != "allow-list" and not policy.insecure_open_registration:
        raise InsecureParameterError(
            "the server runs open registration (no allow-list: anyone may register under any id, so the "
            "other clients may all be one attacker). Refused; pass --insecure-open-registration to accept it"
        )
    if dim is not None and challenge.get("dim") != dim:
        raise InputError(f"the session sums vectors of length {challenge.get('dim')}, this client has {dim}")
    if precheck is not None:
        precheck(challenge)
    signature = signing_key.sign(registration_payload(session, nonce, offered, vk, server_certificate))
    writer.write(encode_frame(KIND_AUTH, control_payload({"signature": signature.hex()})))
    await _drain(writer, handshake_timeout)
    kind, body = await _read(reader, HANDSHAKE_MAX_FRAME, handshake_timeout)
    if kind == KIND_ABORT:
        raise _refused(body, "the server refused to register this client")
    if kind != KIND_REGISTERED:
        raise DecodeError(f"expected a REGISTERED frame, got kind {kind:#x}")
    reg = parse_control(body, "REGISTERED")
    uid, n, count = reg.get("id"), reg.get("n"), reg.get("registered", 0)
    if not (_plain_int(uid) and _plain_int(n) and _plain_int(count)) or (offered is not None and uid != offered):
        raise DecodeError("REGISTERED frame: malformed or for another id than the challenge")
    return uid, session, n, count, challenge


def _encoding(fields: dict, frame: str) -> tuple[float | None, str]:
    """The ``(bound, out_of_range)`` a CHALLENGE or WELCOME announces; DecodeError unless valid."""
    try:
        bound = fields.get("bound")
        bound = None if bound is None else float(bound)
        out_of_range = str(fields.get("out_of_range", "raise"))
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"{frame} frame: malformed bound: {exc!r}") from None
    if out_of_range not in OUT_OF_RANGE_POLICIES or (bound is not None and not (math.isfinite(bound) and bound > 0)):
        raise DecodeError(f"{frame} frame: bound {bound!r} or out_of_range {out_of_range!r} is not valid")
    return bound, out_of_range


def _check_range(x: np.ndarray, bound: float, out_of_range: str) -> None:
    """Refuse (before anything is sent) an input with values beyond the session's bound,
    unless the session clips: :class:`OutOfRangeError` naming the server's ``--bound``."""
    outside = int(count_beyond(x, bound))  # as the Quantizer counts them
    if outside and out_of_range == "raise":
        top = float(np.abs(x).max())
        raise OutOfRangeError(
            outside, x.size, top, bound,
            advice=f"the session's bound is the server's --bound {bound:g} (AggregationServer(bound=)); run the "
                   f"server with --bound {top:.6g} or more, or with --out-of-range clip to clip such values and "
                   "count them. Refused before sending anything")


def _float_input(inputs, dim: int) -> np.ndarray:
    try:
        x = np.asarray(inputs, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"inputs must be a numeric vector: {exc}") from None
    if x.shape != (dim,):
        raise InputError(f"the session sums vectors of shape ({dim},), this client has {x.shape}")
    if not np.all(np.isfinite(x)):
        raise InputError("inputs contain NaN or infinity")
    return x


async def _session(reader, writer, inputs, *, where, rng, signing_key, requested_id, policy, timeout,
                   handshake_timeout, crash_at, stall_at, on_crash, on_welcome, on_registered) -> ClientOutcome:
    vk = signing_key.public_bytes()
    tls = writer.get_extra_info("ssl_object")

    def precheck(challenge: dict) -> None:
        bound, out_of_range = _encoding(challenge, "CHALLENGE")
        if bound is not None and not callable(inputs):
            dim = _input_dim(inputs)
            if dim is not None:
                _check_range(_float_input(inputs, int(dim)), bound, out_of_range)

    uid, session, n, count, challenge = await _register(
        reader, writer, where=where, signing_key=signing_key, requested_id=requested_id, dim=_input_dim(inputs),
        policy=policy, handshake_timeout=handshake_timeout,
        server_certificate=None if tls is None else peer_certificate_sha256(tls), precheck=precheck,
    )
    if on_registered is not None:
        on_registered(uid, n, count)
    # the WELCOME carries one directory entry per client: bound it by the announced n
    kind, body = await _read(reader, min(_WELCOME_MAX, max_frame_size(max(n, 1), 1)), timeout)
    if kind == KIND_ABORT:
        raise _refused(body, "the server aborted the session before it started")
    if kind != KIND_WELCOME:
        raise DecodeError(f"expected a WELCOME frame, got kind {kind:#x}")
    cfg, graph, directory, (bound, out_of_range), max_frame = _build(
        parse_control(body, "WELCOME"), vk, uid, session, policy)
    if (bound, out_of_range) != _encoding(challenge, "CHALLENGE"):
        raise ProtocolViolation("the WELCOME announces another bound or out-of-range policy than the CHALLENGE did")
    gen = default_rng(rng)
    if callable(inputs):
        inputs = inputs(cfg.dim, gen)
    clipped = 0
    if bound is None:
        vec = np.asarray(inputs)
    else:
        x = _float_input(inputs, cfg.dim)
        _check_range(x, bound, out_of_range)  # refuse before anything about the input is sent
        vec, counts = Quantizer(bound, num_clients=cfg.n, bits=cfg.bits, out_of_range=out_of_range).encode(
            x, gen, return_clipped=True)
        clipped = int(counts)
    client = Client(
        uid, cfg, graph, vec,
        signing_key=signing_key if cfg.consistency_check else None,
        directory=directory if cfg.consistency_check else None,
    )
    if on_welcome is not None:
        on_welcome(uid, np.asarray(inputs), vec)
    rounds: list[str] = []
    sent_input = False  # once the masked input is out, only the server knows if it is in the sum

    def outcome(status: str, reason: str) -> ClientOutcome:
        return ClientOutcome(uid, [], None if sent_input else False, rounds, vec, status=status,
                             reason=reason if sent_input else f"{reason} before this client sent its masked input",
                             clipped=clipped)

    while True:
        try:
            kind, body = await _read(reader, max_frame, timeout)
        except ProtocolAbort as exc:
            if not sent_input:
                raise
            return outcome("connection lost", f"{exc.reason} after this client sent its masked input")
        if kind == KIND_DONE:
            survivors, dropped = _done(body)
            included = uid in survivors
            reason = "" if included else (
                f"the server dropped this client at {dropped[uid]}" if uid in dropped else "not among the survivors")
            return ClientOutcome(uid, survivors, included, rounds, vec, reason=reason, dropped=dropped,
                                 clipped=clipped)
        if kind == KIND_ABORT:
            raise _refused(body, "the server aborted the session")
        if kind != KIND_PROTOCOL:
            raise DecodeError(f"unexpected frame kind {kind:#x} from the server")
        msg = decode_message(body)
        if getattr(msg, "session", session) != session:
            raise ProtocolViolation("a protocol message names another session than the one this client registered in")
        opened = OPENS.get(type(msg))
        rname = opened.value if opened is not None else None
        if rname is not None and rname == crash_at:
            on_crash(writer)
            return outcome("crashed", f"crashed at {rname}")
        if rname is not None and rname == stall_at:
            stalled = await _stall(reader, uid, rounds, vec, max_frame, sent_input, rname)
            stalled.clipped = clipped
            return stalled
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
            sent_input = sent_input or rname == "masked_input"


async def _stall(reader, uid, rounds, vec, max_frame, sent_input, rname) -> ClientOutcome:
    """Fault injection: answer nothing more, but keep reading until the session ends, so
    the outcome says what the server decided (a stalled client that already sent its
    masked input may well be in the sum)."""
    while True:
        try:
            payload = await read_frame(reader, max_frame)
            kind, body = split_payload(payload)
        except (asyncio.IncompleteReadError, ConnectionError, OSError, DecodeError):
            break
        if kind == KIND_DONE:
            survivors, dropped = _done(body)
            included = uid in survivors
            return ClientOutcome(uid, survivors, included, rounds, vec, status="stalled",
                                 reason="" if included else f"stalled at {rname}", dropped=dropped)
        if kind == KIND_ABORT:
            return ClientOutcome(uid, [], False, rounds, vec, status="stalled", reason="the session aborted")
    if sent_input:
        return ClientOutcome(uid, [], None, rounds, vec, status="stalled",
                             reason=f"stalled at {rname} after sending its masked input; the server closed the "
                                    "connection without saying whether the input is in the sum")
    return ClientOutcome(uid, [], False, rounds, vec, status="stalled",
                         reason=f"stalled at {rname} before sending its masked input")


def participate(host: str, port: int, inputs: np.ndarray, **kwargs) -> ClientOutcome:
    """Blocking helper: ``asyncio.run(run_client(host, port, inputs, **kwargs))``."""
    return asyncio.run(run_client(host, port, inputs, **kwargs))
