"""Attacks on the default configuration (issue 11): an active server that replays across
sessions, splits views, withholds, duplicates and downgrades, colluding with corrupt
clients; and malicious clients against an honest server. Each test asserts, with the
extractor of :mod:`adversary`, that no honest input can be recovered from what the server
collected, and that the outcome is the correct sum of the survivors or a clean abort.

The extractor is itself tested first: against a threshold that is too low for the attack,
it does recover the victim's input, so a passing test means the attack failed, not that
the extractor cannot see.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secagg.errors import ProtocolAbort, ProtocolViolation, UnexpectedMessage
from secagg.masking import ThreatModel, simulate_ring
from secagg.masking import _messages as M
from secagg.quantize import ring_sum

from adversary import Lab, dropped_for

HBC = ThreatModel(adversary="honest-but-curious")
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def split_view_attack(lab: Lab, victim: int, group_a, group_b) -> None:
    """Show ``group_a`` (and the victim) that everybody survived (they reveal the victim's
    self-mask shares) and ``group_b`` that the victim dropped (they reveal its key shares);
    corrupt clients vouch for both views and give both shares."""
    everyone = tuple(sorted(lab.server.state.u2))
    without = tuple(v for v in everyone if v != victim)
    views = {u: everyone for u in lab.honest}
    for u in group_b:
        views[u] = without
    if lab.cfg.consistency_check:
        lab.collect_vouchers(views, extra_views=[everyone, without])
    for u in lab.honest:
        lab.request_unmask(u, views[u], dropped_for(lab, views[u]))


# ----------------------------------------------------------------------------- the extractor sees
def test_extractor_recovers_the_input_when_the_threshold_allows_the_split():
    """Honest-but-curious threshold (t = 2 of 5) under an active server: the split view
    hands the server both secrets of client 4, and the extractor unmasks its input."""
    lab = Lab(n=5, threat=HBC)
    lab.run_to_masked_inputs()
    split_view_attack(lab, victim=4, group_a=[0, 1], group_b=[2, 3])
    assert lab.both_secrets()[4] and lab.recovered_inputs()[4]


def test_colluders_beyond_the_bound_break_the_complete_graph_exactly_there():
    """The bound is tight: with t = 5 of 7 holders the default tolerates 2t - n - 1 = 2
    corrupt holders; with 3 colluders the split view recovers the victim's input."""
    lab = Lab(n=7, corrupt=frozenset({4, 5, 6}))
    assert lab.cfg.threshold == 5 and lab.cfg.params.tolerated_corrupt_holders == 2
    lab.run_to_masked_inputs()
    split_view_attack(lab, victim=0, group_a=[1], group_b=[2, 3])
    assert lab.recovered_inputs()[0]


# ----------------------------------------------------------------------------- attack 2: split views
@pytest.mark.parametrize("group_b", [b for r in range(4) for b in itertools.combinations([0, 1, 2], r)])
def test_split_view_with_one_colluder_never_recovers_an_input_complete_graph(group_b):
    """n = 5, client 3 colludes, victim 4: every way of splitting the honest holders
    between 'everyone survived' and '4 dropped' fails (t = 4 by default)."""
    lab = Lab(n=5, corrupt=frozenset({3}))
    lab.run_to_masked_inputs()
    group_a = [u for u in (0, 1, 2) if u not in group_b]
    split_view_attack(lab, victim=4, group_a=group_a, group_b=list(group_b))
    assert not any(lab.both_secrets().values())
    assert not any(lab.recovered_inputs().values())


def test_colluders_up_to_the_bound_never_recover_an_input_complete_graph():
    lab = Lab(n=7, corrupt=frozenset({5, 6}))  # the tolerated 2
    lab.run_to_masked_inputs()
    for group_b in itertools.chain.from_iterable(itertools.combinations([1, 2, 3, 4], r) for r in range(5)):
        trial = Lab(n=7, corrupt=frozenset({5, 6}), signing_keys=lab.signing_keys)
        trial.run_to_masked_inputs()
        split_view_attack(trial, victim=0, group_a=[u for u in (1, 2, 3, 4) if u not in group_b],
                          group_b=list(group_b))
        assert not any(trial.recovered_inputs().values()), group_b


