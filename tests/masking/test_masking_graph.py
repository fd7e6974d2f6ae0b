"""Graphs and configuration of secagg.masking (complete / Harary, k and t choice)."""

import numpy as np
import pytest

from secagg.errors import ConfigurationError, InsecureParameterError
from secagg.masking import MaskingConfig, choose_k, complete_graph, harary_graph


def test_complete_graph_neighbors_and_holders():
    g = complete_graph(5)
    assert g.neighbors(2).tolist() == [0, 1, 3, 4]
    assert g.holders(2).tolist() == [0, 1, 2, 3, 4]
    assert g.is_neighbor(0, 4) and not g.is_neighbor(3, 3)


@pytest.mark.parametrize("n,k", [(10, 2), (11, 4), (50, 8), (97, 20)])
def test_harary_is_k_regular_symmetric_and_seed_deterministic(n, k):
    seed = bytes(range(32))
    g = harary_graph(n, k, seed)
    adj = np.zeros((n, n), dtype=bool)
    for u in range(n):
        nb = g.neighbors(u)
        assert len(nb) == k and u not in nb and len(set(nb.tolist())) == k
        adj[u, nb] = True
        assert all(g.is_neighbor(u, int(v)) for v in nb)
    assert (adj == adj.T).all()
    again = harary_graph(n, k, seed)
    assert all((again.neighbors(u) == g.neighbors(u)).all() for u in range(n))
    other = harary_graph(n, k, bytes(32))
    assert any((other.neighbors(u) != g.neighbors(u)).any() for u in range(n))


def test_harary_rejects_odd_degree_and_falls_back_to_complete():
    with pytest.raises(ConfigurationError, match="even"):
        harary_graph(20, 5)
    assert harary_graph(6, 5).kind == "complete"


def test_choose_k_grows_logarithmically_and_meets_bounds():
    ks = [choose_k(n)[0] for n in (100, 1000, 10000)]
    assert ks[0] <= ks[1] <= ks[2] < 200
    # O(log n): multiplying n by 100 adds far less than a factor 100 to k
    assert ks[2] - ks[0] < 40
    k, t = choose_k(1000)
    assert k % 2 == 0 and t == (k + 1) // 2 + 1
    # tiny n: no sparse graph meets 2^-40, the complete graph is returned
    assert choose_k(20) == (19, 11)


def test_config_default_thresholds():
    assert MaskingConfig(n=10, dim=3).threshold == 6
    cfg = MaskingConfig(n=100, dim=3, graph="sparse", k=10)
    assert (cfg.k, cfg.threshold, cfg.num_holders) == (10, 6, 11)


def test_low_threshold_needs_flag_and_explains_attack():
    with pytest.raises(InsecureParameterError, match="dropped.*survived"):
        MaskingConfig(n=10, dim=3, threshold=5)
    assert MaskingConfig(n=10, dim=3, threshold=5, allow_low_threshold=True).threshold == 5


@pytest.mark.parametrize(
    "kwargs",
    [dict(n=1, dim=3), dict(n=4, dim=0), dict(n=4, dim=3, graph="ring"), dict(n=4, dim=3, threshold=9),
     dict(n=20, dim=3, graph="sparse", k=3), dict(n=4, dim=3, bits=80)],
)
def test_config_rejects_impossible_values(kwargs):
    with pytest.raises(ConfigurationError):
        MaskingConfig(**kwargs)
