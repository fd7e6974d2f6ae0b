"""The ``secagg`` console command.

Subcommands are contributed by small modules, each exposing
``register(commands, demos)`` where ``commands`` is the top-level subparser group and
``demos`` the group under ``secagg demo``: secagg's own (:data:`COMMAND_MODULES`), and
plugins found through the ``secagg.commands`` entry-point group (``fl`` registers
``fedavg``, ``compare`` and the federated demo that way, so ``secagg`` never imports the
layer above it). A plugin's ``register`` may return ``{"default_demo": callable}``. A
plugin that fails to load does not stop the command, but is named, with the reason,
when the user asks for a command that is not there.

Rules every subcommand follows (tested in ``tests/test_cli.py``):

* every value is checked when the flags are parsed, with the types of
  :mod:`secagg.commands._args`, so a bad value is refused before anything runs;
* every error is one line on stderr that names the flag the user typed, and the exit
  code is non-zero: 2 for a refused flag, 1 for an error of the library
  (:class:`~secagg.errors.SecAggError`) or of the file system, 4 for a bug (set
  ``SECAGG_DEBUG=1`` to see its traceback; 3 is ``secagg client``'s "unknown whether my
  input is in the sum"); library messages that name a Python
  argument (``allow_low_threshold=True``) are translated to its flag
  (``--allow-low-threshold``);
* ``--help`` shows every default and every choice;
* files are written only where ``--out`` (or another path flag) says.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import re
import sys
from typing import Any, NoReturn, Sequence

from . import __version__
from .errors import SecAggError

#: modules that add subcommands (order = order in --help)
COMMAND_MODULES = (
    "secagg.commands.secure_sum",
    "secagg.commands.params",
    "secagg.commands.paillier",
    "secagg.commands.dp",
    "secagg.commands.bench",
    "secagg.commands.network",
)
#: the entry-point group of command plugins
PLUGIN_GROUP = "secagg.commands"

#: exit code of a bug (an unexpected exception); 3 is `secagg client`'s "cannot know"
EXIT_BUG = 4

#: library keyword names -> the flag ``dest`` that sets them, where the two differ
PYTHON_NAMES = {
    "target_epsilon": "epsilon",
    "num_clients": "clients",
    "n_clients": "clients",
    "dim": "dim",
    "sampling_rate": "q",
    "noise_multiplier": "noise_multiplier",
    "key_bits": "key_bits",
    "allow_insecure": "allow_insecure",
    "allow_low_threshold": "allow_low_threshold",
    "out_of_range": "out_of_range",
    "corrupt_fraction": "corrupt",
    "dropout_rate": "dropout",
    "min_survivors": "min_survivors",
}


class HelpFormatter(argparse.HelpFormatter):
    """Shows ``(default: X)`` after every option that has a default its help does not state."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "default" in text.lower()
            or not action.option_strings
            or action.required
            or any(action.default is v for v in (None, False, argparse.SUPPRESS))  # 0 and 0.0 are shown
            or isinstance(action, (argparse._HelpAction, argparse._VersionAction))
        ):
            return text
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line naming the flag, and whose help shows defaults."""

    #: plugin name -> why it failed to load (the top-level parser only)
    failed_plugins: dict[str, str]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        self.failed_plugins = {}

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"secagg: error: {_one_line(message)} (see '{self.prog} --help')\n")


def build_parser() -> Parser:
    parser = Parser(
        prog="secagg",
        description="Privacy-preserving aggregation: secure sum, Paillier, differential privacy.",
        epilog="Exit codes: 0 ok, 1 error (one line on stderr), 2 bad flag, 3 secagg client cannot know whether its "
        "input is in the sum, 4 bug (SECAGG_DEBUG=1 for a traceback).",
    )
    parser.add_argument("--version", action="version", version=f"secagg {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    demo = commands.add_parser(
        "demo", help="run a demonstration (default: the full federated demo)",
        description="Run a demonstration. Without a DEMO name: the full federated demo. Nothing is written "
        "unless --out DIR is given.",
    )
    from .commands._args import out_dir

    demo.add_argument("--out", type=out_dir, default=None, metavar="DIR",
                      help="write tables, plots and JSON into DIR (default: print only)")
    demos = demo.add_subparsers(dest="demo", metavar="DEMO", parser_class=Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands, demos)
    hooks: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for ep in sorted(importlib.metadata.entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        try:
            hooks.update(ep.load()(commands, demos) or {})
        except Exception as exc:  # a broken or partly installed plugin: report it, keep the rest
            failed[ep.name] = _one_line(f"{type(exc).__name__}: {exc}")
    default = hooks.get("default_demo") or importlib.import_module("secagg.commands.secure_sum").run_default_demo
    demo.set_defaults(func=default)
    parser.set_defaults(_plugins_failed=failed)
    parser.failed_plugins = failed
    annotate(parser, "secagg")
    return parser


def annotate(parser: argparse.ArgumentParser, prog: str) -> None:
    """Give every parser the map of its flags (for error translation by :func:`run`)."""
    flags = {a.dest: max(a.option_strings, key=len) for a in parser._actions if a.option_strings and a.dest != "help"}
    parser.set_defaults(_flags=flags)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                annotate(sub, f"{prog} {name}")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def translate(message: str, flags: dict[str, str]) -> str:
    """Rewrite the Python argument names in a library message as the command's flags.

    ``flags`` maps a flag's ``dest`` to the flag (``{"allow_low_threshold":
    "--allow-low-threshold"}``); :data:`PYTHON_NAMES` adds library names that differ from
    the ``dest``. ``name=True`` becomes the flag, ``name='v'`` becomes ``--flag v``,
    ``name=`` and ``name=...`` become the flag, and a bare name with an underscore (or
    one that starts the message) becomes the flag. A sentence that tells the user to pass
    a library argument that this command has no flag for is dropped.
    """
    names = dict(flags)
    for py, dest in PYTHON_NAMES.items():
        if dest in flags:
            names[py] = flags[dest]
    unavailable = [py for py in PYTHON_NAMES if py not in names]
    sentences = re.split(r"(?<=[.;])\s+", message)
    kept = [s for s in sentences if not any(re.search(rf"\b{re.escape(py)}=", s) for py in unavailable)]
    message = " ".join(kept) if kept else message
    for name in sorted(names, key=len, reverse=True):
        flag, n = names[name], re.escape(name)
        message = re.sub(rf"(?<![-\w]){n}=True\b", flag, message)
        message = re.sub(rf"(?<![-\w]){n}='([^']*)'", rf"{flag} \1", message)
        message = re.sub(rf"(?<![-\w]){n}=(\.\.\.)?(?![\w'\"(\[-])", flag, message)
        if "_" in name:
            message = re.sub(rf"(?<![-\w]){n}\b(?!=)", flag, message)
        elif re.match(rf"{n}\b(?!=)", message):
            message = flag + message[len(name):]
    return message


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``secagg`` command; returns the exit code (never raises, never prints a traceback)."""
    return run(build_parser(), argv)


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` with ``parser`` (a :class:`Parser` given to :func:`annotate`) and run
    the chosen command under the rules of this module; returns the exit code."""
    failed = getattr(parser, "failed_plugins", {})
    words = list(sys.argv[1:] if argv is None else argv)
    first = next((w for w in words if not w.startswith("-")), None)
    known = {n for a in parser._actions if isinstance(a, argparse._SubParsersAction) for n in a.choices}
    if failed and first is not None and first not in known:
        why = "; ".join(f"{name}: {reason}" for name, reason in failed.items())
        print(f"secagg: error: unknown command {first!r}; these command plugins failed to load: {why} "
              "(install the missing extra, e.g. pip install 'secagg[fl]')", file=sys.stderr)
        return 2
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a refused flag (already printed)
        return int(exc.code or 0) if isinstance(exc.code, int) or exc.code is None else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    prog = "secagg"
    try:
        return int(args.func(args) or 0)
    except SecAggError as exc:
        print(f"{prog}: error: {_one_line(translate(str(exc), getattr(args, '_flags', {})))}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"{prog}: error: cannot use{where}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one line by default, the traceback on request
        if os.environ.get("SECAGG_DEBUG"):
            raise
        print(f"{prog}: internal error: {type(exc).__name__}: {_one_line(str(exc))} (a bug in secagg; "
              "SECAGG_DEBUG=1 shows the traceback)", file=sys.stderr)
        return EXIT_BUG


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