@settings(max_examples=6, **SETTINGS)
@given(data=st.data())
def test_split_view_on_secagg_plus_fails_with_colluders_among_the_victims_holders(data):
    """SecAgg+ with the finder's default k and t for 50 clients: the corrupt clients are
    the most the bound tolerates among one victim's holders; the server shows every
    honest client one of the two views at random."""
    lab = Lab(n=50, graph="sparse", dim=4)
    victim = data.draw(st.integers(0, 49))
    neighbours = [int(v) for v in lab.g.neighbors(victim)]
    c = lab.cfg.params.tolerated_corrupt_holders
    corrupt = frozenset(data.draw(st.permutations(neighbours))[:c])
    lab = Lab(n=50, graph="sparse", dim=4, corrupt=corrupt, graph_seed=lab.g.seed, signing_keys=lab.signing_keys)
    lab.run_to_masked_inputs()
    honest_holders = [u for u in neighbours if u not in corrupt]
    group_b = [u for u in honest_holders if data.draw(st.booleans())]
    others_b = [u for u in lab.honest if u not in neighbours and u != victim and data.draw(st.booleans())]
    split_view_attack(lab, victim, [u for u in honest_holders if u not in group_b], group_b + others_b)
    assert not lab.both_secrets()[victim]
    assert not any(lab.recovered_inputs().values())


@settings(max_examples=15, **SETTINGS)
@given(data=st.data())
def test_random_views_and_colluders_never_recover_an_input(data):
    """Property: n in 5..8 on the complete graph, corrupt clients up to the tolerated
    bound, and an arbitrary survivor set per honest client (each containing it): the
    server never unmasks an honest input."""
    n = data.draw(st.integers(5, 8))
    probe = Lab(n=n)
    c = probe.cfg.params.tolerated_corrupt_holders
    corrupt = frozenset(data.draw(st.sets(st.integers(0, n - 1), max_size=c)))
    lab = Lab(n=n, corrupt=corrupt, signing_keys=probe.signing_keys)
    lab.run_to_masked_inputs()
    everyone = tuple(range(n))
    views = {}
    for u in lab.honest:
        others = data.draw(st.sets(st.sampled_from([v for v in everyone if v != u])))
        views[u] = tuple(sorted(set(others) | {u}))
    lab.collect_vouchers(views, extra_views=list(views.values()))
    for u in lab.honest:
        lab.request_unmask(u, views[u], dropped_for(lab, views[u]))
    assert not any(lab.both_secrets().values())
    assert not any(lab.recovered_inputs().values())


# ----------------------------------------------------------------------------- attack 1: replay
def _replay_vouchers(nonce: bytes, seed: bytes):
    """Attack 1 set-up: the server reuses its session nonce and graph with the same
    long-term keys, collects every client's vouchers over both survivor sets in
    throwaway sessions, then runs the real session showing clients 2 and 3 that client
    4 dropped and replays the harvested vouchers to each client."""
    base = Lab(n=5, nonce=nonce, graph_seed=seed)
    everyone, without = tuple(range(5)), (0, 1, 2, 3)
    harvested: dict[tuple[int, tuple[int, ...]], tuple] = {}
    for view in (everyone, without):
        throwaway = Lab(n=5, nonce=nonce, graph_seed=seed, signing_keys=base.signing_keys)
        throwaway.run_to_masked_inputs()
        throwaway.collect_vouchers({u: view for u in range(5)})
        for u in range(5):
            harvested[(u, view)] = tuple(sorted((a, mac) for (a, w, vw), mac in throwaway.vouchers.items()
                                                if vw == view and w == u))
    real = Lab(n=5, nonce=nonce, graph_seed=seed, signing_keys=base.signing_keys)
    real.run_to_masked_inputs()
    views = {0: everyone, 1: everyone, 4: everyone, 2: without, 3: without}
    real.collect_vouchers(views)  # each vouches for its own view, under this session's keys
    for u, view in views.items():
        real.request_unmask(u, view, dropped_for(real, view), macs=harvested[(u, view)])
    return real


