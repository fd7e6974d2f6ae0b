"""The ``secagg`` console command.

Subcommands are contributed by small modules, each exposing
``register(commands, demos)`` where ``commands`` is the top-level subparser group and
``demos`` the group under ``secagg demo``. A module that cannot be imported (an
optional part not installed) is skipped, so the command always starts.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from .errors import SecAggError

#: modules that add subcommands (order = order in --help)
COMMAND_MODULES = (
    "secagg.commands.secure_sum",
    "secagg.commands.params",
    "secagg.commands.paillier",
    "secagg.commands.dp",
    "secagg.commands.bench",
    "secagg.commands.network",
    "fl.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="secagg",
        description="Privacy-preserving aggregation: secure sum, Paillier, differential privacy.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser("demo", help="run a demonstration (default: the full federated demo)")
    demo.add_argument("--out", default="results", help="folder for tables, plots and JSON (default: results)")
    demos = demo.add_subparsers(dest="demo", metavar="DEMO")
    demo.set_defaults(func=_default_demo)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        module.register(commands, demos)
    return parser


def _default_demo(args: argparse.Namespace) -> int:
    """`secagg demo` without a named demo: the most complete demo available."""
    for name, attr in (("fl.cli", "run_default_demo"), ("secagg.commands.secure_sum", "run_default_demo")):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, attr):
            return getattr(module, attr)(args)
    print("no demo is available in this installation", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except SecAggError as exc:
        print(f"secagg: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("secagg: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
