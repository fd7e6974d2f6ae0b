"""The overhead sweep behind `secagg bench`: numbers, report files, growth exponents."""

import json

import numpy as np
import pytest

from secagg.cli import main
from secagg.errors import ConfigurationError
from secagg._overhead import SweepConfig, fit_exponent, markdown_table, run_sweep, write_report


@pytest.mark.parametrize("k", [0.0, 1.0, 2.0, -0.5])
def test_fit_exponent_recovers_power_laws(k):
    xs = np.array([10, 30, 100, 300, 1000], dtype=float)
    assert fit_exponent(xs, 3.5 * xs**k) == pytest.approx(k, abs=1e-9)


def test_fit_exponent_needs_two_distinct_positive_points():
    assert fit_exponent([10], [1.0]) is None
    assert fit_exponent([10, 10], [1.0, 2.0]) is None
    assert fit_exponent([10, 20], [0.0, 1.0]) is None


def test_sweep_records_real_bytes_and_expansion():
    cfg = SweepConfig(n_values=(2, 4), d_values=(10, 40), n_fixed=3, d_fixed=20, repeats=2, techniques=("plain",))
    pts = run_sweep(cfg, progress=False)
    assert [(p.n, p.d, p.axis) for p in pts] == [(2, 20, "n"), (4, 20, "n"), (3, 10, "d"), (3, 40, "d")]
    for p in pts:
        assert p.bytes_up == 4 * p.d and p.expansion == pytest.approx(1.0)
        assert p.client_seconds_min <= p.client_seconds_median
        assert p.server_seconds_min <= p.server_seconds_median


def test_unknown_technique_is_refused():
    with pytest.raises(ConfigurationError, match="unknown techniques"):
        run_sweep(SweepConfig((2,), (4,), 2, 4, techniques=("nope",)), progress=False)


def test_phe_reference_is_marked_extrapolated_and_scales_with_d():
    cfg = SweepConfig(n_values=(2,), d_values=(10, 100), n_fixed=2, d_fixed=10, repeats=1,
                      key_bits=1024, techniques=("phe-scalar",))
    pts = run_sweep(cfg, progress=False)
    assert all(p.extrapolated for p in pts)
    by_d = {p.d: p for p in pts if p.axis == "d"}
    assert by_d[100].client_seconds_min == pytest.approx(10 * by_d[10].client_seconds_min)
    assert by_d[100].bytes_up == 100 * 2 * 1024 // 8
    assert by_d[100].server_ratio_to_plain is not None and by_d[100].server_ratio_to_plain > 1


def test_report_files_and_json(tmp_path):
    cfg = SweepConfig(n_values=(2, 4), d_values=(10, 40), n_fixed=3, d_fixed=20, repeats=1, techniques=("plain",))
    pts = run_sweep(cfg, progress=False)
    folder = write_report(pts, cfg, tmp_path / "r", wall_seconds=1.0)
    data = json.loads((folder / "report.json").read_text())
    assert len(data["points"]) == 4
    assert data["exponents"]["plain"]["bytes_vs_d"] == pytest.approx(1.0)
    assert data["exponents"]["plain"]["bytes_vs_n"] == pytest.approx(0.0, abs=1e-9)
    md = (folder / "report.md").read_text()
    assert markdown_table(pts) in md
    pngs = sorted(p.name for p in folder.glob("*.png"))
    assert pngs == sorted(f"{m}_vs_{a}.png" for m in ("client_time", "server_time", "bytes_up") for a in "nd")
    assert all((folder / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_bench_command_writes_report(tmp_path, capsys):
    rc = main(["bench", "--quick", "--techniques", "plain", "--n", "2,3", "--d", "8,16",
               "--repeats", "1", "--no-progress", "--out", str(tmp_path)])
    assert rc == 0
    assert (tmp_path / "report.md").exists() and (tmp_path / "report.json").exists()
    assert "| plain | 2 |" in capsys.readouterr().out


# ---------------------------------------------------------------- plots a reader trusts (issue 14)
def _capture_figures(monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = []
    monkeypatch.setattr(plt, "close", lambda fig=None: figs.append(fig))
    return figs


def _point(tech, n, d, axis, y, extrapolated=False):
    from secagg._overhead import BenchPoint

    return BenchPoint(tech, n, d, axis, y, y, y, y, 100.0 * y, 0.0, 1.0, extrapolated=extrapolated)


def test_bench_plots_tick_the_measured_values_and_keep_every_series_visible(tmp_path, monkeypatch):
    from secagg._overhead import write_plots

    figs = _capture_figures(monkeypatch)
    techs = ["plain", "secagg", "secagg+", "paillier", "phe-scalar"]
    pts = [_point(t, n, 1000, "n", 1.0 + n * (t != "plain"), extrapolated=t == "phe-scalar")
           for t in techs for n in (4, 8, 16)]
    pts += [_point(t, 8, d, "d", 1.0 + d / 1e3, extrapolated=t == "phe-scalar")
            for t in techs for d in (1_000, 10_000, 100_000)]
    write_plots(pts, tmp_path)
    by_name = {f.axes[0].get_title(): f.axes[0] for f in figs}
    ax_n = by_name["client seconds vs n (d = 1,000)"]
    assert list(ax_n.get_xticks()) == [4, 8, 16]  # not 4, 6, 10
    assert [t.get_text() for t in by_name["client seconds vs d (n = 8)"].get_xticklabels()] == ["1k", "10k", "100k"]
    lines = {ln.get_label().split(" (")[0]: ln for ln in ax_n.get_lines()}
    styles = [(ln.get_marker(), ln.get_linestyle(), ln.get_markerfacecolor()) for ln in lines.values()]
    assert len(set(styles)) == len(techs)  # secagg and secagg+ coincide here, yet look different
    assert lines["secagg"].get_markerfacecolor() == "none" and lines["secagg"].get_markersize() > \
        lines["secagg+"].get_markersize()
    assert "extrapolated" in next(ln.get_label() for ln in ax_n.get_lines() if ln.get_label().startswith("phe"))
    assert "extrapolated" not in lines["paillier"].get_label()
