"""The client side of secagg inside Flower: a mod that sits where Flower users put
``secaggplus_mod`` (Bonawitz et al. CCS 2017; Bell et al. CCS 2020; the protocol is
:class:`secagg.masking.Client`, unchanged).

``ClientApp(client_fn=..., mods=[secagg_mod(signing_key=..., trusted_keys=...)])``

The mod only moves bytes and enforces this node's policy; the protocol is the sans-IO
client. For every ``train`` message it:

1. takes the secagg message (bytes) out of the message's ``"secagg"`` record;
2. on the first message of a session (``StartSession``) parses the announcement
   (:class:`~secagg.flower._wire.Announcement`), recomputes the session nonce from its
   bytes, finds this node's party id in the sorted node ids, and builds the session's
   :class:`~secagg.masking.MaskingConfig` through its own
   :class:`~secagg.masking.SecurityPolicy` — a weaker announcement (no consistency check,
   a threshold or degree insecure under this node's threat model, a survivor floor below
   its minimum or below the distributed-DP noise floor, less noise than
   ``min_noise_multiplier``) raises :class:`~secagg.errors.InsecureParameterError`
   before anything is sent;
3. on the masked-input round (``ForwardShares``) runs the user's training
   (``call_next``), encodes the result (:mod:`secagg.flower._encoding`) and sends only the
   masked vector: the model arrays are removed from the reply;
4. rebuilds the :class:`~secagg.masking.Client` from its saved state
   (:mod:`secagg.flower._state`, in ``Context.state``, never sent), hands it the message,
   and replies with its answers and the seconds its protocol work took.

Any refusal raises (Flower turns it into an error reply; the server counts this node as
dropped) and forgets the session. A ``train`` message without a secagg record is refused:
this node sends its update only through secure aggregation.
"""

from __future__ import annotations

import dataclasses
import time
from logging import WARNING
from typing import Any, Callable, Mapping

import numpy as np

from .. import keys
from ..errors import (
    ConfigurationError,
    DecodeError,
    InsecureParameterError,
    IntegrityError,
    ProtocolViolation,
    SecAggError,
    UnexpectedMessage,
)
from ..masking.client import Client
from ..masking._messages import ForwardShares, KeysBroadcast, StartSession, decode_message
from ..masking.policy import SecurityPolicy
from ..masking.rounds import ClientDone
from ._encoding import DPEncoding
from ._state import dump_state, load_state
from ._wire import (
    K_ANNOUNCEMENT,
    K_DIRECTORY,
    K_MSG,
    K_SECONDS,
    K_VERIFY_KEY,
    RECORD,
    STATE_RECORD,
    Announcement,
    session_nonce,
    unpack_directory,
)
from .pki import load_trusted_keys

__all__ = ["SecAggMod", "secagg_mod"]

KeySource = keys.SigningKey | Callable[[Any], keys.SigningKey]


