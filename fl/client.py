"""A federated client: local SGD on its own rows, then a clipped, weighted model delta.

Implements the client side of FedAvg (McMahan et al., "Communication-Efficient Learning
of Deep Networks from Decentralized Data", AISTATS 2017) in the form used with secure
aggregation and differential privacy (McMahan et al., "Learning Differentially Private
Recurrent Language Models", ICLR 2018, DP-FedAvg): the client trains for E epochs from
the global model, takes the delta ``theta_local - theta_global``, clips its L2 norm to
``clip_norm`` and multiplies it by its public weight ``w <= 1``. The server only ever needs
the *sum* of these vectors and the public sum of the survivors' weights, which is what
every secure aggregator provides. Raw rows never leave the client.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from secagg._deprecation import renamed_keyword
from secagg.errors import InputError

from .model import loss_and_grad, n_params, sgd

__all__ = ["Client", "LocalUpdate", "clip_and_weight"]

#: floating-point operations per example per parameter for one SGD pass of logistic
#: regression (forward 2P, backward 4P multiply-adds counted as 2 flops each, rounded)
FLOPS_PER_EXAMPLE_PARAM = 6


@dataclass(frozen=True)
class LocalUpdate:
    """What one client's local training produced.

    Attributes
    ----------
    delta: float64 ``(P,)``: local model minus global model (before clipping/weighting).
    n_examples: rows the client holds. steps: SGD steps taken.
    train_loss: mean loss on the client's rows after training.
    seconds: measured wall seconds of local training on this machine.
    flops: counted floating-point work of the training (for the device-time model).
    """

    delta: np.ndarray
    n_examples: int
    steps: int
    train_loss: float
    seconds: float
    flops: float


class Client:
    """One simulated device holding ``X`` (n, d) float and ``y`` (n,) int labels in ``0..n_classes-1``."""

    def __init__(self, cid: int, X: np.ndarray, y: np.ndarray, n_classes: int) -> None:
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y)
        if X.ndim != 2 or y.shape != (X.shape[0],) or X.shape[0] < 1:
            raise InputError(f"client {cid}: X must be (n, d) with n >= 1 and y (n,), got {X.shape} and {y.shape}")
        self.cid = int(cid)
        self.X = X
        self.y = y.astype(np.int64)
        self.n_classes = int(n_classes)

    @property
    def n_examples(self) -> int:
        """Number of rows held by this client."""
        return int(self.X.shape[0])

    def local_update(self, global_params: np.ndarray, *, epochs: int = 1, batch_size: int = 16,
                     lr: float = 0.1, l2: float = 0.0, rng: np.random.Generator | None = None) -> LocalUpdate:
        """Train ``epochs`` passes of mini-batch SGD from ``global_params`` and return the delta."""
        t0 = time.perf_counter()
        params, steps, _ = sgd(global_params, self.X, self.y, self.n_classes, epochs=epochs,
                               batch_size=batch_size, lr=lr, l2=l2, rng=rng)
        loss, _ = loss_and_grad(params, self.X, self.y, self.n_classes, l2)
        seconds = time.perf_counter() - t0
        flops = float(FLOPS_PER_EXAMPLE_PARAM * epochs * self.n_examples
                      * n_params(self.X.shape[1], self.n_classes))
        return LocalUpdate(delta=params - np.asarray(global_params, dtype=np.float64), n_examples=self.n_examples,
                           steps=steps, train_loss=loss, seconds=seconds, flops=flops)


def clip_and_weight(deltas: np.ndarray, weights: np.ndarray, clip_norm: float | None = None, *,
                    clip: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Clip each row of ``deltas`` (n, P) to L2 norm ``clip_norm`` and scale row i by ``weights[i]``.

    ``weights`` must lie in ``[0, 1]`` so every row keeps norm <= ``clip_norm`` (the
    per-client sensitivity DP accounting relies on, and the coordinate bound the
    quantized aggregators need). Returns ``(rows, clipped_mask)``; vectorized over rows.
    ``clip=`` is the deprecated old name of ``clip_norm`` (a :class:`DeprecationWarning`).
    """
    clip = renamed_keyword("clip_and_weight", "clip", clip, "clip_norm", clip_norm)
    if clip is None:
        raise InputError("clip_and_weight needs clip_norm, the L2 norm each row is clipped to")
    deltas = np.asarray(deltas, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if deltas.ndim != 2 or weights.shape != (deltas.shape[0],):
        raise InputError(f"deltas must be (n, P) and weights (n,), got {deltas.shape} and {weights.shape}")
    if weights.size and (weights.min() < 0 or weights.max() > 1):
        raise InputError("client weights must lie in [0, 1] so that clipping bounds every contribution")
    if not clip > 0:
        raise InputError(f"clip_norm must be positive, got {clip!r}")
    norms = np.linalg.norm(deltas, axis=1)
    factor = np.minimum(1.0, clip / np.maximum(norms, 1e-300))
    return deltas * (factor * weights)[:, None], factor < 1.0
