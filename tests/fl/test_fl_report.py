"""The demo's plots: integer rounds, identical curves told apart, linear bars (issue 14)."""

import numpy as np
import pytest

from fl.report import identical_groups, plot_accuracy_vs_epsilon, plot_accuracy_vs_round, plot_bytes_per_round


@pytest.fixture
def figs(monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    captured = []
    monkeypatch.setattr(plt, "close", lambda fig=None: captured.append(fig))
    return captured


def test_identical_curves_are_grouped():
    curves = {"a": [0.1, 0.2], "b": [0.1, 0.2], "c": [0.1, 0.3], "d": [0.1, 0.2], "e": [0.1, 0.3], "f": [0.5]}
    assert identical_groups(curves) == [["a", "b", "d"], ["c", "e"]]


def test_accuracy_by_round_has_integer_ticks_and_keeps_identical_curves_visible(tmp_path, figs):
    same = list(np.linspace(0.8, 0.95, 10))
    curves = {name: same for name in ("plain", "secagg", "secagg+", "paillier", "secagg+ (30% dropout)")}
    curves["central-dp"] = list(np.linspace(0.7, 0.9, 10))
    plot_accuracy_vs_round(curves, tmp_path / "acc.png")
    fig = figs[-1]
    ax = fig.axes[0]
    ticks = [t for t in ax.get_xticks() if 1 <= t <= 10]
    assert ticks and all(float(t).is_integer() for t in ticks)  # no 2.5 or 7.5
    lines = ax.get_lines()
    assert len({(ln.get_marker(), ln.get_linestyle()) for ln in lines}) == len(curves)
    # the five identical curves put their markers on different rounds, so each one shows
    starts = {ln.get_label(): ln.get_markevery() for ln in lines}
    assert sorted(starts[n] for n in list(curves)[:5]) == [(i, 5) for i in range(5)]
    assert starts["central-dp"] is None
    notes = " ".join(t.get_text() for t in fig.texts)
    assert "identical" in notes and "plain = secagg = secagg+ = paillier = secagg+ (30% dropout)" in notes


def test_bytes_bars_are_on_a_linear_axis_with_the_legend_beside_them(tmp_path, figs):
    up = {"plain": 124.0, "secagg": 1945.0, "paillier": 564.0}
    plot_bytes_per_round(up, {k: 4 * v for k, v in up.items()}, tmp_path / "bytes.png")
    fig = figs[-1]
    ax = fig.axes[0]
    assert ax.get_yscale() == "linear" and ax.get_ylim()[0] == 0
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1  # not drawn over the bars
    labels = [t.get_text() for t in ax.texts]
    assert "1,945" in labels and "7,780" in labels


def test_accuracy_vs_epsilon_ticks_each_epsilon_once(tmp_path, figs):
    series = {"central-dp": [(1.67, 0.7, 0.01), (8.08, 0.9, 0.01)],
              "distributed-dp": [(1.6701, 0.6, 0.02), (8.0801, 0.88, 0.01)]}
    plot_accuracy_vs_epsilon(series, tmp_path / "eps.png")
    ax = figs[-1].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1.67", "8.08"]


def test_compare_tables_show_no_spread_for_one_seed_and_cite_the_article():
    from fl.compare import ARTICLE, compare_markdown

    context = {"dataset": "d", "clients": 4, "rounds": 2, "local_epochs": 1, "partition": "iid", "dropout": 0.3,
               "paillier_key_bits": 2048, "dp_epsilon": 8.0, "delta": 1e-5, "seed": 0}
    row = {"setting": "fedavg", "accuracy": 0.9, "accuracy_std": None, "dropout_survived": 0.3}
    one = compare_markdown([row], [], dict(context, repeats=1, seeds=[0]))
    assert "| fedavg | 0.9000 | n/a |" in one and "0.0000" not in one and "one seed (0)" in one
    three = compare_markdown([dict(row, accuracy_std=0.012)], [], dict(context, repeats=3, seeds=[0, 1, 2]))
    assert "| fedavg | 0.9000 | 0.0120 |" in three and "means over 3 seeds" in three
    assert f"## Claims of the article {ARTICLE}, measured" in one
    assert ARTICLE == '"Federated Learning vs Distributed Learning"'
