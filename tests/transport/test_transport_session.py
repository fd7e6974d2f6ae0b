"""The protocol over real loopback sockets (asyncio, in one process): correct survivor sums
with dropouts at every round, per-round deadlines, malformed traffic, reconnects, limits,
aborts and TLS. Every adversarial case checks that the server survives and that the sum
is exactly the sum of the survivors it reports."""

from __future__ import annotations

import asyncio
import secrets
import struct

import numpy as np
import pytest

from secagg import keys
from secagg.errors import InsecureParameterError, ProtocolAbort
from secagg.masking import MaskingConfig
from secagg.masking.messages import AdvertiseKeys, ConsistencyResponse, MaskedInput, decode_message
from secagg.masking.rounds import ROUNDS
from secagg.quantize import Quantizer
from secagg.transport import AggregationServer, run_client
from secagg.transport.framing import (
    KIND_ABORT,
    KIND_HELLO,
    KIND_PROTOCOL,
    KIND_WELCOME,
    control_payload,
    encode_frame,
    parse_control,
    read_frame,
    split_payload,
)
from secagg.transport.tls import client_context, server_context, write_self_signed

HOST = "127.0.0.1"
pytestmark = pytest.mark.timeout(60)


def ring_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2**32, size=(n, dim), dtype=np.uint32)


def expected_sum(vecs: np.ndarray, survivors) -> np.ndarray:
    return vecs[sorted(survivors)].sum(axis=0, dtype=np.uint32)


async def run_session(cfg, vecs, *, server_kw=None, client_kw=None, adversary=None, ids=None, head_start=0.05):
    """Start a server, optionally run ``adversary(port)`` first, then honest clients with
    ids ``ids`` (default all). Returns (server result or exception, client outcomes/exceptions,
    adversary's return value)."""
    kw = dict(clip=None, round_deadline=10.0, join_timeout=15.0, hello_timeout=5.0)
    kw.update(server_kw or {})
    srv = AggregationServer(cfg, **kw)
    port = await srv.start()
    srv_task = asyncio.create_task(srv.run())
    adv = None
    if adversary is not None:
        adv = asyncio.create_task(adversary(port))
        await asyncio.sleep(head_start)
    ids = range(cfg.n) if ids is None else ids
    client_kw = client_kw or {}
    clients = [
        asyncio.create_task(run_client(HOST, port, vecs[u], requested_id=u, timeout=20.0, **client_kw.get(u, {})))
        for u in ids
    ]
    res = await asyncio.gather(srv_task, return_exceptions=True)
    outs = await asyncio.gather(*clients, return_exceptions=True)
    adv_out = (await asyncio.gather(adv, return_exceptions=True))[0] if adv is not None else None
    return res[0], outs, adv_out


def check_result(res, vecs, n_registered=None):
    assert not isinstance(res, BaseException), res
    np.testing.assert_array_equal(res.ring_sum, expected_sum(vecs, res.survivors))
    return res


