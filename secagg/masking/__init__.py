"""Pairwise-mask secure sum: SecAgg (Bonawitz et al., CCS 2017) and SecAgg+ (Bell et al.,
CCS 2020), secure against an active server by default.

For the common case, :func:`secagg.secure_sum` (one line) or :func:`simulate` (floats in,
the sum and its costs out; :func:`simulate_ring` for ring vectors). For control: the
parameters (:class:`MaskingConfig`, :class:`ThreatModel`, :func:`find_parameters`,
:class:`SecurityPolicy`), a :class:`~secagg.masking.session.Session` with your own
executor, and the sans-IO :class:`Client` and :class:`Server` with the wire
:mod:`~secagg.masking.messages` for your own transport.
"""

from __future__ import annotations

from .client import Client
from .config import MaskingConfig
from .graph import Graph, complete_graph, harary_graph
from .messages import decode_message
from .params import SessionParameters, ThreatModel, find_parameters
from .policy import SecurityPolicy
from .rounds import ROUNDS
from .session import Session, SimulationResult
from .server import Server
from .simulate import simulate, simulate_ring

__all__ = [
    "Client",
    "Graph",
    "MaskingConfig",
    "ROUNDS",
    "SecurityPolicy",
    "Server",
    "Session",
    "SessionParameters",
    "SimulationResult",
    "ThreatModel",
    "complete_graph",
    "decode_message",
    "find_parameters",
    "harary_graph",
    "simulate",
    "simulate_ring",
]
