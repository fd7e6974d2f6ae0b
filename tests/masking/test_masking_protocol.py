"""SecAgg / SecAgg+ protocol: exactness under dropouts, privacy of the masked vector,
aborts, double-unmask refusal, error classes with unchanged state, tampering, fuzzing."""

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from secagg import keys
from secagg.errors import (
    DecodeError,
    DroppedParty,
    DuplicateMessage,
    IntegrityError,
    ProtocolAbort,
    ProtocolViolation,
    SecAggError,
    UnexpectedMessage,
    UnknownParty,
)
from secagg.masking import ROUNDS, Client, MaskingConfig, Server, ThreatModel, simulate, simulate_ring
from secagg.masking import _messages as M
from secagg.quantize import Quantizer, ring_sum

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
HBC = ThreatModel(adversary="honest-but-curious")
#: tiny sparse graphs cannot reach 2^-40 (a Harary graph of 10 clients and degree 4 is
#: disconnected by dropouts with probability ~1e-3); the tests that exercise their
#: mechanics state that weaker security level explicitly
TOY = ThreatModel(security_bits=5)


# ----------------------------------------------------------------------------- helpers
def make_session(n=5, dim=8, consistency_check=True, graph="complete", k=None, seed=0):
    threat = (ThreatModel() if graph == "complete" else TOY) if consistency_check else HBC
    cfg = MaskingConfig(n=n, dim=dim, threat=threat, graph=graph, k=k)
    g = cfg.build_graph(bytes(32))
    sks = [keys.SigningKey.generate() for _ in range(n)]
    directory = {u: s.public_bytes() for u, s in enumerate(sks)}
    rng = np.random.default_rng(seed)
    vecs = rng.integers(0, 2**32, (n, dim), dtype=np.uint64).astype(np.uint32)
    server = Server(cfg, g, directory=directory)
    clients = [Client(u, cfg, g, vecs[u], signing_key=sks[u], directory=directory) for u in range(n)]
    return cfg, server, clients, vecs, sks


def run_rounds(server, clients, rounds, absent=()):
    """Run `rounds` full rounds through bytes; returns the server's pending messages."""
    out = server.start()
    for _ in range(rounds):
        for m in out:
            if m.recipient in absent:
                continue
            for rep in clients[m.recipient].receive(M.decode_message(m.to_bytes())):
                server.receive(M.decode_message(rep.to_bytes()))
        out = server.close_round()
    return out


def schedules(n):
    return st.dictionaries(st.integers(0, n - 1), st.sampled_from(ROUNDS), max_size=n)


# ----------------------------------------------------------------------------- exactness
@settings(max_examples=25, **SETTINGS)
@given(
    n=st.integers(3, 9),
    d=st.integers(1, 12),
    bits=st.sampled_from([8, 32, 40, 64]),
    cc=st.booleans(),
    data=st.data(),
)
def test_ring_sum_is_bit_exact_or_aborts_exactly_below_threshold(n, d, bits, cc, data):
    schedule = data.draw(schedules(n))
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    dt = np.uint32 if bits <= 32 else np.uint64
    v = (rng.integers(0, 2**63, (n, d), dtype=np.uint64) & np.uint64(2**bits - 1 if bits < 64 else 2**64 - 1)).astype(dt)
    threat = ThreatModel() if cc else HBC
    t = MaskingConfig(n=n, dim=d, bits=bits, threat=threat).threshold
    rounds = [r for r in ROUNDS if cc or r != "consistency_check"]
    idx = {u: rounds.index("unmasking" if (r == "consistency_check" and not cc) else r) for u, r in schedule.items()}
    alive = [sum(1 for u in range(n) if idx.get(u, 99) > i) for i in range(len(rounds))]
    if min(alive) < t:
        with pytest.raises(ProtocolAbort):
            simulate_ring(v, bits=bits, dropout=schedule, threat=threat)
        return
    res = simulate_ring(v, bits=bits, dropout=schedule, threat=threat)
    before_mask = [u for u in range(n) if idx.get(u, 99) > rounds.index("masked_input")]
    assert res.survivors == before_mask
    assert res.ring_sum.dtype == dt
    np.testing.assert_array_equal(res.ring_sum, ring_sum(v[res.survivors], bits))


