"""Graphs and configuration of secagg.masking (complete / Harary graphs, positions, config validation)."""

import numpy as np
import pytest

from secagg.errors import ConfigurationError, InsecureParameterError
from secagg.masking import MaskingConfig, ThreatModel
from secagg.masking._graph import complete_graph, harary_graph


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


@pytest.mark.parametrize("n,k", [(10, 2), (11, 4), (50, 8), (97, 20), (7, 6)])
def test_holder_runs_are_the_holders_positions(n, k):
    g = harary_graph(n, k, bytes(range(32)))
    for u in range(n):
        runs = g.holder_runs(u)
        assert all(0 <= a <= b < n for a, b in runs) and len(runs) <= 2
        positions = [p for a, b in runs for p in range(a, b + 1)]
        assert len(positions) == len(set(positions))
        assert sorted(g.party_at(p) for p in positions) == g.holders(u).tolist()
        assert g.party_at(g.position(u)) == u


def test_config_default_thresholds_hold_against_an_active_server():
    # complete graph, 10 clients, one corrupt (5 % rounded up): 2t - n - 1 >= 1
    cfg = MaskingConfig(n=10, dim=3)
    assert cfg.threshold == 6 and 2 * cfg.threshold - 10 - 1 >= 1 and cfg.consistency_check
    hbc = MaskingConfig(n=10, dim=3, threat=ThreatModel(adversary="honest-but-curious"))
    assert hbc.threshold == 2 and not hbc.consistency_check  # > 1 corrupt holder
    cfg = MaskingConfig(n=1000, dim=3, graph="sparse")
    assert cfg.k < 999 and cfg.threshold > cfg.num_holders // 2 + 1
    assert cfg.min_survivors >= cfg.threshold


def test_low_threshold_is_refused_and_names_the_weaker_threat_model():
    with pytest.raises(InsecureParameterError, match="honest-but-curious"):
        MaskingConfig(n=10, dim=3, threshold=5)
    weaker = MaskingConfig(n=10, dim=3, threshold=5, threat=ThreatModel(adversary="honest-but-curious"))
    assert weaker.threshold == 5 and not weaker.consistency_check
    # a degree too small for the graph to stay connected is refused too
    with pytest.raises(InsecureParameterError, match="larger degree"):
        MaskingConfig(n=100, dim=3, graph="sparse", k=10)


@pytest.mark.parametrize(
    "kwargs",
    [dict(n=1, dim=3), dict(n=4, dim=0), dict(n=4, dim=3, graph="ring"), dict(n=4, dim=3, threshold=9),
     dict(n=20, dim=3, graph="sparse", k=3), dict(n=4, dim=3, bits=80)],
)
def test_config_rejects_impossible_values(kwargs):
    with pytest.raises(ConfigurationError):
        MaskingConfig(**kwargs)
