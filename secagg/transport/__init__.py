"""Network transport for the secure-sum protocol: asyncio TCP over TLS (by default), with
clients authenticated against an allow-list of Ed25519 keys, length-prefixed frames,
per-round deadlines and connection limits (the deployment side of Bonawitz et al. CCS
2017 / Bell et al. CCS 2020; the protocol itself is :mod:`secagg.masking`, unchanged).

Entry points: :func:`serve` / :class:`AggregationServer` (one session on the server),
:func:`run_client` / :func:`participate` (one client); client key files and the
allow-list (:func:`write_identity_key`, :func:`load_identity_key`,
:func:`allow_list_line`, :func:`load_allow_list`, :func:`parse_allow_list`);
:mod:`secagg.transport.tls` (SSL contexts and self-signed certificates). The frame
format and the registration handshake are internal (``_framing``, ``_identity``).
"""

from __future__ import annotations

from .client import ClientOutcome, participate, run_client
from ._framing import max_frame_size
from ._identity import allow_list_line, load_allow_list, load_identity_key, parse_allow_list, write_identity_key
from .server import AggregationServer, NetworkResult, serve

__all__ = [
    "AggregationServer",
    "ClientOutcome",
    "NetworkResult",
    "allow_list_line",
    "load_allow_list",
    "load_identity_key",
    "max_frame_size",
    "parse_allow_list",
    "participate",
    "run_client",
    "serve",
    "write_identity_key",
]
