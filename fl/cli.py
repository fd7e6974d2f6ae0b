"""``secagg`` subcommands of the federated layer: ``demo`` (default), ``demo fl``, ``compare``, ``fedavg``,
``headline``.

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

__all__ = ["register"]


def register(commands, demos) -> dict:
    """Add ``compare`` and ``fedavg`` to ``commands`` and ``fl`` to ``demos``; the
    ``secagg.commands`` entry point of the ``secagg`` command. Returns the hooks it
    provides: the federated demo is ``secagg demo``'s default."""
    from secagg import available_aggregators
    from secagg.commands._args import (DELTA, FRACTION, POSITIVE_FLOAT, POSITIVE_INT, RATE, SEED, Renamed,
                                       float_list, int_in, out_dir, out_file)

    from .compare import ARTICLE
    from .headline import HEADLINE_EPSILONS, PRESETS, SECURE_SUMS
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
    d.add_argument("--seed", type=SEED, default=0, help="seed for data, partition and devices (and the noise only "
                   "with --reproducible-noise)")
    d.add_argument("--key-bits", type=int_in(2048, 16384), default=2048, help="Paillier key size in bits")
    d.add_argument("--epsilon-seeds", type=POSITIVE_INT, default=1, help="seeds per epsilon in the headline")
    _noise_flag(d)
    d.add_argument("--no-progress", action="store_true", help="no progress bars")
    d.set_defaults(func=run_default_demo)

    c = commands.add_parser(
        "compare", help="federated vs distributed learning, measured (markdown + JSON)",
        description="Run centralized, distributed data-parallel, FedAvg plain, +SecAgg, +SecAgg+, +Paillier and "
                    "+distributed DP on the same data, devices and seed, and the accuracy-at-epsilon headline for "
                    f"both privacy units; print the tables, which test the claims of the article {ARTICLE}; with "
                    "--out DIR also write DIR/compare.json and DIR/compare.md.")
    c.add_argument("--dataset", default="breast_cancer", choices=DATASETS, help="dataset")
    c.add_argument("--clients", type=int_in(2), default=10, help="number of clients (>= 2)")
    c.add_argument("--rounds", type=POSITIVE_INT, default=20, help="FedAvg rounds")
    c.add_argument("--partition", default="iid", choices=PARTITIONS, help="how rows are split over clients")
    c.add_argument("--alpha", type=POSITIVE_FLOAT, default=0.5, help="Dirichlet alpha for skewed partitions")
    c.add_argument("--dropout", type=RATE, default=0.3, help="fraction of clients dropping each round (federated)")
    c.add_argument("--seed", type=SEED, default=0, help="first seed; repeat i uses seed + i")
    c.add_argument("--epsilon", type=POSITIVE_FLOAT, default=8.0, help="distributed DP budget of the settings table")
    c.add_argument("--delta", type=DELTA, default=defaults.delta, help="DP delta, in (0, 1)")
    c.add_argument("--dp-unit", choices=("example", "client"), default="example",
                   help="privacy unit of the distributed-dp setting; the headline shows both")
    c.add_argument("--epsilons", type=float_list(0, lo_open=True), default=HEADLINE_EPSILONS,
                   help="comma-separated budgets of the accuracy-at-epsilon headline (default: 1,2,4,8)")
    c.add_argument("--no-headline", action="store_true", help="skip the accuracy-at-epsilon headline")
    _noise_flag(c)
    c.add_argument("--clip-norm", type=POSITIVE_FLOAT, default=defaults.clip_norm,
                   help="L2 norm each client update is clipped to")
    c.add_argument("--clip", action=Renamed, new=renamed_clip)
    c.add_argument("--repeats", type=POSITIVE_INT, default=3, help="seeds per setting; accuracy is their mean")
    c.add_argument("--key-bits", type=int_in(2048, 16384), default=2048, help="Paillier key size in bits")
    c.add_argument("--out", type=out_dir, default=None, metavar="DIR",
                   help="write compare.json, compare_context.json and compare.md into DIR (default: print only)")
    c.add_argument("--no-progress", action="store_true", help="no progress bars or log lines")
    c.set_defaults(func=run_compare_command)

    h = commands.add_parser(
        "headline", help="accuracy at epsilon 1, 2, 4, 8 over many seeds, judged against the privacy targets",
        description="Run one of the privacy experiments the docs quote over many seeds (each with its own "
                    "train/test split) and print accuracy at each epsilon (mean ± sample std), the non-private "
                    "references and whether each target is met. breast-cancer: 10 clients, both privacy units, "
                    "diffprivlib baseline. synthetic-1000: 1,000 clients, Poisson client sampling (about 100 per "
                    "round), client-level DP. With --tune, rerun the public-proxy grid that chose the preset's "
                    "hyper-parameters instead. With --out DIR also write headline.json and headline.md (or "
                    "tuning.json and tuning.md).")
    h.add_argument("preset", nargs="?", default="breast-cancer", choices=tuple(PRESETS),
                   help="which experiment (default: breast-cancer)")
    h.add_argument("--seeds", type=POSITIVE_INT, default=None,
                   help="number of seeds (default: the preset's, 10); seed i uses its own split")
    h.add_argument("--first-seed", type=SEED, default=None, help="first seed (default 0)")
    h.add_argument("--epsilons", type=float_list(0, lo_open=True), default=None,
                   help="comma-separated budgets (default: 1,2,4,8)")
    h.add_argument("--secure-sum", choices=tuple(SECURE_SUMS), default=None,
                   help="distributed-dp rows: run the SecAgg protocol (masking) or only its exact ring arithmetic "
                        "(default: the preset's: masking for breast-cancer, exact-arithmetic for synthetic-1000)")
    h.add_argument("--clients", type=int_in(2), default=None, help="number of clients (default: the preset's)")
    h.add_argument("--tune", action="store_true",
                   help="rerun the preset's hyper-parameter choice on its public proxy instead (fl.tuning)")
    h.add_argument("--reproducible-noise", action="store_true",
                   help="research only: DP noise and rounding follow each seed (default: a CSPRNG; the seeds fix the "
                        "data split, partition, initialization and client sampling only)")
    h.add_argument("--out", type=out_dir, default=None, metavar="DIR",
                   help="write headline.json and headline.md into DIR (default: print only)")
    h.add_argument("--no-progress", action="store_true", help="no progress bar or log lines")
    h.set_defaults(func=run_headline_command)

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
                   help="L2 norm each client update (with --dp-unit example: each example's gradient) is clipped to")
    f.add_argument("--clip", action=Renamed, new=renamed_clip)
    f.add_argument("--lr", type=POSITIVE_FLOAT, default=defaults.lr, help="local SGD learning rate")
    f.add_argument("--noise-multiplier", type=POSITIVE_FLOAT, default=None,
                   help="DP noise std / clip norm (DP aggregators; default: solved from --epsilon)")
    f.add_argument("--epsilon", type=POSITIVE_FLOAT, default=None,
                   help="privacy budget (DP aggregators only; default: no budget)")
    f.add_argument("--delta", type=DELTA, default=defaults.delta, help="DP delta, in (0, 1)")
    f.add_argument("--dp-unit", choices=("client", "example"), default=None,
                   help="privacy unit of a DP aggregator: client (default) or example (DP-SGD clients)")
    f.add_argument("--example-rate", type=FRACTION, default=None,
                   help="with --dp-unit example: Poisson rate of each client's example sample, in (0, 1] (default 1)")
    f.add_argument("--weight-cap", type=POSITIVE_FLOAT, default=None,
                   help="public W of the client weights min(n_i / W, 1) (needed for example weighting under DP)")
    f.add_argument("--weighting", choices=("examples", "uniform"), default=None,
                   help="client weights (default: examples without DP, uniform with DP)")
    _noise_flag(f)
    f.add_argument("--threshold", type=POSITIVE_INT, default=None,
                   help="secure-aggregation threshold (default: just above half the clients)")
    f.add_argument("--backend", choices=("inprocess", "ray"), default="inprocess",
                   help="where the masking protocol's clients run (secagg, secagg+): this process or Ray actors")
    f.add_argument("--seed", type=SEED, default=0, help="seed for data, partition, devices and noise")
    f.add_argument("--json", type=out_file, metavar="FILE", help="write the run's JSON to FILE (default: none)")
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    f.set_defaults(func=run_fedavg_command)
    return {"default_demo": run_default_demo}


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
    run_demo(getattr(args, "out", None), opt, progress=not getattr(args, "no_progress", False))
    return 0


