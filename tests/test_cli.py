"""The ``secagg`` command explains itself: every flag of every subcommand is checked like the API.

Table-driven: the subcommands and their flags are read from the parser itself, so a flag
added later is covered (or fails ``test_every_value_flag_is_checked``). Each bad value
class (wrong type, NaN, negative, zero, out of range, unknown choice) must give a
non-zero exit and exactly one line on stderr that names the flag, without running
anything; conflicting flags likewise. Runs ``secagg.cli.main`` in process.
"""

from __future__ import annotations

import argparse

import pytest

from secagg import __version__
from secagg.cli import EXIT_BUG, build_parser, main, translate
from secagg.commands._args import FlagType, Renamed

#: an existing file for flags that must name one (its content is never read by a refused command)
SOME_FILE = __file__

#: the smallest valid arguments each subcommand needs besides the flag under test
REQUIRED = {
    ("serve",): ["--clients", "3", "--dim", "5", "--port", "0", "--out", "{tmp}/sum.npy"],
    ("client",): ["--server", "127.0.0.1:9", "--random"],
    ("keygen",): ["--id", "0", "--out", "{tmp}/k.key"],
    ("dp", "epsilon"): ["--q", "0.1", "--sigma", "1", "--steps", "1"],
    ("dp", "sigma"): ["--epsilon", "1"],
}

#: flags whose value is free text checked by the command itself, with a bad value for each
FREE_TEXT = {
    ("client", "--server"): "not-a-host-port",
    ("client", "--input"): "{tmp}/missing.npy",
}

#: free-text flags not checked here, and why
NOT_CHECKED = {
    "--host": "serve: any address; a wrong one fails at bind with a one-line 'cannot listen on'",
    "--tls-server-name": "any host name (--server-name)",
}

#: conflicting flags: (argv, the flag the error must name)
CONFLICTS = [
    (["bench", "--quick", "--large"], "--large"),
    (["bench", "--scaling", "--quick"], "--quick"),
    (["bench", "--scaling", "--repeats", "2"], "--repeats"),
    (["bench", "--scaling", "--techniques", "plain"], "--techniques"),
    (["client", "--server", "127.0.0.1:9", "--random", "--input", "x.npy"], "--input"),
    (["client", "--server", "127.0.0.1:9", "--random", "--server-name", "x"], "--server-name"),
    (["client", "--server", "127.0.0.1:9", "--random", "--insecure-plaintext", "--ca", SOME_FILE], "--ca"),
    (["client", "--server", "127.0.0.1:9", "--random", "--insecure-plaintext", "--key", SOME_FILE,
      "--insecure-open-registration"],
     "--insecure-open-registration"),
    (["fedavg", "--aggregator", "paillier", "--epsilon", "3"], "--epsilon"),
    (["fedavg", "--aggregator", "plain", "--noise-multiplier", "1"], "--noise-multiplier"),
    (["fedavg", "--aggregator", "plain", "--backend", "ray"], "--backend"),
    (["fedavg", "--aggregator", "plain", "--threshold", "3"], "--threshold"),
    (["fedavg", "--aggregator", "central-dp"], "--noise-multiplier"),
    (["fedavg", "--aggregator", "secagg", "--clients", "4", "--threshold", "1"], "--threshold"),
    (["fedavg", "--clip", "2"], "--clip-norm"),
    (["compare", "--clip", "2"], "--clip-norm"),
    (["demo", "dp", "--clip", "2"], "--clip-norm"),
    (["serve", "--clients", "3", "--dim", "5", "--port", "0", "--out", "{tmp}/s.npy", "--tls-cert", SOME_FILE],
     "--tls-key"),
    (["serve", "--clients", "3", "--dim", "5", "--port", "0", "--out", "{tmp}/s.npy", "--insecure-plaintext",
      "--tls-cert", SOME_FILE, "--tls-key", SOME_FILE], "--insecure-plaintext"),
    (["serve", "--clients", "3", "--dim", "5", "--port", "0", "--out", "{tmp}/s.npy", "--insecure-plaintext",
      "--insecure-open-registration", "--clients-file", SOME_FILE], "--clients-file"),
    (["serve", "--clients", "3", "--dim", "5", "--port", "0", "--out", "{tmp}/s.npy", "--no-consistency-check"],
     "--insecure-honest-but-curious"),
    (["demo", "secure-sum", "--no-consistency-check"], "--adversary honest-but-curious"),
    (["serve", "--clients", "3", "--dim", "5", "--port", "0", "--out", "{tmp}/s.npy", "--clip", "2"], "--bound"),
    (["fedavg", "--aggregator", "plain", "--reproducible-noise"], "--reproducible-noise"),
    (["fedavg", "--aggregator", "secagg", "--dp-unit", "example"], "--dp-unit"),
    (["fedavg", "--aggregator", "central-dp", "--epsilon", "2", "--example-rate", "0.5"], "--example-rate"),
]


