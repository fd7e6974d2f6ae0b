"""Pairwise-mask secure sum: SecAgg (Bonawitz et al., CCS 2017) and SecAgg+ (Bell et al.,
CCS 2020) as sans-IO state machines, with an in-process driver.

Entry points: :func:`simulate` (floats), :func:`simulate_ring` (ring vectors),
:func:`secure_sum` (one line), :class:`Client`, :class:`Server`, :class:`MaskingConfig`.
"""

from __future__ import annotations

from .client import Client
from .config import MaskingConfig
from .graph import Graph, complete_graph, harary_graph
from .messages import decode_message
from .params import SessionParameters, ThreatModel, find_parameters
from .policy import SecurityPolicy
from .rounds import ROUNDS
from .server import Server
from .simulate import SimulationResult, resolve_dropout, secure_sum, simulate, simulate_ring

__all__ = [
    "Client",
    "Graph",
    "MaskingConfig",
    "ROUNDS",
    "Server",
    "SecurityPolicy",
    "SessionParameters",
    "SimulationResult",
    "ThreatModel",
    "complete_graph",
    "decode_message",
    "find_parameters",
    "harary_graph",
    "resolve_dropout",
    "secure_sum",
    "simulate",
    "simulate_ring",
]
