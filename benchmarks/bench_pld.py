"""PLD accountant benchmarks, each beside dp_accounting's PLDAccountant in the same run.

Run: ``pytest benchmarks/bench_pld.py --benchmark-only -s`` (``-s`` prints the tables).
Targets (issue 16): epsilon within 1% of dp_accounting's PLD over the grid q x sigma x
steps x delta, and below RDP's; query time at most dp_accounting's on the same case.
The grid agreement uses dp_accounting 0.6.0's values stored in
``tests/dp/_pld_reference.py`` (regenerate with ``tests/dp/make_pld_reference_values.py``);
the timing baseline runs dp_accounting live. The distributed-DP table is for the
``distributed-dp`` setting of ``secagg compare`` (fl/compare.py: breast cancer, 10
clients, 30% dropout so the noise is calibrated for 7 survivors, d = 31 parameters, a
32-bit ring, clip 1, delta 1e-5, 20 rounds).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from pathlib import Path

import pytest
from _timing import min_time

from secagg.dp import (
    GaussianEvent,
    PldAccountant,
    PoissonSampledEvent,
    RdpAccountant,
    noise_multiplier_for,
)
from secagg.dp.distributed import DistributedDP
from secagg.dp._pld_accountant import event_pld

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "dp"))
from _pld_reference import PLD_GRID  # noqa: E402

Q, SIGMA, STEPS, DELTA = 0.01, 1.1, 1000, 1e-5


def _ours() -> float:
    event_pld.cache_clear()  # time the PLD construction too, as dp_accounting does
    return PldAccountant().compose(PoissonSampledEvent(Q, GaussianEvent(SIGMA)), STEPS).get_epsilon(DELTA)


def _dp_accounting_fn():
    dpa = pytest.importorskip("dp_accounting")
    from dp_accounting.pld import pld_privacy_accountant

    logging.getLogger("absl").setLevel(logging.ERROR)

    def run() -> float:
        acc = pld_privacy_accountant.PLDAccountant()
        acc.compose(dpa.PoissonSampledDpEvent(Q, dpa.GaussianDpEvent(SIGMA)), STEPS)
        return float(acc.get_epsilon(DELTA))

    return run


@pytest.mark.benchmark(group="pld eps(q=0.01, sigma=1.1, 1000 steps, delta=1e-5)")
def test_dp_accounting_pld_baseline(benchmark):
    run = _dp_accounting_fn()
    benchmark.extra_info["epsilon"] = benchmark.pedantic(run, rounds=3, iterations=1)


@pytest.mark.benchmark(group="pld eps(q=0.01, sigma=1.1, 1000 steps, delta=1e-5)")
def test_pld_accountant(benchmark):
    eps = benchmark.pedantic(_ours, rounds=3, iterations=1)
    run = _dp_accounting_fn()
    base = min_time(run, 3)
    ours = min_time(_ours, 3)
    ref = run()
    benchmark.extra_info.update(
        epsilon=eps, dp_accounting_epsilon=ref, epsilon_rel_diff=abs(eps - ref) / ref,
        seconds=ours, dp_accounting_seconds=base, time_ratio_to_dp_accounting=ours / base, target_ratio=1.0,
        rdp_epsilon=RdpAccountant().compose(PoissonSampledEvent(Q, GaussianEvent(SIGMA)), STEPS).get_epsilon(DELTA),
    )
    print(f"\nPLD eps {eps:.6f} vs dp_accounting {ref:.6f}; {ours:.3f} s vs {base:.3f} s (ratio {ours / base:.3f})")


@pytest.mark.benchmark(group="pld agreement grid")
def test_grid_agreement_with_dp_accounting(benchmark):
    def grid() -> dict[str, float]:
        worst_rel, worst_key, slower = 0.0, None, 0
        above_rdp = 0
        for key, ref in PLD_GRID.items():
            q, s, t, d = key
            ev = PoissonSampledEvent(q, GaussianEvent(s))
            ours = PldAccountant().compose(ev, t).get_epsilon(d)
            rel = abs(ours - ref) / max(ref, 1e-12)
            if rel > worst_rel:
                worst_rel, worst_key = rel, key
            if ours > RdpAccountant().compose(ev, t).get_epsilon(d) + 1e-9:
                above_rdp += 1
        return {"max_rel_err": worst_rel, "worst_case": str(worst_key), "cases": len(PLD_GRID),
                "cases_above_rdp": above_rdp, "slower": slower}

    out = benchmark.pedantic(grid, rounds=1, iterations=1)
    benchmark.extra_info.update(out)
    print(f"\ngrid of {out['cases']} cases: max relative difference {out['max_rel_err']:.2e} at {out['worst_case']}; "
          f"PLD above RDP in {out['cases_above_rdp']} cases")
    assert out["max_rel_err"] < 0.01


@pytest.mark.benchmark(group="pld noise_multiplier_for(1, 1e-5, 0.01, 1000)")
def test_noise_multiplier_for_pld(benchmark):
    z = benchmark.pedantic(noise_multiplier_for, args=(1.0, 1e-5, 0.01, 1000), rounds=2, iterations=1)
    t0 = time.perf_counter()
    z_rdp = noise_multiplier_for(1.0, 1e-5, 0.01, 1000, accountant="rdp")
    benchmark.extra_info.update(noise_multiplier=z, rdp_noise_multiplier=z_rdp, rdp_seconds=time.perf_counter() - t0)


# ---------------------------------------------------------------- distributed DP in `secagg compare`
COMPARE = dict(clip_norm=1.0, num_clients=10, dim=31, bits=32, min_clients=7)
ROUNDS = 20


def _eps(mechanism: str, z: float, accountant: str) -> float:
    params = DistributedDP(noise_multiplier=z, mechanism=mechanism, **COMPARE)
    return params.epsilon(COMPARE["min_clients"], DELTA, rounds=ROUNDS, accountant=accountant)


def _z_for(mechanism: str, target: float, accountant: str) -> float:
    lo, hi = 0.05, 50.0
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        if _eps(mechanism, mid, accountant) > target:
            lo = mid
        else:
            hi = mid
        if hi / lo < 1 + 1e-5:
            break
    return hi


def distributed_table() -> list[dict[str, float | str]]:
    """Rows: mechanism, target epsilon, z (RDP, PLD), epsilon at the RDP z under both accountants."""
    rows: list[dict[str, float | str]] = []
    for mech in ("ddg", "skellam"):
        for target in (1.0, 2.0, 4.0, 8.0):
            z_rdp = _z_for(mech, target, "rdp")
            z_pld = _z_for(mech, target, "pld")
            rows.append({
                "mechanism": mech, "target_epsilon": target, "z_rdp": z_rdp, "z_pld": z_pld,
                "noise_saved": 1 - z_pld / z_rdp, "eps_rdp_at_z_rdp": _eps(mech, z_rdp, "rdp"),
                "eps_pld_at_z_rdp": _eps(mech, z_rdp, "pld"),
            })
    return rows


@pytest.mark.benchmark(group="pld distributed-DP tightness (secagg compare settings)")
def test_distributed_dp_tightness_table(benchmark):
    rows = benchmark.pedantic(distributed_table, rounds=1, iterations=1)
    print("\n| mechanism | target eps | z (RDP) | z (PLD) | noise saved | eps at z_RDP: RDP | PLD |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mechanism']} | {r['target_epsilon']:g} | {r['z_rdp']:.4f} | {r['z_pld']:.4f} | "
              f"{100 * float(r['noise_saved']):.1f}% | {r['eps_rdp_at_z_rdp']:.3f} | {r['eps_pld_at_z_rdp']:.3f} |")
    benchmark.extra_info["rows"] = rows
    assert all(float(r["eps_pld_at_z_rdp"]) < float(r["eps_rdp_at_z_rdp"]) for r in rows)


SMALL_RINGS = ((16, 10, 1.0), (14, 10, 1.0), (12, 10, 2.0), (16, 100, 1.0), (12, 20, 3.0))


def small_ring_table() -> list[dict[str, float | str]]:
    """Where the noise per client is small (narrow rings): epsilon over 20 rounds, both accountants."""
    rows: list[dict[str, float | str]] = []
    for bits, n, z in SMALL_RINGS:
        for mech in ("ddg", "skellam"):
            params = DistributedDP(clip_norm=1.0, noise_multiplier=z, num_clients=n, dim=31, bits=bits, mechanism=mech)
            rows.append({
                "mechanism": mech, "bits": bits, "clients": n, "z": z, "local_stddev": params.local_stddev,
                "eps_rdp": params.epsilon(n, DELTA, rounds=ROUNDS, accountant="rdp"),
                "eps_pld": params.epsilon(n, DELTA, rounds=ROUNDS, accountant="pld"),
                "eps_gaussian_pld": PldAccountant().compose(GaussianEvent(z), ROUNDS).get_epsilon(DELTA),
            })
    return rows


@pytest.mark.benchmark(group="pld distributed-DP tightness (narrow rings)")
def test_small_ring_table(benchmark):
    rows = benchmark.pedantic(small_ring_table, rounds=1, iterations=1)
    print("\n| mechanism | ring bits | clients | z | per-client std | eps RDP | eps PLD | continuous Gaussian (PLD) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mechanism']} | {r['bits']} | {r['clients']} | {r['z']:g} | {r['local_stddev']:.4g} | "
              f"{r['eps_rdp']:.3f} | {r['eps_pld']:.3f} | {r['eps_gaussian_pld']:.3f} |")
    benchmark.extra_info["rows"] = rows
