"""Review hardening: the server refuses advertised keys that would make honest
neighbours reject their KeysBroadcast, parties refuse a graph that is not the config's,
HKDF info is injective, and party sets are capped at what Shamir can share to."""

import dataclasses

import numpy as np
import pytest

from secagg import keys, shamir
from secagg.errors import ConfigurationError, DecodeError, InputError, ProtocolViolation
from secagg.masking import Client, MaskingConfig, Server, ThreatModel, find_parameters
from secagg.masking._graph import complete_graph, harary_graph
from secagg.masking import _messages as M
from secagg.masking.config import advertise_payload, pair_info


def _session(n=5):
    cfg = MaskingConfig(n=n, dim=4)
    g = cfg.build_graph()
    sks = [keys.SigningKey.generate() for _ in range(n)]
    directory = {u: s.public_bytes() for u, s in enumerate(sks)}
    server = Server(cfg, g, directory=directory)
    clients = [Client(u, cfg, g, np.zeros(4, np.uint32), signing_key=sks[u], directory=directory) for u in range(n)]
    advs = [clients[m.recipient].receive(m)[0] for m in server.start()]
    return server, clients, advs, sks


def _resign(adv, sk, server, c_pk, s_pk):
    payload = advertise_payload(server._digest, server.session, adv.sender, c_pk, s_pk)
    return dataclasses.replace(adv, c_pk=c_pk, s_pk=s_pk, signature=sk.sign(payload))


LOW_ORDER = bytes(32)  # u = 0: every X25519 exchange with it gives the all-zero secret


@pytest.mark.parametrize("case", ["c_equals_s", "copies_peer_c", "copies_peer_s", "low_order_c", "low_order_s"])
def test_server_refuses_keys_that_would_make_every_neighbour_reject_the_broadcast(case):
    server, clients, advs, sks = _session()
    for a in advs[:4]:
        server.receive(M.decode_message(a.to_bytes()))
    a4, a0 = advs[4], advs[0]
    c, s = {
        "c_equals_s": (a4.c_pk, a4.c_pk),
        "copies_peer_c": (a0.c_pk, a4.s_pk),
        "copies_peer_s": (a4.c_pk, a0.s_pk),
        "low_order_c": (LOW_ORDER, a4.s_pk),
        "low_order_s": (a4.c_pk, LOW_ORDER),
    }[case]
    evil = M.decode_message(_resign(a4, sks[4], server, c, s).to_bytes())  # validly signed by 4
    before = server.snapshot()
    with pytest.raises(ProtocolViolation, match="client 4"):
        server.receive(evil)
    assert server.snapshot() == before
    # the honest clients are not dragged down by client 4: the session goes on without it
    for m in server.close_round():
        assert clients[m.recipient].receive(m)


def test_server_refuses_keys_of_the_wrong_length_in_process():
    server, clients, advs, sks = _session()
    bad = _resign(advs[0], sks[0], server, advs[0].c_pk[:31], advs[0].s_pk)  # validly signed
    before = server.snapshot()
    with pytest.raises(ProtocolViolation):
        server.receive(bad)
    assert server.snapshot() == before


def test_parties_refuse_a_graph_other_than_the_configs():
    hbc = ThreatModel(adversary="honest-but-curious", security_bits=5)
    cfg = MaskingConfig(n=12, dim=4, graph="sparse", k=4, threat=hbc)  # t = 2 of 5 holders
    full = complete_graph(12)  # 12 holders: t = 3 would be far below half
    with pytest.raises(InputError, match="graph"):
        Client(0, cfg, full, np.zeros(4, np.uint32))
    with pytest.raises(InputError, match="graph"):
        Server(cfg, full)
    cfg_c = MaskingConfig(n=12, dim=4, threat=hbc)
    sparse = harary_graph(12, 4, bytes(32))
    with pytest.raises(InputError, match="graph"):
        Client(0, cfg_c, sparse, np.zeros(4, np.uint32))
    with pytest.raises(InputError, match="graph"):
        Server(cfg_c, sparse)
    # the matching graph is accepted
    Client(0, cfg, cfg.build_graph(bytes(32)), np.zeros(4, np.uint32))


def test_pair_info_is_injective_in_session_ids_and_purpose():
    s = bytes(range(16))
    assert pair_info(s, 0, 0, b"mask") != pair_info(s + b"\0", 0, ord("m"), b"ask")
    assert pair_info(s, 3, 7, b"mask") == pair_info(s, 7, 3, b"mask")


