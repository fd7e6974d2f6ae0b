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
from .errors import OutOfRangeError, SecAggError
from .quantize import Quantizer, clip_l2

__version__ = "0.1.0"


def secure_sum(vectors, **kwargs):
    """Sum the rows of ``vectors`` (shape ``(n, d)``, float) with the SecAgg protocol.

    One-line convenience over :func:`secagg.masking.simulate`: runs every round of the
    pairwise-mask protocol in process and returns the decoded float64 sum, shape
    ``(d,)``. Keyword arguments (``threshold``, ``graph``, ``dropout``, ``quantizer``,
    ...) are those of :func:`secagg.masking.simulate`.

    Inputs are encoded in fixed point within a per-coordinate ``bound`` (default 1.0;
    pass ``bound=`` for larger inputs, at some cost in resolution). A value beyond it
    raises :class:`~secagg.errors.OutOfRangeError` (how many values, the largest
    magnitude, the ``bound=`` that would hold them): nothing is clipped silently. To clip
    instead, pass ``out_of_range="clip"``; :func:`secagg.masking.simulate` then reports
    how many values it clipped (``result.clipped``).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[0.5, -2.0], [0.25, 3.0]])
    >>> [round(float(v), 6) for v in secure_sum(x, bound=4.0)]
    [0.75, 1.0]
    """
    from .masking import simulate

    return simulate(vectors, **kwargs).sum


__all__ = [
    "AggregationResult",
    "Aggregator",
    "OutOfRangeError",
    "Quantizer",
    "SecAggError",
    "available_aggregators",
    "clip_l2",
    "errors",
    "make_aggregator",
    "secure_sum",
    "__version__",
]
