"""The shape of SecAgg / SecAgg+ in one place: rounds, the state of each role, and every
state transition (Bonawitz et al. CCS 2017, Fig. 4; Bell et al. CCS 2020).

Like h11's ``_state.py``, this file holds every rule of the form "in this state, this
event moves to that state" and nothing else: what a handler checks lives in
``client.py`` / ``server.py``, next to the code that computes the answer; *which*
handler may run, and which state it must produce, is decided here. This file does not
know which role it plays beyond its two tables, and no other file restates them: the
transports, drivers and ``fl`` derive what they need (:data:`OPENS`, :data:`ROUND_OF`,
:func:`rounds`, :func:`round_trips`).

====================  =========================================  ===========================
round                 server -> client (opens the round)         client -> server (answer)
====================  =========================================  ===========================
advertise_keys        StartSession (nonce)                       AdvertiseKeys (c_pk, s_pk, sig)
share_keys            KeysBroadcast (keys, transcript proof)     ShareKeys (AEAD share ciphertexts)
masked_input          ForwardShares (ciphertexts for me)         MaskedInput (y_u, H(b_u), complaints)
consistency_check     ConsistencyRequest (survivor set U3)       ConsistencyResponse (sig over R, U3)
unmasking             UnmaskRequest (U3, dropped, sigs)          UnmaskResponse (shares)
====================  =========================================  ===========================

``consistency_check`` runs only against an active server (the default); for an
honest-but-curious server the tables skip it. A client state's ``round`` is the last
round it answered; a server state's, the round it is collecting. Per-state data are frozen dataclasses
holding exactly what the role needs from that state on (no ``Optional`` fields, no
attribute created by a typo); a handler returns ``(replies, next state)`` and the role
commits the next state only if it is of the class the table names.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Mapping, Union

import numpy as np

from ..keys import AgreementKey
from ._messages import (
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

__all__ = [
    "Round",
    "ROUNDS",
    "ClientState",
    "ServerState",
    "client_transitions",
    "server_transitions",
]


class Round(str, enum.Enum):
    """The five rounds, in order (the value is the name used in dropout schedules)."""

    ADVERTISE_KEYS = "advertise_keys"
    SHARE_KEYS = "share_keys"
    MASKED_INPUT = "masked_input"
    CONSISTENCY_CHECK = "consistency_check"
    UNMASKING = "unmasking"


#: the round names in order (what ``dropout`` schedules and cost records use)
ROUNDS: tuple[str, ...] = tuple(r.value for r in Round)


def rounds(active: bool) -> tuple[Round, ...]:
    """The rounds a session runs: all five against an active server, four otherwise."""
    return tuple(r for r in Round if active or r is not Round.CONSISTENCY_CHECK)


def round_trips(active: bool) -> int:
    """Server-client round trips of one session (what a deployment waits for)."""
    return len(rounds(active))


#: the server message that opens each round (what a transport reports a client is in)
OPENS: dict[type[Message], Round] = {
    StartSession: Round.ADVERTISE_KEYS,
    KeysBroadcast: Round.SHARE_KEYS,
    ForwardShares: Round.MASKED_INPUT,
    ConsistencyRequest: Round.CONSISTENCY_CHECK,
    UnmaskRequest: Round.UNMASKING,
}
#: the client message that answers each round
ANSWERS: dict[type[Message], Round] = {
    AdvertiseKeys: Round.ADVERTISE_KEYS,
    ShareKeys: Round.SHARE_KEYS,
    MaskedInput: Round.MASKED_INPUT,
    ConsistencyResponse: Round.CONSISTENCY_CHECK,
    UnmaskResponse: Round.UNMASKING,
}


class Start:
    """The server-side event "open the session" (:meth:`Server.start`)."""


class CloseRound:
    """The server-side event "the round's deadline passed" (the driver plays the clock)."""


# ============================================================================ client states
@dataclass(frozen=True)
class ClientIdle:
    """Before the session starts."""

    round = None


@dataclass(frozen=True)
class KeysAdvertised:
    """Sent its fresh X25519 keys; waits for its neighbours' keys."""

    round = Round.ADVERTISE_KEYS
    nonce: bytes
    c_key: AgreementKey
    s_key: AgreementKey