def test_party_sets_are_capped_at_what_shamir_can_share_to():
    limit = shamir.PRIME - 1  # x = id + 1 must stay below the prime
    assert M.MAX_PARTIES == limit
    s = bytes(16)
    too_many = bytes((M.VERSION, 7, 16)) + s + (0).to_bytes(4, "big") + (limit + 1).to_bytes(4, "big") + bytes((limit + 8) // 8)
    with pytest.raises(DecodeError, match="limit"):
        M.decode_message(too_many)
    with pytest.raises(ConfigurationError):
        MaskingConfig(n=limit + 1, dim=1)


def test_find_parameters_docstring_example_is_what_it_returns():
    p = find_parameters(10_000)
    assert f"``k = {p.k}, t = {p.threshold}``" in find_parameters.__doc__


@pytest.mark.parametrize("ids,n", [([0], -1), ([0], M.MAX_PARTIES + 1), ([1.7], 4), ([True], 4), (["1"], 4)])
def test_ids_to_bitmap_refuses_bad_sizes_and_non_integer_ids(ids, n):
    with pytest.raises(InputError):
        M.ids_to_bitmap(ids, n)


# ----------------------------------------------------------------------------- corrupt shares
def _session_to_unmask(n=9, absent=()):
    """Run advertise, share, masked input and consistency rounds; ``absent`` clients
    stop after sharing keys. Returns the server's unmask requests."""
    cfg = MaskingConfig(n=n, dim=4)
    g = cfg.build_graph()
    sks = [keys.SigningKey.generate() for _ in range(n)]
    directory = {u: s.public_bytes() for u, s in enumerate(sks)}
    vecs = np.random.default_rng(0).integers(0, 2**32, (n, 4), dtype=np.uint64).astype(np.uint32)
    server = Server(cfg, g, directory=directory)
    clients = [Client(u, cfg, g, vecs[u], signing_key=sks[u], directory=directory) for u in range(n)]
    out = server.start()
    for r in range(4):
        for m in out:
            if m.recipient in absent and r >= 2:
                continue
            for rep in clients[m.recipient].receive(M.decode_message(m.to_bytes())):
                server.receive(M.decode_message(rep.to_bytes()))
        out = server.close_round()
    return cfg, server, clients, vecs, out


def _corrupt(resp, which, liar_owner_index=0):
    entries = list(resp.self_shares if which == "self" else resp.key_shares)
    owner, blob = entries[liar_owner_index]
    vals = shamir.decode_share_values(blob, 1, len(blob) // 3).copy()
    vals[0, 5] = (int(vals[0, 5]) + 1) % shamir.PRIME  # a middle limb: not hidden by X25519 clamping
    entries[liar_owner_index] = (owner, shamir.encode_share_values(vals))
    if which == "self":
        return M.UnmaskResponse(resp.session, resp.sender, tuple(entries), resp.key_shares)
    return M.UnmaskResponse(resp.session, resp.sender, resp.self_shares, tuple(entries))


@pytest.mark.parametrize("which", ["self", "key"])
def test_a_wrong_unmask_share_is_corrected_and_its_sender_named(which):
    """A client that sends a wrong share must not change the sum: the server checks each
    rebuilt secret (seed commitment, advertised key), decodes the shares with
    Berlekamp-Welch when the check fails, and names the liar."""
    from secagg.quantize import ring_sum

    absent = (8,) if which == "key" else ()
    cfg, server, clients, vecs, out = _session_to_unmask(absent=absent)
    replies = []
    for m in out:
        if m.recipient in absent:
            continue
        replies += clients[m.recipient].receive(M.decode_message(m.to_bytes()))
    liar = replies[0].sender
    server.receive(M.decode_message(_corrupt(replies[0], which).to_bytes()))
    for rep in replies[1:]:
        server.receive(M.decode_message(rep.to_bytes()))
    server.close_round()
    survivors = server.survivors
    np.testing.assert_array_equal(server.result, ring_sum(vecs[survivors], 32))
    assert liar in server.misbehaving and "wrong share" in server.misbehaving[liar]


def test_more_wrong_shares_than_can_be_corrected_abort_and_blame_the_owner():
    from secagg.errors import ProtocolAbort

    cfg, server, clients, vecs, out = _session_to_unmask()
    replies = []
    for m in out:
        replies += clients[m.recipient].receive(M.decode_message(m.to_bytes()))
    owner = replies[0].self_shares[0][0]
    # with 9 shares and t = 6 one wrong share is correctable, two are not
    for rep in replies:
        server.receive(M.decode_message((_corrupt(rep, "self") if rep.sender in (1, 2) else rep).to_bytes()))
    with pytest.raises(ProtocolAbort, match=f"client {owner}") as info:
        server.close_round()
    assert server.result is None and info.value.blamed == (owner,)
