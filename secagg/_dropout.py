"""Who drops out, and when: the one dropout-schedule type every technique and driver uses.

A schedule maps client ids to the protocol round at which they go silent (a client that
drops at a round sends nothing from that round on and receives nothing). Techniques
without rounds (plain sums, Paillier, central and local DP) only use the set of ids.
"""

from __future__ import annotations

from typing import Iterator, Mapping

import numpy as np

from .errors import InputError

__all__ = ["DropoutSchedule", "ROUND_NAMES"]

#: the protocol rounds of the masking protocol, in order (schedules name one of them)
ROUND_NAMES: tuple[str, ...] = ("advertise_keys", "share_keys", "masked_input", "consistency_check", "unmasking")


class DropoutSchedule(Mapping[int, str]):
    """An immutable ``{client id: round name}`` for ``n`` clients.

    Build one with :meth:`resolve` from what users pass as ``dropout=``: ``None`` (nobody
    drops), a rate in ``[0, 1)`` (``round(rate * n)`` clients chosen with ``rng`` drop at
    ``at``), or a mapping ``{id: round}`` (validated and copied).
    """

    __slots__ = ("n", "_drops")

    def __init__(self, n: int, drops: Mapping[int, str] | None = None) -> None:
        self.n = int(n)
        self._drops: dict[int, str] = dict(drops or {})

    @classmethod
    def resolve(cls, n: int, dropout: float | Mapping[int, str] | DropoutSchedule | None = None,
                at: str = "masked_input",
                rng: np.random.Generator | None = None) -> "DropoutSchedule":
        """Validate ``dropout`` for ``n`` clients.

        Raises
        ------
        InputError
            a rate outside ``[0, 1)``, ids outside ``[0, n)``, unknown round names.
        """
        if isinstance(dropout, DropoutSchedule):
            if dropout.n != n:
                raise InputError(f"the dropout schedule is for {dropout.n} clients, the session has {n}")
            return dropout
        if at not in ROUND_NAMES:
            raise InputError(f"dropout round must be one of {', '.join(ROUND_NAMES)}, got {at!r}")
        if dropout is None:
            return cls(n)
        if isinstance(dropout, Mapping):
            drops: dict[int, str] = {}
            for u, r in dropout.items():
                if isinstance(u, bool) or not isinstance(u, (int, np.integer)) or not 0 <= int(u) < n:
                    raise InputError(f"dropout ids must be client ids in [0, {n}), got {u!r}")
                if r not in ROUND_NAMES:
                    raise InputError(f"dropout round for client {u} must be one of {', '.join(ROUND_NAMES)}, got {r!r}")
                drops[int(u)] = str(r)
            return cls(n, drops)
        try:
            rate = float(dropout)
        except (TypeError, ValueError):
            raise InputError(f"dropout must be None, a rate in [0, 1) or a mapping, got {dropout!r}") from None
        if not 0.0 <= rate < 1.0:
            raise InputError(f"dropout rate must be in [0, 1), got {dropout!r}")
        gen = rng if rng is not None else np.random.default_rng()
        count = int(round(rate * n))
        chosen = gen.choice(n, size=count, replace=False) if count else np.zeros(0, dtype=np.int64)
        return cls(n, {int(u): at for u in chosen})

    @property
    def rows(self) -> np.ndarray:
        """Sorted int64 ids that drop (for techniques without rounds)."""
        return np.array(sorted(self._drops), dtype=np.int64)

    @property
    def fraction(self) -> float:
        """Fraction of the ``n`` clients that drop."""
        return len(self._drops) / self.n if self.n else 0.0

    def __getitem__(self, u: int) -> str:
        return self._drops[u]

    def __iter__(self) -> Iterator[int]:
        return iter(self._drops)

    def __len__(self) -> int:
        return len(self._drops)

    def __repr__(self) -> str:
        return f"DropoutSchedule(n={self.n}, {self._drops!r})"
