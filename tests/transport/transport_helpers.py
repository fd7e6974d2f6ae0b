"""Shared pieces of the transport tests: identity keys and their allow-list, a TLS
certificate, a session runner, a hand-driven client that registers properly, and a
scripted fake server that registers a client and then plays whatever the test wants."""

from __future__ import annotations

import asyncio
import os
import tempfile

import numpy as np

from secagg import keys, shamir
from secagg.masking import MaskingConfig, ThreatModel
from secagg.masking.client import SHARE_ROUND
from secagg.masking.config import pair_keys
from secagg.masking._transcript import MerkleTree, leaf_hash, session_identity
from secagg.masking._messages import ForwardShares, KeysBroadcast, StartSession, decode_message
from secagg.transport import AggregationServer, run_client
from secagg.transport._framing import (
    KIND_AUTH,
    KIND_CHALLENGE,
    KIND_HELLO,
    KIND_PROTOCOL,
    KIND_REGISTERED,
    KIND_WELCOME,
    TRANSPORT_VERSION,
    control_payload,
    encode_frame,
    parse_control,
    read_frame,
    split_payload,
)
from secagg.transport._identity import registration_payload
from secagg.transport.tls import client_context, server_context, write_self_signed

HOST = "127.0.0.1"
#: identity keys of clients 0..19 and the allow-list that names them
SKS = [keys.SigningKey.generate() for _ in range(20)]
ALLOW = {u: sk.public_bytes() for u, sk in enumerate(SKS)}
CERT, KEY = write_self_signed(tempfile.mkdtemp(prefix="secagg-tls-"))


def allow(n: int) -> dict[int, bytes]:
    return {u: ALLOW[u] for u in range(n)}


def ring_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2**32, size=(n, dim), dtype=np.uint32)


def expected_sum(vecs: np.ndarray, survivors) -> np.ndarray:
    return vecs[sorted(survivors)].sum(axis=0, dtype=np.uint32)


def server_security(plain: bool) -> dict:
    """Server keywords: TLS + allow-list (default), or plain TCP + allow-list."""
    return {"insecure_plaintext": True} if plain else {"ssl_context": server_context(CERT, KEY)}


def client_security(u: int, plain: bool) -> dict:
    base = {"signing_key": SKS[u], "requested_id": u}
    return {**base, "insecure_plaintext": True} if plain else {**base, "ssl_context": client_context(CERT)}


async def run_session(cfg, vecs, *, server_kw=None, client_kw=None, adversary=None, ids=None, head_start=0.05,
                      plain=False):
    """Start a server (TLS and the allow-list of clients 0..n-1 unless ``plain``), optionally
    run ``adversary(port)`` first, then honest clients with ids ``ids`` (default all).
    Returns (server result or exception, client outcomes/exceptions, adversary's result)."""
    kw = dict(bound=None, round_deadline=10.0, join_timeout=15.0, hello_timeout=5.0, allow_list=allow(cfg.n),
              **server_security(plain))
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
        asyncio.create_task(run_client(HOST, port, vecs[u], timeout=20.0,
                                       **{**client_security(u, plain), **client_kw.get(u, {})}))
        for u in ids
    ]
    res = await asyncio.gather(srv_task, return_exceptions=True)
    outs = await asyncio.gather(*clients, return_exceptions=True)
    adv_out = (await asyncio.gather(adv, return_exceptions=True))[0] if adv is not None else None
    return res[0], outs, adv_out


async def read_control(reader, limit: int = 1 << 20) -> tuple[int, dict | bytes]:
    kind, body = split_payload(await read_frame(reader, limit))
    try:
        return kind, parse_control(body, "reply")
    except Exception:
        return kind, body


async def raw_register(port, uid=None, key=None, *, wait=True, hello_extra=None, sign_with=None, cert_sha=None):
    """A hand-driven client over plain TCP: HELLO, CHALLENGE, AUTH (signed with ``sign_with``
    or ``key``), REGISTERED; then, if ``wait``, the next frame (WELCOME at the session
    start). Returns (reader, writer, kind, reply) where the reply is the first ABORT if the
    server refused at any step."""
    reader, writer = await asyncio.open_connection(HOST, port)
    key = key or (SKS[uid] if uid is not None else keys.SigningKey.generate())
    hello = {"v": TRANSPORT_VERSION, "verify_key": key.public_bytes().hex(), "id": uid, "dim": None,
             **(hello_extra or {})}
    writer.write(encode_frame(KIND_HELLO, control_payload(hello)))
    await writer.drain()
    kind, reply = await read_control(reader)
    if kind != KIND_CHALLENGE:
        return reader, writer, kind, reply
    payload = registration_payload(bytes.fromhex(reply["session"]), bytes.fromhex(reply["nonce"]), reply["id"],
                                   key.public_bytes(), cert_sha)
    writer.write(encode_frame(KIND_AUTH, control_payload({"signature": (sign_with or key).sign(payload).hex()})))
    await writer.drain()
    kind, reply = await read_control(reader)
    if kind != KIND_REGISTERED or not wait:
        return reader, writer, kind, reply
    kind, reply = await read_control(reader)
    return reader, writer, kind, reply


