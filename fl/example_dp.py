"""Example-level (record-level) differential privacy for the federated clients: DP-SGD.

The privacy unit is one training example (one row of one client), the unit cross-silo
users need (hospitals each holding many patients). Every client clips the gradient of
*each* of its examples to L2 norm ``clip_norm`` (Abadi et al., "Deep Learning with
Differential Privacy", CCS 2016, Algorithm 1) on a Poisson sample of its own rows (rate
``q``; the client draws it, so the amplification by subsampling is valid whatever the
server does), and the noise is added in one of three places:

==============  =========================================================================
placement       what happens in one FedAvg round
==============  =========================================================================
central         clients send the integer-rounded sum of their clipped gradients in clear;
                the trusted server adds discrete Gaussian noise to the total (one
                DP-SGD step over the federation per round)
local           each client runs ``steps`` DP-SGD steps with the *full* noise on every
                step and sends its model delta (private against everyone on its own)
distributed     each client rounds, rotates and adds a 1/n_min share of discrete
                Gaussian noise (:class:`secagg.dp.distributed.DistributedDP`, Kairouz,
                Liu, Steinke, ICML 2021) and the shares go through the pairwise-mask
                secure sum: the server sees only the noisy sum (one DP-SGD step per round)
==============  =========================================================================

Sensitivities (integer units; ``res`` the grid step, ``d`` the parameter count):

* central / local: the client rounds its float sum to the grid with ``rint``, so one
  example moves the integer sum by at most ``clip_norm / res + sqrt(d)`` (the clipped
  gradient plus half a step of rounding in each coordinate for either neighbour).
  Noise std ``z`` times that: the event is ``DiscreteGaussianEvent(z, sensitivity=clip / res
  + sqrt(d), dim=d)`` (the PLD accountant and Poisson subsampling need the integer scale).
* distributed: the client vector (sum of clipped gradients) is projected onto the ball
  of radius ``vector_clip`` (1-Lipschitz), rotated (norm-preserving), scaled by ``s`` and
  randomly rounded to a point of the unit cube around it. Whatever the rounding draws,
  two neighbouring clients' integer vectors differ by at most
  ``Delta_2 = clip_norm s + 2 sqrt(m)`` in L2 (``m`` the padded dimension) and
  ``Delta_1 = Delta_2 min(sqrt(m), Delta_2)`` in L1; since Renyi divergence is jointly
  quasi-convex, mixing over rounding outcomes (coupled arbitrarily) costs no more than
  the worst pair, so the sum of ``k`` survivors' shares is charged
  ``DistributedDiscreteGaussianEvent(sigma_l, k, Delta_2, Delta_1, m)`` (KLS 2021 Thm 1).

Every per-round event is Poisson-subsampled at rate ``q`` when ``q < 1`` (the accountant
must be able to bound that event; otherwise configuration fails with one line).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from secagg.errors import ConfigurationError

from .model import per_example_grads, weights_matrix

__all__ = ["EXAMPLE_PLACEMENTS", "example_event", "local_dp_sgd", "clipped_gradient_sum"]

#: aggregator name -> where example-level noise is added
EXAMPLE_PLACEMENTS = {"central-dp": "central", "local-dp": "local", "distributed-dp": "distributed"}

#: default grid step of the central and local mechanisms, relative to ``clip_norm``
_RESOLUTION_BITS = 20


def _dp():
    from secagg import dp

    return dp


def resolution(clip_norm: float) -> float:
    """Grid step of the central/local example-level mechanisms: ``clip_norm * 2^-20`` (float units)."""
    return float(clip_norm) * 2.0**-_RESOLUTION_BITS


def clipped_gradient_sum(params: np.ndarray, X: np.ndarray, y: np.ndarray, n_classes: int, clip_norm: float,
                         rate: float, rng: np.random.Generator) -> tuple[np.ndarray, int, int]:
    """Sum of per-example gradients, each clipped to L2 norm ``clip_norm``, over a Poisson sample.

    Parameters
    ----------
    params: float64 ``(P,)`` current model.
    X, y: the client's rows ``(n, d)`` and labels ``(n,)``.
    clip_norm: per-example L2 bound (> 0). rate: Poisson inclusion probability of each row, in (0, 1].
    rng: generator drawing the sample (must be secret for the amplification to hold).

    Returns
    -------
    ``(sum, sampled, clipped)``: float64 ``(P,)`` sum of the clipped gradients (no L2
    term), the number of rows sampled and how many of them were clipped. Vectorized
    over rows (one ``einsum``), no Python loop.
    """
    mask = rng.random(len(y)) < rate if rate < 1.0 else np.ones(len(y), dtype=bool)
    P = np.asarray(params).size
    if not mask.any():
        return np.zeros(P), 0, 0
    g = per_example_grads(params, X[mask], y[mask], n_classes)
    norms = np.linalg.norm(g, axis=1)
    factor = np.minimum(1.0, clip_norm / np.maximum(norms, 1e-300))
    return factor @ g, int(mask.sum()), int(np.count_nonzero(factor < 1.0))


def grid_noise(total: np.ndarray, clip_norm: float, noise_multiplier: float, rng: np.random.Generator,
               res: float | None = None) -> tuple[np.ndarray, float]:
    """Round ``total`` to the grid and add discrete Gaussian noise for one-example sensitivity ``clip_norm``.

    Returns ``(noisy float64 (P,), noise std in float units)``. The noise std in grid
    units is ``z (clip_norm / res + sqrt(P))`` (see the module docstring), so the release is
    ``DiscreteGaussianEvent(z)`` per example.
    """
    res = resolution(clip_norm) if res is None else res
    P = total.size
    ints = np.rint(total / res).astype(np.int64)
    sigma_int = noise_multiplier * (clip_norm / res + math.sqrt(P))
    ints += _dp().discrete_gaussian(sigma_int, P, rng)
    return ints.astype(np.float64) * res, sigma_int * res


def local_dp_sgd(params: np.ndarray, X: np.ndarray, y: np.ndarray, n_classes: int, *, clip_norm: float,
                 noise_multiplier: float, rate: float, steps: int, lr: float, l2: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, float, int]:
    """``steps`` DP-SGD steps on one client's rows with the full noise on every step (local placement).

    Each step: Poisson sample at ``rate``, clip each example's gradient to ``clip_norm``,
    round the sum to the grid and add discrete Gaussian noise (:func:`grid_noise`),
    divide by the expected batch ``rate * n`` (a public constant) and step. Returns
    ``(new params float64 (P,), fraction of sampled examples clipped, examples sampled)``.
    """
    W = np.asarray(params, dtype=np.float64).copy()
    d = X.shape[1]
    expected = rate * len(y)
    clipped = seen = 0
    for _ in range(int(steps)):
        s, k, c = clipped_gradient_sum(W, X, y, n_classes, clip_norm, rate, rng)
        noisy, _ = grid_noise(s, clip_norm, noise_multiplier, rng)
        M = weights_matrix(W, d, n_classes)
        grad = noisy / expected
        grad = grad.reshape(M.shape)
        grad[:-1] += l2 * M[:-1]
        W = (M - lr * grad).ravel()
        clipped += c
        seen += k
    return W, (clipped / seen if seen else 0.0), seen


def distributed_params(*, clip_norm: float, noise_multiplier: float, vector_clip: float, num_clients: int,
                       min_clients: int, dim: int, options: Mapping[str, Any] | None = None):
    """The :class:`secagg.dp.distributed.DistributedDP` of one example-level distributed round.

    ``noise_multiplier`` is per example (total noise std ``z * clip_norm``); the client vector
    is bounded by ``vector_clip`` (a public constant, e.g. ``clip_norm`` times the largest
    client size). ``options`` may set ``bits``, ``mechanism`` (only ``"ddg"`` has an
    example-level event here), ``k_stddevs`` and ``rotation_seed``.
    """
    from secagg.dp.distributed import DistributedDP

    opts = dict(options or {})
    mechanism = opts.get("mechanism", "ddg")
    if mechanism != "ddg":
        raise ConfigurationError(f"example-level distributed DP uses mechanism 'ddg', got {mechanism!r}")
    return DistributedDP(clip_norm=vector_clip, noise_multiplier=noise_multiplier * clip_norm / vector_clip,
                         num_clients=int(num_clients), dim=int(dim), bits=int(opts.get("bits", 32)),
                         mechanism="ddg", min_clients=int(min_clients),
                         k_stddevs=float(opts.get("k_stddevs", 4.0)),
                         rotation_seed=int(opts.get("rotation_seed", 0)))


def distributed_example_event(params, clip_norm: float, survivors: int):
    """Per-example event of one distributed round with ``survivors`` noise shares (module docstring)."""
    dp = _dp()
    m = params.padded_dim
    d2 = clip_norm * params.scale + 2.0 * math.sqrt(m)
    d1 = d2 * min(math.sqrt(m), d2)
    return dp.DistributedDiscreteGaussianEvent(params.local_stddev, int(survivors), d2, d1, m)


def example_event(placement: str, noise_multiplier: float, rate: float, *, steps: int = 1,
                  distributed: Any = None, clip_norm: float = 1.0, survivors: int | None = None,
                  dim: int | None = None):
    """The per-example privacy event of one round.

    ``placement``: ``"central"``, ``"local"`` or ``"distributed"``; ``rate``: Poisson rate
    of each client's example sample; ``steps``: local DP-SGD steps (local only);
    ``distributed``/``survivors``: the round's DistributedDP and the number of noise shares
    in the sum (distributed only); ``dim``: the parameter count (central and local: it
    sets the grid sensitivity ``clip / res + sqrt(dim)`` of :func:`grid_noise`).
    """
    dp = _dp()
    if placement == "distributed":
        if survivors is None:
            raise ConfigurationError("example_event needs survivors (the noise shares in the sum) for distributed DP")
        inner = distributed_example_event(distributed, clip_norm, survivors)
    else:
        if dim is None:
            raise ConfigurationError("example_event needs dim (the parameter count) for central or local DP")
        sens = clip_norm / resolution(clip_norm) + math.sqrt(int(dim))
        inner = dp.DiscreteGaussianEvent(noise_multiplier, sensitivity=sens, dim=int(dim))
    ev = dp.PoissonSampledEvent(rate, inner) if rate < 1.0 else inner
    if placement == "local" and steps != 1:
        ev = dp.SelfComposedEvent(ev, int(steps))
    return ev


@dataclass
class ExampleRound:
    """What one example-level round produced: the noisy gradient sum (or mean delta) and its costs."""

    total: np.ndarray
    survivors: np.ndarray
    bytes_up: np.ndarray
    bytes_down: np.ndarray
    client_seconds: np.ndarray
    server_seconds: float
    noise_std: float
    event: Any


def int_payload_bytes(ints: np.ndarray) -> int:
    """Bytes of a client's integer vector on the wire: a width byte plus int32 (int64 if needed)."""
    wide = ints.size and int(np.abs(ints).max()) >= 2**31
    return 1 + (8 if wide else 4) * int(ints.size)


def central_round(sums: np.ndarray, keep: np.ndarray, *, clip_norm: float, noise_multiplier: float,
                  rng: np.random.Generator, event) -> ExampleRound:
    """Central placement: survivors send rounded integer sums; the server adds the noise once."""
    n, P = sums.shape
    res = resolution(clip_norm)
    up = np.zeros(n, dtype=np.int64)
    client_seconds = np.zeros(n)
    total_int = np.zeros(P, dtype=np.int64)
    for i in keep:
        t0 = time.perf_counter()
        ints = np.rint(sums[i] / res).astype(np.int64)
        client_seconds[i] = time.perf_counter() - t0
        up[i] = int_payload_bytes(ints)
        total_int += ints
    t0 = time.perf_counter()
    sigma_int = noise_multiplier * (clip_norm / res + math.sqrt(P))
    total_int += _dp().discrete_gaussian(sigma_int, P, rng)
    total = total_int.astype(np.float64) * res
    return ExampleRound(total, keep.astype(np.int64), up, np.zeros(n, dtype=np.int64), client_seconds,
                        time.perf_counter() - t0, sigma_int * res, event)
