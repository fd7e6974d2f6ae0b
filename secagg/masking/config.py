"""Parameters of one SecAgg / SecAgg+ session, validated once (Bonawitz et al. CCS 2017;
Bell et al. CCS 2020), plus the key-derivation labels both roles share."""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from .. import keys
from ..errors import ConfigurationError, InsecureParameterError
from ..quantize import Quantizer, ring_dtype
from ._graph import Graph, complete_graph, harary_graph
from ._messages import MAC_LEN, MAX_PARTIES, PartySet, ids_to_bitmap
from .params import SessionParameters, ThreatModel, check_parameters, find_parameters, min_secure_threshold

__all__ = ["MaskingConfig"]

#: PRG labels (domain separation between self masks and pairwise masks)
SELF_MASK_LABEL = b"secagg/self-mask"
PAIR_MASK_LABEL = b"secagg/pair-mask"
SEED_LEN = 32


def pair_info(session: bytes, u: int, v: int, purpose: bytes) -> bytes:
    """HKDF ``info`` = u8 len(session) || session || u32 min || u32 max || purpose (binds
    the pair and the session identity ``R``; the length prefix makes it injective)."""
    a, b = (u, v) if u < v else (v, u)
    return bytes((len(session),)) + session + struct.pack(">II", a, b) + purpose


def advertise_payload(config_digest: bytes, nonce: bytes, sender: int, c_pk: bytes, s_pk: bytes) -> bytes:
    """Bytes signed in AdvertiseKeys (active variant): the client's fresh keys, bound to its
    own view of the session parameters (``config_digest``) and the server's nonce."""
    return (b"secagg/advertise/v2" + config_digest + bytes((len(nonce),)) + nonce
            + struct.pack(">I", sender) + c_pk + s_pk)


def pair_keys(c_shared: bytes, session: bytes, u: int, v: int, vouchers: bool) -> tuple[bytes, bytes]:
    """The 32-byte AES-GCM key for the share ciphertexts between ``u`` and ``v`` and, when
    ``vouchers`` (active server), their 32-byte consistency-voucher key (else ``b""``):
    one HKDF-SHA256 call over their X25519 ``c`` agreement, bound to ``R`` and the pair."""
    label = b"share-encryption|consistency-voucher" if vouchers else b"share-encryption"
    okm = keys.hkdf(c_shared, info=pair_info(session, u, v, label), length=64 if vouchers else 32)
    return okm[:32], okm[32:]


def voucher_digest(session: bytes, n: int, survivors: PartySet | Iterable[int]) -> bytes:
    """What a consistency voucher authenticates, hashed once per client: SHA-256 over the
    session identity ``R`` (which commits to every advertised key and the parameters)
    and the bitmap of U3 (``survivors``: a :class:`~secagg.masking._messages.PartySet` or
    ids)."""
    return hashlib.sha256(b"secagg/survivors/v3" + bytes((len(session),)) + session
                          + ids_to_bitmap(survivors, n)).digest()


def consistency_mac(key: bytes, digest: bytes) -> bytes:
    """The voucher a client gives a neighbour for the survivor set it was shown:
    HMAC-SHA256 of :func:`voucher_digest` under their pairwise voucher key (derived from
    this session's key agreement, bound to ``R``), truncated to 128 bits. Only the two of
    them can compute it, so the server can neither forge a voucher nor move one to
    another set, session or neighbour."""
    return hmac.digest(key, digest, "sha256")[:MAC_LEN]


