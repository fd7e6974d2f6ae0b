"""Flag types for the ``secagg`` command: each checks a value as the API would, and says why not.

argparse reports a refused value as ``argument --flag: <message>``, which
:mod:`secagg.cli` prints on one line, so the error names the flag the user typed
before anything runs. Each type also carries ``bad``: one example of each class of
value it refuses (wrong type, NaN, negative, zero, out of range), which the CLI test
feeds to every flag of every subcommand.
"""

from __future__ import annotations

import argparse
import math
import os
from typing import Callable, Iterable

__all__ = [
    "FlagType",
    "Renamed",
    "choice_list",
    "float_in",
    "float_list",
    "in_file",
    "int_in",
    "int_list",
    "out_dir",
    "out_file",
    "DELTA",
    "FRACTION",
    "NONNEG_FLOAT",
    "POSITIVE_FLOAT",
    "POSITIVE_INT",
    "PORT",
    "RATE",
    "RING_BITS",
    "SEED",
]


class FlagType:
    """A callable argparse ``type``: ``parse(text)`` or :class:`argparse.ArgumentTypeError`.

    ``bad`` lists values it refuses (for tests); ``__name__`` is what argparse would show.
    """

    def __init__(self, parse: Callable[[str], object], name: str, bad: Iterable[str]) -> None:
        self._parse = parse
        self.__name__ = name
        self.bad = tuple(bad)

    def __call__(self, text: str):
        return self._parse(text)

    def __repr__(self) -> str:
        return self.__name__


def _int(text: str) -> int:
    try:
        return int(text.strip(), 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def int_in(lo: int | None = None, hi: int | None = None) -> FlagType:
    """An integer in ``[lo, hi]`` (either end may be open-ended with ``None``)."""
    if lo is not None and hi is not None:
        want = f"an integer in [{lo}, {hi}]"
    elif lo is not None:
        want = f"an integer >= {lo}"
    else:
        want = f"an integer <= {hi}"

    def parse(text: str) -> int:
        value = _int(text)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be {want}, got {text!r}")
        return value

    bad = ["abc", "1.5", "nan"]
    if lo is not None:
        bad += sorted({str(lo - 1), "-1"} if lo >= 0 else {str(lo - 1)})
        if lo >= 1:
            bad.append("0")
    if hi is not None:
        bad.append(str(hi + 1))
    return FlagType(parse, want, dict.fromkeys(bad))


def float_in(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
             hi_open: bool = False) -> FlagType:
    """A finite number in the interval from ``lo`` to ``hi`` (ends open or closed)."""
    if lo is not None and hi is not None:
        want = f"a number in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    elif lo is not None:
        want = f"a number {'>' if lo_open else '>='} {lo:g}"
    elif hi is not None:
        want = f"a number {'<' if hi_open else '<='} {hi:g}"
    else:
        want = "a finite number"

    def parse(text: str) -> float:
        value = _float(text)
        if lo is not None and (value < lo or (lo_open and value == lo)):
            raise argparse.ArgumentTypeError(f"must be {want}, got {text!r}")
        if hi is not None and (value > hi or (hi_open and value == hi)):
            raise argparse.ArgumentTypeError(f"must be {want}, got {text!r}")
        return value

    bad = ["abc", "nan", "inf"]
    if lo is not None:
        bad.append(f"{lo:g}" if lo_open else f"{lo - 1:g}")
        if lo >= 0:
            bad.append("-1")
    if hi is not None:
        bad.append(f"{hi:g}" if hi_open else f"{hi + 1:g}")
    return FlagType(parse, want, dict.fromkeys(bad))


def int_list(lo: int = 1) -> FlagType:
    """Comma-separated integers, each ``>= lo`` (e.g. ``4,8,16``)."""
    one = int_in(lo)

    def parse(text: str) -> tuple[int, ...]:
        parts = [p for p in text.split(",")]
        if not text.strip() or any(not p.strip() for p in parts):
            raise argparse.ArgumentTypeError(f"must be comma-separated integers >= {lo}, got {text!r}")
        try:
            return tuple(one(p) for p in parts)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"must be comma-separated integers >= {lo}, got {text!r}") from None

    return FlagType(parse, f"comma-separated integers >= {lo}", ("x", f"{lo - 1}", "4,,8", "4,x", "nan"))


