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
    c.add_argument("--epsilon", type=float, default=8.0, help="distributed DP budget (delta 1e-5)")
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
    f.add_argument("--threshold", type=int, default=None, help="secure-aggregation threshold")
    f.add_argument("--backend", choices=("inprocess", "ray"), default="inprocess",
                   help="where the masking protocol's clients run (secagg, secagg+): this process or Ray actors")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--json", help="write the run's JSON here")
    f.set_defaults(func=run_fedavg_command)


def run_default_demo(args: argparse.Namespace) -> int:
    """``secagg demo``: the full federated demo into ``args.out`` (< 3 minutes on 2 cores)."""
    from .compare import DemoOptions, run_demo

    opt = DemoOptions(
        dataset=getattr(args, "dataset", "breast_cancer"), clients=getattr(args, "clients", 10),
        rounds=getattr(args, "rounds", 20), seed=getattr(args, "seed", 0), key_bits=getattr(args, "key_bits", 2048))
    run_demo(args.out, opt, progress=not getattr(args, "no_progress", False))
    return 0


def run_compare_command(args: argparse.Namespace) -> int:
    """``secagg compare``: write ``compare.json`` and ``compare.md`` into ``args.out``; print the tables."""
    from .compare import CompareOptions, compare_markdown, evaluate_claims, run_compare
    from .report import write_json

    opt = CompareOptions(dataset=args.dataset, clients=args.clients, rounds=args.rounds, partition=args.partition,
                         alpha=args.alpha, dropout=args.dropout, seed=args.seed, dp_epsilon=args.epsilon,
                         key_bits=args.key_bits, repeats=args.repeats)
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

    options = {} if args.threshold is None else {"threshold": args.threshold}
    if args.backend != "inprocess":
        if args.aggregator not in ("secagg", "secagg+"):
            raise ConfigurationError(f"--backend {args.backend} applies to secagg and secagg+, not {args.aggregator}")
        options["backend"] = args.backend
    cfg = FedAvgConfig(rounds=args.rounds, fraction=args.fraction, sampling=args.sampling, clip=args.clip, lr=args.lr,
                       aggregator=args.aggregator, aggregator_options=options, dropout=args.dropout,
                       dropout_round=args.dropout_round, deadline=args.deadline,
                       noise_multiplier=args.noise_multiplier, target_epsilon=args.epsilon)
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
    if args.json:
        write_json(res.to_dict(), args.json)
    return 0
