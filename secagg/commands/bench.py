"""`secagg bench`: the overhead sweep and its report (see :mod:`secagg.overhead`)."""

from __future__ import annotations

import argparse
import dataclasses
import time


def register(commands, demos) -> None:
    p = commands.add_parser(
        "bench",
        help="measure the overhead of each technique vs a plain sum and write a report",
        description="Sweep clients n and vector length d for each technique; write report.md, "
        "report.json and PNG plots into --out.",
    )
    p.add_argument("--out", default="bench-report", help="report folder (default: bench-report)")
    preset = p.add_mutually_exclusive_group()
    preset.add_argument("--quick", action="store_const", const="quick", dest="preset", help="under a minute")
    preset.add_argument("--large", action="store_const", const="large", dest="preset", help="larger grid (long)")
    p.add_argument("--techniques", help="comma-separated subset, e.g. plain,secagg+,paillier")
    p.add_argument("--n", help="comma-separated client counts (overrides the preset)")
    p.add_argument("--d", help="comma-separated vector lengths (overrides the preset)")
    p.add_argument("--repeats", type=int, help="repeats per point (min/median reported)")
    p.add_argument("--key-bits", type=int, help="Paillier key size in bits (default 2048)")
    p.add_argument("--dropout", type=float, help="fraction of clients dropping in each run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run, preset="default")


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


def run(args: argparse.Namespace) -> int:
    from ..overhead import PRESETS, markdown_table, run_sweep, write_report

    cfg = PRESETS[args.preset]
    changes = {"seed": args.seed}
    if args.techniques:
        changes["techniques"] = tuple(t.strip() for t in args.techniques.split(",") if t.strip())
    if args.n:
        changes["n_values"] = _ints(args.n)
        changes["n_fixed"] = changes["n_values"][len(changes["n_values"]) // 2]
    if args.d:
        changes["d_values"] = _ints(args.d)
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
    folder = write_report(points, cfg, args.out, wall_seconds=time.perf_counter() - t0)
    print(markdown_table(points))
    print(f"report written to {folder}/report.md (JSON: report.json, plots: *.png)")
    return 0