@settings(max_examples=10, **SETTINGS)
@given(n=st.integers(8, 14), k=st.sampled_from([4, 6]), data=st.data())
def test_sparse_graph_exact_or_abort(n, k, data):
    schedule = data.draw(st.dictionaries(st.integers(0, n - 1), st.sampled_from(ROUNDS), max_size=2))
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    v = rng.integers(0, 2**32, (n, 5), dtype=np.uint64).astype(np.uint32)
    try:
        res = simulate_ring(v, bits=32, graph="sparse", k=k, dropout=schedule, threat=TOY)
    except ProtocolAbort as exc:
        assert "threshold" in str(exc) or "min_survivors" in str(exc)
        return
    cfg = res.config
    assert cfg.k == k and 2 * cfg.threshold - cfg.num_holders - 1 >= cfg.params.tolerated_corrupt_holders >= 0
    np.testing.assert_array_equal(res.ring_sum, ring_sum(v[res.survivors], 32))


@settings(max_examples=15, **SETTINGS)
@given(n=st.integers(3, 8), d=st.integers(1, 16), rate=st.floats(0, 0.25), seed=st.integers(0, 10**6),
       graph=st.sampled_from(["complete", "sparse"]))
def test_decoded_sum_within_count_times_resolution(n, d, rate, seed, graph):
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=0.8, size=(n, d))
    q = Quantizer(bound=1.0, num_clients=n, out_of_range="clip")
    try:
        res = simulate(x, quantizer=q, dropout=rate, dropout_round="share_keys", rng=rng, graph=graph, threat=HBC)
    except ProtocolAbort:
        pytest.fail("a 25 % share_keys dropout must not abort under the honest-but-curious threshold")
    s = res.survivors
    assert len(s) == n - int(round(rate * n))
    expect = np.clip(x[s], -1, 1).sum(axis=0)
    assert np.abs(res.sum - expect).max() <= len(s) * q.resolution


def test_masked_vector_is_uniform_in_the_ring():
    """Server's view of a client whose input is all zeros: chi-square over the top byte.
    The masks come from the OS CSPRNG, so the test is random: alpha = 1e-6 keeps false
    alarms out of CI, and 256 expected counts per bin keep it sharp against the failures
    that matter (an input showing through, a stuck or narrow mask bit: p ~ 0)."""
    n, d = 4, 65536
    v = np.zeros((n, d), dtype=np.uint32)
    res = simulate_ring(v, bits=32, keep_masked=(0,), threat=HBC)
    y = res.masked_inputs[0]
    counts = np.bincount((y >> 24).astype(np.int64), minlength=256)
    assert stats.chisquare(counts).pvalue > 1e-6
    assert (res.ring_sum == 0).all()


def test_bytes_and_times_are_reported_per_round_and_party():
    v = np.ones((5, 100), dtype=np.uint32)
    res = simulate_ring(v, bits=32, dropout={4: "masked_input"})
    assert list(res.bytes_sent) == list(ROUNDS)
    # the masked input message: header (3 + 16 nonce) + id + seed commitment (32)
    # + complaint count (4, no complaints) + bits + dim + 4 d
    assert res.bytes_sent["masked_input"][0] == 3 + 16 + 4 + 32 + 4 + 1 + 4 + 400
    assert res.bytes_sent["masked_input"][4] == 0 and res.bytes_received["masked_input"][4] == 0
    assert res.bytes_sent["share_keys"][4] > 0
    assert res.server_bytes_received["masked_input"] == int(res.bytes_sent["masked_input"].sum())
    assert all(res.client_seconds[r].shape == (5,) for r in res.client_seconds)
    assert res.round_seconds["unmasking"] >= res.server_seconds["unmasking"] > 0


# ----------------------------------------------------------------------------- aborts
@pytest.mark.parametrize("rnd", ROUNDS)
def test_abort_below_threshold_at_each_round(rnd):
    v = np.ones((5, 4), dtype=np.uint32)
    with pytest.raises(ProtocolAbort, match="threshold") as info:
        simulate_ring(v, bits=32, dropout={0: rnd, 1: rnd, 2: rnd})
    assert info.value.reason


