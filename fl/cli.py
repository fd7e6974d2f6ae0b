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
    from secagg import available_aggregators
    from secagg.commands._args import (DELTA, POSITIVE_FLOAT, POSITIVE_INT, RATE, SEED, FRACTION, Renamed, int_in,
                                       out_dir, out_file)

    from .compare import ARTICLE
    from .server import FedAvgConfig

    defaults = FedAvgConfig()  # one default per setting, the same in the CLI and the API
    renamed_clip = "--clip-norm (the L2 norm each update is clipped to; --bound is a per-coordinate bound)"

    d = demos.add_parser("fl", help="federated demo: FedAvg with plain, secure, Paillier and DP aggregation",
                         description="Train with every technique and print a table; with --out DIR also write "
                                     "plots and JSON into DIR.")
    d.add_argument("--out", type=out_dir, default=argparse.SUPPRESS, metavar="DIR",
                   help="write plots, results.json and results.md into DIR (default: print only)")
    d.add_argument("--dataset", default="breast_cancer", choices=DATASETS, help="dataset")
    d.add_argument("--clients", type=int_in(2), default=10, help="number of clients")
    d.add_argument("--rounds", type=POSITIVE_INT, default=20, help="FedAvg rounds")
    d.add_argument("--seed", type=SEED, default=0, help="seed for data, partition, devices and noise")
    d.add_argument("--key-bits", type=int_in(2048, 16384), default=2048, help="Paillier key size in bits")
    d.add_argument("--no-progress", action="store_true", help="no progress bars")
    d.set_defaults(func=run_default_demo)

    c = commands.add_parser(
        "compare", help="federated vs distributed learning, measured (markdown + JSON)",
        description="Run centralized, distributed data-parallel, FedAvg plain, +SecAgg, +SecAgg+, +Paillier and "
                    "+distributed DP on the same data, devices and seed; print the tables, which test the claims "
                    f"of the article {ARTICLE}; with --out DIR also write DIR/compare.json and DIR/compare.md.")
    c.add_argument("--dataset", default="breast_cancer", choices=DATASETS, help="dataset")
    c.add_argument("--clients", type=int_in(2), default=10, help="number of clients (>= 2)")
    c.add_argument("--rounds", type=POSITIVE_INT, default=20, help="FedAvg rounds")
    c.add_argument("--partition", default="iid", choices=PARTITIONS, help="how rows are split over clients")
    c.add_argument("--alpha", type=POSITIVE_FLOAT, default=0.5, help="Dirichlet alpha for skewed partitions")
    c.add_argument("--dropout", type=RATE, default=0.3, help="fraction of clients dropping each round (federated)")
    c.add_argument("--seed", type=SEED, default=0, help="first seed; repeat i uses seed + i")
    c.add_argument("--epsilon", type=POSITIVE_FLOAT, default=8.0, help="distributed DP budget")
    c.add_argument("--delta", type=DELTA, default=defaults.delta, help="DP delta, in (0, 1)")
    c.add_argument("--clip-norm", type=POSITIVE_FLOAT, default=defaults.clip_norm,
                   help="L2 norm each client update is clipped to")
    c.add_argument("--clip", action=Renamed, new=renamed_clip)
    c.add_argument("--repeats", type=POSITIVE_INT, default=3, help="seeds per setting; accuracy is their mean")
    c.add_argument("--key-bits", type=int_in(2048, 16384), default=2048, help="Paillier key size in bits")
    c.add_argument("--out", type=out_dir, default=None, metavar="DIR",
                   help="write compare.json, compare_context.json and compare.md into DIR (default: print only)")
    c.add_argument("--no-progress", action="store_true", help="no progress bars or log lines")
    c.set_defaults(func=run_compare_command)

    f = commands.add_parser("fedavg", help="train one FedAvg run with a chosen aggregator",
                            description="One FedAvg run; prints per-round accuracy, bytes, epsilon.")
    f.add_argument("--dataset", default="breast_cancer", choices=DATASETS, help="dataset")
    f.add_argument("--aggregator", default=defaults.aggregator, choices=available_aggregators(),
                   help="aggregation technique")
    f.add_argument("--clients", type=POSITIVE_INT, default=10, help="number of clients")
    f.add_argument("--rounds", type=POSITIVE_INT, default=defaults.rounds, help="FedAvg rounds")
    f.add_argument("--fraction", type=FRACTION, default=defaults.fraction,
                   help="fraction of clients sampled per round, in (0, 1]")
    f.add_argument("--sampling", default=defaults.sampling, choices=("fixed", "poisson"),
                   help="fixed-size or Poisson client sampling")
    f.add_argument("--partition", default="iid", choices=PARTITIONS, help="how rows are split over clients")
    f.add_argument("--alpha", type=POSITIVE_FLOAT, default=0.5, help="Dirichlet alpha for skewed partitions")
    f.add_argument("--dropout", type=RATE, default=defaults.dropout,
                   help="fraction of sampled clients dropping each round, in [0, 1)")
    f.add_argument("--dropout-round", default=defaults.dropout_round, choices=ROUNDS,
                   help="protocol round at which dropped clients vanish")
    f.add_argument("--deadline", type=POSITIVE_FLOAT, default=None,
                   help="simulated seconds per round; later clients drop (default: wait for all)")
    f.add_argument("--clip-norm", type=POSITIVE_FLOAT, default=defaults.clip_norm,
                   help="L2 norm each client update is clipped to")
    f.add_argument("--clip", action=Renamed, new=renamed_clip)
    f.add_argument("--lr", type=POSITIVE_FLOAT, default=defaults.lr, help="local SGD learning rate")
    f.add_argument("--noise-multiplier", type=POSITIVE_FLOAT, default=None,
                   help="DP noise std / clip norm (DP aggregators; default: solved from --epsilon)")
    f.add_argument("--epsilon", type=POSITIVE_FLOAT, default=None,
                   help="privacy budget (DP aggregators only; default: no budget)")
    f.add_argument("--delta", type=DELTA, default=defaults.delta, help="DP delta, in (0, 1)")
    f.add_argument("--threshold", type=POSITIVE_INT, default=None,
                   help="secure-aggregation threshold (default: just above half the clients)")
    f.add_argument("--backend", choices=("inprocess", "ray"), default="inprocess",
                   help="where the masking protocol's clients run (secagg, secagg+): this process or Ray actors")
    f.add_argument("--seed", type=SEED, default=0, help="seed for data, partition, devices and noise")
    f.add_argument("--json", type=out_file, metavar="FILE", help="write the run's JSON to FILE (default: none)")
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    f.set_defaults(func=run_fedavg_command)


