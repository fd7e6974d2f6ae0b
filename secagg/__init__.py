"""secagg: privacy-preserving aggregation.

The aggregator learns the sum of many parties' vectors and nothing else, with three
families of techniques:

* pairwise-mask secure sum (SecAgg, SecAgg+): :mod:`secagg.masking`
* packed Paillier homomorphic summation: :mod:`secagg.paillier`
* differential-privacy noise and accounting: :mod:`secagg.dp`

Building blocks: :mod:`secagg.quantize` (floats <-> ring), :mod:`secagg.prg`
(AES-CTR mask expansion), :mod:`secagg.shamir` (t-of-n sharing), :mod:`secagg.keys`
(X25519, HKDF, AEAD, Ed25519), :mod:`secagg.errors` (one exception tree).
"""

from __future__ import annotations

from . import errors
from .aggregators import AggregationResult, Aggregator, available_aggregators, make_aggregator
from .errors import SecAggError
from .quantize import Quantizer, clip_l2

__version__ = "0.1.0"

__all__ = [
    "AggregationResult",
    "Aggregator",
    "Quantizer",
    "SecAggError",
    "available_aggregators",
    "clip_l2",
    "errors",
    "make_aggregator",
    "__version__",
]
