"""The protocol over real loopback sockets (asyncio, in one process, TLS and the allow-list
unless a test needs plain frames): correct survivor sums with dropouts at every round,
per-round deadlines, malformed traffic, reconnects, limits, aborts and TLS. Every
adversarial case checks that the server survives and that the sum is exactly the sum of
the survivors it reports."""

from __future__ import annotations

import asyncio
import secrets
import struct

import numpy as np
import pytest
from transport_helpers import (
    HOST,
    SKS,
    allow,
    expected_sum,
    fake_server_register,
    raw_register,
    ring_vectors,
    run_session,
    wait_closed_by_peer,
)

from secagg import keys
from secagg.errors import ConfigurationError, InsecureParameterError, OutOfRangeError, ProtocolAbort
from secagg.masking import MaskingConfig, SecurityPolicy, ThreatModel
from secagg.masking._messages import AdvertiseKeys, ConsistencyResponse, MaskedInput, decode_message
from secagg.masking.rounds import ROUNDS
from secagg.quantize import Quantizer
from secagg.transport import AggregationServer, run_client
from secagg.transport._framing import (
    KIND_ABORT,
    KIND_HELLO,
    KIND_PROTOCOL,
    KIND_WELCOME,
    TRANSPORT_VERSION,
    control_payload,
    encode_frame,
    read_frame,
    split_payload,
)
from secagg.transport.tls import client_context, write_self_signed

pytestmark = pytest.mark.timeout(60)


def check_result(res, vecs, n_registered=None):
    assert not isinstance(res, BaseException), res
    np.testing.assert_array_equal(res.ring_sum, expected_sum(vecs, res.survivors))
    return res


# ------------------------------------------------------------------ correctness
@pytest.mark.parametrize(
    "graph,k,check", [("complete", None, True), ("sparse", 4, True), ("complete", None, False)]
)
def test_all_clients_sum_exact(graph, k, check):
    """The secure default, a SecAgg+ graph below the default degree and the honest-but-curious
    variant (the last two only with the client's explicit insecure opt-ins)."""
    # a degree-4 graph over 7 clients reaches only about 2^-5: both sides state that level
    threat = ThreatModel(adversary="active" if check else "honest-but-curious",
                         security_bits=40 if graph == "complete" else 5)
    cfg = MaskingConfig(n=7, dim=33, graph=graph, k=k, threat=threat)
    vecs = ring_vectors(7, 33)
    opt_in = {"policy": SecurityPolicy(threat=threat)}
    res, outs, _ = asyncio.run(run_session(cfg, vecs, client_kw={u: opt_in for u in range(7)}))
    check_result(res, vecs)
    assert res.survivors == list(range(7)) and res.dropped == {}
    assert all(o.included and o.survivors == res.survivors for o in outs)
    assert res.config.is_complete == (graph == "complete")


@pytest.mark.parametrize("round_name", ROUNDS)
def test_crash_at_each_round(round_name):
    n = 6
    cfg = MaskingConfig(n=n, dim=16)
    vecs = ring_vectors(n, 16, seed=1)
    res, outs, _ = asyncio.run(run_session(cfg, vecs, client_kw={2: {"crash_at": round_name}}))
    check_result(res, vecs)
    in_sum = ROUNDS.index(round_name) > ROUNDS.index("masked_input")
    assert (2 in res.survivors) == in_sum
    assert res.dropped == {2: round_name}
    assert outs[2].status == "crashed"
    assert all(outs[u].included for u in range(n) if u != 2)


def test_stalled_client_counts_as_dropped_at_deadline():
    n = 5
    cfg = MaskingConfig(n=n, dim=8)
    vecs = ring_vectors(n, 8, seed=2)
    res, outs, _ = asyncio.run(
        run_session(cfg, vecs, server_kw={"round_deadline": 1.0}, client_kw={4: {"stall_at": "masked_input"}})
    )
    check_result(res, vecs)
    assert res.survivors == [0, 1, 2, 3]
    assert res.dropped == {4: "masked_input"}
    assert res.round_seconds["masked_input"] >= 1.0  # the round waited for its deadline
    assert outs[4].status == "stalled"
    # it stopped before its masked input: it knows its input is not in the sum
    assert outs[4].included is False and "stalled at masked_input" in outs[4].reason
    assert res.drop_reasons == {4: "no answer within the 1 s deadline"}


