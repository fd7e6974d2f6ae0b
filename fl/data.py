"""Datasets and client partitions for the federated experiments.

Datasets come from scikit-learn itself (breast cancer, digits, wine, iris, and the
synthetic ``make_classification`` for scale), so nothing is downloaded at run time.
Features are standardized with a mean and scale fitted on the *training* split only
(test data never leaks into preprocessing); a bias column is not added here (the model
owns its intercept).

Partitions split the training rows over clients:

* ``"iid"``: a uniform random permutation cut into near-equal parts;
* ``"dirichlet"``: label skew of Hsu, Qi, Brown, "Measuring the Effects of
  Non-Identical Data Distribution for Federated Visual Classification" (2019): for each
  class, the share of its rows going to each client is drawn from Dirichlet(alpha)
  (small alpha = strong skew; alpha -> infinity approaches IID);
* ``"quantity"``: quantity skew: client sizes proportional to a Dirichlet(alpha) draw
  over clients, labels IID within a client (Li, Diao, Chen, He, "Federated Learning on
  Non-IID Data Silos: An Experimental Study", ICDE 2022).

Every partition gives each client at least ``min_size`` rows (re-drawing as the papers
do), so no client is empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from secagg.errors import ConfigurationError, InputError
from secagg.quantize import default_rng

__all__ = ["DATASETS", "Dataset", "load_dataset", "partition", "partition_summary"]

#: dataset names accepted by :func:`load_dataset`
DATASETS = ("breast_cancer", "digits", "wine", "iris", "synthetic")
#: partition schemes accepted by :func:`partition`
PARTITIONS = ("iid", "dirichlet", "quantity")

_ALIASES = {
    "breast-cancer": "breast_cancer",
    "cancer": "breast_cancer",
    "make_classification": "synthetic",
    "make-classification": "synthetic",
}


@dataclass(frozen=True)
class Dataset:
    """A standardized train/test split.

    Attributes
    ----------
    name: dataset name (one of :data:`DATASETS`).
    X_train, X_test: float64 arrays ``(n_train, d)`` / ``(n_test, d)``, standardized with
        the training mean and standard deviation.
    y_train, y_test: int64 label arrays with values in ``0 .. n_classes - 1``.
    n_classes: number of classes (2 means binary logistic regression).
    mean, scale: float64 ``(d,)`` statistics fitted on the raw training features.
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    mean: np.ndarray
    scale: np.ndarray

    @property
    def n_features(self) -> int:
        """Number of input features ``d``."""
        return int(self.X_train.shape[1])

    def describe(self) -> str:
        """One line: name, sizes, features and classes."""
        return (
            f"{self.name}: {len(self.y_train)} train / {len(self.y_test)} test rows, "
            f"{self.n_features} features, {self.n_classes} classes"
        )


