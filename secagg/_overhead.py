"""Measure what privacy costs: the overhead sweep behind ``secagg bench``.

For each technique (plain sum, SecAgg, SecAgg+, packed Paillier, distributed DP, and
scalar python-paillier as a reference) and each point of a sweep over the number of
clients ``n`` and the vector length ``d``, run the technique through its
:class:`~secagg.aggregators.Aggregator` and record

* client time (median seconds of protocol/crypto work per client),
* server time (seconds of server work: unmasking, homomorphic adds, decryption),
* bytes each client sends and receives (from the real serialized messages),
* expansion = bytes a client sends / ``4 d`` (the float32 vector it would send in clear),
* the ratio of client and server time to the plain sum measured *in the same run*.

Each point is repeated ``repeats`` times; min and median are reported. Growth with n
and d is summarized by the slope of a least-squares line in log-log space (the fitted
exponent: 1 means linear growth, 0 constant).

The scalar ``phe`` reference encrypts one float per ciphertext; running it for every
element would take minutes, so its per-element encrypt/add/decrypt costs are timed on
a sample and scaled to ``d`` (marked ``extrapolated`` in the report). Every other number
is measured end to end.
"""

from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .aggregators import make_aggregator
from .errors import ConfigurationError

__all__ = [
    "BenchPoint",
    "SweepConfig",
    "PRESETS",
    "DEFAULT_TECHNIQUES",
    "run_sweep",
    "fit_exponent",
    "write_plots",
    "write_report",
]

#: techniques swept by default; names are aggregator names plus "phe-scalar"
DEFAULT_TECHNIQUES = ("plain", "secagg", "secagg+", "paillier", "distributed-dp", "phe-scalar")


@dataclass(frozen=True)
class SweepConfig:
    """What to sweep. ``n_values`` run at ``d_fixed``; ``d_values`` run at ``n_fixed``."""

    n_values: tuple[int, ...]
    d_values: tuple[int, ...]
    n_fixed: int
    d_fixed: int
    repeats: int = 3
    key_bits: int = 2048
    techniques: tuple[str, ...] = DEFAULT_TECHNIQUES
    dropout: float = 0.0
    seed: int = 0

    def points(self) -> list[tuple[int, int, str]]:
        """(n, d, axis) pairs in run order; the shared point appears once per axis."""
        pts = [(n, self.d_fixed, "n") for n in self.n_values]
        pts += [(self.n_fixed, d, "d") for d in self.d_values]
        return pts


#: presets: quick finishes in under a minute here, default in about five
PRESETS: dict[str, SweepConfig] = {
    "quick": SweepConfig(n_values=(4, 8, 16), d_values=(256, 1024, 4096), n_fixed=8, d_fixed=1024, repeats=2),
    "default": SweepConfig(
        n_values=(16, 32, 64, 128), d_values=(1_000, 10_000, 100_000), n_fixed=32, d_fixed=10_000, repeats=3
    ),
    "large": SweepConfig(
        n_values=(64, 128, 256, 512, 1024), d_values=(10_000, 100_000, 1_000_000), n_fixed=128,
        d_fixed=100_000, repeats=3,
    ),
}


@dataclass
class BenchPoint:
    """One technique at one (n, d): min and median over repeats."""

    technique: str
    n: int
    d: int
    axis: str
    client_seconds_min: float
    client_seconds_median: float
    server_seconds_min: float
    server_seconds_median: float
    bytes_up: float
    bytes_down: float
    expansion: float
    client_ratio_to_plain: float | None = None
    server_ratio_to_plain: float | None = None
    extrapolated: bool = False
    note: str = ""


def _technique_options(name: str, cfg: SweepConfig, n: int) -> dict[str, Any]:
    # inputs are uniform in [-1, 1]: the default per-coordinate bound 1.0 holds them all
    if name == "paillier":
        return {"bound": 1.0, "key_bits": cfg.key_bits, "obfuscation": "fast"}
    if name == "distributed-dp":
        return {"clip_norm": 1.0, "noise_multiplier": 1.0}
    return {}


