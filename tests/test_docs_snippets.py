"""Every code block of README.md and docs/*.md runs (or says why it cannot).

* ```python blocks run in order, one namespace per page (a page reads like a notebook),
  in a temporary folder. A block preceded by ``<!-- skip: reason -->`` never runs (it
  needs a network or a cluster); ``<!-- slow: reason -->`` runs only with ``-m slow``.
  Every marker must give a reason and sit right before a block.
* Every ``secagg ...`` command line in any other block (```bash or plain, with or without
  a ``$`` prompt, ``\\`` continuations joined) must parse with the current flags, so a
  renamed or removed flag in the docs fails here. The cheap calculators (``secagg dp
  epsilon|sigma``) also run, and the output lines the docs show must be what they print.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
MARKER = re.compile(r"<!--\s*(skip|slow)\s*:\s*(.*?)\s*-->")
RUN_COMMANDS = (("dp", "epsilon"), ("dp", "sigma"))  # cheap and deterministic: run and compare output


def _blocks(page: Path):
    """(line, language, code, marker kind or None, reason) for every fenced block of ``page``."""
    text = page.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        before = text[: m.start()].rstrip("\n").splitlines()
        marker = MARKER.fullmatch(before[-1].strip()) if before else None
        line = text[: m.start()].count("\n") + 1
        out.append((line, m.group(1), m.group(2), marker.group(1) if marker else None,
                    marker.group(2) if marker else ""))
    return out


def _subcommands() -> set[str]:
    import argparse

    from secagg.cli import build_parser

    parser = build_parser()
    return {name for a in parser._actions if isinstance(a, argparse._SubParsersAction) for name in a.choices}


def _commands(code: str):
    """``(line, output lines)`` for every ``secagg ...`` command in a shell or plain block.

    A line is a command when it starts with ``secagg`` (after an optional ``$ `` prompt)
    followed by a subcommand or an option, so a table row named "secagg" is not one.
    """
    lines = code.replace("\\\n", " ").splitlines()
    known = _subcommands()
    found = []
    for i, raw in enumerate(lines):
        line = raw.strip()
        if line.startswith("$ "):
            line = line[2:]
        words = line.split()
        if not words or words[0] != "secagg" or (len(words) > 1 and words[1] not in known
                                                 and not words[1].startswith("-")):
            continue
        output = []
        if raw.strip().startswith("$ "):  # a console transcript: output follows until the next prompt
            for nxt in lines[i + 1:]:
                if nxt.strip().startswith("$ "):
                    break
                output.append(nxt.strip())
        found.append((line.split(" #")[0].strip(), output))
    return found


def test_every_page_is_checked_and_every_marker_has_a_reason():
    assert len(PAGES) >= 12
    text_markers = 0
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        text_markers += len(MARKER.findall(text))
        marked = [b for b in _blocks(page) if b[3]]
        assert len(marked) == len(MARKER.findall(text)), f"{page.name}: a skip/slow marker is not right before a block"
        for line, _, _, kind, reason in marked:
            assert len(reason.split()) >= 3, f"{page.name}:{line}: '{kind}' needs a reason"


def _run_page(page: Path, tmp_path, monkeypatch, *, slow: bool) -> int:
    import secagg.aggregators as agg

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(agg, "_REGISTRY", dict(agg._REGISTRY))  # a page may register an aggregator
    ns: dict = {"__name__": f"docs_{page.stem}"}
    ran = 0
    for line, lang, code, kind, reason in _blocks(page):
        if lang != "python" or kind == "skip" or (kind == "slow" and not slow):
            continue
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                exec(compile(code, f"{page.name}:{line}", "exec"), ns)
            except Exception as exc:  # noqa: BLE001 - report which block, then fail
                pytest.fail(f"{page.name}:{line}: {type(exc).__name__}: {exc}")
        ran += 1
    return ran


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_python_blocks_run(page, tmp_path, monkeypatch):
    _run_page(page, tmp_path, monkeypatch, slow=False)


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if "<!-- slow" in p.read_text(encoding="utf-8")],
                         ids=lambda p: p.name)
def test_slow_python_blocks_run(page, tmp_path, monkeypatch):
    assert _run_page(page, tmp_path, monkeypatch, slow=True) > 0


def _all_commands():
    for page in PAGES:
        for line, lang, code, kind, _ in _blocks(page):
            if lang == "python" or kind == "skip":
                continue
            for cmd, output in _commands(code):
                yield pytest.param(cmd, output, id=f"{page.name}:{line} {cmd[:50]}")


def _create_input_files(parser, argv: list[str], root: Path) -> None:
    """Create (empty) the files the command reads (flags of type ``in_file``) under ``root``, so a
    command line that names a key or a certificate parses; its content is not checked here."""
    import argparse

    from secagg.commands._args import in_file

    for word in argv:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or word not in subs[0].choices:
            break
        parser = subs[0].choices[word]
    reads = {o for a in parser._actions if a.type is in_file for o in a.option_strings}
    for flag, value in zip(argv, argv[1:]):
        if flag in reads and not Path(value).is_absolute():
            (root / value).parent.mkdir(parents=True, exist_ok=True)
            (root / value).touch()


@pytest.mark.parametrize("cmd, output", list(_all_commands()))
def test_shell_commands_in_the_docs_parse_and_the_cheap_ones_print_what_the_docs_show(cmd, output, capsys,
                                                                                     tmp_path, monkeypatch):
    from secagg.cli import build_parser, main

    argv = shlex.split(cmd)[1:]
    monkeypatch.chdir(tmp_path)
    _create_input_files(build_parser(), argv, tmp_path)
    if {"--help", "-h", "--version"} & set(argv):
        assert main(argv) == 0, cmd
        return
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"`{cmd}` does not parse: {capsys.readouterr().err.strip()}")
    assert getattr(args, "func", None) is not None or argv in ([], ["--help"]), cmd
    if tuple(argv[:2]) in RUN_COMMANDS:
        assert main(argv) == 0
        printed = [ln.strip() for ln in capsys.readouterr().out.splitlines()]
        for expected in output:
            assert expected in printed, f"`{cmd}` no longer prints {expected!r}: {printed}"