@dataclass(frozen=True, init=False)
class MaskingConfig:
    """Validated parameters of a session.

    Parameters
    ----------
    n:
        number of clients (>= 2), ids ``0..n-1``.
    dim:
        vector length ``d`` (>= 1).
    bits:
        ring ``Z_2^bits`` (2..64; default 32). Vectors are uint32 (bits <= 32) or uint64.
    threshold:
        Shamir threshold ``t`` over each client's holders (``H(u) = N(u) + {u}``:
        ``n`` parties for the complete graph, ``k + 1`` for the sparse one). Default: the
        smallest threshold that is secure under ``threat``
        (:func:`~secagg.masking.params.find_parameters`). A lower value raises
        :class:`~secagg.errors.InsecureParameterError`: state a weaker ``threat`` instead.
    graph:
        ``"complete"`` (SecAgg) or ``"sparse"`` (SecAgg+, Harary graph).
    k:
        sparse-graph degree (even); default from the parameter finder. Ignored for the
        complete graph.
    threat:
        the :class:`~secagg.masking.params.ThreatModel` (default: an active server
        colluding with 5 % of the clients, 5 % dropouts, security 2^-40, failure 2^-20).
        ``ThreatModel(adversary="honest-but-curious")`` drops the consistency round and
        lowers the threshold; it protects nothing against a deviating server.
    min_survivors:
        clients refuse to unmask fewer survivors than this (the floor a distributed-DP
        noise level is calibrated for). Default: the parameter finder's floor (at least
        ``threshold``).
    quantizer:
        optional :class:`~secagg.quantize.Quantizer`; its ``bits`` must equal ``bits``.

    Attributes
    ----------
    consistency_check:
        ``True`` for the active model (signed keys and survivor sets), derived from ``threat``.
    params:
        the :class:`~secagg.masking.params.SessionParameters` the finder reports for the
        resolved ``k`` and ``threshold`` (security and failure bounds).

    Raises
    ------
    ConfigurationError
        impossible values.
    InsecureParameterError
        a threshold or degree that is not secure under ``threat``.
    """

    n: int
    dim: int
    bits: int
    #: resolved Shamir threshold (the constructor's ``None`` means the finder's)
    threshold: int
    graph: str
    #: resolved degree (``n - 1`` for the complete graph)
    k: int
    threat: ThreatModel
    #: resolved survivor floor
    min_survivors: int
    quantizer: Quantizer | None
    params: SessionParameters = field(init=False, repr=False, compare=False)

    def __init__(
        self,
        n: int,
        dim: int,
        bits: int = 32,
        threshold: int | None = None,
        graph: str = "complete",
        k: int | None = None,
        threat: ThreatModel = ThreatModel(),
        min_survivors: int | None = None,
        quantizer: Quantizer | None = None,
    ) -> None:
        # the constructor takes the optional values; the fields hold the resolved ones, so
        # every reader sees plain ints
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 2:
            raise ConfigurationError(f"secure aggregation needs n >= 2 clients, got {n!r}")
        if n > MAX_PARTIES:
            raise ConfigurationError(
                f"at most {MAX_PARTIES} clients (Shamir x-coordinates id + 1 must stay below the prime), got {n}"
            )
        if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool) or dim < 1:
            raise ConfigurationError(f"dim must be a positive integer, got {dim!r}")
        ring_dtype(bits)
        if graph not in ("complete", "sparse"):
            raise ConfigurationError(f"graph must be 'complete' or 'sparse', got {graph!r}")
        if not isinstance(threat, ThreatModel):
            raise ConfigurationError(f"threat must be a secagg.masking.ThreatModel, got {type(threat).__name__}")
        if quantizer is not None and quantizer.bits != bits:
            raise ConfigurationError(
                f"quantizer works in a {quantizer.bits}-bit ring but the session uses {bits} bits"
            )
        n = int(n)
        found = find_parameters(n, threat, graph)
        if graph == "complete":
            k = n - 1
        elif k is None:
            k = found.k
        else:
            if not isinstance(k, (int, np.integer)) or k < 2 or (k % 2 and k < n - 1):
                raise ConfigurationError(
                    f"sparse degree k must be an even integer >= 2 (Harary graph), got {k!r}"
                )
            k = min(int(k), n - 1)
        holders = k + 1
        if threshold is None:
            t = found.threshold if k == found.k else min_secure_threshold(n, k, threat)
            if t is None:
                raise InsecureParameterError(
                    f"no threshold makes degree k={k} secure for {n} clients under the {threat.adversary} "
                    "threat model; use a larger k or the default"
                )
        else:
            t = threshold
            if not isinstance(t, (int, np.integer)) or isinstance(t, bool) or not 1 <= t <= holders:
                raise ConfigurationError(
                    f"threshold must be an integer in [1, {holders}] (the {holders} holders of each "
                    f"client's shares), got {t!r}"
                )
        params = check_parameters(n, k, int(t), threat)
        floor = params.min_survivors if min_survivors is None else min_survivors
        if not isinstance(floor, (int, np.integer)) or isinstance(floor, bool) or not 1 <= floor <= n:
            raise ConfigurationError(f"min_survivors must be an integer in [1, {n}], got {floor!r}")
        if floor < int(t) and k >= n - 1:
            floor = int(t)  # the complete graph never finishes with fewer than t survivors anyway
        for name, value in (("n", n), ("dim", int(dim)), ("bits", int(bits)), ("threshold", int(t)),
                            ("graph", graph), ("k", int(k)), ("threat", threat), ("min_survivors", int(floor)),
                            ("quantizer", quantizer), ("params", params)):
            object.__setattr__(self, name, value)

    @property
    def consistency_check(self) -> bool:
        """Whether the session runs the active-adversary round (signed keys and survivor sets)."""
        return self.threat.active

    @property
    def dtype(self) -> np.dtype:
        """Ring dtype: uint32 or uint64."""
        return ring_dtype(self.bits)

    @property
    def num_holders(self) -> int:
        """Parties holding shares of each client's seeds (``k + 1``)."""
        return self.k + 1

    @property
    def is_complete(self) -> bool:
        """Whether every client masks with every other one (SecAgg; ``k = n - 1``)."""
        return self.k >= self.n - 1

    def build_graph(self, seed: bytes | None = None) -> Graph:
        """The session's graph; ``seed`` (32 bytes) places ids on the sparse graph."""
        if self.is_complete:
            return complete_graph(self.n)
        return harary_graph(self.n, self.k, seed)

    def digest(self, graph: Graph) -> bytes:
        """SHA-256 of every parameter both roles must agree on (the ``config digest``
        that the session identity and the advertised-key signatures bind)."""
        body = struct.pack(
            ">IIBIIIB?", self.n, self.dim, self.bits, self.threshold, self.k, self.min_survivors,
            1 if self.is_complete else 2, self.consistency_check,
        )
        return hashlib.sha256(b"secagg/config/v2" + body + bytes((len(graph.seed),)) + graph.seed).digest()
