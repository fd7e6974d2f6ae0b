"""SecAgg / SecAgg+ server as a sans-IO state machine (Bonawitz et al. CCS 2017, Fig. 4;
Bell et al. CCS 2020).

The server has no clock: the driver calls :meth:`Server.close_round` when a round's
deadline has passed, and the server moves on with whoever answered (the others count as
dropped from then on). ``receive`` only validates and stores; ``close_round`` returns the
next round's messages. Transitions: :data:`secagg.masking.rounds.SERVER_TRANSITIONS`.
A rejected message raises a :class:`~secagg.errors.ProtocolError` subclass and leaves the
server unchanged. Fewer than ``t`` live share holders at a round close raises
:class:`~secagg.errors.ProtocolAbort` (state ``"aborted"``, no partial result).

Unmasking: the server rebuilds the self-mask seed ``b_u`` of every survivor ``u`` in U3
and the mask private key of every client ``v`` in U2 minus U3 (shared keys, then dropped),
recomputes ``p_{v,u}`` for ``v``'s surviving neighbours and removes all of them from the
sum of the masked inputs, which leaves ``sum_{u in U3} x_u mod 2^bits``.
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
from .client import SHARE_LIMBS, _reduce
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
    Message,
    StartSession,
    UnmaskRequest,
)
from .rounds import SERVER_TRANSITIONS

__all__ = ["Server", "VERIFY_SURPLUS"]

#: how many shares beyond the threshold the server checks against the first ``t`` when it
#: rebuilds a secret: up to this many corrupted shares among those used are detected
#: (ProtocolAbort) instead of turning into a wrong sum; the cost is one small matrix
#: product per extra share.
VERIFY_SURPLUS = 8

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

    def _abort(self, reason: str):
        self.state = "aborted"
        self.abort_reason = reason
        raise ProtocolAbort(reason)

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
        current = {"advertise_keys": self.u1, "share_keys": self.u2, "masked_input": self.u3,
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
                keys.verify_signature(vk, advertise_payload(self.session, m.sender, m.c_pk, m.s_pk), m.signature)
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
        np.add(self._acc, m.vector, out=self._acc)
        self.u3 = self.u3 | {m.sender}

    def _on_ConsistencyResponse(self, m, where: str) -> None:
        payload = survivors_payload(self.session, self.config.n, sorted(self.u3))
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
        holds the ring sum). Raises :class:`ProtocolAbort` below threshold.
        """
        state = self.state
        nxt = self._transition("close_round")
        cfg = self.config
        if state == "advertise_keys":
            alive = frozenset(self.u1)
            self._check_live(alive, state)
            out = []
            for u in sorted(alive):
                entries = tuple((v, *self.u1[v]) for v in self._live_holders(u, alive) if v != u)
                out.append(KeysBroadcast(self.session, u, entries))
        elif state == "share_keys":
            alive = frozenset(self.u2)
            self._check_live(alive, state)
            out = []
            for u in sorted(alive):
                cts = tuple((v, self.u2[v][u]) for v in self._live_holders(u, alive) if v != u)
                out.append(ForwardShares(self.session, u, cts))
        elif state == "masked_input":
            self._check_live(self.u3, state)
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

    def _reconstruct(self, owners: list[int], which: int, what: str) -> dict[int, bytes]:
        """Rebuild the 32-byte secrets of ``owners`` from the unmasking responses
        (``which`` 0: self-mask shares, 1: mask-key shares), batching equal x-sets."""
        t = self.config.threshold
        groups: dict[tuple[int, ...], list[int]] = {}
        for v in owners:
            givers = [w for w in sorted(self.u5) if v in self.u5[w][which]]
            if len(givers) < t:
                self._abort(
                    f"cannot rebuild the {what} of client {v}: {len(givers)} shares arrived, "
                    f"fewer than the threshold t={t}"
                )
            # t shares rebuild the secret; up to VERIFY_SURPLUS more must lie on the same
            # polynomials, so a wrong share aborts instead of silently changing the sum
            groups.setdefault(tuple(givers[: t + VERIFY_SURPLUS]), []).append(v)
        out: dict[int, bytes] = {}
        for givers, vs in groups.items():
            values = np.stack([np.stack([self.u5[w][which][v] for v in vs]) for w in givers])  # (k, S, L)
            try:
                secrets_ = shamir.combine_batch(
                    [w + 1 for w in givers], values, SEED_LEN, threshold=t, verify=True
                )
            except (SecretSharingError, InputError) as exc:
                self._abort(f"cannot rebuild the {what}s of {vs[:5]}: {exc}")
            for v, row in zip(vs, secrets_):
                out[v] = bytes(row)
        return out

    def _unmask(self) -> np.ndarray:
        cfg = self.config
        survivors = sorted(self.u3)
        dropped = sorted(set(self.u2) - self.u3)
        # dropped clients whose masks some survivor added
        needed = [v for v in dropped if any(u in self.u3 for u in self._live_holders(v, self.u2) if u != v)]
        b_seeds = self._reconstruct(survivors, 0, "self-mask seed")
        sk = self._reconstruct(needed, 1, "mask key")
        seeds, signs = [], []
        for v in needed:
            try:
                key = keys.AgreementKey.from_bytes(sk[v])
            except (InputError, IntegrityError, ValueError):
                self._abort(f"the rebuilt mask key of client {v} is not a valid X25519 key")
            if key.public_bytes() != self.u1[v][1]:
                self._abort(f"the rebuilt mask key of client {v} does not match its advertised public key")
            for u in self._live_holders(v, self.u3):
                if u == v:
                    continue
                shared = key.exchange(self.u1[u][1])
                seeds.append(keys.hkdf(shared, info=pair_info(self.session, u, v, b"mask")))
                signs.append(-1 if u < v else 1)  # u added +p if u < v: remove it
        total = self._acc.copy()
        prg.add_masks(total, [b_seeds[u] for u in survivors], [-1] * len(survivors), label=SELF_MASK_LABEL)
        if seeds:
            prg.add_masks(total, seeds, signs, label=PAIR_MASK_LABEL)
        _reduce(total, cfg.bits)
        return total