def test_vouchers_replayed_from_another_session_with_the_same_nonce_are_refused():
    """Attack 1: vouchers harvested in other sessions (same nonce, same long-term keys)
    are MACs under keys agreed from that session's fresh X25519 keys and bound to its
    identity R: none verifies here, so every honest client counts only itself and
    refuses to reveal anything."""
    real = _replay_vouchers(bytes(range(16)), bytes(32))
    assert set(real.refusals) == set(range(5))
    assert all(isinstance(e, ProtocolAbort) and e.code == "below_threshold" and "vouched" in str(e)
               for e in real.refusals.values())
    assert real.responses == [] and not any(real.recovered_inputs().values())


def test_without_voucher_verification_the_replay_would_be_accepted(monkeypatch):
    """Ablation: if the client counted vouchers without checking their MACs, the replayed
    ones would pass and clients would reveal shares under a split view; so the refusal
    above comes from the voucher check, not from anything else in the set-up."""
    import types

    import secagg.masking.client as client_mod

    monkeypatch.setattr(client_mod, "hmac", types.SimpleNamespace(compare_digest=lambda a, b: True))
    real = _replay_vouchers(bytes(range(16)), bytes(32))
    assert not real.refusals and len(real.responses) == 5


def test_an_old_advertisement_replayed_into_a_new_session_splits_the_transcript():
    """The server shows client 0 the keys client 4 advertised in an earlier session (same
    nonce, validly signed). Client 0's session identity then differs from everyone else's:
    its share ciphertexts to 4 and its vouchers cannot be used with the others'."""
    nonce, seed = bytes(range(16)), bytes(32)
    old = Lab(n=5, nonce=nonce, graph_seed=seed)
    old.run_to_masked_inputs()
    old_adv = old.advertised[4]
    new = Lab(n=5, nonce=nonce, graph_seed=seed, signing_keys=old.signing_keys)
    out = new.server.start()
    for m in out:
        for rep in new.deliver(m):
            new.server.receive(rep)
    broadcast = new.server.close_round()
    for m in broadcast:
        if m.recipient == 0:
            m = dataclasses.replace(m, entries=tuple((v, *old_adv) if v == 4 else (v, c, s, g) for v, c, s, g in m.entries))
        new.deliver(m)
    assert new.view_of(0) is not None and new.view_of(0) != new.view_of(1) == new.view_of(4)


# ----------------------------------------------------------------------------- withhold, duplicate, downgrade
def test_withheld_share_ciphertexts_do_not_yield_both_shares():
    """The server withholds client 4's ciphertext from clients 0 and 1 (so to them 4
    'never shared keys') and then asks them for 4's key shares as if 4 dropped, while
    asking 2 and 3 for 4's self-mask share."""
    lab = Lab(n=5)

    def withhold(m):
        if isinstance(m, M.ForwardShares) and m.recipient in (0, 1):
            return dataclasses.replace(m, ciphertexts=tuple((v, c) for v, c in m.ciphertexts if v != 4))
        return m

    lab.run_to_masked_inputs(tamper_forward=withhold)
    split_view_attack(lab, victim=4, group_a=[2, 3], group_b=[0, 1])
    assert not any(lab.both_secrets().values()) and not any(lab.recovered_inputs().values())


def test_duplicated_and_out_of_order_requests_are_refused():
    lab = Lab(n=5)
    lab.run_to_masked_inputs()
    everyone = tuple(range(5))
    lab.collect_vouchers({u: everyone for u in lab.honest})
    lab.request_unmask(0, everyone, ())
    assert len(lab.responses) == 1
    lab.request_unmask(0, (0, 1, 2, 3), (4,))  # a second request, other sets
    assert len(lab.responses) == 1 and "duplicate" in str(lab.refusals[0])
    again = M.ConsistencyRequest(lab.server.session, 1, 5, everyone)
    with pytest.raises(Exception, match="duplicate|not allowed"):
        lab.clients[1].receive(again)


