"""`secagg params`: the parameter finder (:mod:`secagg.masking.params`) from the command line:
the graph degree ``k``, threshold ``t`` and survivor floor for a number of clients and a
threat model, with the security and failure bounds they reach; ``--table`` prints the
table published in docs/threat-model.md."""

from __future__ import annotations

import argparse
import math

#: the grid of docs/threat-model.md
TABLE_CLIENTS = (100, 1_000, 10_000, 100_000, 1_000_000)
TABLE_THREATS = ((0.05, 0.05), (0.10, 0.10), (0.01, 0.20), (0.20, 0.05))  # (dropout, corrupt)


def register(commands, demos) -> None:
    from ._args import RATE, float_in, int_in

    p = commands.add_parser(
        "params",
        help="choose k, t and the survivor floor for a threat model (the parameter finder)",
        description="Smallest SecAgg+ degree k and threshold t that keep every honest input hidden from an "
                    "active server colluding with a fraction of the clients (security 2^-sigma) while an honest "
                    "run finishes (failure 2^-eta).",
    )
    p.add_argument("--clients", type=int_in(2), default=1000, help="number of clients n")
    p.add_argument("--dropout", type=RATE, default=0.05, help="expected dropout rate delta, in [0, 1)")
    p.add_argument("--corrupt-fraction", "--corrupt", dest="corrupt", type=RATE, default=0.05, metavar="F",
                   help="fraction gamma of clients colluding with the server, in [0, 1)")
    p.add_argument("--adversary", choices=("active", "honest-but-curious"), default="active", help="server model")
    p.add_argument("--graph", choices=("sparse", "complete"), default="sparse", help="SecAgg+ or SecAgg")
    p.add_argument("--security-bits", type=float_in(0, 256, lo_open=True), default=40.0,
                   help="sigma: an honest input stays hidden except with probability 2^-sigma")
    p.add_argument("--correctness-bits", type=float_in(0, 256, lo_open=True), default=20.0,
                   help="eta: an honest run fails with probability at most 2^-eta")
    p.add_argument("--table", action="store_true", help="print the docs table (n x threat grid) instead")
    p.set_defaults(func=run)


def _row(n: int, dropout: float, corrupt: float, adversary: str = "active", graph: str = "sparse",
         sigma: float = 40.0, eta: float = 20.0):
    from ..masking.params import ThreatModel, find_parameters

    return find_parameters(n, ThreatModel(adversary=adversary, corrupt_fraction=corrupt, dropout_rate=dropout,
                                          security_bits=sigma, correctness_bits=eta), graph)


def _log2(v: float) -> str:
    return "exact" if v == -math.inf else f"2^{v:.1f}"


def table_markdown() -> str:
    """The (n, dropout, corrupt) -> (k, t, floor) table of docs/threat-model.md."""
    lines = [
        "| n | dropout δ | corrupt γ | graph | k | t | tolerated corrupt holders | min_survivors | security | failure |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for dropout, corrupt in TABLE_THREATS:
        for n in TABLE_CLIENTS:
            p = _row(n, dropout, corrupt)
            lines.append(
                f"| {n:,} | {dropout:g} | {corrupt:g} | {p.graph} | {p.k} | {p.threshold} | "
                f"{p.tolerated_corrupt_holders} | {p.min_survivors:,} | {_log2(p.security_log2)} | "
                f"{_log2(p.failure_log2)} |"
            )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.table:
        print(table_markdown())
        return 0
    p = _row(args.clients, args.dropout, args.corrupt, args.adversary, args.graph, args.security_bits,
             args.correctness_bits)
    print(f"n={p.n} clients, {p.threat.adversary} server, {p.threat.corrupt_fraction:g} corrupt, "
          f"{p.threat.dropout_rate:g} dropout")
    print(f"  graph            {p.graph} (k={p.k}, {p.k + 1} share holders per client)")
    print(f"  threshold t      {p.threshold} (an honest input stays hidden while at most "
          f"{p.tolerated_corrupt_holders} of its holders are corrupt)")
    print(f"  min_survivors    {p.min_survivors} (clients refuse to unmask fewer)")
    print(f"  security         {_log2(p.security_log2)} (target 2^-{p.threat.security_bits:g})")
    print(f"  failure          {_log2(p.failure_log2)} (target 2^-{p.threat.correctness_bits:g}"
          f"{'' if p.meets_correctness else '; not met: too few clients for this dropout rate'})")
    return 0