class SecAggMod:
    """A Flower client mod that takes part in secagg sessions (see the module docstring).

    Parameters
    ----------
    signing_key:
        this node's long-term Ed25519 identity (:class:`secagg.keys.SigningKey`), or a
        function of the Flower ``Context`` returning it (e.g.
        :func:`secagg.flower.pki.keys_in_directory` in simulation,
        :func:`~secagg.flower.pki.key_from_node_config` in deployment). It signs this
        node's fresh protocol keys in sessions against an active server.
    trusted_keys:
        the allow-list: an allow-list file, ``{label: key}`` or 32-byte keys. A
        neighbour whose key the server lists but that is not on it is refused
        (:class:`~secagg.errors.IntegrityError`).
    policy:
        this node's :class:`~secagg.masking.SecurityPolicy` (default: the parameter
        finder's, against an active server colluding with 5 % of the clients).
    accept_honest_but_curious:
        also accept sessions without the consistency round (shorthand for a policy whose
        threat model is honest-but-curious); a server that lies about who dropped can
        then unmask this node's input.
    min_noise_multiplier:
        refuse a session that adds less distributed-DP noise than this (in units of the
        clip norm), or none.
    insecure_no_pki:
        run the active variant without identities: a fresh signing key per session and
        whatever directory the server sends. The consistency round still runs, but the
        server can impersonate every other client. Needed (and only allowed) without
        ``signing_key`` and ``trusted_keys``.
    rng:
        :class:`numpy.random.Generator` for stochastic rounding and DP noise (default:
        AES-CTR keyed from the OS for every message; pass one only for tests).
    on_input:
        ``on_input(node_id, ring_vector)``, called in this node's process with the uint
        ``(dim,)`` vector it is about to mask (for tests and audits; nothing is sent).

    Raises
    ------
    InsecureParameterError
        no PKI for a policy that requires the active variant, without ``insecure_no_pki``.
    ConfigurationError
        contradictory or malformed options.
    """

    def __init__(
        self,
        *,
        signing_key: KeySource | None = None,
        trusted_keys: Any = None,
        policy: SecurityPolicy | None = None,
        accept_honest_but_curious: bool = False,
        min_noise_multiplier: float | None = None,
        insecure_no_pki: bool = False,
        rng: np.random.Generator | None = None,
        on_input: Callable[[int, np.ndarray], None] | None = None,
    ) -> None:
        if policy is not None and not isinstance(policy, SecurityPolicy):
            raise ConfigurationError(f"policy must be a secagg.masking.SecurityPolicy, got {type(policy).__name__}")
        security = policy or SecurityPolicy()
        if accept_honest_but_curious:
            security = dataclasses.replace(
                security, threat=dataclasses.replace(security.threat, adversary="honest-but-curious"))
        if signing_key is not None and not (isinstance(signing_key, keys.SigningKey) or callable(signing_key)):
            raise ConfigurationError("signing_key must be a secagg.keys.SigningKey or a function of the Context")
        if insecure_no_pki and (signing_key is not None or trusted_keys is not None):
            raise ConfigurationError("insecure_no_pki=True contradicts signing_key / trusted_keys: give one or "
                                     "the other")
        if not insecure_no_pki and (signing_key is None) != (trusted_keys is None):
            raise ConfigurationError("the PKI needs both signing_key (this node's key) and trusted_keys "
                                     "(the allow-list)")
        if signing_key is None and not insecure_no_pki and security.threat.active:
            raise InsecureParameterError(
                "secagg_mod needs signing_key= and trusted_keys= (the PKI of the active-server variant, see "
                "secagg.flower.pki), or insecure_no_pki=True to let the server impersonate the other clients")
        if min_noise_multiplier is not None and not (
                isinstance(min_noise_multiplier, (int, float)) and not isinstance(min_noise_multiplier, bool)
                and min_noise_multiplier > 0):
            raise ConfigurationError(f"min_noise_multiplier must be a positive number, got {min_noise_multiplier!r}")
        if on_input is not None and not callable(on_input):
            raise ConfigurationError("on_input must be callable")
        self.policy = security
        self.signing_key = signing_key
        self.trusted_keys = None if trusted_keys is None else load_trusted_keys(trusted_keys)
        self.min_noise_multiplier = None if min_noise_multiplier is None else float(min_noise_multiplier)
        self.insecure_no_pki = bool(insecure_no_pki)
        self.rng = rng
        self.on_input = on_input

    # ------------------------------------------------------------------ the mod
    def __call__(self, msg: Any, ctxt: Any, call_next: Callable[[Any, Any], Any]) -> Any:
        from flwr.app import MessageType

        if msg.metadata.message_type != MessageType.TRAIN:
            return call_next(msg, ctxt)
        record = msg.content.config_records.get(RECORD)
        if record is None:
            raise ProtocolViolation(
                "a train message without a secagg session: this node sends its update only through secure "
                "aggregation (run the server with secagg.flower.SecAggWorkflow)")
        try:
            return self._handle(msg, ctxt, call_next, record)
        except SecAggError:
            _forget(ctxt)
            raise

    def _handle(self, msg: Any, ctxt: Any, call_next: Callable[[Any, Any], Any], record: Any) -> Any:
        from flwr.app import ConfigRecord, Message, RecordDict

        t0 = time.perf_counter()
        data = record.get(K_MSG)
        if not isinstance(data, bytes):
            raise DecodeError("the secagg record carries no message bytes")
        message = decode_message(data)
        node_id = int(msg.metadata.dst_node_id)
        out: dict[str, Any] = {}
        if isinstance(message, StartSession):
            ann_bytes = record.get(K_ANNOUNCEMENT)
            ann = Announcement.from_bytes(ann_bytes)
            if message.session != session_nonce(ann_bytes):
                raise IntegrityError("the session nonce does not match the announcement (tampered or replayed)")
            saved: dict[str, Any] = {"ann": ann_bytes}
            if self.insecure_no_pki:
                saved["sk"] = keys.SigningKey.generate().to_bytes()
        else:
            saved = _saved(ctxt, type(message).__name__)
            ann_bytes = saved["ann"]
            ann = Announcement.from_bytes(ann_bytes)
            if message.session != session_nonce(ann_bytes):
                raise UnexpectedMessage(
                    f"{type(message).__name__} belongs to another session than this node's (replay?)")
        party = ann.party_of(node_id)
        cfg = self._config(ann)
        signing_key = self._signing_key(ctxt, saved) if cfg.consistency_check else None
        directory: dict[int, bytes] = {}
        if cfg.consistency_check and isinstance(message, KeysBroadcast):
            directory = self._directory(record.get(K_DIRECTORY), party, signing_key)
        vector = np.zeros(cfg.dim, dtype=cfg.dtype)  # read only at the masked-input round
        content = None
        trained = 0.0
        if isinstance(message, ForwardShares):
            t1 = time.perf_counter()
            try:
                result = call_next(msg, ctxt)
            except BaseException:
                _forget(ctxt)  # training failed: this node leaves the session
                raise
            trained = time.perf_counter() - t1
            if result.has_error():
                _forget(ctxt)
                return result  # training failed: this node drops out, as without secure aggregation
            vector = self._encode(msg, result, ann, node_id)
            content = result.content
            for arrays in content.array_records.values():
                arrays.clear()  # only the masked vector leaves this node
        client = Client(party, cfg, cfg.build_graph(ann.graph_seed), vector, signing_key=signing_key,
                        directory=directory if cfg.consistency_check else None)
        if not isinstance(message, StartSession):
            client.state = load_state(saved["state"])
        replies = client.receive(message)
        if isinstance(client.state, ClientDone):
            _forget(ctxt)
        else:
            ctxt.state.config_records[STATE_RECORD] = ConfigRecord({**saved, "state": dump_state(client.state)})
        out[K_MSG] = [r.to_bytes() for r in replies]
        if isinstance(message, StartSession) and signing_key is not None:
            out[K_VERIFY_KEY] = signing_key.public_bytes()
        out[K_SECONDS] = time.perf_counter() - t0 - trained
        if content is None:
            content = RecordDict()
        content.config_records[RECORD] = ConfigRecord(out)
        return Message(content, reply_to=msg)

    # ------------------------------------------------------------------ checks
    def _config(self, ann: Announcement):
        """The session's config from the announcement, held to this node's policy."""
        cfg = self.policy.config_for(**ann.config_fields())
        try:
            expected = ann.encoding.dim(cfg.n, cfg.bits)
            dp = ann.encoding.params(cfg.n, cfg.bits) if isinstance(ann.encoding, DPEncoding) else None
        except ConfigurationError as exc:
            raise ProtocolViolation(f"the announced vector layout is invalid: {exc}") from None
        if cfg.dim != expected:
            raise ProtocolViolation(f"the announcement's dim={cfg.dim} does not fit its vector layout "
                                    f"({expected} ring elements)")
        if dp is not None:
            if cfg.min_survivors < dp.min_clients:
                raise InsecureParameterError(
                    f"policy: the survivor floor {cfg.min_survivors} is below the {dp.min_clients} noise shares the "
                    "DP noise is calibrated for; a server dropping clients could shrink the noise")
            if self.min_noise_multiplier is not None and dp.noise_multiplier < self.min_noise_multiplier:
                raise InsecureParameterError(
                    f"policy: the server announced noise_multiplier={dp.noise_multiplier:g}, below this node's "
                    f"minimum {self.min_noise_multiplier:g}")
        elif self.min_noise_multiplier is not None:
            raise InsecureParameterError(
                f"policy: this node requires distributed-DP noise (noise_multiplier >= {self.min_noise_multiplier:g}) "
                "and the server announced a session without noise")
        return cfg

    def _signing_key(self, ctxt: Any, saved: Mapping[str, Any]) -> keys.SigningKey:
        if self.insecure_no_pki:
            return keys.SigningKey.from_bytes(saved["sk"])
        if self.signing_key is None:
            raise InsecureParameterError(
                "the server announced a session against an active server and this node has no signing key: pass "
                "signing_key= and trusted_keys= to secagg_mod (or insecure_no_pki=True)")
        key = self.signing_key if isinstance(self.signing_key, keys.SigningKey) else self.signing_key(ctxt)
        if not isinstance(key, keys.SigningKey):
            raise ConfigurationError(f"signing_key(context) returned a {type(key).__name__}, not a SigningKey")
        return key

    def _directory(self, data: Any, party: int, signing_key: keys.SigningKey | None) -> dict[int, bytes]:
        """The neighbours' verification keys the server sent, checked against the allow-list."""
        if data is None:
            raise ProtocolViolation("the server sent the neighbours' keys without their verification keys")
        entries = unpack_directory(data)
        own = signing_key.public_bytes() if signing_key is not None else None
        if party in entries and entries[party] != own:
            raise IntegrityError(f"the server's key directory lists another key for this node (party {party})")
        if self.trusted_keys is not None:
            foreign = sorted(u for u, vk in entries.items() if vk not in self.trusted_keys)
            if foreign:
                raise IntegrityError(
                    f"the server's key directory lists keys of parties {foreign[:5]} that are not on this node's "
                    "allow-list (trusted_keys)")
        return entries

    def _encode(self, msg: Any, result: Any, ann: Announcement, node_id: int) -> np.ndarray:
        import flwr.compat.common.recorddict_compat as compat
        from flwr.common import parameters_to_ndarrays
        from flwr.common.logger import log

        try:
            fitres = compat.recorddict_to_fitres(result.content, keep_input=True)
            arrays = parameters_to_ndarrays(fitres.parameters)
        except Exception as exc:  # noqa: BLE001 - whatever the ClientApp returned, say so in one line
            raise DecodeError(f"the ClientApp's training result is not a FitRes: {type(exc).__name__}") from None
        reference = None
        if isinstance(ann.encoding, DPEncoding):
            try:
                reference = parameters_to_ndarrays(compat.recorddict_to_fitins(msg.content, keep_input=True).parameters)
            except Exception:  # noqa: BLE001
                raise DecodeError("the train message carries no global model to compute the update from") from None
        vector, clipped = ann.encoding.encode(arrays, fitres.num_examples, ann.n, ann.bits, self.rng,
                                              reference=reference)
        if clipped:
            log(WARNING, "secagg: node %d clipped %d values to the session's bound %g", node_id, clipped,
                getattr(ann.encoding, "bound", float("nan")))
        if self.on_input is not None:
            self.on_input(node_id, vector.copy())
        return vector