def test_abort_leaves_no_result():
    cfg, server, clients, _, _ = make_session(n=5)
    out = run_rounds(server, clients, 2)  # advertise, share
    for m in out:
        if m.recipient < 2:  # only 2 of 5 masked inputs arrive; t = 4
            server.receive(clients[m.recipient].receive(m)[0])
    with pytest.raises(ProtocolAbort, match="fewer than the threshold"):
        server.close_round()
    from secagg.masking.rounds import ServerAborted

    assert server.result is None and isinstance(server.state, ServerAborted)


# ----------------------------------------------------------------------------- double unmask
def _to_unmask(consistency_check=True):
    cfg, server, clients, vecs, sks = make_session(n=5, consistency_check=consistency_check)
    rounds = 4 if consistency_check else 3
    out = run_rounds(server, clients, rounds, absent=())
    reqs = {m.recipient: m for m in out}
    return cfg, server, clients, reqs


def _to_consistency():
    cfg, server, clients, vecs, sks = make_session(n=5, consistency_check=True)
    out = run_rounds(server, clients, 3, absent=())
    assert all(isinstance(m, M.ConsistencyRequest) for m in out)
    return cfg, server, clients, {m.recipient: m for m in out}


def test_client_refuses_to_reveal_both_shares_of_a_peer():
    cfg, server, clients, reqs = _to_unmask(consistency_check=False)
    req = reqs[0]
    evil = dataclasses.replace(req, dropped=(3,))  # 3 is also in survivors
    before = clients[0].snapshot()
    with pytest.raises(ProtocolViolation, match="both"):
        clients[0].receive(evil)
    assert clients[0].snapshot() == before
    # honest request: answers once; any later request (other sets) is refused
    resp = clients[0].receive(req)[0]
    assert {v for v, _ in resp.self_shares} == {0, 1, 2, 3, 4} and resp.key_shares == ()
    second = dataclasses.replace(req, survivors=(0, 1, 2, 4), dropped=(3,))
    with pytest.raises(DuplicateMessage):
        clients[0].receive(second)


def test_active_client_rejects_survivor_set_other_than_vouched():
    cfg, server, clients, reqs = _to_unmask(consistency_check=True)
    req = reqs[1]
    moved = dataclasses.replace(req, survivors=(0, 1, 2, 4), dropped=(3,))
    with pytest.raises(ProtocolViolation, match="vouched"):
        clients[1].receive(moved)
    before = clients[1].snapshot()
    forged = dataclasses.replace(req, macs=tuple((v, bytes(16)) for v, _ in req.macs))
    with pytest.raises(ProtocolAbort, match="vouched") as info:
        clients[1].receive(forged)
    assert info.value.code == "below_threshold" and clients[1].snapshot() == before
    # a few bad vouchers (a malicious neighbour) do not abort while t valid ones remain
    spare = len(req.macs) + 1 - cfg.threshold
    assert spare >= 1
    some_bad = dataclasses.replace(req, macs=tuple((v, bytes(16)) if i < spare else (v, mac)
                                                   for i, (v, mac) in enumerate(req.macs)))
    assert clients[1].receive(some_bad)


def test_server_checks_vouchers_go_to_each_surviving_neighbour_once():
    cfg, server, clients, reqs = _to_consistency()
    resp = clients[2].receive(reqs[2])[0]
    assert {v for v, _ in resp.macs} == set(range(cfg.n)) - {2}
    for macs in (resp.macs[1:], resp.macs + resp.macs[:1], ((2, bytes(16)),) + resp.macs[1:]):
        before = server.snapshot()
        with pytest.raises(ProtocolViolation, match="exactly once"):
            server.receive(dataclasses.replace(resp, macs=macs))
        assert server.snapshot() == before
    server.receive(resp)


