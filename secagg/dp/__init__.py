"""Differential privacy for secure aggregation: safe noise, calibration, RDP accounting, distributed DP.

* :mod:`~secagg.dp.samplers`: exact and fast discrete Gaussian / discrete Laplace
  (Canonne, Kamath, Steinke 2020), Skellam, and fixed-point Gaussian/Laplace mechanisms
  safe against Mironov's floating-point attack (2012).
* :mod:`~secagg.dp.calibration`: classic and analytic Gaussian (Balle and Wang 2018)
  sigma, Laplace scale, sensitivities.
* :mod:`~secagg.dp.accountant`: Renyi-DP accountant (Mironov 2017; Mironov, Talwar,
  Zhang 2019) matching Google's dp_accounting, with events for the Gaussian, Laplace,
  discrete Gaussian, distributed discrete Gaussian (Kairouz, Liu, Steinke 2021) and
  Skellam (Agarwal, Kairouz, Liu 2021) mechanisms.
* :mod:`~secagg.dp.budget`: :class:`PrivacyBudget`, raising ``BudgetExceeded``.
* :mod:`~secagg.dp.clipping`: L2 clipping of vectors and per-example rows.
* :mod:`~secagg.dp.rotation`: randomized Walsh-Hadamard rotation.
* :mod:`~secagg.dp.distributed`: distributed DP over pairwise-mask secure aggregation.
* :mod:`~secagg.dp.aggregators`: ``central-dp``, ``local-dp``, ``distributed-dp``.
"""

from __future__ import annotations

from .accountant import (
    DEFAULT_RDP_ORDERS,
    ComposedEvent,
    DiscreteGaussianEvent,
    DistributedDiscreteGaussianEvent,
    DpEvent,
    GaussianEvent,
    LaplaceEvent,
    NoOpEvent,
    PoissonSampledEvent,
    RdpAccountant,
    SelfComposedEvent,
    SkellamEvent,
    compute_epsilon,
    noise_multiplier_for,
)
from .budget import PrivacyBudget
from .calibration import (
    analytic_gaussian_sigma,
    classic_gaussian_sigma,
    gaussian_delta,
    l1_sensitivity,
    l2_sensitivity,
    laplace_scale,
)
from .clipping import clip_rows, clip_vector
from .rotation import RandomizedHadamard, fwht
from .samplers import (
    discrete_gaussian,
    discrete_laplace,
    gaussian_mechanism,
    laplace_mechanism,
    secure_generator,
    skellam,
)

__all__ = [
    "DEFAULT_RDP_ORDERS",
    "ComposedEvent",
    "DiscreteGaussianEvent",
    "DistributedDiscreteGaussianEvent",
    "DpEvent",
    "GaussianEvent",
    "LaplaceEvent",
    "NoOpEvent",
    "PoissonSampledEvent",
    "PrivacyBudget",
    "RandomizedHadamard",
    "RdpAccountant",
    "SelfComposedEvent",
    "SkellamEvent",
    "analytic_gaussian_sigma",
    "classic_gaussian_sigma",
    "clip_rows",
    "clip_vector",
    "compute_epsilon",
    "discrete_gaussian",
    "discrete_laplace",
    "fwht",
    "gaussian_delta",
    "gaussian_mechanism",
    "l1_sensitivity",
    "l2_sensitivity",
    "laplace_mechanism",
    "laplace_scale",
    "noise_multiplier_for",
    "secure_generator",
    "skellam",
]
