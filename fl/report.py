"""Tables, PNG plots and JSON for the federated experiments (demo and compare).

Plots use matplotlib's non-interactive Agg backend (no display needed). JSON is written
with numpy scalars and arrays converted to plain Python, NaN written as null.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

__all__ = [
    "write_json",
    "markdown_table",
    "plot_accuracy_vs_round",
    "plot_accuracy_vs_epsilon",
    "plot_bytes_per_round",
]


def to_jsonable(obj: Any) -> Any:
    """Recursively convert numpy types, tuples and non-finite floats into JSON-ready values."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def write_json(obj: Any, path: str | os.PathLike) -> str:
    """Write ``obj`` as indented JSON (via :func:`to_jsonable`); returns the path."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(to_jsonable(obj), fh, indent=2, allow_nan=False)
        fh.write("\n")
    return str(path)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if not math.isfinite(f):
            return "-"
        if f != 0 and (abs(f) >= 1e5 or abs(f) < 1e-3):
            return f"{f:.3g}"
        return f"{f:.4g}" if abs(f) >= 1 else f"{f:.4f}"
    return str(v)


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """A GitHub markdown table; ``columns`` is a list of ``(key, header)``."""
    head = "| " + " | ".join(h for _, h in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(_fmt(r.get(k)) for k, _ in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def fixed_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """A fixed-width plain-text table for the terminal."""
    cells = [[h for _, h in columns]] + [[_fmt(r.get(k)) for k, _ in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(row, widths)))
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


#: one (marker, linestyle) per series, in order: overlapping lines stay distinguishable
SERIES_STYLES = (("o", "-"), ("s", "--"), ("^", "-."), ("D", ":"), ("v", "-"), ("P", "--"), ("X", "-."),
                 ("*", ":"), ("<", "-"), (">", "--"))


def identical_groups(curves: Mapping[str, Sequence[float]]) -> list[list[str]]:
    """Names of the curves that are identical (same length, equal values), in order; groups of >= 2."""
    groups: list[list[str]] = []
    for name, values in curves.items():
        for g in groups:
            ref = curves[g[0]]
            if len(ref) == len(values) and np.array_equal(np.asarray(ref, float), np.asarray(values, float)):
                g.append(name)
                break
        else:
            groups.append([name])
    return [g for g in groups if len(g) > 1]


def plot_accuracy_vs_round(curves: Mapping[str, Sequence[float]], path: str | os.PathLike,
                           title: str = "Test accuracy per FedAvg round") -> str:
    """One line per technique: ``curves[name]`` = accuracy after each round.

    Rounds are integer ticks. Each series has its own marker and line style; curves that
    are identical are drawn with their markers on staggered rounds (so each stays visible)
    and are named in a note under the plot.
    """
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    same = identical_groups(curves)
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    for i, (name, acc) in enumerate(curves.items()):
        marker, ls = SERIES_STYLES[i % len(SERIES_STYLES)]
        group = next((g for g in same if name in g), [name])
        # identical curves: a marker every len(group) rounds, shifted per series, so none hides another
        every = (group.index(name), len(group)) if len(group) > 1 else None
        ax.plot(np.arange(1, len(acc) + 1), acc, marker=marker, linestyle=ls, markevery=every, markersize=5,
                label=name, alpha=0.9)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    if same:
        note = "identical curves (markers staggered): " + "; ".join(" = ".join(g) for g in same)
        fig.text(0.01, 0.01, note, fontsize=7.5, wrap=True)
    fig.tight_layout(rect=(0, 0.05 if same else 0, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def plot_accuracy_vs_epsilon(series: Mapping[str, Iterable[tuple[float, float, float | None]]],
                             path: str | os.PathLike, baseline: float | None = None,
                             title: str = "Accuracy vs privacy budget") -> str:
    """``series[name]`` = iterable of ``(epsilon, mean accuracy, std error)``; log-x axis, ticks at the epsilons.

    A std error of ``None`` (one seed: no spread to measure) draws the series without
    error bars and says so in its label.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, (name, pts) in enumerate(series.items()):
        pts = sorted(pts, key=lambda p: p[0])
        e, a = (np.array(v, dtype=float) for v in list(zip(*pts))[:2])
        errs = [p[2] for p in pts]
        marker, ls = SERIES_STYLES[i % len(SERIES_STYLES)]
        if any(v is None for v in errs):
            ax.plot(e, a, marker=marker, linestyle=ls, label=f"{name} (one seed: no error bar)")
        else:
            ax.errorbar(e, a, yerr=np.array(errs, dtype=float), marker=marker, linestyle=ls, capsize=3,
                        label=f"{name} (mean +- std. error)")
    if baseline is not None:
        ax.axhline(baseline, color="gray", ls="--", label="no DP (plain FedAvg)")
    ax.set_xscale("log")
    # label the measured epsilons themselves; log-axis minor labels overlap at this range
    ticks: list[float] = []
    for t in sorted(float(p[0]) for pts in series.values() for p in pts):
        if not ticks or t > ticks[-1] * 1.02:  # one tick for epsilons within 2 % (same label)
            ticks.append(t)
    if ticks:
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{t:.3g}" for t in ticks], rotation=45 if len(ticks) > 6 else 0)
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_xlabel("epsilon (delta = 1e-5)")
    ax.set_ylabel("final test accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def plot_bytes_per_round(bytes_up: Mapping[str, float], bytes_down: Mapping[str, float], path: str | os.PathLike,
                         title: str = "Bytes per client per round") -> str:
    """Grouped bars on a linear axis: mean bytes up and down per client per round, per technique.

    Each bar is labelled with its value; the legend sits outside the axes, beside the bars.
    """
    plt = _plt()
    names = list(bytes_up)
    x = np.arange(len(names))
    up = [float(bytes_up[n]) for n in names]
    down = [float(bytes_down.get(n, 0.0)) for n in names]
    fig, ax = plt.subplots(figsize=(8, 4.6))
    bars_up = ax.bar(x - 0.2, up, width=0.4, label="up (client -> server)")
    bars_down = ax.bar(x + 0.2, down, width=0.4, label="down (incl. model)", hatch="//", edgecolor="white")
    for bars in (bars_up, bars_down):
        ax.bar_label(bars, labels=[f"{v:,.0f}" for v in bars.datavalues], fontsize=6.5, rotation=90, padding=2)
    ax.set_xticks(x, names, rotation=25, ha="right")
    ax.set_ylim(0, 1.18 * max(up + down + [1.0]))  # room for the value labels
    ax.set_ylabel("bytes per client per round")
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)
