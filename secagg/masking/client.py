"""SecAgg / SecAgg+ client as a sans-IO state machine (Bonawitz et al. CCS 2017, Fig. 4;
Bell et al. CCS 2020).

``Client.receive(message) -> list[Message]``: one server message in, the client's answer
out. No sockets, threads or clocks; the transitions are looked up in
:data:`secagg.masking.rounds.CLIENT_TRANSITIONS`. Every handler computes its answer and
the new state *first* and commits only when everything validated, so a rejected message
(any :class:`~secagg.errors.ProtocolError`) leaves the client exactly as it was.

Session binding (:mod:`secagg.masking.transcript`): once the keys are broadcast, the
client rebuilds the session identity ``R`` from its own fresh keys, its neighbours' keys,
the Merkle inclusion proof and its own parameters, and binds every key derivation, share
ciphertext and signature of the rest of the session to ``R``: nothing signed or encrypted
in another session (or under another view of this one) verifies.

Malicious neighbours: a share ciphertext that fails authentication does not abort the
client; it leaves that neighbour out of its masks and reports it in ``complaints`` of its
masked input, and the server excludes it (see :mod:`secagg.masking.server`).

Secrets: X25519 keys and the 32-byte self-mask seed ``b_u`` come from the OS CSPRNG
(``secagg.keys`` / ``secrets``); masks are AES-CTR expansions (``secagg.prg``) of
HKDF-derived 32-byte seeds.
"""

from __future__ import annotations

import hashlib
import secrets
import struct
from typing import Mapping

import numpy as np

from .. import keys, prg, shamir
from ..errors import (
    DecodeError,
    DuplicateMessage,
    InputError,
    IntegrityError,
    ProtocolAbort,
    ProtocolViolation,
    UnexpectedMessage,
)
from .config import (
    PAIR_MASK_LABEL,
    SEED_LEN,
    SELF_MASK_LABEL,
    MaskingConfig,
    advertise_payload,
    pair_info,
    survivors_payload,
)
from .graph import Graph
from .transcript import absent_leaf, leaf_hash, root_from_proof, session_identity
from .messages import (
    AdvertiseKeys,
    ConsistencyRequest,
    ConsistencyResponse,
    ForwardShares,
    KeysBroadcast,
    MaskedInput,
    Message,
    ShareKeys,
    StartSession,
    UnmaskRequest,
    UnmaskResponse,
)
from .rounds import CLIENT_ROUND_OF_STATE, CLIENT_TRANSITIONS

__all__ = ["Client", "SHARE_LIMBS", "seed_commitment"]

#: field limbs per 32-byte secret in :mod:`secagg.shamir`
SHARE_LIMBS = shamir.num_limbs(SEED_LEN)
#: AEAD round number bound into the share ciphertexts' associated data
SHARE_ROUND = 1