async def raw_register(port, requested_id=None, key=None, wait=True):
    """A hand-driven client: HELLO, then (if ``wait``) the reply (WELCOME at the session
    start, or ABORT). Returns (reader, writer, reply kind, reply dict)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    key = key or keys.SigningKey.generate()
    hello = {"v": 1, "verify_key": key.public_bytes().hex(), "id": requested_id}
    writer.write(encode_frame(KIND_HELLO, control_payload(hello)))
    await writer.drain()
    if not wait:
        return reader, writer, None, None
    kind, body = split_payload(await read_frame(reader, 1 << 20))
    return reader, writer, kind, parse_control(body, "reply")


async def wait_closed_by_peer(reader, timeout=5.0) -> bool:
    """True if the peer closed (EOF or reset) within ``timeout`` (frames before EOF ignored)."""
    try:
        while await asyncio.wait_for(reader.read(65536), timeout):
            pass
    except (ConnectionError, OSError):
        pass
    return True


# ------------------------------------------------------------------ correctness
@pytest.mark.parametrize(
    "graph,k,check", [("complete", None, True), ("sparse", 4, True), ("complete", None, False)]
)
def test_all_clients_sum_exact(graph, k, check):
    cfg = MaskingConfig(n=7, dim=33, graph=graph, k=k, consistency_check=check)
    vecs = ring_vectors(7, 33)
    res, outs, _ = asyncio.run(run_session(cfg, vecs))
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


def test_missing_clients_count_as_dropped_at_join():
    n = 6
    cfg = MaskingConfig(n=n, dim=8)
    vecs = ring_vectors(n, 8, seed=3)
    res, outs, _ = asyncio.run(run_session(cfg, vecs, server_kw={"join_timeout": 1.0}, ids=[0, 1, 2, 4]))
    check_result(res, vecs)
    assert res.registered == [0, 1, 2, 4] and res.survivors == [0, 1, 2, 4]
    assert res.dropped == {3: "join", 5: "join"}


def test_float_inputs_decoded_with_clip():
    n, d = 5, 12
    cfg = MaskingConfig(n=n, dim=d)
    x = np.random.default_rng(4).uniform(-1.0, 1.0, size=(n, d))  # inside the bound: out-of-range input raises
    res, outs, _ = asyncio.run(
        run_session(cfg, x, server_kw={"clip": 1.0}, client_kw={u: {"rng": np.random.default_rng(u)} for u in range(n)})
    )
    q = Quantizer(1.0, num_clients=n)
    np.testing.assert_array_equal(res.ring_sum, sum(o.vector for o in outs).astype(np.uint32))
    assert np.max(np.abs(res.sum - np.clip(x, -1, 1).sum(axis=0))) <= n * q.resolution


def test_too_few_survivors_aborts_everyone():
    n = 4  # threshold 3
    cfg = MaskingConfig(n=n, dim=4)
    vecs = ring_vectors(n, 4)
    kw = {0: {"crash_at": "share_keys"}, 1: {"crash_at": "share_keys"}}
    res, outs, _ = asyncio.run(run_session(cfg, vecs, client_kw=kw))
    assert isinstance(res, ProtocolAbort) and "threshold" in res.reason
    for u in (2, 3):
        assert isinstance(outs[u], ProtocolAbort) and "aborted" in str(outs[u])


def test_client_refuses_low_threshold_session():
    cfg = MaskingConfig(n=4, dim=4, threshold=2, allow_low_threshold=True)
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
        run_session(cfg, vecs, server_kw={"hello_timeout": 0.5}, adversary=silent, head_start=1.0)
    )
    check_result(res, vecs)
    assert adv is True and res.events["hello_timeouts"] == 1
    assert res.survivors == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "junk",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # a length prefix of ~1.2 GB: oversized
        struct.pack(">I", 11) + b"\x10not json!!",  # HELLO kind with garbage body
        encode_frame(KIND_PROTOCOL, b"\x01\x02"),  # protocol bytes before registering
        encode_frame(KIND_HELLO, control_payload({"v": 1, "verify_key": "00"})),  # short key
    ],
)
def test_garbage_before_hello_is_dropped(junk):
    cfg = MaskingConfig(n=4, dim=8)
    vecs = ring_vectors(4, 8)

    async def garbage(port):
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(junk)
        await writer.drain()
        closed = await wait_closed_by_peer(reader)
        writer.close()
        return closed

    res, outs, adv = asyncio.run(run_session(cfg, vecs, adversary=garbage, head_start=0.5))
    check_result(res, vecs)
    assert adv is True
    assert res.events["bad_hellos"] + res.events["oversized_frames"] == 1
    assert res.survivors == [0, 1, 2, 3]


@pytest.mark.parametrize("attack", ["garbage", "oversized", "impersonate", "bad_signature", "wrong_round", "wrong_dim"])
def test_registered_client_misbehaving_is_dropped_alone(attack):
    """Client 4 is driven by hand and misbehaves after StartSession; the others finish."""
    n = 5
    cfg = MaskingConfig(n=n, dim=8)
    vecs = ring_vectors(n, 8, seed=5)
    sk = keys.SigningKey.generate()

    async def evil(port):
        reader, writer, kind, welcome = await raw_register(port, requested_id=4, key=sk)
        assert kind == KIND_WELCOME
        kind, body = split_payload(await read_frame(reader, 1 << 20))
        start = decode_message(body)
        session = start.session
        if attack == "garbage":
            frame = encode_frame(KIND_PROTOCOL, secrets.token_bytes(40))
        elif attack == "oversized":
            frame = struct.pack(">I", 2**31 - 1) + b"\x01"  # no payload follows
        elif attack == "impersonate":
            frame = encode_frame(KIND_PROTOCOL, ConsistencyResponse(session, 0, bytes(64)).to_bytes())
        elif attack == "bad_signature":
            msg = AdvertiseKeys(session, 4, secrets.token_bytes(32), secrets.token_bytes(32), bytes(64))
            frame = encode_frame(KIND_PROTOCOL, msg.to_bytes())
        elif attack == "wrong_round":
            frame = encode_frame(KIND_PROTOCOL, ConsistencyResponse(session, 4, bytes(64)).to_bytes())
        else:
            msg = MaskedInput(session, 4, 32, np.zeros(3, dtype=np.uint32))
            frame = encode_frame(KIND_PROTOCOL, msg.to_bytes())
        writer.write(frame)
        await writer.drain()
        closed = await wait_closed_by_peer(reader)
        writer.close()
        return closed

    res, outs, adv = asyncio.run(run_session(cfg, vecs, adversary=evil, ids=range(4)))
    check_result(res, vecs)
    assert adv is True
    assert res.survivors == [0, 1, 2, 3]
    assert res.dropped == {4: "advertise_keys"}
    counter = {"garbage": "bad_frames", "oversized": "oversized_frames", "impersonate": "impersonations"}.get(
        attack, "protocol_errors"
    )
    assert res.events[counter] == 1


def test_second_hello_for_taken_id_or_key_is_refused_and_late_rejoin_too():
    n = 4
    cfg = MaskingConfig(n=n, dim=8)
    vecs = ring_vectors(n, 8, seed=6)
    sk = keys.SigningKey.generate()

    async def rivals(port):
        # id 3 is taken by a first connection with key sk
        r0, w0, _, _ = await raw_register(port, requested_id=3, key=sk, wait=False)
        await asyncio.sleep(0.1)
        r1, w1, kind1, reply1 = await raw_register(port, requested_id=3)  # same id
        r2, w2, kind2, reply2 = await raw_register(port, key=sk)  # same key, any id
        w1.close(), w2.close()
        return (kind1, reply1, kind2, reply2, r0, w0)

    async def scenario():
        kw = dict(clip=None, round_deadline=10.0, join_timeout=15.0, hello_timeout=5.0)
        srv = AggregationServer(cfg, **kw)
        port = await srv.start()
        task = asyncio.create_task(srv.run())
        kind1, reply1, kind2, reply2, r0, w0 = await rivals(port)
        # the holder of id 3 vanishes before the start: its id is free again
        w0.close()
        await asyncio.sleep(0.2)
        clients = [asyncio.create_task(run_client(HOST, port, vecs[u], requested_id=u, timeout=20)) for u in range(n)]
        res = await task
        outs = await asyncio.gather(*clients)
        # rejoining a session that already ran/started is refused
        late = await asyncio.gather(run_client(HOST, port, vecs[0], timeout=5), return_exceptions=True)
        return kind1, reply1, kind2, reply2, res, outs, late[0]

    kind1, reply1, kind2, reply2, res, outs, late = asyncio.run(scenario())
    assert kind1 == KIND_ABORT and "already taken" in reply1["reason"]
    assert kind2 == KIND_ABORT and "already registered" in reply2["reason"]
    check_result(res, vecs)
    assert res.survivors == [0, 1, 2, 3]
    assert res.events["refused_hellos"] == 2
    assert isinstance(late, ProtocolAbort)


def test_hello_after_start_is_refused():
    n = 3
    cfg = MaskingConfig(n=n, dim=4)
    vecs = ring_vectors(n, 4)

    async def latecomer(port):
        await asyncio.sleep(0.5)  # the session is full and running by now (deadline 3 s)
        return await raw_register(port)

    res, outs, adv = asyncio.run(
        run_session(cfg, vecs, adversary=latecomer, client_kw={0: {"stall_at": "share_keys"}},
                    server_kw={"round_deadline": 2.0})
    )
    check_result(res, vecs)
    kind, reply = adv[2], adv[3]
    assert kind == KIND_ABORT and "already started" in reply["reason"]


def test_connection_limit():
    n = 3  # two honest clients connect, then three more connections for a limit of 3
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
        run_session(cfg, vecs, adversary=crowd, ids=[0, 1],
                    server_kw={"max_connections": 3, "hello_timeout": 1.0, "join_timeout": 2.0})
    )
    check_result(res, vecs)
    assert adv == [True, True, True]
    assert res.events["refused_connections"] == 2 and res.events["hello_timeouts"] == 1
    assert res.survivors == [0, 1]


# ------------------------------------------------------------------ TLS
@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return write_self_signed(tmp_path_factory.mktemp("tls"))


def test_tls_session(certs, tmp_path):
    cert, key = certs
    n = 4
    cfg = MaskingConfig(n=n, dim=8)
    vecs = ring_vectors(n, 8, seed=7)
    sctx = server_context(cert, key)
    cctx = client_context(cert)
    res, outs, _ = asyncio.run(
        run_session(cfg, vecs, server_kw={"ssl_context": sctx}, client_kw={u: {"ssl_context": cctx} for u in range(n)})
    )
    check_result(res, vecs)
    assert res.survivors == list(range(n))


def test_tls_client_rejects_unknown_certificate_and_server_survives(certs, tmp_path):
    cert, key = certs
    other_cert, _ = write_self_signed(tmp_path / "other")
    n = 3
    cfg = MaskingConfig(n=n, dim=4)
    vecs = ring_vectors(n, 4)
    sctx = server_context(cert, key)

    async def impostor(port):  # trusts a different CA: the handshake must fail
        return await asyncio.gather(run_client(HOST, port, vecs[0], ssl_context=client_context(other_cert), timeout=5),
                                    return_exceptions=True)

    async def plain(port):  # no TLS at all against a TLS server
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(encode_frame(KIND_HELLO, control_payload({"v": 1, "verify_key": "00" * 32, "id": None})))
        return await wait_closed_by_peer(reader)

    async def both(port):
        return await impostor(port), await plain(port)

    res, outs, adv = asyncio.run(
        run_session(cfg, vecs, adversary=both, server_kw={"ssl_context": sctx},
                    client_kw={u: {"ssl_context": client_context(cert)} for u in range(n)})
    )
    check_result(res, vecs)
    (bad,), plain_closed = adv
    assert isinstance(bad, ProtocolAbort) and "certificate" in str(bad).lower()
    assert plain_closed is True
    assert res.survivors == [0, 1, 2]


def test_pinned_directory_detects_substituted_keys():
    """With keys distributed out of band (PKI), a client refuses a WELCOME whose directory
    lists a key it does not expect; with the right pins the session runs normally."""
    from secagg.errors import IntegrityError

    n = 3
    cfg = MaskingConfig(n=n, dim=4)
    vecs = ring_vectors(n, 4, seed=8)
    sks = [keys.SigningKey.generate() for _ in range(n)]
    pins = {u: sk.public_bytes() for u, sk in enumerate(sks)}
    good = {u: {"signing_key": sks[u], "expected_directory": pins} for u in range(n)}
    res, outs, _ = asyncio.run(run_session(cfg, vecs, client_kw=good))
    check_result(res, vecs)
    assert all(o.included for o in outs)

    wrong = dict(pins)
    wrong[2] = keys.SigningKey.generate().public_bytes()  # client 0 expects another key for 2
    bad = {u: {"signing_key": sks[u], "expected_directory": wrong if u == 0 else pins} for u in range(n)}
    res, outs, _ = asyncio.run(run_session(cfg, vecs, client_kw=bad))
    assert isinstance(outs[0], IntegrityError) and "pinned" in str(outs[0])
    check_result(res, vecs)
    assert res.survivors == [1, 2]


# ------------------------------------------------------------------ review hardening
def test_registered_client_cannot_flood_the_queue_before_the_session_starts():
    """A registered client that sends protocol frames before its WELCOME (a legitimate one
    never does) is closed at once instead of having every decoded frame queued."""
    cfg = MaskingConfig(n=3, dim=8)

    async def scenario():
        srv = AggregationServer(cfg, clip=None, round_deadline=2.0, join_timeout=4.0, hello_timeout=2.0)
        port = await srv.start()
        task = asyncio.create_task(srv.run())
        reader, writer, _, _ = await raw_register(port, requested_id=2, wait=False)
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
        reader, writer, kind, _ = await raw_register(port, requested_id=3)
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

    res, outs, adv = asyncio.run(run_session(cfg, vecs, adversary=evil, ids=range(3)))
    check_result(res, vecs)
    assert adv is True
    assert res.survivors == [0, 1, 2]
    assert res.events["protocol_errors"] + res.events["bad_frames"] <= 3


def test_tls_handshake_is_bounded_by_hello_timeout(certs):
    """A TCP connection that never starts the TLS handshake is closed after
    ``hello_timeout``, not after asyncio's default of 60 s."""
    cert, key = certs
    cfg = MaskingConfig(n=3, dim=4)
    vecs = ring_vectors(3, 4)

    async def silent(port):
        reader, writer = await asyncio.open_connection(HOST, port)
        t0 = asyncio.get_running_loop().time()
        await asyncio.wait_for(wait_closed_by_peer(reader, timeout=10.0), 4.0)
        writer.close()
        return asyncio.get_running_loop().time() - t0

    res, outs, adv = asyncio.run(
        run_session(cfg, vecs, adversary=silent, head_start=2.5,
                    server_kw={"ssl_context": server_context(cert, key), "hello_timeout": 0.5},
                    client_kw={u: {"ssl_context": client_context(cert)} for u in range(3)})
    )
    assert not isinstance(adv, BaseException), adv
    assert adv < 4.0
    check_result(res, vecs)