def test_server_never_obtains_both_shares_of_any_client():
    """Across dropout schedules, self-mask shares reach the server only for U3 and key
    shares only for U2 minus U3."""
    for sched in ({1: "masked_input"}, {1: "masked_input", 2: "unmasking"}, {3: "consistency_check"}):
        cfg = MaskingConfig(n=7, dim=4)
        g = cfg.build_graph()
        sks = [keys.SigningKey.generate() for _ in range(7)]
        directory = {u: s.public_bytes() for u, s in enumerate(sks)}
        server = Server(cfg, g, directory=directory)
        clients = [Client(u, cfg, g, np.zeros(4, np.uint32), signing_key=sks[u], directory=directory) for u in range(7)]
        out = server.start()
        for i, rnd in enumerate(ROUNDS):
            for m in out:
                if sched.get(m.recipient) in ROUNDS[: i + 1]:
                    continue
                for rep in clients[m.recipient].receive(m):
                    server.receive(rep)
            if rnd == "unmasking":
                st = server.state  # what the server collected, before it unmasks
            out = server.close_round()
        self_owners = {v for b, _ in st.u5.values() for v in b}
        key_owners = {v for _, s in st.u5.values() for v in s}
        assert not self_owners & key_owners
        assert self_owners <= st.u3 and key_owners <= st.u2 - st.u3


# ----------------------------------------------------------------------------- error classes
def test_wrong_round_unknown_dropped_duplicate_and_replay_leave_server_unchanged():
    cfg, server, clients, _, _ = make_session(n=5)
    out = server.start()
    adv = {m.recipient: clients[m.recipient].receive(m)[0] for m in out if m.recipient != 4}
    for u in (0, 1, 2):
        server.receive(adv[u])
    cases = [
        (dataclasses.replace(adv[0], signature=adv[0].signature), DuplicateMessage),
        (dataclasses.replace(adv[3], sender=9), UnknownParty),
        (M.ConsistencyResponse(server.session, 3, ((0, bytes(16)),)), UnexpectedMessage),
        (dataclasses.replace(adv[3], session=bytes(16)), UnexpectedMessage),
    ]
    for msg, exc in cases:
        before = server.snapshot()
        with pytest.raises(exc, match=type(msg).__name__):
            server.receive(msg)
        assert server.snapshot() == before
    server.receive(adv[3])
    out = server.close_round()  # client 4 never advertised: it counts as dropped
    shares = {m.recipient: clients[m.recipient].receive(m)[0] for m in out}
    late = dataclasses.replace(shares[0], sender=4)
    before = server.snapshot()
    with pytest.raises(DroppedParty, match="client 4"):
        server.receive(late)
    with pytest.raises(UnexpectedMessage):
        server.receive(adv[1])  # replay of an earlier round
    with pytest.raises(ProtocolViolation):
        server.receive(dataclasses.replace(shares[0], ciphertexts=shares[0].ciphertexts[:1]))
    assert server.snapshot() == before


def test_client_rejects_wrong_round_duplicate_and_foreign_session_unchanged():
    cfg, server, clients, _, _ = make_session(n=4)
    start = server.start()
    c = clients[0]
    bogus = M.UnmaskRequest(server.session, 0, 4, (0, 1, 2, 3), ())
    before = c.snapshot()
    with pytest.raises(UnexpectedMessage, match="UnmaskRequest.*ClientIdle"):
        c.receive(bogus)
    with pytest.raises(ProtocolViolation, match="addressed to client 1"):
        c.receive(start[1])
    assert c.snapshot() == before
    c.receive(start[0])
    before = c.snapshot()
    with pytest.raises(DuplicateMessage):
        c.receive(start[0])
    assert c.snapshot() == before


def test_client_rejects_keys_of_non_neighbours():
    cfg, server, clients, _, _ = make_session(n=12, graph="sparse", k=4)
    out = run_rounds(server, clients, 1)
    m = next(x for x in out if x.recipient == 0)
    stranger = next(v for v in range(12) if v != 0 and v not in set(clients[0].graph.holders(0).tolist()))
    evil = dataclasses.replace(m, entries=m.entries[:-1] + ((stranger,) + m.entries[-1][1:],))
    before = clients[0].snapshot()
    with pytest.raises(ProtocolViolation, match="neighbours"):
        clients[0].receive(evil)
    assert clients[0].snapshot() == before