@dataclass(frozen=True)
class KeysShared:
    """Sent its encrypted shares; waits for those addressed to it."""

    round = Round.SHARE_KEYS
    nonce: bytes
    R: bytes  # the session identity
    peers: Mapping[int, tuple[bytes, bytes]]  # neighbour -> (c_pk, s_pk)
    enc_keys: Mapping[int, bytes]  # neighbour -> AEAD key
    mask_seeds: Mapping[int, bytes]  # neighbour -> pairwise mask seed
    mac_keys: Mapping[int, bytes]  # neighbour -> consistency-voucher key (active server only)
    b: bytes  # self-mask seed
    own_share: np.ndarray  # (2, L): its own shares of b and of s_sk


@dataclass(frozen=True)
class InputSent:
    """Sent its masked input; holds the shares it may later reveal."""

    round = Round.MASKED_INPUT
    nonce: bytes
    R: bytes
    shares: Mapping[int, np.ndarray]  # owner -> (2, L) uint32 (row 0: b, row 1: s_sk)
    u2: frozenset[int]  # neighbours it masked with, and itself
    complaints: tuple[int, ...]
    mac_keys: Mapping[int, bytes]  # neighbour -> consistency-voucher key (active server only)


@dataclass(frozen=True)
class SurvivorsVouched:
    """Vouched for the survivor set to its neighbours (active server only); waits for the
    unmask request."""

    round = Round.CONSISTENCY_CHECK
    nonce: bytes
    R: bytes
    shares: Mapping[int, np.ndarray]
    u2: frozenset[int]
    complaints: tuple[int, ...]
    mac_keys: Mapping[int, bytes]
    vouched: bytes  # SHA-256 of what it vouched for (R and the bitmap of U3): O(1), not O(n)


@dataclass(frozen=True)
class ClientDone:
    """Revealed its shares; answers nothing more."""

    round = Round.UNMASKING
    revealed_self_mask: tuple[int, ...]
    revealed_mask_key: tuple[int, ...]


ClientState = Union[ClientIdle, KeysAdvertised, KeysShared, InputSent, SurvivorsVouched, ClientDone]

_CLIENT_COMMON: dict[tuple[type, type[Message]], type] = {
    (ClientIdle, StartSession): KeysAdvertised,
    (KeysAdvertised, KeysBroadcast): KeysShared,
    (KeysShared, ForwardShares): InputSent,
}
#: (client state, message received) -> next client state; per adversary model
_CLIENT: dict[bool, dict[tuple[type, type[Message]], type]] = {
    True: {  # active server: the survivor set is vouched for before anything is revealed
        **_CLIENT_COMMON,
        (InputSent, ConsistencyRequest): SurvivorsVouched,
        (SurvivorsVouched, UnmaskRequest): ClientDone,
    },
    False: {  # honest-but-curious server: unmasking right after the masked inputs
        **_CLIENT_COMMON,
        (InputSent, UnmaskRequest): ClientDone,
    },
}


def client_transitions(active: bool) -> Mapping[tuple[type, type[Message]], type]:
    """The client's table: ``(state class, message class) -> next state class``."""
    return _CLIENT[bool(active)]


# ============================================================================ server states
@dataclass(frozen=True)
class ServerIdle:
    """Before ``start()``."""

    round = None


@dataclass(frozen=True)
class AwaitKeys:
    """Collecting AdvertiseKeys (U1)."""

    round = Round.ADVERTISE_KEYS
    n: int
    u1: dict[int, tuple[bytes, bytes, bytes]] = field(default_factory=dict)  # id -> (c_pk, s_pk, sig)
    seen_keys: set[bytes] = field(default_factory=set)  # every advertised public key

    def eligible(self) -> range:
        """Who may send in this round: everybody."""
        return range(self.n)

    def answered(self) -> Mapping[int, object]:
        return self.u1


@dataclass(frozen=True)
class AwaitShares:
    """Keys broadcast (the session identity R is fixed); collecting ShareKeys (U2)."""

    round = Round.SHARE_KEYS
    keys: Mapping[int, tuple[bytes, bytes]]  # U1: id -> (c_pk, s_pk)
    R: bytes
    u2: dict[int, dict[int, bytes]] = field(default_factory=dict)  # sender -> {recipient: ciphertext}

    def eligible(self) -> Mapping[int, object]:
        """Who may send: the clients that advertised keys (U1)."""
        return self.keys

    def answered(self) -> Mapping[int, object]:
        return self.u2