@pytest.mark.parametrize("round_name,included", [("consistency_check", True), ("unmasking", True)])
def test_stalled_client_after_its_masked_input_reports_what_the_server_decided(round_name, included):
    """A client that stalls after sending its masked input is in the sum; it must not say
    otherwise (it keeps reading, so it learns the survivor set from DONE)."""
    n = 5
    cfg = MaskingConfig(n=n, dim=8)
    vecs = ring_vectors(n, 8, seed=12)
    res, outs, _ = asyncio.run(
        run_session(cfg, vecs, server_kw={"round_deadline": 1.0}, client_kw={3: {"stall_at": round_name}})
    )
    check_result(res, vecs)
    assert (3 in res.survivors) is included
    assert outs[3].status == "stalled" and outs[3].included is included and outs[3].survivors == res.survivors


def test_missing_clients_count_as_dropped_at_join():
    n = 6
    cfg = MaskingConfig(n=n, dim=8)
    vecs = ring_vectors(n, 8, seed=3)
    res, outs, _ = asyncio.run(run_session(cfg, vecs, server_kw={"join_timeout": 1.0}, ids=[0, 1, 2, 4]))
    check_result(res, vecs)
    assert res.registered == [0, 1, 2, 4] and res.survivors == [0, 1, 2, 4]
    assert res.dropped == {3: "join", 5: "join"}
    assert res.drop_reasons == {3: "never registered", 5: "never registered"}


def test_float_inputs_decoded_within_the_bound():
    n, d = 5, 12
    cfg = MaskingConfig(n=n, dim=d)
    x = np.random.default_rng(4).uniform(-2.0, 2.0, size=(n, d))  # inside the bound: out-of-range input raises
    res, outs, _ = asyncio.run(
        run_session(cfg, x, server_kw={"bound": 2.0},
                    client_kw={u: {"rng": np.random.default_rng(u)} for u in range(n)})
    )
    q = Quantizer(2.0, num_clients=n)
    np.testing.assert_array_equal(res.ring_sum, sum(o.vector for o in outs).astype(np.uint32))
    assert np.max(np.abs(res.sum - x.sum(axis=0))) <= n * q.resolution
    assert all(o.clipped == 0 for o in outs) and res.summary()["bound"] == 2.0


def test_a_client_refuses_out_of_range_input_before_sending_it():
    """Issue 14: with [3, 3, 3, 3] and a server bound of 1 the client raises, naming the
    server's --bound, and its input is not in the sum (it was never sent); the others' is."""
    n, d = 4, 4
    cfg = MaskingConfig(n=n, dim=d, threat=ThreatModel(adversary="honest-but-curious"))
    x = np.random.default_rng(5).uniform(-1.0, 1.0, size=(n, d))
    x[1] = 3.0
    res, outs, _ = asyncio.run(run_session(
        cfg, x, server_kw={"bound": 1.0, "join_timeout": 2.0},
        client_kw={u: {"accept_honest_but_curious": True} for u in range(n)}))
    assert isinstance(outs[1], OutOfRangeError)
    assert "--bound 1" in str(outs[1]) and "--bound 3 or more" in str(outs[1]) and "--out-of-range clip" in str(outs[1])
    assert outs[1].count == d and outs[1].bound == 1.0
    assert 1 not in res.registered and res.survivors == [0, 2, 3]  # refused at the CHALLENGE: never registered
    q = Quantizer(1.0, num_clients=n)
    assert np.max(np.abs(res.sum - x[[0, 2, 3]].sum(axis=0))) <= n * q.resolution


