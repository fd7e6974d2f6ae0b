"""The privacy headline: accuracy at epsilon <= 1, 2, 4, 8 (delta 1e-5) for both privacy units.

One table, one plot, one JSON block for ``secagg demo``, ``secagg compare`` and
``secagg headline``: for each technique and privacy unit (``"example"``: one training
row; ``"client"``: all of a client's rows) the mean (and sample standard deviation over
seeds) of the test accuracy when the noise is calibrated for each target epsilon
(:func:`fl.privacy.calibrate_noise_multiplier`), beside two non-private references
(plain FedAvg, and scikit-learn's LogisticRegression on the pooled rows) and, where
installed, IBM diffprivlib's central example-level LogisticRegression
(:mod:`fl.baselines`). Every row names its unit.

Seed ``s`` fixes the train/test split (and, for ``"synthetic"``, the generated data),
the partition, the initialization and the client sampling; the DP noise comes from a
CSPRNG unless ``reproducible_noise``. The hyper-parameters are the same at every
epsilon; the presets' values were chosen on public synthetic proxies, never on the
data they are evaluated on (:mod:`fl.tuning`).

:data:`PRESETS` are the two experiments the documentation quotes, each with the targets
it is judged against (:func:`check_targets`):

* ``breast-cancer``: 10 clients; example-level DP under secure aggregation against
  diffprivlib at epsilon 2, 4, 8, and within 3 points of non-private at epsilon 8;
* ``synthetic-1000``: 1,000 clients of ``make_classification`` data, about 100 sampled
  per round; client-level distributed DP within 3 points of non-private at epsilon 8,
  without any amplification by the server's client sample.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from secagg.errors import ConfigurationError

from .baselines import diffprivlib_available, run_diffprivlib
from .data import Dataset, load_dataset
from .report import markdown_table, plot_accuracy_vs_epsilon
from .server import FedAvgConfig, run_fedavg

__all__ = [
    "HeadlineOptions",
    "run_headline",
    "headline_markdown",
    "PRESETS",
    "Target",
    "check_targets",
]

HEADLINE_EPSILONS = (1.0, 2.0, 4.0, 8.0)

#: (privacy unit, aggregator) rows of the headline, the one to trust least first
DEFAULT_TECHNIQUES = (("example", "distributed-dp"), ("example", "central-dp"), ("example", "local-dp"),
                      ("client", "distributed-dp"), ("client", "central-dp"))

PLACEMENT = {"central-dp": "central (trusted server)", "local-dp": "local (each client adds full noise)",
             "distributed-dp": "distributed (noise shares under secure aggregation)"}


def exact_arithmetic_sum(ring_vectors: np.ndarray, *, bits: int, dropout=None, rng=None,
                         dropout_round: str = "masked_input", **_: Any):
    """The output of the pairwise-mask secure sum, computed without running the protocol.

    SecAgg's pairwise masks cancel exactly in the ring ``Z_2^bits``, so the protocol's
    output is the sum mod ``2^bits`` of the ring vectors of the clients whose masked
    input arrived: this returns that same integer vector and survivor set (a client
    that drops at ``consistency_check`` or ``unmasking`` is in the sum, as in the
    protocol; a rate of dropouts is drawn from ``rng`` at ``dropout_round``), in a
    fraction of the time (a 1,000-client SecAgg+ round costs tens of seconds on 2 cores).
    It gives accuracy and privacy exactly as the protocol would; it does not measure
    bytes or protocol time, and does not enforce the clients' refusal to unmask below
    the noise floor (the round's privacy event is charged with the actual survivors
    either way). Select it with ``secure_sum="exact-arithmetic"`` in
    :class:`HeadlineOptions` or ``aggregator_options={"secure_sum": exact_arithmetic_sum}``
    for ``distributed-dp``.
    """
    from secagg.dp.distributed import plain_ring_sum
    from secagg.masking.rounds import ROUNDS

    last = ROUNDS.index("masked_input")
    if isinstance(dropout, Mapping):  # drops after the masked input leave that input in the sum
        dropout = {u: r for u, r in dropout.items() if r not in ROUNDS or ROUNDS.index(r) <= last} or None
    elif dropout is not None and dropout_round in ROUNDS and ROUNDS.index(dropout_round) > last:
        dropout = None
    out = plain_ring_sum(ring_vectors, bits=bits, dropout=dropout, rng=rng)
    out.info["secure_sum"] = "exact-arithmetic (masks cancel; protocol not run)"
    return out


#: ``HeadlineOptions.secure_sum`` -> the ``secure_sum`` option of distributed-dp (None: the protocol)
SECURE_SUMS: dict[str, Any] = {"masking": None, "exact-arithmetic": exact_arithmetic_sum}


@dataclass(frozen=True)
class Target:
    """A claim a headline is judged against (:func:`check_targets`).

    ``kind``: ``"at_least_baseline"`` (the row's mean accuracy >= the diffprivlib
    baseline's mean at each of ``epsilons``) or ``"near_non_private"`` (the row's mean
    accuracy at each of ``epsilons`` within ``points`` of the best non-private mean).
    """

    kind: str
    unit: str
    technique: str
    epsilons: tuple[float, ...]
    points: float = 0.03


@dataclass(frozen=True)
class HeadlineOptions:
    """Inputs of :func:`run_headline`.

    ``client_*`` set the client-level runs (FedAvg with local epochs), ``example_*`` the
    example-level ones (one DP-SGD step over the federation per round, full local
    batches unless ``example_rate < 1``). ``fraction``/``sampling`` sample clients;
    ``n_samples``/``n_features`` size the synthetic dataset. ``secure_sum``:
    ``"masking"`` (run the SecAgg protocol) or ``"exact-arithmetic"``
    (:func:`exact_arithmetic_sum`) for the distributed-dp rows. ``references``: run the
    non-private FedAvg and pooled scikit-learn references; ``baseline``: diffprivlib.
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
    client_local_epochs: int = 1
    # chosen on the public proxy of `secagg headline breast-cancer --tune` (fl.tuning), never on breast cancer
    example_rounds: int = 10
    example_lr: float = 4.0
    example_clip_norm: float = 1.0
    example_rate: float = 1.0
    fraction: float = 1.0
    sampling: str = "fixed"
    dropout: float = 0.0
    n_samples: int = 5000
    n_features: int = 20
    secure_sum: str = "masking"
    baseline: bool = True
    references: bool = True
    reproducible_noise: bool = False
    targets: tuple[Target, ...] = ()
    extra: dict = field(default_factory=dict)

    def validate(self) -> None:
        """Raise ConfigurationError for impossible options (before anything trains)."""
        if self.secure_sum not in SECURE_SUMS:
            raise ConfigurationError(f"secure_sum must be one of {', '.join(SECURE_SUMS)}, got {self.secure_sum!r}")
        if not self.seeds:
            raise ConfigurationError("the headline needs at least one seed")
        if not self.epsilons or any(not e > 0 for e in self.epsilons):
            raise ConfigurationError(f"epsilons must be positive numbers, got {self.epsilons!r}")
        for unit, name in self.techniques:
            if name not in PLACEMENT or unit not in ("client", "example"):
                raise ConfigurationError(f"unknown headline technique ({unit!r}, {name!r})")


