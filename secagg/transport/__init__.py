"""Network transport for the secure-sum protocol: asyncio TCP with optional TLS, length-
prefixed frames, per-round deadlines and connection limits (the deployment side of
Bonawitz et al. CCS 2017 / Bell et al. CCS 2020; the protocol itself is
:mod:`secagg.masking`, unchanged).

Entry points: :class:`AggregationServer` / :func:`serve` (one session on the server),
:func:`run_client` / :func:`participate` (one client), :mod:`secagg.transport.tls`
(SSL contexts and self-signed certificates), :mod:`secagg.transport.framing`.
"""

from __future__ import annotations

from .client import ClientOutcome, participate, run_client
from .framing import max_frame_size
from .server import AggregationServer, NetworkResult, serve

__all__ = [
    "AggregationServer",
    "ClientOutcome",
    "NetworkResult",
    "max_frame_size",
    "participate",
    "run_client",
    "serve",
]
