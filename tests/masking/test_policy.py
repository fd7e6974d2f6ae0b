"""The client's security policy: every rule refuses an announcement that violates it, by
name, and nothing weaker than the defaults is accepted without a weaker threat model."""

from __future__ import annotations

import pytest

from secagg.errors import ConfigurationError, InsecureParameterError
from secagg.masking import MaskingConfig, SecurityPolicy, ThreatModel


def announce(**changes):
    base = MaskingConfig(n=1000, dim=8, graph="sparse")
    fields = dict(n=base.n, dim=base.dim, bits=base.bits, threshold=base.threshold, graph="sparse", k=base.k,
                  adversary="active", min_survivors=base.min_survivors)
    return {**fields, **changes}


def test_the_finders_defaults_pass_and_build_the_same_config():
    cfg = SecurityPolicy().config_for(**announce())
    ref = MaskingConfig(n=1000, dim=8, graph="sparse")
    assert (cfg.k, cfg.threshold, cfg.min_survivors, cfg.consistency_check) == (
        ref.k, ref.threshold, ref.min_survivors, True)


@pytest.mark.parametrize(
    "policy,changes,rule",
    [
        (SecurityPolicy(), dict(adversary="honest-but-curious"), "consistency check required"),
        (SecurityPolicy(), dict(threshold=43), "threat model"),          # below 2t - |H| - 1 for 5 % corrupt
        (SecurityPolicy(), dict(k=20, threshold=15), "threat model"),     # too small a graph for 2^-40
        (SecurityPolicy(min_threshold=60), dict(), "minimum threshold"),
        (SecurityPolicy(min_degree=90), dict(), "minimum degree"),
        (SecurityPolicy(min_survivors=900), dict(), "minimum survivors"),
        (SecurityPolicy(), dict(adversary="lazy"), "unknown adversary"),
    ],
)
def test_each_rule_refuses_by_name(policy, changes, rule):
    with pytest.raises(InsecureParameterError, match=rule):
        policy.config_for(**announce(**changes))


def test_weakening_is_a_weaker_threat_model_that_says_so():
    hbc = SecurityPolicy(threat=ThreatModel(adversary="honest-but-curious"))
    weak = MaskingConfig(n=1000, dim=8, graph="sparse", threat=ThreatModel(adversary="honest-but-curious"))
    cfg = hbc.config_for(**announce(adversary="honest-but-curious", threshold=weak.threshold, k=weak.k,
                                    min_survivors=weak.min_survivors))
    assert not cfg.consistency_check and cfg.threshold == weak.threshold
    # an honest-but-curious-tolerant client still runs the active protocol when the server does
    assert hbc.config_for(**announce()).consistency_check


@pytest.mark.parametrize("kw", [dict(min_threshold=0), dict(min_degree=-2), dict(min_survivors=1.5),
                                dict(threat="active")])
def test_policy_refuses_impossible_minimums(kw):
    with pytest.raises(ConfigurationError):
        SecurityPolicy(**kw)