def _saved(ctxt: Any, kind: str) -> dict[str, Any]:
    rec = ctxt.state.config_records.get(STATE_RECORD)
    if rec is None or not isinstance(rec.get("ann"), bytes) or not isinstance(rec.get("state"), bytes):
        raise UnexpectedMessage(f"{kind} arrived but this node has no secagg session in progress (it never got the "
                                "session's first message, or it left the session)")
    return dict(rec)


def _forget(ctxt: Any) -> None:
    records = ctxt.state.config_records
    if STATE_RECORD in records:
        del records[STATE_RECORD]


def secagg_mod(
    *,
    signing_key: KeySource | None = None,
    trusted_keys: Any = None,
    policy: SecurityPolicy | None = None,
    accept_honest_but_curious: bool = False,
    min_noise_multiplier: float | None = None,
    insecure_no_pki: bool = False,
    rng: np.random.Generator | None = None,
    on_input: Callable[[int, np.ndarray], None] | None = None,
) -> SecAggMod:
    """The mod to put in ``ClientApp(mods=[...])`` where Flower's ``secaggplus_mod`` was;
    the parameters are those of :class:`SecAggMod`."""
    return SecAggMod(signing_key=signing_key, trusted_keys=trusted_keys, policy=policy,
                     accept_honest_but_curious=accept_honest_but_curious, min_noise_multiplier=min_noise_multiplier,
                     insecure_no_pki=insecure_no_pki, rng=rng, on_input=on_input)
