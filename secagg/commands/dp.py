"""`secagg demo dp` and the `secagg dp epsilon|sigma` calculators (see :mod:`secagg.dp`)."""

from __future__ import annotations

import argparse
import math


def register(commands, demos) -> None:
    from ._args import DELTA, POSITIVE_FLOAT, POSITIVE_INT, RATE, RING_BITS, SEED, Renamed, float_in, out_dir

    demo = demos.add_parser(
        "dp",
        help="distributed DP over secure aggregation: noise per client, epsilon, noisy vs exact sum",
        description="Each client clips its update to L2 norm --clip-norm, rotates, rounds and adds a share of "
        "discrete Gaussian (or Skellam) noise; the shares are summed under pairwise masks; the server decodes "
        "only the noisy sum.",
    )
    demo.add_argument("--clients", type=POSITIVE_INT, default=20, help="number of clients")
    demo.add_argument("--dim", type=POSITIVE_INT, default=1000, help="vector length")
    demo.add_argument("--clip-norm", type=POSITIVE_FLOAT, default=1.0,
                      help="L2 norm each client's update is clipped to")
    demo.add_argument("--clip", action=Renamed, new="--clip-norm (the L2 norm each update is clipped to)")
    demo.add_argument("--noise-multiplier", type=POSITIVE_FLOAT, default=1.0,
                      help="noise std in units of --clip-norm")
    demo.add_argument("--mechanism", choices=("ddg", "skellam"), default="ddg",
                      help="distributed discrete Gaussian or Skellam noise")
    demo.add_argument("--graph", choices=("complete", "sparse"), default="complete",
                      help="complete: SecAgg; sparse: SecAgg+")
    demo.add_argument("--bits", type=RING_BITS, default=32, help="ring size in bits")
    demo.add_argument("--dropout", type=RATE, default=0.1, help="fraction of clients that drop, in [0, 1)")
    demo.add_argument("--delta", type=DELTA, default=1e-5, help="DP delta, in (0, 1)")
    demo.add_argument("--rounds", type=POSITIVE_INT, default=100, help="rounds for the composed epsilon line")
    demo.add_argument("--seed", type=SEED, default=0, help="seed for the inputs, dropouts and noise")
    demo.add_argument("--out", type=out_dir, default=argparse.SUPPRESS, metavar="DIR",
                      help="also write dp_demo.json into DIR (default: print only)")
    demo.set_defaults(func=run_demo)

    dp = commands.add_parser("dp", help="privacy calculators: epsilon for a noise level, noise for an epsilon",
                             description="Privacy calculators (PLD accountant of secagg.dp, RDP beside it).")
    sub = dp.add_subparsers(dest="dp_command", metavar="CALC", required=True)
    eps = sub.add_parser("epsilon", help="epsilon of Poisson-sampled Gaussian steps (PLD accountant, RDP beside it)",
                         description="Epsilon after --steps Poisson-sampled Gaussian steps at --delta.")
    eps.add_argument("--q", type=float_in(0, 1, lo_open=True), required=True, help="sampling rate in (0, 1]")
    eps.add_argument("--sigma", type=POSITIVE_FLOAT, required=True, help="noise multiplier (> 0)")
    eps.add_argument("--steps", type=POSITIVE_INT, required=True, help="number of steps (>= 1)")
    eps.add_argument("--delta", type=DELTA, default=1e-5, help="DP delta, in (0, 1)")
    eps.set_defaults(func=run_epsilon)
    sig = sub.add_parser("sigma", help="noise multiplier for a target (epsilon, delta)",
                         description="Smallest noise multiplier whose --steps Poisson-sampled Gaussian steps "
                         "stay within (--epsilon, --delta).")
    sig.add_argument("--epsilon", type=POSITIVE_FLOAT, required=True, help="target epsilon (> 0)")
    sig.add_argument("--delta", type=DELTA, default=1e-5, help="DP delta, in (0, 1)")
    sig.add_argument("--q", type=float_in(0, 1, lo_open=True), default=1.0, help="sampling rate in (0, 1]")
    sig.add_argument("--steps", type=POSITIVE_INT, default=1, help="number of steps (>= 1)")
    sig.set_defaults(func=run_sigma)


def run_epsilon(args: argparse.Namespace) -> int:
    from ..dp import GaussianEvent, PldAccountant, PoissonSampledEvent, RdpAccountant

    event = PoissonSampledEvent(args.q, GaussianEvent(args.sigma))
    eps = PldAccountant().compose(event, args.steps).get_epsilon(args.delta)
    rdp, order = RdpAccountant().compose(event, args.steps).get_epsilon_and_optimal_order(args.delta)
    print(f"epsilon = {eps:.6g} at delta = {args.delta:g}  (PLD accountant; q={args.q:g}, sigma={args.sigma:g}, "
          f"steps={args.steps}; RDP accountant: {rdp:.6g} at order {order:g})")
    return 0


