"""The privacy headline: accuracy at epsilon <= 1, 2, 4, 8 (delta 1e-5) for both privacy units.

One table, one plot, one JSON block for ``secagg demo`` and ``secagg compare``: for each
technique and privacy unit (``"example"``: one training row; ``"client"``: all of a
client's rows) the mean test accuracy when the noise is calibrated for each target
epsilon (:func:`fl.privacy.calibrate_noise_multiplier`), beside the non-private FedAvg
accuracy and, where installed, IBM diffprivlib's central example-level
LogisticRegression (:mod:`fl.baselines`). Every row names its unit.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .baselines import diffprivlib_available, run_diffprivlib
from .data import load_dataset
from .report import markdown_table, plot_accuracy_vs_epsilon
from .server import FedAvgConfig, run_fedavg

__all__ = ["HEADLINE_EPSILONS", "HeadlineOptions", "headline_markdown", "headline_rows", "plot_headline",
           "run_headline"]

HEADLINE_EPSILONS = (1.0, 2.0, 4.0, 8.0)

#: (privacy unit, aggregator) rows of the headline, the one to trust least first
DEFAULT_TECHNIQUES = (("example", "distributed-dp"), ("example", "central-dp"), ("example", "local-dp"),
                      ("client", "distributed-dp"), ("client", "central-dp"))

PLACEMENT = {"central-dp": "central (trusted server)", "local-dp": "local (each client adds full noise)",
             "distributed-dp": "distributed (noise shares under secure aggregation)"}


@dataclass(frozen=True)
class HeadlineOptions:
    """Inputs of :func:`run_headline`.

    ``client_*`` set the client-level runs (FedAvg with local epochs), ``example_*`` the
    example-level ones (one DP-SGD step over the federation per round, full local
    batches unless ``example_rate < 1``). ``fraction``/``sampling`` sample clients;
    ``n_samples`` sizes the synthetic dataset.
    """

    dataset: str = "breast_cancer"
    clients: int = 10
    seeds: tuple[int, ...] = (0,)
    epsilons: tuple[float, ...] = HEADLINE_EPSILONS
    delta: float = 1e-5
    techniques: tuple[tuple[str, str], ...] = DEFAULT_TECHNIQUES
    client_rounds: int = 20
    client_lr: float = 0.1
    client_clip_norm: float = 1.0
    example_rounds: int = 20
    example_lr: float = 2.0
    example_clip_norm: float = 2.0
    example_rate: float = 1.0
    fraction: float = 1.0
    sampling: str = "fixed"
    dropout: float = 0.0
    n_samples: int = 5000
    baseline: bool = True
    reproducible_noise: bool = False
    extra: dict = field(default_factory=dict)


def _config(opt: HeadlineOptions, unit: str, name: str, eps: float) -> FedAvgConfig:
    common = dict(aggregator=name, target_epsilon=eps, delta=opt.delta, dp_unit=unit, dropout=opt.dropout,
                  reproducible_noise=opt.reproducible_noise, fraction=opt.fraction, sampling=opt.sampling)
    if unit == "example":
        return FedAvgConfig(rounds=opt.example_rounds, lr=opt.example_lr, clip_norm=opt.example_clip_norm,
                            example_sampling_rate=None if opt.example_rate == 1.0 else opt.example_rate, **common)
    return FedAvgConfig(rounds=opt.client_rounds, lr=opt.client_lr, clip_norm=opt.client_clip_norm, **common)


def run_headline(opt: HeadlineOptions = HeadlineOptions(), *, progress: bool = False,
                 log: Callable[[str], None] | None = None) -> dict:
    """Run the headline grid; returns a JSON-ready dict.

    Keys: ``epsilons``, ``delta``, ``seeds``, ``dataset``, ``non_private`` (mean accuracy of
    plain FedAvg with the client-level settings), ``rows`` (one per technique and unit:
    ``technique``, ``unit``, ``placement``, ``points`` = list of ``{"target_epsilon",
    "epsilon" (largest achieved over seeds), "accuracy" (mean), "accuracy_std" (sample
    standard deviation over the seeds; None for one seed),
    "accuracy_runs", "noise_multiplier"}``), ``baseline`` (diffprivlib rows or the reason
    it is absent). Configuration errors are raised before anything trains.
    """
    log = log or (lambda s: None)
    ds = load_dataset(opt.dataset, seed=0, n_samples=opt.n_samples)
    for unit, name in opt.techniques:  # validate every configuration first
        _config(opt, unit, name, opt.epsilons[0]).validate()
    plain = [run_fedavg(ds, FedAvgConfig(rounds=opt.client_rounds, lr=opt.client_lr, clip_norm=opt.client_clip_norm,
                                         fraction=opt.fraction, sampling=opt.sampling, dropout=opt.dropout),
                        num_clients=opt.clients, seed=s).accuracy for s in opt.seeds]
    jobs = [(unit, name, eps) for unit, name in opt.techniques for eps in opt.epsilons]
    it: Any = jobs
    if progress:
        from tqdm import tqdm
        it = tqdm(jobs, desc="accuracy at epsilon", leave=False, unit="setting")
    points: dict[tuple[str, str], list[dict]] = {}
    for unit, name, eps in it:
        log(f"{name} ({unit}-level) at epsilon {eps:g}")
        cfg = _config(opt, unit, name, eps)
        runs = [run_fedavg(ds, cfg, num_clients=opt.clients, seed=s) for s in opt.seeds]
        accs = [r.accuracy for r in runs]
        points.setdefault((unit, name), []).append({
            "target_epsilon": eps, "epsilon": max(float(r.epsilon or 0.0) for r in runs),
            "accuracy": float(np.mean(accs)), "accuracy_std": _sd(accs), "accuracy_runs": accs,
            "noise_multiplier": runs[0].noise_multiplier,
            "rounds_completed": min(sum(1 for h in r.history if not h.aborted and not h.refused) for r in runs)})
    rows = [{"technique": name, "unit": unit, "placement": PLACEMENT[name], "points": pts}
            for (unit, name), pts in points.items()]
    baseline: dict[str, Any] = {"available": False}
    if opt.baseline:
        ok, info = diffprivlib_available()
        if ok:
            log("diffprivlib LogisticRegression baseline")
            baseline = {"available": True, "version": info, "technique": "diffprivlib LogisticRegression",
                        "unit": "example", "placement": "central (trusted curator holds every row)",
                        "mechanism": "objective perturbation, pure epsilon-DP (delta 0)",
                        "points": [dict(run_diffprivlib(ds, eps, opt.seeds, reproducible_noise=opt.reproducible_noise),
                                        target_epsilon=eps, epsilon=eps) for eps in opt.epsilons]}
        else:
            baseline = {"available": False, "reason": info}
            log(f"baseline skipped: {info}")
    return {"dataset": ds.describe(), "dataset_name": ds.name, "clients": opt.clients, "epsilons": list(opt.epsilons),
            "delta": opt.delta, "seeds": list(opt.seeds), "non_private": float(np.mean(plain)),
            "non_private_runs": plain, "rows": rows, "baseline": baseline,
            "options": {k: v for k, v in dataclasses.asdict(opt).items() if k != "extra"},
            "reproducible_noise": opt.reproducible_noise}


def _sd(values: list[float]) -> float | None:
    """Sample standard deviation over seeds; ``None`` for one seed (there is no spread to measure)."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def headline_rows(doc: dict) -> list[dict]:
    """Flat table rows: privacy unit, technique, accuracy at each epsilon, no-DP accuracy."""
    out = []
    for r in doc["rows"] + ([doc["baseline"]] if doc["baseline"].get("available") else []):
        row = {"unit": r["unit"], "technique": r["technique"], "placement": r["placement"],
               "no_dp": doc["non_private"]}
        for p in r["points"]:
            row[f"eps_{p['target_epsilon']:g}"] = p["accuracy"]
        out.append(row)
    return out