#: the experiments the documentation quotes (``secagg headline PRESET``)
PRESETS: dict[str, HeadlineOptions] = {
    "breast-cancer": HeadlineOptions(
        seeds=tuple(range(10)),
        targets=(Target("at_least_baseline", "example", "distributed-dp", (2.0, 4.0, 8.0)),
                 Target("near_non_private", "example", "distributed-dp", (8.0,)))),
    "synthetic-1000": HeadlineOptions(
        dataset="synthetic", n_samples=20000, n_features=20, clients=1000, seeds=tuple(range(10)),
        fraction=0.1, sampling="poisson",
        # chosen on the public proxy of `secagg headline synthetic-1000 --tune` (other synthetic draws)
        client_rounds=30, client_lr=1.0, client_clip_norm=0.25,
        techniques=(("client", "distributed-dp"), ("client", "central-dp")), secure_sum="exact-arithmetic",
        baseline=False, targets=(Target("near_non_private", "client", "distributed-dp", (8.0,)),)),
}


def _datasets(opt: HeadlineOptions) -> dict[int, Dataset]:
    """One dataset per seed: seed ``s`` draws its own stratified train/test split (and synthetic data)."""
    return {s: load_dataset(opt.dataset, seed=s, n_samples=opt.n_samples, n_features=opt.n_features)
            for s in opt.seeds}


