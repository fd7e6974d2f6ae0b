"""The federated CLI: `secagg compare`, `secagg fedavg`, and the demo driver (small sizes)."""

import json
import os

import pytest

from fl.compare import COMPARE_SETTINGS, DemoOptions, evaluate_claims, run_demo
from secagg.cli import main


def test_compare_writes_json_and_markdown_with_every_setting(tmp_path, capsys):
    out = tmp_path / "cmp"
    rc = main(["compare", "--rounds", "3", "--clients", "6", "--dropout", "0.3", "--seed", "1",
               "--out", str(out), "--no-progress"])
    assert rc == 0
    rows = json.loads((out / "compare.json").read_text())
    assert [r["setting"] for r in rows] == list(COMPARE_SETTINGS)
    for r in rows:
        assert {"setting", "accuracy", "bytes_total", "epsilon", "dropout", "wall_seconds"} <= set(r)
        assert 0.0 <= r["accuracy"] <= 1.0 and r["bytes_total"] > 0 and r["wall_seconds"] >= 0
        assert (r["epsilon"] is not None) == (r["setting"] == "distributed-dp")
    by = {r["setting"]: r for r in rows}
    assert by["secagg"]["dropout"] == 0.3 and by["secagg"]["rounds_completed"] == 3
    assert by["distributed"]["raw_data_leaves_clients"] and not by["fedavg"]["raw_data_leaves_clients"]
    md = (out / "compare.md").read_text()
    assert "| setting |" in md and "supported?" in md and "heterogeneous devices" in md
    assert "compare.json" in capsys.readouterr().out


def test_claims_are_judged_from_the_numbers():
    rows = [
        {"setting": "distributed", "raw_data_leaves_clients": True, "bytes_data_moved": 10, "bytes_total": 1000,
         "simulated_seconds": 50.0},
        {"setting": "fedavg", "raw_data_leaves_clients": False, "bytes_total": 100, "simulated_seconds": 5.0,
         "bytes_up_per_client_round": 10.0, "accuracy": 0.9, "dropout": 0.3},
        {"setting": "secagg", "raw_data_leaves_clients": False, "bytes_up_per_client_round": 8.0, "accuracy": 0.9,
         "dropout_survived": 0.3, "rounds_completed": 3},
    ]
    claims = {c["claim"]: c for c in evaluate_claims(rows)}
    assert claims["FL needs less communication than distributed training"]["supported"] is True
    # a (fake) secure aggregation smaller than plain contradicts the claim: judged False, not assumed
    assert claims["Secure aggregation (SMPC / HE) makes federated updates larger, not smaller"]["supported"] is False
    assert claims["Differential privacy costs accuracy"]["supported"] is None


def test_demo_writes_plots_and_json(tmp_path):
    opt = DemoOptions(rounds=2, epsilon_noise=(4.0, 2.0, 1.0, 0.5), epsilon_seeds=1)
    lines = []
    doc = run_demo(str(tmp_path), opt, progress=False, print_fn=lines.append)
    for name in ("accuracy_vs_round.png", "accuracy_vs_epsilon.png", "bytes_per_round.png", "results.json"):
        assert (tmp_path / name).stat().st_size > 1000
    data = json.loads((tmp_path / "results.json").read_text())
    techniques = [r["technique"] for r in data["table"]]
    assert {"plain", "secagg", "secagg+", "paillier", "central-dp", "distributed-dp", "local-dp"} <= set(techniques)
    eps = [p["epsilon"] for p in data["accuracy_vs_epsilon"]["central-dp"]]
    assert len(eps) == 4 and eps == sorted(eps) and eps[0] > 0
    assert any("accuracy" in line for line in lines) and doc["files"]["results_json"].endswith("results.json")


def test_fedavg_command_runs_and_writes_json(tmp_path, capsys):
    path = tmp_path / "run.json"
    assert main(["fedavg", "--aggregator", "secagg+", "--rounds", "2", "--clients", "5", "--json", str(path)]) == 0
    doc = json.loads(path.read_text())
    assert doc["aggregator"] == "secagg+" and len(doc["rounds"]) == 2
    assert "final accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["fedavg", "--aggregator", "secagg", "--threshold", "20"], "threshold 20 is above the 10 clients"),
    (["fedavg", "--aggregator", "central-dp", "--noise-multiplier", "0.5", "--epsilon", "1"], "above the budget 1"),
    (["fedavg", "--aggregator", "central-dp"], "give --noise-multiplier or --epsilon"),
])
def test_bad_input_is_one_clear_line_and_nothing_trains(argv, message, capsys, monkeypatch):
    import fl.client

    monkeypatch.setattr(fl.client.Client, "local_update", lambda *a, **k: pytest.fail("trained"))
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("secagg: error:") and message in err


def test_unknown_dataset_and_aggregator_are_rejected_by_the_parser(capsys):
    assert main(["compare", "--dataset", "mnist"]) == 2
    assert "argument --dataset: invalid choice: 'mnist'" in capsys.readouterr().err
    assert main(["fedavg", "--aggregator", "nope"]) == 2
    assert "argument --aggregator: invalid choice: 'nope'" in capsys.readouterr().err
