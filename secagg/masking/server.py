"""SecAgg / SecAgg+ server as a sans-IO state machine (Bonawitz et al. CCS 2017, Fig. 4;
Bell et al. CCS 2020), hardened against malicious clients.

The server has no clock: the driver calls :meth:`Server.close_round` when a round's
deadline has passed, and the server moves on with whoever answered (the others count as
dropped from then on). ``receive`` only validates and stores; ``close_round`` returns the
next round's messages. Transitions: :data:`secagg.masking.rounds.SERVER_TRANSITIONS`.
A rejected message raises a :class:`~secagg.errors.ProtocolError` subclass and leaves the
server unchanged (the driver counts the sender as dropped and names it). Fewer than ``t``
live share holders, or fewer survivors than ``min_survivors``, at a round close raises
:class:`~secagg.errors.ProtocolAbort` (state ``"aborted"``, no partial result).

Session binding: after the keys are advertised the server builds the Merkle tree over
every client's keys (:mod:`secagg.masking.transcript`), derives the session identity
``R`` and sends each client the inclusion proof for its holders.

Malicious clients (one bad client must not stop the others):

* a share ciphertext that fails authentication is reported by its recipient in
  ``MaskedInput.complaints``; the server excludes both ends of a maximal matching of the
  accusation graph (every accusation has a misbehaving end when the server is honest, so
  at most one honest client is excluded per misbehaving one). Masked inputs are held
  until the round closes, so an excluded client's vector never enters the sum.
  :attr:`excluded` and :attr:`misbehaving` name them. If an excluded client dealt valid
  shares to fewer than ``t`` surviving holders (its key could not be rebuilt to remove its
  masks), the round aborts *before anything is revealed*, with
  :attr:`ProtocolAbort.blamed <secagg.errors.ProtocolAbort>` naming the excluded clients:
  the session released only masked vectors, so the driver reruns it without them.
* every rebuilt secret is checked: a mask key against the advertised public key, a
  self-mask seed against the sender's commitment. A failed check triggers Reed-Solomon
  (Berlekamp-Welch) decoding over all received shares, which corrects up to
  ``(m - t) / 2`` wrong shares among ``m`` and names the clients that sent them.

Unmasking: the server rebuilds the self-mask seed ``b_u`` of every survivor ``u`` in U3
and the mask private key of every client ``v`` in U2 minus U3 (shared keys, then dropped
or excluded), recomputes ``p_{v,u}`` for the survivors that masked with ``v`` and removes
all of them from the sum of the masked inputs, which leaves ``sum_{u in U3} x_u mod 2^bits``.
"""

from __future__ import annotations

import secrets
from typing import Mapping

import numpy as np

from .. import keys, prg, shamir
from ..errors import (
    DecodeError,
    DroppedParty,
    DuplicateMessage,
    InputError,
    IntegrityError,
    ProtocolAbort,
    ProtocolViolation,
    SecretSharingError,
    UnexpectedMessage,
    UnknownParty,
)
from .client import SHARE_LIMBS, _reduce, seed_commitment
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
from .messages import (
    ConsistencyRequest,
    ForwardShares,
    KeysBroadcast,
    MaskedInput,
    Message,
    StartSession,
    UnmaskRequest,
)
from .transcript import MerkleTree, absent_leaf, leaf_hash, session_identity
from .rounds import SERVER_TRANSITIONS

__all__ = ["Server"]

# which set a sender must belong to, per collecting state
_PREVIOUS = {
    "advertise_keys": "all",
    "share_keys": "u1",
    "masked_input": "u2",
    "consistency_check": "u3",
    "unmasking": "u4",
}


