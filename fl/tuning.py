"""Hyper-parameters chosen without the data they are judged on: a grid on public synthetic proxies.

Picking a DP model's learning rate, clip norm or number of rounds by its test accuracy
on the private data, and per epsilon, reports an accuracy nobody could have had: the
choice is fitted to the test rows, and the choice itself depends on private data that
no epsilon accounts for (Papernot and Steinke, "Hyperparameter Tuning with Renyi
Differential Privacy", ICLR 2022). The presets of :mod:`fl.headline` take theirs from
here instead:

* the proxy is public: scikit-learn ``make_classification`` data generated locally
  (:func:`fl.data.load_dataset` ``"synthetic"``) with only the *shape* of the target
  task (rows, features, classes, clients), on seeds (100, 101, ...) that the evaluation
  never uses (it uses 0, 1, ...); no row of the evaluated data is read;
* one setting is chosen for *every* epsilon: the grid point with the best mean proxy
  test accuracy averaged over the headline's epsilons (ties: the first in grid order);
* the proxy runs use the exact arithmetic of the secure sum
  (:func:`fl.headline.exact_arithmetic_sum`) and seeded noise, so ``secagg headline
  PRESET --tune`` reproduces the choice exactly.

The chosen values are written into :data:`fl.headline.PRESETS` by hand (with the command
that reproduces them), so running the headline never re-tunes.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from secagg.errors import ConfigurationError

from .headline import PRESETS, run_headline
from .report import markdown_table

__all__ = ["ProxyTuning", "tune", "TUNINGS"]


@dataclass(frozen=True)
class ProxyTuning:
    """How one preset's hyper-parameters are chosen.

    ``grid``: :class:`fl.headline.HeadlineOptions` field -> values tried; ``proxy``: the
    fields that turn the preset into its public proxy (dataset and sizes);
    ``technique``: the ``(unit, aggregator)`` row the choice is made for; ``seeds``:
    proxy seeds (disjoint from the evaluation's).
    """

    grid: Mapping[str, tuple]
    technique: tuple[str, str]
    proxy: Mapping[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = tuple(range(100, 110))


#: preset name -> its tuning
TUNINGS: dict[str, ProxyTuning] = {
    # breast cancer's shape: 569 rows (426 train / 143 test), 30 features, 2 classes, 10 clients
    "breast-cancer": ProxyTuning(
        grid={"example_lr": (0.5, 1.0, 2.0, 4.0), "example_clip_norm": (0.5, 1.0, 2.0, 4.0),
              "example_rounds": (10, 20, 40)},
        technique=("example", "distributed-dp"),
        proxy={"dataset": "synthetic", "n_samples": 569, "n_features": 30}),
    # other draws of the same generator as the evaluation (seeds 100.. vs 0..9)
    "synthetic-1000": ProxyTuning(
        grid={"client_lr": (0.25, 0.5, 1.0), "client_clip_norm": (0.25, 0.5, 1.0), "client_rounds": (15, 30)},
        technique=("client", "distributed-dp"), seeds=tuple(range(100, 105))),
}


def tune(preset: str, *, seeds: tuple[int, ...] | None = None, progress: bool = False,
         log: Callable[[str], None] | None = None) -> dict:
    """Run ``preset``'s proxy grid; returns a JSON-ready dict.

    Keys: ``preset``, ``proxy`` (dataset description), ``seeds``, ``epsilons``,
    ``technique``, ``grid`` (one entry per grid point: ``params``, ``score`` = mean proxy
    accuracy over the epsilons, ``accuracy`` = per-epsilon means), ``best`` (the chosen
    ``params``).

    Raises
    ------
    ConfigurationError
        for a preset without a tuning.
    """
    if preset not in TUNINGS:
        raise ConfigurationError(f"no tuning for preset {preset!r}; choose one of {', '.join(TUNINGS)}")
    log = log or (lambda s: None)
    t = TUNINGS[preset]
    base = PRESETS[preset]
    seeds = tuple(t.seeds if seeds is None else seeds)
    keys = list(t.grid)
    points = [dict(zip(keys, values)) for values in itertools.product(*(t.grid[k] for k in keys))]
    it: Any = points
    if progress:
        from tqdm import tqdm
        it = tqdm(points, desc=f"tuning {preset} on its proxy", unit="setting", leave=False)
    grid = []
    proxy_name = ""
    for params in it:
        opt = dataclasses.replace(base, **dict(t.proxy), **params, seeds=seeds, techniques=(t.technique,),
                                  baseline=False, references=False, secure_sum="exact-arithmetic",
                                  reproducible_noise=True, targets=())
        doc = run_headline(opt)
        proxy_name = doc["dataset"]
        acc = {p["target_epsilon"]: p["accuracy"] for p in doc["rows"][0]["points"]}
        grid.append({"params": params, "score": float(np.mean(list(acc.values()))), "accuracy": acc})
        log(f"{params}: {grid[-1]['score']:.4f}")
    best = max(range(len(grid)), key=lambda i: (grid[i]["score"], -i))
    return {"preset": preset, "proxy": proxy_name, "seeds": list(seeds), "epsilons": list(base.epsilons),
            "technique": list(t.technique), "grid": grid, "best": grid[best]["params"]}


def tuning_markdown(doc: dict, top: int = 10) -> str:
    """The ``top`` grid points of :func:`tune` as a markdown table, best first."""
    ranked = sorted(doc["grid"], key=lambda g: -g["score"])[:top]
    eps = doc["epsilons"]
    rows = [dict(g["params"], score=g["score"], **{f"eps_{e:g}": g["accuracy"][e] for e in eps}) for g in ranked]
    cols = [(k, k) for k in doc["grid"][0]["params"]] + [(f"eps_{e:g}", f"eps {e:g}") for e in eps] + [
        ("score", "mean")]
    head = (f"Proxy tuning for {doc['preset']}: {doc['technique'][1]} ({doc['technique'][0]}-level) on "
            f"{doc['proxy']}, seeds {doc['seeds'][0]}..{doc['seeds'][-1]}; mean proxy test accuracy; chosen: "
            + ", ".join(f"{k} = {v:g}" for k, v in doc["best"].items()))
    return head + "\n\n" + markdown_table(rows, cols)