def run_default_demo(args: argparse.Namespace) -> int:
    """``secagg demo``: the full federated demo into ``args.out`` (< 3 minutes on 2 cores)."""
    from .compare import DemoOptions, run_demo

    opt = DemoOptions(
        dataset=getattr(args, "dataset", "breast_cancer"), clients=getattr(args, "clients", 10),
        rounds=getattr(args, "rounds", 20), seed=getattr(args, "seed", 0), key_bits=getattr(args, "key_bits", 2048))
    run_demo(getattr(args, "out", None), opt, progress=not getattr(args, "no_progress", False))
    return 0


def run_compare_command(args: argparse.Namespace) -> int:
    """``secagg compare``: write ``compare.json`` and ``compare.md`` into ``args.out``; print the tables."""
    from .compare import CompareOptions, compare_markdown, evaluate_claims, run_compare
    from .report import write_json

    opt = CompareOptions(dataset=args.dataset, clients=args.clients, rounds=args.rounds, partition=args.partition,
                         alpha=args.alpha, dropout=args.dropout, seed=args.seed, dp_epsilon=args.epsilon,
                         delta=args.delta, clip_norm=args.clip_norm, key_bits=args.key_bits, repeats=args.repeats)
    t0 = time.perf_counter()
    rows, context = run_compare(opt, progress=not args.no_progress,
                                log=(lambda s: None) if args.no_progress else (lambda s: print(s, file=sys.stderr)))
    claims = evaluate_claims(rows)
    context["wall_seconds"] = time.perf_counter() - t0
    md = compare_markdown(rows, claims, context)
    print(md)
    if args.out is None:
        print(f"measured in {context['wall_seconds']:.1f} s (no files written: pass --out DIR for compare.json "
              "and compare.md)")
        return 0
    os.makedirs(args.out, exist_ok=True)
    write_json(rows, os.path.join(args.out, "compare.json"))
    write_json({"context": context, "claims": claims}, os.path.join(args.out, "compare_context.json"))
    with open(os.path.join(args.out, "compare.md"), "w", encoding="utf-8") as fh:
        fh.write(md)
    print(f"wrote {os.path.join(args.out, 'compare.json')} and compare.md in {context['wall_seconds']:.1f} s")
    return 0


def run_fedavg_command(args: argparse.Namespace) -> int:
    """``secagg fedavg``: one run, a per-round table."""
    from .data import load_dataset
    from .report import fixed_table, write_json
    from .server import FedAvgConfig, run_fedavg

    options = {} if args.threshold is None else {"threshold": args.threshold}
    if args.threshold is not None and args.aggregator not in ("secagg", "secagg+", "distributed-dp"):
        raise ConfigurationError(f"--threshold applies to secagg, secagg+ and distributed-dp, not {args.aggregator}")
    if args.backend != "inprocess":
        if args.aggregator not in ("secagg", "secagg+"):
            raise ConfigurationError(f"--backend {args.backend} applies to secagg and secagg+, not {args.aggregator}")
        options["backend"] = args.backend
    cfg = FedAvgConfig(rounds=args.rounds, fraction=args.fraction, sampling=args.sampling, clip_norm=args.clip_norm,
                       lr=args.lr, aggregator=args.aggregator, aggregator_options=options, dropout=args.dropout,
                       dropout_round=args.dropout_round, deadline=args.deadline, delta=args.delta,
                       noise_multiplier=args.noise_multiplier, target_epsilon=args.epsilon)
    cfg.validate()  # before the data is loaded: a bad combination of flags fails first
    ds = load_dataset(args.dataset, seed=args.seed)
    res = run_fedavg(ds, cfg, num_clients=args.clients, partition_scheme=args.partition, alpha=args.alpha,
                     seed=args.seed, progress=not args.no_progress)
    rows = [dataclasses.asdict(r) for r in res.history]
    print(fixed_table(rows, [("round", "round"), ("survivors", "survivors"), ("test_accuracy", "accuracy"),
                             ("bytes_up_per_client", "B up/client"), ("bytes_down_per_client", "B down/client"),
                             ("crypto_client_seconds", "crypto s"), ("train_seconds", "train s"),
                             ("simulated_seconds", "simulated s"), ("clipped_fraction", "norm-clipped"),
                             ("epsilon", "epsilon")]))
    if res.stop_reason:
        print(f"stopped early: {res.stop_reason}")
    print(f"{ds.describe()}; aggregator {args.aggregator}: final accuracy {res.accuracy:.4f}, "
          f"{res.bytes_total:,} bytes, {res.wall_seconds:.1f} s")
    print("norm-clipped: fraction of the round's updates scaled down to --clip-norm "
          f"{cfg.clip_norm:g} (L2) before aggregation")
    if args.json:
        write_json(res.to_dict(), args.json)
    return 0
