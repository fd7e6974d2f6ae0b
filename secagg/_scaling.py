"""How SecAgg+ scales on one machine: the scaling table behind ``secagg bench --scaling``.

For each ``(n, d)`` the sweep runs one SecAgg+ session (sparse graph, the parameter
finder's ``k`` and ``t`` for the default threat model, 5% of the clients dropping
before their masked input, so the server must rebuild their mask keys) in a fresh
subprocess, and reports

* per-client seconds and bytes (median over clients; all protocol work of the client:
  key agreements, signature checks, shares, masks, message encoding),
* server seconds, the wall time of the whole session, and the process's peak memory,
* the **floor**, measured inside the run itself: the X25519 agreements the session
  performed (clients and server), each timed in CPU seconds as it ran, plus the AES-CTR
  keystream the masks needed (bytes counted while it ran) at the keystream throughput
  measured in the same process; ``ratio = session CPU seconds / floor`` (CPU time, so
  that other load on a shared machine does not move the ratio; on an idle machine it
  equals wall time). Timing the agreements where they happen makes the floor follow the
  machine's state during the run (frequency, caches); a 2,000-agreement micro-benchmark
  before the run varied from 30 to 43 us on this machine, which moved the ratio by 40%.
  The micro-benchmark figure is kept beside it (``agreement_bench_us``). The clients'
  Ed25519 checks of their neighbours' signed keys are required against an active server
  but are not agreements; ``ratio_pk`` also counts them (timed the same way) in the
  floor (a public-key floor).

From the largest measured ``n`` it projects ``n = 10^5`` and ``10^6``: per-client cost
grows with the graph degree ``k`` (agreements, signatures, shares) plus the ``O(n)``
survivor bitmaps, so per-client seconds and bytes are scaled by ``k(n)/k(n0)`` (plus the
bitmap bytes), and the one-machine wall time by ``n k(n) / (n0 k(n0))``. The projection
assumes the per-agreement cost and per-client overheads measured at ``n0`` stay constant
(no cache or memory effects), one process, and the same dropout rate.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["ScalePoint", "measure", "run_scaling", "project", "scaling_table", "write_scaling_report"]

#: the grid of the issue: n x d
DEFAULT_N = (100, 1_000, 10_000)
DEFAULT_D = (10, 10_000)


@dataclass
class ScalePoint:
    """One SecAgg+ session at ``(n, d)``. Seconds are wall-clock, bytes are serialized
    message bytes, memory is the process's peak resident set (MiB)."""

    n: int
    d: int
    k: int
    threshold: int
    dropout: float
    wall_seconds: float
    cpu_seconds: float  # CPU time of the process running the session (robust to other load)
    client_seconds: float  # median over clients of all its protocol work
    client_bytes_up: float  # median over clients
    client_bytes_down: float
    server_seconds: float
    peak_rss_mib: float
    baseline_rss_mib: float  # the process before the session (interpreter, numpy, inputs)
    agreements: int
    agreement_us: float  # mean CPU time of one agreement inside the session
    signature_checks: int
    verify_us: float  # mean CPU time of one signature check inside the session
    keystream_bytes: int
    keystream_gib_per_s: float
    floor_seconds: float
    ratio: float
    ratio_pk: float
    survivors: int
    projected: bool = False
    note: str = ""
    round_seconds: dict[str, float] = field(default_factory=dict)
    agreement_bench_us: float = 0.0  # micro-benchmark of one agreement just before the session