def test_client_write_is_bounded_by_timeout():
    """A server that stops reading cannot block the client forever in ``drain()``."""
    from secagg.transport.client import _session

    class StuckWriter:
        def write(self, data):
            pass

        async def drain(self):
            await asyncio.Event().wait()

    async def scenario():
        reader = asyncio.StreamReader()
        return await asyncio.wait_for(
            _session(reader, StuckWriter(), np.zeros(4), rng=None, signing_key=keys.SigningKey.generate(),
                     requested_id=None, expected_directory=None, allow_low_threshold=False, timeout=0.3,
                     crash_at=None, stall_at=None, on_crash=None, on_welcome=None),
            3.0,
        )

    with pytest.raises(ProtocolAbort, match="within"):
        asyncio.run(scenario())


def test_client_rejects_malformed_done_with_a_secagg_error():
    """A DONE frame whose survivor list is not a list of ints raises DecodeError, not
    ValueError/TypeError."""
    from secagg.errors import DecodeError
    from secagg.transport.framing import KIND_DONE

    cfg = MaskingConfig(n=3, dim=4, consistency_check=False)

    async def fake_server(reader, writer):
        _, body = split_payload(await read_frame(reader, 4096))
        vk = parse_control(body, "HELLO")["verify_key"]
        welcome = {"id": 0, "directory": {"0": vk}, "n": cfg.n, "dim": cfg.dim, "bits": cfg.bits,
                   "threshold": cfg.threshold, "graph": "complete", "k": cfg.k, "consistency_check": False,
                   "graph_seed": "00" * 32, "clip": None, "max_frame": 1 << 16}
        writer.write(encode_frame(KIND_WELCOME, control_payload(welcome)))
        writer.write(encode_frame(KIND_DONE, control_payload({"status": "ok", "survivors": ["x", None]})))
        await writer.drain()
        await asyncio.sleep(1.0)
        writer.close()

    async def scenario():
        srv = await asyncio.start_server(fake_server, HOST, 0)
        port = srv.sockets[0].getsockname()[1]
        try:
            return await asyncio.gather(
                run_client(HOST, port, np.zeros(4, dtype=np.uint32), timeout=5), return_exceptions=True)
        finally:
            srv.close()

    (out,) = asyncio.run(scenario())
    assert isinstance(out, DecodeError), repr(out)