def test_a_request_for_both_shares_of_a_client_is_refused():
    lab = Lab(n=5)
    lab.run_to_masked_inputs()
    everyone = tuple(range(5))
    lab.collect_vouchers({u: everyone for u in lab.honest})
    lab.request_unmask(0, everyone, (4,))
    assert isinstance(lab.refusals[0], ProtocolViolation) and "both" in str(lab.refusals[0])
    assert lab.responses == []


def test_skipping_the_consistency_round_is_refused():
    """Downgrade: the server skips the consistency check and asks for shares at once."""
    lab = Lab(n=5)
    lab.run_to_masked_inputs()
    for u in lab.honest:
        lab.request_unmask(u, tuple(range(5)), (), macs=())
    assert all(isinstance(lab.refusals[u], UnexpectedMessage) for u in lab.honest)
    assert lab.responses == []


def test_a_survivor_set_below_the_floor_is_refused():
    """Dropping honest clients on purpose to shrink the aggregate (or a distributed-DP
    noise level calibrated for min_survivors) is refused by the clients themselves."""
    from secagg.masking import MaskingConfig

    lab = Lab(n=8)
    object.__setattr__(lab.cfg, "min_survivors", 7)  # the floor every client holds itself to
    lab.run_to_masked_inputs()
    small = (0, 1, 2, 3, 4, 5)
    for u in small:
        req = M.ConsistencyRequest(lab.server.session, u, 8, small)
        with pytest.raises(ProtocolAbort, match="min_survivors=7"):
            lab.clients[u].receive(req)
    assert MaskingConfig(n=8, dim=3, min_survivors=7).min_survivors == 7


# ----------------------------------------------------------------------------- malicious clients
def garble_shares_of(m):
    def tamper(msg):
        if isinstance(msg, M.ShareKeys) and msg.sender == m:
            return dataclasses.replace(msg, ciphertexts=tuple((v, bytes(len(c))) for v, c in msg.ciphertexts))
        return msg
    return tamper


def test_attack3_one_client_with_garbage_ciphertexts_does_not_stop_the_others():
    lab = Lab(n=9)
    total = lab.run_honest_server(tamper=garble_shares_of(2))
    survivors = lab.server.survivors
    np.testing.assert_array_equal(total, ring_sum(lab.x[survivors], 32))
    assert 2 in lab.server.misbehaving and 2 in lab.server.excluded and 2 not in survivors
    assert len(lab.server.excluded) <= 2  # the culprit and at most one reporter
    assert len(survivors) >= 7


def test_attack3_through_simulate_names_the_culprit(monkeypatch):
    """The same attack through the public driver: the result names who misbehaved."""
    import sys

    sim = sys.modules["secagg.masking.session"]
    x = np.random.default_rng(5).integers(0, 2**32, (9, 12), dtype=np.uint64).astype(np.uint32)
    real_to_server = sim.Session.to_server

    def evil(self, u, round_name, data):
        msg = garble_shares_of(6)(M.decode_message(data))
        return real_to_server(self, u, round_name, msg.to_bytes())

    monkeypatch.setattr(sim.Session, "to_server", evil)
    res = simulate_ring(x, bits=32)
    assert 6 in res.misbehaving and 6 in res.excluded and 6 not in res.survivors
    np.testing.assert_array_equal(res.ring_sum, ring_sum(x[res.survivors], 32))


def test_a_false_complaint_costs_the_accuser_and_at_most_one_honest_client():
    lab = Lab(n=9)

    def accuse(msg):
        if isinstance(msg, M.MaskedInput) and msg.sender == 3:
            return dataclasses.replace(msg, complaints=(0, 1, 5))
        return msg

    total = lab.run_honest_server(tamper=accuse)
    survivors = lab.server.survivors
    np.testing.assert_array_equal(total, ring_sum(lab.x[survivors], 32))
    assert 3 in lab.server.excluded and len(set(lab.server.excluded) - {3}) <= 1