class Server:
    """The aggregation server of one session.

    Parameters: ``config``, ``graph`` (the same the clients use), ``session`` (16..32
    bytes, default 16 random bytes from ``secrets``), ``directory`` (party id -> Ed25519
    public key; required for the active variant).
    """

    def __init__(
        self,
        config: MaskingConfig,
        graph: Graph,
        *,
        session: bytes | None = None,
        directory: Mapping[int, bytes] | None = None,
    ) -> None:
        if session is None:
            session = secrets.token_bytes(16)
        if not isinstance(session, (bytes, bytearray)) or not 16 <= len(session) <= 32:
            raise InputError("session id must be 16..32 bytes")
        if config.consistency_check and directory is None:
            raise InputError("the active variant (consistency_check=True) needs the directory of verification keys")
        if not isinstance(graph, Graph) or graph.n != config.n or graph.k != config.k:
            raise InputError(
                f"graph ({getattr(graph, 'n', '?')} clients, degree {getattr(graph, 'k', '?')}) is not the "
                f"config's ({config.n} clients, degree {config.k}): the threshold is set for the config's graph"
            )
        self.config = config
        self.graph = graph
        self.session = bytes(session)
        self._directory = dict(directory or {})
        n = config.n
        self._holders = None if config.is_complete else np.stack([graph.holders(u) for u in range(n)])
        self.state = "idle"
        self.u1: dict[int, tuple[bytes, bytes, bytes]] = {}  # id -> (c_pk, s_pk, sig)
        self._advertised: set[bytes] = set()  # every public key in u1 (updated with it)
        self._probe_key = keys.AgreementKey.generate()  # only to test advertised points
        self.u2: dict[int, dict[int, bytes]] = {}  # sender -> {recipient: ciphertext}
        self._digest = config.digest(graph)
        self.R: bytes | None = None  # session identity, once the keys are broadcast
        self._pending: dict[int, MaskedInput] = {}  # masked inputs until the round closes
        self._complaints: dict[int, frozenset[int]] = {}
        self._b_commit: dict[int, bytes] = {}
        self.excluded: dict[int, str] = {}  # id -> why its input is not in the sum
        self.misbehaving: dict[int, str] = {}  # id -> what it did (reported or detected)
        self.u3: frozenset[int] = frozenset()
        self.u4: dict[int, bytes] = {}  # id -> signature over U3
        self.u5: dict[int, tuple[dict[int, np.ndarray], dict[int, np.ndarray]]] = {}
        self._acc = np.zeros(config.dim, dtype=config.dtype)
        self.result: np.ndarray | None = None
        self.abort_reason: str | None = None

    # ------------------------------------------------------------------ helpers
    @property
    def survivors(self) -> list[int]:
        """Sorted ids whose inputs are in the sum (U3), once the masked inputs are closed."""
        return sorted(self.u3)

    def _transition(self, event: str) -> str:
        nxt = SERVER_TRANSITIONS.get((self.state, event))
        if nxt is None:
            raise UnexpectedMessage(f"{event} is not allowed for the server in state {self.state!r}")
        return nxt

    def _alive_set(self, name: str) -> frozenset[int]:
        if name == "all":
            return frozenset(range(self.config.n))
        if name == "u4" and not self.config.consistency_check:
            return self.u3
        val = getattr(self, name)
        return frozenset(val)

    def _check_live(self, alive: frozenset[int], round_name: str) -> None:
        """ProtocolAbort unless every live client keeps >= t live holders."""
        t, n = self.config.threshold, self.config.n
        if self.config.is_complete:
            if len(alive) < t:
                self._abort(f"only {len(alive)} clients remain after {round_name}, fewer than the threshold t={t}")
            return
        mask = np.zeros(n, dtype=bool)
        mask[list(alive)] = True
        counts = mask[self._holders].sum(axis=1)
        bad = np.flatnonzero(mask & (counts < t))
        if bad.size or not alive:
            who = int(bad[0]) if bad.size else -1
            self._abort(
                f"after {round_name}, client {who} has only {int(counts[who]) if who >= 0 else 0} live share "
                f"holders, fewer than the threshold t={t}"
            )

    def _abort(self, reason: str, blamed: tuple[int, ...] = ()):
        self.state = "aborted"
        self.abort_reason = reason
        raise ProtocolAbort(reason, blamed=blamed)

    def snapshot(self) -> dict:
        """A comparable copy of the mutable protocol state (for tests and debugging)."""
        return {
            "state": self.state,
            "u1": dict(self.u1),
            "u2": {k: dict(v) for k, v in self.u2.items()},
            "u3": self.u3,
            "u4": dict(self.u4),
            "u5": {k: ({o: a.tobytes() for o, a in b.items()}, {o: a.tobytes() for o, a in s.items()})
                   for k, (b, s) in self.u5.items()},
            "acc": self._acc.tobytes(),
        }

    # ------------------------------------------------------------------ events
    def start(self) -> list[Message]:
        """Open the session: one StartSession per client."""
        nxt = self._transition("start")
        self.state = nxt
        return [StartSession(self.session, u) for u in range(self.config.n)]

    def receive(self, message: Message) -> list[Message]:
        """Validate and store one client message; returns ``[]`` (answers come at round close).

        Raises (state unchanged): :class:`UnexpectedMessage` (wrong round or session),
        :class:`UnknownParty` (sender not in the session), :class:`DroppedParty` (sender
        already counted as dropped), :class:`DuplicateMessage` (second message from the
        sender this round), :class:`ProtocolViolation` (bad content), :class:`IntegrityError`
        (bad signature).
        """
        kind = type(message).__name__
        sender = getattr(message, "sender", None)
        where = f"{kind} from client {sender} in server state {self.state!r}"
        if (self.state, kind) not in SERVER_TRANSITIONS:
            raise UnexpectedMessage(f"{where}: this message belongs to another round")
        if message.session != self.session:
            raise UnexpectedMessage(f"{where}: the message belongs to another session (replay?)")
        if not isinstance(sender, int) or not 0 <= sender < self.config.n:
            raise UnknownParty(f"{where}: client {sender} is not part of this session of {self.config.n} clients")
        if sender not in self._alive_set(_PREVIOUS[self.state]):
            raise DroppedParty(f"{where}: client {sender} already counts as dropped")
        current = {"advertise_keys": self.u1, "share_keys": self.u2, "masked_input": self._pending,
                   "consistency_check": self.u4, "unmasking": self.u5}[self.state]
        if sender in current:
            raise DuplicateMessage(f"{where}: client {sender} already answered this round (duplicate or replay)")
        getattr(self, f"_on_{kind}")(message, where)
        self.state = SERVER_TRANSITIONS[(self.state, kind)]
        return []

    def _on_AdvertiseKeys(self, m, where: str) -> None:
        if self.config.consistency_check:
            vk = self._directory.get(m.sender)
            if vk is None:
                raise ProtocolViolation(f"{where}: no verification key for this client in the directory")
            try:
                keys.verify_signature(
                    vk, advertise_payload(self._digest, self.session, m.sender, m.c_pk, m.s_pk), m.signature
                )
            except IntegrityError:
                raise IntegrityError(f"{where}: invalid signature on the advertised keys") from None
        elif m.signature:
            raise ProtocolViolation(f"{where}: a signature in a session without consistency check")
        # Keys that every neighbour would refuse (Bonawitz et al. Fig. 4: "all public keys
        # differ"; a low-order point gives an all-zero secret) are refused here, so one
        # client cannot make all its honest neighbours reject their KeysBroadcast.
        pks = (m.c_pk, m.s_pk)
        if not all(isinstance(pk, bytes) and len(pk) == keys.PUBLIC_KEY_SIZE for pk in pks):
            raise ProtocolViolation(f"{where}: public keys must be {keys.PUBLIC_KEY_SIZE} bytes each")
        if m.c_pk == m.s_pk or any(pk in self._advertised for pk in pks):
            raise ProtocolViolation(f"{where}: a public key equal to another advertised key (all keys must differ)")
        try:
            for pk in pks:
                self._probe_key.exchange(pk)
        except IntegrityError:
            raise ProtocolViolation(f"{where}: a public key is a low-order X25519 point") from None
        self.u1 = {**self.u1, m.sender: (m.c_pk, m.s_pk, m.signature)}
        self._advertised.update(pks)

    def _on_ShareKeys(self, m, where: str) -> None:
        recips = [int(v) for v, _ in m.ciphertexts]
        expected = set(self._live_holders(m.sender, self.u1)) - {m.sender}
        if len(set(recips)) != len(recips) or set(recips) != expected:
            raise ProtocolViolation(
                f"{where}: ciphertexts must go to exactly its live neighbours "
                f"({len(expected)} of them), got {len(recips)} recipients"
            )
        self.u2 = {**self.u2, m.sender: {int(v): ct for v, ct in m.ciphertexts}}

    def _on_MaskedInput(self, m, where: str) -> None:
        cfg = self.config
        if m.bits != cfg.bits or m.vector.shape != (cfg.dim,) or m.vector.dtype != cfg.dtype:
            raise ProtocolViolation(
                f"{where}: expected a {cfg.dim}-element vector in the {cfg.bits}-bit ring, "
                f"got {m.vector.size} elements of {m.bits} bits"
            )
        if cfg.bits < m.vector.dtype.itemsize * 8 and m.vector.size and int(m.vector.max()) >> cfg.bits:
            raise ProtocolViolation(f"{where}: vector elements exceed the {cfg.bits}-bit ring")
        complaints = frozenset(int(v) for v in m.complaints)
        if len(complaints) != len(m.complaints):
            raise ProtocolViolation(f"{where}: a client is reported twice")
        forwarded = {v for v in self._live_holders(m.sender, self.u2) if v != m.sender}
        foreign = sorted(complaints - forwarded)
        if foreign:
            raise ProtocolViolation(f"{where}: reports {foreign[:5]}, whose shares were never forwarded to it")
        self._pending = {**self._pending, m.sender: m}

    def _on_ConsistencyResponse(self, m, where: str) -> None:
        payload = survivors_payload(self.R, self.config.n, sorted(self.u3))
        try:
            keys.verify_signature(self._directory[m.sender], payload, m.signature)
        except IntegrityError:
            raise IntegrityError(f"{where}: invalid signature over the survivor set") from None
        self.u4 = {**self.u4, m.sender: m.signature}

    def _on_UnmaskResponse(self, m, where: str) -> None:
        holders = set(self._live_holders(m.sender, self.u2))
        dropped = set(self.u2) - self.u3
        parsed = []
        for name, entries, allowed in (("self-mask", m.self_shares, self.u3), ("mask-key", m.key_shares, dropped)):
            owners = [int(v) for v, _ in entries]
            if len(set(owners)) != len(owners):
                raise ProtocolViolation(f"{where}: two {name} shares for one client")
            wrong = [v for v in owners if v not in allowed or v not in holders]
            if wrong:
                raise ProtocolViolation(f"{where}: {name} shares of {wrong[:5]} were not requested from it")
            try:
                parsed.append({v: shamir.decode_share_values(b, 1, SHARE_LIMBS)[0] for v, b in entries})
            except (DecodeError, InputError):
                raise ProtocolViolation(f"{where}: malformed {name} share") from None
        self.u5 = {**self.u5, m.sender: (parsed[0], parsed[1])}

    def _live_holders(self, u: int, alive) -> list[int]:
        hs = range(self.config.n) if self._holders is None else self._holders[u]
        return [int(v) for v in hs if int(v) in alive]

    # ------------------------------------------------------------------ round close
    def close_round(self) -> list[Message]:
        """The round's deadline passed: move on with whoever answered.

        Returns the next round's messages (``[]`` after unmasking, when :attr:`result`
        holds the ring sum). Raises :class:`ProtocolAbort` below threshold or below the
        survivor floor.
        """
        state = self.state
        nxt = self._transition("close_round")
        cfg = self.config
        if state == "advertise_keys":
            alive = frozenset(self.u1)
            self._check_live(alive, state)
            tree = self._transcript_tree()
            self.R = session_identity(self._digest, self.session, tree.root)
            out = []
            for u in sorted(alive):
                entries = tuple((v, *self.u1[v]) for v in self._live_holders(u, alive) if v != u)
                out.append(KeysBroadcast(self.session, u, entries, tree.proof(self.graph.holder_runs(u))))
        elif state == "share_keys":
            alive = frozenset(self.u2)
            self._check_live(alive, state)
            out = []
            for u in sorted(alive):
                cts = tuple((v, self.u2[v][u]) for v in self._live_holders(u, alive) if v != u)
                out.append(ForwardShares(self.session, u, cts))
        elif state == "masked_input":
            self._close_masked_inputs()
            survivors = tuple(sorted(self.u3))
            if cfg.consistency_check:
                out = [ConsistencyRequest(self.session, u, cfg.n, survivors) for u in survivors]
            else:
                nxt = SERVER_TRANSITIONS[(nxt, "skip")]
                out = self._unmask_requests(survivors)
        elif state == "consistency_check":
            alive = frozenset(self.u4)
            self._check_live(alive, state)
            out = self._unmask_requests(tuple(sorted(alive)))
        elif state == "unmasking":
            self.result = self._unmask()
            out = []
        else:  # pragma: no cover - the table has no other close_round edge
            raise UnexpectedMessage(f"close_round in state {state!r}")
        self.state = nxt
        return out

    def _transcript_tree(self) -> MerkleTree:
        """Merkle tree over every position's advertised keys (absent leaf if silent)."""
        leaves = []
        for pos in range(self.config.n):
            v = self.graph.party_at(pos)
            entry = self.u1.get(v)
            leaves.append(absent_leaf(v) if entry is None else leaf_hash(v, entry[0], entry[1]))
        return MerkleTree(leaves)

    def _masked_with(self, w: int) -> set[int]:
        """Neighbours whose pairwise mask client ``w`` added: those whose shares were
        forwarded to it and that it did not report."""
        return {v for v in self._live_holders(w, self.u2) if v != w} - self._complaints.get(w, frozenset())

    def _close_masked_inputs(self) -> None:
        """Fix U3: exclude reported clients and whoever masked with an unrecoverable key,
        check the floors, then sum the kept masked inputs (the rest are discarded)."""
        cfg = self.config
        self._complaints = {u: frozenset(int(v) for v in m.complaints) for u, m in self._pending.items()}
        excluded: dict[int, str] = {}
        matched: set[int] = set()
        for u in sorted(self._complaints):
            for v in sorted(self._complaints[u]):
                self.misbehaving.setdefault(
                    v, f"its share ciphertext to client {u} failed authentication (reported by client {u})"
                )
                if u in matched or v in matched:
                    continue  # a maximal matching: this accusation is covered by an excluded end
                matched |= {u, v}
                excluded[v] = f"reported by client {u}: its share ciphertext failed authentication"
                excluded[u] = (
                    f"reported client {v}'s share ciphertext; one of the two misbehaved, so both are excluded"
                )
        kept = set(self._pending) - set(excluded)
        self.excluded = excluded
        u3 = frozenset(kept)
        self._check_live(u3, "masked_input")
        if len(u3) < cfg.min_survivors:
            self._abort(
                f"only {len(u3)} masked inputs can enter the sum, below the session's floor "
                f"min_survivors={cfg.min_survivors}"
            )
        # every survivor that masked with a dropped or excluded client needs its key rebuilt
        # from t surviving holders; if fewer than t accepted its shares, abort now, before
        # anything is revealed (a driver may rerun without the blamed clients at no privacy
        # cost: this session released nothing but masked vectors)
        for v in sorted(set(self.u2) - kept):
            acceptors = [w for w in kept if v in self._masked_with(w)]
            if 0 < len(acceptors) < cfg.threshold:
                blamed = tuple(sorted(excluded)) if v in excluded or v in self.misbehaving else ()
                self._abort(
                    f"the mask key of client {v} cannot be rebuilt: only {len(acceptors)} surviving holders "
                    f"accepted its shares (t={cfg.threshold})"
                    + (f"; rerun without clients {list(blamed)}" if blamed else ""),
                    blamed=blamed,
                )
        for u in sorted(u3):
            np.add(self._acc, self._pending[u].vector, out=self._acc)
            self._b_commit[u] = self._pending[u].b_commit
        self._pending = {}
        self.u3 = u3

    def _unmask_requests(self, recipients) -> list[Message]:
        cfg = self.config
        survivors = tuple(sorted(self.u3))
        dropped = tuple(sorted(set(self.u2) - self.u3))
        out = []
        for u in recipients:
            sigs = ()
            if cfg.consistency_check:
                sigs = tuple((v, self.u4[v]) for v in self._live_holders(u, self.u4))
            out.append(UnmaskRequest(self.session, u, cfg.n, survivors, dropped, sigs))
        return out

    def _rebuild(self, owners: list[int], which: int, what: str, check) -> dict[int, bytes]:
        """Rebuild the 32-byte secrets of ``owners`` from the unmasking responses
        (``which`` 0: self-mask seeds, 1: mask keys). Fast path: the first ``t`` shares,
        batched over owners with equal x-sets, then ``check(owner, secret)``; a secret
        that fails goes through Reed-Solomon decoding of all its shares, which corrects
        wrong shares and names who sent them."""
        t = self.config.threshold
        givers_of: dict[int, list[int]] = {}
        groups: dict[tuple[int, ...], list[int]] = {}
        for v in owners:
            givers = [w for w in sorted(self.u5) if v in self.u5[w][which]]
            if len(givers) < t:
                self._abort(
                    f"cannot rebuild the {what} of client {v}: {len(givers)} shares arrived, "
                    f"fewer than the threshold t={t}"
                )
            givers_of[v] = givers
            groups.setdefault(tuple(givers[:t]), []).append(v)
        out: dict[int, bytes] = {}
        suspects: list[int] = []
        for givers, vs in groups.items():
            values = np.stack([np.stack([self.u5[w][which][v] for v in vs]) for w in givers])  # (t, S, L)
            try:
                rows = shamir.combine_batch([w + 1 for w in givers], values, SEED_LEN, threshold=t)
            except (SecretSharingError, InputError):
                suspects.extend(vs)
                continue
            for v, row in zip(vs, rows):
                if check(v, bytes(row)):
                    out[v] = bytes(row)
                else:
                    suspects.append(v)
        for v in suspects:
            givers = givers_of[v]
            values = np.stack([self.u5[w][which][v] for w in givers])  # (m, L)
            try:
                secret, bad = shamir.robust_combine([w + 1 for w in givers], values, SEED_LEN, threshold=t)
            except (SecretSharingError, InputError):
                secret, bad = b"", []
            if not secret or not check(v, secret):
                self._abort(
                    f"cannot rebuild the {what} of client {v}: its {len(givers)} shares do not determine the "
                    f"value it committed to (client {v} dealt inconsistent shares, or more than "
                    f"{(len(givers) - t) // 2} of its holders revealed wrong ones)",
                    blamed=(v,),
                )
            for i in bad:
                self.misbehaving[givers[i]] = f"revealed a wrong share of client {v}'s {what}"
            out[v] = secret
        return out

    def _check_seed(self, v: int, secret: bytes) -> bool:
        return seed_commitment(self.R, v, secret) == self._b_commit.get(v)

    def _check_key(self, v: int, secret: bytes) -> bool:
        try:
            return keys.AgreementKey.from_bytes(secret).public_bytes() == self.u1[v][1]
        except (InputError, IntegrityError, ValueError):
            return False

    def _unmask(self) -> np.ndarray:
        cfg = self.config
        survivors = sorted(self.u3)
        dropped = sorted(set(self.u2) - self.u3)
        # survivors that added a pairwise mask with each dropped (or excluded) client
        maskers = {v: [u for u in survivors if v in self._masked_with(u)] for v in dropped}
        needed = [v for v in dropped if maskers[v]]
        b_seeds = self._rebuild(survivors, 0, "self-mask seed", self._check_seed)
        sk = self._rebuild(needed, 1, "mask key", self._check_key)
        seeds, signs = [], []
        for v in needed:
            key = keys.AgreementKey.from_bytes(sk[v])
            for u in maskers[v]:
                shared = key.exchange(self.u1[u][1])
                seeds.append(keys.hkdf(shared, info=pair_info(self.R, u, v, b"mask")))
                signs.append(-1 if u < v else 1)  # u added +p if u < v: remove it
        total = self._acc.copy()
        prg.add_masks(total, [b_seeds[u] for u in survivors], [-1] * len(survivors), label=SELF_MASK_LABEL)
        if seeds:
            prg.add_masks(total, seeds, signs, label=PAIR_MASK_LABEL)
        _reduce(total, cfg.bits)
        return total
