"""Who masks with whom: the complete graph of SecAgg and the sparse k-regular graph of SecAgg+.

Implements the communication graphs of Bonawitz et al., "Practical Secure Aggregation
for Privacy-Preserving Machine Learning" (CCS 2017: every pair of clients shares a
pairwise mask) and Bell et al., "Secure Single-Server Aggregation with (Poly)Logarithmic
Overhead" (CCS 2020, "SecAgg+": each client masks with, and secret-shares to, only its
``k = O(log n)`` neighbours).

Sparse graph
------------
We use the Harary graph ``H_{k,n}`` (the circulant graph in which position ``i`` is joined
to positions ``i +- 1, ..., i +- k/2`` modulo ``n``; ``k`` even) with the client ids placed
on the circle by a pseudorandom permutation expanded from a 32-byte seed with AES-CTR
(:func:`secagg.prg.expand`). The seed is part of the session *setup*, drawn with
``secrets.token_bytes`` by whoever is trusted to set the session up (in the simulator:
the driver; in a deployment: a public randomness beacon or a commit-then-reveal among
the clients). Every client recomputes the graph from the seed and rejects a server that
forwards keys of anybody other than its own neighbours, so the server cannot choose the
neighbourhoods. Dropouts and corruptions are assumed to be independent of the seed
(static adversary), as in Bell et al.

Each client ``u`` secret-shares its two seeds among its *holders*
``H(u) = N(u) + {u}`` (``k + 1`` parties; ``n`` for the complete graph) with threshold
``t``. ``k`` and ``t`` come from the threat model through the parameter finder
(:mod:`secagg.masking.params`): the smallest ``k = O(log n)`` for which every honest
client keeps few enough corrupt holders, the honest survivors stay connected, and every
client keeps ``t`` live holders, each with all but negligible probability.

Positions: the session transcript (:mod:`secagg.masking._transcript`) orders its Merkle
leaves by position on the circle, so a client's holders occupy one or two contiguous runs
of positions (:meth:`Graph.holder_runs`) and its inclusion proof stays ``O(log n)``.
"""

from __future__ import annotations

import secrets as _secrets
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigurationError, InputError

__all__ = ["Graph", "complete_graph", "harary_graph"]

_NO_PLACEMENT = np.empty(0, dtype=np.int64)
_NO_PLACEMENT.flags.writeable = False


