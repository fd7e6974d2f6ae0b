"""L2 clipping of vectors and of per-example rows, with the fraction clipped.

Clipping bounds the L2 sensitivity of a sum (Abadi et al., "Deep Learning with
Differential Privacy", CCS 2016; McMahan et al., "Learning Differentially Private
Recurrent Language Models", ICLR 2018): each row ``x`` becomes
``x * min(1, C / ||x||_2)``. Vectorized over rows; the inputs are not modified.
"""

from __future__ import annotations


import numpy as np
from numpy.typing import ArrayLike

from ..errors import InputError
from ._calibration import positive_finite

__all__ = ["clip_vector", "clip_rows"]


def _check_norm(max_norm: float) -> float:
    return positive_finite(max_norm, "max_norm")


def _finite(x: ArrayLike, name: str, ndim: int) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be a numeric array: {exc}") from None
    if arr.ndim != ndim:
        raise InputError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} contains NaN or infinity")
    return arr


def clip_rows(rows: ArrayLike, max_norm: float) -> tuple[np.ndarray, float]:
    """Clip every row of ``rows`` (shape ``(n, d)``) to L2 norm ``max_norm``.

    Returns ``(clipped, fraction_clipped)``: a new float64 ``(n, d)`` array and the
    fraction of rows whose norm exceeded ``max_norm`` (0.0 for ``n = 0``).

    Raises :class:`InputError` for a non-2-D or non-finite input or a bad norm.
    """
    c = _check_norm(max_norm)
    arr = _finite(rows, "rows", 2)
    norms = np.sqrt(np.einsum("ij,ij->i", arr, arr))
    over = norms > c
    factor = np.where(over, c / np.where(over, norms, 1.0), 1.0)
    frac = float(over.mean()) if arr.shape[0] else 0.0
    return arr * factor[:, None], frac


def clip_vector(x: ArrayLike, max_norm: float) -> tuple[np.ndarray, bool]:
    """Clip one vector ``x`` (shape ``(d,)``) to L2 norm ``max_norm``: ``(clipped, was_clipped)``."""
    arr = _finite(x, "x", 1)
    clipped, frac = clip_rows(arr[None, :], max_norm)
    return clipped[0], frac > 0