def test_a_clip_session_clips_and_each_client_counts_its_clipped_values():
    n, d = 4, 5
    cfg = MaskingConfig(n=n, dim=d, threat=ThreatModel(adversary="honest-but-curious"))
    x = np.array([[3.0, 3.0, 3.0, 3.0, 3.0], [0.0, 1.0, 2.0, 3.0, 4.0], [0.5] * 5, [-0.5] * 5])
    res, outs, _ = asyncio.run(run_session(
        cfg, x, server_kw={"bound": 1.0, "out_of_range": "clip"},
        client_kw={u: {"accept_honest_but_curious": True} for u in range(n)}))
    assert [o.clipped for o in outs] == [5, 3, 0, 0]
    assert res.summary()["out_of_range"] == "clip"
    q = Quantizer(1.0, num_clients=n)
    assert np.max(np.abs(res.sum - np.clip(x, -1, 1).sum(axis=0))) <= n * q.resolution


def test_old_clip_keyword_warns_and_means_bound():
    cfg = MaskingConfig(n=3, dim=2)
    with pytest.warns(DeprecationWarning, match="bound="):
        srv = AggregationServer(cfg, clip=2.0, insecure_plaintext=True, insecure_open_registration=True)
    assert srv.bound == 2.0
    with pytest.raises(ConfigurationError, match="bound= only"):
        AggregationServer(cfg, clip=2.0, bound=3.0, insecure_plaintext=True, insecure_open_registration=True)


def test_too_few_survivors_aborts_everyone():
    n = 4  # threshold 3
    cfg = MaskingConfig(n=n, dim=4)
    vecs = ring_vectors(n, 4)
    kw = {0: {"crash_at": "share_keys"}, 1: {"crash_at": "share_keys"}}
    res, outs, _ = asyncio.run(run_session(cfg, vecs, client_kw=kw))
    assert isinstance(res, ProtocolAbort) and "threshold" in res.reason
    for u in (2, 3):
        assert isinstance(outs[u], ProtocolAbort) and "aborted" in str(outs[u])


@pytest.mark.parametrize("weaker", ["threshold", "honest-but-curious"])
def test_client_refuses_a_session_weaker_than_its_own_threat_model(weaker):
    if weaker == "threshold":  # a malicious server announces an active session with t = 2 of 4
        cfg = MaskingConfig(n=4, dim=4)
        object.__setattr__(cfg, "threshold", 2)
    else:
        cfg = MaskingConfig(n=4, dim=4, threat=ThreatModel(adversary="honest-but-curious"))
    vecs = ring_vectors(4, 4)
    res, outs, _ = asyncio.run(run_session(cfg, vecs, server_kw={"join_timeout": 2.0}, ids=[0]))
    assert isinstance(outs[0], InsecureParameterError)
    assert isinstance(res, ProtocolAbort)


# ------------------------------------------------------------------ robustness
def test_silent_connection_hits_hello_timeout():
    cfg = MaskingConfig(n=4, dim=8)
    vecs = ring_vectors(4, 8)

    async def silent(port):
        reader, writer = await asyncio.open_connection(HOST, port)
        closed = await wait_closed_by_peer(reader)
        writer.close()
        return closed

    res, outs, adv = asyncio.run(
        run_session(cfg, vecs, server_kw={"hello_timeout": 0.5}, adversary=silent, head_start=1.0, plain=True)
    )
    check_result(res, vecs)
    assert adv is True and res.events["hello_timeouts"] == 1
    assert res.survivors == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "junk,counter",
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "foreign_protocols"),  # not a secagg client
        (b"SSH-2.0-OpenSSH_9.0\r\n", "foreign_protocols"),
        (b"\x16\x03\x01\x02\x00\x01", "tls_mismatches"),  # a TLS ClientHello to a plain server
        (struct.pack(">I", 11) + b"\x10not json!!", "bad_hellos"),  # HELLO kind with garbage body
        (encode_frame(KIND_PROTOCOL, b"\x01\x02"), "bad_hellos"),  # protocol bytes before registering
        (struct.pack(">I", 2**24 + 5) + b"\x10", "oversized_frames"),  # a 16 MB HELLO
        (encode_frame(KIND_HELLO, control_payload({"v": TRANSPORT_VERSION, "verify_key": "00"})), "bad_hellos"),  # short key
        (encode_frame(KIND_HELLO, control_payload({"v": 1, "verify_key": "00" * 32})), "refused_hellos"),
    ],
)
def test_garbage_before_registration_is_dropped(junk, counter):
    cfg = MaskingConfig(n=4, dim=8)
    vecs = ring_vectors(4, 8)

    async def garbage(port):
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(junk)
        await writer.drain()
        answer = b""
        try:
            while chunk := await asyncio.wait_for(reader.read(65536), 5.0):
                answer += chunk
        except (ConnectionError, OSError):
            pass
        writer.close()
        return answer

    res, outs, answer = asyncio.run(run_session(cfg, vecs, adversary=garbage, head_start=0.5, plain=True))
    check_result(res, vecs)
    assert res.events[counter] == 1
    assert res.survivors == [0, 1, 2, 3]
    if junk.startswith(b"GET"):  # an HTTP client is told in HTTP what this is
        assert answer.startswith(b"HTTP/1.1 400") and b"secagg" in answer
    if counter == "tls_mismatches":  # a TLS client gets a TLS alert it can report
        assert answer == bytes.fromhex("15030300020246")
    if counter == "refused_hellos":  # an old client is told which version to run
        _, body = split_payload(answer[4:])
        assert f"transport version {TRANSPORT_VERSION}".encode() in body