@dataclass(frozen=True)
class Graph:
    """An undirected, regular masking graph over clients ``0..n-1``.

    Attributes
    ----------
    n:
        number of clients.
    kind:
        ``"complete"`` or ``"sparse"``.
    k:
        degree (``n - 1`` for the complete graph).
    seed:
        the 32-byte permutation seed of a sparse graph (``b""`` for complete).
    """

    n: int
    kind: str
    k: int
    seed: bytes = b""
    # the sparse graph's placement: _pos[id] = position, _order[position] = id (empty for
    # the complete graph, whose positions are the ids)
    _pos: np.ndarray = field(default_factory=lambda: _NO_PLACEMENT, repr=False, compare=False)
    _order: np.ndarray = field(default_factory=lambda: _NO_PLACEMENT, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind == "sparse" and not (self._pos.shape == self._order.shape == (self.n,)):
            raise ConfigurationError("a sparse graph needs its placement: build it with harary_graph()")

    def neighbors(self, u: int) -> np.ndarray:
        """Sorted int64 array of ``u``'s ``k`` neighbours (``u`` excluded)."""
        u = self._check(u)
        if self.kind == "complete":
            return np.concatenate([np.arange(u, dtype=np.int64), np.arange(u + 1, self.n, dtype=np.int64)])
        half = self.k // 2
        p = int(self._pos[u])
        offs = np.concatenate([np.arange(1, half + 1), -np.arange(1, half + 1)])
        return np.sort(self._order[(p + offs) % self.n]).astype(np.int64)

    def holders(self, u: int) -> np.ndarray:
        """Sorted int64 array of the parties holding shares of ``u``'s seeds: neighbours and ``u``."""
        u = self._check(u)
        return np.sort(np.append(self.neighbors(u), u)).astype(np.int64)

    def is_neighbor(self, u: int, v: int) -> bool:
        """Whether ``u`` and ``v`` (distinct) mask with each other."""
        if u == v:
            return False
        if self.kind == "complete":
            return 0 <= u < self.n and 0 <= v < self.n
        d = abs(int(self._pos[u]) - int(self._pos[v]))
        return min(d, self.n - d) <= self.k // 2

    def position(self, u: int) -> int:
        """Position of client ``u`` on the circle (its id on the complete graph)."""
        u = self._check(u)
        return u if self.kind == "complete" else int(self._pos[u])

    def party_at(self, position: int) -> int:
        """The client at ``position``."""
        return int(position) if self.kind == "complete" else int(self._order[int(position)])

    def holder_runs(self, u: int) -> list[tuple[int, int]]:
        """Inclusive runs of positions of ``u``'s holders (one run, or two when the
        neighbourhood wraps around the circle); the complete graph is one run ``(0, n-1)``."""
        u = self._check(u)
        if self.kind == "complete":
            return [(0, self.n - 1)]
        half = self.k // 2
        p = int(self._pos[u])
        a, b = p - half, p + half
        if a < 0:
            return [(0, b), (self.n + a, self.n - 1)]
        if b >= self.n:
            return [(0, b - self.n), (a, self.n - 1)]
        return [(a, b)]

    @property
    def num_holders(self) -> int:
        """``k + 1``: how many parties hold shares of each client's seeds."""
        return self.k + 1

    def _check(self, u: object) -> int:
        if not isinstance(u, (int, np.integer)) or not 0 <= int(u) < self.n:
            raise InputError(f"client id must be an integer in [0, {self.n}), got {u!r}")
        return int(u)


def complete_graph(n: int) -> Graph:
    """The complete graph of SecAgg: every client masks with every other one."""
    _check_n(n)
    return Graph(n=int(n), kind="complete", k=int(n) - 1)


def harary_graph(n: int, k: int, seed: bytes | None = None) -> Graph:
    """The Harary graph ``H_{k,n}`` with ids placed by a permutation derived from ``seed``.

    ``k`` must be even and ``2 <= k <= n - 1``; ``k >= n - 1`` gives the complete graph
    (returned as such). ``seed`` is 32 bytes (default: ``secrets.token_bytes(32)``); the
    permutation is ``argsort`` of ``n`` AES-CTR 64-bit words expanded from it.

    Raises :class:`ConfigurationError` for odd or out-of-range ``k``, :class:`InputError`
    for a bad seed.
    """
    from .. import prg

    _check_n(n)
    n = int(n)
    if not isinstance(k, (int, np.integer)) or k < 2:
        raise ConfigurationError(f"sparse graph degree k must be an integer >= 2, got {k!r}")
    k = int(k)
    if k >= n - 1:
        return complete_graph(n)
    if k % 2:
        raise ConfigurationError(
            f"sparse graph degree k must be even (the Harary graph H_(k,n) joins each client to "
            f"k/2 positions on each side), got {k}; use {k + 1}"
        )
    if seed is None:
        seed = _secrets.token_bytes(32)
    if not isinstance(seed, (bytes, bytearray)) or len(seed) != 32:
        raise InputError("graph seed must be 32 bytes")
    words = prg.expand(bytes(seed), n, np.uint64, label=b"secagg/graph")
    order = np.argsort(words, kind="stable").astype(np.int64)  # order[position] = client id
    pos = np.empty(n, dtype=np.int64)
    pos[order] = np.arange(n, dtype=np.int64)
    return Graph(n=n, kind="sparse", k=k, seed=bytes(seed), _pos=pos, _order=order)


def _check_n(n: object) -> None:
    if not isinstance(n, (int, np.integer)) or n < 2:
        raise ConfigurationError(f"secure aggregation needs at least 2 clients, got n={n!r}")
