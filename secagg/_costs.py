"""The cost record every result carries: bytes and seconds per round and per party.

One type for every technique and driver (the masking session in process, over Ray or over
the network; the one-round plain, Paillier and DP aggregators; distributed DP), so a cost
is never carried through an adapter that could turn a shape mistake into a silent zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .errors import InputError

__all__ = ["CostTotals", "Costs"]


@dataclass
class Costs:
    """Bytes and seconds of one session, per round and party (every attempt included).

    Attributes
    ----------
    rounds:
        the round names the session ran, in order.
    bytes_up, bytes_down:
        ``{round: int64 (n,)}``: bytes each client sent to / received from the server
        (``len(message.to_bytes())``, or frame bytes over a network).
    client_seconds:
        ``{round: float64 (n,)}``: wall seconds of each client's work.
    server_bytes_sent:
        ``{round: int}``: bytes the server sent, including to clients that had gone silent.
    server_seconds, round_seconds:
        ``{round: float}``: the server's work, and the whole round as the driver saw it.
    """

    rounds: tuple[str, ...]
    bytes_up: dict[str, np.ndarray]
    bytes_down: dict[str, np.ndarray]
    client_seconds: dict[str, np.ndarray]
    server_bytes_sent: dict[str, int]
    server_seconds: dict[str, float]
    round_seconds: dict[str, float]

    @classmethod
    def zeros(cls, rounds: Sequence[str], n: int) -> "Costs":
        rs = tuple(rounds)
        return cls(
            rounds=rs,
            bytes_up={r: np.zeros(n, dtype=np.int64) for r in rs},
            bytes_down={r: np.zeros(n, dtype=np.int64) for r in rs},
            client_seconds={r: np.zeros(n) for r in rs},
            server_bytes_sent={r: 0 for r in rs},
            server_seconds={r: 0.0 for r in rs},
            round_seconds={r: 0.0 for r in rs},
        )

    @classmethod
    def one_round(cls, n: int, *, bytes_up: Any, bytes_down: Any = None, client_seconds: Any = None,
                  server_seconds: float = 0.0, round: str = "upload") -> "Costs":
        """The costs of a technique with a single upload (plain, Paillier, central/local DP).

        Raises :class:`InputError` when a per-client array is not of shape ``(n,)``.
        """
        c = cls.zeros((round,), n)
        for name, value in (("bytes_up", bytes_up), ("bytes_down", bytes_down), ("client_seconds", client_seconds)):
            if value is None:
                continue
            arr = np.asarray(value)
            if arr.shape != (n,):
                raise InputError(f"{name} must have shape ({n},), got {arr.shape}")
            getattr(c, name)[round] = arr.astype(np.int64 if name != "client_seconds" else np.float64)
        c.server_bytes_sent[round] = int(c.bytes_down[round].sum())
        c.server_seconds[round] = float(server_seconds)
        return c

    def add(self, other: "Costs") -> "Costs":
        """Counters of ``other`` added round by round (its rounds must be known here)."""
        for r in other.rounds:
            if r not in self.bytes_up:
                raise InputError(f"cannot add the costs of round {r!r} to a record of rounds {self.rounds}")
            self.bytes_up[r] += other.bytes_up[r]
            self.bytes_down[r] += other.bytes_down[r]
            self.client_seconds[r] += other.client_seconds[r]
            self.server_bytes_sent[r] += other.server_bytes_sent[r]
            self.server_seconds[r] += other.server_seconds[r]
            self.round_seconds[r] += other.round_seconds[r]
        return self

    def with_leading_round(self, name: str, *, client_seconds: Any = None, server_seconds: float = 0.0) -> "Costs":
        """A copy with one more round in front (no bytes: work done before the protocol,
        such as a client's DP encoding), e.g. ``"encode"``.

        Raises :class:`InputError` for a name already used or a wrong shape."""
        if name in self.bytes_up:
            raise InputError(f"the costs already have a round {name!r}")
        n = self.n
        cs = np.zeros(n) if client_seconds is None else np.asarray(client_seconds, dtype=np.float64)
        if cs.shape != (n,):
            raise InputError(f"client_seconds must have shape ({n},), got {cs.shape}")
        return Costs(
            rounds=(name, *self.rounds),
            bytes_up={name: np.zeros(n, dtype=np.int64), **self.bytes_up},
            bytes_down={name: np.zeros(n, dtype=np.int64), **self.bytes_down},
            client_seconds={name: cs, **self.client_seconds},
            server_bytes_sent={name: 0, **self.server_bytes_sent},
            server_seconds={name: float(server_seconds), **self.server_seconds},
            round_seconds={name: 0.0, **self.round_seconds},
        )

    @property
    def n(self) -> int:
        return len(next(iter(self.bytes_up.values()))) if self.bytes_up else 0

    @property
    def server_bytes_received(self) -> dict[str, int]:
        """``{round: int}``: what the clients sent, as the server received it."""
        return {r: int(v.sum()) for r, v in self.bytes_up.items()}

    @property
    def total_bytes_up(self) -> np.ndarray:
        """int64 ``(n,)``: bytes each client sent over all rounds."""
        total: np.ndarray = np.sum([self.bytes_up[r] for r in self.rounds], axis=0)  # numpy: Any for a list
        return total.astype(np.int64)

    @property
    def total_bytes_down(self) -> np.ndarray:
        """int64 ``(n,)``: bytes each client received over all rounds."""
        total: np.ndarray = np.sum([self.bytes_down[r] for r in self.rounds], axis=0)  # numpy: Any for a list
        return total.astype(np.int64)

    @property
    def total_client_seconds(self) -> np.ndarray:
        """float64 ``(n,)``: each client's seconds over all rounds."""
        total: np.ndarray = np.sum([self.client_seconds[r] for r in self.rounds], axis=0)  # numpy: Any for a list
        return total

    @property
    def total_server_seconds(self) -> float:
        return float(sum(self.server_seconds.values()))

    def summary(self) -> dict[str, Any]:
        """JSON-ready per-round totals."""
        return {
            r: {"client_bytes_up": int(self.bytes_up[r].sum()), "client_bytes_down": int(self.bytes_down[r].sum()),
                "client_seconds": float(self.client_seconds[r].sum()), "server_bytes_sent": self.server_bytes_sent[r],
                "server_seconds": self.server_seconds[r], "round_seconds": self.round_seconds[r]}
            for r in self.rounds
        }


class CostTotals:
    """Per-client totals over all rounds, read from a result's ``costs`` (a :class:`Costs`).

    A mixin for the result types that carry one, so each exposes the same four totals.
    """

    costs: Costs

    @property
    def bytes_up(self) -> np.ndarray:
        """int64 ``(n,)``: bytes each client sent over all rounds."""
        return self.costs.total_bytes_up

    @property
    def bytes_down(self) -> np.ndarray:
        """int64 ``(n,)``: bytes each client received over all rounds."""
        return self.costs.total_bytes_down

    @property
    def client_seconds(self) -> np.ndarray:
        """float64 ``(n,)``: each client's protocol/crypto seconds over all rounds."""
        return self.costs.total_client_seconds

    @property
    def server_seconds(self) -> float:
        """The server's protocol/crypto seconds over all rounds."""
        return self.costs.total_server_seconds