@pytest.mark.parametrize("attack", ["garbage", "oversized", "impersonate", "bad_signature", "wrong_round", "wrong_dim"])
def test_registered_client_misbehaving_is_dropped_alone(attack):
    """Client 4 is driven by hand and misbehaves after StartSession; the others finish."""
    n = 5
    cfg = MaskingConfig(n=n, dim=8)
    vecs = ring_vectors(n, 8, seed=5)

    async def evil(port):
        reader, writer, kind, welcome = await raw_register(port, 4)
        assert kind == KIND_WELCOME
        kind, body = split_payload(await read_frame(reader, 1 << 20))
        start = decode_message(body)
        session = start.session
        if attack == "garbage":
            frame = encode_frame(KIND_PROTOCOL, secrets.token_bytes(40))
        elif attack == "oversized":
            frame = struct.pack(">I", 2**31 - 1) + b"\x01"  # no payload follows
        elif attack == "impersonate":
            frame = encode_frame(KIND_PROTOCOL, ConsistencyResponse(session, 0, ((1, bytes(16)),)).to_bytes())
        elif attack == "bad_signature":
            msg = AdvertiseKeys(session, 4, secrets.token_bytes(32), secrets.token_bytes(32), bytes(64))
            frame = encode_frame(KIND_PROTOCOL, msg.to_bytes())
        elif attack == "wrong_round":
            frame = encode_frame(KIND_PROTOCOL, ConsistencyResponse(session, 4, ((1, bytes(16)),)).to_bytes())
        else:
            msg = MaskedInput(session, 4, 32, np.zeros(3, dtype=np.uint32))
            frame = encode_frame(KIND_PROTOCOL, msg.to_bytes())
        writer.write(frame)
        await writer.drain()
        closed = await wait_closed_by_peer(reader)
        writer.close()
        return closed

    res, outs, adv = asyncio.run(run_session(cfg, vecs, adversary=evil, ids=range(4), plain=True))
    check_result(res, vecs)
    assert adv is True
    assert res.survivors == [0, 1, 2, 3]
    assert res.dropped == {4: "advertise_keys"}
    assert res.drop_reasons[4] != "" and "deadline" not in res.drop_reasons[4]  # it says why
    counter = {"garbage": "bad_frames", "oversized": "oversized_frames", "impersonate": "impersonations"}.get(
        attack, "protocol_errors"
    )
    assert res.events[counter] == 1


