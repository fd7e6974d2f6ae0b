"""The overhead sweep behind `secagg bench`: numbers, report files, growth exponents."""

import json

import numpy as np
import pytest

from secagg.cli import main
from secagg.errors import ConfigurationError
from secagg.overhead import SweepConfig, fit_exponent, markdown_table, run_sweep, write_report


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