def _time_agreement(reps: int = 2000) -> float:
    """Median over 5 batches of one X25519 agreement's CPU seconds (``cryptography``)."""
    from . import keys

    a, b = keys.AgreementKey.generate(), keys.AgreementKey.generate().public_bytes()
    times = []
    for _ in range(5):
        t0 = time.process_time()
        for _ in range(reps // 5):
            a.exchange(b)
        times.append((time.process_time() - t0) / (reps // 5))
    return float(np.median(times))


def _keystream_rate(nbytes: int = 1 << 26) -> float:
    """Raw AES-256-CTR keystream throughput (bytes/s) of :mod:`secagg.prg`, best of 3."""
    from . import prg

    best = float("inf")
    acc = np.zeros(nbytes // 4, dtype=np.uint32)
    for _ in range(3):
        t0 = time.process_time()
        prg.add_mask(acc, bytes(32), 1)
        best = min(best, time.process_time() - t0)
    return nbytes / best


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(n: int, d: int, *, dropout: float = 0.05, seed: int = 0) -> ScalePoint:
    """Run one session at ``(n, d)`` in this process, counting agreements, signature
    checks and keystream bytes while it runs, and return the point (peak memory is this
    process's: run it in a fresh process for a clean figure, as :func:`run_scaling` does)."""
    from unittest import mock

    from . import keys, prg
    from .masking import simulate_ring

    bench_agreement_s, rate = _time_agreement(), _keystream_rate()
    x = np.random.default_rng(seed).integers(0, 2**32, (n, d), dtype=np.uint64).astype(np.uint32)
    baseline = _rss_mib()
    count = {"agree": 0, "verify": 0, "stream": 0}
    spent = {"agree": 0.0, "verify": 0.0}  # CPU seconds inside the real calls
    clock = time.process_time
    exchange, verify = keys.AgreementKey.exchange, keys.verify_signature
    add_mask, add_masks = prg.add_mask, prg.add_masks

    def counted_exchange(self, peer):
        count["agree"] += 1
        c = clock()
        try:
            return exchange(self, peer)
        finally:
            spent["agree"] += clock() - c

    def counted_verify(*a, **kw):
        count["verify"] += 1
        c = clock()
        try:
            return verify(*a, **kw)
        finally:
            spent["verify"] += clock() - c

    def counted_mask(acc, seed, sign, **kw):
        count["stream"] += int(np.asarray(acc).nbytes)
        return add_mask(acc, seed, sign, **kw)

    def counted_masks(acc, seeds, signs, **kw):
        seeds = list(seeds)
        count["stream"] += int(np.asarray(acc).nbytes) * len(seeds)
        return add_masks(acc, seeds, signs, **kw)

    with mock.patch.object(keys.AgreementKey, "exchange", counted_exchange), \
            mock.patch.object(keys, "verify_signature", counted_verify), \
            mock.patch.object(prg, "add_mask", counted_mask), mock.patch.object(prg, "add_masks", counted_masks):
        t0, c0 = time.perf_counter(), time.process_time()
        res = simulate_ring(x, bits=32, graph="sparse", dropout=dropout or None, rng=np.random.default_rng(seed + 1))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    costs = res.costs
    clients = np.asarray(res.survivors, dtype=np.int64)
    per_client = np.sum([np.asarray(v) for v in costs.client_seconds.values()], axis=0)
    up = np.sum([np.asarray(v) for v in costs.bytes_up.values()], axis=0)
    down = np.sum([np.asarray(v) for v in costs.bytes_down.values()], axis=0)
    agreement_s = spent["agree"] / max(count["agree"], 1)
    verify_s = spent["verify"] / max(count["verify"], 1)
    floor = spent["agree"] + count["stream"] / rate
    return ScalePoint(
        n=n, d=d, k=int(res.config.k or n - 1), threshold=int(res.config.threshold or 0), dropout=dropout,
        wall_seconds=wall, cpu_seconds=cpu,
        client_seconds=float(np.median(per_client[clients])), client_bytes_up=float(np.median(up[clients])),
        client_bytes_down=float(np.median(down[clients])), server_seconds=float(sum(costs.server_seconds.values())),
        peak_rss_mib=_rss_mib(), baseline_rss_mib=baseline, agreements=count["agree"],
        agreement_us=agreement_s * 1e6, signature_checks=count["verify"], verify_us=verify_s * 1e6,
        keystream_bytes=count["stream"], keystream_gib_per_s=rate / 2**30, floor_seconds=floor,
        ratio=cpu / floor, ratio_pk=cpu / (floor + spent["verify"]), survivors=len(clients),
        round_seconds={r: float(s) for r, s in costs.round_seconds.items()},
        agreement_bench_us=bench_agreement_s * 1e6,
    )


def _measure_in_subprocess(n: int, d: int, dropout: float, seed: int, timeout: float | None) -> ScalePoint:
    """:func:`measure` in a fresh interpreter, so its peak memory is this point's alone."""
    cmd = [sys.executable, "-m", "secagg._scaling", str(n), str(d), str(dropout), str(seed)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONHASHSEED": "0"})
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the scaling point n={n}, d={d} failed: {last}")
    return ScalePoint(**json.loads(proc.stdout.strip().splitlines()[-1]))


def run_scaling(n_values: Sequence[int] = DEFAULT_N, d_values: Sequence[int] = DEFAULT_D, *, dropout: float = 0.05,
                seed: int = 0, progress: bool = True, timeout: float | None = None) -> list[ScalePoint]:
    """Measure every ``(n, d)`` of the grid, each in its own subprocess (smallest first)."""
    grid = [(n, d) for n in sorted(n_values) for d in sorted(d_values)]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(grid), unit="point", leave=False)
    points = []
    try:
        for n, d in grid:
            if bar is not None:
                bar.set_description(f"n={n:,} d={d:,}")
            points.append(_measure_in_subprocess(n, d, dropout, seed, timeout))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return points


def project(points: Sequence[ScalePoint], targets: Sequence[int] = (100_000, 1_000_000)) -> list[ScalePoint]:
    """Projected points for ``targets`` from the largest measured ``n`` at each ``d``
    (the assumptions are in the module docstring and in each point's ``note``)."""
    from .masking.params import ThreatModel, find_parameters

    out = []
    for d in sorted({p.d for p in points}):
        base = max((p for p in points if p.d == d), key=lambda p: p.n)
        bitmap0 = 2 * (4 + (base.n + 7) // 8)  # the survivor bitmaps a client receives (two requests)
        for n in targets:
            prm = find_parameters(n, ThreatModel())
            grow = prm.k / base.k
            bitmap = 2 * (4 + (n + 7) // 8)
            work = n * prm.k / (base.n * base.k)
            out.append(ScalePoint(
                n=n, d=d, k=prm.k, threshold=prm.threshold, dropout=base.dropout,
                wall_seconds=base.wall_seconds * work, cpu_seconds=base.cpu_seconds * work,
                client_seconds=base.client_seconds * grow,
                client_bytes_up=base.client_bytes_up * grow,
                client_bytes_down=(base.client_bytes_down - 2 * bitmap0) * grow + 2 * bitmap,
                server_seconds=base.server_seconds * work,
                peak_rss_mib=base.baseline_rss_mib + (base.peak_rss_mib - base.baseline_rss_mib) * work,
                baseline_rss_mib=base.baseline_rss_mib, agreements=int(base.agreements * work),
                agreement_us=base.agreement_us, signature_checks=int(base.signature_checks * work),
                verify_us=base.verify_us, keystream_bytes=int(base.keystream_bytes * work),
                keystream_gib_per_s=base.keystream_gib_per_s, floor_seconds=base.floor_seconds * work,
                ratio=base.ratio, ratio_pk=base.ratio_pk, survivors=int(round(n * (1 - base.dropout))),
                projected=True, note=f"projected from n={base.n:,} (k {base.k} -> {prm.k})",
            ))
    return out


def _fmt_bytes(b: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= size:
            return f"{b / size:.1f} {unit}"
    return f"{b:.0f} B"


def scaling_table(points: Sequence[ScalePoint]) -> str:
    """The Markdown table (projected rows marked)."""
    rows = ["| n | d | k | t | client s | client up | client down | server s | wall s | CPU s | floor s "
            "| CPU/floor | CPU/(floor+sig) | peak MiB |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p in points:
        star = " *(projected)*" if p.projected else ""
        rows.append(
            f"| {p.n:,}{star} | {p.d:,} | {p.k} | {p.threshold} | {p.client_seconds:.3f} | "
            f"{_fmt_bytes(p.client_bytes_up)} | {_fmt_bytes(p.client_bytes_down)} | {p.server_seconds:.2f} | "
            f"{p.wall_seconds:,.1f} | {p.cpu_seconds:,.1f} | {p.floor_seconds:,.1f} | {p.ratio:.2f} | "
            f"{p.ratio_pk:.2f} | "
            f"{p.peak_rss_mib:,.0f} |")
    return "\n".join(rows)


def growth(points: Sequence[ScalePoint], d: int) -> dict[str, float]:
    """Per-client cost growth between the two largest measured ``n`` at ``d``, next to
    the growth of ``log n`` and of ``k`` (the finder's degree, which grows like log n)."""
    ms = sorted((p for p in points if p.d == d and not p.projected), key=lambda p: p.n)
    if len(ms) < 2:
        return {}
    a, b = ms[-2], ms[-1]
    return {"from_n": a.n, "to_n": b.n, "client_seconds": b.client_seconds / a.client_seconds,
            "client_bytes_up": b.client_bytes_up / a.client_bytes_up, "k": b.k / a.k,
            "log_n": float(np.log(b.n) / np.log(a.n))}


def write_scaling_report(points: Sequence[ScalePoint], out: str | Path) -> Path:
    """``scaling.md``, ``scaling.json`` and ``scaling.png`` (per-client seconds and the
    ratio to the floor against n) in ``out``."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    allp = list(points) + project(points)
    growths = {d: growth(points, d) for d in sorted({p.d for p in points})}
    meta = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "growth": growths}
    (folder / "scaling.json").write_text(json.dumps({"meta": meta, "points": [asdict(p) for p in allp]}, indent=2))
    lines = ["# SecAgg+ scaling on one machine", "", scaling_table(allp), ""]
    for d, g in growths.items():
        if g:
            lines.append(f"* d = {d:,}: from n = {g['from_n']:,} to {g['to_n']:,}, per-client seconds x"
                         f"{g['client_seconds']:.2f}, bytes up x{g['client_bytes_up']:.2f}; k x{g['k']:.2f}, "
                         f"log n x{g['log_n']:.2f}.")
    lines += ["", __doc__.split("\n\n", 1)[1] if __doc__ else ""]
    (folder / "scaling.md").write_text("\n".join(lines) + "\n")
    _plot(allp, folder / "scaling.png")
    return folder


def _plot(points: Sequence[ScalePoint], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for d in sorted({p.d for p in points}):
        ms = sorted((p for p in points if p.d == d), key=lambda p: p.n)
        real = [p for p in ms if not p.projected]
        a1.plot([p.n for p in real], [p.client_seconds for p in real], "o-", label=f"d={d:,}")
        a1.plot([p.n for p in ms if p.projected or p is real[-1]],
                [p.client_seconds for p in ms if p.projected or p is real[-1]], "o--", color=a1.lines[-1].get_color(),
                alpha=0.5)
        a2.plot([p.n for p in real], [p.ratio for p in real], "o-", label=f"d={d:,}")
    a1.set(xscale="log", xlabel="clients n", ylabel="seconds per client", title="per-client cost (dashed: projected)")
    a2.set(xscale="log", xlabel="clients n", ylabel="CPU time / key-agreement floor", title="ratio to the floor")
    a2.axhline(3, color="grey", lw=0.8, ls=":")
    for ax in (a1, a2):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":  # one point, for run_scaling: n d dropout seed -> one JSON line
    _n, _d, _drop, _seed = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    print(json.dumps(asdict(measure(_n, _d, dropout=_drop, seed=_seed))))
