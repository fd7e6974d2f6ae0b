"""Differential privacy for secure aggregation: safe noise, calibration, PLD and RDP
accounting, and distributed DP.

For the common case, :func:`noise_multiplier_for` (the noise for an ``(epsilon, delta)``
target over some rounds) and :func:`make_accountant` (an accountant to charge privacy
events to). For control:

* **accounting**: :class:`RdpAccountant` (Renyi DP, Mironov 2017; Mironov, Talwar, Zhang
  2019, matching Google's dp_accounting), :class:`PldAccountant` (privacy loss
  distributions, Koskela et al. 2020; Doroshenko et al. 2022), :class:`AutoAccountant`
  (the smaller of the two), :class:`PrivacyBudget` (raises
  :class:`~secagg.errors.BudgetExceeded`); :func:`steps_for_epochs` and
  :func:`compute_epsilon` in Opacus' terms;
* **events** (what a mechanism spends): :class:`GaussianEvent`, :class:`LaplaceEvent`,
  :class:`DiscreteGaussianEvent`, :class:`DistributedDiscreteGaussianEvent` (Kairouz,
  Liu, Steinke 2021), :class:`SkellamEvent` (Agarwal, Kairouz, Liu 2021),
  :class:`PoissonSampledEvent`, :class:`SelfComposedEvent`, :class:`ComposedEvent`,
  :class:`NoOpEvent`; :func:`from_dp_accounting` converts dp-accounting's events;
* **noise**: exact discrete Gaussian / discrete Laplace samplers (Canonne, Kamath,
  Steinke 2020) and Skellam, fixed-point Gaussian/Laplace mechanisms safe against
  Mironov's floating-point attack (2012), and diffprivlib-style
  :class:`GaussianMechanism` / :class:`LaplaceMechanism` taking (epsilon, delta,
  sensitivity);
* **calibration**: classic and analytic Gaussian sigma (Balle and Wang 2018), Laplace
  scale, sensitivities; L2 clipping of rows (:func:`clip_rows`);
* **distributed DP** over pairwise-mask secure aggregation: :class:`DistributedDP` and
  :func:`distributed_dp_sum` (:mod:`secagg.dp.distributed`);
* the ``central-dp``, ``local-dp`` and ``distributed-dp`` aggregators
  (:mod:`secagg.dp.aggregators`, built by name with :func:`secagg.make_aggregator`).
"""

from __future__ import annotations

from ._accountant import (
    AutoAccountant,
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
    make_accountant,
    noise_multiplier_for,
    steps_for_epochs,
)
from ._budget import PrivacyBudget
from ._calibration import (
    analytic_gaussian_sigma,
    classic_gaussian_sigma,
    l1_sensitivity,
    l2_sensitivity,
    laplace_scale,
    smallest_meeting,
)
from ._clipping import clip_rows
from ._interop import from_dp_accounting
from ._mechanisms import GaussianMechanism, LaplaceMechanism
from ._pld_accountant import PldAccountant
from ._samplers import (
    discrete_gaussian,
    discrete_laplace,
    gaussian_mechanism,
    laplace_mechanism,
    skellam,
)
from .distributed import DistributedDP, distributed_dp_sum

__all__ = [
    # accounting
    "make_accountant",
    "noise_multiplier_for",
    "compute_epsilon",
    "steps_for_epochs",
    "RdpAccountant",
    "PldAccountant",
    "AutoAccountant",
    "PrivacyBudget",
    # events
    "DpEvent",
    "GaussianEvent",
    "LaplaceEvent",
    "DiscreteGaussianEvent",
    "DistributedDiscreteGaussianEvent",
    "SkellamEvent",
    "PoissonSampledEvent",
    "SelfComposedEvent",
    "ComposedEvent",
    "NoOpEvent",
    "from_dp_accounting",
    # noise
    "GaussianMechanism",
    "LaplaceMechanism",
    "discrete_gaussian",
    "discrete_laplace",
    "skellam",
    "gaussian_mechanism",
    "laplace_mechanism",
    # calibration
    "analytic_gaussian_sigma",
    "classic_gaussian_sigma",
    "laplace_scale",
    "l1_sensitivity",
    "l2_sensitivity",
    "smallest_meeting",
    "clip_rows",
    # distributed DP
    "DistributedDP",
    "distributed_dp_sum",
]
