"""`secagg bench`: the overhead sweep and its report (see :mod:`secagg._overhead`)."""

from __future__ import annotations

import argparse
import dataclasses
import time


def register(commands, demos) -> None:
    from .._overhead import DEFAULT_TECHNIQUES
    from ._args import POSITIVE_INT, RATE, SEED, choice_list, int_in, int_list, out_dir

    p = commands.add_parser(
        "bench",
        help="measure the overhead of each technique vs a plain sum and write a report",
        description="Sweep clients n and vector length d for each technique and print the table; with --out DIR "
        "also write report.md, report.json and PNG plots into DIR.",
    )
    p.add_argument("--out", type=out_dir, default=None, metavar="DIR",
                   help="write report.md, report.json and plots into DIR (default: print the table only)")
    preset = p.add_mutually_exclusive_group()
    preset.add_argument("--quick", action="store_const", const="quick", dest="preset", help="under a minute")
    preset.add_argument("--large", action="store_const", const="large", dest="preset", help="larger grid (long)")
    preset.add_argument("--scaling", action="store_const", const="scaling", dest="preset",
                        help="SecAgg+ scaling table instead: n in --n (default 100,1000,10000) x d in --d (default "
                        "10,10000), ratio to the key-agreement floor, peak memory, projection to 10^5 and 10^6 "
                        "(each point in its own process; n=10^4 takes several minutes)")
    p.add_argument("--techniques", type=choice_list(DEFAULT_TECHNIQUES), metavar="NAMES",
                   help=f"comma-separated subset of {','.join(DEFAULT_TECHNIQUES)} (default: all)")
    p.add_argument("--n", type=int_list(2), metavar="N,N,...", help="client counts (default: the preset's)")
    p.add_argument("--d", type=int_list(1), metavar="D,D,...", help="vector lengths (default: the preset's)")
    p.add_argument("--repeats", type=POSITIVE_INT,
                   help="repeats per point, min/median reported (default: the preset's)")
    p.add_argument("--key-bits", type=int_in(2048, 16384), help="Paillier key size in bits (default 2048)")
    p.add_argument("--dropout", type=RATE, help="fraction of clients dropping in each run, in [0, 1) (default 0)")
    p.add_argument("--seed", type=SEED, default=0, help="seed for inputs and dropouts")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run, preset="default")


def run(args: argparse.Namespace) -> int:
    from .._overhead import PRESETS, markdown_table, run_sweep, write_report

    if args.preset == "scaling":
        return _run_scaling(args)
    cfg = PRESETS[args.preset]
    changes = {"seed": args.seed}
    if args.techniques:
        changes["techniques"] = args.techniques
    if args.n:
        changes["n_values"] = tuple(sorted(set(args.n)))
        changes["n_fixed"] = changes["n_values"][len(changes["n_values"]) // 2]
    if args.d:
        changes["d_values"] = tuple(sorted(set(args.d)))
        changes["d_fixed"] = changes["d_values"][len(changes["d_values"]) // 2]
    if args.repeats:
        changes["repeats"] = args.repeats
    if args.key_bits:
        changes["key_bits"] = args.key_bits
    if args.dropout is not None:
        changes["dropout"] = args.dropout
    cfg = dataclasses.replace(cfg, **changes)
    t0 = time.perf_counter()
    points = run_sweep(cfg, progress=not args.no_progress)
    print(markdown_table(points))
    if args.out is None:
        print("(no files written: pass --out DIR for report.md, report.json and the plots)")
        return 0
    folder = write_report(points, cfg, args.out, wall_seconds=time.perf_counter() - t0)
    print(f"report written to {folder}/report.md (JSON: report.json, plots: *.png)")
    return 0


def _run_scaling(args: argparse.Namespace) -> int:
    from ..errors import ConfigurationError
    from .._scaling import DEFAULT_D, DEFAULT_N, project, run_scaling, scaling_table, write_scaling_report

    for flag, given in (("--techniques", args.techniques), ("--repeats", args.repeats), ("--key-bits", args.key_bits)):
        if given:
            raise ConfigurationError(f"{flag} does not apply to --scaling (SecAgg+ only, one run per point)")
    points = run_scaling(args.n or DEFAULT_N, args.d or DEFAULT_D, dropout=0.05 if args.dropout is None else args.dropout,
                         seed=args.seed, progress=not args.no_progress)
    print(scaling_table(list(points) + project(points)))
    if args.out is None:
        print("(no files written: pass --out DIR for scaling.md, scaling.json and scaling.png)")
        return 0
    folder = write_scaling_report(points, args.out)
    print(f"report written to {folder}/scaling.md (JSON: scaling.json, plot: scaling.png)")
    return 0
