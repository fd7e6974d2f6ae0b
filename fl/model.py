"""NumPy logistic regression (binary and softmax) for the federated clients.

The model is a linear classifier with an intercept: parameters are one flat float64
vector holding a ``(d + 1, K)`` matrix (row-major; the last row is the intercept),
``K = 1`` for binary classification (sigmoid, log loss) and ``K = n_classes`` for
multinomial (softmax, cross-entropy). A flat vector is what an aggregator sums.

Loss = mean cross-entropy + ``l2 / 2 * ||W||^2`` (intercept not penalized). Gradients
are closed form and vectorized over the batch. Training is mini-batch SGD for E epochs;
with ``clip_norm`` set, each example's gradient is clipped to L2 norm ``clip_norm``
before averaging, and ``noise_multiplier > 0`` adds Gaussian noise of standard deviation
``noise_multiplier * clip_norm`` to the summed batch gradient: DP-SGD of Abadi et al.,
"Deep Learning with Differential Privacy", CCS 2016 (Algorithm 1).

:class:`LogisticRegression` wraps the same functions as a scikit-learn style estimator
(parameters only in ``__init__``, learned attributes end in ``_``), so the centralized
baseline reads ``LogisticRegression().fit(X, y).score(X_test, y_test)``, as with
``sklearn.linear_model.LogisticRegression``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from secagg._deprecation import renamed_keyword
from secagg.errors import ConfigurationError, InputError
from secagg.quantize import default_rng

__all__ = [
    "LogisticRegression",
    "init_params",
    "loss_and_grad",
    "per_example_grads",
    "predict_proba",
    "sgd",
    "n_params",
    "weights_matrix",
    "residuals",
]


def n_outputs(n_classes: int) -> int:
    """Columns K of the weight matrix: 1 for binary, ``n_classes`` otherwise."""
    if not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
        raise ConfigurationError(f"n_classes must be an integer >= 2, got {n_classes!r}")
    return 1 if n_classes == 2 else int(n_classes)


def n_params(n_features: int, n_classes: int) -> int:
    """Length of the flat parameter vector: ``(n_features + 1) * K``."""
    return (int(n_features) + 1) * n_outputs(n_classes)


def init_params(n_features: int, n_classes: int) -> np.ndarray:
    """Zero parameters (the loss is convex, so zero is a fine start), float64 ``(P,)``."""
    return np.zeros(n_params(n_features, n_classes))


def weights_matrix(params: np.ndarray, n_features: int, n_classes: int) -> np.ndarray:
    """The flat parameter vector as the ``(n_features + 1, K)`` weight matrix (last row:
    the intercepts; ``K = n_outputs(n_classes)``), a view when ``params`` is float64.

    Raises InputError for a vector of the wrong length."""
    k = n_outputs(n_classes)
    p = np.asarray(params, dtype=np.float64)
    if p.shape != ((n_features + 1) * k,):
        raise InputError(f"params must have shape ({(n_features + 1) * k},) for {n_features} features "
                         f"and {n_classes} classes, got {p.shape}")
    return p.reshape(n_features + 1, k)


def _probs(W: np.ndarray, X: np.ndarray) -> np.ndarray:
    """(n, K) probabilities: sigmoid for K == 1, softmax otherwise."""
    z = X @ W[:-1] + W[-1]
    if W.shape[1] == 1:
        return 0.5 * (1.0 + np.tanh(0.5 * z))  # stable sigmoid
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def _residual(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dLoss/dlogits per example: P - onehot(y) (K columns)."""
    R = P.copy()
    if R.shape[1] == 1:
        R[:, 0] -= y
    else:
        R[np.arange(len(y)), y] -= 1.0
    return R