def _measure_aggregator(name: str, cfg: SweepConfig, n: int, d: int, rng: np.random.Generator, factory_cache: dict):
    key = (name, n)
    if key not in factory_cache:
        factory_cache[key] = make_aggregator(name, **_technique_options(name, cfg, n))
    agg = factory_cache[key]
    updates = rng.uniform(-1.0, 1.0, size=(n, d))
    dropout = cfg.dropout if cfg.dropout > 0 else None
    res = agg.aggregate(updates, dropout=dropout, rng=rng)
    survivors = res.survivors
    client = float(np.median(res.client_seconds[survivors])) if len(survivors) else 0.0
    up = float(np.mean(res.bytes_up[survivors])) if len(survivors) else 0.0
    down = float(np.mean(res.bytes_down[survivors])) if len(survivors) else 0.0
    return client, float(res.server_seconds), up, down


def _measure_phe_scalar(cfg: SweepConfig, n: int, d: int, rng: np.random.Generator, cache: dict):
    """Per-element python-paillier costs on a sample, scaled to d elements and n clients."""
    import phe

    if "phe" not in cache:
        pk, sk = phe.generate_paillier_keypair(n_length=cfg.key_bits)
        sample = rng.uniform(-1.0, 1.0, size=8)
        t0 = time.perf_counter()
        cts = [pk.encrypt(float(v)) for v in sample]
        t_enc = (time.perf_counter() - t0) / len(sample)
        t0 = time.perf_counter()
        acc = cts[0]
        for c in cts[1:]:
            acc = acc + c
        t_add = (time.perf_counter() - t0) / (len(cts) - 1)
        t0 = time.perf_counter()
        for c in cts[:4]:
            sk.decrypt(c)
        t_dec = (time.perf_counter() - t0) / 4
        # one ciphertext is an element of Z_{n^2}: 2 * key_bits / 8 bytes at fixed width
        cache["phe"] = (t_enc, t_add, t_dec, 2 * cfg.key_bits // 8)
    t_enc, t_add, t_dec, ct_bytes = cache["phe"]
    client = d * t_enc
    server = (n - 1) * d * t_add + d * t_dec
    return client, server, float(d * ct_bytes), 0.0


def run_sweep(
    cfg: SweepConfig,
    *,
    progress: bool = True,
    on_point: Callable[[BenchPoint], None] | None = None,
) -> list[BenchPoint]:
    """Run the sweep; returns one :class:`BenchPoint` per technique and (n, d) point.

    Techniques whose aggregator is not installed are skipped with a note on stderr.
    """
    unknown = [t for t in cfg.techniques if t != "phe-scalar" and t not in _known_aggregators()]
    if unknown:
        raise ConfigurationError(f"unknown techniques {unknown}; choose from {list(DEFAULT_TECHNIQUES)}")
    rng = np.random.default_rng(cfg.seed)
    cache: dict = {}
    points = cfg.points()
    techniques = list(cfg.techniques)
    if "plain" not in techniques:
        techniques.insert(0, "plain")  # the ratio baseline is always measured
    total = len(points) * len(techniques) * cfg.repeats
    bar = _progress(total, progress)
    results: list[BenchPoint] = []
    try:
        for n, d, axis in points:
            plain_point: BenchPoint | None = None
            for tech in techniques:
                runs = []
                for _ in range(cfg.repeats):
                    bar.set_description(f"{tech:>14} n={n} d={d}")
                    if tech == "phe-scalar":
                        runs.append(_measure_phe_scalar(cfg, n, d, rng, cache))
                    else:
                        runs.append(_measure_aggregator(tech, cfg, n, d, rng, cache))
                    bar.update(1)
                arr = np.array(runs, dtype=float)
                point = BenchPoint(
                    technique=tech,
                    n=n,
                    d=d,
                    axis=axis,
                    client_seconds_min=float(arr[:, 0].min()),
                    client_seconds_median=float(np.median(arr[:, 0])),
                    server_seconds_min=float(arr[:, 1].min()),
                    server_seconds_median=float(np.median(arr[:, 1])),
                    bytes_up=float(arr[:, 2].mean()),
                    bytes_down=float(arr[:, 3].mean()),
                    expansion=float(arr[:, 2].mean() / (4.0 * d)),
                    extrapolated=tech == "phe-scalar",
                    note="per-element costs timed on 8 values, scaled to d" if tech == "phe-scalar" else "",
                )
                if tech == "plain":
                    plain_point = point
                elif plain_point is not None:
                    point.client_ratio_to_plain = _ratio(point.client_seconds_min, plain_point.client_seconds_min)
                    point.server_ratio_to_plain = _ratio(point.server_seconds_min, plain_point.server_seconds_min)
                if tech in cfg.techniques:
                    results.append(point)
                    if on_point:
                        on_point(point)
    finally:
        bar.close()
    return results


def _known_aggregators() -> set[str]:
    from .aggregators import available_aggregators

    return set(available_aggregators())


def _ratio(a: float, b: float) -> float | None:
    # the plain client does no crypto work (0 s); a ratio is only meaningful over a positive base
    return a / b if b > 0 else None


class _NullBar:
    def set_description(self, *_a) -> None: ...
    def update(self, *_a) -> None: ...
    def close(self) -> None: ...


def _progress(total: int, enabled: bool):
    if not enabled:
        return _NullBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="run", leave=False)