def _subcommands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(path, parser) for every runnable subcommand, depth first."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if path:
        yield path, parser
    for action in subs:
        for name, sub in action.choices.items():
            yield from _subcommands(sub, path + (name,))


PARSER = build_parser()
SUBCOMMANDS = [(p, sp) for p, sp in _subcommands(PARSER) if p != ("dp",)]  # `dp` alone needs a calculator


def _value_actions(parser):
    return [a for a in parser._actions if a.option_strings and a.nargs != 0 and a.dest != "help"
            and not isinstance(a, Renamed)]


def _cases():
    for path, parser in SUBCOMMANDS:
        for action in _value_actions(parser):
            flag = max(action.option_strings, key=len)
            if isinstance(action.type, FlagType):
                values = action.type.bad
            elif action.choices is not None:
                values = ("no-such-choice",)
            elif (path[-1], flag) in FREE_TEXT:
                values = (FREE_TEXT[(path[-1], flag)],)
            else:
                continue
            for value in values:
                yield pytest.param(path, flag, value, id=f"{' '.join(path)} {flag} {value}")


def _run(argv, capsys, tmp_path):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_every_subcommand_of_the_help_is_covered():
    names = {p[0] for p, _ in SUBCOMMANDS}
    listed = next(a for a in PARSER._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert names == set(listed) and len(SUBCOMMANDS) >= 12


def test_every_value_flag_is_checked():
    """A value flag is a checking FlagType, a choice, or free text listed above (with its check or reason)."""
    unchecked = []
    for path, parser in SUBCOMMANDS:
        for action in _value_actions(parser):
            flag = max(action.option_strings, key=len)
            if isinstance(action.type, FlagType) or action.choices is not None:
                continue
            if (path[-1], flag) in FREE_TEXT or flag in NOT_CHECKED:
                continue
            unchecked.append(f"{' '.join(path)} {flag}")
    assert not unchecked, f"flags without a check: {unchecked}"


@pytest.mark.parametrize("path, flag, value", list(_cases()))
def test_bad_value_is_one_line_naming_the_flag(path, flag, value, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a command that wrongly ran would write here, not into the repository
    base = list(REQUIRED.get(path, []))
    if flag in base:  # replace the required flag's good value by the bad one
        i = base.index(flag)
        del base[i:i + 2]
    rc, out, err = _run([*path, *base, flag, value], capsys, tmp_path)
    assert rc != 0, out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("secagg: error:") and flag in lines[0], err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == [], "nothing may be written by a refused command"


@pytest.mark.parametrize("argv, flag", CONFLICTS, ids=[" ".join(a[:4]) for a, _ in CONFLICTS])
def test_conflicting_flags_are_one_line_naming_the_flag(argv, flag, capsys, tmp_path, monkeypatch):
    import fl.client

    monkeypatch.setattr(fl.client.Client, "local_update", lambda *a, **k: pytest.fail("trained"))
    monkeypatch.chdir(tmp_path)
    rc, out, err = _run(argv, capsys, tmp_path)
    assert rc != 0, out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("secagg: error:") and flag in lines[0], err
    assert "Traceback" not in err
    assert "=True" not in err and "noise_multiplier" not in err and "target_epsilon" not in err


@pytest.mark.parametrize("path", [p for p, _ in SUBCOMMANDS], ids=[" ".join(p) for p, _ in SUBCOMMANDS])
def test_help_shows_every_default_and_choice(path, capsys):
    parser = dict(SUBCOMMANDS)[path]
    assert main([*path, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for action in _value_actions(parser):
        if action.choices is not None:
            assert all(str(c) in text for c in action.choices), action.option_strings
        if not any(action.default is v for v in (None, False, argparse.SUPPRESS)) and not action.required:
            assert f"default: {action.default}" in text or "default" in (action.help or ""), action.option_strings


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"secagg {__version__}"


def test_delta_is_checked_the_same_way_everywhere(capsys):
    """Issue 14: `dp epsilon --delta 1` printed epsilon = 0 while `dp sigma --delta 1.5` was refused."""
    for argv in (["dp", "epsilon", *REQUIRED[("dp", "epsilon")]], ["dp", "sigma", "--epsilon", "1"],
                 ["fedavg"], ["compare"], ["demo", "dp"]):
        for bad in ("0", "1", "1.5"):
            assert main([*argv, "--delta", bad]) == 2
            assert "argument --delta: must be a number in (0, 1)" in capsys.readouterr().err


def test_library_names_are_translated_to_flags():
    flags = {"allow_low_threshold": "--allow-low-threshold", "noise_multiplier": "--noise-multiplier",
             "epsilon": "--epsilon", "bound": "--bound", "out_of_range": "--out-of-range", "delta": "--delta"}
    assert translate("t too low. Pass allow_low_threshold=True only if trusted.", flags) == \
        "t too low. Pass --allow-low-threshold only if trusted."
    assert translate("give noise_multiplier or target_epsilon", flags) == "give --noise-multiplier or --epsilon"
    assert translate("raise bound= to at least 3, or pass out_of_range='clip' to clip", flags) == \
        "raise --bound to at least 3, or pass --out-of-range clip to clip"
    assert translate("delta must be in (0, 1)", flags) == "--delta must be in (0, 1)"
    # a sentence about a library argument this command has no flag for is dropped, the rest kept
    assert translate("t too low (minimum 3). Pass allow_low_threshold=True only if trusted.", {}) == \
        "t too low (minimum 3)."
    assert translate("noise_multiplier_for failed", flags) == "noise_multiplier_for failed"


def test_demos_write_nothing_unless_asked(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "secure-sum", "--clients", "4", "--dim", "20", "--seed", "1"]) == 0
    assert main(["demo", "dp", "--clients", "4", "--dim", "20", "--rounds", "2"]) == 0
    assert list(tmp_path.iterdir()) == []
    # --out is accepted before or after the demo's name, the same way for every demo
    assert main(["demo", "secure-sum", "--clients", "4", "--dim", "20", "--out", "a"]) == 0
    assert main(["demo", "--out", "b", "dp", "--clients", "4", "--dim", "20", "--rounds", "2"]) == 0
    assert (tmp_path / "a" / "secure_sum_demo.json").exists() and (tmp_path / "b" / "dp_demo.json").exists()


def test_out_of_range_inputs_are_refused_or_clipped_and_counted_on_the_command_line(capsys):
    rc = main(["demo", "secure-sum", "--clients", "4", "--dim", "50", "--bound", "0.5", "--seed", "0"])
    err = capsys.readouterr().err
    assert rc == 1 and "lie outside [-0.5, 0.5]" in err and "--bound" in err and "--out-of-range clip" in err
    assert len(err.strip().splitlines()) == 1
    rc = main(["demo", "secure-sum", "--clients", "4", "--dim", "50", "--bound", "0.5", "--out-of-range", "clip",
               "--seed", "0", "--dropout", "0"])
    out = capsys.readouterr().out
    assert rc == 0 and "exact up to quantization" in out
    clipped = int(out.split("values clipped to the bound 0.5: ")[1].split()[0])
    assert 50 < clipped < 150  # about half of 200 uniform values in [-1, 1]


def test_an_unexpected_exception_is_one_line_not_a_traceback(monkeypatch, capsys):
    import secagg.commands.dp as dp

    def boom(args):
        raise ValueError("something\nbroke")

    monkeypatch.setattr(dp, "run_sigma", boom)
    assert main(["dp", "sigma", "--epsilon", "1"]) == EXIT_BUG
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: ValueError: something broke" in err


def test_the_fl_commands_come_from_a_plugin_and_a_broken_plugin_is_named(monkeypatch, capsys):
    """secagg never imports fl: fl registers fedavg/compare through the secagg.commands
    entry points; a plugin that fails to load is reported when its command is asked for."""
    import importlib.metadata

    import secagg.cli as cli

    src = open(cli.__file__).read()
    assert "fl.cli" not in src and "import fl" not in src
    names = {ep.name for ep in importlib.metadata.entry_points(group=cli.PLUGIN_GROUP)}
    assert "fl" in names

    class Broken:
        name = "fl"

        def load(self):
            raise ImportError("No module named 'sklearn'")

    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [Broken()])
    rc = cli.main(["fedavg", "--rounds", "1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "fl: ImportError: No module named 'sklearn'" in err
    assert cli.main(["params", "--clients", "100"]) == 0  # the rest of the command still works
