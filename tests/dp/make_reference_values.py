"""Regenerate the dp_accounting reference values pasted into test_dp_accountant.py.

Not collected by pytest (no ``test_`` prefix). Needs ``pip install dp-accounting``
(v0.6.0 was used); dp_accounting is *not* a dependency of secagg.

    .venv/bin/python tests/dp/make_reference_values.py > /tmp/ref.txt
"""

import logging

import dp_accounting
from dp_accounting.rdp import rdp_privacy_accountant as rdp

logging.getLogger("absl").setLevel(logging.ERROR)

QS = (0.001, 0.01, 0.1, 1.0)
SIGMAS = (0.5, 1.0, 2.0, 5.0)
STEPS = (1, 100, 10000)
DELTA = 1e-5


def main() -> None:
    print(f"# dp_accounting {getattr(dp_accounting, '__version__', '?')}, default orders, delta={DELTA}")
    print("EPSILON_REFERENCE = {")
    for q in QS:
        for s in SIGMAS:
            for t in STEPS:
                acc = rdp.RdpAccountant()
                acc.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(s)), t)
                print(f"    ({q!r}, {s!r}, {t!r}): {float(acc.get_epsilon(DELTA))!r},")
    print("}")
    print("DELTA_REFERENCE = {")
    for q, s, t, eps in ((0.01, 1.0, 100, 1.0), (0.01, 1.1, 1000, 2.0), (0.1, 2.0, 100, 3.0), (1.0, 5.0, 1, 0.5), (0.001, 0.5, 10000, 4.0)):
        acc = rdp.RdpAccountant()
        acc.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(s)), t)
        print(f"    ({q!r}, {s!r}, {t!r}, {eps!r}): {float(acc.get_delta(eps))!r},")
    print("}")
    print("LAPLACE_REFERENCE = {")
    for b, t in ((0.5, 1), (1.0, 10), (3.0, 100)):
        acc = rdp.RdpAccountant()
        acc.compose(dp_accounting.LaplaceDpEvent(b), t)
        print(f"    ({b!r}, {t!r}): {float(acc.get_epsilon(DELTA))!r},")
    print("}")
    print("ANALYTIC_GAUSSIAN_REFERENCE = {")
    from dp_accounting import gaussian_mechanism

    for e, d in ((0.1, 1e-5), (0.5, 1e-3), (1.0, 1e-5), (2.0, 1e-6), (5.0, 1e-6), (10.0, 1e-10)):
        print(f"    ({e!r}, {d!r}): {gaussian_mechanism.get_sigma_gaussian(e, d)!r},")
    print("}")


if __name__ == "__main__":
    main()
