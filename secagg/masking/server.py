"""SecAgg / SecAgg+ server as a sans-IO state machine (Bonawitz et al. CCS 2017, Fig. 4;
Bell et al. CCS 2020), hardened against malicious clients.

The server has no clock: the driver calls :meth:`Server.close_round` when a round's
deadline has passed, and the server moves on with whoever answered (the others count as
dropped from then on). ``receive`` only validates and stores; ``close_round`` returns the
next round's messages. Which event may happen in which state, and which state follows, is
the table of :func:`secagg.masking.rounds.server_transitions`; the per-state data are the
frozen dataclasses of :mod:`~secagg.masking.rounds`. A rejected message raises a
:class:`~secagg.errors.ProtocolError` subclass and leaves the server unchanged (each
handler validates everything before it records anything); the driver counts the sender
as dropped and names it. Fewer than ``t``
live share holders, or fewer survivors than ``min_survivors``, at a round close raises
:class:`~secagg.errors.ProtocolAbort` (state ``"aborted"``, no partial result).

Session binding: after the keys are advertised the server builds the Merkle tree over
every client's keys (:mod:`secagg.masking._transcript`), derives the session identity
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
from typing import Callable, Collection, Mapping, NoReturn, Sequence

import numpy as np

from .. import keys, prg, shamir
from ..errors import (
    ErrorContext,
    DroppedParty,
    DuplicateMessage,
    InputError,
    IntegrityError,
    ProtocolAbort,
    ProtocolViolation,
    Reason,
    SecretSharingError,
    UnexpectedMessage,
    UnknownParty,
)
from ..quantize import reduce_to_ring
from .client import SHARE_LIMBS, seed_commitment
from .config import (
    PAIR_MASK_LABEL,
    SEED_LEN,
    SELF_MASK_LABEL,
    MaskingConfig,
    advertise_payload,
    pair_info,
)
from ._graph import Graph
from ._messages import (
    AdvertiseKeys,
    ConsistencyRequest,
    ConsistencyResponse,
    ForwardShares,
    KeysBroadcast,
    MaskedInput,
    ServerMessage,
    Message,
    PartySet,
    ShareKeys,
    StartSession,
    UnmaskRequest,
    UnmaskResponse,
)
from .rounds import (
    AwaitInputs,
    AwaitKeys,
    AwaitShareReveals,
    AwaitShares,
    AwaitVouchers,
    CloseRound,
    ServerAborted,
    ServerDone,
    ServerIdle,
    ServerState,
    Start,
    server_transitions,
)
from ._transcript import MerkleTree, absent_leaf, leaf_hash, session_identity

__all__ = ["Server"]

_Collecting = (AwaitKeys, AwaitShares, AwaitInputs, AwaitVouchers, AwaitShareReveals)


class Server:
    """The aggregation server of one session.

    Parameters
    ----------
    config, graph:
        the session (the graph must be the one the clients use).
    session:
        the 16..32-byte nonce carried by every message (default: 16 bytes from ``secrets``).
    directory:
        party id -> Ed25519 public key (the PKI); required against an active server.

    Attributes
    ----------
    state:
        the current :data:`~secagg.masking.rounds.ServerState` (a frozen dataclass).
    misbehaving:
        ``{id: what it did}``: reported by a neighbour, or caught revealing a wrong share.
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
            raise InputError("the active-server variant needs the directory of verification keys (the PKI)")
        if not isinstance(graph, Graph) or graph.n != config.n or graph.k != config.k:
            raise InputError(
                f"graph ({getattr(graph, 'n', '?')} clients, degree {getattr(graph, 'k', '?')}) is not the "
                f"config's ({config.n} clients, degree {config.k}): the threshold is set for the config's graph"
            )
        self.config = config
        self.graph = graph
        self.session = bytes(session)
        self._directory = dict(directory or {})
        self._holders = None if config.is_complete else np.stack([graph.holders(u) for u in range(config.n)])
        self._digest = config.digest(graph)
        self._table = server_transitions(config.consistency_check)
        self._probe_key = keys.AgreementKey.generate()  # only to test advertised points
        self.state: ServerState = ServerIdle()
        self.misbehaving: dict[int, str] = {}

    # ------------------------------------------------------------------ views
    @property
    def survivors(self) -> list[int]:
        """Sorted ids whose inputs are in the sum (U3), once the masked inputs are closed."""
        return sorted(getattr(self.state, "u3", ()))

    @property
    def result(self) -> np.ndarray | None:
        """The ring sum of U3, once the session is done."""
        return self.state.result if isinstance(self.state, ServerDone) else None

    @property
    def R(self) -> bytes | None:
        """The session identity, once the keys are broadcast."""
        return getattr(self.state, "R", None)

    @property
    def excluded(self) -> dict[int, str]:
        """``{id: why}``: masked inputs that arrived but were left out of the sum."""
        return dict(getattr(self.state, "excluded", {}))

    @property
    def abort_reason(self) -> str | None:
        return self.state.reason if isinstance(self.state, ServerAborted) else None

    def snapshot(self) -> tuple[ServerState, dict[int, str], int]:
        """A comparable view of the protocol state (for tests): the state object and the
        size of what it collected (handlers record only after validating)."""
        st = self.state
        return (st, dict(self.misbehaving), len(st.answered()) if isinstance(st, _Collecting) else -1)

    # ------------------------------------------------------------------ helpers
    def _next(self, event: type) -> type:
        nxt = self._table.get((type(self.state), event))
        if nxt is None:
            raise UnexpectedMessage(
                f"{event.__name__} is not allowed for the server in state {type(self.state).__name__}")
        return nxt

    def _commit(self, new: ServerState, expected: type) -> None:
        if type(new) is not expected:  # pragma: no cover - a handler that breaks the table is a bug
            raise AssertionError(f"server produced {type(new).__name__}, the table says {expected.__name__}")
        self.state = new

    def _check_live(self, alive: Collection[int], round_name: str) -> None:
        """ProtocolAbort unless every live client keeps >= t live holders."""
        t, n = self.config.threshold, self.config.n
        if self._holders is None:  # the complete graph: every live client holds shares of every other
            if len(alive) < t:
                self._abort(f"only {len(alive)} clients remain after {round_name}, fewer than the threshold t={t}",
                            round_name, Reason.BELOW_THRESHOLD)
            return
        mask = np.zeros(n, dtype=bool)
        mask[list(alive)] = True
        counts = mask[self._holders].sum(axis=1)
        bad = np.flatnonzero(mask & (counts < t))
        if bad.size or not alive:
            who = int(bad[0]) if bad.size else -1
            self._abort(
                f"after {round_name}, client {who} has only {int(counts[who]) if who >= 0 else 0} live share "
                f"holders, fewer than the threshold t={t}", round_name, Reason.BELOW_THRESHOLD
            )

    def _abort(self, reason: str, round_name: str | None = None, code: str = Reason.ABORT,
               blamed: tuple[int, ...] = ()) -> NoReturn:
        self.state = ServerAborted(reason, tuple(blamed))
        raise ProtocolAbort(reason, blamed=blamed, code=code, round=round_name)

    def _live_holders(self, u: int, alive: Collection[int]) -> list[int]:
        hs = range(self.config.n) if self._holders is None else self._holders[u].tolist()
        return [v for v in hs if v in alive]

    # ------------------------------------------------------------------ events
    def start(self) -> list[StartSession]:
        """Open the session: one StartSession per client."""
        self._commit(AwaitKeys(self.config.n), self._next(Start))
        return [StartSession(self.session, u) for u in range(self.config.n)]

    def receive(self, message: Message) -> list[ServerMessage]:
        """Validate and record one client message; returns ``[]`` (answers come at round close).

        Raises (state unchanged): :class:`UnexpectedMessage` (wrong round or session),
        :class:`UnknownParty` (sender not in the session), :class:`DroppedParty` (sender
        already counted as dropped), :class:`DuplicateMessage` (second message from the
        sender this round), :class:`ProtocolViolation` (bad content), :class:`IntegrityError`
        (bad signature). Every error carries the sender as ``party`` and the ``round``.
        """
        kind = type(message)
        st = self.state
        sender = getattr(message, "sender", None)
        rnd = st.round.value if st.round is not None else None
        err = ErrorContext(party=sender if isinstance(sender, int) else None, round=rnd)
        where = f"{kind.__name__} from client {sender} in server state {type(st).__name__}"
        if not isinstance(st, _Collecting) or (type(st), kind) not in self._table:
            raise UnexpectedMessage(f"{where}: this message belongs to another round", **err)
        if message.session != self.session:
            raise UnexpectedMessage(f"{where}: the message belongs to another session (replay?)",
                                    code=Reason.WRONG_SESSION, **err)
        if not isinstance(sender, int) or not 0 <= sender < self.config.n:
            raise UnknownParty(f"{where}: client {sender} is not part of this session of {self.config.n} clients",
                               **err)
        if sender not in st.eligible():
            raise DroppedParty(f"{where}: client {sender} already counts as dropped", **err)
        if sender in st.answered():
            raise DuplicateMessage(f"{where}: client {sender} already answered this round (duplicate or replay)",
                                   **err)
        _RECEIVERS[kind](self, st, message, where, err)
        return []

    def _on_advertise(self, st: AwaitKeys, m: AdvertiseKeys, where: str, err: ErrorContext) -> None:
        if self.config.consistency_check:
            vk = self._directory.get(m.sender)
            if vk is None:
                raise ProtocolViolation(f"{where}: no verification key for this client in the directory", **err)
            try:
                keys.verify_signature(
                    vk, advertise_payload(self._digest, self.session, m.sender, m.c_pk, m.s_pk), m.signature
                )
            except IntegrityError:
                raise IntegrityError(f"{where}: invalid signature on the advertised keys",
                                     code=Reason.BAD_SIGNATURE, **err) from None
        elif m.signature:
            raise ProtocolViolation(f"{where}: a signature in a session without consistency check", **err)
        # Keys that every neighbour would refuse (Bonawitz et al. Fig. 4: "all public keys
        # differ"; a low-order point gives an all-zero secret) are refused here, so one
        # client cannot make all its honest neighbours reject their KeysBroadcast.
        pks = (m.c_pk, m.s_pk)
        if not all(isinstance(pk, bytes) and len(pk) == keys.PUBLIC_KEY_SIZE for pk in pks):
            raise ProtocolViolation(f"{where}: public keys must be {keys.PUBLIC_KEY_SIZE} bytes each", **err)
        if m.c_pk == m.s_pk or any(pk in st.seen_keys for pk in pks):
            raise ProtocolViolation(f"{where}: a public key equal to another advertised key (all keys must differ)",
                                    **err)
        try:
            for pk in pks:
                self._probe_key.exchange(pk)
        except IntegrityError:
            raise ProtocolViolation(f"{where}: a public key is a low-order X25519 point", **err) from None
        st.u1[m.sender] = (m.c_pk, m.s_pk, m.signature)
        st.seen_keys.update(pks)

    def _on_share(self, st: AwaitShares, m: ShareKeys, where: str, err: ErrorContext) -> None:
        recips = [int(v) for v, _ in m.ciphertexts]
        expected = set(self._live_holders(m.sender, st.keys)) - {m.sender}
        if len(set(recips)) != len(recips) or set(recips) != expected:
            raise ProtocolViolation(
                f"{where}: ciphertexts must go to exactly its live neighbours "
                f"({len(expected)} of them), got {len(recips)} recipients", **err
            )
        st.u2[m.sender] = {int(v): ct for v, ct in m.ciphertexts}

    def _on_masked(self, st: AwaitInputs, m: MaskedInput, where: str, err: ErrorContext) -> None:
        cfg = self.config
        if m.bits != cfg.bits or m.vector.shape != (cfg.dim,) or m.vector.dtype != cfg.dtype:
            raise ProtocolViolation(
                f"{where}: expected a {cfg.dim}-element vector in the {cfg.bits}-bit ring, "
                f"got {m.vector.size} elements of {m.bits} bits", **err
            )
        if cfg.bits < m.vector.dtype.itemsize * 8 and m.vector.size and int(m.vector.max()) >> cfg.bits:
            raise ProtocolViolation(f"{where}: vector elements exceed the {cfg.bits}-bit ring", **err)
        complaints = frozenset(int(v) for v in m.complaints)
        if len(complaints) != len(m.complaints):
            raise ProtocolViolation(f"{where}: a client is reported twice", **err)
        forwarded = {v for v in self._live_holders(m.sender, st.u2) if v != m.sender}
        foreign = sorted(complaints - forwarded)
        if foreign:
            raise ProtocolViolation(f"{where}: reports {foreign[:5]}, whose shares were never forwarded to it", **err)
        st.pending[m.sender] = m

    def _on_voucher(self, st: AwaitVouchers, m: ConsistencyResponse, where: str, err: ErrorContext) -> None:
        # the server cannot check a voucher (only the two neighbours share its key); it
        # checks that there is exactly one per live neighbour and passes each on
        to = [int(v) for v, _ in m.macs]
        expected = set(self._live_holders(m.sender, st.u3)) - {m.sender}
        if len(set(to)) != len(to) or set(to) != expected:
            raise ProtocolViolation(
                f"{where}: vouchers must go to each surviving neighbour exactly once "
                f"({len(expected)} expected, got {len(to)} for {len(set(to) & expected)} of them)", **err)
        st.u4[m.sender] = {int(v): bytes(mac) for v, mac in m.macs}

    def _on_reveal(self, st: AwaitShareReveals, m: UnmaskResponse, where: str, err: ErrorContext) -> None:
        holders = set(self._live_holders(m.sender, st.u2))
        parsed = []
        for name, entries, survived in (("self-mask", m.self_shares, True), ("mask-key", m.key_shares, False)):
            owners = [int(v) for v, _ in entries]
            if len(set(owners)) != len(owners):
                raise ProtocolViolation(f"{where}: two {name} shares for one client", **err)
            # self-mask shares of survivors (U3), key shares of U2 minus U3, from holders only
            wrong = [v for v in owners if v not in holders or (v in st.u3) != survived]
            if wrong:
                raise ProtocolViolation(f"{where}: {name} shares of {wrong[:5]} were not requested from it", **err)
            rows = shamir.decode_share_values_many([b for _, b in entries], 1, SHARE_LIMBS)
            values: dict[int, np.ndarray] = {}
            for v, r in zip(owners, rows):
                if r is None:
                    raise ProtocolViolation(f"{where}: malformed {name} share", **err)
                values[v] = r[0]
            parsed.append(values)
        st.u5[m.sender] = (parsed[0], parsed[1])

    # ------------------------------------------------------------------ round close
    def close_round(self) -> list[ServerMessage]:
        """The round's deadline passed: move on with whoever answered.

        Returns the next round's messages (``[]`` after unmasking, when :attr:`result`
        holds the ring sum). Raises :class:`ProtocolAbort` below threshold or below the
        survivor floor (state :class:`~secagg.masking.rounds.ServerAborted`).
        """
        nxt = self._next(CloseRound)
        out, new = _CLOSERS[type(self.state)](self, self.state)
        self._commit(new, nxt)
        return out

    def _close_keys(self, st: AwaitKeys) -> tuple[list[ServerMessage], AwaitShares]:
        alive = frozenset(st.u1)
        self._check_live(alive, "advertise_keys")
        leaves = []
        for pos in range(self.config.n):  # the Merkle tree over every position's advertised keys
            v = self.graph.party_at(pos)
            entry = st.u1.get(v)
            leaves.append(absent_leaf(v) if entry is None else leaf_hash(v, entry[0], entry[1]))
        tree = MerkleTree(leaves)
        R = session_identity(self._digest, self.session, tree.root)
        out: list[ServerMessage] = []
        for u in sorted(alive):
            entries = tuple((v, *st.u1[v]) for v in self._live_holders(u, alive) if v != u)
            out.append(KeysBroadcast(self.session, u, entries, tree.proof(self.graph.holder_runs(u))))
        return out, AwaitShares({v: (c, s) for v, (c, s, _) in st.u1.items()}, R)

    def _close_shares(self, st: AwaitShares) -> tuple[list[ServerMessage], AwaitInputs]:
        alive = frozenset(st.u2)
        self._check_live(alive, "share_keys")
        out: list[ServerMessage] = []
        for u in sorted(alive):
            cts = tuple((v, st.u2[v][u]) for v in self._live_holders(u, alive) if v != u)
            out.append(ForwardShares(self.session, u, cts))
        return out, AwaitInputs(st.keys, st.R, alive)  # the ciphertexts are forwarded and forgotten

    def _maskers(self, among: Collection[int], complaints: Mapping[int, frozenset[int]], v: int) -> list[int]:
        """The clients of ``among`` that added a pairwise mask with client ``v`` (of U2):
        its holders, to which its shares were forwarded, that did not report it."""
        return [w for w in self._live_holders(v, among) if w != v and v not in complaints.get(w, ())]

    def _close_inputs(self, st: AwaitInputs) -> tuple[list[ServerMessage], AwaitVouchers | AwaitShareReveals]:
        """Fix U3: exclude reported clients (both ends of a maximal matching of the
        accusations), check the floors, make sure every excluded or dropped client's masks
        can be removed, then sum the kept masked inputs (the rest are discarded)."""
        cfg = self.config
        complaints = {u: frozenset(int(v) for v in m.complaints) for u, m in st.pending.items()}
        excluded: dict[int, str] = {}
        matched: set[int] = set()
        for u in sorted(complaints):
            for v in sorted(complaints[u]):
                self.misbehaving.setdefault(
                    v, f"its share ciphertext to client {u} failed authentication (reported by client {u})")
                if u in matched or v in matched:
                    continue  # a maximal matching: this accusation is covered by an excluded end
                matched |= {u, v}
                excluded[v] = f"reported by client {u}: its share ciphertext failed authentication"
                excluded[u] = f"reported client {v}'s share ciphertext; one of the two misbehaved, so both are excluded"
        u3 = frozenset(set(st.pending) - set(excluded))
        self._check_live(u3, "masked_input")
        if len(u3) < cfg.min_survivors:
            self._abort(f"only {len(u3)} masked inputs can enter the sum, below the session's floor "
                        f"min_survivors={cfg.min_survivors}", "masked_input", Reason.BELOW_FLOOR)
        # every survivor that masked with a dropped or excluded client needs its key rebuilt
        # from t surviving holders; if fewer than t accepted its shares, abort now, before
        # anything is revealed (a driver may rerun without the blamed clients at no privacy
        # cost: this session released nothing but masked vectors)
        for v in sorted(st.u2 - u3):
            acceptors = self._maskers(u3, complaints, v)
            if 0 < len(acceptors) < cfg.threshold:
                blamed = tuple(sorted(excluded)) if v in excluded or v in self.misbehaving else ()
                self._abort(
                    f"the mask key of client {v} cannot be rebuilt: only {len(acceptors)} surviving holders "
                    f"accepted its shares (t={cfg.threshold})" + (f"; rerun without clients {list(blamed)}"
                                                                    if blamed else ""),
                    "masked_input", Reason.UNRECOVERABLE, blamed)
        acc = np.zeros(cfg.dim, dtype=cfg.dtype)
        for u in sorted(u3):
            np.add(acc, st.pending[u].vector, out=acc)
        b_commit = {u: st.pending[u].b_commit for u in u3}
        # the fields of both next states (rounds._Fixed), in order
        fixed = (st.keys, st.R, st.u2, u3, acc, b_commit, complaints, excluded)
        survivors = PartySet(cfg.n, sorted(u3))  # one set (and one bitmap) shared by every request
        if cfg.consistency_check:
            return ([ConsistencyRequest(self.session, u, cfg.n, survivors) for u in survivors.ids],
                    AwaitVouchers(*fixed))
        nxt = AwaitShareReveals(*fixed, u4=u3)
        return self._unmask_requests(nxt, survivors.ids, {}), nxt

    def _close_vouchers(self, st: AwaitVouchers) -> tuple[list[ServerMessage], AwaitShareReveals]:
        alive = frozenset(st.u4)
        self._check_live(alive, "consistency_check")
        nxt = AwaitShareReveals(st.keys, st.R, st.u2, st.u3, st.acc, st.b_commit, st.complaints, st.excluded,
                                u4=alive)
        return self._unmask_requests(nxt, tuple(sorted(alive)), st.u4), nxt

    def _unmask_requests(self, st: AwaitShareReveals, recipients: Sequence[int],
                         vouchers: Mapping[int, Mapping[int, bytes]]) -> list[ServerMessage]:
        cfg = self.config
        survivors = PartySet(cfg.n, sorted(st.u3))
        dropped = PartySet(cfg.n, sorted(st.u2 - st.u3))
        out: list[ServerMessage] = []
        for u in recipients:
            macs = (tuple((v, vouchers[v][u]) for v in self._live_holders(u, vouchers) if v != u)
                    if cfg.consistency_check else ())
            out.append(UnmaskRequest(self.session, u, cfg.n, survivors, dropped, macs))
        return out

    def _close_reveals(self, st: AwaitShareReveals) -> tuple[list[ServerMessage], ServerDone]:
        return [], ServerDone(self._unmask(st), st.u3, st.excluded)

    # ------------------------------------------------------------------ unmasking
    def _rebuild(self, st: AwaitShareReveals, owners: list[int], which: int, what: str,
                 check: Callable[[int, bytes], bool]) -> dict[int, bytes]:
        """Rebuild the 32-byte secrets of ``owners`` from the unmasking responses
        (``which`` 0: self-mask seeds, 1: mask keys). Fast path: the first ``t`` shares,
        batched over owners with equal x-sets, then ``check(owner, secret)``; a secret
        that fails goes through Reed-Solomon decoding of all its shares, which corrects
        wrong shares and names who sent them."""
        t = self.config.threshold
        wanted = set(owners)
        given: dict[int, list[int]] = {v: [] for v in owners}
        for w in sorted(st.u5):  # one pass over the responses: O(n k), givers in id order
            for v in st.u5[w][which]:
                if v in wanted:
                    given[v].append(w)
        givers_of: dict[int, list[int]] = {}
        groups: dict[tuple[int, ...], list[int]] = {}
        for v in owners:
            givers = given[v]
            if len(givers) < t:
                self._abort(f"cannot rebuild the {what} of client {v}: {len(givers)} shares arrived, "
                            f"fewer than the threshold t={t}", "unmasking", Reason.BELOW_THRESHOLD)
            givers_of[v] = givers
            groups.setdefault(tuple(givers[:t]), []).append(v)
        out: dict[int, bytes] = {}
        suspects: list[int] = []
        for group, vs in groups.items():
            values = np.array([[st.u5[w][which][v] for v in vs] for w in group])  # (t, S, L), one copy
            try:
                rows = shamir.combine_batch([w + 1 for w in group], values, SEED_LEN, threshold=t)
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
            values = np.stack([st.u5[w][which][v] for w in givers])  # (m, L)
            try:
                secret, bad = shamir.robust_combine([w + 1 for w in givers], values, SEED_LEN, threshold=t)
            except (SecretSharingError, InputError):
                secret, bad = b"", []
            if not secret or not check(v, secret):
                self._abort(
                    f"cannot rebuild the {what} of client {v}: its {len(givers)} shares do not determine the "
                    f"value it committed to (client {v} dealt inconsistent shares, or more than "
                    f"{(len(givers) - t) // 2} of its holders revealed wrong ones)",
                    "unmasking", Reason.UNRECOVERABLE, (v,),
                )
            for i in bad:
                self.misbehaving[givers[i]] = f"revealed a wrong share of client {v}'s {what}"
            out[v] = secret
        return out

    def _unmask(self, st: AwaitShareReveals) -> np.ndarray:
        cfg = self.config
        survivors = sorted(st.u3)
        dropped = sorted(st.u2 - st.u3)
        # survivors that added a pairwise mask with each dropped (or excluded) client
        maskers = {v: self._maskers(st.u3, st.complaints, v) for v in dropped}
        needed = [v for v in dropped if maskers[v]]

        def seed_ok(v: int, secret: bytes) -> bool:
            return seed_commitment(st.R, v, secret) == st.b_commit.get(v)

        def key_ok(v: int, secret: bytes) -> bool:
            try:
                return keys.AgreementKey.from_bytes(secret).public_bytes() == st.keys[v][1]
            except (InputError, IntegrityError, ValueError):
                return False

        b_seeds = self._rebuild(st, survivors, 0, "self-mask seed", seed_ok)
        sk = self._rebuild(st, needed, 1, "mask key", key_ok)
        seeds, signs = [], []
        for v in needed:
            key = keys.AgreementKey.from_bytes(sk[v])
            for u in maskers[v]:
                shared = key.exchange(st.keys[u][1])
                seeds.append(keys.hkdf(shared, info=pair_info(st.R, u, v, b"mask")))
                signs.append(-1 if u < v else 1)  # u added +p if u < v: remove it
        total = st.acc.copy()
        prg.add_masks(total, [b_seeds[u] for u in survivors], [-1] * len(survivors), label=SELF_MASK_LABEL)
        if seeds:
            prg.add_masks(total, seeds, signs, label=PAIR_MASK_LABEL)
        reduce_to_ring(total, cfg.bits)
        return total


#: the handler of each client message (the table in rounds.py decides when it may run)
_RECEIVERS: dict[type[Message], Callable[..., None]] = {
    AdvertiseKeys: Server._on_advertise,
    ShareKeys: Server._on_share,
    MaskedInput: Server._on_masked,
    ConsistencyResponse: Server._on_voucher,
    UnmaskResponse: Server._on_reveal,
}
#: what closing each collecting state does
_CLOSERS: dict[type, Callable[..., tuple[list[ServerMessage], ServerState]]] = {
    AwaitKeys: Server._close_keys,
    AwaitShares: Server._close_shares,
    AwaitInputs: Server._close_inputs,
    AwaitVouchers: Server._close_vouchers,
    AwaitShareReveals: Server._close_reveals,
}
