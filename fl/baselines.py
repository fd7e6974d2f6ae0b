"""External DP baselines: IBM diffprivlib's central, example-level LogisticRegression.

``diffprivlib.models.LogisticRegression`` (Holohan et al., "Diffprivlib: The IBM
Differential Privacy Library", 2019) trains with objective perturbation (Chaudhuri,
Monteleoni, Sarwate, JMLR 2011, Algorithm 2) on the pooled data: a *central*,
*example-level* guarantee with a trusted curator holding every row, pure epsilon-DP
(delta = 0). It is the price-of-trust reference for the federated example-level rows.

diffprivlib is optional (the ``dev`` extra); :func:`diffprivlib_available` says whether
it imports. diffprivlib 0.6.6 was written against scikit-learn <= 1.7: on 1.8+ its
``models`` package fails to import (``sklearn.tree._tree.DOUBLE``) and its
``LogisticRegression.__init__`` passes the removed ``multi_class``. :func:`_import`
restores the two dtype aliases (``DOUBLE = float64``, ``DTYPE = float32``, their values in
scikit-learn <= 1.7; only diffprivlib's tree models read them) and
:class:`_LogisticRegression` calls scikit-learn's constructor without ``multi_class``
(diffprivlib's own ``fit`` is used unchanged: one-vs-rest, L-BFGS on the perturbed
objective). Anything else failing makes the baseline unavailable, with the reason.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from secagg.errors import ConfigurationError

__all__ = ["diffprivlib_available", "run_diffprivlib"]

#: hyper-parameters tried for the baseline at each epsilon (its best mean accuracy is
#: reported: generous to the baseline). data_norm: public row-norm bound (rows are
#: clipped to it; sqrt(30) ~ 5.5 is the typical norm of a standardized 30-feature row).
DIFFPRIVLIB_GRID = {"data_norm": (1.0, 2.5, 5.5, 11.0), "C": (0.01, 0.1, 1.0, 10.0)}

_CLASS: Any = None
_ERROR: str | None = None


def _import():
    global _CLASS, _ERROR
    if _CLASS is not None or _ERROR is not None:
        return _CLASS
    try:
        import sklearn.tree._tree as tree

        for name, dtype in (("DOUBLE", np.float64), ("DTYPE", np.float32)):
            if not hasattr(tree, name):
                setattr(tree, name, dtype)
        from diffprivlib.accountant import BudgetAccountant
        from diffprivlib.models import LogisticRegression as DPLogisticRegression
        from sklearn.linear_model import LogisticRegression as SkLogisticRegression
    except Exception as exc:  # ImportError, or an incompatible installation
        _ERROR = f"{type(exc).__name__}: {exc}"
        return None

    class _LogisticRegression(DPLogisticRegression):
        def __init__(self, *, epsilon=1.0, data_norm=None, tol=1e-4, C=1.0, fit_intercept=True, max_iter=100,
                     verbose=0, warm_start=False, n_jobs=None, random_state=None, accountant=None):
            try:
                DPLogisticRegression.__init__(self, epsilon=epsilon, data_norm=data_norm, tol=tol, C=C,
                                              fit_intercept=fit_intercept, max_iter=max_iter, verbose=verbose,
                                              warm_start=warm_start, n_jobs=n_jobs, random_state=random_state,
                                              accountant=accountant)
            except TypeError:  # scikit-learn >= 1.8: no multi_class
                SkLogisticRegression.__init__(self, tol=tol, C=C, fit_intercept=fit_intercept,
                                              intercept_scaling=1.0, class_weight=None, random_state=random_state,
                                              solver="lbfgs", max_iter=max_iter, verbose=verbose,
                                              warm_start=warm_start, n_jobs=n_jobs)
                self.epsilon = epsilon
                self.data_norm = data_norm
                self.classes_ = None
                self.accountant = BudgetAccountant.load_default(accountant)

    _CLASS = _LogisticRegression
    return _CLASS


def diffprivlib_available() -> tuple[bool, str]:
    """``(True, version)`` if the diffprivlib baseline works here, else ``(False, reason)``."""
    cls = _import()
    if cls is None:
        return False, f"diffprivlib unavailable ({_ERROR}); install the dev extra"
    import diffprivlib

    return True, str(getattr(diffprivlib, "__version__", "?"))


def diffprivlib_logistic_regression(epsilon: float, *, data_norm: float, C: float = 1.0,
                                    random_state: int | None = None) -> Any:
    """An unfitted diffprivlib LogisticRegression (epsilon-DP, delta 0, central, per example).

    Raises
    ------
    ConfigurationError
        if diffprivlib is not installed or does not work with this scikit-learn.
    """
    cls = _import()
    if cls is None:
        raise ConfigurationError(f"diffprivlib unavailable ({_ERROR}); install the dev extra")
    return cls(epsilon=float(epsilon), data_norm=float(data_norm), C=float(C), random_state=random_state,
               max_iter=1000)


def run_diffprivlib(datasets, epsilon: float, seeds, *, reproducible_noise: bool = False) -> dict:
    """Best mean test accuracy over :data:`DIFFPRIVLIB_GRID` at ``epsilon``, over ``seeds``.

    ``datasets``: one :class:`fl.data.Dataset` per seed (in the order of ``seeds``), or
    one dataset for every seed. ``seeds`` index repeats; the noise follows them only with
    ``reproducible_noise``. Returns ``{"accuracy", "accuracy_std", "accuracy_runs",
    "data_norm", "C"}`` (``accuracy_std``: sample standard deviation over the seeds, None
    for one seed).
    """
    seeds = list(seeds)
    per_seed = list(datasets) if isinstance(datasets, (list, tuple)) else [datasets] * len(seeds)
    if len(per_seed) != len(seeds):
        raise ConfigurationError(f"{len(per_seed)} datasets for {len(seeds)} seeds")
    best: dict | None = None
    for data_norm in DIFFPRIVLIB_GRID["data_norm"]:
        for C in DIFFPRIVLIB_GRID["C"]:
            accs = []
            for s, dataset in zip(seeds, per_seed):
                model = diffprivlib_logistic_regression(epsilon, data_norm=data_norm, C=C,
                                                        random_state=int(s) if reproducible_noise else None)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model.fit(dataset.X_train, dataset.y_train)
                accs.append(float(model.score(dataset.X_test, dataset.y_test)))
            mean = float(np.mean(accs))
            if best is None or mean > best["accuracy"]:
                best = {"accuracy": mean, "accuracy_std": float(np.std(accs, ddof=1)) if len(accs) > 1 else None,
                        "accuracy_runs": accs,
                        "data_norm": data_norm, "C": C}
    assert best is not None
    return best