def test_tampered_share_ciphertext_becomes_a_complaint_not_an_abort():
    cfg, server, clients, _, _ = make_session(n=4)
    out = run_rounds(server, clients, 2)
    m = next(x for x in out if x.recipient == 2)
    v, ct = m.ciphertexts[0]
    flipped = ct[:20] + bytes([ct[20] ^ 1]) + ct[21:]
    evil = dataclasses.replace(m, ciphertexts=((v, flipped),) + m.ciphertexts[1:])
    reply = clients[2].receive(evil)[0]
    assert isinstance(reply, M.MaskedInput) and reply.complaints == (v,)
    from secagg.masking.rounds import InputSent

    assert isinstance(clients[2].state, InputSent) and v not in clients[2].state.u2
    # misrouting (valid ciphertext for another recipient) fails the associated data too
    m3 = next(x for x in out if x.recipient == 3)
    for_2 = dict(m.ciphertexts)
    swapped = dataclasses.replace(m3, ciphertexts=tuple((w, for_2[w] if w == 0 else c) for w, c in m3.ciphertexts))
    assert clients[3].receive(swapped)[0].complaints == (0,)


def test_bad_advertise_signature_rejected_by_server():
    cfg, server, clients, _, _ = make_session(n=4)
    out = server.start()
    adv = clients[0].receive(out[0])[0]
    before = server.snapshot()
    with pytest.raises(IntegrityError):
        server.receive(dataclasses.replace(adv, signature=bytes(64)))
    assert server.snapshot() == before


# ----------------------------------------------------------------------------- encoding / fuzz
def _all_messages():
    cfg, server, clients, _, _ = make_session(n=4)
    msgs = []
    out = server.start()
    for _ in range(5):
        msgs += out
        replies = []
        for m in out:
            replies += clients[m.recipient].receive(m)
        msgs += replies
        for r in replies:
            server.receive(r)
        out = server.close_round()
    return msgs, server, clients


MSGS, _SERVER, _CLIENTS = _all_messages()


def test_every_message_type_round_trips():
    kinds = set()
    for m in MSGS:
        data = m.to_bytes()
        back = M.decode_message(data)
        assert back == m and back.to_bytes() == data
        assert type(m).from_bytes(data) == m
        kinds.add(type(m).__name__)
    assert len(kinds) == 10


def test_forged_huge_length_is_rejected_before_allocation():
    m = next(x for x in MSGS if isinstance(x, M.MaskedInput))
    assert m.complaints == ()
    data = bytearray(m.to_bytes())
    dim_at = 3 + len(m.session) + 4 + 32 + 4 + 1  # sender, commitment, complaint count, bits
    data[dim_at : dim_at + 4] = (0xFFFFFFFF).to_bytes(4, "big")
    with pytest.raises(DecodeError, match="exceeds"):
        M.decode_message(bytes(data))
    data = bytearray(m.to_bytes())
    count_at = 3 + len(m.session) + 4 + 32
    data[count_at : count_at + 4] = (0xFFFFFFF0).to_bytes(4, "big")
    with pytest.raises(DecodeError, match="cannot fit"):
        M.decode_message(bytes(data))
    share = next(x for x in MSGS if isinstance(x, M.ShareKeys))
    data = bytearray(share.to_bytes())
    hdr = 3 + len(share.session) + 4
    data[hdr : hdr + 4] = (0xFFFFFFF0).to_bytes(4, "big")
    with pytest.raises(DecodeError, match="cannot fit"):
        M.decode_message(bytes(data))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_raise_decode_error(data):
    try:
        M.decode_message(data)
    except DecodeError:
        pass


@settings(max_examples=200, deadline=None)
@given(idx=st.integers(0, len(MSGS) - 1), pos=st.integers(0, 10**6), bit=st.integers(0, 7))
def test_bit_flips_only_raise_library_errors(idx, pos, bit):
    data = bytearray(MSGS[idx].to_bytes())
    pos %= len(data)
    data[pos] ^= 1 << bit
    try:
        M.decode_message(bytes(data))
    except SecAggError:
        pass


@settings(max_examples=60, deadline=None)
@given(idx=st.integers(0, len(MSGS) - 1), pos=st.integers(0, 10**6), bit=st.integers(0, 7))
def test_bit_flipped_messages_fed_to_parties_only_raise_library_errors(idx, pos, bit):
    """Fresh session each time; the flipped message goes to its natural receiver."""

    cfg, server, clients, _, _ = make_session(n=4)
    out = run_rounds(server, clients, 2)  # clients now wait for ForwardShares
    target = out[0]
    data = bytearray(target.to_bytes())
    pos %= len(data)
    data[pos] ^= 1 << bit
    try:
        clients[target.recipient].receive(M.decode_message(bytes(data)))
    except SecAggError:
        pass