async def wait_closed_by_peer(reader, timeout=5.0) -> bool:
    """True if the peer closed (EOF or reset) within ``timeout`` (frames before EOF ignored)."""
    try:
        while await asyncio.wait_for(reader.read(65536), timeout):
            pass
    except (ConnectionError, OSError):
        pass
    return True


async def fake_server_register(reader, writer, *, registration="allow-list", session=None, bound=None) -> dict:
    """The registration half of a malicious server: HELLO -> CHALLENGE -> AUTH -> REGISTERED
    (it accepts anything; ``bound``: the bound it announces, None for ring vectors).
    Returns the client's HELLO plus the session it was given."""
    session = session or bytes(range(16))
    kind, hello = await read_control(reader, 4096)
    assert kind == KIND_HELLO
    uid = hello["id"] if hello["id"] is not None else 0
    writer.write(encode_frame(KIND_CHALLENGE, control_payload({
        "v": TRANSPORT_VERSION, "session": session.hex(), "nonce": "11" * 32, "id": uid, "n": 3, "dim": 4,
        "registration": registration, "bound": bound, "out_of_range": "raise"})))
    await writer.drain()
    kind, _ = await read_control(reader, 4096)
    assert kind == KIND_AUTH
    writer.write(encode_frame(KIND_REGISTERED, control_payload({"id": uid, "n": 3, "registered": 1})))
    await writer.drain()
    return {**hello, "id": uid, "session": session}


HBC_CONFIG = MaskingConfig(n=3, dim=4, threat=ThreatModel(adversary="honest-but-curious"))


def hbc_fields() -> dict:
    """WELCOME fields of the honest-but-curious 3-client session the fake servers announce."""
    cfg = HBC_CONFIG
    return {"adversary": "honest-but-curious", "threshold": cfg.threshold, "min_survivors": cfg.min_survivors}


def session_key_of(cfg: MaskingConfig, nonce: bytes, advertised: dict) -> tuple[bytes, tuple[bytes, ...]]:
    """The session identity R a client of the complete graph computes from the keys it was
    shown (``{id: (c_pk, s_pk)}``, every id present), and the inclusion proof the server
    must send with them: what a server that plays the other clients needs to read client
    0's shares."""
    graph = cfg.build_graph(bytes(32))
    tree = MerkleTree([leaf_hash(v, *advertised[v]) for v in range(cfg.n)])
    return session_identity(cfg.digest(graph), nonce, tree.root), tree.proof([(0, cfg.n - 1)])


def welcome_with(hello: dict, **changes) -> dict:
    """A well-formed WELCOME for client 0 of a 3-client session of 4-element ring vectors
    (the allow-list's keys in the directory), with ``changes``."""
    cfg = MaskingConfig(n=3, dim=4)
    base = {"v": TRANSPORT_VERSION, "id": 0, "n": 3, "dim": 4, "bits": 32, "threshold": cfg.threshold,
            "graph": "complete",
            "k": cfg.k, "adversary": "active", "min_survivors": cfg.min_survivors, "graph_seed": "00" * 32,
            "bound": None, "max_frame": 1 << 16,
            "session": hello["session"].hex(), "registration": "allow-list",
            "directory": {str(u): ALLOW[u].hex() for u in range(3)}}
    return {**base, **changes}


async def hangs_up_after_masked_input(reader, writer):
    """A server (honest-but-curious variant, float inputs clipped to 1) that runs client 0 up
    to its masked input with its own keys for the neighbours, then drops the connection
    without a DONE."""
    hello = await fake_server_register(reader, writer, bound=1.0)
    session = hello["session"]
    writer.write(encode_frame(KIND_WELCOME, control_payload(welcome_with(hello, **hbc_fields(), bound=1.0))))
    writer.write(encode_frame(KIND_PROTOCOL, StartSession(session, 0).to_bytes()))
    await writer.drain()
    _, body = split_payload(await read_frame(reader, 1 << 20))
    mine = [(v, keys.AgreementKey.generate(), keys.AgreementKey.generate()) for v in (1, 2)]
    entries = tuple((v, c.public_bytes(), s.public_bytes(), b"") for v, c, s in mine)
    adv = decode_message(body)
    R, proof = session_key_of(HBC_CONFIG, session, {0: (adv.c_pk, adv.s_pk),
                                                     **{v: (c.public_bytes(), s.public_bytes()) for v, c, s in mine}})
    writer.write(encode_frame(KIND_PROTOCOL, KeysBroadcast(session, 0, entries, proof).to_bytes()))
    await writer.drain()
    await read_frame(reader, 1 << 20)  # ShareKeys
    dummy = shamir.split_batch([os.urandom(32), os.urandom(32)], 2, [1, 2, 3])
    cts = []
    for v, c, _ in mine:
        key = pair_keys(c.exchange(adv.c_pk), R, 0, v, False)[0]
        ad = keys.associated_data(session=R, round=SHARE_ROUND, sender=v, recipient=0)
        cts.append((v, keys.aead_encrypt(key, shamir.encode_share_values(dummy[v]), ad)))
    writer.write(encode_frame(KIND_PROTOCOL, ForwardShares(session, 0, tuple(cts)).to_bytes()))
    await writer.drain()
    await read_frame(reader, 1 << 20)  # MaskedInput
    writer.transport.abort()

