"""Parameters of one SecAgg / SecAgg+ session, validated once (Bonawitz et al. CCS 2017;
Bell et al. CCS 2020), plus the key-derivation labels both roles share."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigurationError, InsecureParameterError
from ..quantize import Quantizer, ring_dtype
from .graph import Graph, choose_k, complete_graph, default_threshold, harary_graph
from .messages import MAX_PARTIES

__all__ = ["MaskingConfig"]

#: PRG labels (domain separation between self masks and pairwise masks)
SELF_MASK_LABEL = b"secagg/self-mask"
PAIR_MASK_LABEL = b"secagg/pair-mask"
SEED_LEN = 32


def pair_info(session: bytes, u: int, v: int, purpose: bytes) -> bytes:
    """HKDF ``info`` = u8 len(session) || session || u32 min || u32 max || purpose (binds
    the pair and session; the length prefix makes the encoding injective)."""
    a, b = (u, v) if u < v else (v, u)
    return bytes((len(session),)) + session + struct.pack(">II", a, b) + purpose


def advertise_payload(session: bytes, sender: int, c_pk: bytes, s_pk: bytes) -> bytes:
    """Bytes signed in AdvertiseKeys (active variant)."""
    return b"secagg/advertise" + bytes((len(session),)) + session + struct.pack(">I", sender) + c_pk + s_pk


def survivors_payload(session: bytes, n: int, survivors) -> bytes:
    """Bytes signed in the consistency check: the session and the bitmap of U3."""
    from .messages import ids_to_bitmap

    return b"secagg/survivors" + bytes((len(session),)) + session + ids_to_bitmap(survivors, n)


@dataclass(frozen=True)
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
        smallest ``t > |H| / 2`` (``n // 2 + 1`` for the complete graph). A lower value
        needs ``allow_low_threshold=True``.
    graph:
        ``"complete"`` (SecAgg) or ``"sparse"`` (SecAgg+, Harary graph).
    k:
        sparse-graph degree (even); default :func:`~secagg.masking.graph.choose_k` of
        ``(n, delta, gamma, sigma, eta)``. Ignored for the complete graph.
    consistency_check:
        run the active-adversary round (Ed25519 signatures over advertised keys and over
        the survivor set). Default True: secure against a server that lies about who
        dropped; False gives the honest-but-curious protocol (one round fewer).
    delta, gamma, sigma, eta:
        dropout rate, corrupt fraction, security and correctness exponents used to pick
        the default ``k`` (0.1, 0.1, 40, 20).
    quantizer:
        optional :class:`~secagg.quantize.Quantizer`; its ``bits`` must equal ``bits``.

    Raises
    ------
    ConfigurationError
        impossible values.
    InsecureParameterError
        a threshold at or below half the holders without ``allow_low_threshold``.
    """

    n: int
    dim: int
    bits: int = 32
    threshold: int | None = None
    graph: str = "complete"
    k: int | None = None
    consistency_check: bool = True
    allow_low_threshold: bool = False
    delta: float = 0.1
    gamma: float = 0.1
    sigma: float = 40.0
    eta: float = 20.0
    quantizer: Quantizer | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.n, (int, np.integer)) or self.n < 2:
            raise ConfigurationError(f"secure aggregation needs n >= 2 clients, got {self.n!r}")
        if self.n > MAX_PARTIES:
            raise ConfigurationError(
                f"at most {MAX_PARTIES} clients (Shamir x-coordinates id + 1 must stay below the prime), got {self.n}"
            )
        if not isinstance(self.dim, (int, np.integer)) or self.dim < 1:
            raise ConfigurationError(f"dim must be a positive integer, got {self.dim!r}")
        ring_dtype(self.bits)
        if self.graph not in ("complete", "sparse"):
            raise ConfigurationError(f"graph must be 'complete' or 'sparse', got {self.graph!r}")
        if self.quantizer is not None and self.quantizer.bits != self.bits:
            raise ConfigurationError(
                f"quantizer works in a {self.quantizer.bits}-bit ring but the session uses {self.bits} bits"
            )
        n = int(self.n)
        if self.graph == "complete":
            k = n - 1
        elif self.k is None:
            k, _ = choose_k(n, self.delta, self.gamma, self.sigma, self.eta)
        else:
            if not isinstance(self.k, (int, np.integer)) or self.k < 2 or (self.k % 2 and self.k < n - 1):
                raise ConfigurationError(
                    f"sparse degree k must be an even integer >= 2 (Harary graph), got {self.k!r}"
                )
            k = min(int(self.k), n - 1)
        holders = k + 1
        floor_t = default_threshold(holders)
        t = floor_t if self.threshold is None else self.threshold
        if not isinstance(t, (int, np.integer)) or not 1 <= t <= holders:
            raise ConfigurationError(
                f"threshold must be an integer in [1, {holders}] (the {holders} holders of each "
                f"client's shares), got {t!r}"
            )
        if t < floor_t and not self.allow_low_threshold:
            raise InsecureParameterError(
                f"threshold {t} is not above half of the {holders} share holders (minimum {floor_t}): "
                "a server could show one half of the clients a peer as 'dropped' and the other half "
                "as 'survived', collect t key shares and t self-mask shares of the same peer, and "
                "unmask its input. Pass allow_low_threshold=True only if the server is trusted to "
                "follow the protocol."
            )
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "dim", int(self.dim))
        object.__setattr__(self, "bits", int(self.bits))
        object.__setattr__(self, "k", int(k))
        object.__setattr__(self, "threshold", int(t))
        object.__setattr__(self, "consistency_check", bool(self.consistency_check))

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
        return self.k >= self.n - 1

    def build_graph(self, seed: bytes | None = None) -> Graph:
        """The session's graph; ``seed`` (32 bytes) places ids on the sparse graph."""
        if self.is_complete:
            return complete_graph(self.n)
        return harary_graph(self.n, self.k, seed)