def test_a_second_connection_with_the_same_key_is_told_why_and_late_rejoin_is_refused():
    """Only the holder of an allow-listed key can register its id, so a "taken" id means
    another copy of the same client: it is refused with the reason. A holder that leaves
    before the start frees its id; a HELLO after the start is refused."""
    n = 4
    cfg = MaskingConfig(n=n, dim=8)
    vecs = ring_vectors(n, 8, seed=6)

    async def scenario():
        srv = AggregationServer(cfg, bound=None, round_deadline=10.0, join_timeout=15.0, hello_timeout=5.0,
                                allow_list=allow(n), insecure_plaintext=True)
        port = await srv.start()
        task = asyncio.create_task(srv.run())
        r0, w0, kind0, _ = await raw_register(port, 3, wait=False)  # the first copy of client 3
        r1, w1, kind1, reply1 = await raw_register(port, 3)  # a second copy of client 3
        w1.close()
        w0.close()  # the first copy vanishes before the start: id 3 is free again
        await asyncio.sleep(0.2)
        clients = [asyncio.create_task(run_client(HOST, port, vecs[u], signing_key=SKS[u], insecure_plaintext=True,
                                                  timeout=20)) for u in range(n)]
        res = await task
        outs = await asyncio.gather(*clients)
        late = await asyncio.gather(run_client(HOST, port, vecs[0], signing_key=SKS[0], insecure_plaintext=True,
                                               timeout=5), return_exceptions=True)
        return kind0, kind1, reply1, res, outs, late[0]

    from secagg.transport._framing import KIND_REGISTERED

    kind0, kind1, reply1, res, outs, late = asyncio.run(scenario())
    assert kind0 == KIND_REGISTERED
    assert kind1 == KIND_ABORT and reply1["code"] == "id-taken" and "another copy" in reply1["reason"]
    check_result(res, vecs)
    assert res.survivors == [0, 1, 2, 3] and [o.id for o in outs] == [0, 1, 2, 3]  # ids come from the allow-list
    assert res.events["refused_hellos"] == 1
    assert isinstance(late, ProtocolAbort)


def test_hello_after_start_is_refused():
    n = 4
    cfg = MaskingConfig(n=n, dim=4)
    vecs = ring_vectors(n, 4)

    async def latecomer(port):
        await asyncio.sleep(0.5)  # the session is full and running by now (deadline 3 s)
        return await raw_register(port, 1)

    res, outs, adv = asyncio.run(
        run_session(cfg, vecs, adversary=latecomer, client_kw={0: {"stall_at": "share_keys"}},
                    server_kw={"round_deadline": 2.0}, plain=True)
    )
    check_result(res, vecs)
    kind, reply = adv[2], adv[3]
    assert kind == KIND_ABORT and "already started" in reply["reason"]


def test_connection_limit():
    n = 4  # three honest clients connect (t = 3), then three more connections for a limit of 4
    cfg = MaskingConfig(n=n, dim=4)
    vecs = ring_vectors(n, 4)

    async def crowd(port):
        await asyncio.sleep(0.5)
        conns = [await asyncio.open_connection(HOST, port) for _ in range(3)]
        closed = [await wait_closed_by_peer(r, timeout=5) for r, _ in conns]
        for _, w in conns:
            w.close()
        return closed

    res, outs, adv = asyncio.run(
        run_session(cfg, vecs, adversary=crowd, ids=[0, 1, 2], plain=True,
                    server_kw={"max_connections": 4, "hello_timeout": 1.0, "join_timeout": 2.0})
    )
    check_result(res, vecs)
    assert adv == [True, True, True]
    assert res.events["refused_connections"] == 2 and res.events["hello_timeouts"] == 1
    assert res.survivors == [0, 1, 2]


