"""The federated CLI: `secagg compare`, `secagg fedavg`, and the demo driver (small sizes)."""

import json

import pytest

from fl.compare import COMPARE_SETTINGS, DemoOptions, evaluate_claims, run_demo
from secagg.cli import main


def test_compare_writes_json_and_markdown_with_every_setting(tmp_path, capsys):
    out = tmp_path / "cmp"
    rc = main(["compare", "--rounds", "3", "--clients", "6", "--dropout", "0.3", "--seed", "1", "--epsilons", "8",
               "--repeats", "2",
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
    assert by["distributed-dp"]["privacy_unit"] == "example" and by["distributed-dp"]["epsilon"] <= 8.0
    md = (out / "compare.md").read_text()
    assert "| setting |" in md and "supported?" in md and "heterogeneous devices" in md
    assert "| privacy unit |" in md and "eps <= 8" in md
    head = json.loads((out / "compare_context.json").read_text())["context"]["accuracy_at_epsilon"]
    assert {r["unit"] for r in head["rows"]} == {"client", "example"} and head["seeds"] == [1, 2]
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
    # an equal accuracy is no measured cost: "no", not "yes"
    dp = {"setting": "distributed-dp", "accuracy": 0.9, "epsilon": 8.0, "raw_data_leaves_clients": False}
    claims = {c["claim"]: c for c in evaluate_claims(rows + [dp])}
    assert claims["Differential privacy costs accuracy"]["supported"] is False
    claims = {c["claim"]: c for c in evaluate_claims(rows + [dict(dp, accuracy=0.85)])}
    assert claims["Differential privacy costs accuracy"]["supported"] is True


def test_demo_writes_plots_and_json(tmp_path):
    opt = DemoOptions(rounds=2, example_rounds=2, epsilons=(2.0, 8.0), epsilon_seeds=1)
    lines = []
    doc = run_demo(str(tmp_path), opt, progress=False, print_fn=lines.append)
    for name in ("accuracy_vs_round.png", "accuracy_vs_epsilon.png", "bytes_per_round.png", "results.json"):
        assert (tmp_path / name).stat().st_size > 1000
    data = json.loads((tmp_path / "results.json").read_text())
    by = {r["technique"]: r for r in data["table"]}
    assert {"plain", "secagg", "secagg+", "paillier", "central-dp (example)", "distributed-dp (example)",
            "local-dp (example)", "distributed-dp (client)"} <= set(by)
    for label, r in by.items():  # every DP row states its unit and stays within the demo's budget
        assert (r["epsilon"] is not None) == (r["privacy_unit"] != "-")
        if r["epsilon"] is not None:
            assert r["privacy_unit"] == label.split("(")[1].rstrip(")") and r["epsilon"] <= 8.0
    head = data["accuracy_at_epsilon"]
    assert head["epsilons"] == [2.0, 8.0] and head["delta"] == 1e-5
    assert {(r["unit"], r["technique"]) for r in head["rows"]} >= {("example", "distributed-dp"),
                                                                    ("client", "distributed-dp")}
    for r in head["rows"]:
        assert [p["target_epsilon"] for p in r["points"]] == [2.0, 8.0]
        assert all(p["epsilon"] <= p["target_epsilon"] for p in r["points"])
    assert head["baseline"]["available"] or head["baseline"]["reason"]
    assert set(data["privacy_units"]) == {"client", "example"} and data["reproducible_noise"] is False
    assert any("privacy unit" in line for line in lines) and doc["files"]["results_json"].endswith("results.json")


def test_reproducible_noise_flag_warns_and_is_recorded(tmp_path, capsys):
    path = tmp_path / "run.json"
    argv = ["fedavg", "--aggregator", "central-dp", "--noise-multiplier", "2", "--rounds", "2", "--clients", "4",
            "--json", str(path)]
    assert main(argv) == 0
    assert json.loads(path.read_text())["privacy"]["reproducible_noise"] is False
    assert "reproducible" not in capsys.readouterr().err
    assert main(argv + ["--reproducible-noise"]) == 0
    assert "warning: --reproducible-noise" in capsys.readouterr().err
    assert json.loads(path.read_text())["privacy"]["reproducible_noise"] is True


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
    (["fedavg", "--aggregator", "secagg", "--dp-unit", "example"], "--dp-unit applies only to DP aggregators"),
    (["fedavg", "--aggregator", "plain", "--epsilon", "2"], "--epsilon applies only to DP aggregators"),
    (["fedavg", "--aggregator", "plain", "--reproducible-noise"], "--reproducible-noise applies only"),
    (["fedavg", "--aggregator", "central-dp", "--epsilon", "2", "--example-rate", "0.5"],
     "--example-rate applies only with --dp-unit example"),
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
