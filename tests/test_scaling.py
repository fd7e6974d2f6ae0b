"""The scaling table: counts of what a session did, the floor it is compared with, the
projection, and the ``secagg bench --scaling`` report."""

from __future__ import annotations

import json

import pytest

from secagg.cli import main
from secagg._scaling import measure, project, scaling_table


@pytest.fixture(scope="module")
def point():
    return measure(40, 8, dropout=0.1, seed=3)


def test_counts_are_what_the_protocol_must_do(point):
    p = point
    assert (p.n, p.d, p.survivors) == (40, 8, 36)
    # every client verifies each neighbour's signed keys, the server every advertisement
    assert p.signature_checks == p.n * p.k + p.n
    # two agreements per neighbour for every client, plus the server's for the dropped clients' masks
    assert 2 * p.n * p.k <= p.agreements <= 2 * p.n * p.k + 4 * p.k * (p.n - p.survivors)
    # keystream: every survivor's self mask and pairwise masks, the server's removal of them
    assert p.keystream_bytes >= 2 * p.survivors * 4 * p.d
    assert 0 < p.floor_seconds < p.cpu_seconds and p.ratio > 1 and p.ratio_pk < p.ratio
    assert p.peak_rss_mib >= p.baseline_rss_mib > 0


def test_projection_grows_with_the_degree_and_states_its_base(point):
    far = project([point], targets=(1_000, 100_000))
    assert [q.n for q in far] == [1_000, 100_000] and all(q.projected for q in far)
    assert far[0].k <= far[1].k and far[0].client_seconds <= far[1].client_seconds
    assert far[1].client_seconds == pytest.approx(point.client_seconds * far[1].k / point.k)
    assert "projected from n=40" in far[1].note
    assert "*(projected)*" in scaling_table(far)


def test_bench_scaling_writes_the_report(tmp_path, capsys):
    assert main(["bench", "--scaling", "--n", "30", "--d", "4", "--no-progress", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| 30 | 4 |" in out and "1,000,000 *(projected)*" in out
    data = json.loads((tmp_path / "scaling.json").read_text())
    assert [p["n"] for p in data["points"]] == [30, 100_000, 1_000_000]
    assert (tmp_path / "scaling.png").stat().st_size > 1000 and "floor" in (tmp_path / "scaling.md").read_text()