def float_list(lo: float | None = None, *, lo_open: bool = False) -> FlagType:
    """Comma-separated finite numbers, each checked like :func:`float_in` (e.g. ``1,2,4,8``)."""
    one = float_in(lo, lo_open=lo_open)
    each = one.__name__.replace("a finite number", "").replace("a number", "").strip()
    want = f"comma-separated numbers, each {each}" if each else "comma-separated finite numbers"

    def parse(text: str) -> tuple[float, ...]:
        parts = text.split(",")
        if not text.strip() or any(not p.strip() for p in parts):
            raise argparse.ArgumentTypeError(f"must be {want}, got {text!r}")
        try:
            return tuple(one(p) for p in parts)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"must be {want}, got {text!r}") from None

    bad = ["x", "1,,2", "1,x", "nan", "1,inf"]
    if lo is not None:
        bad.append(f"1,{lo:g}" if lo_open else f"1,{lo - 1:g}")
    return FlagType(parse, want, dict.fromkeys(bad))


def choice_list(choices: Iterable[str]) -> FlagType:
    """Comma-separated names, each one of ``choices`` (e.g. ``plain,secagg+``)."""
    known = tuple(choices)

    def parse(text: str) -> tuple[str, ...]:
        names = tuple(p.strip() for p in text.split(",") if p.strip())
        unknown = [n for n in names if n not in known]
        if not names or unknown:
            raise argparse.ArgumentTypeError(
                f"must be comma-separated names from {', '.join(known)}; got {text!r}")
        return names

    return FlagType(parse, "comma-separated names", ("nope", ","))


def _nearest_existing(path: str) -> str:
    p = os.path.abspath(path)
    while not os.path.exists(p):
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    return p


def _out_dir(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must be a folder name, got ''")
    if os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a file, not a folder")
    base = _nearest_existing(text)
    if not os.path.isdir(base) or not os.access(base, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot create or write {text!r}: {base!r} is not a writable folder")
    return text


def _out_file(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must be a file name, got ''")
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a folder, not a file")
    base = _nearest_existing(os.path.dirname(os.path.abspath(text)))
    if not os.path.isdir(base) or not os.access(base, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: {base!r} is not a writable folder")
    return text


def _in_file(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must be a file name, got ''")
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a folder, not a file")
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"no such file: {text!r}")
    if not os.access(text, os.R_OK):
        raise argparse.ArgumentTypeError(f"cannot read {text!r}: permission denied")
    return text


class Renamed(argparse.Action):
    """A removed flag: using it is an error that names its replacement (hidden from --help).

    ``parser.add_argument("--clip", action=Renamed, new="--clip-norm (the L2 norm ...)")``
    """

    def __init__(self, option_strings, dest, new: str, nargs="?", **kwargs) -> None:
        kwargs["help"] = argparse.SUPPRESS
        super().__init__(option_strings, dest=argparse.SUPPRESS, nargs=nargs, **kwargs)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        parser.error(f"{option_string} was renamed: use {self.new}")


#: a folder to write into (created when missing); refuses a file or an unwritable place
out_dir = FlagType(_out_dir, "folder", ("/dev/null", "/dev/null/sub"))
#: an existing, readable file (a key, a certificate, an allow-list); its content is checked by the command
in_file = FlagType(_in_file, "file", ("", "/", "/no/such/file.pem"))
#: a file to write (its folder is created when missing); refuses a folder or an unwritable place
out_file = FlagType(_out_file, "file", ("/", "/dev/null/x.json"))

POSITIVE_INT = int_in(1)
SEED = int_in(0, 2**63 - 1)
PORT = int_in(0, 65535)
RING_BITS = int_in(2, 64)
POSITIVE_FLOAT = float_in(0, lo_open=True)
NONNEG_FLOAT = float_in(0)
#: a fraction of clients sampled: (0, 1]
FRACTION = float_in(0, 1, lo_open=True)
#: a dropout rate: [0, 1)
RATE = float_in(0, 1, hi_open=True)
#: a DP delta: (0, 1), the same check as the API's
DELTA = float_in(0, 1, lo_open=True, hi_open=True)