# ------------------------------------------------------------------ TLS
def test_tls_client_rejects_unknown_certificate_and_plain_client_is_told_to_use_tls(tmp_path):
    other_cert, _ = write_self_signed(tmp_path / "other")
    n = 3
    cfg = MaskingConfig(n=n, dim=4)
    vecs = ring_vectors(n, 4)

    async def impostor(port):  # trusts a different CA: the handshake must fail
        return (await asyncio.gather(
            run_client(HOST, port, vecs[0], ssl_context=client_context(other_cert), signing_key=SKS[0], timeout=5),
            return_exceptions=True))[0]

    async def plain(port):  # a secagg client without TLS against a TLS server
        return (await asyncio.gather(
            run_client(HOST, port, vecs[0], insecure_plaintext=True, signing_key=SKS[0], timeout=5),
            return_exceptions=True))[0]

    async def both(port):
        return await impostor(port), await plain(port)

    res, outs, adv = asyncio.run(run_session(cfg, vecs, adversary=both))
    check_result(res, vecs)
    bad, refused = adv
    assert isinstance(bad, ProtocolAbort) and "not trusted by the CA file" in str(bad) and "--ca" in str(bad)
    assert isinstance(refused, ProtocolAbort) and "speaks TLS" in str(refused)
    assert "drop --insecure-plaintext" in str(refused)
    assert res.survivors == [0, 1, 2]
    assert res.events["tls_mismatches"] == 1 and res.events["tls_failures"] == 1


def test_pinned_directory_detects_substituted_keys():
    """With keys distributed out of band (PKI), a client refuses a WELCOME whose directory
    lists a key it does not expect; with the right pins the session runs normally."""
    from secagg.errors import IntegrityError

    n = 4  # one refusal leaves 3 = t
    cfg = MaskingConfig(n=n, dim=4)
    vecs = ring_vectors(n, 4, seed=8)
    pins = allow(n)
    good = {u: {"expected_directory": pins} for u in range(n)}
    res, outs, _ = asyncio.run(run_session(cfg, vecs, client_kw=good))
    check_result(res, vecs)
    assert all(o.included for o in outs)

    wrong = dict(pins)
    wrong[2] = keys.SigningKey.generate().public_bytes()  # client 0 expects another key for 2
    bad = {u: {"expected_directory": wrong if u == 0 else pins} for u in range(n)}
    res, outs, _ = asyncio.run(run_session(cfg, vecs, client_kw=bad))
    assert isinstance(outs[0], IntegrityError) and "pinned" in str(outs[0])
    check_result(res, vecs)
    assert res.survivors == [1, 2, 3]


# ------------------------------------------------------------------ review hardening
def test_registered_client_cannot_flood_the_queue_before_the_session_starts():
    """A registered client that sends protocol frames before its WELCOME (a legitimate one
    never does) is closed at once instead of having every decoded frame queued."""
    cfg = MaskingConfig(n=3, dim=8)

    async def scenario():
        srv = AggregationServer(cfg, bound=None, round_deadline=2.0, join_timeout=4.0, hello_timeout=2.0,
                                allow_list=allow(3), insecure_plaintext=True)
        port = await srv.start()
        task = asyncio.create_task(srv.run())
        reader, writer, _, _ = await raw_register(port, 2, wait=False)
        msg = AdvertiseKeys(secrets.token_bytes(16), 2, secrets.token_bytes(32), secrets.token_bytes(32), bytes(64))
        frame = encode_frame(KIND_PROTOCOL, msg.to_bytes())
        try:
            for _ in range(50):
                writer.write(frame)
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        closed = await asyncio.wait_for(wait_closed_by_peer(reader), 2.0)
        queued = srv._queue.qsize()
        writer.close()
        res = (await asyncio.gather(task, return_exceptions=True))[0]
        return closed, queued, res

    closed, queued, res = asyncio.run(scenario())
    assert closed is True
    assert queued <= 2
    assert isinstance(res, ProtocolAbort)  # nobody left: the session aborts cleanly


def test_registered_client_cannot_flood_the_queue_during_a_round():
    """More than a couple of unprocessed messages from one connection close it; the
    honest clients still get the exact sum of the survivors."""
    n = 4
    cfg = MaskingConfig(n=n, dim=8)
    vecs = ring_vectors(n, 8, seed=9)

    async def evil(port):
        reader, writer, kind, _ = await raw_register(port, 3)
        assert kind == KIND_WELCOME
        _, body = split_payload(await read_frame(reader, 1 << 20))
        session = decode_message(body).session
        msg = AdvertiseKeys(session, 3, secrets.token_bytes(32), secrets.token_bytes(32), bytes(64))
        try:
            for _ in range(200):
                writer.write(encode_frame(KIND_PROTOCOL, msg.to_bytes()))
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        closed = await wait_closed_by_peer(reader)
        writer.close()
        return closed

    res, outs, adv = asyncio.run(run_session(cfg, vecs, adversary=evil, ids=range(3), plain=True))
    check_result(res, vecs)
    assert adv is True
    assert res.survivors == [0, 1, 2]
    assert res.events["protocol_errors"] + res.events["bad_frames"] <= 3


