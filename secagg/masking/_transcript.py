"""Session binding: a Merkle tree over every client's advertised keys, and the session
identity derived from it, so that nothing signed or encrypted in one session verifies in
another.

Why: a server that chooses the session id alone can reuse it and replay signatures that
honest clients made in an earlier run (Bonawitz et al. CCS 2017 assume a unique session;
nothing in the messages enforced it). Here the session identity is

    R = SHA-256("secagg/session/v2" || config digest || len(nonce) || nonce || Merkle root)

where the Merkle root commits to the keys *every* client advertised in this run, in the
order of their positions on the masking graph. Each client rebuilds ``R`` from what it
was sent: its own fresh keys (it checks its own leaf), its neighbours' keys, and an
inclusion proof for the rest. Its own keys are fresh random X25519 keys, so ``R`` has
never occurred before, and every signature (consistency check), AEAD associated data
(share ciphertexts) and key derivation (mask seeds) of the session binds ``R``. Two
honest clients agree on ``R`` only if the server showed them the same keys for everyone
and the same parameters (the config digest), so a split view of the advertised keys or of
the parameters makes their signatures incompatible.

Tree layout: leaf ``p`` belongs to the client at graph position ``p`` (SecAgg+ places ids
on a circle; the complete graph uses ``p = id``); padding up to a power of two uses a
fixed empty leaf. Leaves and nodes are domain-separated (RFC 6962 style prefixes 0x00,
0x01, plus 0x02 for padding). A client's holders occupy one or two contiguous runs of
positions, so its proof is at most about ``4 log2(n)`` hashes, whatever ``k`` is.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Sequence

__all__ = [
    "HASH_LEN",
    "leaf_hash",
    "absent_leaf",
    "MerkleTree",
    "proof_nodes",
    "root_from_proof",
    "session_identity",
]

HASH_LEN = 32
_U32 = struct.Struct(">I")
_EMPTY = hashlib.sha256(b"\x02secagg/merkle/empty").digest()


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf_hash(party: int, c_pk: bytes, s_pk: bytes) -> bytes:
    """Leaf of a client that advertised its two X25519 public keys."""
    return _h(b"\x00\x01" + _U32.pack(party) + c_pk + s_pk)


def absent_leaf(party: int) -> bytes:
    """Leaf of a client that did not advertise keys in this session."""
    return _h(b"\x00\x00" + _U32.pack(party))


def _node(left: bytes, right: bytes) -> bytes:
    return _h(b"\x01" + left + right)


def _depth(num_leaves: int) -> int:
    return max(0, (num_leaves - 1).bit_length())


def _ranges_of(indices: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted disjoint inclusive runs covering ``indices``."""
    out: list[tuple[int, int]] = []
    for i in sorted(set(indices)):
        if out and i == out[-1][1] + 1:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return out


def proof_nodes(num_leaves: int, known: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The ``(level, index)`` nodes a holder of the leaves in the inclusive position runs
    ``known`` needs to rebuild the root, in the order both sides use (level, then index).

    Runs are walked up the tree: at each level a run ``[a, b]`` needs the sibling of ``a``
    when ``a`` is odd and the sibling of ``b`` when ``b`` is even (if it exists and is not
    covered by another run); then the runs halve.
    """
    runs = _merge(list(known))
    out: list[tuple[int, int]] = []
    width = 1 << _depth(num_leaves)
    for level in range(_depth(num_leaves)):
        covered = runs
        need: list[int] = []
        for a, b in covered:
            if a & 1 and not _inside(covered, a - 1):
                need.append(a - 1)
            if not b & 1 and b + 1 < width and not _inside(covered, b + 1):
                need.append(b + 1)
        out.extend((level, i) for i in sorted(set(need)))
        runs = _merge([(a >> 1, b >> 1) for a, b in covered])
        width >>= 1
    return out


def _merge(runs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    runs = sorted(runs)
    out: list[tuple[int, int]] = []
    for a, b in runs:
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _inside(runs: list[tuple[int, int]], i: int) -> bool:
    return any(a <= i <= b for a, b in runs)


class MerkleTree:
    """The server's full tree over ``leaves`` (one 32-byte hash per position)."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        if not leaves:
            raise ValueError("a Merkle tree needs at least one leaf")
        self.num_leaves = len(leaves)
        width = 1 << _depth(self.num_leaves)
        level = list(leaves) + [_EMPTY] * (width - self.num_leaves)
        self.levels: list[list[bytes]] = [level]
        while len(level) > 1:
            level = [_node(level[i], level[i + 1]) for i in range(0, len(level), 2)]
            self.levels.append(level)

    @property
    def root(self) -> bytes:
        return self.levels[-1][0]

    def proof(self, known: Sequence[tuple[int, int]]) -> tuple[bytes, ...]:
        """Hashes of :func:`proof_nodes` for a holder of the leaves in runs ``known``."""
        return tuple(self.levels[lvl][i] for lvl, i in proof_nodes(self.num_leaves, known))


def root_from_proof(num_leaves: int, known: dict[int, bytes], proof: Sequence[bytes]) -> bytes | None:
    """Rebuild the root from the leaves ``known`` (position -> leaf hash) and ``proof``
    (in :func:`proof_nodes` order). Returns ``None`` when the proof has the wrong length
    (the caller treats that as a protocol violation)."""
    runs = _ranges_of(list(known))
    needed = proof_nodes(num_leaves, runs)
    if len(proof) != len(needed) or any(len(p) != HASH_LEN for p in proof):
        return None
    if any(not 0 <= i < num_leaves for i in known):
        return None
    nodes: dict[int, bytes] = dict(known)
    supplied: dict[tuple[int, int], bytes] = dict(zip(needed, proof))
    for level in range(_depth(num_leaves)):
        for (lvl, i), h in supplied.items():
            if lvl == level:
                nodes[i] = h
        parents: dict[int, bytes] = {}
        for i in sorted(nodes):
            p = i >> 1
            if p in parents:
                continue
            left, right = nodes.get(2 * p), nodes.get(2 * p + 1)
            if left is None or right is None:
                return None
            parents[p] = _node(left, right)
        nodes = parents
    if len(nodes) != 1 or 0 not in nodes:
        return None
    return nodes[0]


def session_identity(config_digest: bytes, nonce: bytes, root: bytes) -> bytes:
    """``R``: the 32-byte identity every signature and key of the session binds."""
    return _h(b"secagg/session/v2" + config_digest + bytes((len(nonce),)) + nonce + root)
