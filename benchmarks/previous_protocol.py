"""What the active-server protections cost: this tree's default protocol beside a previous one.

    python benchmarks/previous_protocol.py                 # previous = bedf4f0 (before issue 11)
    python benchmarks/previous_protocol.py --previous REF --repeats 3 --out report.md

The previous protocol is exported with ``git archive REF`` into a temporary folder and
imported from there in a child process; the current one is imported from this tree in
another. For each point both run the same session (``simulate_ring`` with each version's
*default* parameters for that graph, the same ring vectors, 5% of the clients dropping
before their masked input), alternating old and new ``--repeats`` times, and the minimum
of each is kept, so load on a shared machine hits both alike. Reported per point: the
resolved ``k`` and ``t`` of each version, mean bytes a client sends and receives over the
whole session (the real serialized messages), median client seconds and server seconds
(summed over rounds), and the new / old ratios. A second table runs this tree's
honest-but-curious variant beside its default, isolating what the active-server
protections cost.

At bedf4f0 the default already ran the consistency round (Ed25519 signatures over the
survivor set), but nothing was bound to a client-contributed session identity, the
threshold was the majority of holders (``t > |H| / 2``, which the split-view attack
defeats with one colluder), SecAgg+'s ``k`` came from Bell et al.'s honest-but-curious
bound, and one bad ciphertext aborted the session. The current default binds every
signature and voucher to the transcript, replaces the signed survivor sets by pairwise
16-byte MACs, picks ``k`` and ``t`` from the active threat model, enforces a survivor
floor and survives malicious senders.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (graph, n, d)
POINTS = [("complete", 20, 10_000), ("complete", 100, 10_000), ("sparse", 100, 10_000), ("sparse", 500, 10_000),
          ("sparse", 500, 100)]

WORKER = r"""
import json, sys, time
import numpy as np
from secagg.masking.simulate import simulate_ring

graph, n, d, seed, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
extra = {}
if mode == "hbc":  # this tree's protocol without the active-server round and parameters
    from secagg.masking.params import ThreatModel
    extra["threat"] = ThreatModel(adversary="honest-but-curious")
rng = np.random.default_rng(seed)
vectors = rng.integers(0, 2**32, size=(n, d), dtype=np.uint64).astype(np.uint32)
drop = {int(u): "masked_input" for u in rng.choice(n, size=max(1, n // 20), replace=False)}
t0 = time.perf_counter()
res = simulate_ring(vectors, bits=32, graph=graph, dropout=drop, rng=np.random.default_rng(seed), **extra)
wall = time.perf_counter() - t0
survivors = sorted(res.survivors)
want = vectors[survivors].astype(np.uint64).sum(axis=0) % 2**32
assert np.array_equal(np.asarray(res.ring_sum, dtype=np.uint64), want), "wrong sum"
costs = getattr(res, "costs", res)
up = getattr(costs, "bytes_up", None) or getattr(costs, "bytes_sent")
down = getattr(costs, "bytes_down", None) or getattr(costs, "bytes_received")
cs = costs.client_seconds
ss = costs.server_seconds
alive = [u for u in range(n) if u not in drop]
tot = lambda per_round: sum(np.asarray(v, dtype=float) for v in per_round.values())
print(json.dumps({
    "k": int(res.config.k), "t": int(res.config.threshold), "rounds": len(up),
    "bytes_up": float(tot(up)[alive].mean()), "bytes_down": float(tot(down)[alive].mean()),
    "client_s": float(np.median(tot(cs)[alive])), "server_s": float(sum(ss.values())), "wall_s": wall}))
"""


def _export(ref: str, dest: Path) -> Path:
    """``git archive ref`` unpacked into ``dest``; returns the tree's root."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref],
                          check=True, capture_output=True).stdout
    tar_path = dest / "tree.tar"
    tar_path.write_bytes(data)
    root = dest / "tree"
    root.mkdir()
    with tarfile.open(tar_path) as tf:
        tf.extractall(root, filter="data")
    return root


def _run(tree: Path, graph: str, n: int, d: int, seed: int, mode: str = "default") -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run([sys.executable, "-c", WORKER, graph, str(n), str(d), str(seed), mode], cwd=str(tree),
                         env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _best(runs: list[dict]) -> dict:
    best = dict(runs[0])
    for key in ("client_s", "server_s", "wall_s"):
        best[key] = min(r[key] for r in runs)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--previous", default="bedf4f0", help="git ref of the previous protocol (default bedf4f0)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per version and point; the minimum is kept")
    ap.add_argument("--out", default=None, help="also write the markdown table to this file")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        old_tree = _export(args.previous, Path(tmp))
        for graph, n, d in POINTS:
            old_runs, new_runs, hbc_runs = [], [], []
            for rep in range(args.repeats):
                old_runs.append(_run(old_tree, graph, n, d, rep))
                new_runs.append(_run(ROOT, graph, n, d, rep))
                hbc_runs.append(_run(ROOT, graph, n, d, rep, "hbc"))
            o, c, h = _best(old_runs), _best(new_runs), _best(hbc_runs)
            rows.append((graph, n, d, o, c, h))
            print(f"{graph} n={n} d={d}: old k={o['k']} t={o['t']} {o['client_s']:.3f}s/client, "
                  f"new k={c['k']} t={c['t']} {c['client_s']:.3f}s/client", file=sys.stderr)
    head = ("| graph | n | d | k, t before → now | client bytes up before → now (ratio) | "
            "client bytes down before → now (ratio) | client s before → now (ratio) | server s before → now (ratio) |")
    lines = [head, "|" + "---|" * 8]
    for graph, n, d, o, c, _ in rows:
        def cell(key: str, fmt: str) -> str:
            return f"{format(o[key], fmt)} → {format(c[key], fmt)} ({c[key] / o[key]:.2f}x)"
        lines.append(f"| {graph} | {n} | {d:,} | {o['k']}, {o['t']} → {c['k']}, {c['t']} | {cell('bytes_up', ',.0f')} | "
                     f"{cell('bytes_down', ',.0f')} | {cell('client_s', '.3f')} | {cell('server_s', '.3f')} |")
    lines += ["", "The same sessions in this tree: the honest-but-curious variant (no consistency round, "
              "the finder's honest-but-curious k and t) against the default active one, i.e. what the "
              "active-server protections cost by themselves:", "",
              "| graph | n | d | k, t hbc → active | client bytes up (ratio) | client bytes down (ratio) | "
              "client s (ratio) | server s (ratio) |", "|" + "---|" * 8]
    for graph, n, d, o, c, h in rows:
        def cell2(key: str, fmt: str) -> str:
            return f"{format(h[key], fmt)} → {format(c[key], fmt)} ({c[key] / h[key]:.2f}x)"
        lines.append(f"| {graph} | {n} | {d:,} | {h['k']}, {h['t']} → {c['k']}, {c['t']} | {cell2('bytes_up', ',.0f')} | "
                     f"{cell2('bytes_down', ',.0f')} | {cell2('client_s', '.3f')} | {cell2('server_s', '.3f')} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
