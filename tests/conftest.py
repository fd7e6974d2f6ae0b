"""Test-suite configuration.

Hypothesis runs derandomized (a fixed seed per test) when ``CI`` is set, so CI is
deterministic as the design asks; locally it explores new examples on every run. Set
``HYPOTHESIS_PROFILE=explore`` to force exploration, ``ci`` to reproduce CI.
"""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "explore"))