def headline_columns(doc: dict) -> list[tuple[str, str]]:
    """``(key, header)`` columns of :func:`headline_rows` (headers state epsilon and delta)."""
    return ([("unit", "privacy unit"), ("technique", "technique"), ("placement", "noise added")]
            + [(f"eps_{e:g}", f"eps <= {e:g}") for e in doc["epsilons"]] + [("no_dp", "no DP")])


def headline_markdown(doc: dict) -> str:
    """The headline as a markdown section (table plus a sentence on units and delta)."""
    seeds = doc["seeds"]
    note = (f"Test accuracy (mean over {len(seeds)} seed{'s' if len(seeds) > 1 else ''}) with the noise calibrated "
            f"for each epsilon at delta = {doc['delta']:g}; {doc['dataset']}, {doc['clients']} clients. "
            "Privacy unit *example*: one training row (add/remove one example); *client*: all of a client's rows "
            "(add/remove one client).")
    if not doc["baseline"].get("available"):
        note += f" diffprivlib baseline: {doc['baseline'].get('reason', 'not requested')}."
    else:
        note += (" diffprivlib: pure epsilon-DP (delta 0) objective perturbation on the pooled rows, best of its "
                 "hyper-parameter grid per epsilon (chosen on the test set, which favours the baseline).")
    return "\n".join(["## Accuracy at a given privacy budget", "", note, "",
                      markdown_table(headline_rows(doc), headline_columns(doc)), ""])


def plot_headline(doc: dict, path: str) -> str:
    """Accuracy vs epsilon, one line per (technique, unit), the no-DP line dashed."""
    series = {}
    for r in doc["rows"] + ([doc["baseline"]] if doc["baseline"].get("available") else []):
        series[f"{r['technique']} ({r['unit']}-level)"] = [
            (p["target_epsilon"], p["accuracy"],
             None if p.get("accuracy_std") is None else p["accuracy_std"] / len(p["accuracy_runs"]) ** 0.5)
            for p in r["points"]]
    return plot_accuracy_vs_epsilon(series, path, baseline=doc["non_private"],
                                    title=f"{doc['dataset_name']}: accuracy vs epsilon, per privacy unit "
                                          f"(delta {doc['delta']:g})")
