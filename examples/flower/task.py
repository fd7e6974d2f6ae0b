"""The example's model and data: a linear regression in NumPy, trained by a few steps of
gradient descent on each node's own synthetic data (no download, deterministic per node).

The model is ``[w (DIM,), b ()]``; node ``i`` draws ``50 + 10 * i`` examples
``y = x . w_true + b_true + noise`` from a generator seeded by its partition id.
"""

from __future__ import annotations

import numpy as np

DIM = 20
_TRUE = np.random.default_rng(2024)
W_TRUE, B_TRUE = _TRUE.normal(size=DIM), 0.5


def initial_model() -> list[np.ndarray]:
    """The global model before round 1: float32 zeros, shapes ``[(DIM,), ()]``."""
    return [np.zeros(DIM, dtype=np.float32), np.zeros((), dtype=np.float32)]


def local_data(partition_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Node ``partition_id``'s examples: ``x`` float64 ``(m, DIM)``, ``y`` float64 ``(m,)``."""
    gen = np.random.default_rng(1000 + int(partition_id))
    m = 50 + 10 * int(partition_id)
    x = gen.normal(size=(m, DIM))
    return x, x @ W_TRUE + B_TRUE + 0.1 * gen.normal(size=m)


def train(model: list[np.ndarray], x: np.ndarray, y: np.ndarray, steps: int = 5, lr: float = 0.1) -> list[np.ndarray]:
    """``steps`` full-batch gradient steps on the mean squared error; float32 layers."""
    w, b = model[0].astype(np.float64), float(model[1])
    for _ in range(steps):
        err = x @ w + b - y
        w -= lr * (x.T @ err) / len(y)
        b -= lr * float(err.mean())
    return [w.astype(np.float32), np.asarray(b, dtype=np.float32)]


def mse(model: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    """Mean squared error of ``model`` on ``(x, y)``."""
    return float(np.mean((x @ model[0].astype(np.float64) + float(model[1]) - y) ** 2))
