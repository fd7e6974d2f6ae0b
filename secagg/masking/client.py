"""SecAgg / SecAgg+ client as a sans-IO state machine (Bonawitz et al. CCS 2017, Fig. 4;
Bell et al. CCS 2020).

``Client.receive(message) -> list[ClientMessage]``: one server message in, the client's answer
out. No sockets, threads or clocks. Which handler may run in which state, and which state
it must produce, is the table of :func:`secagg.masking.rounds.client_transitions`; the
handlers below check the message's content and compute the answer and the next state (a
frozen dataclass of :mod:`~secagg.masking.rounds`). The client commits the next state only
once the handler returned, so a rejected message (any :class:`~secagg.errors.ProtocolError`
or :class:`~secagg.errors.ProtocolAbort`) leaves the client exactly as it was.

Session binding (:mod:`secagg.masking._transcript`): once the keys are broadcast, the
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
import hmac
import secrets
import struct
from typing import Callable, Mapping, Sequence

import numpy as np

from .. import keys, prg, shamir
from ..errors import (
    ErrorContext,
    DecodeError,
    DuplicateMessage,
    InputError,
    IntegrityError,
    ProtocolAbort,
    ProtocolViolation,
    Reason,
    UnexpectedMessage,
)
from ..quantize import reduce_to_ring
from .config import (
    PAIR_MASK_LABEL,
    SEED_LEN,
    SELF_MASK_LABEL,
    MaskingConfig,
    advertise_payload,
    consistency_mac,
    pair_info,
    pair_keys,
    voucher_digest,
)
from ._graph import Graph
from ._messages import (
    AdvertiseKeys,
    ConsistencyRequest,
    ConsistencyResponse,
    ForwardShares,
    KeysBroadcast,
    MaskedInput,
    ClientMessage,
    Message,
    PartySet,
    ShareKeys,
    StartSession,
    UnmaskRequest,
    UnmaskResponse,
)
from .rounds import (
    ClientDone,
    ClientIdle,
    ClientState,
    InputSent,
    KeysAdvertised,
    KeysShared,
    SurvivorsVouched,
    client_transitions,
)
from ._transcript import absent_leaf, leaf_hash, root_from_proof, session_identity

__all__ = ["Client"]

#: field limbs per 32-byte secret in :mod:`secagg.shamir`
SHARE_LIMBS = shamir.num_limbs(SEED_LEN)
#: AEAD round number bound into the share ciphertexts' associated data
SHARE_ROUND = 1


def seed_commitment(session: bytes, party: int, seed: bytes) -> bytes:
    """SHA-256 commitment to a self-mask seed, bound to the session identity and the owner
    (the server checks the seed it rebuilds against it)."""
    return hashlib.sha256(b"secagg/b-commit/v2" + session + struct.pack(">I", party) + seed).digest()


class Client:
    """One client ``party_id`` holding ``vector`` (1-D ring array of length ``config.dim``).

    ``signing_key`` (:class:`secagg.keys.SigningKey`) and ``directory`` (mapping party id
    -> 32-byte Ed25519 public key, the PKI) are required against an active server
    (``config.consistency_check``).

    Attributes
    ----------
    state:
        the current :data:`~secagg.masking.rounds.ClientState` (a frozen dataclass).

    Raises
    ------
    InputError
        a vector of the wrong shape, dtype or range, a graph other than the config's, or
        missing keys for the active variant.
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
            raise InputError("the active-server variant needs signing_key and directory (the PKI)")
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
        self._holders = graph.holders(self.id)  # sorted int64, itself included
        self._holder_set = frozenset(self._holders.tolist())
        # only its holders' verification keys: O(k) per client, not a copy of the whole PKI
        self._directory = {v: directory[v] for v in self._holder_set if v in directory} if directory else {}
        self._digest = config.digest(graph)
        self._table = client_transitions(config.consistency_check)
        self.state: ClientState = ClientIdle()
        self._seen: frozenset[type] = frozenset()

    # ------------------------------------------------------------------ public
    def receive(self, message: Message) -> list[ClientMessage]:
        """Process one server message; return the messages to send to the server.

        Raises (state unchanged): :class:`UnexpectedMessage` (wrong round or session),
        :class:`DuplicateMessage` (a message type already processed),
        :class:`ProtocolViolation` (content against the rules, e.g. a request to reveal
        both shares of a peer, or a key transcript that does not verify),
        :class:`ProtocolAbort` (fewer than ``t`` live holders, or a survivor set below
        ``min_survivors``), :class:`IntegrityError` (a bad, replayed or foreign
        signature). A tampered share ciphertext is not an error: it becomes a complaint.
        Every error carries ``party`` (this client), ``round`` and ``code``.
        """
        kind = type(message)
        st = self.state
        rnd = getattr(st, "round", None)
        where = f"client {self.id} in state {type(st).__name__}"
        err = ErrorContext(party=self.id, round=rnd.value if rnd is not None else None)
        nxt = self._table.get((type(st), kind))
        if nxt is None:
            if kind in self._seen:
                raise DuplicateMessage(f"{kind.__name__} reached {where} a second time (duplicate or replay)", **err)
            raise UnexpectedMessage(f"{kind.__name__} is not allowed for {where}", **err)
        if getattr(message, "recipient", self.id) != self.id:
            raise ProtocolViolation(
                f"{kind.__name__} addressed to client {getattr(message, 'recipient', None)} was delivered to {where}",
                code=Reason.WRONG_RECIPIENT, **err)
        nonce = getattr(st, "nonce", None)
        if nonce is not None and message.session != nonce:
            raise UnexpectedMessage(f"{kind.__name__} belongs to another session than the one of {where} (replay?)",
                                    code=Reason.WRONG_SESSION, **err)
        replies, new_state = _HANDLERS[kind](self, st, message, where)
        if type(new_state) is not nxt:  # pragma: no cover - a handler that breaks the table is a bug
            raise AssertionError(f"{kind.__name__} handler produced {type(new_state).__name__}, table says {nxt.__name__}")
        self.state = new_state
        self._seen = self._seen | {kind}
        return replies

    def snapshot(self) -> tuple[ClientState, frozenset[type]]:
        """The (immutable) protocol state, for tests and debugging: compare with ``==``."""
        return (self.state, self._seen)

    # ------------------------------------------------------------------ rounds
    def _on_start(self, st: ClientIdle, m: StartSession, where: str) -> tuple[list[ClientMessage], KeysAdvertised]:
        if not 16 <= len(m.session) <= 32:
            raise ProtocolViolation(f"StartSession for {where}: session id must be 16..32 bytes", party=self.id)
        c_key, s_key = keys.AgreementKey.generate(), keys.AgreementKey.generate()
        c_pk, s_pk = c_key.public_bytes(), s_key.public_bytes()
        sig = b""
        if self._signing_key is not None and self.config.consistency_check:
            sig = self._signing_key.sign(advertise_payload(self._digest, m.session, self.id, c_pk, s_pk))
        return [AdvertiseKeys(m.session, self.id, c_pk, s_pk, sig)], KeysAdvertised(m.session, c_key, s_key)

    def _session_identity(self, st: KeysAdvertised, m: KeysBroadcast, peers: Mapping[int, tuple[bytes, bytes]],
                          where: str) -> bytes:
        """Rebuild ``R`` from the holders' leaves (own keys, neighbours' keys, absent
        leaves for silent neighbours) and the server's inclusion proof."""
        known: dict[int, bytes] = {}
        for a, b in self.graph.holder_runs(self.id):
            for pos in range(a, b + 1):
                v = self.graph.party_at(pos)
                if v == self.id:
                    known[pos] = leaf_hash(v, st.c_key.public_bytes(), st.s_key.public_bytes())
                elif v in peers:
                    known[pos] = leaf_hash(v, *peers[v])
                else:
                    known[pos] = absent_leaf(v)
        root = root_from_proof(self.config.n, known, m.proof)
        if root is None:
            raise ProtocolViolation(f"KeysBroadcast for {where}: the key-transcript proof has the wrong shape",
                                    party=self.id, round="share_keys", code=Reason.BAD_TRANSCRIPT)
        return session_identity(self._digest, st.nonce, root)

    def _on_keys(self, st: KeysAdvertised, m: KeysBroadcast, where: str) -> tuple[list[ClientMessage], KeysShared]:
        cfg, err = self.config, ErrorContext(party=self.id, round="share_keys")
        ids = [int(e[0]) for e in m.entries]
        if len(set(ids)) != len(ids):
            raise ProtocolViolation(f"KeysBroadcast for {where} lists a client twice", **err)
        strangers = [v for v in ids if v not in self._holder_set or v == self.id]
        if strangers:
            raise ProtocolViolation(
                f"KeysBroadcast for {where} carries keys of {strangers[:5]}, who are not its neighbours", **err)
        all_pks = [st.c_key.public_bytes(), st.s_key.public_bytes()] + [pk for e in m.entries for pk in (e[1], e[2])]
        if len(set(all_pks)) != len(all_pks):
            raise ProtocolViolation(f"KeysBroadcast for {where} repeats a public key (all keys must differ)", **err)
        if len(ids) + 1 < cfg.threshold:
            raise ProtocolAbort(
                f"client {self.id}: only {len(ids) + 1} of its share holders advertised keys, "
                f"fewer than the threshold t={cfg.threshold}", code=Reason.BELOW_THRESHOLD, **err)
        if cfg.consistency_check:
            for v, c_pk, s_pk, sig in m.entries:
                if v not in self._directory:
                    raise ProtocolViolation(f"KeysBroadcast for {where}: client {v} has no verification key", **err)
                try:
                    keys.verify_signature(self._directory[v], advertise_payload(self._digest, st.nonce, v, c_pk, s_pk),
                                          sig)
                except IntegrityError:
                    raise IntegrityError(
                        f"KeysBroadcast for {where}: the signature on client {v}'s keys is invalid "
                        "(forged, replayed, or signed for other session parameters)",
                        code=Reason.BAD_SIGNATURE, **err) from None
        peers = {int(v): (bytes(c), bytes(s)) for v, c, s, _ in m.entries}
        R = self._session_identity(st, m, peers, where)
        # both agreements per peer happen here, once the keys are known, so the
        # masked-input round is only share authentication and mask expansion
        enc_keys, mask_seeds, mac_keys = {}, {}, {}
        voucher = cfg.consistency_check
        for v, (c_pk, s_pk) in peers.items():
            try:
                c_shared = st.c_key.exchange(c_pk)
                s_shared = st.s_key.exchange(s_pk)
            except (IntegrityError, InputError) as exc:
                raise ProtocolViolation(f"KeysBroadcast for {where}: client {v}'s key is invalid ({exc})",
                                        **err) from None
            enc_keys[v], mac = pair_keys(c_shared, R, self.id, v, voucher)
            if voucher:
                mac_keys[v] = mac
            mask_seeds[v] = keys.hkdf(s_shared, info=pair_info(R, self.id, v, b"mask"))
        b = secrets.token_bytes(SEED_LEN)
        holders = sorted([self.id, *peers])
        values = shamir.split_batch([b, st.s_key.to_bytes()], cfg.threshold, [h + 1 for h in holders])
        me = holders.index(self.id)
        own = values[me].copy()
        row = shamir.VALUE_BYTES * values[0].size  # encoded bytes per holder
        encoded = shamir.encode_share_values(values)
        others = [(j, v) for j, v in enumerate(holders) if v != self.id]
        ads = keys.associated_data_many(session=R, round=SHARE_ROUND, pairs=((self.id, v) for _, v in others))
        cts = [(v, keys.aead_encrypt(enc_keys[v], encoded[j * row:(j + 1) * row], ad))
               for (j, v), ad in zip(others, ads)]
        nxt = KeysShared(st.nonce, R, peers, enc_keys, mask_seeds, mac_keys, b, own)
        return [ShareKeys(st.nonce, self.id, tuple(cts))], nxt

    def _on_forward(self, st: KeysShared, m: ForwardShares, where: str) -> tuple[list[ClientMessage], InputSent]:
        cfg, err = self.config, ErrorContext(party=self.id, round="masked_input")
        senders = [int(v) for v, _ in m.ciphertexts]
        if len(set(senders)) != len(senders):
            raise ProtocolViolation(f"ForwardShares for {where} carries two ciphertexts from one client", **err)
        unknown = [v for v in senders if v not in st.peers]
        if unknown:
            raise ProtocolViolation(
                f"ForwardShares for {where} carries shares from {unknown[:5]}, whose keys it never received", **err)
        shares = {self.id: st.own_share}
        complaints = []
        ads = keys.associated_data_many(session=st.R, round=SHARE_ROUND, pairs=((v, self.id) for v in senders))
        plain: list[bytes | None] = []
        for (v, ct), ad in zip(m.ciphertexts, ads):
            try:
                plain.append(keys.aead_decrypt(st.enc_keys[v], ct, ad))
            except (IntegrityError, DecodeError, InputError):
                plain.append(None)
        for v, row in zip(senders, shamir.decode_share_values_many(plain, 2, SHARE_LIMBS)):
            if row is None:
                complaints.append(v)  # tampered, misrouted or malformed: do not mask with v, report it
            else:
                shares[v] = row
        accepted = sorted(set(senders) - set(complaints))
        if len(accepted) + 1 < cfg.threshold:
            raise ProtocolAbort(
                f"client {self.id}: only {len(accepted) + 1} of its share holders sent valid shares, "
                f"fewer than the threshold t={cfg.threshold}", code=Reason.BELOW_THRESHOLD, **err)
        # masked input y_u = x_u + PRG(b_u) + sum_v sign(u, v) PRG(s_uv)  (mod 2^bits)
        y = self._vector.copy()
        prg.add_mask(y, st.b, 1, label=SELF_MASK_LABEL)
        if accepted:
            prg.add_masks(y, [st.mask_seeds[v] for v in accepted], [1 if self.id < v else -1 for v in accepted],
                          label=PAIR_MASK_LABEL)
        reduce_to_ring(y, cfg.bits)
        complaints_t = tuple(sorted(complaints))
        out = MaskedInput(st.nonce, self.id, cfg.bits, y, seed_commitment(st.R, self.id, st.b), complaints_t)
        return [out], InputSent(st.nonce, st.R, shares, frozenset(accepted) | {self.id}, complaints_t,
                              st.mac_keys)

    def _check_survivors(self, st: InputSent | SurvivorsVouched, kind: str, n: int, survivors: PartySet,
                         where: str, rnd: str) -> list[int]:
        """Check a survivor set; return its members among this client's holders (itself
        included). O(k) work plus one vectorized lookup, whatever ``n``."""
        cfg, err = self.config, ErrorContext(party=self.id, round=rnd)
        if n != cfg.n:
            raise ProtocolViolation(f"{kind} for {where} describes {n} clients, the session has {cfg.n}", **err)
        if self.id not in survivors:
            raise ProtocolViolation(f"{kind} for {where} leaves out client {self.id}, whose input was sent", **err)
        live = survivors.among(self._holders)
        strangers = [v for v in live if v not in st.u2]
        if strangers:
            raise ProtocolViolation(
                f"{kind} for {where} counts {strangers[:5]} as survivors, but it holds no valid shares from them", **err)
        if len(live) < cfg.threshold:
            raise ProtocolAbort(
                f"client {self.id}: only {len(live)} of its share holders survived, fewer than t={cfg.threshold}",
                code=Reason.BELOW_THRESHOLD, **err)
        if len(survivors) < cfg.min_survivors:
            raise ProtocolAbort(
                f"client {self.id}: the survivor set has {len(survivors)} clients, below the session's floor "
                f"min_survivors={cfg.min_survivors}; it refuses to unmask a smaller aggregate",
                code=Reason.BELOW_FLOOR, **err)
        return live

    def _on_consistency(self, st: InputSent, m: ConsistencyRequest, where: str) -> tuple[list[ClientMessage], SurvivorsVouched]:
        live = self._check_survivors(st, "ConsistencyRequest", m.n, m.survivors, where, "consistency_check")
        # one voucher per live neighbour: only that neighbour can check it, and it can only
        # check it against the survivor set it was shown itself
        digest = voucher_digest(st.R, m.n, m.survivors)
        macs = tuple((v, consistency_mac(st.mac_keys[v], digest)) for v in live if v != self.id)
        return ([ConsistencyResponse(st.nonce, self.id, macs)],
                SurvivorsVouched(st.nonce, st.R, st.shares, st.u2, st.complaints, st.mac_keys, digest))

    def _on_unmask(self, st: InputSent | SurvivorsVouched, m: UnmaskRequest, where: str) -> tuple[list[ClientMessage], ClientDone]:
        err = ErrorContext(party=self.id, round="unmasking")
        both = np.flatnonzero(m.survivors.mask & m.dropped.mask).tolist()
        if both:
            raise ProtocolViolation(
                f"UnmaskRequest for {where} asks for both the self-mask share and the key share of "
                f"client(s) {both[:5]}: revealing both would unmask their inputs, so an honest client refuses",
                code=Reason.BOTH_SHARES, **err)
        if self.id in m.dropped:
            raise ProtocolViolation(f"UnmaskRequest for {where} counts client {self.id} itself as dropped", **err)
        self._check_survivors(st, "UnmaskRequest", m.n, m.survivors, where, "unmasking")
        if isinstance(st, SurvivorsVouched):
            self._check_vouchers(st, m, where)
        mine = sorted(st.u2)
        survivors = [v for v in mine if v in m.survivors]
        dropped = [v for v in mine if v in m.dropped]
        self_shares = _encode_rows(st.shares, survivors, 0)
        key_shares = _encode_rows(st.shares, dropped, 1)
        return ([UnmaskResponse(st.nonce, self.id, self_shares, key_shares)],
                ClientDone(tuple(survivors), tuple(dropped)))

    def _check_vouchers(self, st: SurvivorsVouched, m: UnmaskRequest, where: str) -> None:
        """The survivor set must be the one this client vouched for, and ``t`` of its
        holders (itself included) must have vouched for the same set in the same session.

        A voucher that does not verify is not counted (a malicious neighbour can always
        send garbage, and the server cannot check vouchers), so only the count can abort."""
        cfg, err = self.config, ErrorContext(party=self.id, round="unmasking")
        digest = voucher_digest(st.R, m.n, m.survivors)
        if digest != st.vouched:
            raise ProtocolViolation(
                f"UnmaskRequest for {where} names a survivor set different from the one it vouched for", **err)
        ids = [int(v) for v, _ in m.macs]
        if len(set(ids)) != len(ids):
            raise ProtocolViolation(f"UnmaskRequest for {where} lists a voucher's author twice", **err)
        bad = [v for v in ids if v == self.id or v not in m.survivors or v not in st.mac_keys]
        if bad:
            raise ProtocolViolation(f"UnmaskRequest for {where} carries vouchers of non-holders {bad[:5]}", **err)
        valid = 1 + sum(hmac.compare_digest(mac, consistency_mac(st.mac_keys[v], digest)) for v, mac in m.macs)
        if valid < cfg.threshold:
            raise ProtocolAbort(
                f"client {self.id}: only {valid} of its holders (itself included) vouched for the survivor set "
                f"it was shown, fewer than t={cfg.threshold} (a split view, a replay, or too many dropouts)",
                code=Reason.BELOW_THRESHOLD, **err)


#: the handler of each server message (the table in rounds.py decides when it may run)
_HANDLERS: dict[type[Message], Callable[..., tuple[list[ClientMessage], ClientState]]] = {
    StartSession: Client._on_start,
    KeysBroadcast: Client._on_keys,
    ForwardShares: Client._on_forward,
    ConsistencyRequest: Client._on_consistency,
    UnmaskRequest: Client._on_unmask,
}


def _encode_rows(shares: Mapping[int, np.ndarray], owners: Sequence[int], which: int) -> tuple[tuple[int, bytes], ...]:
    """``(owner, encoded share)`` for row ``which`` (0: self-mask seed, 1: mask key) of
    each owner's shares, encoded in one pass."""
    if not owners:
        return ()
    blob = shamir.encode_share_values(np.stack([shares[v][which] for v in owners]))
    size = len(blob) // len(owners)
    return tuple((v, blob[i * size:(i + 1) * size]) for i, v in enumerate(owners))
