"""The example of ``examples/flower`` runs as documented (``python -m examples.flower.run``)."""

from __future__ import annotations

import pytest

pytest.importorskip("flwr")
pytest.importorskip("ray")


@pytest.mark.slow
def test_example_runs_with_a_dropout_and_learns(capsys):
    from examples.flower.run import main

    main(["--nodes", "5", "--rounds", "3", "--drop", "2:1"])
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [(r[0], r[2], r[3]) for r in rows[:3]] == [("1", "5", "0"), ("2", "4", "1"), ("3", "5", "0")]
    first_loss = float(out.split("mean squared error of the final global model:")[1])
    assert first_loss < 2.0  # three rounds of FedAvg move the model far from zero (MSE ~ 8 at zero)