def residuals(W: np.ndarray, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``dLoss/dlogits`` of each example, float64 ``(n, K)``: predicted probabilities
    minus the one-hot labels, for the weight matrix ``W`` (:func:`weights_matrix`). The
    gradient of the summed loss is ``X.T @ R`` (weights) and ``R.sum(0)`` (intercepts)."""
    return _residual(_probs(W, X), y)


def _xent(P: np.ndarray, y: np.ndarray) -> float:
    # log of the probability itself (floored only where it underflows): adding a constant
    # such as 1e-12 would make the loss disagree with its closed-form gradient
    tiny = np.finfo(np.float64).tiny
    if P.shape[1] == 1:
        p = P[:, 0]
        return float(-np.mean(y * np.log(np.maximum(p, tiny)) + (1 - y) * np.log(np.maximum(1 - p, tiny))))
    return float(-np.mean(np.log(np.maximum(P[np.arange(len(y)), y], tiny))))


def _check_xy(X, y, n_features: int | None = None, n_classes: int | None = None):
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise InputError(f"X must be a 2-D array (n, d), got shape {X.shape}")
    if n_features is not None and X.shape[1] != n_features:
        raise InputError(f"X has {X.shape[1]} features, the model expects {n_features}")
    if y is None:
        return X, None
    y = np.asarray(y)
    if y.shape != (X.shape[0],) or y.dtype.kind not in "iu":
        raise InputError(f"y must be integer labels of shape ({X.shape[0]},), got {y.shape} {y.dtype}")
    if n_classes is not None and y.size and (y.min() < 0 or y.max() >= n_classes):
        raise InputError(f"labels must lie in [0, {n_classes}), got range [{y.min()}, {y.max()}]")
    return X, y.astype(np.int64)


def predict_proba(params: np.ndarray, X: np.ndarray, n_classes: int) -> np.ndarray:
    """Class probabilities, float64 ``(n, n_classes)`` (binary gives two columns)."""
    X, _ = _check_xy(X, None)
    W = weights_matrix(params, X.shape[1], n_classes)
    P = _probs(W, X)
    return np.hstack([1.0 - P, P]) if W.shape[1] == 1 else P


def loss_and_grad(params: np.ndarray, X: np.ndarray, y: np.ndarray, n_classes: int,
                  l2: float = 0.0) -> tuple[float, np.ndarray]:
    """Mean loss and its gradient (float64 ``(P,)``) on ``(X, y)``, vectorized over rows."""
    X, y = _check_xy(X, y, n_classes=n_classes)
    W = weights_matrix(params, X.shape[1], n_classes)
    P = _probs(W, X)
    R = _residual(P, y) / len(y)
    G = np.empty_like(W)
    G[:-1] = X.T @ R + l2 * W[:-1]
    G[-1] = R.sum(axis=0)
    return _xent(P, y) + 0.5 * l2 * float(np.sum(W[:-1] ** 2)), G.ravel()


def per_example_grads(params: np.ndarray, X: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Gradient of each example's loss (no L2 term), float64 ``(n, P)``."""
    X, y = _check_xy(X, y, n_classes=n_classes)
    W = weights_matrix(params, X.shape[1], n_classes)
    R = residuals(W, X, y)  # (n, K)
    Xb = np.hstack([X, np.ones((len(X), 1))])
    return np.einsum("bi,bk->bik", Xb, R).reshape(len(X), -1)


def sgd(
    params: np.ndarray,
    X: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    *,
    epochs: int = 1,
    batch_size: int = 32,
    lr: float = 0.1,
    l2: float = 0.0,
    clip_norm: float | None = None,
    noise_multiplier: float = 0.0,
    rng: np.random.Generator | None = None,
    clip: float | None = None,
) -> tuple[np.ndarray, int, float]:
    """Mini-batch SGD for ``epochs`` passes over ``(X, y)`` (reshuffled each epoch).

    With ``clip_norm`` set, per-example gradients are L2-clipped to ``clip_norm`` and (if
    ``noise_multiplier > 0``) Gaussian noise ``N(0, (noise_multiplier * clip_norm)^2)`` is
    added to each summed batch gradient (DP-SGD). Returns ``(new_params, steps,
    fraction_clipped)``; ``params`` is not modified. ``clip=`` is the deprecated old name
    of ``clip_norm`` (a :class:`DeprecationWarning`).

    Raises ConfigurationError for non-positive epochs, batch size or learning rate, or
    noise without a clip norm.
    """
    clip = renamed_keyword("sgd", "clip", clip, "clip_norm", clip_norm)
    if epochs < 1 or batch_size < 1 or not lr > 0 or l2 < 0:
        raise ConfigurationError(
            f"need epochs >= 1, batch_size >= 1, lr > 0, l2 >= 0; got {epochs}, {batch_size}, {lr}, {l2}"
        )
    if noise_multiplier and clip is None:
        raise ConfigurationError("DP-SGD noise needs a per-example clip norm (clip_norm=...)")
    if clip is not None and not clip > 0:
        raise ConfigurationError(f"clip_norm must be positive, got {clip!r}")
    X, y = _check_xy(X, y, n_classes=n_classes)
    gen = default_rng(rng)
    n, d = X.shape
    W = weights_matrix(params, d, n_classes).copy()
    steps, clipped, seen = 0, 0, 0
    for _ in range(int(epochs)):
        order = gen.permutation(n)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            Xb, yb = X[idx], y[idx]
            if clip is None:
                R = residuals(W, Xb, yb) / len(idx)
                gW = Xb.T @ R
                gb = R.sum(axis=0)
            else:
                g = per_example_grads(W.ravel(), Xb, yb, n_classes)
                norms = np.linalg.norm(g, axis=1)
                factor = np.minimum(1.0, clip / np.maximum(norms, 1e-12))
                clipped += int(np.count_nonzero(factor < 1.0))
                seen += len(idx)
                gsum = factor @ g
                if noise_multiplier:
                    gsum = gsum + gen.normal(0.0, noise_multiplier * clip, size=gsum.shape)
                G = (gsum / len(idx)).reshape(W.shape)
                gW, gb = G[:-1], G[-1]
            W[:-1] -= lr * (gW + l2 * W[:-1])
            W[-1] -= lr * gb
            steps += 1
    return W.ravel(), steps, (clipped / seen if seen else 0.0)


try:  # scikit-learn gives get_params/set_params/clone compatibility when installed
    from sklearn.base import BaseEstimator as _Base
    from sklearn.base import ClassifierMixin as _Mixin
except ImportError:  # pragma: no cover - sklearn is in the "fl" extra
    _Base = object

    class _Mixin:  # type: ignore[no-redef]  # stands in for sklearn's class of the same name
        pass


class LogisticRegression(_Mixin, _Base):
    """Logistic regression trained by mini-batch SGD (binary or softmax), sklearn style.

    Parameters
    ----------
    l2
        L2 penalty on the weights (``l2 / 2 * ||W||^2`` added to the mean loss).
    lr
        SGD step size.
    epochs
        passes over the data.
    batch_size
        rows per step.
    clip_norm, noise_multiplier
        per-example L2 clipping norm and DP-SGD noise (see :func:`sgd`).
    random_state
        int seed or numpy Generator for shuffling and noise (None: OS entropy).
    clip
        deprecated old name of ``clip_norm`` (a :class:`DeprecationWarning` at :meth:`fit`).

    Attributes
    ----------
    classes_
        original labels.
    coef_
        weights, shape ``(K, d)``.
    intercept_
        biases, shape ``(K,)``.
    params_
        flat parameter vector.
    n_iter_
        SGD steps taken.
    """

    def __init__(self, l2: float = 1e-3, lr: float = 0.1, epochs: int = 50, batch_size: int = 32,
                 clip_norm: float | None = None, noise_multiplier: float = 0.0, random_state: Any = None,
                 clip: float | None = None):
        self.l2 = l2
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.clip_norm = clip_norm
        self.noise_multiplier = noise_multiplier
        self.random_state = random_state
        self.clip = clip  # deprecated; kept as a parameter so get_params/clone see it

    def fit(self, X, y) -> "LogisticRegression":
        """Train on ``X`` (n, d) float and labels ``y`` (n,) of any sortable type."""
        X = np.asarray(X, dtype=np.float64)
        classes, yi = np.unique(np.asarray(y), return_inverse=True)
        if len(classes) < 2:
            raise InputError(f"need at least two classes to fit, got {len(classes)}")
        X, yi = _check_xy(X, yi.astype(np.int64))
        rng = self.random_state if isinstance(self.random_state, np.random.Generator) else (
            np.random.default_rng(self.random_state))
        self.classes_ = classes
        self.n_features_in_ = X.shape[1]
        params, steps, _ = sgd(init_params(X.shape[1], len(classes)), X, yi, len(classes), epochs=self.epochs,
                               batch_size=self.batch_size, lr=self.lr, l2=self.l2,
                               clip_norm=renamed_keyword(self, "clip", self.clip, "clip_norm", self.clip_norm),
                               noise_multiplier=self.noise_multiplier, rng=rng)
        self.set_learned(params)
        self.n_iter_ = steps
        return self

    def set_learned(self, params: np.ndarray) -> "LogisticRegression":
        """Install a flat parameter vector (e.g. a FedAvg result); needs ``classes_`` and ``n_features_in_``."""
        W = weights_matrix(params, self.n_features_in_, len(self.classes_))
        self.params_ = W.ravel().copy()
        self.coef_ = W[:-1].T.copy()
        self.intercept_ = W[-1].copy()
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "params_"):
            raise InputError("this LogisticRegression is not fitted yet; call fit(X, y) first")

    def predict_proba(self, X) -> np.ndarray:
        """Probabilities, float64 ``(n, n_classes)`` in the order of ``classes_``."""
        self._check_fitted()
        X, _ = _check_xy(X, None, n_features=self.n_features_in_)
        return predict_proba(self.params_, X, len(self.classes_))

    def predict(self, X) -> np.ndarray:
        """Most probable class label for each row of ``X``."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def score(self, X, y, sample_weight=None) -> float:
        """Mean accuracy on ``(X, y)``."""
        return float(np.average(self.predict(X) == np.asarray(y), weights=sample_weight))