def test_tls_handshake_is_bounded_by_hello_timeout():
    """A TCP connection that never starts the TLS handshake is closed after
    ``hello_timeout``, not after asyncio's default of 60 s."""
    cfg = MaskingConfig(n=3, dim=4)
    vecs = ring_vectors(3, 4)

    async def silent(port):
        reader, writer = await asyncio.open_connection(HOST, port)
        t0 = asyncio.get_running_loop().time()
        await asyncio.wait_for(wait_closed_by_peer(reader, timeout=10.0), 4.0)
        writer.close()
        return asyncio.get_running_loop().time() - t0

    res, outs, adv = asyncio.run(
        run_session(cfg, vecs, adversary=silent, head_start=2.5, server_kw={"hello_timeout": 0.5})
    )
    assert not isinstance(adv, BaseException), adv
    assert adv < 4.0
    check_result(res, vecs)
    assert res.events["hello_timeouts"] == 1


def test_client_write_is_bounded_by_timeout():
    """A server that stops reading cannot block the client forever in ``drain()``."""
    from secagg.transport.client import _Policy, _session

    class StuckWriter:
        def write(self, data):
            pass

        async def drain(self):
            await asyncio.Event().wait()

        def get_extra_info(self, name):
            return None

    async def scenario():
        reader = asyncio.StreamReader()
        policy = _Policy(None, SecurityPolicy(), False)
        return await asyncio.wait_for(
            _session(reader, StuckWriter(), np.zeros(4), where="x", rng=None, signing_key=SKS[0],
                     requested_id=None, policy=policy, timeout=0.3, handshake_timeout=0.3, crash_at=None,
                     stall_at=None, on_crash=None, on_welcome=None, on_registered=None),
            3.0,
        )

    with pytest.raises(ProtocolAbort, match="within"):
        asyncio.run(scenario())


async def _against_fake_server(script, client_kw):
    """Run one real client against ``script(reader, writer)``, a hand-written server."""
    srv = await asyncio.start_server(script, HOST, 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        kw = {"signing_key": SKS[0], "insecure_plaintext": True, "timeout": 5, **client_kw}
        return (await asyncio.gather(run_client(HOST, port, np.zeros(4, dtype=np.uint32), **kw),
                                     return_exceptions=True))[0]
    finally:
        srv.close()


def test_client_rejects_malformed_done_with_a_secagg_error():
    """A DONE frame whose survivor list is not a list of ints raises DecodeError, not
    ValueError/TypeError."""
    from secagg.errors import DecodeError
    from secagg.transport._framing import KIND_DONE

    cfg = MaskingConfig(n=3, dim=4, threat=ThreatModel(adversary="honest-but-curious"))

    async def fake_server(reader, writer):
        hello = await fake_server_register(reader, writer)
        welcome = {"id": 0, "directory": {"0": hello["verify_key"]}, "n": cfg.n, "dim": cfg.dim, "bits": cfg.bits,
                   "threshold": cfg.threshold, "graph": "complete", "k": cfg.k, "adversary": "honest-but-curious",
                   "min_survivors": cfg.min_survivors,
                   "graph_seed": "00" * 32, "bound": None, "max_frame": 1 << 16, "session": hello["session"].hex()}
        writer.write(encode_frame(KIND_WELCOME, control_payload(welcome)))
        writer.write(encode_frame(KIND_DONE, control_payload({"status": "ok", "survivors": ["x", None]})))
        await writer.drain()
        await asyncio.sleep(1.0)
        writer.close()

    out = asyncio.run(_against_fake_server(fake_server, {"accept_honest_but_curious": True}))
    assert isinstance(out, DecodeError), repr(out)
