"""Measured experiments: the federated-vs-distributed comparison and the full demo.

:func:`run_compare` turns the comparison table of the article "Federated Learning vs
Distributed Learning" (:data:`ARTICLE`; where data lives, what the server sees,
communication, heterogeneous devices, dropouts, secure aggregation by SMPC or
homomorphic encryption) into measurements on one dataset, one partition, one device
fleet and one seed:

==================  ===========================================================
setting             what runs
==================  ===========================================================
``centralized``     all raw training rows uploaded to a server, one model trained there
``distributed``     rows pooled and split evenly over workers, gradient averaging every step
``fedavg``          FedAvg, plain aggregation (server sees every update)
``secagg``          FedAvg + pairwise-mask secure sum, complete graph
``secagg+``         FedAvg + pairwise-mask secure sum, sparse graph
``paillier``        FedAvg + packed Paillier summation
``distributed-dp``  FedAvg + distributed discrete Gaussian noise under secure aggregation
==================  ===========================================================

Every setting does the same amount of training work (epochs = rounds x local epochs)
and is judged on the same held-out test split. :func:`evaluate_claims` checks each claim
of that article against the numbers. :func:`run_demo` is what ``secagg demo`` runs.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from secagg import make_aggregator
from secagg.errors import ConfigurationError

from .client import FLOPS_PER_EXAMPLE_PARAM
from .data import load_dataset, partition
from .devices import DeviceFleet, device_times
from .distributed import DistributedConfig, run_distributed
from .model import LogisticRegression, n_params
from .headline import (HEADLINE_EPSILONS, HeadlineOptions, headline_columns, headline_markdown, headline_rows,
                       plot_headline, run_headline)
from .privacy import NEIGHBOURING
from .report import fixed_table, markdown_table, plot_accuracy_vs_round, plot_bytes_per_round, write_json
from .server import FedAvgConfig, FedAvgResult, clip_options, run_fedavg

__all__ = ["CompareOptions", "run_compare", "run_demo"]

#: the article whose claims :func:`evaluate_claims` tests, cited by its title
ARTICLE = '"Federated Learning vs Distributed Learning"'

COMPARE_SETTINGS = ("centralized", "distributed", "fedavg", "secagg", "secagg+", "paillier", "distributed-dp")

#: what the server can see, per setting
SERVER_SEES = {
    "centralized": "every raw training row",
    "distributed": "every raw row (pooled) and every worker's gradient",
    "fedavg": "each client's model update",
    "secagg": "only the sum of surviving updates",
    "secagg+": "only the sum of surviving updates",
    "paillier": "only the sum (decrypted by the key holder)",
    "distributed-dp": "only the noisy sum of surviving updates",
    "central-dp": "each update; releases a noisy sum",
    "local-dp": "each client's noisy update",
}

#: the server (trusted party) that trains the centralized model: a 100 GFLOP/s machine
SERVER_FLOPS = 1.0e11


@dataclass(frozen=True)
class CompareOptions:
    """Inputs of :func:`run_compare` (the ``secagg compare`` flags)."""

    dataset: str = "breast_cancer"
    clients: int = 10
    rounds: int = 20
    partition: str = "iid"
    alpha: float = 0.5
    dropout: float = 0.3
    seed: int = 0
    local_epochs: int = 1
    lr: float = 0.1
    clip_norm: float = FedAvgConfig().clip_norm
    dp_epsilon: float = 8.0
    delta: float = 1e-5
    key_bits: int = 2048
    allow_insecure_keys: bool = False
    settings: tuple[str, ...] = COMPARE_SETTINGS
    repeats: int = 3
    dp_unit: str = "example"
    epsilons: tuple[float, ...] = HEADLINE_EPSILONS
    headline: bool = True
    reproducible_noise: bool = False

    def validate(self) -> None:
        """Raise ConfigurationError for impossible options (before anything runs)."""
        if self.dp_unit not in ("client", "example"):
            raise ConfigurationError(f"dp_unit must be 'client' or 'example', got {self.dp_unit!r}")
        if not self.epsilons or any(not e > 0 for e in self.epsilons):
            raise ConfigurationError(f"epsilons must be positive numbers, got {self.epsilons!r}")
        unknown = [s for s in self.settings if s not in COMPARE_SETTINGS]
        if unknown:
            raise ConfigurationError(f"unknown settings {unknown}; choose from {', '.join(COMPARE_SETTINGS)}")
        if self.clients < 2:
            raise ConfigurationError(f"compare needs at least 2 clients, got {self.clients}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigurationError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.rounds < 1:
            raise ConfigurationError(f"rounds must be >= 1, got {self.rounds}")
        if self.repeats < 1:
            raise ConfigurationError(f"repeats must be >= 1, got {self.repeats}")


def _fedavg_config(opt: CompareOptions, aggregator: str, **extra: Any) -> FedAvgConfig:
    base: dict[str, Any] = dict(rounds=opt.rounds, local_epochs=opt.local_epochs, lr=opt.lr, clip_norm=opt.clip_norm,
                aggregator=aggregator, dropout=opt.dropout, delta=opt.delta)
    if aggregator != "plain":
        base["reproducible_noise"] = opt.reproducible_noise
    base.update(extra)
    return FedAvgConfig(**base)


def _data_bytes(n_rows: np.ndarray | int, d: int) -> np.ndarray:
    """Raw bytes of rows: float32 features plus an int64 label each."""
    return np.asarray(n_rows) * (4 * d + 8)


def _fed_row(setting: str, res: FedAvgResult, wall: float, opt: CompareOptions) -> dict:
    completed = sum(1 for r in res.history if not r.aborted)
    up = float(np.mean([r.bytes_up_per_client for r in res.history]))
    down = float(np.mean([r.bytes_down_per_client for r in res.history]))
    return {
        "setting": setting, "accuracy": res.accuracy, "bytes_total": res.bytes_total, "epsilon": res.epsilon,
        "dropout": opt.dropout, "wall_seconds": wall, "simulated_seconds": res.simulated_seconds,
        "raw_data_leaves_clients": False, "server_sees": SERVER_SEES.get(setting, ""),
        "dropout_survived": opt.dropout if completed == opt.rounds else None,
        "rounds_completed": completed, "bytes_up_per_client_round": up, "bytes_down_per_client_round": down,
        "crypto_seconds": float(sum(r.crypto_client_seconds + r.crypto_server_seconds for r in res.history)),
        "train_seconds": float(sum(r.train_seconds for r in res.history)),
        "noise_multiplier": res.noise_multiplier, "accuracy_per_round": [r.test_accuracy for r in res.history],
    }


def run_compare(opt: CompareOptions = CompareOptions(), *, progress: bool = True,
                log: Callable[[str], None] | None = None) -> tuple[list[dict], dict]:
    """Run every setting of ``opt.settings`` ``opt.repeats`` times; returns ``(rows, context)``.

    ``rows``: one dict per setting with at least ``setting``, ``accuracy`` (mean test
    accuracy over the repeats, in [0, 1]), ``bytes_total``, ``epsilon`` (None without
    DP), ``dropout``, ``wall_seconds``, plus ``accuracy_std``, ``accuracy_runs``,
    ``simulated_seconds``, ``raw_data_leaves_clients``, ``server_sees``,
    ``dropout_survived``. Repeat ``i`` uses seed ``opt.seed + i`` for the split, the
    partition, the devices and every statistical choice; numbers are means over repeats.
    ``context``: dataset, partition and device facts. Configuration errors are raised
    before anything trains.
    """
    opt.validate()
    log = log or (lambda s: None)
    # build every aggregator first: an unavailable or misconfigured one fails before training
    aggs: dict[str, Any] = {}
    for s in opt.settings:
        if s in ("fedavg", "secagg", "secagg+"):
            name = "plain" if s == "fedavg" else s
            aggs[s] = make_aggregator(name, **clip_options(name, opt.clip_norm))
        elif s == "paillier":
            aggs[s] = make_aggregator("paillier", **clip_options("paillier", opt.clip_norm), key_bits=opt.key_bits,
                                      allow_insecure=opt.allow_insecure_keys)
        elif s == "distributed-dp":
            aggs[s] = None  # built by FedAvg once the noise multiplier is solved from the budget
            make_aggregator("distributed-dp", clip_norm=opt.clip_norm, noise_multiplier=1.0)
    runs = []
    for i in range(opt.repeats):
        if opt.repeats > 1:
            log(f"repeat {i + 1}/{opt.repeats}")
        runs.append(_run_once(dataclasses.replace(opt, seed=opt.seed + i), aggs, progress, log))
    rows = []
    for j, first in enumerate(runs[0][0]):
        group = [r[0][j] for r in runs]
        row = dict(first)
        for key, v in first.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and all(
                    isinstance(g.get(key), (int, float)) for g in group):
                vals = [float(g[key]) for g in group]
                row[key] = int(round(np.mean(vals))) if isinstance(v, int) else float(np.mean(vals))
        accs = [g["accuracy"] for g in group]
        row["accuracy_runs"] = accs
        # sample standard deviation over seeds; one seed has no spread to report (None, shown as n/a)
        row["accuracy_std"] = float(np.std(accs, ddof=1)) if len(accs) > 1 else None
        if first["setting"] not in ("centralized", "distributed"):
            row["dropout_survived"] = opt.dropout if all(g["dropout_survived"] is not None for g in group) else None
        rows.append(row)
    context = dict(runs[0][1], repeats=opt.repeats, seeds=[opt.seed + i for i in range(opt.repeats)],
                   dp_unit=opt.dp_unit, privacy_units=NEIGHBOURING, reproducible_noise=opt.reproducible_noise)
    if opt.headline:
        log("accuracy at epsilon " + ", ".join(f"{e:g}" for e in opt.epsilons) + " for both privacy units ...")
        context["accuracy_at_epsilon"] = run_headline(
            HeadlineOptions(dataset=opt.dataset, clients=opt.clients, epsilons=tuple(opt.epsilons),
                            seeds=tuple(opt.seed + i for i in range(opt.repeats)), delta=opt.delta,
                            client_rounds=opt.rounds, client_clip_norm=opt.clip_norm, client_lr=opt.lr,
                            dropout=opt.dropout, reproducible_noise=opt.reproducible_noise), progress=progress, log=log)
    return rows, context


def _run_once(opt: CompareOptions, aggs: dict, progress: bool, log: Callable[[str], None]) -> tuple[list[dict], dict]:
    ds = load_dataset(opt.dataset, seed=opt.seed)
    fleet = DeviceFleet.sample(opt.clients, opt.seed)
    d, P = ds.n_features, n_params(ds.n_features, ds.n_classes)
    epochs = opt.rounds * opt.local_epochs
    # the same partition run_fedavg draws from this seed (validates the partition options, too)
    parts = partition(ds.y_train, opt.clients, opt.partition, alpha=opt.alpha,
                      rng=np.random.default_rng(np.random.SeedSequence(opt.seed).spawn(2)[0]))
    sizes = np.array([len(p) for p in parts])
    rows: list[dict] = []
    upload_time = float(np.max(device_times(fleet, bytes_up=_data_bytes(sizes, d))))
    for s in opt.settings:
        t0 = time.perf_counter()
        log(f"running {s} ...")
        if s == "centralized":
            model = LogisticRegression(l2=1e-3, lr=opt.lr, epochs=epochs, batch_size=16, random_state=opt.seed)
            model.fit(ds.X_train, ds.y_train)
            flops = FLOPS_PER_EXAMPLE_PARAM * epochs * len(ds.y_train) * P
            rows.append({
                "setting": s, "accuracy": model.score(ds.X_test, ds.y_test),
                "bytes_total": int(_data_bytes(len(ds.y_train), d)), "epsilon": None, "dropout": 0.0,
                "wall_seconds": time.perf_counter() - t0, "simulated_seconds": upload_time + flops / SERVER_FLOPS,
                "raw_data_leaves_clients": True, "server_sees": SERVER_SEES[s], "dropout_survived": None,
                "rounds_completed": None, "bytes_up_per_client_round": None, "bytes_down_per_client_round": None,
            })
        elif s == "distributed":
            cfg = DistributedConfig(num_workers=opt.clients, epochs=epochs, batch_size=max(64, opt.clients),
                                    lr=opt.lr)
            res = run_distributed(ds, cfg, devices=fleet, seed=opt.seed, progress=progress)
            homog = DeviceFleet.uniform(opt.clients, flops=float(np.median(fleet.flops)),
                                        uplink=float(np.median(fleet.uplink)),
                                        downlink=float(np.median(fleet.downlink)),
                                        latency=float(np.median(fleet.latency)))
            res_h = run_distributed(ds, cfg, devices=homog, seed=opt.seed)
            steps = sum(r.steps for r in res.history)
            rows.append({
                "setting": s, "accuracy": res.accuracy, "bytes_total": res.bytes_total, "epsilon": None,
                "dropout": 0.0, "wall_seconds": time.perf_counter() - t0,
                "simulated_seconds": upload_time + res.simulated_seconds,
                "simulated_seconds_homogeneous": upload_time + res_h.simulated_seconds,
                "raw_data_leaves_clients": True, "server_sees": SERVER_SEES[s], "dropout_survived": 0.0,
                "rounds_completed": steps, "bytes_up_per_client_round": res.history[0].bytes_up / max(
                    1, res.history[0].steps * opt.clients),
                "bytes_down_per_client_round": res.history[0].bytes_down / max(1, res.history[0].steps * opt.clients),
                "bytes_data_moved": res.bytes_data_moved, "steps": steps,
            })
        else:
            extra: dict[str, Any] = {}
            if s == "distributed-dp":
                extra = {"target_epsilon": opt.dp_epsilon, "dp_unit": opt.dp_unit}
                if opt.dp_unit == "example":
                    h = HeadlineOptions()
                    extra.update(rounds=h.example_rounds, lr=h.example_lr, clip_norm=h.example_clip_norm,
                                 local_epochs=1)
            name = "plain" if s == "fedavg" else s
            fed = run_fedavg(ds, _fedavg_config(opt, name, **extra), num_clients=opt.clients,
                             partition_scheme=opt.partition, alpha=opt.alpha, seed=opt.seed, devices=fleet,
                             aggregator=aggs.get(s), progress=progress, desc=s)
            rows.append(_fed_row(s, fed, time.perf_counter() - t0, opt))
            rows[-1]["privacy_unit"] = fed.privacy.get("unit") or "-"
    context = {"dataset": ds.describe(), "dataset_name": ds.name, "clients": opt.clients, "rounds": opt.rounds,
               "local_epochs": opt.local_epochs, "partition": opt.partition, "alpha": opt.alpha,
               "dropout": opt.dropout, "seed": opt.seed, "dp_epsilon": opt.dp_epsilon, "delta": opt.delta,
               "clip_norm": opt.clip_norm, "paillier_key_bits": opt.key_bits, "devices": fleet.to_dict(), "params": P}
    return rows, context


def evaluate_claims(rows: list[dict]) -> list[dict]:
    """Check the claims of the article :data:`ARTICLE` against the measured rows.

    Returns one dict per claim: ``claim``, ``measurement`` (a sentence with the numbers),
    ``supported`` (True / False / None when the needed settings were not run).
    """
    by = {r["setting"]: r for r in rows}
    out: list[dict] = []

    def add(claim: str, needs: tuple[str, ...], judge: Callable[[], tuple[bool, str]]) -> None:
        if all(k in by for k in needs):
            ok, text = judge()
            out.append({"claim": claim, "measurement": text, "supported": bool(ok)})
        else:
            out.append({"claim": claim, "measurement": f"not measured (needs {', '.join(needs)})", "supported": None})

    def data_stays():
        fed = [k for k in ("fedavg", "secagg", "secagg+", "paillier", "distributed-dp") if k in by]
        ok = all(not by[k]["raw_data_leaves_clients"] for k in fed) and by["distributed"]["raw_data_leaves_clients"]
        return ok, (f"distributed ships {by['distributed']['bytes_data_moved']:,} B of raw rows; "
                    f"federated settings ship 0 B of raw rows")

    def less_comm():
        f, dd = by["fedavg"]["bytes_total"], by["distributed"]["bytes_total"]
        return f < dd, f"fedavg moved {f:,} B in total vs distributed {dd:,} B ({dd / f:.1f}x)"

    def secure_bigger():
        base = by["fedavg"]["bytes_up_per_client_round"]
        parts = [(k, by[k]["bytes_up_per_client_round"] / base) for k in ("secagg", "secagg+", "paillier") if k in by]
        return all(r > 1 for _, r in parts), "upload per client per round vs plain: " + ", ".join(
            f"{k} {r:.1f}x" for k, r in parts)

    def hetero():
        f, dd = by["fedavg"]["simulated_seconds"], by["distributed"]["simulated_seconds"]
        return f < dd, (f"simulated time on the same heterogeneous devices: fedavg {f:.1f} s vs "
                        f"synchronous data-parallel {dd:.1f} s (homogeneous cluster: "
                        f"{by['distributed'].get('simulated_seconds_homogeneous', float('nan')):.1f} s)")

    def dropouts():
        s = by["secagg"]
        p = by["fedavg"]["dropout"]
        ok = s["dropout_survived"] is not None and p > 0
        return ok, (f"with {p:.0%} of clients dropping each round secagg completed {s['rounds_completed']} rounds "
                    f"(accuracy {s['accuracy']:.3f}); synchronous data-parallel has no dropout path"
                    + ("" if p > 0 else " (run with --dropout > 0 to test)"))

    def same_accuracy():
        f, c = by["fedavg"]["accuracy"], by["centralized"]["accuracy"]
        return abs(f - c) <= 0.02, f"fedavg {f:.3f} vs centralized {c:.3f} (IID within 2 points?)"

    def secure_lossless():
        f = by["fedavg"]["accuracy"]
        parts = [(k, by[k]["accuracy"]) for k in ("secagg", "secagg+", "paillier") if k in by]
        return all(abs(a - f) <= 0.005 for _, a in parts), "accuracy: " + ", ".join(
            f"{k} {a:.3f}" for k, a in parts) + f" vs plain {f:.3f}"

    def dp_cost():
        f, p = by["fedavg"]["accuracy"], by["distributed-dp"]
        # equal accuracy is no cost: judged "no" (at this budget DP cost nothing measurable), not "yes"
        return p["accuracy"] < f, (f"distributed-dp at epsilon {p['epsilon']:.2f}: accuracy {p['accuracy']:.3f} "
                                   f"vs {f:.3f} without DP")

    add("Data stays on the clients in FL; distributed learning moves it to the cluster",
        ("distributed", "fedavg"), data_stays)
    add("FL needs less communication than distributed training", ("distributed", "fedavg"), less_comm)
    add("Secure aggregation (SMPC / HE) makes federated updates larger, not smaller",
        ("fedavg", "secagg"), secure_bigger)
    add("FL is scalable over heterogeneous devices", ("distributed", "fedavg"), hetero)
    add("FL handles node dropouts gracefully", ("fedavg", "secagg"), dropouts)
    add("FL on IID data reaches the accuracy of centralized training", ("fedavg", "centralized"), same_accuracy)
    add("Secure aggregation costs no accuracy (only quantization)", ("fedavg", "secagg"), secure_lossless)
    add("Differential privacy costs accuracy", ("fedavg", "distributed-dp"), dp_cost)
    return out


COMPARE_COLUMNS = [
    ("setting", "setting"), ("accuracy", "accuracy"), ("accuracy_std", "sd over seeds"), ("bytes_total", "bytes moved"),
    ("raw_data_leaves_clients", "raw data leaves clients"), ("server_sees", "server sees"),
    ("dropout_survived", "dropout survived"), ("simulated_seconds", "simulated s (hetero devices)"),
    ("epsilon", "epsilon"), ("privacy_unit", "privacy unit"), ("wall_seconds", "wall s"),
]
CLAIM_COLUMNS = [("claim", "claim"), ("measurement", "measurement"), ("supported", "supported?")]


def _survived_text(row: dict) -> str:
    v = row.get("dropout_survived")
    if row["setting"] == "centralized":
        return "n/a (one server)"
    if row["setting"] == "distributed":
        return "0% (a lost worker stalls every step)"
    if v is None:
        return f"no ({row.get('rounds_completed')} rounds completed)"
    return f"{v:.0%} per round"


def _seeds_text(context: dict) -> str:
    seeds = context.get("seeds", [context["seed"]])
    return f"one seed ({seeds[0]})" if len(seeds) == 1 else f"means over {len(seeds)} seeds {seeds}"


def compare_markdown(rows: list[dict], claims: list[dict], context: dict) -> str:
    """The comparison as a markdown document: settings table and the table of the article's claims.

    A spread over one seed is shown as ``n/a`` (there is none to measure).
    """
    rows = [dict(r, dropout_survived=_survived_text(r),
                 accuracy_std="n/a" if r.get("accuracy_std") is None else r["accuracy_std"]) for r in rows]
    head = (f"# Federated vs distributed learning, measured\n\n{context['dataset']}; {context['clients']} clients, "
            f"{_seeds_text(context)}, "
            f"{context['rounds']} rounds x {context['local_epochs']} local epochs, partition {context['partition']}, "
            f"dropout {context['dropout']:.0%} per round in the federated settings, "
            f"Paillier key {context['paillier_key_bits']} bits, distributed DP budget epsilon "
            f"{context['dp_epsilon']} (delta {context['delta']:g}, privacy unit: {context.get('dp_unit', 'client')}; "
            "example = one training row, client = all of a client's rows).\n")
    parts = [head, markdown_table(rows, COMPARE_COLUMNS), "", f"## Claims of the article {ARTICLE}, measured", "",
             markdown_table(claims, CLAIM_COLUMNS), ""]
    if "accuracy_at_epsilon" in context:
        parts += [headline_markdown(context["accuracy_at_epsilon"])]
    return "\n".join(parts)


# ---------------------------------------------------------------------------- the demo
@dataclass(frozen=True)
class DemoOptions:
    """Inputs of :func:`run_demo` (kept small: the demo must finish well under a minute on 2 cores).

    DP rows run at ``epsilon`` (delta 1e-5) with the privacy unit stated; the headline
    runs every DP technique, for both units, at each of ``epsilons`` over
    ``epsilon_seeds`` seeds (:mod:`fl.headline`).
    """

    dataset: str = "breast_cancer"
    clients: int = 10
    rounds: int = 20
    seed: int = 0
    clip_norm: float = FedAvgConfig().clip_norm
    key_bits: int = 2048
    dropout: float = 0.3
    epsilon: float = 8.0
    epsilons: tuple[float, ...] = HEADLINE_EPSILONS
    epsilon_seeds: int = 1
    example_rounds: int = HeadlineOptions().example_rounds
    reproducible_noise: bool = False


def run_demo(out: str | None, opt: DemoOptions = DemoOptions(), *, progress: bool = True,
             print_fn: Callable[[str], None] = print) -> dict:
    """Train with every technique, print the results table, and write plots and JSON into ``out``.

    Files (only when ``out`` is a folder; ``None`` writes nothing): ``accuracy_vs_round.png``,
    ``accuracy_vs_epsilon.png``, ``bytes_per_round.png``, ``results.json``, ``results.md``.
    Returns the JSON document (with ``files``: what was written). Every DP row and the
    headline state their privacy unit.
    """
    t_start = time.perf_counter()
    ds = load_dataset(opt.dataset, seed=opt.seed)
    fleet = DeviceFleet.sample(opt.clients, opt.seed)
    head = HeadlineOptions(dataset=opt.dataset, clients=opt.clients, epsilons=tuple(opt.epsilons),
                           seeds=tuple(opt.seed + i for i in range(opt.epsilon_seeds)), client_rounds=opt.rounds,
                           client_clip_norm=opt.clip_norm, example_rounds=opt.example_rounds,
                           reproducible_noise=opt.reproducible_noise)
    base: dict[str, Any] = dict(rounds=opt.rounds, clip_norm=opt.clip_norm)
    noisy: dict[str, Any] = {"reproducible_noise": opt.reproducible_noise}
    ex: dict[str, Any] = dict(dp_unit="example", target_epsilon=opt.epsilon, rounds=head.example_rounds, lr=head.example_lr,
              clip_norm=head.example_clip_norm, **noisy)
    runs: list[tuple[str, str, dict[str, Any]]] = [
        ("plain", "plain", {}),
        ("secagg", "secagg", noisy),
        ("secagg+", "secagg+", noisy),
        ("paillier", "paillier", {"aggregator_options": {"key_bits": opt.key_bits}, **noisy}),
        (f"secagg+ ({opt.dropout:.0%} dropout)", "secagg+", {"dropout": opt.dropout, **noisy}),
        ("central-dp (example)", "central-dp", ex),
        ("distributed-dp (example)", "distributed-dp", ex),
        ("local-dp (example)", "local-dp", ex),
        ("distributed-dp (client)", "distributed-dp", {"target_epsilon": opt.epsilon, "dp_unit": "client", **noisy}),
    ]
    print_fn(f"secagg demo: {ds.describe()}; {opt.clients} clients, {opt.rounds} FedAvg rounds, seed {opt.seed}")
    if opt.reproducible_noise:
        print_fn("warning: --reproducible-noise: DP noise and rounding follow the seed; anyone who knows it can "
                 "remove the noise (research only)")
    # build (and so validate) everything before training anything
    configs = [(label, FedAvgConfig(aggregator=name, **{**base, **extra})) for label, name, extra in runs]
    for _, cfg in configs:
        cfg.validate()
    results: dict[str, FedAvgResult] = {}
    rows: list[dict[str, Any]] = []
    for label, cfg in configs:
        t0 = time.perf_counter()
        res = run_fedavg(ds, cfg, num_clients=opt.clients, seed=opt.seed, devices=fleet, progress=progress,
                         desc=label)
        results[label] = res
        h = res.history
        rows.append({
            "technique": label, "accuracy": res.accuracy, "epsilon": res.epsilon,
            "privacy_unit": cfg.unit or "-",
            "up_per_client": float(np.mean([r.bytes_up_per_client for r in h])),
            "down_per_client": float(np.mean([r.bytes_down_per_client for r in h])),
            "bytes_total": res.bytes_total,
            "train_s": float(sum(r.train_seconds for r in h)),
            "crypto_s": float(sum(r.crypto_client_seconds + r.crypto_server_seconds for r in h)),
            "simulated_s": res.simulated_seconds, "wall_s": time.perf_counter() - t0,
            "hides_updates": res.hides_individual_updates,
        })
    headline = run_headline(head, progress=progress)
    columns = [("technique", "technique"), ("accuracy", "accuracy"), ("epsilon", "epsilon"),
               ("privacy_unit", "privacy unit"),
               ("up_per_client", "B up/client/round"), ("down_per_client", "B down/client/round"),
               ("train_s", "train s"), ("crypto_s", "crypto s"), ("simulated_s", "simulated s"),
               ("wall_s", "wall s"), ("hides_updates", "server sees only sum")]
    print_fn("")
    print_fn(fixed_table(rows, columns))
    print_fn("")
    print_fn("epsilon at delta 1e-5; privacy unit: example = one training row, client = all of a client's rows")
    print_fn("")
    print_fn(f"accuracy at a given epsilon (delta {headline['delta']:g}, mean over {len(headline['seeds'])} "
             f"seed(s)), both privacy units:")
    print_fn(fixed_table(headline_rows(headline), headline_columns(headline)))
    if not headline["baseline"].get("available"):
        print_fn(f"(diffprivlib baseline skipped: {headline['baseline'].get('reason')})")
    doc = {"dataset": ds.describe(), "options": dataclasses.asdict(opt), "table": rows,
           "privacy_units": NEIGHBOURING, "accuracy_at_epsilon": headline,
           "reproducible_noise": opt.reproducible_noise,
           "runs": {k: v.to_dict() for k, v in results.items()}}
    files: dict[str, str] = {}
    if out is not None:
        os.makedirs(out, exist_ok=True)
        files["accuracy_vs_round"] = plot_accuracy_vs_round(
            {k: [r.test_accuracy for r in v.history] for k, v in results.items()},
            os.path.join(out, "accuracy_vs_round.png"), title=f"FedAvg on {ds.name}: test accuracy per round")
        files["accuracy_vs_epsilon"] = plot_headline(headline, os.path.join(out, "accuracy_vs_epsilon.png"))
        files["bytes_per_round"] = plot_bytes_per_round(
            {r["technique"]: r["up_per_client"] for r in rows}, {r["technique"]: r["down_per_client"] for r in rows},
            os.path.join(out, "bytes_per_round.png"))
    doc["wall_seconds"] = time.perf_counter() - t_start
    if out is not None:
        files["results_json"] = write_json(doc, os.path.join(out, "results.json"))
        with open(os.path.join(out, "results.md"), "w", encoding="utf-8") as fh:
            fh.write(f"# secagg demo\n\n{ds.describe()}; epsilon at delta 1e-5, privacy unit per row (example: one "
                     f"training row; client: all of a client's rows)\n\n{markdown_table(rows, columns)}\n\n"
                     f"{headline_markdown(headline)}")
        files["results_md"] = os.path.join(out, "results.md")
    print_fn("")
    for k, v in files.items():
        print_fn(f"wrote {v}")
    if out is None:
        print_fn("(no files written: pass --out DIR for the plots, results.json and results.md)")
    print_fn(f"demo finished in {doc['wall_seconds']:.1f} s")
    doc["files"] = files
    return doc