def run_sigma(args: argparse.Namespace) -> int:
    from ..dp import analytic_gaussian_sigma, noise_multiplier_for

    z = noise_multiplier_for(args.epsilon, args.delta, args.q, args.steps, accountant="pld")
    z_rdp = noise_multiplier_for(args.epsilon, args.delta, args.q, args.steps, accountant="rdp")
    print(f"noise multiplier = {z:.6g}  (PLD accountant: epsilon={args.epsilon:g}, delta={args.delta:g}, "
          f"q={args.q:g}, steps={args.steps}; RDP accountant: {z_rdp:.6g})")
    if args.q == 1.0 and args.steps == 1:
        print(f"analytic Gaussian (Balle-Wang, one release, exact) = {analytic_gaussian_sigma(args.epsilon, args.delta):.6g}")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    import numpy as np

    from ..dp import PldAccountant
    from ..dp.aggregators import DistributedDPAggregator

    rng = np.random.default_rng(args.seed)
    n, d = args.clients, args.dim
    # unit-norm-ish updates, a few of them too long (they get clipped)
    x = rng.normal(size=(n, d)) / math.sqrt(d) * 0.8
    x[: max(1, n // 10)] *= 3.0
    agg = DistributedDPAggregator(
        clip_norm=args.clip_norm, noise_multiplier=args.noise_multiplier, mechanism=args.mechanism, graph=args.graph,
        bits=args.bits, expected_dropout=args.dropout, delta=args.delta,
    )
    res = agg.aggregate(x, dropout=args.dropout if args.dropout > 0 else None, rng=rng)
    params = agg.params_for(n, d, args.dropout if args.dropout > 0 else None)
    norms = np.linalg.norm(x, axis=1)
    clipped = x * np.minimum(1.0, args.clip_norm / norms)[:, None]
    exact = clipped[res.survivors].sum(axis=0)
    err = res.total - exact
    acc = PldAccountant().compose(res.info["dp_event"], args.rounds)
    print(f"distributed DP ({args.mechanism.upper()}) over secure aggregation ({args.graph} graph), "
          f"{n} clients, d={d} (padded {params.padded_dim}), {args.bits}-bit ring")
    n_clipped = int((norms > args.clip_norm).sum())
    print(f"  clip norm (L2)                 {args.clip_norm:g}   ({n_clipped} clients' updates scaled down to it)")
    print(f"  noise multiplier z             {args.noise_multiplier:g}   (calibrated for >= {params.min_clients} survivors)")
    print(f"  scale s (ring units per unit)  {params.scale:.4g}")
    print(f"  noise per client (std)         {params.local_stddev:.4g} ring units = {params.local_stddev / params.scale:.4g} update units")
    print(f"  survivors                      {res.count} of {n}")
    print(f"  total noise std per coord      {res.noise_std:.4g} "
          f"(target z*clip_norm = {args.noise_multiplier * args.clip_norm:g})")
    print(f"  epsilon, this round            {res.info['epsilon_achieved']:.4g} at delta={args.delta:g} (actual survivors)")
    print(f"  epsilon after {args.rounds} such rounds   {acc.get_epsilon(args.delta):.4g}")
    print(f"  decoded noisy sum vs exact     rms error {float(np.sqrt((err**2).mean())):.4g}, "
          f"max {float(np.abs(err).max()):.4g}, norm of exact sum {float(np.linalg.norm(exact)):.4g}")
    print(f"  bytes up per client            {int(np.median(res.bytes_up[res.survivors]))} (float32 in clear: {4 * d})")
    print(f"  client seconds (median)        {float(np.median(res.client_seconds)):.4g}, server {res.server_seconds:.4g}")
    out = getattr(args, "out", None)
    if out:
        import json
        import os

        os.makedirs(out, exist_ok=True)
        path = os.path.join(out, "dp_demo.json")
        with open(path, "w", encoding="utf-8") as fh:
            json.dump({
                "clients": n, "dim": d, "mechanism": args.mechanism, "graph": args.graph, "bits": args.bits,
                "clip_norm": args.clip_norm, "norm_clipped_clients": n_clipped,
                "noise_multiplier": args.noise_multiplier, "survivors": int(res.count), "delta": args.delta,
                "epsilon_round": float(res.info["epsilon_achieved"]), "rounds": args.rounds,
                "epsilon_after_rounds": float(acc.get_epsilon(args.delta)), "noise_std": float(res.noise_std),
                "rms_error": float(np.sqrt((err**2).mean())),
            }, fh, indent=2)
        print(f"numbers written to {path}")
    return 0
