"""The README's Python examples run as written and give what they claim."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_quick_start_sum_is_exact_up_to_quantization(capsys):
    ns: dict = {}
    exec(compile(_blocks()[0], "README quick start", "exec"), ns)
    err = float(capsys.readouterr().out.strip())
    assert err < 1e-6
    np.testing.assert_allclose(ns["total"], ns["updates"].sum(axis=0), atol=1e-6)


def test_one_example_per_technique():
    ns: dict = {}
    exec(compile(_blocks()[1], "README examples", "exec"), ns)
    updates = ns["updates"]
    res = ns["res"]
    assert res.survivors == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    np.testing.assert_allclose(res.sum, updates[res.survivors].sum(axis=0), atol=1e-6)
    # 16-bit slots for 10 clients: resolution 1/q_max with q_max = 3276
    np.testing.assert_allclose(ns["total"], updates.sum(axis=0), atol=10 / 3276)
    assert round(ns["acc"].get_epsilon(1e-5), 2) == 1.52  # the PLD accountant, the default (README: 1.515)
    assert ns["noisy"].info["epsilon_achieved"] > 0 and ns["noisy"].noise_std > 0