def _config(opt: HeadlineOptions, unit: str, name: str | None, eps: float | None) -> FedAvgConfig:
    sampling: dict[str, Any] = dict(fraction=opt.fraction, sampling=opt.sampling, dropout=opt.dropout)
    if name is None:  # the non-private FedAvg reference: the client-level training without DP
        return FedAvgConfig(rounds=opt.client_rounds, lr=opt.client_lr, clip_norm=opt.client_clip_norm,
                            local_epochs=opt.client_local_epochs, **sampling)
    options = {}
    if name == "distributed-dp" and SECURE_SUMS[opt.secure_sum] is not None:
        options["secure_sum"] = SECURE_SUMS[opt.secure_sum]
    common: dict[str, Any] = dict(aggregator=name, target_epsilon=eps, delta=opt.delta, dp_unit=unit,
                  reproducible_noise=opt.reproducible_noise, aggregator_options=options, **sampling)
    if unit == "example":
        return FedAvgConfig(rounds=opt.example_rounds, lr=opt.example_lr, clip_norm=opt.example_clip_norm,
                            example_sampling_rate=None if opt.example_rate == 1.0 else opt.example_rate, **common)
    return FedAvgConfig(rounds=opt.client_rounds, lr=opt.client_lr, clip_norm=opt.client_clip_norm,
                        local_epochs=opt.client_local_epochs, **common)


def _stats(values: list[float]) -> dict:
    return {"accuracy": float(np.mean(values)), "accuracy_std": _sd(values), "accuracy_runs": list(values)}


def _centralized(ds: Dataset) -> float:
    """Non-private scikit-learn LogisticRegression (L-BFGS, default C = 1) on the pooled training rows."""
    from sklearn.linear_model import LogisticRegression as SkLogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(SkLogisticRegression(max_iter=1000).fit(ds.X_train, ds.y_train).score(ds.X_test, ds.y_test))


def run_headline(opt: HeadlineOptions = HeadlineOptions(), *, progress: bool = False,
                 log: Callable[[str], None] | None = None) -> dict:
    """Run the headline grid; returns a JSON-ready dict.

    Keys: ``epsilons``, ``delta``, ``seeds``, ``dataset``, ``non_private`` (mean accuracy
    of plain FedAvg with the client-level settings; ``non_private_std``,
    ``non_private_runs``), ``centralized`` (non-private pooled scikit-learn
    LogisticRegression: ``accuracy``, ``accuracy_std``, ``accuracy_runs``), ``rows`` (one
    per technique and unit: ``technique``, ``unit``, ``placement``, ``points`` = list of
    ``{"target_epsilon", "epsilon" (largest achieved over seeds), "accuracy" (mean),
    "accuracy_std" (sample standard deviation over the seeds; None for one seed),
    "accuracy_runs", "noise_multiplier", "rounds_completed"}``), ``baseline`` (diffprivlib
    rows or the reason it is absent), ``targets`` (:func:`check_targets`). Configuration
    errors are raised before anything trains. With ``progress`` one bar counts every
    training run.
    """
    opt.validate()
    log = log or (lambda s: None)
    for unit, name in opt.techniques:  # validate every configuration first
        _config(opt, unit, name, opt.epsilons[0]).validate()
    datasets = _datasets(opt)
    first = datasets[opt.seeds[0]]
    baseline_on = opt.baseline and diffprivlib_available()[0]
    total = (len(opt.techniques) * len(opt.epsilons) + (2 if opt.references else 0)) * len(opt.seeds) + (
        len(opt.epsilons) if baseline_on else 0)
    bar: Any = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total, desc="headline", unit="run", leave=False)

    def start(what: str) -> None:  # name the run in progress on the bar
        if bar is not None:
            bar.set_postfix_str(what)

    def tick() -> None:
        if bar is not None:
            bar.update(1)

    non_private: list[float] = []
    centralized: list[float] = []
    if opt.references:
        log("non-private references (FedAvg, pooled scikit-learn)")
        for s in opt.seeds:
            start(f"no DP: FedAvg, seed {s}")
            non_private.append(run_fedavg(datasets[s], _config(opt, "client", None, None), num_clients=opt.clients,
                                          seed=s).accuracy)
            tick()
            start(f"no DP: pooled, seed {s}")
            centralized.append(_centralized(datasets[s]))
            tick()
    points: dict[tuple[str, str], list[dict]] = {}
    for unit, name in opt.techniques:
        for eps in opt.epsilons:
            log(f"{name} ({unit}-level) at epsilon {eps:g}")
            cfg = _config(opt, unit, name, eps)
            runs = []
            for s in opt.seeds:
                start(f"{name} ({unit}) eps {eps:g}, seed {s}")
                runs.append(run_fedavg(datasets[s], cfg, num_clients=opt.clients, seed=s))
                tick()
            accs = [r.accuracy for r in runs]
            points.setdefault((unit, name), []).append(dict(
                _stats(accs), target_epsilon=eps, epsilon=max(float(r.epsilon or 0.0) for r in runs),
                noise_multiplier=runs[0].noise_multiplier,
                rounds_completed=min(sum(1 for h in r.history if not h.aborted and not h.refused) for r in runs)))
    rows = [{"technique": name, "unit": unit, "placement": PLACEMENT[name], "points": pts}
            for (unit, name), pts in points.items()]
    baseline: dict[str, Any] = {"available": False, "reason": "not requested"}
    if opt.baseline:
        ok, info = diffprivlib_available()
        if ok:
            log("diffprivlib LogisticRegression baseline")
            pts = []
            for eps in opt.epsilons:
                start(f"diffprivlib eps {eps:g}")
                pts.append(dict(run_diffprivlib([datasets[s] for s in opt.seeds], eps, opt.seeds,
                                                reproducible_noise=opt.reproducible_noise),
                                target_epsilon=eps, epsilon=eps))
                tick()
            baseline = {"available": True, "version": info, "technique": "diffprivlib LogisticRegression",
                        "unit": "example", "placement": "central (trusted curator holds every row)",
                        "mechanism": "objective perturbation, pure epsilon-DP (delta 0)", "points": pts}
        else:
            baseline = {"available": False, "reason": info}
            log(f"baseline skipped: {info}")
    if bar is not None:
        bar.close()
    doc = {"dataset": first.describe(), "dataset_name": first.name, "clients": opt.clients,
           "epsilons": list(opt.epsilons), "delta": opt.delta, "seeds": list(opt.seeds),
           "split": "per seed (seed s draws its own train/test split)",
           "non_private": float(np.mean(non_private)) if non_private else None,
           "non_private_std": _sd(non_private) if non_private else None, "non_private_runs": non_private,
           "centralized": _stats(centralized) if centralized else None,
           "rows": rows, "baseline": baseline,
           "options": {k: v for k, v in dataclasses.asdict(opt).items() if k not in ("extra", "targets")},
           "secure_sum": opt.secure_sum, "reproducible_noise": opt.reproducible_noise}
    doc["targets"] = check_targets(doc, opt.targets)
    return doc


