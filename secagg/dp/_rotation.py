"""Randomized Walsh-Hadamard rotation (flattening before discretization in distributed DP).

``R = H D / sqrt(m)`` where ``D`` is a diagonal of random signs and ``H`` the
Walsh-Hadamard matrix of order ``m = 2^ceil(log2 d)`` (inputs are zero-padded). ``R`` is
orthonormal, so L2 norms (hence DP sensitivities) are preserved, while any vector's
energy is spread almost evenly over the coordinates, so coordinate-wise rounding and
the modular wrap of the ring cost little (Kairouz, Liu, Steinke, ICML 2021, Sec. 4;
Suresh et al., "Distributed Mean Estimation with Limited Communication", ICML 2017).

The signs come from a *public* seed shared by all clients and the server (the rotation
is not a secret; it only needs to be independent of the data), expanded with numpy's
PCG64. The fast transform runs ``log2 m`` vectorized butterfly stages (O(m log m)),
never a Python loop over elements.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ..errors import InputError

__all__ = ["RandomizedHadamard", "fwht", "next_power_of_two"]


def next_power_of_two(d: int) -> int:
    """Smallest power of two >= d (d >= 1)."""
    if not isinstance(d, (int, np.integer)) or d < 1:
        raise InputError(f"dimension must be a positive integer, got {d!r}")
    return 1 << (int(d) - 1).bit_length()


def fwht(x: np.ndarray) -> np.ndarray:
    """Orthonormal fast Walsh-Hadamard transform along the last axis (length a power of 2).

    ``x``: float array of shape ``(..., m)``. Returns a new float64 array. The transform
    is its own inverse.
    """
    a = np.array(x, dtype=np.float64, copy=True)
    m = a.shape[-1]
    if m & (m - 1) or m == 0:
        raise InputError(f"fwht needs a power-of-two length, got {m}")
    lead = a.shape[:-1]
    h = 1
    while h < m:
        v = a.reshape(*lead, m // (2 * h), 2, h)
        top = v[..., 0, :].copy()
        v[..., 0, :] += v[..., 1, :]
        v[..., 1, :] = top - v[..., 1, :]
        h *= 2
    a *= 1.0 / np.sqrt(m)
    return a


class RandomizedHadamard:
    """The rotation ``x -> H D pad(x) / sqrt(m)`` and its inverse.

    Parameters
    ----------
    dim:
        input length d.
    seed:
        public seed (int or bytes) shared by every party.
    """

    def __init__(self, dim: int, seed: int | bytes = 0) -> None:
        self.dim = int(dim)
        self.padded_dim = next_power_of_two(self.dim)
        if isinstance(seed, (bytes, bytearray)):
            seed = int.from_bytes(bytes(seed), "little")
        rng = np.random.Generator(np.random.PCG64(int(seed)))
        self.signs = rng.integers(0, 2, size=self.padded_dim).astype(np.float64) * 2 - 1

    def forward(self, x: ArrayLike) -> np.ndarray:
        """Rotate ``x`` of shape ``(d,)`` or ``(n, d)`` into shape ``(m,)`` / ``(n, m)`` (float64)."""
        arr = np.asarray(x, dtype=np.float64)
        if arr.shape[-1] != self.dim:
            raise InputError(f"expected last dimension {self.dim}, got shape {arr.shape}")
        pad = np.zeros(arr.shape[:-1] + (self.padded_dim,))
        pad[..., : self.dim] = arr
        return fwht(pad * self.signs)

    def inverse(self, y: ArrayLike) -> np.ndarray:
        """Undo :meth:`forward`: ``(m,)``/``(n, m)`` -> ``(d,)``/``(n, d)`` (float64)."""
        arr = np.asarray(y, dtype=np.float64)
        if arr.shape[-1] != self.padded_dim:
            raise InputError(f"expected last dimension {self.padded_dim}, got shape {arr.shape}")
        return (fwht(arr) * self.signs)[..., : self.dim]
