"""Pairwise-mask secure sum: SecAgg (Bonawitz et al., CCS 2017) and SecAgg+ (Bell et al.,
CCS 2020), secure against an active server by default.

For the common case, :func:`secagg.secure_sum` (one line) or :func:`simulate` (floats in,
the sum and its costs out; :func:`simulate_ring` for ring vectors). For control: the
parameters (:class:`MaskingConfig`, :class:`ThreatModel`, :func:`find_parameters`,
:class:`SecurityPolicy`), a :class:`Session` driven by your own executor
(:mod:`secagg.masking.session`), and the sans-IO :class:`Client` and :class:`Server` for
your own transport: each returns the messages to send, ``message.to_bytes()`` encodes
one and :func:`decode_message` parses it. The round table is
:mod:`secagg.masking.rounds`; the wire format, the masking graph and the session
transcript are internal (``_messages``, ``_graph``, ``_transcript``).
"""

from __future__ import annotations

from ._graph import Graph
from ._messages import Message, decode_message
from .client import Client
from .config import MaskingConfig
from .params import SessionParameters, ThreatModel, find_parameters
from .policy import SecurityPolicy
from .rounds import ROUNDS
from .server import Server
from .session import Session, SimulationResult
from .simulate import simulate, simulate_ring

__all__ = [
    # the common case
    "simulate",
    "simulate_ring",
    "SimulationResult",
    # parameters
    "MaskingConfig",
    "ThreatModel",
    "SessionParameters",
    "find_parameters",
    "SecurityPolicy",
    "ROUNDS",
    # control
    "Session",
    "Client",
    "Server",
    "Graph",
    "Message",
    "decode_message",
]
