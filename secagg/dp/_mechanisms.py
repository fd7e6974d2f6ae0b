"""Mechanisms with an (epsilon, delta, sensitivity) entry point, as IBM diffprivlib users expect.

``GaussianMechanism(epsilon=, delta=, sensitivity=)`` and
``LaplaceMechanism(epsilon=, sensitivity=)`` mirror diffprivlib's
``diffprivlib.mechanisms.GaussianAnalytic`` / ``Laplace``: ``.randomise(value)`` for one
number, and a vectorized ``mech(array, rng=None)`` for a whole array (one query with
the given sensitivity: L2 for Gaussian, L1 for Laplace).

Both are safe against Mironov's floating-point attack ("On Significance of the Least
Significant Bits for Differential Privacy", CCS 2012): values are rounded to a grid of
step ``resolution`` (default ``sensitivity * 2^-20``) and *integer* noise is added on
the grid (:func:`~secagg.dp.gaussian_mechanism`, :func:`~secagg.dp.laplace_mechanism`;
Canonne, Kamath, Steinke 2020 samplers), with the rounding charged to the sensitivity:
``sensitivity + resolution * sqrt(n)/2`` (L2) or ``+ resolution * n/2`` (L1) for ``n``
values.

* Gaussian: the continuous sigma is the analytic Gaussian calibration (Balle and Wang,
  ICML 2018) for the charged sensitivity; the discrete Gaussian on the grid gets
  ``sqrt((sigma/resolution)^2 + 3^2)`` so that, by the comparison of
  :mod:`secagg.dp._pld_discrete` (a discrete Gaussian of parameter ``s`` is within a
  factor ``1 + 10^-70`` of a continuous Gaussian of variance ``s^2 - 9`` rounded by a
  discrete-Gaussian kernel), it is (epsilon, delta)-DP; the constructor checks this
  with the PLD bound and raises otherwise.
* Laplace: discrete Laplace of scale ``(L1 sensitivity / resolution) / epsilon`` in
  grid units: the likelihood ratio of an integer shift ``k`` is at most
  ``e^{|k|_1 / scale}``, so the mechanism is epsilon-DP exactly (pure DP; the scale is
  raised by 1e-9 relative to cover the sampler's rational rounding of the scale).

Noise comes from ``rng`` (a ``numpy.random.Generator``) or, by default, the AES-CTR
CSPRNG of :func:`secagg.quantize.default_rng`.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import ConfigurationError, InputError
from ._calibration import analytic_gaussian_sigma, positive_finite
from ._pld_discrete import DiscreteNoise, vector_core
from ._samplers import gaussian_mechanism, laplace_mechanism

__all__ = ["GaussianMechanism", "LaplaceMechanism"]

_DEFAULT_RESOLUTION_BITS = 20
_KERNEL = 3.0  # the discrete-Gaussian rounding kernel of the comparison (grid units)


def _values(values: ArrayLike) -> NDArray[np.float64]:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"values must be numeric: {exc}") from None
    if arr.size == 0:
        raise InputError("values must not be empty")
    return arr


class _Mechanism:
    """What both mechanisms share: one noisy number from the noisy-array call."""

    def __call__(self, values: ArrayLike, rng: np.random.Generator | None = None) -> NDArray[np.float64]:
        raise NotImplementedError  # pragma: no cover - every mechanism overrides it

    def randomise(self, value: float, rng: np.random.Generator | None = None) -> float:
        """One noisy value (float)."""
        arr = _values(value)
        if arr.shape != ():
            raise InputError("randomise takes one number; call the mechanism on an array")
        return float(self(arr, rng=rng))


class GaussianMechanism(_Mechanism):
    """(epsilon, delta)-DP Gaussian noise for a query of L2 sensitivity ``sensitivity``.

    Parameters
    ----------
    epsilon:
        > 0 (any value; the analytic calibration has no ``epsilon < 1`` restriction).
    delta:
        in (0, 1).
    sensitivity:
        L2 sensitivity of the value(s) passed to :meth:`randomise` / ``__call__``, in
        the same units as the values.
    resolution:
        grid step (default ``sensitivity * 2^-20``).

    Raises
    ------
    InputError
        for a non-positive epsilon, sensitivity or resolution, or delta outside (0, 1).

    Examples
    --------
    >>> import numpy as np
    >>> mech = GaussianMechanism(epsilon=1.0, delta=1e-5, sensitivity=1.0)
    >>> round(mech.sigma(), 3)
    3.731
    >>> noisy = mech(np.zeros(4), rng=np.random.default_rng(0))
    >>> noisy.shape
    (4,)
    """

    def __init__(self, epsilon: float, delta: float, sensitivity: float, *, resolution: float | None = None) -> None:
        self.epsilon = positive_finite(epsilon, "epsilon")
        d = positive_finite(delta, "delta")
        if d >= 1:
            raise InputError(f"delta must be in (0, 1), got {delta!r}")
        self.delta = d
        self.sensitivity = positive_finite(sensitivity, "sensitivity")
        self.resolution = (
            self.sensitivity * 2.0**-_DEFAULT_RESOLUTION_BITS if resolution is None else positive_finite(resolution, "resolution")
        )
        self._checked: dict[int, float] = {}

    def __repr__(self) -> str:
        return f"GaussianMechanism(epsilon={self.epsilon}, delta={self.delta}, sensitivity={self.sensitivity})"

    def sigma(self, size: int = 1) -> float:
        """Standard deviation of the noise (value units) when ``size`` values are released together.

        Raises :class:`ConfigurationError` if the PLD check of the discrete noise fails
        (a resolution too coarse for the noise).
        """
        n = int(size)
        if n < 1:
            raise InputError(f"size must be >= 1, got {size!r}")
        if n not in self._checked:
            charged = self.sensitivity + self.resolution * math.sqrt(n) / 2.0
            sigma_c = analytic_gaussian_sigma(self.epsilon, self.delta, charged)
            s_grid = math.hypot(sigma_c / self.resolution, _KERNEL)
            core = vector_core(DiscreteNoise("dg", s_grid, 1), charged / self.resolution, n, _KERNEL)
            if core is None or core.epsilon(self.delta) > self.epsilon * (1.0 + 1e-9):
                raise ConfigurationError(
                    f"the grid resolution {self.resolution:g} is too coarse for noise {sigma_c:g}: "
                    "pass a smaller resolution"
                )
            self._checked[n] = s_grid * self.resolution
        return self._checked[n]

    def __call__(self, values: ArrayLike, rng: np.random.Generator | None = None) -> NDArray[np.float64]:
        """Noisy copy of ``values`` (any shape, float64), all released as one query."""
        arr = _values(values)
        sigma = self.sigma(arr.size)
        return gaussian_mechanism(arr, sigma, resolution=self.resolution, rng=rng)


class LaplaceMechanism(_Mechanism):
    """Pure epsilon-DP Laplace noise for a query of L1 sensitivity ``sensitivity``.

    Parameters
    ----------
    epsilon:
        > 0.
    sensitivity:
        L1 sensitivity of the value(s) passed, in value units.
    delta:
        must be 0 (accepted for diffprivlib's signature; use :class:`GaussianMechanism`
        for (epsilon, delta)).
    resolution:
        grid step (default ``sensitivity * 2^-20``).

    Raises
    ------
    InputError
        for non-positive epsilon, sensitivity or resolution.
    ConfigurationError
        for ``delta != 0``.
    """

    def __init__(
        self, epsilon: float, sensitivity: float, delta: float = 0.0, *, resolution: float | None = None
    ) -> None:
        self.epsilon = positive_finite(epsilon, "epsilon")
        self.sensitivity = positive_finite(sensitivity, "sensitivity")
        if float(delta) != 0.0:
            raise ConfigurationError(
                "LaplaceMechanism is pure epsilon-DP (delta=0); for (epsilon, delta) use GaussianMechanism"
            )
        self.delta = 0.0
        self.resolution = (
            self.sensitivity * 2.0**-_DEFAULT_RESOLUTION_BITS if resolution is None else positive_finite(resolution, "resolution")
        )

    def __repr__(self) -> str:
        return f"LaplaceMechanism(epsilon={self.epsilon}, sensitivity={self.sensitivity})"

    def scale(self, size: int = 1) -> float:
        """Laplace scale ``b`` (value units) when ``size`` values are released together."""
        n = int(size)
        if n < 1:
            raise InputError(f"size must be >= 1, got {size!r}")
        charged = self.sensitivity + self.resolution * n / 2.0
        return charged / self.epsilon * (1.0 + 1e-9)

    def __call__(self, values: ArrayLike, rng: np.random.Generator | None = None) -> NDArray[np.float64]:
        """Noisy copy of ``values`` (any shape, float64), all released as one query."""
        arr = _values(values)
        return laplace_mechanism(arr, self.scale(arr.size), resolution=self.resolution, rng=rng)