@dataclass(frozen=True)
class AwaitInputs:
    """Ciphertexts forwarded (and forgotten); collecting MaskedInput until the deadline."""

    round = Round.MASKED_INPUT
    keys: Mapping[int, tuple[bytes, bytes]]
    R: bytes
    u2: frozenset[int]
    pending: dict[int, MaskedInput] = field(default_factory=dict)

    def eligible(self) -> frozenset[int]:
        """Who may send: the clients that shared keys (U2)."""
        return self.u2

    def answered(self) -> Mapping[int, object]:
        return self.pending


@dataclass(frozen=True)
class _Fixed:
    """What is fixed once the masked inputs closed: U3, the sum of its masked inputs, the
    seed commitments, the complaints and who was excluded."""

    keys: Mapping[int, tuple[bytes, bytes]]
    R: bytes
    u2: frozenset[int]
    u3: frozenset[int]
    acc: np.ndarray
    b_commit: Mapping[int, bytes]
    complaints: Mapping[int, frozenset[int]]
    excluded: Mapping[int, str]


@dataclass(frozen=True)
class AwaitVouchers(_Fixed):
    """Collecting ConsistencyResponse (U4; active server only)."""

    round = Round.CONSISTENCY_CHECK
    u4: dict[int, dict[int, bytes]] = field(default_factory=dict)  # id -> {neighbour: voucher MAC over (R, U3)}

    def eligible(self) -> frozenset[int]:
        """Who may send: the survivors (U3)."""
        return self.u3

    def answered(self) -> Mapping[int, object]:
        return self.u4


@dataclass(frozen=True)
class AwaitShareReveals(_Fixed):
    """Collecting UnmaskResponse (U5)."""

    round = Round.UNMASKING
    u4: frozenset[int] = frozenset()  # who was asked (vouched for U3; all of U3 without the check)
    u5: dict[int, tuple[dict[int, np.ndarray], dict[int, np.ndarray]]] = field(default_factory=dict)

    def eligible(self) -> frozenset[int]:
        """Who may send: the clients that were asked to unmask (U4)."""
        return self.u4

    def answered(self) -> Mapping[int, object]:
        return self.u5


@dataclass(frozen=True)
class ServerDone:
    """The ring sum of U3."""

    round = None
    result: np.ndarray
    u3: frozenset[int]
    excluded: Mapping[int, str]


@dataclass(frozen=True)
class ServerAborted:
    """No result; ``reason`` says why."""

    round = None
    reason: str
    blamed: tuple[int, ...] = ()


ServerState = Union[ServerIdle, AwaitKeys, AwaitShares, AwaitInputs, AwaitVouchers, AwaitShareReveals,
                    ServerDone, ServerAborted]

_SERVER_COMMON: dict[tuple[type, type], type] = {
    (ServerIdle, Start): AwaitKeys,
    (AwaitKeys, AdvertiseKeys): AwaitKeys,
    (AwaitKeys, CloseRound): AwaitShares,
    (AwaitShares, ShareKeys): AwaitShares,
    (AwaitShares, CloseRound): AwaitInputs,
    (AwaitInputs, MaskedInput): AwaitInputs,
    (AwaitShareReveals, UnmaskResponse): AwaitShareReveals,
    (AwaitShareReveals, CloseRound): ServerDone,
}
#: (server state, event) -> next server state; events are client message classes and
#: :class:`CloseRound` (the driver's deadline); per adversary model
_SERVER: dict[bool, dict[tuple[type, type], type]] = {
    True: {
        **_SERVER_COMMON,
        (AwaitInputs, CloseRound): AwaitVouchers,
        (AwaitVouchers, ConsistencyResponse): AwaitVouchers,
        (AwaitVouchers, CloseRound): AwaitShareReveals,
    },
    False: {
        **_SERVER_COMMON,
        (AwaitInputs, CloseRound): AwaitShareReveals,
    },
}


def server_transitions(active: bool) -> Mapping[tuple[type, type], type]:
    """The server's table: ``(state class, event class) -> next state class``."""
    return _SERVER[bool(active)]


#: the round a server or client state belongs to (``None``: before or after the session)
ROUND_OF: dict[type, Round | None] = {
    cls: cls.round
    for cls in (ClientIdle, KeysAdvertised, KeysShared, InputSent, SurvivorsVouched, ClientDone,
                ServerIdle, AwaitKeys, AwaitShares, AwaitInputs, AwaitVouchers, AwaitShareReveals,
                ServerDone, ServerAborted)
}
