"""Regenerate the dp_accounting PLD reference values used by test_dp_pld.py (not collected by pytest).

Needs ``pip install dp-accounting`` (v0.6.0 was used; a dev dependency only). Prints
Python literals:

    .venv/bin/python tests/dp/make_pld_reference_values.py > /tmp/pld_ref.txt

* PLD_GRID: ``dp_accounting.pld.PLDAccountant()`` (discretization 1e-4, pessimistic,
  add-or-remove), ``PoissonSampledDpEvent(q, GaussianDpEvent(sigma))`` composed
  ``steps`` times, ``get_epsilon(delta)``, over q x sigma x steps x delta.
* PLD_OPTIMISTIC: the same PLD with ``pessimistic_estimate=False`` (a lower estimate of
  the true epsilon: the truth lies between it and the pessimistic value).
* LAPLACE_PLD, DISCRETE_GAUSSIAN_PLD: ``from_laplace_mechanism`` /
  ``from_discrete_gaussian_mechanism`` self-composed, ``get_epsilon_for_delta``; the
  SUBSAMPLED_ variants pass ``sampling_prob=q``.
"""

import logging

import dp_accounting
from dp_accounting.pld import pld_privacy_accountant, privacy_loss_distribution

logging.getLogger("absl").setLevel(logging.ERROR)

QS = (0.001, 0.01, 0.04, 1.0)
SIGMAS = (0.8, 1.1, 1.5, 4.0, 9.61)
STEPS = (1, 20, 1000, 2250)
DELTAS = (1e-5, 1e-7)


def main() -> None:
    print(f"# dp_accounting {getattr(dp_accounting, '__version__', '0.6.0')} PLDAccountant(), interval 1e-4")
    print("PLD_GRID = {")
    for q in QS:
        for s in SIGMAS:
            for t in STEPS:
                acc = pld_privacy_accountant.PLDAccountant()
                acc.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(s)), t)
                for d in DELTAS:
                    print(f"    ({q!r}, {s!r}, {t!r}, {d!r}): {float(acc.get_epsilon(d))!r},")
    print("}")
    print("PLD_OPTIMISTIC = {")
    for q, s, t in ((0.01, 1.1, 1000), (0.04, 1.5, 2250), (0.001, 0.8, 2250), (0.01, 4.0, 20)):
        pld = privacy_loss_distribution.from_gaussian_mechanism(
            s, sampling_prob=q, pessimistic_estimate=False, use_connect_dots=False
        ).self_compose(t)
        print(f"    ({q!r}, {s!r}, {t!r}, 1e-05): {float(pld.get_epsilon_for_delta(1e-5))!r},")
    print("}")
    print("LAPLACE_PLD = {")
    for b, t in ((0.5, 1), (1.0, 10), (3.0, 100)):
        pld = privacy_loss_distribution.from_laplace_mechanism(b).self_compose(t)
        print(f"    ({b!r}, {t!r}, 1e-05): {float(pld.get_epsilon_for_delta(1e-5))!r},")
    print("}")
    # discrete Gaussian: (connect-the-dots estimate, optimistic lower estimate)
    print("DISCRETE_GAUSSIAN_PLD = {")
    for sigma, sens, t in ((1.0, 1, 1), (2.0, 1, 10), (5.0, 3, 20), (0.6, 1, 5)):
        est = []
        for kw in ({"use_connect_dots": True}, {"pessimistic_estimate": False}):
            pld = privacy_loss_distribution.from_discrete_gaussian_mechanism(sigma, sensitivity=sens, **kw)
            est.append(float(pld.self_compose(t).get_epsilon_for_delta(1e-5)))
        print(f"    ({sigma!r}, {sens!r}, {t!r}, 1e-05): ({est[0]!r}, {est[1]!r}),")
    print("}")
    print("SUBSAMPLED_DISCRETE_GAUSSIAN_PLD = {")
    for sigma, sens, q, t in ((2.0, 1, 0.1, 50), (1.0, 1, 0.01, 200), (5.0, 2, 0.05, 100)):
        est = []
        for kw in ({"use_connect_dots": True}, {"pessimistic_estimate": False}):
            pld = privacy_loss_distribution.from_discrete_gaussian_mechanism(sigma, sensitivity=sens, sampling_prob=q, **kw)
            est.append(float(pld.self_compose(t).get_epsilon_for_delta(1e-5)))
        print(f"    ({sigma!r}, {sens!r}, {q!r}, {t!r}, 1e-05): ({est[0]!r}, {est[1]!r}),")
    print("}")
    print("SUBSAMPLED_LAPLACE_PLD = {")
    for b, q, t in ((1.0, 0.05, 100), (0.5, 0.01, 500)):
        pld = privacy_loss_distribution.from_laplace_mechanism(b, sampling_prob=q).self_compose(t)
        print(f"    ({b!r}, {q!r}, {t!r}, 1e-05): {float(pld.get_epsilon_for_delta(1e-5))!r},")
    print("}")


if __name__ == "__main__":
    main()