def run_with_tamper(monkeypatch, x, tamper, **kw):
    """simulate_ring with every client message passed through ``tamper`` (malicious clients)."""
    import sys

    sim = sys.modules["secagg.masking.session"]
    real_to_server = sim.Session.to_server

    def evil(self, u, round_name, data):
        return real_to_server(self, u, round_name, tamper(M.decode_message(data)).to_bytes())

    monkeypatch.setattr(sim.Session, "to_server", evil)
    return simulate_ring(x, bits=32, **kw)


def test_a_partial_garbler_forces_one_clean_rerun_and_is_named(monkeypatch):
    """Client 3 sends valid shares to too few holders for its key to be rebuilt: the
    attempt aborts before anything is revealed, and the driver reruns without it (and
    the one reporter the matching excluded with it)."""
    x = np.random.default_rng(2).integers(0, 2**32, (9, 5), dtype=np.uint64).astype(np.uint32)

    def tamper(msg):
        if isinstance(msg, M.ShareKeys) and msg.sender == 3:
            return dataclasses.replace(msg, ciphertexts=tuple(
                (v, bytes(len(c)) if v in (0, 1, 2) else c) for v, c in msg.ciphertexts))
        return msg

    res = run_with_tamper(monkeypatch, x, tamper)
    assert res.attempts == 2 and 3 not in res.survivors and 3 in res.misbehaving
    assert len(set(range(9)) - set(res.survivors)) == 2
    np.testing.assert_array_equal(res.ring_sum, ring_sum(x[res.survivors], 32))


@settings(max_examples=12, **SETTINGS)
@given(data=st.data())
def test_malicious_clients_within_the_threat_model_never_stop_or_shift_the_sum(data):
    """Property: up to ceil(gamma n) malicious clients (the threat model's), each with a
    random deviation; the honest driver always finishes with the exact sum of the
    clients it reports, excluding at most one honest client per malicious one."""
    n = data.draw(st.sampled_from([9, 12, 20]))
    x = np.random.default_rng(data.draw(st.integers(0, 1000))).integers(0, 2**32, (n, 5), dtype=np.uint64)
    x = x.astype(np.uint32)
    c = max(1, int(np.ceil(0.05 * n)))
    bad = data.draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=c))
    kinds = {m: data.draw(st.sampled_from(["garble_all", "garble_some", "accuse", "wrong_share", "bad_input"]))
             for m in bad}
    victims = {m: data.draw(st.sets(st.integers(0, n - 1).filter(lambda v, m=m: v != m), min_size=1, max_size=3))
               for m in bad}

    def tamper(msg):
        m = getattr(msg, "sender", None)
        kind = kinds.get(m)
        if kind in ("garble_all", "garble_some") and isinstance(msg, M.ShareKeys):
            hit = set(range(n)) if kind == "garble_all" else victims[m]
            return dataclasses.replace(msg, ciphertexts=tuple(
                (v, bytes(len(ct)) if v in hit else ct) for v, ct in msg.ciphertexts))
        if kind == "accuse" and isinstance(msg, M.MaskedInput):
            return dataclasses.replace(msg, complaints=tuple(sorted(victims[m])))
        if kind == "bad_input" and isinstance(msg, M.MaskedInput):
            return dataclasses.replace(msg, vector=msg.vector[:-1])
        if kind == "wrong_share" and isinstance(msg, M.UnmaskResponse) and msg.self_shares:
            owner, blob = msg.self_shares[0]
            return dataclasses.replace(msg, self_shares=((owner, bytes(len(blob))),) + msg.self_shares[1:])
        return msg

    with pytest.MonkeyPatch.context() as mp:
        res = run_with_tamper(mp, x, tamper)
    np.testing.assert_array_equal(res.ring_sum, ring_sum(x[res.survivors], 32))
    honest_lost = set(range(n)) - set(res.survivors) - bad
    assert len(honest_lost) <= len(bad)