def _raw(name: str, n_samples: int, n_features: int, n_classes: int, seed: int):
    from sklearn import datasets as skd

    if name == "breast_cancer":
        b = skd.load_breast_cancer()
        return b.data, b.target
    if name == "digits":
        b = skd.load_digits()
        return b.data, b.target
    if name == "wine":
        b = skd.load_wine()
        return b.data, b.target
    if name == "iris":
        b = skd.load_iris()
        return b.data, b.target
    n_inf = max(2, min(n_features, n_features // 2 + 1))
    return skd.make_classification(
        n_samples=n_samples,
        n_features=n_features,
        n_informative=n_inf,
        n_redundant=min(2, n_features - n_inf),
        n_classes=n_classes,
        n_clusters_per_class=1,
        class_sep=1.0,
        random_state=seed,
    )


def load_dataset(
    name: str,
    *,
    test_size: float = 0.25,
    seed: int = 0,
    n_samples: int = 5000,
    n_features: int = 20,
    n_classes: int = 2,
) -> Dataset:
    """Load a scikit-learn dataset, split it (stratified) and standardize it.

    Parameters
    ----------
    name: one of :data:`DATASETS` (``"breast-cancer"`` and ``"make_classification"`` are aliases).
    test_size: fraction of rows held out for testing, in ``(0, 1)``.
    seed: seed of the split (and of the synthetic data).
    n_samples, n_features, n_classes: size of the ``"synthetic"`` dataset (ignored otherwise).

    Raises
    ------
    ConfigurationError: unknown dataset name or impossible sizes.
    """
    key = _ALIASES.get(name, name) if isinstance(name, str) else name
    if key not in DATASETS:
        raise ConfigurationError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if not 0.0 < float(test_size) < 1.0:
        raise ConfigurationError(f"test_size must be in (0, 1), got {test_size!r}")
    if key == "synthetic" and (n_samples < 20 or n_features < 2 or not 2 <= n_classes <= n_features):
        raise ConfigurationError(
            "synthetic data needs n_samples >= 20, n_features >= 2 and 2 <= n_classes <= n_features, "
            f"got n_samples={n_samples}, n_features={n_features}, n_classes={n_classes}"
        )
    from sklearn.model_selection import train_test_split

    X, y = _raw(key, n_samples, n_features, n_classes, seed)
    X = np.asarray(X, dtype=np.float64)
    _, y = np.unique(np.asarray(y), return_inverse=True)
    y = y.astype(np.int64)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=test_size, random_state=seed, stratify=y)
    mean = X_tr.mean(axis=0)
    scale = X_tr.std(axis=0)
    scale[scale == 0] = 1.0  # constant features (e.g. blank digit pixels) stay 0
    return Dataset(
        name=key,
        X_train=(X_tr - mean) / scale,
        y_train=y_tr,
        X_test=(X_te - mean) / scale,
        y_test=y_te,
        n_classes=int(y.max()) + 1,
        mean=mean,
        scale=scale,
    )


def partition(
    y: np.ndarray,
    num_clients: int,
    scheme: str = "iid",
    *,
    alpha: float = 0.5,
    min_size: int = 2,
    rng: np.random.Generator | None = None,
    max_tries: int = 1000,
) -> list[np.ndarray]:
    """Split row indices ``0 .. len(y) - 1`` over ``num_clients`` clients.

    Parameters
    ----------
    y: int labels, shape ``(n,)``.
    num_clients: number of clients (``1 <= num_clients <= n // min_size``).
    scheme: ``"iid"``, ``"dirichlet"`` (label skew) or ``"quantity"`` (size skew).
    alpha: Dirichlet concentration (> 0) for the two skewed schemes.
    min_size: smallest allowed client size; skewed draws are repeated until it holds.
    rng: numpy Generator (statistical randomness; OS-seeded by default).

    Returns
    -------
    list of ``num_clients`` sorted int64 index arrays, disjoint, covering every row.

    Raises
    ------
    ConfigurationError: unknown scheme, bad alpha, too many clients for the data, or no
        draw satisfied ``min_size`` within ``max_tries``.
    """
    y = np.asarray(y)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise InputError(f"y must be a 1-D integer label array, got shape {y.shape} dtype {y.dtype}")
    n = len(y)
    if scheme not in PARTITIONS:
        raise ConfigurationError(f"unknown partition {scheme!r}; choose one of {', '.join(PARTITIONS)}")
    if not isinstance(num_clients, (int, np.integer)) or num_clients < 1:
        raise ConfigurationError(f"num_clients must be a positive integer, got {num_clients!r}")
    if min_size < 1 or num_clients * min_size > n:
        raise ConfigurationError(
            f"{n} training rows cannot give {num_clients} clients at least {min_size} rows each; "
            f"use at most {n // max(min_size, 1)} clients"
        )
    if scheme != "iid" and not (np.isfinite(alpha) and alpha > 0):
        raise ConfigurationError(f"alpha must be a positive finite number, got {alpha!r}")
    gen = default_rng(rng)

    if scheme == "iid":
        return [np.sort(p).astype(np.int64) for p in np.array_split(gen.permutation(n), num_clients)]

    for _ in range(max_tries):
        if scheme == "quantity":
            props = gen.dirichlet(np.full(num_clients, alpha))
            # sizes: min_size each, the rest split by the Dirichlet proportions
            extra = np.floor(props * (n - num_clients * min_size)).astype(np.int64)
            extra[: (n - num_clients * min_size) - extra.sum()] += 1
            cuts = np.cumsum(min_size + extra)[:-1]
            return [np.sort(p).astype(np.int64) for p in np.split(gen.permutation(n), cuts)]
        # dirichlet label skew: per class, split its rows by Dirichlet(alpha) proportions
        owner = np.empty(n, dtype=np.int64)
        for c in np.unique(y):  # loop over classes (<= 10), not rows
            rows = gen.permutation(np.flatnonzero(y == c))
            props = gen.dirichlet(np.full(num_clients, alpha))
            cuts = (np.cumsum(props)[:-1] * len(rows)).astype(np.int64)
            owner[rows] = np.repeat(np.arange(num_clients), np.diff(np.concatenate(([0], cuts, [len(rows)]))))
        sizes = np.bincount(owner, minlength=num_clients)
        if sizes.min() >= min_size:
            order = np.argsort(owner, kind="stable")
            return [np.sort(p).astype(np.int64) for p in np.split(order, np.cumsum(sizes)[:-1])]
    raise ConfigurationError(
        f"no Dirichlet(alpha={alpha}) draw gave all {num_clients} clients >= {min_size} rows in "
        f"{max_tries} tries; use a larger alpha or fewer clients"
    )


@dataclass(frozen=True)
class PartitionSummary:
    """Per-client sizes and label counts of a partition.

    Attributes
    ----------
    sizes: int64 ``(num_clients,)`` rows per client.
    label_counts: int64 ``(num_clients, n_classes)`` rows of each class per client.
    """

    sizes: np.ndarray
    label_counts: np.ndarray
    scheme: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def label_entropy(self) -> np.ndarray:
        """Shannon entropy (bits) of each client's label distribution, float64 ``(num_clients,)``."""
        p = self.label_counts / np.maximum(self.sizes[:, None], 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            h = -np.where(p > 0, p * np.log2(p), 0.0).sum(axis=1)
        return h

    def to_text(self, max_rows: int = 20) -> str:
        """A small fixed-width table: client, size, label counts."""
        k = self.label_counts.shape[1]
        head = f"{'client':>6} {'size':>6}  " + " ".join(f"{c:>4}" for c in range(k)) + "  entropy"
        lines = [f"partition {self.scheme}: sizes min {self.sizes.min()}, median "
                 f"{int(np.median(self.sizes))}, max {self.sizes.max()}", head]
        ent = self.label_entropy
        for i in range(min(len(self.sizes), max_rows)):
            lines.append(
                f"{i:>6} {self.sizes[i]:>6}  " + " ".join(f"{v:>4}" for v in self.label_counts[i])
                + f"  {ent[i]:7.2f}"
            )
        if len(self.sizes) > max_rows:
            lines.append(f"... {len(self.sizes) - max_rows} more clients")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "scheme": self.scheme,
            "sizes": self.sizes.tolist(),
            "label_counts": self.label_counts.tolist(),
            "label_entropy_bits": [round(float(v), 4) for v in self.label_entropy],
        }


def partition_summary(parts: Sequence[np.ndarray], y: np.ndarray, n_classes: int | None = None,
                      scheme: str = "") -> PartitionSummary:
    """Summarize ``parts`` (index arrays into ``y``): sizes and per-class counts."""
    y = np.asarray(y)
    k = int(n_classes if n_classes is not None else y.max() + 1)
    counts = np.stack([np.bincount(y[p], minlength=k) for p in parts]).astype(np.int64)
    return PartitionSummary(sizes=counts.sum(axis=1), label_counts=counts, scheme=scheme)