def run_compare_command(args: argparse.Namespace) -> int:
    """``secagg compare``: write ``compare.json`` and ``compare.md`` into ``args.out``; print the tables."""
    from .compare import CompareOptions, compare_markdown, evaluate_claims, run_compare
    from .report import write_json

    _warn_reproducible(args)
    opt = CompareOptions(dataset=args.dataset, clients=args.clients, rounds=args.rounds, partition=args.partition,
                         alpha=args.alpha, dropout=args.dropout, seed=args.seed, dp_epsilon=args.epsilon,
                         delta=args.delta, clip_norm=args.clip_norm, key_bits=args.key_bits, repeats=args.repeats,
                         dp_unit=args.dp_unit, epsilons=tuple(args.epsilons), headline=not args.no_headline,
                         reproducible_noise=args.reproducible_noise)
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
    from secagg.aggregators import aggregator_class

    from .server import FedAvgConfig, dp_aggregators, run_fedavg

    if not aggregator_class(args.aggregator).is_dp:
        for flag, attr in _DP_ONLY_FLAGS.items():
            if getattr(args, attr) is not None:
                raise ConfigurationError(f"{flag} applies only to DP aggregators "
                                         f"({', '.join(sorted(dp_aggregators()))}), not {args.aggregator}")
    if args.reproducible_noise and not aggregator_class(args.aggregator).randomized:
        raise ConfigurationError(f"--reproducible-noise applies only to aggregators with noise or random rounding, "
                                 f"not {args.aggregator}")
    if args.example_rate is not None and args.dp_unit != "example":
        raise ConfigurationError("--example-rate applies only with --dp-unit example")
    _warn_reproducible(args)
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
                       noise_multiplier=args.noise_multiplier, target_epsilon=args.epsilon, dp_unit=args.dp_unit,
                       example_sampling_rate=args.example_rate, weight_cap=args.weight_cap,
                       weighting=args.weighting, reproducible_noise=args.reproducible_noise)
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
    if cfg.unit == "example":
        print("norm-clipped: fraction of the sampled examples whose gradient was scaled down to --clip-norm "
              f"{cfg.clip_norm:g} (L2)")
    else:
        print("norm-clipped: fraction of the round's updates scaled down to --clip-norm "
              f"{cfg.clip_norm:g} (L2) before aggregation")
    if cfg.is_dp:
        print(f"epsilon {res.epsilon:.4g} at delta {cfg.delta:g}, privacy unit: {cfg.unit} "
              f"({res.privacy['neighbouring'].split(':')[0]})")
    if args.json:
        write_json(res.to_dict(), args.json)
    return 0


