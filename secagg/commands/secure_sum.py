"""`secagg demo secure-sum`: run SecAgg / SecAgg+ (Bonawitz et al. 2017; Bell et al. 2020)
in process and show per-round bytes and times, that the server's view of one masked
vector looks uniform, and that the decoded sum is exact up to quantization."""

from __future__ import annotations

import argparse

import numpy as np


def register(commands, demos) -> None:
    from ..masking.rounds import ROUNDS
    from ..quantize import OUT_OF_RANGE_POLICIES
    from ..masking.params import ADVERSARIES
    from ._args import POSITIVE_FLOAT, POSITIVE_INT, RATE, SEED, Renamed, int_in, out_dir

    p = demos.add_parser(
        "secure-sum",
        help="pairwise-mask secure sum (SecAgg / SecAgg+) with dropouts",
        description="Simulate one SecAgg (complete graph) or SecAgg+ (sparse graph) session on inputs drawn "
        "uniformly from [-1, 1]. Values beyond --bound raise unless --out-of-range clip (then they are counted).",
    )
    p.add_argument("--clients", type=POSITIVE_INT, default=50, help="number of clients")
    p.add_argument("--dim", type=POSITIVE_INT, default=10_000, help="vector length")
    p.add_argument("--dropout", type=RATE, default=0.1, help="fraction of clients that drop, in [0, 1)")
    p.add_argument("--dropout-round", choices=ROUNDS, default="masked_input",
                   help="round at which they drop (they send nothing from it on)")
    p.add_argument("--graph", choices=("complete", "sparse"), default="complete",
                   help="complete: SecAgg; sparse: SecAgg+")
    p.add_argument("--k", type=int_in(1), default=None, help="sparse graph degree (default: the parameter finder's)")
    p.add_argument("--adversary", choices=ADVERSARIES, default="active",
                   help="threat model: an active server (consistency round) or an honest-but-curious one "
                        "(weaker: one round fewer, lower threshold)")
    p.add_argument("--corrupt-fraction", type=RATE, default=0.05,
                   help="fraction of clients assumed to collude with the server, in [0, 1)")
    p.add_argument("--no-consistency-check", action=Renamed, new="--adversary honest-but-curious")
    p.add_argument("--bound", type=POSITIVE_FLOAT, default=1.0, help="per-coordinate bound of the encoding")
    p.add_argument("--out-of-range", choices=OUT_OF_RANGE_POLICIES, default="raise",
                   help="values beyond --bound: refuse them, or clip them and count them")
    p.add_argument("--seed", type=SEED, default=None, help="seed for inputs and dropout choice (default: OS entropy)")
    p.add_argument("--out", type=out_dir, default=argparse.SUPPRESS, metavar="DIR",
                   help="also write secure_sum_demo.json into DIR (default: print only)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from scipy import stats

    from ..errors import InsecureParameterError
    from ..masking import ThreatModel, simulate
    from ..quantize import Quantizer

    n, d = args.clients, args.dim
    rng = np.random.default_rng(args.seed)
    x = rng.uniform(-1.0, 1.0, size=(n, d))
    q = Quantizer(args.bound, num_clients=n, bits=32, out_of_range=args.out_of_range)
    threat = ThreatModel(
        adversary=args.adversary, corrupt_fraction=args.corrupt_fraction,
        dropout_rate=max(args.dropout or 0.0, ThreatModel().dropout_rate),
    )
    # a SecAggError (out-of-range input, an insecure --k) is one line from secagg.cli
    try:
        res = simulate(
            x, quantizer=q, graph=args.graph, k=args.k, dropout=args.dropout or None,
            dropout_round=args.dropout_round, rng=rng, threat=threat, keep_masked=(0,), progress=n * d > 2_000_000,
        )
    except InsecureParameterError as exc:
        raise InsecureParameterError(f"{exc} (flags: --k, --corrupt-fraction, --adversary)") from None
    cfg = res.config
    print(
        f"SecAgg{'+' if not cfg.is_complete else ''}: n={n} clients, d={d}, graph="
        f"{'complete' if cfg.is_complete else 'sparse'} (k={cfg.k}), threshold t={cfg.threshold}, "
        f"ring Z_2^{cfg.bits}, {cfg.threat.adversary} server, consistency check "
        f"{'on' if cfg.consistency_check else 'off'}, survivor floor {cfg.min_survivors}"
    )
    print(f"dropped: {len(res.dropped)} clients at {args.dropout_round}; survivors in the sum: {len(res.survivors)}\n")
    s = res.survivors
    head = f"{'round':<18} {'client up (B)':>14} {'client down (B)':>16} {'client ms':>10} {'server up (B)':>14} {'server down (B)':>16} {'server ms':>10}"
    print(head)
    print("-" * len(head))
    for r in res.bytes_sent:
        print(
            f"{r:<18} {np.median(res.bytes_sent[r][s]):>14,.0f} {np.median(res.bytes_received[r][s]):>16,.0f} "
            f"{1e3 * np.median(res.client_seconds[r][s]):>10.2f} {res.server_bytes_received[r]:>14,} "
            f"{res.server_bytes_sent[r]:>16,} {1e3 * res.server_seconds[r]:>10.1f}"
        )
    up = res.total_bytes_sent[s]
    print(f"{'total':<18} {np.median(up):>14,.0f} {np.median(res.total_bytes_received[s]):>16,.0f} "
          f"{1e3 * np.median(res.total_client_seconds[s]):>10.2f} {sum(res.server_bytes_received.values()):>14,} "
          f"{sum(res.server_bytes_sent.values()):>16,} {1e3 * res.total_server_seconds:>10.1f}")
    print("(client columns: median over survivors; server up = bytes it received)\n")
    print(f"communication expansion per client (bytes sent / 4d): {np.median(up) / (4 * d):.3f}")
    if 0 in res.masked_inputs:
        y = res.masked_inputs[0]
        counts = np.bincount((y >> 24).astype(np.int64), minlength=256)
        p = stats.chisquare(counts).pvalue
        plain = q.encode(x[0], rng)
        p_plain = stats.chisquare(np.bincount((plain >> 24).astype(np.int64), minlength=256)).pvalue
        print(
            f"server's view of client 0's masked vector: chi-square p-value over its top byte = {p:.3f} "
            f"(uniform noise; the unmasked encoding gives p = {p_plain:.1e})"
        )
    n_clipped = res.clipped  # values of the survivors clipped to the bound (0 under "raise")
    print(f"values clipped to the bound {q.bound:g}: {n_clipped} of {len(s) * d} in the sum "
          f"(out-of-range policy: {q.out_of_range})")
    err = float(np.abs(res.sum - np.clip(x[s], -q.bound, q.bound).sum(axis=0)).max())
    bound = len(s) * q.resolution
    print(f"decoded sum vs plain sum of survivors{' (clipped)' if n_clipped else ''}: max abs error {err:.3e} "
          f"<= count x resolution = {bound:.3e}: {'exact up to quantization' if err <= bound else 'MISMATCH'}")
    out = getattr(args, "out", None)
    if out:
        import json
        import os

        os.makedirs(out, exist_ok=True)
        path = os.path.join(out, "secure_sum_demo.json")
        with open(path, "w", encoding="utf-8") as fh:
            json.dump({
                "clients": n, "dim": d, "graph": "complete" if cfg.is_complete else "sparse", "k": cfg.k,
                "threshold": cfg.threshold, "bits": cfg.bits, "survivors": [int(u) for u in s],
                "dropped": {str(u): r for u, r in res.dropped.items()},
                "bound": q.bound, "out_of_range": q.out_of_range, "clipped": n_clipped,
                "bytes_sent_median": float(np.median(up)), "max_abs_error": err, "error_bound": bound,
            }, fh, indent=2)
        print(f"numbers written to {path}")
    return 0 if err <= bound else 1


def run_default_demo(args: argparse.Namespace) -> int:
    """A representative secure-sum demo (used by `secagg demo` until the FL demo exists)."""
    demo = argparse.Namespace(
        clients=100, dim=10_000, dropout=0.1, dropout_round="masked_input", graph="sparse", k=None,
        adversary="active", corrupt_fraction=0.05, seed=0, bound=1.0, out_of_range="raise",
        out=getattr(args, "out", None),
    )
    print("== SecAgg+ secure sum, 100 clients, 10% dropping after sharing keys ==")
    return run(demo)
