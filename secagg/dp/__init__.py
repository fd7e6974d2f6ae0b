"""Differential privacy for secure aggregation: safe noise, calibration, PLD and RDP accounting, distributed DP.

* :mod:`~secagg.dp.samplers`: exact and fast discrete Gaussian / discrete Laplace
  (Canonne, Kamath, Steinke 2020), Skellam, and fixed-point Gaussian/Laplace mechanisms
  safe against Mironov's floating-point attack (2012).
* :mod:`~secagg.dp.calibration`: classic and analytic Gaussian (Balle and Wang 2018)
  sigma, Laplace scale, sensitivities.
* :mod:`~secagg.dp.accountant`: privacy events and the Renyi-DP accountant (Mironov
  2017; Mironov, Talwar, Zhang 2019) matching Google's dp_accounting, with events for
  the Gaussian, Laplace, discrete Gaussian, distributed discrete Gaussian (Kairouz, Liu,
  Steinke 2021) and Skellam (Agarwal, Kairouz, Liu 2021) mechanisms;
  :func:`make_accountant`, :func:`noise_multiplier_for` (PLD by default, Opacus names).
* :mod:`~secagg.dp.pld`, :mod:`~secagg.dp.pld_accountant`: the privacy loss
  distribution accountant (Koskela et al. 2020; Meiser and Mohammadi 2018; Doroshenko
  et al. 2022 connect-the-dots; Zhu, Dong, Wang 2022 dominating pairs), agreeing with
  dp_accounting's PLD accountant.
* :mod:`~secagg.dp.pld_discrete`: PLDs of integer noise from exact PMFs (discrete
  Gaussian, sums of discrete Gaussians, Skellam) and a proven vector bound.
* :mod:`~secagg.dp.interop`: dp-accounting's event objects accepted by both accountants.
* :mod:`~secagg.dp.mechanisms`: diffprivlib-style ``GaussianMechanism`` /
  ``LaplaceMechanism`` taking (epsilon, delta, sensitivity).
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
    AutoAccountant,
    make_accountant,
    noise_multiplier_for,
    steps_for_epochs,
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
from .interop import from_dp_accounting
from .mechanisms import GaussianMechanism, LaplaceMechanism
from .pld_accountant import PldAccountant
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
    "GaussianMechanism",
    "LaplaceEvent",
    "LaplaceMechanism",
    "NoOpEvent",
    "PldAccountant",
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
    "from_dp_accounting",
    "fwht",
    "gaussian_delta",
    "gaussian_mechanism",
    "l1_sensitivity",
    "l2_sensitivity",
    "laplace_mechanism",
    "laplace_scale",
    "AutoAccountant",
    "make_accountant",
    "noise_multiplier_for",
    "secure_generator",
    "skellam",
    "steps_for_epochs",
]
