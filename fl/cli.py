"""``secagg`` subcommands of the federated layer: ``demo`` (default), ``demo fl``, ``compare``, ``fedavg``.

Discovered by :mod:`secagg.cli`, which imports this module and calls
``register(commands, demos)``; ``secagg demo`` without a sub-demo calls
:func:`run_default_demo`. Errors from the library (``SecAggError``) are printed by the
dispatcher as one line, before any training when the configuration is impossible.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

from secagg.errors import ConfigurationError
from secagg.masking.rounds import ROUNDS

from .data import DATASETS, PARTITIONS

__all__ = ["register", "run_compare_command", "run_default_demo", "run_fedavg_command"]


def register(commands, demos) -> None:
    """Add ``compare`` and ``fedavg`` to ``commands`` and ``fl`` to ``demos``."""
    d = demos.add_parser("fl", help="federated demo: FedAvg with plain, secure, Paillier and DP aggregation",
                         description="Train with every technique, print a table, write plots and JSON.")
    d.add_argument("--out", default="results", help="results folder (default: results)")
    d.add_argument("--dataset", default="breast_cancer", choices=DATASETS)
    d.add_argument("--clients", type=int, default=10)
    d.add_argument("--rounds", type=int, default=20)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--key-bits", type=int, default=2048, help="Paillier key size (default 2048)")
    d.add_argument("--epsilon-seeds", type=int, default=1, help="seeds per epsilon in the headline (default 1)")
    _noise_flag(d)
    d.add_argument("--no-progress", action="store_true")
    d.set_defaults(func=run_default_demo)

    c = commands.add_parser(
        "compare", help="federated vs distributed learning, measured (markdown + JSON)",
        description="Run centralized, distributed data-parallel, FedAvg plain, +SecAgg, +SecAgg+, +Paillier and "
                    "+distributed DP on the same data, devices and seed; write DIR/compare.json and DIR/compare.md.")
    c.add_argument("--dataset", default="breast_cancer", choices=DATASETS)
    c.add_argument("--clients", type=int, default=10)
    c.add_argument("--rounds", type=int, default=20)
    c.add_argument("--partition", default="iid", choices=PARTITIONS)
    c.add_argument("--alpha", type=float, default=0.5, help="Dirichlet alpha for skewed partitions")
    c.add_argument("--dropout", type=float, default=0.3, help="fraction of clients dropping each round (federated)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--epsilon", type=float, default=8.0, help="distributed DP budget of the settings table (delta 1e-5)")
    c.add_argument("--dp-unit", choices=("example", "client"), default="example",
                   help="privacy unit of the distributed-dp setting (default example); the headline shows both")
    c.add_argument("--epsilons", type=_epsilons, default=(1.0, 2.0, 4.0, 8.0),
                   help="comma-separated budgets of the accuracy-at-epsilon headline (default 1,2,4,8)")
    c.add_argument("--no-headline", action="store_true", help="skip the accuracy-at-epsilon headline")
    _noise_flag(c)
    c.add_argument("--repeats", type=int, default=3, help="seeds per setting; accuracy is their mean (default 3)")
    c.add_argument("--key-bits", type=int, default=2048, help="Paillier key size (default 2048)")
    c.add_argument("--out", default="results/compare", help="output folder (default: results/compare)")
    c.add_argument("--no-progress", action="store_true")
    c.set_defaults(func=run_compare_command)

    f = commands.add_parser("fedavg", help="train one FedAvg run with a chosen aggregator",
                            description="One FedAvg run; prints per-round accuracy, bytes, epsilon.")
    f.add_argument("--dataset", default="breast_cancer", choices=DATASETS)
    f.add_argument("--aggregator", default="plain", help="name for secagg.make_aggregator (default plain)")
    f.add_argument("--clients", type=int, default=10)
    f.add_argument("--rounds", type=int, default=20)
    f.add_argument("--fraction", type=float, default=1.0)
    f.add_argument("--sampling", default="fixed", choices=("fixed", "poisson"))
    f.add_argument("--partition", default="iid", choices=PARTITIONS)
    f.add_argument("--alpha", type=float, default=0.5)
    f.add_argument("--dropout", type=float, default=0.0)
    f.add_argument("--dropout-round", default="masked_input", choices=ROUNDS,
                   help="protocol round at which dropped clients vanish (default masked_input)")
    f.add_argument("--deadline", type=float, default=None, help="simulated seconds per round (drop stragglers)")
    f.add_argument("--clip", type=float, default=1.0)
    f.add_argument("--lr", type=float, default=0.1)
    f.add_argument("--noise-multiplier", type=float, default=None)
    f.add_argument("--epsilon", type=float, default=None, help="privacy budget (DP aggregators)")
    f.add_argument("--dp-unit", choices=("client", "example"), default=None,
                   help="privacy unit of a DP aggregator: client (default) or example (DP-SGD clients)")
    f.add_argument("--example-rate", type=float, default=None,
                   help="with --dp-unit example: Poisson rate of each client's example sample (default 1)")
    f.add_argument("--weight-cap", type=float, default=None,
                   help="public W of the client weights min(n_i / W, 1) (needed for example weighting under DP)")
    f.add_argument("--weighting", choices=("examples", "uniform"), default=None,
                   help="client weights (default: examples without DP, uniform with DP)")
    _noise_flag(f)
    f.add_argument("--threshold", type=int, default=None, help="secure-aggregation threshold")
    f.add_argument("--backend", choices=("inprocess", "ray"), default="inprocess",
                   help="where the masking protocol's clients run (secagg, secagg+): this process or Ray actors")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--json", help="write the run's JSON here")
    f.set_defaults(func=run_fedavg_command)


def _epsilons(text: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not vals or any(not v > 0 for v in vals):
        raise argparse.ArgumentTypeError(f"epsilons must be positive, got {text!r}")
    return vals


def _noise_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reproducible-noise", action="store_true",
                        help="research only: DP noise and rounding follow --seed (default: a CSPRNG; --seed fixes "
                             "the data split, initialization and client sampling only)")


def _warn_reproducible(args: argparse.Namespace) -> None:
    if getattr(args, "reproducible_noise", False):
        print("secagg: warning: --reproducible-noise: DP noise, stochastic rounding and privacy-relevant sampling "
              "follow --seed; anyone who knows the seed can remove the noise (research only; recorded in the JSON)",
              file=sys.stderr)


#: fedavg flags that apply only to DP aggregators (flag -> attribute)
_DP_ONLY_FLAGS = {"--noise-multiplier": "noise_multiplier", "--epsilon": "epsilon", "--dp-unit": "dp_unit",
                  "--example-rate": "example_rate"}


def run_default_demo(args: argparse.Namespace) -> int:
    """``secagg demo``: the full federated demo into ``args.out`` (< 3 minutes on 2 cores)."""
    from .compare import DemoOptions, run_demo

    _warn_reproducible(args)
    opt = DemoOptions(
        dataset=getattr(args, "dataset", "breast_cancer"), clients=getattr(args, "clients", 10),
        rounds=getattr(args, "rounds", 20), seed=getattr(args, "seed", 0), key_bits=getattr(args, "key_bits", 2048),
        epsilon_seeds=getattr(args, "epsilon_seeds", 1), reproducible_noise=getattr(args, "reproducible_noise", False))
    run_demo(args.out, opt, progress=not getattr(args, "no_progress", False))
    return 0


def run_compare_command(args: argparse.Namespace) -> int:
    """``secagg compare``: write ``compare.json`` and ``compare.md`` into ``args.out``; print the tables."""
    from .compare import CompareOptions, compare_markdown, evaluate_claims, run_compare
    from .report import write_json

    _warn_reproducible(args)
    opt = CompareOptions(dataset=args.dataset, clients=args.clients, rounds=args.rounds, partition=args.partition,
                         alpha=args.alpha, dropout=args.dropout, seed=args.seed, dp_epsilon=args.epsilon,
                         key_bits=args.key_bits, repeats=args.repeats, dp_unit=args.dp_unit,
                         epsilons=tuple(args.epsilons), headline=not args.no_headline,
                         reproducible_noise=args.reproducible_noise)
    t0 = time.perf_counter()
    rows, context = run_compare(opt, progress=not args.no_progress,
                                log=(lambda s: None) if args.no_progress else (lambda s: print(s, file=sys.stderr)))
    claims = evaluate_claims(rows)
    context["wall_seconds"] = time.perf_counter() - t0
    os.makedirs(args.out, exist_ok=True)
    write_json(rows, os.path.join(args.out, "compare.json"))
    write_json({"context": context, "claims": claims}, os.path.join(args.out, "compare_context.json"))
    md = compare_markdown(rows, claims, context)
    with open(os.path.join(args.out, "compare.md"), "w", encoding="utf-8") as fh:
        fh.write(md)
    print(md)
    print(f"wrote {os.path.join(args.out, 'compare.json')} and compare.md in {context['wall_seconds']:.1f} s")
    return 0


def run_fedavg_command(args: argparse.Namespace) -> int:
    """``secagg fedavg``: one run, a per-round table."""
    from .data import load_dataset
    from .report import fixed_table, write_json
    from .server import FedAvgConfig, run_fedavg

    from .server import DP_AGGREGATORS, NOISY_AGGREGATORS

    if args.aggregator not in DP_AGGREGATORS:
        for flag, attr in _DP_ONLY_FLAGS.items():
            if getattr(args, attr) is not None:
                raise ConfigurationError(f"{flag} applies only to DP aggregators "
                                         f"({', '.join(sorted(DP_AGGREGATORS))}), not {args.aggregator}")
    if args.reproducible_noise and args.aggregator not in NOISY_AGGREGATORS:
        raise ConfigurationError(f"--reproducible-noise applies only to aggregators with noise or random rounding, "
                                 f"not {args.aggregator}")
    if args.example_rate is not None and args.dp_unit != "example":
        raise ConfigurationError("--example-rate applies only with --dp-unit example")
    _warn_reproducible(args)
    options = {} if args.threshold is None else {"threshold": args.threshold}
    if args.backend != "inprocess":
        if args.aggregator not in ("secagg", "secagg+"):
            raise ConfigurationError(f"--backend {args.backend} applies to secagg and secagg+, not {args.aggregator}")
        options["backend"] = args.backend
    cfg = FedAvgConfig(rounds=args.rounds, fraction=args.fraction, sampling=args.sampling, clip=args.clip, lr=args.lr,
                       aggregator=args.aggregator, aggregator_options=options, dropout=args.dropout,
                       dropout_round=args.dropout_round, deadline=args.deadline,
                       noise_multiplier=args.noise_multiplier, target_epsilon=args.epsilon, dp_unit=args.dp_unit,
                       example_sampling_rate=args.example_rate, weight_cap=args.weight_cap,
                       weighting=args.weighting, reproducible_noise=args.reproducible_noise)
    ds = load_dataset(args.dataset, seed=args.seed)
    res = run_fedavg(ds, cfg, num_clients=args.clients, partition_scheme=args.partition, alpha=args.alpha,
                     seed=args.seed, progress=True)
    rows = [dataclasses.asdict(r) for r in res.history]
    print(fixed_table(rows, [("round", "round"), ("survivors", "survivors"), ("test_accuracy", "accuracy"),
                             ("bytes_up_per_client", "B up/client"), ("bytes_down_per_client", "B down/client"),
                             ("crypto_client_seconds", "crypto s"), ("train_seconds", "train s"),
                             ("simulated_seconds", "simulated s"), ("epsilon", "epsilon")]))
    if res.stop_reason:
        print(f"stopped early: {res.stop_reason}")
    print(f"{ds.describe()}; aggregator {args.aggregator}: final accuracy {res.accuracy:.4f}, "
          f"{res.bytes_total:,} bytes, {res.wall_seconds:.1f} s")
    if cfg.is_dp:
        print(f"epsilon {res.epsilon:.4g} at delta {cfg.delta:g}, privacy unit: {cfg.unit} "
              f"({res.privacy['neighbouring'].split(':')[0]})")
    if args.json:
        write_json(res.to_dict(), args.json)
    return 0