def run_headline_command(args: argparse.Namespace) -> int:
    """``secagg headline``: a preset over many seeds, its targets judged; ``--tune``: its proxy grid."""
    from .headline import PRESETS, headline_markdown, run_headline
    from .report import write_json

    t0 = time.perf_counter()
    if args.tune:
        from .tuning import tune, tuning_markdown

        for flag, attr in (("--seeds", "seeds"), ("--first-seed", "first_seed"), ("--epsilons", "epsilons"),
                           ("--secure-sum", "secure_sum"), ("--clients", "clients")):
            if getattr(args, attr) is not None:
                raise ConfigurationError(f"{flag} does not apply with --tune (the proxy grid has fixed seeds, "
                                         "epsilons and sizes; see fl.tuning)")
        if args.reproducible_noise:
            raise ConfigurationError("--reproducible-noise does not apply with --tune (the proxy runs always use "
                                     "seeded noise, so the choice is reproducible)")
        doc = tune(args.preset, progress=not args.no_progress, log=(lambda s: None))
        md = tuning_markdown(doc, top=len(doc["grid"]))
        print(md)
        if args.out is not None:
            os.makedirs(args.out, exist_ok=True)
            write_json(doc, os.path.join(args.out, "tuning.json"))
            with open(os.path.join(args.out, "tuning.md"), "w", encoding="utf-8") as fh:
                fh.write(md + "\n")
            print(f"wrote {os.path.join(args.out, 'tuning.json')} and tuning.md")
        print(f"tuned in {time.perf_counter() - t0:.1f} s")
        return 0
    _warn_reproducible(args)
    opt = PRESETS[args.preset]
    first = 0 if args.first_seed is None else args.first_seed
    changes: dict = {"reproducible_noise": args.reproducible_noise}
    if args.seeds is not None or args.first_seed is not None:
        changes["seeds"] = tuple(range(first, first + (args.seeds or len(opt.seeds))))
    if args.epsilons is not None:
        changes["epsilons"] = tuple(args.epsilons)
    if args.secure_sum is not None:
        changes["secure_sum"] = args.secure_sum
    if args.clients is not None:
        changes["clients"] = args.clients
    opt = dataclasses.replace(opt, **changes)
    if args.epsilons is not None:  # judge only the targets at the epsilons that were run
        opt = dataclasses.replace(opt, targets=tuple(
            dataclasses.replace(t, epsilons=tuple(e for e in t.epsilons if e in opt.epsilons))
            for t in opt.targets))
    doc = run_headline(opt, progress=not args.no_progress)  # the bar names the run in progress
    doc["preset"] = args.preset
    doc["wall_seconds"] = time.perf_counter() - t0
    md = headline_markdown(doc, with_std=True)
    print(md)
    if args.out is not None:
        os.makedirs(args.out, exist_ok=True)
        write_json(doc, os.path.join(args.out, "headline.json"))
        with open(os.path.join(args.out, "headline.md"), "w", encoding="utf-8") as fh:
            fh.write(md)
        print(f"wrote {os.path.join(args.out, 'headline.json')} and headline.md")
    print(f"measured in {doc['wall_seconds']:.1f} s")
    return 0
