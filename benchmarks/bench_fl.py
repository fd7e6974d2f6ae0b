"""One FedAvg round per aggregator vs the plain baseline (breast cancer, 10 clients, d = 31).

Each technique's group holds the plain round and the technique's round in the same run;
``extra_info`` records the measured ratios (round time, bytes up per client) to plain.
Run: ``pytest benchmarks/bench_fl.py --benchmark-only``.
"""

import numpy as np
import pytest

from fl.data import load_dataset
from fl.server import FedAvg, FedAvgConfig, clip_options, make_clients
from secagg import make_aggregator
from secagg.errors import ConfigurationError

TECHNIQUES = {
    "secagg": {},
    "secagg+": {},
    "paillier": {"key_bits": 2048},
    "central-dp": {"noise_multiplier": 1.0},
    "local-dp": {"noise_multiplier": 1.0},
    "distributed-dp": {"noise_multiplier": 1.0},
}
_CACHE: dict = {}


@pytest.fixture(scope="module")
def setup():
    ds = load_dataset("breast_cancer", seed=0)
    clients, _ = make_clients(ds, 10, rng=np.random.default_rng(0))
    return ds, clients


def _fed(setup, name, options):
    ds, clients = setup
    cfg = FedAvgConfig(rounds=1, aggregator=name, clip_norm=1.0, noise_multiplier=options.get("noise_multiplier"))
    try:
        agg = make_aggregator(name, **clip_options(name, 1.0), **options)
    except ConfigurationError as exc:
        pytest.skip(str(exc))
    return FedAvg(clients, ds.X_test, ds.y_test, cfg, seed=0, aggregator=agg)


def _round(fed):
    return fed.run().history[0]


@pytest.mark.parametrize("name", list(TECHNIQUES))
def test_round_plain(benchmark, setup, name):
    benchmark.group = f"fedavg-round-{name}"
    fed = _fed(setup, "plain", {})
    rec = benchmark(_round, fed)
    _CACHE[name, "plain"] = (benchmark.stats.stats.median, rec.bytes_up_per_client)
    benchmark.extra_info["bytes_up_per_client"] = rec.bytes_up_per_client


@pytest.mark.parametrize("name", list(TECHNIQUES))
def test_round_technique(benchmark, setup, name):
    benchmark.group = f"fedavg-round-{name}"
    fed = _fed(setup, name, TECHNIQUES[name])
    rec = benchmark.pedantic(_round, args=(fed,), rounds=5 if name == "paillier" else 10, iterations=1)
    t = benchmark.stats.stats.median
    benchmark.extra_info["bytes_up_per_client"] = rec.bytes_up_per_client
    if (name, "plain") in _CACHE:
        t0, b0 = _CACHE[name, "plain"]
        benchmark.extra_info["time_ratio_vs_plain"] = t / t0
        benchmark.extra_info["bytes_up_ratio_vs_plain"] = rec.bytes_up_per_client / b0


# ---------------------------------------------------------------------------- privacy headline sweeps
# Long accuracy sweeps (not timings): `pytest benchmarks/bench_fl.py -m slow -k headline -s`, the same
# runs as `secagg headline breast-cancer` and `secagg headline synthetic-1000`. They print the tables
# and targets quoted in docs/federated.md and write JSON next to the benchmarks.
@pytest.mark.slow
def test_headline_breast_cancer_ten_seeds():
    """Example-level distributed DP vs diffprivlib at epsilon 1, 2, 4, 8 (10 seeds, one split each)."""
    from fl.headline import PRESETS, headline_markdown, run_headline
    from fl.report import write_json

    doc = run_headline(PRESETS["breast-cancer"], progress=True)
    print(headline_markdown(doc, with_std=True))
    write_json(doc, "benchmarks/results_headline_breast_cancer.json")


@pytest.mark.slow
def test_headline_client_level_pays_off_with_a_thousand_clients():
    """Client-level DP at epsilon <= 8 on 1,000 clients, Poisson sampling of about 100 per round."""
    from fl.headline import PRESETS, headline_markdown, run_headline
    from fl.report import write_json

    doc = run_headline(PRESETS["synthetic-1000"], progress=True)
    print(headline_markdown(doc, with_std=True))
    write_json(doc, "benchmarks/results_headline_synthetic_1000.json")
