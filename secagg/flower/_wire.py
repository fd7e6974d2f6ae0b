"""How secagg's protocol messages sit in Flower messages: the one place that knows the
record names, the announcement both sides agree on, and how Flower's 64-bit node ids
become party ids ``0..n-1``.

Every Flower message of a session carries one :class:`flwr.app.ConfigRecord` named
:data:`RECORD`:

=============  ================================  ==========================================
key            server -> client                  client -> server
=============  ================================  ==========================================
``msg``        one secagg message (bytes)        the client's answers (list of bytes)
``ann``        the announcement (first round)    --
``dir``        the key directory of the          --
               recipient's neighbours (active,
               second round)
``vk``         --                                its Ed25519 verification key (first round)
``seconds``    --                                its protocol work, in seconds (float)
=============  ================================  ==========================================

The announcement (:class:`Announcement`) is canonical JSON: the session parameters, the
sorted node ids (party ``u`` is ``node_ids[u]``), the graph seed, the vector layout
(:mod:`secagg.flower._encoding`), the Flower round and a fresh salt. The session nonce
that every secagg message carries is ``SHA-256(label || announcement bytes)``, and the
client recomputes it from the bytes it received: the key signatures, the session
identity ``R`` and the consistency round therefore bind the whole announcement, so a
server that shows two clients different parameters, node lists or noise levels makes the
session abort instead of unmasking anything.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import DecodeError, IntegrityError, ProtocolViolation
from ._encoding import Encoding, encoding_from_dict

__all__ = ["RECORD", "STATE_RECORD", "Announcement", "session_nonce", "pack_directory", "unpack_directory"]

RECORD = "secagg"
#: the client's own record in ``Context.state`` (never leaves the node)
STATE_RECORD = "secagg.client"
K_MSG, K_ANNOUNCEMENT, K_DIRECTORY, K_VERIFY_KEY, K_SECONDS = "msg", "ann", "dir", "vk", "seconds"

ANNOUNCEMENT_LABEL = b"secagg/flower/announcement/v1"
ANNOUNCEMENT_VERSION = 1
#: an announcement larger than this is refused before parsing (a million node ids fit)
MAX_ANNOUNCEMENT = 32 << 20
_ENTRY = struct.Struct(">I32s")


def session_nonce(announcement: bytes) -> bytes:
    """The 32-byte session nonce bound to the announcement's exact bytes."""
    return hashlib.sha256(ANNOUNCEMENT_LABEL + announcement).digest()


@dataclass(frozen=True)
class Announcement:
    """What the server announces in the first message of a session (see the module docstring).

    ``node_ids`` are strictly increasing Flower node ids; ``graph_seed`` and ``salt`` are
    32 and 16 bytes; the other fields are those of
    :meth:`secagg.masking.SecurityPolicy.config_for` plus the vector layout ``encoding``
    and the Flower ``round``.
    """

    node_ids: tuple[int, ...]
    dim: int
    bits: int
    threshold: int
    graph: str
    k: int
    adversary: str
    min_survivors: int
    graph_seed: bytes
    encoding: Encoding
    round: int
    salt: bytes

    @property
    def n(self) -> int:
        return len(self.node_ids)

    def config_fields(self) -> dict[str, Any]:
        """Keyword arguments of :meth:`SecurityPolicy.config_for`."""
        return dict(n=self.n, dim=self.dim, bits=self.bits, threshold=self.threshold, graph=self.graph, k=self.k,
                    adversary=self.adversary, min_survivors=self.min_survivors)

    def party_of(self, node_id: int) -> int:
        """The party id of ``node_id`` (its index in ``node_ids``).

        Raises :class:`ProtocolViolation` when the node is not in the session."""
        lo, hi = 0, len(self.node_ids)
        while lo < hi:  # bisect: node_ids is strictly increasing (checked when decoded)
            mid = (lo + hi) // 2
            if self.node_ids[mid] < node_id:
                lo = mid + 1
            else:
                hi = mid
        if lo == len(self.node_ids) or self.node_ids[lo] != node_id:
            raise ProtocolViolation(f"the announcement does not list this node ({node_id}) among the session's "
                                    f"{len(self.node_ids)} nodes")
        return lo

    def to_bytes(self) -> bytes:
        body = {
            "v": ANNOUNCEMENT_VERSION, "node_ids": list(self.node_ids), "dim": self.dim, "bits": self.bits,
            "threshold": self.threshold, "graph": self.graph, "k": self.k, "adversary": self.adversary,
            "min_survivors": self.min_survivors, "graph_seed": self.graph_seed.hex(),
            "encoding": self.encoding.to_dict(), "round": self.round, "salt": self.salt.hex(),
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: Any) -> "Announcement":
        """Parse and check the shape of an announcement; :class:`DecodeError` for anything malformed."""
        if not isinstance(data, bytes) or len(data) > MAX_ANNOUNCEMENT:
            raise DecodeError("the announcement must be bytes of at most 32 MiB")
        try:
            d = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise DecodeError("the announcement is not UTF-8 JSON") from None
        if not isinstance(d, dict) or d.get("v") != ANNOUNCEMENT_VERSION:
            raise DecodeError(f"the announcement is not of version {ANNOUNCEMENT_VERSION}")
        try:
            ids = d["node_ids"]
            ints = {name: d[name] for name in ("dim", "bits", "threshold", "k", "min_survivors", "round")}
            if not isinstance(ids, list) or not all(type(v) is int and v >= 0 for v in ids):
                raise DecodeError("the announcement's node_ids must be a list of non-negative integers")
            if any(b <= a for a, b in zip(ids, ids[1:])):
                raise DecodeError("the announcement's node_ids must be sorted and distinct")
            if not all(type(v) is int for v in ints.values()):
                raise DecodeError("the announcement's sizes must be integers")
            seed, salt = bytes.fromhex(d["graph_seed"]), bytes.fromhex(d["salt"])
            if len(seed) != 32 or len(salt) != 16:
                raise DecodeError("the announcement's graph_seed and salt must be 32 and 16 bytes")
            graph, adversary = d["graph"], d["adversary"]
            if not isinstance(graph, str) or not isinstance(adversary, str):
                raise DecodeError("the announcement's graph and adversary must be strings")
            return cls(tuple(ids), ints["dim"], ints["bits"], ints["threshold"], graph, ints["k"], adversary,
                       ints["min_survivors"], seed, encoding_from_dict(d["encoding"]), ints["round"], salt)
        except (KeyError, TypeError, ValueError) as exc:
            raise DecodeError(f"the announcement is missing or has a malformed field: {exc!r}") from None


def pack_directory(entries: Mapping[int, bytes]) -> bytes:
    """``{party: 32-byte verification key}`` as ``(u32 party || key)*`` sorted by party."""
    return b"".join(_ENTRY.pack(int(u), bytes(vk)) for u, vk in sorted(entries.items()))


def unpack_directory(data: Any) -> dict[int, bytes]:
    """Inverse of :func:`pack_directory`; :class:`DecodeError` if malformed, :class:`IntegrityError`
    if one key is listed for two parties (each party signs with its own key)."""
    if not isinstance(data, bytes) or len(data) % _ENTRY.size:
        raise DecodeError(f"the key directory must be bytes, a multiple of {_ENTRY.size} long")
    out: dict[int, bytes] = {}
    for off in range(0, len(data), _ENTRY.size):
        u, vk = _ENTRY.unpack_from(data, off)
        if u in out:
            raise DecodeError(f"the key directory lists party {u} twice")
        out[u] = vk
    if len(set(out.values())) != len(out):
        raise IntegrityError("the key directory lists one verification key for two parties")
    return out