def _sd(values: list[float]) -> float | None:
    """Sample standard deviation over seeds; ``None`` for one seed (there is no spread to measure)."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def _point(doc: dict, unit: str, technique: str, eps: float) -> dict | None:
    for r in doc["rows"]:
        if r["unit"] == unit and r["technique"] == technique:
            return next((p for p in r["points"] if p["target_epsilon"] == eps), None)
    return None


def _pm(p: Mapping | None) -> str:
    if p is None:
        return "not measured"
    sd = p.get("accuracy_std")
    return f"{p['accuracy']:.4f}" + ("" if sd is None else f" ± {sd:.4f}")


def best_non_private(doc: dict) -> tuple[float | None, str, list]:
    """The higher of the two non-private means (plain FedAvg, pooled scikit-learn): ``(mean, name, runs)``."""
    cands = []
    if doc.get("non_private") is not None:
        cands.append((doc["non_private"], "non-private FedAvg", doc.get("non_private_runs") or []))
    if doc.get("centralized"):
        c = doc["centralized"]
        cands.append((c["accuracy"], "non-private pooled LogisticRegression", c.get("accuracy_runs") or []))
    return max(cands, key=lambda c: c[0]) if cands else (None, "", [])


def _paired_se(p: Mapping, b: Mapping) -> str:
    """``"; paired s.e. X"``: standard error of the mean per-seed difference (same splits), or ``""``."""
    a, c = p.get("accuracy_runs") or [], b.get("accuracy_runs") or []
    if len(a) != len(c) or len(a) < 2:
        return ""
    d = np.asarray(a) - np.asarray(c)
    return f"; paired s.e. {100 * float(np.std(d, ddof=1)) / len(d) ** 0.5:.1f}"


def check_targets(doc: dict, targets) -> list[dict]:
    """Judge ``doc`` (from :func:`run_headline`) against ``targets`` (:class:`Target`), from the means.

    Returns one dict per target and epsilon: ``target`` (a sentence), ``measured`` (the
    numbers, mean ± sample std over seeds), ``met`` (True / False, or None when a needed
    row was not measured).
    """
    out: list[dict[str, Any]] = []
    for t in targets:
        what = f"{t.technique} ({t.unit}-level)"
        for eps in t.epsilons:
            p = _point(doc, t.unit, t.technique, eps)
            if t.kind == "at_least_baseline":
                b = next((q for q in doc["baseline"].get("points", []) if q["target_epsilon"] == eps), None)
                text = f"{what} at epsilon {eps:g} reaches at least diffprivlib's accuracy (mean over seeds)"
                if p is None or b is None:
                    out.append({"target": text, "measured": "not measured", "met": None})
                    continue
                diff = p["accuracy"] - b["accuracy"]
                out.append({"target": text, "met": bool(diff >= 0),
                            "measured": f"{_pm(p)} vs diffprivlib {_pm(b)} ({100 * diff:+.1f} points"
                                        f"{_paired_se(p, b)})"})
            elif t.kind == "near_non_private":
                ref, name, ref_runs = best_non_private(doc)
                text = (f"{what} at epsilon {eps:g} within {100 * t.points:g} points of non-private "
                        "(the better of the two references)")
                if p is None or ref is None:
                    out.append({"target": text, "measured": "not measured", "met": None})
                    continue
                diff = p["accuracy"] - ref
                out.append({"target": text, "met": bool(diff >= -t.points),
                            "measured": f"{_pm(p)} vs {name} {ref:.4f} ({100 * diff:+.1f} points"
                                        f"{_paired_se(p, {'accuracy_runs': ref_runs})})"})
            else:
                raise ConfigurationError(f"unknown target kind {t.kind!r}")
    return out


def headline_rows(doc: dict, *, with_std: bool = False) -> list[dict]:
    """Flat table rows: privacy unit, technique, accuracy at each epsilon, no-DP accuracy.

    ``with_std``: cells are strings ``"mean ± std"`` (sample std over seeds) instead of means.
    """
    out = []
    for r in doc["rows"] + ([doc["baseline"]] if doc["baseline"].get("available") else []):
        row = {"unit": r["unit"], "technique": r["technique"], "placement": r["placement"],
               "no_dp": (_pm({"accuracy": doc["non_private"], "accuracy_std": doc.get("non_private_std")})
                         if with_std and doc.get("non_private") is not None else doc.get("non_private"))}
        for p in r["points"]:
            row[f"eps_{p['target_epsilon']:g}"] = _pm(p) if with_std else p["accuracy"]
        out.append(row)
    if with_std and doc.get("centralized"):
        c = doc["centralized"]
        out.append({"unit": "-", "technique": "scikit-learn LogisticRegression, no DP",
                    "placement": "none (pooled rows)", "no_dp": _pm(c),
                    **{f"eps_{e:g}": "-" for e in doc["epsilons"]}})
    return out


def headline_columns(doc: dict) -> list[tuple[str, str]]:
    """``(key, header)`` columns of :func:`headline_rows` (headers state epsilon and delta)."""
    return ([("unit", "privacy unit"), ("technique", "technique"), ("placement", "noise added")]
            + [(f"eps_{e:g}", f"eps <= {e:g}") for e in doc["epsilons"]] + [("no_dp", "no DP")])


def headline_markdown(doc: dict, *, with_std: bool | None = None) -> str:
    """The headline as a markdown section (table plus sentences on units, delta and seeds).

    ``with_std`` (default: with more than one seed) writes ``mean ± std`` cells.
    """
    seeds = doc["seeds"]
    with_std = len(seeds) > 1 if with_std is None else with_std
    note = (f"Test accuracy ({'mean ± sample std over' if with_std else 'mean over'} {len(seeds)} "
            f"seed{'s' if len(seeds) > 1 else ''}, each with its own train/test split) with the noise calibrated "
            f"for each epsilon at delta = {doc['delta']:g}; {doc['dataset']}, {doc['clients']} clients. "
            "Privacy unit *example*: add/remove one training row; *client*: add/remove one client (all of its "
            "rows). No DP column: plain FedAvg with the client-level settings (clipping included, no noise).")
    if not doc["baseline"].get("available"):
        note += f" diffprivlib baseline: {doc['baseline'].get('reason', 'not requested')}."
    else:
        note += (" diffprivlib: pure epsilon-DP (delta 0) objective perturbation on the pooled rows, best of its "
                 "hyper-parameter grid per epsilon (chosen on the test set, which favours the baseline).")
    parts = ["## Accuracy at a given privacy budget", "", note, "",
             markdown_table(headline_rows(doc, with_std=with_std), headline_columns(doc)), ""]
    if doc.get("targets"):
        parts += [targets_markdown(doc), ""]
    return "\n".join(parts)


def targets_markdown(doc: dict) -> str:
    """The targets of :func:`check_targets` as a markdown table (target, measured, met?)."""
    rows = [dict(t, met="n/a" if t["met"] is None else t["met"]) for t in doc.get("targets", [])]
    return markdown_table(rows, [("target", "target"), ("measured", "measured (mean ± std over seeds)"),
                                 ("met", "met?")])


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