def fit_exponent(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Slope of log(y) against log(x) by least squares (None with < 2 positive points)."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x > 0 and y > 0]
    if len(pts) < 2 or len({p[0] for p in pts}) < 2:
        return None
    a = np.array(pts)
    return float(np.polyfit(a[:, 0], a[:, 1], 1)[0])


def _exponents(points: Iterable[BenchPoint]) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    pts = list(points)
    for tech in dict.fromkeys(p.technique for p in pts):
        row: dict[str, float | None] = {}
        for axis in ("n", "d"):
            sel = [p for p in pts if p.technique == tech and p.axis == axis]
            xs = [getattr(p, axis) for p in sel]
            row[f"client_vs_{axis}"] = fit_exponent(xs, [p.client_seconds_median for p in sel])
            row[f"server_vs_{axis}"] = fit_exponent(xs, [p.server_seconds_median for p in sel])
            row[f"bytes_vs_{axis}"] = fit_exponent(xs, [p.bytes_up for p in sel])
        out[tech] = row
    return out


def _fmt_s(v: float) -> str:
    if v == 0:
        return "0"
    if v < 1e-3:
        return f"{v * 1e6:.0f} µs"
    if v < 1:
        return f"{v * 1e3:.1f} ms"
    return f"{v:.2f} s"


def _fmt_b(v: float) -> str:
    for unit, k in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if v >= k:
            return f"{v / k:.2f} {unit}"
    return f"{v:.0f} B"


def _fmt_r(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f}x"


def markdown_table(points: Sequence[BenchPoint]) -> str:
    """The report's main table (one row per technique and point)."""
    head = (
        "| technique | n | d | client (min / median) | server (min / median) | up / client | "
        "down / client | expansion | client / plain | server / plain |\n"
        "|---|---:|---:|---|---|---:|---:|---:|---:|---:|\n"
    )
    rows = []
    for p in points:
        tech = p.technique + (" *" if p.extrapolated else "")
        rows.append(
            f"| {tech} | {p.n} | {p.d} | {_fmt_s(p.client_seconds_min)} / {_fmt_s(p.client_seconds_median)} | "
            f"{_fmt_s(p.server_seconds_min)} / {_fmt_s(p.server_seconds_median)} | {_fmt_b(p.bytes_up)} | "
            f"{_fmt_b(p.bytes_down)} | {p.expansion:.2f}x | {_fmt_r(p.client_ratio_to_plain)} | "
            f"{_fmt_r(p.server_ratio_to_plain)} |"
        )
    return head + "\n".join(rows) + "\n"


#: one look per technique, the same in every plot: marker, line style, hollow marker, marker size.
#: secagg (hollow, large) and secagg+ (filled, small) stay visible when their lines coincide.
_STYLES = {
    "plain": ("o", "-", False, 6),
    "secagg": ("s", "-", True, 9),
    "secagg+": ("^", "--", False, 5),
    "paillier": ("D", "-.", False, 6),
    "distributed-dp": ("v", ":", False, 6),
    "phe-scalar": ("x", ":", False, 7),
}
_FALLBACK_MARKERS = ("P", "X", "*", "<", ">", "h")


def _tick_label(v: float) -> str:
    """Short label of a measured value: 4, 1024, 10k, 100k, 1M."""
    v = int(v)
    for unit, div in (("M", 1_000_000), ("k", 1_000)):
        if v >= div and v % div == 0:
            return f"{v // div}{unit}"
    return str(v)


def _plot(points: Sequence[BenchPoint], axis: str, metric: str, ylabel: str, path: Path) -> None:
    """One line per technique against n or d, log-log, ticks at the measured values.

    Each technique has its own marker and line style; extrapolated series (scalar phe)
    say so in the legend.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.6, 4.4))
    measured: set[int] = set()
    for i, tech in enumerate(dict.fromkeys(p.technique for p in points)):
        sel = sorted((p for p in points if p.technique == tech and p.axis == axis), key=lambda p: getattr(p, axis))
        xs = [getattr(p, axis) for p in sel]
        ys = [getattr(p, metric) for p in sel]
        if not any(y > 0 for y in ys):
            continue
        measured.update(xs)
        slope = fit_exponent(xs, ys)
        label = f"{tech} (slope {round(slope, 2) + 0.0:.2f})" if slope is not None else tech  # no "-0.00"
        if sel and sel[0].extrapolated:
            label += ", extrapolated from a sample"
        marker, ls, hollow, size = _STYLES.get(tech, (_FALLBACK_MARKERS[i % len(_FALLBACK_MARKERS)], "-", False, 6))
        line = ax.plot(xs, ys, marker=marker, linestyle=ls, markersize=size, label=label)[0]
        if hollow:
            line.set_markerfacecolor("none")
            line.set_markeredgewidth(1.5)
    ax.set_xscale("log")
    ax.set_yscale("log")
    if measured:  # ticks exactly at the measured n or d, no minor labels to collide with them
        ticks = sorted(measured)
        ax.set_xticks(ticks)
        ax.set_xticklabels([_tick_label(t) for t in ticks])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    fixed = points[0].d if axis == "n" else points[0].n
    other = "d" if axis == "n" else "n"
    fixed = next((getattr(p, other) for p in points if p.axis == axis), fixed)
    ax.set_xlabel("clients n" if axis == "n" else "vector length d")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{ylabel} vs {axis} ({other} = {fixed:,})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_plots(points: Sequence[BenchPoint], folder: str | Path) -> list[str]:
    """Draw client time, server time and bytes up against n and against d into ``folder``.

    Returns the file names (``client_time_vs_n.png`` ...). Points come from
    :func:`run_sweep` or from a saved ``report.json`` (``BenchPoint(**p)`` for each point).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    plots = []
    for axis in ("n", "d"):
        for metric, label in (
            ("client_seconds_median", "client seconds"),
            ("server_seconds_median", "server seconds"),
            ("bytes_up", "bytes up per client"),
        ):
            name = {"client_seconds_median": "client_time", "server_seconds_median": "server_time"}.get(
                metric, "bytes_up"
            ) + f"_vs_{axis}.png"
            _plot(points, axis, metric, label, folder / name)
            plots.append(name)
    return plots


def write_report(points: Sequence[BenchPoint], cfg: SweepConfig, out: str | Path, *, wall_seconds: float) -> Path:
    """Write ``report.md``, ``report.json`` and PNG plots into ``out``; returns the folder."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    exps = _exponents(points)
    meta = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "numpy": np.__version__,
        "wall_seconds": wall_seconds,
        "config": asdict(cfg),
    }
    (folder / "report.json").write_text(
        json.dumps({"meta": meta, "points": [asdict(p) for p in points], "exponents": exps}, indent=2)
    )
    plots = write_plots(points, folder)
    lines = [
        "# secagg overhead report",
        "",
        f"Measured on {meta['machine']} with Python {meta['python']}, numpy {meta['numpy']}; "
        f"{cfg.repeats} repeats per point (min / median); Paillier keys of {cfg.key_bits} bits "
        f"with the fast obfuscator; dropout {cfg.dropout:.0%}. Sweep took {wall_seconds:.0f} s.",
        "",
        "Ratios compare with the plain sum measured in the same run (a plain client only "
        "serializes its float32 vector, so client ratios are large by construction). "
        "Expansion is bytes a client sends divided by 4d. `*` marks the scalar python-paillier "
        "reference, whose per-element costs are timed on a sample and scaled to d.",
        "",
        markdown_table(points),
        "## Growth exponents (slope of log cost vs log n or log d)",
        "",
        "| technique | client vs n | server vs n | bytes vs n | client vs d | server vs d | bytes vs d |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for tech, row in exps.items():
        vals = [row[k] for k in ("client_vs_n", "server_vs_n", "bytes_vs_n", "client_vs_d", "server_vs_d", "bytes_vs_d")]
        lines.append(f"| {tech} | " + " | ".join("–" if v is None else f"{v:.2f}" for v in vals) + " |")
    lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    (folder / "report.md").write_text("\n".join(lines))
    return folder