class Client:
    """One client ``party_id`` holding ``vector`` (1-D ring array of length ``config.dim``).

    ``signing_key`` (:class:`secagg.keys.SigningKey`) and ``directory`` (mapping party id
    -> 32-byte Ed25519 public key, the PKI) are required when
    ``config.consistency_check`` is True.

    Raises :class:`InputError` for a vector of the wrong shape, dtype or range.
    """

    def __init__(
        self,
        party_id: int,
        config: MaskingConfig,
        graph: Graph,
        vector: np.ndarray,
        *,
        signing_key: keys.SigningKey | None = None,
        directory: Mapping[int, bytes] | None = None,
    ) -> None:
        if not isinstance(party_id, (int, np.integer)) or not 0 <= party_id < config.n:
            raise InputError(f"party_id must be in [0, {config.n}), got {party_id!r}")
        vec = np.asarray(vector)
        if vec.shape != (config.dim,) or vec.dtype != config.dtype:
            raise InputError(
                f"client vector must have shape ({config.dim},) and dtype {config.dtype}, "
                f"got {vec.shape} {vec.dtype}"
            )
        if config.bits < vec.dtype.itemsize * 8 and vec.size and int(vec.max()) >> config.bits:
            raise InputError(f"client vector has values outside the {config.bits}-bit ring")
        if config.consistency_check and (signing_key is None or directory is None):
            raise InputError("the active variant (consistency_check=True) needs signing_key and directory")
        if not isinstance(graph, Graph) or graph.n != config.n or graph.k != config.k:
            raise InputError(
                f"graph ({getattr(graph, 'n', '?')} clients, degree {getattr(graph, 'k', '?')}) is not the "
                f"config's ({config.n} clients, degree {config.k}): the threshold is set for the config's graph"
            )
        self.id = int(party_id)
        self.config = config
        self.graph = graph
        self._vector = np.ascontiguousarray(vec)
        self._signing_key = signing_key
        self._directory = dict(directory or {})
        self._holders = graph.holders(self.id)
        self._holder_set = frozenset(int(v) for v in self._holders)
        self._digest = config.digest(graph)
        # mutable protocol state (only changed by _commit)
        self.state = "idle"
        self._seen: frozenset[str] = frozenset()
        self.session: bytes | None = None
        self._c_key: keys.AgreementKey | None = None
        self._s_key: keys.AgreementKey | None = None
        self._peers: dict[int, tuple[bytes, bytes]] = {}
        self._enc_keys: dict[int, bytes] = {}
        self._mask_seeds: dict[int, bytes] = {}  # peer -> pairwise mask seed s_{u,v}
        self._b: bytes | None = None
        self._shares: dict[int, np.ndarray] = {}  # owner -> (2, L) uint32 (row 0: b, row 1: sk)
        self._u2: frozenset[int] = frozenset()
        self._R: bytes | None = None  # session identity (transcript hash)
        self.complaints: tuple[int, ...] = ()
        self._signed_survivors: tuple[int, ...] | None = None
        self.revealed: dict[str, tuple[int, ...]] = {}

    # ------------------------------------------------------------------ public
    def receive(self, message: Message) -> list[Message]:
        """Process one server message; return the messages to send to the server.

        Raises (state unchanged): :class:`UnexpectedMessage` (wrong round or session),
        :class:`DuplicateMessage` (a message type already processed),
        :class:`ProtocolViolation` (content against the rules, e.g. a request to reveal
        both shares of a peer, or a key transcript that does not verify),
        :class:`ProtocolAbort` (fewer than ``t`` live holders, or a survivor set below
        ``min_survivors``), :class:`IntegrityError` (a bad, replayed or foreign
        signature). A tampered share ciphertext is not an error: it becomes a complaint.
        """
        kind = type(message).__name__
        where = f"client {self.id} in state {self.state!r} (round {CLIENT_ROUND_OF_STATE[self.state]})"
        if self.state == "aborted":
            raise UnexpectedMessage(f"{kind} reached {where}: the client aborted and answers nothing")
        nxt = CLIENT_TRANSITIONS.get((self.state, kind))
        if nxt is None:
            if kind in self._seen:
                raise DuplicateMessage(f"{kind} reached {where} a second time (duplicate or replay)")
            raise UnexpectedMessage(f"{kind} is not allowed for {where}")
        if getattr(message, "recipient", self.id) != self.id:
            raise ProtocolViolation(f"{kind} addressed to client {message.recipient} was delivered to {where}")
        if self.session is not None and message.session != self.session:
            raise UnexpectedMessage(f"{kind} belongs to another session than the one of {where} (replay?)")
        out, updates = getattr(self, f"_on_{kind}")(message, where)
        self.__dict__.update(updates)
        self.state = nxt
        self._seen = self._seen | {kind}
        return out

    def snapshot(self) -> dict:
        """A comparable copy of the mutable protocol state (for tests and debugging)."""
        return {
            "state": self.state,
            "seen": self._seen,
            "session": self.session,
            "c_pk": self._c_key.public_bytes() if self._c_key else None,
            "s_pk": self._s_key.public_bytes() if self._s_key else None,
            "peers": dict(self._peers),
            "enc_keys": dict(self._enc_keys),
            "mask_seeds": dict(self._mask_seeds),
            "b": self._b,
            "shares": {v: s.tobytes() for v, s in self._shares.items()},
            "u2": self._u2,
            "R": self._R,
            "complaints": self.complaints,
            "signed": self._signed_survivors,
            "revealed": dict(self.revealed),
        }

    # ------------------------------------------------------------------ rounds
    def _on_StartSession(self, m: StartSession, where: str):
        if not 16 <= len(m.session) <= 32:
            raise ProtocolViolation(f"StartSession for {where}: session id must be 16..32 bytes")
        c_key, s_key = keys.AgreementKey.generate(), keys.AgreementKey.generate()
        c_pk, s_pk = c_key.public_bytes(), s_key.public_bytes()
        sig = b""
        if self.config.consistency_check:
            sig = self._signing_key.sign(advertise_payload(self._digest, m.session, self.id, c_pk, s_pk))
        out = AdvertiseKeys(m.session, self.id, c_pk, s_pk, sig)
        return [out], {"session": m.session, "_c_key": c_key, "_s_key": s_key}

    def _session_identity(self, m: KeysBroadcast, peers: dict[int, tuple[bytes, bytes]], where: str) -> bytes:
        """Rebuild ``R`` from the holders' leaves (own keys, neighbours' keys, absent
        leaves for silent neighbours) and the server's inclusion proof."""
        known: dict[int, bytes] = {}
        for a, b in self.graph.holder_runs(self.id):
            for pos in range(a, b + 1):
                v = self.graph.party_at(pos)
                if v == self.id:
                    known[pos] = leaf_hash(v, self._c_key.public_bytes(), self._s_key.public_bytes())
                elif v in peers:
                    known[pos] = leaf_hash(v, *peers[v])
                else:
                    known[pos] = absent_leaf(v)
        root = root_from_proof(self.config.n, known, m.proof)
        if root is None:
            raise ProtocolViolation(f"KeysBroadcast for {where}: the key-transcript proof has the wrong shape")
        return session_identity(self._digest, self.session, root)

    def _on_KeysBroadcast(self, m: KeysBroadcast, where: str):
        cfg = self.config
        ids = [int(e[0]) for e in m.entries]
        if len(set(ids)) != len(ids):
            raise ProtocolViolation(f"KeysBroadcast for {where} lists a client twice")
        strangers = [v for v in ids if v not in self._holder_set or v == self.id]
        if strangers:
            raise ProtocolViolation(
                f"KeysBroadcast for {where} carries keys of {strangers[:5]}, who are not its neighbours"
            )
        all_pks = [self._c_key.public_bytes(), self._s_key.public_bytes()]
        all_pks += [pk for e in m.entries for pk in (e[1], e[2])]
        if len(set(all_pks)) != len(all_pks):
            raise ProtocolViolation(f"KeysBroadcast for {where} repeats a public key (all keys must differ)")
        if len(ids) + 1 < cfg.threshold:
            raise ProtocolAbort(
                f"client {self.id}: only {len(ids) + 1} of its share holders advertised keys, "
                f"fewer than the threshold t={cfg.threshold}"
            )
        if cfg.consistency_check:
            for v, c_pk, s_pk, sig in m.entries:
                if v not in self._directory:
                    raise ProtocolViolation(f"KeysBroadcast for {where}: client {v} has no verification key")
                try:
                    keys.verify_signature(
                        self._directory[v], advertise_payload(self._digest, self.session, v, c_pk, s_pk), sig
                    )
                except IntegrityError:
                    raise IntegrityError(
                        f"KeysBroadcast for {where}: the signature on client {v}'s keys is invalid "
                        "(forged, replayed, or signed for other session parameters)"
                    ) from None
        peers = {int(v): (bytes(c), bytes(s)) for v, c, s, _ in m.entries}
        R = self._session_identity(m, peers, where)
        # both agreements per peer happen here, once the keys are known, so the
        # masked-input round is only share authentication and mask expansion
        enc_keys, mask_seeds = {}, {}
        for v, (c_pk, s_pk) in peers.items():
            try:
                c_shared = self._c_key.exchange(c_pk)
                s_shared = self._s_key.exchange(s_pk)
            except (IntegrityError, InputError) as exc:
                raise ProtocolViolation(f"KeysBroadcast for {where}: client {v}'s key is invalid ({exc})") from None
            enc_keys[v] = keys.hkdf(c_shared, info=pair_info(R, self.id, v, b"share-encryption"))
            mask_seeds[v] = keys.hkdf(s_shared, info=pair_info(R, self.id, v, b"mask"))
        b = secrets.token_bytes(SEED_LEN)
        holders = sorted([self.id, *peers])
        values = shamir.split_batch([b, self._s_key.to_bytes()], cfg.threshold, [h + 1 for h in holders])
        cts = []
        own = None
        for row, v in enumerate(holders):
            if v == self.id:
                own = values[row].copy()
                continue
            ad = keys.associated_data(session=R, round=SHARE_ROUND, sender=self.id, recipient=v)
            cts.append((v, keys.aead_encrypt(enc_keys[v], shamir.encode_share_values(values[row]), ad)))
        out = ShareKeys(self.session, self.id, tuple(cts))
        return [out], {
            "_R": R,
            "_peers": peers,
            "_enc_keys": enc_keys,
            "_mask_seeds": mask_seeds,
            "_b": b,
            "_shares": {self.id: own},
        }

    def _on_ForwardShares(self, m: ForwardShares, where: str):
        cfg = self.config
        senders = [int(v) for v, _ in m.ciphertexts]
        if len(set(senders)) != len(senders):
            raise ProtocolViolation(f"ForwardShares for {where} carries two ciphertexts from one client")
        unknown = [v for v in senders if v not in self._peers]
        if unknown:
            raise ProtocolViolation(
                f"ForwardShares for {where} carries shares from {unknown[:5]}, whose keys it never received"
            )
        shares = dict(self._shares)
        complaints = []
        for v, ct in m.ciphertexts:
            ad = keys.associated_data(session=self._R, round=SHARE_ROUND, sender=v, recipient=self.id)
            try:
                shares[v] = shamir.decode_share_values(keys.aead_decrypt(self._enc_keys[v], ct, ad), 2, SHARE_LIMBS)
            except (IntegrityError, DecodeError, InputError):
                # a tampered, misrouted or malformed share: do not mask with v, report it
                complaints.append(int(v))
        accepted = sorted(set(senders) - set(complaints))
        if len(accepted) + 1 < cfg.threshold:
            raise ProtocolAbort(
                f"client {self.id}: only {len(accepted) + 1} of its share holders sent valid shares, "
                f"fewer than the threshold t={cfg.threshold}"
            )
        # masked input y_u = x_u + PRG(b_u) + sum_v sign(u, v) PRG(s_uv)  (mod 2^bits)
        seeds = [self._mask_seeds[v] for v in accepted]
        signs = [1 if self.id < v else -1 for v in accepted]
        y = self._vector.copy()
        prg.add_mask(y, self._b, 1, label=SELF_MASK_LABEL)
        if seeds:
            prg.add_masks(y, seeds, signs, label=PAIR_MASK_LABEL)
        _reduce(y, cfg.bits)
        out = MaskedInput(
            self.session, self.id, cfg.bits, y, seed_commitment(self._R, self.id, self._b), tuple(sorted(complaints))
        )
        return [out], {
            "_shares": shares,
            "_u2": frozenset(accepted) | {self.id},
            "complaints": tuple(sorted(complaints)),
        }

    def _check_survivors(self, kind: str, n: int, survivors, where: str) -> None:
        cfg = self.config
        if n != cfg.n:
            raise ProtocolViolation(f"{kind} for {where} describes {n} clients, the session has {cfg.n}")
        s = set(survivors)
        if self.id not in s:
            raise ProtocolViolation(f"{kind} for {where} leaves out client {self.id}, whose input was sent")
        strangers = [v for v in s & self._holder_set if v not in self._u2]
        if strangers:
            raise ProtocolViolation(
                f"{kind} for {where} counts {strangers[:5]} as survivors, but it holds no valid shares from them"
            )
        live = len(s & self._holder_set)
        if live < cfg.threshold:
            raise ProtocolAbort(
                f"client {self.id}: only {live} of its share holders survived, fewer than t={cfg.threshold}"
            )
        if len(s) < cfg.min_survivors:
            raise ProtocolAbort(
                f"client {self.id}: the survivor set has {len(s)} clients, below the session's floor "
                f"min_survivors={cfg.min_survivors}; it refuses to unmask a smaller aggregate"
            )

    def _on_ConsistencyRequest(self, m: ConsistencyRequest, where: str):
        if not self.config.consistency_check:
            raise UnexpectedMessage(f"ConsistencyRequest reached {where}, but this session has no consistency check")
        self._check_survivors("ConsistencyRequest", m.n, m.survivors, where)
        sig = self._signing_key.sign(survivors_payload(self._R, m.n, m.survivors))
        return [ConsistencyResponse(self.session, self.id, sig)], {"_signed_survivors": tuple(m.survivors)}

    def _on_UnmaskRequest(self, m: UnmaskRequest, where: str):
        cfg = self.config
        if cfg.consistency_check and self.state == "input_sent":
            raise UnexpectedMessage(f"UnmaskRequest reached {where} before the consistency check")
        both = sorted(set(m.survivors) & set(m.dropped))
        if both:
            raise ProtocolViolation(
                f"UnmaskRequest for {where} asks for both the self-mask share and the key share of "
                f"client(s) {both[:5]}: revealing both would unmask their inputs, so an honest client refuses"
            )
        if self.id in m.dropped:
            raise ProtocolViolation(f"UnmaskRequest for {where} counts client {self.id} itself as dropped")
        self._check_survivors("UnmaskRequest", m.n, m.survivors, where)
        if cfg.consistency_check:
            if tuple(m.survivors) != self._signed_survivors:
                raise ProtocolViolation(
                    f"UnmaskRequest for {where} names a survivor set different from the one it signed"
                )
            ids = [int(v) for v, _ in m.signatures]
            if len(set(ids)) != len(ids):
                raise ProtocolViolation(f"UnmaskRequest for {where} lists a signer twice")
            survivor_set = frozenset(m.survivors)  # a tuple scan here was O(n) per signer
            bad = [v for v in ids if v not in self._holder_set or v not in survivor_set or v not in self._directory]
            if bad:
                raise ProtocolViolation(f"UnmaskRequest for {where} carries signatures of non-holders {bad[:5]}")
            payload = survivors_payload(self._R, m.n, m.survivors)
            for v, sig in m.signatures:
                try:
                    keys.verify_signature(self._directory[v], payload, sig)
                except IntegrityError:
                    raise IntegrityError(
                        f"UnmaskRequest for {where}: client {v}'s signature over the survivor set is invalid "
                        "(forged, replayed from another session, or over another view)"
                    ) from None
            if len(ids) < cfg.threshold:
                raise ProtocolAbort(
                    f"client {self.id}: only {len(ids)} holders signed the survivor set, fewer than t={cfg.threshold}"
                )
        survivors = sorted(set(m.survivors) & self._u2)
        dropped = sorted(set(m.dropped) & self._u2)
        self_shares = tuple((v, shamir.encode_share_values(self._shares[v][0:1])) for v in survivors)
        key_shares = tuple((v, shamir.encode_share_values(self._shares[v][1:2])) for v in dropped)
        out = UnmaskResponse(self.session, self.id, self_shares, key_shares)
        return [out], {"revealed": {"self_mask": tuple(survivors), "mask_key": tuple(dropped)}}


def seed_commitment(session: bytes, party: int, seed: bytes) -> bytes:
    """SHA-256 commitment to a self-mask seed, bound to the session identity and the owner
    (the server checks the seed it rebuilds against it)."""
    return hashlib.sha256(b"secagg/b-commit/v2" + session + struct.pack(">I", party) + seed).digest()


def _reduce(arr: np.ndarray, bits: int) -> None:
    """In place ``arr &= 2^bits - 1`` for rings narrower than the dtype."""
    if bits < arr.dtype.itemsize * 8:
        arr &= arr.dtype.type((1 << bits) - 1)
